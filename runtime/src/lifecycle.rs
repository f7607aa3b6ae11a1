//! The pod's lifecycle as the kubelet reports it: phase, conditions and
//! container states, computed from what the shim observes. Pure functions,
//! so the rules are unit-tested without starting anything.

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, Pod, PodCondition, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

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

/// The status the API server gives a new pod, once the scheduler has bound it.
pub fn initial_status(now: &Time) -> PodStatus {
    let mut status = PodStatus {
        phase: Some(PENDING.into()),
        qos_class: None,
        ..Default::default()
    };
    set_condition(&mut status, "PodScheduled", true, None, now);
    status
}

/// Sets a condition, keeping its transition time when its value is unchanged.
pub fn set_condition(
    status: &mut PodStatus,
    type_: &str,
    value: bool,
    reason: Option<&str>,
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
        return;
    }
    conditions.push(PodCondition {
        type_: type_.into(),
        status: value,
        reason: reason.map(String::from),
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

/// The pod phase by the kubelet's rules (`getPhase`): containers waiting to
/// start keep the pod Pending; any running container makes it Running; when
/// all have stopped, the restart policy decides between Running (they will
/// be restarted), Succeeded and Failed.
pub fn phase(restart_policy: &str, statuses: &[ContainerStatus], expected: usize) -> &'static str {
    let (mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0);
    for s in statuses {
        let state = s.state.as_ref();
        if state.and_then(|st| st.running.as_ref()).is_some() {
            running += 1;
        } else if let Some(t) = state.and_then(|st| st.terminated.as_ref()) {
            stopped += 1;
            if t.exit_code == 0 {
                succeeded += 1;
            }
        } else if s
            .last_state
            .as_ref()
            .and_then(|l| l.terminated.as_ref())
            .is_some()
        {
            // Waiting to be restarted after a run: counts as stopped.
            stopped += 1;
        } else {
            waiting += 1;
        }
    }
    waiting += expected.saturating_sub(statuses.len());
    if waiting > 0 {
        PENDING
    } else if running > 0 {
        RUNNING
    } else if stopped > 0 {
        match restart_policy {
            "Always" => RUNNING,
            _ if stopped == succeeded => SUCCEEDED,
            "Never" => FAILED,
            _ => RUNNING,
        }
    } else {
        PENDING
    }
}

pub fn restart_policy(pod: &Pod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always")
}

/// What `kubectl get pods` prints in STATUS: a waiting or terminated
/// container's reason wins over the phase, and a pod being deleted is
/// Terminating.
pub fn display_status(pod: &Pod, status: &PodStatus) -> String {
    if pod.metadata.deletion_timestamp.is_some() {
        return "Terminating".into();
    }
    let mut reason = status
        .reason
        .clone()
        .unwrap_or_else(|| status.phase.clone().unwrap_or_else(|| PENDING.into()));
    for cs in status.container_statuses.iter().flatten() {
        let Some(state) = &cs.state else { continue };
        if let Some(w) = state.waiting.as_ref().and_then(|w| w.reason.as_ref()) {
            if !w.is_empty() {
                reason = w.clone();
            }
        } else if let Some(t) = &state.terminated {
            reason = t.reason.clone().unwrap_or_else(|| match t.signal {
                Some(s) => format!("Signal:{s}"),
                None => format!("ExitCode:{}", t.exit_code),
            });
        }
    }
    reason
}

/// `READY` column: ready containers / all containers.
pub fn ready_count(pod: &Pod, status: &PodStatus) -> (usize, usize) {
    let total = pod.spec.as_ref().map(|s| s.containers.len()).unwrap_or(0);
    let ready = status
        .container_statuses
        .iter()
        .flatten()
        .filter(|c| c.ready)
        .count();
    (ready, total)
}

pub fn restarts(status: &PodStatus) -> i32 {
    status
        .container_statuses
        .iter()
        .flatten()
        .map(|c| c.restart_count)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn now() -> Time {
        crate::store::now_time()
    }

    fn cs(state: ContainerState, last_terminated: bool) -> ContainerStatus {
        ContainerStatus {
            name: "c".into(),
            state: Some(state),
            last_state: last_terminated.then(|| terminated(1, None, false, None, &now(), None)),
            ..Default::default()
        }
    }

    #[rstest]
    #[case::nothing_started("Always", vec![], 2, PENDING)]
    #[case::one_of_two_running("Always", vec![cs(running(&now()), false)], 2, PENDING)]
    #[case::creating("Always", vec![cs(waiting("ContainerCreating", None), false)], 1, PENDING)]
    #[case::all_running("Never", vec![cs(running(&now()), false)], 1, RUNNING)]
    #[case::crash_loop("Always", vec![cs(waiting("CrashLoopBackOff", None), true)], 1, RUNNING)]
    #[case::completed_never("Never", vec![cs(terminated(0, None, false, None, &now(), None), false)], 1, SUCCEEDED)]
    #[case::failed_never("Never", vec![cs(terminated(1, None, false, None, &now(), None), false)], 1, FAILED)]
    #[case::failed_onfailure("OnFailure", vec![cs(terminated(1, None, false, None, &now(), None), false)], 1, RUNNING)]
    #[case::completed_onfailure("OnFailure", vec![cs(terminated(0, None, false, None, &now(), None), false)], 1, SUCCEEDED)]
    #[case::exited_always("Always", vec![cs(terminated(0, None, false, None, &now(), None), false)], 1, RUNNING)]
    fn phase_follows_the_kubelet(
        #[case] policy: &str,
        #[case] statuses: Vec<ContainerStatus>,
        #[case] expected: usize,
        #[case] want: &str,
    ) {
        assert_eq!(phase(policy, &statuses, expected), want);
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
    fn conditions_keep_their_transition_time_and_order() {
        let t0 = Time(k8s_openapi::jiff::Timestamp::from_second(1000).unwrap());
        let t1 = Time(k8s_openapi::jiff::Timestamp::from_second(2000).unwrap());
        let mut s = initial_status(&t0);
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
}
