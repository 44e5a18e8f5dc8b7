//! berth's configuration loader, `config::load(file, env)`: registry:2's YAML with its `REGISTRY_*`
//! overrides, every section validated.
//!
//! The loader lives in the `berth` binary crate, which a fuzz crate cannot depend on. Rather than split a
//! library out of the binary for this alone, its `config` module is compiled in here from its own files
//! (`#[path]`): the module is a pure function of text and a map (it uses `crate::` only in its tests), so
//! it needs nothing of the binary, and a change to it that broke this would fail the fuzz build in CI.
//!
//! The input is `NAME=value` lines, a `%%` line, then the file (no `%%` line: all file; nothing after it:
//! no file). Checked: no panic, and what `berth config check` prints of an accepted configuration loads
//! back, with no variables, to a configuration that prints the same (the emitter quotes whatever would read
//! back as another type; a setting printed in a form it does not read back would be a bug).

#![no_main]

use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../crates/berth/src/config/mod.rs"]
mod config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (vars, file) = match text.split_once("%%\n") {
        Some((vars, file)) => (vars, file),
        None => ("", text),
    };
    let env: HashMap<String, String> = vars
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let file = (!file.is_empty()).then_some(file);

    let Ok(loaded) = config::load(file, &env) else {
        return;
    };
    let printed =
        config::yaml::to_string(&loaded.config.to_yaml()).expect("the configuration prints");
    let again = match config::load(Some(&printed), &HashMap::new()) {
        Ok(again) => again,
        Err(e) => panic!("the printed configuration does not load: {e}\n{printed}"),
    };
    let reprinted =
        config::yaml::to_string(&again.config.to_yaml()).expect("the configuration prints");
    assert_eq!(
        printed, reprinted,
        "printed, loaded and printed again differs"
    );
});
