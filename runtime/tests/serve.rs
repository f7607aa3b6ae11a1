//! `podlab serve` driven by the real kubectl (issue 17): each test starts a
//! server on a free loopback port with its own state root and points
//! kubectl at the kubeconfig it writes.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{spawnable, Podlab, BUSYBOX};

/// kubectl from $KUBECTL or PATH; a missing one is an error, not a skip.
fn kubectl_path() -> PathBuf {
    if let Some(p) = std::env::var_os("KUBECTL") {
        return PathBuf::from(p);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join("kubectl"))
        .find(|p| p.is_file())
        .expect("kubectl is not on PATH (nor in $KUBECTL): the serve tests drive the real kubectl; `cargo xtask doctor` says how to get it")
}

/// A running `podlab serve`, stopped on drop.
struct Server {
    child: Child,
    kubeconfig: PathBuf,
}

impl Server {
    fn start(p: &Podlab) -> Server {
        let kubeconfig = p.root.path().join("kubeconfig-test");
        let mut child = spawnable(p)
            .args(["serve", "--address", "127.0.0.1:0", "--kubeconfig-out"])
            .arg(&kubeconfig)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start podlab serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut server = Server { child, kubeconfig };
        // The export line comes once it listens and the kubeconfig is written.
        loop {
            match lines.next() {
                Some(Ok(l)) if l.starts_with("export KUBECONFIG=") => {
                    assert_eq!(
                        l,
                        format!("export KUBECONFIG={}", server.kubeconfig.display())
                    );
                    break;
                }
                Some(Ok(_)) => continue,
                _ => {
                    let status = server.child.wait().ok();
                    panic!("podlab serve exited before listening: {status:?}");
                }
            }
        }
        std::thread::spawn(move || for _ in lines {});
        server
    }

    fn kubectl(&self) -> Command {
        let mut c = Command::new(kubectl_path());
        c.env("KUBECONFIG", &self.kubeconfig)
            .env_remove("KUBERNETES_SERVICE_HOST");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.kubectl().args(args).output().expect("run kubectl")
    }

    /// kubectl that must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write manifest");
    path
}

fn pod_manifest(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels:\n    app: web\nspec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: {BUSYBOX}\n    command: [sh, -c, 'echo hello from {name}; exec sleep 600']\n"
    )
}

#[test]
fn kubectl_runs_a_pod_through_podlab_serve() {
    require_root!();
    let p = Podlab::new();
    let server = Server::start(&p);
    let name = common::unique("kc");
    let file = write(p.root.path(), "pod.yaml", &pod_manifest(&name));
    let file = file.to_str().expect("utf-8 path");

    let nodes = server.ok(&["get", "nodes"]);
    assert!(
        nodes.contains("Ready") && nodes.contains("VERSION"),
        "{nodes}"
    );

    // `get -w` from before the pod exists until it is Running.
    let mut watcher = server
        .kubectl()
        .args(["get", "pods", "-w", "--no-headers"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("kubectl get -w");
    let watched = watcher.stdout.take().expect("stdout");
    let (seen_tx, seen_rx) = std::sync::mpsc::channel();
    let wanted = name.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(watched).lines().map_while(Result::ok) {
            if line.contains(&wanted) && line.contains("Running") {
                let _ = seen_tx.send(line);
                return;
            }
        }
    });

    let applied = server.ok(&["apply", "-f", file]);
    assert_eq!(applied.trim(), format!("pod/{name} created"));
    let again = server.ok(&["apply", "-f", file]);
    assert_eq!(again.trim(), format!("pod/{name} unchanged"));

    let running = seen_rx.recv_timeout(Duration::from_secs(60));
    let _ = watcher.kill();
    let _ = watcher.wait();
    let running = running.expect("kubectl get -w never showed the pod Running");
    assert!(running.contains("1/1"), "{running}");

    // The CLI sees the pod kubectl made.
    let cli = p.run(&["get", "pod", &name]);
    assert!(String::from_utf8_lossy(&cli.stdout).contains("Running"));

    let table = server.ok(&["get", "pods"]);
    assert!(table.starts_with("NAME"), "{table}");
    assert!(
        table.contains(&name) && table.contains("Running"),
        "{table}"
    );
    let wide = server.ok(&["get", "pods", "-o", "wide", "-l", "app=web"]);
    assert!(
        wide.contains("IP") && wide.contains("NODE") && wide.contains(&name),
        "{wide}"
    );
    let none = server.ok(&["get", "pods", "-l", "app=other"]);
    assert!(!none.contains(&name), "{none}");
    let json: serde_json::Value =
        serde_json::from_str(&server.ok(&["get", "pod", &name, "-o", "json"])).expect("json");
    assert_eq!(json["metadata"]["name"], name.as_str());
    assert_eq!(json["status"]["phase"], "Running");
    assert!(json["status"]["podIP"].is_string(), "{json}");

    let logs = common::eventually(Duration::from_secs(10), || {
        let l = server.ok(&["logs", &name]);
        l.contains("hello from").then_some(l)
    });
    assert_eq!(
        logs.as_deref().map(str::trim),
        Some(format!("hello from {name}").as_str())
    );

    // exec over WebSocket: output, the exit code, stdin.
    let exec = server.run(&[
        "exec",
        &name,
        "-c",
        "main",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]);
    assert_eq!(exec.status.code(), Some(3), "{exec:?}");
    assert_eq!(String::from_utf8_lossy(&exec.stdout), "out\n");
    assert!(String::from_utf8_lossy(&exec.stderr).contains("err\n"));
    let mut cat = server
        .kubectl()
        .args(["exec", "-i", &name, "--", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("kubectl exec -i");
    {
        use std::io::Write;
        let mut stdin = cat.stdin.take().expect("stdin");
        stdin.write_all(b"through stdin\n").expect("write stdin");
    }
    let cat = cat.wait_with_output().expect("kubectl exec -i");
    assert!(cat.status.success());
    assert_eq!(String::from_utf8_lossy(&cat.stdout), "through stdin\n");

    let waited = server.ok(&[
        "wait",
        "--for=condition=Ready",
        &format!("pod/{name}"),
        "--timeout=30s",
    ]);
    assert_eq!(waited.trim(), format!("pod/{name} condition met"));
    let described = server.ok(&["describe", "pod", &name]);
    assert!(
        described.contains("Events:") && described.contains("Started"),
        "{described}"
    );
    let stamped = server.ok(&["logs", &name, "-c", "main", "--tail=1", "--timestamps"]);
    assert!(
        stamped
            .trim_end()
            .ends_with(&format!("Z hello from {name}")),
        "{stamped}"
    );

    // A second create of the same pod is a conflict.
    let dup = server.run(&["create", "-f", file]);
    assert!(!dup.status.success());
    assert!(String::from_utf8_lossy(&dup.stderr).contains("AlreadyExists"));

    let events = server.ok(&["get", "events"]);
    assert!(
        events.contains("Scheduled") && events.contains(&name),
        "{events}"
    );

    // Delete waits until the pod is gone.
    let start = Instant::now();
    let deleted = server.ok(&["delete", "pod", &name]);
    assert_eq!(deleted.trim(), format!("pod \"{name}\" deleted"));
    assert!(start.elapsed() < Duration::from_secs(40));
    let gone = p.run(&["get", "pod", &name]);
    assert!(
        !gone.status.success(),
        "the pod is still there after kubectl delete"
    );

    // The pod's shim was the server's child: reaped, not left a zombie.
    let server_pid = server.child.id().to_string();
    let zombies = || -> Vec<String> {
        std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter(|pid| {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
                let rest: Vec<&str> = stat
                    .rsplit_once(')')
                    .map(|(_, r)| r.split_whitespace().take(2).collect())
                    .unwrap_or_default();
                rest == ["Z", server_pid.as_str()]
            })
            .collect()
    };
    assert!(
        common::eventually(Duration::from_secs(10), || zombies()
            .is_empty()
            .then_some(()))
        .is_some(),
        "zombie children of podlab serve: {:?}",
        zombies()
    );
}

#[test]
fn the_cli_and_kubectl_share_pods_and_bad_input_gets_api_errors() {
    require_root!();
    let p = Podlab::new();
    let server = Server::start(&p);
    let name = common::unique("cli");
    let _guard = p.pod(&name, &pod_manifest(&name));
    let listed = server.ok(&["get", "pods", "-o", "name"]);
    assert!(listed.contains(&format!("pod/{name}")), "{listed}");

    let bad = write(
        p.root.path(),
        "bad.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: bad\nspec:\n  containers:\n  - name: main\n",
    );
    let out = server.run(&["apply", "-f", bad.to_str().expect("utf-8")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("is invalid") && err.contains("spec.containers[0].image"),
        "{err}"
    );

    let missing = server.run(&["get", "pod", "nope"]);
    assert!(String::from_utf8_lossy(&missing.stderr).contains("NotFound"));
}

#[test]
fn requests_without_a_client_certificate_get_401() {
    require_root!();
    let p = Podlab::new();
    let server = Server::start(&p);
    let text = std::fs::read_to_string(&server.kubeconfig).expect("kubeconfig");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&server.kubeconfig)
            .expect("stat")
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let anonymous: String = text
        .lines()
        .filter(|l| !l.contains("client-certificate-data") && !l.contains("client-key-data"))
        .map(|l| format!("{l}\n"))
        .collect();
    let path = write(p.root.path(), "anonymous", &anonymous);
    let out = Command::new(kubectl_path())
        .env("KUBECONFIG", &path)
        // A credential the server does not take (without any, kubectl
        // would ask for a user name on stdin).
        .args(["get", "pods", "--token=not-a-credential"])
        .stdin(Stdio::null())
        .output()
        .expect("kubectl");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("You must be logged in to the server"), "{err}");
}
