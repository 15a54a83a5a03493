//! Every WGSL kernel parses and validates with naga, so a broken shader fails here without a GPU.

use weightbench::compute::gpu::shaders;

#[test]
fn every_shader_validates_with_naga() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".wgsl") && n != "common.wgsl")
        .collect();
    on_disk.sort();
    let mut embedded: Vec<String> = shaders::ALL.iter().map(|(n, _)| (*n).to_owned()).collect();
    embedded.sort();
    assert_eq!(on_disk, embedded, "every shader file is embedded, and only those");

    for (name, source) in shaders::ALL {
        let module =
            naga::front::wgsl::parse_str(source).unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(source)));
        naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::all())
            .validate(&module)
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert!(!module.entry_points.is_empty(), "{name} has no entry point");
    }
}

#[test]
fn a_broken_shader_is_caught() {
    let broken = format!("{}\n@compute @workgroup_size(64) fn f() {{ let x: f32 = 1u; }}", shaders::COMMON);
    let parsed = naga::front::wgsl::parse_str(&broken);
    let failed = match parsed {
        Err(_) => true,
        Ok(m) => naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::all())
            .validate(&m)
            .is_err(),
    };
    assert!(failed, "a type error must not pass validation");
}
