//! Tests of the buffered log writer: lines arrive whole and in order, soon, within the bound, and at exit.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use super::*;

/// A destination the test can read, and hold shut to play a slow stderr.
#[derive(Clone, Default)]
struct Sink {
    bytes: Arc<Mutex<Vec<u8>>>,
    /// While true, writes wait.
    shut: Arc<(Mutex<bool>, Condvar)>,
}

impl Sink {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes.lock().unwrap()).into_owned()
    }

    fn set_shut(&self, shut: bool) {
        *self.shut.0.lock().unwrap() = shut;
        self.shut.1.notify_all();
    }
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut shut = self.shut.0.lock().unwrap();
        while *shut {
            shut = self.shut.1.wait(shut).unwrap();
        }
        self.bytes.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn started(sink: &Sink, capacity: usize, interval: Duration) -> Arc<Shared> {
    let shared = Shared::new(Box::new(sink.clone()), capacity, interval);
    assert!(shared.clone().spawn());
    shared
}

fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn lines_arrive_whole_and_in_order() {
    let sink = Sink::default();
    // A small buffer, so that the threads also wait for room and race the writer.
    let shared = started(&sink, 512, Duration::from_micros(100));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let shared = shared.clone();
            std::thread::spawn(move || {
                for i in 0..2_000 {
                    let line = format!("thread={t} line={i} {}\n", "x".repeat(i % 50));
                    shared.push(line.as_bytes());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    shared.close();

    let text = sink.text();
    let mut next = [0usize; 4];
    for line in text.lines() {
        let mut words = line.split(' ');
        let t: usize = words
            .next()
            .unwrap()
            .strip_prefix("thread=")
            .unwrap()
            .parse()
            .unwrap();
        let i: usize = words
            .next()
            .unwrap()
            .strip_prefix("line=")
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(i, next[t], "thread {t}'s lines out of order: {line}");
        assert_eq!(
            words.next().unwrap_or(""),
            "x".repeat(i % 50),
            "torn: {line}"
        );
        next[t] += 1;
    }
    assert_eq!(next, [2_000; 4], "lines lost");
}

#[test]
fn a_line_is_written_without_waiting_for_more() {
    let sink = Sink::default();
    let shared = started(&sink, CAPACITY, FLUSH_INTERVAL);
    shared.push(b"one\n");
    eventually("the first line", || sink.text() == "one\n");
    // A later line, while the writer may be sleeping off its last write.
    shared.push(b"two\n");
    eventually("the second line", || sink.text() == "one\ntwo\n");
}

#[test]
fn a_full_buffer_makes_the_logger_wait_and_drops_nothing() {
    let sink = Sink::default();
    sink.set_shut(true);
    let shared = started(&sink, 64, Duration::from_millis(1));
    let pushed = Arc::new(AtomicUsize::new(0));
    let logger = {
        let (shared, pushed) = (shared.clone(), pushed.clone());
        std::thread::spawn(move || {
            for i in 0..100 {
                shared.push(format!("line {i:03}\n").as_bytes()); // 9 bytes
                pushed.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    // The writer holds one batch at the shut sink; the logger fills the buffer behind it and waits.
    eventually("the logger to wait for room", || {
        shared.lock_state().waiting_for_room == 1
    });
    std::thread::sleep(Duration::from_millis(20));
    let held = shared.lock_state().buf.len();
    assert!(held <= 64, "the buffer grew past its bound: {held} bytes");
    // At most one batch at the sink plus a buffer's worth: the logger is stopped, not racing on.
    assert!(pushed.load(Ordering::SeqCst) <= 2 * 64 / 9 + 1);
    assert!(!logger.is_finished());

    sink.set_shut(false);
    logger.join().unwrap();
    shared.close();
    let expected: String = (0..100).map(|i| format!("line {i:03}\n")).collect();
    assert_eq!(sink.text(), expected);
}

#[test]
fn warnings_are_written_at_once_after_what_is_buffered() {
    let sink = Sink::default();
    // The writer sleeps a long time after its first batch, so only an urgent write can bring out more.
    let shared = started(&sink, CAPACITY, Duration::from_secs(3600));
    shared.push(b"first\n");
    eventually("the first line", || sink.text() == "first\n");
    shared.push(b"buffered\n");
    let subscriber = tracing_subscriber::fmt()
        .with_writer(BufferedWriter {
            shared: shared.clone(),
        })
        .without_time()
        .with_ansi(false)
        .with_level(false)
        .with_target(false)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        tracing::warn!("warning");
        // Written before the macro returned, after the line buffered before it.
        assert_eq!(sink.text(), "first\nbuffered\nwarning\n");
        tracing::info!("info");
        tracing::error!("error");
        assert_eq!(sink.text(), "first\nbuffered\nwarning\ninfo\nerror\n");
        tracing::info!("info again");
    });
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(
        sink.text(),
        "first\nbuffered\nwarning\ninfo\nerror\n",
        "info lines are buffered"
    );
    shared.close();
    assert_eq!(
        sink.text(),
        "first\nbuffered\nwarning\ninfo\nerror\ninfo again\n"
    );
    // After the close, lines go straight out.
    shared.push(b"late\n");
    assert_eq!(
        sink.text(),
        "first\nbuffered\nwarning\ninfo\nerror\ninfo again\nlate\n"
    );
}

/// Set in the child process of [`the_last_lines_are_written_at_exit`].
const CHILD: &str = "BERTH_LOG_WRITER_EXIT_CHILD";

/// The exit hook: a child process (this test binary, running only this test) logs a line that the writer
/// thread, sleeping for an hour, will not write, and exits; the line must be on its stderr.
#[test]
fn the_last_lines_are_written_at_exit() {
    if std::env::var_os(CHILD).is_some() {
        let writer = install_with(Box::new(io::stderr()), Duration::from_secs(3600));
        writer.make_writer().write_all(b"first line\n").unwrap();
        // Written by the thread's first batch; it then sleeps.
        std::thread::sleep(Duration::from_millis(200));
        writer.make_writer().write_all(b"last line\n").unwrap();
        return;
    }
    let name = concat!(module_path!(), "::the_last_lines_are_written_at_exit");
    let name = name.split_once("::").map_or(name, |(_crate, rest)| rest);
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("first line\nlast line\n"),
        "stderr of the child:\n{stderr}\nstdout:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
