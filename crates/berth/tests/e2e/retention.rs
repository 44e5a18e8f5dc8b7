//! Retention rules against the real binary: skopeo pushes tags, `berth retention --dry-run` beside the
//! serving registry lists what the rule would delete and deletes nothing, `berth retention` deletes
//! exactly the tags the rule does not keep, and skopeo sees the rest.

use crate::harness::clients::version;
use crate::harness::images::sample_image;
use crate::harness::{Options, Server, Tools, push_image, repo};

/// `berth retention` over the server's stores, with `args`; its stdout.
fn retention(server: &Server, args: &[&str]) -> String {
    server.berth_ok(&[&["retention"], args].concat())
}

fn tags(tools: &Tools, server: &Server, r: &str) -> Vec<String> {
    tools.skopeo_tags(&server.host(), r)
}

#[test]
fn berth_retention_deletes_the_tags_no_rule_keeps() {
    eprintln!("{}", version("skopeo"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temporary directory: {e}"));
    let config = dir.path().join("config.yml");
    // The newest tag and the releases stay; the repository outside the rule keeps everything.
    std::fs::write(
        &config,
        "retention:\n  rules:\n    - repositories: [\"**/kept-*\"]\n      keep:\n        latest: 1\n        tags: [\"1.*\"]\n",
    )
    .unwrap_or_else(|e| panic!("config: {e}"));
    let server = Server::start_with(Options {
        config: Some(config),
        ..Options::default()
    });
    let tools = Tools::new();
    let api = server.api();
    let (r, other) = (repo("kept-app"), repo("other"));
    // The release first, so that the newest tag is t3 even when all share a second (ties go to the
    // greater name, and "1.0" is the least).
    push_image(&api, &r, "1.0", &sample_image("release"));
    for t in ["t1", "t2", "t3"] {
        push_image(&api, &r, t, &sample_image(t));
    }
    push_image(&api, &other, "t1", &sample_image("t1"));

    let dry = retention(&server, &["--dry-run"]);
    assert!(dry.contains(&format!("would delete tag {r}:t1")), "{dry}");
    assert!(dry.contains(&format!("would delete tag {r}:t2")), "{dry}");
    assert!(dry.contains("retention would delete 2 tags"), "{dry}");
    assert_eq!(tags(&tools, &server, &r), ["1.0", "t1", "t2", "t3"]);

    let done = retention(&server, &[]);
    assert!(done.contains("retention deleted 2 tags"), "{done}");
    assert_eq!(tags(&tools, &server, &r), ["1.0", "t3"]);
    assert_eq!(tags(&tools, &server, &other), ["t1"]);
    // The kept tags pull whole.
    let pulled = api
        .get_manifest(&r, "t3")
        .map(|resp| resp.status)
        .unwrap_or(0);
    assert_eq!(pulled, 200);
}
