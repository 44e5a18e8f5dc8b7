//! The `storage` section: the driver (`filesystem` or `s3`), deletes, read-only mode, upload purging,
//! redirects and registry:2's descriptor cache.
//!
//! As in registry:2, every key of `storage` other than `maintenance`, `cache`, `delete`, `redirect` and
//! `tag` names a driver, and exactly one driver may be configured. Without any, berth stores under
//! `./berth-data` (registry:2 would refuse to start); `filesystem` without a `rootdirectory` is
//! registry:2's default, `/var/lib/registry`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use registry::UploadPurging;

use super::read::{Section, Setting, non_empty, parse_or};
use super::values::{format_duration, parse_bool, parse_choice, parse_duration, parse_int};
use super::yaml::{NOTHING, Printed, flag, number, text};
use blobs::s3::{DEFAULT_CHUNK_SIZE, MIN_CHUNK_SIZE, S3Config};

use super::{ConfigError, WarningKind, mapping, masked};

/// Where berth keeps its data when no storage is configured (relative to the working directory).
pub const DEFAULT_ROOT: &str = "./berth-data";
/// registry:2's filesystem driver's root when `rootdirectory` is not given.
pub const REGISTRY2_FS_ROOT: &str = "/var/lib/registry";

/// Keys of `storage` that are not drivers.
const NOT_DRIVERS: &[&str] = &["maintenance", "cache", "delete", "redirect", "tag"];

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageConfig {
    pub driver: Driver,
    /// `delete.enabled`: manifests, tags and blobs may be deleted.
    pub delete_enabled: bool,
    /// `maintenance.readonly.enabled`: every write is refused.
    pub read_only: bool,
    /// `maintenance.uploadpurging`; `None` when disabled.
    pub upload_purging: Option<UploadPurging>,
    /// `redirect.disable`: never answer blob reads with a redirect to the storage.
    pub redirect_disabled: bool,
    /// Blob reads answered with a redirect to a presigned URL valid this long: berth's
    /// `redirect.enabled` (registry:2 redirects by default; berth only when asked), with registry:2's
    /// `redirect.expirydelay`; `None` when off (or `disable` is set). Only S3 storage has such URLs.
    pub redirect: Option<Duration>,
    /// `cache.blobdescriptor`, as written (berth's metadata database is its descriptor cache).
    pub blob_descriptor_cache: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Driver {
    Filesystem {
        root: PathBuf,
    },
    /// Blobs in an S3 bucket (`blobs::s3`); SQLite metadata, if no database is configured, stays in
    /// [`DEFAULT_ROOT`].
    S3(Box<S3Config>),
}

/// How long a redirect's presigned URL is valid unless `redirect.expirydelay` says otherwise (registry:2's).
pub const DEFAULT_REDIRECT_EXPIRY: Duration = Duration::from_secs(20 * 60);

/// registry:2 s3 keys berth does not use, and why.
const S3_IGNORED_KEYS: &[(&str, &str)] = &[
    ("useragent", "berth names itself in its requests"),
    (
        "usedualstack",
        "name a dual-stack endpoint in regionendpoint instead",
    ),
    (
        "accelerate",
        "name the accelerated endpoint in regionendpoint instead",
    ),
    (
        "loglevel",
        "S3 requests are logged at the debug level of log.level",
    ),
    ("objectacl", "objects keep the bucket's default ACL"),
    (
        "multipartcopychunksize",
        "commits copy the upload's parts as they are",
    ),
    (
        "multipartcopymaxconcurrency",
        "commits copy four parts at a time",
    ),
    (
        "multipartcopythresholdsize",
        "commits copy the upload's parts as they are",
    ),
    (
        "checksumdisabled",
        "berth sends no checksums beyond SigV4's",
    ),
];

impl StorageConfig {
    /// The directory of the filesystem store and of the SQLite database: the configured root, or
    /// [`DEFAULT_ROOT`] with S3 blobs.
    pub fn local_root(&self) -> &Path {
        match &self.driver {
            Driver::Filesystem { root } => root,
            Driver::S3(_) => Path::new(DEFAULT_ROOT),
        }
    }

    /// The driver's name, as registry:2 names its health check (`storagedriver_<name>`).
    pub fn driver_name(&self) -> &str {
        match &self.driver {
            Driver::Filesystem { .. } => "filesystem",
            Driver::S3(_) => "s3",
        }
    }
}

/// `storage` as read.
#[derive(Debug, Default)]
struct RawStorage {
    /// Drivers named, in the file's order (exactly one is allowed).
    drivers: Vec<String>,
    fs_root: Option<Setting>,
    s3: Option<RawS3>,
    delete_enabled: Option<Setting>,
    read_only: Option<Setting>,
    purge_enabled: Option<Setting>,
    purge_age: Option<Setting>,
    purge_interval: Option<Setting>,
    purge_dry_run: Option<Setting>,
    redirect_disable: Option<Setting>,
    redirect_enabled: Option<Setting>,
    redirect_expiry: Option<Setting>,
    blob_descriptor: Option<Setting>,
}

#[derive(Debug, Default)]
struct RawS3 {
    access_key: Option<Setting>,
    secret_key: Option<Setting>,
    region: Option<Setting>,
    region_endpoint: Option<Setting>,
    bucket: Option<Setting>,
    root_directory: Option<Setting>,
    force_path_style: Option<Setting>,
    secure: Option<Setting>,
    skip_verify: Option<Setting>,
    chunk_size: Option<Setting>,
    session_token: Option<Setting>,
    encrypt: Option<Setting>,
    key_id: Option<Setting>,
    storage_class: Option<Setting>,
    v4auth: Option<Setting>,
}

pub fn read(mut s: Section<'_>) -> Result<StorageConfig, ConfigError> {
    let here = s.here();
    let ctx = s.ctx();
    let mut raw = RawStorage {
        drivers: s
            .keys()
            .filter(|k| !NOT_DRIVERS.contains(k))
            .map(str::to_string)
            .collect(),
        ..RawStorage::default()
    };
    if raw.drivers.len() > 1 {
        return Err(ConfigError::Malformed {
            key: here.to_string(),
            reason: format!(
                "configure exactly one storage driver, as registry:2 requires; found {}",
                raw.drivers.join(", ")
            ),
        });
    }
    match raw.drivers.first().map(String::as_str) {
        Some("filesystem") => {
            let mut fs = s.section("filesystem")?;
            raw.fs_root = fs.scalar("rootdirectory")?;
            fs.ignore(
                "maxthreads",
                "berth bounds filesystem work with its own blocking thread pool",
            );
            fs.finish();
        }
        Some("s3") => {
            let mut s3 = s.section("s3")?;
            raw.s3 = Some(read_s3(&mut s3)?);
            s3.finish();
        }
        Some(other) => {
            // Starting anyway would store pushes somewhere the operator did not configure (a
            // container's ephemeral disk): registry:2 refuses an unknown driver, and so does berth.
            return Err(ConfigError::Malformed {
                key: s.origin(other).to_string(),
                reason: format!(
                    "berth has no {other} storage driver; it stores blobs with filesystem or s3 \
                     (S3-compatible services included)"
                ),
            });
        }
        None => {}
    }

    let mut delete = s.section("delete")?;
    raw.delete_enabled = delete.scalar("enabled")?;
    delete.finish();

    let mut maintenance = s.section("maintenance")?;
    let mut purging = maintenance.section("uploadpurging")?;
    raw.purge_enabled = purging.scalar("enabled")?;
    raw.purge_age = purging.scalar("age")?;
    raw.purge_interval = purging.scalar("interval")?;
    raw.purge_dry_run = purging.scalar("dryrun")?;
    purging.finish();
    let mut readonly = maintenance.section("readonly")?;
    raw.read_only = readonly.scalar("enabled")?;
    readonly.finish();
    maintenance.finish();

    let mut redirect = s.section("redirect")?;
    raw.redirect_disable = redirect.scalar("disable")?;
    raw.redirect_enabled = redirect.scalar("enabled")?;
    raw.redirect_expiry = redirect.scalar("expirydelay")?;
    redirect.ignore(
        "exceptions",
        "berth redirects every blob read or none (storage.redirect.enabled)",
    );
    redirect.finish();

    let mut cache = s.section("cache")?;
    raw.blob_descriptor = cache.scalar("blobdescriptor")?;
    if let Some(old) = cache.scalar("layerinfo")? {
        ctx.warn(
            &old.origin,
            WarningKind::Deprecated,
            "the old name of cache.blobdescriptor",
        );
        raw.blob_descriptor = raw.blob_descriptor.or(Some(old));
    }
    cache.ignore(
        "blobdescriptorsize",
        "berth's metadata database is its blob descriptor cache, with no size to set",
    );
    cache.finish();

    let mut tag = s.section("tag")?;
    tag.ignore(
        "concurrencylimit",
        "berth resolves tags with one query, not concurrent lookups",
    );
    tag.finish();
    s.finish();
    raw.validate(ctx)
}

fn read_s3(s: &mut Section<'_>) -> Result<RawS3, ConfigError> {
    let raw = RawS3 {
        access_key: s.scalar("accesskey")?,
        secret_key: s.scalar("secretkey")?,
        region: s.scalar("region")?,
        region_endpoint: s.scalar("regionendpoint")?,
        bucket: s.scalar("bucket")?,
        root_directory: s.scalar("rootdirectory")?,
        force_path_style: s.scalar("forcepathstyle")?,
        secure: s.scalar("secure")?,
        skip_verify: s.scalar("skipverify")?,
        chunk_size: s.scalar("chunksize")?,
        session_token: s.scalar("sessiontoken")?,
        encrypt: s.scalar("encrypt")?,
        key_id: s.scalar("keyid")?,
        storage_class: s.scalar("storageclass")?,
        v4auth: s.scalar("v4auth")?,
    };
    for (key, why) in S3_IGNORED_KEYS {
        s.ignore(key, why);
    }
    Ok(raw)
}

impl RawStorage {
    fn validate(self, ctx: &super::read::Ctx) -> Result<StorageConfig, ConfigError> {
        let driver = match self.drivers.first().map(String::as_str) {
            None => Driver::Filesystem {
                root: PathBuf::from(DEFAULT_ROOT),
            },
            Some("filesystem") => Driver::Filesystem {
                root: PathBuf::from(
                    non_empty(&self.fs_root)?.unwrap_or_else(|| REGISTRY2_FS_ROOT.to_string()),
                ),
            },
            Some("s3") => Driver::S3(Box::new(self.s3.unwrap_or_default().validate(ctx)?)),
            // `read` refused every other driver.
            Some(other) => {
                return Err(ConfigError::Malformed {
                    key: format!("storage.{other}"),
                    reason: "not a storage driver berth has".into(),
                });
            }
        };
        let purging_enabled = parse_or(&self.purge_enabled, true, parse_bool)?;
        let defaults = UploadPurging::default();
        let positive = |t: &str| match parse_duration(t)? {
            d if d.is_zero() => Err("must be longer than 0s".to_string()),
            d => Ok(d),
        };
        let purging = UploadPurging {
            age: parse_or(&self.purge_age, defaults.age, positive)?,
            interval: parse_or(&self.purge_interval, defaults.interval, positive)?,
            dry_run: parse_or(&self.purge_dry_run, false, parse_bool)?,
        };
        let read_only = parse_or(&self.read_only, false, parse_bool)?;
        let redirect_disabled = parse_or(&self.redirect_disable, false, parse_bool)?;
        let redirect_expiry = parse_or(&self.redirect_expiry, DEFAULT_REDIRECT_EXPIRY, positive)?;
        let redirect_enabled = parse_or(&self.redirect_enabled, false, parse_bool)?;
        if redirect_enabled && let Some(s) = &self.redirect_enabled {
            if redirect_disabled {
                ctx.warn(
                    &s.origin,
                    WarningKind::Adjusted,
                    "off: redirect.disable is set",
                );
            } else if !matches!(driver, Driver::S3(_)) {
                ctx.warn(
                    &s.origin,
                    WarningKind::Ignored,
                    "only S3 storage can redirect blob reads",
                );
            }
        }
        let redirect = (redirect_enabled && !redirect_disabled && matches!(driver, Driver::S3(_)))
            .then_some(redirect_expiry);
        if read_only
            && purging_enabled
            && let Some(s) = &self.purge_enabled
        {
            ctx.warn(
                &s.origin,
                WarningKind::Adjusted,
                "upload purging is off in read-only mode (as in registry:2)",
            );
        }
        let blob_descriptor_cache = match &self.blob_descriptor {
            None => None,
            Some(s) => {
                let kind = s.parse(|t| parse_choice(t, &["inmemory", "redis"]))?;
                if kind == "redis" {
                    ctx.warn(
                        &s.origin,
                        WarningKind::Ignored,
                        "berth's metadata database is its blob descriptor cache; no redis is used",
                    );
                }
                Some(kind.to_string())
            }
        };
        Ok(StorageConfig {
            driver,
            delete_enabled: parse_or(&self.delete_enabled, false, parse_bool)?,
            read_only,
            upload_purging: (purging_enabled && !read_only).then_some(purging),
            redirect_disabled,
            redirect,
            blob_descriptor_cache,
        })
    }
}

impl RawS3 {
    fn validate(self, ctx: &super::read::Ctx) -> Result<S3Config, ConfigError> {
        let bucket = non_empty(&self.bucket)?.ok_or_else(|| ConfigError::Malformed {
            key: "storage.s3.bucket".into(),
            reason: "required with the s3 driver".into(),
        })?;
        // Not required here, unlike registry:2: AWS_REGION may give it (checked when the store opens).
        let region = non_empty(&self.region)?;
        let region_endpoint = non_empty(&self.region_endpoint)?;
        let skip_verify = parse_or(&self.skip_verify, false, parse_bool)?;
        if skip_verify && let Some(s) = &self.skip_verify {
            ctx.warn(
                &s.origin,
                WarningKind::Ignored,
                "berth always verifies the endpoint's certificate; add its CA to the system's \
                 trust store instead",
            );
        }
        if let Some(s) = &self.v4auth
            && !s.parse(parse_bool)?
        {
            ctx.warn(
                &s.origin,
                WarningKind::Adjusted,
                "berth signs every request with AWS Signature Version 4",
            );
        }
        let key_id = non_empty(&self.key_id)?;
        let encrypt = parse_or(&self.encrypt, false, parse_bool)?;
        if !encrypt
            && key_id.is_some()
            && let Some(s) = &self.key_id
        {
            ctx.warn(
                &s.origin,
                WarningKind::Ignored,
                "used only with encrypt: true",
            );
        }
        // registry:2 writes STANDARD unless told NONE; berth leaves the bucket's default unless told.
        let storage_class =
            non_empty(&self.storage_class)?.filter(|c| !c.eq_ignore_ascii_case("none"));
        let chunk_size = parse_or(&self.chunk_size, DEFAULT_CHUNK_SIZE, |t| {
            parse_int(t, MIN_CHUNK_SIZE, 5 * 1024 * 1024 * 1024)
        })?;
        Ok(S3Config {
            access_key: self.access_key.map(|s| s.text),
            secret_key: self.secret_key.map(|s| s.text),
            region,
            region_endpoint,
            bucket,
            root_directory: self.root_directory.map(|s| s.text),
            force_path_style: parse_or(&self.force_path_style, false, parse_bool)?,
            secure: parse_or(&self.secure, true, parse_bool)?,
            chunk_size,
            session_token: self.session_token.map(|s| s.text),
            encrypt,
            kms_key_id: key_id,
            storage_class,
        })
    }
}

impl StorageConfig {
    pub fn to_yaml(&self) -> Printed {
        let driver = match &self.driver {
            Driver::Filesystem { root } => (
                "filesystem",
                mapping([("rootdirectory", text(root.display().to_string()))]),
            ),
            Driver::S3(s3) => ("s3", s3_to_yaml(s3)),
        };
        let purging = match &self.upload_purging {
            None => mapping([("enabled", flag(false))]),
            Some(p) => mapping([
                ("enabled", flag(true)),
                ("age", text(format_duration(p.age))),
                ("interval", text(format_duration(p.interval))),
                ("dryrun", flag(p.dry_run)),
            ]),
        };
        let mut entries = vec![
            driver,
            ("delete", mapping([("enabled", flag(self.delete_enabled))])),
            (
                "maintenance",
                mapping([
                    ("uploadpurging", purging),
                    ("readonly", mapping([("enabled", flag(self.read_only))])),
                ]),
            ),
            (
                "redirect",
                mapping([
                    ("disable", flag(self.redirect_disabled)),
                    ("enabled", flag(self.redirect.is_some())),
                    (
                        "expirydelay",
                        self.redirect.map_or(NOTHING, |d| text(format_duration(d))),
                    ),
                ]),
            ),
        ];
        if let Some(cache) = &self.blob_descriptor_cache {
            entries.push(("cache", mapping([("blobdescriptor", text(cache.as_str()))])));
        }
        mapping(entries)
    }
}

/// `storage.s3` as printed, the secrets masked.
fn s3_to_yaml(s3: &S3Config) -> Printed {
    let opt = |v: &Option<String>| v.as_deref().map_or(NOTHING, text);
    mapping([
        ("accesskey", opt(&s3.access_key)),
        ("secretkey", masked(s3.secret_key.is_some())),
        ("region", opt(&s3.region)),
        ("regionendpoint", opt(&s3.region_endpoint)),
        ("bucket", text(s3.bucket.as_str())),
        ("rootdirectory", opt(&s3.root_directory)),
        ("forcepathstyle", flag(s3.force_path_style)),
        ("secure", flag(s3.secure)),
        ("chunksize", number(s3.chunk_size)),
        ("sessiontoken", masked(s3.session_token.is_some())),
        ("encrypt", flag(s3.encrypt)),
        ("keyid", opt(&s3.kms_key_id)),
        ("storageclass", opt(&s3.storage_class)),
    ])
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::super::{Loaded, WarningKind, load};
    use super::*;

    fn load_s3(yaml: &str, vars: &[(&str, &str)]) -> (Loaded, S3Config) {
        let env: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let loaded = load(Some(yaml), &env).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
        let Driver::S3(s3) = loaded.config.storage.driver.clone() else {
            panic!("not s3: {:?}", loaded.config.storage.driver)
        };
        (loaded, *s3)
    }

    fn warnings(l: &Loaded) -> Vec<(&str, WarningKind)> {
        l.warnings
            .iter()
            .map(|w| (w.key.as_str(), w.kind))
            .collect()
    }

    const FULL: &str = "storage:\n  s3:\n    accesskey: AK\n    secretkey: SK\n    region: eu-west-3\n    \
        regionendpoint: https://s3.example.com\n    bucket: reg\n    rootdirectory: /a/b\n    \
        forcepathstyle: true\n    secure: false\n    chunksize: 6291456\n    v4auth: true\n    \
        encrypt: true\n    keyid: kms-key\n    storageclass: REDUCED_REDUNDANCY\n    sessiontoken: TOK\n";

    #[test]
    fn every_key_reaches_the_backend() {
        let (l, s3) = load_s3(FULL, &[]);
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
        let o = &s3;
        assert_eq!(
            (o.access_key.as_deref(), o.secret_key.as_deref()),
            (Some("AK"), Some("SK"))
        );
        assert_eq!(o.session_token.as_deref(), Some("TOK"));
        assert_eq!(o.region.as_deref(), Some("eu-west-3"));
        assert_eq!(o.region_endpoint.as_deref(), Some("https://s3.example.com"));
        assert_eq!(
            (o.bucket.as_str(), o.root_directory.as_deref()),
            ("reg", Some("/a/b"))
        );
        assert!(o.force_path_style && !o.secure && o.encrypt);
        assert_eq!(o.chunk_size, 6 * 1024 * 1024);
        assert_eq!(o.kms_key_id.as_deref(), Some("kms-key"));
        assert_eq!(o.storage_class.as_deref(), Some("REDUCED_REDUNDANCY"));
        // The store is S3; the SQLite metadata (without a database) stays in the local data directory.
        assert_eq!(l.config.storage.driver_name(), "s3");
        assert_eq!(l.config.storage.local_root(), Path::new(DEFAULT_ROOT));
    }

    #[test]
    fn registry2_environment_overrides_apply() {
        let (_, s3) = load_s3(
            FULL,
            &[
                ("REGISTRY_STORAGE_S3_BUCKET", "other"),
                ("REGISTRY_STORAGE_S3_SECRETKEY", "from-env"),
                ("REGISTRY_STORAGE_S3_CHUNKSIZE", "5242880"),
            ],
        );
        assert_eq!(s3.bucket, "other");
        assert_eq!(s3.secret_key.as_deref(), Some("from-env"));
        assert_eq!(s3.chunk_size, MIN_CHUNK_SIZE);
        // A whole s3 section from the environment alone.
        let (_, s3) = load_s3(
            "log:\n  level: info\n",
            &[
                ("REGISTRY_STORAGE_S3_BUCKET", "b"),
                (
                    "REGISTRY_STORAGE_S3_REGIONENDPOINT",
                    "http://127.0.0.1:3900",
                ),
            ],
        );
        assert_eq!(s3.region_endpoint.as_deref(), Some("http://127.0.0.1:3900"));
        assert_eq!(s3.chunk_size, DEFAULT_CHUNK_SIZE);
        assert!(s3.secure && !s3.force_path_style, "registry:2's defaults");
    }

    #[test]
    fn the_secrets_are_masked_when_printed() {
        let (l, _) = load_s3(FULL, &[]);
        let printed =
            crate::config::yaml::to_string(&l.config.storage.to_yaml()).unwrap_or_default();
        assert!(printed.contains("bucket: reg"), "{printed}");
        assert!(
            !printed.contains("SK") && !printed.contains("TOK"),
            "{printed}"
        );
    }

    #[test]
    fn what_berth_does_not_do_is_warned() {
        let (l, s3) = load_s3(
            "storage:\n  s3:\n    bucket: b\n    skipverify: true\n    v4auth: false\n    \
             keyid: k\n    storageclass: NONE\n    objectacl: private\n    useragent: x\n",
            &[],
        );
        assert_eq!(
            warnings(&l),
            [
                ("storage.s3.useragent", WarningKind::Ignored),
                ("storage.s3.objectacl", WarningKind::Ignored),
                ("storage.s3.skipverify", WarningKind::Ignored),
                ("storage.s3.v4auth", WarningKind::Adjusted),
                ("storage.s3.keyid", WarningKind::Ignored),
            ]
        );
        assert_eq!(s3.storage_class, None, "NONE leaves the bucket's default");
        // Neither region nor endpoint: the AWS environment may still give them when the store opens.
        assert_eq!((s3.region, s3.region_endpoint), (None, None));
    }

    #[test]
    fn redirects_only_when_asked_and_only_on_s3() {
        let s3 = "storage:\n  s3:\n    bucket: b\n  redirect:\n";
        let (l, _) = load_s3(s3, &[]);
        assert_eq!(
            l.config.storage.redirect, None,
            "off by default, unlike registry:2"
        );
        let (l, _) = load_s3(&format!("{s3}    enabled: true\n"), &[]);
        assert_eq!(l.config.storage.redirect, Some(DEFAULT_REDIRECT_EXPIRY));
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
        let (l, _) = load_s3(
            &format!("{s3}    enabled: true\n    expirydelay: 5m\n"),
            &[],
        );
        assert_eq!(l.config.storage.redirect, Some(Duration::from_secs(300)));
        let (l, _) = load_s3(&format!("{s3}    enabled: true\n    disable: true\n"), &[]);
        assert_eq!(l.config.storage.redirect, None);
        assert_eq!(
            warnings(&l),
            [("storage.redirect.enabled", WarningKind::Adjusted)]
        );
        let (l, _) = load_s3(s3, &[("REGISTRY_STORAGE_REDIRECT_ENABLED", "true")]);
        assert!(
            l.config.storage.redirect.is_some(),
            "the variable turns it on"
        );

        let fs = "storage:\n  filesystem:\n    rootdirectory: /x\n  redirect:\n    enabled: true\n";
        let loaded = load(Some(fs), &HashMap::new()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(loaded.config.storage.redirect, None);
        assert_eq!(
            warnings(&loaded),
            [("storage.redirect.enabled", WarningKind::Ignored)]
        );
    }
}
