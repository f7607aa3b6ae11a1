//! `podlab serve`'s credentials (and the pull tests' registry's): a CA
//! made on first start, a server certificate for the listening address
//! signed by it at each start, and one client certificate (the admin) for
//! the kubeconfig. Keys and certificates live under `<state root>/serve/`,
//! mode 0600; a client is authenticated by presenting a certificate the CA
//! signed.

use std::fs;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("generating certificates")]
    Generate(#[from] rcgen::Error),
    #[error("TLS setup")]
    Tls(#[from] rustls::Error),
    #[error("{path}: not a PEM {what}")]
    Pem { path: PathBuf, what: &'static str },
    #[error("client verifier: {0}")]
    Verifier(String),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The CA's subject; the same every start, so the CA key alone rebuilds the issuer.
const CA_NAME: &str = "podlab-ca";
/// The client identity the kubeconfig carries (the group of cluster admins).
const ADMIN_NAME: &str = "podlab-admin";
const ADMIN_GROUP: &str = "system:masters";

/// The files under `<state root>/serve/`.
pub struct Credentials {
    pub dir: PathBuf,
}

impl Credentials {
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }
    fn ca_key(&self) -> PathBuf {
        self.dir.join("ca.key")
    }
    fn server_cert(&self) -> PathBuf {
        self.dir.join("server.crt")
    }
    fn server_key(&self) -> PathBuf {
        self.dir.join("server.key")
    }
    pub fn admin_cert(&self) -> PathBuf {
        self.dir.join("admin.crt")
    }
    pub fn admin_key(&self) -> PathBuf {
        self.dir.join("admin.key")
    }
}

/// Writes `bytes` to `path` with mode 0600 (replacing it atomically).
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    crate::atomic_file::write_private(path, bytes).map_err(io_err(path))
}

fn ca_params() -> Result<CertificateParams, Error> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, CA_NAME);
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    p.not_after = rcgen::date_time_ymd(2099, 1, 1);
    Ok(p)
}

/// The SANs of the server certificate: loopback names, the address it
/// listens on (an unspecified address adds the loopback ones only) and the
/// node's name when it has one.
fn server_names(address: &SocketAddr, node_name: Option<&str>) -> Vec<String> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    let ip = address.ip();
    if !ip.is_unspecified() && !names.contains(&ip.to_string()) {
        names.push(ip.to_string());
    }
    names.extend(node_name.map(String::from));
    names
}

/// Loads the CA and admin credentials (making them on first start) and
/// signs a fresh server certificate for `address` (and `node_name`).
pub fn load_or_create(
    dir: &Path,
    address: &SocketAddr,
    node_name: Option<&str>,
) -> Result<Credentials, Error> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io_err(dir))?;
    let creds = Credentials {
        dir: dir.to_path_buf(),
    };
    let first = !creds.ca_key().exists() || !creds.ca_cert().exists();
    let ca_key = if first {
        let key = KeyPair::generate()?;
        let cert = ca_params()?.self_signed(&key)?;
        write_private(&creds.ca_key(), key.serialize_pem().as_bytes())?;
        write_private(&creds.ca_cert(), cert.pem().as_bytes())?;
        key
    } else {
        let pem = fs::read_to_string(creds.ca_key()).map_err(io_err(&creds.ca_key()))?;
        KeyPair::from_pem(&pem)?
    };
    let issuer = Issuer::new(ca_params()?, ca_key);
    if first || !creds.admin_cert().exists() || !creds.admin_key().exists() {
        let key = KeyPair::generate()?;
        let mut p = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, ADMIN_NAME);
        dn.push(DnType::OrganizationName, ADMIN_GROUP);
        p.distinguished_name = dn;
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        p.not_after = rcgen::date_time_ymd(2099, 1, 1);
        let cert = p.signed_by(&key, &issuer)?;
        write_private(&creds.admin_key(), key.serialize_pem().as_bytes())?;
        write_private(&creds.admin_cert(), cert.pem().as_bytes())?;
    }
    // The server certificate names the current address: made each start.
    let key = KeyPair::generate()?;
    let mut p = CertificateParams::new(server_names(address, node_name))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "podlab-apiserver");
    p.distinguished_name = dn;
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.not_after = rcgen::date_time_ymd(2099, 1, 1);
    let cert = p.signed_by(&key, &issuer)?;
    write_private(&creds.server_key(), key.serialize_pem().as_bytes())?;
    write_private(&creds.server_cert(), cert.pem().as_bytes())?;
    Ok(creds)
}

fn read_cert(path: &Path) -> Result<CertificateDer<'static>, Error> {
    CertificateDer::from_pem_file(path).map_err(|_| Error::Pem {
        path: path.to_path_buf(),
        what: "certificate",
    })
}

/// The rustls server: HTTP/1.1 only, client certificates verified against
/// the CA when given (a client without one is answered 401, not cut off,
/// so kubectl can say why).
pub fn server_config(creds: &Credentials) -> Result<Arc<rustls::ServerConfig>, Error> {
    // ring over aws-lc-rs keeps the build lean (no cmake); rustls marks it
    // deprecated only for lacking post-quantum key exchange, which kubectl
    // does not need.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(read_cert(&creds.ca_cert())?)?;
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()
    .map_err(|e| Error::Verifier(e.to_string()))?;
    let key = PrivateKeyDer::from_pem_file(creds.server_key()).map_err(|_| Error::Pem {
        path: creds.server_key(),
        what: "private key",
    })?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![read_cert(&creds.server_cert())?], key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

pub(super) fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The kubeconfig for the admin client: the CA, the server's URL and the
/// client certificate inline, so the file alone is enough (mode 0600).
pub fn kubeconfig(creds: &Credentials, server: &str) -> Result<String, Error> {
    let read = |p: PathBuf| fs::read(&p).map_err(io_err(&p)).map(|b| base64(&b));
    Ok(format!(
        "apiVersion: v1
kind: Config
clusters:
- name: podlab
  cluster:
    server: {server}
    certificate-authority-data: {ca}
users:
- name: podlab-admin
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
contexts:
- name: podlab
  context:
    cluster: podlab
    user: podlab-admin
    namespace: default
current-context: podlab
",
        ca = read(creds.ca_cert())?,
        cert = read(creds.admin_cert())?,
        key = read(creds.admin_key())?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard_alphabet_and_padding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn the_server_is_named_by_loopback_its_address_and_the_node() {
        let any: SocketAddr = "0.0.0.0:6443".parse().unwrap();
        assert_eq!(server_names(&any, None), ["localhost", "127.0.0.1", "::1"]);
        let one: SocketAddr = "10.0.0.5:6443".parse().unwrap();
        assert_eq!(
            server_names(&one, Some("node-a")),
            ["localhost", "127.0.0.1", "::1", "10.0.0.5", "node-a"]
        );
    }

    #[test]
    fn credentials_are_made_once_private_and_reused() {
        use std::os::unix::fs::MetadataExt;
        let tmp = tempfile::tempdir().unwrap();
        let addr: SocketAddr = "127.0.0.1:6443".parse().unwrap();
        let c = load_or_create(tmp.path(), &addr, Some("node-a")).unwrap();
        let ca = fs::read(c.ca_cert()).unwrap();
        for f in [
            "ca.key",
            "ca.crt",
            "server.key",
            "server.crt",
            "admin.key",
            "admin.crt",
        ] {
            let mode = fs::metadata(tmp.path().join(f)).unwrap().mode() & 0o777;
            assert_eq!(mode, 0o600, "{f}");
        }
        let again = load_or_create(tmp.path(), &addr, Some("node-a")).unwrap();
        assert_eq!(fs::read(again.ca_cert()).unwrap(), ca);
        server_config(&again).unwrap();
        let kc = kubeconfig(&again, "https://127.0.0.1:6443").unwrap();
        assert!(kc.contains("client-certificate-data: "));
    }
}
