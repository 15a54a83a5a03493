//! Scheme names as users write them on the command line and in plans, what each costs in bytes,
//! which tensors each can take, and the fallback llama.cpp's quantizer would choose instead.

use std::fmt;
use std::str::FromStr;

use crate::codec::int::{Arith, IntSpec};
use crate::codec::{DType, ggml};

/// How an integer scheme groups values along a row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IntGroup {
    /// One scale per output channel (row): `_ch`.
    Channel,
    /// One scale per `n` consecutive values of a row: `_g<n>`.
    Size(usize),
}

/// Where a low-rank scheme cuts the spectrum.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RankCut {
    /// A fixed rank: `lowrank_r<N>`.
    Rank(usize),
    /// The smallest rank keeping this share of Σσ²: `lowrank_e<F>`.
    Energy(f64),
    /// WeLore's rule: every singular value at least this fraction of the largest, and only where
    /// that saves bytes (otherwise the tensor is kept): `welore_t<F>` (`welore`: t = 0.1).
    Welore(f64),
}

/// WeLore's threshold when `welore` names none.
pub const WELORE_DEFAULT: f64 = 0.1;

/// A method from the papers applied around a base quantizer (scheme suffixes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// AWQ: per-input-channel scales s = imp^α applied before quantizing and undone after:
    /// `+awq` searches α, `+awq@0.35` fixes it (in hundredths: the tensors sharing one norm
    /// share one α, so that one scale vector folds into it).
    Awq {
        /// α in hundredths, when fixed.
        alpha: Option<u8>,
    },
    /// SliM-LLM: the most salient groups of each row one bit more, as many of the least salient
    /// one bit less: `+slim`.
    Slim,
    /// NUPES: values companded by |w|^γ (γ searched) before uniform quantization: `+pow`.
    Pow,
    /// GPTQ: values rounded one input channel at a time, each rounding error spread over the
    /// channels not yet rounded through the inverse Hessian of the layer's inputs: `+gptq`.
    /// Stores exactly what the base quantizer stores.
    Gptq,
}

impl Method {
    /// The suffix as written.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Awq { .. } => "awq",
            Method::Slim => "slim",
            Method::Pow => "pow",
            Method::Gptq => "gptq",
        }
    }

    fn parse(s: &str) -> Option<Result<Method, String>> {
        if let Some(a) = s.strip_prefix("awq@") {
            return Some(match a.parse::<f64>() {
                Ok(x) if (0.0..=1.0).contains(&x) && ((x * 100.0).round() - x * 100.0).abs() < 1e-9 => {
                    Ok(Method::Awq { alpha: Some((x * 100.0).round() as u8) })
                }
                _ => Err(format!("`+{s}`: α is a number in [0, 1] with at most two decimals")),
            });
        }
        [Method::Awq { alpha: None }, Method::Slim, Method::Pow, Method::Gptq]
            .into_iter()
            .find(|m| m.as_str() == s)
            .map(Ok)
    }

    /// How the suffix is written: `awq`, `awq@0.35`, `slim`, `pow`.
    pub fn suffix(self) -> String {
        match self {
            Method::Awq { alpha: Some(a) } => format!("awq@{}", f64::from(a) / 100.0),
            m => m.as_str().to_owned(),
        }
    }

    /// Why `base` cannot carry this method, if it cannot.
    pub fn check_base(self, base: &Scheme) -> Result<(), String> {
        let fail = |what: &str| Err(format!("`+{}` applies to {what}, not `{base}`", self.as_str()));
        match (self, base) {
            (Method::Awq { .. }, Scheme::Int { .. } | Scheme::Ggml(_) | Scheme::Nf4 | Scheme::Fp8 { .. }) => Ok(()),
            (Method::Awq { .. }, _) => fail("a quantizer (int*, a llama.cpp block type, nf4, fp8)"),
            (Method::Slim, Scheme::Int { bits, group: IntGroup::Size(n), asym: false })
                if (3..=7).contains(bits) && *n >= 2 =>
            {
                Ok(())
            }
            (Method::Slim, _) => {
                fail("symmetric grouped integers of 3 to 7 bits (int4_g128, ...), which have a bit to spare both ways")
            }
            (Method::Pow, Scheme::Int { asym: false, .. }) => Ok(()),
            (Method::Pow, _) => fail("symmetric integers (int4_g128, int8_ch, ...)"),
            (Method::Gptq, Scheme::Int { .. }) => Ok(()),
            (Method::Gptq, Scheme::Ggml(d)) if ggml::grid::AFFINE.contains(d) => Ok(()),
            (Method::Gptq, _) => fail(
                "integers (int4_g128, ...) and the llama.cpp types with one affine grid per block \
                 (q4_0, q4_1, q5_0, q5_1, q8_0, q4_k, q5_k, q6_k)",
            ),
        }
    }
}

/// A way to store one tensor.
#[derive(Clone, Debug, PartialEq)]
pub enum Scheme {
    /// As it is: `keep`.
    Keep,
    /// IEEE half precision: `f16`.
    F16,
    /// bfloat16: `bf16`.
    Bf16,
    /// FP8 E4M3 with one scale per tensor (`fp8_e4m3`) or per output channel (`fp8_e4m3_ch`), as
    /// compressed-tensors' float8 scheme.
    Fp8 {
        /// One scale per row rather than one for the tensor.
        per_channel: bool,
    },
    /// bitsandbytes' NF4: blocks of 64, an f32 abs-max scale each: `nf4`.
    Nf4,
    /// A llama.cpp block type: `q8_0`, `q4_k`, ...
    Ggml(DType),
    /// compressed-tensors integers: `int4_g128`, `int8_ch`, `int4_g128_asym`.
    Int {
        /// Bits per code (2..=8).
        bits: u32,
        /// Grouping along rows.
        group: IntGroup,
        /// With zero points.
        asym: bool,
    },
    /// W ≈ A·B with A = U_r·S_r, B = V_rᵀ, the factors stored in the tensor's type or quantized
    /// by `factors`: `lowrank_r64`, `lowrank_e0.95`, `lowrank_r64+int8_ch`.
    LowRank {
        /// Where the spectrum is cut.
        cut: RankCut,
        /// How the factors are stored (None: the tensor's own type).
        factors: Option<Box<Scheme>>,
    },
    /// A base quantizer with a method from the papers: `int4_g128+awq`, `q4_0+awq`,
    /// `int4_g128+slim`, `int4_ch+pow`.
    With {
        /// The method.
        method: Method,
        /// The quantizer it wraps.
        base: Box<Scheme>,
    },
}

/// The ggml block types a plan can name, by their lower-case names.
pub const GGML_SCHEMES: [DType; 12] = [
    DType::Q8_0,
    DType::Q4_0,
    DType::Q4_1,
    DType::Q5_0,
    DType::Q5_1,
    DType::Q2K,
    DType::Q3K,
    DType::Q4K,
    DType::Q5K,
    DType::Q6K,
    DType::IQ4NL,
    DType::IQ4XS,
];

/// Every scheme form, for messages that list what is accepted.
pub const SCHEME_FORMS: &str = "keep, f16, bf16, fp8_e4m3, fp8_e4m3_ch, nf4, q8_0, q4_0, q4_1, q5_0, q5_1, q2_k, q3_k, \
     q4_k, q5_k, q6_k, iq4_nl, iq4_xs, int<2..8>_ch, int<2..8>_g<32|64|128|...>[_asym], lowrank_r<N>, lowrank_e<0..1>, \
     lowrank_...+<scheme>, welore[_t<F>][+<scheme>], <quantizer>+awq, int<3..7>_g<N>+slim, int<b>_*+pow, int*|q4_0|q4_1|q5_0|q5_1|q8_0|q4_k|q5_k|q6_k+gptq";

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scheme::Keep => f.write_str("keep"),
            Scheme::F16 => f.write_str("f16"),
            Scheme::Bf16 => f.write_str("bf16"),
            Scheme::Fp8 { per_channel } => f.write_str(if *per_channel { "fp8_e4m3_ch" } else { "fp8_e4m3" }),
            Scheme::Nf4 => f.write_str("nf4"),
            Scheme::Ggml(d) => f.write_str(&d.name().to_ascii_lowercase()),
            Scheme::Int { bits, group, asym } => {
                write!(f, "int{bits}")?;
                match group {
                    IntGroup::Channel => f.write_str("_ch")?,
                    IntGroup::Size(n) => write!(f, "_g{n}")?,
                }
                if *asym {
                    f.write_str("_asym")?;
                }
                Ok(())
            }
            Scheme::LowRank { cut, factors } => {
                match cut {
                    RankCut::Rank(r) => write!(f, "lowrank_r{r}")?,
                    RankCut::Energy(e) => write!(f, "lowrank_e{e}")?,
                    RankCut::Welore(t) => write!(f, "welore_t{t}")?,
                }
                if let Some(inner) = factors {
                    write!(f, "+{inner}")?;
                }
                Ok(())
            }
            Scheme::With { method, base } => write!(f, "{base}+{}", method.suffix()),
        }
    }
}

impl FromStr for Scheme {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let unknown = || format!("unknown scheme `{s}` (accepted: {SCHEME_FORMS})");
        let lower = s.trim().to_ascii_lowercase();
        if let Some((base, suffix)) = lower.rsplit_once('+')
            && let Some(method) = Method::parse(suffix)
        {
            let method = method?;
            let base: Scheme = base.parse()?;
            method.check_base(&base).map_err(|e| format!("`{s}`: {e}"))?;
            return Ok(Scheme::With { method, base: Box::new(base) });
        }
        if let Some((low, inner)) = lower.split_once('+') {
            let Scheme::LowRank { cut, .. } = low.parse::<Scheme>()? else {
                return Err(format!("`{s}`: only a low-rank scheme can be followed by `+<scheme>` for its factors"));
            };
            let inner: Scheme = inner.parse()?;
            if matches!(inner, Scheme::LowRank { .. } | Scheme::Keep) {
                return Err(format!("`{s}`: the factors of a low rank take a quantization scheme, not `{inner}`"));
            }
            return Ok(Scheme::LowRank { cut, factors: Some(Box::new(inner)) });
        }
        Ok(match lower.as_str() {
            "keep" => Scheme::Keep,
            "f16" => Scheme::F16,
            "bf16" => Scheme::Bf16,
            "fp8_e4m3" | "fp8" => Scheme::Fp8 { per_channel: false },
            "fp8_e4m3_ch" | "fp8_ch" => Scheme::Fp8 { per_channel: true },
            "nf4" => Scheme::Nf4,
            _ => {
                if let Some(d) = GGML_SCHEMES.iter().find(|d| d.name().eq_ignore_ascii_case(&lower)) {
                    return Ok(Scheme::Ggml(*d));
                }
                if let Some(rest) = lower.strip_prefix("lowrank_r") {
                    let r: usize = rest.parse().map_err(|_| unknown())?;
                    if r == 0 {
                        return Err(format!("`{s}`: a rank must be at least 1"));
                    }
                    return Ok(Scheme::LowRank { cut: RankCut::Rank(r), factors: None });
                }
                if lower == "welore" {
                    return Ok(Scheme::LowRank { cut: RankCut::Welore(WELORE_DEFAULT), factors: None });
                }
                if let Some(rest) = lower.strip_prefix("welore_t") {
                    let t: f64 = rest.parse().map_err(|_| unknown())?;
                    if !(t > 0.0 && t < 1.0) {
                        return Err(format!("`{s}`: the threshold on σ/σ₁ must be in (0, 1)"));
                    }
                    return Ok(Scheme::LowRank { cut: RankCut::Welore(t), factors: None });
                }
                if let Some(rest) = lower.strip_prefix("lowrank_e") {
                    let e: f64 = rest.parse().map_err(|_| unknown())?;
                    if !(e > 0.0 && e <= 1.0) {
                        return Err(format!("`{s}`: the energy kept must be in (0, 1]"));
                    }
                    return Ok(Scheme::LowRank { cut: RankCut::Energy(e), factors: None });
                }
                return parse_int(&lower).ok_or_else(unknown)?;
            }
        })
    }
}

/// `int<b>_ch`, `int<b>_g<n>`, with an optional `_asym`.
fn parse_int(s: &str) -> Option<Result<Scheme, String>> {
    let rest = s.strip_prefix("int")?;
    let (rest, asym) = match rest.strip_suffix("_asym") {
        Some(r) => (r, true),
        None => (rest, false),
    };
    let (bits, group) = rest.split_once('_')?;
    let bits: u32 = bits.parse().ok()?;
    let group = if group == "ch" { IntGroup::Channel } else { IntGroup::Size(group.strip_prefix('g')?.parse().ok()?) };
    if !(2..=8).contains(&bits) {
        return Some(Err(format!("`{s}`: integer codes take 2 to 8 bits, not {bits}")));
    }
    if group == IntGroup::Size(0) {
        return Some(Err(format!("`{s}`: a group holds at least one value")));
    }
    Some(Ok(Scheme::Int { bits, group, asym }))
}

/// A tensor's shape as rows × cols (the last dimension is the row), or None for a vector.
pub fn rows_cols(shape: &[u64]) -> Option<(u64, u64)> {
    match shape {
        [] | [_] => None,
        [.., last] => Some((crate::codec::numel(&shape[..shape.len() - 1]).unwrap_or(u64::MAX), *last)),
    }
}

impl Scheme {
    /// Whether this scheme stores the tensor unchanged.
    pub fn is_keep(&self) -> bool {
        matches!(self, Scheme::Keep)
    }

    /// Whether this scheme needs the Hessian of the tensor's inputs (`+gptq`).
    pub fn needs_hessian(&self) -> bool {
        match self {
            Scheme::With { method, base } => *method == Method::Gptq || base.needs_hessian(),
            Scheme::LowRank { factors: Some(f), .. } => f.needs_hessian(),
            _ => false,
        }
    }

    /// The scheme whose parts this one stores: `+gptq` stores its base's (only the codes
    /// differ); every other scheme its own.
    pub fn stored_form(&self) -> &Scheme {
        match self {
            Scheme::With { method: Method::Gptq, base } => base,
            other => other,
        }
    }

    /// Whether this scheme needs an importance per input channel (`+awq`).
    pub fn needs_importance(&self) -> bool {
        match self {
            Scheme::With { method, base } => matches!(method, Method::Awq { .. }) || base.needs_importance(),
            Scheme::LowRank { factors: Some(f), .. } => f.needs_importance(),
            _ => false,
        }
    }

    /// The integer spec of an `int*` scheme on rows of `cols`, computed in `arith`.
    pub fn int_spec(&self, cols: u64, arith: Arith) -> Option<IntSpec> {
        match *self {
            Scheme::Int { bits, group, asym } => Some(IntSpec {
                bits,
                group: match group {
                    IntGroup::Channel => cols as usize,
                    IntGroup::Size(n) => n,
                },
                asym,
                arith,
            }),
            _ => None,
        }
    }

    /// Why this scheme cannot store a tensor of `shape`, if it cannot.
    pub fn check(&self, shape: &[u64]) -> Result<(), String> {
        let numel: u64 = crate::codec::numel(shape).unwrap_or(u64::MAX);
        let needs_matrix =
            || rows_cols(shape).ok_or_else(|| format!("`{self}` needs a matrix; this tensor is 1-D ({numel} values)"));
        match self {
            Scheme::Keep | Scheme::F16 | Scheme::Bf16 => Ok(()),
            Scheme::Nf4 | Scheme::Fp8 { .. } => needs_matrix().map(drop),
            Scheme::Ggml(d) => {
                let (_, cols) = needs_matrix()?;
                if !ggml::can_encode(*d) {
                    return Err(format!("`{self}` has no encoder yet"));
                }
                let be = d.block_elems() as u64;
                if !cols.is_multiple_of(be) {
                    return Err(format!(
                        "`{self}` takes rows of whole {be}-value blocks; these rows have {cols} values"
                    ));
                }
                Ok(())
            }
            Scheme::Int { group, .. } => {
                let (_, cols) = needs_matrix()?;
                if let IntGroup::Size(n) = group
                    && !cols.is_multiple_of(*n as u64)
                {
                    return Err(format!("`{self}`: groups of {n} do not divide the row length {cols}"));
                }
                Ok(())
            }
            Scheme::LowRank { cut, factors } => {
                let (rows, cols) = needs_matrix()?;
                let max_rank = rows.min(cols);
                if let RankCut::Rank(r) = cut
                    && *r as u64 > max_rank
                {
                    return Err(format!("`{self}`: rank {r} exceeds the {rows}×{cols} matrix's {max_rank}"));
                }
                if let (Some(inner), RankCut::Rank(r)) = (factors, cut) {
                    let r = *r as u64;
                    inner.check(&[rows, r]).map_err(|e| format!("factor A ({rows}×{r}): {e}"))?;
                    inner.check(&[r, cols]).map_err(|e| format!("factor B ({r}×{cols}): {e}"))?;
                }
                Ok(())
            }
            Scheme::With { method, base } => {
                needs_matrix()?;
                base.check(shape)?;
                method.check_base(base)
            }
        }
    }

    /// What llama.cpp's quantizer stores instead of this block type when a tensor's rows are not
    /// whole blocks of it (`llama_tensor_get_type`): the K-quants fall back to legacy types of
    /// 32-value blocks, Q2_K/Q3_K/IQ4_XS to IQ4_NL, and a row that takes no 32-value block to F16.
    pub fn ggml_fallback(&self, shape: &[u64]) -> Option<(Scheme, String)> {
        let Scheme::Ggml(d) = self else { return None };
        let (_, cols) = rows_cols(shape)?;
        let be = d.block_elems() as u64;
        if cols.is_multiple_of(be) {
            return None;
        }
        let next = match d {
            DType::Q4K => DType::Q5_0,
            DType::Q5K => DType::Q5_1,
            DType::Q6K => DType::Q8_0,
            DType::Q2K | DType::Q3K | DType::IQ4XS => DType::IQ4NL,
            _ => DType::F16,
        };
        let reason = format!("rows of {cols} are not whole {be}-value blocks of {self}");
        if next != DType::F16 && cols.is_multiple_of(next.block_elems() as u64) && ggml::can_encode(next) {
            Some((Scheme::Ggml(next), format!("{reason}: {}, as llama.cpp's quantizer chooses", next.name())))
        } else {
            Some((Scheme::F16, format!("{reason}, nor of 32-value blocks: F16, as llama.cpp's quantizer chooses")))
        }
    }

    /// The rank a low-rank scheme keeps, given the singular values (descending).
    pub fn rank_of(cut: RankCut, singular: &[f64]) -> usize {
        match cut {
            RankCut::Rank(r) => r.min(singular.len()),
            RankCut::Welore(t) => {
                let first = singular.first().copied().unwrap_or(0.0);
                singular.iter().filter(|&&x| first > 0.0 && x >= t * first).count()
            }
            RankCut::Energy(e) => {
                let total: f64 = singular.iter().map(|s| s * s).sum();
                let mut acc = 0.0;
                for (k, s) in singular.iter().enumerate() {
                    acc += s * s;
                    if acc >= e * total * (1.0 - 1e-12) {
                        return k + 1;
                    }
                }
                singular.len()
            }
        }
    }

    /// Exact bytes this scheme stores for a tensor of `shape` held as `dtype` (whose stored size
    /// is `stored_bytes`). A low-rank scheme cut by energy needs the rank: `rank`.
    pub fn bytes(&self, shape: &[u64], dtype: DType, stored_bytes: u64, rank: Option<usize>) -> u64 {
        let numel: u64 = crate::codec::numel(shape).unwrap_or(u64::MAX);
        let arith = Arith::of(dtype);
        let (rows, cols) = rows_cols(shape).unwrap_or((1, numel));
        match self {
            Scheme::Keep => stored_bytes,
            Scheme::F16 | Scheme::Bf16 => numel * 2,
            Scheme::Fp8 { per_channel } => numel + if *per_channel { rows } else { 1 } * arith.bytes(),
            Scheme::Nf4 => numel.div_ceil(2) + numel.div_ceil(NF4_BLOCK as u64) * 4,
            Scheme::Ggml(d) => rows * (cols / d.block_elems() as u64) * d.block_bytes() as u64,
            Scheme::Int { bits, group, asym } => {
                let bits = u64::from(*bits);
                let groups = match group {
                    IntGroup::Channel => 1,
                    IntGroup::Size(n) => cols / *n as u64,
                };
                let (codes, zeros) = if bits == 8 {
                    (numel, rows * groups)
                } else {
                    // pack-quantized: each row packed densely into int32 words; zero points
                    // packed the same way along the other dimension.
                    (rows * (cols * bits).div_ceil(32) * 4, groups * (rows * bits).div_ceil(32) * 4)
                };
                codes + rows * groups * arith.bytes() + if *asym { zeros } else { 0 }
            }
            Scheme::LowRank { factors, .. } => {
                let r = rank.unwrap_or(0) as u64;
                match factors {
                    None => r * (rows + cols) * arith.bytes(),
                    Some(inner) => inner.bytes(&[rows, r], dtype, 0, None) + inner.bytes(&[r, cols], dtype, 0, None),
                }
            }
            Scheme::With { method, base } => {
                let plain = base.bytes(shape, dtype, stored_bytes, rank);
                match (method, &**base) {
                    // The scales fold into the layer before (or the tensor is preview-only).
                    (Method::Awq { .. }, _) => plain,
                    // One f32 exponent for the tensor.
                    (Method::Pow, _) => plain + 4,
                    // Each row keeps its code bits (as many groups up as down); a 2-bit width tag
                    // per group, packed per row into int32 words.
                    (Method::Slim, Scheme::Int { group: IntGroup::Size(n), .. }) => {
                        plain + rows * (2 * (cols / *n as u64)).div_ceil(32) * 4
                    }
                    (Method::Slim, _) => plain,
                    // The base's parts, other codes.
                    (Method::Gptq, _) => plain,
                }
            }
        }
    }
}

/// Values per NF4 block (bitsandbytes' default for 4-bit weights).
pub const NF4_BLOCK: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for name in [
            "keep",
            "f16",
            "bf16",
            "fp8_e4m3",
            "fp8_e4m3_ch",
            "nf4",
            "q8_0",
            "q4_k",
            "q6_k",
            "iq4_nl",
            "int4_g128",
            "int8_ch",
            "int4_g128_asym",
            "int3_g64",
            "lowrank_r64",
            "lowrank_e0.95",
            "lowrank_r64+int8_ch",
            "welore_t0.05",
            "welore_t0.1+int8_ch",
            "int4_g128+awq",
            "int4_g128+awq@0.35",
            "q4_k+awq",
            "int4_g128+slim",
            "int4_ch+pow",
            "int4_g128+gptq",
            "int3_g64_asym+gptq",
            "q4_k+gptq",
            "q6_k+gptq",
            "q4_0+gptq",
        ] {
            let s: Scheme = name.parse().unwrap();
            assert_eq!(s.to_string(), name);
        }
        for bad in [
            "q4_q",
            "int9_ch",
            "int4_g0",
            "int4",
            "lowrank_e1.5",
            "lowrank_r0",
            "q4_k+int8_ch",
            "lowrank_r8+keep",
            "f16+awq",
            "int2_g64+slim",
            "int8_g64+slim",
            "int4_ch+slim",
            "q4_0+pow",
            "int4_g128_asym+pow",
            "welore_t1",
            "int4_g128_asym+slim",
            "q2_k+gptq",
            "iq4_nl+gptq",
            "f16+gptq",
            "nf4+gptq",
        ] {
            assert!(bad.parse::<Scheme>().is_err(), "{bad}");
        }
    }

    #[test]
    fn bytes_are_exact_storage() {
        let q4k: Scheme = "q4_k".parse().unwrap();
        assert_eq!(q4k.bytes(&[576, 1536], DType::F32, 0, None), 497_664);
        let int4: Scheme = "int4_g128".parse().unwrap();
        // codes 4 bits + one bf16 scale per 128 values.
        assert_eq!(int4.bytes(&[256, 1024], DType::BF16, 0, None), 256 * 512 + 256 * 8 * 2);
        let nf4 = Scheme::Nf4;
        assert_eq!(nf4.bytes(&[64, 64], DType::F16, 0, None), 2048 + 64 * 4);
        let slim: Scheme = "int4_g128+slim".parse().unwrap();
        // int4_g128's bytes and 2 bits per group of 128 (8 groups: one word) per row.
        assert_eq!(slim.bytes(&[256, 1024], DType::BF16, 0, None), 256 * 512 + 256 * 8 * 2 + 256 * 4);
        assert_eq!("welore".parse::<Scheme>().unwrap().to_string(), "welore_t0.1");
        let lr: Scheme = "lowrank_r8".parse().unwrap();
        assert_eq!(lr.bytes(&[100, 50], DType::BF16, 0, Some(8)), 8 * 150 * 2);
    }

    #[test]
    fn k_quants_fall_back_as_llama_cpp_does() {
        let q4k: Scheme = "q4_k".parse().unwrap();
        let (fb, why) = q4k.ggml_fallback(&[1536, 576]).unwrap();
        assert_eq!(fb.to_string(), "q5_0");
        assert!(why.contains("576"), "{why}");
        assert_eq!("q6_k".parse::<Scheme>().unwrap().ggml_fallback(&[10, 640]).unwrap().0.to_string(), "q8_0");
        assert!(q4k.ggml_fallback(&[576, 1536]).is_none());
        assert_eq!("q8_0".parse::<Scheme>().unwrap().ggml_fallback(&[4, 48]).unwrap().0, Scheme::F16);
        assert_eq!("q2_k".parse::<Scheme>().unwrap().ggml_fallback(&[4, 576]).unwrap().0.to_string(), "iq4_nl");
        assert_eq!("q3_k".parse::<Scheme>().unwrap().ggml_fallback(&[4, 48]).unwrap().0, Scheme::F16);
    }
}
