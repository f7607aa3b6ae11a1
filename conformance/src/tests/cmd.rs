//! What a container runs: its command and args against the image's
//! Entrypoint and Cmd, its working directory, its environment (the image's
//! Env merged with its own) and `$(VAR)` references in env, command and
//! args.
//!
//! The fixture image `entrypoint` (xtask/src/fixtures.rs) has an Entrypoint
//! that writes its argv to /tmp/argv and sleeps, a Cmd of two arguments and
//! Env of its own; pods that set a command run the same shell script under
//! another name, so every combination leaves its argv in the same place.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};

use crate::pods::{self, RawPod};
use crate::runtime::{self, Runtime};
use crate::suite::{fail, Check, Ctx, Outcome, TestCase};

pub const CASES: &[TestCase] = &[
    case!("CMD-001", command_and_args_against_the_image,
        must: "A container MUST run the image's Entrypoint with the image's Cmd when it sets neither command nor args, its command alone when it sets only command, the image's Entrypoint followed by its args when it sets only args, and its command followed by its args when it sets both.",
        method: "Four pods at once from the entrypoint fixture image (Entrypoint: a shell script, named image-entrypoint, that writes its argv to /tmp/argv and sleeps; Cmd: `image-cmd-1`, `image cmd 2`), one per combination, under restartPolicy Never; the pod's command is the same script named pod-command, its args `pod-arg-1`, `pod arg 2`. Reads /tmp/argv by exec once each pod runs and compares it, argument by argument, with the argv Kubernetes documents for the combination."),
    case!("CMD-002", working_dir_is_the_process_cwd,
        must: "A container's workingDir MUST be the working directory of its process, in place of the image's WorkingDir.",
        method: "Runs the nonroot fixture image (WorkingDir /home/app) with workingDir /tmp; `readlink /proc/1/cwd` by exec must print /tmp."),
    case!("CMD-003", image_env_merges_with_container_env,
        must: "A container's process MUST get the image's Env merged with the container's env, the container's value winning for a name both set.",
        method: "Runs the entrypoint fixture image (Env IMAGE_ONLY=from-image, SHARED=from-image and a PATH) with env SHARED=from-pod and POD_ONLY=from-pod; the environment of the container's PID 1, read from /proc/1/environ by exec, must hold IMAGE_ONLY=from-image, SHARED=from-pod (once), POD_ONLY=from-pod and the image's PATH."),
    case!("CMD-004", env_references_expand,
        must: "A `$(VAR)` reference in an env value MUST be replaced by the value of an env entry defined before it, `$$(VAR)` MUST give the literal `$(VAR)`, and a reference to a name not defined before it in the container's env (a later entry, an image Env variable, no variable at all) MUST stay as written.",
        method: "Runs the entrypoint fixture image with env A=alpha, B=$(A)-beta, C=$$(A), D=$(PODLAB_UNDEFINED), E=$(LATER), LATER=later, F=$(IMAGE_ONLY), G=$(A)$(A); /proc/1/environ of the container, read by exec, must hold B=alpha-beta, C=$(A), D=$(PODLAB_UNDEFINED), E=$(LATER), F=$(IMAGE_ONLY), G=alphaalpha."),
    case!("CMD-005", command_and_args_references_expand,
        must: "`$(VAR)` references in a container's command and args MUST be replaced by the values of the container's env, `$$(VAR)` MUST give the literal `$(VAR)`, and a reference to a name the container's env does not define (an image Env variable, no variable at all) MUST stay as written.",
        method: "Runs the entrypoint fixture image with env A=alpha, B=$(A)-beta, command the argv-writing script named `$(A)` and args `$(B)`, `$$(A)`, `$(PODLAB_UNDEFINED)`, `x$(A)y`, `$(IMAGE_ONLY)`; /tmp/argv, read by exec, must list alpha, alpha-beta, $(A), $(PODLAB_UNDEFINED), xalphay, $(IMAGE_ONLY)."),
];

/// The fixture image with Entrypoint, Cmd and Env set.
pub fn entrypoint_image(ctx: &Ctx) -> String {
    ctx.fixture_image("entrypoint")
}

/// The fixture image with a non-root User and a WorkingDir.
pub fn nonroot_image(ctx: &Ctx) -> String {
    ctx.fixture_image("nonroot")
}

/// What the entrypoint image's Entrypoint runs: its argv ($0 first) into
/// /tmp/argv, renamed into place so a reader never sees half of it.
const ARGV_SCRIPT: &str =
    r#"printf '%s\n' "$0" "$@" > /tmp/.argv; mv /tmp/.argv /tmp/argv; exec sleep 3600"#;

/// A command running [`ARGV_SCRIPT`] as `name` (its `$0`).
fn script_command(name: &str) -> Value {
    json!(["/bin/sh", "-c", ARGV_SCRIPT, name])
}

/// Creates the pods of `specs` (container fields of a single container
/// `app`, restartPolicy Never so a command that cannot run ends the pod),
/// then waits until each runs.
pub fn start_pods<'a>(
    rt: &'a dyn Runtime,
    ctx: &Ctx,
    prefix: &str,
    specs: Vec<Value>,
) -> Result<Vec<RawPod<'a>>, Outcome> {
    let mut pods = Vec::new();
    for container in specs {
        let mut app = json!({"name": "app"});
        if let (Some(app), Value::Object(fields)) = (app.as_object_mut(), container) {
            app.extend(fields);
        }
        let spec = json!({"restartPolicy": "Never", "containers": [app]});
        pods.push(RawPod::create(rt, ctx, prefix, spec)?);
    }
    for pod in &pods {
        runtime::wait_running(rt, &pod.name, ctx.timeouts.start)
            .map_err(|e| fail(format!("pod {} did not start: {e}", pod.name)))?;
    }
    Ok(pods)
}

/// The argv the container's script wrote, one argument per line.
pub fn recorded_argv(rt: &dyn Runtime, ctx: &Ctx, pod: &str) -> Result<Vec<String>, Outcome> {
    let within = Duration::from_secs(10);
    pods::exec_until(
        rt,
        ctx,
        pod,
        "app",
        &["cat", "/tmp/argv"],
        within,
        |out| !out.is_empty(),
    )
    .map(|out| out.lines().map(String::from).collect())
    .map_err(|last| {
        fail(format!(
            "pod {pod}: no /tmp/argv written by the container's process within {within:?} (last exec: {last})"
        ))
    })
}

/// The environment of the container's PID 1.
pub fn pid1_environ(pod: &RawPod, ctx: &Ctx) -> Result<BTreeMap<String, Vec<String>>, Outcome> {
    let out = pod.sh(ctx, "app", r"tr '\0' '\n' < /proc/1/environ")?;
    let mut env: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in out.lines() {
        if let Some((k, v)) = line.split_once('=') {
            env.entry(k.to_string()).or_default().push(v.to_string());
        }
    }
    if env.is_empty() {
        return Err(fail(format!(
            "pod {}: read no environment from /proc/1/environ (output {out:?})",
            pod.name
        )));
    }
    Ok(env)
}

/// Fails unless `env` holds exactly one `name` whose value is `want`.
pub fn expect_var(
    env: &BTreeMap<String, Vec<String>>,
    name: &str,
    want: &str,
    why: &str,
    pod: &str,
) -> Check {
    match env.get(name).map(Vec::as_slice) {
        Some([got]) if got == want => Ok(()),
        got => Err(fail(format!(
            "pod {pod}: {name} is {got:?} instead of {want:?} ({why}); whole environment: {env:?}"
        ))),
    }
}

fn env_list(pairs: &[(&str, &str)]) -> Value {
    Value::Array(
        pairs
            .iter()
            .map(|(k, v)| json!({"name": k, "value": v}))
            .collect(),
    )
}

fn command_and_args_against_the_image(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let image = entrypoint_image(ctx);
    let pod_args = json!(["pod-arg-1", "pod arg 2"]);
    let cases: [(&str, Value, &[&str]); 4] = [
        (
            "neither command nor args",
            json!({"image": image}),
            &["image-entrypoint", "image-cmd-1", "image cmd 2"],
        ),
        (
            "only command",
            json!({"image": image, "command": script_command("pod-command")}),
            &["pod-command"],
        ),
        (
            "only args",
            json!({"image": image, "args": pod_args.clone()}),
            &["image-entrypoint", "pod-arg-1", "pod arg 2"],
        ),
        (
            "command and args",
            json!({"image": image, "command": script_command("pod-command"), "args": pod_args}),
            &["pod-command", "pod-arg-1", "pod arg 2"],
        ),
    ];
    let specs = cases.iter().map(|(_, spec, _)| spec.clone()).collect();
    let pods = start_pods(rt, ctx, "cmd-argv", specs)?;
    for ((what, _, want), pod) in cases.iter().zip(&pods) {
        let got = recorded_argv(rt, ctx, &pod.name)?;
        if got != *want {
            return Err(fail(format!(
                "pod {} ({what}) ran with argv {got:?} instead of {want:?} \
                 (image Entrypoint: image-entrypoint, image Cmd: [\"image-cmd-1\", \"image cmd 2\"])",
                pod.name
            )));
        }
    }
    Ok(())
}

fn working_dir_is_the_process_cwd(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let pods = start_pods(
        rt,
        ctx,
        "cmd-workdir",
        vec![json!({"image": nonroot_image(ctx), "workingDir": "/tmp"})],
    )?;
    let pod = &pods[0];
    let cwd = pod.sh(ctx, "app", "readlink /proc/1/cwd")?;
    if cwd.trim() != "/tmp" {
        return Err(fail(format!(
            "pod {}: the container's process runs in {:?}, not in its workingDir /tmp (the image's WorkingDir is /home/app)",
            pod.name,
            cwd.trim()
        )));
    }
    Ok(())
}

fn image_env_merges_with_container_env(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let env = env_list(&[("SHARED", "from-pod"), ("POD_ONLY", "from-pod")]);
    let pods = start_pods(
        rt,
        ctx,
        "cmd-env",
        vec![json!({"image": entrypoint_image(ctx), "env": env})],
    )?;
    let pod = &pods[0];
    let got = pid1_environ(pod, ctx)?;
    let path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    for (name, want, why) in [
        ("IMAGE_ONLY", "from-image", "set by the image only"),
        (
            "SHARED",
            "from-pod",
            "set by both: the container's value wins",
        ),
        ("POD_ONLY", "from-pod", "set by the container only"),
        ("PATH", path, "the image's PATH"),
    ] {
        expect_var(&got, name, want, why, &pod.name)?;
    }
    Ok(())
}

fn env_references_expand(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let env = env_list(&[
        ("A", "alpha"),
        ("B", "$(A)-beta"),
        ("C", "$$(A)"),
        ("D", "$(PODLAB_UNDEFINED)"),
        ("E", "$(LATER)"),
        ("LATER", "later"),
        ("F", "$(IMAGE_ONLY)"),
        ("G", "$(A)$(A)"),
    ]);
    let pods = start_pods(
        rt,
        ctx,
        "cmd-envref",
        vec![json!({"image": entrypoint_image(ctx), "env": env})],
    )?;
    let pod = &pods[0];
    let got = pid1_environ(pod, ctx)?;
    for (name, want, why) in [
        ("B", "alpha-beta", "$(A)-beta with A defined before it"),
        ("C", "$(A)", "$$(A) is an escaped reference"),
        (
            "D",
            "$(PODLAB_UNDEFINED)",
            "a reference to no variable stays",
        ),
        ("E", "$(LATER)", "LATER is defined after E"),
        (
            "F",
            "$(IMAGE_ONLY)",
            "an image Env variable is not the container's env",
        ),
        ("G", "alphaalpha", "two references in one value"),
    ] {
        expect_var(&got, name, want, why, &pod.name)?;
    }
    Ok(())
}

fn command_and_args_references_expand(rt: &dyn Runtime, ctx: &Ctx) -> Check {
    let container = json!({
        "image": entrypoint_image(ctx),
        "env": env_list(&[("A", "alpha"), ("B", "$(A)-beta")]),
        "command": script_command("$(A)"),
        "args": ["$(B)", "$$(A)", "$(PODLAB_UNDEFINED)", "x$(A)y", "$(IMAGE_ONLY)"],
    });
    let pods = start_pods(rt, ctx, "cmd-argref", vec![container])?;
    let pod = &pods[0];
    let got = recorded_argv(rt, ctx, &pod.name)?;
    let want = [
        "alpha",
        "alpha-beta",
        "$(A)",
        "$(PODLAB_UNDEFINED)",
        "xalphay",
        "$(IMAGE_ONLY)",
    ];
    if got != want {
        return Err(fail(format!(
            "pod {}: command [.., \"$(A)\"] and args [\"$(B)\", \"$$(A)\", \"$(PODLAB_UNDEFINED)\", \"x$(A)y\", \"$(IMAGE_ONLY)\"] \
             with env A=alpha, B=$(A)-beta ran as {got:?} instead of {want:?}",
            pod.name
        )));
    }
    Ok(())
}
