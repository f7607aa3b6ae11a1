//! Probes, as the kubelet runs them: liveness restarts, readiness decides
//! `ready` and the pod's Ready condition, a startup probe holds the other
//! two back, and the exec, httpGet and tcpSocket handlers.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};

use crate::pods::RawPod;
use crate::runtime::{self, Runtime};
use crate::suite::{ensure, fail, skip, Check, Ctx, Outcome, TestCase};

pub const CASES: &[TestCase] = &[
    case!("PROBE-001", liveness_failure_restarts,
        must: "A container whose liveness probe fails its failureThreshold times in a row MUST be restarted.",
        method: "A container sleeps with an exec liveness probe (`test -e /tmp/healthy`, never true; period 1 s, failureThreshold 1); waits until its restartCount is at least 1 with the earlier run recorded in lastState.terminated. Skipped when the runtime does not declare probes."),
    case!("PROBE-002", readiness_decides_ready,
        must: "A running container whose readiness probe fails MUST be reported not ready and the pod's Ready condition False, and MUST NOT be restarted for it or for a liveness probe that succeeds; once the readiness probe succeeds, the container MUST become ready and the pod Ready.",
        method: "A container sleeps with an exec readiness probe (`test -e /tmp/ready`, period 1 s) and an exec liveness probe that succeeds (`test -d /tmp`, period 1 s, failureThreshold 1); after it runs, every observation for a few seconds must show it not ready, Ready=False and restartCount 0; then exec creates /tmp/ready and the container must become ready with Ready=True, still with restartCount 0. Skipped when the runtime does not declare probes."),
    case!("PROBE-003", startup_holds_liveness_back,
        must: "Until a container's startup probe succeeds, its liveness probe MUST NOT run: a liveness probe that always fails restarts the container only after the startup probe succeeded.",
        method: "A container has a startup probe (`test -e /tmp/started`, period 1 s, failureThreshold 60) and a liveness probe that always fails (period 1 s, failureThreshold 1); for a few seconds after it runs, restartCount must stay 0 and started false; then exec creates /tmp/started and the container must be restarted by its liveness probe. Skipped when the runtime does not declare probes."),
    case!("PROBE-004", http_and_tcp_handlers,
        must: "An httpGet probe MUST succeed only on a 2xx or 3xx answer and a tcpSocket probe only when the port accepts connections, both at the pod's address.",
        method: "Container web writes /tmp/alive and serves /tmp with busybox httpd on port 8080; it has an httpGet readiness probe on /ready and an httpGet liveness probe on /alive; container open has a tcpSocket readiness probe and a tcpSocket liveness probe on 8080, container closed a readiness one on 8099, where nothing listens (liveness probes: period 1 s, failureThreshold 5). After all run: open must become ready, while web (404) and closed stay not ready for a few seconds; then exec writes /tmp/ready in web and web must become ready while closed stays not ready; web and open, whose liveness probes succeed, must never have been restarted. Skipped when the runtime does not declare probes."),
];

fn need_probes(ctx: &Ctx) -> Check {
    if ctx.caps.probes {
        Ok(())
    } else {
        Err(skip("the runtime does not declare that it runs probes"))
    }
}

/// A container of the probe image running `sh -c script`, with `extra`
/// fields (probes) merged in.
fn ctr(ctx: &Ctx, name: &str, script: &str, extra: Value) -> Value {
    let mut c = json!({"name": name, "image": ctx.probe_image, "command": ["sh", "-c", script]});
    if let (Some(c), Value::Object(extra)) = (c.as_object_mut(), extra) {
        c.extend(extra);
    }
    c
}

fn exec_probe(check: &str, period: u32, failure_threshold: u32) -> Value {
    json!({
        "exec": {"command": ["sh", "-c", check]},
        "periodSeconds": period,
        "failureThreshold": failure_threshold,
        "timeoutSeconds": 1,
    })
}

fn status<'p>(pod: &'p Pod, name: &str) -> Option<&'p k8s_openapi::api::core::v1::ContainerStatus> {
    runtime::container_statuses(pod)
        .iter()
        .find(|c| c.name == name)
}

fn running(pod: &Pod, name: &str) -> bool {
    status(pod, name).is_some_and(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
}

fn ready(pod: &Pod, name: &str) -> bool {
    status(pod, name).is_some_and(|c| c.ready)
}

fn pod_ready(pod: &Pod) -> Option<bool> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status == "True")
}

fn restarts(pod: &Pod, name: &str) -> i32 {
    status(pod, name).map_or(0, |c| c.restart_count)
}

/// Waits until `check` holds for the pod, failing with `what` after `within`.
fn wait(
    rt: &dyn Runtime,
    pod: &str,
    what: &str,
    within: Duration,
    mut check: impl FnMut(&Pod) -> bool,
) -> Result<Pod, Outcome> {
    runtime::wait_for(rt, pod, what, within, |p| check(p).then(|| Ok(p.clone())))
        .map_err(|e| fail(e.to_string()))
}

/// For `window`, every observation of the pod must satisfy `check`
/// (which explains what it saw when it does not).
fn holds(
    rt: &dyn Runtime,
    pod: &str,
    window: Duration,
    mut check: impl FnMut(&Pod) -> Result<(), String>,
) -> Check {
    let end = Instant::now() + window;
    while Instant::now() < end {
        let Some(p) = rt.get_pod(pod)? else {
            return Err(fail(format!("pod {pod} disappeared")));
        };
        check(&p).map_err(fail)?;
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

/// How long a property that must not change is watched: long enough for
/// several probe periods of 1 s.
fn hold_window(ctx: &Ctx) -> Duration {
    ctx.timeouts.settle.max(Duration::from_secs(3))
}

fn liveness_failure_restarts(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    need_probes(ctx)?;
    let live = exec_probe("test -e /tmp/healthy", 1, 1);
    let pod = RawPod::create(
        rt,
        ctx,
        "probe-live",
        json!({"containers": [ctr(ctx, "app", "exec sleep 3600", json!({"livenessProbe": live}))]}),
    )?;
    let p = wait(
        rt,
        &pod.name,
        "container app restarted by its liveness probe",
        ctx.timeouts.start + Duration::from_secs(10),
        |p| restarts(p, "app") >= 1,
    )?;
    let last = status(&p, "app").and_then(|c| c.last_state.as_ref()?.terminated.as_ref());
    ensure(last.is_some(), || {
        format!(
            "pod {}: container app restarted without its earlier run in lastState.terminated: {}",
            pod.name,
            runtime::describe(&p)
        )
    })
}

fn readiness_decides_ready(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    need_probes(ctx)?;
    let probes = json!({
        "readinessProbe": exec_probe("test -e /tmp/ready", 1, 1),
        "livenessProbe": exec_probe("test -d /tmp", 1, 1),
    });
    let pod = RawPod::create(
        rt,
        ctx,
        "probe-ready",
        json!({"containers": [ctr(ctx, "app", "exec sleep 3600", probes)]}),
    )?;
    wait(
        rt,
        &pod.name,
        "container app running",
        ctx.timeouts.start,
        |p| running(p, "app"),
    )?;
    let not_restarted = |p: &Pod| {
        if restarts(p, "app") == 0 {
            return Ok(());
        }
        Err(format!(
            "pod {}: container app was restarted (restartCount {}) although only its readiness probe fails \
             and its liveness probe succeeds: {}",
            pod.name,
            restarts(p, "app"),
            runtime::describe(p)
        ))
    };
    holds(rt, &pod.name, hold_window(ctx), |p| {
        if ready(p, "app") || pod_ready(p) == Some(true) {
            return Err(format!(
                "pod {} shows container app ready (Ready condition {:?}) while its readiness probe fails: {}",
                pod.name,
                pod_ready(p),
                runtime::describe(p)
            ));
        }
        not_restarted(p)
    })?;
    pod.sh(ctx, "app", "touch /tmp/ready")?;
    let p = wait(
        rt,
        &pod.name,
        "container app ready and the pod Ready once its probe succeeds",
        Duration::from_secs(20),
        |p| ready(p, "app") && pod_ready(p) == Some(true),
    )?;
    not_restarted(&p).map_err(fail)
}

fn startup_holds_liveness_back(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    need_probes(ctx)?;
    let extra = json!({
        "startupProbe": exec_probe("test -e /tmp/started", 1, 60),
        "livenessProbe": exec_probe("false", 1, 1),
    });
    let pod = RawPod::create(
        rt,
        ctx,
        "probe-startup",
        json!({"containers": [ctr(ctx, "app", "exec sleep 3600", extra)]}),
    )?;
    wait(
        rt,
        &pod.name,
        "container app running",
        ctx.timeouts.start,
        |p| running(p, "app"),
    )?;
    holds(rt, &pod.name, hold_window(ctx), |p| {
        let started = status(p, "app").and_then(|c| c.started);
        if restarts(p, "app") > 0 || started == Some(true) {
            Err(format!(
                "pod {}: before its startup probe succeeded, container app shows restartCount {} and started {started:?}: \
                 the liveness probe (or the start) was not held back: {}",
                pod.name,
                restarts(p, "app"),
                runtime::describe(p)
            ))
        } else {
            Ok(())
        }
    })?;
    pod.sh(ctx, "app", "touch /tmp/started")?;
    wait(
        rt,
        &pod.name,
        "container app restarted by its liveness probe once started",
        Duration::from_secs(30),
        |p| restarts(p, "app") >= 1,
    )
    .map(drop)
}

fn http_and_tcp_handlers(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    need_probes(ctx)?;
    let http = json!({"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 1, "failureThreshold": 1});
    let tcp =
        |port: u16| json!({"tcpSocket": {"port": port}, "periodSeconds": 1, "failureThreshold": 1});
    // Liveness probes that succeed; five failures in a row give httpd time to listen.
    let alive = json!({"httpGet": {"path": "/alive", "port": 8080}, "periodSeconds": 1, "failureThreshold": 5});
    let mut tcp_alive = tcp(8080);
    tcp_alive["failureThreshold"] = json!(5);
    let pod = RawPod::create(
        rt,
        ctx,
        "probe-handlers",
        json!({"containers": [
            ctr(ctx, "web", "echo ok > /tmp/alive && exec httpd -f -p 8080 -h /tmp",
                json!({"readinessProbe": http, "livenessProbe": alive})),
            ctr(ctx, "open", "exec sleep 3600",
                json!({"readinessProbe": tcp(8080), "livenessProbe": tcp_alive})),
            ctr(ctx, "closed", "exec sleep 3600", json!({"readinessProbe": tcp(8099)})),
        ]}),
    )?;
    let unrestarted = |p: &Pod| {
        for c in ["web", "open"] {
            if restarts(p, c) > 0 {
                return Err(format!(
                    "pod {}: container {c} was restarted (restartCount {}) although its liveness probe succeeds: {}",
                    pod.name,
                    restarts(p, c),
                    runtime::describe(p)
                ));
            }
        }
        Ok(())
    };
    wait(
        rt,
        &pod.name,
        "container open ready (its tcpSocket probe reaches web's port 8080)",
        ctx.timeouts.start + Duration::from_secs(20),
        |p| ready(p, "open"),
    )?;
    holds(rt, &pod.name, hold_window(ctx), |p| {
        unrestarted(p)?;
        for (c, why) in [
            ("web", "its httpGet probe gets 404"),
            ("closed", "nothing listens on its tcpSocket port"),
        ] {
            if ready(p, c) {
                return Err(format!(
                    "pod {}: container {c} is ready although {why}: {}",
                    pod.name,
                    runtime::describe(p)
                ));
            }
        }
        Ok(())
    })?;
    pod.sh(ctx, "web", "echo ok > /tmp/ready")?;
    let p = wait(
        rt,
        &pod.name,
        "container web ready once /ready answers 200",
        Duration::from_secs(20),
        |p| ready(p, "web"),
    )?;
    ensure(!ready(&p, "closed"), || {
        format!(
            "pod {}: container closed became ready although nothing listens on port 8099",
            pod.name
        )
    })?;
    unrestarted(&p).map_err(fail)
}
