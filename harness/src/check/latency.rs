//! Ack and end-to-end latency as HDR histograms, overall and per step.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Percentiles of one histogram, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Percentiles {
    /// Samples.
    pub count: u64,
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Maximum.
    pub max: f64,
}

/// Ack and end-to-end latency.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct LatencySummary {
    /// Send → ack.
    pub ack: Percentiles,
    /// Send → first delivery to a consumer.
    pub e2e: Percentiles,
}

fn hist() -> Histogram<u64> {
    // 1 µs .. 1 h, 3 significant digits
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid histogram bounds")
}

/// The percentiles of `h` (µs samples), in milliseconds rounded to 0.01.
pub(crate) fn percentiles<T: hdrhistogram::Counter>(h: &Histogram<T>) -> Percentiles {
    if h.is_empty() {
        return Percentiles::default();
    }
    let ms = |v: u64| (v as f64 / 1000.0 * 100.0).round() / 100.0;
    Percentiles {
        count: h.len(),
        p50: ms(h.value_at_quantile(0.5)),
        p99: ms(h.value_at_quantile(0.99)),
        max: ms(h.max()),
    }
}

/// Records `us` under `label` (a record per event: no allocation once the label is known).
fn record(book: &mut BTreeMap<String, Histogram<u64>>, label: &str, us: u64) {
    let h = match book.get_mut(label) {
        Some(h) => h,
        None => book.entry(label.to_string()).or_insert_with(hist),
    };
    let _ = h.record(us.clamp(1, 3_600_000_000));
}

/// Histograms by label (step or phase), plus overall.
#[derive(Default)]
pub struct LatencyBook {
    ack: BTreeMap<String, Histogram<u64>>,
    e2e: BTreeMap<String, Histogram<u64>>,
}

impl LatencyBook {
    /// Records an ack latency (µs) under `label`.
    pub fn ack(&mut self, label: &str, us: u64) {
        record(&mut self.ack, label, us);
    }

    /// Records an end-to-end latency (µs) under `label`.
    pub fn e2e(&mut self, label: &str, us: u64) {
        record(&mut self.e2e, label, us);
    }

    /// Over every label.
    pub fn overall(&self) -> LatencySummary {
        let merge = |m: &BTreeMap<String, Histogram<u64>>| {
            let mut all = hist();
            for h in m.values() {
                let _ = all.add(h);
            }
            percentiles(&all)
        };
        LatencySummary {
            ack: merge(&self.ack),
            e2e: merge(&self.e2e),
        }
    }

    /// Per label.
    pub fn by_label(&self) -> BTreeMap<String, LatencySummary> {
        let mut out: BTreeMap<String, LatencySummary> = BTreeMap::new();
        for (k, h) in &self.ack {
            out.entry(k.clone()).or_default().ack = percentiles(h);
        }
        for (k, h) in &self.e2e {
            out.entry(k.clone()).or_default().e2e = percentiles(h);
        }
        out
    }
}
