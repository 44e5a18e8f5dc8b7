//! The audit log's metrics, read at each scrape from its writer's counts (`crate::audit`):
//!
//! - `berth_audit_lines_written_total`: lines written;
//! - `berth_audit_lines_dropped_total{reason}`: lines lost, `queue_full` (the writer was behind by
//!   `audit::QUEUE` lines; the request did not wait) or `write_error` (the destination refused the
//!   write: a full disk).

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;

use crate::audit::Audit;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DropLabels {
    reason: &'static str,
}

pub(crate) struct AuditState(pub(crate) Audit);

impl fmt::Debug for AuditState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuditState")
    }
}

impl Collector for AuditState {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let written = ConstCounter::new(self.0.written());
        let metric = encoder.encode_descriptor(
            "berth_audit_lines_written",
            "Lines written to the audit log",
            None,
            written.metric_type(),
        )?;
        written.encode(metric)?;
        let mut family = encoder.encode_descriptor(
            "berth_audit_lines_dropped",
            "Audit log lines lost: the writer's queue was full, or the write failed",
            None,
            MetricType::Counter,
        )?;
        for (reason, n) in [
            ("queue_full", self.0.dropped_full()),
            ("write_error", self.0.dropped_error()),
        ] {
            ConstCounter::new(n).encode(family.encode_family(&DropLabels { reason })?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::audit::{Asker, Audit, Entry};
    use crate::metrics::Metrics;

    #[test]
    fn lines_written_and_dropped_are_exported() {
        let dir = tempfile::tempdir().unwrap();
        let audit = Audit::file(&dir.path().join("audit.log")).unwrap();
        let metrics = Metrics::new();
        metrics.watch_audit(&audit);
        audit.record(&Asker::default(), &Entry::default());
        audit.record(&Asker::default(), &Entry::default());
        assert!(audit.flush(Duration::from_secs(5)));
        let text = metrics.render().unwrap();
        assert!(
            text.contains("berth_audit_lines_written_total 2\n"),
            "{text}"
        );
        assert!(
            text.contains("berth_audit_lines_dropped_total{reason=\"queue_full\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("berth_audit_lines_dropped_total{reason=\"write_error\"} 0\n"),
            "{text}"
        );
    }
}
