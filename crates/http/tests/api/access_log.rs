//! The access log: one line per request, written when the response body is done, naming the route,
//! repository, status, bytes in and out, user agent and duration.

use axum::http::Method;

use crate::harness::{Harness, LogCapture};

fn line_for<'a>(logs: &'a str, needle: &str) -> &'a str {
    logs.lines()
        .find(|l| l.contains(" request ") && l.contains(needle))
        .unwrap_or_else(|| panic!("no access line with {needle:?} in:\n{logs}"))
}

#[tokio::test]
async fn a_blob_pull_and_push_are_logged_with_route_repository_bytes_and_agent() {
    let (capture, _guard) = LogCapture::install();
    let h = Harness::new();
    let data = vec![7u8; 12345];
    let digest = h.push_blob("team/app", &data).await;
    let uri = format!("/v2/team/app/blobs/{digest}");
    h.call(Method::GET, &uri, &[("user-agent", "skopeo/1.9.3")], None)
        .await
        .assert_status(200);

    let logs = capture.text();
    let pull = line_for(&logs, "method=GET");
    for want in [
        "route=blob ",
        "repository=team/app ",
        "status=200 ",
        "bytes_in=0 ",
        "bytes_out=12345 ",
        "user_agent=skopeo/1.9.3 ",
        "duration_ms=",
        "request_id=",
    ] {
        assert!(pull.contains(want), "{want:?} missing from {pull}");
    }
    // The upload's bytes are counted on the way in.
    let push = line_for(&logs, "bytes_in=12345 ");
    assert!(push.contains("route=blob_upload "), "{push}");
    assert!(push.contains("repository=team/app "), "{push}");
}

#[tokio::test]
async fn a_catalog_request_names_no_repository() {
    let (capture, _guard) = LogCapture::install();
    let h = Harness::new();
    h.get("/v2/_catalog").await.assert_status(200);
    let logs = capture.text();
    let line = line_for(&logs, "route=catalog ");
    assert!(line.contains("repository= "), "{line}");
}

/// The line's fields, in order, for a manifest GET and a HEAD (a HEAD's empty body is logged without
/// waiting for one): other tools parse this line, so its shape must not drift.
#[tokio::test]
async fn manifest_reads_log_every_field_in_order() {
    let (capture, _guard) = LogCapture::install();
    let h = Harness::new();
    let manifest = h.image("team/app", "fields").await;
    h.put_manifest("team/app", "latest", &manifest)
        .await
        .assert_status(201);
    for method in [Method::GET, Method::HEAD] {
        h.call(
            method,
            "/v2/team/app/manifests/latest",
            &[("user-agent", "containerd/2.0")],
            None,
        )
        .await
        .assert_status(200);
    }
    let logs = capture.text();
    for (method, bytes_out) in [("GET", manifest.len()), ("HEAD", 0)] {
        let line = line_for(&logs, &format!("method={method} route=manifest"));
        let fields = line
            .split_once(" request ")
            .map(|(_, f)| f)
            .unwrap_or_else(|| panic!("{line}"));
        let (id, rest) = fields
            .strip_prefix("request_id=")
            .and_then(|f| f.split_once(' '))
            .unwrap_or_else(|| panic!("{line}"));
        assert!(
            id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
            "{line}"
        );
        let want = format!(
            "method={method} route=manifest path=/v2/team/app/manifests/latest query= repository=team/app \
             status=200 bytes_in=0 bytes_out={bytes_out} user= user_agent=containerd/2.0 duration_ms="
        );
        assert!(rest.starts_with(&want), "{rest}\nwanted {want}");
        let ms = &rest[want.len()..];
        let (whole, tenth) = ms.split_once('.').unwrap_or_else(|| panic!("{line}"));
        assert!(
            whole.parse::<u64>().is_ok() && tenth.len() == 1 && tenth.parse::<u8>().is_ok(),
            "{line}"
        );
    }
}

/// The query string is in the line, as sent, but for the values of parameters named like secrets: a
/// mount spelled with escaped keys is visible to whoever reads the log, a token in a URL is not.
#[tokio::test]
async fn the_query_is_logged_with_secrets_masked() {
    let (capture, _guard) = LogCapture::install();
    let h = Harness::new();
    let d = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    let query = format!("%6Dount={d}&%66rom=team/b&access_token=s3cr3t-v4lue");
    h.call(
        Method::POST,
        &format!("/v2/team/app/blobs/uploads/?{query}"),
        &[],
        None,
    )
    .await;
    let logs = capture.text();
    let line = line_for(&logs, "route=blob_upload");
    assert!(
        line.contains(&format!(
            " query=%6Dount={d}&%66rom=team/b&access_token=REDACTED "
        )),
        "{line}"
    );
    assert!(!logs.contains("s3cr3t-v4lue"), "{logs}");
}
