//! From a request to its handler; discovery, version, namespaces and the
//! node live here, pods and events in [`super::pods`], secrets in
//! [`super::secrets`].

use hyper::{Method, Response};
use serde_json::{json, Value};

use super::{json, pods, secrets, tables, ApiError, Body, Ctx, Req};

/// The Kubernetes version whose API podlab speaks (k8s-openapi's feature).
const KUBE_MAJOR: &str = "1";
const KUBE_MINOR: &str = "35";

pub fn route(ctx: &Ctx, req: &Req) -> Response<Body> {
    match dispatch(ctx, req) {
        Ok(r) => r,
        Err(e) => e.response(),
    }
}

fn dispatch(ctx: &Ctx, req: &Req) -> Result<Response<Body>, ApiError> {
    let segs: Vec<&str> = req.path.split('/').filter(|s| !s.is_empty()).collect();
    let get = req.method == Method::GET;
    match segs.as_slice() {
        ["version"] if get => Ok(json(200, &version())),
        ["healthz" | "livez" | "readyz"] if get => {
            Ok(super::respond(200, "text/plain", b"ok".to_vec()))
        }
        ["api"] if get => Ok(json(
            200,
            &json!({"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}]}),
        )),
        ["api", "v1"] if get => Ok(json(200, &resources())),
        ["openapi", "v3"] if get => Ok(json(
            200,
            &json!({"paths": {"api/v1": {"serverRelativeURL": format!("/openapi/v3/api/v1?hash={}", openapi_hash())}}}),
        )),
        ["openapi", "v3", "api", "v1"] if get => Ok(openapi_v1_response(req.q("hash"))),
        // No API groups: kubectl then uses the core group alone.
        ["apis"] if get => Ok(json(
            200,
            &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": []}),
        )),
        ["api", "v1", "namespaces"] => match req.method {
            Method::GET if req.is_watch() => super::watch::relisting(ctx, req, namespace_values),
            Method::GET => namespaces(ctx, req),
            Method::POST => create_namespace(ctx, req),
            _ => Err(ApiError::method_not_allowed()),
        },
        ["api", "v1", "namespaces", ns] => match req.method {
            Method::GET => namespace(ctx, ns),
            Method::DELETE => delete_namespace(ctx, ns),
            _ => Err(ApiError::method_not_allowed()),
        },
        ["api", "v1", "nodes"] if get && req.is_watch() => super::watch::nodes(ctx, req),
        ["api", "v1", "nodes"] if get => nodes(ctx, req),
        ["api", "v1", "nodes", name] if get => {
            let node = node(ctx);
            if node["metadata"]["name"] != *name {
                return Err(ApiError::not_found("nodes", name));
            }
            Ok(json(200, &node))
        }
        ["api", "v1", "pods"] if get => pods::list_or_watch(ctx, req, None),
        ["api", "v1", "secrets"] if get => secrets::list(ctx, req, None),
        ["api", "v1", "namespaces", ns, "secrets"] => match req.method {
            Method::GET => secrets::list(ctx, req, Some(ns)),
            Method::POST => secrets::create(ctx, req, ns),
            _ => Err(ApiError::method_not_allowed()),
        },
        ["api", "v1", "namespaces", ns, "secrets", name] => match req.method {
            Method::GET => secrets::get(ctx, ns, name),
            Method::DELETE => secrets::delete(ctx, ns, name),
            Method::PATCH => secrets::patch(ctx, req, ns, name),
            _ => Err(ApiError::method_not_allowed()),
        },
        ["api", "v1", "events"] if get => pods::events(ctx, req, None),
        ["api", "v1", "namespaces", ns, "events"] if get => pods::events(ctx, req, Some(ns)),
        ["api", "v1", "namespaces", ns, "pods"] => match req.method {
            Method::GET => pods::list_or_watch(ctx, req, Some(ns)),
            Method::POST => pods::create(ctx, req, ns),
            _ => Err(ApiError::method_not_allowed()),
        },
        ["api", "v1", "namespaces", ns, "pods", name] => match req.method {
            Method::GET => pods::get(ctx, req, ns, name),
            Method::DELETE => pods::delete(ctx, req, ns, name),
            Method::PATCH => pods::patch(ctx, req, ns, name),
            Method::PUT => pods::replace(ctx, req, ns, name),
            _ => Err(ApiError::method_not_allowed()),
        },
        ["api", "v1", "namespaces", ns, "pods", name, "status"] => match req.method {
            Method::GET => pods::get(ctx, req, ns, name),
            Method::PATCH | Method::PUT => pods::status_write(ctx, ns, name),
            _ => Err(ApiError::method_not_allowed()),
        },
        ["api", "v1", "namespaces", ns, "pods", name, "log"] if get => {
            pods::log(ctx, req, ns, name)
        }
        ["api", "v1", "namespaces", _, "pods", _, "exec"] => Err(ApiError::bad_request(
            "pods/exec is served over WebSocket only (v5.channel.k8s.io, v4.channel.k8s.io)",
        )),
        _ if segs.first() == Some(&"api") || segs.first() == Some(&"apis") => Err(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )),
        _ => Err(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )),
    }
}

/// The core group's OpenAPI document as served, and the hash of its bytes
/// that names it in `/openapi/v3` (clients cache it by this).
fn openapi_doc() -> &'static (Vec<u8>, String) {
    static DOC: std::sync::OnceLock<(Vec<u8>, String)> = std::sync::OnceLock::new();
    DOC.get_or_init(|| {
        use sha2::Digest;
        let bytes = serde_json::to_vec(&openapi_v1()).unwrap_or_default();
        let hash = sha2::Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect();
        (bytes, hash)
    })
}

fn openapi_hash() -> String {
    openapi_doc().1.clone()
}

/// The document under its hash never changes, so a client may keep it
/// (kubectl's HTTP cache then asks once, not on every `apply`); asked for
/// without the hash, or with another one, it is the current document,
/// not to be kept.
fn openapi_v1_response(hash: Option<&str>) -> Response<Body> {
    let (bytes, current) = openapi_doc();
    let mut r = super::respond(200, "application/json", bytes.clone());
    let cache = if hash == Some(current.as_str()) {
        "public, immutable, max-age=31536000"
    } else {
        "no-cache, private"
    };
    let headers = r.headers_mut();
    headers.insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static(cache),
    );
    if let Ok(etag) = hyper::header::HeaderValue::from_str(&format!("\"{current}\"")) {
        headers.insert(hyper::header::ETAG, etag);
    }
    r
}

/// The OpenAPI v3 document of the core group, as much as kubectl reads:
/// pods' patch operation taking `fieldValidation`, which is how kubectl
/// learns to leave validation to the server (podlab's own, with field
/// paths) rather than download schemas to validate against.
fn openapi_v1() -> Value {
    let query = |name: &str| json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}});
    let op = |id: &str, action: &str, kind: &str| {
        let gvk = json!({"group": "", "version": "v1", "kind": kind});
        json!({
            "operationId": id,
            "x-kubernetes-action": action,
            "x-kubernetes-group-version-kind": gvk,
            "parameters": [query("dryRun"), query("fieldManager"), query("fieldValidation")],
            "responses": {"200": {"description": "OK"}},
        })
    };
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": format!("v{KUBE_MAJOR}.{KUBE_MINOR}.0")},
        "paths": {
            "/api/v1/namespaces/{namespace}/pods": {"post": op("createCoreV1NamespacedPod", "post", "Pod")},
            "/api/v1/namespaces/{namespace}/pods/{name}": {"patch": op("patchCoreV1NamespacedPod", "patch", "Pod")},
            "/api/v1/namespaces/{namespace}/secrets": {"post": op("createCoreV1NamespacedSecret", "post", "Secret")},
            "/api/v1/namespaces/{namespace}/secrets/{name}": {"patch": op("patchCoreV1NamespacedSecret", "patch", "Secret")},
        },
        "components": {"schemas": {}},
    })
}

fn version() -> Value {
    json!({
        "major": KUBE_MAJOR,
        "minor": KUBE_MINOR,
        "gitVersion": format!("v{KUBE_MAJOR}.{KUBE_MINOR}.0-podlab.{}", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "",
        "goVersion": "",
        "compiler": "rustc",
        "platform": format!("linux/{}", arch()),
    })
}

fn arch() -> String {
    crate::image::host_arch().to_string()
}

fn resource(
    name: &str,
    singular: &str,
    namespaced: bool,
    kind: &str,
    verbs: &[&str],
    short: &[&str],
) -> Value {
    let mut r = json!({"name": name, "singularName": singular, "namespaced": namespaced,
        "kind": kind, "verbs": verbs});
    if !short.is_empty() {
        r["shortNames"] = json!(short);
    }
    r
}

/// The core group's resources podlab serves, with their verbs.
fn resources() -> Value {
    let mut pods = resource(
        "pods",
        "pod",
        true,
        "Pod",
        &[
            "create", "delete", "get", "list", "patch", "update", "watch",
        ],
        &["po"],
    );
    pods["categories"] = json!(["all"]);
    json!({
        "kind": "APIResourceList",
        "groupVersion": "v1",
        "resources": [
            resource("events", "event", true, "Event", &["get", "list", "watch"], &["ev"]),
            resource("namespaces", "namespace", false, "Namespace", &["create", "delete", "get", "list", "watch"], &["ns"]),
            resource("nodes", "node", false, "Node", &["get", "list", "watch"], &["no"]),
            pods,
            resource("pods/exec", "", true, "PodExecOptions", &["create", "get"], &[]),
            resource("pods/log", "", true, "Pod", &["get"], &[]),
            resource("pods/status", "", true, "Pod", &["get"], &[]),
            resource("secrets", "secret", true, "Secret", &["create", "delete", "get", "list", "patch"], &[]),
        ]
    })
}

/// A namespace as the API shows it.
fn namespace_object(ns: &crate::kube_namespaces::Namespace) -> Value {
    let mut meta = json!({"name": ns.name, "creationTimestamp": ns.creation_timestamp,
        "labels": ns.labels, "resourceVersion": ns.resource_version.to_string()});
    if !ns.uid.is_empty() {
        meta["uid"] = json!(ns.uid);
    }
    if let Some(t) = &ns.deletion_timestamp {
        meta["deletionTimestamp"] = json!(t);
    }
    json!({"kind": "Namespace", "apiVersion": "v1", "metadata": meta,
        "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": ns.phase}})
}

/// Every namespace matching the request's field selector.
fn namespace_values(ctx: &Ctx, req: &Req) -> Result<Vec<Value>, ApiError> {
    let fields = pods::FieldSelector::parse(req.q("fieldSelector"))?;
    fields.only(&["metadata.name", "status.phase"])?;
    Ok(crate::kube_namespaces::list(&ctx.config, &ctx.started)?
        .iter()
        .map(namespace_object)
        .filter(|n| fields.matches(n))
        .collect())
}

fn namespaces(ctx: &Ctx, req: &Req) -> Result<Response<Body>, ApiError> {
    let rv = crate::api::resource_version(&ctx.config)?;
    let items = namespace_values(ctx, req)?;
    if req.wants_table() {
        let columns = vec![
            json!({"name": "Name", "type": "string", "format": "name", "description": "", "priority": 0}),
            json!({"name": "Status", "type": "string", "format": "", "description": "", "priority": 0}),
            json!({"name": "Age", "type": "string", "format": "", "description": "", "priority": 0}),
        ];
        let rows = items
            .iter()
            .map(|n| {
                let cells = vec![
                    n["metadata"]["name"].clone(),
                    n["status"]["phase"].clone(),
                    json!(tables::age_of(n["metadata"]["creationTimestamp"].as_str())),
                ];
                (cells, n.clone())
            })
            .collect();
        let include = tables::Include::parse(req.q("includeObject"));
        return Ok(json(200, &tables::table(columns, rows, include, rv)));
    }
    Ok(json(
        200,
        &json!({"kind": "NamespaceList", "apiVersion": "v1",
        "metadata": {"resourceVersion": rv.to_string()}, "items": items}),
    ))
}

fn namespace(ctx: &Ctx, name: &str) -> Result<Response<Body>, ApiError> {
    let ns = crate::kube_namespaces::get(&ctx.config, name, &ctx.started)?;
    Ok(json(200, &namespace_object(&ns)))
}

/// `kubectl create namespace X`: a Namespace object in JSON.
fn create_namespace(ctx: &Ctx, req: &Req) -> Result<Response<Body>, ApiError> {
    let base = req.content_type.split(';').next().unwrap_or("").trim();
    let (name, labels) = match base {
        "application/json" | "" => {
            let body: Value = serde_json::from_slice(&req.body)
                .map_err(|e| ApiError::bad_request(format!("the body is not a Namespace: {e}")))?;
            let labels = body["metadata"]["labels"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                        .collect()
                })
                .unwrap_or_default();
            let name = body["metadata"]["name"].as_str().unwrap_or("").to_string();
            (name, labels)
        }
        // What kubectl's typed client sends for `create namespace`.
        super::protobuf::MEDIA_TYPE => super::protobuf::name_and_labels(&req.body)
            .ok_or_else(|| ApiError::bad_request("the body is not a protobuf Namespace"))?,
        _ => {
            return Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                format!("the body of the request was in an unknown format - accepted media types include: application/json, {} (not {base:?})", super::protobuf::MEDIA_TYPE),
            ))
        }
    };
    let name = name.as_str();
    if name.is_empty() {
        return Err(ApiError {
            details: Some(json!({"kind": "Namespace", "causes": [
                {"reason": "FieldValueRequired", "message": "Required value: name or generateName is required", "field": "metadata.name"}]})),
            ..ApiError::new(422, "Invalid", "Namespace \"\" is invalid: metadata.name: Required value: name or generateName is required")
        });
    }
    let ns = crate::kube_namespaces::create(&ctx.config, name, labels, &ctx.started)?;
    Ok(json(201, &namespace_object(&ns)))
}

/// Marks the namespace Terminating and answers with it; its pods are
/// deleted and then its record on a thread, as the namespace controller.
fn delete_namespace(ctx: &Ctx, name: &str) -> Result<Response<Body>, ApiError> {
    let (ns, deletions) = crate::kube_namespaces::begin_delete(&ctx.config, name, &ctx.started)?;
    let config = ctx.config.clone();
    let owned = name.to_string();
    std::thread::spawn(move || {
        if let Err(e) = crate::kube_namespaces::finish_delete(&config, &owned, deletions) {
            eprintln!(
                "podlab serve: deleting namespace {owned}: {}",
                crate::error::chain(&e)
            );
        }
    });
    Ok(json(200, &namespace_object(&ns)))
}

fn os_image() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("PRETTY_NAME=")
                    .map(|v| v.trim_matches('"').to_string())
            })
        })
        .unwrap_or_else(|| "Linux".into())
}

/// What of the node was last seen, to give it a new resource version
/// when its conditions, capacity or allocatable change.
pub struct NodeSeen {
    state: Value,
    rv: u64,
}

impl NodeSeen {
    /// The node starts at the store's version when the server starts.
    pub fn new(config: &crate::config::Config) -> Result<NodeSeen, super::Error> {
        let rv = crate::api::resource_version(config).map_err(|source| super::Error::Api {
            what: "read the store's resource version".into(),
            source: Box::new(source),
        })?;
        Ok(NodeSeen {
            state: Value::Null,
            rv: rv.max(1),
        })
    }
}

/// This machine as a Node: capacity, allocatable as the scheduler counts
/// it, Ready, and what it runs.
pub fn node(ctx: &Ctx) -> Value {
    let name = crate::network::node_name();
    let cap = crate::node::capacity_at(&ctx.config.data_root);
    let alloc = crate::node::allocatable(&ctx.config.data_root).unwrap_or(cap);
    let res = |r: crate::node::Resources| {
        json!({"cpu": format!("{}m", r.cpu_millis), "memory": format!("{}", r.memory_bytes),
            "ephemeral-storage": format!("{}", r.ephemeral_bytes), "pods": "110"})
    };
    let kernel = nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default();
    let status = json!({
        "capacity": res(cap),
        "allocatable": res(alloc),
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
            "message": "podlab is running pods",
            "lastTransitionTime": ctx.started}],
    });
    let rv = {
        let mut seen = ctx.node.lock().unwrap_or_else(|e| e.into_inner());
        if seen.state != status {
            // The first look keeps the version the server started with.
            if !seen.state.is_null() {
                if let Ok(rv) = crate::store::next_resource_version(&ctx.config.root) {
                    seen.rv = rv;
                }
            }
            seen.state = status.clone();
        }
        seen.rv
    };
    let mut status = status;
    status["conditions"][0]["lastHeartbeatTime"] = json!(crate::store::now_rfc3339());
    status["addresses"] = json!([{"type": "Hostname", "address": name}]);
    status["nodeInfo"] = json!({"machineID": "", "systemUUID": "", "bootID": "",
        "kernelVersion": kernel, "osImage": os_image(),
        "containerRuntimeVersion": format!("podlab://{}", env!("CARGO_PKG_VERSION")),
        "kubeletVersion": format!("v{KUBE_MAJOR}.{KUBE_MINOR}.0-podlab"),
        "kubeProxyVersion": "", "operatingSystem": "linux", "architecture": arch()});
    json!({
        "kind": "Node", "apiVersion": "v1",
        "metadata": {"name": name, "creationTimestamp": ctx.started, "resourceVersion": rv.to_string(),
            "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                "kubernetes.io/arch": arch(), "node-role.kubernetes.io/control-plane": ""}},
        "spec": {},
        "status": status,
    })
}

pub fn nodes_table(nodes: &[Value], req: &Req, rv: u64) -> Value {
    let include = tables::Include::parse(req.q("includeObject"));
    let rows = nodes
        .iter()
        .map(|n| (tables::node_cells(n), n.clone()))
        .collect();
    tables::table(tables::node_columns(), rows, include, rv)
}

fn nodes(ctx: &Ctx, req: &Req) -> Result<Response<Body>, ApiError> {
    let node = node(ctx);
    let rv = node["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("1")
        .to_string();
    if req.wants_table() {
        let n = rv.parse().unwrap_or(1);
        return Ok(json(200, &nodes_table(&[node], req, n)));
    }
    Ok(json(
        200,
        &json!({"kind": "NodeList", "apiVersion": "v1",
        "metadata": {"resourceVersion": rv}, "items": [node]}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(r: &Response<Body>, name: hyper::header::HeaderName) -> String {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    }

    #[test]
    fn the_openapi_document_is_kept_only_under_the_hash_of_its_bytes() {
        use sha2::Digest;
        let hash = openapi_hash();
        let (bytes, _) = openapi_doc();
        let hex: String = sha2::Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect();
        assert_eq!(hash, hex);
        let kept = openapi_v1_response(Some(&hash));
        assert!(header(&kept, hyper::header::CACHE_CONTROL).contains("immutable"));
        assert_eq!(header(&kept, hyper::header::ETAG), format!("\"{hash}\""));
        for other in [None, Some("podlab-0.1.0")] {
            let fresh = openapi_v1_response(other);
            assert_eq!(
                header(&fresh, hyper::header::CACHE_CONTROL),
                "no-cache, private"
            );
        }
    }
}
