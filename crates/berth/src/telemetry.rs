//! OpenTelemetry traces (issue 23), configured as registry:3 is: by the standard `OTEL_*` variables,
//! exported over OTLP/HTTP, and off unless `OTEL_TRACES_EXPORTER` asks for `otlp`.
//!
//! What is traced: the spans the other crates open under `registry::spans::TARGET` (each request, each
//! blob store and metadata call inside one, each request to a pull-through cache's upstream). Only this
//! module and the subscriber `logging::init` builds know OpenTelemetry: the layer that turns those spans
//! into OpenTelemetry spans, and the two functions installed in the crates that carry W3C trace context
//! over HTTP (`berth_http::trace`: an incoming `traceparent` is the request span's parent;
//! `upstream::trace`: every upstream request carries its span's context).
//!
//! Which variables: `OTEL_TRACES_EXPORTER` (`otlp` on; unset, empty or `none` off; other exporters are
//! warned of and ignored), `OTEL_SDK_DISABLED`, `OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL` (`http/protobuf`,
//! the default, or `http/json`; `grpc` is warned of and sent as `http/protobuf`), the
//! `OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT` of each export, and `..._COMPRESSION` (warned of: sent
//! uncompressed), read here; the SDK reads the rest itself:
//! `OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT`, `..._HEADERS`, `OTEL_SERVICE_NAME` and
//! `OTEL_RESOURCE_ATTRIBUTES` (the service is `berth` unless they name it), `OTEL_TRACES_SAMPLER[_ARG]`
//! and the batch processor's `OTEL_BSP_*`.
//!
//! The exporter's HTTP client is hyper's, on rustls with the system's CAs, as the pull-through cache's
//! (no second HTTP stack). The SDK's batch processor exports from a thread of its own and drives the
//! export future with a plain executor, not inside berth's runtime, so the client runs each export to its
//! end on a small runtime of its own on that thread: exports never take a worker of the server's runtime,
//! and the flush at shutdown works after the server's runtime has stopped.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::HeaderMap;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_http::{
    HeaderExtractor, HeaderInjector, HttpClient, HttpError, Request, Response,
};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter, Tracer};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// How long the flush at shutdown may take: spans still unsent after it are lost, the exit is not held.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// An export's time limit when `OTEL_EXPORTER_OTLP_TIMEOUT` does not set one (the specification's).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Most bytes read of a collector's answer (a partial-success message at most).
const MAX_ANSWER: usize = 64 * 1024;

/// The service name when neither `OTEL_SERVICE_NAME` nor `OTEL_RESOURCE_ATTRIBUTES` names one.
const SERVICE_NAME: &str = "berth";

/// Traces being exported: the tracer the subscriber's layer uses, and the provider to flush at the end.
pub struct Traces {
    provider: SdkTracerProvider,
    tracer: Tracer,
    /// What the variables asked for that is not done, for the log once it is set up.
    pub warnings: Vec<String>,
}

/// What the variables say of traces, before anything is built.
#[derive(Debug, PartialEq, Eq)]
struct Choice {
    on: bool,
    /// `Some` when the protocol must be set rather than left to the SDK (it was `grpc`).
    protocol: Option<Protocol>,
    timeout: Duration,
    warnings: Vec<String>,
}

impl Traces {
    /// Traces as the `OTEL_*` variables of `env` configure them: `Ok(None)` when off, an error when they
    /// ask for an export that cannot be set up (an endpoint that is no URL, say).
    pub fn from_env(env: &HashMap<String, String>) -> Result<Option<Traces>, String> {
        let choice = choose(env);
        if !choice.on {
            return Ok(None);
        }
        let mut builder = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(OtlpClient::new(choice.timeout)?)
            .with_timeout(choice.timeout);
        if let Some(protocol) = choice.protocol {
            builder = builder.with_protocol(protocol);
        }
        let exporter = builder
            .build()
            .map_err(|e| format!("OpenTelemetry traces (OTEL_TRACES_EXPORTER=otlp): {e}"))?;
        let mut resource = Resource::builder();
        if !names_service(env) {
            resource = resource.with_service_name(SERVICE_NAME);
        }
        let resource = resource
            .with_attribute(opentelemetry::KeyValue::new(
                "service.version",
                env!("CARGO_PKG_VERSION"),
            ))
            .build();
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(Reported::new(exporter))
            .with_resource(resource)
            .build();
        let tracer = provider.tracer("berth");
        Ok(Some(Traces {
            provider,
            tracer,
            warnings: choice.warnings,
        }))
    }

    /// The tracer for the subscriber's OpenTelemetry layer.
    pub fn tracer(&self) -> Tracer {
        self.tracer.clone()
    }

    /// Has the HTTP layer and the upstream client carry W3C trace context. Called once the subscriber
    /// with this tracer's layer is the global one.
    pub fn propagate(&self) {
        berth_http::trace::install_parent_extractor(extract_parent);
        upstream::trace::install_context_injector(inject_context);
    }

    /// Exports the spans not sent yet, within [`SHUTDOWN_TIMEOUT`]. Called when berth stops, outside its
    /// runtime.
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT) {
            tracing::warn!(error = %e, "the last traces may not have been exported");
        }
    }
}

/// Reads the variables this module decides on (the SDK reads the rest).
fn choose(env: &HashMap<String, String>) -> Choice {
    let var = |k: &str| env.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let mut warnings = Vec::new();
    let mut on = false;
    for exporter in var("OTEL_TRACES_EXPORTER")
        .unwrap_or("none")
        .split(',')
        .map(|e| e.trim().to_ascii_lowercase())
    {
        match exporter.as_str() {
            "otlp" => on = true,
            "none" | "" => {}
            other => warnings.push(format!(
                "OTEL_TRACES_EXPORTER: berth exports traces over OTLP only; {other:?} is ignored"
            )),
        }
    }
    if var("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        on = false;
    }
    let mut protocol = None;
    let key = if var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL").is_some() {
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
    } else {
        "OTEL_EXPORTER_OTLP_PROTOCOL"
    };
    match var(key).map(str::to_ascii_lowercase).as_deref() {
        None | Some("http/protobuf" | "http/json") => {}
        Some("grpc") => {
            protocol = Some(Protocol::HttpBinary);
            warnings.push(format!(
                "{key}=grpc: berth exports over HTTP only; sending http/protobuf to the same endpoint \
                 (a collector's OTLP/HTTP port is 4318)"
            ));
        }
        Some(other) => {
            protocol = Some(Protocol::HttpBinary);
            warnings.push(format!(
                "{key}={other:?} is no protocol berth knows; sending http/protobuf"
            ));
        }
    }
    for key in [
        "OTEL_EXPORTER_OTLP_TRACES_COMPRESSION",
        "OTEL_EXPORTER_OTLP_COMPRESSION",
    ] {
        if let Some(value) = var(key).filter(|v| !v.eq_ignore_ascii_case("none")) {
            // The SDK, built without compression, ignores it the same way, silently.
            warnings.push(format!("{key}={value:?}: berth sends traces uncompressed"));
        }
    }
    let timeout = [
        "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
        "OTEL_EXPORTER_OTLP_TIMEOUT",
    ]
    .iter()
    .find_map(|k| var(k)?.parse::<u64>().ok())
    .map_or(EXPORT_TIMEOUT, Duration::from_millis);
    Choice {
        on,
        protocol,
        timeout,
        warnings: if on { warnings } else { Vec::new() },
    }
}

/// Whether the variables name the service (else it is `berth`).
fn names_service(env: &HashMap<String, String>) -> bool {
    env.get("OTEL_SERVICE_NAME")
        .is_some_and(|v| !v.trim().is_empty())
        || env.get("OTEL_RESOURCE_ATTRIBUTES").is_some_and(|attrs| {
            attrs
                .split(',')
                .any(|kv| kv.split('=').next().map(str::trim) == Some("service.name"))
        })
}

/// `berth_http::trace`'s extractor: an incoming `traceparent` is the parent of the request's span.
fn extract_parent(headers: &HeaderMap, span: &Span) {
    if !headers.contains_key("traceparent") {
        return;
    }
    let cx = TraceContextPropagator::new().extract(&HeaderExtractor(headers));
    if cx.span().span_context().is_valid() {
        // Fails only if the span started already; it was made just before.
        let _ = span.set_parent(cx);
    }
}

/// `upstream::trace`'s injector: the upstream request carries its span's context.
fn inject_context(span: &Span, headers: &mut HeaderMap) {
    TraceContextPropagator::new().inject_context(&span.context(), &mut HeaderInjector(headers));
}

/// An exporter whose failures reach berth's log (the SDK's own diagnostics are compiled out): the first
/// failure after a success, and the success after failures, so that a collector that is down is one
/// warning, not one per batch.
#[derive(Debug)]
struct Reported<E> {
    inner: E,
    failing: AtomicBool,
}

impl<E> Reported<E> {
    fn new(inner: E) -> Reported<E> {
        Reported {
            inner,
            failing: AtomicBool::new(false),
        }
    }

    fn report(&self, result: &OTelSdkResult, spans: usize) {
        match result {
            Err(e) if !self.failing.swap(true, Ordering::Relaxed) => tracing::warn!(
                error = %e,
                spans,
                "OpenTelemetry: exporting traces failed; spans are dropped until it works again"
            ),
            Ok(()) if self.failing.swap(false, Ordering::Relaxed) => {
                tracing::info!("OpenTelemetry: exporting traces works again")
            }
            _ => {}
        }
    }
}

// Every method forwarded: the trait's defaults would silently skip the inner exporter's.
impl<E: SpanExporter> SpanExporter for Reported<E> {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        let spans = batch.len();
        async move {
            let result = self.inner.export(batch).await;
            self.report(&result, spans);
            result
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The exporter's HTTP client (see the module's comment for why a runtime of its own).
struct OtlpClient {
    /// `Some` until dropped: a runtime is shut down in the background rather than dropped in place,
    /// which would panic were the last owner inside another runtime.
    runtime: Option<tokio::runtime::Runtime>,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    timeout: Duration,
}

impl OtlpClient {
    fn new(timeout: Duration) -> Result<OtlpClient, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("OpenTelemetry traces: starting the exporter's runtime: {e}"))?;
        let provider = tokio_rustls::rustls::crypto::aws_lc_rs::default_provider();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(provider)
            .map_err(|e| format!("OpenTelemetry traces: the system's CA certificates: {e}"))?
            .https_or_http()
            .enable_http1()
            .build();
        // No idle connections: this runtime runs only during an export, so a pooled connection's
        // task would not notice the collector closing it. One connection per batch (every 5 s at
        // most, by default) costs nothing worth saving.
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(connector);
        Ok(OtlpClient {
            runtime: Some(runtime),
            client,
            timeout,
        })
    }
}

impl std::fmt::Debug for OtlpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpClient")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Drop for OtlpClient {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

#[async_trait::async_trait]
impl HttpClient for OtlpClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let Some(runtime) = &self.runtime else {
            return Err("the exporter's client is shut down".into());
        };
        let request = request.map(Full::new);
        let exchange = async {
            let resp = self.client.request(request).await?;
            let (parts, body) = resp.into_parts();
            let body = Limited::new(body, MAX_ANSWER).collect().await?.to_bytes();
            Ok::<_, HttpError>(Response::from_parts(parts, body))
        };
        // Blocks the batch processor's own thread, which waits for this export anyway (module comment).
        runtime.block_on(async {
            match tokio::time::timeout(self.timeout, exchange).await {
                Ok(result) => result,
                Err(_) => Err(format!("no answer within {:?}", self.timeout).into()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn off_unless_the_exporter_is_otlp() {
        for pairs in [
            &[][..],
            &[("OTEL_TRACES_EXPORTER", "none")],
            &[("OTEL_TRACES_EXPORTER", "")],
            // An endpoint alone does not turn the export on (registry:3's image likewise).
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")],
            &[
                ("OTEL_TRACES_EXPORTER", "otlp"),
                ("OTEL_SDK_DISABLED", "true"),
            ],
        ] {
            assert!(!choose(&env(pairs)).on, "{pairs:?}");
        }
        for value in ["otlp", "OTLP", " otlp ", "console,otlp"] {
            assert!(
                choose(&env(&[("OTEL_TRACES_EXPORTER", value)])).on,
                "{value}"
            );
        }
    }

    #[test]
    fn grpc_and_other_exporters_are_warned_of() {
        let c = choose(&env(&[
            ("OTEL_TRACES_EXPORTER", "otlp,zipkin"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ]));
        assert!(c.on);
        assert_eq!(c.protocol, Some(Protocol::HttpBinary));
        assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
        assert!(c.warnings.iter().any(|w| w.contains("zipkin")));
        assert!(c.warnings.iter().any(|w| w.contains("grpc")));
        let c = choose(&env(&[
            ("OTEL_TRACES_EXPORTER", "otlp"),
            ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
        ]));
        assert!(c.warnings[0].contains("uncompressed"), "{:?}", c.warnings);
        // The protocols berth speaks are left to the SDK, which reads the same variables.
        for p in ["http/json", "http/protobuf"] {
            let c = choose(&env(&[
                ("OTEL_TRACES_EXPORTER", "otlp"),
                ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", p),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ]));
            assert_eq!((c.protocol, c.warnings.len()), (None, 0), "{p}");
        }
    }

    #[test]
    fn timeouts_are_milliseconds() {
        let c = choose(&env(&[
            ("OTEL_TRACES_EXPORTER", "otlp"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
        ]));
        assert_eq!(c.timeout, Duration::from_millis(2500));
        let c = choose(&env(&[("OTEL_TRACES_EXPORTER", "otlp")]));
        assert_eq!(c.timeout, EXPORT_TIMEOUT);
    }

    #[test]
    fn a_failing_export_is_reported_once_until_it_works_again() {
        #[derive(Debug, Default)]
        struct Flaky(AtomicBool);
        impl SpanExporter for Flaky {
            async fn export(&self, _: Vec<SpanData>) -> OTelSdkResult {
                if self.0.load(Ordering::Relaxed) {
                    Ok(())
                } else {
                    Err(opentelemetry_sdk::error::OTelSdkError::InternalFailure(
                        "down".into(),
                    ))
                }
            }
        }
        let reported = Reported::new(Flaky::default());
        let export = || run_to_end(reported.export(Vec::new()));
        assert!(export().is_err());
        assert!(reported.failing.load(Ordering::Relaxed));
        assert!(export().is_err());
        reported.inner.0.store(true, Ordering::Relaxed);
        assert!(export().is_ok());
        assert!(!reported.failing.load(Ordering::Relaxed));
    }

    /// Runs a future that never waits (the exporters above) to its end.
    fn run_to_end<F: Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn the_service_is_berth_unless_named() {
        assert!(!names_service(&env(&[])));
        assert!(names_service(&env(&[("OTEL_SERVICE_NAME", "reg")])));
        assert!(names_service(&env(&[(
            "OTEL_RESOURCE_ATTRIBUTES",
            "a=b, service.name=reg"
        )])));
        assert!(!names_service(&env(&[(
            "OTEL_RESOURCE_ATTRIBUTES",
            "service.namespace=x"
        )])));
    }
}
