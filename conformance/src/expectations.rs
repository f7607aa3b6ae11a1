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
//!   }
//! }
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::report::TestResult;
use crate::suite::Status;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
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
        for (id, reason) in e.expected_failures.iter().chain(&e.expected_skips) {
            if e.expected_failures.contains_key(id) && e.expected_skips.contains_key(id) {
                return Err(Error::Invalid {
                    path: shown,
                    detail: format!("{id} is expected both to fail and to skip"),
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
}

impl Verdict {
    /// Whether this verdict makes the run fail: anything but a result the
    /// file records exactly.
    pub fn is_error(&self) -> bool {
        !matches!(
            self,
            Verdict::AsExpected | Verdict::ExpectedFailure(_) | Verdict::ExpectedSkip(_)
        )
    }
}

pub fn verdict(expectations: &Expectations, result: &TestResult) -> Verdict {
    let failure = expectations.expected_failures.get(&result.id).cloned();
    let skip = expectations.expected_skips.get(&result.id).cloned();
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
        assert!(err.ends_with("both to fail and to skip"), "{err}");
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
}
