//! What a container may do to the node: capabilities, user and groups,
//! no_new_privs, its seccomp filter, masked and read-only kernel paths, and
//! no inherited descriptors.
//!
//! Defaults follow what containerd gives a Kubernetes container (its default
//! capability set and the OCI runtime's masked/read-only paths), changed by
//! the pod's and the container's `securityContext`, merged as the kubelet
//! merges them: the container's field wins where both set one.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{PodSecurityContext, SeccompProfile, SecurityContext};
use nix::mount::MsFlags;
use serde::{Deserialize, Serialize};

use crate::sys::{self, Sys};

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
pub const MASKED_PATHS: [&str; 11] = [
    "proc/acpi",
    "proc/asound",
    "proc/kcore",
    "proc/keys",
    "proc/latency_stats",
    "proc/timer_list",
    "proc/timer_stats",
    "proc/sched_debug",
    "proc/scsi",
    "sys/firmware",
    "sys/devices/virtual/powercap",
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
    /// The kubelet's refusals of runAsNonRoot (CreateContainerConfigError).
    #[error("{0}")]
    NonRoot(NonRoot),
    /// The image's `User` names someone its /etc/passwd or /etc/group lacks.
    #[error("image user {user:?}: {why}")]
    ImageUser { user: String, why: String },
    #[error("{field} {value} is not a valid id")]
    InvalidId { field: &'static str, value: i64 },
    #[error("{0} supplementary groups: podlab gives a process at most {max}", max = MAX_GROUPS - 1)]
    TooManyGroups(usize),
    #[error("seccomp profile {path}")]
    SeccompFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("seccomp profile {path}: {message}")]
    SeccompParse { path: PathBuf, message: String },
    #[error("seccomp profile {path}")]
    Seccomp {
        path: String,
        source: crate::seccomp::Error,
    },
    #[error(transparent)]
    Sys(#[from] sys::Error),
    #[error("{op}")]
    Syscall {
        op: &'static str,
        source: std::io::Error,
    },
}

/// The most groups a container process gets (its primary one included).
const MAX_GROUPS: usize = 64;

/// Why runAsNonRoot refuses a container, in the kubelet's words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NonRoot {
    RunAsUserZero,
    NonNumericImageUser(String),
    ImageRunsAsRoot,
}

impl std::fmt::Display for NonRoot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NonRoot::RunAsUserZero => f.write_str("container's runAsUser breaks non-root policy"),
            NonRoot::NonNumericImageUser(u) => write!(
                f,
                "container has runAsNonRoot and image has non-numeric user ({u}), cannot verify user is non-root"
            ),
            NonRoot::ImageRunsAsRoot => {
                f.write_str("container has runAsNonRoot and image will run as root")
            }
        }
    }
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
    /// Supplementary groups after the primary one: the image's groups of
    /// the user (unless supplementalGroupsPolicy is Strict), then
    /// supplementalGroups, then fsGroup.
    #[serde(default)]
    pub groups: Vec<u32>,
    /// The compiled seccomp filter; `None` is Unconfined.
    #[serde(default)]
    pub seccomp: Option<crate::seccomp::Program>,
}

/// What a container's identity and filter are decided from.
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a> {
    pub pod: Option<&'a PodSecurityContext>,
    pub container: Option<&'a SecurityContext>,
    /// The image config's `User` (`uid`, `uid:gid`, `name`, `name:group`).
    pub image_user: Option<&'a str>,
    /// The image's layers, bottom first, where names are looked up.
    pub layers: &'a [PathBuf],
    /// Where `Localhost` seccomp profiles live.
    pub seccomp_root: &'a Path,
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
            groups: Vec::new(),
            seccomp: None,
        })
    }

    /// The whole profile of a container: capabilities from its own
    /// context; user, groups and seccomp from the pod's and its own, the
    /// container's field winning; the image's `User` when neither sets
    /// runAsUser; runAsNonRoot checked as the kubelet checks it.
    pub fn resolve(inputs: &Inputs) -> Result<Profile, Error> {
        let ctx = inputs.container;
        let pod = inputs.pod;
        let mut profile = Profile::from_context(ctx)?;
        let run_as_user = ctx
            .and_then(|c| c.run_as_user)
            .or(pod.and_then(|p| p.run_as_user));
        let run_as_group = ctx
            .and_then(|c| c.run_as_group)
            .or(pod.and_then(|p| p.run_as_group));
        let non_root = ctx
            .and_then(|c| c.run_as_non_root)
            .or(pod.and_then(|p| p.run_as_non_root))
            .unwrap_or(false);
        let image_user = inputs.image_user.filter(|u| !u.is_empty());
        if non_root {
            match (run_as_user, image_user) {
                (Some(0), _) => return Err(Error::NonRoot(NonRoot::RunAsUserZero)),
                (Some(_), _) => {}
                (None, None) => return Err(Error::NonRoot(NonRoot::ImageRunsAsRoot)),
                (None, Some(u)) => {
                    let user = u.split(':').next().unwrap_or_default();
                    match user.parse::<u32>() {
                        Ok(0) => return Err(Error::NonRoot(NonRoot::ImageRunsAsRoot)),
                        Ok(_) => {}
                        Err(_) => {
                            return Err(Error::NonRoot(NonRoot::NonNumericImageUser(u.into())))
                        }
                    }
                }
            }
        }
        let (uid, gid) = match (run_as_user, image_user) {
            // runAsUser replaces the image's user entirely; the group is the
            // user's own in the image's /etc/passwd, else 0, as in containerd.
            (Some(u), _) => {
                let u = u32::try_from(u).map_err(|_| Error::InvalidId {
                    field: "runAsUser",
                    value: u,
                })?;
                let primary = passwd_entry(inputs.layers, |_, uid| uid == u).map(|(_, g)| g);
                (u, primary.unwrap_or(0))
            }
            (None, Some(spec)) => image_identity(spec, inputs.layers)?,
            (None, None) => (0, 0),
        };
        let gid = match run_as_group {
            Some(g) => u32::try_from(g).map_err(|_| Error::InvalidId {
                field: "runAsGroup",
                value: g,
            })?,
            None => gid,
        };
        profile.uid = Some(uid);
        profile.gid = Some(gid);
        let mut groups: Vec<u32> = Vec::new();
        // Merge (the default): the groups the image's /etc/group gives the
        // user come first, as containerd adds them; Strict: only the pod's.
        let strict = pod.and_then(|p| p.supplemental_groups_policy.as_deref()) == Some("Strict");
        let from_image = if strict {
            Vec::new()
        } else {
            image_groups(inputs.layers, uid)
        };
        let pod_groups = from_image
            .into_iter()
            .map(i64::from)
            .chain(
                pod.and_then(|p| p.supplemental_groups.as_ref())
                    .into_iter()
                    .flatten()
                    .copied(),
            )
            .chain(pod.and_then(|p| p.fs_group));
        for g in pod_groups {
            let g = u32::try_from(g).map_err(|_| Error::InvalidId {
                field: "supplementalGroups/fsGroup",
                value: g,
            })?;
            if g != gid && !groups.contains(&g) {
                groups.push(g);
            }
        }
        // apply() hands the kernel a fixed array: more groups are refused
        // here rather than dropped there.
        if groups.len() > MAX_GROUPS - 1 {
            return Err(Error::TooManyGroups(groups.len()));
        }
        profile.groups = groups;

        // containerd gives privileged containers no seccomp filter.
        let seccomp = ctx
            .and_then(|c| c.seccomp_profile.as_ref())
            .or(pod.and_then(|p| p.seccomp_profile.as_ref()));
        if !profile.privileged {
            if let Some(sp) = seccomp {
                profile.seccomp = seccomp_program(sp, profile.caps, inputs.seccomp_root)?;
            }
        }
        Ok(profile)
    }

    /// Every group of the process: the primary one first.
    pub fn all_groups(&self) -> Vec<u32> {
        let gid = self.gid.unwrap_or(0);
        std::iter::once(gid)
            .chain(self.groups.iter().copied().filter(|g| *g != gid))
            .collect()
    }

    /// Applies the profile to the calling process just before exec. Only raw
    /// syscalls: this runs in forked children. Order matters: the bounding
    /// set is dropped while we still hold CAP_SETPCAP; the seccomp filter
    /// goes in while CAP_SYS_ADMIN is still effective (or, with
    /// no_new_privs, last of all, as runc does); then the groups and ids,
    /// which for a non-root uid clear the effective and permitted sets; then
    /// a root process's capabilities.
    pub fn apply(&self, sys: &dyn Sys, host: &HostCaps) -> Result<(), Error> {
        // Nothing beyond what podlab itself holds can be granted (this
        // machine, for one, lacks CAP_SYS_RESOURCE): privileged means all of it.
        let caps = self.caps & host.permitted;
        let fail = |op| move |source| Error::Syscall { op, source };
        let install = |program: &crate::seccomp::Program| {
            program.install(sys).map_err(|e| Error::Seccomp {
                path: "filter".into(),
                source: e,
            })
        };
        let uid = self.uid.unwrap_or(0);
        let gid = self.gid.unwrap_or(0);
        for cap in 0..=host.last_cap.min(63) {
            if caps & (1u64 << cap) == 0 {
                sys.drop_bounding_cap(cap)
                    .map_err(fail("drop bounding capability"))?;
            }
        }
        sys.clear_ambient_caps()
            .map_err(fail("clear ambient capabilities"))?;
        if !self.no_new_privs {
            if let Some(program) = &self.seccomp {
                install(program)?;
            }
        }
        // Always set: the process gets exactly its groups, never podlab's.
        // A fixed array: this runs after fork.
        let mut groups = [0u32; MAX_GROUPS];
        let mut n = 0;
        groups[n] = gid;
        n += 1;
        for g in self
            .groups
            .iter()
            .filter(|g| **g != gid)
            .take(MAX_GROUPS - 1)
        {
            groups[n] = *g;
            n += 1;
        }
        sys.set_groups(&groups[..n]).map_err(fail("setgroups"))?;
        sys.set_gid(gid).map_err(fail("setgid"))?;
        // Changing to a non-zero uid clears the permitted and effective
        // sets, as for any non-root process without file capabilities;
        // the bounding set stays as dropped above.
        sys.set_uid(uid).map_err(fail("setuid"))?;
        if uid == 0 {
            sys.set_caps(caps).map_err(fail("capset"))?;
        }
        if self.no_new_privs {
            sys.set_no_new_privs().map_err(fail("no_new_privs"))?;
            if let Some(program) = &self.seccomp {
                install(program)?;
            }
        }
        Ok(())
    }
}

/// Compiles the container's seccomp profile: RuntimeDefault for its
/// capabilities, a Localhost file under `root`, or nothing (Unconfined).
pub fn seccomp_program(
    sp: &SeccompProfile,
    caps: u64,
    root: &Path,
) -> Result<Option<crate::seccomp::Program>, Error> {
    let compiled = |profile: &crate::seccomp::OciProfile, path: String| {
        crate::seccomp::compile(profile)
            .map(Some)
            .map_err(|source| Error::Seccomp { path, source })
    };
    match sp.type_.as_str() {
        "RuntimeDefault" => compiled(
            &crate::seccomp::runtime_default(|name| cap_bit(name).is_ok_and(|bit| caps & bit != 0)),
            "RuntimeDefault".into(),
        ),
        "Localhost" => {
            let rel = sp.localhost_profile.as_deref().unwrap_or_default();
            // Validation refused absolute paths and `..`; checked again here
            // because the profile's path must stay under the root.
            if rel.is_empty() || rel.starts_with('/') || rel.split('/').any(|c| c == "..") {
                return Err(Error::SeccompParse {
                    path: PathBuf::from(rel),
                    message: "localhostProfile must be a relative path without \"..\"".into(),
                });
            }
            let path = root.join(rel);
            let text = std::fs::read(&path).map_err(|source| Error::SeccompFile {
                path: path.clone(),
                source,
            })?;
            let profile: crate::seccomp::OciProfile =
                serde_json::from_slice(&text).map_err(|e| Error::SeccompParse {
                    path: path.clone(),
                    message: crate::error::chain(&e),
                })?;
            compiled(&profile, path.display().to_string())
        }
        // Unconfined, and any value validation let through.
        _ => Ok(None),
    }
}

/// A file of the image, read from the topmost layer that has it as a
/// regular file under real directories (no symlink is followed, so a
/// layer cannot point the lookup at the host).
fn image_file(layers: &[PathBuf], rel: &str) -> Option<String> {
    let parts: Vec<&str> = rel.split('/').collect();
    'layers: for layer in layers.iter().rev() {
        let mut path = layer.clone();
        for (i, part) in parts.iter().enumerate() {
            path.push(part);
            match std::fs::symlink_metadata(&path) {
                Ok(m) if i + 1 < parts.len() && m.is_dir() => {}
                Ok(m) if i + 1 == parts.len() && m.is_file() => {
                    return std::fs::read_to_string(&path).ok();
                }
                // A symlink, a whiteout or anything else hides lower layers.
                Ok(_) => return None,
                Err(_) => continue 'layers,
            }
        }
    }
    None
}

/// The (name, uid, gid) entry of /etc/passwd in the image that `pick` chooses.
fn passwd_entry(layers: &[PathBuf], pick: impl Fn(&str, u32) -> bool) -> Option<(u32, u32)> {
    let text = image_file(layers, "etc/passwd")?;
    text.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        let (uid, gid) = (f.get(2)?.parse().ok()?, f.get(3)?.parse().ok()?);
        pick(f.first()?, uid).then_some((uid, gid))
    })
}

/// The groups of the image's /etc/group that list the user of `uid` (by
/// its /etc/passwd name) among their members.
fn image_groups(layers: &[PathBuf], uid: u32) -> Vec<u32> {
    let name = image_file(layers, "etc/passwd").and_then(|text| {
        text.lines().find_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            (f.get(2)?.parse::<u32>().ok()? == uid).then(|| f.first().map(|n| n.to_string()))?
        })
    });
    let (Some(name), Some(text)) = (name, image_file(layers, "etc/group")) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            let member = f.get(3)?.split(',').any(|m| m.trim() == name);
            member.then(|| f.get(2)?.parse().ok())?
        })
        .collect()
}

/// The uid and gid of an image config's `User`.
fn image_identity(spec: &str, layers: &[PathBuf]) -> Result<(u32, u32), Error> {
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let err = |why: &str| Error::ImageUser {
        user: spec.into(),
        why: why.into(),
    };
    let (uid, primary) = match user.parse::<u32>() {
        Ok(uid) => (
            uid,
            passwd_entry(layers, |_, u| u == uid)
                .map(|(_, g)| g)
                .unwrap_or(0),
        ),
        Err(_) => passwd_entry(layers, |name, _| name == user)
            .ok_or_else(|| err("no such user in the image's /etc/passwd"))?,
    };
    let gid = match group {
        None => primary,
        Some(g) => match g.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => image_file(layers, "etc/group")
                .and_then(|text| {
                    text.lines().find_map(|line| {
                        let f: Vec<&str> = line.split(':').collect();
                        (f.first() == Some(&g)).then(|| f.get(2)?.parse().ok())?
                    })
                })
                .ok_or_else(|| err("no such group in the image's /etc/group"))?,
        },
    };
    Ok((uid, gid))
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
pub fn mask_paths(sys: &dyn Sys, rootfs: &Path) -> Result<(), Error> {
    for rel in MASKED_PATHS {
        let p = rootfs.join(rel);
        match std::fs::metadata(&p) {
            Ok(m) if m.is_dir() => sys.mount(
                Some("tmpfs"),
                &p,
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                Some("size=0"),
            )?,
            Ok(_) => sys.bind(Path::new("/dev/null"), &p, false)?,
            Err(_) => {}
        }
    }
    for rel in READONLY_PATHS {
        let p = rootfs.join(rel);
        if p.exists() {
            // Bind onto itself so the read-only flag applies to this subtree only.
            sys.bind(&p, &p, true)?;
        }
    }
    Ok(())
}

/// Closes every descriptor above stderr at exec: nothing of the host's
/// (the class of runc CVE-2024-21626) reaches the container's process.
pub fn close_fds_on_exec(sys: &dyn Sys) -> Result<(), Error> {
    sys.close_range_cloexec(3).map_err(|source| Error::Syscall {
        op: "close_range",
        source,
    })
}

/// Gives the exec'd program the signal state a container starts with (see
/// [`Sys::default_signals`]).
pub fn default_signals_on_exec(sys: &dyn Sys) -> Result<(), Error> {
    sys.default_signals().map_err(|source| Error::Syscall {
        op: "rt_sigprocmask",
        source,
    })
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

    fn pod_sc(v: serde_json::Value) -> PodSecurityContext {
        serde_json::from_value(v).unwrap()
    }

    fn ctr_sc(v: serde_json::Value) -> SecurityContext {
        serde_json::from_value(v).unwrap()
    }

    fn resolve(
        pod: Option<&PodSecurityContext>,
        ctr: Option<&SecurityContext>,
        image_user: Option<&str>,
        layers: &[PathBuf],
        root: &Path,
    ) -> Result<Profile, Error> {
        Profile::resolve(&Inputs {
            pod,
            container: ctr,
            image_user,
            layers,
            seccomp_root: root,
        })
    }

    #[test]
    fn the_container_context_wins_field_by_field() {
        let pod = pod_sc(serde_json::json!({
            "runAsUser": 1000, "runAsGroup": 3000, "supplementalGroups": [4000, 3000], "fsGroup": 2000,
            "seccompProfile": {"type": "RuntimeDefault"}
        }));
        let root = Path::new("/nonexistent");
        let p = resolve(Some(&pod), None, None, &[], root).unwrap();
        assert_eq!((p.uid, p.gid), (Some(1000), Some(3000)));
        assert_eq!(
            p.all_groups(),
            [3000, 4000, 2000],
            "primary first, fsGroup added"
        );
        assert!(p.seccomp.is_some());
        let ctr = ctr_sc(
            serde_json::json!({"runAsUser": 2001, "seccompProfile": {"type": "Unconfined"}}),
        );
        let p = resolve(Some(&pod), Some(&ctr), Some("5:5"), &[], root).unwrap();
        assert_eq!(
            (p.uid, p.gid),
            (Some(2001), Some(3000)),
            "pod's runAsGroup still applies"
        );
        assert!(p.seccomp.is_none(), "the container's Unconfined wins");
        // Nothing set: root, the image's user when it has one.
        let p = resolve(None, None, None, &[], root).unwrap();
        assert_eq!((p.uid, p.gid, p.all_groups()), (Some(0), Some(0), vec![0]));
        let p = resolve(None, None, Some("123:456"), &[], root).unwrap();
        assert_eq!((p.uid, p.gid), (Some(123), Some(456)));
    }

    #[test]
    fn run_as_non_root_is_checked_as_the_kubelet_does() {
        let root = Path::new("/nonexistent");
        let non_root = pod_sc(serde_json::json!({"runAsNonRoot": true}));
        let msg = |r: Result<Profile, Error>| r.unwrap_err().to_string();
        assert_eq!(
            msg(resolve(Some(&non_root), None, None, &[], root)),
            "container has runAsNonRoot and image will run as root"
        );
        assert_eq!(
            msg(resolve(Some(&non_root), None, Some("0:0"), &[], root)),
            "container has runAsNonRoot and image will run as root"
        );
        assert!(
            msg(resolve(Some(&non_root), None, Some("nobody"), &[], root))
                .contains("image has non-numeric user (nobody)")
        );
        let zero = ctr_sc(serde_json::json!({"runAsUser": 0}));
        assert_eq!(
            msg(resolve(Some(&non_root), Some(&zero), None, &[], root)),
            "container's runAsUser breaks non-root policy"
        );
        assert!(resolve(Some(&non_root), None, Some("1000"), &[], root).is_ok());
        // The container may lift the pod's requirement.
        let lifted = ctr_sc(serde_json::json!({"runAsNonRoot": false}));
        assert!(resolve(Some(&non_root), Some(&lifted), None, &[], root).is_ok());
    }

    #[test]
    fn image_groups_merge_unless_the_policy_is_strict() {
        let tmp = tempfile::tempdir().unwrap();
        let layer = tmp.path().to_path_buf();
        std::fs::create_dir_all(layer.join("etc")).unwrap();
        std::fs::write(
            layer.join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\napp:x:8:80::/:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            layer.join("etc/group"),
            "app:x:80:\nextra:x:90:root,app\nother:x:91:root\nbad:x:zz:app\n",
        )
        .unwrap();
        let layers = vec![layer];
        let root = Path::new("/nonexistent");
        let merge = pod_sc(serde_json::json!({"supplementalGroups": [300]}));
        let p = resolve(Some(&merge), None, Some("app"), &layers, root).unwrap();
        assert_eq!(p.all_groups(), vec![80, 90, 300]);
        // runAsUser picks the user whose groups count.
        let root_user = pod_sc(serde_json::json!({"runAsUser": 0}));
        let p = resolve(Some(&root_user), None, Some("app"), &layers, root).unwrap();
        assert_eq!(p.all_groups(), vec![0, 90, 91]);
        let strict = pod_sc(serde_json::json!({
            "supplementalGroups": [300], "supplementalGroupsPolicy": "Strict"}));
        let p = resolve(Some(&strict), None, Some("app"), &layers, root).unwrap();
        assert_eq!(p.all_groups(), vec![80, 300]);
    }

    #[test]
    fn image_user_names_come_from_the_topmost_layer_without_following_links() {
        let tmp = tempfile::tempdir().unwrap();
        let (low, high) = (tmp.path().join("l0"), tmp.path().join("l1"));
        std::fs::create_dir_all(low.join("etc")).unwrap();
        std::fs::create_dir_all(high.join("etc")).unwrap();
        std::fs::write(
            low.join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\napp:x:7:70::/:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            high.join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\napp:x:8:80::/:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(high.join("etc/group"), "staff:x:50:\n").unwrap();
        let layers = vec![low.clone(), high.clone()];
        let root = Path::new("/nonexistent");
        let p = resolve(None, None, Some("app"), &layers, root).unwrap();
        assert_eq!((p.uid, p.gid), (Some(8), Some(80)));
        let p = resolve(None, None, Some("app:staff"), &layers, root).unwrap();
        assert_eq!((p.uid, p.gid), (Some(8), Some(50)));
        // runAsUser takes its primary group from the image's passwd.
        let ctr = ctr_sc(serde_json::json!({"runAsUser": 8}));
        assert_eq!(
            resolve(None, Some(&ctr), None, &layers, root).unwrap().gid,
            Some(80)
        );
        assert!(matches!(
            resolve(None, None, Some("ghost"), &layers, root),
            Err(Error::ImageUser { .. })
        ));
        // A symlinked /etc/passwd in the top layer is not followed.
        std::fs::remove_file(high.join("etc/passwd")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", high.join("etc/passwd")).unwrap();
        assert!(matches!(
            resolve(None, None, Some("root"), &layers, root),
            Err(Error::ImageUser { .. })
        ));
    }

    #[test]
    fn seccomp_profiles_privileged_and_localhost() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let privileged = ctr_sc(
            serde_json::json!({"privileged": true, "seccompProfile": {"type": "RuntimeDefault"}}),
        );
        assert!(resolve(None, Some(&privileged), None, &[], root)
            .unwrap()
            .seccomp
            .is_none());
        std::fs::create_dir_all(root.join("profiles")).unwrap();
        std::fs::write(
            root.join("profiles/deny-mkdir.json"),
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}"#,
        )
        .unwrap();
        std::fs::write(
            root.join("profiles/typo.json"),
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdri"], "action": "SCMP_ACT_ERRNO"}]}"#,
        )
        .unwrap();
        let local = |name: &str| {
            pod_sc(
                serde_json::json!({"seccompProfile": {"type": "Localhost", "localhostProfile": name}}),
            )
        };
        let p = resolve(
            Some(&local("profiles/deny-mkdir.json")),
            None,
            None,
            &[],
            root,
        )
        .unwrap();
        assert_eq!(p.seccomp.unwrap().filters.len(), 1);
        let err = crate::error::chain(
            &resolve(Some(&local("profiles/typo.json")), None, None, &[], root).unwrap_err(),
        );
        assert!(
            err.ends_with(
                "profiles/typo.json: syscalls[0].names[0]: unknown system call \"mkdri\""
            ),
            "{err}"
        );
        let err = resolve(Some(&local("missing.json")), None, None, &[], root).unwrap_err();
        assert!(matches!(err, Error::SeccompFile { .. }), "{err}");
        let err = resolve(Some(&local("../etc/x.json")), None, None, &[], root).unwrap_err();
        assert!(err.to_string().contains("relative path"), "{err}");
    }

    #[test]
    fn too_many_groups_are_refused_not_dropped() {
        let many: Vec<i64> = (1..=70).collect();
        let pod = pod_sc(serde_json::json!({"supplementalGroups": many}));
        let err = resolve(Some(&pod), None, None, &[], Path::new("/nonexistent")).unwrap_err();
        assert!(matches!(err, Error::TooManyGroups(70)), "{err}");
        let few: Vec<i64> = (1..=63).collect();
        let pod = pod_sc(serde_json::json!({"supplementalGroups": few}));
        let p = resolve(Some(&pod), None, None, &[], Path::new("/nonexistent")).unwrap();
        assert_eq!(p.all_groups().len(), 64);
    }

    mod sequence {
        use super::*;
        use crate::sys::{Call, Recording};

        const HOST: HostCaps = HostCaps {
            last_cap: 40,
            permitted: (1 << 41) - 1,
        };

        fn applied(p: &Profile) -> Vec<Call> {
            let rec = Recording::new();
            p.apply(&rec, &HOST).unwrap();
            rec.calls()
        }

        fn runtime_default(p: &Profile) -> Option<crate::seccomp::Program> {
            let sp = SeccompProfile {
                type_: "RuntimeDefault".into(),
                ..Default::default()
            };
            seccomp_program(&sp, p.caps, Path::new("/nonexistent")).unwrap()
        }

        #[test]
        fn root_drops_the_bounding_set_then_ambient_then_ids_then_sets_its_caps() {
            let p = Profile::from_context(None).unwrap();
            let dropped: Vec<Call> = (0..=40)
                .filter(|c| p.caps & (1 << c) == 0)
                .map(Call::DropBoundingCap)
                .collect();
            let mut want = dropped;
            want.extend([
                Call::ClearAmbientCaps,
                Call::SetGroups(vec![0]),
                Call::SetGid(0),
                Call::SetUid(0),
                Call::SetCaps(p.caps),
            ]);
            assert_eq!(applied(&p), want);
        }

        #[test]
        fn a_non_root_user_gets_its_groups_and_no_capset() {
            let mut p = Profile::from_context(None).unwrap();
            p.uid = Some(1000);
            p.gid = Some(2000);
            p.groups = vec![2000, 3000];
            let calls = applied(&p);
            let tail = &calls[calls.len() - 4..];
            assert_eq!(
                tail,
                [
                    Call::ClearAmbientCaps,
                    Call::SetGroups(vec![2000, 3000]),
                    Call::SetGid(2000),
                    Call::SetUid(1000),
                ]
            );
        }

        #[test]
        fn the_filter_goes_in_before_the_ids_or_last_with_no_new_privs() {
            let mut p = Profile::from_context(None).unwrap();
            p.seccomp = runtime_default(&p);
            let filters = p.seccomp.as_ref().map_or(0, |prog| prog.filters.len());
            assert!(filters > 0);
            let calls = applied(&p);
            let first_filter = calls
                .iter()
                .position(|c| matches!(c, Call::SeccompFilter(_)))
                .unwrap();
            assert_eq!(calls[first_filter - 1], Call::ClearAmbientCaps);
            assert!(matches!(calls.last(), Some(Call::SetCaps(_))));

            p.no_new_privs = true;
            let calls = applied(&p);
            let nnp = calls.iter().position(|c| *c == Call::NoNewPrivs).unwrap();
            assert!(matches!(calls[nnp - 1], Call::SetCaps(_)));
            assert_eq!(calls.len() - nnp - 1, filters, "{calls:?}");
            assert!(calls[nnp + 1..]
                .iter()
                .all(|c| matches!(c, Call::SeccompFilter(_))));
        }

        #[test]
        fn nothing_is_granted_beyond_what_podlab_holds() {
            let p = Profile::from_context(None).unwrap();
            let host = HostCaps {
                last_cap: 40,
                permitted: 1 << 0, // CHOWN only
            };
            let rec = Recording::new();
            p.apply(&rec, &host).unwrap();
            assert_eq!(rec.calls().last(), Some(&Call::SetCaps(1)));
            assert!(!rec.calls().contains(&Call::DropBoundingCap(0)));
        }

        #[test]
        fn a_failed_bounding_drop_stops_before_the_ids_change() {
            let rec = Recording::failing(|c| matches!(c, Call::DropBoundingCap(_)));
            let p = Profile::from_context(None).unwrap();
            let err = p.apply(&rec, &HOST).unwrap_err();
            assert!(
                err.to_string().contains("drop bounding capability"),
                "{err}"
            );
            assert_eq!(rec.calls().len(), 1);
        }

        #[test]
        fn masked_paths_are_covered_and_kernel_dirs_frozen() {
            let root = tempfile::tempdir().unwrap();
            std::fs::create_dir_all(root.path().join("proc/acpi")).unwrap();
            std::fs::write(root.path().join("proc/kcore"), b"").unwrap();
            std::fs::create_dir_all(root.path().join("proc/sys")).unwrap();
            let rec = Recording::new();
            mask_paths(&rec, root.path()).unwrap();
            let calls = rec.calls();
            assert!(
                matches!(&calls[0], Call::Mount { fstype: Some(t), target, .. }
                if t == "tmpfs" && target.ends_with("proc/acpi"))
            );
            assert_eq!(
                calls[1],
                Call::Bind {
                    source: "/dev/null".into(),
                    target: root.path().join("proc/kcore"),
                    readonly: false
                }
            );
            let sys = root.path().join("proc/sys");
            assert_eq!(
                calls[2],
                Call::Bind {
                    source: sys.clone(),
                    target: sys,
                    readonly: true
                }
            );
            assert_eq!(calls.len(), 3);
        }
    }
}
