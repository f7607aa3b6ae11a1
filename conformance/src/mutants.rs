//! The suite tested by deliberately broken runtimes: each variant breaks
//! one pod property; the suite must fail on every variant ("catch" it)
//! and pass on the unbroken runtime.

use std::fmt::Write as _;

/// A broken variant and the test family whose property it breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Variant {
    /// The value of `PODLAB_MUTANT`.
    pub name: &'static str,
    /// ID prefix of the tests expected to catch it, e.g. "NET-".
    pub family: &'static str,
    pub breaks: &'static str,
}

pub const VARIANTS: &[Variant] = &[
    Variant {
        name: "no-shared-net",
        family: "NET-",
        breaks: "each container gets its own network namespace",
    },
    Variant {
        name: "no-shared-uts",
        family: "UTS-",
        breaks: "each container gets its own UTS namespace",
    },
    Variant {
        name: "no-shared-ipc",
        family: "IPC-",
        breaks: "each container gets its own IPC namespace",
    },
    Variant {
        name: "private-shm",
        family: "IPC-",
        breaks: "each container gets its own /dev/shm",
    },
    Variant {
        name: "no-memory-limit",
        family: "CGR-",
        breaks: "container memory limits are not applied",
    },
    Variant {
        name: "no-pids-limit",
        family: "CGR-",
        breaks: "container pids limits are not applied",
    },
    Variant {
        name: "no-cpu-limit",
        family: "CGR-",
        breaks: "container CPU limits are not applied",
    },
    Variant {
        name: "early-running",
        family: "LIFE-",
        breaks: "Running is reported as soon as the sandbox exists",
    },
    Variant {
        name: "wrong-pod-ip",
        family: "NET-",
        breaks: "status.podIP is not the address the pod has",
    },
    Variant {
        name: "init-unordered",
        family: "LIFE-",
        breaks: "init containers start all at once and app containers do not wait for them",
    },
    Variant {
        name: "restart-never-ignored",
        family: "LIFE-",
        breaks: "restartPolicy Never and OnFailure behave like Always",
    },
    Variant {
        name: "no-restart",
        family: "LIFE-",
        breaks: "a container that exited is never restarted",
    },
    Variant {
        name: "no-grace",
        family: "LIFE-",
        breaks: "delete kills with SIGKILL at once, ignoring the grace period",
    },
    Variant {
        name: "admit-all",
        family: "LIFE-",
        breaks: "the scheduler admits every pod, whatever it requests",
    },
    Variant {
        name: "oom-unreported",
        family: "LIFE-",
        breaks: "an OOM kill is reported with reason Error instead of OOMKilled",
    },
    Variant {
        name: "leak-host-fd",
        family: "ISO-",
        breaks: "the container starts holding a host directory descriptor (runc CVE-2024-21626 class)",
    },
    Variant {
        name: "runtime-in-container",
        family: "ISO-",
        breaks: "the container's PID 1 stays the runtime binary, reachable through /proc/1/exe (runc CVE-2019-5736 class)",
    },
    Variant {
        name: "seccomp-ignored",
        family: "ESC-",
        breaks: "no seccomp filter is installed, whatever seccompProfile says",
    },
    Variant {
        name: "run-as-root",
        family: "ESC-",
        breaks: "runAsUser and runAsGroup are ignored: containers run as root",
    },
    Variant {
        name: "non-root-unchecked",
        family: "ESC-",
        breaks: "runAsNonRoot is never checked: a container whose user is root runs",
    },
    Variant {
        name: "fs-group-ignored",
        family: "ESC-",
        breaks: "fsGroup is ignored: emptyDirs keep root's group and no container holds it",
    },
    Variant {
        name: "signals-blocked",
        family: "ISO-",
        breaks: "the container starts with the shim's signal mask: SIGTERM, SIGINT, SIGCHLD blocked",
    },
];

/// The failed test IDs of one run of the suite against a variant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VariantRun {
    pub variant: Variant,
    pub failed: Vec<String>,
}

impl VariantRun {
    /// Caught when at least one test failed.
    pub fn caught(&self) -> bool {
        !self.failed.is_empty()
    }

    /// Failures outside the variant's family: tests that fail for a
    /// property the variant was not meant to break.
    pub fn collateral(&self) -> Vec<&str> {
        self.failed
            .iter()
            .filter(|id| !id.starts_with(self.variant.family))
            .map(String::as_str)
            .collect()
    }
}

/// The matrix: one row per variant with the IDs that failed, a note for
/// failures outside the variant's family, the unbroken baseline's
/// failures, and the score as the last line.
pub fn matrix(baseline_failed: &[String], runs: &[VariantRun]) -> String {
    let width = runs
        .iter()
        .map(|r| r.variant.name.len())
        .chain(["(none: baseline)".len()])
        .max()
        .unwrap_or(0);
    let mut out = format!("{:<width$}  {:<6}  FAILED TESTS\n", "VARIANT", "CAUGHT");
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
        let failed = if r.failed.is_empty() {
            "-".to_string()
        } else {
            r.failed.join(" ")
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
                "note: {} also failed {} (outside {}*)",
                r.variant.name,
                collateral.join(" "),
                r.variant.family
            );
        }
        if !r.caught() {
            let _ = writeln!(
                out,
                "missed: {} ({}) — no test failed",
                r.variant.name, r.variant.breaks
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
        ];
        insta::assert_snapshot!(matrix(&[], &runs));
        assert!(!all_caught(&[], &runs));
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
        assert!(VARIANTS.len() >= 8);
    }
}
