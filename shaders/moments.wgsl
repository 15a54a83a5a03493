// Block moments: each workgroup takes one block of BLOCK values and writes
//   counts: n (finite), nan, +inf, -inf, zeros                       (u32 x 5)
//   stats:  c, P1, P2, P3, P4 as (hi, lo) pairs, min, max, min|x|>0   (f32 x 12)
// where c is the shift (the block's mean, rounded as `coarse_shift` says) and Pk = sum (x - c)^k
// over the finite values. Every sum is compensated (each thread keeps a running sum and its rounding error, and
// pairs are added with TwoSum up a tree), so Pk carry only the rounding of each term's powers.
// The host turns shifted sums into exact central sums about the true mean in f64
// (M2 = P2 - P1^2/n, ...) and merges blocks in order with Pebay's formulas: the scheme of the
// CPU kernel, to about 1e-7 relative.

const BLOCK: u32 = 4096u;

// Params4 (common.wgsl): n values; c = 0, read at run time so the compiler cannot see it.

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> counts: array<u32>;
@group(0) @binding(2) var<storage, read_write> stats: array<f32>;
@group(0) @binding(3) var<uniform> p: Params4;

// Reused between the two passes: pass 1 (sum hi, sum lo, min, max) and min|x|; pass 2 the
// four shifted power sums, hi parts in r_a and lo parts in r_b.
var<workgroup> r_a: array<vec4<f32>, 256>;
var<workgroup> r_b: array<vec4<f32>, 256>;
var<workgroup> r_c: array<vec4<u32>, 256>; // nan, +inf, -inf, zeros
var<workgroup> r_n: array<u32, 256>;

const BIG: f32 = 3.4028234663852886e38;

// The operand of exact.wgsl's `opaque`: p.c, which is zero. Shader compilers treat float
// arithmetic as reassociable unless told otherwise (Mesa's NIR folds `(a + b) - a` to `b`), which
// would turn TwoSum's error term into zero.
fn zero_word() -> u32 {
    return p.c;
}

// Adds compensated sums lane by lane: hi parts with TwoSum, errors into the lo parts.
fn add_pairs(ah: vec4<f32>, al: vec4<f32>, bh: vec4<f32>, bl: vec4<f32>) -> array<vec4<f32>, 2> {
    let x = two_sum(ah.x, bh.x);
    let y = two_sum(ah.y, bh.y);
    let z = two_sum(ah.z, bh.z);
    let w = two_sum(ah.w, bh.w);
    return array<vec4<f32>, 2>(vec4<f32>(x.x, y.x, z.x, w.x), al + bl + vec4<f32>(x.y, y.y, z.y, w.y));
}

// The block mean rounded to a multiple of the last place of the block's largest magnitude.
// Then x - c never drops bits of c — which would bias every term alike — and is exact for
// most x (both are multiples of x's last place, and the difference fits in 24 bits).
fn coarse_shift(mean: f32, amax: f32) -> f32 {
    let e = (bitcast<u32>(amax) >> 23u) & 0xffu;
    if (e <= 23u) {
        return mean;
    }
    let q = bitcast<f32>((e - 23u) << 23u);
    return round(mean / q) * q;
}

@compute @workgroup_size(256)
fn block_moments(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let block = linear_group(wid, nwg);
    let start = block * BLOCK;
    let end = min(start + BLOCK, p.n);
    var n = 0u;
    var sum = vec2<f32>(0.0, 0.0);
    var lo = BIG;
    var hi = -BIG;
    var minabs = BIG;
    var c = vec4<u32>(0u, 0u, 0u, 0u);
    for (var i = start + lid; i < end; i = i + WG) {
        let v = x[i];
        let b = bitcast<u32>(v);
        if (is_finite_bits(b)) {
            n = n + 1u;
            let t = two_sum(sum.x, v);
            sum = vec2<f32>(t.x, sum.y + t.y);
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
    r_a[lid] = vec4<f32>(sum.x, sum.y, lo, hi);
    r_b[lid] = vec4<f32>(minabs, 0.0, 0.0, 0.0);
    r_c[lid] = c;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            let a = r_a[lid];
            let o = r_a[lid + s];
            let t = two_sum(a.x, o.x);
            r_a[lid] = vec4<f32>(t.x, a.y + o.y + t.y, min(a.z, o.z), max(a.w, o.w));
            r_b[lid].x = min(r_b[lid].x, r_b[lid + s].x);
            r_n[lid] = r_n[lid] + r_n[lid + s];
            r_c[lid] = r_c[lid] + r_c[lid + s];
        }
        workgroupBarrier();
    }
    // Everyone takes the block's totals before pass 2 reuses the arrays.
    let total = r_n[0];
    let first = r_a[0];
    let least = r_b[0].x;
    let specials = r_c[0];
    var shift = 0.0;
    if (total > 0u) {
        shift = coarse_shift((first.x + first.y) / f32(total), max(abs(first.z), abs(first.w)));
    }
    workgroupBarrier();

    var ph = vec4<f32>(0.0, 0.0, 0.0, 0.0);
    var pl = vec4<f32>(0.0, 0.0, 0.0, 0.0);
    for (var i = start + lid; i < end; i = i + WG) {
        let v = x[i];
        if (is_finite_bits(bitcast<u32>(v))) {
            let d = v - shift;
            let d2 = two_prod(d, d);
            let d3 = two_prod(d2.x, d);
            let d4 = two_prod(d2.x, d2.x);
            let hi = vec4<f32>(d, d2.x, d3.x, d4.x);
            let lo = vec4<f32>(0.0, d2.y, d3.y + d2.y * d, d4.y + 2.0 * d2.x * d2.y);
            let sums = add_pairs(ph, pl, hi, lo);
            ph = sums[0];
            pl = sums[1];
        }
    }
    r_a[lid] = ph;
    r_b[lid] = pl;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s >> 1u) {
        if (lid < s) {
            let sums = add_pairs(r_a[lid], r_b[lid], r_a[lid + s], r_b[lid + s]);
            r_a[lid] = sums[0];
            r_b[lid] = sums[1];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        let cb = block * 5u;
        counts[cb] = total;
        counts[cb + 1u] = specials.x;
        counts[cb + 2u] = specials.y;
        counts[cb + 3u] = specials.z;
        counts[cb + 4u] = specials.w;
        let sb = block * 12u;
        let h = r_a[0];
        let l = r_b[0];
        stats[sb] = shift;
        stats[sb + 1u] = h.x;
        stats[sb + 2u] = l.x;
        stats[sb + 3u] = h.y;
        stats[sb + 4u] = l.y;
        stats[sb + 5u] = h.z;
        stats[sb + 6u] = l.z;
        stats[sb + 7u] = h.w;
        stats[sb + 8u] = l.w;
        stats[sb + 9u] = first.z;
        stats[sb + 10u] = first.w;
        stats[sb + 11u] = least;
    }
}
