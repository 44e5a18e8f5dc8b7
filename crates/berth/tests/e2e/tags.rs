//! Immutable tags through skopeo: the first push of a covered tag works, a push of another image to it
//! fails with the reason shown to the user, and so does deleting it.

use std::path::Path;

use crate::harness::clients::version;
use crate::harness::images::{sample_image, write_image_layout};
use crate::harness::{Options, Server, Tools, repo};

fn oci(dir: &Path, tag: &str) -> String {
    format!("oci:{}:{tag}", dir.display())
}

#[test]
fn skopeo_cannot_move_or_delete_an_immutable_tag() {
    eprintln!("{}", version("skopeo"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temporary directory: {e}"));
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        "tags:\n  immutable:\n    - repositories: [\"prod/**\"]\n      tags: [\"v*\"]\n",
    )
    .unwrap_or_else(|e| panic!("config: {e}"));
    let server = Server::start_with(Options {
        config: Some(config),
        ..Options::default()
    });
    let tools = Tools::new();
    let host = server.host();
    let r = format!("prod/{}", repo("app"));
    let push = |label: &str, tag: &str| {
        let src = tools.scratch(&format!("src-{label}"));
        write_image_layout(&src, "x", &sample_image(label));
        tools.try_skopeo(&[
            "copy",
            "--dest-tls-verify=false",
            &oci(&src, "x"),
            &format!("docker://{host}/{r}:{tag}"),
        ])
    };
    let first = push("first", "v1.0.0");
    assert!(first.success, "{}", first.describe());
    let again = push("first", "v1.0.0");
    assert!(again.success, "the same image again: {}", again.describe());
    let moved = push("second", "v1.0.0");
    assert!(!moved.success, "{}", moved.describe());
    assert!(
        moved.stderr.contains("immutable"),
        "the user is told why: {}",
        moved.describe()
    );
    let latest = push("second", "latest");
    assert!(latest.success, "an uncovered tag: {}", latest.describe());
    let deleted = tools.try_skopeo(&[
        "delete",
        "--tls-verify=false",
        &format!("docker://{host}/{r}:v1.0.0"),
    ]);
    assert!(
        !deleted.success && deleted.stderr.contains("immutable"),
        "{}",
        deleted.describe()
    );
    let api = server.api();
    assert_eq!(
        api.get_manifest(&r, "v1.0.0")
            .map(|r| r.status)
            .unwrap_or(0),
        200
    );
}
