//! The HTTP client underneath: hyper-util's pooled client over rustls, one request at a time with the
//! configured timeouts, and body reading that gives up on a stalled transfer.
//!
//! Everything that crosses the network is bounded in time here, so the layers above (the token dance,
//! manifests, blobs) never wait without a limit: connecting (`connect_timeout`, in the connector), the
//! response head (`response_timeout`, around the request future) and each body chunk (`stall_timeout`,
//! in [`next_chunk`]).

use std::error::Error as StdError;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderValue, USER_AGENT};
use hyper::{Method, Request, Response, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use registry::proxy::UpstreamError;
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

use crate::settings::{Settings, SettingsError};

/// Idle pooled connections are closed after this long (registries close theirs after a minute or two).
const POOL_IDLE: Duration = Duration::from_secs(50);

/// A pooled HTTP(S) client with the upstream's timeouts. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Http {
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    response_timeout: Duration,
    stall_timeout: Duration,
    user_agent: HeaderValue,
}

impl Http {
    pub(crate) fn new(settings: &Settings) -> Result<Http, SettingsError> {
        let user_agent =
            HeaderValue::from_str(&settings.user_agent).map_err(|_| SettingsError::UserAgent)?;
        let tls = tls_config(&settings.extra_root_certificates)?;
        let mut tcp = HttpConnector::new();
        tcp.set_connect_timeout(Some(settings.connect_timeout));
        tcp.set_nodelay(true);
        // The TLS wrapper below decides per URL whether to speak TLS.
        tcp.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(tcp);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        Ok(Http {
            client,
            response_timeout: settings.response_timeout,
            stall_timeout: settings.stall_timeout,
            user_agent,
        })
    }

    pub(crate) fn stall_timeout(&self) -> Duration {
        self.stall_timeout
    }

    /// Sends one bodiless request and waits for the response head, at most `response_timeout`.
    /// Connection failures and timeouts are `Unavailable`; the status is the caller's to judge.
    pub(crate) async fn send(
        &self,
        method: Method,
        uri: &Uri,
        headers: HeaderMap,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let host = uri
            .authority()
            .map(|a| a.as_str())
            .unwrap_or("?")
            .to_string();
        let mut req = Request::builder()
            .method(method)
            .uri(uri.clone())
            .body(Empty::new())
            .map_err(|e| {
                UpstreamError::Protocol(format!("cannot build a request to {host}: {e}"))
            })?;
        *req.headers_mut() = headers;
        req.headers_mut()
            .insert(USER_AGENT, self.user_agent.clone());
        crate::trace::inject(req.headers_mut());
        match tokio::time::timeout(self.response_timeout, self.client.request(req)).await {
            Err(_) => Err(UpstreamError::Unavailable(format!(
                "{host} sent no response within {:?}",
                self.response_timeout
            ))),
            Ok(Err(e)) if e.is_connect() => Err(UpstreamError::Unavailable(format!(
                "cannot connect to {host}: {}",
                causes(&e)
            ))),
            Ok(Err(e)) => Err(UpstreamError::Unavailable(format!(
                "request to {host} failed: {}",
                causes(&e)
            ))),
            Ok(Ok(resp)) => Ok(resp),
        }
    }
}

/// The next data chunk of `body` (`None` at its end), waiting at most `stall` for it. A stall, a reset or
/// a body shorter than its `Content-Length` is an `io::Error`.
pub(crate) async fn next_chunk(body: &mut Incoming, stall: Duration) -> io::Result<Option<Bytes>> {
    loop {
        let frame = match tokio::time::timeout(stall, body.frame()).await {
            Err(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("upstream body stalled for {stall:?}"),
                ));
            }
            Ok(None) => return Ok(None),
            Ok(Some(Err(e))) => {
                return Err(io::Error::other(format!(
                    "upstream body failed: {}",
                    causes(&e)
                )));
            }
            Ok(Some(Ok(frame))) => frame,
        };
        // Trailers carry nothing we use; empty data frames are skipped so callers see real progress.
        if let Ok(data) = frame.into_data()
            && !data.is_empty()
        {
            return Ok(Some(data));
        }
    }
}

/// Reads a whole (small) body, failing with `Protocol` past `limit` bytes and `Unavailable` when the
/// transfer breaks. Used for manifests and token responses, never for blobs.
pub(crate) async fn read_limited(
    mut body: Incoming,
    limit: usize,
    stall: Duration,
    what: &str,
) -> Result<Bytes, UpstreamError> {
    let mut buf = Vec::new();
    while let Some(chunk) = next_chunk(&mut body, stall)
        .await
        .map_err(|e| UpstreamError::Unavailable(format!("reading the {what}: {e}")))?
    {
        if buf.len() + chunk.len() > limit {
            return Err(UpstreamError::Protocol(format!(
                "the {what} is larger than {limit} bytes"
            )));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
}

/// An error and its causes, `: `-separated (hyper's own messages say little without their sources).
pub(crate) fn causes(e: &dyn StdError) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// A pooled client for requests with a body (a notification's envelope, the web interface's token
/// requests): HTTP/1.1 over rustls with the system's CAs. Its users bound each exchange themselves.
pub(crate) type PostingClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// A [`PostingClient`].
pub(crate) fn posting_client() -> Result<PostingClient, SettingsError> {
    let mut tcp = HttpConnector::new();
    tcp.set_nodelay(true);
    tcp.enforce_http(false);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls_config(&[])?)
        .https_or_http()
        .enable_http1()
        .wrap_connector(tcp);
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(connector))
}

/// rustls on aws-lc-rs trusting the operating system's roots plus `extra` (PEM bundles). A system with
/// no readable roots is not an error: an https upstream then fails at its handshake, naming the reason.
pub(crate) fn tls_config(extra: &[Vec<u8>]) -> Result<ClientConfig, SettingsError> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    if !native.errors.is_empty() {
        tracing::debug!(errors = ?native.errors, "some system root certificates could not be read");
    }
    let (_, invalid) = roots.add_parsable_certificates(native.certs);
    if invalid > 0 {
        tracing::debug!(invalid, "some system root certificates were not usable");
    }
    for pem in extra {
        let mut found = 0;
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| SettingsError::Certificates(e.to_string()))?;
            roots
                .add(cert)
                .map_err(|e| SettingsError::Certificates(e.to_string()))?;
            found += 1;
        }
        if found == 0 {
            return Err(SettingsError::Certificates(
                "a bundle holds no PEM certificate".into(),
            ));
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SettingsError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}
