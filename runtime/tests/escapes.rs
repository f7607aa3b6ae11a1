//! Ways out of a pod through its volumes (issue 21): a subPath symlink a
//! container planted, in an emptyDir or in a node directory shared as a
//! hostPath, must not give another container the node's root.

mod common;

use std::time::Duration;

use common::*;

/// The issue's exact manifest, plus a container without the subPath that
/// must run regardless.
fn escape_pod(name: &str) -> String {
    escape_pod_with(name, "emptyDir: {}")
}

/// [`escape_pod`] with another source for volume `vol`.
fn escape_pod_with(name: &str, source: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  terminationGracePeriodSeconds: 0
  volumes: [{{name: vol, {source}}}]
  initContainers:
  - {{name: plant, image: {BUSYBOX}, command: ["sh", "-c", "ln -s / /vol/escape"], volumeMounts: [{{name: vol, mountPath: /vol}}]}}
  containers:
  - {{name: app, image: {BUSYBOX}, command: ["sleep", "3600"], volumeMounts: [{{name: vol, mountPath: /host, subPath: escape}}]}}
  - {{name: other, image: {BUSYBOX}, command: ["sleep", "3600"], volumeMounts: [{{name: vol, mountPath: /vol}}]}}
"#
    )
}

fn container<'v>(pod: &'v serde_json::Value, name: &str) -> &'v serde_json::Value {
    pod["status"]["containerStatuses"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == name))
        .unwrap_or(&serde_json::Value::Null)
}

#[test]
fn a_subpath_symlink_out_of_the_volume_waits_with_create_container_config_error() {
    require_root!();
    let name = unique("esc-subpath");
    refused_escape(&name, escape_pod(&name));
}

#[test]
fn a_subpath_symlink_out_of_a_host_path_waits_with_create_container_config_error() {
    require_root!();
    let dir = tempfile::tempdir().expect("tempdir");
    let name = unique("esc-hostpath");
    let source = format!(
        "hostPath: {{path: {}, type: Directory}}",
        dir.path().display()
    );
    refused_escape(&name, escape_pod_with(&name, &source));
    // The planted link is the node's now, and it is left as it was.
    assert_eq!(
        std::fs::read_link(dir.path().join("escape")).expect("the planted link"),
        std::path::Path::new("/")
    );
}

/// Applies `manifest` (from [`escape_pod_with`]): container app must wait
/// with CreateContainerConfigError, retried, never running.
fn refused_escape(name: &str, manifest: String) {
    let p = Podlab::new();
    let name = name.to_string();
    let out = p
        .cmd()
        .args(["apply", "-f", "-"])
        .write_stdin(manifest)
        .output()
        .expect("apply");
    assert!(out.status.success(), "{out:?}");
    let _g = PodGuard {
        podlab: &p,
        name: name.clone(),
    };
    // The other container runs while app waits, and app is retried with
    // back-off (a second Failed event) without ever running.
    let seen = eventually(Duration::from_secs(30), || {
        let pod = p.pod_json(&name);
        let waiting = container(&pod, "app")["state"]["waiting"].clone();
        let other_runs = container(&pod, "other")["state"]["running"].is_object();
        let events = p.run(&["describe", "pod", &name]);
        let retried = String::from_utf8_lossy(&events.stdout)
            .matches("failed to prepare subPath")
            .count()
            >= 2;
        (waiting["reason"] == "CreateContainerConfigError" && other_runs && retried)
            .then_some(waiting)
    })
    .unwrap_or_else(|| panic!("app never waited as expected: {}", p.pod_json(&name)));
    let message = seen["message"].as_str().unwrap_or_default();
    assert!(
        message.contains(r#"failed to prepare subPath for volumeMount "vol" of container "app""#),
        "{message}"
    );
    assert_eq!(
        container(&p.pod_json(&name), "app")["state"]["running"],
        serde_json::Value::Null,
        "the container ran"
    );
    let ls = p.exec(&name, "app", &["ls", "/host/run"]);
    assert!(!ls.status.success(), "exec ls /host/run worked: {ls:?}");
    // The link is still there for the other container, which is harmless:
    // inside its own root it names its own /.
    assert_eq!(
        p.exec_ok(&name, "other", &["readlink", "/vol/escape"]),
        "/\n"
    );
}
