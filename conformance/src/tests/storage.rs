//! Storage: where a pod's bytes go and what bounds them. Ephemeral-storage
//! limits and emptyDir size limits evict the pod (the kubelet's local
//! storage eviction); a restarted container gets a new writable layer while
//! its pod's emptyDir keeps what was written to it.

use std::time::Duration;

use serde_json::json;

use super::lifecycle::sh;
use crate::pods::RawPod;
use crate::runtime::{self, Runtime};
use crate::suite::{fail, skip, Check, Ctx, TestCase};

pub const CASES: &[TestCase] = &[
    case!("STOR-001", log_stays_bounded_and_shows_its_tail,
        must: "A container log that grows past the runtime's rotation size MUST stay within the runtime's bound on the node, and logs MUST still show the container's last line.",
        method: "Container app prints lines of 1000 bytes until it has printed twice the runtime's declared log bound plus 1 MiB, then a random last line, and sleeps. Polls `logs --tail 1` until it is the last line; then the bytes the runtime keeps for the container's logs must not exceed the bound. Skipped when the runtime declares no log bound."),
    case!("STOR-002", ephemeral_limit_evicts,
        must: "A pod whose container writes past the container's limits.ephemeral-storage MUST be evicted: phase Failed, reason Evicted, with the kubelet's message naming the container and its limit.",
        method: "Container app (limits.ephemeral-storage 20Mi) writes 50 MB to /tmp and sleeps; container idle (limit 1Gi) sleeps, so the pod's total (1044Mi) is not exceeded and the container's own limit is. Waits for phase Failed; reason must be Evicted and the message `Container app exceeded its local ephemeral storage limit \"20Mi\". `. Skipped when the runtime does not declare storage-eviction."),
    case!("STOR-003", empty_dir_size_limit_evicts,
        must: "A pod that writes past a disk-backed emptyDir's sizeLimit MUST be evicted: phase Failed, reason Evicted, with the kubelet's message naming the volume and its limit.",
        method: "Container app writes 30 MB into an emptyDir with sizeLimit 10Mi (no medium) and sleeps. Waits for phase Failed; reason must be Evicted and the message `Usage of EmptyDir volume \"scratch\" exceeds the limit \"10Mi\". `. Skipped when the runtime does not declare storage-eviction."),
    case!("STOR-004", restart_gets_new_layer_keeps_empty_dir,
        must: "A restarted container MUST start from its image again (what it wrote to its root filesystem is gone) while its pod's emptyDir keeps what was written to it.",
        method: "Container app (restartPolicy Always), on its first run, writes /etc/stor-mark and /data/stor-mark (an emptyDir) and exits 1; on a later run (it finds /data/first) it sleeps. Once restartCount is at least 1 and the container runs, `test -e /etc/stor-mark` must fail and `test -e /data/stor-mark` succeed."),
];

fn log_stays_bounded_and_shows_its_tail(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let Some(bound) = ctx.caps.log_bound else {
        return Err(skip(
            "the runtime declares no log bound (log rotation it keeps to)",
        ));
    };
    let lines = (2 * bound + (1 << 20)) / 1000 + 1;
    let last = format!("stor-last-line-{:016x}", ctx.random());
    // 999 x's and a newline per line, in blocks of 100 lines.
    let script = format!(
        "l=x; for i in 1 2 3 4 5 6 7 8 9 10; do l=$l$l; done; l=$(echo $l | cut -c1-999);          n=0; while [ $n -lt {lines} ]; do yes $l | head -n 100; n=$((n+100)); done;          echo {last}; exec sleep 3600"
    );
    let pod = RawPod::create(
        rt,
        ctx,
        "stor-logs",
        json!({"containers": [sh(ctx, "app", &script)]}),
    )?;
    let deadline = std::time::Instant::now() + ctx.timeouts.start + Duration::from_secs(60);
    loop {
        let seen: String = match rt.logs(&pod.name, "app", Some(1), false) {
            Ok(out) if out.trim_end() == last => break,
            Ok(out) => out.chars().take(80).collect(),
            Err(e) => e.to_string(),
        };
        if std::time::Instant::now() >= deadline {
            return Err(fail(format!(
                "pod {}: logs --tail 1 never showed {last:?}; last seen: {seen:?}",
                pod.name
            )));
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let bytes = rt
        .log_bytes(&pod.name, "app")
        .map_err(|e| fail(format!("pod {}: {e}", pod.name)))?;
    if bytes > bound {
        return Err(fail(format!(
            "pod {}: the container printed {} bytes and the runtime keeps {bytes} bytes of its logs, more than its bound of {bound}",
            pod.name,
            lines * 1000
        )));
    }
    Ok(())
}

/// Waits until the pod is Failed and checks it was evicted with `message`.
fn expect_evicted(rt: &dyn Runtime, ctx: &Ctx, pod: &str, message: &str) -> Check {
    let p = runtime::wait_for(
        rt,
        pod,
        "phase Failed (evicted)",
        ctx.timeouts.start + Duration::from_secs(30),
        |p| match runtime::phase(p) {
            "Failed" => Some(Ok(p.clone())),
            "Succeeded" => Some(Err(runtime::Error::Other(format!(
                "pod {pod} ended Succeeded instead of being evicted: {}",
                runtime::describe(p)
            )))),
            _ => None,
        },
    )
    .map_err(|e| fail(e.to_string()))?;
    let status = p.status.clone().unwrap_or_default();
    if status.reason.as_deref() != Some("Evicted") || status.message.as_deref() != Some(message) {
        return Err(fail(format!(
            "pod {pod} failed with reason {:?} and message {:?}, expected Evicted and {message:?}",
            status.reason, status.message
        )));
    }
    Ok(())
}

fn ephemeral_limit_evicts(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    if !ctx.caps.storage_eviction {
        return Err(skip("the runtime does not declare storage-eviction"));
    }
    let mut app = sh(
        ctx,
        "app",
        "dd if=/dev/zero of=/tmp/fill bs=1M count=50; exec sleep 3600",
    );
    app["resources"] = json!({"limits": {"ephemeral-storage": "20Mi"}});
    let mut idle = sh(ctx, "idle", "exec sleep 3600");
    idle["resources"] = json!({"limits": {"ephemeral-storage": "1Gi"}});
    let pod = RawPod::create(
        rt,
        ctx,
        "stor-ephemeral",
        json!({"containers": [app, idle]}),
    )?;
    expect_evicted(
        rt,
        ctx,
        &pod.name,
        "Container app exceeded its local ephemeral storage limit \"20Mi\". ",
    )
}

fn empty_dir_size_limit_evicts(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    if !ctx.caps.storage_eviction {
        return Err(skip("the runtime does not declare storage-eviction"));
    }
    let mut app = sh(
        ctx,
        "app",
        "dd if=/dev/zero of=/scratch/fill bs=1M count=30; exec sleep 3600",
    );
    app["volumeMounts"] = json!([{"name": "scratch", "mountPath": "/scratch"}]);
    let pod = RawPod::create(
        rt,
        ctx,
        "stor-sizelimit",
        json!({
            "containers": [app],
            "volumes": [{"name": "scratch", "emptyDir": {"sizeLimit": "10Mi"}}],
        }),
    )?;
    expect_evicted(
        rt,
        ctx,
        &pod.name,
        "Usage of EmptyDir volume \"scratch\" exceeds the limit \"10Mi\". ",
    )
}

fn restart_gets_new_layer_keeps_empty_dir(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let mut app = sh(
        ctx,
        "app",
        "if [ -e /data/first ]; then exec sleep 3600; fi; \
         echo x > /etc/stor-mark; echo x > /data/stor-mark; touch /data/first; sleep 0.3; exit 1",
    );
    app["volumeMounts"] = json!([{"name": "data", "mountPath": "/data"}]);
    let pod = RawPod::create(
        rt,
        ctx,
        "stor-relayer",
        json!({
            "restartPolicy": "Always",
            "containers": [app],
            "volumes": [{"name": "data", "emptyDir": {}}],
        }),
    )?;
    runtime::wait_for(
        rt,
        &pod.name,
        "container app restarted and running",
        ctx.timeouts.start + Duration::from_secs(30),
        |p| {
            let app = runtime::container_statuses(p)
                .iter()
                .find(|c| c.name == "app")?;
            let running = app.state.as_ref().is_some_and(|s| s.running.is_some());
            (app.restart_count >= 1 && running).then_some(Ok(()))
        },
    )
    .map_err(|e| fail(e.to_string()))?;
    let exec = |argv: &[&str]| {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        rt.exec(&pod.name, "app", &argv, ctx.timeouts.exec)
            .map_err(|e| fail(format!("exec in {}/app: {e}", pod.name)))
    };
    let rootfs = exec(&["test", "-e", "/etc/stor-mark"])?;
    if rootfs.exit_code == 0 {
        return Err(fail(format!(
            "pod {}: /etc/stor-mark, written to the root filesystem by the container's first run, is still there after its restart",
            pod.name
        )));
    }
    let volume = exec(&["test", "-e", "/data/stor-mark"])?;
    if volume.exit_code != 0 {
        return Err(fail(format!(
            "pod {}: /data/stor-mark, written to the emptyDir by the container's first run, is gone after its restart (exit {})",
            pod.name, volume.exit_code
        )));
    }
    Ok(())
}
