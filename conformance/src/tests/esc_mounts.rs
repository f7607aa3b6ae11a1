//! Escapes through volume mounts: a container plants symlinks in a volume
//! it shares with another container, and the runtime must not follow them
//! out of the volume (subPath) or out of the container's root (mount
//! target). Each test is the attack; it passes when the attack fails,
//! whether the runtime refuses the container or mounts something harmless.
//! The tests only ever read through a mount that might have escaped.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use serde_json::{json, Value};

use crate::pods::RawPod;
use crate::runtime::{self, Runtime};
use crate::suite::{fail, skip, Check, Ctx, Outcome, TestCase};

pub const CASES: &[TestCase] = &[
    case!("ESC-001", subpath_symlink_to_root,
        must: "A subPath MUST be resolved inside its volume, so a symlink to / that one container planted there does not give another container the node's root filesystem (the class of Kubernetes CVE-2017-1002101 and CVE-2021-25741).",
        method: "The suite writes a random marker file under /tmp on the node; init container plant runs `ln -s / /vol/escape` in an emptyDir, and container app mounts the same volume with subPath escape at /host. The app container may be refused (any waiting or terminated state, such as CreateContainerConfigError); if it runs, `cat /host/tmp/<marker>` must not print the marker. Needs init containers and pods on this node's kernel."),
    case!("ESC-002", subpath_symlink_to_parent,
        must: "A subPath MUST NOT lead to its volume's parent directory through a planted symlink to `..`.",
        method: "Init container plant writes a random marker file into an emptyDir and runs `ln -s .. /vol/up`; container app mounts the volume with subPath up at /host. The app container may be refused; if it runs, no /host/*/<marker> may exist (the volume itself would appear one level down)."),
    case!("ESC-003", subpath_symlink_chain,
        must: "A subPath MUST be resolved inside its volume through every link of a chain of symlinks, so a chain whose last link points to / does not give a container the node's root filesystem.",
        method: "The suite writes a random marker file under /tmp on the node; init container plant makes the chain l1 → d/l2 → ../l3 → / in an emptyDir, and container app mounts the volume with subPath l1 at /host. The app container may be refused; if it runs, `cat /host/tmp/<marker>` must not print the marker. Needs init containers and pods on this node's kernel."),
    case!("ESC-004", mount_target_symlink,
        must: "A mount target MUST be resolved inside the container's root filesystem, so a symlink one container planted in a shared volume where another container's nested mountPath goes sends the mount to the place it names inside that container, never outside its root (the class of runc CVE-2021-30465).",
        method: "Init container plant writes a random marker into emptyDir data and runs `ln -s /root /shared/link` in emptyDir shared; container app mounts shared at /shared and data at /shared/link. The app container may be refused; if it runs, `cat /shared/link/marker` (that is, its own /root/marker) must print the marker: a mount that is not there went through the link on the node's filesystem instead of the container's."),
    case!("ESC-005", subpath_symlink_inside_volume,
        must: "A subPath through a symlink that stays inside its volume MUST still be mounted, as Kubernetes mounts it, so refusing every symlink is not how a runtime passes ESC-001 to ESC-003.",
        method: "Init container plant writes a random marker to /vol/real/marker and runs `ln -s real /vol/inside`; container app mounts the volume with subPath inside at /data and must run, and `cat /data/marker` must print the marker."),
];

/// A file on the node the suite runs on, removed when dropped: if a
/// container can read it, the container sees the node's filesystem.
struct HostMarker {
    path: PathBuf,
    token: String,
}

impl HostMarker {
    fn plant(ctx: &Ctx) -> Result<HostMarker, Outcome> {
        let token = ctx.token();
        let path = PathBuf::from(format!("/tmp/podlab-esc-{token}"));
        std::fs::write(&path, &token)
            .map_err(|e| fail(format!("cannot write the marker {}: {e}", path.display())))?;
        Ok(HostMarker { path, token })
    }
}

impl Drop for HostMarker {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// A container of the probe image running `sh -c script` with mounts.
fn sh_ctr(ctx: &Ctx, name: &str, script: &str, mounts: Value) -> Value {
    json!({
        "name": name,
        "image": ctx.probe_image,
        "command": ["sh", "-c", script],
        "volumeMounts": mounts,
    })
}

/// The spec of an attack: init container `plant` runs `plant` with the
/// volumes mounted at /<name>; container `app` sleeps with `app_mounts`.
fn attack_spec(ctx: &Ctx, volumes: &[&str], plant: &str, app_mounts: Value) -> Value {
    let plant_mounts: Vec<Value> = volumes
        .iter()
        .map(|v| json!({"name": v, "mountPath": format!("/{v}")}))
        .collect();
    json!({
        "volumes": volumes.iter().map(|v| json!({"name": v, "emptyDir": {}})).collect::<Vec<_>>(),
        "initContainers": [sh_ctr(ctx, "plant", plant, Value::Array(plant_mounts))],
        "containers": [sh_ctr(ctx, "app", "exec sleep 3600", app_mounts)],
    })
}

/// What the runtime did with the attacking container.
enum Verdict {
    /// It runs: the test looks at what its mount shows.
    Running,
    /// It was refused (waiting with a reason, or ended): the attack failed.
    Refused(String),
}

fn find<'p>(statuses: Option<&'p [ContainerStatus]>, name: &str) -> Option<&'p ContainerStatus> {
    statuses?.iter().find(|c| c.name == name)
}

/// Waits until container `app` runs or is refused. The init container
/// must have planted its links first (exit 0), or the test proves nothing.
/// A refusal is watched a little longer, in case a retry runs it.
fn verdict(rt: &dyn Runtime, ctx: &Ctx, pod: &str) -> Result<Verdict, Outcome> {
    const TRANSIENT: [&str; 3] = ["", "ContainerCreating", "PodInitializing"];
    let linger = Duration::from_secs(3);
    let start = Instant::now();
    let mut refused: Option<(Instant, String)> = None;
    let mut last = String::from("no status yet");
    loop {
        if let Some(p) = rt.get_pod(pod)? {
            last = runtime::describe(&p);
            check_plant(&p, pod)?;
            if let Some(app) = find(Some(runtime::container_statuses(&p)), "app") {
                let state = app.state.as_ref();
                if state.is_some_and(|s| s.running.is_some()) {
                    return Ok(Verdict::Running);
                }
                let reason = state
                    .and_then(|s| s.waiting.as_ref())
                    .map(|w| w.reason.as_deref().unwrap_or(""));
                let ended = state.is_some_and(|s| s.terminated.is_some());
                if ended || reason.is_some_and(|r| !TRANSIENT.contains(&r)) {
                    refused.get_or_insert((Instant::now(), runtime::container_state(app)));
                }
            }
        }
        match &refused {
            Some((at, why)) if at.elapsed() >= linger => return Ok(Verdict::Refused(why.clone())),
            None if start.elapsed() >= ctx.timeouts.start => {
                return Err(fail(format!(
                    "pod {pod}: container app neither ran nor was refused within {:?}; last seen: {last}",
                    ctx.timeouts.start
                )))
            }
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The init container that plants the links must have succeeded.
fn check_plant(p: &Pod, pod: &str) -> Check {
    let inits = p
        .status
        .as_ref()
        .and_then(|s| s.init_container_statuses.as_deref());
    let Some(plant) = find(inits, "plant") else {
        return Ok(());
    };
    let ended = plant.state.as_ref().and_then(|s| s.terminated.as_ref());
    match ended {
        Some(t) if t.exit_code != 0 => Err(fail(format!(
            "pod {pod}: init container plant, which plants the symlinks, failed ({}): the attack could not be set up",
            runtime::container_state(plant)
        ))),
        _ => Ok(()),
    }
}

fn needs_init(ctx: &Ctx) -> Check {
    if ctx.caps.init_containers {
        Ok(())
    } else {
        Err(skip(
            "the runtime does not run init containers, which plant the links",
        ))
    }
}

fn needs_node(ctx: &Ctx) -> Check {
    if ctx.caps.same_kernel {
        Ok(())
    } else {
        Err(skip(
            "pods do not run on this node (same-kernel not declared): a marker on the suite's filesystem says nothing about theirs",
        ))
    }
}

/// An app container mounting `vol` with `sub_path` at /host must not see
/// the node's root: refused, or running without the host marker.
fn subpath_to_root(
    rt: &dyn Runtime,
    ctx: &Ctx,
    prefix: &str,
    plant: &str,
    sub_path: &str,
) -> Check {
    needs_init(ctx)?;
    needs_node(ctx)?;
    let marker = HostMarker::plant(ctx)?;
    let spec = attack_spec(
        ctx,
        &["vol"],
        plant,
        json!([{"name": "vol", "mountPath": "/host", "subPath": sub_path}]),
    );
    let pod = RawPod::create(rt, ctx, prefix, spec)?;
    if let Verdict::Refused(_) = verdict(rt, ctx, &pod.name)? {
        return Ok(());
    }
    let inside = format!("/host{}", marker.path.display());
    let seen = pod.sh(ctx, "app", &format!("cat {inside} 2>/dev/null; true"))?;
    if seen.contains(&marker.token) {
        return Err(fail(format!(
            "container app of pod {} runs with the node's root filesystem at /host: it reads the marker {} \
             the suite wrote on the node at {inside}; its subPath {sub_path:?} followed the symlinks \
             the init container planted (`{plant}`) out of the volume",
            pod.name,
            marker.path.display()
        )));
    }
    Ok(())
}

fn subpath_symlink_to_root(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    subpath_to_root(rt, ctx, "esc-root", "ln -s / /vol/escape", "escape")
}

fn subpath_symlink_chain(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    subpath_to_root(
        rt,
        ctx,
        "esc-chain",
        "mkdir /vol/d && ln -s d/l2 /vol/l1 && ln -s ../l3 /vol/d/l2 && ln -s / /vol/l3",
        "l1",
    )
}

fn subpath_symlink_to_parent(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    needs_init(ctx)?;
    let token = ctx.token();
    let plant = format!("echo {token} > /vol/marker-{token} && ln -s .. /vol/up");
    let spec = attack_spec(
        ctx,
        &["vol"],
        &plant,
        json!([{"name": "vol", "mountPath": "/host", "subPath": "up"}]),
    );
    let pod = RawPod::create(rt, ctx, "esc-parent", spec)?;
    if let Verdict::Refused(_) = verdict(rt, ctx, &pod.name)? {
        return Ok(());
    }
    let seen = pod.sh(
        ctx,
        "app",
        &format!("cat /host/*/marker-{token} 2>/dev/null; true"),
    )?;
    if seen.contains(&token) {
        let listing = pod.sh(ctx, "app", "ls /host 2>&1; true")?;
        return Err(fail(format!(
            "container app of pod {} has its volume's parent directory at /host (it lists {}), \
             where its volume appears as a subdirectory: its subPath \"up\" followed the planted \
             symlink `up -> ..` out of the volume",
            pod.name,
            listing.split_whitespace().collect::<Vec<_>>().join(" ")
        )));
    }
    Ok(())
}

fn mount_target_symlink(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    needs_init(ctx)?;
    let token = ctx.token();
    let plant = format!("echo {token} > /data/marker && ln -s /root /shared/link");
    let spec = attack_spec(
        ctx,
        &["shared", "data"],
        &plant,
        json!([
            {"name": "shared", "mountPath": "/shared"},
            {"name": "data", "mountPath": "/shared/link"},
        ]),
    );
    let pod = RawPod::create(rt, ctx, "esc-target", spec)?;
    if let Verdict::Refused(_) = verdict(rt, ctx, &pod.name)? {
        return Ok(());
    }
    let seen = pod.sh(ctx, "app", "cat /shared/link/marker 2>&1; true")?;
    if !seen.contains(&token) {
        return Err(fail(format!(
            "container app of pod {} runs, but volume data, mounted at /shared/link, is not where \
             /shared/link leads inside the container (the planted symlink /shared/link -> /root, \
             that is its own /root): `cat /shared/link/marker` gave {:?}; the mount target was \
             resolved through the symlink outside the container's root",
            pod.name,
            seen.trim()
        )));
    }
    Ok(())
}

fn subpath_symlink_inside_volume(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    needs_init(ctx)?;
    let token = ctx.token();
    let plant =
        format!("mkdir /vol/real && echo {token} > /vol/real/marker && ln -s real /vol/inside");
    let spec = attack_spec(
        ctx,
        &["vol"],
        &plant,
        json!([{"name": "vol", "mountPath": "/data", "subPath": "inside"}]),
    );
    let pod = RawPod::create(rt, ctx, "esc-inside", spec)?;
    if let Verdict::Refused(why) = verdict(rt, ctx, &pod.name)? {
        return Err(fail(format!(
            "pod {}: container app, whose subPath \"inside\" is a symlink to a directory inside \
             its volume, was refused: {why}",
            pod.name
        )));
    }
    let seen = pod.sh(ctx, "app", "cat /data/marker 2>&1; true")?;
    if !seen.contains(&token) {
        return Err(fail(format!(
            "container app of pod {} runs, but /data (subPath \"inside\" -> real) does not hold \
             the marker the init container wrote to real/marker: `cat /data/marker` gave {:?}",
            pod.name,
            seen.trim()
        )));
    }
    Ok(())
}
