//! The adapter contract: what the suite needs from a pod runtime, and
//! nothing about how a particular runtime provides it.
//!
//! An adapter turns these calls into whatever the runtime speaks (a CLI, a
//! gRPC API, ...). Tests see only this trait, the v1 `Pod` it returns, and
//! the [`Capabilities`] it declares, so the same test runs against any
//! runtime.

use std::fmt;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use serde::Serialize;

/// What a command run in a container printed, and how it ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecOutput {
    pub stdout: String,
    pub stderr: String,
    /// The command's exit status; 128+N when killed by signal N (137 for
    /// SIGKILL, e.g. by the OOM killer), as kubectl reports it.
    pub exit_code: i32,
}

/// How a runtime limits the number of processes, so pids tests know what
/// to expect (Kubernetes has no container-level pids field; kubelets set a
/// node-wide `podPidsLimit`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PidsLimits {
    /// `spec.resources.limits.pids` (pod level) is honoured.
    pub pod_field: bool,
    /// The limit every container gets without asking, when known.
    pub per_container: Option<u64>,
}

/// What this runtime on this host supports; tests that need something
/// missing are skipped with the reason instead of failing.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    /// Pods get an address on a pod network (`status.podIP`).
    pub pod_ip: bool,
    /// `securityContext.privileged: true` is accepted.
    pub privileged: bool,
    /// A container can read its own cgroup limits from /sys/fs/cgroup.
    pub cgroup_visible: bool,
    /// A pod that cannot start yet is reported (and stays) `Pending`.
    pub pending_observable: bool,
    /// `spec.shareProcessNamespace` is honoured.
    pub share_process_namespace: bool,
    /// Pods run on the kernel this suite runs on, so the suite can create
    /// host objects (SysV IPC) and check that pods do not see them.
    pub same_kernel: bool,
    /// The node (where this suite runs) can open connections to pod IPs,
    /// so the suite may connect to a pod's own address from outside it.
    pub node_reaches_pods: bool,
    pub pids: PidsLimits,
    /// `spec.initContainers` run to completion, one after another, before
    /// the app containers start.
    pub init_containers: bool,
    /// `restartPolicy` Never and OnFailure are honoured, and a pod whose
    /// containers have all ended is reported Succeeded or Failed.
    pub restart_policy: bool,
    /// A pod whose requests exceed what the node can allocate stays
    /// Pending with `PodScheduled=False`, reason `Unschedulable`.
    pub unschedulable: bool,
    /// A container killed by the OOM killer is reported terminated with
    /// reason `OOMKilled`.
    pub oom_reason: bool,
    /// Startup, liveness and readiness probes run as the kubelet runs them:
    /// a failing liveness probe restarts the container, readiness sets
    /// `ready` and the pod's Ready condition.
    pub probes: bool,
    /// postStart and preStop hooks run as the kubelet runs them.
    pub hooks: bool,
    /// A pod past a container's `limits.ephemeral-storage` or a disk
    /// emptyDir's `sizeLimit` is evicted (Failed, reason `Evicted`).
    pub storage_eviction: bool,
    /// The bytes a container's logs are kept within (rotation: size times
    /// files), when the runtime rotates logs and the adapter can measure
    /// them ([`Runtime::log_bytes`]).
    pub log_bound: Option<u64>,
    /// A container port's `hostPort` is reachable from the node at
    /// 127.0.0.1:hostPort (CNI portmap or the like).
    pub host_ports: bool,
    /// Pods run on this node's filesystem and mount table: the suite may
    /// make directories, files and mounts under its temp dir and give them
    /// to pods as hostPath volumes.
    pub host_paths: bool,
    /// A command exec'd with a timeout is ended by the runtime once the
    /// timeout passes (the CRI's ExecSync timeout), not left running.
    pub exec_timeout: bool,
    /// The node directory where the runtime reads seccompProfile
    /// `Localhost` profiles (localhostProfile is relative to it), when it
    /// honours them; the suite writes its profiles there.
    pub seccomp_root: Option<std::path::PathBuf>,
    /// `HOST:PORT` of a registry on this machine the runtime pulls from
    /// over plain HTTP (as it would from any insecure registry its user
    /// lists), holding the suite's images ([`crate::registry`]); the
    /// suite adds tags to it.
    pub registry: Option<String>,
}

/// Why a runtime call failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot run {command}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("{command} failed with exit status {code}: {stderr}")]
    Command {
        command: String,
        code: i32,
        stderr: String,
    },
    #[error("{command} did not finish within {after:?}")]
    Timeout { command: String, after: Duration },
    #[error("cannot parse the output of {command}: {detail}")]
    Parse { command: String, detail: String },
    #[error("pod {0} does not exist")]
    NotFound(String),
    #[error("pod {pod}: waited {after:?} for {what}; last seen: {last}")]
    Wait {
        pod: String,
        what: String,
        after: Duration,
        last: String,
    },
    /// The runtime (or its adapter) cannot do what was asked.
    #[error("not supported: {0}")]
    Unsupported(String),
    #[error("{0}")]
    Other(String),
}

/// A pod runtime as the suite drives it.
///
/// Calls may come from several test threads at once.
pub trait Runtime: Send + Sync {
    /// A short name for reports ("podlab", "podman", ...).
    fn name(&self) -> &str;

    fn capabilities(&self) -> Capabilities;

    /// The image holding the probe (`probe` on PATH) and basic shell tools
    /// (`sleep`).
    fn probe_image(&self) -> String;

    /// Creates the pod of a v1 Pod manifest (YAML) and returns once the
    /// runtime has accepted it; the pod need not be running yet.
    fn create_pod(&self, manifest_yaml: &str) -> Result<(), Error>;

    /// The pod as the runtime reports it now; `Ok(None)` when it does not exist.
    fn get_pod(&self, name: &str) -> Result<Option<Pod>, Error>;

    /// Runs `argv` in container `container` of pod `pod`, with no stdin.
    fn exec(
        &self,
        pod: &str,
        container: &str,
        argv: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput, Error>;

    /// Deletes the pod immediately (grace period 0) and returns when its
    /// resources are released; deleting a missing pod is not an error.
    fn delete_pod(&self, name: &str) -> Result<(), Error>;

    /// Deletes the pod with a grace period of `seconds` (SIGTERM, then
    /// SIGKILL once the period is over) and returns when it is gone.
    /// Adapters that cannot return [`Error::Unsupported`].
    fn delete_pod_with_grace(&self, name: &str, seconds: u32) -> Result<(), Error> {
        let _ = (name, seconds);
        Err(Error::Unsupported(format!(
            "the {} adapter cannot delete with a grace period",
            self.name()
        )))
    }

    /// What a finished run left behind (pods, namespaces, cgroups, ...),
    /// one line each; empty when the host is clean.
    fn leftovers(&self) -> Vec<String> {
        Vec::new()
    }

    /// Starts and removes the smallest pod the runtime can run, before the
    /// suite: an error means no test could start a pod on this host. The
    /// default has nothing cheaper to try than the tests themselves.
    fn preflight(&self) -> Result<(), Error> {
        Ok(())
    }

    /// The container's output (stdout and stderr), its last `tail` lines
    /// when given, as `kubectl logs --tail` prints it; with `previous`, the
    /// output of its run before the last restart (`kubectl logs --previous`).
    fn logs(
        &self,
        pod: &str,
        container: &str,
        tail: Option<usize>,
        previous: bool,
    ) -> Result<String, Error> {
        let _ = (pod, container, tail, previous);
        Err(Error::Unsupported(format!(
            "the {} adapter cannot read logs",
            self.name()
        )))
    }

    /// The bytes the runtime keeps on the node for the container's logs.
    fn log_bytes(&self, pod: &str, container: &str) -> Result<u64, Error> {
        let _ = (pod, container);
        Err(Error::Unsupported(format!(
            "the {} adapter cannot measure logs",
            self.name()
        )))
    }
}

/// What is still left after a run, asked again for a few seconds first:
/// processes of a deleted pod may outlive the delete call by a moment.
pub fn settled_leftovers(mut look: impl FnMut() -> Vec<String>) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = look();
        if left.is_empty() || Instant::now() >= deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// How often a waiting test asks again: quickly at first, since most
/// waits end within a fraction of a second, then less often.
fn poll_interval(attempt: u32) -> Duration {
    Duration::from_millis(match attempt {
        0..=9 => 20,
        10..=29 => 50,
        _ => 200,
    })
}

/// Polls the pod until `check` returns a value or `timeout` passes.
///
/// A check that sees an outcome it can never recover from returns
/// `Some(Err(..))` to stop early.
pub fn wait_for<T>(
    rt: &dyn Runtime,
    pod: &str,
    what: &str,
    timeout: Duration,
    mut check: impl FnMut(&Pod) -> Option<Result<T, Error>>,
) -> Result<T, Error> {
    let start = Instant::now();
    let mut last = String::from("nothing yet");
    for attempt in 0.. {
        match rt.get_pod(pod)? {
            Some(p) => {
                if let Some(result) = check(&p) {
                    return result;
                }
                last = describe(&p);
            }
            None => last = "the pod does not exist".into(),
        }
        let elapsed = start.elapsed();
        if elapsed >= timeout {
            break;
        }
        std::thread::sleep(poll_interval(attempt).min(timeout - elapsed));
    }
    Err(Error::Wait {
        pod: pod.into(),
        what: what.into(),
        after: timeout,
        last,
    })
}

/// Waits until the pod's phase is one of `phases`.
pub fn wait_for_phase(
    rt: &dyn Runtime,
    pod: &str,
    phases: &[&str],
    timeout: Duration,
) -> Result<Pod, Error> {
    let what = format!("phase {}", phases.join(" or "));
    wait_for(rt, pod, &what, timeout, |p| {
        let phase = phase(p);
        phases.contains(&phase).then(|| Ok(p.clone()))
    })
}

/// Waits until the pod is Running with every container running; fails
/// early when the pod ends or a container terminates instead.
pub fn wait_running(rt: &dyn Runtime, pod: &str, timeout: Duration) -> Result<Pod, Error> {
    wait_for(
        rt,
        pod,
        "phase Running with every container running",
        timeout,
        |p| {
            let phase = phase(p);
            if phase == "Succeeded" || phase == "Failed" {
                return Some(Err(Error::Other(format!(
                    "pod {pod} ended before it ran: {}",
                    describe(p)
                ))));
            }
            let statuses = container_statuses(p);
            let expected = p.spec.as_ref().map(|s| s.containers.len()).unwrap_or(0);
            let all_running = statuses.len() == expected
                && statuses
                    .iter()
                    .all(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()));
            (phase == "Running" && all_running).then(|| Ok(p.clone()))
        },
    )
}

/// The pod's phase, "" when the runtime has not set one.
pub fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

pub fn container_statuses(pod: &Pod) -> &[ContainerStatus] {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_deref())
        .unwrap_or(&[])
}

/// One container's state in words: "running", "waiting (ErrImagePull: ...)",
/// "terminated (exit 137, OOMKilled)".
pub fn container_state(c: &ContainerStatus) -> String {
    let Some(state) = c.state.as_ref() else {
        return "no state".into();
    };
    if state.running.is_some() {
        "running".into()
    } else if let Some(w) = &state.waiting {
        let reason = w.reason.as_deref().unwrap_or("no reason");
        match &w.message {
            Some(m) => format!("waiting ({reason}: {m})"),
            None => format!("waiting ({reason})"),
        }
    } else if let Some(t) = &state.terminated {
        match &t.reason {
            Some(r) => format!("terminated (exit {}, {r})", t.exit_code),
            None => format!("terminated (exit {})", t.exit_code),
        }
    } else {
        "no state".into()
    }
}

/// A one-line summary of a pod's status for diagnoses.
pub fn describe(pod: &Pod) -> String {
    let mut text = format!("phase {}", Quoted(phase(pod)));
    for c in container_statuses(pod) {
        text.push_str(&format!("; {}: {}", c.name, container_state(c)));
    }
    text
}

/// Shows an empty phase as "(none)" rather than nothing.
struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("(none)")
        } else {
            f.write_str(self.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeRuntime;

    fn scripted(statuses: Vec<serde_json::Value>) -> FakeRuntime {
        FakeRuntime::new().scripted(statuses)
    }

    #[test]
    fn wait_running_needs_the_phase_and_every_container() {
        let rt = scripted(vec![
            serde_json::json!({"phase": "Pending"}),
            serde_json::json!({"phase": "Running", "containerStatuses": [
                {"name": "app", "image": "", "imageID": "", "ready": false, "restartCount": 0,
                 "state": {"waiting": {"reason": "ContainerCreating"}}}]}),
            serde_json::json!({"phase": "Running", "containerStatuses": [
                {"name": "app", "image": "", "imageID": "", "ready": true, "restartCount": 0,
                 "state": {"running": {}}}]}),
        ]);
        let pod = wait_running(&rt, "p", Duration::from_secs(5)).unwrap();
        assert_eq!(container_state(&container_statuses(&pod)[0]), "running");
    }

    #[test]
    fn wait_times_out_with_the_last_status() {
        let rt = scripted(vec![
            serde_json::json!({"phase": "Pending", "containerStatuses": [
            {"name": "app", "image": "", "imageID": "", "ready": false, "restartCount": 0,
             "state": {"waiting": {"reason": "ErrImagePull", "message": "not found"}}}]}),
        ]);
        let err = wait_for_phase(&rt, "p", &["Running"], Duration::from_millis(100)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "pod p: waited 100ms for phase Running; last seen: phase Pending; \
             app: waiting (ErrImagePull: not found)"
        );
    }

    #[test]
    fn wait_running_stops_when_the_pod_ends() {
        let rt = scripted(vec![
            serde_json::json!({"phase": "Failed", "containerStatuses": [
            {"name": "app", "image": "", "imageID": "", "ready": false, "restartCount": 0,
             "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]}),
        ]);
        let start = Instant::now();
        let err = wait_running(&rt, "p", Duration::from_secs(30)).unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(5));
        assert!(
            err.to_string().contains("terminated (exit 137, OOMKilled)"),
            "{err}"
        );
    }
}
