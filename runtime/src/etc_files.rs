//! What the kubelet writes into a pod's /etc/hosts and /etc/resolv.conf:
//! the hosts file from the pod's IP, hostname, subdomain and hostAliases
//! (the node's own file for a hostNetwork pod), and resolv.conf from
//! dnsPolicy and dnsConfig over the node's resolv.conf.

use k8s_openapi::api::core::v1::Pod;

/// The cluster domain of a pod's FQDN (`hostname.subdomain.ns.svc.<domain>`):
/// Kubernetes' default, podlab has no other.
pub const CLUSTER_DOMAIN: &str = "cluster.local";

/// glibc reads at most this many nameservers; the kubelet keeps the first ones.
pub const MAX_NAMESERVERS: usize = 3;
/// The kubelet's bound on search domains.
pub const MAX_SEARCHES: usize = 32;

const IP6_LINES: &str = "::1\tlocalhost ip6-localhost ip6-loopback\n\
     fe00::0\tip6-localnet\n\
     fe00::0\tip6-mcastprefix\n\
     fe00::1\tip6-allnodes\n\
     fe00::2\tip6-allrouters\n";

/// `hostname.subdomain.<namespace>.svc.cluster.local` when the pod has a
/// subdomain, as the kubelet names it in /etc/hosts.
pub fn pod_fqdn(pod: &Pod, hostname: &str) -> Option<String> {
    let sub = pod.spec.as_ref()?.subdomain.as_deref()?;
    if sub.is_empty() {
        return None;
    }
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    Some(format!("{hostname}.{sub}.{ns}.svc.{CLUSTER_DOMAIN}"))
}

/// The `spec.hostAliases` section, or nothing when there are none.
fn aliases_section(pod: &Pod) -> String {
    let aliases = pod.spec.as_ref().and_then(|s| s.host_aliases.as_ref());
    let mut out = String::new();
    for a in aliases.into_iter().flatten() {
        let names = a.hostnames.clone().unwrap_or_default();
        if names.is_empty() {
            continue;
        }
        if out.is_empty() {
            out.push_str("\n# Entries from spec.hostAliases.\n");
        }
        out.push_str(&format!("{}\t{}\n", a.ip, names.join("\t")));
    }
    out
}

/// The pod's /etc/hosts. A hostNetwork pod gets the node's file (plus its
/// hostAliases); any other pod a podlab-managed file: localhost, the IPv6
/// names, its IP with FQDN and hostname (127.0.1.1 on a pod without an
/// address), then its hostAliases.
pub fn hosts_file(
    pod: &Pod,
    hostname: &str,
    pod_ip: Option<&str>,
    node_hosts: Option<&str>,
    with_aliases: bool,
) -> String {
    let aliases = if with_aliases {
        aliases_section(pod)
    } else {
        String::new()
    };
    if let Some(node) = node_hosts {
        let mut s = String::from(
            "# Kubernetes-managed hosts file (the node's, hostNetwork pod; podlab).\n",
        );
        s.push_str(node);
        if !node.is_empty() && !node.ends_with('\n') {
            s.push('\n');
        }
        s.push_str(&aliases);
        return s;
    }
    let mut s = String::from("# Kubernetes-managed hosts file (podlab).\n127.0.0.1\tlocalhost\n");
    s.push_str(IP6_LINES);
    let names = match pod_fqdn(pod, hostname) {
        Some(fqdn) => format!("{fqdn}\t{hostname}"),
        None => hostname.to_string(),
    };
    // Loopback-only pod: the hostname still resolves, to the pod itself.
    s.push_str(&format!("{}\t{names}\n", pod_ip.unwrap_or("127.0.1.1")));
    s.push_str(&aliases);
    s
}

/// The three parts of a resolv.conf the kubelet works with.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resolv {
    pub nameservers: Vec<String>,
    pub searches: Vec<String>,
    /// `name` or `name:value`, in order.
    pub options: Vec<String>,
}

impl Resolv {
    /// Reads `nameserver`, `search` (`domain` too) and `options` lines;
    /// the last search line wins, as in glibc.
    pub fn parse(text: &str) -> Resolv {
        let mut r = Resolv::default();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => r.nameservers.extend(words.next().map(String::from)),
                Some("search") | Some("domain") => r.searches = words.map(String::from).collect(),
                Some("options") => words.for_each(|o| merge_option(&mut r.options, o)),
                _ => {}
            }
        }
        r
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        if !self.searches.is_empty() {
            s.push_str(&format!("search {}\n", self.searches.join(" ")));
        }
        for n in &self.nameservers {
            s.push_str(&format!("nameserver {n}\n"));
        }
        if !self.options.is_empty() {
            s.push_str(&format!("options {}\n", self.options.join(" ")));
        }
        s
    }
}

/// Sets an option, replacing one of the same name (`ndots:2` replaces `ndots:5`).
fn merge_option(options: &mut Vec<String>, option: &str) {
    let name = option.split(':').next().unwrap_or(option);
    match options
        .iter_mut()
        .find(|o| o.split(':').next().unwrap_or(o) == name)
    {
        Some(existing) => *existing = option.to_string(),
        None => options.push(option.to_string()),
    }
}

fn push_unique(list: &mut Vec<String>, items: impl IntoIterator<Item = String>) {
    for i in items {
        if !list.contains(&i) {
            list.push(i);
        }
    }
}

/// The pod's resolv.conf. podlab runs no cluster DNS, so ClusterFirst and
/// ClusterFirstWithHostNet fall back to Default as the kubelet does without
/// one: the node's file. `None` starts empty. `spec.dnsConfig` is then
/// merged in (nameservers and searches appended without repeats, options
/// replacing same-named ones), and the lists are cut to the kubelet's bounds.
pub fn resolv_conf(pod: &Pod, node_resolv: &str) -> String {
    let spec = pod.spec.as_ref();
    let policy = spec
        .and_then(|s| s.dns_policy.as_deref())
        .unwrap_or("ClusterFirst");
    let mut r = if policy == "None" {
        Resolv::default()
    } else {
        Resolv::parse(node_resolv)
    };
    if let Some(cfg) = spec.and_then(|s| s.dns_config.as_ref()) {
        push_unique(
            &mut r.nameservers,
            cfg.nameservers.clone().unwrap_or_default(),
        );
        push_unique(&mut r.searches, cfg.searches.clone().unwrap_or_default());
        for o in cfg.options.iter().flatten() {
            let text = match o.value.as_deref() {
                Some(v) => format!("{}:{v}", o.name.as_deref().unwrap_or_default()),
                None => o.name.clone().unwrap_or_default(),
            };
            merge_option(&mut r.options, &text);
        }
    }
    r.nameservers.truncate(MAX_NAMESERVERS);
    r.searches.truncate(MAX_SEARCHES);
    r.render()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn managed_hosts_file_has_localhost_ip6_pod_ip_and_aliases() {
        let p = pod(serde_json::json!({
            "metadata": {"name": "web", "namespace": "team"},
            "spec": {"containers": [], "subdomain": "svc1", "hostAliases": [
                {"ip": "10.1.2.3", "hostnames": ["foo.local", "bar"]},
                {"ip": "10.1.2.4"},
            ]}
        }));
        let h = hosts_file(&p, "web", Some("10.89.0.5"), None, true);
        assert!(h.starts_with("# Kubernetes-managed hosts file"), "{h}");
        assert!(h.contains("127.0.0.1\tlocalhost\n"));
        assert!(h.contains("::1\tlocalhost ip6-localhost ip6-loopback\n"));
        assert!(h.contains("fe00::2\tip6-allrouters\n"));
        assert!(
            h.contains("10.89.0.5\tweb.svc1.team.svc.cluster.local\tweb\n"),
            "{h}"
        );
        assert!(h.ends_with("10.1.2.3\tfoo.local\tbar\n"), "{h}");
        let without = hosts_file(&p, "web", Some("10.89.0.5"), None, false);
        assert!(!without.contains("foo.local"));
        let bare = pod(serde_json::json!({"metadata": {"name": "x"}, "spec": {"containers": []}}));
        assert!(hosts_file(&bare, "x", None, None, true).ends_with("127.0.1.1\tx\n"));
    }

    #[test]
    fn host_network_pods_get_the_nodes_hosts_file() {
        let p = pod(
            serde_json::json!({"spec": {"containers": [], "hostNetwork": true,
            "hostAliases": [{"ip": "10.1.2.3", "hostnames": ["foo"]}]}}),
        );
        let h = hosts_file(
            &p,
            "node",
            None,
            Some("127.0.0.1 localhost\n10.0.0.9 node"),
            true,
        );
        assert!(h.contains("127.0.0.1 localhost\n10.0.0.9 node\n"), "{h}");
        assert!(h.ends_with("10.1.2.3\tfoo\n"), "{h}");
    }

    #[test]
    fn resolv_conf_follows_dns_policy_and_merges_dns_config() {
        let node = "domain lan\nsearch example.org\nnameserver 192.0.2.1\noptions ndots:2 rotate\n";
        let default = pod(serde_json::json!({"spec": {"containers": []}}));
        assert_eq!(
            resolv_conf(&default, node),
            "search example.org\nnameserver 192.0.2.1\noptions ndots:2 rotate\n"
        );
        let cfg = serde_json::json!({
            "nameservers": ["192.0.2.1", "192.0.2.9"],
            "searches": ["ns1.svc.example"],
            "options": [{"name": "ndots", "value": "5"}, {"name": "edns0"}],
        });
        let merged = pod(
            serde_json::json!({"spec": {"containers": [], "dnsPolicy": "Default", "dnsConfig": cfg}}),
        );
        assert_eq!(
            resolv_conf(&merged, node),
            "search example.org ns1.svc.example\nnameserver 192.0.2.1\nnameserver 192.0.2.9\noptions ndots:5 rotate edns0\n"
        );
        let none = pod(
            serde_json::json!({"spec": {"containers": [], "dnsPolicy": "None", "dnsConfig": cfg}}),
        );
        assert_eq!(
            resolv_conf(&none, node),
            "search ns1.svc.example\nnameserver 192.0.2.1\nnameserver 192.0.2.9\noptions ndots:5 edns0\n"
        );
        let many = pod(serde_json::json!({"spec": {"containers": [], "dnsConfig": {
            "nameservers": ["192.0.2.2", "192.0.2.3", "192.0.2.4"]}}}));
        assert_eq!(
            Resolv::parse(&resolv_conf(&many, node)).nameservers.len(),
            MAX_NAMESERVERS
        );
    }
}
