//! faer against nalgebra on what the spectrum view needs: the eigenvalues of a symmetric Gram
//! matrix and the singular values of a weight matrix, on matrices of the shapes of SmolLM2 and
//! MiniLM weights, same data, same run. Prints time per call (best of 3), the ratio, and how far
//! the two answers are apart.

use std::time::Instant;

fn matrix(rows: usize, cols: usize, seed: u64) -> Vec<f64> {
    let mut s = seed | 1;
    (0..rows * cols)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            // Heavy-tailed, like trained weights: a product of uniforms, signed.
            let u = (s >> 11) as f64 / (1u64 << 53) as f64;
            let v = ((s.rotate_left(17) >> 11) as f64 / (1u64 << 53) as f64) - 0.5;
            v * u * u * 0.1
        })
        .collect()
}

fn best_of<T>(f: impl Fn() -> T) -> (f64, T) {
    let mut best = f64::INFINITY;
    let mut out = None;
    for _ in 0..3 {
        let t = Instant::now();
        let r = f();
        best = best.min(t.elapsed().as_secs_f64());
        out = Some(r);
    }
    (best, out.expect("ran"))
}

fn max_rel(a: &mut [f64], b: &mut [f64]) -> f64 {
    a.sort_by(|x, y| y.total_cmp(x));
    b.sort_by(|x, y| y.total_cmp(x));
    let top = a[0].abs().max(1e-300);
    a.iter().zip(b.iter()).map(|(x, y)| (x - y).abs() / top).fold(0.0, f64::max)
}

fn main() {
    println!("| shape | task | faer s | nalgebra s | nalgebra / faer | max |diff| / top |");
    println!("|---|---|---|---|---|---|");
    for (rows, cols) in [(576, 576), (1536, 576), (1536, 384), (2048, 2048)] {
        let w = matrix(rows, cols, (rows * 31 + cols) as u64);
        let fw = faer::Mat::<f64>::from_fn(rows, cols, |i, j| w[i * cols + j]);
        let nw = nalgebra::DMatrix::<f64>::from_row_slice(rows, cols, &w);
        // Gram of the smaller side, as the workbench's default method.
        let fg = if cols <= rows { fw.transpose() * &fw } else { &fw * fw.transpose() };
        let ng = if cols <= rows { nw.transpose() * &nw } else { &nw * nw.transpose() };
        let (tf, mut ef) = best_of(|| fg.self_adjoint_eigenvalues(faer::Side::Lower).expect("faer eig"));
        let (tn, ne) = best_of(|| ng.clone().symmetric_eigenvalues());
        let mut ne: Vec<f64> = ne.iter().copied().collect();
        println!(
            "| {rows}×{cols} | Gram eigenvalues | {tf:.3} | {tn:.3} | {:.2}× | {:.1e} |",
            tn / tf,
            max_rel(&mut ef, &mut ne)
        );
        let (tf, mut sf) = best_of(|| fw.singular_values().expect("faer svd"));
        let (tn, sn) = best_of(|| nw.clone().singular_values());
        let mut sn: Vec<f64> = sn.iter().copied().collect();
        println!(
            "| {rows}×{cols} | singular values | {tf:.3} | {tn:.3} | {:.2}× | {:.1e} |",
            tn / tf,
            max_rel(&mut sf, &mut sn)
        );
    }
}
