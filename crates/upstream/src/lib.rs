//! The pull-through cache's upstream over HTTP: [`HttpUpstream`] implements
//! [`registry::proxy::Upstream`] for any registry speaking the distribution API (Docker Hub, ghcr.io,
//! quay.io, registry:2, another berth).
//!
//! It lives outside `berth-registry` so that the registry stays free of HTTP types. Its parts, one job
//! per module:
//! - [`settings`](Settings): what the configuration gives (URL, credentials, timeouts, user agent, CAs);
//! - `client`: hyper-util's pooled client over rustls, and every timeout;
//! - `auth` + `challenge`: the bearer-token dance, Basic credentials, tokens cached per scope;
//!   `helper`: credentials from a Docker credential helper (registry:3's `proxy.exec`);
//! - `fetch`: one logical request (authentication, redirects, never forwarding `Authorization` to
//!   another origin);
//! - `manifest`, `blob`, `listing` (tags, the catalog), `referrers`: the operations; `status`: statuses to [`UpstreamError`]s;
//! - [`notify`]: the notifications' sink; [`token_service`]: the web interface's sign-in through
//!   `auth.token`'s token service (`auth::TokenService`); both on `client`'s posting client;
//! - [`trace`]: each logical request a client span, its context sent upstream (W3C `traceparent`).
//!
//! With the `testkit` feature, [`testkit`] offers a fault-injecting proxy and a token server for tests
//! here and in the end-to-end suite.
//!
//! Errors are meant for logs: they may name the upstream's host, never a credential or token.

use std::fmt;

use oci::{Digest, Reference, RepoName};
use registry::proxy::{ManifestHead, Upstream, UpstreamBlob, UpstreamError, UpstreamManifest};

mod auth;
mod blob;
mod challenge;
mod client;
mod fetch;
mod helper;
mod listing;
mod manifest;
pub mod notify;
mod referrers;
mod settings;
mod status;
#[cfg(feature = "testkit")]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code, built into the library for other crates' tests: a panic is a failed case"
)]
pub mod testkit;
pub mod token_service;
pub mod trace;

pub use settings::{CredentialHelper, Credentials, Settings, SettingsError};

/// One upstream registry over HTTP(S). Cheap to share behind an `Arc`; connections are pooled and
/// bearer tokens cached inside.
pub struct HttpUpstream {
    name: String,
    fetcher: fetch::Fetcher,
}

impl HttpUpstream {
    /// Checks `settings` (URL, certificates, user agent) and builds the client; nothing is sent yet.
    pub fn new(settings: &Settings) -> Result<HttpUpstream, SettingsError> {
        let base = settings.base_url()?;
        Ok(HttpUpstream {
            name: settings.name.clone(),
            fetcher: fetch::Fetcher {
                http: client::Http::new(settings)?,
                auth: auth::Auth::new(settings, &base),
                base,
            },
        })
    }
}

impl fmt::Debug for HttpUpstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL is configuration without secrets (credentials in it are refused); tokens stay out.
        f.debug_struct("HttpUpstream")
            .field("name", &self.name)
            .field("url", &self.fetcher.base)
            .finish_non_exhaustive()
    }
}

#[async_trait::async_trait]
impl Upstream for HttpUpstream {
    fn name(&self) -> &str {
        &self.name
    }

    async fn manifest_head(
        &self,
        repo: &RepoName,
        reference: &Reference,
    ) -> Result<Option<ManifestHead>, UpstreamError> {
        manifest::head(&self.fetcher, repo, reference).await
    }

    async fn manifest_get(
        &self,
        repo: &RepoName,
        reference: &Reference,
        max_bytes: usize,
    ) -> Result<Option<UpstreamManifest>, UpstreamError> {
        manifest::get(&self.fetcher, repo, reference, max_bytes).await
    }

    async fn tags_list(
        &self,
        repo: &RepoName,
        n: usize,
        last: Option<&str>,
    ) -> Result<Option<(Vec<String>, bool)>, UpstreamError> {
        listing::tags(&self.fetcher, repo, n, last).await
    }

    async fn blob_get(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Option<UpstreamBlob>, UpstreamError> {
        blob::get(&self.fetcher, repo, digest).await
    }

    async fn catalog(
        &self,
        n: usize,
        last: Option<&str>,
    ) -> Result<Option<(Vec<String>, bool)>, UpstreamError> {
        listing::catalog(&self.fetcher, n, last).await
    }

    async fn referrers(
        &self,
        repo: &RepoName,
        digest: &Digest,
    ) -> Result<Vec<Digest>, UpstreamError> {
        referrers::list(&self.fetcher, repo, digest).await
    }
}
