//! The one place that decides, for every process podlab starts, which
//! namespaces it joins and which it creates.
//!
//! The pod's pause process holds the namespaces the containers share
//! (net, UTS, IPC, and PID when `shareProcessNamespace: true`); each container
//! joins those and creates its own mount (and by default PID and cgroup)
//! namespace, as kubelet asks of a CRI runtime.

use std::fs::File;
use std::path::PathBuf;

use nix::sched::CloneFlags;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("open {kind} namespace {path}")]
    Open {
        kind: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("setns into {kind} namespace {path}")]
    Join {
        kind: &'static str,
        path: PathBuf,
        source: nix::Error,
    },
    #[error("unshare {flags:?}")]
    Create {
        flags: CloneFlags,
        source: nix::Error,
    },
}

/// The namespace kinds podlab manages, in the order they are joined: mount
/// last, because after it `/proc/<pid>/ns/*` of the host is no longer reachable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Ipc,
    Uts,
    Net,
    Pid,
    Cgroup,
    Mnt,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Ipc,
        Kind::Uts,
        Kind::Net,
        Kind::Pid,
        Kind::Cgroup,
        Kind::Mnt,
    ];

    /// The name used under `/proc/<pid>/ns/`.
    pub fn proc_name(self) -> &'static str {
        match self {
            Kind::Ipc => "ipc",
            Kind::Uts => "uts",
            Kind::Net => "net",
            Kind::Pid => "pid",
            Kind::Cgroup => "cgroup",
            Kind::Mnt => "mnt",
        }
    }

    pub fn flag(self) -> CloneFlags {
        match self {
            Kind::Ipc => CloneFlags::CLONE_NEWIPC,
            Kind::Uts => CloneFlags::CLONE_NEWUTS,
            Kind::Net => CloneFlags::CLONE_NEWNET,
            Kind::Pid => CloneFlags::CLONE_NEWPID,
            Kind::Cgroup => CloneFlags::CLONE_NEWCGROUP,
            Kind::Mnt => CloneFlags::CLONE_NEWNS,
        }
    }
}

/// What a process does about one namespace kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Stay in the parent's namespace (the host's, for the shim's children).
    Inherit,
    /// Join the namespace at this path (`/proc/<pid>/ns/<kind>` or a bind mount).
    Join(PathBuf),
    /// Create a new namespace.
    Create,
}

/// The namespace decision for one process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub entries: Vec<(Kind, Action)>,
}

impl Plan {
    /// The pause process: it lives in the pod's named network namespace and
    /// creates the UTS and IPC namespaces the containers will share (and the
    /// PID namespace when the pod shares one). `host_network` keeps the node's
    /// network and hostname, as Kubernetes does for `hostNetwork: true`;
    /// `host_ipc` keeps the node's IPC namespace (`hostIPC: true`).
    pub fn pause(netns: Option<PathBuf>, share_pid: bool, host_ipc: bool) -> Plan {
        let net = match netns {
            Some(path) => Action::Join(path),
            None => Action::Inherit,
        };
        let uts = if matches!(net, Action::Inherit) {
            Action::Inherit
        } else {
            Action::Create
        };
        let pid = if share_pid {
            Action::Create
        } else {
            Action::Inherit
        };
        let ipc = if host_ipc {
            Action::Inherit
        } else {
            Action::Create
        };
        Plan {
            entries: vec![
                (Kind::Ipc, ipc),
                (Kind::Uts, uts),
                (Kind::Net, net),
                (Kind::Pid, pid),
                (Kind::Cgroup, Action::Inherit),
                (Kind::Mnt, Action::Inherit),
            ],
        }
    }

    /// A container (or an exec'd process's view of one): joins the pause's
    /// net, UTS and IPC namespaces; PID is the pause's when shared, else its
    /// own, or the node's with `hostPID: true`; mount and cgroup namespaces
    /// are always its own.
    pub fn container(pause_pid: i32, share_pid: bool, host_pid: bool) -> Plan {
        let of_pause = |k: Kind| Action::Join(proc_ns_path(pause_pid, k));
        let pid = if host_pid {
            Action::Inherit
        } else if share_pid {
            of_pause(Kind::Pid)
        } else {
            Action::Create
        };
        Plan {
            entries: vec![
                (Kind::Ipc, of_pause(Kind::Ipc)),
                (Kind::Uts, of_pause(Kind::Uts)),
                (Kind::Net, of_pause(Kind::Net)),
                (Kind::Pid, pid),
                (Kind::Cgroup, Action::Create),
                (Kind::Mnt, Action::Create),
            ],
        }
    }

    /// Entering a running container (`podlab exec`): join every namespace of
    /// its init process.
    pub fn enter(container_pid: i32) -> Plan {
        Plan {
            entries: Kind::ALL
                .iter()
                .map(|&k| (k, Action::Join(proc_ns_path(container_pid, k))))
                .collect(),
        }
    }

    /// Turns joins of the pause's UTS/IPC/net namespaces into creations: only
    /// the deliberately broken runtime variants (`mutants` feature) ask this.
    pub fn break_sharing(&mut self, uts: bool, ipc: bool, net: bool) {
        for (kind, action) in &mut self.entries {
            let broken = match kind {
                Kind::Uts => uts,
                Kind::Ipc => ipc,
                Kind::Net => net,
                _ => false,
            };
            if broken {
                *action = Action::Create;
            }
        }
    }

    /// The flags to `unshare` for the namespaces this plan creates.
    pub fn create_flags(&self) -> CloneFlags {
        self.entries
            .iter()
            .filter(|(_, a)| *a == Action::Create)
            .fold(CloneFlags::empty(), |acc, (k, _)| acc | k.flag())
    }

    /// Applies the plan to the calling process, which must be single-threaded:
    /// joins first (in `Kind::ALL` order, mount last), then creates. PID
    /// namespace changes take effect for children only, so callers fork after.
    pub fn apply(&self, sys: &dyn crate::sys::Sys) -> Result<(), Error> {
        // Open every namespace before joining any: joining the mount
        // namespace changes what the paths resolve to.
        let mut joins = Vec::new();
        for (kind, action) in &self.entries {
            if let Action::Join(path) = action {
                let file = File::open(path).map_err(|source| Error::Open {
                    kind: kind.proc_name(),
                    path: path.clone(),
                    source,
                })?;
                joins.push((*kind, path, file));
            }
        }
        for (kind, path, file) in &joins {
            sys.setns(file, kind.flag()).map_err(|source| Error::Join {
                kind: kind.proc_name(),
                path: (*path).clone(),
                source,
            })?;
        }
        let flags = self.create_flags();
        if !flags.is_empty() {
            sys.unshare(flags)
                .map_err(|source| Error::Create { flags, source })?;
        }
        Ok(())
    }
}

pub fn proc_ns_path(pid: i32, kind: Kind) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/ns/{}", kind.proc_name()))
}

/// The namespace identity (`net:[4026531840]`) of a process, as `readlink` shows it.
pub fn ns_id(pid: i32, kind: Kind) -> Option<String> {
    std::fs::read_link(proc_ns_path(pid, kind))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn action(plan: &Plan, kind: Kind) -> &Action {
        &plan.entries.iter().find(|(k, _)| *k == kind).unwrap().1
    }

    #[test]
    fn containers_join_the_pause_and_own_their_mounts() {
        let plan = Plan::container(42, false, false);
        for k in [Kind::Net, Kind::Uts, Kind::Ipc] {
            assert_eq!(
                action(&plan, k),
                &Action::Join(format!("/proc/42/ns/{}", k.proc_name()).into())
            );
        }
        assert_eq!(action(&plan, Kind::Mnt), &Action::Create);
        assert_eq!(action(&plan, Kind::Pid), &Action::Create);
        assert!(plan.create_flags().contains(CloneFlags::CLONE_NEWNS));
        assert!(!plan.create_flags().contains(CloneFlags::CLONE_NEWNET));
    }

    #[test]
    fn shared_process_namespace_joins_the_pause_pid_namespace() {
        let plan = Plan::container(7, true, false);
        assert_eq!(
            action(&plan, Kind::Pid),
            &Action::Join("/proc/7/ns/pid".into())
        );
        assert!(Plan::pause(Some("/run/netns/x".into()), true, false)
            .create_flags()
            .contains(CloneFlags::CLONE_NEWPID));
    }

    #[test]
    fn pause_creates_uts_and_ipc_in_the_pod_netns() {
        let plan = Plan::pause(Some("/run/netns/podlab-x".into()), false, false);
        assert_eq!(
            action(&plan, Kind::Net),
            &Action::Join("/run/netns/podlab-x".into())
        );
        assert_eq!(
            plan.create_flags(),
            CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC
        );
    }

    #[test]
    fn host_network_pods_keep_the_node_hostname() {
        let plan = Plan::pause(None, false, false);
        assert_eq!(action(&plan, Kind::Net), &Action::Inherit);
        assert_eq!(action(&plan, Kind::Uts), &Action::Inherit);
        assert_eq!(plan.create_flags(), CloneFlags::CLONE_NEWIPC);
    }

    #[test]
    fn host_pid_and_host_ipc_keep_the_nodes_namespaces() {
        let plan = Plan::container(7, false, true);
        assert_eq!(action(&plan, Kind::Pid), &Action::Inherit);
        assert!(!plan.create_flags().contains(CloneFlags::CLONE_NEWPID));
        let pause = Plan::pause(Some("/run/netns/podlab-x".into()), false, true);
        assert_eq!(action(&pause, Kind::Ipc), &Action::Inherit);
        assert_eq!(pause.create_flags(), CloneFlags::CLONE_NEWUTS);
    }

    #[test]
    fn exec_joins_every_namespace_mount_last() {
        let plan = Plan::enter(9);
        let kinds: Vec<_> = plan.entries.iter().map(|(k, _)| *k).collect();
        assert_eq!(kinds.last(), Some(&Kind::Mnt));
        assert!(plan.create_flags().is_empty());
    }

    /// The calls a plan makes, through the recording seam (no privileges:
    /// the namespace files of this very process are opened, not joined).
    fn applied(plan: &Plan) -> Vec<crate::sys::Call> {
        let rec = crate::sys::Recording::new();
        plan.apply(&rec).unwrap();
        rec.calls()
    }

    #[test]
    fn a_container_joins_ipc_uts_net_of_the_pause_then_creates_the_rest_at_once() {
        use crate::sys::Call;
        let me = std::process::id() as i32;
        assert_eq!(
            applied(&Plan::container(me, false, false)),
            [
                Call::Setns(CloneFlags::CLONE_NEWIPC),
                Call::Setns(CloneFlags::CLONE_NEWUTS),
                Call::Setns(CloneFlags::CLONE_NEWNET),
                Call::Unshare(
                    CloneFlags::CLONE_NEWPID
                        | CloneFlags::CLONE_NEWCGROUP
                        | CloneFlags::CLONE_NEWNS
                ),
            ]
        );
        // A shared PID namespace is joined (before mount), not created.
        assert_eq!(
            applied(&Plan::container(me, true, false))[3],
            Call::Setns(CloneFlags::CLONE_NEWPID)
        );
    }

    #[test]
    fn exec_joins_every_namespace_with_mount_last_and_creates_none() {
        use crate::sys::Call;
        let calls = applied(&Plan::enter(std::process::id() as i32));
        let want: Vec<Call> = Kind::ALL.iter().map(|k| Call::Setns(k.flag())).collect();
        assert_eq!(calls, want);
        assert_eq!(calls.last(), Some(&Call::Setns(CloneFlags::CLONE_NEWNS)));
    }

    #[test]
    fn the_pause_on_the_host_network_only_creates_ipc() {
        use crate::sys::Call;
        assert_eq!(
            applied(&Plan::pause(None, false, false)),
            [Call::Unshare(CloneFlags::CLONE_NEWIPC)]
        );
    }

    #[test]
    fn a_namespace_that_cannot_be_opened_stops_the_plan_before_any_join() {
        let rec = crate::sys::Recording::new();
        let mut plan = Plan::enter(std::process::id() as i32);
        plan.entries[5].1 = Action::Join(PathBuf::from("/nonexistent/podlab-ns"));
        assert!(matches!(
            plan.apply(&rec),
            Err(Error::Open { kind: "mnt", .. })
        ));
        assert!(rec.calls().is_empty(), "{:?}", rec.calls());
    }

    #[test]
    fn a_failed_join_stops_the_plan() {
        use crate::sys::{Call, Recording};
        let rec = Recording::failing(|c| *c == Call::Setns(CloneFlags::CLONE_NEWUTS));
        let plan = Plan::container(std::process::id() as i32, false, false);
        assert!(matches!(
            plan.apply(&rec),
            Err(Error::Join { kind: "uts", .. })
        ));
        assert_eq!(rec.calls().len(), 2);
    }
}
