//! The `http` section: where berth listens and how it looks from outside (`addr`, `net`, `host`, `prefix`,
//! `headers`, `relativeurls`), TLS (`tls.*`, with registry:3's `clientauth`), the debug server
//! (`debug.*`), HTTP/2 (`http2.disabled` over TLS, registry:3's `h2c.enabled` without), the drain timeout
//! and registry:2's `secret`.
//!
//! `host`, `prefix` and `headers` become a `berth_http::site::Site`, whose parsers are the rules; TLS
//! becomes [`TlsConfig`] for the TLS listener.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use berth_http::site::{BaseUrl, ExtraHeaders, Prefix, Site};
use berth_http::tls::{ClientAuth, TlsVersion};

use super::read::{Ctx, Section, Setting, non_empty, parse_or, scalars};
use super::values::{format_duration, parse_addr, parse_bool, parse_choice, parse_duration};
use super::yaml::{NOTHING, Printed, flag, seq, text};
use super::{ConfigError, Secret, WarningKind, mapping, masked};

/// Where berth listens when nothing says otherwise: loopback only, so a first run exposes nothing.
pub const DEFAULT_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5000);
/// registry:2's Prometheus path.
pub const DEFAULT_METRICS_PATH: &str = "/metrics";

#[derive(Clone, Debug)]
pub struct HttpConfig {
    pub addr: SocketAddr,
    /// `prefix`, `host` and `headers`.
    pub site: Site,
    /// registry:2's `secret` (it signs upload state there; berth keeps that state in its metadata).
    pub secret: Option<Secret>,
    pub relative_urls: bool,
    /// `draintimeout`: how long requests in flight may finish after a stop signal; `None`: berth's default.
    pub drain_timeout: Option<Duration>,
    pub tls: Option<TlsConfig>,
    pub debug: DebugConfig,
    /// `http2.disabled`: no HTTP/2 through ALPN on the TLS listener.
    pub http2_disabled: bool,
    /// registry:3's `h2c.enabled`: HTTP/2 by prior knowledge on the plain listener. Unset, berth keeps
    /// what it always did, h2c unless `http2.disabled` (a client that does not start with HTTP/2's
    /// preface is served HTTP/1.1 either way, so this only matters to h2c clients).
    pub h2c: bool,
}

impl HttpConfig {
    /// Whether the listener speaks HTTP/2 besides HTTP/1.1: through ALPN when it has TLS (unless
    /// `http2.disabled`), by prior knowledge when it has not (`h2c`). As in registry:3, each key governs
    /// its own listener: `http2.disabled` says nothing of h2c, nor `h2c.enabled` of TLS.
    pub fn serves_http2(&self) -> bool {
        if self.tls.is_some() {
            !self.http2_disabled
        } else {
            self.h2c
        }
    }
}

/// `tls`: certificate and key files (PEM), client CAs, minimum version (`ciphersuites` and `letsencrypt`
/// are reported and ignored).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsConfig {
    pub certificate: PathBuf,
    pub key: PathBuf,
    /// `clientcas`: with any, clients are asked for a certificate, and `clientauth` says what follows.
    pub client_cas: Vec<PathBuf>,
    /// registry:3's `clientauth` (by default a certificate one of `clientcas` signed is required).
    pub client_auth: ClientAuth,
    /// `minimumtls`.
    pub minimum_version: TlsVersion,
}

/// `debug`: the operator's server (health, metrics), off unless `addr` is set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DebugConfig {
    pub addr: Option<SocketAddr>,
    /// `prometheus.path` when `prometheus.enabled`.
    pub prometheus: Option<String>,
}

/// `http` as read.
#[derive(Debug, Default)]
struct RawHttp {
    addr: Option<Setting>,
    net: Option<Setting>,
    host: Option<Setting>,
    prefix: Option<Setting>,
    secret: Option<Setting>,
    relative_urls: Option<Setting>,
    drain_timeout: Option<Setting>,
    /// `headers`: name and values, in the file's order.
    headers: Vec<(String, Vec<Setting>)>,
    tls: Option<RawTls>,
    debug_addr: Option<Setting>,
    prometheus_enabled: Option<Setting>,
    prometheus_path: Option<Setting>,
    http2_disabled: Option<Setting>,
    h2c_enabled: Option<Setting>,
}

#[derive(Debug, Default)]
struct RawTls {
    certificate: Option<Setting>,
    key: Option<Setting>,
    client_cas: Vec<Setting>,
    client_auth: Option<Setting>,
    minimum: Option<Setting>,
}

pub fn read(mut s: Section<'_>) -> Result<HttpConfig, ConfigError> {
    let ctx = s.ctx();
    let mut raw = RawHttp {
        addr: s.scalar("addr")?,
        net: s.scalar("net")?,
        host: s.scalar("host")?,
        prefix: s.scalar("prefix")?,
        secret: s.scalar("secret")?,
        relative_urls: s.scalar("relativeurls")?,
        drain_timeout: s.scalar("draintimeout")?,
        ..RawHttp::default()
    };
    for (name, node, origin) in s.entries("headers")? {
        raw.headers.push((name, scalars(node, &origin)?));
    }

    let mut tls = s.section("tls")?;
    let raw_tls = RawTls {
        certificate: tls.scalar("certificate")?,
        key: tls.scalar("key")?,
        client_cas: tls.strings("clientcas")?.unwrap_or_default(),
        client_auth: tls.scalar("clientauth")?,
        minimum: tls.scalar("minimumtls")?,
    };
    tls.ignore(
        "ciphersuites",
        "berth offers rustls's cipher suites, which are all modern",
    );
    tls.ignore(
        "letsencrypt",
        "Let's Encrypt is not supported by berth; give certificate and key",
    );
    tls.finish();
    if raw_tls.certificate.is_some() || raw_tls.key.is_some() {
        raw.tls = Some(raw_tls);
    }

    let mut debug = s.section("debug")?;
    raw.debug_addr = debug.scalar("addr")?;
    let mut prometheus = debug.section("prometheus")?;
    raw.prometheus_enabled = prometheus.scalar("enabled")?;
    raw.prometheus_path = prometheus.scalar("path")?;
    prometheus.finish();
    debug.finish();

    let mut http2 = s.section("http2")?;
    raw.http2_disabled = http2.scalar("disabled")?;
    http2.finish();
    let mut h2c = s.section("h2c")?;
    raw.h2c_enabled = h2c.scalar("enabled")?;
    h2c.finish();
    s.finish();
    raw.validate(ctx)
}

impl RawHttp {
    fn validate(self, ctx: &Ctx) -> Result<HttpConfig, ConfigError> {
        if let Some(net) = &self.net {
            net.parse(|t| parse_choice(t, &["tcp", "tcp4", "tcp6"]))
                .map_err(|_| net.invalid("berth listens on TCP only (tcp, tcp4, tcp6)"))?;
        }
        let addr = parse_or(&self.addr, DEFAULT_ADDR, parse_addr)?;

        let mut site = Site::default();
        if let Some(prefix) = &self.prefix {
            site.prefix = prefix.parse(|t| Prefix::parse(t).map_err(|e| e.to_string()))?;
        }
        if let Some(host) = &self.host
            && !host.text.trim().is_empty()
        {
            let (url, path) =
                host.parse(|t| BaseUrl::parse(t.trim()).map_err(|e| e.to_string()))?;
            if let Some(path) = path {
                ctx.warn(
                    &host.origin,
                    WarningKind::Adjusted,
                    format!(
                        "the path {path} is ignored, as registry:2 ignores it; use http.prefix"
                    ),
                );
            }
            site.base_url = Some(url);
        }
        let mut headers = ExtraHeaders::default();
        for (name, values) in &self.headers {
            for value in values {
                headers
                    .add(name, &value.text)
                    .map_err(|e| value.invalid(e.to_string()))?;
            }
        }
        site.headers = headers;

        let drain_timeout = match &self.drain_timeout {
            Some(s) => Some(s.parse(parse_duration)?),
            None => None,
        };
        let tls = match self.tls {
            Some(tls) => Some(tls.validate(ctx)?),
            None => None,
        };
        let prometheus = if parse_or(&self.prometheus_enabled, false, parse_bool)? {
            let path = match &self.prometheus_path {
                Some(p) if p.text.starts_with('/') => p.text.clone(),
                Some(p) => return Err(p.invalid("must be a path starting with /")),
                None => DEFAULT_METRICS_PATH.to_string(),
            };
            Some(path)
        } else {
            None
        };
        let debug = DebugConfig {
            addr: match &self.debug_addr {
                Some(s) if !s.text.trim().is_empty() => Some(s.parse(parse_addr)?),
                _ => None,
            },
            prometheus,
        };
        let http2_disabled = parse_or(&self.http2_disabled, false, parse_bool)?;
        Ok(HttpConfig {
            addr,
            site,
            secret: self.secret.map(|s| Secret::new(s.text)),
            relative_urls: parse_or(&self.relative_urls, false, parse_bool)?,
            drain_timeout,
            tls,
            debug,
            http2_disabled,
            h2c: parse_or(&self.h2c_enabled, !http2_disabled, parse_bool)?,
        })
    }
}

impl RawTls {
    fn validate(self, ctx: &Ctx) -> Result<TlsConfig, ConfigError> {
        let required = |s: &Option<Setting>, key: &str| -> Result<PathBuf, ConfigError> {
            non_empty(s)?
                .map(PathBuf::from)
                .ok_or_else(|| ConfigError::Malformed {
                    key: format!("http.tls.{key}"),
                    reason: "required with http.tls (certificate and key go together)".into(),
                })
        };
        // The TLS listener's own rule: tls1.2 or tls1.3 (rustls has nothing older).
        let minimum_version = parse_or(&self.minimum, TlsVersion::Tls12, |t| t.parse())?;
        let client_auth = parse_or(&self.client_auth, ClientAuth::default(), |t| t.parse())?;
        if let Some(mode) = &self.client_auth
            && self.client_cas.is_empty()
        {
            ctx.warn(
                &mode.origin,
                WarningKind::Ignored,
                "no client certificate is asked for without http.tls.clientcas (as in registry:3)",
            );
        }
        Ok(TlsConfig {
            certificate: required(&self.certificate, "certificate")?,
            key: required(&self.key, "key")?,
            client_cas: self
                .client_cas
                .iter()
                .map(|s| match s.text.trim() {
                    "" => Err(s.invalid("must not be empty")),
                    path => Ok(PathBuf::from(path)),
                })
                .collect::<Result<_, _>>()?,
            client_auth,
            minimum_version,
        })
    }
}

impl HttpConfig {
    pub fn to_yaml(&self) -> Printed {
        // One entry per header name, with its values in order (a name may be set more than once).
        let mut headers: Vec<(&str, Vec<Printed>)> = Vec::new();
        for (name, value) in self.site.headers.iter() {
            let value = text(value.to_str().unwrap_or("<not text>"));
            match headers.iter_mut().find(|(have, _)| *have == name.as_str()) {
                Some((_, values)) => values.push(value),
                None => headers.push((name.as_str(), vec![value])),
            }
        }
        let mut entries = vec![
            ("addr", text(self.addr.to_string())),
            ("prefix", text(self.site.prefix.to_string())),
        ];
        if let Some(url) = &self.site.base_url {
            entries.push(("host", text(url.to_string())));
        }
        entries.extend([
            ("secret", masked(self.secret.is_some())),
            ("relativeurls", flag(self.relative_urls)),
            (
                "draintimeout",
                self.drain_timeout
                    .map_or(NOTHING, |d| text(format_duration(d))),
            ),
            (
                "headers",
                mapping(
                    headers
                        .into_iter()
                        .map(|(name, values)| (name, seq(values))),
                ),
            ),
        ]);
        if let Some(tls) = &self.tls {
            let path = |p: &PathBuf| text(p.display().to_string());
            entries.push((
                "tls",
                mapping([
                    ("certificate", path(&tls.certificate)),
                    ("key", path(&tls.key)),
                    ("clientcas", seq(tls.client_cas.iter().map(path))),
                    ("clientauth", text(tls.client_auth.to_string())),
                    ("minimumtls", text(tls.minimum_version.to_string())),
                ]),
            ));
        }
        let prometheus = match &self.debug.prometheus {
            Some(path) => mapping([("enabled", flag(true)), ("path", text(path.as_str()))]),
            None => mapping([("enabled", flag(false))]),
        };
        entries.push((
            "debug",
            mapping([
                (
                    "addr",
                    self.debug.addr.map_or(NOTHING, |a| text(a.to_string())),
                ),
                ("prometheus", prometheus),
            ]),
        ));
        entries.push(("http2", mapping([("disabled", flag(self.http2_disabled))])));
        entries.push(("h2c", mapping([("enabled", flag(self.h2c))])));
        mapping(entries)
    }
}
