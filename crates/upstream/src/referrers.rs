//! The manifests that refer to one (signatures, SBOMs, attestations), for replication: the referrers
//! API's index (`GET /v2/<name>/referrers/<digest>`), or, from a registry without it (registry:2 answers
//! 404), the index the referrers tag schema keeps under the tag `<algorithm>-<hex>`, as the distribution
//! spec tells clients to fall back to.

use hyper::Method;
use hyper::header::HeaderValue;
use oci::{Digest, Reference, RepoName, Tag};
use registry::proxy::UpstreamError;
use serde::Deserialize;

use crate::client::read_limited;
use crate::fetch::Fetcher;
use crate::manifest::{self, scope};
use crate::status::classify;

/// A referrers index this large lists tens of thousands of referrers: more is not a referrers index.
const MAX_INDEX: usize = 4 << 20;

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

#[derive(Deserialize)]
struct Index {
    #[serde(default)]
    manifests: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    digest: String,
}

pub(crate) async fn list(
    f: &Fetcher,
    repo: &RepoName,
    digest: &Digest,
) -> Result<Vec<Digest>, UpstreamError> {
    let path = format!("/v2/{}/referrers/{digest}", repo.as_str());
    let accept = HeaderValue::from_static(OCI_INDEX);
    let resp = f
        .request(Method::GET, &path, Some(&accept), &scope(repo))
        .await?;
    let body = match classify(resp, "referrers")? {
        Some(resp) => {
            read_limited(
                resp.into_body(),
                MAX_INDEX,
                f.http.stall_timeout(),
                "referrers",
            )
            .await?
        }
        None => {
            // No referrers API: the tag schema's index, if anything ever pushed one.
            let tag: Tag = format!("{}-{}", digest.algorithm(), digest.hex())
                .parse()
                .map_err(|e| {
                    UpstreamError::Protocol(format!("a referrers tag of {digest}: {e}"))
                })?;
            match manifest::get(f, repo, &Reference::Tag(tag), MAX_INDEX).await? {
                Some(m) => m.payload,
                None => return Ok(Vec::new()),
            }
        }
    };
    parse(&body)
}

/// The digests an index lists, each checked.
fn parse(body: &[u8]) -> Result<Vec<Digest>, UpstreamError> {
    let index: Index = serde_json::from_slice(body).map_err(|e| {
        UpstreamError::Protocol(format!("a referrers answer that is not an index: {e}"))
    })?;
    index
        .manifests
        .iter()
        .map(|m| {
            m.digest.parse().map_err(|e| {
                UpstreamError::Protocol(format!("a referrer's digest {:?}: {e}", m.digest))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn an_index_gives_its_digests_and_nothing_else_passes() {
        let body = format!(r#"{{"schemaVersion":2,"manifests":[{{"digest":"{D}","size":1}}]}}"#);
        assert_eq!(
            parse(body.as_bytes()).unwrap(),
            [D.parse::<Digest>().unwrap()]
        );
        assert!(parse(br#"{"schemaVersion":2}"#).unwrap().is_empty());
        assert!(parse(br#"{"manifests":[{"digest":"md5:00"}]}"#).is_err());
        assert!(parse(b"<html>").is_err());
    }
}
