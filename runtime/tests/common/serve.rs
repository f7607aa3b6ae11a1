//! `podlab serve` in the integration tests: a server on a free loopback
//! port with the test's own state root, and kubectl pointed at the
//! kubeconfig it writes (runtime/tests/serve.rs drives kubectl,
//! serve_kube.rs a client library).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use super::{spawnable, Podlab};

/// kubectl from $KUBECTL or PATH; a missing one is an error, not a skip.
pub fn kubectl_path() -> PathBuf {
    if let Some(p) = std::env::var_os("KUBECTL") {
        return PathBuf::from(p);
    }
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|d| d.join("kubectl"))
        .find(|p| p.is_file())
        .expect("kubectl is not on PATH (nor in $KUBECTL): the serve tests drive the real kubectl; `cargo xtask doctor` says how to get it")
}

/// A running `podlab serve`, stopped on drop.
pub struct Server {
    pub child: Child,
    pub kubeconfig: PathBuf,
}

impl Server {
    pub fn start(p: &Podlab) -> Server {
        Server::start_with(p, &[])
    }

    pub fn start_with(p: &Podlab, env: &[(&str, &str)]) -> Server {
        let kubeconfig = p.root.path().join("kubeconfig-test");
        let mut cmd = spawnable(p);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .args(["serve", "--address", "127.0.0.1:0", "--kubeconfig-out"])
            .arg(&kubeconfig)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start podlab serve");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut server = Server { child, kubeconfig };
        // The export line comes once it listens and the kubeconfig is written.
        loop {
            match lines.next() {
                Some(Ok(l)) if l.starts_with("export KUBECONFIG=") => {
                    assert_eq!(
                        l,
                        format!("export KUBECONFIG={}", server.kubeconfig.display())
                    );
                    break;
                }
                Some(Ok(_)) => continue,
                _ => {
                    let status = server.child.wait().ok();
                    panic!("podlab serve exited before listening: {status:?}");
                }
            }
        }
        std::thread::spawn(move || for _ in lines {});
        server
    }

    pub fn kubectl(&self) -> Command {
        let mut c = Command::new(kubectl_path());
        c.env("KUBECONFIG", &self.kubeconfig)
            .env_remove("KUBERNETES_SERVICE_HOST");
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.kubectl().args(args).output().expect("run kubectl")
    }

    /// kubectl that must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write manifest");
    path
}
