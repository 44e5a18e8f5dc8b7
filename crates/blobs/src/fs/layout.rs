//! Where each thing lives under the store's root: the one place that turns digests and upload ids into
//! paths, so the tree drawn in [`super`] and the code cannot drift apart.
//!
//! Digests and upload ids are validated types whose text cannot contain `/`, `.` or `..`; every path built
//! here is still checked to stay under the root (a debug assertion, and a test), because a path that
//! escapes the root would be the worst bug this module could have.

use std::path::{Component, Path, PathBuf};

use oci::{Digest, DigestAlgorithm};

use crate::UploadId;

/// Every algorithm whose directory `open` creates up front.
pub(super) const ALGORITHMS: [DigestAlgorithm; 2] =
    [DigestAlgorithm::Sha256, DigestAlgorithm::Sha512];

/// Paths under one root. Cheap to clone.
#[derive(Clone, Debug)]
pub(super) struct Layout {
    root: PathBuf,
}

impl Layout {
    /// `root` should be absolute (the store canonicalizes it) so paths do not depend on the working directory.
    pub(super) fn new(root: PathBuf) -> Layout {
        Layout { root }
    }

    pub(super) fn root(&self) -> &Path {
        &self.root
    }

    /// `blobs/`
    pub(super) fn blobs_dir(&self) -> PathBuf {
        self.root.join("blobs")
    }

    /// `blobs/<algorithm>/`
    pub(super) fn algorithm_dir(&self, algorithm: DigestAlgorithm) -> PathBuf {
        self.checked(self.blobs_dir().join(algorithm.as_str()))
    }

    /// `blobs/<algorithm>/<first two hex>/`: the fan-out directory keeps any one directory small.
    pub(super) fn fanout_dir(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        // A valid digest has at least 64 hex digits; the fallback only keeps this free of panics.
        let prefix = hex.get(..2).unwrap_or(hex);
        self.checked(self.algorithm_dir(digest.algorithm()).join(prefix))
    }

    /// `blobs/<algorithm>/<first two hex>/<hex>`: the committed blob.
    pub(super) fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.checked(self.fanout_dir(digest).join(digest.hex()))
    }

    /// `uploads/`
    pub(super) fn uploads_dir(&self) -> PathBuf {
        self.root.join("uploads")
    }

    /// `uploads/<upload id>`: the bytes an upload holds so far.
    pub(super) fn upload_path(&self, id: &UploadId) -> PathBuf {
        self.checked(self.uploads_dir().join(id.as_str()))
    }

    /// `quarantine/`
    pub(super) fn quarantine_dir(&self) -> PathBuf {
        self.root.join("quarantine")
    }

    /// `quarantine/<algorithm>-<hex>`: where blob `digest`'s bytes go when they failed verification.
    pub(super) fn quarantine_path(&self, digest: &Digest) -> PathBuf {
        self.checked(self.quarantine_dir().join(format!(
            "{}-{}",
            digest.algorithm().as_str(),
            digest.hex()
        )))
    }

    /// `tmp/`
    pub(super) fn tmp_dir(&self) -> PathBuf {
        self.root.join("tmp")
    }

    /// `tmp/<random>`: a fresh name for a temporary file, on the same filesystem as `blobs/`.
    pub(super) fn tmp_path(&self) -> PathBuf {
        self.checked(self.tmp_dir().join(uuid::Uuid::new_v4().to_string()))
    }

    /// Whether `path` is strictly below the root and made only of plain names (no `..`, no `.`, no
    /// second root).
    pub(super) fn is_confined(&self, path: &Path) -> bool {
        match path.strip_prefix(&self.root) {
            Ok(rest) => {
                rest.components().next().is_some()
                    && rest.components().all(|c| matches!(c, Component::Normal(_)))
            }
            Err(_) => false,
        }
    }

    fn checked(&self, path: PathBuf) -> PathBuf {
        debug_assert!(self.is_confined(&path), "{path:?} escapes {:?}", self.root);
        path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        Layout::new(PathBuf::from("/srv/berth"))
    }

    #[test]
    fn blob_paths_fan_out_by_the_first_two_hex_digits() {
        let d = Digest::sha256_of(b"");
        assert_eq!(
            layout().blob_path(&d),
            PathBuf::from(
                "/srv/berth/blobs/sha256/e3/e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
            )
        );
        let d512 = Digest::of(DigestAlgorithm::Sha512, b"x");
        let p = layout().blob_path(&d512);
        assert!(p.starts_with("/srv/berth/blobs/sha512/"));
        assert_eq!(p.file_name().and_then(|n| n.to_str()), Some(d512.hex()));
        assert_eq!(
            p.parent()
                .and_then(|n| n.file_name())
                .and_then(|n| n.to_str()),
            d512.hex().get(..2)
        );
    }

    #[test]
    fn every_built_path_stays_under_the_root() {
        let l = layout();
        let digests: Vec<Digest> = (0u8..=255)
            .flat_map(|b| {
                [
                    Digest::sha256_of(&[b]),
                    Digest::of(DigestAlgorithm::Sha512, &[b]),
                ]
            })
            .collect();
        for d in &digests {
            for p in [l.fanout_dir(d), l.blob_path(d)] {
                assert!(l.is_confined(&p), "{p:?}");
                assert!(p.starts_with(l.blobs_dir()), "{p:?}");
            }
        }
        let long = "a".repeat(64);
        for id in [
            "-",
            "--",
            "a",
            long.as_str(),
            "0-0",
            &UploadId::random().to_string(),
        ] {
            let id = UploadId::parse(id).expect("a valid id");
            let p = l.upload_path(&id);
            assert!(l.is_confined(&p), "{p:?}");
            assert_eq!(p.parent(), Some(l.uploads_dir().as_path()));
        }
        let t = l.tmp_path();
        assert!(l.is_confined(&t) && t.parent() == Some(l.tmp_dir().as_path()));
    }

    #[test]
    fn upload_ids_that_could_escape_are_refused_before_reaching_a_path() {
        for bad in ["..", ".", "a/b", "/etc", "a\\b", "", "ab.c"] {
            assert!(UploadId::parse(bad).is_none(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn confinement_check_rejects_escapes() {
        let l = layout();
        assert!(!l.is_confined(Path::new("/srv/berth")));
        assert!(!l.is_confined(Path::new("/srv/berth/uploads/../../etc")));
        assert!(!l.is_confined(Path::new("/srv/other/blobs")));
        assert!(!l.is_confined(Path::new("relative/blobs")));
        assert!(l.is_confined(Path::new("/srv/berth/uploads/x")));
    }
}
