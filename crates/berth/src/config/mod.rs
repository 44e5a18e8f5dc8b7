//! Configuration: registry:2's YAML file, overridden by registry:2's `REGISTRY_*` environment variables, read
//! in two stages so that every problem names the setting at fault.
//!
//! 1. The file becomes a tree whose scalars keep their exact text ([`yaml`]), and the environment is
//!    applied to that tree ([`env`]), remembering which variable set what.
//! 2. Each top-level section has its own file that reads the tree into a raw struct (what the file
//!    says: text and origin per key, through [`read::Section`]) and validates it into the typed settings
//!    the rest of berth is built from. An invalid value stops the start with an error naming the key
//!    (or variable), the value and what is allowed; a key berth does not use is a [`Warning`] naming it.
//!
//! [`load`] is a pure function of the file's text and an environment given as a map, so tests never touch
//! the process environment. [`Config::to_yaml`] prints the effective configuration (`berth config check`),
//! secrets masked.
//!
//! Sections: `version` (here), [`log`], [`storage`], [`http`], [`auth`] (with berth's `access`),
//! [`health`], [`proxy`], [`database`] (GitLab's spelling), [`notifications`], [`validation`], berth's [`limits`], [`gc`], [`tags`], [`retention`], [`replication`], [`quotas`], [`scrub`], [`ui`] and [`audit`], and the registry:2
//! sections berth does not implement, which are reported by name (here). A feature's section is read and
//! validated in its file, and its settings are handed to the crate that implements it; what is not
//! implemented yet says so in a warning from its section's file.

use std::collections::HashMap;
use std::fmt;

pub mod audit;
pub mod auth;
pub mod database;
mod env;
pub mod gc;
pub mod health;
pub mod http;
pub mod limits;
pub mod log;
pub mod notifications;
pub mod proxy;
pub mod quotas;
mod read;
pub mod replication;
pub mod retention;
pub mod scrub;
pub mod storage;
pub mod tags;
pub mod ui;
pub mod validation;
pub mod values;
pub mod yaml;

use read::{Ctx, Section};
use yaml::{NOTHING, Printed, mapping, text};

/// The variable registry:2 reads the configuration file's path from when none is given.
pub const CONFIG_PATH_VAR: &str = "REGISTRY_CONFIGURATION_PATH";

/// The validated configuration.
#[derive(Clone, Debug)]
pub struct Config {
    pub log: log::LogConfig,
    pub storage: storage::StorageConfig,
    pub http: http::HttpConfig,
    /// `auth` and berth's `access`, as the auth crate takes them.
    pub auth: ::auth::Settings,
    pub health: health::HealthConfig,
    /// `proxy`: the pull-through cache, when configured.
    pub proxy: Option<proxy::ProxySettings>,
    pub database: database::DatabaseConfig,
    /// berth's `limits`.
    pub limits: limits::LimitsConfig,
    /// berth's `gc`.
    pub gc: gc::GcConfig,
    /// `tags.immutable` (berth's).
    pub immutable_tags: Vec<registry::ImmutableTags>,
    /// `tags.maxtags` (registry:3's): the most tags on one page of a tag listing.
    pub max_tags: usize,
    /// berth's `retention`.
    pub retention: retention::RetentionConfig,
    /// berth's `replication`: repositories kept in step with other registries.
    pub replication: replication::ReplicationConfig,
    /// berth's `quotas`.
    pub quotas: Vec<registry::quota::Quota>,
    /// berth's `scrub`.
    pub scrub: scrub::ScrubConfig,
    /// berth's `ui`: the web interface.
    pub ui: ui::UiConfig,
    /// berth's `audit`: the audit log.
    pub audit: audit::AuditConfig,
    /// registry:3's `validation.manifests.indexes`: which children of a pushed index must exist.
    pub index_children: registry::IndexChildren,
    /// `notifications`: registry:2's webhooks, delivered from the outbox.
    pub notifications: notifications::NotificationsConfig,
}

/// A configuration and what was said about it while reading.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    pub warnings: Vec<Warning>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("the configuration is not valid YAML: {0}")]
    Yaml(String),
    #[error("the configuration must be a YAML mapping of keys to settings, not {0}")]
    NotAMapping(&'static str),
    /// A value that is not allowed. `key` is the dotted key, or the variable and the key.
    #[error("{key}: {value:?}: {reason}")]
    Invalid {
        key: String,
        value: String,
        reason: String,
    },
    /// A section or key of the wrong shape, missing, or in conflict with another.
    #[error("{key}: {reason}")]
    Malformed { key: String, reason: String },
}

/// Something the operator should know about the configuration that does not stop the start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    /// The dotted key, or the variable and the key.
    pub key: String,
    pub kind: WarningKind,
    pub message: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WarningKind {
    /// Neither registry:2 nor berth knows the key.
    Unknown,
    /// A registry:2 key berth does not use (and will not).
    Ignored,
    /// Accepted, but spelled the old way.
    Deprecated,
    /// Accepted, with a different value than written (what berth can do instead).
    Adjusted,
}

impl Warning {
    pub fn new(key: impl Into<String>, kind: WarningKind, message: impl Into<String>) -> Warning {
        Warning {
            key: key.into(),
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// A password or key: printed masked, never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// How a secret is printed.
    pub const MASK: &'static str = "********";

    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The secret itself, for the code that uses it (`http.secret`: the web interface's session key).
    // The fuzz target compiles this module without `serve.rs`, its one user.
    #[allow(dead_code)]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({})", Secret::MASK)
    }
}

/// Top-level sections of registry:2 that berth does not implement, and why.
const IGNORED_SECTIONS: &[(&str, &str)] = &[
    (
        "redis",
        "berth keeps what registry:2 caches in redis in its metadata database",
    ),
    (
        "reporting",
        "error reporting to bugsnag/newrelic is not supported by berth",
    ),
    (
        "middleware",
        "registry:2's middleware plugins do not exist in berth",
    ),
    (
        "compatibility",
        "schema1 manifests are refused by berth; there is nothing to configure",
    ),
    ("policy", "repository classes are not supported by berth"),
    (
        "catalog",
        "berth pages the catalog itself (n up to its maximum)",
    ),
];

/// The configuration version registry:2 (and berth) reads.
const VERSION: &str = "0.1";

/// Reads the file's text (if any) with the environment's overrides, and validates the result.
pub fn load(file: Option<&str>, env: &HashMap<String, String>) -> Result<Loaded, ConfigError> {
    let mut root = match file {
        Some(text) => yaml::parse(text).map_err(|e| ConfigError::Yaml(e.to_string()))?,
        None => yaml::Node::Null,
    };
    match &root {
        yaml::Node::Map(_) | yaml::Node::Null => {}
        other => return Err(ConfigError::NotAMapping(other.kind())),
    }
    short_forms(&mut root);
    let (origins, env_warnings) = env::apply(&mut root, env);
    check_key_lengths(&root, &origins, &mut Vec::new())?;
    let ctx = Ctx::new(origins, env_warnings);
    let config = read_config(&ctx, &root)?;
    Ok(Loaded {
        config,
        warnings: ctx.into_warnings(),
    })
}

/// The longest key the file or a variable may write. YAML reads an implicit key of at most 1,024
/// characters, and the effective configuration prints a key escaped (6 characters for a control
/// character), so a longer key could print as YAML that does not load back (found by the `config` fuzz
/// target). No key registry:2 or berth reads, nor any header or field name, comes near it.
const MAX_KEY_CHARS: usize = 128;

/// Refuses a key longer than [`MAX_KEY_CHARS`] anywhere in the tree, naming where (and the variable that
/// wrote it, if one did).
fn check_key_lengths(
    node: &yaml::Node,
    origins: &env::Origins,
    path: &mut Vec<String>,
) -> Result<(), ConfigError> {
    match node {
        yaml::Node::Null | yaml::Node::Scalar(_) => Ok(()),
        yaml::Node::Seq(items) => items
            .iter()
            .try_for_each(|item| check_key_lengths(item, origins, path)),
        yaml::Node::Map(entries) => entries.iter().try_for_each(|(key, value)| {
            path.push(key.clone());
            let checked = if key.chars().count() > MAX_KEY_CHARS {
                let clipped: Vec<String> =
                    path.iter().map(|k| k.chars().take(40).collect()).collect();
                let mut at = clipped.join(".");
                if let Some(var) = origins.var_for(path) {
                    at = format!("{var} ({at}...)");
                }
                Err(ConfigError::Malformed {
                    key: at,
                    reason: format!("a key longer than {MAX_KEY_CHARS} characters"),
                })
            } else {
                check_key_lengths(value, origins, path)
            };
            path.pop();
            checked
        }),
    }
}

/// registry:2 lets `storage: inmemory` and `auth: silly` stand for a section with that one empty key.
fn short_forms(root: &mut yaml::Node) {
    let yaml::Node::Map(entries) = root else {
        return;
    };
    for (key, node) in entries.iter_mut() {
        if (key == "storage" || key == "auth")
            && let yaml::Node::Scalar(name) = node
        {
            *node = yaml::Node::Map(vec![(std::mem::take(name), yaml::Node::Null)]);
        }
    }
}

fn read_config(ctx: &Ctx, root: &yaml::Node) -> Result<Config, ConfigError> {
    let mut top = Section::new(ctx, Vec::new(), root)?;
    if let Some(version) = top.scalar("version")?
        && version.text.trim() != VERSION
    {
        return Err(version.invalid(format!(
            "unsupported configuration version; berth reads version {VERSION}"
        )));
    }
    let deprecated_level = top.scalar("loglevel")?;
    let log = log::read(top.section("log")?, deprecated_level)?;
    let storage = storage::read(top.section("storage")?)?;
    let http = http::read(top.section("http")?)?;
    let auth = auth::read(&mut top)?;
    let health = health::read(top.section("health")?)?;
    let proxy = proxy::read(top.section("proxy")?)?;
    let database = database::read(top.section("database")?)?;
    let limits = limits::read(top.section("limits")?)?;
    let gc = gc::read(top.section("gc")?)?;
    let (immutable_tags, max_tags) = tags::read(top.section("tags")?)?;
    let retention = retention::read(top.section("retention")?)?;
    let replication = replication::read(top.section("replication")?)?;
    let quotas = quotas::read(top.section("quotas")?)?;
    let scrub = scrub::read(top.section("scrub")?)?;
    let ui = ui::read(top.section("ui")?)?;
    let audit = audit::read(top.section("audit")?)?;
    let notifications = notifications::read(top.section("notifications")?)?;
    let index_children = validation::read(top.section("validation")?)?;
    for (key, why) in IGNORED_SECTIONS {
        top.ignore(key, why);
    }
    top.finish();
    Ok(Config {
        log,
        storage,
        http,
        auth,
        health,
        proxy,
        database,
        limits,
        gc,
        immutable_tags,
        max_tags,
        retention,
        replication,
        quotas,
        scrub,
        ui,
        audit,
        index_children,
        notifications,
    })
}

impl Config {
    /// The effective configuration in registry:2's layout, defaults filled in and secrets masked.
    pub fn to_yaml(&self) -> Printed {
        let mut out = vec![
            ("version", text(VERSION)),
            ("log", self.log.to_yaml()),
            ("storage", self.storage.to_yaml()),
            ("http", self.http.to_yaml()),
        ];
        out.extend(auth::to_yaml(&self.auth));
        out.push(("health", self.health.to_yaml()));
        if let Some(proxy) = &self.proxy {
            out.push(("proxy", proxy.to_yaml()));
        }
        out.push(("database", self.database.to_yaml()));
        out.push(("limits", self.limits.to_yaml()));
        out.push(("gc", self.gc.to_yaml()));
        out.push(("tags", tags::to_yaml(&self.immutable_tags, self.max_tags)));
        out.push(("retention", self.retention.to_yaml()));
        out.push(("replication", self.replication.to_yaml()));
        out.push(("quotas", quotas::to_yaml(&self.quotas)));
        out.push(("scrub", self.scrub.to_yaml()));
        out.push(("ui", self.ui.to_yaml()));
        out.push(("audit", self.audit.to_yaml()));
        out.push(("notifications", self.notifications.to_yaml()));
        out.push(("validation", validation::to_yaml(&self.index_children)));
        mapping(out)
    }
}

/// A secret as printed: masked when set.
/// A secret as printed: the mask when one is set.
pub fn masked(set: bool) -> Printed {
    if set { text(Secret::MASK) } else { NOTHING }
}

#[cfg(test)]
mod tests;
