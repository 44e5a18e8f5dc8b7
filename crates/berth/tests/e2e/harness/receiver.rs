//! What the tests' small HTTP receivers (notification endpoints, an OTLP collector) have in common: one
//! request read off a connection, head and body, by hand (a test server needs no more than this).

use std::io::BufRead;

/// One request as a receiver reads it.
pub struct Received {
    pub path: String,
    /// As sent, without surrounding space; empty when absent.
    pub content_type: String,
    pub body: Vec<u8>,
}

/// The next request on the connection `reader` reads; `None` when the peer closed it or sent less
/// than a whole request.
pub fn read_request(reader: &mut impl BufRead) -> Option<Received> {
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).ok()? == 0 {
        return None;
    }
    let path = request_line.split_whitespace().nth(1)?.to_string();
    let mut length = 0usize;
    let mut content_type = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().ok()?,
            "content-type" => content_type = value.trim().to_string(),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Received {
        path,
        content_type,
        body,
    })
}
