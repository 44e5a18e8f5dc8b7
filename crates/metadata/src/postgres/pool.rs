//! The connection pool: at most `max_open` connections, up to `max_idle` of them kept between uses, none
//! used past `max_lifetime` or after idling longer than `max_idle_time` (the four pool settings of
//! GitLab's registry, with Go's `database/sql` meaning).
//!
//! A small pool of our own rather than a pool crate: the four limits above are exactly what operators
//! configure, and the one thing a generic pool does not know is ours to decide: a connection handed
//! back in the middle of a transaction (its operation was cancelled, or failed between BEGIN and COMMIT
//! without a rollback) is closed, never reused, so no later operation runs inside someone else's
//! transaction.
//!
//! Statements go out with `query_typed`: the parameter types are given, so a statement is parsed, bound
//! and run in one round trip without a named prepared statement. That also keeps berth usable behind a
//! transaction-pooling PgBouncer, where named statements break.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures_util::{TryStreamExt, pin_mut};
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, NoTls, Row};

use super::PoolSettings;
use super::retry::Failure;
use super::tls::MakeRustls;
use crate::Error;

/// How long an operation waits for a connection when `max_open` are all in use.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// Parameters of a statement: each value with its PostgreSQL type.
pub(super) type Params<'a> = [(&'a (dyn ToSql + Sync), Type)];

pub(super) struct Pool {
    config: tokio_postgres::Config,
    /// `None`: `sslmode disable`.
    tls: Option<MakeRustls>,
    settings: PoolSettings,
    /// Connections not in use, the most recently returned last. A std mutex: held only to push or pop.
    idle: Mutex<Vec<Idle>>,
    /// One permit per connection that may be open; `None` when `max_open` is unlimited.
    open: Option<Arc<Semaphore>>,
}

struct Idle {
    client: Client,
    created: Instant,
    since: Instant,
}

#[derive(Debug, thiserror::Error)]
enum PoolError {
    #[error(
        "no database connection free within {0:?} (all `database.pool.maxopen` connections busy)"
    )]
    Exhausted(Duration),
}

impl Pool {
    pub(super) fn new(
        config: tokio_postgres::Config,
        tls: Option<MakeRustls>,
        settings: PoolSettings,
    ) -> Pool {
        let open = settings
            .max_open
            .map(|n| Arc::new(Semaphore::new(n.clamp(1, Semaphore::MAX_PERMITS))));
        Pool {
            config,
            tls,
            settings,
            idle: Mutex::new(Vec::new()),
            open,
        }
    }

    /// A connection: an idle one that is still good, else a new one.
    pub(super) async fn get(&self) -> Result<Conn<'_>, Failure> {
        let permit = match &self.open {
            None => None,
            Some(open) => match tokio::time::timeout(ACQUIRE_TIMEOUT, open.acquire()).await {
                Ok(Ok(permit)) => Some(permit),
                // The semaphore is never closed; treat it like a full pool if it were. Unavailable: the
                // database is too slow or too busy to serve this replica now (a client may retry).
                Ok(Err(_)) | Err(_) => {
                    return Err(Failure::Final(Error::Unavailable(Box::new(
                        PoolError::Exhausted(ACQUIRE_TIMEOUT),
                    ))));
                }
            },
        };
        let now = Instant::now();
        loop {
            let Some(idle) = lock(&self.idle).pop() else {
                break;
            };
            // An unusable connection is dropped here, which closes it.
            if !idle.client.is_closed()
                && !self.expired(idle.created, now)
                && !self.idled_out(idle.since, now)
            {
                return Ok(Conn {
                    client: Some(idle.client),
                    created: idle.created,
                    pool: self,
                    _permit: permit,
                    in_tx: false,
                    broken: false,
                });
            }
        }
        let client = self.connect().await.map_err(Failure::Connect)?;
        Ok(Conn {
            client: Some(client),
            created: Instant::now(),
            pool: self,
            _permit: permit,
            in_tx: false,
            broken: false,
        })
    }

    async fn connect(&self) -> Result<Client, tokio_postgres::Error> {
        self.connect_with(&self.config).await
    }

    /// A connection outside the pool, with `adjust` applied to its settings: for a session that is held
    /// for long and must not count against `max_open` (a job lock).
    pub(super) async fn connect_dedicated(
        &self,
        adjust: impl FnOnce(&mut tokio_postgres::Config),
    ) -> Result<Client, tokio_postgres::Error> {
        let mut config = self.config.clone();
        adjust(&mut config);
        self.connect_with(&config).await
    }

    /// A connection of its own whose notifications (`LISTEN`) are handed to `notify`; the sender is
    /// dropped when the connection ends, which is how the listener learns it must reconnect.
    pub(super) async fn connect_listening(
        &self,
        notify: tokio::sync::mpsc::UnboundedSender<tokio_postgres::Notification>,
    ) -> Result<Client, tokio_postgres::Error> {
        match &self.tls {
            None => {
                let (client, connection) = self.config.connect(NoTls).await?;
                tokio::spawn(forward_notifications(connection, notify));
                Ok(client)
            }
            Some(tls) => {
                let (client, connection) = self.config.connect(tls.clone()).await?;
                tokio::spawn(forward_notifications(connection, notify));
                Ok(client)
            }
        }
    }

    async fn connect_with(
        &self,
        config: &tokio_postgres::Config,
    ) -> Result<Client, tokio_postgres::Error> {
        // The connection object does the socket IO; it ends when the client is dropped or the server
        // goes away, and the client reports `is_closed` from then on.
        match &self.tls {
            None => {
                let (client, connection) = config.connect(NoTls).await?;
                tokio::spawn(drive(connection));
                Ok(client)
            }
            Some(tls) => {
                let (client, connection) = config.connect(tls.clone()).await?;
                tokio::spawn(drive(connection));
                Ok(client)
            }
        }
    }

    fn expired(&self, created: Instant, now: Instant) -> bool {
        self.settings
            .max_lifetime
            .is_some_and(|max| now.duration_since(created) >= max)
    }

    fn idled_out(&self, since: Instant, now: Instant) -> bool {
        self.settings
            .max_idle_time
            .is_some_and(|max| now.duration_since(since) >= max)
    }

    /// Takes back a connection after use, keeping it if it may be reused and there is room.
    fn put_back(&self, client: Client, created: Instant) {
        let now = Instant::now();
        if client.is_closed() || self.expired(created, now) {
            return;
        }
        let mut idle = lock(&self.idle);
        // Connections idle too long go first, so a quiet registry holds no server slots it does not use.
        idle.retain(|c| !self.idled_out(c.since, now) && !c.client.is_closed());
        if idle.len() < self.settings.max_idle {
            idle.push(Idle {
                client,
                created,
                since: now,
            });
        }
    }
}

/// Runs a connection's IO until it ends.
async fn drive<F>(connection: F)
where
    F: std::future::Future<Output = Result<(), tokio_postgres::Error>>,
{
    if let Err(e) = connection.await {
        tracing::debug!(error = %super::PgError(e), "PostgreSQL connection ended");
    }
}

/// Runs a connection's IO until it ends, handing its notifications to `notify`.
async fn forward_notifications<S, T>(
    mut connection: tokio_postgres::Connection<S, T>,
    notify: tokio::sync::mpsc::UnboundedSender<tokio_postgres::Notification>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
    while let Some(message) = futures_util::StreamExt::next(&mut messages).await {
        match message {
            Ok(tokio_postgres::AsyncMessage::Notification(n)) => {
                if notify.send(n).is_err() {
                    return;
                }
            }
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(error = %super::PgError(e), "PostgreSQL listening connection ended");
                return;
            }
        }
    }
}

/// Locks `m`, ignoring poisoning: the vector of idle connections is valid whatever panicked.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A connection checked out of the pool, returned to it when dropped (unless it must not be reused).
pub(super) struct Conn<'p> {
    /// Always `Some` until `Drop` takes it.
    client: Option<Client>,
    created: Instant,
    pool: &'p Pool,
    _permit: Option<SemaphorePermit<'p>>,
    /// A transaction is open: dropped in this state, the connection is closed (the server rolls back).
    in_tx: bool,
    /// The connection failed: closed rather than reused.
    broken: bool,
}

impl Conn<'_> {
    fn client(&self) -> Result<&Client, Failure> {
        self.client
            .as_ref()
            .ok_or_else(|| Failure::Final(Error::Backend("connection already returned".into())))
    }

    /// The failure of a statement, remembering whether the connection is still good.
    fn failed(&mut self, error: tokio_postgres::Error) -> Failure {
        // A server error (a constraint, a lost deadlock) leaves the connection usable (a transaction it
        // aborted is rolled back by `finish`); anything else (IO, closed, protocol) does not.
        if error.as_db_error().is_none() || self.client.as_ref().is_none_or(Client::is_closed) {
            self.broken = true;
        }
        Failure::Query {
            error,
            maybe_committed: !self.in_tx,
        }
    }

    /// Runs a statement, returning its rows.
    pub(super) async fn query(
        &mut self,
        sql: &str,
        params: &Params<'_>,
    ) -> Result<Vec<Row>, Failure> {
        let result = self.client()?.query_typed(sql, params).await;
        result.map_err(|e| self.failed(e))
    }

    /// Runs a statement that returns at most one row.
    pub(super) async fn query_opt(
        &mut self,
        sql: &str,
        params: &Params<'_>,
    ) -> Result<Option<Row>, Failure> {
        let result = self.client()?.query_typed_opt(sql, params).await;
        result.map_err(|e| self.failed(e))
    }

    /// Runs a statement that returns exactly one row.
    pub(super) async fn query_one(
        &mut self,
        sql: &str,
        params: &Params<'_>,
    ) -> Result<Row, Failure> {
        let result = self.client()?.query_typed_one(sql, params).await;
        result.map_err(|e| self.failed(e))
    }

    /// Runs a statement, returning how many rows it changed.
    pub(super) async fn execute(&mut self, sql: &str, params: &Params<'_>) -> Result<u64, Failure> {
        let result = execute(self.client()?, sql, params).await;
        result.map_err(|e| self.failed(e))
    }

    /// Runs statements without parameters (the simple query protocol: several may be separated by `;`).
    pub(super) async fn batch(&mut self, sql: &str) -> Result<(), Failure> {
        let result = self.client()?.batch_execute(sql).await;
        result.map_err(|e| self.failed(e))
    }

    /// Opens a transaction (READ COMMITTED, the server's default; the queries lock what they rely on).
    pub(super) async fn begin(&mut self) -> Result<(), Failure> {
        self.batch("BEGIN").await?;
        self.in_tx = true;
        Ok(())
    }

    /// Ends the transaction opened by [`begin`](Self::begin): commits if `out` is a success, rolls back
    /// otherwise, and returns `out` (or the commit's failure).
    pub(super) async fn finish<T>(&mut self, out: Result<T, Failure>) -> Result<T, Failure> {
        match out {
            Ok(value) => {
                // From here on a lost connection may have committed: the server may have received COMMIT.
                self.in_tx = false;
                let result = self.client()?.batch_execute("COMMIT").await;
                match result {
                    Ok(()) => Ok(value),
                    Err(e) => {
                        self.broken = true;
                        Err(Failure::Query {
                            error: e,
                            maybe_committed: true,
                        })
                    }
                }
            }
            Err(failure) => {
                if !self.broken {
                    let rolled_back = self.client()?.batch_execute("ROLLBACK").await;
                    if rolled_back.is_ok() {
                        self.in_tx = false;
                    } else {
                        self.broken = true;
                    }
                }
                Err(failure)
            }
        }
    }
}

/// `execute` for a statement with typed parameters (tokio-postgres has `query_typed` but no
/// `execute_typed`): runs it to the end and reads the count the server reports.
async fn execute(
    client: &Client,
    sql: &str,
    params: &Params<'_>,
) -> Result<u64, tokio_postgres::Error> {
    let stream = client
        .query_typed_raw(sql, params.iter().map(|(v, t)| (*v, t.clone())))
        .await?;
    pin_mut!(stream);
    while stream.try_next().await?.is_some() {}
    Ok(stream.rows_affected().unwrap_or(0))
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        if let Some(client) = self.client.take()
            && !self.in_tx
            && !self.broken
        {
            self.pool.put_back(client, self.created);
        }
    }
}
