//! Changes to the catalog as every process sharing the database sees them: which repositories' tags,
//! manifests or blob links were moved or removed, after commit, whoever wrote them (this process
//! through any role, another replica, a `berth gc` beside the server).
//!
//! Why: a cache of lookups in front of the catalog (`registry::cached`) must forget what another
//! writer changed as soon as it is committed, or a client that deletes through one replica and reads
//! through another sees the old answer. Only what can make a remembered answer wrong is reported (a
//! tag moved or deleted, a manifest deleted, a blob unlinked); additions are not, because nothing
//! remembers an absence.

use std::pin::Pin;

use futures_util::Stream;
use oci::RepoName;

/// What changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CatalogChange {
    /// Tags, manifests or blob links of this repository.
    Repository(RepoName),
    /// Anything, anywhere: changes may have been missed (the watch was cut off and resumed, or fell
    /// behind), or a change touched repositories it did not name.
    Everything,
}

/// The changes, in commit order per writer, for as long as the stream is held.
pub type ChangeStream = Pin<Box<dyn Stream<Item = CatalogChange> + Send>>;

/// The catalog's change feed.
#[async_trait::async_trait]
pub trait CatalogChanges: Send + Sync + 'static {
    /// Starts watching. The stream begins with [`CatalogChange::Everything`] (what happened before the
    /// watch is not known), then names what changes. It never ends by itself: when the backend loses
    /// its feed it yields
    /// [`CatalogChange::Everything`] and resumes (so a subscriber forgets all it remembers rather than
    /// keep what it can no longer vouch for).
    async fn watch(&self) -> ChangeStream;
}
