//! What the kubelet, not the runtime, decides for a pod, done here as the
//! kubelet would: the DNS config and host-port mappings it puts in the
//! sandbox config, the /etc/hosts file it writes and mounts into every
//! container, and its sysctl admission (the safe set).

use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::{Pod, PodSpec};

/// The kubelet's admission verdict on the pod's sysctls: the message of a
/// SysctlForbidden rejection, or None.
pub fn forbidden_sysctl(spec: &PodSpec) -> Option<String> {
    let sysctls = spec.security_context.as_ref()?.sysctls.as_ref()?;
    let bad = sysctls
        .iter()
        .find(|s| !podlab_kube::sysctl::is_safe(&s.name))?;
    Some(format!(
        "Pod was rejected: forbidden sysctl: {:?} not allowlisted",
        bad.name
    ))
}

/// The sandbox's DNS config. There is no cluster DNS here, so ClusterFirst
/// (the default) falls back to Default like a kubelet without one: the
/// node's resolv.conf; None starts empty; spec.dnsConfig is merged on top
/// (lists appended without repeats, options replacing same-named ones).
pub fn dns_config(spec: &PodSpec, node_resolv: &str) -> cri::DnsConfig {
    let mut out = cri::DnsConfig::default();
    if spec.dns_policy.as_deref() != Some("None") {
        for line in node_resolv.lines() {
            let mut w = line.split_whitespace().map(String::from);
            match w.next().as_deref() {
                Some("nameserver") => out.servers.extend(w.next()),
                Some("search") => out.searches = w.collect(),
                Some("options") => out.options.extend(w),
                _ => {}
            }
        }
    }
    if let Some(cfg) = &spec.dns_config {
        for n in cfg.nameservers.iter().flatten() {
            if !out.servers.contains(n) {
                out.servers.push(n.clone());
            }
        }
        for s in cfg.searches.iter().flatten() {
            if !out.searches.contains(s) {
                out.searches.push(s.clone());
            }
        }
        for o in cfg.options.iter().flatten() {
            let name = o.name.clone().unwrap_or_default();
            let text = match &o.value {
                Some(v) => format!("{name}:{v}"),
                None => name.clone(),
            };
            out.options
                .retain(|x| x.split(':').next().unwrap_or_default() != name);
            out.options.push(text);
        }
    }
    // glibc reads three nameservers; the kubelet drops the rest.
    out.servers.truncate(3);
    out.searches.truncate(32);
    out
}

/// The containers' hostPorts as the sandbox's port mappings.
pub fn port_mappings(spec: &PodSpec) -> Vec<cri::PortMapping> {
    spec.containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .filter(|p| p.host_port.is_some_and(|h| h > 0))
        .map(|p| cri::PortMapping {
            protocol: match p.protocol.as_deref() {
                Some("UDP") => cri::Protocol::Udp,
                Some("SCTP") => cri::Protocol::Sctp,
                _ => cri::Protocol::Tcp,
            } as i32,
            container_port: p.container_port,
            host_port: p.host_port.unwrap_or_default(),
            host_ip: p.host_ip.clone().unwrap_or_default(),
        })
        .collect()
}

/// The /etc/hosts the kubelet mounts into the pod's containers: the node's
/// file for a hostNetwork pod, else localhost, the IPv6 names and the pod
/// IP with its FQDN (with a subdomain) and hostname; hostAliases last.
pub fn hosts_file(pod: &Pod, pod_ip: Option<&str>, node_hosts: &str) -> String {
    let spec = pod.spec.as_ref();
    let mut s = String::from("# Kubernetes-managed hosts file (CRI adapter).\n");
    if spec.and_then(|s| s.host_network) == Some(true) {
        s.push_str(node_hosts);
        if !node_hosts.ends_with('\n') {
            s.push('\n');
        }
    } else {
        s.push_str(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
             fe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\n\
             fe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n",
        );
        let name = pod.metadata.name.clone().unwrap_or_default();
        let hostname = spec.and_then(|s| s.hostname.clone()).unwrap_or(name);
        if let Some(ip) = pod_ip {
            match spec
                .and_then(|s| s.subdomain.as_deref())
                .filter(|d| !d.is_empty())
            {
                Some(sub) => {
                    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
                    s.push_str(&format!(
                        "{ip}\t{hostname}.{sub}.{ns}.svc.cluster.local\t{hostname}\n"
                    ));
                }
                None => s.push_str(&format!("{ip}\t{hostname}\n")),
            }
        }
    }
    let aliases = spec.and_then(|s| s.host_aliases.as_ref());
    let mut first = true;
    for a in aliases.into_iter().flatten() {
        if first {
            s.push_str("\n# Entries added by HostAliases.\n");
            first = false;
        }
        let names = a.hostnames.clone().unwrap_or_default();
        s.push_str(&format!("{}\t{}\n", a.ip, names.join("\t")));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn the_kubelets_share_of_the_sandbox() {
        let p = pod(serde_json::json!({"metadata": {"name": "w"}, "spec": {
            "containers": [{"name": "a", "ports": [{"containerPort": 80, "hostPort": 8080}]}],
            "dnsPolicy": "None",
            "dnsConfig": {"nameservers": ["192.0.2.1"], "searches": ["x.example"],
                          "options": [{"name": "ndots", "value": "3"}]},
            "subdomain": "s",
            "hostAliases": [{"ip": "10.0.0.9", "hostnames": ["h1", "h2"]}],
            "securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "1"}]},
        }}));
        let spec = p.spec.as_ref().unwrap();
        let dns = dns_config(spec, "nameserver 10.0.0.1\nsearch lan\n");
        assert_eq!(dns.servers, vec!["192.0.2.1"]);
        assert_eq!(dns.searches, vec!["x.example"]);
        assert_eq!(dns.options, vec!["ndots:3"]);
        let ports = port_mappings(spec);
        assert_eq!((ports[0].container_port, ports[0].host_port), (80, 8080));
        let hosts = hosts_file(&p, Some("10.1.0.4"), "");
        assert!(
            hosts.contains("10.1.0.4\tw.s.default.svc.cluster.local\tw\n"),
            "{hosts}"
        );
        assert!(hosts.ends_with("10.0.0.9\th1\th2\n"), "{hosts}");
        assert!(forbidden_sysctl(spec).unwrap().contains("kernel.msgmax"));
    }
}
