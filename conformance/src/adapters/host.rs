//! The host as adapters and tests see it: its addresses, and the clean-up
//! shared by the adapters of runtimes that leave things on it (podman,
//! containerd): cgroups, mounts, processes. Each clean-up helper only ever
//! removes what is empty or names the adapter's own directory.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;

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

/// Detaches every mount point below `dir`, deepest first.
pub fn unmount_under(dir: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let prefix = dir.to_string_lossy().into_owned();
    let mut points: Vec<String> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|p| p.starts_with(&prefix))
        .map(str::to_string)
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        if let Ok(c) = std::ffi::CString::new(p) {
            // SAFETY: a valid NUL-terminated path; MNT_DETACH touches no memory of ours.
            unsafe {
                libc::umount2(c.as_ptr(), libc::MNT_DETACH);
            }
        }
    }
}

/// Processes whose command line contains `mark`.
pub fn processes_naming(proc_root: &Path, mark: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(proc_root) else {
        return Vec::new();
    };
    let mut left = Vec::new();
    for e in entries.flatten() {
        let pid = e.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) || pid == std::process::id().to_string() {
            continue;
        }
        let Ok(raw) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
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

/// The node's interface addresses as the suite process sees them:
/// (interface, address) for every AF_INET/AF_INET6 entry of getifaddrs.
pub fn node_addresses() -> std::io::Result<BTreeSet<(String, IpAddr)>> {
    Ok(nix::ifaddrs::getifaddrs()?
        .filter_map(|ifa| {
            let addr = ifa.address?;
            let ip = match (addr.as_sockaddr_in(), addr.as_sockaddr_in6()) {
                (Some(sin), _) => IpAddr::V4(sin.ip()),
                (_, Some(sin6)) => IpAddr::V6(sin6.ip()),
                _ => return None,
            };
            Some((ifa.interface_name, ip))
        })
        .collect())
}
