//! TLS for the listener, with rustls: the certificate chain and key from PEM files, reloaded when they
//! change on disk (renewals need no restart), a minimum protocol version, optional client certificates
//! (mTLS, in registry:3's four modes: `client_auth.rs`) and ALPN for HTTP/2.
//!
//! Reloading: every handshake stats the two files (two cheap syscalls beside the handshake's crypto) and,
//! when either changed (modification time, size or inode, so both in-place writes and the rename or
//! symlink swaps of cert-manager and certbot are seen), loads them again. A pair that does not load (a
//! half-written file, a key that does not match the certificate) is logged once and the previous
//! certificate keeps being served; it is tried again when the files change again. So the next handshake
//! after a good renewal serves the new certificate, and a bad renewal never takes the server down.
//!
//! The crypto backend is rustls' default, aws-lc-rs, which the auth crate's JWT validation uses too: one
//! provider for the whole process, built once here.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use tokio::net::TcpStream;
use tokio_rustls::rustls::crypto::CryptoProvider;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};
use tokio_rustls::server::TlsStream;

use super::client_auth;
pub use super::client_auth::ClientAuth;

/// The oldest protocol version berth accepts (registry:2's `http.tls.minimumtls`). rustls implements
/// TLS 1.2 and 1.3 only, so registry:2's `tls1.0` and `tls1.1` cannot be honoured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TlsVersion {
    #[default]
    Tls12,
    Tls13,
}

impl FromStr for TlsVersion {
    type Err = String;

    /// registry:2's spellings.
    fn from_str(s: &str) -> Result<TlsVersion, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "tls1.2" => Ok(TlsVersion::Tls12),
            "tls1.3" => Ok(TlsVersion::Tls13),
            "tls1.0" | "tls1.1" => Err(format!(
                "{s} is not supported: berth speaks TLS 1.2 and 1.3 only (use tls1.2 or tls1.3)"
            )),
            _ => Err("expected tls1.2 or tls1.3".to_string()),
        }
    }
}

impl fmt::Display for TlsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsVersion::Tls12 => "tls1.2",
            TlsVersion::Tls13 => "tls1.3",
        })
    }
}

/// What the listener's TLS is made of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM: the server's certificate, then any intermediates.
    pub certificate: PathBuf,
    /// PEM: its private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM files of the CAs whose client certificates are accepted. Not empty: a client certificate is
    /// asked for, and required or verified as `client_auth` says (by default both: connections
    /// without a valid one are refused during the handshake).
    pub client_cas: Vec<PathBuf>,
    /// How client certificates are asked for and checked when `client_cas` is not empty.
    pub client_auth: ClientAuth,
    pub minimum_version: TlsVersion,
    /// Offer HTTP/2 through ALPN (else HTTP/1.1 only).
    pub http2: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}: {source}", path.display())]
    Read { path: PathBuf, source: io::Error },
    #[error("{}: no PEM certificate in the file", .0.display())]
    NoCertificate(PathBuf),
    #[error("{}: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// Accepts TLS connections with the configured settings. Cheap to clone.
#[derive(Clone)]
pub struct TlsAcceptor {
    inner: tokio_rustls::TlsAcceptor,
}

impl fmt::Debug for TlsAcceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TlsAcceptor")
    }
}

impl TlsAcceptor {
    /// Loads the certificate, the key and the client CAs; fails (naming the file) if any is unusable,
    /// so that a bad configuration stops the start rather than the first handshake.
    pub fn new(settings: &TlsSettings) -> Result<TlsAcceptor, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let resolver = ReloadingCert::load(&settings.certificate, &settings.key, &provider)?;
        let versions: &[&rustls::SupportedProtocolVersion] = match settings.minimum_version {
            TlsVersion::Tls12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
            TlsVersion::Tls13 => &[&rustls::version::TLS13],
        };
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(versions)?;
        let builder = if settings.client_cas.is_empty() {
            builder.with_no_client_auth()
        } else {
            let roots = client_roots(&settings.client_cas)?;
            builder.with_client_cert_verifier(client_auth::verifier(
                settings.client_auth,
                roots,
                provider,
            )?)
        };
        let mut config = builder.with_cert_resolver(Arc::new(resolver));
        config.alpn_protocols = if settings.http2 {
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        } else {
            vec![b"http/1.1".to_vec()]
        };
        Ok(TlsAcceptor {
            inner: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// The handshake. The caller bounds its time.
    pub(crate) async fn accept(&self, tcp: TcpStream) -> io::Result<TlsStream<TcpStream>> {
        self.inner.accept(tcp).await
    }
}

/// Every certificate of every file, as trust anchors for client certificates.
fn client_roots(files: &[PathBuf]) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for path in files {
        let certs = read_certificates(path)?;
        for cert in certs {
            roots.add(cert).map_err(|e| TlsError::Invalid {
                path: path.clone(),
                reason: format!("not a usable CA certificate: {e}"),
            })?;
        }
    }
    Ok(roots)
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| pem_error(path, e))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate(path.to_path_buf()));
    }
    Ok(certs)
}

fn pem_error(path: &Path, e: rustls::pki_types::pem::Error) -> TlsError {
    match e {
        rustls::pki_types::pem::Error::Io(source) => TlsError::Read {
            path: path.to_path_buf(),
            source,
        },
        other => TlsError::Invalid {
            path: path.to_path_buf(),
            reason: format!("not valid PEM: {other}"),
        },
    }
}

/// The certificate and key as loaded, checked to belong together.
fn load_pair(
    cert: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = read_certificates(cert)?;
    let der = PrivateKeyDer::from_pem_file(key).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::Invalid {
            path: key.to_path_buf(),
            reason: "no PEM private key in the file".to_string(),
        },
        other => pem_error(key, other),
    })?;
    let signing = provider
        .key_provider
        .load_private_key(der)
        .map_err(|e| TlsError::Invalid {
            path: key.to_path_buf(),
            reason: format!("unusable private key: {e}"),
        })?;
    let pair = CertifiedKey::new(chain, signing);
    pair.keys_match().map_err(|e| TlsError::Invalid {
        path: key.to_path_buf(),
        reason: format!("does not match the certificate in {}: {e}", cert.display()),
    })?;
    Ok(Arc::new(pair))
}

/// What identifies a version of a file without reading it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamp(path: &Path) -> io::Result<Stamp> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path)?;
    Ok(Stamp {
        modified: m.modified().ok(),
        len: m.len(),
        inode: m.ino(),
    })
}

/// The certificate resolver that reloads the files when they change (see the module comment).
struct ReloadingCert {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    /// A std mutex: held only to compare stamps and, on a change, to load two small files; never across
    /// an `.await` (rustls calls `resolve` synchronously).
    state: Mutex<State>,
}

struct State {
    current: Arc<CertifiedKey>,
    /// The stamps of the pair being served.
    loaded: (Stamp, Stamp),
    /// The stamps of the last pair that failed to load (or the last stat error), so a broken renewal is
    /// reported once, not on every handshake.
    failed: Option<Result<(Stamp, Stamp), String>>,
}

impl fmt::Debug for ReloadingCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadingCert")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish()
    }
}

impl ReloadingCert {
    fn load(cert: &Path, key: &Path, provider: &Arc<CryptoProvider>) -> Result<Self, TlsError> {
        let stamps = (
            stamp(cert).map_err(|source| TlsError::Read {
                path: cert.to_path_buf(),
                source,
            })?,
            stamp(key).map_err(|source| TlsError::Read {
                path: key.to_path_buf(),
                source,
            })?,
        );
        let current = load_pair(cert, key, provider)?;
        Ok(ReloadingCert {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            provider: Arc::clone(provider),
            state: Mutex::new(State {
                current,
                loaded: stamps,
                failed: None,
            }),
        })
    }

    /// The pair to serve now, reloaded first if the files changed.
    fn current(&self) -> Arc<CertifiedKey> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let stamps = match (stamp(&self.cert), stamp(&self.key)) {
            (Ok(c), Ok(k)) => (c, k),
            (Err(e), _) | (_, Err(e)) => {
                let what = e.to_string();
                if state.failed.as_ref() != Some(&Err(what.clone())) {
                    tracing::error!(
                        certificate = %self.cert.display(),
                        key = %self.key.display(),
                        error = %what,
                        "cannot read the TLS certificate files; still serving the previous certificate"
                    );
                    state.failed = Some(Err(what));
                }
                return Arc::clone(&state.current);
            }
        };
        if stamps == state.loaded || state.failed == Some(Ok(stamps)) {
            return Arc::clone(&state.current);
        }
        match load_pair(&self.cert, &self.key, &self.provider) {
            Ok(pair) => {
                tracing::info!(certificate = %self.cert.display(), "TLS certificate reloaded");
                state.current = pair;
                state.loaded = stamps;
                state.failed = None;
            }
            Err(e) => {
                tracing::error!(
                    error = %e,
                    "the changed TLS certificate or key does not load; still serving the previous certificate"
                );
                state.failed = Some(Ok(stamps));
            }
        }
        Arc::clone(&state.current)
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimum_versions_as_registry2_spells_them() {
        assert_eq!("tls1.2".parse::<TlsVersion>(), Ok(TlsVersion::Tls12));
        assert_eq!("TLS1.3".parse::<TlsVersion>(), Ok(TlsVersion::Tls13));
        let old = "tls1.0".parse::<TlsVersion>().unwrap_err();
        assert!(old.contains("1.2 and 1.3"), "{old}");
        assert!("ssl3".parse::<TlsVersion>().is_err());
        assert_eq!(TlsVersion::Tls13.to_string(), "tls1.3");
    }
}
