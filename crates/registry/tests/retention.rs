//! Retention rules over a real store: tags a rule does not keep go, pulls (GET, not HEAD) keep a tag
//! alive, untagged manifests go once old enough while the children of a tagged index stay, immutable
//! and cached repositories are left alone, a dry run deletes nothing, and one run at a time holds the lock.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test: a panic is a failed test"
)]

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use berth_registry as registry;
use bytes::Bytes;
use common::{Env, by_digest, index_manifest, push_image, repo, tag};
use metadata::{Catalog, JobLocks, ManifestPull, TagAges};
use oci::{Pattern, RepoName};
use registry::retention::{Keep, RETENTION_JOB, RetentionReport, RetentionRule};
use registry::{Error, ImmutableTags, Registry, Settings};

const DAY: i64 = 86_400;

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn days(n: u64) -> Option<Duration> {
    Some(Duration::from_secs(n * 86_400))
}

fn rule(pattern: &str, keep: Keep, untagged: Option<Duration>) -> RetentionRule {
    RetentionRule {
        repositories: vec![Pattern::repository(pattern).unwrap()],
        keep,
        untagged,
    }
}

async fn apply(
    reg: &Registry,
    rules: &[RetentionRule],
    dry_run: bool,
    days_later: i64,
) -> RetentionReport {
    reg.apply_retention_as_of(rules, dry_run, now() + days_later * DAY)
        .await
        .unwrap()
        .expect("the job lock was free")
}

async fn tags(env: &Env, r: &RepoName) -> Vec<String> {
    env.meta.list_tags(r, None, 100).await.unwrap()
}

#[tokio::test]
async fn tags_a_rule_does_not_keep_go_and_pulled_ones_stay() {
    let env = Env::new();
    let (app, other) = (repo("team/app"), repo("elsewhere/app"));
    for (i, t) in ["v1.0.0", "dev-1", "dev-2", "dev-3"].iter().enumerate() {
        push_image(&env.reg, &app, t, i as u8).await;
    }
    push_image(&env.reg, &other, "dev-1", 9).await;
    // dev-2 is pulled (GET); dev-3 only looked at (HEAD): a HEAD is no pull.
    env.reg.get_manifest(&app, &tag("dev-2")).await.unwrap();
    env.reg.head_manifest(&app, &tag("dev-3")).await.unwrap();
    let rules = [rule(
        "team/**",
        Keep {
            tags: vec![Pattern::tag("v*").unwrap()],
            pulled_within: days(30),
            ..Keep::default()
        },
        None,
    )];

    // Now, everything is young: pushing counts as using.
    let report = apply(&env.reg, &rules, false, 0).await;
    assert!(report.rules[0].tags.is_empty(), "{report}");

    // Sixty days on, as a dry run: what would go, and nothing goes.
    let report = apply(&env.reg, &rules, true, 60).await;
    let would: Vec<_> = report.rules[0]
        .tags
        .iter()
        .map(|(_, t, _)| t.to_string())
        .collect();
    assert_eq!(
        would,
        ["dev-1", "dev-2", "dev-3"],
        "pulled today, but 60 days ago from then"
    );
    assert_eq!(tags(&env, &app).await.len(), 4);
    assert!(
        report.to_string().contains("would delete 3 tags"),
        "{report}"
    );

    // The runs wrote the pulls noted: dev-2's GET, not dev-3's HEAD.
    let ages = env.meta.tag_ages(&app).await.unwrap();
    let pulled: Vec<_> = ages
        .iter()
        .filter(|a| a.pulled_at.is_some())
        .map(|a| a.tag.to_string())
        .collect();
    assert_eq!(pulled, ["dev-2"]);

    // dev-2 pulled again twenty days on; thirty-one days on, it is the one dev tag kept.
    let dev2 = ages.iter().find(|a| a.tag.as_str() == "dev-2").unwrap();
    let pull = ManifestPull {
        repo: app.clone(),
        digest: dev2.digest.clone(),
        at: now() + 20 * DAY,
    };
    env.meta.record_pulls(&[pull]).await.unwrap();
    let report = apply(&env.reg, &rules, false, 31).await;
    let gone: Vec<_> = report.rules[0]
        .tags
        .iter()
        .map(|(_, t, _)| t.to_string())
        .collect();
    assert_eq!(gone, ["dev-1", "dev-3"]);
    assert_eq!(report.rules[0].kept, 2);
    assert_eq!(tags(&env, &app).await, ["dev-2", "v1.0.0"]);
    // The manifests stay (no `untagged`), and a repository no rule governs is untouched.
    assert_eq!(tags(&env, &other).await, ["dev-1"]);
    assert_eq!(report.rules[0].repositories, 1);

    // The process's totals (the registry page's): two runs that deleted, the dry run not counted.
    let totals = env.reg.retention_totals();
    assert_eq!((totals.runs, totals.tags, totals.manifests), (2, 2, 0));
    assert!(totals.last_run > 1_600_000_000, "{totals:?}");
}

#[tokio::test]
async fn latest_keeps_the_newest_and_untagged_manifests_go_when_old() {
    let env = Env::new();
    let r = repo("app");
    let mut digests = Vec::new();
    for (i, t) in ["b1", "b2", "b3"].iter().enumerate() {
        digests.push(push_image(&env.reg, &r, t, i as u8).await.0);
        // Push times are whole seconds: one apart, so "latest" has an order to keep.
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    // A tagged index whose child is untagged: the child is reached and stays.
    let (child, child_json) = push_image(&env.reg, &r, "tmp", 7).await;
    let index = index_manifest(&[(&child, child_json.len())]);
    env.reg
        .put_manifest(
            &r,
            &tag("multi"),
            Some("application/vnd.oci.image.index.v1+json"),
            Bytes::from(index),
        )
        .await
        .unwrap();
    env.meta
        .delete_tag(&r, &"tmp".parse().unwrap())
        .await
        .unwrap();
    let rules = [rule(
        "app",
        Keep {
            latest: Some(3),
            ..Keep::default()
        },
        days(7),
    )];

    // Today: b1 goes (not among the three latest: multi, b3, b2), its manifest is younger than 7 days and stays.
    let report = apply(&env.reg, &rules, false, 0).await;
    let gone: Vec<_> = report.rules[0]
        .tags
        .iter()
        .map(|(_, t, _)| t.to_string())
        .collect();
    assert_eq!(gone, ["b1"], "{report}");
    assert!(report.rules[0].manifests.is_empty());
    assert!(
        env.reg
            .get_manifest(&r, &by_digest(&digests[0]))
            .await
            .is_ok()
    );

    // Eight days on: the untagged b1 manifest goes; the index's child stays.
    let report = apply(&env.reg, &rules, false, 8).await;
    assert_eq!(report.rules[0].manifests, [(r.clone(), digests[0].clone())]);
    assert!(matches!(
        env.reg.get_manifest(&r, &by_digest(&digests[0])).await,
        Err(Error::ManifestUnknown(_))
    ));
    assert!(env.reg.get_manifest(&r, &by_digest(&child)).await.is_ok());
    assert_eq!(tags(&env, &r).await, ["b2", "b3", "multi"]);
}

#[tokio::test]
async fn immutable_tags_stay_and_one_run_holds_the_lock() {
    let env = Env::with_config(Settings {
        immutable_tags: vec![ImmutableTags {
            repositories: vec![Pattern::repository("prod/**").unwrap()],
            tags: Vec::new(),
        }],
        ..Settings::default()
    });
    let r = repo("prod/app");
    push_image(&env.reg, &r, "old", 1).await;
    let rules = [rule(
        "**",
        Keep {
            latest: Some(0),
            ..Keep::default()
        },
        None,
    )];
    let report = apply(&env.reg, &rules, false, 400).await;
    assert!(report.rules[0].tags.is_empty(), "{report}");
    assert_eq!(tags(&env, &r).await, ["old"]);

    let held = env.meta.try_job_lock(RETENTION_JOB).await.unwrap().unwrap();
    assert!(
        env.reg
            .apply_retention(&rules, false)
            .await
            .unwrap()
            .is_none()
    );
    drop(held);
}

#[tokio::test]
async fn read_only_refuses_a_run_but_not_a_dry_run() {
    let env = Env::with_config(Settings {
        read_only: true,
        ..Settings::default()
    });
    let rules = [rule(
        "**",
        Keep {
            latest: Some(1),
            ..Keep::default()
        },
        None,
    )];
    assert!(matches!(
        env.reg.apply_retention(&rules, false).await,
        Err(Error::Unsupported(_))
    ));
    assert!(
        env.reg
            .apply_retention(&rules, true)
            .await
            .unwrap()
            .is_some()
    );
}
