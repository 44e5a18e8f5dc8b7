//! The audit log's one writer: a thread of its own that takes whole lines from a bounded queue and
//! writes each with one `write_all` to its destination: a file opened for appending (`O_APPEND`, so
//! each line lands at the end whole, whoever else appends), or what the process gives (`berth serve`'s
//! log writer for `stderr`, which takes each write as one line).
//!
//! A request never waits for it: a line that finds the queue full is dropped and counted (the
//! `berth_audit_lines_dropped_total{reason="queue_full"}` metric), never blocked on; [`QUEUE`] lines
//! are several seconds of a busy registry's pushes, so only a destination that stopped taking writes
//! fills it. A write that fails (a full disk) is counted as dropped too (`reason="write_error"`), and
//! warned of once until a write succeeds again; requests never fail for it.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::time::{Duration, Instant};

/// Lines waiting for the writer at most.
pub const QUEUE: usize = 8192;

/// What the writer counts, read by the metrics.
#[derive(Debug, Default)]
pub struct Counts {
    pub written: AtomicU64,
    pub dropped_full: AtomicU64,
    pub dropped_error: AtomicU64,
}

enum Msg {
    Line(Vec<u8>),
    /// Answered once every line queued before it was written.
    Flush(mpsc::Sender<()>),
}

/// The sending side; the thread ends when the last one is dropped.
pub struct Writer {
    tx: SyncSender<Msg>,
    pub counts: Arc<Counts>,
}

impl Writer {
    /// A writer appending to the file at `path`, created with mode 0600 if it does not exist (an
    /// existing file keeps its mode).
    pub fn file(path: &Path) -> io::Result<Writer> {
        let mut options = OpenOptions::new();
        options.append(true).create(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(path)?;
        Writer::spawn(Box::new(file))
    }

    /// A writer of lines to `out`, which must not buffer (one `write_all` per line is one line).
    pub fn spawn(out: Box<dyn Write + Send>) -> io::Result<Writer> {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        let counts = Arc::new(Counts::default());
        let theirs = counts.clone();
        std::thread::Builder::new()
            .name("berth-audit".into())
            .spawn(move || run(out, rx, &theirs))?;
        Ok(Writer { tx, counts })
    }

    /// Queues `line` (whole, newline included), or counts it dropped if the queue is full.
    pub fn send(&self, line: Vec<u8>) {
        match self.tx.try_send(Msg::Line(line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.counts.dropped_full.fetch_add(1, Ordering::Relaxed);
            }
            // The thread is gone (it panicked): nothing more can be written.
            Err(TrySendError::Disconnected(_)) => {
                self.counts.dropped_error.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Waits up to `timeout` for every line queued so far to be written (at a clean exit). Blocks the
    /// calling thread.
    pub fn flush(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let (done, wait) = mpsc::channel();
        // std's `SyncSender` has no `send_timeout` on stable: try until the deadline.
        let mut msg = Msg::Flush(done);
        loop {
            match self.tx.try_send(msg) {
                Ok(()) => break,
                Err(TrySendError::Disconnected(_)) => return false,
                Err(TrySendError::Full(back)) if Instant::now() < deadline => {
                    msg = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(TrySendError::Full(_)) => return false,
            }
        }
        wait.recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .is_ok()
    }
}

fn run(mut out: Box<dyn Write + Send>, rx: Receiver<Msg>, counts: &Counts) {
    let mut failing = false;
    for msg in rx {
        match msg {
            Msg::Line(line) => match out.write_all(&line) {
                Ok(()) => {
                    counts.written.fetch_add(1, Ordering::Relaxed);
                    if failing {
                        failing = false;
                        tracing::info!("the audit log is written again");
                    }
                }
                Err(e) => {
                    counts.dropped_error.fetch_add(1, Ordering::Relaxed);
                    if !failing {
                        failing = true;
                        tracing::warn!(error = %e, "writing the audit log failed; its lines are dropped until a write succeeds");
                    }
                }
            },
            Msg::Flush(done) => {
                let _ = out.flush();
                let _ = done.send(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// A destination that records each write apart, or fails every write.
    #[derive(Clone, Default)]
    struct Recorder {
        writes: Arc<Mutex<Vec<Vec<u8>>>>,
        fail: bool,
    }

    impl Write for Recorder {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.fail {
                return Err(io::Error::other("no space left on device"));
            }
            self.writes.lock().unwrap().push(buf.to_vec());
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn each_line_is_one_write_and_is_counted() {
        let rec = Recorder::default();
        let w = Writer::spawn(Box::new(rec.clone())).unwrap();
        for i in 0..100 {
            w.send(format!("{{\"n\":{i}}}\n").into_bytes());
        }
        assert!(w.flush(Duration::from_secs(5)));
        let writes = rec.writes.lock().unwrap();
        assert_eq!(writes.len(), 100);
        assert_eq!(writes[7], b"{\"n\":7}\n");
        assert_eq!(w.counts.written.load(Ordering::Relaxed), 100);
    }

    #[test]
    fn a_failing_destination_drops_and_counts_without_failing_the_sender() {
        let rec = Recorder {
            fail: true,
            ..Recorder::default()
        };
        let w = Writer::spawn(Box::new(rec)).unwrap();
        w.send(b"a\n".to_vec());
        w.send(b"b\n".to_vec());
        assert!(w.flush(Duration::from_secs(5)));
        assert_eq!(w.counts.dropped_error.load(Ordering::Relaxed), 2);
        assert_eq!(w.counts.written.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_full_queue_drops_rather_than_waits() {
        /// Blocks every write until the test lets it go.
        struct Stuck(mpsc::Receiver<()>);
        impl Write for Stuck {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                let _ = self.0.recv();
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let (release, stuck) = mpsc::channel();
        let w = Writer::spawn(Box::new(Stuck(stuck))).unwrap();
        let started = std::time::Instant::now();
        for _ in 0..QUEUE + 10 {
            w.send(b"x\n".to_vec());
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the sender waited"
        );
        // The writer holds one line, the queue QUEUE: the rest were dropped.
        let dropped = w.counts.dropped_full.load(Ordering::Relaxed);
        assert!((9..=10).contains(&dropped), "{dropped}");
        drop(release);
    }

    #[test]
    fn a_file_is_appended_to_and_made_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let w = Writer::file(&path).unwrap();
        w.send(b"one\n".to_vec());
        assert!(w.flush(Duration::from_secs(5)));
        drop(w);
        let w = Writer::file(&path).unwrap();
        w.send(b"two\n".to_vec());
        assert!(w.flush(Duration::from_secs(5)));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\ntwo\n");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
