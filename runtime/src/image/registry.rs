//! A small client of the OCI distribution API: GETs of manifests and blobs
//! over HTTP/1.1 (hyper's connection API and tokio-rustls, both already
//! built for `podlab serve`), with the registry's token or basic auth and
//! redirects to blob storage followed.
//!
//! Everything here is async and runs on a current-thread tokio runtime
//! inside a `podlab image pull` process (see `pull.rs` for why).

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use http_body_util::{BodyExt, Empty};
use hyper::body::{Bytes, Incoming};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;

use super::blob::{io_err, tmp_path_for, to_hex};
use super::hosts::{ClientCert, Credentials, Host};
use super::Error;

/// Where Linux distributions keep their CA bundle (Go's list, which
/// containerd and podman use).
const SYSTEM_CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/tls/cacert.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
];
const MAX_REDIRECTS: usize = 5;
/// Error bodies are read this far for their message.
const ERROR_BODY_LIMIT: usize = 8 << 10;
const USER_AGENT: &str = concat!("podlab/", env!("CARGO_PKG_VERSION"));

/// The TLS settings for one registry host: the system's roots plus the
/// host's configured CAs, and its client certificates; the server's
/// certificate is verified unless its hosts.toml says `skip_verify`.
pub(crate) fn tls_config(host: &Host) -> Result<Arc<rustls::ClientConfig>, Error> {
    let mut roots = rustls::RootCertStore::empty();
    let bundle = std::env::var_os("SSL_CERT_FILE")
        .map(std::path::PathBuf::from)
        .into_iter()
        .chain(SYSTEM_CA_BUNDLES.iter().map(std::path::PathBuf::from))
        .find(|p| p.is_file());
    if let Some(bundle) = bundle {
        if let Ok(certs) = CertificateDer::pem_file_iter(&bundle) {
            roots.add_parsable_certificates(certs.filter_map(Result::ok));
        }
    }
    for ca in &host.ca {
        let certs = CertificateDer::pem_file_iter(ca)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| Error::Invalid {
                what: ca.display().to_string(),
                reason: format!("not a PEM certificate file: {e}"),
            })?;
        let (added, _) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(Error::Invalid {
                what: ca.display().to_string(),
                reason: "holds no usable CA certificate".to_string(),
            });
        }
    }
    // ring, as for `podlab serve` (no cmake for aws-lc).
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let clients = host
        .client
        .iter()
        .map(|c| client_key(c, &provider))
        .collect::<Result<Vec<_>, _>>()?;
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(&host.authority, e))?;
    let builder = if host.skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(SkipVerify(provider)))
    } else {
        builder.with_root_certificates(roots)
    };
    let mut config = if clients.is_empty() {
        builder.with_no_client_auth()
    } else {
        builder.with_client_cert_resolver(Arc::new(ClientCerts(clients)))
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A client certificate chain and its key, read from PEM files.
fn client_key(
    c: &ClientCert,
    provider: &rustls::crypto::CryptoProvider,
) -> Result<Arc<rustls::sign::CertifiedKey>, Error> {
    let bad = |path: &Path, reason: String| Error::Invalid {
        what: path.display().to_string(),
        reason,
    };
    let chain = CertificateDer::pem_file_iter(&c.cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| bad(&c.cert, format!("not a PEM client certificate file: {e}")))?;
    if chain.is_empty() {
        return Err(bad(&c.cert, "holds no client certificate".into()));
    }
    let key_file = c.key.as_deref().unwrap_or(&c.cert);
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| bad(key_file, format!("holds no PEM private key: {e}")))?;
    let key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| bad(key_file, format!("unusable private key: {e}")))?;
    Ok(Arc::new(rustls::sign::CertifiedKey::new(chain, key)))
}

/// The host's client certificates: the first whose key can sign with a
/// scheme the server accepts.
#[derive(Debug)]
struct ClientCerts(Vec<Arc<rustls::sign::CertifiedKey>>);

impl rustls::client::ResolvesClientCert for ClientCerts {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        schemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        self.0
            .iter()
            .find(|c| c.key.choose_scheme(schemes).is_some())
            .cloned()
    }

    fn has_certs(&self) -> bool {
        !self.0.is_empty()
    }
}

/// `skip_verify = true`: any certificate chain and name are accepted (the
/// handshake's signatures are still checked, so the server holds the key
/// of the certificate it shows).
#[derive(Debug)]
struct SkipVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for SkipVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn tls_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Transport {
        url: what.to_string(),
        reason: format!("TLS: {e}"),
    }
}

/// A parsed absolute URL: enough of one for registry and token endpoints.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Url {
    https: bool,
    authority: String,
    /// Path and query, starting with '/'.
    path: String,
}

impl Url {
    fn parse(url: &str) -> Option<Url> {
        let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
            (true, r)
        } else {
            (false, url.strip_prefix("http://")?)
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() {
            return None;
        }
        let path = if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        Some(Url {
            https,
            authority: authority.to_string(),
            path,
        })
    }

    /// `Location` may be absolute or relative to this URL's origin.
    fn join(&self, location: &str) -> Option<Url> {
        if location.starts_with("http://") || location.starts_with("https://") {
            return Url::parse(location);
        }
        if location.starts_with("//") {
            let scheme = if self.https { "https:" } else { "http:" };
            return Url::parse(&format!("{scheme}{location}"));
        }
        let path = if location.starts_with('/') {
            location.to_string()
        } else {
            let base = self.path.split('?').next().unwrap_or("/");
            let dir = &base[..base.rfind('/').map_or(0, |i| i + 1)];
            format!("{dir}{location}")
        };
        Some(Url {
            path,
            ..self.clone()
        })
    }

    fn origin(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}", self.authority)
    }

    /// Host name (without brackets) and port.
    fn host_port(&self) -> (String, u16) {
        let default = if self.https { 443 } else { 80 };
        let a = &self.authority;
        if let Some(rest) = a.strip_prefix('[') {
            let (host, after) = rest.split_once(']').unwrap_or((rest, ""));
            let port = after.strip_prefix(':').and_then(|p| p.parse().ok());
            return (host.to_string(), port.unwrap_or(default));
        }
        match a.rsplit_once(':') {
            Some((h, p)) if p.parse::<u16>().is_ok() => {
                (h.to_string(), p.parse().unwrap_or(default))
            }
            _ => (a.clone(), default),
        }
    }
}

impl std::fmt::Display for Url {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.origin(), self.path)
    }
}

/// A session with one registry host for one repository.
pub(crate) struct Registry {
    host: Host,
    repository: String,
    credentials: Option<Credentials>,
    tls: Arc<rustls::ClientConfig>,
    /// The `Authorization` value that the registry accepted or asked for.
    authorization: Option<String>,
    connections: HashMap<String, SendRequest<Empty<Bytes>>>,
}

impl Registry {
    pub(crate) fn new(
        host: Host,
        repository: &str,
        credentials: Option<Credentials>,
    ) -> Result<Registry, Error> {
        let tls = tls_config(&host)?;
        Ok(Registry {
            host,
            repository: repository.to_string(),
            credentials,
            tls,
            authorization: None,
            connections: HashMap::new(),
        })
    }

    /// A second session with the same host, scheme and authorization but
    /// its own connections, for fetching blobs side by side.
    pub(crate) fn fork(&self) -> Registry {
        Registry {
            host: self.host.clone(),
            repository: self.repository.clone(),
            credentials: self.credentials.clone(),
            tls: self.tls.clone(),
            authorization: self.authorization.clone(),
            connections: HashMap::new(),
        }
    }

    /// For a loopback registry without configuration: plain HTTP if the
    /// server does not answer TLS (never after a certificate error).
    pub(crate) async fn settle_scheme(&mut self) -> Result<(), Error> {
        if !self.host.http_fallback || !self.host.https {
            return Ok(());
        }
        let url = Url::parse(&self.host.url("/")).ok_or_else(|| bad_url(&self.host.url("/")))?;
        match self.connect(&url).await {
            Ok(sender) => {
                self.connections.insert(url.origin(), sender);
            }
            Err(ConnectError::Tls(e)) if !is_certificate_error(&e) => self.host.https = false,
            Err(e) => return Err(e.into_error(&url)),
        }
        Ok(())
    }

    fn api_url(&self, path: &str) -> String {
        self.host.url(&format!("/{}/{path}", self.repository))
    }

    /// The manifest (or index) `reference` names: its bytes and media type.
    pub(crate) async fn manifest(
        &mut self,
        reference: &str,
        accept: &str,
        limit: u64,
    ) -> Result<(Vec<u8>, Option<String>), Error> {
        let url = self.api_url(&format!("manifests/{reference}"));
        let response = self.get(&url, Some(accept)).await?;
        let media_type = response
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_string());
        let body = read_body(response, limit as usize, &url).await?;
        Ok((body, media_type))
    }

    /// A small blob (a config), whole, checked against digest and size.
    pub(crate) async fn small_blob(&mut self, digest: &str, size: u64) -> Result<Vec<u8>, Error> {
        let url = self.api_url(&format!("blobs/{digest}"));
        let response = self.get(&url, None).await?;
        let bytes = read_body(response, size as usize + 1, &url).await?;
        check_blob(
            digest,
            size,
            bytes.len() as u64,
            &super::sha256_digest(&bytes),
        )?;
        Ok(bytes)
    }

    /// Streams a blob into `dest`, checking size and digest before the
    /// rename: a corrupt blob never lands under its digest's name.
    pub(crate) async fn blob_to_file(
        &mut self,
        digest: &str,
        size: u64,
        dest: &Path,
        progress: &mut (dyn FnMut(u64) + Send),
    ) -> Result<(), Error> {
        let url = self.api_url(&format!("blobs/{digest}"));
        let mut response = self.get(&url, None).await?;
        let tmp = tmp_path_for(dest);
        let result = async {
            let mut file = File::options()
                .write(true)
                .create_new(true)
                .open(&tmp)
                .map_err(io_err(format!("creating {}", tmp.display())))?;
            let mut hasher = Sha256::new();
            let mut count = 0u64;
            while let Some(frame) = response.body_mut().frame().await {
                let frame = frame.map_err(|e| transport(&url, e))?;
                let Ok(data) = frame.into_data() else {
                    continue;
                };
                count += data.len() as u64;
                if count > size {
                    // Stop reading an oversized blob at once.
                    return Err(Error::SizeMismatch {
                        digest: digest.to_string(),
                        expected: size,
                        actual: count,
                    });
                }
                hasher.update(&data);
                file.write_all(&data)
                    .map_err(io_err(format!("writing {}", tmp.display())))?;
                progress(data.len() as u64);
            }
            let actual = format!("sha256:{}", to_hex(&hasher.finalize()));
            check_blob(digest, size, count, &actual)?;
            file.sync_all()
                .map_err(io_err(format!("syncing {}", tmp.display())))?;
            std::fs::rename(&tmp, dest).map_err(io_err(format!("renaming into {}", dest.display())))
        }
        .await;
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    /// GET with the session's authorization, answering one auth challenge
    /// and following redirects; any status but 2xx is an error naming it.
    async fn get(&mut self, url: &str, accept: Option<&str>) -> Result<Response<Incoming>, Error> {
        self.request(hyper::Method::GET, url, accept).await
    }

    /// The digest the registry gives for a manifest reference, from a HEAD
    /// (which registries do not count as a pull); None when it gives none.
    pub(crate) async fn manifest_digest(
        &mut self,
        reference: &str,
        accept: &str,
    ) -> Result<Option<String>, Error> {
        let url = self.api_url(&format!("manifests/{reference}"));
        let response = self
            .request(hyper::Method::HEAD, &url, Some(accept))
            .await?;
        Ok(response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .filter(|d| super::blob::is_sha256_digest(d))
            .map(str::to_string))
    }

    async fn request(
        &mut self,
        method: hyper::Method,
        url: &str,
        accept: Option<&str>,
    ) -> Result<Response<Incoming>, Error> {
        let mut url = Url::parse(url).ok_or_else(|| bad_url(url))?;
        let registry_origin = url.origin();
        let mut challenged = false;
        for _ in 0..=MAX_REDIRECTS {
            // Credentials go to the registry only, never to where it
            // redirects blob downloads (signed storage URLs).
            let authorization = (url.origin() == registry_origin)
                .then(|| self.authorization.clone())
                .flatten();
            let response = self
                .send(method.clone(), &url, accept, authorization.as_deref())
                .await?;
            let status = response.status();
            if status == StatusCode::UNAUTHORIZED && !challenged && url.origin() == registry_origin
            {
                challenged = true;
                let challenge = response
                    .headers()
                    .get(hyper::header::WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                if let Some(challenge) = challenge {
                    if self.answer(&challenge).await? {
                        continue;
                    }
                }
                return Err(status_error(&url, response).await);
            }
            if status.is_redirection() {
                let location = response
                    .headers()
                    .get(hyper::header::LOCATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|l| url.join(l));
                match location {
                    Some(next) => {
                        url = next;
                        continue;
                    }
                    None => return Err(status_error(&url, response).await),
                }
            }
            if status.is_success() {
                return Ok(response);
            }
            return Err(status_error(&url, response).await);
        }
        Err(Error::Transport {
            url: url.to_string(),
            reason: format!("more than {MAX_REDIRECTS} redirects"),
        })
    }

    /// Takes up a `WWW-Authenticate` challenge; false when there is nothing
    /// to answer it with (the 401 stands).
    async fn answer(&mut self, challenge: &str) -> Result<bool, Error> {
        let (scheme, params) = parse_challenge(challenge);
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => match &self.credentials {
                Some(c) => {
                    self.authorization = Some(basic(c));
                    Ok(true)
                }
                None => Ok(false),
            },
            "bearer" => {
                let Some(realm) = params.get("realm") else {
                    return Ok(false);
                };
                let mut query = Vec::new();
                if let Some(service) = params.get("service") {
                    query.push(format!("service={}", encode(service)));
                }
                let scope = params
                    .get("scope")
                    .cloned()
                    .unwrap_or_else(|| format!("repository:{}:pull", self.repository));
                query.push(format!("scope={}", encode(&scope)));
                let sep = if realm.contains('?') { '&' } else { '?' };
                let token_url = format!("{realm}{sep}{}", query.join("&"));
                let url = Url::parse(&token_url).ok_or_else(|| bad_url(&token_url))?;
                let auth = self.credentials.as_ref().map(basic);
                let response = self
                    .send(hyper::Method::GET, &url, None, auth.as_deref())
                    .await?;
                if !response.status().is_success() {
                    return Err(status_error(&url, response).await);
                }
                let body = read_body(response, 1 << 20, &token_url).await?;
                let json: serde_json::Value =
                    serde_json::from_slice(&body).map_err(|e| Error::Invalid {
                        what: format!("token from {token_url}"),
                        reason: e.to_string(),
                    })?;
                let token = json
                    .get("token")
                    .or_else(|| json.get("access_token"))
                    .and_then(|t| t.as_str())
                    .ok_or_else(|| Error::Invalid {
                        what: format!("token from {token_url}"),
                        reason: "no token in the answer".to_string(),
                    })?;
                self.authorization = Some(format!("Bearer {token}"));
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// One request, on a kept-alive connection to the URL's origin when
    /// there is one (a closed one is replaced once).
    async fn send(
        &mut self,
        method: hyper::Method,
        url: &Url,
        accept: Option<&str>,
        authorization: Option<&str>,
    ) -> Result<Response<Incoming>, Error> {
        let origin = url.origin();
        for attempt in 0..2 {
            let mut sender = match self.connections.remove(&origin) {
                Some(s) if attempt == 0 && !s.is_closed() => s,
                _ => self.connect(url).await.map_err(|e| e.into_error(url))?,
            };
            if sender.ready().await.is_err() {
                continue;
            }
            let mut request = Request::builder()
                .method(method.clone())
                .uri(url.path.as_str())
                .header(hyper::header::HOST, url.authority.as_str())
                .header(hyper::header::USER_AGENT, USER_AGENT);
            if let Some(accept) = accept {
                request = request.header(hyper::header::ACCEPT, accept);
            }
            if let Some(auth) = authorization {
                request = request.header(hyper::header::AUTHORIZATION, auth);
            }
            let request = request
                .body(Empty::<Bytes>::new())
                .map_err(|e| transport(&url.to_string(), e))?;
            match sender.send_request(request).await {
                Ok(response) => {
                    self.connections.insert(origin, sender);
                    return Ok(response);
                }
                // A kept-alive connection the server closed: once more on a new one.
                Err(e) if attempt == 0 && e.is_canceled() => continue,
                Err(e) => return Err(transport(&url.to_string(), e)),
            }
        }
        Err(Error::Transport {
            url: url.to_string(),
            reason: "the connection closed before the request was sent".to_string(),
        })
    }

    async fn connect(&self, url: &Url) -> Result<SendRequest<Empty<Bytes>>, ConnectError> {
        let (host, port) = url.host_port();
        let tcp = TcpStream::connect((host.as_str(), port))
            .await
            .map_err(ConnectError::Tcp)?;
        let _ = tcp.set_nodelay(true);
        if !url.https {
            return handshake(tcp).await;
        }
        let name = ServerName::try_from(host.clone())
            .map_err(|e| ConnectError::Other(format!("server name {host:?}: {e}")))?;
        let tls = tokio_rustls::TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(ConnectError::Tls)?;
        handshake(tls).await
    }
}

enum ConnectError {
    Tcp(std::io::Error),
    Tls(std::io::Error),
    Other(String),
}

impl ConnectError {
    fn into_error(self, url: &Url) -> Error {
        let reason = match self {
            ConnectError::Tcp(e) => format!("connecting: {e}"),
            ConnectError::Tls(e) => format!("TLS handshake: {e}"),
            ConnectError::Other(e) => e,
        };
        Error::Transport {
            url: url.to_string(),
            reason,
        }
    }
}

fn is_certificate_error(e: &std::io::Error) -> bool {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .is_some_and(|e| {
            matches!(
                e,
                rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
            )
        })
}

async fn handshake<S>(stream: S) -> Result<SendRequest<Empty<Bytes>>, ConnectError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| ConnectError::Other(format!("HTTP handshake: {e}")))?;
    // Drives the connection on the same (current-thread) runtime.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

fn basic(c: &Credentials) -> String {
    let raw = format!("{}:{}", c.username, c.password);
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

fn bad_url(url: &str) -> Error {
    Error::Transport {
        url: url.to_string(),
        reason: "not an http(s) URL".to_string(),
    }
}

fn transport(url: &str, e: impl std::fmt::Display) -> Error {
    Error::Transport {
        url: url.to_string(),
        reason: e.to_string(),
    }
}

fn check_blob(digest: &str, size: u64, actual_size: u64, actual: &str) -> Result<(), Error> {
    if actual_size != size {
        return Err(Error::SizeMismatch {
            digest: digest.to_string(),
            expected: size,
            actual: actual_size,
        });
    }
    if actual != digest {
        return Err(Error::DigestMismatch {
            digest: digest.to_string(),
            actual: actual.to_string(),
        });
    }
    Ok(())
}

/// Reads a body whole, refusing one longer than `limit`.
async fn read_body(
    mut response: Response<Incoming>,
    limit: usize,
    url: &str,
) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    while let Some(frame) = response.body_mut().frame().await {
        let frame = frame.map_err(|e| transport(url, e))?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > limit {
                return Err(Error::Invalid {
                    what: url.to_string(),
                    reason: format!("answer longer than {limit} bytes"),
                });
            }
            out.extend_from_slice(&data);
        }
    }
    Ok(out)
}

/// The registry's answer as an error: the status, and the first of the
/// distribution API's `errors` (or the start of the body).
async fn status_error(url: &Url, response: Response<Incoming>) -> Error {
    let status = response.status();
    let mut message = String::new();
    let mut body = Vec::new();
    let mut response = response;
    while body.len() < ERROR_BODY_LIMIT {
        match response.body_mut().frame().await {
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    body.extend_from_slice(&data);
                }
            }
            _ => break,
        }
    }
    if let Ok(json) = serde_json::from_slice::<serde_json::Value>(&body) {
        if let Some(first) = json
            .get("errors")
            .and_then(|e| e.as_array())
            .and_then(|a| a.first())
        {
            let field = |k| first.get(k).and_then(|v| v.as_str()).unwrap_or_default();
            message = [field("code"), field("message")]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(": ");
        }
    } else {
        let text = String::from_utf8_lossy(&body[..body.len().min(200)]);
        message = text.trim().to_string();
    }
    Error::Registry {
        url: url.to_string(),
        status: status.to_string(),
        message,
    }
}

/// `Bearer realm="…",service="…"` into its scheme and parameters.
fn parse_challenge(header: &str) -> (String, HashMap<String, String>) {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let mut params = HashMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => value.extend(chars.next()),
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.peek().copied().filter(|c| *c != ',') {
                value.push(c);
                chars.next();
            }
        }
        params.insert(key.trim().to_ascii_lowercase(), value);
    }
    (scheme.to_string(), params)
}

/// Percent-encodes a query value (scopes keep their ':' and '/').
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~:/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A host of `https://reg.lan` with the given TLS settings.
    fn host(client: Vec<ClientCert>, skip_verify: bool) -> Host {
        let dir = tempfile::tempdir().unwrap();
        let mut h = super::super::hosts::hosts_for(dir.path(), "reg.lan")
            .unwrap()
            .remove(0);
        h.client = client;
        h.skip_verify = skip_verify;
        h
    }

    #[test]
    fn client_certificates_and_skip_verify_make_a_tls_config() {
        let dir = tempfile::tempdir().unwrap();
        let addr: std::net::SocketAddr = "127.0.0.1:5000".parse().unwrap();
        crate::tls::load_or_create(dir.path(), &addr, None).unwrap();
        let (cert, key) = (dir.path().join("server.crt"), dir.path().join("server.key"));
        let pair = ClientCert {
            cert: cert.clone(),
            key: Some(key.clone()),
        };
        let config = tls_config(&host(vec![pair.clone()], false)).unwrap();
        assert!(config.client_auth_cert_resolver.has_certs());
        assert!(!tls_config(&host(vec![], false))
            .unwrap()
            .client_auth_cert_resolver
            .has_certs());
        // A certificate and key in one file, as `client = "both.pem"` says.
        let both = dir.path().join("both.pem");
        let text = format!(
            "{}{}",
            std::fs::read_to_string(&cert).unwrap(),
            std::fs::read_to_string(&key).unwrap()
        );
        std::fs::write(&both, text).unwrap();
        let one_file = ClientCert {
            cert: both,
            key: None,
        };
        assert!(tls_config(&host(vec![one_file], true)).is_ok());
        // A certificate file without its key is refused, by name.
        let keyless = ClientCert { cert, key: None };
        let err = tls_config(&host(vec![keyless], false))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("server.crt") && err.contains("private key"),
            "{err}"
        );
    }

    #[test]
    fn challenges_parse() {
        let (scheme, p) = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#,
        );
        assert_eq!(scheme, "Bearer");
        assert_eq!(p["realm"], "https://auth.docker.io/token");
        assert_eq!(p["service"], "registry.docker.io");
        assert_eq!(p["scope"], "repository:library/nginx:pull");
        let (scheme, p) = parse_challenge(r#"Basic realm="Registry Realm""#);
        assert_eq!(
            (scheme.as_str(), p["realm"].as_str()),
            ("Basic", "Registry Realm")
        );
    }

    #[test]
    fn urls_parse_and_join() {
        let u = Url::parse("https://r.io:5000/v2/a/blobs/sha256:x").unwrap();
        assert_eq!(u.host_port(), ("r.io".to_string(), 5000));
        assert_eq!(
            u.join("https://cdn.example/b?sig=1").unwrap().to_string(),
            "https://cdn.example/b?sig=1"
        );
        assert_eq!(
            u.join("/v2/c").unwrap().to_string(),
            "https://r.io:5000/v2/c"
        );
        assert_eq!(
            u.join("d").unwrap().to_string(),
            "https://r.io:5000/v2/a/blobs/d"
        );
        let v6 = Url::parse("http://[::1]:8080/v2/").unwrap();
        assert_eq!(v6.host_port(), ("::1".to_string(), 8080));
        assert_eq!(Url::parse("https://h").unwrap().host_port().1, 443);
        assert!(Url::parse("ftp://h/").is_none());
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(
            encode("repository:a/b:pull push"),
            "repository:a/b:pull%20push"
        );
    }
}
