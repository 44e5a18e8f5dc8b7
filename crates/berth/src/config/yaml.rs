//! The configuration file as a tree of [`Node`]s whose scalars keep the exact text the file wrote, and the
//! effective configuration printed back as YAML.
//!
//! Why the text as written: registry:2 (Go's yaml.v2) hands string settings the text of the file, so
//! `password: 0123` is "0123" and `version: 0.10` is "0.10", not the numbers 123 and 0.1; and so must berth.
//!
//! Why saphyr: serde_yaml is deprecated by its author; its forks (`serde_yaml_ng`, `serde_norway`; not
//! `serde_yml`, unsound and archived) keep its C-translated libyaml and its serde-only interface, which
//! resolves scalars to numbers unless the document's shape is known in advance (berth read every file
//! twice for that). `yaml-rust2` only gets basic maintenance now, in favour of saphyr. saphyr's parser
//! (`saphyr-parser`, pure Rust, YAML 1.2, maintained) hands out every scalar as an event with its text as
//! written, its style (plain or quoted) and its position, so the file is read once, here, into [`Node`]s:
//! only a plain `~`, `null` (`Null`, `NULL`) or nothing is [`Node::Null`]; quoted, it is text. Anchors and
//! aliases are resolved here, and merge keys (`<<: *defaults`), which yaml.v2 applies, too. A file that is
//! not YAML is an [`Error`] that says where (line and column), as is a duplicate key.
//!
//! The effective configuration is printed by saphyr's `YamlEmitter` from its document type
//! ([`Printed`], built with [`text`], [`flag`], [`number`], [`seq`] and [`NOTHING`]); it quotes the text
//! that would read back as another type, so what it prints loads back as the same configuration.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use saphyr::{Scalar, Yaml, YamlEmitter};
use saphyr_parser::{Event, Marker, Parser, ScalarStyle, ScanError, Tag};

/// A node of the document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node {
    /// `~`, `null`, or nothing.
    Null,
    /// Any scalar, as written (without quotes).
    Scalar(String),
    Seq(Vec<Node>),
    /// Entries in the file's order; keys as written.
    Map(Vec<(String, Node)>),
}

impl Node {
    /// An empty mapping.
    pub fn map() -> Node {
        Node::Map(Vec::new())
    }

    /// What kind of node this is, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Node::Null => "nothing",
            Node::Scalar(_) => "a single value",
            Node::Seq(_) => "a list",
            Node::Map(_) => "a mapping",
        }
    }

    /// How many nodes this one is made of, itself included.
    fn size(&self) -> usize {
        match self {
            Node::Null | Node::Scalar(_) => 1,
            Node::Seq(items) => 1 + items.iter().map(Node::size).sum::<usize>(),
            Node::Map(entries) => 1 + entries.iter().map(|(_, v)| 1 + v.size()).sum::<usize>(),
        }
    }
}

/// Text that is not a YAML document berth reads, and where in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    message: String,
    /// 1-based.
    line: usize,
    /// 1-based, in characters.
    column: usize,
}

impl Error {
    fn at(mark: Marker, message: impl Into<String>) -> Error {
        Error {
            message: message.into(),
            line: mark.line(),
            column: mark.col() + 1,
        }
    }
}

impl From<ScanError> for Error {
    fn from(e: ScanError) -> Error {
        Error::at(*e.marker(), e.info())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at line {} column {}",
            self.message, self.line, self.column
        )
    }
}

impl std::error::Error for Error {}

/// How deeply collections may nest. Every walk over a [`Node`] recurses, so the depth is bounded where
/// the tree is built (at serde_yaml's limit, which berth read files with before).
const MAX_DEPTH: usize = 128;

/// How many nodes aliases may add in all. An alias is a copy of its anchor's node, so aliases of aliases
/// grow a document exponentially ("a billion laughs"); a configuration stays far below this.
const ALIAS_BUDGET: usize = 100_000;

/// Parses a YAML document. An empty document is [`Node::Null`].
pub fn parse(text: &str) -> Result<Node, Error> {
    let mut tree = Builder::default();
    let mut documents = 0;
    for event in Parser::new_from_str(text) {
        let (event, span) = event?;
        let at = span.start;
        match event {
            Event::DocumentStart(_) => {
                documents += 1;
                if documents > 1 {
                    return Err(Error::at(
                        at,
                        "a second YAML document; the configuration is one",
                    ));
                }
            }
            Event::Scalar(text, style, anchor, tag) => {
                tree.scalar(text, style, tag.as_deref(), anchor, at)?;
            }
            Event::Alias(id) => {
                let node = tree.alias(id, at)?;
                tree.complete(node, 0, at)?;
            }
            Event::SequenceStart(anchor, _) => tree.open(Open::Seq(Vec::new()), anchor, at)?,
            Event::MappingStart(anchor, _) => tree.open(
                Open::Map {
                    entries: Vec::new(),
                    value_of: None,
                    merge: None,
                },
                anchor,
                at,
            )?,
            Event::SequenceEnd | Event::MappingEnd => tree.close(at)?,
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => {}
        }
    }
    Ok(tree.root.unwrap_or(Node::Null))
}

/// Builds the tree from the parser's events.
struct Builder {
    /// The collections being read, innermost last, each with its anchor id (0: none).
    open: Vec<(Open, usize)>,
    /// The nodes anchored so far, by the parser's anchor id (an anchor's node is known once complete).
    anchors: HashMap<usize, Node>,
    /// What aliases may still add (see [`ALIAS_BUDGET`]).
    alias_budget: usize,
    root: Option<Node>,
}

impl Default for Builder {
    fn default() -> Builder {
        Builder {
            open: Vec::new(),
            anchors: HashMap::new(),
            alias_budget: ALIAS_BUDGET,
            root: None,
        }
    }
}

/// A collection being read.
enum Open {
    Seq(Vec<Node>),
    Map {
        entries: Vec<(String, Node)>,
        /// The key read whose value comes next.
        value_of: Option<Key>,
        /// The value of the merge key, merged in when the mapping ends.
        merge: Option<Node>,
    },
}

enum Key {
    Named(String),
    /// A plain `<<` (as yaml.v2, which merges only that spelling).
    Merge,
}

impl Builder {
    fn open(&mut self, collection: Open, anchor: usize, at: Marker) -> Result<(), Error> {
        if self.open.len() >= MAX_DEPTH {
            return Err(Error::at(
                at,
                format!("lists and mappings nested more than {MAX_DEPTH} deep"),
            ));
        }
        self.open.push((collection, anchor));
        Ok(())
    }

    fn close(&mut self, at: Marker) -> Result<(), Error> {
        let Some((collection, anchor)) = self.open.pop() else {
            return Err(Error::at(
                at,
                "the end of a list or mapping that was not open",
            ));
        };
        let node = match collection {
            Open::Seq(items) => Node::Seq(items),
            Open::Map { entries, merge, .. } => Node::Map(merged(entries, merge)),
        };
        self.complete(node, anchor, at)
    }

    /// A scalar: a key (as written, even `null`) or a value (where `~` and friends are nothing).
    fn scalar(
        &mut self,
        text: Cow<'_, str>,
        style: ScalarStyle,
        tag: Option<&Tag>,
        anchor: usize,
        at: Marker,
    ) -> Result<(), Error> {
        let core = |name: &str| tag.is_some_and(|t| t.is_yaml_core_schema() && t.suffix == name);
        let plain = style == ScalarStyle::Plain;
        let null = core("null")
            || (plain && !core("str") && matches!(&*text, "" | "~" | "null" | "Null" | "NULL"));
        let node = if null {
            Node::Null
        } else {
            Node::Scalar(text.clone().into_owned())
        };
        if !self.expects_key() {
            return self.complete(node, anchor, at);
        }
        if anchor != 0 {
            self.anchors.insert(anchor, node);
        }
        if text == "<<" && ((plain && tag.is_none()) || core("merge")) {
            return self.key(Key::Merge, at);
        }
        self.key(Key::Named(text.into_owned()), at)
    }

    /// Whether the next node is the key of a mapping.
    fn expects_key(&self) -> bool {
        matches!(
            self.open.last(),
            Some((Open::Map { value_of: None, .. }, _))
        )
    }

    /// A copy of the anchored node an alias names.
    fn alias(&mut self, id: usize, at: Marker) -> Result<Node, Error> {
        let Some(node) = self.anchors.get(&id) else {
            return Err(Error::at(at, "an alias inside the node its anchor names"));
        };
        let size = node.size();
        if size > self.alias_budget {
            return Err(Error::at(
                at,
                format!("aliases that expand to more than {ALIAS_BUDGET} nodes"),
            ));
        }
        self.alias_budget -= size;
        Ok(node.clone())
    }

    /// A node read in full: the next item, key or value of the collection it is in, or the document.
    fn complete(&mut self, node: Node, anchor: usize, at: Marker) -> Result<(), Error> {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.open.last_mut() {
            None => self.root = Some(node),
            Some((Open::Seq(items), _)) => items.push(node),
            Some((
                Open::Map {
                    entries,
                    value_of,
                    merge,
                },
                _,
            )) => match value_of.take() {
                Some(Key::Named(key)) => entries.push((key, node)),
                Some(Key::Merge) => *merge = Some(node),
                // An alias or a collection as the key.
                None => match node {
                    Node::Scalar(text) => return self.key(Key::Named(text), at),
                    Node::Null => return self.key(Key::Named(String::new()), at),
                    other => {
                        return Err(Error::at(
                            at,
                            format!("a mapping key must be a single value, not {}", other.kind()),
                        ));
                    }
                },
            },
        }
        Ok(())
    }

    /// The key of the mapping being read, whose value comes next. A key may appear once.
    fn key(&mut self, key: Key, at: Marker) -> Result<(), Error> {
        let Some((
            Open::Map {
                entries,
                value_of,
                merge,
            },
            _,
        )) = self.open.last_mut()
        else {
            return Err(Error::at(at, "a key outside a mapping"));
        };
        let twice = match &key {
            Key::Named(name) => entries.iter().any(|(have, _)| have == name),
            Key::Merge => merge.is_some(),
        };
        if !twice {
            *value_of = Some(key);
            return Ok(());
        }
        let name = match key {
            Key::Named(name) => name,
            Key::Merge => "<<".to_string(),
        };
        Err(Error::at(
            at,
            format!("{}: the key appears twice", self.dotted(&name)),
        ))
    }

    /// The dotted key (list items by index, as the settings name them) of `key` in the innermost mapping.
    fn dotted(&self, key: &str) -> String {
        let mut path = Vec::with_capacity(self.open.len() + 1);
        for (open, _) in &self.open {
            match open {
                Open::Seq(items) => path.push(items.len().to_string()),
                Open::Map { value_of, .. } => match value_of {
                    Some(Key::Named(name)) => path.push(name.clone()),
                    Some(Key::Merge) => path.push("<<".to_string()),
                    None => {}
                },
            }
        }
        path.push(key.to_string());
        path.join(".")
    }
}

/// YAML merge keys: `<<: *anchor` (or a list of them, the first winning) adds the anchor's entries that
/// the mapping does not set itself, after its own. Anything else after `<<` adds nothing.
fn merged(mut entries: Vec<(String, Node)>, merge: Option<Node>) -> Vec<(String, Node)> {
    let sources = match merge {
        Some(Node::Map(m)) => vec![m],
        Some(Node::Seq(items)) => items
            .into_iter()
            .filter_map(|n| match n {
                Node::Map(m) => Some(m),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    for source in sources {
        for (k, v) in source {
            if !entries.iter().any(|(have, _)| *have == k) {
                entries.push((k, v));
            }
        }
    }
    entries
}

/// The effective configuration as printed: saphyr's document type, which its emitter writes.
pub type Printed = Yaml<'static>;

/// Nothing (`~`): a setting that is not set.
pub const NOTHING: Printed = Yaml::Value(Scalar::Null);

/// Text; quoted when printed if it would read back as something else (`"0123"`, `"true"`, `"~"`).
pub fn text(s: impl Into<String>) -> Printed {
    Yaml::Value(Scalar::String(Cow::Owned(s.into())))
}

pub fn flag(b: bool) -> Printed {
    Yaml::Value(Scalar::Boolean(b))
}

/// A count or size. YAML integers are signed 64-bit; a larger one is printed as its digits, which berth
/// reads back the same.
pub fn number(n: impl Into<u64>) -> Printed {
    let n = n.into();
    match i64::try_from(n) {
        Ok(i) => Yaml::Value(Scalar::Integer(i)),
        Err(_) => text(n.to_string()),
    }
}

pub fn seq(items: impl IntoIterator<Item = Printed>) -> Printed {
    Yaml::Sequence(items.into_iter().collect())
}

/// A mapping from `(key, value)` pairs, in their order.
pub fn mapping<'a>(entries: impl IntoIterator<Item = (&'a str, Printed)>) -> Printed {
    Yaml::Mapping(entries.into_iter().map(|(k, v)| (text(k), v)).collect())
}

/// The document as YAML text (block style, starting with `---`, ending with a line break).
pub fn to_string(doc: &Printed) -> Result<String, saphyr::EmitError> {
    let mut out = String::new();
    YamlEmitter::new(&mut out).dump(doc)?;
    out.push('\n');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Node {
        Node::Scalar(text.to_string())
    }

    fn get<'a>(node: &'a Node, key: &str) -> &'a Node {
        match node {
            Node::Map(entries) => entries
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v)
                .unwrap_or(&Node::Null),
            _ => &Node::Null,
        }
    }

    #[test]
    fn scalars_keep_their_text() {
        let doc = parse(
            "version: 0.10\npassword: 0123\nexp: 1e3\nyes: yes\nt: true\nq: \"quoted: #x\"\n\
             hex: 0x1F\nempty: ''\nnothing: ~\n5000: port\n",
        )
        .unwrap();
        assert_eq!(get(&doc, "version"), &s("0.10"));
        assert_eq!(get(&doc, "password"), &s("0123"));
        assert_eq!(get(&doc, "exp"), &s("1e3"));
        assert_eq!(get(&doc, "yes"), &s("yes"));
        assert_eq!(get(&doc, "t"), &s("true"));
        assert_eq!(get(&doc, "q"), &s("quoted: #x"));
        assert_eq!(get(&doc, "hex"), &s("0x1F"));
        assert_eq!(get(&doc, "empty"), &s(""));
        assert_eq!(get(&doc, "nothing"), &Node::Null);
        assert_eq!(get(&doc, "5000"), &s("port"));
    }

    #[test]
    fn structure_and_order_are_kept() {
        let doc = parse("b:\n  x: [1, two]\n  y: {z: 03}\na: 1\n").unwrap();
        let Node::Map(entries) = &doc else {
            panic!("{doc:?}")
        };
        assert_eq!(
            entries.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            ["b", "a"]
        );
        assert_eq!(get(get(&doc, "b"), "x"), &Node::Seq(vec![s("1"), s("two")]));
        assert_eq!(get(get(get(&doc, "b"), "y"), "z"), &s("03"));
    }

    #[test]
    fn empty_documents_are_null() {
        assert_eq!(parse("").unwrap(), Node::Null);
        assert_eq!(parse("# only a comment\n").unwrap(), Node::Null);
    }

    #[test]
    fn anchors_aliases_and_merge_keys() {
        let doc = parse(
            "base: &b\n  level: debug\n  formatter: text\nlog:\n  <<: *b\n  level: info\nother: *b\n",
        )
        .unwrap();
        let log = get(&doc, "log");
        assert_eq!(get(log, "level"), &s("info"), "the mapping's own key wins");
        assert_eq!(get(log, "formatter"), &s("text"));
        assert_eq!(get(log, "<<"), &Node::Null, "the merge key itself is gone");
        assert_eq!(get(get(&doc, "other"), "level"), &s("debug"));
    }

    #[test]
    fn bad_yaml_and_duplicate_keys_are_errors() {
        assert!(parse("a: [unclosed\n").is_err());
        assert!(parse("a: 1\na: 2\n").is_err());
    }

    #[test]
    fn errors_say_where() {
        let err = parse("a:\n  b: [unclosed\n").unwrap_err().to_string();
        assert!(err.ends_with("at line 3 column 1"), "{err}");
        assert_eq!(
            parse("a:\n  - b: 1\n    b: 2\n").unwrap_err().to_string(),
            "a.0.b: the key appears twice at line 3 column 5"
        );
        // The same key however it is quoted.
        assert!(parse("a: 1\n'a': 2\n").is_err());
        assert_eq!(
            parse("a: 1\n---\na: 2\n").unwrap_err().to_string(),
            "a second YAML document; the configuration is one at line 2 column 1"
        );
        assert!(
            parse("? [a, b]\n: c\n")
                .unwrap_err()
                .to_string()
                .starts_with("a mapping key must be a single value")
        );
        assert!(parse("a: *nowhere\n").is_err());
        assert!(
            parse("a: &x [*x]\n").is_err(),
            "an alias inside its own anchor"
        );
    }

    #[test]
    fn nulls_are_plain_and_tags_of_the_core_schema_count() {
        let doc = parse(
            "a: null\nb: NULL\nc:\nd: '~'\ne: \"null\"\nf: !!str ~\ng: !!null x\nh: !!int 010\n\
             i: !custom text\nj: |\n  block\n",
        )
        .unwrap();
        for key in ["a", "b", "c", "g"] {
            assert_eq!(get(&doc, key), &Node::Null, "{key}");
        }
        assert_eq!(get(&doc, "d"), &s("~"));
        assert_eq!(get(&doc, "e"), &s("null"));
        assert_eq!(get(&doc, "f"), &s("~"));
        assert_eq!(get(&doc, "h"), &s("010"));
        assert_eq!(get(&doc, "i"), &s("text"));
        assert_eq!(get(&doc, "j"), &s("block\n"));
        // Keys are text as written, even those that would be nothing as values.
        let keys = parse("null: 1\n~: 2\n").unwrap();
        assert_eq!(get(&keys, "null"), &s("1"));
        assert_eq!(get(&keys, "~"), &s("2"));
    }

    #[test]
    fn only_a_plain_merge_key_merges() {
        let doc =
            parse("base: &b {x: 1, y: 2}\nm: {<<: [*b, {z: 3}], y: 0}\nq: {'<<': *b}\n").unwrap();
        let m = get(&doc, "m");
        assert_eq!(get(m, "x"), &s("1"));
        assert_eq!(get(m, "y"), &s("0"));
        assert_eq!(get(m, "z"), &s("3"));
        assert_eq!(
            get(get(&doc, "q"), "<<"),
            get(&doc, "base"),
            "a quoted << is a key"
        );
        assert!(parse("m:\n  <<: {a: 1}\n  <<: {b: 2}\n").is_err());
        // Merged in a node that is then aliased: the copy has the merged entries.
        let doc = parse("a: &a {<<: {k: v}}\nb: *a\n").unwrap();
        assert_eq!(get(get(&doc, "b"), "k"), &s("v"));
    }

    #[test]
    fn deep_nesting_and_alias_bombs_are_refused() {
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert!(
            parse(&deep)
                .unwrap_err()
                .to_string()
                .contains("nested more than")
        );
        let shallow = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(parse(&shallow).is_ok());

        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        for (prev, name) in ["a", "b", "c", "d", "e", "f"]
            .iter()
            .zip(["b", "c", "d", "e", "f", "g"])
        {
            let refs = vec![format!("*{prev}"); 10].join(", ");
            bomb.push_str(&format!("{name}: &{name} [{refs}]\n"));
        }
        let err = parse(&bomb).unwrap_err().to_string();
        assert!(err.contains("aliases that expand to more than"), "{err}");
    }

    /// What is printed reads back as what was printed: text that looks like something else is quoted.
    #[test]
    fn printed_text_reads_back_as_written() {
        let tricky = [
            "0123",
            "0.10",
            "1e3",
            "0x1F",
            "true",
            "no",
            "~",
            "null",
            "",
            " lead",
            "trail ",
            "a: b",
            "#x",
            "x #y",
            "-",
            "- x",
            "*x",
            "&x",
            "!x",
            "%x",
            "@x",
            "`x",
            "<<",
            "'q'",
            "\"q\"",
            "[a]",
            "{a}",
            "a,b",
            "two\nlines",
            "tab\there",
            "é",
            ".inf",
            "-1",
            "+1",
            "? x",
            "|",
            ">",
        ];
        let doc = mapping(
            tricky
                .iter()
                .enumerate()
                .map(|(i, t)| (*t, seq([text(*t), text(format!("{i}"))]))),
        );
        let printed = to_string(&doc).unwrap();
        let back = parse(&printed).unwrap_or_else(|e| panic!("{e}:\n{printed}"));
        for (i, t) in tricky.iter().enumerate() {
            assert_eq!(
                get(&back, t),
                &Node::Seq(vec![s(t), s(&i.to_string())]),
                "{t:?} in\n{printed}"
            );
        }

        let doc = mapping([
            ("flag", flag(true)),
            ("count", number(8_388_608u64)),
            ("huge", number(u64::MAX)),
            ("unset", NOTHING),
            ("empty", seq([])),
            ("none", mapping([])),
        ]);
        let printed = to_string(&doc).unwrap();
        let back = parse(&printed).unwrap();
        assert_eq!(get(&back, "flag"), &s("true"));
        assert_eq!(get(&back, "count"), &s("8388608"));
        assert_eq!(get(&back, "huge"), &s(&u64::MAX.to_string()));
        assert_eq!(get(&back, "unset"), &Node::Null);
        assert_eq!(get(&back, "empty"), &Node::Seq(Vec::new()));
        assert_eq!(get(&back, "none"), &Node::map());
    }
}
