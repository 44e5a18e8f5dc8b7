//! A minimal client of the distribution API, for the tests that speak HTTP themselves (referrers, ranges,
//! resumed uploads, the crash test) and to check server-side what the real clients claim they did.
//!
//! Every call returns the whole answer (status, headers, body) so a test can assert on any of it; transport
//! errors are returned, not panicked on, because the crash test expects them when it kills the server.

use std::time::Duration;

use sha2::{Digest as _, Sha256};
use ureq::http;

/// Upper bound of one request, so that no test can hang on a server that stopped answering.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// The largest body the tests read back (their blobs are a few MiB).
const BODY_LIMIT: u64 = 512 * 1024 * 1024;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// What a client that understands every manifest type sends (a registry may refuse types not listed).
pub const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.manifest.v1+json, \
application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.docker.distribution.manifest.list.v2+json";

/// `sha256:<hex>` of some bytes.
pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// A complete answer.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The error codes of an OCI error body (`{"errors":[{"code":...}]}`), empty when there are none.
    pub fn error_codes(&self) -> Vec<String> {
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&self.body) else {
            return Vec::new();
        };
        v["errors"]
            .as_array()
            .map(|errs| {
                errs.iter()
                    .filter_map(|e| e["code"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "answer is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// For failure messages: status and the start of the body.
    pub fn describe(&self) -> String {
        let body = String::from_utf8_lossy(&self.body[..self.body.len().min(600)]).into_owned();
        format!("{} {body}", self.status)
    }
}

/// Why a push step did not succeed.
#[derive(Debug)]
pub enum PushError {
    /// No answer: the connection failed (as when the server was killed).
    Transport(ureq::Error),
    /// The server answered something else than the step expects.
    Refused { step: &'static str, resp: Box<Resp> },
}

impl std::fmt::Display for PushError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PushError::Transport(e) => write!(f, "transport error: {e}"),
            PushError::Refused { step, resp } => write!(f, "{step} answered {}", resp.describe()),
        }
    }
}

/// How a blob is sent: the three shapes of the spec.
#[derive(Clone, Copy, Debug)]
pub enum BlobPush {
    /// POST for a session, then one PUT with the whole body.
    Monolithic,
    /// POST, PATCHes of this many bytes with `Content-Range`, then an empty PUT.
    Chunked(usize),
    /// A single POST `?digest=` with the whole body.
    SinglePost,
}

/// An upload session as the client sees it: where to send the next request and what the server acknowledged.
#[derive(Clone, Debug)]
pub struct Upload {
    /// Path and query of the `Location` (without scheme and host, so it survives a restart on a new port).
    pub location: String,
    /// Bytes the server acknowledged (the end of its `Range` plus one).
    pub offset: u64,
}

/// The client: one ureq agent against one server.
#[derive(Clone)]
pub struct Api {
    base: String,
    agent: ureq::Agent,
}

impl Api {
    pub fn new(base_url: &str) -> Api {
        let agent = ureq::Agent::config_builder()
            // Status codes are data here: a 404 is an answer, not an error.
            .http_status_as_error(false)
            .timeout_global(Some(REQUEST_TIMEOUT))
            // Redirects would hide what the registry answered.
            .max_redirects(0)
            .build()
            .new_agent();
        Api {
            base: base_url.trim_end_matches('/').to_owned(),
            agent,
        }
    }

    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Result<Resp, ureq::Error> {
        self.request("GET", path, headers, None)
    }

    pub fn head(&self, path: &str) -> Result<Resp, ureq::Error> {
        self.request("HEAD", path, &[], None)
    }

    pub fn delete(&self, path: &str) -> Result<Resp, ureq::Error> {
        self.request("DELETE", path, &[], None)
    }

    /// Any request; `path` is a path and query (a full URL's scheme and host are replaced by this server's).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<Resp, ureq::Error> {
        // ureq sets Content-Length itself from the body it is given.
        let url = format!("{}{}", self.base, path_and_query(path));
        let mut builder = http::Request::builder().method(method).uri(&url);
        for (k, v) in headers {
            builder = builder.header(*k, *v);
        }
        let resp = match body {
            Some(bytes) => self.agent.run(builder.body(bytes)?),
            None => self.agent.run(builder.body(())?),
        }?;
        let (parts, mut body) = resp.into_parts();
        let bytes = if method == "HEAD" {
            Vec::new()
        } else {
            body.with_config().limit(BODY_LIMIT).read_to_vec()?
        };
        Ok(Resp {
            status: parts.status.as_u16(),
            headers: parts.headers,
            body: bytes,
        })
    }

    /// GET that must succeed with 200: the body.
    pub fn get_ok(&self, path: &str) -> Vec<u8> {
        match self.get(path, &[]) {
            Ok(r) if r.status == 200 => r.body,
            Ok(r) => panic!("GET {path} answered {}", r.describe()),
            Err(e) => panic!("GET {path} failed: {e}"),
        }
    }

    /// GET of a manifest by tag or digest, accepting every manifest type.
    pub fn get_manifest(&self, repo: &str, reference: &str) -> Result<Resp, ureq::Error> {
        self.get(
            &format!("/v2/{repo}/manifests/{reference}"),
            &[("Accept", ACCEPT_MANIFESTS)],
        )
    }

    /// GET of a manifest that must succeed with 200: its bytes.
    pub fn manifest_ok(&self, repo: &str, reference: &str) -> Vec<u8> {
        match self.get_manifest(repo, reference) {
            Ok(r) if r.status == 200 => r.body,
            Ok(r) => panic!("GET manifest {repo}:{reference} answered {}", r.describe()),
            Err(e) => panic!("GET manifest {repo}:{reference} failed: {e}"),
        }
    }

    /// POST `/v2/<repo>/blobs/uploads/`: a new session (202).
    pub fn start_upload(&self, repo: &str) -> Result<Upload, PushError> {
        let path = format!("/v2/{repo}/blobs/uploads/");
        let resp = self
            .request("POST", &path, &[], Some(&[]))
            .map_err(PushError::Transport)?;
        if resp.status != 202 {
            return Err(PushError::Refused {
                step: "POST upload",
                resp: Box::new(resp),
            });
        }
        let location = location(&resp).ok_or(PushError::Refused {
            step: "POST upload (no Location)",
            resp: Box::new(resp),
        })?;
        Ok(Upload {
            location,
            offset: 0,
        })
    }

    /// PATCH one chunk at the acknowledged offset; on 202 the upload advances to the server's `Range`.
    pub fn patch(&self, upload: &mut Upload, chunk: &[u8]) -> Result<(), PushError> {
        let range = content_range(upload.offset, chunk.len());
        let resp = self
            .request(
                "PATCH",
                &upload.location,
                &[
                    ("Content-Type", "application/octet-stream"),
                    ("Content-Range", &range),
                ],
                Some(chunk),
            )
            .map_err(PushError::Transport)?;
        if resp.status != 202 {
            return Err(PushError::Refused {
                step: "PATCH chunk",
                resp: Box::new(resp),
            });
        }
        let Some(last) = range_last(&resp) else {
            return Err(PushError::Refused {
                step: "PATCH chunk (no Range)",
                resp: Box::new(resp),
            });
        };
        if let Some(loc) = location(&resp) {
            upload.location = loc;
        }
        upload.offset = last + 1;
        Ok(())
    }

    /// PUT `?digest=` closing the upload, with an optional last chunk; expects 201.
    pub fn finish(&self, upload: &Upload, digest: &str, last: &[u8]) -> Result<Resp, PushError> {
        let sep = if upload.location.contains('?') {
            '&'
        } else {
            '?'
        };
        let path = format!("{}{sep}digest={digest}", upload.location);
        let resp = self
            .request(
                "PUT",
                &path,
                &[("Content-Type", "application/octet-stream")],
                Some(last),
            )
            .map_err(PushError::Transport)?;
        if resp.status != 201 {
            return Err(PushError::Refused {
                step: "PUT upload",
                resp: Box::new(resp),
            });
        }
        Ok(resp)
    }

    /// Pushes a whole blob in the given shape; returns its digest.
    pub fn push_blob(&self, repo: &str, data: &[u8], how: BlobPush) -> Result<String, PushError> {
        let digest = sha256(data);
        match how {
            BlobPush::Monolithic => {
                let up = self.start_upload(repo)?;
                self.finish(&up, &digest, data)?;
            }
            BlobPush::Chunked(size) => {
                let mut up = self.start_upload(repo)?;
                for chunk in data.chunks(size.max(1)) {
                    self.patch(&mut up, chunk)?;
                }
                self.finish(&up, &digest, &[])?;
            }
            BlobPush::SinglePost => {
                let path = format!("/v2/{repo}/blobs/uploads/?digest={digest}");
                let resp = self
                    .request(
                        "POST",
                        &path,
                        &[("Content-Type", "application/octet-stream")],
                        Some(data),
                    )
                    .map_err(PushError::Transport)?;
                // 201: stored. 202 is the spec's allowed fallback (a session instead): finish it monolithically.
                match resp.status {
                    201 => {}
                    202 => {
                        let location = location(&resp).ok_or(PushError::Refused {
                            step: "single POST (202 without Location)",
                            resp: Box::new(resp),
                        })?;
                        let up = Upload {
                            location,
                            offset: 0,
                        };
                        self.finish(&up, &digest, data)?;
                    }
                    _ => {
                        return Err(PushError::Refused {
                            step: "single POST",
                            resp: Box::new(resp),
                        });
                    }
                }
            }
        }
        Ok(digest)
    }

    /// PUT a manifest; expects 201 and returns the answer (for `Docker-Content-Digest`, `OCI-Subject`).
    pub fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Resp, PushError> {
        let resp = self
            .request(
                "PUT",
                &format!("/v2/{repo}/manifests/{reference}"),
                &[("Content-Type", media_type)],
                Some(bytes),
            )
            .map_err(PushError::Transport)?;
        if resp.status != 201 {
            return Err(PushError::Refused {
                step: "PUT manifest",
                resp: Box::new(resp),
            });
        }
        Ok(resp)
    }
}

/// `Content-Range` of a chunk: `start-end`, inclusive, as the distribution spec writes it (no `bytes ` unit).
pub fn content_range(start: u64, len: usize) -> String {
    let end = (start + len as u64).saturating_sub(1);
    format!("{start}-{end}")
}

/// The last byte index of an upload's `Range: 0-<last>`. The spec writes `0-0` both for an empty upload and
/// for one byte, so callers interpret it with what they know (a successful non-empty PATCH holds at least one).
pub fn range_last(resp: &Resp) -> Option<u64> {
    let range = resp.header("Range")?;
    let range = range.strip_prefix("bytes=").unwrap_or(range);
    let (start, last) = range.split_once('-')?;
    if start != "0" {
        return None;
    }
    last.parse().ok()
}

/// The `Location` header as a path and query.
pub fn location(resp: &Resp) -> Option<String> {
    resp.header("Location").map(path_and_query)
}

/// Strips `http://host:port` from a URL; a path is returned as it is.
pub fn path_and_query(url: &str) -> String {
    for scheme in ["http://", "https://"] {
        if let Some(rest) = url.strip_prefix(scheme) {
            return match rest.find('/') {
                Some(i) => rest[i..].to_owned(),
                None => "/".to_owned(),
            };
        }
    }
    url.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_lose_scheme_and_host() {
        assert_eq!(
            path_and_query("http://127.0.0.1:5000/v2/a/blobs/uploads/x?s=1"),
            "/v2/a/blobs/uploads/x?s=1"
        );
        assert_eq!(
            path_and_query("/v2/a/blobs/uploads/x"),
            "/v2/a/blobs/uploads/x"
        );
    }

    #[test]
    fn content_ranges_are_inclusive() {
        assert_eq!(content_range(0, 10), "0-9");
        assert_eq!(content_range(10, 5), "10-14");
    }
}
