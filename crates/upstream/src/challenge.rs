//! `WWW-Authenticate` challenges (RFC 7235) as registries send them: `Bearer realm=..,service=..,scope=..`
//! (Docker's token specification) or `Basic realm=..`.
//!
//! One header may hold several challenges (`Bearer realm="a", Basic realm="b"`), and values may be quoted
//! strings with commas and escapes inside, so this is a small tokenizer rather than a `split(',')`.

use std::collections::BTreeMap;

/// One challenge: its scheme (lowercased) and its parameters (names lowercased).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Challenge {
    pub scheme: String,
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    pub(crate) fn param(&self, name: &str) -> Option<&str> {
        self.params.get(name).map(String::as_str)
    }
}

/// Every challenge in one header value; malformed parts end the parse (what was read before stays).
pub(crate) fn parse(header: &str) -> Vec<Challenge> {
    let mut p = Parser {
        s: header.as_bytes(),
        i: 0,
    };
    let mut out: Vec<Challenge> = Vec::new();
    loop {
        p.skip_separators();
        let Some(scheme) = p.token() else { break };
        let mut challenge = Challenge {
            scheme: scheme.to_ascii_lowercase(),
            params: BTreeMap::new(),
        };
        // Parameters until the next challenge (a token not followed by `=`) or the end.
        loop {
            p.skip_separators();
            let save = p.i;
            let Some(name) = p.token() else { break };
            p.skip_spaces();
            if !p.eat(b'=') {
                // The start of the next challenge.
                p.i = save;
                break;
            }
            p.skip_spaces();
            let value = if p.peek() == Some(b'"') {
                p.quoted()
            } else {
                p.token().map(str::to_string)
            };
            match value {
                Some(v) => {
                    challenge.params.insert(name.to_ascii_lowercase(), v);
                }
                None => {
                    out.push(challenge);
                    return out;
                }
            }
        }
        out.push(challenge);
    }
    out
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn skip_spaces(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    fn skip_separators(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b',')) {
            self.i += 1;
        }
    }

    /// An RFC 7230 token (plus `/` and `=`-free token68 characters that registries put in values).
    fn token(&mut self) -> Option<&'a str> {
        let start = self.i;
        while let Some(b) = self.peek() {
            let ok = b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~/:".contains(&b);
            if !ok {
                break;
            }
            self.i += 1;
        }
        if self.i == start {
            return None;
        }
        std::str::from_utf8(&self.s[start..self.i]).ok()
    }

    /// A quoted string with `\` escapes; `None` if it never closes.
    fn quoted(&mut self) -> Option<String> {
        if !self.eat(b'"') {
            return None;
        }
        let mut out = Vec::new();
        while let Some(b) = self.peek() {
            self.i += 1;
            match b {
                b'"' => return String::from_utf8(out).ok(),
                b'\\' => {
                    let escaped = self.peek()?;
                    self.i += 1;
                    out.push(escaped);
                }
                _ => out.push(b),
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(scheme: &str, params: &[(&str, &str)]) -> Challenge {
        Challenge {
            scheme: scheme.into(),
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn challenges() {
        let cases: Vec<(&str, Vec<Challenge>)> = vec![
            (
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull""#,
                vec![one(
                    "bearer",
                    &[
                        ("realm", "https://auth.docker.io/token"),
                        ("service", "registry.docker.io"),
                        ("scope", "repository:library/alpine:pull"),
                    ],
                )],
            ),
            (
                r#"Basic realm="berth test realm""#,
                vec![one("basic", &[("realm", "berth test realm")])],
            ),
            (
                // Several scopes in one value, an error, odd spacing and case.
                r#"bearer  Realm = "https://a/t" , service="reg",scope="repository:a:pull,push repository:b:pull",error="insufficient_scope""#,
                vec![one(
                    "bearer",
                    &[
                        ("realm", "https://a/t"),
                        ("service", "reg"),
                        ("scope", "repository:a:pull,push repository:b:pull"),
                        ("error", "insufficient_scope"),
                    ],
                )],
            ),
            (
                r#"Bearer realm="https://a/t", Basic realm="x\"y""#,
                vec![
                    one("bearer", &[("realm", "https://a/t")]),
                    one("basic", &[("realm", "x\"y")]),
                ],
            ),
            (
                "Bearer realm=unquoted,service=reg",
                vec![one("bearer", &[("realm", "unquoted"), ("service", "reg")])],
            ),
            ("Basic", vec![one("basic", &[])]),
            ("", vec![]),
            (r#"Bearer realm="never closed"#, vec![one("bearer", &[])]),
        ];
        for (header, want) in cases {
            assert_eq!(parse(header), want, "{header}");
        }
    }
}
