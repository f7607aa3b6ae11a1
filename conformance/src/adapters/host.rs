//! The host as adapters and tests see it: its addresses, and the clean-up
//! shared by the adapters of runtimes that leave things on it (podman,
//! containerd): cgroups, mounts, processes. Each clean-up helper only ever
//! removes what is empty or names the adapter's own directory.

use std::collections::BTreeSet;
use std::net::IpAddr;

pub use podlab_testkit::host::{processes_naming, remove_cgroup_tree, unmount_under};

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
