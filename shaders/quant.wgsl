// Integer round-to-nearest quantization with groups along rows (symmetric, `bits` wide):
//   group_absmax: max |x| of each group of `group` consecutive values;
//   rtn:          code = clamp(round(x * inv_scale[g]), -qmax, qmax)  (round: ties to even),
//                 and the squared error (x - code * scale[g])^2 summed per workgroup.
// Scales and their reciprocals are computed on the host with IEEE division, so the only
// arithmetic here is one correctly rounded multiply before rounding: codes match the CPU exactly.

struct Params {
    n: u32,
    group: u32,
    qmax: u32,
    _a: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> absmax: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(256)
fn group_absmax(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let g = linear_index(wid, nwg, lid);
    let start = g * p.group;
    if (start >= p.n) { return; }
    var m = 0.0;
    for (var i = start; i < min(start + p.group, p.n); i = i + 1u) {
        let v = x[i];
        if (is_finite_bits(bitcast<u32>(v))) { m = max(m, abs(v)); }
    }
    absmax[g] = m;
}

// The rtn kernel's resources use binding numbers of their own: one module, two entry points.
@group(0) @binding(3) var<storage, read> qx: array<f32>;
@group(0) @binding(4) var<storage, read> scales: array<vec2<f32>>; // (scale, 1/scale) per group
@group(0) @binding(5) var<storage, read_write> codes: array<i32>;
@group(0) @binding(6) var<storage, read_write> errs: array<f32>;   // one partial per workgroup
@group(0) @binding(7) var<uniform> q: Params;

var<workgroup> r_err: array<f32, 256>;

@compute @workgroup_size(256)
fn rtn(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let i = linear_index(wid, nwg, lid);
    var e = 0.0;
    if (i < q.n) {
        let v = qx[i];
        let s = scales[i / q.group];
        var code = 0;
        if (is_finite_bits(bitcast<u32>(v))) {
            let qm = f32(q.qmax);
            code = i32(clamp(round(v * s.y), -qm, qm));
            let d = v - f32(code) * s.x;
            e = d * d;
        }
        codes[i] = code;
    }
    r_err[lid] = e;
    workgroupBarrier();
    for (var k = WG / 2u; k > 0u; k = k >> 1u) {
        if (lid < k) {
            r_err[lid] = r_err[lid] + r_err[lid + k];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        errs[linear_group(wid, nwg)] = r_err[0];
    }
}
