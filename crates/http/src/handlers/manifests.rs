//! Manifests: `GET`/`HEAD`/`PUT`/`DELETE /v2/<name>/manifests/<reference>`.
//!
//! A manifest is the one body read whole, because the registry must parse it; it is read with a limit of
//! the registry's `max_manifest_bytes` (one byte more is enough to know it is too large), so a client
//! cannot make the server buffer more than that.

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, ETAG, LOCATION};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use oci::{Reference, RepoName};
use registry::Registry;

use super::{Result, empty};
use crate::body;
use crate::headers::{CONTENT_DIGEST, OCI_SUBJECT, content_length, text, value};

/// GET, or HEAD with `head` (same headers, including the Content-Length, and no body).
pub async fn get(
    registry: &Registry,
    name: &RepoName,
    reference: &Reference,
    head: bool,
) -> Result {
    let m = registry.get_manifest(name, reference).await?;
    let headers: HeaderMap = [
        (CONTENT_TYPE, value(m.media_type.clone())),
        (CONTENT_LENGTH, value(m.payload.len().to_string())),
        (CONTENT_DIGEST, value(m.digest.to_string())),
        (ETAG, value(format!("\"{}\"", m.digest))),
    ]
    .into_iter()
    .collect();
    let body = if head {
        Body::empty()
    } else {
        Body::from(m.payload)
    };
    Ok((StatusCode::OK, headers, body).into_response())
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
    let limit = registry.config().max_manifest_bytes;
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
