//! The podlab adapter: drives the `podlab` binary as a process, with a
//! state directory of its own per suite run so it never sees (or
//! disturbs) pods anyone else created.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;

use crate::runtime::{Capabilities, Error, ExecOutput, PidsLimits, Runtime};

/// The pids limit the adapter asks podlab to give every container
/// (`PODLAB_PIDS_LIMIT`), so the pids tests know what to expect.
pub const CONTAINER_PIDS_LIMIT: u64 = 512;

/// The restart back-off base the adapter asks podlab for (`PODLAB_BACKOFF_BASE_MS`).
const BACKOFF_BASE_MS: u64 = 200;

/// How long a management command (apply, get, delete) may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(90);

#[derive(Clone, Debug)]
pub struct PodlabConfig {
    /// The `podlab` binary.
    pub bin: PathBuf,
    /// The image store holding the probe image; podlab's default when None.
    pub image_root: Option<PathBuf>,
    /// The probe image reference.
    pub probe_image: String,
    /// Extra environment for every podlab process (the shims inherit it),
    /// e.g. `PODLAB_MUTANT`.
    pub env: Vec<(String, String)>,
}

impl PodlabConfig {
    pub fn new(bin: PathBuf) -> PodlabConfig {
        PodlabConfig {
            bin,
            image_root: None,
            probe_image: "podlab.local/probe:latest".into(),
            env: Vec::new(),
        }
    }
}

pub struct Podlab {
    config: PodlabConfig,
    /// This run's private state directory (`--root`), removed on drop.
    root: tempfile::TempDir,
    /// Every pod uid this adapter saw, to look for leftovers.
    uids: Mutex<Vec<String>>,
}

impl Podlab {
    pub fn new(config: PodlabConfig) -> Result<Podlab, Error> {
        let root = tempfile::Builder::new()
            .prefix("podlab-conformance-")
            .tempdir()
            .map_err(|e| Error::Other(format!("cannot create a state directory: {e}")))?;
        Ok(Podlab {
            config,
            root,
            uids: Mutex::new(Vec::new()),
        })
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.config.bin);
        // Global options first: after `exec ... --` they would be the command's.
        cmd.arg("--root").arg(self.root.path());
        if let Some(images) = &self.config.image_root {
            cmd.arg("--image-root").arg(images);
        }
        cmd.args(args);
        cmd.env("PODLAB_PIDS_LIMIT", CONTAINER_PIDS_LIMIT.to_string());
        // Restart back-off in fractions of a second, so restart tests
        // do not wait out the kubelet's ten seconds.
        cmd.env("PODLAB_BACKOFF_BASE_MS", BACKOFF_BASE_MS.to_string());
        for (k, v) in &self.config.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs podlab with `args` and optional stdin, within `timeout`.
    fn run(
        &self,
        args: &[&str],
        stdin: Option<&str>,
        timeout: Duration,
    ) -> Result<ExecOutput, Error> {
        let shown = format!("podlab {}", args.join(" "));
        let mut cmd = self.command(args);
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        run_with_timeout(cmd, stdin, timeout, &shown)
    }

    fn remember_uid(&self, pod: &Pod) {
        if let Some(uid) = &pod.metadata.uid {
            let mut uids = self.uids.lock().unwrap_or_else(|e| e.into_inner());
            if !uids.contains(uid) {
                uids.push(uid.clone());
            }
        }
    }
}

impl Runtime for Podlab {
    fn name(&self) -> &str {
        "podlab"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            // Every pod is attached to the podlab0 bridge, where the node
            // is the gateway.
            pod_ip: true,
            privileged: false,
            cgroup_visible: true,
            pending_observable: true,
            share_process_namespace: true,
            same_kernel: true,
            node_reaches_pods: true,
            pids: PidsLimits {
                pod_field: true,
                per_container: Some(CONTAINER_PIDS_LIMIT),
            },
            init_containers: true,
            restart_policy: true,
            unschedulable: true,
            oom_reason: true,
        }
    }

    fn probe_image(&self) -> String {
        self.config.probe_image.clone()
    }

    fn create_pod(&self, manifest_yaml: &str) -> Result<(), Error> {
        let out = self.run(&["apply", "-f", "-"], Some(manifest_yaml), COMMAND_TIMEOUT)?;
        check_status(&out, "podlab apply -f -")
    }

    fn get_pod(&self, name: &str) -> Result<Option<Pod>, Error> {
        let args = ["get", "pod", name, "-o", "json"];
        let out = self.run(&args, None, COMMAND_TIMEOUT)?;
        if out.exit_code != 0 {
            if out.stderr.contains("NotFound") || out.stderr.contains("not found") {
                return Ok(None);
            }
            check_status(&out, &format!("podlab {}", args.join(" ")))?;
        }
        let pod: Pod = serde_json::from_str(&out.stdout).map_err(|e| Error::Parse {
            command: format!("podlab {}", args.join(" ")),
            detail: e.to_string(),
        })?;
        self.remember_uid(&pod);
        Ok(Some(pod))
    }

    fn exec(
        &self,
        pod: &str,
        container: &str,
        argv: &[String],
        timeout: Duration,
    ) -> Result<ExecOutput, Error> {
        let mut args = vec!["exec", pod, "-c", container, "--"];
        args.extend(argv.iter().map(String::as_str));
        // podlab exec's own failures (no such pod or container) are exit
        // statuses too; the caller sees them with stderr.
        self.run(&args, None, timeout)
    }

    fn delete_pod(&self, name: &str) -> Result<(), Error> {
        let args = [
            "delete",
            "pod",
            name,
            "--grace-period",
            "0",
            "--ignore-not-found",
        ];
        let out = self.run(&args, None, COMMAND_TIMEOUT)?;
        check_status(&out, &format!("podlab {}", args.join(" ")))
    }

    fn delete_pod_with_grace(&self, name: &str, seconds: u32) -> Result<(), Error> {
        let grace = seconds.to_string();
        let args = [
            "delete",
            "pod",
            name,
            "--grace-period",
            &grace,
            "--ignore-not-found",
        ];
        let out = self.run(
            &args,
            None,
            COMMAND_TIMEOUT + Duration::from_secs(seconds.into()),
        )?;
        check_status(&out, &format!("podlab {}", args.join(" ")))
    }

    fn leftovers(&self) -> Vec<String> {
        crate::runtime::settled_leftovers(|| self.leftovers_now())
    }
}

impl Podlab {
    fn leftovers_now(&self) -> Vec<String> {
        let mut left = Vec::new();
        match self.run(&["get", "pods", "-A", "-o", "name"], None, COMMAND_TIMEOUT) {
            Ok(out) if out.exit_code == 0 => {
                left.extend(
                    out.stdout
                        .lines()
                        .filter(|l| !l.trim().is_empty())
                        .map(|l| format!("podlab still lists {}", l.trim())),
                );
            }
            Ok(out) => left.push(format!("podlab get pods failed: {}", out.stderr.trim())),
            Err(e) => left.push(e.to_string()),
        }
        let mut marks = self.uids.lock().unwrap_or_else(|e| e.into_inner()).clone();
        left.extend(host_leftovers(&marks));
        // Processes: a shim names our state directory, a pause its pod's
        // netns (by uid), a container process sits in its pod's cgroup.
        marks.push(self.root.path().to_string_lossy().into_owned());
        left.extend(process_leftovers(Path::new("/proc"), &marks));
        left
    }
}

/// Network namespaces and cgroup directories on the host that still
/// carry the uid of one of our pods.
fn host_leftovers(uids: &[String]) -> Vec<String> {
    leftovers_under(Path::new("/run/netns"), Path::new("/sys/fs/cgroup"), uids)
}

/// [`host_leftovers`] with the two roots as parameters, for tests.
fn leftovers_under(netns: &Path, cgroup_root: &Path, uids: &[String]) -> Vec<String> {
    let mut dirs: Vec<PathBuf> = vec![netns.to_path_buf()];
    if let Ok(entries) = std::fs::read_dir(cgroup_root) {
        // Pod cgroups sit below a `podlab` directory in each hierarchy.
        dirs.extend(entries.flatten().map(|e| e.path().join("podlab")));
    }
    let mut left = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if uids.iter().any(|u| name.contains(u.as_str())) {
                left.push(format!("{} is still there", e.path().display()));
            }
        }
    }
    left.sort();
    left
}

/// Processes whose command line or cgroup membership mentions one of `marks`.
fn process_leftovers(proc_root: &Path, marks: &[String]) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(proc_root) else {
        return Vec::new();
    };
    let mut left = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let cmdline = std::fs::read(e.path().join("cmdline"))
            .map(|raw| String::from_utf8_lossy(&raw).replace('\0', " "))
            .unwrap_or_default();
        let cgroup = std::fs::read_to_string(e.path().join("cgroup")).unwrap_or_default();
        if marks
            .iter()
            .any(|m| !m.is_empty() && (cmdline.contains(m.as_str()) || cgroup.contains(m.as_str())))
        {
            left.push(format!(
                "process {name} is still running: {}",
                cmdline.trim()
            ));
        }
    }
    left.sort();
    left
}

fn check_status(out: &ExecOutput, command: &str) -> Result<(), Error> {
    if out.exit_code == 0 {
        return Ok(());
    }
    Err(Error::Command {
        command: command.into(),
        code: out.exit_code,
        stderr: out.stderr.trim().into(),
    })
}

/// Runs `cmd` to completion, killing it after `timeout`. Output is read on
/// helper threads so a chatty child cannot block on a full pipe.
pub fn run_with_timeout(
    mut cmd: Command,
    stdin: Option<&str>,
    timeout: Duration,
    shown: &str,
) -> Result<ExecOutput, Error> {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut attempts = 0;
    let mut child = loop {
        match cmd.spawn() {
            Ok(child) => break child,
            // ETXTBSY: a binary written a moment ago can still be open for
            // writing in a child another thread forked and has not exec'd
            // yet; that window closes by itself.
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && attempts < 50 => {
                attempts += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(source) => {
                return Err(Error::Spawn {
                    command: shown.into(),
                    source,
                })
            }
        }
    };
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A child that exits without reading gives EPIPE: its exit status says more.
        let _ = pipe.write_all(text.as_bytes());
    }
    let stdout = reader(child.stdout.take());
    let stderr = reader(child.stderr.take());
    let status = wait_child(&mut child, timeout, shown)?;
    // A grandchild (a daemon the command started) may keep the pipes open
    // after the child exits: take what arrived within a moment and move on.
    let grace = Instant::now() + Duration::from_secs(2);
    Ok(ExecOutput {
        stdout: collect(stdout, grace),
        stderr: collect(stderr, grace),
        exit_code: exit_code(status),
    })
}

/// Reads a pipe to its end on a helper thread; the bytes arrive on the channel.
fn reader<R: Read + Send + 'static>(pipe: Option<R>) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_end(&mut buf);
        }
        let _ = tx.send(buf);
    });
    rx
}

fn collect(rx: mpsc::Receiver<Vec<u8>>, deadline: Instant) -> String {
    let left = deadline.saturating_duration_since(Instant::now());
    String::from_utf8_lossy(&rx.recv_timeout(left).unwrap_or_default()).into_owned()
}

/// Polls the child until it exits or the deadline passes; on timeout the
/// child (ours, by pid) is killed and reaped.
fn wait_child(
    child: &mut Child,
    timeout: Duration,
    shown: &str,
) -> Result<std::process::ExitStatus, Error> {
    let deadline = Instant::now() + timeout;
    let mut interval = Duration::from_millis(2);
    loop {
        let polled = child.try_wait().map_err(|source| Error::Spawn {
            command: shown.into(),
            source,
        })?;
        if let Some(status) = polled {
            return Ok(status);
        }
        let now = Instant::now();
        if now >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Error::Timeout {
                command: shown.into(),
                after: timeout,
            });
        }
        std::thread::sleep(interval.min(deadline - now));
        interval = (interval * 2).min(Duration::from_millis(50));
    }
}

/// The status as a shell reports it: 128+N for death by signal N.
fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => code,
        (None, Some(sig)) => 128 + sig,
        (None, None) => -1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut c = Command::new("/bin/sh");
        c.arg("-c").arg(script);
        c
    }

    #[test]
    fn output_stdin_and_exit_status() {
        let mut cmd = sh("cat; echo err >&2; exit 3");
        cmd.stdin(Stdio::piped());
        let out = run_with_timeout(cmd, Some("hello"), Duration::from_secs(10), "sh").unwrap();
        assert_eq!(out.stdout, "hello");
        assert_eq!(out.stderr, "err\n");
        assert_eq!(out.exit_code, 3);
    }

    #[test]
    fn a_daemon_holding_the_pipe_does_not_block() {
        let start = Instant::now();
        let out = run_with_timeout(
            sh("echo started; sleep 6 & exit 0"),
            None,
            Duration::from_secs(10),
            "sh",
        )
        .unwrap();
        assert_eq!(out.exit_code, 0);
        assert!(start.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_signal_is_128_plus_its_number() {
        let out = run_with_timeout(sh("kill -9 $$"), None, Duration::from_secs(10), "sh").unwrap();
        assert_eq!(out.exit_code, 137);
    }

    #[test]
    fn a_slow_child_is_killed_at_the_deadline() {
        let start = Instant::now();
        let err = run_with_timeout(
            sh("exec sleep 30"),
            None,
            Duration::from_millis(200),
            "slow",
        )
        .unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err}");
        assert!(start.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn leftovers_are_the_entries_naming_our_pods() {
        let dir = tempfile::tempdir().unwrap();
        let (netns, cg) = (dir.path().join("netns"), dir.path().join("cgroup"));
        for d in [
            netns.join("podlab-uid-1"),
            netns.join("podlab-other"),
            cg.join("memory/podlab/pod-uid-1"),
            cg.join("pids/podlab/pod-uid-2"),
            cg.join("cpu/podlab/pod-unrelated"),
        ] {
            std::fs::create_dir_all(d).unwrap();
        }
        let uids = ["uid-1".to_string(), "uid-2".to_string()];
        let left = leftovers_under(&netns, &cg, &uids);
        assert_eq!(left.len(), 3, "{left:?}");
        assert!(
            left[0].ends_with("cgroup/memory/podlab/pod-uid-1 is still there"),
            "{left:?}"
        );
        assert!(leftovers_under(&netns, &cg, &[]).is_empty());
    }

    #[test]
    fn leftover_processes_are_found_by_command_line_or_cgroup() {
        let dir = tempfile::tempdir().unwrap();
        let proc_root = dir.path();
        let write = |pid: &str, cmdline: &[u8], cgroup: &str| {
            std::fs::create_dir_all(proc_root.join(pid)).unwrap();
            std::fs::write(proc_root.join(pid).join("cmdline"), cmdline).unwrap();
            std::fs::write(proc_root.join(pid).join("cgroup"), cgroup).unwrap();
        };
        write(
            "10",
            b"podlab\0__pause\0--netns\0/run/netns/podlab-uid-1\0",
            "4:memory:/\n",
        );
        write(
            "11",
            b"sleep\x003600\0",
            "4:memory:/podlab/pod-uid-1/ctr-app\n",
        );
        write(
            "12",
            b"sleep\x003600\0",
            "4:memory:/podlab/pod-uid-9/ctr-app\n",
        );
        std::fs::create_dir_all(proc_root.join("self")).unwrap();
        let left = process_leftovers(proc_root, &["uid-1".to_string()]);
        assert_eq!(
            left,
            [
                "process 10 is still running: podlab __pause --netns /run/netns/podlab-uid-1",
                "process 11 is still running: sleep 3600"
            ]
        );
    }

    #[test]
    fn a_missing_binary_is_a_spawn_error() {
        let cmd = Command::new("/nonexistent/podlab-conformance-test");
        let err = run_with_timeout(cmd, None, Duration::from_secs(1), "podlab").unwrap_err();
        assert!(matches!(err, Error::Spawn { .. }), "{err}");
    }
}
