//! Authentication and authorization at the HTTP edge: a middleware that asks the [`Authority`] whether a
//! request may go ahead, before any handler runs.
//!
//! A request is parsed once. The middleware parses it into an [`Endpoint`] (path and query, by the one
//! set of decoding rules in `endpoint.rs`), authorizes that endpoint, and hands exactly that parse to the
//! dispatcher as [`Authorized`]; the dispatcher of a guarded router never parses the request again, and
//! nothing rewrites it in between. So the repository authorized is the repository the handler touches:
//! percent escapes (`%2F`), `..`, empty components and uppercase are refused by that parser as
//! NAME_INVALID, never normalised into another name, and an escaped query key (`%6Dount=`) means the
//! same to both. A request that does not parse is answered with its error here: it reaches no handler.
//!
//! Each endpoint needs the actions of [`scopes`] (registry:2's mapping). Writes need pull as well as push,
//! as in registry:2 and in the scopes Docker clients request. Two reads reach a repository other than the
//! one the path names, and each is authorized where it is performed, with the caller's [`Access`]: a
//! cross-repository mount reads its source (the mount handler mounts only from a source the caller may
//! pull, and otherwise starts an ordinary upload, which the spec allows when a mount cannot be done: the
//! caller learns nothing about the other repository and still gets its 202), and containerd's `?ns=`
//! reads a cached repository (the handler reads it only if the caller may pull it).
//!
//! Refusals are spec error bodies: 401 UNAUTHORIZED with `WWW-Authenticate`, or 403 DENIED. Those of a
//! caller who presented credentials (wrong ones, or a known user without the right) are lines of the
//! audit log (`crate::audit`); an anonymous caller's challenge is not. Allowed
//! responses carry the `middleware::AuthenticatedUser` for the access log. Nothing secret is logged or echoed: the
//! `Authorization` header is read here and nowhere else.

use std::sync::Arc;

use ::auth::{Action, Authority, Caller, Decision, Scope};
use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::middleware::Next;
use axum::response::Response;
use registry::{DEFAULT_CATALOG_PAGE, MAX_PAGE, Page, Registry};

use crate::audit;
use crate::endpoint::{BlobOp, Endpoint, ManifestOp, UploadStartKind};
use crate::error::ApiError;
use crate::middleware::{AuthenticatedUser, RequestId};

/// What an allowed request's caller may do beyond the request itself, for handlers that read another
/// repository than the path's or filter listings.
#[derive(Clone)]
pub struct Access {
    authority: Arc<Authority>,
    caller: Caller,
}

impl Access {
    pub fn new(authority: Arc<Authority>, caller: Caller) -> Access {
        Access { authority, caller }
    }

    /// Whether the caller's catalog shows `repo` (a catalog grant shows every repository).
    pub fn lists(&self, repo: &str) -> bool {
        self.authority.lists(&self.caller, repo)
    }

    /// Whether the caller may read `repo`'s content: the check of every read of a repository the
    /// request's path does not name (a mount's source, a `?ns=` mirror lookup). A catalog grant is not
    /// enough: it shows names, never content.
    pub fn may_pull(&self, repo: &str) -> bool {
        self.authority.may(&self.caller, repo, Action::Pull)
    }
}

/// A request the middleware allowed: the one parse of it that was authorized, and what its caller may
/// do. The guarded router's dispatcher routes on this and nothing else.
#[derive(Clone)]
pub struct Authorized {
    pub endpoint: Endpoint,
    pub access: Access,
}

/// The middleware; install it with `axum::middleware::from_fn_with_state(authority, auth::authorize)`
/// inside the request-context middleware, so refusals carry the request id and version header too.
pub async fn authorize(
    State(authority): State<Arc<Authority>>,
    mut req: Request,
    next: Next,
) -> Response {
    let request_id = RequestId::of(&req);
    let endpoint = match Endpoint::parse(req.method(), req.uri().path(), req.uri().query()) {
        Ok(endpoint) => endpoint,
        // Unparseable: it names no repository, so there is nothing to authorize and nothing to reach.
        Err(e) => return e.into_response(&request_id),
    };
    // A header that is not visible ASCII cannot be credentials; it is refused like wrong ones.
    let header = match req.headers().get(AUTHORIZATION) {
        None => None,
        Some(v) => Some(v.to_str().unwrap_or("")),
    };
    let caller = match authority.check_credentials(header).await {
        Ok(caller) => caller,
        Err(refused) => {
            audit::note(|| audit::Entry {
                outcome: audit::Outcome::Unauthorized,
                status: 401,
                user: refused.user.clone(),
                why: Some(refused.why.clone()),
                ..audit::entry_for(&endpoint)
            });
            return refuse(refused.decision, &request_id);
        }
    };
    let needs = scopes(&endpoint);
    match authority.authorize_asking(&caller, &needs, &optional_scopes(&endpoint)) {
        Decision::Allow => {
            let user = caller.identity.user().map(str::to_string);
            let access = Access::new(authority.clone(), caller);
            req.extensions_mut().insert(Authorized { endpoint, access });
            // For the events the request causes (`crate::notify`).
            if let Some(user) = &user {
                req.extensions_mut().insert(AuthenticatedUser(user.clone()));
            }
            let mut resp = next.run(req).await;
            if let Some(user) = user {
                resp.extensions_mut().insert(AuthenticatedUser(user));
            }
            resp
        }
        refusal => {
            // A known caller refused. An anonymous one is being asked for credentials, as every
            // client is before it sends them: not worth a line.
            if let Some(user) = caller.identity.user() {
                audit::note(|| denied(&endpoint, user, &needs, &refusal));
            }
            refuse(refusal, &request_id)
        }
    }
}

/// The audit line of `user` refused `endpoint`, which needs `needs`.
fn denied(endpoint: &Endpoint, user: &str, needs: &[Scope], refusal: &Decision) -> audit::Entry {
    let needs: Vec<String> = needs.iter().map(Scope::to_string).collect();
    audit::Entry {
        outcome: audit::Outcome::Denied,
        status: match refusal {
            Decision::Unauthorized { .. } => 401,
            Decision::Denied | Decision::Allow => 403,
        },
        user: Some(user.to_string()),
        why: (!needs.is_empty()).then(|| format!("needs {}", needs.join(" "))),
        ..audit::entry_for(endpoint)
    }
}

/// The scopes a request needs, as registry:2 maps them: reads need pull; uploads and manifest puts need
/// pull and push; deletes need delete; the catalog its own scope. A mount's source is not among them:
/// the mount handler checks it (see the module comment), so a mount from a repository the caller may not
/// read is an ordinary upload, not a refusal.
pub fn scopes(endpoint: &Endpoint) -> Vec<Scope> {
    use Action::{Delete, Pull, Push};
    let repo = |name: &oci::RepoName, actions: &[Action]| Scope::repository(name.as_str(), actions);
    match endpoint {
        Endpoint::Base => Vec::new(),
        // The usage report lists repositories as the catalog does, filtered the same way.
        Endpoint::Catalog { .. } | Endpoint::Usage { .. } => vec![Scope::Catalog],
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
        Endpoint::UploadStart { name, .. } => vec![repo(name, &[Pull, Push])],
        // Cancelling an upload is part of pushing, not a deletion of content.
        Endpoint::Upload { name, .. } => vec![repo(name, &[Pull, Push])],
    }
}

/// The scopes a request can use beyond [`scopes`], named in its challenge so that a token client asks
/// for them: pull on a mount's source.
pub fn optional_scopes(endpoint: &Endpoint) -> Vec<Scope> {
    match endpoint {
        Endpoint::UploadStart {
            name,
            kind: UploadStartKind::Mount {
                from: Some(from), ..
            },
        } if from != name => vec![Scope::repository(from.as_str(), &[Action::Pull])],
        _ => Vec::new(),
    }
}

/// A catalog page holding only the repositories `keep` accepts, with `more` telling whether another kept
/// repository follows (see [`filtered_page`]).
pub async fn filtered_catalog(
    registry: &Registry,
    page: &Page,
    keep: impl Fn(&str) -> bool,
) -> Result<(Vec<String>, bool), registry::Error> {
    filtered_page(
        page,
        |batch| async move { registry.catalog(&batch).await },
        String::as_str,
        keep,
    )
    .await
}

/// A page of a listing by repository name (`fetch`) holding only the entries whose `name` `keep`
/// accepts, with `more` telling whether another kept entry follows. Pages of the full listing are read
/// until the page is full, so `n`, `last` and the `Link` header work as without filtering (the cursor
/// is always a repository the caller may see).
pub async fn filtered_page<T, Fut>(
    page: &Page,
    fetch: impl Fn(Page) -> Fut,
    name: impl Fn(&T) -> &str,
    keep: impl Fn(&str) -> bool,
) -> Result<(Vec<T>, bool), registry::Error>
where
    Fut: Future<Output = Result<(Vec<T>, bool), registry::Error>>,
{
    let limit = page.limit(DEFAULT_CATALOG_PAGE);
    let mut out = Vec::new();
    if limit == 0 {
        return Ok((out, false));
    }
    let mut cursor = page.last.clone();
    loop {
        let (batch, more) = fetch(Page {
            n: Some(MAX_PAGE),
            last: cursor.take(),
        })
        .await?;
        let next = batch.last().map(|last| name(last).to_string());
        for entry in batch {
            if keep(name(&entry)) {
                if out.len() == limit {
                    return Ok((out, true));
                }
                out.push(entry);
            }
        }
        match next {
            Some(last) if more => cursor = Some(last),
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
                vec!["repository:a:pull,push"],
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
}
