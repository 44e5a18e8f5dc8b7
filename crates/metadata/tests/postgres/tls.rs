//! sslmode over rustls against the test server's own CA: what libpq's modes promise (encryption, and
//! for verify-ca/verify-full the certificate checks), seen from the server's `pg_stat_ssl`.

use super::*;

/// The directory with the test server's CA (`ca.crt`) and an unrelated one (`other-ca.crt`).
fn tls_dir() -> Option<std::path::PathBuf> {
    match std::env::var_os(TLS_ENV) {
        Some(dir) if !dir.is_empty() => Some(dir.into()),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "{TLS_ENV} is not set under CI: the TLS tests must run there (scripts/test sets it)"
            );
            eprintln!("SKIPPED: {TLS_ENV} is not set, so the server's CA is unknown");
            None
        }
    }
}

/// Whether each connection of `dbname` (other than the caller's) is encrypted.
async fn encrypted(admin: &Client, dbname: &str) -> Vec<bool> {
    admin
        .query(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
             WHERE a.datname = $1 AND a.pid <> pg_backend_pid()",
            &[&dbname],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// `sslmode` as libpq means it, against a server whose certificate names `localhost` only and is signed
/// by the run's CA: `require` encrypts without checking, `verify-ca` checks the chain but not the name,
/// `verify-full` both; a failed check is an error at once (not retried), never a plain connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmodes_encrypt_and_check_as_libpq_does() {
    let Some(server) = server() else { return };
    let Some(tls) = tls_dir() else { return };
    let (ca, other_ca) = (tls.join("ca.crt"), tls.join("other-ca.crt"));
    let admin = admin(&server).await;
    /// `(sslmode, host, sslrootcert, encrypted or the error's words)`.
    type Case<'a> = (
        SslMode,
        &'static str,
        Option<&'a std::path::Path>,
        Result<bool, &'static str>,
    );
    let cases: [Case<'_>; 8] = [
        (SslMode::Disable, "127.0.0.1", None, Ok(false)),
        (SslMode::Prefer, "127.0.0.1", None, Ok(true)),
        (SslMode::Allow, "127.0.0.1", None, Ok(true)),
        (SslMode::Require, "127.0.0.1", None, Ok(true)),
        (SslMode::VerifyCa, "127.0.0.1", Some(&ca), Ok(true)),
        (SslMode::VerifyFull, "localhost", Some(&ca), Ok(true)),
        (
            SslMode::VerifyFull,
            "127.0.0.1",
            Some(&ca),
            Err("not valid for name"),
        ),
        (
            SslMode::VerifyCa,
            "127.0.0.1",
            Some(&other_ca),
            Err("UnknownIssuer"),
        ),
    ];
    for (mode, host, root, want) in cases {
        let mut settings = fresh_database(&server).await;
        settings.host = host.to_string();
        settings.sslmode = mode;
        settings.tls.root_cert = root.map(std::path::Path::to_path_buf);
        let started = Instant::now();
        let connected = PostgresStore::connect(&settings).await;
        match (want, connected) {
            (Ok(ssl), Ok(store)) => {
                store.repo_exists(&repo("app")).await.unwrap();
                let conns = encrypted(&admin, &settings.dbname).await;
                assert!(!conns.is_empty(), "{mode:?}: no connection");
                assert!(
                    conns.iter().all(|&c| c == ssl),
                    "{mode:?} to {host}: encrypted {conns:?}, want {ssl}"
                );
            }
            (Err(why), Err(Error::Backend(e))) => {
                let message = e.to_string();
                assert!(message.contains(why), "{mode:?} to {host}: {message}");
                assert!(
                    started.elapsed() < Duration::from_millis(500),
                    "{mode:?}: a certificate failure was retried ({:?})",
                    started.elapsed()
                );
            }
            (want, got) => panic!(
                "{mode:?} to {host} with {root:?}: want {want:?}, got {:?}",
                got.map(|_| "a store")
            ),
        }
    }
}
