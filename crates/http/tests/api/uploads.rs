//! Uploads: sessions, chunks, finishing, cancelling, mounting, and every way a client can get them wrong.

use axum::body::Body;
use axum::http::{Method, Request};
use bytes::Bytes;
use oci::Digest;

use crate::harness::{Harness, Resp};

/// Starts a session in `repo`; returns its Location.
async fn start(h: &Harness, repo: &str) -> String {
    let r = h
        .call(
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/"),
            &[],
            None,
        )
        .await;
    r.assert_status(202);
    r.header("location").to_string()
}

async fn patch(h: &Harness, location: &str, headers: &[(&str, &str)], data: &[u8]) -> Resp {
    h.call(Method::PATCH, location, headers, Some(data)).await
}

async fn finish(h: &Harness, location: &str, digest: &Digest, data: Option<&[u8]>) -> Resp {
    h.call(
        Method::PUT,
        &format!("{location}?digest={digest}"),
        &[],
        data,
    )
    .await
}

#[tokio::test]
async fn post_starts_a_session_with_every_header() {
    let h = Harness::new();
    let r = h
        .call(Method::POST, "/v2/lib/app/blobs/uploads/", &[], None)
        .await;
    r.assert_status(202);
    let id = r.header("docker-upload-uuid");
    assert!(!id.is_empty());
    assert_eq!(
        r.header("location"),
        format!("/v2/lib/app/blobs/uploads/{id}")
    );
    assert_eq!(r.header("range"), "0-0");
    assert_eq!(r.header("content-length"), "0");
}

#[tokio::test]
async fn chunked_upload_from_start_to_finish() {
    let h = Harness::new();
    let loc = start(&h, "a").await;

    let r = patch(&h, &loc, &[("content-range", "0-4")], b"hello").await;
    r.assert_status(202);
    assert_eq!(r.header("range"), "0-4");
    assert_eq!(r.header("location"), loc);
    assert_eq!(r.header("content-length"), "0");
    assert!(!r.header("docker-upload-uuid").is_empty());

    // Status: 204 with where the upload stands.
    let s = h.get(&loc).await;
    s.assert_status(204);
    assert_eq!(s.header("range"), "0-4");
    assert_eq!(s.header("location"), loc);

    // The `bytes ` unit prefix is accepted too.
    let r = patch(&h, &loc, &[("content-range", "bytes 5-10")], b", worl").await;
    r.assert_status(202);
    assert_eq!(r.header("range"), "0-10");

    // No Content-Range at all: a streamed append.
    let r = patch(&h, &loc, &[], b"d").await;
    r.assert_status(202);
    assert_eq!(r.header("range"), "0-11");

    let all = b"hello, world";
    let d = Digest::sha256_of(all);
    let r = finish(&h, &loc, &d, None).await;
    r.assert_status(201);
    assert_eq!(r.header("location"), format!("/v2/a/blobs/{d}"));
    assert_eq!(r.header("docker-content-digest"), d.to_string());

    let got = h.get(&format!("/v2/a/blobs/{d}")).await;
    got.assert_status(200);
    assert_eq!(&got.body[..], all);
    // The session is gone once finished.
    h.get(&loc).await.assert_error(404, "BLOB_UPLOAD_UNKNOWN");
}

#[tokio::test]
async fn the_closing_put_may_carry_the_last_chunk() {
    let h = Harness::new();
    let loc = start(&h, "a").await;
    patch(&h, &loc, &[], b"first,").await.assert_status(202);
    let d = Digest::sha256_of(b"first,last");
    let r = h
        .call(
            Method::PUT,
            &format!("{loc}?digest={d}"),
            &[("content-range", "6-9")],
            Some(b"last"),
        )
        .await;
    r.assert_status(201);
    assert_eq!(
        &h.get(&format!("/v2/a/blobs/{d}")).await.body[..],
        b"first,last"
    );
}

#[tokio::test]
async fn a_body_streamed_without_content_length_is_accepted() {
    let h = Harness::new();
    let loc = start(&h, "a").await;
    let parts: Vec<Result<Bytes, std::io::Error>> = (0..50)
        .map(|i| Ok(Bytes::from(format!("part {i};"))))
        .collect();
    let all: Vec<u8> = (0..50)
        .flat_map(|i| format!("part {i};").into_bytes())
        .collect();
    let req = Request::patch(loc.as_str())
        .body(Body::from_stream(futures_util::stream::iter(parts)))
        .unwrap();
    let r = h.send(req).await;
    r.assert_status(202);
    assert_eq!(r.header("range"), format!("0-{}", all.len() - 1));
    finish(&h, &loc, &Digest::sha256_of(&all), None)
        .await
        .assert_status(201);
}

#[tokio::test]
async fn monolithic_post_pushes_in_one_request() {
    let h = Harness::new();
    let d = Digest::sha256_of(b"one shot");
    let r = h
        .call(
            Method::POST,
            &format!("/v2/a/blobs/uploads/?digest={d}"),
            &[],
            Some(b"one shot"),
        )
        .await;
    r.assert_status(201);
    assert_eq!(r.header("location"), format!("/v2/a/blobs/{d}"));
    assert_eq!(r.header("docker-content-digest"), d.to_string());
    assert_eq!(r.header("content-length"), "0");
}

#[tokio::test]
async fn out_of_order_chunks_are_416_with_range_and_location() {
    let h = Harness::new();
    let loc = start(&h, "a").await;
    patch(&h, &loc, &[("content-range", "0-4")], b"hello")
        .await
        .assert_status(202);
    for range in ["10-14", "0-4", "3-7"] {
        let r = patch(&h, &loc, &[("content-range", range)], b"again").await;
        r.assert_error(416, "BLOB_UPLOAD_INVALID");
        assert_eq!(r.header("range"), "0-4", "{range}");
        assert_eq!(r.header("location"), loc, "{range}");
    }
    // Nothing was appended.
    assert_eq!(h.get(&loc).await.header("range"), "0-4");
}

#[tokio::test]
async fn malformed_content_range_is_400() {
    let h = Harness::new();
    let loc = start(&h, "a").await;
    for range in ["zero-four", "4-0", "-", "5-"] {
        patch(&h, &loc, &[("content-range", range)], b"hello")
            .await
            .assert_error(400, "BLOB_UPLOAD_INVALID");
    }
    // A range that disagrees with the Content-Length.
    patch(&h, &loc, &[("content-range", "0-9")], b"hello")
        .await
        .assert_error(400, "SIZE_INVALID");
}

#[tokio::test]
async fn truncated_and_overlong_bodies_are_400_and_leave_the_upload_as_it_was() {
    let h = Harness::new();
    let loc = start(&h, "a").await;
    patch(&h, &loc, &[], b"12345").await.assert_status(202);

    // Declares 10 bytes, sends 5.
    patch(&h, &loc, &[("content-length", "10")], b"67890")
        .await
        .assert_error(400, "SIZE_INVALID");
    assert_eq!(h.get(&loc).await.header("range"), "0-4");

    // Declares 2 bytes, sends 5.
    patch(&h, &loc, &[("content-length", "2")], b"67890")
        .await
        .assert_error(400, "SIZE_INVALID");
    assert_eq!(h.get(&loc).await.header("range"), "0-4");

    // A monolithic push with a short body stores nothing.
    let d = Digest::sha256_of(b"0123456789");
    h.call(
        Method::POST,
        &format!("/v2/a/blobs/uploads/?digest={d}"),
        &[("content-length", "10")],
        Some(b"01234"),
    )
    .await
    .assert_error(400, "SIZE_INVALID");
    h.head(&format!("/v2/a/blobs/{d}")).await.assert_status(404);
}

#[tokio::test]
async fn a_body_that_breaks_midway_is_a_client_error() {
    let h = Harness::new();
    let loc = start(&h, "a").await;
    let broken: Vec<Result<Bytes, std::io::Error>> = vec![
        Ok(Bytes::from_static(b"some bytes")),
        Err(std::io::Error::other("connection reset by peer")),
    ];
    let req = Request::patch(loc.as_str())
        .body(Body::from_stream(futures_util::stream::iter(broken)))
        .unwrap();
    h.send(req).await.assert_error(400, "BLOB_UPLOAD_INVALID");
    assert_eq!(h.get(&loc).await.header("range"), "0-0");
}

#[tokio::test]
async fn the_wrong_digest_is_refused_and_nothing_is_stored() {
    let h = Harness::new();
    let loc = start(&h, "a").await;
    patch(&h, &loc, &[], b"content").await.assert_status(202);
    let wrong = Digest::sha256_of(b"other content");
    finish(&h, &loc, &wrong, None)
        .await
        .assert_error(400, "DIGEST_INVALID");
    h.head(&format!("/v2/a/blobs/{wrong}"))
        .await
        .assert_status(404);

    let d = Digest::sha256_of(b"claimed");
    h.call(
        Method::POST,
        &format!("/v2/a/blobs/uploads/?digest={d}"),
        &[],
        Some(b"not what was claimed"),
    )
    .await
    .assert_error(400, "DIGEST_INVALID");
}

#[tokio::test]
async fn the_closing_put_needs_a_digest() {
    let h = Harness::new();
    let loc = start(&h, "a").await;
    h.call(Method::PUT, &loc, &[], None)
        .await
        .assert_error(400, "DIGEST_INVALID");
    h.call(
        Method::PUT,
        &format!("{loc}?digest=sha256:totallywrong"),
        &[],
        None,
    )
    .await
    .assert_error(400, "DIGEST_INVALID");
}

#[tokio::test]
async fn unknown_upload_ids_are_404_for_every_method() {
    let h = Harness::new();
    let d = Digest::sha256_of(b"x");
    let ghost = "/v2/a/blobs/uploads/3f1c0b3e-0000-4000-8000-000000000000";
    for (method, uri) in [
        (Method::GET, ghost.to_string()),
        (Method::PATCH, ghost.to_string()),
        (Method::PUT, format!("{ghost}?digest={d}")),
        (Method::DELETE, ghost.to_string()),
        // Not even shaped like one of our ids.
        (Method::GET, "/v2/a/blobs/uploads/not.an.id".to_string()),
    ] {
        h.call(method, &uri, &[], Some(b"x"))
            .await
            .assert_error(404, "BLOB_UPLOAD_UNKNOWN");
    }
}

#[tokio::test]
async fn an_upload_is_unknown_to_other_repositories() {
    let h = Harness::new();
    let loc = start(&h, "a").await;
    let other = loc.replacen("/v2/a/", "/v2/b/", 1);
    h.get(&other).await.assert_error(404, "BLOB_UPLOAD_UNKNOWN");
    patch(&h, &other, &[], b"x")
        .await
        .assert_error(404, "BLOB_UPLOAD_UNKNOWN");
    h.get(&loc).await.assert_status(204);
}

#[tokio::test]
async fn cancel_ends_the_session() {
    let h = Harness::new();
    let loc = start(&h, "a").await;
    patch(&h, &loc, &[], b"abandoned").await.assert_status(202);
    h.delete(&loc).await.assert_status(204);
    h.get(&loc).await.assert_error(404, "BLOB_UPLOAD_UNKNOWN");
    h.delete(&loc)
        .await
        .assert_error(404, "BLOB_UPLOAD_UNKNOWN");
}

#[tokio::test]
async fn mount_links_a_blob_from_another_repository() {
    let h = Harness::new();
    let d = h.push_blob("src", b"shared layer").await;
    let r = h
        .call(
            Method::POST,
            &format!("/v2/dst/blobs/uploads/?mount={d}&from=src"),
            &[],
            None,
        )
        .await;
    r.assert_status(201);
    assert_eq!(r.header("location"), format!("/v2/dst/blobs/{d}"));
    assert_eq!(r.header("docker-content-digest"), d.to_string());
    assert_eq!(
        &h.get(&format!("/v2/dst/blobs/{d}")).await.body[..],
        b"shared layer"
    );
}

#[tokio::test]
async fn mount_of_an_unknown_blob_starts_an_upload() {
    let h = Harness::new();
    let d = Digest::sha256_of(b"nowhere");
    let r = h
        .call(
            Method::POST,
            &format!("/v2/dst/blobs/uploads/?mount={d}&from=src"),
            &[],
            None,
        )
        .await;
    r.assert_status(202);
    assert_eq!(r.header("range"), "0-0");
    let loc = r.header("location").to_string();
    assert!(loc.starts_with("/v2/dst/blobs/uploads/"), "{loc}");
    h.get(&loc).await.assert_status(204);
}
