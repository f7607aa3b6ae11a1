//! Observations several families share.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::pods::{ok, str_field, PodGuard};
use crate::suite::{fail, Check, Outcome};

/// The namespace link (e.g. "net:[4026532177]") of `kind` as seen in a container.
pub fn namespace(pod: &PodGuard, container: &str, kind: &str) -> Result<String, Outcome> {
    let v = pod.probe(container, &["ns"])?;
    Ok(str_field(&v, kind, &format!("probe ns in {}/{container}", pod.name))?.to_string())
}

/// Fails unless every listed container of the pod is in the same `kind`
/// namespace; the diagnosis names the containers and both links.
pub fn same_namespace(pod: &PodGuard, containers: &[&str], kind: &str, what: &str) -> Check {
    let first = namespace(pod, containers[0], kind)?;
    for c in &containers[1..] {
        let other = namespace(pod, c, kind)?;
        if other != first {
            return Err(fail(format!(
                "containers {} and {c} of pod {} are in different {what} namespaces: {first} vs {other}",
                containers[0], pod.name
            )));
        }
    }
    Ok(())
}

/// Fails when two pods' containers share the `kind` namespace.
pub fn different_namespace(
    a: &PodGuard,
    b: &PodGuard,
    container: &str,
    kind: &str,
    what: &str,
) -> Check {
    let na = namespace(a, container, kind)?;
    let nb = namespace(b, container, kind)?;
    if na == nb {
        return Err(fail(format!(
            "pods {} and {} share one {what} namespace ({na}): each pod needs its own",
            a.name, b.name
        )));
    }
    Ok(())
}

/// Connects from `container` to `addr:port` until it works or `within`
/// passes (the server may still be starting), and returns the probe's last
/// answer. Refusals and timeouts are retried; the answer says which.
pub fn connect_until(
    pod: &PodGuard,
    container: &str,
    proto: &str,
    addr: &str,
    port: u16,
    within: Duration,
) -> Result<Value, Outcome> {
    let port = port.to_string();
    let deadline = Instant::now() + within;
    let mut attempt = 0u32;
    loop {
        let v = pod.probe(
            container,
            &[
                "connect",
                "--proto",
                proto,
                "--addr",
                addr,
                "--port",
                &port,
                "--timeout-ms",
                "1000",
            ],
        )?;
        if ok(&v) || Instant::now() >= deadline {
            return Ok(v);
        }
        attempt += 1;
        // Each attempt is itself an exec (tens of ms); pause a little more
        // as it drags on.
        std::thread::sleep(Duration::from_millis(50 * u64::from(attempt.min(6))));
    }
}
