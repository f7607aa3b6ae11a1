//! Stopping containers, and the pod's end: one container's preStop hook,
//! SIGTERM and SIGKILL at its deadline; the order a finished or deleted
//! pod stops in (app containers, then sidecars last first); the grace
//! period of a delete; and the final release of the pod's host resources
//! and record.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::sys::signalfd::SignalFd;
use nix::sys::wait::{WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::mutants::Mutant;
use crate::probe;
use crate::store::Event;
use crate::sys;

use super::ctr::{Ctr, Role};
use super::probes::Helper;
use super::{io, release, Error, Shim};

/// The least time kubelet leaves between SIGTERM and SIGKILL after a
/// preStop hook used up the grace period.
pub(super) const AFTER_HOOK: Duration = Duration::from_secs(2);

/// A container being stopped: its preStop hook, then SIGTERM, then SIGKILL
/// at the deadline.
pub(super) struct Stopping {
    pub(super) pre_stop: Option<Helper>,
    pub(super) deadline: Instant,
    pub(super) termed: bool,
}

impl Shim {
    /// Stops what still runs of a pod being deleted or done: app (and init)
    /// containers first, then the sidecars one by one, last first.
    pub(super) fn stop_in_order(&mut self) {
        let deadline = self
            .terminating
            .unwrap_or_else(|| Instant::now() + self.grace());
        let others: Vec<usize> = (0..self.ctrs.len())
            .filter(|&i| self.ctrs[i].role != Role::Sidecar && self.ctrs[i].running())
            .collect();
        for &i in &others {
            self.stop_container(i, deadline, None);
        }
        if !others.is_empty() {
            return;
        }
        let sidecars: Vec<usize> = (0..self.ctrs.len())
            .rev()
            .filter(|&i| self.ctrs[i].role == Role::Sidecar && self.ctrs[i].running())
            .collect();
        if let Some(&last) = sidecars.first() {
            self.stop_container(last, deadline, None);
        }
        self.ctrs.iter_mut().for_each(Ctr::cancel_starts);
    }

    /// Deletion: no more restarts or probes; every container gets the grace
    /// period (re-read, so a second delete can shorten it).
    pub(super) fn begin_termination(&mut self) {
        if self.mutant == Some(Mutant::DeleteKeepsIdle) && self.terminating.is_none() {
            self.remove_late = !self.ctrs.iter().any(|c| c.role == Role::App && c.running());
        }
        let pod = self.dir.read_pod().unwrap_or_else(|_| self.pod.clone());
        // The deletion bumped the generation: the status reports it seen.
        self.pod.metadata.generation = pod.metadata.generation;
        let grace = pod
            .metadata
            .deletion_grace_period_seconds
            .or_else(|| {
                pod.spec
                    .as_ref()
                    .and_then(|s| s.termination_grace_period_seconds)
            })
            .unwrap_or(30)
            .max(0) as u64;
        let grace = if self.mutant == Some(Mutant::NoGrace) {
            0
        } else {
            grace
        };
        let deadline = Instant::now() + Duration::from_secs(grace);
        if self.terminating.is_some_and(|d| d <= deadline) {
            return;
        }
        self.terminating = Some(deadline);
        for c in &mut self.ctrs {
            c.cancel_starts();
            if let Some(s) = &mut c.stopping {
                s.deadline = s.deadline.min(deadline);
                if let Some(h) = &mut s.pre_stop {
                    h.deadline = Some(h.deadline.map_or(deadline, |d| d.min(deadline)));
                }
            }
        }
        self.stop_in_order();
    }

    /// Everything stopped (or the time is up): the pod's host resources
    /// are released and its record removed.
    pub(super) fn finish_termination(&mut self) -> Result<(), Error> {
        for c in &mut self.ctrs {
            c.drop_helpers();
        }
        let errors = release(self.sys, &self.config, &self.cgroups, &self.dir, &self.uid);
        if !errors.is_empty() {
            return Err(Error::Other(errors.join("; ")));
        }
        if self.remove_late {
            std::thread::sleep(Duration::from_secs(3));
        }
        let lock = self.store.lock()?;
        self.store.remove(&lock, &self.dir.key)?;
        Ok(())
    }

    /// A stopping container's due timers: the end of its preStop hook,
    /// then SIGKILL at its deadline.
    pub(super) fn tick_stopping(&mut self, i: usize, now: Instant) {
        let Some(s) = self.ctrs[i].stopping.as_mut() else {
            return;
        };
        let hook_over = s
            .pre_stop
            .as_ref()
            .is_some_and(|h| h.deadline.is_some_and(|d| d <= now));
        if hook_over {
            let timer = s.pre_stop.as_ref().is_some_and(|h| h.pid.is_none());
            self.pre_stop_done(
                i,
                if timer {
                    Ok(())
                } else {
                    Err("the hook did not finish within the grace period".into())
                },
            );
            return;
        }
        let Some(s) = self.ctrs[i].stopping.as_mut() else {
            return;
        };
        if s.termed && s.deadline <= now {
            // Killed, and again every few seconds should anything linger.
            s.deadline = now + Duration::from_secs(5);
            self.kill_all(i);
        }
    }

    /// Stops one container: preStop hook, SIGTERM, SIGKILL at `deadline`.
    pub(super) fn stop_container(&mut self, i: usize, deadline: Instant, why: Option<String>) {
        let now = Instant::now();
        let c = &mut self.ctrs[i];
        let Some(pid) = c.pid else {
            return;
        };
        if let Some(s) = &mut c.stopping {
            s.deadline = s.deadline.min(deadline);
            return;
        }
        // Probes end with the run; a pending postStart hook is abandoned.
        c.drop_helpers();
        let name = c.spec.name.clone();
        let message = why.unwrap_or_else(|| format!("Stopping container {name}"));
        self.event(Event::normal("Killing", "kubelet", message));
        let c = &mut self.ctrs[i];
        c.stopping = Some(Stopping {
            pre_stop: None,
            deadline,
            termed: false,
        });
        if deadline <= now {
            self.kill_all(i);
            if let Some(s) = self.ctrs[i].stopping.as_mut() {
                s.termed = true;
                s.deadline = now + Duration::from_secs(5);
            }
            return;
        }
        let hook = c
            .spec
            .lifecycle
            .as_ref()
            .filter(|_| self.mutant != Some(crate::mutants::Mutant::PreStopIgnored))
            .and_then(|l| l.pre_stop.clone())
            .map(|h| probe::hook_action(&h, &c.spec, self.status.pod_ip.as_deref()));
        match hook {
            Some(Ok(probe::Hook::Sleep(d))) => {
                if let Some(s) = self.ctrs[i].stopping.as_mut() {
                    s.pre_stop = Some(Helper {
                        pid: None,
                        deadline: Some((now + d).min(deadline)),
                        output: PathBuf::new(),
                        started: now,
                    });
                }
            }
            Some(Ok(probe::Hook::Run(action))) => {
                let request = probe::Request {
                    container: name.clone(),
                    timeout_ms: Some(deadline.saturating_duration_since(now).as_millis() as u64),
                    action,
                };
                match self.spawn_helper(&name, "prestop", &request, None) {
                    Ok(mut h) => {
                        h.deadline = Some(deadline);
                        if let Some(s) = self.ctrs[i].stopping.as_mut() {
                            s.pre_stop = Some(h);
                        }
                    }
                    Err(e) => self.pre_stop_done(i, Err(crate::error::chain(&e))),
                }
            }
            Some(Err(e)) => self.pre_stop_done(i, Err(e)),
            None => {
                let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGTERM);
                if let Some(s) = self.ctrs[i].stopping.as_mut() {
                    s.termed = true;
                }
            }
        }
    }

    /// SIGKILL to the container and everything in its cgroup (its exec'd
    /// processes and hooks included).
    fn kill_all(&mut self, i: usize) {
        let c = &self.ctrs[i];
        let mut pids: Vec<i32> = c.pid.into_iter().collect();
        if let Some(leaf) = &c.leaf {
            pids.extend(leaf.procs().unwrap_or_default());
        }
        for pid in pids {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }

    /// After a failure: nothing runs; the next SIGTERM is the pod's delete.
    pub(super) fn wait_for_delete(&mut self, sigfd: &SignalFd) -> Result<(), Error> {
        loop {
            sys::wait_readable(sigfd, None).map_err(io("wait for signals"))?;
            while let Ok(Some(info)) = sigfd.read_signal() {
                match Signal::try_from(info.ssi_signo as i32) {
                    Ok(Signal::SIGTERM) | Ok(Signal::SIGINT) => return self.finish_termination(),
                    _ => {
                        // Reap whatever exited (e.g. a pause that failed).
                        while let Ok(ws) =
                            nix::sys::wait::waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG))
                        {
                            if ws == WaitStatus::StillAlive {
                                break;
                            }
                        }
                    }
                }
            }
        }
    }
}
