//! The catalog's change feed on SQLite. This process's writes are announced by the store itself after
//! they commit ([`Announcer`]: every role's write that moves or removes a tag, a manifest or a link).
//! Another process's writes (a `berth gc` beside the server, a second store on the same file) are found
//! by polling `PRAGMA data_version` on the writer connection, from a thread of its own; it changes only
//! when *another* connection committed: then [`CatalogChange::Everything`], since which repository is
//! not known.

use std::time::Duration;

use std::sync::Arc;

use futures_util::StreamExt;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc, oneshot};

use super::{Inner, SqliteStore, lock};
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
fn data_version(inner: &Inner) -> Option<i64> {
    lock(&inner.writer)
        .query_row("PRAGMA data_version", [], |r| r.get(0))
        .ok()
}

/// Polls for other processes' commits on a thread of its own until `changes` is dropped. A thread, not
/// the blocking pool: a task every quarter second handed round-robin to the pool's idle threads kept
/// each of them from ever timing out (46 stayed after a burst of uploads instead of a handful).
fn watch_foreign(
    inner: Arc<Inner>,
    changes: mpsc::UnboundedSender<CatalogChange>,
    ready: oneshot::Sender<()>,
) {
    let mut seen = data_version(&inner);
    let _ = ready.send(());
    while !changes.is_closed() {
        std::thread::sleep(FOREIGN_POLL);
        let now = data_version(&inner);
        let changed = matches!((seen, now), (Some(a), Some(b)) if a != b);
        if now.is_some() {
            seen = now;
        }
        if changed && changes.send(CatalogChange::Everything).is_err() {
            return;
        }
    }
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
    let (tx, rx) = mpsc::unbounded_channel();
    let (ready, polling) = oneshot::channel();
    let inner = Arc::clone(&store.inner);
    let spawned = std::thread::Builder::new()
        .name("berth-sqlite-changes".into())
        .spawn(move || watch_foreign(inner, tx, ready));
    if spawned.is_ok() {
        // The first reading is taken before the watch is handed out, so nothing committed after it
        // is missed.
        let _ = polling.await;
    }
    let foreign = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|change| (change, rx))
    });
    let start = futures_util::stream::once(async { CatalogChange::Everything });
    start
        .chain(futures_util::stream::select(own, foreign))
        .boxed()
}
