//! The coursework labs of `docs/labs/`: `cargo xtask lab check N` grades
//! the live state a student produced; `cargo xtask labs` runs every lab's
//! command blocks as written, grades, cleans up, and checks that each grader
//! then fails, so the labs can never drift from the code.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::Value;

use crate::{fixtures, util};

/// One grader finding.
struct Finding {
    ok: bool,
    what: String,
}

#[derive(Default)]
struct Grade {
    findings: Vec<Finding>,
}

impl Grade {
    fn check(&mut self, ok: bool, what: impl Into<String>) -> bool {
        self.findings.push(Finding {
            ok,
            what: what.into(),
        });
        ok
    }
    fn passed(&self) -> bool {
        !self.findings.is_empty() && self.findings.iter().all(|f| f.ok)
    }
    fn print(&self) {
        for f in &self.findings {
            println!("  {} {}", if f.ok { "✓" } else { "✗" }, f.what);
        }
    }
}

/// The podlab CLI as the student runs it (PODLAB_ROOT etc. from the environment).
fn podlab(args: &[&str]) -> Option<std::process::Output> {
    Command::new("podlab").args(args).output().ok()
}

fn stdout(args: &[&str]) -> Option<String> {
    podlab(args)
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
}

fn pod(name: &str) -> Option<Value> {
    stdout(&["get", "pod", name, "-o", "json"]).and_then(|s| serde_json::from_str(&s).ok())
}

fn running(g: &mut Grade, name: &str) -> bool {
    let phase = pod(name).map(|p| p["status"]["phase"].clone());
    g.check(
        phase.as_ref().is_some_and(|p| p == "Running"),
        format!(
            "pod {name} is Running (found: {})",
            phase
                .map(|p| p.to_string())
                .unwrap_or_else(|| "no such pod".into())
        ),
    )
}

fn exec(name: &str, container: &str, cmd: &[&str]) -> Option<String> {
    let mut args = vec!["exec", name, "-c", container, "--"];
    args.extend_from_slice(cmd);
    stdout(&args)
}

fn probe(name: &str, container: &str, cmd: &[&str]) -> Value {
    let mut full = vec!["probe"];
    full.extend_from_slice(cmd);
    exec(name, container, &full)
        .and_then(|s| s.lines().next().and_then(|l| serde_json::from_str(l).ok()))
        .unwrap_or(Value::Null)
}

fn state_root() -> PathBuf {
    std::env::var_os("PODLAB_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/run/podlab"))
}

fn runtime_state(name: &str) -> Value {
    std::fs::read(
        state_root()
            .join("pods/default")
            .join(name)
            .join("runtime.json"),
    )
    .ok()
    .and_then(|b| serde_json::from_slice(&b).ok())
    .unwrap_or(Value::Null)
}

/// Polls a condition for time-dependent labs (restarts), with a deadline.
fn within(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn grade(n: u32) -> anyhow::Result<Grade> {
    let mut g = Grade::default();
    match n {
        1 => {
            if running(&mut g, "lab1-web") {
                let logs = stdout(&["logs", "lab1-web"]).unwrap_or_default();
                g.check(
                    logs.contains("hello from lab 1"),
                    "the container's greeting is in its logs",
                );
                let visit = exec("lab1-web", "web", &["cat", "/tmp/visit"]).unwrap_or_default();
                g.check(
                    visit.contains("I was here in lab1-web"),
                    "/tmp/visit in the container names its hostname",
                );
            }
        }
        2 | 7 => {
            if running(&mut g, "lab2-pair") {
                if n == 2 {
                    let handed = exec("lab2-pair", "first", &["cat", "/dev/shm/second-net"])
                        .unwrap_or_default();
                    let own = probe("lab2-pair", "first", &["ns"]);
                    g.check(
                        !handed.trim().is_empty() && own["net"].as_str() == Some(handed.trim()),
                        format!("/dev/shm/second-net holds second's net namespace, equal to first's ({})", own["net"]),
                    );
                    let second = probe("lab2-pair", "second", &["ns"]);
                    g.check(
                        own["mnt"] != second["mnt"] && own["pid"] != second["pid"],
                        "mnt and pid namespaces differ",
                    );
                } else {
                    let mine = probe("lab2-pair", "first", &["read-file", "/tmp/mine"]);
                    g.check(mine["data"] == "only-in-first", "first holds /tmp/mine");
                    let theirs = probe("lab2-pair", "second", &["read-file", "/tmp/mine"]);
                    g.check(
                        theirs["error"] == "ENOENT",
                        "second does not see first's /tmp/mine",
                    );
                }
            }
        }
        3 => {
            if running(&mut g, "lab3-sidecar") & running(&mut g, "lab3-other") {
                let args = [
                    "connect",
                    "--proto",
                    "tcp",
                    "--addr",
                    "127.0.0.1",
                    "--port",
                    "5000",
                ];
                let ok = probe("lab3-sidecar", "sidecar", &args);
                g.check(
                    ok["data"] == "from-app",
                    "the sidecar reaches the app on 127.0.0.1:5000",
                );
                let refused = probe("lab3-other", "client", &args);
                g.check(
                    refused["error"] == "ECONNREFUSED",
                    "another pod's localhost is another loopback",
                );
            }
        }
        4 => {
            if running(&mut g, "lab4-ipc") {
                let h = exec("lab4-ipc", "reader", &["hostname"]).unwrap_or_default();
                g.check(
                    h.trim() == "lab4-host",
                    "the pod's hostname is spec.hostname",
                );
                let shm = probe("lab4-ipc", "reader", &["shm-read", "--key", "0x4c616234"]);
                g.check(
                    shm["data"] == "shared-by-ipc",
                    "reader attaches writer's SysV segment",
                );
                let note = probe("lab4-ipc", "reader", &["read-file", "/dev/shm/note"]);
                g.check(
                    note["data"] == "lab4-note",
                    "reader sees writer's /dev/shm/note",
                );
            }
        }
        5 => {
            if running(&mut g, "lab5-limits") {
                let small = probe("lab5-limits", "small", &["cgroup"]);
                g.check(
                    small["memory_limit_bytes"] == 64 * 1024 * 1024,
                    "small's memory limit is 64Mi",
                );
                let large = probe("lab5-limits", "large", &["cgroup"]);
                g.check(
                    large["memory_limit_bytes"] == 256 * 1024 * 1024,
                    "large's memory limit is 256Mi",
                );
                let kills = oom_kills("lab5-limits", "small");
                g.check(
                    kills >= 1,
                    format!("the OOM killer acted in small's cgroup ({kills} kills)"),
                );
                g.check(
                    oom_kills("lab5-limits", "large") == 0,
                    "large was never OOM-killed",
                );
            }
        }
        6 => {
            if !g.check(
                pod("lab6-crash").is_some() && pod("lab6-once").is_some(),
                "pods lab6-crash and lab6-once exist",
            ) {
                return Ok(g);
            }
            let restarted = within(Duration::from_secs(60), || {
                pod("lab6-crash").is_some_and(|p| {
                    p["status"]["containerStatuses"][0]["restartCount"].as_i64() >= Some(1)
                })
            });
            g.check(
                restarted,
                "lab6-crash's container was restarted (restartCount ≥ 1)",
            );
            let done = within(Duration::from_secs(20), || {
                pod("lab6-once").is_some_and(|p| p["status"]["phase"] == "Succeeded")
            });
            g.check(
                done,
                "lab6-once ended Succeeded (restartPolicy: Never, exit 0)",
            );
        }
        8 => {
            let p = pod("lab1-web");
            g.check(
                p.as_ref().is_some_and(|p| {
                    p["status"]["phase"] == "Failed" && p["status"]["reason"] == "ShimLost"
                }),
                "lab1-web was collected after its shim was killed (phase Failed, reason ShimLost)",
            );
            let uid = p
                .as_ref()
                .and_then(|p| p["metadata"]["uid"].as_str())
                .unwrap_or("none")
                .to_string();
            g.check(
                p.is_some() && !Path::new(&format!("/run/netns/podlab-{uid}")).exists(),
                "its network namespace is gone",
            );
        }
        9 => {
            if running(&mut g, "lab9-server") & running(&mut g, "lab9-client") {
                let ip =
                    |p: &str| pod(p).and_then(|p| p["status"]["podIP"].as_str().map(String::from));
                let (server, client) = (ip("lab9-server"), ip("lab9-client"));
                g.check(
                    server.is_some() && server != client,
                    "each pod has its own IP",
                );
                let logs = stdout(&["logs", "lab9-server"]).unwrap_or_default();
                let served = logs
                    .lines()
                    .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                    .find(|v| v.get("served").is_some());
                let peer = served
                    .as_ref()
                    .and_then(|v| v["peers"][0].as_str().map(String::from))
                    .unwrap_or_default();
                g.check(
                    client
                        .as_ref()
                        .is_some_and(|c| peer.starts_with(&format!("{c}:"))),
                    format!("the server was reached from the client's pod IP (peer {peer:?})"),
                );
            }
        }
        _ => bail!("there is no lab {n} (labs 1 to 9)"),
    }
    Ok(g)
}

/// The kernel's OOM-kill count of a container's memory cgroup.
fn oom_kills(pod: &str, container: &str) -> u64 {
    let state = runtime_state(pod);
    let paths = state["containers"][container]["cgroup_paths"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for entry in paths {
        let (ctrl, path) = (
            entry[0].as_str().unwrap_or(""),
            entry[1].as_str().unwrap_or(""),
        );
        let file = match ctrl {
            "memory" => Path::new(path).join("memory.oom_control"),
            "unified" => Path::new(path).join("memory.events"),
            _ => continue,
        };
        if let Ok(text) = std::fs::read_to_string(file) {
            return text
                .lines()
                .find_map(|l| {
                    l.strip_prefix("oom_kill ")
                        .and_then(|n| n.trim().parse().ok())
                })
                .unwrap_or(0);
        }
    }
    0
}

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

/// The commands of a lab: the `$ ` lines of its ```console blocks.
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

/// `cargo xtask lab check N`
pub fn check(args: &[String]) -> anyhow::Result<()> {
    let n: u32 = args
        .iter()
        .skip_while(|a| *a != "check")
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("usage: cargo xtask lab check N")?;
    let g = grade(n)?;
    println!("lab {n}:");
    g.print();
    if !g.passed() {
        bail!("lab {n} is not done yet");
    }
    println!("lab {n}: done");
    Ok(())
}

/// `cargo xtask labs`: every lab end to end in an isolated state root.
pub fn run_all(_args: &[String]) -> anyhow::Result<()> {
    if !util::is_root() {
        anyhow::bail!("the labs create pods and need root");
    }
    let podlab = fixtures::build_podlab(false)?;
    let images = fixtures::test_image_root();
    if !images.join("oci/index.json").exists() {
        fixtures::build_and_import(Some(&images.to_string_lossy()))?;
    }
    let state = util::target().join("labs/state");
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
    // The graders and the lab commands see the same isolated podlab.
    std::env::set_var("PATH", &path);
    std::env::set_var("PODLAB_ROOT", &state);
    std::env::set_var("PODLAB_DATA_ROOT", util::target().join("labs/data"));
    std::env::set_var("PODLAB_IMAGE_ROOT", &images);
    std::env::set_var("PODLAB_BACKOFF_BASE_MS", "500");
    cleanup();
    let mut failed = Vec::new();
    for (n, file) in lab_files()? {
        util::step(&format!(
            "lab {n}: {}",
            file.file_name().unwrap_or_default().to_string_lossy()
        ));
        let text = std::fs::read_to_string(&file)?;
        let result = run_lab(n, &text);
        cleanup();
        let after = grade(n)?;
        match result {
            Ok(()) if !after.passed() => {
                println!("lab {n}: passes as written and its grader fails on a clean state")
            }
            Ok(()) => failed.push(format!("lab {n}: the grader passes on a clean state")),
            Err(e) => failed.push(format!("lab {n}: {e:#}")),
        }
    }
    if !failed.is_empty() {
        bail!("labs failed:\n{}", failed.join("\n"));
    }
    println!("all labs pass as written");
    Ok(())
}

fn run_lab(n: u32, text: &str) -> anyhow::Result<()> {
    let before = grade(n)?;
    if before.passed() {
        bail!("the grader passes before the lab was done");
    }
    for cmd in commands(text) {
        println!("$ {cmd}");
        let out = Command::new("bash")
            .arg("-c")
            .arg(&cmd)
            .current_dir(util::root())
            .output()?;
        print!("{}", String::from_utf8_lossy(&out.stdout));
        if !out.status.success() {
            bail!(
                "`{cmd}` failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let g = grade(n)?;
    g.print();
    if !g.passed() {
        bail!("the grader does not pass after the lab's steps");
    }
    Ok(())
}

/// Deletes every pod of the labs' state root and collects what is left.
fn cleanup() {
    if let Some(names) = stdout(&["get", "pods", "-o", "name"]) {
        for n in names.lines().filter_map(|l| l.strip_prefix("pod/")) {
            let _ = podlab(&["delete", "pod", n, "--grace-period", "0"]);
        }
    }
    let _ = podlab(&["gc"]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_come_from_console_blocks_only() {
        let md =
            "text\n```console\n$ podlab get pods\nNAME\n$ echo hi\n```\n```sh\n$ not this\n```\n";
        assert_eq!(commands(md), ["podlab get pods", "echo hi"]);
    }

    #[test]
    fn every_lab_has_commands() {
        for (n, file) in lab_files().unwrap() {
            let text = std::fs::read_to_string(&file).unwrap();
            assert!(!commands(&text).is_empty(), "lab {n} has no commands");
            assert!(
                text.contains(&format!("cargo xtask lab check {n}")),
                "lab {n} does not name its grader"
            );
        }
        assert!(lab_files().unwrap().len() >= 8);
    }
}
