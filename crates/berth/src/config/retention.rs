//! berth's `retention` section: which tags and untagged manifests each repository keeps
//! (`registry::retention` says how a rule is applied; registry:2 has no such thing).
//!
//! ```yaml
//! retention:
//!   enabled: true            # apply the rules on a schedule (default true when there are rules)
//!   interval: 24h            # how often (default 24h); `berth retention` applies them on demand
//!   rules:                   # the first rule whose repositories match governs a repository
//!     - repositories: ["ci/**"]   # patterns of the access rules (`*`, `**`)
//!       keep:                     # a tag any of these keeps stays; every other tag goes
//!         latest: 10              # the 10 most recently pushed
//!         tags: ["v*.*.*"]        # tags matching a pattern, forever
//!         pushedwithin: 30d       # pushed within (whole days `d`, or 12h, 90m...)
//!         pulledwithin: 90d       # pulled (GET of the manifest) within; never pulled counts as pushed
//!       untagged: 7d              # also delete manifests no tag reaches, pushed longer ago than this
//! ```
//!
//! Strict like `access`: an unknown key in a rule stops the start, so a typo never deletes what a
//! condition was meant to keep. A rule with neither `keep` nor `untagged` does nothing and is refused;
//! `keep: {}` is refused too (it would read as "keep nothing", while it keeps every tag).

use std::time::Duration;

use oci::Pattern;
use registry::retention::{Keep, RetentionRule};

use super::ConfigError;
use super::read::{Section, Setting, parse_or};
use super::tags::patterns;
use super::values::{
    format_age, format_duration, parse_age, parse_bool, parse_duration, parse_int,
};
use super::yaml::{Node, Printed, flag, mapping, number, seq, text};

pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(24 * 3600);

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetentionConfig {
    /// Apply the rules every this long while serving; `None` when `enabled: false` or no rules.
    pub interval: Option<Duration>,
    pub rules: Vec<RetentionRule>,
}

pub fn read(mut s: Section<'_>) -> Result<RetentionConfig, ConfigError> {
    let ctx = s.ctx();
    let (enabled, interval): (Option<Setting>, Option<Setting>) =
        (s.scalar("enabled")?, s.scalar("interval")?);
    let mut rules = Vec::new();
    if let Some((node, origin)) = s.node("rules") {
        let Node::Seq(items) = node else {
            return Err(ConfigError::Malformed {
                key: origin.to_string(),
                reason: format!("expected a list of rules, found {}", node.kind()),
            });
        };
        for (i, item) in items.iter().enumerate() {
            let path = vec!["retention".into(), "rules".into(), i.to_string()];
            rules.push(read_rule(Section::new(ctx, path, item)?, i)?);
        }
    }
    s.finish();
    let interval = parse_or(&interval, DEFAULT_INTERVAL, |t| match parse_duration(t)? {
        d if d < Duration::from_secs(60) => Err("must be at least 1m".to_string()),
        d => Ok(d),
    })?;
    let enabled = parse_or(&enabled, true, parse_bool)? && !rules.is_empty();
    Ok(RetentionConfig {
        interval: enabled.then_some(interval),
        rules,
    })
}

fn read_rule(mut r: Section<'_>, i: usize) -> Result<RetentionRule, ConfigError> {
    let key = |k: &str| format!("retention.rules.{i}.{k}");
    let repositories = r.strings("repositories")?.unwrap_or_default();
    let untagged = r.scalar("untagged")?;
    let has_keep = r.node("keep").is_some();
    let keep = if has_keep {
        Some(read_keep(r.section("keep")?, &key("keep"))?)
    } else {
        None
    };
    r.finish_strict()?;
    if repositories.is_empty() {
        return Err(ConfigError::Malformed {
            key: key("repositories"),
            reason: "required: the repositories the rule governs".into(),
        });
    }
    let untagged = untagged.map(|s| s.parse(parse_age)).transpose()?;
    if keep.is_none() && untagged.is_none() {
        return Err(ConfigError::Malformed {
            key: key("keep"),
            reason: "a rule needs `keep` conditions, `untagged`, or both".into(),
        });
    }
    Ok(RetentionRule {
        repositories: patterns(&repositories, Pattern::repository)?,
        keep: keep.unwrap_or_default(),
        untagged,
    })
}

fn read_keep(mut k: Section<'_>, key: &str) -> Result<Keep, ConfigError> {
    let latest = k.scalar("latest")?;
    let tags = k.strings("tags")?.unwrap_or_default();
    let pushed = k.scalar("pushedwithin")?;
    let pulled = k.scalar("pulledwithin")?;
    k.finish_strict()?;
    let keep = Keep {
        latest: latest
            .map(|s| s.parse(|t| parse_int(t, 0, 1_000_000)))
            .transpose()?
            .map(|n| n as usize),
        tags: patterns(&tags, Pattern::tag)?,
        pushed_within: pushed.map(|s| s.parse(parse_age)).transpose()?,
        pulled_within: pulled.map(|s| s.parse(parse_age)).transpose()?,
    };
    if keep == Keep::default() {
        return Err(ConfigError::Malformed {
            key: key.to_string(),
            reason: "no condition: name latest, tags, pushedwithin or pulledwithin (leave `keep` out to keep every tag)".into(),
        });
    }
    Ok(keep)
}

impl RetentionConfig {
    pub fn to_yaml(&self) -> Printed {
        let list = |ps: &[Pattern]| seq(ps.iter().map(|p| text(p.as_str())));
        let age = |d: Option<Duration>| d.map(|d| text(format_age(d)));
        mapping([
            ("enabled", flag(self.interval.is_some())),
            (
                "interval",
                text(format_duration(self.interval.unwrap_or(DEFAULT_INTERVAL))),
            ),
            (
                "rules",
                seq(self.rules.iter().map(|r| {
                    let mut keep = Vec::new();
                    if let Some(n) = r.keep.latest {
                        keep.push(("latest", number(n as u64)));
                    }
                    if !r.keep.tags.is_empty() {
                        keep.push(("tags", list(&r.keep.tags)));
                    }
                    keep.extend(age(r.keep.pushed_within).map(|a| ("pushedwithin", a)));
                    keep.extend(age(r.keep.pulled_within).map(|a| ("pulledwithin", a)));
                    let mut rule = vec![("repositories", list(&r.repositories))];
                    if !keep.is_empty() {
                        rule.push(("keep", mapping(keep)));
                    }
                    rule.extend(age(r.untagged).map(|a| ("untagged", a)));
                    mapping(rule)
                })),
            ),
        ])
    }
}
