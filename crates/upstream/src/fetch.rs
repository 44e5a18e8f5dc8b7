//! One logical request to the upstream: authentication (see [`crate::auth`]) and redirects.
//!
//! Redirects are followed (registries send blobs, and sometimes manifests, to object storage with 307,
//! 302, 303, 301 or 308), at most [`MAX_REDIRECTS`] times. The registry's `Authorization` goes only to
//! the registry's own origin (scheme, host and port): a pre-signed storage URL must never receive it,
//! both because it leaks the credential and because storage rejects requests with two authentications.

use hyper::body::Incoming;
use hyper::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderValue, LOCATION};
use hyper::{Method, Response, StatusCode, Uri};
use registry::proxy::UpstreamError;
use tracing::Instrument;

use crate::auth::Auth;
use crate::client::Http;

/// Hops before a redirect chain is declared a loop.
pub(crate) const MAX_REDIRECTS: usize = 5;

pub(crate) struct Fetcher {
    pub(crate) http: Http,
    pub(crate) auth: Auth,
    /// `scheme://host[:port][/prefix]`, no trailing slash.
    pub(crate) base: String,
}

impl Fetcher {
    /// `method` on `path` (starting with `/v2/`) for a request in `scope`, with the token dance and
    /// redirects done. The response may have any status; a 401 or 403 here is final.
    pub(crate) async fn request(
        &self,
        method: Method,
        path: &str,
        accept: Option<&HeaderValue>,
        scope: &str,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let uri: Uri = format!("{}{path}", self.base)
            .parse()
            .map_err(|_| UpstreamError::Protocol(format!("cannot make a URL of {path:?}")))?;
        let span = crate::trace::request_span(&method, &uri);
        let out = self
            .request_in_span(method, uri, accept, scope)
            .instrument(span.clone())
            .await;
        match &out {
            Ok(resp) => {
                span.record("http.response.status_code", resp.status().as_u16());
                if resp.status().is_server_error() {
                    span.record("otel.status_code", "error");
                }
            }
            Err(_) => {
                span.record("otel.status_code", "error");
            }
        }
        out
    }

    async fn request_in_span(
        &self,
        method: Method,
        uri: Uri,
        accept: Option<&HeaderValue>,
        scope: &str,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let mut authorization = self.auth.preemptive(scope).await;
        let mut answered = false;
        loop {
            let (resp, redirected) = self
                .follow(method.clone(), uri.clone(), accept, authorization.clone())
                .await?;
            // Only the registry's own 401 starts the dance, and only once per request: a second 401 means
            // the fresh credentials are refused.
            if resp.status() == StatusCode::UNAUTHORIZED && !redirected && !answered {
                let sent = authorization.as_ref();
                authorization = Some(
                    self.auth
                        .answer(&self.http, resp.headers(), scope, sent)
                        .await?,
                );
                answered = true;
                continue;
            }
            return Ok(resp);
        }
    }

    /// Sends and follows redirects; also says whether the final answer came from a redirect target.
    async fn follow(
        &self,
        method: Method,
        mut uri: Uri,
        accept: Option<&HeaderValue>,
        mut authorization: Option<HeaderValue>,
    ) -> Result<(Response<Incoming>, bool), UpstreamError> {
        for hop in 0..=MAX_REDIRECTS {
            let mut headers = HeaderMap::new();
            if let Some(a) = accept {
                headers.insert(ACCEPT, a.clone());
            }
            if let Some(a) = &authorization {
                headers.insert(AUTHORIZATION, a.clone());
            }
            let resp = self.http.send(method.clone(), &uri, headers).await?;
            if !is_redirect(resp.status()) {
                return Ok((resp, hop > 0));
            }
            let location = resp
                .headers()
                .get(LOCATION)
                .and_then(|l| l.to_str().ok())
                .ok_or_else(|| {
                    UpstreamError::Protocol(format!("a {} without a Location", resp.status()))
                })?;
            let next = resolve(&uri, location).ok_or_else(|| {
                UpstreamError::Protocol("a redirect to an unusable Location".into())
            })?;
            if !same_origin(&uri, &next) {
                authorization = None;
            }
            tracing::debug!(status = %resp.status(), to = %origin(&next), "upstream redirect");
            uri = next;
        }
        Err(UpstreamError::Protocol(format!(
            "more than {MAX_REDIRECTS} redirects"
        )))
    }
}

fn is_redirect(s: StatusCode) -> bool {
    matches!(
        s,
        StatusCode::MOVED_PERMANENTLY
            | StatusCode::FOUND
            | StatusCode::SEE_OTHER
            | StatusCode::TEMPORARY_REDIRECT
            | StatusCode::PERMANENT_REDIRECT
    )
}

/// A Location (absolute, scheme-relative, absolute-path or relative-path) against the URL it answered.
fn resolve(base: &Uri, location: &str) -> Option<Uri> {
    let scheme = base.scheme_str()?;
    let authority = base.authority()?.as_str();
    let text = if has_scheme(location) {
        location.to_string()
    } else if let Some(rest) = location.strip_prefix("//") {
        format!("{scheme}://{rest}")
    } else if location.starts_with('/') {
        format!("{scheme}://{authority}{location}")
    } else {
        let path = base.path();
        let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
        format!("{scheme}://{authority}{dir}{location}")
    };
    let uri: Uri = text.parse().ok()?;
    match (uri.scheme_str(), uri.authority()) {
        (Some("http" | "https"), Some(_)) => Some(uri),
        _ => None,
    }
}

/// Whether a URI reference starts with `scheme:` (RFC 3986), i.e. is absolute.
fn has_scheme(s: &str) -> bool {
    match s.split_once(':') {
        Some((scheme, _)) => {
            scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        }
        None => false,
    }
}

/// Scheme, host and port, with the scheme's default port made explicit.
fn origin(uri: &Uri) -> String {
    let scheme = uri.scheme_str().unwrap_or("");
    let host = uri.host().unwrap_or("").to_ascii_lowercase();
    let port = uri
        .port_u16()
        .unwrap_or(if scheme == "https" { 443 } else { 80 });
    format!("{scheme}://{host}:{port}")
}

fn same_origin(a: &Uri, b: &Uri) -> bool {
    origin(a) == origin(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations() {
        let base: Uri = "https://reg.example:5000/v2/a/b/blobs/sha256:00"
            .parse()
            .unwrap();
        let cases: &[(&str, Option<&str>)] = &[
            (
                "https://s3.example/bucket/x?X-Amz-Signature=abc",
                Some("https://s3.example/bucket/x?X-Amz-Signature=abc"),
            ),
            ("//cdn.example/x", Some("https://cdn.example/x")),
            (
                "/v2/a/b/blobs/other",
                Some("https://reg.example:5000/v2/a/b/blobs/other"),
            ),
            ("other", Some("https://reg.example:5000/v2/a/b/blobs/other")),
            ("ftp://x/y", None),
            ("https://", None),
        ];
        for (location, want) in cases {
            let got = resolve(&base, location).map(|u| u.to_string());
            assert_eq!(got.as_deref(), *want, "{location}");
        }
    }

    #[test]
    fn origins() {
        let u = |s: &str| s.parse::<Uri>().unwrap();
        assert!(same_origin(
            &u("https://Reg.example/v2/"),
            &u("https://reg.example:443/x")
        ));
        assert!(same_origin(&u("http://a/v2/"), &u("http://a:80/y")));
        assert!(!same_origin(&u("http://a/v2/"), &u("https://a/v2/")));
        assert!(!same_origin(
            &u("http://127.0.0.1:5000/"),
            &u("http://127.0.0.1:5001/")
        ));
        assert!(!same_origin(
            &u("https://reg.example/"),
            &u("https://s3.example/")
        ));
    }
}
