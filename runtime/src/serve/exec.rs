//! `pods/exec` over WebSocket, in the channel protocols kubectl speaks
//! (`v5.channel.k8s.io`, `v4.channel.k8s.io`): every message starts with
//! its channel (0 stdin, 1 stdout, 2 stderr, 3 the final Status with the
//! exit code, 255 a half-close in v5). The command runs in a child
//! `podlab exec` (joining a container's namespaces needs a single-threaded
//! process, which this server is not).

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::json;
use sha1::{Digest, Sha1};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::{parse_query_all, ApiError, Body, Ctx};

const V5: &str = "v5.channel.k8s.io";
const V4: &str = "v4.channel.k8s.io";
/// RFC 6455's fixed GUID, appended to the key for the accept value.
const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// Messages larger than this are refused (stdin comes in small pieces).
const MAX_MESSAGE: usize = 1 << 20;

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const CLOSE: u8 = 255;

/// True for a WebSocket upgrade request.
pub fn is_upgrade(req: &Request<Incoming>) -> bool {
    req.headers()
        .get(hyper::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

fn accept_key(key: &str) -> String {
    let mut h = Sha1::new();
    h.update(key.as_bytes());
    h.update(WS_GUID.as_bytes());
    crate::tls::base64(&h.finalize())
}

/// What was asked: `/api/v1/namespaces/NS/pods/NAME/exec?command=...`.
struct ExecRequest {
    namespace: String,
    name: String,
    container: Option<String>,
    command: Vec<String>,
    stdin: bool,
}

fn parse(req: &Request<Incoming>) -> Result<ExecRequest, ApiError> {
    let segs: Vec<&str> = req
        .uri()
        .path()
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let (namespace, name) = match segs.as_slice() {
        ["api", "v1", "namespaces", ns, "pods", name, "exec"] => (ns.to_string(), name.to_string()),
        _ => {
            return Err(ApiError::new(
                404,
                "NotFound",
                "the server could not find the requested resource",
            ))
        }
    };
    let query = parse_query_all(req.uri().query());
    let get = |k: &'static str| {
        query
            .iter()
            .filter(move |(n, _)| n == k)
            .map(|(_, v)| v.clone())
    };
    let command: Vec<String> = get("command").collect();
    if command.is_empty() {
        return Err(ApiError::bad_request("you must specify at least 1 command"));
    }
    let flag = |k: &'static str| get(k).any(|v| v == "true" || v == "1");
    Ok(ExecRequest {
        namespace,
        name,
        container: get("container").find(|c| !c.is_empty()),
        command,
        stdin: flag("stdin"),
    })
}

/// Answers the upgrade (101) and runs the command on the upgraded
/// connection; a request that cannot be served is answered as usual.
pub fn upgrade(ctx: Arc<Ctx>, mut req: Request<Incoming>) -> Response<Body> {
    let protocols: Vec<String> = req
        .headers()
        .get_all(hyper::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|p| p.trim().to_string()))
        .collect();
    let protocol = [V5, V4]
        .into_iter()
        .find(|p| protocols.iter().any(|q| q == p));
    let Some(protocol) = protocol else {
        return ApiError::bad_request(format!("pods/exec speaks {V5} and {V4} over WebSocket"))
            .response();
    };
    let Some(key) = req
        .headers()
        .get(hyper::header::SEC_WEBSOCKET_KEY)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
    else {
        return ApiError::bad_request("no Sec-WebSocket-Key").response();
    };
    let exec = match parse(&req) {
        Ok(e) => e,
        Err(e) => return e.response(),
    };
    // The pod and container must exist before the switch, so kubectl gets
    // a NotFound rather than a closed stream.
    if let Err(e) = crate::api::get_pod(
        &ctx.config,
        &crate::store::PodKey::new(&exec.namespace, &exec.name),
    ) {
        return ApiError::from(e).response();
    }
    let v5 = protocol == V5;
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        if let Ok(upgraded) = on_upgrade.await {
            run(&ctx, exec, v5, hyper_util::rt::TokioIo::new(upgraded)).await;
        }
    });
    let mut r = Response::new(Body::Full(None));
    *r.status_mut() = hyper::StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(
        hyper::header::UPGRADE,
        hyper::header::HeaderValue::from_static("websocket"),
    );
    h.insert(
        hyper::header::CONNECTION,
        hyper::header::HeaderValue::from_static("Upgrade"),
    );
    if let Ok(v) = hyper::header::HeaderValue::from_str(&accept_key(&key)) {
        h.insert(hyper::header::SEC_WEBSOCKET_ACCEPT, v);
    }
    h.insert(
        hyper::header::SEC_WEBSOCKET_PROTOCOL,
        hyper::header::HeaderValue::from_static(protocol),
    );
    r
}

/// One server frame (never masked): FIN, the opcode, the payload.
fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => out.push(n as u8),
        n if n <= 0xffff => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
    out
}

/// A channel message as one binary frame.
fn message(channel: u8, data: &[u8]) -> Vec<u8> {
    let mut payload = Vec::with_capacity(data.len() + 1);
    payload.push(channel);
    payload.extend_from_slice(data);
    frame(0x2, &payload)
}

/// Reads one whole client message (frames joined): its opcode and payload.
async fn read_message(r: &mut (impl AsyncRead + Unpin)) -> std::io::Result<(u8, Vec<u8>)> {
    let mut data = Vec::new();
    let mut first_opcode = None;
    loop {
        let mut head = [0u8; 2];
        r.read_exact(&mut head).await?;
        let fin = head[0] & 0x80 != 0;
        let opcode = head[0] & 0x0f;
        let masked = head[1] & 0x80 != 0;
        let len = match head[1] & 0x7f {
            126 => u64::from(r.read_u16().await?),
            127 => r.read_u64().await?,
            n => u64::from(n),
        };
        if len as usize > MAX_MESSAGE || data.len() + len as usize > MAX_MESSAGE {
            return Err(std::io::Error::other("message too large"));
        }
        let mut mask = [0u8; 4];
        if masked {
            r.read_exact(&mut mask).await?;
        }
        let mut payload = vec![0u8; len as usize];
        r.read_exact(&mut payload).await?;
        if masked {
            for (i, b) in payload.iter_mut().enumerate() {
                *b ^= mask[i % 4];
            }
        }
        // Control frames may come between the pieces of a message.
        if opcode >= 0x8 {
            return Ok((opcode, payload));
        }
        first_opcode.get_or_insert(opcode);
        data.extend_from_slice(&payload);
        if fin {
            return Ok((first_opcode.unwrap_or(0x2), data));
        }
    }
}

/// The final Status on the error channel: success, or the exit code.
fn exit_status(code: i32) -> Vec<u8> {
    let status = if code == 0 {
        json!({"metadata": {}, "status": "Success"})
    } else {
        json!({"metadata": {}, "status": "Failure",
            "message": format!("command terminated with non-zero exit code: exit status {code}"),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]}})
    };
    serde_json::to_vec(&status).unwrap_or_default()
}

async fn pump(mut from: impl AsyncRead + Unpin, channel: u8, to: mpsc::Sender<Vec<u8>>) {
    let mut buf = vec![0u8; 32 * 1024];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 || to.send(message(channel, &buf[..n])).await.is_err() {
            return;
        }
    }
}

async fn run(
    ctx: &Ctx,
    exec: ExecRequest,
    v5: bool,
    io: impl AsyncRead + AsyncWrite + Send + 'static,
) {
    let (mut rd, mut wr) = tokio::io::split(io);
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(32);
    let writer = tokio::spawn(async move {
        while let Some(bytes) = rx.recv().await {
            if wr.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = wr.flush().await;
        let _ = wr.shutdown().await;
    });
    let c = &ctx.config;
    let mut cmd = tokio::process::Command::from(crate::shim::podlab_command());
    cmd.arg("--root")
        .arg(&c.root)
        .arg("--image-root")
        .arg(&c.image_root)
        .arg("--data-root")
        .arg(&c.data_root);
    if let Some(dir) = &c.cni_conf_dir {
        cmd.arg("--cni-conf-dir").arg(dir);
    }
    cmd.arg("--seccomp-root").arg(&c.seccomp_root);
    cmd.args(["exec", &exec.name, "-n", &exec.namespace]);
    if let Some(container) = &exec.container {
        cmd.args(["-c", container]);
    }
    if exec.stdin {
        cmd.arg("-i");
    }
    cmd.arg("--").args(&exec.command);
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let spawned = {
        let mut own = super::OWN_WAITS.lock().unwrap_or_else(|e| e.into_inner());
        let spawned = cmd.spawn();
        if let Some(pid) = spawned.as_ref().ok().and_then(|c| c.id()) {
            own.insert(pid as i32);
        }
        spawned
    };
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) => {
            let status = json!({"metadata": {}, "status": "Failure", "reason": "InternalError",
                "message": format!("starting podlab exec: {}", crate::error::chain(&e))});
            let _ = tx
                .send(message(
                    ERROR,
                    &serde_json::to_vec(&status).unwrap_or_default(),
                ))
                .await;
            let _ = tx.send(frame(0x8, &1000u16.to_be_bytes())).await;
            drop(tx);
            let _ = writer.await;
            return;
        }
    };
    let mut stdin = child.stdin.take();
    let out = child
        .stdout
        .take()
        .map(|o| tokio::spawn(pump(o, STDOUT, tx.clone())));
    let err = child
        .stderr
        .take()
        .map(|e| tokio::spawn(pump(e, STDERR, tx.clone())));
    // The client's messages: stdin, its half-close (v5), close, pings.
    let ctl = tx.clone();
    let reader = tokio::spawn(async move {
        loop {
            let Ok((opcode, data)) = read_message(&mut rd).await else {
                return;
            };
            match opcode {
                0x8 => return,
                0x9 => {
                    let _ = ctl.send(frame(0xA, &data)).await;
                }
                0x1 | 0x2 => match data.split_first() {
                    Some((&STDIN, rest)) => {
                        if let Some(s) = stdin.as_mut() {
                            if s.write_all(rest).await.is_err() {
                                stdin = None;
                            }
                        }
                    }
                    Some((&CLOSE, [STDIN, ..])) if v5 => stdin = None,
                    _ => {}
                },
                _ => {}
            }
        }
    });
    let pid = child.id();
    let code = match child.wait().await {
        Ok(s) => s.code().unwrap_or_else(|| {
            use std::os::unix::process::ExitStatusExt;
            128 + s.signal().unwrap_or(0)
        }),
        Err(_) => 1,
    };
    if let Some(pid) = pid {
        super::OWN_WAITS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(pid as i32));
    }
    // Everything the command wrote goes out before the status.
    if let Some(t) = out {
        let _ = t.await;
    }
    if let Some(t) = err {
        let _ = t.await;
    }
    reader.abort();
    let _ = tx.send(message(ERROR, &exit_status(code))).await;
    let _ = tx.send(frame(0x8, &1000u16.to_be_bytes())).await;
    drop(tx);
    let _ = writer.await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accept_key_follows_rfc_6455() {
        // The example of RFC 6455 section 1.3.
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn frames_carry_their_length() {
        assert_eq!(frame(0x2, b"ab"), [0x82, 2, b'a', b'b']);
        let long = frame(0x2, &[0; 300]);
        assert_eq!(&long[..4], &[0x82, 126, 1, 44]);
        assert_eq!(message(STDOUT, b"x"), [0x82, 2, 1, b'x']);
    }

    #[test]
    fn masked_fragmented_messages_are_joined() {
        let mask = [1u8, 2, 3, 4];
        let piece = |fin: bool, op: u8, data: &[u8]| {
            let mut f = vec![if fin { 0x80 } else { 0 } | op, 0x80 | data.len() as u8];
            f.extend_from_slice(&mask);
            f.extend(data.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
            f
        };
        let mut bytes = piece(false, 0x2, &[STDIN, b'h']);
        bytes.extend(piece(true, 0x0, b"i"));
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (op, data) = rt.block_on(read_message(&mut bytes.as_slice())).unwrap();
        assert_eq!((op, data.as_slice()), (0x2, &[STDIN, b'h', b'i'][..]));
    }

    #[test]
    fn exit_codes_travel_in_the_status() {
        let s: serde_json::Value = serde_json::from_slice(&exit_status(3)).unwrap();
        assert_eq!(s["details"]["causes"][0]["message"], "3");
        let ok: serde_json::Value = serde_json::from_slice(&exit_status(0)).unwrap();
        assert_eq!(ok["status"], "Success");
    }
}
