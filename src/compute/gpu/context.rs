//! One wgpu device per process: adapter choice, compiled pipelines (cached), a pool of storage
//! buffers, uploads, dispatches and read-backs. Every wgpu error on these paths is captured with
//! error scopes and returned as [`ComputeError::Gpu`], never raised as a panic.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use wgpu::util::DeviceExt;

use super::shaders;
use crate::compute::ComputeError;

/// Workgroups per dispatch dimension that every adapter accepts.
const MAX_GROUPS_X: u32 = 65535;

/// Why no GPU could be used.
pub fn gpu_error(message: impl Into<String>) -> ComputeError {
    ComputeError::Gpu(message.into())
}

/// The device and everything cached on it.
pub struct GpuContext {
    /// The logical device.
    pub device: wgpu::Device,
    /// Its queue.
    pub queue: wgpu::Queue,
    /// The adapter's description.
    pub info: wgpu::AdapterInfo,
    /// Limits granted to the device.
    pub limits: wgpu::Limits,
    /// What the adapter can do below full WebGPU (shader validation depends on it).
    pub downlevel: wgpu::DownlevelCapabilities,
    modules: Mutex<HashMap<&'static str, wgpu::ShaderModule>>,
    pipelines: Mutex<HashMap<(&'static str, &'static str), wgpu::ComputePipeline>>,
    pool: Mutex<Vec<wgpu::Buffer>>,
    lost: std::sync::Arc<Mutex<Option<String>>>,
    binding_cap: std::sync::atomic::AtomicU64,
    /// Bytes of storage buffers alive (in use or pooled), and the most they may reach.
    allocated: AtomicU64,
    memory_limit: AtomicU64,
}

/// Adapter preference: discrete, integrated, virtual, CPU (lavapipe), other.
fn rank(kind: wgpu::DeviceType) -> u8 {
    match kind {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    }
}

impl GpuContext {
    /// Picks an adapter (`WGPU_ADAPTER_NAME` by name substring, `WGPU_BACKEND` to restrict
    /// backends; otherwise the best by type) and opens a device with the adapter's full limits.
    /// With `allow_cpu` false, CPU adapters (software Vulkan) are not taken.
    pub fn new(allow_cpu: bool) -> Result<Self, ComputeError> {
        let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
        let wanted = std::env::var("WGPU_ADAPTER_NAME").ok().map(|s| s.to_lowercase());
        let mut candidates: Vec<wgpu::Adapter> = adapters
            .into_iter()
            .filter(|a| {
                let info = a.get_info();
                let named = wanted.as_ref().is_none_or(|w| info.name.to_lowercase().contains(w));
                named && (allow_cpu || info.device_type != wgpu::DeviceType::Cpu)
            })
            .collect();
        candidates.sort_by_key(|a| rank(a.get_info().device_type));
        let adapter = candidates.into_iter().next().ok_or_else(|| {
            gpu_error(match &wanted {
                Some(w) => format!("no GPU adapter matches WGPU_ADAPTER_NAME={w:?}"),
                None if allow_cpu => "no GPU adapter found (not even a software Vulkan driver)".to_owned(),
                None => "no hardware GPU adapter found".to_owned(),
            })
        })?;
        let info = adapter.get_info();
        let limits = adapter.limits();
        let downlevel = adapter.get_downlevel_capabilities();
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("weightbench"),
            required_features: wgpu::Features::empty(),
            required_limits: limits.clone(),
            experimental_features: wgpu::ExperimentalFeatures::disabled(),
            memory_hints: wgpu::MemoryHints::Performance,
            trace: wgpu::Trace::Off,
        }))
        .map_err(|e| gpu_error(format!("cannot open {}: {e}", info.name)))?;
        let lost = std::sync::Arc::new(Mutex::new(None));
        let lost_flag = lost.clone();
        device.set_device_lost_callback(move |reason, message| {
            if let Ok(mut l) = lost_flag.lock() {
                *l = Some(format!("GPU device lost ({reason:?}): {message}"));
            }
        });
        // Errors outside an error scope would otherwise panic in wgpu's default handler.
        device.on_uncaptured_error(std::sync::Arc::new(|e| eprintln!("weightbench: uncaptured GPU error: {e}")));
        Ok(Self {
            device,
            queue,
            info,
            limits,
            downlevel,
            modules: Mutex::new(HashMap::new()),
            pipelines: Mutex::new(HashMap::new()),
            pool: Mutex::new(Vec::new()),
            lost,
            binding_cap: std::sync::atomic::AtomicU64::new(u64::MAX),
            allocated: AtomicU64::new(0),
            memory_limit: AtomicU64::new(u64::MAX),
        })
    }

    /// An error if the device was lost.
    pub fn check_alive(&self) -> Result<(), ComputeError> {
        match self.lost.lock().ok().and_then(|l| l.clone()) {
            Some(message) => Err(gpu_error(message)),
            None => Ok(()),
        }
    }

    /// Largest buffer a kernel may bind, in bytes (the adapter's limit, or a lower cap).
    pub fn max_binding(&self) -> u64 {
        let cap = self.binding_cap.load(std::sync::atomic::Ordering::Relaxed);
        self.limits.max_storage_buffer_binding_size.min(self.limits.max_buffer_size).min(cap)
    }

    /// Lowers the largest binding used, so that tests exercise the chunked paths on small data.
    pub fn cap_binding(&self, bytes: u64) {
        self.binding_cap.store(bytes.max(4096), std::sync::atomic::Ordering::Relaxed);
    }

    /// Makes buffer allocations fail, as the driver's out-of-memory error would, once the
    /// buffers alive would pass `bytes`: a GPU whose memory other processes hold. For the tests
    /// of that path (the kernels' own buffers stay bounded by [`GpuContext::max_binding`]).
    pub fn fail_allocations_beyond(&self, bytes: u64) {
        self.memory_limit.store(bytes, Ordering::Relaxed);
    }

    /// Counts `bytes` of buffers as freed.
    fn release(&self, bytes: u64) {
        let _ = self.allocated.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |a| Some(a.saturating_sub(bytes)));
    }

    /// Destroys the device, as a driver reset or a GPU falling off the bus does: every later
    /// use fails with "device lost", and the selected backend finishes the work on the CPU.
    /// For the tests of that path: a destroyed device never comes back.
    pub fn destroy(&self) {
        self.device.destroy();
        if let Ok(mut lost) = self.lost.lock() {
            lost.get_or_insert_with(|| "GPU device lost (destroyed)".into());
        }
    }

    /// Runs `f` inside error scopes for validation and out-of-memory errors.
    pub fn scoped<T>(&self, what: &str, f: impl FnOnce() -> T) -> Result<T, ComputeError> {
        self.check_alive()?;
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let validation = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let out = f();
        let v = pollster::block_on(validation.pop());
        let o = pollster::block_on(oom.pop());
        if let Some(e) = o.or(v) {
            return Err(gpu_error(format!("{what}: {e}")));
        }
        Ok(out)
    }

    /// The compiled pipeline of `entry` in shader file `file` (compiled once, then cached).
    pub fn pipeline(&self, file: &'static str, entry: &'static str) -> Result<wgpu::ComputePipeline, ComputeError> {
        if let Some(p) = self.pipelines.lock().map_err(|_| gpu_error("pipeline cache poisoned"))?.get(&(file, entry)) {
            return Ok(p.clone());
        }
        let source = shaders::source(file).ok_or_else(|| gpu_error(format!("no shader {file}")))?;
        let module = {
            let mut modules = self.modules.lock().map_err(|_| gpu_error("shader cache poisoned"))?;
            match modules.get(file) {
                Some(m) => m.clone(),
                None => {
                    let m = self.scoped(&format!("compiling {file}"), || {
                        self.device.create_shader_module(wgpu::ShaderModuleDescriptor {
                            label: Some(file),
                            source: wgpu::ShaderSource::Wgsl(source.into()),
                        })
                    })?;
                    modules.insert(file, m.clone());
                    m
                }
            }
        };
        let pipeline = self.scoped(&format!("building {file}:{entry}"), || {
            self.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: None,
                module: &module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            })
        })?;
        self.pipelines
            .lock()
            .map_err(|_| gpu_error("pipeline cache poisoned"))?
            .insert((file, entry), pipeline.clone());
        Ok(pipeline)
    }

    /// A storage buffer of at least `size` bytes, from the pool when one fits.
    pub fn storage(&self, size: u64) -> Result<PooledBuffer<'_>, ComputeError> {
        let size = size.max(4).div_ceil(4) * 4;
        if size > self.max_binding() {
            return Err(gpu_error(format!(
                "a {size}-byte buffer exceeds the adapter's binding limit {}",
                self.max_binding()
            )));
        }
        if let Ok(mut pool) = self.pool.lock()
            && let Some(i) = pool.iter().position(|b| b.size() >= size && b.size() <= size.saturating_mul(2))
        {
            return Ok(PooledBuffer { buffer: pool.swap_remove(i), ctx: self });
        }
        let limit = self.memory_limit.load(Ordering::Relaxed);
        if self.allocated.load(Ordering::Relaxed).saturating_add(size) > limit {
            // Pooled buffers are the first to go.
            let freed: Vec<wgpu::Buffer> = self.pool.lock().map(|mut p| std::mem::take(&mut *p)).unwrap_or_default();
            self.release(freed.iter().map(wgpu::Buffer::size).sum());
            let alive = self.allocated.load(Ordering::Relaxed);
            if alive.saturating_add(size) > limit {
                return Err(gpu_error(format!(
                    "allocating a buffer: out of memory ({size} bytes more than the {alive} in use would pass the {limit} available)"
                )));
            }
        }
        let buffer = self.scoped("allocating a buffer", || {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("storage"),
                size,
                usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        })?;
        self.allocated.fetch_add(size, Ordering::Relaxed);
        Ok(PooledBuffer { buffer, ctx: self })
    }

    /// A storage buffer holding `bytes` (padded to 4 bytes).
    pub fn upload(&self, bytes: &[u8]) -> Result<PooledBuffer<'_>, ComputeError> {
        let buf = self.storage(bytes.len() as u64)?;
        let aligned = bytes.len() / 4 * 4;
        self.scoped("uploading", || {
            if aligned > 0 {
                self.queue.write_buffer(buf.get(), 0, &bytes[..aligned]);
            }
            if aligned < bytes.len() {
                let mut tail = [0u8; 4];
                tail[..bytes.len() - aligned].copy_from_slice(&bytes[aligned..]);
                self.queue.write_buffer(buf.get(), aligned as u64, &tail);
            }
        })?;
        Ok(buf)
    }

    /// A uniform buffer holding `bytes`.
    pub fn uniform(&self, bytes: &[u8]) -> Result<wgpu::Buffer, ComputeError> {
        self.scoped("creating parameters", || {
            self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("params"),
                contents: bytes,
                usage: wgpu::BufferUsages::UNIFORM,
            })
        })
    }

    /// Zeroes the first `size` bytes of a buffer.
    pub fn clear(&self, buffer: &wgpu::Buffer, size: u64) -> Result<(), ComputeError> {
        self.scoped("clearing a buffer", || {
            let mut enc = self.device.create_command_encoder(&Default::default());
            enc.clear_buffer(buffer, 0, Some(size.div_ceil(4) * 4));
            self.queue.submit([enc.finish()]);
        })
    }

    /// Dispatches `groups` workgroups of `entry` (as a 2-D grid when above 65535) with the given
    /// bindings `(binding, buffer)`.
    pub fn dispatch(
        &self,
        file: &'static str,
        entry: &'static str,
        bindings: &[(u32, &wgpu::Buffer)],
        groups: u32,
    ) -> Result<(), ComputeError> {
        let x = groups.clamp(1, MAX_GROUPS_X);
        let y = groups.div_ceil(MAX_GROUPS_X).max(1);
        self.dispatch_grid(file, entry, bindings, (x, y))
    }

    /// Dispatches an explicit `(x, y)` grid of workgroups.
    pub fn dispatch_grid(
        &self,
        file: &'static str,
        entry: &'static str,
        bindings: &[(u32, &wgpu::Buffer)],
        (x, y): (u32, u32),
    ) -> Result<(), ComputeError> {
        let pipeline = self.pipeline(file, entry)?;
        self.scoped(&format!("running {file}:{entry}"), || {
            let layout = pipeline.get_bind_group_layout(0);
            let entries: Vec<wgpu::BindGroupEntry<'_>> = bindings
                .iter()
                .map(|(binding, buffer)| wgpu::BindGroupEntry {
                    binding: *binding,
                    resource: buffer.as_entire_binding(),
                })
                .collect();
            let group = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(entry),
                layout: &layout,
                entries: &entries,
            });
            let mut enc = self.device.create_command_encoder(&Default::default());
            {
                let mut pass =
                    enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some(entry), timestamp_writes: None });
                pass.set_pipeline(&pipeline);
                pass.set_bind_group(0, &group, &[]);
                pass.dispatch_workgroups(x, y, 1);
            }
            self.queue.submit([enc.finish()]);
        })
    }

    /// Copies the first `size` bytes of `buffer` back to the host.
    pub fn read(&self, buffer: &wgpu::Buffer, size: u64) -> Result<Vec<u8>, ComputeError> {
        let size = size.div_ceil(4) * 4;
        let staging = self.scoped("reading back", || {
            let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("read-back"),
                size: size.max(4),
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            let mut enc = self.device.create_command_encoder(&Default::default());
            enc.copy_buffer_to_buffer(buffer, 0, &staging, 0, size);
            self.queue.submit([enc.finish()]);
            staging
        })?;
        let (tx, rx) = std::sync::mpsc::channel();
        staging.slice(..size).map_async(wgpu::MapMode::Read, move |r| {
            let _receiver_gone_means_nobody_waits = tx.send(r);
        });
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| gpu_error(format!("waiting for the GPU: {e}")))?;
        rx.recv()
            .map_err(|_| gpu_error("the read-back never completed"))?
            .map_err(|e| gpu_error(format!("mapping the read-back: {e}")))?;
        let view = staging.slice(..size).get_mapped_range().map_err(|e| gpu_error(format!("read-back range: {e}")))?;
        let out = view.to_vec();
        drop(view);
        staging.unmap();
        self.check_alive()?;
        Ok(out)
    }

    /// Reads `n` f32 values.
    pub fn read_f32(&self, buffer: &wgpu::Buffer, n: usize) -> Result<Vec<f32>, ComputeError> {
        let bytes = self.read(buffer, (n * 4) as u64)?;
        Ok(bytes.chunks_exact(4).take(n).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }

    /// Reads `n` u32 values.
    pub fn read_u32(&self, buffer: &wgpu::Buffer, n: usize) -> Result<Vec<u32>, ComputeError> {
        let bytes = self.read(buffer, (n * 4) as u64)?;
        Ok(bytes.chunks_exact(4).take(n).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }
}

/// A storage buffer that goes back to the pool when dropped.
pub struct PooledBuffer<'a> {
    buffer: wgpu::Buffer,
    ctx: &'a GpuContext,
}

impl PooledBuffer<'_> {
    /// The buffer.
    pub fn get(&self) -> &wgpu::Buffer {
        &self.buffer
    }
}

/// Buffers kept for reuse, at most.
const POOL_BUFFERS: usize = 16;

impl Drop for PooledBuffer<'_> {
    fn drop(&mut self) {
        // wgpu buffers are shared handles: the pool keeps one, this one goes.
        match self.ctx.pool.lock() {
            Ok(mut pool) if pool.len() < POOL_BUFFERS => pool.push(self.buffer.clone()),
            _ => self.ctx.release(self.buffer.size()),
        }
    }
}
