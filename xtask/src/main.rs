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

use anyhow::bail;

const HELP: &str = "\
usage: cargo xtask <task> [options]

tasks:
  doctor [--install]      what this host offers and lacks; --install adds missing Debian packages
  fixtures [--image-root DIR]
                          build the probe and the fixture OCI images, import them into podlab's store
  demo                    build, run a two-container pod and show what its containers share
  test                    fmt, clippy, unit tests, then the privileged integration tests (as root)
  lab start N [--root DIR]
                          draw your own values for lab N (docs/labs/): /run/podlab-labs/lab-N.{json,env}
  lab check N [--format json] [--root DIR]
                          grade lab N against your values: per check what it looked at, why it failed, a score
  course check --stage N --runtime cli:PATH
                          your runtime on the course's stages 1..N (docs/course/): the failing MUST sentences
  course verify           the course's own test: the skeleton fails stage 1, each stage's solution fails the next
  fuzz [--seconds N] [manifest|quantity|layer]
                          run the cargo-fuzz targets for a bounded time each
  docs [--check]          regenerate docs/cli.md from the CLI's help (--check: fail if stale)
  labs [N...]             every lab's grader on an untouched lab, on scripted near misses (must fail) and
                          on a scripted solution (must pass)
  conformance [--runtime podlab|podman|cri|serve|cli-podlab|cli:PATH] [--focus P] [--skip P] [--list] [--report DIR] [--mutants]
                          the pod conformance suite (docs/conformance.md) against a runtime;
                          cri starts a private containerd under target/cri unless --cri-socket is given;
                          serve runs it through the real kubectl against `podlab serve` (as cli-kubectl),
                          cli-podlab through the kubectl-compatible adapter against podlab's own CLI;
                          a registry on loopback holding the fixtures is started for the image tests
                          unless --registry HOST:PORT is given
  bench [--quick] [--pull-only] [--report DIR]
                          podlab against podman: start/delete latency, memory per pod, many pods,
                          and the whole conformance suite on podlab (suite_seconds, suite_tests)
  matrix                  the suite on every runtime this host has (podlab, podman with runc and crun,
                          containerd with runc, crun and youki, cli:podlab, kubectl against serve),
                          each against its expectations, and docs/runtimes.md checked against the runs
  vm [-- COMMAND...]      boot Debian's kernel under qemu on a pure cgroup v2 host and run podlab's
                          cgroup tests, the CGR family, LIFE-009 and the demo pod there (or COMMAND)
";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = run(&args);
    util::print_timings();
    if let Err(e) = result {
        eprintln!("xtask: error: {e:#}");
        std::process::exit(1);
    }
}

fn run(args: &[String]) -> anyhow::Result<()> {
    let (task, rest) = match args.split_first() {
        Some((t, r)) => (t.as_str(), r),
        None => {
            print!("{HELP}");
            return Ok(());
        }
    };
    match task {
        "doctor" => doctor::run(rest),
        "fixtures" => fixtures::run(rest),
        "demo" => demo::run(rest),
        "test" => test::run(rest),
        "bench" => bench::run(rest),
        "conformance" => conformance::run(rest),
        "lab" => labs::lab(args),
        "labs" => labs::run_all(rest),
        "course" => course::run(rest),
        "docs" => docs::run(rest),
        "fuzz" => fuzz::run(rest),
        "vm" => vm::run(rest),
        "matrix" => match rest.first() {
            None => conformance::run_matrix(false),
            Some(a) => bail!("matrix: unknown argument {a:?} (usage: cargo xtask matrix)"),
        },
        "help" | "-h" | "--help" => {
            print!("{HELP}");
            Ok(())
        }
        other => bail!("unknown task {other:?}\n{HELP}"),
    }
}
