//! Just enough XML to read S3's answers: the text of named elements, and the blocks of repeated
//! elements (`<Contents>`, `<Upload>`, `<Part>`). S3's responses are flat documents of known shape, with
//! no same-name nesting, comments or CDATA in the parts read here, so a scanner does the job that a
//! full parser (and its dependency tree) would.

/// The raw inner text of every `<tag>` element in `xml`, in document order. `<tag/>` counts as empty.
pub(crate) fn blocks<'a>(xml: &'a str, tag: &str) -> Vec<&'a str> {
    let open = format!("<{tag}");
    let close = format!("</{tag}>");
    let mut out = Vec::new();
    let mut rest = xml;
    while let Some(at) = rest.find(&open) {
        let after = &rest[at + open.len()..];
        // `<Key` must not match `<KeyMarker`: the name ends at `>`, `/` or whitespace.
        let Some(next) = after.chars().next() else {
            break;
        };
        if !(next == '>' || next == '/' || next.is_whitespace()) {
            rest = after;
            continue;
        }
        let Some(gt) = after.find('>') else { break };
        if after[..gt].ends_with('/') {
            out.push("");
            rest = &after[gt + 1..];
            continue;
        }
        let body = &after[gt + 1..];
        let Some(end) = body.find(&close) else { break };
        out.push(&body[..end]);
        rest = &body[end + close.len()..];
    }
    out
}

/// The unescaped text of the first `<tag>` element, if any.
pub(crate) fn text(xml: &str, tag: &str) -> Option<String> {
    blocks(xml, tag).first().map(|s| unescape(s))
}

/// Replaces XML's five named entities and numeric character references.
pub(crate) fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp..];
        let Some(semi) = after.find(';') else {
            out.push_str(after);
            return out;
        };
        let entity = &after[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .map(|h| u32::from_str_radix(h, 16))
                .or_else(|| entity.strip_prefix('#').map(str::parse::<u32>))
                .and_then(Result::ok)
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &after[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Escapes text for an element's content (the part lists of CompleteMultipartUpload).
pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTING: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><KeyCount>2</KeyCount>
<IsTruncated>true</IsTruncated><NextContinuationToken>t&amp;1</NextContinuationToken>
<Contents><Key>a/1</Key><Size>5</Size><ETag>&quot;abc&quot;</ETag></Contents>
<Contents><Key>a/&lt;2&gt;</Key><Size>0</Size><StorageClass/></Contents></ListBucketResult>"#;

    #[test]
    fn reads_elements_and_blocks() {
        assert_eq!(text(LISTING, "IsTruncated").as_deref(), Some("true"));
        assert_eq!(
            text(LISTING, "NextContinuationToken").as_deref(),
            Some("t&1")
        );
        let contents = blocks(LISTING, "Contents");
        assert_eq!(contents.len(), 2);
        assert_eq!(text(contents[0], "ETag").as_deref(), Some("\"abc\""));
        assert_eq!(text(contents[1], "Key").as_deref(), Some("a/<2>"));
        assert_eq!(text(contents[1], "StorageClass").as_deref(), Some(""));
        assert_eq!(text(LISTING, "Missing"), None);
        // A name that is a prefix of another is not confused with it.
        assert_eq!(
            text("<KeyMarker>x</KeyMarker><Key>y</Key>", "Key").as_deref(),
            Some("y")
        );
    }

    #[test]
    fn unescapes_and_escapes() {
        assert_eq!(unescape("a&amp;b&#65;&#x42;&bogus;&"), "a&bAB&bogus;&");
        assert_eq!(escape("\"a\"<&>"), "&quot;a&quot;&lt;&amp;&gt;");
        assert_eq!(unescape(&escape("\"e\"&<x>")), "\"e\"&<x>");
    }
}
