//! Probes and lifecycle hooks: what the kubelet's prober and hook runner do.
//!
//! The shim is single-threaded and never forks to run Rust code, so each
//! probe or hook runs in a re-exec of `podlab` (the hidden `__probe`
//! subcommand, [`probe_main`]): an exec action enters the container as
//! `podlab exec` does; tcpSocket and httpGet join the pod's network
//! namespace and connect from inside it. The helper's exit code is the
//! verdict (0 = success) and its output, captured by the shim, the message.
//! The timing rules (delays, periods, thresholds) are in [`Timing`]; the
//! shim turns them into poll timeouts.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, LifecycleHandler, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::container;
use crate::container::RuntimeState;
use crate::store::{PodKey, Store};

/// What keeps a probe or hook helper from reaching the pod: the causes are
/// kept, the verdict prints them as one line.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error("open {path}")]
    OpenNetns {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("enter the pod's network namespace")]
    EnterNetns(#[source] nix::Error),
}

/// Exit code of `__probe` for a failed check (0 is success).
pub const FAILURE: i32 = 1;

/// How a probe or hook checks the container.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Action {
    /// Runs a command in the container; exit code 0 is success.
    Exec { command: Vec<String> },
    /// Opens a TCP connection from inside the pod.
    Tcp { host: String, port: u16 },
    /// Sends an HTTP GET from inside the pod; 200-399 is success.
    Http {
        host: String,
        port: u16,
        path: String,
        headers: Vec<(String, String)>,
    },
}

/// What the shim asks of one `__probe` run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub container: String,
    pub timeout_ms: Option<u64>,
    pub action: Action,
}

/// A lifecycle hook: an action run by a helper, or a plain wait (the
/// `sleep` handler), which the shim keeps as a timer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hook {
    Run(Action),
    Sleep(Duration),
}

/// The timing fields of a probe, with Kubernetes' defaults and minimums.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: i32,
    pub failure_threshold: i32,
}

impl Timing {
    pub fn of(p: &Probe) -> Timing {
        let secs = |v: Option<i32>, default: i32, min: i32| {
            Duration::from_secs(v.unwrap_or(default).max(min) as u64)
        };
        Timing {
            initial_delay: secs(p.initial_delay_seconds, 0, 0),
            period: secs(p.period_seconds, 10, 1),
            timeout: secs(p.timeout_seconds, 1, 1),
            success_threshold: p.success_threshold.unwrap_or(1).max(1),
            failure_threshold: p.failure_threshold.unwrap_or(3).max(1),
        }
    }
}

/// Resolves a port given by number or by the name of one of the
/// container's ports.
fn port_of(port: &IntOrString, c: &Container) -> Result<u16, String> {
    match port {
        IntOrString::Int(n) => {
            u16::try_from(*n).map_err(|_| format!("port {n} is not a valid TCP port"))
        }
        IntOrString::String(name) => {
            if let Ok(n) = name.parse::<u16>() {
                return Ok(n);
            }
            c.ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .and_then(|p| u16::try_from(p.container_port).ok())
                .ok_or_else(|| format!("container {} has no port named {name:?}", c.name))
        }
    }
}

/// The host a tcpSocket/httpGet check connects to: the given one, else the
/// pod's IP, else loopback (a pod without a network attachment).
fn host_or(host: Option<&str>, pod_ip: Option<&str>) -> String {
    host.filter(|h| !h.is_empty())
        .or(pod_ip)
        .unwrap_or("127.0.0.1")
        .to_string()
}

/// The action of a probe; `Err` names what podlab cannot run (gRPC, HTTPS,
/// or no handler at all).
pub fn probe_action(p: &Probe, c: &Container, pod_ip: Option<&str>) -> Result<Action, String> {
    if let Some(e) = &p.exec {
        return Ok(Action::Exec {
            command: e.command.clone().unwrap_or_default(),
        });
    }
    if let Some(t) = &p.tcp_socket {
        return Ok(Action::Tcp {
            host: host_or(t.host.as_deref(), pod_ip),
            port: port_of(&t.port, c)?,
        });
    }
    if let Some(h) = &p.http_get {
        if h.scheme.as_deref().is_some_and(|s| s != "HTTP") {
            return Err("podlab runs httpGet probes over plain HTTP only".into());
        }
        return Ok(Action::Http {
            host: host_or(h.host.as_deref(), pod_ip),
            port: port_of(&h.port, c)?,
            path: h.path.clone().unwrap_or_else(|| "/".into()),
            headers: h
                .http_headers
                .iter()
                .flatten()
                .map(|x| (x.name.clone(), x.value.clone()))
                .collect(),
        });
    }
    if p.grpc.is_some() {
        return Err("podlab does not run gRPC probes".into());
    }
    Err("the probe has no handler (exec, tcpSocket or httpGet)".into())
}

/// The action of a postStart/preStop handler.
pub fn hook_action(
    h: &LifecycleHandler,
    c: &Container,
    pod_ip: Option<&str>,
) -> Result<Hook, String> {
    if let Some(s) = &h.sleep {
        return Ok(Hook::Sleep(Duration::from_secs(s.seconds.max(0) as u64)));
    }
    let probe = Probe {
        exec: h.exec.clone(),
        http_get: h.http_get.clone(),
        tcp_socket: h.tcp_socket.clone(),
        ..Default::default()
    };
    probe_action(&probe, c, pod_ip).map(Hook::Run)
}

/// Entry point of `podlab __probe NAMESPACE NAME REQUEST_JSON`: runs one
/// check and exits 0 on success, [`FAILURE`] otherwise, with a message on
/// stdout. Runs in a fresh single-threaded process, so it may join the
/// pod's namespaces.
pub fn probe_main(config: &Config, key: &PodKey, request: &str) -> i32 {
    let request: Request = match serde_json::from_str(request) {
        Ok(r) => r,
        Err(e) => {
            println!("podlab __probe: bad request: {}", crate::error::chain(&e));
            return FAILURE;
        }
    };
    let timeout = request.timeout_ms.map(Duration::from_millis);
    let result = match &request.action {
        Action::Exec { command } => {
            let ran = runtime_state(config, key)
                .map(|state| container::exec_in(&state, &request.container, command, timeout))
                .map_err(|e| crate::error::chain(&e));
            match ran {
                Err(message) => Err(message),
                Ok(ran) => exec_result(command, ran),
            }
        }
        Action::Tcp { host, port } => enter_pod_network(config, key)
            .map_err(|e| crate::error::chain(&e))
            .and_then(|()| tcp_check(host, *port, timeout.unwrap_or(Duration::from_secs(1)))),
        Action::Http {
            host,
            port,
            path,
            headers,
        } => enter_pod_network(config, key)
            .map_err(|e| crate::error::chain(&e))
            .and_then(|()| {
                http_check(
                    host,
                    *port,
                    path,
                    headers,
                    timeout.unwrap_or(Duration::from_secs(1)),
                )
            }),
    };
    let _ = std::io::stdout().flush();
    match result {
        Ok(msg) => {
            if !msg.is_empty() {
                println!("{msg}");
            }
            0
        }
        Err(msg) => {
            if !msg.is_empty() {
                println!("{msg}");
            }
            FAILURE
        }
    }
}

/// Whether the exec'd command wrote to our stdout (the shim gives every
/// helper a fresh, empty output file).
fn output_written() -> bool {
    nix::sys::stat::fstat(std::io::stdout()).is_ok_and(|st| st.st_size > 0)
}

/// What the pod's shim holds on the host: its containers and network.
fn runtime_state(config: &Config, key: &PodKey) -> Result<RuntimeState, Error> {
    let store = Store::of(config)?;
    let dir = store.get(key)?;
    Ok(dir.read_runtime()?.unwrap_or_default())
}

/// An exec probe's or hook's outcome from its command's.
fn exec_result(command: &[String], ran: Result<i32, container::Error>) -> Result<String, String> {
    match ran {
        Ok(0) => Ok(String::new()),
        // kubelet reports the command's own output; a silent
        // failure gets a message of ours.
        Ok(_) if output_written() => Err(String::new()),
        Ok(code) => Err(format!("command {command:?} exited with {code}")),
        Err(container::Error::ExecTimeout(t)) => Err(format!(
            "command {command:?} timed out after {}s",
            t.as_secs_f64()
        )),
        Err(e) => Err(crate::error::chain(&e)),
    }
}

/// Joins the pod's network namespace (nothing to do for `hostNetwork`).
fn enter_pod_network(config: &Config, key: &PodKey) -> Result<(), Error> {
    let state = runtime_state(config, key)?;
    let Some(path) = state.netns else {
        return Ok(());
    };
    let ns = std::fs::File::open(&path).map_err(|source| Error::OpenNetns {
        path: path.clone(),
        source,
    })?;
    crate::sys::Sys::setns(
        &crate::sys::Kernel,
        &ns,
        nix::sched::CloneFlags::CLONE_NEWNET,
    )
    .map_err(Error::EnterNetns)
}

fn resolve(host: &str, port: u16) -> Result<SocketAddr, String> {
    (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("lookup {host}: {}", crate::error::chain(&e)))?
        .next()
        .ok_or_else(|| format!("lookup {host}: no address"))
}

fn describe_io(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => "i/o timeout".into(),
        _ => crate::error::chain(&e),
    }
}

/// Success when a TCP connection opens within `timeout`.
pub fn tcp_check(host: &str, port: u16, timeout: Duration) -> Result<String, String> {
    let addr = resolve(host, port)?;
    TcpStream::connect_timeout(&addr, timeout)
        .map(|_| String::new())
        .map_err(|e| format!("dial tcp {addr}: connect: {}", describe_io(&e)))
}

/// One HTTP/1.0 GET; success for a status from 200 to 399, as the kubelet
/// decides (redirects are not followed: a 3xx is already a success).
pub fn http_check(
    host: &str,
    port: u16,
    path: &str,
    headers: &[(String, String)],
    timeout: Duration,
) -> Result<String, String> {
    let deadline = Instant::now() + timeout;
    let addr = resolve(host, port)?;
    let url = format!("http://{}{path}", host_port(host, port));
    let fail = |what: String| format!("Get \"{url}\": {what}");
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|e| fail(format!("dial tcp {addr}: connect: {}", describe_io(&e))))?;
    let left = || {
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1))
    };
    let _ = stream.set_write_timeout(Some(left()));
    let mut request = format!(
        "GET {path} HTTP/1.0\r\nHost: {}\r\nUser-Agent: kube-probe/podlab\r\nAccept: */*\r\n",
        host_port(host, port)
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("Connection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|e| fail(describe_io(&e)))?;
    // Only the status line matters; read until it is complete.
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.contains(&b'\n') && head.len() < 8192 {
        let _ = stream.set_read_timeout(Some(left()));
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) => return Err(fail(describe_io(&e))),
        }
    }
    let line = String::from_utf8_lossy(&head);
    let code = status_code(line.lines().next().unwrap_or(""))
        .ok_or_else(|| fail("malformed HTTP response".into()))?;
    if (200..400).contains(&code) {
        Ok(String::new())
    } else {
        Err(format!("HTTP probe failed with statuscode: {code}"))
    }
}

fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The status code of an HTTP status line (`HTTP/1.1 204 No Content`).
fn status_code(line: &str) -> Option<u16> {
    let mut parts = line.split_whitespace();
    let version = parts.next()?;
    if !version.starts_with("HTTP/") {
        return None;
    }
    parts.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn container(v: serde_json::Value) -> Container {
        serde_json::from_value(v).unwrap()
    }

    fn probe(v: serde_json::Value) -> Probe {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn timing_has_kubernetes_defaults_and_minimums() {
        let t = Timing::of(&probe(serde_json::json!({"exec": {"command": ["true"]}})));
        assert_eq!(t.initial_delay, Duration::ZERO);
        assert_eq!(t.period, Duration::from_secs(10));
        assert_eq!(t.timeout, Duration::from_secs(1));
        assert_eq!((t.success_threshold, t.failure_threshold), (1, 3));
        let t = Timing::of(&probe(serde_json::json!({
            "periodSeconds": 0, "timeoutSeconds": 5, "initialDelaySeconds": 2,
            "failureThreshold": 1, "successThreshold": 2
        })));
        assert_eq!(t.period, Duration::from_secs(1));
        assert_eq!(t.timeout, Duration::from_secs(5));
        assert_eq!(t.initial_delay, Duration::from_secs(2));
        assert_eq!((t.success_threshold, t.failure_threshold), (2, 1));
    }

    #[test]
    fn actions_resolve_named_ports_and_default_hosts() {
        let c = container(serde_json::json!({
            "name": "web", "ports": [{"name": "http", "containerPort": 8080}]
        }));
        let p = probe(
            serde_json::json!({"httpGet": {"port": "http", "path": "/healthz",
            "httpHeaders": [{"name": "X-A", "value": "1"}]}}),
        );
        assert_eq!(
            probe_action(&p, &c, Some("10.1.0.5")).unwrap(),
            Action::Http {
                host: "10.1.0.5".into(),
                port: 8080,
                path: "/healthz".into(),
                headers: vec![("X-A".into(), "1".into())]
            }
        );
        let p = probe(serde_json::json!({"tcpSocket": {"port": 6379}}));
        assert_eq!(
            probe_action(&p, &c, None).unwrap(),
            Action::Tcp {
                host: "127.0.0.1".into(),
                port: 6379
            }
        );
        let p = probe(serde_json::json!({"tcpSocket": {"port": "nope"}}));
        assert!(probe_action(&p, &c, None)
            .unwrap_err()
            .contains("no port named"));
        let p = probe(serde_json::json!({"grpc": {"port": 1}}));
        assert!(probe_action(&p, &c, None).unwrap_err().contains("gRPC"));
        let p = probe(serde_json::json!({"httpGet": {"port": 1, "scheme": "HTTPS"}}));
        assert!(probe_action(&p, &c, None).unwrap_err().contains("HTTP"));
        let h: LifecycleHandler =
            serde_json::from_value(serde_json::json!({"sleep": {"seconds": 3}})).unwrap();
        assert_eq!(
            hook_action(&h, &c, None).unwrap(),
            Hook::Sleep(Duration::from_secs(3))
        );
    }

    #[test]
    fn status_lines_are_parsed() {
        assert_eq!(status_code("HTTP/1.1 204 No Content"), Some(204));
        assert_eq!(status_code("HTTP/1.0 500"), Some(500));
        assert_eq!(status_code("SSH-2.0-OpenSSH"), None);
        assert_eq!(status_code(""), None);
    }

    /// Serves one canned response per connection on a loopback port.
    fn serve(response: &'static str) -> (u16, std::thread::JoinHandle<String>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let h = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 512];
            while !req.ends_with(b"\r\n\r\n") {
                let n = s.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                req.extend_from_slice(&buf[..n]);
            }
            s.write_all(response.as_bytes()).unwrap();
            String::from_utf8(req).unwrap()
        });
        (port, h)
    }

    #[test]
    fn http_checks_go_by_status_code() {
        let (port, h) = serve("HTTP/1.0 302 Found\r\nLocation: /x\r\n\r\n");
        let headers = vec![("X-Probe".to_string(), "yes".to_string())];
        assert_eq!(
            http_check(
                "127.0.0.1",
                port,
                "/ready",
                &headers,
                Duration::from_secs(5)
            ),
            Ok(String::new())
        );
        let req = h.join().unwrap();
        assert!(req.starts_with("GET /ready HTTP/1.0\r\n"), "{req}");
        assert!(req.contains("X-Probe: yes\r\n"), "{req}");
        let (port, h) = serve("HTTP/1.1 503 Service Unavailable\r\n\r\n");
        assert_eq!(
            http_check("127.0.0.1", port, "/", &[], Duration::from_secs(5)),
            Err("HTTP probe failed with statuscode: 503".into())
        );
        h.join().unwrap();
    }

    #[test]
    fn tcp_checks_connect_or_report_refusal() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert_eq!(
            tcp_check("127.0.0.1", port, Duration::from_secs(1)),
            Ok(String::new())
        );
        drop(l);
        let err = tcp_check("127.0.0.1", port, Duration::from_secs(1)).unwrap_err();
        assert!(err.ends_with("connection refused"), "{err}");
        let err = http_check("127.0.0.1", port, "/", &[], Duration::from_secs(1)).unwrap_err();
        assert!(
            err.starts_with(&format!("Get \"http://127.0.0.1:{port}/\"")),
            "{err}"
        );
    }
}
