//! The `berth` binary: command line, configuration loading, logging, and the wiring of the crates into a
//! running registry.
//!
//! Everything with a rule in it lives in the library crates; this crate only reads the configuration,
//! opens the stores it names and hands them to the HTTP server. `anyhow` is used here (and only here) to
//! report a failed start with its context.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use maintenance::Job;
use telemetry::Traces;

mod config;
mod config_path;
mod health_probe;
mod logging;
mod maintenance;
mod memory;
mod serve;
mod telemetry;

/// `berth --version`: the crate's version and the commit it was built from (build.rs finds it).
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (commit ",
    env!("BERTH_GIT_COMMIT"),
    ")"
);

/// A private OCI container image registry, a drop-in for registry:2.
#[derive(Debug, Parser)]
#[command(name = "berth", version = VERSION, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// The configuration file (registry:2 YAML); else `REGISTRY_CONFIGURATION_PATH`, else
    /// /etc/distribution/config.yml if it exists, else none.
    #[arg(long, short = 'c', global = true, value_name = "CONFIG")]
    config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the registry (the default when no command is given).
    Serve {
        /// The configuration file, as registry:2 takes it (`registry serve config.yml`).
        #[arg(value_name = "CONFIG")]
        config_file: Option<PathBuf>,
    },
    /// Work with the configuration.
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Delete the blobs no manifest references that nothing wanted for the grace period, while the
    /// registry keeps serving (registry:2's `garbage-collect`, without its need to stop the registry).
    /// Prints each blob deleted and a summary line.
    #[command(alias = "gc")]
    GarbageCollect {
        #[arg(value_name = "CONFIG")]
        config_file: Option<PathBuf>,
        /// Print what would be deleted, delete nothing.
        #[arg(long, short = 'd')]
        dry_run: bool,
        /// Also delete the manifests no tag reaches (the children of a tagged index, the subject and
        /// the referrers of a tagged manifest stay), with their blobs; default: `gc.deleteuntagged`.
        #[arg(long, short = 'm')]
        delete_untagged: bool,
        /// Keep blobs wanted within this long (e.g. 30m, 2h; 0 takes every unreferenced blob now, safe
        /// only while nothing is pushed); default: the configuration's `gc.grace` (1h).
        #[arg(long, value_name = "DURATION")]
        grace: Option<String>,
    },
    /// Apply the configuration's retention rules once: delete the tags no rule keeps (and, where a
    /// rule says `untagged`, the old manifests no tag reaches). Prints each deletion, a line per rule
    /// and a summary; the garbage collector frees the bytes afterwards.
    Retention {
        #[arg(value_name = "CONFIG")]
        config_file: Option<PathBuf>,
        /// Print what would be deleted, delete nothing.
        #[arg(long, short = 'd')]
        dry_run: bool,
    },
    /// Verify every blob's bytes against its digest and every blob the metadata records against the
    /// store, at `scrub.rate`, continuing where a stopped scrub left off. Prints each corrupt or
    /// missing blob and a summary line.
    Scrub {
        #[arg(value_name = "CONFIG")]
        config_file: Option<PathBuf>,
        /// Quarantine the blobs whose bytes are wrong: they are never served again (a pull answers
        /// BLOB_UNKNOWN) until pushed anew.
        #[arg(long)]
        repair: bool,
        /// Bytes hashed per second at most (e.g. 50M; 0: no limit); default: `scrub.rate` (100M).
        #[arg(long, value_name = "SIZE")]
        rate: Option<String>,
    },
    /// Import images into berth's stores: without a source, the registry:2 tree beside berth's data
    /// (as `berth import registry2`).
    #[command(args_conflicts_with_subcommands = true)]
    Import {
        #[command(subcommand)]
        source: Option<ImportSource>,
        #[command(flatten)]
        registry2: Registry2Import,
    },
    /// Probe a running berth: exit 0 when its health endpoint answers 200 (the image's HEALTHCHECK:
    /// there is no curl in it). Without URL, `/healthz` on the address the configuration names.
    Health {
        /// The endpoint to probe, plain HTTP (e.g. http://127.0.0.1:5000/healthz).
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
}

/// Where `berth import` reads from.
#[derive(Debug, Subcommand)]
enum ImportSource {
    /// Index the registry:2 tree beside berth's data (`<rootdirectory>/docker/registry/v2/`) into
    /// berth's metadata, so that berth serves registry:2's images where their bytes lie, copying none
    /// and writing nothing into the tree. Prints each thing not imported (schema1 manifests, missing
    /// or corrupt blobs, tags on deleted manifests) with the reason, and a summary line.
    Registry2(Registry2Import),
    /// Push the images of OCI image layouts into berth's stores (skopeo's `oci:` directories, `podman
    /// save --format oci-dir`, a zot storage root of one layout per repository): each `index.json`
    /// entry named by `org.opencontainers.image.ref.name` becomes a tag. Blobs berth already holds are
    /// linked, not copied. Prints each entry left out with the reason, and a summary line.
    Oci {
        /// A layout (holding `oci-layout`), or a directory of layouts, one per repository, named by
        /// their paths below it.
        #[arg(value_name = "DIR")]
        dir: PathBuf,
        /// The repository of the layout (or the prefix of the layouts' repositories); without it, a
        /// single layout's ref names must be whole references (`name:tag`).
        #[arg(long, value_name = "NAME")]
        repository: Option<String>,
    },
}

/// `berth import registry2`'s arguments.
#[derive(Debug, clap::Args)]
struct Registry2Import {
    #[arg(value_name = "CONFIG")]
    config_file: Option<PathBuf>,
    /// Hash every linked blob's bytes against its digest; a blob that fails is not imported.
    #[arg(long)]
    verify: bool,
    /// Import nothing: say how far the adoption (`berth serve`'s in the background, or the last
    /// `berth import`) got, from the progress kept in the metadata.
    #[arg(long, conflicts_with = "verify")]
    status: bool,
}

/// What the command line asks for, once the configuration file is known.
enum Action {
    Serve,
    CheckConfig,
    Health { url: Option<String> },
    Job(maintenance::Job),
}

/// `berth health`: probes `url`, or the address the configuration names.
fn health(url: Option<String>, path: Option<&Path>, env: &HashMap<String, String>) -> ExitCode {
    let url = match url {
        Some(url) => url,
        None => match load(path, env)
            .map_err(|e| format!("{e:#}"))
            .and_then(|loaded| health_probe::url_for(&loaded.config))
        {
            Ok(url) => url,
            Err(why) => {
                eprintln!("berth: {why}");
                return ExitCode::from(2);
            }
        },
    };
    match health_probe::probe(&url) {
        Ok(status) => {
            println!("{status}");
            ExitCode::SUCCESS
        }
        Err(why) => {
            eprintln!("berth: unhealthy: {why}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Debug, Subcommand)]
enum ConfigAction {
    /// Validate the configuration (file and `REGISTRY_*` variables) and print it as berth reads it, with
    /// defaults filled in and secrets masked. Exits non-zero if it is invalid.
    Check {
        #[arg(value_name = "CONFIG")]
        config_file: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    memory::bound_arenas();
    let cli = Cli::parse();
    let (path, action) = match cli.command {
        None => (Ok(cli.config), Action::Serve),
        Some(Command::Health { url }) => (Ok(cli.config), Action::Health { url }),
        Some(Command::Serve { config_file }) => (one_path(config_file, cli.config), Action::Serve),
        Some(Command::Config {
            action: ConfigAction::Check { config_file },
        }) => (one_path(config_file, cli.config), Action::CheckConfig),
        Some(Command::GarbageCollect {
            config_file,
            dry_run,
            delete_untagged,
            grace,
        }) => (
            one_path(config_file, cli.config),
            Action::Job(Job::GarbageCollect {
                dry_run,
                delete_untagged,
                grace,
            }),
        ),
        Some(Command::Retention {
            config_file,
            dry_run,
        }) => (
            one_path(config_file, cli.config),
            Action::Job(Job::Retention { dry_run }),
        ),
        Some(Command::Scrub {
            config_file,
            repair,
            rate,
        }) => (
            one_path(config_file, cli.config),
            Action::Job(Job::Scrub { repair, rate }),
        ),
        Some(Command::Import {
            source: Some(ImportSource::Oci { dir, repository }),
            ..
        }) => (
            Ok(cli.config),
            Action::Job(Job::ImportOci { dir, repository }),
        ),
        Some(Command::Import { source, registry2 }) => {
            let Registry2Import {
                config_file,
                verify,
                status,
            } = match source {
                Some(ImportSource::Registry2(args)) => args,
                _ => registry2,
            };
            let job = if status {
                Job::ImportStatus
            } else {
                Job::Import { verify }
            };
            (one_path(config_file, cli.config), Action::Job(job))
        }
    };
    let path = match path {
        Ok(path) => path,
        Err(e) => {
            eprintln!("berth: {e}");
            return ExitCode::from(2);
        }
    };
    let env: HashMap<String, String> = std::env::vars().collect();
    let path = config_path::choose(path, &env, Path::new(config_path::DEFAULT_CONFIG_PATH));
    match action {
        Action::Serve => serve(path.as_deref(), &env),
        Action::CheckConfig => check_config(path.as_deref(), &env),
        Action::Health { url } => health(url, path.as_deref(), &env),
        Action::Job(job) => match load(path.as_deref(), &env) {
            Ok(loaded) => maintenance::run(job, loaded),
            Err(e) => {
                eprintln!("berth: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

/// The configuration file given either as an argument or with `--config`, not both.
fn one_path(arg: Option<PathBuf>, flag: Option<PathBuf>) -> Result<Option<PathBuf>, &'static str> {
    match (arg, flag) {
        (Some(_), Some(_)) => {
            Err("give the configuration file either as CONFIG or with --config, not both")
        }
        (a, b) => Ok(a.or(b)),
    }
}

/// Reads and validates the configuration: the file at `path` (if any) with the environment's overrides.
fn load(path: Option<&Path>, env: &HashMap<String, String>) -> anyhow::Result<config::Loaded> {
    let text = path
        .map(|p| {
            std::fs::read_to_string(p)
                .with_context(|| format!("reading the configuration file {}", p.display()))
        })
        .transpose()?;
    config::load(text.as_deref(), env).with_context(|| match path {
        Some(p) => format!("configuration {}", p.display()),
        None => "configuration from the environment".to_string(),
    })
}

fn serve(path: Option<&Path>, env: &HashMap<String, String>) -> ExitCode {
    let loaded = match load(path, env) {
        Ok(loaded) => loaded,
        Err(e) => {
            logging::init_default();
            tracing::error!("{e:#}");
            eprintln!("berth: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let traces = match telemetry::Traces::from_env(env) {
        Ok(traces) => traces,
        Err(e) => {
            logging::init(&loaded.config.log, None);
            tracing::error!("{e}");
            eprintln!("berth: {e}");
            return ExitCode::FAILURE;
        }
    };
    logging::init(&loaded.config.log, traces.as_ref().map(Traces::tracer));
    for w in &loaded.warnings {
        tracing::warn!(key = %w.key, "configuration: {}", w.message);
    }
    if let Some(traces) = &traces {
        traces.propagate();
        for w in &traces.warnings {
            tracing::warn!("OpenTelemetry: {w}");
        }
        tracing::info!("exporting traces over OTLP/HTTP (OTEL_TRACES_EXPORTER=otlp)");
    }
    let result = serve::run(loaded.config, traces.is_some());
    // After the runtime stopped: the spans of the last requests are flushed, within a bound.
    if let Some(traces) = traces {
        traces.shutdown();
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("berth: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `berth config check`: warnings and errors on stderr, the effective configuration on stdout.
fn check_config(path: Option<&Path>, env: &HashMap<String, String>) -> ExitCode {
    let loaded = match load(path, env) {
        Ok(loaded) => loaded,
        Err(e) => {
            eprintln!("berth: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    for w in &loaded.warnings {
        eprintln!("warning: {w}");
    }
    match config::yaml::to_string(&loaded.config.to_yaml()) {
        Ok(yaml) => {
            print!("{yaml}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("berth: printing the configuration: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("berth").chain(args.iter().copied()))
    }

    #[test]
    fn command_lines() {
        let cli = parse(&[]).unwrap();
        assert!(cli.command.is_none() && cli.config.is_none());

        let cli = parse(&["serve", "a.yml"]).unwrap();
        assert!(
            matches!(cli.command, Some(Command::Serve { config_file: Some(p) }) if p == Path::new("a.yml"))
        );

        let cli = parse(&["serve", "--config", "b.yml"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Serve { config_file: None })
        ));
        assert_eq!(cli.config, Some(PathBuf::from("b.yml")));

        let cli = parse(&["--config", "c.yml"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.config, Some(PathBuf::from("c.yml")));

        let cli = parse(&["config", "check", "d.yml"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Config { action: ConfigAction::Check { config_file: Some(p) } }) if p == Path::new("d.yml")
        ));
        let cli = parse(&["config", "check", "--config", "e.yml"]).unwrap();
        assert_eq!(cli.config, Some(PathBuf::from("e.yml")));

        let cli = parse(&["garbage-collect", "f.yml", "--dry-run", "--grace", "0"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::GarbageCollect { config_file: Some(p), dry_run: true, delete_untagged: false, grace: Some(g) })
                if p == Path::new("f.yml") && g == "0"
        ));
        let cli = parse(&["gc", "-d", "-m"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::GarbageCollect {
                config_file: None,
                dry_run: true,
                delete_untagged: true,
                grace: None
            })
        ));

        let cli = parse(&["retention", "-d"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Retention {
                config_file: None,
                dry_run: true
            })
        ));
        let cli = parse(&["scrub", "g.yml", "--repair", "--rate", "50M"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Scrub { config_file: Some(p), repair: true, rate: Some(r) })
                if p == Path::new("g.yml") && r == "50M"
        ));

        let cli = parse(&["import", "h.yml", "--verify"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Import { source: None, registry2: Registry2Import { config_file: Some(p), verify: true, status: false } })
                if p == Path::new("h.yml")
        ));
        let cli = parse(&["import", "registry2", "--verify", "i.yml"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Import {
                source: Some(ImportSource::Registry2(Registry2Import { config_file: Some(p), verify: true, status: false })),
                ..
            }) if p == Path::new("i.yml")
        ));
        let cli = parse(&["import"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Import {
                source: None,
                registry2: Registry2Import {
                    config_file: None,
                    verify: false,
                    status: false
                }
            })
        ));
        let cli = parse(&["import", "--status"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Import {
                registry2: Registry2Import { status: true, .. },
                ..
            })
        ));
        assert!(parse(&["import", "--status", "--verify"]).is_err());

        let cli = parse(&["import", "oci", "/l", "--repository", "a/b", "-c", "c.yml"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Import { source: Some(ImportSource::Oci { dir, repository: Some(r) }), .. })
                if dir == Path::new("/l") && r == "a/b"
        ));
        assert_eq!(cli.config, Some(PathBuf::from("c.yml")));
        assert!(parse(&["import", "oci"]).is_err(), "DIR is required");

        assert!(parse(&["frobnicate"]).is_err());
        assert!(parse(&["config"]).is_err());
    }

    #[test]
    fn one_configuration_file_at_a_time() {
        let p = |s: &str| Some(PathBuf::from(s));
        assert_eq!(one_path(p("a"), None), Ok(p("a")));
        assert_eq!(one_path(None, p("b")), Ok(p("b")));
        assert_eq!(one_path(None, None), Ok(None));
        assert!(one_path(p("a"), p("b")).is_err());
    }
}
