//! One handler file per resource group; this module routes the request's one parse to it: parsed here on
//! an open router, taken from the auth middleware's [`Authorized`] on a guarded one.
//!
//! Handlers return `Result<Response, ApiError>`; the error becomes a response here, where the request id
//! is known, so that an internal error is logged and answered with the same id.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{CONTENT_LENGTH, HeaderName, HeaderValue};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use registry::Registry;

use crate::auth::{Access, Authorized};
use crate::endpoint::{BlobOp, Endpoint, ManifestOp, UploadOp, UploadStartKind};
use crate::error::ApiError;
use crate::middleware::{AuthenticatedUser, RequestId};

mod base;
mod blobs;
mod discovery;
mod manifests;
mod referrers;
mod uploads;
mod usage;

use manifests::MirrorLookup;

type Result<T = Response, E = ApiError> = std::result::Result<T, E>;

/// The dispatcher of an open router (no auth): parses the request, the only parse it gets.
pub async fn dispatch(State(registry): State<Registry>, req: Request) -> Response {
    let request_id = RequestId::of(&req);
    match Endpoint::parse(req.method(), req.uri().path(), req.uri().query()) {
        Ok(endpoint) => respond(&registry, endpoint, None, req, &request_id).await,
        Err(e) => e.into_response(&request_id),
    }
}

/// The dispatcher of a guarded router: routes on the parse the auth middleware authorized
/// ([`Authorized`]), never on a parse of its own, so that what is performed is what was allowed. A
/// request without one did not come through the middleware, which is a wiring bug: refused, not served.
pub async fn dispatch_authorized(State(registry): State<Registry>, mut req: Request) -> Response {
    let request_id = RequestId::of(&req);
    match req.extensions_mut().remove::<Authorized>() {
        Some(Authorized { endpoint, access }) => {
            respond(&registry, endpoint, Some(&access), req, &request_id).await
        }
        None => {
            tracing::error!(request_id = %request_id, "a guarded request reached the dispatcher unauthorized");
            ApiError::from(registry::Error::Denied).into_response(&request_id)
        }
    }
}

async fn respond(
    registry: &Registry,
    endpoint: Endpoint,
    access: Option<&Access>,
    req: Request,
    request_id: &RequestId,
) -> Response {
    // The audit log's part (`crate::audit`): who, taken before the request goes to the handler.
    let audited = crate::audit::records(&endpoint) && crate::audit::active();
    let user = audited
        .then(|| {
            req.extensions()
                .get::<AuthenticatedUser>()
                .map(|u| u.0.clone())
        })
        .flatten();
    // What the handler left of the body is read away before the answer (see `crate::body`).
    let (req, unread) = crate::body::keep_unread(req);
    let routed = route(registry, &endpoint, access, req).await;
    unread.drain().await;
    if audited && let Some(entry) = crate::audit::after(&endpoint, user, routed.as_ref()) {
        crate::audit::note(|| entry);
    }
    let mut resp = routed.unwrap_or_else(|e| e.into_response(request_id));
    // Handed to the access log through the response, so the path is parsed once per request here; moved,
    // not copied, once the handler is done with it.
    if let Some(name) = endpoint.into_repository() {
        resp.extensions_mut()
            .insert(crate::middleware::Repository(name));
    }
    resp
}

/// Calls the handler of `endpoint`. `access` is the caller's, on a guarded router: the handlers that read
/// a repository the path does not name check it there.
async fn route(
    registry: &Registry,
    endpoint: &Endpoint,
    access: Option<&Access>,
    req: Request,
) -> Result {
    let lookup = MirrorLookup {
        ns: endpoint.namespace(),
        access,
    };
    match endpoint {
        Endpoint::Base => Ok(base::get()),
        Endpoint::Usage { n, last } => usage::report(registry, *n, last.clone(), access).await,
        Endpoint::Catalog { n, last } => {
            discovery::catalog(registry, *n, last.clone(), access).await
        }
        Endpoint::Tags { name, n, last } => discovery::tags(registry, name, *n, last.clone()).await,
        Endpoint::Manifest {
            name,
            reference,
            op,
            ..
        } => match op {
            ManifestOp::Get => manifests::get(registry, name, reference, false, lookup).await,
            ManifestOp::Head => manifests::get(registry, name, reference, true, lookup).await,
            ManifestOp::Put => manifests::put(registry, name, reference, req).await,
            ManifestOp::Delete => manifests::delete(registry, name, reference).await,
        },
        Endpoint::Blob {
            name, digest, op, ..
        } => match op {
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
                uploads::mount(registry, name, digest, from.as_ref(), access).await
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
        Registry::new(
            Arc::new(blobs),
            Arc::new(meta),
            registry::Settings::default(),
        )
    }

    /// A guarded router's dispatcher routes on the parse the middleware authorized, never on a parse of
    /// its own, and refuses a request that carries none.
    #[tokio::test]
    async fn a_guarded_dispatcher_routes_only_on_the_authorized_parse() {
        let dir = tempfile::tempdir().unwrap();
        let registry = registry(dir.path());
        let get = || {
            Request::get("/v2/nothing/tags/list")
                .body(Body::empty())
                .unwrap()
        };
        // Open: parsed here, the tags of a repository that does not exist.
        let resp = dispatch(State(registry.clone()), get()).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        // Guarded without the middleware's parse: refused, though the path parses.
        let resp = dispatch_authorized(State(registry.clone()), get()).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        // Guarded with it (a different endpoint, to tell them apart): the base endpoint answers.
        let htpasswd = dir.path().join("htpasswd");
        std::fs::write(&htpasswd, "").unwrap();
        let settings = ::auth::Settings {
            htpasswd: Some(::auth::HtpasswdSettings {
                realm: "test".into(),
                path: htpasswd,
            }),
            token: None,
            access: None,
        };
        let authority = Arc::new(::auth::Authority::new(&settings).unwrap().unwrap());
        let mut req = get();
        req.extensions_mut().insert(Authorized {
            endpoint: Endpoint::Base,
            access: Access::new(authority, ::auth::Caller::anonymous()),
        });
        let resp = dispatch_authorized(State(registry), req).await;
        assert_eq!(resp.status(), StatusCode::OK);
    }
}
