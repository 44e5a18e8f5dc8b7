//! Images the tests make themselves, with no network: real tar layers compressed with gzip, a config whose
//! `rootfs.diff_ids` are the uncompressed layer digests (so podman can unpack what it pulls), manifests,
//! a multi-platform index, and an artifact with a subject; and OCI image layouts on disk to hand to skopeo
//! and podman, plus the reader that checks what came back.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};

use super::http::{OCI_CONFIG, OCI_EMPTY, OCI_INDEX, OCI_LAYER_GZIP, OCI_MANIFEST, sha256};

/// Content-addressed bytes with their media type.
#[derive(Clone, Debug)]
pub struct Blob {
    pub media_type: String,
    pub digest: String,
    pub bytes: Vec<u8>,
}

impl Blob {
    pub fn new(media_type: &str, bytes: Vec<u8>) -> Blob {
        Blob {
            media_type: media_type.to_owned(),
            digest: sha256(&bytes),
            bytes,
        }
    }

    pub fn json(media_type: &str, value: &Value) -> Blob {
        // serde_json writes compact JSON; the digest is of exactly these bytes.
        let bytes = serde_json::to_vec(value).unwrap_or_default();
        Blob::new(media_type, bytes)
    }

    pub fn descriptor(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.bytes.len()})
    }

    /// The hex part of the digest.
    pub fn hex(&self) -> &str {
        self.digest.trim_start_matches("sha256:")
    }
}

/// One single-platform image.
#[derive(Clone, Debug)]
pub struct Image {
    pub manifest: Blob,
    pub config: Blob,
    pub layers: Vec<Blob>,
    /// sha256 of each uncompressed layer tar, as the config lists them.
    pub diff_ids: Vec<String>,
}

impl Image {
    /// Config and layers, in that order.
    pub fn blobs(&self) -> Vec<&Blob> {
        std::iter::once(&self.config).chain(&self.layers).collect()
    }
}

/// A multi-platform index and its images.
#[derive(Clone, Debug)]
pub struct Index {
    pub index: Blob,
    pub images: Vec<Image>,
}

/// The files of one layer: path in the image and content.
pub type Files<'a> = &'a [(&'a str, &'a [u8])];

/// The architecture of this machine in OCI's words (podman warns, or refuses, on a foreign one).
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// A tar of the files (with their parent directories), deterministic: fixed owner, mode and time.
pub fn tar_of(files: Files) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut dirs = std::collections::BTreeSet::new();
    for (path, content) in files {
        let mut parent = String::new();
        let parts: Vec<&str> = path.split('/').collect();
        for dir in &parts[..parts.len() - 1] {
            parent.push_str(dir);
            parent.push('/');
            if dirs.insert(parent.clone()) {
                let mut h = tar::Header::new_gnu();
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_mtime(1_700_000_000);
                h.set_size(0);
                h.set_cksum();
                builder
                    .append_data(&mut h, &parent, std::io::empty())
                    .unwrap_or_else(|e| panic!("tar dir {parent}: {e}"));
            }
        }
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_mtime(1_700_000_000);
        h.set_size(content.len() as u64);
        h.set_cksum();
        builder
            .append_data(&mut h, path, *content)
            .unwrap_or_else(|e| panic!("tar {path}: {e}"));
    }
    builder.into_inner().unwrap_or_else(|e| panic!("tar: {e}"))
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
    enc.write_all(bytes)
        .and_then(|_| enc.finish())
        .unwrap_or_else(|e| panic!("gzip: {e}"))
}

pub fn gunzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap_or_else(|e| panic!("gunzip: {e}"));
    out
}

/// The regular files of a tar, path to content.
pub fn untar(bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
    use std::io::Read;
    let mut out = BTreeMap::new();
    let mut archive = tar::Archive::new(bytes);
    let entries = archive.entries().unwrap_or_else(|e| panic!("untar: {e}"));
    for entry in entries {
        let mut entry = entry.unwrap_or_else(|e| panic!("untar entry: {e}"));
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let path = entry
            .path()
            .map(|p| p.to_string_lossy().trim_start_matches("./").to_owned())
            .unwrap_or_else(|e| panic!("untar path: {e}"));
        let mut content = Vec::new();
        entry
            .read_to_end(&mut content)
            .unwrap_or_else(|e| panic!("untar read: {e}"));
        out.insert(path, content);
    }
    out
}

/// An image for `os/arch` with one layer per entry of `layers`; `label` makes its config unique.
pub fn image(arch: &str, label: &str, layers: &[Files]) -> Image {
    let mut blobs = Vec::new();
    let mut diff_ids = Vec::new();
    for files in layers {
        let tar = tar_of(files);
        diff_ids.push(sha256(&tar));
        blobs.push(Blob::new(OCI_LAYER_GZIP, gzip(&tar)));
    }
    let config = Blob::json(
        OCI_CONFIG,
        &json!({
            "architecture": arch,
            "os": "linux",
            "config": {"Cmd": ["/hello"], "Labels": {"berth.test": label}},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": layers.iter().map(|_| json!({"created_by": "berth e2e test"})).collect::<Vec<_>>(),
        }),
    );
    let manifest = Blob::json(
        OCI_MANIFEST,
        &json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config.descriptor(),
            "layers": blobs.iter().map(Blob::descriptor).collect::<Vec<_>>(),
        }),
    );
    Image {
        manifest,
        config,
        layers: blobs,
        diff_ids,
    }
}

/// A three-layer image for this machine's architecture, distinct per `label`.
pub fn sample_image(label: &str) -> Image {
    let hello = format!("hello from {label}\n");
    let big: Vec<u8> = (0..300_000u32).flat_map(|i| i.to_le_bytes()).collect();
    image(
        host_arch(),
        label,
        &[
            &[
                ("hello", hello.as_bytes()),
                ("etc/os-release", b"ID=berth-test\n"),
            ],
            &[("usr/share/data.bin", &big)],
            &[("etc/motd", label.as_bytes())],
        ],
    )
}

/// An index of two platform images (linux/amd64 and linux/arm64), distinct per `label`.
pub fn multi_platform_index(label: &str) -> Index {
    let images: Vec<Image> = ["amd64", "arm64"]
        .iter()
        .map(|arch| {
            let text = format!("{label} for {arch}\n");
            image(
                arch,
                &format!("{label}-{arch}"),
                &[
                    &[("arch.txt", text.as_bytes())],
                    &[("etc/motd", b"multi\n")],
                ],
            )
        })
        .collect();
    let manifests: Vec<Value> = images
        .iter()
        .zip(["amd64", "arm64"])
        .map(|(img, arch)| {
            let mut d = img.manifest.descriptor();
            d["platform"] = json!({"architecture": arch, "os": "linux"});
            d
        })
        .collect();
    let index = Blob::json(
        OCI_INDEX,
        &json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}),
    );
    Index { index, images }
}

/// The empty config of artifacts (`{}`), as the image spec defines it.
pub fn empty_config() -> Blob {
    Blob::new(OCI_EMPTY, b"{}".to_vec())
}

/// An artifact manifest of `artifact_type` with one payload layer, pointing at `subject`.
pub fn artifact(artifact_type: &str, payload: &Blob, subject: &Blob) -> Blob {
    Blob::json(
        OCI_MANIFEST,
        &json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": empty_config().descriptor(),
            "layers": [payload.descriptor()],
            "subject": subject.descriptor(),
            "annotations": {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"},
        }),
    )
}

/// Writes an OCI image layout: `refs` are (tag, top-level manifest or index), `blobs` everything they need.
pub fn write_layout<'a>(
    dir: &Path,
    refs: &[(&str, &Blob)],
    blobs: impl IntoIterator<Item = &'a Blob>,
) {
    let blob_dir = dir.join("blobs").join("sha256");
    std::fs::create_dir_all(&blob_dir).unwrap_or_else(|e| panic!("{}: {e}", blob_dir.display()));
    let write = |path: &Path, bytes: &[u8]| {
        std::fs::write(path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    write(
        &dir.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    );
    for (_, top) in refs {
        write(&blob_dir.join(top.hex()), &top.bytes);
    }
    for blob in blobs {
        write(&blob_dir.join(blob.hex()), &blob.bytes);
    }
    let manifests: Vec<Value> = refs
        .iter()
        .map(|(tag, top)| {
            let mut d = top.descriptor();
            d["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
            d
        })
        .collect();
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests});
    write(
        &dir.join("index.json"),
        &serde_json::to_vec(&index).unwrap_or_default(),
    );
}

/// Writes the layout of one image under `tag`.
pub fn write_image_layout(dir: &Path, tag: &str, img: &Image) {
    write_layout(dir, &[(tag, &img.manifest)], img.blobs());
}

/// The descriptor that `index.json` of a layout holds for `tag`.
pub fn layout_ref(dir: &Path, tag: &str) -> Value {
    let path = dir.join("index.json");
    let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let index: Value =
        serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    index["manifests"]
        .as_array()
        .and_then(|m| {
            m.iter()
                .find(|d| d["annotations"]["org.opencontainers.image.ref.name"] == tag)
                .cloned()
        })
        .unwrap_or_else(|| panic!("no {tag} in {}: {index}", path.display()))
}

/// Every blob of a layout, by digest, each checked against its file name (so a corrupt copy fails here).
pub fn layout_blobs(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let blob_dir = dir.join("blobs").join("sha256");
    let mut out = BTreeMap::new();
    let entries =
        std::fs::read_dir(&blob_dir).unwrap_or_else(|e| panic!("{}: {e}", blob_dir.display()));
    for entry in entries {
        let path = entry
            .unwrap_or_else(|e| panic!("{}: {e}", blob_dir.display()))
            .path();
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let digest = sha256(&bytes);
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        assert_eq!(
            digest,
            format!("sha256:{name}"),
            "{} holds other bytes than its name says",
            path.display()
        );
        out.insert(digest, bytes);
    }
    out
}

/// The same blobs keyed by digest, for comparing with [`layout_blobs`].
pub fn by_digest<'a>(blobs: impl IntoIterator<Item = &'a Blob>) -> BTreeMap<String, Vec<u8>> {
    blobs
        .into_iter()
        .map(|b| (b.digest.clone(), b.bytes.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_round_trip_and_diff_ids_match() {
        let img = sample_image("unit");
        assert_eq!(img.layers.len(), 3);
        for (layer, diff_id) in img.layers.iter().zip(&img.diff_ids) {
            assert_eq!(&sha256(&gunzip(&layer.bytes)), diff_id);
        }
        let files = untar(&gunzip(&img.layers[0].bytes));
        assert_eq!(
            files.get("hello").map(Vec::as_slice),
            Some(&b"hello from unit\n"[..])
        );
        // Deterministic: the same label gives the same digests.
        assert_eq!(sample_image("unit").manifest.digest, img.manifest.digest);
        assert_ne!(sample_image("other").manifest.digest, img.manifest.digest);
    }
}
