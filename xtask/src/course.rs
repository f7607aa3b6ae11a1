//! The course track of docs/course/: write your own pod runtime, stage by
//! stage, graded by the conformance suite through the adapter contract.
//! `cargo xtask course check --stage N --runtime cli:PATH` runs stages
//! 1..N focused and prints, per stage, the failing MUST sentences with the
//! suite's diagnosis. `cargo xtask course verify` is the course's own test:
//! the skeleton fails stage 1, and for every stage N a reference solution
//! of stage N-1 (podlab with one later property broken by a mutant) passes
//! stage N-1 and fails stage N.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context};
use serde_json::Value;

use crate::{conformance, fixtures, util};

pub struct Stage {
    pub title: &'static str,
    pub ids: &'static [&'static str],
    /// The capabilities the stage's tests need: claimed for the student's
    /// runtime, so a test fails instead of skipping.
    pub caps: &'static [&'static str],
    /// The mutant that makes podlab a solution of the stage before this
    /// one: it breaks a property of this stage and of no earlier one.
    pub breaks: &'static str,
}

#[rustfmt::skip]
pub const STAGES: &[Stage] = &[
    Stage { title: "apply, get, delete: a pod of one container runs and reports Running",
        ids: &["LIFE-001", "LIFE-004"], caps: &[], breaks: "" },
    Stage { title: "the pause holds net, UTS and IPC; every container joins them",
        ids: &["NET-001", "NET-002", "NET-003", "UTS-001", "UTS-002", "UTS-003", "UTS-004",
               "IPC-001", "IPC-002", "IPC-003", "IPC-004"],
        caps: &[], breaks: "no-shared-uts" },
    Stage { title: "localhost between containers",
        ids: &["NET-005", "NET-007", "NET-009", "NET-010"], caps: &[], breaks: "loopback-down" },
    Stage { title: "isolation: mount and PID per container, nothing shared across pods",
        ids: &["ISO-001", "ISO-002", "ISO-003", "NET-006", "NET-008",
               "IPC-005", "IPC-006", "IPC-007", "IPC-008"],
        caps: &["same-kernel", "share-process-namespace"], breaks: "shared-pid" },
    Stage { title: "per-container cgroup limits, enforced",
        ids: &["CGR-001", "CGR-002", "CGR-003", "CGR-004", "CGR-005", "CGR-006", "CGR-007"],
        caps: &["cgroup-visible", "pod-pids", "container-pids=1024"], breaks: "no-memory-limit" },
    Stage { title: "the status a kubelet reports: phases, conditions, container states, restarts",
        ids: &["LIFE-002", "LIFE-003", "LIFE-005", "LIFE-006", "LIFE-007", "LIFE-008",
               "LIFE-009", "LIFE-010", "LIFE-011", "LIFE-012", "LIFE-013"],
        caps: &["pending-observable", "init-containers", "restart-policy", "unschedulable",
                "oom-reason"],
        breaks: "admit-all" },
    Stage { title: "the pod network through CNI",
        ids: &["NET-004", "NET-011", "NET-012", "NET-013", "NET-014"],
        caps: &["pod-ip", "node-reaches-pods"], breaks: "wrong-pod-ip" },
];

/// The focus pattern and capabilities of stages `from..=to` (1-based).
fn selection(from: usize, to: usize) -> (String, String) {
    let stages = &STAGES[from - 1..to];
    let focus = stages
        .iter()
        .flat_map(|s| s.ids.iter().copied())
        .collect::<Vec<_>>()
        .join("|");
    // Every earlier stage's capabilities too: the stages build on each other.
    let caps = STAGES[..to]
        .iter()
        .flat_map(|s| s.caps.iter().copied())
        .collect::<Vec<_>>()
        .join(",");
    (focus, caps)
}

/// One focused run; returns the results (id, status, must, reason).
fn run_suite(
    runtime: &str,
    from: usize,
    to: usize,
    envs: &[(&str, String)],
    report: &Path,
) -> anyhow::Result<Vec<Value>> {
    let (focus, caps) = selection(from, to);
    let _ = std::fs::remove_dir_all(report);
    // The runner as `cargo xtask conformance` builds it: no rebuild.
    let mut cmd = conformance::runner();
    cmd.args(["--runtime", runtime, "--focus", &focus])
        .arg("--report")
        .arg(report)
        .env("PODLAB_IMAGE_ROOT", fixtures::test_image_root());
    if !caps.is_empty() {
        cmd.args(["--caps", &caps]);
    }
    for (k, v) in envs {
        cmd.env(k, v);
    }
    // Failures are the point here: the results say which.
    let _ = cmd.status()?;
    let text = std::fs::read_to_string(report.join("results.json"))
        .with_context(|| format!("the suite wrote no report in {}", report.display()))?;
    Ok(serde_json::from_str::<Value>(&text)?
        .as_array()
        .cloned()
        .unwrap_or_default())
}

fn failing<'a>(results: &'a [Value], stage: &Stage) -> Vec<&'a Value> {
    results
        .iter()
        .filter(|r| stage.ids.iter().any(|id| r["id"] == *id))
        .filter(|r| r["status"] != "passed")
        .collect()
}

fn prepare() -> anyhow::Result<()> {
    if !util::is_root() {
        bail!("the course's stages create pods and need root");
    }
    fixtures::build_and_import(Some(&fixtures::test_image_root().to_string_lossy()))
}

/// `cargo xtask course check --stage N --runtime cli:PATH | course verify`
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    verb: Verb,
}

#[derive(clap::Subcommand, Debug)]
enum Verb {
    /// Your runtime on the course's stages 1..N: the failing MUST sentences
    Check {
        /// The last stage to run, from 1 to the number of stages
        #[arg(long, value_name = "N", value_parser = stage)]
        stage: usize,
        /// Your runtime, speaking docs/adapter-contract.md
        #[arg(long, value_name = "cli:PATH", value_parser = cli_runtime)]
        runtime: String,
    },
    /// The course's own test: the skeleton fails stage 1, each stage's solution fails the next
    Verify,
}

fn stage(s: &str) -> Result<usize, String> {
    s.parse()
        .ok()
        .filter(|n| (1..=STAGES.len()).contains(n))
        .ok_or_else(|| format!("N from 1 to {}", STAGES.len()))
}

fn cli_runtime(s: &str) -> Result<String, String> {
    match s.strip_prefix("cli:") {
        Some(path) if !path.is_empty() => Ok(s.to_string()),
        _ => Err("cli:PATH, your runtime speaking docs/adapter-contract.md".into()),
    }
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    match &args.verb {
        Verb::Check { stage, runtime } => check(*stage, runtime),
        Verb::Verify => verify(),
    }
}

/// `course check --stage N --runtime cli:PATH`
fn check(n: usize, runtime: &str) -> anyhow::Result<()> {
    prepare()?;
    let report = util::target().join("course/check");
    let results = run_suite(runtime, 1, n, &[], &report)?;
    let mut bad = 0;
    for (i, stage) in STAGES[..n].iter().enumerate() {
        let fails = failing(&results, stage);
        println!(
            "stage {}: {} — {}/{} pass",
            i + 1,
            stage.title,
            stage.ids.len() - fails.len(),
            stage.ids.len()
        );
        for f in &fails {
            println!(
                "  ✗ {} {}",
                f["id"].as_str().unwrap_or(""),
                f["must"].as_str().unwrap_or("")
            );
            println!(
                "      {}: {}",
                f["status"].as_str().unwrap_or(""),
                f["reason"].as_str().unwrap_or("")
            );
        }
        bad += fails.len();
    }
    println!("reports: {}", report.display());
    if bad > 0 {
        bail!("{bad} MUST sentences of stages 1..{n} fail");
    }
    println!("stages 1..{n}: done");
    Ok(())
}

/// `course verify`: the skeleton fails stage 1; each stage's reference
/// solution fails the next stage and passes its own.
pub fn verify() -> anyhow::Result<()> {
    let t = Instant::now();
    prepare()?;
    let mut errors = Vec::new();
    let skeleton = build_skeleton()?;
    let report = util::target().join("course/verify");
    let r = run_suite(
        &format!("cli:{}", skeleton.display()),
        1,
        1,
        &[],
        &report.join("skeleton"),
    )?;
    if failing(&r, &STAGES[0]).is_empty() {
        errors.push("the skeleton passes stage 1".to_string());
    } else {
        println!("course: the skeleton fails stage 1, as it should");
    }
    let bin = conformance::build_mutant_podlab()?;
    let runtime = format!("cli:{}", bin.display());
    let root = util::target().join("course/root");
    let data = util::target().join("course/data");
    let globals = format!(
        "--root {} --data-root {} --image-root {}",
        root.display(),
        data.display(),
        fixtures::test_image_root().display()
    );
    for (i, next) in STAGES.iter().enumerate().skip(1) {
        let n = i + 1;
        let started = Instant::now();
        let envs = [
            ("PODLAB_MUTANT", next.breaks.to_string()),
            ("CONFORMANCE_CLI_ARGS", globals.clone()),
        ];
        // The solution of stage n-1 on stages n-1 and n.
        let r = run_suite(&runtime, n - 1, n, &envs, &report.join(format!("stage{n}")))?;
        let own = failing(&r, &STAGES[n - 2]);
        let caught = failing(&r, next);
        if !own.is_empty() {
            errors.push(format!(
                "the stage {} solution ({}) fails its own stage: {:?}",
                n - 1,
                next.breaks,
                own.iter().map(|f| f["id"].clone()).collect::<Vec<_>>()
            ));
        }
        if caught.is_empty() {
            errors.push(format!(
                "the stage {} solution ({}) passes stage {n}",
                n - 1,
                next.breaks
            ));
        }
        println!(
            "course: the stage {} solution passes stage {} and fails stage {n} ({} of its MUST sentences) in {:.1} s",
            n - 1,
            n - 1,
            caught.len(),
            started.elapsed().as_secs_f64()
        );
    }
    let _ = std::fs::remove_dir_all(&root);
    let _ = std::fs::remove_dir_all(&data);
    println!("course verify: {:.1} s", t.elapsed().as_secs_f64());
    if !errors.is_empty() {
        bail!("the course:\n{}", errors.join("\n"));
    }
    Ok(())
}

/// The starter skeleton of docs/course/skeleton (a workspace member).
fn build_skeleton() -> anyhow::Result<PathBuf> {
    util::step("building the course skeleton");
    util::run(util::cargo().args(["build", "--quiet", "-p", "course-skeleton"]))?;
    Ok(util::target().join("debug/myruntime"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seven_stages_of_known_ids_and_mutants() {
        assert!(STAGES.len() >= 7);
        let ids: Vec<&str> = podlab_conformance::tests::all()
            .iter()
            .map(|t| t.id)
            .collect();
        let mut seen = std::collections::BTreeSet::new();
        for (i, s) in STAGES.iter().enumerate() {
            for id in s.ids {
                assert!(ids.contains(id), "stage {}: no test {id}", i + 1);
                assert!(seen.insert(*id), "{id} is in two stages");
            }
            if i > 0 {
                // The suite's VARIANTS name every mutant of the runtime
                // (a unit test there keeps the lists in agreement).
                assert!(
                    podlab_conformance::mutants::VARIANTS
                        .iter()
                        .any(|v| v.name == s.breaks),
                    "stage {}: no mutant {}",
                    i + 1,
                    s.breaks
                );
            }
        }
        let (focus, caps) = selection(1, 7);
        assert!(focus.contains("NET-014") && caps.contains("pod-ip"));
    }
}
