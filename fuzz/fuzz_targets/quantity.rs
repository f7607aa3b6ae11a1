//! Kubernetes quantities: parse and convert without panicking or overflowing.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = std::str::from_utf8(data) {
        if let Ok(q) = podlab::quantity::parse(s) {
            let _ = (q.value(), q.milli_value(), q.is_negative());
        }
        let _ = podlab::quantity::memory_bytes(s);
        let _ = podlab::quantity::cpu_millis(s);
        if let Ok(n) = podlab::quantity::count(s) {
            assert!(n >= 0, "a count is never negative: {s:?}");
        }
    }
});
