//! The coursework labs of `docs/labs/`. `cargo xtask lab start N` draws a
//! student's own values (student.rs), `lab check N` grades what the student
//! did against them (grade.rs), and `cargo xtask labs` proves every grader
//! fails on an untouched lab, fails on scripted near misses with the
//! matching message, and passes on a scripted solution (scripts.rs).

mod grade;
mod scripts;
pub mod student;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};

use crate::{conformance, fixtures, util};
use student::Student;

/// The labs there are: docs/labs/NN-*.md.
pub const LABS: std::ops::RangeInclusive<u32> = 1..=11;

/// A lab's number, 1 to 11.
fn lab_number(s: &str) -> Result<u32, String> {
    s.parse().ok().filter(|n| LABS.contains(n)).ok_or_else(|| {
        format!(
            "there is no lab {s} (labs {} to {})",
            LABS.start(),
            LABS.end()
        )
    })
}

/// `cargo xtask lab start N [--root DIR] | lab check N [--format json] [--root DIR] [--data-root DIR]`
#[derive(clap::Args, Debug)]
pub struct LabArgs {
    #[command(subcommand)]
    verb: LabVerb,
}

#[derive(clap::Subcommand, Debug)]
enum LabVerb {
    /// Draw your own values for lab N (docs/labs/): /run/podlab-labs/lab-N.{json,env}
    Start {
        /// The lab, 1 to 11
        #[arg(value_name = "N", value_parser = lab_number)]
        n: u32,
        /// podlab's state directory for this lab
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
    },
    /// Grade lab N against your values: per check what it looked at, why it failed, a score
    Check {
        /// The lab, 1 to 11
        #[arg(value_name = "N", value_parser = lab_number)]
        n: u32,
        /// How the grade is printed
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
        /// podlab's state directory (default: the one `lab start` chose)
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
        /// podlab's data directory (default: the one `lab start` chose)
        #[arg(long, value_name = "DIR")]
        data_root: Option<PathBuf>,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Text,
    Json,
}

/// `cargo xtask labs [N...]`
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The labs to run (default: all)
    #[arg(value_name = "N", value_parser = lab_number)]
    pub labs: Vec<u32>,
}

/// `cargo xtask lab start N | check N`
pub fn lab(args: &LabArgs) -> anyhow::Result<()> {
    match &args.verb {
        LabVerb::Start { n, root } => {
            let n = *n;
            let s = start(n, root.clone())?;
            println!(
                "lab {n} started: your values are in {} (source it: `source {}`)",
                Student::json_path(n).display(),
                Student::env_path(n).display()
            );
            println!("your manifests and answers go to {}", s.files.display());
            Ok(())
        }
        LabVerb::Check {
            n,
            format,
            root,
            data_root,
        } => {
            let n = *n;
            let mut s = Student::load(n)?;
            if let Some(root) = root {
                s.root = root.clone();
            }
            if let Some(data) = data_root {
                s.data_root = data.clone();
            }
            let g = grade::grade(&s);
            if *format == Format::Json {
                println!("{}", serde_json::to_string_pretty(&g.json(n))?);
            } else {
                g.print(n);
            }
            if !g.passed() {
                bail!("lab {n} is not done yet");
            }
            Ok(())
        }
    }
}

/// Draws and writes lab `n`'s student file; lab 11 also gets its builds.
fn start(n: u32, root: Option<PathBuf>) -> anyhow::Result<Student> {
    let s = Student::draw(n, root);
    s.write()?;
    if n == 11 {
        write_lab11_builds(&s)?;
    }
    Ok(s)
}

/// Lab 11's two podlab commands: the build with one broken property (the
/// mutant the student file names) and the same build unbroken, each with a
/// state root of its own.
fn write_lab11_builds(s: &Student) -> anyhow::Result<()> {
    let bin = conformance::build_mutant_podlab()?;
    let (name, _, _) = s.fault().context("lab 11 has no fault")?;
    // rot13: the fault is not printed in plain sight (it is no secret).
    let hidden: String = name
        .chars()
        .map(|c| match c {
            'a'..='z' => (((c as u8 - b'a' + 13) % 26) + b'a') as char,
            c => c,
        })
        .collect();
    for (file, mutant) in [
        (
            "podlab-broken",
            format!("PODLAB_MUTANT=$(echo {hidden} | tr a-z n-za-m)"),
        ),
        ("podlab-fixed", "PODLAB_MUTANT=".to_string()),
    ] {
        let root = s.files.join(format!("{file}-state"));
        let script = format!(
            "#!/bin/sh\n# {file}: podlab for lab 11, with a state root of its own.\n\
             export {mutant} PODLAB_ROOT={root}/root PODLAB_DATA_ROOT={root}/data\n\
             exec {bin} \"$@\"\n",
            root = root.display(),
            bin = bin.display(),
        );
        let path = s.files.join(file);
        std::fs::write(&path, script)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    }
    std::fs::write(
        Student::env_path(11),
        std::fs::read_to_string(Student::env_path(11))?
            + &format!("export LAB_CAPS={}\n", conformance::podlab_caps()),
    )?;
    Ok(())
}

/// `cargo xtask labs [N...]`: for every lab (or those named), the grader
/// on an untouched lab, each scripted near miss and the scripted solution,
/// in a labs dir and podlab root of their own.
pub fn run_all(only: &[u32]) -> anyhow::Result<()> {
    if !util::is_root() {
        bail!("the labs create pods and need root");
    }
    let podlab = fixtures::build_podlab(false)?;
    let images = fixtures::test_image_root();
    if !images.join("oci/index.json").exists() {
        fixtures::build_and_import(Some(&images.to_string_lossy()))?;
    }
    let bin_dir = podlab.parent().context("podlab dir")?.to_path_buf();
    let probe_dir = fixtures::probe_path()
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let path = format!(
        "{}:{}:{}",
        bin_dir.display(),
        probe_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    std::env::set_var("PATH", &path);
    std::env::set_var("PODLAB_LABS_DIR", util::target().join("labs"));
    std::env::set_var("PODLAB_IMAGE_ROOT", &images);
    // Lab 6's back-off from 2 s instead of the kubelet's 10 s.
    std::env::set_var("PODLAB_BACKOFF_BASE_MS", "2000");
    // Lab 11's scripts run the suite's runner as `cargo xtask conformance` builds it.
    std::env::set_var("SUITE_FEATURES", conformance::cri_features().join(" "));
    std::env::remove_var("PODLAB_ROOT");
    std::env::remove_var("PODLAB_DATA_ROOT");
    let mut failed = Vec::new();
    for n in LABS.filter(|n| only.is_empty() || only.contains(n)) {
        let t = Instant::now();
        util::step(&format!("lab {n}"));
        if let Err(e) = run_lab(n) {
            failed.push(format!("lab {n}: {e:#}"));
        }
        cleanup(n);
        println!("lab {n}: {:.1} s", t.elapsed().as_secs_f64());
    }
    if !failed.is_empty() {
        bail!("labs failed:\n{}", failed.join("\n"));
    }
    println!("every lab: untouched fails, near misses fail as they should, the solution passes");
    Ok(())
}

fn run_lab(n: u32) -> anyhow::Result<()> {
    cleanup(n);
    let s = start(n, None)?;
    let g = grade::grade(&s);
    if g.passed() {
        bail!("the grader passes an untouched lab");
    }
    println!("  untouched: fails ({}/{})", g.score().0, g.score().1);
    for miss in scripts::near_misses(n) {
        cleanup(n);
        let s = start(n, None)?;
        run_script(&s, miss.body).with_context(|| format!("near miss {:?}", miss.name))?;
        let g = grade::grade(&s);
        let why = g.failures();
        if g.passed() {
            bail!("near miss {:?}: the grader passes it", miss.name);
        }
        if !why.contains(miss.expect) {
            g.print(n);
            bail!(
                "near miss {:?}: the grader fails it, but not with {:?}",
                miss.name,
                miss.expect
            );
        }
        println!("  near miss {:?}: fails with {:?}", miss.name, miss.expect);
    }
    cleanup(n);
    let s = start(n, None)?;
    run_script(&s, scripts::solution(n)).context("the solution script")?;
    let g = grade::grade(&s);
    if !g.passed() {
        g.print(n);
        bail!("the grader fails the scripted solution");
    }
    println!("  solution: passes ({}/{})", g.score().0, g.score().1);
    if let Some(body) = scripts::api_solution(n) {
        cleanup(n);
        let s = start(n, None)?;
        run_script(&s, body).context("the solution through kubectl")?;
        let g = grade::grade(&s);
        if !g.passed() {
            g.print(n);
            bail!("the grader fails the scripted solution through kubectl");
        }
        println!(
            "  solution through kubectl: passes ({}/{})",
            g.score().0,
            g.score().1
        );
    }
    Ok(())
}

/// A script run as the student would: bash, with the lab's env file sourced.
fn run_script(s: &Student, body: &str) -> anyhow::Result<()> {
    let full = format!(
        "set -euo pipefail\nsource {}\n{}{body}",
        Student::env_path(s.lab).display(),
        scripts::LIB
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(&full)
        .current_dir(util::root())
        .output()?;
    if !out.status.success() {
        bail!(
            "the script failed ({}):\n{}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Deletes every pod of the labs' roots and collects what is left.
fn cleanup(n: u32) {
    let dir = student::labs_dir();
    let mut roots = vec![(dir.join("root"), student::data_dir())];
    if n == 11 {
        for b in ["podlab-broken", "podlab-fixed"] {
            let st = dir.join("lab11").join(format!("{b}-state"));
            roots.push((st.join("root"), st.join("data")));
        }
    }
    for (root, data) in roots {
        let run = |args: &[&str]| {
            let (sub, rest) = args.split_first().expect("a subcommand");
            Command::new("podlab")
                .arg(sub)
                .arg("--root")
                .arg(&root)
                .arg("--data-root")
                .arg(&data)
                .args(rest)
                .output()
                .ok()
        };
        if let Some(o) = run(&["get", "pods", "-o", "name"]) {
            for name in String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter_map(|l| l.strip_prefix("pod/"))
            {
                let _ = run(&["delete", "pod", name, "--grace-period", "0"]);
            }
        }
        let _ = run(&["gc"]);
    }
}

#[cfg(test)]
fn lab_files() -> anyhow::Result<Vec<(u32, PathBuf)>> {
    let dir = util::root().join("docs/labs");
    let mut labs = Vec::new();
    for e in std::fs::read_dir(&dir).with_context(|| dir.display().to_string())? {
        let path = e?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if let Some(n) = name.split('-').next().and_then(|n| n.parse::<u32>().ok()) {
            labs.push((n, path));
        }
    }
    labs.sort();
    Ok(labs)
}

/// The commands of a lab text: the `$ ` lines of its ```console blocks.
#[cfg(test)]
pub fn commands(markdown: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_console = false;
    for line in markdown.lines() {
        let t = line.trim_start();
        if t.starts_with("```") {
            in_console = !in_console && t.trim_start_matches('`').trim() == "console";
            continue;
        }
        if in_console {
            if let Some(cmd) = t.strip_prefix("$ ") {
                out.push(cmd.to_string());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_lab_starts_hides_its_commands_and_has_scripts() {
        let files = lab_files().unwrap();
        assert_eq!(
            files.iter().map(|f| f.0).collect::<Vec<_>>(),
            LABS.collect::<Vec<_>>()
        );
        for (n, file) in files {
            let text = std::fs::read_to_string(&file).unwrap();
            let goal = text.find("## Goal").expect("a goal");
            assert!(
                text.find("```").is_none_or(|c| c > goal),
                "lab {n}: the goal comes before any command"
            );
            assert!(
                text.contains(&format!("cargo xtask lab start {n}")),
                "lab {n}"
            );
            assert!(
                text.contains(&format!("cargo xtask lab check {n}")),
                "lab {n}"
            );
            assert!(
                text.contains("<details><summary>Hint"),
                "lab {n} has no hint"
            );
            // Every command block sits inside a hint.
            let (mut open, mut in_hint) = (false, false);
            for line in text.lines() {
                if line.starts_with("<details>") {
                    in_hint = true;
                } else if line.starts_with("</details>") {
                    in_hint = false;
                } else if line.trim_start().starts_with("```console") {
                    assert!(in_hint, "lab {n}: a command block outside a hint");
                    open = true;
                } else if open && line.trim_start().starts_with("```") {
                    open = false;
                }
            }
            assert!(!scripts::solution(n).is_empty());
            assert!(
                scripts::near_misses(n).len() >= 2,
                "lab {n}: two near misses"
            );
        }
    }
}
