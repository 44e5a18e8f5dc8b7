//! The `berth` binary: command line, logging, and the wiring of the crates into a running registry.
//!
//! Everything with a rule in it lives in the library crates; this crate only reads the configuration,
//! opens the stores it names and hands them to the HTTP server. `anyhow` is used here (and only here) to
//! report a failed start with its context.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

mod config;
mod serve;

/// A private OCI container image registry, a drop-in for registry:2.
#[derive(Debug, Parser)]
#[command(name = "berth", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// The configuration file (registry:2 YAML).
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let config_path = match cli.command {
        None => cli.config,
        Some(Command::Serve { config_file }) => match (config_file, cli.config) {
            (Some(_), Some(_)) => {
                eprintln!(
                    "berth: give the configuration file either as CONFIG or with --config, not both"
                );
                return ExitCode::from(2);
            }
            (a, b) => a.or(b),
        },
    };
    match serve::run(config_path.as_deref()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("berth: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr (stdout carries only the "listening" line), filtered by `RUST_LOG`, `info` by default.
fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

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

        assert!(parse(&["frobnicate"]).is_err());
    }
}
