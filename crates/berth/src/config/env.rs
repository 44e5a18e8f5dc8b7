//! registry:2's environment overrides: `REGISTRY_<PATH>`, where `<PATH>` is the key's components upper-cased
//! and joined by `_` (`REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY` is `storage.filesystem.rootdirectory`).
//!
//! They are applied to the document tree before anything reads it, as registry:2 does, so a variable can
//! set any key, create a section the file lacks, or replace a whole section with YAML
//! (`REGISTRY_HTTP_HEADERS='{X-Frame-Options: [DENY]}'`). The rules follow registry:2's parser:
//! - variables apply in the order of their names, so a section's variable comes before its keys';
//! - a component matches an existing key of the file without regard to case, else it becomes a new
//!   lower-case key (every registry:2 key is lower case and has no `_`);
//! - the value is read as YAML (`true`, `[a, b]`, `'quoted'`), or taken as text if it is not YAML.
//!
//! berth differs in one place: an empty variable counts as unset (registry:2 would set the zero value),
//! so `REGISTRY_X=` in a compose file cannot blank a setting by accident.
//!
//! Every key set this way remembers its variable, so an error about it names the variable.

use std::collections::HashMap;

use super::yaml::{self, Node};
use super::{Warning, WarningKind};

/// The prefix of every override.
pub const PREFIX: &str = "REGISTRY_";

/// Variables that share the prefix but configure no key: registry:2 reads the file's path from this one.
pub const NOT_OVERRIDES: &[&str] = &["REGISTRY_CONFIGURATION_PATH"];

/// Which keys the environment set: a key path and the variable, in the order applied.
#[derive(Clone, Debug, Default)]
pub struct Origins(Vec<(Vec<String>, String)>);

impl Origins {
    /// The variable that set `path` (or the section containing it), if any: the last one applied to the
    /// longest matching prefix.
    pub fn var_for(&self, path: &[String]) -> Option<&str> {
        self.0
            .iter()
            .filter(|(p, _)| path.starts_with(p))
            .max_by_key(|(p, _)| p.len())
            .map(|(_, var)| var.as_str())
    }
}

/// Applies every `REGISTRY_*` variable of `env` to `root`; returns where each came from and the
/// variables that could not be applied.
pub fn apply(root: &mut Node, env: &HashMap<String, String>) -> (Origins, Vec<Warning>) {
    let mut vars: Vec<(&String, &String)> = env
        .iter()
        .filter(|(name, value)| {
            name.starts_with(PREFIX) && !NOT_OVERRIDES.contains(&name.as_str()) && !value.is_empty()
        })
        .collect();
    vars.sort();
    let mut origins = Origins::default();
    let mut warnings = Vec::new();
    for (name, value) in vars {
        let components: Vec<&str> = name[PREFIX.len()..].split('_').collect();
        if components.iter().any(|c| c.is_empty()) {
            warnings.push(Warning::new(
                name.clone(),
                WarningKind::Unknown,
                "names no configuration key (empty path component); ignored",
            ));
            continue;
        }
        if components == ["VERSION"] {
            warnings.push(Warning::new(
                name.clone(),
                WarningKind::Ignored,
                "the configuration version cannot be overridden (as in registry:2); ignored",
            ));
            continue;
        }
        let path = set(root, &components, payload(value));
        origins.0.push((path, name.clone()));
    }
    (origins, warnings)
}

/// The variable's value as YAML, or as plain text when it is not YAML (`*x`, `%y`, `a: b: c`).
fn payload(value: &str) -> Node {
    match yaml::parse(value) {
        Ok(node) => node,
        Err(_) => Node::Scalar(value.to_string()),
    }
}

/// Sets the key at `components` (upper case) to `value`, creating sections as needed; returns the key's
/// path as the tree spells it.
fn set(root: &mut Node, components: &[&str], value: Node) -> Vec<String> {
    let mut path = Vec::with_capacity(components.len());
    let mut node = root;
    for (i, component) in components.iter().enumerate() {
        match node {
            Node::Map(_) => {}
            // `storage: inmemory` is registry:2's short form of `storage: {inmemory: }`.
            Node::Scalar(name) => *node = Node::Map(vec![(std::mem::take(name), Node::Null)]),
            Node::Null | Node::Seq(_) => *node = Node::map(),
        }
        let Node::Map(entries) = node else {
            unreachable!("made a mapping just above")
        };
        let index = match entries
            .iter()
            .position(|(k, _)| k.to_uppercase() == *component)
        {
            Some(index) => index,
            None => {
                entries.push((component.to_lowercase(), Node::Null));
                entries.len() - 1
            }
        };
        let (key, child) = &mut entries[index];
        path.push(key.clone());
        if i + 1 == components.len() {
            *child = value;
            break;
        }
        node = child;
    }
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn applied(file: &str, vars: &[(&str, &str)]) -> (Node, Origins, Vec<Warning>) {
        let mut root = yaml::parse(file).unwrap();
        let (origins, warnings) = apply(&mut root, &env(vars));
        (root, origins, warnings)
    }

    fn path(p: &str) -> Vec<String> {
        p.split('.').map(str::to_string).collect()
    }

    #[test]
    fn variables_set_keys_and_create_sections() {
        let (root, origins, warnings) = applied(
            "http:\n  addr: :5000\n",
            &[
                ("REGISTRY_HTTP_ADDR", "127.0.0.1:0"),
                ("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", "/srv"),
                ("REGISTRY_STORAGE_DELETE_ENABLED", "true"),
                ("OTHER", "x"),
            ],
        );
        let want = yaml::parse(
            "http:\n  addr: 127.0.0.1:0\nstorage:\n  delete:\n    enabled: true\n  filesystem:\n    rootdirectory: /srv\n",
        )
        .unwrap();
        assert_eq!(root, want);
        assert!(warnings.is_empty());
        assert_eq!(
            origins.var_for(&path("http.addr")),
            Some("REGISTRY_HTTP_ADDR")
        );
        assert_eq!(origins.var_for(&path("http.host")), None);
        assert_eq!(
            origins.var_for(&path("storage.delete.enabled")),
            Some("REGISTRY_STORAGE_DELETE_ENABLED")
        );
    }

    #[test]
    fn components_match_keys_without_case_and_keep_the_files_spelling() {
        let (root, origins, _) = applied(
            "http:\n  headers:\n    X-Content-Type-Options: [nosniff]\n",
            &[("REGISTRY_HTTP_HEADERS_X-CONTENT-TYPE-OPTIONS", "[sniff]")],
        );
        let want = yaml::parse("http:\n  headers:\n    X-Content-Type-Options: [sniff]\n").unwrap();
        assert_eq!(root, want);
        assert_eq!(
            origins.var_for(&path("http.headers.X-Content-Type-Options")),
            Some("REGISTRY_HTTP_HEADERS_X-CONTENT-TYPE-OPTIONS")
        );
    }

    #[test]
    fn values_are_yaml_or_text() {
        let (root, _, _) = applied(
            "",
            &[
                ("REGISTRY_LOG_FIELDS", "{service: registry, env: prod}"),
                ("REGISTRY_HTTP_SECRET", "*not-an-alias"),
                ("REGISTRY_PROXY_PASSWORD", "'0123'"),
                ("REGISTRY_PROXY_USERNAME", "0123"),
            ],
        );
        let want = yaml::parse(
            "http:\n  secret: '*not-an-alias'\nlog:\n  fields: {service: registry, env: prod}\n\
             proxy:\n  password: '0123'\n  username: '0123'\n",
        )
        .unwrap();
        assert_eq!(root, want);
    }

    #[test]
    fn sections_apply_before_their_keys() {
        let (root, origins, _) = applied(
            "",
            &[
                ("REGISTRY_HTTP_ADDR", ":1"),
                ("REGISTRY_HTTP", "{addr: ':2', host: 'https://h'}"),
            ],
        );
        let want = yaml::parse("http: {addr: ':1', host: 'https://h'}\n").unwrap();
        assert_eq!(root, want);
        assert_eq!(
            origins.var_for(&path("http.addr")),
            Some("REGISTRY_HTTP_ADDR")
        );
        assert_eq!(origins.var_for(&path("http.host")), Some("REGISTRY_HTTP"));
    }

    #[test]
    fn empty_and_odd_variables() {
        let (root, _, warnings) = applied(
            "http:\n  addr: :5000\n",
            &[
                ("REGISTRY_HTTP_ADDR", ""),
                ("REGISTRY_CONFIGURATION_PATH", "/etc/registry.yml"),
                ("REGISTRY_VERSION", "0.2"),
                ("REGISTRY_HTTP__ADDR", "x"),
            ],
        );
        assert_eq!(root, yaml::parse("http:\n  addr: :5000\n").unwrap());
        let names: Vec<_> = warnings.iter().map(|w| w.key.as_str()).collect();
        assert_eq!(names, ["REGISTRY_HTTP__ADDR", "REGISTRY_VERSION"]);
    }

    #[test]
    fn a_scalar_in_the_way_is_read_as_a_section_name() {
        let (root, _, _) = applied(
            "storage: inmemory\n",
            &[("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", "/x")],
        );
        assert_eq!(
            root,
            yaml::parse("storage:\n  inmemory:\n  filesystem:\n    rootdirectory: /x\n").unwrap()
        );
    }
}
