//! The interface in headless Chromium for a signed-in user of a guarded registry: alice signs in with
//! her htpasswd credentials, sees her team's repositories and never bob's (in the list, in a search, by
//! its address), opens an index with its platforms and its referrers, and is refused the registry page,
//! whose figures add up repositories she may not pull.

use serde_json::json;

use super::Browser;
use crate::auth::HTPASSWD;
use crate::harness::http::{Api, OCI_INDEX, OCI_MANIFEST};
use crate::harness::images::{Blob, artifact, empty_config, multi_platform_index};
use crate::harness::{BlobPush, Options, Server};

/// A server filled through `fill` while it is open, then restarted with htpasswd auth: alice pulls
/// `team-a/**`, bob `team-b/**`, nobody anything else.
fn guarded(fill: impl FnOnce(&Api)) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temporary directory: {e}"));
    let htpasswd = dir.path().join("htpasswd");
    std::fs::write(&htpasswd, HTPASSWD).unwrap_or_else(|e| panic!("htpasswd: {e}"));
    let config = dir.path().join("config.yml");
    std::fs::write(&config, "version: 0.1\n").unwrap_or_else(|e| panic!("config: {e}"));
    let mut server = Server::start_with(Options {
        config: Some(config.clone()),
        ..Options::default()
    });
    fill(&server.api());
    let yaml = format!(
        "auth:\n  htpasswd:\n    realm: berth-e2e\n    path: {}\naccess:\n  rules:\n    \
         - repositories: [\"team-a/**\"]\n      users: [alice]\n      actions: [pull]\n    \
         - repositories: [\"team-b/**\"]\n      users: [bob]\n      actions: [pull]\n",
        htpasswd.display()
    );
    std::fs::write(&config, yaml).unwrap_or_else(|e| panic!("config: {e}"));
    server.restart();
    (server, dir)
}

fn put(api: &Api, repo: &str, blob: &Blob) {
    api.push_blob(repo, &blob.bytes, BlobPush::Monolithic)
        .unwrap_or_else(|e| panic!("{repo}: {e:?}"));
}

/// Pushes a two-platform index tagged `v1` to `repo`, and an SBOM that refers to it; returns the
/// index's digest.
fn push_index_with_sbom(api: &Api, repo: &str) -> String {
    let index = multi_platform_index(repo);
    for img in &index.images {
        for blob in img.blobs() {
            put(api, repo, blob);
        }
        api.put_manifest(
            repo,
            &img.manifest.digest,
            OCI_MANIFEST,
            &img.manifest.bytes,
        )
        .unwrap_or_else(|e| panic!("{repo}: {e:?}"));
    }
    api.put_manifest(repo, "v1", OCI_INDEX, &index.index.bytes)
        .unwrap_or_else(|e| panic!("{repo}: {e:?}"));
    let sbom = Blob::json(
        "application/spdx+json",
        &json!({ "spdxVersion": "SPDX-2.3" }),
    );
    put(api, repo, &sbom);
    put(api, repo, &empty_config());
    let referrer = artifact("application/spdx+json", &sbom, &index.index);
    api.put_manifest(repo, &referrer.digest, OCI_MANIFEST, &referrer.bytes)
        .unwrap_or_else(|e| panic!("{repo}: {e:?}"));
    index.index.digest
}

#[test]
fn a_signed_in_user_sees_their_repositories_an_index_and_its_referrers() {
    let Some(browser) = Browser::start(
        "ui::users::a_signed_in_user_sees_their_repositories_an_index_and_its_referrers",
    ) else {
        return;
    };
    let mut index = String::new();
    let (server, _files) = guarded(|api| {
        index = push_index_with_sbom(api, "team-a/multi");
        super::push(api, "team-b/secret", "v1", "x", "x");
    });
    assert_eq!(
        server.api().get("/ui/", &[]).unwrap().status,
        401,
        "the restarted server is not guarded"
    );
    let base = server.base_url();

    // Signing in: the address carries alice's credentials once; Chromium answers the challenge with
    // them and keeps them for the rest of the session.
    let signed_in = base.replacen("http://", "http://alice:secret@", 1);
    browser.open(&format!("{signed_in}/ui/login"));
    browser.wait_for(|b| b.url().ends_with("/ui/"));
    let list = browser.text("#repositories");
    assert!(list.contains("team-a/multi"), "{list}");
    assert!(!list.contains("team-b"), "{list}");

    // A search for bob's repository finds nothing.
    browser.type_into("#q", "secret");
    browser.click("form.search button");
    browser.wait_for(|b| b.url().contains("q=secret"));
    assert!(browser.find_all("#repositories").is_empty());
    assert!(browser.text("main").contains("No repository matches"));

    // The index: its platforms, then its referrers by artifact type.
    browser.open(&format!("{base}/ui/repo/team-a/multi"));
    let tags = browser.text("#tags");
    assert!(tags.contains("index: linux/amd64, linux/arm64"), "{tags}");
    browser.click("#tags a");
    browser.wait_for(|b| b.url().contains(&format!("/ui/image/team-a/multi@{index}")));
    let platforms = browser.text("#manifests");
    assert!(
        platforms.contains("linux/amd64") && platforms.contains("linux/arm64"),
        "{platforms}"
    );
    let main = browser.text("main");
    assert!(main.contains("application/spdx+json"), "{main}");
    assert_eq!(browser.find_all("ul.referrers li").len(), 1, "{main}");
    browser.click("ul.referrers a");
    browser.wait_for(|b| !b.url().contains(&index));
    assert!(
        browser
            .text("main")
            .contains(&format!("Refers to\n{index}"))
    );

    // Bob's repository by its address: as one that does not exist.
    browser.open(&format!("{base}/ui/repo/team-b/secret"));
    assert!(browser.text("main").contains("nothing you may see"));
    // The registry's figures add up bob's repository too: not for alice.
    browser.open(&format!("{base}/ui/registry"));
    assert!(
        browser
            .text("main")
            .contains("Only users who may pull every repository"),
        "{}",
        browser.text("main")
    );
}
