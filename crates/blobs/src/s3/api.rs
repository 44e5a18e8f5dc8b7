//! The S3 operations the backend uses, each one typed: objects (HEAD, GET with a range, PUT, DELETE,
//! CopyObject, ListObjectsV2 by continuation token or after a key) and multipart uploads (create, UploadPartCopy, complete, abort, list).
//! Nothing here knows the store's layout; `s3.rs` and its siblings decide which keys mean what.

use std::ops::Range;
use std::time::SystemTime;

use bytes::Bytes;
use hyper::{Method, StatusCode};

use super::client::{Call, Client, Response, S3Error};
use super::settings::S3Settings;
use super::{time, xml};

/// An object in a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Object {
    pub key: String,
    pub size: u64,
}

/// An incomplete multipart upload in a listing.
#[derive(Clone, Debug)]
pub(crate) struct Multipart {
    pub key: String,
    pub upload_id: String,
    pub initiated: Option<SystemTime>,
}

/// One bucket, with the headers every write carries (encryption, storage class).
#[derive(Clone)]
pub(crate) struct Bucket {
    client: Client,
    write_headers: Vec<(String, String)>,
}

impl Bucket {
    pub fn new(settings: &S3Settings) -> Result<Bucket, S3Error> {
        let mut write_headers = Vec::new();
        if settings.encrypt {
            match &settings.kms_key_id {
                Some(key) => {
                    write_headers.push(("x-amz-server-side-encryption".into(), "aws:kms".into()));
                    write_headers.push((
                        "x-amz-server-side-encryption-aws-kms-key-id".into(),
                        key.clone(),
                    ));
                }
                None => {
                    write_headers.push(("x-amz-server-side-encryption".into(), "AES256".into()));
                }
            }
        }
        if let Some(class) = &settings.storage_class {
            write_headers.push(("x-amz-storage-class".into(), class.clone()));
        }
        Ok(Bucket {
            client: Client::new(settings)?,
            write_headers,
        })
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    fn writing<'a>(&self, mut call: Call<'a>) -> Call<'a> {
        call.headers.extend(self.write_headers.iter().cloned());
        call
    }

    /// The size of object `key`, or `None` if there is none.
    pub async fn head(&self, key: &str) -> Result<Option<u64>, S3Error> {
        let call = Call::new("HeadObject", Method::HEAD, Some(key));
        match self.client.send(&call).await {
            Ok(r) => content_length(&r, "HeadObject").map(Some),
            Err(S3Error::Status { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Object `key` (or the bytes `range` of it), streaming; `None` if there is none. A range that
    /// starts past the end is S3's 416 (`InvalidRange`).
    pub async fn get(
        &self,
        key: &str,
        range: Option<Range<u64>>,
    ) -> Result<Option<Response>, S3Error> {
        let mut call = Call::new("GetObject", Method::GET, Some(key));
        if let Some(r) = range {
            call = call.header(
                "range",
                format!("bytes={}-{}", r.start, r.end.saturating_sub(1)),
            );
        }
        match self.client.send(&call).await {
            Ok(r) => Ok(Some(r)),
            Err(S3Error::Status { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes object `key` (a single PUT; at most 5 GiB, which parts never exceed).
    pub async fn put(&self, key: &str, body: Bytes) -> Result<(), S3Error> {
        let call = self.writing(Call::new("PutObject", Method::PUT, Some(key)).body(body, false));
        self.client.send(&call).await.map(drop)
    }

    /// Deletes object `key`; deleting what is not there is not an error (S3 answers 204 either way).
    pub async fn delete(&self, key: &str) -> Result<(), S3Error> {
        let call = Call::new("DeleteObject", Method::DELETE, Some(key));
        match self.client.send(&call).await {
            Ok(_) | Err(S3Error::Status { status: 404, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Copies object `source` to `key` on the server (both at most 5 GiB).
    pub async fn copy(&self, source: &str, key: &str) -> Result<(), S3Error> {
        let call = self.writing(
            Call::new("CopyObject", Method::PUT, Some(key))
                .header("x-amz-copy-source", self.client.copy_source(source)),
        );
        let text = self.client.send(&call).await?.text(call.op).await?;
        error_in_body(&text, call.op)
    }

    /// Every object whose key starts with `prefix`, in key order (all pages).
    pub async fn list(&self, prefix: &str) -> Result<Vec<Object>, S3Error> {
        let mut objects = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut call = Call::new("ListObjectsV2", Method::GET, None)
                .query("list-type", "2")
                .query("prefix", prefix);
            if let Some(t) = token.take() {
                call = call.query("continuation-token", t);
            }
            let text = self.client.send(&call).await?.text(call.op).await?;
            objects.extend(contents(&text, call.op)?.into_iter().map(|(o, _)| o));
            let truncated = xml::text(&text, "IsTruncated").is_some_and(|t| t == "true");
            token = xml::text(&text, "NextContinuationToken");
            if !truncated {
                return Ok(objects);
            }
            if token.is_none() {
                return Err(protocol(
                    call.op,
                    "a truncated listing without a continuation token",
                ));
            }
        }
    }

    /// What lies right under `prefix` (ending in `/`), as a directory listing: the names of the common
    /// prefixes one `/` further (without `prefix` and the `/`), and of the objects (without `prefix`);
    /// all pages. Reads registry:2's tree, which is laid out as directories.
    pub async fn list_dir(&self, prefix: &str) -> Result<(Vec<String>, Vec<String>), S3Error> {
        let (mut dirs, mut files) = (Vec::new(), Vec::new());
        let mut token: Option<String> = None;
        loop {
            let mut call = Call::new("ListObjectsV2", Method::GET, None)
                .query("list-type", "2")
                .query("delimiter", "/")
                .query("prefix", prefix);
            if let Some(t) = token.take() {
                call = call.query("continuation-token", t);
            }
            let text = self.client.send(&call).await?.text(call.op).await?;
            for block in xml::blocks(&text, "CommonPrefixes") {
                let name = xml::text(block, "Prefix")
                    .and_then(|p| Some(p.strip_prefix(prefix)?.trim_end_matches('/').to_string()));
                match name {
                    Some(name) if !name.is_empty() => dirs.push(name),
                    _ => return Err(protocol(call.op, "a common prefix outside the listed one")),
                }
            }
            for (object, _) in contents(&text, call.op)? {
                if let Some(name) = object.key.strip_prefix(prefix) {
                    files.push(name.to_string());
                }
            }
            let truncated = xml::text(&text, "IsTruncated").is_some_and(|t| t == "true");
            token = xml::text(&text, "NextContinuationToken");
            if !truncated {
                return Ok((dirs, files));
            }
            if token.is_none() {
                return Err(protocol(
                    call.op,
                    "a truncated listing without a continuation token",
                ));
            }
        }
    }

    /// One page of the objects whose key starts with `prefix` and comes strictly after `start_after`, in
    /// key order, at most `max_keys` (S3 caps it at 1,000), each with its `LastModified`; and whether
    /// more follow.
    pub async fn list_after(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        max_keys: usize,
    ) -> Result<(Vec<(Object, Option<SystemTime>)>, bool), S3Error> {
        let mut call = Call::new("ListObjectsV2", Method::GET, None)
            .query("list-type", "2")
            .query("max-keys", max_keys.clamp(1, 1000).to_string())
            .query("prefix", prefix);
        if let Some(key) = start_after {
            call = call.query("start-after", key);
        }
        let text = self.client.send(&call).await?.text(call.op).await?;
        let objects = contents(&text, call.op)?;
        let truncated = xml::text(&text, "IsTruncated").is_some_and(|t| t == "true");
        Ok((objects, truncated))
    }

    /// Whether the bucket answers a listing (one key at most) under `prefix`: the health check.
    pub async fn probe(&self, prefix: &str) -> Result<(), S3Error> {
        let call = Call::new("ListObjectsV2", Method::GET, None)
            .query("list-type", "2")
            .query("max-keys", "1")
            .query("prefix", prefix);
        self.client.send(&call).await.map(drop)
    }

    /// Starts a multipart upload to `key`; returns its id.
    pub async fn create_multipart(&self, key: &str) -> Result<String, S3Error> {
        let call = self.writing(
            Call::new("CreateMultipartUpload", Method::POST, Some(key)).query("uploads", ""),
        );
        let text = self.client.send(&call).await?.text(call.op).await?;
        xml::text(&text, "UploadId").ok_or_else(|| protocol(call.op, "no UploadId in the answer"))
    }

    /// Uploads `body` as part `number` of upload `upload_id`; returns the part's ETag.
    pub async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        body: Bytes,
    ) -> Result<String, S3Error> {
        let call = Call::new("UploadPart", Method::PUT, Some(key))
            .query("partNumber", number.to_string())
            .query("uploadId", upload_id)
            .body(body, false);
        let response = self.client.send(&call).await?;
        response
            .header("etag")
            .map(str::to_string)
            .ok_or_else(|| protocol(call.op, "no ETag in the answer"))
    }

    /// Copies the bytes `range` of object `source` into part `number` of upload `upload_id`; returns
    /// the part's ETag.
    pub async fn upload_part_copy(
        &self,
        key: &str,
        upload_id: &str,
        number: u32,
        source: &str,
        range: Range<u64>,
    ) -> Result<String, S3Error> {
        let call = Call::new("UploadPartCopy", Method::PUT, Some(key))
            .query("partNumber", number.to_string())
            .query("uploadId", upload_id)
            .header("x-amz-copy-source", self.client.copy_source(source))
            .header(
                "x-amz-copy-source-range",
                format!("bytes={}-{}", range.start, range.end.saturating_sub(1)),
            );
        let text = self.client.send(&call).await?.text(call.op).await?;
        error_in_body(&text, call.op)?;
        xml::text(&text, "ETag").ok_or_else(|| protocol(call.op, "no ETag in the answer"))
    }

    /// Completes upload `upload_id` of `key` with `parts` (number, ETag), in order.
    pub async fn complete(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[(u32, String)],
    ) -> Result<(), S3Error> {
        let mut body = String::from("<CompleteMultipartUpload>");
        for (number, etag) in parts {
            body.push_str(&format!(
                "<Part><PartNumber>{number}</PartNumber><ETag>{}</ETag></Part>",
                xml::escape(etag)
            ));
        }
        body.push_str("</CompleteMultipartUpload>");
        let call = Call::new("CompleteMultipartUpload", Method::POST, Some(key))
            .query("uploadId", upload_id)
            .header("content-type", "application/xml")
            .body(Bytes::from(body), true);
        // S3 may answer 200 and report a failure in the body, after a long wait.
        let text = self.client.send(&call).await?.text(call.op).await?;
        error_in_body(&text, call.op)
    }

    /// Aborts upload `upload_id` of `key`; an upload already gone is not an error.
    pub async fn abort(&self, key: &str, upload_id: &str) -> Result<(), S3Error> {
        let call = Call::new("AbortMultipartUpload", Method::DELETE, Some(key))
            .query("uploadId", upload_id);
        match self.client.send(&call).await {
            Ok(_) | Err(S3Error::Status { status: 404, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Every incomplete multipart upload to a key under `prefix` (all pages).
    pub async fn list_multipart(&self, prefix: &str) -> Result<Vec<Multipart>, S3Error> {
        let mut uploads = Vec::new();
        let mut markers: Option<(String, String)> = None;
        loop {
            let mut call = Call::new("ListMultipartUploads", Method::GET, None)
                .query("uploads", "")
                .query("prefix", prefix);
            if let Some((key, id)) = markers.take() {
                call = call.query("key-marker", key).query("upload-id-marker", id);
            }
            let text = self.client.send(&call).await?.text(call.op).await?;
            for block in xml::blocks(&text, "Upload") {
                let (Some(key), Some(upload_id)) =
                    (xml::text(block, "Key"), xml::text(block, "UploadId"))
                else {
                    return Err(protocol(call.op, "an upload without a key or id"));
                };
                let initiated = xml::text(block, "Initiated").and_then(|t| time::parse_iso8601(&t));
                uploads.push(Multipart {
                    key,
                    upload_id,
                    initiated,
                });
            }
            if xml::text(&text, "IsTruncated").is_none_or(|t| t != "true") {
                return Ok(uploads);
            }
            match (
                xml::text(&text, "NextKeyMarker"),
                xml::text(&text, "NextUploadIdMarker"),
            ) {
                (Some(k), Some(i)) if !k.is_empty() => markers = Some((k, i)),
                _ => return Err(protocol(call.op, "a truncated listing without markers")),
            }
        }
    }
}

/// The `<Contents>` entries of a ListObjectsV2 answer, with their `LastModified` when it parses.
fn contents(text: &str, op: &'static str) -> Result<Vec<(Object, Option<SystemTime>)>, S3Error> {
    xml::blocks(text, "Contents")
        .into_iter()
        .map(|block| {
            let key = xml::text(block, "Key");
            let size = xml::text(block, "Size").and_then(|s| s.parse().ok());
            let modified = xml::text(block, "LastModified").and_then(|t| time::parse_iso8601(&t));
            match (key, size) {
                (Some(key), Some(size)) => Ok((Object { key, size }, modified)),
                _ => Err(protocol(op, "an entry without a key or size")),
            }
        })
        .collect()
}

fn protocol(op: &'static str, detail: &str) -> S3Error {
    S3Error::Protocol {
        op,
        detail: detail.to_string(),
    }
}

/// A 200 answer that carries an `<Error>` (CopyObject, UploadPartCopy, CompleteMultipartUpload).
fn error_in_body(text: &str, op: &'static str) -> Result<(), S3Error> {
    let Some(error) = xml::blocks(text, "Error").first().copied() else {
        return Ok(());
    };
    let code = xml::text(error, "Code").unwrap_or_else(|| "InternalError".into());
    let message = xml::text(error, "Message").unwrap_or_default();
    // A failure reported this way is S3's own (InternalError, SlowDown): a server-side status.
    let status = if code == "InternalError" || code == "SlowDown" {
        StatusCode::SERVICE_UNAVAILABLE.as_u16()
    } else {
        StatusCode::BAD_REQUEST.as_u16()
    };
    Err(S3Error::Status {
        op,
        status,
        code,
        message,
    })
}

/// `Content-Length` of a response, as a number.
pub(crate) fn content_length(r: &Response, op: &'static str) -> Result<u64, S3Error> {
    r.header("content-length")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| protocol(op, "no Content-Length in the answer"))
}

/// The total size in a `Content-Range: bytes a-b/size` header.
pub(crate) fn content_range_total(r: &Response) -> Option<u64> {
    r.header("content-range")?
        .rsplit_once('/')?
        .1
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_inside_a_success_are_errors() {
        assert!(error_in_body("<CopyObjectResult><ETag>x</ETag></CopyObjectResult>", "op").is_ok());
        let body =
            "<?xml version=\"1.0\"?><Error><Code>InternalError</Code><Message>m</Message></Error>";
        match error_in_body(body, "CompleteMultipartUpload") {
            Err(S3Error::Status {
                status: 503,
                code,
                message,
                ..
            }) => {
                assert_eq!((code.as_str(), message.as_str()), ("InternalError", "m"));
            }
            other => panic!("{other:?}"),
        }
        let body = "<Error><Code>InvalidPart</Code></Error>";
        assert!(matches!(
            error_in_body(body, "op"),
            Err(S3Error::Status { status: 400, .. })
        ));
    }
}
