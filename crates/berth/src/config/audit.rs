//! berth's `audit` section: the audit log, who pushed, deleted, mounted, logged in or was refused what,
//! as JSON lines of its own (registry:2 has none; `berth_http::audit` writes it).
//!
//! ```yaml
//! audit:
//!   path: /var/lib/berth/audit.log   # a file appended to (created 0600); `stderr`: the standard error
//! ```
//!
//! Off without the section (or without `path`): nothing is recorded and nothing is paid. A file that
//! cannot be opened stops the start: asking for an audit log and silently running without one would
//! be worse than not starting.

use std::path::PathBuf;

use super::ConfigError;
use super::read::Section;
use super::yaml::{NOTHING, Printed, mapping, text};

/// The `path` that means the standard error rather than a file.
pub const STDERR: &str = "stderr";

/// Where the audit log goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuditPath {
    File(PathBuf),
    Stderr,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditConfig {
    /// `None`: no audit log.
    pub path: Option<AuditPath>,
}

pub fn read(mut s: Section<'_>) -> Result<AuditConfig, ConfigError> {
    let path = s.scalar("path")?;
    s.finish();
    let path = match path {
        None => None,
        Some(p) => match p.text.trim() {
            "" => return Err(p.invalid("must name a file, or `stderr`")),
            "-" => {
                return Err(p.invalid(
                    "`-` is not taken for a stream: write `stderr` for the standard error",
                ));
            }
            STDERR => Some(AuditPath::Stderr),
            _ => Some(AuditPath::File(PathBuf::from(&p.text))),
        },
    };
    Ok(AuditConfig { path })
}

impl AuditConfig {
    pub fn to_yaml(&self) -> Printed {
        let path = match &self.path {
            None => NOTHING,
            Some(AuditPath::Stderr) => text(STDERR),
            Some(AuditPath::File(p)) => text(p.display().to_string()),
        };
        mapping([("path", path)])
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::super::{load, yaml};
    use super::*;

    fn path(text: &str, env: &[(&str, &str)]) -> Result<Option<AuditPath>, String> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        load(Some(text), &env)
            .map(|l| l.config.audit.path)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_audit_log_is_off_unless_a_path_is_given() {
        assert_eq!(path("version: 0.1\n", &[]), Ok(None));
        assert_eq!(path("audit: {}\n", &[]), Ok(None));
        assert_eq!(
            path("audit:\n  path: /var/lib/berth/audit.log\n", &[]),
            Ok(Some(AuditPath::File("/var/lib/berth/audit.log".into())))
        );
        assert_eq!(
            path("audit:\n  path: stderr\n", &[]),
            Ok(Some(AuditPath::Stderr))
        );
        // registry:2's variable scheme: REGISTRY_<SECTION>_<KEY>, with or without the section in the
        // file, and over the file's value.
        assert_eq!(
            path(
                "version: 0.1\n",
                &[("REGISTRY_AUDIT_PATH", "/from/env.log")]
            ),
            Ok(Some(AuditPath::File("/from/env.log".into())))
        );
        assert_eq!(
            path(
                "audit:\n  path: /file.log\n",
                &[("REGISTRY_AUDIT_PATH", "stderr")]
            ),
            Ok(Some(AuditPath::Stderr))
        );
    }

    #[test]
    fn a_path_that_names_nothing_is_refused_by_key() {
        for bad in ["audit:\n  path: ''\n", "audit:\n  path: '-'\n"] {
            let e = path(bad, &[]).unwrap_err();
            assert!(e.starts_with("audit.path"), "{e}");
        }
        let e = path("version: 0.1\n", &[("REGISTRY_AUDIT_PATH", "-")]).unwrap_err();
        assert!(e.starts_with("REGISTRY_AUDIT_PATH (audit.path)"), "{e}");
    }

    #[test]
    fn an_unknown_key_is_warned_of() {
        let loaded = load(
            Some("audit:\n  path: /a.log\n  rotate: daily\n"),
            &HashMap::new(),
        )
        .unwrap();
        assert!(
            loaded.warnings.iter().any(|w| w.key == "audit.rotate"),
            "{:?}",
            loaded.warnings
        );
    }

    #[test]
    fn the_printed_section_loads_back() {
        for text in [
            "version: 0.1\n",
            "audit:\n  path: /var/log/berth audit.log\n",
            "audit:\n  path: stderr\n",
        ] {
            let first = load(Some(text), &HashMap::new()).unwrap().config.audit;
            let printed =
                yaml::to_string(&load(Some(text), &HashMap::new()).unwrap().config.to_yaml())
                    .unwrap();
            let again = load(Some(&printed), &HashMap::new()).unwrap().config.audit;
            assert_eq!(first, again, "{printed}");
        }
    }
}
