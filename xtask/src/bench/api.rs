//! The benchmark's API path: podlab's pods through `podlab serve`. The real
//! kubectl for apply → Running and delete (to set against the CLI path in
//! the same run), and kube-rs, a client library, for request latency and
//! for many watchers at once.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use futures_util::TryStreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

use super::timed;
use crate::serve::Serve;

/// The label of the pods the watchers look at.
const WATCHED: &str = "bench=watch";

/// A small pod: one container that sleeps.
const SMALL: &str = "apiVersion: v1
kind: Pod
metadata:
  name: NAME
  labels:
    bench: watch
spec:
  terminationGracePeriodSeconds: 0
  containers:
    - name: sleep
      image: podlab.local/busybox:latest
      command: [\"sleep\", \"3600\"]
";

pub struct ApiPath {
    serve: Serve,
    rt: tokio::runtime::Runtime,
    pods: kube::Api<Pod>,
}

/// Client-observed latency of one kind of request (kube-rs, decoding included).
pub struct Latency {
    pub p50: Duration,
    pub p99: Duration,
    pub samples: usize,
}

/// What the watchers saw of `pods` creations.
pub struct Fanout {
    pub watchers: usize,
    pub pods: usize,
    /// Per watcher: ADDED events for the watched pods (each must be `pods`).
    pub added_min: usize,
    pub added_max: usize,
    /// Per watcher: all events received.
    pub events_min: usize,
    pub events_max: usize,
    /// Watchers whose last version of every pod is the one a list gives
    /// at the end: nothing missed, nothing stale.
    pub complete: usize,
    /// From the first creation until every watcher had seen every pod Ready.
    pub all_seen: Duration,
    /// How watches that ended early ended.
    pub errors: Vec<String>,
}

#[derive(Default)]
struct Seen {
    /// The server answered the watch: what comes now is streamed.
    open: bool,
    added: BTreeSet<String>,
    ready: BTreeSet<String>,
    last_rv: BTreeMap<String, String>,
    events: usize,
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

impl Seen {
    fn record(&mut self, event: WatchEvent<Pod>) -> anyhow::Result<()> {
        self.events += 1;
        let (added, pod) = match event {
            WatchEvent::Added(p) => (true, p),
            WatchEvent::Modified(p) | WatchEvent::Deleted(p) => (false, p),
            WatchEvent::Bookmark(_) => return Ok(()),
            WatchEvent::Error(e) => bail!("the watch ended with {e:?}"),
        };
        let name = pod.metadata.name.clone().unwrap_or_default();
        if added {
            self.added.insert(name.clone());
        }
        if is_ready(&pod) {
            self.ready.insert(name.clone());
        }
        if let Some(rv) = pod.metadata.resource_version.clone() {
            self.last_rv.insert(name, rv);
        }
        Ok(())
    }
}

impl ApiPath {
    /// Starts `podlab serve` on `podlab`'s roots and a kube-rs client for it.
    pub fn start(podlab: Command, kubeconfig: PathBuf) -> anyhow::Result<ApiPath> {
        let serve = Serve::start(podlab, kubeconfig)?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let pods = rt.block_on(async {
            let kc = Kubeconfig::read_from(&serve.kubeconfig)?;
            let config =
                kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
            anyhow::Ok(kube::Api::default_namespaced(kube::Client::try_from(
                config,
            )?))
        })?;
        let api = ApiPath { serve, rt, pods };
        // kubectl's first call fills its discovery cache: not counted.
        timed(api.serve.kubectl().args(["get", "pods"]))?;
        Ok(api)
    }

    /// `kubectl apply`, then `kubectl wait` until Ready: what a user of the
    /// API path waits, as `podlab apply --wait-ready` on the CLI path.
    pub fn start_pod(&self, manifest: &Path, name: &str) -> anyhow::Result<Duration> {
        let applied = timed(self.serve.kubectl().arg("apply").arg("-f").arg(manifest))?;
        let ready = timed(self.serve.kubectl().args([
            "wait",
            "--for=condition=Ready",
            &format!("pod/{name}"),
            "--timeout=60s",
        ]))?;
        Ok(applied + ready)
    }

    /// The same pod through kube-rs, in this process: create, then watch
    /// until Ready. Unlike kubectl it starts no process per step, so it
    /// is the API path's own cost.
    pub fn start_pod_client(&self, name: &str) -> anyhow::Result<Duration> {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name},
            "spec": {"terminationGracePeriodSeconds": 0, "containers": [
                {"name": "app", "image": "podlab.local/busybox:latest", "command": ["sleep", "3600"]},
                {"name": "sidecar", "image": "podlab.local/busybox:latest", "command": ["sleep", "3600"]},
            ]},
        }))?;
        self.rt.block_on(async {
            let start = Instant::now();
            self.pods.create(&Default::default(), &pod).await?;
            let ready =
                kube::runtime::wait::await_condition(self.pods.clone(), name, |p: Option<&Pod>| {
                    p.is_some_and(is_ready)
                });
            tokio::time::timeout(Duration::from_secs(60), ready)
                .await
                .with_context(|| format!("pod {name} not Ready within 60 s"))??;
            Ok(start.elapsed())
        })
    }

    /// Delete through kube-rs, then watch until the pod is gone. The uid
    /// the gone-check needs comes with the DELETE's answer (the object,
    /// deletionTimestamp set), as a client would take it: no GET first.
    pub fn delete_pod_client(&self, name: &str) -> anyhow::Result<Duration> {
        self.rt.block_on(async {
            let start = Instant::now();
            let answer = self.pods.delete(name, &Default::default()).await?;
            // A Status instead of the object: gone already.
            let Some(pod) = answer.left() else {
                return Ok(start.elapsed());
            };
            let uid = pod.metadata.uid.unwrap_or_default();
            let gone = kube::runtime::wait::await_condition(
                self.pods.clone(),
                name,
                kube::runtime::wait::conditions::is_deleted(&uid),
            );
            tokio::time::timeout(Duration::from_secs(60), gone)
                .await
                .with_context(|| format!("pod {name} not gone within 60 s"))??;
            Ok(start.elapsed())
        })
    }

    /// kubectl's own start, no request made: the floor under each kubectl
    /// step above.
    pub fn kubectl_floor(&self) -> anyhow::Result<Duration> {
        timed(self.serve.kubectl().args(["version", "--client"]))
    }

    /// `kubectl delete`, which returns once the pod is gone.
    pub fn delete_pod(&self, name: &str) -> anyhow::Result<Duration> {
        timed(self.serve.kubectl().args(["delete", "pod", name]))
    }

    /// `watchers` watches of the labelled pods, opened before `count` pods
    /// are created through `podlab` (the CLI, straight into the store);
    /// waits until every watcher has seen every pod Ready and its view
    /// matches a list. The pods are left for [`Self::latency`].
    pub fn fanout(
        &self,
        podlab: impl Fn() -> Command,
        work: &Path,
        count: usize,
        watchers: usize,
    ) -> anyhow::Result<Fanout> {
        let pods = self.pods.clone();
        let rt = &self.rt;
        let seen: Vec<Arc<Mutex<Seen>>> = (0..watchers).map(|_| Arc::default()).collect();
        let rv = rt.block_on(pods.list(&ListParams::default().labels(WATCHED)))?;
        let rv = rv.metadata.resource_version.unwrap_or_default();
        let mut tasks = Vec::new();
        for s in &seen {
            let (pods, s, rv) = (pods.clone(), s.clone(), rv.clone());
            tasks.push(rt.spawn(async move {
                let params = WatchParams::default().labels(WATCHED).timeout(290);
                let mut stream = Box::pin(pods.watch(&params, &rv).await?);
                s.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.open = true;
                while let Some(event) = stream.try_next().await? {
                    s.lock()
                        .map_err(|_| anyhow::anyhow!("poisoned"))?
                        .record(event)?;
                }
                anyhow::Ok(())
            }));
        }
        let all = |f: &dyn Fn(&Seen) -> bool| {
            seen.iter()
                .all(|s| s.lock().map(|s| f(&s)).unwrap_or(false))
        };
        let finished = |tasks: &[tokio::task::JoinHandle<anyhow::Result<()>>]| {
            tasks.iter().any(|t| t.is_finished())
        };
        // Every watch is open before the first pod is created.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !all(&|s| s.open) {
            if finished(&tasks) || Instant::now() > deadline {
                bail!("not every watch opened");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let start = Instant::now();
        for i in 0..count {
            let path = work.join(format!("watched-{i}.yaml"));
            std::fs::write(&path, SMALL.replace("NAME", &format!("watched-{i}")))?;
            timed(podlab().args(["apply", "-f"]).arg(&path))?;
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        while !all(&|s| s.ready.len() == count) {
            if finished(&tasks) || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let all_seen = start.elapsed();
        // The final versions, then every watcher's view against them.
        let listed = rt.block_on(pods.list(&ListParams::default().labels(WATCHED)))?;
        let want: BTreeMap<String, String> = listed
            .items
            .iter()
            .filter_map(|p| {
                Some((
                    p.metadata.name.clone()?,
                    p.metadata.resource_version.clone()?,
                ))
            })
            .collect();
        let settle = Instant::now() + Duration::from_secs(10);
        while !all(&|s| s.last_rv == want) && Instant::now() < settle && !finished(&tasks) {
            std::thread::sleep(Duration::from_millis(20));
        }
        // A watch that ended early ended with an error: say which.
        let mut errors = Vec::new();
        for t in tasks {
            if t.is_finished() {
                match rt.block_on(t) {
                    Ok(Err(e)) => errors.push(format!("{e:#}")),
                    Err(e) => errors.push(e.to_string()),
                    Ok(Ok(())) => errors.push("the watch ended".into()),
                }
            } else {
                t.abort();
            }
        }
        let views: Vec<(usize, usize, bool)> = seen
            .iter()
            .map(|s| {
                s.lock()
                    .map(|s| (s.added.len(), s.events, s.last_rv == want))
                    .unwrap_or((0, 0, false))
            })
            .collect();
        let min_max = |f: fn(&(usize, usize, bool)) -> usize| {
            let v = views.iter().map(f);
            (v.clone().min().unwrap_or(0), v.max().unwrap_or(0))
        };
        let (added_min, added_max) = min_max(|v| v.0);
        let (events_min, events_max) = min_max(|v| v.1);
        if want.len() != count {
            bail!("{} watched pods listed, {count} created", want.len());
        }
        Ok(Fanout {
            watchers,
            pods: count,
            added_min,
            added_max,
            events_min,
            events_max,
            complete: views.iter().filter(|v| v.2).count(),
            all_seen,
            errors,
        })
    }

    /// GET of one pod and LIST of all, `samples` each, one after another.
    pub fn latency(&self, samples: usize) -> anyhow::Result<(Latency, Latency)> {
        let pods = &self.pods;
        self.rt.block_on(async {
            let names: Vec<String> = pods
                .list(&ListParams::default())
                .await?
                .items
                .into_iter()
                .filter_map(|p| p.metadata.name)
                .collect();
            let listed = names.len();
            let (mut get, mut list) = (Vec::new(), Vec::new());
            for i in 0..samples {
                let name = names.get(i % listed.max(1)).context("no pods to get")?;
                let start = Instant::now();
                pods.get(name).await?;
                get.push(start.elapsed());
                let start = Instant::now();
                let all = pods.list(&ListParams::default()).await?;
                list.push(start.elapsed());
                if all.items.len() != listed {
                    bail!("a list gave {} pods, then {listed}", all.items.len());
                }
            }
            let latency = |v: &[Duration]| Latency {
                p50: super::percentile(v, 0.5),
                p99: super::percentile(v, 0.99),
                samples: v.len(),
            };
            Ok((latency(&get), latency(&list)))
        })
    }
}
