//! Kubernetes quantities: see `podlab_fuzz::check_quantity`.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| podlab_fuzz::check_quantity(data));
