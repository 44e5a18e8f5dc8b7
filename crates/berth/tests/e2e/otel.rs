//! OpenTelemetry traces (issue 23): an OTLP/HTTP receiver in the test (JSON, `http/json`) gets the spans
//! of two berths, an upstream and a pull-through mirror of it, both exporting to it. A pull through the
//! mirror of a blob it does not hold yet is one trace: the caller's `traceparent`, the mirror's request
//! span, its upstream call, and the upstream berth's request span as that call's child. Without the
//! variables nothing is sent at all.

use std::collections::HashMap;
use std::io::{BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::receiver::{Received, read_request};
use crate::harness::{BlobPush, Options, Server, sha256};

/// An OTLP/HTTP receiver: keeps every request's path and JSON body, counts connections, answers 200.
struct Receiver {
    port: u16,
    exports: Arc<Mutex<Vec<(String, Value)>>>,
    connections: Arc<AtomicUsize>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let exports = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let (e, c) = (exports.clone(), connections.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                c.fetch_add(1, Ordering::SeqCst);
                let e = e.clone();
                std::thread::spawn(move || serve(conn, &e));
            }
        });
        Receiver {
            port,
            exports,
            connections,
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every span received so far.
    fn spans(&self) -> Vec<Span> {
        let exports = self.exports.lock().unwrap();
        let mut spans = Vec::new();
        for (path, body) in exports.iter() {
            assert_eq!(path, "/v1/traces", "OTLP's path for traces");
            for rs in body["resourceSpans"].as_array().unwrap() {
                let service = attributes(&rs["resource"]["attributes"])
                    .remove("service.name")
                    .unwrap_or_default();
                for ss in rs["scopeSpans"].as_array().unwrap() {
                    for s in ss["spans"].as_array().unwrap() {
                        spans.push(Span {
                            service: service.clone(),
                            name: s["name"].as_str().unwrap_or_default().to_string(),
                            trace: s["traceId"].as_str().unwrap_or_default().to_lowercase(),
                            id: s["spanId"].as_str().unwrap_or_default().to_lowercase(),
                            parent: s["parentSpanId"]
                                .as_str()
                                .unwrap_or_default()
                                .to_lowercase(),
                            attributes: attributes(&s["attributes"]),
                        });
                    }
                }
            }
        }
        spans
    }
}

/// One connection: requests one after another (keep-alive), each answered 200 with an empty
/// ExportTraceServiceResponse.
fn serve(conn: std::net::TcpStream, exports: &Mutex<Vec<(String, Value)>>) {
    let mut writer = conn.try_clone().unwrap();
    let mut reader = BufReader::new(conn);
    while let Some(Received {
        path,
        content_type,
        body,
    }) = read_request(&mut reader)
    {
        assert_eq!(
            content_type, "application/json",
            "OTEL_EXPORTER_OTLP_PROTOCOL=http/json"
        );
        let body: Value = serde_json::from_slice(&body).unwrap();
        exports.lock().unwrap().push((path, body));
        let answer =
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
        if writer.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}

/// OTLP/JSON attributes (`[{"key":..,"value":{"stringValue":..}}]`) as text.
fn attributes(list: &Value) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for kv in list.as_array().into_iter().flatten() {
        let key = kv["key"].as_str().unwrap_or_default().to_string();
        let value = match kv["value"].as_object().and_then(|o| o.values().next()) {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        };
        out.insert(key, value);
    }
    out
}

#[derive(Clone, Debug)]
struct Span {
    service: String,
    name: String,
    trace: String,
    id: String,
    parent: String,
    attributes: HashMap<String, String>,
}

impl Span {
    fn attr(&self, key: &str) -> &str {
        self.attributes.get(key).map_or("", String::as_str)
    }
}

/// The variables that have a berth export its traces to `receiver` as `service`. The batch processor's
/// delay is ten minutes: only the flush when berth stops sends anything, so the test checks it too.
fn exporting(receiver: &Receiver, service: &str) -> Vec<(String, String)> {
    [
        ("OTEL_TRACES_EXPORTER", "otlp"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.endpoint()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ("OTEL_SERVICE_NAME", service),
        ("OTEL_BSP_SCHEDULE_DELAY", "600000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn layer_bytes() -> Vec<u8> {
    (0..300_000u32)
        .flat_map(|i| (i * 7919).to_le_bytes())
        .collect()
}

#[test]
fn a_pull_through_a_mirror_is_one_trace_across_both_berths() {
    let receiver = Receiver::start();
    let mut upstream = Server::start_with(Options {
        env: exporting(&receiver, "upstream"),
        ..Options::default()
    });
    let data = layer_bytes();
    let digest = upstream
        .api()
        .push_blob("lib/traced", &data, BlobPush::Monolithic)
        .unwrap();
    assert_eq!(digest, sha256(&data));

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("mirror.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nproxy:\n  remoteurl: {}\n",
            upstream.base_url()
        ),
    )
    .unwrap();
    let mut mirror = Server::start_with(Options {
        config: Some(config),
        env: exporting(&receiver, "mirror"),
        ..Options::default()
    });
    // The caller's own trace, which the mirror's request span continues.
    let caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let caller_span = "00f067aa0ba902b7";
    let traceparent = format!("00-{caller_trace}-{caller_span}-01");
    let r = mirror
        .api()
        .get(
            &format!("/v2/lib/traced/blobs/{digest}"),
            &[("traceparent", &traceparent)],
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.describe());
    assert!(r.body == data, "the mirror served other bytes");
    let request_id = r.header("x-request-id").unwrap().to_string();
    assert!(
        receiver.connections.load(Ordering::SeqCst) == 0,
        "nothing is exported before the batch processor's delay or the flush at shutdown"
    );

    // The fetch commits the blob just after the response's last byte: its spans end then.
    let hex = digest.trim_start_matches("sha256:");
    let committed = mirror.root().join("blobs/sha256").join(&hex[..2]).join(hex);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !committed.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(committed.exists(), "the mirror did not cache the blob");

    // SIGTERM: each flushes its spans as it stops.
    assert!(mirror.stop().success());
    assert!(upstream.stop().success());
    let spans = receiver.spans();
    let describe = || {
        spans
            .iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join("\n")
    };

    // The mirror's request: the caller's trace, its request id, method, route and status.
    let request = spans
        .iter()
        .find(|s| s.service == "mirror" && s.attr("request_id") == request_id)
        .unwrap_or_else(|| {
            panic!(
                "no span of the mirror's request {request_id}:\n{}",
                describe()
            )
        });
    assert_eq!(request.trace, caller_trace, "{request:?}");
    assert_eq!(request.parent, caller_span, "{request:?}");
    assert_eq!(request.name, "GET /v2/{name}/blobs/{digest}");
    assert_eq!(request.attr("http.request.method"), "GET");
    assert_eq!(request.attr("http.route"), "/v2/{name}/blobs/{digest}");
    assert_eq!(request.attr("http.response.status_code"), "200");

    // Its call to the upstream: a child of the request span.
    let call = spans
        .iter()
        .find(|s| {
            s.service == "mirror"
                && s.parent == request.id
                && s.name == "upstream GET"
                && s.attr("url.full").contains("/blobs/")
        })
        .unwrap_or_else(|| {
            panic!(
                "no upstream call under the mirror's request:\n{}",
                describe()
            )
        });
    assert_eq!(call.trace, caller_trace);
    assert_eq!(call.attr("http.response.status_code"), "200");

    // The upstream berth's request span: the call's child, in the same trace (W3C trace context).
    let served = spans
        .iter()
        .find(|s| {
            s.service == "upstream"
                && s.attr("http.request.method") == "GET"
                && s.attr("http.route") == "/v2/{name}/blobs/{digest}"
        })
        .unwrap_or_else(|| panic!("no span of the upstream's blob GET:\n{}", describe()));
    assert_eq!(served.trace, caller_trace, "{served:?}\n{}", describe());
    assert_eq!(served.parent, call.id, "{served:?}\n{}", describe());

    // Storage and metadata calls are spans inside the requests that made them, on both sides.
    let under = |parent: &Span, prefix: &str| {
        spans
            .iter()
            .any(|s| s.parent == parent.id && s.trace == parent.trace && s.name.starts_with(prefix))
    };
    assert!(under(served, "metadata "), "{}", describe());
    assert!(under(served, "blobs "), "{}", describe());
    assert!(under(request, "metadata "), "{}", describe());
    // The cache's writes run in the fetch the request started, so in its trace.
    assert!(
        spans.iter().any(|s| s.service == "mirror"
            && s.trace == caller_trace
            && s.name.starts_with("blobs upload")),
        "{}",
        describe()
    );
    // The push before, with no traceparent, is a trace of its own.
    let push = spans
        .iter()
        .find(|s| s.service == "upstream" && s.attr("http.request.method") == "PUT")
        .unwrap_or_else(|| panic!("no span of the push:\n{}", describe()));
    assert_ne!(push.trace, caller_trace);
    assert_eq!(push.parent, "");
}

#[test]
fn without_otel_variables_nothing_is_sent() {
    let receiver = Receiver::start();
    // An endpoint alone does not turn the exporter on; `OTEL_TRACES_EXPORTER` does.
    let mut server = Server::start_with(Options {
        env: vec![
            (
                "OTEL_EXPORTER_OTLP_ENDPOINT".to_string(),
                receiver.endpoint(),
            ),
            ("OTEL_BSP_SCHEDULE_DELAY".to_string(), "10".to_string()),
        ],
        ..Options::default()
    });
    let data = layer_bytes();
    let digest = server
        .api()
        .push_blob("lib/untraced", &data, BlobPush::Monolithic)
        .unwrap();
    let r = server
        .api()
        .get(
            &format!("/v2/lib/untraced/blobs/{digest}"),
            &[(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )],
        )
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.describe());
    assert!(server.stop().success());
    assert_eq!(receiver.connections.load(Ordering::SeqCst), 0);
    assert!(receiver.spans().is_empty());
}
