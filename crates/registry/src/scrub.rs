//! Scrub: every committed blob's bytes hashed against its digest, and every blob the metadata records
//! checked against the store, at a bounded rate, on one replica at a time, resumable.
//!
//! Why: bytes rot (a bad disk, a bucket restored wrong, a hand-edited tree) and nothing on the push or
//! pull path would notice: a pull streams what is stored and the client finds the wrong digest only at
//! the end, every time. A scrub finds them first and, with `repair`, quarantines them
//! (`BlobStore::quarantine`): the bytes leave the served tree, so a pull answers BLOB_UNKNOWN instead of
//! wrong bytes, and a push of the same blob writes it anew (a push finding bytes present would keep
//! them). The metadata is left alone: the images that use the blob stay, and pull whole again once it
//! is pushed again.
//!
//! The walk is `crate::reconcile`'s, in digest order, so a cursor (the last digest verified, saved in
//! the metadata every few blobs: `metadata::ScrubProgress`) is all a stopped scrub needs to continue.
//! It runs under the job lock [`SCRUB_JOB`]. Quarantining holds the blob as a writer does
//! (`Registry::hold_blob`: no sweep deletes it and no push links it meanwhile) and hashes it again
//! under that hold, so only bytes that are still wrong are moved.

use std::time::{Duration, Instant, SystemTime};

use futures_util::StreamExt;
use metadata::{JobLock, ScrubCursor};
use oci::{Digest, ResumableHasher};

use crate::clock::unix_seconds;
use crate::reconcile::{Pair, Walk};
use crate::{Registry, Result};

/// The job lock a scrub holds: one replica scrubs at a time.
pub const SCRUB_JOB: &str = "scrub";

/// Digests read from each side of the walk at a time.
const PAGE: usize = 100;

/// The cursor is saved (and the job lock checked) after this many digests.
const SAVE_EVERY: u64 = 16;

/// What a scrub is asked to do.
#[derive(Clone, Copy, Debug)]
pub struct ScrubOptions {
    /// Bytes hashed per second at most; `None`: as fast as the storage reads.
    pub rate: Option<u64>,
    /// Quarantine the blobs whose bytes are not their digest's.
    pub repair: bool,
    /// A row touched more recently than this may be a push between its reservation and its commit:
    /// not reported missing (the garbage collector's grace period).
    pub grace: Duration,
}

/// What a scrub found, counting what the runs it continued had found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScrubReport {
    /// Blobs whose bytes were hashed, and their bytes.
    pub checked: u64,
    pub bytes: u64,
    /// Blobs whose bytes are not their digest's (found by this run; `corrupt_total` with earlier runs).
    pub corrupt: Vec<Digest>,
    pub corrupt_total: u64,
    /// Those of `corrupt` moved to the quarantine.
    pub quarantined: Vec<Digest>,
    /// Blobs the metadata records whose bytes are missing (this run; `missing_total` with earlier runs).
    pub missing: Vec<Digest>,
    pub missing_total: u64,
    /// The digest this run continued after, when it continued a stopped one.
    pub resumed_after: Option<Digest>,
    /// Whether the walk reached the end (else it stopped, and the next run continues).
    pub finished: bool,
    pub took: Duration,
}

impl std::fmt::Display for ScrubReport {
    /// The summary line every run ends with.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "scrub {} {} blobs, {} bytes: {} corrupt ({} quarantined now), {} missing, in {:.1} s",
            if self.finished {
                "verified"
            } else {
                "stopped after"
            },
            self.checked,
            self.bytes,
            self.corrupt_total,
            self.quarantined.len(),
            self.missing_total,
            self.took.as_secs_f64()
        )?;
        if let Some(after) = &self.resumed_after {
            write!(f, " (continued after {after})")?;
        }
        Ok(())
    }
}

/// What hashing a blob found.
enum Verdict {
    Good,
    Corrupt(Digest),
    /// Deleted since it was listed (a sweep, an eviction): nothing to say.
    Gone,
}

impl Registry {
    /// Scrubs once under the job lock [`SCRUB_JOB`], from where a stopped scrub left off; `None`,
    /// having done nothing, when another holder has the lock. Repair is refused in read-only mode.
    pub async fn scrub(&self, options: ScrubOptions) -> Result<Option<ScrubReport>> {
        if options.repair {
            self.writable()?;
        }
        let Some(lock) = self.meta.jobs.try_job_lock(SCRUB_JOB).await? else {
            return Ok(None);
        };
        let report = self.scrub_locked(options, &lock).await?;
        lock.release().await;
        Ok(Some(report))
    }

    async fn scrub_locked(&self, options: ScrubOptions, lock: &JobLock) -> Result<ScrubReport> {
        let started = Instant::now();
        let saved = self.meta.scrub.scrub_cursor().await?;
        let mut cursor = saved.clone().unwrap_or_else(|| ScrubCursor {
            after: Digest::sha256_of(b""),
            started_at: unix_seconds(Some(SystemTime::now())),
            checked: 0,
            bytes: 0,
            corrupt: 0,
            missing: 0,
        });
        let mut report = ScrubReport {
            resumed_after: saved.map(|c| c.after),
            ..ScrubReport::default()
        };
        // Touched at or before the second that is `grace` ago, as the garbage collector counts.
        let cutoff = unix_seconds(SystemTime::now().checked_sub(options.grace)).saturating_add(1);
        let mut pace = Pace::new(options.rate);
        let mut walk = Walk::new(
            &*self.blobs,
            &*self.meta.gc,
            report.resumed_after.clone(),
            PAGE,
        );
        let mut since_save = 0u64;
        while let Some(pair) = walk.next().await? {
            let digest = match pair {
                Pair::Both(blob, _) | Pair::Stored(blob) => {
                    match self.verify(&blob.digest, &mut pace).await? {
                        Verdict::Good | Verdict::Gone => {}
                        Verdict::Corrupt(actual) => {
                            tracing::warn!(digest = %blob.digest, %actual, "a blob's bytes are not its digest's");
                            cursor.corrupt += 1;
                            if options.repair && self.quarantine(&blob.digest, blob.size).await? {
                                report.quarantined.push(blob.digest.clone());
                            }
                            report.corrupt.push(blob.digest.clone());
                        }
                    }
                    report.checked += 1;
                    report.bytes += blob.size;
                    cursor.checked += 1;
                    cursor.bytes += blob.size;
                    blob.digest
                }
                Pair::Recorded(row) => {
                    if !row.deleting
                        && row.touched_at < cutoff
                        && self.blobs.stat(&row.digest).await?.is_none()
                    {
                        tracing::warn!(digest = %row.digest, "the metadata records a blob whose bytes are missing");
                        cursor.missing += 1;
                        report.missing.push(row.digest.clone());
                    }
                    row.digest
                }
            };
            cursor.after = digest;
            since_save += 1;
            if since_save >= SAVE_EVERY {
                since_save = 0;
                self.meta.scrub.save_scrub_cursor(Some(&cursor)).await?;
                if !lock.is_held().await {
                    tracing::warn!(
                        job = SCRUB_JOB,
                        "lost the job lock while scrubbing; stopping"
                    );
                    return Ok(finish(report, &cursor, false, started));
                }
            }
        }
        // Finished: the next scrub starts from the first blob.
        self.meta.scrub.save_scrub_cursor(None).await?;
        Ok(finish(report, &cursor, true, started))
    }

    /// Hashes blob `digest` at the pace allowed.
    async fn verify(&self, digest: &Digest, pace: &mut Pace) -> Result<Verdict> {
        let Some(reader) = self.blobs.read(digest, None).await? else {
            return Ok(Verdict::Gone);
        };
        let mut hasher = ResumableHasher::new(digest.algorithm());
        let mut body = reader.body;
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                // A read cut short by a deletion is no finding; anything else is the storage failing.
                Err(_) if self.blobs.stat(digest).await?.is_none() => return Ok(Verdict::Gone),
                Err(e) => return Err(blobs::Error::Io(e).into()),
            };
            hasher.update(&chunk);
            pace.wait(chunk.len() as u64).await;
        }
        let actual = hasher.finish();
        Ok(if actual == *digest {
            Verdict::Good
        } else {
            Verdict::Corrupt(actual)
        })
    }

    /// Moves blob `digest` to the quarantine if, held as a writer holds it, its bytes are still wrong.
    async fn quarantine(&self, digest: &Digest, size: u64) -> Result<bool> {
        let _hold = self.hold_blob(digest, size).await?;
        if !matches!(
            self.verify(digest, &mut Pace::new(None)).await?,
            Verdict::Corrupt(_)
        ) {
            return Ok(false);
        }
        let moved = self.blobs.quarantine(digest).await?;
        if moved {
            tracing::warn!(%digest, "quarantined: pulls answer BLOB_UNKNOWN until it is pushed again");
        }
        Ok(moved)
    }
}

fn finish(
    mut report: ScrubReport,
    cursor: &ScrubCursor,
    finished: bool,
    started: Instant,
) -> ScrubReport {
    report.corrupt_total = cursor.corrupt;
    report.missing_total = cursor.missing;
    report.checked = cursor.checked;
    report.bytes = cursor.bytes;
    report.finished = finished;
    report.took = started.elapsed();
    report
}

/// Keeps reading at or under a rate: after each chunk, sleeps until the bytes so far are due.
struct Pace {
    rate: Option<u64>,
    start: Instant,
    bytes: u64,
}

impl Pace {
    fn new(rate: Option<u64>) -> Pace {
        Pace {
            rate: rate.filter(|r| *r > 0),
            start: Instant::now(),
            bytes: 0,
        }
    }

    async fn wait(&mut self, n: u64) {
        self.bytes += n;
        if let Some(rate) = self.rate {
            let pause = pause(self.bytes, rate, self.start.elapsed());
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
        }
    }
}

/// How long to wait, `elapsed` after the start, before reading past `bytes` at `rate` bytes a second.
fn pause(bytes: u64, rate: u64, elapsed: Duration) -> Duration {
    let due = Duration::from_secs_f64(bytes as f64 / rate.max(1) as f64);
    due.saturating_sub(elapsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pace_waits_until_the_bytes_are_due() {
        let s = Duration::from_secs;
        assert_eq!(pause(1000, 1000, s(0)), s(1));
        assert_eq!(pause(1000, 1000, s(1)), s(0));
        assert_eq!(pause(1000, 1000, s(5)), s(0));
        assert_eq!(pause(5000, 1000, s(2)), s(3));
        assert_eq!(pause(0, 1000, s(0)), s(0));
    }
}
