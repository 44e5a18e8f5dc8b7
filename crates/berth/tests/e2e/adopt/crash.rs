//! kill -9 during `berth serve`'s background adoption (issue 19: every acknowledged write intact, nothing
//! half-written visible). registry:2 (Debian's `docker-registry`) fills a seed repository over its HTTP
//! API; the test then copies the seed's link directories under hundreds of names (registry:2's layout is
//! plain files, so that is a tree registry:2 itself would serve), giving each copy a tag of its own and
//! some one tag less. berth serves the tree and adopts it in the background; it is killed with SIGKILL
//! twice part way, each time after a push it acknowledged, and started a third time to finish.
//!
//! On SQLite and on PostgreSQL. Checked: while the adoption runs, the catalog lists every repository of
//! the tree in name order with no gap and no repeat, a sample of them lists its tags whole, and the last
//! two pull back with skopeo and podman before the background reaches them (adopted ahead); each
//! restart continues after the repository saved last rather than from the start (each repository
//! adopted once, bar one per kill);
//! the final report counts every repository, manifest and tag once; every tag lists and its manifest
//! pulls back byte for byte, and a sample of repositories' blobs too; the acknowledged pushes are intact.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::harness::images::{Image, host_arch, image};
use crate::harness::registry2::Registry2;
use crate::harness::{Api, Metadata, Options, Server, Tools, push_image, sha256};

/// Copies of the seed repository: enough that the adoption takes seconds, not milliseconds.
const COPIES: usize = 300;

/// The seed's images and their tags (the last tag moved onto the third image).
const SEED_TAGS: [(usize, &str); 4] = [(0, "v0"), (1, "v1"), (2, "v2"), (2, "latest")];

/// A small single-layer image, distinct per `label`.
fn small_image(label: &str) -> Image {
    image(host_arch(), label, &[&[("hello", label.as_bytes())]])
}

/// Copies directory `from` to `to` (files and directories only, as registry:2's tree holds).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The names of the directories in `dir`, sorted.
fn dirs(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().unwrap().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// One repository as registry:2's tree has it.
struct TreeRepo {
    /// Each tag and the digest its `current/link` names.
    tags: BTreeMap<String, String>,
    revisions: usize,
}

/// Reads what the tree says of repository `name`.
fn tree_repo(tree: &Path, name: &str) -> TreeRepo {
    let base = tree.join("repositories").join(name).join("_manifests");
    let tags = dirs(&base.join("tags"))
        .into_iter()
        .map(|tag| {
            let link = base.join("tags").join(&tag).join("current/link");
            (tag, std::fs::read_to_string(link).unwrap())
        })
        .collect();
    TreeRepo {
        tags,
        revisions: dirs(&base.join("revisions/sha256")).len(),
    }
}

/// The bytes the tree holds for `digest`.
fn tree_blob(tree: &Path, digest: &str) -> Vec<u8> {
    let hex = digest.strip_prefix("sha256:").unwrap();
    std::fs::read(tree.join(format!("blobs/sha256/{}/{hex}/data", &hex[..2]))).unwrap()
}

/// Every repository of the catalog, page by page.
fn full_catalog(api: &Api) -> Vec<String> {
    let mut all: Vec<String> = Vec::new();
    loop {
        let path = match all.last() {
            Some(last) => format!("/v2/_catalog?n=100&last={last}"),
            None => "/v2/_catalog?n=100".to_string(),
        };
        let page = api.get(&path, &[]).unwrap().json();
        let page: Vec<String> = page["repositories"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap().to_string())
            .collect();
        if page.is_empty() {
            return all;
        }
        all.extend(page);
    }
}

/// The tags berth lists for `repo` (none when it does not know it).
fn tags(api: &Api, repo: &str) -> Vec<String> {
    let r = api.get(&format!("/v2/{repo}/tags/list"), &[]).unwrap();
    if r.status == 404 {
        return Vec::new();
    }
    assert_eq!(r.status, 200, "{}", r.describe());
    let listed = r.json();
    let mut tags: Vec<String> = listed["tags"]
        .as_array()
        .map(|a| a.iter().map(|t| t.as_str().unwrap().to_string()).collect())
        .unwrap_or_default();
    tags.sort();
    tags
}

/// The value of `key=` in a log line, unquoted.
fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let start = line.find(&format!(" {key}="))? + key.len() + 2;
    let value = line[start..].split(' ').next()?;
    Some(value.trim_matches('"'))
}

/// The log of the current run: what the log file gained since `offset`.
fn run_log(berth: &Server, offset: usize) -> String {
    let log = std::fs::read(berth.log_path()).unwrap();
    String::from_utf8_lossy(&log[offset.min(log.len())..]).into_owned()
}

/// How many repositories the current run reported adopted so far (its last progress line's `done`).
fn progress(log: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("registry:2's tree: adoption progress"))
        .filter_map(|l| field(l, "done")?.parse().ok())
        .next_back()
        .unwrap_or(0)
}

/// Waits until the current run (its log after `offset`) has adopted `at_least` repositories, then kills
/// it with SIGKILL; returns that run's log. Fails if the adoption finished first (then the tree is too
/// small for this machine, and nothing was tested).
fn kill_during_adoption(berth: &mut Server, offset: usize, at_least: usize) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    while progress(&run_log(berth, offset)) < at_least {
        assert!(
            Instant::now() < deadline,
            "the adoption did not reach {at_least} repositories\n{}",
            berth.log_tail()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    berth.kill9();
    let log = run_log(berth, offset);
    assert!(
        !log.contains("adopted registry:2's tree:"),
        "the adoption finished before the kill: make the tree bigger\n{}",
        berth.log_tail()
    );
    log
}

/// While the adoption runs: the catalog lists every repository of the tree (those not adopted yet too)
/// in name order, no gap, no repeat, beside the acknowledged pushes; and a sample of them, on either
/// side of the cursor, lists its tags whole (one not adopted yet is adopted whole for the request).
fn check_catalog_midway(api: &Api, names: &[String], tree: &BTreeMap<String, TreeRepo>) {
    let listed = full_catalog(api);
    let mut sorted = listed.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(listed, sorted, "the catalog repeats or misorders a name");
    let of_tree: Vec<&String> = listed.iter().filter(|r| tree.contains_key(*r)).collect();
    assert!(
        listed
            .iter()
            .all(|r| tree.contains_key(r) || r.starts_with("acked/")),
        "{listed:?}"
    );
    assert_eq!(
        of_tree,
        names.iter().collect::<Vec<_>>(),
        "the catalog does not list the tree's every repository"
    );
    for repo in names.iter().step_by(60) {
        let want: Vec<String> = tree[repo].tags.keys().cloned().collect();
        assert_eq!(tags(api, repo), want, "{repo} is listed while half adopted");
    }
}

#[test]
fn background_adoption_survives_kill9_twice() {
    survives_kill9("background_adoption_survives_kill9_twice", Metadata::Sqlite);
}

/// The catalog in PostgreSQL (the blobs and the tree still on the filesystem).
#[test]
fn background_adoption_survives_kill9_twice_on_postgres() {
    survives_kill9(
        "background_adoption_survives_kill9_twice_on_postgres",
        Metadata::Postgres,
    );
}

fn survives_kill9(test: &str, metadata: Metadata) {
    let Some(mut berth) = Server::try_start_with(Options {
        metadata,
        ..Options::default()
    }) else {
        return;
    };
    berth.stop();
    let root = berth.root().to_path_buf();
    let tree: PathBuf = root.join("docker/registry/v2");

    // The seed, through registry:2's API: three images, a tag moved.
    let Some(registry2) = Registry2::start_on(test, Some(&root)) else {
        return;
    };
    let api2 = Api::new(&registry2.base_url());
    let seeds: Vec<Image> = (0..3).map(|i| small_image(&format!("seed-{i}"))).collect();
    push_image(&api2, "seed", "latest", &seeds[0]);
    for (i, tag) in SEED_TAGS {
        push_image(&api2, "seed", tag, &seeds[i]);
    }
    drop(registry2);

    // The copies: `many/rNNN`, each with a tag of its own; every third without `v0`.
    let seed_dir = tree.join("repositories/seed");
    for k in 0..COPIES {
        let dir = tree.join(format!("repositories/many/r{k:03}"));
        copy_dir(&seed_dir, &dir);
        let own = seeds[k % 3].manifest.digest.clone();
        let hex = own.strip_prefix("sha256:").unwrap();
        let tag = dir.join(format!("_manifests/tags/own-{k}"));
        for link in [
            tag.join("current/link"),
            tag.join(format!("index/sha256/{hex}/link")),
        ] {
            std::fs::create_dir_all(link.parent().unwrap()).unwrap();
            std::fs::write(link, &own).unwrap();
        }
        if k % 3 == 0 {
            std::fs::remove_dir_all(dir.join("_manifests/tags/v0")).unwrap();
        }
    }
    let names: Vec<String> = (0..COPIES)
        .map(|k| format!("many/r{k:03}"))
        .chain(["seed".to_string()])
        .collect();
    let expected: BTreeMap<String, TreeRepo> = names
        .iter()
        .map(|n| (n.clone(), tree_repo(&tree, n)))
        .collect();
    assert_eq!(expected["seed"].tags.len(), 4);
    assert_eq!(expected["seed"].revisions, 3);
    assert_eq!(expected["many/r001"].tags.len(), 5);
    assert_eq!(expected["many/r003"].tags.len(), 4);

    // First run: a push acknowledged while the adoption runs, then SIGKILL a tenth of the way.
    let offset1 = std::fs::metadata(berth.log_path()).unwrap().len() as usize;
    berth.start_again();
    let one = small_image("acked-one");
    let r = push_image(&berth.api(), "acked/one", "v1", &one);
    assert_eq!(r.status, 201, "{}", r.describe());
    let log1 = kill_during_adoption(&mut berth, offset1, COPIES / 10);
    let done1 = progress(&log1);
    eprintln!("killed after {done1} repositories");
    // `berth import --status` reads the progress the dead process left.
    let status = berth.berth_ok(&["import", "--status"]);
    assert!(
        status.contains("adoption in progress, last repository adopted whole: "),
        "{status}"
    );

    // Second run: continues after the last repository saved, not from the first.
    let offset2 = std::fs::metadata(berth.log_path()).unwrap().len() as usize;
    berth.start_again();
    let api = berth.api();
    let two = small_image("acked-two");
    let r = push_image(&api, "acked/two", "v1", &two);
    assert_eq!(r.status, 201, "{}", r.describe());
    // The last repository, far past the cursor, pulls back byte for byte before the background gets
    // there: adopted ahead for skopeo's request.
    let tools = Tools::new();
    let pulled = super::pull(&tools, &berth.host(), "seed:latest", "seed-ahead");
    let latest = &expected["seed"].tags["latest"];
    assert_eq!(
        pulled["manifest.json"],
        tree_blob(&tree, latest),
        "seed:latest"
    );
    // And the one before it with podman, under the digest the tree's tag names.
    let remote = format!("{}/many/r{:03}:latest", berth.host(), COPIES - 1);
    tools.podman(&["pull", "-q", "--tls-verify=false", &remote]);
    let digest = tools.podman(&["image", "inspect", "--format", "{{.Digest}}", &remote]);
    let want = &expected[&format!("many/r{:03}", COPIES - 1)].tags["latest"];
    assert_eq!(digest.stdout.trim(), want, "{remote}");
    check_catalog_midway(&api, &names, &expected);
    let log2 = kill_during_adoption(&mut berth, offset2, done1 + COPIES / 10);
    let continued = log2
        .lines()
        .find(|l| l.contains("continuing the adoption of registry:2's tree"))
        .unwrap_or_else(|| panic!("the second run did not continue the adoption\n{log2}"));
    let after = field(continued, "after").unwrap();
    assert!(
        after >= names[done1 - 1].as_str(),
        "continued after {after}, before {} (adopted before the kill)",
        names[done1 - 1]
    );
    assert!(
        log2.lines()
            .any(|l| l.contains("adopted ahead of the background adoption")
                && field(l, "repo") == Some("seed")),
        "seed was not adopted ahead for the pull\n{log2}"
    );
    let done2 = progress(&log2);
    eprintln!("continued after {after}; killed again after {done2} repositories");

    // Third run: to the end.
    let offset3 = std::fs::metadata(berth.log_path()).unwrap().len() as usize;
    berth.start_again();
    let api = berth.api();
    let deadline = Instant::now() + Duration::from_secs(90);
    let summary = loop {
        let log = run_log(&berth, offset3);
        if let Some(line) = log
            .lines()
            .find(|l| l.contains("adopted registry:2's tree:"))
        {
            break line.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "the adoption did not finish\n{}",
            berth.log_tail()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    eprintln!("{summary}");
    let manifests: usize = expected.values().map(|r| r.revisions).sum();
    let tag_count: usize = expected.values().map(|r| r.tags.len()).sum();
    let counts = format!(
        "adopted registry:2's tree: {} repositories, {manifests} manifests, {tag_count} tags",
        names.len()
    );
    assert!(summary.contains(&counts), "{summary}\nwanted: {counts}");
    assert!(summary.contains("; skipped 0 ("), "{summary}");
    let status = berth.berth_ok(&["import", "--status"]);
    assert!(
        status.contains(&format!(
            "adoption finished; {} repositories, {manifests} manifests, {tag_count} tags",
            names.len()
        )),
        "{status}"
    );

    // Each repository adopted once, bar the one a kill interrupted (at most one per kill).
    let whole_log = run_log(&berth, offset1);
    let mut adoptions: BTreeMap<String, usize> = BTreeMap::new();
    for line in whole_log
        .lines()
        .filter(|l| l.contains("adopted a registry:2 repository"))
    {
        *adoptions
            .entry(field(line, "repo").unwrap().to_string())
            .or_default() += 1;
    }
    assert_eq!(
        adoptions.keys().collect::<Vec<_>>(),
        names.iter().collect::<Vec<_>>()
    );
    let repeats: Vec<_> = adoptions.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        repeats.len() <= 2 && repeats.iter().all(|(_, n)| **n == 2),
        "an adoption after a kill did not continue where the last one stopped: {repeats:?}"
    );

    // Everything whole: the catalog, every tag list and manifest, a sample's blobs, the pushes.
    let mut all: Vec<String> = names.clone();
    all.extend(["acked/one".to_string(), "acked/two".to_string()]);
    all.sort();
    assert_eq!(full_catalog(&api), all);
    for (k, (repo, want)) in expected.iter().enumerate() {
        assert_eq!(
            tags(&api, repo),
            want.tags.keys().cloned().collect::<Vec<_>>(),
            "{repo}"
        );
        for (tag, digest) in &want.tags {
            let manifest = api.manifest_ok(repo, tag);
            assert_eq!(sha256(&manifest), *digest, "{repo}:{tag}");
            assert_eq!(manifest, tree_blob(&tree, digest), "{repo}:{tag}");
        }
        if k % 50 == 0 || repo == "seed" {
            for img in &seeds {
                for blob in img.blobs() {
                    let got = api.get_ok(&format!("/v2/{repo}/blobs/{}", blob.digest));
                    assert_eq!(got, blob.bytes, "{repo}@{}", blob.digest);
                }
            }
        }
    }
    for (repo, img) in [("acked/one", &one), ("acked/two", &two)] {
        assert_eq!(api.manifest_ok(repo, "v1"), img.manifest.bytes, "{repo}");
        for blob in img.blobs() {
            let got = api.get_ok(&format!("/v2/{repo}/blobs/{}", blob.digest));
            assert_eq!(got, blob.bytes, "{repo}@{}", blob.digest);
        }
    }
    berth.stop();
}
