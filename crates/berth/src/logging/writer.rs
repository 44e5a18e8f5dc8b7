//! The log's writer: lines go into a bounded in-memory buffer that a thread of its own writes to stderr,
//! so that a request does not pay a `write(2)` for its access-log line.
//!
//! Why not write each line as it comes: the line of every request was one unbuffered system call on the
//! request's worker thread, ~3-4% of a manifest GET's CPU on its own and a wait whenever stderr is slow
//! (bench/results/2026-11-23-profile.md). Batching the lines of a few milliseconds makes that one call
//! per batch, off the runtime's threads.
//!
//! What stays true:
//! - **Lines are whole and in order.** The subscriber hands over each formatted line in one `write_all`,
//!   and a line goes into the buffer under one lock, so lines never interleave or tear; the buffer is
//!   written in the order lines arrived, and the writes themselves are serialised (`out`).
//! - **Lines reach stderr within a few milliseconds** ([`FLUSH_INTERVAL`]): the thread wakes on the first
//!   line into an empty buffer and, after each write, lets at most that long gather before the next.
//! - **Memory is bounded and no line is dropped.** When the buffer holds [`CAPACITY`] bytes, a thread
//!   that logs *waits* for the writer to take the buffer rather than dropping its line: a burst slows the
//!   requests logging it, never silently loses an access-log line.
//! - **Warnings and errors are written at once**, after what is buffered, by the thread that logs them: they
//!   are rare, they often come right before an exit, and `main` prints its own failure with `eprintln!`
//!   right after logging it, which must stay the later line.
//! - **Nothing is lost at a clean exit.** [`install`] registers an `atexit` hook that writes what is
//!   left; lines logged after it go straight to stderr.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// The longest a buffered line waits before it is written, when lines keep coming.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(2);

/// The most bytes of lines held before a thread that logs waits for room: about a thousand access-log
/// lines, several milliseconds of the busiest load measured.
pub const CAPACITY: usize = 256 * 1024;

/// A `MakeWriter` for the subscriber: hands each line to the shared buffer (see the module comment).
#[derive(Clone)]
pub struct BufferedWriter {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    /// The writer thread waits here while the buffer is empty.
    lines: Condvar,
    /// Threads that log wait here while the buffer is full.
    room: Condvar,
    /// The destination. Held for the whole of each write, and taken *before* the buffer is, so that the
    /// writer thread, an urgent line and the exit hook write their bytes in the order they took them.
    out: Mutex<Box<dyn Write + Send>>,
    capacity: usize,
    interval: Duration,
}

#[derive(Default)]
struct State {
    buf: Vec<u8>,
    /// The writer thread is waiting on `lines`: the next line must wake it. Kept so that a busy writer
    /// is not sent a wake-up (a system call) per line.
    writer_idle: bool,
    /// Threads waiting on `room`.
    waiting_for_room: usize,
    /// The exit hook ran (or the writer thread could not start): lines are written at once.
    closed: bool,
}

/// The writer of the process: set by [`install`], flushed by the exit hook.
static INSTALLED: OnceLock<Arc<Shared>> = OnceLock::new();

/// The process's buffered stderr writer, its thread started and its exit hook registered on the first
/// call. If the thread cannot be started, lines are written at once, as without this writer.
pub fn install() -> BufferedWriter {
    install_with(Box::new(io::stderr()), FLUSH_INTERVAL)
}

/// [`install`] with its destination and interval given (the exit test uses a long interval, so that only
/// the exit hook can have written its last line).
fn install_with(out: Box<dyn Write + Send>, interval: Duration) -> BufferedWriter {
    let shared = INSTALLED.get_or_init(|| {
        let shared = Shared::new(out, CAPACITY, interval);
        if !shared.clone().spawn() {
            shared.lock_state().closed = true;
        }
        // SAFETY: `atexit` only records a function pointer; `flush_at_exit` is an `extern "C"` function
        // with no arguments that never unwinds (it takes poisoned locks as they are and ignores write
        // errors).
        unsafe {
            libc::atexit(flush_at_exit);
        }
        shared
    });
    BufferedWriter {
        shared: shared.clone(),
    }
}

/// A `Write` into the log's buffer for another stream of lines on stderr (the audit log's `stderr`):
/// each `write` goes in whole under the buffer's lock, so its lines and the log's never tear each other
/// (two writers of stderr could: the log's batches are larger than a pipe writes at once). It waits for
/// room as the log does, and is written at exit with it.
pub fn lines() -> impl Write + Send {
    LinesInto(install())
}

struct LinesInto(BufferedWriter);

impl Write for LinesInto {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.make_writer().write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes what the buffer holds when the process exits normally (`main` returns or `exit` is called).
extern "C" fn flush_at_exit() {
    if let Some(shared) = INSTALLED.get() {
        shared.close();
    }
}

impl Shared {
    fn new(out: Box<dyn Write + Send>, capacity: usize, interval: Duration) -> Arc<Shared> {
        Arc::new(Shared {
            state: Mutex::new(State::default()),
            lines: Condvar::new(),
            room: Condvar::new(),
            out: Mutex::new(out),
            capacity,
            interval,
        })
    }

    /// Starts the writer thread; false if the system would not.
    fn spawn(self: Arc<Shared>) -> bool {
        std::thread::Builder::new()
            .name("berth-log".into())
            .spawn(move || self.run())
            .is_ok()
    }

    // A panic while a lock was held leaves nothing half-done that matters here (a buffer of whole lines,
    // counters), so a poisoned lock is used as it is rather than losing the log.
    fn lock_state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_out(&self) -> MutexGuard<'_, Box<dyn Write + Send>> {
        self.out.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The writer thread: waits for lines, writes them, lets the next ones gather for `interval`.
    fn run(&self) {
        let mut batch = Vec::new();
        loop {
            {
                let mut state = self.lock_state();
                while state.buf.is_empty() {
                    if state.closed {
                        return;
                    }
                    state.writer_idle = true;
                    state = self
                        .lines
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                state.writer_idle = false;
            }
            self.write_batch(&mut batch);
            std::thread::sleep(self.interval);
        }
    }

    /// Takes the buffer (leaving `batch`'s empty allocation in its place) and writes it.
    fn write_batch(&self, batch: &mut Vec<u8>) {
        let mut out = self.lock_out();
        {
            let mut state = self.lock_state();
            std::mem::swap(&mut state.buf, batch);
            if state.waiting_for_room > 0 {
                self.room.notify_all();
            }
        }
        if !batch.is_empty() {
            // Nowhere to report a failed write to stderr; the line is lost as it would have been unbuffered.
            let _ = out.write_all(batch).and_then(|()| out.flush());
        }
        batch.clear();
        // A burst of very long lines can grow the buffer past its bound; do not keep that for good.
        if batch.capacity() > 2 * self.capacity {
            batch.shrink_to(self.capacity);
        }
    }

    /// Adds a line to the buffer, waiting while it is full (never dropping the line).
    fn push(&self, line: &[u8]) {
        let mut state = self.lock_state();
        // A line longer than the whole buffer goes into an empty one rather than waiting for ever.
        while !state.closed && !state.buf.is_empty() && state.buf.len() + line.len() > self.capacity
        {
            state.waiting_for_room += 1;
            state = self
                .room
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
            state.waiting_for_room -= 1;
        }
        if state.closed {
            drop(state);
            return self.write_now(line);
        }
        state.buf.extend_from_slice(line);
        if state.writer_idle {
            state.writer_idle = false;
            self.lines.notify_one();
        }
    }

    /// Writes what is buffered and then `line`, before returning.
    fn write_now(&self, line: &[u8]) {
        let mut out = self.lock_out();
        let mut pending = {
            let mut state = self.lock_state();
            if state.waiting_for_room > 0 {
                self.room.notify_all();
            }
            std::mem::take(&mut state.buf)
        };
        pending.extend_from_slice(line);
        let _ = out.write_all(&pending).and_then(|()| out.flush());
    }

    /// Writes what is buffered and makes every later line go straight to `out`; the writer thread ends.
    fn close(&self) {
        self.lock_state().closed = true;
        self.lines.notify_one();
        self.write_now(b"");
    }
}

/// One line's handle, as the subscriber asks for it per event.
pub struct LineWriter<'a> {
    shared: &'a Shared,
    /// A warning or error: written before the logging call returns.
    urgent: bool,
}

impl Write for LineWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.urgent {
            self.shared.write_now(buf);
        } else {
            self.shared.push(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BufferedWriter {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> LineWriter<'a> {
        LineWriter {
            shared: &self.shared,
            urgent: false,
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> LineWriter<'a> {
        LineWriter {
            shared: &self.shared,
            // tracing orders levels by verbosity: WARN and ERROR are the ones at most WARN.
            urgent: *meta.level() <= Level::WARN,
        }
    }
}

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;
