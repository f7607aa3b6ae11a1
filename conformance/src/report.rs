//! The run's reports: results.json, junit.xml and report.md. The formats
//! are pure functions of the results, so they are snapshot-tested.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::suite::Status;

/// One test's result, as every report shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TestResult {
    pub id: String,
    pub status: Status,
    /// Skip reason or failure diagnosis; empty for a pass.
    pub reason: String,
    pub must: String,
    pub duration_ms: u64,
}

/// Counts by status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
}

impl Totals {
    pub fn of(results: &[TestResult]) -> Totals {
        let mut t = Totals::default();
        for r in results {
            match r.status {
                Status::Passed => t.passed += 1,
                Status::Failed => t.failed += 1,
                Status::Skipped => t.skipped += 1,
            }
        }
        t
    }

    pub fn total(&self) -> usize {
        self.passed + self.failed + self.skipped
    }
}

impl std::fmt::Display for Totals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} passed, {} failed, {} skipped",
            self.passed, self.failed, self.skipped
        )
    }
}

pub fn results_json(results: &[TestResult]) -> String {
    // Plain data with string keys: serialisation cannot fail.
    serde_json::to_string_pretty(results).unwrap_or_default() + "\n"
}

fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 allows no other control characters, even escaped.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\r' | '\t') => out.push('?'),
            c => out.push(c),
        }
    }
    out
}

fn seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// JUnit XML as CI systems read it: one testsuite per run, one testcase
/// per test, classname = the property family.
pub fn junit_xml(runtime: &str, results: &[TestResult]) -> String {
    let t = Totals::of(results);
    let total_ms: u64 = results.iter().map(|r| r.duration_ms).sum();
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let suite = xml_escape(&format!("conformance/{runtime}"));
    let _ = writeln!(
        x,
        "<testsuites name=\"{suite}\" tests=\"{}\" failures=\"{}\" skipped=\"{}\" time=\"{}\">",
        t.total(),
        t.failed,
        t.skipped,
        seconds(total_ms)
    );
    let _ = writeln!(
        x,
        "  <testsuite name=\"{suite}\" tests=\"{}\" failures=\"{}\" errors=\"0\" skipped=\"{}\" time=\"{}\">",
        t.total(),
        t.failed,
        t.skipped,
        seconds(total_ms)
    );
    for r in results {
        let family = r.id.split('-').next().unwrap_or(&r.id);
        let open = format!(
            "    <testcase classname=\"conformance.{}\" name=\"{}: {}\" time=\"{}\"",
            xml_escape(family),
            xml_escape(&r.id),
            xml_escape(&r.must),
            seconds(r.duration_ms)
        );
        match r.status {
            Status::Passed => {
                let _ = writeln!(x, "{open}/>");
            }
            Status::Skipped => {
                let _ = writeln!(x, "{open}>");
                let _ = writeln!(x, "      <skipped message=\"{}\"/>", xml_escape(&r.reason));
                let _ = writeln!(x, "    </testcase>");
            }
            Status::Failed => {
                let _ = writeln!(x, "{open}>");
                let _ = writeln!(
                    x,
                    "      <failure message=\"{}\" type=\"MUST\">{}</failure>",
                    xml_escape(&r.reason),
                    xml_escape(&r.reason)
                );
                let _ = writeln!(x, "    </testcase>");
            }
        }
    }
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
}

fn md_cell(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('<', "&lt;")
        .replace('|', "\\|")
        .replace('\n', "<br>")
}

/// A Markdown report: totals, failures first with their diagnoses, then every test.
pub fn markdown(runtime: &str, results: &[TestResult]) -> String {
    let t = Totals::of(results);
    let mut md = format!(
        "# Pod conformance: {runtime}\n\n{t} ({} tests).\n",
        t.total()
    );
    let failed: Vec<&TestResult> = results
        .iter()
        .filter(|r| r.status == Status::Failed)
        .collect();
    if !failed.is_empty() {
        md.push_str("\n## Failures\n");
        for r in failed {
            let _ = write!(
                md,
                "\n### {}\n\n{}\n\n> {}\n",
                r.id,
                r.must,
                r.reason.replace('\n', "\n> ")
            );
        }
    }
    md.push_str(
        "\n## All tests\n\n| ID | Result | MUST | Reason | Time |\n|---|---|---|---|---|\n",
    );
    for r in results {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} s |",
            r.id,
            r.status.label(),
            md_cell(&r.must),
            md_cell(&r.reason),
            seconds(r.duration_ms)
        );
    }
    md
}

/// Writes the three reports into `dir`, creating it.
pub fn write_reports(dir: &Path, runtime: &str, results: &[TestResult]) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join("results.json"), results_json(results))?;
    std::fs::write(dir.join("junit.xml"), junit_xml(runtime, results))?;
    std::fs::write(dir.join("report.md"), markdown(runtime, results))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> Vec<TestResult> {
        vec![
            TestResult {
                id: "NET-001".into(),
                status: Status::Passed,
                reason: String::new(),
                must: "All containers of a pod MUST be in the same network namespace.".into(),
                duration_ms: 1234,
            },
            TestResult {
                id: "UTS-003".into(),
                status: Status::Failed,
                reason: "containers app and sidecar of pod uts-shared-abc-1 are in different UTS namespaces: \
                         uts:[4026532177] vs uts:[4026532250]"
                    .into(),
                must: "All containers of a pod MUST be in the same UTS namespace.".into(),
                duration_ms: 870,
            },
            TestResult {
                id: "NET-004".into(),
                status: Status::Skipped,
                reason: "the runtime gives pods no pod network (no status.podIP)".into(),
                must: "When a pod has status.podIP, <every> container MUST have \"that\" address | here.".into(),
                duration_ms: 5,
            },
        ]
    }

    #[test]
    fn junit_format() {
        insta::assert_snapshot!(junit_xml("podlab", &fixture()));
    }

    #[test]
    fn markdown_format() {
        insta::assert_snapshot!(markdown("podlab", &fixture()));
    }

    #[test]
    fn json_format() {
        insta::assert_snapshot!(results_json(&fixture()));
    }

    #[test]
    fn totals() {
        let t = Totals::of(&fixture());
        assert_eq!((t.passed, t.failed, t.skipped, t.total()), (1, 1, 1, 3));
        assert_eq!(t.to_string(), "1 passed, 1 failed, 1 skipped");
    }

    #[test]
    fn reports_are_written() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("nested/podlab");
        write_reports(&out, "podlab", &fixture()).unwrap();
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap())
                .unwrap();
        assert_eq!(json[1]["status"], "failed");
        assert_eq!(json[2]["reason"], fixture()[2].reason);
        assert!(out.join("junit.xml").exists() && out.join("report.md").exists());
    }

    #[test]
    fn control_characters_do_not_break_xml() {
        assert_eq!(xml_escape("a\u{1}b<\n"), "a?b&lt;\n");
    }
}
