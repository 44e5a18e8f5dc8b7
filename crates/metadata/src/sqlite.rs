//! The SQLite backend of every metadata role: one database file, good for a single registry node.
//!
//! rusqlite is blocking, so every call runs on tokio's blocking pool (`spawn_blocking`) and never stalls
//! the async workers. Connections:
//!
//! - one writer, behind a `std::sync::Mutex`. SQLite admits one writer at a time whatever we do; queueing
//!   our own writes on a mutex keeps them from fighting over the file lock (and from spinning in the busy
//!   handler), so the busy timeout only matters against other processes (a `berth gc` beside a server).
//!   The mutex is std, not tokio's, because it is only ever taken inside a blocking task and never held
//!   across an `.await`.
//! - a small pool of read-only connections. In WAL mode readers do not block the writer nor each other,
//!   and each statement sees a committed snapshot, so reads run concurrently with writes.
//!
//! Durability: WAL with `synchronous=FULL` fsyncs the log on every commit, so a write the registry
//! acknowledged survives kill -9 and power loss. Every write that reads before it writes runs in
//! `BEGIN IMMEDIATE`, taking the write lock up front: a deferred transaction that later upgrades its
//! lock can fail with "database is locked" however long the busy timeout, because another writer
//! changed its snapshot.

mod adopt_progress;
mod changes;
mod gc_marks;
mod ops;
mod outbox;
mod proxy_entries;
mod scrub_progress;
mod tag_ages;
mod usage;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use oci::{Digest, RepoName, Tag};
use rusqlite::{Connection, OpenFlags, TransactionBehavior};
use rustix::fs::{FlockOperation, flock};
use rustix::io::Errno;
use tokio::sync::Semaphore;

use crate::RecordedBlob;
use crate::job_lock;
use crate::outbox::noted;
use crate::schema::{self, Dialect};
use crate::{
    Catalog, Error, GcMarks, JobLock, JobLocks, LockHolder, NewManifest, ProxyEntries, ProxyEntry,
    Referrer, Result, StoredManifest, UploadSession, UploadSessions,
};
use crate::{
    CatalogChange, CatalogChanges, ChangeStream, ManifestPull, RepoUsage, StoreTotals, TagAge,
    TagAges, Usage,
};

/// How many read-only connections the pool opens. Small on purpose: reads are short, and every
/// connection keeps its own page cache.
const READERS: usize = 4;

/// How long a statement waits for a lock held by another process before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Every metadata role in one SQLite database file. Cheap to clone (the connections are shared).
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
    /// One permit per pooled reader: holding a permit guarantees a connection is free in `readers`.
    read_permits: Arc<Semaphore>,
    /// This process's committed changes, for the change feed.
    changes: changes::Announcer,
    /// Keeps the directory of a store made by `open_temporary` alive as long as the store.
    #[cfg(any(test, feature = "testsuite"))]
    _temp_dir: Option<tempfile::TempDir>,
}

/// Why opening a database failed, other than SQLite itself failing.
#[derive(Debug, thiserror::Error)]
enum OpenError {
    #[error("database is at schema version {found}, newer than this berth knows ({known})")]
    SchemaTooNew { found: i64, known: i64 },
    #[error("could not switch the database to WAL mode (journal_mode is {0:?})")]
    NoWal(String),
}

impl From<OpenError> for Error {
    fn from(e: OpenError) -> Self {
        Error::Backend(Box::new(e))
    }
}

/// Every SQLite failure is a backend failure; the domain errors (`MissingBlob`, ...) are decided by the
/// queries themselves, never inferred from a constraint violation. A full disk is the exception: the
/// transaction wrote nothing and the same write may succeed once space is freed, so it is `Full` (the
/// registry answers 503 with Retry-After, not 500).
impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) {
            return Error::Full(Box::new(e));
        }
        Error::Backend(Box::new(e))
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    ///
    /// Blocking: call it at start-up, or from `spawn_blocking`.
    pub fn open(path: &Path) -> Result<SqliteStore> {
        Ok(SqliteStore {
            inner: Arc::new(Inner::open(path)?),
        })
    }

    /// A store in a fresh temporary directory, removed when the last clone of the store is dropped. For
    /// tests: it behaves exactly like a store on disk (WAL needs a real file, so there is no in-memory
    /// variant).
    #[cfg(any(test, feature = "testsuite"))]
    pub fn open_temporary() -> Result<SqliteStore> {
        let dir = tempfile::tempdir().map_err(|e| Error::Backend(Box::new(e)))?;
        let mut inner = Inner::open(&dir.path().join("metadata.db"))?;
        inner._temp_dir = Some(dir);
        Ok(SqliteStore {
            inner: Arc::new(inner),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Announces `change` once `out` says the write committed (a failed write may also have committed,
    /// so that is announced too: forgetting too much is harmless).
    fn announced<T>(&self, out: Result<T>, change: CatalogChange) -> Result<T> {
        self.inner.changes.announce(change);
        out
    }

    /// Runs `f` on the writer connection in a blocking task.
    async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        blocking(move || f(&mut lock(&inner.writer))).await
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction on the writer; commits if `f` succeeds, rolls back
    /// (storing nothing) if it fails.
    async fn write_tx<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.write(move |conn| {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let out = f(&tx)?;
            tx.commit()?;
            Ok(out)
        })
        .await
    }

    /// Runs `f` on a pooled read-only connection in a blocking task.
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        // The permit moves into the blocking task, so a caller that gives up waiting (its future is
        // dropped) still returns the connection before the permit is released.
        let permit = Arc::clone(&self.inner.read_permits)
            .acquire_owned()
            .await
            .map_err(|e| Error::Backend(Box::new(e)))?;
        let inner = Arc::clone(&self.inner);
        blocking(move || {
            let _permit = permit;
            let pooled = lock(&inner.readers).pop();
            let conn = match pooled {
                Some(conn) => conn,
                // Only if a panicking reader lost its connection: replace it rather than fail.
                None => open_reader(&inner.path)?,
            };
            let out = f(&conn);
            lock(&inner.readers).push(conn);
            out
        })
        .await
    }
}

impl Inner {
    fn open(path: &Path) -> Result<Inner> {
        let writer = Connection::open(path)?;
        configure(&writer)?;
        let mode: String =
            writer.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(OpenError::NoWal(mode).into());
        }
        migrate(&writer)?;
        let readers = (0..READERS)
            .map(|_| open_reader(path))
            .collect::<Result<Vec<_>>>()?;
        Ok(Inner {
            path: path.to_path_buf(),
            writer: Mutex::new(writer),
            readers: Mutex::new(readers),
            read_permits: Arc::new(Semaphore::new(READERS)),
            changes: changes::Announcer::new(),
            #[cfg(any(test, feature = "testsuite"))]
            _temp_dir: None,
        })
    }
}

/// Runs `f` on the blocking pool. A panic inside becomes a backend error rather than taking the caller
/// down with it.
async fn blocking<T, F>(f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Backend(Box::new(e)))?
}

/// Locks `m`, ignoring poisoning: a panic while the lock was held cannot leave a connection mid-
/// transaction (rusqlite rolls back a dropped transaction), so the connection is still good.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Settings every connection needs (they are per connection, not stored in the file).
fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(())
}

fn open_reader(path: &Path) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    configure(&conn)?;
    Ok(conn)
}

/// Applies, in order and in one transaction, every migration the database has not recorded. Running it
/// again is a no-op; two processes opening the same file at once serialise on `BEGIN IMMEDIATE`.
fn migrate(conn: &Connection) -> Result<()> {
    let migrations = schema::migrations(Dialect::Sqlite);
    let known = migrations.last().map_or(0, |m| m.version);
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = (|| {
        conn.execute_batch(schema::MIGRATIONS_TABLE)?;
        let found: i64 = conn.query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
            [],
            |row| row.get(0),
        )?;
        if found > known {
            return Err(OpenError::SchemaTooNew { found, known }.into());
        }
        for m in migrations.iter().filter(|m| m.version > found) {
            tracing::info!(
                version = m.version,
                name = m.name,
                "applying metadata migration"
            );
            conn.execute_batch(&m.sql)?;
            conn.execute(
                "INSERT INTO schema_migrations (version, applied_at) VALUES (?1, ?2)",
                (m.version, ops::now()),
            )?;
        }
        Ok(())
    })();
    match result {
        Ok(()) => Ok(conn.execute_batch("COMMIT")?),
        Err(e) => {
            // The migration's own error is the one worth reporting; a failed rollback leaves the
            // transaction to be discarded when the connection closes.
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

#[async_trait::async_trait]
impl Catalog for SqliteStore {
    async fn link_blob(&self, repo: &RepoName, digest: &Digest, size: u64) -> Result<()> {
        let (repo, digest, events) = (repo.clone(), digest.clone(), noted());
        self.write_tx(move |tx| {
            ops::link_blobs(tx, &repo, &[(digest, size)])?;
            outbox::insert(tx, &events)
        })
        .await
    }

    async fn link_blobs(&self, repo: &RepoName, blobs: &[(Digest, u64)]) -> Result<()> {
        if blobs.is_empty() {
            return Ok(());
        }
        let (repo, blobs, events) = (repo.clone(), blobs.to_vec(), noted());
        self.write_tx(move |tx| {
            ops::link_blobs(tx, &repo, &blobs)?;
            outbox::insert(tx, &events)
        })
        .await
    }

    async fn linked_blob(&self, repo: &RepoName, digest: &Digest) -> Result<Option<u64>> {
        let (repo, digest) = (repo.clone(), digest.clone());
        self.read(move |conn| ops::linked_blob(conn, &repo, &digest))
            .await
    }

    async fn known_blob(&self, digest: &Digest) -> Result<Option<u64>> {
        let digest = digest.clone();
        self.read(move |conn| ops::known_blob(conn, &digest)).await
    }

    async fn unlink_blob(&self, repo: &RepoName, digest: &Digest) -> Result<bool> {
        let (r, digest, events) = (repo.clone(), digest.clone(), noted());
        let out = self
            .write_tx(move |tx| {
                let found = ops::unlink_blob(tx, &r, &digest)?;
                if found {
                    outbox::insert(tx, &events)?;
                }
                Ok(found)
            })
            .await;
        self.announced(out, CatalogChange::Repository(repo.clone()))
    }

    async fn put_manifest(
        &self,
        repo: &RepoName,
        manifest: &NewManifest,
        tag: Option<&Tag>,
    ) -> Result<()> {
        let moves_a_tag = tag.is_some();
        let (r, manifest, tag) = (repo.clone(), manifest.clone(), tag.cloned());
        let events = noted();
        let out = self
            .write_tx(move |tx| {
                ops::put_manifest(tx, &r, &manifest, tag.as_ref())?;
                outbox::insert(tx, &events)
            })
            .await;
        if moves_a_tag {
            return self.announced(out, CatalogChange::Repository(repo.clone()));
        }
        out
    }

    async fn put_tags(&self, repo: &RepoName, tags: &[(Tag, Digest)]) -> Result<()> {
        if tags.is_empty() {
            return Ok(());
        }
        let (r, tags, events) = (repo.clone(), tags.to_vec(), noted());
        let out = self
            .write_tx(move |tx| {
                ops::put_tags(tx, &r, &tags)?;
                outbox::insert(tx, &events)
            })
            .await;
        self.announced(out, CatalogChange::Repository(repo.clone()))
    }

    async fn manifest(&self, repo: &RepoName, digest: &Digest) -> Result<Option<StoredManifest>> {
        let (repo, digest) = (repo.clone(), digest.clone());
        self.read(move |conn| ops::manifest(conn, &repo, &digest))
            .await
    }

    async fn tagged_manifest(&self, repo: &RepoName, tag: &Tag) -> Result<Option<StoredManifest>> {
        let (repo, tag) = (repo.clone(), tag.clone());
        self.read(move |conn| ops::tagged_manifest(conn, &repo, &tag))
            .await
    }

    async fn delete_manifest(&self, repo: &RepoName, digest: &Digest) -> Result<bool> {
        let (r, digest, events) = (repo.clone(), digest.clone(), noted());
        let out = self
            .write_tx(move |tx| {
                let found = ops::delete_manifest(tx, &r, &digest)?;
                if found {
                    outbox::insert(tx, &events)?;
                }
                Ok(found)
            })
            .await;
        self.announced(out, CatalogChange::Repository(repo.clone()))
    }

    async fn delete_tag(&self, repo: &RepoName, tag: &Tag) -> Result<bool> {
        let (r, tag, events) = (repo.clone(), tag.clone(), noted());
        let out = self
            .write_tx(move |tx| {
                let found = ops::delete_tag(tx, &r, &tag)?;
                if found {
                    outbox::insert(tx, &events)?;
                }
                Ok(found)
            })
            .await;
        self.announced(out, CatalogChange::Repository(repo.clone()))
    }

    async fn repo_exists(&self, repo: &RepoName) -> Result<bool> {
        let repo = repo.clone();
        self.read(move |conn| ops::repo_exists(conn, &repo)).await
    }

    async fn list_tags(
        &self,
        repo: &RepoName,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>> {
        let (repo, after) = (repo.clone(), after.map(str::to_owned));
        self.read(move |conn| ops::list_tags(conn, &repo, after.as_deref(), limit))
            .await
    }

    async fn list_repos(&self, after: Option<&str>, limit: usize) -> Result<Vec<String>> {
        let after = after.map(str::to_owned);
        self.read(move |conn| ops::list_repos(conn, after.as_deref(), limit))
            .await
    }

    async fn referrers(&self, repo: &RepoName, subject: &Digest) -> Result<Vec<Referrer>> {
        let (repo, subject) = (repo.clone(), subject.clone());
        self.read(move |conn| ops::referrers(conn, &repo, &subject))
            .await
    }
}

#[async_trait::async_trait]
impl UploadSessions for SqliteStore {
    async fn save_upload(
        &self,
        session: &UploadSession,
        expected_offset: Option<u64>,
    ) -> Result<bool> {
        let session = session.clone();
        self.write(move |conn| ops::save_upload(conn, &session, expected_offset))
            .await
    }

    async fn upload(&self, id: &str) -> Result<Option<UploadSession>> {
        let id = id.to_owned();
        self.read(move |conn| ops::upload(conn, &id)).await
    }

    async fn delete_upload(&self, id: &str) -> Result<bool> {
        let id = id.to_owned();
        self.write(move |conn| ops::delete_upload(conn, &id)).await
    }

    async fn stale_uploads(
        &self,
        updated_before: i64,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<UploadSession>> {
        let after = after.map(str::to_owned);
        self.read(move |conn| ops::stale_uploads(conn, updated_before, after.as_deref(), limit))
            .await
    }
}

#[async_trait::async_trait]
impl JobLocks for SqliteStore {
    /// An exclusive `flock` on `<database>-job-<name>.lock`: every process on this machine that opens
    /// the database (a second server, `berth gc`) sees it, and the kernel releases it with the holder.
    async fn try_job_lock(&self, name: &str) -> Result<Option<JobLock>> {
        job_lock::check_name(name)?;
        let mut path = self.inner.path.clone().into_os_string();
        path.push(format!("-job-{name}.lock"));
        let name = name.to_string();
        blocking(move || {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .map_err(|e| Error::Backend(Box::new(e)))?;
            match flock(&file, FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => Ok(Some(JobLock::new(&name, Box::new(FlockHolder(file))))),
                Err(e) if e == Errno::WOULDBLOCK => Ok(None),
                Err(e) => Err(Error::Backend(Box::new(std::io::Error::from(e)))),
            }
        })
        .await
    }
}

/// The open descriptor that carries a job lock's `flock`: the kernel releases the lock with it, so it
/// holds for as long as it is open.
struct FlockHolder(
    #[expect(
        dead_code,
        reason = "never read: holding it open is what keeps the lock"
    )]
    std::fs::File,
);

#[async_trait::async_trait]
impl LockHolder for FlockHolder {
    async fn is_held(&self) -> bool {
        true
    }

    /// Nothing to do: the lock goes with the descriptor, closed when the holder is dropped right after.
    async fn release(&self) {}

    fn kind(&self) -> &'static str {
        "file"
    }
}

#[async_trait::async_trait]
impl GcMarks for SqliteStore {
    async fn reserve_blob(&self, digest: &Digest, size: u64) -> Result<bool> {
        let digest = digest.clone();
        self.write(move |conn| gc_marks::reserve(conn, &digest, size))
            .await
    }

    async fn unreferenced_blobs(
        &self,
        touched_before: i64,
        after: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<(Digest, u64)>> {
        let after = after.cloned();
        self.read(move |conn| gc_marks::unreferenced(conn, touched_before, after.as_ref(), limit))
            .await
    }

    async fn claim_blob(&self, digest: &Digest, touched_before: i64) -> Result<bool> {
        let digest = digest.clone();
        let out = self
            .write_tx(move |tx| gc_marks::claim(tx, &digest, touched_before))
            .await;
        match out {
            // A claim unlinks the blob from every repository, which it does not name.
            Ok(true) | Err(_) => self.announced(out, CatalogChange::Everything),
            Ok(false) => out,
        }
    }

    async fn release_blob(&self, digest: &Digest) -> Result<()> {
        let digest = digest.clone();
        self.write(move |conn| gc_marks::release(conn, &digest))
            .await
    }

    async fn claimed_blobs(&self, limit: usize) -> Result<Vec<Digest>> {
        self.read(move |conn| gc_marks::claimed(conn, limit)).await
    }

    async fn recorded_blobs(
        &self,
        after: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<RecordedBlob>> {
        let after = after.cloned();
        self.read(move |conn| gc_marks::recorded(conn, after.as_ref(), limit))
            .await
    }

    async fn claim_unrecorded_blob(&self, digest: &Digest, size: u64) -> Result<bool> {
        let digest = digest.clone();
        self.write(move |conn| gc_marks::claim_unrecorded(conn, &digest, size))
            .await
    }

    async fn unreachable_manifests(
        &self,
        repo: &RepoName,
        created_before: i64,
    ) -> Result<Vec<Digest>> {
        let repo = repo.clone();
        self.read(move |conn| gc_marks::unreachable(conn, &repo, created_before))
            .await
    }

    async fn delete_unreachable_manifest(
        &self,
        repo: &RepoName,
        digest: &Digest,
        created_before: i64,
    ) -> Result<bool> {
        let (r, digest) = (repo.clone(), digest.clone());
        let out = self
            .write_tx(move |tx| gc_marks::delete_unreachable(tx, &r, &digest, created_before))
            .await;
        self.announced(out, CatalogChange::Repository(repo.clone()))
    }
}

#[async_trait::async_trait]
impl ProxyEntries for SqliteStore {
    async fn touch_proxy_entries(&self, entries: &[ProxyEntry]) -> Result<()> {
        let entries = entries.to_vec();
        self.write_tx(move |tx| proxy_entries::touch(tx, &entries))
            .await
    }

    async fn oldest_proxy_entries(
        &self,
        pulled_before: i64,
        limit: usize,
    ) -> Result<Vec<ProxyEntry>> {
        self.read(move |conn| proxy_entries::oldest(conn, pulled_before, limit))
            .await
    }

    async fn proxy_entries_size(&self) -> Result<u64> {
        self.read(proxy_entries::size).await
    }

    async fn remove_proxy_entry(&self, repo: &RepoName, digest: &Digest) -> Result<bool> {
        let (repo, digest) = (repo.clone(), digest.clone());
        self.write(move |conn| proxy_entries::remove(conn, &repo, &digest))
            .await
    }
}

#[async_trait::async_trait]
impl TagAges for SqliteStore {
    async fn record_pulls(&self, pulls: &[ManifestPull]) -> Result<()> {
        let pulls = pulls.to_vec();
        self.write_tx(move |tx| tag_ages::record_pulls(tx, &pulls))
            .await
    }

    async fn tag_ages(&self, repo: &RepoName) -> Result<Vec<TagAge>> {
        let repo = repo.clone();
        self.read(move |conn| tag_ages::tag_ages(conn, &repo)).await
    }

    async fn delete_tag_unchanged(&self, repo: &RepoName, age: &TagAge) -> Result<bool> {
        let (r, age) = (repo.clone(), age.clone());
        let out = self
            .write(move |conn| tag_ages::delete_unchanged(conn, &r, &age))
            .await;
        self.announced(out, CatalogChange::Repository(repo.clone()))
    }
}

#[async_trait::async_trait]
impl Usage for SqliteStore {
    async fn repo_usage(&self, after: Option<&str>, limit: usize) -> Result<Vec<RepoUsage>> {
        let after = after.map(str::to_string);
        self.read(move |conn| usage::repo_usage(conn, after.as_deref(), limit))
            .await
    }

    async fn repos_with_prefix(&self, prefix: &str) -> Result<Vec<RepoName>> {
        let prefix = prefix.to_string();
        self.read(move |conn| usage::repos_with_prefix(conn, &prefix))
            .await
    }

    async fn distinct_bytes(&self, repos: &[RepoName]) -> Result<u64> {
        let repos = repos.to_vec();
        self.read(move |conn| usage::distinct_bytes(conn, &repos))
            .await
    }

    async fn linked_to_any(&self, repos: &[RepoName], digest: &Digest) -> Result<bool> {
        let (repos, digest) = (repos.to_vec(), digest.clone());
        self.read(move |conn| usage::linked_to_any(conn, &repos, &digest))
            .await
    }

    async fn totals(&self) -> Result<StoreTotals> {
        self.read(usage::totals).await
    }
}

#[async_trait::async_trait]
impl CatalogChanges for SqliteStore {
    async fn watch(&self) -> ChangeStream {
        changes::watch(self).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_is_unavailable_not_a_failure() {
        let full = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
            Some("database or disk is full".into()),
        );
        assert!(matches!(Error::from(full), Error::Full(_)));
        let other = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CORRUPT),
            None,
        );
        assert!(matches!(Error::from(other), Error::Backend(_)));
    }

    fn pragma(conn: &Connection, name: &str) -> String {
        conn.query_row(&format!("PRAGMA {name}"), [], |row| {
            row.get::<_, rusqlite::types::Value>(0)
        })
        .map(|v| format!("{v:?}"))
        .unwrap_or_else(|e| panic!("PRAGMA {name}: {e}"))
    }

    /// The settings durability and integrity rest on, on the writer and on every reader.
    #[test]
    fn connections_are_durable_wal_with_foreign_keys() {
        let store = SqliteStore::open_temporary().unwrap();
        let writer = lock(&store.inner.writer);
        assert_eq!(pragma(&writer, "journal_mode"), "Text(\"wal\")");
        // 2 = FULL: the WAL is fsynced at every commit.
        assert_eq!(pragma(&writer, "synchronous"), "Integer(2)");
        assert_eq!(pragma(&writer, "foreign_keys"), "Integer(1)");
        assert_eq!(pragma(&writer, "busy_timeout"), "Integer(10000)");
        let readers = lock(&store.inner.readers);
        assert_eq!(readers.len(), READERS);
        for reader in readers.iter() {
            assert_eq!(pragma(reader, "busy_timeout"), "Integer(10000)");
            assert!(reader.is_readonly(rusqlite::MAIN_DB).unwrap());
        }
    }

    /// Foreign keys are on and the schema's keys hold: a tag cannot point at a manifest that is not
    /// there, whatever a future query forgets.
    #[test]
    fn the_schema_rejects_a_dangling_tag() {
        let store = SqliteStore::open_temporary().unwrap();
        let writer = lock(&store.inner.writer);
        writer
            .execute("INSERT INTO repositories (name) VALUES ('app')", [])
            .unwrap();
        let dangling = writer.execute(
            "INSERT INTO tags (repo_id, name, manifest_digest, updated_at)
             SELECT id, 'latest', 'sha256:00', 0 FROM repositories",
            [],
        );
        assert!(dangling.is_err(), "{dangling:?}");
    }

    /// Many concurrent reads share the small pool without error and give every connection back.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_read_pool_serves_more_readers_than_connections() {
        let store = SqliteStore::open_temporary().unwrap();
        let r: RepoName = "app".parse().unwrap();
        let mut tasks = Vec::new();
        for _ in 0..(READERS * 8) {
            let (store, r) = (store.clone(), r.clone());
            tasks.push(tokio::spawn(async move { store.repo_exists(&r).await }));
        }
        for t in tasks {
            assert!(!t.await.unwrap().unwrap());
        }
        assert_eq!(lock(&store.inner.readers).len(), READERS);
    }
}
