//! `cargo xtask fuzz [--seconds N] [TARGET...]`: runs the cargo-fuzz targets
//! of `fuzz/` (manifest parsing, quantity parsing, layer unpacking) for a
//! bounded time each. libFuzzer runs without a sanitizer, so the stable
//! toolchain suffices (RUSTC_BOOTSTRAP only lets cargo-fuzz pass its flags).

use std::process::Command;

use crate::util;

const TARGETS: &[&str] = &["manifest", "quantity", "layer"];

pub fn run(args: &[String]) -> anyhow::Result<()> {
    let seconds = util::value(args, "--seconds").unwrap_or_else(|| "30".into());
    let chosen: Vec<&str> = TARGETS
        .iter()
        .copied()
        .filter(|t| {
            !args.iter().any(|a| TARGETS.contains(&a.as_str())) || args.iter().any(|a| a == t)
        })
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
    // The refused-manifest corpus seeds the manifest fuzzer.
    let seeds = fuzz_dir.join("corpus/manifest");
    std::fs::create_dir_all(&seeds)?;
    for e in std::fs::read_dir(util::root().join("fixtures/bad"))?.flatten() {
        let _ = std::fs::copy(e.path(), seeds.join(e.file_name()));
    }
    for target in chosen {
        util::step(&format!("fuzzing {target} for {seconds}s"));
        util::run(
            Command::new("cargo")
                .current_dir(&fuzz_dir)
                .env("RUSTC_BOOTSTRAP", "1")
                .args(["fuzz", "run", "--sanitizer", "none", "-O", target, "--"])
                .arg(format!("-max_total_time={seconds}"))
                .arg("-max_len=65536"),
        )?;
    }
    Ok(())
}
