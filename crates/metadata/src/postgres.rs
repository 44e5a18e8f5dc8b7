//! The PostgreSQL backend of every metadata role: one database shared by any number of registry replicas.
//!
//! Same schema (`schema.rs`, rendered for [`Dialect::Postgres`](crate::schema::Dialect::Postgres)) and same semantics as the SQLite
//! backend, so the shared suite runs unchanged against both. What a server adds:
//!
//! - Connections are pooled ([`pool`]: GitLab's `maxopen`/`maxidle`/`maxlifetime`/`maxidletime`).
//! - Several replicas write at once, so each multi-statement operation is one transaction that locks
//!   what its checks rely on (see [`ops`]); a write committed by one replica is visible to the next
//!   statement of every other (there is no cache in this store).
//! - Migrations run at start under an advisory lock, so replicas started together apply them exactly
//!   once ([`migrate`]).
//! - The network fails: connection errors and aborted transactions are retried with a short, bounded
//!   backoff where doing so cannot apply a write twice ([`retry`]).
//!
//! - TLS with libpq's `sslmode` meanings, on rustls ([`tls`]).
//! - Background jobs run on one replica at a time under session-level advisory locks ([`job_lock`]).
//! - A server that cannot be reached (refused, lost, the pool's wait exceeded) is reported as
//!   [`Error::Unavailable`] once the retries are spent, which the registry answers with 503.

mod adopt_progress;
mod changes;
mod gc_marks;
mod job_lock;
mod migrate;
mod ops;
mod outbox;
mod pool;
mod proxy_entries;
mod retry;
mod scrub_progress;
mod tag_ages;
mod tls;
mod usage;

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use oci::{Digest, RepoName, Tag};

use crate::RecordedBlob;
use crate::outbox::noted;
use crate::{AdoptCursor, AdoptProgress, AdoptedAhead, ScrubCursor, ScrubProgress};
use crate::{
    Catalog, Error, GcMarks, JobLock, JobLocks, NewManifest, ProxyEntries, ProxyEntry, Referrer,
    Result, StoredManifest, UploadSession, UploadSessions,
};
use crate::{
    CatalogChanges, ChangeStream, ManifestPull, RepoUsage, StoreTotals, TagAge, TagAges, Usage,
};
use crate::{NewEvent, Outbox, QueuedEvent};
use pool::Pool;
pub use retry::PgError;
use retry::{Backoff, Failure, Safety};
pub use tls::{TlsError, TlsFiles};

/// How to reach the database: the `database` section of the configuration (GitLab's container registry
/// spelling), typed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// A host name or IP address, or (starting with `/`) the directory of the server's Unix socket.
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    pub dbname: String,
    pub sslmode: SslMode,
    /// `sslrootcert`, `sslcert`, `sslkey`.
    pub tls: TlsFiles,
    /// Bound on establishing one connection (TCP, startup and authentication); `None`: no bound.
    pub connect_timeout: Option<Duration>,
    pub pool: PoolSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            host: "localhost".to_string(),
            port: 5432,
            user: "registry".to_string(),
            password: None,
            dbname: "registry".to_string(),
            sslmode: SslMode::Prefer,
            tls: TlsFiles::default(),
            connect_timeout: Some(Duration::from_secs(10)),
            pool: PoolSettings::default(),
        }
    }
}

/// The connection pool's limits, as GitLab's registry (and Go's `database/sql`) define them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolSettings {
    /// Most connections open at once (in use and idle); `None`: no limit. Operations beyond it wait.
    pub max_open: Option<usize>,
    /// Most connections kept open while unused; 0 closes each after use.
    pub max_idle: usize,
    /// A connection is not reused once this old; `None`: reused forever.
    pub max_lifetime: Option<Duration>,
    /// A connection unused this long is closed; `None`: kept however long it idles.
    pub max_idle_time: Option<Duration>,
}

impl Default for PoolSettings {
    /// Bounded by default (unlike Go's): 16 connections per replica stay far below PostgreSQL's default
    /// of 100 even for several replicas, and a registry's queries are short.
    fn default() -> Self {
        PoolSettings {
            max_open: Some(16),
            max_idle: 4,
            max_lifetime: Some(Duration::from_secs(30 * 60)),
            max_idle_time: Some(Duration::from_secs(5 * 60)),
        }
    }
}

/// libpq's `sslmode` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    pub const ALL: [(&'static str, SslMode); 6] = [
        ("disable", SslMode::Disable),
        ("allow", SslMode::Allow),
        ("prefer", SslMode::Prefer),
        ("require", SslMode::Require),
        ("verify-ca", SslMode::VerifyCa),
        ("verify-full", SslMode::VerifyFull),
    ];

    /// tokio-postgres's version: whether to ask for TLS, and whether to insist. It has no "plain first,
    /// TLS if refused" (`allow`), so `allow` asks like `prefer` does.
    fn negotiation(self) -> tokio_postgres::config::SslMode {
        use tokio_postgres::config::SslMode as Pg;
        match self {
            SslMode::Disable => Pg::Disable,
            SslMode::Allow | SslMode::Prefer => Pg::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => Pg::Require,
        }
    }
}

impl FromStr for SslMode {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        SslMode::ALL
            .iter()
            .find(|(name, _)| *name == s)
            .map(|(_, mode)| *mode)
            .ok_or_else(|| {
                let names: Vec<&str> = SslMode::ALL.iter().map(|(n, _)| *n).collect();
                format!("unknown sslmode {s:?} (one of {})", names.join(", "))
            })
    }
}

#[derive(Debug, thiserror::Error)]
#[error("database is at schema version {found}, newer than this berth knows ({known})")]
struct SchemaTooNew {
    found: i64,
    known: i64,
}

/// Unix seconds now. A clock before 1970 reads as 0 rather than failing a write.
fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Every metadata role in a PostgreSQL database. Cheap to clone (the pool is shared).
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
}

/// Runs one attempt of an operation on a pooled connection `c` (`tx`: inside a transaction), again after
/// a short delay while the failure is retryable for `safety`, and gives the final result.
macro_rules! run {
    ($store:expr, $safety:expr, |$c:ident| $body:expr) => {
        run!(@attempts $store, $safety, |$c| $body.await)
    };
    // A write that queues `noted()`'s events in its own transaction (taken before the first attempt, so a
    // retry queues the same events).
    ($store:expr, $safety:expr, noted |$c:ident| $body:expr) => {{
        let events = noted();
        run!($store, $safety, tx |$c| async {
            $body.await?;
            outbox::insert($c, &events).await
        })
    }};
    ($store:expr, $safety:expr, tx |$c:ident| $body:expr) => {
        run!(@attempts $store, $safety, |$c| {
            $c.begin().await?;
            let out = $body.await;
            $c.finish(out).await
        })
    };
    (@attempts $store:expr, $safety:expr, |$c:ident| $attempt:expr) => {{
        let mut backoff = Backoff::new($safety);
        loop {
            let outcome: std::result::Result<_, Failure> = async {
                let mut conn = $store.inner.pool.get().await?;
                let $c = &mut conn;
                $attempt
            }
            .await;
            match outcome {
                Ok(value) => break Ok(value),
                Err(failure) => match backoff.next_delay(&failure) {
                    Some(delay) => {
                        tracing::warn!(error = %failure, retry_in = ?delay, "PostgreSQL operation failed; retrying");
                        tokio::time::sleep(delay).await;
                    }
                    None => break Err(backoff.give_up(failure)),
                },
            }
        }
    }};
}

/// Queues `events` when a delete found something (`found`), and passes `found` on.
async fn noted_if(
    c: &mut pool::Conn<'_>,
    found: bool,
    events: &[NewEvent],
) -> std::result::Result<bool, Failure> {
    if found {
        outbox::insert(c, events).await?;
    }
    Ok(found)
}

#[async_trait::async_trait]
impl Outbox for PostgresStore {
    async fn append_events(&self, events: &[NewEvent]) -> Result<()> {
        // Not idempotent, but a duplicate event is what delivery at least once allows already.
        run!(self, Safety::Idempotent, tx | c | outbox::insert(c, events))
    }

    async fn pending_events(&self, endpoint: &str, limit: usize) -> Result<Vec<QueuedEvent>> {
        run!(self, Safety::Idempotent, |c| outbox::pending(
            c, endpoint, limit
        ))
    }

    async fn remove_events(&self, endpoint: &str, ids: &[i64]) -> Result<u64> {
        // Idempotent: the rows are gone after the first attempt (the count may then read 0).
        run!(self, Safety::Idempotent, |c| outbox::remove(
            c, endpoint, ids
        ))
    }

    async fn queued_events(&self) -> Result<Vec<(String, u64)>> {
        run!(self, Safety::Idempotent, |c| outbox::queued(c))
    }

    async fn drop_other_endpoints(&self, keep: &[String]) -> Result<u64> {
        run!(self, Safety::Idempotent, |c| outbox::drop_others(c, keep))
    }
}

impl PostgresStore {
    /// Connects to the database of `settings` and brings its schema up to date (several replicas may do
    /// this at once). Fails if the database cannot be reached within the retry budget, if its schema is
    /// newer than this berth, or if the TLS settings are unusable (a missing `sslrootcert`, a bad file).
    pub async fn connect(settings: &Settings) -> Result<PostgresStore> {
        let tls = tls::connector(settings.sslmode, &settings.tls)
            .map_err(|e| Error::Backend(Box::new(e)))?;
        let mut config = tokio_postgres::Config::new();
        config
            .host(&settings.host)
            .port(settings.port)
            .user(&settings.user)
            .dbname(&settings.dbname)
            .application_name("berth")
            .ssl_mode(settings.sslmode.negotiation());
        if let Some(password) = &settings.password {
            config.password(password);
        }
        if let Some(timeout) = settings.connect_timeout {
            config.connect_timeout(timeout);
        }
        let store = PostgresStore {
            inner: Arc::new(Inner {
                pool: Pool::new(config, tls, settings.pool.clone()),
            }),
        };
        run!(store, Safety::Idempotent, tx | c | migrate::migrate(c))?;
        Ok(store)
    }
}

#[async_trait::async_trait]
impl Catalog for PostgresStore {
    async fn link_blob(&self, repo: &RepoName, digest: &Digest, size: u64) -> Result<()> {
        // Idempotent but for its events: a retry after a commit that went unanswered queues them
        // twice, which delivery at least once allows.
        run!(
            self,
            Safety::Idempotent,
            noted | c | ops::link_blobs(c, repo, &[(digest.clone(), size)])
        )
    }

    async fn link_blobs(&self, repo: &RepoName, blobs: &[(Digest, u64)]) -> Result<()> {
        if blobs.is_empty() {
            return Ok(());
        }
        // Idempotent as `link_blob` is, events aside.
        run!(
            self,
            Safety::Idempotent,
            noted | c | ops::link_blobs(c, repo, blobs)
        )
    }

    async fn linked_blob(&self, repo: &RepoName, digest: &Digest) -> Result<Option<u64>> {
        run!(self, Safety::Idempotent, |c| ops::linked_blob(
            c, repo, digest
        ))
    }

    async fn known_blob(&self, digest: &Digest) -> Result<Option<u64>> {
        run!(self, Safety::Idempotent, |c| ops::known_blob(c, digest))
    }

    async fn unlink_blob(&self, repo: &RepoName, digest: &Digest) -> Result<bool> {
        let events = noted();
        run!(
            self,
            Safety::AtMostOnce,
            tx | c
                | async {
                    let found = ops::unlink_blob(c, repo, digest).await?;
                    noted_if(c, found, &events).await
                }
        )
    }

    async fn put_manifest(
        &self,
        repo: &RepoName,
        manifest: &NewManifest,
        tag: Option<&Tag>,
    ) -> Result<()> {
        // Idempotent: the same manifest again changes nothing, and the tag is set to the same value.
        run!(
            self,
            Safety::Idempotent,
            noted | c | ops::put_manifest(c, repo, manifest, tag)
        )
    }

    async fn put_tags(&self, repo: &RepoName, tags: &[(Tag, Digest)]) -> Result<()> {
        if tags.is_empty() {
            return Ok(());
        }
        // Idempotent: the tags are set to the same values again.
        run!(
            self,
            Safety::Idempotent,
            noted | c | ops::put_tags(c, repo, tags)
        )
    }

    async fn manifest(&self, repo: &RepoName, digest: &Digest) -> Result<Option<StoredManifest>> {
        run!(self, Safety::Idempotent, |c| ops::manifest(c, repo, digest))
    }

    async fn tagged_manifest(&self, repo: &RepoName, tag: &Tag) -> Result<Option<StoredManifest>> {
        run!(self, Safety::Idempotent, |c| ops::tagged_manifest(
            c, repo, tag
        ))
    }

    async fn delete_manifest(&self, repo: &RepoName, digest: &Digest) -> Result<bool> {
        let events = noted();
        run!(
            self,
            Safety::AtMostOnce,
            tx | c
                | async {
                    let found = ops::delete_manifest(c, repo, digest).await?;
                    noted_if(c, found, &events).await
                }
        )
    }

    async fn delete_tag(&self, repo: &RepoName, tag: &Tag) -> Result<bool> {
        let events = noted();
        run!(
            self,
            Safety::AtMostOnce,
            tx | c
                | async {
                    let found = ops::delete_tag(c, repo, tag).await?;
                    noted_if(c, found, &events).await
                }
        )
    }

    async fn repo_exists(&self, repo: &RepoName) -> Result<bool> {
        run!(self, Safety::Idempotent, |c| ops::repo_exists(c, repo))
    }

    async fn list_tags(
        &self,
        repo: &RepoName,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>> {
        run!(self, Safety::Idempotent, |c| ops::list_tags(
            c, repo, after, limit
        ))
    }

    async fn list_repos(&self, after: Option<&str>, limit: usize) -> Result<Vec<String>> {
        run!(self, Safety::Idempotent, |c| ops::list_repos(
            c, after, limit
        ))
    }

    async fn referrers(&self, repo: &RepoName, subject: &Digest) -> Result<Vec<Referrer>> {
        run!(self, Safety::Idempotent, |c| ops::referrers(
            c, repo, subject
        ))
    }
}

#[async_trait::async_trait]
impl UploadSessions for PostgresStore {
    async fn save_upload(
        &self,
        session: &UploadSession,
        expected_offset: Option<u64>,
    ) -> Result<bool> {
        // A compare-and-swap whose first attempt may have landed would report a lost race on retry.
        run!(self, Safety::AtMostOnce, |c| ops::save_upload(
            c,
            session,
            expected_offset
        ))
    }

    async fn upload(&self, id: &str) -> Result<Option<UploadSession>> {
        run!(self, Safety::Idempotent, |c| ops::upload(c, id))
    }

    async fn delete_upload(&self, id: &str) -> Result<bool> {
        run!(self, Safety::AtMostOnce, |c| ops::delete_upload(c, id))
    }

    async fn stale_uploads(
        &self,
        updated_before: i64,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<UploadSession>> {
        run!(self, Safety::Idempotent, |c| ops::stale_uploads(
            c,
            updated_before,
            after,
            limit
        ))
    }
}

#[async_trait::async_trait]
impl JobLocks for PostgresStore {
    async fn try_job_lock(&self, name: &str) -> Result<Option<JobLock>> {
        crate::job_lock::check_name(name)?;
        job_lock::try_lock(&self.inner.pool, name).await
    }
}

#[async_trait::async_trait]
impl GcMarks for PostgresStore {
    async fn reserve_blob(&self, digest: &Digest, size: u64) -> Result<bool> {
        // Idempotent: a second reservation only moves the touch forward.
        run!(self, Safety::Idempotent, |c| gc_marks::reserve(
            c, digest, size
        ))
    }

    async fn unreferenced_blobs(
        &self,
        touched_before: i64,
        after: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<(Digest, u64)>> {
        run!(self, Safety::Idempotent, |c| gc_marks::unreferenced(
            c,
            touched_before,
            after,
            limit
        ))
    }

    async fn claim_blob(&self, digest: &Digest, touched_before: i64) -> Result<bool> {
        // At most once: a claim that committed unseen would answer "not claimed" the second time, and
        // its blob would wait for the next sweep's `claimed_blobs`.
        run!(
            self,
            Safety::AtMostOnce,
            tx | c | gc_marks::claim(c, digest, touched_before)
        )
    }

    async fn release_blob(&self, digest: &Digest) -> Result<()> {
        run!(self, Safety::Idempotent, |c| gc_marks::release(c, digest))
    }

    async fn claimed_blobs(&self, limit: usize) -> Result<Vec<Digest>> {
        run!(self, Safety::Idempotent, |c| gc_marks::claimed(c, limit))
    }

    async fn recorded_blobs(
        &self,
        after: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<RecordedBlob>> {
        run!(self, Safety::Idempotent, |c| gc_marks::recorded(
            c, after, limit
        ))
    }

    async fn claim_unrecorded_blob(&self, digest: &Digest, size: u64) -> Result<bool> {
        // At most once, as a claim: one that committed unseen would answer "not claimed" the second
        // time, and its row would wait for the next sweep's `claimed_blobs`.
        run!(self, Safety::AtMostOnce, |c| gc_marks::claim_unrecorded(
            c, digest, size
        ))
    }

    async fn unreachable_manifests(
        &self,
        repo: &RepoName,
        created_before: i64,
    ) -> Result<Vec<Digest>> {
        run!(self, Safety::Idempotent, |c| gc_marks::unreachable(
            c,
            repo,
            created_before
        ))
    }

    async fn delete_unreachable_manifest(
        &self,
        repo: &RepoName,
        digest: &Digest,
        created_before: i64,
    ) -> Result<bool> {
        run!(
            self,
            Safety::AtMostOnce,
            tx | c | gc_marks::delete_unreachable(c, repo, digest, created_before)
        )
    }
}

#[async_trait::async_trait]
impl ScrubProgress for PostgresStore {
    async fn scrub_cursor(&self) -> Result<Option<ScrubCursor>> {
        run!(self, Safety::Idempotent, |c| scrub_progress::load(c))
    }

    async fn save_scrub_cursor(&self, cursor: Option<&ScrubCursor>) -> Result<()> {
        // Idempotent: the same row written again.
        run!(self, Safety::Idempotent, |c| scrub_progress::save(
            c, cursor
        ))
    }
}

#[async_trait::async_trait]
impl AdoptProgress for PostgresStore {
    async fn adopt_cursor(&self) -> Result<Option<AdoptCursor>> {
        run!(self, Safety::Idempotent, |c| adopt_progress::load(c))
    }

    async fn save_adopt_cursor(&self, cursor: &AdoptCursor) -> Result<()> {
        // Idempotent: the same row written again.
        run!(self, Safety::Idempotent, |c| adopt_progress::save(
            c, cursor
        ))
    }

    async fn note_adopted_ahead(&self, repo: &str, counts: &AdoptedAhead) -> Result<()> {
        run!(self, Safety::Idempotent, |c| adopt_progress::note_ahead(
            c, repo, counts
        ))
    }

    async fn adopted_ahead(&self, repo: &str) -> Result<Option<AdoptedAhead>> {
        run!(self, Safety::Idempotent, |c| adopt_progress::is_ahead(
            c, repo
        ))
    }
}

#[async_trait::async_trait]
impl ProxyEntries for PostgresStore {
    async fn touch_proxy_entries(&self, entries: &[ProxyEntry]) -> Result<()> {
        // Upserts that only move times forward: applying a batch twice changes nothing.
        run!(
            self,
            Safety::Idempotent,
            tx | c | proxy_entries::touch(c, entries)
        )
    }

    async fn oldest_proxy_entries(
        &self,
        pulled_before: i64,
        limit: usize,
    ) -> Result<Vec<ProxyEntry>> {
        run!(self, Safety::Idempotent, |c| proxy_entries::oldest(
            c,
            pulled_before,
            limit
        ))
    }

    async fn proxy_entries_size(&self) -> Result<u64> {
        run!(self, Safety::Idempotent, |c| proxy_entries::size(c))
    }

    async fn remove_proxy_entry(&self, repo: &RepoName, digest: &Digest) -> Result<bool> {
        run!(self, Safety::AtMostOnce, |c| proxy_entries::remove(
            c, repo, digest
        ))
    }
}

#[async_trait::async_trait]
impl TagAges for PostgresStore {
    async fn record_pulls(&self, pulls: &[ManifestPull]) -> Result<()> {
        // Updates that only move times forward: applying a batch twice changes nothing.
        run!(
            self,
            Safety::Idempotent,
            tx | c | tag_ages::record_pulls(c, pulls)
        )
    }

    async fn tag_ages(&self, repo: &RepoName) -> Result<Vec<TagAge>> {
        run!(self, Safety::Idempotent, |c| tag_ages::tag_ages(c, repo))
    }

    async fn delete_tag_unchanged(&self, repo: &RepoName, age: &TagAge) -> Result<bool> {
        // Conditional on the row read: a retry of a delete that committed finds nothing and says so,
        // which only undercounts a report.
        run!(self, Safety::Idempotent, |c| tag_ages::delete_unchanged(
            c, repo, age
        ))
    }
}

#[async_trait::async_trait]
impl Usage for PostgresStore {
    async fn repo_usage(&self, after: Option<&str>, limit: usize) -> Result<Vec<RepoUsage>> {
        run!(self, Safety::Idempotent, |c| usage::repo_usage(
            c, after, limit
        ))
    }

    async fn repos_with_prefix(&self, prefix: &str) -> Result<Vec<RepoName>> {
        run!(self, Safety::Idempotent, |c| usage::repos_with_prefix(
            c, prefix
        ))
    }

    async fn distinct_bytes(&self, repos: &[RepoName]) -> Result<u64> {
        run!(self, Safety::Idempotent, |c| usage::distinct_bytes(
            c, repos
        ))
    }

    async fn linked_to_any(&self, repos: &[RepoName], digest: &Digest) -> Result<bool> {
        run!(self, Safety::Idempotent, |c| usage::linked_to_any(
            c, repos, digest
        ))
    }

    async fn totals(&self) -> Result<StoreTotals> {
        run!(self, Safety::Idempotent, |c| usage::totals(c))
    }
}

#[async_trait::async_trait]
impl CatalogChanges for PostgresStore {
    async fn watch(&self) -> ChangeStream {
        changes::watch(Arc::clone(&self.inner))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_parses_libpq_names_only() {
        for (name, mode) in SslMode::ALL {
            assert_eq!(name.parse::<SslMode>(), Ok(mode));
        }
        let err = "required".parse::<SslMode>().unwrap_err();
        assert!(err.contains("verify-full"), "{err}");
        assert!("Disable".parse::<SslMode>().is_err());
    }

    /// Settings that cannot work are refused before any connection is tried: the checking modes need
    /// roots, a client certificate needs its key, and the files must hold what they should.
    #[tokio::test]
    async fn unusable_tls_settings_are_refused_before_connecting() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let only_root = |root: &std::path::Path| TlsFiles {
            root_cert: Some(root.to_path_buf()),
            ..TlsFiles::default()
        };
        let cases = [
            (SslMode::VerifyFull, TlsFiles::default(), "sslrootcert"),
            (SslMode::VerifyCa, TlsFiles::default(), "sslrootcert"),
            (SslMode::VerifyFull, only_root(&junk), "junk.pem"),
            (
                SslMode::Require,
                TlsFiles {
                    client_cert: Some(junk.clone()),
                    ..TlsFiles::default()
                },
                "sslkey",
            ),
            (
                SslMode::Require,
                TlsFiles {
                    root_cert: None,
                    client_cert: Some(dir.path().join("missing.pem")),
                    client_key: Some(junk.clone()),
                },
                "missing.pem",
            ),
        ];
        for (mode, tls, want) in cases {
            let settings = Settings {
                // Nothing listens there; the refusal must come first.
                host: "127.0.0.1".to_string(),
                port: 1,
                sslmode: mode,
                tls: tls.clone(),
                ..Settings::default()
            };
            match PostgresStore::connect(&settings).await {
                Err(Error::Backend(e)) => {
                    assert!(e.to_string().contains(want), "{mode:?} {tls:?}: {e}")
                }
                Err(other) => panic!("{mode:?}: want a backend error, got {other:?}"),
                Ok(_) => panic!("{mode:?}: connected"),
            }
        }
    }
}
