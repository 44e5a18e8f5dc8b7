//! What berth asks of the token service of `auth.token` on a person's behalf: the web interface's
//! sign-in (a browser cannot do Docker's token dance, so berth does it for the person, as `docker login`
//! does) and, later, tokens for the repositories a page shows.
//!
//! The trait is here, with no HTTP in it, so that the interface (berth-http) depends on what it needs
//! and the binary wires in the HTTP implementation (berth-upstream's `token_service.rs`, on the
//! notifications' client, with the pull-through cache's token response parsing); tests substitute their own.
//!
//! The two requests, as Docker's token specification and its OAuth2 companion define them:
//! - signing in: `GET <realm>?service=<service>&client_id=berth&offline_token=true` with the person's
//!   Basic credentials (what `docker login` sends); the answer's `token` (or `access_token`) proves who
//!   they are, and its `refresh_token`, when the service issues one, is what the session keeps instead
//!   of the password;
//! - a page's rights: `POST <realm>` with the form `grant_type=refresh_token`, `service`, `client_id`,
//!   `refresh_token` and `scope` (space-separated, in the body, so a page of many repositories fits in
//!   one request whatever a URL's limit).
//!
//! Every token that comes back is verified by the [`crate::Authority`] exactly as an API request's
//! bearer token; nothing here is trusted because of where it came from.

use std::fmt;

use crate::Scope;

/// The `client_id` berth names itself with (the OAuth2 spec asks for one, for the service's audit).
pub const CLIENT_ID: &str = "berth";

/// What the token service answered.
#[derive(Clone, PartialEq, Eq)]
pub struct Issued {
    /// The bearer token (`token`, or `access_token`).
    pub token: String,
    /// `refresh_token`, when the service issues one.
    pub refresh_token: Option<String>,
}

impl fmt::Debug for Issued {
    /// Never the tokens themselves.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issued")
            .field("refresh_token", &self.refresh_token.is_some())
            .finish_non_exhaustive()
    }
}

/// Why no token came back.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IssueError {
    /// The service refused the credentials or the refresh token (401 or 403).
    #[error("the token service refused the credentials")]
    Refused,
    /// It could not be reached, failed, or answered something that is not a token; the words name the
    /// realm's host at most, never a secret.
    #[error("the token service could not issue a token: {0}")]
    Unavailable(String),
}

/// The token service of `auth.token` (its realm and service name are the implementation's).
#[async_trait::async_trait]
pub trait TokenService: Send + Sync {
    /// Signs `user` in with `password`: the GET with Basic credentials and `offline_token=true`.
    async fn sign_in(&self, user: &str, password: &str) -> Result<Issued, IssueError>;

    /// A token for `scopes`, in exchange for a refresh token: the OAuth2 POST.
    async fn refresh(&self, refresh_token: &str, scopes: &[Scope]) -> Result<Issued, IssueError>;
}
