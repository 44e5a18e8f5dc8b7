//! Parsing and validation of pushed manifests: OCI image manifests and indexes, Docker schema2 manifests
//! and manifest lists, and OCI 1.1 artifacts (`artifactType`, `subject`, the empty descriptor).
//!
//! The registry stores a manifest byte for byte, so nothing here re-serialises. [`Manifest::parse`] reads
//! the JSON only to decide whether to accept it and to pull out what the registry must check (the blobs and
//! child manifests it references) and what it indexes (subject, artifact type and annotations, for the
//! referrers API).
//!
//! The checks follow the image spec and registry:2: what would make a manifest unusable or ambiguous is
//! refused (wrong schema, wrong or conflicting media type, malformed descriptors, an image manifest that
//! also carries `manifests`, an index that also carries `config`/`layers`: the ambiguity behind
//! CVE-2021-41190); what clients are known to emit loosely (`"layers": null`, no `mediaType` field) is
//! accepted.

mod descriptor;
#[cfg(test)]
mod tests;

use serde_json::{Map, Value};

use crate::Digest;
use crate::media_type::{self, OCI_INDEX, OCI_MANIFEST};

pub use descriptor::{Descriptor, Platform, is_valid_media_type};
use descriptor::{optional_media_type, parse_descriptor};

/// Whether a manifest describes one image (config + layers) or lists other manifests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ManifestKind {
    /// OCI image manifest or Docker schema2 manifest.
    Image,
    /// OCI index or Docker manifest list.
    Index,
}

/// What the registry needs to know about a valid manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    pub kind: ManifestKind,
    /// The `mediaType` field, else the Content-Type it was pushed with, else inferred from its fields.
    pub media_type: String,
    /// The config descriptor (image manifests only).
    pub config: Option<Descriptor>,
    /// Layer descriptors (image manifests only), in order.
    pub layers: Vec<Descriptor>,
    /// Child manifest descriptors (indexes only), in order.
    pub manifests: Vec<Descriptor>,
    /// The `subject` descriptor: the manifest this one refers to (signatures, SBOMs, attestations).
    pub subject: Option<Descriptor>,
    /// `artifactType`, or for an image manifest without one its config's media type, which is what the
    /// referrers API reports for it.
    pub artifact_type: Option<String>,
    /// The top-level `annotations` object as compact JSON text, when present.
    pub annotations: Option<String>,
}

/// Why a manifest was refused. Messages say what is wrong and where, for the client's error body.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest is not valid JSON: {0}")]
    NotJson(String),
    #[error("manifest must be a JSON object, not {0}")]
    NotObject(&'static str),
    #[error(
        "Docker schema1 manifests are not supported ({0}); push the image as Docker schema2 or OCI"
    )]
    Schema1(String),
    #[error("schemaVersion must be 2, found {0}")]
    SchemaVersion(String),
    #[error("unsupported manifest media type {0:?}")]
    UnknownMediaType(String),
    #[error("mediaType {field:?} disagrees with the Content-Type {content_type:?}")]
    MediaTypeMismatch { field: String, content_type: String },
    #[error(
        "cannot tell the manifest's type: no mediaType field, no specific Content-Type, and neither \
         config nor manifests"
    )]
    UnknownKind,
    #[error("{0} is required but missing")]
    Missing(String),
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("{field}: invalid digest: {reason}")]
    InvalidDigest { field: String, reason: String },
    #[error("{field}: invalid size: {reason}")]
    InvalidSize { field: String, reason: String },
}

impl Manifest {
    /// Parses and validates `payload`, pushed with the Content-Type `content_type` (parameters such as
    /// `charset` are ignored; a generic type such as `application/json` counts as no type).
    pub fn parse(payload: &[u8], content_type: Option<&str>) -> Result<Manifest, ManifestError> {
        let value: Value = serde_json::from_slice(payload).map_err(|e| {
            // serde_json's messages quote no input, so they are safe to echo; clip them anyway.
            ManifestError::NotJson(e.to_string().chars().take(200).collect())
        })?;
        let obj = match &value {
            Value::Object(o) => o,
            other => return Err(ManifestError::NotObject(json_type(other))),
        };
        let declared = content_type.map(essence).filter(|ct| !is_generic(ct));
        let media_type = resolve_media_type(obj, declared.as_deref())?;
        check_schema_version(obj)?;
        let kind = if media_type::is_image_manifest(&media_type) {
            ManifestKind::Image
        } else if media_type::is_index(&media_type) {
            ManifestKind::Index
        } else {
            return Err(ManifestError::UnknownMediaType(clip(&media_type)));
        };

        let mut manifest = Manifest {
            kind,
            media_type,
            config: None,
            layers: Vec::new(),
            manifests: Vec::new(),
            subject: optional(obj, "subject")
                .map(|v| parse_descriptor(v, "subject"))
                .transpose()?,
            artifact_type: optional_media_type(obj, "artifactType")?,
            annotations: annotations(obj)?,
        };
        match kind {
            ManifestKind::Image => {
                forbid(obj, "manifests", "an image manifest")?;
                let config = optional(obj, "config")
                    .ok_or_else(|| ManifestError::Missing("config".into()))?;
                let config = parse_descriptor(config, "config")?;
                manifest.layers = descriptor_array(obj, "layers", false)?;
                if manifest.artifact_type.is_none() {
                    manifest.artifact_type = Some(config.media_type.clone());
                }
                manifest.config = Some(config);
            }
            ManifestKind::Index => {
                forbid(obj, "config", "an index")?;
                forbid(obj, "layers", "an index")?;
                manifest.manifests = descriptor_array(obj, "manifests", true)?;
            }
        }
        Ok(manifest)
    }

    /// The digest of the manifest's subject, if it has one.
    pub fn subject_digest(&self) -> Option<&Digest> {
        self.subject.as_ref().map(|d| &d.digest)
    }

    /// Blobs that must be in the repository before this manifest is accepted: the config and every layer
    /// that is not foreign (see [`Descriptor::is_foreign`]).
    pub fn required_blobs(&self) -> impl Iterator<Item = &Descriptor> {
        self.config
            .iter()
            .chain(self.layers.iter().filter(|l| !l.is_foreign()))
    }

    /// Layers fetched from their `urls` rather than from the registry (Docker foreign layers): the
    /// registry does not hold them, so it must not require them.
    pub fn foreign_layers(&self) -> impl Iterator<Item = &Descriptor> {
        self.layers.iter().filter(|l| l.is_foreign())
    }
}

/// Decides the manifest's media type from its `mediaType` field and the Content-Type, refusing schema1
/// whichever of the two names it (before the schemaVersion check, so the message says why).
fn resolve_media_type(
    obj: &Map<String, Value>,
    declared: Option<&str>,
) -> Result<String, ManifestError> {
    if let Some(ct) = declared.filter(|ct| media_type::is_schema1(ct)) {
        return Err(ManifestError::Schema1(format!("Content-Type {ct}")));
    }
    let field = match optional(obj, "mediaType") {
        None => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(other) => {
            return Err(ManifestError::Invalid {
                field: "mediaType".into(),
                reason: format!("must be a string, not {}", json_type(other)),
            });
        }
    };
    if let Some(mt) = field.filter(|mt| media_type::is_schema1(mt)) {
        return Err(ManifestError::Schema1(format!("mediaType {mt}")));
    }
    if obj.get("schemaVersion").and_then(Value::as_i64) == Some(1) {
        return Err(ManifestError::Schema1("schemaVersion 1".into()));
    }
    match (field, declared) {
        (Some(f), Some(ct)) if f != ct => Err(ManifestError::MediaTypeMismatch {
            field: clip(f),
            content_type: clip(ct),
        }),
        (Some(f), _) => Ok(f.to_string()),
        (None, Some(ct)) => Ok(ct.to_string()),
        // Without either, the shape decides, as registry:2 does for `application/json` pushes.
        (None, None) if obj.contains_key("config") => Ok(OCI_MANIFEST.to_string()),
        (None, None) if obj.contains_key("manifests") => Ok(OCI_INDEX.to_string()),
        (None, None) => Err(ManifestError::UnknownKind),
    }
}

fn check_schema_version(obj: &Map<String, Value>) -> Result<(), ManifestError> {
    match obj.get("schemaVersion") {
        None => Err(ManifestError::SchemaVersion("none".into())),
        Some(v) if v.as_i64() == Some(2) => Ok(()),
        Some(v) => Err(ManifestError::SchemaVersion(clip(&v.to_string()))),
    }
}

/// The media type without parameters, lowercased (media types compare case-insensitively).
fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// Content-Types that say nothing about the manifest's kind: curl and generic HTTP clients send these.
fn is_generic(ct: &str) -> bool {
    matches!(
        ct,
        "" | "application/json" | "application/octet-stream" | "text/plain"
    )
}

/// A field's value, treating an explicit `null` as absent (Go encoders write nil fields as `null`).
fn optional<'a>(obj: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    obj.get(key).filter(|v| !v.is_null())
}

/// Refuses a field that belongs to the other kind of manifest: a document that is both would be read
/// differently by different clients.
fn forbid(obj: &Map<String, Value>, key: &str, what: &str) -> Result<(), ManifestError> {
    match optional(obj, key) {
        Some(_) => Err(ManifestError::Invalid {
            field: key.into(),
            reason: format!("{what} must not have this field"),
        }),
        None => Ok(()),
    }
}

/// An array of descriptors. `required`: a missing (or null) array is an error, else it is empty.
fn descriptor_array(
    obj: &Map<String, Value>,
    key: &str,
    required: bool,
) -> Result<Vec<Descriptor>, ManifestError> {
    match optional(obj, key) {
        None if required => Err(ManifestError::Missing(key.into())),
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| parse_descriptor(v, &format!("{key}[{i}]")))
            .collect(),
        Some(other) => Err(ManifestError::Invalid {
            field: key.into(),
            reason: format!("must be an array, not {}", json_type(other)),
        }),
    }
}

/// The top-level annotations as JSON text, after checking they map strings to strings.
fn annotations(obj: &Map<String, Value>) -> Result<Option<String>, ManifestError> {
    let Some(v) = optional(obj, "annotations") else {
        return Ok(None);
    };
    check_string_map(v, "annotations")?;
    Ok(Some(v.to_string()))
}

/// Checks that `v` is an object whose values are all strings (annotations, in manifests and descriptors).
fn check_string_map(v: &Value, field: &str) -> Result<(), ManifestError> {
    let Value::Object(map) = v else {
        return Err(ManifestError::Invalid {
            field: field.into(),
            reason: format!("must be an object, not {}", json_type(v)),
        });
    };
    match map.iter().find(|(_, v)| !v.is_string()) {
        Some((k, v)) => Err(ManifestError::Invalid {
            field: format!("{field}.{}", clip(k)),
            reason: format!("must be a string, not {}", json_type(v)),
        }),
        None => Ok(()),
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Client-supplied text echoed in an error, clipped so a hostile manifest cannot bloat the response.
fn clip(s: &str) -> String {
    s.chars().take(200).collect()
}
