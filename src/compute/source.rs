//! Where a kernel's values come from. Every kernel reads through [`ValueSource`], so the same
//! kernel runs on a checkpoint tensor ([`TensorRef`]), on values in memory ([`SliceSource`]: a
//! low-rank factor, a residual, activations) or on chunks made on demand ([`FnSource`]).
//!
//! Sources are read by element range. Kernels that need two passes read a range twice; one-pass
//! kernels (quantization) ask for ranges once each, in increasing order, so a producer that can
//! only go forward serves them too.

use std::ops::Range;

use super::ComputeError;
use crate::checkpoint::hf_names::{Transform, gguf_row_of_hf_row, hf_row_of_gguf_row};
use crate::checkpoint::{Checkpoint, TensorInfo};
use crate::codec::DType;

/// The stored bytes of a source, for backends that decode on their own (the GPU) or read bit
/// patterns (the CPU's statistics of 8- and 16-bit types).
#[derive(Clone, Copy, Debug)]
pub struct Stored<'a> {
    /// The element type of `bytes`.
    pub dtype: DType,
    /// Every element, in order.
    pub bytes: &'a [u8],
}

/// Values a kernel can read, by element range.
pub trait ValueSource: Sync {
    /// A name for reports and errors (the tensor's name, or what the values are).
    fn name(&self) -> &str;

    /// Shape, outermost first.
    fn shape(&self) -> &[u64];

    /// Elements per storage block: every range a kernel reads starts on a multiple of this.
    fn block_elems(&self) -> u64 {
        1
    }

    /// Decodes the elements `range` into `out` (resized to fit).
    fn read(&self, range: Range<u64>, out: &mut Vec<f32>) -> Result<(), ComputeError>;

    /// The stored bytes, when the source has them (a checkpoint tensor).
    fn stored(&self) -> Option<Stored<'_>> {
        None
    }

    /// The values as one f32 slice, when they already are one in memory (no copy needed).
    fn as_f32(&self) -> Option<&[f32]> {
        None
    }

    /// Called when a kernel is done with the source: a large checkpoint tensor gives its pages
    /// back to the OS ([`crate::checkpoint::Checkpoint::release`]). Nothing by default.
    fn finished(&self) {}

    /// Called as a kernel that reads [`ValueSource::stored`] in place is done with the stored
    /// bytes `bytes`: a large checkpoint tensor gives their pages back. Nothing by default.
    fn release_stored(&self, bytes: Range<u64>) {
        let _ = bytes;
    }

    /// Number of elements (saturating: shapes too large to count are refused where opened).
    fn numel(&self) -> u64 {
        self.shape().iter().fold(1u64, |a, &d| a.saturating_mul(d))
    }

    /// `(rows, cols)` seen as a matrix: `[dim0, product of the rest]`.
    fn matrix_shape(&self) -> (usize, usize) {
        let shape = self.shape();
        let rows = shape.first().copied().unwrap_or(1);
        let cols = shape.iter().skip(1).fold(1u64, |a, &d| a.saturating_mul(d));
        (usize::try_from(rows).unwrap_or(usize::MAX), usize::try_from(cols).unwrap_or(usize::MAX))
    }

    /// Whether the shape has at least two dimensions and no empty one.
    fn is_matrix(&self) -> bool {
        let (rows, cols) = self.matrix_shape();
        self.shape().len() >= 2 && rows > 0 && cols > 0
    }
}

/// Element ranges covering `src` in order, each at most `chunk` long (rounded down to whole
/// storage blocks, at least one block).
pub fn chunks(src: &dyn ValueSource, chunk: u64) -> impl Iterator<Item = Range<u64>> + use<> {
    crate::checkpoint::block_ranges(src.numel(), src.block_elems(), chunk)
}

/// Greatest common divisor.
pub fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Least common multiple (of positive numbers).
pub fn lcm(a: u64, b: u64) -> u64 {
    a / gcd(a, b).max(1) * b
}

/// How a streaming CPU kernel cuts a source: batches of about 4 × DEFAULT_CHUNK_ELEMS values read
/// at a time, and tasks of about 64 Ki values each thread takes, both whole multiples of `unit`
/// (the values that must stay together: rows, groups, storage blocks).
pub fn batch_and_task(unit: u64) -> (u64, usize) {
    let unit = unit.max(1);
    let batch = (4 * crate::checkpoint::DEFAULT_CHUNK_ELEMS / unit).max(1) * unit;
    let task = (1u64 << 16).div_ceil(unit) * unit;
    (batch, task as usize)
}

/// The values `range` of `src`: its own f32 slice when it has one (no copy), else read into
/// `buf`.
pub fn values_in<'a>(
    src: &'a dyn ValueSource,
    range: Range<u64>,
    buf: &'a mut Vec<f32>,
) -> Result<&'a [f32], ComputeError> {
    match src.as_f32() {
        Some(all) => all
            .get(range.start as usize..range.end as usize)
            .ok_or_else(|| shape_error(src, format!("range {range:?} is outside the values"))),
        None => {
            src.read(range, buf)?;
            Ok(buf)
        }
    }
}

/// The values of any element range `range`, which need not start or end on a storage block: read
/// on the whole blocks around it into `buf` (or borrowed in place from f32 sources) and cut.
pub fn segment<'a>(
    src: &'a dyn ValueSource,
    range: Range<u64>,
    buf: &'a mut Vec<f32>,
) -> Result<&'a [f32], ComputeError> {
    let block = src.block_elems().max(1);
    let start = range.start / block * block;
    let end = range.end.div_ceil(block).saturating_mul(block).min(src.numel());
    let values = values_in(src, start..end, buf)?;
    let skip = (range.start - start) as usize;
    values
        .get(skip..skip + (range.end - range.start) as usize)
        .ok_or_else(|| shape_error(src, format!("range {range:?} is outside the values")))
}

/// `(rows, cols)` of a source that must be a matrix for `what`, or an error saying so.
pub fn require_matrix(src: &dyn ValueSource, what: &str) -> Result<(usize, usize), ComputeError> {
    if !src.is_matrix() {
        let shape: Vec<String> = src.shape().iter().map(u64::to_string).collect();
        return Err(shape_error(src, format!("a matrix is needed for {what}; the shape is [{}]", shape.join(", "))));
    }
    Ok(src.matrix_shape())
}

/// A shape error naming the source.
pub fn shape_error(src: &dyn ValueSource, message: impl Into<String>) -> ComputeError {
    ComputeError::Shape { tensor: src.name().to_owned(), message: message.into() }
}

/// A tensor of a checkpoint, decoded through the codecs.
#[derive(Clone, Copy)]
pub struct TensorRef<'a> {
    /// The checkpoint holding it.
    pub ckpt: &'a Checkpoint,
    /// The tensor.
    pub tensor: &'a TensorInfo,
}

impl<'a> TensorRef<'a> {
    /// A reference to `tensor` in `ckpt`.
    pub fn new(ckpt: &'a Checkpoint, tensor: &'a TensorInfo) -> Self {
        Self { ckpt, tensor }
    }
}

impl ValueSource for TensorRef<'_> {
    fn name(&self) -> &str {
        &self.tensor.name
    }

    fn shape(&self) -> &[u64] {
        &self.tensor.shape
    }

    fn block_elems(&self) -> u64 {
        self.tensor.dtype.block_elems() as u64
    }

    fn read(&self, range: Range<u64>, out: &mut Vec<f32>) -> Result<(), ComputeError> {
        Ok(self.ckpt.decode_range(self.tensor, range, out)?)
    }

    fn finished(&self) {
        self.ckpt.release(self.tensor);
    }

    fn release_stored(&self, bytes: Range<u64>) {
        self.ckpt.release_part(self.tensor, bytes);
    }

    fn stored(&self) -> Option<Stored<'_>> {
        let bytes = self.ckpt.raw_bytes(self.tensor).ok()?;
        Some(Stored { dtype: self.tensor.dtype, bytes })
    }

    fn as_f32(&self) -> Option<&[f32]> {
        // F32 little-endian bytes that are 4-aligned in the map are used in place.
        if cfg!(target_endian = "little") && self.tensor.dtype == DType::F32 {
            let values = bytemuck::try_cast_slice::<u8, f32>(self.ckpt.raw_bytes(self.tensor).ok()?).ok()?;
            return (values.len() as u64 == self.tensor.numel()).then_some(values);
        }
        None
    }
}

/// Which form a [`Transformed`] source reads a tensor in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Toward {
    /// A GGUF tensor read as transformers holds it: Q/K rows in transformers' order, a norm's
    /// stored offset taken off.
    Transformers,
    /// A transformers tensor read as llama.cpp's converter stores it: Q/K rows interleaved, a
    /// Gemma norm's `+1` added.
    Gguf,
}

/// A checkpoint tensor read in the other naming's form ([`crate::checkpoint::hf_names::Transform`]).
pub struct Transformed<'a> {
    inner: TensorRef<'a>,
    transform: Transform,
    toward: Toward,
}

impl<'a> Transformed<'a> {
    /// `tensor` of `ckpt` read through `transform` toward `toward`; an error when its rows do not
    /// split into the heads the transform names.
    pub fn new(
        ckpt: &'a Checkpoint,
        tensor: &'a TensorInfo,
        transform: Transform,
        toward: Toward,
    ) -> Result<Self, ComputeError> {
        if let Transform::Rows { heads } = transform {
            let rows = tensor.shape.first().copied().unwrap_or(0);
            if tensor.shape.is_empty() || tensor.shape.len() > 2 || heads == 0 || rows % (2 * heads) != 0 {
                return Err(ComputeError::Shape {
                    tensor: tensor.name.clone(),
                    message: format!("{rows} rows do not split into {heads} heads of even size"),
                });
            }
        }
        Ok(Transformed { inner: TensorRef::new(ckpt, tensor), transform, toward })
    }
}

impl ValueSource for Transformed<'_> {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn shape(&self) -> &[u64] {
        self.inner.shape()
    }

    fn block_elems(&self) -> u64 {
        self.inner.block_elems()
    }

    fn stored(&self) -> Option<Stored<'_>> {
        // Untransformed values are the stored bytes themselves (kept as they are by `keep`).
        if self.transform == Transform::None { self.inner.stored() } else { None }
    }

    fn as_f32(&self) -> Option<&[f32]> {
        if self.transform == Transform::None { self.inner.as_f32() } else { None }
    }

    fn release_stored(&self, bytes: Range<u64>) {
        self.inner.release_stored(bytes);
    }

    fn finished(&self) {
        self.inner.finished();
    }

    fn read(&self, range: Range<u64>, out: &mut Vec<f32>) -> Result<(), ComputeError> {
        match self.transform {
            Transform::None => self.inner.read(range, out),
            Transform::Offset(delta) => {
                self.inner.read(range, out)?;
                let delta = if self.toward == Toward::Gguf { delta } else { -delta };
                out.iter_mut().for_each(|v| *v += delta);
                Ok(())
            }
            Transform::Rows { heads } => {
                let rows = self.inner.shape()[0];
                let cols = self.inner.numel() / rows.max(1);
                out.clear();
                let mut part = Vec::new();
                let mut at = range.start;
                while at < range.end {
                    let (row, col) = (at / cols, at % cols);
                    let end = range.end.min((row + 1) * cols);
                    let from = match self.toward {
                        Toward::Transformers => gguf_row_of_hf_row(row, rows, heads),
                        Toward::Gguf => hf_row_of_gguf_row(row, rows, heads),
                    };
                    self.inner.read(from * cols + col..from * cols + (end - row * cols), &mut part)?;
                    out.extend_from_slice(&part);
                    at = end;
                }
                Ok(())
            }
        }
    }
}

/// Values already in memory: a low-rank factor, a residual, activations.
pub struct SliceSource<'a> {
    name: String,
    shape: Vec<u64>,
    values: &'a [f32],
}

impl<'a> SliceSource<'a> {
    /// `values` with `shape` (outermost first); an error when the shape does not hold them.
    pub fn new(name: impl Into<String>, shape: &[u64], values: &'a [f32]) -> Result<Self, ComputeError> {
        let name = name.into();
        let n = shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d));
        if n != Some(values.len() as u64) {
            return Err(ComputeError::Shape {
                tensor: name,
                message: format!("shape {shape:?} does not hold {} values", values.len()),
            });
        }
        Ok(Self { name, shape: shape.to_vec(), values })
    }

    /// A vector of the values.
    pub fn vector(name: impl Into<String>, values: &'a [f32]) -> Self {
        Self { name: name.into(), shape: vec![values.len() as u64], values }
    }
}

impl ValueSource for SliceSource<'_> {
    fn name(&self) -> &str {
        &self.name
    }

    fn shape(&self) -> &[u64] {
        &self.shape
    }

    fn read(&self, range: Range<u64>, out: &mut Vec<f32>) -> Result<(), ComputeError> {
        let slice = usize::try_from(range.start)
            .ok()
            .zip(usize::try_from(range.end).ok())
            .and_then(|(a, b)| self.values.get(a..b))
            .ok_or_else(|| shape_error(self, format!("range {range:?} is outside {} values", self.values.len())))?;
        out.clear();
        out.extend_from_slice(slice);
        Ok(())
    }

    fn as_f32(&self) -> Option<&[f32]> {
        Some(self.values)
    }
}

/// Values produced on demand, a range at a time, by a function: a stream of chunks (a tensor
/// transformed on the fly, activations of a forward pass).
pub struct FnSource<F> {
    name: String,
    shape: Vec<u64>,
    block: u64,
    produce: F,
}

impl<F> FnSource<F>
where
    F: Fn(Range<u64>, &mut Vec<f32>) -> Result<(), ComputeError> + Sync,
{
    /// A source of `shape` whose ranges `produce` fills; ranges start on multiples of `block`.
    pub fn new(name: impl Into<String>, shape: &[u64], block: u64, produce: F) -> Self {
        Self { name: name.into(), shape: shape.to_vec(), block: block.max(1), produce }
    }
}

impl<F> ValueSource for FnSource<F>
where
    F: Fn(Range<u64>, &mut Vec<f32>) -> Result<(), ComputeError> + Sync,
{
    fn name(&self) -> &str {
        &self.name
    }

    fn shape(&self) -> &[u64] {
        &self.shape
    }

    fn block_elems(&self) -> u64 {
        self.block
    }

    fn read(&self, range: Range<u64>, out: &mut Vec<f32>) -> Result<(), ComputeError> {
        let len = range.end.saturating_sub(range.start);
        (self.produce)(range.clone(), out)?;
        if out.len() as u64 != len {
            return Err(shape_error(self, format!("produced {} values for the range {range:?}", out.len())));
        }
        Ok(())
    }
}

/// Encoded blocks held in memory, read as the values they decode to: the output of an encoder
/// (a K-quant search on the CPU) handed to a kernel that decodes on its own device.
pub struct BlocksSource<'a> {
    name: String,
    shape: Vec<u64>,
    dtype: DType,
    bytes: &'a [u8],
}

impl<'a> BlocksSource<'a> {
    /// `bytes` holding every value of `shape` as `dtype` blocks, or why not.
    pub fn new(name: impl Into<String>, shape: &[u64], dtype: DType, bytes: &'a [u8]) -> Result<Self, ComputeError> {
        let name = name.into();
        let numel: u64 = crate::codec::numel(shape).unwrap_or(u64::MAX);
        if dtype.byte_len(numel) != Some(bytes.len() as u64) {
            return Err(ComputeError::Shape {
                tensor: name,
                message: format!("{} bytes do not hold {numel} values of {dtype}", bytes.len()),
            });
        }
        Ok(Self { name, shape: shape.to_vec(), dtype, bytes })
    }
}

impl ValueSource for BlocksSource<'_> {
    fn name(&self) -> &str {
        &self.name
    }

    fn shape(&self) -> &[u64] {
        &self.shape
    }

    fn block_elems(&self) -> u64 {
        self.dtype.block_elems() as u64
    }

    fn read(&self, range: Range<u64>, out: &mut Vec<f32>) -> Result<(), ComputeError> {
        let (be, bb) = (self.dtype.block_elems() as u64, self.dtype.block_bytes() as u64);
        if !range.start.is_multiple_of(be)
            || range.end > self.numel()
            || (!range.end.is_multiple_of(be) && range.end != self.numel())
        {
            return Err(shape_error(self, format!("range {range:?} is not whole {} blocks", self.dtype)));
        }
        let bytes = &self.bytes[(range.start / be * bb) as usize..(range.end.div_ceil(be) * bb) as usize];
        out.clear();
        out.resize((range.end - range.start) as usize, 0.0);
        crate::codec::decode(self.dtype, bytes, out).map_err(|e| shape_error(self, e.to_string()))
    }

    fn stored(&self) -> Option<Stored<'_>> {
        Some(Stored { dtype: self.dtype, bytes: self.bytes })
    }
}
