//! Content descriptors (`mediaType`, `digest`, `size`, ...), the links every manifest is made of.
//!
//! A descriptor is what the registry checks a manifest's references by, so each one is validated on its
//! own with an error that names its place in the document (`layers[2].digest`).

use serde_json::{Map, Value};

use super::{ManifestError, check_string_map, clip, json_type, optional};
use crate::Digest;

/// A validated descriptor. Only the fields the registry acts on are kept; the manifest itself is stored
/// byte for byte, so nothing else is lost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    /// Where the content may be fetched from instead of the registry (Docker foreign layers).
    pub urls: Vec<String>,
    /// The descriptor's own `artifactType` (on index entries and subjects), if any.
    pub artifact_type: Option<String>,
    /// `platform` (index entries): what an index's child runs on, when the index says.
    pub platform: Option<Platform>,
}

/// The `os` and `architecture` of a descriptor's `platform` (empty when the object lacks them or they are
/// not strings: nothing berth decides on needs more).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
}

impl Descriptor {
    /// Whether the content lives outside the registry (it has `urls`): the registry neither holds nor
    /// requires it.
    pub fn is_foreign(&self) -> bool {
        !self.urls.is_empty()
    }
}

/// Parses the descriptor `v`, found at `path` in the manifest.
pub(super) fn parse_descriptor(v: &Value, path: &str) -> Result<Descriptor, ManifestError> {
    let Value::Object(obj) = v else {
        return Err(ManifestError::Invalid {
            field: path.into(),
            reason: format!("must be a descriptor object, not {}", json_type(v)),
        });
    };
    let media_type = match optional(obj, "mediaType") {
        None => return Err(ManifestError::Missing(format!("{path}.mediaType"))),
        Some(Value::String(s)) if is_valid_media_type(s) => s.clone(),
        Some(other) => return Err(bad_media_type(&format!("{path}.mediaType"), other)),
    };
    let digest = match optional(obj, "digest") {
        None => return Err(ManifestError::Missing(format!("{path}.digest"))),
        Some(Value::String(s)) => {
            s.parse::<Digest>()
                .map_err(|e| ManifestError::InvalidDigest {
                    field: format!("{path}.digest"),
                    reason: e.to_string(),
                })?
        }
        Some(other) => {
            return Err(ManifestError::InvalidDigest {
                field: format!("{path}.digest"),
                reason: format!("must be a string, not {}", json_type(other)),
            });
        }
    };
    let size = parse_size(obj, path)?;
    let urls = parse_urls(obj, path)?;
    let artifact_type = optional_media_type_at(obj, "artifactType", path)?;
    if let Some(a) = optional(obj, "annotations") {
        check_string_map(a, &format!("{path}.annotations"))?;
    }
    let platform = match optional(obj, "platform") {
        None => None,
        Some(Value::Object(p)) => {
            let text = |key: &str| match p.get(key) {
                Some(Value::String(s)) => s.clone(),
                _ => String::new(),
            };
            Some(Platform {
                os: text("os"),
                architecture: text("architecture"),
            })
        }
        Some(p) => {
            return Err(ManifestError::Invalid {
                field: format!("{path}.platform"),
                reason: format!("must be an object, not {}", json_type(p)),
            });
        }
    };
    Ok(Descriptor {
        media_type,
        digest,
        size,
        urls,
        artifact_type,
        platform,
    })
}

/// `size`: required, an integer from 0 to i64::MAX (what every client and database can represent).
fn parse_size(obj: &Map<String, Value>, path: &str) -> Result<u64, ManifestError> {
    let field = format!("{path}.size");
    let invalid = |reason: &str| ManifestError::InvalidSize {
        field: field.clone(),
        reason: reason.into(),
    };
    match optional(obj, "size") {
        None => Err(ManifestError::Missing(field.clone())),
        Some(Value::Number(n)) => match (n.as_u64(), n.as_i64()) {
            (Some(s), _) if s <= i64::MAX as u64 => Ok(s),
            (Some(_), _) => Err(invalid("too large")),
            (None, Some(_)) => Err(invalid("must not be negative")),
            (None, None) if n.as_f64().is_some_and(|f| f < 0.0) => {
                Err(invalid("must not be negative"))
            }
            (None, None) => Err(invalid("must be a whole number")),
        },
        Some(other) => Err(invalid(&format!(
            "must be a number, not {}",
            json_type(other)
        ))),
    }
}

/// `urls`: optional, an array of non-empty strings.
fn parse_urls(obj: &Map<String, Value>, path: &str) -> Result<Vec<String>, ManifestError> {
    let field = format!("{path}.urls");
    match optional(obj, "urls") {
        None => Ok(Vec::new()),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, u)| match u {
                Value::String(s) if !s.is_empty() => Ok(s.clone()),
                other => Err(ManifestError::Invalid {
                    field: format!("{field}[{i}]"),
                    reason: format!("must be a non-empty string, not {}", describe(other)),
                }),
            })
            .collect(),
        Some(other) => Err(ManifestError::Invalid {
            field,
            reason: format!("must be an array, not {}", json_type(other)),
        }),
    }
}

/// An optional media-type field `key` of `obj` (top-level `artifactType`), validated.
pub(super) fn optional_media_type(
    obj: &Map<String, Value>,
    key: &str,
) -> Result<Option<String>, ManifestError> {
    optional_media_type_at(obj, key, "")
}

/// As [`optional_media_type`], for a field inside the descriptor at `path` (empty for the top level).
fn optional_media_type_at(
    obj: &Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<String>, ManifestError> {
    let field = if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    };
    match optional(obj, key) {
        None => Ok(None),
        Some(Value::String(s)) if is_valid_media_type(s) => Ok(Some(s.clone())),
        Some(other) => Err(bad_media_type(&field, other)),
    }
}

fn bad_media_type(field: &str, v: &Value) -> ManifestError {
    ManifestError::Invalid {
        field: field.into(),
        reason: format!(
            "must be a media type such as type/subtype, not {}",
            describe(v)
        ),
    }
}

/// A value for an error message: strings quoted (clipped), other values by their JSON type.
fn describe(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{:?}", clip(s)),
        other => json_type(other).to_string(),
    }
}

/// RFC 6838 section 4.2: `type/subtype`, each 1 to 127 characters from `[A-Za-z0-9!#$&^_.+-]` starting
/// with a letter or digit. The image spec requires descriptor media types to follow it.
pub fn is_valid_media_type(mt: &str) -> bool {
    let name_ok = |s: &str| {
        let b = s.as_bytes();
        !b.is_empty()
            && b.len() <= 127
            && b[0].is_ascii_alphanumeric()
            && b.iter()
                .all(|&c| c.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&c))
    };
    match mt.split_once('/') {
        Some((t, s)) => name_ok(t) && name_ok(s),
        None => false,
    }
}
