//! The pod network (the NET family continued): every pod has an IP of its
//! own, other pods and the node reach it there without NAT, and a
//! `hostNetwork` pod uses the node's network.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use podlab_testkit::probe::listen_argv;
use serde_json::Value;

use super::net::{interfaces, show};
use super::util::{connect_until, namespace};
use crate::adapters::host::node_addresses;
use crate::pods::{error_name, ok, PodGuard, PodManifest};
use crate::runtime::Runtime;
use crate::suite::{fail, skip, Check, Ctx, Outcome, TestCase};

pub const CASES: &[TestCase] = &[
    case!("NET-011", pod_to_pod_tcp,
        must: "A TCP connection from one pod to another pod's status.podIP MUST reach that pod, which MUST see the sender's status.podIP as the source address.",
        method: "Pod server runs `probe listen` over TCP on 0.0.0.0 with a random port and token (an exec serving one connection); pod client connects to the server's status.podIP on that port (retrying while the listener starts) and must read the token; the peer address the listener accepted must be the client's status.podIP (no NAT). Skipped when the runtime gives pods no pod IP."),
    case!("NET-012", pod_to_pod_udp,
        must: "A UDP datagram from one pod to another pod's status.podIP MUST reach that pod, which MUST see the sender's status.podIP as the source address, and its answer MUST come back.",
        method: "As NET-011 over UDP: the listener answers the first datagram with the token, the client must receive it, and the datagram's source address must be the client's status.podIP. Skipped when the runtime gives pods no pod IP."),
    case!("NET-013", node_to_pod_tcp,
        must: "The node MUST reach a TCP server in a pod at the pod's status.podIP.",
        method: "A container listens over TCP on 0.0.0.0 with a random port and token; the suite process, which runs on the node, connects to the pod's status.podIP and that port with std::net::TcpStream (retrying while the listener starts) and must read the token. This is the only traffic the suite sends from the node, and only to the pod's own address. Skipped unless the runtime declares that the node reaches pod IPs."),
    case!("NET-014", distinct_pod_ips,
        must: "Pods running at the same time MUST NOT share an IP.",
        method: "Creates five pods at once from parallel threads and waits until all run; each must have status.podIP, podIPs[0] equal to it, and that address on one of its interfaces, and no two pods may report the same address. Skipped when the runtime gives pods no pod IP."),
    case!("NET-015", host_network_namespace,
        must: "A pod with hostNetwork: true MUST be in the node's network namespace and see the node's interfaces and addresses.",
        method: "Starts a hostNetwork pod and compares the network namespace link its container reads (/proc/self/ns/net) with the suite process's own, then compares the IPv4 addresses per interface the probe lists (getifaddrs) with those the suite lists on the node, retrying while the node's own list changes. Skipped unless pods run on the suite's kernel."),
    case!("NET-016", host_network_pod_ip,
        must: "A pod with hostNetwork: true MUST report status.podIP equal to status.hostIP, an address the node has.",
        method: "Starts a hostNetwork pod and compares status.podIP with status.hostIP and podIPs[0]; when pods run on the suite's kernel, status.hostIP must also be among the node's interface addresses as the suite lists them. A running pod without status.hostIP fails."),
];

/// How long a client retries while a listener starts.
const LISTENER_START: Duration = Duration::from_secs(15);

/// How long a one-shot listener waits for its client; longer than
/// [`LISTENER_START`] so it outlives every retry.
const LISTENER_LIFETIME: Duration = Duration::from_secs(20);

fn no_pod_network(ctx: &Ctx) -> Check {
    if ctx.caps.pod_ip {
        Ok(())
    } else {
        Err(skip(
            "the runtime gives pods no pod network (no status.podIP)",
        ))
    }
}

/// The pod's status.podIP, parsed. Callers run only when the runtime
/// declares pod-ip, so a missing address is a failure.
fn pod_ip(pod: &Pod, name: &str) -> Result<IpAddr, Outcome> {
    let status = pod.status.as_ref();
    let Some(text) = status.and_then(|s| s.pod_ip.as_deref()) else {
        return Err(fail(format!(
            "status.podIP of pod {name} is not set although the runtime declares pod-ip"
        )));
    };
    text.parse().map_err(|_| {
        fail(format!(
            "status.podIP of pod {name} is {text:?}, not an IP address"
        ))
    })
}

/// What a one-shot listener reported: whom it served.
pub(super) struct Served {
    pub(super) peers: Vec<SocketAddr>,
}

/// Runs `probe listen` in `container` of `pod` for one request on
/// 0.0.0.0:`port` while `client` runs on this thread; returns the client's
/// result and the peers the listener served. The listener is an exec, not
/// the container's command, so its final report comes back to us.
pub(super) fn serve_one<T>(
    pod: &PodGuard,
    container: &str,
    proto: &str,
    port: u16,
    token: &str,
    client: impl FnOnce() -> Result<T, Outcome>,
) -> Result<(T, Served), Outcome> {
    let argv = listen_argv(proto, "0.0.0.0", port, token, 1, LISTENER_LIFETIME);
    let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
    let (client_result, listened) = std::thread::scope(|s| {
        let listener = s.spawn(|| pod.exec(container, &argv));
        let client_result = client();
        let listened = listener
            .join()
            .unwrap_or_else(|_| Err(fail("the thread running the listener panicked")));
        (client_result, listened)
    });
    let out = listened?;
    let shown = format!("`{}` in {}/{container}", argv.join(" "), pod.name);
    let lines: Vec<Value> = out
        .stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    // A listener that could not bind explains a client failure better
    // than the client can.
    match lines.first() {
        Some(first) if ok(first) => {}
        Some(first) => {
            return Err(fail(format!(
                "{shown} could not listen: {} ({first})",
                error_name(first)
            )))
        }
        None => {
            return Err(fail(format!(
                "{shown} printed no JSON (exit status {}; stdout {:?}; stderr {:?})",
                out.exit_code,
                out.stdout.trim(),
                out.stderr.trim()
            )))
        }
    }
    let result = client_result?;
    let summary = lines.get(1).ok_or_else(|| {
        fail(format!(
            "{shown} printed no summary of what it served (stdout {:?})",
            out.stdout.trim()
        ))
    })?;
    let peers = summary
        .get("peers")
        .and_then(Value::as_array)
        .ok_or_else(|| fail(format!("{shown}: no `peers` in its summary {summary}")))?
        .iter()
        .map(|p| {
            p.as_str()
                .and_then(|t| t.parse::<SocketAddr>().ok())
                .ok_or_else(|| fail(format!("{shown}: peer {p} is not an address")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((result, Served { peers }))
}

/// Pod-to-pod over `proto`: the client pod reaches the server pod's IP, and
/// the server sees the client's pod IP as the source.
fn pod_to_pod(rt: &dyn Runtime, ctx: &Ctx, proto: &str) -> Check {
    no_pod_network(ctx)?;
    let (port, token) = (ctx.random_port(), ctx.token());
    let server = PodManifest::sleepers(ctx, &format!("net-p2p-{proto}-srv"), &["server"]);
    let client = PodManifest::sleepers(ctx, &format!("net-p2p-{proto}-cli"), &["client"]);
    let pods = PodGuard::start_all(rt, ctx, &[&server, &client])?;
    let (server, client) = (&pods[0], &pods[1]);
    let server_ip = pod_ip(&server.get()?, &server.name)?;
    let client_ip = pod_ip(&client.get()?, &client.name)?;
    let target = server_ip.to_string();

    let (answer, served) = serve_one(server, "server", proto, port, &token, || {
        connect_until(client, "client", proto, &target, port, LISTENER_START)
    })?;
    let to = format!("{server_ip}:{port}/{proto}");
    if !ok(&answer) {
        return Err(fail(format!(
            "pod {} could not reach pod {} at its status.podIP {to}, where it listens: {} ({}); \
             pods must reach each other's pod IPs directly",
            client.name,
            server.name,
            error_name(&answer),
            answer
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("no message")
        )));
    }
    let data = answer.get("data").and_then(Value::as_str).unwrap_or("");
    if data != token {
        return Err(fail(format!(
            "pod {} reached {to} but read {data:?} instead of pod {}'s token {token:?}: \
             status.podIP {server_ip} leads somewhere else",
            client.name, server.name
        )));
    }
    let local = answer.get("local").and_then(Value::as_str).unwrap_or("?");
    match served.peers.first() {
        Some(peer) if peer.ip() == client_ip => Ok(()),
        Some(peer) => Err(fail(format!(
            "pod {} saw the {proto} traffic of pod {} come from {}, not from its status.podIP {client_ip} \
             (the client's own socket was {local}): the address is translated (NAT) or status.podIP is wrong",
            server.name,
            client.name,
            peer.ip()
        ))),
        None => Err(fail(format!(
            "the client of pod {} read the token, yet the listener in pod {} reports serving nobody",
            client.name, server.name
        ))),
    }
}

fn pod_to_pod_tcp(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    pod_to_pod(rt, ctx, "tcp")
}

fn pod_to_pod_udp(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    pod_to_pod(rt, ctx, "udp")
}

/// One TCP exchange from this process: connect, half-close, read to EOF.
fn read_token(addr: SocketAddr, within: Duration) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(within))?;
    // We send nothing: half-closing lets the listener finish draining.
    stream.shutdown(Shutdown::Write)?;
    let mut data = String::new();
    stream.read_to_string(&mut data)?;
    Ok(data)
}

/// [`read_token`] from the node, retried while the listener starts.
pub(super) fn read_token_until(addr: SocketAddr) -> std::io::Result<String> {
    let deadline = Instant::now() + LISTENER_START;
    loop {
        match read_token(addr, Duration::from_secs(5)) {
            Ok(data) => return Ok(data),
            Err(e) if Instant::now() >= deadline => return Err(e),
            // Refused while the listener starts: try again.
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

fn node_to_pod_tcp(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    no_pod_network(ctx)?;
    if !ctx.caps.node_reaches_pods {
        return Err(skip(
            "the runtime does not declare that the node (where the suite runs) reaches pod IPs",
        ));
    }
    let (port, token) = (ctx.random_port(), ctx.token());
    let pod = PodGuard::start(
        rt,
        ctx,
        &PodManifest::sleepers(ctx, "net-node2pod", &["server"]),
    )?;
    let ip = pod_ip(&pod.get()?, &pod.name)?;
    let addr = SocketAddr::new(ip, port);
    let (answer, _) = serve_one(&pod, "server", "tcp", port, &token, || {
        Ok(read_token_until(addr))
    })?;
    match answer {
        Ok(data) if data == token => Ok(()),
        Ok(data) => Err(fail(format!(
            "the node reached {addr} but read {data:?} instead of pod {}'s token {token:?}: \
             status.podIP {ip} leads somewhere else",
            pod.name
        ))),
        Err(e) => Err(fail(format!(
            "the node could not reach pod {} at its status.podIP {addr}, where it listens: {e}; \
             the node must be able to reach pod IPs (e.g. as the pod network's gateway)",
            pod.name
        ))),
    }
}

fn distinct_pod_ips(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    no_pod_network(ctx)?;
    let manifests: Vec<PodManifest> = (0..5)
        .map(|_| PodManifest::sleepers(ctx, "net-ips", &["app"]))
        .collect();
    // Threads, so the runtime allocates the addresses concurrently.
    let started: Vec<Result<PodGuard, Outcome>> = std::thread::scope(|s| {
        let handles: Vec<_> = manifests
            .iter()
            .map(|m| s.spawn(move || PodGuard::start(rt, ctx, m)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(fail("a thread starting a pod panicked")))
            })
            .collect()
    });
    // Every guard is kept until the end, so all pods are deleted whatever fails.
    let mut pods = Vec::new();
    let mut first_error = None;
    for r in started {
        match r {
            Ok(p) => pods.push(p),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    let mut owners: BTreeMap<IpAddr, String> = BTreeMap::new();
    for pod in &pods {
        let status = pod.get()?;
        let ip = pod_ip(&status, &pod.name)?;
        let first_of_list = status
            .status
            .as_ref()
            .and_then(|s| s.pod_ips.as_ref())
            .and_then(|l| l.first())
            .map(|p| p.ip.clone());
        if first_of_list.as_deref() != Some(ip.to_string().as_str()) {
            return Err(fail(format!(
                "pod {}: status.podIP is {ip} but podIPs[0] is {}: the two must agree",
                pod.name,
                first_of_list.as_deref().unwrap_or("missing")
            )));
        }
        let ifaces = interfaces(pod, "app")?;
        let present = ifaces
            .values()
            .flat_map(|(_, addrs)| addrs)
            .any(|a| a.split('/').next() == Some(ip.to_string().as_str()));
        if !present {
            return Err(fail(format!(
                "pod {}: status.podIP is {ip} but no interface of the pod has it: {}",
                pod.name,
                show(&ifaces)
            )));
        }
        if let Some(other) = owners.insert(ip, pod.name.clone()) {
            return Err(fail(format!(
                "pods {other} and {} both have IP {ip}: every running pod needs its own",
                pod.name
            )));
        }
    }
    Ok(())
}

/// IPv4 entries only: IPv6 link-local addresses come and go with other
/// pods' veth devices while tests run beside this one.
fn ipv4_only(all: &BTreeSet<(String, IpAddr)>) -> BTreeSet<(String, IpAddr)> {
    all.iter().filter(|(_, ip)| ip.is_ipv4()).cloned().collect()
}

fn listed(set: &BTreeSet<(String, IpAddr)>) -> String {
    let parts: Vec<String> = set.iter().map(|(n, ip)| format!("{n} {ip}")).collect();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(", ")
    }
}

fn node_addresses_or_fail() -> Result<BTreeSet<(String, IpAddr)>, Outcome> {
    node_addresses().map_err(|e| fail(format!("cannot list the node's addresses: {e}")))
}

fn host_network_pod<'a>(
    rt: &'a dyn Runtime,
    ctx: &'a Ctx,
    prefix: &str,
) -> Result<PodGuard<'a>, Outcome> {
    PodGuard::start(
        rt,
        ctx,
        &PodManifest::sleepers(ctx, prefix, &["app"]).host_network(),
    )
}

fn host_network_namespace(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    if !ctx.caps.same_kernel {
        return Err(skip(
            "pods do not run on the suite's kernel: the suite cannot see the node's network to compare",
        ));
    }
    let pod = host_network_pod(rt, ctx, "net-hostnet")?;
    let theirs = namespace(&pod, "app", "net")?;
    let ours = std::fs::read_link("/proc/self/ns/net")
        .map_err(|e| fail(format!("cannot read the suite's /proc/self/ns/net: {e}")))?
        .to_string_lossy()
        .into_owned();
    if theirs != ours {
        return Err(fail(format!(
            "hostNetwork pod {} is in network namespace {theirs}, not the node's {ours}",
            pod.name
        )));
    }
    // The node's list may change while we look (another pod's network
    // appearing): compare only against a list that held still around the probe.
    let mut last = String::new();
    for _ in 0..5 {
        let before = ipv4_only(&node_addresses_or_fail()?);
        let ifaces = interfaces(&pod, "app")?;
        let after = ipv4_only(&node_addresses_or_fail()?);
        if before != after {
            continue;
        }
        let seen: BTreeSet<(String, IpAddr)> = ifaces
            .iter()
            .flat_map(|(name, (_, addrs))| {
                addrs.iter().filter_map(move |a| {
                    let ip: IpAddr = a.split('/').next()?.parse().ok()?;
                    ip.is_ipv4().then(|| (name.clone(), ip))
                })
            })
            .collect();
        if seen == before {
            return Ok(());
        }
        last = format!(
            "hostNetwork pod {} sees IPv4 addresses [{}] but the node has [{}]",
            pod.name,
            listed(&seen),
            listed(&before)
        );
    }
    if last.is_empty() {
        last = "the node's addresses kept changing while the test compared them".into();
    }
    Err(fail(last))
}

fn host_network_pod_ip(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let pod = host_network_pod(rt, ctx, "net-hostip")?;
    let status = pod.get()?;
    let status = status.status.unwrap_or_default();
    let Some(host_ip) = status.host_ip.clone() else {
        return Err(fail(format!(
            "status.hostIP of running pod {} is not set: Kubernetes sets it for every pod bound to a node",
            pod.name
        )));
    };
    let pod_ip = status.pod_ip.clone().unwrap_or_default();
    if pod_ip != host_ip {
        return Err(fail(format!(
            "hostNetwork pod {} reports status.podIP {:?} but status.hostIP {host_ip}: \
             a pod on the node's network has the node's IP",
            pod.name, pod_ip
        )));
    }
    let first = status
        .pod_ips
        .as_ref()
        .and_then(|l| l.first())
        .map(|p| p.ip.clone());
    if first.as_deref() != Some(host_ip.as_str()) {
        return Err(fail(format!(
            "hostNetwork pod {}: status.podIP is {host_ip} but podIPs[0] is {}",
            pod.name,
            first.as_deref().unwrap_or("missing")
        )));
    }
    if ctx.caps.same_kernel {
        let ip: IpAddr = host_ip
            .parse()
            .map_err(|_| fail(format!("status.hostIP {host_ip:?} is not an IP address")))?;
        let node = node_addresses_or_fail()?;
        if !node.iter().any(|(_, a)| *a == ip) {
            return Err(fail(format!(
                "status.hostIP of pod {} is {host_ip}, which no interface of the node has ({})",
                pod.name,
                listed(&node)
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_suite_lists_loopback_among_the_node_addresses() {
        let all = node_addresses().unwrap();
        assert!(
            all.contains(&("lo".to_string(), IpAddr::V4(std::net::Ipv4Addr::LOCALHOST))),
            "{}",
            listed(&all)
        );
        assert!(ipv4_only(&all).iter().all(|(_, ip)| ip.is_ipv4()));
    }
}
