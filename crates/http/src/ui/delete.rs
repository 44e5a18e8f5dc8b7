//! `/ui/delete/<name>:<tag>` and `/ui/delete/<name>@<digest>`: deleting from the interface.
//!
//! A GET shows what would go (the tag and the image it points at, or the manifest and its tags) and a
//! form; the form's POST deletes, through the same `Registry::delete_manifest` as the API's `DELETE`, so
//! `storage.delete.enabled`, immutable tags and read-only mode decide as they do there. Who may: the
//! API's decision for a delete in the repository; a caller who may not even pull is told nothing of it.
//!
//! The pages use no script, so the confirmation is a page of its own, and the POST is the only request
//! that changes anything. Browsers send Basic credentials along with a form another site makes them
//! post, so a POST is done only when the browser says it comes from berth's own page: `Sec-Fetch-Site:
//! same-origin` where the browser sends Fetch Metadata, else an `Origin` naming the host it was sent to
//! (the pages' `Referrer-Policy: same-origin` keeps browsers sending the real origin, not `null`, on
//! their own posts). A request with neither (curl, scripts) is refused: they have the API.

use axum::http::header::{HOST, LOCATION, ORIGIN};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::html;
use oci::{Reference, RepoName};

use super::layout::{respond, short_digest};
use super::paths::Links;
use super::{Failure, Ui};
use crate::audit::{Action, Entry, Object, Outcome};

/// The confirmation page.
pub async fn confirm(ui: &Ui, headers: &HeaderMap, name: RepoName, target: Reference) -> Response {
    match render(ui, headers, &name, &target).await {
        Ok(resp) => resp,
        Err(f) => f.into_page(ui.links()),
    }
}

/// The form's POST: deletes, then sends the browser to the repository's page, which says what went.
pub async fn perform(ui: &Ui, headers: &HeaderMap, name: RepoName, target: Reference) -> Response {
    match delete(ui, headers, &name, &target).await {
        Ok(()) => {
            // Root-relative like every `Location`: `site::mount` puts it under the prefix.
            let back = Links::new("").repo_after_delete(&name, &target);
            (StatusCode::SEE_OTHER, [(LOCATION, back)]).into_response()
        }
        Err(f) => f.into_page(ui.links()),
    }
}

async fn delete(
    ui: &Ui,
    headers: &HeaderMap,
    name: &RepoName,
    target: &Reference,
) -> Result<(), Failure> {
    if !sent_from_own_page(headers, ui.0.host.as_deref()) {
        return Err(Failure::Forbidden(
            "A delete is accepted only from the form of berth's own page.".into(),
        ));
    }
    let mut viewer = ui.viewer(headers).await?;
    let user = viewer.user().map(str::to_string);
    let about = || {
        let (object, tag, digest) = match target {
            Reference::Tag(tag) => (Object::Tag, Some(tag.as_str().to_string()), None),
            Reference::Digest(d) => (Object::Manifest, None, Some(d.to_string())),
        };
        Entry {
            action: Action::Delete,
            user: user.clone(),
            repository: Some(name.as_str().to_string()),
            object: Some(object),
            tag,
            digest,
            ..Entry::default()
        }
    };
    if let Err(refused) = viewer.check_delete(name.as_str()).await {
        // A known user refused (an anonymous caller is asked to sign in, as the API's challenge).
        let why = match &refused {
            Failure::Forbidden(_) => Some((403, "may not delete in the repository")),
            Failure::NotFound => Some((404, "may not pull the repository")),
            _ => None,
        };
        if let (Some((status, why)), Some(_)) = (why, &user) {
            crate::audit::note(|| Entry {
                outcome: Outcome::Denied,
                status,
                why: Some(why.to_string()),
                ..about()
            });
        }
        return Err(refused);
    }
    // The events of the delete name the user, as the API's do.
    let deleted =
        registry::notify::as_user(user.as_deref(), ui.registry().delete_manifest(name, target))
            .await;
    crate::audit::note(|| match &deleted {
        Ok(()) => Entry {
            status: StatusCode::SEE_OTHER.as_u16(),
            ..about()
        },
        Err(e) => {
            let (status, code) = crate::error::status_and_code(e);
            Entry {
                outcome: Outcome::Failed,
                status: status.as_u16(),
                why: Some(code.to_string()),
                ..about()
            }
        }
    });
    deleted?;
    Ok(())
}

async fn render(
    ui: &Ui,
    headers: &HeaderMap,
    name: &RepoName,
    target: &Reference,
) -> Result<Response, Failure> {
    ui.viewer(headers)
        .await?
        .check_delete(name.as_str())
        .await?;
    let registry = ui.registry();
    if !registry.settings().delete_enabled {
        return Err(registry::Error::Unsupported("deletes are disabled".into()).into());
    }
    // What would go; a target that is not there answers 404 here rather than after the click.
    let manifest = registry.head_manifest(name, target).await?;
    let tags: Vec<String> = registry
        .tag_details(name)
        .await?
        .into_iter()
        .filter(|t| t.digest == manifest.digest)
        .map(|t| t.tag.to_string())
        .collect();
    let links = ui.links();
    let image = links.image(name, &manifest.digest);
    let crumbs = html! {
        span.sep { "/" } a href=(links.repo(name, None)) { (name.as_str()) }
        span.sep { "/" } span { "delete" }
    };
    let main = html! {
        @match target {
            Reference::Tag(tag) => {
                h1 { "Delete the tag " code { (tag.as_str()) } "?" }
                p #consequence {
                    "The tag goes from " (name.as_str()) ". The image it points at, "
                    a.mono href=(image) { (short_digest(&manifest.digest)) }
                    ", stays under its digest"
                    @if tags.len() > 1 { " and its other tags" }
                    " until it is deleted too."
                }
            }
            Reference::Digest(digest) => {
                h1 { "Delete the manifest " span.mono { (short_digest(digest)) } "?" }
                p #consequence {
                    "The manifest goes from " (name.as_str())
                    @if tags.is_empty() { ". No tag points at it." }
                    @else { ", and with it its tags: " (tags.join(", ")) "." }
                    " Pulling it by digest will fail."
                }
            }
        }
        form.confirm method="post" action=(links.delete(name, target)) {
            button #confirm-delete type="submit" { "Delete" }
            " "
            a href=(links.repo(name, None)) { "Cancel" }
        }
    };
    Ok(respond(links, "Delete", crumbs, main))
}

/// Whether the browser says the POST comes from a page of the host it was sent to (or of `http.host`):
/// the rule of every form of the interface that posts (this one, and `ui/signin.rs`'s).
pub(super) fn sent_from_own_page(headers: &HeaderMap, configured_host: Option<&str>) -> bool {
    if let Some(site) = headers.get("sec-fetch-site") {
        return site.as_bytes() == b"same-origin";
    }
    let Some(authority) = headers
        .get(ORIGIN)
        .and_then(|o| o.to_str().ok())
        .and_then(|o| o.split_once("://"))
        .map(|(_, authority)| authority)
    else {
        return false;
    };
    let host = headers.get(HOST).and_then(|h| h.to_str().ok());
    Some(authority) == host || Some(authority) == configured_host
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn only_the_registrys_own_pages_may_post() {
        let own = [
            &[("sec-fetch-site", "same-origin"), ("host", "r:5000")][..],
            &[("origin", "http://r:5000"), ("host", "r:5000")],
            &[("origin", "https://r:5000"), ("host", "r:5000")],
        ];
        for h in own {
            assert!(sent_from_own_page(&headers(h), None), "{h:?}");
        }
        let foreign = [
            &[("sec-fetch-site", "cross-site"), ("host", "r:5000")][..],
            // Fetch Metadata wins over an Origin that would pass.
            &[
                ("sec-fetch-site", "same-site"),
                ("origin", "http://r:5000"),
                ("host", "r:5000"),
            ],
            &[("origin", "http://evil.example"), ("host", "r:5000")],
            &[("origin", "null"), ("host", "r:5000")],
            &[("origin", "http://r:5000")],
            &[("host", "r:5000")],
            &[],
        ];
        for h in foreign {
            assert!(!sent_from_own_page(&headers(h), None), "{h:?}");
        }
        // Behind a proxy that rewrites Host, the configured `http.host` counts as berth's own.
        let proxied = headers(&[
            ("origin", "https://registry.example"),
            ("host", "10.0.0.5:5000"),
        ]);
        assert!(sent_from_own_page(&proxied, Some("registry.example")));
        assert!(!sent_from_own_page(&proxied, None));
    }
}
