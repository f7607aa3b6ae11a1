//! The pod's lifecycle as the kubelet reports it: phase, conditions,
//! container states, the crash back-off, and what `kubectl get pods` prints,
//! computed from what the shim observes. Pure functions, so the rules are
//! unit-tested without starting anything.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, Pod, PodCondition, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use podlab_kube::qos;

pub const PENDING: &str = "Pending";
pub const RUNNING: &str = "Running";
pub const SUCCEEDED: &str = "Succeeded";
pub const FAILED: &str = "Failed";
pub const UNKNOWN: &str = "Unknown";

/// The condition types in the order kubelet sets them.
pub const CONDITIONS: [&str; 5] = [
    "PodReadyToStartContainers",
    "Initialized",
    "Ready",
    "ContainersReady",
    "PodScheduled",
];

/// The kubelet's longest crash (and image pull) back-off.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// The status the API server gives a new pod, once the scheduler has bound
/// it: Pending, with its QoS class (a pod whose quantities do not parse never
/// got past validation, so it has none).
pub fn initial_status(pod: &Pod, now: &Time) -> PodStatus {
    let qos = pod.spec.as_ref().and_then(|s| qos::qos_class(s).ok());
    let mut status = PodStatus {
        phase: Some(PENDING.into()),
        qos_class: qos.map(|q| q.as_str().to_string()),
        ..Default::default()
    };
    set_condition(&mut status, "PodScheduled", true, None, now);
    status
}

/// Records which generation of the pod this status reflects, on the pod and
/// on each condition the kubelet owns, as the kubelet does (Kubernetes 1.33+;
/// PodScheduled is the scheduler's).
pub fn set_observed_generation(status: &mut PodStatus, generation: Option<i64>) {
    status.observed_generation = generation;
    for c in status.conditions.iter_mut().flatten() {
        if c.type_ != "PodScheduled" {
            c.observed_generation = generation;
        }
    }
}

/// Sets a condition, keeping its transition time when its value is unchanged.
pub fn set_condition(
    status: &mut PodStatus,
    type_: &str,
    value: bool,
    reason: Option<&str>,
    now: &Time,
) {
    set_condition_with_message(status, type_, value, reason, None, now)
}

/// [`set_condition`] with a human message (`containers with unready status: [a]`).
pub fn set_condition_with_message(
    status: &mut PodStatus,
    type_: &str,
    value: bool,
    reason: Option<&str>,
    message: Option<String>,
    now: &Time,
) {
    let value = if value { "True" } else { "False" }.to_string();
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    if let Some(c) = conditions.iter_mut().find(|c| c.type_ == type_) {
        if c.status != value {
            c.status = value;
            c.last_transition_time = Some(now.clone());
        }
        c.reason = reason.map(String::from);
        c.message = message;
        return;
    }
    conditions.push(PodCondition {
        type_: type_.into(),
        status: value,
        reason: reason.map(String::from),
        message,
        last_transition_time: Some(now.clone()),
        ..Default::default()
    });
    // Stable order, as kubelet reports them.
    conditions.sort_by_key(|c| {
        CONDITIONS
            .iter()
            .position(|t| *t == c.type_)
            .unwrap_or(usize::MAX)
    });
}

pub fn condition_is_true(status: &PodStatus, type_: &str) -> bool {
    status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == type_ && c.status == "True")
}

pub fn waiting(reason: &str, message: Option<String>) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.into()),
            message,
        }),
        ..Default::default()
    }
}

pub fn running(started: &Time) -> ContainerState {
    ContainerState {
        running: Some(ContainerStateRunning {
            started_at: Some(started.clone()),
        }),
        ..Default::default()
    }
}

/// A terminated state from a wait status: `exit_code` is the code, or
/// 128+signal for a signal, as container runtimes report it.
pub fn terminated(
    exit_code: i32,
    signal: Option<i32>,
    oom_killed: bool,
    started: Option<Time>,
    finished: &Time,
    message: Option<String>,
) -> ContainerState {
    let reason = if oom_killed {
        "OOMKilled"
    } else if exit_code == 0 {
        "Completed"
    } else {
        "Error"
    };
    ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code,
            signal,
            reason: Some(reason.into()),
            message,
            started_at: started,
            finished_at: Some(finished.clone()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// An init container with `restartPolicy: Always`: a native sidecar, which
/// keeps running beside the app containers instead of running to completion.
pub fn is_sidecar(c: &Container) -> bool {
    c.restart_policy.as_deref() == Some("Always")
}

pub fn restart_policy(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always")
}

/// Whether a container that exited with `exit_code` is started again.
/// Regular init containers restart on failure unless the pod says Never;
/// sidecars always restart; app containers follow the pod's policy.
pub fn should_restart(policy: &str, sidecar: bool, init: bool, exit_code: i32) -> bool {
    if sidecar {
        return true;
    }
    match policy {
        "Never" => false,
        "OnFailure" => exit_code != 0,
        _ if init => exit_code != 0,
        _ => true,
    }
}

fn find<'a>(list: &'a [ContainerStatus], name: &str) -> Option<&'a ContainerStatus> {
    list.iter().find(|s| s.name == name)
}

fn is_running(s: &ContainerStatus) -> bool {
    s.state.as_ref().is_some_and(|st| st.running.is_some())
}

fn last_terminated(s: &ContainerStatus) -> Option<&ContainerStateTerminated> {
    s.last_state.as_ref().and_then(|l| l.terminated.as_ref())
}

/// The pod phase by the kubelet's rules (`getPhase`). Regular init
/// containers that have not completed keep the pod Pending (or Failed, when
/// one failed and the policy is Never); sidecars keep it Pending until they
/// have started, unless app containers already ran. Then: app containers
/// waiting to start keep it Pending; any running one makes it Running; when
/// all have stopped, the restart policy decides between Running (they will
/// be restarted), Succeeded and Failed. Sidecars never decide the outcome.
pub fn phase(pod: &Pod, init: &[ContainerStatus], app: &[ContainerStatus]) -> &'static str {
    let Some(spec) = pod.spec.as_ref() else {
        return PENDING;
    };
    let policy = restart_policy(pod);
    let (mut pending_init, mut pending_sidecars, mut failed_init) = (0, 0, 0);
    for c in spec.init_containers.iter().flatten() {
        let status = find(init, &c.name);
        if is_sidecar(c) {
            if !status.is_some_and(|s| is_running(s) && s.started == Some(true)) {
                pending_sidecars += 1;
            }
            continue;
        }
        let Some(s) = status else {
            pending_init += 1;
            continue;
        };
        let state = s.state.clone().unwrap_or_default();
        if state.running.is_some() {
            pending_init += 1;
        } else if let Some(t) = &state.terminated {
            if t.exit_code != 0 {
                failed_init += 1;
            }
        } else if let Some(t) = last_terminated(s) {
            // Waiting for a restart after a failed run.
            if t.exit_code != 0 {
                failed_init += 1;
            }
        } else {
            pending_init += 1;
        }
    }

    let (mut unknown, mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0, 0);
    for c in &spec.containers {
        let Some(s) = find(app, &c.name) else {
            unknown += 1;
            continue;
        };
        let state = s.state.clone().unwrap_or_default();
        if state.running.is_some() {
            running += 1;
        } else if let Some(t) = &state.terminated {
            stopped += 1;
            if t.exit_code == 0 {
                succeeded += 1;
            }
        } else if last_terminated(s).is_some() {
            // Waiting to be restarted after a run: counts as stopped.
            stopped += 1;
        } else if state.waiting.is_some() {
            waiting += 1;
        } else {
            unknown += 1;
        }
    }

    if failed_init > 0 && policy == "Never" {
        return FAILED;
    }
    if pending_init > 0 || (pending_sidecars > 0 && running + stopped == 0) {
        return PENDING;
    }
    if waiting > 0 {
        return PENDING;
    }
    if running > 0 && unknown == 0 {
        return RUNNING;
    }
    if stopped > 0 && stopped == spec.containers.len() && unknown == 0 {
        return match policy {
            "Always" => RUNNING,
            _ if stopped == succeeded => SUCCEEDED,
            "Never" => FAILED,
            _ => RUNNING,
        };
    }
    PENDING
}

/// Sets `Initialized`, `ContainersReady` and `Ready` from the container
/// statuses and the phase, as the kubelet's status generator does.
/// `Initialized` never goes back to False once True: a restarting sidecar
/// does not un-initialize a pod.
pub fn update_conditions(pod: &Pod, status: &mut PodStatus, now: &Time) {
    let spec = pod.spec.clone().unwrap_or_default();
    let init = status.init_container_statuses.clone().unwrap_or_default();
    let app = status.container_statuses.clone().unwrap_or_default();

    let mut incomplete = Vec::new();
    for c in spec.init_containers.iter().flatten() {
        let s = find(&init, &c.name);
        let done = if is_sidecar(c) {
            s.is_some_and(|s| s.started == Some(true))
        } else {
            s.and_then(|s| s.state.as_ref())
                .and_then(|st| st.terminated.as_ref())
                .is_some_and(|t| t.exit_code == 0)
        };
        if !done {
            incomplete.push(c.name.clone());
        }
    }
    let initialized = incomplete.is_empty() || condition_is_true(status, "Initialized");
    if initialized {
        set_condition(status, "Initialized", true, None, now);
    } else {
        set_condition_with_message(
            status,
            "Initialized",
            false,
            Some("ContainersNotInitialized"),
            Some(format!(
                "containers with incomplete status: [{}]",
                incomplete.join(" ")
            )),
            now,
        );
    }

    let terminal = matches!(status.phase.as_deref(), Some(SUCCEEDED) | Some(FAILED));
    let mut unready = Vec::new();
    let sidecars = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| is_sidecar(c));
    for (c, list) in sidecars
        .map(|c| (c, &init))
        .chain(spec.containers.iter().map(|c| (c, &app)))
    {
        if !find(list, &c.name).is_some_and(|s| s.ready) {
            unready.push(c.name.clone());
        }
    }
    for type_ in ["ContainersReady", "Ready"] {
        if terminal {
            set_condition(status, type_, false, Some("PodCompleted"), now);
        } else if unready.is_empty() {
            set_condition(status, type_, true, None, now);
        } else {
            set_condition_with_message(
                status,
                type_,
                false,
                Some("ContainersNotReady"),
                Some(format!(
                    "containers with unready status: [{}]",
                    unready.join(" ")
                )),
                now,
            );
        }
    }
}

/// The kubelet's per-container back-off: the first restart is immediate;
/// after that each one waits twice as long as the last, from `base` up to
/// `max`; a container that ran `2 × max` (10 minutes) since its last
/// restart starts over from no back-off.
#[derive(Clone, Debug)]
pub struct BackOff {
    base: Duration,
    max: Duration,
    current: Option<Duration>,
    updated: Option<Instant>,
}

impl BackOff {
    pub fn new(base: Duration, max: Duration) -> BackOff {
        BackOff {
            base,
            max: max.max(base),
            current: None,
            updated: None,
        }
    }

    fn fresh(&self, now: Instant) -> Option<Duration> {
        match (self.current, self.updated) {
            (Some(c), Some(u)) if now.saturating_duration_since(u) <= self.max * 2 => Some(c),
            _ => None,
        }
    }

    /// How long to wait, from now, before the next start of a container
    /// that has just stopped.
    pub fn delay(&self, now: Instant) -> Duration {
        self.fresh(now).unwrap_or(Duration::ZERO)
    }

    /// Records a (re)start after a failure, growing the back-off, and
    /// returns the new back-off.
    pub fn step(&mut self, now: Instant) -> Duration {
        let next = match self.fresh(now) {
            Some(c) => (c * 2).min(self.max),
            None => self.base,
        };
        self.current = Some(next);
        self.updated = Some(now);
        next
    }
}

/// What `kubectl get pods` prints in STATUS (kubectl's `printPod`): the
/// first init container that has not finished decides while the pod
/// initializes (`Init:1/3`, `Init:Error`, `Init:CrashLoopBackOff`); then the
/// first app container with a waiting or terminated reason; a pod being
/// deleted is Terminating.
pub fn display_status(pod: &Pod, status: &PodStatus) -> String {
    let spec = pod.spec.clone().unwrap_or_default();
    let init_specs = spec.init_containers.clone().unwrap_or_default();
    let mut reason = status
        .reason
        .clone()
        .unwrap_or_else(|| status.phase.clone().unwrap_or_else(|| PENDING.into()));

    let mut initializing = false;
    let init = status.init_container_statuses.clone().unwrap_or_default();
    for (i, c) in init_specs.iter().enumerate() {
        let Some(cs) = find(&init, &c.name) else {
            reason = format!("Init:{i}/{}", init_specs.len());
            initializing = true;
            break;
        };
        let state = cs.state.clone().unwrap_or_default();
        if state.terminated.as_ref().is_some_and(|t| t.exit_code == 0) {
            continue;
        }
        if is_sidecar(c) && cs.started == Some(true) {
            continue;
        }
        if let Some(t) = &state.terminated {
            reason = match t.reason.as_deref().filter(|r| !r.is_empty()) {
                Some(r) => format!("Init:{r}"),
                None => match t.signal {
                    Some(s) if s != 0 => format!("Init:Signal:{s}"),
                    _ => format!("Init:ExitCode:{}", t.exit_code),
                },
            };
        } else if let Some(w) = state
            .waiting
            .as_ref()
            .and_then(|w| w.reason.as_deref())
            .filter(|r| !r.is_empty() && *r != "PodInitializing")
        {
            reason = format!("Init:{w}");
        } else {
            reason = format!("Init:{i}/{}", init_specs.len());
        }
        initializing = true;
        break;
    }

    if !initializing || condition_is_true(status, "Initialized") {
        let mut has_running = false;
        for cs in status.container_statuses.iter().flatten().rev() {
            let state = cs.state.clone().unwrap_or_default();
            if let Some(w) = state
                .waiting
                .as_ref()
                .and_then(|w| w.reason.as_deref())
                .filter(|r| !r.is_empty())
            {
                reason = w.to_string();
            } else if let Some(t) = &state.terminated {
                reason = match t.reason.as_deref().filter(|r| !r.is_empty()) {
                    Some(r) => r.to_string(),
                    None => match t.signal {
                        Some(s) if s != 0 => format!("Signal:{s}"),
                        _ => format!("ExitCode:{}", t.exit_code),
                    },
                };
            } else if cs.ready && state.running.is_some() {
                has_running = true;
            }
        }
        // A finished container next to a running one: the pod still runs.
        if reason == "Completed" && has_running {
            reason = if condition_is_true(status, "Ready") {
                RUNNING.into()
            } else {
                "NotReady".into()
            };
        }
    }

    let terminal = matches!(status.phase.as_deref(), Some(SUCCEEDED) | Some(FAILED));
    if pod.metadata.deletion_timestamp.is_some() && !terminal {
        return "Terminating".into();
    }
    reason
}

/// `READY` column: ready containers / all containers, where sidecars count
/// as containers (kubectl does the same).
pub fn ready_count(pod: &Pod, status: &PodStatus) -> (usize, usize) {
    let spec = pod.spec.clone().unwrap_or_default();
    let sidecars: Vec<&Container> = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| is_sidecar(c))
        .collect();
    let total = spec.containers.len() + sidecars.len();
    let init = status.init_container_statuses.clone().unwrap_or_default();
    let ready_sidecars = sidecars
        .iter()
        .filter(|c| find(&init, &c.name).is_some_and(|s| s.ready && s.started == Some(true)))
        .count();
    let ready_apps = status
        .container_statuses
        .iter()
        .flatten()
        .filter(|c| c.ready && is_running(c))
        .count();
    (ready_apps + ready_sidecars, total)
}

/// `RESTARTS` column (kubectl's rule): while the pod initializes, the
/// restarts of the init containers up to the one it waits for; afterwards
/// the sidecars' and the app containers'.
pub fn restarts(pod: &Pod, status: &PodStatus) -> i32 {
    let spec = pod.spec.clone().unwrap_or_default();
    let init = status.init_container_statuses.clone().unwrap_or_default();
    let (mut init_restarts, mut sidecar_restarts) = (0, 0);
    let mut initializing = false;
    for c in spec.init_containers.iter().flatten() {
        let Some(cs) = find(&init, &c.name) else {
            initializing = true;
            break;
        };
        init_restarts += cs.restart_count;
        if is_sidecar(c) {
            sidecar_restarts += cs.restart_count;
        }
        let completed = cs
            .state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .is_some_and(|t| t.exit_code == 0);
        let started_sidecar = is_sidecar(c) && cs.started == Some(true);
        if !completed && !started_sidecar {
            initializing = true;
            break;
        }
    }
    if initializing && !condition_is_true(status, "Initialized") {
        return init_restarts;
    }
    let app: i32 = status
        .container_statuses
        .iter()
        .flatten()
        .map(|c| c.restart_count)
        .sum();
    sidecar_restarts + app
}

/// A duration in seconds the way kubectl shortens it: two units while the
/// second one still tells something (`5m3s`, `3h20m`, `5d4h`, `2y45d`), one
/// after (`150m`, `20h`, `100d`); up to one second in the future is "0s"
/// (clock skew), further is `<invalid>`.
pub fn human_duration(secs: i64) -> String {
    const MIN: i64 = 60;
    const HOUR: i64 = 60 * MIN;
    const DAY: i64 = 24 * HOUR;
    const YEAR: i64 = 365 * DAY;
    let two = |big: i64, big_unit: &str, small: i64, small_unit: &str| {
        if small == 0 {
            format!("{big}{big_unit}")
        } else {
            format!("{big}{big_unit}{small}{small_unit}")
        }
    };
    match secs {
        s if s < -1 => "<invalid>".into(),
        s if s < 0 => "0s".into(),
        s if s < 2 * MIN => format!("{s}s"),
        s if s < 10 * MIN => two(s / MIN, "m", s % MIN, "s"),
        s if s < 3 * HOUR => format!("{}m", s / MIN),
        s if s < 8 * HOUR => two(s / HOUR, "h", s % HOUR / MIN, "m"),
        s if s < 2 * DAY => format!("{}h", s / HOUR),
        s if s < 8 * DAY => two(s / DAY, "d", s % DAY / HOUR, "h"),
        s if s < 2 * YEAR => format!("{}d", s / DAY),
        s if s < 8 * YEAR => two(s / YEAR, "y", s % YEAR / DAY, "d"),
        s => format!("{}y", s / YEAR),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn now() -> Time {
        crate::store::now_time()
    }

    fn cs(state: ContainerState, last_terminated: bool) -> ContainerStatus {
        named("c", state, last_terminated)
    }

    fn named(name: &str, state: ContainerState, last_terminated: bool) -> ContainerStatus {
        ContainerStatus {
            name: name.into(),
            state: Some(state),
            last_state: last_terminated.then(|| terminated(1, None, false, None, &now(), None)),
            ..Default::default()
        }
    }

    fn exited(code: i32) -> ContainerState {
        terminated(code, None, false, None, &now(), None)
    }

    /// A pod whose init containers are "i<n>" (a trailing "*" makes one a
    /// sidecar) and app containers "c", "d", ...
    fn pod(policy: &str, init: &[&str], apps: usize) -> Pod {
        let init: Vec<serde_json::Value> = init
            .iter()
            .map(|n| match n.strip_suffix('*') {
                Some(n) => serde_json::json!({"name": n, "restartPolicy": "Always"}),
                None => serde_json::json!({"name": n}),
            })
            .collect();
        let apps: Vec<serde_json::Value> = ["c", "d", "e"][..apps]
            .iter()
            .map(|n| serde_json::json!({ "name": n }))
            .collect();
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "spec": {"restartPolicy": policy, "initContainers": init, "containers": apps}
        }))
        .unwrap()
    }

    #[rstest]
    #[case::nothing_started("Always", vec![], 2, PENDING)]
    #[case::one_of_two_running("Always", vec![cs(running(&now()), false)], 2, PENDING)]
    #[case::creating("Always", vec![cs(waiting("ContainerCreating", None), false)], 1, PENDING)]
    #[case::all_running("Never", vec![cs(running(&now()), false)], 1, RUNNING)]
    #[case::crash_loop("Always", vec![cs(waiting("CrashLoopBackOff", None), true)], 1, RUNNING)]
    #[case::completed_never("Never", vec![cs(exited(0), false)], 1, SUCCEEDED)]
    #[case::failed_never("Never", vec![cs(exited(1), false)], 1, FAILED)]
    #[case::failed_onfailure("OnFailure", vec![cs(exited(1), false)], 1, RUNNING)]
    #[case::completed_onfailure("OnFailure", vec![cs(exited(0), false)], 1, SUCCEEDED)]
    #[case::exited_always("Always", vec![cs(exited(0), false)], 1, RUNNING)]
    fn phase_follows_the_kubelet(
        #[case] policy: &str,
        #[case] statuses: Vec<ContainerStatus>,
        #[case] apps: usize,
        #[case] want: &str,
    ) {
        assert_eq!(phase(&pod(policy, &[], apps), &[], &statuses), want);
    }

    #[test]
    fn init_containers_keep_the_pod_pending_or_fail_it() {
        let p = pod("Always", &["i1", "i2"], 1);
        let app = [named("c", waiting("PodInitializing", None), false)];
        let running_i1 = [named("i1", running(&now()), false)];
        assert_eq!(phase(&p, &running_i1, &app), PENDING);
        let i1_done = [
            named("i1", exited(0), false),
            named("i2", waiting("PodInitializing", None), false),
        ];
        assert_eq!(phase(&p, &i1_done, &app), PENDING);
        let crash = [named("i1", waiting("CrashLoopBackOff", None), true)];
        assert_eq!(phase(&p, &crash, &app), PENDING);
        let never = pod("Never", &["i1"], 1);
        assert_eq!(
            phase(&never, &[named("i1", exited(2), false)], &app),
            FAILED
        );
        let all_done = [named("i1", exited(0), false), named("i2", exited(0), false)];
        assert_eq!(
            phase(&p, &all_done, &[named("c", running(&now()), false)]),
            RUNNING
        );
    }

    #[test]
    fn sidecars_count_once_started_and_never_decide_the_outcome() {
        let p = pod("Never", &["side*", "i1"], 1);
        let mut side = named("side", running(&now()), false);
        let app = [named("c", waiting("PodInitializing", None), false)];
        assert_eq!(phase(&p, &[side.clone()], &app), PENDING, "not started");
        side.started = Some(true);
        let init = [side.clone(), named("i1", exited(0), false)];
        assert_eq!(
            phase(&p, &init, &[named("c", running(&now()), false)]),
            RUNNING
        );
        assert_eq!(phase(&p, &init, &[named("c", exited(0), false)]), SUCCEEDED);
        // A restarting sidecar does not send a running pod back to Pending.
        let restarting = [
            named("side", waiting("CrashLoopBackOff", None), true),
            named("i1", exited(0), false),
        ];
        assert_eq!(
            phase(&p, &restarting, &[named("c", running(&now()), false)]),
            RUNNING
        );
    }

    #[rstest]
    #[case("Always", false, false, 0, true)]
    #[case("Always", false, true, 0, false)]
    #[case("Always", false, true, 1, true)]
    #[case("OnFailure", false, false, 0, false)]
    #[case("OnFailure", false, false, 137, true)]
    #[case("Never", false, false, 1, false)]
    #[case("Never", false, true, 1, false)]
    #[case("Never", true, true, 0, true)]
    fn restart_rules(
        #[case] policy: &str,
        #[case] sidecar: bool,
        #[case] init: bool,
        #[case] code: i32,
        #[case] want: bool,
    ) {
        assert_eq!(should_restart(policy, sidecar, init, code), want);
    }

    #[test]
    fn backoff_is_immediate_then_doubles_to_the_cap_and_resets() {
        let s = Duration::from_secs;
        let mut b = BackOff::new(s(10), s(300));
        let t0 = Instant::now();
        assert_eq!(b.delay(t0), Duration::ZERO, "first restart is immediate");
        assert_eq!(b.step(t0), s(10));
        let mut t = t0 + s(1);
        let mut seen = Vec::new();
        for _ in 0..7 {
            let d = b.delay(t);
            seen.push(d.as_secs());
            t += d;
            b.step(t);
            t += s(1);
        }
        assert_eq!(seen, [10, 20, 40, 80, 160, 300, 300]);
        // Ten quiet minutes after the last restart: no back-off again.
        let later = t + s(601);
        assert_eq!(b.delay(later), Duration::ZERO);
        assert_eq!(b.step(later), s(10));
    }

    #[test]
    fn oom_and_signals_are_reported_like_containerd() {
        let t = terminated(137, Some(9), true, None, &now(), None);
        assert_eq!(
            t.terminated.as_ref().unwrap().reason.as_deref(),
            Some("OOMKilled")
        );
        let t = terminated(0, None, false, None, &now(), None);
        assert_eq!(t.terminated.unwrap().reason.as_deref(), Some("Completed"));
    }

    #[test]
    fn a_new_pod_carries_its_qos_class() {
        let with = |resources: serde_json::Value| -> Pod {
            serde_json::from_value(serde_json::json!({"spec": {"containers": [
                {"name": "a", "image": "i", "resources": resources}]}}))
            .unwrap()
        };
        let class = |p: &Pod| initial_status(p, &now()).qos_class;
        assert_eq!(
            class(&with(serde_json::json!({}))).as_deref(),
            Some("BestEffort")
        );
        let full = serde_json::json!({"limits": {"cpu": "1", "memory": "64Mi"}});
        assert_eq!(class(&with(full)).as_deref(), Some("Guaranteed"));
        let some = serde_json::json!({"requests": {"memory": "64Mi"}});
        assert_eq!(class(&with(some)).as_deref(), Some("Burstable"));
    }

    #[test]
    fn observed_generation_is_the_kubelets_not_the_schedulers() {
        let mut s = initial_status(&Pod::default(), &now());
        set_condition(&mut s, "Ready", false, None, &now());
        set_observed_generation(&mut s, Some(2));
        assert_eq!(s.observed_generation, Some(2));
        let of = |t: &str| {
            s.conditions
                .iter()
                .flatten()
                .find(|c| c.type_ == t)
                .unwrap()
                .observed_generation
        };
        assert_eq!(of("Ready"), Some(2));
        assert_eq!(of("PodScheduled"), None);
    }

    #[test]
    fn conditions_keep_their_transition_time_and_order() {
        let t0 = Time(k8s_openapi::jiff::Timestamp::from_second(1000).unwrap());
        let t1 = Time(k8s_openapi::jiff::Timestamp::from_second(2000).unwrap());
        let mut s = initial_status(&Pod::default(), &t0);
        set_condition(&mut s, "Ready", false, Some("ContainersNotReady"), &t0);
        set_condition(&mut s, "Ready", false, Some("ContainersNotReady"), &t1);
        set_condition(&mut s, "Initialized", true, None, &t1);
        let c = s.conditions.as_ref().unwrap();
        let types: Vec<_> = c.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, ["Initialized", "Ready", "PodScheduled"]);
        assert_eq!(c[1].last_transition_time, Some(t0.clone()));
        set_condition(&mut s, "Ready", true, None, &t1);
        assert_eq!(
            s.conditions.as_ref().unwrap()[1].last_transition_time,
            Some(t1)
        );
        assert!(condition_is_true(&s, "Ready"));
        assert!(!condition_is_true(&s, "ContainersReady"));
    }

    fn condition(s: &PodStatus, t: &str) -> (String, Option<String>, Option<String>) {
        let c = s
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == t)
            .unwrap();
        (c.status.clone(), c.reason.clone(), c.message.clone())
    }

    #[test]
    fn conditions_follow_init_containers_and_readiness() {
        let p = pod("Always", &["i1", "side*"], 2);
        let mut s = initial_status(&p, &now());
        s.init_container_statuses = Some(vec![named("i1", running(&now()), false)]);
        s.container_statuses = Some(vec![
            named("c", waiting("PodInitializing", None), false),
            named("d", waiting("PodInitializing", None), false),
        ]);
        update_conditions(&p, &mut s, &now());
        assert_eq!(
            condition(&s, "Initialized"),
            (
                "False".into(),
                Some("ContainersNotInitialized".into()),
                Some("containers with incomplete status: [i1 side]".into())
            )
        );
        let mut side = named("side", running(&now()), false);
        side.started = Some(true);
        side.ready = true;
        let mut c = named("c", running(&now()), false);
        c.ready = true;
        s.init_container_statuses = Some(vec![named("i1", exited(0), false), side.clone()]);
        s.container_statuses = Some(vec![c.clone(), named("d", running(&now()), false)]);
        update_conditions(&p, &mut s, &now());
        assert_eq!(condition(&s, "Initialized").0, "True");
        assert_eq!(
            condition(&s, "Ready"),
            (
                "False".into(),
                Some("ContainersNotReady".into()),
                Some("containers with unready status: [d]".into())
            )
        );
        // Sticky: a sidecar that restarts does not un-initialize the pod.
        side.started = Some(false);
        side.ready = false;
        s.init_container_statuses = Some(vec![named("i1", exited(0), false), side]);
        update_conditions(&p, &mut s, &now());
        assert_eq!(condition(&s, "Initialized").0, "True");
        assert_eq!(
            condition(&s, "ContainersReady").2.as_deref(),
            Some("containers with unready status: [side d]")
        );
        s.phase = Some(SUCCEEDED.into());
        update_conditions(&p, &mut s, &now());
        assert_eq!(condition(&s, "Ready").1.as_deref(), Some("PodCompleted"));
    }

    fn status_of(init: Vec<ContainerStatus>, app: Vec<ContainerStatus>) -> PodStatus {
        PodStatus {
            phase: Some(PENDING.into()),
            init_container_statuses: Some(init),
            container_statuses: Some(app),
            ..Default::default()
        }
    }

    #[test]
    fn get_shows_init_progress_like_kubectl() {
        let p = pod("Always", &["i1", "i2"], 1);
        let app = vec![named("c", waiting("PodInitializing", None), false)];
        let s = status_of(
            vec![
                named("i1", running(&now()), false),
                named("i2", waiting("PodInitializing", None), false),
            ],
            app.clone(),
        );
        assert_eq!(display_status(&p, &s), "Init:0/2");
        let s = status_of(
            vec![
                named("i1", exited(0), false),
                named("i2", running(&now()), false),
            ],
            app.clone(),
        );
        assert_eq!(display_status(&p, &s), "Init:1/2");
        let s = status_of(vec![named("i1", exited(3), false)], app.clone());
        assert_eq!(display_status(&p, &s), "Init:Error");
        let s = status_of(
            vec![named("i1", waiting("CrashLoopBackOff", None), true)],
            app.clone(),
        );
        assert_eq!(display_status(&p, &s), "Init:CrashLoopBackOff");
        let s = status_of(
            vec![named("i1", waiting("ImagePullBackOff", None), false)],
            app,
        );
        assert_eq!(display_status(&p, &s), "Init:ImagePullBackOff");
    }

    #[test]
    fn get_shows_the_first_app_container_reason() {
        let p = pod("Always", &[], 2);
        let mut s = status_of(
            vec![],
            vec![
                named("c", waiting("ErrImagePull", None), false),
                named("d", waiting("ContainerCreating", None), false),
            ],
        );
        assert_eq!(display_status(&p, &s), "ErrImagePull");
        let mut run = named("c", running(&now()), true);
        run.ready = true;
        s.container_statuses = Some(vec![run.clone(), named("d", exited(0), false)]);
        assert_eq!(display_status(&p, &s), "NotReady");
        set_condition(&mut s, "Ready", true, None, &now());
        assert_eq!(display_status(&p, &s), "Running");
        s.container_statuses = Some(vec![named("c", exited(137), false), run]);
        if let Some(t) = s.container_statuses.as_mut().unwrap()[0]
            .state
            .as_mut()
            .and_then(|st| st.terminated.as_mut())
        {
            t.reason = Some("OOMKilled".into());
        }
        assert_eq!(display_status(&p, &s), "OOMKilled");
        let mut deleting = p.clone();
        deleting.metadata.deletion_timestamp = Some(now());
        assert_eq!(display_status(&deleting, &s), "Terminating");
    }

    #[test]
    fn sidecars_count_in_ready_and_restarts() {
        let p = pod("Always", &["i1", "side*"], 1);
        let mut side = named("side", running(&now()), false);
        side.started = Some(true);
        side.ready = true;
        side.restart_count = 2;
        let mut i1 = named("i1", exited(0), false);
        i1.restart_count = 5;
        let mut c = named("c", running(&now()), false);
        c.ready = true;
        c.restart_count = 1;
        let s = status_of(vec![i1.clone(), side.clone()], vec![c]);
        assert_eq!(ready_count(&p, &s), (2, 2));
        assert_eq!(restarts(&p, &s), 3, "the sidecar's and the app's");
        let mut waiting_side = side;
        waiting_side.started = Some(false);
        let s = status_of(vec![i1, waiting_side], vec![]);
        assert_eq!(restarts(&p, &s), 7, "initializing: the init containers'");
    }
}
