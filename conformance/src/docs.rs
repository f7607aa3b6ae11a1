//! docs/conformance.md, generated from the registry so it cannot drift
//! from the tests (`conformance --gen-docs docs/conformance.md`).

use std::fmt::Write as _;

use crate::mutants::VARIANTS;
use crate::suite::TestCase;

/// Family prefix → heading.
const FAMILIES: &[(&str, &str)] = &[
    ("NET", "Network namespace"),
    ("UTS", "UTS namespace and hostname"),
    ("IPC", "IPC namespace and /dev/shm"),
    ("ISO", "Isolation between the containers of a pod"),
    ("CGR", "Cgroups: per-container limits and their enforcement"),
    ("LIFE", "Lifecycle"),
    ("PROBE", "Probes: startup, liveness and readiness"),
    ("HOOK", "Lifecycle hooks: postStart and preStop"),
    (
        "RESTART",
        "Restart policies, exit reasons and the crash back-off",
    ),
    ("ESC", "Escapes: attacks on the way out of a pod"),
    (
        "STOR",
        "Storage: ephemeral-storage limits, emptyDir size limits, writable layers",
    ),
    (
        "CMD",
        "Command and args against the image, working directory, environment, $(VAR) references",
    ),
    (
        "EXEC",
        "exec: the container's environment, user and working directory",
    ),
    (
        "IMAGE",
        "Images: pull policy Never, the image config's User and WorkingDir",
    ),
    ("TERM", "Termination messages"),
    ("DEADLINE", "activeDeadlineSeconds"),
    (
        "DOWNWARD",
        "The downward API: environment variables and volumes",
    ),
    ("LOGS", "Container logs: both streams, the previous run"),
    (
        "VOL",
        "Volumes: emptyDir sharing, medium, mode, subPath, readOnly and fsGroup",
    ),
    (
        "SEC",
        "Security context: ids, no_new_privs, read-only root, capabilities, masked paths",
    ),
    ("HOSTS", "/etc/hosts and /etc/resolv.conf"),
    (
        "SYSCTL",
        "Sysctls: the safe set inside the pod, the rest refused",
    ),
    ("HOSTNS", "Host namespaces: hostPID and hostIPC"),
    (
        "PORT",
        "Host ports: hostPort and the scheduler's port conflicts",
    ),
];

/// Family prefix → the Kubernetes documentation of the behaviour its tests
/// check: what a runtime that fails one of them deviates from.
const KUBERNETES_DOCS: &[(&str, &str, &str)] = &[
    ("NET", "Pods: resource sharing and communication", "https://kubernetes.io/docs/concepts/workloads/pods/#resource-sharing-and-communication"),
    ("UTS", "DNS for Services and Pods: a Pod's hostname", "https://kubernetes.io/docs/concepts/services-networking/dns-pod-service/#pod-s-hostname-and-subdomain-fields"),
    ("IPC", "Pods: resource sharing and communication", "https://kubernetes.io/docs/concepts/workloads/pods/#resource-sharing-and-communication"),
    ("ISO", "Share Process Namespace between Containers in a Pod", "https://kubernetes.io/docs/tasks/configure-pod-container/share-process-namespace/"),
    ("CGR", "Resource Management for Pods and Containers", "https://kubernetes.io/docs/concepts/configuration/manage-resources-containers/"),
    ("LIFE", "Pod Lifecycle", "https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/"),
    ("PROBE", "Configure Liveness, Readiness and Startup Probes", "https://kubernetes.io/docs/tasks/configure-pod-container/configure-liveness-readiness-startup-probes/"),
    ("HOOK", "Container Lifecycle Hooks", "https://kubernetes.io/docs/concepts/containers/container-lifecycle-hooks/"),
    ("RESTART", "Pod Lifecycle: container restart policy", "https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#restart-policy"),
    ("ESC", "Configure a Security Context for a Pod or Container", "https://kubernetes.io/docs/tasks/configure-pod-container/security-context/"),
    ("STOR", "Resource Management: local ephemeral storage", "https://kubernetes.io/docs/concepts/configuration/manage-resources-containers/#local-ephemeral-storage"),
    ("CMD", "Define a Command and Arguments for a Container", "https://kubernetes.io/docs/tasks/inject-data-application/define-command-argument-container/"),
    ("EXEC", "Get a Shell to a Running Container", "https://kubernetes.io/docs/tasks/debug/debug-application/get-shell-running-container/"),
    ("IMAGE", "Images", "https://kubernetes.io/docs/concepts/containers/images/"),
    ("TERM", "Determine the Reason for Pod Failure", "https://kubernetes.io/docs/tasks/debug/debug-application/determine-reason-pod-failure/"),
    ("DEADLINE", "Pod API: activeDeadlineSeconds", "https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/#lifecycle"),
    ("DOWNWARD", "Downward API", "https://kubernetes.io/docs/concepts/workloads/pods/downward-api/"),
    ("LOGS", "Logging Architecture", "https://kubernetes.io/docs/concepts/cluster-administration/logging/"),
    ("VOL", "Volumes: emptyDir", "https://kubernetes.io/docs/concepts/storage/volumes/#emptydir"),
    ("SEC", "Configure a Security Context for a Pod or Container", "https://kubernetes.io/docs/tasks/configure-pod-container/security-context/"),
    ("HOSTS", "Adding entries to Pod /etc/hosts with HostAliases", "https://kubernetes.io/docs/tasks/network/customize-hosts-file-for-pods/"),
    ("SYSCTL", "Using sysctls in a Kubernetes Cluster", "https://kubernetes.io/docs/tasks/administer-cluster/sysctl-cluster/"),
    ("HOSTNS", "Pod API: hostPID and hostIPC", "https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/#security-context"),
    ("PORT", "Pod API: container ports and hostPort", "https://kubernetes.io/docs/reference/kubernetes-api/workload-resources/pod-v1/#ports"),
];

/// The Kubernetes documentation of the behaviour test `id` checks, as a
/// Markdown link.
pub fn kubernetes_doc(id: &str) -> Option<String> {
    let family = id.split('-').next()?;
    KUBERNETES_DOCS
        .iter()
        .find(|(f, _, _)| *f == family)
        .map(|(_, title, url)| format!("[{title}]({url})"))
}

pub fn generate(cases: &[TestCase]) -> String {
    let mut md = String::from(
        "# Pod conformance tests\n\n\
         <!-- Generated by `conformance --gen-docs docs/conformance.md`; do not edit. -->\n\n\
         Each test checks one property of a Kubernetes pod, stated as one MUST sentence, \
         against any runtime through an adapter (`conformance/src/runtime.rs`). \
         A test passes, fails with a diagnosis, or is skipped with the reason \
         (something the runtime or host does not offer).\n\n\
         Run: `conformance --runtime podlab [--podlab-bin PATH] [--image-root DIR] \
         [--focus PATTERN] [--skip PATTERN] [--list] [--report DIR] [--mutants]`. \
         PATTERN is not a regular expression: it is substrings separated by `|`, \
         matched without case against each test's ID and MUST sentence \
         (`--focus 'NET-00|UTS-001'`).\n\n\
         Reports go to `--report DIR` (default `target/conformance/<runtime>/`): `results.json` \
         (id, status, reason, must, duration_ms per test), `junit.xml` and `report.md`. \
         Exit status: 0 when the results match the runtime's expectations \
         (`conformance/expectations/<runtime>.json`: every failure and every skip is one the \
         file records with its reason, and nothing it records as failing passed or as skipping \
         ran) and the run left nothing behind; 1 otherwise (an unexpected failure or skip, a \
         stale record, or pods, network namespaces or cgroups left behind); 2 on usage errors; \
         3 when no test ran (nothing selected, or everything skipped).\n\n\
         Another runtime plugs in by implementing the `Runtime` trait: create a pod from a \
         manifest, return it as a v1 Pod, exec in a named container, delete it, and declare \
         its `Capabilities`. A test skips only when the runtime does not declare what it needs, \
         or for a fact of the host (named in the reason); a runtime that declares a capability \
         and does not deliver it fails. Inside the containers the tests run \
         the probe (`fixtures/probe`), which prints one JSON object per command.\n",
    );
    let _ = writeln!(md, "\n{} tests.", cases.len());
    // The list is compiled in and checked by its unit tests; a broken one
    // still yields a document, which then differs from the checked-in one.
    let anchors = crate::anchors::load();
    match &anchors {
        Ok(a) => md.push_str(&a.coverage_markdown()),
        Err(e) => {
            let _ = writeln!(md, "\n{}", podlab_kube::error::chain(e));
        }
    }
    for (prefix, title) in FAMILIES {
        let family: Vec<&TestCase> = cases
            .iter()
            .filter(|c| c.id.split('-').next() == Some(prefix))
            .collect();
        if family.is_empty() {
            continue;
        }
        let _ = writeln!(md, "\n## {title}\n");
        for c in family {
            let _ = writeln!(md, "### {}\n\n**{}**\n\n{}\n", c.id, c.must, c.method);
            if let Ok(a) = &anchors {
                let _ = writeln!(md, "{}\n", a.line_for(c.id));
            }
        }
    }
    md.push_str(&format!(
        "## The suite is tested too\n\n\
         `conformance --runtime podlab --mutants` runs the suite against a podlab built with the \
         `mutants` feature, once unbroken (every selected test must pass) and then, for each \
         variant below, with `PODLAB_MUTANT` set, the tests written to catch it plus the smoke \
         set ({}). A variant is caught only when one of its own tests fails; other failures are \
         listed as collateral and catch nothing. It prints the matrix of variants and the own \
         tests that failed, ends with `mutation score: K/N`, and exits non-zero unless every \
         variant is caught. With `--focus`, only the variants with a selected test run; \
         `--variants PATTERN` runs only the variants whose name or description matches \
         (`--mutants --variants 'subpath-follows|mount-target'`).\n\n\
         | Variant | What it breaks | Caught by |\n|---|---|---|\n",
        crate::mutants::SMOKE.join(", ")
    ));
    for v in VARIANTS {
        let _ = writeln!(
            md,
            "| `{}` | {} | {} |",
            v.name,
            v.breaks,
            v.tests.join(" ")
        );
    }
    md
}

/// A runtime that declares `caps` and refuses every pod: a test that
/// skips against it skips because of a capability, before making a pod.
struct Refuses(crate::runtime::Capabilities);

impl crate::runtime::Runtime for Refuses {
    fn name(&self) -> &str {
        "capability-probe"
    }
    fn capabilities(&self) -> crate::runtime::Capabilities {
        self.0.clone()
    }
    fn probe_image(&self) -> String {
        "podlab.local/probe:latest".into()
    }
    fn create_pod(&self, _: &str) -> Result<(), crate::runtime::Error> {
        Err(crate::runtime::Error::Other(
            "this runtime makes no pods".into(),
        ))
    }
    fn get_pod(
        &self,
        _: &str,
    ) -> Result<Option<k8s_openapi::api::core::v1::Pod>, crate::runtime::Error> {
        Ok(None)
    }
    fn exec(
        &self,
        _: &str,
        _: &str,
        _: &[String],
        _: std::time::Duration,
    ) -> Result<crate::runtime::ExecOutput, crate::runtime::Error> {
        Err(crate::runtime::Error::Other("no pods, no exec".into()))
    }
    fn delete_pod(&self, _: &str) -> Result<(), crate::runtime::Error> {
        Ok(())
    }
}

/// For each `--caps` name, the tests that skip when only it is withheld,
/// found by running every test against a runtime that declares everything
/// else and makes no pod. What the code checks is what the docs say.
pub fn gated_tests(cases: &[TestCase]) -> Vec<(&'static str, &'static str, Vec<&'static str>)> {
    use crate::adapters::cli::{parse_capabilities, CAPABILITY_NAMES};
    let names: Vec<&str> = CAPABILITY_NAMES
        .iter()
        .map(|(n, _)| {
            if n.starts_with("container-pids") {
                "container-pids=64"
            } else if n.starts_with("registry") {
                // Where nothing listens: a test that runs fails there.
                "registry=127.0.0.1:1"
            } else if n.starts_with("seccomp-root") {
                // Where nothing can be written: a test that runs fails
                // there, before it could leave a file.
                "seccomp-root=/proc/podlab-conformance-none"
            } else {
                n
            }
        })
        .collect();
    let mut out = Vec::new();
    for (i, (name, claim)) in CAPABILITY_NAMES.iter().enumerate() {
        let others: Vec<&str> = names
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, n)| *n)
            .collect();
        let Ok(caps) = parse_capabilities(&others.join(",")) else {
            continue;
        };
        let rt = Refuses(caps);
        let ctx = crate::suite::Ctx::new(&rt, crate::suite::Timeouts::default());
        let skipped = cases
            .iter()
            .filter(|c| matches!((c.run)(&rt, &ctx), crate::suite::Outcome::Skipped(_)))
            .map(|c| c.id)
            .collect();
        out.push((*name, *claim, skipped));
    }
    out
}

/// The capability table of docs/adapter-contract.md, between its markers.
pub fn capability_table(cases: &[TestCase]) -> String {
    let mut md =
        String::from("| `--caps` name | Claim | Tests that skip without it |\n|---|---|---|\n");
    for (name, claim, tests) in gated_tests(cases) {
        let tests = if tests.is_empty() {
            "—".to_string()
        } else {
            tests.join(", ")
        };
        let _ = writeln!(md, "| `{name}` | {claim} | {tests} |");
    }
    md.push_str("| `all` | every flag above except `container-pids` | |\n");
    md
}

pub const TABLE_BEGIN: &str =
    "<!-- capability table: generated by `conformance --gen-docs`; do not edit -->\n";
pub const TABLE_END: &str = "<!-- end of capability table -->\n";

/// `doc` with the text between the capability table's markers replaced.
pub fn splice_table(doc: &str, table: &str) -> Option<String> {
    let start = doc.find(TABLE_BEGIN)? + TABLE_BEGIN.len();
    let end = start + doc[start..].find(TABLE_END)?;
    Some(format!("{}{table}{}", &doc[..start], &doc[end..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_names_the_kubernetes_documentation_it_checks() {
        for (family, _) in FAMILIES {
            let doc = kubernetes_doc(&format!("{family}-001"));
            assert!(
                doc.as_deref()
                    .is_some_and(|d| d.contains("](https://kubernetes.io/docs/")),
                "{family}: {doc:?}"
            );
        }
        assert_eq!(
            KUBERNETES_DOCS.len(),
            FAMILIES.len(),
            "one entry per family"
        );
    }

    #[test]
    fn checked_in_docs_are_up_to_date() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/conformance.md");
        let checked_in = std::fs::read_to_string(path).unwrap_or_default();
        let generated = generate(&crate::tests::all());
        assert!(
            checked_in == generated,
            "docs/conformance.md is out of date: run `conformance --gen-docs docs/conformance.md`"
        );
    }

    #[test]
    fn the_capability_table_is_up_to_date_and_derived() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/adapter-contract.md");
        let doc = std::fs::read_to_string(path).unwrap();
        let cases = crate::tests::all();
        let fresh = splice_table(&doc, &capability_table(&cases)).expect("the table's markers");
        assert!(
            doc == fresh,
            "the capability table in docs/adapter-contract.md is out of date: run `conformance --gen-docs docs/conformance.md`"
        );
        let gated = gated_tests(&cases);
        let of = |name: &str| &gated.iter().find(|(n, _, _)| *n == name).unwrap().2;
        // What the issue that made this table found wrong by hand.
        for id in ["NET-004", "NET-011", "NET-012", "NET-013", "NET-014"] {
            assert!(
                of("pod-ip").contains(&id),
                "pod-ip gates {id}: {:?}",
                of("pod-ip")
            );
        }
        assert!(of("init-containers").contains(&"LIFE-005"));
    }

    #[test]
    fn every_family_has_a_heading() {
        for c in crate::tests::all() {
            let prefix = c.id.split('-').next().unwrap();
            assert!(FAMILIES.iter().any(|(p, _)| *p == prefix), "{}", c.id);
        }
    }
}
