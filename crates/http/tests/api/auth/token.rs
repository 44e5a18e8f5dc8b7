//! Bearer tokens through the router: the challenge names the scope of the request at hand, valid tokens
//! grant what their `access` claim says, and every broken token is a 401.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::Method;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

use super::*;

const BASE: &str = r#"Bearer realm="https://auth.test/token",service="berth.test""#;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(access: Value) -> Value {
    json!({
        "iss": "test-issuer", "sub": "dave", "aud": "berth.test",
        "exp": now() + 300, "nbf": now() - 5, "iat": now() - 5, "access": access,
    })
}

fn sign_with(key: &str, claims: &Value) -> String {
    let pem = std::fs::read(key_file(key)).unwrap();
    let token = encode(
        &Header::new(Algorithm::RS256),
        claims,
        &EncodingKey::from_rsa_pem(&pem).unwrap(),
    )
    .unwrap();
    format!("Bearer {token}")
}

fn bearer(access: Value) -> String {
    sign_with("rsa-key.pem", &claims(access))
}

fn repo(name: &str, actions: &[&str]) -> Value {
    json!({"type": "repository", "name": name, "actions": actions})
}

#[tokio::test]
async fn challenges_name_the_scope_of_the_request() {
    let f = Fixture::new(token_settings);
    f.seed("team/app").await;
    assert_challenged(&f.get("/v2/", None).await, BASE);
    assert_challenged(
        &f.get("/v2/team/app/manifests/latest", None).await,
        &format!(r#"{BASE},scope="repository:team/app:pull""#),
    );
    let r = f
        .call(Method::POST, "/v2/team/app/blobs/uploads/", None, None)
        .await;
    assert_challenged(
        &r,
        &format!(r#"{BASE},scope="repository:team/app:pull,push""#),
    );
    let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    let r = f
        .call(
            Method::POST,
            &format!("/v2/team/app/blobs/uploads/?mount={d}&from=base/img"),
            Some(&bearer(json!([repo("base/img", &["pull"])]))),
            None,
        )
        .await;
    // Pull on the source is there, push on the target is not.
    assert_challenged(
        &r,
        &format!(
            r#"{BASE},scope="repository:team/app:pull,push repository:base/img:pull",error="insufficient_scope""#
        ),
    );
    assert_challenged(
        &f.get("/v2/_catalog", None).await,
        &format!(r#"{BASE},scope="registry:catalog:*""#),
    );
}

#[tokio::test]
async fn tokens_grant_what_their_access_claim_says() {
    let f = Fixture::new(token_settings);
    let m = f.seed("team/app").await;
    f.seed("team/other").await;
    let pull_only = bearer(json!([repo("team/app", &["pull"])]));

    f.get("/v2/", Some(&pull_only)).await.assert_status(200);
    let r = f
        .get("/v2/team/app/manifests/latest", Some(&pull_only))
        .await;
    r.assert_status(200);
    assert_eq!(&r.body[..], &m[..]);
    assert_challenged(
        &f.get("/v2/team/other/manifests/latest", Some(&pull_only))
            .await,
        &format!(r#"{BASE},scope="repository:team/other:pull",error="insufficient_scope""#),
    );
    let (r, _) = push_blob(&f, "team/app", b"bytes", Some(&pull_only)).await;
    assert_challenged(
        &r,
        &format!(r#"{BASE},scope="repository:team/app:pull,push",error="insufficient_scope""#),
    );

    let push = bearer(json!([repo("team/app", &["pull", "push"])]));
    let (r, _) = push_blob(&f, "team/app", b"bytes", Some(&push)).await;
    r.assert_status(201);
    f.call(
        Method::PUT,
        "/v2/team/app/manifests/v2",
        Some(&push),
        Some(&m),
    )
    .await
    .assert_status(201);

    // The catalog needs its own scope, and then shows the registry.
    let r = f.get("/v2/_catalog", Some(&pull_only)).await;
    r.assert_error(401, "UNAUTHORIZED");
    let lister = bearer(json!([{"type": "registry", "name": "catalog", "actions": ["*"]}]));
    let r = f.get("/v2/_catalog", Some(&lister)).await;
    r.assert_status(200);
    assert_eq!(r.json()["repositories"], json!(["team/app", "team/other"]));

    let d = Digest::sha256_of(&m);
    let r = f
        .call(
            Method::DELETE,
            &format!("/v2/team/app/manifests/{d}"),
            Some(&push),
            None,
        )
        .await;
    assert_challenged(
        &r,
        &format!(r#"{BASE},scope="repository:team/app:delete",error="insufficient_scope""#),
    );
    let all = bearer(json!([repo("team/app", &["*"])]));
    f.call(
        Method::DELETE,
        &format!("/v2/team/app/manifests/{d}"),
        Some(&all),
        None,
    )
    .await
    .assert_status(202);
}

#[tokio::test]
async fn expired_ill_signed_and_misaddressed_tokens_are_401() {
    let f = Fixture::new(token_settings);
    f.seed("team/app").await;
    let access = json!([repo("team/app", &["pull"])]);
    let mut expired = claims(access.clone());
    expired["exp"] = json!(now() - 3600);
    let mut early = claims(access.clone());
    early["nbf"] = json!(now() + 3600);
    let mut wrong_aud = claims(access.clone());
    wrong_aud["aud"] = json!("another.registry");
    let mut wrong_iss = claims(access.clone());
    wrong_iss["iss"] = json!("someone-else");
    let good = bearer(access.clone());
    let tampered = {
        // The signature of one token on the claims of another.
        let other = bearer(json!([repo("team/app", &["*"])]));
        let (g, o): (Vec<&str>, Vec<&str>) =
            (good.split('.').collect(), other.split('.').collect());
        format!("{}.{}.{}", g[0], o[1], g[2])
    };
    for (what, header) in [
        ("expired", sign_with("rsa-key.pem", &expired)),
        ("not yet valid", sign_with("rsa-key.pem", &early)),
        ("wrong audience", sign_with("rsa-key.pem", &wrong_aud)),
        ("wrong issuer", sign_with("rsa-key.pem", &wrong_iss)),
        (
            "untrusted key",
            sign_with("other-rsa-key.pem", &claims(access.clone())),
        ),
        ("tampered", tampered),
        ("garbage", "Bearer not.a.token".to_string()),
        ("basic", basic("alice", "secret")),
    ] {
        for uri in ["/v2/", "/v2/team/app/manifests/latest"] {
            let r = f.get(uri, Some(&header)).await;
            assert_challenged(&r, BASE);
            assert_eq!(r.status.as_u16(), 401, "{what} {uri}");
        }
    }
    f.get("/v2/team/app/manifests/latest", Some(&good))
        .await
        .assert_status(200);
}

/// A token that may push `team-a/x` and nothing else mounts from no other repository, whatever the
/// spelling of the mount's keys; with pull on the source too it mounts.
#[tokio::test]
async fn a_token_mounts_only_from_a_source_it_may_pull() {
    let f = Fixture::new(token_settings);
    let secret = f.seed("team-b/secret").await;
    let manifest: Value = serde_json::from_slice(&secret).unwrap();
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let pusher = bearer(json!([repo("team-a/x", &["pull", "push"])]));
    for query in [
        format!("%6Dount={layer}&%66rom=team-b/secret"),
        format!("mount={layer}&from=team-b/secret"),
        format!("mount={layer}"),
    ] {
        let r = f
            .call(
                Method::POST,
                &format!("/v2/team-a/x/blobs/uploads/?{query}"),
                Some(&pusher),
                None,
            )
            .await;
        r.assert_status(202);
        f.get(&format!("/v2/team-a/x/blobs/{layer}"), Some(&pusher))
            .await
            .assert_error(404, "BLOB_UNKNOWN");
    }
    // A catalog grant shows names, not content: still no mount.
    let lister = bearer(json!([
        repo("team-a/x", &["pull", "push"]),
        {"type": "registry", "name": "catalog", "actions": ["*"]}
    ]));
    let r = f
        .call(
            Method::POST,
            &format!("/v2/team-a/x/blobs/uploads/?mount={layer}&from=team-b/secret"),
            Some(&lister),
            None,
        )
        .await;
    r.assert_status(202);
    let both = bearer(json!([
        repo("team-a/x", &["pull", "push"]),
        repo("team-b/secret", &["pull"])
    ]));
    let r = f
        .call(
            Method::POST,
            &format!("/v2/team-a/x/blobs/uploads/?%6Dount={layer}&%66rom=team-b%2Fsecret"),
            Some(&both),
            None,
        )
        .await;
    r.assert_status(201);
    f.get(&format!("/v2/team-a/x/blobs/{layer}"), Some(&both))
        .await
        .assert_status(200);
}
