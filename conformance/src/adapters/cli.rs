//! The kubectl-compatible CLI adapter: drives any binary that implements
//! the subset of kubectl in docs/adapter-contract.md — real kubectl against
//! a cluster, podlab itself, or a student's runtime.
//!
//! The binary gets, in this order: the global arguments of
//! [`CliConfig::global_args`] (from `CONFORMANCE_CLI_ARGS`), `--context X`
//! when given, then the subcommand.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;

use crate::adapters::process::{check_status, run_with_timeout};
use crate::runtime::{Capabilities, Error, ExecOutput, PidsLimits, Runtime};

/// The environment variable holding global arguments for every call,
/// split on whitespace (no quoting), e.g. `--root /tmp/x --image-root /tmp/i`.
pub const ARGS_ENV: &str = "CONFORMANCE_CLI_ARGS";

/// How long apply, get and delete may take: a cluster may be remote.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Clone, Debug)]
pub struct CliConfig {
    /// The binary (a path, or a name looked up on PATH).
    pub bin: PathBuf,
    /// Arguments placed before every subcommand.
    pub global_args: Vec<String>,
    /// kubectl's `--context`, passed through when set.
    pub context: Option<String>,
    /// What the runtime behind the binary supports: the adapter cannot
    /// find out, so it is told (see [`parse_capabilities`]).
    pub capabilities: Capabilities,
    pub probe_image: String,
    /// Extra environment for every call.
    pub env: Vec<(String, String)>,
}

impl CliConfig {
    /// A configuration with conservative capabilities (nothing optional)
    /// and global arguments from [`ARGS_ENV`].
    pub fn new(bin: PathBuf) -> CliConfig {
        let global_args = std::env::var(ARGS_ENV)
            .map(|s| s.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default();
        CliConfig {
            bin,
            global_args,
            context: None,
            capabilities: Capabilities::default(),
            probe_image: "podlab.local/probe:latest".into(),
            env: Vec::new(),
        }
    }
}

/// The capability names `--caps` accepts, with what each one claims.
pub const CAPABILITY_NAMES: &[(&str, &str)] = &[
    ("pod-ip", "pods get status.podIP on a pod network"),
    ("privileged", "securityContext.privileged: true is accepted"),
    (
        "cgroup-visible",
        "containers can read their cgroup limits under /sys/fs/cgroup",
    ),
    (
        "pending-observable",
        "a pod with an unpullable image is reported Pending",
    ),
    (
        "share-process-namespace",
        "spec.shareProcessNamespace is honoured",
    ),
    (
        "same-kernel",
        "pods run on the kernel of the machine running the suite",
    ),
    (
        "node-reaches-pods",
        "the machine running the suite can connect to a pod's status.podIP",
    ),
    (
        "pod-pids",
        "pod-level spec.resources.limits.pids is honoured",
    ),
    (
        "init-containers",
        "spec.initContainers run in order to completion before the app containers",
    ),
    (
        "restart-policy",
        "restartPolicy Never/OnFailure are honoured; ended pods are Succeeded or Failed",
    ),
    (
        "unschedulable",
        "a pod requesting more than the node has stays Pending, reason Unschedulable",
    ),
    (
        "oom-reason",
        "an OOM-killed container is reported terminated with reason OOMKilled",
    ),
    (
        "probes",
        "startup, liveness and readiness probes run as the kubelet runs them",
    ),
    (
        "hooks",
        "postStart and preStop hooks run as the kubelet runs them",
    ),
    (
        "storage-eviction",
        "a pod past an ephemeral-storage limit or a disk emptyDir's sizeLimit is evicted",
    ),
    (
        "host-ports",
        "a container's hostPort is reachable from the node at 127.0.0.1",
    ),
    (
        "host-paths",
        "pods run on this node's filesystem and mount table, for hostPath volumes",
    ),
    (
        "exec-timeout",
        "exec --timeout=Ns (podlab's own flag) ends the command once N seconds pass",
    ),
    (
        "seccomp-root=DIR",
        "seccompProfile Localhost profiles are read from DIR on this machine",
    ),
    (
        "registry=HOST:PORT",
        "a registry on this machine the runtime pulls from over plain HTTP, holding the suite's images",
    ),
    (
        "container-pids=N",
        "every container gets a pids limit of N without asking",
    ),
];

/// Parses a comma-separated capability list (`pod-ip,same-kernel,container-pids=512`);
/// `all` enables every flag (but no container pids limit), `none` is the default.
pub fn parse_capabilities(list: &str) -> Result<Capabilities, String> {
    let mut caps = Capabilities::default();
    for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        match item {
            "none" => caps = Capabilities::default(),
            "all" => {
                caps = Capabilities {
                    pod_ip: true,
                    privileged: true,
                    cgroup_visible: true,
                    pending_observable: true,
                    share_process_namespace: true,
                    same_kernel: true,
                    node_reaches_pods: true,
                    pids: PidsLimits {
                        pod_field: true,
                        per_container: caps.pids.per_container,
                    },
                    init_containers: true,
                    restart_policy: true,
                    unschedulable: true,
                    oom_reason: true,
                    probes: true,
                    hooks: true,
                    storage_eviction: true,
                    log_bound: None,
                    host_ports: true,
                    host_paths: true,
                    exec_timeout: true,
                    seccomp_root: caps.seccomp_root.clone(),
                    registry: caps.registry.clone(),
                }
            }
            "pod-ip" => caps.pod_ip = true,
            "privileged" => caps.privileged = true,
            "cgroup-visible" => caps.cgroup_visible = true,
            "pending-observable" => caps.pending_observable = true,
            "share-process-namespace" => caps.share_process_namespace = true,
            "same-kernel" => caps.same_kernel = true,
            "node-reaches-pods" => caps.node_reaches_pods = true,
            "pod-pids" => caps.pids.pod_field = true,
            "init-containers" => caps.init_containers = true,
            "restart-policy" => caps.restart_policy = true,
            "unschedulable" => caps.unschedulable = true,
            "oom-reason" => caps.oom_reason = true,
            "probes" => caps.probes = true,
            "hooks" => caps.hooks = true,
            "storage-eviction" => caps.storage_eviction = true,
            "host-ports" => caps.host_ports = true,
            "host-paths" => caps.host_paths = true,
            "exec-timeout" => caps.exec_timeout = true,
            other if other.starts_with("registry=") => {
                let address = &other["registry=".len()..];
                if !address.contains(':') || address.contains('/') {
                    return Err(format!("registry needs HOST:PORT: {other}"));
                }
                caps.registry = Some(address.to_string());
            }
            other if other.starts_with("seccomp-root=") => {
                let dir = &other["seccomp-root=".len()..];
                if !dir.starts_with('/') {
                    return Err(format!("seccomp-root needs an absolute path: {other}"));
                }
                caps.seccomp_root = Some(PathBuf::from(dir));
            }
            other => match other.strip_prefix("container-pids=") {
                Some(n) => {
                    let n: u64 = n.parse().ok().filter(|&n| n > 0).ok_or_else(|| {
                        format!("container-pids needs a positive number: {other}")
                    })?;
                    caps.pids.per_container = Some(n);
                }
                None => {
                    let known: Vec<&str> = CAPABILITY_NAMES.iter().map(|(n, _)| *n).collect();
                    return Err(format!(
                        "unknown capability {other:?}; known: all, none, {}",
                        known.join(", ")
                    ));
                }
            },
        }
    }
    Ok(caps)
}

pub struct Cli {
    config: CliConfig,
    /// "cli-<file name of the binary>", for reports and expectations.
    name: String,
    /// Every pod this adapter created, to look for leftovers.
    created: Mutex<Vec<String>>,
}

impl Cli {
    pub fn new(config: CliConfig) -> Cli {
        let base = config
            .bin
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "binary".into());
        Cli::named(format!("cli-{base}"), config)
    }

    /// A CLI adapter reporting under `name` (an adapter built on this one).
    pub fn named(name: String, config: CliConfig) -> Cli {
        Cli {
            name,
            config,
            created: Mutex::new(Vec::new()),
        }
    }

    /// The whole argument list of one call: globals, context, subcommand.
    pub fn argv(&self, sub: &[&str]) -> Vec<String> {
        let mut argv = self.config.global_args.clone();
        if let Some(ctx) = &self.config.context {
            argv.push("--context".into());
            argv.push(ctx.clone());
        }
        argv.extend(sub.iter().map(|s| s.to_string()));
        argv
    }

    /// Runs one subcommand with optional stdin, within `timeout`.
    pub fn run(
        &self,
        sub: &[&str],
        stdin: Option<&str>,
        timeout: Duration,
    ) -> Result<ExecOutput, Error> {
        let shown = self.shown(sub);
        let mut cmd = Command::new(&self.config.bin);
        cmd.args(self.argv(sub));
        cmd.envs(self.config.env.iter().map(|(k, v)| (k, v)));
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        run_with_timeout(cmd, stdin, timeout, &shown)
    }

    fn shown(&self, sub: &[&str]) -> String {
        format!("{} {}", self.config.bin.display(), sub.join(" "))
    }
}

/// Whether a failed `get` said the pod does not exist (kubectl prints
/// `Error from server (NotFound): pods "x" not found`).
pub fn is_not_found(stderr: &str) -> bool {
    stderr.contains("NotFound") || stderr.contains("not found")
}

impl Runtime for Cli {
    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> Capabilities {
        self.config.capabilities.clone()
    }

    fn probe_image(&self) -> String {
        self.config.probe_image.clone()
    }

    fn create_pod(&self, manifest_yaml: &str) -> Result<(), Error> {
        if let Ok(v) = serde_norway::from_str::<serde_json::Value>(manifest_yaml) {
            if let Some(name) = v.pointer("/metadata/name").and_then(|n| n.as_str()) {
                self.created
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(name.to_string());
            }
        }
        let sub = ["apply", "-f", "-"];
        let out = self.run(&sub, Some(manifest_yaml), COMMAND_TIMEOUT)?;
        check_status(&out, &self.shown(&sub))
    }

    fn get_pod(&self, name: &str) -> Result<Option<Pod>, Error> {
        let sub = ["get", "pod", name, "-o", "json"];
        let out = self.run(&sub, None, COMMAND_TIMEOUT)?;
        if out.exit_code != 0 {
            if is_not_found(&out.stderr) {
                return Ok(None);
            }
            check_status(&out, &self.shown(&sub))?;
        }
        serde_json::from_str(&out.stdout)
            .map(Some)
            .map_err(|e| Error::Parse {
                command: self.shown(&sub),
                detail: e.to_string(),
            })
    }

    fn exec(
        &self,
        pod: &str,
        container: &str,
        argv: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput, Error> {
        let limit = format!("--timeout={}s", timeout.as_secs_f64().ceil().max(1.0));
        let mut sub = vec!["exec", pod, "-c", container];
        // The runtime ends the command itself; the adapter's own deadline,
        // later, only catches a binary that hangs.
        let deadline = if self.config.capabilities.exec_timeout {
            sub.push(&limit);
            timeout + Duration::from_secs(10)
        } else {
            timeout
        };
        sub.push("--");
        sub.extend(argv.iter().map(String::as_str));
        // The binary's exit status is the command's (kubectl exec's
        // contract); its own failures are statuses too, seen with stderr.
        self.run(&sub, None, deadline)
    }

    fn delete_pod(&self, name: &str) -> Result<(), Error> {
        let sub = [
            "delete",
            "pod",
            name,
            "--grace-period",
            "0",
            "--ignore-not-found",
        ];
        let out = self.run(&sub, None, COMMAND_TIMEOUT)?;
        check_status(&out, &self.shown(&sub))
    }

    /// `logs POD -c C [--tail N] [--previous]`.
    fn logs(
        &self,
        pod: &str,
        container: &str,
        tail: Option<usize>,
        previous: bool,
    ) -> Result<String, Error> {
        let tail = tail.map(|n| n.to_string());
        let mut sub = vec!["logs", pod, "-c", container];
        if let Some(n) = &tail {
            sub.extend(["--tail", n.as_str()]);
        }
        if previous {
            sub.push("--previous");
        }
        let out = self.run(&sub, None, COMMAND_TIMEOUT)?;
        check_status(&out, &self.shown(&sub))?;
        Ok(out.stdout)
    }

    /// kubectl's `delete --grace-period N` waits until the pod is gone.
    fn delete_pod_with_grace(&self, name: &str, seconds: u32) -> Result<(), Error> {
        let grace = seconds.to_string();
        let sub = [
            "delete",
            "pod",
            name,
            "--grace-period",
            &grace,
            "--ignore-not-found",
        ];
        let out = self.run(
            &sub,
            None,
            COMMAND_TIMEOUT + Duration::from_secs(seconds.into()),
        )?;
        check_status(&out, &self.shown(&sub))
    }

    /// The pods this run created that the binary still shows.
    fn leftovers(&self) -> Vec<String> {
        let names = self
            .created
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut left = Vec::new();
        for name in names {
            match self.get_pod(&name) {
                Ok(None) => {}
                Ok(Some(_)) => left.push(format!("{} still shows pod {name}", self.name)),
                Err(e) => left.push(format!("cannot tell whether pod {name} is gone: {e}")),
            }
        }
        left.sort();
        left.dedup();
        left
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn capabilities_parse() {
        assert_eq!(parse_capabilities("").unwrap(), Capabilities::default());
        let c = parse_capabilities("pod-ip, same-kernel,container-pids=512").unwrap();
        assert!(c.pod_ip && c.same_kernel && !c.privileged && !c.pids.pod_field);
        assert_eq!(c.pids.per_container, Some(512));
        let all = parse_capabilities("container-pids=64,all").unwrap();
        assert!(all.pending_observable && all.cgroup_visible && all.pids.pod_field);
        assert_eq!(all.pids.per_container, Some(64));
        assert_eq!(
            parse_capabilities("all,none").unwrap(),
            Capabilities::default()
        );
        assert!(parse_capabilities("container-pids=0").is_err());
        let r = parse_capabilities("registry=127.0.0.1:5000").unwrap();
        assert_eq!(r.registry.as_deref(), Some("127.0.0.1:5000"));
        assert!(parse_capabilities("registry=127.0.0.1").is_err());
        assert!(parse_capabilities("registry=http://127.0.0.1:5000").is_err());
        let err = parse_capabilities("pod_ip").unwrap_err();
        assert!(err.contains("unknown capability \"pod_ip\""), "{err}");
    }

    fn config(bin: PathBuf) -> CliConfig {
        CliConfig {
            bin,
            global_args: vec!["--root".into(), "/tmp/r".into()],
            context: Some("lab".into()),
            capabilities: Capabilities::default(),
            probe_image: "p".into(),
            env: Vec::new(),
        }
    }

    #[test]
    fn globals_and_context_come_before_the_subcommand() {
        let cli = Cli::new(config("/usr/local/bin/kubectl".into()));
        assert_eq!(cli.name(), "cli-kubectl");
        assert_eq!(
            cli.argv(&["get", "pod", "x"]),
            ["--root", "/tmp/r", "--context", "lab", "get", "pod", "x"]
        );
    }

    /// A fake kubectl in shell: logs its arguments and stdin, answers `get`
    /// from a file, and passes exec's exit status through.
    fn fake(dir: &std::path::Path) -> PathBuf {
        let bin = dir.join("fakectl");
        let script = format!(
            r#"#!/bin/sh
d={dir}
echo "$*" >> $d/log
while [ "$1" != get ] && [ "$1" != apply ] && [ "$1" != exec ] && [ "$1" != delete ]; do shift; done
case "$1" in
  apply) cat > $d/applied ;;
  get) if [ -f $d/pod.json ]; then cat $d/pod.json; else echo "Error from server (NotFound): pods \"$3\" not found" >&2; exit 1; fi ;;
  exec) shift 5; "$@" ;;
  delete) rm -f $d/pod.json ;;
esac
"#,
            dir = dir.display()
        );
        std::fs::write(&bin, script).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        bin
    }

    #[test]
    fn drives_a_kubectl_like_binary() {
        let dir = tempfile::tempdir().unwrap();
        let cli = Cli::new(config(fake(dir.path())));
        let manifest = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n";
        cli.create_pod(manifest).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("applied")).unwrap(),
            manifest
        );
        assert!(cli.get_pod("web").unwrap().is_none());
        std::fs::write(
            dir.path().join("pod.json"),
            r#"{"metadata":{"name":"web"},"status":{"phase":"Running"}}"#,
        )
        .unwrap();
        let pod = cli.get_pod("web").unwrap().unwrap();
        assert_eq!(crate::runtime::phase(&pod), "Running");
        assert_eq!(cli.leftovers(), ["cli-fakectl still shows pod web"]);

        let argv: Vec<String> = ["sh", "-c", "echo out; echo err >&2; exit 7"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let out = cli
            .exec("web", "app", &argv, Duration::from_secs(10))
            .unwrap();
        assert_eq!(
            (out.stdout.as_str(), out.stderr.as_str(), out.exit_code),
            ("out\n", "err\n", 7)
        );
        cli.delete_pod("web").unwrap();
        assert!(cli.leftovers().is_empty());
        let log = std::fs::read_to_string(dir.path().join("log")).unwrap();
        let lines: Vec<&str> = log.lines().collect();
        assert_eq!(lines[0], "--root /tmp/r --context lab apply -f -");
        assert!(lines.contains(&"--root /tmp/r --context lab get pod web -o json"));
        assert!(lines.contains(
            &"--root /tmp/r --context lab exec web -c app -- sh -c echo out; echo err >&2; exit 7"
        ));
        assert!(lines.contains(
            &"--root /tmp/r --context lab delete pod web --grace-period 0 --ignore-not-found"
        ));
    }

    #[test]
    fn the_configured_environment_reaches_the_binary() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config(fake(dir.path()));
        config.env = vec![("FAKECTL_MARK".into(), "from-the-adapter".into())];
        let cli = Cli::named("podlab".into(), config);
        assert_eq!(cli.name(), "podlab");
        let argv = ["sh".to_string(), "-c".into(), "echo $FAKECTL_MARK".into()];
        let out = cli
            .exec("web", "app", &argv, Duration::from_secs(10))
            .unwrap();
        assert_eq!(out.stdout, "from-the-adapter\n");
    }

    #[test]
    fn other_get_failures_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("broken");
        std::fs::write(&bin, "#!/bin/sh\necho 'connection refused' >&2\nexit 1\n").unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let cli = Cli::new(config(bin));
        let err = cli.get_pod("web").unwrap_err();
        assert!(err.to_string().contains("connection refused"), "{err}");
    }
}
