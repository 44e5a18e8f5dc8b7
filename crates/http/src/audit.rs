//! The audit log (issue 23): who pushed, deleted, mounted, logged in or was refused what, from where, as
//! a stream of JSON lines of its own (berth's `audit` section; registry:2 has none).
//!
//! Three pieces, each with one job:
//! - [`Audit`], the handle: formats a line (`audit/line.rs`: serde_json, so nothing a client sent can
//!   break a line or forge one) and queues it for the one writer thread (`audit/writer.rs`: one `write`
//!   per line to a file opened `O_APPEND`, or to what the process gives: `berth serve`'s log writer
//!   for `stderr`; a full queue drops and counts, never blocks a request).
//! - [`install`] puts the handle on every request of an application (whoever wires the process calls
//!   it, as `Metrics::instrument`); without it nothing is recorded and nothing is paid but one lookup
//!   per request in the scope layer.
//! - [`ScopeLayer`], a layer inside each router's request context (the API's and the web interface's),
//!   runs the request in a task-local scope holding the handle and who asked (the request id, the
//!   client's address by registry:2's `RemoteAddr` rule as `crate::notify` finds it, method, user
//!   agent); the code that sees something worth a line calls [`note`] with what it saw, and nothing
//!   when there is no scope.
//!
//! What is recorded, and where it is seen:
//! - the auth middleware (`crate::auth`): credentials presented and wrong (`unauthorized`, with the
//!   user Basic credentials named and why), and a known caller refused (`denied`: 403, or a token
//!   without the scope) with the repository and action asked. An anonymous request answered with the
//!   challenge is not recorded: it is how every client starts before it sends credentials;
//! - the dispatcher (`handlers::respond`), after an allowed request: manifest puts (`push`, tag and
//!   digest), manifest, tag and blob deletes (`delete`), cross-repository mounts that mounted
//!   (`mount`; a mount that fell back to an upload is an upload), and `GET /v2/` with credentials
//!   (`login`: where `docker login`, `podman login` and `skopeo login` check credentials), each `ok`
//!   or `failed` with the status and the spec's code;
//! - the web interface (`crate::ui`): its deletes (`via: ui`) with the user, wrong credentials, a
//!   refused delete, and a sign-in through `/ui/login`.
//!
//! Pulls are not recorded: they are most requests, and the access log has each one.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::http::header::USER_AGENT;
use axum::response::Response;
use axum::{Extension, Router};
use futures_util::future::Either;
use tower::{Layer, Service};

use crate::endpoint::{BlobOp, Endpoint, ManifestOp, UploadStartKind};
use crate::middleware::RequestId;

mod line;
mod writer;

pub use line::{Action, Asker, Entry, MAX_TEXT, Object, Outcome, Via, format};
pub use writer::QUEUE;

/// The audit log's handle: cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct Audit(Arc<writer::Writer>);

impl std::fmt::Debug for Audit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Audit")
    }
}

impl Audit {
    /// The audit log appended to the file at `path` (created 0600 if it does not exist), its writer
    /// thread started.
    pub fn file(path: &Path) -> io::Result<Audit> {
        Ok(Audit(Arc::new(writer::Writer::file(path)?)))
    }

    /// The audit log written to `out`, one `write_all` per line: a destination that does not buffer,
    /// or takes each write as one line (`berth serve` hands its log's writer for `stderr`, so that
    /// audit lines and log lines never tear each other).
    pub fn to_writer(out: Box<dyn io::Write + Send>) -> io::Result<Audit> {
        Ok(Audit(Arc::new(writer::Writer::spawn(out)?)))
    }

    /// Lines written so far.
    pub fn written(&self) -> u64 {
        self.0
            .counts
            .written
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Lines dropped because the queue was full.
    pub fn dropped_full(&self) -> u64 {
        self.0
            .counts
            .dropped_full
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Lines dropped because writing them failed.
    pub fn dropped_error(&self) -> u64 {
        self.0
            .counts
            .dropped_error
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Waits up to `timeout` until every line recorded so far is written (at a clean exit, and in
    /// tests). Blocks the calling thread.
    pub fn flush(&self, timeout: Duration) -> bool {
        self.0.flush(timeout)
    }

    /// Records `entry`, asked by `asker`, now.
    pub fn record(&self, asker: &Asker, entry: &Entry) {
        let time = registry::notify::event::rfc3339(SystemTime::now());
        self.0.send(format(&time, asker, entry));
    }
}

/// `app` with `audit` on every request (see the module comment); `None` leaves it as it is.
pub fn install(app: Router, audit: Option<Audit>) -> Router {
    match audit {
        Some(audit) => app.layer(Extension(audit)),
        None => app,
    }
}

/// The scope of one request: the handle, and who asked, kept as the request had it (a line is made
/// only if something is recorded).
struct Scope {
    audit: Audit,
    via: Via,
    request_id: RequestId,
    addr: String,
    method: axum::http::Method,
    user_agent: Option<HeaderValue>,
}

impl Scope {
    fn asker(&self) -> Asker {
        Asker {
            addr: self.addr.clone(),
            request_id: self.request_id.to_string(),
            method: self.method.to_string(),
            user_agent: self
                .user_agent
                .as_ref()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .unwrap_or_default(),
            via: self.via,
        }
    }
}

tokio::task_local! {
    static SCOPE: Arc<Scope>;
}

/// The scope as a layer (`Router::layer(audit::ScopeLayer(Via::Api))`), inside the request context
/// (it reads the request id) and outside the auth middleware (which records refusals).
///
/// A service of its own rather than `axum::middleware::from_fn`, for the same reason as
/// `middleware::RequestContextLayer`: a request that is not audited (no handle: the audit log is off)
/// goes straight to the inner service, with no boxed future, no `Next`, nothing allocated.
#[derive(Clone, Copy, Debug)]
pub struct ScopeLayer(pub Via);

impl<S> Layer<S> for ScopeLayer {
    type Service = ScopeService<S>;

    fn layer(&self, inner: S) -> ScopeService<S> {
        ScopeService { inner, via: self.0 }
    }
}

/// The service of [`ScopeLayer`] around `S`.
#[derive(Clone, Debug)]
pub struct ScopeService<S> {
    inner: S,
    via: Via,
}

impl<S> Service<Request> for ScopeService<S>
where
    S: Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future =
        Either<S::Future, Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let Some(audit) = req.extensions().get::<Audit>().cloned() else {
            return Either::Left(self.inner.call(req));
        };
        let scope = Scope {
            audit,
            via: self.via,
            request_id: RequestId::of(&req),
            addr: crate::notify::client_addr(&req),
            method: req.method().clone(),
            user_agent: req.headers().get(USER_AGENT).cloned(),
        };
        // Called here, on the service that was polled ready; only the response is awaited.
        let response = self.inner.call(req);
        Either::Right(Box::pin(SCOPE.scope(Arc::new(scope), response)))
    }
}

/// Records what `entry` makes, if the request is audited (nothing is made otherwise).
pub fn note(entry: impl FnOnce() -> Entry) {
    let _ = SCOPE.try_with(|s| s.audit.record(&s.asker(), &entry()));
}

/// Whether the request being handled is audited.
pub fn active() -> bool {
    SCOPE.try_with(|_| ()).is_ok()
}

/// What a request for `endpoint` does, in the audit log's terms: its action, repository and target.
pub fn entry_for(endpoint: &Endpoint) -> Entry {
    let mut e = Entry {
        repository: endpoint.repository().map(|r| r.as_str().to_string()),
        ..Entry::default()
    };
    match endpoint {
        Endpoint::Base => e.action = Action::Login,
        Endpoint::Catalog { .. } | Endpoint::Usage { .. } => e.action = Action::Catalog,
        Endpoint::Tags { .. } | Endpoint::Referrers { .. } => e.action = Action::Pull,
        Endpoint::Manifest { reference, op, .. } => {
            match reference {
                oci::Reference::Tag(tag) => e.tag = Some(tag.as_str().to_string()),
                oci::Reference::Digest(digest) => e.digest = Some(digest.to_string()),
            }
            match op {
                ManifestOp::Get | ManifestOp::Head => e.action = Action::Pull,
                ManifestOp::Put => e.action = Action::Push,
                ManifestOp::Delete => {
                    e.action = Action::Delete;
                    e.object = Some(match reference {
                        oci::Reference::Tag(_) => Object::Tag,
                        oci::Reference::Digest(_) => Object::Manifest,
                    });
                }
            }
        }
        Endpoint::Blob { digest, op, .. } => {
            e.digest = Some(digest.to_string());
            match op {
                BlobOp::Get | BlobOp::Head => e.action = Action::Pull,
                BlobOp::Delete => {
                    e.action = Action::Delete;
                    e.object = Some(Object::Blob);
                }
            }
        }
        Endpoint::UploadStart { kind, .. } => match kind {
            UploadStartKind::Mount { digest, from } => {
                e.action = Action::Mount;
                e.digest = Some(digest.to_string());
                e.from = from.as_ref().map(|f| f.as_str().to_string());
            }
            UploadStartKind::Session | UploadStartKind::Monolithic(_) => e.action = Action::Push,
        },
        Endpoint::Upload { .. } => e.action = Action::Push,
    }
    e
}

/// Whether an allowed request to `endpoint` may be recorded (the dispatcher's part): writes that
/// change what the registry holds, and a login. Blob uploads are not: the manifest put that ends a
/// push is. [`after`] decides on the answer.
pub fn records(endpoint: &Endpoint) -> bool {
    matches!(
        endpoint,
        Endpoint::Base
            | Endpoint::Manifest {
                op: ManifestOp::Put | ManifestOp::Delete,
                ..
            }
            | Endpoint::Blob {
                op: BlobOp::Delete,
                ..
            }
            | Endpoint::UploadStart {
                kind: UploadStartKind::Mount { .. },
                ..
            }
    )
}

/// The line of an allowed request to `endpoint` (one [`records`] accepts) by `user`, answered
/// `answer` (the handler's response, or its error before it became one); `None` when there is nothing
/// to record: an anonymous `GET /v2/`, a mount that became an ordinary upload (202).
pub fn after(
    endpoint: &Endpoint,
    user: Option<String>,
    answer: Result<&Response, &crate::ApiError>,
) -> Option<Entry> {
    let mut e = entry_for(endpoint);
    e.user = user;
    match answer {
        Ok(resp) => {
            let status = resp.status();
            e.status = status.as_u16();
            match e.action {
                Action::Login if e.user.is_none() => return None,
                Action::Mount if status == axum::http::StatusCode::ACCEPTED => return None,
                Action::Push => {
                    e.digest = resp
                        .headers()
                        .get(crate::headers::CONTENT_DIGEST)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string)
                        .or(e.digest);
                }
                _ => {}
            }
            if !status.is_success() {
                e.outcome = Outcome::Failed;
            }
        }
        Err(error) => {
            if e.action == Action::Login {
                return None;
            }
            let (status, code) = error.status_and_code();
            e.status = status.as_u16();
            e.outcome = Outcome::Failed;
            e.why = Some(code.to_string());
        }
    }
    Some(e)
}
