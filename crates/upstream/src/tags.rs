//! A cached repository's tags from the upstream: one page of `GET /v2/<name>/tags/list`, as registry:3's
//! pull-through cache lists them. The answer is bounded (a page of tags is small JSON); a `Link` header
//! says more follow.

use hyper::Method;
use oci::RepoName;
use registry::proxy::UpstreamError;
use serde::Deserialize;

use crate::client::read_limited;
use crate::fetch::Fetcher;
use crate::manifest::scope;
use crate::status::classify;

/// More than this is not a page of tags (10,000 names of 128 characters, quoted, fit well within it).
const MAX_TAGS_RESPONSE: usize = 4 << 20;

#[derive(Deserialize)]
struct TagList {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

pub(crate) async fn list(
    f: &Fetcher,
    repo: &RepoName,
    n: usize,
    last: Option<&str>,
) -> Result<Option<(Vec<String>, bool)>, UpstreamError> {
    let mut path = format!("/v2/{}/tags/list?n={n}", repo.as_str());
    if let Some(last) = last {
        // Tags are [A-Za-z0-9_.-]: nothing to escape; anything else is not a tag and is not sent.
        if !last
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
        {
            return Err(UpstreamError::Protocol(format!(
                "{last:?} is not a tag to page after"
            )));
        }
        path.push_str("&last=");
        path.push_str(last);
    }
    let resp = f.request(Method::GET, &path, None, &scope(repo)).await?;
    let Some(resp) = classify(resp, "tag list")? else {
        return Ok(None);
    };
    let more = resp.headers().contains_key(hyper::header::LINK);
    let body = read_limited(
        resp.into_body(),
        MAX_TAGS_RESPONSE,
        f.http.stall_timeout(),
        "tag list",
    )
    .await?;
    let list: TagList = serde_json::from_slice(&body)
        .map_err(|e| UpstreamError::Protocol(format!("a tag list that is not its JSON: {e}")))?;
    let mut tags = list.tags.unwrap_or_default();
    // The page asked for, whatever the upstream sent.
    tags.truncate(n);
    Ok(Some((tags, more)))
}
