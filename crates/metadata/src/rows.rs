//! Rows as both backends read them, and the one decoder of each: a backend reads a row's columns into
//! the tuple here (with its driver's own getters), and this module turns it into the domain value,
//! reporting anything the schema cannot hold as [`Error::Corrupt`]. The SQL differs between the
//! dialects (placeholders, locking); what a row means does not.

use bytes::Bytes;
use oci::Digest;

use crate::{
    Error, ProxyEntry, ProxyEntryKind, RepoUsage, Result, StoredManifest, TagAge, UploadSession,
};

/// A stored manifest's columns `(digest, media_type, payload, subject)`.
pub(crate) type ManifestRow = (String, String, Vec<u8>, Option<String>);

/// The columns of an upload session, in this order.
pub(crate) const UPLOAD_COLUMNS: &str = "id, repo, byte_offset, hash_state, started_at, updated_at";
/// The row those columns make.
pub(crate) type UploadRow = (String, String, i64, Vec<u8>, i64, i64);

/// A pull-through cache entry's columns `(repo, digest, kind, size, pulled_at)`.
pub(crate) type ProxyEntryRow = (String, String, String, i64, i64);

/// A tag's age's columns `(tag, digest, pushed_at, pulled_at)`.
pub(crate) type TagAgeRow = (String, String, i64, Option<i64>);

/// The tags of repository `$1` with their ages, in tag order (`$N` placeholders; SQLite's `?N`
/// replace them).
pub(crate) const TAG_AGES: &str = "
    SELECT t.name, t.manifest_digest, t.updated_at, m.pulled_at
    FROM tags t
    JOIN repositories r ON r.id = t.repo_id
    JOIN manifests m ON m.repo_id = t.repo_id AND m.digest = t.manifest_digest
    WHERE r.name = $1
    ORDER BY t.name";

/// A repository's usage's columns: name, bytes, shared bytes, manifests, tags, last manifest push,
/// last tag push, last pull.
pub(crate) type RepoUsageRow = (
    String,
    i64,
    i64,
    i64,
    i64,
    Option<i64>,
    Option<i64>,
    Option<i64>,
);

/// Each repository's usage, in name order after `$1`, at most `$2` (see [`RepoUsageRow`]). The sums
/// are cast because PostgreSQL sums BIGINTs into NUMERIC.
pub(crate) const REPO_USAGE: &str = "
    SELECT r.name,
        (SELECT CAST(COALESCE(SUM(b.size), 0) AS BIGINT) FROM repository_blobs rb
            JOIN blobs b ON b.digest = rb.digest WHERE rb.repo_id = r.id),
        (SELECT CAST(COALESCE(SUM(b.size), 0) AS BIGINT) FROM repository_blobs rb
            JOIN blobs b ON b.digest = rb.digest WHERE rb.repo_id = r.id
            AND EXISTS (SELECT 1 FROM repository_blobs o
                        WHERE o.digest = rb.digest AND o.repo_id <> r.id)),
        (SELECT COUNT(*) FROM manifests m WHERE m.repo_id = r.id),
        (SELECT COUNT(*) FROM tags t WHERE t.repo_id = r.id),
        (SELECT MAX(m.created_at) FROM manifests m WHERE m.repo_id = r.id),
        (SELECT MAX(t.updated_at) FROM tags t WHERE t.repo_id = r.id),
        (SELECT MAX(m.pulled_at) FROM manifests m WHERE m.repo_id = r.id)
    FROM repositories r
    WHERE r.name > $1
    ORDER BY r.name
    LIMIT $2";

/// [`crate::StoreTotals`]' seven columns, in its fields' order. Unreferenced: no manifest of any
/// repository references the blob and no pull-through cache entry holds it (the collector leaves those
/// to eviction).
pub(crate) const STORE_TOTALS: &str = "
    SELECT r.n, m.n, t.n, a.n, a.bytes, u.n, u.bytes FROM
        (SELECT COUNT(*) AS n FROM repositories) r,
        (SELECT COUNT(*) AS n FROM manifests) m,
        (SELECT COUNT(*) AS n FROM tags) t,
        (SELECT COUNT(*) AS n, CAST(COALESCE(SUM(size), 0) AS BIGINT) AS bytes FROM blobs) a,
        (SELECT COUNT(*) AS n, CAST(COALESCE(SUM(size), 0) AS BIGINT) AS bytes FROM blobs b
            WHERE NOT EXISTS (SELECT 1 FROM manifest_blobs mb WHERE mb.blob_digest = b.digest)
            AND NOT EXISTS (SELECT 1 FROM proxy_cache_entries p WHERE p.digest = b.digest)) u";

/// The seven counts of [`STORE_TOTALS`], as read.
pub(crate) type StoreTotalsRow = [i64; 7];

pub(crate) fn store_totals(row: StoreTotalsRow) -> Result<crate::StoreTotals> {
    let [
        repositories,
        manifests,
        tags,
        blobs,
        bytes,
        unreferenced_blobs,
        unreferenced_bytes,
    ] = row.map(|n| unsigned(n, "store total"));
    Ok(crate::StoreTotals {
        repositories: repositories?,
        manifests: manifests?,
        tags: tags?,
        blobs: blobs?,
        bytes: bytes?,
        unreferenced_blobs: unreferenced_blobs?,
        unreferenced_bytes: unreferenced_bytes?,
    })
}

/// The repositories whose name starts with `$1`, in name order (a comparison, not `LIKE`: `_` is a
/// wildcard there and a legal character of names).
pub(crate) const REPOS_WITH_PREFIX: &str = "
    SELECT name FROM repositories
    WHERE substr(name, 1, length($1)) = $1
    ORDER BY name";

/// A repository name as stored.
pub(crate) fn repo_name(name: &str) -> Result<oci::RepoName> {
    name.parse()
        .map_err(|e| Error::Corrupt(format!("stored repository {name:?}: {e}")))
}

pub(crate) fn repo_usage(
    (name, bytes, shared, manifests, tags, manifest_push, tag_push, last_pull): RepoUsageRow,
) -> Result<RepoUsage> {
    Ok(RepoUsage {
        repo: repo_name(&name)?,
        bytes: unsigned(bytes, "repository bytes")?,
        shared_bytes: unsigned(shared, "shared bytes")?,
        manifests: unsigned(manifests, "manifest count")?,
        tags: unsigned(tags, "tag count")?,
        last_push: manifest_push.max(tag_push),
        last_pull,
    })
}

pub(crate) fn digest(text: &str) -> Result<Digest> {
    text.parse()
        .map_err(|e| Error::Corrupt(format!("stored digest {text:?}: {e}")))
}

/// A stored BIGINT that must be a size or an offset.
pub(crate) fn unsigned(value: i64, what: &str) -> Result<u64> {
    u64::try_from(value).map_err(|_| Error::Corrupt(format!("negative {what}: {value}")))
}

/// A size or offset as BIGINT. Nothing real reaches 2^63 bytes; refusing is better than wrapping.
pub(crate) fn signed(value: u64, what: &str) -> Result<i64> {
    i64::try_from(value)
        .map_err(|_| Error::Backend(format!("{what} {value} is out of range").into()))
}

/// SQL `LIMIT` for a `usize` (anything past `i64::MAX` is as good as unlimited).
pub(crate) fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

pub(crate) fn stored_manifest(
    (digest_text, media_type, payload, subject): ManifestRow,
) -> Result<StoredManifest> {
    Ok(StoredManifest {
        digest: digest(&digest_text)?,
        media_type,
        payload: Bytes::from(payload),
        subject: subject.as_deref().map(digest).transpose()?,
    })
}

pub(crate) fn upload_session(
    (id, repo, offset, hash_state, started_at, updated_at): UploadRow,
) -> Result<UploadSession> {
    let repo = repo
        .parse()
        .map_err(|e| Error::Corrupt(format!("upload {id}: {e}")))?;
    Ok(UploadSession {
        offset: unsigned(offset, "upload offset")?,
        id,
        repo,
        hash_state,
        started_at,
        updated_at,
    })
}

pub(crate) fn tag_age((tag, digest_text, pushed_at, pulled_at): TagAgeRow) -> Result<TagAge> {
    Ok(TagAge {
        tag: tag
            .parse()
            .map_err(|e| Error::Corrupt(format!("stored tag {tag:?}: {e}")))?,
        digest: digest(&digest_text)?,
        pushed_at,
        pulled_at,
    })
}

pub(crate) fn proxy_entry(
    (repo, digest, kind, size, pulled_at): ProxyEntryRow,
) -> Result<ProxyEntry> {
    let corrupt = |what: &str, value: &str| Error::Corrupt(format!("cache entry {what} {value:?}"));
    Ok(ProxyEntry {
        repo: repo.parse().map_err(|_| corrupt("repository", &repo))?,
        digest: digest.parse().map_err(|_| corrupt("digest", &digest))?,
        kind: ProxyEntryKind::parse(&kind).ok_or_else(|| corrupt("kind", &kind))?,
        size: u64::try_from(size).map_err(|_| corrupt("size", &size.to_string()))?,
        pulled_at,
    })
}

/// The manifests of one repository (`$1`) that no tag reaches, created before `$2`, in digest order: the
/// closure of the tagged manifests over the edges parent -> child, manifest -> subject and subject ->
/// referrer. Written once for both dialects (SQLite's `?N` reads `$N` as the same numbered parameter);
/// one recursive term, as PostgreSQL requires.
pub(crate) const UNREACHABLE_MANIFESTS: &str = "
WITH RECURSIVE edges (src, dst) AS (
    SELECT parent_digest, child_digest FROM manifest_children WHERE repo_id = $1
    UNION ALL
    SELECT digest, subject FROM manifests WHERE repo_id = $1 AND subject IS NOT NULL
    UNION ALL
    SELECT subject, digest FROM manifests WHERE repo_id = $1 AND subject IS NOT NULL
), reach (digest) AS (
    SELECT manifest_digest FROM tags WHERE repo_id = $1
    UNION
    SELECT e.dst FROM edges e JOIN reach r ON e.src = r.digest
)
SELECT digest FROM manifests
WHERE repo_id = $1 AND created_at < $2 AND digest NOT IN (SELECT digest FROM reach)
ORDER BY digest";
