//! Pods as tests use them: a small manifest builder, a guard that deletes
//! the pod whatever happens, and running the probe in a container.

use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Map, Value};

use crate::runtime::{self, ExecOutput, Runtime};
use crate::suite::{fail, Ctx, Outcome};

/// A container of a test pod. By default it runs the probe image and
/// sleeps, so tests can exec into it.
#[derive(Clone, Debug)]
pub struct ContainerSpec {
    name: String,
    image: String,
    command: Vec<String>,
    limits: Vec<(String, String)>,
    privileged: bool,
    /// Further container fields, set as written (`securityContext`, ...).
    fields: Map<String, Value>,
}

impl ContainerSpec {
    pub fn new(ctx: &Ctx, name: &str) -> ContainerSpec {
        ContainerSpec {
            name: name.into(),
            image: ctx.probe_image.clone(),
            command: vec!["sleep".into(), "3600".into()],
            limits: Vec::new(),
            privileged: false,
            fields: Map::new(),
        }
    }

    /// Sets a container field to a JSON value, replacing what the builder
    /// would write there.
    pub fn field(mut self, key: &str, value: Value) -> ContainerSpec {
        self.fields.insert(key.into(), value);
        self
    }

    pub fn image(mut self, image: &str) -> ContainerSpec {
        self.image = image.into();
        self
    }

    pub fn command<S: AsRef<str>>(mut self, argv: &[S]) -> ContainerSpec {
        self.command = argv.iter().map(|s| s.as_ref().to_string()).collect();
        self
    }

    /// `resources.limits[resource] = quantity`.
    pub fn limit(mut self, resource: &str, quantity: &str) -> ContainerSpec {
        self.limits.push((resource.into(), quantity.into()));
        self
    }

    pub fn privileged(mut self, privileged: bool) -> ContainerSpec {
        self.privileged = privileged;
        self
    }

    fn to_json(&self) -> Value {
        let mut c = Map::new();
        c.insert("name".into(), json!(self.name));
        c.insert("image".into(), json!(self.image));
        c.insert("command".into(), json!(self.command));
        if !self.limits.is_empty() {
            let limits: Map<String, Value> = self
                .limits
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect();
            c.insert("resources".into(), json!({ "limits": limits }));
        }
        if self.privileged {
            c.insert("securityContext".into(), json!({"privileged": true}));
        }
        c.extend(self.fields.clone());
        Value::Object(c)
    }
}

/// A test pod's manifest.
#[derive(Clone, Debug)]
pub struct PodManifest {
    pub name: String,
    containers: Vec<ContainerSpec>,
    hostname: Option<String>,
    share_process_namespace: bool,
    host_network: bool,
    pod_limits: Vec<(String, String)>,
    /// Further `spec` fields, set as written (`securityContext`, `volumes`).
    spec_fields: Map<String, Value>,
}

impl PodManifest {
    /// A pod with a unique name made from `prefix`.
    pub fn new(ctx: &Ctx, prefix: &str) -> PodManifest {
        PodManifest {
            name: ctx.unique_name(prefix),
            containers: Vec::new(),
            hostname: None,
            share_process_namespace: false,
            host_network: false,
            pod_limits: Vec::new(),
            spec_fields: Map::new(),
        }
    }

    /// Sets a `spec` field to a JSON value, replacing what the builder
    /// would write there.
    pub fn spec_field(mut self, key: &str, value: Value) -> PodManifest {
        self.spec_fields.insert(key.into(), value);
        self
    }

    /// A pod of sleeping probe containers with these names.
    pub fn sleepers(ctx: &Ctx, prefix: &str, containers: &[&str]) -> PodManifest {
        containers
            .iter()
            .fold(PodManifest::new(ctx, prefix), |m, c| {
                m.container(ContainerSpec::new(ctx, c))
            })
    }

    pub fn container(mut self, c: ContainerSpec) -> PodManifest {
        self.containers.push(c);
        self
    }

    pub fn hostname(mut self, hostname: &str) -> PodManifest {
        self.hostname = Some(hostname.into());
        self
    }

    pub fn share_process_namespace(mut self) -> PodManifest {
        self.share_process_namespace = true;
        self
    }

    /// `spec.hostNetwork: true`: the pod uses the node's network namespace.
    pub fn host_network(mut self) -> PodManifest {
        self.host_network = true;
        self
    }

    /// Pod-level `spec.resources.limits[resource] = quantity`.
    pub fn pod_limit(mut self, resource: &str, quantity: &str) -> PodManifest {
        self.pod_limits.push((resource.into(), quantity.into()));
        self
    }

    pub fn to_json(&self) -> Value {
        let mut spec = Map::new();
        spec.insert(
            "containers".into(),
            Value::Array(self.containers.iter().map(ContainerSpec::to_json).collect()),
        );
        if let Some(h) = &self.hostname {
            spec.insert("hostname".into(), json!(h));
        }
        if self.share_process_namespace {
            spec.insert("shareProcessNamespace".into(), json!(true));
        }
        if self.host_network {
            spec.insert("hostNetwork".into(), json!(true));
        }
        // Deleting a test pod should not wait for sleeping containers.
        spec.insert("terminationGracePeriodSeconds".into(), json!(0));
        if !self.pod_limits.is_empty() {
            let limits: Map<String, Value> = self
                .pod_limits
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect();
            spec.insert("resources".into(), json!({ "limits": limits }));
        }
        spec.extend(self.spec_fields.clone());
        json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": self.name,
                "labels": {"app.kubernetes.io/part-of": "podlab-conformance"},
            },
            "spec": spec,
        })
    }

    pub fn to_yaml(&self) -> String {
        manifest_yaml(self.to_json())
    }
}

/// The YAML the suite hands a runtime for `manifest`. Every container
/// without a pull policy gets `IfNotPresent`, so a probe image side-loaded
/// on a real cluster's node is used: with a `:latest` tag Kubernetes would
/// default to `Always` and fail to pull it.
pub fn manifest_yaml(mut manifest: Value) -> String {
    for list in ["initContainers", "containers"] {
        if let Some(containers) = manifest["spec"][list].as_array_mut() {
            for c in containers.iter_mut().filter_map(Value::as_object_mut) {
                c.entry("imagePullPolicy")
                    .or_insert_with(|| json!("IfNotPresent"));
            }
        }
    }
    // Serialising a JSON value cannot fail; fall back to JSON (valid YAML
    // too) rather than panic if it ever did.
    serde_norway::to_string(&manifest).unwrap_or_else(|_| manifest.to_string())
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
            Err(e) => last = e.to_string(),
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
        rt.create_pod(&manifest_yaml(manifest))
            .map_err(|e| fail(format!("the runtime refused pod {}: {e}", guard.name)))?;
        Ok(guard)
    }

    /// Runs `sh -c script` in `container`; its stdout.
    pub fn sh(&self, ctx: &Ctx, container: &str, script: &str) -> Result<String, Outcome> {
        let argv = ["sh".to_string(), "-c".to_string(), script.to_string()];
        let out = self
            .rt
            .exec(&self.name, container, &argv, ctx.timeouts.exec)
            .map_err(|e| fail(format!("exec in {}/{container}: {e}", self.name)))?;
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
            eprintln!("warning: could not delete pod {}: {e}", self.name);
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
        rt.create_pod(&manifest.to_yaml())
            .map_err(|e| fail(format!("the runtime refused pod {}: {e}", manifest.name)))?;
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
        runtime::wait_running(self.rt, &self.name, self.ctx.timeouts.start)
            .map_err(|e| fail(format!("pod {} did not start: {e}", self.name)))
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
            .map_err(|e| fail(format!("exec in {}/{container}: {e}", self.name)))
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
        .map_err(|e| fail(format!("exec in {pod}/{container}: {e}")))?;
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
            eprintln!("warning: could not delete pod {}: {e}", self.name);
        }
    }
}

/// The first stdout line of a probe run as a JSON object.
pub fn parse_probe(out: &ExecOutput) -> Result<Value, String> {
    if out.exit_code != 0 {
        return Err("did not run".into());
    }
    let line = out
        .stdout
        .lines()
        .find(|l| !l.trim().is_empty())
        .ok_or("printed nothing")?;
    match serde_json::from_str::<Value>(line) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err("printed no JSON object".into()),
    }
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

/// Whether a probe operation succeeded (`"ok": true`).
pub fn ok(v: &Value) -> bool {
    v.get("ok").and_then(Value::as_bool) == Some(true)
}

/// The errno name of a failed probe operation ("ECONNREFUSED"), or "".
pub fn error_name(v: &Value) -> &str {
    v.get("error").and_then(Value::as_str).unwrap_or("")
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
