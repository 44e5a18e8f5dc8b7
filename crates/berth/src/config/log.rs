//! The `log` section: level, formatter (text or JSON), static fields on every line, access log on or off
//! (and registry:2's deprecated top-level `loglevel`). Applied by `crate::logging`.

use super::read::{Section, Setting, parse_or};
use super::values::{parse_bool, parse_choice};
use super::yaml::{Node, Printed, flag, text};
use super::{ConfigError, WarningKind, mapping};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    pub level: LogLevel,
    pub formatter: LogFormat,
    /// `fields`: added to every line, in the file's order.
    pub fields: Vec<(String, String)>,
    /// One line per request (`accesslog.disabled: false`, the default).
    pub access_log: bool,
    /// `reportcaller`: the source file and line of every message.
    pub report_caller: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: LogLevel::Info,
            formatter: LogFormat::Text,
            fields: Vec::new(),
            access_log: true,
            report_caller: false,
        }
    }
}

/// registry:2's levels (plus `trace`, below `debug`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// `log` as read.
#[derive(Debug, Default)]
struct RawLog {
    level: Option<Setting>,
    /// The deprecated top-level `loglevel`, used when `log.level` is absent (as registry:2 does).
    old_level: Option<Setting>,
    formatter: Option<Setting>,
    fields: Vec<(String, Setting)>,
    access_log_disabled: Option<Setting>,
    report_caller: Option<Setting>,
}

pub fn read(mut s: Section<'_>, old_level: Option<Setting>) -> Result<LogConfig, ConfigError> {
    let mut raw = RawLog {
        level: s.scalar("level")?,
        old_level,
        formatter: s.scalar("formatter")?,
        report_caller: s.scalar("reportcaller")?,
        ..RawLog::default()
    };
    for (name, node, origin) in s.entries("fields")? {
        let text = match node {
            Node::Scalar(text) => text.clone(),
            Node::Null => String::new(),
            other => {
                return Err(ConfigError::Malformed {
                    key: origin.to_string(),
                    reason: format!("expected a single value, found {}", other.kind()),
                });
            }
        };
        raw.fields.push((name, Setting { text, origin }));
    }
    let mut access = s.section("accesslog")?;
    raw.access_log_disabled = access.scalar("disabled")?;
    access.finish();
    s.ignore(
        "hooks",
        "registry:2's mail hooks are not supported by berth",
    );
    let ctx = s.ctx();
    s.finish();

    if let Some(old) = &raw.old_level {
        ctx.warn(
            &old.origin,
            WarningKind::Deprecated,
            "deprecated (as in registry:2); use log.level",
        );
    }
    raw.validate(ctx)
}

impl RawLog {
    fn validate(self, ctx: &super::read::Ctx) -> Result<LogConfig, ConfigError> {
        let level = match self.level.as_ref().or(self.old_level.as_ref()) {
            None => LogLevel::Info,
            Some(s) => s.parse(|t| {
                let levels = ["error", "warn", "info", "debug", "trace"];
                Ok(match parse_choice(t, &levels)? {
                    "error" => LogLevel::Error,
                    "warn" => LogLevel::Warn,
                    "debug" => LogLevel::Debug,
                    "trace" => LogLevel::Trace,
                    _ => LogLevel::Info,
                })
            })?,
        };
        let formatter = match &self.formatter {
            None => LogFormat::Text,
            Some(s) => match s.parse(|t| parse_choice(t, &["text", "json", "logstash"]))? {
                "json" => LogFormat::Json,
                "logstash" => {
                    ctx.warn(
                        &s.origin,
                        WarningKind::Adjusted,
                        "logstash is not a berth formatter; writing JSON lines instead",
                    );
                    LogFormat::Json
                }
                _ => LogFormat::Text,
            },
        };
        Ok(LogConfig {
            level,
            formatter,
            fields: self
                .fields
                .into_iter()
                .map(|(name, s)| (name, s.text))
                .collect(),
            access_log: !parse_or(&self.access_log_disabled, false, parse_bool)?,
            report_caller: parse_or(&self.report_caller, false, parse_bool)?,
        })
    }
}

impl LogConfig {
    pub fn to_yaml(&self) -> Printed {
        let fields = self
            .fields
            .iter()
            .map(|(k, v)| (k.as_str(), text(v.as_str())));
        mapping([
            ("level", text(self.level.as_str())),
            (
                "formatter",
                text(match self.formatter {
                    LogFormat::Text => "text",
                    LogFormat::Json => "json",
                }),
            ),
            ("fields", mapping(fields)),
            ("accesslog", mapping([("disabled", flag(!self.access_log))])),
            ("reportcaller", flag(self.report_caller)),
        ])
    }
}
