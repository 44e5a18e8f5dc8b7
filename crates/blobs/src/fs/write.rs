//! Appending an incoming stream to an upload file, fast and with bounded memory.
//!
//! Why this is not a plain `tokio::fs::File` copy: that would cost one `spawn_blocking` round trip per
//! incoming chunk (often 16 KiB from hyper), which caps a push far below the disk and the hasher. Instead
//! chunks are coalesced into [`WRITE_BUF`]-sized buffers, and each full buffer is written by a blocking
//! task while the next one fills, so reading the network (and hashing, which the caller does as the
//! stream is polled) overlaps with the disk write. At most one write is in flight: memory per upload is
//! about two buffers whatever the blob size, and no blocking thread is held while a slow client dawdles.

use std::fs::{File, OpenOptions};
use std::io;
use std::mem;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::task::JoinHandle;

use super::durable::sync_dir;
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
    let path = layout.upload_path(id);
    let uploads_dir = layout.uploads_dir();
    let owned_id = id.clone();
    let file = blocking(move || open_at(path, uploads_dir, owned_id, offset)).await??;

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

/// Opens upload `id` for writing at `offset`: creates it when `offset` is 0, checks that it holds at least
/// `offset` bytes, and cuts off whatever lies beyond (bytes a failed or interrupted write left behind).
fn open_at(path: PathBuf, uploads_dir: PathBuf, id: UploadId, offset: u64) -> Result<File> {
    if offset == 0 {
        let file = match OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(file) => {
                // The new name must survive a crash as much as the bytes written under it.
                sync_dir(&uploads_dir)?;
                file
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                OpenOptions::new().write(true).open(&path)?
            }
            Err(e) => return Err(e.into()),
        };
        file.set_len(0)?;
        return Ok(file);
    }
    // Never O_APPEND: positioned writes below would then ignore their offset on Linux.
    let file = match OpenOptions::new().write(true).open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(Error::UploadNotFound(id)),
        Err(e) => return Err(e.into()),
    };
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
