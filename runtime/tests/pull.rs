//! Pulling from a real registry (issue 24): Debian's docker-registry on
//! loopback, images pushed with skopeo. `cargo xtask test` starts a shared
//! registry with the fixture images and sets PODLAB_TEST_REGISTRY (and
//! PODLAB_TEST_FIXTURES, the fixture OCI layouts); tests that stop, corrupt
//! or lock a registry start their own. Under CI=true a missing registry
//! fails the tests instead of skipping them.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{eventually, Podlab};
use podlab_testkit::registry::{Options, TestRegistry, ADDRESS_ENV};

/// The fixture images as xtask pushes them to the shared registry.
const SHARED_BUSYBOX: &str = "podlab/busybox:latest";
const FIXTURES_ENV: &str = "PODLAB_TEST_FIXTURES";
const BUSYBOX_LAYOUT: &str = "podlab.local_busybox_latest";
const BUSYBOX_REF: &str = "podlab.local/busybox:latest";
const PROBE_LAYOUT: &str = "podlab.local_probe_latest";
const PROBE_REF: &str = "podlab.local/probe:latest";

/// The shared registry's address, or None (the test skips) when this run
/// has none; under CI a missing registry is a broken setup.
fn shared_registry() -> Option<String> {
    if let Some(reason) = common::skip_reason() {
        podlab_testkit::skip::skipped(&reason);
        return None;
    }
    match std::env::var(ADDRESS_ENV) {
        Ok(a) if !a.is_empty() => Some(a),
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "CI=true but {ADDRESS_ENV} is unset: run the pull tests through `cargo xtask test`"
            );
            podlab_testkit::skip::skipped(&format!(
                "no test registry ({ADDRESS_ENV} unset); `cargo xtask test` starts one"
            ));
            None
        }
    }
}

macro_rules! require_registry {
    () => {
        match shared_registry() {
            Some(a) => a,
            None => return,
        }
    };
}

fn fixture(layout: &str) -> PathBuf {
    let dir = std::env::var_os(FIXTURES_ENV)
        .map(PathBuf::from)
        .expect("PODLAB_TEST_FIXTURES is set with PODLAB_TEST_REGISTRY")
        .join(layout);
    assert!(dir.join("index.json").exists(), "{} missing", dir.display());
    dir
}

fn scratch(prefix: &str) -> tempfile::TempDir {
    let base = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/podlab-test");
    std::fs::create_dir_all(&base).expect("test dir");
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(base)
        .expect("tempdir")
}

fn private_registry(dir: &Path, options: Options) -> TestRegistry {
    TestRegistry::start(dir, options).expect("start docker-registry")
}

/// A CA and a loopback server certificate under `dir` for a registry to
/// serve HTTPS with (podlab serve's own certificate maker).
fn registry_tls(dir: &Path) -> PathBuf {
    let loopback = "127.0.0.1:0".parse().expect("address");
    podlab::tls::load_or_create(dir, &loopback, None)
        .expect("registry certificate")
        .dir
}

fn pod_yaml(name: &str, image: &str, policy: Option<&str>) -> String {
    let policy = policy
        .map(|p| format!("    imagePullPolicy: {p}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  terminationGracePeriodSeconds: 0\n  containers:\n  - name: app\n    image: {image}\n{policy}    command: [sleep, '3600']\n"
    )
}

fn describe(p: &Podlab, name: &str) -> String {
    String::from_utf8_lossy(&p.run(&["describe", "pod", name]).stdout).into_owned()
}

/// Waits for the pod's events to mention `needle`; returns them.
fn events_with(p: &Podlab, name: &str, needle: &str) -> String {
    eventually(Duration::from_secs(30), || {
        let d = describe(p, name);
        d.contains(needle).then_some(d)
    })
    .unwrap_or_else(|| panic!("no {needle:?} in:\n{}", describe(p, name)))
}

fn pull(p: &Podlab, reference: &str, env: &[(&str, &Path)]) -> std::process::Output {
    let mut cmd = p.cmd();
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.args(["image", "pull", reference])
        .output()
        .expect("podlab image pull")
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The digest `podlab image pull` printed (`pulled REF DIGEST`).
fn pulled_digest(o: &std::process::Output) -> String {
    assert!(o.status.success(), "pull failed: {}", stderr(o));
    let out = String::from_utf8_lossy(&o.stdout);
    out.split_whitespace()
        .last()
        .expect("digest printed")
        .to_string()
}

/// The manifest digest of the layout's only image (its index entry).
fn layout_digest(layout: &Path) -> String {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).expect("index"))
            .expect("index json");
    index["manifests"][0]["digest"]
        .as_str()
        .expect("digest")
        .to_string()
}

#[test]
fn pod_whose_image_is_only_in_the_registry_runs() {
    let registry = require_registry!();
    let images = scratch("pull-images-");
    let p = Podlab::with_images(images.path());
    let image = format!("{registry}/{SHARED_BUSYBOX}");
    let name = common::unique("pulled");
    let _pod = p.pod(&name, &pod_yaml(&name, &image, None));
    let events = describe(&p, &name);
    assert!(
        events.contains(&format!("Pulling image \"{image}\"")),
        "{events}"
    );
    assert!(
        events.contains(&format!("Successfully pulled image \"{image}\" in "))
            && events.contains("including waiting). Image size: "),
        "{events}"
    );
    let status = p.pod_json(&name);
    let image_id = status["status"]["containerStatuses"][0]["imageID"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        image_id.starts_with(&format!("{registry}/podlab/busybox@sha256:")),
        "{image_id}"
    );
}

#[test]
fn if_not_present_runs_with_the_registry_stopped_and_always_does_not() {
    let _ = require_registry!();
    let dir = scratch("pull-offline-");
    let mut registry = private_registry(&dir.path().join("registry"), Options::default());
    registry
        .push(
            &fixture(BUSYBOX_LAYOUT),
            BUSYBOX_REF,
            "app/offline:1",
            false,
            None,
        )
        .expect("push");
    let images = dir.path().join("images");
    let p = Podlab::with_images(&images);
    let image = format!("{}/app/offline:1", registry.address);
    let first = common::unique("online");
    drop(p.pod(&first, &pod_yaml(&first, &image, Some("IfNotPresent"))));

    registry.stop();
    let second = common::unique("offline");
    let _pod = p.pod(&second, &pod_yaml(&second, &image, Some("IfNotPresent")));
    let events = describe(&p, &second);
    assert!(
        events.contains(&format!(
            "Container image \"{image}\" already present on machine"
        )),
        "{events}"
    );
    assert!(!events.contains("Pulling image"), "{events}");

    let always = common::unique("always");
    let out = p
        .cmd()
        .args(["apply", "-f", "-"])
        .write_stdin(pod_yaml(&always, &image, Some("Always")))
        .output()
        .expect("apply");
    let _guard = common::PodGuard {
        podlab: &p,
        name: always.clone(),
    };
    assert!(out.status.success(), "{}", stderr(&out));
    let events = events_with(&p, &always, "Error: ErrImagePull");
    assert!(
        events.contains(&format!("Failed to pull image \"{image}\": ")),
        "{events}"
    );
}

#[test]
fn always_picks_up_a_new_digest_pushed_under_the_same_tag() {
    let _ = require_registry!();
    let dir = scratch("pull-always-");
    let registry = private_registry(&dir.path().join("registry"), Options::default());
    let image = format!("{}/app/moving:latest", registry.address);
    registry
        .push(
            &fixture(BUSYBOX_LAYOUT),
            BUSYBOX_REF,
            "app/moving:latest",
            false,
            None,
        )
        .expect("push v1");
    let p = Podlab::with_images(&dir.path().join("images"));
    let old = pulled_digest(&pull(&p, &image, &[]));
    assert_eq!(old, layout_digest(&fixture(BUSYBOX_LAYOUT)));

    registry
        .push(
            &fixture(PROBE_LAYOUT),
            PROBE_REF,
            "app/moving:latest",
            false,
            None,
        )
        .expect("push v2");
    let new = layout_digest(&fixture(PROBE_LAYOUT));
    assert_ne!(old, new);
    let name = common::unique("moving");
    // No imagePullPolicy: `:latest` defaults to Always.
    let _pod = p.pod(&name, &pod_yaml(&name, &image, None));
    let image_id = p.pod_json(&name)["status"]["containerStatuses"][0]["imageID"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(image_id.ends_with(&new), "{image_id} is not {new}");
}

#[test]
fn a_corrupted_blob_is_refused() {
    let _ = require_registry!();
    let dir = scratch("pull-corrupt-");
    let registry = private_registry(&dir.path().join("registry"), Options::default());
    let layout = fixture(BUSYBOX_LAYOUT);
    registry
        .push(&layout, BUSYBOX_REF, "app/corrupt:1", false, None)
        .expect("push");
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            layout
                .join("blobs/sha256")
                .join(layout_digest(&layout).trim_start_matches("sha256:")),
        )
        .expect("manifest"),
    )
    .expect("manifest json");
    let layer = manifest["layers"][0]["digest"].as_str().expect("layer");
    let file = registry.blob_file(layer);
    let mut bytes = std::fs::read(&file).expect("registry blob");
    // Same size, other content: only the digest can tell.
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&file, &bytes).expect("corrupt");

    let p = Podlab::with_images(&dir.path().join("images"));
    let out = pull(&p, &format!("{}/app/corrupt:1", registry.address), &[]);
    assert!(!out.status.success(), "a corrupt blob was accepted");
    let err = stderr(&out);
    assert!(err.contains(layer) && err.contains("corrupt"), "{err}");
    let ls = String::from_utf8_lossy(&p.run(&["image", "ls"]).stdout).into_owned();
    assert!(!ls.contains("app/corrupt"), "{ls}");
}

/// bcrypt through the C library's crypt(3) (libxcrypt), loaded at run
/// time: docker-registry's htpasswd wants bcrypt entries.
fn bcrypt(password: &str) -> String {
    use std::ffi::{CStr, CString};
    type CryptFn =
        unsafe extern "C" fn(*const libc::c_char, *const libc::c_char) -> *mut libc::c_char;
    let lib = CString::new("libcrypt.so.1").expect("name");
    let sym = CString::new("crypt").expect("name");
    let key = CString::new(password).expect("password");
    let salt = CString::new("$2b$05$podlabtestsaltpodlabte").expect("salt");
    // SAFETY: dlopen/dlsym with valid C strings; crypt's signature is
    // char *crypt(const char *, const char *) and its result is copied
    // before any other call.
    unsafe {
        let handle = libc::dlopen(lib.as_ptr(), libc::RTLD_NOW);
        assert!(!handle.is_null(), "libcrypt.so.1 not found");
        let f = libc::dlsym(handle, sym.as_ptr());
        assert!(!f.is_null(), "crypt not in libcrypt");
        let crypt: CryptFn = std::mem::transmute(f);
        let out = crypt(key.as_ptr(), salt.as_ptr());
        assert!(!out.is_null(), "crypt failed");
        let hash = CStr::from_ptr(out).to_string_lossy().into_owned();
        assert!(hash.starts_with("$2b$"), "no bcrypt in libcrypt: {hash}");
        hash
    }
}

fn docker_config(dir: &Path, registry: &str, user: &str, password: &str) -> PathBuf {
    use base64::Engine;
    std::fs::create_dir_all(dir).expect("docker config dir");
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    std::fs::write(
        dir.join("config.json"),
        serde_json::json!({"auths": {registry: {"auth": auth}}}).to_string(),
    )
    .expect("config.json");
    dir.to_path_buf()
}

#[test]
fn tls_and_htpasswd_registry_wrong_password_is_err_image_pull_naming_401() {
    let _ = require_registry!();
    let dir = scratch("pull-auth-");
    let htpasswd = dir.path().join("htpasswd");
    std::fs::write(&htpasswd, format!("student:{}\n", bcrypt("s3cret"))).expect("htpasswd");
    let registry = private_registry(
        &dir.path().join("registry"),
        Options {
            tls: Some(registry_tls(&dir.path().join("tls"))),
            htpasswd: Some(htpasswd),
            ..Options::default()
        },
    );
    registry
        .push(
            &fixture(BUSYBOX_LAYOUT),
            BUSYBOX_REF,
            "private/app:1",
            false,
            Some("student:s3cret"),
        )
        .expect("push");
    let image = format!("{}/private/app:1", registry.address);
    let p = Podlab::with_images(&dir.path().join("images"));
    let good = docker_config(
        &dir.path().join("good"),
        &registry.address,
        "student",
        "s3cret",
    );
    let bad = docker_config(
        &dir.path().join("bad"),
        &registry.address,
        "student",
        "wrong",
    );

    // TLS is verified: without the registry's CA the pull fails.
    let untrusted = pull(&p, &image, &[("DOCKER_CONFIG", &good)]);
    assert!(!untrusted.status.success(), "an unknown CA was trusted");
    assert!(
        stderr(&untrusted).contains("certificate"),
        "{}",
        stderr(&untrusted)
    );

    // skip_verify in hosts.toml (the user's explicit choice, as containerd
    // reads it) accepts the unknown CA.
    let lax = dir.path().join("lax");
    let lax_dir = lax.join("certs.d").join(&registry.address);
    std::fs::create_dir_all(&lax_dir).expect("certs.d");
    std::fs::write(
        lax_dir.join("hosts.toml"),
        format!(
            "server = \"https://{}\"\nskip_verify = true\n",
            registry.address
        ),
    )
    .expect("hosts.toml");
    let skipped = pull(
        &p,
        &image,
        &[("PODLAB_REGISTRY_CONFIG", &lax), ("DOCKER_CONFIG", &good)],
    );
    assert_eq!(
        pulled_digest(&skipped),
        layout_digest(&fixture(BUSYBOX_LAYOUT))
    );

    let config = dir.path().join("etc");
    let host_dir = config.join("certs.d").join(&registry.address);
    std::fs::create_dir_all(&host_dir).expect("certs.d");
    std::fs::copy(registry.ca.as_ref().expect("ca"), host_dir.join("ca.crt")).expect("ca");
    let ok = pull(
        &p,
        &image,
        &[
            ("PODLAB_REGISTRY_CONFIG", &config),
            ("DOCKER_CONFIG", &good),
        ],
    );
    assert_eq!(pulled_digest(&ok), layout_digest(&fixture(BUSYBOX_LAYOUT)));

    let name = common::unique("denied");
    let out = p
        .cmd()
        .env("PODLAB_REGISTRY_CONFIG", &config)
        .env("DOCKER_CONFIG", &bad)
        .args(["apply", "-f", "-"])
        .write_stdin(pod_yaml(&name, &image, Some("Always")))
        .output()
        .expect("apply");
    let _guard = common::PodGuard {
        podlab: &p,
        name: name.clone(),
    };
    assert!(out.status.success(), "{}", stderr(&out));
    let events = events_with(&p, &name, "Error: ErrImagePull");
    assert!(events.contains("401 Unauthorized"), "{events}");
    let reason = eventually(Duration::from_secs(30), || {
        let s = p.pod_json(&name);
        let r = s["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
            .as_str()
            .map(str::to_string);
        r.filter(|r| r == "ImagePullBackOff")
    });
    assert!(
        reason.is_some(),
        "no ImagePullBackOff: {}",
        p.pod_json(&name)
    );
}

/// A TLS registry with htpasswd (user `student`, password `s3cret`)
/// holding `private/app:1`, and a registry config trusting its CA.
struct AuthRegistry {
    registry: TestRegistry,
    image: String,
    config: PathBuf,
    /// An empty Docker config directory: no login from a file.
    no_docker_config: PathBuf,
}

impl AuthRegistry {
    /// `podlab apply -f - ARGS` of `manifest` with this registry's hosts
    /// config and no Docker login, so only the pod's pull secrets can log in.
    fn apply(&self, p: &Podlab, args: &[&str], manifest: String) -> std::process::Output {
        p.cmd()
            .env("PODLAB_REGISTRY_CONFIG", &self.config)
            .env("DOCKER_CONFIG", &self.no_docker_config)
            .args(["apply", "-f", "-"])
            .args(args)
            .write_stdin(manifest)
            .output()
            .expect("apply")
    }
}

fn auth_registry(dir: &Path) -> AuthRegistry {
    let htpasswd = dir.join("htpasswd");
    std::fs::write(&htpasswd, format!("student:{}\n", bcrypt("s3cret"))).expect("htpasswd");
    let registry = private_registry(
        &dir.join("registry"),
        Options {
            tls: Some(registry_tls(&dir.join("tls"))),
            htpasswd: Some(htpasswd),
            access_log: false,
        },
    );
    registry
        .push(
            &fixture(BUSYBOX_LAYOUT),
            BUSYBOX_REF,
            "private/app:1",
            false,
            Some("student:s3cret"),
        )
        .expect("push");
    let config = dir.join("etc");
    let host_dir = config.join("certs.d").join(&registry.address);
    std::fs::create_dir_all(&host_dir).expect("certs.d");
    std::fs::copy(registry.ca.as_ref().expect("ca"), host_dir.join("ca.crt")).expect("ca");
    let no_docker_config = dir.join("no-docker-config");
    std::fs::create_dir_all(&no_docker_config).expect("empty docker config dir");
    AuthRegistry {
        image: format!("{}/private/app:1", registry.address),
        registry,
        config,
        no_docker_config,
    }
}

/// A pod listing `secrets` as its imagePullSecrets.
fn pod_with_pull_secrets(name: &str, image: &str, secrets: &[&str]) -> String {
    let list: Vec<String> = secrets.iter().map(|s| format!("  - name: {s}\n")).collect();
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  terminationGracePeriodSeconds: 0\n  imagePullSecrets:\n{}  containers:\n  - name: app\n    image: {image}\n    imagePullPolicy: Always\n    command: [sleep, '3600']\n",
        list.concat()
    )
}

/// `podlab create secret docker-registry NAME` for the registry.
fn create_pull_secret(p: &Podlab, reg: &AuthRegistry, name: &str, password: &str) {
    let out = p.run(&[
        "create",
        "secret",
        "docker-registry",
        name,
        &format!("--docker-server={}", reg.registry.address),
        "--docker-username=student",
        &format!("--docker-password={password}"),
        "--docker-email=student@example.com",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("secret/{name} created\n")
    );
}

#[test]
fn a_pod_pulls_from_an_auth_registry_with_its_image_pull_secret_and_no_docker_config() {
    let _ = require_registry!();
    let dir = scratch("pull-secret-");
    let reg = auth_registry(dir.path());
    let p = Podlab::with_images(&dir.path().join("images"));
    let name = common::unique("secret-pull");
    // The secret and the pod in one file, the secret first.
    let login = serde_json::json!({"auths": {reg.registry.address.clone(): {"username": "student", "password": "s3cret"}}});
    let manifest = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: regcred\ntype: kubernetes.io/dockerconfigjson\nstringData:\n  .dockerconfigjson: '{login}'\n---\n{}",
        pod_with_pull_secrets(&name, &reg.image, &["regcred"])
    );
    let out = reg.apply(&p, &["--wait-ready=60s"], manifest);
    let _guard = common::PodGuard {
        podlab: &p,
        name: name.clone(),
    };
    assert!(out.status.success(), "{}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("secret/regcred created"), "{stdout}");
    assert!(
        !stderr(&out).contains("imagePullSecrets"),
        "{}",
        stderr(&out)
    );
    let events = describe(&p, &name);
    assert!(
        events.contains(&format!("Successfully pulled image \"{}\"", reg.image)),
        "{events}"
    );
    // The logins went to the helper in a file that is gone again.
    let leftovers: Vec<_> = walk(p.root.path())
        .into_iter()
        .filter(|f| f.to_string_lossy().contains("pull-logins"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let get = p.run(&["get", "secrets"]);
    let table = String::from_utf8_lossy(&get.stdout);
    assert!(table.starts_with("NAME"), "{table}");
    assert!(
        table.contains("regcred   kubernetes.io/dockerconfigjson   1"),
        "{table}"
    );
    assert!(!table.contains("s3cret"), "{table}");
}

/// Every file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = e.path();
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn a_wrong_password_in_the_pull_secret_is_err_image_pull_naming_401() {
    let _ = require_registry!();
    let dir = scratch("pull-secret-bad-");
    let reg = auth_registry(dir.path());
    let p = Podlab::with_images(&dir.path().join("images"));
    create_pull_secret(&p, &reg, "badcred", "wrong");
    let name = common::unique("secret-denied");
    let out = reg.apply(
        &p,
        &[],
        pod_with_pull_secrets(&name, &reg.image, &["badcred"]),
    );
    let _guard = common::PodGuard {
        podlab: &p,
        name: name.clone(),
    };
    assert!(out.status.success(), "{}", stderr(&out));
    let events = events_with(&p, &name, "Error: ErrImagePull");
    assert!(events.contains("401 Unauthorized"), "{events}");
    assert!(!events.contains("wrong"), "{events}");
    // The ErrImagePull message (the Failed event's) names the 401.
    let failed = events
        .lines()
        .find(|l| l.contains(&format!("Failed to pull image \"{}\"", reg.image)))
        .unwrap_or_default();
    assert!(failed.contains("401 Unauthorized"), "{events}");
}

#[test]
fn a_missing_pull_secret_is_a_warning_and_the_pull_goes_on() {
    let _ = require_registry!();
    let dir = scratch("pull-secret-missing-");
    let reg = auth_registry(dir.path());
    let p = Podlab::with_images(&dir.path().join("images"));
    create_pull_secret(&p, &reg, "regcred", "s3cret");
    let name = common::unique("secret-missing");
    let out = reg.apply(
        &p,
        &["--wait-ready=60s"],
        pod_with_pull_secrets(&name, &reg.image, &["nosuch", "regcred"]),
    );
    let _guard = common::PodGuard {
        podlab: &p,
        name: name.clone(),
    };
    assert!(out.status.success(), "{}", stderr(&out));
    let events = describe(&p, &name);
    assert!(
        events.contains("FailedToRetrieveImagePullSecret")
            && events.contains("Unable to retrieve some image pull secrets (nosuch); attempting to pull the image may not succeed."),
        "{events}"
    );
    assert!(events.contains("Successfully pulled image"), "{events}");
}

/// An OCI layout whose `multi` entry is an index of an arm64 image (listed
/// first) and an amd64 one; returns (layout, amd64 manifest digest).
fn multi_arch_layout(dir: &Path) -> (PathBuf, String) {
    use podlab::image::{layout, ImageConfig};
    let out = dir.join("multi");
    let amd_dir = dir.join("amd-root");
    let arm_dir = dir.join("arm-root");
    for (d, text) in [(&amd_dir, "amd64\n"), (&arm_dir, "arm64\n")] {
        std::fs::create_dir_all(d.join("etc")).expect("root");
        std::fs::write(d.join("etc/arch"), text).expect("arch file");
    }
    let config = ImageConfig::default();
    let amd = layout::write_layout(
        &out,
        "amd",
        &[layout::tar_gz_dir(&amd_dir).expect("tar")],
        &config,
    )
    .expect("amd layout");
    let arm = layout::write_layout(
        &out,
        "arm",
        &[layout::tar_gz_dir(&arm_dir).expect("tar")],
        &config,
    )
    .expect("arm layout");
    let index_path = out.join("index.json");
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&index_path).expect("index")).expect("json");
    let entry = |digest: &str, arch: &str| {
        let d = index["manifests"]
            .as_array()
            .expect("manifests")
            .iter()
            .find(|m| m["digest"] == digest)
            .expect("entry");
        serde_json::json!({
            "mediaType": d["mediaType"], "digest": digest, "size": d["size"],
            "platform": {"architecture": arch, "os": "linux"},
        })
    };
    let nested = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [entry(&arm, "arm64"), entry(&amd, "amd64")],
    })
    .to_string();
    let nested_digest = podlab::image::sha256_digest(nested.as_bytes());
    std::fs::write(
        out.join("blobs/sha256")
            .join(nested_digest.trim_start_matches("sha256:")),
        &nested,
    )
    .expect("index blob");
    let top = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": nested_digest, "size": nested.len(),
            "annotations": {"org.opencontainers.image.ref.name": "multi"},
        }],
    });
    std::fs::write(&index_path, top.to_string()).expect("index.json");
    (out, amd)
}

#[test]
fn a_multi_arch_index_gives_the_amd64_image() {
    let registry = require_registry!();
    let dir = scratch("pull-multi-");
    let (layout, amd) = multi_arch_layout(dir.path());
    // Pushed to the shared registry under a name of this test's own.
    let name = format!("{}:1", common::unique("multi/arch"));
    let out = std::process::Command::new(podlab_testkit::registry::SKOPEO_BIN)
        .args([
            "--insecure-policy",
            "copy",
            "--quiet",
            "--all",
            "--dest-tls-verify=false",
        ])
        .arg(format!("oci:{}:multi", layout.display()))
        .arg(format!("docker://{registry}/{name}"))
        .output()
        .expect("skopeo");
    assert!(out.status.success(), "{}", stderr(&out));
    let p = Podlab::with_images(&dir.path().join("images"));
    let got = pulled_digest(&pull(&p, &format!("{registry}/{name}"), &[]));
    assert_eq!(got, amd, "not the amd64 image of the index");
}

#[test]
fn concurrent_pulls_of_one_image_both_succeed() {
    let registry = require_registry!();
    let dir = scratch("pull-twice-");
    let p = Podlab::with_images(&dir.path().join("images"));
    let image = format!("{registry}/{SHARED_BUSYBOX}");
    let spawn = || {
        let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("podlab"));
        c.arg("--root")
            .arg(p.root.path())
            .arg("--image-root")
            .arg(&p.images)
            .arg("--data-root")
            .arg(&p.data)
            .args(["image", "pull", &image])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        c.spawn().expect("spawn pull")
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (
        a.wait_with_output().expect("pull a"),
        b.wait_with_output().expect("pull b"),
    );
    assert_eq!(pulled_digest(&a), pulled_digest(&b));
    let ls = String::from_utf8_lossy(&p.run(&["image", "ls"]).stdout).into_owned();
    assert_eq!(ls.lines().count(), 2, "{ls}");
}
