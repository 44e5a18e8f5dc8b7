//! docker against berth, with a daemon of the test's own (`harness::dockerd`): push and pull with the
//! digests skopeo and berth see, a multi-platform index pulled with `--platform` and read with
//! `docker manifest inspect`, `docker login`/`logout` against htpasswd and against a token service, and
//! `registry-mirrors` pointing at a berth pull-through cache (`docker pull alpine:3.19` served by berth,
//! with the upstream's requests counted and Docker Hub never reached).

use serde_json::Value;

use crate::auth::guarded_server;
use crate::auth::token::TokenService;
use crate::harness::dockerd::{Dockerd, DockerdSettings};
use crate::harness::images::{
    multi_platform_index, sample_image, write_image_layout, write_layout,
};
use crate::harness::registry2::Registry2;
use crate::harness::{Options, Server, Tools, push_image, repo};
use crate::proxy::Mirror;

/// The digest docker printed for a push (`<tag>: digest: sha256:... size: N`).
fn pushed_digest(out: &str) -> String {
    out.lines()
        .find_map(|l| l.split_once(" digest: ")?.1.split_whitespace().next())
        .unwrap_or_else(|| panic!("no digest in docker push's output:\n{out}"))
        .to_owned()
}

/// The digest docker printed for a pull (`Digest: sha256:...`).
fn pulled_digest(out: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix("Digest: "))
        .unwrap_or_else(|| panic!("no digest in docker pull's output:\n{out}"))
        .trim()
        .to_owned()
}

/// `skopeo inspect`'s digest of a remote image.
fn skopeo_digest(docker: &Dockerd, reference: &str) -> String {
    let out = docker.tools().skopeo(&[
        "inspect",
        "--tls-verify=false",
        "--raw",
        &format!("docker://{reference}"),
    ]);
    crate::harness::sha256(out.stdout.as_bytes())
}

/// A daemon with no mirror; `None` when the test skips (no dockerd outside CI).
fn daemon(test: &str) -> Option<Dockerd> {
    Dockerd::start(test, &DockerdSettings::default())
}

#[test]
fn docker_push_and_pull_keep_the_digests_skopeo_sees() {
    let Some(docker) = daemon("docker_push_and_pull") else {
        return;
    };
    let server = Server::start();
    let host = server.host();

    // An image of the test's own, loaded into the daemon, pushed by docker.
    let img = sample_image("docker-push");
    let layout = docker.tools().scratch("layout");
    write_image_layout(&layout, "v1", &img);
    docker.load_layout(&layout, "v1", "berth-e2e/app:v1");
    let id = docker.inspect("berth-e2e/app:v1", "{{.Id}}");
    let remote = format!("{host}/{}:v1", repo("docker-push"));
    docker.docker(&["tag", "berth-e2e/app:v1", &remote]);
    let pushed = pushed_digest(&docker.docker(&["push", &remote]).stdout);

    // berth serves the manifest docker pushed under that digest, and skopeo reads the same bytes.
    let api = server.api();
    let r = api.get_manifest(&repo("docker-push"), "v1").unwrap();
    assert_eq!(r.status, 200, "{}", r.describe());
    assert_eq!(r.header("Docker-Content-Digest"), Some(pushed.as_str()));
    assert_eq!(
        r.header("Content-Type"),
        Some("application/vnd.docker.distribution.manifest.v2+json")
    );
    assert_eq!(skopeo_digest(&docker, &remote), pushed);
    let manifest: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(manifest["config"]["digest"].as_str(), Some(id.as_str()));

    // Pulled back into an empty daemon: the same digest, the same image.
    docker.docker(&["rmi", &remote, "berth-e2e/app:v1"]);
    let pull = docker.docker(&["pull", &remote]);
    assert_eq!(pulled_digest(&pull.stdout), pushed);
    assert_eq!(docker.inspect(&remote, "{{.Id}}"), id);
    assert_eq!(
        docker.inspect(&remote, "{{index .RepoDigests 0}}"),
        format!("{host}/{}@{pushed}", repo("docker-push"))
    );

    // An OCI image skopeo pushed: docker pulls it by the digest skopeo pushed, its config as the id.
    let oci = sample_image("docker-pull-oci");
    let src = docker.tools().scratch("oci");
    write_image_layout(&src, "v1", &oci);
    let remote = format!("{host}/{}:v1", repo("docker-pull-oci"));
    docker.tools().skopeo(&[
        "copy",
        "--preserve-digests",
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", src.display()),
        &format!("docker://{remote}"),
    ]);
    let pull = docker.docker(&["pull", &remote]);
    assert_eq!(pulled_digest(&pull.stdout), oci.manifest.digest);
    assert_eq!(docker.inspect(&remote, "{{.Id}}"), oci.config.digest);
    assert_eq!(docker.hub_attempts(), 0);
}

#[test]
fn docker_pulls_one_platform_of_an_index_and_inspects_the_manifest() {
    let Some(docker) = daemon("docker_platform") else {
        return;
    };
    let server = Server::start();
    let multi = multi_platform_index("docker-multi");
    let src = docker.tools().scratch("multi");
    let blobs: Vec<_> = multi
        .images
        .iter()
        .flat_map(|i| std::iter::once(&i.manifest).chain(i.blobs()))
        .collect();
    write_layout(&src, &[("multi", &multi.index)], blobs.iter().copied());
    let remote = format!("{}/{}:multi", server.host(), repo("docker-multi"));
    docker.tools().skopeo(&[
        "copy",
        "--all",
        "--preserve-digests",
        "--dest-tls-verify=false",
        &format!("oci:{}:multi", src.display()),
        &format!("docker://{remote}"),
    ]);

    // docker manifest inspect reads a manifest list from berth as berth serves it. A Docker manifest
    // list, which skopeo makes of the index: Debian's docker CLI (20.10) cannot read OCI manifests
    // ("unsupported manifest media type"), newer ones can.
    let list = format!("{}/{}:multi-docker", server.host(), repo("docker-multi"));
    docker.tools().skopeo(&[
        "copy",
        "--all",
        "--format",
        "v2s2",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        &format!("docker://{remote}"),
        &format!("docker://{list}"),
    ]);
    let served = server
        .api()
        .get_manifest(&repo("docker-multi"), "multi-docker")
        .unwrap();
    assert_eq!(
        served.header("Content-Type"),
        Some("application/vnd.docker.distribution.manifest.list.v2+json")
    );
    let served: Value = serde_json::from_slice(&served.body).unwrap();
    let out = docker.docker(&["manifest", "inspect", "--insecure", &list]);
    let printed: Value = serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("manifest inspect printed no JSON ({e}):\n{}", out.stdout));
    assert_eq!(printed, served);
    let arches: Vec<&str> = printed["manifests"]
        .as_array()
        .unwrap_or_else(|| panic!("no manifests in {printed}"))
        .iter()
        .map(|d| d["platform"]["architecture"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(arches, ["amd64", "arm64"]);

    // Each platform pulled on its own: that platform's config is the image, the index its digest.
    for (img, arch) in multi.images.iter().zip(["amd64", "arm64"]) {
        let pull = docker.docker(&["pull", "--platform", &format!("linux/{arch}"), &remote]);
        assert_eq!(pulled_digest(&pull.stdout), multi.index.digest);
        assert_eq!(docker.inspect(&remote, "{{.Architecture}}"), arch);
        assert_eq!(docker.inspect(&remote, "{{.Id}}"), img.config.digest);
    }
}

/// Loads a fresh image into the daemon and tags it `remote`.
fn load_as(docker: &Dockerd, label: &str, remote: &str) {
    let img = sample_image(label);
    let layout = docker.tools().scratch(label);
    write_image_layout(&layout, "v1", &img);
    docker.load_layout(&layout, "v1", remote);
}

/// Whether the CLI's config file holds credentials for `host`.
fn logged_in(docker: &Dockerd, host: &str) -> bool {
    let path = docker.tools().path("docker-config/config.json");
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let config: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    config["auths"][host]["auth"].is_string()
}

fn refused(out: &crate::harness::clients::Output, why: &[&str]) {
    assert!(!out.success, "should have failed: {}", out.describe());
    let text = format!("{}{}", out.stdout, out.stderr).to_lowercase();
    assert!(
        why.iter().any(|w| text.contains(w)),
        "expected one of {why:?} in: {}",
        out.describe()
    );
}

/// docker never sends a request without credentials once `/v2/` challenged it with Basic ("no basic
/// auth credentials"), so against htpasswd it pulls only when logged in; anonymous pulls need tokens (below).
#[test]
fn docker_login_and_logout_against_htpasswd() {
    let Some(docker) = daemon("docker_login_htpasswd") else {
        return;
    };
    let (server, _files) = guarded_server();
    let host = server.host();
    let remote = format!("{host}/{}:v1", repo("docker-login"));
    load_as(&docker, "docker-login", &remote);
    let no_credentials = ["no basic auth credentials", "unauthorized"];

    refused(&docker.try_docker(&["push", &remote]), &no_credentials);
    let login = |user: &str, password: &str| {
        docker.try_docker(&["login", "--username", user, "--password", password, &host])
    };
    refused(&login("alice", "wrong"), &["unauthorized", "401"]);
    refused(&login("mallory", "secret"), &["unauthorized", "401"]);
    assert!(!logged_in(&docker, &host), "a failed login was remembered");

    let alice = login("alice", "secret");
    assert!(alice.success, "{}", alice.describe());
    assert!(
        alice.stdout.contains("Login Succeeded"),
        "{}",
        alice.describe()
    );
    assert!(logged_in(&docker, &host));
    let pushed = pushed_digest(&docker.docker(&["push", &remote]).stdout);
    let r = server
        .api()
        .get_manifest(&repo("docker-login"), "v1")
        .unwrap();
    assert_eq!(r.header("Docker-Content-Digest"), Some(pushed.as_str()));

    // Logged out: the credentials are gone and a push is refused again.
    docker.docker(&["logout", &host]);
    assert!(!logged_in(&docker, &host));
    let again = format!("{host}/{}:v2", repo("docker-login"));
    docker.docker(&["tag", &remote, &again]);
    refused(&docker.try_docker(&["push", &again]), &no_credentials);

    // bob may pull only (his denied push is not tried: docker retries a denied upload for 50 s).
    docker.docker(&["rmi", &remote, &again]);
    assert!(login("bob", "builder").success);
    let pull = docker.docker(&["pull", &remote]);
    assert_eq!(pulled_digest(&pull.stdout), pushed);
}

#[test]
fn docker_login_against_the_token_service() {
    let Some(docker) = daemon("docker_login_token") else {
        return;
    };
    let service = TokenService::start();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temporary directory: {e}"));
    let config = dir.path().join("config.yml");
    std::fs::write(&config, service.config_yaml()).unwrap_or_else(|e| panic!("config: {e}"));
    let server = Server::start_with(Options {
        config: Some(config),
        ..Options::default()
    });
    let host = server.host();
    let remote = format!("{host}/{}:v1", repo("docker-token"));
    load_as(&docker, "docker-token", &remote);

    // Anonymous: the token service grants pull only.
    refused(
        &docker.try_docker(&["push", &remote]),
        &["denied", "unauthorized", "authentication required"],
    );
    let login = docker.docker(&[
        "login",
        "--username",
        "alice",
        "--password",
        "secret",
        &host,
    ]);
    assert!(
        login.stdout.contains("Login Succeeded"),
        "{}",
        login.describe()
    );
    let pushed = pushed_digest(&docker.docker(&["push", &remote]).stdout);
    docker.docker(&["logout", &host]);
    docker.docker(&["rmi", &remote]);
    let pull = docker.docker(&["pull", &remote]);
    assert_eq!(pulled_digest(&pull.stdout), pushed);
}

#[test]
fn docker_registry_mirrors_pull_library_images_through_berth() {
    // The mirror asks for tokens, which the token service gives anyone for pulls: docker never sends
    // credentials to a mirror, so its pulls through it are anonymous.
    let service = TokenService::start();
    let m = Mirror::start_with("1h", true, &service.config_yaml());
    let img = sample_image("docker-mirror");
    let r = push_image(&m.upstream.api(), "library/alpine", "3.19", &img);
    assert_eq!(r.status, 201, "{}", r.describe());
    let Some(docker) = Dockerd::start(
        "docker_registry_mirrors",
        &DockerdSettings {
            mirrors: vec![m.mirror.base_url()],
        },
    ) else {
        return;
    };

    // `docker pull alpine:3.19` is Docker Hub's library/alpine: served by berth, fetched upstream once.
    let pull = docker.docker(&["pull", "alpine:3.19"]);
    assert_eq!(pulled_digest(&pull.stdout), img.manifest.digest);
    assert_eq!(docker.inspect("alpine:3.19", "{{.Id}}"), img.config.digest);
    assert_eq!(m.blob_gets(), img.blobs().len(), "each blob fetched once");
    assert_eq!(docker.hub_attempts(), 0, "docker went to Docker Hub");

    // Pulled again into an emptied daemon: all from the cache.
    docker.docker(&["rmi", "alpine:3.19"]);
    let again = docker.docker(&["pull", "docker.io/library/alpine:3.19"]);
    assert_eq!(pulled_digest(&again.stdout), img.manifest.digest);
    assert_eq!(
        m.blob_gets(),
        img.blobs().len(),
        "the second pull was cached"
    );
    assert_eq!(docker.hub_attempts(), 0);
}

#[test]
fn docker_pulls_through_berth_from_a_registry_2_upstream() {
    // registry:2 holds Docker Hub's kind of name; berth mirrors it as registry:2's proxy would.
    let Some(upstream) = Registry2::start("docker_registry_2_upstream") else {
        return;
    };
    let img = sample_image("docker-registry2");
    let tools = Tools::new();
    let layout = tools.scratch("layout");
    write_image_layout(&layout, "v1", &img);
    tools.skopeo(&[
        "copy",
        "--preserve-digests",
        "--dest-tls-verify=false",
        &format!("oci:{}:v1", layout.display()),
        &format!("docker://{}/library/alpine:3.19", upstream.host()),
    ]);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temporary directory: {e}"));
    let config = dir.path().join("mirror.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nproxy:\n  remoteurl: {}\n",
            upstream.base_url()
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mirror = Server::start_with(Options {
        config: Some(config),
        ..Options::default()
    });
    let Some(docker) = Dockerd::start(
        "docker_registry_2_upstream",
        &DockerdSettings {
            mirrors: vec![mirror.base_url()],
        },
    ) else {
        return;
    };
    let blob_gets = || upstream.requests("\"GET /v2/library/alpine/blobs/");
    let pull = docker.docker(&["pull", "alpine:3.19"]);
    assert_eq!(pulled_digest(&pull.stdout), img.manifest.digest);
    assert_eq!(docker.inspect("alpine:3.19", "{{.Id}}"), img.config.digest);
    assert_eq!(blob_gets(), img.blobs().len(), "each blob fetched once");
    docker.docker(&["rmi", "alpine:3.19"]);
    docker.docker(&["pull", "alpine:3.19"]);
    assert_eq!(blob_gets(), img.blobs().len(), "the second pull was cached");
    assert_eq!(docker.hub_attempts(), 0, "docker went to Docker Hub");
}

/// The seeds' setup on one berth: docker's `registry-mirrors` for Docker Hub's official images and the
/// company's registry for pushes. docker asks a mirror only for `/v2/library/<name>` and never sends it
/// credentials, so the official images are mirrored under the `library` prefix (anonymous pulls, token
/// service) and every other name is a local repository that takes alice's logged-in pushes.
#[test]
fn one_berth_is_dockers_mirror_and_takes_authenticated_pushes() {
    let service = TokenService::start();
    // The upstream stands for Docker Hub; it is not Docker Hub, so berth asks it for the name after the
    // prefix (`alpine`), as it would ask any registry mirrored under a prefix.
    let upstream = Server::start();
    let img = sample_image("docker-mirror-push");
    let r = push_image(&upstream.api(), "alpine", "3.19", &img);
    assert_eq!(r.status, 201, "{}", r.describe());
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temporary directory: {e}"));
    let config = dir.path().join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nproxy:\n  upstreams:\n    - prefix: library\n      remoteurl: {}\n{}",
            upstream.base_url(),
            service.config_yaml()
        ),
    )
    .unwrap_or_else(|e| panic!("config: {e}"));
    let berth = Server::start_with(Options {
        config: Some(config),
        ..Options::default()
    });
    let Some(docker) = Dockerd::start(
        "docker_mirror_and_push",
        &DockerdSettings {
            mirrors: vec![berth.base_url()],
        },
    ) else {
        return;
    };

    let pull = docker.docker(&["pull", "alpine:3.19"]);
    assert_eq!(pulled_digest(&pull.stdout), img.manifest.digest);
    assert_eq!(docker.hub_attempts(), 0, "docker went to Docker Hub");

    let host = berth.host();
    let remote = format!("{host}/{}:v1", repo("team-app"));
    load_as(&docker, "docker-mirror-push-own", &remote);
    refused(
        &docker.try_docker(&["push", &remote]),
        &["denied", "unauthorized", "authentication required"],
    );
    let login = docker.docker(&[
        "login",
        "--username",
        "alice",
        "--password",
        "secret",
        &host,
    ]);
    assert!(
        login.stdout.contains("Login Succeeded"),
        "{}",
        login.describe()
    );
    let pushed = pushed_digest(&docker.docker(&["push", &remote]).stdout);
    // Pulled back anonymously (the token service grants anyone pulls): the bytes berth stored.
    docker.docker(&["rmi", &remote]);
    assert_eq!(
        pulled_digest(&docker.docker(&["pull", &remote]).stdout),
        pushed
    );
    // The pushed repository is local: nothing of it was asked of the upstream.
    assert!(
        upstream
            .api()
            .get_manifest(&repo("team-app"), "v1")
            .map(|r| r.status)
            .unwrap_or(0)
            == 404
    );
}
