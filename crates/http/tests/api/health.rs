//! Health over HTTP: `/healthz` always answers while serving; `/readyz` and the debug server's
//! `/debug/health` follow the background checks of the storage and the metadata store.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use axum::http::Method;
use berth_http::health::{CheckSettings, Health, debug_router};
use berth_http::site::{Site, mount};
use registry::Registry;
use tower::ServiceExt;

use crate::harness::Harness;

fn settings(threshold: u32) -> CheckSettings {
    CheckSettings {
        interval: Duration::from_millis(100),
        threshold,
        storage_name: "storagedriver_filesystem".into(),
        metadata_name: "metadata_sqlite".into(),
    }
}

/// The mounted app over checked health, that health (for the debug router) and the stores' directory.
async fn checked(threshold: u32) -> (Harness, Health, PathBuf) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let h = Harness::with_app(
        registry::Settings::default(),
        |reg: Registry, dir| async move {
            let health = Health::start(reg.clone(), settings(threshold)).await;
            let _ = tx.send((health.clone(), dir));
            mount(berth_http::router(reg), &Site::default(), health)
        },
    )
    .await;
    let (health, dir) = rx.await.unwrap();
    (h, health, dir)
}

/// GET /debug/health on the debug router: status and body.
async fn debug_health(health: &Health) -> (u16, serde_json::Value) {
    let req = axum::http::Request::get("/debug/health")
        .body(axum::body::Body::empty())
        .unwrap();
    let resp = debug_router(health.clone()).oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    assert_eq!(
        resp.headers()["content-type"],
        "application/json; charset=utf-8"
    );
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    (status, serde_json::from_slice(&body).unwrap())
}

/// Waits (bounded) until `/readyz` answers `status`.
async fn wait_ready(h: &Harness, status: u16) -> crate::harness::Resp {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = h.get("/readyz").await;
        if r.status.as_u16() == status {
            return r;
        }
        assert!(Instant::now() < deadline, "/readyz stayed {}", r.status);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn break_storage(dir: &Path) {
    std::fs::remove_dir(dir.join("blobs/tmp")).unwrap();
}

fn repair_storage(dir: &Path) {
    std::fs::create_dir(dir.join("blobs/tmp")).unwrap();
}

#[tokio::test]
async fn liveness_always_answers() {
    let h = Harness::with_app(
        registry::Settings::default(),
        |reg: Registry, _| async move {
            mount(
                berth_http::router(reg),
                &Site::default(),
                Health::unchecked(),
            )
        },
    )
    .await;
    let r = h.get("/healthz").await;
    r.assert_status(200);
    assert_eq!(r.body.as_ref(), b"ok\n");
    h.head("/healthz").await.assert_status(200);
    h.call(Method::POST, "/healthz", &[], None)
        .await
        .assert_error(405, "UNSUPPORTED");
    h.call(Method::DELETE, "/readyz", &[], None)
        .await
        .assert_error(405, "UNSUPPORTED");
    // Unchecked: ready.
    h.get("/readyz").await.assert_status(200);
}

#[tokio::test]
async fn readiness_follows_the_storage() {
    let (h, _health, dir) = checked(2).await;
    wait_ready(&h, 200).await;

    break_storage(&dir);
    let r = wait_ready(&h, 503).await;
    r.assert_error(503, "UNAVAILABLE");
    let detail = &r.json()["errors"][0]["detail"];
    assert!(
        detail["storagedriver_filesystem"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{detail}"
    );
    assert!(detail.get("metadata_sqlite").is_none(), "{detail}");
    // Liveness does not follow readiness, and the API still answers what it can.
    h.get("/healthz").await.assert_status(200);
    h.get("/v2/").await.assert_status(200);

    repair_storage(&dir);
    wait_ready(&h, 200).await;
}

#[tokio::test]
async fn debug_health_speaks_registry2s_format() {
    let (h, health, dir) = checked(1).await;
    assert_eq!(debug_health(&health).await, (200, serde_json::json!({})));

    break_storage(&dir);
    wait_ready(&h, 503).await;
    let (status, body) = debug_health(&health).await;
    assert_eq!(status, 503);
    let failures = body.as_object().unwrap();
    assert_eq!(
        failures.keys().collect::<Vec<_>>(),
        ["storagedriver_filesystem"]
    );
    assert!(failures["storagedriver_filesystem"].is_string());
}
