//! Container logs: what a container writes to stdout and stderr reaches
//! its log, and the log of its run before a restart stays readable.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::pods::RawPod;
use crate::runtime::{self, Runtime};
use crate::suite::{fail, skip, Check, Ctx, TestCase};

pub const CASES: &[TestCase] = &[
    case!("LOGS-001", both_streams_in_order,
        must: "Every line a container writes to stdout and to stderr MUST reach its log, the lines of each stream in the order they were written.",
        method: "A container writes out-1, err-1 (to stderr), out-2, err-2, ... up to 30 of each, then sleeps. Once it runs, its log is read until out-30 and err-30 are both there (within 10 s); each out-N and err-N must be there once, the out lines in order and the err lines in order."),
    case!("LOGS-002", previous_log,
        must: "After a container restarted, the log of its previous run MUST still be readable, apart from the log of its current run.",
        method: "A container (restartPolicy Always) counts its runs in an emptyDir: its first run prints run-1 and exits 1, its second prints run-2 and sleeps. Once restartCount is 1 and it runs, its current log is read until it shows run-2; the previous run's log (`logs --previous`) must show run-1 and not run-2, and the current one must not show run-1. Skipped when the adapter cannot read a previous run's log (recorded)."),
    case!("LOGS-003", each_container_its_own_log,
        must: "Each container of a pod MUST have a log of its own, holding every line that container wrote and none of the other containers' lines.",
        method: "A pod of three containers (one, two, three), each writing NAME-line-1 to NAME-line-5 to stdout then sleeping. Each container's log is read until its five lines are there (within 10 s): it must hold its own five lines, in order, and no line of the other two."),
];

/// Reads the log until `done` holds or `within` passes; the last text read.
fn log_until(
    rt: &dyn Runtime,
    pod: &str,
    previous: bool,
    within: Duration,
    done: impl Fn(&str) -> bool,
) -> Result<String, runtime::Error> {
    container_log_until(rt, pod, "app", previous, within, done)
}

/// [`log_until`] for any container of the pod.
fn container_log_until(
    rt: &dyn Runtime,
    pod: &str,
    container: &str,
    previous: bool,
    within: Duration,
    done: impl Fn(&str) -> bool,
) -> Result<String, runtime::Error> {
    let deadline = Instant::now() + within;
    loop {
        let text = rt.logs(pod, container, None, previous)?;
        if done(&text) || Instant::now() >= deadline {
            return Ok(text);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The numbers N of the lines `prefix`N, in the order they appear.
fn numbers(text: &str, prefix: &str) -> Vec<u32> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix(prefix)?.parse().ok())
        .collect()
}

fn both_streams_in_order(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let script = "i=1; while [ $i -le 30 ]; do echo out-$i; echo err-$i >&2; i=$((i+1)); done; exec sleep 3600";
    let pod = RawPod::create(
        rt,
        ctx,
        "logs-streams",
        json!({"containers": [{"name": "app", "image": ctx.probe_image,
                               "command": ["sh", "-c", script]}]}),
    )?;
    runtime::wait_running(rt, &pod.name, ctx.timeouts.start)
        .map_err(|e| fail(format!("pod {} did not start: {e}", pod.name)))?;
    let text = match log_until(rt, &pod.name, false, Duration::from_secs(10), |t| {
        numbers(t, "out-").contains(&30) && numbers(t, "err-").contains(&30)
    }) {
        Ok(t) => t,
        Err(runtime::Error::Unsupported(why)) => return Err(skip(why)),
        Err(e) => return Err(fail(format!("pod {}: reading its log: {e}", pod.name))),
    };
    let want: Vec<u32> = (1..=30).collect();
    for stream in ["out-", "err-"] {
        let seen = numbers(&text, stream);
        if seen != want {
            return Err(fail(format!(
                "pod {}: the {stream}N lines of its log are {seen:?}; expected 1 to 30 in order, each once",
                pod.name
            )));
        }
    }
    Ok(())
}

fn previous_log(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let script = "n=$(cat /runs/n 2>/dev/null || echo 0); n=$((n+1)); echo $n > /runs/n; \
                  echo run-$n; if [ $n -eq 1 ]; then exit 1; fi; exec sleep 3600";
    let pod = RawPod::create(
        rt,
        ctx,
        "logs-previous",
        json!({"restartPolicy": "Always",
               "volumes": [{"name": "runs", "emptyDir": {}}],
               "containers": [{"name": "app", "image": ctx.probe_image,
                               "command": ["sh", "-c", script],
                               "volumeMounts": [{"name": "runs", "mountPath": "/runs"}]}]}),
    )?;
    let within = ctx.timeouts.start + Duration::from_secs(30);
    runtime::wait_for(
        rt,
        &pod.name,
        "container app running after one restart",
        within,
        |p| {
            let c = runtime::container_statuses(p)
                .iter()
                .find(|c| c.name == "app")?;
            let running = c.state.as_ref().is_some_and(|s| s.running.is_some());
            (c.restart_count >= 1 && running).then_some(Ok(()))
        },
    )
    .map_err(|e| fail(e.to_string()))?;
    let current = log_until(rt, &pod.name, false, Duration::from_secs(10), |t| {
        numbers(t, "run-").contains(&2)
    });
    let current = match current {
        Ok(t) => t,
        Err(runtime::Error::Unsupported(why)) => return Err(skip(why)),
        Err(e) => return Err(fail(format!("pod {}: reading its log: {e}", pod.name))),
    };
    let previous = match rt.logs(&pod.name, "app", None, true) {
        Ok(t) => t,
        Err(runtime::Error::Unsupported(why)) => return Err(skip(why)),
        Err(e) => {
            return Err(fail(format!(
                "pod {}: the previous run's log cannot be read: {e}",
                pod.name
            )))
        }
    };
    let (now, before) = (numbers(&current, "run-"), numbers(&previous, "run-"));
    if now != [2] || before != [1] {
        return Err(fail(format!(
            "pod {}: after one restart the current log shows runs {now:?} and the previous log runs {before:?}; expected [2] and [1] (current {current:?}, previous {previous:?})",
            pod.name
        )));
    }
    Ok(())
}

fn each_container_its_own_log(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    const NAMES: [&str; 3] = ["one", "two", "three"];
    let containers: Vec<_> = NAMES
        .iter()
        .map(|n| {
            let script = format!(
                "i=1; while [ $i -le 5 ]; do echo {n}-line-$i; i=$((i+1)); done; exec sleep 3600"
            );
            json!({"name": n, "image": ctx.probe_image, "command": ["sh", "-c", script]})
        })
        .collect();
    let pod = RawPod::create(rt, ctx, "logs-each", json!({"containers": containers}))?;
    runtime::wait_running(rt, &pod.name, ctx.timeouts.start)
        .map_err(|e| fail(format!("pod {} did not start: {e}", pod.name)))?;
    for name in NAMES {
        let own = format!("{name}-line-");
        let text =
            match container_log_until(rt, &pod.name, name, false, Duration::from_secs(10), |t| {
                numbers(t, &own).contains(&5)
            }) {
                Ok(t) => t,
                Err(runtime::Error::Unsupported(why)) => return Err(skip(why)),
                Err(e) => {
                    return Err(fail(format!(
                        "pod {}: reading the log of container {name}: {e}",
                        pod.name
                    )))
                }
            };
        let seen = numbers(&text, &own);
        if seen != [1, 2, 3, 4, 5] {
            return Err(fail(format!(
                "pod {}: the log of container {name} has its lines {seen:?}; expected 1 to 5 in \
                 order, each once ({text:?})",
                pod.name
            )));
        }
        for other in NAMES.iter().filter(|o| **o != name) {
            if !numbers(&text, &format!("{other}-line-")).is_empty() {
                return Err(fail(format!(
                    "pod {}: the log of container {name} holds lines of container {other}: {text:?}",
                    pod.name
                )));
            }
        }
    }
    Ok(())
}
