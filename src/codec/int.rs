//! Symmetric integer codes with one scale per group of consecutive values (round to nearest):
//! the number format under the `int<b>_g<group>` schemes. Pure functions, no I/O; the streaming
//! kernels in `compute` (CPU and WGSL) and the schemes in `quant` are built on them.
//!
//! Per group: `scale = absmax / qmax` (IEEE f32 division), `inv = 1 / scale` (zero for an
//! all-zero group), `code = clamp(round_half_even(x · inv), −qmax, qmax)`, decoded `code · scale`.
//! Multiplying by a reciprocal computed once, and rounding half to even, are what the WGSL
//! kernel does too, so codes agree exactly between backends.

/// Symmetric integer quantization: `bits` per code, one scale per `group` consecutive values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IntSpec {
    /// Bits per code (2..=8): codes lie in [−(2^(bits−1)−1), 2^(bits−1)−1].
    pub bits: u32,
    /// Values per group (must divide the row length).
    pub group: usize,
}

impl IntSpec {
    /// Largest code: 2^(bits−1) − 1.
    pub fn qmax(&self) -> u32 {
        (1u32 << (self.bits.clamp(2, 8) - 1)) - 1
    }

    /// Why this spec cannot quantize rows of `row_len` values, if it cannot.
    pub fn check(&self, row_len: usize) -> Result<(), String> {
        if !(2..=8).contains(&self.bits) || self.group == 0 || !row_len.is_multiple_of(self.group) {
            return Err(format!(
                "integer codes of {} bits in groups of {} need 2..=8 bits and groups dividing the row length {row_len}",
                self.bits, self.group
            ));
        }
        Ok(())
    }
}

/// Max |x| of each group of `group` consecutive finite values (NaN and ±Inf are left out).
pub fn group_absmax(values: &[f32], group: usize) -> Vec<f32> {
    values.chunks(group.max(1)).map(|g| g.iter().filter(|x| x.is_finite()).fold(0f32, |m, x| m.max(x.abs()))).collect()
}

/// `(scale, 1/scale)` of a group with this abs-max: scale = absmax / qmax, and a zero reciprocal
/// for an all-zero group.
pub fn scale_of(absmax: f32, qmax: u32) -> (f32, f32) {
    let scale = absmax / qmax as f32;
    (scale, if scale > 0.0 { 1.0 / scale } else { 0.0 })
}

/// Error of a quantization, accumulated over groups in f64.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GroupError {
    /// Finite values quantized.
    pub values: u64,
    /// Σ (x − x̂)² over them.
    pub sq_err: f64,
    /// Σ x² over them.
    pub signal: f64,
    /// max |x − x̂|.
    pub max_abs_err: f32,
}

impl GroupError {
    /// Adds another part's error.
    pub fn add(&mut self, other: &GroupError) {
        self.values += other.values;
        self.sq_err += other.sq_err;
        self.signal += other.signal;
        self.max_abs_err = self.max_abs_err.max(other.max_abs_err);
    }
}

/// Encodes one group with `(scale, inv)` from [`scale_of`], appending its codes to `codes` and
/// adding its error to `err` (each squared difference computed in f32, summed in f64).
/// Non-finite values get code 0 and no error.
pub fn encode_group(values: &[f32], (scale, inv): (f32, f32), qmax: u32, codes: &mut Vec<i8>, err: &mut GroupError) {
    let qm = qmax as f32;
    for &x in values {
        if x.is_finite() {
            let code = (x * inv).round_ties_even().clamp(-qm, qm);
            let d = x - code * scale;
            err.values += 1;
            err.sq_err += f64::from(d * d);
            err.signal += f64::from(x) * f64::from(x);
            err.max_abs_err = err.max_abs_err.max(d.abs());
            codes.push(code as i8);
        } else {
            codes.push(0);
        }
    }
}

/// Encodes whole groups: one scale per group (appended to `scales`), codes appended to `codes`.
pub fn encode(values: &[f32], spec: &IntSpec, scales: &mut Vec<f32>, codes: &mut Vec<i8>, err: &mut GroupError) {
    let qmax = spec.qmax();
    for group in values.chunks(spec.group.max(1)) {
        let absmax = group.iter().filter(|x| x.is_finite()).fold(0f32, |m, x| m.max(x.abs()));
        let s = scale_of(absmax, qmax);
        scales.push(s.0);
        encode_group(group, s, qmax, codes, err);
    }
}

/// Decodes codes: `code · scale` of their group, appended to `out`.
pub fn decode(codes: &[i8], scales: &[f32], group: usize, out: &mut Vec<f32>) {
    for (g, &scale) in codes.chunks(group.max(1)).zip(scales) {
        out.extend(g.iter().map(|&c| f32::from(c) * scale));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_half_to_even_and_clamps() {
        let spec = IntSpec { bits: 4, group: 8 };
        assert_eq!((spec.qmax(), IntSpec { bits: 8, group: 1 }.qmax()), (7, 127));
        let values = [0.5f32, 1.5, 2.5, -2.5, 7.0, -7.0, 0.0, f32::NAN];
        assert_eq!(group_absmax(&values, 8), [7.0]);
        let (mut scales, mut codes, mut err) = (Vec::new(), Vec::new(), GroupError::default());
        encode(&values, &spec, &mut scales, &mut codes, &mut err);
        assert_eq!(scales, [1.0]);
        assert_eq!(codes, [0, 2, 2, -2, 7, -7, 0, 0]);
        assert_eq!((err.values, err.sq_err, err.max_abs_err), (7, 1.0, 0.5));
        assert_eq!(scale_of(0.0, 7), (0.0, 0.0));
        let mut back = Vec::new();
        decode(&codes, &scales, 8, &mut back);
        assert_eq!(back, [0.0, 2.0, 2.0, -2.0, 7.0, -7.0, 0.0, 0.0]);
    }

    #[test]
    fn specs_that_do_not_fit_are_refused() {
        assert!(IntSpec { bits: 4, group: 32 }.check(64).is_ok());
        assert!(IntSpec { bits: 4, group: 100 }.check(64).is_err());
        assert!(IntSpec { bits: 9, group: 32 }.check(64).is_err());
        assert!(IntSpec { bits: 4, group: 0 }.check(64).is_err());
    }
}
