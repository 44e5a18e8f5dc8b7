//! The SQLite backend: the shared suite over a temporary file, plus what only a file-backed store has
//! (reopening, migrations, several connections or processes on one file, surviving an abrupt exit).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test: a panic is a failed test"
)]

use std::path::Path;
use std::sync::Arc;

use berth_metadata as metadata;
use bytes::Bytes;
use metadata::sqlite::SqliteStore;
use metadata::{Catalog, Error, JobLocks, NewManifest, UploadSession, UploadSessions};
use oci::{Digest, RepoName, Tag};

metadata::catalog_tests!(async { SqliteStore::open_temporary().expect("temporary sqlite store") });

metadata::upload_session_tests!(async {
    SqliteStore::open_temporary().expect("temporary sqlite store")
});

metadata::proxy_entry_tests!(async {
    SqliteStore::open_temporary().expect("temporary sqlite store")
});

metadata::gc_mark_tests!(async { SqliteStore::open_temporary().expect("temporary sqlite store") });

metadata::scrub_progress_tests!(async {
    SqliteStore::open_temporary().expect("temporary sqlite store")
});

metadata::adopt_progress_tests!(async {
    SqliteStore::open_temporary().expect("temporary sqlite store")
});

metadata::tag_age_tests!(async { SqliteStore::open_temporary().expect("temporary sqlite store") });

metadata::usage_tests!(async { SqliteStore::open_temporary().expect("temporary sqlite store") });

metadata::outbox_tests!(async { SqliteStore::open_temporary().expect("temporary sqlite store") });

// Two stores on one file, as two processes on one machine would open it.
metadata::job_lock_tests!(async {
    let a = SqliteStore::open_temporary().expect("temporary sqlite store");
    let b = SqliteStore::open(a.path()).expect("second store on the same file");
    (a, b)
});

metadata::catalog_change_tests!(async {
    let a = SqliteStore::open_temporary().expect("temporary sqlite store");
    let b = SqliteStore::open(a.path()).expect("second store on the same file");
    (a, b)
});

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
        artifact_type: Some("application/vnd.example".to_string()),
        subject: None,
        annotations: None,
        blobs: blobs.to_vec(),
        children: Vec::new(),
        optional_children: Vec::new(),
        tag_immutable: false,
    }
}

/// `(version, applied_at)` rows of the migrations table, read with a connection of our own.
fn applied_migrations(path: &Path) -> Vec<(i64, i64)> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut stmt = conn
        .prepare("SELECT version, applied_at FROM schema_migrations ORDER BY version")
        .unwrap();
    stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Writes one of everything, so a reopened store can be checked for all of it.
async fn write_everything(store: &SqliteStore) -> (NewManifest, NewManifest, UploadSession) {
    let r = repo("lib/app");
    let layer = Digest::sha256_of(b"layer");
    store.link_blob(&r, &layer, 1234).await.unwrap();
    let image = manifest("image", &[layer]);
    store
        .put_manifest(&r, &image, Some(&tag("v1")))
        .await
        .unwrap();
    let mut sig = manifest("sig", &[]);
    sig.subject = Some(image.digest.clone());
    store.put_manifest(&r, &sig, None).await.unwrap();
    let upload = UploadSession {
        id: "upload-1".to_string(),
        repo: r,
        offset: 77,
        hash_state: vec![1, 2, 3],
        started_at: 10,
        updated_at: 20,
    };
    assert!(store.save_upload(&upload, None).await.unwrap());
    (image, sig, upload)
}

async fn check_everything(
    store: &SqliteStore,
    image: &NewManifest,
    sig: &NewManifest,
    upload: &UploadSession,
) {
    let r = repo("lib/app");
    let layer = Digest::sha256_of(b"layer");
    assert_eq!(store.linked_blob(&r, &layer).await.unwrap(), Some(1234));
    let tagged = store
        .tagged_manifest(&r, &tag("v1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(tagged.digest, image.digest);
    assert_eq!(tagged.payload, image.payload);
    let referrers = store.referrers(&r, &image.digest).await.unwrap();
    assert_eq!(referrers.len(), 1);
    assert_eq!(referrers[0].digest, sig.digest);
    assert_eq!(store.list_repos(None, 10).await.unwrap(), vec!["lib/app"]);
    assert_eq!(
        store.upload(&upload.id).await.unwrap().as_ref(),
        Some(upload)
    );
}

#[tokio::test]
async fn reopening_keeps_everything_and_migrations_run_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.db");
    let store = SqliteStore::open(&path).unwrap();
    let (image, sig, upload) = write_everything(&store).await;
    drop(store);
    let first = applied_migrations(&path);
    assert_eq!(
        first.iter().map(|m| m.0).collect::<Vec<_>>(),
        metadata::schema::migrations(metadata::schema::Dialect::Sqlite)
            .iter()
            .map(|m| m.version)
            .collect::<Vec<_>>()
    );

    // Twice, so a second run of the migrations over an up-to-date file is covered too.
    for _ in 0..2 {
        let store = SqliteStore::open(&path).unwrap();
        check_everything(&store, &image, &sig, &upload).await;
        drop(store);
        assert_eq!(
            applied_migrations(&path),
            first,
            "reopening re-ran a migration"
        );
    }
}

#[tokio::test]
async fn a_database_from_a_newer_berth_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.db");
    drop(SqliteStore::open(&path).unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute(
        "INSERT INTO schema_migrations (version, applied_at) VALUES (9999, 0)",
        [],
    )
    .unwrap();
    drop(conn);
    match SqliteStore::open(&path) {
        Err(Error::Backend(e)) => assert!(e.to_string().contains("9999"), "{e}"),
        Err(other) => panic!("want a backend error, got {other:?}"),
        Ok(_) => panic!("opened a database with an unknown schema version"),
    }
}

#[tokio::test]
async fn tampered_rows_are_reported_as_corrupt() {
    let store = SqliteStore::open_temporary().unwrap();
    let r = repo("app");
    let m = manifest("m", &[]);
    store.put_manifest(&r, &m, Some(&tag("t"))).await.unwrap();
    let conn = rusqlite::Connection::open(store.path()).unwrap();
    conn.execute("UPDATE manifests SET subject = 'sha256:not-hex'", [])
        .unwrap();
    let got = store.tagged_manifest(&r, &tag("t")).await;
    assert!(matches!(got, Err(Error::Corrupt(_))), "{got:?}");
}

/// Two stores on one file are two sets of connections competing for SQLite's lock, as a server and a
/// `berth gc` would: every write must still succeed (BEGIN IMMEDIATE plus the busy timeout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_on_one_file_both_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.db");
    let stores = [
        Arc::new(SqliteStore::open(&path).unwrap()),
        Arc::new(SqliteStore::open(&path).unwrap()),
    ];
    let mut tasks = Vec::new();
    for t in 0..8 {
        let store = Arc::clone(&stores[t % 2]);
        tasks.push(tokio::spawn(async move {
            let r = repo("shared");
            for i in 0..10 {
                let layer = Digest::sha256_of(format!("layer-{t}-{i}").as_bytes());
                store.link_blob(&r, &layer, 1).await?;
                let m = manifest(&format!("m-{t}-{i}"), &[layer]);
                store.put_manifest(&r, &m, Some(&tag("latest"))).await?;
                store
                    .put_manifest(&r, &m, Some(&tag(&format!("t{t}-{i}"))))
                    .await?;
                // delete_manifest reads before it writes, the case that needs BEGIN IMMEDIATE.
                let scratch = manifest(&format!("scratch-{t}-{i}"), &[]);
                store.put_manifest(&r, &scratch, None).await?;
                assert!(store.delete_manifest(&r, &scratch.digest).await?);
            }
            Ok::<_, Error>(())
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    for store in &stores {
        // Each sees the other's writes: 80 own tags plus "latest".
        assert_eq!(
            store
                .list_tags(&repo("shared"), None, 1000)
                .await
                .unwrap()
                .len(),
            81
        );
    }
}

/// Set by `acknowledged_writes_survive_an_abrupt_exit` for the child process it starts.
const CHILD_DB_ENV: &str = "BERTH_METADATA_ABORT_CHILD_DB";

/// The child half of `acknowledged_writes_survive_an_abrupt_exit`: writes, then dies without running
/// any destructor (no connection close, no WAL checkpoint), as kill -9 would leave it.
#[tokio::test]
#[ignore = "helper run in a child process by acknowledged_writes_survive_an_abrupt_exit"]
async fn child_writes_then_aborts() {
    let Some(path) = std::env::var_os(CHILD_DB_ENV) else {
        panic!("{CHILD_DB_ENV} not set: this runs only as a child of another test");
    };
    let store = SqliteStore::open(Path::new(&path)).unwrap();
    write_everything(&store).await;
    std::process::abort();
}

#[tokio::test]
async fn acknowledged_writes_survive_an_abrupt_exit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meta.db");
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_writes_then_aborts",
            "--ignored",
            "--test-threads=1",
        ])
        .env(CHILD_DB_ENV, &path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "the child was meant to abort");

    let store = SqliteStore::open(&path).unwrap();
    let r = repo("lib/app");
    let image = manifest("image", &[Digest::sha256_of(b"layer")]);
    let mut sig = manifest("sig", &[]);
    sig.subject = Some(image.digest.clone());
    let upload = UploadSession {
        id: "upload-1".to_string(),
        repo: r,
        offset: 77,
        hash_state: vec![1, 2, 3],
        started_at: 10,
        updated_at: 20,
    };
    check_everything(&store, &image, &sig, &upload).await;
}

/// Another process holds the write lock and commits while our delete waits. A deferred transaction
/// would read first, find its snapshot stale once the lock frees, and fail with "database is locked";
/// `BEGIN IMMEDIATE` waits for the lock before reading and succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_waits_out_another_process_holding_the_lock() {
    let store = SqliteStore::open_temporary().unwrap();
    let r = repo("app");
    let m = manifest("m", &[]);
    store.put_manifest(&r, &m, Some(&tag("t"))).await.unwrap();

    let other = rusqlite::Connection::open(store.path()).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    other
        .execute("INSERT INTO repositories (name) VALUES ('elsewhere')", [])
        .unwrap();
    let delete = {
        let (store, r, d) = (store.clone(), r.clone(), m.digest.clone());
        tokio::spawn(async move { store.delete_manifest(&r, &d).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    other.execute_batch("COMMIT").unwrap();

    assert!(delete.await.unwrap().unwrap());
    assert_eq!(store.manifest(&r, &m.digest).await.unwrap(), None);
}

/// Set by `a_job_lock_is_taken_over_when_its_holder_process_dies` for the child process it starts.
const CHILD_LOCK_DB_ENV: &str = "BERTH_METADATA_JOB_LOCK_CHILD_DB";
/// What the child prints once it holds the lock.
const CHILD_HOLDS: &str = "child holds the job lock";

/// The child half of `a_job_lock_is_taken_over_when_its_holder_process_dies`: takes the lock, says so,
/// and waits to be killed.
#[tokio::test]
#[ignore = "helper run in a child process by a_job_lock_is_taken_over_when_its_holder_process_dies"]
async fn child_holds_a_job_lock() {
    let Some(path) = std::env::var_os(CHILD_LOCK_DB_ENV) else {
        panic!("{CHILD_LOCK_DB_ENV} not set: this runs only as a child of another test");
    };
    let store = SqliteStore::open(Path::new(&path)).unwrap();
    let _lock = store.try_job_lock("purge").await.unwrap().unwrap();
    println!("{CHILD_HOLDS}");
    tokio::time::sleep(std::time::Duration::from_secs(120)).await;
}

/// A process that holds a job lock and is killed (no destructor runs) releases it: the kernel drops its
/// `flock` with the process, so the job is not stuck for good.
#[tokio::test]
async fn a_job_lock_is_taken_over_when_its_holder_process_dies() {
    use std::io::BufRead;
    let store = SqliteStore::open_temporary().unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_holds_a_job_lock",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_LOCK_DB_ENV, store.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let held = std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|line| line.contains(CHILD_HOLDS));
    assert!(held, "the child never took the lock");
    assert!(
        store.try_job_lock("purge").await.unwrap().is_none(),
        "the lock the child holds was granted here too"
    );

    child.kill().unwrap();
    child.wait().unwrap();
    let lock = metadata::testsuite::take_within_bound(&store, "purge").await;
    assert!(lock.is_held().await);
}
