//! The crash test: concurrent pushers (monolithic, chunked and single-POST uploads mixed, multi-MiB random
//! blobs) while berth is killed with SIGKILL at a random moment, several times over the same data directory.
//! After each restart: every image whose manifest PUT was acknowledged pulls back byte for byte; whatever
//! else any pusher attempted is either absent or exact; interrupted uploads resume or are cleanly unknown.
//! Run over every pair of blob storage (filesystem, S3) and metadata engine (SQLite, PostgreSQL).
//!
//! The seed is printed; `BERTH_E2E_SEED=<seed>` replays the same sizes, shapes and kill moments.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::http::{OCI_CONFIG, OCI_MANIFEST, PushError, Upload, range_last};
use crate::harness::rng::Rng;
use crate::harness::{Api, BlobPush, Metadata, Options, Server, Storage, sha256};

const PUSHERS: usize = 8;
const ROUNDS: usize = 4;
/// No new round starts after this; the whole test stays well under a minute on two cores.
const BUDGET: Duration = Duration::from_secs(40);
/// When to kill, in milliseconds after the pushers start, one window per round.
const KILL_WINDOWS: [(u64, u64); 4] = [(100, 500), (500, 1000), (1000, 1600), (1600, 2400)];
const LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

type Bytes = Arc<Vec<u8>>;

/// Something a pusher sent (or began to send): where, under which digest, and the exact bytes.
#[derive(Clone)]
struct Attempt {
    repo: String,
    digest: String,
    bytes: Bytes,
    /// For a manifest, the tag it was pushed under (a blob has none).
    tag: Option<String>,
}

/// An image whose manifest PUT answered 201: it must survive every later crash.
#[derive(Clone)]
struct Acked {
    repo: String,
    tag: String,
    digest: String,
    manifest: Bytes,
    blobs: Vec<(String, Bytes)>,
}

/// An image whose push did not complete, to be pushed again after the restart.
struct Unfinished {
    repo: String,
    tag: String,
    manifest: Bytes,
    blobs: Vec<Bytes>,
}

/// An upload session cut by the kill, with the offset the server last acknowledged.
struct Interrupted {
    repo: String,
    upload: Upload,
    data: Bytes,
}

#[derive(Default)]
struct Ledger {
    attempted: Vec<Attempt>,
    acked: Vec<Acked>,
    unfinished: Vec<Unfinished>,
    interrupted: Vec<Interrupted>,
    /// Answers other than success while the server was alive: always a bug.
    refused: Vec<String>,
    /// Manifest PUTs acknowledged before a kill (not counting the re-pushes after restarts).
    acked_live: usize,
}

type Shared = Arc<Mutex<Ledger>>;

fn with<T>(ledger: &Shared, f: impl FnOnce(&mut Ledger) -> T) -> T {
    match ledger.lock() {
        Ok(mut l) => f(&mut l),
        Err(poisoned) => f(&mut poisoned.into_inner()),
    }
}

#[test]
fn kill9_during_concurrent_pushes_loses_nothing_acknowledged() {
    kill9_during_concurrent_pushes(Storage::Filesystem, Metadata::Sqlite);
}

/// Over S3: an upload's parts and a commit's copy are objects, written by requests a kill cuts anywhere.
#[test]
fn kill9_during_concurrent_pushes_loses_nothing_acknowledged_over_s3() {
    kill9_during_concurrent_pushes(Storage::S3, Metadata::Sqlite);
}

#[test]
fn kill9_during_concurrent_pushes_loses_nothing_acknowledged_over_s3_and_postgres() {
    kill9_during_concurrent_pushes(Storage::S3, Metadata::Postgres);
}

/// The same over PostgreSQL: what berth acknowledged is committed on the server, whatever became of the
/// process, and a restarted berth finds it there.
#[test]
fn kill9_during_concurrent_pushes_loses_nothing_acknowledged_over_postgres() {
    kill9_during_concurrent_pushes(Storage::Filesystem, Metadata::Postgres);
}

fn kill9_during_concurrent_pushes(storage: Storage, metadata: Metadata) {
    let Some(mut server) = Server::try_start_with(Options {
        metadata,
        storage,
        ..Options::default()
    }) else {
        return;
    };
    let seed = Rng::seed_from_env();
    eprintln!("crash test seed: {seed} (BERTH_E2E_SEED={seed} replays it)");
    let mut rng = Rng::new(seed);
    let ledger: Shared = Arc::default();
    let started = Instant::now();
    let mut rounds = 0;
    let mut verified_from = 0;

    while rounds < ROUNDS && (rounds < 3 || started.elapsed() < BUDGET) {
        let api = server.api();
        // One upload is certainly in flight at the kill: started, one chunk acknowledged, then left open.
        hold_an_upload(&api, &ledger, rounds, rng.next_u64());

        let stop = Arc::new(AtomicBool::new(false));
        let pushers: Vec<_> = (0..PUSHERS)
            .map(|p| {
                let (api, ledger, stop) = (api.clone(), Arc::clone(&ledger), Arc::clone(&stop));
                let seed = rng.next_u64();
                std::thread::spawn(move || pusher(&api, &ledger, &stop, rounds, p, seed))
            })
            .collect();
        // Each round kills in a later window: early (first blobs in flight) to late (many images done).
        let (lo, hi) = KILL_WINDOWS[rounds % KILL_WINDOWS.len()];
        let moment = Duration::from_millis(rng.range(lo, hi));
        std::thread::sleep(moment);
        server.kill9();
        stop.store(true, Ordering::SeqCst);
        for p in pushers {
            // A pusher that panicked is a bug in this test; its message is already on stderr.
            assert!(p.join().is_ok(), "a pusher thread panicked (seed {seed})");
        }

        server.start_again();
        let api = server.api();
        let refused = with(&ledger, |l| std::mem::take(&mut l.refused));
        assert!(
            refused.is_empty(),
            "berth refused pushes while alive (seed {seed}):\n{}",
            refused.join("\n")
        );
        verify_acked(&api, &ledger, seed);
        let end = verify_attempted(&api, &ledger, verified_from, seed);
        verified_from = end;
        let (resumed, restarted) = verify_interrupted(&api, &ledger, seed);
        let repushed = push_unfinished(&api, &ledger, seed);
        let (acked, live) = with(&ledger, |l| (l.acked.len(), l.acked_live));
        eprintln!(
            "round {rounds}: killed after {moment:?}; {acked} images acknowledged so far ({live} before a kill); \
             {resumed} uploads resumed, {restarted} restarted; {repushed} unfinished images pushed again"
        );
        rounds += 1;
    }

    // Everything acknowledged over all rounds, one last time after the last crash and the re-pushes.
    verify_acked(&server.api(), &ledger, seed);
    let acked = with(&ledger, |l| l.acked_live);
    assert!(
        acked > 0,
        "no push was ever acknowledged: the test proved nothing (seed {seed})"
    );
    assert!(rounds >= 3, "only {rounds} rounds within the budget");
    eprintln!("crash test: {rounds} rounds in {:?}", started.elapsed());
}

/// Starts an upload, sends one chunk, and records it as interrupted (the kill will come before its end).
fn hold_an_upload(api: &Api, ledger: &Shared, round: usize, seed: u64) {
    let repo = format!("crash/held-{round}");
    let data: Bytes = Arc::new(Rng::new(seed).bytes(2 * 1024 * 1024));
    let mut upload = api
        .start_upload(&repo)
        .unwrap_or_else(|e| panic!("start held upload: {e}"));
    api.patch(&mut upload, &data[..1024 * 1024])
        .unwrap_or_else(|e| panic!("held upload chunk: {e}"));
    with(ledger, |l| {
        l.attempted.push(Attempt {
            repo: repo.clone(),
            digest: sha256(&data),
            bytes: Arc::clone(&data),
            tag: None,
        });
        l.interrupted.push(Interrupted { repo, upload, data })
    });
}

/// Pushes images until the server dies (or `stop`), recording everything in the ledger.
fn pusher(api: &Api, ledger: &Shared, stop: &AtomicBool, round: usize, p: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    let repo = format!("crash/pusher-{p}");
    for n in 0.. {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        // A small layer and a multi-MiB one: images complete often enough to be acknowledged before the
        // kill, and big blobs are in flight when it comes.
        let layers: Vec<Bytes> = [(16 * 1024, 512 * 1024), (1024 * 1024, 3 * 1024 * 1024)]
            .iter()
            .map(|&(lo, hi)| {
                let len = rng.range(lo, hi) as usize;
                Arc::new(rng.bytes(len))
            })
            .collect();
        let config: Bytes = Arc::new(
            serde_json::to_vec(&serde_json::json!({
                "architecture": "amd64", "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| sha256(l)).collect::<Vec<_>>()},
                "berth.test": format!("round {round} pusher {p} image {n} seed {seed}"),
            }))
            .unwrap_or_default(),
        );
        let descriptor = |media_type: &str, b: &Bytes| serde_json::json!({"mediaType": media_type, "digest": sha256(b), "size": b.len()});
        let manifest: Bytes = Arc::new(
            serde_json::to_vec(&serde_json::json!({
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": descriptor(OCI_CONFIG, &config),
                "layers": layers.iter().map(|l| descriptor(LAYER, l)).collect::<Vec<_>>(),
            }))
            .unwrap_or_default(),
        );
        let tag = format!("r{round}-p{p}-{n}");
        let blobs: Vec<Bytes> = std::iter::once(Arc::clone(&config)).chain(layers).collect();
        with(ledger, |l| {
            for b in &blobs {
                l.attempted.push(Attempt {
                    repo: repo.clone(),
                    digest: sha256(b),
                    bytes: Arc::clone(b),
                    tag: None,
                });
            }
            l.attempted.push(Attempt {
                repo: repo.clone(),
                digest: sha256(&manifest),
                bytes: Arc::clone(&manifest),
                tag: Some(tag.clone()),
            });
        });
        let unfinished = || Unfinished {
            repo: repo.clone(),
            tag: tag.clone(),
            manifest: Arc::clone(&manifest),
            blobs: blobs.clone(),
        };

        for (k, blob) in blobs.iter().enumerate() {
            let result = match (p + n + k) % 3 {
                0 => api.push_blob(&repo, blob, BlobPush::Monolithic).map(|_| ()),
                1 => api.push_blob(&repo, blob, BlobPush::SinglePost).map(|_| ()),
                _ => push_chunked(
                    api,
                    ledger,
                    &repo,
                    blob,
                    rng.range(128 * 1024, 1024 * 1024) as usize,
                ),
            };
            if let Err(e) = result {
                note_failure(ledger, stop, &format!("{repo} blob {k} of {tag}"), e);
                with(ledger, |l| l.unfinished.push(unfinished()));
                return;
            }
        }
        match api.put_manifest(&repo, &tag, OCI_MANIFEST, &manifest) {
            Ok(resp) => {
                let digest = sha256(&manifest);
                if resp.header("Docker-Content-Digest") != Some(digest.as_str()) {
                    with(ledger, |l| {
                        l.refused.push(format!(
                            "PUT {repo}:{tag} answered digest {:?}",
                            resp.header("Docker-Content-Digest")
                        ))
                    });
                }
                with(ledger, |l| {
                    l.acked_live += 1;
                    l.acked.push(Acked {
                        repo: repo.clone(),
                        tag: tag.clone(),
                        digest,
                        manifest: Arc::clone(&manifest),
                        blobs: blobs.iter().map(|b| (sha256(b), Arc::clone(b))).collect(),
                    })
                });
            }
            Err(e) => {
                note_failure(ledger, stop, &format!("manifest {repo}:{tag}"), e);
                with(ledger, |l| l.unfinished.push(unfinished()));
                return;
            }
        }
    }
}

/// A chunked push that records its session as interrupted when the connection fails midway.
fn push_chunked(
    api: &Api,
    ledger: &Shared,
    repo: &str,
    data: &Bytes,
    chunk: usize,
) -> Result<(), PushError> {
    let mut upload = api.start_upload(repo)?;
    let interrupted = |upload: &Upload| {
        with(ledger, |l| {
            l.interrupted.push(Interrupted {
                repo: repo.to_owned(),
                upload: upload.clone(),
                data: Arc::clone(data),
            })
        })
    };
    for piece in data.chunks(chunk) {
        if let Err(e) = api.patch(&mut upload, piece) {
            if matches!(e, PushError::Transport(_)) {
                interrupted(&upload);
            }
            return Err(e);
        }
    }
    if let Err(e) = api.finish(&upload, &sha256(data), &[]) {
        if matches!(e, PushError::Transport(_)) {
            interrupted(&upload);
        }
        return Err(e);
    }
    Ok(())
}

/// Transport errors are what a kill looks like; an answer other than success is a bug, unless the kill
/// already happened (then it cannot be an answer of the live server, but keep it honest and report it).
fn note_failure(ledger: &Shared, stop: &AtomicBool, what: &str, e: PushError) {
    if let PushError::Refused { .. } = e {
        let when = if stop.load(Ordering::SeqCst) {
            "around the kill"
        } else {
            "while alive"
        };
        with(ledger, |l| l.refused.push(format!("{what} {when}: {e}")));
    }
}

/// Every acknowledged image, by tag and by digest, with every blob re-hashed.
fn verify_acked(api: &Api, ledger: &Shared, seed: u64) {
    let acked: Vec<Acked> = with(ledger, |l| l.acked.clone());
    for Acked {
        repo,
        tag,
        digest,
        manifest,
        blobs,
    } in acked
    {
        for reference in [tag.as_str(), digest.as_str()] {
            let r = get(
                api,
                &format!("/v2/{repo}/manifests/{reference}"),
                &[("Accept", OCI_MANIFEST)],
            );
            assert_eq!(
                r.status,
                200,
                "acknowledged manifest {repo}:{reference} lost (seed {seed}): {}",
                r.describe()
            );
            assert!(
                r.body == *manifest,
                "acknowledged manifest {repo}:{reference} changed (seed {seed})"
            );
        }
        for (digest, bytes) in blobs {
            let r = get(api, &format!("/v2/{repo}/blobs/{digest}"), &[]);
            assert_eq!(
                r.status,
                200,
                "blob {digest} of acknowledged {repo}:{tag} lost (seed {seed}): {}",
                r.describe()
            );
            assert_eq!(
                sha256(&r.body),
                digest,
                "blob {digest} of {repo}:{tag} corrupt (seed {seed})"
            );
            assert!(r.body == *bytes);
        }
    }
}

/// Everything attempted since `from` is either unknown or exact, by digest and (manifests) by tag: a tag
/// names the manifest pushed under it or nothing. Returns the new end of the list.
fn verify_attempted(api: &Api, ledger: &Shared, from: usize, seed: u64) -> usize {
    let attempts: Vec<Attempt> = with(ledger, |l| l.attempted[from..].to_vec());
    for Attempt {
        repo,
        digest,
        bytes,
        tag,
    } in &attempts
    {
        let (kind, unknown) = match tag {
            Some(_) => ("manifests", "MANIFEST_UNKNOWN"),
            None => ("blobs", "BLOB_UNKNOWN"),
        };
        for reference in std::iter::once(digest).chain(tag) {
            let r = get(
                api,
                &format!("/v2/{repo}/{kind}/{reference}"),
                &[("Accept", OCI_MANIFEST)],
            );
            match r.status {
                200 => {
                    assert_eq!(
                        sha256(&r.body),
                        *digest,
                        "visible {kind} {reference} in {repo} is corrupt (seed {seed})"
                    );
                    assert!(r.body == **bytes);
                }
                404 => {
                    let codes = r.error_codes();
                    assert!(
                        codes.iter().any(|c| c == unknown || c == "NAME_UNKNOWN"),
                        "404 for {kind} {reference} in {repo} with codes {codes:?} (seed {seed})"
                    );
                }
                _ => panic!(
                    "GET {kind} {reference} in {repo} after a crash: {} (seed {seed})",
                    r.describe()
                ),
            }
        }
    }
    from + attempts.len()
}

/// Each interrupted upload either resumes where the server says it stands and completes with the right
/// digest, or is unknown (BLOB_UPLOAD_UNKNOWN) and is pushed again from scratch. Returns the counts.
fn verify_interrupted(api: &Api, ledger: &Shared, seed: u64) -> (usize, usize) {
    let interrupted = with(ledger, |l| std::mem::take(&mut l.interrupted));
    let (mut resumed, mut restarted) = (0, 0);
    for Interrupted { repo, upload, data } in interrupted {
        let digest = sha256(&data);
        let status = get(api, &upload.location, &[]);
        match status.status {
            204 => {
                let last = range_last(&status).unwrap_or_else(|| {
                    panic!(
                        "upload status without a Range: {} (seed {seed})",
                        status.describe()
                    )
                });
                // `0-0` means nothing or one byte; resume at 0 and let a 416 say which.
                let offset = if last == 0 { 0 } else { last + 1 };
                resume(api, &repo, upload, offset, &data, seed);
                resumed += 1;
            }
            404 => {
                assert_eq!(
                    status.error_codes(),
                    ["BLOB_UPLOAD_UNKNOWN"],
                    "(seed {seed})"
                );
                api.push_blob(&repo, &data, BlobPush::Chunked(700_000))
                    .unwrap_or_else(|e| {
                        panic!("pushing an interrupted blob again: {e} (seed {seed})")
                    });
                restarted += 1;
            }
            _ => panic!(
                "status of an interrupted upload: {} (seed {seed})",
                status.describe()
            ),
        }
        let r = get(api, &format!("/v2/{repo}/blobs/{digest}"), &[]);
        assert_eq!(
            r.status,
            200,
            "blob {digest} after its upload completed: {}",
            r.describe()
        );
        assert!(
            r.body == *data,
            "blob {digest} completed after a crash holds other bytes (seed {seed})"
        );
    }
    (resumed, restarted)
}

/// Continues an upload from the server's offset; a 416 (the `0-0` case) gives the true offset once.
fn resume(api: &Api, repo: &str, mut upload: Upload, offset: u64, data: &[u8], seed: u64) {
    assert!(
        offset as usize <= data.len(),
        "upload of {repo} holds {offset} bytes of {} (seed {seed})",
        data.len()
    );
    upload.offset = offset;
    let rest = &data[offset as usize..];
    if !rest.is_empty() {
        match api.patch(&mut upload, rest) {
            Ok(()) => {}
            Err(PushError::Refused { resp, .. }) if resp.status == 416 && offset == 0 => {
                let last =
                    range_last(&resp).unwrap_or_else(|| panic!("416 without Range (seed {seed})"));
                upload.offset = last + 1;
                let rest = &data[(last + 1) as usize..];
                api.patch(&mut upload, rest)
                    .unwrap_or_else(|e| panic!("resumed PATCH: {e} (seed {seed})"));
            }
            Err(e) => panic!("resumed PATCH of {repo} at {offset}: {e} (seed {seed})"),
        }
    }
    api.finish(&upload, &sha256(data), &[])
        .unwrap_or_else(|e| panic!("closing a resumed upload of {repo}: {e} (seed {seed})"));
}

/// Pushes again every image whose push the kill cut, whatever debris the crash left; they join the acked.
fn push_unfinished(api: &Api, ledger: &Shared, seed: u64) -> usize {
    let unfinished = with(ledger, |l| std::mem::take(&mut l.unfinished));
    let count = unfinished.len();
    for u in unfinished {
        for blob in &u.blobs {
            api.push_blob(&u.repo, blob, BlobPush::Monolithic)
                .unwrap_or_else(|e| {
                    panic!("pushing {}:{} again: {e} (seed {seed})", u.repo, u.tag)
                });
        }
        api.put_manifest(&u.repo, &u.tag, OCI_MANIFEST, &u.manifest)
            .unwrap_or_else(|e| panic!("manifest {}:{} again: {e} (seed {seed})", u.repo, u.tag));
        with(ledger, |l| {
            l.acked.push(Acked {
                repo: u.repo.clone(),
                tag: u.tag.clone(),
                digest: sha256(&u.manifest),
                manifest: Arc::clone(&u.manifest),
                blobs: u.blobs.iter().map(|b| (sha256(b), Arc::clone(b))).collect(),
            })
        });
    }
    count
}

fn get(api: &Api, path: &str, headers: &[(&str, &str)]) -> crate::harness::http::Resp {
    api.get(path, headers)
        .unwrap_or_else(|e| panic!("GET {path} after restart failed: {e}"))
}
