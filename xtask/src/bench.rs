//! `cargo xtask bench [--quick] [--report DIR]`: podlab against podman in
//! one run, on the same machine, the same two-container manifest and the
//! same fixture image, with interleaved runs so both see the same load.
//!
//! Measures apply → Running and delete latency (median, p95), host memory
//! per running podlab pod (shim + pause RSS), many pods at once, and the
//! wall time of the whole conformance suite on podlab (`suite_seconds`,
//! `suite_tests`: tests that ran). The API path ([`api`], `podlab serve`):
//! the same apply → Running and delete through kubectl (`api.start_ratio`,
//! `api.delete_ratio` = kubectl median / CLI median), get and list latency
//! with many pods, and many watchers seeing every pod created; next to the
//! kubectl ratios, kubectl's own start (`api.kubectl_floor_ms`). Writes
//! `bench.json` (with `start_ratio` and `delete_ratio` = podlab median /
//! podman median) and `bench.md`; `--api-only` just the start/delete
//! rounds of the CLI and API paths (`api.json`).

mod api;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};

use crate::{doctor, fixtures, util};

const MANIFEST: &str = "apiVersion: v1
kind: Pod
metadata:
  name: NAME
spec:
  terminationGracePeriodSeconds: 0
  containers:
    - name: app
      image: podlab.local/busybox:latest
      command: [\"sleep\", \"3600\"]
    - name: sidecar
      image: podlab.local/busybox:latest
      command: [\"sleep\", \"3600\"]
";

struct Bench {
    podlab: PathBuf,
    state: PathBuf,
    images: PathBuf,
    podman: Option<Podman>,
    work: PathBuf,
    /// podman's cgroup parents that existed before the run.
    cgroups_before: Vec<PathBuf>,
}

impl Drop for Bench {
    /// Whatever happened, the next run starts clean: the pods go, podman's
    /// overlay mounts under the work directory go, and so do the empty
    /// cgroups podman 4.3 leaves behind on a hybrid host.
    fn drop(&mut self) {
        if let Ok(out) = self.podlab().args(["get", "pods", "-o", "name"]).output() {
            for name in String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| l.strip_prefix("pod/"))
            {
                let _ = self
                    .podlab()
                    .args(["delete", "pod", name, "--grace-period", "0"])
                    .output();
            }
        }
        let _ = self.podlab().arg("gc").output();
        if let Some(pm) = &self.podman {
            let _ = pm
                .cmd()
                .args(["pod", "rm", "--all", "--force", "--time", "0"])
                .output();
        }
        let left = podlab_testkit::host::unmount_under(&self.work);
        if !left.is_empty() {
            eprintln!(
                "xtask: unmounted {} mount(s) podman left under {}",
                left.len(),
                self.work.display()
            );
        }
        // rmdir only succeeds on empty cgroups.
        for parent in libpod_cgroup_parents() {
            if !self.cgroups_before.contains(&parent) {
                rmdir_tree(&parent);
            }
        }
    }
}

/// An empty `dir`, even after a run that died with podman's storage still
/// mounted in it.
fn fresh_dir(dir: &Path) -> anyhow::Result<()> {
    podlab_testkit::host::unmount_under(dir);
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => bail!("cannot empty {} for a fresh run: {e}", dir.display()),
    }
    std::fs::create_dir_all(dir)?;
    Ok(())
}

/// podman with a private configuration and storage: the host's own
/// containers.conf and image store are never touched.
struct Podman {
    conf: PathBuf,
    root: PathBuf,
    runroot: PathBuf,
}

impl Podman {
    fn cmd(&self) -> Command {
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", &self.conf)
            .arg("--root")
            .arg(&self.root)
            .arg("--runroot")
            .arg(&self.runroot)
            .arg("--cgroup-manager=cgroupfs")
            .arg("--events-backend=file");
        c
    }
}

fn timed(cmd: &mut Command) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let out = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).output()?;
    let took = start.elapsed();
    if !out.status.success() {
        bail!("{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(took)
}

fn percentile(samples: &[Duration], p: f64) -> Duration {
    let mut v = samples.to_vec();
    v.sort();
    if v.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((v.len() - 1) as f64 * p).round() as usize;
    v[idx.min(v.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

impl Bench {
    fn podlab(&self) -> Command {
        let mut c = Command::new(&self.podlab);
        c.arg("--root")
            .arg(&self.state)
            .arg("--image-root")
            .arg(&self.images)
            .arg("--data-root")
            .arg(self.work.join("data"));
        c
    }

    fn manifest(&self, name: &str) -> anyhow::Result<PathBuf> {
        let path = self.work.join(format!("{name}.yaml"));
        std::fs::write(&path, MANIFEST.replace("NAME", name))?;
        Ok(path)
    }

    fn podlab_start(&self, name: &str) -> anyhow::Result<Duration> {
        let m = self.manifest(name)?;
        timed(
            self.podlab()
                .args(["apply", "--wait-ready=60s", "-f"])
                .arg(m),
        )
    }

    fn podlab_delete(&self, name: &str) -> anyhow::Result<Duration> {
        timed(
            self.podlab()
                .args(["delete", "pod", name, "--grace-period", "0"]),
        )
    }

    fn podman_start(&self, pm: &Podman, name: &str) -> anyhow::Result<Duration> {
        let m = self.manifest(name)?;
        // kube play returns once the pod's containers are started.
        timed(pm.cmd().args(["kube", "play", "--network", "none"]).arg(m))
    }

    fn podman_delete(&self, pm: &Podman, name: &str) -> anyhow::Result<Duration> {
        timed(pm.cmd().args(["pod", "rm", "--force", "--time", "0", name]))
    }

    /// Memory of the pod's shim and pause (`field` of smaps_rollup: Rss, or
    /// Pss, which splits the shared podlab binary pages among all pods).
    fn podlab_pod_mem_kib(&self, name: &str, field: &str) -> anyhow::Result<u64> {
        let state: serde_json::Value = serde_json::from_slice(&std::fs::read(
            self.state
                .join("pods/default")
                .join(name)
                .join("runtime.json"),
        )?)?;
        let mut total = 0;
        for key in ["shim", "pause"] {
            if let Some(pid) = state[key]["pid"].as_i64() {
                total += mem_kib(pid, field)?;
            }
        }
        Ok(total)
    }
}

fn mem_kib(pid: i64, field: &str) -> anyhow::Result<u64> {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))?;
    rollup
        .lines()
        .find_map(|l| l.strip_prefix(field).and_then(|r| r.strip_prefix(':')))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("{field} of pid {pid}"))
}

fn setup_podman(work: &Path, images: &Path) -> anyhow::Result<Option<Podman>> {
    let dir = work.join("podman");
    std::fs::create_dir_all(&dir)?;
    let conf = dir.join("containers.conf");
    // crun refuses this host's hybrid cgroup hierarchy, and CAP_SYS_RESOURCE
    // is missing, so ulimits must stay within the hard limits.
    std::fs::write(
        &conf,
        "[containers]\ndefault_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]\n\
         [engine]\nruntime = \"runc\"\n",
    )?;
    let pm = Podman {
        conf,
        root: dir.join("storage"),
        runroot: dir.join("run"),
    };
    // The same fixture image, from podlab's store layout through an OCI archive.
    let layout = fixtures::layout_dir(fixtures::BUSYBOX_IMAGE);
    ensure!(
        layout.exists(),
        "fixture layout {} missing",
        layout.display()
    );
    let _ = images;
    // `pull --quiet` prints the image id; name it as the manifest does.
    let id = util::output(
        pm.cmd()
            .args(["pull", "--quiet"])
            .arg(format!("oci:{}", layout.display())),
    )?;
    util::run(
        pm.cmd()
            .args(["tag", id.trim(), "podlab.local/busybox:latest"]),
    )?;
    Ok(Some(pm))
}

/// `cargo xtask bench [--quick] [--pull-only | --api-only] [--report DIR]`
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Fewer rounds and pods: a smoke run, not figures to compare
    #[arg(long)]
    quick: bool,
    /// Only the image pull figures (pull.json)
    #[arg(long, conflicts_with = "api_only")]
    pull_only: bool,
    /// Only the start/delete rounds of the CLI and the API path, with
    /// kubectl's own start (api.json): no podman, many pods, suite or pull
    #[arg(long)]
    api_only: bool,
    /// Where the figures go (default: target/bench)
    #[arg(long, value_name = "DIR")]
    report: Option<PathBuf>,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    ensure!(util::is_root(), "the benchmark runs pods: run it as root");
    let quick = args.quick;
    let report = args
        .report
        .clone()
        .unwrap_or_else(|| util::target().join("bench"));
    doctor::install(&[doctor::Need::Pods, doctor::Need::Podman])?;
    let podlab = fixtures::build_podlab(true)?;
    let images = util::target().join("bench/images");
    fixtures::build_and_import(Some(&images.to_string_lossy()))?;
    let work = util::target().join("bench/work");
    fresh_dir(&work)?;
    if args.pull_only {
        let pull = crate::bench_pull::figures(&podlab, &work, if quick { 3 } else { 5 })?;
        std::fs::create_dir_all(&report)?;
        let json = serde_json::json!({"machine": machine(), "pull": pull});
        std::fs::write(
            report.join("pull.json"),
            serde_json::to_string_pretty(&json)?,
        )?;
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(());
    }
    // From here on, dropping `bench` (on success or on any error) deletes
    // what the run started and unmounts what podman mounted under `work`.
    let mut bench = Bench {
        podlab,
        state: work.join("state"),
        images: images.clone(),
        podman: None,
        work: work.clone(),
        cgroups_before: libpod_cgroup_parents(),
    };
    if !args.api_only {
        bench.podman = setup_podman(&work, &images)?;
    }
    let runs = if quick { 5 } else { 20 };
    let many = if quick { 20 } else { 100 };
    let watchers = if quick { 10 } else { 50 };
    doctor::require(&[doctor::Need::Kubectl], "the benchmark's API path")?;
    let api = api::ApiPath::start(bench.podlab(), work.join("serve/kubeconfig"))?;

    util::step(&format!(
        "start/delete latency, {runs} interleaved runs each"
    ));
    let (mut pl_start, mut pl_del, mut pm_start, mut pm_del) = (vec![], vec![], vec![], vec![]);
    let (mut api_start, mut api_del) = (vec![], vec![]);
    let (mut lib_start, mut lib_del) = (vec![], vec![]);
    let mut kubectl_floor = vec![];
    let mut rss = Vec::new();
    for i in 0..runs {
        let name = format!("bench-{i}");
        pl_start.push(bench.podlab_start(&name)?);
        rss.push(bench.podlab_pod_mem_kib(&name, "Rss")?);
        pl_del.push(bench.podlab_delete(&name)?);
        let via_api = format!("api-{i}");
        api_start.push(api.start_pod(&bench.manifest(&via_api)?, &via_api)?);
        api_del.push(api.delete_pod(&via_api)?);
        let via_lib = format!("lib-{i}");
        lib_start.push(api.start_pod_client(&via_lib)?);
        lib_del.push(api.delete_pod_client(&via_lib)?);
        kubectl_floor.push(api.kubectl_floor()?);
        if let Some(pm) = &bench.podman {
            pm_start.push(bench.podman_start(pm, &name)?);
            pm_del.push(bench.podman_delete(pm, &name)?);
        }
    }

    let ratio = |a: &[Duration], b: &[Duration]| {
        (!b.is_empty()).then(|| percentile(a, 0.5).as_secs_f64() / percentile(b, 0.5).as_secs_f64())
    };
    let spread = |v: &[Duration]| serde_json::json!({"median": ms(percentile(v, 0.5)), "p95": ms(percentile(v, 0.95))});
    let rss_median = {
        let mut v = rss.clone();
        v.sort();
        v[v.len() / 2]
    };
    let podlab_json = serde_json::json!({
        "start_ms": spread(&pl_start),
        "delete_ms": spread(&pl_del),
        "rss_per_pod_kib": rss_median,
    });
    let mut api_json = serde_json::json!({
        "client": format!("kubectl {}; kube-rs 5", kubectl_version()),
        "start_ms": spread(&api_start),
        "delete_ms": spread(&api_del),
        "start_ratio": ratio(&api_start, &pl_start),
        "delete_ratio": ratio(&api_del, &pl_del),
        // kubectl's own process start (`kubectl version --client`, no
        // request): apply + wait start two kubectl processes, delete one.
        "kubectl_floor_ms": spread(&kubectl_floor),
        // The same through kube-rs in-process: the server's path
        // without kubectl's process start (two per apply + wait).
        "client_library": {
            "start_ms": spread(&lib_start),
            "delete_ms": spread(&lib_del),
            "start_ratio": ratio(&lib_start, &pl_start),
            "delete_ratio": ratio(&lib_del, &pl_del),
        },
    });
    if args.api_only {
        drop(api);
        let json = serde_json::json!({
            "machine": machine(),
            "runs": runs,
            "podlab": podlab_json,
            "api": api_json,
        });
        std::fs::create_dir_all(&report)?;
        std::fs::write(
            report.join("api.json"),
            serde_json::to_string_pretty(&json)?,
        )?;
        print!("{}", api_markdown(&json));
        println!("wrote {}", report.join("api.json").display());
        return Ok(());
    }

    util::step(&format!("{many} podlab pods at once"));
    let start = Instant::now();
    for i in 0..many {
        bench.podlab_start(&format!("many-{i}"))?;
    }
    let many_up = start.elapsed();
    let mut many_pss = 0;
    for i in 0..many {
        many_pss += bench.podlab_pod_mem_kib(&format!("many-{i}"), "Pss")?;
    }
    let start = Instant::now();
    for i in 0..many {
        bench.podlab_delete(&format!("many-{i}"))?;
    }
    let many_down = start.elapsed();

    util::step(&format!(
        "{watchers} watchers through podlab serve, {many} pods created"
    ));
    let fanout = api.fanout(|| bench.podlab(), &work, many, watchers)?;
    util::step(&format!(
        "get and list latency through podlab serve, {many} pods"
    ));
    let (get, list) = api.latency(if quick { 50 } else { 200 })?;
    for i in 0..many {
        bench.podlab_delete(&format!("watched-{i}"))?;
    }
    drop(api);

    let suite = conformance_suite(&bench, &images, &report.join("conformance"))?;
    let pull = crate::bench_pull::figures(&bench.podlab, &work, if quick { 3 } else { 5 })?;

    api_json["pods_listed"] = serde_json::json!(many);
    api_json["get_ms"] =
        serde_json::json!({"p50": ms(get.p50), "p99": ms(get.p99), "samples": get.samples});
    api_json["list_ms"] =
        serde_json::json!({"p50": ms(list.p50), "p99": ms(list.p99), "samples": list.samples});
    api_json["watch"] = serde_json::json!({
        "watchers": fanout.watchers,
        "pods_created": fanout.pods,
        "added_per_watcher": {"min": fanout.added_min, "max": fanout.added_max},
        "events_per_watcher": {"min": fanout.events_min, "max": fanout.events_max},
        "watchers_complete": fanout.complete,
        "all_seen_ready_s": fanout.all_seen.as_secs_f64(),
        "errors": fanout.errors,
    });
    let json = serde_json::json!({
        "machine": machine(),
        "runs": runs,
        "podlab": podlab_json,
        "podman": bench.podman.as_ref().map(|_| serde_json::json!({
            "start_ms": {"median": ms(percentile(&pm_start, 0.5)), "p95": ms(percentile(&pm_start, 0.95))},
            "delete_ms": {"median": ms(percentile(&pm_del, 0.5)), "p95": ms(percentile(&pm_del, 0.95))},
        })),
        "suite_seconds": suite.seconds,
        "suite_tests": suite.ran,
        "conformance": {"passed": suite.passed, "skipped": suite.skipped},
        "start_ratio": ratio(&pl_start, &pm_start),
        "delete_ratio": ratio(&pl_del, &pm_del),
        "pull": pull,
        "api": api_json,
        "many_pods": {
            "count": many,
            "start_all_s": many_up.as_secs_f64(),
            "delete_all_s": many_down.as_secs_f64(),
            "pss_total_mib": many_pss as f64 / 1024.0,
            "pss_per_pod_kib": many_pss / many as u64,
        },
    });
    std::fs::create_dir_all(&report)?;
    std::fs::write(
        report.join("bench.json"),
        serde_json::to_string_pretty(&json)?,
    )?;
    let md = markdown(&json);
    std::fs::write(report.join("bench.md"), &md)?;
    print!("{md}");
    println!("wrote {}", report.join("bench.json").display());
    Ok(())
}

/// One timed run of the whole conformance suite on podlab.
struct Suite {
    /// Wall time of the runner alone, default workers, built beforehand.
    seconds: f64,
    /// Tests that ran (passed or failed), skips not counted.
    ran: usize,
    skipped: usize,
    /// The run matched podlab's expectations (exit status 0).
    passed: bool,
}

/// Runs the suite on podlab as CI does (default workers) and times the
/// runner only: it is built first, so compiling is not counted.
fn conformance_suite(bench: &Bench, images: &Path, report: &Path) -> anyhow::Result<Suite> {
    util::step("building the conformance runner (release)");
    util::run(util::cargo().args([
        "build",
        "--quiet",
        "--release",
        "-p",
        "podlab-conformance",
        "--bin",
        "conformance",
    ]))?;
    util::step("the whole conformance suite on podlab");
    let start = Instant::now();
    let passed = Command::new(util::target().join("release/conformance"))
        .args(["--runtime", "podlab", "--report"])
        .arg(report)
        .arg("--podlab-bin")
        .arg(&bench.podlab)
        .arg("--image-root")
        .arg(images)
        .stdout(Stdio::null())
        .status()?
        .success();
    let seconds = start.elapsed().as_secs_f64();
    let results = std::fs::read_to_string(report.join("results.json")).with_context(|| {
        format!(
            "the suite wrote no {}",
            report.join("results.json").display()
        )
    })?;
    let (ran, skipped) = count_results(&results)?;
    Ok(Suite {
        seconds,
        ran,
        skipped,
        passed,
    })
}

/// (ran, skipped) among the results of a run's results.json.
fn count_results(results_json: &str) -> anyhow::Result<(usize, usize)> {
    let results: Vec<serde_json::Value> =
        serde_json::from_str(results_json).context("results.json is not a list of results")?;
    let skipped = results.iter().filter(|r| r["status"] == "skipped").count();
    Ok((results.len() - skipped, skipped))
}

fn libpod_cgroup_parents() -> Vec<PathBuf> {
    std::fs::read_dir("/sys/fs/cgroup")
        .map(|d| {
            d.flatten()
                .map(|e| e.path().join("libpod_parent"))
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default()
}

fn rmdir_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                rmdir_tree(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// kubectl's own version (`v1.32.4`), for the record of which client ran.
fn kubectl_version() -> String {
    let out = Command::new("kubectl")
        .args(["version", "--client", "-o", "json"])
        .output();
    out.ok()
        .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
        .and_then(|v| v["clientVersion"]["gitVersion"].as_str().map(String::from))
        .unwrap_or_else(|| "unknown".into())
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_string())
        })
        .and_then(|kb| kb.parse::<u64>().ok())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{cpus} cores, {} GiB, Linux {}",
        mem / 1024 / 1024,
        kernel.trim()
    )
}

/// How the figures print: one decimal, three for ratios, two for requests
/// (they take a millisecond or so); `-` for a missing one.
fn figure(v: &serde_json::Value, decimals: usize) -> String {
    v.as_f64()
        .map(|x| format!("{x:.decimals$}"))
        .unwrap_or_else(|| "-".into())
}

fn markdown(j: &serde_json::Value) -> String {
    let get = |v: &serde_json::Value| figure(v, 1);
    let ratio = |v: &serde_json::Value| figure(v, 3);
    let fine = |v: &serde_json::Value| figure(v, 2);
    format!(
        "| measure ({}) | podlab | podman |\n|---|---|---|\n\
         | apply → Running, median ms | {} | {} |\n\
         | apply → Running, p95 ms | {} | {} |\n\
         | delete, median ms | {} | {} |\n\
         | delete, p95 ms | {} | {} |\n\
         | RSS of one pod's shim + pause, KiB | {} | - |\n\
         | {} pods: all up in s / all deleted in s | {:.2} / {:.2} | - |\n\
         | host memory per pod among them (PSS, shim + pause), KiB | {} | - |\n\
         | whole conformance suite on podlab, s ({} tests run) | {:.1} | - |\n\
         | pull of a {} MiB image from a loopback registry, median s (ctr images pull: {}) | {} | {} |\n\
         | {} pods of one new image at once, all up in s (most fetches of one blob: {}) | {} | - |\n\n\
         start_ratio = {}, delete_ratio = {}\n\n\
         {}\n\
         | request with {} pods (kube-rs) | p50 ms | p99 ms |\n|---|---|---|\n\
         | get one pod | {} | {} |\n\
         | list all pods | {} | {} |\n\n\
         {} watchers, {} pods created: ADDED per watcher {}..{}, events per watcher {}..{}, \
         {} watchers ended with every pod's latest version; all saw every pod Ready after {:.2} s\n",
        j["machine"].as_str().unwrap_or(""),
        get(&j["podlab"]["start_ms"]["median"]),
        get(&j["podman"]["start_ms"]["median"]),
        get(&j["podlab"]["start_ms"]["p95"]),
        get(&j["podman"]["start_ms"]["p95"]),
        get(&j["podlab"]["delete_ms"]["median"]),
        get(&j["podman"]["delete_ms"]["median"]),
        get(&j["podlab"]["delete_ms"]["p95"]),
        get(&j["podman"]["delete_ms"]["p95"]),
        j["podlab"]["rss_per_pod_kib"],
        j["many_pods"]["count"],
        j["many_pods"]["start_all_s"].as_f64().unwrap_or(0.0),
        j["many_pods"]["delete_all_s"].as_f64().unwrap_or(0.0),
        j["many_pods"]["pss_per_pod_kib"],
        j["suite_tests"],
        j["suite_seconds"].as_f64().unwrap_or(0.0),
        j["pull"]["image_mib"],
        get(&j["pull"]["ctr_s"]),
        get(&j["pull"]["podlab_s"]),
        get(&j["pull"]["podman_s"]),
        10,
        j["pull"]["ten_pods_most_fetches_of_a_blob"],
        get(&j["pull"]["ten_pods_one_image_s"]),
        ratio(&j["start_ratio"]),
        ratio(&j["delete_ratio"]),
        api_markdown(j),
        j["api"]["pods_listed"],
        fine(&j["api"]["get_ms"]["p50"]),
        fine(&j["api"]["get_ms"]["p99"]),
        fine(&j["api"]["list_ms"]["p50"]),
        fine(&j["api"]["list_ms"]["p99"]),
        j["api"]["watch"]["watchers"],
        j["api"]["watch"]["pods_created"],
        j["api"]["watch"]["added_per_watcher"]["min"],
        j["api"]["watch"]["added_per_watcher"]["max"],
        j["api"]["watch"]["events_per_watcher"]["min"],
        j["api"]["watch"]["events_per_watcher"]["max"],
        j["api"]["watch"]["watchers_complete"],
        j["api"]["watch"]["all_seen_ready_s"].as_f64().unwrap_or(0.0),
    )
}

/// The start/delete rounds of the API path against the CLI's, with
/// kubectl's own start next to the kubectl ratios.
fn api_markdown(j: &serde_json::Value) -> String {
    let get = |v: &serde_json::Value| figure(v, 1);
    let ratio = |v: &serde_json::Value| figure(v, 3);
    let api = &j["api"];
    format!(
        "| API path through `podlab serve` ({}) | median | p95 |\n|---|---|---|\n\
         | kubectl apply + wait Ready, ms | {} | {} |\n\
         | kubectl delete, ms | {} | {} |\n\
         | kubectl's own start (`kubectl version --client`), ms | {} | {} |\n\n\
         api.start_ratio = {}, api.delete_ratio = {} (kubectl / podlab CLI: {} ms, {} ms; \
         apply + wait start kubectl twice, delete once); \
         through kube-rs: create → Ready {} ms, delete → gone {} ms (medians), \
         api.client_library.start_ratio = {}, delete_ratio = {}\n",
        api["client"].as_str().unwrap_or("-"),
        get(&api["start_ms"]["median"]),
        get(&api["start_ms"]["p95"]),
        get(&api["delete_ms"]["median"]),
        get(&api["delete_ms"]["p95"]),
        get(&api["kubectl_floor_ms"]["median"]),
        get(&api["kubectl_floor_ms"]["p95"]),
        ratio(&api["start_ratio"]),
        ratio(&api["delete_ratio"]),
        get(&j["podlab"]["start_ms"]["median"]),
        get(&j["podlab"]["delete_ms"]["median"]),
        get(&api["client_library"]["start_ms"]["median"]),
        get(&api["client_library"]["delete_ms"]["median"]),
        ratio(&api["client_library"]["start_ratio"]),
        ratio(&api["client_library"]["delete_ratio"]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_from_sorted_samples() {
        let s: Vec<Duration> = [5, 1, 4, 2, 3]
            .iter()
            .map(|&x| Duration::from_millis(x))
            .collect();
        assert_eq!(percentile(&s, 0.5), Duration::from_millis(3));
        assert_eq!(percentile(&s, 0.95), Duration::from_millis(5));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }

    #[test]
    fn skipped_tests_are_not_counted_as_run() {
        let json = r#"[{"id": "A-001", "status": "passed"}, {"id": "A-002", "status": "failed"},
                      {"id": "A-003", "status": "skipped"}]"#;
        assert_eq!(count_results(json).unwrap(), (2, 1));
        assert!(count_results("{}").is_err());
    }

    #[test]
    fn the_summary_shows_the_suite_time_and_count() {
        let md = markdown(&serde_json::json!({"suite_seconds": 91.26, "suite_tests": 84}));
        assert!(
            md.contains("| whole conformance suite on podlab, s (84 tests run) | 91.3 | - |"),
            "{md}"
        );
    }

    #[test]
    fn the_summary_shows_the_api_path() {
        let md = markdown(&serde_json::json!({"api": {
            "client": "kubectl v1.32.4; kube-rs 5",
            "start_ms": {"median": 812.0, "p95": 900.0},
            "start_ratio": 1.5,
            "kubectl_floor_ms": {"median": 61.0, "p95": 70.0},
            "pods_listed": 100,
            "get_ms": {"p50": 1.234, "p99": 3.0},
            "list_ms": {"p50": 20.0, "p99": 41.0},
            "watch": {"watchers": 50, "pods_created": 100,
                "added_per_watcher": {"min": 100, "max": 100},
                "events_per_watcher": {"min": 300, "max": 320},
                "watchers_complete": 50, "all_seen_ready_s": 12.5},
        }}));
        for row in [
            "| API path through `podlab serve` (kubectl v1.32.4; kube-rs 5) | median | p95 |",
            "| kubectl apply + wait Ready, ms | 812.0 | 900.0 |",
            "api.start_ratio = 1.500",
            "| kubectl's own start (`kubectl version --client`), ms | 61.0 | 70.0 |",
            "| request with 100 pods (kube-rs) | p50 ms | p99 ms |",
            "| get one pod | 1.23 | 3.00 |",
            "| list all pods | 20.00 | 41.00 |",
            "50 watchers, 100 pods created: ADDED per watcher 100..100, events per watcher 300..320, \
             50 watchers ended with every pod's latest version; all saw every pod Ready after 12.50 s",
        ] {
            assert!(md.contains(row), "{row} not in {md}");
        }
    }
}
