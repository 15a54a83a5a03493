//! Every WGSL kernel parses and validates with naga as wgpu validates it for our device — no
//! optional features (the device asks for none) and the downlevel flags of a real adapter —
//! and fits the resource limits every adapter offers (wgpu's downlevel limits: workgroup
//! memory, invocations, storage buffers per stage). A broken or oversized shader fails here,
//! without a GPU; with one, the adapter's own flags and limits are checked too.

use std::collections::HashMap;

use naga::valid::{GlobalUse, ModuleInfo, ValidationFlags};
use weightbench::compute::gpu::shaders;

/// What one entry point uses.
#[derive(Debug)]
struct EntryUse {
    name: String,
    workgroup_size: [u32; 3],
    workgroup_bytes: u32,
    storage_buffers: u32,
}

/// Validates `source` as wgpu does for a device without optional features on an adapter with
/// `downlevel` flags, and measures each entry point's resources.
fn validate(source: &str, downlevel: wgpu::DownlevelFlags) -> Result<Vec<EntryUse>, String> {
    let module = naga::front::wgsl::parse_str(source).map_err(|e| e.emit_to_string(source))?;
    let info: ModuleInfo =
        wgpu_naga_bridge::create_validator(wgpu::Features::empty(), downlevel, ValidationFlags::all())
            .validate(&module)
            .map_err(|e| format!("{e:?}"))?;
    let gctx = module.to_ctx();
    let mut out = Vec::new();
    for (i, ep) in module.entry_points.iter().enumerate() {
        let uses = info.get_entry_point(i);
        let (mut workgroup_bytes, mut storage_buffers) = (0, 0);
        for (handle, var) in module.global_variables.iter() {
            if uses[handle] == GlobalUse::empty() {
                continue;
            }
            match var.space {
                naga::AddressSpace::WorkGroup => workgroup_bytes += module.types[var.ty].inner.size(gctx),
                naga::AddressSpace::Storage { .. } => storage_buffers += 1,
                _ => {}
            }
        }
        out.push(EntryUse {
            name: ep.name.clone(),
            workgroup_size: ep.workgroup_size,
            workgroup_bytes,
            storage_buffers,
        });
    }
    Ok(out)
}

/// An error for each way `entry` exceeds `limits`.
fn over_limits(entry: &EntryUse, limits: &wgpu::Limits) -> Vec<String> {
    let [x, y, z] = entry.workgroup_size;
    let mut over = Vec::new();
    if x * y * z > limits.max_compute_invocations_per_workgroup
        || x > limits.max_compute_workgroup_size_x
        || y > limits.max_compute_workgroup_size_y
        || z > limits.max_compute_workgroup_size_z
    {
        over.push(format!("workgroup size {:?}", entry.workgroup_size));
    }
    if entry.workgroup_bytes > limits.max_compute_workgroup_storage_size {
        over.push(format!(
            "{} bytes of workgroup memory (limit {})",
            entry.workgroup_bytes, limits.max_compute_workgroup_storage_size
        ));
    }
    if entry.storage_buffers > limits.max_storage_buffers_per_shader_stage {
        over.push(format!(
            "{} storage buffers (limit {})",
            entry.storage_buffers, limits.max_storage_buffers_per_shader_stage
        ));
    }
    over
}

#[test]
fn every_shader_validates_for_a_downlevel_device_and_fits_its_limits() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".wgsl") && !["common.wgsl", "exact.wgsl", "errors.wgsl"].contains(&n.as_str()))
        .collect();
    on_disk.sort();
    // The preludes are in front of the files that use them.
    let exact = shaders::EXACT;
    for file in ["quant.wgsl", "ggml_encode.wgsl", "float_encode.wgsl"] {
        assert!(shaders::source(file).unwrap().contains(exact), "{file} lacks exact.wgsl");
    }
    for file in ["quant.wgsl", "ggml_encode.wgsl", "float_encode.wgsl", "measure.wgsl"] {
        assert!(shaders::source(file).unwrap().contains(shaders::ERRORS), "{file} lacks errors.wgsl");
    }
    let mut embedded: Vec<String> = shaders::ALL.iter().map(|(n, _)| (*n).to_owned()).collect();
    embedded.sort();
    assert_eq!(on_disk, embedded, "every shader file is embedded, and only those");

    let limits = wgpu::Limits::downlevel_defaults();
    let mut entries: HashMap<&str, usize> = HashMap::new();
    for (name, source) in shaders::ALL {
        // No downlevel flags at all: the most a shader may assume of any adapter.
        let used = validate(source, wgpu::DownlevelFlags::empty()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(!used.is_empty(), "{name} has no entry point");
        for entry in &used {
            let over = over_limits(entry, &limits);
            assert!(over.is_empty(), "{name}:{} exceeds the downlevel limits: {over:?}", entry.name);
        }
        entries.insert(name, used.len());
    }
    assert_eq!(entries["quant.wgsl"], 2);
}

#[test]
fn every_shader_validates_with_this_machines_adapter() {
    let Some(gpu) = crate::fixtures::gpu() else { return };
    let ctx = gpu.context();
    for (name, source) in shaders::ALL {
        let used = validate(source, ctx.downlevel.flags).unwrap_or_else(|e| panic!("{name} on {}: {e}", ctx.info.name));
        for entry in &used {
            let over = over_limits(entry, &ctx.limits);
            assert!(over.is_empty(), "{name}:{} on {}: {over:?}", entry.name, ctx.info.name);
        }
    }
}

#[test]
fn broken_and_oversized_shaders_are_caught() {
    let broken = format!("{}\n@compute @workgroup_size(64) fn f() {{ let x: f32 = 1u; }}", shaders::COMMON);
    assert!(validate(&broken, wgpu::DownlevelFlags::empty()).is_err(), "a type error must not pass validation");
    // Valid WGSL, but 32 KiB of workgroup memory: more than a downlevel adapter has.
    let big = format!(
        "{}\nvar<workgroup> big: array<f32, 8192>;\n@compute @workgroup_size(256) fn f(@builtin(local_invocation_index) i: u32) {{ big[i] = 1.0; }}",
        shaders::COMMON
    );
    let used = validate(&big, wgpu::DownlevelFlags::empty()).unwrap();
    let over = over_limits(&used[0], &wgpu::Limits::downlevel_defaults());
    assert_eq!(over, ["32768 bytes of workgroup memory (limit 16352)"]);
    // Too many invocations.
    let wide = format!("{}\n@compute @workgroup_size(512) fn f() {{}}", shaders::COMMON);
    let used = validate(&wide, wgpu::DownlevelFlags::empty()).unwrap();
    assert_eq!(over_limits(&used[0], &wgpu::Limits::downlevel_defaults()).len(), 1);
}
