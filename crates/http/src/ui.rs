//! The web interface (issue 22): pages under `/ui/` for people looking at what the registry holds, served
//! by berth itself (and `/` sends the browser there), under `http.prefix` like the API.
//!
//! It is a client of the registry core like the API's handlers: every figure comes from the same
//! `Registry` operations (the usage report, the tag listing, manifests read by HEAD, which is not a pull,
//! referrers), and every decision from the same [`Authority`]. A caller sees exactly the repositories they
//! may pull ([`Viewer`]); a repository they may not pull answers as one that does not exist.
//!
//! What a client pushed (repository names, tags, annotations, labels, env) is attacker-chosen, so it
//! reaches the page only through maud's templates, which escape every value they insert; nothing here
//! builds markup from strings (there is no `PreEscaped`). Every response also carries a
//! `Content-Security-Policy` that allows no script at all (the pages use none), styles only from berth's
//! own stylesheet, and no framing; `nosniff`; and `no-store`, since a page depends on who asked.
//!
//! Pages: `ui/repos.rs` (the list, searchable and paged), `ui/repo.rs` (a repository's tags),
//! `ui/image.rs` (a manifest or index, its config and referrers), `ui/overview.rs` (the registry as a
//! whole), `ui/delete.rs` (deleting a tag or a manifest, with a confirmation, from berth's own pages
//! only), `ui/signin.rs` (with `auth.token`: the sign-in form, whose sessions `ui/session.rs` keeps in a
//! cookie `ui/seal.rs` seals); `ui/paths.rs` the URLs, `ui/layout.rs` the page shell and the formatting of sizes and times,
//! `ui/style.css` the one stylesheet. Each page module loads its figures into a plain struct first, and
//! `ui/api.rs` serves those same structs as JSON under `/api/v1/`: one loader per figure, two renderings.

use std::sync::Arc;

use ::auth::{Action, Authority, Caller, Decision, Identity, Scope};
use axum::Router;
use axum::extract::State;
use axum::http::header::{
    AUTHORIZATION, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, HOST, HeaderName,
    HeaderValue, LOCATION, REFERRER_POLICY, WWW_AUTHENTICATE, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use maud::{Markup, html};
use registry::Registry;

use crate::audit;
use crate::health::Health;
use crate::middleware::RequestContextLayer;
use crate::site::Site;

mod api;
mod delete;
mod image;
mod layout;
mod overview;
mod paths;
mod repo;
mod repos;
mod seal;
mod session;
mod signin;
mod view;

pub use session::SignIn;
use session::{Active, Sessions};

use paths::{Links, UiPath};

/// The policy of every page: no script from anywhere, styles only from `/ui/style.css`, forms only back
/// to berth, never inside a frame.
pub const CONTENT_SECURITY_POLICY_VALUE: &str = "default-src 'none'; style-src 'self'; img-src 'self'; \
     form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// What the pages are built from; cheap to clone (one `Arc`).
#[derive(Clone)]
struct Ui(Arc<UiState>);

struct UiState {
    registry: Registry,
    authority: Option<Arc<Authority>>,
    links: Links,
    /// The host of the `docker pull` lines: `http.host`'s, else the request's `Host`.
    host: Option<String>,
    /// The health checks, for the registry page.
    health: Health,
    /// With `auth.token`: the sign-in form's sessions.
    sessions: Option<Arc<Sessions>>,
}

/// The web interface's routes, to merge beside [`crate::router_with_auth`]'s (before `site::mount`
/// puts both under the prefix): `/` and `/ui` redirect to `/ui/`, the pages below it, and the JSON API
/// the pages' figures are also served as, under `/api/v1/` (`ui/api.rs`). `authority` is the API's;
/// `None` leaves the pages open, as the API. `health` is what the registry page reports. `sign_in`
/// is the token service people sign in through when `authority` takes tokens (ignored otherwise).
pub fn router(
    registry: Registry,
    authority: Option<Arc<Authority>>,
    site: &Site,
    health: Health,
    sign_in: Option<SignIn>,
) -> Router {
    let host = site
        .base_url
        .as_ref()
        .and_then(|u| u.as_str().split_once("://").map(|(_, h)| h.to_string()));
    let notify_state = registry.clone();
    let sessions = sign_in
        .filter(|_| authority.as_ref().is_some_and(|a| a.takes_tokens()))
        .map(|s| Arc::new(Sessions::new(s, site.prefix.as_str())));
    let mut links = Links::new(site.prefix.as_str());
    if sessions.is_some() {
        links = links.with_sessions();
    }
    let ui = Ui(Arc::new(UiState {
        registry,
        authority,
        links,
        host,
        health,
        sessions,
    }));
    Router::new()
        .route("/", get(to_home))
        .route("/ui", get(to_home))
        .route("/ui/", get(repos::page))
        .route("/ui/style.css", get(style))
        .route("/ui/{*rest}", get(page).post(post))
        .route("/api/v1/{*rest}", get(api::get))
        .layer(axum::middleware::map_response(secure))
        // Who asked, for the events of a delete (the actor is set once the page knows the caller).
        .layer(axum::middleware::from_fn_with_state(
            notify_state,
            crate::notify::origin,
        ))
        // The audit log's scope, for the deletes and refusals of the pages (`crate::audit`).
        .layer(audit::ScopeLayer(audit::Via::Ui))
        .layer(RequestContextLayer)
        .with_state(ui)
}

/// A redirect to the list. Its `Location` is root-relative like the API's: `site::mount` puts it under
/// the prefix (and on `http.host`), as every `Location`.
async fn to_home() -> Response {
    (StatusCode::FOUND, [(LOCATION, "/ui/")]).into_response()
}

async fn style() -> Response {
    (
        [
            (CONTENT_TYPE, "text/css; charset=utf-8"),
            (CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("ui/style.css"),
    )
        .into_response()
}

/// Every page below `/ui/` but the list: the path is read raw (never percent-decoded), so a name is
/// exactly what `RepoName` accepts or nothing.
async fn page(State(ui): State<Ui>, headers: HeaderMap, uri: Uri) -> Response {
    // The router under the prefix sees the path without it: `/ui/...`.
    let rest = uri.path().strip_prefix("/ui/").unwrap_or("");
    let query = uri.query().unwrap_or("");
    match UiPath::parse(rest) {
        Some(UiPath::Repo(name)) => repo::page(&ui, &headers, name, query).await,
        Some(UiPath::Image(name, digest)) => image::page(&ui, &headers, name, digest).await,
        Some(UiPath::Delete(name, target)) => delete::confirm(&ui, &headers, name, target).await,
        Some(UiPath::Login) => match &ui.0.sessions {
            Some(_) => signin::form(&ui),
            None => login(&ui, &headers).await,
        },
        Some(UiPath::Logout) => match &ui.0.sessions {
            Some(sessions) => signin::sign_out(sessions, &headers),
            None => to_home().await,
        },
        Some(UiPath::Registry) => overview::page(&ui, &headers).await,
        None => Failure::NotFound.into_page(&ui.0.links),
    }
}

/// The forms that post: a delete's confirmation (its body is empty: the URL names the target), and the
/// sign-in form of `auth.token`.
async fn post(State(ui): State<Ui>, headers: HeaderMap, uri: Uri, body: Bytes) -> Response {
    let rest = uri.path().strip_prefix("/ui/").unwrap_or("");
    match (UiPath::parse(rest), &ui.0.sessions) {
        (Some(UiPath::Delete(name, target)), _) => {
            delete::perform(&ui, &headers, name, target).await
        }
        (Some(UiPath::Login), Some(sessions)) => {
            signin::submit(&ui, sessions, &headers, &body).await
        }
        _ => Failure::NotFound.into_page(&ui.0.links),
    }
}

/// `/ui/login`: where the API lets anonymous callers in, the pages show them what anonymous callers may
/// pull without asking for credentials; this link asks (Basic, from `auth.htpasswd`), then goes home.
async fn login(ui: &Ui, headers: &HeaderMap) -> Response {
    let viewer = match ui.viewer(headers).await {
        Ok(viewer) => viewer,
        Err(f) => return f.into_page(ui.links()),
    };
    match &viewer.gate {
        Some((authority, caller)) if caller.identity == Identity::Anonymous => {
            Failure::Challenge(authority.challenge(&[], false)).into_page(ui.links())
        }
        Some((_, caller)) => {
            // Signed in: the one page a browser asks for to log in (`audit`'s login through the pages).
            audit::note(|| audit::Entry {
                action: audit::Action::Login,
                status: StatusCode::FOUND.as_u16(),
                user: caller.identity.user().map(str::to_string),
                ..audit::Entry::default()
            });
            to_home().await
        }
        None => to_home().await,
    }
}

/// Adds the security headers to every response of the interface (pages, errors, redirects).
async fn secure(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    let fixed: [(HeaderName, &'static str); 4] = [
        (CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY_VALUE),
        (X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (X_FRAME_OPTIONS, "DENY"),
        // Not `no-referrer`: under it a browser posts its own forms with `Origin: null`, which
        // `ui/delete.rs` could not tell from another site's.
        (REFERRER_POLICY, "same-origin"),
    ];
    for (name, value) in fixed {
        h.insert(name, HeaderValue::from_static(value));
    }
    if !h.contains_key(CACHE_CONTROL) {
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// Who is looking: the caller as the API's [`Authority`] authenticated them, or everyone when the
/// registry is open.
struct Viewer {
    gate: Option<(Arc<Authority>, Caller)>,
    /// A session of the sign-in form: its caller holds what the token service granted, which each
    /// check first asks for ([`Viewer::ask`]), so a page that asks nothing sees only what anonymous
    /// callers may.
    session: Option<Active>,
}

/// The scope a page asks for a repository it shows: pulling it, and whether to offer deleting in it.
fn browse(repo: &str) -> Scope {
    Scope::repository(repo, &[Action::Pull, Action::Delete])
}

impl Viewer {
    /// With a session, makes sure the caller holds what the token service grants for `scopes`
    /// (`ui/session.rs`); nothing to do otherwise.
    async fn ask(&mut self, scopes: &[Scope]) -> Result<(), Failure> {
        match (&mut self.session, &mut self.gate) {
            (Some(active), Some((authority, caller))) => {
                active.ask(authority, caller, scopes).await
            }
            _ => Ok(()),
        }
    }

    /// The API's decision for what `scopes` need, where a session's token lacking a scope is a refusal
    /// like an htpasswd user's (the person signed in already; a challenge would not help).
    fn decide(&self, authority: &Authority, caller: &Caller, scopes: &[Scope]) -> Decision {
        match authority.authorize(caller, scopes) {
            Decision::Unauthorized { .. } if self.session.is_some() => Decision::Denied,
            decision => decision,
        }
    }

    /// Whether the caller may pull `repo`: the API's decision for a manifest GET. Anonymous callers who
    /// may not are asked for credentials (they may have some); users who may not are told nothing of
    /// the repository, as if it did not exist.
    async fn check_pull(&mut self, repo: &str) -> Result<(), Failure> {
        self.ask(&[browse(repo)]).await?;
        let Some((authority, caller)) = &self.gate else {
            return Ok(());
        };
        match self.decide(
            authority,
            caller,
            &[Scope::repository(repo, &[Action::Pull])],
        ) {
            Decision::Allow => Ok(()),
            Decision::Unauthorized { challenge } => Err(Failure::Challenge(challenge)),
            Decision::Denied => Err(Failure::NotFound),
        }
    }

    /// Whether the caller may delete in `repo`: they must be able to pull it (else it does not exist
    /// for them) and be allowed the API's delete.
    async fn check_delete(&mut self, repo: &str) -> Result<(), Failure> {
        self.check_pull(repo).await?;
        let Some((authority, caller)) = &self.gate else {
            return Ok(());
        };
        match self.decide(
            authority,
            caller,
            &[Scope::repository(repo, &[Action::Delete])],
        ) {
            Decision::Allow => Ok(()),
            Decision::Unauthorized { challenge } => Err(Failure::Challenge(challenge)),
            Decision::Denied => Err(Failure::Forbidden(
                "You may not delete in this repository.".into(),
            )),
        }
    }

    /// Of `names`, those the caller may pull: the list's filter. A session asks the token service for
    /// all of them in one request.
    async fn pullable(&mut self, names: Vec<String>) -> Result<Vec<String>, Failure> {
        if self.session.is_some() {
            let scopes: Vec<Scope> = names.iter().map(|n| browse(n)).collect();
            self.ask(&scopes).await?;
        }
        let Some((authority, caller)) = &self.gate else {
            return Ok(names);
        };
        Ok(names
            .into_iter()
            .filter(|n| authority.may(caller, n, Action::Pull))
            .collect())
    }

    /// Whether the caller may see the registry's own figures: everyone when the registry is open, else
    /// a caller who may pull every repository ([`Authority::sees_registry`]); an anonymous caller who
    /// may not is asked for credentials.
    async fn check_registry(&mut self) -> Result<(), Failure> {
        self.ask(&[Scope::Catalog]).await?;
        match &self.gate {
            None => Ok(()),
            Some((authority, caller)) if authority.sees_registry(caller) => Ok(()),
            Some((authority, caller)) if caller.identity == Identity::Anonymous => {
                Err(Failure::Challenge(authority.challenge(&[], false)))
            }
            Some(_) => Err(Failure::Forbidden(
                "Only users who may pull every repository see the registry's figures.".into(),
            )),
        }
    }

    /// The caller's user name; `None` when anonymous or the registry is open.
    fn user(&self) -> Option<&str> {
        self.gate
            .as_ref()
            .and_then(|(_, caller)| caller.identity.user())
    }

    /// Whether to offer deleting in `repo`: [`Viewer::check_delete`] without the asking, so only after
    /// the page asked [`browse`] for `repo` (which names delete for this), as every page checks pull
    /// first.
    fn may_delete(&self, repo: &str) -> bool {
        match &self.gate {
            None => true,
            Some((authority, caller)) => {
                authority.may(caller, repo, Action::Pull)
                    && authority.may(caller, repo, Action::Delete)
            }
        }
    }
}

impl Ui {
    fn registry(&self) -> &Registry {
        &self.0.registry
    }

    fn links(&self) -> &Links {
        &self.0.links
    }

    /// Authenticates the request as the API does: wrong credentials are challenged, and so is an
    /// anonymous caller where the API's base (`GET /v2/`) would challenge them.
    async fn viewer(&self, headers: &HeaderMap) -> Result<Viewer, Failure> {
        let Some(authority) = &self.0.authority else {
            return Ok(Viewer {
                gate: None,
                session: None,
            });
        };
        // A request's own credentials come first (scripts on `/api/v1/`); else the sign-in's session.
        let header = headers.get(AUTHORIZATION).map(|v| v.to_str().unwrap_or(""));
        if header.is_none()
            && let Some(sessions) = &self.0.sessions
            && let Some(session) = sessions.read(headers)
        {
            let (caller, active) = sessions.activate(session);
            return Ok(Viewer {
                gate: Some((authority.clone(), caller)),
                session: Some(active),
            });
        }
        // A header that is not visible ASCII cannot be credentials; it is refused like wrong ones.
        let caller = match authority.check_credentials(header).await {
            Ok(caller) => caller,
            Err(refused) => {
                audit::note(|| audit::Entry {
                    action: audit::Action::Login,
                    outcome: audit::Outcome::Unauthorized,
                    status: 401,
                    user: refused.user.clone(),
                    why: Some(refused.why.clone()),
                    ..audit::Entry::default()
                });
                return Err(Failure::from_decision(refused.decision));
            }
        };
        match authority.authorize(&caller, &[]) {
            Decision::Allow => Ok(Viewer {
                gate: Some((authority.clone(), caller)),
                session: None,
            }),
            refusal => Err(Failure::from_decision(refusal)),
        }
    }

    /// The host the `docker pull` lines name.
    fn pull_host(&self, headers: &HeaderMap) -> String {
        if let Some(host) = &self.0.host {
            return host.clone();
        }
        headers
            .get(HOST)
            .and_then(|v| v.to_str().ok())
            .filter(|h| {
                h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c))
            })
            .unwrap_or("localhost")
            .to_string()
    }
}

/// Why a page is not shown.
enum Failure {
    /// 401 with the API's challenge: credentials may help.
    Challenge(String),
    /// 404: nothing there, or nothing this caller may see (the two are not told apart).
    NotFound,
    /// 403, and why: a caller who may see the repository asked for what they may not do.
    Forbidden(String),
    /// What the registry answered.
    Registry(registry::Error),
    /// A path under `/api/v1/` that names no endpoint.
    NoEndpoint,
}

impl From<registry::Error> for Failure {
    fn from(e: registry::Error) -> Failure {
        use registry::Error::*;
        match e {
            NameUnknown(_) | ManifestUnknown(_) | BlobUnknown(_) | NameInvalid(_) => {
                Failure::NotFound
            }
            other => Failure::Registry(other),
        }
    }
}

impl Failure {
    fn from_decision(decision: Decision) -> Failure {
        match decision {
            Decision::Unauthorized { challenge } => Failure::Challenge(challenge),
            // Not a refusal, never passed here; and a user refused is told nothing.
            Decision::Denied | Decision::Allow => Failure::NotFound,
        }
    }

    fn into_page(self, links: &Links) -> Response {
        let (status, message, challenge) = match self {
            Failure::Challenge(c) => (
                StatusCode::UNAUTHORIZED,
                "Sign in with your registry credentials to see this page.".to_string(),
                Some(c),
            ),
            Failure::NotFound | Failure::NoEndpoint => (
                StatusCode::NOT_FOUND,
                "There is nothing here, or nothing you may see.".to_string(),
                None,
            ),
            Failure::Forbidden(why) => (StatusCode::FORBIDDEN, why, None),
            Failure::Registry(e) => {
                let (status, _) = crate::error::status_and_code(&e);
                if status.is_server_error() {
                    tracing::error!(error = %e, "a page of the web interface failed");
                    (
                        status,
                        "The registry could not answer; try again.".to_string(),
                        None,
                    )
                } else {
                    (status, e.to_string(), None)
                }
            }
        };
        let title = status.canonical_reason().unwrap_or("Error");
        let body: Markup = html! {
            h1 { (title) }
            p { (message) }
            p { a href=(links.home()) { "All repositories" } }
        };
        let mut resp = layout::respond(links, title, html! {}, body);
        *resp.status_mut() = status;
        if let Some(c) = challenge
            && let Ok(v) = HeaderValue::try_from(c)
        {
            resp.headers_mut().insert(WWW_AUTHENTICATE, v);
        }
        resp
    }
}
