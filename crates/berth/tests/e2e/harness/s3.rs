//! The S3 bucket of the end-to-end tests over [`Storage::S3`](super::server::Storage::S3): the server the
//! `BERTH_TEST_S3_*` variables name (`scripts/test` starts a throwaway Garage with `scripts/garage.sh`),
//! and a prefix (`rootdirectory`) of the test's own in its one bucket, so tests never see each other's
//! blobs and no test creates buckets.
//!
//! Without the variables a test over S3 prints that it skipped; under CI (`CI` set) it fails instead. The
//! prefixes are left in the bucket: the throwaway server is removed after the run.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

const ENDPOINT_ENV: &str = "BERTH_TEST_S3_ENDPOINT";

/// S3's smallest part, registry:2's smallest `chunksize`: layers of a few MiB already take several parts.
pub const CHUNK_SIZE: u64 = 5 * 1024 * 1024;

/// Where a server's blobs go on the test S3 server.
#[derive(Clone, Debug)]
pub struct S3Bucket {
    pub endpoint: String,
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
    pub bucket: String,
    /// `/berth-e2e-...`: this server's prefix in the bucket.
    pub root: String,
}

impl S3Bucket {
    /// The test server with a fresh prefix, or `None` (after saying that `test` skipped) when the
    /// variables are not set.
    pub fn from_env(test: &str) -> Option<S3Bucket> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let Some(endpoint) = var(ENDPOINT_ENV) else {
            assert!(
                std::env::var_os("CI").is_none(),
                "{ENDPOINT_ENV} is not set under CI: the tests over S3 must run there"
            );
            eprintln!(
                "SKIPPED {test} over S3: {ENDPOINT_ENV} is not set (scripts/test starts a Garage)"
            );
            return None;
        };
        let need = |name: &str| {
            var(name).unwrap_or_else(|| panic!("{ENDPOINT_ENV} is set but {name} is not"))
        };
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        Some(S3Bucket {
            endpoint,
            region: need("BERTH_TEST_S3_REGION"),
            access_key: need("BERTH_TEST_S3_ACCESS_KEY"),
            secret_key: need("BERTH_TEST_S3_SECRET_KEY"),
            bucket: need("BERTH_TEST_S3_BUCKET"),
            root: format!(
                "/berth-e2e-{}-{}-{nanos:08x}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::SeqCst)
            ),
        })
    }

    /// A configuration file's `storage.s3` section (registry:2's keys) for this prefix. Values are quoted
    /// so YAML reads them as strings whatever they look like.
    pub fn config_yaml(&self) -> String {
        let secure = self.endpoint.starts_with("https://");
        format!(
            "version: 0.1\n\
             storage:\n  \
               s3:\n    \
                 accesskey: {:?}\n    \
                 secretkey: {:?}\n    \
                 region: {:?}\n    \
                 regionendpoint: {:?}\n    \
                 bucket: {:?}\n    \
                 rootdirectory: {:?}\n    \
                 forcepathstyle: true\n    \
                 secure: {secure}\n    \
                 chunksize: {CHUNK_SIZE}\n",
            self.access_key, self.secret_key, self.region, self.endpoint, self.bucket, self.root,
        )
    }
}

#[cfg(test)]
mod tests {
    use saphyr::{LoadableYamlNode, Yaml};

    use super::*;

    #[test]
    fn the_config_has_registry2s_keys() {
        let b = S3Bucket {
            endpoint: "http://127.0.0.1:3900".into(),
            region: "garage".into(),
            access_key: "GK1".into(),
            secret_key: "0123".into(),
            bucket: "berth".into(),
            root: "/berth-e2e-1-0-0".into(),
        };
        let yaml = b.config_yaml();
        let docs = Yaml::load_from_str(&yaml).unwrap();
        let s3 = &docs[0]["storage"]["s3"];
        assert_eq!(s3["regionendpoint"].as_str(), Some("http://127.0.0.1:3900"));
        assert_eq!(s3["secretkey"].as_str(), Some("0123"));
        assert_eq!(s3["rootdirectory"].as_str(), Some("/berth-e2e-1-0-0"));
        assert_eq!(s3["forcepathstyle"].as_bool(), Some(true));
        assert_eq!(s3["secure"].as_bool(), Some(false));
        assert_eq!(
            s3["chunksize"]
                .as_integer()
                .and_then(|n| u64::try_from(n).ok()),
            Some(CHUNK_SIZE)
        );
    }
}
