//! `?watch=true` on pods: a stream of `{"type", "object"}` lines, ADDED /
//! MODIFIED / DELETED, from a resource version on. A thread per watcher
//! relists the matching pods whenever the store's resource version moves
//! (and at least every half second, for removals) and sends what differs.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hyper::body::Bytes;
use hyper::Response;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::{pods, ApiError, Body, Ctx, Req};
use crate::api;

/// How long a watcher sleeps at most between looks: a removed pod is
/// noticed within it (removals do not bump the resource version).
const RELIST: Duration = Duration::from_millis(500);

fn rv_of(pod: &Value) -> u64 {
    pod["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn key_of(pod: &Value) -> String {
    format!(
        "{}/{}",
        pod["metadata"]["namespace"].as_str().unwrap_or(""),
        pod["metadata"]["name"].as_str().unwrap_or("")
    )
}

/// One watch event line (a Table of one row when the client asked for tables).
fn event(kind: &str, pod: &Value, table: Option<(&Req, &mut bool)>) -> Bytes {
    let object = match table {
        None => pod.clone(),
        Some((req, first)) => {
            let mut t = pods::pods_table(std::slice::from_ref(pod), req, rv_of(pod));
            // As the API server: the columns come with the first event only.
            if !*first {
                t["columnDefinitions"] = json!([]);
            }
            *first = false;
            t
        }
    };
    let mut line = serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

pub fn pods(ctx: &Ctx, req: &Req, ns: Option<&str>) -> Result<Response<Body>, ApiError> {
    // "0" or none: start with every current pod as ADDED.
    let since = match req.q("resourceVersion").filter(|v| !v.is_empty()) {
        None => None,
        Some(v) => match v.parse::<u64>() {
            Ok(0) => None,
            Ok(n) => Some(n),
            Err(_) => {
                return Err(ApiError::bad_request(format!(
                    "resourceVersion: {v:?} is not a resource version"
                )))
            }
        },
    };
    let deadline = req
        .q("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(|t| Instant::now() + Duration::from_secs(t));
    let changes = api::StoreChanges::new(&ctx.config)?;
    // Checked now, so a bad selector is a 400 rather than a dead stream.
    let first = pods::matching(ctx, req, ns)?;
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let wants_table = req.wants_table();
    let owned = Req {
        method: req.method.clone(),
        path: req.path.clone(),
        query: req.query.clone(),
        accept: req.accept.clone(),
        content_type: req.content_type.clone(),
        body: Bytes::new(),
    };
    let ns = ns.map(str::to_string);
    let ctx = super::Ctx {
        config: ctx.config.clone(),
        started: ctx.started.clone(),
    };
    std::thread::spawn(move || {
        let mut columns_first = true;
        let mut known: BTreeMap<String, Value> = BTreeMap::new();
        let send = |kind: &str, pod: &Value, columns_first: &mut bool| {
            let table = wants_table.then_some((&owned, columns_first));
            tx.blocking_send(event(kind, pod, table)).is_ok()
        };
        for pod in first {
            let rv = rv_of(&pod);
            if since.is_none_or(|s| rv > s) {
                let kind = if since.is_none() { "ADDED" } else { "MODIFIED" };
                if !send(kind, &pod, &mut columns_first) {
                    return;
                }
            }
            known.insert(key_of(&pod), pod);
        }
        loop {
            if deadline.is_some_and(|d| Instant::now() >= d) || tx.is_closed() {
                return;
            }
            if changes.wait(RELIST).is_err() {
                return;
            }
            let Ok(now) = pods::matching(&ctx, &owned, ns.as_deref()) else {
                continue;
            };
            let mut seen = BTreeMap::new();
            for pod in now {
                let key = key_of(&pod);
                let kind = match known.get(&key) {
                    None => Some("ADDED"),
                    Some(old) if rv_of(old) != rv_of(&pod) => Some("MODIFIED"),
                    Some(_) => None,
                };
                if let Some(kind) = kind {
                    if !send(kind, &pod, &mut columns_first) {
                        return;
                    }
                }
                seen.insert(key, pod);
            }
            for (key, mut pod) in std::mem::take(&mut known) {
                if !seen.contains_key(&key) {
                    let rv = api::resource_version(&ctx.config)
                        .unwrap_or(0)
                        .max(rv_of(&pod));
                    pod["metadata"]["resourceVersion"] = json!(rv.to_string());
                    if !send("DELETED", &pod, &mut columns_first) {
                        return;
                    }
                }
            }
            known = seen;
        }
    });
    let mut r = Response::new(Body::Stream(rx));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(r)
}
