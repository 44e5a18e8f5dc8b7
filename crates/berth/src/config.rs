//! Configuration: a registry:2-style YAML file, overridden by registry:2's environment variables.
//!
//! Two stages, so that every error names the setting at fault: [`RawConfig`] holds each value as read (text,
//! with where it came from: a key of the file or an environment variable), and [`RawConfig::validate`]
//! turns it into the typed [`Config`]. Reading and validating are pure functions of the file's text and of
//! an environment given as a map, so tests never touch the process environment.
//!
//! Read so far: `http.addr`, `storage.filesystem.rootdirectory`, `storage.delete.enabled`, with the overrides
//! `REGISTRY_HTTP_ADDR`, `REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY`, `REGISTRY_STORAGE_DELETE_ENABLED`.
//! Any other key is reported (and ignored) so that a registry:2 file can be used as it is; `version`, which
//! every registry:2 file carries and which says nothing berth needs, is accepted silently.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use serde_yaml::Value;

mod auth;

/// Where berth listens when nothing says otherwise: loopback only, so a first run exposes nothing.
pub const DEFAULT_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5000);
/// Where berth keeps its data when nothing says otherwise (relative to the working directory).
pub const DEFAULT_ROOT: &str = "./berth-data";

/// The validated configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub addr: SocketAddr,
    /// Blobs live under it, metadata in `<root>/metadata.sqlite`.
    pub root: PathBuf,
    pub delete_enabled: bool,
    /// `auth` and `access` (see `config/auth.rs`).
    pub auth: ::auth::Settings,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("the configuration is not valid YAML: {0}")]
    Yaml(#[from] serde_yaml::Error),
    #[error("the configuration must be a YAML mapping of keys to settings")]
    NotAMapping,
    /// `key` is a dotted key of the file or the name of an environment variable.
    #[error("{key}: {reason}")]
    Invalid { key: String, reason: String },
}

/// One setting as read: its text, and the key or variable it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Setting {
    text: String,
    from: String,
}

impl Setting {
    fn invalid(&self, reason: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            key: self.from.clone(),
            reason: format!("{:?}: {}", self.text, reason.into()),
        }
    }
}

/// The configuration as read, before validation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawConfig {
    addr: Option<Setting>,
    root: Option<Setting>,
    delete_enabled: Option<Setting>,
    auth: auth::RawAuth,
    /// Keys of the file that berth does not read (dotted, at the level where they leave the known tree).
    pub unknown_keys: Vec<String>,
}

/// The settings berth reads: (dotted key, environment variable).
const ADDR: (&str, &str) = ("http.addr", "REGISTRY_HTTP_ADDR");
const ROOT: (&str, &str) = (
    "storage.filesystem.rootdirectory",
    "REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY",
);
const DELETE: (&str, &str) = ("storage.delete.enabled", "REGISTRY_STORAGE_DELETE_ENABLED");

/// Keys accepted without a warning though berth reads nothing from them.
const IGNORED_SILENTLY: &[&str] = &["version"];

impl RawConfig {
    /// Reads the file's text. An empty file (or one holding only comments) is an empty configuration.
    pub fn from_yaml(text: &str) -> Result<RawConfig, ConfigError> {
        let doc: Value = serde_yaml::from_str(text)?;
        let root = match &doc {
            Value::Null => return Ok(RawConfig::default()),
            Value::Mapping(_) => &doc,
            _ => return Err(ConfigError::NotAMapping),
        };
        let mut unknown = Vec::new();
        let known: Vec<&str> = [ADDR.0, ROOT.0, DELETE.0]
            .into_iter()
            .chain(auth::KNOWN.iter().copied())
            .collect();
        collect_unknown(root, "", &known, &mut unknown);
        Ok(RawConfig {
            addr: scalar(root, ADDR.0)?,
            root: scalar(root, ROOT.0)?,
            delete_enabled: scalar(root, DELETE.0)?,
            auth: auth::RawAuth::from_yaml(root)?,
            unknown_keys: unknown,
        })
    }

    /// Applies the environment overrides, which win over the file. Empty variables count as unset.
    pub fn apply_env(&mut self, env: &HashMap<String, String>) {
        for (slot, var) in [
            (&mut self.addr, ADDR.1),
            (&mut self.root, ROOT.1),
            (&mut self.delete_enabled, DELETE.1),
        ] {
            if let Some(text) = env.get(var).filter(|v| !v.is_empty()) {
                *slot = Some(Setting {
                    text: text.clone(),
                    from: var.to_string(),
                });
            }
        }
        self.auth.apply_env(env);
    }

    pub fn validate(self) -> Result<Config, ConfigError> {
        let addr = match &self.addr {
            Some(s) => parse_addr(&s.text).map_err(|reason| s.invalid(reason))?,
            None => DEFAULT_ADDR,
        };
        let root = match &self.root {
            Some(s) if s.text.trim().is_empty() => return Err(s.invalid("must not be empty")),
            Some(s) => PathBuf::from(&s.text),
            None => PathBuf::from(DEFAULT_ROOT),
        };
        let delete_enabled = match &self.delete_enabled {
            Some(s) => parse_bool(&s.text).ok_or_else(|| s.invalid("expected true or false"))?,
            None => false,
        };
        Ok(Config {
            addr,
            root,
            delete_enabled,
            auth: self.auth.validate()?,
        })
    }
}

/// The whole load: file text (if any), then environment, then validation. Returns the configuration and
/// the file's unknown keys, for the caller to warn about once logging is up.
pub fn load(
    file: Option<&str>,
    env: &HashMap<String, String>,
) -> Result<(Config, Vec<String>), ConfigError> {
    let mut raw = match file {
        Some(text) => RawConfig::from_yaml(text)?,
        None => RawConfig::default(),
    };
    raw.apply_env(env);
    let unknown = std::mem::take(&mut raw.unknown_keys);
    Ok((raw.validate()?, unknown))
}

/// The scalar at dotted `key`, as text. A mapping or list there is an error naming the key.
fn scalar(root: &Value, key: &str) -> Result<Option<Setting>, ConfigError> {
    let mut v = root;
    for part in key.split('.') {
        match v.get(part) {
            Some(next) => v = next,
            None => return Ok(None),
        }
    }
    let text = match v {
        Value::Null => return Ok(None),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        _ => {
            return Err(ConfigError::Invalid {
                key: key.to_string(),
                reason: "expected a single value, not a mapping or a list".to_string(),
            });
        }
    };
    Ok(Some(Setting {
        text,
        from: key.to_string(),
    }))
}

/// Adds to `out` every key under `v` (at `prefix`) that is neither one of `known` nor on the way to one.
fn collect_unknown(v: &Value, prefix: &str, known: &[&str], out: &mut Vec<String>) {
    let Value::Mapping(map) = v else { return };
    for (k, child) in map {
        let name = match k {
            Value::String(s) => s.clone(),
            other => serde_yaml::to_string(other)
                .map(|s| s.trim().to_string())
                .unwrap_or_default(),
        };
        let path = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}.{name}")
        };
        if known.contains(&path.as_str()) || IGNORED_SILENTLY.contains(&path.as_str()) {
            continue;
        }
        let on_the_way = known.iter().any(|k| {
            k.strip_prefix(path.as_str())
                .is_some_and(|rest| rest.starts_with('.'))
        });
        if on_the_way {
            collect_unknown(child, &path, known, out);
        } else {
            out.push(path);
        }
    }
}

/// registry:2's listen address: `host:port`, where an empty host (`:5000`) means every interface.
/// Hosts are IP literals (IPv6 in brackets) or `localhost`; berth does not resolve other names, so a
/// listener never ends up on an address nobody expected.
fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let (host, port) = s
        .rsplit_once(':')
        .ok_or("expected host:port, or :port for every interface")?;
    let port: u16 = port
        .parse()
        .map_err(|_| format!("{port:?} is not a port number"))?;
    let ip = match host {
        "" => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        other => other.parse().map_err(|_| {
            format!("{other:?} is not an IP address (use an IP, localhost, or :port)")
        })?,
    };
    Ok(SocketAddr::new(ip, port))
}

/// Booleans as YAML 1.1 and Go's strconv spell them, which registry:2 configurations use.
fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" | "t" | "y" => Some(true),
        "false" | "no" | "off" | "0" | "f" | "n" => Some(false),
        _ => None,
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

    fn invalid_key(e: ConfigError) -> String {
        match e {
            ConfigError::Invalid { key, .. } => key,
            other => panic!("expected an invalid setting, got {other:?}"),
        }
    }

    const REGISTRY2: &str = r#"
version: 0.1
log:
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/registry
    maxthreads: 100
  delete:
    enabled: true
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: true
"#;

    #[test]
    fn reads_a_registry2_file_and_names_what_it_ignores() {
        let (config, unknown) = load(Some(REGISTRY2), &env(&[])).unwrap();
        assert_eq!(
            config,
            Config {
                addr: "0.0.0.0:5000".parse().unwrap(),
                root: PathBuf::from("/var/lib/registry"),
                delete_enabled: true,
                auth: ::auth::Settings::default(),
            }
        );
        assert_eq!(
            unknown,
            [
                "log",
                "storage.cache",
                "storage.filesystem.maxthreads",
                "http.headers",
                "health"
            ]
        );
    }

    #[test]
    fn defaults_without_a_file_or_with_an_empty_one() {
        let want = Config {
            addr: DEFAULT_ADDR,
            root: PathBuf::from(DEFAULT_ROOT),
            delete_enabled: false,
            auth: ::auth::Settings::default(),
        };
        assert_eq!(load(None, &env(&[])).unwrap(), (want.clone(), vec![]));
        assert_eq!(
            load(Some("# nothing\n"), &env(&[])).unwrap(),
            (want, vec![])
        );
        assert_eq!(DEFAULT_ADDR.to_string(), "127.0.0.1:5000");
    }

    #[test]
    fn environment_wins_over_the_file() {
        let e = env(&[
            ("REGISTRY_HTTP_ADDR", "127.0.0.1:0"),
            ("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", "/srv/berth"),
            ("REGISTRY_STORAGE_DELETE_ENABLED", "false"),
            ("REGISTRY_UNRELATED", "x"),
        ]);
        let (config, _) = load(Some(REGISTRY2), &e).unwrap();
        assert_eq!(config.addr, "127.0.0.1:0".parse().unwrap());
        assert_eq!(config.root, PathBuf::from("/srv/berth"));
        assert!(!config.delete_enabled);

        // Without a file too, and an empty variable counts as unset.
        let e = env(&[
            ("REGISTRY_STORAGE_DELETE_ENABLED", "true"),
            ("REGISTRY_HTTP_ADDR", ""),
        ]);
        let (config, _) = load(None, &e).unwrap();
        assert!(config.delete_enabled);
        assert_eq!(config.addr, DEFAULT_ADDR);
    }

    #[test]
    fn listen_addresses() {
        let cases: &[(&str, Option<&str>)] = &[
            (":5000", Some("0.0.0.0:5000")),
            ("0.0.0.0:80", Some("0.0.0.0:80")),
            ("127.0.0.1:0", Some("127.0.0.1:0")),
            ("localhost:5001", Some("127.0.0.1:5001")),
            ("[::1]:5000", Some("[::1]:5000")),
            ("example.com:5000", None),
            ("5000", None),
            (":99999", None),
            (":port", None),
            ("", None),
        ];
        for (text, want) in cases {
            let got = parse_addr(text).ok().map(|a| a.to_string());
            assert_eq!(got.as_deref(), *want, "{text:?}");
        }
    }

    #[test]
    fn errors_name_the_key_or_the_variable() {
        let bad_addr = "http:\n  addr: nowhere\n";
        assert_eq!(
            invalid_key(load(Some(bad_addr), &env(&[])).unwrap_err()),
            "http.addr"
        );
        let bad_bool = "storage:\n  delete:\n    enabled: maybe\n";
        assert_eq!(
            invalid_key(load(Some(bad_bool), &env(&[])).unwrap_err()),
            "storage.delete.enabled"
        );
        let nested = "storage:\n  filesystem:\n    rootdirectory: {a: 1}\n";
        assert_eq!(
            invalid_key(load(Some(nested), &env(&[])).unwrap_err()),
            "storage.filesystem.rootdirectory"
        );
        let e = env(&[("REGISTRY_STORAGE_DELETE_ENABLED", "sometimes")]);
        let err = load(None, &e).unwrap_err();
        assert!(err.to_string().contains("sometimes"), "{err}");
        assert_eq!(invalid_key(err), "REGISTRY_STORAGE_DELETE_ENABLED");
        let e = env(&[("REGISTRY_HTTP_ADDR", "bad")]);
        assert_eq!(
            invalid_key(load(None, &e).unwrap_err()),
            "REGISTRY_HTTP_ADDR"
        );
        let empty_root = "storage:\n  filesystem:\n    rootdirectory: ''\n";
        assert_eq!(
            invalid_key(load(Some(empty_root), &env(&[])).unwrap_err()),
            "storage.filesystem.rootdirectory"
        );
    }

    #[test]
    fn malformed_files_are_refused() {
        assert!(matches!(
            load(Some("- a list\n"), &env(&[])),
            Err(ConfigError::NotAMapping)
        ));
        assert!(matches!(
            load(Some("http: [unclosed\n"), &env(&[])),
            Err(ConfigError::Yaml(_))
        ));
    }

    #[test]
    fn yaml_and_go_booleans() {
        for t in ["true", "True", "yes", "on", "1"] {
            assert_eq!(parse_bool(t), Some(true), "{t}");
        }
        for f in ["false", "FALSE", "no", "off", "0"] {
            assert_eq!(parse_bool(f), Some(false), "{f}");
        }
        assert_eq!(parse_bool("2"), None);
    }
}
