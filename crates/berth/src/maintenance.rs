//! The maintenance commands: one job over the stores the configuration names, beside a running
//! registry or without one (`berth garbage-collect`, `berth retention`, `berth scrub`, `berth import`,
//! `berth import oci`). Each prints what it did line by line and ends with its report's summary line;
//! each exits 1 when another run (of this process or a replica) holds the job's lock.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use crate::config::{self, Config};
use crate::{logging, serve};

/// A job and what the command line says of it.
pub enum Job {
    GarbageCollect {
        dry_run: bool,
        delete_untagged: bool,
        grace: Option<String>,
    },
    Retention {
        dry_run: bool,
    },
    Scrub {
        repair: bool,
        rate: Option<String>,
    },
    Import {
        verify: bool,
    },
    ImportStatus,
    ImportOci {
        dir: PathBuf,
        repository: Option<String>,
    },
}

/// Runs `job` with the configuration `loaded`.
pub fn run(job: Job, loaded: config::Loaded) -> ExitCode {
    let config = &loaded.config;
    logging::init(&config.log, None);
    let outcome = match job {
        Job::GarbageCollect {
            dry_run,
            delete_untagged,
            grace,
        } => garbage_collect(config, dry_run, delete_untagged, grace.as_deref()),
        Job::Retention { dry_run } => retention(config, dry_run),
        Job::Scrub { repair, rate } => scrub(config, repair, rate.as_deref()),
        Job::Import { verify } => import(config, verify),
        Job::ImportStatus => import_status(config),
        Job::ImportOci { dir, repository } => import_oci(config, &dir, repository.as_deref()),
    };
    match outcome {
        Ok(Outcome::Done { lines, summary }) => {
            for line in lines {
                println!("{line}");
            }
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Ok(Outcome::Locked(lock)) => {
            eprintln!("berth: another run holds the job lock `{lock}`; try again later");
            ExitCode::FAILURE
        }
        Err(Refusal::Usage(why)) => {
            eprintln!("berth: {why}");
            ExitCode::from(2)
        }
        Err(Refusal::Failed(e)) => {
            eprintln!("berth: {e:#}");
            ExitCode::FAILURE
        }
    }
}

enum Outcome {
    /// What the job did, a line each, and its summary line.
    Done { lines: Vec<String>, summary: String },
    /// Another run holds this job lock.
    Locked(&'static str),
}

enum Refusal {
    /// The command line or the configuration does not allow the job (exit 2).
    Usage(String),
    Failed(anyhow::Error),
}

impl From<anyhow::Error> for Refusal {
    fn from(e: anyhow::Error) -> Refusal {
        Refusal::Failed(e)
    }
}

fn verb(dry_run: bool) -> &'static str {
    if dry_run { "would delete" } else { "deleted" }
}

fn garbage_collect(
    config: &Config,
    dry_run: bool,
    delete_untagged: bool,
    grace: Option<&str>,
) -> Result<Outcome, Refusal> {
    let grace = match grace.map(config::values::parse_duration) {
        None => config.gc.grace,
        Some(Ok(d)) => d,
        Some(Err(why)) => return Err(Refusal::Usage(format!("--grace: {why}"))),
    };
    let options = registry::gc::GcOptions {
        grace,
        dry_run,
        delete_untagged: delete_untagged || config.gc.delete_untagged,
    };
    let Some(report) = serve::collect_garbage(config, options)? else {
        return Ok(Outcome::Locked(registry::gc::GC_JOB));
    };
    let verb = verb(dry_run);
    let manifests = report
        .manifests
        .iter()
        .map(|(repo, digest)| format!("{verb} manifest {repo}@{digest}"));
    let blobs = report.blobs.iter().map(|d| format!("{verb} blob {d}"));
    Ok(Outcome::Done {
        lines: manifests.chain(blobs).collect(),
        summary: report.to_string(),
    })
}

fn retention(config: &Config, dry_run: bool) -> Result<Outcome, Refusal> {
    if config.retention.rules.is_empty() {
        return Err(Refusal::Usage(
            "the configuration has no retention rules (retention.rules); nothing to do".into(),
        ));
    }
    let Some(report) = serve::apply_retention(config, dry_run)? else {
        return Ok(Outcome::Locked(registry::retention::RETENTION_JOB));
    };
    let verb = verb(dry_run);
    let mut lines = Vec::new();
    for rule in &report.rules {
        for (repo, tag, digest) in &rule.tags {
            lines.push(format!("{verb} tag {repo}:{tag} ({digest})"));
        }
        for (repo, digest) in &rule.manifests {
            lines.push(format!("{verb} manifest {repo}@{digest}"));
        }
    }
    Ok(Outcome::Done {
        lines,
        summary: report.to_string(),
    })
}

fn scrub(config: &Config, repair: bool, rate: Option<&str>) -> Result<Outcome, Refusal> {
    let rate = match rate.map(config::values::parse_size) {
        None => config.scrub.rate,
        Some(Ok(0)) => None,
        Some(Ok(n)) => Some(n),
        Some(Err(why)) => return Err(Refusal::Usage(format!("--rate: {why}"))),
    };
    let options = registry::scrub::ScrubOptions {
        rate,
        repair,
        grace: config.gc.grace,
    };
    let Some(report) = serve::scrub(config, options)? else {
        return Ok(Outcome::Locked(registry::scrub::SCRUB_JOB));
    };
    let corrupt = report.corrupt.iter().map(|d| {
        let fate = if report.quarantined.contains(d) {
            "quarantined"
        } else {
            "left in place (repair with --repair)"
        };
        format!("corrupt blob {d}: {fate}")
    });
    let missing = report
        .missing
        .iter()
        .map(|d| format!("missing blob {d}: recorded, its bytes are not in the store"));
    Ok(Outcome::Done {
        lines: corrupt.chain(missing).collect(),
        summary: report.to_string(),
    })
}

fn import(config: &Config, verify: bool) -> Result<Outcome, Refusal> {
    let options = registry::adopt::AdoptOptions { verify };
    let Some(report) = serve::adopt_registry2(config, options)? else {
        return Ok(Outcome::Locked(registry::adopt::ADOPT_JOB));
    };
    let skipped = report.skipped.iter().map(ToString::to_string);
    let kept = report.kept_tags.iter().map(|(tag, berth, registry2)| {
        format!("kept tag {tag}: berth's {berth}, pushed since, not registry:2's {registry2}")
    });
    Ok(Outcome::Done {
        lines: skipped.chain(kept).collect(),
        summary: report.to_string(),
    })
}

/// `berth import --status`: how far the adoption of registry:2's tree got, as the metadata keeps it.
fn import_status(config: &Config) -> Result<Outcome, Refusal> {
    let cursor = serve::with_registry(config, async |registry| {
        registry
            .adoption_status()
            .await
            .context("reading the adoption's progress")
    })?;
    Ok(Outcome::Done {
        lines: Vec::new(),
        summary: registry::adopt::status_line(cursor.as_ref()),
    })
}

/// `berth import oci DIR [--repository NAME]`: the OCI layouts in or below `dir` pushed into the
/// stores through the registry's own operations (`registry::oci_layout`). No job lock: it is a push
/// like any client's, and two imports at once behave as two clients.
fn import_oci(config: &Config, dir: &Path, repository: Option<&str>) -> Result<Outcome, Refusal> {
    let repository = repository
        .map(|r| {
            r.parse::<oci::RepoName>()
                .map_err(|e| Refusal::Usage(format!("--repository {r:?}: {e}")))
        })
        .transpose()?;
    let report = serve::with_registry(config, async |registry| {
        registry
            .import_oci(dir, repository.as_ref())
            .await
            .with_context(|| format!("importing the OCI layouts of {}", dir.display()))
    })?;
    Ok(Outcome::Done {
        lines: report.skipped.iter().map(ToString::to_string).collect(),
        summary: report.to_string(),
    })
}
