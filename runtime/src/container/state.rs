//! The record of what a pod's shim holds on the host: its own process, the
//! pause, the network namespace, the cgroups and each container's process.
//! The shim writes it; `exec`, the probes, `describe` and `gc` read it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Process;
use crate::cgroups::{self, Limits};
use crate::sys::ProcessId;

/// What the shim holds on the host, for `exec`, `describe` and `gc`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RuntimeState {
    pub uid: String,
    pub node: String,
    pub shim: Option<ProcessId>,
    pub pause: Option<ProcessId>,
    pub netns: Option<PathBuf>,
    pub share_pid: bool,
    /// `hostPID: true` (and not ignored by a mutant).
    #[serde(default)]
    pub host_pid: bool,
    /// `hostIPC: true`.
    #[serde(default)]
    pub host_ipc: bool,
    pub cgroup_mode: Option<cgroups::Mode>,
    pub pod_cgroup: Option<String>,
    pub containers: BTreeMap<String, ContainerRuntime>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ContainerRuntime {
    pub pid: Option<ProcessId>,
    pub process: Process,
    pub cgroup: String,
    pub cgroup_paths: Vec<(String, PathBuf)>,
    pub limits: Limits,
    pub image: String,
    pub image_id: String,
    #[serde(default)]
    pub security: crate::security::Profile,
}
