//! berth over TLS with real clients: curl with `--cacert`, skopeo and podman with `--cert-dir`, a
//! certificate renewed on disk while the server runs, and client certificates (mTLS). The certificates
//! are made here (rcgen): a CA, a server certificate for 127.0.0.1 and localhost, client certificates.
//! The configuration is a registry:2 file with the `http.tls` keys as registry:2 spells them.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use crate::harness::clients::version;
use crate::harness::images::{layout_ref, sample_image, write_image_layout};
use crate::harness::{Options, Server, Tools, repo};

/// A certificate authority of one test.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
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

    /// (certificate PEM, key PEM) for `names`, for a server or a client.
    fn issue(&self, names: &[&str], usage: ExtendedKeyUsagePurpose) -> (String, String) {
        let mut params =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(DnType::CommonName, names[0]);
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// Writes the CA certificate to `path`.
    fn write(&self, path: &Path) {
        write(path, &self.issuer.pem());
    }
}

fn write(path: &Path, text: &str) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    // Through a rename, so the server never reads a half-written file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap_or_else(|e| panic!("{}: {e}", tmp.display()));
    std::fs::rename(&tmp, path).unwrap();
}

/// The server's files and the clients' trust, in one test's scratch space.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn new(tools: &Tools) -> Pki {
        Pki {
            dir: tools.scratch("pki"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn str(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    /// Issues (or renews) the server's certificate from `ca`, in place.
    fn server_cert(&self, ca: &Ca) {
        let (cert, key) = ca.issue(
            &["127.0.0.1", "localhost"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        write(&self.path("server.crt"), &cert);
        write(&self.path("server.key"), &key);
    }

    /// A registry:2 configuration serving TLS with these files.
    fn config(&self, client_cas: Option<&str>) -> String {
        let mut yaml = format!(
            "version: 0.1\nhttp:\n  tls:\n    certificate: {}\n    key: {}\n    minimumtls: tls1.2\n",
            self.str("server.crt"),
            self.str("server.key")
        );
        if let Some(cas) = client_cas {
            yaml.push_str(&format!("    clientcas:\n      - {}\n", self.str(cas)));
        }
        yaml
    }

    /// A `--cert-dir` for containers tools: the CA as `ca.crt`, and optionally a client pair.
    fn cert_dir(&self, name: &str, ca: &Ca, client: Option<(String, String)>) -> String {
        let dir = self.path(name);
        ca.write(&dir.join("ca.crt"));
        if let Some((cert, key)) = client {
            write(&dir.join("client.cert"), &cert);
            write(&dir.join("client.key"), &key);
        }
        dir.display().to_string()
    }
}

fn tls_server(pki: &Pki, client_cas: Option<&str>) -> Server {
    let config = pki.path("config.yml");
    write(&config, &pki.config(client_cas));
    let server = Server::start_with(Options {
        config: Some(config),
        ..Options::default()
    });
    assert!(
        server
            .address_line()
            .starts_with("berth listening on https://"),
        "{}",
        server.address_line()
    );
    server
}

/// curl of `/v2/` with `args` before the URL: `(exit code, "status http-version")`.
fn curl_base(tools: &Tools, server: &Server, args: &[&str]) -> (Option<i32>, String) {
    let url = format!("{}/v2/", server.base_url());
    let mut all: Vec<&str> = vec!["-o", "/dev/null", "-w", "%{http_code} %{http_version}"];
    all.extend_from_slice(args);
    all.push(&url);
    let out = tools.try_curl(&all);
    (out.code, out.stdout.trim().to_string())
}

#[test]
fn curl_trusts_the_configured_ca_and_sees_renewals_without_a_restart() {
    let tools = Tools::new();
    let pki = Pki::new(&tools);
    let (first, second) = (Ca::new("first CA"), Ca::new("second CA"));
    first.write(&pki.path("first.pem"));
    second.write(&pki.path("second.pem"));
    pki.server_cert(&first);
    let server = tls_server(&pki, None);

    // With the CA: served, over HTTP/2 (ALPN). Without it: curl refuses the certificate (exit 60).
    let (code, out) = curl_base(&tools, &server, &["--cacert", &pki.str("first.pem")]);
    assert_eq!((code, out.as_str()), (Some(0), "200 2"));
    let (code, _) = curl_base(&tools, &server, &[]);
    assert_eq!(
        code,
        Some(60),
        "curl accepted a certificate from an unknown CA"
    );
    // HTTP/1.1 when the client asks for it.
    let (_, out) = curl_base(
        &tools,
        &server,
        &["--http1.1", "--cacert", &pki.str("first.pem")],
    );
    assert_eq!(out, "200 1.1");

    // Renewed on disk by another CA, same process: the next connection presents the new certificate.
    pki.server_cert(&second);
    let (code, out) = curl_base(&tools, &server, &["--cacert", &pki.str("second.pem")]);
    assert_eq!((code, out.as_str()), (Some(0), "200 2"));
    let (code, _) = curl_base(&tools, &server, &["--cacert", &pki.str("first.pem")]);
    assert_eq!(code, Some(60), "the old certificate is still served");
}

#[test]
fn client_certificates_are_required_with_clientcas() {
    let tools = Tools::new();
    let pki = Pki::new(&tools);
    let (server_ca, clients_ca) = (Ca::new("server CA"), Ca::new("clients CA"));
    server_ca.write(&pki.path("server-ca.pem"));
    clients_ca.write(&pki.path("clients.pem"));
    pki.server_cert(&server_ca);
    let (cert, key) = clients_ca.issue(&["alice"], ExtendedKeyUsagePurpose::ClientAuth);
    write(&pki.path("alice.crt"), &cert);
    write(&pki.path("alice.key"), &key);
    let server = tls_server(&pki, Some("clients.pem"));

    let trust = pki.str("server-ca.pem");
    let (code, out) = curl_base(&tools, &server, &["--cacert", &trust]);
    assert_ne!(code, Some(0), "served without a client certificate: {out}");
    let (code, out) = curl_base(
        &tools,
        &server,
        &[
            "--cacert",
            &trust,
            "--cert",
            &pki.str("alice.crt"),
            "--key",
            &pki.str("alice.key"),
        ],
    );
    assert_eq!((code, out.as_str()), (Some(0), "200 2"));
}

#[test]
fn tls_clients_skopeo_and_podman_push_and_pull_with_cert_dirs() {
    eprintln!("{}\n{}", version("skopeo"), version("podman"));
    let tools = Tools::new();
    let pki = Pki::new(&tools);
    let (server_ca, clients_ca) = (Ca::new("server CA"), Ca::new("clients CA"));
    clients_ca.write(&pki.path("clients.pem"));
    pki.server_cert(&server_ca);
    // mTLS on: the tools must present the client certificate from their cert dir as well.
    let server = tls_server(&pki, Some("clients.pem"));
    let client = clients_ca.issue(&["ci"], ExtendedKeyUsagePurpose::ClientAuth);
    let certs = pki.cert_dir("certs.d", &server_ca, Some(client));
    let trust_only = pki.cert_dir("trust-only", &server_ca, None);

    let img = sample_image("tls-clients");
    let src = tools.scratch("src");
    write_image_layout(&src, "v1", &img);
    let repo = repo("tls-clients");
    let remote = format!("docker://{}/{repo}:v1", server.host());
    let layout = format!("oci:{}:v1", src.display());

    // Certificate verification stays on; without the client certificate the push is refused.
    let refused = tools.try_skopeo(&["copy", "--dest-cert-dir", &trust_only, &layout, &remote]);
    assert!(!refused.success, "pushed without a client certificate");
    tools.skopeo(&[
        "copy",
        "--preserve-digests",
        "--dest-cert-dir",
        &certs,
        &layout,
        &remote,
    ]);
    let inspect = tools.skopeo(&["inspect", "--raw", "--cert-dir", &certs, &remote]);
    assert_eq!(inspect.stdout.as_bytes(), img.manifest.bytes.as_slice());

    // podman pulls it back and pushes it under another name, trusting the same directory.
    let reference = format!("{}/{repo}:v1", server.host());
    tools.podman(&["pull", "--cert-dir", &certs, &reference]);
    let copy = format!("{}/{repo}-copy:v1", server.host());
    tools.podman(&["tag", &reference, &copy]);
    tools.podman(&["push", "--cert-dir", &certs, &copy]);
    let out = tools.scratch("out");
    tools.skopeo(&[
        "copy",
        "--src-cert-dir",
        &certs,
        &format!("docker://{copy}"),
        &format!("oci:{}:v1", out.display()),
    ]);
    assert!(layout_ref(&out, "v1")["digest"].is_string());
}
