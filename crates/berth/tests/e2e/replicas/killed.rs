//! A replica killed while skopeo pushes a large layer through the balancer: the client retries once and
//! the image pulls back byte for byte, over the filesystem and over S3.

use super::*;

/// The layer: large enough that the push is still streaming when the replica receiving it is found
/// and killed.
const BIG_LAYER: u64 = 256 * 1024 * 1024;

/// CPU time after which a replica counts as the one receiving the layer: hashing and storing 256 MiB
/// takes seconds of it, an idle replica a few milliseconds.
const RECEIVER_CPU: Duration = Duration::from_millis(250);

#[test]
fn a_replica_killed_mid_push_costs_skopeo_one_retry() {
    killed_mid_push(Storage::Filesystem);
}

#[test]
fn a_replica_killed_mid_push_costs_skopeo_one_retry_over_s3() {
    killed_mid_push(Storage::S3);
}

fn killed_mid_push(storage: Storage) {
    eprintln!("{}", version("skopeo"));
    let Some(mut d) = deploy(&test_name(), storage, &[NO_CACHE]) else {
        return;
    };
    let tools = Tools::new();
    let src = tools.scratch("src");
    let seed = crate::harness::rng::Rng::seed_from_env();
    eprintln!("layer seed: {seed} (BERTH_E2E_SEED={seed} replays it)");
    let big = write_big_image_layout(&src, "v1", BIG_LAYER, seed);
    let remote = format!(
        "docker://{}/{}:v1",
        d.balancer.host(),
        repo("replicas-kill")
    );
    let pids: Vec<u32> = d.servers.iter().map(Server::pid).collect();

    let (push, killed) = std::thread::scope(|scope| {
        let push = scope.spawn(|| {
            tools.try_skopeo(&[
                "copy",
                "--retry-times",
                "3",
                "--preserve-digests",
                "--dest-tls-verify=false",
                &format!("oci:{}:v1", src.display()),
                &remote,
            ])
        });
        let killed = find_the_receiver(&pids, &push);
        let push = push
            .join()
            .unwrap_or_else(|_| panic!("the skopeo thread panicked"));
        (push, killed)
    });
    let Some(victim) = killed else {
        panic!(
            "no replica was seen receiving the layer before skopeo ended: {}",
            push.describe()
        )
    };
    // The kill itself happened in `find_the_receiver` by pid; tell the harness the process is gone.
    d.servers[victim].kill9();
    assert!(
        push.success,
        "skopeo's retry did not succeed: {}",
        push.describe()
    );
    assert!(
        d.balancer
            .access_log()
            .lines()
            .any(|l| l.split(' ').nth(1).is_some_and(|s| s.contains("502"))),
        "nginx saw no replica fail: was it killed before the push reached it?\n{}",
        d.balancer.access_log()
    );

    // The image pulls back through the balancer, byte for byte.
    let out = tools.scratch("out");
    tools.skopeo(&[
        "copy",
        "--preserve-digests",
        "--src-tls-verify=false",
        &remote,
        &format!("oci:{}:v1", out.display()),
    ]);
    assert_eq!(layout_ref(&out, "v1")["digest"], big.manifest.digest);
    let pulled = out
        .join("blobs/sha256")
        .join(big.layer_digest.trim_start_matches("sha256:"));
    assert_eq!(
        file_digest(&pulled),
        (big.layer_digest.clone(), big.layer_size),
        "the layer pulled back differs from the one pushed"
    );
    let original = src
        .join("blobs/sha256")
        .join(big.layer_digest.trim_start_matches("sha256:"));
    assert!(same_bytes(&original, &pulled), "the layer files differ");
}

/// Watches how much CPU each replica uses; the first seen busy with the layer (hashing and storing
/// tens of MiB) is killed with SIGKILL at once. Returns its index, or `None` if the push ended first.
fn find_the_receiver(
    pids: &[u32],
    push: &std::thread::ScopedJoinHandle<'_, crate::harness::clients::Output>,
) -> Option<usize> {
    let cpu = |pid: u32| cpu_time_of(pid).unwrap_or_default();
    let start: Vec<Duration> = pids.iter().map(|p| cpu(*p)).collect();
    while !push.is_finished() {
        for (i, pid) in pids.iter().enumerate() {
            let used = cpu(*pid).saturating_sub(start[i]);
            // Far above an idle replica's health checks, well short of the whole layer.
            if used > RECEIVER_CPU {
                eprintln!("replica {i} (pid {pid}) used {used:?} of CPU on the push: SIGKILL");
                // SAFETY: kill(2) has no memory effects; the pid is a child of this process, not reaped.
                unsafe {
                    libc::kill(*pid as libc::pid_t, libc::SIGKILL);
                }
                return Some(i);
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

fn same_bytes(a: &Path, b: &Path) -> bool {
    use std::io::Read;
    let open = |p: &Path| std::fs::File::open(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let (mut fa, mut fb) = (open(a), open(b));
    let (mut ba, mut bb) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let na = read_full(&mut fa, &mut ba);
        let nb = read_full(&mut fb, &mut bb);
        if na != nb || ba[..na] != bb[..nb] {
            return false;
        }
        if na == 0 {
            return true;
        }
    }

    fn read_full(f: &mut std::fs::File, buf: &mut [u8]) -> usize {
        let mut n = 0;
        while n < buf.len() {
            match f.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) => panic!("reading a layer: {e}"),
            }
        }
        n
    }
}
