//! Any bytes given to `podlab apply`: parsing, defaulting and validation
//! must return an error or pods, never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(docs) = podlab::manifest::parse(text, "fuzz") {
            for doc in docs {
                let mut pod = doc.pod;
                if podlab::manifest::default_pod(&mut pod, None).is_ok() {
                    let _ = podlab::manifest::validate(&pod);
                }
            }
        }
    }
});
