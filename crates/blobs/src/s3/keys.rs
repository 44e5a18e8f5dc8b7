//! The object keys of the S3 layout (drawn in `s3.rs`): the one place that turns digests, upload ids
//! and part numbers into keys, and keys of an upload back into part numbers.

use oci::Digest;

use crate::UploadId;

/// Keys under one `rootdirectory` prefix.
#[derive(Clone, Debug)]
pub(crate) struct Keys {
    /// `""`, or the root directory followed by `/`.
    prefix: String,
}

impl Keys {
    /// `root` without leading or trailing `/` (possibly empty: the bucket's top).
    pub fn new(root: &str) -> Keys {
        let prefix = if root.is_empty() {
            String::new()
        } else {
            format!("{root}/")
        };
        Keys { prefix }
    }

    /// Where listings under the root start (`<root>/`), for the health check.
    pub fn root(&self) -> &str {
        &self.prefix
    }

    /// `<root>/blobs/`: where commits' multipart uploads live (and nothing else temporary).
    pub fn blobs(&self) -> String {
        format!("{}blobs/", self.prefix)
    }

    /// `<root>/blobs/<algorithm>/<first two hex>/<hex>`, as on the filesystem.
    pub fn blob(&self, digest: &Digest) -> String {
        let hex = digest.hex();
        let fanout = hex.get(..2).unwrap_or(hex);
        format!(
            "{}blobs/{}/{fanout}/{hex}",
            self.prefix,
            digest.algorithm().as_str()
        )
    }

    /// The digest of a key listed under [`Keys::blobs`], or `None` for a key that is not exactly a
    /// blob's (a stray object is not a blob).
    pub fn parse_blob(&self, key: &str) -> Option<Digest> {
        let rest = key.strip_prefix(&self.blobs())?;
        let (algorithm, rest) = rest.split_once('/')?;
        let (_, hex) = rest.split_once('/')?;
        let digest: Digest = format!("{algorithm}:{hex}").parse().ok()?;
        (self.blob(&digest) == key).then_some(digest)
    }

    /// `<root>/quarantine/<algorithm>-<hex>`: where blob `digest` goes when its bytes failed
    /// verification (outside `blobs/`, so never served nor listed).
    pub fn quarantine(&self, digest: &Digest) -> String {
        format!(
            "{}quarantine/{}-{}",
            self.prefix,
            digest.algorithm().as_str(),
            digest.hex()
        )
    }

    /// `<root>/uploads/<id>/`: everything upload `id` holds.
    pub fn upload(&self, id: &UploadId) -> String {
        format!("{}uploads/{}/", self.prefix, id.as_str())
    }

    /// `<root>/uploads/<id>/<chunk size>/<part number, 5 digits>`. The chunk size is in the key so that
    /// an upload keeps the part sizes it started with, whatever `chunksize` the replica that continues
    /// it is configured with.
    pub fn part(&self, id: &UploadId, chunk: u64, number: u32) -> String {
        format!("{}{chunk}/{number:05}", self.upload(id))
    }

    /// The (chunk size, part number) of a key listed under [`Keys::upload`], or `None` for a key that
    /// is not a part.
    pub fn parse_part(&self, id: &UploadId, key: &str) -> Option<(u64, u32)> {
        let rest = key.strip_prefix(&self.upload(id))?;
        let (chunk, number) = rest.split_once('/')?;
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(chunk) || !digits(number) {
            return None;
        }
        Some((chunk.parse().ok()?, number.parse().ok()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_under_a_root_and_at_the_top() {
        let digest = Digest::sha256_of(b"");
        let id = UploadId::parse("u-1").unwrap_or_else(|| panic!("id"));
        let k = Keys::new("reg/v1");
        assert_eq!(
            k.blob(&digest),
            format!("reg/v1/blobs/sha256/e3/{}", digest.hex())
        );
        assert_eq!(k.part(&id, 5242880, 7), "reg/v1/uploads/u-1/5242880/00007");
        assert_eq!(
            k.parse_part(&id, "reg/v1/uploads/u-1/5242880/00007"),
            Some((5242880, 7))
        );
        assert_eq!(
            k.parse_part(&id, "reg/v1/uploads/u-1/5242880/10000"),
            Some((5242880, 10000))
        );
        for not_a_part in [
            "reg/v1/uploads/u-1/x/00001",
            "reg/v1/uploads/u-1/5/",
            "reg/v1/uploads/u-2/5/00001",
        ] {
            assert_eq!(k.parse_part(&id, not_a_part), None, "{not_a_part}");
        }
        assert_eq!(k.parse_blob(&k.blob(&digest)), Some(digest.clone()));
        let hex = digest.hex();
        for not_a_blob in [
            format!("reg/v1/blobs/sha256/e4/{hex}"),
            format!("reg/v1/blobs/sha256/e3/{hex}/data"),
            format!("reg/v1/blobs/sha256/e3/{}", hex.to_uppercase()),
            format!("other/blobs/sha256/e3/{hex}"),
            "reg/v1/blobs/sha256/e3/".to_string(),
        ] {
            assert_eq!(k.parse_blob(&not_a_blob), None, "{not_a_blob}");
        }
        let top = Keys::new("");
        assert_eq!(top.upload(&id), "uploads/u-1/");
        assert_eq!(top.blobs(), "blobs/");
        assert_eq!(top.root(), "");
    }
}
