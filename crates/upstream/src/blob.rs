//! Blobs from the upstream, streamed: the response body becomes a [`ByteStream`] chunk by chunk (hyper's
//! reads, bounded by its buffer), so no blob is ever held whole, however large.
//!
//! The stream is not verified here (the cache hashes what it stores); it only turns transport failures
//! into `io::Error` items: a reset or a connection closed before `Content-Length` was reached (hyper
//! reports the short body), or a silence longer than the stall timeout.

use std::time::Duration;

use futures_util::stream;
use hyper::Method;
use hyper::body::Incoming;
use hyper::header::CONTENT_LENGTH;
use oci::{Digest, RepoName};
use registry::ByteStream;
use registry::proxy::{UpstreamBlob, UpstreamError};

use crate::client::next_chunk;
use crate::fetch::Fetcher;
use crate::manifest::scope;
use crate::status::classify;

pub(crate) async fn get(
    f: &Fetcher,
    repo: &RepoName,
    digest: &Digest,
) -> Result<Option<UpstreamBlob>, UpstreamError> {
    let path = format!("/v2/{}/blobs/{digest}", repo.as_str());
    let resp = f.request(Method::GET, &path, None, &scope(repo)).await?;
    let Some(resp) = classify(resp, "blob GET")? else {
        return Ok(None);
    };
    let size = resp
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    Ok(Some(UpstreamBlob {
        size,
        body: body_stream(resp.into_body(), f.http.stall_timeout()),
    }))
}

/// The body as a stream of chunks that ends after its first error.
fn body_stream(body: Incoming, stall: Duration) -> ByteStream {
    Box::pin(stream::unfold(Some(body), move |state| async move {
        let mut body = state?;
        match next_chunk(&mut body, stall).await {
            Ok(Some(chunk)) => Some((Ok(chunk), Some(body))),
            Ok(None) => None,
            // Dropping the body here closes the connection: a broken transfer is never pooled.
            Err(e) => Some((Err(e), None)),
        }
    }))
}
