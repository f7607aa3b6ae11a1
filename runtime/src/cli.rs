//! What the CLI prints: kubectl-shaped tables, v1 objects and describe views.

use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context};
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use podlab::api;
use podlab::config::Config;
use podlab::image::ImageStore;
use podlab::lifecycle;
use podlab::namespaces::{ns_id, Kind};
use podlab::shim::RuntimeState;
use podlab::store::{PodDir, PodKey, Store};

use crate::ImageCommand;

/// Largest manifest podlab reads, like the API server's request limit.
const MAX_MANIFEST: u64 = 3 * 1024 * 1024;

pub fn read_manifest(file: &str) -> anyhow::Result<String> {
    let mut text = String::new();
    if file == "-" {
        std::io::stdin()
            .take(MAX_MANIFEST + 1)
            .read_to_string(&mut text)
            .context("reading the manifest from stdin")?;
    } else {
        std::fs::File::open(file)
            .with_context(|| format!("the path \"{file}\" does not exist"))?
            .take(MAX_MANIFEST + 1)
            .read_to_string(&mut text)
            .with_context(|| format!("reading {file}"))?;
    }
    if text.len() as u64 > MAX_MANIFEST {
        bail!(
            "{file}: the manifest is larger than {} MiB",
            MAX_MANIFEST >> 20
        );
    }
    Ok(text)
}

/// A pod as `get -o json` prints it: the stored object with its status.
fn pod_object(dir: &PodDir) -> anyhow::Result<Pod> {
    Ok(api::pod_object(dir)?)
}

pub fn get(
    config: &Config,
    name: Option<&str>,
    namespace: Option<&str>,
    all: bool,
    output: Option<&str>,
) -> anyhow::Result<()> {
    let store = Store::of(config)?;
    let ns = namespace.unwrap_or("default");
    let dirs = match name {
        Some(n) => vec![store.get(&PodKey::new(ns, n))?],
        None => store.list(if all { None } else { Some(ns) })?,
    };
    let pods: Vec<Pod> = dirs.iter().map(pod_object).collect::<anyhow::Result<_>>()?;
    let single = name.is_some();
    match output {
        Some("json") | Some("yaml") => {
            let value = if single {
                serde_json::to_value(&pods[0])?
            } else {
                serde_json::json!({
                    "apiVersion": "v1",
                    "kind": "List",
                    "items": pods,
                    "metadata": {"resourceVersion": ""},
                })
            };
            if output == Some("json") {
                println!("{}", serde_json::to_string_pretty(&value)?);
            } else {
                print!("{}", serde_norway::to_string(&value)?);
            }
        }
        Some("name") => {
            for p in &pods {
                println!("pod/{}", p.metadata.name.as_deref().unwrap_or(""));
            }
        }
        Some("wide") | None => {
            if pods.is_empty() {
                if all {
                    eprintln!("No resources found");
                } else {
                    eprintln!("No resources found in {ns} namespace.");
                }
                return Ok(());
            }
            print!("{}", table(&pods, all, output == Some("wide")));
        }
        Some(other) => bail!("unable to match a printer suitable for the output format \"{other}\", allowed formats are: json,name,wide,yaml"),
    }
    Ok(())
}

/// `get pod NAME -w`: the pod now, then again at each change, until it is
/// deleted. Table rows after the first come without a header, as kubectl
/// prints them; `-o json` prints one complete Pod object per line.
pub fn watch(config: &Config, key: &PodKey, output: Option<&str>) -> anyhow::Result<()> {
    let store = Store::of(config)?;
    let dir = store.get(key)?;
    let mut first = true;
    let mut last = String::new();
    let mut failed = None;
    api::watch(&dir, None, |pod| {
        let text = match output {
            Some("json") => serde_json::to_string(pod).map(|l| l + "\n"),
            Some("yaml") => serde_norway::to_string(pod)
                .map(|y| format!("---\n{y}"))
                .map_err(serde::ser::Error::custom),
            Some("wide") | None => {
                let t = table(std::slice::from_ref(pod), false, output == Some("wide"));
                let mut lines = t.lines();
                let header = lines.next().unwrap_or_default();
                let row = lines.next().unwrap_or_default();
                Ok(if first {
                    format!("{header}\n{row}\n")
                } else {
                    format!("{row}\n")
                })
            }
            Some(other) => {
                failed = Some(anyhow::anyhow!("unable to match a printer suitable for the output format \"{other}\" in watch mode, allowed formats are: json,wide,yaml"));
                return false;
            }
        };
        match text {
            Ok(text) => {
                // Unchanged as printed (e.g. only a timestamp moved): skip.
                let body = text.lines().last().unwrap_or_default().to_string();
                if first || body != last || output.is_some_and(|o| o != "wide") {
                    print!("{text}");
                    use std::io::Write;
                    let _ = std::io::stdout().flush();
                }
                last = body;
                first = false;
                true
            }
            Err(e) => {
                failed = Some(e.into());
                false
            }
        }
    })?;
    match failed {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// `get events`: the pods' events, oldest first, as kubectl lists them.
pub fn events(
    config: &Config,
    pod: Option<&str>,
    namespace: Option<&str>,
    all: bool,
    output: Option<&str>,
) -> anyhow::Result<()> {
    let store = Store::of(config)?;
    let ns = namespace.unwrap_or("default");
    let mut rows = Vec::new();
    for dir in store.list(if all { None } else { Some(ns) })? {
        if pod.is_some_and(|p| p != dir.key.name) {
            continue;
        }
        let uid = dir
            .read_pod()
            .ok()
            .and_then(|p| p.metadata.uid)
            .unwrap_or_default();
        for e in dir.read_events().unwrap_or_default() {
            rows.push((dir.key.clone(), uid.clone(), e));
        }
    }
    // Stable: events of one pod keep their order within a second.
    rows.sort_by(|a, b| a.2.time.cmp(&b.2.time));
    match output {
        Some("json") => {
            let items: Vec<serde_json::Value> = rows
                .iter()
                .enumerate()
                .map(|(i, (key, uid, e))| {
                    serde_json::json!({
                        "apiVersion": "v1",
                        "kind": "Event",
                        "metadata": {"name": format!("{}.{i}", key.name), "namespace": key.namespace},
                        "involvedObject": {"apiVersion": "v1", "kind": "Pod", "name": key.name, "namespace": key.namespace, "uid": uid},
                        "type": e.type_,
                        "reason": e.reason,
                        "message": e.message,
                        "source": {"component": e.from},
                        "firstTimestamp": e.time,
                        "lastTimestamp": e.time,
                        "count": 1,
                    })
                })
                .collect();
            let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items, "metadata": {"resourceVersion": ""}});
            println!("{}", serde_json::to_string_pretty(&list)?);
        }
        None => {
            if rows.is_empty() {
                if all {
                    eprintln!("No resources found");
                } else {
                    eprintln!("No resources found in {ns} namespace.");
                }
                return Ok(());
            }
            let mut table = vec![vec![
                "LAST SEEN".to_string(),
                "TYPE".into(),
                "REASON".into(),
                "OBJECT".into(),
                "MESSAGE".into(),
            ]];
            if all {
                table[0].insert(0, "NAMESPACE".into());
            }
            for (key, _, e) in &rows {
                let seen = e
                    .time
                    .parse::<k8s_openapi::jiff::Timestamp>()
                    .ok()
                    .map(Time);
                let mut row = vec![
                    age(seen.as_ref()),
                    e.type_.clone(),
                    e.reason.clone(),
                    format!("pod/{}", key.name),
                    e.message.clone(),
                ];
                if all {
                    row.insert(0, key.namespace.clone());
                }
                table.push(row);
            }
            print!("{}", align(&table));
        }
        Some(other) => bail!("unable to match a printer suitable for the output format \"{other}\" for events, allowed formats are: json"),
    }
    Ok(())
}

/// Columns padded to their widest cell, three spaces apart, as kubectl prints.
fn align(rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..rows.first().map(Vec::len).unwrap_or(0))
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let line: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, cell)| format!("{cell:<w$}", w = widths[i]))
            .collect();
        out.push_str(line.join("   ").trim_end());
        out.push('\n');
    }
    out
}

fn table(pods: &[Pod], all: bool, wide: bool) -> String {
    let mut rows = Vec::new();
    let mut header = vec!["NAME", "READY", "STATUS", "RESTARTS", "AGE"];
    if all {
        header.insert(0, "NAMESPACE");
    }
    if wide {
        header.extend(["IP", "NODE"]);
    }
    rows.push(header.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    for pod in pods {
        let status = pod.status.clone().unwrap_or_default();
        let (ready, total) = lifecycle::ready_count(pod, &status);
        let mut row = vec![
            pod.metadata.name.clone().unwrap_or_default(),
            format!("{ready}/{total}"),
            lifecycle::display_status(pod, &status),
            lifecycle::restarts(pod, &status).to_string(),
            age(pod.metadata.creation_timestamp.as_ref()),
        ];
        if all {
            row.insert(0, pod.metadata.namespace.clone().unwrap_or_default());
        }
        if wide {
            row.push(status.pod_ip.clone().unwrap_or_else(|| "<none>".into()));
            row.push(
                pod.spec
                    .as_ref()
                    .and_then(|s| s.node_name.clone())
                    .unwrap_or_else(|| "<none>".into()),
            );
        }
        rows.push(row);
    }
    align(&rows)
}

/// kubectl's short ages: 42s, 5m, 3h, 2d.
fn age(created: Option<&Time>) -> String {
    let Some(t) = created else {
        return "<unknown>".into();
    };
    let secs = (podlab::store::unix_now() - t.0.as_second()).max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 3600 * 2 => format!("{}m", s / 60),
        s if s < 86400 * 2 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

pub fn describe(config: &Config, key: &PodKey) -> anyhow::Result<()> {
    let store = Store::of(config)?;
    let dir = store.get(key)?;
    let (pod, status) = api::current_status(&dir)?;
    let state: RuntimeState = dir.read_runtime()?.unwrap_or_default();
    print!("{}", describe_text(&pod, &status, &state, &dir));
    Ok(())
}

fn describe_text(pod: &Pod, status: &PodStatus, state: &RuntimeState, dir: &PodDir) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let spec = pod.spec.clone().unwrap_or_default();
    let md = &pod.metadata;
    let _ = writeln!(s, "Name:         {}", md.name.as_deref().unwrap_or(""));
    let _ = writeln!(
        s,
        "Namespace:    {}",
        md.namespace.as_deref().unwrap_or("default")
    );
    let _ = writeln!(s, "UID:          {}", md.uid.as_deref().unwrap_or(""));
    let _ = writeln!(
        s,
        "Node:         {}/{}",
        spec.node_name.as_deref().unwrap_or("<none>"),
        status.host_ip.as_deref().unwrap_or("")
    );
    if let Some(t) = &status.start_time {
        let _ = writeln!(s, "Start Time:   {}", t.0);
    }
    let labels = md.labels.clone().unwrap_or_default();
    let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let _ = writeln!(
        s,
        "Labels:       {}",
        if labels.is_empty() {
            "<none>".into()
        } else {
            labels.join(",")
        }
    );
    let _ = writeln!(
        s,
        "Status:       {}",
        lifecycle::display_status(pod, status)
    );
    if let Some(m) = &status.message {
        let _ = writeln!(s, "Message:      {m}");
    }
    let _ = writeln!(
        s,
        "IP:           {}",
        status.pod_ip.as_deref().unwrap_or("<none>")
    );
    let _ = writeln!(s, "Sandbox:");
    if let Some(p) = state.shim {
        let _ = writeln!(s, "  Shim PID:   {}", p.pid);
    }
    if let Some(p) = state.pause {
        let _ = writeln!(s, "  Pause PID:  {}", p.pid);
        for k in [Kind::Net, Kind::Uts, Kind::Ipc, Kind::Pid] {
            let _ = writeln!(
                s,
                "  {:<11} {}",
                format!("{}:", k.proc_name()),
                ns_id(p.pid, k).unwrap_or_else(|| "<gone>".into())
            );
        }
    }
    if let Some(n) = &state.netns {
        let _ = writeln!(s, "  Netns:      {}", n.display());
    }
    let _ = writeln!(s, "  /dev/shm:   {}", dir.shm_dir().display());
    if let Some(cg) = &state.pod_cgroup {
        let _ = writeln!(
            s,
            "  Cgroup:     {cg} ({:?})",
            state.cgroup_mode.unwrap_or(podlab::cgroups::Mode::V1)
        );
    }
    let init = spec.init_containers.clone().unwrap_or_default();
    for (title, list, statuses) in [
        ("Init Containers:", &init, &status.init_container_statuses),
        ("Containers:", &spec.containers, &status.container_statuses),
    ] {
        if list.is_empty() {
            continue;
        }
        let _ = writeln!(s, "{title}");
        for c in list {
            let cs = statuses.iter().flatten().find(|x| x.name == c.name);
            describe_container(&mut s, c, cs, state.containers.get(&c.name));
        }
    }
    let _ = writeln!(s, "Conditions:");
    let _ = writeln!(s, "  Type                        Status");
    for c in status.conditions.iter().flatten() {
        let _ = writeln!(s, "  {:<27} {}", c.type_, c.status);
    }
    let _ = writeln!(s, "Events:");
    let events = dir.read_events().unwrap_or_default();
    if events.is_empty() {
        let _ = writeln!(s, "  <none>");
    } else {
        let _ = writeln!(
            s,
            "  {:<8} {:<22} {:<20} {:<26} Message",
            "Type", "Reason", "From", "Time"
        );
        for e in events {
            let _ = writeln!(
                s,
                "  {:<8} {:<22} {:<20} {:<26} {}",
                e.type_, e.reason, e.from, e.time, e.message
            );
        }
    }
    s
}

fn describe_container(
    s: &mut String,
    c: &k8s_openapi::api::core::v1::Container,
    cs: Option<&k8s_openapi::api::core::v1::ContainerStatus>,
    rt: Option<&podlab::shim::ContainerRuntime>,
) {
    use std::fmt::Write;
    let _ = writeln!(s, "  {}:", c.name);
    let _ = writeln!(
        s,
        "    Image:          {}",
        c.image.as_deref().unwrap_or("")
    );
    if let Some(cs) = cs {
        let _ = writeln!(s, "    Image ID:       {}", cs.image_id);
        let st = cs.state.clone().unwrap_or_default();
        if let Some(r) = st.running {
            let _ = writeln!(s, "    State:          Running");
            if let Some(t) = r.started_at {
                let _ = writeln!(s, "      Started:      {}", t.0);
            }
        } else if let Some(w) = st.waiting {
            let _ = writeln!(s, "    State:          Waiting");
            let _ = writeln!(s, "      Reason:       {}", w.reason.unwrap_or_default());
            if let Some(m) = w.message {
                let _ = writeln!(s, "      Message:      {m}");
            }
        } else if let Some(t) = st.terminated {
            let _ = writeln!(s, "    State:          Terminated");
            let _ = writeln!(s, "      Reason:       {}", t.reason.unwrap_or_default());
            let _ = writeln!(s, "      Exit Code:    {}", t.exit_code);
        }
        let _ = writeln!(s, "    Ready:          {}", cs.ready);
        let _ = writeln!(s, "    Restart Count:  {}", cs.restart_count);
    }
    for (name, probe) in [
        ("Liveness", &c.liveness_probe),
        ("Readiness", &c.readiness_probe),
        ("Startup", &c.startup_probe),
    ] {
        if let Some(p) = probe {
            let _ = writeln!(s, "    {:<15} {}", format!("{name}:"), probe_text(p));
        }
    }
    if let Some(policy) = &c.restart_policy {
        let _ = writeln!(s, "    Restart Policy: {policy}");
    }
    for m in c.volume_mounts.iter().flatten() {
        let mode = if m.read_only == Some(true) {
            "ro"
        } else {
            "rw"
        };
        let _ = writeln!(
            s,
            "    Mount:          {} from {} ({mode})",
            m.mount_path, m.name
        );
    }
    if let Some(res) = &c.resources {
        for (title, map) in [("Limits", &res.limits), ("Requests", &res.requests)] {
            if let Some(m) = map {
                let _ = writeln!(s, "    {title}:");
                for (k, v) in m {
                    let _ = writeln!(s, "      {k}: {}", v.0);
                }
            }
        }
    }
    if let Some(rt) = rt {
        let _ = writeln!(s, "    Command:        {}", rt.process.args.join(" "));
        if let Some(p) = rt.pid {
            let _ = writeln!(s, "    PID:            {}", p.pid);
            for k in [Kind::Mnt, Kind::Pid, Kind::Net, Kind::Uts, Kind::Ipc] {
                let _ = writeln!(
                    s,
                    "    {:<15} {}",
                    format!("{}:", k.proc_name()),
                    ns_id(p.pid, k).unwrap_or_else(|| "<gone>".into())
                );
            }
        }
        let l = &rt.limits;
        let show = |v: Option<i64>| v.map(|x| x.to_string()).unwrap_or_else(|| "max".into());
        let _ = writeln!(
            s,
            "    Cgroup limits:  memory={} cpu.quota={}us/{}us cpu.shares={} pids={}",
            show(l.memory_bytes),
            show(l.cpu_quota_us),
            l.cpu_period_us.unwrap_or(100_000),
            l.cpu_shares
                .map(|x| x.to_string())
                .unwrap_or_else(|| "-".into()),
            show(l.pids_max)
        );
        for (ctrl, path) in &rt.cgroup_paths {
            let _ = writeln!(s, "    Cgroup {ctrl:<8} {}", path.display());
        }
    }
}

/// A probe as kubectl describes it: `http-get http://:8080/healthz delay=0s ...`.
fn probe_text(p: &k8s_openapi::api::core::v1::Probe) -> String {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    let port = |p: &IntOrString| match p {
        IntOrString::Int(n) => n.to_string(),
        IntOrString::String(s) => s.clone(),
    };
    let how = if let Some(e) = &p.exec {
        format!("exec {:?}", e.command.clone().unwrap_or_default())
    } else if let Some(h) = &p.http_get {
        format!(
            "http-get http://{}:{}{}",
            h.host.clone().unwrap_or_default(),
            port(&h.port),
            h.path.clone().unwrap_or_else(|| "/".into())
        )
    } else if let Some(t) = &p.tcp_socket {
        format!(
            "tcp-socket {}:{}",
            t.host.clone().unwrap_or_default(),
            port(&t.port)
        )
    } else {
        "<unsupported>".into()
    };
    let t = podlab::probe::Timing::of(p);
    format!(
        "{how} delay={}s timeout={}s period={}s #success={} #failure={}",
        t.initial_delay.as_secs(),
        t.timeout.as_secs(),
        t.period.as_secs(),
        t.success_threshold,
        t.failure_threshold
    )
}

/// `podlab logs`' options, as kubectl's.
pub struct LogOptions {
    pub previous: bool,
    /// The last N lines only.
    pub tail: Option<usize>,
    pub timestamps: bool,
    pub since: Option<std::time::Duration>,
    /// Keep printing what the container writes until it stops.
    pub follow: bool,
}

pub fn logs(
    config: &Config,
    key: &PodKey,
    container: Option<&str>,
    opts: &LogOptions,
) -> anyhow::Result<()> {
    use std::io::Write;
    let store = Store::of(config)?;
    let dir = store.get(key)?;
    let pod = dir.read_pod()?;
    let name = api::container_name(&pod, key, container)?;
    let status = dir.read_status()?.unwrap_or_default();
    let restarts = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten())
        .find(|c| c.name == name)
        .map_or(0, |c| c.restart_count.max(0) as u32);
    let start = if opts.previous {
        match restarts.checked_sub(1) {
            Some(n) => n,
            None => bail!(
                "previous terminated container \"{name}\" in pod \"{}\" not found",
                key.name
            ),
        }
    } else {
        restarts
    };
    let path = podlab::logs::log_path(&dir.log_dir(&name), start);
    if podlab::logs::files(&path).is_empty() {
        bail!(
            "container \"{name}\" in pod \"{}\" is waiting to start",
            key.name
        )
    }
    let mut follower = podlab::logs::Follower::new(path.clone());
    let mut lines = follower.read_all()?;
    if let Some(since) = opts.since {
        let now = std::time::SystemTime::now();
        let cut = now.checked_sub(since).unwrap_or(std::time::UNIX_EPOCH);
        let cut = podlab::logs::timestamp(cut);
        lines.retain(|l| podlab::logs::at_or_after(l, cut));
    }
    if let Some(n) = opts.tail {
        lines.drain(..lines.len().saturating_sub(n));
    }
    let print = |lines: Vec<podlab::logs::Line>| -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        for l in lines {
            if opts.timestamps {
                write!(out, "{} ", l.time)?;
            }
            out.write_all(&l.text)?;
            out.write_all(b"\n")?;
        }
        out.flush()
    };
    print(lines)?;
    if opts.follow && !opts.previous {
        follow_log(&dir, &name, start, &mut follower, print)?;
    }
    Ok(())
}

/// `logs -f`: prints what the container start writes, woken by inotify on
/// its log directory and on the pod's records, until that start is over
/// (the container stopped or restarted) or the pod is gone.
fn follow_log(
    dir: &PodDir,
    name: &str,
    start: u32,
    follower: &mut podlab::logs::Follower,
    print: impl Fn(Vec<podlab::logs::Line>) -> std::io::Result<()>,
) -> anyhow::Result<()> {
    use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
    use std::os::fd::AsFd;
    let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK)?;
    inotify.add_watch(
        &dir.log_dir(name),
        AddWatchFlags::IN_MODIFY | AddWatchFlags::IN_CREATE | AddWatchFlags::IN_MOVED_TO,
    )?;
    inotify.add_watch(
        &dir.dir,
        AddWatchFlags::IN_MOVED_TO | AddWatchFlags::IN_DELETE_SELF,
    )?;
    let this_start_runs = || {
        dir.read_status().ok().flatten().is_some_and(|s| {
            s.init_container_statuses
                .iter()
                .flatten()
                .chain(s.container_statuses.iter().flatten())
                .find(|c| c.name == name)
                .is_some_and(|c| {
                    c.restart_count.max(0) as u32 == start
                        && c.state.as_ref().is_some_and(|st| st.running.is_some())
                })
        })
    };
    loop {
        let running = dir.pod_file().exists() && this_start_runs();
        print(follower.read_new()?)?;
        if !running {
            // The shim writes the last output before it records the exit.
            return Ok(());
        }
        // A timeout as well: a status written before the watch was added.
        podlab::sys::wait_readable(&inotify.as_fd(), Some(std::time::Duration::from_secs(1)))?;
        while let Ok(events) = inotify.read_events() {
            if events.is_empty() {
                break;
            }
        }
    }
}

pub fn image(config: &Config, cmd: ImageCommand) -> anyhow::Result<()> {
    let store = ImageStore::open(&config.image_root)?;
    match cmd {
        ImageCommand::Import { path, name } => {
            for img in store.import(Path::new(&path), name.as_deref())? {
                println!("imported {} {}", img.reference, img.digest);
            }
        }
        ImageCommand::Ls => {
            let images = store.list()?;
            let mut rows = vec![["IMAGE".to_string(), "DIGEST".into(), "SIZE".into()]];
            for i in images {
                let short = i
                    .digest
                    .trim_start_matches("sha256:")
                    .chars()
                    .take(12)
                    .collect::<String>();
                rows.push([i.reference, short, human_size(i.size)]);
            }
            let w0 = rows.iter().map(|r| r[0].len()).max().unwrap_or(0);
            for r in rows {
                println!("{:<w0$}   {:<12}   {}", r[0], r[1], r[2]);
            }
        }
        ImageCommand::Tag { source, target } => {
            store.tag(&source, &target)?;
            println!("tagged {source} as {target}");
        }
        ImageCommand::Rm { reference } => {
            store.remove(&reference)?;
            println!("untagged {reference}");
        }
    }
    Ok(())
}

fn human_size(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 20 => format!("{:.1}MiB", b as f64 / (1 << 20) as f64),
        b if b >= 1 << 10 => format!("{:.1}KiB", b as f64 / 1024.0),
        b => format!("{b}B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_has_kubectl_columns() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web", "namespace": "default", "creationTimestamp": "2020-01-01T00:00:00Z"},
            "spec": {"nodeName": "n1", "containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Running", "podIP": "10.89.0.2", "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 1, "image": "x", "imageID": "",
                 "state": {"running": {}}},
                {"name": "b", "ready": false, "restartCount": 2, "image": "x", "imageID": "",
                 "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
            ]}
        }))
        .unwrap();
        let t = table(&[pod], false, true);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("NAME"), "{t}");
        assert!(lines[0].ends_with("IP          NODE"), "{t}");
        let cells: Vec<&str> = lines[1].split_whitespace().collect();
        assert_eq!(
            cells,
            [
                "web",
                "1/2",
                "CrashLoopBackOff",
                "3",
                cells[4],
                "10.89.0.2",
                "n1"
            ]
        );
        assert!(cells[4].ends_with('d'));
    }

    #[test]
    fn ages_are_short() {
        let t = |s: i64| {
            Time(k8s_openapi::jiff::Timestamp::from_second(podlab::store::unix_now() - s).unwrap())
        };
        assert_eq!(age(Some(&t(5))), "5s");
        assert_eq!(age(Some(&t(600))), "10m");
        assert_eq!(age(Some(&t(3 * 3600))), "3h");
        assert_eq!(age(Some(&t(3 * 86400))), "3d");
        assert_eq!(human_size(2048), "2.0KiB");
    }
}
