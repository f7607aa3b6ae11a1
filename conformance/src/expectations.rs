//! Expectations: the known deviations of a runtime from Kubernetes and the
//! tests it cannot run, as a checked-in file, so a run passes when its
//! results match them and a new deviation, a new skip — or one that went
//! away — is noticed. A skip is a recorded decision like a failure: a test
//! that goes from pass to skip fails the run.
//!
//! The file (`conformance/expectations/<runtime>.json`):
//!
//! ```json
//! {
//!   "runtime": "podman",
//!   "expected_failures": {
//!     "CGR-004": "why this runtime fails the test, as verified"
//!   },
//!   "expected_skips": {
//!     "LIFE-011": "why the test cannot run on this runtime, as measured"
//!   },
//!   "intermittent": {
//!     "SEC-004": "how often the runtime fails the test, and what it did, as measured"
//!   },
//!   "not_runnable": {
//!     "cgroup-v1-hybrid": {
//!       "error": "a part of the error the runtime gives",
//!       "reason": "why it cannot run pods on such a host, as measured"
//!     }
//!   }
//! }
//! ```
//!
//! `not_runnable` names the kinds of host ([`host_kind`]) on which the
//! runtime cannot start a pod at all: there the run stops after the
//! adapter's preflight, when the preflight fails with that error, and the
//! run is kept for every other kind of host.
//!
//! `intermittent` records a runtime that fails a test in some runs and not
//! in others (a race of its own, not of the suite): either outcome matches
//! the record, the run's report still says which one it was, and a skip
//! does not match. Keep it for defects that were seen and could not be
//! made to happen on demand; a failure that can be reproduced belongs in
//! `expected_failures`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::report::TestResult;
use crate::suite::Status;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not an expectations file: {detail}")]
    Parse { path: String, detail: String },
    #[error("{path}: {detail}")]
    Invalid { path: String, detail: String },
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expectations {
    /// The runtime the file is for (a check against running it on another).
    pub runtime: String,
    /// Test ID → the reason the runtime fails it.
    #[serde(default)]
    pub expected_failures: BTreeMap<String, String>,
    /// Test ID → the reason the test skips on the runtime.
    #[serde(default)]
    pub expected_skips: BTreeMap<String, String>,
    /// Test ID → how often and how the runtime fails it in some runs only.
    #[serde(default)]
    pub intermittent: BTreeMap<String, String>,
    /// Host kind → why the runtime cannot run pods there at all.
    #[serde(default)]
    pub not_runnable: BTreeMap<String, NotRunnable>,
}

/// A host on which a runtime cannot start a pod, as measured.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotRunnable {
    /// A part of the error the runtime's refusal carries.
    pub error: String,
    pub reason: String,
}

/// The host kinds `not_runnable` may name.
pub const HOST_KINDS: &[&str] = &["cgroup-v1-hybrid", "cgroup-v1", "cgroup-v2"];

/// This host's kind, by how /sys/fs/cgroup is mounted.
pub fn host_kind() -> &'static str {
    host_kind_of(std::path::Path::new("/sys/fs/cgroup"))
}

fn host_kind_of(cgroup: &Path) -> &'static str {
    if cgroup.join("cgroup.controllers").exists() {
        "cgroup-v2"
    } else if cgroup.join("unified/cgroup.controllers").exists() {
        "cgroup-v1-hybrid"
    } else {
        "cgroup-v1"
    }
}

/// What a failed preflight means for a run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Preflight {
    /// The runtime starts pods here: run the suite (the default).
    Runs,
    /// It cannot, as the file records for this kind of host.
    NotRunnable(String),
    /// It cannot, and the file does not say so (or not with this error).
    Unexpected(String),
    /// It can, though the file says it cannot: the record is stale.
    Stale(String),
}

impl Expectations {
    /// Compares the preflight's outcome on a `host` with the file.
    pub fn preflight(&self, host: &str, outcome: Result<(), String>) -> Preflight {
        let record = self.not_runnable.get(host);
        match (outcome, record) {
            (Ok(()), None) => Preflight::Runs,
            (Ok(()), Some(r)) => Preflight::Stale(format!(
                "the expectations say {} cannot run pods on a {host} host ({}), but it started one: remove the record",
                self.runtime, r.reason
            )),
            (Err(e), Some(r)) if e.contains(&r.error) => Preflight::NotRunnable(r.reason.clone()),
            (Err(e), _) => Preflight::Unexpected(format!(
                "{} cannot start a pod on this {host} host: {e}",
                self.runtime
            )),
        }
    }
}

impl Expectations {
    /// Reads and checks a file: every ID must name a test of the suite
    /// (`known_ids`) and carry a reason.
    pub fn load(path: &Path, known_ids: &[&str]) -> Result<Expectations, Error> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
            path: shown.clone(),
            source,
        })?;
        let e: Expectations = serde_json::from_str(&text).map_err(|e| Error::Parse {
            path: shown.clone(),
            detail: e.to_string(),
        })?;
        for (id, reason) in e
            .expected_failures
            .iter()
            .chain(&e.expected_skips)
            .chain(&e.intermittent)
        {
            let records = [&e.expected_failures, &e.expected_skips, &e.intermittent]
                .iter()
                .filter(|m| m.contains_key(id))
                .count();
            if records > 1 {
                return Err(Error::Invalid {
                    path: shown,
                    detail: format!(
                        "{id} is recorded more than once (expected_failures, expected_skips, intermittent)"
                    ),
                });
            }
            if !known_ids.contains(&id.as_str()) {
                return Err(Error::Invalid {
                    path: shown,
                    detail: format!("{id} is not a test of the suite"),
                });
            }
            if reason.trim().is_empty() {
                return Err(Error::Invalid {
                    path: shown,
                    detail: format!("{id} has no reason"),
                });
            }
        }
        for (host, r) in &e.not_runnable {
            if !HOST_KINDS.contains(&host.as_str()) {
                return Err(Error::Invalid {
                    path: shown,
                    detail: format!(
                        "not_runnable: {host:?} is not a host kind ({})",
                        HOST_KINDS.join(", ")
                    ),
                });
            }
            if r.error.trim().is_empty() || r.reason.trim().is_empty() {
                return Err(Error::Invalid {
                    path: shown,
                    detail: format!("not_runnable.{host} needs an error and a reason"),
                });
            }
        }
        Ok(e)
    }
}

/// How one result compares with the expectations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Passed, and recorded as neither failing nor skipping.
    AsExpected,
    /// Failed, as recorded, with the recorded reason.
    ExpectedFailure(String),
    /// Skipped, as recorded, with the recorded reason.
    ExpectedSkip(String),
    /// Failed although no deviation is recorded: a regression, or a new finding.
    UnexpectedFailure,
    /// Skipped although no skip is recorded: a property went unchecked.
    UnexpectedSkip,
    /// Passed although recorded as failing: the record is stale.
    UnexpectedPass(String),
    /// Recorded as failing, but skipped in this run: nothing learnt.
    ExpectedFailureSkipped(String),
    /// Recorded as skipping, but it ran: the record is stale.
    StaleSkip(String),
    /// Recorded as intermittent, and failed this time.
    IntermittentFailure(String),
    /// Recorded as intermittent, and passed this time.
    IntermittentPass(String),
}

impl Verdict {
    /// Whether this verdict makes the run fail: anything but a result the
    /// file records exactly.
    pub fn is_error(&self) -> bool {
        !matches!(
            self,
            Verdict::AsExpected
                | Verdict::ExpectedFailure(_)
                | Verdict::ExpectedSkip(_)
                | Verdict::IntermittentFailure(_)
                | Verdict::IntermittentPass(_)
        )
    }
}

pub fn verdict(expectations: &Expectations, result: &TestResult) -> Verdict {
    let failure = expectations.expected_failures.get(&result.id).cloned();
    let skip = expectations.expected_skips.get(&result.id).cloned();
    if let Some(why) = expectations.intermittent.get(&result.id).cloned() {
        return match result.status {
            Status::Failed => Verdict::IntermittentFailure(why),
            Status::Passed => Verdict::IntermittentPass(why),
            Status::Skipped => Verdict::ExpectedFailureSkipped(why),
        };
    }
    match (result.status, failure, skip) {
        (Status::Failed, Some(why), _) => Verdict::ExpectedFailure(why),
        (Status::Skipped, _, Some(why)) => Verdict::ExpectedSkip(why),
        (Status::Failed, None, _) => Verdict::UnexpectedFailure,
        (Status::Passed, Some(why), _) => Verdict::UnexpectedPass(why),
        (Status::Skipped, Some(why), None) => Verdict::ExpectedFailureSkipped(why),
        (Status::Skipped, None, None) => Verdict::UnexpectedSkip,
        (Status::Passed, None, Some(why)) => Verdict::StaleSkip(why),
        (Status::Passed, None, None) => Verdict::AsExpected,
    }
}

/// The lines to print about a run compared with its expectations; the
/// run matches them when none of the verdicts is an error.
pub fn compare(expectations: &Expectations, results: &[TestResult]) -> (Vec<String>, bool) {
    let mut lines = Vec::new();
    let mut ok = true;
    for r in results {
        let v = verdict(expectations, r);
        ok &= !v.is_error();
        match v {
            Verdict::AsExpected => {}
            Verdict::ExpectedFailure(why) => {
                lines.push(format!("expected failure {}: {why}", r.id));
            }
            Verdict::UnexpectedFailure => lines.push(format!(
                "UNEXPECTED FAILURE {}: {} (not in the expectations)",
                r.id, r.reason
            )),
            Verdict::UnexpectedPass(why) => lines.push(format!(
                "UNEXPECTED PASS {}: expected to fail because {why}; remove it from the expectations",
                r.id
            )),
            Verdict::ExpectedSkip(_) => {}
            Verdict::ExpectedFailureSkipped(why) => lines.push(format!(
                "UNEXPECTED SKIP {}: {} (expected to fail because {why})",
                r.id, r.reason
            )),
            Verdict::UnexpectedSkip => lines.push(format!(
                "UNEXPECTED SKIP {}: {} (not in the expectations: record it under expected_skips with the reason, or make the test run)",
                r.id, r.reason
            )),
            Verdict::StaleSkip(why) => lines.push(format!(
                "STALE SKIP {}: recorded as skipping ({why}) but it ran and passed; remove it from expected_skips",
                r.id
            )),
            Verdict::IntermittentFailure(why) => lines.push(format!(
                "intermittent failure {}: failed this run: {} (recorded: {why})",
                r.id, r.reason
            )),
            Verdict::IntermittentPass(why) => lines.push(format!(
                "intermittent {}: passed this run (recorded as failing in some runs: {why})",
                r.id
            )),
        }
    }
    (lines, ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(id: &str, status: Status) -> TestResult {
        TestResult {
            id: id.into(),
            status,
            reason: format!("{id} said so"),
            must: String::new(),
            duration_ms: 0,
        }
    }

    fn expectations() -> Expectations {
        serde_json::from_str(
            r#"{"runtime": "podman", "expected_failures": {"A-001": "a reason", "A-002": "b reason", "A-005": "c"},
                "expected_skips": {"A-006": "d", "A-007": "e"}}"#,
        )
        .unwrap()
    }

    #[test]
    fn verdicts() {
        let e = expectations();
        let results = [
            result("A-001", Status::Failed),
            result("A-002", Status::Passed),
            result("A-003", Status::Failed),
            result("A-004", Status::Passed),
            result("A-005", Status::Skipped),
            result("A-006", Status::Skipped),
            result("A-007", Status::Passed),
            result("A-008", Status::Skipped),
        ];
        let verdicts: Vec<Verdict> = results.iter().map(|r| verdict(&e, r)).collect();
        assert_eq!(
            verdicts,
            [
                Verdict::ExpectedFailure("a reason".into()),
                Verdict::UnexpectedPass("b reason".into()),
                Verdict::UnexpectedFailure,
                Verdict::AsExpected,
                Verdict::ExpectedFailureSkipped("c".into()),
                Verdict::ExpectedSkip("d".into()),
                Verdict::StaleSkip("e".into()),
                Verdict::UnexpectedSkip,
            ]
        );
        let (lines, ok) = compare(&e, &results);
        assert!(!ok);
        assert_eq!(
            lines,
            [
                "expected failure A-001: a reason",
                "UNEXPECTED PASS A-002: expected to fail because b reason; remove it from the expectations",
                "UNEXPECTED FAILURE A-003: A-003 said so (not in the expectations)",
                "UNEXPECTED SKIP A-005: A-005 said so (expected to fail because c)",
                "STALE SKIP A-007: recorded as skipping (e) but it ran and passed; remove it from expected_skips",
                "UNEXPECTED SKIP A-008: A-008 said so (not in the expectations: record it under expected_skips with the reason, or make the test run)",
            ]
        );
        let (_, ok) = compare(
            &e,
            &[
                result("A-001", Status::Failed),
                result("A-006", Status::Skipped),
                result("A-004", Status::Passed),
            ],
        );
        assert!(ok);
        // A skip nobody recorded fails the run on its own.
        let (_, ok) = compare(&e, &[result("A-008", Status::Skipped)]);
        assert!(!ok);
    }

    #[test]
    fn files_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        let known = ["A-001", "A-002", "A-005"];
        std::fs::write(
            &path,
            r#"{"runtime": "podman", "expected_failures": {"A-001": "a reason"}}"#,
        )
        .unwrap();
        let e = Expectations::load(&path, &known).unwrap();
        assert_eq!(e.expected_failures.len(), 1);
        std::fs::write(
            &path,
            r#"{"runtime": "podman", "expected_failures": {"Z-009": "typo"}}"#,
        )
        .unwrap();
        let err = Expectations::load(&path, &known).unwrap_err().to_string();
        assert!(err.ends_with("Z-009 is not a test of the suite"), "{err}");
        std::fs::write(
            &path,
            r#"{"runtime": "podman", "expected_failures": {"A-001": " "}}"#,
        )
        .unwrap();
        assert!(Expectations::load(&path, &known).is_err());
        std::fs::write(
            &path,
            r#"{"runtime": "podman", "expected_failures": {"A-001": "x"}, "expected_skips": {"A-001": "y"}}"#,
        )
        .unwrap();
        let err = Expectations::load(&path, &known).unwrap_err().to_string();
        assert!(err.contains("A-001 is recorded more than once"), "{err}");
        std::fs::write(
            &path,
            r#"{"runtime": "podman", "expected_failures": {"A-001": "x"}, "intermittent": {"A-001": "y"}}"#,
        )
        .unwrap();
        assert!(Expectations::load(&path, &known).is_err());
        std::fs::write(
            &path,
            r#"{"runtime": "podman", "intermittent": {"Z-009": "typo"}}"#,
        )
        .unwrap();
        assert!(Expectations::load(&path, &known).is_err());
        std::fs::write(
            &path,
            r#"{"runtime": "podman", "expected_skips": {"Z-009": "typo"}}"#,
        )
        .unwrap();
        assert!(Expectations::load(&path, &known).is_err());
        std::fs::write(&path, r#"{"runtime": "podman", "expected_fail": {}}"#).unwrap();
        assert!(matches!(
            Expectations::load(&path, &known),
            Err(Error::Parse { .. })
        ));
    }

    #[test]
    fn an_intermittent_record_takes_either_outcome_but_not_a_skip() {
        let e: Expectations = serde_json::from_str(
            r#"{"runtime": "cri-containerd-youki", "intermittent": {"A-001": "failed 1 of 5 runs"}}"#,
        )
        .unwrap();
        let why = || "failed 1 of 5 runs".to_string();
        assert_eq!(
            verdict(&e, &result("A-001", Status::Failed)),
            Verdict::IntermittentFailure(why())
        );
        assert_eq!(
            verdict(&e, &result("A-001", Status::Passed)),
            Verdict::IntermittentPass(why())
        );
        assert_eq!(
            verdict(&e, &result("A-001", Status::Skipped)),
            Verdict::ExpectedFailureSkipped(why())
        );
        let (lines, ok) = compare(&e, &[result("A-001", Status::Failed)]);
        assert!(ok);
        // The run's output still says which way it went.
        assert_eq!(
            lines,
            ["intermittent failure A-001: failed this run: A-001 said so (recorded: failed 1 of 5 runs)"]
        );
        let (_, ok) = compare(&e, &[result("A-001", Status::Skipped)]);
        assert!(!ok);
    }

    /// The checked-in files name real tests and the runtime they are for.
    #[test]
    fn checked_in_files_are_valid() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("expectations");
        let all = crate::tests::all();
        let ids: Vec<&str> = all.iter().map(|c| c.id).collect();
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            let e = Expectations::load(&path, &ids).unwrap();
            let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
            assert_eq!(e.runtime, stem, "{}", path.display());
        }
    }

    #[test]
    fn a_runtime_that_cannot_run_here_is_recorded_per_host_kind() {
        let e: Expectations = serde_json::from_str(
            r#"{"runtime": "cri-containerd-crun", "not_runnable": {"cgroup-v1-hybrid":
                {"error": "cgroups in hybrid mode not supported", "reason": "crun 1.8.1 refuses hybrid hosts"}}}"#,
        )
        .unwrap();
        let refused = Err(
            "OCI runtime create failed: cgroups in hybrid mode not supported, drop all controllers"
                .to_string(),
        );
        assert_eq!(
            e.preflight("cgroup-v1-hybrid", refused.clone()),
            Preflight::NotRunnable("crun 1.8.1 refuses hybrid hosts".into())
        );
        // On a host the record does not name, the refusal is a finding.
        assert!(matches!(
            e.preflight("cgroup-v2", refused),
            Preflight::Unexpected(_)
        ));
        // Another error than the one measured is a finding too.
        assert!(matches!(
            e.preflight("cgroup-v1-hybrid", Err("no such handler".into())),
            Preflight::Unexpected(_)
        ));
        assert!(matches!(
            e.preflight("cgroup-v1-hybrid", Ok(())),
            Preflight::Stale(_)
        ));
        assert_eq!(e.preflight("cgroup-v2", Ok(())), Preflight::Runs);
    }

    #[test]
    fn host_kinds_follow_the_cgroup_mount() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(host_kind_of(dir.path()), "cgroup-v1");
        std::fs::create_dir(dir.path().join("unified")).unwrap();
        std::fs::write(dir.path().join("unified/cgroup.controllers"), "").unwrap();
        assert_eq!(host_kind_of(dir.path()), "cgroup-v1-hybrid");
        std::fs::write(dir.path().join("cgroup.controllers"), "cpu memory").unwrap();
        assert_eq!(host_kind_of(dir.path()), "cgroup-v2");
        assert!(HOST_KINDS.contains(&host_kind()));
    }
}
