//! Authentication and authorization at the HTTP edge: a middleware that asks the [`Authority`] whether a
//! request may go ahead, before any handler runs.
//!
//! The middleware parses the request into an [`Endpoint`] with the very function the dispatcher uses, so
//! the repository it authorizes is exactly the repository the handler will touch: percent escapes (`%2F`),
//! `..`, empty components and uppercase are refused by that parser as NAME_INVALID, never normalised into
//! another name. A request that does not parse is passed on untouched: the dispatcher parses it the same
//! way and answers the error, so it can reach no repository.
//!
//! Each endpoint needs the actions of [`scopes`] (registry:2's mapping). Writes need pull as well as push,
//! as in registry:2 and in the scopes Docker clients request. A cross-repository mount also needs pull on
//! its source; when the caller may not pull the source (or names none, meaning "any repository"), the
//! mount parameters are dropped and the request becomes an ordinary upload, which the spec allows when a
//! mount cannot be done: the caller learns nothing about the other repository and still gets its 202.
//!
//! Allowed requests carry an [`Access`] and their parsed [`Endpoint`] in their extensions (the catalog
//! handler filters with the one, the dispatcher routes on the other without parsing again), and
//! their responses carry the [`AuthenticatedUser`] for the access log. Refusals are spec error bodies:
//! 401 UNAUTHORIZED with `WWW-Authenticate`, or 403 DENIED. Nothing secret is logged or echoed: the
//! `Authorization` header is read here and nowhere else.

use std::sync::Arc;

use ::auth::{Action, Authority, Caller, Decision, Scope};
use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::uri::PathAndQuery;
use axum::http::{HeaderValue, Uri};
use axum::middleware::Next;
use axum::response::Response;
use registry::{DEFAULT_CATALOG_PAGE, MAX_PAGE, Page, Registry};

use crate::endpoint::{BlobOp, Endpoint, ManifestOp, UploadStartKind};
use crate::error::ApiError;
use crate::middleware::RequestId;

/// What an allowed request's caller may see, for handlers that filter listings.
#[derive(Clone)]
pub struct Access {
    authority: Arc<Authority>,
    caller: Caller,
}

impl Access {
    /// Whether the caller's catalog shows `repo`.
    pub fn lists(&self, repo: &str) -> bool {
        self.authority.lists(&self.caller, repo)
    }
}

/// The user a response was served to (in the response's extensions), for the access log.
#[derive(Clone, Debug)]
pub struct AuthenticatedUser(pub String);

/// The middleware; install it with `axum::middleware::from_fn_with_state(authority, auth::authorize)`
/// inside the request-context middleware, so refusals carry the request id and version header too.
pub async fn authorize(
    State(authority): State<Arc<Authority>>,
    mut req: Request,
    next: Next,
) -> Response {
    let Ok(endpoint) = Endpoint::parse(req.method(), req.uri().path(), req.uri().query()) else {
        return next.run(req).await;
    };
    let request_id = RequestId::of(&req);
    // A header that is not visible ASCII cannot be credentials; it is refused like wrong ones.
    let header = match req.headers().get(AUTHORIZATION) {
        None => None,
        Some(v) => Some(v.to_str().unwrap_or("")),
    };
    let caller = match authority.authenticate(header).await {
        Ok(caller) => caller,
        Err(decision) => return refuse(decision, &request_id),
    };

    let mut wants = scopes(&endpoint);
    // The dispatcher takes the parsed endpoint from the request rather than parsing the path again,
    // unless the query was rewritten below (then it parses the new one).
    let mut parsed = Some(endpoint.clone());
    if let Endpoint::UploadStart {
        name,
        kind: UploadStartKind::Mount { from, .. },
    } = &endpoint
    {
        let readable = from
            .as_ref()
            .is_some_and(|f| authority.may(&caller, f.as_str(), Action::Pull));
        if !readable {
            drop_mount(&mut req);
            parsed = None;
            wants = vec![Scope::repository(
                name.as_str(),
                &[Action::Pull, Action::Push],
            )];
        }
    }

    match authority.authorize(&caller, &wants) {
        Decision::Allow => {
            let user = caller.identity.user().map(str::to_string);
            req.extensions_mut().insert(Access {
                authority: authority.clone(),
                caller,
            });
            if let Some(endpoint) = parsed {
                req.extensions_mut().insert(endpoint);
            }
            let mut resp = next.run(req).await;
            if let Some(user) = user {
                resp.extensions_mut().insert(AuthenticatedUser(user));
            }
            resp
        }
        refusal => refuse(refusal, &request_id),
    }
}

/// The scopes a request needs, as registry:2 maps them: reads need pull; uploads and manifest puts need
/// pull and push (a mount also pull on its source); deletes need delete; the catalog its own scope.
pub fn scopes(endpoint: &Endpoint) -> Vec<Scope> {
    use Action::{Delete, Pull, Push};
    let repo = |name: &oci::RepoName, actions: &[Action]| Scope::repository(name.as_str(), actions);
    match endpoint {
        Endpoint::Base => Vec::new(),
        Endpoint::Catalog { .. } => vec![Scope::Catalog],
        Endpoint::Tags { name, .. } | Endpoint::Referrers { name, .. } => vec![repo(name, &[Pull])],
        Endpoint::Manifest { name, op, .. } => match op {
            ManifestOp::Get | ManifestOp::Head => vec![repo(name, &[Pull])],
            ManifestOp::Put => vec![repo(name, &[Pull, Push])],
            ManifestOp::Delete => vec![repo(name, &[Delete])],
        },
        Endpoint::Blob { name, op, .. } => match op {
            BlobOp::Get | BlobOp::Head => vec![repo(name, &[Pull])],
            BlobOp::Delete => vec![repo(name, &[Delete])],
        },
        Endpoint::UploadStart { name, kind } => {
            let mut wants = vec![repo(name, &[Pull, Push])];
            if let UploadStartKind::Mount {
                from: Some(from), ..
            } = kind
                && from != name
            {
                wants.push(repo(from, &[Pull]));
            }
            wants
        }
        // Cancelling an upload is part of pushing, not a deletion of content.
        Endpoint::Upload { name, .. } => vec![repo(name, &[Pull, Push])],
    }
}

/// A catalog page holding only the repositories `keep` accepts, with `more` telling whether another kept
/// repository follows. Pages of the full catalog are read until the page is full, so `n`, `last` and the
/// `Link` header work as without filtering (the cursor is always a repository the caller may see).
pub async fn filtered_catalog(
    registry: &Registry,
    page: &Page,
    keep: impl Fn(&str) -> bool,
) -> Result<(Vec<String>, bool), registry::Error> {
    let limit = page.limit(DEFAULT_CATALOG_PAGE);
    let mut out = Vec::new();
    if limit == 0 {
        return Ok((out, false));
    }
    let mut cursor = page.last.clone();
    loop {
        let batch_page = Page {
            n: Some(MAX_PAGE),
            last: cursor.take(),
        };
        let (batch, more) = registry.catalog(&batch_page).await?;
        for name in &batch {
            if keep(name) {
                if out.len() == limit {
                    return Ok((out, true));
                }
                out.push(name.clone());
            }
        }
        match batch.last() {
            Some(last) if more => cursor = Some(last.clone()),
            _ => return Ok((out, false)),
        }
    }
}

fn refuse(decision: Decision, request_id: &str) -> Response {
    let error: ApiError = match decision {
        Decision::Unauthorized { challenge } => {
            let e = ApiError::from(registry::Error::Unauthorized);
            match HeaderValue::from_str(&challenge) {
                Ok(v) => e.with_header(WWW_AUTHENTICATE, v),
                Err(_) => e,
            }
        }
        Decision::Denied => registry::Error::Denied.into(),
        // Not a refusal; never passed here, but a 403 is the safe answer if it ever were.
        Decision::Allow => registry::Error::Denied.into(),
    };
    error.into_response(request_id)
}

/// Removes `mount` and `from` from the request's query, turning a mount into an ordinary upload start (or
/// a monolithic one when `digest` is there too).
fn drop_mount(req: &mut Request) {
    let uri = req.uri();
    let kept: Vec<&str> = uri
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|kv| {
            let key = kv.split_once('=').map_or(*kv, |(k, _)| k);
            !kv.is_empty() && key != "mount" && key != "from"
        })
        .collect();
    let path_and_query = if kept.is_empty() {
        uri.path().to_string()
    } else {
        format!("{}?{}", uri.path(), kept.join("&"))
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = PathAndQuery::try_from(path_and_query).ok();
    // The parts came from a valid URI and only lost query pairs, so this cannot fail; if it somehow did,
    // the request keeps its URI, and the scopes already computed still require push on the target.
    if let Ok(new) = Uri::from_parts(parts) {
        *req.uri_mut() = new;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Method;

    fn wants(method: Method, path: &str, query: Option<&str>) -> Vec<String> {
        let e = Endpoint::parse(&method, path, query).unwrap();
        scopes(&e).iter().map(Scope::to_string).collect()
    }

    #[test]
    fn every_endpoint_maps_to_its_scopes() {
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let id = "0123456789abcdef0123456789abcdef";
        let table: Vec<(Method, String, Option<String>, Vec<&str>)> = vec![
            (Method::GET, "/v2/".into(), None, vec![]),
            (
                Method::GET,
                "/v2/_catalog".into(),
                None,
                vec!["registry:catalog:*"],
            ),
            (
                Method::GET,
                "/v2/a/b/tags/list".into(),
                None,
                vec!["repository:a/b:pull"],
            ),
            (
                Method::GET,
                "/v2/a/manifests/latest".into(),
                None,
                vec!["repository:a:pull"],
            ),
            (
                Method::HEAD,
                "/v2/a/manifests/latest".into(),
                None,
                vec!["repository:a:pull"],
            ),
            (
                Method::PUT,
                "/v2/a/manifests/latest".into(),
                None,
                vec!["repository:a:pull,push"],
            ),
            (
                Method::DELETE,
                format!("/v2/a/manifests/{d}"),
                None,
                vec!["repository:a:delete"],
            ),
            (
                Method::GET,
                format!("/v2/a/blobs/{d}"),
                None,
                vec!["repository:a:pull"],
            ),
            (
                Method::HEAD,
                format!("/v2/a/blobs/{d}"),
                None,
                vec!["repository:a:pull"],
            ),
            (
                Method::DELETE,
                format!("/v2/a/blobs/{d}"),
                None,
                vec!["repository:a:delete"],
            ),
            (
                Method::POST,
                "/v2/a/blobs/uploads/".into(),
                None,
                vec!["repository:a:pull,push"],
            ),
            (
                Method::POST,
                "/v2/a/blobs/uploads/".into(),
                Some(format!("digest={d}")),
                vec!["repository:a:pull,push"],
            ),
            (
                Method::POST,
                "/v2/a/blobs/uploads/".into(),
                Some(format!("mount={d}&from=b/c")),
                vec!["repository:a:pull,push", "repository:b/c:pull"],
            ),
            (
                Method::POST,
                "/v2/a/blobs/uploads/".into(),
                Some(format!("mount={d}&from=a")),
                vec!["repository:a:pull,push"],
            ),
            (
                Method::GET,
                format!("/v2/a/blobs/uploads/{id}"),
                None,
                vec!["repository:a:pull,push"],
            ),
            (
                Method::PATCH,
                format!("/v2/a/blobs/uploads/{id}"),
                None,
                vec!["repository:a:pull,push"],
            ),
            (
                Method::PUT,
                format!("/v2/a/blobs/uploads/{id}"),
                Some(format!("digest={d}")),
                vec!["repository:a:pull,push"],
            ),
            (
                Method::DELETE,
                format!("/v2/a/blobs/uploads/{id}"),
                None,
                vec!["repository:a:pull,push"],
            ),
            (
                Method::GET,
                format!("/v2/a/referrers/{d}"),
                None,
                vec!["repository:a:pull"],
            ),
        ];
        for (method, path, query, want) in table {
            assert_eq!(
                wants(method.clone(), &path, query.as_deref()),
                want,
                "{method} {path}"
            );
        }
    }

    #[test]
    fn dropping_a_mount_keeps_the_other_parameters() {
        let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        for (query, want) in [
            (
                format!("mount={d}&from=secret"),
                "/v2/a/blobs/uploads/".to_string(),
            ),
            (format!("mount={d}"), "/v2/a/blobs/uploads/".to_string()),
            (
                format!("from=secret&digest={d}&mount={d}"),
                format!("/v2/a/blobs/uploads/?digest={d}"),
            ),
        ] {
            let mut req = Request::builder()
                .method(Method::POST)
                .uri(format!("/v2/a/blobs/uploads/?{query}"))
                .body(axum::body::Body::empty())
                .unwrap();
            drop_mount(&mut req);
            assert_eq!(req.uri().to_string(), want);
        }
    }
}
