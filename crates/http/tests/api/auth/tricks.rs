//! Path tricks and encodings that must not reach a repository the caller may not read: percent-encoded
//! slashes and dots, `..`, doubled slashes, case, and a mount from a repository the caller may not pull.
//! Each must be refused (or name another, empty repository) and never return the secret content.

use axum::http::Method;

use super::*;

/// The secret manifest and blob are in `private/secret`; carol may only use `carol/*` and anonymous
/// callers `public/**`.
async fn fixture() -> (Fixture, Vec<u8>) {
    let f = Fixture::new(htpasswd_settings);
    let m = f.seed("private/secret").await;
    f.seed("public/app").await;
    f.seed("carol/app").await;
    (f, m)
}

#[tokio::test]
async fn encoded_and_dotted_paths_cannot_reach_another_repository() {
    let (f, secret) = fixture().await;
    let secret_digest = Digest::sha256_of(&secret);
    let carol = basic("carol", "carol-pw");
    let tricks = [
        "/v2/public/../private/secret/manifests/latest",
        "/v2/public/app/../../private/secret/manifests/latest",
        "/v2/carol/../private/secret/manifests/latest",
        "/v2/carol/..%2Fprivate/secret/manifests/latest",
        "/v2/carol%2F..%2Fprivate%2Fsecret/manifests/latest",
        "/v2/carol%2f..%2fprivate%2fsecret/manifests/latest",
        "/v2/carol/%2E%2E/private/secret/manifests/latest",
        "/v2/private%2Fsecret/manifests/latest",
        "/v2/public%2F..%2Fprivate%2Fsecret/manifests/latest",
        "/v2//private/secret/manifests/latest",
        "/v2/public//private/secret/manifests/latest",
        "/v2/carol//../private/secret/manifests/latest",
        "/v2/Private/Secret/manifests/latest",
        "/v2/PRIVATE/secret/manifests/latest",
        "/v2/private/secret/./manifests/latest",
        "/v2/./private/secret/manifests/latest",
        "/v2/private/secret%00/manifests/latest",
        "/v2/public/app/%2e%2e/%2e%2e/private/secret/manifests/latest",
        "/v2/private/secret/manifests/latest%2F..%2F..%2Fpublic",
        "/v2/private/secret/tags/list",
        "/v2/private/secret/referrers/sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    ];
    for who in [None, Some(carol.as_str())] {
        for uri in tricks {
            for method in [Method::GET, Method::HEAD] {
                let r = f.call(method.clone(), uri, who, None).await;
                assert!(
                    r.status.is_client_error(),
                    "{method} {uri} as {who:?}: {}",
                    r.status
                );
                assert_ne!(&r.body[..], &secret[..], "{uri} leaked the manifest");
                let digest = secret_digest.to_string();
                assert!(
                    r.headers
                        .get("docker-content-digest")
                        .is_none_or(|d| d != digest.as_str()),
                    "{uri} leaked the digest"
                );
            }
        }
    }
    // The same URL, spelled plainly, is what alice may read: the tricks failed for lack of rights.
    let r = f
        .get(
            "/v2/private/secret/manifests/latest",
            Some(&basic("alice", "secret")),
        )
        .await;
    r.assert_status(200);
    assert_eq!(&r.body[..], &secret[..]);
}

#[tokio::test]
async fn blobs_of_another_repository_cannot_be_read_through_a_readable_one() {
    let (f, secret) = fixture().await;
    let carol = basic("carol", "carol-pw");
    let manifest: serde_json::Value = serde_json::from_slice(&secret).unwrap();
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    for uri in [
        format!("/v2/private/secret/blobs/{layer}"),
        format!("/v2/carol/app/blobs/{layer}"),
        format!("/v2/carol/app/../../private/secret/blobs/{layer}"),
        format!("/v2/carol%2F..%2Fprivate%2Fsecret/blobs/{layer}"),
    ] {
        let r = f.get(&uri, Some(&carol)).await;
        assert!(r.status.is_client_error(), "{uri}: {}", r.status);
        assert!(r.body.len() < 300, "{uri} returned bytes");
    }
}

#[tokio::test]
async fn a_mount_from_an_unreadable_repository_becomes_a_plain_upload() {
    let (f, secret) = fixture().await;
    let carol = basic("carol", "carol-pw");
    let manifest: serde_json::Value = serde_json::from_slice(&secret).unwrap();
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();

    for query in [
        format!("mount={layer}&from=private/secret"),
        // Without `from` the registry would look everywhere: with auth on, never.
        format!("mount={layer}"),
        format!("mount={layer}&from=PRIVATE/secret"),
    ] {
        let r = f
            .call(
                Method::POST,
                &format!("/v2/carol/app/blobs/uploads/?{query}"),
                Some(&carol),
                None,
            )
            .await;
        // 202, an upload session (the spec's answer when a mount cannot be done), or a refused name;
        // never 201 Created.
        assert!(
            r.status.as_u16() == 202 || r.status.as_u16() == 400,
            "{query}: {}",
            r.status
        );
        let r = f
            .get(&format!("/v2/carol/app/blobs/{layer}"), Some(&carol))
            .await;
        r.assert_error(404, "BLOB_UNKNOWN");
    }

    // A mount from a readable repository works: carol may pull public/app.
    let public: serde_json::Value =
        serde_json::from_slice(&f.open.get("/v2/public/app/manifests/latest").await.body).unwrap();
    let public_layer = public["layers"][0]["digest"].as_str().unwrap().to_string();
    let r = f
        .call(
            Method::POST,
            &format!("/v2/carol/app/blobs/uploads/?mount={public_layer}&from=public/app"),
            Some(&carol),
            None,
        )
        .await;
    r.assert_status(201);
    f.get(&format!("/v2/carol/app/blobs/{public_layer}"), Some(&carol))
        .await
        .assert_status(200);
    // And a mount into a repository the caller may not push to is refused outright.
    let r = f
        .call(
            Method::POST,
            &format!("/v2/team-a/x/blobs/uploads/?mount={public_layer}&from=public/app"),
            Some(&carol),
            None,
        )
        .await;
    r.assert_error(403, "DENIED");
}

/// The hole a review found: escaped, duplicated and differently cased query keys must mean to the
/// authorization exactly what they mean to the handler, so that no spelling of a mount from an unreadable
/// repository links its blob (bob may push `team-a/*` only), and whether a digest exists anywhere cannot
/// be told from the status.
#[tokio::test]
async fn no_spelling_of_a_mount_reads_an_unreadable_repository() {
    let (f, secret) = fixture().await;
    let bob = basic("bob", "builder");
    let manifest: serde_json::Value = serde_json::from_slice(&secret).unwrap();
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let escaped_layer = layer.replace(':', "%3A");
    let absent = Digest::sha256_of(b"in no repository").to_string();
    for d in [&layer, &absent] {
        for query in [
            format!("%6Dount={d}&%66rom=private/secret"),
            format!("%6dount={d}&%66rom=private%2Fsecret"),
            format!("m%6Funt={d}"),
            format!("%6Dount={d}"),
            format!("mount={escaped_layer}&from=private/secret"),
            format!("mount={d}&from=team-a/x&from=private/secret"),
            format!("mount={d}&%66rom=private/secret&from=team-a/x"),
            format!("mount={d}&from=team-a/x&%66rom=private/secret"),
            format!("MOUNT={d}&FROM=private/secret"),
            format!("mount={d}&from=private/secret&digest={d}"),
            format!("mount={d}&from=private/secret&mount={d}"),
            format!("mount={d}&from=private/secret+"),
            format!("mount={d}&from=private/secret%00"),
        ] {
            let r = f
                .call(
                    Method::POST,
                    &format!("/v2/team-a/x/blobs/uploads/?{query}"),
                    Some(&bob),
                    None,
                )
                .await;
            // An upload session, or an invalid request; never 201 Created, for a digest that exists
            // elsewhere or for one that exists nowhere alike.
            assert!(
                matches!(r.status.as_u16(), 202 | 400),
                "{query}: {}",
                r.status
            );
            f.get(&format!("/v2/team-a/x/blobs/{layer}"), Some(&bob))
                .await
                .assert_error(404, "BLOB_UNKNOWN");
        }
    }
}
