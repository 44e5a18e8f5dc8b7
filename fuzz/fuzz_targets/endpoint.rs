//! `berth_http::Endpoint::parse`: the method, the raw path and the raw query of every `/v2/` request.
//!
//! The input is `<method byte><path>[?<query>]`. Checked: no panic, the same answer twice; a refusal is a
//! 4xx (a path is the client's; a 5xx would be a bug) whose response builds and whose message stays
//! short whatever was sent; an accepted request's repository name is written in the path as it is (no
//! escape can smuggle one in); and the endpoint, written back as a request, parses to itself.

#![no_main]

use berth_http::Endpoint;
use berth_http::endpoint::{BlobOp, ManifestOp, UploadOp, UploadStartKind};
use http::Method;
use libfuzzer_sys::fuzz_target;

const METHODS: &[Method] = &[
    Method::GET,
    Method::HEAD,
    Method::PUT,
    Method::POST,
    Method::PATCH,
    Method::DELETE,
    Method::OPTIONS,
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let Ok(request) = std::str::from_utf8(rest) else {
        return;
    };
    let method = &METHODS[usize::from(pick) % METHODS.len()];
    let (path, query) = match request.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (request, None),
    };
    let parsed = Endpoint::parse(method, path, query);
    assert_eq!(
        parsed.as_ref().ok(),
        Endpoint::parse(method, path, query).as_ref().ok(),
        "not deterministic"
    );
    let endpoint = match parsed {
        Ok(e) => e,
        Err(e) => {
            let (status, _) = e.status_and_code();
            assert!(
                status.is_client_error(),
                "{status} for {method} {request:?}"
            );
            if let Some(registry_error) = e.registry_error() {
                let message = registry_error.to_string();
                assert!(message.len() < 4096, "{} bytes of message", message.len());
            }
            let _ = e.into_response("fuzz");
            return;
        }
    };
    assert!(path.starts_with("/v2"));
    if let Some(name) = endpoint.repository() {
        assert!(path.contains(name.as_str()), "{name} not in {path:?}");
    }
    assert_eq!(
        endpoint.repository().cloned(),
        endpoint.clone().into_repository()
    );
    let (again_method, again_path, again_query) = written(&endpoint, method);
    let again = Endpoint::parse(&again_method, &again_path, again_query.as_deref());
    assert_eq!(
        again.as_ref().ok(),
        Some(&endpoint),
        "{method} {request:?} -> {endpoint:?} -> {again_method} {again_path:?} {again_query:?}"
    );
});

/// The request a client would send for `e` (`method` where several would do).
fn written(e: &Endpoint, method: &Method) -> (Method, String, Option<String>) {
    let paging = |n: &Option<usize>, last: &Option<String>| {
        let mut q = Vec::new();
        if let Some(n) = n {
            q.push(format!("n={n}"));
        }
        if let Some(last) = last {
            q.push(format!("last={}", encode(last)));
        }
        (!q.is_empty()).then(|| q.join("&"))
    };
    let ns = |ns: Option<&berth_http::endpoint::Namespace>| {
        ns.map(|ns| format!("ns={}", encode(ns.as_str())))
    };
    match e {
        Endpoint::Base => (method.clone(), "/v2/".into(), None),
        Endpoint::Catalog { n, last } => (method.clone(), "/v2/_catalog".into(), paging(n, last)),
        Endpoint::Usage { n, last } => (method.clone(), "/v2/_berth/usage".into(), paging(n, last)),
        Endpoint::Tags { name, n, last } => (
            method.clone(),
            format!("/v2/{name}/tags/list"),
            paging(n, last),
        ),
        Endpoint::Manifest {
            name,
            reference,
            op,
            ns: namespace,
        } => {
            let m = match op {
                ManifestOp::Get => Method::GET,
                ManifestOp::Head => Method::HEAD,
                ManifestOp::Put => Method::PUT,
                ManifestOp::Delete => Method::DELETE,
            };
            let path = format!("/v2/{name}/manifests/{reference}");
            (m, path, ns(namespace.as_ref()))
        }
        Endpoint::Blob {
            name,
            digest,
            op,
            ns: namespace,
        } => {
            let m = match op {
                BlobOp::Get => Method::GET,
                BlobOp::Head => Method::HEAD,
                BlobOp::Delete => Method::DELETE,
            };
            (
                m,
                format!("/v2/{name}/blobs/{digest}"),
                ns(namespace.as_ref()),
            )
        }
        Endpoint::UploadStart { name, kind } => {
            let query = match kind {
                UploadStartKind::Session => None,
                UploadStartKind::Monolithic(d) => {
                    Some(format!("digest={}", encode(&d.to_string())))
                }
                UploadStartKind::Mount { digest, from } => Some(match from {
                    Some(from) => format!(
                        "mount={}&from={}",
                        encode(&digest.to_string()),
                        encode(from.as_str())
                    ),
                    None => format!("mount={}", encode(&digest.to_string())),
                }),
            };
            (Method::POST, format!("/v2/{name}/blobs/uploads/"), query)
        }
        Endpoint::Upload { name, id, op } => {
            let path = format!("/v2/{name}/blobs/uploads/{id}");
            match op {
                UploadOp::Status => (Method::GET, path, None),
                UploadOp::Chunk => (Method::PATCH, path, None),
                UploadOp::Finish(d) => (
                    Method::PUT,
                    path,
                    Some(format!("digest={}", encode(&d.to_string()))),
                ),
                UploadOp::Cancel => (Method::DELETE, path, None),
            }
        }
        Endpoint::Referrers {
            name,
            digest,
            artifact_type,
        } => (
            method.clone(),
            format!("/v2/{name}/referrers/{digest}"),
            artifact_type
                .as_ref()
                .map(|a| format!("artifactType={}", encode(a))),
        ),
    }
}

/// Percent-encodes everything but letters and digits.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
