//! What `describe` shows beyond the pod object: what the shim recorded
//! (its processes, cgroups, each container's resolved command and user),
//! the namespaces those processes are in as /proc names them, and the
//! pod's events. Data only; the fronts lay it out.

use std::collections::BTreeMap;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::{Pod, PodStatus};

use super::{current_status, Result};
use crate::cgroups;
use crate::config::Config;
use crate::namespaces::{ns_id, Kind};
use crate::shim::{ContainerRuntime, RuntimeState};
use crate::store::{Event, PodKey, Store};
use crate::sys::ProcessId;

/// A pod as `describe` shows it.
#[derive(Clone, Debug)]
pub struct PodDescription {
    pub pod: Pod,
    /// The status as `get` shows it (Unknown once the shim is gone).
    pub status: PodStatus,
    pub sandbox: SandboxFacts,
    /// What the shim recorded per container, by name.
    pub containers: BTreeMap<String, ContainerFacts>,
    /// Oldest first.
    pub events: Vec<Event>,
}

/// A process and some of its namespaces: (name as /proc/PID/ns has it,
/// id such as `net:[4026532…]`, `None` once the process is gone).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessFacts {
    pub pid: i32,
    pub namespaces: Vec<(String, Option<String>)>,
}

/// The pod's sandbox on this host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxFacts {
    pub shim_pid: Option<i32>,
    /// The pause process with its net, uts, ipc and pid namespaces.
    pub pause: Option<ProcessFacts>,
    pub netns: Option<PathBuf>,
    pub shm_dir: PathBuf,
    /// The pod's cgroup, and the hierarchy's mode (`V1`, `V2`).
    pub pod_cgroup: Option<(String, String)>,
}

/// One container as the shim started it.
#[derive(Clone, Debug, PartialEq)]
pub struct ContainerFacts {
    /// The command as resolved: the image's Entrypoint and Cmd with the
    /// manifest's over them and `$(VAR)` references expanded.
    pub args: Vec<String>,
    pub cwd: String,
    pub env: Vec<String>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Supplementary groups as resolved (the image's, supplementalGroups,
    /// fsGroup).
    pub groups: Vec<u32>,
    /// The process with its mnt, pid, net, uts and ipc namespaces.
    pub process: Option<ProcessFacts>,
    pub limits: cgroups::Limits,
    /// (controller, path) of the container's cgroup.
    pub cgroup_paths: Vec<(String, PathBuf)>,
}

/// Reads everything `describe` shows of one pod.
pub fn describe(config: &Config, key: &PodKey) -> Result<PodDescription> {
    let store = Store::of(config)?;
    let dir = store.get(key)?;
    let (pod, status) = current_status(&dir)?;
    let state: RuntimeState = dir.read_runtime()?.unwrap_or_default();
    let sandbox = SandboxFacts {
        shim_pid: state.shim.map(|p| p.pid),
        pause: state
            .pause
            .map(|p| process(p, &[Kind::Net, Kind::Uts, Kind::Ipc, Kind::Pid])),
        netns: state.netns.clone(),
        shm_dir: dir.shm_dir(),
        pod_cgroup: state.pod_cgroup.clone().map(|cg| {
            let mode = state.cgroup_mode.unwrap_or(cgroups::Mode::V1);
            (cg, format!("{mode:?}"))
        }),
    };
    let containers = state
        .containers
        .iter()
        .map(|(name, c)| (name.clone(), container(c)))
        .collect();
    Ok(PodDescription {
        pod,
        status,
        sandbox,
        containers,
        events: dir.read_events().unwrap_or_default(),
    })
}

fn process(p: ProcessId, kinds: &[Kind]) -> ProcessFacts {
    ProcessFacts {
        pid: p.pid,
        namespaces: kinds
            .iter()
            .map(|k| (k.proc_name().to_string(), ns_id(p.pid, *k)))
            .collect(),
    }
}

fn container(c: &ContainerRuntime) -> ContainerFacts {
    ContainerFacts {
        args: c.process.args.clone(),
        cwd: c.process.cwd.clone(),
        env: c.process.env.clone(),
        uid: c.security.uid,
        gid: c.security.gid,
        groups: c.security.groups.clone(),
        process: c
            .pid
            .map(|p| process(p, &[Kind::Mnt, Kind::Pid, Kind::Net, Kind::Uts, Kind::Ipc])),
        limits: c.limits.clone(),
        cgroup_paths: c.cgroup_paths.clone(),
    }
}
