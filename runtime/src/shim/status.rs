//! What the shim writes down: the pod's status (phase, conditions,
//! container statuses) whenever it changes, the runtime record of what it
//! holds on the host ([`RuntimeState`](crate::container::RuntimeState), read by
//! `exec`, `describe` and `gc`),
//! and the one-line first outcome a waiting `apply` is told.

use std::io::Write;

use k8s_openapi::api::core::v1::ContainerStatus;

use crate::lifecycle;
use crate::mutants::Mutant;
use crate::store::now_time;

use super::{Error, Role, Shim};

impl Shim {
    pub(super) fn notify(&mut self, line: &str) {
        if let Some(mut n) = self.notify.take() {
            let _ = writeln!(n, "{line}");
        }
    }

    fn statuses(&self, init: bool) -> Vec<ContainerStatus> {
        self.ctrs
            .iter()
            .filter(|c| (c.role != Role::App) == init)
            .map(|c| c.status.clone())
            .collect()
    }

    fn current_phase(&self) -> &'static str {
        lifecycle::phase(&self.pod, &self.statuses(true), &self.statuses(false))
    }

    pub(super) fn pod_terminal(&self) -> bool {
        matches!(
            self.current_phase(),
            lifecycle::SUCCEEDED | lifecycle::FAILED
        )
    }

    pub(super) fn save_status(&mut self) -> Result<(), Error> {
        let lost = self.sandbox_lost();
        for c in &mut self.ctrs {
            c.refresh();
            if lost {
                // Its containers lost the namespaces the pod promised them.
                c.status.ready = false;
            }
        }
        let init = self.statuses(true);
        let app = self.statuses(false);
        let mut phase = lifecycle::phase(&self.pod, &init, &app);
        self.status.init_container_statuses = (!init.is_empty()).then_some(init);
        self.status.container_statuses = Some(app);
        if self.mutant == Some(Mutant::EarlyRunning) && self.state.pause.is_some() {
            phase = lifecycle::RUNNING;
        }
        // A pod whose sandbox died, that was evicted or ran past its
        // deadline, stays Failed.
        if lost || self.failed_by_node() {
            phase = lifecycle::FAILED;
        }
        self.status.phase = Some(phase.into());
        lifecycle::update_conditions(&self.pod, &mut self.status, &now_time());
        lifecycle::set_observed_generation(&mut self.status, self.pod.metadata.generation);
        if self.written.as_ref() != Some(&self.status) {
            self.dir.write_status(&self.status)?;
            self.written = Some(self.status.clone());
        }
        self.maybe_notify();
        if !self.released_requests && matches!(phase, lifecycle::SUCCEEDED | lifecycle::FAILED) {
            // A finished pod's requests are free: pending pods may fit now.
            self.released_requests = true;
            let lock = self.store.lock()?;
            if let Err(e) = super::schedule_and_start(&self.config, &self.store, &lock) {
                eprintln!(
                    "podlab shim: scheduling pending pods: {}",
                    crate::error::chain(&e)
                );
            }
        }
        Ok(())
    }

    /// Tells a waiting `apply --wait-ready` the pod's first outcome: Running or a
    /// final phase, or a state that needs the user (a missing image, a
    /// crash loop). Progress (creating, initializing) is not an outcome.
    fn maybe_notify(&mut self) {
        if self.notify.is_none() {
            return;
        }
        let phase = self.status.phase.clone().unwrap_or_default();
        if phase == lifecycle::RUNNING || phase == lifecycle::SUCCEEDED {
            self.notify(&phase);
            return;
        }
        let shown = lifecycle::display_status(&self.pod, &self.status);
        let stuck = [
            "CrashLoopBackOff",
            "ErrImagePull",
            "ImagePullBackOff",
            "ErrImageNeverPull",
            "InvalidImageName",
            "CreateContainerError",
        ]
        .contains(&shown.trim_start_matches("Init:"));
        if phase == lifecycle::FAILED || stuck {
            let message = self
                .status
                .init_container_statuses
                .iter()
                .flatten()
                .chain(self.status.container_statuses.iter().flatten())
                .find_map(|c| {
                    let st = c.state.as_ref()?;
                    st.waiting
                        .as_ref()
                        .and_then(|w| w.message.clone())
                        .or_else(|| st.terminated.as_ref().and_then(|t| t.message.clone()))
                })
                .or_else(|| self.status.message.clone());
            let line = match message {
                Some(m) => format!("{phase} {shown}: {m}"),
                None => format!("{phase} {shown}"),
            };
            self.notify(&line);
        }
    }

    pub(super) fn save_state(&self) -> Result<(), Error> {
        Ok(self.dir.write_runtime(&self.state)?)
    }
}
