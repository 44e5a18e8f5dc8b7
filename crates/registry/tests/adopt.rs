//! Adopting a registry:2 tree made by hand: what is indexed (layer links, every manifest revision,
//! indexes after their children, referrers, current tags), what is reported and not adopted (schema1,
//! missing and corrupt bytes, tags on deleted manifests), that the images are served from the tree's
//! bytes with no copy, and that the tree is never written.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test: a panic is a failed test"
)]

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use berth_registry as registry;
use blobs::BlobStore;
use blobs::fs::FsBlobStore;
use blobs::registry2::fallback::WithRegistry2;
use blobs::registry2::fs::FsRegistry2Tree;
use blobs::registry2::{TREE, blob_data_path};
use common::{by_digest, content, image_manifest, index_manifest, pull, repo, sha256, tag};
use metadata::sqlite::SqliteStore;
use metadata::{AdoptCursor, AdoptProgress};
use oci::Digest;
use registry::adopt::{AdoptOptions, AdoptReport, SkipKind};
use registry::{Page, Registry, Settings};

/// registry:2's tree under a root, written as registry:2 writes it.
struct Tree<'a>(&'a Path);

impl Tree<'_> {
    fn write(&self, relative: &str, bytes: &[u8]) {
        let path = self.0.join(TREE).join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    /// A blob's bytes; returns its digest.
    fn blob(&self, bytes: &[u8]) -> Digest {
        let digest = sha256(bytes);
        self.write(&blob_data_path(&digest), bytes);
        digest
    }

    fn layer_link(&self, repo: &str, digest: &Digest) {
        let path = format!("repositories/{repo}/_layers/sha256/{}/link", digest.hex());
        self.write(&path, digest.to_string().as_bytes());
    }

    /// A manifest pushed by digest: its bytes and its revision link.
    fn manifest(&self, repo: &str, json: &str) -> Digest {
        let digest = self.blob(json.as_bytes());
        self.revision_link(repo, &digest);
        digest
    }

    fn revision_link(&self, repo: &str, digest: &Digest) {
        let path = format!(
            "repositories/{repo}/_manifests/revisions/sha256/{}/link",
            digest.hex()
        );
        self.write(&path, digest.to_string().as_bytes());
    }

    fn tag(&self, repo: &str, tag: &str, digest: &Digest) {
        let base = format!("repositories/{repo}/_manifests/tags/{tag}");
        self.write(
            &format!("{base}/current/link"),
            digest.to_string().as_bytes(),
        );
        let index = format!("{base}/index/sha256/{}/link", digest.hex());
        self.write(&index, digest.to_string().as_bytes());
    }

    /// Every file of the tree and its bytes.
    fn snapshot(&self) -> BTreeMap<String, Vec<u8>> {
        fn walk(dir: &Path, base: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, base, out);
                } else {
                    let name = path.strip_prefix(base).unwrap().display().to_string();
                    out.insert(name, std::fs::read(&path).unwrap());
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(&self.0.join(TREE), self.0, &mut out);
        out
    }
}

/// A registry over berth's layout in `root`, reading registry:2's tree there too.
fn registry(root: &Path) -> (Registry, Arc<FsBlobStore>, FsRegistry2Tree) {
    let (reg, own, tree, _) = registry_and_meta(root);
    (reg, own, tree)
}

fn registry_and_meta(
    root: &Path,
) -> (
    Registry,
    Arc<FsBlobStore>,
    FsRegistry2Tree,
    Arc<SqliteStore>,
) {
    let own = Arc::new(FsBlobStore::open(root).unwrap());
    let tree = FsRegistry2Tree::new(root);
    let blobs = WithRegistry2::new(own.clone(), Arc::new(tree.clone()));
    let meta = Arc::new(SqliteStore::open(&root.join("metadata.sqlite")).unwrap());
    let settings = Settings {
        delete_enabled: true,
        ..Settings::default()
    };
    (
        Registry::new(Arc::new(blobs), meta.clone(), settings),
        own,
        tree,
        meta,
    )
}

async fn adopt(reg: &Registry, tree: &FsRegistry2Tree, verify: bool) -> AdoptReport {
    reg.adopt_registry2(tree, AdoptOptions { verify })
        .await
        .unwrap()
        .expect("the job lock is free")
}

async fn tags(reg: &Registry, name: &str) -> Vec<String> {
    reg.list_tags(&repo(name), &Page::default())
        .await
        .unwrap()
        .0
}

/// An OCI artifact about `subject`.
fn artifact(subject: (&Digest, usize), config: &Digest) -> String {
    format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.example.sbom","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{config}","size":2}},"layers":[{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{config}","size":2}}],"subject":{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":{}}}}}"#,
        subject.0, subject.1
    )
}

#[tokio::test]
async fn adopts_every_image_of_a_tree_made_by_hand_without_writing_it() {
    let dir = tempfile::tempdir().unwrap();
    let t = Tree(dir.path());
    // team/app: two images sharing a layer, an index over both, an artifact about the first, and an
    // old revision whose tag was deleted.
    let (config_a, config_b) = (content(100, 1), content(120, 2));
    let (shared, own) = (content(5000, 3), content(3000, 4));
    let (ca, cb, ls, lo) = (
        t.blob(&config_a),
        t.blob(&config_b),
        t.blob(&shared),
        t.blob(&own),
    );
    let empty = t.blob(b"{}");
    for d in [&ca, &cb, &ls, &lo, &empty] {
        t.layer_link("team/app", d);
    }
    let image_a = image_manifest((&ca, 100), &[(&ls, 5000)]);
    let image_b = image_manifest((&cb, 120), &[(&ls, 5000), (&lo, 3000)]);
    let (da, db) = (sha256(image_a.as_bytes()), sha256(image_b.as_bytes()));
    // An index whose digest sorts before its children's, so the walk meets it first and it must wait.
    let index = (0..)
        .map(|n| {
            let json = index_manifest(&[(&da, image_a.len()), (&db, image_b.len())]);
            json.replacen('{', &format!(r#"{{"annotations":{{"n":"{n}"}},"#), 1)
        })
        .find(|json| sha256(json.as_bytes()).hex() < da.hex().min(db.hex()))
        .unwrap();
    let ma = t.manifest("team/app", &image_a);
    let mb = t.manifest("team/app", &image_b);
    let mi = t.manifest("team/app", &index);
    let sbom = artifact((&ma, image_a.len()), &empty);
    let ms = t.manifest("team/app", &sbom);
    t.tag("team/app", "a", &ma);
    t.tag("team/app", "multi", &mi);
    // A tag registry:2 deleted leaves nothing under tags/, only the manifest's revision.
    let old = image_manifest((&ca, 100), &[(&lo, 3000)]);
    let mold = t.manifest("team/app", &old);
    // team/app/sub: a nested repository sharing the layer (a cross-repository mount).
    t.layer_link("team/app/sub", &ca);
    t.layer_link("team/app/sub", &ls);
    let msub = t.manifest("team/app/sub", &image_a);
    t.tag("team/app/sub", "latest", &msub);
    // legacy: a schema1 manifest, a revision and a layer link without bytes, a tag on a deleted manifest.
    let schema1 = r#"{"schemaVersion":1,"name":"legacy","tag":"old","fsLayers":[],"history":[],"signatures":[]}"#;
    let m1 = t.manifest("legacy", schema1);
    t.tag("legacy", "old", &m1);
    let gone = sha256(b"bytes registry:2 lost");
    t.layer_link("legacy", &gone);
    t.revision_link("legacy", &sha256(b"a manifest registry:2 lost"));
    t.tag(
        "legacy",
        "deleted",
        &sha256(b"a manifest deleted in registry:2"),
    );
    // An index whose child never comes: it waits, then is reported.
    let lost_child = sha256(b"a child registry:2 lost");
    let orphan = t.manifest("legacy", &index_manifest(&[(&lost_child, 10)]));

    let before = t.snapshot();
    let (reg, own, tree) = registry(dir.path());
    let report = adopt(&reg, &tree, false).await;

    assert_eq!(report.repositories, 3, "{report}");
    assert_eq!(report.manifests, 6, "{report}");
    assert_eq!(report.tags, 3, "{report}");
    // The metrics' view of it.
    let tally = reg.adopt_tally();
    assert_eq!((tally.done, tally.total, tally.finished), (3, 3, true));
    assert_eq!(report.layer_links, 7, "{report}");
    let lines: Vec<String> = report.skipped.iter().map(ToString::to_string).collect();
    assert_eq!(report.count(SkipKind::Schema1), 1, "{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("schema1 manifest legacy@{m1}"))),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("missing blob {gone} of legacy"))),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("missing tag legacy:old") && l.contains(&m1.to_string())),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("missing tag legacy:deleted")),
        "{lines:#?}"
    );
    assert!(
        lines.contains(&format!(
            "missing manifest legacy@{orphan}: it lists {lost_child}, which is not in the repository"
        )),
        "{lines:#?}"
    );
    assert_eq!(report.skipped.len(), 6, "{lines:#?}");

    // The catalog and the tags are registry:2's (less a repository with nothing berth can serve).
    let catalog = reg.catalog(&Page::default()).await.unwrap().0;
    assert_eq!(catalog, ["team/app", "team/app/sub"]);
    assert_eq!(tags(&reg, "team/app").await, ["a", "multi"]);
    assert_eq!(tags(&reg, "team/app/sub").await, ["latest"]);
    // Every revision pulls back byte for byte, by tag and by digest; the deleted tag stays deleted.
    let app = repo("team/app");
    for (reference, json) in [
        (tag("a"), &image_a),
        (tag("multi"), &index),
        (by_digest(&mb), &image_b),
        (by_digest(&mold), &old),
        (by_digest(&ms), &sbom),
    ] {
        let got = reg.get_manifest(&app, &reference).await.unwrap();
        assert_eq!(got.payload, json.as_bytes(), "{reference}");
    }
    assert_eq!(
        reg.get_manifest(&app, &by_digest(&mi))
            .await
            .unwrap()
            .media_type,
        "application/vnd.oci.image.index.v1+json"
    );
    let referrers = reg.referrers(&app, &ma, None).await.unwrap().manifests;
    assert_eq!(
        referrers.iter().map(|r| &r.digest).collect::<Vec<_>>(),
        [&ms]
    );
    assert_eq!(
        referrers[0].artifact_type.as_deref(),
        Some("application/vnd.example.sbom")
    );
    // Blobs through the repositories they are linked to, from the tree's bytes.
    assert_eq!(pull(&reg, &app, &ls).await.unwrap(), shared);
    assert_eq!(
        pull(&reg, &repo("team/app/sub"), &ls).await.unwrap(),
        shared
    );
    assert!(
        pull(&reg, &repo("team/app/sub"), &lo).await.is_err(),
        "not linked there"
    );

    // No byte was copied into berth's layout, and registry:2's tree is as it was.
    assert!(own.list_blobs(None, 100).await.unwrap().is_empty());
    assert_eq!(t.snapshot(), before);
}

#[tokio::test]
async fn verify_refuses_bytes_that_do_not_hash_to_their_digest() {
    let dir = tempfile::tempdir().unwrap();
    let t = Tree(dir.path());
    let config = t.blob(&content(50, 7));
    let layer = sha256(b"the layer as pushed");
    t.write(&blob_data_path(&layer), b"the layer, rotted!!");
    t.layer_link("app", &config);
    t.layer_link("app", &layer);
    let image = image_manifest((&config, 50), &[(&layer, 19)]);
    let m = t.manifest("app", &image);
    t.tag("app", "v1", &m);
    // A manifest whose bytes rotted is found without --verify: manifests are always read.
    let rotten = sha256(image_manifest((&config, 50), &[]).as_bytes());
    t.write(&blob_data_path(&rotten), b"{\"schemaVersion\":2}");
    t.revision_link("app", &rotten);

    let (reg, _own, tree) = registry(dir.path());
    let report = adopt(&reg, &tree, true).await;
    let lines: Vec<String> = report.skipped.iter().map(ToString::to_string).collect();
    assert_eq!(
        (report.verified_blobs, report.verified_bytes),
        (2, 50 + 19),
        "{report}"
    );
    assert!(
        lines.contains(&format!(
            "corrupt blob {layer} of app: its bytes do not hash to its digest"
        )),
        "{lines:#?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("corrupt manifest app@{rotten}"))),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with(&format!(
            "missing manifest app@{m}: it references blob {layer}"
        ))),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with("missing tag app:v1")),
        "{lines:#?}"
    );
    assert_eq!(report.manifests, 0);
    assert!(reg.catalog(&Page::default()).await.unwrap().0.is_empty());

    // Without --verify the layer is linked as registry:2 linked it (scrub finds it later).
    let report = adopt(&reg, &tree, false).await;
    assert_eq!(
        (
            report.manifests,
            report.tags,
            report.count(SkipKind::Corrupt)
        ),
        (1, 1, 1),
        "{report}"
    );
}

#[tokio::test]
async fn a_second_run_keeps_what_was_pushed_to_berth_since() {
    let dir = tempfile::tempdir().unwrap();
    let t = Tree(dir.path());
    let config = t.blob(&content(40, 9));
    t.layer_link("app", &config);
    let image = image_manifest((&config, 40), &[]);
    let m = t.manifest("app", &image);
    t.tag("app", "v1", &m);

    let (reg, own, tree) = registry(dir.path());
    adopt(&reg, &tree, false).await;
    // A push to berth after the adoption: a blob the tree already holds is linked, not copied.
    let app = repo("app");
    let layer = content(700, 5);
    t.blob(&layer);
    common::push(&reg, &app, &layer).await;
    assert!(
        own.list_blobs(None, 10).await.unwrap().is_empty(),
        "the tree's bytes serve it"
    );
    let newer = image_manifest((&config, 40), &[(&sha256(&layer), 700)]);
    reg.put_manifest(&app, &tag("v1"), None, newer.clone().into())
        .await
        .unwrap();

    let report = adopt(&reg, &tree, false).await;
    assert_eq!(
        report.kept_tags,
        [(
            "app:v1".to_string(),
            sha256(newer.as_bytes()).to_string(),
            m.to_string()
        )]
    );
    assert_eq!(
        reg.get_manifest(&app, &tag("v1")).await.unwrap().payload,
        newer.as_bytes()
    );
    assert_eq!(report.manifests, 1, "idempotent: {report}");
}

#[tokio::test]
async fn the_background_adoption_continues_after_the_last_repository_done_and_runs_once() {
    let dir = tempfile::tempdir().unwrap();
    let t = Tree(dir.path());
    let config = t.blob(&content(30, 3));
    let image = image_manifest((&config, 30), &[]);
    for name in ["a", "b", "c"] {
        t.layer_link(name, &config);
        let m = t.manifest(name, &image);
        t.tag(name, "v1", &m);
    }
    let (reg, _own, tree, meta) = registry_and_meta(dir.path());
    // A background adoption that stopped (a crash) after finishing b.
    let stopped = AdoptCursor {
        after: Some("b".into()),
        finished: false,
        started_at: 1_700_000_000,
        repositories: 2,
        manifests: 2,
        tags: 2,
        skipped: 0,
    };
    meta.save_adopt_cursor(&stopped).await.unwrap();
    reg.clone()
        .adopting(Arc::new(tree.clone()))
        .run_registry2_adoption()
        .await;
    // Only c was left to do (a and b were not done again: this registry never had them).
    assert_eq!(reg.catalog(&Page::default()).await.unwrap().0, ["c"]);
    let done = meta.adopt_cursor().await.unwrap().unwrap();
    assert!(done.finished);
    assert_eq!(
        (
            done.after.as_deref(),
            done.repositories,
            done.manifests,
            done.tags
        ),
        (Some("c"), 3, 3, 3)
    );
    assert_eq!(done.started_at, stopped.started_at);

    // Once finished it never runs again: what is deleted in berth stays deleted.
    reg.delete_manifest(&repo("c"), &tag("v1")).await.unwrap();
    reg.clone()
        .adopting(Arc::new(tree.clone()))
        .run_registry2_adoption()
        .await;
    assert!(tags(&reg, "c").await.is_empty());

    // From nothing, it adopts everything and says so.
    let dir = tempfile::tempdir().unwrap();
    let t = Tree(dir.path());
    let config = t.blob(&content(30, 4));
    t.layer_link("x", &config);
    t.tag(
        "x",
        "v1",
        &t.manifest("x", &image_manifest((&config, 30), &[])),
    );
    let (reg, _own, tree, meta) = registry_and_meta(dir.path());
    reg.clone()
        .adopting(Arc::new(tree))
        .run_registry2_adoption()
        .await;
    assert_eq!(tags(&reg, "x").await, ["v1"]);
    let done = meta.adopt_cursor().await.unwrap().unwrap();
    assert!(
        done.finished && done.after.as_deref() == Some("x"),
        "{done:?}"
    );
}

#[tokio::test]
async fn berth_import_marks_the_adoption_finished() {
    let dir = tempfile::tempdir().unwrap();
    let t = Tree(dir.path());
    let config = t.blob(&content(30, 5));
    t.layer_link("app", &config);
    t.tag(
        "app",
        "v1",
        &t.manifest("app", &image_manifest((&config, 30), &[])),
    );
    let (reg, _own, tree, meta) = registry_and_meta(dir.path());
    adopt(&reg, &tree, false).await;
    assert!(meta.adopt_cursor().await.unwrap().unwrap().finished);
    // So serving after it does not adopt again (the tag deleted meanwhile stays deleted).
    reg.delete_manifest(&repo("app"), &tag("v1")).await.unwrap();
    reg.clone()
        .adopting(Arc::new(tree))
        .run_registry2_adoption()
        .await;
    assert!(tags(&reg, "app").await.is_empty());
}

/// Repositories `a`, `b` and `c/nested` in `t`, each the same image (a 30-byte config, a 900-byte
/// layer) under `v1` and `v2`. Returns the image's manifest and its layer.
fn three_repositories(t: &Tree) -> (String, Digest) {
    let config = t.blob(&content(30, 6));
    let layer = t.blob(&content(900, 7));
    let image = image_manifest((&config, 30), &[(&layer, 900)]);
    for name in ["a", "b", "c/nested"] {
        t.layer_link(name, &config);
        t.layer_link(name, &layer);
        let m = t.manifest(name, &image);
        t.tag(name, "v1", &m);
        t.tag(name, "v2", &m);
    }
    (image, layer)
}

#[tokio::test]
async fn a_request_adopts_its_repository_ahead_of_the_background_which_passes_over_it() {
    let dir = tempfile::tempdir().unwrap();
    let (image, layer) = three_repositories(&Tree(dir.path()));
    let (reg, _own, tree, meta) = registry_and_meta(dir.path());
    let reg = reg.adopting(Arc::new(tree.clone()));
    // Nothing adopted yet: the catalog still lists the tree's repositories, in order and by pages.
    let first = Page {
        n: Some(2),
        last: None,
    };
    assert_eq!(
        reg.catalog(&first).await.unwrap(),
        (vec!["a".into(), "b".into()], true)
    );
    let rest = Page {
        n: Some(2),
        last: Some("b".into()),
    };
    assert_eq!(
        reg.catalog(&rest).await.unwrap(),
        (vec!["c/nested".into()], false)
    );

    // A pull of b, before the background got to it, is served: b is adopted whole for it.
    let b = repo("b");
    let pulled = reg.get_manifest(&b, &tag("v1")).await.unwrap();
    assert_eq!(pulled.payload, image.as_bytes());
    assert_eq!(pull(&reg, &b, &layer).await.unwrap(), content(900, 7));
    assert_eq!(tags(&reg, "b").await, ["v1", "v2"]);
    let counted = metadata::AdoptedAhead {
        manifests: 1,
        tags: 2,
        layer_links: 2,
        skipped: 0,
    };
    assert_eq!(meta.adopted_ahead("b").await.unwrap(), Some(counted));
    // A blob HEAD adopts too (a tag listing: in the usage listing's test).
    reg.stat_blob(&repo("c/nested"), &layer).await.unwrap();
    assert_eq!(meta.adopted_ahead("c/nested").await.unwrap(), Some(counted));
    assert_eq!(meta.adopted_ahead("a").await.unwrap(), None);
    // A name the tree does not hold is no repository, as before.
    assert!(matches!(
        reg.get_manifest(&repo("zzz"), &tag("v1")).await,
        Err(registry::Error::ManifestUnknown(_))
    ));

    // Deleted in berth after it was adopted ahead; the background, getting there, must not bring it
    // back.
    reg.delete_manifest(&b, &tag("v2")).await.unwrap();
    reg.clone().run_registry2_adoption().await;
    assert_eq!(tags(&reg, "b").await, ["v1"]);
    assert_eq!(tags(&reg, "a").await, ["v1", "v2"], "adopted in turn");
    // The totals count every repository once, those adopted ahead with what they brought in then.
    let done = meta.adopt_cursor().await.unwrap().unwrap();
    assert!(done.finished, "{done:?}");
    assert_eq!((done.repositories, done.manifests, done.tags), (3, 3, 6));
    assert_eq!(
        reg.catalog(&Page::default()).await.unwrap().0,
        ["a", "b", "c/nested"]
    );
}

#[tokio::test]
async fn the_usage_listing_adopts_its_page_ahead_while_the_adoption_runs() {
    let dir = tempfile::tempdir().unwrap();
    three_repositories(&Tree(dir.path()));
    let (reg, _own, tree, meta) = registry_and_meta(dir.path());
    let reg = reg.adopting(Arc::new(tree));
    let listed = |page: (Vec<registry::RepoUsage>, bool)| {
        let rows = page.0.iter();
        let rows = rows.map(|u| (u.repo.to_string(), u.tags, u.bytes));
        (rows.collect::<Vec<_>>(), page.1)
    };
    // Nothing adopted yet: the web interface's list (the usage listing) still shows the tree's
    // repositories with what they hold, adopting those of the page it shows and no other.
    let first = Page {
        n: Some(2),
        last: None,
    };
    let row = |name: &str| (name.to_string(), 2, 930);
    assert_eq!(
        listed(reg.usage(&first).await.unwrap()),
        (vec![row("a"), row("b")], true)
    );
    assert!(meta.adopted_ahead("a").await.unwrap().is_some());
    assert!(meta.adopted_ahead("b").await.unwrap().is_some());
    assert_eq!(meta.adopted_ahead("c/nested").await.unwrap(), None);
    // A tag listing adopts its repository too.
    assert_eq!(tags(&reg, "c/nested").await, ["v1", "v2"]);
    assert!(meta.adopted_ahead("c/nested").await.unwrap().is_some());
    let rest = Page {
        n: Some(2),
        last: Some("b".into()),
    };
    assert_eq!(
        listed(reg.usage(&rest).await.unwrap()),
        (vec![row("c/nested")], false)
    );
}

#[tokio::test]
async fn without_a_pending_adoption_nothing_is_adopted_for_a_request() {
    let dir = tempfile::tempdir().unwrap();
    let t = Tree(dir.path());
    let config = t.blob(&content(30, 8));
    t.layer_link("app", &config);
    t.tag(
        "app",
        "v1",
        &t.manifest("app", &image_manifest((&config, 30), &[])),
    );
    // `berth import` ran and finished: the tree is adopted, and what berth deleted since stays deleted
    // for every later request, whatever the tree still holds.
    let (reg, _own, tree, _meta) = registry_and_meta(dir.path());
    adopt(&reg, &tree, false).await;
    let reg = reg.adopting(Arc::new(tree));
    reg.delete_manifest(&repo("app"), &tag("v1")).await.unwrap();
    assert!(tags(&reg, "app").await.is_empty());
    assert!(matches!(
        reg.get_manifest(&repo("app"), &tag("v1")).await,
        Err(registry::Error::ManifestUnknown(_))
    ));
    assert_eq!(reg.catalog(&Page::default()).await.unwrap().0, ["app"]);
}
