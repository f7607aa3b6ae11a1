//! A runtime that claims every capability and delivers none of them must
//! fail the tests of each claim, never skip them (a skip would let a green
//! run hide that the property was never checked).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};

use crate::adapters::cli::parse_capabilities;
use crate::runtime::{Capabilities, Error, ExecOutput, Runtime};
use crate::suite::{Ctx, Outcome, Timeouts};

/// Declares everything; runs every pod at once with no podIP and no
/// hostIP; its containers see no cgroup and may not set the hostname.
struct Liar {
    caps: Capabilities,
    containers: Mutex<HashMap<String, Vec<String>>>,
}

impl Runtime for Liar {
    fn name(&self) -> &str {
        "liar"
    }
    fn capabilities(&self) -> Capabilities {
        self.caps.clone()
    }
    fn probe_image(&self) -> String {
        "probe".into()
    }
    fn create_pod(&self, yaml: &str) -> Result<(), Error> {
        let v: Value = serde_norway::from_str(yaml).map_err(|e| Error::Other(e.to_string()))?;
        let name = v["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let names = v["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str().map(String::from))
            .collect();
        self.containers.lock().unwrap().insert(name, names);
        Ok(())
    }
    fn get_pod(&self, name: &str) -> Result<Option<Pod>, Error> {
        let Some(names) = self.containers.lock().unwrap().get(name).cloned() else {
            return Ok(None);
        };
        let statuses: Vec<Value> = names
            .iter()
            .map(|c| {
                json!({"name": c, "image": "probe", "imageID": "", "ready": true,
                            "restartCount": 0, "started": true,
                            "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}})
            })
            .collect();
        let containers: Vec<Value> = names.iter().map(|c| json!({"name": c})).collect();
        Ok(Some(
            serde_json::from_value(json!({
                "metadata": {"name": name},
                "spec": {"containers": containers},
                "status": {"phase": "Running", "containerStatuses": statuses},
            }))
            .map_err(|e| Error::Other(e.to_string()))?,
        ))
    }
    fn exec(&self, _: &str, _: &str, argv: &[String], _: Duration) -> Result<ExecOutput, Error> {
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let stdout = match argv.as_slice() {
            ["probe", "cgroup", ..] => json!({"ok": true, "visible": false}),
            ["probe", "sethostname", ..] => json!({"ok": false, "errno": 1, "error": "EPERM"}),
            _ => return Err(Error::Other(format!("liar: no {argv:?}"))),
        };
        Ok(ExecOutput {
            stdout: format!("{stdout}\n"),
            ..ExecOutput::default()
        })
    }
    fn delete_pod(&self, name: &str) -> Result<(), Error> {
        self.containers.lock().unwrap().remove(name);
        Ok(())
    }
}

#[test]
fn a_claimed_capability_that_is_missing_fails() {
    let rt = Liar {
        caps: parse_capabilities("all,container-pids=64").unwrap(),
        containers: Mutex::new(HashMap::new()),
    };
    let ctx = Ctx::new(
        &rt,
        Timeouts {
            start: Duration::from_secs(2),
            exec: Duration::from_secs(2),
            settle: Duration::from_millis(100),
        },
    );
    let all = crate::tests::all();
    // pod-ip, hostIP, cgroup-visible, privileged and exec-timeout, each
    // claimed and missing.
    for id in [
        "NET-004", "NET-011", "NET-012", "NET-014", "NET-016", "CGR-001", "CGR-002", "CGR-003",
        "UTS-005", "PORT-001", "EXEC-004",
    ] {
        let case = all.iter().find(|c| c.id == id).unwrap();
        match (case.run)(&rt, &ctx) {
            Outcome::Failed(why) => eprintln!("{id} failed as it must: {why}"),
            other => panic!("{id} against a runtime that claims and lacks: {other:?}"),
        }
    }
}

#[test]
fn a_claimed_registry_that_is_not_there_fails() {
    // Port 1 on loopback: nothing listens, so no tag can be made or pulled.
    let rt = Liar {
        caps: parse_capabilities("all,registry=127.0.0.1:1").unwrap(),
        containers: Mutex::new(HashMap::new()),
    };
    let ctx = Ctx::new(
        &rt,
        Timeouts {
            start: Duration::from_secs(2),
            exec: Duration::from_secs(2),
            settle: Duration::from_millis(100),
        },
    );
    let all = crate::tests::all();
    for id in ["IMAGE-003", "IMAGE-004", "IMAGE-005", "IMAGE-006"] {
        let case = all.iter().find(|c| c.id == id).unwrap();
        match (case.run)(&rt, &ctx) {
            Outcome::Failed(why) => eprintln!("{id} failed as it must: {why}"),
            other => panic!("{id} against a runtime that claims and lacks: {other:?}"),
        }
    }
}
