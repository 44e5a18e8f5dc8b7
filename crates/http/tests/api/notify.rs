//! The request's side of notifications: an event caused through the router carries who asked (the
//! request id it was answered with, the method, the user agent, the client's address) and a URL where
//! clients reach the registry (`http.host`, `http.prefix`), as registry:2's do.

use std::time::Duration;

use axum::http::Method;
use berth_http::health::Health;
use berth_http::site::{BaseUrl, Prefix, Site, mount};
use metadata::Outbox;
use registry::Registry;
use registry::notify::{Endpoint, Notifications};

use crate::harness::Harness;

fn notifying(reg: Registry) -> Registry {
    reg.with_notifications(Notifications {
        endpoints: vec![Endpoint {
            name: "e".into(),
            url: "http://receiver.invalid/".into(),
            headers: Vec::new(),
            timeout: Duration::from_secs(1),
            threshold: 10,
            backoff: Duration::from_secs(1),
            ignored_media_types: Vec::new(),
            ignored_actions: Vec::new(),
            format: registry::notify::event::Format::Registry2,
        }],
        ..Notifications::default()
    })
}

#[tokio::test]
async fn an_event_names_the_request_and_the_url_clients_use() {
    let site = Site {
        prefix: Prefix::parse("/reg/").unwrap(),
        base_url: Some(BaseUrl::parse("https://registry.example.com").unwrap().0),
        ..Site::default()
    };
    let mut outbox = None;
    let h = Harness::with_app(registry::Settings::default(), |reg, dir| {
        outbox = Some(dir.join("metadata.sqlite"));
        async move {
            mount(
                berth_http::router(notifying(reg)),
                &site,
                Health::unchecked(),
            )
        }
    })
    .await;
    let data = b"a blob";
    let digest = oci::Digest::sha256_of(data);
    let put = h
        .call(
            Method::POST,
            &format!("/reg/v2/team/app/blobs/uploads/?digest={digest}"),
            &[
                ("user-agent", "test-client/1.0"),
                ("x-forwarded-for", "192.0.2.7"),
            ],
            Some(data),
        )
        .await;
    put.assert_status(201);

    let store = metadata::sqlite::SqliteStore::open(&outbox.unwrap()).unwrap();
    let queued = store.pending_events("e", 10).await.unwrap();
    assert_eq!(queued.len(), 1);
    let event: serde_json::Value = serde_json::from_str(&queued[0].payload).unwrap();
    assert_eq!(event["action"], "push");
    assert_eq!(
        event["target"]["url"],
        format!("https://registry.example.com/reg/v2/team/app/blobs/{digest}")
    );
    let request = &event["request"];
    assert_eq!(request["id"], put.header("x-request-id"));
    assert_eq!(request["method"], "POST");
    assert_eq!(request["useragent"], "test-client/1.0");
    assert_eq!(request["addr"], "192.0.2.7");
}
