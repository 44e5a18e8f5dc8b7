//! berth's `replication` section: sources read strictly, names and tag patterns checked, local names
//! under the prefix, the password masked when printed.

use super::*;

#[test]
fn sources_are_read_strictly_and_name_their_local_repositories() {
    let l = load_ok(
        "replication:\n  interval: 30m\n  sources:\n    - remoteurl: https://r.example/\n      username: mirror\n      password: s3cret\n      repositories: [library/alpine, team/app, \"org/**\"]\n      prefix: /copies/\n      tags: [\"v*\", latest]\n      semver: \">=1.2, <2\"\n      regex: \"^v\"\n      deleteremovedtags: true\n      concurrency: 8\n    - remoteurl: http://127.0.0.1:5000\n      repositories: app\n",
    );
    let r = &l.config.replication;
    assert_eq!(r.interval, Duration::from_secs(1800));
    assert_eq!(r.sources.len(), 2);
    let s = &r.sources[0];
    assert_eq!(s.upstream.remote_url, "https://r.example");
    assert_eq!(s.upstream.username.as_deref(), Some("mirror"));
    assert_eq!(s.prefix.as_deref(), Some("copies"));
    assert!(s.tags[0].matches("v1.2") && !s.tags[0].matches("nightly"));
    assert!(s.delete_removed_tags);
    let range = s.semver.as_ref().unwrap();
    assert!(range.keeps("v1.5") && !range.keeps("2.0"));
    assert!(s.regex.as_ref().unwrap().keeps("v1") && !s.regex.as_ref().unwrap().keeps("1"));
    let reps = r.replications().unwrap();
    assert!(reps[0].semver.is_some() && reps[1].semver.is_none());
    assert!(reps[0].regex.is_some() && reps[1].regex.is_none());
    // A name with `*` is a pattern over the upstream's catalog, its matches put under the prefix.
    assert!(reps[0].patterns[0].matches("org/x/y") && !reps[0].patterns[0].matches("team/app"));
    assert_eq!(reps[0].prefix.as_deref(), Some("copies"));
    assert!(reps[1].patterns.is_empty());
    assert_eq!((reps[0].concurrency, reps[1].concurrency), (8, 4));
    let names: Vec<(String, String)> = reps[0]
        .repositories
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(
        names,
        [
            ("library/alpine".into(), "copies/library/alpine".into()),
            ("team/app".into(), "copies/team/app".into())
        ]
    );
    // No prefix: the same names; every tag; tags kept when gone upstream.
    assert_eq!(reps[1].repositories[0].1.as_str(), "app");
    assert!(reps[1].tags.is_empty() && !reps[1].delete_removed_tags);
    // Printed without the password, and read back the same.
    let printed = yaml::to_string(&l.config.to_yaml()).unwrap();
    assert!(printed.contains("copies"), "{printed}");
    assert!(!printed.contains("s3cret"), "{printed}");
    assert_eq!(
        load_ok("version: 0.1\n").config.replication.interval,
        Duration::from_secs(3600)
    );
    assert!(
        load_ok("version: 0.1\n")
            .config
            .replication
            .replications()
            .unwrap()
            .is_empty()
    );

    for (yaml, key) in [
        (
            "replication:\n  sources:\n    - repositories: [a]\n",
            "replication.sources.0.remoteurl",
        ),
        (
            "replication:\n  sources:\n    - remoteurl: https://r\n",
            "replication.sources.0.repositories",
        ),
        (
            "replication:\n  sources:\n    - remoteurl: https://r\n      repositories: [a]\n      tag: [v1]\n",
            "replication.sources.0.tag",
        ),
        (
            "replication:\n  sources:\n    - remoteurl: https://r\n      repositories: [Bad/Name]\n",
            "replication.sources.0.repositories",
        ),
        (
            "replication:\n  sources:\n    - remoteurl: ftp://r\n      repositories: [a]\n",
            "replication.sources.0.remoteurl",
        ),
        ("replication:\n  interval: 10s\n", "replication.interval"),
        (
            "replication:\n  sources:\n    - remoteurl: https://r\n      repositories: [a]\n      concurrency: 0\n",
            "replication.sources.0.concurrency",
        ),
        (
            "replication:\n  sources:\n    - remoteurl: https://r\n      repositories: [a]\n      semver: \">=one\"\n",
            "replication.sources.0.semver",
        ),
        (
            "replication:\n  sources:\n    - remoteurl: https://r\n      repositories: [a]\n      regex: \"(\"\n",
            "replication.sources.0.regex",
        ),
    ] {
        let e = error(yaml);
        assert!(e.contains(key), "{yaml}: {e}");
    }
}
