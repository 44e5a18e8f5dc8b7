//! A fresh PostgreSQL database per server under test, on the server `BERTH_TEST_POSTGRES_URL` names
//! (`scripts/test` starts a throwaway one). The database is created and dropped with `psql`, which comes
//! with Debian's `postgresql` package, so the harness stays free of a database client of its own.
//!
//! Without the URL, a test over PostgreSQL prints that it skipped; under CI (`CI` set) it fails instead.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

const URL_ENV: &str = "BERTH_TEST_POSTGRES_URL";

/// One database of the test server, dropped (with its connections) when this is dropped.
#[derive(Debug)]
pub struct Database {
    url: String,
    host: String,
    port: String,
    user: String,
    password: String,
    /// The new database's name.
    pub name: String,
}

impl Database {
    /// A new, empty database, or `None` (after saying so) when no server is configured.
    pub fn create(test: &str) -> Option<Database> {
        let url = shared_server_url(test)?;
        Some(Database::create_on(&url))
    }

    /// A new, empty database on the server `url` names (`postgres://user:password@host:port/db`).
    pub fn create_on(url: &str) -> Database {
        let (user, password, host, port) = parse_url(url).unwrap_or_else(|| {
            panic!("{url:?} is not of the form postgres://user:password@host:port/db")
        });
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "berth_e2e_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let db = Database {
            url: url.to_string(),
            host,
            port,
            user,
            password,
            name,
        };
        db.psql(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", db.name));
        db.psql(&format!("CREATE DATABASE {}", db.name));
        db
    }
}

/// The URL of the shared test server, or `None` (after saying that `test` skipped) when there is none.
fn shared_server_url(test: &str) -> Option<String> {
    match std::env::var(URL_ENV) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "{URL_ENV} is not set under CI: the tests over PostgreSQL must run there"
            );
            eprintln!(
                "SKIPPED {test} over PostgreSQL: {URL_ENV} is not set (scripts/test starts a server)"
            );
            None
        }
    }
}

impl Database {
    /// registry:2-style overrides of the `database` section (GitLab's keys) that point berth at it.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("REGISTRY_DATABASE_ENABLED", "true".to_string()),
            ("REGISTRY_DATABASE_HOST", self.host.clone()),
            ("REGISTRY_DATABASE_PORT", self.port.clone()),
            ("REGISTRY_DATABASE_USER", self.user.clone()),
            ("REGISTRY_DATABASE_PASSWORD", self.password.clone()),
            ("REGISTRY_DATABASE_DBNAME", self.name.clone()),
            ("REGISTRY_DATABASE_SSLMODE", "disable".to_string()),
        ]
    }

    /// Runs one statement in this database and returns what `psql` printed (unaligned, tuples only).
    pub fn query(&self, sql: &str) -> String {
        let url = match self.url.rsplit_once('/') {
            Some((server, _)) => format!("{server}/{}", self.name),
            None => panic!("{URL_ENV} has no database part"),
        };
        run_psql(&url, sql)
    }

    fn psql(&self, sql: &str) -> String {
        run_psql(&self.url, sql)
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        // Best effort: the throwaway server is removed after the run anyway.
        let _ = Command::new("psql")
            .args(["-X", "-q", "-d", &self.url, "-c"])
            .arg(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .output();
    }
}

fn run_psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ])
        .output()
        .unwrap_or_else(|e| panic!("cannot run psql (Debian's postgresql-client): {e}"));
    assert!(
        out.status.success(),
        "psql {sql:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `(user, password, host, port)` of `postgres://user:password@host:port/db`.
fn parse_url(url: &str) -> Option<(String, String, String, String)> {
    let rest = url
        .strip_prefix("postgres://")
        .or_else(|| url.strip_prefix("postgresql://"))?;
    let (auth, rest) = rest.split_once('@')?;
    let (user, password) = auth.split_once(':').unwrap_or((auth, ""));
    let (hostport, _db) = rest.split_once('/')?;
    let (host, port) = hostport.rsplit_once(':').unwrap_or((hostport, "5432"));
    Some((
        user.to_string(),
        password.to_string(),
        host.to_string(),
        port.to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse() {
        assert_eq!(
            parse_url("postgres://berth:pw@127.0.0.1:5433/postgres"),
            Some((
                "berth".into(),
                "pw".into(),
                "127.0.0.1".into(),
                "5433".into()
            ))
        );
        assert_eq!(
            parse_url("postgresql://u@db/x"),
            Some(("u".into(), "".into(), "db".into(), "5432".into()))
        );
        assert_eq!(parse_url("mysql://u@db/x"), None);
    }
}
