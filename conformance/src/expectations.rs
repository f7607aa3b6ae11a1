//! Expectations: the known deviations of a runtime from Kubernetes, as a
//! checked-in file, so a run passes when its results match them and a new
//! deviation — or a deviation that went away — is noticed.
//!
//! The file (`conformance/expectations/<runtime>.json`):
//!
//! ```json
//! {
//!   "runtime": "podman",
//!   "expected_failures": {
//!     "CGR-004": "why this runtime fails the test, as verified"
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
        for (id, reason) in &e.expected_failures {
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
    /// Passed, or skipped, and not expected to fail.
    AsExpected,
    /// Failed, as recorded, with the recorded reason.
    ExpectedFailure(String),
    /// Failed although no deviation is recorded: a regression, or a new finding.
    UnexpectedFailure,
    /// Passed although recorded as failing: the record is stale.
    UnexpectedPass(String),
    /// Recorded as failing, but skipped in this run: nothing learnt.
    ExpectedFailureSkipped(String),
}

impl Verdict {
    /// Whether this verdict makes the run fail.
    pub fn is_error(&self) -> bool {
        matches!(
            self,
            Verdict::UnexpectedFailure | Verdict::UnexpectedPass(_)
        )
    }
}

pub fn verdict(expectations: &Expectations, result: &TestResult) -> Verdict {
    match (
        result.status,
        expectations.expected_failures.get(&result.id).cloned(),
    ) {
        (Status::Failed, Some(why)) => Verdict::ExpectedFailure(why),
        (Status::Failed, None) => Verdict::UnexpectedFailure,
        (Status::Passed, Some(why)) => Verdict::UnexpectedPass(why),
        (Status::Skipped, Some(why)) => Verdict::ExpectedFailureSkipped(why),
        (_, None) => Verdict::AsExpected,
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
            Verdict::ExpectedFailureSkipped(why) => lines.push(format!(
                "note: {} is expected to fail ({why}) but was skipped: {}",
                r.id, r.reason
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
            r#"{"runtime": "podman", "expected_failures": {"A-001": "a reason", "A-002": "b reason", "A-005": "c"}}"#,
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
                "note: A-005 is expected to fail (c) but was skipped: A-005 said so",
            ]
        );
        let (_, ok) = compare(&e, &[result("A-001", Status::Failed)]);
        assert!(ok);
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
