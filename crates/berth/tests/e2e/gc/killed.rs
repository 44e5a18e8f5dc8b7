//! kill -9 in the middle of a sweep, then the next one: hundreds of blobs of deleted images are to go
//! while two tagged images share a layer with them. `berth garbage-collect --grace 0` runs beside the
//! serving registry and is killed with SIGKILL at a moment where it has deleted some blobs but not
//! all, and holds a claim whose bytes are still on disk (the test stops it with SIGSTOP, looks at the
//! disk and at the claims in PostgreSQL, and goes on until it finds such a moment). After the kill
//! every tagged image pulls back whole; the next run says it finished the claims the killed one left,
//! and leaves on disk exactly the blobs the tagged images reference, with no claim behind.

use std::collections::BTreeSet;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use super::gc;
use super::stored::Stored;
use crate::harness::images::{Image, host_arch, image};
use crate::harness::postgres::Database;
use crate::harness::rng::Rng;
use crate::harness::server::die_with_parent;
use crate::harness::{Api, Metadata, Options, Server, push_image, repo};

/// Deleted images, and the layers of each: enough blobs that a sweep takes a while to delete them.
const DOOMED_IMAGES: usize = 4;
const LAYERS: usize = 80;
/// The most moments the test looks at before it gives up finding one to kill at.
const PROBES: usize = 10_000;

#[test]
fn a_sweep_killed_midway_is_finished_by_the_next() {
    let Some(server) = Server::try_start_with(Options {
        metadata: Metadata::Postgres,
        ..Options::default()
    }) else {
        return;
    };
    let db = server.database().expect("a server over PostgreSQL");
    let stored = Stored::Dir(server.root().to_path_buf());
    let api = server.api();
    let seed = Rng::seed_from_env();
    eprintln!("seed {seed} (BERTH_E2E_SEED={seed} replays it)");
    let mut rng = Rng::new(seed);

    // Every image has the shared layer; the doomed ones have many small layers of their own.
    let shared = rng.bytes(4096);
    let make = |label: &str, own: usize, rng: &mut Rng| {
        let files: Vec<Vec<u8>> = (0..own)
            .map(|_| {
                let len = rng.range(256, 2048) as usize;
                rng.bytes(len)
            })
            .collect();
        let mut layers: Vec<Vec<(&str, &[u8])>> = vec![vec![("shared.bin", &shared[..])]];
        layers.extend(files.iter().map(|f| vec![("own.bin", &f[..])]));
        let layers: Vec<&[(&str, &[u8])]> = layers.iter().map(Vec::as_slice).collect();
        image(host_arch(), label, &layers)
    };
    let kept: Vec<(String, Image)> = (0..2)
        .map(|i| {
            (
                repo(&format!("gc-killed-kept-{i}")),
                make(&format!("kept {i}"), 3, &mut rng),
            )
        })
        .collect();
    let doomed: Vec<(String, Image)> = (0..DOOMED_IMAGES)
        .map(|i| {
            (
                repo(&format!("gc-killed-doomed-{i}")),
                make(&format!("doomed {i} {seed}"), LAYERS, &mut rng),
            )
        })
        .collect();
    let pushers: Vec<_> = kept
        .iter()
        .chain(&doomed)
        .cloned()
        .map(|(r, img)| {
            let api = api.clone();
            std::thread::spawn(move || {
                let resp = push_image(&api, &r, "v1", &img);
                assert_eq!(resp.status, 201, "{r}: {}", resp.describe());
            })
        })
        .collect();
    for p in pushers {
        assert!(p.join().is_ok(), "a push failed");
    }
    for (r, img) in &doomed {
        let resp = api
            .delete(&format!("/v2/{r}/manifests/{}", img.manifest.digest))
            .unwrap_or_else(|e| panic!("DELETE: {e}"));
        assert_eq!(resp.status, 202, "{}", resp.describe());
    }
    let keep: BTreeSet<String> = kept
        .iter()
        .flat_map(|(_, img)| img.blobs().into_iter().map(|b| b.digest.clone()))
        .collect();
    let doomed_blobs: BTreeSet<String> = doomed
        .iter()
        .flat_map(|(_, img)| img.blobs().into_iter().map(|b| b.digest.clone()))
        .filter(|d| !keep.contains(d))
        .collect();
    assert_eq!(doomed_blobs.len(), DOOMED_IMAGES * (LAYERS + 1));

    let mut cmd = server.berth(&["garbage-collect", "--grace", "0"]);
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    // A failing test leaves no sweep behind.
    die_with_parent(&mut cmd);
    let mut sweep = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run berth garbage-collect: {e}"));
    let (claimed, gone) = kill_midway(&mut sweep, db, &stored, &doomed_blobs, &mut rng);
    eprintln!(
        "killed the sweep with {gone} of {} blobs deleted and {claimed} claimed, its bytes still on disk",
        doomed_blobs.len()
    );

    // Everything tagged is whole, and still served.
    check_whole(&api, &kept);

    let next = gc(&server, &["--grace", "0"]);
    let finished = finished_claims(&next);
    assert!(
        finished >= 1,
        "the next run did not finish the killed one's claims: {next}"
    );
    let left = stored.blobs();
    assert!(
        !left.contains_key(&claimed),
        "the claimed {claimed} is still on disk: {next}"
    );
    let on_disk: BTreeSet<String> = left.into_keys().collect();
    assert_eq!(on_disk, keep, "what is on disk after the next run: {next}");
    assert_eq!(claims(db), Vec::<String>::new(), "claims are left: {next}");
    check_whole(&api, &kept);

    let last = gc(&server, &["--grace", "0"]);
    assert!(last.contains("freed 0 blobs, 0 bytes"), "{last}");
    assert_eq!(finished_claims(&last), 0, "{last}");
}

/// Stops the sweep again and again (SIGSTOP) until it has deleted some of `doomed` but not all (at
/// least a number drawn at random), and holds a claim whose bytes are still on disk (so its release
/// cannot be on its way to the database); then kills it with SIGKILL. Returns that claim and how many
/// blobs were gone.
fn kill_midway(
    sweep: &mut Child,
    db: &Database,
    stored: &Stored,
    doomed: &BTreeSet<String>,
    rng: &mut Rng,
) -> (String, usize) {
    let target = rng.range(1, doomed.len() as u64 * 3 / 4) as usize;
    for _ in 0..PROBES {
        std::thread::sleep(Duration::from_micros(rng.range(200, 3000)));
        signal(sweep, libc::SIGSTOP);
        wait_stopped(sweep);
        let on_disk = stored.blobs();
        let gone = doomed.iter().filter(|d| !on_disk.contains_key(*d)).count();
        if gone >= target && gone < doomed.len() {
            let held = claims(db).into_iter().find(|d| on_disk.contains_key(d));
            if let Some(claimed) = held {
                let _ = sweep.kill();
                let _ = sweep.wait();
                return (claimed, gone);
            }
        }
        signal(sweep, libc::SIGCONT);
    }
    let _ = sweep.kill();
    panic!("no moment to kill the sweep at in {PROBES} looks");
}

/// The blobs a sweep claimed and did not release.
fn claims(db: &Database) -> Vec<String> {
    db.query("SELECT digest FROM blobs WHERE deleting_since IS NOT NULL ORDER BY digest")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// N of `(and finished N claims a stopped run left)` in a summary line; 0 without it.
fn finished_claims(out: &str) -> usize {
    out.split("(and finished ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .map_or(0, |n| {
            n.parse().unwrap_or_else(|e| panic!("{n}: {e} in {out}"))
        })
}

fn check_whole(api: &Api, images: &[(String, Image)]) {
    for (r, img) in images {
        assert_eq!(api.manifest_ok(r, "v1"), img.manifest.bytes, "{r}");
        for b in img.blobs() {
            let got = api.get_ok(&format!("/v2/{r}/blobs/{}", b.digest));
            assert!(
                got == b.bytes,
                "{r}: {} came back other than pushed",
                b.digest
            );
        }
    }
}

/// Waits until every thread of the process is stopped, so neither the disk nor its connections move.
/// Panics if it ended instead: the sweep was over before the test found a moment to kill it.
fn wait_stopped(child: &mut Child) {
    let tasks = format!("/proc/{}/task", child.id());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the sweep ended ({status}) before the test found a moment to kill it");
        }
        let all_stopped = std::fs::read_dir(&tasks)
            .map(|entries| {
                entries.flatten().all(|t| {
                    let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
                    // The state follows the command name, which is in parentheses.
                    stat.rsplit_once(") ")
                        .is_some_and(|(_, rest)| rest.starts_with('T') || rest.starts_with('t'))
                })
            })
            .unwrap_or(false);
        if all_stopped {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "berth garbage-collect did not stop"
        );
        std::thread::sleep(Duration::from_micros(200));
    }
}

fn signal(child: &Child, sig: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(child.id()) else {
        return;
    };
    // SAFETY: kill(2) has no memory effects; the pid is our own child, not yet reaped (so not reused).
    unsafe {
        libc::kill(pid, sig);
    }
}
