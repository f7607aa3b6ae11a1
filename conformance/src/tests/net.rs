//! Network namespace: one per pod, shared by its containers.

use std::collections::BTreeMap;
use std::time::Duration;

use podlab_testkit::probe::listen_argv;
use serde_json::Value;

use super::util::{connect_until, different_namespace, same_namespace};
use crate::pods::{error_name, ok, ContainerSpec, PodGuard, PodManifest};
use crate::runtime::Runtime;
use crate::suite::{fail, skip, Check, Ctx, TestCase};

pub const CASES: &[TestCase] = &[
    case!("NET-001", shared_net_namespace,
        must: "All containers of a pod MUST be in the same network namespace.",
        method: "Starts a pod with containers app and sidecar and compares the network namespace link (/proc/self/ns/net) the probe reads in each."),
    case!("NET-002", net_namespace_per_pod,
        must: "Two pods MUST be in different network namespaces.",
        method: "Starts two pods and compares the network namespace link of their containers."),
    case!("NET-003", same_interfaces,
        must: "Every container of a pod MUST see the same network interfaces with the same addresses and state.",
        method: "Lists interfaces (name, up, addresses) with getifaddrs in app and sidecar and compares the lists."),
    case!("NET-004", pod_ip_on_interfaces,
        must: "When a pod has status.podIP, every container of the pod MUST have that address on one of its interfaces.",
        method: "Reads status.podIP and looks for it among the addresses the probe lists in each container; skipped when the runtime gives pods no pod IP."),
    case!("NET-005", localhost_tcp_between_containers,
        must: "A TCP server listening on 127.0.0.1 in one container of a pod MUST be reachable on 127.0.0.1 from the pod's other containers.",
        method: "Container server listens on 127.0.0.1 on a random port and answers with a random token; container client connects to 127.0.0.1 on that port (retrying while the server starts) and must read the token."),
    case!("NET-006", localhost_not_shared_across_pods,
        must: "A connection to 127.0.0.1 from another pod MUST NOT reach a server listening on 127.0.0.1 in this pod.",
        method: "Once a client in the server's pod has read the token, a container of a second pod connects to the same address and port and must get ECONNREFUSED."),
    case!("NET-007", port_conflict_within_pod,
        must: "Binding a port that one container of the pod listens on MUST fail with EADDRINUSE in another container of the same pod.",
        method: "While container server listens on 127.0.0.1 on a random port (checked by connecting), container client binds the same address and port and must get EADDRINUSE."),
    case!("NET-008", port_free_in_other_pod,
        must: "A port held in one pod MUST remain free to bind in another pod.",
        method: "While a server listens on 127.0.0.1 on a random port in one pod (checked by connecting), a container of a second pod binds the same address and port and must succeed."),
    case!("NET-009", localhost_udp_between_containers,
        must: "A UDP datagram sent to 127.0.0.1 from one container of a pod MUST reach a socket bound there in another container, and its answer MUST come back.",
        method: "Container server binds a random UDP port on 127.0.0.1 and answers every datagram with a random token; container client sends datagrams (retrying while the server starts) and must receive the token."),
    case!("NET-010", loopback_up,
        must: "Every container of a pod MUST have the loopback interface up with address 127.0.0.1/8.",
        method: "Lists interfaces with getifaddrs in containers app and sidecar and looks for lo, up, with 127.0.0.1/8."),
];

fn two_containers(ctx: &Ctx, prefix: &str) -> PodManifest {
    PodManifest::sleepers(ctx, prefix, &["app", "sidecar"])
}

fn shared_net_namespace(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let pod = PodGuard::start(rt, ctx, &two_containers(ctx, "net-shared"))?;
    same_namespace(&pod, &["app", "sidecar"], "net", "network")
}

fn net_namespace_per_pod(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let a = PodManifest::sleepers(ctx, "net-pod-a", &["app"]);
    let b = PodManifest::sleepers(ctx, "net-pod-b", &["app"]);
    let pods = PodGuard::start_all(rt, ctx, &[&a, &b])?;
    different_namespace(&pods[0], &pods[1], "app", "net", "network")
}

/// Interface name → (up, sorted addresses), as the probe lists them.
pub(super) fn interfaces(
    pod: &PodGuard,
    container: &str,
) -> Result<BTreeMap<String, (bool, Vec<String>)>, crate::suite::Outcome> {
    let v = pod.probe(container, &["ifaces"])?;
    let list = v
        .get("interfaces")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            fail(format!(
                "probe ifaces in {}/{container} listed no interfaces: {v}",
                pod.name
            ))
        })?;
    let mut map = BTreeMap::new();
    for i in list {
        let name = i
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string();
        let up = i.get("up").and_then(Value::as_bool).unwrap_or(false);
        let mut addrs: Vec<String> = i
            .get("addrs")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        addrs.sort();
        map.insert(name, (up, addrs));
    }
    Ok(map)
}

pub(super) fn show(ifaces: &BTreeMap<String, (bool, Vec<String>)>) -> String {
    let parts: Vec<String> = ifaces
        .iter()
        .map(|(name, (up, addrs))| {
            format!(
                "{name} {} [{}]",
                if *up { "up" } else { "down" },
                addrs.join(", ")
            )
        })
        .collect();
    parts.join("; ")
}

fn same_interfaces(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let pod = PodGuard::start(rt, ctx, &two_containers(ctx, "net-ifaces"))?;
    let app = interfaces(&pod, "app")?;
    let sidecar = interfaces(&pod, "sidecar")?;
    if app != sidecar {
        return Err(fail(format!(
            "containers app and sidecar of pod {} see different interfaces: app has {}, sidecar has {}",
            pod.name,
            show(&app),
            show(&sidecar)
        )));
    }
    Ok(())
}

fn loopback_up(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let pod = PodGuard::start(rt, ctx, &two_containers(ctx, "net-lo"))?;
    for c in ["app", "sidecar"] {
        let ifaces = interfaces(&pod, c)?;
        let ok = ifaces
            .get("lo")
            .is_some_and(|(up, addrs)| *up && addrs.iter().any(|a| a == "127.0.0.1/8"));
        if !ok {
            return Err(fail(format!(
                "container {c} of pod {} has no loopback interface up with 127.0.0.1/8 ({}): \
                 bring lo up in the pod's network namespace",
                pod.name,
                show(&ifaces)
            )));
        }
    }
    Ok(())
}

fn pod_ip_on_interfaces(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    if !ctx.caps.pod_ip {
        return Err(skip(
            "the runtime gives pods no pod network (no status.podIP)",
        ));
    }
    let pod = PodGuard::create(rt, ctx, &two_containers(ctx, "net-podip"))?;
    let status = pod.running()?;
    let Some(ip) = status.status.as_ref().and_then(|s| s.pod_ip.clone()) else {
        return Err(fail(format!(
            "status.podIP of pod {} is not set although the runtime declares pod-ip",
            pod.name
        )));
    };
    for c in ["app", "sidecar"] {
        let ifaces = interfaces(&pod, c)?;
        let found = ifaces
            .values()
            .flat_map(|(_, addrs)| addrs)
            .any(|a| a.split('/').next() == Some(ip.as_str()));
        if !found {
            return Err(fail(format!(
                "status.podIP is {ip} but container {c} of pod {} has no interface with that address: {}",
                pod.name,
                show(&ifaces)
            )));
        }
    }
    Ok(())
}

/// A server container answers this many clients within this time: for as
/// long as its pod lives.
const SERVER_COUNT: u32 = 1_000_000;
const SERVER_LIFETIME: Duration = Duration::from_secs(3600);

/// A pod whose container `server` serves `token` on 127.0.0.1:`port`, and
/// a sleeping container `client`.
fn server_pod(ctx: &Ctx, prefix: &str, proto: &str, port: u16, token: &str) -> PodManifest {
    PodManifest::new(ctx, prefix)
        .container(ContainerSpec::new(ctx, "server").command(&listen_argv(
            proto,
            "127.0.0.1",
            port,
            token,
            SERVER_COUNT,
            SERVER_LIFETIME,
        )))
        .container(ContainerSpec::new(ctx, "client"))
}

/// How long a client retries while the server container starts listening.
const SERVER_START: Duration = Duration::from_secs(15);

/// Checks that `client` in the server's pod reads the token: the server is up.
fn reach_server(pod: &PodGuard, proto: &str, port: u16, token: &str) -> Check {
    let v = connect_until(pod, "client", proto, "127.0.0.1", port, SERVER_START)?;
    if !ok(&v) {
        return Err(fail(format!(
            "container client of pod {} could not reach 127.0.0.1:{port}/{proto}, where container server listens: {} ({}); \
             the containers of a pod must share one network namespace with loopback up",
            pod.name,
            error_name(&v),
            v.get("message").and_then(Value::as_str).unwrap_or("no message")
        )));
    }
    let data = v.get("data").and_then(Value::as_str).unwrap_or("");
    if data != token {
        return Err(fail(format!(
            "container client of pod {} reached 127.0.0.1:{port}/{proto} but read {data:?} instead of the server's token {token:?}: \
             something else answers on that port",
            pod.name
        )));
    }
    Ok(())
}

fn localhost_tcp_between_containers(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let (port, token) = (ctx.random_port(), ctx.token());
    let pod = PodGuard::start(rt, ctx, &server_pod(ctx, "net-tcp", "tcp", port, &token))?;
    reach_server(&pod, "tcp", port, &token)
}

fn localhost_udp_between_containers(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let (port, token) = (ctx.random_port(), ctx.token());
    let pod = PodGuard::start(rt, ctx, &server_pod(ctx, "net-udp", "udp", port, &token))?;
    reach_server(&pod, "udp", port, &token)
}

fn localhost_not_shared_across_pods(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let (port, token) = (ctx.random_port(), ctx.token());
    let server = server_pod(ctx, "net-iso", "tcp", port, &token);
    let other = PodManifest::sleepers(ctx, "net-iso-other", &["app"]);
    let pods = PodGuard::start_all(rt, ctx, &[&server, &other])?;
    reach_server(&pods[0], "tcp", port, &token)?;
    let port_s = port.to_string();
    let v = pods[1].probe(
        "app",
        &[
            "connect",
            "--proto",
            "tcp",
            "--addr",
            "127.0.0.1",
            "--port",
            &port_s,
        ],
    )?;
    if ok(&v) {
        return Err(fail(format!(
            "container app of pod {} connected to 127.0.0.1:{port} and read {:?}, the token of a server in pod {}: \
             the pods share a network namespace",
            pods[1].name,
            v.get("data").and_then(Value::as_str).unwrap_or(""),
            pods[0].name
        )));
    }
    if error_name(&v) != "ECONNREFUSED" {
        return Err(fail(format!(
            "connecting to 127.0.0.1:{port} from pod {} gave {} instead of ECONNREFUSED ({v})",
            pods[1].name,
            error_name(&v)
        )));
    }
    Ok(())
}

/// Binds 127.0.0.1:`port` over TCP in a container; the probe's answer.
fn bind(pod: &PodGuard, container: &str, port: u16) -> Result<Value, crate::suite::Outcome> {
    let port = port.to_string();
    pod.probe(
        container,
        &[
            "bind",
            "--proto",
            "tcp",
            "--addr",
            "127.0.0.1",
            "--port",
            &port,
        ],
    )
}

fn port_conflict_within_pod(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let (port, token) = (ctx.random_port(), ctx.token());
    let pod = PodGuard::start(rt, ctx, &server_pod(ctx, "net-inuse", "tcp", port, &token))?;
    reach_server(&pod, "tcp", port, &token)?;
    let v = bind(&pod, "client", port)?;
    if ok(&v) {
        return Err(fail(format!(
            "container client of pod {} bound 127.0.0.1:{port} while container server listens on it: \
             the containers do not share a network namespace",
            pod.name
        )));
    }
    if error_name(&v) != "EADDRINUSE" {
        return Err(fail(format!(
            "binding 127.0.0.1:{port} in container client of pod {} gave {} instead of EADDRINUSE ({v})",
            pod.name,
            error_name(&v)
        )));
    }
    Ok(())
}

fn port_free_in_other_pod(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let (port, token) = (ctx.random_port(), ctx.token());
    let server = server_pod(ctx, "net-free", "tcp", port, &token);
    let other = PodManifest::sleepers(ctx, "net-free-other", &["app"]);
    let pods = PodGuard::start_all(rt, ctx, &[&server, &other])?;
    reach_server(&pods[0], "tcp", port, &token)?;
    let v = bind(&pods[1], "app", port)?;
    if !ok(&v) {
        return Err(fail(format!(
            "binding 127.0.0.1:{port} in pod {} failed with {} while pod {} listens on it: \
             the pods share a network namespace",
            pods[1].name,
            error_name(&v),
            pods[0].name
        )));
    }
    Ok(())
}
