//! The run second by second, for the HTML report's charts: records sent, acked, failed,
//! refused and consumed, and ack and end-to-end latency percentiles, per time bucket.
//!
//! Buckets start one second wide; a run longer than [`MAX_BUCKETS`] seconds doubles their
//! width (merging pairs) as often as needed, so memory stays bounded (a few MB at most,
//! whatever the run's length) and the charts keep a readable number of points. Merging is
//! exact (counts add, histograms add), so the result does not depend on the order the logs
//! are read in.

use hdrhistogram::Histogram;
use serde::Serialize;

use super::latency::{percentiles, Percentiles};

/// At most this many buckets: the width doubles beyond.
pub const MAX_BUCKETS: usize = 512;

/// One time bucket of the run.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct SeriesPoint {
    /// Start of the bucket, ms since the run start.
    pub start_ms: u64,
    /// Records sent in it that got an outcome (acked, failed or indeterminate), by send
    /// time.
    pub sent: u64,
    /// Records acked in it, by ack time.
    pub acked: u64,
    /// Records failed or of unknown outcome, by the time the client said so.
    pub failed: u64,
    /// Sends the client refused (queue full, unknown partition…), by attempt time.
    pub refused: u64,
    /// Records delivered to a consumer (re-deliveries too), by receive time.
    pub consumed: u64,
    /// Ack latency of the records sent in it.
    pub ack: Percentiles,
    /// End-to-end latency (send → first delivery) of the records sent in it.
    pub e2e: Percentiles,
}

/// The run's buckets.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Series {
    /// Width of every bucket, ms.
    pub bucket_ms: u64,
    /// The buckets from the run start, without gaps.
    pub points: Vec<SeriesPoint>,
}

impl Series {
    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }
}

/// One bucket while the logs are read.
#[derive(Default)]
struct Bucket {
    sent: u64,
    acked: u64,
    failed: u64,
    refused: u64,
    consumed: u64,
    /// µs; made on the first sample (most buckets of a consumer-only run have none).
    ack: Option<Histogram<u32>>,
    e2e: Option<Histogram<u32>>,
}

fn hist() -> Histogram<u32> {
    // 1 µs .. 1 h, 2 significant digits: ~13 kB per histogram, 1 % resolution
    Histogram::new_with_bounds(1, 3_600_000_000, 2).expect("valid histogram bounds")
}

fn add(into: &mut Option<Histogram<u32>>, from: Option<Histogram<u32>>) {
    match (into.as_mut(), from) {
        (_, None) => {}
        (None, Some(h)) => *into = Some(h),
        (Some(a), Some(b)) => {
            // u32 counts: a bucket would need 4·10⁹ samples of one value to saturate
            let _ = a.add(&b);
        }
    }
}

impl Bucket {
    fn merge(&mut self, other: Bucket) {
        self.sent += other.sent;
        self.acked += other.acked;
        self.failed += other.failed;
        self.refused += other.refused;
        self.consumed += other.consumed;
        add(&mut self.ack, other.ack);
        add(&mut self.e2e, other.e2e);
    }
}

/// Collects the series while the checker reads the logs.
pub struct SeriesBook {
    bucket_ms: u64,
    buckets: Vec<Bucket>,
}

impl Default for SeriesBook {
    fn default() -> Self {
        SeriesBook {
            bucket_ms: 1000,
            buckets: Vec::new(),
        }
    }
}

impl SeriesBook {
    /// The bucket of `t_ms` (ms since the run start), made when new.
    fn at(&mut self, t_ms: u32) -> &mut Bucket {
        let t = u64::from(t_ms);
        let mut i = (t / self.bucket_ms) as usize;
        // one division for every record but the few that open a bucket
        if i >= self.buckets.len() {
            while i >= MAX_BUCKETS {
                self.coarsen();
                i = (t / self.bucket_ms) as usize;
            }
            if i >= self.buckets.len() {
                self.buckets.resize_with(i + 1, Bucket::default);
            }
        }
        &mut self.buckets[i]
    }

    /// Doubles the width: bucket `i` goes into `i / 2`.
    fn coarsen(&mut self) {
        self.bucket_ms *= 2;
        let old = std::mem::take(&mut self.buckets);
        let mut merged: Vec<Bucket> = Vec::with_capacity(old.len().div_ceil(2));
        for (i, b) in old.into_iter().enumerate() {
            if i % 2 == 0 {
                merged.push(b);
            } else if let Some(last) = merged.last_mut() {
                last.merge(b);
            }
        }
        self.buckets = merged;
    }

    /// A record sent at `send_ms` and acked at `done_ms`, after `latency_us`.
    pub fn acked(&mut self, send_ms: u32, done_ms: u32, latency_us: u64) {
        let b = self.at(send_ms);
        b.sent += 1;
        let _ = b
            .ack
            .get_or_insert_with(hist)
            .record(latency_us.clamp(1, 3_600_000_000));
        self.at(done_ms).acked += 1;
    }

    /// A record sent at `send_ms` that failed, or whose outcome is unknown, at `done_ms`.
    pub fn failed(&mut self, send_ms: u32, done_ms: u32) {
        self.at(send_ms).sent += 1;
        self.at(done_ms).failed += 1;
    }

    /// A send the client refused at `at_ms`.
    pub fn refused(&mut self, at_ms: u32) {
        self.at(at_ms).refused += 1;
    }

    /// A delivery to a consumer at `at_ms`.
    pub fn consumed(&mut self, at_ms: u32) {
        self.at(at_ms).consumed += 1;
    }

    /// The first delivery of a record sent at `send_ms`, `latency_us` after it was sent.
    pub fn first_delivery(&mut self, send_ms: u32, latency_us: u64) {
        let _ = self
            .at(send_ms)
            .e2e
            .get_or_insert_with(hist)
            .record(latency_us.clamp(1, 3_600_000_000));
    }

    /// The series as the report shows it.
    pub fn finish(self) -> Series {
        let width = self.bucket_ms;
        let points = self
            .buckets
            .into_iter()
            .enumerate()
            .map(|(i, b)| SeriesPoint {
                start_ms: i as u64 * width,
                sent: b.sent,
                acked: b.acked,
                failed: b.failed,
                refused: b.refused,
                consumed: b.consumed,
                ack: b.ack.as_ref().map(percentiles).unwrap_or_default(),
                e2e: b.e2e.as_ref().map(percentiles).unwrap_or_default(),
            })
            .collect();
        Series {
            bucket_ms: width,
            points,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_count_by_the_time_each_thing_happened() {
        let mut b = SeriesBook::default();
        b.acked(100, 1_500, 1_400_000);
        b.failed(2_100, 2_900);
        b.refused(2_200);
        b.consumed(1_999);
        b.first_delivery(100, 2_000_000);
        let s = b.finish();
        assert_eq!(s.bucket_ms, 1000);
        assert_eq!(s.points.len(), 3);
        assert_eq!((s.points[0].sent, s.points[0].acked), (1, 0));
        assert_eq!((s.points[1].acked, s.points[1].consumed), (1, 1));
        assert_eq!(
            (s.points[2].sent, s.points[2].failed, s.points[2].refused),
            (1, 1, 1)
        );
        assert!((s.points[0].ack.p50 - 1400.0).abs() < 15.0);
        assert!((s.points[0].e2e.max - 2000.0).abs() < 25.0);
        assert_eq!(s.points[1].ack.count, 0);
    }

    #[test]
    fn a_long_run_widens_the_buckets_and_keeps_every_count() {
        let mut b = SeriesBook::default();
        // one ack per second for 2 000 s, read backwards (order must not matter)
        for t in (0..2_000u32).rev() {
            b.acked(t * 1000, t * 1000, 1000);
        }
        let s = b.finish();
        assert_eq!(s.bucket_ms, 4000);
        assert!(s.points.len() <= MAX_BUCKETS);
        assert_eq!(s.points.iter().map(|p| p.acked).sum::<u64>(), 2_000);
        assert_eq!(s.points.iter().map(|p| p.ack.count).sum::<u64>(), 2_000);
        assert_eq!(s.points[0].acked, 4);
    }
}
