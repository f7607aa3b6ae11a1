//! `podlab serve` for the tasks that drive podlab's Kubernetes API (the
//! suite through kubectl, the benchmark, the demo): started on a free
//! loopback port, stopped by its pid on drop.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use anyhow::Context;

pub struct Serve {
    child: Child,
    pub kubeconfig: PathBuf,
}

impl Serve {
    /// Runs `podlab` (a command with its roots already given) as `serve`,
    /// and returns once it listens and has written `kubeconfig`.
    pub fn start(mut podlab: Command, kubeconfig: PathBuf) -> anyhow::Result<Serve> {
        if let Some(dir) = kubeconfig.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut child = podlab
            .args(["serve", "--address", "127.0.0.1:0", "--kubeconfig-out"])
            .arg(&kubeconfig)
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {:?} serve", podlab.get_program()))?;
        let stdout = child.stdout.take().context("podlab serve's stdout")?;
        let mut lines = std::io::BufReader::new(stdout).lines();
        let ready = lines
            .by_ref()
            .map_while(Result::ok)
            .any(|l| l.starts_with("export KUBECONFIG="));
        // Whatever it prints later is drained, so it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        let serve = Serve { child, kubeconfig };
        if !ready {
            anyhow::bail!("podlab serve exited before it listened");
        }
        Ok(serve)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// kubectl pointed at this server (and nothing else).
    pub fn kubectl(&self) -> Command {
        let mut c = Command::new("kubectl");
        c.env("KUBECONFIG", &self.kubeconfig)
            .env_remove("KUBERNETES_SERVICE_HOST");
        c
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
