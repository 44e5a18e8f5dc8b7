//! The configuration file as a tree of [`Node`]s whose scalars keep the exact text the file wrote.
//!
//! Why not `serde_yaml::Value`: it resolves scalars to numbers and booleans, so `password: 0123` would
//! become `123` and `version: 0.10` would become `0.1`. registry:2 (Go's yaml.v2) hands string settings the
//! text as written, and so must berth. serde_yaml does too when a scalar is deserialized as a string, but
//! then the document's shape must be known in advance; so the text is read twice: once as a `Value` to
//! learn the shape, then again guided by that shape, asking for every scalar as a string.
//!
//! Merge keys (`<<: *defaults`), which yaml.v2 applies, are applied here too.

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_yaml::Value;

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
}

/// Parses a YAML document. An empty document is [`Node::Null`].
pub fn parse(text: &str) -> Result<Node, serde_yaml::Error> {
    let shape: Value = serde_yaml::from_str(text)?;
    let de = serde_yaml::Deserializer::from_str(text);
    let mut node = Shaped(&shape).deserialize(de)?;
    apply_merges(&mut node);
    Ok(node)
}

/// Deserializes the node whose shape is the given `Value`.
struct Shaped<'v>(&'v Value);

impl<'de> DeserializeSeed<'de> for Shaped<'_> {
    type Value = Node;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        match self.0 {
            Value::Null => {
                <IgnoredAny as serde::Deserialize>::deserialize(d)?;
                Ok(Node::Null)
            }
            Value::Bool(_) | Value::Number(_) | Value::String(_) => Ok(Node::Scalar(
                <String as serde::Deserialize>::deserialize(d)?,
            )),
            Value::Sequence(items) => d.deserialize_seq(SeqNodes(items)),
            Value::Mapping(map) => d.deserialize_map(MapNodes(map)),
            // A tagged node (`!foo value`): registry:2 configurations have none; read it through the
            // resolved value, which is as close as the tag allows.
            Value::Tagged(_) => {
                let value = <Value as serde::Deserialize>::deserialize(d)?;
                Ok(from_value(&value))
            }
        }
    }
}

struct SeqNodes<'v>(&'v [Value]);

impl<'de> Visitor<'de> for SeqNodes<'_> {
    type Value = Node;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a sequence")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut out = Vec::with_capacity(self.0.len());
        for shape in self.0 {
            match seq.next_element_seed(Shaped(shape))? {
                Some(node) => out.push(node),
                None => return Err(de::Error::custom("the document changed between two reads")),
            }
        }
        Ok(Node::Seq(out))
    }
}

struct MapNodes<'v>(&'v serde_yaml::Mapping);

impl<'de> Visitor<'de> for MapNodes<'_> {
    type Value = Node;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a mapping")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut out = Vec::with_capacity(self.0.len());
        for (_, shape) in self.0 {
            let Some(key) = map.next_key::<KeyText>()? else {
                return Err(de::Error::custom("the document changed between two reads"));
            };
            out.push((key.0, map.next_value_seed(Shaped(shape))?));
        }
        Ok(Node::Map(out))
    }
}

/// A mapping key as written (keys are scalars in every registry:2 configuration).
struct KeyText(String);

impl<'de> serde::Deserialize<'de> for KeyText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        <String as serde::Deserialize>::deserialize(d).map(KeyText)
    }
}

/// A resolved value as a node (scalars in their canonical spelling).
fn from_value(v: &Value) -> Node {
    match v {
        Value::Null => Node::Null,
        Value::Bool(b) => Node::Scalar(b.to_string()),
        Value::Number(n) => Node::Scalar(n.to_string()),
        Value::String(s) => Node::Scalar(s.clone()),
        Value::Sequence(items) => Node::Seq(items.iter().map(from_value).collect()),
        Value::Mapping(map) => Node::Map(
            map.iter()
                .map(|(k, v)| {
                    let key = match from_value(k) {
                        Node::Scalar(s) => s,
                        other => format!("<{}>", other.kind()),
                    };
                    (key, from_value(v))
                })
                .collect(),
        ),
        Value::Tagged(t) => from_value(&t.value),
    }
}

/// YAML merge keys: `<<: *anchor` (or a list of them) adds the anchor's entries that the mapping does not
/// set itself.
fn apply_merges(node: &mut Node) {
    match node {
        Node::Seq(items) => items.iter_mut().for_each(apply_merges),
        Node::Map(entries) => {
            entries.iter_mut().for_each(|(_, v)| apply_merges(v));
            let Some(i) = entries.iter().position(|(k, _)| k == "<<") else {
                return;
            };
            let (_, merged) = entries.remove(i);
            let sources = match merged {
                Node::Map(m) => vec![m],
                Node::Seq(items) => items
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
        }
        Node::Null | Node::Scalar(_) => {}
    }
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
}
