//! The `WWW-Authenticate` values berth answers a 401 with.
//!
//! - htpasswd: `Basic realm="<realm>"`, as registry:2.
//! - token: `Bearer realm="<url>",service="<service>",scope="<scope> <scope>"`, with
//!   `,error="insufficient_scope"` when the token was valid but did not grant enough (Docker's token
//!   specification and RFC 6750). The scope names what the request at hand needs, so that the client asks
//!   the token service for exactly that; several scopes (a mount's target and source) are separated by
//!   spaces in the one parameter, as registry:2 sends them.

use crate::Scope;

/// A Basic challenge.
pub fn basic(realm: &str) -> String {
    format!("Basic realm={}", quote(realm))
}

/// A Bearer challenge for `scopes` (none for `GET /v2/`).
pub fn bearer(realm: &str, service: &str, scopes: &[Scope], insufficient: bool) -> String {
    let mut out = format!("Bearer realm={},service={}", quote(realm), quote(service));
    if !scopes.is_empty() {
        let joined: Vec<String> = scopes.iter().map(Scope::to_string).collect();
        out.push_str(",scope=");
        out.push_str(&quote(&joined.join(" ")));
    }
    if insufficient {
        out.push_str(",error=\"insufficient_scope\"");
    }
    out
}

/// An RFC 9110 quoted string: `"` and `\` escaped; control characters (which no header may carry) dropped.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars().filter(|c| !c.is_control()) {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Action;

    #[test]
    fn basic_names_the_realm() {
        assert_eq!(basic("Registry Realm"), r#"Basic realm="Registry Realm""#);
        assert_eq!(basic(r#"a"b\c"#), r#"Basic realm="a\"b\\c""#);
        assert_eq!(basic("a\r\nX-Evil: 1"), r#"Basic realm="aX-Evil: 1""#);
    }

    #[test]
    fn bearer_carries_scopes_and_error() {
        assert_eq!(
            bearer("https://auth.example/token", "registry.example", &[], false),
            r#"Bearer realm="https://auth.example/token",service="registry.example""#
        );
        let scopes = [
            Scope::repository("team/app", &[Action::Pull, Action::Push]),
            Scope::repository("base/img", &[Action::Pull]),
        ];
        assert_eq!(
            bearer("https://a/t", "reg", &scopes, true),
            r#"Bearer realm="https://a/t",service="reg",scope="repository:team/app:pull,push repository:base/img:pull",error="insufficient_scope""#
        );
        assert_eq!(
            bearer("https://a/t", "reg", &[Scope::Catalog], false),
            r#"Bearer realm="https://a/t",service="reg",scope="registry:catalog:*""#
        );
    }
}
