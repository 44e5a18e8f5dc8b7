//! Pull events, which have no transaction to join: noted in memory and written to the outbox in one
//! batch every second ([`PULL_FLUSH`]), once [`FLUSH_AT`] are waiting, and at a clean stop, like the
//! pull times of `crate::pulls`. The cheapest safe way: a pull costs a lock and a push onto a vector, and a crash
//! loses at most a second of pull events (a change's event is never among them). A store that fails
//! keeps them for the next flush, up to [`KEEP_AT_MOST`], past which the oldest are dropped and counted
//! in the log: pulls must not grow memory without bound while the database is away.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use metadata::NewEvent;

use crate::Registry;

/// How often noted pull events are written.
pub const PULL_FLUSH: Duration = Duration::from_secs(1);

/// Pull events noted before a batch is written without waiting for the next flush.
const FLUSH_AT: usize = 1_000;

/// Pull events kept while the store fails to take them.
const KEEP_AT_MOST: usize = 100_000;

#[derive(Default)]
pub(crate) struct PullEvents(Mutex<Vec<NewEvent>>);

impl PullEvents {
    /// Notes `events`; returns whether enough are waiting to write them now.
    fn note(&self, events: Vec<NewEvent>) -> bool {
        let mut noted = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        noted.extend(events);
        noted.len() >= FLUSH_AT
    }

    fn take(&self) -> Vec<NewEvent> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Puts back a batch the store refused, in front of what was noted since.
    fn restore(&self, mut batch: Vec<NewEvent>) {
        let mut noted = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        batch.append(&mut noted);
        if batch.len() > KEEP_AT_MOST {
            let dropped = batch.len() - KEEP_AT_MOST;
            tracing::warn!(
                dropped,
                "pull events dropped: the metadata store has not taken them"
            );
            batch.drain(..dropped);
        }
        *noted = batch;
    }
}

impl Registry {
    /// Notes pull events (written by [`flush_pull_events`](Self::flush_pull_events)).
    pub(crate) fn note_pull_events(&self, events: Vec<NewEvent>) {
        let Some(n) = &self.notifier else { return };
        // Read-only mode writes nothing, bookkeeping included (as `crate::pulls`).
        if events.is_empty() || self.settings.read_only {
            return;
        }
        if n.pulls.note(events) {
            let reg = self.clone();
            tokio::spawn(async move { reg.flush_pull_events().await });
        }
    }

    /// Writes the pull events noted so far to the outbox.
    pub async fn flush_pull_events(&self) {
        let Some(n) = &self.notifier else { return };
        let batch = n.pulls.take();
        if batch.is_empty() {
            return;
        }
        match self.meta.outbox.append_events(&batch).await {
            Ok(()) => n.written.notify_waiters(),
            Err(e) => {
                tracing::warn!(error = %e, "writing pull events failed; kept for the next try");
                n.pulls.restore(batch);
            }
        }
    }

    /// Flushes the pull events every [`PULL_FLUSH`], forever (a background task of `serve`).
    pub async fn run_pull_events(self) {
        loop {
            tokio::time::sleep(PULL_FLUSH).await;
            self.flush_pull_events().await;
        }
    }
}
