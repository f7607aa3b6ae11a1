//! The cross-runtime summary: one table, test ID × runtime, built from the
//! results.json of every run found under the reports directory.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;

use serde::Deserialize;

use crate::expectations::{self, Expectations, Verdict};
use crate::report::TestResult;
use crate::suite::Status;

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
    /// Why the runtime could not run pods on this host at all, as its
    /// expectations record (then `rows` is empty).
    pub not_runnable: Option<String>,
}

/// The file a run leaves instead of results.json when the runtime cannot
/// start a pod on this host, as its expectations record.
pub const NOT_RUNNABLE_FILE: &str = "not-runnable.txt";

/// One run found under the reports directory.
pub struct Found {
    pub runtime: String,
    pub rows: Vec<Row>,
    pub not_runnable: Option<String>,
}

/// Reads `<dir>/<runtime>/results.json` (or its [`NOT_RUNNABLE_FILE`])
/// for every runtime directory, in name order; directories with neither
/// are not runs.
pub fn read_runs(dir: &Path) -> std::io::Result<Vec<Found>> {
    let mut runs = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let runtime = e.file_name().to_string_lossy().into_owned();
        if let Ok(reason) = std::fs::read_to_string(e.path().join(NOT_RUNNABLE_FILE)) {
            runs.push(Found {
                runtime,
                rows: Vec::new(),
                not_runnable: Some(reason.trim().to_string()),
            });
            continue;
        }
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
        runs.push(Found {
            runtime,
            rows,
            not_runnable: None,
        });
    }
    Ok(runs)
}

/// How a row compares with the run's expectations (none: every failure
/// and skip is unexpected).
fn verdict(run: &Run, row: &Row) -> Option<Verdict> {
    let status = match row.status.as_str() {
        "passed" => Status::Passed,
        "failed" => Status::Failed,
        "skipped" => Status::Skipped,
        _ => return None,
    };
    let result = TestResult {
        id: row.id.clone(),
        status,
        reason: String::new(),
        must: String::new(),
        duration_ms: 0,
    };
    let none = Expectations::default();
    Some(expectations::verdict(
        run.expectations.as_ref().unwrap_or(&none),
        &result,
    ))
}

fn cell(v: Option<&Verdict>) -> &'static str {
    match v {
        Some(Verdict::AsExpected) => "PASS",
        Some(Verdict::UnexpectedPass(_)) => "**PASS** (expected FAIL)",
        Some(Verdict::StaleSkip(_)) => "**PASS** (expected skip)",
        Some(Verdict::ExpectedFailure(_)) => "xfail",
        Some(Verdict::UnexpectedFailure) => "**FAIL**",
        Some(Verdict::ExpectedSkip(_)) => "xskip",
        Some(Verdict::UnexpectedSkip | Verdict::ExpectedFailureSkipped(_)) => "**SKIP**",
        None => "?",
    }
}

/// The five counts of a run: passed, failed as recorded, skipped as
/// recorded, anything else (unexpected), and failed in all.
#[derive(Debug, Default, PartialEq, Eq)]
struct Counts {
    passed: usize,
    failed: usize,
    expected_failures: usize,
    expected_skips: usize,
    unexpected: usize,
}

fn counts(verdicts: &[Verdict], statuses: &BTreeMap<&str, &str>) -> Counts {
    let mut c = Counts {
        passed: statuses.values().filter(|s| **s == "passed").count(),
        failed: statuses.values().filter(|s| **s == "failed").count(),
        ..Counts::default()
    };
    for v in verdicts {
        match v {
            Verdict::ExpectedFailure(_) => c.expected_failures += 1,
            Verdict::ExpectedSkip(_) => c.expected_skips += 1,
            Verdict::AsExpected => {}
            _ => c.unexpected += 1,
        }
    }
    c
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
         expectations record · xskip skipped as they record (the runtime lacks what the \
         test needs) · **SKIP** skipped unexpectedly · — not run. The counts at the end \
         tell how many tests each runtime really passed.\n\n",
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
    let verdicts: Vec<BTreeMap<&str, Option<Verdict>>> = runs
        .iter()
        .map(|r| {
            r.rows
                .iter()
                .map(|row| (row.id.as_str(), verdict(r, row)))
                .collect()
        })
        .collect();
    for id in &ids {
        let _ = write!(md, "| {id} |");
        for (v, r) in verdicts.iter().zip(runs) {
            let text = if r.not_runnable.is_some() {
                "n/a"
            } else {
                v.get(id.as_str()).map_or("—", |v| cell(v.as_ref()))
            };
            let _ = write!(md, " {text} |");
        }
        md.push('\n');
    }
    let all: Vec<Counts> = verdicts
        .iter()
        .zip(&by_run)
        .map(|(v, statuses)| {
            let v: Vec<Verdict> = v.values().flatten().cloned().collect();
            counts(&v, statuses)
        })
        .collect();
    type Count = fn(&Counts) -> usize;
    let rows: [(&str, Count); 5] = [
        ("**passed**", |c| c.passed),
        ("**failed**", |c| c.failed),
        ("expected failures", |c| c.expected_failures),
        ("expected skips", |c| c.expected_skips),
        ("**unexpected**", |c| c.unexpected),
    ];
    for (label, get) in rows {
        let _ = write!(md, "| {label} |");
        for (c, statuses) in all.iter().zip(&by_run) {
            let _ = write!(md, " {}/{} |", get(c), statuses.len());
        }
        md.push('\n');
    }
    deviations(&mut md, runs);
    md
}

/// Below the table: what each runtime could not do at all, and every
/// recorded deviation with its measured reason.
fn deviations(md: &mut String, runs: &[Run]) {
    let unrunnable: Vec<&Run> = runs.iter().filter(|r| r.not_runnable.is_some()).collect();
    if !unrunnable.is_empty() {
        md.push_str("\n## Runtimes that cannot run pods on this host\n\n");
        for r in unrunnable {
            let _ = writeln!(
                md,
                "- **{}**: {}",
                r.runtime,
                r.not_runnable.as_deref().unwrap_or_default()
            );
        }
    }
    let recorded: Vec<(&Run, &Expectations)> = runs
        .iter()
        .filter(|r| r.not_runnable.is_none())
        .filter_map(|r| r.expectations.as_ref().map(|e| (r, e)))
        .filter(|(_, e)| !e.expected_failures.is_empty())
        .collect();
    if !recorded.is_empty() {
        md.push_str("\n## Deviations from Kubernetes, as measured\n\n");
        md.push_str("Each test a runtime fails as its expectations file records, with the evidence recorded there.\n");
        for (r, e) in recorded {
            let _ = writeln!(md, "\n### {}\n", r.runtime);
            for (id, why) in &e.expected_failures {
                let _ = writeln!(md, "- {id}: {why}");
            }
        }
    }
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
                    .filter(|id| !id.starts_with("skip:"))
                    .map(|id| (id.to_string(), "why".to_string()))
                    .collect(),
                expected_skips: xfail
                    .iter()
                    .filter_map(|id| id.strip_prefix("skip:"))
                    .map(|id| (id.to_string(), "why".to_string()))
                    .collect(),
                not_runnable: Default::default(),
            }),
            not_runnable: None,
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
                    ("LIFE-004", "skipped"),
                ],
                &["CGR-004", "skip:LIFE-003"],
            ),
        ];
        insta::assert_snapshot!(markdown(
            &runs,
            &["NET-001", "NET-002", "CGR-004", "LIFE-003", "LIFE-004"]
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
        std::fs::create_dir_all(dir.path().join("cri-x-crun")).unwrap();
        std::fs::write(
            dir.path().join("cri-x-crun").join(NOT_RUNNABLE_FILE),
            "cgroup-v1-hybrid: crun refuses hybrid hosts\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("summary.md"), "old").unwrap();
        let runs = read_runs(dir.path()).unwrap();
        let names: Vec<&str> = runs.iter().map(|f| f.runtime.as_str()).collect();
        assert_eq!(names, ["cli-podlab", "cri-x-crun", "podman"]);
        assert_eq!(runs[0].rows[0].status, "failed");
        assert_eq!(
            runs[1].not_runnable.as_deref(),
            Some("cgroup-v1-hybrid: crun refuses hybrid hosts")
        );
        assert!(markdown(&[], &[]).contains("No results"));
    }

    #[test]
    fn a_runtime_that_cannot_run_here_shows_na_and_its_reason() {
        let mut crun = run("cri-x-crun", &[], &[]);
        crun.not_runnable = Some("cgroup-v1-hybrid: crun refuses hybrid hosts".into());
        let runs = [run("podman", &[("NET-001", "failed")], &["NET-001"]), crun];
        let md = markdown(&runs, &["NET-001"]);
        assert!(md.contains("| NET-001 | xfail | n/a |"), "{md}");
        assert!(
            md.contains("## Runtimes that cannot run pods on this host"),
            "{md}"
        );
        assert!(
            md.contains("- **cri-x-crun**: cgroup-v1-hybrid: crun refuses hybrid hosts"),
            "{md}"
        );
        assert!(md.contains("### podman\n\n- NET-001: why"), "{md}");
    }
}
