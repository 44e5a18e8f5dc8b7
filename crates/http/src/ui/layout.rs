//! The page shell every page is rendered into, and how sizes, times and digests are written.

use axum::http::HeaderValue;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use super::paths::Links;

/// A whole page: `title`, the breadcrumb after the home link, and the main content.
pub fn respond(links: &Links, title: &str, crumbs: Markup, main: Markup) -> Response {
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                title { (title) " · berth" }
                link rel="stylesheet" href=(links.style());
            }
            body {
                header {
                    nav aria-label="Breadcrumb" {
                        a.brand href=(links.home()) { "berth" }
                        (crumbs)
                    }
                    nav.aside aria-label="Site" {
                        a href=(links.registry()) { "Registry" }
                        a.login href=(links.login()) { "Sign in" }
                        @if let Some(logout) = links.logout() {
                            a.logout href=(logout) { "Sign out" }
                        }
                    }
                }
                main { (main) }
            }
        }
    };
    let mut resp = page.into_string().into_response();
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    resp
}

/// `1.5 MiB`: binary units, one decimal from KiB on.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Unix seconds as `2025-06-01 12:34 UTC`; `never` for `None`.
pub fn time(secs: Option<i64>) -> String {
    let Some(secs) = secs else {
        return "never".to_string();
    };
    // Past year 9999: not a time anything recorded.
    registry::clock::utc_minute(secs).unwrap_or_else(|| format!("{secs} (Unix time)"))
}

/// `sha256:0123456789ab`: enough of a digest to tell images apart on a page (the full one is in the link
/// and its title).
pub fn short_digest(digest: &oci::Digest) -> String {
    let hex = digest.hex();
    format!("{}:{}", digest.algorithm(), &hex[..hex.len().min(12)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_times_read_well() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(5 << 30), "5.0 GiB");
        assert_eq!(time(None), "never");
        assert_eq!(time(Some(0)), "1970-01-01 00:00 UTC");
        assert_eq!(time(Some(951_782_400)), "2000-02-29 00:00 UTC");
        assert_eq!(time(Some(1_796_605_200)), "2026-12-07 01:00 UTC");
    }
}
