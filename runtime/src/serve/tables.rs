//! Server-side tables (`Accept: ...;as=Table;g=meta.k8s.io;v=v1`): the rows
//! kubectl prints for pods, nodes and events, with its column names. A
//! column of priority 1 is shown by `-o wide` only.

use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};

use crate::lifecycle;
use crate::store::unix_now;

/// What a row carries besides its cells (`?includeObject=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Include {
    None,
    Metadata,
    Object,
}

impl Include {
    pub fn parse(v: Option<&str>) -> Include {
        match v {
            Some("None") => Include::None,
            Some("Object") => Include::Object,
            _ => Include::Metadata,
        }
    }

    fn embed(self, object: &Value) -> Value {
        match self {
            Include::None => Value::Null,
            Include::Object => object.clone(),
            Include::Metadata => json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": object.get("metadata").cloned().unwrap_or(Value::Null),
            }),
        }
    }
}

fn column(name: &str, type_: &str, priority: i32, description: &str) -> Value {
    let format = if name == "Name" { "name" } else { "" };
    json!({"name": name, "type": type_, "format": format, "description": description, "priority": priority})
}

/// A Table of `rows` (cells with the object each is of).
pub fn table(
    columns: Vec<Value>,
    rows: Vec<(Vec<Value>, Value)>,
    include: Include,
    rv: u64,
) -> Value {
    let rows: Vec<Value> = rows
        .into_iter()
        .map(|(cells, object)| {
            let mut row = json!({"cells": cells});
            let embedded = include.embed(&object);
            if !embedded.is_null() {
                row["object"] = embedded;
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": rv.to_string()},
        "columnDefinitions": columns,
        "rows": rows,
    })
}

/// The time since an RFC 3339 timestamp, as kubectl shortens it.
pub fn age_of(time: Option<&str>) -> String {
    time.and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok())
        .map(|t| lifecycle::human_duration(unix_now() - t.as_second()))
        .unwrap_or_else(|| "<unknown>".into())
}

pub fn pod_columns() -> Vec<Value> {
    vec![
        column("Name", "string", 0, "The pod's name."),
        column("Ready", "string", 0, "Ready containers of all containers."),
        column(
            "Status",
            "string",
            0,
            "What the pod is doing, as kubectl summarizes it.",
        ),
        column("Restarts", "string", 0, "Container restarts."),
        column("Age", "string", 0, "Time since the pod was created."),
        column("IP", "string", 1, "The pod's IP address."),
        column("Node", "string", 1, "The node the pod is bound to."),
        column("Nominated Node", "string", 1, "Unused on one node."),
        column(
            "Readiness Gates",
            "string",
            1,
            "Readiness gates met of all.",
        ),
    ]
}

pub fn pod_cells(pod: &Pod) -> Vec<Value> {
    let status = pod.status.clone().unwrap_or_default();
    let (ready, total) = lifecycle::ready_count(pod, &status);
    let mut shown = lifecycle::display_status(pod, &status);
    if pod.metadata.deletion_timestamp.is_some() && shown != "Completed" && shown != "Error" {
        shown = "Terminating".into();
    }
    let gates = pod
        .spec
        .as_ref()
        .and_then(|s| s.readiness_gates.as_ref())
        .filter(|g| !g.is_empty())
        .map(|g| {
            let met = g
                .iter()
                .filter(|g| lifecycle::condition_is_true(&status, &g.condition_type))
                .count();
            format!("{met}/{}", g.len())
        })
        .unwrap_or_else(|| "<none>".into());
    let created = pod
        .metadata
        .creation_timestamp
        .as_ref()
        .map(|t| t.0.to_string());
    vec![
        json!(pod.metadata.name.clone().unwrap_or_default()),
        json!(format!("{ready}/{total}")),
        json!(shown),
        json!(lifecycle::restarts(pod, &status).to_string()),
        json!(age_of(created.as_deref())),
        json!(status.pod_ip.clone().unwrap_or_else(|| "<none>".into())),
        json!(pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_else(|| "<none>".into())),
        json!("<none>"),
        json!(gates),
    ]
}

pub fn node_columns() -> Vec<Value> {
    vec![
        column("Name", "string", 0, "The node's name."),
        column("Status", "string", 0, "Ready or NotReady."),
        column("Roles", "string", 0, "The node's roles."),
        column("Age", "string", 0, "Time since the node registered."),
        column("Version", "string", 0, "The kubelet's version."),
        column("Internal-IP", "string", 1, "The node's internal address."),
        column("External-IP", "string", 1, "The node's external address."),
        column("OS-Image", "string", 1, "The operating system."),
        column("Kernel-Version", "string", 1, "The kernel."),
        column("Container-Runtime", "string", 1, "The container runtime."),
    ]
}

pub fn node_cells(node: &Value) -> Vec<Value> {
    let s = |v: &Value| v.as_str().unwrap_or("<none>").to_string();
    let info = &node["status"]["nodeInfo"];
    let internal = node["status"]["addresses"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["type"] == "InternalIP"))
        .map(|a| s(&a["address"]))
        .unwrap_or_else(|| "<none>".into());
    vec![
        node["metadata"]["name"].clone(),
        json!("Ready"),
        json!("control-plane"),
        json!(age_of(node["metadata"]["creationTimestamp"].as_str())),
        info["kubeletVersion"].clone(),
        json!(internal),
        json!("<none>"),
        info["osImage"].clone(),
        info["kernelVersion"].clone(),
        info["containerRuntimeVersion"].clone(),
    ]
}

pub fn event_columns() -> Vec<Value> {
    vec![
        column(
            "Last Seen",
            "string",
            0,
            "Time since the event was last seen.",
        ),
        column("Type", "string", 0, "Normal or Warning."),
        column("Reason", "string", 0, "Why the event happened."),
        column("Object", "string", 0, "The object it is about."),
        column("Message", "string", 0, "What happened."),
        column("Source", "string", 1, "Who reported it."),
        column("First Seen", "string", 1, "Time since it was first seen."),
        column("Count", "string", 1, "How often it happened."),
        column("Name", "string", 1, "The event's name."),
    ]
}

pub fn event_cells(e: &Value) -> Vec<Value> {
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    vec![
        json!(age_of(e["lastTimestamp"].as_str())),
        e["type"].clone(),
        e["reason"].clone(),
        json!(format!("pod/{}", s(&e["involvedObject"]["name"]))),
        e["message"].clone(),
        json!(s(&e["source"]["component"])),
        json!(age_of(e["firstTimestamp"].as_str())),
        json!(e["count"].as_i64().unwrap_or(1).to_string()),
        e["metadata"]["name"].clone(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_rows_have_kubectls_columns() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web"},
            "spec": {"nodeName": "n1", "containers": [{"name": "a"}]},
            "status": {"phase": "Running", "podIP": "10.0.0.2",
                "containerStatuses": [{"name": "a", "ready": true, "restartCount": 2, "image": "x", "imageID": "",
                    "state": {"running": {}}}]}
        }))
        .unwrap();
        let cells = pod_cells(&pod);
        assert_eq!(cells.len(), pod_columns().len());
        assert_eq!(cells[0], "web");
        assert_eq!(cells[1], "1/1");
        assert_eq!(cells[2], "Running");
        assert_eq!(cells[3], "2");
        assert_eq!(cells[5], "10.0.0.2");
        assert_eq!(cells[6], "n1");
        let t = table(
            pod_columns(),
            vec![(cells, serde_json::to_value(&pod).unwrap())],
            Include::Metadata,
            7,
        );
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(t["metadata"]["resourceVersion"], "7");
    }
}
