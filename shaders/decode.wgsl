// Decode stored tensor bytes to f32 on the GPU, so uploads stay at the stored size.
// One invocation per output value; block formats read their block's scale(s) and the bits of
// their one value. Layouts and operation order follow src/codec (ggml-common.h for the blocks).

// Params4 (common.wgsl): n values to decode.

@group(0) @binding(0) var<storage, read> src: array<u32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<uniform> p: Params4;

fn byte_at(i: u32) -> u32 {
    return (src[i >> 2u] >> ((i & 3u) * 8u)) & 0xffu;
}

fn u16_at(i: u32) -> u32 {
    return byte_at(i) | (byte_at(i + 1u) << 8u);
}

fn u32_at(i: u32) -> u32 {
    return u16_at(i) | (u16_at(i + 2u) << 16u);
}

// IEEE half to f32, exactly (normals, subnormals, ±0, ±Inf, NaN), without unpack2x16float,
// whose result WGSL leaves open for some inputs.
fn half_to_f32(h: u32) -> f32 {
    let sign = (h & 0x8000u) << 16u;
    let e = (h >> 10u) & 0x1fu;
    let m = h & 0x3ffu;
    if (e == 0u) {
        // subnormal or zero: m * 2^-24, exact in f32
        let v = f32(m) * 5.9604644775390625e-8;
        return bitcast<f32>(bitcast<u32>(v) | sign);
    }
    if (e == 31u) {
        return bitcast<f32>(sign | 0x7f800000u | (m << 13u));
    }
    return bitcast<f32>(sign | ((e + 112u) << 23u) | (m << 13u));
}

fn f16_at(i: u32) -> f32 {
    return half_to_f32(u16_at(i));
}

fn sext8(b: u32) -> i32 {
    return bitcast<i32>(b << 24u) >> 24u;
}

@compute @workgroup_size(256)
fn decode_f32(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    if (i >= p.n) { return; }
    dst[i] = bitcast<f32>(src[i]);
}

@compute @workgroup_size(256)
fn decode_f16(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    if (i >= p.n) { return; }
    dst[i] = half_to_f32((src[i >> 1u] >> ((i & 1u) * 16u)) & 0xffffu);
}

@compute @workgroup_size(256)
fn decode_bf16(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    if (i >= p.n) { return; }
    let bits = (src[i >> 1u] >> ((i & 1u) * 16u)) & 0xffffu;
    dst[i] = bitcast<f32>(bits << 16u);
}

// OCP FP8 E4M3 (finite-only): bias 7, S.1111.111 is NaN.
@compute @workgroup_size(256)
fn decode_f8_e4m3(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    if (i >= p.n) { return; }
    let b = byte_at(i);
    let sign = (b & 0x80u) << 24u;
    let e = (b >> 3u) & 0xfu;
    let m = b & 7u;
    var v: f32;
    if (e == 15u && m == 7u) {
        v = nan_f32();
    } else if (e == 0u) {
        v = bitcast<f32>(bitcast<u32>(f32(m) * 0.001953125) | sign); // m/8 * 2^-6
    } else {
        v = bitcast<f32>(sign | ((e + 120u) << 23u) | (m << 20u));
    }
    dst[i] = v;
}

// OCP FP8 E5M2: the top byte of an IEEE half.
@compute @workgroup_size(256)
fn decode_f8_e5m2(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    if (i >= p.n) { return; }
    dst[i] = half_to_f32(byte_at(i) << 8u);
}

// ggml Q8_0: d: f16, qs: i8[32]; y = d * q.
@compute @workgroup_size(256)
fn decode_q8_0(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    if (i >= p.n) { return; }
    let base = (i / 32u) * 34u;
    let j = i % 32u;
    dst[i] = f16_at(base) * f32(sext8(byte_at(base + 2u + j)));
}

// ggml Q4_0: d: f16, qs: u8[16]; y = d * (q - 8); low nibbles are values 0..16.
@compute @workgroup_size(256)
fn decode_q4_0(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    if (i >= p.n) { return; }
    let base = (i / 32u) * 18u;
    let j = i % 32u;
    let byte = byte_at(base + 2u + (j % 16u));
    let q = select(byte >> 4u, byte & 0xfu, j < 16u);
    dst[i] = f16_at(base) * f32(i32(q) - 8);
}

// ggml Q4_1: d, m: f16, qs: u8[16]; y = d * q + m.
@compute @workgroup_size(256)
fn decode_q4_1(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    if (i >= p.n) { return; }
    let base = (i / 32u) * 20u;
    let j = i % 32u;
    let byte = byte_at(base + 4u + (j % 16u));
    let q = select(byte >> 4u, byte & 0xfu, j < 16u);
    dst[i] = f16_at(base) * f32(q) + f16_at(base + 2u);
}

// ggml Q5_0: d: f16, qh: u32, qs: u8[16]; y = d * (q - 16), q of 5 bits (bit 4 from qh bit j).
@compute @workgroup_size(256)
fn decode_q5_0(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    if (i >= p.n) { return; }
    let base = (i / 32u) * 22u;
    let j = i % 32u;
    let byte = byte_at(base + 6u + (j % 16u));
    let low = select(byte >> 4u, byte & 0xfu, j < 16u);
    let high = ((u32_at(base + 2u) >> j) & 1u) << 4u;
    dst[i] = f16_at(base) * f32(i32(low | high) - 16);
}

// ggml Q5_1: d, m: f16, qh: u32, qs: u8[16]; y = d * q + m.
@compute @workgroup_size(256)
fn decode_q5_1(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    if (i >= p.n) { return; }
    let base = (i / 32u) * 24u;
    let j = i % 32u;
    let byte = byte_at(base + 8u + (j % 16u));
    let low = select(byte >> 4u, byte & 0xfu, j < 16u);
    let high = ((u32_at(base + 4u) >> j) & 1u) << 4u;
    dst[i] = f16_at(base) * f32(low | high) + f16_at(base + 2u);
}

// The 6-bit scale and minimum of sub-block g of a Q4_K/Q5_K block whose scales start at `s`.
fn scale_min_k4(s: u32, g: u32) -> vec2<u32> {
    if (g < 4u) {
        return vec2<u32>(byte_at(s + g) & 63u, byte_at(s + g + 4u) & 63u);
    }
    let sc = (byte_at(s + g + 4u) & 0xfu) | ((byte_at(s + g - 4u) >> 6u) << 4u);
    let m = (byte_at(s + g + 4u) >> 4u) | ((byte_at(s + g) >> 6u) << 4u);
    return vec2<u32>(sc, m);
}

// ggml Q4_K: d, dmin: f16, scales: u8[12], qs: u8[128]; y = (d*sc)*q - dmin*m.
@compute @workgroup_size(256)
fn decode_q4_k(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    if (i >= p.n) { return; }
    let base = (i / 256u) * 144u;
    let j = i % 256u;
    let chunk = j / 64u;
    let nib = (j % 64u) / 32u;
    let l = j % 32u;
    let g = chunk * 2u + nib;
    let sm = scale_min_k4(base + 4u, g);
    let q = (byte_at(base + 16u + chunk * 32u + l) >> (4u * nib)) & 0xfu;
    let dl = f16_at(base) * f32(sm.x);
    let ml = f16_at(base + 2u) * f32(sm.y);
    dst[i] = dl * f32(q) - ml;
}

// ggml Q5_K: d, dmin: f16, scales: u8[12], qh: u8[32], qs: u8[128].
@compute @workgroup_size(256)
fn decode_q5_k(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    if (i >= p.n) { return; }
    let base = (i / 256u) * 176u;
    let j = i % 256u;
    let chunk = j / 64u;
    let nib = (j % 64u) / 32u;
    let l = j % 32u;
    let g = chunk * 2u + nib;
    let sm = scale_min_k4(base + 4u, g);
    let low = (byte_at(base + 48u + chunk * 32u + l) >> (4u * nib)) & 0xfu;
    let high = ((byte_at(base + 16u + l) >> g) & 1u) << 4u;
    let dl = f16_at(base) * f32(sm.x);
    let ml = f16_at(base + 2u) * f32(sm.y);
    dst[i] = dl * f32(low | high) - ml;
}

// ggml Q6_K: ql: u8[128], qh: u8[64], scales: i8[16], d: f16; y = (d*scale)*(q - 32).
@compute @workgroup_size(256)
fn decode_q6_k(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    if (i >= p.n) { return; }
    let base = (i / 256u) * 210u;
    let e = i % 256u;
    let half = e / 128u;
    let k = (e % 128u) / 32u;
    let l = e % 32u;
    let low = (byte_at(base + half * 64u + (k % 2u) * 32u + l) >> (4u * (k / 2u))) & 0xfu;
    let high = ((byte_at(base + 128u + half * 32u + l) >> (2u * k)) & 3u) << 4u;
    let q = i32(low | high) - 32;
    let sc = f32(sext8(byte_at(base + 192u + e / 16u)));
    dst[i] = (f16_at(base + 208u) * sc) * f32(q);
}
