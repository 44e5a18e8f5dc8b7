//! Which configuration file berth reads: the one the command line names, else the one
//! `REGISTRY_CONFIGURATION_PATH` names, else registry:3's place for it, `/etc/distribution/config.yml`,
//! when that file exists. So berth in registry:3's image conventions (a config mounted there) needs no
//! argument, and a host without the file starts on defaults as before.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::config::CONFIG_PATH_VAR;

/// registry:3's configuration file (registry:2's was `/etc/docker/registry/config.yml`).
pub const DEFAULT_CONFIG_PATH: &str = "/etc/distribution/config.yml";

/// The file to read: `given` (argument or `--config`), the variable, or `default` if it is a file.
pub fn choose(
    given: Option<PathBuf>,
    env: &HashMap<String, String>,
    default: &Path,
) -> Option<PathBuf> {
    given
        .or_else(|| {
            env.get(CONFIG_PATH_VAR)
                .filter(|p| !p.is_empty())
                .map(PathBuf::from)
        })
        .or_else(|| default.is_file().then(|| default.to_path_buf()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_file_is_read_only_when_it_exists_and_nothing_else_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let default = dir.path().join("config.yml");
        let env = |v: &str| HashMap::from([(CONFIG_PATH_VAR.to_owned(), v.to_owned())]);
        let none = HashMap::new();
        // Absent: no file at all, as before.
        assert_eq!(choose(None, &none, &default), None);
        std::fs::write(&default, "version: 0.1\n").unwrap();
        assert_eq!(choose(None, &none, &default), Some(default.clone()));
        assert_eq!(choose(None, &env(""), &default), Some(default.clone()));
        // Anything named wins over it.
        let named = PathBuf::from("/srv/berth.yml");
        assert_eq!(
            choose(None, &env("/srv/berth.yml"), &default),
            Some(named.clone())
        );
        assert_eq!(
            choose(Some(named.clone()), &env("/elsewhere.yml"), &default),
            Some(named)
        );
        // A directory at the default place is not a configuration.
        assert_eq!(choose(None, &none, dir.path()), None);
    }
}
