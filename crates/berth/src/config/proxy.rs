//! The `proxy` section: registry:2's pull-through cache of one upstream registry (`remoteurl`,
//! `username`, `password`, `ttl`), parsed and validated for the cache that will serve it.

use std::time::Duration;

use serde_yaml::Value;

use super::read::{Section, Setting, non_empty, parse_or};
use super::values::{format_duration, parse_duration};
use super::{ConfigError, Secret, WarningKind, mapping, masked};

/// registry:2's default `ttl`: cached content expires after a week.
pub const DEFAULT_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProxyConfig {
    /// `remoteurl`: `http(s)://host[:port]` of the upstream.
    pub remote_url: String,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// How long cached content lives; `None` (`ttl: 0`): forever.
    pub ttl: Option<Duration>,
}

#[derive(Debug, Default)]
struct RawProxy {
    remote_url: Option<Setting>,
    username: Option<Setting>,
    password: Option<Setting>,
    ttl: Option<Setting>,
}

/// `None` when the section is absent.
pub fn read(mut s: Section<'_>) -> Result<Option<ProxyConfig>, ConfigError> {
    let here = s.here();
    let raw = RawProxy {
        remote_url: s.scalar("remoteurl")?,
        username: s.scalar("username")?,
        password: s.scalar("password")?,
        ttl: s.scalar("ttl")?,
    };
    let ctx = s.ctx();
    let present = s.keys().next().is_some();
    s.finish();
    if !present {
        return Ok(None);
    }
    ctx.warn(
        &here,
        WarningKind::NotYet,
        "the pull-through cache is not implemented in berth yet; it serves only what is pushed to it",
    );
    raw.validate().map(Some)
}

impl RawProxy {
    fn validate(self) -> Result<ProxyConfig, ConfigError> {
        let remote_url = match &self.remote_url {
            None => {
                return Err(ConfigError::Malformed {
                    key: "proxy.remoteurl".into(),
                    reason: "required with proxy".into(),
                });
            }
            Some(s) => s.parse(|t| {
                let t = t.trim().trim_end_matches('/');
                let rest = t
                    .strip_prefix("https://")
                    .or_else(|| t.strip_prefix("http://"))
                    .ok_or("expected an http:// or https:// URL")?;
                if rest.is_empty() || rest.contains(char::is_whitespace) {
                    return Err("expected an http:// or https:// URL with a host".to_string());
                }
                Ok(t.to_string())
            })?,
        };
        Ok(ProxyConfig {
            remote_url,
            username: non_empty(&self.username)?,
            password: self.password.map(|s| Secret::new(s.text)),
            ttl: match parse_or(&self.ttl, DEFAULT_TTL, parse_duration)? {
                d if d.is_zero() => None,
                d => Some(d),
            },
        })
    }
}

impl ProxyConfig {
    pub fn to_yaml(&self) -> Value {
        mapping([
            ("remoteurl", self.remote_url.as_str().into()),
            (
                "username",
                self.username.as_deref().map_or(Value::Null, Value::from),
            ),
            ("password", masked(&self.password)),
            (
                "ttl",
                format_duration(self.ttl.unwrap_or(Duration::ZERO)).into(),
            ),
        ])
    }
}
