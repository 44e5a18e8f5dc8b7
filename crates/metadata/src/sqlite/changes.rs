//! The catalog's change feed on SQLite. This process's writes are announced by the store itself after
//! they commit ([`Announcer`]: every role's write that moves or removes a tag, a manifest or a link).
//! Another process's writes (a `berth gc` beside the server, a second store on the same file) are found
//! by polling `PRAGMA data_version` on the writer connection, which changes only when *another*
//! connection committed: then [`CatalogChange::Everything`], since which repository is not known.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;

use super::SqliteStore;
use crate::{CatalogChange, ChangeStream};

/// How often another process's commits are looked for.
const FOREIGN_POLL: Duration = Duration::from_millis(250);

/// Announcements a slow watcher may fall behind by before it is told `Everything` instead.
const BACKLOG: usize = 1024;

/// This process's announcements.
pub(super) struct Announcer(broadcast::Sender<CatalogChange>);

impl Announcer {
    pub(super) fn new() -> Announcer {
        Announcer(broadcast::channel(BACKLOG).0)
    }

    /// Announces a committed change (nobody watching is no error).
    pub(super) fn announce(&self, change: CatalogChange) {
        let _ = self.0.send(change);
    }
}

/// The writer connection's `data_version` (`None` when it cannot be read: the next poll tries again).
async fn data_version(store: &SqliteStore) -> Option<i64> {
    store
        .write(|conn| Ok(conn.query_row("PRAGMA data_version", [], |r| r.get(0))?))
        .await
        .ok()
}

pub(super) async fn watch(store: &SqliteStore) -> ChangeStream {
    let own =
        futures_util::stream::unfold(store.inner.changes.0.subscribe(), |mut rx| async move {
            let change = match rx.recv().await {
                Ok(change) => change,
                Err(RecvError::Lagged(_)) => CatalogChange::Everything,
                Err(RecvError::Closed) => return None,
            };
            Some((change, rx))
        });
    let first = data_version(store).await;
    let foreign =
        futures_util::stream::unfold((store.clone(), first), |(store, mut seen)| async move {
            loop {
                tokio::time::sleep(FOREIGN_POLL).await;
                let now = data_version(&store).await;
                let changed = matches!((seen, now), (Some(a), Some(b)) if a != b);
                if now.is_some() {
                    seen = now;
                }
                if changed {
                    return Some((CatalogChange::Everything, (store, seen)));
                }
            }
        });
    let start = futures_util::stream::once(async { CatalogChange::Everything });
    start
        .chain(futures_util::stream::select(own, foreign))
        .boxed()
}
