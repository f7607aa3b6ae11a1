//! Where a registry's images are fetched from, and with which credentials:
//! mirrors, CAs, client certificates and `skip_verify` configured the way
//! containerd's `hosts.toml` does it
//! (`<config dir>/certs.d/<registry>/hosts.toml`), and logins from the
//! Docker config file (`auths` in `$DOCKER_CONFIG/config.json` or
//! `~/.docker/config.json`).

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine;

use super::Error;

/// Docker Hub's API lives on another host than its name.
const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_API: &str = "registry-1.docker.io";
/// The key `docker login` and kubectl write Docker Hub logins under.
pub const DOCKER_HUB_AUTH_KEY: &str = "https://index.docker.io/v1/";

/// One place to fetch from: a mirror or the registry itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Host {
    /// `https` or `http`.
    pub(crate) https: bool,
    /// `host[:port]`.
    pub(crate) authority: String,
    /// The API's path prefix, `/v2` unless the config overrides it.
    pub(crate) prefix: String,
    /// Extra CA certificates (PEM files) trusted for this host.
    pub(crate) ca: Vec<PathBuf>,
    /// Client certificates offered to this host (TLS client auth).
    pub(crate) client: Vec<ClientCert>,
    /// The host's certificate chain and name are not verified
    /// (`skip_verify = true`: the user's explicit choice, as in containerd).
    pub(crate) skip_verify: bool,
    /// A loopback registry without configuration: HTTPS first, plain HTTP
    /// when the server does not speak TLS (what containerd does for localhost).
    pub(crate) http_fallback: bool,
    /// Whether tags may be resolved here (a mirror with only `pull` serves
    /// blobs and manifests by digest).
    pub(crate) resolve: bool,
}

/// A client certificate and its private key, both PEM; `key` is `None`
/// when the certificate's file holds the key too.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ClientCert {
    pub(crate) cert: PathBuf,
    pub(crate) key: Option<PathBuf>,
}

impl Host {
    pub(crate) fn url(&self, path: &str) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}{}{path}", self.authority, self.prefix)
    }
}

/// The hosts to try for `registry`, in order: configured mirrors, then the
/// registry's own server.
pub(crate) fn hosts_for(config_dir: &Path, registry: &str) -> Result<Vec<Host>, Error> {
    let dir = config_dir.join("certs.d").join(registry);
    let default_server = if registry == DOCKER_HUB {
        format!("https://{DOCKER_HUB_API}")
    } else {
        format!("https://{registry}")
    };
    // Docker's convention, which containerd keeps: `*.crt` files in the
    // host's directory are CAs for the registry itself, and `NAME.cert`
    // with `NAME.key` a client certificate.
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .map(|entries| entries.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    let with_ext = |ext: &'static str| {
        files
            .iter()
            .filter(move |p| p.extension().is_some_and(|x| x == ext))
    };
    let dir_cas: Vec<PathBuf> = with_ext("crt").cloned().collect();
    let dir_clients: Vec<ClientCert> = with_ext("cert")
        .filter(|c| c.with_extension("key").is_file())
        .map(|c| ClientCert {
            cert: c.clone(),
            key: Some(c.with_extension("key")),
        })
        .collect();
    let toml_path = dir.join("hosts.toml");
    let text = match fs::read_to_string(&toml_path) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(Error::Io {
                context: format!("reading {}", toml_path.display()),
                source: e,
            })
        }
    };
    let Some(text) = text else {
        let mut host = parse_host_url(&default_server, &toml_path)?;
        host.ca = dir_cas;
        host.client = dir_clients;
        host.http_fallback = is_loopback(registry);
        return Ok(vec![host]);
    };
    let parsed = parse_hosts_toml(&text, &toml_path)?;
    // Paths in hosts.toml are absolute or relative to its directory.
    let tls_of = |host: &mut Host, section: &HostSection| {
        host.ca.extend(section.ca.iter().map(|c| dir.join(c)));
        host.client
            .extend(section.client.iter().map(|(cert, key)| ClientCert {
                cert: dir.join(cert),
                key: (!key.is_empty()).then(|| dir.join(key)),
            }));
        host.skip_verify = section.skip_verify;
    };
    let mut hosts = Vec::new();
    for section in &parsed.hosts {
        let mut host = parse_host_url(&section.url, &toml_path)?;
        if section.override_path {
            host.prefix = url_path(&section.url);
        }
        tls_of(&mut host, section);
        let caps = section.capabilities.as_deref();
        let can = |c: &str| caps.is_none_or(|caps| caps.iter().any(|x| x == c));
        if !can("pull") {
            continue;
        }
        host.resolve = can("resolve");
        hosts.push(host);
    }
    let server = parsed.server.clone().unwrap_or(default_server);
    let mut host = parse_host_url(&server, &toml_path)?;
    host.ca = dir_cas;
    host.client = dir_clients;
    // The top-level keys are the server's.
    tls_of(&mut host, &parsed.root);
    hosts.push(host);
    Ok(hosts)
}

/// localhost, 127.0.0.0/8 and ::1, with or without a port.
pub(crate) fn is_loopback(registry: &str) -> bool {
    let host = match registry.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => registry,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn invalid(path: &Path, reason: &str) -> Error {
    Error::Invalid {
        what: path.display().to_string(),
        reason: reason.to_string(),
    }
}

fn parse_host_url(url: &str, origin: &Path) -> Result<Host, Error> {
    let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err(invalid(
            origin,
            &format!("host {url:?} must start with https:// or http://"),
        ));
    };
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() {
        return Err(invalid(origin, &format!("host {url:?} has no host name")));
    }
    let path = url_path(url);
    let prefix = if path.ends_with("/v2") {
        path
    } else {
        format!("{path}/v2")
    };
    Ok(Host {
        https,
        authority: authority.to_string(),
        prefix,
        ca: Vec::new(),
        client: Vec::new(),
        skip_verify: false,
        http_fallback: false,
        resolve: true,
    })
}

/// The path of a URL without its trailing slash ("" for none).
fn url_path(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    match rest.find('/') {
        Some(i) => rest[i..].trim_end_matches('/').to_string(),
        None => String::new(),
    }
}

#[derive(Debug, Default, PartialEq)]
struct HostsToml {
    server: Option<String>,
    /// The top-level keys, which configure the server (its `url` unused).
    root: HostSection,
    hosts: Vec<HostSection>,
}

#[derive(Debug, Default, PartialEq)]
struct HostSection {
    url: String,
    capabilities: Option<Vec<String>>,
    ca: Vec<String>,
    /// (certificate, key) pairs; an empty key: the certificate's file holds it.
    client: Vec<(String, String)>,
    skip_verify: bool,
    override_path: bool,
}

/// The part of TOML hosts.toml files use: top-level `server`, then
/// `[host."URL"]` tables of strings, booleans and string arrays.
fn parse_hosts_toml(text: &str, path: &Path) -> Result<HostsToml, Error> {
    let mut out = HostsToml::default();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let at = |reason: &str| invalid(path, &format!("line {}: {reason}", n + 1));
        if let Some(header) = line.strip_prefix('[') {
            let header = header
                .strip_suffix(']')
                .ok_or_else(|| at("unterminated table header"))?
                .trim();
            let url = header
                .strip_prefix("host.")
                .map(str::trim)
                .and_then(|u| u.strip_prefix('"'))
                .and_then(|u| u.strip_suffix('"'))
                .ok_or_else(|| at("only [host.\"URL\"] tables are understood"))?;
            out.hosts.push(HostSection {
                url: url.to_string(),
                ..Default::default()
            });
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| at("expected key = value"))?;
        let (key, value) = (key.trim(), strip_comment(value.trim()));
        let string = || parse_string(value).ok_or_else(|| at("expected a quoted string"));
        let strings = || {
            if value.starts_with('[') {
                parse_string_array(value).ok_or_else(|| at("expected an array of strings"))
            } else {
                string().map(|s| vec![s])
            }
        };
        let boolean = || match value {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(at("expected true or false")),
        };
        if out.hosts.is_empty() && key == "server" {
            out.server = Some(string()?);
            continue;
        }
        let section = match out.hosts.last_mut() {
            Some(host) => host,
            None => &mut out.root,
        };
        match key {
            "capabilities" => section.capabilities = Some(strings()?),
            "ca" => section.ca = strings()?,
            "client" => {
                section.client = parse_client(value).ok_or_else(|| {
                    at("expected client = \"PATH\", [\"PATH\", ...] or [[\"CERT\", \"KEY\"], ...]")
                })?
            }
            "skip_verify" => section.skip_verify = boolean()?,
            "override_path" => section.override_path = boolean()?,
            _ => {}
        }
    }
    Ok(out)
}

fn strip_comment(value: &str) -> &str {
    // A '#' outside quotes starts a comment.
    let mut quoted = false;
    for (i, c) in value.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '#' if !quoted => return value[..i].trim(),
            _ => {}
        }
    }
    value
}

fn parse_string(value: &str) -> Option<String> {
    let inner = value.strip_prefix('"')?.strip_suffix('"')?;
    (!inner.contains('"')).then(|| inner.to_string())
}

/// containerd's three spellings of `client`: one file holding certificate
/// and key, an array of such files, or an array of [certificate, key]
/// pairs (an empty key: the certificate's file holds it).
fn parse_client(value: &str) -> Option<Vec<(String, String)>> {
    if !value.starts_with('[') {
        return parse_string(value).map(|f| vec![(f, String::new())]);
    }
    let inner = value.strip_prefix('[')?.strip_suffix(']')?.trim();
    if !inner.starts_with('[') {
        let files = parse_string_array(value)?;
        return Some(files.into_iter().map(|f| (f, String::new())).collect());
    }
    let mut pairs = Vec::new();
    let mut rest = inner;
    while !rest.is_empty() {
        let end = rest.find(']')?;
        let pair = parse_string_array(&rest[..=end])?;
        match pair.as_slice() {
            [cert] => pairs.push((cert.clone(), String::new())),
            [cert, key] => pairs.push((cert.clone(), key.clone())),
            _ => return None,
        }
        rest = rest[end + 1..].trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
    Some(pairs)
}

fn parse_string_array(value: &str) -> Option<Vec<String>> {
    let inner = value.strip_prefix('[')?.strip_suffix(']')?;
    inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(parse_string)
        .collect()
}

/// A user name and password for a registry.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Credentials {
    pub(crate) username: String,
    pub(crate) password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, ***)", self.username)
    }
}

/// The Docker config file podlab reads logins from: `$DOCKER_CONFIG/config.json`
/// or `$HOME/.docker/config.json`.
pub fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker").join("config.json"))
}

/// Logins from Docker configs (the config file, pull secrets), looked up
/// as the kubelet looks up image pull credentials: by the image's host
/// (exact, or a `*.` glob per dot-separated part; the port must agree) and
/// by path prefix, the most specific key first.
#[derive(Clone, Debug, Default)]
pub(crate) struct Keyring {
    entries: Vec<KeyEntry>,
}

#[derive(Clone, Debug)]
struct KeyEntry {
    /// Lowercase host with its port, if the key names one.
    host: String,
    /// The key's path without slashes at either end ("" for none).
    path: String,
    credentials: Credentials,
    /// Which source added it: earlier sources win over later ones.
    source: usize,
}

/// A key as written (`host`, `host/path`, `https://host/v1/`) into host
/// and path.
fn split_key(key: &str) -> (String, String) {
    let rest = key
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host = match host.to_ascii_lowercase().as_str() {
        "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB.to_string(),
        h => h.to_string(),
    };
    // The API version of a URL key is no part of a repository's path.
    let path = path.trim_matches('/');
    let path = ["v1", "v2"]
        .iter()
        .find_map(|v| {
            path.strip_prefix(v)
                .filter(|r| r.is_empty() || r.starts_with('/'))
        })
        .unwrap_or(path)
        .trim_matches('/');
    (host, path.to_string())
}

/// `*` in a host pattern part stands for any run of characters.
fn glob_part(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, tail)) => {
            text.len() >= head.len()
                && text.starts_with(head)
                && (0..=text.len() - head.len())
                    .filter(|i| text.is_char_boundary(head.len() + i))
                    .any(|i| glob_part(tail, &text[head.len() + i..]))
        }
    }
}

/// Whether a key's host names `registry` (host[:port]).
fn host_matches(pattern: &str, registry: &str) -> bool {
    let split = |h: &str| -> (String, String) {
        match h.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => {
                (host.to_string(), port.to_string())
            }
            _ => (h.to_string(), String::new()),
        }
    };
    let (p_host, p_port) = split(pattern);
    let (r_host, r_port) = split(&registry.to_ascii_lowercase());
    if p_port != r_port {
        return false;
    }
    let p_parts: Vec<&str> = p_host.split('.').collect();
    let r_parts: Vec<&str> = r_host.split('.').collect();
    p_parts.len() == r_parts.len() && p_parts.iter().zip(&r_parts).all(|(p, r)| glob_part(p, r))
}

/// Whether a key's path is a prefix of the repository, step by step.
fn path_matches(prefix: &str, repository: &str) -> bool {
    prefix.is_empty()
        || repository == prefix
        || repository
            .strip_prefix(prefix)
            .is_some_and(|r| r.starts_with('/'))
}

impl Keyring {
    /// Adds the logins of one Docker config: `{"auths": {...}}`, or the
    /// bare map of the older `.dockercfg` format. `what` names the source
    /// in errors (never a value of it).
    pub(crate) fn add_config(
        &mut self,
        config: &serde_json::Value,
        what: &str,
    ) -> Result<(), Error> {
        let source = self.entries.iter().map(|e| e.source + 1).max().unwrap_or(0);
        let auths = match config.get("auths") {
            Some(a) => a,
            None if config.get("credsStore").is_some() || config.get("credHelpers").is_some() => {
                return Ok(())
            }
            None => config,
        };
        let Some(auths) = auths.as_object() else {
            return Ok(());
        };
        for (key, entry) in auths {
            let Some(credentials) = entry_credentials(entry, &format!("{what}: auths.{key}"))?
            else {
                continue;
            };
            let (host, path) = split_key(key);
            self.entries.push(KeyEntry {
                host,
                path,
                credentials,
                source,
            });
        }
        Ok(())
    }

    /// Adds the logins of a Docker config file; a missing file adds none.
    pub(crate) fn add_file(&mut self, path: &Path) -> Result<(), Error> {
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => {
                return Err(Error::Io {
                    context: format!("reading {}", path.display()),
                    source: e,
                })
            }
        };
        let file: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| Error::Invalid {
                what: path.display().to_string(),
                reason: e.to_string(),
            })?;
        self.add_config(&file, &path.display().to_string())
    }

    /// Every login that applies to `registry`/`repository`, to be tried in
    /// this order: earlier sources first, within one the longest path and
    /// exact hosts before globs.
    pub(crate) fn lookup(&self, registry: &str, repository: &str) -> Vec<Credentials> {
        let mut found: Vec<&KeyEntry> = self
            .entries
            .iter()
            .filter(|e| host_matches(&e.host, registry) && path_matches(&e.path, repository))
            .collect();
        found.sort_by_key(|e| {
            (
                e.source,
                std::cmp::Reverse(e.path.len()),
                e.host.contains('*'),
            )
        });
        let mut out: Vec<Credentials> = Vec::new();
        for e in found {
            if !out.contains(&e.credentials) {
                out.push(e.credentials.clone());
            }
        }
        out
    }
}

/// The user and password of one `auths` entry (`auth` as base64
/// `user:password`, or `username` and `password`); None when it has neither.
fn entry_credentials(entry: &serde_json::Value, what: &str) -> Result<Option<Credentials>, Error> {
    let bad = |reason: &str| Error::Invalid {
        what: what.to_string(),
        reason: reason.to_string(),
    };
    if let Some(auth) = entry
        .get("auth")
        .and_then(|a| a.as_str())
        .filter(|a| !a.is_empty())
    {
        // The decoding error names a position, never the bytes.
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|e| bad(&format!("auth is not base64: {e}")))?;
        let text = String::from_utf8(decoded).map_err(|_| bad("auth is not UTF-8"))?;
        let (user, pass) = text
            .split_once(':')
            .ok_or_else(|| bad("auth must encode user:password"))?;
        return Ok(Some(Credentials {
            username: user.to_string(),
            password: pass.to_string(),
        }));
    }
    let field = |k: &str| entry.get(k).and_then(|v| v.as_str()).map(str::to_string);
    Ok(match (field("username"), field("password")) {
        (Some(username), Some(password)) => Some(Credentials { username, password }),
        _ => None,
    })
}

/// The login for `registry` in a Docker config file, if any.
#[cfg(test)]
pub(crate) fn credentials_for(
    config: Option<&Path>,
    registry: &str,
) -> Result<Option<Credentials>, Error> {
    let mut keyring = Keyring::default();
    if let Some(path) = config {
        keyring.add_file(path)?;
    }
    Ok(keyring.lookup(registry, "").into_iter().next())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, rel: &str, text: &str) {
        let p = dir.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    #[test]
    fn default_hosts() {
        let dir = tempfile::tempdir().unwrap();
        let hub = hosts_for(dir.path(), "docker.io").unwrap();
        assert_eq!(hub.len(), 1);
        assert_eq!(
            hub[0].url("/library/nginx/manifests/latest"),
            "https://registry-1.docker.io/v2/library/nginx/manifests/latest"
        );
        assert!(!hub[0].http_fallback);
        let local = hosts_for(dir.path(), "127.0.0.1:5000").unwrap();
        assert!(local[0].https && local[0].http_fallback);
        assert!(hosts_for(dir.path(), "localhost:5000").unwrap()[0].http_fallback);
        assert!(!hosts_for(dir.path(), "quay.io").unwrap()[0].http_fallback);
    }

    #[test]
    fn hosts_toml_mirrors_then_server() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "certs.d/docker.io/hosts.toml",
            r#"
# CI's mirror
server = "https://registry-1.docker.io"

[host."http://mirror.local:5000"]
  capabilities = ["pull", "resolve"]   # both

[host."https://pull-only.example/cache/v2"]
  capabilities = ["pull"]
  ca = "mirror-ca.pem"
  override_path = true

[host."https://push.example"]
  capabilities = ["push"]
"#,
        );
        let hosts = hosts_for(dir.path(), "docker.io").unwrap();
        assert_eq!(hosts.len(), 3, "{hosts:?}");
        assert_eq!(hosts[0].url("/x"), "http://mirror.local:5000/v2/x");
        assert!(!hosts[0].https && hosts[0].resolve);
        assert_eq!(hosts[1].url("/x"), "https://pull-only.example/cache/v2/x");
        assert!(!hosts[1].resolve);
        assert_eq!(
            hosts[1].ca,
            vec![dir.path().join("certs.d/docker.io/mirror-ca.pem")]
        );
        assert_eq!(hosts[2].authority, "registry-1.docker.io");
    }

    #[test]
    fn hosts_toml_http_server_is_the_insecure_listing() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "certs.d/reg.lan:5000/hosts.toml",
            "server = \"http://reg.lan:5000\"\n",
        );
        let hosts = hosts_for(dir.path(), "reg.lan:5000").unwrap();
        assert_eq!(hosts.len(), 1);
        assert!(!hosts[0].https);
    }

    #[test]
    fn hosts_toml_errors_name_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "certs.d/a.io/hosts.toml", "[plugins]\n");
        let err = hosts_for(dir.path(), "a.io").unwrap_err().to_string();
        assert!(
            err.contains("hosts.toml") && err.contains("line 1"),
            "{err}"
        );
        write(
            dir.path(),
            "certs.d/b.io/hosts.toml",
            "[host.\"https://m\"]\nclient = [[\"a\", \"b\", \"c\"]]\n",
        );
        let err = hosts_for(dir.path(), "b.io").unwrap_err().to_string();
        assert!(err.contains("line 2") && err.contains("client"), "{err}");
    }

    #[test]
    fn hosts_toml_skip_verify_and_client_certificates() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "certs.d/reg.lan/hosts.toml",
            r#"
server = "https://reg.lan"
ca = "server-ca.pem"
client = "/etc/certs/server-client.pem"
skip_verify = false

[host."https://m1.lan"]
  skip_verify = true
  client = ["one.pem", "/abs/two.pem"]

[host."https://m2.lan"]
  client = [["c.cert", "c.key"], ["both.pem", ""]]
"#,
        );
        // Docker's convention beside it: a client pair, and a lone .cert.
        write(dir.path(), "certs.d/reg.lan/dir.cert", "");
        write(dir.path(), "certs.d/reg.lan/dir.key", "");
        write(dir.path(), "certs.d/reg.lan/lonely.cert", "");
        let d = dir.path().join("certs.d/reg.lan");
        let hosts = hosts_for(dir.path(), "reg.lan").unwrap();
        assert_eq!(hosts.len(), 3, "{hosts:?}");
        let pem = |p: &str| ClientCert {
            cert: d.join(p),
            key: None,
        };
        assert!(hosts[0].skip_verify);
        assert_eq!(hosts[0].client, vec![pem("one.pem"), pem("/abs/two.pem")]);
        assert!(!hosts[1].skip_verify);
        assert_eq!(
            hosts[1].client,
            vec![
                ClientCert {
                    cert: d.join("c.cert"),
                    key: Some(d.join("c.key")),
                },
                pem("both.pem"),
            ]
        );
        let server = &hosts[2];
        assert_eq!(server.authority, "reg.lan");
        assert!(!server.skip_verify);
        assert_eq!(server.ca, vec![d.join("server-ca.pem")]);
        assert_eq!(
            server.client,
            vec![
                ClientCert {
                    cert: d.join("dir.cert"),
                    key: Some(d.join("dir.key")),
                },
                pem("/etc/certs/server-client.pem"),
            ]
        );
        // Top-level skip_verify is the server's.
        write(
            dir.path(),
            "certs.d/lab.lan/hosts.toml",
            "server = \"https://lab.lan:8443\"\nskip_verify = true\n",
        );
        let lab = hosts_for(dir.path(), "lab.lan").unwrap();
        assert!(lab[0].skip_verify && lab[0].client.is_empty());
    }

    #[test]
    fn client_spellings() {
        assert_eq!(
            parse_client("\"a.pem\""),
            Some(vec![("a.pem".into(), "".into())])
        );
        assert_eq!(
            parse_client("[\"a.pem\", \"b.pem\"]"),
            Some(vec![
                ("a.pem".into(), "".into()),
                ("b.pem".into(), "".into())
            ])
        );
        assert_eq!(
            parse_client("[[\"c\", \"k\"],[\"p\", \"\"] ]"),
            Some(vec![("c".into(), "k".into()), ("p".into(), "".into())])
        );
        assert_eq!(parse_client("[[\"c\", \"k\", \"x\"]]"), None);
        assert_eq!(parse_client("[[\"c\""), None);
        assert_eq!(parse_client("true"), None);
    }

    #[test]
    fn loopback_names() {
        for r in [
            "localhost",
            "localhost:5000",
            "127.0.0.1:1",
            "127.3.0.1",
            "[::1]:80",
        ] {
            assert!(is_loopback(r), "{r}");
        }
        for r in ["docker.io", "10.0.0.1:5000", "localhost.example"] {
            assert!(!is_loopback(r), "{r}");
        }
    }

    #[test]
    fn docker_config_auths() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        fs::write(
            &path,
            serde_json::json!({"auths": {
                "https://index.docker.io/v1/": {"auth": b64("hub:secret")},
                "127.0.0.1:5000": {"auth": b64("me:pa:ss")},
                "https://ghcr.io": {"username": "u", "password": "p"},
            }})
            .to_string(),
        )
        .unwrap();
        let get = |r| credentials_for(Some(&path), r).unwrap();
        let c = get("docker.io").unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.as_str()),
            ("hub", "secret")
        );
        let c = get("127.0.0.1:5000").unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("me", "pa:ss"));
        assert_eq!(get("ghcr.io").unwrap().username, "u");
        assert!(get("quay.io").is_none());
        assert!(
            credentials_for(Some(&dir.path().join("none.json")), "quay.io")
                .unwrap()
                .is_none()
        );
        assert!(!format!("{c:?}").contains("pa:ss"));
    }

    #[test]
    fn keyring_matches_hosts_and_paths_as_the_kubelet_does() {
        let login = |u: &str| serde_json::json!({"username": u, "password": "pw"});
        let mut keyring = Keyring::default();
        keyring
            .add_config(
                &serde_json::json!({"auths": {
                    "https://registry.example.com/v1/": login("url"),
                    "registry.example.com/team": login("team"),
                    "*.example.com": login("glob"),
                    "127.0.0.1:5000": login("port"),
                }}),
                "secret 1",
            )
            .unwrap();
        // A second source: the Docker config file, tried after the secrets.
        keyring
            .add_config(
                &serde_json::json!({"auths": {"registry.example.com": login("file")}}),
                "file",
            )
            .unwrap();
        let users = |registry: &str, repo: &str| -> Vec<String> {
            keyring
                .lookup(registry, repo)
                .into_iter()
                .map(|c| c.username)
                .collect()
        };
        // Exact host, the longest path first, then the glob, then the file.
        assert_eq!(
            users("registry.example.com", "team/app"),
            ["team", "url", "glob", "file"]
        );
        // A path prefix counts by whole steps only.
        assert_eq!(
            users("registry.example.com", "teamwork/app"),
            ["url", "glob", "file"]
        );
        assert_eq!(users("other.example.com", "app"), ["glob"]);
        // A glob stands for one part of the name, and the port must agree.
        assert!(users("a.b.example.com", "app").is_empty());
        assert_eq!(users("127.0.0.1:5000", "app"), ["port"]);
        assert!(users("127.0.0.1", "app").is_empty());
        assert!(users("127.0.0.1:5001", "app").is_empty());
        assert!(users("quay.io", "app").is_empty());
        // The older .dockercfg format: the bare map of logins.
        let mut old = Keyring::default();
        old.add_config(&serde_json::json!({"quay.io": login("old")}), "dockercfg")
            .unwrap();
        assert_eq!(old.lookup("quay.io", "x/y").len(), 1);
        assert!(glob_part("reg*.example", "registry.example"));
        assert!(!glob_part("reg*x", "registry"));
    }
}
