// Integer round-to-nearest quantization with groups along rows (symmetric, `bits` wide):
//   group_absmax: max |x| of each group of `group` consecutive values;
//   rtn:          code = clamp(round(x * inv_scale[g]), -qmax, qmax)  (round: ties to even),
//                 and per workgroup the error of the decoded values code * scale[g]:
//                 (sum of (x - x')^2, sum of x^2, max |x - x'|, finite values).
// Scales and their reciprocals are computed on the host with IEEE division, so the only
// arithmetic here is one correctly rounded multiply before rounding: codes match the CPU exactly.

// Params4 (common.wgsl): n values, a = values per group, b = qmax.

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> absmax: array<f32>;
@group(0) @binding(2) var<uniform> p: Params4;

@compute @workgroup_size(256)
fn group_absmax(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let g = linear_index(wid, nwg, lid);
    let start = g * p.a;
    if (start >= p.n) { return; }
    var m = 0.0;
    for (var i = start; i < min(start + p.a, p.n); i = i + 1u) {
        let v = x[i];
        if (is_finite_bits(bitcast<u32>(v))) { m = max(m, abs(v)); }
    }
    absmax[g] = m;
}

// The rtn kernel's resources use binding numbers of their own: one module, two entry points.
@group(0) @binding(3) var<storage, read> qx: array<f32>;
@group(0) @binding(4) var<storage, read> scales: array<vec2<f32>>; // (scale, 1/scale) per group
@group(0) @binding(5) var<storage, read_write> codes: array<i32>;
@group(0) @binding(6) var<storage, read_write> errs: array<vec4<f32>>; // one partial per workgroup
@group(0) @binding(7) var<uniform> q: Params4;

var<workgroup> r_err: array<vec4<f32>, 256>;

@compute @workgroup_size(256)
fn rtn(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    var e = vec4<f32>(0.0, 0.0, 0.0, 0.0);
    if (i < q.n) {
        let v = qx[i];
        let s = scales[i / q.a];
        var code = 0;
        if (is_finite_bits(bitcast<u32>(v))) {
            let qm = f32(q.b);
            code = i32(clamp(round(v * s.y), -qm, qm));
            let d = v - f32(code) * s.x;
            e = vec4<f32>(d * d, v * v, abs(d), 1.0);
        }
        codes[i] = code;
    }
    r_err[lid] = e;
    workgroupBarrier();
    for (var k = WG / 2u; k > 0u; k = k >> 1u) {
        if (lid < k) {
            let a = r_err[lid];
            let b = r_err[lid + k];
            r_err[lid] = vec4<f32>(a.x + b.x, a.y + b.y, max(a.z, b.z), a.w + b.w);
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        errs[linear_group(wid, nwg)] = r_err[0];
    }
}
