//! What the pages show of a manifest and of an image's config, read from the stored JSON. Both were
//! pushed by clients: every field is optional here and anything of an unexpected shape is left out, never
//! an error (the registry validated what it relies on when the manifest was pushed).

use oci::Digest;
use serde_json::Value;

/// A manifest or index, as the pages show it.
#[derive(Debug, Default)]
pub struct ManifestView {
    pub media_type: String,
    pub artifact_type: Option<String>,
    pub config: Option<Desc>,
    pub layers: Vec<Desc>,
    /// An index's manifests.
    pub children: Vec<Desc>,
    pub subject: Option<Digest>,
    pub annotations: Vec<(String, String)>,
}

/// A descriptor, with an index entry's platform.
#[derive(Debug, Clone)]
pub struct Desc {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    pub artifact_type: Option<String>,
    /// `os/architecture[/variant]`, for an index entry that names one.
    pub platform: Option<String>,
}

impl ManifestView {
    /// Reads `payload`; `media_type` is what it was stored with.
    pub fn parse(payload: &[u8], media_type: &str) -> ManifestView {
        let Ok(Value::Object(obj)) = serde_json::from_slice::<Value>(payload) else {
            return ManifestView {
                media_type: media_type.to_string(),
                ..ManifestView::default()
            };
        };
        let list = |key: &str| -> Vec<Desc> {
            obj.get(key)
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(desc).collect())
                .unwrap_or_default()
        };
        ManifestView {
            media_type: media_type.to_string(),
            artifact_type: string(obj.get("artifactType")),
            config: obj.get("config").and_then(desc),
            layers: list("layers"),
            children: list("manifests"),
            subject: obj.get("subject").and_then(desc).map(|d| d.digest),
            annotations: string_map(obj.get("annotations")),
        }
    }

    pub fn is_index(&self) -> bool {
        self.config.is_none() && (!self.children.is_empty() || self.media_type.contains("index"))
            || self.media_type.contains("manifest.list")
    }

    /// The bytes of an image's config and layers (what pulling it downloads, besides the manifest).
    pub fn image_bytes(&self) -> u64 {
        self.config.iter().chain(&self.layers).map(|d| d.size).sum()
    }
}

fn desc(v: &Value) -> Option<Desc> {
    let obj = v.as_object()?;
    let platform = obj.get("platform").and_then(Value::as_object).map(|p| {
        let part = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or("");
        let mut s = format!("{}/{}", part("os"), part("architecture"));
        if !part("variant").is_empty() {
            s.push('/');
            s.push_str(part("variant"));
        }
        s
    });
    Some(Desc {
        media_type: string(obj.get("mediaType")).unwrap_or_default(),
        digest: obj.get("digest")?.as_str()?.parse().ok()?,
        size: obj.get("size").and_then(Value::as_u64).unwrap_or(0),
        artifact_type: string(obj.get("artifactType")),
        platform,
    })
}

fn string(v: Option<&Value>) -> Option<String> {
    v.and_then(Value::as_str).map(str::to_string)
}

/// A JSON object of strings as pairs, in the document's order; other values are left out.
pub fn string_map(v: Option<&Value>) -> Vec<(String, String)> {
    v.and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a config of this media type is an image's config, which the page reads.
pub fn is_image_config(media_type: &str) -> bool {
    matches!(
        media_type,
        "application/vnd.oci.image.config.v1+json"
            | "application/vnd.docker.container.image.v1+json"
    )
}

/// An image's config, as the page shows it.
#[derive(Debug, Default)]
pub struct ConfigView {
    pub platform: Option<String>,
    pub created: Option<String>,
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    pub env: Vec<String>,
    pub labels: Vec<(String, String)>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
    pub exposed_ports: Vec<String>,
    /// `created_by` of each step, and whether it made a layer.
    pub history: Vec<(String, bool)>,
}

impl ConfigView {
    pub fn parse(bytes: &[u8]) -> Option<ConfigView> {
        let Value::Object(obj) = serde_json::from_slice::<Value>(bytes).ok()? else {
            return None;
        };
        let strings = |v: Option<&Value>| -> Option<Vec<String>> {
            Some(
                v?.as_array()?
                    .iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect(),
            )
        };
        let config = obj.get("config").and_then(Value::as_object);
        let field = |k: &str| config.and_then(|c| c.get(k));
        let platform = match (string(obj.get("os")), string(obj.get("architecture"))) {
            (Some(os), Some(arch)) => Some(match string(obj.get("variant")) {
                Some(v) => format!("{os}/{arch}/{v}"),
                None => format!("{os}/{arch}"),
            }),
            _ => None,
        };
        Some(ConfigView {
            platform,
            created: string(obj.get("created")),
            entrypoint: strings(field("Entrypoint")),
            cmd: strings(field("Cmd")),
            env: strings(field("Env")).unwrap_or_default(),
            labels: string_map(field("Labels")),
            working_dir: string(field("WorkingDir")).filter(|s| !s.is_empty()),
            user: string(field("User")).filter(|s| !s.is_empty()),
            exposed_ports: field("ExposedPorts")
                .and_then(Value::as_object)
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default(),
            history: obj
                .get("history")
                .and_then(Value::as_array)
                .map(|h| {
                    h.iter()
                        .map(|step| {
                            let by = string(step.get("created_by"))
                                .or_else(|| string(step.get("comment")))
                                .unwrap_or_default();
                            let empty = step
                                .get("empty_layer")
                                .and_then(Value::as_bool)
                                .unwrap_or(false);
                            (by, !empty)
                        })
                        .collect()
                })
                .unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn an_index_names_its_platforms() {
        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json",
            "manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{D}","size":7,
            "platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}}],
            "annotations":{{"a":"<b>","n":1}}}}"#
        );
        let v = ManifestView::parse(index.as_bytes(), "application/vnd.oci.image.index.v1+json");
        assert!(v.is_index());
        assert_eq!(v.children[0].platform.as_deref(), Some("linux/arm64/v8"));
        assert_eq!(v.annotations, [("a".to_string(), "<b>".to_string())]);
    }

    #[test]
    fn odd_shapes_are_left_out() {
        let v = ManifestView::parse(b"[1]", "x");
        assert!(v.layers.is_empty() && v.config.is_none());
        let c = ConfigView::parse(
            br#"{"config":{"Env":["A=1",2],"Labels":{"k":"v","n":3},"Entrypoint":null}}"#,
        )
        .unwrap();
        assert_eq!(c.env, ["A=1"]);
        assert_eq!(c.labels, [("k".to_string(), "v".to_string())]);
        assert_eq!(c.entrypoint, None);
    }
}
