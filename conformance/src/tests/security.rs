//! A container's securityContext as its processes see it in
//! /proc/self/status and the filesystem: ids and groups, no_new_privs, a
//! read-only root, capabilities added and dropped, and what a container
//! that is not privileged may not see; seccomp as the kubelet asks for it
//! (none, Unconfined, Localhost profiles from the node, privileged
//! containers without a filter); users and groups from the image's
//! /etc/passwd and /etc/group. (The restricted profile, RuntimeDefault,
//! runAsNonRoot, the pod/container override and fsGroup are ESC-020 to
//! ESC-025; devices are ESC-010 to ESC-013.)

use serde_json::{json, Value};

use crate::pods::{error_name, ok, ContainerSpec, PodGuard, PodManifest};
use crate::runtime::{self, Runtime};
use crate::suite::{fail, skip, Check, Ctx, Outcome, TestCase};

pub const CASES: &[TestCase] = &[
    case!("SEC-001", ids_and_groups_apply,
        must: "A container's main process and every process exec'd into it MUST run with the uid of runAsUser, the gid of runAsGroup and the supplementalGroups among their groups.",
        method: "The pod sets runAsUser 1234, runAsGroup 2345 and supplementalGroups [3456, 4567]; `probe caps --pid 1` and an exec'd `probe caps` read Uid, Gid and Groups of /proc/PID/status: uid 1234, gid 2345, and groups holding 3456 and 4567."),
    case!("SEC-002", no_new_privs_follows_allow_privilege_escalation,
        must: "A container with allowPrivilegeEscalation: false MUST run its processes with no_new_privs set, and a container that is not privileged and sets it true or leaves it unset MUST NOT.",
        method: "Containers closed (allowPrivilegeEscalation: false), open (true) and plain (unset), all root and not privileged; `probe caps --pid 1` and an exec'd `probe caps` read NoNewPrivs of /proc/PID/status: 1 in closed, 0 in open and plain."),
    case!("SEC-003", read_only_root_refuses_writes,
        must: "A container with readOnlyRootFilesystem: true MUST get EROFS when it writes to its root filesystem, while its volumes stay writable.",
        method: "Container app (root, readOnlyRootFilesystem: true) mounts an emptyDir at /data; container plain has the same mount and a writable root. `probe write-file /sec-ro x` must fail with EROFS in app and succeed in plain, and `probe write-file /data/f x` must succeed in app."),
    case!("SEC-004", capabilities_add_and_drop,
        must: "capabilities.add MUST add the named capabilities to the effective set of a container's processes and capabilities.drop MUST remove them, ALL meaning every one.",
        method: "Root containers add (add NET_ADMIN), drop (drop CHOWN), none (drop ALL) and plain (nothing); `probe caps --pid 1` and an exec'd `probe caps` read CapEff: NET_ADMIN (bit 12) set in add and clear in plain, CHOWN (bit 0) clear in drop and set in plain, and no bit at all in none."),
    case!("SEC-005", unprivileged_sees_masked_kernel,
        must: "A container that is not privileged MUST run without CAP_SYS_ADMIN, see the masked paths of the OCI default (/proc/kcore, /proc/keys, /proc/timer_list, /sys/firmware and the rest) empty, and get EROFS when it writes to /proc/sys.",
        method: "In a root container that is not privileged, `probe caps` must show bit 21 (SYS_ADMIN) clear in CapEff and CapBnd; a shell reads each of /proc/acpi, /proc/asound, /proc/kcore, /proc/keys, /proc/latency_stats, /proc/timer_list, /proc/timer_stats, /proc/sched_debug, /proc/scsi, /sys/firmware and /sys/devices/virtual/powercap: an absent one passes, a directory must list nothing, a file must have size 0 and give no bytes; writing /proc/sys/kernel/domainname's own value back must fail with EROFS."),
    case!("SEC-006", privileged_holds_every_capability,
        must: "A privileged container MUST hold every capability the kernel knows in its effective and bounding sets, and see unmasked the paths an unprivileged container has masked.",
        method: "A privileged container reads /proc/sys/kernel/cap_last_cap (N); `probe caps --pid 1` and an exec'd `probe caps` must show CapEff and CapBnd equal to the N+1 low bits (less what the suite's own bounding set lacks, when pods run on its kernel: a runtime cannot give what the node does not have); /proc/timer_list must give bytes when read. Skipped when the runtime does not declare privileged containers."),
    case!("SEC-007", add_all_gives_every_capability,
        must: "A container that is not privileged and adds ALL to its capabilities MUST hold every capability the kernel knows in its effective set.",
        method: "A root container, not privileged, with capabilities.add [ALL] reads /proc/sys/kernel/cap_last_cap (N); `probe caps --pid 1` and an exec'd `probe caps` must show CapEff equal to the N+1 low bits (less what the suite's own bounding set lacks, when pods run on its kernel)."),
    case!("SEC-008", no_profile_runs_unconfined,
        must: "A container for which neither the pod nor the container sets a seccompProfile MUST run unconfined, as the kubelet runs it by default.",
        method: "A container with no securityContext in a pod with none; `probe caps --pid 1` and an exec'd `probe caps` read the Seccomp field of /proc/PID/status: it must be 0 (no filter) for both."),
    case!("SEC-009", unconfined_with_sys_admin_sets_hostname,
        must: "A container with seccompProfile Unconfined and SYS_ADMIN added MUST run without a seccomp filter and be able to set the pod's hostname.",
        method: "A root container with seccompProfile Unconfined and capabilities.add [SYS_ADMIN]; an exec'd `probe caps` must read Seccomp 0 and `probe sethostname NAME` (a random name) must succeed, after which `probe hostname` must read NAME."),
    case!("SEC-010", localhost_profile_applies,
        must: "A container with seccompProfile Localhost MUST run under the profile read from the node, so that a profile denying sethostname makes it fail with EPERM even with SYS_ADMIN.",
        method: "The suite writes, in the directory where the runtime reads Localhost profiles, a profile (OCI seccomp JSON) allowing every call but sethostname, which gets SCMP_ACT_ERRNO; a root container with capabilities.add [SYS_ADMIN] and that profile as its seccompProfile must read Seccomp 2 in `probe caps --pid 1` and an exec'd `probe caps`, and `probe sethostname NAME` must fail with EPERM. Skipped when the runtime does not declare where it reads Localhost profiles."),
    case!("SEC-011", privileged_ignores_localhost_profile,
        must: "A privileged container MUST run without the seccomp filter its seccompProfile names, a Localhost profile included.",
        method: "With the profile of SEC-010 (sethostname denied), a privileged container with that profile as its seccompProfile must read Seccomp 0 in an exec'd `probe caps`, and `probe sethostname NAME` must succeed. Skipped when the runtime does not declare privileged containers or where it reads Localhost profiles."),
    case!("SEC-012", missing_localhost_profile_never_runs,
        must: "A container whose seccompProfile Localhost names a profile the node does not have MUST NOT run: the pod is refused or the container waits with reason CreateContainerError or CreateContainerConfigError.",
        method: "Creates a pod whose container names a Localhost profile that does not exist in the runtime's profile directory; the pod must be refused at creation, or its container must reach waiting with reason CreateContainerError or CreateContainerConfigError without ever being reported running. Skipped when the runtime does not declare where it reads Localhost profiles."),
    case!("SEC-013", image_user_name_resolves,
        must: "A container whose image's User is a user name MUST run as that user's uid and primary gid from the image's /etc/passwd.",
        method: "Runs the named fixture image (User `app`, which only its own /etc/passwd maps to uid 5678 and gid 8765) with no securityContext; `probe caps --pid 1` and an exec'd `probe caps` must read uid 5678 and gid 8765."),
    case!("SEC-014", image_groups_merge,
        must: "Unless the pod's supplementalGroupsPolicy is Strict, a container MUST hold, besides the pod's supplementalGroups, the groups its image's /etc/group gives its user.",
        method: "Runs the named fixture image (User `app`, a member of group extra, gid 9753, in the image's /etc/group) in a pod with supplementalGroups [3456] and no supplementalGroupsPolicy; `probe caps --pid 1` and an exec'd `probe caps` must read gid 8765 and list groups 9753 and 3456."),
    case!("SEC-015", strict_groups_leave_out_the_image,
        must: "With supplementalGroupsPolicy Strict, a container MUST hold only its primary group, the pod's supplementalGroups and fsGroup, none of the groups its image's /etc/group gives its user.",
        method: "Runs the named fixture image in a pod with supplementalGroups [3456] and supplementalGroupsPolicy Strict; `probe caps --pid 1` and an exec'd `probe caps` must read gid 8765 and list group 3456, and not 9753."),
];

/// Bit numbers from linux/capability.h.
const CAP_CHOWN: u32 = 0;
const CAP_NET_ADMIN: u32 = 12;
const CAP_SYS_ADMIN: u32 = 21;

/// Paths the OCI runtime default masks (runc's and containerd's lists).
const MASKED: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

fn with_context(ctx: &Ctx, name: &str, sc: Value) -> ContainerSpec {
    ContainerSpec::new(ctx, name).field("securityContext", sc)
}

/// `probe caps` of the container's main process and of an exec'd one.
fn caps_both(pod: &PodGuard, container: &str) -> Result<[(&'static str, Value); 2], Outcome> {
    Ok([
        (
            "the main process",
            pod.probe(container, &["caps", "--pid", "1"])?,
        ),
        ("an exec'd process", pod.probe(container, &["caps"])?),
    ])
}

/// A capability set of /proc/PID/status as a number.
fn cap_set(v: &Value, field: &str) -> Result<u64, Outcome> {
    v[field]
        .as_str()
        .and_then(|s| u64::from_str_radix(s, 16).ok())
        .ok_or_else(|| fail(format!("no hexadecimal {field} in probe output {v}")))
}

fn has(set: u64, bit: u32) -> bool {
    set & (1 << bit) != 0
}

fn ids_and_groups_apply(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let manifest = PodManifest::sleepers(ctx, "sec-ids", &["app"]).spec_field(
        "securityContext",
        json!({"runAsUser": 1234, "runAsGroup": 2345, "supplementalGroups": [3456, 4567]}),
    );
    let pod = PodGuard::start(rt, ctx, &manifest)?;
    for (whose, v) in caps_both(&pod, "app")? {
        let groups = v["groups"].as_array().cloned().unwrap_or_default();
        let missing: Vec<u64> = [3456, 4567]
            .into_iter()
            .filter(|g| !groups.contains(&json!(g)))
            .collect();
        if v["uid"] != 1234 || v["gid"] != 2345 || !missing.is_empty() {
            return Err(fail(format!(
                "{whose} of container app in pod {} has uid {}, gid {} and groups {} instead of runAsUser 1234, \
                 runAsGroup 2345 and supplementalGroups 3456 and 4567 ({v})",
                pod.name, v["uid"], v["gid"], v["groups"]
            )));
        }
    }
    Ok(())
}

fn no_new_privs_follows_allow_privilege_escalation(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let manifest = PodManifest::new(ctx, "sec-nnp")
        .container(with_context(
            ctx,
            "closed",
            json!({"allowPrivilegeEscalation": false}),
        ))
        .container(with_context(
            ctx,
            "open",
            json!({"allowPrivilegeEscalation": true}),
        ))
        .container(ContainerSpec::new(ctx, "plain"));
    let pod = PodGuard::start(rt, ctx, &manifest)?;
    for (container, want) in [("closed", 1), ("open", 0), ("plain", 0)] {
        for (whose, v) in caps_both(&pod, container)? {
            if v["NoNewPrivs"] != want {
                return Err(fail(format!(
                    "{whose} of container {container} in pod {} has NoNewPrivs {} instead of {want} ({v})",
                    pod.name, v["NoNewPrivs"]
                )));
            }
        }
    }
    Ok(())
}

fn read_only_root_refuses_writes(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let mounts = json!([{"name": "rofs-data", "mountPath": "/data"}]);
    let manifest = PodManifest::new(ctx, "sec-rofs")
        .spec_field("volumes", json!([{"name": "rofs-data", "emptyDir": {}}]))
        .container(
            with_context(ctx, "app", json!({"readOnlyRootFilesystem": true}))
                .field("volumeMounts", mounts.clone()),
        )
        .container(ContainerSpec::new(ctx, "plain").field("volumeMounts", mounts));
    let pod = PodGuard::start(rt, ctx, &manifest)?;
    let v = pod.probe("app", &["write-file", "/sec-ro", "x"])?;
    if ok(&v) || error_name(&v) != "EROFS" {
        return Err(fail(format!(
            "writing /sec-ro in container app of pod {} with readOnlyRootFilesystem gave {v} instead of EROFS",
            pod.name
        )));
    }
    let v = pod.probe("plain", &["write-file", "/sec-ro", "x"])?;
    if !ok(&v) {
        return Err(fail(format!(
            "container plain of pod {} cannot write /sec-ro in its writable root either, so app's refusal \
             tells nothing: {v}",
            pod.name
        )));
    }
    let v = pod.probe("app", &["write-file", "/data/f", "x"])?;
    if !ok(&v) {
        return Err(fail(format!(
            "container app of pod {} with readOnlyRootFilesystem cannot write its emptyDir at /data: {v}",
            pod.name
        )));
    }
    Ok(())
}

fn capabilities_add_and_drop(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let caps = |c: Value| json!({"capabilities": c});
    let manifest = PodManifest::new(ctx, "sec-caps")
        .container(with_context(
            ctx,
            "add",
            caps(json!({"add": ["NET_ADMIN"]})),
        ))
        .container(with_context(ctx, "drop", caps(json!({"drop": ["CHOWN"]}))))
        .container(with_context(ctx, "none", caps(json!({"drop": ["ALL"]}))))
        .container(ContainerSpec::new(ctx, "plain"));
    let pod = PodGuard::start(rt, ctx, &manifest)?;
    // (container, capability, bit, whether CapEff must hold it)
    let wants = [
        ("add", "NET_ADMIN", CAP_NET_ADMIN, true),
        ("plain", "NET_ADMIN", CAP_NET_ADMIN, false),
        ("drop", "CHOWN", CAP_CHOWN, false),
        ("plain", "CHOWN", CAP_CHOWN, true),
    ];
    for (container, name, bit, want) in wants {
        for (whose, v) in caps_both(&pod, container)? {
            if has(cap_set(&v, "CapEff")?, bit) != want {
                return Err(fail(format!(
                    "{whose} of container {container} in pod {} {} CAP_{name} in its effective set {}",
                    pod.name,
                    if want { "lacks" } else { "holds" },
                    v["CapEff"]
                )));
            }
        }
    }
    for (whose, v) in caps_both(&pod, "none")? {
        if cap_set(&v, "CapEff")? != 0 {
            return Err(fail(format!(
                "{whose} of container none in pod {} (drop ALL) holds effective capabilities {}",
                pod.name, v["CapEff"]
            )));
        }
    }
    Ok(())
}

/// For each path: `PATH absent`, `PATH dir ENTRIES` or `PATH file SIZE BYTES`
/// (size from stat, bytes read, up to 64).
fn look_at_paths(paths: &[&str]) -> String {
    let list = paths.join(" ");
    format!(
        "for p in {list}; do \
           if [ -d $p ]; then echo \"$p dir $(ls -A $p 2>/dev/null | wc -l)\"; \
           elif [ -e $p ]; then echo \"$p file $(stat -c %s $p) $(head -c 64 $p 2>/dev/null | wc -c)\"; \
           else echo \"$p absent\"; fi; \
         done"
    )
}

/// The lines of [`look_at_paths`] that show a path unmasked.
fn unmasked(listing: &str) -> Vec<String> {
    listing
        .lines()
        .filter(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                [_, "absent"] => false,
                [_, "dir", entries] => *entries != "0",
                [_, "file", size, bytes] => *size != "0" || *bytes != "0",
                _ => true,
            }
        })
        .map(str::to_string)
        .collect()
}

fn unprivileged_sees_masked_kernel(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let pod = PodGuard::start(rt, ctx, &PodManifest::sleepers(ctx, "sec-mask", &["app"]))?;
    let v = pod.probe("app", &["caps"])?;
    for set in ["CapEff", "CapBnd"] {
        if has(cap_set(&v, set)?, CAP_SYS_ADMIN) {
            return Err(fail(format!(
                "container app of pod {}, not privileged, holds CAP_SYS_ADMIN in {set} {}",
                pod.name, v[set]
            )));
        }
    }
    let out = pod.exec("app", &["sh", "-c", &look_at_paths(MASKED)])?;
    let shown = unmasked(&out.stdout);
    if out.exit_code != 0 || out.stdout.lines().count() != MASKED.len() || !shown.is_empty() {
        return Err(fail(format!(
            "container app of pod {}, not privileged, sees kernel paths the OCI default masks: {shown:?} \
             (shell exit {}, stdout {:?}, stderr {:?})",
            pod.name,
            out.exit_code,
            out.stdout,
            out.stderr.trim()
        )));
    }
    let path = "/proc/sys/kernel/domainname";
    let v = pod.probe("app", &["read-file", path])?;
    let current = v["data"].as_str().unwrap_or_default().trim().to_string();
    if !ok(&v) || current.is_empty() {
        return Err(fail(format!(
            "container app of pod {} cannot read {path}: {v}",
            pod.name
        )));
    }
    // Its own value: harmless should the write go through.
    let v = pod.probe("app", &["write-file", path, &current])?;
    if ok(&v) || error_name(&v) != "EROFS" {
        return Err(fail(format!(
            "writing {path} in container app of pod {}, not privileged, gave {v} instead of EROFS: \
             /proc/sys must be read-only",
            pod.name
        )));
    }
    Ok(())
}

fn privileged_holds_every_capability(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    if !ctx.caps.privileged {
        return Err(skip("the runtime does not declare privileged containers"));
    }
    let manifest = PodManifest::new(ctx, "sec-priv")
        .container(ContainerSpec::new(ctx, "app").privileged(true));
    let pod = PodGuard::start(rt, ctx, &manifest)?;
    let (last, all) = every_capability(&pod, ctx, "app")?;
    for (whose, v) in caps_both(&pod, "app")? {
        for set in ["CapEff", "CapBnd"] {
            let got = cap_set(&v, set)?;
            if got != all {
                return Err(fail(format!(
                    "{whose} of privileged container app in pod {} has {set} {got:016x}, not every \
                     capability up to {last} ({all:016x})",
                    pod.name
                )));
            }
        }
    }
    let out = pod.exec("app", &["sh", "-c", &look_at_paths(&["/proc/timer_list"])])?;
    if unmasked(&out.stdout).is_empty() {
        return Err(fail(format!(
            "privileged container app of pod {} sees /proc/timer_list masked ({:?})",
            pod.name,
            out.stdout.trim()
        )));
    }
    Ok(())
}

/// Every capability up to the kernel's last one (cap_last_cap read in the
/// pod's container), less what the suite's own bounding set lacks when
/// pods run on its kernel: a runtime cannot give what the node lacks.
fn every_capability(pod: &PodGuard, ctx: &Ctx, container: &str) -> Result<(u32, u64), Outcome> {
    let v = pod.probe(container, &["read-file", "/proc/sys/kernel/cap_last_cap"])?;
    let last: u32 = v["data"]
        .as_str()
        .and_then(|s| s.trim().parse().ok())
        .filter(|n| *n < 64)
        .ok_or_else(|| fail(format!("cannot read cap_last_cap in pod {}: {v}", pod.name)))?;
    let mut all = u64::MAX >> (63 - last);
    if ctx.caps.same_kernel {
        all &= node_bounding_set()?;
    }
    Ok((last, all))
}

/// The bounding set of the suite's own process.
fn node_bounding_set() -> Result<u64, Outcome> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| fail(format!("cannot read the suite's /proc/self/status: {e}")))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .ok_or_else(|| fail("no CapBnd in the suite's /proc/self/status"))
}

fn add_all_gives_every_capability(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let manifest = PodManifest::new(ctx, "sec-addall").container(with_context(
        ctx,
        "app",
        json!({"capabilities": {"add": ["ALL"]}}),
    ));
    let pod = PodGuard::start(rt, ctx, &manifest)?;
    let (last, all) = every_capability(&pod, ctx, "app")?;
    for (whose, v) in caps_both(&pod, "app")? {
        let got = cap_set(&v, "CapEff")?;
        if got != all {
            return Err(fail(format!(
                "{whose} of container app in pod {} (capabilities.add [ALL], not privileged) has \
                 CapEff {got:016x}, not every capability up to {last} ({all:016x})",
                pod.name
            )));
        }
    }
    Ok(())
}

/// The Seccomp mode of /proc/PID/status: 0 none, 2 filter.
fn seccomp_mode(pod: &PodGuard, container: &str, whose: &str, v: &Value, want: u64) -> Check {
    if v["Seccomp"] != want {
        return Err(fail(format!(
            "{whose} of container {container} in pod {} has Seccomp {} instead of {want} ({v})",
            pod.name, v["Seccomp"]
        )));
    }
    Ok(())
}

fn no_profile_runs_unconfined(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let pod = PodGuard::start(
        rt,
        ctx,
        &PodManifest::sleepers(ctx, "sec-nilprof", &["app"]),
    )?;
    for (whose, v) in caps_both(&pod, "app")? {
        seccomp_mode(&pod, "app", whose, &v, 0)?;
    }
    Ok(())
}

/// `probe sethostname` of a random name; the name, or the probe's answer
/// when the call failed.
fn set_hostname(
    pod: &PodGuard,
    ctx: &Ctx,
    container: &str,
) -> Result<Result<String, Value>, Outcome> {
    let wanted = format!("sec-{:08x}", ctx.random() as u32);
    let v = pod.probe(container, &["sethostname", &wanted])?;
    Ok(if ok(&v) { Ok(wanted) } else { Err(v) })
}

fn unconfined_with_sys_admin_sets_hostname(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let manifest = PodManifest::new(ctx, "sec-unconf").container(with_context(
        ctx,
        "app",
        json!({"seccompProfile": {"type": "Unconfined"}, "capabilities": {"add": ["SYS_ADMIN"]}}),
    ));
    let pod = PodGuard::start(rt, ctx, &manifest)?;
    let v = pod.probe("app", &["caps"])?;
    seccomp_mode(&pod, "app", "an exec'd process", &v, 0)?;
    let wanted = set_hostname(&pod, ctx, "app")?.map_err(|v| {
        fail(format!(
            "sethostname in container app of pod {} (Unconfined, SYS_ADMIN added) failed: {v}",
            pod.name
        ))
    })?;
    let v = pod.probe("app", &["hostname"])?;
    if v["hostname"] != wanted.as_str() {
        return Err(fail(format!(
            "container app of pod {} set its hostname to {wanted:?} but reads {}",
            pod.name, v["hostname"]
        )));
    }
    Ok(())
}

/// A seccomp profile (OCI JSON) allowing every call but sethostname.
const DENY_SETHOSTNAME: &str = r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["sethostname"], "action": "SCMP_ACT_ERRNO"}]}"#;

/// A Localhost profile the suite wrote where the runtime reads them;
/// removed when dropped.
struct LocalProfile {
    path: std::path::PathBuf,
    /// The localhostProfile value: the file's name under the root.
    name: String,
}

impl LocalProfile {
    fn write(ctx: &Ctx, text: &str) -> Result<LocalProfile, Outcome> {
        let Some(root) = ctx.caps.seccomp_root.as_ref() else {
            return Err(skip(
                "the runtime does not declare where it reads seccompProfile Localhost profiles",
            ));
        };
        std::fs::create_dir_all(root)
            .map_err(|e| fail(format!("cannot create {}: {e}", root.display())))?;
        let name = format!("podlab-conformance-{}.json", ctx.token());
        let path = root.join(&name);
        std::fs::write(&path, text)
            .map_err(|e| fail(format!("cannot write {}: {e}", path.display())))?;
        Ok(LocalProfile { path, name })
    }

    fn context(&self, extra: Value) -> Value {
        let mut sc =
            json!({"seccompProfile": {"type": "Localhost", "localhostProfile": self.name}});
        if let (Some(sc), Value::Object(extra)) = (sc.as_object_mut(), extra) {
            sc.extend(extra);
        }
        sc
    }
}

impl Drop for LocalProfile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn localhost_profile_applies(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let profile = LocalProfile::write(ctx, DENY_SETHOSTNAME)?;
    let manifest = PodManifest::new(ctx, "sec-local").container(with_context(
        ctx,
        "app",
        profile.context(json!({"capabilities": {"add": ["SYS_ADMIN"]}})),
    ));
    let pod = PodGuard::start(rt, ctx, &manifest)?;
    for (whose, v) in caps_both(&pod, "app")? {
        seccomp_mode(&pod, "app", whose, &v, 2)?;
    }
    match set_hostname(&pod, ctx, "app")? {
        Err(v) if error_name(&v) == "EPERM" => Ok(()),
        Err(v) => Err(fail(format!(
            "sethostname in container app of pod {} under a Localhost profile denying it failed \
             with {v}, not EPERM",
            pod.name
        ))),
        Ok(name) => Err(fail(format!(
            "container app of pod {} set its hostname to {name:?} although its Localhost profile \
             {} denies sethostname: the profile was not applied",
            pod.name, profile.name
        ))),
    }
}

fn privileged_ignores_localhost_profile(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    if !ctx.caps.privileged {
        return Err(skip("the runtime does not declare privileged containers"));
    }
    let profile = LocalProfile::write(ctx, DENY_SETHOSTNAME)?;
    let manifest = PodManifest::new(ctx, "sec-localpriv").container(with_context(
        ctx,
        "app",
        profile.context(json!({"privileged": true})),
    ));
    let pod = PodGuard::start(rt, ctx, &manifest)?;
    let v = pod.probe("app", &["caps"])?;
    seccomp_mode(&pod, "app", "an exec'd process", &v, 0)?;
    set_hostname(&pod, ctx, "app")?.map_err(|v| {
        fail(format!(
            "sethostname in privileged container app of pod {} failed ({v}): its Localhost \
             profile {} was applied although the container is privileged",
            pod.name, profile.name
        ))
    })?;
    Ok(())
}

fn missing_localhost_profile_never_runs(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let profile = LocalProfile::write(ctx, DENY_SETHOSTNAME)?;
    // The name of a profile that is not there: the one written, removed.
    let missing = profile.name.clone();
    drop(profile);
    let manifest = PodManifest::new(ctx, "sec-nolocal").container(with_context(
        ctx,
        "app",
        json!({"seccompProfile": {"type": "Localhost", "localhostProfile": missing}}),
    ));
    let guard = match PodGuard::create(rt, ctx, &manifest) {
        Ok(g) => g,
        // A refusal at creation is a correct answer too.
        Err(Outcome::Failed(_)) => return Ok(()),
        Err(other) => return Err(other),
    };
    runtime::wait_for(
        rt,
        &guard.name,
        "container app waiting with reason CreateContainerError or CreateContainerConfigError",
        ctx.timeouts.start,
        |p| {
            let statuses = runtime::container_statuses(p);
            let running = statuses
                .iter()
                .any(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()));
            if running || runtime::phase(p) == "Running" {
                return Some(Err(runtime::Error::Other(format!(
                    "the container runs although its Localhost profile {missing} does not exist: {}",
                    runtime::describe(p)
                ))));
            }
            let reason = statuses
                .iter()
                .find(|c| c.name == "app")
                .and_then(|c| c.state.as_ref()?.waiting.as_ref()?.reason.as_deref());
            matches!(
                reason,
                Some("CreateContainerError" | "CreateContainerConfigError")
            )
            .then_some(Ok(()))
        },
    )
    .map_err(|e| fail(format!("pod {}: {e}", guard.name)))
}

fn image_user_name_resolves(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let manifest = PodManifest::new(ctx, "sec-username")
        .container(ContainerSpec::new(ctx, "app").image(&ctx.fixture_image("named")));
    let pod = PodGuard::start(rt, ctx, &manifest)?;
    for (whose, v) in caps_both(&pod, "app")? {
        if v["uid"] != 5678 || v["gid"] != 8765 {
            return Err(fail(format!(
                "{whose} of container app in pod {} has uid {} and gid {}, not 5678 and 8765, \
                 which the image's /etc/passwd gives its User `app` ({v})",
                pod.name, v["uid"], v["gid"]
            )));
        }
    }
    Ok(())
}

/// The named image in a pod with supplementalGroups [3456] and `policy`;
/// the groups of its main process and of an exec'd one.
fn named_image_groups(
    rt: &dyn Runtime,
    ctx: &Ctx,
    prefix: &str,
    policy: Option<&str>,
    check: impl Fn(&[u64]) -> Option<String>,
) -> Check {
    // The primary group is the process's gid; /proc's Groups may or may not
    // repeat it, so it is checked apart.
    let mut sc = json!({"supplementalGroups": [3456]});
    if let Some(policy) = policy {
        sc["supplementalGroupsPolicy"] = json!(policy);
    }
    let manifest = PodManifest::new(ctx, prefix)
        .spec_field("securityContext", sc)
        .container(ContainerSpec::new(ctx, "app").image(&ctx.fixture_image("named")));
    let pod = PodGuard::start(rt, ctx, &manifest)?;
    for (whose, v) in caps_both(&pod, "app")? {
        let groups: Vec<u64> = v["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_u64)
            .collect();
        let why = if v["gid"] != 8765 {
            Some(format!(
                "its gid is {}, not 8765 (app's in the image)",
                v["gid"]
            ))
        } else {
            check(&groups)
        };
        if let Some(why) = why {
            return Err(fail(format!(
                "{whose} of container app in pod {} (User app of the named image, \
                 supplementalGroups [3456], supplementalGroupsPolicy {}) has groups {groups:?}: {why}",
                pod.name,
                policy.unwrap_or("unset")
            )));
        }
    }
    Ok(())
}

fn image_groups_merge(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    named_image_groups(rt, ctx, "sec-groups-merge", None, |groups| {
        let missing: Vec<u64> = [9753, 3456]
            .into_iter()
            .filter(|g| !groups.contains(g))
            .collect();
        (!missing.is_empty()).then(|| {
            format!("{missing:?} missing (9753 is the image's group extra, which lists app)")
        })
    })
}

fn strict_groups_leave_out_the_image(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    named_image_groups(rt, ctx, "sec-groups-strict", Some("Strict"), |groups| {
        if groups.contains(&9753) {
            Some("9753, the image's group extra, is there although the policy is Strict".into())
        } else if !groups.contains(&3456) {
            Some("3456 (supplementalGroups) is missing".into())
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masked_paths_are_told_from_listings() {
        let listing = "/proc/kcore file 0 0\n/proc/acpi dir 0\n/proc/scsi absent\n\
                       /proc/keys file 0 52\n/sys/firmware dir 3\n/proc/kcore file 140737471590400 0\n";
        assert_eq!(
            unmasked(listing),
            [
                "/proc/keys file 0 52",
                "/sys/firmware dir 3",
                "/proc/kcore file 140737471590400 0"
            ]
        );
        assert!(look_at_paths(&["/a", "/b"]).starts_with("for p in /a /b;"));
    }
}
