//! Quota usage for Prometheus, read at each scrape from the registry's last measurement
//! (`Registry::last_quota_usage`, refreshed by `serve`'s quota meter and by every usage report):
//!
//! - `berth_quota_used_bytes{quota}`: the bytes the quota's repositories store, each blob once;
//! - `berth_quota_limit_bytes{quota}`: its limit.
//!
//! `quota` is the quota's repository patterns as configured (a label set the operator bounds), never a
//! repository a client named.

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QuotaLabels {
    quota: String,
}

pub(crate) struct QuotaState(pub(crate) registry::Registry);

impl fmt::Debug for QuotaState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("QuotaState")
    }
}

impl Collector for QuotaState {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let usage = self.0.last_quota_usage();
        if usage.is_empty() {
            return Ok(());
        }
        for (name, help, value) in [
            (
                "berth_quota_used_bytes",
                "Bytes the repositories of a quota store, each blob counted once",
                (|u: &registry::quota::QuotaUsage| u.used) as fn(&_) -> u64,
            ),
            (
                "berth_quota_limit_bytes",
                "The most bytes the repositories of a quota may store",
                |u: &registry::quota::QuotaUsage| u.quota.bytes,
            ),
        ] {
            let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            for u in &usage {
                let labels = QuotaLabels {
                    quota: u.quota.name(),
                };
                let gauge = ConstGauge::new(i64::try_from(value(u)).unwrap_or(i64::MAX));
                gauge.encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}
