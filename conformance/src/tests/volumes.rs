//! emptyDir volumes as the kubelet makes them: one per pod, shared by the
//! pod's containers; a tmpfs of its sizeLimit for `medium: Memory`; a root
//! any user may write to; subPath mounts of a subdirectory; read-only
//! mounts; the fsGroup's ownership. (Escapes through subPath symlinks are
//! ESC-001 to ESC-005; fsGroup for a non-root user is ESC-025; disk-backed
//! sizeLimit eviction is STOR-003.) hostPath volumes (VOL-007 on), where the
//! runtime declares host-paths: the node's directories and files, symlinks
//! followed, the type checks, mount propagation both ways, read-only mounts
//! recursive or not, and a node file over the managed /etc/hosts.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::pods::{error_name, ok, ContainerSpec, PodGuard, PodManifest, RawPod};
use crate::runtime::{self, Runtime};
use crate::suite::{fail, skip, Check, Ctx, Outcome, TestCase};

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
    case!("VOL-007", host_path_directory,
        must: "A hostPath volume MUST mount the node's directory into the container, so that what either side writes there the other reads.",
        method: "The suite makes a directory under its temp dir on the node holding file from-node (a token); container app mounts it as hostPath type Directory at /host. `probe read-file /host/from-node` must print the token, and after `probe write-file /host/from-pod T` the node's file from-pod must hold T. Skipped when the runtime does not declare host-paths."),
    case!("VOL-008", host_path_symlink,
        must: "A hostPath volume whose path is a symlink on the node MUST mount the directory the symlink points to.",
        method: "On the node, directory real holds file marker (a token) and link is a symlink to real; container app mounts hostPath link (no type) at /host: `probe read-file /host/marker` must print the token. Skipped when the runtime does not declare host-paths."),
    case!("VOL-009", host_path_types,
        must: "A hostPath volume MUST be checked against its type as the kubelet checks it: DirectoryOrCreate and FileOrCreate make a missing directory or file, a CharDevice is mounted as one, and a container whose hostPath is not of its type MUST NOT start.",
        method: "Pod good mounts hostPath made/dir (DirectoryOrCreate, missing) at /dir, made-file (FileOrCreate, missing) at /file and /dev/null (CharDevice) at /null: it must run, `test -d /dir && test -f /file && test -c /null` must succeed in it, and on the node made/dir must be a directory and made-file a regular file. Pod bad, created first, mounts a regular file of the node as type Directory: when pod good has run and been checked, bad must have been refused or have a container that is not and never was running. Skipped when the runtime does not declare host-paths."),
    case!("VOL-010", propagation_none,
        must: "A volumeMount with mountPropagation None MUST NOT receive the mounts the node makes inside its hostPath after the container started.",
        method: "The suite bind-mounts a directory on itself on the node and makes it rshared (as critest does), then a container mounts it as hostPath at /host with mountPropagation None; once it runs, the node mounts a tmpfs at sub inside the directory and writes sub/marker: `probe read-file /host/sub/marker` in the container must fail with ENOENT. Skipped when the runtime does not declare host-paths."),
    case!("VOL-011", propagation_host_to_container,
        must: "A volumeMount with mountPropagation HostToContainer MUST receive the mounts the node makes inside its hostPath after the container started.",
        method: "As VOL-010 with mountPropagation HostToContainer: `probe read-file /host/sub/marker` in the container must print the marker the node wrote into its new tmpfs. Skipped when the runtime does not declare host-paths."),
    case!("VOL-012", propagation_bidirectional,
        must: "A privileged container's volumeMount with mountPropagation Bidirectional MUST receive the node's new mounts inside its hostPath, and the node MUST see the mounts the container makes there.",
        method: "As VOL-011 with a privileged container and mountPropagation Bidirectional: the node's marker must be readable in the container, and after the container runs `mount -t tmpfs tmpfs /host/back` and writes /host/back/marker, the node must read that marker at back/marker in its directory. Skipped when the runtime does not declare host-paths and privileged."),
    case!("VOL-013", read_only_not_recursive,
        must: "A readOnly volumeMount of a hostPath without recursiveReadOnly MUST refuse writes with EROFS at the volume's own mount, while a mount the node has below it stays writable.",
        method: "The node's directory has a tmpfs mounted at sub before the pod starts; container app mounts the directory as hostPath with readOnly: true at /host. `probe write-file /host/top x` must fail with EROFS and `probe write-file /host/sub/f x` must succeed. Skipped when the runtime does not declare host-paths."),
    case!("VOL-014", read_only_recursive,
        must: "A readOnly volumeMount with recursiveReadOnly Enabled MUST refuse writes with EROFS at every mount below it too.",
        method: "As VOL-013 with recursiveReadOnly: Enabled: both `probe write-file /host/top x` and `probe write-file /host/sub/f x` must fail with EROFS. Skipped when the runtime does not declare host-paths."),
    case!("VOL-015", recursive_read_only_refused,
        must: "A volumeMount with recursiveReadOnly Enabled MUST be refused when it is not readOnly or when its mountPropagation is HostToContainer or Bidirectional.",
        method: "Three pods mount a hostPath directory with recursiveReadOnly: Enabled: one with readOnly false, one readOnly with mountPropagation HostToContainer, one privileged and readOnly with Bidirectional. Each must be refused when created, or its container must wait with a reason that ends in Error or names Config, and never run. Skipped when the runtime does not declare host-paths."),
    case!("VOL-016", host_path_over_etc_hosts,
        must: "A container that mounts a node file at /etc/hosts through a hostPath volume MUST see that file there instead of the pod's managed /etc/hosts, while the pod's other containers keep the managed one.",
        method: "The node file hosts holds `127.0.0.1 localhost` and a comment with a token; container own mounts it (hostPath type File) at /etc/hosts, container managed mounts nothing. `probe read-file /etc/hosts` in own must print the node file exactly; in managed it must not hold the token and must name the pod's hostname. Skipped when the runtime does not declare host-paths."),
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

/// A directory of the node under the suite's temp dir, for hostPath
/// volumes; what the suite or a Bidirectional container mounted under it is
/// unmounted, and the directory removed, when dropped (after the pods).
struct HostDir {
    dir: tempfile::TempDir,
}

impl HostDir {
    fn new(ctx: &Ctx) -> Result<HostDir, Outcome> {
        if !ctx.caps.host_paths {
            return Err(skip(
                "the runtime does not declare host-paths: its pods may not see this node's files",
            ));
        }
        let dir = tempfile::Builder::new()
            .prefix("podlab-conformance-hostpath-")
            .tempdir()
            .map_err(|e| fail(format!("a temp dir for hostPath volumes: {e}")))?;
        Ok(HostDir { dir })
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn mkdir(&self, rel: &str) -> Result<PathBuf, Outcome> {
        let p = self.path(rel);
        std::fs::create_dir_all(&p).map_err(|e| fail(format!("mkdir {}: {e}", p.display())))?;
        Ok(p)
    }

    fn write(&self, rel: &str, text: &str) -> Result<PathBuf, Outcome> {
        let p = self.path(rel);
        std::fs::write(&p, text).map_err(|e| fail(format!("write {}: {e}", p.display())))?;
        Ok(p)
    }

    /// `dir` bind-mounted on itself and made rshared, so mounts below it
    /// can propagate (critest prepares its propagation tests so).
    fn shared_mount(&self, rel: &str) -> Result<PathBuf, Outcome> {
        let p = self.mkdir(rel)?;
        let s = p.to_string_lossy().into_owned();
        node_mount(&["--bind", &s, &s])?;
        node_mount(&["--make-rshared", &s])?;
        Ok(p)
    }

    /// A tmpfs mounted at `rel` on the node.
    fn tmpfs(&self, rel: &str) -> Result<PathBuf, Outcome> {
        let p = self.mkdir(rel)?;
        node_mount(&["-t", "tmpfs", "podlab-conformance", &p.to_string_lossy()])?;
        Ok(p)
    }
}

impl Drop for HostDir {
    fn drop(&mut self) {
        // Deepest first: a mount may sit on a directory another one holds.
        let mut mounts: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
            .filter(|m| Path::new(m).starts_with(self.dir.path()))
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        for m in mounts {
            let _ = std::process::Command::new("umount")
                .args(["-l", &m])
                .status();
        }
    }
}

/// `mount ARGS` on the node.
fn node_mount(args: &[&str]) -> Check {
    let out = std::process::Command::new("mount")
        .args(args)
        .output()
        .map_err(|e| fail(format!("mount {}: {e}", args.join(" "))))?;
    if !out.status.success() {
        return Err(fail(format!(
            "mount {} on the node failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

fn host_path(name: &str, path: &Path, type_: &str) -> Value {
    json!({"name": name, "hostPath": {"path": path.to_string_lossy(), "type": type_}})
}

/// `probe write-file` must fail with `errno`.
fn write_refused(pod: &PodGuard, container: &str, path: &str, errno: &str, why: &str) -> Check {
    let v = pod.probe(container, &["write-file", path, "x"])?;
    if ok(&v) || error_name(&v) != errno {
        return Err(fail(format!(
            "writing {path} in container {container} of pod {} gave {v}, not {errno}: {why}",
            pod.name
        )));
    }
    Ok(())
}

fn host_path_directory(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let host = HostDir::new(ctx)?;
    let dir = host.mkdir("shared")?;
    let token = ctx.token();
    host.write("shared/from-node", &token)?;
    let manifest = PodManifest::new(ctx, "vol-hostpath")
        .spec_field("volumes", json!([host_path("node-dir", &dir, "Directory")]))
        .container(with_mounts(ctx, "app", json!([mount("node-dir", "/host")])));
    let pod = PodGuard::start(rt, ctx, &manifest)?;
    expect_file(
        &pod,
        "app",
        "/host/from-node",
        &token,
        "the suite wrote it into the node directory the hostPath volume names",
    )?;
    let back = ctx.token();
    write(&pod, "app", "/host/from-pod", &back)?;
    let seen = std::fs::read_to_string(dir.join("from-pod")).unwrap_or_default();
    if seen != back {
        return Err(fail(format!(
            "container app of pod {} wrote {back:?} to /host/from-pod, but the node's {} holds {seen:?}",
            pod.name,
            dir.join("from-pod").display()
        )));
    }
    Ok(())
}

fn host_path_symlink(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let host = HostDir::new(ctx)?;
    let real = host.mkdir("real")?;
    let token = ctx.token();
    host.write("real/marker", &token)?;
    let link = host.path("link");
    std::os::unix::fs::symlink(&real, &link).map_err(|e| fail(format!("symlink: {e}")))?;
    let manifest = PodManifest::new(ctx, "vol-hostlink")
        .spec_field("volumes", json!([host_path("node-link", &link, "")]))
        .container(with_mounts(
            ctx,
            "app",
            json!([mount("node-link", "/host")]),
        ));
    let pod = PodGuard::start(rt, ctx, &manifest)?;
    expect_file(
        &pod,
        "app",
        "/host/marker",
        &token,
        "the hostPath is a symlink to the node directory holding it",
    )
}

fn host_path_types(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let host = HostDir::new(ctx)?;
    let file = host.write("plain-file", "x")?;
    let bad = RawPod::create(
        rt,
        ctx,
        "vol-hosttype-bad",
        json!({
            "volumes": [host_path("not-a-dir", &file, "Directory")],
            "containers": [{"name": "app", "image": ctx.probe_image, "command": ["sleep", "3600"],
                "volumeMounts": [mount("not-a-dir", "/host")]}],
        }),
    );
    let (made_dir, made_file) = (host.path("made/dir"), host.path("made-file"));
    let manifest = PodManifest::new(ctx, "vol-hosttype")
        .spec_field(
            "volumes",
            json!([
                host_path("made-dir", &made_dir, "DirectoryOrCreate"),
                host_path("made-file", &made_file, "FileOrCreate"),
                host_path("null-dev", Path::new("/dev/null"), "CharDevice"),
            ]),
        )
        .container(with_mounts(
            ctx,
            "app",
            json!([
                mount("made-dir", "/dir"),
                mount("made-file", "/file"),
                mount("null-dev", "/null")
            ]),
        ));
    let pod = PodGuard::start(rt, ctx, &manifest)?;
    sh(
        &pod,
        "app",
        "test -d /dir && test -f /file && test -c /null",
    )?;
    if !made_dir.is_dir() || !made_file.is_file() {
        return Err(fail(format!(
            "pod {} runs, but on the node {} is a directory: {}, and {} a regular file: {} \
             (DirectoryOrCreate and FileOrCreate make them)",
            pod.name,
            made_dir.display(),
            made_dir.is_dir(),
            made_file.display(),
            made_file.is_file()
        )));
    }
    // A refusal at create time is a refusal.
    let Ok(bad) = bad else { return Ok(()) };
    let p = bad.rt.get_pod(&bad.name)?;
    let Some(p) = p else { return Ok(()) };
    let started = runtime::container_statuses(&p).iter().any(|c| {
        c.restart_count > 0
            || c.last_state
                .as_ref()
                .is_some_and(|s| s.terminated.is_some())
            || c.state
                .as_ref()
                .is_some_and(|s| s.running.is_some() || s.terminated.is_some())
    });
    if started {
        return Err(fail(format!(
            "pod {} mounts the regular file {} as a hostPath of type Directory, and its container \
             ran: {}",
            bad.name,
            file.display(),
            runtime::describe(&p)
        )));
    }
    Ok(())
}

/// What a propagation test observes: the node mounts a tmpfs at sub of a
/// shared hostPath after the container runs and writes sub/marker in it;
/// whether the container reads it. With `back`, the container then mounts
/// a tmpfs at back and writes back/marker, and the node must read it.
fn propagation(rt: &dyn Runtime, ctx: &Ctx, mode: &str, seen: bool, back: bool) -> Check {
    let host = HostDir::new(ctx)?;
    if back && !ctx.caps.privileged {
        return Err(skip("the runtime does not declare privileged containers"));
    }
    let dir = host.shared_mount("src")?;
    host.mkdir("src/sub")?;
    let manifest = PodManifest::new(ctx, &format!("vol-prop-{}", mode.to_lowercase()))
        .spec_field(
            "volumes",
            json!([host_path("node-shared", &dir, "Directory")]),
        )
        .container(
            with_mounts(
                ctx,
                "app",
                json!([{"name": "node-shared", "mountPath": "/host", "mountPropagation": mode}]),
            )
            .privileged(back),
        );
    let pod = PodGuard::start(rt, ctx, &manifest)?;
    host.tmpfs("src/sub")?;
    let token = ctx.token();
    host.write("src/sub/marker", &token)?;
    let v = pod.probe("app", &["read-file", "/host/sub/marker"])?;
    match (seen, ok(&v)) {
        (true, false) => {
            return Err(fail(format!(
            "the node mounted a tmpfs at sub of the hostPath of pod {} (mountPropagation {mode}) \
                 after its container started, and the container does not see it: \
                 /host/sub/marker gives {v}",
            pod.name
        )))
        }
        (false, true) => {
            return Err(fail(format!(
                "container app of pod {} (mountPropagation {mode}) sees the tmpfs the node mounted \
                 in its hostPath after it started: /host/sub/marker gives {v}",
                pod.name
            )))
        }
        _ => {}
    }
    if seen && v["data"] != token.as_str() {
        return Err(fail(format!(
            "/host/sub/marker in pod {} holds {v}, not the node's {token:?}",
            pod.name
        )));
    }
    if back {
        let mark = ctx.token();
        sh(
            &pod,
            "app",
            &format!("mkdir -p /host/back && mount -t tmpfs tmpfs /host/back && echo -n {mark} > /host/back/marker"),
        )?;
        let path = dir.join("back/marker");
        let deadline = Instant::now() + ctx.timeouts.exec;
        loop {
            if std::fs::read_to_string(&path).is_ok_and(|s| s == mark) {
                break;
            }
            if Instant::now() >= deadline {
                return Err(fail(format!(
                    "container app of pod {} (Bidirectional) mounted a tmpfs at /host/back and \
                     wrote back/marker there, but the node does not see it at {}",
                    pod.name,
                    path.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(())
}

fn propagation_none(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    propagation(rt, ctx, "None", false, false)
}

fn propagation_host_to_container(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    propagation(rt, ctx, "HostToContainer", true, false)
}

fn propagation_bidirectional(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    propagation(rt, ctx, "Bidirectional", true, true)
}

/// A hostPath directory with a tmpfs below it at sub, mounted readOnly
/// (recursively or not): the top refuses writes, sub as `sub_errno` says.
fn read_only(rt: &dyn Runtime, ctx: &Ctx, recursive: bool) -> Check {
    let host = HostDir::new(ctx)?;
    let dir = host.mkdir("ro")?;
    host.tmpfs("ro/sub")?;
    let mut m = json!({"name": "node-ro", "mountPath": "/host", "readOnly": true});
    if recursive {
        m["recursiveReadOnly"] = json!("Enabled");
    }
    let manifest = PodManifest::new(ctx, if recursive { "vol-rro" } else { "vol-ro" })
        .spec_field("volumes", json!([host_path("node-ro", &dir, "Directory")]))
        .container(with_mounts(ctx, "app", json!([m])));
    let pod = PodGuard::start(rt, ctx, &manifest)?;
    write_refused(
        &pod,
        "app",
        "/host/top",
        "EROFS",
        "the hostPath is mounted with readOnly: true",
    )?;
    if recursive {
        write_refused(
            &pod,
            "app",
            "/host/sub/f",
            "EROFS",
            "the tmpfs at sub is below a mount with recursiveReadOnly: Enabled",
        )
    } else {
        let v = pod.probe("app", &["write-file", "/host/sub/f", "x"])?;
        if !ok(&v) {
            return Err(fail(format!(
                "the node's tmpfs below the readOnly hostPath of pod {} (no recursiveReadOnly) \
                 refuses writes: {v}; only the volume's own mount is read-only",
                pod.name
            )));
        }
        Ok(())
    }
}

fn read_only_not_recursive(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    read_only(rt, ctx, false)
}

fn read_only_recursive(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    read_only(rt, ctx, true)
}

fn recursive_read_only_refused(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let host = HostDir::new(ctx)?;
    let dir = host.mkdir("rro")?;
    let cases = [
        ("writable", false, None, false),
        ("host-to-container", true, Some("HostToContainer"), false),
        ("bidirectional", true, Some("Bidirectional"), true),
    ];
    let mut pods = Vec::new();
    for (what, read_only, propagation, privileged) in cases {
        if privileged && !ctx.caps.privileged {
            continue;
        }
        let mut m = json!({"name": "node-rro", "mountPath": "/host", "readOnly": read_only,
            "recursiveReadOnly": "Enabled"});
        if let Some(p) = propagation {
            m["mountPropagation"] = json!(p);
        }
        let spec = json!({
            "volumes": [host_path("node-rro", &dir, "Directory")],
            "containers": [{"name": "app", "image": ctx.probe_image, "command": ["sleep", "3600"],
                "securityContext": {"privileged": privileged}, "volumeMounts": [m]}],
        });
        if let Ok(pod) = RawPod::create(rt, ctx, &format!("vol-rro-{what}"), spec) {
            pods.push((what, pod));
        }
    }
    let deadline = Instant::now() + ctx.timeouts.start;
    for (what, pod) in &pods {
        while let Some(p) = rt.get_pod(&pod.name)? {
            let statuses = runtime::container_statuses(&p);
            if statuses.iter().any(|c| {
                c.state
                    .as_ref()
                    .is_some_and(|s| s.running.is_some() || s.terminated.is_some())
            }) {
                return Err(fail(format!(
                    "pod {} mounts a hostPath with recursiveReadOnly Enabled ({what}) and its \
                     container was started: {}",
                    pod.name,
                    runtime::describe(&p)
                )));
            }
            let refused = statuses.iter().any(|c| {
                let reason = c
                    .state
                    .as_ref()
                    .and_then(|s| s.waiting.as_ref())
                    .and_then(|w| w.reason.clone())
                    .unwrap_or_default();
                reason.contains("Config") || reason.ends_with("Error")
            });
            if refused {
                break;
            }
            if Instant::now() >= deadline {
                return Err(fail(format!(
                    "pod {} mounts a hostPath with recursiveReadOnly Enabled ({what}) and was \
                     accepted, with no refusal shown: {}",
                    pod.name,
                    runtime::describe(&p)
                )));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    Ok(())
}

fn host_path_over_etc_hosts(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let host = HostDir::new(ctx)?;
    let token = ctx.token();
    let text = format!("127.0.0.1\tlocalhost\n# node file {token}\n");
    let file = host.write("hosts", &text)?;
    let manifest = PodManifest::new(ctx, "vol-etchosts")
        .spec_field("volumes", json!([host_path("node-hosts", &file, "File")]))
        .container(with_mounts(
            ctx,
            "own",
            json!([mount("node-hosts", "/etc/hosts")]),
        ))
        .container(ContainerSpec::new(ctx, "managed"));
    let pod = PodGuard::start(rt, ctx, &manifest)?;
    expect_file(
        &pod,
        "own",
        "/etc/hosts",
        &text,
        "the container mounts the node's file there through a hostPath volume",
    )?;
    let hostname = sh(&pod, "managed", "hostname")?;
    let v = pod.probe("managed", &["read-file", "/etc/hosts"])?;
    let managed = v["data"].as_str().unwrap_or_default();
    if !ok(&v) || managed.contains(&token) || !managed.contains(&hostname) {
        return Err(fail(format!(
            "container managed of pod {} mounts nothing at /etc/hosts, so it must keep the pod's \
             managed file naming its hostname {hostname:?}, not the node file another container \
             mounts: {v}",
            pod.name
        )));
    }
    Ok(())
}
