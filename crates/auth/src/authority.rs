//! The [`Authority`]: authentication and policy together, answering "may this request go ahead?".
//!
//! Decisions, for a request needing some [`Scope`]s:
//! - credentials presented and wrong (bad password, unknown user, a token that does not verify, a header
//!   that cannot be read): 401 UNAUTHORIZED with the challenge, whatever the policy would allow an
//!   anonymous caller, so that a client never silently falls back to anonymous;
//! - every scope allowed: go ahead;
//! - not allowed and anonymous: 401 with the challenge (the client may authenticate and retry);
//! - not allowed with a valid token: 401 with `error="insufficient_scope"` (Docker's token spec: the client
//!   asks the token service for the scope in the challenge);
//! - not allowed for an htpasswd user: 403 DENIED (credentials will not help).
//!
//! `GET /v2/` needs no scope but is where clients learn how to authenticate: without credentials it is
//! answered with the challenge (as registry:2), unless `access.openbase` opens it. Clients of the
//! containers/image family then answer a Basic challenge with empty credentials when they have none, which
//! count as anonymous, so anonymous pulls keep working.
//!
//! Rights: htpasswd users and anonymous callers have what the [`Policy`] grants. A token caller has what its
//! `access` claim grants, plus what anonymous callers have; `access` rules naming users do not apply to
//! tokens (the token service is the policy for them).

use crate::credentials::Credentials;
use crate::htpasswd::Htpasswd;
use crate::policy::Policy;
use crate::settings::Settings;
use crate::token::{Grants, TokenVerifier};
use crate::{Action, Error, Identity, Scope, challenge};

/// Authentication plus policy, built once from the settings.
pub struct Authority {
    authn: Authn,
    policy: Policy,
}

enum Authn {
    Htpasswd {
        realm: String,
        file: Htpasswd,
    },
    Token {
        realm: String,
        service: String,
        verifier: TokenVerifier,
    },
}

/// The caller of one request, authenticated.
#[derive(Clone, Debug)]
pub struct Caller {
    pub identity: Identity,
    /// The `access` claim, for a token caller.
    grants: Option<Grants>,
}

impl Caller {
    /// The caller without credentials.
    pub fn anonymous() -> Caller {
        Caller {
            identity: Identity::Anonymous,
            grants: None,
        }
    }

    /// A token caller whose token grants nothing (beyond what anonymous callers have): where a
    /// signed-in session of the web interface starts before it asked for any scope.
    pub fn token_holder(user: String) -> Caller {
        Caller {
            identity: Identity::User(user),
            grants: Some(Grants::default()),
        }
    }

    /// Adds what `other`'s token grants to this caller's: the rights of several tokens one token service
    /// issued to the same user, each for other scopes. Nothing changes unless both are token callers of
    /// the same identity, so rights never pass from one user to another.
    pub fn absorb(&mut self, other: Caller) {
        if self.identity != other.identity {
            return;
        }
        if let (Some(mine), Some(theirs)) = (&mut self.grants, other.grants) {
            mine.extend(theirs);
        }
    }
}

/// Credentials that were presented and refused: the 401 to answer, and what they were about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrongCredentials {
    /// The 401 with the challenge.
    pub decision: Decision,
    /// The user Basic credentials named (whether or not it exists); `None` for a token.
    pub user: Option<String>,
    /// Why they were refused, in words; never a secret.
    pub why: String,
}

/// The answer for one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// 401 UNAUTHORIZED with this `WWW-Authenticate` value.
    Unauthorized {
        challenge: String,
    },
    /// 403 DENIED.
    Denied,
}

impl Authority {
    /// The authority the settings describe; `None` when no authentication is configured (berth is then open
    /// to everyone, as registry:2 without `auth`).
    pub fn new(settings: &Settings) -> Result<Option<Authority>, Error> {
        let authn = match (&settings.htpasswd, &settings.token) {
            (Some(_), Some(_)) => {
                return Err(Error::config(
                    "auth",
                    "configure one of htpasswd and token, not both",
                ));
            }
            (Some(h), None) => {
                if h.realm.is_empty() {
                    return Err(Error::config(
                        "auth.htpasswd.realm",
                        "required with auth.htpasswd",
                    ));
                }
                Authn::Htpasswd {
                    realm: h.realm.clone(),
                    file: Htpasswd::load(&h.path)?,
                }
            }
            (None, Some(t)) => Authn::Token {
                realm: t.realm.clone(),
                service: t.service.clone(),
                verifier: TokenVerifier::load(t)?,
            },
            (None, None) => {
                if settings.access.is_some() {
                    return Err(Error::config(
                        "access",
                        "an access policy needs auth.htpasswd or auth.token to know who is asking",
                    ));
                }
                return Ok(None);
            }
        };
        Ok(Some(Authority {
            authn,
            policy: Policy::load(settings.access.as_ref())?,
        }))
    }

    /// Checks the `Authorization` header. `Err` is the 401 for credentials that are wrong.
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Caller, Decision> {
        self.check_credentials(authorization)
            .await
            .map_err(|refused| refused.decision)
    }

    /// [`authenticate`](Self::authenticate), with what a refusal was about: the user the credentials
    /// named (Basic's; a token that does not verify names nobody) and why, for the audit log. Neither
    /// holds a secret.
    pub async fn check_credentials(
        &self,
        authorization: Option<&str>,
    ) -> Result<Caller, WrongCredentials> {
        let credentials = Credentials::parse(authorization);
        let refused = |user: Option<String>, why: String| WrongCredentials {
            decision: Decision::Unauthorized {
                challenge: self.challenge(&[], false),
            },
            user,
            why,
        };
        match (&self.authn, credentials) {
            (_, Credentials::None) => Ok(Caller::anonymous()),
            (Authn::Htpasswd { file, .. }, Credentials::Basic { user, password }) => {
                if file.verify(&user, &password).await {
                    Ok(Caller {
                        identity: Identity::User(user),
                        grants: None,
                    })
                } else {
                    tracing::info!(user = %user, "authentication failed: wrong password or unknown user");
                    Err(refused(
                        Some(user),
                        "wrong password or unknown user".to_string(),
                    ))
                }
            }
            (Authn::Token { .. }, Credentials::Bearer(token)) => {
                self.verify_token(&token).map_err(|why| refused(None, why))
            }
            (_, other) => {
                tracing::info!(credentials = ?other, "credentials of a kind this registry does not take");
                let user = match other {
                    Credentials::Basic { user, .. } => Some(user),
                    _ => None,
                };
                Err(refused(
                    user,
                    "credentials of a kind this registry does not take".to_string(),
                ))
            }
        }
    }

    /// Whether callers authenticate with the token service's tokens (`auth.token`): the web interface
    /// then signs people in through that service (`token_service.rs`).
    pub fn takes_tokens(&self) -> bool {
        matches!(self.authn, Authn::Token { .. })
    }

    /// The caller a bearer token (the text after `Bearer `) makes: what the API does with a request's
    /// token, for tokens berth obtained itself on a person's behalf. `Err` says why it was refused
    /// (never the token); with `auth.htpasswd` every token is refused.
    pub fn verify_token(&self, token: &str) -> Result<Caller, String> {
        let Authn::Token { verifier, .. } = &self.authn else {
            return Err("this registry takes no bearer tokens".to_string());
        };
        match verifier.verify(token) {
            Ok(t) => Ok(Caller {
                identity: Identity::User(t.subject.unwrap_or_default()),
                grants: Some(t.grants),
            }),
            Err(why) => {
                tracing::info!(reason = %why, "bearer token refused");
                Err(format!("bearer token refused: {why}"))
            }
        }
    }

    /// Whether `caller` may do everything `wants` lists.
    pub fn authorize(&self, caller: &Caller, wants: &[Scope]) -> Decision {
        self.authorize_asking(caller, wants, &[])
    }

    /// [`authorize`](Self::authorize), with a challenge that also names `optional`: scopes the request
    /// can use but does not need (a mount's source, which turns the request into a plain upload when it
    /// is missing), so that a token client asks for them too.
    pub fn authorize_asking(
        &self,
        caller: &Caller,
        wants: &[Scope],
        optional: &[Scope],
    ) -> Decision {
        let allowed = if wants.is_empty() {
            // GET /v2/: every authenticated caller; anonymous ones only where the base is open.
            caller.identity != Identity::Anonymous
                || (matches!(self.authn, Authn::Htpasswd { .. }) && self.policy.openbase())
        } else {
            wants.iter().all(|scope| self.permits(caller, scope))
        };
        if allowed {
            return Decision::Allow;
        }
        let asked: Vec<Scope> = wants.iter().chain(optional).cloned().collect();
        match (&caller.identity, &caller.grants) {
            (Identity::Anonymous, _) => Decision::Unauthorized {
                challenge: self.challenge(&asked, false),
            },
            (Identity::User(_), Some(_)) => Decision::Unauthorized {
                challenge: self.challenge(&asked, true),
            },
            (Identity::User(_), None) => Decision::Denied,
        }
    }

    /// Whether `caller` may do `action` on `repo`.
    pub fn may(&self, caller: &Caller, repo: &str, action: Action) -> bool {
        match &caller.grants {
            Some(grants) => grants.allows(repo, action) || self.policy.allows(None, repo, action),
            None => self.policy.allows(caller.identity.user(), repo, action),
        }
    }

    /// Whether `repo` appears in `caller`'s catalog: the repositories it may pull, or all of them for a
    /// token granting `registry:catalog:*` (the token service decided that caller may see the registry).
    pub fn lists(&self, caller: &Caller, repo: &str) -> bool {
        caller.grants.as_ref().is_some_and(Grants::catalog) || self.may(caller, repo, Action::Pull)
    }

    /// Whether `caller` may see figures of the whole registry (what every repository stores, what
    /// garbage collection would free): a token granting `registry:catalog:*`, or a user the policy lets
    /// pull every repository ([`Policy::pulls_everything`](crate::policy::Policy::pulls_everything)).
    pub fn sees_registry(&self, caller: &Caller) -> bool {
        match &caller.grants {
            Some(grants) => grants.catalog(),
            None => self.policy.pulls_everything(caller.identity.user()),
        }
    }

    fn permits(&self, caller: &Caller, scope: &Scope) -> bool {
        match scope {
            Scope::Repository { name, actions } => {
                actions.iter().all(|a| self.may(caller, name, *a))
            }
            Scope::Catalog => match (&caller.identity, &caller.grants) {
                // A token must carry the catalog scope, as registry:2 asks.
                (_, Some(grants)) => grants.catalog(),
                // Any htpasswd user, filtered to what they may pull.
                (Identity::User(_), None) => true,
                (Identity::Anonymous, None) => self.policy.anonymous_has_rights(),
            },
        }
    }

    /// The `WWW-Authenticate` value for a request needing `wants`.
    pub fn challenge(&self, wants: &[Scope], insufficient: bool) -> String {
        match &self.authn {
            Authn::Htpasswd { realm, .. } => challenge::basic(realm),
            Authn::Token { realm, service, .. } => {
                challenge::bearer(realm, service, wants, insufficient)
            }
        }
    }
}

#[cfg(test)]
#[path = "authority/tests.rs"]
mod tests;
