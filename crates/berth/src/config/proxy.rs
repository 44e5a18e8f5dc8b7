//! The `proxy` section: the pull-through cache.
//!
//! registry:2's keys (`remoteurl`, `username`, `password`, `ttl`) make berth a mirror of one upstream
//! for every repository, as docker's `registry-mirrors` and containerd's mirrors address it. registry:3's
//! `exec` (`command`, `lifetime`) runs a Docker credential helper for the upstream's credentials instead
//! of `username`/`password` (`upstream::CredentialHelper`). berth adds:
//! - `upstreams`: a list of `{prefix, remoteurl, username, password, exec}`, each mirroring one upstream under
//!   a name prefix (`localhost:5000/ghcr.io/org/app` is ghcr.io's `org/app`); names under no prefix are
//!   local repositories, pushed as usual, unless `remoteurl` is set too (then it mirrors them all);
//! - `revalidate`: how long a tag is served from the cache before the upstream is asked again (HEAD);
//! - `maxsize`: the most bytes the cache holds (least recently pulled evicted first). registry:2's `ttl`
//!   is the age limit, counted from the last pull rather than from the fetch.
//!
//! Docker Hub's rule (one-component names are `library/<name>`) applies to the `docker.io` prefix and
//! to upstreams on Docker Hub's hosts.

use std::time::Duration;

use super::read::{Ctx, Section, Setting, non_empty, parse_or};
use super::values::{format_duration, parse_duration, parse_size};
use super::yaml::{NOTHING, Node, Printed, seq, text};
use super::{ConfigError, Secret, WarningKind, mapping, masked};

/// registry:2's default `ttl`: cached content expires after a week.
pub const DEFAULT_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxySettings {
    /// `remoteurl`: `http(s)://host[:port]` of the upstream of every repository no prefix claims.
    pub remote_url: Option<String>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// registry:3's `exec`: a credential helper, used instead of `username`/`password`.
    pub exec: Option<upstream::CredentialHelper>,
    /// How long cached content lives without being pulled; `None` (`ttl: 0`): forever.
    pub ttl: Option<Duration>,
    /// berth's `maxsize`: most bytes the cache may hold (least recently pulled evicted first).
    pub max_size: Option<u64>,
    /// berth's `revalidate`: a tag confirmed by the upstream this recently is served without asking.
    pub revalidate: Duration,
    /// berth's `upstreams`: one upstream per name prefix.
    pub upstreams: Vec<UpstreamConfig>,
}

/// One upstream under a prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UpstreamConfig {
    /// The name prefix (`docker.io`), without slashes at its ends.
    pub prefix: String,
    pub remote_url: String,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub exec: Option<upstream::CredentialHelper>,
}

#[derive(Debug, Default)]
struct RawProxy {
    remote_url: Option<Setting>,
    username: Option<Setting>,
    password: Option<Setting>,
    exec: Option<RawExec>,
    ttl: Option<Setting>,
    max_size: Option<Setting>,
    revalidate: Option<Setting>,
    upstreams: Vec<RawUpstream>,
}

#[derive(Debug)]
struct RawUpstream {
    here: String,
    prefix: Option<Setting>,
    remote_url: Option<Setting>,
    username: Option<Setting>,
    password: Option<Setting>,
    exec: Option<RawExec>,
}

/// `exec` as read: where it is, `command`, `lifetime`.
#[derive(Debug)]
struct RawExec {
    here: String,
    command: Option<Setting>,
    lifetime: Option<Setting>,
}

/// `exec` of `s`, when present.
fn read_exec(s: &mut Section<'_>) -> Result<Option<RawExec>, ConfigError> {
    // Absent, or empty (`exec:`, as the effective configuration prints no helper): none.
    if s.node("exec").is_none() {
        return Ok(None);
    }
    let mut e = s.section("exec")?;
    let exec = RawExec {
        here: e.here().to_string(),
        command: e.scalar("command")?,
        lifetime: e.scalar("lifetime")?,
    };
    e.finish_strict()?;
    Ok(Some(exec))
}

impl RawExec {
    fn validate(&self) -> Result<upstream::CredentialHelper, ConfigError> {
        let command = non_empty(&self.command)?.ok_or_else(|| ConfigError::Malformed {
            key: format!("{}.command", self.here),
            reason: "required with exec: the credential helper to run".into(),
        })?;
        Ok(upstream::CredentialHelper {
            command: command.trim().to_string(),
            lifetime: self
                .lifetime
                .as_ref()
                .map(|l| l.parse(parse_duration))
                .transpose()?,
        })
    }
}

/// registry:3 ignores `username` and `password` beside `exec` without a word; berth says so.
fn unused_with_exec<'a>(ctx: &Ctx, settings: impl IntoIterator<Item = &'a Option<Setting>>) {
    for s in settings.into_iter().flatten() {
        ctx.warn(
            &s.origin,
            WarningKind::Adjusted,
            "not used: exec gives the upstream's credentials (as in registry:3)",
        );
    }
}

/// `None` when the section is absent.
pub fn read(mut s: Section<'_>) -> Result<Option<ProxySettings>, ConfigError> {
    let present = s.keys().next().is_some();
    let mut raw = RawProxy {
        remote_url: s.scalar("remoteurl")?,
        username: s.scalar("username")?,
        password: s.scalar("password")?,
        exec: None,
        ttl: s.scalar("ttl")?,
        max_size: s.scalar("maxsize")?,
        revalidate: s.scalar("revalidate")?,
        upstreams: Vec::new(),
    };
    raw.exec = read_exec(&mut s)?;
    let ctx = s.ctx();
    if raw.exec.is_some() {
        unused_with_exec(ctx, [&raw.username, &raw.password]);
    }
    if let Some((node, origin)) = s.node("upstreams") {
        let Node::Seq(items) = node else {
            return Err(ConfigError::Malformed {
                key: origin.to_string(),
                reason: format!("expected a list of upstreams, found {}", node.kind()),
            });
        };
        for (i, item) in items.iter().enumerate() {
            let path = vec!["proxy".into(), "upstreams".into(), i.to_string()];
            let mut u = Section::new(ctx, path, item)?;
            raw.upstreams.push(RawUpstream {
                here: u.here().to_string(),
                prefix: u.scalar("prefix")?,
                remote_url: u.scalar("remoteurl")?,
                username: u.scalar("username")?,
                password: u.scalar("password")?,
                exec: read_exec(&mut u)?,
            });
            if let Some(up) = raw.upstreams.last().filter(|up| up.exec.is_some()) {
                unused_with_exec(ctx, [&up.username, &up.password]);
            }
            u.finish_strict()?;
        }
    }
    s.finish();
    if !present {
        return Ok(None);
    }
    raw.validate().map(Some)
}

/// An upstream URL: `http(s)://host[:port][/path]`, without a trailing slash.
pub(super) fn url(s: &Setting) -> Result<String, ConfigError> {
    s.parse(|t| {
        let t = t.trim().trim_end_matches('/');
        let rest = t
            .strip_prefix("https://")
            .or_else(|| t.strip_prefix("http://"))
            .ok_or("expected an http:// or https:// URL")?;
        if rest.is_empty() || rest.contains(char::is_whitespace) {
            return Err("expected an http:// or https:// URL with a host".to_string());
        }
        Ok(t.to_string())
    })
}

impl RawProxy {
    fn validate(self) -> Result<ProxySettings, ConfigError> {
        if self.remote_url.is_none() && self.upstreams.is_empty() {
            return Err(ConfigError::Malformed {
                key: "proxy.remoteurl".into(),
                reason: "required with proxy (or proxy.upstreams)".into(),
            });
        }
        let mut upstreams: Vec<UpstreamConfig> = Vec::new();
        for u in self.upstreams {
            let missing = |key: &str| ConfigError::Malformed {
                key: format!("{}.{key}", u.here),
                reason: "required for each upstream".into(),
            };
            let prefix = u.prefix.as_ref().ok_or_else(|| missing("prefix"))?;
            let prefix = prefix.parse(|t| {
                let p = t.trim().trim_matches('/').to_ascii_lowercase();
                p.parse::<oci::RepoName>()
                    .map(|_| p.clone())
                    .map_err(|_| "expected a repository name prefix such as docker.io".to_string())
            })?;
            if upstreams.iter().any(|o| o.prefix == prefix) {
                return Err(ConfigError::Malformed {
                    key: format!("{}.prefix", u.here),
                    reason: format!("prefix {prefix} is configured twice"),
                });
            }
            let remote_url = url(u.remote_url.as_ref().ok_or_else(|| missing("remoteurl"))?)?;
            upstreams.push(UpstreamConfig {
                prefix,
                remote_url,
                username: non_empty(&u.username)?,
                password: u.password.map(|s| Secret::new(s.text)),
                exec: u.exec.as_ref().map(RawExec::validate).transpose()?,
            });
        }
        Ok(ProxySettings {
            remote_url: self.remote_url.as_ref().map(url).transpose()?,
            username: non_empty(&self.username)?,
            password: self.password.map(|s| Secret::new(s.text)),
            exec: self.exec.as_ref().map(RawExec::validate).transpose()?,
            ttl: match parse_or(&self.ttl, DEFAULT_TTL, parse_duration)? {
                d if d.is_zero() => None,
                d => Some(d),
            },
            max_size: self
                .max_size
                .as_ref()
                .map(|s| s.parse(parse_size))
                .transpose()?,
            revalidate: parse_or(
                &self.revalidate,
                registry::proxy::DEFAULT_REVALIDATE_AFTER,
                parse_duration,
            )?,
            upstreams,
        })
    }
}

/// How often eviction runs when `ttl` or `maxsize` asks for it.
pub const EVICTION_INTERVAL: Duration = Duration::from_secs(60);

/// Whether an upstream follows Docker Hub's `library/` rule: the `docker.io` prefix, or Docker Hub's
/// hosts.
pub fn official_library(prefix: &str, remote_url: &str) -> bool {
    let host = remote_url
        .split("://")
        .nth(1)
        .unwrap_or_default()
        .split(['/', ':'])
        .next()
        .unwrap_or_default();
    prefix == "docker.io"
        || matches!(
            host,
            "registry-1.docker.io" | "index.docker.io" | "docker.io" | "registry.hub.docker.com"
        )
}

impl ProxySettings {
    /// Eviction as `ttl` (not pulled for that long) and `maxsize` ask for it; `None` with neither.
    pub fn eviction(&self) -> Option<registry::proxy::Eviction> {
        (self.ttl.is_some() || self.max_size.is_some()).then_some(registry::proxy::Eviction {
            max_bytes: self.max_size,
            max_age: self.ttl,
            interval: EVICTION_INTERVAL,
        })
    }

    /// The cache's namespaces, each with its HTTP upstream (nothing is contacted yet). The prefixed
    /// upstreams, then `remoteurl` under the empty prefix (every other name).
    pub fn namespaces(&self) -> Result<Vec<registry::proxy::Namespace>, upstream::SettingsError> {
        let remote = self.remote_url.as_ref().map(|url| UpstreamConfig {
            prefix: String::new(),
            remote_url: url.clone(),
            username: self.username.clone(),
            password: self.password.clone(),
            exec: self.exec.clone(),
        });
        self.upstreams
            .iter()
            .chain(remote.as_ref())
            .map(|u| {
                let name = if u.prefix.is_empty() {
                    "remoteurl"
                } else {
                    &u.prefix
                };
                Ok(registry::proxy::Namespace {
                    prefix: u.prefix.clone(),
                    upstream: http_upstream(name, u)?,
                    official_library: official_library(&u.prefix, &u.remote_url),
                })
            })
            .collect()
    }

    pub fn to_yaml(&self) -> Printed {
        let mut entries = vec![
            (
                "remoteurl",
                self.remote_url.as_deref().map_or(NOTHING, text),
            ),
            ("username", self.username.as_deref().map_or(NOTHING, text)),
            ("password", masked(self.password.is_some())),
            ("exec", self.exec.as_ref().map_or(NOTHING, exec_yaml)),
            (
                "ttl",
                text(format_duration(self.ttl.unwrap_or(Duration::ZERO))),
            ),
            (
                "maxsize",
                self.max_size.map_or(NOTHING, |n| text(n.to_string())),
            ),
            ("revalidate", text(format_duration(self.revalidate))),
        ];
        if !self.upstreams.is_empty() {
            let upstreams = self.upstreams.iter().map(|u| {
                mapping([
                    ("prefix", text(u.prefix.as_str())),
                    ("remoteurl", text(u.remote_url.as_str())),
                    ("username", u.username.as_deref().map_or(NOTHING, text)),
                    ("password", masked(u.password.is_some())),
                    ("exec", u.exec.as_ref().map_or(NOTHING, exec_yaml)),
                ])
            });
            entries.push(("upstreams", seq(upstreams)));
        }
        mapping(entries)
    }
}

fn exec_yaml(e: &upstream::CredentialHelper) -> Printed {
    mapping([
        ("command", text(e.command.as_str())),
        (
            "lifetime",
            e.lifetime.map_or(NOTHING, |l| text(format_duration(l))),
        ),
    ])
}

/// The HTTP client of upstream `u`, named `name` in logs and metrics (the cache's, and replication's).
pub(super) fn http_upstream(
    name: &str,
    u: &UpstreamConfig,
) -> Result<std::sync::Arc<dyn registry::proxy::Upstream>, upstream::SettingsError> {
    let mut settings = upstream::Settings::new(name, &u.remote_url);
    settings.credentials = u.username.as_ref().map(|user| upstream::Credentials {
        username: user.clone(),
        password: u
            .password
            .as_ref()
            .map(|p| p.expose().to_string())
            .unwrap_or_default(),
    });
    settings.credential_helper = u.exec.clone();
    Ok(std::sync::Arc::new(upstream::HttpUpstream::new(&settings)?))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::super::{Secret, load};
    use super::*;

    fn proxy(yaml: &str) -> Result<ProxySettings, String> {
        load(Some(yaml), &HashMap::new())
            .map(|l| l.config.proxy.expect("a proxy section"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn upstreams_by_prefix_beside_or_without_remoteurl() {
        let p = proxy(
            "proxy:\n  revalidate: 5m\n  upstreams:\n    - prefix: docker.io/\n      remoteurl: https://registry-1.docker.io/\n      username: u\n      password: pw\n    - prefix: GHCR.io\n      remoteurl: https://ghcr.io\n",
        )
        .unwrap();
        assert_eq!(p.remote_url, None);
        assert_eq!(p.revalidate, Duration::from_secs(300));
        let got: Vec<(&str, &str, Option<&str>, Option<&str>)> = p
            .upstreams
            .iter()
            .map(|u| {
                (
                    u.prefix.as_str(),
                    u.remote_url.as_str(),
                    u.username.as_deref(),
                    u.password.as_ref().map(Secret::expose),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "docker.io",
                    "https://registry-1.docker.io",
                    Some("u"),
                    Some("pw")
                ),
                ("ghcr.io", "https://ghcr.io", None, None),
            ]
        );
        let namespaces = p.namespaces().unwrap();
        assert_eq!(namespaces.len(), 2);
        assert!(namespaces[0].official_library && !namespaces[1].official_library);

        let both = proxy("proxy:\n  remoteurl: http://127.0.0.1:5000\n  upstreams:\n    - prefix: quay.io\n      remoteurl: https://quay.io\n").unwrap();
        let namespaces = both.namespaces().unwrap();
        let prefixes: Vec<&str> = namespaces.iter().map(|n| n.prefix.as_str()).collect();
        assert_eq!(prefixes, ["quay.io", ""]);
        assert_eq!(both.revalidate, registry::proxy::DEFAULT_REVALIDATE_AFTER);
    }

    #[test]
    fn bad_upstreams_are_refused_by_key() {
        let cases = [
            (
                "proxy:\n  upstreams:\n    - remoteurl: https://x\n",
                "proxy.upstreams.0.prefix: required for each upstream",
            ),
            (
                "proxy:\n  upstreams:\n    - prefix: a\n",
                "proxy.upstreams.0.remoteurl: required for each upstream",
            ),
            (
                "proxy:\n  upstreams:\n    - prefix: a\n      remoteurl: https://x\n    - prefix: a/\n      remoteurl: https://y\n",
                "proxy.upstreams.1.prefix: prefix a is configured twice",
            ),
            (
                "proxy:\n  upstreams:\n    - prefix: \"a b\"\n      remoteurl: https://x\n",
                "expected a repository name prefix",
            ),
            (
                "proxy:\n  upstreams:\n    - prefix: a\n      remoteurl: x\n",
                "expected an http:// or https:// URL",
            ),
            (
                "proxy:\n  upstreams:\n    - prefix: a\n      remoteurl: https://x\n      typo: 1\n",
                "unknown key",
            ),
            (
                "proxy:\n  upstreams: docker.io\n",
                "expected a list of upstreams",
            ),
            (
                "proxy:\n  remoteurl: https://x\n  revalidate: soon\n",
                "proxy.revalidate",
            ),
        ];
        for (yaml, want) in cases {
            let err = proxy(yaml).unwrap_err();
            assert!(err.contains(want), "{yaml}: {err}");
        }
    }

    #[test]
    fn ttl_and_maxsize_make_eviction() {
        let p = proxy("proxy:\n  remoteurl: https://x\n  maxsize: 50G\n  ttl: 24h\n").unwrap();
        let e = p.eviction().unwrap();
        assert_eq!(e.max_bytes, Some(50 << 30));
        assert_eq!(e.max_age, Some(Duration::from_secs(24 * 3600)));
        // registry:2's default ttl applies without the key.
        let p = proxy("proxy:\n  remoteurl: https://x\n").unwrap();
        assert_eq!(p.eviction().unwrap().max_age, Some(DEFAULT_TTL));
        let p = proxy("proxy:\n  remoteurl: https://x\n  ttl: 0\n").unwrap();
        assert_eq!(p.eviction(), None);
        for (text, want) in [
            ("123", Some(123)),
            ("1k", Some(1024)),
            ("2MiB", Some(2 << 20)),
            ("1 T", Some(1 << 40)),
            ("x", None),
            ("5Q", None),
        ] {
            assert_eq!(parse_size(text).ok(), want, "{text}");
        }
        let err = proxy("proxy:\n  remoteurl: https://x\n  maxsize: lots\n").unwrap_err();
        assert!(err.contains("proxy.maxsize"), "{err}");
    }

    #[test]
    fn docker_hub_is_recognised() {
        let cases = [
            ("docker.io", "http://127.0.0.1:5000", true),
            ("", "https://registry-1.docker.io", true),
            ("hub", "https://index.docker.io:443/", true),
            ("ghcr.io", "https://ghcr.io", false),
            ("", "http://127.0.0.1:5000", false),
        ];
        for (prefix, url, want) in cases {
            assert_eq!(official_library(prefix, url), want, "{prefix} {url}");
        }
    }
}
