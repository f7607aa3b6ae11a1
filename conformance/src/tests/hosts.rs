//! HOSTS: the /etc/hosts and /etc/resolv.conf a pod's containers see, as
//! the kubelet writes them from the pod's IP, hostname, subdomain,
//! hostAliases, hostNetwork, dnsPolicy and dnsConfig.

use serde_json::json;

use crate::pods::{PodGuard, PodManifest};
use crate::runtime::Runtime;
use crate::suite::{fail, skip, Check, Ctx, Outcome};

pub const CASES: &[crate::suite::TestCase] = &[
    case!("HOSTS-001", pod_ip_maps_to_hostname,
        must: "A pod's /etc/hosts MUST map its status.podIP to its hostname and 127.0.0.1 to localhost.",
        method: "Starts a pod without spec.hostname, reads /etc/hosts in its container (cat) and looks for a line whose address is status.podIP and whose names include metadata.name, and a line mapping 127.0.0.1 to localhost. Skipped when pods get no pod IP."),
    case!("HOSTS-002", subdomain_gives_fqdn,
        must: "When spec.hostname and spec.subdomain are set, the pod's /etc/hosts MUST map its status.podIP to the hostname and to a fully qualified name beginning with hostname.subdomain.",
        method: "Starts a pod with a random spec.hostname and spec.subdomain; the /etc/hosts line of status.podIP must name the hostname itself and a name starting with `hostname.subdomain.` (Kubernetes writes hostname.subdomain.namespace.svc.cluster-domain). Skipped when pods get no pod IP."),
    case!("HOSTS-003", host_aliases_are_added,
        must: "Every spec.hostAliases entry MUST appear in the /etc/hosts of each container of the pod, its IP followed by its hostnames.",
        method: "Starts a two-container pod with two hostAliases entries (one IPv4 address with two names, one with one name), reads /etc/hosts in both containers and looks for a line per entry: the alias IP, then its hostnames in order."),
    case!("HOSTS-004", host_network_gets_node_hosts,
        must: "A hostNetwork pod's /etc/hosts MUST hold every entry of the node's /etc/hosts.",
        method: "Reads the node's /etc/hosts (the suite runs on the node), starts a hostNetwork pod and checks that each non-comment line of the node's file appears, as the same address and names, in the container's /etc/hosts. Skipped when pods do not run on the suite's machine."),
    case!("HOSTS-005", dns_policy_none_writes_dns_config,
        must: "With dnsPolicy None, a pod's /etc/resolv.conf MUST hold exactly the nameservers, search domains and options of spec.dnsConfig.",
        method: "Starts a pod with dnsPolicy None and a dnsConfig of two nameservers (documentation addresses, never contacted), two search domains and the options ndots:3 and edns0; /etc/resolv.conf must list exactly those nameservers in order, a search line of exactly those domains, and both options."),
    case!("HOSTS-006", dns_config_merges_with_default,
        must: "With dnsPolicy Default, a pod's /etc/resolv.conf MUST hold the node's nameservers and search domains followed by those of spec.dnsConfig, and its options.",
        method: "Reads the node's /etc/resolv.conf, starts a pod with dnsPolicy Default and a dnsConfig adding one nameserver, one search domain and the option ndots:4; the pod's file must list the node's nameservers first, then the added one (at most three in all, as the kubelet keeps), the node's search domains then the added one, and ndots:4. Skipped when pods do not run on the suite's machine."),
];

/// `cat PATH` in a container: its stdout.
fn read(pod: &PodGuard, container: &str, path: &str) -> Result<String, Outcome> {
    let out = pod.exec(container, &["cat", path])?;
    if out.exit_code != 0 {
        return Err(fail(format!(
            "cat {path} in {}/{container} failed with status {}: {}",
            pod.name,
            out.exit_code,
            out.stderr.trim()
        )));
    }
    Ok(out.stdout)
}

/// The hosts file's entries: (address, names), comments dropped.
fn entries(text: &str) -> Vec<(String, Vec<String>)> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or_default())
        .filter_map(|l| {
            let mut words = l.split_whitespace().map(String::from);
            let addr = words.next()?;
            Some((addr, words.collect()))
        })
        .collect()
}

fn pod_ip(pod: &PodGuard, ctx: &Ctx) -> Result<String, Outcome> {
    if !ctx.caps.pod_ip {
        return Err(skip("the runtime does not give pods an IP of their own"));
    }
    let p = pod.running()?;
    p.status
        .and_then(|s| s.pod_ip)
        .filter(|ip| !ip.is_empty())
        .ok_or_else(|| fail(format!("pod {} has no status.podIP", pod.name)))
}

/// The names of the /etc/hosts lines for `ip`, all of them.
fn names_of(hosts: &str, ip: &str) -> Vec<String> {
    entries(hosts)
        .into_iter()
        .filter(|(a, _)| a == ip)
        .flat_map(|(_, n)| n)
        .collect()
}

fn pod_ip_maps_to_hostname(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let pod = PodGuard::start(rt, ctx, &PodManifest::sleepers(ctx, "hosts-ip", &["app"]))?;
    let ip = pod_ip(&pod, ctx)?;
    let hosts = read(&pod, "app", "/etc/hosts")?;
    if !names_of(&hosts, &ip).contains(&pod.name) {
        return Err(fail(format!(
            "/etc/hosts of pod {} does not map its status.podIP {ip} to its hostname {}:\n{hosts}",
            pod.name, pod.name
        )));
    }
    if !names_of(&hosts, "127.0.0.1")
        .iter()
        .any(|n| n == "localhost")
    {
        return Err(fail(format!(
            "/etc/hosts of pod {} has no `127.0.0.1 localhost` line:\n{hosts}",
            pod.name
        )));
    }
    Ok(())
}

fn subdomain_gives_fqdn(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let host = format!("h-{:06x}", ctx.random() as u32 & 0xff_ffff);
    let sub = format!("s-{:06x}", ctx.random() as u32 & 0xff_ffff);
    let manifest = PodManifest::sleepers(ctx, "hosts-fqdn", &["app"])
        .hostname(&host)
        .spec_field("subdomain", json!(sub));
    let pod = PodGuard::start(rt, ctx, &manifest)?;
    let ip = pod_ip(&pod, ctx)?;
    let hosts = read(&pod, "app", "/etc/hosts")?;
    let names = names_of(&hosts, &ip);
    let prefix = format!("{host}.{sub}.");
    if !names.contains(&host) || !names.iter().any(|n| n.starts_with(&prefix)) {
        return Err(fail(format!(
            "/etc/hosts of pod {} (hostname {host}, subdomain {sub}) maps {ip} to {names:?}; \
             expected {host} and a name starting with {prefix}:\n{hosts}",
            pod.name
        )));
    }
    Ok(())
}

fn host_aliases_are_added(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let aliases = [
        ("192.0.2.10", vec!["alias-one.example", "alias-two"]),
        ("198.51.100.7", vec!["alias-three.example"]),
    ];
    let spec: Vec<_> = aliases
        .iter()
        .map(|(ip, names)| json!({"ip": ip, "hostnames": names}))
        .collect();
    let manifest = PodManifest::sleepers(ctx, "hosts-alias", &["app", "sidecar"])
        .spec_field("hostAliases", json!(spec));
    let pod = PodGuard::start(rt, ctx, &manifest)?;
    for c in ["app", "sidecar"] {
        let hosts = read(&pod, c, "/etc/hosts")?;
        let found = entries(&hosts);
        for (ip, names) in &aliases {
            let wanted: Vec<String> = names.iter().map(|n| n.to_string()).collect();
            if !found.iter().any(|(a, n)| a == ip && n == &wanted) {
                return Err(fail(format!(
                    "/etc/hosts of {}/{c} lacks the hostAliases entry `{ip} {}`:\n{hosts}",
                    pod.name,
                    wanted.join(" ")
                )));
            }
        }
    }
    Ok(())
}

fn host_network_gets_node_hosts(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    if !ctx.caps.same_kernel {
        return Err(skip(
            "the runtime's pods do not run on this suite's machine, so its /etc/hosts is not the node's",
        ));
    }
    let node = std::fs::read_to_string("/etc/hosts")
        .map_err(|e| fail(format!("cannot read the node's /etc/hosts: {e}")))?;
    let manifest = PodManifest::sleepers(ctx, "hosts-hostnet", &["app"]).host_network();
    let pod = PodGuard::start(rt, ctx, &manifest)?;
    let hosts = read(&pod, "app", "/etc/hosts")?;
    let inside = entries(&hosts);
    for entry in entries(&node) {
        if !inside.contains(&entry) {
            return Err(fail(format!(
                "/etc/hosts of hostNetwork pod {} lacks the node's entry `{} {}`:\n{hosts}",
                pod.name,
                entry.0,
                entry.1.join(" ")
            )));
        }
    }
    Ok(())
}

/// A resolv.conf's nameservers, search domains (last search line) and options.
fn resolv(text: &str) -> (Vec<String>, Vec<String>, Vec<String>) {
    let (mut ns, mut search, mut opts) = (Vec::new(), Vec::new(), Vec::new());
    for line in text.lines() {
        let mut w = line.split_whitespace().map(String::from);
        match w.next().as_deref() {
            Some("nameserver") => ns.extend(w.next()),
            Some("search") => search = w.collect(),
            Some("options") => opts.extend(w),
            _ => {}
        }
    }
    (ns, search, opts)
}

fn dns_policy_none_writes_dns_config(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let servers = ["192.0.2.53", "198.51.100.53"];
    let searches = ["one.example", "two.example"];
    let manifest = PodManifest::sleepers(ctx, "hosts-dnsnone", &["app"])
        .spec_field("dnsPolicy", json!("None"))
        .spec_field(
            "dnsConfig",
            json!({
                "nameservers": servers,
                "searches": searches,
                "options": [{"name": "ndots", "value": "3"}, {"name": "edns0"}],
            }),
        );
    let pod = PodGuard::start(rt, ctx, &manifest)?;
    let text = read(&pod, "app", "/etc/resolv.conf")?;
    let (ns, search, opts) = resolv(&text);
    let ok = ns == servers
        && search == searches
        && opts.iter().any(|o| o == "ndots:3")
        && opts.iter().any(|o| o == "edns0");
    if !ok {
        return Err(fail(format!(
            "pod {} with dnsPolicy None has nameservers {ns:?}, search {search:?}, options {opts:?}; \
             expected exactly {servers:?}, {searches:?} and ndots:3, edns0:\n{text}",
            pod.name
        )));
    }
    Ok(())
}

fn dns_config_merges_with_default(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    if !ctx.caps.same_kernel {
        return Err(skip(
            "the runtime's pods do not run on this suite's machine, so its resolv.conf is not the node's",
        ));
    }
    let node_text = std::fs::read_to_string("/etc/resolv.conf")
        .map_err(|e| fail(format!("cannot read the node's /etc/resolv.conf: {e}")))?;
    let (node_ns, node_search, _) = resolv(&node_text);
    let (added_ns, added_search) = ("203.0.113.53", "added.example");
    let manifest = PodManifest::sleepers(ctx, "hosts-dnsmerge", &["app"])
        .spec_field("dnsPolicy", json!("Default"))
        .spec_field(
            "dnsConfig",
            json!({
                "nameservers": [added_ns],
                "searches": [added_search],
                "options": [{"name": "ndots", "value": "4"}],
            }),
        );
    let pod = PodGuard::start(rt, ctx, &manifest)?;
    let text = read(&pod, "app", "/etc/resolv.conf")?;
    let (ns, search, opts) = resolv(&text);
    let mut want_ns = node_ns.clone();
    if !want_ns.iter().any(|n| n == added_ns) {
        want_ns.push(added_ns.into());
    }
    want_ns.truncate(3);
    let mut want_search = node_search.clone();
    want_search.push(added_search.into());
    let ok = ns == want_ns
        && search.starts_with(&node_search)
        && search.contains(&added_search.to_string())
        && opts.iter().any(|o| o == "ndots:4");
    if !ok {
        return Err(fail(format!(
            "pod {} with dnsPolicy Default and a dnsConfig has nameservers {ns:?}, search {search:?}, \
             options {opts:?}; expected nameservers {want_ns:?}, search {want_search:?} and ndots:4 \
             (the node's file:\n{node_text})\nthe pod's file:\n{text}",
            pod.name
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_resolv_files_are_read_as_glibc_does() {
        let e = entries("# c\n127.0.0.1\tlocalhost\n\n10.0.0.5 web.sub.ns web # x\n");
        assert_eq!(e.len(), 2);
        assert_eq!(e[1].1, vec!["web.sub.ns", "web"]);
        assert_eq!(
            names_of("10.0.0.5 a\n10.0.0.5 b\n", "10.0.0.5"),
            vec!["a", "b"]
        );
        let (ns, s, o) = resolv("search a b\nsearch c\nnameserver 1.1.1.1\noptions x y:2\n");
        assert_eq!(
            (ns, s, o),
            (
                vec!["1.1.1.1".to_string()],
                vec!["c".to_string()],
                vec!["x".to_string(), "y:2".to_string()]
            )
        );
    }
}
