//! The plain settings this crate is built from: the configuration's `auth:` and `access:` sections once
//! read and typed by the binary. They are plain data so that the configuration code (which owns file
//! formats, environment overrides and key names) and this crate (which owns what the values mean) meet at
//! one small interface. [`crate::Authority::new`] checks everything the configuration layer cannot know:
//! patterns, action names, groups, key files.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// Authentication and access policy. With neither `htpasswd` nor `token`, berth is open to everyone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    /// `auth.htpasswd`.
    pub htpasswd: Option<HtpasswdSettings>,
    /// `auth.token`.
    pub token: Option<TokenSettings>,
    /// `access`, berth's own section (registry:2 ignores it).
    pub access: Option<AccessSettings>,
}

/// `auth.htpasswd`: Basic authentication against a file of bcrypt entries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HtpasswdSettings {
    /// `realm`: shown by the Basic challenge.
    pub realm: String,
    /// `path`: the htpasswd file (`user:$2y$...` lines).
    pub path: PathBuf,
}

/// `auth.token`: bearer tokens issued by an external token service (Docker's token specification).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenSettings {
    /// `realm`: the token service's URL, sent in the challenge.
    pub realm: String,
    /// `service`: this registry's name; tokens must carry it in `aud`.
    pub service: String,
    /// `issuer`: tokens must carry it in `iss`.
    pub issuer: String,
    /// `rootcertbundle`: PEM certificates whose keys verify token signatures.
    pub rootcertbundle: Option<PathBuf>,
    /// `jwks`: a JSON Web Key Set file of verification keys.
    pub jwks: Option<PathBuf>,
    /// registry:3's `signingalgorithms`, as written (`EdDSA`, `RS256`, ...); empty: berth's default,
    /// every asymmetric algorithm (see `token::algorithms`).
    pub signing_algorithms: Vec<String>,
}

/// `access`: who may do what where.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessSettings {
    /// `openbase`: answer `GET /v2/` with 200 to callers without credentials instead of a challenge.
    pub openbase: bool,
    /// `groups`: group name -> user names.
    pub groups: BTreeMap<String, Vec<String>>,
    /// `rules`: when empty, every authenticated user may do everything (registry:2's behaviour).
    pub rules: Vec<RuleSettings>,
}

/// One entry of `access.rules`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleSettings {
    /// `repositories`: patterns (`team-a/*`, `**`).
    pub repositories: Vec<String>,
    /// `actions`: `pull`, `push`, `delete`.
    pub actions: Vec<String>,
    /// `users`: user names; `*` is every authenticated user.
    pub users: Vec<String>,
    /// `groups`: names from `access.groups`.
    pub groups: Vec<String>,
    /// `anonymous`: the rule also applies to callers without credentials (hence to everyone).
    pub anonymous: bool,
}
