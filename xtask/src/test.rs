//! `cargo xtask test`: formatting, lints, unit tests, then the privileged
//! integration tests through the real `podlab` binary.

use crate::{doctor, fixtures, util};

/// The image store the integration tests use, kept apart from the user's.
pub fn test_image_root() -> std::path::PathBuf {
    util::target().join("podlab-test/images")
}

pub fn run(_args: &[String]) -> anyhow::Result<()> {
    let root = util::is_root();
    // Everything the suite compares podlab with comes with `test`.
    if root {
        doctor::install(doctor::ALL)?;
    }
    util::step("cargo fmt --check");
    util::run(util::cargo().args(["fmt", "--all", "--", "--check"]))?;
    util::step("cargo clippy (warnings denied)");
    util::run(
        util::cargo()
            .args(["clippy", "--workspace", "--all-targets", "--quiet"])
            .args(crate::conformance::cri_features())
            .args(["--", "-D", "warnings"]),
    )?;

    util::step("docs in sync with the code");
    crate::docs::run(&["--check".to_string()])?;
    let images = test_image_root();
    if root {
        fixtures::build_and_import(Some(&images.to_string_lossy()))?;
    } else {
        eprintln!(
            "xtask: not root: the integration tests that create pods will SKIP (they need root for \
             namespaces, cgroups and mounts); run `sudo cargo xtask test` for the full suite"
        );
    }
    util::step("cargo test (unit and integration tests)");
    util::run(
        util::cargo()
            .args(["test", "--workspace"])
            .args(crate::conformance::cri_features())
            .args(["--", "--test-threads", "2"])
            .env("PODLAB_IMAGE_ROOT", &images)
            .env("PODLAB_PROBE", fixtures::probe_path()),
    )?;
    if root {
        crate::conformance::run(&["--runtime".into(), "podlab".into()])?;
        crate::conformance::run(&["--runtime".into(), "podlab".into(), "--mutants".into()])?;
        // The same suite on podman, against its checked-in expectations.
        crate::conformance::run(&["--runtime".into(), "podman".into()])?;
        // And on containerd through the CRI, against its own expectations.
        crate::conformance::run(&["--runtime".into(), "cri".into()])?;
        // podlab again, driven as any kubectl-compatible binary would be.
        crate::conformance::run_cli_on_podlab()?;
        crate::conformance::run(&["--summary".into()])?;
    } else {
        eprintln!("xtask: not root: the conformance suite and its mutation matrix are SKIPPED (pods need root)");
    }
    util::step("coursework labs, as written (docs/labs)");
    crate::labs::run_all(&[])?;
    if !root {
        eprintln!("xtask: done; privileged tests were skipped (not root)");
    }
    Ok(())
}
