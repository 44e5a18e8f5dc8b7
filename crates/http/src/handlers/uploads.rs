//! Blob uploads: `POST .../blobs/uploads/` (a session, a monolithic push or a mount) and the session URL
//! `.../blobs/uploads/<id>` (GET status, PATCH a chunk, PUT to finish, DELETE to cancel).
//!
//! Bodies stream into the registry chunk by chunk; the registry judges whether a chunk's body matches what
//! its headers declared (see [`crate::body`] for who owns which rule).

use axum::body::HttpBody as _;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::http::header::{CONTENT_RANGE, LOCATION};
use axum::response::Response;
use oci::{Digest, RepoName};
use registry::{BlobInfo, Chunk, Error, MountOutcome, Registry, UploadId, UploadStatus};

use super::{Result, empty};
use crate::auth::Access;
use crate::body;
use crate::error::ApiError;
use crate::headers::{
    CONTENT_DIGEST, RANGE_NAME, UPLOAD_UUID, content_length, parse_content_range, text,
    upload_range, value,
};

/// POST without parameters: a new session.
pub async fn start(registry: &Registry, name: &RepoName) -> Result {
    let status = registry.start_upload(name).await?;
    Ok(session(name, &status, StatusCode::ACCEPTED))
}

/// POST `?digest=`: the whole blob in this request's body.
pub async fn monolithic(
    registry: &Registry,
    name: &RepoName,
    digest: &Digest,
    req: Request,
) -> Result {
    let info = registry.push_blob(name, digest, chunk(req)?).await?;
    Ok(created(name, &info))
}

/// POST `?mount=`: link a blob the registry already has, or fall back to a session.
///
/// The mount reads its source, a repository the path does not name, so it is authorized here, where it
/// is performed: on a guarded router (`access`) only from a source the caller may pull, and never from
/// "any repository" (no `from`); otherwise the request is the ordinary upload the spec allows when a
/// mount cannot be done, telling the caller nothing about the source.
pub async fn mount(
    registry: &Registry,
    name: &RepoName,
    digest: &Digest,
    from: Option<&RepoName>,
    access: Option<&Access>,
) -> Result {
    let readable = match access {
        None => true,
        Some(access) => from.is_some_and(|from| access.may_pull(from.as_str())),
    };
    if !readable {
        return start(registry, name).await;
    }
    match registry.mount_blob(name, digest, from).await? {
        MountOutcome::Mounted(info) => Ok(created(name, &info)),
        MountOutcome::Started(status) => Ok(session(name, &status, StatusCode::ACCEPTED)),
    }
}

/// GET of the session URL: 204 with where the upload stands.
pub async fn status(registry: &Registry, name: &RepoName, id: &UploadId) -> Result {
    let status = registry.upload_status(name, id).await?;
    Ok(session(name, &status, StatusCode::NO_CONTENT))
}

/// PATCH: append the body. An out-of-order chunk is a 416 telling the client where the upload is.
pub async fn chunk_patch(
    registry: &Registry,
    name: &RepoName,
    id: &UploadId,
    req: Request,
) -> Result {
    let status = registry
        .upload_chunk(name, id, chunk(req)?)
        .await
        .map_err(|e| locate(e, name, id))?;
    Ok(session(name, &status, StatusCode::ACCEPTED))
}

/// PUT `?digest=`: the optional last chunk, then commit.
pub async fn finish(
    registry: &Registry,
    name: &RepoName,
    id: &UploadId,
    digest: &Digest,
    req: Request,
) -> Result {
    // A body known to be empty is no chunk at all (the usual closing PUT after PATCHes).
    let empty_body = req.body().is_end_stream() || content_length(req.headers())? == Some(0);
    let last = if empty_body { None } else { Some(chunk(req)?) };
    let info = registry
        .finish_upload(name, id, digest, last)
        .await
        .map_err(|e| locate(e, name, id))?;
    Ok(created(name, &info))
}

/// DELETE of the session URL.
pub async fn cancel(registry: &Registry, name: &RepoName, id: &UploadId) -> Result {
    registry.cancel_upload(name, id).await?;
    Ok(empty(StatusCode::NO_CONTENT, []))
}

/// The request as a [`Chunk`]: its body streamed, with the Content-Range and Content-Length it declared.
/// Whether the two agree with each other and with the body is the registry's to judge
/// (`registry::upload`), so that each size rule has one home and one error.
fn chunk(req: Request) -> Result<Chunk, ApiError> {
    let headers = req.headers();
    let length = content_length(headers)?;
    let range = match headers.get(CONTENT_RANGE) {
        None => None,
        Some(_) => {
            let raw = text(headers, &CONTENT_RANGE).ok_or_else(|| {
                Error::BlobUploadInvalid("Content-Range is not visible ASCII".to_string())
            })?;
            Some(parse_content_range(raw)?)
        }
    };
    Ok(Chunk {
        range,
        length,
        body: body::stream(req.into_body()),
    })
}

/// The headers of a live session: where it is and how much it holds.
fn session(name: &RepoName, status: &UploadStatus, code: StatusCode) -> Response {
    empty(
        code,
        [
            (LOCATION, value(upload_location(name, &status.id))),
            (RANGE_NAME, upload_range(status.offset)),
            (UPLOAD_UUID, value(status.id.to_string())),
        ],
    )
}

/// 201 for a blob now readable in `name`.
fn created(name: &RepoName, info: &BlobInfo) -> Response {
    empty(
        StatusCode::CREATED,
        [
            (LOCATION, value(format!("/v2/{name}/blobs/{}", info.digest))),
            (CONTENT_DIGEST, value(info.digest.to_string())),
        ],
    )
}

fn upload_location(name: &RepoName, id: &UploadId) -> String {
    format!("/v2/{name}/blobs/uploads/{id}")
}

/// An out-of-order chunk's 416 carries the session's URL, so the client can ask where to resume.
fn locate(e: Error, name: &RepoName, id: &UploadId) -> ApiError {
    let out_of_order = matches!(e, Error::UploadOutOfOrder { .. });
    let err = ApiError::from(e);
    if out_of_order {
        err.with_header(LOCATION, value(upload_location(name, id)))
            .with_header(UPLOAD_UUID, value(id.to_string()))
    } else {
        err
    }
}
