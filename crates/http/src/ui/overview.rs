//! `/ui/registry`: the registry as a whole. What is stored and what garbage collection would free (the
//! metadata's totals, the same on every replica), what this process's collections freed and its
//! retention runs deleted and its replication passes copied, the
//! pull-through cache (its upstreams, what it holds, and what it served since this process started),
//! and health. Only callers who may pull every repository see it ([`super::Viewer::check_registry`]):
//! the figures add up repositories others may not see.

use axum::http::HeaderMap;
use axum::response::Response;
use maud::html;
use registry::StoreTotals;
use registry::gc::GcTotalsSnapshot;
use registry::proxy::CacheTotals;
use registry::replicate::ReplicationTotalsSnapshot;
use registry::retention::RetentionTotalsSnapshot;

use super::layout::{bytes, respond, time};
use super::{Failure, Ui};

/// The registry page's figures, and `/api/v1/registry`'s.
pub struct Overview {
    pub totals: StoreTotals,
    /// What this process's garbage collections did.
    pub gc: GcTotalsSnapshot,
    /// What this process's retention runs deleted.
    pub retention: RetentionTotalsSnapshot,
    /// What this process's replication passes copied.
    pub replication: ReplicationTotalsSnapshot,
    pub cache: Option<CacheOverview>,
    /// The health checks failing now, by name.
    pub failing: Vec<String>,
    pub read_only: bool,
    pub delete_enabled: bool,
}

/// The pull-through cache.
pub struct CacheOverview {
    /// Each cached namespace's prefix (empty: everything else) and upstream.
    pub namespaces: Vec<(String, String)>,
    /// Bytes its entries take.
    pub bytes: u64,
    /// What it did since this process started.
    pub totals: CacheTotals,
}

pub async fn load(ui: &Ui) -> Result<Overview, Failure> {
    let registry = ui.registry();
    let cache = match registry.cache_state() {
        Some((namespaces, totals)) => Some(CacheOverview {
            namespaces,
            bytes: registry.cached_bytes().await?,
            totals,
        }),
        None => None,
    };
    Ok(Overview {
        totals: registry.totals().await?,
        gc: registry.gc_totals(),
        retention: registry.retention_totals(),
        replication: registry.replication_totals(),
        cache,
        failing: ui.0.health.failures().into_keys().collect(),
        read_only: registry.settings().read_only,
        delete_enabled: registry.settings().delete_enabled,
    })
}

pub async fn page(ui: &Ui, headers: &HeaderMap) -> Response {
    let shown = async {
        ui.viewer(headers).await?.check_registry().await?;
        load(ui).await
    };
    match shown.await {
        Ok(o) => render(ui, &o),
        Err(f) => f.into_page(ui.links()),
    }
}

fn render(ui: &Ui, o: &Overview) -> Response {
    let t = &o.totals;
    let last_gc = (o.gc.last_run > 0).then_some(o.gc.last_run as i64);
    let last_retention = (o.retention.last_run > 0).then_some(o.retention.last_run as i64);
    let last_replication = (o.replication.last_pass > 0).then_some(o.replication.last_pass as i64);
    let crumbs = html! { span.sep { "/" } span { "Registry" } };
    let main = html! {
        h1 { "Registry" }
        h2 { "Health" }
        @if o.failing.is_empty() {
            p #health { "All checks pass." }
        } @else {
            p #health.notice role="status" { "Failing: " (o.failing.join(", ")) }
        }
        p.muted {
            @if o.read_only { "Read-only: pushes and deletes are refused. " }
            @if o.delete_enabled { "Deletes are enabled." } @else { "Deletes are disabled." }
        }
        h2 { "Storage" }
        dl.facts #storage {
            dt { "Repositories" } dd { (t.repositories) }
            dt { "Manifests" } dd { (t.manifests) }
            dt { "Tags" } dd { (t.tags) }
            dt { "Blobs" } dd { (t.blobs) }
            dt { "Stored" } dd title={ (t.bytes) " bytes" } { (bytes(t.bytes)) }
            dt { "Reclaimable" }
            dd #reclaimable title={ (t.unreferenced_bytes) " bytes" } {
                (bytes(t.unreferenced_bytes)) " in " (t.unreferenced_blobs) " blobs no manifest references"
            }
        }
        h2 { "Garbage collection" }
        dl.facts #gc {
            dt { "Last run" } dd { (time(last_gc)) }
            dt { "Runs" } dd { (o.gc.runs) }
            dt { "Freed" } dd { (bytes(o.gc.bytes + o.gc.orphan_bytes)) " in " (o.gc.blobs + o.gc.orphans) " blobs" }
            dt { "Manifests deleted" } dd { (o.gc.manifests) }
        }
        h2 { "Retention" }
        dl.facts #retention {
            dt { "Last run" } dd { (time(last_retention)) }
            dt { "Runs" } dd { (o.retention.runs) }
            dt { "Deleted" } dd { (o.retention.tags) " tags, " (o.retention.manifests) " untagged manifests" }
        }
        h2 { "Replication" }
        dl.facts #replication {
            dt { "Last pass" } dd { (time(last_replication)) }
            dt { "Passes" } dd { (o.replication.passes) }
            dt { "Copied" } dd { (o.replication.tags_updated) " tags, " (o.replication.referrers) " referrers, " (bytes(o.replication.bytes_copied)) }
            dt { "Failures" } dd { (o.replication.failures) }
        }
        p.muted { "Collections, retention runs and replication passes this process ran since it started; another replica's are on its own page." }
        h2 { "Pull-through cache" }
        @if let Some(c) = &o.cache {
            table #upstreams {
                thead { tr { th scope="col" { "Namespace" } th scope="col" { "Upstream" } } }
                tbody {
                    @for (prefix, upstream) in &c.namespaces {
                        tr {
                            td { @if prefix.is_empty() { span.muted { "everything else" } } @else { (prefix) } }
                            td { (upstream) }
                        }
                    }
                }
            }
            dl.facts #cache {
                dt { "Cached" } dd { (bytes(c.bytes)) }
                dt { "Hits" } dd { (c.totals.hits) }
                dt { "Misses" } dd { (c.totals.misses) }
                dt { "Served stale" } dd { (c.totals.stale) }
                dt { "Bytes saved" } dd { (bytes(c.totals.served_bytes)) }
                dt { "Upstream failures" } dd { (c.totals.upstream_failures) }
                @if let Some((at, how)) = c.totals.last_failure {
                    dt { "Last failure" } dd { (time(Some(at as i64))) ": " (how) }
                }
            }
        } @else {
            p.muted { "No pull-through cache is configured." }
        }
    };
    respond(ui.links(), "Registry", crumbs, main)
}
