//! The fault-injecting proxy: a registry's stand-in that forwards to the real one and misbehaves on
//! demand, so pull-through tests can prove what the cache does when the upstream fails.
//!
//! Every request is counted first (by method and [`Kind`], and whether it carried `Authorization`), then
//! the bearer gate (when one is set) may answer 401, then the [`Fault`] set for its kind decides: answer
//! by itself (429, 503, a redirect, silence) or forward and damage the response (stall or drop after N
//! body bytes, flip a byte, remove its Content-Length). [`FaultProxy::stop`] closes the port and every
//! open connection, so clients get "connection refused"; [`FaultProxy::restart`] listens on the same
//! port again.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use futures_util::stream;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{
    ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HOST, HeaderName, HeaderValue, LOCATION,
    RETRY_AFTER, WWW_AUTHENTICATE,
};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::token::Gate;
use super::{Body, BoxError, Server, TokenServer, bind, full, spec_error};

/// What the proxy does to the requests of one kind.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Fault {
    /// Forward faithfully.
    #[default]
    Pass,
    /// Answer 429 TOOMANYREQUESTS, with `Retry-After: <seconds>` when given (Docker Hub's pull limit).
    TooManyRequests { retry_after: Option<u64> },
    /// Answer 503 UNAVAILABLE.
    Unavailable,
    /// Never answer (the request waits until the client gives up or the proxy stops).
    Stall,
    /// Forward, send the head and the first N body bytes, then go silent.
    StallAfter(u64),
    /// Forward, send the head (with the true Content-Length) and the first N body bytes, then close the
    /// connection.
    DropAfter(u64),
    /// Forward with the first body byte flipped: same length, wrong digest.
    Corrupt,
    /// Forward without `Content-Length` (a chunked body), as registries streaming from storage do.
    Chunked,
    /// Answer `307 Temporary Redirect` to this base URL followed by the request's path and query (object
    /// storage stand-in: point it at another proxy in front of the same registry).
    Redirect(String),
}

/// What a request is for, from its path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `/v2/<name>/manifests/<reference>`
    Manifest,
    /// `/v2/<name>/blobs/<digest>` (not uploads)
    Blob,
    /// Anything outside `/v2/` (a token service behind the proxy).
    Token,
    /// The rest of `/v2/` (base, tags, catalog, uploads).
    Other,
}

impl Kind {
    pub fn of(path: &str) -> Kind {
        let Some(rest) = path.strip_prefix("/v2/") else {
            return if path == "/v2" {
                Kind::Other
            } else {
                Kind::Token
            };
        };
        if rest.contains("/manifests/") {
            Kind::Manifest
        } else if rest.contains("/blobs/") && !rest.contains("/blobs/uploads") {
            Kind::Blob
        } else {
            Kind::Other
        }
    }

    const ALL: [Kind; 4] = [Kind::Manifest, Kind::Blob, Kind::Token, Kind::Other];

    fn index(self) -> usize {
        match self {
            Kind::Manifest => 0,
            Kind::Blob => 1,
            Kind::Token => 2,
            Kind::Other => 3,
        }
    }
}

/// The proxy. Stops serving when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: Mutex<Option<Server>>,
}

struct Shared {
    /// `http://host:port` of the registry behind.
    target: String,
    client: Client<HttpConnector, Body>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    faults: [Fault; 4],
    negotiate: bool,
    gate: Option<Gate>,
    counts: HashMap<(Method, Kind), usize>,
    authorized: [usize; 4],
}

impl FaultProxy {
    /// Starts a proxy on `127.0.0.1:0` in front of `target` (`http://127.0.0.1:PORT`), passing
    /// everything through.
    pub async fn start(target: &str) -> io::Result<FaultProxy> {
        let shared = Arc::new(Shared {
            target: target.trim_end_matches('/').to_string(),
            client: Client::builder(TokioExecutor::new()).build_http(),
            state: Mutex::new(State::default()),
        });
        let (listener, addr) = bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let server = serve(listener, &shared);
        Ok(FaultProxy {
            addr,
            shared,
            server: Mutex::new(Some(server)),
        })
    }

    /// `http://127.0.0.1:PORT`, to configure as the upstream.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The same fault for requests of every kind.
    pub fn set_fault(&self, fault: Fault) {
        for kind in Kind::ALL {
            self.set_fault_on(kind, fault.clone());
        }
    }

    /// A fault for requests of one kind only (the others keep theirs).
    pub fn set_fault_on(&self, kind: Kind, fault: Fault) {
        self.with_state(|s| s.faults[kind.index()] = fault);
    }

    /// Like registry:2, answer a manifest whose media type the request's `Accept` does not list
    /// (a missing `Accept` lists nothing; `*/*` lists everything) with 404 MANIFEST_UNKNOWN.
    pub fn negotiate_accept(&self, on: bool) {
        self.with_state(|s| s.negotiate = on);
    }

    /// Demand a bearer token from `tokens` for every request on a repository (`repository:<name>:pull`
    /// for GET and HEAD, `pull,push` otherwise): without a valid one, answer 401 with the challenge
    /// Docker's token specification describes. A valid token is removed before forwarding, so the
    /// registry behind may be open.
    pub fn require_bearer(&self, tokens: &TokenServer) {
        let gate = tokens.gate();
        self.with_state(|s| s.gate = Some(gate));
    }

    /// Requests received with `method` (`"GET"`, `"HEAD"`, ...) of `kind`, faults included.
    pub fn count(&self, method: &str, kind: Kind) -> usize {
        let Ok(method) = method.parse::<Method>() else {
            return 0;
        };
        self.with_state(|s| s.counts.get(&(method, kind)).copied().unwrap_or(0))
    }

    /// Requests of `kind`, any method.
    pub fn requests(&self, kind: Kind) -> usize {
        self.with_state(|s| {
            s.counts
                .iter()
                .filter(|((_, k), _)| *k == kind)
                .map(|(_, n)| n)
                .sum()
        })
    }

    /// Requests of `kind` that carried an `Authorization` header.
    pub fn authorized(&self, kind: Kind) -> usize {
        self.with_state(|s| s.authorized[kind.index()])
    }

    pub fn reset_counts(&self) {
        self.with_state(|s| {
            s.counts.clear();
            s.authorized = [0; 4];
        });
    }

    /// Closes the port and every open connection: clients now get "connection refused".
    pub async fn stop(&self) {
        let server = self.server.lock().ok().and_then(|mut s| s.take());
        if let Some(server) = server {
            server.shutdown().await;
        }
    }

    /// Listens again on the same port after [`FaultProxy::stop`].
    pub async fn restart(&self) -> io::Result<()> {
        self.stop().await;
        let (listener, _) = bind(self.addr).await?;
        let server = serve(listener, &self.shared);
        if let Ok(mut s) = self.server.lock() {
            *s = Some(server);
        }
        Ok(())
    }

    fn with_state<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        // A poisoned lock means a test already panicked; its state is still the best there is.
        let mut state = match self.shared.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut state)
    }
}

fn serve(listener: tokio::net::TcpListener, shared: &Arc<Shared>) -> Server {
    let shared = shared.clone();
    Server::spawn(listener, move |req| {
        let shared = shared.clone();
        async move { handle(&shared, req).await }
    })
}

async fn handle(shared: &Shared, mut req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let kind = Kind::of(&path);
    let (fault, negotiate, gate) = {
        let mut s = match shared.state.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        *s.counts.entry((req.method().clone(), kind)).or_default() += 1;
        if req.headers().contains_key(AUTHORIZATION) {
            s.authorized[kind.index()] += 1;
        }
        (s.faults[kind.index()].clone(), s.negotiate, s.gate.clone())
    };
    if let Some(gate) = gate
        && let Some(scope) = scope_of(&path, req.method())
    {
        if !gate.allows(req.headers().get(AUTHORIZATION), &scope) {
            let mut resp = spec_error(401, "UNAUTHORIZED", "authentication required");
            if let Ok(v) = HeaderValue::from_str(&gate.challenge(&scope)) {
                resp.headers_mut().insert(WWW_AUTHENTICATE, v);
            }
            return resp;
        }
        req.headers_mut().remove(AUTHORIZATION);
    }
    match fault {
        Fault::TooManyRequests { retry_after } => {
            let mut resp = spec_error(429, "TOOMANYREQUESTS", "rate limit reached (fault proxy)");
            if let Some(secs) = retry_after {
                resp.headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from(secs));
            }
            resp
        }
        Fault::Unavailable => spec_error(503, "UNAVAILABLE", "unavailable (fault proxy)"),
        Fault::Stall => std::future::pending().await,
        Fault::Redirect(base) => {
            let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
            let mut resp = Response::new(full(Bytes::new()));
            *resp.status_mut() = StatusCode::TEMPORARY_REDIRECT;
            if let Ok(v) = HeaderValue::from_str(&format!("{}{pq}", base.trim_end_matches('/'))) {
                resp.headers_mut().insert(LOCATION, v);
            }
            resp
        }
        Fault::Pass
        | Fault::StallAfter(_)
        | Fault::DropAfter(_)
        | Fault::Corrupt
        | Fault::Chunked => {
            let accept = req.headers().get(ACCEPT).cloned();
            let Some(resp) = forward(shared, req).await else {
                return spec_error(502, "UNAVAILABLE", "the proxy's target cannot be reached");
            };
            if negotiate
                && kind == Kind::Manifest
                && resp.status().is_success()
                && !accepts(accept.as_ref(), resp.headers().get(CONTENT_TYPE))
            {
                return spec_error(
                    404,
                    "MANIFEST_UNKNOWN",
                    "no manifest in an accepted media type",
                );
            }
            let (mut parts, body) = resp.into_parts();
            if fault == Fault::Chunked {
                parts.headers.remove(CONTENT_LENGTH);
            }
            Response::from_parts(parts, damage(body, fault))
        }
    }
}

/// Hop-by-hop headers, which a proxy must not pass on.
const HOP_BY_HOP: [&str; 6] = [
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
];

fn strip_hop_by_hop(headers: &mut hyper::HeaderMap) {
    for h in HOP_BY_HOP {
        headers.remove(HeaderName::from_static(h));
    }
}

/// The target's response, or `None` when it cannot be reached.
async fn forward(shared: &Shared, req: Request<Incoming>) -> Option<Response<Incoming>> {
    let (mut parts, body) = req.into_parts();
    let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let uri = format!("{}{pq}", shared.target);
    parts.uri = uri.parse().ok()?;
    parts.headers.remove(HOST);
    strip_hop_by_hop(&mut parts.headers);
    let out = Request::from_parts(parts, body.map_err(BoxError::from).boxed_unsync());
    let mut resp = shared.client.request(out).await.ok()?;
    strip_hop_by_hop(resp.headers_mut());
    Some(resp)
}

/// The body as received, or damaged as `fault` says. Every fault but `Pass` streams it through a body
/// of unknown length, so hyper does not restore a `Content-Length` that `Chunked` removed.
fn damage(body: Incoming, fault: Fault) -> Body {
    if fault == Fault::Pass {
        return body.map_err(BoxError::from).boxed_unsync();
    }
    struct St {
        body: Incoming,
        sent: u64,
        fault: Fault,
        done: bool,
    }
    let st = St {
        body,
        sent: 0,
        fault,
        done: false,
    };
    let s = stream::unfold(st, |mut st| async move {
        if st.done {
            return None;
        }
        let limit = match st.fault {
            Fault::StallAfter(n) | Fault::DropAfter(n) => Some(n),
            _ => None,
        };
        if let Some(n) = limit
            && st.sent >= n
        {
            if matches!(st.fault, Fault::StallAfter(_)) {
                std::future::pending::<()>().await;
            }
            st.done = true;
            let e: BoxError = "connection dropped by the fault proxy".into();
            return Some((Err(e), st));
        }
        let frame = match st.body.frame().await? {
            Ok(f) => f,
            Err(e) => {
                st.done = true;
                return Some((Err(BoxError::from(e)), st));
            }
        };
        let Ok(mut data) = frame.into_data() else {
            // Trailers: nothing to damage, nothing to pass on that a registry client reads.
            return Some((Ok(Frame::data(Bytes::new())), st));
        };
        if let Some(n) = limit {
            let room = (n - st.sent) as usize;
            if data.len() > room {
                data.truncate(room);
            }
        }
        if st.fault == Fault::Corrupt && st.sent == 0 && !data.is_empty() {
            let mut b = BytesMut::from(&data[..]);
            b[0] ^= 0x01;
            data = b.freeze();
        }
        st.sent += data.len() as u64;
        Some((Ok(Frame::data(data)), st))
    });
    StreamBody::new(s).boxed_unsync()
}

/// The repository scope a request needs, or `None` for requests outside a repository.
fn scope_of(path: &str, method: &Method) -> Option<String> {
    let rest = path.strip_prefix("/v2/")?;
    let name = ["/manifests/", "/blobs/", "/tags/", "/referrers/"]
        .iter()
        .filter_map(|m| rest.rfind(m).map(|i| &rest[..i]))
        .max_by_key(|n| n.len())?;
    let actions = if method == Method::GET || method == Method::HEAD {
        "pull"
    } else {
        "pull,push"
    };
    Some(format!("repository:{name}:{actions}"))
}

fn accepts(accept: Option<&HeaderValue>, content_type: Option<&HeaderValue>) -> bool {
    let Some(ct) = content_type.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let ct = ct.split(';').next().unwrap_or("").trim();
    let Some(accept) = accept.and_then(|v| v.to_str().ok()) else {
        return false;
    };
    accept
        .split(',')
        .map(|p| p.split(';').next().unwrap_or("").trim())
        .any(|t| t == "*/*" || t.eq_ignore_ascii_case(ct))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        let cases = [
            ("/v2/", Kind::Other),
            ("/v2", Kind::Other),
            ("/v2/a/b/manifests/latest", Kind::Manifest),
            ("/v2/a/blobs/sha256:00", Kind::Blob),
            ("/v2/a/blobs/uploads/", Kind::Other),
            ("/v2/a/tags/list", Kind::Other),
            ("/token", Kind::Token),
        ];
        for (path, want) in cases {
            assert_eq!(Kind::of(path), want, "{path}");
        }
    }

    #[test]
    fn scopes() {
        assert_eq!(
            scope_of("/v2/a/b/manifests/latest", &Method::GET).as_deref(),
            Some("repository:a/b:pull")
        );
        assert_eq!(
            scope_of("/v2/x/blobs/uploads/", &Method::POST).as_deref(),
            Some("repository:x:pull,push")
        );
        assert_eq!(scope_of("/v2/", &Method::GET), None);
        assert_eq!(scope_of("/v2/_catalog", &Method::GET), None);
    }
}
