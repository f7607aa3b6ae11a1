//! A private registry on loopback for the pull tests, `cargo xtask test`,
//! the suite's image tests and the pull benchmark: Debian's
//! `docker-registry` (the CNCF distribution server) with its config and
//! storage under a directory of the caller's, on a free port of 127.0.0.1,
//! optionally behind TLS (a certificate the caller made) and htpasswd auth,
//! stopped by its PID on drop. Images go in with `skopeo copy`.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where Debian installs the two programs.
pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";
pub const SKOPEO_BIN: &str = "/usr/bin/skopeo";
/// The variable `cargo xtask test` sets to the shared registry's address.
pub const ADDRESS_ENV: &str = "PODLAB_TEST_REGISTRY";

/// How a test registry is set up.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Serve HTTPS with the `server.crt` and `server.key` of this
    /// directory, signed by its `ca.crt`, for 127.0.0.1 (the port is not
    /// part of a certificate). podlab's tests make them with
    /// `podlab::tls::load_or_create`; this kit links no certificate library.
    pub tls: Option<PathBuf>,
    /// An htpasswd file (bcrypt entries) to demand basic auth with.
    pub htpasswd: Option<PathBuf>,
    /// Log every request (the server's access log, in [`TestRegistry::log`]),
    /// so a caller can count what was fetched.
    pub access_log: bool,
}

/// A running registry; killed (by PID) when dropped.
pub struct TestRegistry {
    /// `127.0.0.1:PORT`.
    pub address: String,
    /// Its storage root (`docker/registry/v2/...` below).
    pub storage: PathBuf,
    /// The CA that signed its certificate, when it serves TLS.
    pub ca: Option<PathBuf>,
    dir: PathBuf,
    options: Options,
    child: Option<Child>,
}

impl TestRegistry {
    /// Starts a registry with its files under `dir` (created).
    pub fn start(dir: &Path, options: Options) -> Result<TestRegistry, String> {
        fs::create_dir_all(dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("finding a free port: {e}"))?
            .port();
        let address = format!("127.0.0.1:{port}");
        let ca = options.tls.as_ref().map(|tls| tls.join("ca.crt"));
        let mut registry = TestRegistry {
            address,
            storage: dir.join("storage"),
            ca,
            dir: dir.to_path_buf(),
            options,
            child: None,
        };
        registry.restart()?;
        Ok(registry)
    }

    /// Starts the server again on the same port and storage (after [`stop`]).
    ///
    /// [`stop`]: TestRegistry::stop
    pub fn restart(&mut self) -> Result<(), String> {
        self.stop();
        let config = self.dir.join("config.yml");
        fs::write(&config, self.config_yaml())
            .map_err(|e| format!("writing {}: {e}", config.display()))?;
        let log = fs::File::create(self.dir.join("registry.log"))
            .map_err(|e| format!("registry log: {e}"))?;
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("starting {REGISTRY_BIN}: {e} (cargo xtask doctor --install)"))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if TcpStream::connect(&self.address).is_ok() {
                return Ok(());
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                let log = fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default();
                self.child = None;
                return Err(format!("docker-registry exited ({status}): {log}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!(
            "docker-registry did not listen on {} in 15s",
            self.address
        ))
    }

    /// Stops the server (its storage stays).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn config_yaml(&self) -> String {
        let mut y = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: {}\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: {}\n",
            !self.options.access_log,
            self.storage.display(),
            self.address
        );
        if let Some(tls) = &self.options.tls {
            y.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                tls.join("server.crt").display(),
                tls.join("server.key").display()
            ));
        }
        if let Some(htpasswd) = &self.options.htpasswd {
            y.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: podlab-test\n    path: {}\n",
                htpasswd.display()
            ));
        }
        y
    }

    /// Copies image `image` of the OCI layout `layout` (its ref name) to
    /// `name` (`repo:tag`) in this registry; `all` copies every image of an
    /// index, `creds` is `user:password`.
    pub fn push(
        &self,
        layout: &Path,
        image: &str,
        name: &str,
        all: bool,
        creds: Option<&str>,
    ) -> Result<(), String> {
        let mut cmd = Command::new(SKOPEO_BIN);
        cmd.args([
            "--insecure-policy",
            "copy",
            "--quiet",
            "--dest-tls-verify=false",
        ]);
        if all {
            cmd.arg("--all");
        }
        if let Some(c) = creds {
            cmd.arg("--dest-creds").arg(c);
        }
        let out = cmd
            .arg(format!("oci:{}:{image}", layout.display()))
            .arg(format!("docker://{}/{name}", self.address))
            .output()
            .map_err(|e| format!("running {SKOPEO_BIN}: {e} (cargo xtask doctor --install)"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "skopeo copy {image} to {name}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// What the server has logged since its last start.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
    }

    /// The file the registry keeps blob `digest` (`sha256:…`) in.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.storage
            .join("docker/registry/v2/blobs/sha256")
            .join(hex.get(..2).unwrap_or_default())
            .join(hex)
            .join("data")
    }
}

impl Drop for TestRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}
