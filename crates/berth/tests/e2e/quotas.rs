//! Quotas through skopeo: a push past a quota fails and skopeo shows the user why; a repository outside
//! the quota takes the same image; the usage endpoint reports both.

use std::path::Path;

use crate::harness::clients::version;
use crate::harness::images::{sample_image, write_image_layout};
use crate::harness::{Options, Server, Tools, repo};

fn oci(dir: &Path, tag: &str) -> String {
    format!("oci:{}:{tag}", dir.display())
}

#[test]
fn skopeo_is_told_when_a_push_passes_the_quota() {
    eprintln!("{}", version("skopeo"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temporary directory: {e}"));
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        "quotas:\n  limits:\n    - repositories: [\"e2e/small-*\"]\n      size: 100\n",
    )
    .unwrap_or_else(|e| panic!("config: {e}"));
    let server = Server::start_with(Options {
        config: Some(config),
        ..Options::default()
    });
    let tools = Tools::new();
    let host = server.host();
    let src = tools.scratch("src");
    write_image_layout(&src, "x", &sample_image("quota"));
    let push = |r: &str| {
        tools.try_skopeo(&[
            "copy",
            "--dest-tls-verify=false",
            &oci(&src, "x"),
            &format!("docker://{host}/{r}:v1"),
        ])
    };
    let (small, big) = (repo("small-app"), repo("big-app"));
    let refused = push(&small);
    assert!(!refused.success, "{}", refused.describe());
    assert!(
        refused.stderr.contains("quota exceeded") && refused.stderr.contains("e2e/small-*"),
        "the user is told why: {}",
        refused.describe()
    );
    let taken = push(&big);
    assert!(taken.success, "outside the quota: {}", taken.describe());

    let api = server.api();
    let usage = api
        .get("/v2/_berth/usage", &[])
        .unwrap_or_else(|e| panic!("usage: {e}"));
    assert_eq!(usage.status, 200, "{}", usage.describe());
    let body: serde_json::Value = serde_json::from_slice(&usage.body)
        .unwrap_or_else(|e| panic!("usage is not JSON ({e}): {}", usage.describe()));
    let quota = &body["quotas"][0];
    assert_eq!(quota["limitBytes"], 100);
    assert_eq!(
        quota["usedBytes"], 0,
        "nothing of the refused push is counted"
    );
    let names: Vec<&str> = body["repositories"]
        .as_array()
        .map(|a| a.iter().filter_map(|r| r["name"].as_str()).collect())
        .unwrap_or_default();
    assert!(names.contains(&big.as_str()), "{body}");
}
