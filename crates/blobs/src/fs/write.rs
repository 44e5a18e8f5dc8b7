//! Appending an incoming stream to an upload file, fast and with bounded memory.
//!
//! Why this is not a plain `tokio::fs::File` copy: that would cost one `spawn_blocking` round trip per
//! incoming chunk (often 16 KiB from hyper), which caps a push far below the disk and the hasher. Instead
//! chunks are coalesced into [`WRITE_BUF`]-sized buffers, and each full buffer is written by a blocking
//! task while the next one fills, so reading the network (and hashing, which the caller does as the
//! stream is polled) overlaps with the disk write. At most one write is in flight: memory per upload is
//! about two buffers whatever the blob size, and no blocking thread is held while a slow client dawdles.
//! The two buffers take turns rather than being allocated afresh for each MiB: a fresh buffer is fresh
//! pages, whose faults and zeroing cost about as much CPU as copying the bytes into them.
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
use std::io;
use std::mem;
use std::ops::Range;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::task::JoinHandle;

use super::durable::sync_dir;
use super::lock::{Locked, lock};
use super::{Layout, blocking, join_error};
use crate::{ByteStream, Error, Result, UploadId};

/// Size of each write call. Large enough that the per-call overhead (a thread hop and a syscall) is
/// noise next to copying the bytes; small enough that two of them per upload are cheap.
pub const WRITE_BUF: usize = 1 << 20;

/// Bytes of an upload that may be under writeback, not yet waited for, behind the buffer being written:
/// enough to keep the disk's queue full, little enough that the final `fsync` is short.
pub const WRITE_BEHIND: u64 = 8 << 20;

/// [`crate::BlobStore::upload_write`] for the filesystem.
pub(super) async fn upload_write(
    layout: &Layout,
    id: &UploadId,
    offset: u64,
    mut data: ByteStream,
) -> Result<u64> {
    let file = open_locked(layout, id, offset).await?;

    // The lock lives as long as the file stays open: until this call and its last write are done.
    let mut writer = Pipeline {
        file: Arc::new(file),
        pos: offset,
        written_back: offset,
        in_flight: None,
        spare: None,
    };
    let mut buf = BytesMut::with_capacity(WRITE_BUF);
    while let Some(item) = data.next().await {
        let mut chunk = match item {
            Ok(chunk) => chunk,
            Err(e) => {
                // Let the write in flight finish before returning, so no write of this call lands after
                // the caller has moved on (for instance to resume at its recorded offset). Its own error,
                // if any, matters less than the source's.
                let _ = writer.settle().await;
                return Err(Error::Source(e));
            }
        };
        while !chunk.is_empty() {
            if buf.is_empty() && chunk.len() >= WRITE_BUF {
                // Already big enough: write it as is rather than copy it.
                writer.submit(mem::take(&mut chunk)).await?;
                break;
            }
            let take = (WRITE_BUF - buf.len()).min(chunk.len());
            buf.extend_from_slice(&chunk.split_to(take));
            if buf.len() == WRITE_BUF {
                writer.submit(mem::take(&mut buf).freeze()).await?;
                buf = writer.take_spare();
            }
        }
    }
    writer.finish(buf.freeze()).await
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

/// Positioned writes of whole buffers, one in flight at a time.
struct Pipeline {
    file: Arc<File>,
    /// Where the next buffer goes: the offset plus everything submitted so far.
    pos: u64,
    /// Up to where the write-behind has been waited for (see the module comment).
    written_back: u64,
    /// The write in flight; it hands its buffer back for reuse when it can.
    in_flight: Option<JoinHandle<io::Result<Option<BytesMut>>>>,
    /// A buffer a finished write handed back, empty, for the next one to fill.
    spare: Option<BytesMut>,
}

impl Pipeline {
    /// Waits for the previous write, then starts writing `buf` at the current position, with its
    /// write-behind.
    async fn submit(&mut self, buf: Bytes) -> Result<()> {
        self.settle().await?;
        let file = Arc::clone(&self.file);
        let at = self.pos;
        self.pos += buf.len() as u64;
        let end = self.pos;
        let wait = behind(self.written_back, end);
        self.written_back = wait.end;
        self.in_flight = Some(tokio::task::spawn_blocking(move || {
            file.write_all_at(&buf, at)?;
            write_behind(&file, at..end, wait)?;
            // Only a buffer of ours comes back: one the caller passed through as is may be larger.
            Ok(buf
                .try_into_mut()
                .ok()
                .filter(|b| b.capacity() == WRITE_BUF))
        }));
        Ok(())
    }

    /// Waits for the write in flight, if any, keeping its buffer for the next.
    async fn settle(&mut self) -> io::Result<()> {
        if let Some(handle) = self.in_flight.take()
            && let Some(mut buf) = handle.await.map_err(join_error)??
        {
            buf.clear();
            self.spare = Some(buf);
        }
        Ok(())
    }

    /// An empty buffer of [`WRITE_BUF`] bytes: the one the last finished write handed back, or a new one.
    fn take_spare(&mut self) -> BytesMut {
        self.spare
            .take()
            .unwrap_or_else(|| BytesMut::with_capacity(WRITE_BUF))
    }

    /// Writes the last partial buffer and makes everything durable. Returns the upload's new length.
    async fn finish(mut self, rest: Bytes) -> Result<u64> {
        self.settle().await?;
        let file = self.file;
        let at = self.pos;
        let end = at + rest.len() as u64;
        blocking(move || {
            file.write_all_at(&rest, at)?;
            // sync_data covers the file's new size too: it is needed to read the bytes back.
            file.sync_data()
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
    use super::*;

    #[tokio::test]
    async fn write_buffers_take_turns_instead_of_being_allocated_anew() -> Result<()> {
        let tmp = tempfile::TempDir::new()?;
        let file = File::create(tmp.path().join("upload"))?;
        let mut writer = Pipeline {
            file: Arc::new(file),
            pos: 0,
            written_back: 0,
            in_flight: None,
            spare: None,
        };
        let mut seen = Vec::new();
        let mut buf = writer.take_spare();
        for i in 0..4u8 {
            buf.resize(WRITE_BUF, i);
            seen.push(buf.as_ptr());
            writer.submit(mem::take(&mut buf).freeze()).await?;
            buf = writer.take_spare();
            assert!(buf.is_empty() && buf.capacity() == WRITE_BUF);
        }
        assert_eq!(writer.finish(buf.freeze()).await?, 4 * WRITE_BUF as u64);
        // The first write's buffer is back for the third, the second's for the fourth.
        assert_eq!((seen[2], seen[3]), (seen[0], seen[1]));
        let back = std::fs::read(tmp.path().join("upload"))?;
        for i in 0..4u8 {
            let part = &back[i as usize * WRITE_BUF..(i as usize + 1) * WRITE_BUF];
            assert!(part.iter().all(|&b| b == i), "buffer {i} written whole");
        }
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
