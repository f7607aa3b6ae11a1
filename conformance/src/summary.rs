//! The cross-runtime summary: one table, test ID × runtime, built from the
//! results.json of every run found under the reports directory.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use serde::Deserialize;

use crate::expectations::Expectations;

/// The part of a results.json entry the summary shows.
#[derive(Clone, Debug, Deserialize)]
pub struct Row {
    pub id: String,
    pub status: String,
}

/// One runtime's results.
#[derive(Clone, Debug)]
pub struct Run {
    pub runtime: String,
    pub rows: Vec<Row>,
    /// Its expectations, when a file exists, to mark expected failures.
    pub expectations: Option<Expectations>,
}

/// Reads `<dir>/<runtime>/results.json` for every runtime directory, in
/// name order; directories without results are not runs.
pub fn read_runs(dir: &Path) -> std::io::Result<Vec<(String, Vec<Row>)>> {
    let mut runs = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let file = e.path().join("results.json");
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let rows: Vec<Row> = serde_json::from_str(&text).map_err(|err| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: {err}", file.display()),
            )
        })?;
        runs.push((e.file_name().to_string_lossy().into_owned(), rows));
    }
    Ok(runs)
}

fn cell(status: &str, expected_failure: bool) -> &'static str {
    match (status, expected_failure) {
        ("passed", false) => "PASS",
        ("passed", true) => "PASS (expected FAIL)",
        ("failed", true) => "xfail",
        ("failed", false) => "**FAIL**",
        ("skipped", _) => "skip",
        _ => "?",
    }
}

/// The Markdown summary. `order` is the suite's test order; IDs not in it
/// (from older runs) come last.
pub fn markdown(runs: &[Run], order: &[&str]) -> String {
    let mut ids: Vec<String> = order.iter().map(|s| s.to_string()).collect();
    let extra: BTreeSet<&String> = runs
        .iter()
        .flat_map(|r| r.rows.iter().map(|row| &row.id))
        .filter(|id| !order.contains(&id.as_str()))
        .collect();
    ids.extend(extra.into_iter().cloned());
    let present: BTreeSet<&str> = runs
        .iter()
        .flat_map(|r| r.rows.iter().map(|row| row.id.as_str()))
        .collect();
    ids.retain(|id| present.contains(id.as_str()));

    let mut md = String::from("# Pod conformance across runtimes\n\n");
    if runs.is_empty() {
        md.push_str("No results found.\n");
        return md;
    }
    md.push_str(
        "PASS passed · **FAIL** failed unexpectedly · xfail failed as the runtime's \
         expectations record · skip skipped (the runtime lacks what the test needs) · \
         — not run.\n\n",
    );
    let _ = write!(md, "| Test |");
    for r in runs {
        let _ = write!(md, " {} |", r.runtime);
    }
    md.push_str("\n|---|");
    md.push_str(&"---|".repeat(runs.len()));
    md.push('\n');
    let by_run: Vec<BTreeMap<&str, &str>> = runs
        .iter()
        .map(|r| {
            r.rows
                .iter()
                .map(|row| (row.id.as_str(), row.status.as_str()))
                .collect()
        })
        .collect();
    for id in &ids {
        let _ = write!(md, "| {id} |");
        for (run, statuses) in runs.iter().zip(&by_run) {
            let expected = run
                .expectations
                .as_ref()
                .is_some_and(|e| e.expected_failures.contains_key(id));
            let text = statuses.get(id.as_str()).map_or("—", |s| cell(s, expected));
            let _ = write!(md, " {text} |");
        }
        md.push('\n');
    }
    let _ = write!(md, "| **passed** |");
    for statuses in &by_run {
        let passed = statuses.values().filter(|s| **s == "passed").count();
        let _ = write!(md, " {passed}/{} |", statuses.len());
    }
    md.push('\n');
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(runtime: &str, rows: &[(&str, &str)], xfail: &[&str]) -> Run {
        Run {
            runtime: runtime.into(),
            rows: rows
                .iter()
                .map(|(id, s)| Row {
                    id: id.to_string(),
                    status: s.to_string(),
                })
                .collect(),
            expectations: (!xfail.is_empty()).then(|| Expectations {
                runtime: runtime.into(),
                expected_failures: xfail
                    .iter()
                    .map(|id| (id.to_string(), "why".to_string()))
                    .collect(),
            }),
        }
    }

    #[test]
    fn summary_format() {
        let runs = [
            run(
                "podlab",
                &[
                    ("NET-001", "passed"),
                    ("CGR-004", "passed"),
                    ("OLD-001", "failed"),
                ],
                &[],
            ),
            run(
                "podman",
                &[
                    ("NET-001", "passed"),
                    ("CGR-004", "failed"),
                    ("LIFE-003", "skipped"),
                ],
                &["CGR-004"],
            ),
        ];
        insta::assert_snapshot!(markdown(
            &runs,
            &["NET-001", "NET-002", "CGR-004", "LIFE-003"]
        ));
    }

    #[test]
    fn runs_are_read_from_runtime_directories() {
        let dir = tempfile::tempdir().unwrap();
        for (rt, json) in [
            (
                "podman",
                r#"[{"id":"NET-001","status":"passed","reason":""}]"#,
            ),
            (
                "cli-podlab",
                r#"[{"id":"NET-001","status":"failed","reason":"x"}]"#,
            ),
        ] {
            std::fs::create_dir_all(dir.path().join(rt)).unwrap();
            std::fs::write(dir.path().join(rt).join("results.json"), json).unwrap();
        }
        std::fs::create_dir_all(dir.path().join("empty")).unwrap();
        std::fs::write(dir.path().join("summary.md"), "old").unwrap();
        let runs = read_runs(dir.path()).unwrap();
        let names: Vec<&str> = runs.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["cli-podlab", "podman"]);
        assert_eq!(runs[0].1[0].status, "failed");
        assert!(markdown(&[], &[]).contains("No results"));
    }
}
