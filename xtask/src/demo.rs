//! `cargo xtask demo`: the newcomer's tour. Builds podlab, runs the demo pod
//! (two containers) and shows, command by command with real outputs, what
//! the containers of a pod share and what each keeps to itself. Every claim
//! is checked: the demo fails loudly if the runtime does not hold it.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure};

use crate::{doctor, fixtures, util};

struct Demo {
    podlab: PathBuf,
    root: PathBuf,
    data: PathBuf,
}

impl Demo {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.podlab);
        c.arg("--root")
            .arg(&self.root)
            .arg("--data-root")
            .arg(&self.data)
            .args(args);
        c
    }

    /// Prints the command as a user would type it, runs it, prints its output.
    fn show(&self, args: &[&str]) -> anyhow::Result<String> {
        println!(
            "\n$ podlab {}",
            args.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ")
        );
        let out = self.cmd(args).output()?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        print!("{stdout}");
        eprint!("{}", String::from_utf8_lossy(&out.stderr));
        if !out.status.success() {
            bail!("podlab {} failed: {}", args.join(" "), out.status);
        }
        Ok(stdout)
    }

    fn exec(&self, container: &str, command: &[&str]) -> anyhow::Result<String> {
        let mut args = vec!["exec", "demo", "-c", container, "--"];
        args.extend_from_slice(command);
        self.show(&args)
    }
}

fn quote(s: &str) -> String {
    if s.chars()
        .any(|c| c.is_whitespace() || "'\"$&|;<>".contains(c))
    {
        format!("'{}'", s.replace('\'', "'\\''"))
    } else {
        s.to_string()
    }
}

fn say(text: &str) {
    use std::io::IsTerminal;
    let line = format!("# {text}");
    println!(
        "\n{}",
        util::styled(&line, "1;36", std::io::stdout().is_terminal())
    );
}

pub fn run(_args: &[String]) -> anyhow::Result<()> {
    ensure!(
        util::is_root(),
        "the demo creates namespaces, cgroups and mounts: run it as root"
    );
    // Only what pods need: the comparisons come with `test` and `bench`.
    doctor::install(&[doctor::Need::Pods])?;
    let podlab = fixtures::build_podlab(true)?;
    fixtures::build_and_import(None)?;
    let demo = Demo {
        podlab,
        root: util::target().join("demo-state"),
        data: util::target().join("demo-data"),
    };
    let manifest = util::root().join("fixtures/pods/demo.yaml");
    // A demo pod left by an interrupted run would make apply say "unchanged".
    let _ = demo
        .cmd(&[
            "delete",
            "pod",
            "demo",
            "--ignore-not-found",
            "--grace-period",
            "0",
        ])
        .output();
    let result = tour(&demo, &manifest);
    say("Deleting the pod releases its namespaces, cgroups, mounts and processes");
    let deleted = demo.show(&["delete", "pod", "demo"]);
    result.and(deleted.map(|_| ()))
}

fn tour(d: &Demo, manifest: &Path) -> anyhow::Result<()> {
    say("Apply the pod: it is stored Pending, its shim builds the sandbox, then it runs");
    d.show(&[
        "apply",
        "-f",
        &manifest.to_string_lossy(),
        "--wait-ready=60s",
    ])?;
    d.show(&["get", "pods", "-o", "wide"])?;

    say("Both containers are in the pause's network, UTS and IPC namespaces; mnt and pid are their own");
    // busybox readlink takes one path, so loop in the container's shell.
    let ns = [
        "sh",
        "-c",
        "for n in net uts ipc mnt pid; do readlink /proc/self/ns/$n; done",
    ];
    let a: Vec<String> = d.exec("app", &ns)?.lines().map(String::from).collect();
    let b: Vec<String> = d.exec("sidecar", &ns)?.lines().map(String::from).collect();
    ensure!(
        a.len() == 5 && b.len() == 5,
        "readlink printed {a:?} / {b:?}"
    );
    for i in 0..3 {
        ensure!(a[i] == b[i], "not shared: {} vs {}", a[i], b[i]);
    }
    for i in 3..5 {
        ensure!(a[i] != b[i], "should differ: {} vs {}", a[i], b[i]);
    }

    say("One network stack: the same interfaces and addresses in both");
    let ia = d.exec("app", &["ip", "-o", "addr"])?;
    let ib = d.exec("sidecar", &["ip", "-o", "addr"])?;
    ensure!(ia == ib && ia.contains("127.0.0.1"), "interfaces differ");

    say("One hostname: the pod's name");
    let ha = d.exec("app", &["hostname"])?;
    let hb = d.exec("sidecar", &["hostname"])?;
    ensure!(
        ha.trim() == "demo" && hb.trim() == "demo",
        "hostnames {ha:?} {hb:?}"
    );

    say("Localhost between containers: sidecar fetches app's page from 127.0.0.1:8080");
    let page = d.exec(
        "sidecar",
        &["wget", "-qO-", "http://127.0.0.1:8080/index.html"],
    )?;
    ensure!(page.contains("hello from app"), "page {page:?}");

    say("/dev/shm is one tmpfs for the pod: written in app, read in sidecar");
    d.exec(
        "app",
        &["sh", "-c", "echo shared-by-the-pod > /dev/shm/token"],
    )?;
    let token = d.exec("sidecar", &["cat", "/dev/shm/token"])?;
    ensure!(token.trim() == "shared-by-the-pod", "shm {token:?}");

    say("Filesystems are per container: app's /tmp/index.html does not exist in sidecar");
    let own = d.exec(
        "sidecar",
        &["sh", "-c", "ls /tmp/index.html 2>&1 || echo 'not here'"],
    )?;
    ensure!(own.contains("not here"), "sidecar sees app's /tmp: {own:?}");

    say("Each container has its own cgroup and memory limit (64Mi and 256Mi)");
    // cgroup v1 names the file memory.limit_in_bytes, v2 memory.max.
    let limit = ["sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max"];
    let ma = d.exec("app", &limit)?;
    let mb = d.exec("sidecar", &limit)?;
    ensure!(
        ma.trim() == "67108864" && mb.trim() == "268435456",
        "limits {ma:?} {mb:?}"
    );
    d.exec("app", &["cat", "/proc/self/cgroup"])?;

    say("top reads each container's use from its own cgroup");
    let top = d.show(&["top", "pod", "demo", "--containers"])?;
    ensure!(
        top.contains(" app ") && top.contains(" sidecar "),
        "top lists both containers: {top:?}"
    );

    say("describe shows the namespaces, cgroups and events");
    d.show(&["describe", "pod", "demo"])?;

    say("The same pod as a diagram (Mermaid): processes, the namespaces each holds or joins, cgroups, veth, bridge");
    let diagram = d.show(&["describe", "pod", "demo", "-o", "mermaid"])?;
    ensure!(
        diagram.starts_with("flowchart") && diagram.contains(" joins"),
        "no diagram: {diagram:?}"
    );
    Ok(())
}
