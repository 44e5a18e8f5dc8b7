//! Turns a request line (method, raw path, raw query) into a typed [`Endpoint`].
//!
//! Repository names contain slashes, so a router with one pattern per path depth cannot express the API
//! (trow's mistake). The whole `/v2/...` tree goes to one wildcard route, and this module reads the path
//! from the right: the last one to three components say which resource is addressed
//! (`manifests/<ref>`, `blobs/uploads/<id>`, `blobs/uploads/`, `blobs/<digest>`, `tags/list`,
//! `referrers/<digest>`), and everything before them is the repository name.
//!
//! Everything is validated here, once: names, references, digests and upload ids come out as `oci`
//! types, so no handler ever sees an unchecked string. The error for each kind of bad input:
//! - a bad repository name, including any `%` escape in it (`%2F`, `%2E`), `..` or an empty component:
//!   NAME_INVALID;
//! - a bad digest (in a blob, referrers or manifest URL, or in `?digest=`/`?mount=`): DIGEST_INVALID;
//! - a bad tag: MANIFEST_INVALID on a push. The spec has no tag code; NAME_INVALID describes the
//!   repository name, while the tag is the manifest's reference, so a manifest error says more to the
//!   client. A read or delete of a bad tag is MANIFEST_UNKNOWN (404): nothing can be stored under it;
//! - an upload id that cannot be one of ours: BLOB_UPLOAD_UNKNOWN (it names no upload);
//! - a bad `n`: SIZE_INVALID (the spec has no pagination code; `n` is the page's size);
//! - a known path with a method it does not serve: 405 UNSUPPORTED;
//! - a path that names no endpoint at all: [`ApiError::no_such_endpoint`] (404).

use std::borrow::Cow;

use axum::http::Method;
use oci::{Digest, Reference, RepoName};
use registry::{Error, UploadId};

use crate::error::ApiError;

/// How a `POST .../blobs/uploads/` starts its upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UploadStartKind {
    /// An upload session that the client fills with PATCH/PUT.
    Session,
    /// `?digest=`: the whole blob is the body of this POST.
    Monolithic(Digest),
    /// `?mount=<digest>[&from=<repo>]`: link an existing blob instead of uploading it.
    Mount {
        digest: Digest,
        from: Option<RepoName>,
    },
}

/// What a request to an upload URL (`.../blobs/uploads/<id>`) does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UploadOp {
    /// GET: where the upload stands.
    Status,
    /// PATCH: append a chunk.
    Chunk,
    /// PUT `?digest=`: optional last chunk, then commit.
    Finish(Digest),
    /// DELETE: abandon the upload.
    Cancel,
}

/// What a request does to a manifest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ManifestOp {
    Get,
    Head,
    Put,
    Delete,
}

/// What a request does to a blob (blobs are written through uploads, never PUT directly).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlobOp {
    Get,
    Head,
    Delete,
}

/// One operation of the distribution API, with every parameter parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET /v2/`: the API version check.
    Base,
    /// `GET /v2/_catalog?n=&last=`.
    Catalog {
        n: Option<usize>,
        last: Option<String>,
    },
    /// `GET /v2/_berth/usage?n=&last=`: what each repository stores, and the quotas (berth's; no
    /// repository name can start with `_`, so the path cannot clash with one).
    Usage {
        n: Option<usize>,
        last: Option<String>,
    },
    /// `GET /v2/<name>/tags/list?n=&last=`.
    Tags {
        name: RepoName,
        n: Option<usize>,
        last: Option<String>,
    },
    /// `GET|HEAD|PUT|DELETE /v2/<name>/manifests/<reference>[?ns=]`.
    Manifest {
        name: RepoName,
        reference: Reference,
        op: ManifestOp,
        ns: Option<Namespace>,
    },
    /// `GET|HEAD|DELETE /v2/<name>/blobs/<digest>[?ns=]`.
    Blob {
        name: RepoName,
        digest: Digest,
        op: BlobOp,
        ns: Option<Namespace>,
    },
    /// `POST /v2/<name>/blobs/uploads/`.
    UploadStart {
        name: RepoName,
        kind: UploadStartKind,
    },
    /// `GET|PATCH|PUT|DELETE /v2/<name>/blobs/uploads/<id>`.
    Upload {
        name: RepoName,
        id: UploadId,
        op: UploadOp,
    },
    /// `GET /v2/<name>/referrers/<digest>?artifactType=`.
    Referrers {
        name: RepoName,
        digest: Digest,
        artifact_type: Option<String>,
    },
}

/// containerd's `?ns=` on a read: the registry host a mirror request is really for
/// (`/v2/library/alpine/manifests/3?ns=docker.io`). Only a host's characters (letters, digits, `.-:`) are
/// kept; anything else is no namespace at all, as if the parameter were absent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Namespace(String);

impl Namespace {
    fn parse(raw: &str) -> Option<Namespace> {
        let host = !raw.is_empty()
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-:".contains(&b));
        host.then(|| Namespace(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The resource a path addresses, before the method is looked at.
enum Shape<'a> {
    Base,
    Catalog,
    Usage,
    Tags(&'a str),
    Manifest(&'a str, &'a str),
    Blob(&'a str, &'a str),
    UploadStart(&'a str),
    Upload(&'a str, &'a str),
    Referrers(&'a str, &'a str),
}

impl Endpoint {
    /// The repository the endpoint addresses, if any (for logs and authorization).
    pub fn repository(&self) -> Option<&RepoName> {
        match self {
            Endpoint::Base | Endpoint::Catalog { .. } | Endpoint::Usage { .. } => None,
            Endpoint::Tags { name, .. }
            | Endpoint::Manifest { name, .. }
            | Endpoint::Blob { name, .. }
            | Endpoint::UploadStart { name, .. }
            | Endpoint::Upload { name, .. }
            | Endpoint::Referrers { name, .. } => Some(name),
        }
    }

    /// containerd's `?ns=` of a manifest or blob read, if it named one.
    pub fn namespace(&self) -> Option<&Namespace> {
        match self {
            Endpoint::Manifest { ns, .. } | Endpoint::Blob { ns, .. } => ns.as_ref(),
            _ => None,
        }
    }

    /// The repository the endpoint addresses, taken out of it (see [`repository`](Self::repository)).
    pub fn into_repository(self) -> Option<RepoName> {
        match self {
            Endpoint::Base | Endpoint::Catalog { .. } | Endpoint::Usage { .. } => None,
            Endpoint::Tags { name, .. }
            | Endpoint::Manifest { name, .. }
            | Endpoint::Blob { name, .. }
            | Endpoint::UploadStart { name, .. }
            | Endpoint::Upload { name, .. }
            | Endpoint::Referrers { name, .. } => Some(name),
        }
    }

    /// Parses a request. `path` is the raw (still percent-encoded) path, `query` the raw query string.
    pub fn parse(method: &Method, path: &str, query: Option<&str>) -> Result<Endpoint, ApiError> {
        let shape = shape(path).ok_or_else(ApiError::no_such_endpoint)?;
        let query = Query::parse(query.unwrap_or(""));
        let is = |allowed: &[Method]| allowed.contains(method);
        let wrong_method = |what: &str| -> ApiError {
            Error::Unsupported(format!("{method} is not supported on {what}")).into()
        };
        match shape {
            Shape::Base => {
                if !is(&[Method::GET, Method::HEAD]) {
                    return Err(wrong_method("/v2/"));
                }
                Ok(Endpoint::Base)
            }
            Shape::Catalog => {
                if !is(&[Method::GET, Method::HEAD]) {
                    return Err(wrong_method("the catalog"));
                }
                Ok(Endpoint::Catalog {
                    n: query.n()?,
                    last: query.get("last").map(str::to_string),
                })
            }
            Shape::Usage => {
                if !is(&[Method::GET, Method::HEAD]) {
                    return Err(wrong_method("the usage report"));
                }
                Ok(Endpoint::Usage {
                    n: query.n()?,
                    last: query.get("last").map(str::to_string),
                })
            }
            Shape::Tags(name) => {
                let name = repo_name(name)?;
                if !is(&[Method::GET, Method::HEAD]) {
                    return Err(wrong_method("a tag list"));
                }
                Ok(Endpoint::Tags {
                    name,
                    n: query.n()?,
                    last: query.get("last").map(str::to_string),
                })
            }
            Shape::Manifest(name, reference) => {
                let name = repo_name(name)?;
                let op = match *method {
                    Method::GET => ManifestOp::Get,
                    Method::HEAD => ManifestOp::Head,
                    Method::PUT => ManifestOp::Put,
                    Method::DELETE => ManifestOp::Delete,
                    _ => return Err(wrong_method("a manifest")),
                };
                let reference = match manifest_reference(reference) {
                    Ok(r) => r,
                    // Nothing is ever stored under a tag that breaks the grammar, so a read or delete
                    // of one names no manifest: 404, as registry:2 answers and the conformance suite
                    // expects (it asks for `.INVALID_MANIFEST_NAME`). A push of one is the client's
                    // mistake: 400.
                    Err(Error::ManifestInvalid(_)) if op != ManifestOp::Put => {
                        return Err(Error::ManifestUnknown(clip(reference).to_string()).into());
                    }
                    Err(e) => return Err(e.into()),
                };
                Ok(Endpoint::Manifest {
                    name,
                    reference,
                    ns: query.namespace_of(matches!(op, ManifestOp::Get | ManifestOp::Head)),
                    op,
                })
            }
            Shape::Blob(name, digest) => {
                let name = repo_name(name)?;
                let op = match *method {
                    Method::GET => BlobOp::Get,
                    Method::HEAD => BlobOp::Head,
                    Method::DELETE => BlobOp::Delete,
                    _ => return Err(wrong_method("a blob")),
                };
                Ok(Endpoint::Blob {
                    name,
                    digest: digest_segment(digest)?,
                    ns: query.namespace_of(matches!(op, BlobOp::Get | BlobOp::Head)),
                    op,
                })
            }
            Shape::UploadStart(name) => {
                let name = repo_name(name)?;
                if *method != Method::POST {
                    return Err(wrong_method("the upload start URL"));
                }
                // registry:2 tries a mount first when both are given, and falls back to a session.
                let kind = if let Some(mount) = query.get("mount") {
                    let from = query.get("from").map(repo_name).transpose()?;
                    UploadStartKind::Mount {
                        digest: digest_param(mount)?,
                        from,
                    }
                } else if let Some(digest) = query.get("digest") {
                    UploadStartKind::Monolithic(digest_param(digest)?)
                } else {
                    UploadStartKind::Session
                };
                Ok(Endpoint::UploadStart { name, kind })
            }
            Shape::Upload(name, id) => {
                let name = repo_name(name)?;
                let op = match *method {
                    Method::GET => UploadOp::Status,
                    Method::PATCH => UploadOp::Chunk,
                    Method::PUT => {
                        let digest = query.get("digest").ok_or_else(|| {
                            Error::DigestInvalid("the closing PUT needs ?digest=".to_string())
                        })?;
                        UploadOp::Finish(digest_param(digest)?)
                    }
                    Method::DELETE => UploadOp::Cancel,
                    _ => return Err(wrong_method("an upload")),
                };
                let id = UploadId::parse(id).ok_or(Error::BlobUploadUnknown)?;
                Ok(Endpoint::Upload { name, id, op })
            }
            Shape::Referrers(name, digest) => {
                let name = repo_name(name)?;
                if !is(&[Method::GET, Method::HEAD]) {
                    return Err(wrong_method("referrers"));
                }
                Ok(Endpoint::Referrers {
                    name,
                    digest: digest_segment(digest)?,
                    artifact_type: query.get("artifactType").map(str::to_string),
                })
            }
        }
    }
}

/// Splits a path into its resource shape, reading from the right. `None` when it names nothing.
fn shape(path: &str) -> Option<Shape<'_>> {
    let rest = match path {
        "/v2" | "/v2/" => return Some(Shape::Base),
        p => p.strip_prefix("/v2/")?,
    };
    if rest == "_catalog" {
        return Some(Shape::Catalog);
    }
    if rest == "_berth/usage" {
        return Some(Shape::Usage);
    }
    // Only the last three components decide the shape; rsplitn keeps the name (which has slashes of its
    // own) whole in the fourth piece.
    // On the stack: a Vec here was an allocation on every request.
    let mut pieces = [""; 4];
    let mut count = 0;
    for (slot, piece) in pieces.iter_mut().zip(rest.rsplitn(4, '/')) {
        *slot = piece;
        count += 1;
    }
    let parts = &pieces[..count];
    let name = |drop: usize| name_before(rest, parts, drop);
    let (p0, p1, p2) = (
        *parts.first()?,
        parts.get(1).copied(),
        parts.get(2).copied(),
    );
    let shape = match (p2, p1, p0) {
        (Some("blobs"), Some("uploads"), "") => Shape::UploadStart(name(3)),
        (Some("blobs"), Some("uploads"), id) => Shape::Upload(name(3), id),
        // `.../blobs/uploads` without the slash: a digest is never "uploads", so it can only be a start.
        (_, Some("blobs"), "uploads") => Shape::UploadStart(name(2)),
        (_, Some("manifests"), reference) => Shape::Manifest(name(2), reference),
        (_, Some("tags"), "list") => Shape::Tags(name(2)),
        (_, Some("blobs"), digest) => Shape::Blob(name(2), digest),
        (_, Some("referrers"), digest) => Shape::Referrers(name(2), digest),
        _ => return None,
    };
    Some(shape)
}

/// The part of `rest` before its last `drop` components (`parts` is `rest` split from the right); empty
/// when nothing precedes them, which the name check then refuses.
fn name_before<'a>(rest: &'a str, parts: &[&str], drop: usize) -> &'a str {
    let suffix: usize = parts.iter().take(drop).map(|p| p.len() + 1).sum();
    rest.get(..rest.len().saturating_sub(suffix)).unwrap_or("")
}

fn repo_name(raw: &str) -> Result<RepoName, Error> {
    raw.parse()
        .map_err(|_| Error::NameInvalid(clip(raw).to_string()))
}

/// A digest taken from a path segment. Clients may escape the `:` (`sha256%3A...`), so the segment is
/// decoded first; the result is then held to the digest grammar, which admits no `/`, `.` or `%`.
fn digest_segment(raw: &str) -> Result<Digest, Error> {
    let decoded = percent_decode(raw).ok_or_else(|| bad_digest(raw))?;
    decoded.parse().map_err(|_| bad_digest(&decoded))
}

/// A digest from the query string (already decoded).
fn digest_param(raw: &str) -> Result<Digest, Error> {
    raw.parse().map_err(|_| bad_digest(raw))
}

fn bad_digest(raw: &str) -> Error {
    Error::DigestInvalid(format!("invalid digest {:?}", clip(raw)))
}

fn manifest_reference(raw: &str) -> Result<Reference, Error> {
    let decoded = percent_decode(raw).ok_or_else(|| bad_tag(raw))?;
    if decoded.contains(':') {
        digest_param(&decoded).map(Reference::Digest)
    } else {
        decoded
            .parse()
            .map(Reference::Tag)
            .map_err(|_| bad_tag(&decoded))
    }
}

fn bad_tag(raw: &str) -> Error {
    Error::ManifestInvalid(format!("invalid tag {:?}", clip(raw)))
}

/// Keeps error messages short whatever the client sent (here and in `headers`).
pub(crate) fn clip(s: &str) -> &str {
    match s.char_indices().nth(256) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Decodes `%XX` escapes. `None` if an escape is malformed or the result is not UTF-8.
pub(crate) fn percent_decode(s: &str) -> Option<Cow<'_, str>> {
    // Nearly every path segment has no escape: borrowed, not copied.
    if !s.contains('%') {
        return Some(Cow::Borrowed(s));
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok().map(Cow::Owned)
}

/// A decoded `application/x-www-form-urlencoded` query. The first occurrence of a key wins.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(raw: &str) -> Query {
        let decode = |s: &str| percent_decode(&s.replace('+', " ")).map(Cow::into_owned);
        Query(
            raw.split('&')
                .filter(|kv| !kv.is_empty())
                .filter_map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    // A pair that does not decode cannot be a parameter we know: skip it.
                    Some((decode(k)?, decode(v)?))
                })
                .collect(),
        )
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// containerd's `ns`, on a read (`read`); writes and deletes name their repository alone.
    fn namespace_of(&self, read: bool) -> Option<Namespace> {
        self.get("ns").filter(|_| read).and_then(Namespace::parse)
    }

    /// `n`, the page size of tag and catalog listings.
    fn n(&self) -> Result<Option<usize>, Error> {
        self.get("n")
            .map(|v| {
                v.parse::<usize>().map_err(|_| {
                    Error::SizeInvalid(format!(
                        "n must be a non-negative integer, not {:?}",
                        clip(v)
                    ))
                })
            })
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const D2: &str = "sha256:0000000000000000000000000000000000000000000000000000000000000000";

    fn name(s: &str) -> RepoName {
        s.parse().unwrap()
    }
    fn digest(s: &str) -> Digest {
        s.parse().unwrap()
    }
    fn tag(s: &str) -> Reference {
        Reference::Tag(s.parse().unwrap())
    }
    fn uid(s: &str) -> UploadId {
        UploadId::parse(s).unwrap()
    }

    /// What a row expects: an endpoint, or an error with this status and code.
    enum Want {
        Ok(Endpoint),
        Err(u16, &'static str),
    }

    #[test]
    fn parses_every_shape_and_rejects_every_trick() {
        use Want::Err as E;
        let d = || digest(D);
        let esc = D.replace(':', "%3A");
        let mount = format!("mount={D}&from=other/repo");
        let mount_bad_from = format!("mount={D}&from=Bad..Name");
        let mount_escaped = format!("%6Dount={}&%66rom=other%2Frepo", D.replace(':', "%3a"));
        let mount_upper = format!("MOUNT={D}&From=other/repo");
        let mount_twice = format!("mount={D}&from=first&mount={D2}&from=second");
        let digest_q = format!("digest={D}");
        let tags_last = "n=10&last=v1.0".to_string();
        let blob_path = format!("/v2/a/b/blobs/{D}");
        let blob_esc = format!("/v2/a/b/blobs/{esc}");
        let referrers = format!("/v2/a/referrers/{D}");
        let man_digest = format!("/v2/a/manifests/{D}");
        let man_digest_esc = format!("/v2/a/manifests/{esc}");
        let blobs_named_repo = format!("/v2/blobs/uploads/blobs/{D2}");
        let md5 = "/v2/a/blobs/md5:d41d8cd98f00b204e9800998ecf8427e".to_string();

        #[rustfmt::skip]
        let rows: Vec<(Method, &str, Option<&str>, Want)> = vec![
            (Method::GET, "/v2/", None, Want::Ok(Endpoint::Base)),
            (Method::GET, "/v2", None, Want::Ok(Endpoint::Base)),
            (Method::HEAD, "/v2/", None, Want::Ok(Endpoint::Base)),
            (Method::POST, "/v2/", None, E(405, "UNSUPPORTED")),
            (Method::GET, "/v2/_catalog", Some("n=5&last=a%2Fb"), Want::Ok(Endpoint::Catalog { n: Some(5), last: Some("a/b".into()) })),
            (Method::GET, "/v2/_catalog", None, Want::Ok(Endpoint::Catalog { n: None, last: None })),
            (Method::GET, "/v2/_berth/usage", Some("n=2&last=a"), Want::Ok(Endpoint::Usage { n: Some(2), last: Some("a".into()) })),
            (Method::GET, "/v2/_catalog", Some("n=-1"), E(400, "SIZE_INVALID")),
            (Method::GET, "/v2/_catalog", Some("%6E=5&n=1000000&%6Cast=a%2Fb&last=z"), Want::Ok(Endpoint::Catalog { n: Some(5), last: Some("a/b".into()) })),
            (Method::GET, "/v2/_catalog", Some("N=5&Last=b"), Want::Ok(Endpoint::Catalog { n: None, last: None })),
            (Method::GET, "/v2/_catalog", Some("n=ten"), E(400, "SIZE_INVALID")),
            (Method::DELETE, "/v2/_catalog", None, E(405, "UNSUPPORTED")),
            (Method::GET, "/v2/a/b/c/tags/list", Some(&tags_last), Want::Ok(Endpoint::Tags { name: name("a/b/c"), n: Some(10), last: Some("v1.0".into()) })),
            (Method::PUT, "/v2/a/tags/list", None, E(405, "UNSUPPORTED")),
            (Method::GET, "/v2/tags/list", None, E(400, "NAME_INVALID")),
            (Method::GET, "/v2/a/b/manifests/latest", None, Want::Ok(Endpoint::Manifest { name: name("a/b"), reference: tag("latest"), op: ManifestOp::Get, ns: None })),
            (Method::HEAD, "/v2/a/manifests/v1", None, Want::Ok(Endpoint::Manifest { name: name("a"), reference: tag("v1"), op: ManifestOp::Head, ns: None })),
            (Method::PUT, "/v2/a/manifests/v1", None, Want::Ok(Endpoint::Manifest { name: name("a"), reference: tag("v1"), op: ManifestOp::Put, ns: None })),
            (Method::DELETE, &man_digest, None, Want::Ok(Endpoint::Manifest { name: name("a"), reference: Reference::Digest(d()), op: ManifestOp::Delete, ns: None })),
            (Method::GET, &man_digest_esc, None, Want::Ok(Endpoint::Manifest { name: name("a"), reference: Reference::Digest(d()), op: ManifestOp::Get, ns: None })),
            (Method::POST, "/v2/a/manifests/v1", None, E(405, "UNSUPPORTED")),
            (Method::GET, "/v2/a/manifests/sha256:totallywrong", None, E(400, "DIGEST_INVALID")),
            (Method::GET, "/v2/a/manifests/-bad", None, E(404, "MANIFEST_UNKNOWN")),
            (Method::HEAD, "/v2/a/manifests/.INVALID_MANIFEST_NAME", None, E(404, "MANIFEST_UNKNOWN")),
            (Method::DELETE, "/v2/a/manifests/..", None, E(404, "MANIFEST_UNKNOWN")),
            (Method::GET, "/v2/a/manifests/x%2Fy", None, E(404, "MANIFEST_UNKNOWN")),
            (Method::GET, "/v2/a/manifests/", None, E(404, "MANIFEST_UNKNOWN")),
            (Method::PUT, "/v2/a/manifests/-bad", None, E(400, "MANIFEST_INVALID")),
            (Method::PUT, "/v2/a/manifests/.INVALID_MANIFEST_NAME", None, E(400, "MANIFEST_INVALID")),
            (Method::GET, "/v2/manifests/latest", None, E(400, "NAME_INVALID")),
            // a repository whose name ends in "manifests" is still read from the right
            (Method::GET, "/v2/x/manifests/manifests/latest", None, Want::Ok(Endpoint::Manifest { name: name("x/manifests"), reference: tag("latest"), op: ManifestOp::Get, ns: None })),
            (Method::GET, &blob_path, None, Want::Ok(Endpoint::Blob { name: name("a/b"), digest: d(), op: BlobOp::Get, ns: None })),
            (Method::HEAD, &blob_esc, None, Want::Ok(Endpoint::Blob { name: name("a/b"), digest: d(), op: BlobOp::Head, ns: None })),
            (Method::DELETE, &blob_path, None, Want::Ok(Endpoint::Blob { name: name("a/b"), digest: d(), op: BlobOp::Delete, ns: None })),
            (Method::PUT, &blob_path, None, E(405, "UNSUPPORTED")),
            (Method::GET, "/v2/a/blobs/sha256:totallywrong", None, E(400, "DIGEST_INVALID")),
            (Method::GET, &md5, None, E(400, "DIGEST_INVALID")),
            (Method::GET, "/v2/a/blobs/..", None, E(400, "DIGEST_INVALID")),
            (Method::GET, &blobs_named_repo, None, Want::Ok(Endpoint::Blob { name: name("blobs/uploads"), digest: digest(D2), op: BlobOp::Get, ns: None })),
            (Method::POST, "/v2/a/b/blobs/uploads/", None, Want::Ok(Endpoint::UploadStart { name: name("a/b"), kind: UploadStartKind::Session })),
            (Method::POST, "/v2/a/blobs/uploads", None, Want::Ok(Endpoint::UploadStart { name: name("a"), kind: UploadStartKind::Session })),
            (Method::POST, "/v2/a/blobs/uploads/", Some(&digest_q), Want::Ok(Endpoint::UploadStart { name: name("a"), kind: UploadStartKind::Monolithic(d()) })),
            (Method::POST, "/v2/a/blobs/uploads/", Some(&mount), Want::Ok(Endpoint::UploadStart { name: name("a"), kind: UploadStartKind::Mount { digest: d(), from: Some(name("other/repo")) } })),
            (Method::POST, "/v2/a/blobs/uploads/", Some(&mount_bad_from), E(400, "NAME_INVALID")),
            // query keys and values decode by one rule (this parse is the only reader of the query):
            // an escaped key is the key, a differently cased one is another key, the first of two wins
            (Method::POST, "/v2/a/blobs/uploads/", Some(&mount_escaped), Want::Ok(Endpoint::UploadStart { name: name("a"), kind: UploadStartKind::Mount { digest: d(), from: Some(name("other/repo")) } })),
            (Method::POST, "/v2/a/blobs/uploads/", Some(&mount_upper), Want::Ok(Endpoint::UploadStart { name: name("a"), kind: UploadStartKind::Session })),
            (Method::POST, "/v2/a/blobs/uploads/", Some(&mount_twice), Want::Ok(Endpoint::UploadStart { name: name("a"), kind: UploadStartKind::Mount { digest: d(), from: Some(name("first")) } })),
            (Method::GET, "/v2/a/manifests/v1", Some("ns=docker.io"), Want::Ok(Endpoint::Manifest { name: name("a"), reference: tag("v1"), op: ManifestOp::Get, ns: Some(Namespace("docker.io".into())) })),
            (Method::HEAD, &blob_path, Some("%6Es=docker%2Eio&ns=quay.io"), Want::Ok(Endpoint::Blob { name: name("a/b"), digest: d(), op: BlobOp::Head, ns: Some(Namespace("docker.io".into())) })),
            (Method::GET, &blob_path, Some("ns=a/b"), Want::Ok(Endpoint::Blob { name: name("a/b"), digest: d(), op: BlobOp::Get, ns: None })),
            (Method::GET, &blob_path, Some("NS=docker.io"), Want::Ok(Endpoint::Blob { name: name("a/b"), digest: d(), op: BlobOp::Get, ns: None })),
            (Method::PUT, "/v2/a/manifests/v1", Some("ns=docker.io"), Want::Ok(Endpoint::Manifest { name: name("a"), reference: tag("v1"), op: ManifestOp::Put, ns: None })),
            (Method::DELETE, &blob_path, Some("ns=docker.io"), Want::Ok(Endpoint::Blob { name: name("a/b"), digest: d(), op: BlobOp::Delete, ns: None })),
            (Method::POST, "/v2/a/blobs/uploads/", Some("mount=sha256:nope"), E(400, "DIGEST_INVALID")),
            (Method::POST, "/v2/a/blobs/uploads/", Some("digest=sha256:totallywrong"), E(400, "DIGEST_INVALID")),
            (Method::GET, "/v2/a/blobs/uploads/", None, E(405, "UNSUPPORTED")),
            (Method::GET, "/v2/a/blobs/uploads/abc-123", None, Want::Ok(Endpoint::Upload { name: name("a"), id: uid("abc-123"), op: UploadOp::Status })),
            (Method::PATCH, "/v2/a/b/blobs/uploads/abc-123", None, Want::Ok(Endpoint::Upload { name: name("a/b"), id: uid("abc-123"), op: UploadOp::Chunk })),
            (Method::PUT, "/v2/a/blobs/uploads/abc", Some(&digest_q), Want::Ok(Endpoint::Upload { name: name("a"), id: uid("abc"), op: UploadOp::Finish(d()) })),
            (Method::PUT, "/v2/a/blobs/uploads/abc", None, E(400, "DIGEST_INVALID")),
            (Method::PUT, "/v2/a/blobs/uploads/abc", Some("digest=sha256:totallywrong"), E(400, "DIGEST_INVALID")),
            (Method::DELETE, "/v2/a/blobs/uploads/abc", None, Want::Ok(Endpoint::Upload { name: name("a"), id: uid("abc"), op: UploadOp::Cancel })),
            (Method::POST, "/v2/a/blobs/uploads/abc", None, E(405, "UNSUPPORTED")),
            (Method::GET, "/v2/a/blobs/uploads/a.b", None, E(404, "BLOB_UPLOAD_UNKNOWN")),
            (Method::GET, &referrers, Some("artifactType=application%2Fvnd.example%2Bjson"), Want::Ok(Endpoint::Referrers { name: name("a"), digest: d(), artifact_type: Some("application/vnd.example+json".into()) })),
            (Method::GET, &referrers, None, Want::Ok(Endpoint::Referrers { name: name("a"), digest: d(), artifact_type: None })),
            (Method::GET, "/v2/a/referrers/latest", None, E(400, "DIGEST_INVALID")),
            (Method::DELETE, &referrers, None, E(405, "UNSUPPORTED")),
            // names: escapes, dot segments, empty components, grammar
            (Method::GET, "/v2/a%2Fb/manifests/latest", None, E(400, "NAME_INVALID")),
            (Method::GET, "/v2/a%2fb/tags/list", None, E(400, "NAME_INVALID")),
            (Method::GET, "/v2/%2E%2E/manifests/latest", None, E(400, "NAME_INVALID")),
            (Method::GET, "/v2/../etc/manifests/latest", None, E(400, "NAME_INVALID")),
            (Method::GET, "/v2/a/../b/manifests/latest", None, E(400, "NAME_INVALID")),
            (Method::GET, "/v2/a/./b/manifests/latest", None, E(400, "NAME_INVALID")),
            (Method::GET, "/v2/a//b/manifests/latest", None, E(400, "NAME_INVALID")),
            (Method::GET, "/v2//a/manifests/latest", None, E(400, "NAME_INVALID")),
            (Method::GET, "/v2/Upper/manifests/latest", None, E(400, "NAME_INVALID")),
            (Method::GET, "/v2/a b/manifests/latest", None, E(400, "NAME_INVALID")),
            // nothing there
            (Method::GET, "/v2/a", None, E(404, "UNSUPPORTED")),
            (Method::GET, "/v2/a/b/c", None, E(404, "UNSUPPORTED")),
            (Method::GET, "/v2/a/tags/list/", None, E(404, "UNSUPPORTED")),
            (Method::GET, "/v2/_catalog/", None, E(404, "UNSUPPORTED")),
            (Method::GET, "/v2/a/blobs", None, E(404, "UNSUPPORTED")),
            (Method::GET, "/v3/", None, E(404, "UNSUPPORTED")),
            (Method::GET, "/", None, E(404, "UNSUPPORTED")),
        ];
        assert!(rows.len() > 60);
        for (method, path, query, want) in rows {
            let got = Endpoint::parse(&method, path, query);
            match (want, got) {
                (Want::Ok(w), Ok(g)) => assert_eq!(w, g, "{method} {path} {query:?}"),
                (Want::Err(status, code), Err(e)) => {
                    let (s, c) = e.status_and_code();
                    assert_eq!(
                        (s.as_u16(), c),
                        (status, code),
                        "{method} {path} {query:?}: {e:?}"
                    );
                }
                (Want::Ok(w), Err(e)) => panic!("{method} {path} {query:?}: want {w:?}, got {e:?}"),
                (Want::Err(s, c), Ok(g)) => {
                    panic!("{method} {path} {query:?}: want {s} {c}, got {g:?}")
                }
            }
        }
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%3Ab").as_deref(), Some("a:b"));
        assert_eq!(percent_decode("a%3ab").as_deref(), Some("a:b"));
        assert_eq!(percent_decode("plain").as_deref(), Some("plain"));
        assert_eq!(percent_decode("bad%zz"), None);
        assert_eq!(percent_decode("short%4"), None);
        assert_eq!(percent_decode("%ff"), None);
    }
}
