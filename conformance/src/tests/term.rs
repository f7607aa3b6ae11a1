//! Termination messages as the kubelet reports them: the file at a
//! container's terminationMessagePath becomes `state.terminated.message`,
//! capped at 4096 bytes; `FallbackToLogsOnError` takes the log's tail when
//! the file is empty and the container failed.

use std::time::Duration;

use k8s_openapi::api::core::v1::{ContainerStateTerminated, Pod};
use serde_json::{json, Value};

use crate::pods::RawPod;
use crate::runtime::{self, Runtime};
use crate::suite::{fail, Check, Ctx, TestCase};

pub const CASES: &[TestCase] = &[
    case!("TERM-001", message_from_file,
        must: "The file a container wrote at its terminationMessagePath, the default /dev/termination-log or a path the pod sets, MUST become its state.terminated.message once it exits, after success and after failure, also when it runs as a non-root user.",
        method: "Two pods at once with restartPolicy Never: one writes a token to /dev/termination-log and exits 0; one runs as user 1000, sets terminationMessagePath /dev/termination-custom-log, writes a token there and exits 1. Each pod is waited for until it ends (Succeeded, Failed) and its container's state.terminated.message must be exactly the token written."),
    case!("TERM-002", message_capped,
        must: "A termination message MUST be at most 4096 bytes, the end of a longer file kept.",
        method: "A container writes 1000 bytes of 'a' then 4096 bytes of 'b' to /dev/termination-log and exits 0 (restartPolicy Never); once the pod ended, state.terminated.message must be the 4096 bytes of 'b'."),
    case!("TERM-003", fallback_to_logs,
        must: "Under terminationMessagePolicy FallbackToLogsOnError a container that failed with an empty termination file MUST get the tail of its log as its message (at most the last 80 lines and 2048 bytes), and a container that succeeded or wrote the file MUST NOT get its log as the message.",
        method: "Four pods at once with restartPolicy Never and FallbackToLogsOnError: one prints the lines line-1 to line-100 and exits 1 (its message must end with line-100, must not hold line-20 or anything before it, and must be at most 2048 bytes); one prints a line and exits 0 (no message, or an empty one); two print a line, write a token to their termination file and exit 1 and 0 (each message must be its token)."),
];

/// The container `app`'s terminated state once the pod has ended.
fn ended(rt: &dyn Runtime, ctx: &Ctx, pod: &str) -> Result<ContainerStateTerminated, String> {
    let what = "the pod to end with container app terminated";
    let within = ctx.timeouts.start + Duration::from_secs(20);
    runtime::wait_for(rt, pod, what, within, |p: &Pod| {
        let phase = runtime::phase(p);
        if phase != "Succeeded" && phase != "Failed" {
            return None;
        }
        let c = runtime::container_statuses(p)
            .iter()
            .find(|c| c.name == "app")?;
        let t = c.state.as_ref()?.terminated.clone()?;
        Some(Ok(t))
    })
    .map_err(|e| e.to_string())
}

fn never(container: Value) -> Value {
    json!({"restartPolicy": "Never", "containers": [container]})
}

fn app(ctx: &Ctx, script: &str) -> Value {
    json!({"name": "app", "image": ctx.probe_image, "command": ["sh", "-c", script]})
}

/// Shows a message the way a diagnosis needs it: its length and its ends.
fn shown(m: &Option<String>) -> String {
    match m {
        None => "no message".into(),
        Some(m) if m.len() <= 80 => format!("{m:?}"),
        Some(m) => format!(
            "{} bytes: {:?} ... {:?}",
            m.len(),
            &m[..40.min(m.len())],
            &m[m.len().saturating_sub(40)..]
        ),
    }
}

fn message_from_file(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let token = ctx.unique_name("msg");
    let default = RawPod::create(
        rt,
        ctx,
        "term-default",
        never(app(
            ctx,
            &format!("printf %s {token}-ok > /dev/termination-log"),
        )),
    )?;
    let mut custom_ctr = app(
        ctx,
        &format!("printf %s {token}-failed > /dev/termination-custom-log; exit 1"),
    );
    custom_ctr["terminationMessagePath"] = json!("/dev/termination-custom-log");
    custom_ctr["securityContext"] = json!({"runAsUser": 1000});
    let custom = RawPod::create(rt, ctx, "term-custom", never(custom_ctr))?;
    for (pod, want, code) in [
        (&default, format!("{token}-ok"), 0),
        (&custom, format!("{token}-failed"), 1),
    ] {
        let t = ended(rt, ctx, &pod.name).map_err(fail)?;
        if t.exit_code != code || t.message.as_deref() != Some(want.as_str()) {
            return Err(fail(format!(
                "pod {}: container app exited {} with message {}; expected exit {code} with message {want:?}",
                pod.name,
                t.exit_code,
                shown(&t.message)
            )));
        }
    }
    Ok(())
}

fn message_capped(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let script = "head -c 1000 /dev/zero | tr '\\0' a > /dev/termination-log; \
                  head -c 4096 /dev/zero | tr '\\0' b >> /dev/termination-log";
    let pod = RawPod::create(rt, ctx, "term-cap", never(app(ctx, script)))?;
    let t = ended(rt, ctx, &pod.name).map_err(fail)?;
    let want = "b".repeat(4096);
    if t.message.as_deref() != Some(want.as_str()) {
        return Err(fail(format!(
            "pod {}: a 5096-byte termination file gave {}; expected its last 4096 bytes (all 'b')",
            pod.name,
            shown(&t.message)
        )));
    }
    Ok(())
}

fn fallback_to_logs(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let token = ctx.unique_name("file");
    let fallback = |script: &str| {
        let mut c = app(ctx, script);
        c["terminationMessagePolicy"] = json!("FallbackToLogsOnError");
        never(c)
    };
    let failed = RawPod::create(
        rt,
        ctx,
        "term-logs-failed",
        fallback("i=1; while [ $i -le 100 ]; do echo line-$i; i=$((i+1)); done; exit 1"),
    )?;
    let succeeded = RawPod::create(rt, ctx, "term-logs-ok", fallback("echo all-good; exit 0"))?;
    let written = RawPod::create(
        rt,
        ctx,
        "term-logs-file",
        fallback(&format!(
            "echo not-the-message; printf %s {token} > /dev/termination-log; exit 1"
        )),
    )?;
    let written_ok = RawPod::create(
        rt,
        ctx,
        "term-logs-file-ok",
        fallback(&format!(
            "echo not-the-message; printf %s {token}-ok > /dev/termination-log; exit 0"
        )),
    )?;

    let t = ended(rt, ctx, &failed.name).map_err(fail)?;
    let m = t.message.clone().unwrap_or_default();
    let lines: Vec<&str> = m.lines().collect();
    let early = lines
        .iter()
        .filter_map(|l| l.strip_prefix("line-")?.parse::<u32>().ok())
        .any(|n| n <= 20);
    if lines.last() != Some(&"line-100") || early || m.len() > 2048 {
        return Err(fail(format!(
            "pod {}: a failed container with an empty termination file under FallbackToLogsOnError got {}; expected the tail of its log: ending with line-100, from the last 80 lines only, at most 2048 bytes",
            failed.name,
            shown(&t.message)
        )));
    }
    let t = ended(rt, ctx, &succeeded.name).map_err(fail)?;
    if t.message.as_deref().is_some_and(|m| !m.is_empty()) {
        return Err(fail(format!(
            "pod {}: a container that succeeded under FallbackToLogsOnError got the message {}; its log must not become one",
            succeeded.name,
            shown(&t.message)
        )));
    }
    for (pod, want, how) in [
        (&written, token.clone(), "failed"),
        (&written_ok, format!("{token}-ok"), "succeeded"),
    ] {
        let t = ended(rt, ctx, &pod.name).map_err(fail)?;
        if t.message.as_deref() != Some(want.as_str()) {
            return Err(fail(format!(
                "pod {}: a container that {how} after writing {want:?} to its termination file under FallbackToLogsOnError got {}; the file must win over the log",
                pod.name,
                shown(&t.message)
            )));
        }
    }
    Ok(())
}
