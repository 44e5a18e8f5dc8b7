//! The `database` section, spelled as GitLab's container registry spells it: PostgreSQL for the metadata
//! (`enabled`, `host`, `port`, `user`, `password`, `dbname`, `sslmode`, `sslcert`, `sslkey`,
//! `sslrootcert`, `connecttimeout`, `pool.maxopen`/`maxidle`/`maxlifetime`/`maxidletime`). Without it, or
//! with `enabled: false`, the metadata lives in SQLite beside the blobs; with it, in PostgreSQL
//! ([`DatabaseConfig::postgres_settings`] hands the store its settings).

use std::path::PathBuf;
use std::time::Duration;

use super::read::{Section, Setting, non_empty, parse_or};
use super::values::{format_duration, parse_bool, parse_choice, parse_duration, parse_int};
use super::yaml::{NOTHING, Printed, flag, number, text};
use super::{ConfigError, Secret, mapping, masked};

/// libpq's `sslmode` values.
pub const SSL_MODES: &[&str] = &[
    "disable",
    "allow",
    "prefer",
    "require",
    "verify-ca",
    "verify-full",
];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatabaseConfig {
    pub enabled: bool,
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
    pub password: Option<Secret>,
    pub dbname: Option<String>,
    /// One of [`SSL_MODES`].
    pub sslmode: String,
    pub sslcert: Option<PathBuf>,
    pub sslkey: Option<PathBuf>,
    pub sslrootcert: Option<PathBuf>,
    pub connect_timeout: Option<Duration>,
    pub pool: PoolConfig,
}

/// `pool`: `None` leaves the choice to the backend.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolConfig {
    pub max_open: Option<u32>,
    pub max_idle: Option<u32>,
    pub max_lifetime: Option<Duration>,
    pub max_idle_time: Option<Duration>,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            enabled: false,
            host: "localhost".into(),
            port: 5432,
            user: None,
            password: None,
            dbname: None,
            sslmode: "prefer".into(),
            sslcert: None,
            sslkey: None,
            sslrootcert: None,
            connect_timeout: None,
            pool: PoolConfig::default(),
        }
    }
}

#[derive(Debug, Default)]
struct RawDatabase {
    enabled: Option<Setting>,
    host: Option<Setting>,
    port: Option<Setting>,
    user: Option<Setting>,
    password: Option<Setting>,
    dbname: Option<Setting>,
    sslmode: Option<Setting>,
    sslcert: Option<Setting>,
    sslkey: Option<Setting>,
    sslrootcert: Option<Setting>,
    connect_timeout: Option<Setting>,
    max_open: Option<Setting>,
    max_idle: Option<Setting>,
    max_lifetime: Option<Setting>,
    max_idle_time: Option<Setting>,
}

pub fn read(mut s: Section<'_>) -> Result<DatabaseConfig, ConfigError> {
    let mut raw = RawDatabase {
        enabled: s.scalar("enabled")?,
        host: s.scalar("host")?,
        port: s.scalar("port")?,
        user: s.scalar("user")?,
        password: s.scalar("password")?,
        dbname: s.scalar("dbname")?,
        sslmode: s.scalar("sslmode")?,
        sslcert: s.scalar("sslcert")?,
        sslkey: s.scalar("sslkey")?,
        sslrootcert: s.scalar("sslrootcert")?,
        connect_timeout: s.scalar("connecttimeout")?,
        ..RawDatabase::default()
    };
    let mut pool = s.section("pool")?;
    raw.max_open = pool.scalar("maxopen")?;
    raw.max_idle = pool.scalar("maxidle")?;
    raw.max_lifetime = pool.scalar("maxlifetime")?;
    raw.max_idle_time = pool.scalar("maxidletime")?;
    pool.finish();
    for key in [
        "preparedstatements",
        "loadbalancing",
        "backgroundmigrations",
    ] {
        s.ignore(key, "a GitLab registry setting berth does not use");
    }
    s.finish();
    raw.validate()
}

impl RawDatabase {
    fn validate(self) -> Result<DatabaseConfig, ConfigError> {
        let d = DatabaseConfig::default();
        let path = |s: &Option<Setting>| non_empty(s).map(|p| p.map(PathBuf::from));
        let count = |s: &Option<Setting>| match s {
            Some(s) => s
                .parse(|t| parse_int(t, 0, u64::from(u32::MAX)).map(|n| n as u32))
                .map(Some),
            None => Ok(None),
        };
        let duration = |s: &Option<Setting>| match s {
            Some(s) => s.parse(parse_duration).map(Some),
            None => Ok(None),
        };
        let config = DatabaseConfig {
            enabled: parse_or(&self.enabled, false, parse_bool)?,
            host: non_empty(&self.host)?.unwrap_or(d.host),
            port: parse_or(&self.port, d.port, |t| {
                parse_int(t, 1, 65535).map(|n| n as u16)
            })?,
            user: non_empty(&self.user)?,
            password: self.password.map(|s| Secret::new(s.text)),
            dbname: non_empty(&self.dbname)?,
            sslmode: match &self.sslmode {
                Some(s) => s.parse(|t| parse_choice(t, SSL_MODES))?.to_string(),
                None => d.sslmode,
            },
            sslcert: path(&self.sslcert)?,
            sslkey: path(&self.sslkey)?,
            sslrootcert: path(&self.sslrootcert)?,
            connect_timeout: duration(&self.connect_timeout)?,
            pool: PoolConfig {
                max_open: count(&self.max_open)?,
                max_idle: count(&self.max_idle)?,
                max_lifetime: duration(&self.max_lifetime)?,
                max_idle_time: duration(&self.max_idle_time)?,
            },
        };
        if config.enabled {
            for (value, key) in [(&config.user, "user"), (&config.dbname, "dbname")] {
                if value.is_none() {
                    return Err(ConfigError::Malformed {
                        key: format!("database.{key}"),
                        reason: "required when database.enabled is true".into(),
                    });
                }
            }
        }
        Ok(config)
    }
}

impl DatabaseConfig {
    /// The settings of the PostgreSQL metadata store. GitLab's zeros keep their meaning (`maxopen: 0`
    /// no limit, `maxlifetime: 0` forever, ...); keys left out take the store's defaults.
    pub fn postgres_settings(&self) -> Result<metadata::postgres::Settings, ConfigError> {
        use metadata::postgres::{PoolSettings, Settings, TlsFiles};
        let defaults = Settings::default();
        let pool_defaults = PoolSettings::default();
        let nonzero = |d: Option<Duration>, default: Option<Duration>| match d {
            Some(d) if d.is_zero() => None,
            Some(d) => Some(d),
            None => default,
        };
        Ok(Settings {
            host: self.host.clone(),
            port: self.port,
            user: self.user.clone().unwrap_or(defaults.user),
            password: self.password.as_ref().map(|p| p.expose().to_string()),
            dbname: self.dbname.clone().unwrap_or(defaults.dbname),
            sslmode: self
                .sslmode
                .parse()
                .map_err(|reason| ConfigError::Malformed {
                    key: "database.sslmode".into(),
                    reason,
                })?,
            tls: TlsFiles {
                root_cert: self.sslrootcert.clone(),
                client_cert: self.sslcert.clone(),
                client_key: self.sslkey.clone(),
            },
            connect_timeout: nonzero(self.connect_timeout, defaults.connect_timeout),
            pool: PoolSettings {
                max_open: match self.pool.max_open {
                    Some(0) => None,
                    Some(n) => Some(n as usize),
                    None => pool_defaults.max_open,
                },
                max_idle: self
                    .pool
                    .max_idle
                    .map_or(pool_defaults.max_idle, |n| n as usize),
                max_lifetime: nonzero(self.pool.max_lifetime, pool_defaults.max_lifetime),
                max_idle_time: nonzero(self.pool.max_idle_time, pool_defaults.max_idle_time),
            },
        })
    }

    pub fn to_yaml(&self) -> Printed {
        let opt = |v: &Option<String>| v.as_deref().map_or(NOTHING, text);
        let path = |v: &Option<PathBuf>| {
            v.as_ref()
                .map_or(NOTHING, |p| text(p.display().to_string()))
        };
        let duration = |v: &Option<Duration>| v.map_or(NOTHING, |d| text(format_duration(d)));
        let count = |v: &Option<u32>| v.map_or(NOTHING, number);
        mapping([
            ("enabled", flag(self.enabled)),
            ("host", text(self.host.as_str())),
            ("port", number(self.port)),
            ("user", opt(&self.user)),
            ("password", masked(self.password.is_some())),
            ("dbname", opt(&self.dbname)),
            ("sslmode", text(self.sslmode.as_str())),
            ("sslcert", path(&self.sslcert)),
            ("sslkey", path(&self.sslkey)),
            ("sslrootcert", path(&self.sslrootcert)),
            ("connecttimeout", duration(&self.connect_timeout)),
            (
                "pool",
                mapping([
                    ("maxopen", count(&self.pool.max_open)),
                    ("maxidle", count(&self.pool.max_idle)),
                    ("maxlifetime", duration(&self.pool.max_lifetime)),
                    ("maxidletime", duration(&self.pool.max_idle_time)),
                ]),
            ),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gitlab_zeros_mean_unlimited_and_unset_keys_take_the_stores_defaults() {
        let defaults = metadata::postgres::Settings::default();
        let config = DatabaseConfig {
            enabled: true,
            host: "db.internal".into(),
            port: 6432,
            user: Some("registry".into()),
            password: Some(Secret::new("s3cret")),
            dbname: Some("registry_prod".into()),
            sslmode: "verify-full".into(),
            sslrootcert: Some("/etc/ssl/db-ca.pem".into()),
            connect_timeout: Some(Duration::from_secs(5)),
            pool: PoolConfig {
                max_open: Some(0),
                max_idle: Some(0),
                max_lifetime: Some(Duration::ZERO),
                max_idle_time: None,
            },
            ..DatabaseConfig::default()
        };
        let s = config.postgres_settings().unwrap();
        assert_eq!(
            (s.host.as_str(), s.port, s.user.as_str(), s.dbname.as_str()),
            ("db.internal", 6432, "registry", "registry_prod")
        );
        assert_eq!(s.password.as_deref(), Some("s3cret"));
        assert_eq!(s.sslmode, metadata::postgres::SslMode::VerifyFull);
        assert_eq!(
            s.tls.root_cert.as_deref(),
            Some(std::path::Path::new("/etc/ssl/db-ca.pem"))
        );
        assert_eq!(s.connect_timeout, Some(Duration::from_secs(5)));
        assert_eq!(s.pool.max_open, None);
        assert_eq!(s.pool.max_idle, 0);
        assert_eq!(s.pool.max_lifetime, None);
        assert_eq!(s.pool.max_idle_time, defaults.pool.max_idle_time);

        let config = DatabaseConfig {
            pool: PoolConfig {
                max_open: Some(30),
                ..PoolConfig::default()
            },
            ..DatabaseConfig::default()
        };
        let s = config.postgres_settings().unwrap();
        assert_eq!(s.pool.max_open, Some(30));
        assert_eq!(s.pool.max_idle, defaults.pool.max_idle);
        assert_eq!(s.connect_timeout, defaults.connect_timeout);
        assert_eq!(s.sslmode, metadata::postgres::SslMode::Prefer);
    }
}
