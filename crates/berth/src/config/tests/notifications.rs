//! The `notifications` section: registry:2's keys, its defaults, disabled endpoints left out, the
//! variables, and errors that name the key.

use registry::notify::event::Format;

use super::*;

const FULL: &str = "
notifications:
  events:
    includereferences: true
  endpoints:
    - name: alistener
      url: https://my.listener.com/event
      headers:
        Authorization: [Bearer t0ken]
        X-Two: [a, b]
      timeout: 500ms
      threshold: 3
      backoff: 2s
      ignoredmediatypes: [application/octet-stream]
      ignore:
        mediatypes: [application/vnd.oci.image.config.v1+json, application/octet-stream]
        actions: [pull]
    - name: off
      disabled: true
      url: http://nowhere/
    - name: plain
      url: http://127.0.0.1:8080/events
      format: CloudEvents
";

#[test]
fn every_key_of_an_endpoint_is_read() {
    let l = load_ok(FULL);
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    let n = &l.config.notifications;
    assert!(n.include_references);
    assert_eq!(n.disabled, ["off"]);
    let names: Vec<&str> = n.endpoints.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["alistener", "plain"]);
    let e = &n.endpoints[0];
    assert_eq!(e.url, "https://my.listener.com/event");
    assert_eq!(
        e.headers,
        [
            ("Authorization".to_string(), "Bearer t0ken".to_string()),
            ("X-Two".to_string(), "a".to_string()),
            ("X-Two".to_string(), "b".to_string()),
        ]
    );
    assert_eq!(e.timeout, Duration::from_millis(500));
    assert_eq!(e.threshold, 3);
    assert_eq!(e.backoff, Duration::from_secs(2));
    assert_eq!(
        e.ignored_media_types,
        [
            "application/octet-stream",
            "application/vnd.oci.image.config.v1+json"
        ]
    );
    assert_eq!(e.ignored_actions, ["pull"]);
    // registry:2's defaults.
    let plain = &n.endpoints[1];
    assert_eq!(plain.timeout, Duration::from_secs(1));
    assert_eq!(plain.threshold, 10);
    assert_eq!(plain.backoff, Duration::from_secs(1));
    assert!(plain.headers.is_empty() && plain.ignored_actions.is_empty());
    // berth's `format`; registry:2's envelope by default.
    assert_eq!(plain.format, Format::CloudEvents);
    assert_eq!(e.format, Format::Registry2);
}

#[test]
fn without_the_section_nothing_is_sent() {
    let l = load_ok("version: 0.1\n");
    assert!(l.config.notifications.endpoints.is_empty());
    assert!(!l.config.notifications.include_references);
}

#[test]
fn endpoints_come_from_the_environment_too() {
    let l = load_env(
        None,
        &[
            (
                "REGISTRY_NOTIFICATIONS_ENDPOINTS",
                "[{name: hook, url: 'http://hook:1/e', threshold: 2, backoff: 250ms}]",
            ),
            ("REGISTRY_NOTIFICATIONS_EVENTS_INCLUDEREFERENCES", "true"),
        ],
    );
    let n = &l.config.notifications;
    assert!(n.include_references);
    assert_eq!(n.endpoints.len(), 1);
    assert_eq!(n.endpoints[0].url, "http://hook:1/e");
    assert_eq!(n.endpoints[0].threshold, 2);
    assert_eq!(n.endpoints[0].backoff, Duration::from_millis(250));
}

#[test]
fn mistakes_name_the_key() {
    let endpoint = |body: &str| format!("notifications:\n  endpoints:\n    - {body}\n");
    let e = error(&endpoint("name: a"));
    assert!(
        e.contains("notifications.endpoints.0.url") && e.contains("required"),
        "{e}"
    );
    let e = error(&endpoint("url: http://x/"));
    assert!(e.contains("notifications.endpoints.0.name"), "{e}");
    let e = error(&endpoint("{name: a, url: ftp://x/}"));
    assert!(e.contains("url") && e.contains("http://"), "{e}");
    let e = error(&endpoint("{name: a, url: 'http://x/', timeout: soon}"));
    assert!(e.contains("notifications.endpoints.0.timeout"), "{e}");
    let e = error(&endpoint(
        "{name: a, url: 'http://x/', ignore: {actions: [explode]}}",
    ));
    assert!(e.contains("push, pull, mount, delete"), "{e}");
    let e = error(&endpoint("{name: a, url: 'http://x/', format: json}"));
    assert!(e.contains("registry2, cloudevents"), "{e}");
    let e = error(&format!(
        "{}    - {{name: a, url: 'http://y/'}}\n",
        endpoint("{name: a, url: 'http://x/'}")
    ));
    assert!(e.contains("configured twice"), "{e}");
}

#[test]
fn the_printed_section_masks_headers_and_reads_back() {
    let l = load_ok(FULL);
    let printed = yaml::to_string(&l.config.to_yaml()).unwrap();
    assert!(!printed.contains("t0ken"), "{printed}");
    let again = load_ok(&printed);
    let (a, b) = (&l.config.notifications, &again.config.notifications);
    assert_eq!(a.disabled, b.disabled);
    assert_eq!(a.endpoints.len(), b.endpoints.len());
    assert_eq!(
        a.endpoints[0].ignored_actions,
        b.endpoints[0].ignored_actions
    );
    assert_eq!(a.endpoints[0].backoff, b.endpoints[0].backoff);
    assert_eq!(b.endpoints[1].format, Format::CloudEvents);
}
