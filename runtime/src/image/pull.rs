//! Pulling an image from a registry into the store, as the kubelet has its
//! runtime do: the reference normalised, the host's platform picked from
//! an index, every blob checked against its digest and size before it is
//! stored, blobs the store already has not fetched again, and concurrent
//! pulls of one reference coalesced by a lock file.
//!
//! The HTTP client needs a tokio runtime, whose resolver starts threads.
//! The shim forks for namespace work and must stay single-threaded, so a
//! pull never runs in the shim: it runs in a `podlab image pull` process
//! (typed by a user, or re-exec'd by the shim as a helper it reaps).

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::fcntl::{Flock, FlockArg};
use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest, MediaType};

use super::blob::{digest_hex, io_err, is_sha256_digest, sha256_digest};
use super::hosts::{hosts_for, Host, Keyring};
use super::registry::Registry;
use super::store::{
    check_layer_count, pick_platform, Resolved, DOCKER_LIST, DOCKER_MANIFEST, JSON_LIMIT,
    OCI_INDEX, OCI_MANIFEST,
};
use super::unpack::compression_of;
use super::{Error, ImageInfo, ImageStore, Reference};

/// What a manifest request accepts: single manifests and indexes of both
/// the OCI and the Docker formats.
const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.list.v2+json, \
    application/vnd.oci.image.manifest.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json";
/// Directory under the store root with one lock file (and one staging
/// directory) per reference being pulled.
const PULLS_DIR: &str = "pulls";
/// Blobs fetched at once (containerd's default too).
const PARALLEL_FETCHES: usize = 3;
/// How often a commit may find a layer collected under it before giving up.
const COMMIT_ATTEMPTS: usize = 3;

/// Where registry settings come from.
#[derive(Clone, Debug)]
pub struct PullOptions {
    /// Holds `certs.d/<registry>/hosts.toml` (mirrors, CAs, plain HTTP).
    pub registry_config: PathBuf,
    /// A Docker config file with logins (`auths`).
    pub docker_config: Option<PathBuf>,
    /// Docker configs from a pod's image pull secrets, in the order the pod
    /// lists them: their logins are tried before the config file's.
    pub secret_configs: Vec<serde_json::Value>,
}

impl PullOptions {
    /// The logins that may apply: the pull secrets' first, then the file's.
    fn keyring(&self) -> Result<Keyring, Error> {
        let mut keyring = Keyring::default();
        for (i, config) in self.secret_configs.iter().enumerate() {
            keyring.add_config(config, &format!("image pull secret {}", i + 1))?;
        }
        if let Some(path) = &self.docker_config {
            keyring.add_file(path)?;
        }
        Ok(keyring)
    }
}

/// What a pull reports as it goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// The manifest is known: how many layers, how many of them (and how
    /// many bytes) must be fetched.
    Resolved {
        layers: usize,
        missing: usize,
        bytes: u64,
    },
    /// Bytes of a layer arrived.
    Bytes(u64),
    /// One more layer is complete.
    LayerDone,
}

impl ImageStore {
    /// Pulls `reference` into the store under its normalised name and
    /// returns what it now names.
    pub fn pull(
        &self,
        reference: &str,
        options: &PullOptions,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<ImageInfo, Error> {
        let wanted = Reference::parse(reference)?;
        let name = wanted.to_string();
        let pulls = self.root().join(PULLS_DIR);
        fs::create_dir_all(&pulls).map_err(io_err(format!("creating {}", pulls.display())))?;
        let key = digest_hex(&sha256_digest(name.as_bytes()))?.to_string();
        // One pull per reference at a time: a second waits here, then finds
        // the blobs in the store and fetches only the manifest.
        let _lock = lock_file(&pulls.join(format!("{key}.lock")))?;
        let staging = pulls.join(&key);
        // A crashed pull's leftovers are stale: we hold the lock.
        let _ = fs::remove_dir_all(&staging);
        fs::create_dir(&staging).map_err(io_err(format!("creating {}", staging.display())))?;

        let hosts = hosts_for(&options.registry_config, &wanted.registry)?;
        // Each login that applies is tried in turn (a 401 moves on to the
        // next, as the kubelet does); none means an anonymous pull.
        let mut logins: Vec<Option<_>> = options
            .keyring()?
            .lookup(&wanted.registry, &wanted.repository)
            .into_iter()
            .map(Some)
            .collect();
        if logins.is_empty() {
            logins.push(None);
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(io_err("starting the HTTP client's runtime"))?;
        let result = runtime.block_on(async {
            let mut last = None;
            for host in hosts {
                if wanted.digest.is_none() && !host.resolve {
                    continue;
                }
                for credentials in &logins {
                    let mut registry =
                        Registry::new(host.clone(), &wanted.repository, credentials.clone())?;
                    match self
                        .pull_from(&mut registry, &wanted, &name, &staging, progress)
                        .await
                    {
                        Ok(info) => return Ok(info),
                        Err(e) => {
                            let denied = e.is_unauthorized();
                            last = Some(e);
                            // Another login may be let in; any other
                            // failure is the host's: a mirror that fails
                            // leaves the next host to try.
                            if !denied {
                                break;
                            }
                        }
                    }
                }
            }
            Err(last.unwrap_or_else(|| Error::Invalid {
                what: wanted.registry.clone(),
                reason: "no configured host may resolve tags".to_string(),
            }))
        });
        // Give the runtime's resolver threads no time to linger.
        runtime.shutdown_timeout(Duration::from_millis(100));
        let _ = fs::remove_dir_all(&staging);
        result
    }

    async fn pull_from(
        &self,
        registry: &mut Registry,
        wanted: &Reference,
        name: &str,
        staging: &Path,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<ImageInfo, Error> {
        registry.settle_scheme().await?;
        // A tag that still points where it did needs no manifest GET (which
        // registries count as a pull; imagePullPolicy Always asks each start).
        if let Some(tag) = wanted.tag.as_ref().filter(|_| wanted.digest.is_none()) {
            let now = registry.manifest_digest(tag, ACCEPT).await.ok().flatten();
            if now.is_some() && now == self.source_digest(name)? {
                if let Some(info) = self.lookup(name)? {
                    return Ok(info);
                }
            }
        }
        let resolved = resolve(registry, wanted).await?;
        let layers = resolved.manifest.layers().clone();
        let missing: Vec<&Descriptor> = layers
            .iter()
            .filter(|l| {
                self.blob_path(l.digest().as_ref())
                    .map_or(true, |p| !p.exists())
            })
            .collect();
        progress(&Progress::Resolved {
            layers: layers.len(),
            missing: missing.len(),
            bytes: missing.iter().map(|l| l.size()).sum(),
        });
        let mut fetch = missing;
        for _ in 0..COMMIT_ATTEMPTS {
            let jobs = fetch
                .iter()
                .map(|l| {
                    let digest = l.digest().to_string();
                    Ok((staging.join(digest_hex(&digest)?), digest, l.size()))
                })
                .collect::<Result<Vec<_>, Error>>()?;
            fetch_blobs(registry, jobs, progress).await?;
            match self.commit_pull(name, &resolved, staging)? {
                Ok(info) => return Ok(info),
                Err(collected) => {
                    fetch = layers
                        .iter()
                        .filter(|l| l.digest().to_string() == collected)
                        .collect();
                }
            }
        }
        Err(Error::Invalid {
            what: name.to_string(),
            reason: "its layers kept being removed from the store while it was pulled".to_string(),
        })
    }
}

/// Fetches blobs into their staging files, [`PARALLEL_FETCHES`] at a time
/// (as containerd does), each on its own connection; progress comes back
/// over a channel to the caller's callback.
async fn fetch_blobs(
    registry: &Registry,
    jobs: Vec<(PathBuf, String, u64)>,
    progress: &mut dyn FnMut(&Progress),
) -> Result<(), Error> {
    let jobs: Vec<_> = jobs
        .into_iter()
        .filter(|(dest, ..)| !dest.exists())
        .collect();
    let queue = std::sync::Arc::new(std::sync::Mutex::new(jobs));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..PARALLEL_FETCHES {
        let mut session = registry.fork();
        let queue = queue.clone();
        let tx = tx.clone();
        workers.spawn(async move {
            loop {
                let job = queue.lock().map_or(None, |mut q| q.pop());
                let Some((dest, digest, size)) = job else {
                    return Ok::<(), Error>(());
                };
                let bytes = tx.clone();
                session
                    .blob_to_file(&digest, size, &dest, &mut move |n| {
                        let _ = bytes.send(Progress::Bytes(n));
                    })
                    .await?;
                let _ = tx.send(Progress::LayerDone);
            }
        });
    }
    drop(tx);
    while let Some(p) = rx.recv().await {
        progress(&p);
    }
    while let Some(done) = workers.join_next().await {
        done.map_err(|e| Error::Invalid {
            what: "a blob download".to_string(),
            reason: e.to_string(),
        })??;
    }
    Ok(())
}

/// Removes what crashed pulls left under `<root>/pulls`: a staging
/// directory whose lock nobody holds (a running pull keeps its own).
pub(super) fn remove_stale_staging(root: &Path) {
    let Ok(entries) = fs::read_dir(root.join(PULLS_DIR)) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        let lock = path.with_extension("lock");
        let Ok(file) = File::options().write(true).open(&lock) else {
            let _ = fs::remove_dir_all(&path);
            continue;
        };
        if let Ok(_held) = Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            let _ = fs::remove_dir_all(&path);
        }
    }
}

fn lock_file(path: &Path) -> Result<Flock<File>, Error> {
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io_err(format!("opening {}", path.display())))?;
    Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, errno)| Error::Io {
        context: format!("locking {}", path.display()),
        source: errno.into(),
    })
}

/// Fetches the manifest `wanted` names (through an index to the host's
/// platform) and its config, each checked against its digest.
async fn resolve(registry: &mut Registry, wanted: &Reference) -> Result<Resolved, Error> {
    let first = wanted
        .digest
        .clone()
        .or_else(|| wanted.tag.clone())
        .unwrap_or_else(|| "latest".to_string());
    let (mut bytes, mut media_type) = registry.manifest(&first, ACCEPT, JSON_LIMIT).await?;
    let mut digest = sha256_digest(&bytes);
    let source_digest = Some(digest.clone());
    if let Some(pinned) = &wanted.digest {
        expect_digest(pinned, &digest)?;
    }
    let mut kind = manifest_kind(media_type.as_deref(), &bytes);
    if kind == OCI_INDEX || kind == DOCKER_LIST {
        let index: ImageIndex = parse(&bytes, &format!("image index {digest}"))?;
        let chosen = pick_platform(&index, &digest)?.clone();
        let chosen_digest = chosen.digest().to_string();
        if !is_sha256_digest(&chosen_digest) {
            return Err(Error::InvalidDigest(chosen_digest));
        }
        (bytes, media_type) = registry
            .manifest(&chosen_digest, ACCEPT, JSON_LIMIT)
            .await?;
        digest = sha256_digest(&bytes);
        expect_digest(&chosen_digest, &digest)?;
        if bytes.len() as u64 != chosen.size() {
            return Err(Error::SizeMismatch {
                digest: chosen_digest,
                expected: chosen.size(),
                actual: bytes.len() as u64,
            });
        }
        kind = manifest_kind(media_type.as_deref(), &bytes);
    }
    if kind != OCI_MANIFEST && kind != DOCKER_MANIFEST {
        return Err(Error::Invalid {
            what: format!("{wanted}: manifest {digest}"),
            reason: format!("unsupported manifest media type {kind:?}"),
        });
    }
    let manifest: ImageManifest = parse(&bytes, &format!("manifest {digest}"))?;
    for layer in manifest.layers() {
        let layer_digest = layer.digest().to_string();
        digest_hex(&layer_digest)?;
        // Refuse zstd & co. before fetching anything big.
        compression_of(layer.media_type().as_ref(), &layer_digest)?;
    }
    let config_desc = manifest.config();
    let config_digest = config_desc.digest().to_string();
    digest_hex(&config_digest)?;
    if config_desc.size() > JSON_LIMIT {
        return Err(Error::Invalid {
            what: format!("config {config_digest}"),
            reason: format!(
                "{} bytes is too large for an image config",
                config_desc.size()
            ),
        });
    }
    let config_bytes = registry
        .small_blob(&config_digest, config_desc.size())
        .await?;
    let config: ImageConfiguration = parse(
        &config_bytes,
        &format!("config {config_digest} of manifest {digest}"),
    )?;
    check_layer_count(&manifest, &config, &digest)?;
    let media = match kind.as_str() {
        OCI_MANIFEST => MediaType::ImageManifest,
        other => MediaType::Other(other.to_string()),
    };
    let oci_digest =
        oci_spec::image::Digest::try_from(digest.as_str()).map_err(|e| Error::Invalid {
            what: digest.clone(),
            reason: e.to_string(),
        })?;
    Ok(Resolved {
        source_digest,
        descriptor: Descriptor::new(media, bytes.len() as u64, oci_digest),
        manifest_bytes: bytes,
        manifest,
        config_bytes,
        config,
    })
}

fn expect_digest(expected: &str, actual: &str) -> Result<(), Error> {
    if expected == actual {
        Ok(())
    } else {
        Err(Error::DigestMismatch {
            digest: expected.to_string(),
            actual: actual.to_string(),
        })
    }
}

/// The manifest's media type: the response's Content-Type, or the
/// document's own `mediaType` when the server sent a generic one.
fn manifest_kind(content_type: Option<&str>, bytes: &[u8]) -> String {
    let known = [OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST];
    if let Some(ct) = content_type.filter(|ct| known.contains(ct)) {
        return ct.to_string();
    }
    let json: serde_json::Value = serde_json::from_slice(bytes).unwrap_or_default();
    if let Some(mt) = json.get("mediaType").and_then(|m| m.as_str()) {
        return mt.to_string();
    }
    // An OCI document without mediaType: an index has `manifests`.
    if json.get("manifests").is_some() {
        OCI_INDEX.to_string()
    } else {
        OCI_MANIFEST.to_string()
    }
}

fn parse<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, Error> {
    super::store::parse_json(bytes, what)
}

/// The hosts a pull of `reference` would try, for messages and tests.
pub fn hosts_of(reference: &str, options: &PullOptions) -> Result<Vec<String>, Error> {
    let r = Reference::parse(reference)?;
    Ok(hosts_for(&options.registry_config, &r.registry)?
        .iter()
        .map(|h: &Host| h.url(""))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_kind_prefers_a_known_content_type() {
        assert_eq!(manifest_kind(Some(OCI_INDEX), b"{}"), OCI_INDEX);
        let docker = format!(r#"{{"mediaType":"{DOCKER_MANIFEST}"}}"#);
        assert_eq!(
            manifest_kind(Some("application/json"), docker.as_bytes()),
            DOCKER_MANIFEST
        );
        assert_eq!(manifest_kind(None, br#"{"manifests":[]}"#), OCI_INDEX);
        assert_eq!(manifest_kind(None, br#"{"layers":[]}"#), OCI_MANIFEST);
    }

    #[test]
    fn invalid_names_fail_before_any_request() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path()).unwrap();
        let options = PullOptions {
            registry_config: dir.path().join("etc"),
            docker_config: None,
            secret_configs: Vec::new(),
        };
        let err = store.pull("Bad/Name", &options, &mut |_| {}).unwrap_err();
        assert!(matches!(err, Error::InvalidReference { .. }), "{err}");
    }

    #[test]
    fn stale_staging_goes_and_a_running_pull_keeps_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let pulls = dir.path().join(PULLS_DIR);
        for key in ["crashed", "running"] {
            fs::create_dir_all(pulls.join(key)).unwrap();
            fs::write(pulls.join(key).join("blob"), b"x").unwrap();
        }
        let _held = lock_file(&pulls.join("running.lock")).unwrap();
        File::create(pulls.join("crashed.lock")).unwrap();
        remove_stale_staging(dir.path());
        assert!(!pulls.join("crashed").exists());
        assert!(pulls.join("running/blob").exists());
    }

    #[test]
    fn docker_hub_goes_to_its_api_host() {
        let options = PullOptions {
            registry_config: PathBuf::from("/nonexistent"),
            docker_config: None,
            secret_configs: Vec::new(),
        };
        assert_eq!(
            hosts_of("nginx", &options).unwrap(),
            vec!["https://registry-1.docker.io/v2"]
        );
    }
}

/// The Bearer flow Docker Hub uses, against a fake registry in this
/// process: a 401 with a challenge, a token fetched from the realm with
/// the login, the retry with the token, and blob downloads redirected to
/// another origin that must not see the token.
#[cfg(test)]
mod bearer_tests {
    use std::convert::Infallible;
    use std::sync::Arc;

    use base64::Engine;
    use http_body_util::Full;
    use hyper::body::{Bytes, Incoming};
    use hyper::{Request, Response};

    use super::*;
    use crate::image::layout;

    const TOKEN: &str = "tok-123";

    struct Fake {
        port: u16,
        blobs: PathBuf,
        manifest: Vec<u8>,
        /// Manifest GETs answered (HEADs are not counted).
        gets: std::sync::atomic::AtomicUsize,
    }

    fn answer(fake: &Fake, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        let reply = |status: u16, body: Vec<u8>| {
            Response::builder()
                .status(status)
                .body(Full::new(Bytes::from(body)))
                .unwrap()
        };
        let auth = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or_default().to_string();
        if path == "/token" {
            let login = base64::engine::general_purpose::STANDARD.encode("student:s3cret");
            if auth != format!("Basic {login}") || !query.contains("scope=repository:app:pull") {
                return reply(401, b"bad login".to_vec());
            }
            return reply(200, format!(r#"{{"token":"{TOKEN}"}}"#).into_bytes());
        }
        if let Some(hex) = path.strip_prefix("/storage/") {
            // Signed storage URLs carry their own authority.
            if !auth.is_empty() {
                return reply(400, b"credentials leaked to storage".to_vec());
            }
            return reply(200, fs::read(fake.blobs.join(hex)).unwrap_or_default());
        }
        if auth != format!("Bearer {TOKEN}") {
            let mut r = reply(401, br#"{"errors":[{"code":"UNAUTHORIZED"}]}"#.to_vec());
            r.headers_mut().insert(
                "www-authenticate",
                format!(
                    r#"Bearer realm="http://127.0.0.1:{}/token",service="fake",scope="repository:app:pull""#,
                    fake.port
                )
                .parse()
                .unwrap(),
            );
            return r;
        }
        if path == "/v2/app/manifests/1" {
            if req.method() == hyper::Method::GET {
                fake.gets.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            let mut r = reply(200, fake.manifest.clone());
            r.headers_mut().insert(
                "docker-content-digest",
                sha256_digest(&fake.manifest).parse().unwrap(),
            );
            r.headers_mut()
                .insert("content-type", OCI_MANIFEST.parse().unwrap());
            return r;
        }
        if let Some(digest) = path.strip_prefix("/v2/app/blobs/") {
            let mut r = reply(307, Vec::new());
            let hex = digest.trim_start_matches("sha256:");
            r.headers_mut().insert(
                "location",
                format!("http://localhost:{}/storage/{hex}", fake.port)
                    .parse()
                    .unwrap(),
            );
            return r;
        }
        reply(404, Vec::new())
    }

    #[test]
    fn bearer_token_from_the_realm_and_no_token_to_storage() {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        fs::create_dir_all(rootfs.join("etc")).unwrap();
        fs::write(rootfs.join("etc/hello"), b"hi\n").unwrap();
        let layout_dir = dir.path().join("layout");
        let layer = layout::tar_gz_dir(&rootfs).unwrap();
        let digest =
            layout::write_layout(&layout_dir, "app", &[layer], &Default::default()).unwrap();
        let blobs = layout_dir.join("blobs/sha256");
        let manifest = fs::read(blobs.join(digest.trim_start_matches("sha256:"))).unwrap();

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let fake = Arc::new(Fake {
            port,
            blobs,
            manifest,
            gets: Default::default(),
        });
        let server = fake.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        return;
                    };
                    let fake = server.clone();
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |req| {
                            let r = answer(&fake, &req);
                            async move { Ok::<_, Infallible>(r) }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                            .await;
                    });
                }
            });
        });

        let docker = dir.path().join("docker.json");
        let login = base64::engine::general_purpose::STANDARD.encode("student:s3cret");
        fs::write(
            &docker,
            serde_json::json!({"auths": {format!("127.0.0.1:{port}"): {"auth": login}}})
                .to_string(),
        )
        .unwrap();
        let store = ImageStore::open(dir.path().join("store")).unwrap();
        let options = PullOptions {
            registry_config: dir.path().join("etc"),
            docker_config: Some(docker),
            secret_configs: Vec::new(),
        };
        let reference = format!("127.0.0.1:{port}/app:1");
        let info = store.pull(&reference, &options, &mut |_| {}).unwrap();
        assert_eq!(info.digest, digest);
        assert!(store.prepare(&reference).is_ok());
        assert_eq!(fake.gets.load(std::sync::atomic::Ordering::SeqCst), 1);

        // The tag still points there: a HEAD says so, no second GET.
        let again = store.pull(&reference, &options, &mut |_| {}).unwrap();
        assert_eq!(again.digest, digest);
        assert_eq!(fake.gets.load(std::sync::atomic::Ordering::SeqCst), 1);

        // Without the login the realm refuses, and the error says so.
        let anonymous = PullOptions {
            docker_config: None,
            secret_configs: Vec::new(),
            ..options
        };
        let err = store
            .pull(&reference, &anonymous, &mut |_| {})
            .unwrap_err()
            .to_string();
        assert!(err.contains("/token") && err.contains("401"), "{err}");
    }
}
