//! Retention rules: which tags, and which manifests no tag reaches, each repository keeps.
//!
//! A repository is governed by the first rule whose patterns match it (none: it keeps everything). A rule
//! says what to *keep*; a tag none of its keep conditions holds for is deleted:
//! - `latest`: the N most recently pushed tags (pushed in the same second: the greater name first);
//! - `tags`: tags matching a pattern, forever (releases);
//! - `pushed_within`: tags pushed within the duration;
//! - `pulled_within`: tags whose manifest was pulled (GET) within the duration, a tag never pulled
//!   counting as pulled when it was pushed.
//!
//! A rule with no keep condition deletes no tag. Immutable tags (`tags.immutable`) are always kept.
//! With `untagged`, the manifests no tag reaches (`metadata::GcMarks::unreachable_manifests`: the
//! children of a tagged index and the referrers of a tagged manifest are reached) pushed longer ago
//! than that are deleted too, after the tags, so an image whose last tag a rule deleted goes in the same
//! run once it is that old. Their blobs are the garbage collector's to free, after its grace period.
//!
//! Deleting a tag is conditional on its being unchanged since it was read
//! (`TagAges::delete_tag_unchanged`): a tag pushed again while a run judges it stays. Runs hold the job
//! lock [`RETENTION_JOB`], one replica at a time; the pull-through cache's repositories are left to its
//! own eviction.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use metadata::{JobLock, TagAge};
use oci::{Digest, Pattern, RepoName, Tag};

use crate::clock::{seconds_before, unix_now};
use crate::repo_walk::RepoWalk;
use crate::{Registry, Result};

/// The job lock of retention runs.
pub const RETENTION_JOB: &str = "retention";

/// One rule, for the repositories matching any of `repositories`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetentionRule {
    pub repositories: Vec<Pattern>,
    pub keep: Keep,
    /// Delete the manifests no tag reaches once pushed this long ago.
    pub untagged: Option<Duration>,
}

/// What a rule keeps of a repository's tags: a tag is kept when any condition holds for it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Keep {
    pub latest: Option<usize>,
    pub tags: Vec<Pattern>,
    pub pushed_within: Option<Duration>,
    pub pulled_within: Option<Duration>,
}

impl Keep {
    /// No condition at all: the rule deletes no tag.
    fn is_empty(&self) -> bool {
        self.latest.is_none()
            && self.tags.is_empty()
            && self.pushed_within.is_none()
            && self.pulled_within.is_none()
    }
}

/// What a run did (or, in a dry run, would do), rule by rule.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RetentionReport {
    pub dry_run: bool,
    /// One per rule, in the rules' order.
    pub rules: Vec<RuleReport>,
    pub took: Duration,
}

/// What this process's retention runs deleted since it started.
#[derive(Debug, Default)]
pub struct RetentionTotals {
    runs: AtomicU64,
    tags: AtomicU64,
    manifests: AtomicU64,
    last_run: AtomicU64,
}

/// [`RetentionTotals`] at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetentionTotalsSnapshot {
    /// Runs to their end (dry runs not counted).
    pub runs: u64,
    /// Tags and untagged manifests deleted.
    pub tags: u64,
    pub manifests: u64,
    /// Unix seconds of the end of the last run; 0 before any.
    pub last_run: u64,
}

impl RetentionTotals {
    fn add(&self, report: &RetentionReport) {
        let (tags, manifests) = report.rules.iter().fold((0, 0), |(t, m), r| {
            (t + r.tags.len() as u64, m + r.manifests.len() as u64)
        });
        self.runs.fetch_add(1, Ordering::Relaxed);
        self.tags.fetch_add(tags, Ordering::Relaxed);
        self.manifests.fetch_add(manifests, Ordering::Relaxed);
        self.last_run
            .store(unix_now().max(1) as u64, Ordering::Relaxed);
    }

    fn snapshot(&self) -> RetentionTotalsSnapshot {
        RetentionTotalsSnapshot {
            runs: self.runs.load(Ordering::Relaxed),
            tags: self.tags.load(Ordering::Relaxed),
            manifests: self.manifests.load(Ordering::Relaxed),
            last_run: self.last_run.load(Ordering::Relaxed),
        }
    }
}

/// What one rule did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuleReport {
    /// Repositories the rule governed.
    pub repositories: usize,
    /// Tags kept.
    pub kept: usize,
    /// Tags deleted (or that would be), with the manifest each pointed at.
    pub tags: Vec<(RepoName, Tag, Digest)>,
    /// Manifests no tag reaches deleted (or that would be).
    pub manifests: Vec<(RepoName, Digest)>,
}

impl std::fmt::Display for RetentionReport {
    /// A line per rule, then the summary line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verb = if self.dry_run {
            "would delete"
        } else {
            "deleted"
        };
        for (i, rule) in self.rules.iter().enumerate() {
            writeln!(
                f,
                "retention rule {i}: {} repositories, kept {} tags, {verb} {} tags and {} untagged manifests",
                rule.repositories,
                rule.kept,
                rule.tags.len(),
                rule.manifests.len()
            )?;
        }
        write!(
            f,
            "retention {verb} {} tags and {} untagged manifests, in {:.1} s",
            self.rules.iter().map(|r| r.tags.len()).sum::<usize>(),
            self.rules.iter().map(|r| r.manifests.len()).sum::<usize>(),
            self.took.as_secs_f64()
        )
    }
}

/// The tags of one repository that `keep` does not keep as of `now` (Unix seconds), in tag order;
/// `immutable` tags are always kept.
pub(crate) fn tags_to_drop(
    keep: &Keep,
    ages: &[TagAge],
    now: i64,
    immutable: impl Fn(&Tag) -> bool,
) -> Vec<TagAge> {
    if keep.is_empty() {
        return Vec::new();
    }
    let mut newest: Vec<&TagAge> = ages.iter().collect();
    newest.sort_by(|a, b| (b.pushed_at, &b.tag).cmp(&(a.pushed_at, &a.tag)));
    let latest: Vec<&Tag> = newest
        .iter()
        .take(keep.latest.unwrap_or(0))
        .map(|a| &a.tag)
        .collect();
    let pushed_since = keep.pushed_within.map(|d| seconds_before(now, d));
    let pulled_since = keep.pulled_within.map(|d| seconds_before(now, d));
    ages.iter()
        .filter(|age| {
            let last_use = age.pulled_at.unwrap_or(age.pushed_at).max(age.pushed_at);
            let kept = immutable(&age.tag)
                || latest.contains(&&age.tag)
                || keep.tags.iter().any(|p| p.matches(age.tag.as_str()))
                || pushed_since.is_some_and(|since| age.pushed_at >= since)
                || pulled_since.is_some_and(|since| last_use >= since);
            !kept
        })
        .cloned()
        .collect()
}

impl Registry {
    /// Applies `rules` to every repository once, under the job lock [`RETENTION_JOB`]; `None`, having
    /// done nothing, when another holder has it. Refused in read-only mode unless it is a dry run.
    pub async fn apply_retention(
        &self,
        rules: &[RetentionRule],
        dry_run: bool,
    ) -> Result<Option<RetentionReport>> {
        self.apply_retention_as_of(rules, dry_run, unix_now()).await
    }

    /// [`apply_retention`](Self::apply_retention) as if the clock read `now` (Unix seconds): for
    /// tests, which cannot wait days for tags to age.
    pub async fn apply_retention_as_of(
        &self,
        rules: &[RetentionRule],
        dry_run: bool,
        now: i64,
    ) -> Result<Option<RetentionReport>> {
        if !dry_run {
            self.writable()?;
        }
        let Some(lock) = self.meta.jobs.try_job_lock(RETENTION_JOB).await? else {
            return Ok(None);
        };
        let started = Instant::now();
        self.flush_pulls().await?;
        let mut report = RetentionReport {
            dry_run,
            rules: vec![RuleReport::default(); rules.len()],
            took: Duration::ZERO,
        };
        self.retain_all(rules, dry_run, now, &lock, &mut report)
            .await?;
        lock.release().await;
        report.took = started.elapsed();
        if !dry_run {
            self.retention_totals.add(&report);
        }
        Ok(Some(report))
    }

    /// What this process's retention runs deleted since it started (for the registry page).
    pub fn retention_totals(&self) -> RetentionTotalsSnapshot {
        self.retention_totals.snapshot()
    }

    async fn retain_all(
        &self,
        rules: &[RetentionRule],
        dry_run: bool,
        now: i64,
        lock: &JobLock,
        report: &mut RetentionReport,
    ) -> Result<()> {
        let mut walk = RepoWalk::new(self, lock, RETENTION_JOB);
        while let Some(repos) = walk.next_page().await? {
            for repo in repos {
                if self.proxy_route(&repo).is_some() {
                    continue;
                }
                let governing = rules
                    .iter()
                    .position(|r| r.repositories.iter().any(|p| p.matches(repo.as_str())));
                if let Some(i) = governing {
                    self.retain(&repo, &rules[i], dry_run, now, &mut report.rules[i])
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// Applies one rule to one repository.
    async fn retain(
        &self,
        repo: &RepoName,
        rule: &RetentionRule,
        dry_run: bool,
        now: i64,
        report: &mut RuleReport,
    ) -> Result<()> {
        report.repositories += 1;
        let ages = self.meta.tag_ages.tag_ages(repo).await?;
        let drop = tags_to_drop(&rule.keep, &ages, now, |t| self.tag_is_immutable(repo, t));
        report.kept += ages.len() - drop.len();
        for age in drop {
            if dry_run || self.meta.tag_ages.delete_tag_unchanged(repo, &age).await? {
                tracing::info!(%repo, tag = %age.tag, digest = %age.digest, dry_run, "retention: tag deleted");
                report.tags.push((repo.clone(), age.tag, age.digest));
            } else {
                report.kept += 1;
            }
        }
        let Some(untagged) = rule.untagged else {
            return Ok(());
        };
        let cutoff = seconds_before(now, untagged);
        for digest in self.delete_unreachable(repo, cutoff, dry_run).await? {
            tracing::info!(%repo, %digest, dry_run, "retention: untagged manifest deleted");
            report.manifests.push((repo.clone(), digest));
        }
        Ok(())
    }

    /// Applies `rules` every `interval`, forever (the first time one `interval` after start, at most an
    /// hour). Failures are logged and retried at the next round; returns at once in read-only mode.
    pub async fn run_retention(self, rules: Vec<RetentionRule>, interval: Duration) {
        if self.settings.read_only || rules.is_empty() {
            return;
        }
        let interval = interval.max(Duration::from_secs(1));
        tokio::time::sleep(interval.min(Duration::from_secs(3600))).await;
        loop {
            match self.apply_retention(&rules, false).await {
                Ok(Some(report)) => tracing::info!("{report}"),
                Ok(None) => tracing::debug!("another replica holds the retention lock"),
                Err(e) => tracing::warn!(error = %e, "retention failed; trying again next round"),
            }
            tokio::time::sleep(interval).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;
    const NOW: i64 = 1_000 * DAY;

    fn age(tag: &str, pushed_days_ago: i64, pulled_days_ago: Option<i64>) -> TagAge {
        TagAge {
            tag: tag.parse().unwrap(),
            digest: Digest::sha256_of(tag.as_bytes()),
            pushed_at: NOW - pushed_days_ago * DAY,
            pulled_at: pulled_days_ago.map(|d| NOW - d * DAY),
        }
    }

    fn dropped(keep: &Keep, ages: &[TagAge]) -> Vec<String> {
        tags_to_drop(keep, ages, NOW, |t| t.as_str() == "locked")
            .into_iter()
            .map(|a| a.tag.to_string())
            .collect()
    }

    fn days(n: u64) -> Option<Duration> {
        Some(Duration::from_secs(n * 86_400))
    }

    #[test]
    fn latest_keeps_the_most_recently_pushed() {
        let ages = [
            age("a", 5, None),
            age("b", 1, None),
            age("c", 3, None),
            age("d", 9, None),
        ];
        let keep = Keep {
            latest: Some(2),
            ..Keep::default()
        };
        assert_eq!(dropped(&keep, &ages), ["a", "d"]);
        // Same second: the greater name is the newer.
        let ties = [age("x1", 1, None), age("x2", 1, None), age("x3", 1, None)];
        let keep = Keep {
            latest: Some(1),
            ..Keep::default()
        };
        assert_eq!(dropped(&keep, &ties), ["x1", "x2"]);
    }

    #[test]
    fn any_condition_keeps_a_tag() {
        let ages = [
            age("v1.0.0", 400, None),
            age("old", 400, None),
            age("fresh", 2, None),
            age("used", 400, Some(3)),
            age("locked", 400, None),
        ];
        let keep = Keep {
            tags: vec![Pattern::tag("v*").unwrap()],
            pushed_within: days(7),
            pulled_within: days(30),
            ..Keep::default()
        };
        assert_eq!(dropped(&keep, &ages), ["old"]);
    }

    #[test]
    fn a_tag_never_pulled_counts_as_pulled_when_pushed() {
        let ages = [
            age("new", 1, None),
            age("stale", 60, None),
            age("stale-used", 60, Some(59)),
        ];
        let keep = Keep {
            pulled_within: days(30),
            ..Keep::default()
        };
        assert_eq!(dropped(&keep, &ages), ["stale", "stale-used"]);
    }

    #[test]
    fn a_rule_without_keep_conditions_deletes_no_tag() {
        let ages = [age("a", 900, None)];
        assert!(dropped(&Keep::default(), &ages).is_empty());
    }
}
