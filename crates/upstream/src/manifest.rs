//! Manifests from the upstream: HEAD to revalidate a tag, GET to fetch one, both negotiating every
//! manifest and index type berth serves.
//!
//! A fetched manifest's digest is computed here from its bytes, never taken from a header: it must match
//! `Docker-Content-Digest` when the upstream sends one, and the digest asked for when the reference is a
//! digest. Either mismatch (a corrupted or substituted payload) is a `Protocol` error, so the cache never
//! stores a manifest under a name it does not have.

use bytes::Bytes;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderValue};
use hyper::{Method, Response};
use oci::{Digest, DigestAlgorithm, Reference, RepoName};
use registry::proxy::{ManifestHead, UpstreamError, UpstreamManifest};

use crate::client::read_limited;
use crate::fetch::Fetcher;
use crate::status::classify;

/// The `Accept` of manifest requests: OCI first, then Docker schema2. Schema1 is left out on purpose:
/// berth does not serve it, and registries that still convert to it would hand it to us otherwise.
/// (Spelled out because consts cannot be joined; a test checks it against `oci::media_type`.)
const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.manifest.v1+json, \
    application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json, \
    application/vnd.docker.distribution.manifest.list.v2+json";

/// The name of the `Docker-Content-Digest` header.
const DOCKER_CONTENT_DIGEST: &str = "docker-content-digest";

pub(crate) fn scope(repo: &RepoName) -> String {
    format!("repository:{}:pull", repo.as_str())
}

fn path(repo: &RepoName, reference: &Reference) -> String {
    format!("/v2/{}/manifests/{reference}", repo.as_str())
}

pub(crate) async fn head(
    f: &Fetcher,
    repo: &RepoName,
    reference: &Reference,
) -> Result<Option<ManifestHead>, UpstreamError> {
    let accept = HeaderValue::from_static(ACCEPT_MANIFESTS);
    let resp = f
        .request(
            Method::HEAD,
            &path(repo, reference),
            Some(&accept),
            &scope(repo),
        )
        .await?;
    let Some(resp) = classify(resp, "manifest HEAD")? else {
        return Ok(None);
    };
    let headers = resp.headers();
    let digest = match (header_digest(headers)?, reference) {
        (Some(d), Reference::Digest(want)) if d != *want => {
            return Err(UpstreamError::Protocol(format!(
                "asked for manifest {want}, the upstream's HEAD names {d}"
            )));
        }
        (Some(d), _) => d,
        // By digest, the digest is known even when the upstream does not repeat it.
        (None, Reference::Digest(want)) => want.clone(),
        (None, Reference::Tag(_)) => {
            return Err(UpstreamError::Protocol(
                "a manifest HEAD without Docker-Content-Digest".into(),
            ));
        }
    };
    let size = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| {
            UpstreamError::Protocol("a manifest HEAD without a valid Content-Length".into())
        })?;
    let media_type = content_type(headers)
        .ok_or_else(|| UpstreamError::Protocol("a manifest HEAD without a Content-Type".into()))?;
    Ok(Some(ManifestHead {
        digest,
        media_type,
        size,
    }))
}

pub(crate) async fn get(
    f: &Fetcher,
    repo: &RepoName,
    reference: &Reference,
    max_bytes: usize,
) -> Result<Option<UpstreamManifest>, UpstreamError> {
    let accept = HeaderValue::from_static(ACCEPT_MANIFESTS);
    let resp = f
        .request(
            Method::GET,
            &path(repo, reference),
            Some(&accept),
            &scope(repo),
        )
        .await?;
    let Some(resp) = classify(resp, "manifest GET")? else {
        return Ok(None);
    };
    check_length(&resp, max_bytes)?;
    let from_header = header_digest(resp.headers())?;
    let declared_type = content_type(resp.headers());
    let payload = read_limited(
        resp.into_body(),
        max_bytes,
        f.http.stall_timeout(),
        "manifest",
    )
    .await?;
    // The algorithm of the digest asked for (or announced) decides how the payload is hashed.
    let algorithm = match (reference, &from_header) {
        (Reference::Digest(d), _) | (_, Some(d)) => d.algorithm(),
        _ => DigestAlgorithm::Sha256,
    };
    let digest = Digest::of(algorithm, &payload);
    if let Some(announced) = &from_header
        && announced.algorithm() == algorithm
        && *announced != digest
    {
        return Err(UpstreamError::Protocol(format!(
            "the manifest's bytes hash to {digest}, the upstream announced {announced}"
        )));
    }
    if let Reference::Digest(want) = reference
        && *want != digest
    {
        return Err(UpstreamError::Protocol(format!(
            "asked for manifest {want}, the upstream's bytes hash to {digest}"
        )));
    }
    let media_type = declared_type
        .filter(|t| t != "application/json" && t != "text/plain")
        .or_else(|| payload_media_type(&payload))
        .ok_or_else(|| UpstreamError::Protocol("a manifest without a media type".into()))?;
    Ok(Some(UpstreamManifest {
        digest,
        media_type,
        payload,
    }))
}

/// A `Content-Length` over the limit fails before any byte is read.
fn check_length<B>(resp: &Response<B>, max_bytes: usize) -> Result<(), UpstreamError> {
    let declared = resp
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(len) if len > max_bytes as u64 => Err(UpstreamError::Protocol(format!(
            "the manifest is {len} bytes, over the limit of {max_bytes}"
        ))),
        _ => Ok(()),
    }
}

fn header_digest(headers: &HeaderMap) -> Result<Option<Digest>, UpstreamError> {
    let Some(value) = headers.get(DOCKER_CONTENT_DIGEST) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<Digest>().ok())
        .map(Some)
        .ok_or_else(|| UpstreamError::Protocol("a malformed Docker-Content-Digest".into()))
}

/// `Content-Type` without parameters.
fn content_type(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    let t = v.split(';').next().unwrap_or("").trim();
    (!t.is_empty()).then(|| t.to_string())
}

/// The `mediaType` field of a manifest, for upstreams that send a generic Content-Type.
fn payload_media_type(payload: &Bytes) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Typed {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
    }
    serde_json::from_slice::<Typed>(payload)
        .ok()?
        .media_type
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci::media_type::{DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST};

    #[test]
    fn accept_lists_every_served_type() {
        let listed: Vec<&str> = ACCEPT_MANIFESTS.split(',').map(str::trim).collect();
        assert_eq!(
            listed,
            [
                OCI_MANIFEST,
                OCI_INDEX,
                DOCKER_MANIFEST,
                DOCKER_MANIFEST_LIST
            ]
        );
    }

    #[test]
    fn content_types() {
        let mut h = HeaderMap::new();
        assert_eq!(content_type(&h), None);
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/vnd.oci.image.index.v1+json; charset=utf-8"),
        );
        assert_eq!(content_type(&h).as_deref(), Some(OCI_INDEX));
    }

    #[test]
    fn media_type_from_the_payload() {
        let p = Bytes::from_static(
            br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json"}"#,
        );
        assert_eq!(payload_media_type(&p).as_deref(), Some(OCI_INDEX));
        assert_eq!(payload_media_type(&Bytes::from_static(b"{}")), None);
        assert_eq!(payload_media_type(&Bytes::from_static(b"not json")), None);
    }
}
