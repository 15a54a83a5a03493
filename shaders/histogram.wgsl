// Histogram and outlier counts in one pass. Bin membership is decided by comparisons against
// the f32 thresholds (bin i holds t[i] <= v < t[i+1]; the last also v == t[bins]) exactly as
// the CPU kernel decides it, so counts are identical; the arithmetic guess only picks where
// the comparisons start. Workgroup-local atomics, then one global add per bin per workgroup.

// Counters in workgroup memory, two outlier counters beside them: (4080 + 2) x 4 bytes stay
// within the 16352 bytes every adapter offers (wgpu's downlevel limits).
const MAX_BINS: u32 = 4080u;

struct Params {
    n: u32,
    bins: u32,
    log_abs: u32,  // 0: bin x, 1: bin |x| of non-zero values
    n_bounds: u32, // outlier bound pairs used (0..2)
    lo: f32,       // t[0]
    hi: f32,       // t[bins]
    scale: f32,    // bins per unit of x (linear) or of log10|x| (log)
    log_lo: f32,   // log10(t[0]) for log bins
    b0: vec2<f32>, // outlier bounds (lo, hi): outside means outlier
    b1: vec2<f32>,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> t: array<f32>;
@group(0) @binding(2) var<storage, read_write> counts: array<atomic<u32>>; // bins, then outliers
@group(0) @binding(3) var<uniform> p: Params;

var<workgroup> local_bins: array<atomic<u32>, MAX_BINS>;
var<workgroup> local_out: array<atomic<u32>, 2>;

fn settle(v: f32, guess: u32) -> u32 {
    var i = min(guess, p.bins - 1u);
    loop {
        if (i > 0u && v < t[i]) { i = i - 1u; } else { break; }
    }
    loop {
        if (i + 1u < p.bins && v >= t[i + 1u]) { i = i + 1u; } else { break; }
    }
    return i;
}

@compute @workgroup_size(256)
fn histogram(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    for (var b = lid; b < p.bins; b = b + WG) {
        atomicStore(&local_bins[b], 0u);
    }
    if (lid < 2u) {
        atomicStore(&local_out[lid], 0u);
    }
    workgroupBarrier();
    let stride = nwg.x * nwg.y * WG;
    var out0 = 0u;
    var out1 = 0u;
    for (var i = linear_index(wid, nwg, lid); i < p.n; i = i + stride) {
        let v = x[i];
        let bits = bitcast<u32>(v);
        if (!is_finite_bits(bits)) { continue; }
        if (p.n_bounds > 0u && (v < p.b0.x || v > p.b0.y)) { out0 = out0 + 1u; }
        if (p.n_bounds > 1u && (v < p.b1.x || v > p.b1.y)) { out1 = out1 + 1u; }
        if (p.log_abs == 0u) {
            if (v >= p.lo && v <= p.hi) {
                let g = u32(max((v - p.lo) * p.scale, 0.0));
                atomicAdd(&local_bins[settle(v, g)], 1u);
            }
        } else {
            let a = abs(v);
            if ((bits & 0x7fffffffu) != 0u && a >= p.lo && a <= p.hi) {
                let g = u32(max((log2(a) * 0.30102999566398120 - p.log_lo) * p.scale, 0.0));
                atomicAdd(&local_bins[settle(a, g)], 1u);
            }
        }
    }
    if (out0 > 0u) { atomicAdd(&local_out[0], out0); }
    if (out1 > 0u) { atomicAdd(&local_out[1], out1); }
    workgroupBarrier();
    for (var b = lid; b < p.bins; b = b + WG) {
        let c = atomicLoad(&local_bins[b]);
        if (c > 0u) { atomicAdd(&counts[b], c); }
    }
    if (lid < 2u) {
        let c = atomicLoad(&local_out[lid]);
        if (c > 0u) { atomicAdd(&counts[p.bins + lid], c); }
    }
}
