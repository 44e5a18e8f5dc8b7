//! The events of registry:2's notifications, in its JSON shape (distribution's `notifications/event.go`),
//! so that receivers written for registry:2 read berth's unchanged: an envelope
//! `{"events":[...]}` of `Content-Type: application/vnd.docker.distribution.events.v1+json`, each event
//! with `id`, `timestamp`, `action`, `target`, `request`, `actor` and `source`. Empty fields are left
//! out, as Go's `omitempty` does (a delete's target has only `repository` and `digest` or `tag`).

use std::time::SystemTime;

use serde::Serialize;

/// The media type of the envelope.
pub const ENVELOPE_MEDIA_TYPE: &str = "application/vnd.docker.distribution.events.v1+json";

/// What happened: registry:2's four actions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Push,
    Pull,
    Mount,
    Delete,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Push => "push",
            Action::Pull => "pull",
            Action::Mount => "mount",
            Action::Delete => "delete",
        }
    }
}

/// One event, serialised as one element of the envelope's `events`.
#[derive(Clone, Debug, Serialize)]
pub struct Event {
    pub id: String,
    /// RFC 3339 with nanoseconds, UTC, as Go's `time.Time` marshals.
    pub timestamp: String,
    pub action: &'static str,
    pub target: Target,
    pub request: RequestRecord,
    pub actor: ActorRecord,
    pub source: SourceRecord,
}

/// What the event is about.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Target {
    #[serde(rename = "mediaType", skip_serializing_if = "String::is_empty")]
    pub media_type: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub size: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub digest: String,
    /// The same as `size` (registry:2 keeps both for old receivers).
    #[serde(skip_serializing_if = "is_zero")]
    pub length: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub repository: String,
    /// A mount's source repository, when the client named one.
    #[serde(rename = "fromRepository", skip_serializing_if = "String::is_empty")]
    pub from_repository: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub url: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub tag: String,
    /// The manifest's references (`notifications.events.includereferences`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<Reference>,
}

/// A descriptor among a manifest's references.
#[derive(Clone, Debug, Serialize)]
pub struct Reference {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub size: u64,
    pub digest: String,
}

/// The request that caused the event (registry:2's `RequestRecord`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct RequestRecord {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub addr: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub host: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub method: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub useragent: String,
}

/// Who made the request: the authenticated user's name, if any.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ActorRecord {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
}

/// Which registry instance wrote the event.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SourceRecord {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub addr: String,
    #[serde(rename = "instanceID", skip_serializing_if = "String::is_empty")]
    pub instance_id: String,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// How an endpoint wants its events (berth's `format` of an endpoint).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// registry:2's envelope, [`ENVELOPE_MEDIA_TYPE`].
    #[default]
    Registry2,
    /// CloudEvents 1.0 in the JSON batch format (`application/cloudevents-batch+json`): one
    /// structured CloudEvent per event, the registry:2 event as its `data`.
    CloudEvents,
}

/// The media type of a CloudEvents JSON batch.
pub const CLOUDEVENTS_BATCH_MEDIA_TYPE: &str = "application/cloudevents-batch+json";

/// The prefix of the CloudEvents `type`: `berth.registry.push`, `.pull`, `.mount`, `.delete`.
pub const CLOUDEVENTS_TYPE_PREFIX: &str = "berth.registry.";

/// The body of a post of `events` (registry:2 events as the outbox keeps them) in `format`, and its
/// media type.
pub fn body<'a>(
    format: Format,
    events: impl IntoIterator<Item = &'a str>,
) -> (&'static str, String) {
    match format {
        Format::Registry2 => (ENVELOPE_MEDIA_TYPE, envelope(events)),
        Format::CloudEvents => {
            let batch: Vec<serde_json::Value> = events.into_iter().map(cloud_event).collect();
            let body = serde_json::Value::Array(batch).to_string();
            (CLOUDEVENTS_BATCH_MEDIA_TYPE, body)
        }
    }
}

/// A registry:2 event as a structured CloudEvent: `id` and `time` its own, `source` the instance
/// (`//host:port`, a URI reference), `type` by action, `subject` the repository, `data` the event.
fn cloud_event(event: &str) -> serde_json::Value {
    let data: serde_json::Value =
        serde_json::from_str(event).unwrap_or(serde_json::Value::String(event.to_string()));
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    serde_json::json!({
        "specversion": "1.0",
        "id": text(&data["id"]),
        "source": format!("//{}", text(&data["source"]["addr"])),
        "type": format!("{CLOUDEVENTS_TYPE_PREFIX}{}", text(&data["action"])),
        "time": text(&data["timestamp"]),
        "subject": text(&data["target"]["repository"]),
        "datacontenttype": "application/json",
        "data": data,
    })
}

/// The envelope around already serialised events (each a JSON object, as the outbox keeps them).
pub fn envelope<'a>(events: impl IntoIterator<Item = &'a str>) -> String {
    let mut body = String::from("{\"events\":[");
    for (i, e) in events.into_iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(e);
    }
    body.push_str("]}");
    body
}

/// `at` as Go marshals a UTC `time.Time`: `2006-01-02T15:04:05.999999999Z`, trailing zeros of the
/// fraction dropped.
pub fn rfc3339(at: SystemTime) -> String {
    let since = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    // Past year 9999 (a clock that far off): the epoch, rather than a date Go could not write either.
    let t = i64::try_from(since.as_secs())
        .ok()
        .and_then(|s| ::time::OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or(::time::OffsetDateTime::UNIX_EPOCH);
    let mut out = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let nanos = since.subsec_nanos();
    if nanos > 0 {
        let fraction = format!("{nanos:09}");
        out.push('.');
        out.push_str(fraction.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn timestamps_are_go_rfc3339_in_utc() {
        let at = |s, n| SystemTime::UNIX_EPOCH + Duration::new(s, n);
        assert_eq!(rfc3339(at(0, 0)), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339(at(1_700_000_000, 123_000_000)),
            "2023-11-14T22:13:20.123Z"
        );
        assert_eq!(
            rfc3339(at(951_782_400, 1)),
            "2000-02-29T00:00:00.000000001Z"
        );
        assert_eq!(rfc3339(at(4_107_542_399, 0)), "2100-02-28T23:59:59Z");
    }

    #[test]
    fn a_push_event_has_registry2s_fields_and_a_delete_only_what_it_knows() {
        let push = Event {
            id: "e1".into(),
            timestamp: "2023-11-14T22:13:20Z".into(),
            action: Action::Push.as_str(),
            target: Target {
                media_type: "application/vnd.oci.image.manifest.v1+json".into(),
                size: 7,
                digest: "sha256:ab".into(),
                length: 7,
                repository: "a/b".into(),
                url: "http://r/v2/a/b/manifests/sha256:ab".into(),
                tag: "v1".into(),
                ..Target::default()
            },
            request: RequestRecord {
                id: "r1".into(),
                addr: "10.0.0.1".into(),
                host: "r".into(),
                method: "PUT".into(),
                useragent: "skopeo".into(),
            },
            actor: ActorRecord {
                name: "alice".into(),
            },
            source: SourceRecord {
                addr: "host:5000".into(),
                instance_id: "i1".into(),
            },
        };
        let json: serde_json::Value = serde_json::to_value(&push).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "id": "e1", "timestamp": "2023-11-14T22:13:20Z", "action": "push",
                "target": {
                    "mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 7,
                    "digest": "sha256:ab", "length": 7, "repository": "a/b",
                    "url": "http://r/v2/a/b/manifests/sha256:ab", "tag": "v1"
                },
                "request": {"id": "r1", "addr": "10.0.0.1", "host": "r", "method": "PUT", "useragent": "skopeo"},
                "actor": {"name": "alice"},
                "source": {"addr": "host:5000", "instanceID": "i1"}
            })
        );
        let delete = Event {
            action: Action::Delete.as_str(),
            target: Target {
                repository: "a/b".into(),
                tag: "v1".into(),
                ..Target::default()
            },
            actor: ActorRecord::default(),
            ..push
        };
        let json = serde_json::to_value(&delete).unwrap();
        assert_eq!(
            json["target"],
            serde_json::json!({"repository": "a/b", "tag": "v1"})
        );
        assert_eq!(json["actor"], serde_json::json!({}));
    }

    #[test]
    fn a_cloudevents_batch_wraps_each_event_as_its_data() {
        let event = r#"{"id":"e1","timestamp":"2023-11-14T22:13:20Z","action":"push","target":{"repository":"a/b","digest":"sha256:ab"},"source":{"addr":"host:5000","instanceID":"i"}}"#;
        let (media_type, text) = body(Format::CloudEvents, [event, event]);
        assert_eq!(media_type, "application/cloudevents-batch+json");
        let batch: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(batch.as_array().unwrap().len(), 2);
        assert_eq!(
            batch[0],
            serde_json::json!({
                "specversion": "1.0", "id": "e1", "source": "//host:5000",
                "type": "berth.registry.push", "time": "2023-11-14T22:13:20Z", "subject": "a/b",
                "datacontenttype": "application/json",
                "data": serde_json::from_str::<serde_json::Value>(event).unwrap()
            })
        );
        let (media_type, text) = body(Format::Registry2, [event]);
        assert_eq!(media_type, ENVELOPE_MEDIA_TYPE);
        assert_eq!(text, format!("{{\"events\":[{event}]}}"));
    }

    #[test]
    fn the_envelope_lists_the_events_as_they_are() {
        assert_eq!(envelope([]), r#"{"events":[]}"#);
        assert_eq!(
            envelope([r#"{"id":"1"}"#, r#"{"id":"2"}"#]),
            r#"{"events":[{"id":"1"},{"id":"2"}]}"#
        );
    }
}
