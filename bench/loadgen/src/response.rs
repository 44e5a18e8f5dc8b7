//! Parsing the head of an HTTP/1.1 answer: the status, the length of the head, the `Content-Length`,
//! and whether the connection stays open. Just enough for the rate workloads, and strict about it: an
//! answer this cannot frame is counted as an error, never guessed at.

/// The head of one answer.
#[derive(Debug, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    /// Bytes up to and including the blank line.
    pub length: usize,
    pub content_length: Option<usize>,
    pub keep_alive: bool,
}

/// A head that is not HTTP/1.x as this tool understands it.
#[derive(Debug, PartialEq, Eq)]
pub struct Malformed;

/// `Ok(None)` while the head is incomplete.
pub fn parse_head(buf: &[u8]) -> Result<Option<Head>, Malformed> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if buf.len() > 64 * 1024 {
            Err(Malformed)
        } else {
            Ok(None)
        };
    };
    let text = std::str::from_utf8(&buf[..end]).map_err(|_| Malformed)?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().ok_or(Malformed)?;
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().ok_or(Malformed)?;
    let status: u16 = parts.next().and_then(|s| s.parse().ok()).ok_or(Malformed)?;
    if !version.starts_with("HTTP/1.") {
        return Err(Malformed);
    }
    // HTTP/1.1 keeps the connection open unless told otherwise; 1.0 closes unless told otherwise.
    let mut keep_alive = version == "HTTP/1.1";
    let mut content_length = None;
    for line in lines {
        let (name, value) = line.split_once(':').ok_or(Malformed)?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            content_length = Some(value.parse().map_err(|_| Malformed)?);
        } else if name.eq_ignore_ascii_case("connection") {
            if value.eq_ignore_ascii_case("close") {
                keep_alive = false;
            } else if value.eq_ignore_ascii_case("keep-alive") {
                keep_alive = true;
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            // Chunked framing is not supported: no Content-Length then, and the caller refuses it.
            content_length = None;
        }
    }
    Ok(Some(Head {
        status,
        length: end + 4,
        content_length,
        keep_alive,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn incomplete_until_the_blank_line() {
        assert_eq!(
            parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"),
            Ok(None)
        );
    }

    #[test]
    fn status_length_and_framing() {
        let raw = b"HTTP/1.1 404 Not Found\r\ncontent-length: 17\r\nX: y\r\n\r\n{\"errors\":[]}";
        let h = parse_head(raw).unwrap().unwrap();
        assert_eq!(h.status, 404);
        assert_eq!(h.length, raw.len() - 13);
        assert_eq!(h.content_length, Some(17));
        assert!(h.keep_alive);
    }

    #[test]
    fn connection_close_and_http10() {
        let h = parse_head(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!h.keep_alive);
        let h = parse_head(b"HTTP/1.0 200 OK\r\n\r\n").unwrap().unwrap();
        assert!(!h.keep_alive);
        let h = parse_head(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(h.keep_alive);
    }

    #[test]
    fn chunked_has_no_length() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(parse_head(raw).unwrap().unwrap().content_length, None);
    }

    #[test]
    fn malformed_heads() {
        assert_eq!(parse_head(b"SSH-2.0\r\n\r\n"), Err(Malformed));
        assert_eq!(parse_head(b"HTTP/1.1 abc OK\r\n\r\n"), Err(Malformed));
        assert_eq!(
            parse_head(b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n"),
            Err(Malformed)
        );
        assert_eq!(
            parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"),
            Err(Malformed)
        );
        assert_eq!(parse_head(&vec![b'a'; 70 * 1024]), Err(Malformed));
    }
}
