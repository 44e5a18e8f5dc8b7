//! The PostgreSQL backend: the shared suite, each case in a database of its own (so cases run in
//! parallel and `list_repos` sees only its own data), plus what only a shared server has: replicas on one
//! database, concurrent migrations, connections killed by the server, the pool's limits.
//!
//! They run against the server `BERTH_TEST_POSTGRES_URL` names, as a user that may create databases and
//! terminate connections (`scripts/test` starts a throwaway one; `scripts/postgres.sh` says how to start
//! one by hand). Without it every test prints that it skipped, and passes; under CI (`CI` set) a
//! missing URL fails instead, so CI cannot skip them by accident. The TLS tests also need the directory
//! of the server's CA certificates in `BERTH_TEST_POSTGRES_TLS` (`scripts/postgres.sh` makes them).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test: a panic is a failed test"
)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use berth_metadata as metadata;
use bytes::Bytes;
use metadata::postgres::{PoolSettings, PostgresStore, Settings, SslMode, TlsFiles};
use metadata::{Catalog, Error, JobLocks, NewManifest, UploadSession, UploadSessions};
use oci::{Digest, RepoName, Tag};
use tokio_postgres::config::Host;
use tokio_postgres::{Client, NoTls};

#[path = "postgres/tls.rs"]
mod tls;

const URL_ENV: &str = "BERTH_TEST_POSTGRES_URL";
const TLS_ENV: &str = "BERTH_TEST_POSTGRES_TLS";

metadata::catalog_tests!(optional: fresh_store());
metadata::upload_session_tests!(optional: fresh_store());
metadata::proxy_entry_tests!(optional: fresh_store());
metadata::gc_mark_tests!(optional: fresh_store());
metadata::scrub_progress_tests!(optional: fresh_store());
metadata::adopt_progress_tests!(optional: fresh_store());
metadata::outbox_tests!(optional: fresh_store());
metadata::tag_age_tests!(optional: fresh_store());
metadata::usage_tests!(optional: fresh_store());
metadata::job_lock_tests!(optional: fresh_pair());
metadata::catalog_change_tests!(optional: fresh_pair());

/// The server to test against, or `None` (after saying so) when none is configured.
fn server() -> Option<tokio_postgres::Config> {
    match std::env::var(URL_ENV) {
        Ok(url) if !url.is_empty() => Some(
            url.parse()
                .unwrap_or_else(|e| panic!("{URL_ENV} is not a PostgreSQL URL: {e}")),
        ),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "{URL_ENV} is not set under CI: the PostgreSQL tests must run there (scripts/test sets it)"
            );
            eprintln!(
                "SKIPPED: {URL_ENV} is not set, so there is no PostgreSQL to test against \
                 (scripts/test starts one)"
            );
            None
        }
    }
}

/// A connection of our own to the server's maintenance database (the URL's), for setup and inspection.
async fn admin(server: &tokio_postgres::Config) -> Client {
    let (client, connection) = server.connect(NoTls).await.unwrap_or_else(|e| {
        panic!(
            "connecting to {URL_ENV}: {}",
            metadata::postgres::PgError(e)
        )
    });
    tokio::spawn(connection);
    client
}

/// Settings that reach `dbname` on the test server.
fn settings_for(server: &tokio_postgres::Config, dbname: &str) -> Settings {
    let host = match server.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_string(),
    };
    Settings {
        host,
        port: server.get_ports().first().copied().unwrap_or(5432),
        user: server.get_user().unwrap_or("postgres").to_string(),
        password: server
            .get_password()
            .map(|p| String::from_utf8_lossy(p).into_owned()),
        dbname: dbname.to_string(),
        sslmode: SslMode::Disable,
        tls: TlsFiles::default(),
        connect_timeout: Some(Duration::from_secs(10)),
        pool: PoolSettings::default(),
    }
}

/// Test databases are named `berth_test_<unix seconds>_<pid>_<n>`; those older than this are left over
/// from earlier runs against a long-lived server, and are dropped.
const STALE_AFTER: Duration = Duration::from_secs(3600);

/// A new, empty database on the test server (with a locale whose order is not byte order, so the
/// listings' `COLLATE "C"` is exercised); returns settings that reach it.
async fn fresh_database(server: &tokio_postgres::Config) -> Settings {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let name = format!(
        "berth_test_{now}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    );
    let admin = admin(server).await;
    drop_stale_databases(&admin, now).await;
    // ICU needs PostgreSQL 15; an older server gets its default locale.
    let icu = format!(
        "CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8' \
         LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"
    );
    if admin.batch_execute(&icu).await.is_err() {
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE: {}", metadata::postgres::PgError(e)));
    }
    settings_for(server, &name)
}

async fn drop_stale_databases(admin: &Client, now: u64) {
    let Ok(rows) = admin
        .query(
            "SELECT datname FROM pg_database WHERE datname LIKE 'berth\\_test\\_%'",
            &[],
        )
        .await
    else {
        return;
    };
    for row in rows {
        let name: String = row.get(0);
        let created = name.split('_').nth(2).and_then(|s| s.parse::<u64>().ok());
        if created.is_some_and(|t| t + STALE_AFTER.as_secs() < now) {
            // Best effort: another run may be dropping it too.
            let _ = admin
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await;
        }
    }
}

/// A store over a fresh database, for the shared suite.
async fn fresh_store() -> Option<PostgresStore> {
    let server = server()?;
    let settings = fresh_database(&server).await;
    Some(
        PostgresStore::connect(&settings)
            .await
            .unwrap_or_else(|e| panic!("connecting the store: {e}")),
    )
}

/// Two stores on one fresh database: two replicas.
async fn fresh_pair() -> Option<(PostgresStore, PostgresStore)> {
    let server = server()?;
    let settings = fresh_database(&server).await;
    let connect = || async {
        PostgresStore::connect(&settings)
            .await
            .unwrap_or_else(|e| panic!("connecting the store: {e}"))
    };
    Some((connect().await, connect().await))
}

fn repo(s: &str) -> RepoName {
    s.parse().unwrap()
}

fn tag(s: &str) -> Tag {
    s.parse().unwrap()
}

fn manifest(label: &str, blobs: &[Digest]) -> NewManifest {
    let payload = Bytes::from(format!("{{\"label\":{label:?}}}"));
    NewManifest {
        digest: Digest::sha256_of(&payload),
        media_type: oci::media_type::OCI_MANIFEST.to_string(),
        payload,
        artifact_type: None,
        subject: None,
        annotations: None,
        blobs: blobs.to_vec(),
        children: Vec::new(),
        optional_children: Vec::new(),
        tag_immutable: false,
    }
}

fn session(id: &str, offset: u64) -> UploadSession {
    UploadSession {
        id: id.to_string(),
        repo: repo("app"),
        offset,
        hash_state: offset.to_be_bytes().to_vec(),
        started_at: 1_700_000_000,
        updated_at: 1_700_000_000 + offset as i64,
    }
}

/// Backend pids connected to `dbname`, other than `admin`'s own.
async fn backends(admin: &Client, dbname: &str) -> Vec<i32> {
    admin
        .query(
            "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()
             ORDER BY pid",
            &[&dbname],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// Waits (bounded) until `dbname` has exactly `n` backends, and returns them.
async fn wait_for_backends(admin: &Client, dbname: &str, n: usize) -> Vec<i32> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pids = backends(admin, dbname).await;
        if pids.len() == n {
            return pids;
        }
        assert!(
            Instant::now() < deadline,
            "{dbname} has backends {pids:?}, expected {n}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits (bounded) until a backend of `dbname` waits for a lock, and returns its pid.
async fn wait_for_lock_waiter(admin: &Client, dbname: &str) -> i32 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let row = admin
            .query_opt(
                "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'",
                &[&dbname],
            )
            .await
            .unwrap();
        if let Some(row) = row {
            return row.get(0);
        }
        assert!(
            Instant::now() < deadline,
            "nothing in {dbname} waits for a lock"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn terminate(admin: &Client, pid: i32) {
    let killed: bool = admin
        .query_one("SELECT pg_terminate_backend($1)", &[&pid])
        .await
        .unwrap()
        .get(0);
    assert!(killed, "backend {pid} was not there to terminate");
}

/// A client connected to `dbname` on the test server.
async fn connect_to(server: &tokio_postgres::Config, dbname: &str) -> Client {
    let mut config = server.clone();
    config.dbname(dbname);
    admin(&config).await
}

/// Two stores on one database are two replicas: what one writes, the other reads at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_see_each_others_writes_at_once() {
    let Some(server) = server() else { return };
    let settings = fresh_database(&server).await;
    let a = PostgresStore::connect(&settings).await.unwrap();
    let b = PostgresStore::connect(&settings).await.unwrap();
    let r = repo("lib/app");
    let layer = Digest::sha256_of(b"layer");

    a.link_blob(&r, &layer, 42).await.unwrap();
    assert_eq!(b.linked_blob(&r, &layer).await.unwrap(), Some(42));
    let m1 = manifest("m1", std::slice::from_ref(&layer));
    b.put_manifest(&r, &m1, Some(&tag("latest"))).await.unwrap();
    assert_eq!(
        a.tagged_manifest(&r, &tag("latest"))
            .await
            .unwrap()
            .unwrap()
            .digest,
        m1.digest
    );
    let m2 = manifest("m2", &[]);
    a.put_manifest(&r, &m2, Some(&tag("latest"))).await.unwrap();
    assert_eq!(
        b.tagged_manifest(&r, &tag("latest"))
            .await
            .unwrap()
            .unwrap()
            .digest,
        m2.digest
    );
    assert_eq!(b.list_repos(None, 10).await.unwrap(), ["lib/app"]);

    // An upload started on one replica continues on the other, and the compare-and-swap spans both.
    assert!(a.save_upload(&session("u", 0), None).await.unwrap());
    assert!(b.save_upload(&session("u", 10), Some(0)).await.unwrap());
    assert!(!a.save_upload(&session("u", 5), Some(0)).await.unwrap());
    assert_eq!(a.upload("u").await.unwrap(), Some(session("u", 10)));

    assert!(b.delete_manifest(&r, &m2.digest).await.unwrap());
    assert_eq!(a.tagged_manifest(&r, &tag("latest")).await.unwrap(), None);
    assert!(!a.delete_manifest(&r, &m2.digest).await.unwrap());
}

/// Replicas starting together each run the migrations; the advisory lock makes exactly one apply them
/// and the others find them applied, where unguarded they would fail on each other's tables.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_starts_migrate_exactly_once() {
    let Some(server) = server() else { return };
    let settings = fresh_database(&server).await;
    let starts: Vec<_> = (0..8)
        .map(|_| {
            let settings = settings.clone();
            tokio::spawn(async move { PostgresStore::connect(&settings).await })
        })
        .collect();
    let mut stores = Vec::new();
    for start in starts {
        stores.push(
            start
                .await
                .unwrap()
                .unwrap_or_else(|e| panic!("a replica failed to start: {e}")),
        );
    }
    let db = connect_to(&server, &settings.dbname).await;
    let versions: Vec<i64> = db
        .query(
            "SELECT version FROM schema_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let known: Vec<i64> = metadata::schema::migrations(metadata::schema::Dialect::Postgres)
        .iter()
        .map(|m| m.version)
        .collect();
    assert_eq!(versions, known);
    // And the schema works through every one of them.
    for (i, store) in stores.iter().enumerate() {
        store
            .put_manifest(&repo("app"), &manifest(&format!("m{i}"), &[]), None)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_database_from_a_newer_berth_is_refused() {
    let Some(server) = server() else { return };
    let settings = fresh_database(&server).await;
    drop(PostgresStore::connect(&settings).await.unwrap());
    let db = connect_to(&server, &settings.dbname).await;
    db.batch_execute("INSERT INTO schema_migrations (version, applied_at) VALUES (9999, 0)")
        .await
        .unwrap();
    match PostgresStore::connect(&settings).await {
        Err(Error::Backend(e)) => assert!(e.to_string().contains("9999"), "{e}"),
        Err(other) => panic!("want a backend error, got {other:?}"),
        Ok(_) => panic!("opened a database with an unknown schema version"),
    }
}

#[tokio::test]
async fn tampered_rows_are_reported_as_corrupt() {
    let Some(server) = server() else { return };
    let settings = fresh_database(&server).await;
    let store = PostgresStore::connect(&settings).await.unwrap();
    let r = repo("app");
    let layer = Digest::sha256_of(b"layer");
    store.link_blob(&r, &layer, 1).await.unwrap();
    store
        .put_manifest(&r, &manifest("m", &[]), Some(&tag("t")))
        .await
        .unwrap();
    assert!(store.save_upload(&session("u", 3), None).await.unwrap());

    let db = connect_to(&server, &settings.dbname).await;
    db.batch_execute(
        "UPDATE manifests SET subject = 'sha256:not-hex';
         UPDATE blobs SET size = -1;
         UPDATE uploads SET byte_offset = -5",
    )
    .await
    .unwrap();
    let got = store.tagged_manifest(&r, &tag("t")).await;
    assert!(matches!(got, Err(Error::Corrupt(_))), "{got:?}");
    let got = store.linked_blob(&r, &layer).await;
    assert!(matches!(got, Err(Error::Corrupt(_))), "{got:?}");
    let got = store.upload("u").await;
    assert!(matches!(got, Err(Error::Corrupt(_))), "{got:?}");
}

/// The schema's keys hold on PostgreSQL too: a tag cannot point at a manifest that is not there.
#[tokio::test]
async fn the_schema_rejects_a_dangling_tag() {
    let Some(server) = server() else { return };
    let settings = fresh_database(&server).await;
    drop(PostgresStore::connect(&settings).await.unwrap());
    let db = connect_to(&server, &settings.dbname).await;
    db.batch_execute("INSERT INTO repositories (name) VALUES ('app')")
        .await
        .unwrap();
    let dangling = db
        .batch_execute(
            "INSERT INTO tags (repo_id, name, manifest_digest, updated_at)
             SELECT id, 'latest', 'sha256:00', 0 FROM repositories",
        )
        .await;
    assert!(dangling.is_err(), "{dangling:?}");
}

/// The server terminates every connection of the pool between two operations (a restart, a failover,
/// an administrator): the next operations get new connections instead of failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooled_connections_killed_by_the_server_are_replaced() {
    let Some(server) = server() else { return };
    let settings = fresh_database(&server).await;
    let store = PostgresStore::connect(&settings).await.unwrap();
    let r = repo("app");
    store
        .put_manifest(&r, &manifest("before", &[]), Some(&tag("v1")))
        .await
        .unwrap();
    let admin = admin(&server).await;
    let pooled = backends(&admin, &settings.dbname).await;
    assert!(!pooled.is_empty(), "the pool kept no connection");
    for pid in pooled {
        terminate(&admin, pid).await;
    }

    assert!(store.repo_exists(&r).await.unwrap());
    store
        .put_manifest(&r, &manifest("after", &[]), Some(&tag("v2")))
        .await
        .unwrap();
    assert_eq!(store.list_tags(&r, None, 10).await.unwrap(), ["v1", "v2"]);
}

/// A transaction whose connection is killed before it commits did nothing, so even an operation that
/// must not run twice is retried, and succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_killed_before_commit_is_retried() {
    let Some(server) = server() else { return };
    let settings = fresh_database(&server).await;
    let store = PostgresStore::connect(&settings).await.unwrap();
    let r = repo("app");
    let m = manifest("m", &[]);
    store.put_manifest(&r, &m, Some(&tag("v1"))).await.unwrap();

    for op in ["put_manifest", "delete_manifest"] {
        // Our own transaction holds a lock the operation needs, so it is certainly mid-way when killed.
        let mut blocker = connect_to(&server, &settings.dbname).await;
        let tx = blocker.transaction().await.unwrap();
        tx.batch_execute("LOCK TABLE tags IN ACCESS EXCLUSIVE MODE")
            .await
            .unwrap();
        let task = {
            let (store, r, m) = (store.clone(), r.clone(), m.clone());
            tokio::spawn(async move {
                match op {
                    "put_manifest" => store
                        .put_manifest(&r, &m, Some(&tag("v2")))
                        .await
                        .map(|()| true),
                    _ => store.delete_manifest(&r, &m.digest).await,
                }
            })
        };
        let admin = admin(&server).await;
        let waiter = wait_for_lock_waiter(&admin, &settings.dbname).await;
        terminate(&admin, waiter).await;
        tx.commit().await.unwrap();
        let result = task.await.unwrap();
        assert!(
            matches!(result, Ok(true)),
            "{op} after its connection was killed: {result:?}"
        );
    }
    assert_eq!(store.manifest(&r, &m.digest).await.unwrap(), None);
    assert!(store.list_tags(&r, None, 10).await.unwrap().is_empty());
}

/// A compare-and-swap whose connection dies while the statement runs may or may not have been applied:
/// retrying could report a lost race for a write that happened, so it fails with a backend error
/// instead (never a panic, never a wrong answer), and the next attempt sees the truth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ambiguous_compare_and_swap_is_an_error_not_a_retry() {
    let Some(server) = server() else { return };
    let settings = fresh_database(&server).await;
    let store = PostgresStore::connect(&settings).await.unwrap();
    assert!(store.save_upload(&session("u", 0), None).await.unwrap());

    let mut blocker = connect_to(&server, &settings.dbname).await;
    let tx = blocker.transaction().await.unwrap();
    tx.batch_execute("LOCK TABLE uploads IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let task = {
        let store = store.clone();
        tokio::spawn(async move { store.save_upload(&session("u", 10), Some(0)).await })
    };
    let admin = admin(&server).await;
    let waiter = wait_for_lock_waiter(&admin, &settings.dbname).await;
    terminate(&admin, waiter).await;
    tx.commit().await.unwrap();

    let result = task.await.unwrap();
    assert!(matches!(result, Err(Error::Backend(_))), "{result:?}");
    // It was killed before it ran: nothing changed, and the writer's retry wins.
    assert_eq!(store.upload("u").await.unwrap(), Some(session("u", 0)));
    assert!(store.save_upload(&session("u", 10), Some(0)).await.unwrap());
}

/// `max_open` bounds the connections (operations beyond it wait for one), and `max_idle` how many stay
/// open afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_opens_at_most_max_open_and_keeps_max_idle() {
    let Some(server) = server() else { return };
    let mut settings = fresh_database(&server).await;
    settings.pool = PoolSettings {
        max_open: Some(2),
        max_idle: 1,
        max_lifetime: None,
        max_idle_time: None,
    };
    let store = PostgresStore::connect(&settings).await.unwrap();
    let admin = admin(&server).await;

    let mut blocker = connect_to(&server, &settings.dbname).await;
    let tx = blocker.transaction().await.unwrap();
    tx.batch_execute("LOCK TABLE uploads IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let readers: Vec<_> = (0..6)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.upload(&format!("u{i}")).await })
        })
        .collect();
    // Two readers hold the two connections, blocked on the lock; the other four wait for the pool.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let waiting: i64 = admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'",
                &[&settings.dbname],
            )
            .await
            .unwrap()
            .get(0);
        if waiting == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{waiting} readers wait on the lock"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The blocker's own backend is the third.
    assert_eq!(backends(&admin, &settings.dbname).await.len(), 3);
    tx.commit().await.unwrap();
    drop(blocker);
    for reader in readers {
        assert_eq!(reader.await.unwrap().unwrap(), None);
    }
    wait_for_backends(&admin, &settings.dbname, 1).await;
}

/// Connections are not reused past `max_lifetime`, nor after idling longer than `max_idle_time`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_renewed_after_max_lifetime_and_max_idle_time() {
    let Some(server) = server() else { return };
    let admin = admin(&server).await;
    for (lifetime, idle_time) in [
        (Some(Duration::from_millis(300)), None),
        (None, Some(Duration::from_millis(300))),
    ] {
        let mut settings = fresh_database(&server).await;
        settings.pool = PoolSettings {
            max_open: Some(4),
            max_idle: 4,
            max_lifetime: lifetime,
            max_idle_time: idle_time,
        };
        let store = PostgresStore::connect(&settings).await.unwrap();
        store.repo_exists(&repo("app")).await.unwrap();
        let first = wait_for_backends(&admin, &settings.dbname, 1).await;
        store.repo_exists(&repo("app")).await.unwrap();
        assert_eq!(
            backends(&admin, &settings.dbname).await,
            first,
            "a fresh connection was not reused"
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
        store.repo_exists(&repo("app")).await.unwrap();
        let second = wait_for_backends(&admin, &settings.dbname, 1).await;
        assert_ne!(
            second, first,
            "connection reused past lifetime {lifetime:?} / idle time {idle_time:?}"
        );
    }
}

/// Nothing listens: connecting fails as unavailable (the registry's 503) after the bounded retries,
/// without hanging. (Needs no server, so it runs everywhere.)
#[tokio::test]
async fn an_unreachable_server_fails_within_the_retry_budget() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let settings = Settings {
        host: "127.0.0.1".to_string(),
        port,
        ..Settings::default()
    };
    let started = Instant::now();
    match PostgresStore::connect(&settings).await {
        Err(Error::Unavailable(e)) => assert!(e.to_string().contains("connect"), "{e}"),
        Err(other) => panic!("want an unavailable error, got {other:?}"),
        Ok(_) => panic!("connected to a closed port"),
    }
    let took = started.elapsed();
    // Retried (the delays add up to about a second), but bounded.
    assert!(took >= Duration::from_millis(400), "not retried: {took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
}

/// Wrong credentials are not a passing condition: reported at once, with the server's reason.
#[tokio::test]
async fn a_wrong_password_is_reported_without_retrying() {
    let Some(server) = server() else { return };
    let mut settings = fresh_database(&server).await;
    settings.password = Some("not-the-password".to_string());
    let started = Instant::now();
    match PostgresStore::connect(&settings).await {
        Err(Error::Backend(e)) => assert!(e.to_string().contains("password"), "{e}"),
        Err(other) => panic!("want a backend error, got {other:?}"),
        Ok(_) => panic!("connected with a wrong password"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

/// The session holding a job lock dies (a failover, an administrator, a replica's network gone and its
/// keepalives expired): the holder learns it has lost the lock, and another replica takes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_lock_is_taken_over_when_its_session_dies() {
    let Some(server) = server() else { return };
    let settings = fresh_database(&server).await;
    let a = PostgresStore::connect(&settings).await.unwrap();
    let b = PostgresStore::connect(&settings).await.unwrap();
    let held = a.try_job_lock("purge").await.unwrap().unwrap();
    assert!(b.try_job_lock("purge").await.unwrap().is_none());

    let admin = admin(&server).await;
    let holders: Vec<i32> = admin
        .query(
            "SELECT l.pid FROM pg_locks l JOIN pg_database d ON d.oid = l.database
             WHERE l.locktype = 'advisory' AND l.granted AND d.datname = $1",
            &[&settings.dbname],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(holders.len(), 1, "advisory locks held: {holders:?}");
    terminate(&admin, holders[0]).await;

    assert!(!held.is_held().await, "the holder did not notice its loss");
    let taken = metadata::testsuite::take_within_bound(&b, "purge").await;
    assert!(taken.is_held().await);
}

/// A job lock's session is not one of the pool's: holding it neither uses up `max_open` nor is closed
/// by the pool's limits, and the store's operations go on beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_lock_does_not_take_a_pool_connection() {
    let Some(server) = server() else { return };
    let mut settings = fresh_database(&server).await;
    settings.pool.max_open = Some(1);
    let store = PostgresStore::connect(&settings).await.unwrap();
    let held = store.try_job_lock("purge").await.unwrap().unwrap();
    let r = repo("app");
    store
        .put_manifest(&r, &manifest("m", &[]), Some(&tag("v1")))
        .await
        .unwrap();
    assert_eq!(store.list_tags(&r, None, 10).await.unwrap(), ["v1"]);
    assert!(held.is_held().await);
}
