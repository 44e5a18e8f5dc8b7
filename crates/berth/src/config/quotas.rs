//! berth's `quotas` section: the most blob bytes sets of repositories may store (`registry::quota` says
//! how they are counted and checked; registry:2 has no such thing).
//!
//! ```yaml
//! quotas:
//!   limits:
//!     - repositories: ["team-a/**"]   # patterns of the access rules (`*`, `**`)
//!       size: 50G                      # binary units: 500M, 50G, 1T (each blob counted once)
//! ```
//!
//! Every limit covering a repository applies. Strict like `access`: an unknown key in a limit stops the
//! start, so a typo never leaves a team without its limit.

use oci::Pattern;
use registry::quota::Quota;

use super::ConfigError;
use super::read::Section;
use super::tags::patterns;
use super::values::parse_size;
use super::yaml::{Node, Printed, mapping, number, seq, text};

pub fn read(mut s: Section<'_>) -> Result<Vec<Quota>, ConfigError> {
    let ctx = s.ctx();
    let mut quotas = Vec::new();
    if let Some((node, origin)) = s.node("limits") {
        let Node::Seq(items) = node else {
            return Err(ConfigError::Malformed {
                key: origin.to_string(),
                reason: format!("expected a list of limits, found {}", node.kind()),
            });
        };
        for (i, item) in items.iter().enumerate() {
            let path = vec!["quotas".into(), "limits".into(), i.to_string()];
            let mut q = Section::new(ctx, path, item)?;
            let repositories = q.strings("repositories")?.unwrap_or_default();
            let size = q.scalar("size")?;
            q.finish_strict()?;
            let required = |key: &str, what: &str| ConfigError::Malformed {
                key: format!("quotas.limits.{i}.{key}"),
                reason: format!("required: {what}"),
            };
            if repositories.is_empty() {
                return Err(required(
                    "repositories",
                    "the repositories the limit covers",
                ));
            }
            let size = size.ok_or_else(|| required("size", "the most bytes they may store"))?;
            quotas.push(Quota {
                repositories: patterns(&repositories, Pattern::repository)?,
                bytes: size.parse(parse_size)?,
            });
        }
    }
    s.finish();
    Ok(quotas)
}

/// The section as printed.
pub fn to_yaml(quotas: &[Quota]) -> Printed {
    mapping([(
        "limits",
        seq(quotas.iter().map(|q| {
            mapping([
                (
                    "repositories",
                    seq(q.repositories.iter().map(|p| text(p.as_str()))),
                ),
                ("size", number(q.bytes)),
            ])
        })),
    )])
}
