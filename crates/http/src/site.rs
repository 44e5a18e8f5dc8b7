//! How the registry looks from outside: the path prefix it is served under (registry:2's `http.prefix`),
//! the external base URL its `Location`s are built on (`http.host`), and the headers added to every
//! response (`http.headers`).
//!
//! [`mount`] puts an API router (as [`crate::router`] builds it) under the prefix, beside the health
//! probes, and finishes every response: handlers keep writing the relative URLs the spec allows
//! (`/v2/<name>/blobs/uploads/<id>`), and one layer here turns them into the URLs clients must use, so no
//! handler has to know where it is mounted.

use std::fmt;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::handler::Handler;
use axum::http::HeaderMap;
use axum::http::header::{HeaderName, HeaderValue, LINK, LOCATION};
use axum::response::Response;

use crate::error::ApiError;
use crate::health::{self, Health};
use crate::middleware::{self, RequestId};

/// Everything about how the API is reached; the default is registry:2's: at the root, relative URLs,
/// no extra headers.
#[derive(Clone, Debug, Default)]
pub struct Site {
    pub prefix: Prefix,
    pub base_url: Option<BaseUrl>,
    pub headers: ExtraHeaders,
}

/// Why a prefix, base URL or header was refused: a sentence that says what is allowed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteError(String);

impl fmt::Display for SiteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SiteError {}

/// The path the API is served under: empty (the root) or `/a/b`, normalised without a trailing slash
/// (registry:2 writes it `/a/b/`; both spellings mean the same).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Prefix(String);

/// Paths served at the root whatever the prefix, which a prefix therefore may not take.
const RESERVED: [&str; 2] = [health::LIVENESS_PATH, health::READINESS_PATH];

impl Prefix {
    /// `""` and `"/"` are the root; otherwise `/segment[/segment...][/]`, segments of letters, digits
    /// and `-._~`. Stricter than URLs allow, so that the router never reads a prefix as a pattern.
    pub fn parse(s: &str) -> Result<Prefix, SiteError> {
        if s.is_empty() || s == "/" {
            return Ok(Prefix::default());
        }
        let Some(rest) = s.strip_prefix('/') else {
            return Err(SiteError("must start with /, as in /registry/".into()));
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        for segment in rest.split('/') {
            if segment.is_empty() {
                return Err(SiteError("has an empty path segment (//)".into()));
            }
            if segment == "." || segment == ".." {
                return Err(SiteError(format!("may not contain a {segment:?} segment")));
            }
            if let Some(c) = segment
                .chars()
                .find(|c| !(c.is_ascii_alphanumeric() || "-._~".contains(*c)))
            {
                return Err(SiteError(format!(
                    "contains {c:?}; path segments may hold letters, digits and - . _ ~"
                )));
            }
        }
        let prefix = format!("/{rest}");
        if RESERVED.contains(&prefix.as_str()) {
            return Err(SiteError(format!(
                "{prefix} is where berth serves its health probe"
            )));
        }
        Ok(Prefix(prefix))
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// `""` or `/a/b`: what goes in front of `/v2/...`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Prefix {
    /// As registry:2 writes it: `/` or `/a/b/`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/", self.0)
    }
}

/// The external URL of the registry, `scheme://host[:port]`, that `Location`s are built on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseUrl(String);

impl BaseUrl {
    /// Parses `http(s)://host[:port][/path]`. A path is returned apart: registry:2 builds its URLs from
    /// the scheme and host alone, so the caller should say that it is ignored.
    pub fn parse(s: &str) -> Result<(BaseUrl, Option<String>), SiteError> {
        let allowed = "expected http://host[:port] or https://host[:port]";
        let (scheme, rest) = s
            .split_once("://")
            .ok_or_else(|| SiteError(allowed.into()))?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(SiteError(format!("scheme {scheme:?}: {allowed}")));
        }
        if rest.contains(['?', '#']) {
            return Err(SiteError(format!("no query or fragment: {allowed}")));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if authority.is_empty()
            || authority
                .chars()
                .any(|c| c == '@' || c.is_whitespace() || c.is_control())
        {
            return Err(SiteError(format!("host {authority:?}: {allowed}")));
        }
        let path = (!path.is_empty() && path != "/").then(|| path.to_string());
        Ok((BaseUrl(format!("{scheme}://{authority}")), path))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Headers added to every response (`http.headers`), in order; a name may repeat.
#[derive(Clone, Debug, Default)]
pub struct ExtraHeaders(Vec<(HeaderName, HeaderValue)>);

impl ExtraHeaders {
    /// Adds `name: value`, if both are valid HTTP.
    pub fn add(&mut self, name: &str, value: &str) -> Result<(), SiteError> {
        let header = HeaderName::try_from(name)
            .map_err(|_| SiteError(format!("{name:?} is not a valid header name")))?;
        let value = HeaderValue::try_from(value).map_err(|_| {
            SiteError(format!(
                "{value:?} is not a valid header value (visible ASCII, spaces and tabs)"
            ))
        })?;
        self.0.push((header, value));
        Ok(())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
        self.0.iter().map(|(n, v)| (n, v))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The application as clients reach it: `api` under the prefix, `/healthz` and `/readyz` (from
/// `health`) at the root, a spec 404 for anything else, and every response finished by [`finish`].
///
/// `api` carries its own request context (request id, version header, log line); the probes and the
/// 404 outside the prefix get theirs here, so each response passes through it exactly once.
pub fn mount(api: Router, site: &Site, health: Health) -> Router {
    let context = || middleware::RequestContextLayer;
    // Where clients reach the API, for the URLs of events (`crate::notify`), which the API router
    // does not know otherwise.
    let api = if site.prefix.is_root() && site.base_url.is_none() {
        api
    } else {
        let front = Arc::new(Front {
            base_url: site.base_url.as_ref().map(|b| b.as_str().to_string()),
            prefix: site.prefix.as_str().to_string(),
        });
        api.layer(axum::middleware::map_request_with_state(front, with_front))
    };
    let probes = health::probes(health).layer(context());
    let app = if site.prefix.is_root() {
        api.merge(probes)
    } else {
        let prefix = site.prefix.as_str();
        let nested = Router::new().nest(prefix, api);
        // `nest` matches `<prefix>` but not `<prefix>/`, where a browser typing the registry's address
        // lands (and the web interface's home redirect lives): the same request, without the slash.
        let slashed = nested.clone();
        let without_slash = prefix.to_string();
        nested
            .route_service(
                &format!("{prefix}/"),
                tower::service_fn(move |mut req: Request| {
                    let mut uri = req.uri().clone().into_parts();
                    let query = uri.path_and_query.as_ref().and_then(|p| p.query());
                    let path = match query {
                        Some(q) => format!("{without_slash}?{q}"),
                        None => without_slash.clone(),
                    };
                    uri.path_and_query = path.parse().ok();
                    if let Ok(u) = axum::http::Uri::from_parts(uri) {
                        *req.uri_mut() = u;
                    }
                    tower::ServiceExt::oneshot(slashed.clone(), req)
                }),
            )
            .merge(probes)
            .fallback(not_found.layer(context()))
    };
    // Nothing to finish at the root without a base URL or extra headers: the layer is left out rather
    // than passed through by every request (a boxed service clone and future each).
    if site.prefix.is_root() && site.base_url.is_none() && site.headers.is_empty() {
        return app;
    }
    app.layer(axum::middleware::map_response_with_state(
        Arc::new(site.clone()),
        finish,
    ))
}

/// Where the API is reached from outside: `http.host` (when set) and `http.prefix`, put on each of its
/// requests by [`mount`].
#[derive(Clone, Debug)]
pub struct Front {
    pub base_url: Option<String>,
    pub prefix: String,
}

async fn with_front(State(front): State<Arc<Front>>, mut req: Request) -> Request {
    req.extensions_mut().insert(Front::clone(&front));
    req
}

/// Outside the prefix: the same 404 as an unknown path inside it.
async fn not_found(req: Request) -> Response {
    ApiError::no_such_endpoint().into_response(&RequestId::of(&req))
}

/// Makes the response's URLs absolute per the site and adds the extra headers.
async fn finish(State(site): State<Arc<Site>>, mut resp: Response) -> Response {
    let headers = resp.headers_mut();
    site.locate(headers);
    for (name, value) in site.headers.iter() {
        // Appended, as registry:2 does: a header the response already has keeps its value too.
        headers.append(name.clone(), value.clone());
    }
    resp
}

impl Site {
    /// Rewrites the root-relative URLs of `Location` and `Link` (`/v2/...`) into the prefix and, with a
    /// base URL, into absolute ones. URLs that are already absolute are left alone.
    fn locate(&self, headers: &mut HeaderMap) {
        if self.prefix.is_root() && self.base_url.is_none() {
            return;
        }
        let base = self.base_url.as_ref().map_or("", BaseUrl::as_str);
        let front = format!("{base}{}", self.prefix.as_str());
        if let Some(url) = headers.get(LOCATION).and_then(|v| v.to_str().ok())
            && url.starts_with('/')
            && let Ok(v) = HeaderValue::try_from(format!("{front}{url}"))
        {
            headers.insert(LOCATION, v);
        }
        if let Some(link) = headers.get(LINK).and_then(|v| v.to_str().ok())
            && let Some(rest) = link.strip_prefix("</")
            && let Ok(v) = HeaderValue::try_from(format!("<{front}/{rest}"))
        {
            headers.insert(LINK, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        let ok: &[(&str, &str)] = &[
            ("", ""),
            ("/", ""),
            ("/registry/", "/registry"),
            ("/registry", "/registry"),
            ("/a/b.c/d-e_f~/", "/a/b.c/d-e_f~"),
        ];
        for (text, want) in ok {
            assert_eq!(
                Prefix::parse(text).map(|p| p.as_str().to_string()),
                Ok(want.to_string()),
                "{text:?}"
            );
        }
        for bad in [
            "registry/",
            "/a//b/",
            "//",
            "/a/../b",
            "/./",
            "/{x}/",
            "/a*/",
            "/a b/",
            "/ü/",
            "/healthz",
            "/readyz/",
        ] {
            assert!(Prefix::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(Prefix::parse("/a/b").unwrap().to_string(), "/a/b/");
        assert_eq!(Prefix::default().to_string(), "/");
    }

    #[test]
    fn base_urls() {
        let parse = |s| BaseUrl::parse(s).map(|(u, p)| (u.to_string(), p));
        assert_eq!(
            parse("https://registry.example.com"),
            Ok(("https://registry.example.com".to_string(), None))
        );
        assert_eq!(
            parse("HTTP://host:5000/"),
            Ok(("http://host:5000".to_string(), None))
        );
        assert_eq!(
            parse("https://host/some/path"),
            Ok(("https://host".to_string(), Some("/some/path".to_string())))
        );
        for bad in [
            "host:5000",
            "ftp://host",
            "https://",
            "https://user@host",
            "https://host?x=1",
            "https://host/#a",
            "https://ho st",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn extra_headers() {
        let mut h = ExtraHeaders::default();
        assert!(h.add("X-Content-Type-Options", "nosniff").is_ok());
        assert!(h.add("X-Content-Type-Options", "second").is_ok());
        assert!(h.add("Bad Name", "v").is_err());
        assert!(h.add("X-Ok", "line\nbreak").is_err());
        let names: Vec<_> = h
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
            .collect();
        assert_eq!(
            names,
            [
                ("x-content-type-options", "nosniff"),
                ("x-content-type-options", "second")
            ]
        );
    }

    fn located(site: &Site, location: &str, link: &str) -> (String, String) {
        let mut h = HeaderMap::new();
        h.insert(LOCATION, HeaderValue::try_from(location).unwrap());
        h.insert(LINK, HeaderValue::try_from(link).unwrap());
        site.locate(&mut h);
        let get = |n| {
            h.get(n)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        (get(LOCATION), get(LINK))
    }

    #[test]
    fn locations_follow_the_prefix_and_the_base_url() {
        let loc = "/v2/a/b/blobs/uploads/123";
        let link = "</v2/_catalog?n=2&last=b>; rel=\"next\"";
        let root = Site::default();
        assert_eq!(
            located(&root, loc, link),
            (loc.to_string(), link.to_string())
        );

        let prefixed = Site {
            prefix: Prefix::parse("/mirror/").unwrap(),
            ..Site::default()
        };
        assert_eq!(
            located(&prefixed, loc, link),
            (
                "/mirror/v2/a/b/blobs/uploads/123".to_string(),
                "</mirror/v2/_catalog?n=2&last=b>; rel=\"next\"".to_string()
            )
        );

        let both = Site {
            base_url: Some(BaseUrl::parse("https://reg.example").unwrap().0),
            ..prefixed
        };
        assert_eq!(
            located(&both, loc, link),
            (
                "https://reg.example/mirror/v2/a/b/blobs/uploads/123".to_string(),
                "<https://reg.example/mirror/v2/_catalog?n=2&last=b>; rel=\"next\"".to_string()
            )
        );
        // Already absolute: untouched.
        let abs = "https://elsewhere/v2/x";
        assert_eq!(located(&both, abs, "").0, abs);
    }
}
