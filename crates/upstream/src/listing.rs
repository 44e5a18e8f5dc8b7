//! The upstream's lists, a page at a time: a repository's tags (`GET /v2/<name>/tags/list`, as
//! registry:3's pull-through cache lists them) and the catalog (`GET /v2/_catalog`, for replication's
//! repository patterns). Each answer is bounded (a page of names is small JSON); a `Link` header says
//! more follow.

use hyper::Method;
use oci::RepoName;
use registry::proxy::UpstreamError;
use serde_json::Value;

use crate::client::read_limited;
use crate::fetch::Fetcher;
use crate::manifest::scope;
use crate::status::classify;

/// More than this is not a page of names (10,000 names of 255 characters, quoted, fit well within it).
const MAX_PAGE_RESPONSE: usize = 4 << 20;

/// One page of `repo`'s tags: at most `n`, after `last`, and whether more follow; `None` on 404.
pub(crate) async fn tags(
    f: &Fetcher,
    repo: &RepoName,
    n: usize,
    last: Option<&str>,
) -> Result<Option<(Vec<String>, bool)>, UpstreamError> {
    // Tags are [A-Za-z0-9_.-]: nothing to escape; anything else is not a tag and is not sent.
    let tag_char = |b: u8| b.is_ascii_alphanumeric() || b"_.-".contains(&b);
    let path = format!("/v2/{}/tags/list", repo.as_str());
    page(f, &path, &scope(repo), "tags", n, last, tag_char).await
}

/// One page of the upstream's catalog: at most `n` names, after `last`, and whether more follow;
/// `None` on 404 (a registry without a catalog, as Docker Hub).
pub(crate) async fn catalog(
    f: &Fetcher,
    n: usize,
    last: Option<&str>,
) -> Result<Option<(Vec<String>, bool)>, UpstreamError> {
    // Repository names are [a-z0-9._/-]: nothing a query value needs escaped.
    let name_char = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._/-".contains(&b);
    page(
        f,
        "/v2/_catalog",
        "registry:catalog:*",
        "repositories",
        n,
        last,
        name_char,
    )
    .await
}

async fn page(
    f: &Fetcher,
    path: &str,
    scope: &str,
    key: &str,
    n: usize,
    last: Option<&str>,
    allowed: impl Fn(u8) -> bool,
) -> Result<Option<(Vec<String>, bool)>, UpstreamError> {
    let mut path = format!("{path}?n={n}");
    if let Some(last) = last {
        if !last.bytes().all(allowed) {
            return Err(UpstreamError::Protocol(format!(
                "{last:?} is not a name to page after"
            )));
        }
        path.push_str("&last=");
        path.push_str(last);
    }
    let what = format!("{key} list");
    let resp = f.request(Method::GET, &path, None, scope).await?;
    let Some(resp) = classify(resp, &what)? else {
        return Ok(None);
    };
    let more = resp.headers().contains_key(hyper::header::LINK);
    let body = read_limited(
        resp.into_body(),
        MAX_PAGE_RESPONSE,
        f.http.stall_timeout(),
        &what,
    )
    .await?;
    let list: Value = serde_json::from_slice(&body)
        .map_err(|e| UpstreamError::Protocol(format!("a {what} that is not its JSON: {e}")))?;
    // Not an object: an error, never an empty list (an empty tag list can delete local tags).
    let Some(list) = list.as_object() else {
        return Err(UpstreamError::Protocol(format!(
            "a {what} that is not a JSON object"
        )));
    };
    // registry:2 sends `null` for a repository without tags.
    let mut names: Vec<String> = match list.get(key).unwrap_or(&Value::Null) {
        Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| UpstreamError::Protocol(format!("a {what} holding a non-string")))?,
        Value::Null => Vec::new(),
        _ => {
            return Err(UpstreamError::Protocol(format!(
                "a {what} without its list"
            )));
        }
    };
    // The page asked for, whatever the upstream sent.
    names.truncate(n);
    Ok(Some((names, more)))
}
