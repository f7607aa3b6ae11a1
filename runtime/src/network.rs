//! The pod network: every pod's named netns is attached through real CNI
//! plugins (podlab's default bridge network `podlab0`, or the user's own
//! conflist), and this module also answers what the node is called and
//! which IP it has.

use std::net::Ipv4Addr;
use std::path::Path;

use crate::cni::{self, Attachment, Cni};
use crate::config::Config;

/// The pod's interface, as kubelet names it.
pub const POD_IFNAME: &str = "eth0";

/// The network pods attach to: the user's conflist when one is configured,
/// else podlab's default (written under the state root on first use).
pub fn pod_network(config: &Config) -> Result<Cni, cni::Error> {
    match &config.cni_conf_dir {
        Some(dir) => {
            let mut c = Cni::from_conf_dir(dir)?;
            c.cache_dir = config.root.join("cni/cache");
            Ok(c)
        }
        None => Cni::default_network(&config.root, Path::new(cni::HOST_IPAM_DIR), &config.subnet),
    }
}

/// The pod's `hostPort`s as CNI `portMappings` (libcni's runtimeConfig
/// shape): every container port that asks for one, protocol in lower case.
pub fn port_mappings(pod: &k8s_openapi::api::core::v1::Pod) -> Vec<serde_json::Value> {
    let spec = pod.spec.as_ref();
    spec.into_iter()
        .flat_map(|s| s.containers.iter())
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let host = p.host_port.filter(|h| *h > 0)?;
            let mut m = serde_json::json!({
                "hostPort": host,
                "containerPort": p.container_port,
                "protocol": p.protocol.as_deref().unwrap_or("TCP").to_ascii_lowercase(),
            });
            if let Some(ip) = p.host_ip.as_deref().filter(|ip| !ip.is_empty()) {
                m["hostIP"] = serde_json::json!(ip);
            }
            Some(m)
        })
        .collect()
}

/// CNI ADD for a pod, with its `hostPort` mappings. The bridge plugin
/// switches the host's IPv4 forwarding on for a gateway bridge; pod-to-pod
/// and node-to-pod traffic (hostPort traffic from the node's own addresses
/// too) stay on the node and need none, so the host's setting is put back.
pub fn attach(
    config: &Config,
    uid: &str,
    netns: &Path,
    ports: Vec<serde_json::Value>,
) -> Result<Attachment, cni::Error> {
    let forward = Path::new("/proc/sys/net/ipv4/ip_forward");
    let before = std::fs::read_to_string(forward).ok();
    let result = pod_network(config).and_then(|mut c| {
        if !ports.is_empty() {
            c.runtime_config = Some(serde_json::json!({ "portMappings": ports }));
        }
        c.add(uid, netns, POD_IFNAME)
    });
    if let Some(b) = before {
        if std::fs::read_to_string(forward).ok().as_deref() != Some(b.as_str()) {
            let _ = std::fs::write(forward, b);
        }
    }
    result
}

/// CNI DEL for a pod that was attached (has a cached result); idempotent.
pub fn detach(config: &Config, uid: &str, netns: &Path) -> Result<(), cni::Error> {
    let c = pod_network(config)?;
    if c.cached()?.iter().any(|a| a.container_id == uid) {
        c.del(uid, netns, POD_IFNAME)?;
    }
    Ok(())
}

/// The node name: the host's hostname, as kubelet defaults it.
pub fn node_name() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}

/// The node's IP for `status.hostIP`: the first IPv4 address of an up,
/// non-loopback interface (kubelet picks the default-route address; this is
/// the same on a one-interface machine, without sending any packet).
pub fn host_ip() -> Option<String> {
    interface_addresses()
        .into_iter()
        .find(|(name, ip)| name != "lo" && !ip.is_loopback())
        .map(|(_, ip)| ip.to_string())
}

/// IPv4 addresses of the interfaces that are up, in the caller's netns.
pub fn interface_addresses() -> Vec<(String, Ipv4Addr)> {
    use nix::net::if_::InterfaceFlags;
    let Ok(list) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    list.filter(|ifa| ifa.flags.contains(InterfaceFlags::IFF_UP))
        .filter_map(|ifa| {
            let sin = ifa.address.as_ref()?.as_sockaddr_in()?;
            Some((ifa.interface_name, sin.ip()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_listed_and_never_the_host_ip() {
        let addrs = interface_addresses();
        assert!(
            addrs.iter().any(|(n, ip)| n == "lo" && ip.is_loopback()),
            "{addrs:?}"
        );
        if let Some(ip) = host_ip() {
            assert!(!ip.starts_with("127."), "{ip}");
        }
        assert!(!node_name().is_empty());
    }
}

/// The host's side of a pod's attachment: the bridge and the veth the CNI
/// result names (interfaces without a `sandbox` are on the host).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostLinks {
    pub bridge: Option<String>,
    pub veth: Option<String>,
}

/// Reads [`HostLinks`] from a pod's cached CNI result.
pub fn host_links(config: &Config, uid: &str) -> HostLinks {
    pod_network(config)
        .ok()
        .and_then(|c| c.cached_result(uid, POD_IFNAME).ok().flatten())
        .map(|r| host_links_of(&r))
        .unwrap_or_default()
}

/// The host interfaces of a CNI result: a veth (`veth…`) and the bridge.
pub fn host_links_of(result: &serde_json::Value) -> HostLinks {
    let mut links = HostLinks::default();
    for i in result["interfaces"].as_array().into_iter().flatten() {
        let on_host = i["sandbox"].as_str().is_none_or(str::is_empty);
        let Some(name) = i["name"].as_str().filter(|_| on_host) else {
            continue;
        };
        if name.starts_with("veth") {
            links.veth.get_or_insert_with(|| name.to_string());
        } else {
            links.bridge.get_or_insert_with(|| name.to_string());
        }
    }
    links
}

#[cfg(test)]
mod host_link_tests {
    #[test]
    fn host_links_come_from_interfaces_outside_the_sandbox() {
        let r = serde_json::json!({"interfaces": [
            {"name": "podlab0", "mac": "a"},
            {"name": "veth1a2b", "mac": "b"},
            {"name": "eth0", "sandbox": "/run/netns/podlab-x"}]});
        let l = super::host_links_of(&r);
        assert_eq!(l.bridge.as_deref(), Some("podlab0"));
        assert_eq!(l.veth.as_deref(), Some("veth1a2b"));
        assert_eq!(
            super::host_links_of(&serde_json::json!({})),
            super::HostLinks::default()
        );
    }
}
