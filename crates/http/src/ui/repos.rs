//! `/ui/`: the repositories the caller may pull, with what each stores and when it was last pushed and
//! pulled (the usage report's figures), searchable by a part of the name and paged by name.
//!
//! Search and filtering walk the catalog's names and compute the usage figures of the rows shown only
//! (see [`matching`]), so a page is full whenever enough repositories match, and its `last` cursor is
//! always a repository the caller may see. With a session of the sign-in form (`auth.token`), the names
//! are filtered by what the token service grants, asked in batches ([`FIRST_BATCH`] names, then twice as
//! many each time, up to a catalog page): a page where most names pass costs one token request.

use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use maud::html;
use registry::{MAX_PAGE, Page, Registry, RepoUsage};

use super::layout::{bytes, respond, time};
use super::paths::query_value;
use super::{Failure, Ui, Viewer};

/// Repositories on one page.
pub const PER_PAGE: usize = 50;
/// The longest search kept (longer ones match nothing a name can hold anyway).
const MAX_QUERY: usize = 256;
/// The names the caller's filter takes first: twice a page, so a page fills at once when half the names
/// pass (a session's token service is asked once per batch).
pub const FIRST_BATCH: usize = 2 * PER_PAGE;

pub async fn page(State(ui): State<Ui>, headers: HeaderMap, uri: Uri) -> Response {
    match render(&ui, &headers, &uri).await {
        Ok(resp) => resp,
        Err(f) => f.into_page(ui.links()),
    }
}

/// One page of the list: what the page and `/api/v1/repositories` show.
pub struct RepoList {
    /// The search, trimmed and lowercased (names are lowercase).
    pub q: String,
    /// The repository the page starts after.
    pub last: Option<String>,
    pub repos: Vec<RepoUsage>,
    /// Whether more repositories follow the last one shown.
    pub more: bool,
}

impl RepoList {
    /// The `last` of the next page, if there is one.
    pub fn next(&self) -> Option<&str> {
        self.more
            .then(|| self.repos.last().map(|u| u.repo.as_str()))
            .flatten()
    }
}

/// The page `query` (`q`, `last`) asks for, of the repositories `viewer` may pull.
pub async fn load(ui: &Ui, viewer: &mut Viewer, query: &str) -> Result<RepoList, Failure> {
    let q: String = query_value(query, "q")
        .unwrap_or_default()
        .trim()
        .to_lowercase()
        .chars()
        .take(MAX_QUERY)
        .collect();
    let last = query_value(query, "last").filter(|l| !l.is_empty());
    let page = Page {
        n: Some(PER_PAGE),
        last: last.clone(),
    };
    let registry = ui.registry();
    let (repos, more) = if q.is_empty() && viewer.gate.is_none() {
        // Everything shows: one page of the usage listing, nothing computed for rows not shown.
        registry.usage(&page).await?
    } else {
        matching(registry, &page, &q, viewer).await?
    };
    Ok(RepoList {
        q,
        last,
        repos,
        more,
    })
}

async fn render(ui: &Ui, headers: &HeaderMap, uri: &Uri) -> Result<Response, Failure> {
    let mut viewer = ui.viewer(headers).await?;
    let list = load(ui, &mut viewer, uri.query().unwrap_or("")).await?;
    let RepoList { q, last, repos, .. } = &list;
    let links = ui.links();
    let next = list.next().map(|n| links.list(q, Some(n)));
    let main = html! {
        h1 { "Repositories" }
        form.search method="get" action=(links.home()) role="search" {
            label for="q" class="muted" { "Search" }
            input #q type="search" name="q" value=(q) placeholder="part of a name";
            button type="submit" { "Search" }
        }
        @if repos.is_empty() {
            p.empty {
                @if q.is_empty() { "No repositories." }
                @else { "No repository matches " code { (q) } "." }
            }
        } @else {
            table #repositories {
                thead { tr {
                    th scope="col" { "Repository" }
                    th.num scope="col" { "Tags" }
                    th.num scope="col" { "Size" }
                    th.wide scope="col" { "Last push" }
                    th.wide scope="col" { "Last pull" }
                } }
                tbody {
                    @for u in repos {
                        tr {
                            td { a href=(links.repo(&u.repo, None)) { (u.repo.as_str()) } }
                            td.num { (u.tags) }
                            td.num title={ (u.bytes) " bytes" } { (bytes(u.bytes)) }
                            td.wide { (time(u.last_push)) }
                            td.wide { (time(u.last_pull)) }
                        }
                    }
                }
            }
        }
        p.pager {
            @if last.is_some() { a href=(links.list(q, None)) { "First page" } " " }
            @if let Some(next) = &next { a rel="next" href=(next) { "Next page" } }
        }
    };
    Ok(respond(links, "Repositories", html! {}, main))
}

/// The page of repositories after `page.last` whose names contain `q` and which `viewer` may pull,
/// with what each stores, and whether more follow. The names are walked in the catalog (cheap), and only
/// the rows shown get their usage figures, each by one single-row read of the usage listing just after
/// the name before it, so a search through 10,000 repositories costs a walk of names, not 10,000 sums
/// of sizes.
async fn matching(
    registry: &Registry,
    page: &Page,
    q: &str,
    viewer: &mut Viewer,
) -> Result<(Vec<RepoUsage>, bool), Failure> {
    let mut found: Vec<(Option<String>, String)> = Vec::new();
    let mut before = page.last.clone();
    let mut more = false;
    let mut batch = FIRST_BATCH;
    'walk: loop {
        let (names, rest) = registry
            .catalog(&Page {
                n: Some(MAX_PAGE),
                last: before.clone(),
            })
            .await?;
        // Each name that matches, with the one before it in the catalog (for its usage row).
        let mut candidates: Vec<(Option<String>, String)> = Vec::new();
        for name in names {
            if name.contains(q) {
                candidates.push((before.clone(), name.clone()));
            }
            before = Some(name);
        }
        let mut start = 0;
        while start < candidates.len() {
            let chunk = &candidates[start..(start + batch).min(candidates.len())];
            start += chunk.len();
            batch = (batch * 2).min(MAX_PAGE);
            // The names kept come back in order: walk both together.
            let kept = viewer
                .pullable(chunk.iter().map(|(_, n)| n.clone()).collect())
                .await?;
            let mut kept = kept.into_iter().peekable();
            for (b, name) in chunk {
                if kept.peek() != Some(name) {
                    continue;
                }
                kept.next();
                if found.len() == PER_PAGE {
                    more = true;
                    break 'walk;
                }
                found.push((b.clone(), name.clone()));
            }
        }
        if !rest {
            break;
        }
    }
    let mut rows = Vec::with_capacity(found.len());
    for (before, name) in found {
        let one = Page {
            n: Some(1),
            last: before,
        };
        // A repository created or deleted meanwhile may stand in between: then this one is left out.
        if let Some(row) = registry
            .usage(&one)
            .await?
            .0
            .into_iter()
            .find(|u| u.repo.as_str() == name)
        {
            rows.push(row);
        }
    }
    Ok((rows, more))
}
