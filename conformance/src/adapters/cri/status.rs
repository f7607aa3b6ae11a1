//! What a CRI runtime reports (sandbox and container statuses) and what the
//! pod worker remembers (restarts, back-off, image failures), turned into a
//! v1 Pod status the way kubelet computes it. Pure, so unit-tested.

use k8s_cri::v1 as cri;
use serde_json::{json, Map, Value};

/// A run of a container that has ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Terminated {
    pub exit_code: i32,
    pub reason: String,
    pub message: String,
    /// Unix nanoseconds, 0 when unknown.
    pub started_at: i64,
    pub finished_at: i64,
}

impl Terminated {
    pub fn from_cri(s: &cri::ContainerStatus) -> Terminated {
        Terminated {
            exit_code: s.exit_code,
            reason: s.reason.clone(),
            message: s.message.clone(),
            started_at: s.started_at,
            finished_at: s.finished_at,
        }
    }

    fn to_json(&self) -> Value {
        let mut t = Map::new();
        t.insert("exitCode".into(), json!(self.exit_code));
        // Kubelet's words when the runtime gives none.
        let reason = match (self.reason.as_str(), self.exit_code) {
            ("", 0) => "Completed",
            ("", _) => "Error",
            (r, _) => r,
        };
        t.insert("reason".into(), json!(reason));
        if !self.message.is_empty() {
            t.insert("message".into(), json!(self.message));
        }
        if self.started_at > 0 {
            t.insert("startedAt".into(), json!(timestamp(self.started_at)));
        }
        if self.finished_at > 0 {
            t.insert("finishedAt".into(), json!(timestamp(self.finished_at)));
        }
        json!({ "terminated": t })
    }
}

/// Why a container is not running, in kubelet's words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Waiting {
    pub reason: String,
    pub message: String,
}

impl Waiting {
    pub fn new(reason: &str, message: impl Into<String>) -> Waiting {
        Waiting {
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// What the pod worker knows of one container beyond the runtime's report.
#[derive(Clone, Debug, Default)]
pub struct ContainerRecord {
    /// The CRI id of the current run, once created.
    pub id: Option<String>,
    /// Earlier runs that ended and were replaced.
    pub restarts: u32,
    /// Why there is no current run (image pull failure, back-off, ...).
    pub waiting: Option<Waiting>,
    /// How the previous run ended.
    pub last: Option<Terminated>,
}

/// One container as the status shows it.
#[derive(Clone, Debug)]
pub struct ContainerView {
    pub name: String,
    pub image: String,
    pub record: ContainerRecord,
    /// The runtime's status of the current run.
    pub observed: Option<cri::ContainerStatus>,
}

/// A container's state, reduced to what phases are computed from.
#[derive(Clone, Debug, PartialEq, Eq)]
enum State {
    /// Never started in this run, or waiting to be restarted.
    Waiting(Waiting),
    Running,
    Terminated(Terminated),
}

impl ContainerView {
    fn state(&self, default_waiting: &str) -> State {
        match &self.observed {
            Some(s) if s.state == cri::ContainerState::ContainerRunning as i32 => State::Running,
            Some(s) if s.state == cri::ContainerState::ContainerExited as i32 => {
                State::Terminated(Terminated::from_cri(s))
            }
            Some(s) if s.state == cri::ContainerState::ContainerUnknown as i32 => State::Waiting(
                Waiting::new("Unknown", "the runtime does not know the state"),
            ),
            _ => State::Waiting(
                self.record
                    .waiting
                    .clone()
                    .unwrap_or_else(|| Waiting::new(default_waiting, "")),
            ),
        }
    }

    fn to_json(&self, state: &State, init: bool) -> Value {
        let running = *state == State::Running;
        let mut c = Map::new();
        c.insert("name".into(), json!(self.name));
        c.insert("image".into(), json!(self.image));
        let image_id = self
            .observed
            .as_ref()
            .map(|s| s.image_ref.clone())
            .unwrap_or_default();
        c.insert("imageID".into(), json!(image_id));
        if let Some(id) = &self.record.id {
            c.insert("containerID".into(), json!(format!("containerd://{id}")));
        }
        let ready = if init {
            matches!(state, State::Terminated(t) if t.exit_code == 0)
        } else {
            running
        };
        c.insert("ready".into(), json!(ready));
        c.insert("started".into(), json!(running));
        c.insert("restartCount".into(), json!(self.record.restarts));
        let state_json = match state {
            State::Running => {
                let started = self.observed.as_ref().map(|s| s.started_at).unwrap_or(0);
                if started > 0 {
                    json!({"running": {"startedAt": timestamp(started)}})
                } else {
                    json!({"running": {}})
                }
            }
            State::Terminated(t) => t.to_json(),
            State::Waiting(w) if w.message.is_empty() => json!({"waiting": {"reason": w.reason}}),
            State::Waiting(w) => {
                json!({"waiting": {"reason": w.reason, "message": w.message}})
            }
        };
        c.insert("state".into(), state_json);
        if let Some(last) = &self.record.last {
            c.insert("lastState".into(), last.to_json());
        }
        Value::Object(c)
    }
}

/// Everything a pod's status is computed from.
#[derive(Clone, Debug)]
pub struct PodView {
    pub restart_policy: String,
    pub init: Vec<ContainerView>,
    pub app: Vec<ContainerView>,
    pub pod_ip: Option<String>,
    pub host_ip: Option<String>,
    /// When the adapter accepted the pod (unix nanoseconds).
    pub created_at: i64,
}

/// Which conditions hold now; the caller keeps their transition times.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conditions {
    pub initialized: bool,
    pub containers_ready: bool,
}

/// The status, without conditions, and which conditions hold.
pub fn pod_status(view: &PodView) -> (Map<String, Value>, Conditions) {
    let init_pending = view
        .init
        .iter()
        .any(|c| !matches!(c.state("PodInitializing"), State::Terminated(t) if t.exit_code == 0));
    let app_default = if init_pending {
        "PodInitializing"
    } else {
        "ContainerCreating"
    };
    let init_states: Vec<State> = view
        .init
        .iter()
        .map(|c| c.state("PodInitializing"))
        .collect();
    let app_states: Vec<State> = view.app.iter().map(|c| c.state(app_default)).collect();
    let phase = phase(view, &init_states, &app_states);
    let containers_ready =
        !app_states.is_empty() && app_states.iter().all(|s| *s == State::Running);
    let mut status = Map::new();
    status.insert("phase".into(), json!(phase));
    if let Some(ip) = &view.host_ip {
        status.insert("hostIP".into(), json!(ip));
        status.insert("hostIPs".into(), json!([{ "ip": ip }]));
    }
    if let Some(ip) = &view.pod_ip {
        status.insert("podIP".into(), json!(ip));
        status.insert("podIPs".into(), json!([{ "ip": ip }]));
    }
    status.insert("startTime".into(), json!(timestamp(view.created_at)));
    if !view.init.is_empty() {
        let list: Vec<Value> = view
            .init
            .iter()
            .zip(&init_states)
            .map(|(c, s)| c.to_json(s, true))
            .collect();
        status.insert("initContainerStatuses".into(), Value::Array(list));
    }
    let list: Vec<Value> = view
        .app
        .iter()
        .zip(&app_states)
        .map(|(c, s)| c.to_json(s, false))
        .collect();
    status.insert("containerStatuses".into(), Value::Array(list));
    (
        status,
        Conditions {
            initialized: !init_pending,
            containers_ready,
        },
    )
}

/// Kubelet's phase rules: Pending until every init container has succeeded
/// and every app container has started; then Running while any runs or
/// will be restarted; Succeeded or Failed once all have ended for good.
fn phase(view: &PodView, init: &[State], app: &[State]) -> &'static str {
    let never = view.restart_policy == "Never";
    for state in init {
        match state {
            State::Terminated(t) if t.exit_code == 0 => continue,
            State::Terminated(_) if never => return "Failed",
            // Running, or failed and about to be restarted.
            _ => return "Pending",
        }
    }
    let (mut running, mut waiting, mut failed) = (0, 0, 0);
    for (c, state) in view.app.iter().zip(app) {
        match state {
            State::Running => running += 1,
            // Waiting after an earlier run: being restarted, so still running.
            State::Waiting(_) if c.record.last.is_some() => running += 1,
            State::Waiting(_) => waiting += 1,
            State::Terminated(t) if t.exit_code == 0 => {}
            State::Terminated(_) => failed += 1,
        }
    }
    if waiting > 0 || app.is_empty() {
        return "Pending";
    }
    if running > 0 {
        return "Running";
    }
    match view.restart_policy.as_str() {
        "Never" if failed > 0 => "Failed",
        "Never" => "Succeeded",
        "OnFailure" if failed > 0 => "Running",
        "OnFailure" => "Succeeded",
        // Always: every ended container is restarted.
        _ => "Running",
    }
}

/// RFC 3339 time of unix nanoseconds, as the API server writes times.
pub fn timestamp(nanos: i64) -> String {
    k8s_openapi::jiff::Timestamp::from_nanosecond(i128::from(nanos))
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observed(state: cri::ContainerState, exit_code: i32, reason: &str) -> cri::ContainerStatus {
        cri::ContainerStatus {
            state: state as i32,
            exit_code,
            reason: reason.into(),
            started_at: 1_700_000_000_000_000_000,
            ..Default::default()
        }
    }

    fn ctr(name: &str, observed: Option<cri::ContainerStatus>) -> ContainerView {
        ContainerView {
            name: name.into(),
            image: "img".into(),
            record: ContainerRecord {
                id: observed.as_ref().map(|_| format!("id-{name}")),
                ..Default::default()
            },
            observed,
        }
    }

    fn view(policy: &str, init: Vec<ContainerView>, app: Vec<ContainerView>) -> PodView {
        PodView {
            restart_policy: policy.into(),
            init,
            app,
            pod_ip: Some("10.90.0.5".into()),
            host_ip: Some("192.0.2.10".into()),
            created_at: 1_700_000_000_000_000_000,
        }
    }

    fn phase_of(v: &PodView) -> String {
        pod_status(v).0["phase"].as_str().unwrap().to_string()
    }

    use cri::ContainerState::{ContainerCreated, ContainerExited, ContainerRunning};

    #[test]
    fn pending_until_every_container_started() {
        let v = view(
            "Always",
            vec![],
            vec![
                ctr("a", Some(observed(ContainerRunning, 0, ""))),
                ctr("b", Some(observed(ContainerCreated, 0, ""))),
            ],
        );
        let (status, cond) = pod_status(&v);
        assert_eq!(status["phase"], "Pending");
        assert_eq!(
            status["containerStatuses"][1]["state"]["waiting"]["reason"],
            "ContainerCreating"
        );
        assert!(cond.initialized && !cond.containers_ready);
        let v = view(
            "Always",
            vec![],
            vec![
                ctr("a", Some(observed(ContainerRunning, 0, ""))),
                ctr("b", Some(observed(ContainerRunning, 0, ""))),
            ],
        );
        let (status, cond) = pod_status(&v);
        assert_eq!(status["phase"], "Running");
        assert_eq!(status["podIP"], "10.90.0.5");
        assert_eq!(status["hostIP"], "192.0.2.10");
        assert_eq!(
            status["containerStatuses"][0]["containerID"],
            "containerd://id-a"
        );
        assert!(cond.containers_ready);
    }

    #[test]
    fn init_containers_hold_the_pod_pending() {
        let running_init = view(
            "Always",
            vec![ctr("init", Some(observed(ContainerRunning, 0, "")))],
            vec![ctr("app", None)],
        );
        let (status, cond) = pod_status(&running_init);
        assert_eq!(status["phase"], "Pending");
        assert!(!cond.initialized);
        assert_eq!(
            status["containerStatuses"][0]["state"]["waiting"]["reason"],
            "PodInitializing"
        );
        let failed_init = view(
            "Never",
            vec![ctr("init", Some(observed(ContainerExited, 1, "Error")))],
            vec![ctr("app", None)],
        );
        assert_eq!(phase_of(&failed_init), "Failed");
        let done = view(
            "Never",
            vec![ctr("init", Some(observed(ContainerExited, 0, "Completed")))],
            vec![ctr("app", Some(observed(ContainerRunning, 0, "")))],
        );
        let (status, cond) = pod_status(&done);
        assert_eq!(status["phase"], "Running");
        assert_eq!(status["initContainerStatuses"][0]["ready"], true);
        assert!(cond.initialized);
    }

    #[test]
    fn ended_containers_follow_the_restart_policy() {
        let ended = |policy: &str, code: i32| {
            phase_of(&view(
                policy,
                vec![],
                vec![ctr("a", Some(observed(ContainerExited, code, "")))],
            ))
        };
        assert_eq!(ended("Never", 0), "Succeeded");
        assert_eq!(ended("Never", 3), "Failed");
        assert_eq!(ended("OnFailure", 0), "Succeeded");
        assert_eq!(ended("OnFailure", 1), "Running");
        assert_eq!(ended("Always", 0), "Running");
    }

    #[test]
    fn a_container_in_back_off_shows_its_last_run() {
        let mut c = ctr("a", None);
        c.record.restarts = 2;
        c.record.waiting = Some(Waiting::new("CrashLoopBackOff", "back-off 2s"));
        c.record.last = Some(Terminated {
            exit_code: 137,
            reason: "OOMKilled".into(),
            ..Default::default()
        });
        let (status, _) = pod_status(&view("Always", vec![], vec![c]));
        assert_eq!(status["phase"], "Running");
        let s = &status["containerStatuses"][0];
        assert_eq!(s["restartCount"], 2);
        assert_eq!(s["state"]["waiting"]["reason"], "CrashLoopBackOff");
        assert_eq!(s["lastState"]["terminated"]["reason"], "OOMKilled");
        assert_eq!(s["lastState"]["terminated"]["exitCode"], 137);
    }

    #[test]
    fn times_are_rfc3339() {
        assert_eq!(timestamp(1_700_000_000_000_000_000), "2023-11-14T22:13:20Z");
    }
}
