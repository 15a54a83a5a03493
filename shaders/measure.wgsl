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

@compute @workgroup_size(256)
fn measure(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    var e = vec4<f32>(0.0, 0.0, 0.0, 0.0);
    var w = vec2<f32>(0.0, 0.0);
    if (i < p.n) {
        var imp = 0.0;
        if (p.b == 1u) { imp = importance[(p.c + i) % p.a]; }
        add_error(x[i], y[i], imp, &e, &w);
    }
    reduce_errors(lid, linear_group(wid, nwg), e, w, WG);
}
