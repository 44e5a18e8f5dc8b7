//! `oci::manifest::Manifest::parse`: a pushed manifest or index, with one of the Content-Types clients
//! send (the first byte of the input picks it; the rest is the body).
//!
//! Checked on every input: no panic, and the same answer twice. On an accepted one: the kind agrees with
//! the media type and with the fields present (an image has a config and no children, an index the
//! reverse: the CVE-2021-41190 ambiguity), every media type is one the spec's grammar allows, every
//! descriptor's digest prints back to text that parses to it, sizes fit an i64, the annotations are a
//! JSON object of strings, and the blobs required are the config and the layers that are not foreign.

#![no_main]

use libfuzzer_sys::fuzz_target;
use oci::manifest::{Descriptor, Manifest, ManifestKind, is_valid_media_type};
use oci::media_type;

const CONTENT_TYPES: &[Option<&str>] = &[
    None,
    Some("application/vnd.oci.image.manifest.v1+json"),
    Some("application/vnd.oci.image.index.v1+json"),
    Some("application/vnd.docker.distribution.manifest.v2+json"),
    Some("application/vnd.docker.distribution.manifest.list.v2+json"),
    Some("application/vnd.docker.distribution.manifest.v1+prettyjws"),
    Some("application/json"),
    Some("application/vnd.oci.image.manifest.v1+json; charset=utf-8"),
    Some("APPLICATION/VND.OCI.IMAGE.INDEX.V1+JSON"),
    Some("text/plain"),
    Some(""),
    Some("application/x-unknown"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let content_type = CONTENT_TYPES[usize::from(pick) % CONTENT_TYPES.len()];
    let parsed = Manifest::parse(body, content_type);
    assert_eq!(
        parsed,
        Manifest::parse(body, content_type),
        "not deterministic"
    );
    let Ok(m) = parsed else {
        return;
    };
    match m.kind {
        ManifestKind::Image => {
            assert!(media_type::is_image_manifest(&m.media_type), "{m:?}");
            assert!(m.config.is_some() && m.manifests.is_empty(), "{m:?}");
            // Its own, or its config's media type (what the referrers API reports).
            assert!(m.artifact_type.is_some(), "{m:?}");
        }
        ManifestKind::Index => {
            assert!(media_type::is_index(&m.media_type), "{m:?}");
            assert!(m.config.is_none() && m.layers.is_empty(), "{m:?}");
        }
    }
    let descriptors = m
        .config
        .iter()
        .chain(&m.layers)
        .chain(&m.manifests)
        .chain(&m.subject);
    for d in descriptors {
        check_descriptor(d);
    }
    if let Some(a) = &m.artifact_type {
        assert!(is_valid_media_type(a), "{a:?}");
    }
    if let Some(text) = &m.annotations {
        let value: serde_json::Value = serde_json::from_str(text).expect("annotations are JSON");
        let map = value.as_object().expect("annotations are an object");
        assert!(map.values().all(serde_json::Value::is_string), "{text}");
    }
    let required: Vec<&Descriptor> = m.required_blobs().collect();
    let foreign = m.foreign_layers().count();
    assert_eq!(
        required.len() + foreign,
        usize::from(m.config.is_some()) + m.layers.len()
    );
    assert!(required.iter().all(|d| !d.is_foreign()));
    assert_eq!(m.subject_digest(), m.subject.as_ref().map(|s| &s.digest));
});

fn check_descriptor(d: &Descriptor) {
    assert!(is_valid_media_type(&d.media_type), "{d:?}");
    let text = d.digest.to_string();
    assert_eq!(text.parse::<oci::Digest>().as_ref(), Ok(&d.digest));
    assert!(d.size <= i64::MAX as u64, "{d:?}");
    assert!(d.urls.iter().all(|u| !u.is_empty()), "{d:?}");
    if let Some(a) = &d.artifact_type {
        assert!(is_valid_media_type(a), "{d:?}");
    }
}
