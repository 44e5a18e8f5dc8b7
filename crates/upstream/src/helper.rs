//! Upstream credentials from a Docker credential helper (registry:3's `proxy.exec`): the program is run
//! as `<command> get` with the host the credentials are for on its standard input, and answers
//! `{"ServerURL": .., "Username": .., "Secret": ..}` on its standard output, as `docker login`'s helpers
//! (`docker-credential-ecr-login`, `-gcr`, `-pass`, ...) do.
//!
//! What it answered is reused as registry:3 reuses it: for `lifetime` when one is set, for every request
//! with a lifetime of 0 (the helper runs each time), forever without one (it runs once). A helper that
//! fails (cannot be started, exits non-zero, answers something else, takes longer than [`RUN_TIMEOUT`])
//! gives no credentials: the request goes on anonymously, as in registry:3, and the failure is logged
//! (without what the helper printed, which may hold a secret); the next request runs it again.
//!
//! One helper run at a time (an async mutex around the cache), so a cold cache pulling many layers
//! starts the program once.

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::settings::{CredentialHelper, Credentials};

/// The longest a helper may run: one that hangs must not hold every upstream request.
pub(crate) const RUN_TIMEOUT: Duration = Duration::from_secs(30);
/// More output than this is not a credentials answer.
const MAX_OUTPUT: usize = 64 * 1024;

/// A helper and what it last answered.
pub(crate) struct HelperCredentials {
    helper: CredentialHelper,
    /// The last answer and until when it may be reused (`None`: forever).
    cached: tokio::sync::Mutex<Option<(Credentials, Option<Instant>)>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HelperAnswer {
    username: String,
    secret: String,
}

impl HelperCredentials {
    pub(crate) fn new(helper: CredentialHelper) -> HelperCredentials {
        HelperCredentials {
            helper,
            cached: tokio::sync::Mutex::new(None),
        }
    }

    /// Credentials for `host`: the reusable answer, else the helper's; `None` when it fails.
    pub(crate) async fn get(&self, host: &str) -> Option<Credentials> {
        let mut cached = self.cached.lock().await;
        if let Some((credentials, until)) = &*cached
            && until.is_none_or(|t| Instant::now() < t)
        {
            return Some(credentials.clone());
        }
        match run(&self.helper.command, host).await {
            Ok(credentials) => {
                let until = self.helper.lifetime.map(|l| Instant::now() + l);
                *cached = Some((credentials.clone(), until));
                Some(credentials)
            }
            Err(reason) => {
                tracing::error!(
                    command = %self.helper.command,
                    host,
                    "the credential helper (proxy.exec) gave no credentials: {reason}; \
                     the upstream is asked anonymously"
                );
                None
            }
        }
    }
}

/// Runs `command get` with `host` on its input; its answer, or why there is none.
async fn run(command: &str, host: &str) -> Result<Credentials, String> {
    let mut child = Command::new(command)
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run it: {e}"))?;
    let mut stdin = child.stdin.take().ok_or("no standard input")?;
    let output = tokio::time::timeout(RUN_TIMEOUT, async move {
        // A helper that exits without reading its input is not an error of ours: its answer decides.
        let _ = stdin.write_all(host.as_bytes()).await;
        drop(stdin);
        child.wait_with_output().await
    })
    .await
    .map_err(|_| format!("it ran past {} s and was killed", RUN_TIMEOUT.as_secs()))?
    .map_err(|e| format!("waiting for it: {e}"))?;
    if !output.status.success() {
        // Its output may be an error message, or may hold a secret: only the status is told.
        return Err(format!("it exited with {}", output.status));
    }
    if output.stdout.len() > MAX_OUTPUT {
        return Err("it printed more than a credentials answer".into());
    }
    let answer: HelperAnswer = serde_json::from_slice(&output.stdout)
        .map_err(|_| "its answer is not the JSON of a credential helper".to_string())?;
    Ok(Credentials {
        username: answer.username,
        password: answer.secret,
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    use super::*;

    /// A helper script in `dir` that appends its arguments and input to `log` and runs `body`.
    fn script(dir: &Path, body: &str) -> String {
        let path = dir.join("docker-credential-test");
        let log = dir.join("log");
        let text = format!(
            "#!/bin/sh\nread host\necho \"$1 $host\" >> {}\n{body}\n",
            log.display()
        );
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path.display().to_string()
    }

    fn runs(dir: &Path) -> Vec<String> {
        std::fs::read_to_string(dir.join("log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    const ANSWER: &str =
        r#"echo '{"ServerURL":"https://r.example","Username":"robot","Secret":"s3cret"}'"#;

    #[tokio::test]
    async fn reads_the_helpers_answer_and_reuses_it_forever_without_a_lifetime() {
        let dir = tempfile::tempdir().unwrap();
        let helper = HelperCredentials::new(CredentialHelper {
            command: script(dir.path(), ANSWER),
            lifetime: None,
        });
        for _ in 0..3 {
            let c = helper.get("r.example").await.unwrap();
            assert_eq!(
                (c.username.as_str(), c.password.as_str()),
                ("robot", "s3cret")
            );
        }
        assert_eq!(runs(dir.path()), ["get r.example"]);
    }

    #[tokio::test]
    async fn a_lifetime_of_zero_runs_it_every_time_and_a_lifetime_reuses_within_it() {
        let dir = tempfile::tempdir().unwrap();
        let every = HelperCredentials::new(CredentialHelper {
            command: script(dir.path(), ANSWER),
            lifetime: Some(Duration::ZERO),
        });
        every.get("a").await.unwrap();
        every.get("b").await.unwrap();
        assert_eq!(runs(dir.path()), ["get a", "get b"]);

        let dir = tempfile::tempdir().unwrap();
        let hourly = HelperCredentials::new(CredentialHelper {
            command: script(dir.path(), ANSWER),
            lifetime: Some(Duration::from_secs(3600)),
        });
        hourly.get("a").await.unwrap();
        hourly.get("a").await.unwrap();
        assert_eq!(runs(dir.path()), ["get a"]);
        // Past the lifetime it runs again.
        hourly.cached.lock().await.as_mut().unwrap().1 = Some(Instant::now());
        hourly.get("a").await.unwrap();
        assert_eq!(runs(dir.path()), ["get a", "get a"]);
    }

    #[tokio::test]
    async fn a_failing_helper_gives_nothing_and_is_asked_again() {
        let dir = tempfile::tempdir().unwrap();
        let failing = HelperCredentials::new(CredentialHelper {
            command: script(dir.path(), "echo 'credentials not found'; exit 1"),
            lifetime: None,
        });
        assert!(failing.get("a").await.is_none());
        assert!(failing.get("a").await.is_none());
        assert_eq!(runs(dir.path()).len(), 2);

        let garbled = HelperCredentials::new(CredentialHelper {
            command: script(dir.path(), "echo not json"),
            lifetime: None,
        });
        assert!(garbled.get("a").await.is_none());
        let missing = HelperCredentials::new(CredentialHelper {
            command: dir.path().join("nope").display().to_string(),
            lifetime: None,
        });
        assert!(missing.get("a").await.is_none());
    }
}
