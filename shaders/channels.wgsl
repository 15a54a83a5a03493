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

// One invocation per column (adjacent invocations read adjacent addresses).
@compute @workgroup_size(256)
fn col_stats(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let col = linear_index(wid, nwg, lid);
    if (col >= p.cols) { return; }
    var amax = 0.0;
    var sum = 0.0;
    var sq = 0.0;
    var n = 0.0;
    for (var i = 0u; i < p.rows; i = i + 1u) {
        let v = x[i * p.cols + col];
        if (is_finite_bits(bitcast<u32>(v))) {
            amax = max(amax, abs(v));
            sum = sum + v;
            sq = sq + v * v;
            n = n + 1.0;
        }
    }
    let mean = sum / max(n, 1.0);
    var m2 = 0.0;
    var m4 = 0.0;
    for (var i = 0u; i < p.rows; i = i + 1u) {
        let v = x[i * p.cols + col];
        if (is_finite_bits(bitcast<u32>(v))) {
            let d2 = (v - mean) * (v - mean);
            m2 = m2 + d2;
            m4 = m4 + d2 * d2;
        }
    }
    let nn = max(n, 1.0);
    var kurt = nan_f32();
    if (m2 > 0.0) { kurt = (m4 / nn) / ((m2 / nn) * (m2 / nn)) - 3.0; }
    out[3u * col] = amax;
    out[3u * col + 1u] = sqrt(sq);
    out[3u * col + 2u] = kurt;
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
