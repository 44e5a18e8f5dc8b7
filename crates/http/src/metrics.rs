//! Prometheus metrics: what berth counts, and `/metrics` to scrape them from (served on the debug address,
//! never on the registry's own).
//!
//! Exported (OpenMetrics text; counters carry the `_total` suffix on the wire):
//! - `berth_http_requests_total{endpoint, method, status}`: requests answered;
//! - `berth_http_request_duration_seconds{endpoint, method}`: from the request head to the end of the
//!   response body (for a blob, the whole transfer);
//! - `berth_http_received_bytes_total{endpoint}` and `berth_http_sent_bytes_total{endpoint}`: body bytes;
//! - `berth_http_requests_in_flight`;
//! - `berth_uploads_in_progress`: uploads streaming bytes in (the registry's own count, the one its cap
//!   applies to);
//! - `berth_storage_operation_duration_seconds{store, backend, operation}` and
//!   `berth_storage_operation_errors_total{...}`: every call of the blob and metadata stores, timed by
//!   the decorators of `registry::instrumented`;
//! - the pull-through cache's lookups, bytes served and upstream requests (see `metrics/cache.rs`);
//! - notifications delivered, failed and queued per endpoint (see `metrics/notify.rs`);
//! - audit log lines written and dropped (see `metrics/audit.rs`);
//! - what this process's garbage collections deleted (`berth_gc_*`) and its replication passes copied
//!   (`berth_replication_*`: passes, tags updated, referrers, bytes, failures, the last pass's time),
//!   read from the registry's own totals at each scrape; `berth_adopt_repositories_done`,
//!   `berth_adopt_repositories` and `berth_adopt_finished`: how far this process's adoption of a
//!   registry:2 tree got.
//!
//! Labels are bounded sets: `endpoint` is the kind of endpoint (`manifest`, `blob`, `blob_upload`, ...,
//! see [`http::endpoint_kind`]), never the repository, whose names are unbounded (and private).
//!
//! The request metrics are a middleware ([`Metrics::instrument`]) put around the whole application by
//! whoever wires the process, so that every answer counts (authentication failures, 404s, 429s).

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::Histogram;
use registry::instrumented::{StorageObserver, StorageOp};

mod audit;
mod cache;
pub mod http;
mod notify;
mod quota;

/// The content type of the exposition.
pub const CONTENT_TYPE_OPENMETRICS: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every metric of the process. Cheap to clone (clones share everything).
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    /// A std mutex: registering (at start) and encoding (a scrape) are rare and never await.
    registry: Mutex<prometheus_client::registry::Registry>,
    http: http::HttpMetrics,
    storage: StorageMetrics,
    cache: cache::CacheMetrics,
    notify: notify::NotifyMetrics,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// Request latencies: Prometheus' default buckets, stretched to a minute for blob transfers.
fn request_buckets() -> Histogram {
    Histogram::new([
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    ])
}

/// Storage latencies: from a cached SQLite read (well under a millisecond) to a slow fsync or S3 call.
fn storage_buckets() -> Histogram {
    Histogram::new([
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ])
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = prometheus_client::registry::Registry::default();
        let http = http::HttpMetrics::new(request_buckets);
        http.register(&mut registry);
        let storage = StorageMetrics {
            duration: Family::new_with_constructor(storage_buckets),
            errors: Family::default(),
        };
        registry.register(
            "berth_storage_operation_duration_seconds",
            "Duration of blob and metadata store calls",
            storage.duration.clone(),
        );
        registry.register(
            "berth_storage_operation_errors",
            "Blob and metadata store calls that returned an error",
            storage.errors.clone(),
        );
        let cache = cache::CacheMetrics::default();
        cache.register(&mut registry);
        let notify = notify::NotifyMetrics::default();
        notify.register(&mut registry);
        Metrics {
            inner: Arc::new(Inner {
                registry: Mutex::new(registry),
                http,
                storage,
                cache,
                notify,
            }),
        }
    }

    /// Wraps `app` (the whole application, outermost) so that every request is counted and timed.
    pub fn instrument(&self, app: Router) -> Router {
        self.inner.http.instrument(app)
    }

    /// What the storage decorators report to (`registry::instrumented`).
    pub fn storage_observer(&self) -> Arc<dyn StorageObserver> {
        Arc::new(self.inner.storage.clone())
    }

    /// What the pull-through cache reports to (`registry::proxy::CacheObserver`).
    pub fn cache_observer(&self) -> Arc<dyn registry::proxy::CacheObserver> {
        Arc::new(self.inner.cache.clone())
    }

    /// What notification delivery reports to (`registry::notify::DeliveryObserver`).
    pub fn delivery_observer(&self) -> Arc<dyn registry::notify::DeliveryObserver> {
        Arc::new(self.inner.notify.clone())
    }

    /// Exports what `registry` knows of itself (uploads in progress, what garbage collection deleted),
    /// read at each scrape.
    pub fn watch_registry(&self, registry: &registry::Registry) {
        self.lock()
            .register_collector(Box::new(RegistryState(registry.clone())));
        self.lock()
            .register_collector(Box::new(quota::QuotaState(registry.clone())));
    }

    /// Exports what the audit log wrote and dropped, read at each scrape.
    pub fn watch_audit(&self, audit: &crate::audit::Audit) {
        self.lock()
            .register_collector(Box::new(audit::AuditState(audit.clone())));
    }

    /// The exposition, in the OpenMetrics text format.
    pub fn render(&self) -> Result<String, fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.lock())?;
        Ok(out)
    }

    /// `GET <path>` (registry:2's default is `/metrics`), to be merged into the debug router.
    pub fn router(&self, path: &str) -> Router {
        Router::new()
            .route(path, get(scrape))
            .with_state(self.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, prometheus_client::registry::Registry> {
        self.inner
            .registry
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

async fn scrape(State(metrics): State<Metrics>) -> Response {
    match metrics.render() {
        Ok(text) => (
            [(
                CONTENT_TYPE,
                HeaderValue::from_static(CONTENT_TYPE_OPENMETRICS),
            )],
            text,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "encoding the metrics failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StorageLabels {
    store: &'static str,
    backend: &'static str,
    operation: &'static str,
}

#[derive(Clone)]
struct StorageMetrics {
    duration: Family<StorageLabels, Histogram, fn() -> Histogram>,
    errors: Family<StorageLabels, Counter>,
}

impl StorageObserver for StorageMetrics {
    fn observe(&self, op: StorageOp, elapsed: Duration, ok: bool) {
        let labels = StorageLabels {
            store: op.store,
            backend: op.backend,
            operation: op.operation,
        };
        self.duration
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
        if !ok {
            self.errors.get_or_create(&labels).inc();
        }
    }
}

/// The registry's own count, read at scrape time (a gauge kept beside it could drift from it).
/// What the registry knows of itself, read at each scrape: uploads in progress and what garbage
/// collection deleted.
struct RegistryState(registry::Registry);

impl fmt::Debug for RegistryState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RegistryState")
    }
}

impl Collector for RegistryState {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let e = &mut encoder;
        gauge(
            e,
            "berth_uploads_in_progress",
            "Blob uploads streaming bytes in right now",
            self.0.uploads_in_progress() as u64,
        )?;
        let gc = self.0.gc_totals();
        counters(
            e,
            &[
                (
                    "berth_gc_runs",
                    "Garbage collections this process ran to their end",
                    gc.runs,
                ),
                (
                    "berth_gc_blobs_deleted",
                    "Blobs garbage collection deleted",
                    gc.blobs,
                ),
                (
                    "berth_gc_bytes_freed",
                    "Bytes of the blobs garbage collection deleted",
                    gc.bytes,
                ),
                (
                    "berth_gc_manifests_deleted",
                    "Untagged manifests garbage collection deleted",
                    gc.manifests,
                ),
                (
                    "berth_gc_orphans_deleted",
                    "Orphaned blobs (bytes no metadata recorded) garbage collection deleted",
                    gc.orphans,
                ),
                (
                    "berth_gc_orphan_bytes_freed",
                    "Bytes of the orphaned blobs garbage collection deleted",
                    gc.orphan_bytes,
                ),
            ],
        )?;
        gauge(
            e,
            "berth_gc_missing_blobs",
            "Blobs the metadata records whose bytes the last garbage collection found missing",
            gc.missing,
        )?;
        gauge(
            e,
            "berth_gc_last_run_timestamp_seconds",
            "When this process's last garbage collection ended (Unix seconds; 0: none yet)",
            gc.last_run,
        )?;
        let rep = self.0.replication_totals();
        counters(
            e,
            &[
                (
                    "berth_replication_passes",
                    "Replication passes this process ran (holding the job lock)",
                    rep.passes,
                ),
                (
                    "berth_replication_tags_updated",
                    "Tags replication set or moved",
                    rep.tags_updated,
                ),
                (
                    "berth_replication_referrers_copied",
                    "Referrers (signatures, SBOMs, attestations) replication copied",
                    rep.referrers,
                ),
                (
                    "berth_replication_bytes_copied",
                    "Bytes of the blobs replication read from upstreams",
                    rep.bytes_copied,
                ),
                (
                    "berth_replication_failures",
                    "Repositories or tags a replication pass failed on (retried at the next)",
                    rep.failures,
                ),
            ],
        )?;
        gauge(
            e,
            "berth_replication_last_pass_timestamp_seconds",
            "When this process's last replication pass ended (Unix seconds; 0: none yet)",
            rep.last_pass,
        )?;
        let adopt = self.0.adopt_tally();
        gauge(
            e,
            "berth_adopt_repositories_done",
            "Repositories of registry:2's tree this process's adoption has indexed",
            adopt.done,
        )?;
        gauge(
            e,
            "berth_adopt_repositories",
            "Repositories in registry:2's tree this process's adoption indexes",
            adopt.total,
        )?;
        gauge(
            e,
            "berth_adopt_finished",
            "1 once this process's adoption of registry:2's tree has ended",
            u64::from(adopt.finished),
        )
    }
}

/// Constant counters read at a scrape: (name without `_total`, help, value).
fn counters(encoder: &mut DescriptorEncoder, list: &[(&str, &str, u64)]) -> Result<(), fmt::Error> {
    for (name, help, value) in list {
        let counter = ConstCounter::new(*value);
        let metric = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
        counter.encode(metric)?;
    }
    Ok(())
}

/// A constant gauge read at a scrape.
fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), fmt::Error> {
    let gauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
    let metric = encoder.encode_descriptor(name, help, None, gauge.metric_type())?;
    gauge.encode(metric)
}
