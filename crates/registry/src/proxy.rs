//! The pull-through cache: repositories under a configured namespace are read from an [`Upstream`]
//! on a miss and kept in the registry's own stores.

pub mod upstream;

pub use upstream::{ManifestHead, Upstream, UpstreamBlob, UpstreamError, UpstreamManifest};
