//! The registry: every conformance test, one file per property family.
//!
//! A test is an ID, one MUST sentence, its method, and a body taking the
//! runtime and the [`Ctx`](crate::suite::Ctx). Bodies return a
//! [`Check`](crate::suite::Check) so they can stop at the first problem with `?`.

/// Registers a test body under an ID with its MUST sentence and method.
macro_rules! case {
    ($id:literal, $body:path, must: $must:literal, method: $method:literal $(, exclusive: $excl:literal)? $(,)?) => {
        $crate::suite::TestCase {
            id: $id,
            must: $must,
            method: $method,
            exclusive: false $(|| $excl)?,
            run: |rt, ctx| $crate::suite::Outcome::from($body(rt, ctx)),
        }
    };
}

pub mod cgroups;
#[cfg(test)]
mod claimed;
pub mod cmd;
pub mod deadline;
pub mod downward;
pub mod esc_devices;
pub mod esc_mounts;
pub mod esc_privileges;
pub mod exec;
pub mod hooks;
pub mod hostns;
pub mod hosts;
pub mod image;
pub mod ipc;
pub mod isolation;
pub mod lifecycle;
pub mod logs;
pub mod net;
pub mod podnet;
pub mod port;
pub mod probes;
pub mod restart;
pub mod security;
pub mod storage;
pub mod sysctl;
pub mod term;
mod util;
pub mod uts;
pub mod volumes;

use crate::suite::TestCase;

/// Every test, in ID order within each family.
pub fn all() -> Vec<TestCase> {
    [
        net::CASES,
        podnet::CASES,
        uts::CASES,
        ipc::CASES,
        isolation::CASES,
        cgroups::CASES,
        lifecycle::CASES,
        probes::CASES,
        hooks::CASES,
        restart::CASES,
        esc_mounts::CASES,
        esc_devices::CASES,
        esc_privileges::CASES,
        storage::CASES,
        cmd::CASES,
        exec::CASES,
        image::CASES,
        term::CASES,
        deadline::CASES,
        downward::CASES,
        logs::CASES,
        volumes::CASES,
        security::CASES,
        hosts::CASES,
        sysctl::CASES,
        hostns::CASES,
        port::CASES,
    ]
    .concat()
}

#[cfg(test)]
mod registry_tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn ids_are_unique_well_formed_and_musts_are_one_sentence() {
        let cases = all();
        assert!(cases.len() >= 20, "only {} tests", cases.len());
        let mut seen = BTreeSet::new();
        for c in &cases {
            assert!(seen.insert(c.id), "duplicate id {}", c.id);
            let (family, number) = c.id.split_once('-').unwrap();
            assert!(family.chars().all(|ch| ch.is_ascii_uppercase()), "{}", c.id);
            assert_eq!(number.len(), 3, "{}", c.id);
            assert!(number.chars().all(|ch| ch.is_ascii_digit()), "{}", c.id);
            assert!(c.must.contains(" MUST "), "{}: {}", c.id, c.must);
            assert!(c.must.ends_with('.'), "{}: {}", c.id, c.must);
            assert_eq!(c.must.matches(". ").count(), 0, "{}: one sentence", c.id);
            assert!(!c.method.trim().is_empty(), "{}", c.id);
        }
    }
}
