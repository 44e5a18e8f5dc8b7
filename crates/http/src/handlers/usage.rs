//! `GET /v2/_berth/usage?n=&last=`: what each repository stores, paged like the catalog, and on the first
//! page the quotas with what they hold. berth's own endpoint (the web interface reads it), documented in
//! docs/usage.md.
//!
//! With authorization on, a repository is listed only to a caller who may list it in the catalog, and a
//! quota only to one who may list every repository it covers: neither tells a caller about repositories
//! they cannot see.

use oci::RepoName;
use registry::{Page, Registry, RepoUsage};
use serde_json::json;

use super::Result;
use super::discovery::{listing, next_link};
use crate::auth::{Access, filtered_page};

pub async fn report(
    registry: &Registry,
    n: Option<usize>,
    last: Option<String>,
    access: Option<&Access>,
) -> Result {
    let first = last.is_none();
    let page = Page { n, last };
    let (repos, more) = match access {
        Some(access) => {
            filtered_page(
                &page,
                |batch| async move { registry.usage(&batch).await },
                |u: &RepoUsage| u.repo.as_str(),
                |repo| access.lists(repo),
            )
            .await?
        }
        None => registry.usage(&page).await?,
    };
    let names: Vec<String> = repos.iter().map(|u| u.repo.to_string()).collect();
    let link = next_link("/v2/_berth/usage", n, &names, more);
    let mut body = json!({ "repositories": repos.iter().map(repository).collect::<Vec<_>>() });
    if first {
        let mut quotas = Vec::new();
        for q in registry.quota_usage().await? {
            if access.is_none_or(|a| q.scope.iter().all(|r: &RepoName| a.lists(r.as_str()))) {
                quotas.push(json!({
                    "repositories": q.quota.repositories.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
                    "limitBytes": q.quota.bytes,
                    "usedBytes": q.used,
                }));
            }
        }
        body["quotas"] = json!(quotas);
    }
    Ok(listing(body, link))
}

fn repository(u: &RepoUsage) -> serde_json::Value {
    json!({
        "name": u.repo.as_str(),
        "bytes": u.bytes,
        "sharedBytes": u.shared_bytes,
        "manifests": u.manifests,
        "tags": u.tags,
        "lastPush": u.last_push,
        "lastPull": u.last_pull,
    })
}
