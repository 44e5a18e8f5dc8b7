//! A registry:2 user swaps the image: the real registry:2 (Debian's `docker-registry`) fills its tree
//! through skopeo (several repositories, one nested, shared layers, OCI and Docker schema2 images, a
//! multi-platform index, a tag moved, an artifact with a subject, a deleted image, an unfinished upload),
//! is stopped, and berth, after `berth import --verify`, serves the same directory: every image pulls
//! back byte for byte (skopeo; podman under the same digest),
//! the catalog and the tag lists are registry:2's, the deleted image stays gone, the artifact is a
//! referrer, new pushes work and copy nothing registry:2 already holds, registry:2's tree is left as it
//! was, and registry:2 started again on the volume still serves its images. On the filesystem and, the
//! same way, on S3 (registry:2's tree in the bucket prefix berth is given).

mod crash;

use std::collections::BTreeMap;
use std::path::Path;

use crate::harness::http::OCI_MANIFEST;
use crate::harness::images::{
    Blob, artifact, empty_config, multi_platform_index, sample_image, write_image_layout,
    write_layout,
};
use crate::harness::registry2::Registry2;
use crate::harness::s3::S3Bucket;
use crate::harness::{Api, BlobPush, Metadata, Options, Server, Storage, Tools};

const TREE: &str = "docker/registry/v2";

/// Every file under `dir` and its bytes.
fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(dir: &Path, base: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
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
    walk(dir, dir, &mut out);
    out
}

/// Bytes of the files under `dir` (what `du --apparent-size` counts, without the directories).
fn bytes_under(dir: &Path) -> u64 {
    files(dir).values().map(|b| b.len() as u64).sum()
}

/// `du -sb dir`, for the log.
fn du(dir: &Path) -> String {
    let out = std::process::Command::new("du")
        .arg("-sb")
        .arg(dir)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The repositories of a registry's catalog.
fn catalog(api: &Api) -> Vec<String> {
    let listed = api.get("/v2/_catalog", &[]).unwrap().json();
    listed["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect()
}

/// Copies `host/reference` (every instance of an index) into a `dir:` directory: the manifests and
/// blobs exactly as the registry serves them, by digest.
fn pull(tools: &Tools, host: &str, reference: &str, name: &str) -> BTreeMap<String, Vec<u8>> {
    let dir = tools.scratch(name);
    tools.skopeo(&[
        "copy",
        "--all",
        "--preserve-digests",
        "--src-tls-verify=false",
        &format!("docker://{host}/{reference}"),
        &format!("dir:{}", dir.display()),
    ]);
    files(&dir)
}

/// The summary line of `berth scrub`: how many of berth's own blobs (its layout, not registry:2's tree)
/// it hashed.
fn own_blobs(berth: &Server) -> String {
    let out = berth.berth_ok(&["scrub"]);
    let summary = out.lines().last().unwrap().to_string();
    eprintln!("berth scrub: {summary}");
    summary
}

#[test]
fn berth_serves_a_registry2_store_in_place() {
    in_place(
        "berth_serves_a_registry2_store_in_place",
        Storage::Filesystem,
        Metadata::Sqlite,
    );
}

#[test]
fn berth_serves_a_registry2_store_in_place_on_s3() {
    in_place(
        "berth_serves_a_registry2_store_in_place_on_s3",
        Storage::S3,
        Metadata::Sqlite,
    );
}

/// As replicas keep it: blobs on S3, metadata in PostgreSQL.
#[test]
fn berth_serves_a_registry2_store_in_place_on_s3_and_postgres() {
    in_place(
        "berth_serves_a_registry2_store_in_place_on_s3_and_postgres",
        Storage::S3,
        Metadata::Postgres,
    );
}

fn in_place(test: &str, storage: Storage, metadata: Metadata) {
    let tools = Tools::new();
    let s3 = match storage {
        Storage::Filesystem => None,
        Storage::S3 => match S3Bucket::from_env(test) {
            Some(bucket) => Some(bucket),
            None => return,
        },
    };
    // berth's storage, handed to registry:2 first (berth is stopped until the swap).
    let Some(mut berth) = Server::try_start_with(Options {
        storage,
        metadata,
        s3: s3.clone(),
        ..Options::default()
    }) else {
        return;
    };
    berth.stop();
    let root = berth.root().to_path_buf();
    let registry2 = match &s3 {
        Some(bucket) => Registry2::start_on_s3(test, bucket),
        None => Registry2::start_on(test, Some(&root)),
    };
    let Some(registry2) = registry2 else {
        return;
    };
    let host2 = registry2.host();
    let push = |src: &str, dest: &str, extra: &[&str]| {
        let mut args = vec!["copy", "--dest-tls-verify=false"];
        args.extend_from_slice(extra);
        let dest = format!("docker://{host2}/{dest}");
        args.extend_from_slice(&[src, &dest]);
        tools.skopeo(&args);
    };
    let layout = |name: &str, img: &crate::harness::images::Image| {
        let dir = tools.scratch(name);
        write_image_layout(&dir, "t", img);
        format!("oci:{}:t", dir.display())
    };
    // OCI images sharing their big layer, one also as Docker schema2, a tag moved from one to another.
    let (v1, v2, old, other) = (
        sample_image("adopt-v1"),
        sample_image("adopt-v2"),
        sample_image("adopt-old"),
        sample_image("adopt-other"),
    );
    push(&layout("v1", &v1), "adopt/app:v1", &["--preserve-digests"]);
    push(
        &layout("v1", &v1),
        "adopt/app:latest",
        &["--preserve-digests"],
    );
    push(&layout("v2", &v2), "adopt/app:v2", &["--format", "v2s2"]);
    push(
        &layout("v2", &v2),
        "adopt/app:latest",
        &["--format", "v2s2"],
    );
    push(
        &layout("other", &other),
        "adopt/base/other:latest",
        &["--preserve-digests"],
    );
    // A multi-platform index.
    let multi = multi_platform_index("adopt-multi");
    let multi_dir = tools.scratch("multi");
    let blobs: Vec<&Blob> = multi
        .images
        .iter()
        .flat_map(|i| std::iter::once(&i.manifest).chain(i.blobs()))
        .collect();
    write_layout(&multi_dir, &[("multi", &multi.index)], blobs);
    push(
        &format!("oci:{}:multi", multi_dir.display()),
        "adopt/multi:multi",
        &["--all", "--preserve-digests"],
    );
    // An image deleted in registry:2 (its manifest and the tag on it).
    push(
        &layout("old", &old),
        "adopt/app:old",
        &["--preserve-digests"],
    );
    tools.skopeo(&[
        "delete",
        "--tls-verify=false",
        &format!("docker://{host2}/adopt/app:old"),
    ]);
    // An artifact about v1 (skopeo copies images only: pushed over the API, by digest).
    let api2 = Api::new(&registry2.base_url());
    let payload = Blob::new(
        "application/vnd.example.sbom.v1+json",
        b"{\"sbom\":true}".to_vec(),
    );
    for blob in [&empty_config(), &payload] {
        api2.push_blob("adopt/app", &blob.bytes, BlobPush::Monolithic)
            .unwrap();
    }
    let sbom = artifact(
        "application/vnd.example.sbom.v1+json",
        &payload,
        &v1.manifest,
    );
    let r = api2
        .put_manifest("adopt/app", &sbom.digest, OCI_MANIFEST, &sbom.bytes)
        .unwrap();
    assert_eq!(
        r.status,
        201,
        "registry:2 refused the artifact: {}",
        r.describe()
    );

    // An upload registry:2 never finished: its `_uploads/` directory is no content of the repository.
    let mut unfinished = api2.start_upload("adopt/app").unwrap();
    api2.patch(&mut unfinished, b"half of a layer, never finished")
        .unwrap();

    // What registry:2 serves, to compare berth's with.
    let repos = catalog(&api2);
    assert_eq!(repos, ["adopt/app", "adopt/base/other", "adopt/multi"]);
    let tags: Vec<Vec<String>> = repos.iter().map(|r| tools.skopeo_tags(&host2, r)).collect();
    assert_eq!(
        tags[0],
        ["latest", "v1", "v2"],
        "registry:2 deleted the tag old"
    );
    let refs = [
        "adopt/app:v1",
        "adopt/app:v2",
        "adopt/app:latest",
        "adopt/base/other:latest",
        "adopt/multi:multi",
    ];
    let refs: Vec<String> = refs
        .iter()
        .map(|s| s.to_string())
        .chain([format!("adopt/app@{}", sbom.digest)])
        .collect();
    let served: Vec<_> = refs
        .iter()
        .enumerate()
        .map(|(i, r)| pull(&tools, &host2, r, &format!("reg2-{i}")))
        .collect();
    drop(registry2);

    // On the filesystem registry:2's tree is looked at directly; on S3 through what berth and registry:2
    // serve from it.
    let tree = (storage == Storage::Filesystem).then(|| root.join(TREE));
    let tree_before = tree.as_deref().map(files);
    if let Some(tree) = &tree {
        eprintln!("registry:2's blobs: {}", du(&tree.join("blobs")));
    }
    if let Some(before) = &tree_before {
        assert!(
            before
                .keys()
                .any(|k| k.starts_with("repositories/adopt/app/_uploads/")),
            "registry:2 kept no unfinished upload"
        );
    }
    let out = berth.berth_ok(&["import", "--verify"]);
    eprintln!("berth import --verify:\n{out}");
    let summary = out.lines().last().unwrap();
    assert!(
        summary.starts_with("adopted registry:2's tree: 3 repositories, 7 manifests, 5 tags,"),
        "{out}"
    );
    assert!(summary.contains("; skipped 0 ("), "{out}");
    berth.start_again();
    let host = berth.host();
    let api = berth.api();

    assert_eq!(catalog(&api), repos);
    for (repo, tags) in repos.iter().zip(&tags) {
        assert_eq!(&tools.skopeo_tags(&host, repo), tags, "{repo}");
    }
    for (i, (reference, expected)) in refs.iter().zip(&served).enumerate() {
        assert_eq!(
            &pull(&tools, &host, reference, &format!("berth-{i}")),
            expected,
            "{reference} differs from registry:2's"
        );
    }
    // podman pulls the same image under the same digest.
    let remote = format!("{host}/adopt/app:v1");
    tools.podman(&["pull", "-q", "--tls-verify=false", &remote]);
    let digest = tools.podman(&["image", "inspect", "--format", "{{.Digest}}", &remote]);
    assert_eq!(digest.stdout.trim(), v1.manifest.digest, "{remote}");
    // The deleted image stays deleted, by tag and by digest.
    assert_eq!(api.get_manifest("adopt/app", "old").unwrap().status, 404);
    assert_eq!(
        api.get_manifest("adopt/app", &old.manifest.digest)
            .unwrap()
            .status,
        404
    );
    // The artifact is a referrer of v1.
    let referrers = api
        .get(
            &format!("/v2/adopt/app/referrers/{}", v1.manifest.digest),
            &[],
        )
        .unwrap()
        .json();
    assert_eq!(
        referrers["manifests"][0]["digest"],
        sbom.digest.as_str(),
        "{referrers}"
    );
    // Not a byte was copied: berth's own blob tree is empty, registry:2's holds every blob once.
    assert!(own_blobs(&berth).starts_with("scrub verified 0 blobs, 0 bytes"));
    let own = root.join("blobs");
    if tree.is_some() {
        eprintln!("berth's blobs after the pulls: {}", du(&own));
        assert_eq!(bytes_under(&own), 0);
    }

    // New pushes work, and store only the bytes registry:2's tree does not hold.
    let new = sample_image("adopt-new");
    let new_src = layout("new", &new);
    tools.skopeo(&[
        "copy",
        "--preserve-digests",
        "--dest-tls-verify=false",
        &new_src,
        &format!("docker://{host}/adopt/app:new"),
    ]);
    tools.skopeo(&[
        "copy",
        "--preserve-digests",
        "--dest-tls-verify=false",
        &new_src,
        &format!("docker://{host}/adopt/fresh:new"),
    ]);
    assert_eq!(
        pull(&tools, &host, "adopt/app:new", "berth-new").len(),
        pull(&tools, &host, "adopt/fresh:new", "berth-fresh").len()
    );
    let in_tree: Vec<&Blob> = [&v1, &v2, &old, &other]
        .into_iter()
        .chain(&multi.images)
        .flat_map(|i| i.blobs())
        .collect();
    let unseen: Vec<&Blob> = new
        .blobs()
        .into_iter()
        .filter(|b| !in_tree.iter().any(|t| t.digest == b.digest))
        .collect();
    let unseen_bytes: u64 = unseen.iter().map(|b| b.bytes.len() as u64).sum();
    assert!(
        own_blobs(&berth).starts_with(&format!(
            "scrub verified {} blobs, {unseen_bytes} bytes",
            unseen.len()
        )),
        "berth stored more than the blobs registry:2 lacked"
    );
    if tree.is_some() {
        eprintln!("berth's blobs after a push: {}", du(&own));
        assert_eq!(bytes_under(&own), unseen_bytes);
    }
    assert!(
        unseen_bytes
            < new
                .blobs()
                .iter()
                .map(|b| b.bytes.len() as u64)
                .sum::<u64>(),
        "the big layer is shared"
    );
    berth.stop();

    // registry:2's tree is as registry:2 left it, and registry:2 serves it again.
    assert!(
        tree.as_deref().map(files) == tree_before,
        "berth wrote into registry:2's tree"
    );
    let registry2 = match &s3 {
        Some(bucket) => Registry2::start_on_s3(test, bucket),
        None => Registry2::start_on(test, Some(&root)),
    };
    let registry2 = registry2.unwrap();
    for (i, (reference, expected)) in refs.iter().zip(&served).enumerate() {
        assert_eq!(
            &pull(&tools, &registry2.host(), reference, &format!("again-{i}")),
            expected,
            "{reference}"
        );
    }
}

/// The catalog once it lists `want`, polled: the background adoption runs beside the serving.
fn catalog_once(api: &Api, want: &[&str]) -> Vec<String> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let repos = catalog(api);
        if repos == want || std::time::Instant::now() > deadline {
            return repos;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn berth_serve_adopts_a_registry2_store_in_the_background_once() {
    let test = "berth_serve_adopts_a_registry2_store_in_the_background_once";
    let tools = Tools::new();
    let mut berth = Server::start();
    berth.stop();
    let root = berth.root().to_path_buf();
    let Some(registry2) = Registry2::start_on(test, Some(&root)) else {
        return;
    };
    let (one, two) = (sample_image("background-1"), sample_image("background-2"));
    for (img, name, reference) in [(&one, "one", "bg/one:v1"), (&two, "two", "bg/two:v1")] {
        let dir = tools.scratch(name);
        write_image_layout(&dir, "t", img);
        tools.skopeo(&[
            "copy",
            "--preserve-digests",
            "--dest-tls-verify=false",
            &format!("oci:{}:t", dir.display()),
            &format!("docker://{}/{reference}", registry2.host()),
        ]);
    }
    let served = pull(&tools, &registry2.host(), "bg/one:v1", "reg2");
    drop(registry2);

    // No berth import: serve adopts the tree itself, answering at once.
    berth.start_again();
    let api = berth.api();
    assert_eq!(
        catalog_once(&api, &["bg/one", "bg/two"]),
        ["bg/one", "bg/two"]
    );
    assert_eq!(pull(&tools, &berth.host(), "bg/one:v1", "berth"), served);
    let log = std::fs::read_to_string(berth.log_path()).unwrap();
    assert!(log.contains("adoption progress"), "{}", berth.log_tail());
    assert!(
        log.contains("adopted registry:2's tree: 2 repositories, 2 manifests, 2 tags"),
        "{}",
        berth.log_tail()
    );

    // Adopted once: a tag deleted in berth stays deleted across a restart.
    let r = api
        .delete(&format!("/v2/bg/two/manifests/{}", two.manifest.digest))
        .unwrap();
    assert_eq!(r.status, 202, "{}", r.describe());
    berth.restart();
    let api = berth.api();
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert_eq!(catalog(&api), ["bg/one"]);
    assert_eq!(api.get_manifest("bg/two", "v1").unwrap().status, 404);
}
