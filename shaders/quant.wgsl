// Integer quantization with groups along rows, compressed-tensors' rule (src/codec/int.rs):
//   group_minmax: (min, max) of the finite values of each group of `group` consecutive values;
//   rtn:          per value, code = round_half_even(clamp(T(T(x / scale) + zp), qmin, qmax)) where
//                 T rounds to the tensor's type (f32, f16 or bf16), decoded T((code - zp) * scale);
//                 per workgroup the error of the decoded values.
// Group parameters (scale, zero point) are computed on the host by the CPU's own function, from
// the min/max found here. WGSL's division may be 2.5 ulp off, so the quotient is corrected to the
// correctly rounded one before anything depends on it: codes match the CPU exactly.

struct QuantParams {
    n: u32,      // values in this chunk
    group: u32,  // values per group
    cols: u32,   // row length (importance is per column)
    flags: u32,  // bits 0-3: bits per code; bit 4: asymmetric; bits 5-6: 0 f32, 1 f16, 2 bf16; bit 7: importance given
    zero: u32,   // always 0: the operand of `opaque`
    col0: u32,   // column of the chunk's first value
    imp_at: u32, // where the importance vector starts in `aux` (after the group parameters)
    _b: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> minmax: array<vec2<f32>>;
@group(0) @binding(2) var<uniform> p: QuantParams;

const BIG: f32 = 3.4028234663852886e38;

@compute @workgroup_size(256)
fn group_minmax(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let g = linear_index(wid, nwg, lid);
    let start = g * p.group;
    if (start >= p.n) { return; }
    var lo = BIG;
    var hi = -BIG;
    var any = false;
    for (var i = start; i < min(start + p.group, p.n); i = i + 1u) {
        let v = x[i];
        if (is_finite_bits(bitcast<u32>(v))) { lo = min(lo, v); hi = max(hi, v); any = true; }
    }
    if (!any) { lo = 0.0; hi = 0.0; }
    minmax[g] = vec2<f32>(lo, hi);
}

// The rtn kernel's resources use binding numbers of their own: one module, two entry points.
@group(0) @binding(3) var<storage, read> qx: array<f32>;
// (scale, zero point) per group, then one importance per column when given (at q.imp_at).
@group(0) @binding(4) var<storage, read> aux: array<f32>;
@group(0) @binding(5) var<storage, read_write> codes: array<i32>;
@group(0) @binding(6) var<storage, read_write> errs: array<vec4<f32>>; // two partials per workgroup
@group(0) @binding(7) var<uniform> q: QuantParams;


fn zero_word() -> u32 {
    return q.zero;
}

@compute @workgroup_size(256)
fn rtn(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    var e = vec4<f32>(0.0, 0.0, 0.0, 0.0);
    var w = vec2<f32>(0.0, 0.0);
    if (i < q.n) {
        let v = qx[i];
        let gi = i / q.group;
        let g = vec2<f32>(aux[2u * gi], aux[2u * gi + 1u]);
        let bits = q.flags & 15u;
        let asym = (q.flags & 16u) != 0u;
        let arith = (q.flags >> 5u) & 3u;
        let qmax = f32((1u << (bits - 1u)) - 1u);
        let qmin = -qmax - 1.0;
        var code = 0;
        var y = 0.0;
        if (is_finite_bits(bitcast<u32>(v))) {
            var scaled = round_to(div_rn(v, g.x), arith);
            if (asym) { scaled = round_to(scaled + g.y, arith); }
            code = i32(round(clamp(scaled, qmin, qmax)));
            y = round_to((f32(code) - g.y) * g.x, arith);
        }
        var imp = 0.0;
        if ((q.flags & 128u) != 0u) { imp = aux[q.imp_at + (q.col0 + i) % q.cols]; }
        add_error(v, y, imp, &e, &w);
        codes[i] = code;
    }
    reduce_errors(lid, linear_group(wid, nwg), e, w, WG);
}
