//! `limits`: berth's own section (registry:2 has none, and ignores it), bounding what clients can take
//! from the server: timeouts against slow or idle clients, the least a request body must bring per
//! second, the number of connections, of HTTP/2 streams
//! per connection, of uploads in progress, and the size of a manifest; and the metadata cache's two
//! bounds: how stale it may be (`metadatacachettl`, how late a write by another replica is seen) and
//! how much memory it may take (`metadatacachesize`). Every key is optional; the defaults are
//! `berth_http::limits::Limits::default()`, `registry::Settings::default()` and
//! `registry::cached::CacheSettings::default()`, chosen for a registry behind a few hundred clients. The drain timeout stays where registry:2 has it,
//! `http.draintimeout`.

use std::time::Duration;

use berth_http::limits::Limits;
use registry::cached::CacheSettings;

use super::read::{Section, Setting, parse_or};
use super::values::{format_duration, parse_duration, parse_int, parse_size};
use super::yaml::{Printed, number, text};
use super::{ConfigError, mapping};

/// The validated `limits`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitsConfig {
    /// The server's limits; its `drain_timeout` is the default until the wiring applies
    /// `http.draintimeout`.
    pub server: Limits,
    /// `maxconcurrentuploads`: `None` (written 0) for no cap.
    pub max_concurrent_uploads: Option<usize>,
    /// `maxmanifestbytes`.
    pub max_manifest_bytes: usize,
    /// `metadatacachettl` and `metadatacachesize` (either 0: no cache).
    pub metadata_cache: CacheSettings,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        let registry = registry::Settings::default();
        LimitsConfig {
            server: Limits::default(),
            max_concurrent_uploads: registry.max_concurrent_uploads,
            max_manifest_bytes: registry.max_manifest_bytes,
            metadata_cache: CacheSettings::default(),
        }
    }
}

/// Bounds of the counts: wide enough for any real deployment, narrow enough to catch a typo.
const MAX_CONNECTIONS: u64 = 1_000_000;
const MAX_STREAMS: u64 = 10_000;
/// A minimum body rate above 1 GiB/s would refuse healthy clients on any network.
const MAX_BODY_RATE: u64 = 1 << 30;
const MAX_UPLOADS: u64 = 1_000_000;
/// Manifests are JSON documents: 1 KiB to 64 MiB (the spec suggests accepting at least 4 MiB).
const MANIFEST_BYTES: (u64, u64) = (1024, 64 * 1024 * 1024);
/// The metadata cache: up to 4 GiB, trusted for at most a minute (replicas must converge quickly).
const CACHE_BYTES: u64 = 4 << 30;
const CACHE_TTL: Duration = Duration::from_secs(60);

pub fn read(mut s: Section<'_>) -> Result<LimitsConfig, ConfigError> {
    let header = s.scalar("headerreadtimeout")?;
    let idle = s.scalar("idletimeout")?;
    let stall = s.scalar("stalltimeout")?;
    let min_rate = s.scalar("minbodyrate")?;
    let rate_window = s.scalar("bodyratewindow")?;
    let handshake = s.scalar("handshaketimeout")?;
    let connections = s.scalar("maxconnections")?;
    let streams = s.scalar("maxhttp2streams")?;
    let uploads = s.scalar("maxconcurrentuploads")?;
    let manifest = s.scalar("maxmanifestbytes")?;
    let cache_ttl = s.scalar("metadatacachettl")?;
    let cache_size = s.scalar("metadatacachesize")?;
    s.finish();

    let d = LimitsConfig::default();
    let server = Limits {
        header_read_timeout: timeout(&header, d.server.header_read_timeout)?,
        idle_timeout: timeout(&idle, d.server.idle_timeout)?,
        stall_timeout: timeout(&stall, d.server.stall_timeout)?,
        min_body_rate: parse_or(&min_rate, d.server.min_body_rate, |t| {
            match parse_size(t)? {
                r if r > MAX_BODY_RATE => Err(format!(
                    "must be at most {MAX_BODY_RATE} bytes per second (0 turns the minimum off)"
                )),
                r => Ok(r),
            }
        })?,
        body_rate_window: timeout(&rate_window, d.server.body_rate_window)?,
        handshake_timeout: timeout(&handshake, d.server.handshake_timeout)?,
        max_connections: count(&connections, d.server.max_connections, 1, MAX_CONNECTIONS)?,
        max_http2_streams: parse_or(&streams, d.server.max_http2_streams, |t| {
            parse_int(t, 1, MAX_STREAMS).map(|n| n as u32)
        })?,
        drain_timeout: d.server.drain_timeout,
    };
    let max_concurrent_uploads = match &uploads {
        None => d.max_concurrent_uploads,
        Some(s) => match s.parse(|t| parse_int(t, 0, MAX_UPLOADS))? {
            0 => None,
            n => Some(n as usize),
        },
    };
    let (lo, hi) = MANIFEST_BYTES;
    Ok(LimitsConfig {
        server,
        max_concurrent_uploads,
        max_manifest_bytes: count(&manifest, d.max_manifest_bytes, lo, hi)?,
        metadata_cache: CacheSettings {
            ttl: parse_or(
                &cache_ttl,
                d.metadata_cache.ttl,
                |t| match parse_duration(t)? {
                    d if d > CACHE_TTL => {
                        Err("must be at most 1m (0 turns the cache off)".to_string())
                    }
                    d => Ok(d),
                },
            )?,
            max_bytes: count(&cache_size, d.metadata_cache.max_bytes, 0, CACHE_BYTES)?,
        },
    })
}

/// A timeout: a duration above zero (a limit that could be switched off would invite the very abuse
/// it is there to stop).
fn timeout(setting: &Option<Setting>, default: Duration) -> Result<Duration, ConfigError> {
    parse_or(setting, default, |t| match parse_duration(t)? {
        d if d.is_zero() => Err("must be longer than 0 (e.g. 30s)".to_string()),
        d => Ok(d),
    })
}

fn count(
    setting: &Option<Setting>,
    default: usize,
    min: u64,
    max: u64,
) -> Result<usize, ConfigError> {
    parse_or(setting, default, |t| {
        parse_int(t, min, max).map(|n| n as usize)
    })
}

impl LimitsConfig {
    pub fn to_yaml(&self) -> Printed {
        let l = &self.server;
        let n = |v: usize| number(v as u64);
        let duration = |d| text(format_duration(d));
        mapping([
            ("headerreadtimeout", duration(l.header_read_timeout)),
            ("idletimeout", duration(l.idle_timeout)),
            ("stalltimeout", duration(l.stall_timeout)),
            ("minbodyrate", number(l.min_body_rate)),
            ("bodyratewindow", duration(l.body_rate_window)),
            ("handshaketimeout", duration(l.handshake_timeout)),
            ("maxconnections", n(l.max_connections)),
            ("maxhttp2streams", number(l.max_http2_streams)),
            (
                "maxconcurrentuploads",
                n(self.max_concurrent_uploads.unwrap_or(0)),
            ),
            ("maxmanifestbytes", n(self.max_manifest_bytes)),
            ("metadatacachettl", duration(self.metadata_cache.ttl)),
            ("metadatacachesize", n(self.metadata_cache.max_bytes)),
        ])
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::super::load;
    use super::*;

    fn limits(yaml: &str, vars: &[(&str, &str)]) -> Result<LimitsConfig, String> {
        let env: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        load(Some(yaml), &env)
            .map(|l| {
                assert!(l.warnings.is_empty(), "{:?}", l.warnings);
                l.config.limits
            })
            .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_without_the_section() {
        let got = limits("version: 0.1\n", &[]).unwrap();
        assert_eq!(got, LimitsConfig::default());
        assert_eq!(got.server, Limits::default());
        assert_eq!(
            got.max_concurrent_uploads,
            Some(registry::DEFAULT_MAX_CONCURRENT_UPLOADS)
        );
    }

    #[test]
    fn every_key_is_read_and_printed_back() {
        let yaml = "limits:\n  headerreadtimeout: 5s\n  idletimeout: 2m\n  stalltimeout: 90s\n  \
                    minbodyrate: 4K\n  bodyratewindow: 10s\n  handshaketimeout: 3s\n  maxconnections: 64\n  maxhttp2streams: 16\n  \
                    maxconcurrentuploads: 0\n  maxmanifestbytes: 8388608\n  \
                    metadatacachettl: 250ms\n  metadatacachesize: 1048576\n";
        let got = limits(yaml, &[]).unwrap();
        assert_eq!(
            got.server,
            Limits {
                header_read_timeout: Duration::from_secs(5),
                idle_timeout: Duration::from_secs(120),
                stall_timeout: Duration::from_secs(90),
                min_body_rate: 4096,
                body_rate_window: Duration::from_secs(10),
                handshake_timeout: Duration::from_secs(3),
                max_connections: 64,
                max_http2_streams: 16,
                drain_timeout: Limits::default().drain_timeout,
            }
        );
        // 0: no cap on uploads.
        assert_eq!(got.max_concurrent_uploads, None);
        assert_eq!(got.max_manifest_bytes, 8 * 1024 * 1024);
        assert_eq!(
            got.metadata_cache,
            CacheSettings {
                ttl: Duration::from_millis(250),
                max_bytes: 1 << 20,
            }
        );

        let printed = crate::config::yaml::to_string(&got.to_yaml()).unwrap();
        for line in [
            "headerreadtimeout: 5s",
            "idletimeout: 2m",
            "stalltimeout: 1m30s",
            "minbodyrate: 4096",
            "bodyratewindow: 10s",
            "maxconnections: 64",
            "maxconcurrentuploads: 0",
            "maxmanifestbytes: 8388608",
            "metadatacachettl: 250ms",
            "metadatacachesize: 1048576",
        ] {
            assert!(printed.contains(line), "{line} not in\n{printed}");
        }
    }

    #[test]
    fn the_metadata_cache_is_on_by_default_and_zero_turns_it_off() {
        let on = limits("version: 0.1\n", &[]).unwrap().metadata_cache;
        assert!(on.enabled());
        assert_eq!(on.ttl, Duration::from_secs(1));
        for yaml in [
            "limits:\n  metadatacachettl: 0\n",
            "limits:\n  metadatacachesize: 0\n",
        ] {
            assert!(
                !limits(yaml, &[]).unwrap().metadata_cache.enabled(),
                "{yaml}"
            );
        }
    }

    #[test]
    fn the_minimum_body_rate_is_on_by_default_and_zero_turns_it_off() {
        let on = limits("version: 0.1\n", &[]).unwrap().server;
        assert_eq!(
            (on.min_body_rate, on.body_rate_window),
            (1024, Duration::from_secs(30))
        );
        let off = limits("limits:\n  minbodyrate: 0\n", &[]).unwrap().server;
        assert_eq!(off.min_body_rate, 0);
        let env = limits("version: 0.1\n", &[("REGISTRY_LIMITS_MINBODYRATE", "64K")]).unwrap();
        assert_eq!(env.server.min_body_rate, 64 << 10);
    }

    #[test]
    fn variables_override_the_file() {
        let got = limits(
            "limits:\n  maxconnections: 64\n",
            &[
                ("REGISTRY_LIMITS_MAXCONNECTIONS", "8"),
                ("REGISTRY_LIMITS_IDLETIMEOUT", "5s"),
            ],
        )
        .unwrap();
        assert_eq!(got.server.max_connections, 8);
        assert_eq!(got.server.idle_timeout, Duration::from_secs(5));
    }

    #[test]
    fn bad_values_name_the_key_and_what_is_allowed() {
        let cases = [
            (
                "limits:\n  idletimeout: 0\n",
                "limits.idletimeout: \"0\": must be longer than 0 (e.g. 30s)",
            ),
            (
                "limits:\n  headerreadtimeout: 10\n",
                "limits.headerreadtimeout: \"10\": expected a duration",
            ),
            (
                "limits:\n  minbodyrate: 2G\n",
                "limits.minbodyrate: \"2G\": must be at most 1073741824 bytes per second",
            ),
            (
                "limits:\n  bodyratewindow: 0s\n",
                "limits.bodyratewindow: \"0s\": must be longer than 0",
            ),
            (
                "limits:\n  maxconnections: 0\n",
                "limits.maxconnections: \"0\": expected a whole number from 1 to 1000000",
            ),
            (
                "limits:\n  maxmanifestbytes: 12\n",
                "limits.maxmanifestbytes: \"12\": expected a whole number from 1024 to 67108864",
            ),
            (
                "limits:\n  metadatacachettl: 5m\n",
                "limits.metadatacachettl: \"5m\": must be at most 1m (0 turns the cache off)",
            ),
            (
                "limits:\n  maxconcurrentuploads: many\n",
                "limits.maxconcurrentuploads: \"many\": expected a whole number",
            ),
        ];
        for (yaml, want) in cases {
            let err = limits(yaml, &[]).unwrap_err();
            assert!(err.starts_with(want), "{yaml}: {err}");
        }
    }

    #[test]
    fn unknown_keys_are_reported() {
        let l = load(Some("limits:\n  maxfun: 3\n"), &HashMap::new()).unwrap();
        let keys: Vec<_> = l.warnings.iter().map(|w| w.key.as_str()).collect();
        assert_eq!(keys, ["limits.maxfun"]);
    }
}
