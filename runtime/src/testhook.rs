//! A test hook, not a feature: `PODLAB_TEST_STALL_AT=<stage>` makes the
//! podlab process that reaches the named stage of `apply` stop itself with
//! SIGSTOP, so the hardening tests can `kill -9` it exactly there (issue 8:
//! "kill -9 of the CLI mid-apply"). It is harmless in a normal build: it
//! only stops the process that carries the variable, as `kill -STOP` from
//! the same user would; unset or naming another stage, it does nothing.

use nix::sys::signal::{raise, Signal};

/// The environment variable naming the stage to stall at.
pub const ENV: &str = "PODLAB_TEST_STALL_AT";

/// Points of `podlab apply` (and of the shim it starts) where a crash leaves
/// a pod half made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// The CLI stored the pod's record and holds the store lock; nothing
    /// is scheduled, bound or started.
    ApplyStored,
    /// The CLI bound the pod (nodeName, `PodScheduled=True`) and has not
    /// started its shim.
    ApplyBound,
    /// The CLI started the shim and has not recorded it in `shim.json`.
    ApplySpawned,
    /// The shim created the pod cgroup, the netns with its CNI attachment
    /// (veth, IP lease) and the pod's /dev/shm, and has not started the pause.
    ShimSandbox,
}

impl Stage {
    pub const ALL: [Stage; 4] = [
        Stage::ApplyStored,
        Stage::ApplyBound,
        Stage::ApplySpawned,
        Stage::ShimSandbox,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stage::ApplyStored => "apply-stored",
            Stage::ApplyBound => "apply-bound",
            Stage::ApplySpawned => "apply-spawned",
            Stage::ShimSandbox => "shim-sandbox",
        }
    }
}

/// The line printed to stderr just before stopping.
pub fn marker(stage: Stage) -> String {
    format!("podlab: test hook: stalled at {}", stage.name())
}

/// Stops this process when `PODLAB_TEST_STALL_AT` names `stage`; returns
/// at once otherwise (and after a SIGCONT).
pub fn stall_at(stage: Stage) {
    if std::env::var(ENV).as_deref() != Ok(stage.name()) {
        return;
    }
    eprintln!("{}", marker(stage));
    // Stopped rather than paused: a test sees state `T` in /proc/PID/stat.
    let _ = raise(Signal::SIGSTOP);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_names_are_distinct() {
        let mut names: Vec<&str> = Stage::ALL.iter().map(|s| s.name()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), Stage::ALL.len());
        assert_eq!(
            marker(Stage::ApplyBound),
            "podlab: test hook: stalled at apply-bound"
        );
    }
}
