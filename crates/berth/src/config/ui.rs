//! berth's `ui` section: the web interface under `/ui/` (registry:2 has none).
//!
//! ```yaml
//! ui:
//!   enabled: true   # false: no pages; /ui/ and / answer as any path outside the API (404)
//! ```
//!
//! On by default: the pages show nothing the API would not show the same caller (they take the same
//! authentication and access rules), so turning them on opens nothing new.

use super::ConfigError;
use super::read::{Section, parse_or};
use super::values::parse_bool;
use super::yaml::{Printed, flag, mapping};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UiConfig {
    pub enabled: bool,
}

impl Default for UiConfig {
    fn default() -> Self {
        UiConfig { enabled: true }
    }
}

pub fn read(mut s: Section<'_>) -> Result<UiConfig, ConfigError> {
    let enabled = s.scalar("enabled")?;
    s.finish();
    Ok(UiConfig {
        enabled: parse_or(&enabled, true, parse_bool)?,
    })
}

impl UiConfig {
    pub fn to_yaml(&self) -> Printed {
        mapping([("enabled", flag(self.enabled))])
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::super::{load, yaml};

    fn enabled(text: &str, env: &[(&str, &str)]) -> Result<bool, String> {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        load(Some(text), &env)
            .map(|l| l.config.ui.enabled)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_interface_is_on_unless_turned_off() {
        assert_eq!(enabled("version: 0.1\n", &[]), Ok(true));
        assert_eq!(enabled("ui:\n  enabled: false\n", &[]), Ok(false));
        assert_eq!(
            enabled("version: 0.1\n", &[("REGISTRY_UI_ENABLED", "false")]),
            Ok(false)
        );
        let e = enabled("ui:\n  enabled: sometimes\n", &[]).unwrap_err();
        assert!(e.starts_with("ui.enabled"), "{e}");
        let off = load(Some("ui:\n  enabled: false\n"), &HashMap::new()).unwrap();
        let printed = yaml::to_string(&off.config.to_yaml()).unwrap();
        assert_eq!(enabled(&printed, &[]), Ok(false));
    }
}
