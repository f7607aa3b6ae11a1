//! `cargo xtask fuzz [--seconds N] [TARGET...]`: runs the cargo-fuzz targets
//! of `fuzz/` (manifest parsing, quantity parsing, layer unpacking) for a
//! bounded time each. libFuzzer runs without a sanitizer, so the stable
//! toolchain suffices (RUSTC_BOOTSTRAP only lets cargo-fuzz pass its flags).
//! Optimised, but with debug assertions and overflow checks on: an
//! overflow is exactly what a fuzzer should find. The oracles live in
//! `fuzz/src/lib.rs`, where `cargo test` runs them over the seeds.

use std::process::Command;

use crate::util;

const TARGETS: &[&str] = &["manifest", "quantity", "layer"];

/// `cargo xtask fuzz [--seconds N] [manifest|quantity|layer]...`
#[derive(clap::Args, Debug)]
pub struct Args {
    /// How long each target runs
    #[arg(long, value_name = "N", default_value_t = 30)]
    seconds: u64,
    /// The targets to run (default: all)
    #[arg(value_name = "TARGET", value_parser = clap::builder::PossibleValuesParser::new(TARGETS))]
    targets: Vec<String>,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let seconds = args.seconds;
    let chosen: Vec<&str> = TARGETS
        .iter()
        .copied()
        .filter(|t| args.targets.is_empty() || args.targets.iter().any(|a| a == t))
        .collect();
    if Command::new("cargo")
        .args(["fuzz", "--version"])
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true)
    {
        util::step("installing cargo-fuzz from crates.io");
        util::run(util::cargo().args(["install", "--quiet", "cargo-fuzz"]))?;
    }
    let fuzz_dir = util::root().join("fuzz");
    // The refused-manifest corpus seeds the manifest fuzzer, the
    // checked-in tar layers (whiteouts, links, long names, escapes) the
    // layer fuzzer.
    for (target, from) in [
        ("manifest", util::root().join("fixtures/bad")),
        ("layer", fuzz_dir.join("seeds/layer")),
    ] {
        let corpus = fuzz_dir.join("corpus").join(target);
        std::fs::create_dir_all(&corpus)?;
        for e in std::fs::read_dir(&from)?.flatten() {
            let _ = std::fs::copy(e.path(), corpus.join(e.file_name()));
        }
    }
    for target in chosen {
        util::step(&format!("fuzzing {target} for {seconds}s"));
        util::run(
            Command::new("cargo")
                .current_dir(&fuzz_dir)
                .env("RUSTC_BOOTSTRAP", "1")
                .env("RUSTFLAGS", "-C overflow-checks=on")
                .args([
                    "fuzz",
                    "run",
                    "--sanitizer",
                    "none",
                    "-O",
                    "--debug-assertions",
                ])
                .args([target, "--"])
                .arg(format!("-max_total_time={seconds}"))
                .arg("-max_len=65536"),
        )?;
    }
    Ok(())
}
