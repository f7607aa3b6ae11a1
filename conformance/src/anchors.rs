//! The anchor tests (issue 15): the Kubernetes conformance tests about
//! pods that fit one node and critest's pod-related tests, each with the
//! suite's IDs that check it, the family being written for it, what no test
//! checks yet, or why it is out of scope. The list is data
//! (`conformance/anchors.json`); the coverage numbers in
//! docs/conformance.md are counted from it, never typed.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde::Deserialize;

use crate::suite::TestCase;

const DATA: &str = include_str!("../anchors.json");

/// The families issue 15 adds; `planned` names one of them until the
/// family lands and the anchor gets its `covered_by`.
pub const PLANNED_FAMILIES: &[&str] = &[
    "CMD", "EXEC", "IMAGE", "TERM", "DEADLINE", "DOWNWARD", "LOGS", "VOL", "SEC", "HOSTS",
    "SYSCTL", "HOSTNS", "PORT",
];

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("conformance/anchors.json does not parse")]
    Parse(#[from] serde_json::Error),
    #[error("conformance/anchors.json, anchor {anchor:?}: {problem}")]
    Invalid { anchor: String, problem: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[allow(dead_code)]
    about: String,
    kubernetes_source: String,
    critest_source: String,
    kubernetes: Vec<RawAnchor>,
    critest: Vec<RawAnchor>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAnchor {
    name: String,
    file: Option<String>,
    describe: Option<String>,
    context: Option<String>,
    covered_by: Option<Vec<String>>,
    planned: Option<String>,
    gap: Option<String>,
    out_of_scope: Option<String>,
    note: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Suite {
    Kubernetes,
    Critest,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// The suite's tests that check it.
    Covered(Vec<String>),
    /// A family being written will check it; uncovered until then.
    Planned(String),
    /// In scope, checked by no test: what is missing.
    Gap(String),
    /// Not a property of a pod on one node: why.
    OutOfScope(String),
}

#[derive(Debug, Clone)]
pub struct Anchor {
    pub suite: Suite,
    /// The test's own name: the conformance.yaml codename, or the `It` text.
    pub name: String,
    /// critest only: the Go file, Describe and Context (or When) it sits in.
    pub place: Option<(String, String, String)>,
    pub status: Status,
    pub note: Option<String>,
}

impl Anchor {
    /// The name as the docs show it; critest's `It` texts need their Describe.
    pub fn label(&self) -> String {
        match &self.place {
            Some((_, describe, _)) => format!("{describe}: {}", self.name),
            None => self.name.clone(),
        }
    }
}

#[derive(Debug)]
pub struct Anchors {
    pub kubernetes_source: String,
    pub critest_source: String,
    pub kubernetes: Vec<Anchor>,
    pub critest: Vec<Anchor>,
}

/// Covered, planned, gap and out-of-scope counts of one list; the
/// in-scope total is everything but out of scope.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub covered: usize,
    pub planned: usize,
    pub gap: usize,
    pub out_of_scope: usize,
}

impl Tally {
    pub fn of(list: &[Anchor]) -> Tally {
        let mut t = Tally::default();
        for a in list {
            match a.status {
                Status::Covered(_) => t.covered += 1,
                Status::Planned(_) => t.planned += 1,
                Status::Gap(_) => t.gap += 1,
                Status::OutOfScope(_) => t.out_of_scope += 1,
            }
        }
        t
    }

    pub fn in_scope(&self) -> usize {
        self.covered + self.planned + self.gap
    }
}

fn invalid(anchor: &str, problem: impl Into<String>) -> Error {
    Error::Invalid {
        anchor: anchor.to_string(),
        problem: problem.into(),
    }
}

fn convert(raw: RawAnchor, suite: Suite) -> Result<Anchor, Error> {
    let name = raw.name;
    if name.trim().is_empty() {
        return Err(invalid(&name, "empty name"));
    }
    let place =
        match (suite, raw.file, raw.describe, raw.context) {
            (Suite::Kubernetes, None, None, None) => None,
            (Suite::Critest, Some(f), Some(d), Some(c)) if f.ends_with(".go") => Some((f, d, c)),
            _ => return Err(invalid(
                &name,
                "a critest anchor has file (*.go), describe and context; a Kubernetes one has none",
            )),
        };
    let text = |what: &str, s: String| {
        if s.trim().is_empty() {
            Err(invalid(&name, format!("{what} needs its reason")))
        } else {
            Ok(s)
        }
    };
    let mut statuses = Vec::new();
    if let Some(ids) = raw.covered_by {
        if ids.is_empty() {
            return Err(invalid(&name, "covered_by lists no test"));
        }
        statuses.push(Status::Covered(ids));
    }
    if let Some(family) = raw.planned {
        if !PLANNED_FAMILIES.contains(&family.as_str()) {
            return Err(invalid(
                &name,
                format!("planned names {family:?}, not one of {PLANNED_FAMILIES:?}"),
            ));
        }
        statuses.push(Status::Planned(family));
    }
    if let Some(why) = raw.gap {
        statuses.push(Status::Gap(text("gap", why)?));
    }
    if let Some(why) = raw.out_of_scope {
        statuses.push(Status::OutOfScope(text("out_of_scope", why)?));
    }
    if statuses.len() != 1 {
        return Err(invalid(
            &name,
            format!(
                "needs exactly one of covered_by, planned, gap, out_of_scope (has {})",
                statuses.len()
            ),
        ));
    }
    Ok(Anchor {
        suite,
        name,
        place,
        status: statuses.remove(0),
        note: raw.note,
    })
}

/// Parses `text` and checks each anchor's shape and that no anchor is
/// listed twice (which test IDs exist is [`unknown_ids`]'s job).
pub fn parse(text: &str) -> Result<Anchors, Error> {
    let raw: RawFile = serde_json::from_str(text)?;
    let list = |raw: Vec<RawAnchor>, suite| -> Result<Vec<Anchor>, Error> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for r in raw {
            let a = convert(r, suite)?;
            if !seen.insert(a.label()) {
                return Err(invalid(&a.label(), "listed twice"));
            }
            out.push(a);
        }
        Ok(out)
    };
    Ok(Anchors {
        kubernetes: list(raw.kubernetes, Suite::Kubernetes)?,
        critest: list(raw.critest, Suite::Critest)?,
        kubernetes_source: raw.kubernetes_source,
        critest_source: raw.critest_source,
    })
}

/// The checked-in list.
pub fn load() -> Result<Anchors, Error> {
    parse(DATA)
}

impl Anchors {
    pub fn all(&self) -> impl Iterator<Item = &Anchor> {
        self.kubernetes.iter().chain(&self.critest)
    }

    /// `covered_by` IDs that name no test of `cases`, with their anchor.
    pub fn unknown_ids(&self, cases: &[TestCase]) -> Vec<(String, String)> {
        let ids: BTreeSet<&str> = cases.iter().map(|c| c.id).collect();
        let mut out = Vec::new();
        for a in self.all() {
            if let Status::Covered(covering) = &a.status {
                for id in covering {
                    if !ids.contains(id.as_str()) {
                        out.push((a.label(), id.clone()));
                    }
                }
            }
        }
        out
    }

    /// The anchors test `id` covers.
    pub fn covered_by(&self, id: &str) -> Vec<&Anchor> {
        self.all()
            .filter(|a| matches!(&a.status, Status::Covered(ids) if ids.iter().any(|i| i == id)))
            .collect()
    }

    /// The sentence the issue asks for, counted from the list.
    pub fn headline(&self) -> String {
        let (k, c) = (Tally::of(&self.kubernetes), Tally::of(&self.critest));
        format!(
            "Kubernetes conformance, single-node pod tests: {} of {} covered; critest pod tests: {} of {}.",
            k.covered,
            k.in_scope(),
            c.covered,
            c.in_scope()
        )
    }

    /// The coverage section of docs/conformance.md.
    pub fn coverage_markdown(&self) -> String {
        let (k, c) = (Tally::of(&self.kubernetes), Tally::of(&self.critest));
        let mut md = format!(
            "\n## Coverage of the anchor tests\n\n**{}**\n\n\
             The anchors are the Kubernetes conformance tests about pods that fit one node and \
             need no API object but the Pod, and critest's pod-related tests. Kubernetes: {}. \
             critest: {}. \
             `conformance/anchors.json` gives each exactly one of: the IDs of this suite that \
             check it (covered), the family being written for it (planned, not yet covered), \
             what no test checks yet (gap), or why it is out of scope (not counted). \
             An anchor is covered when the listed tests check the same pod field or behaviour, \
             so that a runtime that ignores or breaks it fails them, even through another \
             symptom; each test below names the anchors it covers.\n\n\
             | Anchors | Covered | Planned | Gap | In scope | Out of scope |\n\
             |---|---|---|---|---|---|\n",
            self.headline(),
            self.kubernetes_source,
            self.critest_source,
        );
        for (what, t) in [("Kubernetes conformance", &k), ("critest", &c)] {
            let _ = writeln!(
                md,
                "| {what} | {} | {} | {} | {} | {} |",
                t.covered,
                t.planned,
                t.gap,
                t.in_scope(),
                t.out_of_scope
            );
        }
        for (what, list) in [
            ("Kubernetes conformance", &self.kubernetes),
            ("critest", &self.critest),
        ] {
            let _ = writeln!(md, "\n### Not covered yet: {what}\n");
            let mut planned: Vec<&Anchor> = list
                .iter()
                .filter(|a| matches!(a.status, Status::Planned(_)))
                .collect();
            planned.sort_by_key(|a| match &a.status {
                Status::Planned(f) => PLANNED_FAMILIES.iter().position(|p| p == f),
                _ => None,
            });
            for a in planned
                .into_iter()
                .chain(list.iter().filter(|a| matches!(a.status, Status::Gap(_))))
            {
                let why = match &a.status {
                    Status::Planned(f) => format!("planned: {f}"),
                    Status::Gap(g) => format!("gap: {g}"),
                    _ => continue,
                };
                let note = a
                    .note
                    .as_deref()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default();
                let _ = writeln!(md, "- `{}`: {why}{note}", a.label());
            }
        }
        let _ = writeln!(md, "\n### Out of scope\n");
        for a in self.all() {
            if let Status::OutOfScope(why) = &a.status {
                let _ = writeln!(md, "- `{}`: {why}", a.label());
            }
        }
        md
    }

    /// The anchor line under test `id` in docs/conformance.md.
    pub fn line_for(&self, id: &str) -> String {
        let covered = self.covered_by(id);
        if covered.is_empty() {
            return "Anchors: none.".into();
        }
        let names = |suite| {
            covered
                .iter()
                .filter(|a| a.suite == suite)
                .map(|a| format!("`{}`", a.label()))
                .collect::<Vec<_>>()
        };
        let mut parts = Vec::new();
        for (what, suite) in [
            ("Kubernetes", Suite::Kubernetes),
            ("critest", Suite::Critest),
        ] {
            let n = names(suite);
            if !n.is_empty() {
                parts.push(format!("{what} {}", n.join(", ")));
            }
        }
        format!("Anchors: {}.", parts.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn anchors() -> Anchors {
        load().unwrap_or_else(|e| panic!("{}", podlab_kube::error::chain(&e)))
    }

    #[test]
    fn the_list_parses_with_one_status_each_and_no_anchor_twice() {
        let a = anchors();
        assert!(a.kubernetes.len() >= 90, "{}", a.kubernetes.len());
        assert!(a.critest.len() >= 60, "{}", a.critest.len());
    }

    #[test]
    fn every_covering_id_is_a_registered_test() {
        let unknown = anchors().unknown_ids(&crate::tests::all());
        assert!(unknown.is_empty(), "unknown IDs: {unknown:?}");
    }

    #[test]
    fn kubernetes_names_are_codenames_and_critest_names_are_its() {
        let a = anchors();
        for k in &a.kubernetes {
            assert!(k.name.starts_with("[sig-"), "{}", k.name);
            assert!(k.name.ends_with("[Conformance]"), "{}", k.name);
            assert!(!k.name.contains("  "), "{}", k.name);
        }
        for c in &a.critest {
            assert!(!c.name.starts_with('['), "{}", c.name);
        }
    }

    fn one(extra: &str) -> String {
        format!(
            r#"{{"about": "", "kubernetes_source": "k", "critest_source": "c", "critest": [],
                "kubernetes": [{{"name": "[sig-node] X [Conformance]"{extra}}}]}}"#
        )
    }

    #[test]
    fn a_status_is_required_and_only_one() {
        assert!(parse(&one(r#", "covered_by": ["NET-001"]"#)).is_ok());
        for bad in [
            "",
            r#", "covered_by": []"#,
            r#", "covered_by": ["NET-001"], "gap": "x""#,
            r#", "planned": "NOPE""#,
            r#", "out_of_scope": " ""#,
            r#", "gap": "x", "file": "pod.go""#,
            r#", "gap": "x", "colour": "red""#,
        ] {
            assert!(parse(&one(bad)).is_err(), "accepted {bad}");
        }
        let twice = r#"{"about": "", "kubernetes_source": "k", "critest_source": "c", "kubernetes": [],
            "critest": [
              {"file": "a.go", "describe": "D", "context": "c1", "name": "n", "gap": "x"},
              {"file": "b.go", "describe": "D", "context": "c2", "name": "n", "gap": "y"}]}"#;
        let err = parse(twice).map(|_| ()).unwrap_err().to_string();
        assert!(err.contains("listed twice"), "{err}");
    }

    #[test]
    fn unknown_ids_are_found() {
        let a = parse(&one(r#", "covered_by": ["NET-001", "NOPE-001"]"#)).unwrap();
        let unknown = a.unknown_ids(&crate::tests::all());
        assert_eq!(
            unknown,
            vec![("[sig-node] X [Conformance]".into(), "NOPE-001".into())]
        );
    }

    #[test]
    fn the_headline_counts_covered_of_in_scope() {
        let text = r#"{"about": "", "kubernetes_source": "k", "critest_source": "c",
            "kubernetes": [
              {"name": "[sig-node] A [Conformance]", "covered_by": ["NET-001"]},
              {"name": "[sig-node] B [Conformance]", "planned": "CMD"},
              {"name": "[sig-node] C [Conformance]", "gap": "x"},
              {"name": "[sig-node] D [Conformance]", "out_of_scope": "needs a Service"}],
            "critest": [
              {"file": "a.go", "describe": "D", "context": "c", "name": "n", "covered_by": ["UTS-001"]}]}"#;
        let a = parse(text).unwrap();
        assert_eq!(
            a.headline(),
            "Kubernetes conformance, single-node pod tests: 1 of 3 covered; critest pod tests: 1 of 1."
        );
        assert_eq!(
            a.line_for("NET-001"),
            "Anchors: Kubernetes `[sig-node] A [Conformance]`."
        );
        assert_eq!(a.line_for("UTS-001"), "Anchors: critest `D: n`.");
        assert_eq!(a.line_for("IPC-001"), "Anchors: none.");
        let md = a.coverage_markdown();
        assert!(
            md.contains("| Kubernetes conformance | 1 | 1 | 1 | 3 | 1 |"),
            "{md}"
        );
        assert!(
            md.contains("- `[sig-node] D [Conformance]`: needs a Service"),
            "{md}"
        );
    }

    #[test]
    fn the_docs_carry_the_counts_of_the_file() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/conformance.md");
        let doc = std::fs::read_to_string(path).unwrap_or_default();
        let a = anchors();
        assert!(
            doc.contains(&a.headline()),
            "docs/conformance.md lacks {:?}: run `conformance --gen-docs docs/conformance.md`",
            a.headline()
        );
        for c in crate::tests::all() {
            let line = a.line_for(c.id);
            assert!(doc.contains(&line), "{}: {line}", c.id);
        }
    }
}
