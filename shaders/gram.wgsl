// Gram matrix of a block of K vectors of length N: C[i][j] = sum_k A(k, i) * A(k, j), where
// A(k, i) = x[k * stride_k + i * stride_i] (WtW over whole rows: stride_k = cols, stride_i = 1;
// WWt over a band of w columns gathered row by row: stride_k = 1, stride_i = w).
// One dispatch writes the rows row0 .. row0 + rows of C (a band of the output that fits one
// binding), so neither the input nor the output has to fit a single buffer.
// 16x16 tiles through workgroup memory; each invocation accumulates one entry with Kahan
// compensation, so the f32 sum over K stays close to the exact one. The host adds the partial
// matrices of successive blocks in f64.

const T: u32 = 16u;

// Rust: `gpu::GramParams`.
struct GramParams {
    k_len: u32,    // K: vectors in this block
    n: u32,        // N: the order of C
    stride_k: u32,
    stride_i: u32,
    row0: u32,     // first row of C written
    rows: u32,     // rows of C written (the output band's height)
    pad0: u32,
    pad1: u32,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> c: array<f32>;
@group(0) @binding(2) var<uniform> p: GramParams;

var<workgroup> ta: array<array<f32, 16>, 16>; // [k][i]
var<workgroup> tb: array<array<f32, 16>, 16>; // [k][j]

fn load(k: u32, i: u32) -> f32 {
    if (k >= p.k_len || i >= p.n) { return 0.0; }
    let v = x[k * p.stride_k + i * p.stride_i];
    if (is_finite_bits(bitcast<u32>(v))) { return v; }
    return 0.0;
}

@compute @workgroup_size(16, 16)
fn gram_tile(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let local_i = wid.y * T + lid.y;
    let i = p.row0 + local_i;
    let j = wid.x * T + lid.x;
    var sum = 0.0;
    var comp = 0.0;
    for (var k0 = 0u; k0 < p.k_len; k0 = k0 + T) {
        // Rows past the band load zeros (their sums are never written).
        var a = 0.0;
        if (wid.y * T + lid.x < p.rows) { a = load(k0 + lid.y, p.row0 + wid.y * T + lid.x); }
        ta[lid.y][lid.x] = a;
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
    if (local_i < p.rows && i < p.n && j < p.n) {
        c[local_i * p.n + j] = sum;
    }
}
