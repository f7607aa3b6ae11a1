//! The host as adapters and tests see it: its addresses, and the clean-up
//! shared by the adapters of runtimes that leave things on it (podman,
//! containerd): cgroups, mounts, processes. Each clean-up helper only ever
//! removes what is empty or names the adapter's own directory.

use std::collections::BTreeSet;
use std::ffi::CStr;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub use podlab_testkit::host::{processes_naming, remove_cgroup_tree, unmount_under};

/// The node's interface addresses as the suite process sees them:
/// (interface, address) for every AF_INET/AF_INET6 entry of getifaddrs.
pub fn node_addresses() -> std::io::Result<BTreeSet<(String, IpAddr)>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs writes the list head through a valid pointer; on
    // success we own the list until the freeifaddrs below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let mut found = BTreeSet::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a live node of that list: its name is a
        // NUL-terminated string and its address is null or a sockaddr of the
        // size its family implies.
        let (entry, next) = unsafe {
            let ifa = &*cur;
            let name = if ifa.ifa_name.is_null() {
                String::new()
            } else {
                CStr::from_ptr(ifa.ifa_name).to_string_lossy().into_owned()
            };
            let sa = ifa.ifa_addr;
            let ip = if sa.is_null() {
                None
            } else {
                match i32::from((*sa).sa_family) {
                    libc::AF_INET => {
                        let sin = std::ptr::read_unaligned(sa.cast::<libc::sockaddr_in>());
                        Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                            sin.sin_addr.s_addr,
                        ))))
                    }
                    libc::AF_INET6 => {
                        let sin6 = std::ptr::read_unaligned(sa.cast::<libc::sockaddr_in6>());
                        Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)))
                    }
                    _ => None,
                }
            };
            (ip.map(|ip| (name, ip)), ifa.ifa_next)
        };
        found.extend(entry);
        cur = next;
    }
    // SAFETY: `head` came from a successful getifaddrs and is freed once;
    // nothing borrowed from the list outlives this point.
    unsafe { libc::freeifaddrs(head) };
    Ok(found)
}
