//! One handler file per resource group; this module parses the endpoint and hands the request to it.
//!
//! Handlers return `Result<Response, ApiError>`; the error becomes a response here, where the request id
//! is known, so that an internal error is logged and answered with the same id.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{CONTENT_LENGTH, HeaderName, HeaderValue};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use registry::Registry;

use crate::endpoint::{BlobOp, Endpoint, ManifestOp, UploadOp, UploadStartKind};
use crate::error::ApiError;
use crate::middleware::RequestId;

mod base;
mod blobs;
mod discovery;
mod manifests;
mod referrers;
mod uploads;

type Result<T = Response, E = ApiError> = std::result::Result<T, E>;

pub async fn dispatch(State(registry): State<Registry>, mut req: Request) -> Response {
    let request_id = RequestId::of(&req);
    // The auth middleware, when there is one, already parsed this very request (see `auth`).
    let parsed = match req.extensions_mut().remove::<Endpoint>() {
        Some(endpoint) => Ok(endpoint),
        None => Endpoint::parse(req.method(), req.uri().path(), req.uri().query()),
    };
    let endpoint = match parsed {
        Ok(endpoint) => endpoint,
        Err(e) => return e.into_response(&request_id),
    };
    let mut resp = route(&registry, &endpoint, req)
        .await
        .unwrap_or_else(|e| e.into_response(&request_id));
    // Handed to the access log through the response, so the path is parsed once per request here; moved,
    // not copied, once the handler is done with it.
    if let Some(name) = endpoint.into_repository() {
        resp.extensions_mut()
            .insert(crate::middleware::Repository(name));
    }
    resp
}

async fn route(registry: &Registry, endpoint: &Endpoint, req: Request) -> Result {
    let lookup = manifests::MirrorLookup {
        query: req.uri().query(),
        access: req.extensions().get::<crate::auth::Access>(),
    };
    match endpoint {
        Endpoint::Base => Ok(base::get()),
        Endpoint::Catalog { n, last } => {
            let access = req.extensions().get::<crate::auth::Access>();
            discovery::catalog(registry, *n, last.clone(), access).await
        }
        Endpoint::Tags { name, n, last } => discovery::tags(registry, name, *n, last.clone()).await,
        Endpoint::Manifest {
            name,
            reference,
            op,
        } => match op {
            ManifestOp::Get => manifests::get(registry, name, reference, false, lookup).await,
            ManifestOp::Head => manifests::get(registry, name, reference, true, lookup).await,
            ManifestOp::Put => manifests::put(registry, name, reference, req).await,
            ManifestOp::Delete => manifests::delete(registry, name, reference).await,
        },
        Endpoint::Blob { name, digest, op } => match op {
            BlobOp::Get => {
                let sink = req.extensions().get();
                blobs::get(registry, name, digest, req.headers(), sink, lookup).await
            }
            BlobOp::Head => blobs::head(registry, name, digest, lookup).await,
            BlobOp::Delete => blobs::delete(registry, name, digest).await,
        },
        Endpoint::UploadStart { name, kind } => match kind {
            UploadStartKind::Session => uploads::start(registry, name).await,
            UploadStartKind::Monolithic(digest) => {
                uploads::monolithic(registry, name, digest, req).await
            }
            UploadStartKind::Mount { digest, from } => {
                uploads::mount(registry, name, digest, from.as_ref()).await
            }
        },
        Endpoint::Upload { name, id, op } => match op {
            UploadOp::Status => uploads::status(registry, name, id).await,
            UploadOp::Chunk => uploads::chunk_patch(registry, name, id, req).await,
            UploadOp::Finish(digest) => uploads::finish(registry, name, id, digest, req).await,
            UploadOp::Cancel => uploads::cancel(registry, name, id).await,
        },
        Endpoint::Referrers {
            name,
            digest,
            artifact_type,
        } => referrers::list(registry, name, digest, artifact_type.as_deref()).await,
    }
}

/// A response with no body: its `Content-Length: 0` is explicit, as registry:2 sends it and some
/// clients expect it on 201/202/204.
fn empty(
    status: StatusCode,
    headers: impl IntoIterator<Item = (HeaderName, HeaderValue)>,
) -> Response {
    let mut map: HeaderMap = headers.into_iter().collect();
    if status != StatusCode::NO_CONTENT {
        map.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
    }
    (status, map, Body::empty()).into_response()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::body::Body;

    use super::*;

    fn registry(dir: &std::path::Path) -> Registry {
        let blobs = ::blobs::fs::FsBlobStore::open(dir.join("blobs")).unwrap();
        let meta = metadata::sqlite::SqliteStore::open(&dir.join("metadata.sqlite")).unwrap();
        Registry::new(Arc::new(blobs), Arc::new(meta), registry::Config::default())
    }

    /// The auth middleware hands its parse over in the extensions; the dispatcher routes on it instead
    /// of parsing the path a second time.
    #[tokio::test]
    async fn an_endpoint_parsed_upstream_is_not_parsed_again() {
        let dir = tempfile::tempdir().unwrap();
        let registry = registry(dir.path());
        let get = |with: Option<Endpoint>| {
            let mut req = Request::get("/v2/nothing/tags/list")
                .body(Body::empty())
                .unwrap();
            if let Some(e) = with {
                req.extensions_mut().insert(e);
            }
            req
        };
        // Parsed here: the tags of a repository that does not exist.
        let resp = dispatch(State(registry.clone()), get(None)).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        // Handed over (a different endpoint, to tell them apart): the base endpoint answers.
        let resp = dispatch(State(registry), get(Some(Endpoint::Base))).await;
        assert_eq!(resp.status(), StatusCode::OK);
    }
}
