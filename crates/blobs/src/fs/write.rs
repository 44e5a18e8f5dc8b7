//! Appending an incoming stream to an upload file, fast and with bounded memory.
//!
//! Why this is not a plain `tokio::fs::File` copy: that would cost one `spawn_blocking` round trip per
//! incoming chunk (often 16 KiB from hyper), which caps a push far below the disk and the hasher. Instead
//! chunks are gathered until they add up to [`WRITE_BUF`] bytes, and each gathering is written with one
//! vectored write by a blocking task while the next one gathers, so reading the network (and hashing,
//! which the caller's stream hands to the blocking pool too) overlaps with the disk write. The chunks are
//! written from where they arrived, never copied into a buffer of ours: a copy, and a buffer of fresh
//! pages to fault in, cost about as much CPU as the write itself. At most one write is in flight: memory
//! per upload is about two gatherings whatever the blob size (at most [`MAX_PARTS`] chunks each, so a
//! body trickling in tiny chunks cannot pile up bookkeeping), and no blocking thread is held while a slow
//! client dawdles.
//!
//! Write-behind: the kernel would otherwise keep a whole blob's pages dirty in memory until the final
//! `fsync` (its writeback threshold is a share of RAM, gigabytes on a large machine), so the disk would
//! only start once the network was done, and a push would cost receiving *plus* writing. After each
//! buffer, `sync_file_range` starts writing it back, and waits for the pages more than [`WRITE_BEHIND`]
//! behind, so the disk works while the network does, the final `fsync` has at most that much left to
//! write, and an upload never holds more than that in dirty pages. It is only a schedule: durability
//! still comes from the `fsync` at the end (`sync_file_range` neither flushes the disk's cache nor
//! writes metadata).
//!
//! If the caller drops the future (the client hung up), the write in flight still completes on its
//! blocking thread. The upload's lock (see [`super::lock`]) stays held until it does, so the next
//! `upload_write` or `upload_commit` of that upload waits for it instead of racing with it.

use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice};
use std::mem;
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::task::JoinHandle;

use super::durable::sync_dir;
use super::lock::{Locked, lock};
use super::{Layout, blocking, join_error};
use crate::{ByteStream, Error, Result, UploadId};

/// Size of each write call. Large enough that the per-call overhead (a thread hop and a syscall) is
/// noise next to copying the bytes; small enough that two of them per upload are cheap.
pub const WRITE_BUF: usize = 1 << 20;

/// Chunks gathered for one write at most (Linux's `IOV_MAX`: one `pwritev` takes them all).
pub const MAX_PARTS: usize = 1024;

/// Bytes of an upload that may be under writeback, not yet waited for, behind the buffer being written:
/// enough to keep the disk's queue full, little enough that the final `fsync` is short.
pub const WRITE_BEHIND: u64 = 8 << 20;

/// [`crate::BlobStore::upload_write`] for the filesystem.
pub(super) async fn upload_write(
    layout: &Layout,
    id: &UploadId,
    offset: u64,
    mut data: ByteStream,
    sync: Sync,
) -> Result<u64> {
    let file = open_locked(layout, id, offset).await?;

    // The lock lives as long as the file stays open: until this call and its last write are done.
    let mut writer = Pipeline {
        file: Arc::new(file),
        pos: offset,
        written_back: offset,
        in_flight: None,
    };
    let mut gathered = Gathered::default();
    while let Some(item) = data.next().await {
        let chunk = match item {
            Ok(chunk) => chunk,
            Err(e) => {
                // Let the write in flight finish before returning, so no write of this call lands after
                // the caller has moved on (for instance to resume at its recorded offset). Its own error,
                // if any, matters less than the source's.
                let _ = writer.settle().await;
                return Err(Error::Source(e));
            }
        };
        if chunk.is_empty() {
            continue;
        }
        gathered.len += chunk.len();
        gathered.parts.push(chunk);
        if gathered.len >= WRITE_BUF || gathered.parts.len() >= MAX_PARTS {
            writer.submit(mem::take(&mut gathered)).await?;
        }
    }
    writer.finish(gathered, sync).await
}

/// How far an `upload_write` takes its bytes before it returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Sync {
    /// On the disk: an acknowledged chunk of a push survives a crash.
    Durable,
    /// Readable back, durable only at the commit (which fsyncs the file before publishing it): for
    /// uploads nobody resumes (see `BlobStore::upload_write_unsynced`). The write-behind still runs, so
    /// the commit's fsync has little left to write.
    Readable,
}

/// Chunks waiting to be written together, in order.
#[derive(Default)]
struct Gathered {
    parts: Vec<Bytes>,
    /// Their total length.
    len: usize,
}

impl Gathered {
    /// Writes every part at `at` and on, with as few `pwritev` calls as the kernel allows.
    fn write_at(&self, file: &File, mut at: u64) -> io::Result<()> {
        let mut slices: Vec<IoSlice<'_>> = self.parts.iter().map(|p| IoSlice::new(p)).collect();
        let mut rest = &mut slices[..];
        while !rest.is_empty() {
            let n = match pwritev(file, rest, at) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            at += n as u64;
            IoSlice::advance_slices(&mut rest, n);
        }
        Ok(())
    }
}

/// One positioned vectored write (at most `IOV_MAX` slices are taken; the caller loops on the rest).
fn pwritev(file: &File, slices: &[IoSlice<'_>], at: u64) -> io::Result<usize> {
    let count = libc::c_int::try_from(slices.len().min(MAX_PARTS)).unwrap_or(libc::c_int::MAX);
    let offset = libc::off64_t::try_from(at)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "write offset out of range"))?;
    // SAFETY: `IoSlice` is ABI-compatible with `struct iovec` (std guarantees it on Unix), the slices
    // and the memory they point to are borrowed for the duration of the call, `count` does not exceed
    // their number, and `file` keeps the descriptor open.
    let rc = unsafe {
        libc::pwritev64(
            file.as_raw_fd(),
            slices.as_ptr().cast::<libc::iovec>(),
            count,
            offset,
        )
    };
    usize::try_from(rc).map_err(|_| io::Error::last_os_error())
}

/// How often creating an upload is retried when the file is swapped under us between open and lock
/// (a commit or delete of the same id racing with a restart at offset 0). Two suffice in practice.
const OPEN_ATTEMPTS: usize = 3;

/// Opens upload `id`, takes its lock (waiting for any earlier writer's last write), and prepares it for
/// writing at `offset`.
async fn open_locked(layout: &Layout, id: &UploadId, offset: u64) -> Result<File> {
    let path = layout.upload_path(id);
    for _ in 0..OPEN_ATTEMPTS {
        let (p, dir, owned_id) = (path.clone(), layout.uploads_dir(), id.clone());
        let file = blocking(move || open(&p, &dir, owned_id, offset)).await??;
        match lock(file, path.clone()).await? {
            Locked::Held(file) => {
                let owned_id = id.clone();
                return blocking(move || cut_at(file, owned_id, offset)).await?;
            }
            // Committed or deleted while we waited: a continuation has nothing to continue, a
            // restart creates the upload afresh.
            Locked::Moved if offset > 0 => return Err(Error::UploadNotFound(id.clone())),
            Locked::Moved => continue,
        }
    }
    Err(io::Error::other(format!("upload {id} kept being replaced while opening it")).into())
}

/// Opens upload `id`, creating it if `offset` is 0.
fn open(path: &Path, uploads_dir: &Path, id: UploadId, offset: u64) -> Result<File> {
    // Never O_APPEND: positioned writes below would then ignore their offset on Linux.
    if offset == 0 {
        return match OpenOptions::new().write(true).create_new(true).open(path) {
            Ok(file) => {
                // The new name must survive a crash as much as the bytes written under it.
                sync_dir(uploads_dir)?;
                Ok(file)
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                Ok(OpenOptions::new().write(true).open(path)?)
            }
            Err(e) => Err(e.into()),
        };
    }
    match OpenOptions::new().write(true).open(path) {
        Ok(file) => Ok(file),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::UploadNotFound(id)),
        Err(e) => Err(e.into()),
    }
}

/// Checks that the (locked) upload holds at least `offset` bytes, and cuts off whatever lies beyond:
/// bytes a failed or interrupted write left behind.
fn cut_at(file: File, id: UploadId, offset: u64) -> Result<File> {
    let have = file.metadata()?.len();
    if have < offset {
        return Err(Error::UploadOffset { id, have, offset });
    }
    if have > offset {
        file.set_len(offset)?;
    }
    Ok(file)
}

/// Positioned writes of gathered chunks, one in flight at a time.
struct Pipeline {
    file: Arc<File>,
    /// Where the next buffer goes: the offset plus everything submitted so far.
    pos: u64,
    /// Up to where the write-behind has been waited for (see the module comment).
    written_back: u64,
    in_flight: Option<JoinHandle<io::Result<()>>>,
}

impl Pipeline {
    /// Waits for the previous write, then starts writing `buf` at the current position, with its
    /// write-behind.
    async fn submit(&mut self, buf: Gathered) -> Result<()> {
        self.settle().await?;
        let file = Arc::clone(&self.file);
        let at = self.pos;
        self.pos += buf.len as u64;
        let end = self.pos;
        let wait = behind(self.written_back, end);
        self.written_back = wait.end;
        self.in_flight = Some(tokio::task::spawn_blocking(move || {
            buf.write_at(&file, at)?;
            write_behind(&file, at..end, wait)
        }));
        Ok(())
    }

    /// Waits for the write in flight, if any.
    async fn settle(&mut self) -> io::Result<()> {
        match self.in_flight.take() {
            Some(handle) => handle.await.map_err(join_error)?,
            None => Ok(()),
        }
    }

    /// Writes the last chunks and makes everything durable if `sync` asks. Returns the upload's new
    /// length.
    async fn finish(mut self, rest: Gathered, sync: Sync) -> Result<u64> {
        self.settle().await?;
        let file = self.file;
        let at = self.pos;
        let end = at + rest.len as u64;
        blocking(move || {
            rest.write_at(&file, at)?;
            match sync {
                // sync_data covers the file's new size too: it is needed to read the bytes back.
                Sync::Durable => file.sync_data(),
                Sync::Readable => Ok(()),
            }
        })
        .await??;
        Ok(end)
    }
}

/// The bytes whose writeback to wait for once the upload is written up to `end`: everything more than
/// [`WRITE_BEHIND`] behind it not waited for yet (`written_back` onwards).
fn behind(written_back: u64, end: u64) -> Range<u64> {
    written_back..end.saturating_sub(WRITE_BEHIND).max(written_back)
}

/// Starts the writeback of `started` (just written) and waits for that of `wait` (written earlier).
///
/// Errors are returned, never ignored: waiting consumes the file's writeback error (as `fsync` would),
/// so an I/O error reported here would not be reported again by the final `fsync`.
fn write_behind(file: &File, started: Range<u64>, wait: Range<u64>) -> io::Result<()> {
    use libc::{SYNC_FILE_RANGE_WAIT_AFTER, SYNC_FILE_RANGE_WAIT_BEFORE, SYNC_FILE_RANGE_WRITE};
    if !wait.is_empty() {
        let flags =
            SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER;
        sync_file_range(file, wait, flags)?;
    }
    sync_file_range(file, started, SYNC_FILE_RANGE_WRITE)
}

fn sync_file_range(file: &File, range: Range<u64>, flags: libc::c_uint) -> io::Result<()> {
    let (Ok(offset), Ok(len)) = (
        libc::off64_t::try_from(range.start),
        libc::off64_t::try_from(range.end - range.start),
    ) else {
        // Beyond what the kernel can address: nothing could have been written there.
        return Ok(());
    };
    // SAFETY: sync_file_range reads no memory of ours; it only takes a descriptor, which `file` keeps
    // open for the duration of the call, and plain integers.
    let rc = unsafe { libc::sync_file_range(file.as_raw_fd(), offset, len, flags) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileExt;

    use super::*;

    fn gathered(parts: &[&[u8]]) -> Gathered {
        Gathered {
            parts: parts.iter().map(|p| Bytes::copy_from_slice(p)).collect(),
            len: parts.iter().map(|p| p.len()).sum(),
        }
    }

    #[test]
    fn gathered_chunks_land_in_order_at_their_offset() -> io::Result<()> {
        let tmp = tempfile::TempDir::new()?;
        let path = tmp.path().join("upload");
        let file = File::create(&path)?;
        file.write_all_at(b"0123", 0)?;
        gathered(&[b"ab", b"c", b"defg"]).write_at(&file, 2)?;
        assert_eq!(std::fs::read(&path)?, b"01abcdefg");
        Ok(())
    }

    #[test]
    fn more_parts_than_one_call_takes_are_all_written() -> io::Result<()> {
        let tmp = tempfile::TempDir::new()?;
        let path = tmp.path().join("upload");
        let file = File::create(&path)?;
        // Three times IOV_MAX one-byte parts: the write loops over the kernel's limit.
        let bytes: Vec<u8> = (0..3 * MAX_PARTS).map(|i| (i % 251) as u8).collect();
        let parts: Vec<&[u8]> = bytes.chunks(1).collect();
        gathered(&parts).write_at(&file, 0)?;
        assert_eq!(std::fs::read(&path)?, bytes);
        Ok(())
    }

    #[test]
    fn write_behind_waits_for_each_byte_once_and_keeps_the_last_ones_in_flight() {
        const MIB: u64 = 1 << 20;
        // An upload continued at 3 MiB, written in 1 MiB buffers up to 40 MiB.
        let mut written_back = 3 * MIB;
        let mut waited = Vec::new();
        for end in (4..=40).map(|n| n * MIB) {
            let wait = behind(written_back, end);
            assert_eq!(
                wait.start, written_back,
                "no gap, and no byte waited for twice"
            );
            written_back = wait.end;
            if !wait.is_empty() {
                // Exactly WRITE_BEHIND left in flight behind the end.
                assert_eq!(end - wait.end, WRITE_BEHIND);
                waited.push(wait);
            }
        }
        // Nothing is waited for until the upload is WRITE_BEHIND past where this call started...
        assert_eq!(waited.first(), Some(&(3 * MIB..12 * MIB - WRITE_BEHIND)));
        // ...and at the end, exactly the last WRITE_BEHIND bytes are left to the final fsync.
        assert_eq!(written_back, 40 * MIB - WRITE_BEHIND);
        assert_eq!(waited.len(), 40 - 12 + 1);
    }
}
