//! The notifications' metrics: what the delivery worker reports ([`DeliveryObserver`]).
//!
//! - `berth_notifications_delivered_events_total{endpoint}`: events an endpoint accepted;
//! - `berth_notifications_failed_events_total{endpoint}`: events of posts that failed (each retry of a
//!   batch counts its events again);
//! - `berth_notifications_queued_events{endpoint}`: events in the outbox for the endpoint, measured
//!   every few seconds by every replica.
//!
//! `endpoint` is an endpoint's `name` in the configuration: a bounded set the operator chose.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use registry::notify::DeliveryObserver;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndpointLabels {
    endpoint: String,
}

/// The delivery counters and the queue gauge; clones share them.
#[derive(Clone, Default)]
pub(crate) struct NotifyMetrics {
    delivered: Family<EndpointLabels, Counter>,
    failed: Family<EndpointLabels, Counter>,
    queued: Family<EndpointLabels, Gauge>,
}

impl NotifyMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "berth_notifications_delivered_events",
            "Notification events accepted by each endpoint",
            self.delivered.clone(),
        );
        registry.register(
            "berth_notifications_failed_events",
            "Notification events of failed posts to each endpoint (retried)",
            self.failed.clone(),
        );
        registry.register(
            "berth_notifications_queued_events",
            "Notification events waiting in the outbox for each endpoint",
            self.queued.clone(),
        );
    }
}

fn labels(endpoint: &str) -> EndpointLabels {
    EndpointLabels {
        endpoint: endpoint.to_string(),
    }
}

impl DeliveryObserver for NotifyMetrics {
    fn delivered(&self, endpoint: &str, events: u64) {
        self.delivered
            .get_or_create(&labels(endpoint))
            .inc_by(events);
    }

    fn failed(&self, endpoint: &str, events: u64) {
        self.failed.get_or_create(&labels(endpoint)).inc_by(events);
    }

    fn queued(&self, endpoint: &str, events: u64) {
        let depth = i64::try_from(events).unwrap_or(i64::MAX);
        self.queued.get_or_create(&labels(endpoint)).set(depth);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn delivery_is_counted_per_endpoint_and_the_queue_is_its_last_measure() {
        let metrics = crate::metrics::Metrics::new();
        let observer = metrics.delivery_observer();
        observer.delivered("hook", 3);
        observer.delivered("hook", 2);
        observer.failed("hook", 4);
        observer.queued("hook", 7);
        observer.queued("hook", 1);
        let text = metrics.render().unwrap();
        for line in [
            "berth_notifications_delivered_events_total{endpoint=\"hook\"} 5",
            "berth_notifications_failed_events_total{endpoint=\"hook\"} 4",
            "berth_notifications_queued_events{endpoint=\"hook\"} 1",
        ] {
            assert!(text.contains(line), "{line} not in:\n{text}");
        }
    }
}
