//! Manifests: `GET`/`HEAD`/`PUT`/`DELETE /v2/<name>/manifests/<reference>`.
//!
//! A manifest is the one body read whole, because the registry must parse it; it is read with a limit of
//! the registry's `max_manifest_bytes` (one byte more is enough to know it is too large), so a client
//! cannot make the server buffer more than that.
//!
//! A manifest of a pull-through cache served without the upstream's confirmation carries
//! `Warning: 110 - "Response is stale"`; a mirror request naming its namespace (`?ns=`) is answered with
//! `OCI-Namespace`.

use std::borrow::Cow;

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, ETAG, LOCATION, WARNING};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use oci::{Reference, RepoName};
use registry::Registry;
use registry::proxy::STALE_WARNING;

use super::{Result, empty};
use crate::auth::Access;
use crate::body;
use crate::endpoint::Namespace;
use crate::headers::{CONTENT_DIGEST, OCI_SUBJECT, content_length, digest_and_etag, text, value};

/// containerd's answer to a mirror request that named its namespace (`?ns=`).
pub(super) const OCI_NAMESPACE: HeaderName = HeaderName::from_static("oci-namespace");

/// GET, or HEAD with `head` (same headers, including the Content-Length, and no body). `lookup` carries
/// containerd's `?ns=`.
pub async fn get(
    registry: &Registry,
    name: &RepoName,
    reference: &Reference,
    head: bool,
    lookup: MirrorLookup<'_>,
) -> Result {
    let (name, namespace) = namespaced(registry, name, lookup);
    let m = if head {
        registry.head_manifest(&name, reference).await?
    } else {
        registry.get_manifest(&name, reference).await?
    };
    let length = HeaderValue::from(m.payload.len());
    let body = if head {
        Body::empty()
    } else {
        Body::from(m.payload)
    };
    // Built straight into the response's own map (a map collected first was a second map and a copy),
    // the media type moved rather than copied.
    let mut resp = Response::new(body);
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, value(m.media_type));
    headers.insert(CONTENT_LENGTH, length);
    let (digest, etag) = digest_and_etag(&m.digest);
    headers.insert(CONTENT_DIGEST, digest);
    headers.insert(ETAG, etag);
    if m.stale {
        headers.insert(WARNING, HeaderValue::from_static(STALE_WARNING));
    }
    if let Some(ns) = namespace {
        headers.insert(OCI_NAMESPACE, ns);
    }
    Ok(resp)
}

/// What a read request says about containerd's mirror lookups: its parsed `?ns=` and, when auth is on,
/// what its caller may read.
#[derive(Clone, Copy, Default)]
pub struct MirrorLookup<'a> {
    pub ns: Option<&'a Namespace>,
    pub access: Option<&'a Access>,
}

/// The repository a request means, and the `OCI-Namespace` to answer: containerd asks a mirror for
/// `/v2/library/alpine/...?ns=docker.io`, which is the cached repository `docker.io/library/alpine` when
/// a cached namespace has the prefix `docker.io`. Any other `ns` is ignored (the name stands as sent).
///
/// The auth middleware authorized the name in the path; the repository read here is another one, so it
/// is authorized here, where it is read: a caller who may not pull it is answered as if no `ns` were
/// given (never with the cached content an `access:` rule keeps from them; a catalog grant, which shows
/// names, is not enough).
///
/// The name as sent is borrowed, not copied: that is every request but a mirror's.
pub(super) fn namespaced<'a>(
    registry: &Registry,
    name: &'a RepoName,
    lookup: MirrorLookup<'_>,
) -> (Cow<'a, RepoName>, Option<HeaderValue>) {
    let full = lookup
        .ns
        .and_then(|ns| Some((registry.proxy_namespace(ns.as_str(), name)?, ns)));
    match full {
        Some((full, ns)) if lookup.access.is_none_or(|a| a.may_pull(full.as_str())) => {
            (Cow::Owned(full), HeaderValue::from_str(ns.as_str()).ok())
        }
        _ => (Cow::Borrowed(name), None),
    }
}

pub async fn put(
    registry: &Registry,
    name: &RepoName,
    reference: &Reference,
    req: Request,
) -> Result {
    // The spec tells registries to ignore media type parameters (`; charset=utf-8` and the like).
    let content_type = text(req.headers(), &CONTENT_TYPE)
        .and_then(|ct| ct.split(';').next())
        .map(str::trim)
        .filter(|ct| !ct.is_empty())
        .map(str::to_string);
    let declared = content_length(req.headers())?;
    let limit = registry.settings().max_manifest_bytes;
    let payload = body::read_limited(req.into_body(), declared, limit).await?;

    let outcome = registry
        .put_manifest(name, reference, content_type.as_deref(), payload)
        .await?;
    let mut headers = vec![
        (
            LOCATION,
            value(format!("/v2/{name}/manifests/{}", outcome.digest)),
        ),
        (CONTENT_DIGEST, value(outcome.digest.to_string())),
    ];
    if let Some(subject) = &outcome.subject {
        headers.push((OCI_SUBJECT, value(subject.to_string())));
    }
    Ok(empty(StatusCode::CREATED, headers))
}

pub async fn delete(registry: &Registry, name: &RepoName, reference: &Reference) -> Result {
    registry.delete_manifest(name, reference).await?;
    Ok(empty(StatusCode::ACCEPTED, []))
}
