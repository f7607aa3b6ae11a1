//! Layer unpacking of arbitrary tar bytes: never panic, and never write
//! outside the target directory.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(base) = tempfile::tempdir() else { return };
    let dest = base.path().join("layer");
    let _ = std::fs::create_dir(&dest);
    let _ = podlab::image::unpack::unpack_layer(data, &dest, "fuzz");
    // Only the layer directory may have appeared next to it.
    let entries: Vec<_> = std::fs::read_dir(base.path())
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.file_name())).collect())
        .unwrap_or_default();
    assert!(entries.iter().all(|n| n == "layer"), "wrote outside the layer: {entries:?}");
});
