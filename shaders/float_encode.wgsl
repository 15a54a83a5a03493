// Float formats (src/compute/floats.rs): f16 and bf16 (round to nearest even), FP8 E4M3 with a
// scale per tensor or per row (compressed-tensors' float8: x / scale in the tensor's type,
// clamped to ±448, rounded to E4M3 as torch does), and bitsandbytes' NF4 (flat blocks of 64, an
// abs-max each). One code per value in `out` (the host packs them), the decoded values when
// asked, and per workgroup the error of the decoded values.

struct FloatParams {
    n: u32,            // values in this chunk
    kind: u32,         // 0 f16, 1 bf16, 2 fp8, 3 nf4
    cols: u32,         // row length
    flags: u32,        // bits 0-1: arith (0 f32, 1 f16, 2 bf16); 4: importance at aux[imp_at]; 8: decoded at out[y_at]; 16: fp8 scale per row (aux[row])
    zero: u32,         // always 0: the operand of `opaque`
    col0: u32,         // column of the chunk's first value
    imp_at: u32,
    y_at: u32,
    side_at: u32,      // NF4: one abs-max per block in `out`
    tensor_scale: u32, // FP8 per tensor: the scale's bits
    _a: u32,
    _b: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
// FP8: the row scales; NF4: the 16 levels and 15 midpoints (f32, as the CPU computes them);
// then the importance per column when given.
@group(0) @binding(1) var<storage, read> aux: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;
@group(0) @binding(3) var<storage, read_write> errs: array<vec4<f32>>; // two partials per workgroup
@group(0) @binding(4) var<uniform> p: FloatParams;


fn zero_word() -> u32 {
    return p.zero;
}

// f32 to FP8 E4M3 bits (torch's conversion, c10's fp8e4m3fn_from_fp32_value), for |x| ≤ 448.
fn f8_e4m3_code(v: f32) -> u32 {
    let bits = bitcast<u32>(v);
    let sign = (bits >> 24u) & 0x80u;
    let mag = bits & 0x7fffffffu;
    if (mag >= 1139802112u) { return 0x7fu | sign; } // 480.0 = 1087 << 20
    if (mag < 1015021568u) {
        // below 2^-6 (121 << 23): subnormal, by adding 2^14 (141 << 23), whose ulp is the step
        let sum = bitcast<u32>(opaque(bitcast<f32>(mag) + 16384.0));
        return ((sum - 1182793728u) & 0xffu) | sign;
    }
    let mant_odd = (mag >> 20u) & 1u;
    let r = mag - 1006632960u + 0x7ffffu + mant_odd; // rebias the exponent by 120 << 23
    return ((r >> 20u) & 0xffu) | sign;
}

fn f8_e4m3_value(c: u32) -> f32 {
    let sign = (c & 0x80u) << 24u;
    let e = (c >> 3u) & 0xfu;
    let m = c & 7u;
    if (e == 0u) { return bitcast<f32>(sign | bitcast<u32>(f32(m) * 0.001953125)); }
    if (e == 15u && m == 7u) { return nan_f32(); }
    return bitcast<f32>(sign | ((e + 120u) << 23u) | (m << 20u));
}

fn accumulate(v: f32, y: f32, i: u32, e: ptr<function, vec4<f32>>, w: ptr<function, vec2<f32>>) {
    var imp = 0.0;
    if ((p.flags & 4u) != 0u) { imp = aux[p.imp_at + (p.col0 + i) % p.cols]; }
    add_error(v, y, imp, e, w);
}

@compute @workgroup_size(256)
fn elementwise(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    var e = vec4<f32>(0.0, 0.0, 0.0, 0.0);
    var w = vec2<f32>(0.0, 0.0);
    if (i < p.n) {
        let v = x[i];
        let arith = p.flags & 3u;
        var code = 0u;
        var y = 0.0;
        switch (p.kind) {
            case 0u: {
                code = f16_bits(v);
                y = f16_value(code);
            }
            case 1u: {
                code = bf16_bits(v);
                y = bitcast<f32>(code << 16u);
            }
            default: {
                var scale = bitcast<f32>(p.tensor_scale);
                if ((p.flags & 16u) != 0u) { scale = aux[i / p.cols]; }
                let q = clamp(round_to(div_rn(v, scale), arith), -448.0, 448.0);
                code = f8_e4m3_code(q);
                y = round_to(opaque(f8_e4m3_value(code) * scale), arith);
            }
        }
        out[i] = code;
        if ((p.flags & 8u) != 0u) { out[p.y_at + i] = bitcast<u32>(y); }
        accumulate(v, y, i, &e, &w);
    }
    reduce_errors(lid, linear_group(wid, nwg), e, w, 256u);
}

// NF4: one 64-value block per invocation (the tensor's last block may be shorter).
@compute @workgroup_size(64)
fn nf4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let b = linear_group(wid, nwg) * 64u + lid;
    var e = vec4<f32>(0.0, 0.0, 0.0, 0.0);
    var w = vec2<f32>(0.0, 0.0);
    let base = b * 64u;
    if (base < p.n) {
        let end = min(base + 64u, p.n);
        let arith = p.flags & 3u;
        var amax = 0.0;
        for (var i = base; i < end; i = i + 1u) { amax = max(amax, abs(x[i])); }
        out[p.side_at + b] = bitcast<u32>(amax);
        let clamped = max(amax, 1e-38);
        let inv = div_rn(1.0, clamped);
        let full = end - base == 64u;
        for (var i = base; i < end; i = i + 1u) {
            let v = x[i];
            var idx = 7u; // an all-zero block: every value is 0, level 7
            if (amax != 0.0) {
                var scaled = 0.0;
                if (full) { scaled = opaque(v * inv); } else { scaled = div_rn(v, clamped); }
                scaled = clamp(scaled, -1.0, 1.0);
                idx = 0u;
                for (var k = 0u; k < 15u; k = k + 1u) {
                    if (aux[16u + k] < scaled) { idx = idx + 1u; }
                }
            }
            let y = round_to(opaque(aux[idx] * amax), arith);
            out[i] = idx;
            if ((p.flags & 8u) != 0u) { out[p.y_at + i] = bitcast<u32>(y); }
            accumulate(v, y, i, &e, &w);
        }
    }
    reduce_errors(lid, linear_group(wid, nwg), e, w, 64u);
}
