//! Encoding one tensor with a scheme, streaming: the bytes each stored part receives (codes,
//! scales, zero points, factors) go to a [`PartSink`] in order, a tile of rows at a time, and
//! the decoded values' error is accumulated on the way. The preview runs exactly this with a
//! sink that keeps nothing; the exporters with sinks that write.
//!
//! Every scheme runs on the selected backend's kernels (a CPU kernel and a WGSL kernel that give
//! the same codes): integers, ggml blocks, float formats. llama.cpp's searches (K-quants, IQ4,
//! imatrix-weighted) have no WGSL encoder: on a GPU run they are encoded on the CPU and measured on
//! the GPU, and the provenance says so. A low rank needs the whole matrix and an SVD (faer, CPU).

use super::scheme::{Scheme, rows_cols};
use crate::cancel::Cancel;
use crate::checkpoint::DEFAULT_CHUNK_ELEMS;
use crate::codec::int::{Arith, GroupError, GroupParams, IntSpec};
use crate::codec::{DType, fp8_e4m3_scale, nf4};
use crate::compute::BlocksSource;
use crate::compute::cpu::CpuBackend;
use crate::compute::gpu::GpuBackend;
use crate::compute::source::{self, SliceSource};
use crate::compute::{Backend, ByteSink, CodeSink, ComputeError, FloatFormat, Provenance, ValueSource};

/// One stored part of an encoded tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Part {
    /// What it is: `codes`, `scale`, `zero_point`, `a.codes`, `b.scale`, ...
    pub role: String,
    /// Its element type as the target format names it (`Q4_K`, `I32`, `BF16`, `F8_E4M3`, `U8`).
    pub dtype: String,
    /// Its shape.
    pub shape: Vec<u64>,
    /// Its exact size.
    pub bytes: u64,
}

/// Where encoded bytes go.
pub trait PartSink {
    /// Called once before any bytes, with the parts to come (again, after a GPU fallback that
    /// starts over: forget everything received before).
    fn begin(&mut self, parts: &[Part]) -> Result<(), ComputeError>;
    /// The next bytes of part `part` (bytes of one part arrive in order; parts may interleave).
    fn put(&mut self, part: usize, bytes: &[u8]) -> Result<(), ComputeError>;
    /// The decoded factors of a low-rank scheme, row-major — Â (rows × `rank`) and B̂ (`rank` ×
    /// cols), Ŵ = Â·B̂ — for an exporter that stores the factors instead of their product.
    fn factors(&mut self, _a: &[f32], _b: &[f32], _rank: usize) -> Result<(), ComputeError> {
        Ok(())
    }
}

/// A sink that keeps nothing (the preview).
#[derive(Clone, Copy, Debug, Default)]
pub struct DiscardBytes;

impl PartSink for DiscardBytes {
    fn begin(&mut self, _parts: &[Part]) -> Result<(), ComputeError> {
        Ok(())
    }
    fn put(&mut self, _part: usize, _bytes: &[u8]) -> Result<(), ComputeError> {
        Ok(())
    }
}

/// A sink that keeps every part in memory (tests, small tensors).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CollectBytes {
    /// The parts announced.
    pub parts: Vec<Part>,
    /// Their bytes.
    pub bytes: Vec<Vec<u8>>,
}

impl PartSink for CollectBytes {
    fn begin(&mut self, parts: &[Part]) -> Result<(), ComputeError> {
        self.parts = parts.to_vec();
        self.bytes = vec![Vec::new(); parts.len()];
        Ok(())
    }
    fn put(&mut self, part: usize, bytes: &[u8]) -> Result<(), ComputeError> {
        self.bytes.get_mut(part).ok_or_else(|| ComputeError::Sink(format!("no part {part}")))?.extend_from_slice(bytes);
        Ok(())
    }
}

/// Receives decoded values in order: `(first value index, values)`.
pub type DecodedSink<'a> = &'a mut (dyn FnMut(u64, &[f32]) -> Result<(), ComputeError> + Send);

/// What encoding a tensor gave.
#[derive(Clone, Debug, PartialEq)]
pub struct Encoded {
    /// The decoded values' error.
    pub error: GroupError,
    /// Exact bytes stored.
    pub bytes: u64,
    /// The rank a low-rank scheme kept.
    pub rank: Option<usize>,
    /// Who computed it.
    pub on: Provenance,
    /// What a method's search chose (`+awq`, `+slim`, `+pow`), with the plain quantizer's error.
    pub method: Option<super::methods::MethodReport>,
}

/// A tensor to encode: its values, stored type and size.
pub struct Job<'a> {
    /// The values.
    pub src: &'a dyn ValueSource,
    /// Its stored element type (fixes the arithmetic of integer and float schemes).
    pub dtype: DType,
    /// Its stored size, for `keep`.
    pub stored_bytes: u64,
    /// One importance per input channel (column), for the weighted error.
    pub importance: Option<&'a [f32]>,
    /// An imatrix row for llama.cpp's weighted searches (the ggml block types), when one was
    /// imported: the same vector as `importance` then.
    pub search: Option<&'a [f32]>,
    /// The second moment of the tensor's inputs, for `+gptq`.
    pub hessian: Option<&'a crate::checkpoint::imatrix::Hessian>,
    /// Whether a method also measures the alternatives it is compared with in reports (GPTQ:
    /// plain rounding and AWQ on the same base); off where only the values are used.
    pub compare: bool,
}

impl<'a> Job<'a> {
    /// A job over f32 values with nothing beside them (no importance, no Hessian): tests, and
    /// encodes of values made in memory.
    pub fn of_f32(src: &'a dyn ValueSource) -> Self {
        Job { src, dtype: DType::F32, stored_bytes: 0, importance: None, search: None, hessian: None, compare: true }
    }
}

/// Encodes `job` with `scheme`, sending the stored bytes to `sink` and the decoded values to
/// `decoded` when given.
pub fn encode(
    backend: &dyn Backend,
    job: &Job<'_>,
    scheme: &Scheme,
    sink: &mut dyn PartSink,
    decoded: Option<DecodedSink<'_>>,
    cancel: &Cancel,
) -> Result<Encoded, ComputeError> {
    let src = job.src;
    scheme.check(src.shape()).map_err(|m| source::shape_error(src, m))?;
    if let Some(imp) = job.importance {
        let cols = rows_cols(src.shape()).map_or(src.numel(), |(_, c)| c);
        if imp.len() as u64 != cols {
            return Err(source::shape_error(
                src,
                format!("the importance vector has {} values for {cols} input channels", imp.len()),
            ));
        }
    }
    let arith = Arith::of(job.dtype);
    match scheme {
        Scheme::Keep => keep(job, sink, decoded, cancel),
        Scheme::Int { .. } => {
            let (_, cols) = rows_cols(src.shape()).unwrap_or((1, src.numel()));
            let spec = scheme.int_spec(cols, arith).ok_or_else(|| source::shape_error(src, "not an integer scheme"))?;
            let mut adapter = IntBytes::new(spec, src.shape(), sink, decoded)?;
            let ran = backend.quantize_int(src, &spec, job.importance, &mut adapter, cancel)?;
            adapter.finish()?;
            Ok(Encoded { error: ran.value, bytes: adapter.total, rank: None, on: ran.on, method: None })
        }
        Scheme::Ggml(dtype) => {
            let shape = src.shape();
            let part = Part {
                role: "codes".into(),
                dtype: dtype.name().to_owned(),
                shape: shape.to_vec(),
                bytes: scheme.bytes(shape, job.dtype, job.stored_bytes, None),
            };
            let bytes = part.bytes;
            sink.begin(std::slice::from_ref(&part))?;
            if backend.asks_gpu() && !GpuBackend::encodes_ggml(*dtype, job.search.is_some()) {
                return search_on_cpu_error_on_gpu(backend, job, *dtype, bytes, sink, decoded, cancel);
            }
            let mut adapter = GgmlBytes { dtype: *dtype, sink, decoded, keep: None };
            let ran = backend.encode_ggml(src, *dtype, job.search, job.importance, &mut adapter, cancel)?;
            Ok(Encoded { error: ran.value, bytes, rank: None, on: ran.on, method: None })
        }
        Scheme::LowRank { cut, factors } => {
            super::lowrank::encode(backend, job, *cut, factors.as_deref(), sink, decoded, cancel)
        }
        Scheme::With { method, base } => {
            super::methods::encode_with_method(backend, job, *method, base, sink, decoded, cancel)
        }
        Scheme::F16 | Scheme::Bf16 | Scheme::Fp8 { .. } | Scheme::Nf4 => {
            encode_float(backend, job, scheme, sink, decoded, cancel)
        }
    }
}

/// `keep`: the stored bytes as they are; decoded values are the values themselves.
pub(super) fn keep(
    job: &Job<'_>,
    sink: &mut dyn PartSink,
    mut decoded: Option<DecodedSink<'_>>,
    cancel: &Cancel,
) -> Result<Encoded, ComputeError> {
    let src = job.src;
    sink.begin(&[Part {
        role: "codes".into(),
        dtype: job.dtype.name().to_owned(),
        shape: src.shape().to_vec(),
        bytes: job.stored_bytes,
    }])?;
    let mut error = GroupError::default();
    let mut buf = Vec::new();
    let stored = src.stored();
    let per_block = job.dtype.block_bytes() as u64;
    let block = src.block_elems().max(1);
    for range in source::chunks(src, 4 * DEFAULT_CHUNK_ELEMS / block * block) {
        if cancel.is_cancelled() {
            return Err(ComputeError::Cancelled);
        }
        src.read(range.clone(), &mut buf)?;
        error.push_slice(&buf, &buf, 0, 1, None);
        if let Some(st) = stored {
            let (a, b) = ((range.start / block * per_block) as usize, (range.end / block * per_block) as usize);
            sink.put(0, &st.bytes[a..b.min(st.bytes.len())])?;
        } else {
            // Values moved by a transform (rows permuted, an offset): stored again in the
            // tensor's own float type, which holds them exactly; block types cannot be kept so.
            let mut bytes = Vec::with_capacity(buf.len() * 4);
            match job.dtype {
                DType::F32 => buf.iter().for_each(|v| bytes.extend_from_slice(&v.to_le_bytes())),
                DType::F16 => buf.iter().for_each(|v| bytes.extend_from_slice(&half::f16::from_f32(*v).to_le_bytes())),
                DType::BF16 => {
                    buf.iter().for_each(|v| bytes.extend_from_slice(&half::bf16::from_f32(*v).to_le_bytes()))
                }
                other => {
                    return Err(source::shape_error(
                        src,
                        format!("its {other} blocks cannot be kept once their values are transformed; choose a scheme"),
                    ));
                }
            }
            sink.put(0, &bytes)?;
        }
        if let Some(d) = decoded.as_deref_mut() {
            d(range.start, &buf)?;
        }
    }
    Ok(Encoded { error, bytes: job.stored_bytes, rank: None, on: CpuBackend.provenance(), method: None })
}

/// Turns an integer kernel's group parameters and codes into compressed-tensors' stored parts:
/// codes packed densely into int32 words per row (`pack-quantized`, 2..7 bits) or int8
/// (`int-quantized`), scales in the tensor's type, zero points int8 or packed along columns.
struct IntBytes<'a, 'd> {
    spec: IntSpec,
    rows: u64,
    cols: usize,
    sink: &'a mut dyn PartSink,
    decoded: Option<DecodedSink<'d>>,
    /// Codes of the row being filled.
    row: Vec<i8>,
    /// Zero points of every group (packed at the end: they pack along columns).
    zeros: Vec<i8>,
    values_done: u64,
    total: u64,
    parts: Vec<Part>,
}

impl<'a, 'd> IntBytes<'a, 'd> {
    fn new(
        spec: IntSpec,
        shape: &[u64],
        sink: &'a mut dyn PartSink,
        decoded: Option<DecodedSink<'d>>,
    ) -> Result<Self, ComputeError> {
        let numel: u64 = crate::codec::numel(shape).unwrap_or(u64::MAX);
        let (rows, cols) = rows_cols(shape).unwrap_or((1, numel));
        let parts = int_parts(&spec, shape);
        let total = parts.iter().map(|p| p.bytes).sum();
        Ok(IntBytes {
            spec,
            rows,
            cols: cols as usize,
            sink,
            decoded,
            row: Vec::new(),
            zeros: Vec::new(),
            values_done: 0,
            total,
            parts,
        })
    }

    fn finish(&mut self) -> Result<(), ComputeError> {
        if !self.spec.asym {
            return Ok(());
        }
        let groups = self.cols / self.spec.group;
        let mut out = Vec::new();
        if self.spec.bits == 8 {
            out.extend(self.zeros.iter().map(|&z| z as u8));
        } else {
            // Packed along dim 0: for each group column, the zero points of every row.
            for g in 0..groups {
                let column: Vec<i8> = (0..self.rows as usize).map(|r| self.zeros[r * groups + g]).collect();
                pack_bits(&column, self.spec.bits, &mut out);
            }
            // Transposed back to (words, groups) row-major.
            let words = (self.rows * u64::from(self.spec.bits)).div_ceil(32) as usize;
            let by_group: Vec<[u8; 4]> = out.chunks_exact(4).map(|c| [c[0], c[1], c[2], c[3]]).collect();
            out = (0..words)
                .flat_map(|w| (0..groups).map(move |g| (g, w)))
                .flat_map(|(g, w)| by_group[g * words + w])
                .collect();
        }
        self.sink.put(2, &out)
    }
}

/// Stores integer codes made elsewhere (GPTQ) as [`encode`] stores a kernel's: every group's
/// parameters and codes, in order; returns the bytes stored.
pub(super) fn write_int_codes(
    spec: IntSpec,
    shape: &[u64],
    params: &[GroupParams],
    codes: &[i8],
    sink: &mut dyn PartSink,
    decoded: Option<DecodedSink<'_>>,
) -> Result<u64, ComputeError> {
    let mut adapter = IntBytes::new(spec, shape, sink, decoded)?;
    adapter.begin(params.len() as u64)?;
    adapter.put(0, params, codes)?;
    adapter.finish()?;
    Ok(adapter.total)
}

/// The stored parts of integer codes of `spec` for a tensor of `shape`, as compressed-tensors
/// lays them out: codes (int8, or packed into int32 words per row), scales in the tensor's type,
/// zero points when asymmetric (int8, or packed along the output dimension).
pub(crate) fn int_parts(spec: &IntSpec, shape: &[u64]) -> Vec<Part> {
    let numel: u64 = crate::codec::numel(shape).unwrap_or(u64::MAX);
    let (rows, cols) = rows_cols(shape).unwrap_or((1, numel));
    let groups = cols / spec.group as u64;
    let bits = u64::from(spec.bits);
    let mut parts = vec![if spec.bits == 8 {
        Part { role: "codes".into(), dtype: "I8".into(), shape: shape.to_vec(), bytes: numel }
    } else {
        let words = (cols * bits).div_ceil(32);
        Part { role: "codes".into(), dtype: "I32".into(), shape: vec![rows, words], bytes: rows * words * 4 }
    }];
    parts.push(Part {
        role: "scale".into(),
        dtype: spec.arith.dtype().name().to_owned(),
        shape: vec![rows, groups],
        bytes: rows * groups * spec.arith.bytes(),
    });
    if spec.asym {
        parts.push(if spec.bits == 8 {
            Part { role: "zero_point".into(), dtype: "I8".into(), shape: vec![rows, groups], bytes: rows * groups }
        } else {
            let words = (rows * bits).div_ceil(32);
            Part {
                role: "zero_point".into(),
                dtype: "I32".into(),
                shape: vec![words, groups],
                bytes: words * groups * 4,
            }
        });
    }
    parts
}

/// Packs `b`-bit codes (offset by 2^(b−1) to unsigned) densely, least significant bits first,
/// into little-endian int32 words, as compressed-tensors' `pack_to_int32` does for one row.
pub fn pack_bits(codes: &[i8], bits: u32, out: &mut Vec<u8>) {
    let offset = 1i32 << (bits - 1);
    let (mut acc, mut filled) = (0u64, 0u32);
    out.reserve((codes.len() * bits as usize).div_ceil(32) * 4);
    for &c in codes {
        acc |= ((i32::from(c) + offset) as u64 & ((1 << bits) - 1)) << filled;
        filled += bits;
        if filled >= 32 {
            out.extend_from_slice(&(acc as u32).to_le_bytes());
            acc >>= 32;
            filled -= 32;
        }
    }
    if filled > 0 {
        out.extend_from_slice(&(acc as u32).to_le_bytes());
    }
}

impl CodeSink for IntBytes<'_, '_> {
    fn begin(&mut self, _groups: u64) -> Result<(), ComputeError> {
        self.row.clear();
        self.zeros.clear();
        self.values_done = 0;
        self.sink.begin(&self.parts)
    }

    fn put(&mut self, _first_group: u64, params: &[GroupParams], codes: &[i8]) -> Result<(), ComputeError> {
        let mut scales = Vec::with_capacity(params.len() * 2);
        let scale_dtype = self.spec.arith.dtype();
        let sv: Vec<f32> = params.iter().map(|p| p.scale).collect();
        crate::codec::encode(scale_dtype, &sv, &mut scales).map_err(|e| ComputeError::Sink(e.to_string()))?;
        self.sink.put(1, &scales)?;
        if self.spec.asym {
            self.zeros.extend(params.iter().map(|p| p.zero));
        }
        if let Some(d) = self.decoded.as_deref_mut() {
            let mut out = Vec::with_capacity(codes.len());
            crate::codec::int::decode(codes, params, &self.spec, &mut out);
            d(self.values_done, &out)?;
        }
        self.values_done += codes.len() as u64;
        if self.spec.bits == 8 {
            let bytes: Vec<u8> = codes.iter().map(|&c| c as u8).collect();
            return self.sink.put(0, &bytes);
        }
        let mut out = Vec::new();
        let mut rest = codes;
        while !rest.is_empty() {
            let take = (self.cols - self.row.len()).min(rest.len());
            self.row.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.row.len() == self.cols {
                pack_bits(&self.row, self.spec.bits, &mut out);
                self.row.clear();
            }
        }
        self.sink.put(0, &out)
    }
}

/// llama.cpp's searches (K-quants, IQ4, imatrix-weighted) when the GPU was asked for: the search
/// runs on the CPU (no WGSL encoder), its blocks are kept, and the GPU decodes them and measures
/// the error. Memory: the encoded blocks of one tensor (a quarter to a seventh of its f32 size).
fn search_on_cpu_error_on_gpu(
    backend: &dyn Backend,
    job: &Job<'_>,
    dtype: DType,
    bytes: u64,
    sink: &mut dyn PartSink,
    decoded: Option<DecodedSink<'_>>,
    cancel: &Cancel,
) -> Result<Encoded, ComputeError> {
    let src = job.src;
    let mut adapter = GgmlBytes { dtype, sink, decoded, keep: Some(Vec::new()) };
    CpuBackend.encode_ggml_rows(src, dtype, job.search, job.importance, &mut adapter, false, cancel)?;
    let kept = adapter.keep.take().unwrap_or_default();
    let blocks = BlocksSource::new(src.name(), src.shape(), dtype, &kept)?;
    let ran = backend.measure(src, &blocks, job.importance, cancel)?;
    let why = format!(
        "no WGSL encoder for {dtype}{}: llama.cpp's search ran on the CPU, the error on the {}",
        if job.search.is_some() { " with an importance matrix" } else { "" },
        ran.on.backend
    );
    let on = CpuBackend.provenance().with_fallback(why).merge(&ran.on);
    Ok(Encoded { error: ran.value, bytes, rank: None, on, method: None })
}

/// Forwards a block kernel's bytes to part 0, decoding them for `decoded` when asked (and
/// keeping a copy when `keep` is set).
struct GgmlBytes<'a, 'd> {
    dtype: DType,
    sink: &'a mut dyn PartSink,
    decoded: Option<DecodedSink<'d>>,
    keep: Option<Vec<u8>>,
}

impl ByteSink for GgmlBytes<'_, '_> {
    fn begin(&mut self, _bytes: u64) -> Result<(), ComputeError> {
        Ok(())
    }

    fn put(&mut self, first_value: u64, _part: usize, bytes: &[u8]) -> Result<(), ComputeError> {
        if let Some(d) = self.decoded.as_deref_mut() {
            let n = bytes.len() / self.dtype.block_bytes() * self.dtype.block_elems();
            let mut y = vec![0f32; n];
            crate::codec::decode(self.dtype, bytes, &mut y).map_err(|e| ComputeError::Sink(e.to_string()))?;
            d(first_value, &y)?;
        }
        if let Some(k) = self.keep.as_mut() {
            k.extend_from_slice(bytes);
        }
        self.sink.put(0, bytes)
    }
}

/// The float format of a scheme, and the parts it stores.
/// The float format of a scheme; FP8 with one scale per tensor needs the tensor's abs-max first
/// (a pass on the backend, whose provenance joins the result's).
fn float_format(
    backend: &dyn Backend,
    scheme: &Scheme,
    job: &Job<'_>,
    arith: Arith,
    cancel: &Cancel,
) -> Result<(FloatFormat, Option<Provenance>), ComputeError> {
    Ok(match scheme {
        Scheme::F16 => (FloatFormat::F16, None),
        Scheme::Bf16 => (FloatFormat::Bf16, None),
        Scheme::Nf4 => (FloatFormat::Nf4 { arith }, None),
        Scheme::Fp8 { per_channel: true } => (FloatFormat::Fp8 { tensor_scale: None, arith }, None),
        Scheme::Fp8 { per_channel: false } => {
            let ran = backend.abs_max(job.src, cancel)?;
            (FloatFormat::Fp8 { tensor_scale: Some(fp8_e4m3_scale(ran.value, arith)), arith }, Some(ran.on))
        }
        other => return Err(source::shape_error(job.src, format!("{other} is not a float format"))),
    })
}

pub(crate) fn float_parts(format: &FloatFormat, shape: &[u64]) -> Vec<Part> {
    let numel: u64 = crate::codec::numel(shape).unwrap_or(u64::MAX);
    let rows = rows_cols(shape).map_or(1, |(r, _)| r);
    let codes =
        |dtype: &str, bytes: u64| Part { role: "codes".into(), dtype: dtype.into(), shape: shape.to_vec(), bytes };
    match *format {
        FloatFormat::F16 => vec![codes("F16", numel * 2)],
        FloatFormat::Bf16 => vec![codes("BF16", numel * 2)],
        FloatFormat::Nf4 { .. } => {
            let blocks = numel.div_ceil(nf4::BLOCK as u64);
            vec![
                Part {
                    role: "codes".into(),
                    dtype: "U8".into(),
                    shape: vec![numel.div_ceil(2)],
                    bytes: numel.div_ceil(2),
                },
                Part { role: "absmax".into(), dtype: "F32".into(), shape: vec![blocks], bytes: blocks * 4 },
            ]
        }
        FloatFormat::Fp8 { tensor_scale, arith } => {
            let n = if tensor_scale.is_some() { 1 } else { rows };
            vec![
                codes("F8_E4M3", numel),
                Part {
                    role: "scale".into(),
                    dtype: arith.dtype().name().to_owned(),
                    shape: if tensor_scale.is_some() { vec![1] } else { vec![rows, 1] },
                    bytes: n * arith.bytes(),
                },
            ]
        }
    }
}

/// Encodes with a float format on the backend, forwarding parts (and decoded values).
fn encode_float(
    backend: &dyn Backend,
    job: &Job<'_>,
    scheme: &Scheme,
    sink: &mut dyn PartSink,
    decoded: Option<DecodedSink<'_>>,
    cancel: &Cancel,
) -> Result<Encoded, ComputeError> {
    let arith = Arith::of(job.dtype);
    let (format, scale_on) = float_format(backend, scheme, job, arith, cancel)?;
    let parts = float_parts(&format, job.src.shape());
    sink.begin(&parts)?;
    if let FloatFormat::Fp8 { tensor_scale: Some(s), arith } = format {
        let mut b = Vec::new();
        crate::codec::encode(arith.dtype(), &[s], &mut b).map_err(|e| ComputeError::Sink(e.to_string()))?;
        sink.put(1, &b)?;
    }
    let mut adapter = FloatBytes { sink, decoded };
    let ran = backend.encode_float(job.src, &format, job.importance, &mut adapter, cancel)?;
    let on = scale_on.map_or_else(|| ran.on.clone(), |s| s.merge(&ran.on));
    Ok(Encoded { error: ran.value, bytes: parts.iter().map(|p| p.bytes).sum(), rank: None, on, method: None })
}

/// Forwards a float kernel's parts, and its decoded values when asked.
struct FloatBytes<'a, 'd> {
    sink: &'a mut dyn PartSink,
    decoded: Option<DecodedSink<'d>>,
}

impl ByteSink for FloatBytes<'_, '_> {
    fn begin(&mut self, _bytes: u64) -> Result<(), ComputeError> {
        Ok(())
    }
    fn put(&mut self, _first_value: u64, part: usize, bytes: &[u8]) -> Result<(), ComputeError> {
        self.sink.put(part, bytes)
    }
    fn wants_decoded(&self) -> bool {
        self.decoded.is_some()
    }
    fn decoded(&mut self, first_value: u64, values: &[f32]) -> Result<(), ComputeError> {
        match self.decoded.as_deref_mut() {
            Some(d) => d(first_value, values),
            None => Ok(()),
        }
    }
}

/// Encodes a matrix held in memory (a low rank's factors) and returns its decoded values.
pub(crate) fn encode_in_memory(
    backend: &dyn Backend,
    src: &SliceSource<'_>,
    dtype: DType,
    scheme: &Scheme,
    sink: &mut dyn PartSink,
    cancel: &Cancel,
) -> Result<(Vec<f32>, Encoded), ComputeError> {
    let job = Job { src, dtype, stored_bytes: 0, importance: None, search: None, hessian: None, compare: true };
    let mut out = vec![0f32; src.numel() as usize];
    let mut put = |first: u64, v: &[f32]| -> Result<(), ComputeError> {
        out[first as usize..first as usize + v.len()].copy_from_slice(v);
        Ok(())
    };
    let enc = encode(backend, &job, scheme, sink, Some(&mut put), cancel)?;
    Ok((out, enc))
}
