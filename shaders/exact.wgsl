// Exact arithmetic helpers, prepended after common.wgsl to the files that use them (moments,
// the encoders quant, ggml_encode and float_encode, and region). Each such file defines `zero_word()`, a uniform
// that is always 0, so that `opaque` can hide values from the compiler's reassociation and
// fused multiply-adds.

fn opaque(v: f32) -> f32 {
    return bitcast<f32>(bitcast<u32>(v) ^ zero_word());
}

// a + b as an unevaluated pair (sum, rounding error): Knuth's TwoSum, exact for any a, b.
fn two_sum(a: f32, b: f32) -> vec2<f32> {
    let s = opaque(a + b);
    let bb = opaque(s - a);
    let e = (a - opaque(s - bb)) + (b - bb);
    return vec2<f32>(s, e);
}

// Veltkamp's split: hi + lo with 12 significant bits each.
fn split(a: f32) -> vec2<f32> {
    let c = opaque(4097.0 * a);
    let hi = opaque(c - opaque(c - a));
    return vec2<f32>(hi, a - hi);
}

// Dekker's TwoProduct: a·b = prod + err exactly, without a fused multiply-add.
fn two_prod(a: f32, b: f32) -> vec2<f32> {
    let prod = opaque(a * b);
    let xs = split(a);
    let ys = split(b);
    let err = ((opaque(xs.x * ys.x - prod) + xs.x * ys.y) + xs.y * ys.x) + xs.y * ys.y;
    return vec2<f32>(prod, err);
}

// The float next to `v` in the direction of `dir`'s sign (v finite, not zero).
fn step_toward(v: f32, dir: f32) -> f32 {
    let u = bitcast<u32>(v);
    if ((dir > 0.0) == (v > 0.0)) { return bitcast<f32>(u + 1u); }
    return bitcast<f32>(u - 1u);
}

// a / b rounded correctly (to nearest): the device's quotient (WGSL allows 2.5 ulp) is moved one
// float at a time while the residual a − q·b (a − p exact by Sterbenz's lemma, e from
// TwoProduct) says the neighbour in its direction is nearer. A quotient of two floats is never
// halfway between two floats.
fn div_rn(a: f32, b: f32) -> f32 {
    var qt = a / b;
    for (var k = 0; k < 4; k = k + 1) {
        if (qt == 0.0 || !is_finite_bits(bitcast<u32>(qt))) { break; }
        let pe = two_prod(qt, b);
        let r = opaque(a - pe.x) - pe.y;
        if (r == 0.0) { break; }
        let next = step_toward(qt, sign(r) * sign(b));
        if (abs(r) <= abs(next - qt) * 0.5 * abs(b)) { break; }
        qt = next;
    }
    return qt;
}

// IEEE binary16 bits of v, rounded to nearest even (subnormals; 65520 and beyond to infinity;
// NaN quiet with its top payload bits), as the `half` crate and GGML_FP32_TO_FP16 give them.
fn f16_bits(v: f32) -> u32 {
    let u = bitcast<u32>(v);
    let sign = (u >> 16u) & 0x8000u;
    let a = u & 0x7fffffffu;
    if (a >= 0x7f800000u) {
        if (a == 0x7f800000u) { return sign | 0x7c00u; }
        return sign | 0x7e00u | ((a & 0x7fffffu) >> 13u);
    }
    if (a >= 0x477ff000u) { return sign | 0x7c00u; }
    if (a < 0x38800000u) {
        // below 2^-14: the subnormal mantissa is v·2^24 rounded (ties to even)
        return sign | u32(round(bitcast<f32>(a) * 16777216.0));
    }
    var h = (((a >> 23u) - 112u) << 10u) | ((a & 0x7fffffu) >> 13u);
    let rest = a & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u) == 1u)) { h = h + 1u; }
    return sign | h;
}

// The value of f16 bits, exactly (from the bits: unpack2x16float needs a capability that
// downlevel devices lack).
fn f16_value(bits: u32) -> f32 {
    let e = (bits >> 10u) & 0x1fu;
    let m = bits & 0x3ffu;
    let sign = (bits & 0x8000u) << 16u;
    if (e == 0u) {
        // subnormal or zero: m · 2^-24, exact
        return bitcast<f32>(sign | bitcast<u32>(f32(m) * 5.9604644775390625e-8));
    }
    if (e == 31u) {
        return bitcast<f32>(sign | 0x7f800000u | (m << 13u));
    }
    return bitcast<f32>(sign | ((e + 112u) << 23u) | (m << 13u));
}

// bfloat16 bits of v, rounded to nearest even (NaN made quiet), as the `half` crate gives them.
fn bf16_bits(v: f32) -> u32 {
    let u = bitcast<u32>(v);
    if ((u & 0x7fffffffu) > 0x7f800000u) { return (u >> 16u) | 0x40u; }
    return (u + 0x7fffu + ((u >> 16u) & 1u)) >> 16u;
}

// Rounds to the tensor's type: 0 f32, 1 f16, 2 bf16.
fn round_to(v: f32, arith: u32) -> f32 {
    if (arith == 1u) { return f16_value(f16_bits(v)); }
    if (arith == 2u) { return bitcast<f32>(bf16_bits(v) << 16u); }
    return v;
}
