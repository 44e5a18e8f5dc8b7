//! Replication from another registry (`Registry::replicate`) against a real registry behind the
//! `Upstream` trait: tags copied with every digest, nothing fetched again when nothing changed, a moved
//! tag followed, a tag deleted upstream kept or deleted as configured, the tag filter honoured.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test: a panic is a failed test"
)]

mod common;
mod proxy_common;

use std::sync::Arc;

use berth_registry as registry;
use bytes::Bytes;
use common::{Env, by_digest, content, index_manifest, push, repo, tag};
use oci::{Digest, RepoName};
use proxy_common::FakeUpstream;
use registry::proxy::Upstream;
use registry::replicate::{Replication, TagRegex, VersionFilter};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// An image of one layer seeded by `seed` in `up`'s `name` (by digest); its digest and size.
async fn image(up: &FakeUpstream, name: &RepoName, seed: u8) -> (Digest, usize) {
    let config = format!(r#"{{"architecture":"amd64","os":"linux","seed":{seed}}}"#);
    let layer = content(4000, seed);
    let c = push(up.reg(), name, config.as_bytes()).await;
    let l = push(up.reg(), name, &layer).await;
    let manifest = common::image_manifest((&c, config.len()), &[(&l, layer.len())]);
    let len = manifest.len();
    let out = up
        .reg()
        .put_manifest(
            name,
            &by_digest(&common::sha256(manifest.as_bytes())),
            Some(OCI_MANIFEST),
            Bytes::from(manifest),
        )
        .await
        .unwrap();
    (out.digest, len)
}

async fn tag_as(up: &FakeUpstream, name: &RepoName, t: &str, digest: &Digest, media_type: &str) {
    let m = up
        .reg()
        .get_manifest(name, &by_digest(digest))
        .await
        .unwrap();
    up.reg()
        .put_manifest(name, &tag(t), Some(media_type), m.payload)
        .await
        .unwrap();
}

fn replication(up: &Arc<FakeUpstream>, tags: &[&str], delete_removed_tags: bool) -> Replication {
    Replication {
        upstream: Arc::clone(up) as Arc<dyn Upstream>,
        repositories: vec![(repo("org/app"), repo("mirror/app"))],
        patterns: Vec::new(),
        prefix: None,
        tags: tags.iter().map(|p| oci::Pattern::tag(p).unwrap()).collect(),
        semver: None,
        regex: None,
        delete_removed_tags,
        concurrency: 1,
    }
}

#[tokio::test]
async fn tags_are_copied_then_kept_in_step() {
    let up = FakeUpstream::new();
    let name = repo("org/app");
    let (v1, _) = image(&up, &name, 1).await;
    let (amd, amd_len) = image(&up, &name, 2).await;
    let (arm, arm_len) = image(&up, &name, 3).await;
    let index = index_manifest(&[(&amd, amd_len), (&arm, arm_len)]);
    let multi = up
        .reg()
        .put_manifest(
            &name,
            &tag("multi"),
            Some(OCI_INDEX),
            Bytes::from(index.clone()),
        )
        .await
        .unwrap()
        .digest;
    tag_as(&up, &name, "v1", &v1, OCI_MANIFEST).await;
    tag_as(&up, &name, "v2", &amd, OCI_MANIFEST).await;

    let local = Env::new();
    let mirror = repo("mirror/app");
    let report = local.reg.replicate(&replication(&up, &[], false)).await;
    assert_eq!(report.failures, vec![]);
    let mut updated = report.tags_updated.clone();
    updated.sort();
    assert_eq!(
        updated,
        ["mirror/app:multi", "mirror/app:v1", "mirror/app:v2"]
    );
    // v1, the index and its two children (v2 is one of them).
    assert_eq!(report.manifests, 4);
    assert_eq!(report.blobs_copied, 6);
    for (t, d) in [("v1", &v1), ("v2", &amd), ("multi", &multi)] {
        let got = local.reg.get_manifest(&mirror, &tag(t)).await.unwrap();
        let want = up.reg().get_manifest(&name, &tag(t)).await.unwrap();
        assert_eq!((&got.digest, &got.payload), (d, &want.payload), "{t}");
    }

    // Nothing changed: a HEAD per tag, nothing fetched.
    let before = up.calls.snapshot();
    let again = local.reg.replicate(&replication(&up, &[], false)).await;
    let after = up.calls.snapshot();
    assert_eq!((again.tags_checked, again.tags_updated.len()), (3, 0));
    assert_eq!(
        (after.0 - before.0, after.1 - before.1, after.2 - before.2),
        (3, 0, 0)
    );

    // v1 moved upstream: followed, its blobs already held are not fetched again.
    tag_as(&up, &name, "v1", &arm, OCI_MANIFEST).await;
    let before = up.calls.snapshot();
    let moved = local.reg.replicate(&replication(&up, &[], false)).await;
    assert_eq!(moved.tags_updated, ["mirror/app:v1"]);
    assert_eq!(up.calls.snapshot().2, before.2, "no blob fetched");
    assert_eq!(
        local
            .reg
            .get_manifest(&mirror, &tag("v1"))
            .await
            .unwrap()
            .digest,
        arm
    );
}

#[tokio::test]
async fn deleted_tags_are_kept_unless_configured_and_the_filter_is_honoured() {
    let up = FakeUpstream::new();
    let name = repo("org/app");
    let (a, _) = image(&up, &name, 1).await;
    let (b, _) = image(&up, &name, 2).await;
    tag_as(&up, &name, "v1", &a, OCI_MANIFEST).await;
    tag_as(&up, &name, "v2", &b, OCI_MANIFEST).await;
    tag_as(&up, &name, "nightly", &b, OCI_MANIFEST).await;
    let local = Env::with_deletes();
    let mirror = repo("mirror/app");

    let report = local.reg.replicate(&replication(&up, &["v*"], false)).await;
    let mut updated = report.tags_updated.clone();
    updated.sort();
    assert_eq!(updated, ["mirror/app:v1", "mirror/app:v2"]);
    assert!(
        local
            .reg
            .get_manifest(&mirror, &tag("nightly"))
            .await
            .is_err()
    );

    // The upstream's deletes are off: its tag goes through its store.
    let v2: oci::Tag = "v2".parse().unwrap();
    assert!(
        metadata::Catalog::delete_tag(&*up.env.meta, &name, &v2)
            .await
            .unwrap()
    );
    let kept = local.reg.replicate(&replication(&up, &["v*"], false)).await;
    assert!(kept.tags_deleted.is_empty());
    assert!(local.reg.get_manifest(&mirror, &tag("v2")).await.is_ok());
    let deleted = local.reg.replicate(&replication(&up, &["v*"], true)).await;
    assert_eq!(deleted.tags_deleted, ["mirror/app:v2"]);
    assert!(local.reg.get_manifest(&mirror, &tag("v2")).await.is_err());
    assert!(local.reg.get_manifest(&mirror, &tag("v1")).await.is_ok());
}

#[tokio::test]
async fn the_semver_and_regex_filters_keep_only_their_tags_among_those_the_patterns_keep() {
    let up = FakeUpstream::new();
    let name = repo("org/app");
    let (a, _) = image(&up, &name, 1).await;
    for t in [
        "1.2.3",
        "v2.0",
        "3.19-rc.1",
        "latest",
        "nightly-2024",
        "1.2.3.4",
        "x1.0",
    ] {
        tag_as(&up, &name, t, &a, OCI_MANIFEST).await;
    }
    let local = Env::new();
    let mut r = replication(&up, &[], false);
    r.semver = Some(VersionFilter::Any);
    let report = local.reg.replicate(&r).await;
    assert_eq!(report.failures, vec![]);
    let mut updated = report.tags_updated.clone();
    updated.sort();
    assert_eq!(
        updated,
        [
            "mirror/app:1.2.3",
            "mirror/app:3.19-rc.1",
            "mirror/app:v2.0"
        ]
    );
    // With a pattern too, both must keep a tag.
    let mut r = replication(&up, &["v*"], false);
    r.semver = Some(VersionFilter::Any);
    let local = Env::new();
    assert_eq!(
        local.reg.replicate(&r).await.tags_updated,
        ["mirror/app:v2.0"]
    );
    // A range and a regex: of the versions in >=1.0, <3 (1.2.3, v2.0; not the pre-release), the one
    // starting with a digit.
    let mut r = replication(&up, &[], false);
    r.semver = Some(VersionFilter::parse(">=1.0, <3").unwrap().unwrap());
    r.regex = Some(TagRegex::parse("^[0-9]").unwrap());
    let local = Env::new();
    assert_eq!(
        local.reg.replicate(&r).await.tags_updated,
        ["mirror/app:1.2.3"]
    );
}

#[tokio::test]
async fn repositories_are_copied_concurrency_at_a_time() {
    let up = FakeUpstream::new();
    let mut r = replication(&up, &[], false);
    r.repositories.clear();
    for i in 0..6u8 {
        let name = repo(&format!("org/app{i}"));
        let (d, _) = image(&up, &name, 10 + i).await;
        tag_as(&up, &name, "v1", &d, OCI_MANIFEST).await;
        r.repositories.push((name, repo(&format!("mirror/app{i}"))));
    }
    r.concurrency = 3;
    // Every blob body stops half way until let go: the fetches under way are the repositories at work.
    let gate = up.hold_blobs();
    let local = Env::new();
    let pass = tokio::spawn({
        let reg = local.reg.clone();
        let r = r.clone();
        async move { reg.replicate(&r).await }
    });
    let started = std::time::Instant::now();
    while up.calls.snapshot().2 < 3 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "fewer than 3 at once"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(up.calls.snapshot().2, 3, "more than 3 repositories at once");
    gate.add_permits(1_000);
    let report = pass.await.unwrap();
    assert_eq!(report.failures, vec![]);
    // In the repositories' order, whichever finished first.
    let expected: Vec<String> = (0..6).map(|i| format!("mirror/app{i}:v1")).collect();
    assert_eq!(report.tags_updated, expected);
}

#[tokio::test]
async fn a_slow_repository_does_not_hold_back_the_others() {
    let up = FakeUpstream::new();
    let mut r = replication(&up, &[], false);
    r.repositories.clear();
    for i in 0..6u8 {
        let name = repo(&format!("org/app{i}"));
        let (d, _) = image(&up, &name, 40 + i).await;
        tag_as(&up, &name, "v1", &d, OCI_MANIFEST).await;
        r.repositories.push((name, repo(&format!("mirror/app{i}"))));
    }
    r.concurrency = 3;
    // The first repository stalls; the five others go through the two slots left, one after another.
    let gate = up.hold_blobs_of(&repo("org/app0"));
    let local = Env::new();
    let pass = tokio::spawn({
        let reg = local.reg.clone();
        let r = r.clone();
        async move { reg.replicate(&r).await }
    });
    let started = std::time::Instant::now();
    let last = repo("mirror/app5");
    while local.reg.get_manifest(&last, &tag("v1")).await.is_err() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "the repositories after a stalled one waited for it"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    gate.add_permits(1_000);
    let report = pass.await.unwrap();
    assert_eq!(report.failures, vec![]);
    let expected: Vec<String> = (0..6).map(|i| format!("mirror/app{i}:v1")).collect();
    assert_eq!(report.tags_updated, expected, "in the repositories' order");
}

#[tokio::test]
async fn patterns_copy_what_the_upstream_catalog_has_under_the_prefix() {
    let up = FakeUpstream::new();
    for (i, name) in ["org/a", "org/b", "org/deep/c", "other/d"]
        .iter()
        .enumerate()
    {
        let name = repo(name);
        let (d, _) = image(&up, &name, 20 + i as u8).await;
        tag_as(&up, &name, "v1", &d, OCI_MANIFEST).await;
    }
    let mut r = replication(&up, &[], false);
    r.repositories = vec![(repo("org/a"), repo("mirror/org/a"))];
    r.patterns = vec![oci::Pattern::repository("org/*").unwrap()];
    r.prefix = Some("mirror".to_string());
    let local = Env::new();
    let report = local.reg.replicate(&r).await;
    assert_eq!(report.failures, vec![]);
    // org/a once (named and matched), org/b found in the catalog; org/deep/c and other/d not matched.
    assert_eq!(report.tags_updated, ["mirror/org/a:v1", "mirror/org/b:v1"]);
    // A repository pushed upstream later is found at the next pass.
    let (d, _) = image(&up, &repo("org/e"), 30).await;
    tag_as(&up, &repo("org/e"), "v1", &d, OCI_MANIFEST).await;
    let later = local.reg.replicate(&r).await;
    assert_eq!(later.tags_updated, ["mirror/org/e:v1"]);
    // An upstream without a catalog: the patterns match nothing, and the report says so (the named
    // repository is still kept in step).
    up.no_catalog
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let (d, _) = image(&up, &repo("org/a"), 31).await;
    tag_as(&up, &repo("org/a"), "v2", &d, OCI_MANIFEST).await;
    let blind = local.reg.replicate(&r).await;
    assert_eq!(blind.tags_updated, ["mirror/org/a:v2"]);
    assert_eq!(blind.failures.len(), 1, "{:?}", blind.failures);
    assert_eq!(blind.failures[0].0, "the upstream's catalog");
    assert!(
        blind.failures[0].1.contains("no catalog"),
        "{:?}",
        blind.failures
    );
}

#[tokio::test]
async fn a_layer_shared_by_repositories_copied_at_once_is_read_once() {
    let up = FakeUpstream::new();
    let mut r = replication(&up, &[], false);
    r.repositories.clear();
    for i in 0..4 {
        let name = repo(&format!("org/same{i}"));
        // The same seed: the same config and layer in every repository.
        let (d, _) = image(&up, &name, 7).await;
        tag_as(&up, &name, "v1", &d, OCI_MANIFEST).await;
        r.repositories
            .push((name, repo(&format!("mirror/same{i}"))));
    }
    r.concurrency = 4;
    let local = Env::new();
    let report = local.reg.replicate(&r).await;
    assert_eq!(report.failures, vec![]);
    assert_eq!(report.tags_updated.len(), 4);
    assert_eq!(
        up.calls.snapshot().2,
        2,
        "the config and the layer, each once"
    );
    assert_eq!((report.blobs_copied, report.blobs_linked), (2, 6));
}

#[tokio::test]
async fn a_repository_the_upstream_lacks_or_cannot_serve_is_reported_and_the_rest_goes_on() {
    let up = FakeUpstream::new();
    let name = repo("org/app");
    let (a, _) = image(&up, &name, 1).await;
    tag_as(&up, &name, "v1", &a, OCI_MANIFEST).await;
    let local = Env::new();
    let mut r = replication(&up, &[], false);
    r.repositories
        .insert(0, (repo("org/none"), repo("mirror/none")));
    let report = local.reg.replicate(&r).await;
    // Absent upstream: nothing to copy, not a failure.
    assert_eq!(report.failures, vec![]);
    assert_eq!(report.tags_updated, ["mirror/app:v1"]);

    up.set_fault(proxy_common::Fault::Down);
    let down = local.reg.replicate(&r).await;
    assert_eq!(down.failures.len(), 2, "{:?}", down.failures);
    assert!(
        local
            .reg
            .get_manifest(&repo("mirror/app"), &tag("v1"))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn one_replica_replicates_at_a_time() {
    let up = FakeUpstream::new();
    let name = repo("org/app");
    let (a, _) = image(&up, &name, 1).await;
    tag_as(&up, &name, "v1", &a, OCI_MANIFEST).await;
    let local = Env::new();
    let held = metadata::JobLocks::try_job_lock(&*local.meta, registry::replicate::REPLICATION_JOB)
        .await
        .unwrap()
        .unwrap();
    let r = [replication(&up, &[], false)];
    assert!(local.reg.replicate_all(&r).await.unwrap().is_none());
    assert!(
        local
            .reg
            .get_manifest(&repo("mirror/app"), &tag("v1"))
            .await
            .is_err()
    );
    assert_eq!(
        local.reg.replication_totals().passes,
        0,
        "no pass without the lock"
    );
    held.release().await;
    let reports = local.reg.replicate_all(&r).await.unwrap().unwrap();
    assert_eq!(reports[0].tags_updated, ["mirror/app:v1"]);
    // The process's totals (metrics, the registry page): one pass, one tag, the layer's bytes.
    let totals = local.reg.replication_totals();
    assert_eq!(
        (totals.passes, totals.tags_updated, totals.failures),
        (1, 1, 0)
    );
    assert_eq!(totals.bytes_copied, reports[0].bytes_copied);
    assert!(
        totals.bytes_copied > 0 && totals.last_pass > 1_600_000_000,
        "{totals:?}"
    );
}

/// An artifact of `artifact_type` in `up`'s `name` that refers to `subject`; its digest.
async fn referrer(
    up: &FakeUpstream,
    name: &RepoName,
    artifact_type: &str,
    subject: &Digest,
) -> Digest {
    let payload = format!(r#"{{"about":"{subject}","type":"{artifact_type}"}}"#);
    let empty = push(up.reg(), name, b"{}").await;
    let p = push(up.reg(), name, payload.as_bytes()).await;
    let subject_len = up
        .reg()
        .get_manifest(name, &by_digest(subject))
        .await
        .unwrap()
        .payload
        .len();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","artifactType":"{artifact_type}",
        "config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{empty}","size":2}},
        "layers":[{{"mediaType":"application/json","digest":"{p}","size":{}}}],
        "subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{subject}","size":{subject_len}}}}}"#,
        payload.len()
    );
    up.reg()
        .put_manifest(
            name,
            &by_digest(&common::sha256(manifest.as_bytes())),
            Some(OCI_MANIFEST),
            Bytes::from(manifest),
        )
        .await
        .unwrap()
        .digest
}

#[tokio::test]
async fn referrers_follow_their_image_even_when_pushed_after_it() {
    let up = FakeUpstream::new();
    let name = repo("org/app");
    let (v1, _) = image(&up, &name, 1).await;
    tag_as(&up, &name, "v1", &v1, OCI_MANIFEST).await;
    let sbom = referrer(&up, &name, "application/spdx+json", &v1).await;
    let local = Env::new();
    let mirror = repo("mirror/app");

    let first = local.reg.replicate(&replication(&up, &[], false)).await;
    assert_eq!(first.failures, vec![]);
    assert_eq!((first.referrers, first.manifests), (1, 2));
    let listed = |reg: &registry::Registry| {
        let (reg, mirror, v1) = (reg.clone(), mirror.clone(), v1.clone());
        async move {
            let found = reg.referrers(&mirror, &v1, None).await.unwrap().manifests;
            found.into_iter().map(|r| r.digest).collect::<Vec<_>>()
        }
    };
    assert_eq!(listed(&local.reg).await, std::slice::from_ref(&sbom));

    // A signature pushed after the image (the tag unchanged), and one signing the SBOM: both come.
    let signature = referrer(
        &up,
        &name,
        "application/vnd.dev.cosign.artifact.sig.v1+json",
        &v1,
    )
    .await;
    let sbom_signature = referrer(
        &up,
        &name,
        "application/vnd.dev.cosign.artifact.sig.v1+json",
        &sbom,
    )
    .await;
    let later = local.reg.replicate(&replication(&up, &[], false)).await;
    assert_eq!(later.failures, vec![]);
    assert_eq!((later.tags_updated.len(), later.referrers), (0, 2));
    let mut got = listed(&local.reg).await;
    got.sort();
    let mut want = vec![sbom.clone(), signature];
    want.sort();
    assert_eq!(got, want);
    let of_sbom = local
        .reg
        .referrers(&mirror, &sbom, None)
        .await
        .unwrap()
        .manifests;
    assert_eq!(of_sbom.len(), 1);
    assert_eq!(of_sbom[0].digest, sbom_signature);

    // Everything in place: nothing copied again.
    let again = local.reg.replicate(&replication(&up, &[], false)).await;
    assert_eq!((again.referrers, again.manifests), (0, 0));
}
