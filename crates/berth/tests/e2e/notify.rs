//! Notifications (registry:2's webhooks, from the outbox): a small HTTP receiver in the test gets the
//! events of skopeo's push and pull and of a delete in registry:2's envelope; a receiver that is down
//! while berth restarts still gets every event of a push made before.

use std::io::{BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::images::{sample_image, write_image_layout};
use crate::harness::receiver::{Received, read_request};
use crate::harness::{Metadata, Options, Server, Tools, repo};

/// A receiver: records each envelope's events and its Content-Type; answers 503 while `down`.
struct Receiver {
    port: u16,
    events: Arc<Mutex<Vec<Value>>>,
    content_types: Arc<Mutex<Vec<String>>>,
    down: Arc<AtomicBool>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let events = Arc::new(Mutex::new(Vec::new()));
        let content_types = Arc::new(Mutex::new(Vec::new()));
        let down = Arc::new(AtomicBool::new(false));
        let (e, c, d) = (events.clone(), content_types.clone(), down.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (e, c, d) = (e.clone(), c.clone(), d.clone());
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(conn.try_clone().unwrap());
                    let Some(Received {
                        content_type, body, ..
                    }) = read_request(&mut reader)
                    else {
                        return;
                    };
                    let mut conn = conn;
                    if d.load(Ordering::SeqCst) {
                        let _ = conn.write_all(
                            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        );
                        return;
                    }
                    let body: Value = serde_json::from_slice(&body).unwrap();
                    // A CloudEvents batch carries each registry:2 event as its `data`.
                    let events = match body.as_array() {
                        Some(batch) => batch.clone(),
                        None => body["events"].as_array().unwrap().clone(),
                    };
                    e.lock().unwrap().extend(events);
                    c.lock().unwrap().push(content_type);
                    let _ = conn.write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                });
            }
        });
        Receiver {
            port,
            events,
            content_types,
            down,
        }
    }

    /// The variables that send berth's events here.
    fn env(&self) -> Vec<(String, String)> {
        self.env_in("registry2")
    }

    /// The variables that send berth's events here in `format`.
    fn env_in(&self, format: &str) -> Vec<(String, String)> {
        vec![(
            "REGISTRY_NOTIFICATIONS_ENDPOINTS".into(),
            format!(
                "[{{name: test, url: 'http://127.0.0.1:{}/events', threshold: 2, backoff: 200ms, format: {format}}}]",
                self.port
            ),
        )]
    }

    /// Waits until `done` holds for the events received, at most 30 s; returns them.
    fn wait_for(&self, what: &str, done: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let events = self.events.lock().unwrap().clone();
            if done(&events) {
                return events;
            }
            assert!(
                Instant::now() < deadline,
                "never received {what}; got {events:#?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn find<'a>(events: &'a [Value], action: &str, media: &str, digest: &str) -> Option<&'a Value> {
    events.iter().find(|e| {
        e["action"] == action
            && e["target"]["digest"] == digest
            && (media.is_empty() || e["target"]["mediaType"] == media)
    })
}

#[test]
fn skopeo_push_pull_and_delete_reach_the_receiver() {
    let receiver = Receiver::start();
    let server = Server::start_with(Options {
        env: receiver.env(),
        ..Options::default()
    });
    let tools = Tools::new();
    let img = sample_image("notify");
    let src = tools.scratch("src");
    write_image_layout(&src, "v1", &img);
    let repo = repo("notify");
    let remote = format!("docker://{}/{repo}:v1", server.host());
    let layout = |dir: &std::path::Path| format!("oci:{}:v1", dir.display());
    tools.skopeo(&[
        "copy",
        "--preserve-digests",
        "--dest-tls-verify=false",
        &layout(&src),
        &remote,
    ]);
    let manifest = img.manifest.digest.as_str();
    let events = receiver.wait_for("the push's events", |ev| {
        find(ev, "push", "", manifest).is_some()
    });
    let push = find(&events, "push", "", manifest).unwrap();
    let t = &push["target"];
    assert_eq!(t["repository"], repo.as_str());
    assert_eq!(t["tag"], "v1");
    assert_eq!(t["size"], img.manifest.bytes.len());
    assert_eq!(t["length"], img.manifest.bytes.len());
    assert_eq!(
        t["url"],
        format!("http://{}/v2/{repo}/manifests/{manifest}", server.host())
    );
    assert!(t["mediaType"].as_str().unwrap().contains("manifest"));
    assert_eq!(push["request"]["method"], "PUT");
    assert!(
        push["request"]["useragent"]
            .as_str()
            .unwrap()
            .contains("skopeo")
    );
    assert!(!push["request"]["id"].as_str().unwrap().is_empty());
    assert!(
        push["request"]["addr"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1")
    );
    assert!(!push["id"].as_str().unwrap().is_empty());
    assert!(push["timestamp"].as_str().unwrap().ends_with('Z'));
    assert!(!push["source"]["instanceID"].as_str().unwrap().is_empty());
    for blob in img.blobs() {
        let e = find(&events, "push", "application/octet-stream", &blob.digest)
            .unwrap_or_else(|| panic!("no push event of blob {}", blob.digest));
        assert_eq!(e["target"]["size"], blob.bytes.len());
        assert_eq!(e["request"]["method"], "PUT");
    }

    let out = tools.scratch("out");
    tools.skopeo(&["copy", "--src-tls-verify=false", &remote, &layout(&out)]);
    let events = receiver.wait_for("the pull's events", |ev| {
        find(ev, "pull", "", manifest).is_some()
            && img
                .blobs()
                .iter()
                .all(|b| find(ev, "pull", "", &b.digest).is_some())
    });
    assert_eq!(
        find(&events, "pull", "", manifest).unwrap()["request"]["method"],
        "GET"
    );

    let api = server.api();
    let r = api
        .delete(&format!("/v2/{repo}/manifests/{manifest}"))
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.describe());
    let events = receiver.wait_for("the delete's event", |ev| {
        find(ev, "delete", "", manifest).is_some()
    });
    let delete = find(&events, "delete", "", manifest).unwrap();
    assert_eq!(
        delete["target"],
        serde_json::json!({"repository": repo, "digest": manifest})
    );
    assert_eq!(delete["request"]["method"], "DELETE");
    for ct in receiver.content_types.lock().unwrap().iter() {
        assert_eq!(ct, "application/vnd.docker.distribution.events.v1+json");
    }
}

#[test]
fn events_survive_a_receiver_down_and_a_restart() {
    survive_restart(Metadata::Sqlite);
}

#[test]
fn events_survive_a_receiver_down_and_a_restart_over_postgres() {
    survive_restart(Metadata::Postgres);
}

fn survive_restart(metadata: Metadata) {
    let receiver = Receiver::start();
    receiver.down.store(true, Ordering::SeqCst);
    let Some(mut server) = Server::try_start_with(Options {
        env: receiver.env(),
        metadata,
        ..Options::default()
    }) else {
        return;
    };
    let tools = Tools::new();
    let img = sample_image("notify-restart");
    let src = tools.scratch("src");
    write_image_layout(&src, "v1", &img);
    let repo = repo("notify-restart");
    tools.skopeo(&[
        "copy",
        "--preserve-digests",
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", src.display()),
        &format!("docker://{}/{repo}:v1", server.host()),
    ]);
    // Tried and refused for a while, then berth stops with the events still queued; a pull just
    // before the stop is written by the stop itself (pull events are otherwise written every second).
    std::thread::sleep(Duration::from_secs(2));
    assert!(receiver.events.lock().unwrap().is_empty());
    let r = server.api().get_manifest(&repo, "v1").unwrap();
    assert_eq!(r.status, 200, "{}", r.describe());
    server.restart();
    receiver.down.store(false, Ordering::SeqCst);
    let manifest = img.manifest.digest.clone();
    let events = receiver.wait_for("every event of the push, and the pull", |ev| {
        find(ev, "push", "", &manifest).is_some()
            && img
                .blobs()
                .iter()
                .all(|b| find(ev, "push", "", &b.digest).is_some())
            && find(ev, "pull", "", &manifest).is_some()
    });
    // In order: every blob's push before the manifest's that references them.
    let at = |d: &str| {
        events
            .iter()
            .position(|e| e["action"] == "push" && e["target"]["digest"] == d)
    };
    let manifest_at = at(&manifest).unwrap();
    for b in img.blobs() {
        assert!(at(&b.digest).unwrap() < manifest_at, "{events:#?}");
    }
}

#[test]
fn a_cloudevents_endpoint_gets_each_event_as_a_structured_cloudevent() {
    let receiver = Receiver::start();
    let server = Server::start_with(Options {
        env: receiver.env_in("cloudevents"),
        ..Options::default()
    });
    let tools = Tools::new();
    let img = sample_image("notify-ce");
    let src = tools.scratch("src");
    write_image_layout(&src, "v1", &img);
    let repo = repo("notify-ce");
    tools.skopeo(&[
        "copy",
        "--preserve-digests",
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", src.display()),
        &format!("docker://{}/{repo}:v1", server.host()),
    ]);
    let manifest = img.manifest.digest.as_str();
    let batch = receiver.wait_for("the push's CloudEvent", |ev| {
        ev.iter()
            .any(|ce| ce["data"]["target"]["digest"] == manifest)
    });
    let ce = batch
        .iter()
        .find(|ce| ce["data"]["target"]["digest"] == manifest)
        .unwrap();
    assert_eq!(ce["specversion"], "1.0");
    assert_eq!(ce["type"], "berth.registry.push");
    assert_eq!(ce["subject"], repo.as_str());
    assert_eq!(ce["id"], ce["data"]["id"]);
    assert_eq!(ce["time"], ce["data"]["timestamp"]);
    assert!(ce["source"].as_str().unwrap().starts_with("//"));
    assert_eq!(ce["data"]["target"]["tag"], "v1");
    for ct in receiver.content_types.lock().unwrap().iter() {
        assert_eq!(ct, "application/cloudevents-batch+json");
    }
}

/// A delete from the web interface is announced like the API's: who (the user signed in to the page),
/// from where, and what.
#[test]
fn a_delete_from_the_web_interface_names_its_user() {
    let receiver = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let htpasswd = dir.path().join("htpasswd");
    // alice:secret (and bob, whom this test does not use).
    std::fs::write(&htpasswd, crate::auth::HTPASSWD).unwrap();
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "auth:\n  htpasswd:\n    realm: berth-e2e\n    path: {}\naccess:\n  rules:\n    \
             - repositories: [\"**\"]\n      anonymous: true\n      actions: [pull, push]\n    \
             - repositories: [\"**\"]\n      users: [alice]\n      actions: [pull, push, delete]\n",
            htpasswd.display()
        ),
    )
    .unwrap();
    let server = Server::start_with(Options {
        config: Some(config),
        env: receiver.env(),
        ..Options::default()
    });
    let api = server.api();
    let digest = crate::ui::push(&api, "e2e/notify/ui", "v1", "x", "x");
    let r = api
        .request(
            "POST",
            "/ui/delete/e2e/notify/ui:v1",
            &[
                ("authorization", "Basic YWxpY2U6c2VjcmV0"),
                ("sec-fetch-site", "same-origin"),
                ("user-agent", "a-browser"),
            ],
            Some(b""),
        )
        .unwrap();
    assert_eq!(r.status, 303, "{}", r.describe());
    let events = receiver.wait_for("the delete's event", |ev| {
        ev.iter().any(|e| e["action"] == "delete")
    });
    let delete = events.iter().find(|e| e["action"] == "delete").unwrap();
    assert_eq!(delete["target"]["repository"], "e2e/notify/ui");
    assert_eq!(delete["target"]["tag"], "v1");
    assert_eq!(delete["actor"]["name"], "alice");
    assert_eq!(delete["request"]["method"], "POST");
    assert_eq!(delete["request"]["useragent"], "a-browser");
    assert!(!delete["request"]["id"].as_str().unwrap().is_empty());
    assert!(find(&events, "push", "", &digest).is_some());
}
