//! The graders: each check looks at something only the student's own
//! action produces (a watch they recorded, a namespace link they read on
//! the node, a token their client sent), compared with what the grader
//! knows from the lab's podlab root and the student file.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::student::Student;

/// One check: what it claims, what it looked at, and why it failed.
pub struct Check {
    pub name: String,
    pub looked_at: String,
    pub ok: bool,
    pub why: String,
}

#[derive(Default)]
pub struct Grade {
    pub checks: Vec<Check>,
}

impl Grade {
    fn check(
        &mut self,
        name: &str,
        looked_at: impl Into<String>,
        result: Result<(), String>,
    ) -> bool {
        let ok = result.is_ok();
        self.checks.push(Check {
            name: name.into(),
            looked_at: looked_at.into(),
            ok,
            why: result.err().unwrap_or_default(),
        });
        ok
    }
    pub fn passed(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.ok)
    }
    pub fn score(&self) -> (usize, usize) {
        (
            self.checks.iter().filter(|c| c.ok).count(),
            self.checks.len(),
        )
    }
    /// Every failure reason, for the near-miss tests.
    pub fn failures(&self) -> String {
        self.checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| format!("{}: {}", c.name, c.why))
            .collect::<Vec<_>>()
            .join("\n")
    }
    pub fn print(&self, n: u32) {
        println!("lab {n}:");
        for c in &self.checks {
            println!("  {} {}", if c.ok { "✓" } else { "✗" }, c.name);
            println!("      looked at: {}", c.looked_at);
            if !c.ok {
                println!("      why not:   {}", c.why);
            }
        }
        let (ok, all) = self.score();
        println!(
            "score: {ok}/{all}{}",
            if self.passed() { " — done" } else { "" }
        );
    }
    pub fn json(&self, n: u32) -> Value {
        let (ok, all) = self.score();
        json!({
            "lab": n,
            "passed": self.passed(),
            "score": ok,
            "max_score": all,
            "checks": self.checks.iter().map(|c| json!({
                "name": c.name, "ok": c.ok, "looked_at": c.looked_at, "why": c.why,
            })).collect::<Vec<_>>(),
        })
    }
}

/// The lab's podlab, at the student's root.
struct Lab<'a> {
    s: &'a Student,
}

impl Lab<'_> {
    fn run(&self, args: &[&str]) -> Option<std::process::Output> {
        let (sub, rest) = args.split_first()?;
        Command::new("podlab")
            .arg(sub)
            .arg("--root")
            .arg(&self.s.root)
            .arg("--data-root")
            .arg(&self.s.data_root)
            .args(rest)
            .output()
            .ok()
    }
    fn stdout(&self, args: &[&str]) -> Option<String> {
        self.run(args)
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
    }
    fn pod(&self, name: &str) -> Option<Value> {
        self.stdout(&["get", "pod", name, "-o", "json"])
            .and_then(|s| serde_json::from_str(&s).ok())
    }
    fn events(&self, name: &str) -> Vec<Value> {
        self.stdout(&["get", "events", "-o", "json"])
            .and_then(|s| serde_json::from_str::<Value>(&s).ok())
            .and_then(|v| v["items"].as_array().cloned())
            .unwrap_or_default()
            .into_iter()
            .filter(|e| e["involvedObject"]["name"] == name)
            .collect()
    }
    fn exec(&self, pod: &str, c: &str, cmd: &[&str]) -> Option<String> {
        let mut args = vec!["exec", pod, "-c", c, "--"];
        args.extend_from_slice(cmd);
        self.stdout(&args)
    }
    fn probe(&self, pod: &str, c: &str, cmd: &[&str]) -> Value {
        let mut full = vec!["probe"];
        full.extend_from_slice(cmd);
        self.exec(pod, c, &full)
            .and_then(|s| s.lines().next().and_then(|l| serde_json::from_str(l).ok()))
            .unwrap_or(Value::Null)
    }
    /// runtime.json of a pod: the PIDs and cgroups the shim holds.
    fn runtime(&self, name: &str) -> Value {
        std::fs::read(
            self.s
                .root
                .join("pods/default")
                .join(name)
                .join("runtime.json"),
        )
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null)
    }
    fn logs(&self, pod: &str, c: &str) -> Vec<Value> {
        self.stdout(&["logs", pod, "-c", c])
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
    fn running(&self, g: &mut Grade, name: &str) -> bool {
        let phase = self.pod(name).map(|p| p["status"]["phase"].clone());
        g.check(
            &format!("pod {name} is Running"),
            format!(
                "`podlab get pod {name} -o json` in {}",
                self.s.root.display()
            ),
            match phase {
                Some(p) if p == "Running" => Ok(()),
                Some(p) => Err(format!("its phase is {p}")),
                None => Err("no such pod in the lab's root".into()),
            },
        )
    }
}

fn ns_link(pid: i64, kind: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .map(|l| l.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn file(s: &Student, name: &str) -> (String, String) {
    let path = s.files.join(name);
    (
        path.display().to_string(),
        std::fs::read_to_string(&path).unwrap_or_default(),
    )
}

/// JSON objects one after another (podlab's `-o json` watch is one per
/// line; kubectl's are pretty-printed back to back).
fn json_stream(text: &str) -> Vec<Value> {
    serde_json::Deserializer::from_str(text)
        .into_iter::<Value>()
        .map_while(Result::ok)
        .collect()
}

fn time(v: &Value) -> Option<k8s_openapi::jiff::Timestamp> {
    v.as_str().and_then(|t| t.parse().ok())
}

fn condition<'a>(pod: &'a Value, kind: &str) -> Option<&'a Value> {
    pod["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

/// Polls for time-dependent facts (restarts), with a deadline.
fn within(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

pub fn grade(s: &Student) -> Grade {
    let mut g = Grade::default();
    let lab = Lab { s };
    let pod = s.var("LAB_POD").to_string();
    let token = s.var("LAB_TOKEN").to_string();
    match s.lab {
        1 => lab1(&mut g, &lab, &pod, &token),
        2 => lab2(&mut g, &lab, &pod),
        3 => lab3(&mut g, &lab, &pod, &token),
        4 => lab4(&mut g, &lab, &pod, &token),
        5 => lab5(&mut g, &lab, &pod),
        6 => lab6(&mut g, &lab, &pod),
        7 => lab7(&mut g, &lab, &pod, &token),
        8 => lab8(&mut g, &lab, &pod),
        9 => lab9(&mut g, &lab, &pod, &token),
        10 => lab10(&mut g, &lab, &pod),
        11 => lab11(&mut g, s),
        _ => {}
    }
    g
}

/// The phases a watch file recorded for the pod with this uid.
fn watched(lab: &Lab, path_name: &str, uid: &str) -> (String, Vec<Value>, usize) {
    let (path, text) = file(lab.s, path_name);
    let all = json_stream(&text);
    let n = all.len();
    let mine = all
        .into_iter()
        .filter(|o| o["metadata"]["uid"] == uid)
        .collect();
    (path, mine, n)
}

fn lab1(g: &mut Grade, lab: &Lab, pod: &str, token: &str) {
    if !lab.running(g, pod) {
        return;
    }
    let p = lab.pod(pod).unwrap_or(Value::Null);
    let uid = p["metadata"]["uid"].as_str().unwrap_or("").to_string();
    let (path, seen, total) = watched(lab, "watch.json", &uid);
    let phases: Vec<String> = seen
        .iter()
        .filter_map(|o| o["status"]["phase"].as_str().map(String::from))
        .collect();
    g.check(
        "your watch saw the pod Pending, then Running",
        format!("{path} (the output of your `get -w -o json`), pod uid {uid}"),
        if total > 0 && seen.is_empty() {
            Err(format!("the {total} objects there are of another pod, not the {pod} that runs now (uid {uid})"))
        } else if !phases.iter().any(|p| p == "Pending") {
            Err(format!("no Pending in what you recorded ({phases:?}): start the watch before the pod runs"))
        } else if phases.iter().skip_while(|p| *p == "Pending").any(|p| p != "Running")
            || phases.last().map(String::as_str) != Some("Running")
        {
            Err(format!("the phases you recorded are {phases:?}, not Pending then Running"))
        } else {
            Ok(())
        },
    );
    let events = lab.events(pod);
    let at = |reason: &str| {
        events
            .iter()
            .find(|e| e["reason"] == reason)
            .and_then(|e| time(&e["lastTimestamp"]).or_else(|| time(&e["firstTimestamp"])))
    };
    let scheduled = condition(&p, "PodScheduled").and_then(|c| time(&c["lastTransitionTime"]));
    let ready = condition(&p, "Ready").and_then(|c| time(&c["lastTransitionTime"]));
    g.check(
        "the pod's history goes Scheduled → Started → Ready",
        "`podlab get events` of the pod, and its conditions' lastTransitionTime",
        match (at("Scheduled"), at("Started"), scheduled, ready) {
            (Some(a), Some(b), Some(c), Some(d)) if a <= b && c <= d => Ok(()),
            other => Err(format!(
                "the history is not in order or incomplete: {other:?}"
            )),
        },
    );
    let visit = lab
        .exec(pod, "web", &["cat", "/tmp/visit"])
        .unwrap_or_default();
    g.check(
        "/tmp/visit in the container holds your token",
        format!("`cat /tmp/visit` in {pod}/web"),
        if visit.contains(token) {
            Ok(())
        } else {
            Err(format!("it holds {:?}, not $LAB_TOKEN", visit.trim()))
        },
    );
}

/// The `role pid link link...` lines of lab 2's ns.txt.
fn ns_records(text: &str) -> Vec<(String, i64, Vec<String>)> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let role = w.next()?.to_string();
            let pid = w.next()?.parse().ok()?;
            Some((role, pid, w.map(String::from).collect()))
        })
        .collect()
}

fn lab2(g: &mut Grade, lab: &Lab, pod: &str) {
    if !lab.running(g, pod) {
        return;
    }
    let rt = lab.runtime(pod);
    let known = |role: &str| -> i64 {
        if role == "pause" {
            rt["pause"]["pid"].as_i64().unwrap_or(0)
        } else {
            rt["containers"][role]["pid"]["pid"].as_i64().unwrap_or(0)
        }
    };
    let (path, text) = file(lab.s, "ns.txt");
    let records = ns_records(&text);
    for role in ["pause", "first", "second"] {
        let want = known(role);
        let rec = records.iter().find(|(r, _, _)| r == role);
        let result = match rec {
            None => Err(format!(
                "no line `{role} PID net:[…] uts:[…] ipc:[…] mnt:[…] pid:[…]`"
            )),
            Some((_, pid, _)) if *pid != want => Err(format!(
                "you recorded PID {pid}; the {role} process of {pod} is PID {want}{}",
                if role == "pause" && rt["shim"]["pid"].as_i64() == Some(*pid) {
                    " (yours is the shim, which holds no namespace)"
                } else {
                    ""
                }
            )),
            Some((_, _, links)) => {
                let mut bad = Vec::new();
                for kind in ["net", "uts", "ipc", "mnt", "pid"] {
                    let truth = ns_link(want, kind);
                    match links.iter().find(|l| l.starts_with(&format!("{kind}:"))) {
                        None => bad.push(format!("no {kind}: link")),
                        Some(l) if *l != truth => bad.push(format!(
                            "{l} is not the {role}'s {kind} namespace ({truth})"
                        )),
                        Some(_) => {}
                    }
                }
                if bad.is_empty() {
                    Ok(())
                } else {
                    Err(bad.join("; "))
                }
            }
        };
        g.check(
            &format!("you recorded the namespaces of the {role} process from the node"),
            format!("{path}, and /proc/{want}/ns/* (the {role} PID podlab knows)"),
            result,
        );
    }
}

fn lab3(g: &mut Grade, lab: &Lab, pod: &str, token: &str) {
    let other = lab.s.var("LAB_OTHER").to_string();
    if !(lab.running(g, pod) & lab.running(g, &other)) {
        return;
    }
    let answers = lab.s.answers();
    let logs = lab.logs(pod, "app");
    let listening = logs.iter().find_map(|l| l["port"].as_u64());
    let port = answers.get("port").and_then(|p| p.parse::<u64>().ok());
    g.check(
        "the app listens on the port you chose",
        format!("the app's log (`podlab logs {pod} -c app`) and port= in $LAB_FILES/answers"),
        match (listening, port) {
            (None, _) => {
                Err("the app logged no listening port: did you replace CHOOSE-A-PORT?".into())
            }
            (_, None) => Err("no port=N in $LAB_FILES/answers".into()),
            (Some(l), Some(p)) if l != p => {
                Err(format!("the app listens on {l}, you answered {p}"))
            }
            _ => Ok(()),
        },
    );
    let served = logs.iter().find(|l| l.get("served").is_some());
    g.check(
        "your client in the sidecar reached the app over 127.0.0.1 and sent your token",
        "the app's `served` line: who connected and what they sent",
        match served {
            None => Err("the app served no connection yet".into()),
            Some(s) if !s["received"].to_string().contains(token) => Err(format!(
                "the app received {} — not $LAB_TOKEN (send it with --send)",
                s["received"]
            )),
            Some(s)
                if !s["peers"][0]
                    .as_str()
                    .unwrap_or("")
                    .starts_with("127.0.0.1:") =>
            {
                Err(format!(
                    "the connection came from {}, not from localhost",
                    s["peers"][0]
                ))
            }
            Some(_) => Ok(()),
        },
    );
    let want = [("same_pod", "EADDRINUSE"), ("other_pod", "ok")];
    g.check(
        "the port-conflict experiment: what bind said in the sidecar and in the other pod",
        "same_pod= and other_pod= in $LAB_FILES/answers",
        want.iter()
            .map(|(k, v)| match answers.get(*k) {
                Some(a) if a.eq_ignore_ascii_case(v) => Ok(()),
                Some(a) => Err(format!("{k}={a}: that is not what bind says there")),
                None => Err(format!("no {k}= answer")),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|_| ()),
    );
}

/// `/proc/sysvipc/shm` seen from a container: (key, cpid, lpid) in its PID namespace.
fn shm_table(lab: &Lab, pod: &str, c: &str) -> Vec<(i64, i64, i64)> {
    lab.exec(pod, c, &["cat", "/proc/sysvipc/shm"])
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            Some((
                w.first()?.parse().ok()?,
                w.get(4)?.parse().ok()?,
                w.get(5)?.parse().ok()?,
            ))
        })
        .collect()
}

fn lab4(g: &mut Grade, lab: &Lab, pod: &str, token: &str) {
    if !lab.running(g, pod) {
        return;
    }
    let hostname = lab.s.var("LAB_HOSTNAME");
    let hosts: Vec<String> = ["writer", "reader"]
        .iter()
        .map(|c| {
            lab.exec(pod, c, &["hostname"])
                .unwrap_or_default()
                .trim()
                .to_string()
        })
        .collect();
    g.check(
        "both containers have your hostname",
        "`hostname` in writer and reader",
        if hosts.iter().all(|h| h == hostname) {
            Ok(())
        } else {
            Err(format!("they say {hosts:?}, not {hostname}"))
        },
    );
    let key = i64::from_str_radix(lab.s.var("LAB_KEY").trim_start_matches("0x"), 16).unwrap_or(0);
    // Each container has its own PID namespace: a creator PID is non-zero
    // only from the container whose processes made the segment. Read
    // before the grader's own attach, which would count as the reader's.
    let (w, r) = (shm_table(lab, pod, "writer"), shm_table(lab, pod, "reader"));
    let seg = lab.probe(pod, "reader", &["shm-read", "--key", lab.s.var("LAB_KEY")]);
    let find = |t: &[(i64, i64, i64)]| t.iter().find(|e| e.0 == key).copied();
    g.check(
        "the writer created the segment $LAB_KEY with your token, the reader attached it",
        "probe shm-read in reader, and /proc/sysvipc/shm (creator and last PIDs) from each container",
        match (find(&w), find(&r)) {
            (None, _) => Err(format!("there is no SysV segment with key {}", lab.s.var("LAB_KEY"))),
            _ if seg["data"].as_str() != Some(token) => Err(format!("the segment holds {}, not $LAB_TOKEN", seg["data"])),
            (Some((_, 0, _)), _) => Err("the segment was created outside the writer (its creator is not a writer process): create it in writer".into()),
            (_, Some((_, _, 0))) => Err("the reader never attached it".into()),
            _ => Ok(()),
        },
    );
    let note = lab.probe(pod, "reader", &["read-file", "/dev/shm/note"]);
    g.check(
        "the reader sees your token in /dev/shm/note",
        "probe read-file /dev/shm/note in reader",
        if note["data"].as_str() == Some(token) {
            Ok(())
        } else {
            Err(format!("it reads {}", note))
        },
    );
}

/// The kernel's OOM-kill count of a container's memory cgroup.
fn oom_kills(rt: &Value, container: &str) -> Option<u64> {
    let paths = rt["containers"][container]["cgroup_paths"].as_array()?;
    paths.iter().find_map(|entry| {
        let path = Path::new(entry[1].as_str()?);
        let file = match entry[0].as_str()? {
            "memory" => path.join("memory.oom_control"),
            "unified" => path.join("memory.events"),
            _ => return None,
        };
        let text = std::fs::read_to_string(file).ok()?;
        Some(
            text.lines()
                .find_map(|l| {
                    l.strip_prefix("oom_kill ")
                        .and_then(|n| n.trim().parse().ok())
                })
                .unwrap_or(0),
        )
    })
}

fn lab5(g: &mut Grade, lab: &Lab, pod: &str) {
    if !lab.running(g, pod) {
        return;
    }
    let mi: i64 = lab.s.var("LAB_SMALL_MI").parse().unwrap_or(0);
    let small = lab.probe(pod, "small", &["cgroup"]);
    g.check(
        "small's memory limit is the one your lab asks for",
        "probe cgroup in small",
        if small["memory_limit_bytes"].as_i64() == Some(mi << 20) {
            Ok(())
        } else {
            Err(format!(
                "it is {} bytes, your lab asks for {mi}Mi",
                small["memory_limit_bytes"]
            ))
        },
    );
    let rt = lab.runtime(pod);
    let root = lab.s.root.display();
    let (small_kills, large_kills) = (oom_kills(&rt, "small"), oom_kills(&rt, "large"));
    g.check(
        "the OOM killer acted in small's cgroup, never in large's",
        format!("the memory cgroups named in {root}/pods/default/{pod}/runtime.json"),
        match (small_kills, large_kills) {
            (None, _) | (_, None) => Err("their memory cgroups cannot be read".into()),
            (Some(0), _) => Err("no OOM kill in small: allocate more than its limit there".into()),
            (_, Some(n)) if n > 0 => Err(format!("large was OOM-killed {n} times")),
            _ => Ok(()),
        },
    );
    let answered = lab
        .s
        .answers()
        .get("small_cgroup")
        .cloned()
        .unwrap_or_default();
    let truth = rt["containers"]["small"]["cgroup"]
        .as_str()
        .unwrap_or("")
        .to_string();
    g.check(
        "you found small's cgroup on the node",
        "small_cgroup= in $LAB_FILES/answers, and the cgroup podlab made",
        if !truth.is_empty()
            && answered
                .trim_matches('/')
                .ends_with(truth.trim_matches('/'))
        {
            Ok(())
        } else {
            Err(format!(
                "you answered {answered:?}; small's cgroup is {truth:?}"
            ))
        },
    );
}

fn lab6(g: &mut Grade, lab: &Lab, pod: &str) {
    let once = lab.s.var("LAB_ONCE").to_string();
    if !g.check(
        "both pods exist",
        format!("pods {pod} and {once}"),
        if lab.pod(pod).is_some() && lab.pod(&once).is_some() {
            Ok(())
        } else {
            Err("apply $LAB_FILES/pods.yaml".into())
        },
    ) {
        return;
    }
    // What the kubelet did: each BackOff is followed by the next start.
    let events = lab.events(pod);
    let mut measured = Vec::new();
    let mut backoff_at = None;
    for e in &events {
        let at = time(&e["lastTimestamp"]).or_else(|| time(&e["firstTimestamp"]));
        match e["reason"].as_str() {
            Some("BackOff") => backoff_at = at,
            Some("Started") => {
                if let (Some(b), Some(s)) = (backoff_at.take(), at) {
                    measured.push((s.as_millisecond() - b.as_millisecond()) as f64 / 1000.0);
                }
            }
            _ => {}
        }
    }
    let answers = lab.s.answers();
    let reported: Vec<f64> = answers
        .get("delays")
        .map(|d| {
            d.split([',', ' '])
                .filter(|x| !x.is_empty())
                .filter_map(|x| x.trim_end_matches('s').parse().ok())
                .collect()
        })
        .unwrap_or_default();
    g.check(
        "the back-off delays you observed are the ones the events show, and they grow",
        "delays= in $LAB_FILES/answers, and the gaps from each BackOff event to the next Started",
        if reported.len() < 2 {
            Err(format!(
                "report at least two delays (delays=…); you reported {reported:?}"
            ))
        } else if reported.windows(2).any(|w| w[1] <= w[0]) {
            Err(format!("the delays you reported {reported:?} do not grow"))
        } else if let Some((i, (r, m))) = reported
            .iter()
            .zip(measured.iter().chain(std::iter::repeat(&-1.0)))
            .enumerate()
            .find(|(_, (r, m))| (**r - **m).abs() > 1.2 + 0.2 * **r)
        {
            Err(format!(
                "delay {} you reported ({r}s) is not what the events show ({})",
                i + 1,
                if *m < 0.0 {
                    "no such restart yet".into()
                } else {
                    format!("{m:.1}s")
                }
            ))
        } else {
            Ok(())
        },
    );
    let reason = answers.get("reason").cloned().unwrap_or_default();
    g.check(
        "you named the state the kubelet reports between restarts",
        "reason= in $LAB_FILES/answers, and the BackOff events",
        if reason == "CrashLoopBackOff" && events.iter().any(|e| e["reason"] == "BackOff") {
            Ok(())
        } else {
            Err(format!(
                "reason={reason:?} is not the waiting reason between restarts"
            ))
        },
    );
    let done = within(Duration::from_secs(10), || {
        lab.pod(&once)
            .is_some_and(|p| p["status"]["phase"] == "Succeeded")
    });
    g.check(
        "the restartPolicy: Never pod ended Succeeded",
        format!("the phase of {once}"),
        if done {
            Ok(())
        } else {
            Err("it is not Succeeded".into())
        },
    );
}

fn lab7(g: &mut Grade, lab: &Lab, pod: &str, token: &str) {
    if !lab.running(g, pod) {
        return;
    }
    let name = "/tmp/mine";
    let first = lab.probe(pod, "first", &["read-file", name]);
    let second = lab.probe(pod, "second", &["read-file", name]);
    g.check(
        "first holds /tmp/mine with your token, second has no /tmp/mine",
        "probe read-file /tmp/mine in both containers",
        if first["data"].as_str() != Some(token) {
            Err(format!("first reads {first}"))
        } else if second["error"] != "ENOENT" {
            Err(format!(
                "second reads {second}: write the file in first only"
            ))
        } else {
            Ok(())
        },
    );
    let rt = lab.runtime(pod);
    let pid = |c: &str| rt["containers"][c]["pid"]["pid"].as_i64().unwrap_or(-1);
    let answered = lab
        .s
        .answers()
        .get("host_path")
        .cloned()
        .unwrap_or_default();
    let on_node = std::fs::read_to_string(&answered).unwrap_or_default();
    let same = |c: &str| {
        std::fs::metadata(&answered)
            .ok()
            .zip(std::fs::metadata(format!("/proc/{}/root{name}", pid(c))).ok())
            .is_some_and(|(a, b)| {
                use std::os::unix::fs::MetadataExt;
                a.ino() == b.ino() && a.dev() == b.dev()
            })
    };
    g.check(
        "you found first's /tmp/mine from the node",
        "host_path= in $LAB_FILES/answers: that file on the node, and first's own",
        if answered.is_empty() {
            Err("no host_path= answer".into())
        } else if !on_node.contains(token) {
            Err(format!("{answered} on the node does not hold your token"))
        } else if !same("first") {
            Err(format!(
                "{answered} is not the /tmp/mine of first (PID {})",
                pid("first")
            ))
        } else {
            Ok(())
        },
    );
}

fn lab8(g: &mut Grade, lab: &Lab, pod: &str) {
    let p = lab.pod(pod);
    let uid = p
        .as_ref()
        .and_then(|p| p["metadata"]["uid"].as_str())
        .unwrap_or("")
        .to_string();
    g.check(
        "the pod was collected after its shim was killed",
        format!("the record of {pod}: phase and reason"),
        match &p {
            None => Err("no record of the pod: deleting it is not the lab".into()),
            Some(p) if p["status"]["reason"] == "ShimLost" && p["status"]["phase"] == "Failed" => {
                Ok(())
            }
            Some(p) => Err(format!(
                "phase {} reason {}: kill its shim, then gc",
                p["status"]["phase"], p["status"]["reason"]
            )),
        },
    );
    let a = lab.s.answers();
    let get = |k: &str| a.get(k).cloned().unwrap_or_default();
    let (netns, cgroup, pause) = (get("netns"), get("cgroup"), get("pause_pid"));
    g.check(
        "what you recorded before the crash is this pod's",
        "netns=, cgroup=, pause_pid= in $LAB_FILES/answers",
        if uid.is_empty() || !netns.contains(&uid) {
            Err(format!("netns={netns:?} is not the pod's (uid {uid})"))
        } else if !cgroup.contains(&uid) {
            Err(format!("cgroup={cgroup:?} is not the pod's"))
        } else if pause.parse::<i64>().unwrap_or(0) <= 1 {
            Err(format!("pause_pid={pause:?}"))
        } else {
            Ok(())
        },
    );
    let netns_left = !netns.is_empty() && Path::new(&netns).exists();
    let cg_left = !cgroup.is_empty()
        && [
            "/",
            "/sys/fs/cgroup",
            "/sys/fs/cgroup/memory",
            "/sys/fs/cgroup/unified",
        ]
        .iter()
        .any(|m| Path::new(m).join(cgroup.trim_start_matches('/')).exists());
    let cmdline = std::fs::read(format!("/proc/{pause}/cmdline")).unwrap_or_default();
    let pause_left = String::from_utf8_lossy(&cmdline).contains("pause");
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let shm_left = !uid.is_empty() && mounts.lines().any(|l| l.contains(&uid));
    g.check(
        "everything it held on the node is released",
        "the netns and cgroup you recorded, the pause PID, /proc/mounts",
        match (netns_left, cg_left, pause_left, shm_left) {
            (true, ..) => Err(format!("{netns} is still there: run gc")),
            (_, true, ..) => Err(format!("cgroup {cgroup} is still there")),
            (_, _, true, _) => Err(format!("the pause {pause} still runs")),
            (.., true) => Err("a mount of the pod is still there".into()),
            _ => Ok(()),
        },
    );
}

fn lab9(g: &mut Grade, lab: &Lab, pod: &str, token: &str) {
    let client = lab.s.var("LAB_CLIENT").to_string();
    if !(lab.running(g, pod) & lab.running(g, &client)) {
        return;
    }
    let ip = |p: &str| {
        lab.pod(p)
            .and_then(|p| p["status"]["podIP"].as_str().map(String::from))
    };
    let (server_ip, client_ip) = (ip(pod), ip(&client));
    let served: Vec<Value> = lab
        .logs(pod, "server")
        .into_iter()
        .filter(|l| l.get("served").is_some())
        .collect();
    let mine: Vec<&Value> = served
        .iter()
        .filter(|s| s["received"].to_string().contains(token))
        .collect();
    let peers: Vec<String> = mine
        .iter()
        .filter_map(|s| s["peers"][0].as_str().map(String::from))
        .collect();
    g.check(
        "your client pod reached the server at its pod IP, port $LAB_PORT, with your token, and the server saw the client's pod IP",
        format!("the server's log: every connection's peer and what it received (server {server_ip:?}, client {client_ip:?})"),
        if served.is_empty() {
            Err("the server served no connection".into())
        } else if mine.is_empty() {
            Err(format!("{} connections, none sent $LAB_TOKEN (use --send)", served.len()))
        } else if let Some(c) = client_ip.as_ref().filter(|c| peers.iter().any(|p| p.starts_with(&format!("{c}:")))) {
            let _ = c;
            Ok(())
        } else {
            Err(format!("your token came from {peers:?}, not from the client's pod IP {client_ip:?}"))
        },
    );
}

fn lab10(g: &mut Grade, lab: &Lab, pod: &str) {
    if !lab.running(g, pod) {
        return;
    }
    let p = lab.pod(pod).unwrap_or(Value::Null);
    let uid = p["metadata"]["uid"].as_str().unwrap_or("").to_string();
    let (path, seen, total) = watched(lab, "watch.json", &uid);
    let sched: Vec<(String, Option<String>, Option<k8s_openapi::jiff::Timestamp>)> = seen
        .iter()
        .filter_map(|o| condition(o, "PodScheduled"))
        .map(|c| {
            (
                c["status"].as_str().unwrap_or("").to_string(),
                c["reason"].as_str().map(String::from),
                time(&c["lastTransitionTime"]),
            )
        })
        .collect();
    let false_at = sched
        .iter()
        .find(|c| c.0 == "False" && c.1.as_deref() == Some("Unschedulable"));
    let true_at = sched.iter().rev().find(|c| c.0 == "True");
    g.check(
        "your watch saw PodScheduled go False (Unschedulable) → True, in time order",
        format!("{path} (your watch of the pod), uid {uid}"),
        if total > 0 && seen.is_empty() {
            Err(format!("the objects there are of another pod, not the {pod} that runs now"))
        } else {
            match (false_at, true_at) {
                (None, _) => Err("no PodScheduled=False with reason Unschedulable in your watch: start it while the pod waits".into()),
                (_, None) => Err("no PodScheduled=True in your watch: free room while it runs".into()),
                (Some(f), Some(t)) if f.2 <= t.2 => Ok(()),
                _ => Err("the times are not ordered False before True".into()),
            }
        },
    );
    let events = lab.events(pod);
    let at = |r: &str| {
        events
            .iter()
            .find(|e| e["reason"] == r)
            .and_then(|e| time(&e["firstTimestamp"]))
    };
    g.check(
        "the events say why it waited, then that it was scheduled",
        "`podlab get events` of the pod: FailedScheduling, then Scheduled",
        match (at("FailedScheduling"), at("Scheduled")) {
            (Some(a), Some(b)) if a <= b => Ok(()),
            (None, _) => {
                Err("no FailedScheduling: the pod never waited (apply the blocker first)".into())
            }
            other => Err(format!("not in order: {other:?}")),
        },
    );
    let answers = lab.s.answers();
    let blocker = lab.s.var("LAB_BLOCKER");
    g.check(
        "you named why it waited and freed the room",
        format!("reason= in $LAB_FILES/answers; pod {blocker}"),
        if answers.get("reason").map(String::as_str) != Some("Unschedulable") {
            Err(format!(
                "reason={:?} is not the condition's reason",
                answers.get("reason")
            ))
        } else if lab.pod(blocker).is_some() {
            Err(format!("{blocker} still holds the room"))
        } else {
            Ok(())
        },
    );
}

/// Lab 11: the student's two focused runs (on the broken build and the
/// fixed one) and their diagnosis.
fn lab11(g: &mut Grade, s: &Student) {
    let Some((_, family, tests)) = s.fault() else {
        g.check(
            "the lab was started",
            "LAB_FAULT_CODE in the student file",
            Err("start it again".into()),
        );
        return;
    };
    let results = |dir: &str| -> Vec<Value> {
        std::fs::read_to_string(s.files.join(dir).join("results.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
    };
    let status = |rs: &[Value], id: &str| {
        rs.iter()
            .find(|r| r["id"] == id)
            .and_then(|r| r["status"].as_str().map(String::from))
    };
    let broken = results("broken-report");
    let failed: Vec<&str> = tests
        .iter()
        .copied()
        .filter(|t| status(&broken, t).as_deref() == Some("failed"))
        .collect();
    g.check(
        "your focused run on the broken build fails where the fault is",
        "$LAB_FILES/broken-report/results.json (from --report)",
        if broken.is_empty() {
            Err("no report of a run on $LAB_FILES/podlab-broken".into())
        } else if failed.is_empty() {
            Err("the tests that catch the fault did not run (or passed) in that run: focus on the failing family".into())
        } else {
            Ok(())
        },
    );
    let fixed = results("fixed-report");
    g.check(
        "the same focused run is green on the correct build",
        "$LAB_FILES/fixed-report/results.json",
        if fixed.is_empty() {
            Err("no report of a run on $LAB_FILES/podlab-fixed".into())
        } else if let Some(t) = failed
            .iter()
            .find(|t| status(&fixed, t).as_deref() != Some("passed"))
        {
            Err(format!("{t} is not passed there"))
        } else {
            Ok(())
        },
    );
    let (path, text) = file(s, "diagnosis.md");
    let upper = text.to_uppercase();
    let names_family =
        upper.contains(&format!("{family}-")) || upper.contains(&format!("FAMILY: {family}"));
    let names_test = failed.iter().any(|t| upper.contains(t));
    g.check(
        "your diagnosis names the broken property's family and a test that caught it",
        path.to_string(),
        if text.split_whitespace().count() < 15 {
            Err("write the diagnosis: what property is broken, which test showed it, why (15 words or more)".into())
        } else if !names_family || !names_test {
            Err("it names neither the family nor a failing test ID of your broken build".into())
        } else {
            Ok(())
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ns_lines_and_json_streams_parse() {
        let r = ns_records("pause 12 net:[1] mnt:[2]\nbad\nfirst 13\n");
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].2, ["net:[1]", "mnt:[2]"]);
        assert_eq!(json_stream("{\"a\":1}\n{\n \"b\": 2\n}{\"c\":3}").len(), 3);
    }
}
