//! glibc's malloc, kept small: two arenas, and free memory given back to the system after bursts.
//!
//! Arenas: glibc gives each thread that allocates an arena of its own (up to 8 per core) and keeps what is
//! freed there for reuse. berth's blob reads and writes allocate their buffers on the blocking pool's
//! threads, dozens of them under load, so each thread's arena held its last buffers: 49-55 MB resident
//! while 16 clients pulled, 26 MB with two arenas, at no cost in speed measured (bench/README.md).
//! mimalloc was tried too and held far more (387 MB) under the same pulls.
//!
//! Trimming: bursts of concurrent pushes took the process from 12 MB to 110 MB resident, and it stayed
//! there when idle (issue 21; `bench/memburst.py`). None of it was berth's: `malloc_trim(0)` on the idle
//! process gave back all but 26 MB. glibc serves large blocks with `mmap` and unmaps them when freed, but
//! it raises that threshold to the largest such block freed (up to 32 MiB), so after the first pushes
//! hyper's read buffers (up to ~400 KiB, handed on whole as body chunks and held until written) and the
//! upload buffers come from the arenas; freed in whatever order the uploads end, they leave free memory
//! under small blocks still in use, and glibc only ever gives back the free top of a heap. A fixed
//! threshold (`MALLOC_MMAP_THRESHOLD_`) avoided it too, but maps and faults in fresh pages for every
//! read buffer of every push, the cost the write path avoids by design (`blobs::fs::write`).
//!
//! So a task looks at the arenas every [`TRIM_EVERY`] and, when they hold more free memory than memory
//! in use (a burst is over) and more than [`KEEP_FREE`], asks glibc to give back the free pages
//! (`malloc_trim(0)`, which returns whole free pages inside the heaps with `madvise`, not only the top).
//! Under steady load in-use memory is not below the free memory, so nothing is trimmed while it would
//! only be taken again; a heap unchanged since the last trim is left alone. Measured: 4.7 ms for 55 MB
//! free after a burst (RSS 70 -> 20 MB), 0.3 ms for a later trim with nothing to give back.

use std::time::Duration;

/// How often the arenas are looked at: memory comes back at most this long after a burst ends.
pub const TRIM_EVERY: Duration = Duration::from_secs(10);

/// Free memory the arenas may keep whatever the memory in use: giving back less is not worth the page
/// faults of taking it again.
pub const KEEP_FREE: usize = 8 << 20;

/// Arenas of glibc's malloc, unless `MALLOC_ARENA_MAX` says otherwise.
const MALLOC_ARENAS: i32 = 2;

/// Bounds glibc's arenas to [`MALLOC_ARENAS`]; call first thing in `main`, before any other thread.
pub fn bound_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets a tunable of the allocator; it is called before any other thread
        // exists (first thing in main), so no allocation races with it.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, MALLOC_ARENAS);
        }
    }
}

/// What the arenas hold, in bytes (mapped blocks are not counted: they are unmapped when freed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Heap {
    /// Obtained from the system for the arenas.
    pub arena: usize,
    pub in_use: usize,
    /// Free but kept for reuse.
    pub free: usize,
}

/// Whether to give the free memory back: a burst is over (more is free than in use), there is enough of
/// it, and the heap changed since the last trim.
pub fn worth_trimming(now: Heap, last_trim: Option<Heap>) -> bool {
    now.free >= KEEP_FREE && now.free > now.in_use && last_trim != Some(now)
}

/// Gives the arenas' free memory back to the system after bursts, every [`TRIM_EVERY`], forever.
pub async fn run_trimmer() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let mut tick = tokio::time::interval(TRIM_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_trim = None;
        loop {
            tick.tick().await;
            // mallinfo2 and malloc_trim walk the arenas under their locks: milliseconds on a large
            // heap, so off the async threads.
            match tokio::task::spawn_blocking(move || glibc::trim_if_worth(last_trim)).await {
                Ok(trimmed) => last_trim = trimmed.or(last_trim),
                Err(e) => tracing::warn!(error = %e, "trimming malloc's free memory failed"),
            }
        }
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod glibc {
    use super::{Heap, worth_trimming};

    pub(super) fn heap() -> Heap {
        // SAFETY: mallinfo2 only reads the allocator's statistics.
        let info = unsafe { libc::mallinfo2() };
        Heap {
            arena: info.arena,
            in_use: info.uordblks,
            free: info.fordblks,
        }
    }

    /// Trims when worth it; the heap as it was then, if it did.
    pub fn trim_if_worth(last_trim: Option<Heap>) -> Option<Heap> {
        let before = heap();
        if !worth_trimming(before, last_trim) {
            return None;
        }
        let rss = resident_bytes();
        let started = std::time::Instant::now();
        // SAFETY: malloc_trim only returns free memory of the allocator's to the system.
        unsafe {
            libc::malloc_trim(0);
        }
        tracing::debug!(
            took_ms = started.elapsed().as_secs_f64() * 1e3,
            free_bytes = before.free,
            in_use_bytes = before.in_use,
            resident_before = rss,
            resident_after = resident_bytes(),
            "gave malloc's free memory back to the system"
        );
        // Trimming changes neither count: the free blocks stay free, only their pages go.
        Some(heap())
    }

    /// The process's resident memory, for the log line (0 if unreadable).
    fn resident_bytes() -> u64 {
        let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
        let pages: u64 = statm
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or(0);
        pages * 4096
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: usize = 1 << 20;

    fn heap(in_use: usize, free: usize) -> Heap {
        Heap {
            arena: in_use + free,
            in_use,
            free,
        }
    }

    #[test]
    fn trims_after_a_burst_not_during_one_nor_twice_when_idle() {
        // Idle at start: little free memory.
        assert!(!worth_trimming(heap(10 * MB, 2 * MB), None));
        // During a burst: most of the heap in use.
        assert!(!worth_trimming(heap(90 * MB, 20 * MB), None));
        // After it: most of the heap free.
        let after = heap(12 * MB, 95 * MB);
        assert!(worth_trimming(after, None));
        // Still idle, nothing changed since: once was enough.
        assert!(!worth_trimming(after, Some(after)));
        // The next burst's leftovers are trimmed again.
        assert!(worth_trimming(heap(13 * MB, 96 * MB), Some(after)));
        // A small heap is never worth it, however free.
        assert!(!worth_trimming(heap(MB, KEEP_FREE - 1), None));
    }

    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn the_counts_are_glibcs() {
        let h = glibc::heap();
        assert!(h.arena > 0 && h.in_use > 0, "{h:?}");
    }
}
