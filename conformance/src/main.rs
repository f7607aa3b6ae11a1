//! `conformance`: runs the pod conformance suite against a runtime.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};

use podlab_conformance::adapters::cli::{self, Cli, CliConfig};
use podlab_conformance::adapters::podlab::{Podlab, PodlabConfig};
use podlab_conformance::adapters::podman::{Podman, PodmanConfig};
use podlab_conformance::expectations::{self, Expectations, Preflight};
use podlab_conformance::filter::{self, Pattern};
use podlab_conformance::mutants::{self, VariantRun, VARIANTS};
use podlab_conformance::report::{self, TestResult, Totals};
use podlab_conformance::runner::{self, Options};
use podlab_conformance::runtime::Runtime;
use podlab_conformance::suite::{Status, TestCase};
use podlab_conformance::{docs, summary, tests};

const USAGE: &str = "\
conformance --runtime RUNTIME [options]
       conformance --list [--focus P] [--skip P]
       conformance --summary [--report DIR]
       conformance --gen-docs PATH
       conformance --gen-runtimes PATH | --check-runtimes PATH [--report DIR]";

const ABOUT: &str = "\
Runs the pod conformance suite against a runtime and writes results.json,
junit.xml and report.md, then compares the results with the runtime's
expectations (its known deviations from Kubernetes).";

const AFTER_HELP: &str = "\
RUNTIME:
  podlab               the podlab binary, with a private state directory
  podman               podman kube play, with private storage and containers.conf (root)
  cri                  a CRI v1 runtime (containerd) on --cri-socket; the adapter does the
                       kubelet's part (needs the `cri` feature; `cargo xtask conformance
                       --runtime cri` starts a private containerd and passes its socket)
  cli:PATH             any kubectl-compatible binary (docs/adapter-contract.md), e.g.
                       cli:kubectl --context X; global arguments for every call come
                       from $CONFORMANCE_CLI_ARGS (split on whitespace)

PATTERN is not a regular expression: substrings separated by `|`, matched
without case against the ID and the MUST sentence (e.g. 'NET-00|UTS-001').

exit status: 0 when the results match the expectations (every failure and
every skip is one they record, nothing recorded as failing passed, nothing
recorded as skipping ran) and nothing was left behind; 1 otherwise, or
(--mutants) when a variant was not caught; 2 on usage errors; 3 when no test
ran (nothing selected, or everything skipped).";

/// Which adapter `--runtime` names.
#[derive(Clone, Debug, PartialEq, Eq)]
enum RuntimeKind {
    Podlab,
    Podman,
    /// A CRI v1 runtime on a socket.
    Cri,
    /// A kubectl-compatible binary.
    Cli(PathBuf),
}

impl std::str::FromStr for RuntimeKind {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<RuntimeKind> {
        match s {
            "podlab" => Ok(RuntimeKind::Podlab),
            "podman" => Ok(RuntimeKind::Podman),
            "cri" => Ok(RuntimeKind::Cri),
            other => match other.strip_prefix("cli:") {
                Some("") => {
                    bail!("cli: needs the binary, e.g. cli:kubectl or cli:/path/to/runtime")
                }
                Some(path) => Ok(RuntimeKind::Cli(path.into())),
                None => bail!("unknown runtime {other:?}: podlab, podman, cri or cli:PATH"),
            },
        }
    }
}

// Clap reads the flags (and refuses unknown ones); parse_args checks the
// combinations. Help texts keep their line breaks: clap wraps nothing
// without its wrap_help feature.
#[derive(clap::Parser, Debug, Default)]
#[command(
    name = "conformance",
    override_usage = USAGE,
    about = ABOUT,
    after_help = AFTER_HELP,
    max_term_width = 100
)]
struct Args {
    /// podlab, podman, cri or cli:PATH (see RUNTIME below)
    #[arg(long, value_name = "RUNTIME")]
    runtime: Option<RuntimeKind>,
    /// cli: passed to the binary as --context NAME
    #[arg(long, value_name = "NAME")]
    context: Option<String>,
    /// cli, cri: what the runtime supports, comma-separated (cli default: none;
    /// cri default: what the adapter declares for containerd):
    /// pod-ip, privileged, cgroup-visible, pending-observable,
    /// share-process-namespace, same-kernel, pod-pids, container-pids=N,
    /// init-containers, restart-policy, unschedulable, oom-reason,
    /// storage-eviction, host-ports, host-paths, all
    #[arg(long, value_name = "LIST", value_parser = caps, verbatim_doc_comment)]
    caps: Option<String>,
    /// the podman binary (default: podman)
    #[arg(long, value_name = "PATH")]
    podman_bin: Option<PathBuf>,
    /// cri: the runtime's CRI endpoint, unix:///PATH or PATH (default: $CRI_SOCKET)
    #[arg(long, value_name = "ADDR")]
    cri_socket: Option<String>,
    /// the OCI runtime podman runs containers with (default: runc); the run
    /// is named podman-<R>
    #[arg(long, value_name = "R", verbatim_doc_comment)]
    podman_runtime: Option<String>,
    /// cri: the runtime handler pods run with (Kubernetes' RuntimeClass;
    /// default: the runtime's own); the run is named cri-<runtime>-<handler>
    #[arg(long, value_name = "H", verbatim_doc_comment)]
    runtime_handler: Option<String>,
    /// OCI image layouts podman loads (default: $CARGO_TARGET_DIR or target, then /fixtures)
    #[arg(long, value_name = "DIR")]
    fixtures: Option<PathBuf>,
    /// the runtime's expected failures and skips (default:
    /// conformance/expectations/<runtime>.json when it exists)
    #[arg(long, value_name = "FILE", verbatim_doc_comment)]
    expectations: Option<PathBuf>,
    /// write summary.md (test ID x runtime) from every <runtime>/results.json
    /// in the reports directory (after the run, with --runtime)
    #[arg(long, verbatim_doc_comment)]
    summary: bool,
    /// the podlab binary (default: $PODLAB_BIN, else `podlab` on PATH)
    #[arg(long, value_name = "PATH")]
    podlab_bin: Option<PathBuf>,
    /// podlab's image store holding the probe image (default: $PODLAB_IMAGE_ROOT)
    #[arg(long, value_name = "DIR")]
    image_root: Option<PathBuf>,
    /// the probe image (default: podlab.local/probe:latest)
    #[arg(long, value_name = "REF")]
    probe_image: Option<String>,
    /// a registry on this machine, spoken to over plain HTTP, holding the
    /// suite's busybox and probe images as podlab/conformance:busybox and
    /// :probe (`cargo xtask conformance` starts one): the runtime pulls from it
    /// (podman: listed as insecure in the run's registries.conf; cri: the
    /// runtime's own configuration must allow it), and the tests that pull
    /// run; without it they skip (capability `registry`)
    #[arg(long, value_name = "HOST:PORT", value_parser = registry, verbatim_doc_comment)]
    registry: Option<String>,
    /// run only tests whose ID or MUST sentence matches
    #[arg(long, value_name = "PATTERN", value_parser = Pattern::parse)]
    focus: Option<Pattern>,
    /// do not run tests that match
    #[arg(long, value_name = "PATTERN", value_parser = Pattern::parse)]
    skip: Option<Pattern>,
    /// print the selected tests and exit
    #[arg(long)]
    list: bool,
    /// where reports go (default: $CARGO_TARGET_DIR or target, then /conformance/<runtime>)
    #[arg(long, value_name = "DIR")]
    report: Option<PathBuf>,
    /// tests run at once, 1 to 4 (default 3)
    #[arg(long, value_name = "N", value_parser = workers)]
    workers: Option<usize>,
    /// run the suite against each broken variant of a podlab built with
    /// the `mutants` feature and print the mutation matrix
    #[arg(long, verbatim_doc_comment)]
    mutants: bool,
    /// with --mutants: only the variants whose name or description matches
    #[arg(long, value_name = "PATTERN", value_parser = Pattern::parse)]
    variants: Option<Pattern>,
    /// write the generated test documentation to PATH, and the capability
    /// table of adapter-contract.md beside it, and exit
    #[arg(long, value_name = "PATH", verbatim_doc_comment)]
    gen_docs: Option<PathBuf>,
    /// write the runtime matrix (docs/runtimes.md) as the expectations files
    /// predict it for this kind of host, and exit
    #[arg(long, value_name = "PATH", verbatim_doc_comment)]
    gen_runtimes: Option<PathBuf>,
    /// fail unless PATH is the matrix the runs in the reports directory give
    #[arg(long, value_name = "PATH")]
    check_runtimes: Option<PathBuf>,
}

/// `--caps`: checked here, parsed again by the adapter that takes it.
fn caps(list: &str) -> Result<String, String> {
    cli::parse_capabilities(list).map(|_| list.to_string())
}

/// `--registry`: the same check as the capability's.
fn registry(address: &str) -> Result<String, String> {
    cli::parse_capabilities(&format!("registry={address}")).map(|_| address.to_string())
}

fn workers(s: &str) -> Result<usize, String> {
    s.parse()
        .ok()
        .filter(|n| (1..=runner::MAX_WORKERS).contains(n))
        .ok_or_else(|| format!("a number from 1 to {}", runner::MAX_WORKERS))
}

fn parse_args(argv: &[String]) -> Result<Args, clap::Error> {
    use clap::{CommandFactory, Parser};
    let args = Args::try_parse_from(
        std::iter::once("conformance").chain(argv.iter().map(String::as_str)),
    )?;
    check_args(&args)
        .map_err(|e| Args::command().error(clap::error::ErrorKind::ArgumentConflict, e))?;
    Ok(args)
}

/// The flags that belong to one kind of runtime, or to another flag.
fn check_args(args: &Args) -> Result<(), String> {
    let is_cli = matches!(args.runtime, Some(RuntimeKind::Cli(_)));
    let is_cri = args.runtime == Some(RuntimeKind::Cri);
    if !is_cli && args.context.is_some() {
        return Err("--context is for --runtime cli:PATH".into());
    }
    if !is_cli && !is_cri && args.caps.is_some() {
        return Err("--caps is for --runtime cli:PATH and cri".into());
    }
    if args.podman_runtime.is_some() && args.runtime != Some(RuntimeKind::Podman) {
        return Err("--podman-runtime is for --runtime podman".into());
    }
    if !is_cri && (args.cri_socket.is_some() || args.runtime_handler.is_some()) {
        return Err("--cri-socket and --runtime-handler are for --runtime cri".into());
    }
    if args.mutants
        && args
            .runtime
            .as_ref()
            .is_some_and(|r| *r != RuntimeKind::Podlab)
    {
        return Err("--mutants needs --runtime podlab: the broken variants are podlab's".into());
    }
    if args.variants.is_some() && !args.mutants {
        return Err("--variants is for --mutants".into());
    }
    Ok(())
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse_args(&argv) {
        Ok(a) => a,
        // Usage errors exit 2; --help and --version print and exit 0.
        Err(e) => e.exit(),
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
    let all = tests::all();
    if let Some(path) = &args.gen_docs {
        std::fs::write(path, docs::generate(&all))
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!("wrote {} ({} tests)", path.display(), all.len());
        // The adapter contract beside it carries the capability table.
        let contract = path.with_file_name("adapter-contract.md");
        let text = std::fs::read_to_string(&contract)
            .with_context(|| format!("cannot read {}", contract.display()))?;
        let fresh = docs::splice_table(&text, &docs::capability_table(&all))
            .with_context(|| format!("{} has no capability table markers", contract.display()))?;
        std::fs::write(&contract, fresh)
            .with_context(|| format!("cannot write {}", contract.display()))?;
        println!("wrote the capability table of {}", contract.display());
        return Ok(ExitCode::SUCCESS);
    }
    let ids: Vec<&str> = all.iter().map(|c| c.id).collect();
    let host = expectations::host_kind();
    if let Some(path) = &args.gen_runtimes {
        let runs = summary::expected_runs(all_expectations(&ids)?, &ids, host);
        std::fs::write(path, summary::runtimes_page(&runs, &ids, host))
            .with_context(|| format!("cannot write {}", path.display()))?;
        println!(
            "wrote {} ({} runtimes, for a {host} host)",
            path.display(),
            runs.len()
        );
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(path) = &args.check_runtimes {
        return check_runtimes(path, &reports_root(&args), &ids, host);
    }
    let selected = filter::select(&all, args.focus.as_ref(), args.skip.as_ref());
    if args.list {
        for c in &selected {
            println!("{:<13}{}", c.id, c.must);
        }
        println!("{} of {} tests selected", selected.len(), all.len());
        return Ok(if selected.is_empty() {
            ExitCode::from(3)
        } else {
            ExitCode::SUCCESS
        });
    }
    let Some(kind) = args.runtime.clone() else {
        if args.summary {
            return write_summary(&reports_root(&args)).map(|_| ExitCode::SUCCESS);
        }
        bail!("--runtime is required: podlab, podman, cri or cli:PATH");
    };
    if selected.is_empty() {
        eprintln!("conformance: no test matches the --focus/--skip patterns: nothing ran");
        return Ok(ExitCode::from(3));
    }
    let options = Options {
        workers: args.workers.unwrap_or(Options::default().workers),
        ..Options::default()
    };
    if args.mutants {
        let report_dir = args
            .report
            .clone()
            .unwrap_or_else(|| reports_root(&args).join("podlab"));
        return run_mutants(&args, &selected, &options, &report_dir);
    }

    let (rt, shown): (Box<dyn Runtime>, String) = match &kind {
        RuntimeKind::Podlab => {
            let config = podlab_config(&args, None);
            let shown = config.bin.display().to_string();
            (Box::new(Podlab::new(config)?), shown)
        }
        RuntimeKind::Podman => {
            let config = podman_config(&args)?;
            let shown = format!(
                "{}, images from {}",
                config.bin.display(),
                fixtures_dir(&args).display()
            );
            println!(
                "conformance: loading {} image layouts into a private podman store",
                config.layouts.len()
            );
            (Box::new(Podman::new(config)?), shown)
        }
        RuntimeKind::Cri => cri_runtime(&args)?,
        RuntimeKind::Cli(bin) => {
            let mut config = CliConfig::new(bin.clone());
            config.context = args.context.clone();
            if let Some(list) = &args.caps {
                config.capabilities = cli::parse_capabilities(list).map_err(anyhow::Error::msg)?;
            }
            if args.registry.is_some() {
                config.capabilities.registry = args.registry.clone();
            }
            if let Some(image) = &args.probe_image {
                config.probe_image = image.clone();
            }
            let shown = format!(
                "{}{}; {}={:?}",
                bin.display(),
                args.context
                    .as_ref()
                    .map(|c| format!(" --context {c}"))
                    .unwrap_or_default(),
                cli::ARGS_ENV,
                config.global_args.join(" ")
            );
            (Box::new(Cli::new(config)), shown)
        }
    };
    let runtime = rt.name().to_string();
    let expected = load_expectations(&args, &runtime)?;
    let report_dir = args
        .report
        .clone()
        .unwrap_or_else(|| reports_root(&args).join(&runtime));
    println!(
        "conformance: {} tests against {runtime} ({shown})",
        selected.len()
    );
    println!(
        "capabilities: {}",
        serde_json::to_string(&rt.capabilities())?
    );
    if let Some((path, e)) = &expected {
        println!(
            "expectations: {} ({} expected failures, {} expected skips, {} intermittent)",
            path.display(),
            e.expected_failures.len(),
            e.expected_skips.len(),
            e.intermittent.len()
        );
    }
    // A runtime that cannot start a pod here at all fails every test the
    // same way, each after a timeout: one pod first, compared with the
    // expectations' record for this kind of host.
    let host = expectations::host_kind();
    let recorded = expected
        .as_ref()
        .map(|(_, e)| e.clone())
        .unwrap_or_else(|| Expectations {
            runtime: runtime.clone(),
            ..Expectations::default()
        });
    match recorded.preflight(
        host,
        rt.preflight().map_err(|e| podlab_kube::error::chain(&e)),
    ) {
        Preflight::Runs => {}
        Preflight::NotRunnable(reason) => {
            println!("conformance: {runtime} cannot run pods on this {host} host, as its expectations record: {reason}");
            std::fs::create_dir_all(&report_dir)?;
            for stale in ["results.json", "report.md", "junit.xml"] {
                let _ = std::fs::remove_file(report_dir.join(stale));
            }
            std::fs::write(
                report_dir.join(summary::NOT_RUNNABLE_FILE),
                format!("{host}: {reason}\n"),
            )?;
            if args.summary {
                write_summary(report_dir.parent().unwrap_or(&report_dir))?;
            }
            return Ok(ExitCode::SUCCESS);
        }
        Preflight::Unexpected(why) | Preflight::Stale(why) => {
            eprintln!("conformance: {why}");
            return Ok(ExitCode::FAILURE);
        }
    }
    let _ = std::fs::remove_file(report_dir.join(summary::NOT_RUNNABLE_FILE));
    let results = runner::run(rt.as_ref(), &selected, &options, &|r| {
        println!("{}", runner::format_line(r))
    });
    let leftovers = rt.leftovers();
    // Dropping the adapter releases what it holds (podman's private store).
    drop(rt);
    report::write_reports(&report_dir, &runtime, &results)
        .with_context(|| format!("cannot write reports to {}", report_dir.display()))?;
    let expected = expected.map(|(_, e)| e).unwrap_or_else(|| Expectations {
        runtime: runtime.clone(),
        ..Expectations::default()
    });
    let code = summarize(&results, &leftovers, &report_dir, &expected);
    if args.summary {
        write_summary(report_dir.parent().unwrap_or(&report_dir))?;
    }
    Ok(code)
}

/// `$CARGO_TARGET_DIR` (or `target`) + `/conformance`, or the parent of `--report`.
fn reports_root(args: &Args) -> PathBuf {
    if let Some(dir) = &args.report {
        if args.runtime.is_some() {
            if let Some(parent) = dir.parent() {
                return parent.to_path_buf();
            }
        }
        return dir.clone();
    }
    target_dir().join("conformance")
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target"))
}

fn fixtures_dir(args: &Args) -> PathBuf {
    let dir = args
        .fixtures
        .clone()
        .unwrap_or_else(|| target_dir().join("fixtures"));
    // podman runs from a private working directory: hand it absolute paths.
    std::fs::canonicalize(&dir).unwrap_or(dir)
}

/// The checked-in expectations directory: `conformance/expectations` of
/// the working directory (a checkout), else of the source this binary was
/// built from.
fn expectations_file(runtime: &str) -> Option<PathBuf> {
    let file = format!("{runtime}.json");
    [
        PathBuf::from("conformance/expectations").join(&file),
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("expectations")
            .join(&file),
    ]
    .into_iter()
    .find(|p| p.is_file())
}

fn load_expectations(args: &Args, runtime: &str) -> Result<Option<(PathBuf, Expectations)>> {
    let Some(path) = args
        .expectations
        .clone()
        .or_else(|| expectations_file(runtime))
    else {
        return Ok(None);
    };
    let all = tests::all();
    let ids: Vec<&str> = all.iter().map(|c| c.id).collect();
    let e = Expectations::load(&path, &ids)?;
    if e.runtime != runtime {
        bail!(
            "{} holds the expectations of {:?}, not of {runtime:?}",
            path.display(),
            e.runtime
        );
    }
    Ok(Some((path, e)))
}

/// Every expectations file of the checkout, in name order.
fn all_expectations(ids: &[&str]) -> Result<Vec<Expectations>> {
    let dir = expectations_file("podlab")
        .and_then(|p| p.parent().map(PathBuf::from))
        .context("cannot find conformance/expectations")?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| Expectations::load(p, ids).map_err(anyhow::Error::from))
        .collect()
}

/// Fails unless the published matrix is what the runs under `dir` give:
/// every runtime ran, and each did what its expectations record.
fn check_runtimes(
    page: &std::path::Path,
    dir: &std::path::Path,
    ids: &[&str],
    host: &str,
) -> Result<ExitCode> {
    let published =
        std::fs::read_to_string(page).with_context(|| format!("cannot read {}", page.display()))?;
    if summary::page_host(&published) != Some(host) {
        println!(
            "{} holds for a {} host and this one is {host}: not compared",
            page.display(),
            summary::page_host(&published).unwrap_or("unnamed")
        );
        return Ok(ExitCode::SUCCESS);
    }
    let mut runs = Vec::new();
    for found in summary::read_runs(dir)
        .with_context(|| format!("cannot read the runs under {}", dir.display()))?
    {
        let expectations = match expectations_file(&found.runtime) {
            Some(path) => Some(Expectations::load(&path, ids)?),
            None => None,
        };
        runs.push(summary::Run {
            runtime: found.runtime,
            rows: found.rows,
            expectations,
            not_runnable: found.not_runnable,
        });
    }
    let made = summary::runtimes_page(&runs, ids, host);
    if made == published {
        println!(
            "{} matches the {} runs under {}",
            page.display(),
            runs.len(),
            dir.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let first = made
        .lines()
        .zip(published.lines())
        .find(|(a, b)| a != b)
        .map(|(a, b)| format!("the runs give\n  {a}\nwhere it says\n  {b}"))
        .unwrap_or_else(|| "the runs give a page of another length".into());
    eprintln!(
        "conformance: {} does not match the runs under {}: {first}\n(regenerate it with `cargo xtask docs` once the expectations are right)",
        page.display(),
        dir.display()
    );
    Ok(ExitCode::FAILURE)
}

/// Writes `<dir>/summary.md` from the runs found in `dir`.
fn write_summary(dir: &std::path::Path) -> Result<()> {
    let found = summary::read_runs(dir)
        .with_context(|| format!("cannot read the runs under {}", dir.display()))?;
    let all = tests::all();
    let ids: Vec<&str> = all.iter().map(|c| c.id).collect();
    let mut runs = Vec::new();
    for summary::Found {
        runtime,
        rows,
        not_runnable,
    } in found
    {
        let expectations = match expectations_file(&runtime) {
            Some(path) => Some(Expectations::load(&path, &ids)?),
            None => None,
        };
        runs.push(summary::Run {
            runtime,
            rows,
            expectations,
            not_runnable,
        });
    }
    let path = dir.join("summary.md");
    std::fs::write(&path, summary::markdown(&runs, &ids))
        .with_context(|| format!("cannot write {}", path.display()))?;
    println!("wrote {} ({} runtimes)", path.display(), runs.len());
    Ok(())
}

#[cfg(feature = "cri")]
fn cri_runtime(args: &Args) -> Result<(Box<dyn Runtime>, String)> {
    use podlab_conformance::adapters::cri::node;
    use podlab_conformance::adapters::cri::{Cri, CriConfig};
    let address = args
        .cri_socket
        .clone()
        .or_else(|| std::env::var("CRI_SOCKET").ok())
        .context("--runtime cri needs --cri-socket unix:///PATH or PATH (or $CRI_SOCKET)")?;
    let mut config = CriConfig::new(node::endpoint(&address).map_err(anyhow::Error::msg)?);
    config.runtime_handler = args.runtime_handler.clone();
    config.registry = args.registry.clone();
    if let Some(list) = &args.caps {
        config.capabilities = Some(cli::parse_capabilities(list).map_err(anyhow::Error::msg)?);
    }
    if let Some(image) = &args.probe_image {
        config.probe_image = image.clone();
    }
    let shown = config.socket.display().to_string();
    let cri = Cri::new(config)?;
    let shown = format!("{}, on {shown}", cri.version());
    Ok((Box::new(cri), shown))
}

#[cfg(not(feature = "cri"))]
fn cri_runtime(_: &Args) -> Result<(Box<dyn Runtime>, String)> {
    bail!(
        "this conformance binary was built without the `cri` feature (its gRPC client needs \
         protoc): build with `--features cri`, or run `cargo xtask conformance --runtime cri`"
    )
}

fn podman_config(args: &Args) -> Result<PodmanConfig> {
    let mut config = PodmanConfig::new(
        args.podman_bin
            .clone()
            .unwrap_or_else(|| PathBuf::from("podman")),
    );
    let dir = fixtures_dir(args);
    let entries = std::fs::read_dir(&dir).with_context(|| {
        format!(
            "cannot read the fixtures in {} (build them with `cargo xtask fixtures`)",
            dir.display()
        )
    })?;
    // Every OCI image layout there: a directory with an index.json.
    let mut layouts: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("index.json").is_file() && p.join("oci-layout").is_file())
        .collect();
    layouts.sort();
    if layouts.is_empty() {
        bail!("no OCI image layout in {}", dir.display());
    }
    config.layouts = layouts;
    config.registry = args.registry.clone();
    if let Some(runtime) = &args.podman_runtime {
        config.oci_runtime = runtime.clone();
    }
    if let Some(image) = &args.probe_image {
        config.probe_image = image.clone();
    }
    Ok(config)
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
    config.registry = args.registry.clone();
    if let Some(m) = mutant {
        config.env.push(("PODLAB_MUTANT".into(), m.into()));
    }
    config
}

/// Prints the totals, compares them with the expectations and picks the exit status.
fn summarize(
    results: &[TestResult],
    leftovers: &[String],
    report_dir: &std::path::Path,
    expected: &Expectations,
) -> ExitCode {
    let totals = Totals::of(results);
    println!("\n{totals}; reports in {}", report_dir.display());
    for l in leftovers {
        println!("left behind: {l}");
    }
    let (lines, matched) = expectations::compare(expected, results);
    for l in &lines {
        println!("{l}");
    }
    if !matched || !leftovers.is_empty() {
        if !matched {
            println!(
                "the results do not match the expectations of {}",
                expected.runtime
            );
        }
        ExitCode::from(1)
    } else if totals.passed == 0 && totals.failed == 0 {
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
    let ids: Vec<&str> = cases.iter().map(|c| c.id).collect();
    let chosen = VARIANTS.iter().filter(|v| {
        args.variants
            .as_ref()
            .is_none_or(|p| p.matches(v.name, v.breaks))
    });
    for v in chosen {
        let wanted = mutants::tests_for(v, &ids);
        if wanted.is_empty() {
            continue;
        }
        let own: Vec<TestCase> = cases
            .iter()
            .filter(|c| wanted.contains(&c.id))
            .cloned()
            .collect();
        println!("{}: {} (runs {})", v.name, v.breaks, wanted.join(" "));
        let (failed, left) = failed_ids(args, &own, options, Some(v.name), &dir.join(v.name))?;
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
    if runs.is_empty() {
        println!("no variant has a test among the selected ones");
    } else if runs.iter().all(|r| !r.caught()) {
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

    fn parse(argv: &[&str]) -> Result<Args, clap::Error> {
        parse_args(&argv.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn the_command_is_well_formed() {
        use clap::CommandFactory;
        Args::command().debug_assert();
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
        assert_eq!(a.runtime, Some(RuntimeKind::Podlab));
        assert!(a.list && !a.mutants);
        assert_eq!(a.workers, Some(2));
        assert!(a.focus.unwrap().matches("UTS-001", ""));
        assert!(parse(&["--workers", "9"]).is_err());
        assert!(parse(&["--focus"]).is_err());
        assert!(parse(&["--focus", "NET.*"]).is_err());
        assert!(parse(&["--bogus"]).is_err());
        assert!(parse(&["--list=yes"]).is_err());
    }

    #[test]
    fn cri_flags_belong_to_cri() {
        let a = parse(&[
            "--runtime",
            "cri",
            "--cri-socket",
            "unix:///run/containerd/containerd.sock",
            "--runtime-handler",
            "crun",
            "--caps",
            "pod-ip,init-containers",
        ])
        .unwrap();
        assert_eq!(a.runtime_handler.as_deref(), Some("crun"));
        assert_eq!(a.caps.as_deref(), Some("pod-ip,init-containers"));
        let refused = |argv: &[&str]| parse(argv).unwrap_err().to_string();
        assert!(
            refused(&["--runtime", "podlab", "--runtime-handler", "crun"])
                .contains("for --runtime cri")
        );
        assert!(refused(&["--runtime", "podman", "--caps", "pod-ip"]).contains("--caps is for"));
        assert!(refused(&["--runtime", "cri", "--context", "x"]).contains("--context is for"));
        assert!(
            refused(&["--runtime", "podlab", "--podman-runtime", "crun"])
                .contains("for --runtime podman")
        );
        let a = parse(&["--runtime", "podman", "--podman-runtime", "crun"]).unwrap();
        assert_eq!(a.podman_runtime.as_deref(), Some("crun"));
    }

    #[test]
    fn runtimes() {
        assert_eq!(
            parse(&["--runtime", "podman"]).unwrap().runtime,
            Some(RuntimeKind::Podman)
        );
        let a = parse(&[
            "--runtime=cli:/bin/kubectl",
            "--context",
            "lab",
            "--caps",
            "pod-ip",
        ])
        .unwrap();
        assert_eq!(a.runtime, Some(RuntimeKind::Cli("/bin/kubectl".into())));
        assert_eq!(a.context.as_deref(), Some("lab"));
        assert!(parse(&["--runtime", "cli:"]).is_err());
        assert!(parse(&["--runtime", "docker"]).is_err());
        assert!(parse(&["--runtime", "podman", "--context", "x"]).is_err());
        assert!(parse(&["--runtime", "cli:k", "--caps", "bogus"]).is_err());
        assert!(parse(&["--runtime", "podman", "--mutants"]).is_err());
        assert!(
            parse(&["--variants", "subpath"]).is_err(),
            "--variants without --mutants"
        );
        let a = parse(&["--mutants", "--variants", "subpath|mount-target"]).unwrap();
        let v = a.variants.unwrap();
        assert!(v.matches("subpath-follows-symlinks", "") && !v.matches("no-grace", ""));
        assert!(parse(&["--summary"]).unwrap().summary);
    }
}
