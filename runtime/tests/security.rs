//! A container cannot reach the host: containerd's default capabilities
//! unless securityContext says otherwise, no signal blocked or ignored,
//! the devices allowlist and its cgroups, Localhost seccomp profiles. No
//! inherited descriptors, masked and read-only kernel paths and no way to
//! the host's podlab binary are the suite's ISO-004, SEC-005 and ISO-005.

mod common;

use common::*;

fn caps(p: &Podlab, pod: &str, c: &str) -> serde_json::Value {
    p.probe(pod, c, &["caps"])
}

/// A plain, a locked-down and a privileged container of the probe image.
fn secure_pod(name: &str) -> String {
    PodManifest::named(name)
        .container(ContainerSpec::of("plain", PROBE))
        .container(ContainerSpec::of("locked", PROBE).fields_yaml(
            "securityContext:
  runAsUser: 1000
  allowPrivilegeEscalation: false
  capabilities: {drop: [ALL], add: [NET_ADMIN]}",
        ))
        .container(ContainerSpec::of("privileged", PROBE).privileged(true))
        .to_yaml()
}

#[test]
fn capabilities_follow_containerd_defaults_and_security_context() {
    require_root!();
    let p = Podlab::new();
    let a = unique("caps");
    let _g = p.pod(&a, &secure_pod(&a));
    // CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP
    // NET_BIND_SERVICE NET_RAW SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP
    let plain = caps(&p, &a, "plain");
    assert_eq!(plain["CapEff"], "00000000a80425fb", "{plain}");
    assert_eq!(plain["CapBnd"], "00000000a80425fb", "{plain}");
    assert_eq!(plain["CapInh"], "0000000000000000", "{plain}");
    assert_eq!(plain["NoNewPrivs"], 0);

    let locked = caps(&p, &a, "locked");
    assert_eq!(locked["uid"], 1000, "{locked}");
    assert_eq!(
        locked["CapBnd"], "0000000000001000",
        "only NET_ADMIN may stay: {locked}"
    );
    assert_eq!(
        locked["CapEff"], "0000000000000000",
        "a non-root user has no effective caps: {locked}"
    );
    assert_eq!(locked["NoNewPrivs"], 1, "{locked}");

    let privileged = caps(&p, &a, "privileged");
    let eff = u64::from_str_radix(privileged["CapEff"].as_str().unwrap(), 16).unwrap();
    assert!(
        eff & (1 << 21) != 0,
        "privileged lacks CAP_SYS_ADMIN: {privileged}"
    );
    // SEC-005 checks that /proc/sys is read-only without privileges.
    let out = p.exec(
        &a,
        "privileged",
        &["sh", "-c", "echo podlab > /proc/sys/kernel/domainname"],
    );
    assert!(
        out.status.success(),
        "privileged containers see /proc/sys as the host does: {out:?}"
    );
}

#[test]
fn containers_start_with_no_signal_blocked_or_ignored() {
    require_root!();
    let p = Podlab::new();
    let a = unique("sigmask");
    let _g = p.pod(&a, &secure_pod(&a));
    // A past bug: the shim's signalfd mask (SIGCHLD SIGTERM SIGINT) reached
    // containers, which then never saw the SIGTERM of a delete; and podlab's
    // own ignored SIGPIPE survived the exec.
    let main = p.probe(&a, "plain", &["caps", "--pid", "1"]);
    assert_eq!(main["SigBlk"], "0000000000000000", "{main}");
    assert_eq!(main["SigIgn"], "0000000000000000", "{main}");
    let exec = caps(&p, &a, "plain");
    assert_eq!(exec["SigBlk"], "0000000000000000", "{exec}");
}

/// The devices cgroup (v1) of one leaf of a pod: its devices.list lines.
fn device_list(uid: &str, leaf: &str) -> std::collections::BTreeSet<String> {
    let file = std::path::Path::new("/sys/fs/cgroup/devices/podlab")
        .join(format!("pod-{uid}"))
        .join(leaf)
        .join("devices.list");
    std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Issue 21: mknod + open of a host device (tty1 here) is refused with
/// EPERM unless the container is privileged; devices.list of the pause and
/// of an ordinary container is the allowlist, a privileged one's `a *:* rwm`;
/// gc after a lost shim (and delete) removes the devices cgroups.
#[test]
fn devices_follow_the_allowlist_and_their_cgroups_go_with_the_pod() {
    require_root!();
    if !std::path::Path::new("/sys/fs/cgroup/devices").is_dir() {
        eprintln!("skipping: no cgroup v1 devices hierarchy on this host");
        return;
    }
    let p = Podlab::new();
    let a = unique("devices");
    let _g = p.pod(&a, &secure_pod(&a));
    let uid = p.uid(&a);
    let allowlist: std::collections::BTreeSet<String> = [
        "c *:* m",
        "b *:* m",
        "c 1:3 rwm",
        "c 1:5 rwm",
        "c 1:7 rwm",
        "c 1:8 rwm",
        "c 1:9 rwm",
        "c 5:0 rwm",
        "c 5:1 rwm",
        "c 5:2 rwm",
        "c 136:* rwm",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    assert_eq!(device_list(&uid, "pause"), allowlist);
    assert_eq!(device_list(&uid, "ctr-plain"), allowlist);
    assert_eq!(device_list(&uid, "ctr-locked"), allowlist);
    assert_eq!(
        device_list(&uid, "ctr-privileged"),
        ["a *:* rwm".to_owned()].into_iter().collect()
    );

    let plain = p.probe(&a, "plain", &["mknod-open", "c", "4", "1"]);
    assert_eq!(plain["ok"], false, "tty1 opened: {plain}");
    assert_eq!(plain["stage"], "open", "{plain}");
    assert_eq!(plain["error"], "EPERM", "{plain}");
    let null = p.probe(&a, "plain", &["mknod-open", "c", "1", "3"]);
    assert_eq!(null["ok"], true, "{null}");
    let privileged = p.probe(&a, "privileged", &["mknod-open", "c", "4", "1"]);
    assert_eq!(privileged["ok"], true, "{privileged}");

    // A lost shim: gc releases the pod, devices cgroups included.
    let shim: serde_json::Value =
        serde_json::from_slice(&std::fs::read(p.pod_dir(&a).join("shim.json")).unwrap()).unwrap();
    let shim_pid = shim["pid"].as_i64().unwrap();
    // SAFETY: kill(2) of the shim this test's podlab started.
    unsafe { libc::kill(shim_pid as i32, libc::SIGKILL) };
    assert!(
        eventually(std::time::Duration::from_secs(10), || (!alive(shim_pid))
            .then_some(()))
        .is_some(),
        "the shim survived SIGKILL"
    );
    let gc = p.run(&["gc"]);
    assert!(gc.status.success(), "{gc:?}");
    let devices_pod =
        std::path::Path::new("/sys/fs/cgroup/devices/podlab").join(format!("pod-{uid}"));
    assert!(!devices_pod.exists(), "gc left {}", devices_pod.display());
    assert!(p.run(&["delete", "pod", &a]).status.success());
    assert_eq!(leftovers(&uid, &p.pod_dir(&a)), Vec::<String>::new());
}

/// A Localhost seccomp profile from `--seccomp-root`, installed after
/// no_new_privs (allowPrivilegeEscalation: false) in the main process and
/// in exec'd ones; the pod's sysctls set in its own namespaces only.
#[test]
fn localhost_seccomp_profiles_and_namespaced_sysctls() {
    require_root!();
    let p = Podlab::new();
    let profiles = p.root.path().join("seccomp");
    std::fs::create_dir_all(profiles.join("team")).unwrap();
    std::fs::write(
        profiles.join("team/no-mkdir.json"),
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}"#,
    )
    .unwrap();
    let a = unique("local");
    let manifest = format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {a}\nspec:\n  terminationGracePeriodSeconds: 0\n  \
         securityContext:\n    sysctls: [{{name: kernel.shm_rmid_forced, value: \"1\"}}, {{name: net.ipv4.ip_unprivileged_port_start, value: \"81\"}}]\n  \
         containers:\n  - name: app\n    image: podlab.local/probe:latest\n    command: [sleep, \"3600\"]\n    \
         securityContext:\n      allowPrivilegeEscalation: false\n      seccompProfile: {{type: Localhost, localhostProfile: team/no-mkdir.json}}\n"
    );
    let out = p
        .cmd()
        .arg("--seccomp-root")
        .arg(&profiles)
        .args(["apply", "-f", "-", "--wait-ready=60s"])
        .write_stdin(manifest)
        .output()
        .expect("apply");
    let _g = PodGuard {
        podlab: &p,
        name: a.clone(),
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let caps = p.probe(&a, "app", &["caps", "--pid", "1"]);
    assert_eq!(
        (caps["Seccomp"].clone(), caps["NoNewPrivs"].clone()),
        (2.into(), 1.into()),
        "{caps}"
    );
    let out = p.exec(&a, "app", &["mkdir", "/tmp/x"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
        "mkdir must get the profile's EACCES: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    p.exec_ok(&a, "app", &["touch", "/tmp/file"]);
    let inside = p.exec_ok(
        &a,
        "app",
        &[
            "cat",
            "/proc/sys/kernel/shm_rmid_forced",
            "/proc/sys/net/ipv4/ip_unprivileged_port_start",
        ],
    );
    assert_eq!(inside.split_whitespace().collect::<Vec<_>>(), ["1", "81"]);
    let host = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start").unwrap();
    assert_ne!(host.trim(), "81", "the node's own value must not change");
}
