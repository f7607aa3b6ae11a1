//! OCI image layouts: the names and index helpers podlab's store shares
//! with the writer, and the writer itself (reproducible layer tarballs and
//! complete layouts), which `cargo xtask fixtures`, the pull benchmark and
//! tests build images with.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use oci_spec::image::{
    Arch, ConfigBuilder, Descriptor, ImageConfigurationBuilder, ImageIndex, ImageIndexBuilder,
    ImageManifestBuilder, MediaType, Os, RootFsBuilder,
};

use crate::digest::{sha256_digest, HashingReader};
use crate::{io_err, Error, ImageConfig};

/// The index annotation holding an image's name.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// The `oci-layout` file of every layout.
pub const OCI_LAYOUT: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;

/// An image index (schema 2) listing `manifests`.
pub fn new_index(manifests: Vec<Descriptor>) -> Result<ImageIndex, Error> {
    ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(manifests)
        .build()
        .map_err(|e| Error::Invalid {
            what: "image index".to_string(),
            reason: e.to_string(),
        })
}

/// The name a descriptor carries in its [`REF_NAME`] annotation.
pub fn ref_name(desc: &Descriptor) -> Option<&str> {
    desc.annotations()
        .as_ref()
        .and_then(|a| a.get(REF_NAME))
        .map(String::as_str)
}

/// Packs `dir` into a gzipped layer tar that depends only on the tree's
/// names, contents, modes and symlink targets: entries sorted by name,
/// mtime 0, uid/gid 0. Hard links are stored as separate files; sockets and
/// devices are refused.
pub fn tar_gz_dir(dir: &Path) -> Result<Vec<u8>, Error> {
    let mut builder = tar::Builder::new(GzEncoder::new(Vec::new(), flate2::Compression::default()));
    append_tree(&mut builder, dir, Path::new(""))?;
    let encoder = builder
        .into_inner()
        .map_err(io_err(format!("packing {}", dir.display())))?;
    encoder
        .finish()
        .map_err(io_err(format!("compressing {}", dir.display())))
}

/// Like [`tar_gz_dir`], uncompressed (a `tar` layer).
pub fn tar_dir(dir: &Path) -> Result<Vec<u8>, Error> {
    let mut builder = tar::Builder::new(Vec::new());
    append_tree(&mut builder, dir, Path::new(""))?;
    builder
        .into_inner()
        .map_err(io_err(format!("packing {}", dir.display())))
}

fn append_tree<W: Write>(
    builder: &mut tar::Builder<W>,
    root: &Path,
    rel: &Path,
) -> Result<(), Error> {
    let dir = root.join(rel);
    let mut names: Vec<_> = fs::read_dir(&dir)
        .map_err(io_err(format!("listing {}", dir.display())))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(io_err(format!("listing {}", dir.display())))?;
    names.sort();
    for name in names {
        let rel = rel.join(&name);
        let path = root.join(&rel);
        let meta = fs::symlink_metadata(&path)
            .map_err(io_err(format!("inspecting {}", path.display())))?;
        let mut header = tar::Header::new_gnu();
        header.set_mode(meta.permissions().mode() & 0o7777);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        let packing = io_err(format!("packing {}", path.display()));
        let file_type = meta.file_type();
        if file_type.is_dir() {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_size(0);
            builder
                .append_data(&mut header, &rel, io::empty())
                .map_err(packing)?;
            append_tree(builder, root, &rel)?;
        } else if file_type.is_symlink() {
            let target =
                fs::read_link(&path).map_err(io_err(format!("reading {}", path.display())))?;
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            builder
                .append_link(&mut header, &rel, &target)
                .map_err(packing)?;
        } else if file_type.is_file() {
            let file =
                fs::File::open(&path).map_err(io_err(format!("opening {}", path.display())))?;
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(meta.len());
            builder
                .append_data(&mut header, &rel, file)
                .map_err(packing)?;
        } else {
            return Err(Error::Invalid {
                what: path.display().to_string(),
                reason: "only directories, files and symlinks can go into a layer".to_string(),
            });
        }
    }
    Ok(())
}

/// Writes (or adds to) an OCI image layout in `dir` holding one image made
/// of `layers` (gzipped or plain tar blobs, bottom first) and `config`,
/// named `reference` in the index's `org.opencontainers.image.ref.name`
/// annotation (written as given, so a bare tag like skopeo's is possible).
/// An existing entry of the same name is replaced. Returns the manifest
/// digest.
pub fn write_layout(
    dir: &Path,
    reference: &str,
    layers: &[Vec<u8>],
    config: &ImageConfig,
) -> Result<String, Error> {
    let blobs = dir.join("blobs").join("sha256");
    fs::create_dir_all(&blobs).map_err(io_err(format!("creating {}", blobs.display())))?;
    write_file(&dir.join("oci-layout"), OCI_LAYOUT)?;

    let mut layer_descriptors = Vec::new();
    let mut diff_ids = Vec::new();
    for layer in layers {
        let gzip = layer.starts_with(&[0x1f, 0x8b]);
        let (media_type, diff_id) = if gzip {
            let (diff_id, _) = HashingReader::new(MultiGzDecoder::new(&layer[..]))
                .finish()
                .map_err(io_err("decompressing a layer"))?;
            (MediaType::ImageLayerGzip, diff_id)
        } else {
            (MediaType::ImageLayer, sha256_digest(layer))
        };
        layer_descriptors.push(write_blob(&blobs, media_type, layer)?);
        diff_ids.push(diff_id);
    }

    let mut runtime = ConfigBuilder::default();
    if !config.env.is_empty() {
        runtime = runtime.env(config.env.clone());
    }
    if !config.entrypoint.is_empty() {
        runtime = runtime.entrypoint(config.entrypoint.clone());
    }
    if !config.cmd.is_empty() {
        runtime = runtime.cmd(config.cmd.clone());
    }
    if let Some(dir) = &config.working_dir {
        runtime = runtime.working_dir(dir.clone());
    }
    if let Some(user) = &config.user {
        runtime = runtime.user(user.clone());
    }
    let image_config = ImageConfigurationBuilder::default()
        .architecture(Arch::Amd64)
        .os(Os::Linux)
        .config(runtime.build().map_err(spec_error)?)
        .rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(diff_ids)
                .build()
                .map_err(spec_error)?,
        )
        .build()
        .map_err(spec_error)?;
    let config_descriptor = write_blob(&blobs, MediaType::ImageConfig, &to_json(&image_config)?)?;

    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(config_descriptor)
        .layers(layer_descriptors)
        .build()
        .map_err(spec_error)?;
    let mut manifest_descriptor =
        write_blob(&blobs, MediaType::ImageManifest, &to_json(&manifest)?)?;
    manifest_descriptor.set_annotations(Some(HashMap::from([(
        REF_NAME.to_string(),
        reference.to_string(),
    )])));
    let digest = manifest_descriptor.digest().to_string();

    let index_path = dir.join("index.json");
    let mut index = match fs::read(&index_path) {
        Ok(bytes) => serde_json::from_slice::<ImageIndex>(&bytes).map_err(|e| Error::Invalid {
            what: index_path.display().to_string(),
            reason: e.to_string(),
        })?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => new_index(Vec::new())?,
        Err(e) => return Err(io_err(format!("reading {}", index_path.display()))(e)),
    };
    let mut manifests = index.manifests().clone();
    manifests.retain(|d| ref_name(d) != Some(reference));
    manifests.push(manifest_descriptor);
    index.set_manifests(manifests);
    write_file(&index_path, &to_json(&index)?)?;
    Ok(digest)
}

fn write_blob(blobs: &Path, media_type: MediaType, bytes: &[u8]) -> Result<Descriptor, Error> {
    let digest = sha256_digest(bytes);
    let path = blobs.join(&digest["sha256:".len()..]);
    if !path.exists() {
        write_file(&path, bytes)?;
    }
    let digest = oci_spec::image::Digest::try_from(digest.as_str()).map_err(spec_error)?;
    Ok(Descriptor::new(media_type, bytes.len() as u64, digest))
}

/// Replaces `path` through a temporary file and a rename, so an
/// interrupted run never leaves a half-written blob that a later run takes
/// as present. (The runtime's own writes go through its `atomic_file`; this
/// crate links nothing of the runtime.)
fn write_file(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let seq = SEQ.fetch_add(1, Ordering::Relaxed);
    let tmp = path.with_file_name(format!(".tmp-{name}-{}-{seq}", std::process::id()));
    let result = fs::write(&tmp, bytes).and_then(|()| fs::rename(&tmp, path));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.map_err(io_err(format!("writing {}", path.display())))
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, Error> {
    serde_json::to_vec(value).map_err(|e| Error::Invalid {
        what: "image JSON".to_string(),
        reason: e.to_string(),
    })
}

fn spec_error(e: impl std::fmt::Display) -> Error {
    Error::Invalid {
        what: "image metadata".to_string(),
        reason: e.to_string(),
    }
}
