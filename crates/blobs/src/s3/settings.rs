//! What the S3 backend needs to know, already resolved: endpoint, addressing style, credentials,
//! layout and write options. The configuration file's `storage.s3` is read by the `berth` binary; this
//! module fills the gaps from the standard AWS environment variables and checks what must hold.

use std::time::Duration;

use super::parts::MAX_PART;

/// S3's smallest part (for all but the last), registry:2's minimum `chunksize`.
pub const MIN_CHUNK_SIZE: u64 = 5 * 1024 * 1024;
/// registry:2's default `chunksize`.
pub const DEFAULT_CHUNK_SIZE: u64 = 10 * 1024 * 1024;

/// Settings of an [`S3BlobStore`](super::S3BlobStore).
#[derive(Clone)]
pub struct S3Settings {
    /// `regionendpoint`: the endpoint's URL (`http://127.0.0.1:3900`) or host (`minio:9000`, then
    /// `secure` picks the scheme). `None` for AWS itself (`s3.<region>.amazonaws.com`).
    pub endpoint: Option<String>,
    pub region: String,
    pub bucket: String,
    /// Key prefix of everything stored (`rootdirectory`), without leading or trailing `/`.
    pub root: String,
    /// `forcepathstyle`: `https://host/bucket/key` rather than `https://bucket.host/key`.
    pub path_style: bool,
    /// `secure`: HTTPS when the endpoint names no scheme.
    pub secure: bool,
    /// `chunksize`: the size of the first 10,000 - 5,000 parts (see `s3/parts.rs`).
    pub chunk_size: u64,
    pub access_key: String,
    pub secret_key: String,
    /// `sessiontoken`: temporary credentials' token.
    pub session_token: Option<String>,
    /// `encrypt` / `keyid`: server-side encryption (SSE-S3, or SSE-KMS with the key).
    pub encrypt: bool,
    pub kms_key_id: Option<String>,
    /// `storageclass` for new objects; `None` leaves the bucket's default.
    pub storage_class: Option<String>,
    /// How long one request may take to produce its response head (plus the time to send its body at
    /// 1 MiB/s, for part uploads).
    pub request_timeout: Duration,
    /// Attempts per request on transient failures (connection refused, 500, 503 SlowDown).
    pub attempts: u32,
}

/// Never prints the secret key or the session token.
impl std::fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Settings")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("bucket", &self.bucket)
            .field("root", &self.root)
            .field("path_style", &self.path_style)
            .field("secure", &self.secure)
            .field("chunk_size", &self.chunk_size)
            .field("access_key", &self.access_key)
            .finish_non_exhaustive()
    }
}

/// Why settings cannot be used, naming the registry:2 key (or variable) to fix.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingsError {
    #[error("{0}: not set, and neither is the AWS environment variable for it")]
    Missing(&'static str),
    #[error("{key}: {reason}")]
    Invalid { key: &'static str, reason: String },
}

/// registry:2's `storage.s3` as configured, each key named once, here: `None` where the file and
/// `REGISTRY_STORAGE_S3_*` said nothing, so that the AWS environment can fill in. The `berth` binary's
/// configuration reader fills it and prints it; [`S3Settings::resolve`] completes it.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Config {
    /// `accesskey`
    pub access_key: Option<String>,
    /// `secretkey`
    pub secret_key: Option<String>,
    /// `sessiontoken`: temporary credentials' token.
    pub session_token: Option<String>,
    /// `region`
    pub region: Option<String>,
    /// `regionendpoint`
    pub region_endpoint: Option<String>,
    /// `bucket`
    pub bucket: String,
    /// `rootdirectory`: key prefix of everything stored in the bucket.
    pub root_directory: Option<String>,
    /// `forcepathstyle`
    pub force_path_style: bool,
    /// `secure`: HTTPS to the endpoint (registry:2's default).
    pub secure: bool,
    /// `chunksize`: multipart part size in bytes (at least [`MIN_CHUNK_SIZE`]).
    pub chunk_size: u64,
    /// `encrypt`: server-side encryption of every object (SSE-S3, or SSE-KMS with `keyid`).
    pub encrypt: bool,
    /// `keyid`
    pub kms_key_id: Option<String>,
    /// `storageclass`; `None` for the bucket's default (registry:2's `NONE`).
    pub storage_class: Option<String>,
}

impl Default for S3Config {
    /// registry:2's defaults: HTTPS, virtual-host addressing, 10 MiB parts.
    fn default() -> Self {
        S3Config {
            access_key: None,
            secret_key: None,
            session_token: None,
            region: None,
            region_endpoint: None,
            bucket: String::new(),
            root_directory: None,
            force_path_style: false,
            secure: true,
            chunk_size: DEFAULT_CHUNK_SIZE,
            encrypt: false,
            kms_key_id: None,
            storage_class: None,
        }
    }
}

/// Never prints the secret key or the session token.
impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Config")
            .field("access_key", &self.access_key)
            .field("region", &self.region)
            .field("region_endpoint", &self.region_endpoint)
            .field("bucket", &self.bucket)
            .field("root_directory", &self.root_directory)
            .field("force_path_style", &self.force_path_style)
            .field("secure", &self.secure)
            .field("chunk_size", &self.chunk_size)
            .finish_non_exhaustive()
    }
}

impl S3Settings {
    /// Resolves `options`, taking what they leave unset from the AWS variables `env` returns:
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION` (or
    /// `AWS_DEFAULT_REGION`), `AWS_ENDPOINT_URL_S3` (or `AWS_ENDPOINT_URL`).
    pub fn resolve(
        options: S3Config,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<S3Settings, SettingsError> {
        let env = |name: &str| env(name).filter(|v| !v.is_empty());
        let endpoint = options
            .region_endpoint
            .or_else(|| env("AWS_ENDPOINT_URL_S3"))
            .or_else(|| env("AWS_ENDPOINT_URL"));
        let region = options
            .region
            .or_else(|| env("AWS_REGION"))
            .or_else(|| env("AWS_DEFAULT_REGION"));
        // Other S3 engines mostly ignore the region but still sign with one: AWS's default then.
        let region = match (region, &endpoint) {
            (Some(r), _) => r,
            (None, Some(_)) => "us-east-1".to_string(),
            (None, None) => return Err(SettingsError::Missing("storage.s3.region (AWS_REGION)")),
        };
        let access_key = options
            .access_key
            .or_else(|| env("AWS_ACCESS_KEY_ID"))
            .ok_or(SettingsError::Missing(
                "storage.s3.accesskey (AWS_ACCESS_KEY_ID)",
            ))?;
        let secret_key = options
            .secret_key
            .or_else(|| env("AWS_SECRET_ACCESS_KEY"))
            .ok_or(SettingsError::Missing(
                "storage.s3.secretkey (AWS_SECRET_ACCESS_KEY)",
            ))?;
        let session_token = options.session_token.or_else(|| env("AWS_SESSION_TOKEN"));
        if options.bucket.is_empty() {
            return Err(SettingsError::Missing("storage.s3.bucket"));
        }
        if !(MIN_CHUNK_SIZE..=MAX_PART).contains(&options.chunk_size) {
            return Err(SettingsError::Invalid {
                key: "storage.s3.chunksize",
                reason: format!(
                    "{} is outside S3's part sizes, {MIN_CHUNK_SIZE} to {MAX_PART} bytes",
                    options.chunk_size
                ),
            });
        }
        let root = options
            .root_directory
            .unwrap_or_default()
            .trim_matches('/')
            .to_string();
        Ok(S3Settings {
            endpoint,
            region,
            bucket: options.bucket,
            root,
            path_style: options.force_path_style,
            secure: options.secure,
            chunk_size: options.chunk_size,
            access_key,
            secret_key,
            session_token,
            encrypt: options.encrypt,
            kms_key_id: options.kms_key_id,
            storage_class: options.storage_class,
            request_timeout: Duration::from_secs(60),
            attempts: 5,
        })
    }

    /// Path-style settings for an S3-compatible test server (Garage, MinIO) at `endpoint`.
    pub fn for_test_server(
        endpoint: &str,
        region: &str,
        bucket: &str,
        access_key: &str,
        secret_key: &str,
        root: &str,
    ) -> S3Settings {
        S3Settings {
            endpoint: Some(endpoint.to_string()),
            region: region.to_string(),
            bucket: bucket.to_string(),
            root: root.trim_matches('/').to_string(),
            path_style: true,
            secure: endpoint.starts_with("https://"),
            chunk_size: MIN_CHUNK_SIZE,
            access_key: access_key.to_string(),
            secret_key: secret_key.to_string(),
            session_token: None,
            encrypt: false,
            kms_key_id: None,
            storage_class: None,
            request_timeout: Duration::from_secs(60),
            attempts: 5,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> S3Config {
        S3Config {
            bucket: "b".into(),
            secure: true,
            chunk_size: DEFAULT_CHUNK_SIZE,
            ..S3Config::default()
        }
    }

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn the_environment_fills_what_the_file_leaves_out() {
        let s = S3Settings::resolve(
            options(),
            env(&[
                ("AWS_ACCESS_KEY_ID", "AK"),
                ("AWS_SECRET_ACCESS_KEY", "SK"),
                ("AWS_SESSION_TOKEN", "TOK"),
                ("AWS_DEFAULT_REGION", "eu-west-3"),
                ("AWS_ENDPOINT_URL", "http://generic"),
                ("AWS_ENDPOINT_URL_S3", "http://s3-specific"),
            ]),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((s.access_key.as_str(), s.secret_key.as_str()), ("AK", "SK"));
        assert_eq!(s.session_token.as_deref(), Some("TOK"));
        assert_eq!(s.region, "eu-west-3");
        assert_eq!(s.endpoint.as_deref(), Some("http://s3-specific"));
        // The Debug form never shows the secret.
        assert!(!format!("{s:?}").contains("SK"));
    }

    #[test]
    fn the_file_wins_over_the_environment() {
        let mut o = options();
        o.access_key = Some("file-ak".into());
        o.secret_key = Some("file-sk".into());
        o.region = Some("garage".into());
        o.root_directory = Some("/some/root/".into());
        let s = S3Settings::resolve(
            o,
            env(&[
                ("AWS_ACCESS_KEY_ID", "AK"),
                ("AWS_REGION", "x"),
                ("AWS_SECRET_ACCESS_KEY", "SK"),
            ]),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (s.access_key.as_str(), s.region.as_str()),
            ("file-ak", "garage")
        );
        assert_eq!(s.root, "some/root");
        assert_eq!(s.endpoint, None);
    }

    #[test]
    fn missing_and_invalid_settings_name_their_key() {
        let creds = env(&[("AWS_ACCESS_KEY_ID", "AK"), ("AWS_SECRET_ACCESS_KEY", "SK")]);
        let err = S3Settings::resolve(options(), &creds).err();
        assert_eq!(
            err,
            Some(SettingsError::Missing("storage.s3.region (AWS_REGION)"))
        );
        // With an endpoint of its own, an engine gets AWS's default region to sign with.
        let mut o = options();
        o.region_endpoint = Some("http://127.0.0.1:3900".into());
        assert_eq!(
            S3Settings::resolve(o, &creds)
                .map(|s| s.region)
                .ok()
                .as_deref(),
            Some("us-east-1")
        );
        let mut o = options();
        o.region = Some("r".into());
        let err = S3Settings::resolve(o.clone(), env(&[("AWS_ACCESS_KEY_ID", "AK")])).err();
        assert_eq!(
            err,
            Some(SettingsError::Missing(
                "storage.s3.secretkey (AWS_SECRET_ACCESS_KEY)"
            ))
        );
        o.chunk_size = MIN_CHUNK_SIZE - 1;
        let err = S3Settings::resolve(o, &creds).err();
        assert!(matches!(
            err,
            Some(SettingsError::Invalid {
                key: "storage.s3.chunksize",
                ..
            })
        ));
    }
}
