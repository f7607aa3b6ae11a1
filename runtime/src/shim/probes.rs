//! Probes and lifecycle hooks. Each runs in a helper process (a re-exec of
//! podlab, `__probe`) that the shim reaps like any child, so the
//! single-threaded shim never blocks on one; a `sleep` hook is a timer
//! without a process. This file owns the helpers, the probe schedule and
//! thresholds, and what each verdict decides: started, ready, a restart,
//! a failed postStart or preStop hook.

use std::fs::{self, File};
use std::io::Read;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;

use crate::mutants::Mutant;
use crate::probe;
use crate::store::Event;

use super::terminate::AFTER_HOOK;
use super::{go_duration, io, podlab_command, unblock_signals_on_exec, Error, Shim};

/// Something the shim waits for on behalf of a container: a hook or probe
/// helper process, or (`pid: None`) the timer of a `sleep` hook.
#[derive(Debug)]
pub(super) struct Helper {
    pub(super) pid: Option<i32>,
    /// When a timer ends, or when a helper has run too long.
    pub(super) deadline: Option<Instant>,
    pub(super) output: PathBuf,
    pub(super) started: Instant,
}

/// Which probe: they differ in when they run and what a failure does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ProbeKind {
    Startup,
    Liveness,
    Readiness,
}

impl ProbeKind {
    pub(super) fn title(self) -> &'static str {
        match self {
            ProbeKind::Startup => "Startup",
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
        }
    }
}

/// One probe of the current run of a container.
pub(super) struct ProbeRun {
    pub(super) kind: ProbeKind,
    pub(super) timing: probe::Timing,
    pub(super) action: probe::Action,
    /// A kill after this probe fails uses this grace period when set.
    pub(super) grace: Option<i64>,
    pub(super) next_at: Instant,
    pub(super) helper: Option<Helper>,
    pub(super) successes: i32,
    pub(super) failures: i32,
}

/// The first KiB of a helper's output, trimmed: an event message.
pub(super) fn helper_output(path: &std::path::Path) -> String {
    let mut text = String::new();
    if let Ok(f) = File::open(path) {
        let _ = f.take(1024).read_to_string(&mut text);
    }
    text.trim().to_string()
}

impl Shim {
    /// Starts the container's probes that are due; a helper past its
    /// deadline is killed and counts as a failure.
    pub(super) fn tick_probes(&mut self, i: usize, now: Instant) {
        for kind in [
            ProbeKind::Startup,
            ProbeKind::Liveness,
            ProbeKind::Readiness,
        ] {
            // A verdict may stop the container and end its probes: look
            // each probe up afresh.
            let c = &self.ctrs[i];
            let Some(k) = c.probes.iter().position(|p| p.kind == kind) else {
                continue;
            };
            let p = &c.probes[k];
            if let Some(h) = &p.helper {
                if h.deadline.is_some_and(|d| d <= now) {
                    if let Some(pid) = h.pid {
                        let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
                    }
                    let timeout = p.timing.timeout;
                    self.probe_done(
                        i,
                        kind,
                        Err(format!(
                            "timeout: no answer within {}",
                            go_duration(timeout)
                        )),
                    );
                }
                continue;
            }
            if !c.probe_active(kind) || p.next_at > now {
                continue;
            }
            let request = probe::Request {
                container: c.spec.name.clone(),
                timeout_ms: Some(p.timing.timeout.as_millis() as u64),
                action: p.action.clone(),
            };
            let tag = kind.title().to_lowercase();
            let timeout = p.timing.timeout;
            let name = c.spec.name.clone();
            match self.spawn_helper(&name, &tag, &request, Some(timeout)) {
                Ok(h) => self.ctrs[i].probes[k].helper = Some(h),
                Err(e) => self.probe_done(i, kind, Err(crate::error::chain(&e))),
            }
        }
    }

    /// Runs a probe or hook in a re-exec of podlab (`__probe`), its output
    /// in a file under the pod's directory.
    pub(super) fn spawn_helper(
        &self,
        container: &str,
        tag: &str,
        request: &probe::Request,
        timeout: Option<Duration>,
    ) -> Result<Helper, Error> {
        let json = serde_json::to_string(request).map_err(Error::HelperRequest)?;
        let (ns, name) = (&self.dir.key.namespace, &self.dir.key.name);
        self.spawn_podlab(
            &format!("{container}.{tag}.out"),
            &["__probe", ns, name, &json],
            "the probe helper",
            // The helper enforces the timeout itself; this is the backstop.
            timeout.map(|t| t + Duration::from_secs(2)),
        )
    }

    /// Starts a re-exec of podlab on this pod's roots with `args` (a probe,
    /// a hook, a pull), its output in `probes/<output>` under the pod's
    /// directory. The shim's loop reaps it, like every child of the shim.
    pub(super) fn spawn_podlab(
        &self,
        output: &str,
        args: &[&str],
        what: &str,
        deadline_after: Option<Duration>,
    ) -> Result<Helper, Error> {
        let out_dir = self.dir.dir.join("probes");
        fs::create_dir_all(&out_dir).map_err(io(format!("mkdir {}", out_dir.display())))?;
        let output = out_dir.join(output);
        let out = File::create(&output).map_err(io(format!("create {}", output.display())))?;
        let err = out
            .try_clone()
            .map_err(io(format!("dup {}", output.display())))?;
        let mut cmd = podlab_command();
        unblock_signals_on_exec(&mut cmd);
        let child = cmd
            .arg("--root")
            .arg(&self.config.root)
            .arg("--image-root")
            .arg(&self.config.image_root)
            .arg("--data-root")
            .arg(&self.config.data_root)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(io(format!("spawn {what}")))?;
        let pid = child.id() as i32;
        std::mem::forget(child);
        let now = Instant::now();
        Ok(Helper {
            pid: Some(pid),
            deadline: deadline_after.map(|d| now + d),
            output,
            started: now,
        })
    }

    /// A probe's verdict: events, thresholds, and what they decide.
    pub(super) fn probe_done(&mut self, i: usize, kind: ProbeKind, result: Result<(), String>) {
        let now = Instant::now();
        let Some(k) = self.ctrs[i].probes.iter().position(|p| p.kind == kind) else {
            return;
        };
        let name = self.ctrs[i].spec.name.clone();
        let p = &mut self.ctrs[i].probes[k];
        let started = p.helper.take().map(|h| h.started).unwrap_or(now);
        p.next_at = (started + p.timing.period).max(now);
        let timing = p.timing;
        let grace = p.grace;
        match &result {
            Ok(()) => {
                p.successes += 1;
                p.failures = 0;
            }
            Err(_) => {
                p.failures += 1;
                p.successes = 0;
            }
        }
        let (successes, failures) = (p.successes, p.failures);
        if let Err(msg) = &result {
            self.event(Event::warning(
                "Unhealthy",
                "kubelet",
                format!("{} probe failed: {msg}", kind.title()),
            ));
        }
        let c = &mut self.ctrs[i];
        match kind {
            ProbeKind::Startup if result.is_ok() => {
                c.probe_started = true;
                for p in &mut c.probes {
                    p.next_at = p.next_at.max(now);
                }
            }
            ProbeKind::Readiness if result.is_ok() && successes >= timing.success_threshold => {
                c.probe_ready = true;
            }
            ProbeKind::Readiness
                if failures >= timing.failure_threshold
                    && self.mutant != Some(Mutant::ReadinessIgnored) =>
            {
                c.probe_ready = false;
            }
            ProbeKind::Liveness if self.mutant == Some(Mutant::LivenessIgnored) => {}
            ProbeKind::Startup | ProbeKind::Liveness
                if result.is_err() && failures >= timing.failure_threshold =>
            {
                let grace = grace
                    .map(|g| Duration::from_secs(g.max(0) as u64))
                    .unwrap_or_else(|| self.grace());
                let why = format!(
                    "Container {name} failed {} probe, will be restarted",
                    kind.title().to_lowercase()
                );
                self.stop_container(i, now + grace, Some(why));
            }
            _ => {}
        }
        self.ctrs[i].refresh();
    }

    /// The postStart hook ended: the container now counts as running, or
    /// is killed when the hook failed.
    pub(super) fn post_start_done(&mut self, i: usize, result: Result<(), String>) {
        self.ctrs[i].post_start = None;
        let result = match self.mutant {
            Some(Mutant::PostStartFailureIgnored) => Ok(()),
            _ => result,
        };
        match result {
            Ok(()) => self.on_running(i),
            Err(msg) => {
                let name = self.ctrs[i].spec.name.clone();
                let pod_ref = self.pod_ref();
                self.event(Event::warning(
                    "FailedPostStartHook",
                    "kubelet",
                    format!(
                        "PostStartHook failed for container \"{name}\" in pod \"{pod_ref}\": {msg}"
                    ),
                ));
                let deadline = Instant::now() + self.grace();
                self.stop_container(i, deadline, Some("FailedPostStartHook".into()));
            }
        }
    }

    /// The preStop hook ended (or failed, or ran out of time): SIGTERM,
    /// with at least two more seconds before SIGKILL, as kubelet gives.
    pub(super) fn pre_stop_done(&mut self, i: usize, result: Result<(), String>) {
        let now = Instant::now();
        let name = self.ctrs[i].spec.name.clone();
        if let Err(msg) = result {
            let pod_ref = self.pod_ref();
            self.event(Event::warning(
                "FailedPreStopHook",
                "kubelet",
                format!("PreStopHook failed for container \"{name}\" in pod \"{pod_ref}\": {msg}"),
            ));
        }
        let c = &mut self.ctrs[i];
        let Some(s) = c.stopping.as_mut() else {
            return;
        };
        if let Some(pid) = s.pre_stop.take().and_then(|h| h.pid) {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
        s.termed = true;
        s.deadline = s.deadline.max(now + AFTER_HOOK);
        if let Some(pid) = c.pid {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
    }
}
