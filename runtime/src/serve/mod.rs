//! `podlab serve`: the Kubernetes REST API of one node, a front next to the
//! CLI over the same API layer ([`crate::api`]) and so the same store: a pod
//! made by `podlab apply` is seen by `kubectl get`, and the reverse.
//!
//! TLS with client certificates ([`tls`]); [`routes`] maps a request to its
//! handler: discovery, namespaces and nodes there, [`pods`] (and events),
//! [`watch`] streams; [`tables`] are kubectl's server-side tables and
//! [`status`] the `Status` errors. Handlers are blocking calls into the API
//! layer, run on tokio's blocking pool. The process is threaded, so nothing
//! here forks except to exec the podlab binary (the shims, `podlab exec`).

mod exec;
mod pods;
mod protobuf;
mod routes;
mod secrets;
mod status;
mod tables;
use crate::tls;
mod watch;

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::{Bytes, Frame, Incoming};
use hyper::{Method, Request, Response};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::config::Config;
pub use status::ApiError;

/// The largest request body accepted (the API server's limit is 3 MiB).
const MAX_BODY: usize = 3 * 1024 * 1024;
/// A client that has not finished its TLS handshake or its request headers
/// by then is dropped, so a slow client cannot hold a connection forever.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Tls(#[from] tls::Error),
    #[error("{what}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    /// What failed is `what`; the cause stays the source, for callers to
    /// look into and print once.
    #[error("{what}")]
    Api {
        what: String,
        #[source]
        source: Box<crate::api::Error>,
    },
    #[error("{what}")]
    Store {
        what: String,
        #[source]
        source: crate::store::Error,
    },
}

/// `podlab serve`'s options.
pub struct Options {
    pub address: SocketAddr,
    /// Where the kubeconfig goes (default: `<state root>/serve/kubeconfig`).
    pub kubeconfig_out: Option<PathBuf>,
}

/// What every handler may read.
#[derive(Clone)]
pub struct Ctx {
    pub config: Config,
    /// When this server started: the node's creationTimestamp.
    pub started: String,
    /// The store's changes, read once for every watcher.
    pub feed: crate::feed::Feed,
    /// The node as last looked at, and the version it got then.
    pub node: Arc<std::sync::Mutex<routes::NodeSeen>>,
}

/// A response body: whole, or streamed from a handler's thread.
pub enum Body {
    Full(Option<Bytes>),
    Stream(mpsc::Receiver<Bytes>),
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Body::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Body::Stream(rx) => rx.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b)))),
        }
    }
}

/// A request as the handlers see it: the body read whole, the query decoded.
pub struct Req {
    pub method: Method,
    pub path: String,
    pub query: HashMap<String, String>,
    pub accept: String,
    pub content_type: String,
    pub body: Bytes,
}

impl Req {
    pub fn q(&self, name: &str) -> Option<&str> {
        self.query.get(name).map(String::as_str)
    }

    /// True for `?watch=true` (or 1).
    pub fn is_watch(&self) -> bool {
        matches!(self.q("watch"), Some("true" | "1"))
    }

    /// True when the client asks for a meta.k8s.io Table.
    pub fn wants_table(&self) -> bool {
        self.accept
            .split(',')
            .any(|a| a.contains("as=Table") && a.contains("g=meta.k8s.io"))
    }
}

/// `%41` and `+` decoded (query values are form-encoded).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every `name=value` of a query, in order (exec repeats `command=`).
fn parse_query_all(q: Option<&str>) -> Vec<(String, String)> {
    q.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn parse_query(q: Option<&str>) -> HashMap<String, String> {
    parse_query_all(q).into_iter().collect()
}

/// A JSON answer.
pub fn json(code: u16, value: &Value) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_default();
    respond(code, "application/json", body)
}

pub fn respond(code: u16, content_type: &str, body: Vec<u8>) -> Response<Body> {
    let mut r = Response::new(Body::Full(Some(Bytes::from(body))));
    *r.status_mut() = hyper::StatusCode::from_u16(code).unwrap_or(hyper::StatusCode::OK);
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

impl ApiError {
    pub fn response(&self) -> Response<Body> {
        json(self.code, &self.to_status())
    }
}

/// Children the server waits for itself (`podlab exec` of pods/exec);
/// [`reap_detached`] leaves them alone. Held across their spawn, so none
/// is reaped before it is listed.
pub(crate) static OWN_WAITS: std::sync::Mutex<std::collections::BTreeSet<i32>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

/// The shims `api::apply` starts are this process's children, which a CLI
/// leaves to init by exiting; a server lives on, so it reaps them itself
/// once they are zombies (every few seconds, by pid: a blanket wait would
/// take the exit status of an exec child from its waiter).
fn reap_detached() {
    let me = std::process::id() as i32;
    loop {
        std::thread::sleep(Duration::from_secs(2));
        let Ok(own) = OWN_WAITS.lock() else {
            return;
        };
        let Ok(dir) = std::fs::read_dir("/proc") else {
            continue;
        };
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // After the command name (which may hold spaces): state, ppid.
            let mut rest = stat
                .rsplit_once(')')
                .map(|(_, r)| r)
                .unwrap_or("")
                .split_whitespace();
            let state = rest.next();
            let ppid = rest.next().and_then(|p| p.parse::<i32>().ok());
            if ppid == Some(me) && state == Some("Z") && !own.contains(&pid) {
                let _ = nix::sys::wait::waitpid(
                    nix::unistd::Pid::from_raw(pid),
                    Some(nix::sys::wait::WaitPidFlag::WNOHANG),
                );
            }
        }
    }
}

/// Starts the server and serves until the process is stopped.
pub fn run(config: Config, opts: Options) -> Result<(), Error> {
    let creds = tls::load_or_create(
        &config.root.join("serve"),
        &opts.address,
        Some(&crate::network::node_name()),
    )?;
    let tls_config = tls::server_config(&creds)?;
    if !opts.address.ip().is_loopback() {
        eprintln!(
            "Warning: podlab serve listens on {}, beyond this machine: anyone who can reach it \
             and holds a client certificate of its CA can run privileged pods here",
            opts.address
        );
    }
    let io = |what: &str| {
        let what = what.to_string();
        move |source| Error::Io { what, source }
    };
    std::thread::spawn(reap_detached);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(io("tokio runtime"))?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(opts.address)
            .await
            .map_err(io(&format!("listen on {}", opts.address)))?;
        let local = listener.local_addr().map_err(io("local address"))?;
        let host = match local.ip() {
            ip if ip.is_unspecified() => "127.0.0.1".to_string(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        };
        let server = format!("https://{host}:{}", local.port());
        let kubeconfig = opts
            .kubeconfig_out
            .clone()
            .unwrap_or_else(|| creds.dir.join("kubeconfig"));
        tls::write_private(&kubeconfig, tls::kubeconfig(&creds, &server)?.as_bytes())?;
        println!("podlab serve: the Kubernetes API on {server}");
        println!("export KUBECONFIG={}", kubeconfig.display());
        let _ = std::io::stdout().flush();
        let ctx = Arc::new(Ctx {
            feed: start_feed(&config)?,
            node: Arc::new(std::sync::Mutex::new(routes::NodeSeen::new(&config)?)),
            config,
            started: crate::store::now_rfc3339(),
        });
        let acceptor = tokio_rustls::TlsAcceptor::from(tls_config);
        loop {
            let (tcp, _) = match listener.accept().await {
                Ok(c) => c,
                // Out of descriptors and the like: keep serving the others.
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let acceptor = acceptor.clone();
            let ctx = ctx.clone();
            tokio::spawn(async move {
                let Ok(Ok(stream)) =
                    tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
                else {
                    return;
                };
                // The verifier accepted any certificate given: it chains to the CA.
                let authenticated = stream
                    .get_ref()
                    .1
                    .peer_certificates()
                    .is_some_and(|c| !c.is_empty());
                let service =
                    hyper::service::service_fn(move |req| handle(ctx.clone(), authenticated, req));
                let _ = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(HANDSHAKE_TIMEOUT)
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    })
}

/// The store's change feed, each changed pod read as the API shows it.
fn start_feed(config: &Config) -> Result<crate::feed::Feed, Error> {
    let store = crate::store::Store::of(config).map_err(|source| Error::Store {
        what: "open the store".into(),
        source,
    })?;
    let reader = config.clone();
    crate::feed::Feed::start(
        store.root(),
        Box::new(move |key| {
            crate::api::get_pod(&reader, key)
                .ok()
                .map(|p| pods::pod_value(&p))
        }),
    )
    .map_err(|source| Error::Store {
        what: "follow the store's changes".into(),
        source,
    })
}

async fn handle(
    ctx: Arc<Ctx>,
    authenticated: bool,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    if !authenticated {
        return Ok(ApiError::unauthorized().response());
    }
    if exec::is_upgrade(&req) {
        return Ok(exec::upgrade(ctx, req));
    }
    let (parts, body) = req.into_parts();
    let body = match http_body_util::Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return Ok(ApiError::new(
                413,
                "RequestEntityTooLarge",
                format!("the request body is larger than {MAX_BODY} bytes"),
            )
            .response())
        }
    };
    let header = |name: hyper::header::HeaderName| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let req = Req {
        method: parts.method.clone(),
        path: parts.uri.path().to_string(),
        query: parse_query(parts.uri.query()),
        accept: header(hyper::header::ACCEPT),
        content_type: header(hyper::header::CONTENT_TYPE),
        body,
    };
    let answer = tokio::task::spawn_blocking(move || routes::route(&ctx, &req)).await;
    Ok(answer.unwrap_or_else(|e| ApiError::internal(format!("handler failed: {e}")).response()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_decoded() {
        let q = parse_query(Some("fieldSelector=metadata.name%3Dweb&watch=true&x"));
        assert_eq!(q["fieldSelector"], "metadata.name=web");
        assert_eq!(q["watch"], "true");
        assert_eq!(q["x"], "");
        assert_eq!(percent_decode("a%2"), "a%2");
        assert_eq!(percent_decode("a+b%20c"), "a b c");
    }

    #[test]
    fn node_start_error_keeps_its_cause() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_path_buf();
        std::fs::write(root.join("resource-version"), "not a number").unwrap();
        let config = Config::new(root.clone(), root.join("images"), root.join("data"));
        let Err(err) = routes::NodeSeen::new(&config) else {
            panic!("a garbled counter must fail");
        };
        assert_eq!(err.to_string(), "read the store's resource version");
        let cause = std::error::Error::source(&err).expect("the cause is the source");
        assert!(cause.is::<Box<crate::api::Error>>(), "{cause:?}");
        assert!(cause.to_string().contains("resource-version"), "{cause}");
    }
}
