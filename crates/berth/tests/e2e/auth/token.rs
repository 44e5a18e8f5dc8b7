//! berth with `auth.token` behind a token service, driven by skopeo: the whole dance of Docker's token
//! specification with a real client. The token service is a small one of the test's own (plain HTTP on
//! 127.0.0.1, RS256 with the auth crate's test key): alice's Basic credentials get every scope she asks
//! for, anyone else gets pull only, so an anonymous pull works and an anonymous push is refused.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::json;

use crate::harness::images::{sample_image, write_image_layout};
use crate::harness::{Options, Server, Tools, repo};

pub(crate) const SERVICE: &str = "berth-e2e";
pub(crate) const ISSUER: &str = "e2e-token-service";
/// How long the token service keeps serving at most: it must stop by itself.
const SERVICE_LIFETIME: Duration = Duration::from_secs(170);

fn key_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../auth/tests/data")
        .join(name)
}

/// The token service: serves until dropped (or its lifetime ends), one connection at a time.
pub(crate) struct TokenService {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl TokenService {
    pub(crate) fn start() -> TokenService {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("addr: {e}"));
        listener
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("nonblocking: {e}"));
        let pem = std::fs::read(key_file("rsa-key.pem")).unwrap_or_else(|e| panic!("key: {e}"));
        let key = EncodingKey::from_rsa_pem(&pem).unwrap_or_else(|e| panic!("key: {e}"));
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::spawn(move || {
            let deadline = Instant::now() + SERVICE_LIFETIME;
            while !flag.load(Ordering::Relaxed) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => answer(stream, &key),
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        TokenService { addr, stop }
    }

    pub(crate) fn realm(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    /// berth's configuration with this service's tokens (`auth.token`), to serve with.
    pub(crate) fn config_yaml(&self) -> String {
        format!(
            "auth:\n  token:\n    realm: {}\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
            self.realm(),
            key_file("rsa-cert.pem").display()
        )
    }
}

impl Drop for TokenService {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Answers one `GET /token?service=..&scope=..` with a token for the scopes the caller may have.
fn answer(stream: TcpStream, key: &EncodingKey) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(&stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut alice = false;
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) if line.trim().is_empty() => break,
            Ok(_) => {
                let lower = line.to_ascii_lowercase();
                // base64("alice:secret")
                if lower.starts_with("authorization:") && line.contains("YWxpY2U6c2VjcmV0") {
                    alice = true;
                }
            }
        }
    }
    let target = request_line.split_whitespace().nth(1).unwrap_or("");
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
    let mut access = Vec::new();
    for pair in query.split('&') {
        let Some(("scope", raw)) = pair.split_once('=') else {
            continue;
        };
        let scope = raw
            .replace("%3A", ":")
            .replace("%3a", ":")
            .replace("%2F", "/")
            .replace("%2f", "/")
            .replace("%2C", ",")
            .replace("%2c", ",")
            .replace('+', " ");
        for one in scope.split(' ') {
            let mut parts = one.splitn(3, ':');
            let (Some("repository"), Some(name), Some(actions)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let granted: Vec<&str> = actions
                .split(',')
                .filter(|a| alice || *a == "pull")
                .collect();
            access.push(json!({"type": "repository", "name": name, "actions": granted}));
        }
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let claims = json!({
        "iss": ISSUER, "sub": if alice { "alice" } else { "" }, "aud": SERVICE,
        "exp": now + 300, "nbf": now - 5, "iat": now, "access": access,
    });
    let Ok(token) = encode(&Header::new(Algorithm::RS256), &claims, key) else {
        return;
    };
    let body = json!({"token": token, "access_token": token, "expires_in": 300}).to_string();
    let mut stream = &stream;
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

#[test]
fn skopeo_gets_tokens_from_the_token_service() {
    let service = TokenService::start();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temporary directory: {e}"));
    let config = dir.path().join("config.yml");
    std::fs::write(&config, service.config_yaml()).unwrap_or_else(|e| panic!("config: {e}"));
    let server = Server::start_with(Options {
        config: Some(config),
        ..Options::default()
    });

    // The challenge names the realm and service, and the scope of the request.
    let r = server
        .api()
        .get(&format!("/v2/{}/manifests/v1", repo("auth-token")), &[])
        .unwrap_or_else(|e| panic!("GET: {e}"));
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("WWW-Authenticate"),
        Some(
            format!(
                "Bearer realm=\"{}\",service=\"{SERVICE}\",scope=\"repository:{}:pull\"",
                service.realm(),
                repo("auth-token")
            )
            .as_str()
        )
    );

    let tools = Tools::new();
    let img = sample_image("auth-token");
    let src = tools.scratch("src");
    write_image_layout(&src, "v1", &img);
    let remote = format!("docker://{}/{}:v1", server.host(), repo("auth-token"));
    let source = format!("oci:{}:v1", src.display());

    // Anonymous: the token service grants pull only, so the push is refused.
    let anon = tools.try_skopeo(&["copy", "--dest-tls-verify=false", &source, &remote]);
    assert!(
        !anon.success,
        "anonymous push went through: {}",
        anon.describe()
    );

    tools.skopeo(&[
        "copy",
        "--dest-tls-verify=false",
        "--dest-creds",
        "alice:secret",
        &source,
        &remote,
    ]);
    let dst = tools.scratch("dst");
    tools.skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--preserve-digests",
        &remote,
        &format!("oci:{}:v1", dst.display()),
    ]);
    let index = std::fs::read_to_string(dst.join("index.json")).unwrap_or_default();
    assert!(index.contains(&img.manifest.digest), "{index}");
}
