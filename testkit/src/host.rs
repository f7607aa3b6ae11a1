//! The host as tests see it after a runtime ran pods: what may be left
//! there (network namespaces, cgroups, mounts, IPAM leases, veths, NAT
//! rules, processes) and the clean-up of what a daemon left. Each finder
//! takes its roots as parameters so unit tests can use a fake tree; each
//! clean-up only removes what is empty or below the caller's own directory.

use std::path::{Path, PathBuf};

/// Where podlab's CNI plugins keep their state on the host.
pub const CNI_RUN_DIR: &str = "/run/podlab-cni";

/// Entries of the netns directory and of the `podlab` directory of each
/// cgroup hierarchy (and of the unified one) whose name carries one of
/// `uids`: "PATH is still there".
pub fn named_leftovers(netns: &Path, cgroup_root: &Path, uids: &[String]) -> Vec<String> {
    let mut dirs: Vec<PathBuf> = vec![netns.to_path_buf(), cgroup_root.join("podlab")];
    if let Ok(entries) = std::fs::read_dir(cgroup_root) {
        // Pod cgroups sit below a `podlab` directory in each v1 hierarchy.
        dirs.extend(entries.flatten().map(|e| e.path().join("podlab")));
    }
    let mut left = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if uids
                .iter()
                .any(|u| !u.is_empty() && name.contains(u.as_str()))
            {
                left.push(format!("{} is still there", e.path().display()));
            }
        }
    }
    left.sort();
    left.dedup();
    left
}

/// The mount points in `mountinfo` at or below `dir` (field 5, with the
/// kernel's octal escapes for blanks undone).
pub fn mounts_under(mountinfo: &str, dir: &Path) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| {
            PathBuf::from(
                p.replace("\\040", " ")
                    .replace("\\011", "\t")
                    .replace("\\012", "\n")
                    .replace("\\134", "\\"),
            )
        })
        .filter(|p| p.starts_with(dir))
        .collect()
}

/// Detaches every mount point at or below `dir`, deepest first: what a
/// daemon (podman's storage, containerd's snapshots and network namespaces)
/// left mounted there. Returns the mount points it detached.
pub fn unmount_under(dir: &Path) -> Vec<PathBuf> {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut points = mounts_under(&info, &dir);
    points.sort_by_key(|p| std::cmp::Reverse(p.as_os_str().len()));
    for p in &points {
        if let Ok(c) = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()) {
            // SAFETY: a NUL-terminated path that outlives the call; a lazy
            // unmount touches no memory of ours.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
    points
}

/// rmdir of a cgroup directory and its child cgroups, deepest first.
pub fn remove_cgroup_tree(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            remove_cgroup_tree(&e.path());
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// Processes (other than this one) under `proc_root` whose command line
/// contains `mark`: "process PID is still running: CMDLINE", sorted.
pub fn processes_naming(proc_root: &Path, mark: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(proc_root) else {
        return Vec::new();
    };
    let me = std::process::id().to_string();
    let mut left = Vec::new();
    for e in entries.flatten() {
        let pid = e.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) || pid == me {
            continue;
        }
        let Ok(raw) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        // A zombie's command line is empty, so it never names the mark.
        let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
        if cmdline.contains(mark) {
            left.push(format!(
                "process {pid} is still running: {}",
                cmdline.trim()
            ));
        }
    }
    left.sort();
    left
}

/// The state letter of a process (`R`, `S`, `T` stopped, `Z`), None once gone.
pub fn process_state(pid: i64) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')').next()?.trim_start().chars().next()
}

/// True while the process exists and is not a zombie.
pub fn alive(pid: i64) -> bool {
    process_state(pid).is_some_and(|s| s != 'Z')
}

/// IPAM leases of the host-local plugin under `cni_run_dir` held for `uid`
/// (a lease file holds the container id it was handed to, podlab's pod uid).
pub fn leases_of(cni_run_dir: &Path, uid: &str) -> Vec<String> {
    let mut left = Vec::new();
    let ipam = std::fs::read_dir(cni_run_dir.join("ipam"))
        .into_iter()
        .flatten()
        .flatten();
    for net in ipam {
        for lease in std::fs::read_dir(net.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            if std::fs::read_to_string(lease.path()).is_ok_and(|t| t.contains(uid)) {
                left.push(format!("lease {}", lease.path().display()));
            }
        }
    }
    left.sort();
    left
}

/// The CNI result cache entries under `cni_run_dir` named after `uid`.
pub fn cni_cache_of(cni_run_dir: &Path, uid: &str) -> Vec<String> {
    let mut left: Vec<String> = std::fs::read_dir(cni_run_dir.join("cache"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(uid))
        .map(|e| format!("cni cache {}", e.path().display()))
        .collect();
    left.sort();
    left
}

/// Host-side veth interfaces whose peer is in the pod's named netns
/// (`podlab-UID`).
pub fn veths_of(uid: &str) -> Vec<String> {
    let out = std::process::Command::new("ip")
        .args(["-o", "link", "show", "type", "veth"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let netns = format!("link-netns podlab-{uid}");
    out.lines()
        .filter(|l| l.contains(&netns))
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap_or("").to_string())
        .collect()
}

/// True while a network interface of this name exists on the host.
pub fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// The node's NAT rules as `iptables -S` prints them; empty when iptables
/// is missing or fails (then there are no portmap rules either).
pub fn nat_rules() -> String {
    std::process::Command::new("iptables")
        .args(["-w", "-t", "nat", "-S"])
        .stderr(std::process::Stdio::null())
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default()
}

/// The lines of `rules` that name one of `uids`: hostPort rules (CNI
/// portmap tags each with its container id, podlab's pod uid).
pub fn nat_rules_naming(rules: &str, uids: &[String]) -> Vec<String> {
    rules
        .lines()
        .filter(|l| uids.iter().any(|u| !u.is_empty() && l.contains(u.as_str())))
        .map(String::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mounts_under_a_directory_and_not_beside_it() {
        let info = "\
22 1 0:21 / / rw - ext4 /dev/vda rw
90 22 0:50 / /w/target/bench/work/podman/storage/overlay rw - ext4 /dev/vda rw
91 90 0:51 / /w/target/bench/work/podman/storage/overlay/abc/merged rw - overlay overlay rw
92 22 0:52 / /w/target/bench/work2 rw - tmpfs tmpfs rw
93 22 0:53 / /w/target/bench/work/a\\040b rw - tmpfs tmpfs rw
";
        let found = mounts_under(info, Path::new("/w/target/bench/work"));
        assert_eq!(
            found,
            [
                PathBuf::from("/w/target/bench/work/podman/storage/overlay"),
                PathBuf::from("/w/target/bench/work/podman/storage/overlay/abc/merged"),
                PathBuf::from("/w/target/bench/work/a b"),
            ]
        );
    }

    #[test]
    fn netns_and_cgroups_of_our_uids_are_leftovers() {
        let tmp = std::env::temp_dir().join(format!("podlab-testkit-{}", std::process::id()));
        let netns = tmp.join("netns");
        let cg = tmp.join("cgroup");
        for d in [
            netns.join("podlab-u-1"),
            netns.join("podlab-other"),
            cg.join("memory/podlab/pod-u-1"),
            cg.join("podlab/pod-u-2"),
        ] {
            std::fs::create_dir_all(d).unwrap();
        }
        let left = named_leftovers(&netns, &cg, &["u-1".into(), "u-2".into()]);
        let _ = std::fs::remove_dir_all(&tmp);
        assert_eq!(left.len(), 3, "{left:?}");
        assert!(left.iter().all(|l| !l.contains("other")), "{left:?}");
        assert!(named_leftovers(&netns, &cg, &[String::new()]).is_empty());
    }

    #[test]
    fn nat_rules_of_our_pods() {
        let rules = "-N CNI-HOSTPORT-DNAT\n\
            -A CNI-HOSTPORT-DNAT -m comment --comment \"id: \\\"u-1\\\"\" -j CNI-DN-x\n\
            -A CNI-HOSTPORT-DNAT -m comment --comment \"id: \\\"other\\\"\" -j CNI-DN-y\n";
        let found = nat_rules_naming(rules, &["u-1".to_string()]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("CNI-DN-x"));
        assert!(nat_rules_naming(rules, &[]).is_empty());
    }

    #[test]
    fn this_process_is_alive_and_never_its_own_leftover() {
        assert!(alive(i64::from(std::process::id())));
        assert!(!alive(i64::from(i32::MAX)));
        let me = std::fs::read("/proc/self/cmdline").unwrap();
        let mark = String::from_utf8_lossy(&me).replace('\0', " ");
        assert!(processes_naming(Path::new("/proc"), mark.trim())
            .iter()
            .all(|l| !l.starts_with(&format!("process {} ", std::process::id()))));
    }
}
