//! `podlab serve` driven by a client library, kube-rs (issue 17): what a
//! controller does, not what kubectl does. It loads the kubeconfig the
//! server wrote, creates a pod, waits for Running with kube-rs's watcher
//! (list, then watch from the list's resource version), execs over
//! WebSocket, reads logs, deletes and waits until the pod is gone.

mod common;

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams, DeleteParams, LogParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, Config};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use common::serve::Server;
use common::{Podlab, BUSYBOX};

/// Long enough for a pod on a loaded 2-core machine; a deadline, not a timing.
const DEADLINE: Duration = Duration::from_secs(60);

fn pod(name: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "kube-rs"}},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "main",
                "image": BUSYBOX,
                "command": ["sh", "-c", format!("echo hello from {name}; exec sleep 600")],
            }],
        },
    }))
    .expect("a Pod")
}

async fn client(server: &Server) -> Client {
    let kubeconfig = Kubeconfig::read_from(&server.kubeconfig).expect("read the kubeconfig");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("a client config from the kubeconfig");
    Client::try_from(config).expect("a kube-rs client")
}

#[test]
fn kube_rs_runs_execs_and_deletes_a_pod_through_podlab_serve() {
    require_root!();
    let p = Podlab::new();
    let server = Server::start(&p);
    let name = common::unique("kubers");
    // Deletes the pod even when an assertion below fails.
    let _guard = common::PodGuard {
        podlab: &p,
        name: name.clone(),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        let client = client(&server).await;
        let version = client.apiserver_version().await.expect("GET /version");
        assert_eq!(version.major, "1");
        let pods: Api<Pod> = Api::default_namespaced(client);

        let created = pods
            .create(&PostParams::default(), &pod(&name))
            .await
            .expect("create the pod");
        let uid = created.metadata.uid.clone().expect("a uid");
        assert_eq!(created.metadata.namespace.as_deref(), Some("default"));

        let running = tokio::time::timeout(
            DEADLINE,
            await_condition(pods.clone(), &name, conditions::is_pod_running()),
        )
        .await
        .expect("the watcher never saw the pod Running")
        .expect("the watch failed")
        .expect("the pod is there");
        assert_eq!(running.metadata.uid.as_deref(), Some(uid.as_str()));
        assert!(running
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.as_ref())
            .is_some());

        // The list kube-rs's watcher starts from sees the pod too.
        let listed = pods
            .list(&kube::api::ListParams::default().labels("app=kube-rs"))
            .await
            .expect("list");
        assert!(listed
            .items
            .iter()
            .any(|p| p.metadata.name.as_deref() == Some(name.as_str())));

        // exec over WebSocket: stdout, stderr and the exit status apart.
        let mut run = pods
            .exec(
                &name,
                ["sh", "-c", "echo out; echo err >&2; exit 3"],
                &AttachParams::default().stderr(true),
            )
            .await
            .expect("exec");
        let mut stdout = run.stdout().expect("stdout");
        let mut stderr = run.stderr().expect("stderr");
        let status = run.take_status().expect("a status channel");
        let (mut out, mut err) = (String::new(), String::new());
        // A few bytes each: they fit the client's buffers, so one after the other.
        stdout.read_to_string(&mut out).await.expect("read stdout");
        stderr.read_to_string(&mut err).await.expect("read stderr");
        let status = status.await.expect("the exec's final status");
        run.join().await.expect("the exec ends cleanly");
        assert_eq!(out, "out\n");
        assert_eq!(err, "err\n");
        assert_eq!(status.status.as_deref(), Some("Failure"), "{status:?}");
        let code = status
            .details
            .and_then(|d| d.causes)
            .and_then(|c| {
                c.into_iter()
                    .find(|c| c.reason.as_deref() == Some("ExitCode"))
            })
            .and_then(|c| c.message);
        assert_eq!(code.as_deref(), Some("3"));

        // A command that succeeds, with stdin.
        let mut cat = pods
            .exec(&name, ["cat"], &AttachParams::default().stdin(true))
            .await
            .expect("exec cat");
        let mut stdin = cat.stdin().expect("stdin");
        let mut stdout = cat.stdout().expect("stdout");
        let status = cat.take_status().expect("a status channel");
        stdin
            .write_all(b"through stdin\n")
            .await
            .expect("write stdin");
        // The end of stdin: kube-rs sends v5's close of the stdin channel.
        stdin.shutdown().await.expect("close stdin");
        let mut echoed = String::new();
        tokio::time::timeout(DEADLINE, stdout.read_to_string(&mut echoed))
            .await
            .expect("cat's stdout never ended")
            .expect("read stdout");
        let status = tokio::time::timeout(DEADLINE, status)
            .await
            .expect("cat never ended after stdin closed")
            .expect("the exec's final status");
        assert_eq!(echoed, "through stdin\n");
        assert_eq!(status.status.as_deref(), Some("Success"), "{status:?}");

        let logs = tokio::time::timeout(DEADLINE, async {
            loop {
                let l = pods.logs(&name, &LogParams::default()).await.expect("logs");
                if !l.is_empty() {
                    return l;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await
        .expect("the pod never logged");
        assert_eq!(logs, format!("hello from {name}\n"));

        pods.delete(&name, &DeleteParams::default())
            .await
            .expect("delete");
        tokio::time::timeout(
            DEADLINE,
            await_condition(pods.clone(), &name, conditions::is_deleted(&uid)),
        )
        .await
        .expect("the watcher never saw the pod gone")
        .expect("the watch failed");
        let gone = pods.get_opt(&name).await.expect("get after delete");
        assert!(gone.is_none(), "the pod is still there: {gone:?}");
    });
    let cli = p.run(&["get", "pod", &name]);
    assert!(!cli.status.success(), "the CLI still sees the pod");
}
