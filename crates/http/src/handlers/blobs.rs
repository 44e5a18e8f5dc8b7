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
    ACCEPT_RANGES, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, HeaderValue, LOCATION,
};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use oci::{Digest, RepoName};
use registry::{Error, Registry};

use super::manifests::{MirrorLookup, OCI_NAMESPACE, namespaced};
use super::{Result, empty};
use crate::counted::Counted;
use crate::headers::{CONTENT_DIGEST, RANGE_NAME, digest_and_etag, parse_blob_range, value};
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
    let name = &*name;
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
    let mut headers = HeaderMap::new();
    blob_headers(&mut headers, &content.digest);
    let status = match &content.range {
        Some(r) => {
            headers.insert(
                CONTENT_LENGTH,
                HeaderValue::from(r.end.saturating_sub(r.start)),
            );
            headers.insert(
                CONTENT_RANGE,
                value(format!(
                    "bytes {}-{}/{}",
                    r.start,
                    r.end.saturating_sub(1),
                    content.size
                )),
            );
            StatusCode::PARTIAL_CONTENT
        }
        None => {
            headers.insert(CONTENT_LENGTH, HeaderValue::from(content.size));
            StatusCode::OK
        }
    };
    if let Some(ns) = namespace {
        headers.insert(OCI_NAMESPACE, ns);
    }
    let body = match (sink, file) {
        // `content.body` is dropped unpolled: it has read nothing.
        (Some(sink), Some(file)) => {
            let body = Body::new(SendfileBody::new(sink.clone(), file.range));
            match file.served {
                // A frame is counted as hyper takes it, as the access log counts it.
                Some(served) => Counted::wrap(body, move |n| served.sent(n), None),
                None => body,
            }
        }
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
    let mut resp = Response::new(Body::empty());
    let headers = resp.headers_mut();
    blob_headers(headers, &info.digest);
    headers.insert(CONTENT_LENGTH, HeaderValue::from(info.size));
    if let Some(ns) = namespace {
        headers.insert(OCI_NAMESPACE, ns);
    }
    Ok(resp)
}

pub async fn delete(registry: &Registry, name: &RepoName, digest: &Digest) -> Result {
    registry.delete_blob(name, digest).await?;
    Ok(empty(
        StatusCode::ACCEPTED,
        [(CONTENT_DIGEST, value(digest.to_string()))],
    ))
}

/// The headers every blob GET and HEAD answers with, straight into the response's map (HEAD is among
/// the most frequent requests: no intermediate list, no formatting of the digest).
fn blob_headers(headers: &mut HeaderMap, digest: &Digest) {
    let (digest, etag) = digest_and_etag(digest);
    headers.insert(CONTENT_DIGEST, digest);
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(ETAG, etag);
    headers.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
}
