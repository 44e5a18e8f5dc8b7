//! Read-only mode over HTTP: every write answers 405 UNSUPPORTED with a message saying why; reads answer
//! as usual.

use axum::http::Method;
use oci::Digest;

use crate::harness::Harness;

fn read_only() -> Harness {
    Harness::with(registry::Settings {
        read_only: true,
        delete_enabled: true,
        ..registry::Settings::default()
    })
}

#[tokio::test]
async fn writes_are_refused_with_a_reason() {
    let h = read_only();
    let digest = Digest::sha256_of(b"x");
    let upload = "/v2/a/blobs/uploads/0b6a1a8e-0c5e-4f4e-9d1f-3c7e2a9b8c7d";
    let writes: Vec<(Method, String, Option<&[u8]>)> = vec![
        (Method::POST, "/v2/a/blobs/uploads/".into(), None),
        (
            Method::POST,
            format!("/v2/a/blobs/uploads/?digest={digest}"),
            Some(b"x"),
        ),
        (
            Method::POST,
            format!("/v2/a/blobs/uploads/?mount={digest}&from=b"),
            None,
        ),
        (Method::PATCH, upload.into(), Some(b"x")),
        (Method::PUT, format!("{upload}?digest={digest}"), None),
        (Method::DELETE, upload.into(), None),
        (Method::PUT, "/v2/a/manifests/latest".into(), Some(b"{}")),
        (Method::DELETE, "/v2/a/manifests/latest".into(), None),
        (Method::DELETE, format!("/v2/a/manifests/{digest}"), None),
        (Method::DELETE, format!("/v2/a/blobs/{digest}"), None),
    ];
    for (method, path, body) in writes {
        let r = h.call(method.clone(), &path, &[], body).await;
        r.assert_error(405, "UNSUPPORTED");
        let message = r.json()["errors"][0]["message"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(message.contains("read-only"), "{method} {path}: {message}");
    }
}

#[tokio::test]
async fn reads_answer_as_usual() {
    let h = read_only();
    h.get("/v2/").await.assert_status(200);
    let catalog = h.get("/v2/_catalog").await;
    catalog.assert_status(200);
    assert_eq!(catalog.json()["repositories"], serde_json::json!([]));
    // Reads of things that do not exist say so, rather than "read-only".
    h.get("/v2/a/tags/list")
        .await
        .assert_error(404, "NAME_UNKNOWN");
    h.get("/v2/a/manifests/latest")
        .await
        .assert_error(404, "MANIFEST_UNKNOWN");
    let digest = Digest::sha256_of(b"x");
    h.head(&format!("/v2/a/blobs/{digest}"))
        .await
        .assert_status(404);
    h.get("/v2/a/blobs/uploads/0b6a1a8e-0c5e-4f4e-9d1f-3c7e2a9b8c7d")
        .await
        .assert_error(404, "BLOB_UPLOAD_UNKNOWN");
}
