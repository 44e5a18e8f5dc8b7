//! Who is asking, and what they may do: berth's authentication and authorization, with no HTTP types.
//!
//! The HTTP layer hands this crate the `Authorization` header and the list of [`Scope`]s a request needs
//! (which repository, which [`Action`]s); the [`Authority`] answers with a [`Decision`]: go ahead, a 401
//! with the challenge a client needs to authenticate, or 403 DENIED. Keeping the rules here, free of any
//! framework, lets them be tested as plain tables and keeps the middleware a thin translation.
//!
//! Two ways to authenticate, as registry:2 offers them (one at a time):
//! - [`htpasswd`]: Basic credentials checked against a file of bcrypt entries, reloaded when it changes;
//!   bcrypt runs off the async threads and successes are cached briefly ([`cache`]);
//! - [`token`]: JWTs issued by an external token service per Docker's token specification, whose
//!   `access` claim grants actions per repository.
//!
//! What an authenticated user (or an anonymous caller) may do on which repository is berth's own
//! [`policy`], from the `access:` section: rules mapping users and groups to repository patterns.
//!
//! Nothing secret leaves this crate in an error or a log line: passwords, tokens and hashes are never
//! formatted, and load errors name the line or key, not its contents.

use std::fmt;
use std::str::FromStr;

pub mod authority;
pub mod challenge;
pub mod credentials;
pub mod error;
pub mod htpasswd;
pub mod policy;
pub mod recent;
pub mod settings;
pub mod token;
pub mod token_service;

pub use authority::{Authority, Caller, Decision, WrongCredentials};
pub use error::Error;
pub use settings::{AccessSettings, HtpasswdSettings, RuleSettings, Settings, TokenSettings};
pub use token_service::{IssueError, Issued, TokenService};

/// Something a caller does to a repository.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// Read manifests, blobs, tags and referrers.
    Pull,
    /// Upload blobs, mount them, put manifests.
    Push,
    /// Delete manifests, tags and blobs.
    Delete,
}

impl Action {
    pub const ALL: [Action; 3] = [Action::Pull, Action::Push, Action::Delete];

    /// The name used in configuration, in token scopes and in the `access` claim.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Pull => "pull",
            Action::Push => "push",
            Action::Delete => "delete",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Action {
    type Err = String;

    fn from_str(s: &str) -> Result<Action, String> {
        match s {
            "pull" => Ok(Action::Pull),
            "push" => Ok(Action::Push),
            "delete" => Ok(Action::Delete),
            other => Err(format!("{other:?} is not an action (pull, push or delete)")),
        }
    }
}

/// What one request needs, in the terms of Docker's token scopes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// `repository:<name>:<actions>`: every listed action on the repository.
    Repository { name: String, actions: Vec<Action> },
    /// `registry:catalog:*`: listing the repositories.
    Catalog,
}

impl Scope {
    /// A repository scope.
    pub fn repository(name: impl Into<String>, actions: &[Action]) -> Scope {
        Scope::Repository {
            name: name.into(),
            actions: actions.to_vec(),
        }
    }
}

impl fmt::Display for Scope {
    /// The scope as a token request and a challenge spell it: `repository:team/app:pull,push`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Repository { name, actions } => {
                write!(f, "repository:{name}:")?;
                for (i, action) in actions.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    f.write_str(action.as_str())?;
                }
                Ok(())
            }
            Scope::Catalog => f.write_str("registry:catalog:*"),
        }
    }
}

/// Who a request comes from, once its credentials were checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Identity {
    /// No credentials (or the empty ones clients send when they have none).
    Anonymous,
    /// A user whose password or token checked out.
    User(String),
}

impl Identity {
    /// The user's name, `None` when anonymous.
    pub fn user(&self) -> Option<&str> {
        match self {
            Identity::Anonymous => None,
            Identity::User(name) => Some(name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_parse_and_print() {
        for action in Action::ALL {
            assert_eq!(action.as_str().parse::<Action>(), Ok(action));
        }
        assert!("PULL".parse::<Action>().is_err());
        assert!("*".parse::<Action>().is_err());
    }

    #[test]
    fn scopes_print_as_token_scopes() {
        let s = Scope::repository("team/app", &[Action::Pull, Action::Push]);
        assert_eq!(s.to_string(), "repository:team/app:pull,push");
        assert_eq!(Scope::Catalog.to_string(), "registry:catalog:*");
    }
}
