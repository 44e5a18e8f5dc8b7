//! curl against berth: request shapes that the Rust client of these tests never produces, above all bodies
//! streamed with `Transfer-Encoding: chunked` and no `Content-Length` or `Content-Range`, as the docker and
//! containerd clients send them.

use std::collections::BTreeMap;
use std::path::Path;

use crate::harness::clients::version;
use crate::harness::http::path_and_query;
use crate::harness::rng::Rng;
use crate::harness::{Server, Tools, repo, sha256};

/// Status and headers (lower-case names) of a curl run that wrote them with `-D <file>` and printed
/// `%{http_code}`.
fn answer(stdout: &str, headers: &Path) -> (u16, BTreeMap<String, String>) {
    let status = stdout
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("curl printed no status ({e}): {stdout:?}"));
    let text =
        std::fs::read_to_string(headers).unwrap_or_else(|e| panic!("{}: {e}", headers.display()));
    let map = text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, map)
}

#[test]
fn curl_streams_blob_uploads_without_content_length() {
    eprintln!("{}", version("curl"));
    let server = Server::start();
    let tools = Tools::new();
    let repo = repo("curl");
    let dir = tools.scratch("curl");
    let (file, headers) = (dir.join("blob.bin"), dir.join("headers.txt"));
    let data = Rng::new(5).bytes(2_500_000);
    let digest = sha256(&data);
    std::fs::write(&file, &data).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let (file_arg, headers_arg) = (
        format!("@{}", file.display()),
        headers.display().to_string(),
    );
    let base = server.base_url();
    let curl = |method: &str, url: &str, extra: &[&str]| {
        let mut args = vec![
            "-X",
            method,
            "-D",
            &headers_arg,
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ];
        args.extend_from_slice(extra);
        args.push(url);
        let out = tools.curl(&args);
        answer(&out.stdout, &headers)
    };
    let streamed = [
        "-H",
        "Content-Type: application/octet-stream",
        "-H",
        "Transfer-Encoding: chunked",
        "--data-binary",
        &file_arg,
    ];

    // A session, then the whole blob in one streamed PATCH (no Content-Range), then an empty PUT.
    let (status, h) = curl(
        "POST",
        &format!("{base}/v2/{repo}/blobs/uploads/"),
        &["-H", "Content-Length: 0"],
    );
    assert_eq!(status, 202, "{h:?}");
    let location = path_and_query(&h["location"]);
    let (status, h) = curl("PATCH", &format!("{base}{location}"), &streamed);
    assert_eq!(status, 202, "streamed PATCH: {h:?}");
    assert_eq!(
        h.get("range").map(String::as_str),
        Some(format!("0-{}", data.len() - 1).as_str())
    );
    let location = path_and_query(&h["location"]);
    let sep = if location.contains('?') { '&' } else { '?' };
    let (status, h) = curl(
        "PUT",
        &format!("{base}{location}{sep}digest={digest}"),
        &["-H", "Content-Length: 0"],
    );
    assert_eq!(status, 201, "closing PUT: {h:?}");
    assert_eq!(h.get("docker-content-digest"), Some(&digest));

    // A monolithic PUT whose body is streamed, into another repository.
    let other = format!("{repo}-monolithic");
    let (status, h) = curl(
        "POST",
        &format!("{base}/v2/{other}/blobs/uploads/"),
        &["-H", "Content-Length: 0"],
    );
    assert_eq!(status, 202, "{h:?}");
    let location = path_and_query(&h["location"]);
    let sep = if location.contains('?') { '&' } else { '?' };
    let (status, h) = curl(
        "PUT",
        &format!("{base}{location}{sep}digest={digest}"),
        &streamed,
    );
    assert_eq!(status, 201, "streamed monolithic PUT: {h:?}");

    // curl downloads both byte for byte, and a range.
    let out = dir.join("out.bin");
    let out_arg = out.display().to_string();
    for r in [&repo, &other] {
        tools.curl(&[
            "--fail",
            "-o",
            &out_arg,
            &format!("{base}/v2/{r}/blobs/{digest}"),
        ]);
        let got = std::fs::read(&out).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
        assert_eq!(sha256(&got), digest, "download from {r}");
    }
    tools.curl(&[
        "--fail",
        "-r",
        "1000-1999",
        "-o",
        &out_arg,
        &format!("{base}/v2/{repo}/blobs/{digest}"),
    ]);
    let got = std::fs::read(&out).unwrap_or_else(|e| panic!("{}: {e}", out.display()));
    assert_eq!(got, &data[1000..2000]);
}
