//! Integer codes with one scale (and, asymmetric, one zero point) per group of consecutive values
//! along a row: the number format of compressed-tensors' `int-quantized` and `pack-quantized`
//! checkpoints (GPTQ, AWQ and RTN exports that vLLM and transformers load). Pure functions, no
//! I/O; the streaming kernels in `compute` (CPU and WGSL) and the schemes in `quant` use them.
//!
//! Everything follows the `compressed-tensors` package (`calculate_qparams`, `_quantize`,
//! `_dequantize`) operation by operation, in the tensor's own floating-point type ([`Arith`]):
//! torch computes each bf16/f16 operation in f32 and rounds the result to the 16-bit type, and so
//! do we. With `b` bits the codes lie in `[−2^(b−1), 2^(b−1) − 1]`, and for a group with
//! `lo = min(min x, 0)`, `hi = max(max x, 0)`:
//! - symmetric: `scale = max(|lo|, |hi|) / ((2^b − 1) / 2)`, no zero point;
//! - asymmetric: `scale = (hi − lo) / (2^b − 1)`, `zp = round(clamp(−2^(b−1) − lo / scale))`;
//! - a zero scale becomes the type's machine epsilon;
//! - `code = round_half_even(clamp(x / scale + zp, qmin, qmax))`, decoded `(code − zp) · scale`.

use crate::codec::DType;

/// The floating-point type compressed-tensors computes a tensor's parameters in: the tensor's own
/// (its scales are stored in it too). Tensors stored in anything but F16 and BF16 (F32, GGUF
/// blocks) compute in F32.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Arith {
    /// IEEE single precision.
    F32,
    /// IEEE half precision.
    F16,
    /// bfloat16.
    Bf16,
}

impl Arith {
    /// The arithmetic of a tensor stored as `dtype`.
    pub fn of(dtype: DType) -> Self {
        match dtype {
            DType::F16 => Arith::F16,
            DType::BF16 => Arith::Bf16,
            _ => Arith::F32,
        }
    }

    /// Rounds an f32 result to this type (nearest, ties to even), as torch does after each
    /// operation on 16-bit tensors.
    #[inline(always)]
    pub fn round(self, x: f32) -> f32 {
        match self {
            Arith::F32 => x,
            Arith::F16 => half::f16::from_f32(x).to_f32(),
            Arith::Bf16 => half::bf16::from_f32(x).to_f32(),
        }
    }

    /// `torch.finfo(dtype).eps`: what a zero scale becomes.
    #[inline(always)]
    pub fn eps(self) -> f32 {
        match self {
            Arith::F32 => f32::EPSILON,
            Arith::F16 => f32::from(half::f16::EPSILON),
            Arith::Bf16 => f32::from(half::bf16::EPSILON),
        }
    }

    /// Bytes of one stored scale.
    pub fn bytes(self) -> u64 {
        match self {
            Arith::F32 => 4,
            _ => 2,
        }
    }

    /// The dtype scales are stored in.
    pub fn dtype(self) -> DType {
        match self {
            Arith::F32 => DType::F32,
            Arith::F16 => DType::F16,
            Arith::Bf16 => DType::BF16,
        }
    }
}

/// Integer quantization of rows in groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IntSpec {
    /// Bits per code (2..=8).
    pub bits: u32,
    /// Values per group along a row (the row length for one scale per output channel).
    pub group: usize,
    /// With a zero point per group.
    pub asym: bool,
    /// The type the parameters are computed and stored in.
    pub arith: Arith,
}

/// The parameters of one group.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GroupParams {
    /// The scale, a value of the spec's [`Arith`] type.
    pub scale: f32,
    /// The zero point (0 when symmetric).
    pub zero: i8,
}

impl IntSpec {
    /// Symmetric codes of `bits` in groups of `group`, computed in F32.
    pub fn symmetric(bits: u32, group: usize) -> Self {
        IntSpec { bits, group, asym: false, arith: Arith::F32 }
    }

    /// Smallest code: −2^(bits−1).
    #[inline(always)]
    pub fn qmin(&self) -> i32 {
        -(1i32 << (self.bits.clamp(2, 8) - 1))
    }

    /// Largest code: 2^(bits−1) − 1.
    #[inline(always)]
    pub fn qmax(&self) -> i32 {
        (1i32 << (self.bits.clamp(2, 8) - 1)) - 1
    }

    /// Why this spec cannot quantize rows of `row_len` values, if it cannot.
    pub fn check(&self, row_len: usize) -> Result<(), String> {
        if !(2..=8).contains(&self.bits) {
            return Err(format!("integer codes take 2 to 8 bits, not {}", self.bits));
        }
        if self.group == 0 || !row_len.is_multiple_of(self.group) {
            return Err(format!("groups of {} values do not divide the row length {row_len}", self.group));
        }
        Ok(())
    }

    /// The parameters of a group whose finite values span `[min, max]`.
    #[inline(always)]
    pub fn params(&self, min: f32, max: f32) -> GroupParams {
        let r = |x: f32| self.arith.round(x);
        let (lo, hi) = (min.min(0.0), max.max(0.0));
        let (qmin, qmax) = (self.qmin() as f32, self.qmax() as f32);
        let range = qmax - qmin; // 2^b − 1: exact in every type for b ≤ 8
        let (scale, zero) = if self.asym {
            let scale = r(r(hi - lo) / range);
            // zp = bit_min − lo / scale, clamped, rounded to int8. An all-zero group has 0/0 here,
            // which torch turns into NaN and then into the int8 0.
            let zp = r(qmin - r(lo / scale)).clamp(qmin, qmax);
            (scale, if zp.is_nan() { 0 } else { zp.round_ties_even() as i8 })
        } else {
            (r(lo.abs().max(hi.abs()) / (range / 2.0)), 0)
        };
        GroupParams { scale: if scale == 0.0 { self.arith.eps() } else { scale }, zero }
    }

    /// The parameters of one group of values (non-finite values left out).
    #[inline(always)]
    pub fn group_params(&self, values: &[f32]) -> GroupParams {
        let (min, max) = finite_min_max(values);
        self.params(min, max)
    }

    /// The code of `x` in a group with parameters `p`.
    #[inline(always)]
    pub fn code(&self, x: f32, p: GroupParams) -> i8 {
        let r = |v: f32| self.arith.round(v);
        let mut scaled = r(x / p.scale);
        if self.asym {
            scaled = r(scaled + f32::from(p.zero));
        }
        scaled.clamp(self.qmin() as f32, self.qmax() as f32).round_ties_even() as i8
    }

    /// The value a code decodes to.
    #[inline(always)]
    pub fn decode(&self, code: i8, p: GroupParams) -> f32 {
        // (code − zp) is a small integer, exact in every type; the product is rounded.
        self.arith.round((f32::from(code) - f32::from(p.zero)) * p.scale)
    }
}

/// `(min, max)` of the finite values (`(0, 0)` when there are none).
#[inline(always)]
pub fn finite_min_max(values: &[f32]) -> (f32, f32) {
    // Eight lanes, so that it vectorises; min and max do not depend on the order.
    let (mut lo, mut hi) = ([f32::INFINITY; 8], [f32::NEG_INFINITY; 8]);
    let mut chunks = values.chunks_exact(8);
    for c in &mut chunks {
        for k in 0..8 {
            let x = c[k];
            let finite = x.is_finite();
            lo[k] = if finite && x < lo[k] { x } else { lo[k] };
            hi[k] = if finite && x > hi[k] { x } else { hi[k] };
        }
    }
    for &x in chunks.remainder() {
        if x.is_finite() {
            lo[0] = lo[0].min(x);
            hi[0] = hi[0].max(x);
        }
    }
    let lo = lo.iter().fold(f32::INFINITY, |m, &v| m.min(v));
    let hi = hi.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    if lo > hi { (0.0, 0.0) } else { (lo, hi) }
}

/// Error of a quantization, accumulated in f64.
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
    /// Σ_j imp_j · (x_ij − x̂_ij)², when an importance per input channel was given.
    pub weighted_sq_err: f64,
    /// NaN and ±Inf values met (left out of every sum).
    pub non_finite: u64,
}

impl GroupError {
    /// Adds another part's error.
    pub fn add(&mut self, other: &GroupError) {
        self.values += other.values;
        self.sq_err += other.sq_err;
        self.signal += other.signal;
        self.max_abs_err = self.max_abs_err.max(other.max_abs_err);
        self.weighted_sq_err += other.weighted_sq_err;
        self.non_finite += other.non_finite;
    }

    /// Adds the error of one decoded value `y` of `x`, with the importance `w` of its column.
    #[inline]
    pub fn push(&mut self, x: f32, y: f32, w: f32) {
        if !x.is_finite() {
            self.non_finite += 1;
            return;
        }
        let d = f64::from(x) - f64::from(y);
        self.values += 1;
        self.sq_err += d * d;
        self.signal += f64::from(x) * f64::from(x);
        self.max_abs_err = self.max_abs_err.max(d.abs() as f32);
        self.weighted_sq_err += f64::from(w) * d * d;
    }

    /// Adds the error of decoded values `y` of `x`, whose columns start at `col0` of rows of
    /// `cols` values, weighed by `importance` (one per column) when given.
    #[inline(always)]
    pub fn push_slice(&mut self, x: &[f32], y: &[f32], col0: usize, cols: usize, importance: Option<&[f32]>) {
        let cols = cols.max(1);
        let (mut at, mut col) = (0, col0 % cols);
        // Row segments, so that each has its importance as one contiguous slice.
        while at < x.len() {
            let n = (cols - col).min(x.len() - at);
            let w = importance.map(|imp| &imp[col..col + n]);
            self.push_segment(&x[at..at + n], &y[at..at + n], w);
            at += n;
            col = 0;
        }
    }

    /// [`Self::push`] over a run of values, eight lanes at a time when every value is finite
    /// (f64 sums in lanes: the order differs from one-by-one only at the last bits of f64).
    #[inline(always)]
    fn push_segment(&mut self, x: &[f32], y: &[f32], w: Option<&[f32]>) {
        const LANES: usize = 8;
        if !x.iter().all(|v| v.is_finite()) {
            for (k, (&a, &b)) in x.iter().zip(y).enumerate() {
                self.push(a, b, w.map_or(0.0, |w| w[k]));
            }
            return;
        }
        let (mut se, mut sg, mut sw, mut mx) = ([0f64; LANES], [0f64; LANES], [0f64; LANES], [0f64; LANES]);
        let full = x.len() / LANES * LANES;
        for i in (0..full).step_by(LANES) {
            for k in 0..LANES {
                let a = f64::from(x[i + k]);
                let d = a - f64::from(y[i + k]);
                se[k] += d * d;
                sg[k] += a * a;
                mx[k] = if d.abs() > mx[k] { d.abs() } else { mx[k] };
                if let Some(w) = w {
                    sw[k] += f64::from(w[i + k]) * d * d;
                }
            }
        }
        self.values += full as u64;
        self.sq_err += se.iter().sum::<f64>();
        self.signal += sg.iter().sum::<f64>();
        self.weighted_sq_err += sw.iter().sum::<f64>();
        self.max_abs_err = mx.iter().fold(self.max_abs_err, |m, &v| m.max(v as f32));
        for k in full..x.len() {
            self.push(x[k], y[k], w.map_or(0.0, |w| w[k]));
        }
    }
}

/// Where encoded values lie in their rows, for the per-column importance of the weighted error.
#[derive(Clone, Copy, Debug)]
pub struct Columns<'a> {
    /// Column of the first value.
    pub first: usize,
    /// Row length.
    pub count: usize,
    /// One importance per column, when given.
    pub importance: Option<&'a [f32]>,
}

/// Encodes whole groups of `values` (which start a group, at column `cols.first`): one
/// [`GroupParams`] per group appended to `params`, one code per value to `codes`, the decoded
/// values' error added to `err` (columns weighed by their importance when given). Non-finite
/// values get code 0 and count in [`GroupError::non_finite`].
#[inline(always)]
pub fn encode(
    values: &[f32],
    spec: &IntSpec,
    cols: Columns<'_>,
    params: &mut Vec<GroupParams>,
    codes: &mut Vec<i8>,
    err: &mut GroupError,
) {
    // One loop per (type, zero point) with both fixed, so that the inner loop vectorises.
    match (spec.arith, spec.asym) {
        (Arith::F32, false) => encode_with::<0, false>(values, spec, cols, params, codes, err),
        (Arith::F32, true) => encode_with::<0, true>(values, spec, cols, params, codes, err),
        (Arith::F16, false) => encode_with::<1, false>(values, spec, cols, params, codes, err),
        (Arith::F16, true) => encode_with::<1, true>(values, spec, cols, params, codes, err),
        (Arith::Bf16, false) => encode_with::<2, false>(values, spec, cols, params, codes, err),
        (Arith::Bf16, true) => encode_with::<2, true>(values, spec, cols, params, codes, err),
    }
}

/// [`encode`] for one arithmetic (0 f32, 1 f16, 2 bf16) and zero-point choice: the same
/// operations as [`IntSpec::code`] and [`IntSpec::decode`].
#[inline(always)]
fn encode_with<const A: u8, const ASYM: bool>(
    values: &[f32],
    spec: &IntSpec,
    cols: Columns<'_>,
    params: &mut Vec<GroupParams>,
    codes: &mut Vec<i8>,
    err: &mut GroupError,
) {
    let r = |v: f32| match A {
        1 => half::f16::from_f32(v).to_f32(),
        2 => half::bf16::from_f32(v).to_f32(),
        _ => v,
    };
    let (qmin, qmax) = (spec.qmin() as f32, spec.qmax() as f32);
    let mut y = vec![0f32; values.len()];
    let start = codes.len();
    codes.resize(start + values.len(), 0);
    let out = &mut codes[start..];
    let size = spec.group.max(1);
    for ((group, c), yg) in values.chunks(size).zip(out.chunks_mut(size)).zip(y.chunks_mut(size)) {
        let p = spec.group_params(group);
        params.push(p);
        let (scale, zero) = (p.scale, f32::from(p.zero));
        for ((&x, c), y) in group.iter().zip(c.iter_mut()).zip(yg.iter_mut()) {
            let mut scaled = r(x / scale);
            if ASYM {
                scaled = r(scaled + zero);
            }
            let q = scaled.clamp(qmin, qmax).round_ties_even();
            // Branch-free: non-finite values get code 0.
            let q = if x.is_finite() { q } else { 0.0 };
            *c = q as i8;
            *y = r((q - zero) * scale);
        }
    }
    err.push_slice(values, &y, cols.first, cols.count, cols.importance);
}

/// Decodes codes with their groups' parameters, appending to `out`.
pub fn decode(codes: &[i8], params: &[GroupParams], spec: &IntSpec, out: &mut Vec<f32>) {
    for (g, &p) in codes.chunks(spec.group.max(1)).zip(params) {
        out.extend(g.iter().map(|&c| spec.decode(c, p)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symmetric_int4_uses_the_full_signed_range() {
        let spec = IntSpec::symmetric(4, 8);
        assert_eq!((spec.qmin(), spec.qmax()), (-8, 7));
        // absmax 7.5 → scale 1; −7.5 rounds to −8 (ties to even), +7.5 clamps to 7.
        let values = [0.5f32, 1.5, 2.5, -2.5, 7.5, -7.5, 0.0, f32::NAN];
        let (mut p, mut codes, mut err) = (Vec::new(), Vec::new(), GroupError::default());
        encode(&values, &spec, Columns { first: 0, count: 8, importance: None }, &mut p, &mut codes, &mut err);
        assert_eq!(p, [GroupParams { scale: 1.0, zero: 0 }]);
        assert_eq!(codes, [0, 2, 2, -2, 7, -8, 0, 0]);
        assert_eq!((err.values, err.non_finite, err.sq_err, err.max_abs_err), (7, 1, 1.5, 0.5));
        let mut back = Vec::new();
        decode(&codes, &p, &spec, &mut back);
        assert_eq!(back, [0.0, 2.0, 2.0, -2.0, 7.0, -8.0, 0.0, 0.0]);
    }

    #[test]
    fn asymmetric_groups_have_a_zero_point_and_zero_groups_an_epsilon_scale() {
        let spec = IntSpec { asym: true, ..IntSpec::symmetric(4, 4) };
        // lo = 0 (clamped), hi = 15 → scale 1, zp = −8.
        assert_eq!(spec.params(1.0, 15.0), GroupParams { scale: 1.0, zero: -8 });
        assert_eq!(spec.code(15.0, spec.params(1.0, 15.0)), 7);
        assert_eq!(spec.params(0.0, 0.0), GroupParams { scale: f32::EPSILON, zero: 0 });
        let bf = IntSpec { arith: Arith::Bf16, ..IntSpec::symmetric(4, 4) };
        assert_eq!(bf.params(0.0, 0.0).scale, 0.0078125);
        // 1/7.5 is rounded to bf16.
        assert_eq!(bf.params(-1.0, 0.5).scale, half::bf16::from_f32(1.0 / 7.5).to_f32());
    }

    #[test]
    fn specs_that_do_not_fit_are_refused() {
        assert!(IntSpec::symmetric(4, 32).check(64).is_ok());
        assert!(IntSpec::symmetric(4, 100).check(64).is_err());
        assert!(IntSpec::symmetric(9, 32).check(64).is_err());
        assert!(IntSpec::symmetric(4, 0).check(64).is_err());
    }
}
