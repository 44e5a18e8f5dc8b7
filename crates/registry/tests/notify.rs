//! Notifications over real storage: which events each operation queues (in the change's transaction,
//! in registry:2's shape, filtered per endpoint), pull events in batches, and delivery: in order, with
//! retries (threshold, then backoff), removed once accepted, by one replica at a time.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test: a panic is a failed test"
)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_registry as registry;
use bytes::Bytes;
use common::*;
use metadata::Outbox;
use metadata::sqlite::SqliteStore;
use registry::notify::event::{ENVELOPE_MEDIA_TYPE, Format, RequestRecord, SourceRecord};
use registry::notify::{DeliveryObserver, Endpoint, Notifications, Origin, Sink};
use registry::{BoxError, Registry};
use serde_json::Value;

fn endpoint(name: &str) -> Endpoint {
    Endpoint {
        name: name.to_string(),
        url: format!("http://{name}.invalid/events"),
        headers: Vec::new(),
        timeout: Duration::from_secs(1),
        threshold: 2,
        backoff: Duration::from_millis(300),
        ignored_media_types: Vec::new(),
        ignored_actions: Vec::new(),
        format: Format::Registry2,
    }
}

fn notifying(reg: &Registry, endpoints: Vec<Endpoint>) -> Registry {
    reg.clone().with_notifications(Notifications {
        endpoints,
        include_references: true,
        source: SourceRecord {
            addr: "test:5000".into(),
            instance_id: String::new(),
        },
    })
}

/// The events queued for `endpoint`, parsed.
async fn queued(meta: &SqliteStore, endpoint: &str) -> Vec<Value> {
    meta.pending_events(endpoint, 1000)
        .await
        .unwrap()
        .iter()
        .map(|e| serde_json::from_str(&e.payload).unwrap())
        .collect()
}

fn summary(events: &[Value]) -> Vec<(String, String)> {
    events
        .iter()
        .map(|e| {
            let t = &e["target"];
            let what = if t["tag"].is_string() && t["digest"].is_null() {
                format!("tag {}", t["tag"].as_str().unwrap())
            } else {
                t["mediaType"].as_str().unwrap_or("-").to_string()
            };
            (e["action"].as_str().unwrap().to_string(), what)
        })
        .collect()
}

#[tokio::test]
async fn changes_queue_their_events_in_registry2s_shape_per_endpoint() {
    let env = Env::with_deletes();
    let mut no_blobs = endpoint("manifests-only");
    no_blobs.ignored_media_types = vec!["application/octet-stream".into()];
    let mut no_deletes = endpoint("no-deletes");
    no_deletes.ignored_actions = vec!["delete".into()];
    let reg = notifying(&env.reg, vec![endpoint("all"), no_blobs, no_deletes]);
    let r = repo("team/app");
    let origin = Origin {
        request: RequestRecord {
            id: "req-1".into(),
            addr: "10.0.0.7".into(),
            host: "registry.test".into(),
            method: "PUT".into(),
            useragent: "skopeo/1.9".into(),
        },
        actor: "alice".into(),
        base_url: "https://registry.test".into(),
    };
    let (digest, manifest) = registry::notify::within(origin, push_image(&reg, &r, "v1", 1)).await;
    let other = repo("team/other");
    let layer = sha256(&content(3000, 1));
    reg.mount_blob(&other, &layer, Some(&r)).await.unwrap();
    reg.delete_manifest(&r, &tag("v1")).await.unwrap();
    reg.delete_manifest(&r, &by_digest(&digest)).await.unwrap();
    reg.delete_blob(&r, &layer).await.unwrap();
    // Deletes of what is not there fail and queue nothing.
    reg.delete_manifest(&r, &tag("v1")).await.unwrap_err();

    let all = queued(&env.meta, "all").await;
    let m = "application/vnd.oci.image.manifest.v1+json";
    let blob = "application/octet-stream";
    let s = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(
        summary(&all),
        [
            s("push", blob),
            s("push", blob),
            s("push", m),
            s("mount", blob),
            s("delete", "tag v1"),
            s("delete", "-"),
            s("delete", "-"),
        ]
    );
    let push = &all[2];
    assert_eq!(push["target"]["repository"], "team/app");
    assert_eq!(push["target"]["digest"], digest.to_string());
    assert_eq!(push["target"]["tag"], "v1");
    assert_eq!(push["target"]["size"], manifest.len());
    assert_eq!(push["target"]["length"], manifest.len());
    assert_eq!(
        push["target"]["url"],
        format!("https://registry.test/v2/team/app/manifests/{digest}")
    );
    // includereferences: the config and the layer.
    assert_eq!(push["target"]["references"].as_array().unwrap().len(), 2);
    assert_eq!(push["request"]["id"], "req-1");
    assert_eq!(push["request"]["addr"], "10.0.0.7");
    assert_eq!(push["request"]["useragent"], "skopeo/1.9");
    assert_eq!(push["actor"]["name"], "alice");
    assert_eq!(push["source"]["addr"], "test:5000");
    assert!(!push["source"]["instanceID"].as_str().unwrap().is_empty());
    assert!(!push["id"].as_str().unwrap().is_empty());
    assert_eq!(all[3]["target"]["fromRepository"], "team/app");
    assert_eq!(all[3]["target"]["repository"], "team/other");
    assert_eq!(
        all[5]["target"],
        serde_json::json!({"repository": "team/app", "digest": digest.to_string()})
    );
    // Outside a request's scope, events have no request.
    assert!(all[3]["request"].as_object().unwrap().is_empty());

    let manifests_only = summary(&queued(&env.meta, "manifests-only").await);
    assert_eq!(
        manifests_only,
        [
            s("push", m),
            s("delete", "tag v1"),
            s("delete", "-"),
            s("delete", "-")
        ]
    );
    let no_deletes = summary(&queued(&env.meta, "no-deletes").await);
    assert_eq!(no_deletes.len(), 4, "{no_deletes:?}");
}

#[tokio::test]
async fn without_endpoints_nothing_is_queued_and_a_refused_push_queues_nothing() {
    let env = Env::with_deletes();
    let r = repo("app");
    push_image(&env.reg, &r, "v1", 2).await;
    assert!(env.meta.queued_events().await.unwrap().is_empty());

    let reg = notifying(&env.reg, vec![endpoint("e")]);
    let missing = sha256(b"never pushed");
    let manifest = image_manifest((&missing, 12), &[]);
    reg.put_manifest(&r, &tag("broken"), None, Bytes::from(manifest))
        .await
        .unwrap_err();
    assert!(env.meta.queued_events().await.unwrap().is_empty());
}

#[tokio::test]
async fn pulls_are_queued_in_batches_and_a_head_is_no_pull() {
    let env = Env::new();
    let reg = notifying(&env.reg, vec![endpoint("e")]);
    let r = repo("app");
    let (digest, _) = push_image(&env.reg, &r, "v1", 3).await;
    reg.head_manifest(&r, &tag("v1")).await.unwrap();
    reg.get_manifest(&r, &tag("v1")).await.unwrap();
    let layer = sha256(&content(3000, 3));
    // A read that is not a client's GET (the web interface's) is no pull either.
    pull(&reg, &r, &layer).await.unwrap();
    reg.get_blob_file(&r, &layer, None).await.unwrap();
    assert!(queued(&env.meta, "e").await.is_empty(), "written at once");
    reg.flush_pull_events().await;
    let events = queued(&env.meta, "e").await;
    assert_eq!(events.len(), 2, "{events:#?}");
    assert_eq!(events[0]["action"], "pull");
    assert_eq!(events[0]["target"]["digest"], digest.to_string());
    assert_eq!(events[0]["target"]["tag"], "v1");
    assert_eq!(events[1]["action"], "pull");
    assert_eq!(events[1]["target"]["digest"], layer.to_string());
}

/// A sink that records what it was sent, refusing the first `refuse` posts.
#[derive(Default)]
struct Recorder {
    refuse: AtomicUsize,
    posts: Mutex<Vec<(Instant, bool, Vec<Value>)>>,
}

#[async_trait::async_trait]
impl Sink for Recorder {
    async fn post(
        &self,
        endpoint: &Endpoint,
        content_type: &'static str,
        body: String,
    ) -> Result<(), BoxError> {
        assert_eq!(endpoint.name, "e");
        assert_eq!(content_type, ENVELOPE_MEDIA_TYPE);
        // A receiver that takes a moment, as a real one does.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let envelope: Value = serde_json::from_str(&body).unwrap();
        let events = envelope["events"].as_array().unwrap().clone();
        let refused = self
            .refuse
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        self.posts
            .lock()
            .unwrap()
            .push((Instant::now(), !refused, events));
        if refused {
            Err("refused".into())
        } else {
            Ok(())
        }
    }
}

#[derive(Default)]
struct Counts {
    delivered: AtomicUsize,
    failed: AtomicUsize,
}

impl DeliveryObserver for Counts {
    fn delivered(&self, _: &str, events: u64) {
        self.delivered.fetch_add(events as usize, Ordering::SeqCst);
    }
    fn failed(&self, _: &str, events: u64) {
        self.failed.fetch_add(events as usize, Ordering::SeqCst);
    }
    fn queued(&self, _: &str, _: u64) {}
}

/// Waits until `meta` has no event queued, at most 20 s.
async fn drained(meta: &SqliteStore) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !meta.queued_events().await.unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the outbox never emptied");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_is_in_order_retried_with_backoff_and_removed_once_accepted() {
    let env = Env::new();
    let reg = notifying(&env.reg, vec![endpoint("e")]);
    let r = repo("app");
    for seed in 0..3 {
        push_image(&reg, &r, &format!("v{seed}"), seed).await;
    }
    let expected: Vec<String> = queued(&env.meta, "e")
        .await
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(expected.len(), 9);

    let sink = Arc::new(Recorder::default());
    sink.refuse.store(3, Ordering::SeqCst);
    let counts = Arc::new(Counts::default());
    let worker = tokio::spawn(reg.clone().run_notifications(sink.clone(), counts.clone()));
    drained(&env.meta).await;

    let posts = sink.posts.lock().unwrap().clone();
    // Three refusals of the same batch: the second comes at once, the third after the backoff (the
    // threshold of 2 failures in a row reached), then it is accepted.
    assert!(posts.len() >= 4, "{}", posts.len());
    assert!(!posts[0].1 && !posts[1].1 && !posts[2].1 && posts[3].1);
    assert_eq!(posts[0].2, posts[3].2, "the same batch is retried");
    assert!(posts[1].0 - posts[0].0 < Duration::from_millis(250));
    assert!(posts[2].0 - posts[1].0 >= Duration::from_millis(300));
    let delivered: Vec<String> = posts
        .iter()
        .filter(|p| p.1)
        .flat_map(|p| p.2.iter().map(|e| e["id"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(delivered, expected, "each once, in order");
    assert_eq!(counts.delivered.load(Ordering::SeqCst), 9);
    assert_eq!(counts.failed.load(Ordering::SeqCst), 27);

    // Written later, delivered promptly: the write wakes the worker.
    let at = Instant::now();
    reg.delete_manifest(&r, &tag("v0")).await.unwrap_err(); // deletes are off: nothing queued
    push_image(&reg, &r, "later", 9).await;
    drained(&env.meta).await;
    assert!(
        at.elapsed() < Duration::from_millis(900),
        "{:?}",
        at.elapsed()
    );
    worker.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_at_a_time_delivers() {
    let env = Env::new();
    let second = SqliteStore::open(&env.dir.path().join("metadata.db")).unwrap();
    let replicas = [
        notifying(&env.reg, vec![endpoint("e")]),
        notifying(
            &env.registry_with_meta(Arc::new(second)),
            vec![endpoint("e")],
        ),
    ];
    let r = repo("app");
    for seed in 0..4 {
        push_image(
            &replicas[usize::from(seed % 2)],
            &r,
            &format!("v{seed}"),
            seed,
        )
        .await;
    }
    // Both start on a full queue: without the job lock both would post its first batch.
    let sink = Arc::new(Recorder::default());
    let workers: Vec<_> = replicas
        .iter()
        .map(|reg| tokio::spawn(reg.clone().run_notifications(sink.clone(), Arc::new(()))))
        .collect();
    drained(&env.meta).await;
    let ids: Vec<String> = sink
        .posts
        .lock()
        .unwrap()
        .iter()
        .flat_map(|p| p.2.iter().map(|e| e["id"].as_str().unwrap().to_string()))
        .collect();
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(ids.len(), 12);
    assert_eq!(unique.len(), 12, "an event was delivered twice");
    for w in workers {
        w.abort();
    }
}
