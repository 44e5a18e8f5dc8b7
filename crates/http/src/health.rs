//! Health: one periodic checker of the storage and the metadata store, read by three endpoints.
//!
//! - `/debug/health` on the debug address ([`debug_router`]), as registry:2 serves it: `{}` and 200 when
//!   every check passes, else 503 and `{"<check>": "<error>"}`.
//! - `/healthz` on the main address: liveness, 200 for as long as the process serves requests.
//! - `/readyz` on the main address: readiness, 200 when every check passes, else 503 with a spec error
//!   body (code UNAVAILABLE, as registry:2 answers when its health checks fail; the failing checks in
//!   the detail).
//!
//! Checks run in the background every `interval`, never on a request, so a probe costs nothing and a slow
//! backend cannot pile up probe requests. A check is failing after `threshold` consecutive failures
//! (registry:2's threshold; 0 counts as 1) and passes again at its first success.
//!
//! The debug router is the place for other operator endpoints (metrics): add routes to what
//! [`debug_router`] returns.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::http::header::{CONTENT_TYPE, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use registry::Registry;
use serde_json::json;

use crate::error::ApiError;
use crate::middleware::RequestId;

/// Liveness, on the main address.
pub const LIVENESS_PATH: &str = "/healthz";
/// Readiness, on the main address.
pub const READINESS_PATH: &str = "/readyz";
/// registry:2's health endpoint, on the debug address.
pub const DEBUG_HEALTH_PATH: &str = "/debug/health";

/// How the checker runs (registry:2's `health.storagedriver`).
#[derive(Clone, Debug)]
pub struct CheckSettings {
    /// Time between two rounds of checks.
    pub interval: Duration,
    /// Consecutive failures before a check counts as failing (0 counts as 1).
    pub threshold: u32,
    /// Name of the storage check in `/debug/health` (registry:2: `storagedriver_<driver>`).
    pub storage_name: String,
    /// Name of the metadata check.
    pub metadata_name: String,
}

/// What the checks found. Cheap to clone; clones share the state. The background checker stops when the
/// last clone is dropped.
#[derive(Clone)]
pub struct Health {
    inner: Arc<Inner>,
}

struct Inner {
    checks: Vec<Check>,
    threshold: u32,
}

struct Check {
    name: String,
    probe: Probe,
    /// A std mutex: held only to read or update the counters, never across an `.await`.
    state: Mutex<CheckState>,
}

#[derive(Clone, Copy)]
enum Probe {
    Storage,
    Metadata,
}

#[derive(Default)]
struct CheckState {
    consecutive_failures: u32,
    last_error: Option<String>,
}

impl Health {
    /// No checks (health checks disabled): always healthy.
    pub fn unchecked() -> Health {
        Health {
            inner: Arc::new(Inner {
                checks: Vec::new(),
                threshold: 1,
            }),
        }
    }

    /// Runs a first round of checks (so readiness is known before the first request), then keeps
    /// checking every `settings.interval` in a background task.
    pub async fn start(registry: Registry, settings: CheckSettings) -> Health {
        let check = |name: String, probe| Check {
            name,
            probe,
            state: Mutex::default(),
        };
        let inner = Arc::new(Inner {
            checks: vec![
                check(settings.storage_name, Probe::Storage),
                check(settings.metadata_name, Probe::Metadata),
            ],
            threshold: settings.threshold.max(1),
        });
        // A zero interval would spin; the configuration refuses it, this keeps the loop safe regardless.
        let interval = settings.interval.max(Duration::from_millis(100));
        inner.round(&registry, interval).await;
        tokio::spawn(run(Arc::downgrade(&inner), registry, interval));
        Health { inner }
    }

    /// The failing checks: name and last error.
    pub fn failures(&self) -> BTreeMap<String, String> {
        let threshold = self.inner.threshold;
        self.inner
            .checks
            .iter()
            .filter_map(|c| {
                let state = c.state.lock().unwrap_or_else(PoisonError::into_inner);
                (state.consecutive_failures >= threshold).then(|| {
                    let error = state.last_error.clone().unwrap_or_default();
                    (c.name.clone(), error)
                })
            })
            .collect()
    }
}

/// Rounds of checks every `interval` until the [`Health`] is dropped.
async fn run(inner: Weak<Inner>, registry: Registry, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate, and `start` already ran that round.
    ticker.tick().await;
    loop {
        ticker.tick().await;
        let Some(inner) = inner.upgrade() else { return };
        inner.round(&registry, interval).await;
    }
}

impl Inner {
    /// Runs every check once, at once, each bounded by `timeout` (a check slower than its interval is
    /// failing: a hung mount must not look healthy).
    async fn round(&self, registry: &Registry, timeout: Duration) {
        let runs = self.checks.iter().map(|check| async move {
            let outcome = tokio::time::timeout(timeout, check.probe.run(registry)).await;
            let error = match outcome {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(_) => Some(format!("no answer within {} ms", timeout.as_millis())),
            };
            check.record(error);
        });
        futures_util::future::join_all(runs).await;
    }
}

impl Probe {
    async fn run(self, registry: &Registry) -> registry::Result<()> {
        match self {
            Probe::Storage => registry.check_storage().await,
            Probe::Metadata => registry.check_metadata().await,
        }
    }
}

impl Check {
    fn record(&self, error: Option<String>) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        match error {
            None => {
                if state.consecutive_failures > 0 {
                    tracing::info!(check = %self.name, "health check passes again");
                }
                *state = CheckState::default();
            }
            Some(error) => {
                tracing::warn!(check = %self.name, %error, "health check failed");
                state.consecutive_failures = state.consecutive_failures.saturating_add(1);
                state.last_error = Some(error);
            }
        }
    }
}

/// `/healthz` and `/readyz`, for the main address. Methods other than GET and HEAD get the spec's 405.
pub fn probes(health: Health) -> Router {
    Router::new()
        .route(LIVENESS_PATH, get(live).fallback(wrong_method))
        .route(READINESS_PATH, get(ready).fallback(wrong_method))
        .with_state(health)
}

/// The debug server's router: `/debug/health`. Other operator endpoints are added to it.
pub fn debug_router(health: Health) -> Router {
    Router::new()
        .route(DEBUG_HEALTH_PATH, get(debug_health))
        .with_state(health)
}

async fn live() -> Response {
    plain_ok()
}

async fn ready(State(health): State<Health>, req: Request) -> Response {
    let failures = health.failures();
    if failures.is_empty() {
        return plain_ok();
    }
    let body = json!({ "errors": [{
        "code": "UNAVAILABLE",
        "message": "service unavailable",
        "detail": failures,
    }]});
    let mut resp = (StatusCode::SERVICE_UNAVAILABLE, body.to_string()).into_response();
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    // Logged at debug: a failing backend is already reported by the checker, once per round.
    tracing::debug!(request_id = %RequestId::of(&req), "not ready");
    resp
}

async fn debug_health(State(health): State<Health>) -> Response {
    let failures = health.failures();
    let status = if failures.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut resp = (status, json!(failures).to_string()).into_response();
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp
}

async fn wrong_method(req: Request) -> Response {
    ApiError::from(registry::Error::Unsupported(
        "health probes answer GET and HEAD".into(),
    ))
    .into_response(&RequestId::of(&req))
}

fn plain_ok() -> Response {
    (
        [(
            CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        "ok\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(threshold: u32) -> Health {
        Health {
            inner: Arc::new(Inner {
                checks: vec![
                    Check {
                        name: "storage".into(),
                        probe: Probe::Storage,
                        state: Mutex::default(),
                    },
                    Check {
                        name: "metadata".into(),
                        probe: Probe::Metadata,
                        state: Mutex::default(),
                    },
                ],
                threshold: threshold.max(1),
            }),
        }
    }

    fn record(h: &Health, check: usize, error: Option<&str>) {
        h.inner.checks[check].record(error.map(str::to_string));
    }

    #[test]
    fn a_check_fails_after_threshold_consecutive_failures() {
        let h = health(3);
        record(&h, 0, Some("one"));
        record(&h, 0, Some("two"));
        assert!(
            h.failures().is_empty(),
            "two failures are under the threshold"
        );
        record(&h, 0, Some("three"));
        assert_eq!(
            h.failures().into_iter().collect::<Vec<_>>(),
            [("storage".to_string(), "three".to_string())]
        );
        // One success resets the count.
        record(&h, 0, None);
        assert!(h.failures().is_empty());
        record(&h, 0, Some("again"));
        record(&h, 0, Some("again"));
        assert!(h.failures().is_empty());
        // A success between failures is not consecutive.
        record(&h, 0, None);
        record(&h, 0, Some("x"));
        assert!(h.failures().is_empty());
    }

    #[test]
    fn threshold_zero_or_one_fails_at_once_and_checks_are_independent() {
        for threshold in [0, 1] {
            let h = health(threshold);
            record(&h, 1, Some("db down"));
            assert_eq!(
                h.failures().into_iter().collect::<Vec<_>>(),
                [("metadata".to_string(), "db down".to_string())]
            );
            record(&h, 0, Some("disk gone"));
            assert_eq!(h.failures().len(), 2);
            record(&h, 1, None);
            assert_eq!(h.failures().keys().collect::<Vec<_>>(), ["storage"]);
        }
    }

    #[test]
    fn unchecked_is_always_healthy() {
        assert!(Health::unchecked().failures().is_empty());
    }
}
