//! The `auth` section (registry:2's `htpasswd` and `token` providers) and berth's own `access` section,
//! read raw and turned into the plain [`auth::Settings`] the auth crate is built from.
//!
//! Scalars follow the rest of the configuration: text as read, overridable by registry:2's variables
//! (`REGISTRY_AUTH_HTPASSWD_PATH`, `REGISTRY_AUTH_TOKEN_ISSUER`, `REGISTRY_ACCESS_OPENBASE`, ...), errors
//! naming the key. `access` is stricter than the rest: an unknown key there is an error, not a warning,
//! so a typo (`repos:` for `repositories:`) stops the start instead of silently granting nothing. What the
//! values mean (patterns, actions, groups, key files) is checked by `auth::Authority::new`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::read::{Ctx, Section, Setting, non_empty, parse_or, scalars};
use super::values::parse_bool;
use super::yaml::{NOTHING, Node, Printed, flag, seq, text};
use super::{ConfigError, WarningKind, mapping};

/// `auth` and `access` as read.
#[derive(Debug, Default)]
struct RawAuth {
    /// `auth.htpasswd`, when the key is there (even empty: then its keys are missing, an error).
    htpasswd: Option<RawHtpasswd>,
    token: Option<RawToken>,
    openbase: Option<Setting>,
    /// `access` is present.
    access: bool,
    groups: BTreeMap<String, Vec<Setting>>,
    rules: Vec<RawRule>,
}

#[derive(Debug, Default)]
struct RawHtpasswd {
    realm: Option<Setting>,
    path: Option<Setting>,
}

#[derive(Debug, Default)]
struct RawToken {
    realm: Option<Setting>,
    service: Option<Setting>,
    issuer: Option<Setting>,
    rootcertbundle: Option<Setting>,
    jwks: Option<Setting>,
    signing_algorithms: Vec<Setting>,
}

#[derive(Debug, Default)]
struct RawRule {
    repositories: Vec<Setting>,
    actions: Vec<Setting>,
    users: Vec<Setting>,
    groups: Vec<Setting>,
    anonymous: Option<Setting>,
}

/// Reads `auth` and `access` from the top level.
pub fn read(top: &mut Section<'_>) -> Result<auth::Settings, ConfigError> {
    let ctx = top.ctx();
    let mut raw = RawAuth::default();
    let mut a = top.section("auth")?;
    let providers: Vec<String> = a.keys().map(str::to_string).collect();
    if a.keys().any(|k| k == "htpasswd") {
        let mut h = a.section("htpasswd")?;
        raw.htpasswd = Some(RawHtpasswd {
            realm: h.scalar("realm")?,
            path: h.scalar("path")?,
        });
        h.finish();
    }
    if a.keys().any(|k| k == "token") {
        let mut t = a.section("token")?;
        raw.token = Some(RawToken {
            realm: t.scalar("realm")?,
            service: t.scalar("service")?,
            issuer: t.scalar("issuer")?,
            rootcertbundle: t.scalar("rootcertbundle")?,
            jwks: t.scalar("jwks")?,
            signing_algorithms: list(&mut t, "signingalgorithms")?,
        });
        for key in ["autoredirect", "autoredirectpath"] {
            t.ignore(key, "not supported by berth's token authentication");
        }
        t.finish();
    }
    if a.keys().any(|k| k == "silly") {
        let origin = a.origin("silly");
        a.accept("silly");
        ctx.warn(
            &origin,
            WarningKind::Ignored,
            "registry:2's test-only silly authentication is not supported by berth",
        );
    }
    a.finish();
    // An `auth` section is a request for authentication: one berth cannot honour (a typo such as
    // `htpaswd`, a provider it lacks) must not start an open registry. registry:2 refuses it too.
    if !providers.is_empty() && raw.htpasswd.is_none() && raw.token.is_none() {
        return Err(ConfigError::Malformed {
            key: "auth".into(),
            reason: format!(
                "names no authentication berth has ({}); berth authenticates with htpasswd or \
                 token, and does not start an open registry when auth is configured",
                providers.join(", ")
            ),
        });
    }

    raw.access = top.keys().any(|k| k == "access");
    let mut access = top.section("access")?;
    raw.openbase = access.scalar("openbase")?;
    for (name, node, origin) in access.entries("groups")? {
        raw.groups.insert(name, scalars(node, &origin)?);
    }
    if let Some((node, origin)) = access.node("rules") {
        let Node::Seq(items) = node else {
            return Err(ConfigError::Malformed {
                key: origin.to_string(),
                reason: format!("expected a list of rules, found {}", node.kind()),
            });
        };
        for (i, item) in items.iter().enumerate() {
            let path = vec!["access".into(), "rules".into(), i.to_string()];
            let mut r = Section::new(ctx, path, item)?;
            let rule = RawRule {
                repositories: list(&mut r, "repositories")?,
                actions: list(&mut r, "actions")?,
                users: list(&mut r, "users")?,
                groups: list(&mut r, "groups")?,
                anonymous: r.scalar("anonymous")?,
            };
            r.finish_strict()?;
            raw.rules.push(rule);
        }
    }
    access.finish_strict()?;
    raw.validate(ctx)
}

/// A value or list of values; none when absent.
fn list(s: &mut Section<'_>, key: &str) -> Result<Vec<Setting>, ConfigError> {
    Ok(s.strings(key)?.unwrap_or_default())
}

/// registry:3's `signingalgorithms`, checked by the auth crate's rules (`auth::token::algorithms`).
/// ES512 is one of registry:3's names berth cannot verify: warned and left out.
fn signing_algorithms(ctx: &Ctx, settings: &[Setting]) -> Result<Vec<String>, ConfigError> {
    let mut names = Vec::new();
    for s in settings {
        let name = s.text.trim();
        if auth::token::algorithms::UNSUPPORTED.contains(&name) {
            ctx.warn(
                &s.origin,
                WarningKind::Adjusted,
                format!("{name} is left out: berth's JWT library has no P-521"),
            );
            continue;
        }
        s.parse(|_| auth::token::algorithms::parse(&[name.to_string()]).map(|_| ()))?;
        names.push(name.to_string());
    }
    if names.is_empty() && !settings.is_empty() {
        return Err(ConfigError::Malformed {
            key: settings[0].origin.to_string(),
            reason: "names no algorithm berth can verify".into(),
        });
    }
    Ok(names)
}

impl RawAuth {
    fn validate(self, ctx: &Ctx) -> Result<auth::Settings, ConfigError> {
        let required = |s: &Option<Setting>, key: &str, section: &str| {
            non_empty(s)?.ok_or_else(|| ConfigError::Malformed {
                key: key.to_string(),
                reason: format!("required with {section}"),
            })
        };
        let htpasswd = match self.htpasswd {
            None => None,
            Some(h) => Some(auth::HtpasswdSettings {
                realm: required(&h.realm, "auth.htpasswd.realm", "auth.htpasswd")?,
                path: PathBuf::from(required(&h.path, "auth.htpasswd.path", "auth.htpasswd")?),
            }),
        };
        let token = match self.token {
            None => None,
            Some(t) => Some(auth::TokenSettings {
                realm: required(&t.realm, "auth.token.realm", "auth.token")?,
                service: required(&t.service, "auth.token.service", "auth.token")?,
                issuer: required(&t.issuer, "auth.token.issuer", "auth.token")?,
                rootcertbundle: non_empty(&t.rootcertbundle)?.map(PathBuf::from),
                jwks: non_empty(&t.jwks)?.map(PathBuf::from),
                signing_algorithms: signing_algorithms(ctx, &t.signing_algorithms)?,
            }),
        };
        let texts = |v: Vec<Setting>| v.into_iter().map(|s| s.text).collect::<Vec<_>>();
        let access = if self.access || self.openbase.is_some() {
            let mut rules = Vec::with_capacity(self.rules.len());
            for r in self.rules {
                rules.push(auth::RuleSettings {
                    anonymous: parse_or(&r.anonymous, false, parse_bool)?,
                    repositories: texts(r.repositories),
                    actions: texts(r.actions),
                    users: texts(r.users),
                    groups: texts(r.groups),
                });
            }
            Some(auth::AccessSettings {
                openbase: parse_or(&self.openbase, false, parse_bool)?,
                groups: self
                    .groups
                    .into_iter()
                    .map(|(name, users)| (name, texts(users)))
                    .collect(),
                rules,
            })
        } else {
            None
        };
        Ok(auth::Settings {
            htpasswd,
            token,
            access,
        })
    }
}

/// The `auth` and `access` sections of the effective configuration (absent when not configured).
pub fn to_yaml(settings: &auth::Settings) -> Vec<(&'static str, Printed)> {
    let path = |p: &PathBuf| text(p.display().to_string());
    let strings = |v: &[String]| seq(v.iter().map(|s| text(s.as_str())));
    let mut providers = Vec::new();
    if let Some(h) = &settings.htpasswd {
        providers.push((
            "htpasswd",
            mapping([("realm", text(h.realm.as_str())), ("path", path(&h.path))]),
        ));
    }
    if let Some(t) = &settings.token {
        providers.push((
            "token",
            mapping([
                ("realm", text(t.realm.as_str())),
                ("service", text(t.service.as_str())),
                ("issuer", text(t.issuer.as_str())),
                (
                    "rootcertbundle",
                    t.rootcertbundle.as_ref().map_or(NOTHING, path),
                ),
                ("jwks", t.jwks.as_ref().map_or(NOTHING, path)),
                ("signingalgorithms", strings(&t.signing_algorithms)),
            ]),
        ));
    }
    let mut out = Vec::new();
    if !providers.is_empty() {
        out.push(("auth", mapping(providers)));
    }
    if let Some(a) = &settings.access {
        let groups = a
            .groups
            .iter()
            .map(|(name, users)| (name.as_str(), strings(users)));
        let rules = a.rules.iter().map(|r| {
            mapping([
                ("repositories", strings(&r.repositories)),
                ("actions", strings(&r.actions)),
                ("users", strings(&r.users)),
                ("groups", strings(&r.groups)),
                ("anonymous", flag(r.anonymous)),
            ])
        });
        out.push((
            "access",
            mapping([
                ("openbase", flag(a.openbase)),
                ("groups", mapping(groups)),
                ("rules", seq(rules)),
            ]),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn load(yaml: &str, env: &[(&str, &str)]) -> Result<auth::Settings, ConfigError> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        super::super::load(Some(yaml), &env).map(|l| l.config.auth)
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
      users: [bob, "0123"]
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
        assert_eq!(a.rules[0].repositories, ["**"]);
        assert_eq!(a.rules[1].users, ["bob", "0123"]);
        assert_eq!(a.rules[1].actions, ["pull", "push"]);
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            ("auth:\n  htpasswd:\n    path: /p\n", "auth.htpasswd.realm"),
            ("auth:\n  htpasswd:\n    realm: r\n", "auth.htpasswd.path"),
            ("auth:\n  htpasswd:\n", "auth.htpasswd.realm"),
            (
                "auth:\n  htpasswd:\n    realm: r\n    path: ''\n",
                "auth.htpasswd.path",
            ),
            (
                "auth:\n  token:\n    realm: r\n    service: s\n",
                "auth.token.issuer",
            ),
            (
                "access:\n  rules:\n    - repos: ['**']\n",
                "access.rules.0.repos",
            ),
            ("access:\n  rule: []\n", "access.rule"),
            ("access:\n  rules: {a: 1}\n", "access.rules"),
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
    }

    #[test]
    fn effective_yaml_round_trips() {
        let text = "auth:\n  htpasswd:\n    realm: r\n    path: /p\naccess:\n  rules:\n    - repositories: ['a/*']\n      actions: [pull]\n      anonymous: true\n";
        let s = load(text, &[]).unwrap();
        let printed = crate::config::yaml::to_string(&mapping(to_yaml(&s))).unwrap();
        assert_eq!(load(&printed, &[]).unwrap(), s);
    }
}
