//! The test registry the image tests pull from (capability `registry`):
//! an OCI distribution registry on this machine, spoken to over plain HTTP,
//! holding the suite's busybox and probe images in one repository. The
//! suite makes its own tags there (a manifest read under one tag and put
//! under another), so every test pulls a name no runtime has seen before.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// The repository whoever starts the registry fills (`cargo xtask`
/// pushes the fixtures there with skopeo).
pub const REPOSITORY: &str = "podlab/conformance";
/// The tag of the busybox fixture image in [`REPOSITORY`].
pub const BUSYBOX_TAG: &str = "busybox";
/// The tag of the probe image in [`REPOSITORY`].
pub const PROBE_TAG: &str = "probe";

/// The manifest media types asked for, the OCI one first (what skopeo
/// pushes from an OCI layout).
const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
                      application/vnd.docker.distribution.manifest.v2+json";
const TIMEOUT: Duration = Duration::from_secs(20);

/// The image reference of `tag` in the suite's repository at `address`.
pub fn reference(address: &str, tag: &str) -> String {
    format!("{address}/{REPOSITORY}:{tag}")
}

/// Puts the manifest tagged `from` under `to` as well (moving `to` if it
/// existed): its digest, or the registry's answer when it refuses.
pub fn tag(address: &str, from: &str, to: &str) -> Result<String, String> {
    let got = request(
        address,
        "GET",
        &format!("/v2/{REPOSITORY}/manifests/{from}"),
        &[("Accept", ACCEPT)],
        &[],
    )?;
    if got.status != 200 {
        return Err(format!(
            "GET of {REPOSITORY}:{from} from the registry at {address}: HTTP {}: {}",
            got.status,
            String::from_utf8_lossy(&got.body)
        ));
    }
    let media_type = got
        .header("content-type")
        .unwrap_or("application/vnd.oci.image.manifest.v1+json")
        .to_string();
    let put = request(
        address,
        "PUT",
        &format!("/v2/{REPOSITORY}/manifests/{to}"),
        &[("Content-Type", &media_type)],
        &got.body,
    )?;
    if put.status != 201 {
        return Err(format!(
            "PUT of {REPOSITORY}:{to} to the registry at {address}: HTTP {}: {}",
            put.status,
            String::from_utf8_lossy(&put.body)
        ));
    }
    put.header("docker-content-digest")
        .map(str::to_string)
        .ok_or_else(|| {
            format!(
                "PUT of {REPOSITORY}:{to} to the registry at {address}: no digest in the answer"
            )
        })
}

/// The image reference of the manifest `digest` in the suite's repository.
pub fn pinned(address: &str, digest: &str) -> String {
    format!("{address}/{REPOSITORY}@{digest}")
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.0 exchange (no chunked bodies, the server closes): enough
/// for a registry's manifests, without an HTTP client in the suite.
fn request(
    address: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Response, String> {
    let what = format!("{method} http://{address}{path}");
    let mut stream = TcpStream::connect(address).map_err(|e| format!("{what}: {e}"))?;
    let _ = stream.set_read_timeout(Some(TIMEOUT));
    let _ = stream.set_write_timeout(Some(TIMEOUT));
    let mut head = format!(
        "{method} {path} HTTP/1.0\r\nHost: {address}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(body))
        .map_err(|e| format!("{what}: {e}"))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(|e| format!("{what}: {e}"))?;
    parse_response(&raw).ok_or_else(|| {
        format!(
            "{what}: not an HTTP response: {:?}",
            String::from_utf8_lossy(&raw[..raw.len().min(200)])
        )
    })
}

fn parse_response(raw: &[u8]) -> Option<Response> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let length = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok());
    if let Some(n) = length {
        body.truncate(n);
    }
    Some(Response {
        status,
        headers,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_gives_its_status_headers_and_body() {
        let r = parse_response(
            b"HTTP/1.0 200 OK\r\nContent-Type: application/x\r\nContent-Length: 3\r\n\r\nabcdef",
        )
        .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-type"), Some("application/x"));
        assert_eq!(r.body, b"abc");
        assert!(parse_response(b"garbage").is_none());
    }

    #[test]
    fn references_name_the_suites_repository() {
        assert_eq!(
            reference("127.0.0.1:5000", "x-1"),
            "127.0.0.1:5000/podlab/conformance:x-1"
        );
    }
}
