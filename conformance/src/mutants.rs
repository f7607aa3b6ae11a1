//! The suite tested by deliberately broken runtimes: each variant breaks
//! one pod property and names the tests written to catch it. A variant is
//! caught only when one of its own tests fails; failures elsewhere are
//! listed as collateral and catch nothing. The matrix runs, for each
//! variant, its own tests and a short smoke set, so its time grows with the
//! variants, not with variants × suite.

use std::fmt::Write as _;

/// A broken variant and the tests written to catch it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Variant {
    /// The value of `PODLAB_MUTANT`.
    pub name: &'static str,
    /// The IDs of the tests that must catch it.
    pub tests: &'static [&'static str],
    pub breaks: &'static str,
}

/// Run with every variant besides its own tests: quick tests of the pod's
/// basic properties, so a variant that breaks everything shows as
/// collateral instead of passing for a precise one.
pub const SMOKE: &[&str] = &["NET-001", "UTS-003", "LIFE-004"];

const fn v(name: &'static str, tests: &'static [&'static str], breaks: &'static str) -> Variant {
    Variant {
        name,
        tests,
        breaks,
    }
}

#[rustfmt::skip]
pub const VARIANTS: &[Variant] = &[
    v("no-shared-net", &["NET-001", "NET-003", "NET-004", "NET-005", "NET-007", "NET-009"],
      "each container gets its own network namespace"),
    v("no-shared-uts", &["UTS-003", "UTS-005"],
      "each container gets its own UTS namespace"),
    v("no-shared-ipc", &["IPC-001", "IPC-002", "IPC-003"],
      "each container gets its own IPC namespace"),
    v("private-shm", &["IPC-004"],
      "each container gets its own /dev/shm"),
    v("no-memory-limit", &["CGR-001", "CGR-004", "LIFE-009"],
      "container memory limits are not applied"),
    v("no-pids-limit", &["CGR-003", "CGR-005", "CGR-006"],
      "container pids limits are not applied"),
    v("no-cpu-limit", &["CGR-002", "CGR-007"],
      "container CPU limits are not applied"),
    v("early-running", &["LIFE-001", "LIFE-003", "LIFE-004", "LIFE-005"],
      "Running is reported as soon as the sandbox exists"),
    v("wrong-pod-ip", &["NET-004", "NET-011", "NET-012", "NET-013", "NET-014"],
      "status.podIP is not the address the pod has"),
    v("no-pod-ip", &["NET-004", "NET-011", "NET-012", "NET-013", "NET-014"],
      "pods get an address but status.podIP stays unset, while the adapter still declares pod-ip"),
    v("wrong-hostname", &["UTS-001", "UTS-002", "UTS-004"],
      "every pod's hostname is a fixed name instead of its own"),
    v("host-network-ignored", &["NET-015", "NET-016"],
      "a hostNetwork pod gets a network namespace of its own"),
    v("pods-in-host-netns", &["NET-002", "NET-006", "NET-008"],
      "pods that ask for no hostNetwork run in the node's network namespace"),
    v("host-ipc", &["IPC-005", "IPC-006", "IPC-007", "IPC-008"],
      "the pause keeps the node's IPC namespace, so pods share it with the host and each other"),
    v("shared-pid", &["ISO-002"],
      "containers share the pod's PID namespace without shareProcessNamespace"),
    v("init-unordered", &["LIFE-005", "LIFE-006"],
      "init containers start all at once and app containers do not wait for them"),
    v("restart-never-ignored", &["LIFE-007", "LIFE-008", "RESTART-001"],
      "restartPolicy Never and OnFailure behave like Always"),
    v("no-restart", &["LIFE-008", "LIFE-013", "RESTART-001", "RESTART-002"],
      "a container that exited is never restarted"),
    v("no-grace", &["LIFE-012"],
      "delete kills with SIGKILL at once, ignoring the grace period"),
    v("admit-all", &["LIFE-011"],
      "the scheduler admits every pod, whatever it requests"),
    v("oom-unreported", &["LIFE-009"],
      "an OOM kill is reported with reason Error instead of OOMKilled"),
    v("leak-host-fd", &["ISO-004"],
      "the container starts holding a host directory descriptor (runc CVE-2024-21626 class)"),
    v("runtime-in-container", &["ISO-005"],
      "the container's PID 1 stays the runtime binary, reachable through /proc/1/exe (runc CVE-2019-5736 class)"),
    v("signals-blocked", &["ISO-006", "LIFE-012"],
      "the container starts with the shim's signal mask: SIGTERM, SIGINT, SIGCHLD blocked"),
    v("subpath-follows-symlinks", &["ESC-001", "ESC-002", "ESC-003"],
      "a subPath is joined to its volume and mounted by path, following a symlink the pod planted out of the volume (Kubernetes CVE-2017-1002101 class)"),
    v("mount-target-host-path", &["ESC-004"],
      "a mount target is joined to the rootfs and mounted by host path, so a symlink planted in a shared volume sends the mount outside the container's root (runc CVE-2021-30465 class)"),
    v("no-device-cgroup", &["ESC-010", "ESC-011"],
      "no device rules: a container may mknod and open any host device (no devices cgroup, no device program)"),
    v("seccomp-ignored", &["ESC-021", "ESC-022", "ESC-024"],
      "no seccomp filter is installed, whatever seccompProfile says"),
    v("run-as-root", &["ESC-020", "ESC-024"],
      "runAsUser and runAsGroup are ignored: containers run as root"),
    v("non-root-unchecked", &["ESC-023"],
      "runAsNonRoot is never checked: a container whose user is root runs"),
    v("liveness-ignored", &["PROBE-001", "PROBE-003"],
      "a failing liveness probe never restarts the container"),
    v("readiness-ignored", &["PROBE-002", "PROBE-004"],
      "a container is ready as soon as it runs, whatever its readiness probe says"),
    v("startup-not-awaited", &["PROBE-003"],
      "liveness and readiness probes run before the startup probe succeeded"),
    v("post-start-not-awaited", &["HOOK-001"],
      "a container is reported running while its postStart hook still runs"),
    v("post-start-failure-ignored", &["HOOK-002"],
      "a failing postStart hook is ignored: the container keeps running"),
    v("pre-stop-ignored", &["HOOK-003"],
      "deleting a pod sends SIGTERM without running the preStop hooks"),
    v("wrong-exit-reason", &["RESTART-001"],
      "every ended run is recorded with reason Error, a clean exit too"),
    v("no-crash-backoff", &["RESTART-002"],
      "a failing container is restarted at once, every time, never held back in CrashLoopBackOff"),
    v("fs-group-ignored", &["ESC-025", "VOL-006"],
      "fsGroup is ignored: emptyDirs keep root's group and no container holds it"),
    v("no-storage-eviction", &["STOR-002", "STOR-003"],
      "no ephemeral-storage eviction: a pod past a container's ephemeral-storage limit or an emptyDir's sizeLimit keeps running"),
    v("unbounded-logs", &["STOR-001"],
      "container logs are never rotated: they grow without bound"),
    v("rootfs-kept-on-restart", &["STOR-004"],
      "a restarted container keeps the writable layer of its last run"),
    v("no-var-expansion", &["CMD-004", "CMD-005"],
      "$(VAR) references in env values, command and args stay as written"),
    v("image-entrypoint-ignored", &["CMD-001"],
      "without a command the image's Entrypoint is dropped: args or the image's Cmd run alone"),
    v("exec-without-env", &["EXEC-001"],
      "exec runs with an empty environment in /, not with the container's environment and working directory"),
    v("image-user-ignored", &["IMAGE-002", "EXEC-002", "SEC-013"],
      "the image's User is ignored: without runAsUser the container runs as root"),
    v("no-termination-message", &["TERM-001", "TERM-002", "TERM-003"],
      "the terminationMessagePath file is never read: no termination message"),
    v("deadline-ignored", &["DEADLINE-001"],
      "activeDeadlineSeconds is ignored: the pod runs on"),
    v("wrong-downward-value", &["DOWNWARD-001", "DOWNWARD-003"],
      "the downward API gives a wrong metadata.uid"),
    v("previous-log-lost", &["LOGS-002"],
      "a restart removes the previous run's log"),
    v("no-tmpfs-size", &["VOL-002"],
      "a medium Memory emptyDir's tmpfs gets the kernel's default size instead of its sizeLimit"),
    v("read-only-mount-writable", &["VOL-005"],
      "a volumeMount's readOnly: true is ignored"),
    v("caps-add-ignored", &["SEC-004", "SEC-007", "SEC-009"],
      "capabilities.add is ignored"),
    v("no-new-privs-ignored", &["SEC-002"],
      "allowPrivilegeEscalation: false does not set no_new_privs"),
    v("no-host-aliases", &["HOSTS-003"],
      "spec.hostAliases are left out of /etc/hosts"),
    v("unsafe-sysctl-allowed", &["SYSCTL-002"],
      "sysctls off the kubelet's safe list are set instead of refused"),
    v("host-pid-ignored", &["HOSTNS-001"],
      "hostPID is ignored: the pod gets its own PID namespace"),
    v("host-port-ignored", &["PORT-001"],
      "hostPort mappings are never set up"),
    v("port-conflict-admitted", &["PORT-002"],
      "the scheduler admits two pods asking for the same hostPort"),
    v("loopback-down", &["NET-005", "NET-007", "NET-009", "NET-010"],
      "the pod's loopback interface is never brought up"),
    v("propagation-ignored", &["VOL-011", "VOL-012"],
      "every volume mount is rprivate, whatever its mountPropagation"),
    v("recursive-read-only-ignored", &["VOL-014"],
      "a recursiveReadOnly mount leaves the mounts below it writable"),
    v("delete-keeps-idle", &["LIFE-014"],
      "deleting a pod none of whose app containers runs returns while the pod is still there"),
    v("init-failure-ignored", &["LIFE-015"],
      "an init container that exits non-zero counts as done and the app containers start"),
    v("exec-timeout-ignored", &["EXEC-004"],
      "an exec's timeout is ignored: the command runs on past it"),
    v("logs-first-container", &["LOGS-003"],
      "the log of any container of a pod is that of its first container"),
    v("localhost-profile-ignored", &["SEC-010", "SEC-012"],
      "a Localhost seccomp profile is treated as Unconfined"),
    v("privileged-seccomp-kept", &["SEC-011"],
      "a privileged container keeps its seccomp profile"),
    v("nil-profile-confined", &["SEC-008"],
      "a container without any seccompProfile runs under RuntimeDefault"),
    v("image-groups-ignored", &["SEC-014"],
      "the groups the image's /etc/group gives the user are left out"),
    v("strict-groups-ignored", &["SEC-015"],
      "supplementalGroupsPolicy Strict is ignored: the image's groups are merged"),
    v("never-pulls-anyway", &["IMAGE-004"],
      "imagePullPolicy Never pulls a missing image as IfNotPresent would"),
    v("always-keeps-stored", &["IMAGE-006"],
      "imagePullPolicy Always keeps the stored image: a new digest under the tag is never pulled"),
];

/// The tests a variant's run needs among `selected`: its own and the
/// smoke set. Empty when none of its own tests is selected (a focused run
/// leaves the variant out).
pub fn tests_for<'a>(variant: &Variant, selected: &[&'a str]) -> Vec<&'a str> {
    if !selected.iter().any(|id| variant.tests.contains(id)) {
        return Vec::new();
    }
    selected
        .iter()
        .filter(|id| variant.tests.contains(id) || SMOKE.contains(id))
        .copied()
        .collect()
}

/// The failed test IDs of one run of the suite against a variant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VariantRun {
    pub variant: Variant,
    pub failed: Vec<String>,
}

impl VariantRun {
    /// The variant's own tests that failed.
    pub fn caught_by(&self) -> Vec<&str> {
        self.failed
            .iter()
            .filter(|id| self.variant.tests.contains(&id.as_str()))
            .map(String::as_str)
            .collect()
    }

    /// Caught when at least one of its own tests failed.
    pub fn caught(&self) -> bool {
        !self.caught_by().is_empty()
    }

    /// Failures of other tests: they fail for a property the variant was
    /// not meant to break, and catch nothing.
    pub fn collateral(&self) -> Vec<&str> {
        self.failed
            .iter()
            .filter(|id| !self.variant.tests.contains(&id.as_str()))
            .map(String::as_str)
            .collect()
    }
}

/// The matrix: one row per variant with its own tests that failed (what
/// catches it), a note for the other failures (collateral), the unbroken
/// baseline's failures, and the score as the last line.
pub fn matrix(baseline_failed: &[String], runs: &[VariantRun]) -> String {
    let width = runs
        .iter()
        .map(|r| r.variant.name.len())
        .chain(["(none: baseline)".len()])
        .max()
        .unwrap_or(0);
    let mut out = format!("{:<width$}  {:<6}  OWN TESTS FAILED\n", "VARIANT", "CAUGHT");
    let baseline = if baseline_failed.is_empty() {
        "-".to_string()
    } else {
        baseline_failed.join(" ")
    };
    let _ = writeln!(
        out,
        "{:<width$}  {:<6}  {baseline}",
        "(none: baseline)",
        if baseline_failed.is_empty() {
            "ok"
        } else {
            "BROKEN"
        }
    );
    for r in runs {
        let own = r.caught_by();
        let failed = if own.is_empty() {
            "-".to_string()
        } else {
            own.join(" ")
        };
        let _ = writeln!(
            out,
            "{:<width$}  {:<6}  {failed}",
            r.variant.name,
            if r.caught() { "yes" } else { "NO" }
        );
    }
    for r in runs {
        let collateral = r.collateral();
        if !collateral.is_empty() {
            let _ = writeln!(
                out,
                "collateral: {} also failed {} (not its own tests: they catch nothing)",
                r.variant.name,
                collateral.join(" ")
            );
        }
        if !r.caught() {
            let _ = writeln!(
                out,
                "missed: {} ({}) — none of its own tests ({}) failed",
                r.variant.name,
                r.variant.breaks,
                r.variant.tests.join(" ")
            );
        }
    }
    if !baseline_failed.is_empty() {
        let _ = writeln!(
            out,
            "the unbroken runtime failed {}: the matrix proves nothing until it passes",
            baseline_failed.join(" ")
        );
    }
    let caught = runs.iter().filter(|r| r.caught()).count();
    let _ = writeln!(out, "mutation score: {caught}/{}", runs.len());
    out
}

/// Success: a clean baseline and every variant caught.
pub fn all_caught(baseline_failed: &[String], runs: &[VariantRun]) -> bool {
    baseline_failed.is_empty() && !runs.is_empty() && runs.iter().all(VariantRun::caught)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(name: &str, failed: &[&str]) -> VariantRun {
        VariantRun {
            variant: *VARIANTS.iter().find(|v| v.name == name).unwrap(),
            failed: failed.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn matrix_format() {
        let runs = vec![
            run("no-shared-net", &["NET-001", "NET-003", "NET-005"]),
            run("private-shm", &["IPC-004", "ISO-001"]),
            run("no-cpu-limit", &[]),
            // Caught only by collateral failures: not caught.
            run("no-grace", &["NET-001", "LIFE-004"]),
        ];
        insta::assert_snapshot!(matrix(&[], &runs));
        assert!(!all_caught(&[], &runs));
        assert!(!runs[3].caught());
        assert_eq!(runs[3].collateral(), ["NET-001", "LIFE-004"]);
    }

    #[test]
    fn a_variant_runs_its_own_tests_and_the_smoke_set() {
        let grace = VARIANTS.iter().find(|v| v.name == "no-grace").unwrap();
        let all = ["NET-001", "NET-002", "UTS-003", "LIFE-004", "LIFE-012"];
        assert_eq!(
            tests_for(grace, &all),
            ["NET-001", "UTS-003", "LIFE-004", "LIFE-012"]
        );
        // A focus without its own tests leaves the variant out.
        assert!(tests_for(grace, &["NET-001", "NET-002"]).is_empty());
    }

    #[test]
    fn every_variant_names_real_tests_and_every_family_has_a_variant() {
        let all = crate::tests::all();
        let ids: Vec<&str> = all.iter().map(|c| c.id).collect();
        for v in VARIANTS {
            assert!(!v.tests.is_empty(), "{} names no test", v.name);
            for t in v.tests {
                assert!(
                    ids.contains(t),
                    "{} names {t}, not a test of the suite",
                    v.name
                );
            }
        }
        for smoke in SMOKE {
            assert!(ids.contains(smoke), "smoke test {smoke} is not a test");
        }
        let families: std::collections::BTreeSet<&str> =
            ids.iter().filter_map(|id| id.split('-').next()).collect();
        for family in families {
            assert!(
                VARIANTS
                    .iter()
                    .any(|v| v.tests.iter().any(|t| t.starts_with(&format!("{family}-")))),
                "no variant is written to be caught by the {family} tests"
            );
        }
    }

    /// podlab's list of mutants (runtime/src/mutants.rs) and this one are
    /// the same set of names.
    #[test]
    fn the_runtime_and_the_suite_list_the_same_variants() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../runtime/src/mutants.rs");
        let text = std::fs::read_to_string(&path).unwrap();
        let all = text.split("pub const ALL").nth(1).expect("Mutant::ALL");
        let body = all.split("];").next().unwrap();
        // Every string literal of the array is a name (rustfmt may break a
        // long entry over lines).
        let mut runtime: Vec<&str> = body.split('"').skip(1).step_by(2).collect();
        runtime.sort();
        let mut suite: Vec<&str> = VARIANTS.iter().map(|v| v.name).collect();
        suite.sort();
        assert_eq!(runtime, suite);
        assert!(suite.len() >= 24);
    }

    #[test]
    fn a_broken_baseline_is_reported_and_fails() {
        let runs = vec![run("early-running", &["LIFE-003"])];
        let text = matrix(&["NET-005".to_string()], &runs);
        assert!(text.contains("BROKEN"), "{text}");
        assert!(text.ends_with("mutation score: 1/1\n"), "{text}");
        assert!(!all_caught(&["NET-005".to_string()], &runs));
        assert!(all_caught(&[], &runs));
        assert!(!all_caught(&[], &[]));
    }

    #[test]
    fn variant_names_are_unique() {
        let mut names: Vec<&str> = VARIANTS.iter().map(|v| v.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), VARIANTS.len());
        assert!(VARIANTS.len() >= 24);
    }
}
