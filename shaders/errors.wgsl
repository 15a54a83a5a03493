// The error partials every encoder reports, prepended (after common.wgsl) to the files that
// define `errs`: per workgroup two vec4 — (Σ (x − y)², Σ x², max |x − y|, finite values) and
// (Σ importance · (x − y)², non-finite values, 0, 0) — summed in f64 on the host.

var<workgroup> r_err: array<vec4<f32>, 256>;
var<workgroup> r_w: array<vec2<f32>, 256>;

// Adds the error of one decoded value `y` of `v` (weighed by `imp`) to an invocation's sums.
fn add_error(v: f32, y: f32, imp: f32, e: ptr<function, vec4<f32>>, w: ptr<function, vec2<f32>>) {
    if (is_finite_bits(bitcast<u32>(v))) {
        let d = v - y;
        *e = vec4<f32>((*e).x + d * d, (*e).y + v * v, max((*e).z, abs(d)), (*e).w + 1.0);
        (*w).x = (*w).x + imp * d * d;
    } else {
        (*w).y = (*w).y + 1.0;
    }
}

// Reduces the invocations' sums over a workgroup of `size` (a power of two) and writes the
// partials of workgroup `group`. Every invocation must call it.
fn reduce_errors(lid: u32, group: u32, e: vec4<f32>, w: vec2<f32>, size: u32) {
    r_err[lid] = e;
    r_w[lid] = w;
    workgroupBarrier();
    for (var k = size / 2u; k > 0u; k = k >> 1u) {
        if (lid < k) {
            let a = r_err[lid];
            let b = r_err[lid + k];
            r_err[lid] = vec4<f32>(a.x + b.x, a.y + b.y, max(a.z, b.z), a.w + b.w);
            r_w[lid] = r_w[lid] + r_w[lid + k];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        errs[2u * group] = r_err[0];
        errs[2u * group + 1u] = vec4<f32>(r_w[0].x, r_w[0].y, 0.0, 0.0);
    }
}
