//! The hidden subcommands podlab re-executes itself as: the shim that runs
//! a pod, the sandbox's pause process, a container's init, and a probe or
//! lifecycle hook run for a shim. The binary only parses their arguments
//! and hands them here; each reports through its pipes and returns the
//! process's exit code.

use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::store::PodKey;

/// `__shim NAMESPACE NAME`: the pod's shim (the kubelet's part for one pod).
pub fn shim(config: Config, key: PodKey) -> i32 {
    crate::shim::shim_main(config, key)
}

/// `__pause`: holds the pod's namespaces, with the hostname and sysctls
/// (`name=value`) set inside them.
pub fn pause(
    netns: Option<PathBuf>,
    hostname: Option<&str>,
    share_pid: bool,
    host_ipc: bool,
    sysctls: &[String],
) -> i32 {
    crate::sandbox::pause_main(netns, hostname, share_pid, host_ipc, sysctls)
}

/// `__init CONFIG`: sets a container up from its config and execs it.
pub fn init(config: &Path) -> i32 {
    crate::container::init_main(config)
}

/// `__probe NAMESPACE NAME REQUEST`: one probe or lifecycle hook.
pub fn probe(config: &Config, key: &PodKey, request: &str) -> i32 {
    crate::probe::probe_main(config, key, request)
}
