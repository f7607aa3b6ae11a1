//! emptyDir volumes as the kubelet makes them: one per pod, shared by the
//! pod's containers; a tmpfs of its sizeLimit for `medium: Memory`; a root
//! any user may write to; subPath mounts of a subdirectory; read-only
//! mounts; the fsGroup's ownership. (Escapes through subPath symlinks are
//! ESC-001 to ESC-005; fsGroup for a non-root user is ESC-025; disk-backed
//! sizeLimit eviction is STOR-003.)

use serde_json::{json, Value};

use crate::pods::{error_name, ok, ContainerSpec, PodGuard, PodManifest};
use crate::runtime::Runtime;
use crate::suite::{fail, Check, Ctx, Outcome, TestCase};

pub const CASES: &[TestCase] = &[
    case!("VOL-001", shared_in_pod_only,
        must: "An emptyDir volume MUST be shared by every container of its pod that mounts it, and MUST NOT be shared with another pod that has a volume of the same name.",
        method: "Pod one has containers writer (the emptyDir share at /data) and reader (share at /shared); pod two has container app with its own emptyDir also named share at /data. `probe write-file /data/token T` in writer; `probe read-file /shared/token` in reader must print T, and `probe read-file /data/token` in pod two must fail with ENOENT."),
    case!("VOL-002", memory_medium_is_sized_tmpfs,
        must: "An emptyDir with medium Memory MUST be a tmpfs whose size is the volume's sizeLimit.",
        method: "Container app (no memory limit) mounts an emptyDir with medium Memory and sizeLimit 16Mi at /mem: `probe mounts` must show a tmpfs at /mem, `stat -f -c '%S %b' /mem` (statfs) must give 16 MiB in all, and writing 20 MB into it with `head -c 20000000 /dev/zero > /mem/fill` must fail."),
    case!("VOL-003", root_writable_by_everyone,
        must: "The root directory of an emptyDir, on disk or in memory, MUST have mode 0777, so that a container running as any user can create files in it, and a file created there MUST keep the mode it is given and what was written to it.",
        method: "Container app runs as uid 1000 (no fsGroup) and container root as root, both mounting a disk emptyDir at /disk and a medium Memory one at /mem; `stat -c %a` of each must print 777 and `probe write-file` of a file in each must succeed as uid 1000; then in each container and volume a shell writes a file per mode 644, 666 and 777, chmods it, and `stat -c %a` and cat must give that mode and what was written."),
    case!("VOL-004", sub_path_is_a_subdirectory,
        must: "A volumeMount with subPath MUST mount that subdirectory of the volume, created when missing, so a file written through it shows under the subdirectory in another container that mounts the whole volume.",
        method: "Container part mounts emptyDir sub with subPath sub/dir at /part; container whole mounts all of it at /vol. `probe write-file /part/f T` in part; `probe read-file /vol/sub/dir/f` in whole must print T, and /vol/f must not exist."),
    case!("VOL-005", read_only_mount_refuses_writes,
        must: "A volumeMount with readOnly: true MUST refuse writes with EROFS, while another container's read-write mount of the same volume stays writable and its files stay readable through the read-only one.",
        method: "Container writer mounts an emptyDir read-write at /data, container reader mounts it with readOnly: true at /data. `probe write-file /data/w T` in writer must succeed; in reader `probe write-file /data/r x` must fail with EROFS and `probe read-file /data/w` must print T."),
    case!("VOL-006", fs_group_owns_volume_root,
        must: "With spec.securityContext.fsGroup, the root of an emptyDir MUST belong to the fsGroup with the setgid bit set, so what any container, root included, creates in it belongs to that group.",
        method: "The pod sets fsGroup 2000 and its container app runs as root (no runAsUser) with an emptyDir at /data: `stat -c '%g %a' /data` must print `2000 2777`, and after `probe write-file /data/f x`, `stat -c %g /data/f` must print 2000."),
];

// Every test names its volumes differently: podman's kube play makes an
// emptyDir a named volume shared by name (see VOL-001).
fn mount(volume: &str, path: &str) -> Value {
    json!({"name": volume, "mountPath": path})
}

fn with_mounts(ctx: &Ctx, name: &str, mounts: Value) -> ContainerSpec {
    ContainerSpec::new(ctx, name).field("volumeMounts", mounts)
}

/// `sh -c script` in a container: its trimmed stdout, failing on a non-zero exit.
fn sh(pod: &PodGuard, container: &str, script: &str) -> Result<String, Outcome> {
    let out = pod.exec(container, &["sh", "-c", script])?;
    if out.exit_code != 0 {
        return Err(fail(format!(
            "`{script}` in {}/{container} exited {} (stdout {:?}, stderr {:?})",
            pod.name,
            out.exit_code,
            out.stdout.trim(),
            out.stderr.trim()
        )));
    }
    Ok(out.stdout.trim().to_string())
}

/// `probe read-file PATH` must succeed and print `want`.
fn expect_file(pod: &PodGuard, container: &str, path: &str, want: &str, why: &str) -> Check {
    let v = pod.probe(container, &["read-file", path])?;
    if !ok(&v) || v["data"] != want {
        return Err(fail(format!(
            "{path} in container {container} of pod {} does not hold {want:?}: {why} ({v})",
            pod.name
        )));
    }
    Ok(())
}

fn write(pod: &PodGuard, container: &str, path: &str, text: &str) -> Check {
    let v = pod.probe(container, &["write-file", path, text])?;
    if !ok(&v) {
        return Err(fail(format!(
            "container {container} of pod {} cannot write {path}: {v}",
            pod.name
        )));
    }
    Ok(())
}

fn shared_in_pod_only(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let volumes = json!([{"name": "share", "emptyDir": {}}]);
    let one = PodManifest::new(ctx, "vol-share")
        .spec_field("volumes", volumes.clone())
        .container(with_mounts(ctx, "writer", json!([mount("share", "/data")])))
        .container(with_mounts(
            ctx,
            "reader",
            json!([mount("share", "/shared")]),
        ));
    let two = PodManifest::new(ctx, "vol-other")
        .spec_field("volumes", volumes)
        .container(with_mounts(ctx, "app", json!([mount("share", "/data")])));
    let pods = PodGuard::start_all(rt, ctx, &[&one, &two])?;
    let token = ctx.token();
    write(&pods[0], "writer", "/data/token", &token)?;
    expect_file(
        &pods[0],
        "reader",
        "/shared/token",
        &token,
        "container writer of the same pod wrote it into their shared emptyDir",
    )?;
    let v = pods[1].probe("app", &["read-file", "/data/token"])?;
    if ok(&v) || error_name(&v) != "ENOENT" {
        return Err(fail(format!(
            "pod {} reads /data/token from its own emptyDir data ({v}): pod {} wrote it into its \
             volume of the same name, which must not be shared between pods",
            pods[1].name, pods[0].name
        )));
    }
    Ok(())
}

fn memory_medium_is_sized_tmpfs(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let manifest = PodManifest::new(ctx, "vol-mem")
        .spec_field(
            "volumes",
            json!([{"name": "sized", "emptyDir": {"medium": "Memory", "sizeLimit": "16Mi"}}]),
        )
        .container(with_mounts(ctx, "app", json!([mount("sized", "/mem")])));
    let pod = PodGuard::start(rt, ctx, &manifest)?;
    let v = pod.probe("app", &["mounts"])?;
    let mounts = v["mounts"].as_array().cloned().unwrap_or_default();
    // The last mount at a path is the one seen there.
    let Some(m) = mounts.iter().rev().find(|m| m["target"] == "/mem") else {
        return Err(fail(format!(
            "container app of pod {} has no mount at /mem, where its emptyDir with medium Memory goes: {v}",
            pod.name
        )));
    };
    if m["fstype"] != "tmpfs" {
        return Err(fail(format!(
            "the emptyDir with medium Memory of pod {} is a {} mount, not a tmpfs: {m}",
            pod.name, m["fstype"]
        )));
    }
    let statfs = sh(&pod, "app", "stat -f -c '%S %b' /mem")?;
    let size = statfs
        .split_whitespace()
        .map(str::parse::<u64>)
        .collect::<Result<Vec<_>, _>>()
        .ok()
        .filter(|n| n.len() == 2)
        .map(|n| n[0] * n[1]);
    if size != Some(16 << 20) {
        return Err(fail(format!(
            "the tmpfs of the emptyDir with sizeLimit 16Mi of pod {} holds {statfs:?} (block size, blocks) \
             by statfs, not 16 MiB: its size must be the sizeLimit ({m})",
            pod.name
        )));
    }
    let out = pod.exec(
        "app",
        &["sh", "-c", "head -c 20000000 /dev/zero > /mem/fill"],
    )?;
    if out.exit_code == 0 {
        return Err(fail(format!(
            "container app of pod {} wrote 20 MB into its emptyDir with medium Memory and sizeLimit 16Mi",
            pod.name
        )));
    }
    Ok(())
}

fn root_writable_by_everyone(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let manifest = PodManifest::new(ctx, "vol-mode")
        .spec_field(
            "volumes",
            json!([{"name": "mode-disk", "emptyDir": {}}, {"name": "mode-mem", "emptyDir": {"medium": "Memory"}}]),
        )
        .container(
            with_mounts(
                ctx,
                "app",
                json!([mount("mode-disk", "/disk"), mount("mode-mem", "/mem")]),
            )
            .field("securityContext", json!({"runAsUser": 1000})),
        )
        .container(with_mounts(
            ctx,
            "root",
            json!([mount("mode-disk", "/disk"), mount("mode-mem", "/mem")]),
        ));
    let pod = PodGuard::start(rt, ctx, &manifest)?;
    for dir in ["/disk", "/mem"] {
        let mode = sh(&pod, "app", &format!("stat -c %a {dir}"))?;
        if mode != "777" {
            return Err(fail(format!(
                "the emptyDir at {dir} in pod {} has mode {mode}, not 777",
                pod.name
            )));
        }
        write(&pod, "app", &format!("{dir}/by-1000"), "x")?;
    }
    let want = "644 content-644\n666 content-666\n777 content-777";
    for container in ["app", "root"] {
        for dir in ["/disk", "/mem"] {
            let script = format!(
                "for m in 644 666 777; do f={dir}/{container}-$m; echo content-$m > $f && chmod $m $f \
                 && echo \"$(stat -c %a $f) $(cat $f)\"; done"
            );
            let seen = sh(&pod, container, &script)?;
            if seen != want {
                return Err(fail(format!(
                    "files container {container} of pod {} created in the emptyDir at {dir} show modes and contents \
                     {seen:?}, expected {want:?}",
                    pod.name
                )));
            }
        }
    }
    Ok(())
}

fn sub_path_is_a_subdirectory(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let manifest = PodManifest::new(ctx, "vol-subpath")
        .spec_field("volumes", json!([{"name": "sub", "emptyDir": {}}]))
        .container(with_mounts(
            ctx,
            "part",
            json!([{"name": "sub", "mountPath": "/part", "subPath": "sub/dir"}]),
        ))
        .container(with_mounts(ctx, "whole", json!([mount("sub", "/vol")])));
    let pod = PodGuard::start(rt, ctx, &manifest)?;
    let token = ctx.token();
    write(&pod, "part", "/part/f", &token)?;
    expect_file(
        &pod,
        "whole",
        "/vol/sub/dir/f",
        &token,
        "container part wrote it through its mount of subPath sub/dir",
    )?;
    let v = pod.probe("whole", &["read-file", "/vol/f"])?;
    if ok(&v) {
        return Err(fail(format!(
            "the file container part of pod {} wrote through subPath sub/dir is at the volume's root \
             (/vol/f in container whole): the whole volume was mounted, not its subdirectory",
            pod.name
        )));
    }
    Ok(())
}

fn read_only_mount_refuses_writes(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let manifest = PodManifest::new(ctx, "vol-ro")
        .spec_field("volumes", json!([{"name": "ro", "emptyDir": {}}]))
        .container(with_mounts(ctx, "writer", json!([mount("ro", "/data")])))
        .container(with_mounts(
            ctx,
            "reader",
            json!([{"name": "ro", "mountPath": "/data", "readOnly": true}]),
        ));
    let pod = PodGuard::start(rt, ctx, &manifest)?;
    let token = ctx.token();
    write(&pod, "writer", "/data/w", &token)?;
    let v = pod.probe("reader", &["write-file", "/data/r", "x"])?;
    if ok(&v) || error_name(&v) != "EROFS" {
        return Err(fail(format!(
            "writing /data/r through the readOnly: true mount of container reader of pod {} gave {v} instead of EROFS",
            pod.name
        )));
    }
    expect_file(
        &pod,
        "reader",
        "/data/w",
        &token,
        "container writer wrote it into the volume reader mounts read-only",
    )
}

fn fs_group_owns_volume_root(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let manifest = PodManifest::new(ctx, "vol-fsgroup")
        .spec_field("securityContext", json!({"fsGroup": 2000}))
        .spec_field("volumes", json!([{"name": "owned", "emptyDir": {}}]))
        .container(with_mounts(ctx, "app", json!([mount("owned", "/data")])));
    let pod = PodGuard::start(rt, ctx, &manifest)?;
    let root = sh(&pod, "app", "stat -c '%g %a' /data")?;
    if root != "2000 2777" {
        return Err(fail(format!(
            "the root of the emptyDir of pod {} with fsGroup 2000 has group and mode {root:?}, not \"2000 2777\"",
            pod.name
        )));
    }
    write(&pod, "app", "/data/f", "x")?;
    let group = sh(&pod, "app", "stat -c %g /data/f")?;
    if group != "2000" {
        return Err(fail(format!(
            "a file root created in the emptyDir of pod {} with fsGroup 2000 belongs to group {group}",
            pod.name
        )));
    }
    Ok(())
}
