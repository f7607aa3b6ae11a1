//! Any bytes given to `podlab apply`: see `podlab_fuzz::check_manifest`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| podlab_fuzz::check_manifest(data));
