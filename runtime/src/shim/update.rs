//! A stored pod changed under its running shim (an update through the
//! API: `kubectl set image`, `label`, a shorter `activeDeadlineSeconds`).
//! The API layer writes the record and sends SIGHUP; the shim re-reads the
//! record and does what a kubelet does: a container whose image changed
//! is killed and started again with the new image, whatever the restart
//! policy; the deadline is counted from the pod's start with the new
//! value; downwardAPI volumes get the new labels and annotations.

use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::mutants::Mutant;
use crate::store::{Event, PodDir};

use super::{read_shim, Error, Shim};

/// Tells the pod's shim that its record changed. Only once the shim
/// blocks SIGHUP (it reads the record after that): before, SIGHUP would
/// kill it, and it has not read the record yet anyway.
pub fn notify_update(dir: &PodDir) {
    let Some(shim) = read_shim(dir).filter(|s| s.is_alive()) else {
        return;
    };
    if blocks_sighup(shim.pid) {
        let _ = kill(Pid::from_raw(shim.pid), Signal::SIGHUP);
    }
}

/// Whether SIGHUP is in the process's blocked mask (`SigBlk` of its status).
fn blocks_sighup(pid: i32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigBlk:"))
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (libc::SIGHUP - 1)) != 0)
}

impl Shim {
    /// Re-reads the pod's record and acts on what changed.
    pub(super) fn pod_updated(&mut self) -> Result<(), Error> {
        let mut pod = self.dir.read_pod()?;
        if self.mutant == Some(Mutant::RestartNeverIgnored) {
            if let Some(spec) = pod.spec.as_mut() {
                spec.restart_policy = Some("Always".into());
            }
        }
        let spec = pod.spec.clone().unwrap_or_default();
        let now = Instant::now();
        let grace = self.grace();
        for c in spec
            .init_containers
            .iter()
            .flatten()
            .chain(&spec.containers)
        {
            let Some(i) = self.ctrs.iter().position(|x| x.spec.name == c.name) else {
                continue;
            };
            if self.ctrs[i].spec.image == c.image {
                continue;
            }
            let ctr = &mut self.ctrs[i];
            ctr.spec.image = c.image.clone();
            ctr.status.image = c.image.clone().unwrap_or_default();
            ctr.pulled = false;
            if ctr.running() {
                ctr.respec = true;
                let why = format!("Container {} definition changed, will be restarted", c.name);
                self.stop_container(i, now + grace, Some(why));
            } else if ctr.retry_at.is_some() {
                // Failing on the old image: the new one is tried at once.
                ctr.retry_at = Some(now);
            }
        }
        let old_deadline = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.active_deadline_seconds);
        let labels_changed = pod.metadata.labels != self.pod.metadata.labels
            || pod.metadata.annotations != self.pod.metadata.annotations;
        // The containers' specs are the shim's own (images merged above).
        self.pod.metadata = pod.metadata;
        if let (Some(mine), Some(new)) = (self.pod.spec.as_mut(), pod.spec) {
            mine.active_deadline_seconds = new.active_deadline_seconds;
            mine.tolerations = new.tolerations;
            mine.termination_grace_period_seconds = new.termination_grace_period_seconds;
        }
        let new_deadline = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.active_deadline_seconds);
        if new_deadline != old_deadline && !self.deadline_exceeded() {
            self.active_deadline = self.first_deadline();
        }
        if labels_changed {
            self.refresh_downward_volumes();
        }
        Ok(())
    }

    /// The downwardAPI volumes written again from the current pod.
    fn refresh_downward_volumes(&mut self) {
        let volumes = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.volumes.clone())
            .unwrap_or_default();
        for v in volumes {
            if let Some(source) = &v.downward_api {
                if let Err(e) = self.write_downward_volume(&v.name, source) {
                    self.event(Event::warning(
                        "FailedMount",
                        "kubelet",
                        crate::error::chain(&e),
                    ));
                }
            }
        }
    }
}

/// How long a container whose image changed waits to start again: not at
/// all (it did not fail).
pub(super) const RESPEC_DELAY: Duration = Duration::ZERO;
