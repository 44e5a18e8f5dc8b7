//! The `tags` section: berth's immutable tags (registry:3 keeps other tag settings in this section).
//!
//! ```yaml
//! tags:
//!   immutable:
//!     - repositories: ["prod/**"]   # patterns of the access rules (`*`, `**`)
//!       tags: ["v*.*.*"]            # tag patterns (`*`); every tag when left out
//! ```
//!
//! A tag a rule covers may be pushed once (and pushed again with the same manifest), never moved to
//! another manifest nor deleted, nor its manifest deleted by digest: the client gets 403 DENIED saying
//! the tag is immutable. Strict like `access`: an unknown key in a rule stops the start, so a typo never
//! leaves a tag mutable.

use oci::Pattern;
use registry::ImmutableTags;

use super::ConfigError;
use super::read::{Section, Setting};
use super::yaml::{Node, Printed, mapping, seq, text};

pub fn read(mut s: Section<'_>) -> Result<Vec<ImmutableTags>, ConfigError> {
    let ctx = s.ctx();
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
    Ok(rules)
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
pub fn to_yaml(rules: &[ImmutableTags]) -> Printed {
    let list = |ps: &[Pattern]| seq(ps.iter().map(|p| text(p.as_str())));
    mapping([(
        "immutable",
        seq(rules.iter().map(|r| {
            mapping([
                ("repositories", list(&r.repositories)),
                ("tags", list(&r.tags)),
            ])
        })),
    )])
}
