//! The downward API: facts about the pod and a container's resources
//! given to the container as environment variables and as the files of a
//! downwardAPI volume.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};

use crate::pods::{manifest_yaml, PodManifest, RawPod};
use crate::runtime::{self, Runtime};
use crate::suite::{fail, Check, Ctx, Outcome, TestCase};

pub const CASES: &[TestCase] = &[
    case!("DOWNWARD-001", env_from_pod_fields,
        must: "Environment variables from fieldRef MUST hold the pod's name, namespace, uid, pod IP, host IP, node name and a label's value, as the pod object reports them, and the pod MUST report its host IP.",
        method: "A pod whose container takes metadata.name, metadata.namespace, metadata.uid, status.podIP (when the runtime declares pod-ip), status.hostIP, spec.nodeName and metadata.labels['podlab.test/tier'] as environment variables. Once it runs, `env` in it is compared with the pod object: name and uid equal, namespace equal to the pod's (non-empty), podIP equal to status.podIP, hostIP equal to status.hostIP, which must be set, nodeName equal to spec.nodeName where the pod reports it and non-empty otherwise, the label's value equal."),
    case!("DOWNWARD-002", env_from_resources,
        must: "Environment variables from resourceFieldRef MUST hold the container's cpu and memory limits and requests divided by the divisor and rounded up, and the node's allocatable cpu and memory where no limit is set.",
        method: "Container app sets limits cpu 1250m, memory 64Mi and requests cpu 250m, memory 32Mi, and reads them (limits.cpu with divisor 1m and with none, requests.cpu with divisor 1m, limits.memory with divisor 1Mi, requests.memory with none) and, through containerName, the limits.cpu and limits.memory of a second container that sets none. Expected: 1250, 2, 250, 64, 33554432, and positive whole numbers for the unset limits."),
    case!("DOWNWARD-003", downward_volume,
        must: "A downwardAPI volume MUST hold the pod's labels and annotations (one key=\"value\" line each, sorted), name, uid and a container's cpu and memory limits and requests (the node's allocatable where no limit is set) in the files its items name, with the item's mode or else the volume's defaultMode, and the pod object MUST report the labels and annotations it was created with.",
        method: "A pod with two labels and an annotation mounts a downwardAPI volume (defaultMode 0440) with items labels (metadata.labels), annotations (metadata.annotations), name (mode 0400), uid, cpu_limit and cpu_request (limits.cpu and requests.cpu of app, divisor 1m), mem_limit and mem_request (limits.memory and requests.memory of app, divisor 1Mi), bare_cpu and bare_mem (limits.cpu and limits.memory of container bare, which sets none), app limiting cpu 500m and memory 48Mi and requesting cpu 250m and memory 32Mi. Each file is read with cat and compared with the pod object and the resources: labels sorted as key=\"value\" lines, 500, 250, 48, 32, positive whole numbers for bare; `stat -L -c %a` must give 400 for name and 440 for uid; the pod object's labels and annotations must hold those it was given."),
    case!("DOWNWARD-004", bad_field_refused,
        must: "A pod whose environment refers to a pod field the downward API does not provide MUST be refused or its container never started.",
        method: "A pod whose env takes fieldRef metadata.nonexistent. Passes when the runtime refuses the pod; otherwise the container must not run and must show a waiting reason (CreateContainerConfigError or similar) within the start timeout."),
];

/// `env` of container `app` as a map.
fn env_of(pod: &RawPod, ctx: &Ctx) -> Result<BTreeMap<String, String>, Outcome> {
    let out = pod.sh(ctx, "app", "env")?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect())
}

fn field(name: &str, path: &str) -> Value {
    json!({"name": name, "valueFrom": {"fieldRef": {"fieldPath": path}}})
}

fn resource(name: &str, container: Option<&str>, res: &str, divisor: Option<&str>) -> Value {
    let mut sel = json!({"resource": res});
    if let Some(c) = container {
        sel["containerName"] = json!(c);
    }
    if let Some(d) = divisor {
        sel["divisor"] = json!(d);
    }
    json!({"name": name, "valueFrom": {"resourceFieldRef": sel}})
}

/// Creates a pod from `spec` with these extra labels and annotations.
fn create_with_meta<'a>(
    rt: &'a dyn Runtime,
    ctx: &Ctx,
    prefix: &str,
    spec: Value,
    labels: Value,
    annotations: Value,
) -> Result<RawPod<'a>, Outcome> {
    let mut manifest = PodManifest::new(ctx, prefix).to_json();
    if let (Some(base), Value::Object(extra)) = (manifest["spec"].as_object_mut(), spec) {
        base.extend(extra);
    }
    if let (Some(base), Value::Object(extra)) =
        (manifest["metadata"]["labels"].as_object_mut(), labels)
    {
        base.extend(extra);
    }
    manifest["metadata"]["annotations"] = annotations;
    let name = manifest["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let guard = RawPod { rt, name };
    rt.create_pod(&manifest_yaml(manifest))
        .map_err(|e| fail(format!("the runtime refused pod {}: {e}", guard.name)))?;
    Ok(guard)
}

fn running(rt: &dyn Runtime, ctx: &Ctx, pod: &RawPod) -> Result<Pod, Outcome> {
    runtime::wait_running(rt, &pod.name, ctx.timeouts.start)
        .map_err(|e| fail(format!("pod {} did not start: {e}", pod.name)))
}

fn env_from_pod_fields(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let mut env = vec![
        field("POD_NAME", "metadata.name"),
        field("POD_NAMESPACE", "metadata.namespace"),
        field("POD_UID", "metadata.uid"),
        field("HOST_IP", "status.hostIP"),
        field("NODE_NAME", "spec.nodeName"),
        field("TIER", "metadata.labels['podlab.test/tier']"),
    ];
    if ctx.caps.pod_ip {
        env.push(field("POD_IP", "status.podIP"));
    }
    let pod = create_with_meta(
        rt,
        ctx,
        "downward-env",
        json!({"containers": [{"name": "app", "image": ctx.probe_image,
                               "command": ["sleep", "3600"], "env": env}]}),
        json!({"podlab.test/tier": "backend"}),
        Value::Null,
    )?;
    let p = running(rt, ctx, &pod)?;
    let vars = env_of(&pod, ctx)?;
    let get = |k: &str| vars.get(k).cloned().unwrap_or_default();
    let status = p.status.clone().unwrap_or_default();
    let spec = p.spec.clone().unwrap_or_default();
    let mut wrong = Vec::new();
    let mut expect = |var: &str, want: Option<String>| {
        let seen = get(var);
        let ok = match &want {
            Some(w) => &seen == w,
            None => !seen.is_empty(),
        };
        if !ok {
            let want = want.map_or("a non-empty value".to_string(), |w| format!("{w:?}"));
            wrong.push(format!("{var}={seen:?} (expected {want})"));
        }
    };
    expect("POD_NAME", Some(pod.name.clone()));
    expect("POD_NAMESPACE", p.metadata.namespace.clone());
    expect(
        "POD_UID",
        Some(
            p.metadata
                .uid
                .clone()
                .unwrap_or_else(|| "(no uid reported)".into()),
        ),
    );
    let host_ip = status.host_ip.clone().filter(|s| !s.is_empty());
    expect(
        "HOST_IP",
        Some(host_ip.unwrap_or_else(|| "(no status.hostIP reported)".into())),
    );
    expect(
        "NODE_NAME",
        spec.node_name.clone().filter(|s| !s.is_empty()),
    );
    expect("TIER", Some("backend".into()));
    if ctx.caps.pod_ip {
        expect(
            "POD_IP",
            Some(
                status
                    .pod_ip
                    .clone()
                    .unwrap_or_else(|| "(no podIP reported)".into()),
            ),
        );
    }
    if !wrong.is_empty() {
        return Err(fail(format!(
            "pod {}: downward API environment variables differ from the pod object: {}",
            pod.name,
            wrong.join(", ")
        )));
    }
    Ok(())
}

fn env_from_resources(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let env = json!([
        resource("CPU_LIMIT_M", None, "limits.cpu", Some("1m")),
        resource("CPU_LIMIT", None, "limits.cpu", None),
        resource("CPU_REQUEST_M", None, "limits.cpu", Some("1m")),
        resource("MEM_LIMIT_MI", None, "limits.memory", Some("1Mi")),
        resource("MEM_REQUEST", None, "requests.memory", None),
        resource("BARE_CPU_LIMIT", Some("bare"), "limits.cpu", Some("1m")),
        resource("BARE_MEM_LIMIT", Some("bare"), "limits.memory", None),
    ]);
    let mut env = env;
    // CPU_REQUEST_M reads the request, not the limit.
    env[2]["valueFrom"]["resourceFieldRef"]["resource"] = json!("requests.cpu");
    let pod = RawPod::create(
        rt,
        ctx,
        "downward-res",
        json!({"containers": [
            {"name": "app", "image": ctx.probe_image, "command": ["sleep", "3600"], "env": env,
             "resources": {"limits": {"cpu": "1250m", "memory": "64Mi"},
                           "requests": {"cpu": "250m", "memory": "32Mi"}}},
            {"name": "bare", "image": ctx.probe_image, "command": ["sleep", "3600"]}]}),
    )?;
    running(rt, ctx, &pod)?;
    let vars = env_of(&pod, ctx)?;
    let get = |k: &str| vars.get(k).cloned().unwrap_or_default();
    let mut wrong = Vec::new();
    for (var, want) in [
        ("CPU_LIMIT_M", "1250"),
        ("CPU_LIMIT", "2"),
        ("CPU_REQUEST_M", "250"),
        ("MEM_LIMIT_MI", "64"),
        ("MEM_REQUEST", "33554432"),
    ] {
        if get(var) != want {
            wrong.push(format!("{var}={:?} (expected {want:?})", get(var)));
        }
    }
    for var in ["BARE_CPU_LIMIT", "BARE_MEM_LIMIT"] {
        if !get(var).parse::<u64>().is_ok_and(|n| n > 0) {
            wrong.push(format!(
                "{var}={:?} (expected the node's allocatable, a positive whole number)",
                get(var)
            ));
        }
    }
    if !wrong.is_empty() {
        return Err(fail(format!(
            "pod {}: resourceFieldRef environment variables are wrong: {}",
            pod.name,
            wrong.join(", ")
        )));
    }
    Ok(())
}

fn downward_volume(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let item = |path: &str, field: &str| json!({"path": path, "fieldRef": {"fieldPath": field}});
    let res = |path: &str, c: &str, r: &str, d: &str| json!({"path": path, "resourceFieldRef": {"containerName": c, "resource": r, "divisor": d}});
    let mut name_item = item("name", "metadata.name");
    name_item["mode"] = json!(0o400);
    let pod = create_with_meta(
        rt,
        ctx,
        "downward-vol",
        json!({
            "volumes": [{"name": "info", "downwardAPI": {"defaultMode": 0o440, "items": [
                item("labels", "metadata.labels"),
                item("annotations", "metadata.annotations"),
                name_item,
                item("uid", "metadata.uid"),
                res("cpu_limit", "app", "limits.cpu", "1m"),
                res("cpu_request", "app", "requests.cpu", "1m"),
                res("mem_limit", "app", "limits.memory", "1Mi"),
                res("mem_request", "app", "requests.memory", "1Mi"),
                res("bare_cpu", "bare", "limits.cpu", "1m"),
                res("bare_mem", "bare", "limits.memory", "1Mi"),
            ]}}],
            "containers": [
                {"name": "app", "image": ctx.probe_image, "command": ["sleep", "3600"],
                 "resources": {"limits": {"cpu": "500m", "memory": "48Mi"},
                               "requests": {"cpu": "250m", "memory": "32Mi"}},
                 "volumeMounts": [{"name": "info", "mountPath": "/etc/podinfo"}]},
                {"name": "bare", "image": ctx.probe_image, "command": ["sleep", "3600"]}]}),
        json!({"zone": "a", "podlab.test/tier": "front"}),
        json!({"podlab.test/build": "42"}),
    )?;
    let p = running(rt, ctx, &pod)?;
    // Labels and annotations as Kubernetes writes them: sorted key="value" lines.
    let lines = |m: &Option<BTreeMap<String, String>>| {
        m.iter()
            .flatten()
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    // Runtimes may add annotations of their own: those the pod was given must be there.
    let mut wrong = Vec::new();
    let read = |file: &str| pod.sh(ctx, "app", &format!("cat /etc/podinfo/{file}"));
    let labels = read("labels")?;
    if labels.trim_end() != lines(&p.metadata.labels) {
        wrong.push(format!(
            "labels is {labels:?}, expected {:?}",
            lines(&p.metadata.labels)
        ));
    }
    let annotations = read("annotations")?;
    if !annotations.lines().any(|l| l == "podlab.test/build=\"42\"") {
        wrong.push(format!(
            "annotations is {annotations:?}, expected a line podlab.test/build=\"42\""
        ));
    }
    let uid = p.metadata.uid.clone().unwrap_or_default();
    for (file, want) in [
        ("name", pod.name.as_str()),
        ("uid", uid.as_str()),
        ("cpu_limit", "500"),
        ("cpu_request", "250"),
        ("mem_limit", "48"),
        ("mem_request", "32"),
    ] {
        let seen = read(file)?;
        if seen.trim_end() != want || want.is_empty() {
            wrong.push(format!("{file} is {seen:?}, expected {want:?}"));
        }
    }
    for file in ["bare_cpu", "bare_mem"] {
        let seen = read(file)?;
        if !seen.trim_end().parse::<u64>().is_ok_and(|n| n > 0) {
            wrong.push(format!(
                "{file} is {seen:?}, expected the node's allocatable, a positive whole number"
            ));
        }
    }
    let modes = pod.sh(
        ctx,
        "app",
        "stat -L -c %a /etc/podinfo/name /etc/podinfo/uid",
    )?;
    let modes: Vec<&str> = modes.split_whitespace().collect();
    if modes != ["400", "440"] {
        wrong.push(format!(
            "the modes of name and uid are {modes:?}, expected 400 (the item's mode) and 440 (the volume's defaultMode)"
        ));
    }
    let given = |m: &Option<BTreeMap<String, String>>, k: &str, v: &str| {
        m.as_ref().and_then(|m| m.get(k)).map(String::as_str) == Some(v)
    };
    if !given(&p.metadata.labels, "zone", "a")
        || !given(&p.metadata.labels, "podlab.test/tier", "front")
    {
        wrong.push(format!(
            "the pod object's labels are {:?}, without zone=a and podlab.test/tier=front it was created with",
            p.metadata.labels
        ));
    }
    if !given(&p.metadata.annotations, "podlab.test/build", "42") {
        wrong.push(format!(
            "the pod object's annotations are {:?}, without podlab.test/build=42 it was created with",
            p.metadata.annotations
        ));
    }
    if !wrong.is_empty() {
        return Err(fail(format!(
            "pod {}: its downwardAPI volume is wrong: {}",
            pod.name,
            wrong.join("; ")
        )));
    }
    Ok(())
}

fn bad_field_refused(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let spec = json!({"containers": [{"name": "app", "image": ctx.probe_image,
        "command": ["sleep", "3600"], "env": [field("BAD", "metadata.nonexistent")]}]});
    let mut manifest = PodManifest::new(ctx, "downward-bad").to_json();
    if let (Some(base), Value::Object(extra)) = (manifest["spec"].as_object_mut(), spec) {
        base.extend(extra);
    }
    let name = manifest["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let pod = RawPod { rt, name };
    if rt.create_pod(&manifest_yaml(manifest)).is_err() {
        return Ok(());
    }
    let deadline = Instant::now() + ctx.timeouts.start;
    loop {
        let p = rt
            .get_pod(&pod.name)?
            .ok_or_else(|| fail(format!("pod {} disappeared", pod.name)))?;
        let c = runtime::container_statuses(&p)
            .iter()
            .find(|c| c.name == "app")
            .cloned();
        let state = c.as_ref().and_then(|c| c.state.clone());
        if state
            .as_ref()
            .is_some_and(|s| s.running.is_some() || s.terminated.is_some())
        {
            return Err(fail(format!(
                "pod {}: a container whose env takes fieldRef metadata.nonexistent was started: {}",
                pod.name,
                runtime::describe(&p)
            )));
        }
        let reason = state
            .as_ref()
            .and_then(|s| s.waiting.as_ref())
            .and_then(|w| w.reason.clone())
            .unwrap_or_default();
        if reason.contains("Config") || reason.ends_with("Error") {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(fail(format!(
                "pod {}: a pod whose env takes fieldRef metadata.nonexistent was accepted and shows no refusal: {}",
                pod.name,
                runtime::describe(&p)
            )));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
