//! Appending an incoming stream to an upload file, fast and with bounded memory.
//!
//! Why this is not a plain `tokio::fs::File` copy: that would cost one `spawn_blocking` round trip per
//! incoming chunk (often 16 KiB from hyper), which caps a push far below the disk and the hasher. Instead
//! chunks are coalesced into [`WRITE_BUF`]-sized buffers, and each full buffer is written by a blocking
//! task while the next one fills, so reading the network (and hashing, which the caller does as the
//! stream is polled) overlaps with the disk write. At most one write is in flight: memory per upload is
//! about two buffers whatever the blob size, and no blocking thread is held while a slow client dawdles.
//!
//! If the caller drops the future (the client hung up), the write in flight still completes on its
//! blocking thread. The upload's lock (see [`super::lock`]) stays held until it does, so the next
//! `upload_write` or `upload_commit` of that upload waits for it instead of racing with it.

use std::fs::{File, OpenOptions};
use std::io;
use std::mem;
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
        in_flight: None,
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
                let full = mem::replace(&mut buf, BytesMut::with_capacity(WRITE_BUF));
                writer.submit(full.freeze()).await?;
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
    in_flight: Option<JoinHandle<io::Result<()>>>,
}

impl Pipeline {
    /// Waits for the previous write, then starts writing `buf` at the current position.
    async fn submit(&mut self, buf: Bytes) -> Result<()> {
        self.settle().await?;
        let file = Arc::clone(&self.file);
        let at = self.pos;
        self.pos += buf.len() as u64;
        self.in_flight = Some(tokio::task::spawn_blocking(move || {
            file.write_all_at(&buf, at)
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
