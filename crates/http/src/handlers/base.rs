//! `GET /v2/`: tells a client this is a registry speaking the distribution API.

use axum::http::header::{CONTENT_TYPE, HeaderValue};
use axum::response::{IntoResponse, Response};

/// 200 with `{}`, as registry:2 (the version header is added for every response by the middleware).
pub fn get() -> Response {
    (
        [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        "{}",
    )
        .into_response()
}
