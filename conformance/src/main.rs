//! `conformance`: runs the pod conformance suite against a runtime.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};

use podlab_conformance::adapters::podlab::{Podlab, PodlabConfig};
use podlab_conformance::filter::{self, Pattern};
use podlab_conformance::mutants::{self, VariantRun, VARIANTS};
use podlab_conformance::report::{self, TestResult, Totals};
use podlab_conformance::runner::{self, Options};
use podlab_conformance::runtime::Runtime;
use podlab_conformance::suite::{Status, TestCase};
use podlab_conformance::{docs, tests};

const HELP: &str = "\
usage: conformance --runtime podlab [options]
       conformance --list [--focus P] [--skip P]
       conformance --gen-docs PATH

Runs the pod conformance suite against a runtime and writes results.json,
junit.xml and report.md.

options:
  --runtime NAME       the adapter: podlab
  --podlab-bin PATH    the podlab binary (default: $PODLAB_BIN, else `podlab` on PATH)
  --image-root DIR     podlab's image store holding the probe image (default: $PODLAB_IMAGE_ROOT)
  --probe-image REF    the probe image (default: podlab.local/probe:latest)
  --focus PATTERN      run only tests whose ID or MUST sentence matches
  --skip PATTERN       do not run tests that match
  --list               print the selected tests and exit
  --report DIR         where reports go (default: $CARGO_TARGET_DIR or target, then /conformance/<runtime>)
  --workers N          tests run at once, 1 to 4 (default 3)
  --mutants            run the suite against each broken variant of a podlab built with
                       the `mutants` feature and print the mutation matrix
  --gen-docs PATH      write the generated test documentation to PATH and exit

PATTERN is not a regular expression: substrings separated by `|`, matched
without case against the ID and the MUST sentence (e.g. 'NET-00|UTS-001').

exit status: 0 when every test that ran passed; 1 when a test failed, the run
left something behind, or (--mutants) a variant was not caught; 2 on usage
errors; 3 when no test ran (nothing selected, or everything skipped).
";

#[derive(Debug, Default)]
struct Args {
    runtime: Option<String>,
    podlab_bin: Option<PathBuf>,
    image_root: Option<PathBuf>,
    probe_image: Option<String>,
    focus: Option<Pattern>,
    skip: Option<Pattern>,
    list: bool,
    report: Option<PathBuf>,
    workers: Option<usize>,
    mutants: bool,
    gen_docs: Option<PathBuf>,
    help: bool,
}

fn parse_args(argv: &[String]) -> Result<Args> {
    let mut args = Args::default();
    let mut it = argv.iter();
    while let Some(arg) = it.next() {
        // Accept both `--flag value` and `--flag=value`.
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (arg.as_str(), None),
        };
        let mut value = || -> Result<String> {
            match &inline {
                Some(v) => Ok(v.clone()),
                None => it
                    .next()
                    .cloned()
                    .with_context(|| format!("{flag} needs a value")),
            }
        };
        match flag {
            "--runtime" => args.runtime = Some(value()?),
            "--podlab-bin" => args.podlab_bin = Some(value()?.into()),
            "--image-root" => args.image_root = Some(value()?.into()),
            "--probe-image" => args.probe_image = Some(value()?),
            "--focus" => args.focus = Some(Pattern::parse(&value()?).map_err(anyhow::Error::msg)?),
            "--skip" => args.skip = Some(Pattern::parse(&value()?).map_err(anyhow::Error::msg)?),
            "--report" => args.report = Some(value()?.into()),
            "--workers" => {
                let n: usize = value()?.parse().context("--workers needs a number")?;
                if !(1..=runner::MAX_WORKERS).contains(&n) {
                    bail!("--workers must be 1 to {}", runner::MAX_WORKERS);
                }
                args.workers = Some(n);
            }
            "--gen-docs" => args.gen_docs = Some(value()?.into()),
            "--list" | "--mutants" | "--help" | "-h" if inline.is_some() => {
                bail!("{flag} takes no value")
            }
            "--list" => args.list = true,
            "--mutants" => args.mutants = true,
            "--help" | "-h" => args.help = true,
            other => bail!("unknown argument {other:?}"),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse_args(&argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("conformance: {e:#}\n\n{HELP}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("conformance: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: Args) -> Result<ExitCode> {
    if args.help {
        print!("{HELP}");
        return Ok(ExitCode::SUCCESS);
    }
    let all = tests::all();
    if let Some(path) = &args.gen_docs {
        std::fs::write(path, docs::generate(&all))
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("wrote {} ({} tests)", path.display(), all.len());
        return Ok(ExitCode::SUCCESS);
    }
    let selected = filter::select(&all, args.focus.as_ref(), args.skip.as_ref());
    if args.list {
        for c in &selected {
            println!("{:<9}{}", c.id, c.must);
        }
        println!("{} of {} tests selected", selected.len(), all.len());
        return Ok(if selected.is_empty() {
            ExitCode::from(3)
        } else {
            ExitCode::SUCCESS
        });
    }
    let runtime = args
        .runtime
        .clone()
        .context("--runtime is required (the only adapter so far: podlab)")?;
    if runtime != "podlab" {
        bail!("unknown runtime {runtime:?}: the only adapter so far is podlab");
    }
    if selected.is_empty() {
        eprintln!("conformance: no test matches the --focus/--skip patterns: nothing ran");
        return Ok(ExitCode::from(3));
    }
    let report_dir = args.report.clone().unwrap_or_else(|| {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("target"));
        target.join("conformance").join(&runtime)
    });
    let options = Options {
        workers: args.workers.unwrap_or(Options::default().workers),
        ..Options::default()
    };
    if args.mutants {
        return run_mutants(&args, &selected, &options, &report_dir);
    }

    let podlab = Podlab::new(podlab_config(&args, None))?;
    println!(
        "conformance: {} tests against {runtime} ({})",
        selected.len(),
        podlab_config(&args, None).bin.display()
    );
    let results = runner::run(&podlab, &selected, &options, &|r| {
        println!("{}", runner::format_line(r))
    });
    let leftovers = podlab.leftovers();
    report::write_reports(&report_dir, &runtime, &results)
        .with_context(|| format!("cannot write reports to {}", report_dir.display()))?;
    Ok(summarize(&results, &leftovers, &report_dir))
}

fn podlab_config(args: &Args, mutant: Option<&str>) -> PodlabConfig {
    let bin = args
        .podlab_bin
        .clone()
        .or_else(|| std::env::var_os("PODLAB_BIN").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("podlab"));
    let mut config = PodlabConfig::new(bin);
    config.image_root = args
        .image_root
        .clone()
        .or_else(|| std::env::var_os("PODLAB_IMAGE_ROOT").map(PathBuf::from));
    if let Some(image) = &args.probe_image {
        config.probe_image = image.clone();
    }
    if let Some(m) = mutant {
        config.env.push(("PODLAB_MUTANT".into(), m.into()));
    }
    config
}

/// Prints the totals and picks the exit status.
fn summarize(
    results: &[TestResult],
    leftovers: &[String],
    report_dir: &std::path::Path,
) -> ExitCode {
    let totals = Totals::of(results);
    println!("\n{totals}; reports in {}", report_dir.display());
    for l in leftovers {
        println!("left behind: {l}");
    }
    if totals.failed > 0 || !leftovers.is_empty() {
        for r in results.iter().filter(|r| r.status == Status::Failed) {
            println!("FAILED {}: {}", r.id, r.reason);
        }
        ExitCode::from(1)
    } else if totals.passed == 0 {
        println!("no test ran: every selected test was skipped");
        ExitCode::from(3)
    } else {
        ExitCode::SUCCESS
    }
}

/// One quiet run of the suite; the failed IDs, and whatever it left behind.
fn failed_ids(
    args: &Args,
    cases: &[TestCase],
    options: &Options,
    mutant: Option<&str>,
    dir: &std::path::Path,
) -> Result<(Vec<String>, Vec<String>)> {
    let podlab = Podlab::new(podlab_config(args, mutant))?;
    let results = runner::run(&podlab, cases, options, &|_| {});
    let leftovers = podlab.leftovers();
    report::write_reports(dir, mutant.unwrap_or("baseline"), &results)
        .with_context(|| format!("cannot write reports to {}", dir.display()))?;
    let failed = results
        .iter()
        .filter(|r| r.status == Status::Failed)
        .map(|r| r.id.clone())
        .collect();
    Ok((failed, leftovers))
}

fn run_mutants(
    args: &Args,
    cases: &[TestCase],
    options: &Options,
    report_dir: &std::path::Path,
) -> Result<ExitCode> {
    let dir = report_dir.join("mutants");
    println!("baseline (no mutant): {} tests", cases.len());
    let (baseline, mut leftovers) = failed_ids(args, cases, options, None, &dir.join("baseline"))?;
    println!(
        "  failed: {}",
        if baseline.is_empty() {
            "none".into()
        } else {
            baseline.join(" ")
        }
    );
    let mut runs = Vec::new();
    for v in VARIANTS {
        println!("{}: {}", v.name, v.breaks);
        let (failed, left) = failed_ids(args, cases, options, Some(v.name), &dir.join(v.name))?;
        println!(
            "  failed: {}",
            if failed.is_empty() {
                "none".into()
            } else {
                failed.join(" ")
            }
        );
        leftovers.extend(left);
        runs.push(VariantRun {
            variant: *v,
            failed,
        });
    }
    let text = mutants::matrix(&baseline, &runs);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("matrix.txt"), &text)?;
    println!();
    if runs.iter().all(|r| !r.caught()) {
        println!(
            "no variant was caught: was {} built with `--features mutants`?",
            podlab_config(args, None).bin.display()
        );
    }
    for l in &leftovers {
        println!("left behind: {l}");
    }
    // The score is the last line of the output.
    print!("{text}");
    Ok(
        if mutants::all_caught(&baseline, &runs) && leftovers.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        },
    )
}

#[cfg(test)]
mod tests_args {
    use super::*;

    fn parse(argv: &[&str]) -> Result<Args> {
        parse_args(&argv.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn flags() {
        let a = parse(&[
            "--runtime",
            "podlab",
            "--focus=NET|UTS",
            "--list",
            "--workers",
            "2",
        ])
        .unwrap();
        assert_eq!(a.runtime.as_deref(), Some("podlab"));
        assert!(a.list && !a.mutants);
        assert_eq!(a.workers, Some(2));
        assert!(a.focus.unwrap().matches("UTS-001", ""));
        assert!(parse(&["--workers", "9"]).is_err());
        assert!(parse(&["--focus"]).is_err());
        assert!(parse(&["--focus", "NET.*"]).is_err());
        assert!(parse(&["--bogus"]).is_err());
        assert!(parse(&["--list=yes"]).is_err());
    }
}
