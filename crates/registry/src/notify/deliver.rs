//! Delivery: the outbox's events posted to their endpoints by one replica at a time.
//!
//! The worker takes the job lock [`NOTIFICATIONS_JOB`] (retrying every [`LOCK_RETRY`] while another
//! replica has it), forgets the queues of endpoints no longer configured, and runs one loop per
//! endpoint until the lock is lost: read the oldest [`BATCH`](super::BATCH) events, post them as one
//! envelope, remove them on success; on failure retry the same batch, at once while the failures in a
//! row are fewer than the endpoint's `threshold`, then every `backoff` (registry:2's breaker). A batch
//! is removed only after the endpoint accepted it, so an event is delivered at least once (twice if
//! the worker dies between the answer and the removal); an endpoint that is down holds only its own
//! queue. Queue depths are measured every [`MEASURE_EVERY`] for the metrics.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

use super::{BATCH, Endpoint, Notifier, event};
use crate::{BoxError, Registry};

/// The job lock of delivery.
pub const NOTIFICATIONS_JOB: &str = "notifications";

/// How often a replica without the lock tries to take it, and the holder checks it still has it.
const LOCK_RETRY: Duration = Duration::from_secs(5);

/// How often an idle endpoint loop looks for events written by other replicas (this replica's writes
/// wake it at once).
const POLL: Duration = Duration::from_secs(1);

/// The pause between tries before the threshold is reached (so a refusing endpoint is not spun on).
const RETRY_SOON: Duration = Duration::from_millis(50);

/// How often the queue depths are measured.
const MEASURE_EVERY: Duration = Duration::from_secs(5);

/// Posts an envelope to an endpoint (implemented over HTTP by `berth-upstream`).
#[async_trait::async_trait]
pub trait Sink: Send + Sync + 'static {
    /// POSTs `body` (of `content_type`: the endpoint's format, see [`event::body`]) to
    /// `endpoint.url` with its headers, within its timeout. `Ok` only for a 2xx answer.
    async fn post(
        &self,
        endpoint: &Endpoint,
        content_type: &'static str,
        body: String,
    ) -> Result<(), BoxError>;
}

/// What delivery reports, for the metrics. Endpoint names are the configuration's: a bounded set.
pub trait DeliveryObserver: Send + Sync + 'static {
    /// `events` were accepted by `endpoint`.
    fn delivered(&self, endpoint: &str, events: u64);
    /// A post of `events` to `endpoint` failed (they stay queued).
    fn failed(&self, endpoint: &str, events: u64);
    /// `events` are queued for `endpoint`.
    fn queued(&self, endpoint: &str, events: u64);
}

/// Reports nowhere (no metrics exported).
impl DeliveryObserver for () {
    fn delivered(&self, _: &str, _: u64) {}
    fn failed(&self, _: &str, _: u64) {}
    fn queued(&self, _: &str, _: u64) {}
}

impl Registry {
    /// Delivers the outbox to the endpoints, forever, while this replica holds the job lock (a
    /// background task of `serve`; returns at once when notifications are off).
    pub async fn run_notifications(self, sink: Arc<dyn Sink>, observer: Arc<dyn DeliveryObserver>) {
        let Some(n) = self.notifier.clone() else {
            return;
        };
        loop {
            let lock = match self.meta.jobs.try_job_lock(NOTIFICATIONS_JOB).await {
                Ok(Some(lock)) => lock,
                Ok(None) => {
                    tracing::debug!("another replica delivers notifications");
                    self.measure(&n, &*observer).await;
                    tokio::time::sleep(LOCK_RETRY).await;
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, job = NOTIFICATIONS_JOB, "cannot take the job lock");
                    tokio::time::sleep(LOCK_RETRY).await;
                    continue;
                }
            };
            tracing::info!(job = lock.name(), "this replica delivers notifications");
            let names: Vec<String> = n
                .settings
                .endpoints
                .iter()
                .map(|e| e.name.clone())
                .collect();
            match self.meta.outbox.drop_other_endpoints(&names).await {
                Ok(0) => {}
                Ok(dropped) => tracing::warn!(
                    dropped,
                    "events queued for endpoints no longer configured were dropped"
                ),
                Err(e) => tracing::warn!(error = %e, "cannot drop the queues of removed endpoints"),
            }
            let (stop, stopped) = watch::channel(false);
            let mut loops = JoinSet::new();
            for endpoint in &n.settings.endpoints {
                let (reg, n) = (self.clone(), n.clone());
                let (endpoint, sink) = (endpoint.clone(), sink.clone());
                let (observer, stopped) = (observer.clone(), stopped.clone());
                loops.spawn(async move {
                    reg.deliver_to(&n, &endpoint, &*sink, &*observer, stopped)
                        .await;
                });
            }
            loop {
                self.measure(&n, &*observer).await;
                tokio::time::sleep(MEASURE_EVERY.min(LOCK_RETRY)).await;
                if !lock.is_held().await {
                    tracing::warn!(
                        job = NOTIFICATIONS_JOB,
                        "lost the job lock; another replica may deliver now"
                    );
                    break;
                }
            }
            let _ = stop.send(true);
            loops.shutdown().await;
        }
    }

    /// One endpoint's loop: its queue, in order, until `stopped`.
    async fn deliver_to(
        &self,
        n: &Notifier,
        endpoint: &Endpoint,
        sink: &dyn Sink,
        observer: &dyn DeliveryObserver,
        mut stopped: watch::Receiver<bool>,
    ) {
        let name = endpoint.name.as_str();
        let mut failures: u32 = 0;
        while !*stopped.borrow() {
            // Registered before the read, so a write between the read and the wait still wakes it
            // (`notify_waiters` wakes only futures already enabled).
            let written = n.written.notified();
            let mut written = std::pin::pin!(written);
            written.as_mut().enable();
            let batch = match self.meta.outbox.pending_events(name, BATCH).await {
                Ok(batch) => batch,
                Err(e) => {
                    tracing::warn!(error = %e, endpoint = name, "cannot read the outbox");
                    tokio::time::sleep(POLL).await;
                    continue;
                }
            };
            if batch.is_empty() {
                tokio::select! {
                    () = written => {}
                    () = tokio::time::sleep(POLL) => {}
                    _ = stopped.changed() => {}
                }
                continue;
            }
            let count = batch.len() as u64;
            let (content_type, body) =
                event::body(endpoint.format, batch.iter().map(|e| e.payload.as_str()));
            match sink.post(endpoint, content_type, body).await {
                Ok(()) => {
                    failures = 0;
                    observer.delivered(name, count);
                    let ids: Vec<i64> = batch.iter().map(|e| e.id).collect();
                    if let Err(e) = self.meta.outbox.remove_events(name, &ids).await {
                        // They will be sent again: at least once.
                        tracing::warn!(error = %e, endpoint = name, "cannot remove delivered events");
                        tokio::time::sleep(POLL).await;
                    }
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    observer.failed(name, count);
                    let wait = if failures >= endpoint.threshold {
                        endpoint.backoff
                    } else {
                        RETRY_SOON
                    };
                    tracing::warn!(
                        error = %e, endpoint = name, events = count, failures, retry_in = ?wait,
                        "posting events failed"
                    );
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        _ = stopped.changed() => {}
                    }
                }
            }
        }
    }

    /// Reports every endpoint's queue depth (0 for an empty queue).
    async fn measure(&self, n: &Notifier, observer: &dyn DeliveryObserver) {
        match self.meta.outbox.queued_events().await {
            Ok(queued) => {
                for e in &n.settings.endpoints {
                    let depth = queued
                        .iter()
                        .find(|(name, _)| *name == e.name)
                        .map_or(0, |(_, depth)| *depth);
                    observer.queued(&e.name, depth);
                }
            }
            Err(e) => tracing::debug!(error = %e, "cannot measure the outbox"),
        }
    }
}
