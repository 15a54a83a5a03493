// The error of decoded values y against the values x, per workgroup: (Σ (x − y)², Σ x²,
// max |x − y|, finite values) and (Σ imp_col · (x − y)², non-finite values). Used where the
// codes were made elsewhere (llama.cpp's K-quant searches on the CPU) and both sides are decoded
// on the device.

// Params4: n values, a = row length, b = 1 when an importance per column is given, c = column of
// the first value.

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read> importance: array<f32>;
@group(0) @binding(3) var<storage, read_write> errs: array<vec4<f32>>;
@group(0) @binding(4) var<uniform> p: Params4;

var<workgroup> r_err: array<vec4<f32>, 256>;
var<workgroup> r_w: array<vec2<f32>, 256>;

@compute @workgroup_size(256)
fn measure(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    var e = vec4<f32>(0.0, 0.0, 0.0, 0.0);
    var w = vec2<f32>(0.0, 0.0);
    if (i < p.n) {
        let v = x[i];
        if (is_finite_bits(bitcast<u32>(v))) {
            let d = v - y[i];
            e = vec4<f32>(d * d, v * v, abs(d), 1.0);
            if (p.b == 1u) { w.x = importance[(p.c + i) % p.a] * d * d; }
        } else {
            w.y = 1.0;
        }
    }
    r_err[lid] = e;
    r_w[lid] = w;
    workgroupBarrier();
    for (var k = WG / 2u; k > 0u; k = k >> 1u) {
        if (lid < k) {
            let a = r_err[lid];
            let b = r_err[lid + k];
            r_err[lid] = vec4<f32>(a.x + b.x, a.y + b.y, max(a.z, b.z), a.w + b.w);
            r_w[lid] = r_w[lid] + r_w[lid + k];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        let g = linear_group(wid, nwg);
        errs[2u * g] = r_err[0];
        errs[2u * g + 1u] = vec4<f32>(r_w[0].x, r_w[0].y, 0.0, 0.0);
    }
}
