//! What the CLI prints: kubectl-shaped tables, v1 objects and describe
//! views, made from what `api` returns. Pure: main.rs reads and prints.

use anyhow::bail;
use k8s_openapi::api::core::v1::{Pod, PodStatus, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use podlab::api::{self, present, PodKey};

/// How `get` prints pods, from `-o` (and `--no-headers`).
pub enum Output {
    Table(Columns),
    Json,
    Yaml,
    Name,
    JsonPath(crate::jsonpath::Template),
}

impl Output {
    pub fn parse(output: Option<&str>, cols: Columns) -> anyhow::Result<Output> {
        Ok(match output {
            None => Output::Table(cols),
            Some("wide") => Output::Table(Columns { wide: true, ..cols }),
            Some("json") => Output::Json,
            Some("yaml") => Output::Yaml,
            Some("name") => Output::Name,
            Some(o) if o.starts_with("jsonpath=") => {
                Output::JsonPath(crate::jsonpath::Template::parse(&o["jsonpath=".len()..])?)
            }
            Some(other) => bail!("-o/--output: unable to match a printer suitable for the output format \"{other}\", allowed formats are: json,jsonpath,name,wide,yaml"),
        })
    }
}

/// What `get` prints for these pods: one object when `single`, else a List.
pub fn render_pods(
    pods: &[Pod],
    single: bool,
    output: &Output,
    now: i64,
) -> anyhow::Result<String> {
    let value = || -> anyhow::Result<serde_json::Value> {
        Ok(match (single, pods.first()) {
            (true, Some(pod)) => serde_json::to_value(pod)?,
            _ => serde_json::json!({
                "apiVersion": "v1",
                "kind": "List",
                "items": pods,
                "metadata": {"resourceVersion": ""},
            }),
        })
    };
    Ok(match output {
        Output::Json => serde_json::to_string_pretty(&value()?)? + "\n",
        Output::Yaml => serde_norway::to_string(&value()?)?,
        Output::JsonPath(t) => t.render(&value()?),
        Output::Name => pods
            .iter()
            .map(|p| format!("pod/{}\n", p.metadata.name.as_deref().unwrap_or("")))
            .collect(),
        Output::Table(cols) => table(pods, *cols, now),
    })
}

/// `kubectl get secrets` as a table: NAME TYPE DATA AGE (the values are
/// never shown, only how many keys there are).
pub fn secrets_table(secrets: &[Secret], cols: Columns, now: i64) -> String {
    let mut rows = Vec::new();
    let mut header = vec!["NAME", "TYPE", "DATA", "AGE"];
    if cols.namespace {
        header.insert(0, "NAMESPACE");
    }
    if !cols.no_headers {
        rows.push(header.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    }
    for s in secrets {
        let mut row = vec![
            s.metadata.name.clone().unwrap_or_default(),
            s.type_.clone().unwrap_or_default(),
            s.data.as_ref().map_or(0, |d| d.len()).to_string(),
            age(s.metadata.creation_timestamp.as_ref(), now),
        ];
        if cols.namespace {
            row.insert(0, s.metadata.namespace.clone().unwrap_or_default());
        }
        rows.push(row);
    }
    align(&rows)
}

/// What `get secrets` prints: one object when `single`, else a List.
pub fn render_secrets(
    secrets: &[Secret],
    single: bool,
    output: &Output,
    now: i64,
) -> anyhow::Result<String> {
    let value = || -> anyhow::Result<serde_json::Value> {
        Ok(match (single, secrets.first()) {
            (true, Some(s)) => serde_json::to_value(s)?,
            _ => serde_json::json!({
                "apiVersion": "v1",
                "kind": "List",
                "items": secrets,
                "metadata": {"resourceVersion": ""},
            }),
        })
    };
    Ok(match output {
        Output::Json => serde_json::to_string_pretty(&value()?)? + "\n",
        Output::Yaml => serde_norway::to_string(&value()?)?,
        Output::JsonPath(t) => t.render(&value()?),
        Output::Name => secrets
            .iter()
            .map(|s| format!("secret/{}\n", s.metadata.name.as_deref().unwrap_or("")))
            .collect(),
        Output::Table(cols) => secrets_table(secrets, *cols, now),
    })
}

/// One change of one watched pod as printed; empty when a table row did
/// not change (only a timestamp moved).
pub fn watch_line(
    pod: &Pod,
    output: &Output,
    last: &mut String,
    printed_header: &std::sync::atomic::AtomicBool,
    now: i64,
) -> anyhow::Result<String> {
    use std::sync::atomic::Ordering;
    Ok(match output {
        Output::Json => serde_json::to_string(pod)? + "\n",
        Output::Yaml => format!("---\n{}", serde_norway::to_string(pod)?),
        Output::Table(cols) => {
            let t = table(
                std::slice::from_ref(pod),
                Columns {
                    no_headers: false,
                    ..*cols
                },
                now,
            );
            let mut lines = t.lines();
            let header = lines.next().unwrap_or_default();
            let row = lines.next().unwrap_or_default().to_string();
            if row == *last {
                return Ok(String::new());
            }
            *last = row.clone();
            let header_due = !cols.no_headers && !printed_header.swap(true, Ordering::SeqCst);
            if header_due {
                format!("{header}\n{row}\n")
            } else {
                format!("{row}\n")
            }
        }
        other => render_pods(std::slice::from_ref(pod), true, other, 0)?,
    })
}

/// `get events`: the pods' events, oldest first, as kubectl lists them
/// (`-o json` or a table); `None` when a table would be empty.
pub fn events_text(
    rows: &[(PodKey, String, api::Event)],
    all: bool,
    output: Option<&str>,
    now: i64,
) -> anyhow::Result<Option<String>> {
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
            Ok(Some(serde_json::to_string_pretty(&list)? + "\n"))
        }
        None => {
            if rows.is_empty() {
                return Ok(None);
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
            for (key, _, e) in rows {
                let seen = e
                    .time
                    .parse::<k8s_openapi::jiff::Timestamp>()
                    .ok()
                    .map(Time);
                let mut row = vec![
                    age(seen.as_ref(), now),
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
            Ok(Some(align(&table)))
        }
        Some(other) => bail!("unable to match a printer suitable for the output format \"{other}\" for events, allowed formats are: json"),
    }
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

/// Which columns a pod table has.
#[derive(Clone, Copy, Debug, Default)]
pub struct Columns {
    /// A NAMESPACE column first (`-A`).
    pub namespace: bool,
    /// `-o wide`: IP, NODE, NOMINATED NODE, READINESS GATES.
    pub wide: bool,
    /// `--no-headers`.
    pub no_headers: bool,
}

/// `kubectl get pods` as a table, ages counted to `now` (seconds since the epoch).
pub fn table(pods: &[Pod], cols: Columns, now: i64) -> String {
    let mut rows = Vec::new();
    let mut header = vec!["NAME", "READY", "STATUS", "RESTARTS", "AGE"];
    if cols.namespace {
        header.insert(0, "NAMESPACE");
    }
    if cols.wide {
        header.extend(["IP", "NODE", "NOMINATED NODE", "READINESS GATES"]);
    }
    if !cols.no_headers {
        rows.push(header.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    }
    let none = || "<none>".to_string();
    for pod in pods {
        let status = pod.status.clone().unwrap_or_default();
        let (ready, total) = present::ready_count(pod, &status);
        let mut row = vec![
            pod.metadata.name.clone().unwrap_or_default(),
            format!("{ready}/{total}"),
            present::display_status(pod, &status),
            present::restarts(pod, &status).to_string(),
            age(pod.metadata.creation_timestamp.as_ref(), now),
        ];
        if cols.namespace {
            row.insert(0, pod.metadata.namespace.clone().unwrap_or_default());
        }
        if cols.wide {
            let spec = pod.spec.as_ref();
            row.push(status.pod_ip.clone().unwrap_or_else(none));
            row.push(spec.and_then(|s| s.node_name.clone()).unwrap_or_else(none));
            row.push(status.nominated_node_name.clone().unwrap_or_else(none));
            row.push(readiness_gates(pod, &status).unwrap_or_else(none));
        }
        rows.push(row);
    }
    align(&rows)
}

/// READINESS GATES: how many of the pod's gates are True, of how many.
fn readiness_gates(pod: &Pod, status: &PodStatus) -> Option<String> {
    let gates = pod.spec.as_ref()?.readiness_gates.as_ref()?;
    if gates.is_empty() {
        return None;
    }
    let met = gates
        .iter()
        .filter(|g| present::condition_is_true(status, &g.condition_type))
        .count();
    Some(format!("{met}/{}", gates.len()))
}

/// AGE: the time since `created` as kubectl's printers show it.
fn age(created: Option<&Time>, now: i64) -> String {
    match created {
        Some(t) => human_duration(now - t.0.as_second()),
        None => "<unknown>".into(),
    }
}

use podlab::api::present::human_duration;

/// The pod's host namespaces, host ports, hostAliases and DNS settings,
/// each only when the pod sets it.
fn describe_host_and_dns(s: &mut String, spec: &k8s_openapi::api::core::v1::PodSpec) {
    use std::fmt::Write;
    let host_ns: Vec<&str> = [
        ("net", spec.host_network),
        ("pid", spec.host_pid),
        ("ipc", spec.host_ipc),
    ]
    .iter()
    .filter(|(_, on)| *on == Some(true))
    .map(|(n, _)| *n)
    .collect();
    if !host_ns.is_empty() {
        let _ = writeln!(s, "Host Namespaces: {}", host_ns.join(", "));
    }
    let ports: Vec<String> = present::host_ports_described(spec);
    if !ports.is_empty() {
        let _ = writeln!(s, "Host Ports:   {}", ports.join(", "));
    }
    for a in spec.host_aliases.iter().flatten() {
        let names = a.hostnames.clone().unwrap_or_default().join(" ");
        let _ = writeln!(s, "Host Alias:   {} {names}", a.ip);
    }
    let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    if let Some(cfg) = &spec.dns_config {
        let options: Vec<String> = cfg
            .options
            .iter()
            .flatten()
            .map(|o| match &o.value {
                Some(v) => format!("{}:{v}", o.name.as_deref().unwrap_or_default()),
                None => o.name.clone().unwrap_or_default(),
            })
            .collect();
        let _ = writeln!(
            s,
            "DNS:          {policy}; nameservers [{}]; searches [{}]; options [{}]",
            cfg.nameservers.clone().unwrap_or_default().join(" "),
            cfg.searches.clone().unwrap_or_default().join(" "),
            options.join(" ")
        );
    } else if policy != "ClusterFirst" {
        let _ = writeln!(s, "DNS:          {policy}");
    }
}

/// `describe`'s text: kubectl's layout with podlab's sandbox and runtime facts.
pub fn describe_text(d: &api::PodDescription) -> String {
    use std::fmt::Write;
    let (pod, status, sandbox) = (&d.pod, &d.status, &d.sandbox);
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
    let _ = writeln!(s, "Status:       {}", present::display_status(pod, status));
    if let Some(m) = &status.message {
        let _ = writeln!(s, "Message:      {m}");
    }
    let _ = writeln!(
        s,
        "IP:           {}",
        status.pod_ip.as_deref().unwrap_or("<none>")
    );
    describe_host_and_dns(&mut s, &spec);
    let _ = writeln!(s, "Sandbox:");
    if let Some(pid) = sandbox.shim_pid {
        let _ = writeln!(s, "  Shim PID:   {pid}");
    }
    if let Some(p) = &sandbox.pause {
        let _ = writeln!(s, "  Pause PID:  {}", p.pid);
        for (kind, id) in &p.namespaces {
            let _ = writeln!(
                s,
                "  {:<11} {}",
                format!("{kind}:"),
                id.as_deref().unwrap_or("<gone>")
            );
        }
    }
    if let Some(n) = &sandbox.netns {
        let _ = writeln!(s, "  Netns:      {}", n.display());
    }
    let _ = writeln!(s, "  /dev/shm:   {}", sandbox.shm_dir.display());
    if let Some((cg, mode)) = &sandbox.pod_cgroup {
        let _ = writeln!(s, "  Cgroup:     {cg} ({mode})");
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
            describe_container(&mut s, c, cs, d.containers.get(&c.name));
        }
    }
    let _ = writeln!(s, "Conditions:");
    let _ = writeln!(s, "  Type                        Status");
    for c in status.conditions.iter().flatten() {
        let _ = writeln!(s, "  {:<27} {}", c.type_, c.status);
    }
    let _ = writeln!(s, "Events:");
    if d.events.is_empty() {
        let _ = writeln!(s, "  <none>");
    } else {
        let _ = writeln!(
            s,
            "  {:<8} {:<22} {:<20} {:<26} Message",
            "Type", "Reason", "From", "Time"
        );
        for e in &d.events {
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
    rt: Option<&api::ContainerFacts>,
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
        let _ = writeln!(s, "    Command:        {}", rt.args.join(" "));
        // As resolved: the image's Entrypoint, Cmd, Env and WorkingDir
        // with the manifest's over them and $(VAR) references expanded.
        let _ = writeln!(s, "    Working Dir:    {}", rt.cwd);
        let id = |v: Option<u32>| v.map_or_else(|| "0".to_string(), |v| v.to_string());
        // The groups as resolved: the image's (unless supplementalGroupsPolicy
        // is Strict), supplementalGroups, fsGroup.
        let groups = if rt.groups.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = rt.groups.iter().map(u32::to_string).collect();
            format!(" groups={}", list.join(","))
        };
        let _ = writeln!(
            s,
            "    User:           uid={} gid={}{groups}",
            id(rt.uid),
            id(rt.gid)
        );
        let _ = writeln!(s, "    Environment:");
        for kv in &rt.env {
            let _ = writeln!(s, "      {kv}");
        }
        if let Some(p) = &rt.process {
            let _ = writeln!(s, "    PID:            {}", p.pid);
            for (kind, id) in &p.namespaces {
                let _ = writeln!(
                    s,
                    "    {:<15} {}",
                    format!("{kind}:"),
                    id.as_deref().unwrap_or("<gone>")
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
    let t = present::ProbeTiming::of(p);
    format!(
        "{how} delay={}s timeout={}s period={}s #success={} #failure={}",
        t.initial_delay.as_secs(),
        t.timeout.as_secs(),
        t.period.as_secs(),
        t.success_threshold,
        t.failure_threshold
    )
}

/// `image ls`: IMAGE, DIGEST (12 hex digits) and SIZE.
pub fn images_table(images: &[api::ImageInfo]) -> String {
    use std::fmt::Write;
    let mut rows = vec![["IMAGE".to_string(), "DIGEST".into(), "SIZE".into()]];
    for i in images {
        let short = i
            .digest
            .trim_start_matches("sha256:")
            .chars()
            .take(12)
            .collect::<String>();
        rows.push([i.reference.clone(), short, human_size(i.size)]);
    }
    let w0 = rows.iter().map(|r| r[0].len()).max().unwrap_or(0);
    let mut out = String::new();
    for r in rows {
        let _ = writeln!(out, "{:<w0$}   {:<12}   {}", r[0], r[1], r[2]);
    }
    out
}

/// `image pull`'s progress: one line, redrawn at most ten times a second
/// (and at each finished layer): layers and bytes fetched of what the pull
/// needs.
pub struct PullBar {
    reference: String,
    layers: usize,
    missing: usize,
    done: usize,
    total: u64,
    bytes: u64,
    drawn: Option<std::time::Instant>,
}

impl PullBar {
    pub fn new(reference: &str) -> PullBar {
        PullBar {
            reference: reference.to_string(),
            layers: 0,
            missing: 0,
            done: 0,
            total: 0,
            bytes: 0,
            drawn: None,
        }
    }

    /// Takes in one report; the line to draw when it is due at `now`.
    pub fn update(&mut self, p: &api::PullProgress, now: std::time::Instant) -> Option<String> {
        use api::PullProgress as Progress;
        match *p {
            Progress::Resolved {
                layers,
                missing,
                bytes,
            } => {
                (self.layers, self.missing, self.total) = (layers, missing, bytes);
            }
            Progress::Bytes(n) => self.bytes += n,
            Progress::LayerDone => self.done += 1,
        }
        let due = self
            .drawn
            .is_none_or(|t| now.duration_since(t) >= std::time::Duration::from_millis(100));
        if due || matches!(p, Progress::LayerDone) {
            self.drawn = Some(now);
            return Some(self.line());
        }
        None
    }

    /// The line as it stands, drawn over the previous one.
    pub fn line(&self) -> String {
        let cached = self.layers - self.missing;
        format!(
            "\r\x1b[K{}: layers {}/{} ({} already present), {} / {}",
            self.reference,
            self.done + cached,
            self.layers,
            cached,
            human_size(self.bytes),
            human_size(self.total)
        )
    }
}

/// `describe -o mermaid`: the live pod as a Mermaid flowchart. Each process
/// lists every namespace it is in as /proc/PID/ns names it, marked `holds`
/// (the pause's, shared by the pod), `joins` (a container in the pause's),
/// `own` or `host` (the namespace podlab runs in); each container has its cgroup with its limits;
/// the pod's eth0 leads through the host veth to the bridge.
pub fn mermaid(p: &api::PodPicture) -> String {
    use std::fmt::Write;
    let mut s = String::from("flowchart LR\n");
    let ip = p.pod_ip.as_deref().unwrap_or("no IP");
    let _ = writeln!(
        s,
        "  subgraph pod[\"pod {}/{} · uid {} · IP {ip}\"]",
        p.key.namespace, p.key.name, p.uid
    );
    let ns_lines = |proc_: &api::ProcessPicture| -> String {
        proc_
            .namespaces
            .iter()
            .map(|(_, id, how)| format!("<br/>{id} {}", how.as_str()))
            .collect()
    };
    match &p.pause {
        Some(pause) => {
            let _ = writeln!(
                s,
                "    pause[\"pause · PID {}{}\"]",
                pause.pid,
                ns_lines(pause)
            );
        }
        None => {
            let _ = writeln!(s, "    pause[\"pause · not running\"]");
        }
    }
    if let Some(cg) = &p.pod_cgroup {
        let _ = writeln!(s, "    podcg[(\"cgroup {cg}\")]");
        let _ = writeln!(s, "    pause --- podcg");
    }
    for (i, c) in p.containers.iter().enumerate() {
        let label = match &c.process {
            Some(proc_) => format!(
                "container {} · PID {}{}",
                c.name,
                proc_.pid,
                ns_lines(proc_)
            ),
            None => format!("container {} · not running", c.name),
        };
        let _ = writeln!(s, "    c{i}[\"{label}\"]");
        let _ = writeln!(
            s,
            "    cg{i}[(\"cgroup {}<br/>{}\")]",
            c.cgroup,
            limits_text(&c.limits)
        );
        let _ = writeln!(s, "    c{i} --- cg{i}");
        let joined: Vec<&str> = c
            .process
            .iter()
            .flat_map(|pr| pr.namespaces.iter())
            .filter(|(_, _, how)| *how == api::NsHow::Joins)
            .map(|(k, _, _)| k.as_str())
            .collect();
        if !joined.is_empty() {
            let _ = writeln!(s, "    c{i} -. joins {} .-> pause", joined.join(", "));
        }
    }
    let _ = writeln!(s, "    eth0[\"{} · {ip}\"]", p.ifname);
    let _ = writeln!(s, "    pause --- eth0");
    let _ = writeln!(s, "  end");
    let veth = p.links.veth.as_deref().unwrap_or("veth (unknown)");
    let bridge = p.links.bridge.as_deref().unwrap_or("bridge (unknown)");
    let _ = writeln!(s, "  veth[\"host {veth}\"]");
    let _ = writeln!(s, "  bridge[\"bridge {bridge}\"]");
    let _ = writeln!(s, "  eth0 --- veth --- bridge");
    s
}

/// A container's limits in words: memory, CPU quota, shares, pids.
fn limits_text(l: &api::Limits) -> String {
    let mut parts = Vec::new();
    if let Some(m) = l.memory_bytes {
        parts.push(format!("memory {}", human_size(m.max(0) as u64)));
    }
    if let (Some(q), Some(per)) = (l.cpu_quota_us, l.cpu_period_us) {
        parts.push(format!("cpu {q}/{per} µs"));
    }
    if let Some(sh) = l.cpu_shares {
        parts.push(format!("shares {sh}"));
    }
    if let Some(p) = l.pids_max {
        parts.push(format!("pids {p}"));
    }
    if parts.is_empty() {
        "no limits".into()
    } else {
        parts.join(", ")
    }
}

/// `kubectl top pod` as a table: CPU in millicores, memory in Mi; with
/// `containers` one row per container under its pod.
pub fn top_table(usage: &[api::PodUsage], containers: bool, cols: Columns) -> String {
    let mut rows = Vec::new();
    let mut header = if containers {
        vec!["POD", "NAME", "CPU(cores)", "MEMORY(bytes)"]
    } else {
        vec!["NAME", "CPU(cores)", "MEMORY(bytes)"]
    };
    if cols.namespace {
        header.insert(0, "NAMESPACE");
    }
    if !cols.no_headers {
        rows.push(header.iter().map(|h| h.to_string()).collect::<Vec<_>>());
    }
    let mi = |b: u64| format!("{}Mi", b >> 20);
    for p in usage {
        let mut lines: Vec<Vec<String>> = if containers {
            p.containers
                .iter()
                .map(|c| {
                    vec![
                        p.key.name.clone(),
                        c.name.clone(),
                        format!("{}m", c.cpu_millis),
                        mi(c.memory_bytes),
                    ]
                })
                .collect()
        } else {
            vec![vec![
                p.key.name.clone(),
                format!("{}m", p.cpu_millis),
                mi(p.memory_bytes),
            ]]
        };
        for l in &mut lines {
            if cols.namespace {
                l.insert(0, p.key.namespace.clone());
            }
        }
        rows.extend(lines);
    }
    align(&rows)
}

/// The Kubernetes API version podlab's objects follow: the k8s-openapi
/// feature runtime/Cargo.toml picks (a unit test keeps the two equal).
const KUBERNETES_API: &str = "1.35";

/// `podlab version`, shaped like kubectl's.
pub fn version_text() -> String {
    format!(
        "Client Version: v{}\nKubernetes API: v{KUBERNETES_API}\n",
        env!("CARGO_PKG_VERSION"),
    )
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
    fn describe_shows_host_namespaces_ports_aliases_and_dns() {
        let spec: k8s_openapi::api::core::v1::PodSpec = serde_json::from_value(serde_json::json!({
            "hostPID": true, "hostIPC": true, "dnsPolicy": "None",
            "dnsConfig": {"nameservers": ["192.0.2.1"], "searches": ["a.example"],
                          "options": [{"name": "ndots", "value": "2"}]},
            "hostAliases": [{"ip": "10.0.0.9", "hostnames": ["x", "y"]}],
            "containers": [{"name": "a", "ports": [{"containerPort": 80, "hostPort": 8080}]}],
        }))
        .unwrap();
        let mut s = String::new();
        describe_host_and_dns(&mut s, &spec);
        assert!(s.contains("Host Namespaces: pid, ipc\n"), "{s}");
        assert!(s.contains("Host Ports:   8080->80/TCP\n"), "{s}");
        assert!(s.contains("Host Alias:   10.0.0.9 x y\n"), "{s}");
        assert!(
            s.contains("DNS:          None; nameservers [192.0.2.1]; searches [a.example]; options [ndots:2]"),
            "{s}"
        );
        let mut plain = String::new();
        describe_host_and_dns(&mut plain, &Default::default());
        assert!(plain.is_empty(), "{plain}");
    }

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    /// 2020-01-01T00:00:00Z, the creation time of the test pods.
    const CREATED: i64 = 1_577_836_800;

    fn sample() -> Vec<Pod> {
        vec![
            pod(serde_json::json!({
                "metadata": {"name": "web", "namespace": "default", "creationTimestamp": "2020-01-01T00:00:00Z"},
                "spec": {"nodeName": "n1", "containers": [{"name": "a"}, {"name": "b"}]},
                "status": {"phase": "Running", "podIP": "10.89.0.2", "containerStatuses": [
                    {"name": "a", "ready": true, "restartCount": 1, "image": "x", "imageID": "",
                     "state": {"running": {}}},
                    {"name": "b", "ready": false, "restartCount": 2, "image": "x", "imageID": "",
                     "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
                ]}
            })),
            pod(serde_json::json!({
                "metadata": {"name": "gated", "namespace": "lab", "creationTimestamp": "2020-01-01T00:00:00Z"},
                "spec": {"containers": [{"name": "a"}],
                    "readinessGates": [{"conditionType": "example.com/one"}, {"conditionType": "example.com/two"}]},
                "status": {"phase": "Pending", "nominatedNodeName": "n2", "conditions": [
                    {"type": "example.com/one", "status": "True"}]}
            })),
        ]
    }

    #[test]
    fn tables_have_kubectls_columns() {
        let now = CREATED + 5 * 60 + 3;
        let plain = table(&sample(), Columns::default(), now);
        insta::assert_snapshot!("table_plain", plain);
        let wide = Columns {
            namespace: true,
            wide: true,
            ..Columns::default()
        };
        insta::assert_snapshot!("table_wide_all_namespaces", table(&sample(), wide, now));
        let bare = Columns {
            no_headers: true,
            ..Columns::default()
        };
        // Widths come from the rows alone, as kubectl pads them.
        insta::assert_snapshot!("table_no_headers", table(&sample(), bare, now));
    }

    #[test]
    fn get_renders_names_jsonpath_and_lists() {
        let pods = sample();
        let now = CREATED + 60;
        let render = |o: &str, single: bool| {
            let out = Output::parse(Some(o), Columns::default()).unwrap();
            render_pods(if single { &pods[..1] } else { &pods }, single, &out, now).unwrap()
        };
        assert_eq!(render("name", false), "pod/web\npod/gated\n");
        assert_eq!(
            render("jsonpath={.items[*].metadata.name}", false),
            "web gated"
        );
        assert_eq!(render("jsonpath={.metadata.name}", true), "web");
        assert_eq!(render("jsonpath={.kind}", false), "List");
        let list: serde_json::Value = serde_json::from_str(&render("json", false)).unwrap();
        assert_eq!(list["items"].as_array().unwrap().len(), 2);
        let one: serde_json::Value = serde_json::from_str(&render("json", true)).unwrap();
        assert_eq!(one["metadata"]["name"], "web");
        for bad in ["table", "jsonpath={.x"] {
            let e = Output::parse(Some(bad), Columns::default())
                .err()
                .unwrap()
                .to_string();
            assert!(e.contains("-o/--output") || e.contains("jsonpath"), "{e}");
        }
    }

    #[test]
    fn top_prints_like_kubectl_top() {
        let usage = vec![
            api::PodUsage {
                key: PodKey::new("default", "web"),
                cpu_millis: 251,
                memory_bytes: 70 << 20,
                containers: vec![
                    api::ContainerUsage {
                        name: "app".into(),
                        cpu_millis: 250,
                        memory_bytes: (64 << 20) + 5,
                    },
                    api::ContainerUsage {
                        name: "sidecar".into(),
                        cpu_millis: 0,
                        memory_bytes: 1 << 20,
                    },
                ],
            },
            api::PodUsage {
                key: PodKey::new("lab", "db"),
                cpu_millis: 3,
                memory_bytes: 512 << 10,
                containers: vec![],
            },
        ];
        insta::assert_snapshot!("top_pods", top_table(&usage, false, Columns::default()));
        let all = Columns {
            namespace: true,
            ..Columns::default()
        };
        insta::assert_snapshot!(
            "top_containers_all_namespaces",
            top_table(&usage, true, all)
        );
    }

    #[test]
    fn mermaid_draws_processes_namespaces_cgroups_and_links() {
        use api::NsHow::{Holds, Host, Joins, Own};
        let ns = |kind: &str, id: u64, how: api::NsHow| {
            (kind.to_string(), format!("{kind}:[{id}]"), how)
        };
        let picture = api::PodPicture {
            key: PodKey::new("default", "web"),
            uid: "u-1".into(),
            pod_ip: Some("10.89.0.5".into()),
            pause: Some(api::ProcessPicture {
                pid: 100,
                namespaces: vec![
                    ns("net", 1, Holds),
                    ns("uts", 2, Holds),
                    ns("ipc", 3, Holds),
                    ns("mnt", 8, Host),
                ],
            }),
            pod_cgroup: Some("podlab/pod-u-1".into()),
            containers: vec![
                api::ContainerPicture {
                    name: "app".into(),
                    process: Some(api::ProcessPicture {
                        pid: 200,
                        namespaces: vec![
                            ns("net", 1, Joins),
                            ns("uts", 2, Joins),
                            ns("mnt", 9, Own),
                        ],
                    }),
                    cgroup: "podlab/pod-u-1/ctr-app".into(),
                    limits: api::Limits {
                        memory_bytes: Some(64 << 20),
                        cpu_quota_us: Some(25_000),
                        cpu_period_us: Some(100_000),
                        cpu_shares: Some(256),
                        pids_max: Some(1024),
                    },
                },
                api::ContainerPicture {
                    name: "done".into(),
                    process: None,
                    cgroup: "podlab/pod-u-1/ctr-done".into(),
                    limits: Default::default(),
                },
            ],
            ifname: "eth0".into(),
            links: api::HostLinks {
                bridge: Some("podlab0".into()),
                veth: Some("veth12ab".into()),
            },
        };
        insta::assert_snapshot!("mermaid_pod", mermaid(&picture));
    }

    /// A running pod with a probe, limits, a resolved user and command,
    /// its sandbox's namespaces (one process gone) and an event.
    fn described() -> api::PodDescription {
        let mut pod = pod(serde_json::json!({
            "metadata": {"name": "web", "namespace": "lab", "uid": "u-1",
                         "labels": {"app": "web"}},
            "spec": {"nodeName": "podlab", "hostIPC": true, "containers": [{
                "name": "app", "image": "probe:latest",
                "readinessProbe": {"httpGet": {"port": 8080, "path": "/ready"}},
                "volumeMounts": [{"name": "data", "mountPath": "/data", "readOnly": true}],
                "resources": {"limits": {"memory": "64Mi"}}
            }]},
            "status": {"phase": "Running", "hostIP": "10.0.0.1", "podIP": "10.89.0.5",
                "startTime": "2020-01-01T00:00:00Z",
                "conditions": [{"type": "Ready", "status": "True"}],
                "containerStatuses": [{"name": "app", "ready": true, "restartCount": 1,
                    "image": "probe:latest", "imageID": "sha256:abc",
                    "state": {"running": {"startedAt": "2020-01-01T00:00:01Z"}}}]}
        }));
        let status = pod.status.take().unwrap();
        let ns = |kinds: &[&str], id: u64| -> Vec<(String, Option<String>)> {
            kinds
                .iter()
                .map(|k| (k.to_string(), Some(format!("{k}:[{id}]"))))
                .collect()
        };
        let mut gone = ns(&["net", "uts", "ipc"], 7);
        gone.push(("pid".into(), None));
        api::PodDescription {
            pod,
            status,
            sandbox: api::SandboxFacts {
                shim_pid: Some(10),
                pause: Some(api::ProcessFacts {
                    pid: 11,
                    namespaces: gone,
                }),
                netns: Some("/run/netns/podlab-u-1".into()),
                shm_dir: "/run/podlab/pods/lab/web/shm".into(),
                pod_cgroup: Some(("podlab/pod-u-1".into(), "V2".into())),
            },
            containers: [(
                "app".to_string(),
                api::ContainerFacts {
                    args: vec!["/probe".into(), "serve".into()],
                    cwd: "/".into(),
                    env: vec!["PATH=/bin".into()],
                    uid: Some(1000),
                    gid: None,
                    groups: vec![2000, 3000],
                    process: Some(api::ProcessFacts {
                        pid: 12,
                        namespaces: ns(&["mnt", "pid", "net", "uts", "ipc"], 9),
                    }),
                    limits: api::Limits {
                        memory_bytes: Some(64 << 20),
                        ..Default::default()
                    },
                    cgroup_paths: vec![("unified".into(), "/sys/fs/cgroup/podlab/x".into())],
                },
            )]
            .into(),
            events: vec![api::Event {
                time: "2020-01-01T00:00:01Z".into(),
                type_: "Normal".into(),
                reason: "Started".into(),
                from: "podlab-shim".into(),
                message: "Started container app".into(),
                rv: 0,
            }],
        }
    }

    #[test]
    fn describe_lays_out_the_pod_its_sandbox_and_containers() {
        insta::assert_snapshot!("describe_pod", describe_text(&described()));
        let mut bare = described();
        bare.sandbox = api::SandboxFacts {
            shim_pid: None,
            pause: None,
            netns: None,
            shm_dir: "/shm".into(),
            pod_cgroup: None,
        };
        bare.containers.clear();
        bare.events.clear();
        let text = describe_text(&bare);
        assert!(text.contains("Sandbox:\n  /dev/shm:   /shm\n"), "{text}");
        assert!(text.contains("Events:\n  <none>\n"), "{text}");
        assert!(!text.contains("Command:"), "{text}");
    }

    #[test]
    fn images_list_with_short_digests() {
        let images = [
            api::ImageInfo {
                reference: "docker.io/library/busybox:latest".into(),
                digest: format!("sha256:{}", "ab".repeat(32)),
                size: 2 << 20,
                created: None,
            },
            api::ImageInfo {
                reference: "probe:latest".into(),
                digest: "sha256:0123".into(),
                size: 100,
                created: None,
            },
        ];
        insta::assert_snapshot!("images_table", images_table(&images));
    }

    #[test]
    fn events_list_as_a_table_or_json() {
        let event = |reason: &str| api::Event {
            time: "2020-01-01T00:00:00Z".into(),
            type_: "Normal".into(),
            reason: reason.into(),
            from: "podlab-shim".into(),
            message: format!("{reason} the pod"),
            rv: 0,
        };
        let rows = vec![
            (
                PodKey::new("default", "web"),
                "u-1".to_string(),
                event("Scheduled"),
            ),
            (
                PodKey::new("lab", "db"),
                "u-2".to_string(),
                event("Started"),
            ),
        ];
        let now = CREATED + 90;
        insta::assert_snapshot!(
            "events_all_namespaces",
            events_text(&rows, true, None, now).unwrap().unwrap()
        );
        assert_eq!(events_text(&[], false, None, now).unwrap(), None);
        let json = events_text(&rows, false, Some("json"), now)
            .unwrap()
            .unwrap();
        let list: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(list["items"][1]["metadata"]["name"], "db.1");
        assert_eq!(list["items"][1]["involvedObject"]["uid"], "u-2");
        let empty = events_text(&[], false, Some("json"), now).unwrap().unwrap();
        assert!(empty.contains("\"items\": []"), "{empty}");
        assert!(events_text(&rows, false, Some("yaml"), now).is_err());
    }

    #[test]
    fn logs_and_pull_progress_print_like_before() {
        let line = |time: &str, text: &str| api::LogLine {
            time: time.into(),
            stream: "stdout".into(),
            text: text.as_bytes().to_vec(),
        };
        let lines = [line("t1", "one"), line("t2", "two")];
        assert_eq!(api::log_text(&lines, false), b"one\ntwo\n");
        assert_eq!(api::log_text(&lines, true), b"t1 one\nt2 two\n");
        let start = std::time::Instant::now();
        let mut bar = PullBar::new("probe:latest");
        let resolved = api::PullProgress::Resolved {
            layers: 3,
            missing: 2,
            bytes: 4096,
        };
        let first = bar.update(&resolved, start).unwrap();
        assert_eq!(
            first,
            "\r\x1b[Kprobe:latest: layers 1/3 (1 already present), 0B / 4.0KiB"
        );
        // Redrawn at most ten times a second, but at each finished layer.
        assert_eq!(bar.update(&api::PullProgress::Bytes(2048), start), None);
        let done = bar.update(&api::PullProgress::LayerDone, start).unwrap();
        assert!(
            done.ends_with("layers 2/3 (1 already present), 2.0KiB / 4.0KiB"),
            "{done}"
        );
        let later = start + std::time::Duration::from_millis(150);
        assert!(bar.update(&api::PullProgress::Bytes(1), later).is_some());
    }

    #[test]
    fn version_names_both_versions() {
        let v = version_text();
        assert!(
            v.starts_with(&format!("Client Version: v{}\n", env!("CARGO_PKG_VERSION"))),
            "{v}"
        );
        let feature = format!("\"v{}\"", KUBERNETES_API.replace('.', "_"));
        assert!(
            include_str!("../Cargo.toml").contains(&feature),
            "runtime/Cargo.toml picks another API version than {KUBERNETES_API}"
        );
        assert!(
            v.ends_with(&format!("Kubernetes API: v{KUBERNETES_API}\n")),
            "{v}"
        );
    }

    #[test]
    fn ages_follow_kubectls_rules() {
        let cases = [
            (-5, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (119, "119s"),
            (120, "2m"),
            (5 * 60 + 3, "5m3s"),
            (10 * 60 + 3, "10m"),
            (150 * 60, "150m"),
            (3 * 3600 - 1, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 20 * 60 + 59, "3h20m"),
            (8 * 3600 + 60, "8h"),
            (47 * 3600, "47h"),
            (48 * 3600, "2d"),
            (5 * 86400 + 4 * 3600, "5d4h"),
            (8 * 86400 + 3600, "8d"),
            (729 * 86400, "729d"),
            (2 * 365 * 86400 + 45 * 86400, "2y45d"),
            (9 * 365 * 86400, "9y"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_duration(secs), want, "{secs}s");
        }
        let t = Time(k8s_openapi::jiff::Timestamp::from_second(CREATED).unwrap());
        assert_eq!(age(Some(&t), CREATED + 90), "90s");
        assert_eq!(age(None, CREATED), "<unknown>");
        assert_eq!(human_size(2048), "2.0KiB");
    }
}
