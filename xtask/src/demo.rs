//! `cargo xtask demo`: the newcomer's tour. Builds podlab, runs the demo pod
//! (two containers) and shows, command by command with real outputs, what
//! the containers of a pod share and what each keeps to itself. Every claim
//! is checked: the demo fails loudly if the runtime does not hold it.
//! Then the same pod once more through `podlab serve` and the real kubectl,
//! with `kubectl get pods -w` showing it go from Pending to Running.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{bail, ensure};

use crate::serve::Serve;
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

pub fn run() -> anyhow::Result<()> {
    ensure!(
        util::is_root(),
        "the demo creates namespaces, cgroups and mounts: run it as root"
    );
    // Only what pods need: the comparisons come with `test` and `bench`.
    doctor::install(&[doctor::Need::Pods])?;
    doctor::require(&[doctor::Need::Kubectl], "the demo's Kubernetes API part")?;
    let podlab = fixtures::build_podlab(true)?;
    fixtures::build_and_import(None)?;
    let demo = Demo {
        podlab,
        root: util::target().join("demo-state"),
        data: util::target().join("demo-data"),
    };
    let manifest = util::root().join("fixtures/pods/demo.yaml");
    let remove_demo_pod = || {
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
    };
    // A demo pod left by an interrupted run would make apply say "unchanged".
    remove_demo_pod();
    let result = tour(&demo, &manifest);
    say("Deleting the pod releases its namespaces, cgroups, mounts and processes");
    let deleted = demo.show(&["delete", "pod", "demo"]);
    result.and(deleted.map(|_| ()))?;
    let result = api_tour(&demo, &manifest);
    // A failure midway leaves no pod behind either.
    remove_demo_pod();
    result
}

/// Prints a kubectl command as typed, runs it, prints its output.
fn show_kubectl(serve: &Serve, args: &[&str]) -> anyhow::Result<String> {
    println!(
        "\n$ kubectl {}",
        args.iter().map(|a| quote(a)).collect::<Vec<_>>().join(" ")
    );
    let out = serve.kubectl().args(args).output()?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    print!("{stdout}");
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    ensure!(out.status.success(), "kubectl {} failed", args.join(" "));
    Ok(stdout)
}

/// The same pod through podlab's Kubernetes API: `podlab serve` on
/// loopback, the real kubectl pointed at the kubeconfig it writes.
fn api_tour(d: &Demo, manifest: &Path) -> anyhow::Result<()> {
    say(
        "podlab serve: the same store behind the Kubernetes API, for kubectl or any client library",
    );
    let kubeconfig = d.root.join("serve/kubeconfig");
    println!(
        "\n$ podlab serve --address 127.0.0.1:0 --kubeconfig-out {} &",
        kubeconfig.display()
    );
    let serve = Serve::start(d.cmd(&[]), kubeconfig)?;
    println!(
        "podlab serve is pid {}; export KUBECONFIG={}",
        serve.pid(),
        serve.kubeconfig.display()
    );
    show_kubectl(&serve, &["get", "nodes"])?;

    say("kubectl get pods -w, started before the pod exists, prints each change");
    println!("\n$ kubectl get pods -w &");
    let mut watch = serve
        .kubectl()
        .args(["get", "pods", "-w"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = watch.stdout.take();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in stdout
            .map(std::io::BufReader::new)
            .into_iter()
            .flat_map(|r| r.lines().map_while(Result::ok))
        {
            println!("[kubectl get pods -w] {line}");
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let result = (|| {
        let applied = show_kubectl(&serve, &["apply", "-f", &manifest.to_string_lossy()])?;
        ensure!(
            applied.trim() == "pod/demo created",
            "apply said {applied:?}"
        );
        // The watch's lines until the pod runs (a deadline, not a timing).
        let mut statuses = Vec::new();
        while !statuses.iter().any(|s| s == "Running") {
            let line = rx
                .recv_timeout(Duration::from_secs(60))
                .map_err(|_| anyhow::anyhow!("kubectl get -w never showed demo Running"))?;
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.first() == Some(&"demo") {
                statuses.extend(cols.get(2).map(|s| s.to_string()));
            }
        }
        ensure!(
            statuses.first().map(String::as_str) == Some("Pending"),
            "the watch did not show the pod Pending first: {statuses:?}"
        );
        show_kubectl(&serve, &["get", "pods", "-o", "wide"])?;
        let said = show_kubectl(
            &serve,
            &[
                "exec",
                "demo",
                "-c",
                "sidecar",
                "--",
                "wget",
                "-qO-",
                "http://127.0.0.1:8080/index.html",
            ],
        )?;
        ensure!(said.contains("hello from app"), "exec printed {said:?}");
        say("kubectl delete returns once the pod is gone; the watch shows it terminating");
        show_kubectl(&serve, &["delete", "pod", "demo"])?;
        let left = show_kubectl(&serve, &["get", "pods", "-o", "name"])?;
        ensure!(left.trim().is_empty(), "pods left: {left:?}");
        Ok(())
    })();
    // The watch's last lines (the pod terminating), then it and the server stop.
    while rx.recv_timeout(Duration::from_millis(500)).is_ok() {}
    let _ = watch.kill();
    let _ = watch.wait();
    println!("\n$ kill {}", serve.pid());
    drop(serve);
    result
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
