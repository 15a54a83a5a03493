// Shared helpers and parameter blocks, prepended to every kernel file at build time (see
// src/compute/gpu/shaders.rs). Indexing: kernels are dispatched as a 2-D grid of workgroups (x up
// to 65535) so that any number of values can be covered; `linear_index` flattens it back.

const WG: u32 = 256u;

// The four-word parameter block most kernels take (Rust: `gpu::Params4`): a count `n` and three
// words whose meaning each kernel file states.
struct Params4 {
    n: u32,
    a: u32,
    b: u32,
    c: u32,
}

// The parameter block of kernels over a matrix cut into tiles (Rust: `gpu::MatrixParams`).
struct MatrixParams {
    rows: u32,
    cols: u32,
    tile_rows: u32,
    tile_cols: u32,
    grid_rows: u32,
    grid_cols: u32,
    _a: u32,
    _b: u32,
}

fn linear_group(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.y * nwg.x + wid.x;
}

fn linear_index(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return linear_group(wid, nwg) * WG + lid;
}

// Float classification on the bits: WGSL lets implementations assume arithmetic never sees
// NaN or infinity, so these never compare floats.
fn is_finite_bits(b: u32) -> bool {
    return (b & 0x7f800000u) != 0x7f800000u;
}

fn is_nan_bits(b: u32) -> bool {
    return (b & 0x7f800000u) == 0x7f800000u && (b & 0x007fffffu) != 0u;
}

fn nan_f32() -> f32 {
    return bitcast<f32>(0x7fc00000u);
}
