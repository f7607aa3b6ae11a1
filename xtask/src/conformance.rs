//! `cargo xtask conformance`: builds what the suite needs and runs the
//! `conformance` runner of `conformance/` against a runtime. With
//! `--mutants`, podlab is built with its deliberately broken variants and
//! the runner checks that every variant is caught.

use std::path::PathBuf;

use crate::{fixtures, test, util};

pub fn run(args: &[String]) -> anyhow::Result<()> {
    if util::flag(args, "--summary") {
        return util::run(
            util::cargo()
                .args([
                    "run",
                    "--quiet",
                    "-p",
                    "podlab-conformance",
                    "--bin",
                    "conformance",
                    "--",
                ])
                .args(args),
        );
    }
    let mutants = util::flag(args, "--mutants");
    let runtime = util::value(args, "--runtime").unwrap_or_else(|| "podlab".into());
    let mut pass: Vec<String> = args.to_vec();
    if util::value(args, "--runtime").is_none() {
        pass.extend(["--runtime".into(), runtime.clone()]);
    }
    if runtime == "podlab"
        && util::value(args, "--podlab-bin").is_none()
        && !util::flag(args, "--list")
    {
        let bin = if mutants {
            build_mutant_podlab()?
        } else {
            fixtures::build_podlab(false)?
        };
        pass.extend(["--podlab-bin".into(), bin.to_string_lossy().into_owned()]);
    }
    let images = test::test_image_root();
    if util::is_root() && !util::flag(args, "--list") && !images.join("oci/index.json").exists() {
        fixtures::build_and_import(Some(&images.to_string_lossy()))?;
    }
    util::step(&format!(
        "conformance suite on {runtime}{}",
        if mutants { " (mutation matrix)" } else { "" }
    ));
    util::run(
        util::cargo()
            .args([
                "run",
                "--quiet",
                "-p",
                "podlab-conformance",
                "--bin",
                "conformance",
                "--",
            ])
            .args(&pass)
            .env("PODLAB_IMAGE_ROOT", &images),
    )
}

/// podlab with the `mutants` feature, in its own target dir so the normal
/// build is never one that can break on purpose.
pub fn build_mutant_podlab() -> anyhow::Result<PathBuf> {
    util::step("building podlab with the mutants feature (deliberately broken variants)");
    let dir = util::root().join("target/mutants");
    util::run(
        util::cargo()
            .args([
                "build",
                "--quiet",
                "-p",
                "podlab",
                "--bin",
                "podlab",
                "--features",
                "mutants",
                "--target-dir",
            ])
            .arg(&dir),
    )?;
    Ok(dir.join("debug/podlab"))
}
