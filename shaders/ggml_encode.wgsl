// llama.cpp's reference encoders of the legacy block types (quantize_row_q{8_0,4_0,4_1,5_0,5_1}_ref,
// as src/codec/ggml/legacy.rs follows them), one 32-value block per invocation: the block's
// scale (and minimum) as f16 bits and its 32 codes, which the host packs into ggml's layout; and
// per workgroup the error of the decoded values. Every division is corrected to the correctly
// rounded quotient and every product kept from fusing with the next addition, so the codes are
// the CPU's bit for bit.

struct EncodeParams {
    n: u32,      // values in this chunk (whole blocks)
    kind: u32,   // 0 Q8_0, 1 Q4_0, 2 Q4_1, 3 Q5_0, 4 Q5_1
    cols: u32,   // row length (importance is per column)
    flags: u32,  // bit 0: importance given (in `aux`)
    zero: u32,   // always 0: the operand of `opaque`
    col0: u32,   // column of the chunk's first value
    scales_at: u32, // where the per-block (d, m) f16 bits start in `out`, after one code per value
    _a: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> aux: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;
@group(0) @binding(3) var<storage, read_write> errs: array<vec4<f32>>; // two partials per workgroup
@group(0) @binding(4) var<uniform> p: EncodeParams;

const BLOCKS_PER_WG: u32 = 64u;

fn zero_word() -> u32 {
    return p.zero;
}

// `d ? 1/d : 0`.
fn inverse(d: f32) -> f32 {
    if (d != 0.0) { return div_rn(1.0, d); }
    return 0.0;
}

// C's roundf: half away from zero.
fn round_away(v: f32) -> f32 {
    let t = trunc(v);
    if (abs(v - t) >= 0.5) { return t + sign(v); }
    return t;
}

@compute @workgroup_size(64)
fn legacy(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let b = linear_group(wid, nwg) * BLOCKS_PER_WG + lid;
    var e = vec4<f32>(0.0, 0.0, 0.0, 0.0);
    var w = vec2<f32>(0.0, 0.0);
    if (b * 32u < p.n) {
        let base = b * 32u;
        // Range and the value of largest magnitude (the first, on ties), as ggml's loops.
        var amax = 0.0;
        var vmax = 0.0;
        var lo = 3.4028234663852886e38;
        var hi = -3.4028234663852886e38;
        for (var j = 0u; j < 32u; j = j + 1u) {
            let v = x[base + j];
            if (amax < abs(v)) { amax = abs(v); vmax = v; }
            if (v < lo) { lo = v; }
            if (v > hi) { hi = v; }
        }
        var d = 0.0;
        var m = 0.0;
        var nmax = 0.0;
        switch (p.kind) {
            case 0u: { d = div_rn(amax, 127.0); }
            case 1u: { d = div_rn(vmax, -8.0); nmax = 8.0; }
            case 3u: { d = div_rn(vmax, -16.0); nmax = 16.0; }
            case 2u: { d = div_rn(opaque(hi - lo), 15.0); m = lo; nmax = 15.0; }
            default: { d = div_rn(opaque(hi - lo), 31.0); m = lo; nmax = 31.0; }
        }
        let id = inverse(d);
        let d_bits = f16_bits(d);
        let m_bits = f16_bits(m);
        let dv = f16_value(d_bits);
        let mv = f16_value(m_bits);
        for (var j = 0u; j < 32u; j = j + 1u) {
            let v = x[base + j];
            var y = 0.0;
            var code = 0u;
            switch (p.kind) {
                case 0u: {
                    let q = i32(round_away(opaque(v * id)));
                    code = bitcast<u32>(q) & 0xffu;
                    y = opaque(dv * f32(q));
                }
                case 1u, 3u: {
                    let q = min(i32(2.0 * nmax) - 1, i32(trunc(opaque(v * id) + (nmax + 0.5))));
                    code = u32(q);
                    y = opaque(dv * f32(q - i32(nmax)));
                }
                default: {
                    let q = min(i32(nmax), i32(trunc(opaque(opaque(v - m) * id) + 0.5)));
                    code = u32(q);
                    y = opaque(dv * f32(q)) + mv;
                }
            }
            out[base + j] = code;
            var imp = 0.0;
            if ((p.flags & 1u) != 0u) { imp = aux[(p.col0 + base + j) % p.cols]; }
            add_error(v, y, imp, &e, &w);
        }
        out[p.scales_at + 2u * b] = d_bits;
        out[p.scales_at + 2u * b + 1u] = m_bits;
    }
    reduce_errors(lid, linear_group(wid, nwg), e, w, BLOCKS_PER_WG);
}
