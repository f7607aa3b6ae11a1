//! `podlab serve` driven by the real kubectl (issue 17): each test starts a
//! server on a free loopback port with its own state root and points
//! kubectl at the kubeconfig it writes.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::serve::{kubectl_path, write, Server};
use common::{Podlab, BUSYBOX, PROBE};

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

/// Deletes every pod of the state root when dropped, so a failed test
/// leaves nothing running (kubectl made them: no CLI guard holds them).
struct DeleteAllPods<'a>(&'a Podlab);

impl Drop for DeleteAllPods<'_> {
    fn drop(&mut self) {
        let out = self.0.run(&["get", "pods", "-A", "-o", "json"]);
        let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        for pod in list["items"].as_array().into_iter().flatten() {
            let meta = &pod["metadata"];
            let (Some(ns), Some(name)) = (meta["namespace"].as_str(), meta["name"].as_str()) else {
                continue;
            };
            let _ = self
                .0
                .run(&["delete", "pod", name, "-n", ns, "--grace-period", "0"]);
        }
    }
}

/// A pod's JSON through kubectl.
fn pod_json(server: &Server, ns: &str, name: &str) -> serde_json::Value {
    serde_json::from_str(&server.ok(&["get", "pod", name, "-n", ns, "-o", "json"]))
        .expect("pod json")
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn labeled_manifest(name: &str, ns: &str, labels: &str, image: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {ns}\n  labels:\n{labels}spec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: {image}\n    command: [sleep, '600']\n"
    )
}

#[test]
fn kubectl_updates_pods_watches_from_versions_and_manages_namespaces() {
    require_root!();
    let p = Podlab::new();
    let _cleanup = DeleteAllPods(&p);
    // A small ring of changes kept for watches, so a watch from an early
    // version expires here.
    let server = Server::start_with(&p, &[("PODLAB_WATCH_RING", "16")]);
    let ns = common::unique("team");
    let name = common::unique("upd");
    let doomed = common::unique("dl");

    // Namespaces: made through the API; a pod in a missing one is refused.
    assert_eq!(
        server.ok(&["create", "namespace", &ns]).trim(),
        format!("namespace/{ns} created")
    );
    assert!(server.ok(&["get", "namespaces"]).contains(&ns));
    let missing = common::unique("nope");
    let file = write(
        p.root.path(),
        "missing.yaml",
        &labeled_manifest(&name, &missing, "    app: web\n", BUSYBOX),
    );
    let out = server.run(&["apply", "-f", file.to_str().expect("utf-8")]);
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains(&format!("namespaces \"{missing}\" not found")),
        "{}",
        stderr_of(&out)
    );

    // Watch the namespace with the event types shown.
    let mut watcher = server
        .kubectl()
        .args([
            "get",
            "pods",
            "-n",
            &ns,
            "-w",
            "--output-watch-events",
            "--no-headers",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("kubectl get -w");
    let watched = watcher.stdout.take().expect("stdout");
    let (lines_tx, lines_rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(watched).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });

    let v1 = write(
        p.root.path(),
        "v1.yaml",
        &labeled_manifest(&name, &ns, "    app: web\n", BUSYBOX),
    );
    let v1 = v1.to_str().expect("utf-8");
    // With the pod's labels in a downwardAPI volume.
    let other = write(
        p.root.path(),
        "doomed.yaml",
        &format!(
            "{}    volumeMounts:\n    - name: info\n      mountPath: /etc/podinfo\n  volumes:\n  - name: info\n    downwardAPI:\n      items:\n      - path: labels\n        fieldRef:\n          fieldPath: metadata.labels\n",
            labeled_manifest(&doomed, "default", "    app: dl\n", BUSYBOX)
        ),
    );
    assert_eq!(
        server.ok(&["apply", "-f", v1]).trim(),
        format!("pod/{name} created")
    );
    server.ok(&["apply", "-f", other.to_str().expect("utf-8")]);
    for (n, pod) in [(ns.as_str(), name.as_str()), ("default", doomed.as_str())] {
        server.ok(&[
            "wait",
            "--for=condition=Ready",
            &format!("pod/{pod}"),
            "-n",
            n,
            "--timeout=60s",
        ]);
    }
    let first = pod_json(&server, &ns, &name);
    let stale_rv = first["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .to_string();

    // A second apply with other labels patches the pod.
    let v2 = write(
        p.root.path(),
        "v2.yaml",
        &labeled_manifest(&name, &ns, "    app: web2\n    tier: front\n", BUSYBOX),
    );
    assert_eq!(
        server
            .ok(&["apply", "-f", v2.to_str().expect("utf-8")])
            .trim(),
        format!("pod/{name} configured")
    );
    let before_label = pod_json(&server, &ns, &name)["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .to_string();
    assert_eq!(
        server
            .ok(&["label", "pod", &name, "-n", &ns, "color=blue"])
            .trim(),
        format!("pod/{name} labeled")
    );
    assert_eq!(
        server
            .ok(&["annotate", "pod", &name, "-n", &ns, "note=hello"])
            .trim(),
        format!("pod/{name} annotated")
    );
    let labeled = pod_json(&server, &ns, &name);
    assert_eq!(labeled["metadata"]["labels"]["app"], "web2");
    assert_eq!(labeled["metadata"]["labels"]["tier"], "front");
    assert_eq!(labeled["metadata"]["labels"]["color"], "blue");
    assert_eq!(labeled["metadata"]["annotations"]["note"], "hello");
    // Selectors see the new labels, list and watch alike.
    let selected = server.ok(&["get", "pods", "-n", &ns, "-l", "color=blue", "-o", "name"]);
    assert_eq!(selected.trim(), format!("pod/{name}"));
    let by_field = server.ok(&[
        "get",
        "pods",
        "-A",
        "--field-selector",
        &format!("metadata.name={name},status.phase=Running"),
        "-o",
        "name",
    ]);
    assert_eq!(by_field.trim(), format!("pod/{name}"));
    // A watch from a version replays what changed after it.
    let replay = server.ok(&[
        "get",
        "--raw",
        &format!("/api/v1/namespaces/{ns}/pods?watch=true&resourceVersion={before_label}&labelSelector=color%3Dblue&timeoutSeconds=1"),
    ]);
    let first_event: serde_json::Value =
        serde_json::from_str(replay.lines().next().expect("an event")).expect("event json");
    assert_eq!(first_event["type"], "ADDED", "{replay}");
    assert_eq!(first_event["object"]["metadata"]["labels"]["color"], "blue");
    // Bookmarks, after the initial events when asked for.
    let bookmarked = server.ok(&[
        "get",
        "--raw",
        &format!("/api/v1/namespaces/{ns}/pods?watch=true&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan&timeoutSeconds=1"),
    ]);
    let kinds: Vec<String> = bookmarked
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|e| e["type"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        kinds.first().map(String::as_str),
        Some("ADDED"),
        "{bookmarked}"
    );
    assert!(
        bookmarked.contains("k8s.io/initial-events-end"),
        "{bookmarked}"
    );

    // A new image: the container is killed and started with it.
    let image_before = labeled["status"]["containerStatuses"][0]["imageID"].clone();
    assert_eq!(
        server
            .ok(&[
                "set",
                "image",
                &format!("pod/{name}"),
                "-n",
                &ns,
                &format!("main={PROBE}")
            ])
            .trim(),
        format!("pod/{name} image updated")
    );
    let restarted = common::eventually(Duration::from_secs(30), || {
        let pod = pod_json(&server, &ns, &name);
        let c = &pod["status"]["containerStatuses"][0];
        (c["restartCount"] == 1 && c["state"]["running"].is_object() && c["image"] == PROBE)
            .then_some(pod)
    })
    .expect("the container never restarted with the new image");
    let c = &restarted["status"]["containerStatuses"][0];
    assert_ne!(c["imageID"], image_before, "{c}");
    assert_eq!(restarted["spec"]["containers"][0]["image"], PROBE);
    let described = server.ok(&["describe", "pod", &name, "-n", &ns]);
    assert!(
        described.contains("definition changed, will be restarted"),
        "{described}"
    );

    // An update from a stale version is a conflict.
    let mut stale = pod_json(&server, &ns, &name);
    stale["metadata"]["resourceVersion"] = serde_json::json!(stale_rv);
    stale["metadata"]["labels"]["color"] = serde_json::json!("red");
    let stale_file = write(p.root.path(), "stale.json", &stale.to_string());
    let out = server.run(&["replace", "-f", stale_file.to_str().expect("utf-8")]);
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("Conflict")
            && stderr_of(&out).contains("the object has been modified; please apply your changes to the latest version and try again"),
        "{}",
        stderr_of(&out)
    );
    // A current one goes through.
    let mut fresh = pod_json(&server, &ns, &name);
    fresh["metadata"]["labels"]["color"] = serde_json::json!("green");
    let fresh_file = write(p.root.path(), "fresh.json", &fresh.to_string());
    assert_eq!(
        server
            .ok(&["replace", "-f", fresh_file.to_str().expect("utf-8")])
            .trim(),
        format!("pod/{name} replaced")
    );

    // What Kubernetes does not let change is refused in its words.
    let out = server.run(&[
        "patch",
        "pod",
        &name,
        "-n",
        &ns,
        "-p",
        r#"{"spec":{"containers":[{"name":"main","command":["sleep","1"]}]}}"#,
    ]);
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("is invalid: spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`"),
        "{}",
        stderr_of(&out)
    );
    let out = server.run(&[
        "patch",
        "pod",
        &name,
        "-n",
        &ns,
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"phase":"Failed"}}"#,
    ]);
    assert!(
        !out.status.success() && stderr_of(&out).contains("Forbidden"),
        "{}",
        stderr_of(&out)
    );

    // New labels reach the downwardAPI volume of a running pod.
    server.ok(&["label", "pod", &doomed, "extra=yes"]);
    let seen = common::eventually(Duration::from_secs(10), || {
        let out = server.ok(&["exec", &doomed, "--", "cat", "/etc/podinfo/labels"]);
        out.contains("extra=\"yes\"").then_some(out)
    });
    assert!(seen.is_some(), "the downwardAPI volume kept the old labels");

    // A deadline set through a JSON patch reaches the pod's shim.
    server.ok(&[
        "patch",
        "pod",
        &doomed,
        "--type=json",
        "-p",
        r#"[{"op":"add","path":"/spec/activeDeadlineSeconds","value":1}]"#,
    ]);
    let failed = common::eventually(Duration::from_secs(30), || {
        let pod = pod_json(&server, "default", &doomed);
        (pod["status"]["reason"] == "DeadlineExceeded").then_some(pod)
    });
    assert!(
        failed.is_some(),
        "the shortened deadline never failed the pod"
    );
    let out = server.run(&[
        "patch",
        "pod",
        &doomed,
        "--type=merge",
        "-p",
        r#"{"spec":{"activeDeadlineSeconds":100}}"#,
    ]);
    assert!(
        stderr_of(&out).contains("spec.activeDeadlineSeconds"),
        "{}",
        stderr_of(&out)
    );
    server.ok(&["delete", "pod", &doomed, "--wait=false"]);

    // Deleting the namespace deletes its pod, Terminating meanwhile.
    let deleted = server.ok(&["delete", "namespace", &ns, "--wait=false"]);
    assert_eq!(deleted.trim(), format!("namespace \"{ns}\" deleted"));
    let phase = server.run(&["get", "namespace", &ns, "-o", "jsonpath={.status.phase}"]);
    assert!(
        !phase.status.success() || String::from_utf8_lossy(&phase.stdout) == "Terminating",
        "{phase:?}"
    );
    server.ok(&[
        "wait",
        "--for=delete",
        &format!("namespace/{ns}"),
        "--timeout=60s",
    ]);
    assert!(!server
        .run(&["get", "pod", &name, "-n", &ns])
        .status
        .success());

    let mut events = Vec::new();
    let end = Instant::now() + Duration::from_secs(10);
    while !events.iter().any(|l: &String| l.starts_with("DELETED")) && Instant::now() < end {
        if let Ok(l) = lines_rx.recv_timeout(Duration::from_millis(200)) {
            events.push(l);
        }
    }
    let _ = watcher.kill();
    let _ = watcher.wait();
    let kinds: Vec<&str> = events
        .iter()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(kinds.first(), Some(&"ADDED"), "{events:?}");
    assert!(kinds.contains(&"MODIFIED"), "{events:?}");
    assert_eq!(kinds.last(), Some(&"DELETED"), "{events:?}");

    // A watch from a version older than the kept history: 410 Expired.
    let expired = server.ok(&[
        "get",
        "--raw",
        "/api/v1/pods?watch=true&resourceVersion=1&timeoutSeconds=5",
    ]);
    let event: serde_json::Value =
        serde_json::from_str(expired.lines().next().expect("an event")).expect("json");
    assert_eq!(event["type"], "ERROR", "{expired}");
    assert_eq!(event["object"]["code"], 410);
    assert_eq!(event["object"]["reason"], "Expired");

    // Bodies past the limit are refused before they are read whole.
    let big = write(
        p.root.path(),
        "big.json",
        &format!("{{\"kind\":\"Pod\",\"x\":\"{}\"}}", "a".repeat(4 << 20)),
    );
    let out = server.run(&[
        "create",
        "--raw",
        "/api/v1/namespaces/default/pods",
        "-f",
        big.to_str().expect("utf-8"),
    ]);
    assert!(!out.status.success());
    assert!(
        stderr_of(&out).contains("larger than"),
        "{}",
        stderr_of(&out)
    );
    let _ = server.run(&[
        "wait",
        "--for=delete",
        &format!("pod/{doomed}"),
        "--timeout=30s",
    ]);
}

#[test]
fn kubectl_creates_lists_applies_and_deletes_secrets() {
    require_root!();
    let p = Podlab::new();
    let server = Server::start(&p);
    let created = server.ok(&[
        "create",
        "secret",
        "docker-registry",
        "regcred",
        "--docker-server=registry.example.com:5000",
        "--docker-username=student",
        "--docker-password=hunter2",
        "--docker-email=student@example.com",
    ]);
    assert_eq!(created.trim(), "secret/regcred created");
    let table = server.ok(&["get", "secrets"]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].split_whitespace().collect::<Vec<_>>() == ["NAME", "TYPE", "DATA", "AGE"],
        "{table}"
    );
    assert!(
        lines[1].split_whitespace().take(3).collect::<Vec<_>>()
            == ["regcred", "kubernetes.io/dockerconfigjson", "1"],
        "{table}"
    );
    // The CLI reads the same record; the login is the one kubectl made.
    let json = p.run(&["get", "secret", "regcred", "-o", "json"]);
    let secret: serde_json::Value = serde_json::from_slice(&json.stdout).expect("secret json");
    use base64::Engine;
    let config = base64::engine::general_purpose::STANDARD
        .decode(secret["data"][".dockerconfigjson"].as_str().expect("data"))
        .expect("base64");
    let config: serde_json::Value = serde_json::from_slice(&config).expect("docker config");
    assert_eq!(
        config["auths"]["registry.example.com:5000"]["username"],
        "student"
    );
    let again = server.run(&[
        "create",
        "secret",
        "docker-registry",
        "regcred",
        "--docker-username=a",
        "--docker-password=b",
    ]);
    assert!(
        stderr_of(&again).contains("secrets \"regcred\" already exists"),
        "{}",
        stderr_of(&again)
    );

    let file = write(
        p.root.path(),
        "secret.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: plain\nstringData:\n  token: abc\n",
    );
    let applied = server.ok(&["apply", "-f", file.to_str().expect("utf-8")]);
    assert_eq!(applied.trim(), "secret/plain created");
    std::fs::write(
        &file,
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: plain\nstringData:\n  token: abc\n  user: me\n",
    )
    .expect("secret.yaml");
    let changed = server.ok(&["apply", "-f", file.to_str().expect("utf-8")]);
    assert_eq!(changed.trim(), "secret/plain configured");
    let plain = server.ok(&["get", "secret", "plain", "-o", "jsonpath={.data.user}"]);
    assert_eq!(plain.trim(), "bWU=");
    let bad = write(
        p.root.path(),
        "bad-secret.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: broken\ntype: kubernetes.io/dockerconfigjson\nstringData:\n  other: x\n",
    );
    let out = server.run(&["apply", "-f", bad.to_str().expect("utf-8")]);
    let err = stderr_of(&out);
    assert!(
        !out.status.success() && err.contains("data[.dockerconfigjson]: Required value"),
        "{err}"
    );
    let deleted = server.ok(&["delete", "secret", "regcred"]);
    assert_eq!(deleted.trim(), "secret \"regcred\" deleted");
    let names = server.ok(&["get", "secrets", "-o", "name"]);
    assert_eq!(names.trim(), "secret/plain");
    assert!(!table.contains("hunter2") && !names.contains("hunter2"));
}

/// Lines of a running `kubectl ... -w`, on a channel.
fn watch_lines(
    server: &Server,
    args: &[&str],
) -> (std::process::Child, std::sync::mpsc::Receiver<String>) {
    let mut child = server
        .kubectl()
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("kubectl -w");
    let out = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    (child, rx)
}

/// Collects lines until `done` holds for what was seen, or the deadline.
fn lines_until(
    rx: &std::sync::mpsc::Receiver<String>,
    within: Duration,
    done: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    let end = Instant::now() + within;
    let mut seen = Vec::new();
    while !done(&seen) && Instant::now() < end {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(200)) {
            seen.push(l);
        }
    }
    seen
}

#[test]
fn kubectl_watches_events_and_nodes() {
    require_root!();
    let p = Podlab::new();
    let _cleanup = DeleteAllPods(&p);
    let server = Server::start(&p);
    let name = common::unique("ev");
    let file = write(p.root.path(), "pod.yaml", &pod_manifest(&name));

    // The node: ADDED once, as `get nodes -w` shows it.
    let (mut nodes, node_rx) =
        watch_lines(&server, &["get", "nodes", "-w", "--output-watch-events"]);
    let node_lines = lines_until(&node_rx, Duration::from_secs(30), |l| {
        l.iter()
            .any(|l| l.starts_with("ADDED") && l.contains("Ready"))
    });
    let _ = nodes.kill();
    let _ = nodes.wait();
    assert!(
        node_lines
            .iter()
            .any(|l| l.starts_with("ADDED") && l.contains("Ready")),
        "{node_lines:?}"
    );
    // The watch itself: the node, then the bookmark that ends the initial events.
    let raw = server.ok(&[
        "get",
        "--raw",
        "/api/v1/nodes?watch=true&sendInitialEvents=true&allowWatchBookmarks=true&timeoutSeconds=1",
    ]);
    let kinds: Vec<(String, String)> = raw
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("a watch event"))
        .map(|e| {
            (
                e["type"].as_str().unwrap_or("").to_string(),
                e["object"]["kind"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        kinds.first().map(|(t, k)| (t.as_str(), k.as_str())),
        Some(("ADDED", "Node")),
        "{raw}"
    );
    assert!(raw.contains("k8s.io/initial-events-end"), "{raw}");
    // From the node's own version: nothing new to tell.
    let rv = server.ok(&[
        "get",
        "nodes",
        "-o",
        "jsonpath={.items[0].metadata.resourceVersion}",
    ]);
    let quiet = server.ok(&[
        "get",
        "--raw",
        &format!(
            "/api/v1/nodes?watch=true&resourceVersion={}&timeoutSeconds=1",
            rv.trim()
        ),
    ]);
    assert!(quiet.trim().is_empty(), "{quiet}");

    // `get events -w` from before the pod: its events appear as they happen.
    let (mut watcher, rx) = watch_lines(&server, &["get", "events", "-w"]);
    // The watch is open once the (empty) list is printed; a pod made
    // before that is still seen, from the list.
    let listed = server.ok(&["get", "--raw", "/api/v1/namespaces/default/events"]);
    let rv: serde_json::Value = serde_json::from_str(&listed).expect("an EventList");
    let rv = rv["metadata"]["resourceVersion"]
        .as_str()
        .expect("a resourceVersion")
        .to_string();
    server.ok(&["apply", "-f", file.to_str().expect("utf-8")]);
    let reasons = ["Scheduled", "Pulled", "Created", "Started"];
    let has_all = |lines: &[String]| {
        reasons
            .iter()
            .all(|r| lines.iter().any(|l| l.contains(r) && l.contains(&name)))
    };
    let seen = lines_until(&rx, Duration::from_secs(60), has_all);
    let _ = watcher.kill();
    let _ = watcher.wait();
    assert!(has_all(&seen), "kubectl get events -w showed {seen:?}");

    // From a version, with kubectl's field selectors: the events after it,
    // only this pod's.
    let raw = server.ok(&[
        "get",
        "--raw",
        &format!(
            "/api/v1/namespaces/default/events?watch=true&resourceVersion={rv}&timeoutSeconds=1\
             &fieldSelector=involvedObject.name%3D{name},involvedObject.namespace%3Ddefault,involvedObject.kind%3DPod"
        ),
    ]);
    let events: Vec<serde_json::Value> = raw
        .lines()
        .map(|l| serde_json::from_str(l).expect("a watch event"))
        .collect();
    let replayed: Vec<&str> = events
        .iter()
        .map(|e| {
            assert_eq!(e["type"], "ADDED", "{raw}");
            assert_eq!(e["object"]["involvedObject"]["name"], name.as_str());
            e["object"]["reason"].as_str().unwrap_or("")
        })
        .collect();
    for r in reasons {
        assert!(replayed.contains(&r), "{replayed:?} lacks {r}");
    }
    let uid = pod_json(&server, "default", &name)["metadata"]["uid"].clone();
    assert!(events
        .iter()
        .all(|e| e["object"]["involvedObject"]["uid"] == uid));
    // Another pod's name selects none of them.
    let other = server.ok(&[
        "get",
        "--raw",
        &format!("/api/v1/events?watch=true&resourceVersion={rv}&timeoutSeconds=1&fieldSelector=involvedObject.name%3Dnobody"),
    ]);
    assert!(other.trim().is_empty(), "{other}");
    // Field selectors the API server refuses are refused here too.
    let bad = server.run(&["get", "events", "--field-selector", "spec.bogus=1"]);
    assert!(!bad.status.success());
}
