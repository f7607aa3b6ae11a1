//! One configurable fake runtime for the suite's own unit tests. By
//! default it declares nothing, accepts every pod and reports it Running
//! with every container started, and answers every exec with exit 0 and no
//! output; the builder methods change what a test needs changed.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};

use crate::runtime::{Capabilities, Error, ExecOutput, Runtime};

type ExecFn = dyn Fn(&[&str]) -> Result<ExecOutput, Error> + Send + Sync;

pub struct FakeRuntime {
    caps: Capabilities,
    /// Container names of each pod created and not deleted.
    pods: Mutex<HashMap<String, Vec<String>>>,
    /// Statuses `get_pod` hands out in turn, the last one repeated; the
    /// pod then has one container, `app`, and exists without being created.
    script: Mutex<Vec<Value>>,
    exec: Box<ExecFn>,
}

impl FakeRuntime {
    pub fn new() -> FakeRuntime {
        FakeRuntime {
            caps: Capabilities::default(),
            pods: Mutex::new(HashMap::new()),
            script: Mutex::new(Vec::new()),
            exec: Box::new(|_| Ok(ExecOutput::default())),
        }
    }

    /// Declares these capabilities.
    pub fn claiming(mut self, caps: Capabilities) -> FakeRuntime {
        self.caps = caps;
        self
    }

    /// Reports its pods through these statuses, one per `get_pod`.
    pub fn scripted(self, statuses: Vec<Value>) -> FakeRuntime {
        *self.script.lock().unwrap_or_else(|e| e.into_inner()) = statuses;
        self
    }

    /// Answers execs (argv) with `f`.
    pub fn on_exec(
        mut self,
        f: impl Fn(&[&str]) -> Result<ExecOutput, Error> + Send + Sync + 'static,
    ) -> FakeRuntime {
        self.exec = Box::new(f);
        self
    }

    fn scripted_status(&self) -> Option<Value> {
        let mut script = self.script.lock().unwrap_or_else(|e| e.into_inner());
        match script.len() {
            0 => None,
            1 => Some(script[0].clone()),
            _ => Some(script.remove(0)),
        }
    }
}

impl Default for FakeRuntime {
    fn default() -> Self {
        FakeRuntime::new()
    }
}

fn pod(name: &str, containers: &[String], status: Value) -> Result<Pod, Error> {
    let containers: Vec<Value> = containers.iter().map(|c| json!({"name": c})).collect();
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {"containers": containers},
        "status": status,
    }))
    .map_err(|e| Error::Other(e.to_string()))
}

impl Runtime for FakeRuntime {
    fn name(&self) -> &str {
        "fake"
    }
    fn capabilities(&self) -> Capabilities {
        self.caps.clone()
    }
    fn probe_image(&self) -> String {
        "probe".into()
    }
    fn create_pod(&self, yaml: &str) -> Result<(), Error> {
        let v: Value = serde_norway::from_str(yaml).map_err(|e| Error::Other(e.to_string()))?;
        let name = v["metadata"]["name"].as_str().unwrap_or_default();
        let containers = v["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str().map(String::from))
            .collect();
        self.pods
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_string(), containers);
        Ok(())
    }
    fn get_pod(&self, name: &str) -> Result<Option<Pod>, Error> {
        if let Some(status) = self.scripted_status() {
            return pod(name, &["app".to_string()], status).map(Some);
        }
        let pods = self.pods.lock().unwrap_or_else(|e| e.into_inner());
        let Some(containers) = pods.get(name) else {
            return Ok(None);
        };
        let statuses: Vec<Value> = containers
            .iter()
            .map(|c| {
                json!({"name": c, "image": "probe", "imageID": "", "ready": true,
                       "restartCount": 0, "started": true,
                       "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}})
            })
            .collect();
        let status = json!({"phase": "Running", "containerStatuses": statuses});
        pod(name, containers, status).map(Some)
    }
    fn exec(&self, _: &str, _: &str, argv: &[String], _: Duration) -> Result<ExecOutput, Error> {
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        (self.exec)(&argv)
    }
    fn delete_pod(&self, name: &str) -> Result<(), Error> {
        self.pods
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_pods_run_until_deleted() {
        let rt = FakeRuntime::new();
        assert!(rt.get_pod("p").unwrap().is_none());
        rt.create_pod("metadata: {name: p}\nspec: {containers: [{name: a}, {name: b}]}\n")
            .unwrap();
        let pod = rt.get_pod("p").unwrap().unwrap();
        assert_eq!(crate::runtime::phase(&pod), "Running");
        assert_eq!(crate::runtime::container_statuses(&pod).len(), 2);
        rt.delete_pod("p").unwrap();
        assert!(rt.get_pod("p").unwrap().is_none());
    }
}
