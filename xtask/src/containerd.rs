//! A private containerd for the CRI conformance run (issue 6): its config,
//! root, state, socket, CNI config and IPAM leases all under `target/cri`,
//! the fixture images imported with `ctr`, and the daemon stopped by PID
//! afterwards (no systemd here). A containerd of the host, if there is one,
//! is never used or touched.

use std::fs;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use crate::{fixtures, util};

/// The bridge of the CRI run's pod network; removed when the run ends.
const BRIDGE: &str = "podlab-cri0";
/// Pod addresses of the CRI run: apart from podlab's 10.89/16 and
/// podman's 10.88/16, so the runs never hand out the same address.
const SUBNET: &str = "10.90.0.0/16";
/// The namespace the CRI plugin keeps Kubernetes images in.
const NAMESPACE: &str = "k8s.io";
/// The longest unix socket path (sun_path is 108 bytes with its NUL).
const MAX_SOCKET_PATH: usize = 107;

pub struct Containerd {
    child: Option<Child>,
    dir: PathBuf,
    socket: PathBuf,
}

impl Containerd {
    pub fn dir() -> PathBuf {
        util::target().join("cri")
    }

    /// Starts containerd with a fresh root and imports the fixture images;
    /// `registry` (`HOST:PORT`, plain HTTP) is a registry its CRI plugin
    /// may pull from, set up the way a user of containerd would: a
    /// hosts.toml under the plugin's `config_path`.
    pub fn start(registry: Option<&str>) -> anyhow::Result<Containerd> {
        let dir = Self::dir();
        stop_stale(&dir);
        clean(&dir)?;
        for sub in ["root", "state", "cni", "ipam"] {
            fs::create_dir_all(dir.join(sub))?;
        }
        let socket = dir.join("containerd.sock");
        if socket.as_os_str().len() > MAX_SOCKET_PATH {
            bail!(
                "{} is too long for a unix socket path: check out the project at a shorter path",
                socket.display()
            );
        }
        fs::write(dir.join("config.toml"), config(&dir, &socket))?;
        if let Some(address) = registry {
            let hosts = dir.join("certs.d").join(address);
            fs::create_dir_all(&hosts)?;
            fs::write(hosts.join("hosts.toml"), hosts_toml(address))?;
        }
        fs::write(dir.join("cni/10-podlab-cri.conflist"), cni_config(&dir))?;
        let log = fs::File::create(dir.join("containerd.log"))?;
        util::step(&format!(
            "starting a private containerd ({})",
            dir.display()
        ));
        let child = Command::new("containerd")
            .arg("--config")
            .arg(dir.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("cannot start containerd (Debian package containerd)")?;
        fs::write(dir.join("containerd.pid"), child.id().to_string())?;
        let mut me = Containerd {
            child: Some(child),
            dir,
            socket,
        };
        me.wait_ready()?;
        me.import_fixtures()?;
        Ok(me)
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    fn ctr(&self) -> Command {
        self.ctr_in(NAMESPACE)
    }

    /// `ctr` against this daemon, in `namespace`.
    pub fn ctr_in(&self, namespace: &str) -> Command {
        let mut cmd = Command::new("ctr");
        cmd.arg("--address")
            .arg(&self.socket)
            .args(["--namespace", namespace]);
        cmd
    }

    /// Polls until the daemon answers on its socket, or gives up with its log.
    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    bail!(
                        "containerd exited with {status} before it was ready; its log:\n{}",
                        self.log_tail()
                    );
                }
            }
            let ready = self.socket.exists()
                && self
                    .ctr()
                    .arg("version")
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
            if ready {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "containerd did not answer within 60 s; its log:\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log_tail(&self) -> String {
        let log = fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// Imports the fixture images (OCI layouts, archived) into the CRI
    /// plugin's namespace; the pause image is the sandbox image.
    fn import_fixtures(&self) -> anyhow::Result<()> {
        for reference in [&[fixtures::PAUSE_IMAGE][..], &fixtures::SUITE_IMAGES].concat() {
            let layout = fixtures::layout_dir(reference);
            if !layout.join("index.json").exists() {
                bail!(
                    "{} is missing: run `cargo xtask fixtures` first",
                    layout.display()
                );
            }
            let archive = self
                .dir
                .join(format!("{}.tar", reference.replace(['/', ':'], "_")));
            util::run(
                Command::new("tar")
                    .arg("-C")
                    .arg(&layout)
                    .arg("-cf")
                    .arg(&archive)
                    .arg("."),
            )?;
            util::run(self.ctr().args(["images", "import"]).arg(&archive))?;
            fs::remove_file(&archive)?;
        }
        Ok(())
    }

    /// What the run left in the daemon's own directories: IPAM leases and
    /// network namespaces (the adapter checks sandboxes, cgroups, shims).
    pub fn leftovers(&self) -> Vec<String> {
        let mut left = Vec::new();
        let leases = self.dir.join("ipam/podlab-cri");
        for e in fs::read_dir(&leases).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.parse::<std::net::IpAddr>().is_ok() {
                left.push(format!("IPAM lease {} is still held", e.path().display()));
            }
        }
        let netns = self.dir.join("state/io.containerd.grpc.v1.cri/netns");
        for e in fs::read_dir(&netns).into_iter().flatten().flatten() {
            left.push(format!(
                "network namespace {} is still there",
                e.path().display()
            ));
        }
        left
    }

    /// Stops the daemon (SIGTERM, then SIGKILL), and removes its mounts,
    /// directories and bridge; the log stays for reading.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child)?;
        }
        let _ = fs::remove_file(self.dir.join("containerd.pid"));
        clean(&self.dir)?;
        delete_bridge();
        Ok(())
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("xtask: stopping the private containerd: {e:#}");
        }
    }
}

fn config(dir: &Path, socket: &Path) -> String {
    let d = dir.display();
    format!(
        r#"# Written by `cargo xtask conformance --runtime cri` for one run.
version = 2
root = "{d}/root"
state = "{d}/state"
# Plugins that would write outside this directory or need what is absent.
disabled_plugins = [
  "io.containerd.internal.v1.opt",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
]

[grpc]
  address = "{socket}"

[ttrpc]
  address = "{socket}.ttrpc"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  # CAP_SYS_RESOURCE is missing: never ask for a lower oom_score_adj than ours.
  restrict_oom_score_adj = true
  disable_apparmor = true
  # Network namespaces under our state directory, not /var/run/netns.
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
    # More OCI runtimes as handlers beside runc, chosen per pod with
    # runtime_handler (Kubernetes' RuntimeClass).
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.crun]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.crun.options]
        BinaryName = "/usr/bin/crun"
        SystemdCgroup = false
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.youki]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.youki.options]
        BinaryName = "{youki}"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{d}/cni"
  # Registries' hosts.toml files, one directory per registry host.
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "{d}/certs.d"
"#,
        socket = socket.display(),
        pause = fixtures::PAUSE_IMAGE,
        youki = crate::youki::binary().display(),
    )
}

/// containerd's hosts.toml for a plain-HTTP registry at `address`.
fn hosts_toml(address: &str) -> String {
    format!(
        "# Written by cargo xtask: the test registry on loopback, plain HTTP.\n\
         server = \"http://{address}\"\n\n\
         [host.\"http://{address}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
    )
}

/// Debian's bridge and host-local plugins. No gateway, no masquerade: the
/// bridge has no address on the node, so pods reach each other and nothing
/// else, and the plugin leaves the host's forwarding setting alone.
fn cni_config(dir: &Path) -> String {
    serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "podlab-cri",
        "plugins": [{
            "type": "bridge",
            "bridge": BRIDGE,
            "isGateway": false,
            "ipMasq": false,
            "hairpinMode": true,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": SUBNET}]],
                "dataDir": dir.join("ipam").display().to_string(),
            },
        }],
    })
    .to_string()
}

/// SIGTERM, up to 20 s to exit, then SIGKILL.
fn terminate(child: &mut Child) -> anyhow::Result<()> {
    // SAFETY: kill(2) of the daemon this process started.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.kill()?;
    child.wait()?;
    Ok(())
}

/// A daemon an interrupted run left behind: stopped by the PID it
/// recorded, and only if that process is still our containerd.
fn stop_stale(dir: &Path) {
    let Ok(pid) = fs::read_to_string(dir.join("containerd.pid")) else {
        return;
    };
    let Ok(pid) = pid.trim().parse::<i32>() else {
        return;
    };
    let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let config = dir.join("config.toml");
    if !String::from_utf8_lossy(&cmdline).contains(&*config.to_string_lossy()) {
        return;
    }
    eprintln!("xtask: stopping containerd {pid} left by an earlier run");
    // SAFETY: kill(2) of the containerd an earlier run of ours started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let deadline = Instant::now() + Duration::from_secs(10);
    while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Unmounts and removes the daemon's directories (not its log).
fn clean(dir: &Path) -> anyhow::Result<()> {
    podlab_testkit::host::unmount_under(dir);
    for sub in ["root", "state", "cni", "ipam"] {
        let d = dir.join(sub);
        if d.exists() {
            fs::remove_dir_all(&d).with_context(|| format!("cannot remove {}", d.display()))?;
        }
    }
    for f in ["containerd.sock", "containerd.sock.ttrpc"] {
        let p = dir.join(f);
        if fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_socket()) {
            fs::remove_file(&p)?;
        }
    }
    Ok(())
}

fn delete_bridge() {
    if !Path::new("/sys/class/net").join(BRIDGE).exists() {
        return;
    }
    let deleted = Command::new("ip")
        .args(["link", "delete", BRIDGE])
        .status()
        .is_ok_and(|s| s.success());
    if !deleted {
        eprintln!("xtask: could not delete the bridge {BRIDGE} (`ip link delete {BRIDGE}`)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_daemon_keeps_to_its_directory_and_the_limits_of_this_host() {
        let dir = Path::new("/w/target/cri");
        let toml = config(dir, &dir.join("containerd.sock"));
        for line in [
            r#"root = "/w/target/cri/root""#,
            r#"state = "/w/target/cri/state""#,
            r#"address = "/w/target/cri/containerd.sock""#,
            r#"conf_dir = "/w/target/cri/cni""#,
            r#"sandbox_image = "podlab.local/pause:latest""#,
            "restrict_oom_score_adj = true",
            "netns_mounts_under_state_dir = true",
            "SystemdCgroup = false",
            r#"config_path = "/w/target/cri/certs.d""#,
        ] {
            assert!(toml.contains(line), "config lacks {line:?}:\n{toml}");
        }
    }

    #[test]
    fn the_test_registry_is_reached_over_plain_http() {
        let toml = hosts_toml("127.0.0.1:5000");
        assert!(
            toml.contains("server = \"http://127.0.0.1:5000\""),
            "{toml}"
        );
        assert!(toml.contains("[host.\"http://127.0.0.1:5000\"]"), "{toml}");
    }

    #[test]
    fn the_pod_network_has_no_way_off_the_bridge() {
        let conf: serde_json::Value =
            serde_json::from_str(&cni_config(Path::new("/w/target/cri"))).unwrap();
        let bridge = &conf["plugins"][0];
        assert_eq!(bridge["type"], "bridge");
        assert_eq!(bridge["bridge"], BRIDGE);
        assert_eq!(bridge["isGateway"], false);
        assert_eq!(bridge["ipMasq"], false);
        assert_eq!(bridge["ipam"]["dataDir"], "/w/target/cri/ipam");
        assert_eq!(bridge["ipam"]["ranges"][0][0]["subnet"], SUBNET);
        assert!(bridge["ipam"].get("routes").is_none());
    }
}
