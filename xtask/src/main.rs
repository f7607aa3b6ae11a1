//! `cargo xtask <task>`: the project's one entry point (rust-analyzer style:
//! plain Rust behind the `.cargo/config.toml` alias, no shell scripts).

mod bench;
mod bench_pull;
mod conformance;
mod containerd;
mod course;
mod demo;
mod docs;
mod doctor;
mod fixtures;
mod fuzz;
mod labs;
mod serve;
mod test;
mod util;
mod vm;
mod youki;

use clap::{CommandFactory, Parser, Subcommand};

/// The tasks; each one's flags are a struct in its own module.
#[derive(Parser, Debug)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "podlab's tasks: build, check, test, run the suite and the labs",
    after_help = "`cargo xtask help TASK` (or `cargo xtask TASK --help`) shows a task's flags."
)]
struct Xtask {
    #[command(subcommand)]
    task: Option<Task>,
}

// The descriptions keep their line breaks (verbatim): clap wraps help only
// with its wrap_help feature, which would reflow podlab's own CLI reference.
#[derive(Subcommand, Debug)]
enum Task {
    /// what this host offers and lacks; --install adds missing Debian packages
    Doctor(doctor::Args),
    /// build the probe and the fixture OCI images, import them into podlab's store
    Fixtures(fixtures::Args),
    /// build, run a two-container pod and show what its containers share
    Demo,
    /// fmt, clippy, unit tests, then the privileged integration tests (as root)
    Test,
    /// lab start N: draw your own values for lab N (docs/labs/) into
    /// /run/podlab-labs/lab-N.{json,env}; lab check N: grade lab N against them:
    /// per check what it looked at, why it failed, a score
    #[command(verbatim_doc_comment)]
    Lab(labs::LabArgs),
    /// course check --stage N --runtime cli:PATH: your runtime on the course's
    /// stages 1..N (docs/course/): the failing MUST sentences; course verify: the
    /// course's own test: the skeleton fails stage 1, each stage's solution the next
    #[command(verbatim_doc_comment)]
    Course(course::Args),
    /// run the cargo-fuzz targets for a bounded time each
    Fuzz(fuzz::Args),
    /// regenerate docs/cli.md from the CLI's help (--check: fail if stale)
    Docs(docs::Args),
    /// every lab's grader on an untouched lab, on scripted near misses (must fail) and
    /// on a scripted solution (must pass)
    #[command(verbatim_doc_comment)]
    Labs(labs::Args),
    /// the pod conformance suite (docs/conformance.md) against a runtime;
    /// cri starts a private containerd under target/cri unless --cri-socket is given;
    /// serve runs it through the real kubectl against `podlab serve` (as cli-kubectl),
    /// cli-podlab through the kubectl-compatible adapter against podlab's own CLI;
    /// a registry on loopback holding the fixtures is started for the image tests
    /// unless --registry HOST:PORT is given
    #[command(verbatim_doc_comment)]
    Conformance(Box<conformance::Args>),
    /// podlab against podman: start/delete latency, memory per pod, many pods,
    /// and the whole conformance suite on podlab (suite_seconds, suite_tests)
    #[command(verbatim_doc_comment)]
    Bench(bench::Args),
    /// the suite on every runtime this host has (podlab, podman with runc and crun,
    /// containerd with runc, crun and youki, cli:podlab, kubectl against serve),
    /// each against its expectations, and docs/runtimes.md checked against the runs
    #[command(verbatim_doc_comment)]
    Matrix,
    /// boot Debian's kernel under qemu on a pure cgroup v2 host and run podlab's
    /// cgroup tests, the CGR family, LIFE-009 and the demo pod there (or COMMAND)
    #[command(verbatim_doc_comment)]
    Vm(vm::Args),
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    // clap prints usage errors (unknown flags included) and exits 2.
    let cli = Xtask::parse_from(&argv);
    let result = run(cli, &argv);
    util::print_timings();
    if let Err(e) = result {
        eprintln!("xtask: error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Xtask, argv: &[String]) -> anyhow::Result<()> {
    let Some(task) = cli.task else {
        Xtask::command().print_help()?;
        return Ok(());
    };
    match task {
        Task::Doctor(a) => doctor::run(&a),
        Task::Fixtures(a) => fixtures::run(&a),
        Task::Demo => demo::run(),
        Task::Test => test::run(),
        Task::Bench(a) => bench::run(&a),
        // The suite's own flags go to its runner as given.
        Task::Conformance(a) => conformance::run(&a, argv.get(2..).unwrap_or_default()),
        Task::Lab(a) => labs::lab(&a),
        Task::Labs(a) => labs::run_all(&a.labs),
        Task::Course(a) => course::run(&a),
        Task::Docs(a) => docs::run(&a),
        Task::Fuzz(a) => fuzz::run(&a),
        Task::Vm(a) => vm::run(&a),
        Task::Matrix => conformance::run_matrix(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_is_well_formed() {
        Xtask::command().debug_assert();
    }

    #[test]
    fn unknown_flags_are_refused() {
        for argv in [
            &["xtask", "doctor", "--instal"][..],
            &["xtask", "docs", "--chek"],
            &["xtask", "conformance", "--focuss", "NET-*"],
            &["xtask", "matrix", "--quick"],
            &["xtask", "labs", "12"],
            &["xtask", "fuzz", "parser"],
        ] {
            let e = Xtask::try_parse_from(argv).expect_err(&argv.join(" "));
            assert_ne!(e.kind(), clap::error::ErrorKind::DisplayHelp, "{argv:?}");
        }
    }

    #[test]
    fn the_help_lists_every_task() {
        let help = Xtask::command().render_help().to_string();
        for task in [
            "doctor",
            "fixtures",
            "demo",
            "test",
            "lab",
            "course",
            "fuzz",
            "docs",
            "labs",
            "conformance",
            "bench",
            "matrix",
            "vm",
            "help",
        ] {
            assert!(
                help.lines()
                    .any(|l| l.trim_start().starts_with(&format!("{task} "))),
                "{task} missing from:\n{help}"
            );
        }
    }
}
