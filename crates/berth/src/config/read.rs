//! Reading the document tree into raw settings: [`Section`] walks one mapping, hands out its keys as
//! [`Setting`]s (text plus where it came from), and at the end reports every key nobody read, by name.
//!
//! Sections read what they know and say what they skip: a registry:2 key berth does not use is
//! [`Section::ignore`]d with a reason, anything else left over is unknown. Either way the operator gets a
//! warning naming the key; nothing in the file is ever dropped silently.

use std::cell::RefCell;
use std::fmt;

use super::env::Origins;
use super::yaml::Node;
use super::{ConfigError, Warning, WarningKind};

/// Where a value came from: a key of the file, or the variable that set it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    /// The dotted key (`http.addr`).
    pub key: String,
    /// The `REGISTRY_*` variable, if the environment set it.
    pub var: Option<String>,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.var {
            Some(var) => write!(f, "{var} ({})", self.key),
            None => f.write_str(&self.key),
        }
    }
}

/// One scalar setting as read: its text and its origin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    pub text: String,
    pub origin: Origin,
}

impl Setting {
    /// The error for this value: key, value, and what is allowed.
    pub fn invalid(&self, reason: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            key: self.origin.to_string(),
            value: self.text.clone(),
            reason: reason.into(),
        }
    }

    /// The value through `parse`, whose error says what is allowed.
    pub fn parse<T>(
        &self,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        parse(&self.text).map_err(|reason| self.invalid(reason))
    }
}

/// An optional setting through `parse`, or `default` when absent.
pub fn parse_or<T>(
    setting: &Option<Setting>,
    default: T,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<T, ConfigError> {
    match setting {
        Some(s) => s.parse(parse),
        None => Ok(default),
    }
}

/// An optional setting that must not be empty when given.
pub fn non_empty(setting: &Option<Setting>) -> Result<Option<String>, ConfigError> {
    match setting {
        Some(s) if s.text.trim().is_empty() => Err(s.invalid("must not be empty")),
        Some(s) => Ok(Some(s.text.clone())),
        None => Ok(None),
    }
}

/// What every section shares while the document is read: the variables' origins and the warnings.
pub struct Ctx {
    origins: Origins,
    warnings: RefCell<Vec<Warning>>,
}

impl Ctx {
    pub fn new(origins: Origins, warnings: Vec<Warning>) -> Ctx {
        Ctx {
            origins,
            warnings: RefCell::new(warnings),
        }
    }

    pub fn origin(&self, path: &[String]) -> Origin {
        Origin {
            key: path.join("."),
            var: self.origins.var_for(path).map(str::to_string),
        }
    }

    pub fn warn(&self, origin: &Origin, kind: WarningKind, message: impl Into<String>) {
        self.warnings
            .borrow_mut()
            .push(Warning::new(origin.to_string(), kind, message));
    }

    pub fn into_warnings(self) -> Vec<Warning> {
        self.warnings.into_inner()
    }
}

/// One mapping of the document being read.
pub struct Section<'a> {
    ctx: &'a Ctx,
    path: Vec<String>,
    entries: &'a [(String, Node)],
    used: Vec<bool>,
    /// Every key asked for, present or not: what this section allows.
    asked: Vec<String>,
}

impl<'a> Section<'a> {
    /// The section at `path`, over `node`: a mapping, or nothing (an empty section).
    pub fn new(
        ctx: &'a Ctx,
        path: Vec<String>,
        node: &'a Node,
    ) -> Result<Section<'a>, ConfigError> {
        let entries: &'a [(String, Node)] = match node {
            Node::Map(entries) => entries,
            Node::Null => &[],
            other => {
                return Err(ConfigError::Malformed {
                    key: ctx.origin(&path).to_string(),
                    reason: format!("expected a mapping of settings, found {}", other.kind()),
                });
            }
        };
        Ok(Section {
            ctx,
            asked: Vec::new(),
            used: vec![false; entries.len()],
            path,
            entries,
        })
    }

    pub fn ctx(&self) -> &'a Ctx {
        self.ctx
    }

    /// Where key `key` of this section comes from.
    pub fn origin(&self, key: &str) -> Origin {
        let mut path = self.path.clone();
        path.push(key.to_string());
        self.ctx.origin(&path)
    }

    /// Where this section comes from.
    pub fn here(&self) -> Origin {
        self.ctx.origin(&self.path)
    }

    /// The keys of the section (null ones included), in the file's order, read or not.
    pub fn keys(&self) -> impl Iterator<Item = &'a str> {
        self.entries.iter().map(|(k, _)| k.as_str())
    }

    /// The node at `key` (marking it read), unless absent or null.
    pub fn node(&mut self, key: &str) -> Option<(&'a Node, Origin)> {
        if !self.asked.iter().any(|k| k == key) {
            self.asked.push(key.to_string());
        }
        let i = self.entries.iter().position(|(k, _)| k == key)?;
        self.used[i] = true;
        match &self.entries[i].1 {
            Node::Null => None,
            node => Some((node, self.origin(key))),
        }
    }

    /// The scalar at `key`. A list or mapping there is an error naming the key.
    pub fn scalar(&mut self, key: &str) -> Result<Option<Setting>, ConfigError> {
        match self.node(key) {
            None => Ok(None),
            Some((Node::Scalar(text), origin)) => Ok(Some(Setting {
                text: text.clone(),
                origin,
            })),
            Some((other, origin)) => Err(ConfigError::Malformed {
                key: origin.to_string(),
                reason: format!("expected a single value, found {}", other.kind()),
            }),
        }
    }

    /// The subsection at `key` (empty when absent).
    pub fn section(&mut self, key: &str) -> Result<Section<'a>, ConfigError> {
        let mut path = self.path.clone();
        path.push(key.to_string());
        let node = self.node(key).map_or(&Node::Null, |(n, _)| n);
        Section::new(self.ctx, path, node)
    }

    /// A single value or a list of them at `key` (`clientcas: [a, b]`, a header's values).
    pub fn strings(&mut self, key: &str) -> Result<Option<Vec<Setting>>, ConfigError> {
        let Some((node, origin)) = self.node(key) else {
            return Ok(None);
        };
        scalars(node, &origin).map(Some)
    }

    /// The entries of the free-form mapping at `key` (`headers`, `fields`): name, node and origin each.
    pub fn entries(&mut self, key: &str) -> Result<Vec<(String, &'a Node, Origin)>, ConfigError> {
        let mut path = self.path.clone();
        path.push(key.to_string());
        let node = self.node(key).map_or(&Node::Null, |(n, _)| n);
        let entries: &'a [(String, Node)] = match node {
            Node::Map(entries) => entries,
            Node::Null => &[],
            other => {
                return Err(ConfigError::Malformed {
                    key: self.ctx.origin(&path).to_string(),
                    reason: format!("expected a mapping, found {}", other.kind()),
                });
            }
        };
        Ok(entries
            .iter()
            .map(|(k, v)| {
                let mut p = path.clone();
                p.push(k.clone());
                (k.clone(), v, self.ctx.origin(&p))
            })
            .collect())
    }

    /// Marks `key` read and, if it is set, warns that berth does not use it, and why.
    pub fn ignore(&mut self, key: &str, why: &str) {
        if let Some((_, origin)) = self.node(key) {
            self.ctx
                .warn(&origin, WarningKind::Ignored, format!("{why}; ignored"));
        }
    }

    /// Marks `key` read without a word: for keys whose meaning berth fulfils by construction.
    pub fn accept(&mut self, key: &str) {
        self.node(key);
    }

    /// Ends the section: every key nobody read is reported as unknown.
    pub fn finish(self) {
        for ((key, _), used) in self.entries.iter().zip(&self.used) {
            if !used {
                self.ctx.warn(
                    &self.origin(key),
                    WarningKind::Unknown,
                    "not a setting registry:2 or berth knows; ignored",
                );
            }
        }
    }
}

impl Section<'_> {
    /// Ends a section where an unknown key is an error, because a typo there would silently change
    /// what is allowed (berth's `access`).
    pub fn finish_strict(self) -> Result<(), ConfigError> {
        match self
            .entries
            .iter()
            .zip(&self.used)
            .find(|(_, used)| !**used)
        {
            None => Ok(()),
            Some(((key, _), _)) => Err(ConfigError::Malformed {
                key: self.origin(key).to_string(),
                reason: format!("unknown key; allowed here: {}", self.asked.join(", ")),
            }),
        }
    }
}

/// A scalar, or a list of scalars, as settings.
pub fn scalars(node: &Node, origin: &Origin) -> Result<Vec<Setting>, ConfigError> {
    let one = |node: &Node| match node {
        Node::Scalar(text) => Ok(Setting {
            text: text.clone(),
            origin: origin.clone(),
        }),
        other => Err(ConfigError::Malformed {
            key: origin.to_string(),
            reason: format!(
                "expected a value or a list of values, found {}",
                other.kind()
            ),
        }),
    };
    match node {
        Node::Null => Ok(Vec::new()),
        Node::Seq(items) => items.iter().map(one).collect(),
        other => Ok(vec![one(other)?]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::yaml;

    fn ctx() -> Ctx {
        Ctx::new(Origins::default(), Vec::new())
    }

    #[test]
    fn reading_marks_keys_and_the_rest_is_unknown() {
        let doc = yaml::parse("a: 1\nb: [x, y]\nc: {d: 2}\nskip: 3\nodd: 4\nnull:\n").unwrap();
        let ctx = ctx();
        let mut s = Section::new(&ctx, vec!["top".into()], &doc).unwrap();
        assert_eq!(s.scalar("a").unwrap().unwrap().text, "1");
        assert_eq!(
            s.strings("b")
                .unwrap()
                .unwrap()
                .iter()
                .map(|s| s.text.as_str())
                .collect::<Vec<_>>(),
            ["x", "y"]
        );
        let mut c = s.section("c").unwrap();
        assert_eq!(c.scalar("d").unwrap().unwrap().origin.key, "top.c.d");
        c.finish();
        s.ignore("skip", "not needed");
        assert!(s.scalar("missing").unwrap().is_none());
        s.finish();
        let warnings: Vec<String> = ctx.into_warnings().iter().map(|w| w.to_string()).collect();
        assert_eq!(
            warnings,
            [
                "top.skip: not needed; ignored",
                "top.odd: not a setting registry:2 or berth knows; ignored",
                "top.null: not a setting registry:2 or berth knows; ignored",
            ]
        );
    }

    #[test]
    fn wrong_shapes_name_the_key() {
        let doc = yaml::parse("a: {b: 1}\nc: 2\nd: [{e: 1}]\n").unwrap();
        let ctx = ctx();
        let mut s = Section::new(&ctx, vec!["top".into()], &doc).unwrap();
        assert_eq!(
            s.scalar("a").unwrap_err().to_string(),
            "top.a: expected a single value, found a mapping"
        );
        assert_eq!(
            s.section("c").err().map(|e| e.to_string()),
            Some("top.c: expected a mapping of settings, found a single value".to_string())
        );
        assert!(s.strings("d").is_err());
    }

    #[test]
    fn settings_say_key_value_and_what_is_allowed() {
        let s = Setting {
            text: "localhost:99999".into(),
            origin: Origin {
                key: "http.addr".into(),
                var: None,
            },
        };
        assert_eq!(
            s.invalid("not a valid port (0-65535)").to_string(),
            "http.addr: \"localhost:99999\": not a valid port (0-65535)"
        );
        let from_env = Setting {
            origin: Origin {
                key: "http.addr".into(),
                var: Some("REGISTRY_HTTP_ADDR".into()),
            },
            ..s
        };
        assert_eq!(
            from_env.invalid("x").to_string(),
            "REGISTRY_HTTP_ADDR (http.addr): \"localhost:99999\": x"
        );
    }
}
