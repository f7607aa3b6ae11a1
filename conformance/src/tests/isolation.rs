//! What the containers of a pod do NOT share: filesystems and, by default,
//! processes; and what no container gets from the runtime that started it:
//! its descriptors, its binary, its signal mask.

use serde_json::Value;

use crate::pods::{error_name, ok, str_field, ContainerSpec, PodGuard, PodManifest};
use crate::runtime::Runtime;
use crate::suite::{fail, skip, Check, Ctx, Outcome, TestCase};

use super::util::namespace;

pub const CASES: &[TestCase] = &[
    case!("ISO-001", separate_mount_namespaces,
        must: "Each container of a pod MUST have its own mount namespace, so a file one container writes to /tmp is not in another container's /tmp.",
        method: "Compares the mount namespace links of containers app and sidecar; app writes a random token to a file in /tmp and sidecar reading the same path must get ENOENT."),
    case!("ISO-002", separate_pid_namespaces,
        must: "Without shareProcessNamespace, a container MUST NOT see the processes of the pod's other containers.",
        method: "Container app runs `sleep N` with a random N; container sidecar lists /proc and must not find that command line, and the two containers' PID namespace links must differ."),
    case!("ISO-003", shared_process_namespace,
        must: "With shareProcessNamespace: true, every container of the pod MUST see the processes of the pod's other containers.",
        method: "In a pod with shareProcessNamespace: true, container app runs `sleep N` with a random N; container sidecar lists /proc and must find that command line."),
    case!("ISO-004", no_inherited_descriptors,
        must: "A container's main process and every process exec'd into it MUST hold no open descriptor beyond stdin, stdout and stderr, so nothing of the host (the class of runc CVE-2024-21626) reaches the container.",
        method: "Container app runs `sleep`; an exec'd `probe fds` lists its own /proc/self/fd and, with --pid 1, that of the container's main process (PID 1 of its PID namespace); both must hold exactly descriptors 0, 1 and 2."),
    case!("ISO-005", no_runtime_binary_inside,
        must: "Every process a container can see MUST run an executable from the container's own filesystem, so the runtime's binary is never reachable through /proc/PID/exe (the class of runc CVE-2019-5736).",
        method: "Container app runs `sleep`; an exec'd `probe exes` compares, for every process in /proc, the device and inode behind the /proc/PID/exe link with those of the file at the path the link names, inside the container; every process must match."),
    case!("ISO-006", signals_not_blocked,
        must: "A container's processes MUST start with no signal blocked, and its main process with no standard signal ignored, so the SIGTERM of a graceful stop reaches them and SIGPIPE acts as on any host.",
        method: "Container app runs busybox `sleep`; `probe caps --pid 1` reads SigBlk and SigIgn of the container's main process from /proc/1/status: SigBlk must be 0 and SigIgn must have none of the signals 1 to 31 (real-time signals ignored by whoever started the runtime may pass through); an exec'd `probe caps` reads its own SigBlk, which must be 0 (the probe ignores SIGPIPE itself, so its SigIgn says nothing)."),
];

fn separate_mount_namespaces(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let pod = PodGuard::start(
        rt,
        ctx,
        &PodManifest::sleepers(ctx, "iso-mnt", &["app", "sidecar"]),
    )?;
    let (ma, mb) = (
        namespace(&pod, "app", "mnt")?,
        namespace(&pod, "sidecar", "mnt")?,
    );
    if ma == mb {
        return Err(fail(format!(
            "containers app and sidecar of pod {} share the mount namespace {ma}: each container needs its own",
            pod.name
        )));
    }
    let token = ctx.token();
    let path = format!("/tmp/podlab-conformance-{token}");
    let v = pod.probe("app", &["write-file", &path, &token])?;
    if !ok(&v) {
        return Err(fail(format!(
            "container app of pod {} cannot write {path}: {v}",
            pod.name
        )));
    }
    let v = pod.probe("sidecar", &["read-file", &path])?;
    if ok(&v) {
        return Err(fail(format!(
            "container sidecar of pod {} reads {path}, which container app wrote: the containers share a /tmp",
            pod.name
        )));
    }
    if error_name(&v) != "ENOENT" {
        return Err(fail(format!(
            "reading {path} in container sidecar of pod {} gave {} instead of ENOENT ({v})",
            pod.name,
            error_name(&v)
        )));
    }
    Ok(())
}

/// A pod whose container app runs a command line no other process has.
fn marked_pod(ctx: &Ctx, prefix: &str, share: bool) -> (PodManifest, String) {
    let seconds = (3_600_000 + ctx.random() % 1_000_000).to_string();
    let mut m = PodManifest::new(ctx, prefix)
        .container(ContainerSpec::new(ctx, "app").command(&["sleep", &seconds]))
        .container(ContainerSpec::new(ctx, "sidecar"));
    if share {
        m = m.share_process_namespace();
    }
    (m, format!("sleep {seconds}"))
}

/// The command lines of the processes a container sees.
fn command_lines(pod: &PodGuard, container: &str) -> Result<Vec<String>, Outcome> {
    let v = pod.probe(container, &["ps"])?;
    let map = v
        .get("cmdlines")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            fail(format!(
                "probe ps in {}/{container} listed no command lines: {v}",
                pod.name
            ))
        })?;
    Ok(map
        .values()
        .filter_map(Value::as_str)
        .map(String::from)
        .collect())
}

fn separate_pid_namespaces(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let (manifest, marker) = marked_pod(ctx, "iso-pid", false);
    let pod = PodGuard::start(rt, ctx, &manifest)?;
    let seen = command_lines(&pod, "sidecar")?;
    if seen.contains(&marker) {
        return Err(fail(format!(
            "container sidecar of pod {} sees `{marker}`, the process of container app, without shareProcessNamespace: \
             each container needs its own PID namespace (sidecar sees: {})",
            pod.name,
            seen.join(" | ")
        )));
    }
    let (pa, pb) = (
        namespace(&pod, "app", "pid")?,
        namespace(&pod, "sidecar", "pid")?,
    );
    if pa == pb {
        return Err(fail(format!(
            "containers app and sidecar of pod {} share the PID namespace {pa} without shareProcessNamespace",
            pod.name
        )));
    }
    Ok(())
}

fn shared_process_namespace(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    if !ctx.caps.share_process_namespace {
        return Err(skip(
            "the runtime does not support spec.shareProcessNamespace",
        ));
    }
    let (manifest, marker) = marked_pod(ctx, "iso-sharepid", true);
    let pod = PodGuard::start(rt, ctx, &manifest)?;
    let seen = command_lines(&pod, "sidecar")?;
    if !seen.contains(&marker) {
        return Err(fail(format!(
            "with shareProcessNamespace: true, container sidecar of pod {} does not see `{marker}`, the process of container app \
             (sidecar sees: {}): the containers must share one PID namespace",
            pod.name,
            seen.join(" | ")
        )));
    }
    Ok(())
}

/// The descriptor numbers a probe `fds` answer lists.
fn fd_numbers(v: &Value, what: &str) -> Result<Vec<i64>, Outcome> {
    let fds = v
        .get("fds")
        .and_then(Value::as_array)
        .ok_or_else(|| fail(format!("{what}: no `fds` in probe output {v}")))?;
    Ok(fds.iter().filter_map(|f| f["fd"].as_i64()).collect())
}

fn no_inherited_descriptors(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let pod = PodGuard::start(rt, ctx, &PodManifest::sleepers(ctx, "iso-fds", &["app"]))?;
    for (whose, args) in [
        (
            "the container's main process (PID 1)",
            &["fds", "--pid", "1"][..],
        ),
        ("a process exec'd into the container", &["fds"][..]),
    ] {
        let v = pod.probe("app", args)?;
        let what = format!("probe {} in {}/app", args.join(" "), pod.name);
        if fd_numbers(&v, &what)? != [0, 1, 2] {
            return Err(fail(format!(
                "{whose} of pod {} holds descriptors beyond stdin, stdout and stderr: {}",
                pod.name, v["fds"]
            )));
        }
    }
    Ok(())
}

fn no_runtime_binary_inside(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let pod = PodGuard::start(rt, ctx, &PodManifest::sleepers(ctx, "iso-exe", &["app"]))?;
    let v = pod.probe("app", &["exes"])?;
    let procs = v
        .get("procs")
        .and_then(Value::as_array)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| {
            fail(format!(
                "probe exes in {}/app listed no processes: {v}",
                pod.name
            ))
        })?;
    let outside: Vec<String> = procs
        .iter()
        .filter(|p| p["inside"] != true)
        .map(|p| format!("pid {} runs {}", p["pid"], p["exe"]))
        .collect();
    if !outside.is_empty() {
        return Err(fail(format!(
            "in container app of pod {}, processes run a binary from outside the container, reachable \
             through /proc/PID/exe: {}",
            pod.name,
            outside.join("; ")
        )));
    }
    Ok(())
}

/// A probe `caps` mask field as a number.
fn mask(v: &Value, field: &str, what: &str) -> Result<u64, Outcome> {
    let text = str_field(v, field, what)?;
    u64::from_str_radix(text, 16)
        .map_err(|_| fail(format!("{what}: {field} {text:?} is not a hex mask")))
}

fn signals_not_blocked(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let pod = PodGuard::start(rt, ctx, &PodManifest::sleepers(ctx, "iso-sig", &["app"]))?;
    let main = pod.probe("app", &["caps", "--pid", "1"])?;
    let what = format!("probe caps --pid 1 in {}/app", pod.name);
    let exec = pod.probe("app", &["caps"])?;
    let what_exec = format!("probe caps in {}/app", pod.name);
    for (whose, field, value) in [
        ("main process", "SigBlk", mask(&main, "SigBlk", &what)?),
        // Real-time signals may come ignored from the runtime's own caller.
        (
            "main process",
            "SigIgn",
            mask(&main, "SigIgn", &what)? & 0x7fff_ffff,
        ),
        (
            "exec'd process",
            "SigBlk",
            mask(&exec, "SigBlk", &what_exec)?,
        ),
    ] {
        if value != 0 {
            let verb = if field == "SigBlk" {
                "blocked"
            } else {
                "ignored"
            };
            return Err(fail(format!(
                "the {whose} of container app in pod {} starts with signals {verb} ({field} {value:016x}: {})",
                pod.name,
                signal_names(value)
            )));
        }
    }
    Ok(())
}

/// "SIGTERM SIGCHLD" for the bits of a /proc/PID/status signal mask.
fn signal_names(mask: u64) -> String {
    const NAMES: [&str; 31] = [
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    (0..64)
        .filter(|bit| mask & (1 << bit) != 0)
        .map(|bit| {
            NAMES
                .get(bit)
                .map_or_else(|| format!("signal {}", bit + 1), |n| n.to_string())
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signal_masks_are_named() {
        assert_eq!(signal_names(0x4002), "SIGINT SIGTERM");
        assert_eq!(signal_names(0x1000), "SIGPIPE");
        assert_eq!(signal_names(1 << 40), "signal 41");
        assert_eq!(signal_names(0), "");
    }
}
