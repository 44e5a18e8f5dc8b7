//! The events outbox: notifications waiting for their endpoints, written in the same transaction as
//! the change they describe, so that a change that committed always has its event and a change that
//! rolled back never has one, whatever crashes or restarts between the commit and the delivery.
//!
//! A row is one event for one endpoint (the registry filters per endpoint before writing, so each
//! endpoint's queue is exactly what it will be sent, and deleting a delivered row touches no other
//! endpoint's). The payload is opaque JSON text to the store: the envelope is the registry's business.
//!
//! How the events of a catalog write reach its transaction: the registry wraps the one write call in
//! [`noting`], a task-local scope; the backends' catalog writes ([`Catalog`](crate::Catalog)'s
//! `link_blob`, `unlink_blob`, `put_manifest`, `delete_manifest`, `delete_tag`) take what is noted
//! ([`noted`]) and insert it inside their transaction (for the deletes only when something was
//! deleted). The scope rather than a parameter because every decorator of the catalog (the metadata
//! cache, the instrumented store, the tests' fault injectors) then carries the events without a line of
//! its own and without a signature change: the future it awaits runs inside the caller's scope.
//! Outside a scope (notifications off, maintenance jobs) nothing is noted and nothing is written.

use std::future::Future;

use crate::Result;

/// One event about to be queued for one endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    /// The endpoint's `name` in the configuration.
    pub endpoint: String,
    /// The repository the event is about (delivery keeps each repository's events in order).
    pub repo: String,
    /// The event as JSON text, one element of the envelope's `events`.
    pub payload: String,
}

/// A queued event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueuedEvent {
    /// Increasing in the order the events were written (within a repository, in commit order).
    pub id: i64,
    pub repo: String,
    pub payload: String,
}

/// The queue of events per endpoint. Read and emptied by the one delivery worker that holds the job
/// lock `notifications`; written by every replica.
#[async_trait::async_trait]
pub trait Outbox: Send + Sync + 'static {
    /// Queues `events` on their own (pull events, which have no transaction to join).
    async fn append_events(&self, events: &[NewEvent]) -> Result<()>;

    /// The oldest `limit` events queued for `endpoint`, in id order.
    async fn pending_events(&self, endpoint: &str, limit: usize) -> Result<Vec<QueuedEvent>>;

    /// Removes the events `ids` of `endpoint` (delivered). Returns how many there were.
    async fn remove_events(&self, endpoint: &str, ids: &[i64]) -> Result<u64>;

    /// How many events are queued per endpoint, by endpoint name (endpoints with none are absent).
    async fn queued_events(&self) -> Result<Vec<(String, u64)>>;

    /// Removes every event queued for an endpoint not in `keep` (one removed from the configuration,
    /// which no worker will ever deliver). Returns how many.
    async fn drop_other_endpoints(&self, keep: &[String]) -> Result<u64>;
}

tokio::task_local! {
    static NOTED: Vec<NewEvent>;
}

/// Runs `write` (one catalog write) with `events` noted: the backend inserts them in the write's
/// transaction. An empty `events` writes nothing extra.
pub async fn noting<F: Future>(events: Vec<NewEvent>, write: F) -> F::Output {
    NOTED.scope(events, write).await
}

/// The events noted for the catalog write running in this task (none outside [`noting`]). Called by
/// the backends at the start of a catalog write, before they leave the task.
pub fn noted() -> Vec<NewEvent> {
    NOTED.try_with(Clone::clone).unwrap_or_default()
}
