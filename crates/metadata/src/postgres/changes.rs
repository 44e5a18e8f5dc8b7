//! The catalog's change feed on PostgreSQL: triggers (migration 6) `pg_notify` the channel
//! [`CHANNEL`] with a repository's name when a tag of it is moved or deleted, a manifest deleted or a
//! blob unlinked, delivered at commit to every session listening, whoever wrote. Each watcher listens
//! on a connection of its own (outside the pool: a pooled connection is handed to other operations),
//! and when that connection ends it says [`CatalogChange::Everything`] (what happened while it was
//! away is unknown) and listens again, backing off while the server is away.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::Inner;
use crate::{CatalogChange, ChangeStream};

/// The notification channel the triggers use.
pub(super) const CHANNEL: &str = "berth_catalog";

/// The longest pause between attempts to listen again.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Starts a watcher task; its changes arrive on the stream (the task ends when the stream is dropped).
pub(super) fn watch(store: Arc<Inner>) -> ChangeStream {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(listen(store, tx));
    Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|change| (change, rx))
    }))
}

async fn listen(store: Arc<Inner>, changes: mpsc::UnboundedSender<CatalogChange>) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let (notify, mut notifications) = mpsc::unbounded_channel();
        match store.pool.connect_listening(notify).await {
            Ok(client) => match client.batch_execute(&format!("LISTEN {CHANNEL}")).await {
                Ok(()) => {
                    backoff = Duration::from_millis(100);
                    // Whatever was committed before LISTEN took effect was not seen.
                    if changes.send(CatalogChange::Everything).is_err() {
                        return;
                    }
                    while let Some(n) = notifications.recv().await {
                        let change = match n.payload().parse() {
                            Ok(repo) => CatalogChange::Repository(repo),
                            Err(_) => CatalogChange::Everything,
                        };
                        if changes.send(change).is_err() {
                            return;
                        }
                    }
                    // The connection ended (the client is dropped with this scope).
                    if changes.send(CatalogChange::Everything).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %super::PgError(e), "listening for catalog changes failed")
                }
            },
            Err(e) => {
                tracing::warn!(error = %super::PgError(e), "connecting to listen for catalog changes failed")
            }
        }
        if changes.is_closed() {
            return;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}
