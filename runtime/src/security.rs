//! What a container may do to the node: capabilities, user, no_new_privs,
//! masked and read-only kernel paths, and no inherited descriptors.
//!
//! Defaults follow what containerd gives a Kubernetes container (its default
//! capability set and the OCI runtime's masked/read-only paths), changed only
//! by the container's `securityContext`.

use std::path::Path;

use k8s_openapi::api::core::v1::SecurityContext;
use nix::mount::MsFlags;
use serde::{Deserialize, Serialize};

use crate::sys;

/// Capability names in kernel bit order (linux/capability.h).
pub const CAP_NAMES: [&str; 41] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// containerd's default capabilities for a container.
pub const DEFAULT_CAPS: [&str; 14] = [
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// Files the OCI runtime default hides behind /dev/null (or an empty
/// read-only tmpfs for directories).
pub const MASKED_PATHS: [&str; 9] = [
    "proc/acpi",
    "proc/asound",
    "proc/kcore",
    "proc/keys",
    "proc/latency_stats",
    "proc/timer_list",
    "proc/timer_stats",
    "proc/sched_debug",
    "proc/scsi",
];

/// Kernel interfaces the OCI runtime default makes read-only.
pub const READONLY_PATHS: [&str; 5] = [
    "proc/bus",
    "proc/fs",
    "proc/irq",
    "proc/sys",
    "proc/sysrq-trigger",
];

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown capability {0:?}")]
    UnknownCapability(String),
    #[error(transparent)]
    Sys(#[from] sys::Error),
    #[error("{op}: {source}")]
    Syscall {
        op: &'static str,
        source: std::io::Error,
    },
}

/// The process security settings of one container, decided on the host.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    /// Bit mask of the capabilities the process keeps.
    pub caps: u64,
    pub privileged: bool,
    pub no_new_privs: bool,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
}

fn cap_bit(name: &str) -> Result<u64, Error> {
    let bare = name.trim().trim_start_matches("CAP_").to_ascii_uppercase();
    CAP_NAMES
        .iter()
        .position(|n| *n == bare)
        .map(|i| 1u64 << i)
        .ok_or_else(|| Error::UnknownCapability(name.to_string()))
}

/// All capabilities this kernel knows.
pub fn all_caps() -> u64 {
    let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(40)
        .min(63);
    if last == 63 {
        u64::MAX
    } else {
        (1u64 << (last + 1)) - 1
    }
}

impl Profile {
    /// Kubernetes semantics: privileged gets everything; otherwise the
    /// default set, minus `drop` (`ALL` drops all), plus `add`.
    pub fn from_context(ctx: Option<&SecurityContext>) -> Result<Profile, Error> {
        let privileged = ctx.and_then(|c| c.privileged).unwrap_or(false);
        let mut caps = 0;
        if privileged {
            caps = all_caps();
        } else {
            for name in DEFAULT_CAPS {
                caps |= cap_bit(name)?;
            }
            if let Some(c) = ctx.and_then(|c| c.capabilities.as_ref()) {
                for name in c.drop.iter().flatten() {
                    if name.eq_ignore_ascii_case("ALL") {
                        caps = 0;
                    } else {
                        caps &= !cap_bit(name)?;
                    }
                }
                for name in c.add.iter().flatten() {
                    if name.eq_ignore_ascii_case("ALL") {
                        caps = all_caps();
                    } else {
                        caps |= cap_bit(name)?;
                    }
                }
            }
        }
        let uid = ctx.and_then(|c| c.run_as_user).map(|u| u as u32);
        let gid = ctx.and_then(|c| c.run_as_group).map(|g| g as u32);
        Ok(Profile {
            caps,
            privileged,
            no_new_privs: !privileged
                && ctx.and_then(|c| c.allow_privilege_escalation) == Some(false),
            uid,
            gid,
        })
    }

    /// Applies the profile to the calling process just before exec. Only raw
    /// syscalls: this runs in forked children. Order matters: the bounding
    /// set is dropped while we still hold CAP_SETPCAP, then the ids, then
    /// the remaining sets.
    pub fn apply(&self, host: &HostCaps) -> Result<(), Error> {
        // Nothing beyond what podlab itself holds can be granted (this
        // machine, for one, lacks CAP_SYS_RESOURCE): privileged means all of it.
        let caps = self.caps & host.permitted;
        let last_cap = host.last_cap;
        let fail = |op| {
            move || Error::Syscall {
                op,
                source: std::io::Error::last_os_error(),
            }
        };
        // SAFETY: prctl/setgroups/setgid/setuid/capset take plain integers or
        // pointers to data we own for the duration of the call.
        unsafe {
            for cap in 0..=last_cap.min(63) {
                if caps & (1u64 << cap) == 0
                    && libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) != 0
                {
                    return Err(fail("drop bounding capability")());
                }
            }
            if libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(fail("clear ambient capabilities")());
            }
            if let Some(gid) = self.gid.or(self.uid.map(|_| 0)) {
                let groups = [gid];
                if libc::setgroups(1, groups.as_ptr()) != 0 || libc::setgid(gid) != 0 {
                    return Err(fail("setgid")());
                }
            }
            if let Some(uid) = self.uid {
                // Changing to a non-zero uid clears the permitted set, as
                // for any non-root process without file capabilities.
                if libc::setuid(uid) != 0 {
                    return Err(fail("setuid")());
                }
            }
            if self.uid.unwrap_or(0) == 0 {
                let header = CapHeader {
                    version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
                    pid: 0,
                };
                let lo = caps as u32;
                let hi = (caps >> 32) as u32;
                // Inheritable stays empty (runc's fix for CVE-2022-29162).
                let data = [
                    CapData {
                        effective: lo,
                        permitted: lo,
                        inheritable: 0,
                    },
                    CapData {
                        effective: hi,
                        permitted: hi,
                        inheritable: 0,
                    },
                ];
                if libc::syscall(libc::SYS_capset, &header, data.as_ptr()) != 0 {
                    return Err(fail("capset")());
                }
            }
            if self.no_new_privs && libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(fail("no_new_privs")());
            }
        }
        Ok(())
    }
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// What the host side can hand out, read before forking.
#[derive(Clone, Copy, Debug)]
pub struct HostCaps {
    /// The highest capability number of this kernel.
    pub last_cap: u32,
    /// The capabilities podlab itself holds.
    pub permitted: u64,
}

impl HostCaps {
    pub fn read() -> HostCaps {
        let last_cap = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(40);
        let permitted = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("CapPrm:"))
                    .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            })
            .unwrap_or(0);
        HostCaps {
            last_cap,
            permitted,
        }
    }
}

/// Hides and freezes the kernel interfaces a container must not touch,
/// inside the container's root (before pivot_root). Privileged containers
/// see them as the host does, as in Kubernetes.
pub fn mask_paths(rootfs: &Path) -> Result<(), Error> {
    for rel in MASKED_PATHS {
        let p = rootfs.join(rel);
        match std::fs::metadata(&p) {
            Ok(m) if m.is_dir() => sys::mount(
                Some("tmpfs"),
                &p,
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                Some("size=0"),
            )?,
            Ok(_) => sys::bind(Path::new("/dev/null"), &p, false)?,
            Err(_) => {}
        }
    }
    for rel in READONLY_PATHS {
        let p = rootfs.join(rel);
        if p.exists() {
            // Bind onto itself so the read-only flag applies to this subtree only.
            sys::bind(&p, &p, true)?;
        }
    }
    Ok(())
}

/// Closes every descriptor above stderr at exec: nothing of the host's
/// (the class of runc CVE-2024-21626) reaches the container's process.
pub fn close_fds_on_exec() -> Result<(), Error> {
    // SAFETY: close_range with CLOEXEC only flags descriptors; no memory.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if r != 0 {
        return Err(Error::Syscall {
            op: "close_range",
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// The kernel's `struct sigaction` (x86_64 and aarch64 layout), for
/// rt_sigaction(2) without glibc, which refuses its reserved signals 32, 33.
#[repr(C)]
struct KernelSigaction {
    handler: libc::sighandler_t,
    flags: libc::c_ulong,
    restorer: usize,
    mask: u64,
}

/// Gives the exec'd program the signal state a container starts with: no
/// signal blocked (the shim blocks some for its signalfd) and none ignored
/// (Rust ignores SIGPIPE in podlab itself, whoever started podlab may have
/// ignored others, and SIG_IGN survives exec).
pub fn default_signals_on_exec() -> Result<(), Error> {
    let default = KernelSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    // SAFETY: raw rt_sigprocmask/rt_sigaction on values that live across the
    // calls; fine between fork and exec. SIGKILL and SIGSTOP refuse (EINVAL)
    // and are always default anyway.
    unsafe {
        let empty = 0u64;
        if libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &empty as *const u64,
            std::ptr::null_mut::<u64>(),
            8usize,
        ) != 0
        {
            return Err(Error::Syscall {
                op: "rt_sigprocmask",
                source: std::io::Error::last_os_error(),
            });
        }
        for sig in 1..=64 {
            libc::syscall(
                libc::SYS_rt_sigaction,
                sig,
                &default as *const KernelSigaction,
                std::ptr::null_mut::<KernelSigaction>(),
                8usize,
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Capabilities;

    fn ctx(add: &[&str], drop: &[&str]) -> SecurityContext {
        let v = |s: &[&str]| Some(s.iter().map(|x| x.to_string()).collect());
        SecurityContext {
            capabilities: Some(Capabilities {
                add: v(add),
                drop: v(drop),
            }),
            ..Default::default()
        }
    }

    fn names(mask: u64) -> Vec<&'static str> {
        (0..CAP_NAMES.len())
            .filter(|i| mask & (1 << i) != 0)
            .map(|i| CAP_NAMES[i])
            .collect()
    }

    #[test]
    fn default_set_is_containerds() {
        let p = Profile::from_context(None).unwrap();
        let mut got = names(p.caps);
        got.sort();
        let mut want = DEFAULT_CAPS.to_vec();
        want.sort();
        assert_eq!(got, want);
        assert!(!p.no_new_privs);
        // The bit positions are the kernel's.
        assert_eq!(cap_bit("CAP_SYS_ADMIN").unwrap(), 1 << 21);
        assert_eq!(cap_bit("net_raw").unwrap(), 1 << 13);
    }

    #[test]
    fn drop_all_then_add() {
        let p = Profile::from_context(Some(&ctx(&["NET_ADMIN"], &["ALL"]))).unwrap();
        assert_eq!(names(p.caps), ["NET_ADMIN"]);
        let p = Profile::from_context(Some(&ctx(&[], &["KILL", "CAP_CHOWN"]))).unwrap();
        assert!(!names(p.caps).contains(&"KILL"));
        assert!(!names(p.caps).contains(&"CHOWN"));
        assert!(names(p.caps).contains(&"SETUID"));
    }

    #[test]
    fn privileged_gets_everything_and_unknown_names_are_refused() {
        let p = Profile::from_context(Some(&SecurityContext {
            privileged: Some(true),
            ..Default::default()
        }))
        .unwrap();
        assert_eq!(p.caps, all_caps());
        assert!(matches!(
            Profile::from_context(Some(&ctx(&["FLY"], &[]))),
            Err(Error::UnknownCapability(_))
        ));
    }

    #[test]
    fn no_privilege_escalation_sets_no_new_privs() {
        let p = Profile::from_context(Some(&SecurityContext {
            allow_privilege_escalation: Some(false),
            run_as_user: Some(1000),
            run_as_group: Some(2000),
            ..Default::default()
        }))
        .unwrap();
        assert!(p.no_new_privs);
        assert_eq!((p.uid, p.gid), (Some(1000), Some(2000)));
    }
}
