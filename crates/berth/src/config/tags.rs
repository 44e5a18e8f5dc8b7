//! The `tags` section: registry:3's `maxtags` and berth's immutable tags.
//!
//! ```yaml
//! tags:
//!   maxtags: 100                    # registry:3: most tags on one page of /v2/<name>/tags/list
//!   immutable:
//!     - repositories: ["prod/**"]   # patterns of the access rules (`*`, `**`)
//!       tags: ["v*.*.*"]            # tag patterns (`*`); every tag when left out
//! ```
//!
//! A tag a rule covers may be pushed once (and pushed again with the same manifest), never moved to
//! another manifest nor deleted, nor its manifest deleted by digest: the client gets 403 DENIED saying
//! the tag is immutable. Strict like `access`: an unknown key in a rule stops the start, so a typo never
//! leaves a tag mutable.
//!
//! `maxtags` is registry:3's: the page size of a tag listing without `n`, and the most a larger `n` gets
//! (clamped, with a `Link` to the rest, never refused). Its default, 1,000, is berth's page cap;
//! registry:3's 0 means the default too. berth holds a page in memory, so a value past
//! [`MAX_TAGS_PAGE`] is lowered to it, with a warning.

use oci::Pattern;
use registry::{ImmutableTags, MAX_PAGE, MAX_TAGS_PAGE};

use super::read::{Section, Setting};
use super::values::parse_int;
use super::yaml::{Node, Printed, mapping, seq, text};
use super::{ConfigError, WarningKind};

/// The section: the immutable tags' rules and `maxtags`.
pub fn read(mut s: Section<'_>) -> Result<(Vec<ImmutableTags>, usize), ConfigError> {
    let ctx = s.ctx();
    let mut max_tags = MAX_PAGE;
    if let Some(setting) = s.scalar("maxtags")? {
        // registry:3 refuses a negative value and reads 0 as its default.
        match setting.parse(|t| parse_int(t, 0, u64::MAX))? {
            0 => {}
            n if n > MAX_TAGS_PAGE as u64 => {
                ctx.warn(
                    &setting.origin,
                    WarningKind::Adjusted,
                    format!("berth holds a page of tags in memory: {MAX_TAGS_PAGE} tags at most"),
                );
                max_tags = MAX_TAGS_PAGE;
            }
            n => max_tags = n as usize,
        }
    }
    let mut rules = Vec::new();
    if let Some((node, origin)) = s.node("immutable") {
        let Node::Seq(items) = node else {
            return Err(ConfigError::Malformed {
                key: origin.to_string(),
                reason: format!("expected a list of rules, found {}", node.kind()),
            });
        };
        for (i, item) in items.iter().enumerate() {
            let path = vec!["tags".into(), "immutable".into(), i.to_string()];
            let mut r = Section::new(ctx, path, item)?;
            let repositories = r.strings("repositories")?.unwrap_or_default();
            let tags = r.strings("tags")?.unwrap_or_default();
            r.finish_strict()?;
            if repositories.is_empty() {
                return Err(ConfigError::Malformed {
                    key: format!("tags.immutable.{i}.repositories"),
                    reason: "required: the repositories whose tags are immutable".into(),
                });
            }
            rules.push(ImmutableTags {
                repositories: patterns(&repositories, Pattern::repository)?,
                tags: patterns(&tags, Pattern::tag)?,
            });
        }
    }
    s.finish();
    Ok((rules, max_tags))
}

/// Each setting through `parse` (`Pattern::repository` or `Pattern::tag`).
pub(super) fn patterns(
    settings: &[Setting],
    parse: fn(&str) -> Result<Pattern, String>,
) -> Result<Vec<Pattern>, ConfigError> {
    settings
        .iter()
        .map(|s| {
            parse(&s.text).map_err(|reason| ConfigError::Invalid {
                key: s.origin.to_string(),
                value: s.text.clone(),
                reason,
            })
        })
        .collect()
}

/// The section as printed.
pub fn to_yaml(rules: &[ImmutableTags], max_tags: usize) -> Printed {
    let list = |ps: &[Pattern]| seq(ps.iter().map(|p| text(p.as_str())));
    mapping([
        ("maxtags", text(max_tags.to_string())),
        (
            "immutable",
            seq(rules.iter().map(|r| {
                mapping([
                    ("repositories", list(&r.repositories)),
                    ("tags", list(&r.tags)),
                ])
            })),
        ),
    ])
}
