//! An image with one large layer, written to an OCI layout as a stream: the layer is an uncompressed tar
//! of one file of seeded pseudo-random bytes, generated and hashed a block at a time, so a test can push
//! hundreds of MiB (long enough to kill a server mid-upload) without holding them in memory.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;

use serde_json::json;
use sha2::{Digest, Sha256};

use super::http::{OCI_CONFIG, OCI_MANIFEST};
use super::images::{Blob, host_arch, write_layout};
use super::rng::Rng;

/// An uncompressed tar layer.
const OCI_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// Bytes generated at a time.
const BLOCK: usize = 1024 * 1024;

/// What [`write_big_image_layout`] wrote.
pub struct BigImage {
    pub manifest: Blob,
    /// `sha256:...` of the layer.
    pub layer_digest: String,
    pub layer_size: u64,
}

/// Writes an OCI layout in `dir` holding, under `tag`, an image whose one layer is a tar of a file of
/// `size` bytes from `seed`.
pub fn write_big_image_layout(dir: &Path, tag: &str, size: u64, seed: u64) -> BigImage {
    let blob_dir = dir.join("blobs").join("sha256");
    std::fs::create_dir_all(&blob_dir).unwrap_or_else(|e| panic!("{}: {e}", blob_dir.display()));
    let partial = dir.join("layer.partial");
    let (layer_digest, layer_size) = write_layer(&partial, size, seed);
    let hex = layer_digest.trim_start_matches("sha256:");
    std::fs::rename(&partial, blob_dir.join(hex))
        .unwrap_or_else(|e| panic!("moving the layer into {}: {e}", blob_dir.display()));

    let layer_descriptor = json!({
        "mediaType": OCI_LAYER_TAR,
        "digest": layer_digest,
        "size": layer_size,
    });
    let config = Blob::json(
        OCI_CONFIG,
        &json!({
            "architecture": host_arch(),
            "os": "linux",
            "config": {"Labels": {"berth.test": format!("big-{seed}")}},
            // Uncompressed: the layer's diff id is its own digest.
            "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        }),
    );
    let manifest = Blob::json(
        OCI_MANIFEST,
        &json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config.descriptor(),
            "layers": [layer_descriptor],
        }),
    );
    write_layout(dir, &[(tag, &manifest)], [&config]);
    BigImage {
        manifest,
        layer_digest,
        layer_size,
    }
}

/// Writes the tar to `path`; returns its digest and size.
fn write_layer(path: &Path, size: u64, seed: u64) -> (String, u64) {
    let file = File::create(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = HashingWriter {
        inner: BufWriter::new(file),
        hash: Sha256::new(),
        len: 0,
    };
    let mut header = tar::Header::new_gnu();
    header
        .set_path("big.bin")
        .unwrap_or_else(|e| panic!("tar path: {e}"));
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(1_700_000_000);
    header.set_cksum();
    out.put(header.as_bytes());
    // One random block, varied per block by a counter in its first bytes: random enough that nothing
    // compresses or deduplicates it, and cheap to make.
    let mut block = Rng::new(seed).bytes(BLOCK);
    let mut left = size;
    let mut n: u64 = 0;
    while left > 0 {
        block[..8].copy_from_slice(&n.to_le_bytes());
        let take = usize::try_from(left.min(BLOCK as u64)).unwrap_or(BLOCK);
        out.put(&block[..take]);
        left -= take as u64;
        n += 1;
    }
    // Padding to a whole record, then the two empty records that end a tar.
    let pad = (512 - (size % 512) as usize) % 512;
    out.put(&vec![0u8; pad + 1024]);
    out.inner
        .flush()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (
        format!("sha256:{}", hex::encode(out.hash.finalize())),
        out.len,
    )
}

struct HashingWriter {
    inner: BufWriter<File>,
    hash: Sha256,
    len: u64,
}

impl HashingWriter {
    fn put(&mut self, bytes: &[u8]) {
        self.hash.update(bytes);
        self.len += bytes.len() as u64;
        self.inner
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("writing the layer: {e}"));
    }
}

/// `sha256:...` and length of the file at `path`, read a block at a time.
pub fn file_digest(path: &Path) -> (String, u64) {
    let mut f = File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; BLOCK];
    let mut len = 0u64;
    loop {
        let n = f
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        len += n as u64;
    }
    (format!("sha256:{}", hex::encode(hash.finalize())), len)
}
