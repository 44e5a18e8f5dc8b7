//! What an adoption did: counts, and each thing it could not adopt, named, with the reason.

use std::fmt;

/// Why something of the tree was not adopted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SkipKind {
    /// A Docker schema1 manifest: berth serves schema2 and OCI only (re-push the image converted).
    Schema1,
    /// A link to a blob without bytes, or a manifest, tag or index child that is not there.
    Missing,
    /// Bytes that do not hash to their digest.
    Corrupt,
    /// Something berth cannot hold: a name or tag outside the spec's grammar, a manifest that does not
    /// parse or is too large, a malformed link.
    Invalid,
}

impl fmt::Display for SkipKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SkipKind::Schema1 => "schema1",
            SkipKind::Missing => "missing",
            SkipKind::Corrupt => "corrupt",
            SkipKind::Invalid => "invalid",
        })
    }
}

/// One thing not adopted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    pub kind: SkipKind,
    /// What it is, as a person would name it: `manifest <repo>@<digest>`, `tag <repo>:<tag>`,
    /// `blob <digest> of <repo>`, `repository <name>`.
    pub what: String,
    pub reason: String,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.kind, self.what, self.reason)
    }
}

/// The outcome of an adoption.
#[derive(Clone, Debug, Default)]
pub struct AdoptReport {
    /// Repositories of the tree (adopted, or tried).
    pub repositories: u64,
    /// Manifests now in the catalog (revisions of every repository; one counted per repository).
    pub manifests: u64,
    /// Tags now pointing where registry:2's did.
    pub tags: u64,
    /// Layer links now in the catalog.
    pub layer_links: u64,
    /// Whether blob bytes were hashed (`AdoptOptions::verify`), and how many distinct blobs and bytes.
    pub verified: bool,
    pub verified_blobs: u64,
    pub verified_bytes: u64,
    /// Tags berth already held on another manifest (pushed to berth since), left as they were:
    /// `<repo>:<tag>`, berth's digest, registry:2's digest.
    pub kept_tags: Vec<(String, String, String)>,
    /// Everything not adopted, in the order met (by this run: see `skipped_ahead`).
    pub skipped: Vec<Skipped>,
    /// Repositories adopted ahead for a request (counted above, as adopted) and what they skipped
    /// (logged when they were adopted).
    pub ahead: u64,
    pub skipped_ahead: u64,
    pub seconds: f64,
}

impl AdoptReport {
    /// How many things were skipped, by this run and ahead of it.
    pub fn skipped_count(&self) -> u64 {
        self.skipped.len() as u64 + self.skipped_ahead
    }

    /// How many things were skipped for `kind` (by this run).
    pub fn count(&self, kind: SkipKind) -> usize {
        self.skipped.iter().filter(|s| s.kind == kind).count()
    }
}

impl fmt::Display for AdoptReport {
    /// The summary line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "adopted registry:2's tree: {} repositories, {} manifests, {} tags, {} layer links",
            self.repositories, self.manifests, self.tags, self.layer_links
        )?;
        if self.verified {
            write!(
                f,
                ", {} blobs verified ({} bytes)",
                self.verified_blobs, self.verified_bytes
            )?;
        }
        write!(
            f,
            "; skipped {} ({} schema1, {} missing, {} corrupt, {} invalid), {} tags kept as berth has them, \
             {} repositories adopted ahead for requests (skipping {}), in {:.1} s",
            self.skipped.len(),
            self.count(SkipKind::Schema1),
            self.count(SkipKind::Missing),
            self.count(SkipKind::Corrupt),
            self.count(SkipKind::Invalid),
            self.kept_tags.len(),
            self.ahead,
            self.skipped_ahead,
            self.seconds
        )
    }
}
