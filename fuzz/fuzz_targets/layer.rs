//! Layer unpacking of arbitrary tar bytes: see `podlab_fuzz::check_layer`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| podlab_fuzz::check_layer(data));
