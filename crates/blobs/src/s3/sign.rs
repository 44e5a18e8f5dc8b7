//! AWS Signature Version 4 for S3, written out rather than taken from an SDK: it is one page of
//! hashing, and the SDKs bring hundreds of crates (the machine that builds berth has two cores).
//!
//! Two forms: the `Authorization` header of every request, and the query string of a presigned URL
//! (for handing a client a time-limited GET). Both follow AWS's "Signature Calculations for the
//! Authorization Header" and "Authenticating Requests: Using Query Parameters" pages for S3: the path
//! is URI-encoded once (S3 does not double-encode), the query sorted and encoded, the headers
//! lower-cased and sorted. The tests reproduce AWS's published examples to the hex digit.

use sha2::{Digest as _, Sha256};

use super::time::Utc;

/// The payload hash for a body that is not hashed: allowed by S3 for any request; used for part data,
/// which is large and whose integrity is the transport's business (and TLS's, on `https`).
pub(crate) const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";

/// Lower-case hex SHA-256 of `data`: the `x-amz-content-sha256` of a small body.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// HMAC-SHA256 (RFC 2104) with a 64-byte block.
fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(data)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// Percent-encodes everything but RFC 3986's unreserved characters (and `/` when `keep_slash`), as
/// SigV4 requires for paths (keeping `/`) and query components (encoding it).
pub(crate) fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/')
        {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The parts of a request that its signature covers.
pub(crate) struct SignedParts<'a> {
    pub method: &'a str,
    /// The path as sent: already URI-encoded (see [`uri_encode`]).
    pub path: &'a str,
    /// Query parameters, not encoded; a parameter without a value has an empty one.
    pub query: &'a [(String, String)],
    /// Headers to sign, `host` among them; names in any case.
    pub headers: &'a [(String, String)],
    /// Hex SHA-256 of the body, or [`UNSIGNED_PAYLOAD`].
    pub payload_hash: &'a str,
}

/// The query string in canonical form (sorted, encoded): also what is sent, so the two always agree.
pub(crate) fn canonical_query(query: &[(String, String)]) -> String {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (uri_encode(k, false), uri_encode(v, false)))
        .collect();
    pairs.sort();
    let parts: Vec<String> = pairs.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    parts.join("&")
}

/// Credentials and scope of one S3 endpoint.
#[derive(Clone)]
pub(crate) struct Signer {
    access_key: String,
    secret_key: String,
    region: String,
}

/// Never prints the secret.
impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("access_key", &self.access_key)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl Signer {
    pub fn new(access_key: &str, secret_key: &str, region: &str) -> Signer {
        Signer {
            access_key: access_key.to_string(),
            secret_key: secret_key.to_string(),
            region: region.to_string(),
        }
    }

    fn scope(&self, now: &Utc) -> String {
        format!("{}/{}/s3/aws4_request", now.date_stamp(), self.region)
    }

    fn signing_key(&self, now: &Utc) -> [u8; 32] {
        let secret = format!("AWS4{}", self.secret_key);
        let k_date = hmac_sha256(secret.as_bytes(), now.date_stamp().as_bytes());
        let k_region = hmac_sha256(&k_date, self.region.as_bytes());
        let k_service = hmac_sha256(&k_region, b"s3");
        hmac_sha256(&k_service, b"aws4_request")
    }

    /// Returns (signed header names, signature).
    fn sign(&self, parts: &SignedParts<'_>, now: &Utc) -> (String, String) {
        let mut headers: Vec<(String, String)> = parts
            .headers
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        headers.sort();
        let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
        let signed: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
        let signed = signed.join(";");
        let canonical = format!(
            "{}\n{}\n{}\n{}\n{}\n{}",
            parts.method,
            parts.path,
            canonical_query(parts.query),
            canonical_headers,
            signed,
            parts.payload_hash
        );
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{}\n{}\n{}",
            now.amz_date(),
            self.scope(now),
            sha256_hex(canonical.as_bytes())
        );
        let signature = hex::encode(hmac_sha256(&self.signing_key(now), to_sign.as_bytes()));
        (signed, signature)
    }

    /// The `Authorization` header for a request whose signed headers include `x-amz-date` set to
    /// `now.amz_date()` and `x-amz-content-sha256` set to the payload hash.
    pub fn authorization(&self, parts: &SignedParts<'_>, now: &Utc) -> String {
        let (signed, signature) = self.sign(parts, now);
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{},SignedHeaders={signed},Signature={signature}",
            self.access_key,
            self.scope(now)
        )
    }

    /// The query parameters that presign a GET of `path` on `host` for `expires_secs` seconds, to be
    /// appended to `query` (which they sign too). Only `host` is signed, so any client can use the URL.
    pub fn presign(
        &self,
        host: &str,
        path: &str,
        query: &[(String, String)],
        now: &Utc,
        expires_secs: u64,
    ) -> Vec<(String, String)> {
        let mut params = query.to_vec();
        params.extend([
            (
                "X-Amz-Algorithm".to_string(),
                "AWS4-HMAC-SHA256".to_string(),
            ),
            (
                "X-Amz-Credential".to_string(),
                format!("{}/{}", self.access_key, self.scope(now)),
            ),
            ("X-Amz-Date".to_string(), now.amz_date()),
            ("X-Amz-Expires".to_string(), expires_secs.to_string()),
            ("X-Amz-SignedHeaders".to_string(), "host".to_string()),
        ]);
        let headers = [("host".to_string(), host.to_string())];
        let parts = SignedParts {
            method: "GET",
            path,
            query: &params,
            headers: &headers,
            payload_hash: UNSIGNED_PAYLOAD,
        };
        let (_, signature) = self.sign(&parts, now);
        params.push(("X-Amz-Signature".to_string(), signature));
        params
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    // AWS's example credentials and moment (Fri, 24 May 2013 00:00:00 GMT) from the S3 SigV4 pages.
    const ACCESS: &str = "AKIAIOSFODNN7EXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    const EMPTY_SHA: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn moment() -> Utc {
        Utc::from_system(UNIX_EPOCH + Duration::from_secs(1_369_353_600))
    }

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 2 of RFC 4231.
        assert_eq!(
            hex::encode(hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block is hashed first.
        assert_eq!(
            hex::encode(hmac_sha256(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn get_object_example() {
        let signer = Signer::new(ACCESS, SECRET, "us-east-1");
        let h = headers(&[
            ("Host", "examplebucket.s3.amazonaws.com"),
            ("Range", "bytes=0-9"),
            ("x-amz-content-sha256", EMPTY_SHA),
            ("x-amz-date", "20130524T000000Z"),
        ]);
        let parts = SignedParts {
            method: "GET",
            path: "/test.txt",
            query: &[],
            headers: &h,
            payload_hash: EMPTY_SHA,
        };
        assert_eq!(
            signer.authorization(&parts, &moment()),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,\
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,\
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
    }

    #[test]
    fn put_object_example() {
        let signer = Signer::new(ACCESS, SECRET, "us-east-1");
        let payload = sha256_hex(b"Welcome to Amazon S3.");
        let h = headers(&[
            ("Host", "examplebucket.s3.amazonaws.com"),
            ("Date", "Fri, 24 May 2013 00:00:00 GMT"),
            ("x-amz-date", "20130524T000000Z"),
            ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
            ("x-amz-content-sha256", &payload),
        ]);
        let parts = SignedParts {
            method: "PUT",
            path: &uri_encode("/test$file.text", true),
            query: &[],
            headers: &h,
            payload_hash: &payload,
        };
        let auth = signer.authorization(&parts, &moment());
        assert!(
            auth.ends_with(
                "Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
            ),
            "{auth}"
        );
    }

    #[test]
    fn list_objects_example() {
        let signer = Signer::new(ACCESS, SECRET, "us-east-1");
        let h = headers(&[
            ("Host", "examplebucket.s3.amazonaws.com"),
            ("x-amz-date", "20130524T000000Z"),
            ("x-amz-content-sha256", EMPTY_SHA),
        ]);
        // Given out of order: the canonical query sorts them.
        let query = headers(&[("prefix", "J"), ("max-keys", "2")]);
        let parts = SignedParts {
            method: "GET",
            path: "/",
            query: &query,
            headers: &h,
            payload_hash: EMPTY_SHA,
        };
        let auth = signer.authorization(&parts, &moment());
        assert!(
            auth.ends_with(
                "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
            ),
            "{auth}"
        );
    }

    #[test]
    fn presigned_url_example() {
        let signer = Signer::new(ACCESS, SECRET, "us-east-1");
        let params = signer.presign(
            "examplebucket.s3.amazonaws.com",
            "/test.txt",
            &[],
            &moment(),
            86_400,
        );
        let signature = params
            .iter()
            .find(|(k, _)| k == "X-Amz-Signature")
            .map(|(_, v)| v.as_str());
        assert_eq!(
            signature,
            Some("aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404")
        );
    }

    #[test]
    fn encodes_like_sigv4() {
        assert_eq!(uri_encode("a b/c~d_e.f-g", true), "a%20b/c~d_e.f-g");
        assert_eq!(uri_encode("a/b=c&d", false), "a%2Fb%3Dc%26d");
        assert_eq!(uri_encode("é", false), "%C3%A9");
        let q = headers(&[("uploads", ""), ("b", "2"), ("a", "x/y")]);
        assert_eq!(canonical_query(&q), "a=x%2Fy&b=2&uploads=");
    }
}
