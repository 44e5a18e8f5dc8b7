//! `/ui/repo/<name>`: a repository's tags, each with the image it points at (digest, kind or platforms,
//! size), when it was pushed and last pulled, the `docker pull` line for it, and a link to delete it
//! for those who may.
//!
//! Manifests are read with HEAD semantics (`Registry::head_manifest`): looking at a page is not a pull,
//! so it never keeps an image from retention.

use std::collections::HashMap;

use axum::http::HeaderMap;
use axum::response::Response;
use maud::html;
use oci::{Digest, Reference, RepoName};
use registry::{Registry, TagAge};

use super::layout::{bytes, respond, short_digest, time};
use super::paths::query_value;
use super::view::ManifestView;
use super::{Failure, Ui};

/// Tags on one page.
pub const PER_PAGE: usize = 100;
/// Most children of an index read for its size.
const MAX_CHILDREN: usize = 32;

pub async fn page(ui: &Ui, headers: &HeaderMap, name: RepoName, query: &str) -> Response {
    match render(ui, headers, &name, query).await {
        Ok(resp) => resp,
        Err(f) => f.into_page(ui.links()),
    }
}

/// What the tag table says of the image a tag points at.
#[derive(Clone)]
pub struct Summary {
    /// `image`, `index` or `artifact <type>`.
    pub kind: String,
    /// An index's platforms (`os/arch[/variant]`).
    pub platforms: Vec<String>,
    /// An image's config and layers, or the sum of an index's images.
    pub size: u64,
}

/// One page of a repository's tags: what the page and `/api/v1/repositories/<name>/tags` show.
pub struct TagPage {
    /// Every tag of the repository.
    pub total: usize,
    /// The tag the page starts after.
    pub last: Option<String>,
    /// The tags shown, each with its image's summary.
    pub tags: Vec<(TagAge, Summary)>,
    pub more: bool,
}

impl TagPage {
    /// The `last` of the next page, if there is one.
    pub fn next(&self) -> Option<&str> {
        self.more
            .then(|| self.tags.last().map(|(t, _)| t.tag.as_str()))
            .flatten()
    }
}

/// The page of `name`'s tags that `query` (`last`) asks for. The caller checked the viewer may pull.
pub async fn load(ui: &Ui, name: &RepoName, query: &str) -> Result<TagPage, Failure> {
    let registry = ui.registry();
    let all = registry.tag_details(name).await?;
    let total = all.len();
    let last = query_value(query, "last").filter(|l| !l.is_empty());
    let mut after: Vec<TagAge> = all
        .into_iter()
        .filter(|t| last.as_deref().is_none_or(|l| t.tag.as_str() > l))
        .collect();
    let more = after.len() > PER_PAGE;
    after.truncate(PER_PAGE);
    let mut summaries: HashMap<Digest, Summary> = HashMap::new();
    let mut tags = Vec::with_capacity(after.len());
    for t in after {
        if !summaries.contains_key(&t.digest) {
            let s = summarize(registry, name, &t.digest).await?;
            summaries.insert(t.digest.clone(), s);
        }
        let s = summaries[&t.digest].clone();
        tags.push((t, s));
    }
    Ok(TagPage {
        total,
        last,
        tags,
        more,
    })
}

async fn render(
    ui: &Ui,
    headers: &HeaderMap,
    name: &RepoName,
    query: &str,
) -> Result<Response, Failure> {
    let mut viewer = ui.viewer(headers).await?;
    viewer.check_pull(name.as_str()).await?;
    let registry = ui.registry();
    let can_delete = registry.settings().delete_enabled && viewer.may_delete(name.as_str());
    // After a delete from `ui/delete.rs`; shown only if it names a tag or digest, so the link cannot
    // put a sentence of someone else's on the page.
    let deleted = query_value(query, "deleted").and_then(|d| d.parse::<Reference>().ok());
    let page = load(ui, name, query).await?;
    let TagPage {
        total, last, tags, ..
    } = &page;
    let host = ui.pull_host(headers);
    let links = ui.links();
    let crumbs = html! { span.sep { "/" } span { (name.as_str()) } };
    let main = html! {
        h1 { (name.as_str()) }
        @if let Some(d) = &deleted {
            p.notice #deleted role="status" { "Deleted " span.mono { (d) } "." }
        }
        p.muted { (total) " tags" }
        @if tags.is_empty() {
            p.empty { "No tags." }
        } @else {
            table #tags {
                thead { tr {
                    th scope="col" { "Tag" }
                    th scope="col" { "Image" }
                    th.num scope="col" { "Size" }
                    th.wide scope="col" { "Pushed" }
                    th.wide scope="col" { "Last pulled" }
                    th scope="col" { "Pull" }
                    @if can_delete { th scope="col" { span.visually-hidden { "Delete" } } }
                } }
                tbody {
                    @for (t, s) in tags {
                        tr {
                            td { (t.tag.as_str()) }
                            td {
                                a.mono href=(links.image(name, &t.digest)) title=(t.digest) {
                                    (short_digest(&t.digest))
                                }
                                br;
                                span.muted {
                                    (s.kind)
                                    @if !s.platforms.is_empty() { ": " (s.platforms.join(", ")) }
                                }
                            }
                            td.num { (bytes(s.size)) }
                            td.wide { (time(Some(t.pushed_at))) }
                            td.wide { (time(t.pulled_at)) }
                            td { code.pull { "docker pull " (host) "/" (name.as_str()) ":" (t.tag.as_str()) } }
                            @if can_delete {
                                td {
                                    a.delete href=(links.delete(name, &Reference::Tag(t.tag.clone())))
                                        aria-label={ "Delete tag " (t.tag.as_str()) } { "Delete" }
                                }
                            }
                        }
                    }
                }
            }
        }
        p.pager {
            @if last.is_some() { a href=(links.repo(name, None)) { "First page" } " " }
            @if let Some(next) = page.next() {
                a rel="next" href=(links.repo(name, Some(next))) { "Next page" }
            }
        }
    };
    Ok(respond(links, name.as_str(), crumbs, main))
}

/// The kind, platforms and size of manifest `digest`: an image's config and layers, or the sum of an
/// index's images.
async fn summarize(
    registry: &Registry,
    repo: &RepoName,
    digest: &Digest,
) -> Result<Summary, Failure> {
    let m = registry
        .head_manifest(repo, &Reference::Digest(digest.clone()))
        .await?;
    let view = ManifestView::parse(&m.payload, &m.media_type);
    if !view.is_index() {
        let kind = match &view.artifact_type {
            Some(t) if !super::view::is_image_config(t) => format!("artifact {t}"),
            _ => "image".to_string(),
        };
        return Ok(Summary {
            kind,
            platforms: Vec::new(),
            size: view.image_bytes(),
        });
    }
    let mut size = 0;
    for child in view.children.iter().take(MAX_CHILDREN) {
        // A child missing (deleted meanwhile) adds nothing; the index is still shown.
        if let Ok(c) = registry
            .head_manifest(repo, &Reference::Digest(child.digest.clone()))
            .await
        {
            size += ManifestView::parse(&c.payload, &c.media_type).image_bytes();
        }
    }
    Ok(Summary {
        kind: "index".to_string(),
        platforms: view
            .children
            .iter()
            .filter_map(|c| c.platform.clone())
            .filter(|p| p != "unknown/unknown")
            .collect(),
        size,
    })
}
