//! Signed-in sessions of the web interface with `auth.token`: a browser cannot do Docker's token dance,
//! so `ui/signin.rs` does it for the person once, and this file keeps what it got.
//!
//! What a session is: the user's name, the token service's refresh token, and a random id, sealed
//! (`ui/seal.rs`) into one cookie, `berth_session`: `HttpOnly` (no script reads it; the pages have none
//! anyway), `SameSite=Strict` (no other site's page sends it), `Secure` when berth is reached over TLS,
//! `Path` the prefix. No password is kept anywhere, and nothing is kept on the server: any replica with the
//! same `http.secret` opens the cookie. A session lasts [`LIFETIME`] from its sign-in, whatever happens;
//! it ends sooner for the browser when the person signs out (its cookie is cleared and this process
//! forgets the session's rights; a copy of the cookie taken before stays valid until its deadline, as
//! nothing is kept on the server to revoke it), and everywhere when the token service stops honouring
//! its refresh token.
//!
//! What a session may see: what the token service grants, asked each time a page needs to know
//! ([`Active::ask`]): the refresh token is exchanged for a token of the page's scopes (every repository a
//! list page may show, in one request), which the API's `Authority` verifies like any bearer token, and
//! whose grants become the viewer's rights. Those rights are remembered in this process for
//! [`RIGHTS_FOR`] per session (a page and the next ones the person opens then cost no request), so a
//! right the service withdraws stops showing within that time; a replica that has not seen the session
//! asks again.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ::auth::{Authority, Caller, IssueError, Scope, TokenService};
use axum::http::HeaderMap;
use axum::http::HeaderValue;
use axum::http::header::COOKIE;
use serde::{Deserialize, Serialize};

use super::Failure;
use super::seal::Sealer;

/// The cookie's name.
pub const COOKIE_NAME: &str = "berth_session";
/// How long a session lasts from its sign-in.
pub const LIFETIME: Duration = Duration::from_secs(8 * 60 * 60);
/// How long this process remembers what the token service granted a session.
pub const RIGHTS_FOR: Duration = Duration::from_secs(30);
/// Sessions whose rights are remembered at most; past it, the oldest are forgotten first.
const MAX_REMEMBERED: usize = 10_000;

/// What the web interface needs to sign people in through the token service of `auth.token`.
pub struct SignIn {
    /// The token service.
    pub service: Arc<dyn TokenService>,
    /// `http.secret`, from which the cookie's key is derived; `None`: a key of this process's own.
    pub secret: Option<Vec<u8>>,
    /// Whether browsers reach berth over TLS (`http.tls`, or an `https` `http.host` before a proxy):
    /// the cookie is then `Secure`.
    pub secure: bool,
}

/// The sessions of one process: the key, the cookie's attributes, and the rights remembered.
pub struct Sessions {
    pub(super) service: Arc<dyn TokenService>,
    sealer: Sealer,
    /// The cookie's attributes after its value.
    attributes: String,
    remembered: Mutex<HashMap<String, Known>>,
}

/// What one session was granted lately.
struct Known {
    since: Instant,
    caller: Caller,
    /// The scopes asked, as the token service spells them.
    asked: HashSet<String>,
}

/// A session, as sealed in its cookie.
#[derive(Clone, Serialize, Deserialize)]
pub struct Session {
    /// A random id: which remembered rights are this session's.
    pub sid: String,
    /// The user the token service's token named.
    pub user: String,
    /// The token service's refresh token.
    pub refresh: String,
}

impl Sessions {
    /// `prefix` is where the interface is served (`http.prefix`; empty: the root).
    pub fn new(sign_in: SignIn, prefix: &str) -> Sessions {
        let sealer = match &sign_in.secret {
            Some(secret) => Sealer::from_secret(secret),
            None => Sealer::random(),
        };
        let secure = if sign_in.secure { "; Secure" } else { "" };
        Sessions {
            service: sign_in.service,
            sealer,
            attributes: format!("; Path={prefix}/; HttpOnly; SameSite=Strict{secure}"),
            remembered: Mutex::new(HashMap::new()),
        }
    }

    /// The session of the request's cookie, if one opens (sealed here, unchanged, not expired).
    pub fn read(&self, headers: &HeaderMap) -> Option<Session> {
        let now = unix_now();
        headers
            .get_all(COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .filter(|(name, _)| *name == COOKIE_NAME)
            .find_map(|(_, value)| self.sealer.open(value, now))
            .and_then(|plain| serde_json::from_slice(&plain).ok())
    }

    /// The `Set-Cookie` of a new session.
    pub fn set_cookie(&self, session: &Session) -> Option<HeaderValue> {
        let plain = serde_json::to_vec(session).ok()?;
        let sealed = self
            .sealer
            .seal(&plain, unix_now().saturating_add(LIFETIME.as_secs()))?;
        HeaderValue::try_from(format!(
            "{COOKIE_NAME}={sealed}; Max-Age={}{}",
            LIFETIME.as_secs(),
            self.attributes
        ))
        .ok()
    }

    /// The `Set-Cookie` that ends a session in the browser.
    pub fn clear_cookie(&self) -> Option<HeaderValue> {
        HeaderValue::try_from(format!("{COOKIE_NAME}=; Max-Age=0{}", self.attributes)).ok()
    }

    /// The session `session` as a viewer starts it: its remembered rights, or none yet.
    pub fn activate(self: &Arc<Self>, session: Session) -> (Caller, Active) {
        let known = self.remembered.lock().ok().and_then(|m| {
            m.get(&session.sid)
                .filter(|k| k.since.elapsed() < RIGHTS_FOR)
                .map(|k| (k.caller.clone(), k.asked.clone(), k.since))
        });
        let (caller, asked, since) = known.unwrap_or_else(|| {
            (
                Caller::token_holder(session.user.clone()),
                HashSet::new(),
                Instant::now(),
            )
        });
        let active = Active {
            sessions: self.clone(),
            session,
            asked,
            since,
        };
        (caller, active)
    }

    /// Forgets the rights remembered for the session `sid` (it signed out).
    pub fn forget(&self, sid: &str) {
        if let Ok(mut m) = self.remembered.lock() {
            m.remove(sid);
        }
    }

    fn remember(&self, sid: &str, known: Known) {
        let Ok(mut m) = self.remembered.lock() else {
            return;
        };
        if m.len() >= MAX_REMEMBERED && !m.contains_key(sid) {
            m.retain(|_, k| k.since.elapsed() < RIGHTS_FOR);
            if m.len() >= MAX_REMEMBERED
                && let Some(oldest) = m
                    .iter()
                    .min_by_key(|(_, k)| k.since)
                    .map(|(s, _)| s.clone())
            {
                m.remove(&oldest);
            }
        }
        m.insert(sid.to_string(), known);
    }
}

/// A session in use by one request's viewer.
pub struct Active {
    sessions: Arc<Sessions>,
    pub session: Session,
    asked: HashSet<String>,
    /// When the rights held were first asked for (they are remembered from then on, not longer).
    since: Instant,
}

impl Active {
    /// Makes sure `caller` holds what the token service grants for `scopes`: those not asked for lately
    /// are asked now, in one request, and the token that comes back, verified by `authority`, adds its
    /// grants. A refresh token the service no longer takes (or a token for another user) ends the session:
    /// the person is asked to sign in again.
    pub async fn ask(
        &mut self,
        authority: &Authority,
        caller: &mut Caller,
        scopes: &[Scope],
    ) -> Result<(), Failure> {
        let mut fresh = HashSet::new();
        let new: Vec<Scope> = scopes
            .iter()
            .filter(|scope| {
                let key = scope.to_string();
                !self.asked.contains(&key) && fresh.insert(key)
            })
            .cloned()
            .collect();
        if new.is_empty() {
            return Ok(());
        }
        let over = || Failure::Challenge(authority.challenge(&[], false));
        let issued = match self
            .sessions
            .service
            .refresh(&self.session.refresh, &new)
            .await
        {
            Ok(issued) => issued,
            Err(IssueError::Refused) => return Err(over()),
            Err(IssueError::Unavailable(why)) => {
                tracing::warn!(reason = %why, "the token service gave no token for a page");
                return Err(Failure::Registry(registry::Error::Unavailable(
                    "the token service did not answer".into(),
                )));
            }
        };
        let granted = match authority.verify_token(&issued.token) {
            Ok(granted) if granted.identity.user() == Some(self.session.user.as_str()) => granted,
            Ok(_) => {
                tracing::warn!("the token service's token for a session names another user");
                return Err(over());
            }
            Err(why) => {
                tracing::warn!(reason = %why, "the token service's token for a page did not verify");
                return Err(over());
            }
        };
        caller.absorb(granted);
        self.asked.extend(new.iter().map(Scope::to_string));
        self.sessions.remember(
            &self.session.sid,
            Known {
                since: self.since,
                caller: caller.clone(),
                asked: self.asked.clone(),
            },
        );
        Ok(())
    }
}

fn unix_now() -> u64 {
    u64::try_from(registry::clock::unix_now()).unwrap_or_default()
}
