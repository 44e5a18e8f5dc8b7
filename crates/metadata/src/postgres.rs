//! The PostgreSQL backend of [`MetadataStore`]: one database shared by any number of registry replicas.
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
//! TLS: this build has no TLS client for PostgreSQL (it would bring a second TLS and crypto stack into
//! the binary). `sslmode` `disable`, `allow` and `prefer` connect without TLS; `require`, `verify-ca` and
//! `verify-full` are refused at start rather than silently downgraded. Run PostgreSQL on a trusted
//! network or over a local socket (`host: /var/run/postgresql`).

mod migrate;
mod ops;
mod pool;
mod retry;

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use oci::{Digest, RepoName, Tag};

use crate::{Error, MetadataStore, NewManifest, Referrer, Result, StoredManifest, UploadSession};
use pool::Pool;
pub use retry::PgError;
use retry::{Backoff, Failure, Safety};

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

    /// Whether this mode insists on TLS (which this build cannot do).
    fn needs_tls(self) -> bool {
        matches!(
            self,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull
        )
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

/// Why connecting failed, other than PostgreSQL itself failing.
#[derive(Debug, thiserror::Error)]
enum ConnectError {
    #[error(
        "sslmode {0:?} needs TLS, which this build of berth does not support for PostgreSQL; \
         use sslmode disable or prefer on a trusted network or a Unix socket"
    )]
    TlsUnsupported(SslMode),
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

/// A [`MetadataStore`] in a PostgreSQL database. Cheap to clone (the pool is shared).
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
                    None => break Err(failure.into_error()),
                },
            }
        }
    }};
}

impl PostgresStore {
    /// Connects to the database of `settings` and brings its schema up to date (several replicas may do
    /// this at once). Fails if the database cannot be reached within the retry budget, if its schema is
    /// newer than this berth, or if `sslmode` demands TLS.
    pub async fn connect(settings: &Settings) -> Result<PostgresStore> {
        if settings.sslmode.needs_tls() {
            return Err(Error::Backend(Box::new(ConnectError::TlsUnsupported(
                settings.sslmode,
            ))));
        }
        if settings.sslmode == SslMode::Prefer {
            tracing::debug!(
                "database sslmode prefer: connecting without TLS (not supported by this build)"
            );
        }
        let mut config = tokio_postgres::Config::new();
        config
            .host(&settings.host)
            .port(settings.port)
            .user(&settings.user)
            .dbname(&settings.dbname)
            .application_name("berth")
            .ssl_mode(tokio_postgres::config::SslMode::Disable);
        if let Some(password) = &settings.password {
            config.password(password);
        }
        if let Some(timeout) = settings.connect_timeout {
            config.connect_timeout(timeout);
        }
        let store = PostgresStore {
            inner: Arc::new(Inner {
                pool: Pool::new(config, settings.pool.clone()),
            }),
        };
        run!(store, Safety::Idempotent, tx | c | migrate::migrate(c))?;
        Ok(store)
    }
}

#[async_trait::async_trait]
impl MetadataStore for PostgresStore {
    async fn link_blob(&self, repo: &RepoName, digest: &Digest, size: u64) -> Result<()> {
        run!(
            self,
            Safety::Idempotent,
            tx | c | ops::link_blob(c, repo, digest, size)
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
        run!(self, Safety::AtMostOnce, |c| ops::unlink_blob(
            c, repo, digest
        ))
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
            tx | c | ops::put_manifest(c, repo, manifest, tag)
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
        run!(
            self,
            Safety::AtMostOnce,
            tx | c | ops::delete_manifest(c, repo, digest)
        )
    }

    async fn delete_tag(&self, repo: &RepoName, tag: &Tag) -> Result<bool> {
        run!(self, Safety::AtMostOnce, |c| ops::delete_tag(c, repo, tag))
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

    /// Modes that demand TLS are refused before any connection is tried, not silently downgraded.
    #[tokio::test]
    async fn sslmodes_that_need_tls_are_refused() {
        for mode in [SslMode::Require, SslMode::VerifyCa, SslMode::VerifyFull] {
            let settings = Settings {
                // Nothing listens there; the refusal must come first.
                host: "127.0.0.1".to_string(),
                port: 1,
                sslmode: mode,
                ..Settings::default()
            };
            match PostgresStore::connect(&settings).await {
                Err(Error::Backend(e)) => assert!(e.to_string().contains("TLS"), "{e}"),
                Err(other) => panic!("{mode:?}: want a backend error, got {other:?}"),
                Ok(_) => panic!("{mode:?}: connected"),
            }
        }
    }
}
