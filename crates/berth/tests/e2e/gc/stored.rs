//! What a server's blob store holds, read beside berth rather than through it: the files under its data
//! directory, or the objects under its prefix in the bucket (listed by curl with its own SigV4 signing,
//! not by berth's S3 client), so a test measures what garbage collection freed where the bytes are.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::s3::S3Bucket;

/// Where one server's blob bytes are.
pub enum Stored {
    /// The data directory of a server over the filesystem.
    Dir(PathBuf),
    /// The bucket and prefix of a server over S3.
    Bucket(S3Bucket),
}

impl Stored {
    /// The blobs committed: `sha256:<hex>` to size.
    pub fn blobs(&self) -> BTreeMap<String, u64> {
        self.under("blobs/sha256/")
            .into_iter()
            .filter_map(|(name, (size, _))| {
                let (fanout, hex) = name.split_once('/')?;
                (hex.len() == 64 && hex.starts_with(fanout))
                    .then(|| (format!("sha256:{hex}"), size))
            })
            .collect()
    }

    /// Everything under `blobs/` (committed blobs and any temporary data): path to size and time of the
    /// last write (fs: mtime in nanoseconds; S3: LastModified and ETag), to tell that nothing changed.
    pub fn everything(&self) -> BTreeMap<String, (u64, String)> {
        self.under("blobs/")
    }

    fn under(&self, sub: &str) -> BTreeMap<String, (u64, String)> {
        match self {
            Stored::Dir(root) => {
                let mut out = BTreeMap::new();
                walk(&root.join(sub), "", &mut out);
                out
            }
            Stored::Bucket(bucket) => list_objects(bucket, sub),
        }
    }
}

fn walk(dir: &Path, prefix: &str, out: &mut BTreeMap<String, (u64, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
        let Ok(meta) = entry.metadata() else { continue };
        if meta.is_dir() {
            walk(&entry.path(), &format!("{name}/"), out);
        } else {
            let mtime = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            out.insert(name, (meta.len(), mtime.to_string()));
        }
    }
}

/// Every object under `<root>/<sub>` by ListObjectsV2 (paged by `start-after`): the key after the
/// prefix, to its size and `LastModified ETag`.
fn list_objects(bucket: &S3Bucket, sub: &str) -> BTreeMap<String, (u64, String)> {
    let prefix = format!("{}/{sub}", bucket.root.trim_matches('/'));
    let mut out = BTreeMap::new();
    let mut after = String::new();
    loop {
        let mut url = format!(
            "{}/{}?list-type=2&prefix={}",
            bucket.endpoint.trim_end_matches('/'),
            bucket.bucket,
            encode(&prefix)
        );
        if !after.is_empty() {
            url.push_str(&format!("&start-after={}", encode(&after)));
        }
        let xml = curl_s3(bucket, &url);
        let mut last = None;
        for object in xml.split("<Contents>").skip(1) {
            let key = element(object, "Key");
            let size = element(object, "Size")
                .parse::<u64>()
                .unwrap_or_else(|e| panic!("object {key}: size: {e}\n{xml}"));
            let stamp = format!(
                "{} {}",
                element(object, "LastModified"),
                element(object, "ETag")
            );
            if let Some(rest) = key.strip_prefix(&prefix) {
                out.insert(rest.to_string(), (size, stamp));
            }
            last = Some(key);
        }
        match last {
            Some(key) if xml.contains("<IsTruncated>true</IsTruncated>") => after = key,
            _ => return out,
        }
    }
}

fn curl_s3(bucket: &S3Bucket, url: &str) -> String {
    // The SHA-256 of an empty body: S3 wants it signed in, and curl does not add it by itself.
    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    let out = Command::new("curl")
        .args(["-sS", "--fail-with-body", "--max-time", "30", "--aws-sigv4"])
        .arg(format!("aws:amz:{}:s3", bucket.region))
        .arg("--user")
        .arg(format!("{}:{}", bucket.access_key, bucket.secret_key))
        .arg("-H")
        .arg(format!("x-amz-content-sha256: {EMPTY}"))
        .arg(url)
        .output()
        .unwrap_or_else(|e| panic!("cannot run curl: {e}"));
    let body = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "listing {url} failed: {body}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    body
}

/// The text of the first `<name>` element of `xml` (keys and ETags unescaped of what S3 escapes).
fn element(xml: &str, name: &str) -> String {
    let open = format!("<{name}>");
    let close = format!("</{name}>");
    let start = xml
        .find(&open)
        .map(|i| i + open.len())
        .unwrap_or_else(|| panic!("no <{name}> in {xml}"));
    let end = xml[start..]
        .find(&close)
        .map(|i| start + i)
        .unwrap_or_else(|| panic!("no </{name}> in {xml}"));
    xml[start..end]
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Percent-encoding of a query value, as SigV4's canonical query wants it (only unreserved characters
/// stay as they are).
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
