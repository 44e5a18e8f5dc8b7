//! The `auth` section (registry:2's `htpasswd` and `token` providers) and berth's own `access` section,
//! read raw and then turned into the plain [`auth::Settings`] the auth crate is built from.
//!
//! The scalar keys follow the rest of the configuration: text as read, overridable by registry:2's
//! variables (`REGISTRY_AUTH_HTPASSWD_PATH`, `REGISTRY_AUTH_TOKEN_ISSUER`, ...), errors naming the key.
//! `access` holds lists (rules, groups), which no environment variable can express; it is read from the
//! file with unknown fields refused, so a typo (`repos:` for `repositories:`) stops the start instead of
//! silently granting nothing. Only `access.openbase` has a variable, `REGISTRY_ACCESS_OPENBASE`.
//! What the values mean (patterns, actions, groups, key files) is checked by `auth::Authority::new`.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use serde::Deserialize;
use serde_yaml::Value;

use super::{ConfigError, Setting, parse_bool, scalar};

/// The scalar keys and their variables.
const SCALARS: &[(&str, &str)] = &[
    ("auth.htpasswd.realm", "REGISTRY_AUTH_HTPASSWD_REALM"),
    ("auth.htpasswd.path", "REGISTRY_AUTH_HTPASSWD_PATH"),
    ("auth.token.realm", "REGISTRY_AUTH_TOKEN_REALM"),
    ("auth.token.service", "REGISTRY_AUTH_TOKEN_SERVICE"),
    ("auth.token.issuer", "REGISTRY_AUTH_TOKEN_ISSUER"),
    (
        "auth.token.rootcertbundle",
        "REGISTRY_AUTH_TOKEN_ROOTCERTBUNDLE",
    ),
    ("auth.token.jwks", "REGISTRY_AUTH_TOKEN_JWKS"),
    ("access.openbase", "REGISTRY_ACCESS_OPENBASE"),
];

/// Keys of the file this module reads (for the unknown-key report); `access` is read whole.
pub const KNOWN: &[&str] = &[
    "auth.htpasswd.realm",
    "auth.htpasswd.path",
    "auth.token.realm",
    "auth.token.service",
    "auth.token.issuer",
    "auth.token.rootcertbundle",
    "auth.token.jwks",
    "access",
];

/// `auth` and `access` as read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawAuth {
    scalars: BTreeMap<&'static str, Setting>,
    /// `access`, without `openbase` (a scalar above).
    access: Option<RawAccess>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAccess {
    #[serde(default)]
    openbase: Option<Value>,
    #[serde(default)]
    groups: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    rules: Vec<RawRule>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(default)]
    repositories: Vec<String>,
    #[serde(default)]
    actions: Vec<String>,
    #[serde(default)]
    users: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
    #[serde(default)]
    anonymous: bool,
}

impl RawAuth {
    /// Reads the sections from the file's top-level mapping.
    pub fn from_yaml(root: &Value) -> Result<RawAuth, ConfigError> {
        let mut scalars = BTreeMap::new();
        for (key, _) in SCALARS {
            if let Some(s) = scalar(root, key)? {
                scalars.insert(*key, s);
            }
        }
        let access = match root.get("access") {
            None | Some(Value::Null) => None,
            Some(v) => Some(serde_yaml::from_value::<RawAccess>(v.clone()).map_err(|e| {
                ConfigError::Invalid {
                    key: "access".to_string(),
                    reason: e.to_string(),
                }
            })?),
        };
        Ok(RawAuth { scalars, access })
    }

    /// Applies the `REGISTRY_AUTH_*` / `REGISTRY_ACCESS_OPENBASE` overrides; empty variables count as unset.
    pub fn apply_env(&mut self, env: &HashMap<String, String>) {
        for (key, var) in SCALARS {
            if let Some(text) = env.get(*var).filter(|v| !v.is_empty()) {
                self.scalars.insert(
                    key,
                    Setting {
                        text: text.clone(),
                        from: var.to_string(),
                    },
                );
            }
        }
    }

    pub fn validate(&self) -> Result<auth::Settings, ConfigError> {
        let get = |key: &str| self.scalars.get(key);
        let required = |section: &str, key: &str| -> Result<String, ConfigError> {
            match get(key) {
                Some(s) if !s.text.trim().is_empty() => Ok(s.text.clone()),
                Some(s) => Err(s.invalid("must not be empty")),
                None => Err(ConfigError::Invalid {
                    key: key.to_string(),
                    reason: format!("required with {section}"),
                }),
            }
        };
        let has = |prefix: &str| self.scalars.keys().any(|k| k.starts_with(prefix));

        let htpasswd = if has("auth.htpasswd.") {
            Some(auth::HtpasswdSettings {
                realm: required("auth.htpasswd", "auth.htpasswd.realm")?,
                path: PathBuf::from(required("auth.htpasswd", "auth.htpasswd.path")?),
            })
        } else {
            None
        };
        let token = if has("auth.token.") {
            let path = |key: &str| get(key).map(|s| PathBuf::from(&s.text));
            Some(auth::TokenSettings {
                realm: required("auth.token", "auth.token.realm")?,
                service: required("auth.token", "auth.token.service")?,
                issuer: required("auth.token", "auth.token.issuer")?,
                rootcertbundle: path("auth.token.rootcertbundle"),
                jwks: path("auth.token.jwks"),
            })
        } else {
            None
        };
        let openbase = match get("access.openbase") {
            Some(s) => {
                Some(parse_bool(&s.text).ok_or_else(|| s.invalid("expected true or false"))?)
            }
            None => None,
        };
        let access = match (&self.access, openbase) {
            (None, None) => None,
            (raw, openbase) => {
                let raw = raw.clone().unwrap_or_default();
                Some(auth::AccessSettings {
                    openbase: openbase.unwrap_or(false),
                    groups: raw.groups,
                    rules: raw
                        .rules
                        .into_iter()
                        .map(|r| auth::RuleSettings {
                            repositories: r.repositories,
                            actions: r.actions,
                            users: r.users,
                            groups: r.groups,
                            anonymous: r.anonymous,
                        })
                        .collect(),
                })
            }
        };
        Ok(auth::Settings {
            htpasswd,
            token,
            access,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(yaml: &str, env: &[(&str, &str)]) -> Result<auth::Settings, ConfigError> {
        let root: Value = serde_yaml::from_str(yaml).unwrap();
        let mut raw = RawAuth::from_yaml(&root)?;
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        raw.apply_env(&env);
        raw.validate()
    }

    #[test]
    fn reads_registry2_htpasswd() {
        let s = load(
            "auth:\n  htpasswd:\n    realm: Registry Realm\n    path: /auth/htpasswd\n",
            &[],
        )
        .unwrap();
        assert_eq!(
            s.htpasswd,
            Some(auth::HtpasswdSettings {
                realm: "Registry Realm".to_string(),
                path: PathBuf::from("/auth/htpasswd"),
            })
        );
        assert_eq!(s.token, None);
        assert_eq!(s.access, None);
    }

    #[test]
    fn env_overrides_win_and_can_configure_alone() {
        let s = load(
            "auth:\n  htpasswd:\n    realm: r\n    path: /file\n",
            &[("REGISTRY_AUTH_HTPASSWD_PATH", "/from/env")],
        )
        .unwrap();
        assert_eq!(s.htpasswd.unwrap().path, PathBuf::from("/from/env"));
        let s = load(
            "",
            &[
                ("REGISTRY_AUTH_HTPASSWD_REALM", "r"),
                ("REGISTRY_AUTH_HTPASSWD_PATH", "/p"),
            ],
        )
        .unwrap();
        assert!(s.htpasswd.is_some());
    }

    #[test]
    fn reads_token_settings() {
        let s = load(
            "auth:\n  token:\n    realm: https://auth.example/token\n    service: registry.example\n    \
             issuer: example-issuer\n    rootcertbundle: /certs/bundle.pem\n",
            &[("REGISTRY_AUTH_TOKEN_JWKS", "/certs/jwks.json")],
        )
        .unwrap();
        let t = s.token.unwrap();
        assert_eq!(t.service, "registry.example");
        assert_eq!(t.rootcertbundle, Some(PathBuf::from("/certs/bundle.pem")));
        assert_eq!(t.jwks, Some(PathBuf::from("/certs/jwks.json")));
    }

    #[test]
    fn reads_the_access_section() {
        let s = load(
            r#"
access:
  openbase: false
  groups:
    admins: [alice]
  rules:
    - repositories: ["**"]
      actions: [pull]
      anonymous: true
    - repositories: ["team-a/*"]
      actions: [pull, push]
      users: [bob]
      groups: [admins]
"#,
            &[("REGISTRY_ACCESS_OPENBASE", "true")],
        )
        .unwrap();
        let a = s.access.unwrap();
        assert!(a.openbase);
        assert_eq!(a.groups["admins"], ["alice"]);
        assert_eq!(a.rules.len(), 2);
        assert!(a.rules[0].anonymous);
        assert_eq!(a.rules[1].users, ["bob"]);
        assert_eq!(a.rules[1].actions, ["pull", "push"]);
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            ("auth:\n  htpasswd:\n    path: /p\n", "auth.htpasswd.realm"),
            ("auth:\n  htpasswd:\n    realm: r\n", "auth.htpasswd.path"),
            (
                "auth:\n  htpasswd:\n    realm: r\n    path: ''\n",
                "auth.htpasswd.path",
            ),
            (
                "auth:\n  token:\n    realm: r\n    service: s\n",
                "auth.token.issuer",
            ),
            ("access:\n  rules:\n    - repos: ['**']\n", "access"),
            ("access:\n  openbase: maybe\n", "access.openbase"),
            (
                "auth:\n  htpasswd:\n    realm: [a, b]\n",
                "auth.htpasswd.realm",
            ),
        ];
        for (yaml, key) in cases {
            let err = load(yaml, &[]).unwrap_err().to_string();
            assert!(err.starts_with(key), "{yaml}: {err}");
        }
        let err = load("access:\n  rules:\n    - repos: ['**']\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("repos"), "{err}");
    }
}
