//! Pods (create, get, list, delete, status, log) and their events, each
//! one call into the API layer.

use hyper::Response;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{json, Value};

use super::{json, tables, watch, ApiError, Body, Ctx, Req};
use crate::api;
use crate::selector::Selector;
use crate::store::PodKey;

/// A pod as the API returns it: with its kind and version.
pub fn pod_value(pod: &Pod) -> Value {
    let mut v = serde_json::to_value(pod).unwrap_or(Value::Null);
    v["kind"] = json!("Pod");
    v["apiVersion"] = json!("v1");
    v
}

fn label_selector(req: &Req) -> Result<Selector, ApiError> {
    match req.q("labelSelector").filter(|s| !s.is_empty()) {
        None => Ok(Selector::default()),
        Some(t) => Selector::parse(t)
            .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}"))),
    }
}

/// A field selector: `a.b=v`, `a.b==v`, `a.b!=v`, comma-separated, over
/// the object's JSON (what kubectl's `--field-selector` and its
/// `metadata.name=` lookups send).
pub struct FieldSelector(Vec<(Vec<String>, bool, String)>);

impl FieldSelector {
    pub fn parse(text: Option<&str>) -> Result<FieldSelector, ApiError> {
        let mut terms = Vec::new();
        for term in text
            .unwrap_or("")
            .split(',')
            .filter(|t| !t.trim().is_empty())
        {
            let (path, equal, value) = if let Some((p, v)) = term.split_once("!=") {
                (p, false, v)
            } else if let Some((p, v)) = term.split_once("==") {
                (p, true, v)
            } else if let Some((p, v)) = term.split_once('=') {
                (p, true, v)
            } else {
                return Err(ApiError::bad_request(format!(
                    "invalid field selector {term:?}: expected FIELD=VALUE or FIELD!=VALUE"
                )));
            };
            let path = path.trim().split('.').map(str::to_string).collect();
            terms.push((path, equal, value.trim().to_string()));
        }
        Ok(FieldSelector(terms))
    }

    /// Refuses fields outside `known`, as the API server does.
    pub fn only(&self, known: &[&str]) -> Result<(), ApiError> {
        for (path, _, _) in &self.0 {
            let field = path.join(".");
            if !known.contains(&field.as_str()) {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {field}"
                )));
            }
        }
        Ok(())
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|(path, equal, want)| {
            let mut v = object;
            for p in path {
                v = &v[p.as_str()];
            }
            let got = match v {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (got == *want) == *equal
        })
    }
}

/// The fields a pod's field selector may name (the API server's list).
const POD_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
];

fn pod_fields(req: &Req) -> Result<FieldSelector, ApiError> {
    let fields = FieldSelector::parse(req.q("fieldSelector"))?;
    fields.only(POD_FIELDS)?;
    Ok(fields)
}

/// A request's label and field selectors over pods.
pub struct PodFilter {
    labels: Selector,
    fields: FieldSelector,
}

impl PodFilter {
    pub fn of(req: &Req) -> Result<PodFilter, ApiError> {
        Ok(PodFilter {
            labels: label_selector(req)?,
            fields: pod_fields(req)?,
        })
    }

    /// True when a pod (as [`pod_value`] renders it) matches both.
    pub fn matches(&self, pod: &Value) -> bool {
        let labels: Option<std::collections::BTreeMap<String, String>> =
            serde_json::from_value(pod["metadata"]["labels"].clone()).ok();
        self.labels.matches(labels.as_ref()) && self.fields.matches(pod)
    }

    /// True when some selector is given.
    pub fn selective(&self) -> bool {
        self.labels != Selector::default() || !self.fields.0.is_empty()
    }
}

/// The pods of `ns` (or all) that match the request's selectors.
pub fn matching(ctx: &Ctx, req: &Req, ns: Option<&str>) -> Result<Vec<Value>, ApiError> {
    let labels = label_selector(req)?;
    let fields = pod_fields(req)?;
    Ok(api::list(&ctx.config, ns, &labels)?
        .iter()
        .map(pod_value)
        .filter(|v| fields.matches(v))
        .collect())
}

/// A deleted pod's last object from the store's history, as a Pod.
pub fn tombstone_value(mut object: Value) -> Value {
    object["kind"] = json!("Pod");
    object["apiVersion"] = json!("v1");
    object
}

pub fn pods_table(pods: &[Value], req: &Req, rv: u64) -> Value {
    let include = tables::Include::parse(req.q("includeObject"));
    let rows = pods
        .iter()
        .map(|v| {
            let pod: Pod = serde_json::from_value(v.clone()).unwrap_or_default();
            (tables::pod_cells(&pod), v.clone())
        })
        .collect();
    tables::table(tables::pod_columns(), rows, include, rv)
}

pub fn list_or_watch(ctx: &Ctx, req: &Req, ns: Option<&str>) -> Result<Response<Body>, ApiError> {
    if req.is_watch() {
        return watch::pods(ctx, req, ns);
    }
    // The version is taken first: a watch from it misses nothing listed after.
    let rv = api::resource_version(&ctx.config)?;
    let pods = matching(ctx, req, ns)?;
    if req.wants_table() {
        return Ok(json(200, &pods_table(&pods, req, rv)));
    }
    Ok(json(
        200,
        &json!({"kind": "PodList", "apiVersion": "v1",
            "metadata": {"resourceVersion": rv.to_string()}, "items": pods}),
    ))
}

fn one(ctx: &Ctx, ns: &str, name: &str) -> Result<Value, ApiError> {
    match api::get_pod(&ctx.config, &PodKey::new(ns, name)) {
        Ok(pod) => Ok(pod_value(&pod)),
        Err(e) => Err(e.into()),
    }
}

pub fn get(ctx: &Ctx, req: &Req, ns: &str, name: &str) -> Result<Response<Body>, ApiError> {
    let pod = one(ctx, ns, name)?;
    if req.wants_table() {
        let rv = api::resource_version(&ctx.config)?;
        return Ok(json(200, &pods_table(&[pod], req, rv)));
    }
    Ok(json(200, &pod))
}

/// The media types a body may come in (JSON is YAML too).
fn readable(content_type: &str) -> bool {
    let base = content_type.split(';').next().unwrap_or("").trim();
    matches!(base, "application/json" | "application/yaml" | "")
}

fn unsupported_media(content_type: &str, accepted: &str) -> ApiError {
    ApiError::new(
        415,
        "UnsupportedMediaType",
        format!(
            "the body of the request was in an unknown format - accepted media types include: {accepted} (not {content_type:?})"
        ),
    )
}

/// The body as text, or a 400 when it is not UTF-8 or empty.
fn body_text(req: &Req) -> Result<&str, ApiError> {
    let text = std::str::from_utf8(&req.body)
        .map_err(|_| ApiError::bad_request("the request body is not UTF-8"))?;
    if text.trim().is_empty() {
        return Err(ApiError::bad_request("the request body is empty"));
    }
    Ok(text)
}

/// A namespace pods may be made in: one that exists and is not going away.
fn check_namespace(ctx: &Ctx, ns: &str, pod: &str) -> Result<(), ApiError> {
    use crate::kube_namespaces as kns;
    let found = kns::get(&ctx.config, ns, &ctx.started)?;
    if found.phase == kns::TERMINATING {
        return Err(ApiError {
            details: Some(json!({"name": pod, "kind": "pods"})),
            ..ApiError::new(
                403,
                "Forbidden",
                format!("pods \"{pod}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated"),
            )
        });
    }
    Ok(())
}

pub fn create(ctx: &Ctx, req: &Req, ns: &str) -> Result<Response<Body>, ApiError> {
    if !readable(&req.content_type) {
        return Err(unsupported_media(
            &req.content_type,
            "application/json, application/yaml",
        ));
    }
    let text = body_text(req)?;
    let named = serde_norway::from_str::<Value>(text)
        .ok()
        .and_then(|v| v["metadata"]["name"].as_str().map(str::to_string))
        .unwrap_or_default();
    check_namespace(ctx, ns, &named)?;
    let mut warnings = Vec::new();
    let mut warn = |w: String| warnings.push(w);
    let applied = match api::create_new(&ctx.config, text, "the request body", Some(ns), &mut warn)
    {
        Err(api::Error::Store(crate::store::Error::AlreadyExists { name, .. })) => {
            return Err(already_exists(&name))
        }
        other => other?,
    };
    let key = match applied.as_slice() {
        [api::Applied::Created(key)] => key.clone(),
        _ => {
            return Err(ApiError::bad_request(
                "the request must hold exactly one Pod",
            ))
        }
    };
    let mut r = json(201, &one(ctx, &key.namespace, &key.name)?);
    for w in warnings {
        let text = w.trim_start_matches("Warning: ").replace('"', "'");
        let printable: String = text.chars().filter(|c| (' '..='~').contains(c)).collect();
        if let Ok(v) = hyper::header::HeaderValue::from_str(&format!("299 - \"{printable}\"")) {
            r.headers_mut().append("Warning", v);
        }
    }
    Ok(r)
}

/// The patch formats PATCH takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PatchType {
    Merge,
    Strategic,
    Json,
}

fn patch_type(content_type: &str) -> Result<PatchType, ApiError> {
    match content_type.split(';').next().unwrap_or("").trim() {
        "application/merge-patch+json" => Ok(PatchType::Merge),
        "application/strategic-merge-patch+json" => Ok(PatchType::Strategic),
        "application/json-patch+json" => Ok(PatchType::Json),
        other => Err(unsupported_media(
            other,
            "application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json",
        )),
    }
}

/// A client's JSON as a Pod, or a 400 naming what does not fit.
fn as_pod(value: Value) -> Result<Pod, ApiError> {
    serde_json::from_value(value)
        .map_err(|e| ApiError::bad_request(format!("the object is not a valid Pod: {e}")))
}

/// Stores an updated pod through the API layer and answers with it.
fn store_update(
    ctx: &Ctx,
    ns: &str,
    name: &str,
    pod: Pod,
    precondition: Option<String>,
) -> Result<Response<Body>, ApiError> {
    let key = PodKey::new(ns, name);
    let updated = api::update(&ctx.config, &key, pod, precondition.as_deref())?;
    Ok(json(200, &pod_value(&updated)))
}

/// PATCH of a pod: the patch applied to the current object, then stored
/// as an update (what may change is the API layer's rule). A patch that
/// sets metadata.resourceVersion makes it a precondition.
pub fn patch(ctx: &Ctx, req: &Req, ns: &str, name: &str) -> Result<Response<Body>, ApiError> {
    let kind = patch_type(&req.content_type)?;
    let patch: Value = serde_json::from_slice(&req.body)
        .map_err(|e| ApiError::bad_request(format!("the patch is not JSON: {e}")))?;
    let current = one(ctx, ns, name)?;
    let mut target = current.clone();
    let applied = match kind {
        PatchType::Merge => {
            crate::patch::merge(&mut target, &patch);
            Ok(())
        }
        PatchType::Strategic => crate::patch::strategic(&mut target, &patch),
        PatchType::Json => crate::patch::json_patch(&mut target, &patch),
    };
    applied.map_err(|e| match e {
        crate::patch::Error::Operation { .. } => ApiError::new(422, "Invalid", e.to_string()),
        e => ApiError::bad_request(e.to_string()),
    })?;
    let wanted = &target["metadata"]["resourceVersion"];
    let precondition = (*wanted != current["metadata"]["resourceVersion"])
        .then(|| wanted.as_str().unwrap_or("").to_string());
    store_update(ctx, ns, name, as_pod(target)?, precondition)
}

/// PUT of a pod: the whole object; its metadata.resourceVersion, when
/// set, must still be the pod's.
pub fn replace(ctx: &Ctx, req: &Req, ns: &str, name: &str) -> Result<Response<Body>, ApiError> {
    if !readable(&req.content_type) {
        return Err(unsupported_media(
            &req.content_type,
            "application/json, application/yaml",
        ));
    }
    let text = body_text(req)?;
    let object: Value = serde_norway::from_str(text)
        .map_err(|e| ApiError::bad_request(format!("the body is not a Pod: {e}")))?;
    if !object.is_object() {
        return Err(ApiError::bad_request("the body is not a Pod object"));
    }
    if let Some(given) = object["metadata"]["name"].as_str() {
        if given != name {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({given}) does not match the name on the URL ({name})"
            )));
        }
    }
    if object["metadata"]["namespace"]
        .as_str()
        .is_some_and(|n| n != ns)
    {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    one(ctx, ns, name)?;
    let precondition = object["metadata"]["resourceVersion"]
        .as_str()
        .map(str::to_string);
    store_update(ctx, ns, name, as_pod(object)?, precondition)
}

/// pods/status is the node's to write (the shim's), not a client's.
pub fn status_write(ctx: &Ctx, ns: &str, name: &str) -> Result<Response<Body>, ApiError> {
    one(ctx, ns, name)?;
    Err(ApiError {
        details: Some(json!({"name": name, "kind": "pods"})),
        ..ApiError::new(
            403,
            "Forbidden",
            format!("pods \"{name}\" is forbidden: a pod's status is written by its node (the pod's podlab shim), not through the API"),
        )
    })
}

fn already_exists(name: &str) -> ApiError {
    ApiError {
        details: Some(json!({"name": name, "kind": "pods"})),
        ..ApiError::new(
            409,
            "AlreadyExists",
            format!("pods \"{name}\" already exists"),
        )
    }
}

/// Asks for the deletion (the shim gets SIGTERM) and answers at once with
/// the object, deletionTimestamp set, as the API server does; the pod is
/// removed when its shim is done (the deletion is finished on a thread).
pub fn delete(ctx: &Ctx, req: &Req, ns: &str, name: &str) -> Result<Response<Body>, ApiError> {
    let options: Value = if req.body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&req.body)
            .map_err(|e| ApiError::bad_request(format!("DeleteOptions: {e}")))?
    };
    let grace = match req.q("gracePeriodSeconds") {
        Some(g) => Some(g.parse::<i64>().map_err(|_| {
            ApiError::bad_request(format!("gracePeriodSeconds: {g:?} is not a number"))
        })?),
        None => options["gracePeriodSeconds"].as_i64(),
    };
    let key = PodKey::new(ns, name);
    let deletion = api::begin_delete(&ctx.config, &key, grace)?;
    let object = one(ctx, ns, name).ok();
    let config = ctx.config.clone();
    std::thread::spawn(move || {
        if let Err(e) = api::finish_delete(&config, deletion) {
            eprintln!(
                "podlab serve: deleting pod {key}: {}",
                crate::error::chain(&e)
            );
        }
    });
    Ok(match object {
        Some(o) => json(200, &o),
        None => json(
            200,
            &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": {"name": name, "kind": "pods"}}),
        ),
    })
}

fn flag(req: &Req, name: &str) -> bool {
    matches!(req.q(name), Some("true" | "1"))
}

pub fn log(ctx: &Ctx, req: &Req, ns: &str, name: &str) -> Result<Response<Body>, ApiError> {
    let number = |p: &str| -> Result<Option<i64>, ApiError> {
        req.q(p)
            .map(|v| {
                v.parse::<i64>()
                    .map_err(|_| ApiError::bad_request(format!("{p}: {v:?} is not a number")))
            })
            .transpose()
    };
    let opts = api::LogOptions {
        previous: flag(req, "previous"),
        tail: number("tailLines")?.and_then(|n| usize::try_from(n).ok()),
        timestamps: flag(req, "timestamps"),
        since: number("sinceSeconds")?.map(|s| std::time::Duration::from_secs(s.max(0) as u64)),
        follow: flag(req, "follow"),
    };
    let key = PodKey::new(ns, name);
    let container = req
        .q("container")
        .filter(|c| !c.is_empty())
        .map(str::to_string);
    let render = |lines: Vec<api::LogLine>, timestamps: bool| api::log_text(&lines, timestamps);
    if !opts.follow {
        let mut body = Vec::new();
        api::logs(
            &ctx.config,
            &key,
            container.as_deref(),
            &opts,
            &mut |lines| {
                body.extend(render(lines, opts.timestamps));
                Ok(true)
            },
        )?;
        return Ok(super::respond(200, "text/plain", body));
    }
    // Errors (no such pod or container) are answered before the stream
    // starts: the first batch comes back on a channel.
    let (tx, rx) = tokio::sync::mpsc::channel::<hyper::body::Bytes>(16);
    let (first_tx, first_rx) = std::sync::mpsc::channel::<Result<(), ApiError>>();
    let config = ctx.config.clone();
    std::thread::spawn(move || {
        let mut started = false;
        let first = first_tx.clone();
        let result = api::logs(&config, &key, container.as_deref(), &opts, &mut |lines| {
            if !started {
                started = true;
                let _ = first.send(Ok(()));
            }
            let bytes = render(lines, opts.timestamps);
            if bytes.is_empty() {
                return Ok(!tx.is_closed());
            }
            Ok(tx.blocking_send(bytes.into()).is_ok())
        });
        if let Err(e) = result {
            let _ = first_tx.send(Err(e.into()));
        }
    });
    match first_rx.recv() {
        Ok(Err(e)) => Err(e),
        _ => {
            let mut r = Response::new(Body::Stream(rx));
            r.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/plain"),
            );
            Ok(r)
        }
    }
}

/// One of a pod's events as a v1 Event, named after the version it was
/// recorded under (`index` names one recorded before events had one).
pub fn event_value(key: &PodKey, uid: &str, e: &crate::store::Event, index: usize) -> Value {
    let name = match e.rv {
        0 => format!("{}.{:x}", key.name, index),
        rv => format!("{}.{:x}", key.name, rv),
    };
    json!({
        "kind": "Event", "apiVersion": "v1",
        "metadata": {"name": name, "namespace": key.namespace,
            "creationTimestamp": e.time, "resourceVersion": e.rv.to_string()},
        "involvedObject": {"kind": "Pod", "apiVersion": "v1", "namespace": key.namespace,
            "name": key.name, "uid": uid},
        "reason": e.reason, "message": e.message, "type": e.type_,
        "source": {"component": e.from},
        "firstTimestamp": e.time, "lastTimestamp": e.time, "count": 1,
        "reportingComponent": e.from, "reportingInstance": "",
    })
}

/// The fields an event's field selector may name.
const EVENT_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
];

pub fn event_fields(req: &Req) -> Result<FieldSelector, ApiError> {
    let fields = FieldSelector::parse(req.q("fieldSelector"))?;
    fields.only(EVENT_FIELDS)?;
    Ok(fields)
}

/// The events of `ns` (or all) that match the request's field selector.
pub fn matching_events(ctx: &Ctx, req: &Req, ns: Option<&str>) -> Result<Vec<Value>, ApiError> {
    let fields = event_fields(req)?;
    Ok(api::events(&ctx.config, ns)?
        .into_iter()
        .enumerate()
        .map(|(i, (key, uid, e))| event_value(&key, &uid, &e, i))
        .filter(|v| fields.matches(v))
        .collect())
}

pub fn events_table(events: &[Value], req: &Req, rv: u64) -> Value {
    let include = tables::Include::parse(req.q("includeObject"));
    let rows = events
        .iter()
        .map(|e| (tables::event_cells(e), e.clone()))
        .collect();
    tables::table(tables::event_columns(), rows, include, rv)
}

/// The pods' events as v1 Events (`kubectl get events`, `describe`).
pub fn events(ctx: &Ctx, req: &Req, ns: Option<&str>) -> Result<Response<Body>, ApiError> {
    if req.is_watch() {
        return watch::events(ctx, req, ns);
    }
    let rv = api::resource_version(&ctx.config)?;
    let items = matching_events(ctx, req, ns)?;
    if req.wants_table() {
        return Ok(json(200, &events_table(&items, req, rv)));
    }
    Ok(json(
        200,
        &json!({"kind": "EventList", "apiVersion": "v1",
        "metadata": {"resourceVersion": rv.to_string()}, "items": items}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_selectors_match_json_paths() {
        let pod = json!({"metadata": {"name": "web", "namespace": "default"}, "status": {"phase": "Running"}});
        let m = |s: &str| FieldSelector::parse(Some(s)).unwrap().matches(&pod);
        assert!(m("metadata.name=web"));
        assert!(m("metadata.name==web,status.phase=Running"));
        assert!(!m("metadata.name!=web"));
        assert!(m("spec.nodeName="));
        assert!(FieldSelector::parse(Some("metadata.name")).is_err());
        let unknown = FieldSelector::parse(Some("spec.bogus=1")).unwrap();
        let e = unknown.only(POD_FIELDS).unwrap_err();
        assert_eq!(e.code, 400);
        assert_eq!(e.message, "field label not supported: spec.bogus");
    }

    #[test]
    fn patches_and_updates_get_their_status_codes() {
        assert_eq!(
            patch_type("application/strategic-merge-patch+json").unwrap(),
            PatchType::Strategic
        );
        assert_eq!(
            patch_type("application/merge-patch+json; charset=utf-8").unwrap(),
            PatchType::Merge
        );
        assert_eq!(
            patch_type("application/json-patch+json").unwrap(),
            PatchType::Json
        );
        let e = patch_type("application/apply-patch+yaml").unwrap_err();
        assert_eq!((e.code, e.reason), (415, "UnsupportedMediaType"));
        let e = as_pod(json!({"spec": {"containers": "no"}})).unwrap_err();
        assert_eq!((e.code, e.reason), (400, "BadRequest"));
        let e = ApiError::from(api::Error::Conflict { name: "web".into() });
        assert_eq!((e.code, e.reason), (409, "Conflict"));
        assert!(e.message.ends_with("the object has been modified; please apply your changes to the latest version and try again"));
        // A refused update is 422 with its cause on the field.
        let old: Pod = serde_json::from_value(json!({"metadata": {"name": "web"},
            "spec": {"containers": [{"name": "a", "image": "x"}]}}))
        .unwrap();
        let mut new = old.clone();
        new.spec.as_mut().unwrap().restart_policy = Some("Never".into());
        let e = ApiError::from(api::Error::from(
            crate::pod_update::check(&old, new).unwrap_err(),
        ));
        assert_eq!((e.code, e.reason), (422, "Invalid"));
        let cause = &e.details.unwrap()["causes"][0];
        assert_eq!(cause["field"], "spec");
        assert_eq!(cause["reason"], "FieldValueForbidden");
    }

    #[test]
    fn bodies_must_be_json_or_yaml() {
        assert!(readable("application/json"));
        assert!(readable("application/yaml; charset=utf-8"));
        assert!(!readable("application/vnd.kubernetes.protobuf"));
    }
}
