//! The web interface in a real browser: headless Chromium driven through chromedriver's WebDriver HTTP
//! API (`scripts/test` installs Debian's `chromium` and `chromium-driver`), against the real binary.
//! The test pushes images whose annotations, labels and env hold HTML and script, then opens the list,
//! searches, opens a repository and an image, and reads what the browser shows: the HTML as text, no
//! script run (the page's title is still its own, and the document holds no `<script>` element).
//!
//! Without Chromium the browser test is skipped, except under CI, where that fails.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::daemons::find_program;
use crate::harness::http::{Api, OCI_CONFIG, OCI_MANIFEST};
use crate::harness::images::Blob;
use crate::harness::{Options, Server};

mod delete;
mod token;
mod users;

/// The WebDriver element key (W3C).
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

#[test]
fn the_interface_in_headless_chromium() {
    let Some(browser) = Browser::start("ui::the_interface_in_headless_chromium") else {
        return;
    };
    let server = Server::start();
    let api = server.api();
    let script = "<script>document.title='pwned'</script>";
    let tag = push(&api, "e2e/ui/web", "v1", "<b>bold</b>", script);
    push(&api, "e2e/ui/other", "v2", "plain", "plain");
    let base = server.base_url();

    // The root redirects to the list, which shows both repositories.
    browser.open(&format!("{base}/"));
    assert!(browser.url().ends_with("/ui/"), "{}", browser.url());
    assert_eq!(browser.title(), "Repositories · berth");
    browser.screenshot("repositories");
    let list = browser.text("#repositories");
    assert!(
        list.contains("e2e/ui/web") && list.contains("e2e/ui/other"),
        "{list}"
    );

    // Search by a part of the name, with the form.
    browser.type_into("#q", "web");
    browser.click("form.search button");
    browser.wait_for(|b| b.url().contains("q=web"));
    let found = browser.text("#repositories");
    assert!(
        found.contains("e2e/ui/web") && !found.contains("e2e/ui/other"),
        "{found}"
    );

    // The repository: its tag and the pull line.
    browser.click("#repositories a");
    browser.wait_for(|b| b.url().ends_with("/ui/repo/e2e/ui/web"));
    let tags = browser.text("#tags");
    assert!(tags.contains("v1"), "{tags}");
    let host = base.trim_start_matches("http://");
    assert!(
        tags.contains(&format!("docker pull {host}/e2e/ui/web:v1")),
        "{tags}"
    );
    browser.screenshot("repository");

    // The image: the pushed HTML shown as text, never run.
    browser.click("#tags a");
    browser.wait_for(|b| b.url().contains(&format!("/ui/image/e2e/ui/web@{tag}")));
    let annotations = browser.text("#annotations");
    assert!(annotations.contains(script), "{annotations}");
    assert!(browser.text("#labels").contains("<b>bold</b>"));
    assert!(browser.text("#env").contains("NOTE=<b>bold</b>"));
    assert!(browser.text("#config").contains("/bin/web --listen"));
    assert!(
        browser
            .text("#layers")
            .contains("application/vnd.oci.image.layer.v1.tar")
    );
    assert_eq!(
        browser.title(),
        format!("e2e/ui/web@{} · berth", &tag[..19])
    );
    assert!(browser.find_all("script").is_empty());
    assert!(browser.find_all("b").is_empty());
    browser.screenshot("image");

    // The registry page, from the header: what is stored (two repositories, nothing reclaimable yet).
    browser.click("header a[href$='/ui/registry']");
    browser.wait_for(|b| b.url().ends_with("/ui/registry"));
    let storage = browser.text("#storage");
    assert!(storage.contains("Repositories\n2"), "{storage:?}");
    assert!(browser.text("#health").contains("All checks pass"));
    browser.screenshot("registry");

    // Deleting a tag: the link, the confirmation page, its form's POST (which the browser marks as
    // berth's own), and the repository's page saying what went.
    browser.open(&format!("{base}/ui/repo/e2e/ui/other"));
    browser.click("#tags a.delete");
    browser.wait_for(|b| b.url().ends_with("/ui/delete/e2e/ui/other:v2"));
    assert!(browser.text("#consequence").contains("e2e/ui/other"));
    assert_eq!(api.get_manifest("e2e/ui/other", "v2").unwrap().status, 200);
    browser.click("#confirm-delete");
    browser.wait_for(|b| b.url().contains("/ui/repo/e2e/ui/other?deleted=v2"));
    assert_eq!(browser.text("#deleted"), "Deleted v2.");
    assert!(
        browser.find_all("#tags").is_empty(),
        "the tag is still listed"
    );
    assert_eq!(api.get_manifest("e2e/ui/other", "v2").unwrap().status, 404);
}

#[test]
fn the_interface_can_be_turned_off() {
    let server = Server::start_with(Options {
        env: vec![("REGISTRY_UI_ENABLED".into(), "false".into())],
        ..Options::default()
    });
    let api = server.api();
    for path in ["/", "/ui/", "/ui/repo/a"] {
        assert_eq!(api.get(path, &[]).unwrap().status, 404, "{path}");
    }
    // And on by default.
    let on = Server::start();
    assert_eq!(on.api().get("/ui/", &[]).unwrap().status, 200);
    assert_eq!(on.api().get("/", &[]).unwrap().status, 302);
}

/// Pushes an image whose config's label and env hold `label` and whose manifest's annotation holds
/// `annotation`; returns the manifest's digest.
pub(crate) fn push(api: &Api, repo: &str, tag: &str, label: &str, annotation: &str) -> String {
    let layer = Blob::new(
        "application/vnd.oci.image.layer.v1.tar",
        format!("layer of {repo}").repeat(64).into_bytes(),
    );
    let config = Blob::json(
        OCI_CONFIG,
        &json!({
            "architecture": "amd64", "os": "linux",
            "config": {
                "Entrypoint": ["/bin/web", "--listen"],
                "Env": [format!("NOTE={label}")],
                "Labels": { "org.example.note": label },
            },
            "rootfs": { "type": "layers", "diff_ids": [layer.digest] },
        }),
    );
    for blob in [&config, &layer] {
        api.push_blob(repo, &blob.bytes, crate::harness::BlobPush::Monolithic)
            .unwrap();
    }
    let manifest = Blob::json(
        OCI_MANIFEST,
        &json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config.descriptor(),
            "layers": [layer.descriptor()],
            "annotations": { "org.example.description": annotation },
        }),
    );
    let r = api
        .put_manifest(repo, tag, OCI_MANIFEST, &manifest.bytes)
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.describe());
    manifest.digest
}

/// chromedriver with one headless Chromium session; both stopped on drop.
struct Browser {
    driver: Child,
    api: Api,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a session, or returns `None` (having said that `test` skipped) when
    /// Chromium or chromedriver is not installed, except under CI, where that fails.
    fn start(test: &str) -> Option<Browser> {
        let (Some(chromium), Some(chromedriver)) =
            (find_program("chromium"), find_program("chromedriver"))
        else {
            assert!(
                std::env::var_os("CI").is_none(),
                "chromium or chromedriver is not installed under CI (scripts/test installs chromium and chromium-driver)"
            );
            eprintln!(
                "SKIPPED {test}: chromium or chromedriver is not installed (scripts/test installs them)"
            );
            return None;
        };
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut cmd = Command::new(&chromedriver);
        cmd.arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        crate::harness::server::die_with_parent(&mut cmd);
        let driver = cmd.spawn().expect("starting chromedriver");
        let api = Api::new(&format!("http://127.0.0.1:{port}"));
        let started = Instant::now();
        while !api
            .get("/status", &[])
            .is_ok_and(|r| r.json()["value"]["ready"] == true)
        {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver not ready"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = tempfile::tempdir().unwrap();
        let mut browser = Browser {
            driver,
            api,
            session: String::new(),
            _profile: profile,
        };
        let session = browser.call(
            "POST",
            "/session",
            Some(json!({ "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": chromium.to_string_lossy(),
                    "args": chrome_args(browser._profile.path()),
                },
            } } })),
        );
        browser.session = session["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {session}"))
            .to_string();
        Some(browser)
    }

    /// A WebDriver command: its `value`, or a panic naming the command and the driver's error.
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let bytes = body.map(|b| b.to_string().into_bytes());
        let r = self
            .api
            .request(
                method,
                path,
                &[("content-type", "application/json")],
                bytes.as_deref(),
            )
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let value = r.json()["value"].clone();
        assert_eq!(r.status, 200, "{method} {path}: {value}");
        value
    }

    fn session_call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    /// Saves what the browser shows as `<dir>/<name>.png` when `BERTH_UI_SCREENSHOTS` names a
    /// directory: how the README's pictures are made (`BERTH_UI_SCREENSHOTS=$PWD/docs/screenshots
    /// cargo nextest run -p berth the_interface_in_headless_chromium`).
    fn screenshot(&self, name: &str) {
        use base64::Engine as _;
        let Some(dir) = std::env::var_os("BERTH_UI_SCREENSHOTS") else {
            return;
        };
        let png = self.session_call("GET", "/screenshot", None);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap_or_default())
            .unwrap_or_else(|e| panic!("the screenshot is not base64: {e}"));
        assert!(bytes.starts_with(b"\x89PNG"), "not a PNG");
        let path = Path::new(&dir).join(format!("{name}.png"));
        std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }

    fn open(&self, url: &str) {
        self.session_call("POST", "/url", Some(json!({ "url": url })));
    }

    fn url(&self) -> String {
        self.session_call("GET", "/url", None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn title(&self) -> String {
        self.session_call("GET", "/title", None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn find(&self, css: &str) -> String {
        let found = self.session_call(
            "POST",
            "/element",
            Some(json!({ "using": "css selector", "value": css })),
        );
        found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| {
                let source = self.session_call("GET", "/source", None);
                panic!("no {css} at {}: {found}\n{source}", self.url())
            })
            .to_string()
    }

    fn find_all(&self, css: &str) -> Vec<Value> {
        self.session_call(
            "POST",
            "/elements",
            Some(json!({ "using": "css selector", "value": css })),
        )
        .as_array()
        .cloned()
        .unwrap_or_default()
    }

    /// The rendered text of the first element `css` selects.
    fn text(&self, css: &str) -> String {
        let id = self.find(css);
        self.session_call("GET", &format!("/element/{id}/text"), None)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    fn click(&self, css: &str) {
        let id = self.find(css);
        self.session_call("POST", &format!("/element/{id}/click"), Some(json!({})));
    }

    fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css);
        self.session_call(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        );
    }

    /// Waits (5 s at most) until `done` holds: a click's navigation completes on the browser's time.
    fn wait_for(&self, done: impl Fn(&Browser) -> bool) {
        let started = Instant::now();
        while !done(self) {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "the browser is still at {}",
                self.url()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Headless, as root in a container (no sandbox), with a profile of the test's own and nothing that
/// reaches the network by itself.
fn chrome_args(profile: &Path) -> Vec<String> {
    [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        // A laptop's window: the README's screenshots are taken at this size.
        "--window-size=1280,800",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([format!("--user-data-dir={}", profile.display())])
    .collect()
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self
                .api
                .request("DELETE", &format!("/session/{}", self.session), &[], None);
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
