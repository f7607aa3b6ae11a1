//! The image store proper: import, naming, garbage collection and layer
//! preparation over a local OCI image layout.

use std::collections::{HashMap, HashSet};
use std::fs::{self, DirBuilder, File, Permissions};
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use flate2::read::MultiGzDecoder;
use nix::errno::Errno;
use nix::fcntl::{renameat2, Flock, FlockArg, RenameFlags, AT_FDCWD};
use oci_spec::image::{Arch, Descriptor, ImageConfiguration, ImageIndex, ImageManifest, Os};
use serde::de::DeserializeOwned;

use super::blob::{
    digest_hex, io_err, is_sha256_digest, read_verified, store_verified, unique_suffix,
    write_atomic,
};
use podlab_oci::layout::{new_index, ref_name, OCI_LAYOUT, REF_NAME};

use super::reference::{normalize_reference, Reference};
use super::unpack::{compression_of, unpack_blob};
use super::{Error, ImageConfig, ImageInfo, PreparedImage};

/// containerd (and nerdctl, docker 25+) put the full name here and only the
/// tag into `REF_NAME`.
const CONTAINERD_NAME: &str = "io.containerd.image.name";
/// podlab's own index annotation: the digest a pulled tag resolved to.
const SOURCE_DIGEST: &str = "io.podlab.image.source-digest";
/// Manifests, indexes and configs are small; this bounds what a hostile
/// source can make us hold in memory.
pub(super) const JSON_LIMIT: u64 = 16 << 20;
/// Real images nest at most one index in another.
const MAX_INDEX_DEPTH: usize = 4;

pub(super) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub(super) const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub(super) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(super) const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// A local store of images; see the module documentation for the layout.
#[derive(Clone, Debug)]
pub struct ImageStore {
    root: PathBuf,
}

/// A manifest from an import source, checked and parsed, with its config.
pub(super) struct Resolved {
    /// What a pulled tag pointed at (an index or this manifest), kept with
    /// the name so an unchanged tag needs no manifest fetch next time.
    pub(super) source_digest: Option<String>,
    pub(super) descriptor: Descriptor,
    pub(super) manifest_bytes: Vec<u8>,
    pub(super) manifest: ImageManifest,
    pub(super) config_bytes: Vec<u8>,
    pub(super) config: ImageConfiguration,
}

impl Resolved {
    pub(super) fn digest(&self) -> String {
        self.descriptor.digest().to_string()
    }

    fn info(&self, reference: &str) -> ImageInfo {
        image_info(reference, &self.descriptor, &self.manifest, &self.config)
    }
}

impl ImageStore {
    /// Opens the store at `root`, creating its directories, an empty OCI
    /// layout and an empty index if they are missing.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, Error> {
        let store = ImageStore { root: root.into() };
        for dir in [store.blobs_dir(), store.layers_dir().join("sha256")] {
            fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
        }
        // Under the lock so that two processes opening a fresh store do not
        // both write an empty index over an import that happened in between.
        let _lock = store.lock(true)?;
        let layout = store.oci_dir().join("oci-layout");
        if !layout.exists() {
            write_atomic(&layout, OCI_LAYOUT)?;
        }
        if !store.index_path().exists() {
            store.write_index(&new_index(Vec::new())?)?;
        }
        Ok(store)
    }

    /// The directory the store lives in.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Imports every image of `src`, an OCI image layout directory or an
    /// oci-archive tar (optionally gzipped). Images are named by their index
    /// annotations, or all by `name` when given.
    pub fn import(&self, src: &Path, name: Option<&str>) -> Result<Vec<ImageInfo>, Error> {
        let name = name.map(Reference::parse).transpose()?;
        if let Some(pinned) = name.as_ref().filter(|r| r.digest.is_some()) {
            return Err(Error::InvalidReference {
                reference: pinned.to_string(),
                reason: "an image name cannot pin a digest".to_string(),
            });
        }
        let name = name.map(|r| r.to_string());
        // One writer at a time, for the whole import: garbage collection by
        // a concurrent `remove` must not see our blobs before the index
        // refers to them.
        let _lock = self.lock(true)?;
        if src.is_dir() {
            return self.import_layout(src, src, name.as_deref());
        }
        let tmp = self.root.join(format!("tmp-import-{}", unique_suffix()));
        fs::create_dir(&tmp).map_err(io_err(format!("creating {}", tmp.display())))?;
        let result = extract_archive(src, &tmp)
            .and_then(|()| self.import_layout(&tmp, src, name.as_deref()));
        let _ = fs::remove_dir_all(&tmp);
        result
    }

    /// All named images, sorted by reference.
    pub fn list(&self) -> Result<Vec<ImageInfo>, Error> {
        let _lock = self.lock(false)?;
        let index = self.read_index()?;
        let mut infos = Vec::new();
        for desc in index.manifests() {
            if let Some(reference) = ref_name(desc) {
                infos.push(self.info(reference, desc)?);
            }
        }
        infos.sort_by(|a, b| a.reference.cmp(&b.reference));
        Ok(infos)
    }

    /// Finds an image by reference (normalised first: `busybox` finds
    /// `docker.io/library/busybox:latest`), by `name@sha256:...`, or by
    /// bare manifest digest.
    pub fn lookup(&self, reference: &str) -> Result<Option<ImageInfo>, Error> {
        let _lock = self.lock(false)?;
        let index = self.read_index()?;
        let Some(&pos) = matching(&index, reference)?.first() else {
            return Ok(None);
        };
        let desc = &index.manifests()[pos];
        let name = ref_name(desc).unwrap_or(reference);
        self.info(name, desc).map(Some)
    }

    /// Gives the image `src` the additional name `dst` (replacing whatever
    /// `dst` named before).
    pub fn tag(&self, src: &str, dst: &str) -> Result<(), Error> {
        let target = Reference::parse(dst)?;
        if target.digest.is_some() {
            return Err(Error::InvalidReference {
                reference: dst.to_string(),
                reason: "a new name cannot pin a digest".to_string(),
            });
        }
        let target = target.to_string();
        let _lock = self.lock(true)?;
        let mut index = self.read_index()?;
        let Some(&pos) = matching(&index, src)?.first() else {
            return Err(Error::NotFound(src.to_string()));
        };
        let mut desc = index.manifests()[pos].clone();
        desc.set_annotations(Some(HashMap::from([(
            REF_NAME.to_string(),
            target.clone(),
        )])));
        let mut manifests = index.manifests().clone();
        manifests.retain(|d| ref_name(d) != Some(target.as_str()));
        manifests.push(desc);
        index.set_manifests(manifests);
        self.write_index(&index)
    }

    /// Removes the name `reference` (a bare digest removes every name of
    /// that manifest), then deletes blobs and unpacked layers that no
    /// remaining image uses.
    ///
    /// Layer directories are deleted even if a running container still has
    /// them as lower dirs: callers must not remove images in use.
    pub fn remove(&self, reference: &str) -> Result<(), Error> {
        let _lock = self.lock(true)?;
        let mut index = self.read_index()?;
        let doomed = matching(&index, reference)?;
        if doomed.is_empty() {
            return Err(Error::NotFound(reference.to_string()));
        }
        let remaining: Vec<Descriptor> = index
            .manifests()
            .iter()
            .enumerate()
            .filter(|(i, _)| !doomed.contains(i))
            .map(|(_, d)| d.clone())
            .collect();
        // Work out what stays before changing anything: if a remaining
        // manifest is unreadable we must not delete blobs it may need.
        let keep = self.referenced_blobs(&remaining)?;
        index.set_manifests(remaining);
        self.write_index(&index)?;
        self.collect_garbage(&keep)
    }

    /// Makes sure every layer of the image is unpacked (once per layer
    /// digest, shared by all images) and returns the layer directories.
    pub fn prepare(&self, reference: &str) -> Result<PreparedImage, Error> {
        // Shared: preparers run in parallel, but never alongside a remove's
        // garbage collection or an import.
        let _lock = self.lock(false)?;
        let index = self.read_index()?;
        let Some(&pos) = matching(&index, reference)?.first() else {
            return Err(Error::NotFound(reference.to_string()));
        };
        let desc = &index.manifests()[pos];
        let digest = desc.digest().to_string();
        let manifest = self.read_manifest(desc)?;
        let config = self.read_config(&manifest, &digest)?;
        let diff_ids = config.rootfs().diff_ids();
        check_layer_count(&manifest, &config, &digest)?;
        let layers = manifest
            .layers()
            .iter()
            .zip(diff_ids)
            .map(|(layer, diff_id)| self.unpack_once(layer, diff_id))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(PreparedImage {
            reference: ref_name(desc).unwrap_or(reference).to_string(),
            digest,
            config: ImageConfig::from_oci(config.config().as_ref()),
            layers,
        })
    }

    /// The directory a layer blob is (or will be) unpacked to.
    pub fn layer_path(&self, digest: &str) -> Result<PathBuf, Error> {
        Ok(self.layers_dir().join("sha256").join(digest_hex(digest)?))
    }

    fn oci_dir(&self) -> PathBuf {
        self.root.join("oci")
    }

    fn blobs_dir(&self) -> PathBuf {
        self.oci_dir().join("blobs").join("sha256")
    }

    fn layers_dir(&self) -> PathBuf {
        self.root.join("layers")
    }

    fn index_path(&self) -> PathBuf {
        self.oci_dir().join("index.json")
    }

    pub(super) fn blob_path(&self, digest: &str) -> Result<PathBuf, Error> {
        Ok(self.blobs_dir().join(digest_hex(digest)?))
    }

    /// flock on `<root>/lock`: exclusive for writers, shared for readers.
    /// Each call opens its own file description, so the lock also separates
    /// threads of one process. Released when the guard drops.
    pub(super) fn lock(&self, exclusive: bool) -> Result<Flock<File>, Error> {
        let path = self.root.join("lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_err(format!("opening {}", path.display())))?;
        let arg = if exclusive {
            FlockArg::LockExclusive
        } else {
            FlockArg::LockShared
        };
        Flock::lock(file, arg).map_err(|(_, errno)| Error::Io {
            context: format!("locking {}", path.display()),
            source: errno.into(),
        })
    }

    fn read_index(&self) -> Result<ImageIndex, Error> {
        let path = self.index_path();
        let bytes = fs::read(&path).map_err(io_err(format!("reading {}", path.display())))?;
        parse_json(&bytes, &path.display().to_string())
    }

    fn write_index(&self, index: &ImageIndex) -> Result<(), Error> {
        let bytes = serde_json::to_vec_pretty(index).map_err(|e| Error::Invalid {
            what: "store index".to_string(),
            reason: e.to_string(),
        })?;
        write_atomic(&self.index_path(), &bytes)
    }

    fn read_manifest(&self, desc: &Descriptor) -> Result<ImageManifest, Error> {
        let digest = desc.digest().to_string();
        let bytes = read_verified(&self.blob_path(&digest)?, &digest, desc.size(), JSON_LIMIT)?;
        parse_json(&bytes, &format!("manifest {digest}"))
    }

    fn read_config(
        &self,
        manifest: &ImageManifest,
        manifest_digest: &str,
    ) -> Result<ImageConfiguration, Error> {
        let desc = manifest.config();
        let digest = desc.digest().to_string();
        let bytes = read_verified(&self.blob_path(&digest)?, &digest, desc.size(), JSON_LIMIT)?;
        parse_json(
            &bytes,
            &format!("config {digest} of manifest {manifest_digest}"),
        )
    }

    fn info(&self, reference: &str, desc: &Descriptor) -> Result<ImageInfo, Error> {
        let manifest = self.read_manifest(desc)?;
        let config = self.read_config(&manifest, desc.digest().as_ref())?;
        Ok(image_info(reference, desc, &manifest, &config))
    }

    /// Imports the layout in `dir`; `origin` is what the user named, for
    /// messages. The caller holds the exclusive lock.
    fn import_layout(
        &self,
        dir: &Path,
        origin: &Path,
        name: Option<&str>,
    ) -> Result<Vec<ImageInfo>, Error> {
        let src = origin.display().to_string();
        let index_path = dir.join("index.json");
        if !dir.join("oci-layout").is_file() || !index_path.is_file() {
            return Err(Error::Invalid {
                what: src,
                reason: "not an OCI image layout or oci-archive (no oci-layout and index.json)"
                    .to_string(),
            });
        }
        let index_bytes = read_limited(&index_path, JSON_LIMIT)?;
        let index: ImageIndex = parse_json(&index_bytes, &format!("{src}: index.json"))?;
        let source = SourceLayout { dir, origin: &src };

        let mut found: Vec<(Option<String>, Resolved)> = Vec::new();
        for desc in index.manifests() {
            // A multi-platform index written straight into index.json.
            if desc
                .platform()
                .as_ref()
                .is_some_and(|p| !is_host_platform(p))
            {
                continue;
            }
            found.push((annotated_name(desc), source.resolve(desc, 0)?));
        }
        if found.is_empty() {
            return Err(Error::Invalid {
                what: src,
                reason: format!("its index lists no linux/{} image", host_arch()),
            });
        }

        let named: Vec<(String, &Resolved)> = match name {
            Some(name) => {
                let digests: HashSet<String> = found.iter().map(|(_, r)| r.digest()).collect();
                if digests.len() > 1 {
                    return Err(Error::AmbiguousName {
                        src,
                        count: digests.len(),
                    });
                }
                vec![(name.to_string(), &found[0].1)]
            }
            None => found
                .iter()
                .map(|(annotation, resolved)| match annotation {
                    // A bare tag (what skopeo and umoci write) is no name.
                    Some(a) if a.contains(['/', ':', '@']) => {
                        normalize_reference(a).map(|r| (r, resolved))
                    }
                    _ => Err(Error::NameRequired {
                        src: src.clone(),
                        digest: resolved.digest(),
                        annotation: annotation.clone(),
                    }),
                })
                .collect::<Result<_, _>>()?,
        };

        let mut copied = HashSet::new();
        for (_, resolved) in &named {
            if copied.insert(resolved.digest()) {
                self.store_image(&source, resolved)?;
            }
        }

        self.name_images(&named)?;
        Ok(named.iter().map(|(r, resolved)| resolved.info(r)).collect())
    }

    /// Points each name at its image in the store's index (replacing what
    /// the name pointed at before). The caller holds the exclusive lock.
    fn name_images(&self, named: &[(String, &Resolved)]) -> Result<(), Error> {
        let mut store_index = self.read_index()?;
        let mut manifests = store_index.manifests().clone();
        for (reference, resolved) in named {
            manifests.retain(|d| ref_name(d) != Some(reference.as_str()));
            let mut desc = Descriptor::new(
                resolved.descriptor.media_type().clone(),
                resolved.descriptor.size(),
                resolved.descriptor.digest().clone(),
            );
            let mut annotations = HashMap::from([(REF_NAME.to_string(), reference.clone())]);
            if let Some(source) = &resolved.source_digest {
                annotations.insert(SOURCE_DIGEST.to_string(), source.clone());
            }
            desc.set_annotations(Some(annotations));
            manifests.push(desc);
        }
        store_index.set_manifests(manifests);
        self.write_index(&store_index)
    }

    /// What the registry's tag pointed at when `reference` was last pulled.
    pub(super) fn source_digest(&self, reference: &str) -> Result<Option<String>, Error> {
        let _lock = self.lock(false)?;
        let index = self.read_index()?;
        Ok(index
            .manifests()
            .iter()
            .find(|d| ref_name(d) == Some(reference))
            .and_then(|d| d.annotations().as_ref()?.get(SOURCE_DIGEST).cloned()))
    }

    /// Finishes a pull: moves the layer blobs fetched into `staging` into
    /// the store, writes config and manifest, and names the image. Under
    /// the exclusive lock, so garbage collection never sees the blobs
    /// unreferenced. A layer that was in the store when the pull began but
    /// has since been collected is reported as `Ok(Err(digest))`: the
    /// caller fetches it and tries again.
    pub(super) fn commit_pull(
        &self,
        reference: &str,
        resolved: &Resolved,
        staging: &Path,
    ) -> Result<Result<ImageInfo, String>, Error> {
        let _lock = self.lock(true)?;
        for layer in resolved.manifest.layers() {
            let digest = layer.digest().to_string();
            let dest = self.blob_path(&digest)?;
            let fetched = staging.join(digest_hex(&digest)?);
            if fetched.exists() {
                if dest.exists() {
                    let _ = fs::remove_file(&fetched);
                } else {
                    fs::rename(&fetched, &dest)
                        .map_err(io_err(format!("moving blob {digest} into the store")))?;
                }
            } else if !dest.exists() {
                return Ok(Err(digest));
            }
        }
        self.store_config_and_manifest(resolved)?;
        self.name_images(&[(reference.to_string(), resolved)])?;
        Ok(Ok(resolved.info(reference)))
    }

    /// Copies one image's blobs into the store, manifest last. Blobs already
    /// present were verified when they were stored and are not copied again.
    fn store_image(&self, source: &SourceLayout<'_>, resolved: &Resolved) -> Result<(), Error> {
        for layer in resolved.manifest.layers() {
            let digest = layer.digest().to_string();
            let dest = self.blob_path(&digest)?;
            if dest.exists() {
                continue;
            }
            let path = source.blob(&digest)?;
            let file = File::open(&path).map_err(io_err(format!(
                "{}: opening layer blob {digest}",
                source.origin
            )))?;
            store_verified(&dest, BufReader::new(file), &digest, layer.size())?;
        }
        self.store_config_and_manifest(resolved)
    }

    /// Stores an image's config and then its manifest, once its layers
    /// are in: a manifest in the store means the whole image is.
    fn store_config_and_manifest(&self, resolved: &Resolved) -> Result<(), Error> {
        let config = self.blob_path(resolved.manifest.config().digest().as_ref())?;
        if !config.exists() {
            write_atomic(&config, &resolved.config_bytes)?;
        }
        let manifest = self.blob_path(&resolved.digest())?;
        if !manifest.exists() {
            write_atomic(&manifest, &resolved.manifest_bytes)?;
        }
        Ok(())
    }

    /// Hex digests of every blob the given images need.
    fn referenced_blobs(&self, images: &[Descriptor]) -> Result<HashSet<String>, Error> {
        let mut keep = HashSet::new();
        for desc in images {
            let manifest = self.read_manifest(desc)?;
            let digests = std::iter::once(desc.digest())
                .chain(std::iter::once(manifest.config().digest()))
                .chain(manifest.layers().iter().map(|l| l.digest()));
            for digest in digests {
                keep.insert(digest_hex(digest.as_ref())?.to_string());
            }
        }
        Ok(keep)
    }

    /// Deletes blobs and layer directories not in `keep`, and leftovers of
    /// crashed writers. The caller holds the exclusive lock, so no import or
    /// prepare is running and every temporary entry is stale.
    fn collect_garbage(&self, keep: &HashSet<String>) -> Result<(), Error> {
        let stale = |name: &str| !keep.contains(name);
        remove_entries(&self.blobs_dir(), stale)?;
        remove_entries(&self.layers_dir().join("sha256"), stale)?;
        remove_entries(&self.layers_dir(), |name| name.starts_with("tmp-"))?;
        super::pull::remove_stale_staging(&self.root);
        remove_entries(&self.root, |name| name.starts_with("tmp-import-"))
    }

    /// Unpacks one layer unless it already is. Unpacking goes to a private
    /// `tmp-*` directory renamed into place with RENAME_NOREPLACE: a final
    /// directory is always complete, and when two preparers race, the loser
    /// throws its identical copy away.
    fn unpack_once(&self, layer: &Descriptor, diff_id: &str) -> Result<PathBuf, Error> {
        let digest = layer.digest().to_string();
        let final_dir = self.layer_path(&digest)?;
        if final_dir.is_dir() {
            return Ok(final_dir);
        }
        let blob = self.blob_path(&digest)?;
        let tmp = self.layers_dir().join(format!("tmp-{}", unique_suffix()));
        DirBuilder::new()
            .mode(0o755)
            .create(&tmp)
            .and_then(|()| fs::set_permissions(&tmp, Permissions::from_mode(0o755)))
            .map_err(io_err(format!("creating {}", tmp.display())))?;
        let media_type = layer.media_type().to_string();
        let result = unpack_blob(
            &blob,
            &media_type,
            &digest,
            layer.size(),
            Some(diff_id),
            &tmp,
        )
        .and_then(|_| move_into_place(&tmp, &final_dir));
        match result {
            Ok(true) => Ok(final_dir),
            Ok(false) | Err(_) => {
                let _ = fs::remove_dir_all(&tmp);
                result.map(|_| final_dir)
            }
        }
    }
}

/// Renames the unpacked `tmp` to `final_dir` unless that exists already.
/// Returns false when another preparer got there first; its directory is
/// complete (it was renamed into place whole) and stays untouched.
fn move_into_place(tmp: &Path, final_dir: &Path) -> Result<bool, Error> {
    match renameat2(
        AT_FDCWD,
        tmp,
        AT_FDCWD,
        final_dir,
        RenameFlags::RENAME_NOREPLACE,
    ) {
        Ok(()) => Ok(true),
        Err(Errno::EEXIST) => Ok(false),
        Err(errno) => Err(Error::Io {
            context: format!("moving {} into {}", tmp.display(), final_dir.display()),
            source: errno.into(),
        }),
    }
}

/// An import source: a layout directory (an extracted archive included).
struct SourceLayout<'a> {
    dir: &'a Path,
    origin: &'a str,
}

impl SourceLayout<'_> {
    fn blob(&self, digest: &str) -> Result<PathBuf, Error> {
        Ok(self
            .dir
            .join("blobs")
            .join("sha256")
            .join(digest_hex(digest)?))
    }

    fn read_json<T: DeserializeOwned>(
        &self,
        desc: &Descriptor,
        what: &str,
    ) -> Result<(Vec<u8>, T), Error> {
        let digest = desc.digest().to_string();
        let bytes = read_verified(&self.blob(&digest)?, &digest, desc.size(), JSON_LIMIT)?;
        let value = parse_json(&bytes, &format!("{}: {what} {digest}", self.origin))?;
        Ok((bytes, value))
    }

    /// Follows `desc` down to one image manifest (picking the host's platform from
    /// indexes) and checks the manifest, its config and its layer types.
    fn resolve(&self, desc: &Descriptor, depth: usize) -> Result<Resolved, Error> {
        let digest = desc.digest().to_string();
        let media_type = desc.media_type().to_string();
        if media_type == OCI_INDEX || media_type == DOCKER_LIST {
            if depth >= MAX_INDEX_DEPTH {
                return Err(Error::Invalid {
                    what: format!("{}: image index {digest}", self.origin),
                    reason: "indexes nested too deeply".to_string(),
                });
            }
            let (_, index): (_, ImageIndex) = self.read_json(desc, "image index")?;
            let chosen = pick_platform(&index, &digest)?;
            return self.resolve(chosen, depth + 1);
        }
        if media_type != OCI_MANIFEST && media_type != DOCKER_MANIFEST {
            return Err(Error::Invalid {
                what: format!("{}: {digest}", self.origin),
                reason: format!("unsupported manifest media type {media_type}"),
            });
        }
        let (manifest_bytes, manifest): (_, ImageManifest) = self.read_json(desc, "manifest")?;
        let (config_bytes, config): (_, ImageConfiguration) =
            self.read_json(manifest.config(), "config")?;
        for layer in manifest.layers() {
            let layer_digest = layer.digest().to_string();
            digest_hex(&layer_digest)?;
            // Refuse zstd & co. now rather than at the first pod start.
            compression_of(layer.media_type().as_ref(), &layer_digest)?;
        }
        check_layer_count(&manifest, &config, &digest)?;
        Ok(Resolved {
            source_digest: None,
            descriptor: desc.clone(),
            manifest_bytes,
            manifest,
            config_bytes,
            config,
        })
    }
}

pub(super) fn check_layer_count(
    manifest: &ImageManifest,
    config: &ImageConfiguration,
    digest: &str,
) -> Result<(), Error> {
    let (layers, diff_ids) = (manifest.layers().len(), config.rootfs().diff_ids().len());
    if layers == diff_ids {
        Ok(())
    } else {
        Err(Error::Invalid {
            what: format!("manifest {digest}"),
            reason: format!("{layers} layers but its config lists {diff_ids} diff_ids"),
        })
    }
}

pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, Error> {
    serde_json::from_slice(bytes).map_err(|e| Error::Invalid {
        what: what.to_string(),
        reason: e.to_string(),
    })
}

/// The name an import source gives an image: containerd's full name when
/// present, else the OCI ref.name (which may be only a tag).
fn annotated_name(desc: &Descriptor) -> Option<String> {
    let annotations = desc.annotations().as_ref()?;
    annotations
        .get(CONTAINERD_NAME)
        .filter(|n| normalize_reference(n).is_ok())
        .or_else(|| annotations.get(REF_NAME))
        .cloned()
}

/// The host's platform decides which image of a multi-arch index runs.
fn is_host_platform(platform: &oci_spec::image::Platform) -> bool {
    *platform.os() == Os::Linux && *platform.architecture() == host_arch()
}

/// This machine's architecture in OCI's (and Kubernetes') words: `amd64`,
/// `arm64`, ….
pub fn host_arch() -> Arch {
    match std::env::consts::ARCH {
        "x86_64" => Arch::Amd64,
        "aarch64" => Arch::ARM64,
        other => Arch::Other(other.to_string()),
    }
}

pub(super) fn pick_platform<'a>(
    index: &'a ImageIndex,
    digest: &str,
) -> Result<&'a Descriptor, Error> {
    let manifests = index.manifests();
    if let Some(desc) = manifests
        .iter()
        .find(|d| d.platform().as_ref().is_some_and(is_host_platform))
    {
        return Ok(desc);
    }
    match manifests.as_slice() {
        [only] if only.platform().is_none() => Ok(only),
        _ => Err(Error::NoPlatform {
            digest: digest.to_string(),
            count: manifests.len(),
        }),
    }
}

/// Indexes of the store entries `query` names, see [`ImageStore::lookup`].
fn matching(index: &ImageIndex, query: &str) -> Result<Vec<usize>, Error> {
    let entries = index.manifests().iter().enumerate();
    if is_sha256_digest(query) {
        return Ok(entries
            .filter(|(_, d)| d.digest().to_string() == query)
            .map(|(i, _)| i)
            .collect());
    }
    let wanted = Reference::parse(query)?;
    let full = wanted.to_string();
    let exact: Vec<usize> = entries
        .clone()
        .filter(|(_, d)| ref_name(d) == Some(full.as_str()))
        .map(|(i, _)| i)
        .collect();
    if !exact.is_empty() {
        return Ok(exact);
    }
    let Some(digest) = &wanted.digest else {
        return Ok(Vec::new());
    };
    let name = wanted.name();
    Ok(entries
        .filter(|(_, d)| {
            d.digest().to_string() == *digest
                && ref_name(d)
                    .and_then(|r| Reference::parse(r).ok())
                    .is_some_and(|r| r.name() == name)
        })
        .map(|(i, _)| i)
        .collect())
}

fn image_info(
    reference: &str,
    desc: &Descriptor,
    manifest: &ImageManifest,
    config: &ImageConfiguration,
) -> ImageInfo {
    let layers: u64 = manifest.layers().iter().map(|l| l.size()).sum();
    ImageInfo {
        reference: reference.to_string(),
        digest: desc.digest().to_string(),
        size: desc.size() + manifest.config().size() + layers,
        created: config.created().clone(),
    }
}

fn read_limited(path: &Path, limit: u64) -> Result<Vec<u8>, Error> {
    let file = File::open(path).map_err(io_err(format!("opening {}", path.display())))?;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err(format!("reading {}", path.display())))?;
    if bytes.len() as u64 > limit {
        return Err(Error::Invalid {
            what: path.display().to_string(),
            reason: format!("larger than {limit} bytes"),
        });
    }
    Ok(bytes)
}

/// Removes the entries of `dir` whose names `doomed` selects.
fn remove_entries(dir: &Path, doomed: impl Fn(&str) -> bool) -> Result<(), Error> {
    let entries = fs::read_dir(dir).map_err(io_err(format!("listing {}", dir.display())))?;
    for entry in entries {
        let entry = entry.map_err(io_err(format!("listing {}", dir.display())))?;
        let name = entry.file_name();
        if !doomed(&name.to_string_lossy()) {
            continue;
        }
        let path = entry.path();
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        let result = if is_dir {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        match result {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(io_err(format!("removing {}", path.display()))(e));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Extracts the parts of an oci-archive that make an OCI layout
/// (`oci-layout`, `index.json`, `blobs/<algorithm>/<digest>`) into the empty
/// directory `dest`. Everything else (docker's `manifest.json`, links,
/// devices) is ignored, and no archive path is used as given: the
/// destination is rebuilt from checked name components, so the archive
/// cannot write anywhere else.
fn extract_archive(src: &Path, dest: &Path) -> Result<(), Error> {
    let what = src.display().to_string();
    let file = File::open(src).map_err(io_err(format!("opening {what}")))?;
    let mut reader = BufReader::new(file);
    let gzip = reader
        .fill_buf()
        .map_err(io_err(format!("reading {what}")))?
        .starts_with(&[0x1f, 0x8b]);
    let stream: Box<dyn Read> = if gzip {
        Box::new(MultiGzDecoder::new(reader))
    } else {
        Box::new(reader)
    };
    let mut archive = tar::Archive::new(stream);
    for entry in archive
        .entries()
        .map_err(io_err(format!("reading {what}")))?
    {
        let mut entry = entry.map_err(io_err(format!("reading {what}")))?;
        if !matches!(
            entry.header().entry_type(),
            tar::EntryType::Regular | tar::EntryType::Continuous
        ) {
            continue;
        }
        let raw = entry.path_bytes().into_owned();
        let mut parts = Vec::new();
        for component in Path::new(std::ffi::OsStr::from_bytes(&raw)).components() {
            match component {
                Component::Normal(part) => parts.push(part.to_string_lossy().into_owned()),
                Component::CurDir | Component::RootDir => {}
                _ => {
                    parts.clear();
                    break;
                }
            }
        }
        let target = match parts.as_slice() {
            [name] if name == "oci-layout" || name == "index.json" => dest.join(name),
            [blobs, algorithm, digest]
                if blobs == "blobs"
                    && !algorithm.is_empty()
                    && algorithm
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                    && digest.bytes().all(|b| b.is_ascii_alphanumeric()) =>
            {
                let dir = dest.join("blobs").join(algorithm);
                fs::create_dir_all(&dir).map_err(io_err(format!("creating {}", dir.display())))?;
                dir.join(digest)
            }
            _ => continue,
        };
        let mut out =
            File::create(&target).map_err(io_err(format!("creating {}", target.display())))?;
        io::copy(&mut entry, &mut out).map_err(io_err(format!(
            "extracting {} from {what}",
            String::from_utf8_lossy(&raw)
        )))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn losing_the_unpack_race_keeps_the_winner() {
        let tmp = tempfile::tempdir().unwrap();
        let (mine, theirs, fresh) = (
            tmp.path().join("tmp-mine"),
            tmp.path().join("final"),
            tmp.path().join("fresh"),
        );
        fs::create_dir(&mine).unwrap();
        fs::write(mine.join("mine"), "m").unwrap();
        fs::create_dir(&theirs).unwrap();
        fs::write(theirs.join("theirs"), "t").unwrap();

        assert!(!move_into_place(&mine, &theirs).unwrap());
        assert!(theirs.join("theirs").exists() && !theirs.join("mine").exists());
        assert!(
            mine.join("mine").exists(),
            "the caller removes its own copy"
        );

        assert!(move_into_place(&mine, &fresh).unwrap());
        assert!(fresh.join("mine").exists() && !mine.exists());
    }
}
