//! registry:2's environment overrides: `REGISTRY_<PATH>`, where `<PATH>` is the key's components upper-cased
//! and joined by `_` (`REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY` is `storage.filesystem.rootdirectory`).
//!
//! They are applied to the document tree before anything reads it, as registry:2 does, so a variable can
//! set any key, create a section the file lacks, or replace a whole section with YAML
//! (`REGISTRY_HTTP_HEADERS='{X-Frame-Options: [DENY]}'`). The rules follow registry:2's parser:
//! - variables apply in the order of their names, so a section's variable comes before its keys';
//! - a component matches an existing key of the file without regard to case, else it becomes a new
//!   lower-case key (every registry:2 key is lower case and has no `_`);
//! - the value is read as YAML (`true`, `[a, b]`, `'quoted'`), or taken as text if it is not YAML;
//! - a numeric component indexes a list, as registry:3's parser does for list fields
//!   (`REGISTRY_NOTIFICATIONS_ENDPOINTS_0_URL`, `REGISTRY_HTTP_TLS_CLIENTCAS_1`): an existing element,
//!   or one past the last, which appends an element (so `_0`, `_1`, ... build a list the file lacks);
//!   further than that is warned of and ignored (registry:3 refuses to start). Where the tree has a
//!   mapping, a numeric component is a key as any other; a single value where a list is indexed is read
//!   as a list of one, as berth reads such keys anyway. Numeric components sort as numbers, so `_10`
//!   comes after `_9`.
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
    vars.sort_by(|a, b| order(a.0).cmp(&order(b.0)));
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
        match set(root, &components, payload(value)) {
            Ok(path) => origins.0.push((path, name.clone())),
            Err(reason) => warnings.push(Warning::new(
                name.clone(),
                WarningKind::Unknown,
                format!("{reason}; ignored"),
            )),
        }
    }
    (origins, warnings)
}

/// The order variables apply in: by name, numeric components as numbers (`_2` before `_10`).
fn order(name: &str) -> Vec<(u64, &str)> {
    name.split('_')
        .map(|c| match c.parse::<u64>() {
            Ok(n) if c.bytes().all(|b| b.is_ascii_digit()) => (n, ""),
            _ => (u64::MAX, c),
        })
        .collect()
}

/// The variable's value as YAML, or as plain text when it is not YAML (`*x`, `%y`, `a: b: c`).
fn payload(value: &str) -> Node {
    match yaml::parse(value) {
        Ok(node) => node,
        Err(_) => Node::Scalar(value.to_string()),
    }
}

/// Sets the key at `components` (upper case) to `value`, creating sections (and list elements) as needed;
/// returns the key's path as the tree spells it, or why it names nothing.
fn set(root: &mut Node, components: &[&str], value: Node) -> Result<Vec<String>, String> {
    let mut path = Vec::with_capacity(components.len());
    let mut node = root;
    for (i, component) in components.iter().enumerate() {
        let last = i + 1 == components.len();
        if let Some(index) = list_index(node, component).filter(|_| i > 0) {
            // A list element: registry:3 indexes list fields; one past the end appends.
            if !matches!(node, Node::Seq(_)) {
                *node = Node::Seq(match std::mem::replace(node, Node::Null) {
                    Node::Null => Vec::new(),
                    single => vec![single],
                });
            }
            let Node::Seq(items) = node else {
                unreachable!("made a list just above")
            };
            if index > items.len() {
                return Err(format!(
                    "{component} is past the end of {} (a list of {}): elements are added one \
                     after the last",
                    path.join("."),
                    items.len()
                ));
            }
            if index == items.len() {
                items.push(Node::Null);
            }
            path.push(index.to_string());
            let child = &mut items[index];
            if last {
                *child = value;
                break;
            }
            node = child;
            continue;
        }
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
        if last {
            *child = value;
            break;
        }
        node = child;
    }
    Ok(path)
}

/// The list index `component` names at `node`: a number, where the tree has a list, nothing yet, or a
/// single value (not where it has a mapping: there a number is a key).
fn list_index(node: &Node, component: &str) -> Option<usize> {
    if !component.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let index = component.parse().ok()?;
    match node {
        Node::Seq(_) | Node::Null | Node::Scalar(_) => Some(index),
        Node::Map(_) => None,
    }
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
    fn numeric_components_index_lists_as_registry3() {
        let (root, origins, warnings) = applied(
            "http:\n  tls:\n    clientcas: [/a.pem, /b.pem]\n",
            &[
                ("REGISTRY_HTTP_TLS_CLIENTCAS_1", "/B.pem"),
                ("REGISTRY_HTTP_TLS_CLIENTCAS_2", "/c.pem"),
                ("REGISTRY_NOTIFICATIONS_ENDPOINTS_0_NAME", "a"),
                ("REGISTRY_NOTIFICATIONS_ENDPOINTS_0_URL", "http://a/"),
                ("REGISTRY_NOTIFICATIONS_ENDPOINTS_1_NAME", "b"),
                ("REGISTRY_PROXY_UPSTREAMS_5_PREFIX", "x"),
            ],
        );
        let want = yaml::parse(
            "http:\n  tls:\n    clientcas: [/a.pem, /B.pem, /c.pem]\n\
             notifications:\n  endpoints:\n    - {name: a, url: 'http://a/'}\n    - {name: b}\n\
             proxy:\n  upstreams: []\n",
        )
        .unwrap();
        assert_eq!(root, want);
        assert_eq!(
            origins.var_for(&path("notifications.endpoints.0.url")),
            Some("REGISTRY_NOTIFICATIONS_ENDPOINTS_0_URL")
        );
        let names: Vec<_> = warnings.iter().map(|w| w.key.as_str()).collect();
        assert_eq!(names, ["REGISTRY_PROXY_UPSTREAMS_5_PREFIX"]);
        assert!(
            warnings[0].message.contains("past the end"),
            "{}",
            warnings[0].message
        );
    }

    #[test]
    fn list_indexes_sort_as_numbers_and_a_single_value_is_a_list_of_one() {
        let vars: Vec<(String, String)> = (0..12)
            .map(|i| {
                (
                    format!("REGISTRY_HTTP_TLS_CLIENTCAS_{i}"),
                    format!("/{i}.pem"),
                )
            })
            .collect();
        let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let (root, _, warnings) = applied("", &vars);
        assert!(warnings.is_empty(), "{warnings:?}");
        let list: Vec<String> = (0..12).map(|i| format!("/{i}.pem")).collect();
        let want = yaml::parse(&format!(
            "http:\n  tls:\n    clientcas: [{}]\n",
            list.join(", ")
        ))
        .unwrap();
        assert_eq!(root, want);

        let (root, _, _) = applied(
            "http:\n  tls:\n    clientcas: /a.pem\n",
            &[("REGISTRY_HTTP_TLS_CLIENTCAS_1", "/b.pem")],
        );
        assert_eq!(
            root,
            yaml::parse("http:\n  tls:\n    clientcas: [/a.pem, /b.pem]\n").unwrap()
        );
        // Where the file has a mapping, a number is a key.
        let (root, _, _) = applied(
            "log:\n  fields:\n    a: b\n",
            &[("REGISTRY_LOG_FIELDS_7", "x")],
        );
        assert_eq!(
            root,
            yaml::parse("log:\n  fields:\n    a: b\n    '7': x\n").unwrap()
        );
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
