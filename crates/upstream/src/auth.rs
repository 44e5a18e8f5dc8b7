//! Authenticating to the upstream: the Docker/OCI bearer-token dance, Basic credentials, and the cache
//! of tokens per scope.
//!
//! A request goes out first with whatever is known to work for its scope (a cached token, or Basic once
//! the upstream asked for it), so a warm cache costs one round trip. On a 401 the challenge says what to
//! do: `Bearer realm,service,scope` -> GET the realm with `service` and `scope` (Basic credentials when
//! configured, anonymous otherwise), cache the token until shortly before `expires_in` runs out (60 s when
//! the answer does not say), retry once; `Basic` -> retry once with the credentials.
//!
//! Token fetches are single-flight per scope: when many requests of one repository meet a 401 at once (a
//! cold cache pulling several layers), one fetches the token and the others wait for it and use it,
//! instead of each asking the token service.
//!
//! Secrets never reach a log line or an error: header values holding them are marked sensitive (hyper
//! keeps them out of HPACK tables, `Debug` prints `Sensitive`), and messages name the realm's host only.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use hyper::header::{AUTHORIZATION, HeaderMap, HeaderValue, WWW_AUTHENTICATE};
use hyper::{Method, StatusCode, Uri};
use registry::proxy::UpstreamError;
use serde::Deserialize;

use crate::challenge::{self, Challenge};
use crate::client::{Http, read_limited};
use crate::helper::HelperCredentials;
use crate::settings::{Credentials, Settings};
use crate::status::retry_after;

/// Token responses are small JSON documents; anything bigger is not one.
pub(crate) const MAX_TOKEN_RESPONSE: usize = 1 << 20;
/// Docker's token specification: a token without `expires_in` lasts 60 seconds.
const DEFAULT_EXPIRES_IN: u64 = 60;
/// A cached token is dropped this long (at most a tenth of its life) before it expires, so a request
/// never leaves with a token that dies on the way.
const EXPIRY_MARGIN: Duration = Duration::from_secs(10);

pub(crate) struct Auth {
    /// Where Basic credentials come from, if anywhere.
    basic: Basic,
    /// The upstream's host, which a credential helper is asked about for the registry's own Basic.
    host: String,
    /// The upstream challenged with Basic once: send the credentials up front from then on.
    basic_wanted: AtomicBool,
    /// Bearer tokens by scope (`repository:<name>:pull`). A std mutex: it is never held across an await.
    tokens: Mutex<HashMap<String, Token>>,
    /// One async lock per scope whose token is being fetched (removed when nobody holds it), so that a
    /// scope's token is fetched once however many requests need it at the same moment.
    fetching: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// The configured credentials.
enum Basic {
    None,
    /// `Basic <base64>` of `proxy.username` and `proxy.password`.
    Static(HeaderValue),
    /// A credential helper's answer, asked for the host the credentials go to (the registry, or the
    /// realm of its token service), as registry:3 asks it.
    Helper(HelperCredentials),
}

struct Token {
    header: HeaderValue,
    fresh_until: Instant,
}

/// A token service's answer (Docker's token specification, and its OAuth2 form).
#[derive(Deserialize)]
pub(crate) struct TokenResponse {
    token: Option<String>,
    access_token: Option<String>,
    expires_in: Option<u64>,
    /// Only when asked for (`offline_token=true`; the web interface's sign-in, `token_service.rs`).
    pub(crate) refresh_token: Option<String>,
}

impl TokenResponse {
    /// The bearer token: `token`, else `access_token` (the OAuth2 name); empty ones are none.
    pub(crate) fn bearer(&self) -> Option<&str> {
        self.token
            .as_deref()
            .filter(|t| !t.is_empty())
            .or(self.access_token.as_deref().filter(|t| !t.is_empty()))
    }
}

impl Auth {
    /// `base` is the upstream's URL (checked).
    pub(crate) fn new(settings: &Settings, base: &str) -> Auth {
        let basic = match (&settings.credential_helper, &settings.credentials) {
            (Some(helper), _) => Basic::Helper(HelperCredentials::new(helper.clone())),
            (None, Some(c)) => basic_header(c).map_or(Basic::None, Basic::Static),
            (None, None) => Basic::None,
        };
        let host = base
            .parse::<Uri>()
            .ok()
            .and_then(|u| u.host().map(str::to_string))
            .unwrap_or_default();
        Auth {
            basic,
            host,
            basic_wanted: AtomicBool::new(false),
            tokens: Mutex::new(HashMap::new()),
            fetching: Mutex::new(HashMap::new()),
        }
    }

    /// The `Authorization` to send first for `scope`: a fresh cached token, else Basic if the upstream
    /// asked for it before, else none.
    pub(crate) async fn preemptive(&self, scope: &str) -> Option<HeaderValue> {
        if let Some(token) = self.cached_token(scope) {
            return Some(token);
        }
        if self.basic_wanted.load(Ordering::Relaxed) {
            return self.basic_for(&self.host).await;
        }
        None
    }

    /// `Basic <base64>` of the credentials for `host`, if there are any (a helper may give none).
    async fn basic_for(&self, host: &str) -> Option<HeaderValue> {
        match &self.basic {
            Basic::None => None,
            Basic::Static(header) => Some(header.clone()),
            Basic::Helper(helper) => basic_header(&helper.get(host).await?),
        }
    }

    fn cached_token(&self, scope: &str) -> Option<HeaderValue> {
        let tokens = self.tokens.lock().ok()?;
        let t = tokens.get(scope)?;
        (t.fresh_until > Instant::now()).then(|| t.header.clone())
    }

    /// Answers the challenge of a 401 (`headers` are its headers) for a request in `scope` that carried
    /// `sent`: a token (fetched, or fetched meanwhile by another request, but never the one just
    /// refused) or Basic.
    pub(crate) async fn answer(
        &self,
        http: &Http,
        headers: &HeaderMap,
        scope: &str,
        sent: Option<&HeaderValue>,
    ) -> Result<HeaderValue, UpstreamError> {
        let challenges: Vec<Challenge> = headers
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(challenge::parse)
            .collect();
        if let Some(bearer) = challenges.iter().find(|c| c.scheme == "bearer") {
            let lock = self.scope_lock(scope);
            let result = {
                let _flight = lock.lock().await;
                match self.cached_token(scope) {
                    Some(t) if Some(&t) != sent => Ok(t),
                    _ => self.fetch_token(http, bearer, scope).await,
                }
            };
            self.release_scope_lock(scope, lock);
            return result;
        }
        if challenges.iter().any(|c| c.scheme == "basic") {
            return match self.basic_for(&self.host).await {
                Some(basic) => {
                    self.basic_wanted.store(true, Ordering::Relaxed);
                    Ok(basic.clone())
                }
                None => Err(UpstreamError::Denied(
                    "the upstream requires credentials (Basic) and none are configured".into(),
                )),
            };
        }
        Err(UpstreamError::Denied(
            "the upstream answered 401 without a Bearer or Basic challenge".into(),
        ))
    }

    fn scope_lock(&self, scope: &str) -> Arc<tokio::sync::Mutex<()>> {
        match self.fetching.lock() {
            Ok(mut locks) => locks.entry(scope.to_string()).or_default().clone(),
            // Unreachable in practice (nothing panics under this lock); without the map, no coalescing.
            Err(_) => Arc::default(),
        }
    }

    /// Forgets `scope`'s lock once no other request holds it (checked under the map's lock, so nobody
    /// can be taking it meanwhile), keeping the map as small as the fetches in flight.
    fn release_scope_lock(&self, scope: &str, lock: Arc<tokio::sync::Mutex<()>>) {
        if let Ok(mut locks) = self.fetching.lock()
            && locks
                .get(scope)
                .is_some_and(|l| Arc::ptr_eq(l, &lock) && Arc::strong_count(l) <= 2)
        {
            locks.remove(scope);
        }
    }

    async fn fetch_token(
        &self,
        http: &Http,
        challenge: &Challenge,
        scope: &str,
    ) -> Result<HeaderValue, UpstreamError> {
        let realm = challenge
            .param("realm")
            .ok_or_else(|| UpstreamError::Protocol("a Bearer challenge without a realm".into()))?;
        let uri = token_uri(
            realm,
            challenge.param("service"),
            challenge.param("scope"),
            scope,
        )?;
        let host = uri.authority().map(|a| a.to_string()).unwrap_or_default();
        let mut headers = HeaderMap::new();
        let basic = self.basic_for(uri.host().unwrap_or_default()).await;
        if let Some(basic) = &basic {
            headers.insert(AUTHORIZATION, basic.clone());
        }
        let resp = http.send(Method::GET, &uri, headers).await?;
        let status = resp.status();
        let who = if basic.is_some() {
            "the configured credentials"
        } else {
            "anonymous access"
        };
        match status {
            s if s.is_success() => {}
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                return Err(UpstreamError::Denied(format!(
                    "the token service at {host} refused {who} ({status})"
                )));
            }
            StatusCode::TOO_MANY_REQUESTS => {
                return Err(UpstreamError::RateLimited {
                    retry_after: retry_after(resp.headers(), std::time::SystemTime::now()),
                });
            }
            s if s.is_server_error() => {
                return Err(UpstreamError::Unavailable(format!(
                    "the token service at {host} answered {status}"
                )));
            }
            _ => {
                return Err(UpstreamError::Protocol(format!(
                    "the token service at {host} answered {status}"
                )));
            }
        }
        let body = read_limited(
            resp.into_body(),
            MAX_TOKEN_RESPONSE,
            http.stall_timeout(),
            "token response",
        )
        .await?;
        let parsed: TokenResponse = serde_json::from_slice(&body).map_err(|e| {
            UpstreamError::Protocol(format!("the token service at {host} sent no JSON: {e}"))
        })?;
        let token = parsed.bearer().ok_or_else(|| {
            UpstreamError::Protocol(format!("the token service at {host} sent no token"))
        })?;
        let header = sensitive(&format!("Bearer {token}")).ok_or_else(|| {
            UpstreamError::Protocol(format!(
                "the token service at {host} sent a token that is not a header value"
            ))
        })?;
        let life = Duration::from_secs(parsed.expires_in.unwrap_or(DEFAULT_EXPIRES_IN));
        let fresh_until = Instant::now() + life - EXPIRY_MARGIN.min(life / 10);
        if let Ok(mut tokens) = self.tokens.lock() {
            // Expired entries go as new ones come, so the map holds at most the scopes in recent use.
            let now = Instant::now();
            tokens.retain(|_, t| t.fresh_until > now);
            tokens.insert(
                scope.to_string(),
                Token {
                    header: header.clone(),
                    fresh_until,
                },
            );
        }
        Ok(header)
    }
}

/// The token request: `realm?service=..&scope=..` (one `scope` parameter per space-separated scope, as
/// Docker sends them). Without a scope in the challenge, the request's own scope is asked for.
fn token_uri(
    realm: &str,
    service: Option<&str>,
    challenged_scope: Option<&str>,
    scope: &str,
) -> Result<Uri, UpstreamError> {
    let bad =
        || UpstreamError::Protocol("the Bearer challenge's realm is not an http(s) URL".into());
    let mut query = form_urlencoded::Serializer::new(String::new());
    if let Some(service) = service {
        query.append_pair("service", service);
    }
    for s in challenged_scope
        .unwrap_or(scope)
        .split(' ')
        .filter(|s| !s.is_empty())
    {
        query.append_pair("scope", s);
    }
    with_query(realm, &query.finish()).ok_or_else(bad)
}

/// `realm` with `query` added to the query it may already have; `None` unless an http(s) URL.
pub(crate) fn with_query(realm: &str, query: &str) -> Option<Uri> {
    let joined = match (realm.contains('?'), query.is_empty()) {
        (_, true) => realm.to_string(),
        (true, false) => format!("{realm}&{query}"),
        (false, false) => format!("{realm}?{query}"),
    };
    let uri: Uri = joined.parse().ok()?;
    match (uri.scheme_str(), uri.authority()) {
        (Some("http" | "https"), Some(_)) => Some(uri),
        _ => None,
    }
}

/// `Basic <base64 of user:password>`, marked sensitive.
pub(crate) fn basic_header(c: &Credentials) -> Option<HeaderValue> {
    let encoded =
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", c.username, c.password));
    sensitive(&format!("Basic {encoded}"))
}

pub(crate) fn sensitive(value: &str) -> Option<HeaderValue> {
    let mut v = HeaderValue::from_str(value).ok()?;
    v.set_sensitive(true);
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_uris() {
        // realm, service, the challenge's scope, the request's scope, the token URL (None: refused).
        type Case<'a> = (
            &'a str,
            Option<&'a str>,
            Option<&'a str>,
            &'a str,
            Option<&'a str>,
        );
        let cases: &[Case] = &[
            (
                "https://auth.docker.io/token",
                Some("registry.docker.io"),
                Some("repository:library/alpine:pull"),
                "repository:x:pull",
                Some(
                    "https://auth.docker.io/token?service=registry.docker.io&scope=repository%3Alibrary%2Falpine%3Apull",
                ),
            ),
            (
                "http://127.0.0.1:1/t?x=1",
                None,
                Some("repository:a:pull repository:b:pull"),
                "repository:x:pull",
                Some(
                    "http://127.0.0.1:1/t?x=1&scope=repository%3Aa%3Apull&scope=repository%3Ab%3Apull",
                ),
            ),
            (
                "https://a/t",
                Some("reg"),
                None,
                "repository:x:pull",
                Some("https://a/t?service=reg&scope=repository%3Ax%3Apull"),
            ),
            ("/relative/token", None, None, "s", None),
            ("ftp://a/t", None, None, "s", None),
        ];
        for (realm, service, challenged, scope, want) in cases {
            let got = token_uri(realm, *service, *challenged, scope)
                .ok()
                .map(|u| u.to_string());
            assert_eq!(got.as_deref(), *want, "{realm}");
        }
    }

    #[tokio::test]
    async fn basic_header_is_sensitive_and_hidden_from_debug() {
        let mut settings = Settings::new("t", "https://r.example");
        settings.credentials = Some(Credentials {
            username: "alice".into(),
            password: "secret".into(),
        });
        let auth = Auth::new(&settings, "https://r.example");
        let basic = auth.basic_for("r.example").await.unwrap();
        assert!(basic.is_sensitive());
        assert!(!format!("{basic:?}").contains("YWxpY2U6c2VjcmV0"));
        // Not sent before the upstream asks for it.
        assert!(auth.preemptive("repository:a:pull").await.is_none());
    }
}
