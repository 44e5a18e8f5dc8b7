//! containerd against berth, with a containerd of the test's own (`harness::containerd`) driven by
//! `ctr`: pull and push over plain HTTP with the digests skopeo pushed, and a `hosts.toml` mirror of
//! docker.io (`--hosts-dir`) through berth's pull-through cache, which containerd addresses with `?ns=`,
//! beside local repositories on the same berth that take authenticated pushes while anyone pulls.

use crate::harness::containerd::Containerd;
use crate::harness::images::{sample_image, write_image_layout};
use crate::harness::{Server, push_image, repo, sha256};
use crate::proxy::Mirror;

// alice:secret (bcrypt), as in the auth tests.
const HTPASSWD: &str = "alice:$2y$05$NHXi441vNlrHIergnkVaCOtieAaKJwCHnk6qQA.uPSpkVQkXtjd1C\n";

#[test]
fn ctr_pulls_and_pushes_over_plain_http() {
    let Some(ctrd) = Containerd::start("ctr_pulls_and_pushes") else {
        return;
    };
    let server = Server::start();
    let host = server.host();
    let img = sample_image("ctr-plain");
    let src = ctrd.tools().scratch("src");
    write_image_layout(&src, "v1", &img);
    let remote = format!("{host}/{}:v1", repo("ctr-plain"));
    ctrd.tools().skopeo(&[
        "copy",
        "--preserve-digests",
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", src.display()),
        &format!("docker://{remote}"),
    ]);

    ctrd.ctr(&[
        "images",
        "pull",
        "--plain-http",
        "--snapshotter",
        "native",
        &remote,
    ]);
    assert_eq!(ctrd.image_digest(&remote), img.manifest.digest);

    // Pushed back under another name: berth holds the same manifest bytes and every blob.
    let copy = format!("{host}/{}:v1", repo("ctr-copy"));
    ctrd.ctr(&["images", "tag", &remote, &copy]);
    ctrd.ctr(&["images", "push", "--plain-http", &copy]);
    let api = server.api();
    let r = api.get_manifest(&repo("ctr-copy"), "v1").unwrap();
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.body, img.manifest.bytes);
    for blob in img.blobs() {
        let bytes = api.get_ok(&format!("/v2/{}/blobs/{}", repo("ctr-copy"), blob.digest));
        assert_eq!(sha256(&bytes), blob.digest);
    }
    assert_eq!(ctrd.hub_attempts(), 0);
}

#[test]
fn ctr_pulls_docker_io_through_a_hosts_toml_mirror_and_pushes_to_the_same_berth() {
    // One berth: docker.io cached from the upstream (no remoteurl, so other names are local), htpasswd
    // with anonymous pulls, alice pushes.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temporary directory: {e}"));
    let htpasswd = dir.path().join("htpasswd");
    std::fs::write(&htpasswd, HTPASSWD).unwrap_or_else(|e| panic!("htpasswd: {e}"));
    let m = Mirror::start_with(
        "1h",
        false,
        &format!(
            "auth:\n  htpasswd:\n    realm: berth-e2e\n    path: {}\naccess:\n  rules:\n    - repositories: [\"**\"]\n      anonymous: true\n      actions: [pull]\n    - repositories: [\"**\"]\n      users: [alice]\n      actions: [pull, push]\n",
            htpasswd.display()
        ),
    );
    let img = sample_image("ctr-mirror");
    let r = push_image(&m.upstream.api(), "library/alpine", "3.19", &img);
    assert_eq!(r.status, 201, "{}", r.describe());
    let Some(ctrd) = Containerd::start("ctr_hosts_toml_mirror") else {
        return;
    };
    let host = m.mirror.host();
    let hosts = ctrd.hosts_dir();
    std::fs::create_dir_all(hosts.join("docker.io")).unwrap_or_else(|e| panic!("hosts dir: {e}"));
    std::fs::write(
        hosts.join("docker.io/hosts.toml"),
        format!(
            "server = \"https://registry-1.docker.io\"\n\n[host.\"http://{host}\"]\n  capabilities = [\"pull\", \"resolve\"]\n"
        ),
    )
    .unwrap_or_else(|e| panic!("hosts.toml: {e}"));
    let hosts_dir = hosts.to_string_lossy().into_owned();

    // containerd asks the mirror for /v2/library/alpine/...?ns=docker.io: berth's docker.io namespace.
    let alpine = "docker.io/library/alpine:3.19";
    ctrd.ctr(&[
        "images",
        "pull",
        "--hosts-dir",
        &hosts_dir,
        "--snapshotter",
        "native",
        alpine,
    ]);
    assert_eq!(ctrd.image_digest(alpine), img.manifest.digest);
    assert_eq!(m.blob_gets(), img.blobs().len(), "each blob fetched once");
    assert_eq!(ctrd.hub_attempts(), 0, "ctr went to Docker Hub");
    let cached = m
        .mirror
        .api()
        .get_manifest("docker.io/library/alpine", "3.19")
        .unwrap();
    assert_eq!(cached.status, 200, "{}", cached.describe());
    assert_eq!(cached.body, img.manifest.bytes);

    // The same berth takes pushes to its local repositories, from alice only.
    let local = format!("{host}/team/app:1");
    ctrd.ctr(&["images", "tag", alpine, &local]);
    let anonymous = ctrd.try_ctr(&["images", "push", "--plain-http", &local]);
    assert!(!anonymous.success, "{}", anonymous.describe());
    ctrd.ctr(&[
        "images",
        "push",
        "--plain-http",
        "--user",
        "alice:secret",
        &local,
    ]);
    let r = m.mirror.api().get_manifest("team/app", "1").unwrap();
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.body, img.manifest.bytes);
}
