//! `activeDeadlineSeconds`: a pod active on the node longer than its
//! deadline (counted from its start time) fails with reason
//! `DeadlineExceeded`, and its containers are stopped with the pod's grace
//! period and not restarted. A deadline of the event loop.

use std::time::{Duration, Instant};

use crate::mutants::Mutant;
use crate::store::Event;

use super::Shim;

/// The reason of a pod past its deadline.
pub const DEADLINE_EXCEEDED: &str = "DeadlineExceeded";
const MESSAGE: &str = "Pod was active on the node longer than the specified deadline";

impl Shim {
    /// Whether the pod ran past its deadline.
    pub(super) fn deadline_exceeded(&self) -> bool {
        self.status.reason.as_deref() == Some(DEADLINE_EXCEEDED)
    }

    /// The pod was failed by the node (evicted, past its deadline): its
    /// containers stop and none is started again.
    pub(super) fn failed_by_node(&self) -> bool {
        self.evicted() || self.deadline_exceeded()
    }

    /// When the deadline falls, counted from the pod's start (an update
    /// that shortens it may put it in the past: it fails at once).
    pub(super) fn first_deadline(&self) -> Option<Instant> {
        if self.mutant == Some(Mutant::DeadlineIgnored) {
            return None;
        }
        let secs = self.pod.spec.as_ref()?.active_deadline_seconds?;
        let start = self.run_started.unwrap_or_else(Instant::now);
        Some(start + Duration::from_secs(secs.max(0) as u64))
    }

    /// Fails the pod once its deadline has passed, unless it already ended.
    pub(super) fn check_deadline(&mut self, now: Instant) {
        if self.active_deadline.is_none_or(|d| d > now) {
            return;
        }
        self.active_deadline = None;
        if self.pod_terminal() || self.failed_by_node() || self.terminating.is_some() {
            return;
        }
        self.event(Event::warning(DEADLINE_EXCEEDED, "kubelet", MESSAGE));
        self.status.reason = Some(DEADLINE_EXCEEDED.into());
        self.status.message = Some(MESSAGE.into());
        self.ctrs
            .iter_mut()
            .for_each(super::ctr::Ctr::cancel_starts);
        let until = now + self.grace();
        for i in 0..self.ctrs.len() {
            if self.ctrs[i].running() {
                self.stop_container(i, until, None);
            }
        }
    }
}
