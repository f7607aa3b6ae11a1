//! `cargo xtask conformance`: builds what the suite needs and runs the
//! `conformance` runner of `conformance/` against a runtime. With
//! `--mutants`, podlab is built with its deliberately broken variants and
//! the runner checks that every variant is caught.

use std::path::PathBuf;

use podlab_testkit::registry::TestRegistry;

use crate::containerd::Containerd;
use crate::serve::Serve;
use crate::{doctor, fixtures, util};

/// The cargo arguments that build the conformance runner with its CRI
/// adapter, when protoc (which its gRPC code generation needs) is here.
pub fn cri_features() -> Vec<&'static str> {
    if has_protoc() {
        vec!["--features", "podlab-conformance/cri"]
    } else {
        Vec::new()
    }
}

/// `cargo run` of the conformance runner, ready for the runner's arguments.
pub fn runner() -> std::process::Command {
    let mut cmd = util::cargo();
    cmd.args([
        "run",
        "--quiet",
        "-p",
        "podlab-conformance",
        "--bin",
        "conformance",
    ])
    .args(cri_features())
    .arg("--");
    cmd
}

pub fn has_protoc() -> bool {
    std::env::var_os("PROTOC").is_some() || std::path::Path::new("/usr/bin/protoc").exists()
}

/// `cargo xtask conformance [flags]`: the runner's own flags (see
/// `conformance --help`), which go to it as given, and `--runtime serve`.
/// Only the flags this task looks at are typed beyond a string; the runner
/// checks the rest.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "The flags are the runner's: `cargo run -p podlab-conformance -- --help` describes them."
)]
pub struct Args {
    /// podlab, podman, cri, serve (the real kubectl against `podlab serve`),
    /// cli-podlab (podlab's CLI through the kubectl-compatible adapter) or cli:PATH
    #[arg(long, default_value = "podlab")]
    runtime: String,
    /// The podlab binary (default: built here)
    #[arg(long, value_name = "PATH")]
    podlab_bin: Option<String>,
    /// podlab's image store holding the probe image
    #[arg(long, value_name = "DIR")]
    image_root: Option<String>,
    /// The podman binary
    #[arg(long, value_name = "PATH")]
    podman_bin: Option<String>,
    /// podman: the OCI runtime it runs containers with
    #[arg(long, value_name = "R")]
    podman_runtime: Option<String>,
    /// OCI image layouts podman loads
    #[arg(long, value_name = "DIR")]
    fixtures: Option<String>,
    /// cri: the runtime's CRI endpoint (default: a private containerd under target/cri)
    #[arg(long, value_name = "ADDR")]
    cri_socket: Option<String>,
    /// cri: the runtime handler pods run with
    #[arg(long, value_name = "H")]
    runtime_handler: Option<String>,
    /// cli: passed to the binary as --context NAME
    #[arg(long, value_name = "NAME")]
    context: Option<String>,
    /// cli, cri: what the runtime supports, comma-separated
    #[arg(long, value_name = "LIST")]
    caps: Option<String>,
    /// The probe image
    #[arg(long, value_name = "REF")]
    probe_image: Option<String>,
    /// The runtime's expected failures and skips
    #[arg(long, value_name = "FILE")]
    expectations: Option<String>,
    /// Run only tests whose ID or MUST sentence matches
    #[arg(long, value_name = "PATTERN")]
    focus: Option<String>,
    /// Do not run tests that match
    #[arg(long, value_name = "PATTERN")]
    skip: Option<String>,
    /// Print the selected tests and exit
    #[arg(long)]
    list: bool,
    /// Where reports go
    #[arg(long, value_name = "DIR")]
    report: Option<String>,
    /// Tests run at once
    #[arg(long, value_name = "N")]
    workers: Option<String>,
    /// podlab's mutation matrix: the suite against each deliberately broken variant
    #[arg(long)]
    mutants: bool,
    /// With --mutants: only the variants whose name or description matches
    #[arg(long, value_name = "PATTERN")]
    variants: Option<String>,
    /// A registry on loopback holding the fixtures, for the image tests
    /// (default: one is started)
    #[arg(long, value_name = "HOST:PORT")]
    registry: Option<String>,
    /// Write summary.md from every runtime's results in the reports directory
    #[arg(long)]
    summary: bool,
    /// Write the generated test documentation to PATH and exit
    #[arg(long, value_name = "PATH")]
    gen_docs: Option<String>,
    /// Write the runtime matrix (docs/runtimes.md) the expectations predict and exit
    #[arg(long, value_name = "PATH")]
    gen_runtimes: Option<String>,
    /// Fail unless PATH is the matrix the runs in the reports directory give
    #[arg(long, value_name = "PATH")]
    check_runtimes: Option<String>,
}

/// The task with the flags parsed as `cargo xtask conformance ARGS...` would.
fn run_with(raw: &[&str]) -> anyhow::Result<()> {
    use clap::Parser;
    #[derive(Parser)]
    struct Task {
        #[command(flatten)]
        args: Args,
    }
    let raw: Vec<String> = raw.iter().map(|s| s.to_string()).collect();
    let task = Task::try_parse_from(std::iter::once("conformance".to_string()).chain(raw.clone()))?;
    run(&task.args, &raw)
}

/// `args` as clap parsed them from `raw`, the arguments after `conformance`.
pub fn run(args: &Args, raw: &[String]) -> anyhow::Result<()> {
    if args.summary {
        return util::run(runner().args(raw));
    }
    let mutants = args.mutants;
    let runtime = args.runtime.clone();
    // `--runtime serve`: the real kubectl against `podlab serve`.
    if runtime == "serve" {
        if util::is_root() {
            fixtures::build_and_import(Some(&fixtures::test_image_root().to_string_lossy()))?;
        }
        let rest = without_runtime(raw);
        return run_cli_kubectl_on_serve(&rest, wants_registry(args));
    }
    // `--runtime cli-podlab`: podlab's own CLI through the kubectl-compatible adapter.
    if runtime == "cli-podlab" {
        if util::is_root() {
            fixtures::build_and_import(Some(&fixtures::test_image_root().to_string_lossy()))?;
        }
        return run_cli_on_podlab(&without_runtime(raw), wants_registry(args));
    }
    let mut pass: Vec<String> = raw.to_vec();
    if !raw
        .iter()
        .any(|a| a == "--runtime" || a.starts_with("--runtime="))
    {
        pass.extend(["--runtime".into(), runtime.clone()]);
    }
    if runtime == "podlab" && args.podlab_bin.is_none() && !args.list {
        let bin = if mutants {
            build_mutant_podlab()?
        } else {
            fixtures::build_podlab(false)?
        };
        pass.extend(["--podlab-bin".into(), bin.to_string_lossy().into_owned()]);
    }
    if !args.list {
        let needs: &[doctor::Need] = match runtime.as_str() {
            "podman" => &[doctor::Need::Pods, doctor::Need::Podman],
            "cri" => &[doctor::Need::Pods, doctor::Need::Containerd],
            _ => &[doctor::Need::Pods],
        };
        doctor::require(needs, &format!("the suite on {runtime}"))?;
    }
    let images = fixtures::test_image_root();
    // Rebuilt once per xtask run (a few seconds): images with an older
    // probe than the tests expect would fail tests for nothing.
    if util::is_root() && !args.list {
        fixtures::build_and_import(Some(&images.to_string_lossy()))?;
    }
    // The registry the image tests pull from, unless the caller names one.
    let registry = test_registry(wants_registry(args))?;
    if let Some(r) = &registry {
        pass.extend(["--registry".into(), r.address.clone()]);
    }
    let registry_address = args
        .registry
        .clone()
        .or_else(|| registry.as_ref().map(|r| r.address.clone()));
    // A CRI runtime of our own unless the caller names one.
    let mut containerd = None;
    if runtime == "cri" && args.runtime_handler.as_deref() == Some("youki") {
        crate::youki::build()?;
    }
    if runtime == "cri" {
        if !has_protoc() {
            anyhow::bail!(
                "the CRI adapter needs protoc to build: install Debian's protobuf-compiler \
                 (`cargo xtask doctor --install`)"
            );
        }
        if args.cri_socket.is_none() && !args.list {
            let daemon = Containerd::start(registry_address.as_deref())?;
            pass.extend([
                "--cri-socket".into(),
                daemon.socket().to_string_lossy().into_owned(),
            ]);
            containerd = Some(daemon);
        }
    }
    util::step(&format!(
        "conformance suite on {runtime}{}",
        if mutants { " (mutation matrix)" } else { "" }
    ));
    let result = util::run(runner().args(&pass).env("PODLAB_IMAGE_ROOT", &images));
    if let Some(mut daemon) = containerd {
        let left = daemon.leftovers();
        daemon.stop()?;
        if !left.is_empty() {
            anyhow::bail!("the CRI run left behind:\n  {}", left.join("\n  "));
        }
    }
    drop(registry);
    result
}

/// A loopback registry holding the suite's images for the run (stopped
/// when dropped), unless the caller passed `--registry` or only lists
/// tests; none without root, where nothing runs pods.
/// Whether this run needs a registry of its own: not when it only lists
/// tests or the caller names one.
fn wants_registry(args: &Args) -> bool {
    !args.list && args.registry.is_none()
}

fn test_registry(wanted: bool) -> anyhow::Result<Option<TestRegistry>> {
    if !util::is_root() || !wanted {
        return Ok(None);
    }
    util::step("test registry on loopback for the image tests (docker-registry, skopeo)");
    fixtures::start_registry().map(Some)
}

/// The kubectl-compatible adapter (`cli:PATH`) against podlab's own CLI,
/// the reference implementation of docs/adapter-contract.md: the suite
/// drives `podlab apply -f -`, `get pod -o json`, `exec`, `delete` as it
/// would drive kubectl, with a private state directory.
pub fn run_cli_on_podlab(extra: &[String], start_registry: bool) -> anyhow::Result<()> {
    let bin = fixtures::build_podlab(false)?;
    let root = util::target().join("conformance-cli-root");
    let data = util::target().join("conformance-cli-data");
    let images = fixtures::test_image_root();
    let seccomp = root.join("seccomp");
    let globals = format!(
        "--root {} --image-root {} --data-root {} --seccomp-root {}",
        root.display(),
        images.display(),
        data.display(),
        seccomp.display()
    );
    if root.to_string_lossy().contains(char::is_whitespace)
        || images.to_string_lossy().contains(char::is_whitespace)
    {
        anyhow::bail!("CONFORMANCE_CLI_ARGS is split on whitespace: check out the project at a path without any");
    }
    let registry = test_registry(start_registry)?;
    // podlab's CLI ends a timed-out exec itself (`exec --timeout`).
    let caps = format!(
        "{},exec-timeout,seccomp-root={}{}",
        podlab_caps(),
        seccomp.display(),
        registry_cap(registry.as_ref())
    );
    util::step("conformance suite through the kubectl-compatible adapter (cli:podlab)");
    let result = util::run(
        runner()
            .arg("--runtime")
            .arg(format!("cli:{}", bin.display()))
            .args(["--caps", &caps])
            .args(extra)
            .env("CONFORMANCE_CLI_ARGS", globals)
            // podlab's shims inherit it: the storage scan every half second.
            .env("PODLAB_STORAGE_SCAN_MS", "500"),
    );
    drop(registry);
    // The suite found no pod left behind; the store itself goes too.
    if result.is_ok() {
        let _ = std::fs::remove_dir_all(&root);
        let _ = std::fs::remove_dir_all(&data);
    }
    result
}

/// `,registry=ADDRESS` for a `--caps` list when there is a registry.
fn registry_cap(registry: Option<&TestRegistry>) -> String {
    registry
        .map(|r| format!(",registry={}", r.address))
        .unwrap_or_default()
}

/// The arguments without `--runtime X`.
fn without_runtime(args: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut skip = false;
    for a in args {
        if skip {
            skip = false;
        } else if a == "--runtime" {
            skip = true;
        } else if !a.starts_with("--runtime=") {
            out.push(a.clone());
        }
    }
    out
}

/// The capabilities podlab offers (as its own adapter declares), spelled
/// as `--caps` for the kubectl-compatible adapter.
pub fn podlab_caps() -> String {
    format!(
        "pod-ip,privileged,cgroup-visible,pending-observable,share-process-namespace,same-kernel,\
         node-reaches-pods,pod-pids,container-pids={},init-containers,restart-policy,\
         unschedulable,oom-reason,probes,hooks,storage-eviction,host-ports,host-paths",
        podlab_testkit::podlab::DEFAULT_PIDS_LIMIT
    )
}

/// The suite through the real kubectl (`cli:kubectl`, results as
/// `cli-kubectl`) against `podlab serve`: the Kubernetes API path of
/// podlab, driven as the suite drives a cluster.
pub fn run_cli_kubectl_on_serve(extra: &[String], start_registry: bool) -> anyhow::Result<()> {
    doctor::require(&[doctor::Need::Kubectl], "the suite through kubectl")?;
    let bin = fixtures::build_podlab(false)?;
    let root = util::target().join("conformance-kubectl-root");
    let data = util::target().join("conformance-kubectl-data");
    let seccomp = root.join("seccomp");
    let mut podlab = std::process::Command::new(&bin);
    podlab
        .arg("--root")
        .arg(&root)
        .arg("--image-root")
        .arg(fixtures::test_image_root())
        .arg("--data-root")
        .arg(&data)
        .arg("--seccomp-root")
        .arg(&seccomp)
        // The shims inherit it: the storage scan every half second.
        .env("PODLAB_STORAGE_SCAN_MS", "500");
    let serve = Serve::start(podlab, root.join("kubeconfig"))?;
    let registry = test_registry(start_registry)?;
    util::step("conformance suite through the real kubectl against podlab serve (cli:kubectl)");
    let result = util::run(
        runner()
            // kubectl exec has no timeout of its own: no exec-timeout.
            .args(["--runtime", "cli:kubectl", "--caps"])
            .arg(format!(
                "{},seccomp-root={}{}",
                podlab_caps(),
                seccomp.display(),
                registry_cap(registry.as_ref())
            ))
            .args(extra)
            .env("KUBECONFIG", &serve.kubeconfig)
            .env_remove("CONFORMANCE_CLI_ARGS"),
    );
    drop(serve);
    drop(registry);
    if result.is_ok() {
        let _ = std::fs::remove_dir_all(&root);
        let _ = std::fs::remove_dir_all(&data);
    }
    result
}

/// The runtime matrix: the suite on every runtime, one after another (they
/// share the host's cgroups and bridges), each against its own
/// expectations, then the summary and docs/runtimes.md checked against the
/// runs; with `mutants`, podlab's mutation matrix after podlab's own run.
pub fn run_matrix(mutants: bool) -> anyhow::Result<()> {
    // Reports of earlier runs (or of runtimes since renamed) would be read
    // as runs of this one by the summary and the matrix check.
    let _ = std::fs::remove_dir_all(util::target().join("conformance"));
    run_with(&["--runtime", "podlab"])?;
    if mutants {
        run_with(&["--runtime", "podlab", "--mutants"])?;
    }
    // podman with its OCI runtimes.
    run_with(&["--runtime", "podman"])?;
    run_with(&["--runtime", "podman", "--podman-runtime", "crun"])?;
    // containerd through the CRI: runc, its default, then the other OCI
    // runtimes as handlers.
    run_with(&["--runtime", "cri"])?;
    for handler in ["crun", "youki"] {
        run_with(&["--runtime", "cri", "--runtime-handler", handler])?;
    }
    // podlab again, driven as any kubectl-compatible binary would be, and
    // through the real kubectl over podlab's Kubernetes API.
    run_cli_on_podlab(&[], true)?;
    run_cli_kubectl_on_serve(&[], true)?;
    run_with(&["--summary"])?;
    check_runtimes_page()
}

/// Fails unless docs/runtimes.md is the matrix this run's reports give.
pub fn check_runtimes_page() -> anyhow::Result<()> {
    util::step("docs/runtimes.md against the runs just made");
    util::run(runner().args(["--check-runtimes", "docs/runtimes.md"]))
}

/// podlab with the `mutants` feature, in its own target dir so the normal
/// build is never one that can break on purpose.
pub fn build_mutant_podlab() -> anyhow::Result<PathBuf> {
    util::step("building podlab with the mutants feature (deliberately broken variants)");
    let dir = util::target().join("mutants");
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
