//! Pods as tests use them: a small manifest builder, a guard that deletes
//! the pod whatever happens, and running the probe in a container.

use k8s_openapi::api::core::v1::Pod;
use podlab_testkit::manifest::Fixture;
use serde_json::Value;

use crate::runtime::{self, ExecOutput, Runtime};
use crate::suite::{fail, Ctx, Outcome};

pub use podlab_testkit::manifest::{ContainerSpec, PodManifest};
pub use podlab_testkit::probe::{error_name, ok};

/// The suite names its pods uniquely, runs the probe image by default and
/// labels every pod as its own.
impl Fixture for Ctx {
    fn pod_name(&self, prefix: &str) -> String {
        self.unique_name(prefix)
    }
    fn default_image(&self) -> String {
        self.probe_image.clone()
    }
    fn labels(&self) -> Vec<(String, String)> {
        vec![(
            "app.kubernetes.io/part-of".into(),
            "podlab-conformance".into(),
        )]
    }
    fn default_pull_policy(&self) -> Option<String> {
        Some(PULL_POLICY.into())
    }
}

/// The pull policy of every container that sets none, so a probe image
/// side-loaded on a real cluster's node is used: with a `:latest` tag
/// Kubernetes would default to `Always` and fail to pull it.
const PULL_POLICY: &str = "IfNotPresent";

/// The YAML the suite hands a runtime for `manifest`: every container
/// without a pull policy gets [`PULL_POLICY`].
pub fn manifest_yaml(manifest: Value) -> String {
    podlab_testkit::manifest::to_yaml(manifest, Some(PULL_POLICY))
}

/// Runs `argv` in `container` of `pod` every 100 ms until its stdout
/// satisfies `done`, for at most `within`: that stdout, or what the last
/// exec gave (exit status, output, or the error) when time ran out. For
/// watching a pod while something else (a delete) acts on it.
pub fn exec_until(
    rt: &dyn Runtime,
    ctx: &Ctx,
    pod: &str,
    container: &str,
    argv: &[&str],
    within: std::time::Duration,
    done: impl Fn(&str) -> bool,
) -> Result<String, String> {
    let deadline = std::time::Instant::now() + within;
    let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    let mut last = String::from("no exec yet");
    while std::time::Instant::now() < deadline {
        match rt.exec(pod, container, &argv, ctx.timeouts.exec) {
            Ok(out) if done(&out.stdout) => return Ok(out.stdout),
            Ok(out) => {
                last = format!(
                    "exit {}, stdout {:?}, stderr {:?}",
                    out.exit_code, out.stdout, out.stderr
                )
            }
            Err(e) => last = podlab_kube::error::chain(&e),
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    Err(last)
}

/// A pod made from a raw manifest (init containers, volumes, restart
/// policy: more than [`PodManifest`] builds); deleted when dropped.
pub struct RawPod<'a> {
    pub rt: &'a dyn Runtime,
    pub name: String,
}

impl<'a> RawPod<'a> {
    /// A pod named after `prefix` with `spec` (a JSON object) as its spec,
    /// on top of the suite's defaults (labels, no grace period).
    pub fn create(
        rt: &'a dyn Runtime,
        ctx: &Ctx,
        prefix: &str,
        spec: Value,
    ) -> Result<Self, Outcome> {
        let mut manifest = PodManifest::new(ctx, prefix).to_json();
        if let (Some(base), Value::Object(extra)) = (manifest["spec"].as_object_mut(), spec) {
            base.extend(extra);
        }
        let name = manifest["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        // The guard exists before the call, so a half-created pod is deleted too.
        let guard = RawPod { rt, name };
        rt.create_pod(&manifest_yaml(manifest)).map_err(|e| {
            fail(format!(
                "the runtime refused pod {}: {}",
                guard.name,
                podlab_kube::error::chain(&e)
            ))
        })?;
        Ok(guard)
    }

    /// Runs `sh -c script` in `container`; its stdout.
    pub fn sh(&self, ctx: &Ctx, container: &str, script: &str) -> Result<String, Outcome> {
        let argv = ["sh".to_string(), "-c".to_string(), script.to_string()];
        let out = self
            .rt
            .exec(&self.name, container, &argv, ctx.timeouts.exec)
            .map_err(|e| {
                fail(format!(
                    "exec in {}/{container}: {}",
                    self.name,
                    podlab_kube::error::chain(&e)
                ))
            })?;
        Ok(out.stdout)
    }
}

impl RawPod<'_> {
    /// Runs `probe ARGS...` in `container`: [`PodGuard::probe`].
    pub fn probe(&self, ctx: &Ctx, container: &str, args: &[&str]) -> Result<Value, Outcome> {
        run_probe(self.rt, ctx, &self.name, container, args)
    }
}

impl Drop for RawPod<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.rt.delete_pod(&self.name) {
            eprintln!(
                "warning: could not delete pod {}: {}",
                self.name,
                podlab_kube::error::chain(&e)
            );
        }
    }
}

/// A pod this test created; deleted when dropped, so a failing or
/// panicking test leaves nothing behind.
pub struct PodGuard<'a> {
    rt: &'a dyn Runtime,
    ctx: &'a Ctx,
    pub name: String,
}

impl<'a> PodGuard<'a> {
    /// Creates the pod; does not wait for it to run.
    pub fn create(
        rt: &'a dyn Runtime,
        ctx: &'a Ctx,
        manifest: &PodManifest,
    ) -> Result<Self, Outcome> {
        // The guard exists before the call, so a half-created pod is deleted too.
        let guard = PodGuard {
            rt,
            ctx,
            name: manifest.name.clone(),
        };
        rt.create_pod(&manifest.to_yaml()).map_err(|e| {
            fail(format!(
                "the runtime refused pod {}: {}",
                manifest.name,
                podlab_kube::error::chain(&e)
            ))
        })?;
        Ok(guard)
    }

    /// Creates the pod and waits until every container runs.
    pub fn start(
        rt: &'a dyn Runtime,
        ctx: &'a Ctx,
        manifest: &PodManifest,
    ) -> Result<Self, Outcome> {
        let guard = Self::create(rt, ctx, manifest)?;
        guard.running()?;
        Ok(guard)
    }

    /// Creates several pods, then waits for all of them: their start-ups overlap.
    pub fn start_all(
        rt: &'a dyn Runtime,
        ctx: &'a Ctx,
        manifests: &[&PodManifest],
    ) -> Result<Vec<Self>, Outcome> {
        let mut guards = Vec::new();
        for m in manifests {
            guards.push(Self::create(rt, ctx, m)?);
        }
        for g in &guards {
            g.running()?;
        }
        Ok(guards)
    }

    /// Waits until the pod is Running with every container running.
    pub fn running(&self) -> Result<Pod, Outcome> {
        runtime::wait_running(self.rt, &self.name, self.ctx.timeouts.start).map_err(|e| {
            fail(format!(
                "pod {} did not start: {}",
                self.name,
                podlab_kube::error::chain(&e)
            ))
        })
    }

    pub fn get(&self) -> Result<Pod, Outcome> {
        match self.rt.get_pod(&self.name)? {
            Some(p) => Ok(p),
            None => Err(fail(format!("pod {} disappeared", self.name))),
        }
    }

    pub fn exec(&self, container: &str, argv: &[&str]) -> Result<ExecOutput, Outcome> {
        let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
        self.rt
            .exec(&self.name, container, &argv, self.ctx.timeouts.exec)
            .map_err(|e| {
                fail(format!(
                    "exec in {}/{container}: {}",
                    self.name,
                    podlab_kube::error::chain(&e)
                ))
            })
    }

    /// Runs `probe ARGS...` in a container and returns the JSON object it
    /// printed first. A probe that did not run or printed no JSON fails the
    /// test: that is a broken environment, not an observation.
    pub fn probe(&self, container: &str, args: &[&str]) -> Result<Value, Outcome> {
        run_probe(self.rt, self.ctx, &self.name, container, args)
    }
}

/// Runs `probe ARGS...` in a container and returns the JSON object it
/// printed first. A probe that did not run or printed no JSON fails the
/// test: that is a broken environment, not an observation.
fn run_probe(
    rt: &dyn Runtime,
    ctx: &Ctx,
    pod: &str,
    container: &str,
    args: &[&str],
) -> Result<Value, Outcome> {
    let argv: Vec<String> = std::iter::once("probe")
        .chain(args.iter().copied())
        .map(String::from)
        .collect();
    let out = rt
        .exec(pod, container, &argv, ctx.timeouts.exec)
        .map_err(|e| {
            fail(format!(
                "exec in {pod}/{container}: {}",
                podlab_kube::error::chain(&e)
            ))
        })?;
    parse_probe(&out).map_err(|why| {
        fail(format!(
            "`{}` in {pod}/{container} {why} (exit status {}; stdout {:?}; stderr {:?})",
            argv.join(" "),
            out.exit_code,
            out.stdout.trim(),
            out.stderr.trim()
        ))
    })
}

impl Drop for PodGuard<'_> {
    fn drop(&mut self) {
        if let Err(e) = self.rt.delete_pod(&self.name) {
            eprintln!(
                "warning: could not delete pod {}: {}",
                self.name,
                podlab_kube::error::chain(&e)
            );
        }
    }
}

/// The first stdout line of a probe run as a JSON object.
pub fn parse_probe(out: &ExecOutput) -> Result<Value, String> {
    podlab_testkit::probe::parse(out.exit_code, &out.stdout)
}

/// `v[key]` as a string, failing with the whole object when absent.
pub fn str_field<'v>(v: &'v Value, key: &str, what: &str) -> Result<&'v str, Outcome> {
    v.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| fail(format!("{what}: no string `{key}` in probe output {v}")))
}

/// `v[key]` as an integer.
pub fn num_field(v: &Value, key: &str, what: &str) -> Result<i64, Outcome> {
    v.get(key)
        .and_then(Value::as_i64)
        .ok_or_else(|| fail(format!("{what}: no integer `{key}` in probe output {v}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(code: i32, stdout: &str) -> ExecOutput {
        ExecOutput {
            stdout: stdout.into(),
            stderr: String::new(),
            exit_code: code,
        }
    }

    #[test]
    fn probe_output_is_the_first_json_line() {
        let v = parse_probe(&out(0, "{\"ok\":true,\"port\":5}\n{\"served\":1}\n")).unwrap();
        assert!(ok(&v));
        assert_eq!(num_field(&v, "port", "t").unwrap(), 5);
        assert_eq!(parse_probe(&out(2, "{}")).unwrap_err(), "did not run");
        assert_eq!(parse_probe(&out(0, "")).unwrap_err(), "printed nothing");
        assert_eq!(
            parse_probe(&out(0, "[1]")).unwrap_err(),
            "printed no JSON object"
        );
        let refused = parse_probe(&out(0, r#"{"ok":false,"error":"ECONNREFUSED"}"#)).unwrap();
        assert!(!ok(&refused));
        assert_eq!(error_name(&refused), "ECONNREFUSED");
        assert!(str_field(&refused, "data", "connect")
            .unwrap_err()
            .reason()
            .contains("no string `data`"));
    }
}
