//! The blob store's listing and the metadata's blob rows, walked side by side in digest order: what
//! garbage collection's orphan pass and the scrub compare.
//!
//! Both sides come in pages (`BlobStore::list_blobs`, `GcMarks::recorded_blobs`), both in `Digest`'s
//! order, so a merge pairs them with two pages in memory, never every digest, however large the
//! registry. The two sides are read at different moments, so a pair says what each side held when it
//! was read, not that both held it at once: whoever acts on a one-sided pair checks again under the
//! protocol of `crate::gc` (a claim, a `stat`).

use std::collections::VecDeque;

use blobs::{BlobStore, ListedBlob};
use metadata::{GcMarks, RecordedBlob};
use oci::Digest;

use crate::Result;

/// One digest of the walk.
#[derive(Clone, Debug)]
pub(crate) enum Pair {
    /// Bytes, and a row that records them.
    Both(ListedBlob, RecordedBlob),
    /// Bytes that no row recorded when the rows were read.
    Stored(ListedBlob),
    /// A row whose bytes were not listed.
    Recorded(RecordedBlob),
}

/// The merge, strictly after a starting digest.
pub(crate) struct Walk<'a> {
    blobs: &'a dyn BlobStore,
    gc: &'a dyn GcMarks,
    page: usize,
    stored: Side<ListedBlob>,
    recorded: Side<RecordedBlob>,
}

/// One side's current page and where the next starts.
struct Side<T> {
    buf: VecDeque<T>,
    after: Option<Digest>,
    done: bool,
}

impl<T> Side<T> {
    fn new(after: Option<Digest>) -> Side<T> {
        Side {
            buf: VecDeque::new(),
            after,
            done: false,
        }
    }

    fn refill(&mut self, page: Vec<T>, limit: usize, digest: impl Fn(&T) -> &Digest) {
        self.done = page.len() < limit;
        if let Some(last) = page.last() {
            self.after = Some(digest(last).clone());
        }
        self.buf.extend(page);
    }

    fn needs_page(&self) -> bool {
        self.buf.is_empty() && !self.done
    }
}

impl<'a> Walk<'a> {
    /// A walk of every digest after `after` (all of them with `None`), reading `page` at a time.
    pub(crate) fn new(
        blobs: &'a dyn BlobStore,
        gc: &'a dyn GcMarks,
        after: Option<Digest>,
        page: usize,
    ) -> Walk<'a> {
        Walk {
            blobs,
            gc,
            page: page.max(1),
            stored: Side::new(after.clone()),
            recorded: Side::new(after),
        }
    }

    /// The next digest either side holds, or `None` when both are done.
    pub(crate) async fn next(&mut self) -> Result<Option<Pair>> {
        if self.stored.needs_page() {
            let page = self
                .blobs
                .list_blobs(self.stored.after.as_ref(), self.page)
                .await?;
            self.stored.refill(page, self.page, |b| &b.digest);
        }
        if self.recorded.needs_page() {
            let page = self
                .gc
                .recorded_blobs(self.recorded.after.as_ref(), self.page)
                .await?;
            self.recorded.refill(page, self.page, |r| &r.digest);
        }
        let pair = match (self.stored.buf.front(), self.recorded.buf.front()) {
            (None, None) => return Ok(None),
            (Some(s), Some(r)) if s.digest == r.digest => {
                match (self.stored.buf.pop_front(), self.recorded.buf.pop_front()) {
                    (Some(s), Some(r)) => Pair::Both(s, r),
                    _ => return Ok(None),
                }
            }
            (Some(s), r) if r.is_none_or(|r| s.digest < r.digest) => {
                match self.stored.buf.pop_front() {
                    Some(s) => Pair::Stored(s),
                    None => return Ok(None),
                }
            }
            _ => match self.recorded.buf.pop_front() {
                Some(r) => Pair::Recorded(r),
                None => return Ok(None),
            },
        };
        Ok(Some(pair))
    }
}
