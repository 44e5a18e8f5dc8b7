//! `/api/v1/`: the web interface's figures as JSON, for scripts, with the pages' authentication and
//! authorization (a repository the caller may not pull is NAME_UNKNOWN, as on the pages).
//!
//! ```text
//! GET <prefix>/api/v1/repositories?q=&last=                      the repositories, with what each stores
//! GET <prefix>/api/v1/repositories/<name>/tags?last=             a repository's tags and their images
//! GET <prefix>/api/v1/repositories/<name>/manifests/<digest>     a manifest or index, config, referrers
//! GET <prefix>/api/v1/registry                                   the registry as a whole
//! ```
//!
//! Version 1 only grows: fields are added, never renamed, retyped or removed; a change that would break
//! a script is `/api/v2/`. Lists are paged as on the pages: `next` is the path of the following page, or
//! null. Times are RFC 3339 in UTC, sizes bytes. Each answer is built from the same loader as its page
//! (`repos::load`, `repo::load`, `image::load`, `overview::load`); this file only says how they look as
//! JSON. Errors are the distribution API's `{"errors":[{code,message,detail}]}`.

use std::time::{Duration, UNIX_EPOCH};

use axum::extract::State;
use axum::http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use oci::{Digest, RepoName};
use registry::Referrer;
use registry::notify::event::rfc3339;
use serde_json::{Map, Value, json};

use super::image::Details;
use super::overview::Overview;
use super::paths::ApiPath;
use super::repo::TagPage;
use super::repos::RepoList;
use super::view::{ConfigView, Desc};
use super::{Failure, Ui, image, overview, repo, repos};
use crate::error::ApiError;
use crate::middleware::RequestId;

pub async fn get(State(ui): State<Ui>, req: Parts) -> Response {
    let request_id = RequestId::of_parts(&req);
    let rest = req.uri.path().strip_prefix("/api/v1/").unwrap_or("");
    let query = req.uri.query().unwrap_or("");
    let answer = async {
        let path = ApiPath::parse(rest).ok_or(Failure::NoEndpoint)?;
        let mut viewer = ui.viewer(&req.headers).await?;
        Ok::<Value, Failure>(match path {
            ApiPath::Repositories => {
                repositories(&ui, &repos::load(&ui, &mut viewer, query).await?)
            }
            ApiPath::Tags(name) => {
                viewer.check_pull(name.as_str()).await?;
                tags(&ui, &name, &repo::load(&ui, &name, query).await?)
            }
            ApiPath::Manifest(name, digest) => {
                viewer.check_pull(name.as_str()).await?;
                manifest(
                    &name,
                    &digest,
                    &image::load(ui.registry(), &name, &digest).await?,
                )
            }
            ApiPath::Registry => {
                viewer.check_registry().await?;
                registry_json(&overview::load(&ui).await?)
            }
        })
    };
    match answer.await {
        Ok(body) => (
            [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
            body.to_string(),
        )
            .into_response(),
        Err(f) => failure(f, &request_id),
    }
}

/// A refusal as the distribution API words it.
fn failure(f: Failure, request_id: &RequestId) -> Response {
    let (status, code, message, challenge) = match f {
        Failure::Registry(e) => return ApiError::from(e).into_response(request_id),
        Failure::NoEndpoint => return ApiError::no_such_endpoint().into_response(request_id),
        Failure::Challenge(c) => (
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "authentication required".to_string(),
            Some(c),
        ),
        Failure::NotFound => (
            StatusCode::NOT_FOUND,
            "NAME_UNKNOWN",
            "nothing here, or nothing you may see".to_string(),
            None,
        ),
        Failure::Forbidden(why) => (StatusCode::FORBIDDEN, "DENIED", why, None),
    };
    let body = json!({ "errors": [{ "code": code, "message": message, "detail": null }] });
    let mut resp = (
        status,
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        body.to_string(),
    )
        .into_response();
    if let Some(v) = challenge.and_then(|c| HeaderValue::try_from(c).ok()) {
        resp.headers_mut().insert(WWW_AUTHENTICATE, v);
    }
    resp
}

/// Unix seconds as RFC 3339 (`2026-12-07T08:00:00Z`, as the notifications write times); null for none.
fn time(secs: Option<i64>) -> Value {
    match secs.and_then(|s| u64::try_from(s).ok()) {
        Some(s) => Value::String(rfc3339(UNIX_EPOCH + Duration::from_secs(s))),
        None => Value::Null,
    }
}

fn repositories(ui: &Ui, list: &RepoList) -> Value {
    let rows: Vec<Value> = list
        .repos
        .iter()
        .map(|u| {
            json!({
                "name": u.repo.as_str(),
                "tags": u.tags,
                "manifests": u.manifests,
                "bytes": u.bytes,
                "shared_bytes": u.shared_bytes,
                "last_push": time(u.last_push),
                "last_pull": time(u.last_pull),
            })
        })
        .collect();
    json!({
        "repositories": rows,
        "next": list.next().map(|n| ui.links().api_repositories(&list.q, Some(n))),
    })
}

fn tags(ui: &Ui, name: &RepoName, page: &TagPage) -> Value {
    let rows: Vec<Value> = page
        .tags
        .iter()
        .map(|(t, s)| {
            json!({
                "tag": t.tag.as_str(),
                "digest": t.digest.to_string(),
                "kind": s.kind,
                "platforms": s.platforms,
                "bytes": s.size,
                "pushed": time(Some(t.pushed_at)),
                "last_pull": time(t.pulled_at),
            })
        })
        .collect();
    json!({
        "repository": name.as_str(),
        "count": page.total,
        "tags": rows,
        "next": page.next().map(|n| ui.links().api_tags(name, Some(n))),
    })
}

fn descriptor(d: &Desc) -> Value {
    json!({
        "media_type": d.media_type,
        "digest": d.digest.to_string(),
        "bytes": d.size,
        "artifact_type": d.artifact_type,
        "platform": d.platform,
    })
}

fn pairs(list: &[(String, String)]) -> Value {
    Value::Object(
        list.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect::<Map<String, Value>>(),
    )
}

fn config(c: &ConfigView) -> Value {
    let history: Vec<Value> = c
        .history
        .iter()
        .map(|(step, layer)| json!({ "created_by": step, "empty_layer": !layer }))
        .collect();
    json!({
        "platform": c.platform,
        "created": c.created,
        "entrypoint": c.entrypoint,
        "cmd": c.cmd,
        "env": c.env,
        "labels": pairs(&c.labels),
        "working_dir": c.working_dir,
        "user": c.user,
        "exposed_ports": c.exposed_ports,
        "history": history,
    })
}

fn referrer(r: &Referrer) -> Value {
    let annotations = r
        .annotations
        .as_deref()
        .and_then(|a| serde_json::from_str(a).ok())
        .map(|v: Value| pairs(&super::view::string_map(Some(&v))))
        .unwrap_or_else(|| json!({}));
    json!({
        "digest": r.digest.to_string(),
        "media_type": r.media_type,
        "artifact_type": r.artifact_type,
        "bytes": r.size,
        "annotations": annotations,
    })
}

fn manifest(name: &RepoName, digest: &Digest, d: &Details) -> Value {
    let v = &d.view;
    let referrers: Map<String, Value> = d
        .referrers
        .iter()
        .map(|(kind, list)| (kind.clone(), list.iter().map(referrer).collect()))
        .collect();
    json!({
        "repository": name.as_str(),
        "digest": digest.to_string(),
        "media_type": v.media_type,
        "artifact_type": v.artifact_type,
        "index": v.is_index(),
        "bytes": d.size,
        "tags": d.tags,
        "subject": v.subject.as_ref().map(ToString::to_string),
        "manifests": v.children.iter().map(descriptor).collect::<Vec<_>>(),
        "config_descriptor": v.config.as_ref().map(descriptor),
        "config": d.config.as_ref().map(config),
        "layers": v.layers.iter().map(descriptor).collect::<Vec<_>>(),
        "annotations": pairs(&v.annotations),
        "referrers": referrers,
    })
}

fn registry_json(o: &Overview) -> Value {
    let t = &o.totals;
    let cache = o.cache.as_ref().map(|c| {
        let namespaces: Vec<Value> = c
            .namespaces
            .iter()
            .map(|(prefix, upstream)| json!({ "prefix": prefix, "upstream": upstream }))
            .collect();
        json!({
            "namespaces": namespaces,
            "bytes": c.bytes,
            "hits": c.totals.hits,
            "misses": c.totals.misses,
            "stale": c.totals.stale,
            "served_bytes": c.totals.served_bytes,
            "upstream_failures": c.totals.upstream_failures,
            "last_failure": c.totals.last_failure.map(|(at, how)| json!({
                "at": time(Some(at as i64)),
                "outcome": how,
            })),
        })
    });
    json!({
        "healthy": o.failing.is_empty(),
        "failing_checks": o.failing,
        "read_only": o.read_only,
        "delete_enabled": o.delete_enabled,
        "storage": {
            "repositories": t.repositories,
            "manifests": t.manifests,
            "tags": t.tags,
            "blobs": t.blobs,
            "bytes": t.bytes,
            "unreferenced_blobs": t.unreferenced_blobs,
            "unreferenced_bytes": t.unreferenced_bytes,
        },
        "gc": {
            "runs": o.gc.runs,
            "last_run": time((o.gc.last_run > 0).then_some(o.gc.last_run as i64)),
            "blobs_deleted": o.gc.blobs + o.gc.orphans,
            "bytes_freed": o.gc.bytes + o.gc.orphan_bytes,
            "manifests_deleted": o.gc.manifests,
        },
        "retention": {
            "runs": o.retention.runs,
            "last_run": time((o.retention.last_run > 0).then_some(o.retention.last_run as i64)),
            "tags_deleted": o.retention.tags,
            "manifests_deleted": o.retention.manifests,
        },
        "replication": {
            "passes": o.replication.passes,
            "last_pass": time((o.replication.last_pass > 0).then_some(o.replication.last_pass as i64)),
            "tags_updated": o.replication.tags_updated,
            "referrers_copied": o.replication.referrers,
            "bytes_copied": o.replication.bytes_copied,
            "failures": o.replication.failures,
        },
        "cache": cache,
    })
}
