//! berth with `auth.token` behind a token service, driven by skopeo: the whole dance of Docker's token
//! specification with a real client. The token service is a small one of the test's own (plain HTTP on
//! 127.0.0.1, RS256 with the auth crate's test key): its users are alice (`secret`) and bob
//! (`builder`), wrong credentials are refused with 401, and what each caller is granted is the test's
//! [`Grants`] (by default alice every scope she asks for, anyone else pull only, so an anonymous pull
//! works and an anonymous push is refused). It also plays the part the web interface's sign-in needs
//! (`ui/token.rs`): a refresh token for a GET with `offline_token=true`, and the OAuth2 POST
//! (`grant_type=refresh_token`) that exchanges one for a token of the scopes in its form.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::json;

use crate::harness::images::{sample_image, write_image_layout};
use crate::harness::{Options, Server, Tools, repo};

pub(crate) const SERVICE: &str = "berth-e2e";
pub(crate) const ISSUER: &str = "e2e-token-service";
/// How long the token service keeps serving at most: it must stop by itself.
const SERVICE_LIFETIME: Duration = Duration::from_secs(170);
/// The users and their passwords.
const USERS: [(&str, &str); 2] = [("alice", "secret"), ("bob", "builder")];

/// Whether the service grants `action` on repository `repo` to `user` (`None`: anonymous).
pub(crate) type Grants = fn(user: Option<&str>, repo: &str, action: &str) -> bool;

/// The default grants: alice everything, everyone else pull.
fn alice_everything(user: Option<&str>, _repo: &str, action: &str) -> bool {
    user == Some("alice") || action == "pull"
}

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

/// What answering needs.
struct State {
    key: EncodingKey,
    grants: Grants,
    /// Refresh tokens issued: token -> user.
    refresh: Mutex<HashMap<String, String>>,
}

impl TokenService {
    pub(crate) fn start() -> TokenService {
        TokenService::start_with(alice_everything)
    }

    /// A service granting what `grants` says.
    pub(crate) fn start_with(grants: Grants) -> TokenService {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("addr: {e}"));
        listener
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("nonblocking: {e}"));
        let pem = std::fs::read(key_file("rsa-key.pem")).unwrap_or_else(|e| panic!("key: {e}"));
        let key = EncodingKey::from_rsa_pem(&pem).unwrap_or_else(|e| panic!("key: {e}"));
        let state = State {
            key,
            grants,
            refresh: Mutex::new(HashMap::new()),
        };
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::spawn(move || {
            let deadline = Instant::now() + SERVICE_LIFETIME;
            while !flag.load(Ordering::Relaxed) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => answer(stream, &state),
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

/// Answers one `GET /token?service=..&scope=..` (Basic credentials or none) or one OAuth2
/// `POST /token` with a refresh token, with a token for the scopes the caller may have.
fn answer(stream: TcpStream, state: &State) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(&stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut basic: Option<(String, String)> = None;
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) if line.trim().is_empty() => break,
            Ok(_) => {
                let (name, value) = line.split_once(':').unwrap_or(("", ""));
                let (name, value) = (name.to_ascii_lowercase(), value.trim());
                if name == "content-length" {
                    length = value.parse().unwrap_or(0);
                }
                if name == "authorization"
                    && let Some(encoded) = value.strip_prefix("Basic ")
                {
                    let decoded = base64::engine::general_purpose::STANDARD
                        .decode(encoded)
                        .unwrap_or_default();
                    let text = String::from_utf8_lossy(&decoded).into_owned();
                    if let Some((u, p)) = text.split_once(':') {
                        basic = Some((u.to_string(), p.to_string()));
                    }
                }
            }
        }
    }
    let target = request_line.split_whitespace().nth(1).unwrap_or("");
    let form = if request_line.starts_with("POST") {
        let mut body = vec![0; length.min(1 << 20)];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        String::from_utf8_lossy(&body).into_owned()
    } else {
        target
            .split_once('?')
            .map(|(_, q)| q)
            .unwrap_or("")
            .to_string()
    };
    let fields: Vec<(String, String)> = form
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (decode(k), decode(v)))
        .collect();
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };

    let user: Option<String> = if request_line.starts_with("POST") {
        // The OAuth2 refresh: the refresh token says who.
        let known = field("refresh_token")
            .and_then(|t| state.refresh.lock().ok().and_then(|m| m.get(t).cloned()));
        if field("grant_type") != Some("refresh_token") || known.is_none() {
            return respond(&stream, "401 Unauthorized", "{}");
        }
        known
    } else {
        match &basic {
            None => None,
            Some((u, p)) if USERS.contains(&(u.as_str(), p.as_str())) => Some(u.clone()),
            Some(_) => return respond(&stream, "401 Unauthorized", "{}"),
        }
    };
    let mut access = Vec::new();
    for (_, scope) in fields.iter().filter(|(k, _)| k == "scope") {
        for one in scope.split(' ') {
            let mut parts = one.splitn(3, ':');
            let (Some("repository"), Some(name), Some(actions)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let granted: Vec<&str> = actions
                .split(',')
                .filter(|a| (state.grants)(user.as_deref(), name, a))
                .collect();
            access.push(json!({"type": "repository", "name": name, "actions": granted}));
        }
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let claims = json!({
        "iss": ISSUER, "sub": user.clone().unwrap_or_default(), "aud": SERVICE,
        "exp": now + 300, "nbf": now - 5, "iat": now, "access": access,
    });
    let Ok(token) = encode(&Header::new(Algorithm::RS256), &claims, &state.key) else {
        return;
    };
    let mut body = json!({"token": token, "access_token": token, "expires_in": 300});
    if field("offline_token") == Some("true")
        && let Some(user) = &user
    {
        let refresh = format!("refresh-{user}-{now}-{}", std::process::id());
        if let Ok(mut m) = state.refresh.lock() {
            m.insert(refresh.clone(), user.clone());
        }
        body["refresh_token"] = json!(refresh);
    }
    respond(&stream, "200 OK", &body.to_string());
}

fn respond(mut stream: &TcpStream, status: &str, body: &str) {
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// A form or query value, percent-decoded (`+` is a space).
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
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
