//! TLS on the real server: handshakes with certificates made here (a CA and leaves from rcgen), the
//! certificate reloaded from disk without a restart, the minimum version, client certificates, ALPN.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_http::ServeSettings;
use berth_http::limits::Limits;
use berth_http::tls::{TlsAcceptor, TlsError, TlsSettings, TlsVersion};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

use crate::harness::Harness;
use crate::limits::{Running, serve_app};

/// A certificate authority for one test.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its key, PEM and DER.
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: CertificateDer<'static>,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        Ca {
            issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    pub fn der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    /// A server certificate for localhost and 127.0.0.1.
    pub fn server(&self) -> Leaf {
        self.leaf(
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    /// A client certificate.
    pub fn client(&self, name: &str) -> Leaf {
        self.leaf(&[name], ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn leaf(&self, names: &[&str], usage: ExtendedKeyUsagePurpose) -> Leaf {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "berth test");
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
        }
    }
}

/// The server's TLS files in a temporary directory.
pub struct Files {
    pub dir: tempfile::TempDir,
}

impl Files {
    pub fn new(leaf: &Leaf) -> Files {
        let files = Files {
            dir: tempfile::tempdir().unwrap(),
        };
        files.write(leaf);
        files
    }

    pub fn cert(&self) -> PathBuf {
        self.dir.path().join("server.crt")
    }

    pub fn key(&self) -> PathBuf {
        self.dir.path().join("server.key")
    }

    /// Replaces both files, each by a rename (as certbot and cert-manager do).
    pub fn write(&self, leaf: &Leaf) {
        replace(&self.cert(), &leaf.cert_pem);
        replace(&self.key(), &leaf.key_pem);
    }

    pub fn settings(&self) -> TlsSettings {
        TlsSettings {
            certificate: self.cert(),
            key: self.key(),
            client_cas: Vec::new(),
            client_auth: Default::default(),
            minimum_version: TlsVersion::Tls12,
            http2: true,
        }
    }
}

fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

pub(crate) async fn serve_tls(settings: &TlsSettings) -> (Harness, Running) {
    let h = Harness::new();
    let options = ServeSettings {
        tls: Some(TlsAcceptor::new(settings).unwrap()),
        ..ServeSettings::default()
    };
    let running = serve_app(h.app.clone(), options).await;
    (h, running)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A client trusting `ca`, speaking the given versions, with an optional client certificate.
pub(crate) fn client(
    ca: &Ca,
    versions: &[&'static rustls::SupportedProtocolVersion],
    identity: Option<&Leaf>,
    alpn: &[&[u8]],
) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    roots.add(ca.der()).unwrap();
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match identity {
        None => builder.with_no_client_auth(),
        Some(leaf) => {
            let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap();
            builder
                .with_client_auth_cert(vec![leaf.der.clone()], key)
                .unwrap()
        }
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    TlsConnector::from(Arc::new(config))
}

pub(crate) const BOTH: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

pub(crate) type Tls = tokio_rustls::client::TlsStream<TcpStream>;

pub(crate) async fn connect(running: &Running, connector: &TlsConnector) -> std::io::Result<Tls> {
    let tcp = TcpStream::connect(running.addr).await?;
    let name = ServerName::try_from("localhost").unwrap();
    connector.connect(name, tcp).await
}

/// `GET /v2/` on an established connection; the whole answer, or the error that ended it.
pub(crate) async fn get_base(mut tls: Tls) -> std::io::Result<String> {
    tls.write_all(b"GET /v2/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await?;
    let mut out = Vec::new();
    match tls.read_to_end(&mut out).await {
        Ok(_) => {}
        // Some stacks close without close_notify after `Connection: close`; the answer is whole anyway.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !out.is_empty() => {}
        Err(e) => return Err(e),
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// The certificate the server presented.
fn served(tls: &Tls) -> CertificateDer<'static> {
    tls.get_ref().1.peer_certificates().unwrap()[0]
        .clone()
        .into_owned()
}

#[tokio::test]
async fn serves_the_api_over_tls() {
    let ca = Ca::new("test CA");
    let leaf = ca.server();
    let files = Files::new(&leaf);
    let (_h, running) = serve_tls(&files.settings()).await;

    let tls = connect(&running, &client(&ca, BOTH, None, &[]))
        .await
        .unwrap();
    assert_eq!(served(&tls), leaf.der);
    let answer = get_base(tls).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.contains("docker-distribution-api-version: registry/2.0"),
        "{answer}"
    );

    // Plain HTTP on the TLS port gets no answer from the API.
    let mut plain = TcpStream::connect(running.addr).await.unwrap();
    plain
        .write_all(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    let _ = plain.read_to_end(&mut out).await;
    assert!(!String::from_utf8_lossy(&out).contains("registry/2.0"));
    running.stop().await;
}

#[tokio::test]
async fn a_renewed_certificate_is_served_without_a_restart() {
    let ca = Ca::new("test CA");
    let (first, second, third) = (ca.server(), ca.server(), ca.server());
    let files = Files::new(&first);
    let (_h, running) = serve_tls(&files.settings()).await;
    let connector = client(&ca, BOTH, None, &[]);

    let tls = connect(&running, &connector).await.unwrap();
    assert_eq!(served(&tls), first.der);

    // Renewed on disk: the very next handshake presents the new certificate.
    files.write(&second);
    let tls = connect(&running, &connector).await.unwrap();
    assert_eq!(served(&tls), second.der);
    assert!(get_base(tls).await.unwrap().starts_with("HTTP/1.1 200"));

    // A broken renewal (garbage certificate; then a key that belongs to another certificate) keeps the
    // previous pair in service...
    replace(&files.cert(), "not a certificate\n");
    let tls = connect(&running, &connector).await.unwrap();
    assert_eq!(served(&tls), second.der);
    replace(&files.cert(), &third.cert_pem);
    let tls = connect(&running, &connector).await.unwrap();
    assert_eq!(
        served(&tls),
        second.der,
        "a mismatched pair must not be served"
    );
    // ...until the files are right again.
    replace(&files.key(), &third.key_pem);
    let tls = connect(&running, &connector).await.unwrap();
    assert_eq!(served(&tls), third.der);
    assert!(get_base(tls).await.unwrap().starts_with("HTTP/1.1 200"));
    running.stop().await;
}

#[tokio::test]
async fn the_minimum_version_refuses_older_clients() {
    let ca = Ca::new("test CA");
    let files = Files::new(&ca.server());
    let tls12_only: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];

    // tls1.3 minimum: a TLS 1.2-only client fails the handshake, a 1.3 client is served.
    let settings = TlsSettings {
        minimum_version: TlsVersion::Tls13,
        ..files.settings()
    };
    let (_h, running) = serve_tls(&settings).await;
    let refused = connect(&running, &client(&ca, tls12_only, None, &[])).await;
    assert!(refused.is_err(), "a TLS 1.2 client was accepted");
    let tls = connect(&running, &client(&ca, BOTH, None, &[]))
        .await
        .unwrap();
    assert_eq!(
        tls.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_3)
    );
    running.stop().await;

    // tls1.2 minimum (the default): the same TLS 1.2 client is served.
    let (_h, running) = serve_tls(&files.settings()).await;
    let tls = connect(&running, &client(&ca, tls12_only, None, &[]))
        .await
        .unwrap();
    assert_eq!(
        tls.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    assert!(get_base(tls).await.unwrap().starts_with("HTTP/1.1 200"));
    running.stop().await;
}

#[tokio::test]
async fn client_certificates_are_required_when_client_cas_are_set() {
    let server_ca = Ca::new("server CA");
    let clients_ca = Ca::new("clients CA");
    let stranger_ca = Ca::new("another CA");
    let files = Files::new(&server_ca.server());
    let ca_file = files.dir.path().join("clients.pem");
    std::fs::write(&ca_file, clients_ca.pem()).unwrap();
    let settings = TlsSettings {
        client_cas: vec![ca_file],
        ..files.settings()
    };
    let (_h, running) = serve_tls(&settings).await;

    // Without a certificate, or with one from a CA not listed: no answer. (With TLS 1.3 the client may
    // finish its side of the handshake before the server's refusal arrives, so look at the request.)
    let no_cert = client(&server_ca, BOTH, None, &[]);
    let stranger = stranger_ca.client("mallory");
    let wrong_ca = client(&server_ca, BOTH, Some(&stranger), &[]);
    for connector in [&no_cert, &wrong_ca] {
        let refused = match connect(&running, connector).await {
            Err(_) => true,
            Ok(tls) => get_base(tls)
                .await
                .map(|answer| !answer.contains("HTTP/1.1 200"))
                .unwrap_or(true),
        };
        assert!(refused, "served a client without an acceptable certificate");
    }

    // With a certificate from the listed CA: served.
    let alice = clients_ca.client("alice");
    let tls = connect(&running, &client(&server_ca, BOTH, Some(&alice), &[]))
        .await
        .unwrap();
    assert!(get_base(tls).await.unwrap().starts_with("HTTP/1.1 200"));
    running.stop().await;
}

#[tokio::test]
async fn http2_is_offered_through_alpn_unless_disabled() {
    let ca = Ca::new("test CA");
    let files = Files::new(&ca.server());
    let both: &[&[u8]] = &[b"h2", b"http/1.1"];

    let (_h, running) = serve_tls(&files.settings()).await;
    let mut tls = connect(&running, &client(&ca, BOTH, None, both))
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    // And HTTP/2 is what is spoken: the preface and an empty SETTINGS frame are answered with the
    // server's own SETTINGS frame (type 4).
    tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .await
        .unwrap();
    let mut head = [0u8; 9];
    tls.read_exact(&mut head).await.unwrap();
    assert_eq!(head[3], 4, "expected a SETTINGS frame, got {head:?}");
    // This raw client would never acknowledge the server's goodbye, so it leaves before the shutdown.
    drop(tls);
    running.stop().await;

    let settings = TlsSettings {
        http2: false,
        ..files.settings()
    };
    let (_h, running) = serve_tls(&settings).await;
    let tls = connect(&running, &client(&ca, BOTH, None, both))
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert!(get_base(tls).await.unwrap().starts_with("HTTP/1.1 200"));
    running.stop().await;
}

#[tokio::test]
async fn a_stalled_handshake_neither_blocks_others_nor_lasts() {
    let ca = Ca::new("test CA");
    let files = Files::new(&ca.server());
    let h = Harness::new();
    let options = ServeSettings {
        tls: Some(TlsAcceptor::new(&files.settings()).unwrap()),
        limits: Limits {
            handshake_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(60),
            header_read_timeout: Duration::from_secs(60),
            ..Limits::default()
        },
        ..ServeSettings::default()
    };
    let running = serve_app(h.app.clone(), options).await;

    // A client that connects and never starts its handshake...
    let mut stalled = TcpStream::connect(running.addr).await.unwrap();
    let opened = Instant::now();
    // ...does not hold up anyone else's handshake and request...
    let tls = connect(&running, &client(&ca, BOTH, None, &[]))
        .await
        .unwrap();
    assert!(get_base(tls).await.unwrap().starts_with("HTTP/1.1 200"));
    assert!(opened.elapsed() < Duration::from_millis(900));
    // ...and is dropped once the handshake timeout has passed.
    let mut buf = [0u8; 16];
    let closed = tokio::time::timeout(Duration::from_secs(10), stalled.read(&mut buf))
        .await
        .expect("a stalled handshake kept its connection");
    assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
    assert!(opened.elapsed() >= Duration::from_millis(900));
    running.stop().await;
}

#[tokio::test]
async fn at_the_cap_stalled_handshakes_make_room_for_a_client() {
    let ca = Ca::new("test CA");
    let files = Files::new(&ca.server());
    let h = Harness::new();
    let options = ServeSettings {
        tls: Some(TlsAcceptor::new(&files.settings()).unwrap()),
        limits: Limits {
            handshake_timeout: Duration::from_secs(60),
            max_connections: 4,
            ..Limits::default()
        },
        ..ServeSettings::default()
    };
    let running = serve_app(h.app.clone(), options).await;

    // Twice the cap in connections that never start their handshake...
    let mut stalled = Vec::new();
    for _ in 0..8 {
        stalled.push(TcpStream::connect(running.addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // ...and a client still gets its handshake and answer at once.
    let started = Instant::now();
    let answer = tokio::time::timeout(Duration::from_secs(2), async {
        let tls = connect(&running, &client(&ca, BOTH, None, &[])).await?;
        get_base(tls).await
    })
    .await
    .expect("a client waited 2 s behind stalled handshakes");
    assert!(answer.unwrap().starts_with("HTTP/1.1 200"));
    let took = started.elapsed();
    assert!(took < Duration::from_secs(1), "answered after {took:?}");
    drop(stalled);
    running.stop().await;
}

#[test]
fn unusable_files_stop_the_start_naming_the_file() {
    let ca = Ca::new("test CA");
    let (a, b) = (ca.server(), ca.server());
    let files = Files::new(&a);

    let missing = TlsSettings {
        key: files.dir.path().join("nope.key"),
        ..files.settings()
    };
    let err = TlsAcceptor::new(&missing).unwrap_err();
    assert!(matches!(err, TlsError::Read { .. }), "{err:?}");
    assert!(err.to_string().contains("nope.key"), "{err}");

    std::fs::write(files.key(), &b.key_pem).unwrap();
    let err = TlsAcceptor::new(&files.settings()).unwrap_err();
    assert!(err.to_string().contains("does not match"), "{err}");

    std::fs::write(files.cert(), "garbage").unwrap();
    let err = TlsAcceptor::new(&files.settings()).unwrap_err();
    assert!(matches!(err, TlsError::NoCertificate(_)), "{err:?}");

    let bad_ca = files.dir.path().join("empty-ca.pem");
    std::fs::write(&bad_ca, "").unwrap();
    files.write(&a);
    let err = TlsAcceptor::new(&TlsSettings {
        client_cas: vec![bad_ca],
        ..files.settings()
    })
    .unwrap_err();
    assert!(err.to_string().contains("empty-ca.pem"), "{err}");
}
