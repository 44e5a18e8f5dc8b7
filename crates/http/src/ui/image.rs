//! `/ui/image/<name>@<digest>`: one manifest. An index lists its platforms; an image its config
//! (platform, entrypoint, command, env, labels, history) and layers; both their annotations, the tags
//! that point at them, and their referrers (signatures, SBOMs, attestations) grouped by artifact type.

use std::collections::BTreeMap;

use axum::http::HeaderMap;
use axum::response::Response;
use futures_util::StreamExt;
use maud::{Markup, html};
use oci::{Digest, Reference, RepoName};
use registry::{Referrer, Registry};

use super::layout::{bytes, respond, short_digest};
use super::view::{ConfigView, Desc, ManifestView, is_image_config, string_map};
use super::{Failure, Ui};
use crate::ui::paths::Links;

/// The largest config read for the page; a larger one is named but not shown.
const MAX_CONFIG: u64 = 1 << 20;

pub async fn page(ui: &Ui, headers: &HeaderMap, name: RepoName, digest: Digest) -> Response {
    match render(ui, headers, &name, &digest).await {
        Ok(resp) => resp,
        Err(f) => f.into_page(ui.links()),
    }
}

/// One manifest as the page and `/api/v1/repositories/<name>/manifests/<digest>` show it.
pub struct Details {
    pub view: ManifestView,
    /// The tags pointing at it.
    pub tags: Vec<String>,
    /// An image's config, when it is one berth reads (an image config of at most [`MAX_CONFIG`]).
    pub config: Option<ConfigView>,
    /// Its referrers by artifact type (or media type, for those without one).
    pub referrers: BTreeMap<String, Vec<Referrer>>,
    /// An index's own bytes, or an image's config and layers.
    pub size: u64,
}

/// Manifest `digest` of `name`, read without counting as a pull. The caller checked the viewer may
/// pull.
pub async fn load(
    registry: &Registry,
    name: &RepoName,
    digest: &Digest,
) -> Result<Details, Failure> {
    let m = registry
        .head_manifest(name, &Reference::Digest(digest.clone()))
        .await?;
    let view = ManifestView::parse(&m.payload, &m.media_type);
    let tags: Vec<String> = registry
        .tag_details(name)
        .await?
        .into_iter()
        .filter(|t| &t.digest == digest)
        .map(|t| t.tag.to_string())
        .collect();
    let config = match &view.config {
        Some(c) if is_image_config(&c.media_type) && c.size <= MAX_CONFIG => {
            read_config(registry, name, &c.digest).await
        }
        _ => None,
    };
    let mut referrers: BTreeMap<String, Vec<Referrer>> = BTreeMap::new();
    for r in registry.referrers(name, digest, None).await?.manifests {
        let kind = r
            .artifact_type
            .clone()
            .unwrap_or_else(|| r.media_type.clone());
        referrers.entry(kind).or_default().push(r);
    }
    let size = if view.is_index() {
        m.payload.len() as u64
    } else {
        view.image_bytes()
    };
    Ok(Details {
        view,
        tags,
        config,
        referrers,
        size,
    })
}

async fn render(
    ui: &Ui,
    headers: &HeaderMap,
    name: &RepoName,
    digest: &Digest,
) -> Result<Response, Failure> {
    let mut viewer = ui.viewer(headers).await?;
    viewer.check_pull(name.as_str()).await?;
    let registry = ui.registry();
    let can_delete = registry.settings().delete_enabled && viewer.may_delete(name.as_str());
    let Details {
        view,
        tags,
        config,
        referrers,
        size,
    } = load(registry, name, digest).await?;
    let links = ui.links();
    let crumbs = html! {
        span.sep { "/" } a href=(links.repo(name, None)) { (name.as_str()) }
        span.sep { "@" } span.mono { (short_digest(digest)) }
    };
    let main = html! {
        h1 { (name.as_str()) "@" (short_digest(digest)) }
        dl.facts {
            dt { "Digest" } dd.mono { (digest) }
            dt { "Media type" } dd.mono { (view.media_type) }
            @if let Some(t) = &view.artifact_type { dt { "Artifact type" } dd.mono { (t) } }
            dt { @if view.is_index() { "Index size" } @else { "Size" } }
            dd title={ (size) " bytes" } { (bytes(size)) }
            dt { "Tags" }
            dd { @if tags.is_empty() { span.muted { "none" } } @else { (tags.join(", ")) } }
            @if let Some(subject) = &view.subject {
                dt { "Refers to" }
                dd { a.mono href=(links.image(name, subject)) { (subject) } }
            }
        }
        @if view.is_index() {
            h2 { "Platforms" }
            (platforms(links, name, &view.children))
        } @else {
            (config_section(&view, config.as_ref()))
            h2 { "Layers" }
            @if view.layers.is_empty() { p.muted { "No layers." } }
            @else { (layers(&view.layers)) }
        }
        @if !view.annotations.is_empty() {
            h2 { "Annotations" }
            (pairs("annotations", &view.annotations))
        }
        @if can_delete {
            p { a.delete #delete-manifest href=(links.delete(name, &Reference::Digest(digest.clone()))) {
                "Delete this manifest"
            } }
        }
        h2 { "Referrers" }
        @if referrers.is_empty() {
            p.muted { "Nothing refers to this manifest." }
        }
        @for (kind, list) in &referrers {
            h3.mono { (kind) }
            ul.referrers {
                @for r in list {
                    li {
                        a.mono href=(links.image(name, &r.digest)) title=(r.digest) { (short_digest(&r.digest)) }
                        " " span.muted { (bytes(r.size)) }
                        @let notes = r.annotations.as_deref()
                            .and_then(|a| serde_json::from_str(a).ok())
                            .map(|v: serde_json::Value| string_map(Some(&v)))
                            .unwrap_or_default();
                        @if !notes.is_empty() { (pairs("referrer-annotations", &notes)) }
                    }
                }
            }
        }
    };
    let title = format!("{}@{}", name.as_str(), short_digest(digest));
    Ok(respond(links, &title, crumbs, main))
}

/// The config blob, read whole (it is at most [`MAX_CONFIG`]); `None` if it cannot be read or parsed.
async fn read_config(registry: &Registry, repo: &RepoName, digest: &Digest) -> Option<ConfigView> {
    let blob = registry.get_blob(repo, digest, None).await.ok()?;
    let mut body = blob.body;
    let mut bytes = Vec::new();
    while let Some(chunk) = body.next().await {
        bytes.extend_from_slice(&chunk.ok()?);
        if bytes.len() as u64 > MAX_CONFIG {
            return None;
        }
    }
    ConfigView::parse(&bytes)
}

fn config_section(view: &ManifestView, config: Option<&ConfigView>) -> Markup {
    let words = |w: &Option<Vec<String>>| w.as_ref().map(|w| w.join(" "));
    html! {
        h2 { "Config" }
        @if let Some(c) = &view.config {
            p.muted { span.mono { (short_digest(&c.digest)) } " · " (c.media_type) " · " (bytes(c.size)) }
        }
        @if let Some(cfg) = config {
            dl.facts #config {
                @if let Some(p) = &cfg.platform { dt { "Platform" } dd { (p) } }
                @if let Some(c) = &cfg.created { dt { "Created" } dd { (c) } }
                @if let Some(e) = words(&cfg.entrypoint) { dt { "Entrypoint" } dd { code { (e) } } }
                @if let Some(c) = words(&cfg.cmd) { dt { "Command" } dd { code { (c) } } }
                @if let Some(w) = &cfg.working_dir { dt { "Working directory" } dd { code { (w) } } }
                @if let Some(u) = &cfg.user { dt { "User" } dd { code { (u) } } }
                @if !cfg.exposed_ports.is_empty() { dt { "Ports" } dd { (cfg.exposed_ports.join(", ")) } }
            }
            @if !cfg.env.is_empty() {
                h3 { "Environment" }
                ul.plain #env { @for e in &cfg.env { li { code { (e) } } } }
            }
            @if !cfg.labels.is_empty() {
                h3 { "Labels" }
                (pairs("labels", &cfg.labels))
            }
            @if !cfg.history.is_empty() {
                h3 { "History" }
                ol #history {
                    @for (step, layer) in &cfg.history {
                        li { code { (step) } @if !layer { " " span.muted { "(no layer)" } } }
                    }
                }
            }
        } @else {
            p.muted { "No image config to show." }
        }
    }
}

fn layers(list: &[Desc]) -> Markup {
    html! {
        table #layers {
            thead { tr {
                th.num scope="col" { "#" }
                th scope="col" { "Digest" }
                th.wide scope="col" { "Media type" }
                th.num scope="col" { "Size" }
            } }
            tbody {
                @for (i, l) in list.iter().enumerate() {
                    tr {
                        td.num { (i + 1) }
                        td.mono title=(l.digest) { (short_digest(&l.digest)) }
                        td.wide.mono { (l.media_type) }
                        td.num title={ (l.size) " bytes" } { (bytes(l.size)) }
                    }
                }
            }
        }
    }
}

/// An index's entries, each linked to its own page.
fn platforms(links: &Links, name: &RepoName, list: &[Desc]) -> Markup {
    html! {
        table #manifests {
            thead { tr {
                th scope="col" { "Platform" }
                th scope="col" { "Manifest" }
                th.wide scope="col" { "Media type" }
                th.num scope="col" { "Size" }
            } }
            tbody {
                @for d in list {
                    tr {
                        td { (d.platform.as_deref().unwrap_or("")) }
                        td { a.mono href=(links.image(name, &d.digest)) title=(d.digest) { (short_digest(&d.digest)) } }
                        td.wide.mono { (d.artifact_type.as_deref().unwrap_or(&d.media_type)) }
                        td.num { (bytes(d.size)) }
                    }
                }
            }
        }
    }
}

fn pairs(id: &str, list: &[(String, String)]) -> Markup {
    html! {
        table.pairs id=(id) {
            tbody {
                @for (k, v) in list {
                    tr { th.mono scope="row" { (k) } td { (v) } }
                }
            }
        }
    }
}
