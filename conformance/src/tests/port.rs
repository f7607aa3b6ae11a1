//! PORT: a container port's hostPort is reachable from the node, and the
//! scheduler keeps a second pod asking for the same host port off the node.
//! The suite's only traffic here goes to 127.0.0.1 on the node itself.

use std::net::{Ipv4Addr, SocketAddr};

use serde_json::json;

use super::podnet::{read_token_until, serve_one};
use crate::pods::{ContainerSpec, PodGuard, PodManifest};
use crate::runtime::{self, Runtime};
use crate::suite::{fail, skip, Check, Ctx};

pub const CASES: &[crate::suite::TestCase] = &[
    case!("PORT-001", host_port_reaches_container,
        must: "A TCP connection from the node to 127.0.0.1 on a container's hostPort MUST reach that container's containerPort.",
        method: "Starts a pod whose container declares a random containerPort with a different random hostPort; a one-shot listener (`probe listen`) in the container serves a random token on the containerPort while the suite, on the node, connects to 127.0.0.1:hostPort (retrying while the listener starts) and must read the token. Skipped unless the runtime declares host ports."),
    case!("PORT-002", host_port_conflict_is_unschedulable,
        must: "A pod asking for a hostPort and protocol that a running pod on the node holds MUST stay Pending with PodScheduled=False, reason Unschedulable, until the port is free.",
        method: "Starts pod a with a random TCP hostPort, then creates pod b asking for the same hostPort and protocol: b must be reported with PodScheduled=False, reason Unschedulable and a message about free ports, Pending with no container started; after a is deleted, b must run. Skipped unless the runtime schedules pods against the node."),
];

fn with_port(ctx: &Ctx, prefix: &str, container_port: u16, host_port: u16) -> PodManifest {
    PodManifest::new(ctx, prefix).container(ContainerSpec::new(ctx, "app").field(
        "ports",
        json!([{"containerPort": container_port, "hostPort": host_port, "protocol": "TCP"}]),
    ))
}

/// A random host port apart from the container port.
fn host_port_for(ctx: &Ctx, container_port: u16) -> u16 {
    let p = ctx.random_port();
    if p == container_port {
        p + 1
    } else {
        p
    }
}

fn host_port_reaches_container(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    if !ctx.caps.host_ports {
        return Err(skip(
            "the runtime does not declare that hostPort reaches containers from the node",
        ));
    }
    let container_port = ctx.random_port();
    let host_port = host_port_for(ctx, container_port);
    let token = ctx.token();
    let pod = PodGuard::start(
        rt,
        ctx,
        &with_port(ctx, "port-host", container_port, host_port),
    )?;
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, host_port));
    let (answer, _) = serve_one(&pod, "app", "tcp", container_port, &token, || {
        Ok(read_token_until(addr))
    })?;
    match answer {
        Ok(data) if data == token => Ok(()),
        Ok(data) => Err(fail(format!(
            "the node reached {addr} but read {data:?} instead of pod {}'s token {token:?}: \
             hostPort {host_port} leads somewhere else",
            pod.name
        ))),
        Err(e) => Err(fail(format!(
            "the node could not reach pod {} at {addr} (hostPort {host_port} -> containerPort \
             {container_port}, where it listens): {e}",
            pod.name
        ))),
    }
}

fn host_port_conflict_is_unschedulable(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    if !ctx.caps.unschedulable {
        return Err(skip("the runtime does not schedule pods against the node"));
    }
    let host_port = ctx.random_port();
    let a = PodGuard::start(rt, ctx, &with_port(ctx, "port-a", 8080, host_port))?;
    let b = PodGuard::create(rt, ctx, &with_port(ctx, "port-b", 8081, host_port))?;
    let seen = runtime::wait_for(
        rt,
        &b.name,
        "PodScheduled=False or a started container",
        ctx.timeouts.start,
        |p| {
            let refused = p
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .into_iter()
                .flatten()
                .any(|c| c.type_ == "PodScheduled" && c.status == "False");
            let started = runtime::phase(p) == "Running"
                || runtime::container_statuses(p)
                    .iter()
                    .any(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()));
            (refused || started).then(|| Ok(p.clone()))
        },
    )
    .map_err(|e| {
        fail(format!(
            "pod {} wants pod {}'s hostPort {host_port}: {e}",
            b.name, a.name
        ))
    })?;
    let cond = seen
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled"));
    let reason = cond.and_then(|c| c.reason.clone()).unwrap_or_default();
    let message = cond.and_then(|c| c.message.clone()).unwrap_or_default();
    let phase = runtime::phase(&seen);
    if phase != "Pending" || reason != "Unschedulable" || !message.contains("free ports") {
        return Err(fail(format!(
            "pod {} asks for hostPort {host_port}/TCP, held by running pod {}: it is {phase}, \
             PodScheduled reason {reason:?} message {message:?}; expected Pending, Unschedulable, \
             a message about free ports: {}",
            b.name,
            a.name,
            runtime::describe(&seen)
        )));
    }
    drop(a);
    b.running().map(drop).map_err(|_| {
        fail(format!(
            "pod {} stayed unscheduled after the pod holding hostPort {host_port} was deleted",
            b.name
        ))
    })
}
