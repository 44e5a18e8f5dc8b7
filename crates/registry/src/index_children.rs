//! Which children of an image index must already be in the repository when the index is pushed:
//! registry:3's `validation.manifests.indexes` (`platforms: all | none | list`, `platformlist`).
//!
//! By default every child must exist (registry:2's rule, and berth's invariant that an index's children
//! are there). A *sparse* index (a mirror that copies some platforms of a multi-platform image, say)
//! lists children that are absent: with `none` none is checked, with `list` only the children whose
//! `platform` matches an entry's `os` and `architecture`. A child that need not exist is still recorded
//! as the index's reference (`NewManifest::optional_children`), so once it is pushed garbage collection
//! keeps it for the index as it keeps any child.

use oci::manifest::Descriptor;

/// The rule for an index's children.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum IndexChildren {
    /// Every child must exist (`platforms: all`, the default).
    #[default]
    All,
    /// No child need exist (`platforms: none`, or `validation.disabled`).
    None,
    /// Only the children of these platforms must exist (`platforms: list`). As in registry:3, an empty
    /// list means every child.
    Platforms(Vec<RequiredPlatform>),
}

/// A platform whose children must exist: `os` and `architecture` as the index's descriptors write them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequiredPlatform {
    pub os: String,
    pub architecture: String,
}

impl IndexChildren {
    /// Whether the child `d` must exist for its index to be accepted. A child without `platform` matches
    /// no listed platform (as in registry:3, where its fields are empty).
    pub fn requires(&self, d: &Descriptor) -> bool {
        match self {
            IndexChildren::All => true,
            IndexChildren::None => false,
            IndexChildren::Platforms(list) if list.is_empty() => true,
            IndexChildren::Platforms(list) => {
                let (os, arch) = d
                    .platform
                    .as_ref()
                    .map_or(("", ""), |p| (p.os.as_str(), p.architecture.as_str()));
                list.iter().any(|p| p.os == os && p.architecture == arch)
            }
        }
    }
}
