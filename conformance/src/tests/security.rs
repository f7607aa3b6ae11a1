//! A container's securityContext as its processes see it in
//! /proc/self/status and the filesystem: ids and groups, no_new_privs, a
//! read-only root, capabilities added and dropped, and what a container
//! that is not privileged may not see. (The restricted profile, seccomp,
//! runAsNonRoot, the pod/container override and fsGroup are ESC-020 to
//! ESC-025; devices are ESC-010 to ESC-013.)

use serde_json::{json, Value};

use crate::pods::{error_name, ok, ContainerSpec, PodGuard, PodManifest};
use crate::runtime::Runtime;
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
    let v = pod.probe("app", &["read-file", "/proc/sys/kernel/cap_last_cap"])?;
    let last: u32 = v["data"]
        .as_str()
        .and_then(|s| s.trim().parse().ok())
        .filter(|n| *n < 64)
        .ok_or_else(|| fail(format!("cannot read cap_last_cap in pod {}: {v}", pod.name)))?;
    // A runtime cannot hand out what the node's own processes lack (no
    // CAP_SYS_RESOURCE on some machines): the suite's bounding set bounds it.
    let mut all = u64::MAX >> (63 - last);
    if ctx.caps.same_kernel {
        all &= node_bounding_set()?;
    }
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
