// Per-channel statistics of a row-major matrix [rows, cols] and its tiled abs-max map.
// Finite values only (as the CPU kernel); kurtosis from two passes about the channel's mean.

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>; // [abs_max, l2, kurtosis] per channel, or tiles
@group(0) @binding(2) var<uniform> p: MatrixParams;

var<workgroup> r_a: array<vec4<f32>, 256>; // abs_max, sum, sum of squares, count
var<workgroup> r_b: array<vec2<f32>, 256>; // m2, m4

// One workgroup per row: out[3*row..] = abs_max, L2, excess kurtosis.
@compute @workgroup_size(256)
fn row_stats(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let row = linear_group(wid, nwg);
    if (row >= p.rows) { return; }
    let base = row * p.cols;
    var a = vec4<f32>(0.0, 0.0, 0.0, 0.0);
    for (var j = lid; j < p.cols; j = j + WG) {
        let v = x[base + j];
        if (is_finite_bits(bitcast<u32>(v))) {
            a = vec4<f32>(max(a.x, abs(v)), a.y + v, a.z + v * v, a.w + 1.0);
        }
    }
    r_a[lid] = a;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            let o = r_a[lid + s];
            let m = r_a[lid];
            r_a[lid] = vec4<f32>(max(m.x, o.x), m.y + o.y, m.z + o.z, m.w + o.w);
        }
        workgroupBarrier();
    }
    let tot = r_a[0];
    let mean = tot.y / max(tot.w, 1.0);
    var b = vec2<f32>(0.0, 0.0);
    for (var j = lid; j < p.cols; j = j + WG) {
        let v = x[base + j];
        if (is_finite_bits(bitcast<u32>(v))) {
            let d2 = (v - mean) * (v - mean);
            b = b + vec2<f32>(d2, d2 * d2);
        }
    }
    r_b[lid] = b;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            r_b[lid] = r_b[lid] + r_b[lid + s];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        let n = max(tot.w, 1.0);
        let m2 = r_b[0].x / n;
        var kurt = nan_f32();
        if (m2 > 0.0) { kurt = (r_b[0].y / n) / (m2 * m2) - 3.0; }
        out[3u * row] = tot.x;
        out[3u * row + 1u] = sqrt(tot.z);
        out[3u * row + 2u] = kurt;
    }
}

// Column statistics over the row chunks of a matrix too large for one buffer, in two passes
// (one invocation per column; adjacent invocations read adjacent addresses). Chunks are given in
// row order and each continues the sums the previous left, so the result is that of one pass
// over all rows. Pass 1 adds to out[4*col..]: abs-max, sum, sum of squares, count (zeroed before
// the first chunk). Pass 2 adds the squared and fourth central moments about the column's mean
// to out[2*col..], reading pass 1's sums from `sums`.
@compute @workgroup_size(256)
fn col_sums(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let col = linear_index(wid, nwg, lid);
    if (col >= p.cols) { return; }
    var amax = out[4u * col];
    var sum = out[4u * col + 1u];
    var sq = out[4u * col + 2u];
    var n = out[4u * col + 3u];
    for (var i = 0u; i < p.rows; i = i + 1u) {
        let v = x[i * p.cols + col];
        if (is_finite_bits(bitcast<u32>(v))) {
            amax = max(amax, abs(v));
            sum = sum + v;
            sq = sq + v * v;
            n = n + 1.0;
        }
    }
    out[4u * col] = amax;
    out[4u * col + 1u] = sum;
    out[4u * col + 2u] = sq;
    out[4u * col + 3u] = n;
}

@group(0) @binding(4) var<storage, read> sums: array<f32>;

@compute @workgroup_size(256)
fn col_moments(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let col = linear_index(wid, nwg, lid);
    if (col >= p.cols) { return; }
    let mean = sums[4u * col + 1u] / max(sums[4u * col + 3u], 1.0);
    var m2 = out[2u * col];
    var m4 = out[2u * col + 1u];
    for (var i = 0u; i < p.rows; i = i + 1u) {
        let v = x[i * p.cols + col];
        if (is_finite_bits(bitcast<u32>(v))) {
            let d2 = (v - mean) * (v - mean);
            m2 = m2 + d2;
            m4 = m4 + d2 * d2;
        }
    }
    out[2u * col] = m2;
    out[2u * col + 1u] = m4;
}

// One invocation per tile: max |x| of its tile_rows x tile_cols values.
@compute @workgroup_size(256)
fn tile_absmax(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let tile = linear_index(wid, nwg, lid);
    if (tile >= p.grid_rows * p.grid_cols) { return; }
    let r0 = (tile / p.grid_cols) * p.tile_rows;
    let c0 = (tile % p.grid_cols) * p.tile_cols;
    var amax = 0.0;
    for (var i = r0; i < min(r0 + p.tile_rows, p.rows); i = i + 1u) {
        for (var j = c0; j < min(c0 + p.tile_cols, p.cols); j = j + 1u) {
            let v = x[i * p.cols + j];
            if (is_finite_bits(bitcast<u32>(v))) { amax = max(amax, abs(v)); }
        }
    }
    out[tile] = amax;
}

@group(0) @binding(3) var<storage, read> importance: array<f32>;

// One invocation per tile: max of |x| * |importance[column]| over the tile (the salience map).
@compute @workgroup_size(256)
fn tile_salience(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let tile = linear_index(wid, nwg, lid);
    if (tile >= p.grid_rows * p.grid_cols) { return; }
    let r0 = (tile / p.grid_cols) * p.tile_rows;
    let c0 = (tile % p.grid_cols) * p.tile_cols;
    var m = 0.0;
    for (var i = r0; i < min(r0 + p.tile_rows, p.rows); i = i + 1u) {
        for (var j = c0; j < min(c0 + p.tile_cols, p.cols); j = j + 1u) {
            let v = x[i * p.cols + j];
            if (is_finite_bits(bitcast<u32>(v))) { m = max(m, abs(v) * abs(importance[j])); }
        }
    }
    out[tile] = m;
}
