//! `x · Wᵀ` with our own register-tiled kernel (SIMD chosen at run time).
//!
//! Why not faer here: the forward pass sums products in f32 blocks of [`K_BLOCK`] terms and adds
//! the blocks in f64 (see [`super::linalg::matmul`]). Through faer that is one call per block,
//! each repacking both operands, writing its f32 result to memory and reading it back for the f64
//! sum. Here a tile of `MR` features × `2·lanes` tokens keeps its f32 block sums in registers for
//! the whole block and adds them straight into its f64 accumulators. The weights are never
//! packed: the kernel broadcasts `MR` of their rows straight from the checkpoint's row-major
//! layout (each row a sequential stream); only the activations `x` are packed, once per call,
//! into panels of `2·lanes` tokens.

use std::cell::RefCell;
use std::thread::LocalKey;

use faer::MatMut;
use pulp::{NullaryFnOnce, Simd};
use rayon::prelude::*;

/// Terms summed in f32 before they are added in f64 (the same blocks as `linalg::matmul`).
pub const K_BLOCK: usize = 128;

/// Output features per parallel task.
const BAND: usize = 96;

/// Parallel tasks wanted per thread; tokens are split only when the bands alone are fewer.
const TASKS_PER_THREAD: usize = 4;

/// `x · Wᵀ` for `x` of `t × n` and `w` of `out × n` (both row-major): `t × out`, or `None` when
/// the machine has no SIMD this kernel is written for (x86-64 with AVX2 and FMA, or AVX-512; the
/// caller then uses faer).
pub fn linear_nt(x: &[f32], t: usize, w: &[f32], out: usize, n: usize) -> Option<Vec<f32>> {
    linear_on(Isa::best()?, x, t, w, out, n)
}

/// The instruction sets the kernel is written for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Isa {
    /// AVX-512 (pulp's `V4`): tiles of 12 features × 32 tokens in 32 registers.
    Avx512,
    /// AVX2 with FMA (pulp's `V3`): tiles of 6 features × 16 tokens in 16 registers.
    Avx2,
}

impl Isa {
    /// The widest this machine has.
    fn best() -> Option<Isa> {
        Isa::available().into_iter().next()
    }

    /// Every one this machine has, widest first.
    fn available() -> Vec<Isa> {
        let mut isas = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            if pulp::x86::V4::try_new().is_some() {
                isas.push(Isa::Avx512);
            }
            if pulp::x86::V3::try_new().is_some() {
                isas.push(Isa::Avx2);
            }
        }
        isas
    }
}

/// [`linear_nt`] on the instruction set `isa`, `None` when the machine lacks it.
fn linear_on(isa: Isa, x: &[f32], t: usize, w: &[f32], out: usize, n: usize) -> Option<Vec<f32>> {
    if x.len() != t * n || w.len() != out * n {
        return None;
    }
    let g = Gemm { x, t, w, out, n };
    #[cfg(target_arch = "x86_64")]
    {
        use pulp::x86::{V3, V4};
        // Accumulators: MR features × 2 vectors of tokens, plus those two and one broadcast.
        match isa {
            Isa::Avx512 => return V4::try_new().map(|simd| run::<V4, 12, 32>(simd, &g)),
            Isa::Avx2 => return V3::try_new().map(|simd| run::<V3, 6, 16>(simd, &g)),
        }
    }
    #[allow(unreachable_code)]
    {
        let _ = (isa, g);
        None
    }
}

struct Gemm<'a> {
    x: &'a [f32],
    t: usize,
    w: &'a [f32],
    out: usize,
    n: usize,
}

/// What the kernel needs beyond [`Simd`]: f32 vectors widened to f64, and entering the
/// instruction set (code outside `enter`, closures included, is compiled without it).
trait Wide: Simd {
    /// The two halves of `v` in f64.
    fn widen(self, v: Self::f32s) -> (Self::f64s, Self::f64s);
    /// Runs `f` compiled for this instruction set.
    fn enter<F: NullaryFnOnce>(self, f: F) -> F::Output;
}

#[cfg(target_arch = "x86_64")]
impl Wide for pulp::x86::V4 {
    #[inline(always)]
    fn widen(self, v: pulp::f32x16) -> (pulp::f64x8, pulp::f64x8) {
        let [a, b]: [pulp::f32x8; 2] = pulp::cast(v);
        (self.convert_f32x8_to_f64x8(a), self.convert_f32x8_to_f64x8(b))
    }
    #[inline(always)]
    fn enter<F: NullaryFnOnce>(self, f: F) -> F::Output {
        self.vectorize(f)
    }
}

#[cfg(target_arch = "x86_64")]
impl Wide for pulp::x86::V3 {
    #[inline(always)]
    fn widen(self, v: pulp::f32x8) -> (pulp::f64x4, pulp::f64x4) {
        let [a, b]: [pulp::f32x4; 2] = pulp::cast(v);
        (self.convert_f32x4_to_f64x4(a), self.convert_f32x4_to_f64x4(b))
    }
    #[inline(always)]
    fn enter<F: NullaryFnOnce>(self, f: F) -> F::Output {
        self.vectorize(f)
    }
}

thread_local! {
    /// `x` in token panels, reused from call to call (fresh pages cost more than the packing).
    static TOKEN_PANELS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// `f` on `len` floats of this thread's `scratch` (contents left over from earlier use), or on a
/// fresh buffer when the scratch is in use further up this thread's stack (a nested product).
fn with_scratch<R>(scratch: &'static LocalKey<RefCell<Vec<f32>>>, len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    scratch.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            if buf.len() < len {
                buf.resize(len, 0.0);
            }
            f(&mut buf[..len])
        }
        Err(_) => f(&mut vec![0f32; len]),
    })
}

/// The whole product with tiles of `MR` features × `NR` tokens: `x` packed once into token
/// panels, then tasks of (tokens, band of features) in parallel, each writing its own block of `y`.
fn run<S: Wide, const MR: usize, const NR: usize>(simd: S, g: &Gemm<'_>) -> Vec<f32> {
    let (t, out, n) = (g.t, g.out, g.n);
    let mut y = vec![0f32; t * out];
    if t == 0 || out == 0 || n == 0 {
        return y;
    }
    let panels = t.div_ceil(NR);
    let band = BAND.div_ceil(MR) * MR;
    let splits = (TASKS_PER_THREAD * rayon::current_num_threads()).div_ceil(out.div_ceil(band)).clamp(1, panels);
    let tokens_per_task = panels.div_ceil(splits) * NR;
    with_scratch(&TOKEN_PANELS, panels * NR * n, |xp| {
        // Token panel p holds, for each k, the NR values x[p·NR + c][k] (tokens past t: zeros).
        xp.par_chunks_mut(NR * n).enumerate().for_each(|(p, panel)| {
            transpose_into(panel, &g.x[p * NR * n..((p + 1) * NR).min(t) * n], n, NR);
        });
        // Disjoint views of y, one per task.
        let mut tasks = Vec::new();
        let mut rest = MatMut::from_row_major_slice_mut(&mut y, t, out);
        let mut r0 = 0;
        while rest.nrows() > 0 {
            let take = tokens_per_task.min(rest.nrows());
            let (mut rows, below) = rest.split_at_row_mut(take);
            let mut o0 = 0;
            while rows.ncols() > 0 {
                let take = band.min(rows.ncols());
                let (block, right) = rows.split_at_col_mut(take);
                tasks.push((r0, o0, block));
                o0 += band;
                rows = right;
            }
            r0 += tokens_per_task;
            rest = below;
        }
        let xp = &*xp;
        let zeros = vec![0f32; n];
        tasks.into_par_iter().for_each(|(r0, o0, block)| {
            let xp = &xp[r0 * n..(r0 + block.nrows()).div_ceil(NR) * NR * n];
            let w = &g.w[o0 * n..(o0 + block.ncols()) * n];
            simd.enter(Task::<S, MR, NR> { simd, xp, w, zeros: &zeros, n, y: block });
        });
    });
    y
}

/// `rows` (row-major, `n` columns, at most `width` of them) into `panel` as `n` groups of
/// `width` values, one per row, zeros past the rows. The stores run in order (strided loads cost
/// far less than strided stores, and each loaded line serves the next 15 groups). Kept out of the
/// SIMD context on purpose: vectorised, this transpose becomes gathers and scatters.
#[inline(never)]
fn transpose_into(panel: &mut [f32], rows: &[f32], n: usize, width: usize) {
    let filled = rows.len() / n.max(1);
    for (k, group) in panel.chunks_exact_mut(width).enumerate() {
        let (values, rest) = group.split_at_mut(filled);
        for (c, v) in values.iter_mut().enumerate() {
            *v = rows[c * n + k];
        }
        rest.fill(0.0);
    }
}

/// One task of [`run`], entered inside a thread: the packed tokens `xp` times the rows `w` of
/// `W` (a band of features) into the block `y` of the output.
struct Task<'a, S, const MR: usize, const NR: usize> {
    simd: S,
    xp: &'a [f32],
    w: &'a [f32],
    /// A row of zeros standing in for the features past the band's end in its last tile.
    zeros: &'a [f32],
    n: usize,
    y: MatMut<'a, f32>,
}

impl<S: Wide, const MR: usize, const NR: usize> NullaryFnOnce for Task<'_, S, MR, NR> {
    type Output = ();

    #[inline(always)]
    fn call(self) {
        let Task { simd, xp, w, zeros, n, mut y } = self;
        let (tokens, features) = (y.nrows(), y.ncols());
        for (p, panel) in xp.chunks_exact(NR * n).enumerate() {
            let (xs, _) = S::as_simd_f32s(panel);
            for f0 in (0..features).step_by(MR) {
                let rows: [&[f32]; MR] =
                    std::array::from_fn(|r| if f0 + r < features { &w[(f0 + r) * n..(f0 + r + 1) * n] } else { zeros });
                let acc = tile::<S, MR, NR>(simd, rows, xs);
                // Token by token: each writes MR neighbouring features of its row.
                for c in 0..NR.min(tokens - p * NR) {
                    for (r, sums) in acc.iter().enumerate().take(features - f0) {
                        y[(p * NR + c, f0 + r)] = sums[c] as f32;
                    }
                }
            }
        }
    }
}

/// The register tile: for every block of [`K_BLOCK`] terms, `MR × 2` vectors of f32 sums of
/// fused multiply-adds (a weight broadcast times two vectors of tokens), then added to the
/// `MR × NR` f64 sums (`NR` = 2 vectors of tokens) it returns.
#[inline(always)]
fn tile<S: Wide, const MR: usize, const NR: usize>(simd: S, rows: [&[f32]; MR], xs: &[S::f32s]) -> [[f64; NR]; MR] {
    let zero64 = simd.splat_f64s(0.0);
    let mut acc = [[zero64; 4]; MR];
    let n = xs.len() / 2;
    for k0 in (0..n).step_by(K_BLOCK) {
        let k1 = (k0 + K_BLOCK).min(n);
        let wb: [&[f32]; MR] = std::array::from_fn(|r| &rows[r][k0..k1]);
        let xb = &xs[2 * k0..2 * k1];
        let zero = simd.splat_f32s(0.0);
        let mut c = [[zero; 2]; MR];
        for (i, xk) in xb.chunks_exact(2).enumerate() {
            let (x0, x1) = (xk[0], xk[1]);
            for r in 0..MR {
                let a = simd.splat_f32s(wb[r][i]);
                c[r][0] = simd.mul_add_e_f32s(a, x0, c[r][0]);
                c[r][1] = simd.mul_add_e_f32s(a, x1, c[r][1]);
            }
        }
        for (a, row) in acc.iter_mut().zip(c) {
            let (l0, h0) = simd.widen(row[0]);
            let (l1, h1) = simd.widen(row[1]);
            a[0] = simd.add_f64s(a[0], l0);
            a[1] = simd.add_f64s(a[1], h0);
            a[2] = simd.add_f64s(a[2], l1);
            a[3] = simd.add_f64s(a[3], h1);
        }
    }
    acc.map(bytemuck::cast::<[S::f64s; 4], [f64; NR]>)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against f64 dot products on every instruction set the machine has, for shapes that leave
    /// partial tiles, bands, token splits and K blocks.
    #[test]
    fn matches_f64_products() {
        let isas = Isa::available();
        if isas.is_empty() {
            eprintln!("SKIPPED: no AVX2/AVX-512 for the kernel on this machine (faer runs instead)");
            return;
        }
        for isa in isas {
            for &(t, out, n) in &[(1, 1, 1), (7, 33, 129), (250, 300, 300), (13, 129, 1536), (481, 17, 5), (40, 97, 0)]
            {
                let x: Vec<f32> = (0..t * n).map(|i| ((i * 7919 % 1013) as f32 / 1013.0 - 0.5) * 2.0).collect();
                let w: Vec<f32> = (0..out * n).map(|i| ((i * 104729 % 997) as f32 / 997.0 - 0.5) * 0.1).collect();
                let y = linear_on(isa, &x, t, &w, out, n).unwrap();
                assert_eq!(y.len(), t * out);
                for i in 0..t {
                    for o in 0..out {
                        let exact: f64 = (0..n).map(|k| f64::from(x[i * n + k]) * f64::from(w[o * n + k])).sum();
                        let got = f64::from(y[i * out + o]);
                        assert!(
                            (got - exact).abs() <= 1e-5 * (1.0 + exact.abs()),
                            "{isa:?} {t}x{out}x{n} at ({i},{o}): {got} vs {exact}"
                        );
                    }
                }
            }
        }
    }
}
