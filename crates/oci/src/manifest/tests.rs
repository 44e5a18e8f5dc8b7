//! Table-driven tests of manifest parsing: one row per accepted shape and per reason to refuse, with JSON
//! shaped like what docker, buildx, oras, cosign and crane push.

use super::*;
use crate::media_type::{DOCKER_MANIFEST, DOCKER_MANIFEST_LIST};

mod invalid;

const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// Fills the placeholders of a test document with real-looking digests, so the tables stay readable.
fn fill(json: &str) -> String {
    json.replace(
        "$CFG",
        "sha256:b5b2b2c507a0944348e0303114d8d93aaaa081732b86451d9bce1f432a537bc7",
    )
    .replace(
        "$L1",
        "sha256:4abcf20661432fb2d719aaf90656f55c287f8ca915dc1c92ec14ff61e67fbaf8",
    )
    .replace(
        "$L2",
        "sha256:c158987b05517b6f2c5913f3acef1f2182a32345a304fe357e3ace5fadcad715",
    )
    .replace(
        "$EMPTY",
        "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
    )
    .replace(
        "$M1",
        "sha256:6457d53fb065d6f250e1504b9bc42d5b6c65941d57532c072d929dd0628977d0",
    )
    .replace(
        "$M2",
        "sha256:eece025e432126ce23f223450a0326fbebde39cdf496a85d8c016293fc851978",
    )
    .replace("$S512", &format!("sha512:{}", "ab".repeat(64)))
}

/// What a valid document must parse to.
struct Valid {
    name: &'static str,
    content_type: Option<&'static str>,
    json: &'static str,
    kind: ManifestKind,
    media_type: &'static str,
    artifact_type: Option<&'static str>,
    layers: usize,
    manifests: usize,
    foreign: usize,
    subject: Option<&'static str>,
    annotations: Option<&'static str>,
}

const OCI_IMAGE: &str = r#"{
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.manifest.v1+json",
  "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "$CFG", "size": 1472},
  "layers": [
    {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "$L1", "size": 3623807},
    {"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "$L2", "size": 32}
  ],
  "annotations": {"org.opencontainers.image.created": "2024-05-01T10:00:00Z"}
}"#;

const OCI_IMAGE_NO_MEDIA_TYPE: &str = r#"{
  "schemaVersion": 2,
  "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "$CFG", "size": 1472},
  "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": "$L1", "size": 3623807}]
}"#;

const DOCKER_IMAGE: &str = r#"{
   "schemaVersion": 2,
   "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
   "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 1469, "digest": "$CFG"},
   "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 2814559, "digest": "$L1"}]
}"#;

const DOCKER_FOREIGN: &str = r#"{
   "schemaVersion": 2,
   "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
   "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 1469, "digest": "$CFG"},
   "layers": [
      {"mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", "size": 1718332879,
       "digest": "$L1", "urls": ["https://mcr.microsoft.com/v2/windows/servercore/blobs/$L1"]},
      {"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 1024, "digest": "$L2"}
   ]
}"#;

const OCI_INDEX_DOC: &str = r#"{
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.index.v1+json",
  "manifests": [
    {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "$M1", "size": 1024,
     "platform": {"architecture": "amd64", "os": "linux"}},
    {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "$M2", "size": 1025,
     "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}}
  ]
}"#;

const DOCKER_LIST: &str = r#"{
  "schemaVersion": 2,
  "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
  "manifests": [
    {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "size": 528, "digest": "$M1",
     "platform": {"architecture": "amd64", "os": "linux"}}
  ]
}"#;

const ORAS_ARTIFACT: &str = r#"{
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.manifest.v1+json",
  "artifactType": "application/vnd.example.sbom.v1",
  "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": "$EMPTY", "size": 2, "data": "e30="},
  "layers": [{"mediaType": "application/spdx+json", "digest": "$L1", "size": 8812,
              "annotations": {"org.opencontainers.image.title": "sbom.spdx.json"}}],
  "annotations": {"org.opencontainers.image.created": "2024-05-01T10:00:00Z"}
}"#;

const SIGNATURE_REFERRER: &str = r#"{
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.manifest.v1+json",
  "artifactType": "application/vnd.dev.cosign.artifact.sig.v1+json",
  "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": "$EMPTY", "size": 2},
  "layers": [{"mediaType": "application/vnd.oci.empty.v1+json", "digest": "$EMPTY", "size": 2}],
  "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "$M1", "size": 1024}
}"#;

const IMAGE_WITH_SUBJECT: &str = r#"{
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.manifest.v1+json",
  "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "$CFG", "size": 1472},
  "layers": [],
  "subject": {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": "$M2", "size": 512}
}"#;

const INDEX_ARTIFACT: &str = r#"{
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.index.v1+json",
  "artifactType": "application/vnd.example.bundle.v1",
  "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "$M1", "size": 1024,
                 "artifactType": "application/vnd.example.part.v1"}],
  "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "$M2", "size": 99},
  "annotations": {"purpose": "test"}
}"#;

const GO_NULL_LAYERS: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
  "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"$CFG","size":2},"layers":null}"#;

const SHA512_LAYER: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
  "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"$CFG","size":2},
  "layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"$S512","size":0}]}"#;

fn valid_cases() -> Vec<Valid> {
    let image = |name, content_type, json, media_type, layers| Valid {
        name,
        content_type,
        json,
        kind: ManifestKind::Image,
        media_type,
        artifact_type: Some(OCI_CONFIG),
        layers,
        manifests: 0,
        foreign: 0,
        subject: None,
        annotations: None,
    };
    let index = |name, content_type, json, media_type, manifests| Valid {
        name,
        content_type,
        json,
        kind: ManifestKind::Index,
        media_type,
        artifact_type: None,
        layers: 0,
        manifests,
        foreign: 0,
        subject: None,
        annotations: None,
    };
    let created = Some(r#"{"org.opencontainers.image.created":"2024-05-01T10:00:00Z"}"#);
    vec![
        Valid {
            annotations: created,
            ..image("oci image", Some(OCI_MANIFEST), OCI_IMAGE, OCI_MANIFEST, 2)
        },
        Valid {
            annotations: created,
            ..image(
                "oci image, no content type",
                None,
                OCI_IMAGE,
                OCI_MANIFEST,
                2,
            )
        },
        Valid {
            annotations: created,
            ..image(
                "oci image, content type with parameter and case",
                Some("Application/VND.OCI.image.manifest.v1+json; charset=utf-8"),
                OCI_IMAGE,
                OCI_MANIFEST,
                2,
            )
        },
        image(
            "no mediaType field: the content type decides",
            Some(OCI_MANIFEST),
            OCI_IMAGE_NO_MEDIA_TYPE,
            OCI_MANIFEST,
            1,
        ),
        image(
            "no mediaType field, generic content type: inferred from config",
            Some("application/json"),
            OCI_IMAGE_NO_MEDIA_TYPE,
            OCI_MANIFEST,
            1,
        ),
        image(
            "no mediaType field, no content type: inferred from config",
            None,
            OCI_IMAGE_NO_MEDIA_TYPE,
            OCI_MANIFEST,
            1,
        ),
        Valid {
            artifact_type: Some("application/vnd.docker.container.image.v1+json"),
            ..image(
                "docker schema2",
                Some(DOCKER_MANIFEST),
                DOCKER_IMAGE,
                DOCKER_MANIFEST,
                1,
            )
        },
        Valid {
            artifact_type: Some("application/vnd.docker.container.image.v1+json"),
            foreign: 1,
            ..image(
                "docker foreign layer",
                Some(DOCKER_MANIFEST),
                DOCKER_FOREIGN,
                DOCKER_MANIFEST,
                2,
            )
        },
        index("oci index", Some(OCI_INDEX), OCI_INDEX_DOC, OCI_INDEX, 2),
        index(
            "oci index, generic content type",
            Some("application/octet-stream"),
            OCI_INDEX_DOC,
            OCI_INDEX,
            2,
        ),
        index(
            "docker manifest list",
            Some(DOCKER_MANIFEST_LIST),
            DOCKER_LIST,
            DOCKER_MANIFEST_LIST,
            1,
        ),
        Valid {
            artifact_type: Some("application/vnd.example.sbom.v1"),
            annotations: created,
            ..image(
                "oras artifact with empty config",
                Some(OCI_MANIFEST),
                ORAS_ARTIFACT,
                OCI_MANIFEST,
                1,
            )
        },
        Valid {
            artifact_type: Some("application/vnd.dev.cosign.artifact.sig.v1+json"),
            subject: Some("$M1"),
            ..image(
                "signature referrer",
                Some(OCI_MANIFEST),
                SIGNATURE_REFERRER,
                OCI_MANIFEST,
                1,
            )
        },
        Valid {
            subject: Some("$M2"),
            ..image(
                "image with subject, artifact type from its config",
                Some(OCI_MANIFEST),
                IMAGE_WITH_SUBJECT,
                OCI_MANIFEST,
                0,
            )
        },
        Valid {
            artifact_type: Some("application/vnd.example.bundle.v1"),
            subject: Some("$M2"),
            annotations: Some(r#"{"purpose":"test"}"#),
            ..index(
                "index artifact with subject",
                Some(OCI_INDEX),
                INDEX_ARTIFACT,
                OCI_INDEX,
                1,
            )
        },
        image(
            "layers: null, as Go writes an empty slice",
            Some(OCI_MANIFEST),
            GO_NULL_LAYERS,
            OCI_MANIFEST,
            0,
        ),
        image(
            "sha512 layer digest",
            Some(OCI_MANIFEST),
            SHA512_LAYER,
            OCI_MANIFEST,
            1,
        ),
    ]
}

#[test]
fn accepts_every_supported_shape() {
    for case in valid_cases() {
        let json = fill(case.json);
        let m = match Manifest::parse(json.as_bytes(), case.content_type) {
            Ok(m) => m,
            Err(e) => panic!("{}: refused: {e}", case.name),
        };
        let n = case.name;
        assert_eq!(m.kind, case.kind, "{n}");
        assert_eq!(m.media_type, case.media_type, "{n}");
        assert_eq!(m.artifact_type.as_deref(), case.artifact_type, "{n}");
        assert_eq!(m.layers.len(), case.layers, "{n}");
        assert_eq!(m.manifests.len(), case.manifests, "{n}");
        assert_eq!(m.foreign_layers().count(), case.foreign, "{n}");
        assert_eq!(m.config.is_some(), case.kind == ManifestKind::Image, "{n}");
        let subject = m.subject_digest().map(|d| d.to_string());
        assert_eq!(subject, case.subject.map(fill), "{n}");
        assert_eq!(m.annotations.as_deref(), case.annotations, "{n}");
        // Every non-foreign reference is required; foreign ones never are.
        let required = m.required_blobs().count();
        assert_eq!(
            required,
            m.config.iter().count() + case.layers - case.foreign,
            "{n}"
        );
        assert!(m.required_blobs().all(|d| !d.is_foreign()), "{n}");
    }
}

#[test]
fn extracts_descriptors_exactly() {
    let m = Manifest::parse(fill(DOCKER_FOREIGN).as_bytes(), Some(DOCKER_MANIFEST)).unwrap();
    let config = m.config.as_ref().unwrap();
    assert_eq!(config.digest.to_string(), fill("$CFG"));
    assert_eq!(config.size, 1469);
    assert_eq!(
        config.media_type,
        "application/vnd.docker.container.image.v1+json"
    );
    let foreign: Vec<_> = m.foreign_layers().collect();
    assert_eq!(foreign[0].size, 1718332879);
    assert_eq!(
        foreign[0].urls,
        vec![fill(
            "https://mcr.microsoft.com/v2/windows/servercore/blobs/$L1"
        )]
    );
    let required: Vec<String> = m.required_blobs().map(|d| d.digest.to_string()).collect();
    assert_eq!(required, vec![fill("$CFG"), fill("$L2")]);

    let idx = Manifest::parse(fill(INDEX_ARTIFACT).as_bytes(), None).unwrap();
    assert_eq!(
        idx.manifests[0].artifact_type.as_deref(),
        Some("application/vnd.example.part.v1")
    );
    assert_eq!(idx.manifests[0].digest.to_string(), fill("$M1"));
    assert_eq!(idx.subject.as_ref().map(|s| s.size), Some(99));
}

#[test]
fn media_type_names() {
    let cases = [
        ("application/vnd.oci.image.manifest.v1+json", true),
        ("application/spdx+json", true),
        ("text/plain", true),
        ("application/vnd.oci.empty.v1+json", true),
        ("application", false),
        ("application/", false),
        ("/json", false),
        ("application/json; charset=utf-8", false),
        ("a b/c", false),
        ("application/vnd.example/v1", false),
        ("-app/json", false),
    ];
    for (mt, ok) in cases {
        assert_eq!(is_valid_media_type(mt), ok, "{mt}");
    }
}
