//! One container as the shim tracks it: its part in the pod (`Role`), the
//! status it shows, and the timers and helpers of its current run. The
//! derived facts every other part of the shim asks (running, started,
//! completed) are answered here, from this state alone.

use std::time::Instant;

use k8s_openapi::api::core::v1::{Container, ContainerStatus};
use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::cgroups;
use crate::config::Config;
use crate::lifecycle;

use super::probes::{Helper, ProbeKind, ProbeRun};
use super::terminate::Stopping;

/// The part a container plays in the pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Role {
    /// A regular init container: runs to completion before the next one.
    Init,
    /// An init container with `restartPolicy: Always`: started in order,
    /// then kept running beside the app containers.
    Sidecar,
    App,
}

pub(super) struct Ctr {
    pub(super) role: Role,
    pub(super) spec: Container,
    pub(super) leaf: Option<cgroups::Leaf>,
    pub(super) pid: Option<i32>,
    pub(super) started_at: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,
    pub(super) run_since: Option<Instant>,
    pub(super) oom_base: u64,
    pub(super) status: ContainerStatus,
    /// When to start it again after it stopped (the crash back-off).
    pub(super) restart_at: Option<Instant>,
    pub(super) backoff: lifecycle::BackOff,
    /// When to try again after an image or create error.
    pub(super) retry_at: Option<Instant>,
    pub(super) retry_backoff: lifecycle::BackOff,
    /// When a shown ErrImagePull turns into ImagePullBackOff.
    pub(super) pull_backoff_at: Option<Instant>,
    pub(super) pulled: bool,
    /// The `podlab image pull` helper of the coming start, while it runs.
    pub(super) pull: Option<Helper>,
    /// The image was pulled for the coming start (imagePullPolicy Always
    /// pulls once per start, not once per attempt to create it).
    pub(super) pull_done: bool,
    /// A container was created at least once: the next start is a restart.
    pub(super) ran: bool,
    /// It stopped and is not started again.
    pub(super) finished: bool,
    /// Being stopped because its image changed: started again at once,
    /// whatever the restart policy.
    pub(super) respec: bool,
    pub(super) post_start: Option<Helper>,
    pub(super) probes: Vec<ProbeRun>,
    /// The startup probe passed (or there is none) in the current run.
    pub(super) probe_started: bool,
    /// The readiness probe's verdict in the current run.
    pub(super) probe_ready: bool,
    pub(super) stopping: Option<Stopping>,
    /// The current start's log and the pipes it is read from.
    pub(super) log: Option<super::logpipe::CtrLog>,
}

impl Ctr {
    pub(super) fn new(role: Role, spec: Container, config: &Config, pod_has_init: bool) -> Ctr {
        let first = if role == Role::App && !pod_has_init {
            "ContainerCreating"
        } else {
            "PodInitializing"
        };
        Ctr {
            role,
            status: ContainerStatus {
                name: spec.name.clone(),
                image: spec.image.clone().unwrap_or_default(),
                state: Some(lifecycle::waiting(first, None)),
                started: Some(false),
                ..Default::default()
            },
            spec,
            leaf: None,
            pid: None,
            started_at: None,
            run_since: None,
            oom_base: 0,
            restart_at: None,
            backoff: lifecycle::BackOff::new(config.backoff_base, config.backoff_max),
            retry_at: None,
            retry_backoff: lifecycle::BackOff::new(config.backoff_base, config.backoff_max),
            pull_backoff_at: None,
            pulled: false,
            pull: None,
            pull_done: false,
            ran: false,
            finished: false,
            respec: false,
            post_start: None,
            probes: Vec::new(),
            log: None,
            probe_started: false,
            probe_ready: false,
            stopping: None,
        }
    }

    pub(super) fn running(&self) -> bool {
        self.pid.is_some()
    }

    /// Running, its postStart hook done and its startup probe passed.
    pub(super) fn is_started(&self) -> bool {
        self.pid.is_some() && self.post_start.is_none() && self.probe_started
    }

    pub(super) fn waiting_for_timer(&self) -> bool {
        self.restart_at.is_some() || self.retry_at.is_some() || self.pull.is_some()
    }

    /// A regular init container that ran to a successful end.
    pub(super) fn completed(&self) -> bool {
        self.finished
            && self
                .status
                .state
                .as_ref()
                .and_then(|s| s.terminated.as_ref())
                .is_some_and(|t| t.exit_code == 0)
    }

    /// Has ended at least once, whatever its exit code.
    pub(super) fn has_terminated(&self) -> bool {
        let terminated = |s: Option<&k8s_openapi::api::core::v1::ContainerState>| {
            s.is_some_and(|s| s.terminated.is_some())
        };
        terminated(self.status.state.as_ref()) || terminated(self.status.last_state.as_ref())
    }

    /// Derives `started` and `ready` from what the shim knows.
    pub(super) fn refresh(&mut self) {
        let started = self.is_started();
        self.status.started = Some(started);
        self.status.ready = match self.role {
            // kubelet reports a completed init container as ready.
            Role::Init => self.completed(),
            _ => started && self.probe_ready,
        };
    }

    pub(super) fn probe_active(&self, kind: ProbeKind) -> bool {
        self.pid.is_some()
            && self.post_start.is_none()
            && self.stopping.is_none()
            && (kind == ProbeKind::Startup) != self.probe_started
    }

    /// The container will not be started again (the pod is terminating, or
    /// its sandbox died and there are no namespaces left to start into), so
    /// no timer that would start it or change what it shows is left: an
    /// ErrImagePull must not turn into ImagePullBackOff after the pod
    /// reported SandboxDied. What still runs keeps its hooks, probes and
    /// grace periods: they act on live processes.
    pub(super) fn cancel_starts(&mut self) {
        self.restart_at = None;
        self.retry_at = None;
        self.pull_backoff_at = None;
        // A pull for a start that will not come: the store stays consistent
        // (blobs move in only when complete), so it can simply end.
        if let Some(pid) = self.pull.take().and_then(|h| h.pid) {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }

    /// A shown ErrImagePull turns into ImagePullBackOff once its time has
    /// come; returns the back-off message when it did.
    pub(super) fn pull_backoff_due(&mut self, now: Instant) -> Option<String> {
        if self.pull_backoff_at.is_none_or(|t| t > now) {
            return None;
        }
        self.pull_backoff_at = None;
        let image = self.spec.image.clone().unwrap_or_default();
        let msg = format!("Back-off pulling image \"{image}\"");
        self.status.state = Some(lifecycle::waiting("ImagePullBackOff", Some(msg.clone())));
        Some(msg)
    }

    /// Kills the helpers of the current run (their verdicts no longer matter).
    /// Whether the OOM killer killed any process of the container since
    /// this run started, its main process or not: the count of its cgroup
    /// went up past the one read at the start.
    pub(super) fn oom_killed_this_run(&self) -> bool {
        self.leaf
            .as_ref()
            .and_then(|l| l.oom_kill_count().ok())
            .is_some_and(|n| n > self.oom_base)
    }

    pub(super) fn drop_helpers(&mut self) {
        let helpers = self
            .probes
            .drain(..)
            .filter_map(|p| p.helper)
            .chain(self.post_start.take())
            .chain(self.stopping.as_mut().and_then(|s| s.pre_stop.take()));
        for h in helpers {
            if let Some(pid) = h.pid {
                let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn ctr(image: &str) -> Ctr {
        let spec: Container =
            serde_json::from_value(serde_json::json!({"name": "a", "image": image})).unwrap();
        let config = Config::new(
            "/nonexistent/root".into(),
            "/nonexistent/images".into(),
            "/nonexistent/data".into(),
        );
        Ctr::new(Role::App, spec, &config, false)
    }

    fn reason(c: &Ctr) -> Option<&str> {
        c.status.state.as_ref()?.waiting.as_ref()?.reason.as_deref()
    }

    /// A container as `image_failed` leaves it: ErrImagePull shown, a retry
    /// and the turn to ImagePullBackOff pending.
    fn in_err_image_pull(now: Instant) -> Ctr {
        let mut c = ctr("missing:1");
        c.status.state = Some(lifecycle::waiting("ErrImagePull", None));
        c.retry_at = Some(now + Duration::from_secs(2));
        c.pull_backoff_at = Some(now + Duration::from_secs(1));
        c
    }

    #[test]
    fn an_image_error_turns_into_image_pull_back_off_once_in_time() {
        let now = Instant::now();
        let mut c = in_err_image_pull(now);
        assert_eq!(c.pull_backoff_due(now), None);
        assert_eq!(reason(&c), Some("ErrImagePull"));
        let later = now + Duration::from_secs(1);
        assert_eq!(
            c.pull_backoff_due(later).as_deref(),
            Some("Back-off pulling image \"missing:1\"")
        );
        assert_eq!(reason(&c), Some("ImagePullBackOff"));
        assert_eq!(c.pull_backoff_due(later), None);
    }

    #[rstest::rstest]
    #[case::v1(
        cgroups::Mode::V1,
        "memory.oom_control",
        "oom_kill_disable 0\nunder_oom 0\noom_kill 4\n"
    )]
    #[case::v2(
        cgroups::Mode::V2,
        "memory.events",
        "low 0\nhigh 0\nmax 9\noom 4\noom_kill 4\n"
    )]
    fn an_oom_kill_of_any_process_in_the_run_counts(
        #[case] mode: cgroups::Mode,
        #[case] file: &str,
        #[case] after: &str,
    ) {
        let dir = tempfile::tempdir().unwrap();
        cgroups::seed_fixture_root(mode, dir.path()).unwrap();
        let m = cgroups::Manager::with_root(mode, dir.path().to_path_buf());
        let pod = m.create_pod("u1", &cgroups::Limits::default()).unwrap();
        let leaf = pod
            .create_leaf(
                "ctr-a",
                &cgroups::Limits::default(),
                cgroups::Devices::Allowlist,
            )
            .unwrap();
        let events = leaf.paths()[0].1.join(file);
        let mut c = ctr("probe:1");
        assert!(!c.oom_killed_this_run(), "no cgroup yet");
        c.leaf = Some(leaf);
        // Kills of an earlier run (the base read at start) do not count.
        std::fs::write(&events, after).unwrap();
        c.oom_base = 4;
        assert!(!c.oom_killed_this_run());
        c.oom_base = 3;
        assert!(c.oom_killed_this_run());
    }

    #[test]
    fn after_the_sandbox_died_an_image_error_stays_as_it_was_shown() {
        let now = Instant::now();
        let mut c = in_err_image_pull(now);
        c.restart_at = Some(now);
        c.cancel_starts();
        // Nothing is retried, restarted or turned into a back-off any more.
        assert!(!c.waiting_for_timer());
        assert_eq!(c.pull_backoff_at, None);
        assert_eq!(c.pull_backoff_due(now + Duration::from_secs(60)), None);
        assert_eq!(reason(&c), Some("ErrImagePull"));
    }
}
