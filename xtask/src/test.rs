//! `cargo xtask test`: formatting, lints, unit tests, then the privileged
//! integration tests through the real `podlab` binary.

use crate::{doctor, fixtures, util};

pub fn run() -> anyhow::Result<()> {
    let root = util::is_root();
    // CI must run everything: a green run without root would only mean
    // that the pods were never made.
    if std::env::var("CI").as_deref() == Ok("true") && !root {
        anyhow::bail!(
            "CI=true but not root: the pod tests, the conformance suite, its mutants and the \
             labs need root (namespaces, cgroups, mounts); run CI as root"
        );
    }
    // Everything the suite compares podlab with comes with `test`.
    if root {
        doctor::install(doctor::ALL)?;
    }
    let skips = util::target().join("podlab-test/skipped.tsv");
    if let Some(dir) = skips.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let _ = std::fs::remove_file(&skips);
    let result = steps(root, &skips);
    report_skips(&skips, root);
    result
}

fn steps(root: bool, skips: &std::path::Path) -> anyhow::Result<()> {
    util::step("cargo fmt --check");
    util::run(util::cargo().args(["fmt", "--all", "--", "--check"]))?;
    util::step("cargo clippy (warnings denied)");
    util::run(
        util::cargo()
            .args(["clippy", "--workspace", "--all-targets", "--quiet"])
            .args(crate::conformance::cri_features())
            .args(["--", "-D", "warnings"]),
    )?;

    // The fuzz targets are workspace members: clippy lints them, and this
    // links them, so a change that breaks one fails here and not in the
    // next fuzzing session.
    util::step("fuzz targets build");
    util::run(util::cargo().args(["build", "--quiet", "-p", "podlab-fuzz", "--bins"]))?;

    util::step("docs in sync with the code");
    crate::docs::run(&crate::docs::Args { check: true })?;
    let images = fixtures::test_image_root();
    if root {
        fixtures::build_and_import(Some(&images.to_string_lossy()))?;
    }
    // The pull tests (runtime/tests/pull.rs) run with the others, against
    // a registry that lives until they are done.
    let registry = if root {
        util::step("test registry on loopback (docker-registry; fixtures pushed with skopeo)");
        Some(fixtures::start_registry()?)
    } else {
        None
    };
    util::step("cargo test (unit and integration tests)");
    let mut cargo_test = util::cargo();
    if let Some(r) = &registry {
        cargo_test
            .env(podlab_testkit::registry::ADDRESS_ENV, &r.address)
            .env("PODLAB_TEST_FIXTURES", util::target().join("fixtures"));
    }
    util::run(
        cargo_test
            .args(["test", "--workspace"])
            .args(crate::conformance::cri_features())
            .args(["--", "--test-threads", "2"])
            .env("PODLAB_IMAGE_ROOT", &images)
            .env("PODLAB_PROBE", fixtures::probe_path())
            .env(podlab_testkit::skip::SKIP_LOG_ENV, skips),
    )?;
    drop(registry);
    if root {
        // The suite on every runtime, podlab's mutation matrix included.
        crate::conformance::run_matrix(true)?;
        util::step("coursework labs: untouched, near misses, solutions (docs/labs)");
        crate::labs::run_all(&[])?;
        util::step("the course: skeleton and each stage's solution against the next (docs/course)");
        crate::course::verify()?;
        // podlab's cgroup v2 path on a real v2 kernel (the host is v1).
        crate::vm::boot(None)?;
    } else {
        skipped_step(
            skips,
            "conformance suite on podlab, its mutation matrix, podman, cri, cli:podlab, cli:kubectl",
        );
        skipped_step(skips, "coursework labs (docs/labs)");
        skipped_step(skips, "the course's stage checks (docs/course)");
        skipped_step(skips, "podlab on cgroup v2 in a VM (cargo xtask vm)");
    }
    Ok(())
}

/// Records a whole step skipped for want of root, like a skipped test.
fn skipped_step(skips: &std::path::Path, what: &str) {
    use std::io::Write as _;
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(skips)
    {
        let _ = writeln!(f, "xtask: {what}\tpods need root");
    }
}

/// Prints every test and step that skipped, by name with its reason, and
/// how many.
fn report_skips(skips: &std::path::Path, root: bool) {
    let text = std::fs::read_to_string(skips).unwrap_or_default();
    let lines: Vec<(&str, &str)> = text.lines().filter_map(|l| l.split_once('\t')).collect();
    eprintln!();
    if lines.is_empty() {
        eprintln!("skipped: 0 tests{}", if root { " (as root)" } else { "" });
        return;
    }
    eprintln!(
        "skipped: {} (a skipped test is not a passed one):",
        lines.len()
    );
    for (name, reason) in &lines {
        eprintln!("  SKIPPED {name}: {reason}");
    }
}
