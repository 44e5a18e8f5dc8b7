//! A cap on the uploads streaming bytes in at once, so a crowd of pushers (or one abusive client opening
//! many uploads) cannot take every file handle, write buffer and disk bandwidth of the process.
//!
//! What counts is a request whose body is being written into an upload (a PATCH, a PUT or POST carrying
//! bytes), from the moment the registry starts reading it until the bytes are durable: upload sessions that
//! merely exist hold nothing and are not counted. An upload over the cap is refused at once with
//! `TooManyRequests` (429, and the HTTP layer adds `Retry-After`); nothing of it was read, so the client
//! can retry the same request.
//!
//! Why a counter and not a semaphore: excess is refused, never queued, so there is nothing to wait on;
//! the count is also what the metrics report as uploads in progress.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::{Error, Result};

/// The count of uploads in progress and its cap. Clones share the count.
#[derive(Clone, Debug)]
pub(crate) struct UploadSlots {
    in_use: Arc<AtomicUsize>,
    /// `None`: no cap (the count is still kept, for the metrics).
    max: Option<usize>,
}

/// One upload in progress; frees its slot when dropped, whatever way the upload ends.
#[derive(Debug)]
pub(crate) struct UploadSlot {
    in_use: Arc<AtomicUsize>,
}

impl UploadSlots {
    pub fn new(max: Option<usize>) -> UploadSlots {
        UploadSlots {
            in_use: Arc::default(),
            max,
        }
    }

    /// Takes a slot, or `TooManyRequests` when all are taken.
    pub fn take(&self) -> Result<UploadSlot> {
        let before = self.in_use.fetch_add(1, Ordering::AcqRel);
        // The slot exists from here on, so dropping it undoes the increment on every path.
        let slot = UploadSlot {
            in_use: Arc::clone(&self.in_use),
        };
        match self.max {
            Some(max) if before >= max => Err(Error::TooManyRequests),
            _ => Ok(slot),
        }
    }

    pub fn in_use(&self) -> usize {
        self.in_use.load(Ordering::Acquire)
    }
}

impl Drop for UploadSlot {
    fn drop(&mut self) {
        self.in_use.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_past_the_cap_and_frees_on_drop() {
        let slots = UploadSlots::new(Some(2));
        let a = slots.take().unwrap();
        let b = slots.take().unwrap();
        assert_eq!(slots.in_use(), 2);
        assert!(matches!(slots.take(), Err(Error::TooManyRequests)));
        // A refused attempt leaves no trace in the count.
        assert_eq!(slots.in_use(), 2);
        drop(a);
        let c = slots.take().unwrap();
        assert_eq!(slots.in_use(), 2);
        drop((b, c));
        assert_eq!(slots.in_use(), 0);
    }

    #[test]
    fn without_a_cap_it_only_counts() {
        let slots = UploadSlots::new(None);
        let held: Vec<_> = (0..1000).map(|_| slots.take().unwrap()).collect();
        assert_eq!(slots.in_use(), 1000);
        drop(held);
        assert_eq!(slots.in_use(), 0);
    }

    #[test]
    fn a_cap_of_zero_refuses_everything() {
        let slots = UploadSlots::new(Some(0));
        assert!(matches!(slots.take(), Err(Error::TooManyRequests)));
        assert_eq!(slots.in_use(), 0);
    }
}
