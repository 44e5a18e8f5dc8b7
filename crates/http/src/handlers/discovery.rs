//! Listings: `GET /v2/<name>/tags/list` and `GET /v2/_catalog`, paginated with `n` and `last`.
//!
//! When the registry says more entries follow, the response carries an RFC 5988 `Link` to the next page,
//! which clients prefer over guessing from the page's length.

use axum::http::StatusCode;
use axum::http::header::{CONTENT_TYPE, HeaderValue, LINK};
use axum::response::{IntoResponse, Response};
use oci::RepoName;
use registry::{Page, Registry};
use serde_json::json;

use super::Result;
use crate::auth::{Access, filtered_catalog};
use crate::headers::value;

pub async fn tags(
    registry: &Registry,
    name: &RepoName,
    n: Option<usize>,
    last: Option<String>,
) -> Result {
    let (tags, more) = registry.list_tags(name, &Page { n, last }).await?;
    let link = next_link(&format!("/v2/{name}/tags/list"), n, &tags, more);
    Ok(listing(
        json!({ "name": name.as_str(), "tags": tags }),
        link,
    ))
}

/// The catalog; with authorization on, only the repositories the caller may pull (see
/// [`crate::auth::filtered_catalog`]).
pub async fn catalog(
    registry: &Registry,
    n: Option<usize>,
    last: Option<String>,
    access: Option<&Access>,
) -> Result {
    let page = Page { n, last };
    let (repositories, more) = match access {
        Some(access) => filtered_catalog(registry, &page, |repo| access.lists(repo)).await?,
        None => registry.catalog(&page).await?,
    };
    let link = next_link("/v2/_catalog", n, &repositories, more);
    Ok(listing(json!({ "repositories": repositories }), link))
}

/// `</path?n=N&last=X>; rel="next"` when more follow. `N` is the page size asked for, or, when the client
/// left it to the registry, the size of this page. Tags and repository names need no escaping in a query.
pub(super) fn next_link(
    path: &str,
    n: Option<usize>,
    page: &[String],
    more: bool,
) -> Option<String> {
    let last = page.last().filter(|_| more)?;
    let n = n.unwrap_or(page.len());
    Some(format!("<{path}?n={n}&last={last}>; rel=\"next\""))
}

pub(super) fn listing(body: serde_json::Value, link: Option<String>) -> Response {
    let content_type = (CONTENT_TYPE, HeaderValue::from_static("application/json"));
    match link {
        Some(link) => (
            StatusCode::OK,
            [content_type, (LINK, value(link))],
            body.to_string(),
        )
            .into_response(),
        None => (StatusCode::OK, [content_type], body.to_string()).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_only_when_more_follow() {
        let page = vec!["a".to_string(), "b/c".to_string()];
        assert_eq!(
            next_link("/v2/_catalog", Some(2), &page, true).as_deref(),
            Some("</v2/_catalog?n=2&last=b/c>; rel=\"next\"")
        );
        assert_eq!(
            next_link("/v2/x/tags/list", None, &page, true).as_deref(),
            Some("</v2/x/tags/list?n=2&last=b/c>; rel=\"next\"")
        );
        assert_eq!(next_link("/v2/_catalog", Some(2), &page, false), None);
        assert_eq!(next_link("/v2/_catalog", Some(0), &[], true), None);
    }
}
