//! The plain settings an [`HttpUpstream`](crate::HttpUpstream) is built from, and their validation.
//!
//! The configuration layer (the binary) owns key names and file formats; this crate owns what the values
//! mean. Everything is plain data so the pull-through cache can fill it from `proxy.*` without knowing
//! HTTP; [`Settings::validate`] rejects what cannot work before the first request.

use std::fmt;
use std::time::Duration;

use hyper::Uri;

/// How to reach one upstream registry.
#[derive(Clone, Debug)]
pub struct Settings {
    /// A short name for logs and metric labels (the namespace prefix or the host); never a URL with
    /// credentials.
    pub name: String,
    /// `http://` or `https://` host, optional port, optional path prefix in front of `/v2/`. Without
    /// credentials in it (use [`Settings::credentials`]), query or fragment.
    pub url: String,
    /// `proxy.username` / `proxy.password`; `None` pulls anonymously.
    pub credentials: Option<Credentials>,
    /// registry:3's `proxy.exec`: a Docker credential helper run for the credentials. When set, it is
    /// used instead of `credentials` (as in registry:3).
    pub credential_helper: Option<CredentialHelper>,
    /// Establishing the TCP connection (and nothing else).
    pub connect_timeout: Duration,
    /// From sending a request to receiving the response's status and headers (TLS handshake included).
    pub response_timeout: Duration,
    /// The longest silence between two chunks of a response body: a stalled transfer fails after it
    /// instead of holding the cache's fetch (and every client waiting on it) forever.
    pub stall_timeout: Duration,
    /// `User-Agent` of every request.
    pub user_agent: String,
    /// PEM bundles of certificate authorities trusted in addition to the operating system's (private
    /// upstreams; the tests' own CA).
    pub extra_root_certificates: Vec<Vec<u8>>,
}

impl Settings {
    /// Settings with the defaults: 10 s to connect, 30 s for a response head, 30 s of silence in a body,
    /// anonymous, `berth/<version>` as user agent, the system's trust store only.
    pub fn new(name: impl Into<String>, url: impl Into<String>) -> Settings {
        Settings {
            name: name.into(),
            url: url.into(),
            credentials: None,
            credential_helper: None,
            connect_timeout: Duration::from_secs(10),
            response_timeout: Duration::from_secs(30),
            stall_timeout: Duration::from_secs(30),
            user_agent: concat!("berth/", env!("CARGO_PKG_VERSION")).to_string(),
            extra_root_certificates: Vec::new(),
        }
    }

    /// The base URL, parsed and checked: scheme http or https, a host, no user info, query or fragment.
    /// Returned without a trailing slash, so paths (`/v2/...`) are appended to it.
    pub(crate) fn base_url(&self) -> Result<String, SettingsError> {
        let bad = |reason: &str| SettingsError::Url {
            reason: reason.to_string(),
        };
        let uri: Uri = self
            .url
            .parse()
            .map_err(|_| bad("not a URL (expected http(s)://host[:port][/prefix])"))?;
        match uri.scheme_str() {
            Some("http") | Some("https") => {}
            _ => return Err(bad("the scheme must be http or https")),
        }
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        if authority.as_str().contains('@') {
            // Credentials in a URL end up in logs; they have their own settings.
            return Err(bad(
                "credentials in the URL are not accepted: set username and password",
            ));
        }
        if uri.query().is_some() || self.url.contains('#') {
            return Err(bad("a query or fragment is not allowed"));
        }
        Ok(self.url.trim_end_matches('/').to_string())
    }
}

/// A user name and password. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// A Docker credential helper (`proxy.exec`), run as `<command> get` (see `crate::helper`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CredentialHelper {
    /// The program: a path, or a name looked up in `PATH`. Run directly, not through a shell.
    pub command: String,
    /// How long its answer is reused: `None` forever (it runs once), zero not at all (every request).
    pub lifetime: Option<Duration>,
}

/// Why settings cannot make an upstream.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("upstream url: {reason}")]
    Url { reason: String },
    /// `auth.token.realm`, for the web interface's sign-in (`token_service.rs`).
    #[error("auth.token.realm: {0}")]
    Realm(String),
    #[error("upstream CA certificates: {0}")]
    Certificates(String),
    #[error("upstream TLS: {0}")]
    Tls(String),
    #[error("upstream user agent: not a valid header value")]
    UserAgent,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        let cases: &[(&str, Option<&str>)] = &[
            (
                "https://registry-1.docker.io",
                Some("https://registry-1.docker.io"),
            ),
            ("http://127.0.0.1:5000/", Some("http://127.0.0.1:5000")),
            (
                "https://example.com/mirror/",
                Some("https://example.com/mirror"),
            ),
            ("ftp://example.com", None),
            ("example.com", None),
            ("https://user:pw@example.com", None),
            ("https://example.com/?x=1", None),
            ("https://example.com/#frag", None),
            ("", None),
        ];
        for (url, want) in cases {
            let got = Settings::new("t", *url).base_url().ok();
            assert_eq!(got.as_deref(), *want, "{url}");
        }
    }

    #[test]
    fn debug_hides_the_password() {
        let mut s = Settings::new("hub", "https://example.com");
        s.credentials = Some(Credentials {
            username: "alice".into(),
            password: "hunter2-secret".into(),
        });
        let shown = format!("{s:?}");
        assert!(shown.contains("alice"), "{shown}");
        assert!(!shown.contains("hunter2-secret"), "{shown}");
    }
}
