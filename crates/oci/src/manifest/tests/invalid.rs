//! The refusal table: one row per reason a manifest is refused, each checking the error variant and
//! that the message names what is wrong.

use super::{OCI_IMAGE, OCI_IMAGE_NO_MEDIA_TYPE, OCI_INDEX_DOC, fill};
use crate::manifest::*;
use crate::media_type::{DOCKER_MANIFEST, DOCKER_SCHEMA1};

type Check = fn(&ManifestError) -> bool;

/// One way to be refused: the document, what the error must be, and words its message must contain.
struct Invalid {
    name: &'static str,
    content_type: Option<&'static str>,
    json: &'static str,
    check: Check,
    message: &'static str,
}

const SCHEMA1_SIGNED: &str = r#"{
   "schemaVersion": 1,
   "name": "library/hello-world",
   "tag": "latest",
   "architecture": "amd64",
   "fsLayers": [{"blobSum": "$L1"}],
   "history": [{"v1Compatibility": "{\"id\":\"e45a5af57b00862e5ef5782a9925979a02ba2b12dff832fd0991335f4a11e5c5\"}"}],
   "signatures": [{"header": {"jwk": {"crv": "P-256", "kty": "EC"}, "alg": "ES256"}, "signature": "XREm0L8WNn27Ga_iE_vRnTxVMhhYY0Zst_FfkKopg6gWSoTOZTuW4rK0fg_IqnKkEKlbD83tD46LKEGi5aIVFg", "protected": "eyJmb3JtYXRMZW5ndGgiOjY2MjgsImZvcm1hdFRhaWwiOiJDbjAiLCJ0aW1lIjoiMjAxNS0wNC0wOFQxODo1Mjo1OVoifQ"}]
}"#;

const SCHEMA1_UNSIGNED_WITH_TYPE: &str = r#"{"schemaVersion": 1,
  "mediaType": "application/vnd.docker.distribution.manifest.v1+json",
  "name": "library/busybox", "tag": "1.36", "architecture": "amd64", "fsLayers": [], "history": []}"#;

fn invalid_cases() -> Vec<Invalid> {
    use ManifestError as E;
    let row = |name, content_type, json, check: Check, message| Invalid {
        name,
        content_type,
        json,
        check,
        message,
    };
    let oci = Some(OCI_MANIFEST);
    let idx = Some(OCI_INDEX);
    vec![
        row(
            "truncated JSON",
            oci,
            r#"{"schemaVersion": 2, "config": {"#,
            |e| matches!(e, E::NotJson(_)),
            "not valid JSON",
        ),
        row(
            "empty body",
            oci,
            "",
            |e| matches!(e, E::NotJson(_)),
            "not valid JSON",
        ),
        row(
            "yaml",
            oci,
            "schemaVersion: 2\nmediaType: x\n",
            |e| matches!(e, E::NotJson(_)),
            "not valid JSON",
        ),
        row(
            "JSON array",
            oci,
            r#"[{"schemaVersion": 2}]"#,
            |e| matches!(e, E::NotObject(_)),
            "an array",
        ),
        row(
            "JSON string",
            oci,
            r#""application/vnd.oci.image.manifest.v1+json""#,
            |e| matches!(e, E::NotObject(_)),
            "a string",
        ),
        row(
            "schema1 by content type (signed)",
            Some("application/vnd.docker.distribution.manifest.v1+prettyjws"),
            SCHEMA1_SIGNED,
            |e| matches!(e, E::Schema1(_)),
            "schema1 manifests are not supported",
        ),
        row(
            "schema1 by content type (unsigned)",
            Some(DOCKER_SCHEMA1),
            SCHEMA1_SIGNED,
            |e| matches!(e, E::Schema1(_)),
            "schema1 manifests are not supported",
        ),
        row(
            "schema1 by schemaVersion, generic content type",
            Some("application/json"),
            SCHEMA1_SIGNED,
            |e| matches!(e, E::Schema1(_)),
            "schemaVersion 1",
        ),
        row(
            "schema1 by schemaVersion under an OCI content type",
            oci,
            SCHEMA1_SIGNED,
            |e| matches!(e, E::Schema1(_)),
            "schema1 manifests are not supported",
        ),
        row(
            "schema1 by mediaType field",
            None,
            SCHEMA1_UNSIGNED_WITH_TYPE,
            |e| matches!(e, E::Schema1(_)),
            "schema1 manifests are not supported",
        ),
        row(
            "schemaVersion 3",
            oci,
            r#"{"schemaVersion": 3, "mediaType": "application/vnd.oci.image.manifest.v1+json",
             "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "$CFG", "size": 2}, "layers": []}"#,
            |e| matches!(e, E::SchemaVersion(v) if v == "3"),
            "schemaVersion must be 2",
        ),
        row(
            "schemaVersion missing",
            oci,
            r#"{"mediaType": "application/vnd.oci.image.manifest.v1+json",
             "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "$CFG", "size": 2}, "layers": []}"#,
            |e| matches!(e, E::SchemaVersion(_)),
            "schemaVersion must be 2",
        ),
        row(
            "schemaVersion as a string",
            oci,
            r#"{"schemaVersion": "2", "mediaType": "application/vnd.oci.image.manifest.v1+json",
             "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "$CFG", "size": 2}, "layers": []}"#,
            |e| matches!(e, E::SchemaVersion(_)),
            "found \"2\"",
        ),
        row(
            "unknown mediaType field",
            None,
            r#"{"schemaVersion": 2, "mediaType": "application/vnd.example.thing.v1+json",
             "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "$CFG", "size": 2}, "layers": []}"#,
            |e| matches!(e, E::UnknownMediaType(m) if m == "application/vnd.example.thing.v1+json"),
            "unsupported manifest media type",
        ),
        row(
            "unknown content type, no mediaType field",
            Some("application/vnd.example.thing.v1+json"),
            OCI_IMAGE_NO_MEDIA_TYPE,
            |e| matches!(e, E::UnknownMediaType(_)),
            "application/vnd.example.thing.v1+json",
        ),
        row(
            "mediaType field disagrees with content type",
            Some(DOCKER_MANIFEST),
            OCI_IMAGE,
            |e| matches!(e, E::MediaTypeMismatch { .. }),
            "disagrees with the Content-Type",
        ),
        row(
            "index pushed as a manifest",
            oci,
            OCI_INDEX_DOC,
            |e| matches!(e, E::MediaTypeMismatch { .. }),
            "application/vnd.oci.image.index.v1+json",
        ),
        row(
            "mediaType not a string",
            None,
            r#"{"schemaVersion": 2, "mediaType": 7,
             "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "$CFG", "size": 2}}"#,
            |e| matches!(e, E::Invalid { field, .. } if field == "mediaType"),
            "must be a string",
        ),
        row(
            "nothing tells the type",
            Some("application/json"),
            r#"{"schemaVersion": 2, "layers": []}"#,
            |e| matches!(e, E::UnknownKind),
            "cannot tell the manifest's type",
        ),
        row(
            "image manifest without config",
            oci,
            r#"{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
             "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "$L1", "size": 10}]}"#,
            |e| matches!(e, E::Missing(f) if f == "config"),
            "config is required",
        ),
        row(
            "docker manifest without config",
            Some(DOCKER_MANIFEST),
            r#"{"schemaVersion": 2,
             "mediaType": "application/vnd.docker.distribution.manifest.v2+json", "layers": []}"#,
            |e| matches!(e, E::Missing(f) if f == "config"),
            "config is required",
        ),
        row(
            "config not an object",
            oci,
            r#"{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
             "config": "$CFG", "layers": []}"#,
            |e| matches!(e, E::Invalid { field, .. } if field == "config"),
            "descriptor object",
        ),
        row(
            "index without manifests",
            idx,
            r#"{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json"}"#,
            |e| matches!(e, E::Missing(f) if f == "manifests"),
            "manifests is required",
        ),
        row(
            "index with manifests null",
            idx,
            r#"{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": null}"#,
            |e| matches!(e, E::Missing(f) if f == "manifests"),
            "manifests is required",
        ),
        row(
            "manifests not an array",
            idx,
            r#"{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "$M1", "size": 1}}"#,
            |e| matches!(e, E::Invalid { field, .. } if field == "manifests"),
            "must be an array",
        ),
        row(
            "layers not an array",
            oci,
            r#"{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
             "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "$CFG", "size": 2}, "layers": {}}"#,
            |e| matches!(e, E::Invalid { field, .. } if field == "layers"),
            "must be an array",
        ),
        row(
            "image manifest that is also an index",
            oci,
            r#"{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
             "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "$CFG", "size": 2}, "layers": [],
             "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "$M1", "size": 1}]}"#,
            |e| matches!(e, E::Invalid { field, .. } if field == "manifests"),
            "an image manifest must not have",
        ),
        row(
            "index that is also an image manifest",
            idx,
            r#"{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": [], "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "$L1", "size": 10}]}"#,
            |e| matches!(e, E::Invalid { field, .. } if field == "layers"),
            "an index must not have",
        ),
        row(
            "layer digest too short",
            oci,
            r#"{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
             "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "$CFG", "size": 2},
             "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "sha256:4abcf2066143", "size": 10}]}"#,
            |e| matches!(e, E::InvalidDigest { field, .. } if field == "layers[0].digest"),
            "layers[0].digest: invalid digest",
        ),
        row(
            "config digest in uppercase",
            oci,
            r#"{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
             "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 2,
                        "digest": "sha256:B5B2B2C507A0944348E0303114D8D93AAAA081732B86451D9BCE1F432A537BC7"}}"#,
            |e| matches!(e, E::InvalidDigest { field, .. } if field == "config.digest"),
            "config.digest",
        ),
        row(
            "digest with an unsupported algorithm",
            oci,
            r#"{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
             "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "md5:d41d8cd98f00b204e9800998ecf8427e", "size": 2}}"#,
            |e| matches!(e, E::InvalidDigest { .. }),
            "unsupported digest algorithm",
        ),
        row(
            "digest as a number",
            idx,
            r#"{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": 12, "size": 1}]}"#,
            |e| matches!(e, E::InvalidDigest { field, .. } if field == "manifests[0].digest"),
            "must be a string",
        ),
        row(
            "config without digest",
            oci,
            r#"{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
             "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 2}}"#,
            |e| matches!(e, E::Missing(f) if f == "config.digest"),
            "config.digest is required",
        ),
        row(
            "index child without digest",
            idx,
            r#"{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 1}]}"#,
            |e| matches!(e, E::Missing(f) if f == "manifests[0].digest"),
            "manifests[0].digest",
        ),
        row(
            "negative layer size",
            oci,
            r#"{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
             "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "$CFG", "size": 2},
             "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "$L1", "size": -1}]}"#,
            |e| matches!(e, E::InvalidSize { field, .. } if field == "layers[0].size"),
            "must not be negative",
        ),
        row(
            "missing layer size",
            oci,
            r#"{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
             "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "$CFG", "size": 2},
             "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "$L1", "size": 5},
                        {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "$L2"}]}"#,
            |e| matches!(e, E::Missing(f) if f == "layers[1].size"),
            "layers[1].size is required",
        ),
        row(
            "size as a string",
            oci,
            r#"{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
             "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "$CFG", "size": "1472"}}"#,
            |e| matches!(e, E::InvalidSize { field, .. } if field == "config.size"),
            "must be a number",
        ),
        row(
            "fractional size",
            oci,
            r#"{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
             "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "$CFG", "size": 14.5}}"#,
            |e| matches!(e, E::InvalidSize { .. }),
            "whole number",
        ),
        row(
            "size beyond i64",
            oci,
            r#"{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
             "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "$CFG", "size": 18446744073709551615}}"#,
            |e| matches!(e, E::InvalidSize { .. }),
            "too large",
        ),
        row(
            "layer without mediaType",
            oci,
            r#"{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
             "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "$CFG", "size": 2},
             "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "$L1", "size": 5},
                        {"digest": "$L2", "size": 5}]}"#,
            |e| matches!(e, E::Missing(f) if f == "layers[1].mediaType"),
            "layers[1].mediaType is required",
        ),
        row(
            "layer mediaType that is not a media type",
            oci,
            r#"{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
             "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "$CFG", "size": 2},
             "layers": [{"mediaType": "tar gzip", "digest": "$L1", "size": 5}]}"#,
            |e| matches!(e, E::Invalid { field, .. } if field == "layers[0].mediaType"),
            "\"tar gzip\"",
        ),
        row(
            "subject with a bad digest",
            oci,
            r#"{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
             "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": "$EMPTY", "size": 2}, "layers": [],
             "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:nope", "size": 10}}"#,
            |e| matches!(e, E::InvalidDigest { field, .. } if field == "subject.digest"),
            "subject.digest",
        ),
        row(
            "artifactType that is not a media type",
            oci,
            r#"{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
             "artifactType": "sbom", "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": "$EMPTY", "size": 2}}"#,
            |e| matches!(e, E::Invalid { field, .. } if field == "artifactType"),
            "artifactType",
        ),
        row(
            "annotations not an object",
            oci,
            r#"{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
             "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "$CFG", "size": 2},
             "annotations": ["a", "b"]}"#,
            |e| matches!(e, E::Invalid { field, .. } if field == "annotations"),
            "must be an object",
        ),
        row(
            "annotation value not a string",
            oci,
            r#"{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
             "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "$CFG", "size": 2},
             "annotations": {"org.opencontainers.image.version": 3}}"#,
            |e| matches!(e, E::Invalid { field, .. } if field == "annotations.org.opencontainers.image.version"),
            "must be a string",
        ),
        row(
            "urls not an array",
            Some(DOCKER_MANIFEST),
            r#"{"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
             "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 2, "digest": "$CFG"},
             "layers": [{"mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", "size": 5, "digest": "$L1",
                         "urls": "https://example.com/layer"}]}"#,
            |e| matches!(e, E::Invalid { field, .. } if field == "layers[0].urls"),
            "must be an array",
        ),
        row(
            "empty url",
            Some(DOCKER_MANIFEST),
            r#"{"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
             "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 2, "digest": "$CFG"},
             "layers": [{"mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", "size": 5, "digest": "$L1",
                         "urls": [""]}]}"#,
            |e| matches!(e, E::Invalid { field, .. } if field == "layers[0].urls[0]"),
            "non-empty string",
        ),
        row(
            "platform not an object",
            idx,
            r#"{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "$M1", "size": 1, "platform": "linux/amd64"}]}"#,
            |e| matches!(e, E::Invalid { field, .. } if field == "manifests[0].platform"),
            "must be an object",
        ),
    ]
}

#[test]
fn refuses_every_invalid_shape_with_a_message_that_says_why() {
    for case in invalid_cases() {
        let json = fill(case.json);
        let err = match Manifest::parse(json.as_bytes(), case.content_type) {
            Ok(m) => panic!("{}: accepted as {m:?}", case.name),
            Err(e) => e,
        };
        assert!((case.check)(&err), "{}: wrong error {err:?}", case.name);
        let message = err.to_string();
        assert!(
            message.contains(case.message),
            "{}: message {message:?} lacks {:?}",
            case.name,
            case.message
        );
    }
}
