//! The `validation` section: registry:3's `manifests.indexes` (which children of a pushed image index
//! must already be in the repository: `registry::IndexChildren`), `disabled` and registry:2's `enabled`.
//!
//! ```yaml
//! validation:
//!   manifests:
//!     indexes:
//!       platforms: list            # all (the default) | none | list
//!       platformlist:
//!         - os: linux
//!           architecture: amd64
//! ```
//!
//! As in registry:3: validation is on unless `disabled: true` (or `enabled: false`); off, no child is
//! checked (a sparse index is accepted), as registry:3 then skips its index check too. `platforms` is
//! compared without case (registry:3 lowercases it); `list` with an empty `platformlist` checks every
//! child. `manifests.urls` (rules on foreign layers' URLs) is not implemented: reported and ignored, so
//! berth accepts what registry:2 without rules accepts.

use registry::{IndexChildren, RequiredPlatform};

use super::ConfigError;
use super::read::{Section, parse_or};
use super::values::{parse_bool, parse_choice};
use super::yaml::{Node, Printed, mapping, seq, text};

pub fn read(mut s: Section<'_>) -> Result<IndexChildren, ConfigError> {
    let ctx = s.ctx();
    let disabled = s.scalar("disabled")?;
    let enabled = s.scalar("enabled")?;
    let mut manifests = s.section("manifests")?;
    manifests.ignore(
        "urls",
        "berth has no rules on foreign layers' URLs (it accepts them, as registry:2 without rules)",
    );
    let mut indexes = manifests.section("indexes")?;
    let platforms = indexes.scalar("platforms")?;
    let mut list = Vec::new();
    if let Some((node, origin)) = indexes.node("platformlist") {
        let Node::Seq(items) = node else {
            return Err(ConfigError::Malformed {
                key: origin.to_string(),
                reason: format!("expected a list of platforms, found {}", node.kind()),
            });
        };
        for (i, item) in items.iter().enumerate() {
            let path = vec![
                "validation".into(),
                "manifests".into(),
                "indexes".into(),
                "platformlist".into(),
                i.to_string(),
            ];
            let mut p = Section::new(ctx, path, item)?;
            let os = p.scalar("os")?;
            let architecture = p.scalar("architecture")?;
            let here = p.here().to_string();
            p.finish_strict()?;
            let (Some(os), Some(architecture)) = (os, architecture) else {
                return Err(ConfigError::Malformed {
                    key: here,
                    reason: "each platform needs os and architecture".into(),
                });
            };
            list.push(RequiredPlatform {
                os: os.text.trim().to_string(),
                architecture: architecture.text.trim().to_string(),
            });
        }
    }
    indexes.finish();
    manifests.finish();
    s.finish();

    // registry:3: `enabled` when set, else not `disabled`.
    let on = match &enabled {
        Some(e) => e.parse(parse_bool)?,
        None => !parse_or(&disabled, false, parse_bool)?,
    };
    let rule = match &platforms {
        None => IndexChildren::All,
        Some(p) => match p.parse(|t| parse_choice(t, &["all", "none", "list"]))? {
            "none" => IndexChildren::None,
            "list" => IndexChildren::Platforms(list),
            _ => IndexChildren::All,
        },
    };
    Ok(if on { rule } else { IndexChildren::None })
}

/// The section as printed: the rule in effect.
pub fn to_yaml(rule: &IndexChildren) -> Printed {
    let (platforms, list): (&str, &[RequiredPlatform]) = match rule {
        IndexChildren::All => ("all", &[]),
        IndexChildren::None => ("none", &[]),
        IndexChildren::Platforms(list) => ("list", list),
    };
    let list = seq(list.iter().map(|p| {
        mapping([
            ("os", text(p.os.as_str())),
            ("architecture", text(p.architecture.as_str())),
        ])
    }));
    mapping([(
        "manifests",
        mapping([(
            "indexes",
            mapping([("platforms", text(platforms)), ("platformlist", list)]),
        )]),
    )])
}
