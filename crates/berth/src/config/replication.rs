//! berth's `replication` section: repositories kept in step with other registries, pulled on a schedule
//! (`registry::replicate` says how a pass goes; registry:2 has no such thing, zot's `sync` and
//! Harbor's pull replication are the model).
//!
//! ```yaml
//! replication:
//!   interval: 1h                  # a pass every this long (at least 1m; default 1h)
//!   sources:
//!     - remoteurl: https://registry.example.com
//!       username: mirror          # optional, with password (or registry:3's exec, as in proxy)
//!       password: "..."
//!       repositories:             # the upstream's names, copied under the same names...
//!         - library/alpine
//!         - team/app
//!         - "team/**"             # (a pattern: every match in the upstream's catalog, at each pass)
//!       prefix: mirror            # ...or under this prefix (mirror/library/alpine)
//!       tags: ["v*", "latest"]    # the tags copied (patterns with `*`); every tag when absent
//!       semver: false             # true: of those, only versions (1.2.3, v1.2, 3.19-rc.1), as zot's;
//!                                 # or a range of them: ">=1.2, <2" (Cargo's syntax)
//!       regex: "^v[0-9]"          # of those, only tags this matches (anywhere, unless anchored)
//!       deleteremovedtags: false  # delete a local tag (of those `tags` covers) gone upstream
//!       concurrency: 4            # repositories copied at once (1 to 32)
//! ```
//!
//! Strict like `retention`: an unknown key in a source stops the start, so a typo never widens or
//! narrows what is copied.

use std::time::Duration;

use oci::{Pattern, RepoName};
use registry::replicate::{Replication, TagRegex, VersionFilter};

use super::proxy::{UpstreamConfig, http_upstream, url};
use super::read::{Section, parse_or};
use super::tags::patterns;
use super::values::{format_duration, parse_bool, parse_duration};
use super::yaml::{Printed, flag, mapping, seq, text};
use super::{ConfigError, Secret, masked};

pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(3600);
/// Repositories of a source copied at once, by default: enough to overlap one repository's round trips
/// with another's transfer, few enough not to look like an attack to the upstream.
pub const DEFAULT_CONCURRENCY: usize = 4;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplicationConfig {
    pub interval: Duration,
    pub sources: Vec<Source>,
}

/// One upstream and what to copy from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    pub upstream: UpstreamConfig,
    /// Each upstream repository, and its local name (`<prefix>/<upstream name>`, or the same name).
    pub repositories: Vec<(RepoName, RepoName)>,
    /// Patterns (`*`, `**`) matched against the upstream's catalog at each pass.
    pub patterns: Vec<Pattern>,
    pub prefix: Option<String>,
    pub tags: Vec<Pattern>,
    pub semver: Option<VersionFilter>,
    pub regex: Option<TagRegex>,
    pub delete_removed_tags: bool,
    pub concurrency: usize,
}

pub fn read(mut s: Section<'_>) -> Result<ReplicationConfig, ConfigError> {
    let ctx = s.ctx();
    let interval = s.scalar("interval")?;
    let mut sources = Vec::new();
    if let Some((node, origin)) = s.node("sources") {
        let super::yaml::Node::Seq(items) = node else {
            return Err(ConfigError::Malformed {
                key: origin.to_string(),
                reason: format!("expected a list of sources, found {}", node.kind()),
            });
        };
        for (i, item) in items.iter().enumerate() {
            let path = vec!["replication".into(), "sources".into(), i.to_string()];
            sources.push(read_source(Section::new(ctx, path, item)?, i)?);
        }
    }
    s.finish();
    let interval = parse_or(&interval, DEFAULT_INTERVAL, |t| match parse_duration(t)? {
        d if d < Duration::from_secs(60) => Err("must be at least 1m".to_string()),
        d => Ok(d),
    })?;
    Ok(ReplicationConfig { interval, sources })
}

fn read_source(mut r: Section<'_>, i: usize) -> Result<Source, ConfigError> {
    let key = |k: &str| format!("replication.sources.{i}.{k}");
    let remote_url = r.scalar("remoteurl")?;
    let username = r.scalar("username")?;
    let password = r.scalar("password")?;
    let repositories = r.strings("repositories")?.unwrap_or_default();
    let prefix = r.scalar("prefix")?;
    let tags = r.strings("tags")?.unwrap_or_default();
    let semver = r.scalar("semver")?;
    let regex = r.scalar("regex")?;
    let delete = r.scalar("deleteremovedtags")?;
    let concurrency = r.scalar("concurrency")?;
    r.finish_strict()?;
    let remote_url = url(remote_url.as_ref().ok_or_else(|| ConfigError::Malformed {
        key: key("remoteurl"),
        reason: "required: the registry to copy from".into(),
    })?)?;
    if repositories.is_empty() {
        return Err(ConfigError::Malformed {
            key: key("repositories"),
            reason: "required: the upstream's repositories to copy".into(),
        });
    }
    let prefix = prefix
        .map(|s| {
            s.parse(|t| {
                let t = t.trim_matches('/');
                t.parse::<RepoName>()
                    .map(|_| t.to_string())
                    .map_err(|e| format!("not a repository name prefix: {e}"))
            })
        })
        .transpose()?;
    // Local names checked here, so that a prefix making one too long stops the start; a pattern's
    // matches are named at each pass.
    let (wild, exact): (Vec<_>, Vec<_>) = repositories.iter().partition(|s| s.text.contains('*'));
    let patterns = patterns(
        &wild.into_iter().cloned().collect::<Vec<_>>(),
        Pattern::repository,
    )?;
    let repositories = exact
        .into_iter()
        .map(|s| {
            s.parse(|t| {
                let remote = t.parse::<RepoName>().map_err(|e| e.to_string())?;
                let local = registry::replicate::local_name(prefix.as_deref(), &remote)?;
                Ok((remote, local))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Source {
        upstream: UpstreamConfig {
            prefix: String::new(),
            remote_url,
            username: username.map(|s| s.text),
            password: password.map(|s| Secret::new(s.text)),
            exec: None,
        },
        repositories,
        patterns,
        prefix,
        tags: super::tags::patterns(&tags, Pattern::tag)?,
        semver: semver
            .map(|s| s.parse(VersionFilter::parse))
            .transpose()?
            .flatten(),
        regex: regex.map(|s| s.parse(TagRegex::parse)).transpose()?,
        delete_removed_tags: parse_or(&delete, false, parse_bool)?,
        concurrency: parse_or(&concurrency, DEFAULT_CONCURRENCY, |t| {
            match t.parse::<usize>() {
                Ok(n) if (1..=32).contains(&n) => Ok(n),
                _ => Err("a number of repositories from 1 to 32".to_string()),
            }
        })?,
    })
}

impl ReplicationConfig {
    /// What `registry::replicate` runs: one replication per source, with its HTTP client.
    pub fn replications(&self) -> Result<Vec<Replication>, upstream::SettingsError> {
        self.sources
            .iter()
            .enumerate()
            .map(|(i, s)| {
                Ok(Replication {
                    upstream: http_upstream(&format!("replication-{i}"), &s.upstream)?,
                    repositories: s.repositories.clone(),
                    patterns: s.patterns.clone(),
                    prefix: s.prefix.clone(),
                    tags: s.tags.clone(),
                    semver: s.semver.clone(),
                    regex: s.regex.clone(),
                    delete_removed_tags: s.delete_removed_tags,
                    concurrency: s.concurrency,
                })
            })
            .collect()
    }

    pub fn to_yaml(&self) -> Printed {
        mapping([
            ("interval", text(format_duration(self.interval))),
            (
                "sources",
                seq(self.sources.iter().map(|s| {
                    let mut entry = vec![("remoteurl", text(s.upstream.remote_url.as_str()))];
                    if let Some(user) = &s.upstream.username {
                        entry.push(("username", text(user.as_str())));
                    }
                    entry.push(("password", masked(s.upstream.password.is_some())));
                    let names = s.repositories.iter().map(|(r, _)| text(r.as_str()));
                    let wild = s.patterns.iter().map(|p| text(p.as_str()));
                    entry.push(("repositories", seq(names.chain(wild))));
                    if let Some(p) = &s.prefix {
                        entry.push(("prefix", text(p.as_str())));
                    }
                    entry.push(("tags", seq(s.tags.iter().map(|p| text(p.as_str())))));
                    if let Some(v) = &s.semver {
                        entry.push(("semver", text(v.text())));
                    }
                    if let Some(r) = &s.regex {
                        entry.push(("regex", text(r.as_str())));
                    }
                    entry.push(("deleteremovedtags", flag(s.delete_removed_tags)));
                    entry.push(("concurrency", text(s.concurrency.to_string())));
                    mapping(entry)
                })),
            ),
        ])
    }
}
