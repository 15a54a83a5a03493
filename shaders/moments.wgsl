// Block moments: each workgroup takes one block of BLOCK values and writes
//   counts: n (finite), nan, +inf, -inf, zeros           (u32 x 5)
//   stats:  mean, m2, m3, m4, min, max, min|x|>0         (f32 x 7)
// with the central sums taken about the block's own mean (second pass over the block, which
// is in cache by then). The host merges blocks in order, in f64, with Pébay's formulas: the
// same scheme as the CPU kernel, so results agree within f32 rounding of each block.

const BLOCK: u32 = 4096u;

struct Params {
    n: u32,
    _a: u32,
    _b: u32,
    _c: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> counts: array<u32>;
@group(0) @binding(2) var<storage, read_write> stats: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;

var<workgroup> r_n: array<u32, 256>;
var<workgroup> r_sum: array<f32, 256>;
var<workgroup> r_min: array<f32, 256>;
var<workgroup> r_max: array<f32, 256>;
var<workgroup> r_minabs: array<f32, 256>;
var<workgroup> r_c: array<vec4<u32>, 256>; // nan, +inf, -inf, zeros
var<workgroup> r_m: array<vec3<f32>, 256>; // m2, m3, m4

const BIG: f32 = 3.4028234663852886e38;

@compute @workgroup_size(256)
fn block_moments(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let block = linear_group(wid, nwg);
    let start = block * BLOCK;
    let end = min(start + BLOCK, p.n);
    var n = 0u;
    var sum = 0.0;
    var lo = BIG;
    var hi = -BIG;
    var minabs = BIG;
    var c = vec4<u32>(0u, 0u, 0u, 0u);
    for (var i = start + lid; i < end; i = i + WG) {
        let v = x[i];
        let b = bitcast<u32>(v);
        if (is_finite_bits(b)) {
            n = n + 1u;
            sum = sum + v;
            lo = min(lo, v);
            hi = max(hi, v);
            if ((b & 0x7fffffffu) == 0u) {
                c.w = c.w + 1u;
            } else {
                minabs = min(minabs, abs(v));
            }
        } else if (is_nan_bits(b)) {
            c.x = c.x + 1u;
        } else if ((b & 0x80000000u) == 0u) {
            c.y = c.y + 1u;
        } else {
            c.z = c.z + 1u;
        }
    }
    r_n[lid] = n;
    r_sum[lid] = sum;
    r_min[lid] = lo;
    r_max[lid] = hi;
    r_minabs[lid] = minabs;
    r_c[lid] = c;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            r_n[lid] = r_n[lid] + r_n[lid + s];
            r_sum[lid] = r_sum[lid] + r_sum[lid + s];
            r_min[lid] = min(r_min[lid], r_min[lid + s]);
            r_max[lid] = max(r_max[lid], r_max[lid + s]);
            r_minabs[lid] = min(r_minabs[lid], r_minabs[lid + s]);
            r_c[lid] = r_c[lid] + r_c[lid + s];
        }
        workgroupBarrier();
    }
    let total = r_n[0];
    var mean = 0.0;
    if (total > 0u) {
        mean = r_sum[0] / f32(total);
    }
    var m = vec3<f32>(0.0, 0.0, 0.0);
    for (var i = start + lid; i < end; i = i + WG) {
        let v = x[i];
        if (is_finite_bits(bitcast<u32>(v))) {
            let d = v - mean;
            let d2 = d * d;
            m = m + vec3<f32>(d2, d2 * d, d2 * d2);
        }
    }
    r_m[lid] = m;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            r_m[lid] = r_m[lid] + r_m[lid + s];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        let cb = block * 5u;
        counts[cb] = total;
        counts[cb + 1u] = r_c[0].x;
        counts[cb + 2u] = r_c[0].y;
        counts[cb + 3u] = r_c[0].z;
        counts[cb + 4u] = r_c[0].w;
        let sb = block * 7u;
        stats[sb] = mean;
        stats[sb + 1u] = r_m[0].x;
        stats[sb + 2u] = r_m[0].y;
        stats[sb + 3u] = r_m[0].z;
        stats[sb + 4u] = r_min[0];
        stats[sb + 5u] = r_max[0];
        stats[sb + 6u] = r_minabs[0];
    }
}
