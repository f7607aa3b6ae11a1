//! The pod sandbox: the named network namespace, the pause process that
//! holds the pod's UTS and IPC (and shared PID) namespaces, the pod-wide
//! /dev/shm, and the /etc files every container of the pod shares.
//!
//! Every host resource is derived from the pod's uid (`podlab-<uid>`), so
//! teardown and `podlab gc` can find it even when the shim died before
//! recording it.

use std::fs;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::mount::MsFlags;
use nix::sys::signal::{SigSet, Signal};

use crate::namespaces::{self, Plan};
use crate::sys::{self, Sys};

pub const READY_FD: i32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("network namespace {name}: {message}")]
    Netns { name: String, message: String },
    #[error(transparent)]
    Sys(#[from] sys::Error),
    #[error(transparent)]
    Namespaces(#[from] namespaces::Error),
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("sethostname {0}")]
    Hostname(String, #[source] nix::Error),
    #[error("sysctl {name}")]
    Sysctl {
        name: String,
        source: std::io::Error,
    },
}

/// The /proc/sys file of a sysctl written `a.b.c` or `a/b/c`.
pub fn sysctl_path(name: &str) -> PathBuf {
    let rel = if name.contains('/') {
        name.to_string()
    } else {
        name.replace('.', "/")
    };
    Path::new("/proc/sys").join(rel)
}

/// Sets the pod's sysctls (`name=value`) from inside its namespaces:
/// /proc/sys/net and the IPC sysctls act on the writer's own namespaces.
/// Validation admitted only namespaced names.
pub fn set_sysctls(sysctls: &[String]) -> Result<(), Error> {
    for s in sysctls {
        let (name, value) = s.split_once('=').unwrap_or((s.as_str(), ""));
        fs::write(sysctl_path(name), value).map_err(|source| Error::Sysctl {
            name: name.into(),
            source,
        })?;
    }
    Ok(())
}

/// Name of the pod's network namespace under /run/netns.
pub fn netns_name(uid: &str) -> String {
    format!("podlab-{uid}")
}

pub fn netns_path(uid: &str) -> PathBuf {
    Path::new("/run/netns").join(netns_name(uid))
}

/// Creates the pod's named network namespace (like `ip netns add`), so CNI
/// plugins and `ip netns exec` can reach it by path.
pub fn create_netns(uid: &str) -> Result<PathBuf, Error> {
    let name = netns_name(uid);
    let ns = netns_rs::NetNs::new(&name).map_err(|e| Error::Netns {
        name: name.clone(),
        message: crate::error::chain(&e),
    })?;
    Ok(ns.path().to_path_buf())
}

/// Removes the pod's network namespace; a missing one is fine (idempotent).
pub fn remove_netns(sys: &dyn Sys, uid: &str) -> Result<(), Error> {
    let name = netns_name(uid);
    let path = netns_path(uid);
    if fs::symlink_metadata(&path).is_err() {
        return Ok(());
    }
    match netns_rs::NetNs::get(&name) {
        Ok(ns) => ns.remove().map_err(|e| Error::Netns {
            name: name.clone(),
            message: crate::error::chain(&e),
        }),
        // A file left by a crash between create and mount: just remove it.
        Err(_) => {
            sys.unmount(&path)?;
            fs::remove_file(&path).map_err(|source| Error::Io {
                op: "remove",
                path,
                source,
            })
        }
    }
}

/// Mounts the pod's /dev/shm: one tmpfs all containers bind, sized like
/// the 64 MiB /dev/shm containerd gives a sandbox.
pub fn mount_shm(sys: &dyn Sys, dir: &Path) -> Result<(), Error> {
    fs::create_dir_all(dir).map_err(|source| Error::Io {
        op: "mkdir",
        path: dir.to_path_buf(),
        source,
    })?;
    sys::mount_tmpfs_once(
        sys,
        "podlab-shm",
        dir,
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        "mode=1777,size=65536k",
    )?;
    Ok(())
}

/// Unmounts the pod's /dev/shm, every mount stacked there included.
pub fn unmount_shm(sys: &dyn Sys, dir: &Path) -> Result<(), Error> {
    sys::unmount_all(sys, dir)?;
    Ok(())
}

/// Writes the pod's `hostname`, `hosts` and `resolv.conf` (rendered by
/// [`crate::etc_files`]), bind-mounted into every container (Kubernetes
/// manages the same three files).
pub fn write_etc_files(dir: &Path, hostname: &str, hosts: &str, resolv: &str) -> Result<(), Error> {
    let io = |op, path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { op, path, source }
    };
    fs::create_dir_all(dir).map_err(io("mkdir", dir))?;
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        fs::write(&p, text).map_err(io("write", &p))
    };
    write("hostname", &format!("{hostname}\n"))?;
    write("hosts", hosts)?;
    write("resolv.conf", resolv)
}

/// Entry point of `podlab __pause`: enters the pod's network namespace,
/// creates the UTS/IPC (and PID) namespaces, sets the hostname, brings up
/// loopback, reports its pid on fd 3 and then only waits: the smallest
/// process that keeps the pod's namespaces alive.
pub fn pause_main(
    netns: Option<PathBuf>,
    hostname: Option<&str>,
    share_pid: bool,
    host_ipc: bool,
    sysctls: &[String],
) -> i32 {
    // The shim passes fd 3 as the ready pipe; we own it from here.
    let Ok(ready) = sys::inherited(READY_FD) else {
        return 1;
    };
    let mut ready = Some(fs::File::from(ready));
    let sys = &sys::Kernel;
    let result = (|| -> Result<(), Error> {
        let host_network = netns.is_none();
        let mut plan = Plan::pause(netns, share_pid, host_ipc);
        if crate::mutants::Mutant::from_env() == Some(crate::mutants::Mutant::HostIpc) {
            plan.entries
                .retain(|(kind, _)| *kind != namespaces::Kind::Ipc);
        }
        plan.apply(sys)?;
        if !host_network {
            if let Some(h) = hostname {
                sys.sethostname(h)
                    .map_err(|e| Error::Hostname(h.into(), e))?;
            }
            if crate::mutants::Mutant::from_env() != Some(crate::mutants::Mutant::LoopbackDown) {
                sys::loopback_up()?;
            }
        }
        set_sysctls(sysctls)?;
        if share_pid {
            // The new PID namespace starts with our first child: it becomes
            // PID 1 of the pod and reaps the zombies of every container.
            // A single-threaded process (a fresh exec of podlab).
            match sys.fork()? {
                nix::unistd::ForkResult::Parent { child } => {
                    if let Some(mut r) = ready.take() {
                        let _ = writeln!(r, "{child}");
                    }
                    std::process::exit(0);
                }
                // The pod's PID 1 must not answer for the pause: the parent did.
                nix::unistd::ForkResult::Child => drop(ready.take()),
            }
        }
        if let Some(mut r) = ready.take() {
            let _ = writeln!(r, "{}", std::process::id());
        }
        Ok(())
    })();
    if let Err(e) = result {
        if let Some(mut r) = ready.take() {
            let _ = writeln!(r, "error {}", crate::error::chain(&e));
        }
        return 1;
    }
    pause_forever()
}

/// Sleeps in sigwait: reaps children on SIGCHLD, exits on SIGTERM/SIGINT.
fn pause_forever() -> i32 {
    let mut set = SigSet::empty();
    for s in [Signal::SIGCHLD, Signal::SIGTERM, Signal::SIGINT] {
        set.add(s);
    }
    if set.thread_block().is_err() {
        return 1;
    }
    loop {
        match set.wait() {
            Ok(Signal::SIGCHLD) => {
                while let Ok(status) = nix::sys::wait::waitpid(
                    nix::unistd::Pid::from_raw(-1),
                    Some(nix::sys::wait::WaitPidFlag::WNOHANG),
                ) {
                    if status == nix::sys::wait::WaitStatus::StillAlive {
                        break;
                    }
                }
            }
            Ok(_) => return 0,
            Err(_) => continue,
        }
    }
}

/// A pipe whose write end a spawned helper inherits at a fixed fd number.
pub fn pipe() -> Result<(OwnedFd, OwnedFd), Error> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| Error::Io {
        op: "pipe",
        path: PathBuf::from("pipe"),
        source: e.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_resources_are_named_after_podlab_and_the_uid() {
        assert_eq!(netns_name("abc"), "podlab-abc");
        assert_eq!(netns_path("abc"), Path::new("/run/netns/podlab-abc"));
    }

    #[test]
    fn etc_files_are_written() {
        let tmp = tempfile::tempdir().unwrap();
        write_etc_files(tmp.path(), "demo", "127.0.0.1\tlocalhost\n", "").unwrap();
        assert_eq!(
            fs::read_to_string(tmp.path().join("hostname")).unwrap(),
            "demo\n"
        );
        assert!(tmp.path().join("resolv.conf").exists());
        assert!(fs::read_to_string(tmp.path().join("hosts"))
            .unwrap()
            .contains("localhost"));
    }
}
