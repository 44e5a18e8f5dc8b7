//! The token server: Docker's token API (`GET /token?service=..&scope=..`) issuing opaque tokens, so
//! tests can run the bearer-token dance against a [`FaultProxy`](super::FaultProxy) that demands them.
//!
//! It checks Basic credentials against its users (or lets anonymous callers in, when allowed), grants
//! whatever scopes are asked, remembers each token with its scopes and expiry for the proxy's gate, and
//! counts and logs every request so tests can prove a token was reused or refetched.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use base64::Engine;
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use hyper::{Request, Response};

use super::{Body, Server, bind, full, spec_error};

/// Which field of the token response carries the token (registries' token services differ).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TokenField {
    /// `{"token": ...}` (Docker Hub sends both; registry:2's docs show this one).
    #[default]
    Token,
    /// `{"access_token": ...}` (OAuth2 style).
    AccessToken,
    Both,
}

/// What the token server accepts and answers.
#[derive(Clone, Debug)]
pub struct TokenServerConfig {
    /// The `service` of the challenges the proxy's gate sends.
    pub service: String,
    /// `(user, password)` pairs accepted with Basic.
    pub users: Vec<(String, String)>,
    /// Issue tokens to callers without credentials.
    pub anonymous: bool,
    /// `expires_in` of the answers; `None` leaves it out (clients then assume 60 s, and so does the
    /// gate).
    pub expires_in: Option<u64>,
    pub field: TokenField,
    /// Whether the proxy's gate refuses expired tokens. Off, an expired token still works, so a test
    /// can prove the client stops using a token on its own once it expires.
    pub gate_checks_expiry: bool,
}

impl Default for TokenServerConfig {
    fn default() -> Self {
        TokenServerConfig {
            service: "berth.test".into(),
            users: Vec::new(),
            anonymous: true,
            expires_in: Some(300),
            field: TokenField::Token,
            gate_checks_expiry: true,
        }
    }
}

/// One request the token server received (never the password).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRequest {
    /// The Basic user name, when the request carried one.
    pub user: Option<String>,
    pub service: Option<String>,
    pub scopes: Vec<String>,
}

/// The token server. Stops serving when dropped.
pub struct TokenServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    _server: Server,
}

struct Shared {
    config: Mutex<TokenServerConfig>,
    tokens: Mutex<HashMap<String, Issued>>,
    log: Mutex<Vec<TokenRequest>>,
    issued: AtomicUsize,
    refused: AtomicUsize,
}

struct Issued {
    scopes: Vec<String>,
    expires: Instant,
}

impl TokenServer {
    pub async fn start(config: TokenServerConfig) -> io::Result<TokenServer> {
        let shared = Arc::new(Shared {
            config: Mutex::new(config),
            tokens: Mutex::new(HashMap::new()),
            log: Mutex::new(Vec::new()),
            issued: AtomicUsize::new(0),
            refused: AtomicUsize::new(0),
        });
        let (listener, addr) = bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let s = shared.clone();
        let server = Server::spawn(listener, move |req| {
            let s = s.clone();
            async move { handle(&s, req) }
        });
        Ok(TokenServer {
            addr,
            shared,
            _server: server,
        })
    }

    /// The realm the proxy's gate announces: `http://127.0.0.1:PORT/token`.
    pub fn realm(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    /// Requests received, issued or refused.
    pub fn requests(&self) -> usize {
        lock(&self.shared.log).len()
    }

    pub fn issued(&self) -> usize {
        self.shared.issued.load(Ordering::SeqCst)
    }

    pub fn refused(&self) -> usize {
        self.shared.refused.load(Ordering::SeqCst)
    }

    /// Every request so far, in order.
    pub fn log(&self) -> Vec<TokenRequest> {
        lock(&self.shared.log).clone()
    }

    /// `expires_in` of the tokens issued from now on.
    pub fn set_expires_in(&self, expires_in: Option<u64>) {
        lock(&self.shared.config).expires_in = expires_in;
    }

    pub(crate) fn gate(&self) -> Gate {
        Gate {
            shared: self.shared.clone(),
            realm: self.realm(),
            service: lock(&self.shared.config).service.clone(),
        }
    }
}

/// What the proxy needs to demand tokens from this server: its realm and service, and the tokens issued.
#[derive(Clone)]
pub(crate) struct Gate {
    shared: Arc<Shared>,
    realm: String,
    service: String,
}

impl Gate {
    /// Whether `authorization` holds a valid token granting `scope` (`repository:<name>:<actions>`).
    pub(crate) fn allows(&self, authorization: Option<&HeaderValue>, scope: &str) -> bool {
        let Some(token) = authorization
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        else {
            return false;
        };
        let checks_expiry = lock(&self.shared.config).gate_checks_expiry;
        let tokens = lock(&self.shared.tokens);
        let Some(issued) = tokens.get(token) else {
            return false;
        };
        (!checks_expiry || issued.expires > Instant::now())
            && issued.scopes.iter().any(|s| grants(s, scope))
    }

    pub(crate) fn challenge(&self, scope: &str) -> String {
        format!(
            r#"Bearer realm="{}",service="{}",scope="{scope}""#,
            self.realm, self.service
        )
    }
}

/// Whether a granted scope covers a needed one: same type and name, every needed action granted.
fn grants(granted: &str, needed: &str) -> bool {
    let split = |s: &str| -> Option<(String, Vec<String>)> {
        let (head, actions) = s.rsplit_once(':')?;
        Some((
            head.to_string(),
            actions.split(',').map(str::to_string).collect(),
        ))
    };
    match (split(granted), split(needed)) {
        (Some((g, ga)), Some((n, na))) => g == n && na.iter().all(|a| ga.contains(a)),
        _ => false,
    }
}

fn handle(shared: &Shared, req: Request<Incoming>) -> Response<Body> {
    if req.uri().path() != "/token" {
        return spec_error(404, "UNSUPPORTED", "the token server serves /token only");
    }
    let mut service = None;
    let mut scopes = Vec::new();
    for (k, v) in form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes()) {
        match &*k {
            "service" => service = Some(v.into_owned()),
            "scope" => scopes.push(v.into_owned()),
            _ => {}
        }
    }
    let basic = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|s| {
            s.split_once(':')
                .map(|(u, p)| (u.to_string(), p.to_string()))
        });
    lock(&shared.log).push(TokenRequest {
        user: basic.as_ref().map(|(u, _)| u.clone()),
        service: service.clone(),
        scopes: scopes.clone(),
    });
    let config = lock(&shared.config).clone();
    let allowed = match &basic {
        Some((u, p)) => config.users.iter().any(|(cu, cp)| cu == u && cp == p),
        None => config.anonymous && !req.headers().contains_key(AUTHORIZATION),
    };
    let service_ok = service.as_deref() == Some(config.service.as_str());
    if !allowed || !service_ok {
        shared.refused.fetch_add(1, Ordering::SeqCst);
        let mut resp = spec_error(401, "UNAUTHORIZED", "bad credentials or service");
        resp.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Basic realm="berth test tokens""#),
        );
        return resp;
    }
    let n = shared.issued.fetch_add(1, Ordering::SeqCst) + 1;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let token = format!("berth-test-token-{n}-{nanos:09}");
    let life = Duration::from_secs(config.expires_in.unwrap_or(60));
    lock(&shared.tokens).insert(
        token.clone(),
        Issued {
            scopes,
            expires: Instant::now() + life,
        },
    );
    let mut body = serde_json::Map::new();
    if matches!(config.field, TokenField::Token | TokenField::Both) {
        body.insert("token".into(), token.clone().into());
    }
    if matches!(config.field, TokenField::AccessToken | TokenField::Both) {
        body.insert("access_token".into(), token.into());
    }
    if let Some(e) = config.expires_in {
        body.insert("expires_in".into(), e.into());
    }
    let mut resp = Response::new(full(serde_json::Value::Object(body).to_string()));
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// Locks a test server's state; a poisoned lock (a panicked test) still holds the best state there is.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_grants() {
        assert!(grants("repository:a/b:pull", "repository:a/b:pull"));
        assert!(grants("repository:a/b:pull,push", "repository:a/b:pull"));
        assert!(!grants("repository:a/b:pull", "repository:a/b:pull,push"));
        assert!(!grants("repository:a/c:pull", "repository:a/b:pull"));
        assert!(!grants("nonsense", "repository:a/b:pull"));
    }
}
