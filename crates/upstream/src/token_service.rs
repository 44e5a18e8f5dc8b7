//! The web interface's requests to the token service of `auth.token` (`auth::TokenService`; what
//! they are and why is written there): the sign-in's GET with Basic credentials, and the OAuth2 POST
//! that exchanges a refresh token for a token of a page's scopes. The same rustls client and system
//! CAs as the notifications (`client::posting_client`), each exchange bounded by [`TIMEOUT`].
//!
//! The password and the tokens never reach a log line or an error: the Basic header is marked
//! sensitive, errors name the realm's host and the status, nothing the service sent.

use std::time::Duration;

use auth::token_service::CLIENT_ID;
use auth::{IssueError, Issued, Scope, TokenService};
use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue, USER_AGENT};
use hyper::{Method, Request, StatusCode, Uri};

use crate::SettingsError;
use crate::auth::{MAX_TOKEN_RESPONSE, TokenResponse, basic_header, with_query};
use crate::client::{PostingClient, causes, posting_client, read_limited};
use crate::settings::Credentials;

/// The longest a token request may take, answer included: a person is waiting for the page.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The token service at one realm, for one service name.
pub struct HttpTokenService {
    client: PostingClient,
    realm: String,
    /// The realm's host, for messages.
    host: String,
    service: String,
    user_agent: HeaderValue,
}

impl HttpTokenService {
    /// `realm` and `service` are `auth.token`'s; `user_agent` names berth in each request.
    pub fn new(realm: &str, service: &str, user_agent: &str) -> Result<Self, SettingsError> {
        let user_agent = HeaderValue::from_str(user_agent).map_err(|_| SettingsError::UserAgent)?;
        let host = with_query(realm, "")
            .and_then(|u| u.authority().map(|a| a.to_string()))
            .ok_or_else(|| SettingsError::Realm(format!("{realm:?} is not an http(s) URL")))?;
        Ok(HttpTokenService {
            client: posting_client()?,
            realm: realm.to_string(),
            host,
            service: service.to_string(),
            user_agent,
        })
    }

    /// Sends `req`, and reads a token answer.
    async fn exchange(&self, mut req: Request<Full<Bytes>>) -> Result<Issued, IssueError> {
        let host = &self.host;
        req.headers_mut()
            .insert(USER_AGENT, self.user_agent.clone());
        let answer = async {
            let resp = self.client.request(req).await.map_err(|e| {
                IssueError::Unavailable(format!("cannot reach {host}: {}", causes(&e)))
            })?;
            let status = resp.status();
            if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
                return Err(IssueError::Refused);
            }
            if !status.is_success() {
                return Err(IssueError::Unavailable(format!("{host} answered {status}")));
            }
            let body = read_limited(
                resp.into_body(),
                MAX_TOKEN_RESPONSE,
                TIMEOUT,
                "token response",
            )
            .await
            .map_err(|e| IssueError::Unavailable(format!("{host}: {e}")))?;
            let parsed: TokenResponse = serde_json::from_slice(&body)
                .map_err(|_| IssueError::Unavailable(format!("{host} sent no token JSON")))?;
            let token = parsed
                .bearer()
                .ok_or_else(|| IssueError::Unavailable(format!("{host} sent no token")))?
                .to_string();
            Ok(Issued {
                token,
                refresh_token: parsed.refresh_token.filter(|t| !t.is_empty()),
            })
        };
        tokio::time::timeout(TIMEOUT, answer).await.map_err(|_| {
            IssueError::Unavailable(format!("{host} sent no token within {TIMEOUT:?}"))
        })?
    }
}

#[async_trait::async_trait]
impl TokenService for HttpTokenService {
    async fn sign_in(&self, user: &str, password: &str) -> Result<Issued, IssueError> {
        let uri = sign_in_uri(&self.realm, &self.service)
            .ok_or_else(|| IssueError::Unavailable("the realm is not an http(s) URL".into()))?;
        let basic = basic_header(&Credentials {
            username: user.to_string(),
            password: password.to_string(),
        })
        // Not a header value (a control character): no service could take it.
        .ok_or(IssueError::Refused)?;
        let mut req = Request::get(uri)
            .body(Full::new(Bytes::new()))
            .map_err(|e| IssueError::Unavailable(e.to_string()))?;
        req.headers_mut().insert(AUTHORIZATION, basic);
        self.exchange(req).await
    }

    async fn refresh(&self, refresh_token: &str, scopes: &[Scope]) -> Result<Issued, IssueError> {
        let req = Request::builder()
            .method(Method::POST)
            .uri(self.realm.as_str())
            .header(
                CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded"),
            )
            .body(Full::new(Bytes::from(refresh_form(
                &self.service,
                refresh_token,
                scopes,
            ))))
            .map_err(|_| IssueError::Unavailable("the realm is not an http(s) URL".into()))?;
        self.exchange(req).await
    }
}

/// `realm?service=..&client_id=berth&offline_token=true`: `docker login`'s request, without a scope
/// (signing in asks for no right; the pages ask for theirs).
fn sign_in_uri(realm: &str, service: &str) -> Option<Uri> {
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("service", service)
        .append_pair("client_id", CLIENT_ID)
        .append_pair("offline_token", "true")
        .finish();
    with_query(realm, &query)
}

/// The OAuth2 refresh form: every scope in the one space-separated `scope` field.
fn refresh_form(service: &str, refresh_token: &str, scopes: &[Scope]) -> String {
    let scope: Vec<String> = scopes.iter().map(Scope::to_string).collect();
    form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "refresh_token")
        .append_pair("service", service)
        .append_pair("client_id", CLIENT_ID)
        .append_pair("refresh_token", refresh_token)
        .append_pair("scope", &scope.join(" "))
        .finish()
}

#[cfg(test)]
mod tests {
    use auth::Action;

    use super::*;

    #[test]
    fn requests_are_docker_logins_and_oauth2_refreshes() {
        assert_eq!(
            sign_in_uri("https://auth.example/token", "reg")
                .unwrap()
                .to_string(),
            "https://auth.example/token?service=reg&client_id=berth&offline_token=true"
        );
        assert_eq!(
            sign_in_uri("https://auth.example/token?a=1", "reg")
                .unwrap()
                .query(),
            Some("a=1&service=reg&client_id=berth&offline_token=true")
        );
        assert!(sign_in_uri("ftp://auth.example/", "reg").is_none());
        let scopes = [
            Scope::repository("team/app", &[Action::Pull, Action::Delete]),
            Scope::Catalog,
        ];
        assert_eq!(
            refresh_form("reg", "r&t", &scopes),
            "grant_type=refresh_token&service=reg&client_id=berth&refresh_token=r%26t\
             &scope=repository%3Ateam%2Fapp%3Apull%2Cdelete+registry%3Acatalog%3A*"
        );
    }
}
