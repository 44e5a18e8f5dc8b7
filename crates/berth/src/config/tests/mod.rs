//! Tests of the whole configuration, one file per concern: `samples` (registry:2's sample files load
//! unchanged; the defaults), `sections` (every section's keys), `reading` (durations and booleans as
//! registry:2 writes them, environment overrides, errors that name key, value and what is allowed,
//! warnings for unknown and unimplemented keys, the printed configuration). Here: what they share.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::storage::{DEFAULT_ROOT, Driver};
use super::*;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn load_ok(yaml: &str) -> Loaded {
    load(Some(yaml), &env(&[])).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
}

fn load_env(yaml: Option<&str>, vars: &[(&str, &str)]) -> Loaded {
    load(yaml, &env(vars)).unwrap_or_else(|e| panic!("{e}"))
}

fn error(yaml: &str) -> String {
    match load(Some(yaml), &env(&[])) {
        Ok(_) => panic!("loaded, but should not have:\n{yaml}"),
        Err(e) => e.to_string(),
    }
}

/// The warnings as `(key, kind)`, in order.
fn warned(loaded: &Loaded) -> Vec<(&str, WarningKind)> {
    loaded
        .warnings
        .iter()
        .map(|w| (w.key.as_str(), w.kind))
        .collect()
}

const REGISTRY2_IMAGE: &str = include_str!("../../../tests/configs/registry2-image.yml");
const LIBRARY_IMAGE: &str = include_str!("../../../tests/configs/registry-library-image.yml");
const CONFIG_EXAMPLE: &str = include_str!("../../../tests/configs/config-example.yml");
const CONFIG_DEV: &str = include_str!("../../../tests/configs/config-dev.yml");
const MIRROR: &str = include_str!("../../../tests/configs/mirror.yml");
const TLS_HTPASSWD: &str = include_str!("../../../tests/configs/tls-htpasswd.yml");
const REFERENCE: &str = include_str!("../../../tests/configs/reference.yml");
const REGISTRY3_REFERENCE: &str = include_str!("../../../tests/configs/registry3-reference.yml");
const REGISTRY3_CACHE: &str = include_str!("../../../tests/configs/registry3-cache.yml");
const REGISTRY3_DEV: &str = include_str!("../../../tests/configs/registry3-dev.yml");

use WarningKind::{Adjusted, Deprecated, Ignored, Unknown};

mod notifications;
mod reading;
mod registry3;
mod replication;
mod samples;
mod sections;
