//! `GET /v2/<name>/referrers/<digest>`: the manifests whose `subject` is `<digest>`, as an OCI image index.
//!
//! The spec forbids a 404 here for a registry that supports the API: an unknown subject has an empty list.

use axum::http::StatusCode;
use axum::http::header::{CONTENT_TYPE, HeaderValue};
use axum::response::{IntoResponse, Response};
use oci::media_type::OCI_INDEX;
use oci::{Digest, RepoName};
use registry::{Referrer, Registry};
use serde_json::{Map, Value, json};

use super::Result;
use crate::headers::OCI_FILTERS_APPLIED;

pub async fn list(
    registry: &Registry,
    name: &RepoName,
    subject: &Digest,
    artifact_type: Option<&str>,
) -> Result {
    let referrers = registry.referrers(name, subject, artifact_type).await?;
    let index = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": referrers.manifests.iter().map(descriptor).collect::<Vec<_>>(),
    });
    let content_type = (CONTENT_TYPE, HeaderValue::from_static(OCI_INDEX));
    let resp: Response = if referrers.filtered {
        (
            StatusCode::OK,
            [
                content_type,
                (
                    OCI_FILTERS_APPLIED,
                    HeaderValue::from_static("artifactType"),
                ),
            ],
            index.to_string(),
        )
            .into_response()
    } else {
        (StatusCode::OK, [content_type], index.to_string()).into_response()
    };
    Ok(resp)
}

fn descriptor(r: &Referrer) -> Value {
    let mut d = Map::new();
    d.insert("mediaType".into(), json!(r.media_type));
    d.insert("digest".into(), json!(r.digest));
    d.insert("size".into(), json!(r.size));
    if let Some(t) = &r.artifact_type {
        d.insert("artifactType".into(), json!(t));
    }
    if let Some(text) = &r.annotations {
        // Stored as the JSON text of the manifest's own annotations object. Text that no longer parses
        // is left out, with a warning, rather than failing the listing of every other referrer.
        match serde_json::from_str::<Value>(text) {
            Ok(v @ Value::Object(_)) => {
                d.insert("annotations".into(), v);
            }
            _ => tracing::warn!(digest = %r.digest, "stored annotations are not a JSON object"),
        }
    }
    Value::Object(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_carry_what_the_spec_asks() {
        let r = Referrer {
            digest: Digest::sha256_of(b"sig"),
            media_type: oci::media_type::OCI_MANIFEST.to_string(),
            size: 123,
            artifact_type: Some("application/vnd.example.sig".to_string()),
            annotations: Some(r#"{"k":"v"}"#.to_string()),
        };
        let d = descriptor(&r);
        assert_eq!(d["digest"], r.digest.to_string());
        assert_eq!(d["size"], 123);
        assert_eq!(d["artifactType"], "application/vnd.example.sig");
        assert_eq!(d["annotations"]["k"], "v");

        let bare = Referrer {
            artifact_type: None,
            annotations: Some("not json".to_string()),
            ..r
        };
        let d = descriptor(&bare);
        assert!(d.get("artifactType").is_none());
        assert!(d.get("annotations").is_none());
    }
}
