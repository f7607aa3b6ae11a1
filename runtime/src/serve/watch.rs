//! `?watch=true`: a stream of `{"type", "object"}` lines. Pods and events
//! are followed through the server's in-memory change feed
//! ([`crate::feed`]): from `resourceVersion=N` the changes after N are
//! replayed, or, when N is older than the feed keeps, one ERROR event with
//! a 410 Expired Status ends the stream, as the API server answers. A
//! watcher that falls behind (its queue in the feed full, or its client
//! not reading for [`SLOW_CLIENT`]) has its stream ended: the client
//! re-lists, as after any ended watch. Selectors apply to every event: a
//! pod that stops matching is DELETED for the watcher, one that starts
//! matching is ADDED. With `allowWatchBookmarks=true` BOOKMARKs come every
//! [`BOOKMARK_EVERY`], and after the initial events when
//! `sendInitialEvents=true` asked for them. The node is looked at every
//! [`NODE_EVERY`] (its state is the machine's, not the store's);
//! namespaces are followed by relisting them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::body::Bytes;
use hyper::Response;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::{pods, ApiError, Body, Ctx, Req};
use crate::api;
use crate::feed::{Entry, Expired, Next, Subscription};
use crate::store::{ChangeKind, PodKey};

/// The longest wait between looks at a relisted object.
const RELIST: Duration = Duration::from_millis(500);
/// How often a watcher that allows bookmarks gets one.
const BOOKMARK_EVERY: Duration = Duration::from_secs(5);
/// A client that takes no line for this long has its watch ended.
const SLOW_CLIENT: Duration = Duration::from_secs(10);
/// How often a node watcher looks at the node.
const NODE_EVERY: Duration = Duration::from_secs(2);
/// The longest wait for a change before the watcher checks its client.
const IDLE: Duration = Duration::from_secs(1);

fn rv_of(object: &Value) -> u64 {
    object["metadata"]["resourceVersion"]
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

/// Renders objects of one kind as a Table (`as=Table`).
type TableOf = fn(&[Value], &Req, u64) -> Value;

/// The sending end of a watch, used from its thread: each event as a line
/// (a Table of one row when the client asked for tables; as the API
/// server, the columns come with the first one only), each line waiting
/// at most [`SLOW_CLIENT`] for room.
struct Out {
    tx: mpsc::Sender<Bytes>,
    rt: tokio::runtime::Handle,
    /// The object kind, for bookmarks.
    kind: &'static str,
    table: Option<TableOf>,
    req: Req,
    first: bool,
}

impl Out {
    /// The sending end and the response streaming what it sends.
    fn open(
        req: &Req,
        kind: &'static str,
        table: TableOf,
    ) -> Result<(Out, Response<Body>), ApiError> {
        let rt = tokio::runtime::Handle::try_current()
            .map_err(|e| ApiError::internal(format!("no runtime for a watch: {e}")))?;
        let (tx, rx) = mpsc::channel::<Bytes>(64);
        let out = Out {
            tx,
            rt,
            kind,
            table: req.wants_table().then_some(table),
            req: owned(req),
            first: true,
        };
        Ok((out, stream(rx)))
    }

    /// False once the client is gone or stopped reading.
    fn send(&mut self, kind: &str, object: &Value) -> bool {
        let object = match self.table {
            Some(table) if kind != "ERROR" && kind != "BOOKMARK" => {
                let mut t = table(std::slice::from_ref(object), &self.req, rv_of(object));
                if !self.first {
                    t["columnDefinitions"] = json!([]);
                }
                self.first = false;
                t
            }
            _ => object.clone(),
        };
        let mut bytes =
            serde_json::to_vec(&json!({"type": kind, "object": object})).unwrap_or_default();
        bytes.push(b'\n');
        // Made inside: the timer needs the runtime's context.
        let sent = self.rt.block_on(async {
            tokio::time::timeout(SLOW_CLIENT, self.tx.send(bytes.into())).await
        });
        matches!(sent, Ok(Ok(())))
    }

    /// Bookmarks go to clients that allow them and take no tables.
    fn bookmarks(&self) -> bool {
        flag(&self.req, "allowWatchBookmarks") && self.table.is_none()
    }

    fn bookmark(&mut self, rv: u64, initial_end: bool) -> bool {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let object = json!({"kind": self.kind, "apiVersion": "v1", "metadata": meta});
        self.send("BOOKMARK", &object)
    }

    fn closed(&self) -> bool {
        self.tx.is_closed()
    }
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

fn since_of(req: &Req) -> Result<Option<u64>, ApiError> {
    match req.q("resourceVersion").filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => match v.parse::<u64>() {
            Ok(0) => Ok(None),
            Ok(n) => Ok(Some(n)),
            Err(_) => Err(ApiError::bad_request(format!(
                "resourceVersion: {v:?} is not a resource version"
            ))),
        },
    }
}

fn deadline_of(req: &Req) -> Option<Instant> {
    req.q("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .map(|t| Instant::now() + Duration::from_secs(t))
}

/// How long a watcher may wait for changes: until a bookmark is due, its
/// deadline, or at most [`IDLE`] (to see whether its client is still there).
fn wait_for(next_bookmark: Option<Instant>, deadline: Option<Instant>) -> Duration {
    let now = Instant::now();
    [next_bookmark, deadline]
        .into_iter()
        .flatten()
        .map(|t| t.saturating_duration_since(now))
        .fold(IDLE, Duration::min)
}

/// What a pod watcher keeps between batches of changes.
struct Follower {
    /// The pods the client was told about (and still matching), with the
    /// version it saw of each.
    known: BTreeMap<String, u64>,
    /// Changes up to this version are handled.
    last: u64,
    filter: pods::PodFilter,
    ns: Option<String>,
}

impl Follower {
    /// Turns a batch of changes into events for the watcher; false once
    /// the client is gone.
    fn step(&mut self, changes: &[Arc<Entry>], out: &mut Out) -> bool {
        // The changes of each pod, in the order of its latest one.
        let mut order: Vec<PodKey> = Vec::new();
        let mut per: BTreeMap<PodKey, Vec<&Entry>> = BTreeMap::new();
        for c in changes {
            self.last = self.last.max(c.rv);
            if c.kind == ChangeKind::Event
                || self.ns.as_deref().is_some_and(|n| n != c.key.namespace)
            {
                continue;
            }
            order.retain(|k| *k != c.key);
            order.push(c.key.clone());
            per.entry(c.key.clone()).or_default().push(c);
        }
        for key in order {
            let list = per.remove(&key).unwrap_or_default();
            let name = key.to_string();
            // The pod as read after its latest change here.
            let latest = list.last().and_then(|c| c.pod.clone());
            let now = latest.as_deref().filter(|p| self.filter.matches(p));
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
                    if !out.send("DELETED", dead) {
                        return false;
                    }
                }
            }
            match now {
                Some(pod) => {
                    let rv = rv_of(pod);
                    let kind = match self.known.get(&name) {
                        None => "ADDED",
                        Some(seen) if *seen < rv => "MODIFIED",
                        Some(_) => continue,
                    };
                    self.known.insert(name, rv);
                    if !out.send(kind, pod) {
                        return false;
                    }
                }
                None if self.known.contains_key(&name) => {
                    self.known.remove(&name);
                    // No longer matching the selectors, or gone.
                    let mut last = latest
                        .map(|p| (*p).clone())
                        .or_else(|| tombstone.clone())
                        .unwrap_or_else(|| {
                            json!({"kind": "Pod", "apiVersion": "v1",
                                "metadata": {"name": key.name, "namespace": key.namespace}})
                        });
                    last["metadata"]["resourceVersion"] = json!(self.last.to_string());
                    if !out.send("DELETED", &last) {
                        return false;
                    }
                }
                None => {}
            }
        }
        true
    }
}

/// A subscription from `since` (from the store's version now when none):
/// the subscription, what it replays, and the store's version; or the
/// ERROR line's Status when `since` is older than the feed keeps.
type Subscribed = Result<(Subscription, Vec<Arc<Entry>>, u64), Value>;

fn subscribe(ctx: &Ctx, since: Option<u64>) -> Result<Subscribed, ApiError> {
    // The store's version first: nothing that changes after the list the
    // caller makes next is missed.
    let start = api::resource_version(&ctx.config)?;
    let from = since.unwrap_or(start);
    Ok(match ctx.feed.subscribe(from) {
        Ok((sub, replay)) => Ok((sub, replay, start)),
        Err(Expired { oldest }) => Err(expired(from, oldest)),
    })
}

/// Hands a watcher its batches of changes until its client goes, its
/// deadline passes or it falls behind; `step` handles a batch (false: the
/// client is gone) and `at` is the version the watcher is at.
fn follow(
    sub: &Subscription,
    deadline: Option<Instant>,
    out: &mut Out,
    mut step: impl FnMut(&[Arc<Entry>], &mut Out) -> bool,
    at: impl Fn() -> u64,
) {
    let mut next_bookmark = out.bookmarks().then(|| Instant::now() + BOOKMARK_EVERY);
    loop {
        match sub.next(wait_for(next_bookmark, deadline)) {
            Next::Changes(changes) => {
                if !step(&changes, out) {
                    return;
                }
            }
            Next::Idle => {}
            Next::Overflowed => return,
        }
        if next_bookmark.is_some_and(|t| Instant::now() >= t) {
            next_bookmark = Some(Instant::now() + BOOKMARK_EVERY);
            if !out.bookmark(at(), false) {
                return;
            }
        }
        if deadline.is_some_and(|d| Instant::now() >= d) || out.closed() {
            return;
        }
    }
}

/// A watch of pods (one namespace or all).
pub fn pods(ctx: &Ctx, req: &Req, ns: Option<&str>) -> Result<Response<Body>, ApiError> {
    let since = since_of(req)?;
    let initial = since.is_none() || flag(req, "sendInitialEvents");
    let deadline = deadline_of(req);
    // Checked now, so a bad selector is a 400 rather than a dead stream.
    let filter = pods::PodFilter::of(req)?;
    let selective = filter.selective();
    let replaying = since.filter(|_| !initial);
    let subscribed = subscribe(ctx, replaying)?;
    let first = pods::matching(ctx, req, ns)?;
    let (mut out, response) = Out::open(req, "Pod", pods::pods_table)?;
    let (sub, replay, start) = match subscribed {
        Ok(s) => s,
        Err(status) => {
            std::thread::spawn(move || out.send("ERROR", &status));
            return Ok(response);
        }
    };
    let mut follower = Follower {
        known: BTreeMap::new(),
        last: start,
        filter,
        ns: ns.map(str::to_string),
    };
    if let Some(n) = replaying {
        follower.known = known_at(n, &replay, &first, &follower.filter, selective);
        follower.last = n;
    }
    let initial_end = flag(req, "sendInitialEvents") && out.bookmarks();
    std::thread::spawn(move || {
        if initial {
            for pod in &first {
                follower.known.insert(key_of(pod), rv_of(pod));
                if !out.send("ADDED", pod) {
                    return;
                }
            }
            if initial_end && !out.bookmark(start, true) {
                return;
            }
        }
        let last = std::cell::Cell::new(follower.last);
        follow(
            &sub,
            deadline,
            &mut out,
            |changes, out| {
                let going = follower.step(changes, out);
                last.set(follower.last);
                going
            },
            || last.get(),
        );
    });
    Ok(response)
}

/// What a client watching from N has: the pods there now that were not
/// made since; with selectors, only those unchanged since (whether a
/// changed one matched at N is not kept: it comes as ADDED). And the pods
/// that were there at N and are gone since (between the client's list and
/// its watch, say): it must hear they went, so they count as known and
/// their deletion in the replay is a DELETED (with selectors, when their
/// last object matched).
fn known_at(
    n: u64,
    replay: &[Arc<Entry>],
    now: &[Value],
    filter: &pods::PodFilter,
    selective: bool,
) -> BTreeMap<String, u64> {
    let pods = || replay.iter().filter(|c| c.kind != ChangeKind::Event);
    let made: BTreeSet<String> = pods()
        .filter(|c| selective || c.kind == ChangeKind::Added)
        .map(|c| c.key.to_string())
        .collect();
    let mut known: BTreeMap<String, u64> = now
        .iter()
        .map(key_of)
        .filter(|k| !made.contains(k))
        .map(|k| (k, n))
        .collect();
    let mut first_change: BTreeMap<String, ChangeKind> = BTreeMap::new();
    for c in pods() {
        let key = c.key.to_string();
        let existed = *first_change.entry(key.clone()).or_insert(c.kind) != ChangeKind::Added;
        let matched = |o: &Value| !selective || filter.matches(&pods::tombstone_value(o.clone()));
        if existed && c.kind == ChangeKind::Deleted && c.object.as_ref().is_some_and(matched) {
            known.entry(key).or_insert(n);
        }
    }
    known
}

/// A watch of events (one namespace or all): each recorded event is
/// ADDED (events are not changed or removed while their pod lives).
pub fn events(ctx: &Ctx, req: &Req, ns: Option<&str>) -> Result<Response<Body>, ApiError> {
    let since = since_of(req)?;
    let initial = since.is_none() || flag(req, "sendInitialEvents");
    let deadline = deadline_of(req);
    let fields = pods::event_fields(req)?;
    let subscribed = subscribe(ctx, since.filter(|_| !initial))?;
    let first = if initial {
        pods::matching_events(ctx, req, ns)?
    } else {
        Vec::new()
    };
    let (mut out, response) = Out::open(req, "Event", pods::events_table)?;
    let (sub, _, start) = match subscribed {
        Ok(s) => s,
        Err(status) => {
            std::thread::spawn(move || out.send("ERROR", &status));
            return Ok(response);
        }
    };
    let ns = ns.map(str::to_string);
    let initial_end = flag(req, "sendInitialEvents") && out.bookmarks();
    let last = std::cell::Cell::new(since.unwrap_or(start).max(start));
    std::thread::spawn(move || {
        for e in &first {
            if !out.send("ADDED", e) {
                return;
            }
        }
        if initial_end && !out.bookmark(start, true) {
            return;
        }
        follow(
            &sub,
            deadline,
            &mut out,
            |changes, out| {
                for c in changes {
                    last.set(last.get().max(c.rv));
                    if c.kind != ChangeKind::Event
                        || ns.as_deref().is_some_and(|n| n != c.key.namespace)
                    {
                        continue;
                    }
                    let Some(event) = c
                        .object
                        .clone()
                        .and_then(|o| serde_json::from_value::<crate::store::Event>(o).ok())
                    else {
                        continue;
                    };
                    let uid = c
                        .pod
                        .as_deref()
                        .and_then(|p| p["metadata"]["uid"].as_str())
                        .unwrap_or("");
                    let value = pods::event_value(&c.key, uid, &event, 0);
                    if fields.matches(&value) && !out.send("ADDED", &value) {
                        return false;
                    }
                }
                true
            },
            || last.get(),
        );
    });
    Ok(response)
}

/// A watch of the node: ADDED (from scratch), MODIFIED when its
/// conditions, capacity or allocatable change, BOOKMARKs.
pub fn nodes(ctx: &Ctx, req: &Req) -> Result<Response<Body>, ApiError> {
    let since = since_of(req)?;
    let deadline = deadline_of(req);
    let fields = pods::FieldSelector::parse(req.q("fieldSelector"))?;
    fields.only(&["metadata.name"])?;
    let (mut out, response) = Out::open(req, "Node", super::routes::nodes_table)?;
    let ctx = ctx.clone();
    std::thread::spawn(move || {
        let node = super::routes::node(&ctx);
        let mut sent = since.unwrap_or(0);
        if fields.matches(&node) && (since.is_none() || rv_of(&node) > sent) {
            let kind = if since.is_none() { "ADDED" } else { "MODIFIED" };
            if !out.send(kind, &node) {
                return;
            }
            sent = rv_of(&node);
        }
        if flag(&out.req, "sendInitialEvents") && out.bookmarks() && !out.bookmark(sent, true) {
            return;
        }
        let mut next_bookmark = out.bookmarks().then(|| Instant::now() + BOOKMARK_EVERY);
        let mut next_look = Instant::now() + NODE_EVERY;
        loop {
            if deadline.is_some_and(|d| Instant::now() >= d) || out.closed() {
                return;
            }
            std::thread::sleep(
                wait_for(next_bookmark, deadline)
                    .min(next_look.saturating_duration_since(Instant::now())),
            );
            if Instant::now() >= next_look {
                next_look = Instant::now() + NODE_EVERY;
                let node = super::routes::node(&ctx);
                if rv_of(&node) > sent {
                    sent = rv_of(&node);
                    if fields.matches(&node) && !out.send("MODIFIED", &node) {
                        return;
                    }
                }
            }
            if next_bookmark.is_some_and(|t| Instant::now() >= t) {
                next_bookmark = Some(Instant::now() + BOOKMARK_EVERY);
                if !out.bookmark(sent, false) {
                    return;
                }
            }
        }
    });
    Ok(response)
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
    let ctx = ctx.clone();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn change(rv: u64, name: &str, kind: ChangeKind) -> Arc<Entry> {
        let pod = json!({"metadata": {"name": name, "namespace": "default"}});
        Arc::new(Entry {
            rv,
            key: PodKey::new("default", name),
            kind,
            object: (kind == ChangeKind::Deleted).then(|| pod.clone()),
            pod: (kind != ChangeKind::Deleted).then(|| Arc::new(pod)),
        })
    }

    fn filter(query: &str) -> pods::PodFilter {
        let req = Req {
            method: hyper::Method::GET,
            path: "/api/v1/pods".into(),
            query: super::super::parse_query(Some(query)),
            accept: String::new(),
            content_type: String::new(),
            body: Bytes::new(),
        };
        pods::PodFilter::of(&req).expect("a filter")
    }

    #[test]
    fn a_pod_gone_between_the_list_and_the_watch_is_known_so_its_deletion_is_sent() {
        // At 10 the client listed "old" and "kept"; "old" went at 12, "new"
        // was made at 11 and went at 13; only "kept" is there now.
        let replay = [
            change(11, "new", ChangeKind::Added),
            change(12, "old", ChangeKind::Deleted),
            change(13, "new", ChangeKind::Deleted),
        ];
        let now = [json!({"metadata": {"name": "kept", "namespace": "default"}})];
        let everything = filter("");
        let known = known_at(10, &replay, &now, &everything, false);
        let names: Vec<&str> = known.keys().map(String::as_str).collect();
        assert_eq!(names, ["default/kept", "default/old"]);

        // With a selector: only when the last object matched.
        let by_name = filter("fieldSelector=metadata.name%3Dold");
        assert!(known_at(10, &replay, &[], &by_name, true).contains_key("default/old"));
        let other = filter("fieldSelector=metadata.name%3Dkept");
        assert!(known_at(10, &replay, &[], &other, true).is_empty());

        // The follower then sends DELETED for "old" and nothing for "new".
        let (tx, mut rx) = mpsc::channel(16);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let mut out = Out {
            tx,
            rt: rt.handle().clone(),
            kind: "Pod",
            table: None,
            req: Req {
                method: hyper::Method::GET,
                path: String::new(),
                query: Default::default(),
                accept: String::new(),
                content_type: String::new(),
                body: Bytes::new(),
            },
            first: true,
        };
        let mut follower = Follower {
            known,
            last: 10,
            filter: everything,
            ns: None,
        };
        assert!(follower.step(&replay, &mut out));
        drop(out);
        let mut sent = Vec::new();
        while let Ok(line) = rx.try_recv() {
            let event: Value = serde_json::from_slice(&line).expect("an event");
            sent.push(format!(
                "{} {}",
                event["type"].as_str().unwrap_or(""),
                event["object"]["metadata"]["name"].as_str().unwrap_or("")
            ));
        }
        assert_eq!(sent, ["DELETED old"]);
    }
}
