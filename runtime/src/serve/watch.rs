//! `?watch=true`: a stream of `{"type", "object"}` lines. Pods are
//! followed through the store's history of changes (`store::changes_since`):
//! from `resourceVersion=N` the changes after N are replayed, or, when N is
//! older than the kept history, one ERROR event with a 410 Expired Status
//! ends the stream, as the API server answers. Selectors apply to every
//! event: a pod that stops matching is DELETED for the watcher, one that
//! starts matching is ADDED. With `allowWatchBookmarks=true` BOOKMARKs
//! come every [`BOOKMARK_EVERY`], and after the initial events when
//! `sendInitialEvents=true` asked for them. Namespaces are followed by
//! relisting them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use hyper::body::Bytes;
use hyper::Response;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::{pods, ApiError, Body, Ctx, Req};
use crate::api;
use crate::store::{self, ChangeKind, PodKey};

/// The longest wait between looks at the store (a change wakes it sooner).
const RELIST: Duration = Duration::from_millis(500);
/// How often a watcher that allows bookmarks gets one.
const BOOKMARK_EVERY: Duration = Duration::from_secs(5);

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

/// The options of a watch request that shape its events.
struct Options {
    table: bool,
    bookmarks: bool,
    req: Req,
}

/// The line of one event (a Table of one row when the client asked for
/// tables; as the API server, the columns come with the first one only).
fn line(kind: &str, object: &Value, opts: &Options, first: &mut bool) -> Bytes {
    let object = if opts.table && kind != "ERROR" && kind != "BOOKMARK" {
        let mut t = pods::pods_table(std::slice::from_ref(object), &opts.req, rv_of(object));
        if !*first {
            t["columnDefinitions"] = json!([]);
        }
        *first = false;
        t
    } else {
        object.clone()
    };
    let mut bytes =
        serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
    bytes.push(b'\n');
    Bytes::from(bytes)
}

fn bookmark(rv: u64, initial_end: bool) -> Value {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if initial_end {
        meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    json!({"kind": "Pod", "apiVersion": "v1", "metadata": meta})
}

/// The Status of a watch from a version older than the kept history.
fn expired(asked: u64, oldest: u64) -> Value {
    ApiError::new(
        410,
        "Expired",
        format!("too old resource version: {asked} ({oldest})"),
    )
    .to_status()
}

fn owned(req: &Req) -> Req {
    Req {
        method: req.method.clone(),
        path: req.path.clone(),
        query: req.query.clone(),
        accept: req.accept.clone(),
        content_type: req.content_type.clone(),
        body: Bytes::new(),
    }
}

fn flag(req: &Req, name: &str) -> bool {
    matches!(req.q(name), Some("true" | "1"))
}

fn stream(rx: mpsc::Receiver<Bytes>) -> Response<Body> {
    let mut r = Response::new(Body::Stream(rx));
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

/// What a pod watcher keeps between looks.
struct Follower {
    /// The pods the client was told about (and still matching), with the
    /// version it saw of each.
    known: BTreeMap<String, u64>,
    /// Changes up to this version are handled.
    last: u64,
}

impl Follower {
    /// Turns the changes after `last` into events for the watcher.
    fn step(
        &mut self,
        ctx: &Ctx,
        req: &Req,
        ns: Option<&str>,
        changes: Vec<store::Change>,
        send: &mut dyn FnMut(&str, &Value) -> bool,
    ) -> Result<bool, ApiError> {
        // The changes of each pod, in the order of its latest one.
        let mut order: Vec<PodKey> = Vec::new();
        let mut per: BTreeMap<PodKey, Vec<store::Change>> = BTreeMap::new();
        for c in changes {
            self.last = self.last.max(c.rv);
            if ns.is_some_and(|n| n != c.key.namespace) {
                continue;
            }
            order.retain(|k| *k != c.key);
            order.push(c.key.clone());
            per.entry(c.key.clone()).or_default().push(c);
        }
        for key in order {
            let list = per.remove(&key).unwrap_or_default();
            let name = key.to_string();
            let now = pods::matching_one(ctx, req, &key)?;
            let tombstone = list
                .iter()
                .rev()
                .find(|c| c.kind == ChangeKind::Deleted)
                .and_then(|c| c.object.clone())
                .map(pods::tombstone_value);
            // Deleted (and maybe made again) since the client saw it.
            if let (Some(dead), Some(_)) = (&tombstone, self.known.get(&name)) {
                let recreated = list.iter().any(|c| c.kind == ChangeKind::Added);
                if now.is_none() || recreated {
                    self.known.remove(&name);
                    if !send("DELETED", dead) {
                        return Ok(false);
                    }
                }
            }
            match now {
                Some(pod) => {
                    let rv = rv_of(&pod);
                    let kind = match self.known.get(&name) {
                        None => "ADDED",
                        Some(seen) if *seen < rv => "MODIFIED",
                        Some(_) => continue,
                    };
                    self.known.insert(name, rv);
                    if !send(kind, &pod) {
                        return Ok(false);
                    }
                }
                None if self.known.contains_key(&name) => {
                    self.known.remove(&name);
                    // No longer matching the selectors, or gone.
                    let last = match api::get_pod(&ctx.config, &key) {
                        Ok(p) => pods::pod_value(&p),
                        Err(_) => tombstone.clone().unwrap_or_else(|| {
                            json!({"kind": "Pod", "apiVersion": "v1",
                                "metadata": {"name": key.name, "namespace": key.namespace}})
                        }),
                    };
                    let mut last = last;
                    last["metadata"]["resourceVersion"] = json!(self.last.to_string());
                    if !send("DELETED", &last) {
                        return Ok(false);
                    }
                }
                None => {}
            }
        }
        Ok(true)
    }
}

/// A watch of pods (one namespace or all).
pub fn pods(ctx: &Ctx, req: &Req, ns: Option<&str>) -> Result<Response<Body>, ApiError> {
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
    let initial = since.is_none() || flag(req, "sendInitialEvents");
    let deadline = req
        .q("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(|t| Instant::now() + Duration::from_secs(t));
    let changes = api::StoreChanges::new(&ctx.config)?;
    let opts = Options {
        table: req.wants_table(),
        bookmarks: flag(req, "allowWatchBookmarks"),
        req: owned(req),
    };
    // The version first: nothing that changes after the list is missed.
    let start = api::resource_version(&ctx.config)?;
    // Checked now, so a bad selector is a 400 rather than a dead stream.
    let first = pods::matching(ctx, req, ns)?;
    let mut follower = Follower {
        known: BTreeMap::new(),
        last: start,
    };
    let mut replay = Vec::new();
    let mut too_old = None;
    match since.filter(|_| !initial) {
        None => {}
        Some(n) => match store::changes_since(&ctx.config.root, n).map_err(api::Error::from)? {
            Err(store::Expired { oldest }) => too_old = Some(expired(n, oldest)),
            Ok(list) => {
                // What the client has from N: the pods not made since;
                // with selectors, only those unchanged since (whether a
                // changed one matched at N is not kept: it comes as ADDED).
                let selective = [req.q("labelSelector"), req.q("fieldSelector")]
                    .iter()
                    .any(|s| s.is_some_and(|s| !s.is_empty()));
                let made: BTreeSet<String> = list
                    .iter()
                    .filter(|c| selective || c.kind == ChangeKind::Added)
                    .map(|c| c.key.to_string())
                    .collect();
                for pod in &first {
                    if !made.contains(&key_of(pod)) {
                        follower.known.insert(key_of(pod), n);
                    }
                }
                follower.last = n;
                replay = list;
            }
        },
    }
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let ns = ns.map(str::to_string);
    let ctx = Ctx {
        config: ctx.config.clone(),
        started: ctx.started.clone(),
    };
    std::thread::spawn(move || {
        let mut first_line = true;
        let mut send = |kind: &str, object: &Value| {
            tx.blocking_send(line(kind, object, &opts, &mut first_line))
                .is_ok()
        };
        if let Some(status) = too_old {
            send("ERROR", &status);
            return;
        }
        if initial {
            for pod in &first {
                follower.known.insert(key_of(pod), rv_of(pod));
                if !send("ADDED", pod) {
                    return;
                }
            }
            if flag(&opts.req, "sendInitialEvents")
                && opts.bookmarks
                && !opts.table
                && !send("BOOKMARK", &bookmark(start, true))
            {
                return;
            }
        }
        let mut pending = replay;
        let mut next_bookmark = Instant::now() + BOOKMARK_EVERY;
        loop {
            match follower.step(
                &ctx,
                &opts.req,
                ns.as_deref(),
                std::mem::take(&mut pending),
                &mut send,
            ) {
                Ok(true) => {}
                _ => return,
            }
            if opts.bookmarks && !opts.table && Instant::now() >= next_bookmark {
                next_bookmark = Instant::now() + BOOKMARK_EVERY;
                if !send("BOOKMARK", &bookmark(follower.last, false)) {
                    return;
                }
            }
            if deadline.is_some_and(|d| Instant::now() >= d) || tx.is_closed() {
                return;
            }
            if changes.wait(RELIST).is_err() {
                return;
            }
            pending = match store::changes_since(&ctx.config.root, follower.last) {
                Ok(Ok(list)) => list,
                // The history moved past this watcher: it must relist.
                Ok(Err(store::Expired { oldest })) => {
                    send("ERROR", &expired(follower.last, oldest));
                    return;
                }
                Err(_) => continue,
            };
        }
    });
    Ok(stream(rx))
}

/// A watch of objects that are listed whole each time (namespaces):
/// ADDED, MODIFIED by resource version, DELETED when gone.
pub fn relisting(
    ctx: &Ctx,
    req: &Req,
    list: fn(&Ctx, &Req) -> Result<Vec<Value>, ApiError>,
) -> Result<Response<Body>, ApiError> {
    let first = list(ctx, req)?;
    let from_scratch = matches!(req.q("resourceVersion"), None | Some("" | "0"));
    let deadline = req
        .q("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(|t| Instant::now() + Duration::from_secs(t));
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    let req = owned(req);
    let ctx = Ctx {
        config: ctx.config.clone(),
        started: ctx.started.clone(),
    };
    std::thread::spawn(move || {
        let send = |kind: &str, o: &Value| {
            let mut b = serde_json::to_vec(&json!({"type": kind, "object": o})).unwrap_or_default();
            b.push(b'\n');
            tx.blocking_send(Bytes::from(b)).is_ok()
        };
        let mut known: BTreeMap<String, Value> = BTreeMap::new();
        for o in first {
            if from_scratch && !send("ADDED", &o) {
                return;
            }
            known.insert(o["metadata"]["name"].as_str().unwrap_or("").to_string(), o);
        }
        loop {
            if deadline.is_some_and(|d| Instant::now() >= d) || tx.is_closed() {
                return;
            }
            std::thread::sleep(RELIST);
            let Ok(now) = list(&ctx, &req) else {
                continue;
            };
            let mut seen = BTreeMap::new();
            for o in now {
                let name = o["metadata"]["name"].as_str().unwrap_or("").to_string();
                let kind = match known.get(&name) {
                    None => Some("ADDED"),
                    Some(old)
                        if old["metadata"]["resourceVersion"]
                            != o["metadata"]["resourceVersion"] =>
                    {
                        Some("MODIFIED")
                    }
                    Some(_) => None,
                };
                if let Some(kind) = kind {
                    if !send(kind, &o) {
                        return;
                    }
                }
                seen.insert(name, o);
            }
            for (name, o) in &known {
                if !seen.contains_key(name) && !send("DELETED", o) {
                    return;
                }
            }
            known = seen;
        }
    });
    Ok(stream(rx))
}
