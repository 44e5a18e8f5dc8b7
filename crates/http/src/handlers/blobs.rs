//! Blob reads and deletes: `GET`/`HEAD`/`DELETE /v2/<name>/blobs/<digest>`.
//!
//! A GET streams the blob from the store to the client; a `Range` header asks for part of it. With
//! `storage.redirect` on an S3 store, a GET is answered 307 to a presigned URL of the bucket instead. Only a
//! single range is served: a multi-range or malformed header is answered 416 (after checking the blob
//! exists, so that an unknown blob is still a 404 and the 416 can carry the blob's size).
//!
//! Blobs of a pull-through cache's namespace go through the same code: the registry fetches them from
//! the upstream on a miss. A mirror request naming its namespace (`?ns=`) is answered with
//! `OCI-Namespace`.
//!
//! On a plain-HTTP/1 connection (the request carries the connection's `FileSink`) a blob the store keeps
//! in a local file is sent from that file with `sendfile(2)`, without copying it (see `sendfile.rs`).

use axum::body::Body;
use axum::http::header::{
    ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, HeaderName, HeaderValue,
    LOCATION,
};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use oci::{Digest, RepoName};
use registry::{Error, Registry};

use super::manifests::{MirrorLookup, OCI_NAMESPACE, namespaced};
use super::{Result, empty};
use crate::headers::{CONTENT_DIGEST, RANGE_NAME, parse_blob_range, value};
use crate::sendfile::{FileSink, SendfileBody};

pub async fn get(
    registry: &Registry,
    name: &RepoName,
    digest: &Digest,
    request: &HeaderMap,
    sink: Option<&FileSink>,
    lookup: MirrorLookup<'_>,
) -> Result {
    let (name, namespace) = namespaced(registry, name, lookup);
    let name = &name;
    // Redirected to the storage (when so configured): a client's Range header goes along with it.
    if let Some(url) = registry.blob_redirect(name, digest).await? {
        return Ok(empty(
            StatusCode::TEMPORARY_REDIRECT,
            [
                (LOCATION, value(url)),
                (CONTENT_DIGEST, value(digest.to_string())),
            ],
        ));
    }
    let range = match request.get(RANGE_NAME) {
        None => None,
        // A header that is not visible ASCII is as malformed as one that does not parse.
        Some(raw) => match raw.to_str().ok().and_then(parse_blob_range) {
            Some(range) => Some(range),
            None => {
                let info = registry.stat_blob(name, digest).await?;
                return Err(Error::RangeNotSatisfiable { size: info.size }.into());
            }
        },
    };

    let (content, file) = registry.get_blob_file(name, digest, range).await?;
    let mut headers = blob_headers(&content.digest);
    let status = match &content.range {
        Some(r) => {
            headers.push((
                CONTENT_LENGTH,
                value(r.end.saturating_sub(r.start).to_string()),
            ));
            headers.push((
                CONTENT_RANGE,
                value(format!(
                    "bytes {}-{}/{}",
                    r.start,
                    r.end.saturating_sub(1),
                    content.size
                )),
            ));
            StatusCode::PARTIAL_CONTENT
        }
        None => {
            headers.push((CONTENT_LENGTH, value(content.size.to_string())));
            StatusCode::OK
        }
    };
    headers.extend(namespace.map(|ns| (OCI_NAMESPACE, ns)));
    let headers: HeaderMap = headers.into_iter().collect();
    let body = match (sink, file) {
        // `content.body` is dropped unpolled: it has read nothing.
        (Some(sink), Some(file)) => Body::new(SendfileBody::new(sink.clone(), file)),
        _ => Body::from_stream(content.body),
    };
    Ok((status, headers, body).into_response())
}

/// HEAD: the GET's headers from a stat, without opening the blob.
pub async fn head(
    registry: &Registry,
    name: &RepoName,
    digest: &Digest,
    lookup: MirrorLookup<'_>,
) -> Result {
    let (name, namespace) = namespaced(registry, name, lookup);
    let info = registry.stat_blob(&name, digest).await?;
    let mut headers = blob_headers(&info.digest);
    headers.push((CONTENT_LENGTH, value(info.size.to_string())));
    headers.extend(namespace.map(|ns| (OCI_NAMESPACE, ns)));
    let headers: HeaderMap = headers.into_iter().collect();
    Ok((StatusCode::OK, headers, Body::empty()).into_response())
}

pub async fn delete(registry: &Registry, name: &RepoName, digest: &Digest) -> Result {
    registry.delete_blob(name, digest).await?;
    Ok(empty(
        StatusCode::ACCEPTED,
        [(CONTENT_DIGEST, value(digest.to_string()))],
    ))
}

fn blob_headers(digest: &Digest) -> Vec<(HeaderName, HeaderValue)> {
    vec![
        (CONTENT_DIGEST, value(digest.to_string())),
        (
            CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        ),
        (ETAG, value(format!("\"{digest}\""))),
        (ACCEPT_RANGES, HeaderValue::from_static("bytes")),
    ]
}
