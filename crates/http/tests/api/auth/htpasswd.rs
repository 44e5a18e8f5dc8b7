//! htpasswd users under the access policy: challenges, pushes with and without rights, anonymous pulls,
//! the filtered catalog.

use axum::http::Method;

use super::*;

fn challenge() -> String {
    format!("Basic realm=\"{REALM}\"")
}

#[tokio::test]
async fn base_challenges_without_credentials_and_answers_200_with() {
    let f = Fixture::new(htpasswd_settings);
    assert_challenged(&f.get("/v2/", None).await, &challenge());
    f.get("/v2/", Some(&basic("alice", "secret")))
        .await
        .assert_status(200);
    f.get("/v2/", Some(&basic("bob", "builder")))
        .await
        .assert_status(200);
}

#[tokio::test]
async fn wrong_password_and_unknown_user_are_401_even_where_anonymous_may_pull() {
    let f = Fixture::new(htpasswd_settings);
    f.seed("public/app").await;
    for creds in [
        basic("alice", "wrong"),
        basic("alice", "Secret"),
        basic("mallory", "secret"),
        basic("alice", ""),
        "Bearer something".to_string(),
        "Basic not-base64!".to_string(),
    ] {
        for uri in ["/v2/", "/v2/public/app/manifests/latest", "/v2/_catalog"] {
            assert_challenged(&f.get(uri, Some(&creds)).await, &challenge());
        }
    }
}

#[tokio::test]
async fn push_with_credentials_succeeds() {
    let f = Fixture::new(htpasswd_settings);
    let alice = basic("alice", "secret");
    let (r, config) = push_blob(&f, "team-a/app", b"{\"os\":\"linux\"}", Some(&alice)).await;
    r.assert_status(201);
    let (r, layer) = push_blob(&f, "team-a/app", b"layer bytes", Some(&alice)).await;
    r.assert_status(201);
    let m = crate::harness::image_manifest((&config, 14), (&layer, 11), None);
    f.call(
        Method::PUT,
        "/v2/team-a/app/manifests/v1",
        Some(&alice),
        Some(&m),
    )
    .await
    .assert_status(201);
    let r = f.get("/v2/team-a/app/manifests/v1", Some(&alice)).await;
    r.assert_status(200);
    assert_eq!(&r.body[..], &m[..]);

    // bob may push to team-a/* too, through a chunked upload session.
    let bob = basic("bob", "builder");
    let r = f
        .call(
            Method::POST,
            "/v2/team-a/other/blobs/uploads/",
            Some(&bob),
            None,
        )
        .await;
    r.assert_status(202);
    let location = r.header("location").to_string();
    f.call(Method::PATCH, &location, Some(&bob), Some(b"abc"))
        .await
        .assert_status(202);
    let d = Digest::sha256_of(b"abc");
    let sep = if location.contains('?') { '&' } else { '?' };
    f.call(
        Method::PUT,
        &format!("{location}{sep}digest={d}"),
        Some(&bob),
        None,
    )
    .await
    .assert_status(201);
}

#[tokio::test]
async fn denied_for_a_user_without_rights() {
    let f = Fixture::new(htpasswd_settings);
    f.seed("private/app").await;
    let m = f.seed("team-a/app").await;
    let bob = basic("bob", "builder");
    let carol = basic("carol", "carol-pw");

    // bob reads team-a but not private; carol reads neither.
    f.get("/v2/team-a/app/manifests/latest", Some(&bob))
        .await
        .assert_status(200);
    for who in [&bob, &carol] {
        f.get("/v2/private/app/manifests/latest", Some(who))
            .await
            .assert_error(403, "DENIED");
        f.get("/v2/private/app/tags/list", Some(who))
            .await
            .assert_error(403, "DENIED");
    }
    // carol may not push to team-a, bob may not delete there.
    let (r, _) = push_blob(&f, "team-a/app", b"x", Some(&carol)).await;
    r.assert_error(403, "DENIED");
    f.call(
        Method::PUT,
        "/v2/team-a/app/manifests/v2",
        Some(&carol),
        Some(&m),
    )
    .await
    .assert_error(403, "DENIED");
    let d = Digest::sha256_of(&m);
    f.call(
        Method::DELETE,
        &format!("/v2/team-a/app/manifests/{d}"),
        Some(&bob),
        None,
    )
    .await
    .assert_error(403, "DENIED");
    // The refused delete deleted nothing; alice (admin) may delete.
    f.get("/v2/team-a/app/manifests/latest", Some(&bob))
        .await
        .assert_status(200);
    f.call(
        Method::DELETE,
        &format!("/v2/team-a/app/manifests/{d}"),
        Some(&basic("alice", "secret")),
        None,
    )
    .await
    .assert_status(202);
}

#[tokio::test]
async fn anonymous_pull_is_allowed_while_anonymous_push_is_refused() {
    let f = Fixture::new(htpasswd_settings);
    let m = f.seed("public/app").await;
    f.seed("private/app").await;

    // No header, and the empty credentials podman/skopeo send when they have none.
    for anon in [None, Some(basic("", ""))] {
        let anon = anon.as_deref();
        let r = f.get("/v2/public/app/manifests/latest", anon).await;
        r.assert_status(200);
        assert_eq!(&r.body[..], &m[..]);
        f.get("/v2/public/app/tags/list", anon)
            .await
            .assert_status(200);

        let (r, _) = push_blob(&f, "public/app", b"anonymous bytes", anon).await;
        assert_challenged(&r, &challenge());
        let r = f
            .call(Method::POST, "/v2/public/app/blobs/uploads/", anon, None)
            .await;
        assert_challenged(&r, &challenge());
        let r = f
            .call(Method::PUT, "/v2/public/app/manifests/evil", anon, Some(&m))
            .await;
        assert_challenged(&r, &challenge());
        // Not readable anonymously: challenged, so the client may log in.
        assert_challenged(
            &f.get("/v2/private/app/manifests/latest", anon).await,
            &challenge(),
        );
    }
    // Nothing was written.
    f.open
        .get("/v2/public/app/manifests/evil")
        .await
        .assert_error(404, "MANIFEST_UNKNOWN");
}

#[tokio::test]
async fn the_catalog_shows_only_what_the_caller_may_pull() {
    let f = Fixture::new(htpasswd_settings);
    for repo in [
        "carol/x",
        "private/a",
        "private/b",
        "public/a",
        "public/b/c",
        "team-a/app",
        "team-a/lib",
        "zzz/last",
    ] {
        f.seed(repo).await;
    }
    let list = |r: &Resp| -> Vec<String> {
        r.json()["repositories"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect()
    };
    let cases: Vec<(Option<String>, Vec<&str>)> = vec![
        (None, vec!["public/a", "public/b/c"]),
        (
            Some(basic("bob", "builder")),
            vec!["public/a", "public/b/c", "team-a/app", "team-a/lib"],
        ),
        (
            Some(basic("carol", "carol-pw")),
            vec!["carol/x", "public/a", "public/b/c"],
        ),
        (
            Some(basic("alice", "secret")),
            vec![
                "carol/x",
                "private/a",
                "private/b",
                "public/a",
                "public/b/c",
                "team-a/app",
                "team-a/lib",
                "zzz/last",
            ],
        ),
    ];
    for (who, want) in cases {
        let who = who.as_deref();
        let r = f.get("/v2/_catalog", who).await;
        r.assert_status(200);
        assert_eq!(list(&r), want, "{who:?}");
        assert!(!r.has_header("link"));

        // Page by one, following the Link headers: the same list, and a Link only while more follow.
        let mut seen = Vec::new();
        let mut next = Some("/v2/_catalog?n=1".to_string());
        while let Some(uri) = next.take() {
            let r = f.get(&uri, who).await;
            r.assert_status(200);
            let page = list(&r);
            assert!(page.len() <= 1, "{page:?}");
            seen.extend(page);
            if r.has_header("link") {
                let link = r.header("link");
                next = link
                    .strip_prefix('<')
                    .and_then(|l| l.split_once('>'))
                    .map(|(u, _)| u.to_string());
            }
        }
        assert_eq!(seen, want, "paged, {who:?}");
    }
    // `last` pointing at a repository the caller may not see still resumes after it.
    let r = f.get("/v2/_catalog?last=private/b", None).await;
    assert_eq!(list(&r), ["public/a", "public/b/c"]);
}

#[tokio::test]
async fn the_usage_report_shows_only_what_the_caller_may_list() {
    let quota = |pattern: &str| registry::quota::Quota {
        repositories: vec![oci::Pattern::repository(pattern).unwrap()],
        bytes: 1 << 30,
    };
    let f = Fixture::with(
        htpasswd_settings,
        registry::Settings {
            quotas: vec![quota("public/**"), quota("**")],
            ..registry::Settings::default()
        },
    );
    for repo in ["private/a", "public/a", "team-a/app"] {
        f.seed(repo).await;
    }
    let names = |r: &Resp, key: &str, field: &str| -> Vec<String> {
        r.json()[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v[field].to_string())
            .collect()
    };
    // Anonymous: the public repository, and the quota over public repositories only.
    let r = f.get("/v2/_berth/usage", None).await;
    r.assert_status(200);
    assert_eq!(names(&r, "repositories", "name"), ["\"public/a\""]);
    assert_eq!(names(&r, "quotas", "repositories"), ["[\"public/**\"]"]);
    // bob: his team's too; the quota over everything covers private/a, which he cannot see.
    let r = f
        .get("/v2/_berth/usage", Some(&basic("bob", "builder")))
        .await;
    assert_eq!(
        names(&r, "repositories", "name"),
        ["\"public/a\"", "\"team-a/app\""]
    );
    assert_eq!(names(&r, "quotas", "repositories").len(), 1);
    // alice sees everything.
    let r = f
        .get("/v2/_berth/usage", Some(&basic("alice", "secret")))
        .await;
    assert_eq!(names(&r, "repositories", "name").len(), 3);
    assert_eq!(names(&r, "quotas", "repositories").len(), 2);
}

#[tokio::test]
async fn the_catalog_is_challenged_when_anonymous_callers_have_no_rights() {
    let f = Fixture::new(|dir| Settings {
        access: None,
        ..htpasswd_settings(dir)
    });
    f.seed("a/b").await;
    assert_challenged(&f.get("/v2/_catalog", None).await, &challenge());
    // Without rules every user may do everything (registry:2's htpasswd behaviour).
    let r = f
        .get("/v2/_catalog", Some(&basic("carol", "carol-pw")))
        .await;
    r.assert_status(200);
    assert_eq!(r.json()["repositories"], serde_json::json!(["a/b"]));
    let (r, _) = push_blob(&f, "any/where", b"bytes", Some(&basic("carol", "carol-pw"))).await;
    r.assert_status(201);
}

#[tokio::test]
async fn an_open_router_stays_open() {
    // No authority: the plain router answers everything without credentials, as before.
    let h = crate::harness::Harness::new();
    h.get("/v2/").await.assert_status(200);
    h.get("/v2/_catalog").await.assert_status(200);
}

#[tokio::test]
async fn an_unreadable_authorization_header_is_401() {
    let f = Fixture::new(htpasswd_settings);
    f.seed("public/app").await;
    let req = axum::http::Request::builder()
        .uri("/v2/public/app/manifests/latest")
        .header(
            "authorization",
            axum::http::HeaderValue::from_bytes(b"Basic \xff\xfe").unwrap(),
        )
        .body(axum::body::Body::empty())
        .unwrap();
    assert_challenged(&f.guarded.send(req).await, &challenge());
}

#[tokio::test]
async fn openbase_answers_the_base_but_nothing_else() {
    let f = Fixture::new(|dir| {
        let mut s = htpasswd_settings(dir);
        if let Some(access) = s.access.as_mut() {
            access.openbase = true;
        }
        s
    });
    f.seed("private/app").await;
    f.get("/v2/", None).await.assert_status(200);
    assert_challenged(
        &f.get("/v2/private/app/manifests/latest", None).await,
        &challenge(),
    );
    // Wrong credentials are still refused on the base.
    assert_challenged(
        &f.get("/v2/", Some(&basic("alice", "wrong"))).await,
        &challenge(),
    );
}
