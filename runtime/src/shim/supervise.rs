//! Supervision: reaping every child of the shim (containers, the pause,
//! probe and hook helpers) and acting on each exit: a container's
//! terminated state, an OOM kill, the restart policy with the kubelet's
//! back-off; the pod failing when its sandbox dies; and the failure the
//! shim cannot recover from, which leaves the pod Pending with the reason.

use std::time::{Duration, Instant};

use nix::sys::wait::{WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::lifecycle;
use crate::mutants::Mutant;
use crate::store::{now_time, Event};

use super::ctr::{Ctr, Role};
use super::probes::{helper_output, Helper};
use super::{go_duration, release, Error, Shim};

impl Shim {
    /// Reaps every exited child: container exits become terminated states,
    /// hook and probe helpers deliver their verdicts.
    pub(super) fn reap(&mut self) -> Result<(), Error> {
        loop {
            let status =
                match nix::sys::wait::waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::StillAlive) | Err(_) => return Ok(()),
                    Ok(s) => s,
                };
            let (pid, code, signal) = match status {
                WaitStatus::Exited(p, c) => (p.as_raw(), c, None),
                WaitStatus::Signaled(p, s, _) => (p.as_raw(), 128 + s as i32, Some(s as i32)),
                _ => continue,
            };
            if self.state.pause.is_some_and(|p| p.pid == pid) {
                self.event(Event::warning(
                    "SandboxChanged",
                    "kubelet",
                    "Pod sandbox died: the pause process exited",
                ));
                self.status.reason = Some("SandboxDied".into());
                self.status.message =
                    Some("the pause process holding the pod's namespaces exited".into());
                self.ctrs.iter_mut().for_each(Ctr::cancel_starts);
                continue;
            }
            if let Some(i) = self.ctrs.iter().position(|c| c.pid == Some(pid)) {
                self.on_exit(i, pid, code, signal);
                continue;
            }
            let verdict = |h: &Helper| {
                if code == 0 {
                    Ok(())
                } else {
                    let out = helper_output(&h.output);
                    Err(if out.is_empty() {
                        format!("exit code {code}")
                    } else {
                        out
                    })
                }
            };
            let is = |h: &Option<Helper>| h.as_ref().is_some_and(|h| h.pid == Some(pid));
            for i in 0..self.ctrs.len() {
                let c = &self.ctrs[i];
                if is(&c.post_start) {
                    let r = c.post_start.as_ref().map(verdict).unwrap_or(Ok(()));
                    self.post_start_done(i, r);
                    break;
                }
                if let Some(s) = c.stopping.as_ref().filter(|s| is(&s.pre_stop)) {
                    let r = s.pre_stop.as_ref().map(verdict).unwrap_or(Ok(()));
                    self.pre_stop_done(i, r);
                    break;
                }
                if is(&c.pull) {
                    let r = c.pull.as_ref().map(verdict).unwrap_or(Ok(()));
                    self.pull_finished(i, r)?;
                    break;
                }
                if let Some(p) = c.probes.iter().find(|p| is(&p.helper)) {
                    let (kind, r) = (p.kind, p.helper.as_ref().map(verdict).unwrap_or(Ok(())));
                    self.probe_done(i, kind, r);
                    break;
                }
            }
        }
    }

    /// A container's process exited: its terminated state, an OOM kill
    /// noticed from its cgroup, and the restart policy's decision.
    fn on_exit(&mut self, i: usize, pid: i32, code: i32, signal: Option<i32>) {
        let now = now_time();
        let c = &mut self.ctrs[i];
        c.pid = None;
        c.drop_helpers();
        c.stopping = None;
        c.probe_started = false;
        c.probe_ready = false;
        // Any OOM kill in the container's cgroup during this run, whichever
        // process it hit: a shell whose child was killed exits 137 by itself,
        // and containerd reports OOMKilled from the cgroup's event all the same.
        let oom = c.oom_killed_this_run() && self.mutant != Some(Mutant::OomUnreported);
        let message = self.termination_message(i, code);
        let c = &mut self.ctrs[i];
        let mut state =
            lifecycle::terminated(code, signal, oom, c.started_at.clone(), &now, message);
        if self.mutant == Some(Mutant::WrongExitReason) {
            if let Some(t) = state.terminated.as_mut() {
                t.reason = Some("Error".into());
            }
        }
        if c.status
            .state
            .as_ref()
            .is_none_or(|s| s.terminated.is_none())
        {
            c.status.state = Some(state);
        }
        c.refresh();
        if oom {
            let name = c.spec.name.clone();
            self.event(Event::warning(
                "OOMKilling",
                "kernel-monitor",
                format!("Memory cgroup out of memory: the kernel killed a process of container {name} (main process {pid}): it exceeded its memory limit"),
            ));
        }
        self.schedule_restart(i, code);
    }

    /// The termination message of container `i`'s run that ended with
    /// `code`: its terminationMessagePath file, or its log's tail when the
    /// policy falls back to it.
    fn termination_message(&mut self, i: usize, code: i32) -> Option<String> {
        if self.mutant == Some(Mutant::NoTerminationMessage) {
            return None;
        }
        let file = self
            .dir
            .container_dir(&self.ctrs[i].spec.name)
            .join(super::start::TERMINATION_LOG);
        let c = &mut self.ctrs[i];
        let log = c.log.as_mut().map(|l| {
            // What the run printed last may still be in its pipes.
            let _ = l.pump();
            l.path().to_path_buf()
        });
        crate::termination::message(
            c.spec.termination_message_policy.as_deref(),
            crate::termination::read_tail(&file),
            code,
            || {
                log.and_then(|p| crate::logs::read(&p).ok())
                    .unwrap_or_default()
            },
        )
    }

    /// Applies the restart policy with the kubelet's back-off: the first
    /// restart is immediate, then the delay doubles from the configured base
    /// up to five minutes (CrashLoopBackOff meanwhile), and starts over
    /// after ten minutes of running.
    pub(super) fn schedule_restart(&mut self, i: usize, code: i32) {
        let policy = lifecycle::restart_policy(&self.pod).to_string();
        let c = &self.ctrs[i];
        let respec = c.respec;
        let restart = self.terminating.is_none()
            && !self.sandbox_lost()
            && !self.failed_by_node()
            && (respec
                || lifecycle::should_restart(
                    &policy,
                    c.role == Role::Sidecar,
                    c.role == Role::Init,
                    code,
                ))
            && self.mutant != Some(Mutant::NoRestart)
            // A sidecar is not restarted once the pod's app containers are done.
            && !(c.role == Role::Sidecar && self.pod_terminal());
        let pod_ref = self.pod_ref();
        let c = &mut self.ctrs[i];
        c.respec = false;
        if !restart {
            c.finished = true;
            c.refresh();
            return;
        }
        let now = Instant::now();
        if respec {
            // It did not fail: no back-off, no CrashLoopBackOff; it shows
            // as being created again, its run as the last state.
            c.restart_at = Some(now + super::update::RESPEC_DELAY);
            c.status.last_state = c.status.state.take();
            c.status.state = Some(lifecycle::waiting("ContainerCreating", None));
            return;
        }
        let delay = if self.mutant == Some(Mutant::NoCrashBackoff) {
            Duration::ZERO
        } else {
            c.backoff.delay(now)
        };
        c.restart_at = Some(now + delay);
        if delay.is_zero() {
            return;
        }
        let name = c.spec.name.clone();
        c.status.last_state = c.status.state.take();
        c.status.state = Some(lifecycle::waiting(
            "CrashLoopBackOff",
            Some(format!(
                "back-off {} restarting failed container={name} pod={pod_ref}",
                go_duration(delay)
            )),
        ));
        self.event(Event::warning(
            "BackOff",
            "kubelet",
            format!("Back-off restarting failed container {name} in pod {pod_ref}"),
        ));
    }

    /// Records a failure the shim cannot recover from, releases what the pod
    /// holds on the host and tells a waiting `apply`.
    pub(super) fn fail(&mut self, message: &str) {
        self.event(Event::warning(
            "FailedCreatePodSandBox",
            "kubelet",
            message.to_string(),
        ));
        for c in &mut self.ctrs {
            c.drop_helpers();
        }
        let _ = release(self.sys, &self.config, &self.cgroups, &self.dir, &self.uid);
        let now = now_time();
        self.status.phase = Some(lifecycle::PENDING.into());
        self.status.reason = None;
        self.status.message = Some(format!("Failed to create pod sandbox: {message}"));
        lifecycle::set_condition(
            &mut self.status,
            "PodReadyToStartContainers",
            false,
            Some("FailedCreatePodSandBox"),
            &now,
        );
        let _ = self.dir.write_status(&self.status);
        self.notify(&format!("Pending Failed to create pod sandbox: {message}"));
    }
}
