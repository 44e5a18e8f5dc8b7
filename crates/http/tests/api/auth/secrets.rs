//! No secret in a response or a log line: every line logged while serving requests with good and bad
//! passwords and tokens is captured and searched for them.

use axum::http::Method;

use super::*;

#[tokio::test]
async fn no_secret_reaches_a_response_or_a_log_line() {
    let (capture, _guard) = crate::harness::LogCapture::install();

    let f = Fixture::new(htpasswd_settings);
    f.seed("private/app").await;
    let secrets = ["secret", "wrong-password-xyz", "carol-pw"];
    let mut sent = Vec::new();
    for (user, password) in [
        ("alice", "secret"),
        ("alice", "wrong-password-xyz"),
        ("nobody", "wrong-password-xyz"),
        ("carol", "carol-pw"),
    ] {
        let header = basic(user, password);
        for (method, uri) in [
            (Method::GET, "/v2/"),
            (Method::GET, "/v2/private/app/manifests/latest"),
            (Method::POST, "/v2/private/app/blobs/uploads/"),
            (Method::GET, "/v2/_catalog"),
        ] {
            let r = f.call(method, uri, Some(&header), None).await;
            sent.push(r);
        }
        sent.push(f.call(Method::GET, "/v2/", Some(&header), None).await);
    }
    let token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLXNlY3JldA";
    sent.push(f.get("/v2/", Some(&format!("Bearer {token}"))).await);

    let logs = capture.text();
    assert!(
        logs.contains("authentication failed"),
        "the failures are logged: {logs}"
    );
    // The access log line of an allowed request names its user.
    assert!(
        logs.lines()
            .any(|l| l.contains("request") && l.contains("status=200") && l.contains("user=alice")),
        "no access log line names alice: {logs}"
    );
    let hashes = ["$2y$05$NHXi441", "$2y$04$uXBlXEo", "$2y$04$XgDFieE"];
    let mut forbidden: Vec<String> = secrets.iter().map(|s| s.to_string()).collect();
    forbidden.extend(hashes.iter().map(|s| s.to_string()));
    forbidden.push(token.to_string());
    forbidden.extend(
        [
            ("alice", "secret"),
            ("alice", "wrong-password-xyz"),
            ("carol", "carol-pw"),
        ]
        .iter()
        .map(|(u, p)| basic(u, p).trim_start_matches("Basic ").to_string()),
    );
    for needle in &forbidden {
        assert!(
            !logs.contains(needle.as_str()),
            "the log holds {needle:?}:\n{logs}"
        );
        for r in &sent {
            assert!(
                !String::from_utf8_lossy(&r.body).contains(needle.as_str()),
                "a response body holds {needle:?}"
            );
            for (name, value) in &r.headers {
                assert!(
                    !value.to_str().unwrap_or("").contains(needle.as_str()),
                    "header {name} holds {needle:?}"
                );
            }
        }
    }
}
