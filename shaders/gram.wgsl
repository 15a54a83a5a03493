// Gram matrix of a block of K vectors of length N: C[i][j] = sum_k A(k, i) * A(k, j), where
// A(k, i) = x[k * stride_k + i * stride_i] (WtW: stride_k = cols, stride_i = 1; WWt: the reverse).
// 16x16 tiles through workgroup memory; each invocation accumulates one entry with Kahan
// compensation, so the f32 sum over K stays close to the exact one. The host adds the partial
// matrices of successive blocks in f64.

const T: u32 = 16u;

// Params4 (common.wgsl): n = K (vectors in this block), a = N (the order), b = stride_k,
// c = stride_i.

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> c: array<f32>;
@group(0) @binding(2) var<uniform> p: Params4;

var<workgroup> ta: array<array<f32, 16>, 16>; // [k][i]
var<workgroup> tb: array<array<f32, 16>, 16>; // [k][j]

fn load(k: u32, i: u32) -> f32 {
    if (k >= p.n || i >= p.a) { return 0.0; }
    let v = x[k * p.b + i * p.c];
    if (is_finite_bits(bitcast<u32>(v))) { return v; }
    return 0.0;
}

@compute @workgroup_size(16, 16)
fn gram_tile(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = wid.y * T + lid.y;
    let j = wid.x * T + lid.x;
    var sum = 0.0;
    var comp = 0.0;
    for (var k0 = 0u; k0 < p.n; k0 = k0 + T) {
        ta[lid.y][lid.x] = load(k0 + lid.y, wid.y * T + lid.x);
        tb[lid.y][lid.x] = load(k0 + lid.y, wid.x * T + lid.x);
        workgroupBarrier();
        for (var k = 0u; k < T; k = k + 1u) {
            let term = ta[k][lid.y] * tb[k][lid.x] - comp;
            let next = sum + term;
            comp = (next - sum) - term;
            sum = next;
        }
        workgroupBarrier();
    }
    if (i < p.a && j < p.a) {
        c[i * p.a + j] = sum;
    }
}
