// Tile summaries of a region of a row-major matrix (the heatmaps at any level of detail), over
// one chunk of whole rows. One workgroup per tile of the chunk's tile rows: its threads take
// the tile's values in turn (one flat loop, so no invocation loops more than chunk / 256 times:
// Mesa's lavapipe ends any invocation after 65535 loop iterations), then combine up a tree.
// Each tile writes 9 words:
//   max|x|, the value of largest |x| (the first one in row-major order), max |x|·|importance|,
//   Σx and Σx² as (hi, lo) pairs, the count of finite values, the count of NaN/±Inf.
// The maxima and the extreme are decided by comparisons (ties by position) and one correctly
// rounded multiply, so they equal the CPU's bit for bit; the sums are compensated (TwoSum, and
// Dekker's TwoProduct for the squares) and the host adds hi + lo in f64, as the CPU sums in f64.
// The host merges the chunks in row order with the CPU's rule (a later part of a tile wins the
// extreme only with a larger |x|).

struct RegionParams {
    n_cols: u32,     // the matrix's row length
    offset: u32,     // index in `x` of (row ra, column 0)
    ra: u32,         // first matrix row in this chunk
    rb: u32,         // end of the chunk's rows (exclusive, within the region)
    col0: u32,       // the region's columns
    col1: u32,
    row0: u32,       // the region's first row
    tile_rows: u32,
    tile_cols: u32,
    grid_cols: u32,
    ti0: u32,        // the first tile row this dispatch writes
    n_tiles: u32,    // tiles written: whole tile rows from ti0
    has_imp: u32,    // whether `importance` holds one value per column
    zero: u32,       // 0, read at run time (exact.wgsl's `opaque`)
    _a: u32,
    _b: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
@group(0) @binding(2) var<uniform> p: RegionParams;
@group(0) @binding(3) var<storage, read> importance: array<f32>;

fn zero_word() -> u32 {
    return p.zero;
}

var<workgroup> w_max: array<vec4<f32>, 256>; // max|x|, extreme, salience, (unused)
var<workgroup> w_sum: array<vec4<f32>, 256>; // sum hi, sum lo, squares hi, squares lo
var<workgroup> w_n: array<vec4<u32>, 256>;   // count, non-finite, position of the extreme

@compute @workgroup_size(256)
fn region_tiles(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let k = linear_group(wid, nwg);
    if (k >= p.n_tiles) { return; }
    let ti = p.ti0 + k / p.grid_cols;
    let tj = k % p.grid_cols;
    let tr0 = p.row0 + ti * p.tile_rows;
    let r_start = max(tr0, p.ra);
    let r_end = min(tr0 + p.tile_rows, p.rb);
    let c_start = p.col0 + tj * p.tile_cols;
    let w = min(c_start + p.tile_cols, p.col1) - c_start;
    let n = (r_end - r_start) * w;
    var m = vec4<f32>(0.0, 0.0, 0.0, 0.0);
    var s = vec4<f32>(0.0, 0.0, 0.0, 0.0);
    var cnt = vec4<u32>(0u, 0u, 0xffffffffu, 0u);
    for (var i = lid; i < n; i = i + WG) {
        let r = r_start + i / w;
        let c = c_start + i % w;
        let v = x[p.offset + (r - p.ra) * p.n_cols + c];
        if (!is_finite_bits(bitcast<u32>(v))) {
            cnt.y = cnt.y + 1u;
            continue;
        }
        let a = abs(v);
        if (cnt.x == 0u || a > m.x) {
            m = vec4<f32>(a, v, m.z, 0.0);
            cnt.z = i;
        }
        if (p.has_imp != 0u) {
            m.z = max(m.z, opaque(a * abs(importance[c])));
        }
        let t = two_sum(s.x, v);
        let pr = two_prod(v, v);
        let u = two_sum(s.z, pr.x);
        s = vec4<f32>(t.x, s.y + t.y, u.x, s.w + (u.y + pr.y));
        cnt.x = cnt.x + 1u;
    }
    w_max[lid] = m;
    w_sum[lid] = s;
    w_n[lid] = cnt;
    workgroupBarrier();
    for (var h = WG / 2u; h > 0u; h = h >> 1u) {
        if (lid < h) {
            let om = w_max[lid + h];
            let on = w_n[lid + h];
            let os = w_sum[lid + h];
            var mm = w_max[lid];
            var mn = w_n[lid];
            let ms = w_sum[lid];
            if (on.x > 0u && (mn.x == 0u || om.x > mm.x || (om.x == mm.x && on.z < mn.z))) {
                mm = vec4<f32>(om.x, om.y, mm.z, 0.0);
                mn.z = on.z;
            }
            mm.z = max(mm.z, om.z);
            mn = vec4<u32>(mn.x + on.x, mn.y + on.y, mn.z, 0u);
            let t = two_sum(ms.x, os.x);
            let u = two_sum(ms.z, os.z);
            w_max[lid] = mm;
            w_n[lid] = mn;
            w_sum[lid] = vec4<f32>(t.x, ms.y + os.y + t.y, u.x, ms.w + os.w + u.y);
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        let o = 9u * k;
        let mm = w_max[0];
        let ss = w_sum[0];
        let nn = w_n[0];
        out[o] = bitcast<u32>(mm.x);
        out[o + 1u] = bitcast<u32>(mm.y);
        out[o + 2u] = bitcast<u32>(mm.z);
        out[o + 3u] = bitcast<u32>(ss.x);
        out[o + 4u] = bitcast<u32>(ss.y);
        out[o + 5u] = bitcast<u32>(ss.z);
        out[o + 6u] = bitcast<u32>(ss.w);
        out[o + 7u] = nn.x;
        out[o + 8u] = nn.y;
    }
}
