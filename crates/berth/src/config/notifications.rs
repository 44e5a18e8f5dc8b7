//! The `notifications` section: registry:2's webhooks, as its configuration spells them.
//!
//! ```yaml
//! notifications:
//!   events:
//!     includereferences: true
//!   endpoints:
//!     - name: alistener
//!       disabled: false
//!       url: https://my.listener.com/event
//!       headers: {Authorization: [Bearer <token>]}
//!       timeout: 1s
//!       threshold: 10
//!       backoff: 1s
//!       ignoredmediatypes: [application/octet-stream]
//!       ignore:
//!         mediatypes: [application/octet-stream]
//!         actions: [pull]
//!       format: cloudevents   # berth's: registry2 (the default) or cloudevents
//! ```
//!
//! Defaults are registry:2's (`notifications/endpoint.go`): `timeout` 1s, `threshold` 10, `backoff` 1s.
//! A disabled endpoint is left out, as registry:2 does. registry:2's `sendtimeout`/`queue` tuning keys
//! of later versions do not exist here: the queue is the metadata store's outbox (`registry::notify`).
//! Header values are secrets to the printed configuration (they carry tokens).

use std::time::Duration;

use registry::notify::event::Format;
use registry::notify::{Endpoint, Notifications};

use super::read::{Section, Setting, parse_or, scalars};
use super::values::{format_duration, parse_bool, parse_choice, parse_duration, parse_int};
use super::yaml::{NOTHING, Node, Printed, flag, seq, text};
use super::{ConfigError, WarningKind, mapping, masked};

/// berth's `format` of an endpoint: registry:2's envelope (the default) or CloudEvents.
const FORMATS: [&str; 2] = ["registry2", "cloudevents"];

/// registry:2's defaults for an endpoint.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);
pub const DEFAULT_THRESHOLD: u32 = 10;
pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(1);

/// The checked section: the endpoints that receive events (disabled ones left out).
#[derive(Clone, Debug, Default)]
pub struct NotificationsConfig {
    pub endpoints: Vec<Endpoint>,
    /// How many endpoints were configured but disabled (for the printed configuration).
    pub disabled: Vec<String>,
    pub include_references: bool,
}

impl NotificationsConfig {
    /// The registry's settings; `source` names this instance in events.
    pub fn settings(&self, source: registry::notify::event::SourceRecord) -> Notifications {
        Notifications {
            endpoints: self.endpoints.clone(),
            include_references: self.include_references,
            source,
        }
    }

    pub fn to_yaml(&self) -> Printed {
        let endpoints = self.endpoints.iter().map(|e| {
            let headers = e
                .headers
                .iter()
                .map(|(name, _)| (name.as_str(), masked(true)))
                .collect::<Vec<_>>();
            mapping(vec![
                ("name", text(&e.name)),
                ("url", text(&e.url)),
                ("headers", mapping(headers)),
                ("timeout", text(format_duration(e.timeout))),
                ("threshold", text(e.threshold.to_string())),
                ("backoff", text(format_duration(e.backoff))),
                (
                    "ignoredmediatypes",
                    seq(e.ignored_media_types.iter().map(text)),
                ),
                (
                    "ignore",
                    mapping(vec![("actions", seq(e.ignored_actions.iter().map(text)))]),
                ),
                (
                    "format",
                    text(match e.format {
                        Format::Registry2 => FORMATS[0],
                        Format::CloudEvents => FORMATS[1],
                    }),
                ),
            ])
        });
        let disabled = self
            .disabled
            .iter()
            .map(|name| mapping(vec![("name", text(name)), ("disabled", flag(true))]));
        let all: Vec<Printed> = endpoints.chain(disabled).collect();
        mapping(vec![
            (
                "events",
                mapping(vec![("includereferences", flag(self.include_references))]),
            ),
            ("endpoints", if all.is_empty() { NOTHING } else { seq(all) }),
        ])
    }
}

struct RawEndpoint {
    here: String,
    name: Option<Setting>,
    url: Option<Setting>,
    headers: Vec<(String, Vec<Setting>)>,
    timeout: Option<Setting>,
    threshold: Option<Setting>,
    backoff: Option<Setting>,
    disabled: Option<Setting>,
    ignored_media_types: Vec<Setting>,
    ignore_media_types: Vec<Setting>,
    ignore_actions: Vec<Setting>,
    format: Option<Setting>,
}

pub fn read(mut s: Section<'_>) -> Result<NotificationsConfig, ConfigError> {
    let mut events = s.section("events")?;
    let include_references = events.scalar("includereferences")?;
    events.finish();
    let ctx = s.ctx();
    let mut raw = Vec::new();
    if let Some((node, origin)) = s.node("endpoints") {
        let Node::Seq(items) = node else {
            return Err(ConfigError::Malformed {
                key: origin.to_string(),
                reason: format!("expected a list of endpoints, found {}", node.kind()),
            });
        };
        for (i, item) in items.iter().enumerate() {
            let path = vec!["notifications".into(), "endpoints".into(), i.to_string()];
            let mut e = Section::new(ctx, path, item)?;
            let mut endpoint = RawEndpoint {
                here: e.here().to_string(),
                name: e.scalar("name")?,
                url: e.scalar("url")?,
                headers: Vec::new(),
                timeout: e.scalar("timeout")?,
                threshold: e.scalar("threshold")?,
                backoff: e.scalar("backoff")?,
                disabled: e.scalar("disabled")?,
                ignored_media_types: e.strings("ignoredmediatypes")?.unwrap_or_default(),
                ignore_media_types: Vec::new(),
                ignore_actions: Vec::new(),
                format: e.scalar("format")?,
            };
            match e.node("headers") {
                // registry:3's reference file writes `headers: <http.Header>`, a placeholder.
                Some((Node::Scalar(_), origin)) => ctx.warn(
                    &origin,
                    WarningKind::Ignored,
                    "expected a mapping of header names to lists of values; ignored",
                ),
                Some((Node::Map(entries), origin)) => {
                    for (name, node) in entries {
                        let at = format!("{origin}.{name}");
                        let values =
                            scalars(node, &origin).map_err(|_| ConfigError::Malformed {
                                key: at,
                                reason: "expected a value or a list of values".into(),
                            })?;
                        endpoint.headers.push((name.clone(), values));
                    }
                }
                Some((other, origin)) => {
                    return Err(ConfigError::Malformed {
                        key: origin.to_string(),
                        reason: format!("expected a mapping of headers, found {}", other.kind()),
                    });
                }
                None => {}
            }
            let mut ignore = e.section("ignore")?;
            endpoint.ignore_media_types = ignore.strings("mediatypes")?.unwrap_or_default();
            endpoint.ignore_actions = ignore.strings("actions")?.unwrap_or_default();
            ignore.finish();
            e.finish();
            raw.push(endpoint);
        }
    }
    s.finish();
    let mut config = NotificationsConfig {
        include_references: parse_or(&include_references, false, parse_bool)?,
        ..NotificationsConfig::default()
    };
    for e in raw {
        let missing = |key: &str| ConfigError::Malformed {
            key: format!("{}.{key}", e.here),
            reason: "required for each endpoint".into(),
        };
        let name = e.name.as_ref().ok_or_else(|| missing("name"))?;
        let name = name.parse(|t| {
            let t = t.trim();
            if t.is_empty() || t.len() > 128 || t.chars().any(char::is_control) {
                return Err("expected a name of 1 to 128 printable characters".to_string());
            }
            Ok(t.to_string())
        })?;
        let taken = config.endpoints.iter().map(|o| &o.name);
        if taken.chain(&config.disabled).any(|o| *o == name) {
            return Err(ConfigError::Malformed {
                key: format!("{}.name", e.here),
                reason: format!("endpoint {name} is configured twice"),
            });
        }
        if parse_or(&e.disabled, false, parse_bool)? {
            config.disabled.push(name);
            continue;
        }
        let url = url(e.url.as_ref().ok_or_else(|| missing("url"))?)?;
        let mut headers = Vec::new();
        for (header, values) in &e.headers {
            for v in values {
                headers.push((header.clone(), header_value(header, v)?));
            }
        }
        let threshold = parse_or(&e.threshold, u64::from(DEFAULT_THRESHOLD), |t| {
            parse_int(t, 0, u64::from(u32::MAX))
        })?;
        let actions = e
            .ignore_actions
            .iter()
            .map(|a| {
                a.parse(|t| {
                    let t = t.trim();
                    match t {
                        "push" | "pull" | "mount" | "delete" => Ok(t.to_string()),
                        _ => Err("expected one of push, pull, mount, delete".to_string()),
                    }
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut media_types: Vec<String> = Vec::new();
        for m in e.ignored_media_types.iter().chain(&e.ignore_media_types) {
            let m = m.text.trim().to_string();
            if !media_types.contains(&m) {
                media_types.push(m);
            }
        }
        config.endpoints.push(Endpoint {
            name,
            url,
            headers,
            timeout: positive(&e.timeout, DEFAULT_TIMEOUT)?,
            threshold: u32::try_from(threshold).unwrap_or(u32::MAX),
            backoff: positive(&e.backoff, DEFAULT_BACKOFF)?,
            ignored_media_types: media_types,
            ignored_actions: actions,
            format: match e.format.as_ref() {
                None => Format::Registry2,
                Some(f) => match f.parse(|t| parse_choice(t, &FORMATS))? {
                    "cloudevents" => Format::CloudEvents,
                    _ => Format::Registry2,
                },
            },
        });
    }
    Ok(config)
}

/// A duration, `default` when unset; zero (registry:2's "unset") is the default too.
fn positive(s: &Option<Setting>, default: Duration) -> Result<Duration, ConfigError> {
    let d = parse_or(s, default, parse_duration)?;
    Ok(if d.is_zero() { default } else { d })
}

/// An endpoint URL: `http(s)://host[:port][/path]`.
fn url(s: &Setting) -> Result<String, ConfigError> {
    s.parse(|t| {
        let t = t.trim();
        let rest = t
            .strip_prefix("https://")
            .or_else(|| t.strip_prefix("http://"))
            .ok_or("expected an http:// or https:// URL")?;
        if rest.is_empty() || rest.starts_with('/') || !rest.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("expected an http:// or https:// URL with a host".to_string());
        }
        Ok(t.to_string())
    })
}

/// A header's value: visible ASCII, spaces and tabs (what every HTTP library sends); its name an
/// HTTP token.
fn header_value(name: &str, v: &Setting) -> Result<String, ConfigError> {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token) {
        return Err(v.invalid(format!("{name:?} is not a header name")));
    }
    v.parse(|t| {
        if t.bytes()
            .all(|b| b.is_ascii_graphic() || b == b' ' || b == b'\t')
        {
            Ok(t.to_string())
        } else {
            Err("not a header value (visible ASCII text)".to_string())
        }
    })
}
