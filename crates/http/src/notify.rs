//! The request's side of notifications: who asked, handed to the registry as a
//! [`registry::notify::Origin`] for the events the request causes (`registry::notify`).
//!
//! A middleware inside the auth middleware (so it knows the authenticated user) wraps the handling of
//! each request in `registry::notify::within`, a task-local scope, only when some endpoint is
//! configured: with notifications off it costs one branch. The fields are registry:2's
//! `RequestRecord` (`NewRequestRecord` in its `bridge.go`): the request id, the client's address
//! (`X-Forwarded-For`'s first entry, else `X-Real-Ip`, else the connection's peer, as its
//! `RemoteAddr`), the `Host`, the method and the user agent; the base of the events' URLs is the
//! scheme (`X-Forwarded-Proto`, else the request's, else `http`) and host the client used, or
//! `http.host`, then `http.prefix` (both from the [`Front`] `site::mount` puts on the request), as
//! registry:2's URL builder.

use std::net::SocketAddr;

use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::http::header::{HOST, USER_AGENT};
use axum::middleware::Next;
use axum::response::Response;
use registry::Registry;
use registry::notify::Origin;
use registry::notify::event::RequestRecord;

use crate::middleware::{AuthenticatedUser, RequestId};
use crate::site::Front;

/// The connection's peer, put on each request by the server loop.
#[derive(Clone, Copy, Debug)]
pub struct PeerAddr(pub SocketAddr);

/// The middleware; install it with `axum::middleware::from_fn_with_state(registry, notify::origin)`
/// inside the auth middleware.
pub async fn origin(State(registry): State<Registry>, req: Request, next: Next) -> Response {
    if !registry.notifies() {
        return next.run(req).await;
    }
    let origin = origin_of(&req);
    registry::notify::within(origin, next.run(req)).await
}

fn origin_of(req: &Request) -> Origin {
    let headers = req.headers();
    let header = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let host = match header(HOST) {
        h if h.is_empty() => req
            .uri()
            .authority()
            .map(ToString::to_string)
            .unwrap_or_default(),
        h => h,
    };
    let scheme = forwarded(headers, "x-forwarded-proto")
        .or_else(|| req.uri().scheme_str().map(str::to_string))
        .unwrap_or_else(|| "http".to_string());
    Origin {
        request: RequestRecord {
            id: RequestId::of(req).to_string(),
            addr: client_addr(req),
            host: host.clone(),
            method: req.method().to_string(),
            useragent: header(USER_AGENT),
        },
        actor: req
            .extensions()
            .get::<AuthenticatedUser>()
            .map(|u| u.0.clone())
            .unwrap_or_default(),
        base_url: match req.extensions().get::<Front>() {
            Some(Front {
                base_url: Some(base),
                prefix,
            }) => format!("{base}{prefix}"),
            Some(Front { prefix, .. }) => format!("{scheme}://{host}{prefix}"),
            None => format!("{scheme}://{host}"),
        },
    }
}

/// registry:2's `RemoteAddr`: the first `X-Forwarded-For` entry, else `X-Real-Ip`, else the peer.
pub(crate) fn client_addr(req: &Request) -> String {
    forwarded(req.headers(), "x-forwarded-for")
        .or_else(|| forwarded(req.headers(), "x-real-ip"))
        .or_else(|| req.extensions().get::<PeerAddr>().map(|p| p.0.to_string()))
        .unwrap_or_default()
}

/// The first comma-separated entry of header `name`, trimmed, if any.
fn forwarded(headers: &HeaderMap, name: &str) -> Option<String> {
    let value = headers.get(name)?.to_str().ok()?;
    let first = value.split(',').next()?.trim();
    (!first.is_empty()).then(|| first.to_string())
}

#[cfg(test)]
mod tests {
    use axum::body::Body;

    use super::*;

    #[test]
    fn the_origin_is_registry2s_request_record() {
        let mut req = Request::builder()
            .method("PUT")
            .uri("/v2/a/manifests/v1")
            .header(HOST, "registry.example:5000")
            .header(USER_AGENT, "skopeo/1.9")
            .header("x-forwarded-for", " 10.1.2.3, 10.0.0.1")
            .header("x-forwarded-proto", "https")
            .body(Body::empty())
            .unwrap();
        req.extensions_mut()
            .insert(AuthenticatedUser("alice".into()));
        req.extensions_mut()
            .insert(PeerAddr("127.0.0.1:4000".parse().unwrap()));
        let o = origin_of(&req);
        assert_eq!(o.request.addr, "10.1.2.3");
        assert_eq!(o.request.host, "registry.example:5000");
        assert_eq!(o.request.method, "PUT");
        assert_eq!(o.request.useragent, "skopeo/1.9");
        assert_eq!(o.actor, "alice");
        assert_eq!(o.base_url, "https://registry.example:5000");

        req.headers_mut().remove("x-forwarded-for");
        req.headers_mut().remove("x-forwarded-proto");
        let o = origin_of(&req);
        assert_eq!(o.request.addr, "127.0.0.1:4000");
        assert_eq!(o.base_url, "http://registry.example:5000");

        // Under `http.prefix`, and with `http.host`.
        req.extensions_mut().insert(Front {
            base_url: None,
            prefix: "/reg".into(),
        });
        assert_eq!(origin_of(&req).base_url, "http://registry.example:5000/reg");
        req.extensions_mut().insert(Front {
            base_url: Some("https://registry.example.com".into()),
            prefix: "/reg".into(),
        });
        assert_eq!(origin_of(&req).base_url, "https://registry.example.com/reg");
    }
}
