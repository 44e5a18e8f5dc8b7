//! One line of the audit log: what happened ([`Entry`], said by the code that saw it) and who asked
//! from where ([`Asker`], the request's), serialised together by serde_json into one JSON object and a
//! newline.
//!
//! Every text a client chose (the repository, tag, user name, user agent, address from
//! `X-Forwarded-For`) goes through serde_json's string escaping: a quote, a backslash, a newline or any
//! other control character is escaped, so a value can neither end the line nor close its string and
//! forge a field or a record. The free texts a client fully controls (the user agent, a user name from
//! Basic credentials, the address) are cut to [`MAX_TEXT`] bytes, so that a line stays small (under
//! 2 KiB) whatever a client sends.

use serde::Serialize;

/// The most bytes kept of a user agent or a user name (cut at a character boundary).
pub const MAX_TEXT: usize = 256;

/// What was done or asked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// A manifest put (a push's last step: tag and digest).
    #[default]
    Push,
    /// A manifest, tag or blob deleted (`object` says which).
    Delete,
    /// A blob mounted from another repository (`from`).
    Mount,
    /// Credentials checked at `GET /v2/` (where `docker login`, `podman login` and `skopeo login`
    /// check them), or at the web interface's sign-in.
    Login,
    /// Only in refusals: a read (manifest, blob, tags, referrers) asked.
    Pull,
    /// Only in refusals: the catalog or the usage report asked.
    Catalog,
}

/// How it ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Done.
    #[default]
    Ok,
    /// Allowed, but the registry refused or could not do it (`status`, and the spec's code in `why`):
    /// an invalid manifest, an immutable tag, deletes disabled, nothing to delete.
    Failed,
    /// The caller is known but may not: 403 DENIED, or a token without the scope (401
    /// `insufficient_scope`).
    Denied,
    /// Credentials were presented and are wrong (401).
    Unauthorized,
}

/// What was deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Object {
    Manifest,
    Tag,
    Blob,
}

/// Which interface the request came through.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// The `/v2/` API.
    #[default]
    Api,
    /// The web interface (`/ui/`).
    Ui,
}

/// What the code that saw it says happened.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Entry {
    pub action: Action,
    pub outcome: Outcome,
    /// The HTTP status answered.
    pub status: u16,
    /// The authenticated user, or the one wrong credentials named; `None`: anonymous.
    pub user: Option<String>,
    pub repository: Option<String>,
    pub object: Option<Object>,
    pub tag: Option<String>,
    pub digest: Option<String>,
    /// A mount's source repository.
    pub from: Option<String>,
    /// Why it was refused or failed.
    pub why: Option<String>,
}

/// Who asked, from where: the request's part of every line (`registry::notify::Origin`'s request record).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Asker {
    /// The client's address: `X-Forwarded-For`'s first entry, else `X-Real-Ip`, else the peer.
    pub addr: String,
    pub request_id: String,
    pub method: String,
    pub user_agent: String,
    pub via: Via,
}

/// The line as written, fields in this order.
#[derive(Serialize)]
struct Line<'a> {
    time: &'a str,
    action: Action,
    outcome: Outcome,
    status: u16,
    user: Option<&'a str>,
    repository: Option<&'a str>,
    object: Option<Object>,
    tag: Option<&'a str>,
    digest: Option<&'a str>,
    from: Option<&'a str>,
    why: Option<&'a str>,
    addr: &'a str,
    method: &'a str,
    via: Via,
    request_id: &'a str,
    user_agent: &'a str,
}

/// The line of `entry` asked by `asker` at `time` (RFC 3339, UTC), newline included.
pub fn format(time: &str, asker: &Asker, entry: &Entry) -> Vec<u8> {
    let line = Line {
        time,
        action: entry.action,
        outcome: entry.outcome,
        status: entry.status,
        user: entry.user.as_deref().map(cut),
        repository: entry.repository.as_deref(),
        object: entry.object,
        tag: entry.tag.as_deref(),
        digest: entry.digest.as_deref(),
        from: entry.from.as_deref(),
        why: entry.why.as_deref().map(cut),
        addr: cut(&asker.addr),
        method: cut(&asker.method),
        via: asker.via,
        request_id: &asker.request_id,
        user_agent: cut(&asker.user_agent),
    };
    // Strings, numbers and unit variants only: serialising cannot fail.
    let mut out = serde_json::to_vec(&line).unwrap_or_default();
    out.push(b'\n');
    out
}

/// `s` cut to [`MAX_TEXT`] bytes at a character boundary.
fn cut(s: &str) -> &str {
    if s.len() <= MAX_TEXT {
        return s;
    }
    let mut end = MAX_TEXT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn asker(user_agent: &str) -> Asker {
        Asker {
            addr: "10.1.2.3".into(),
            request_id: "0123456789abcdef0123456789abcdef".into(),
            method: "PUT".into(),
            user_agent: user_agent.into(),
            via: Via::Api,
        }
    }

    fn one_line(bytes: &[u8]) -> Value {
        let text = std::str::from_utf8(bytes).unwrap();
        assert!(text.ends_with('\n'), "{text:?}");
        let body = &text[..text.len() - 1];
        assert!(!body.contains('\n') && !body.contains('\r'), "{text:?}");
        assert!(
            !body.chars().any(char::is_control),
            "a raw control character in {text:?}"
        );
        serde_json::from_str(body).unwrap()
    }

    #[test]
    fn a_push_is_one_json_object_with_every_field() {
        let entry = Entry {
            action: Action::Push,
            outcome: Outcome::Ok,
            status: 201,
            user: Some("alice".into()),
            repository: Some("team/app".into()),
            tag: Some("v1".into()),
            digest: Some("sha256:abc".into()),
            ..Entry::default()
        };
        let v = one_line(&format(
            "2026-01-02T03:04:05.5Z",
            &asker("skopeo/1.9"),
            &entry,
        ));
        assert_eq!(
            v,
            serde_json::json!({
                "time": "2026-01-02T03:04:05.5Z", "action": "push", "outcome": "ok", "status": 201,
                "user": "alice", "repository": "team/app", "object": null, "tag": "v1",
                "digest": "sha256:abc", "from": null, "why": null, "addr": "10.1.2.3",
                "method": "PUT", "via": "api",
                "request_id": "0123456789abcdef0123456789abcdef", "user_agent": "skopeo/1.9"
            })
        );
        // Anonymous is null, not empty.
        let anon = one_line(&format("t", &asker(""), &Entry::default()));
        assert_eq!(anon["user"], Value::Null);
    }

    #[test]
    fn what_a_client_chose_cannot_break_the_line_or_forge_a_field() {
        let evil = "v1\"\n{\"action\":\"login\",\"user\":\"root\"}\r\u{0}\u{1b}[31m</script>\\";
        let entry = Entry {
            action: Action::Delete,
            outcome: Outcome::Denied,
            status: 403,
            user: Some(evil.into()),
            repository: Some(evil.into()),
            tag: Some(evil.into()),
            why: Some(evil.into()),
            ..Entry::default()
        };
        let mut who = asker(evil);
        who.addr = evil.into();
        let v = one_line(&format("t", &who, &entry));
        // Every value reads back exactly as sent, and no field was added or changed.
        for key in ["user", "repository", "tag", "why", "user_agent", "addr"] {
            assert_eq!(v[key], evil, "{key}");
        }
        assert_eq!(v["action"], "delete");
        assert_eq!(v.as_object().unwrap().len(), 16);
    }

    #[test]
    fn long_client_texts_are_cut_at_a_character_boundary() {
        let agent = "é".repeat(MAX_TEXT);
        let v = one_line(&format("t", &asker(&agent), &Entry::default()));
        let kept = v["user_agent"].as_str().unwrap();
        assert!(
            kept.len() <= MAX_TEXT && kept.len() >= MAX_TEXT - 1,
            "{}",
            kept.len()
        );
        assert!(agent.starts_with(kept));
    }
}
