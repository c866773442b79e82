//! Unavailability windows.
//!
//! For one partition (or the whole cluster), *pending* is the set of milliseconds in which
//! at least one attempt was outstanding — for produce, a record sent and not yet acked or
//! failed; for consume, a record stored (acked) and not yet delivered to any consumer — and
//! *success* the milliseconds in which something succeeded (an ack; a delivery). A window is
//! a stretch of pending time with no success in it longer than the threshold. Both sets are
//! roaring bitmaps of milliseconds since the run start: run-length compressed, so an hour
//! of a busy partition costs kilobytes whatever the record count.

use roaring::RoaringBitmap;

/// Pending and success milliseconds of one partition (or of the cluster).
#[derive(Default, Debug, Clone)]
pub struct Activity {
    /// Milliseconds with an attempt outstanding.
    pending: RoaringBitmap,
    /// Milliseconds with a success.
    success: RoaringBitmap,
    /// The stretch `[from, to)` last known to be all pending: records of one partition
    /// arrive in time order and overlap, so most attempts add nothing to it (a record per
    /// event, a bitmap lookup saved per event).
    covered: (u32, u32),
    /// The last millisecond marked a success.
    last_success: Option<u32>,
}

/// A window found, in ms since run start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// Last success before it (or the first attempt).
    pub start: u32,
    /// The first success after it (or the end of the last attempt).
    pub end: u32,
    /// True when no success ended it: the attempts failed, timed out or the run ended.
    pub open: bool,
}

impl Activity {
    /// Marks `[from, to)` as pending (an attempt outstanding).
    pub fn attempt(&mut self, from: u32, to: u32) {
        let to = to.max(from + 1);
        let (c_from, c_to) = self.covered;
        if from >= c_from && to <= c_to {
            return;
        }
        if from >= c_from && from <= c_to {
            // overlapping the stretch and beyond it: only the new part
            self.pending.insert_range(c_to..to);
            self.covered = (c_from, to);
        } else {
            self.pending.insert_range(from..to);
            self.covered = (from, to);
        }
    }

    /// The first millisecond with a success.
    pub fn first_success(&self) -> Option<u32> {
        self.success.min()
    }

    /// Marks a success at `t`.
    pub fn success(&mut self, t: u32) {
        if self.last_success != Some(t) {
            self.success.insert(t);
            self.last_success = Some(t);
        }
    }

    /// Merges another partition's activity (for the cluster-wide view).
    pub fn merge(&mut self, other: &Activity) {
        self.pending |= &other.pending;
        self.success |= &other.success;
    }

    /// Windows longer than `threshold_ms`.
    pub fn windows(&self, threshold_ms: u32) -> Vec<Span> {
        let mut out = Vec::new();
        let mut iter = self.pending.iter().peekable();
        while let Some(first) = iter.next() {
            // one maximal run [first, last] of pending milliseconds
            let mut last = first;
            while iter.peek() == Some(&(last + 1)) {
                last = iter.next().unwrap();
            }
            let mut cur = first;
            for s in self.success.range(first..=last.saturating_add(1)) {
                if s - cur > threshold_ms {
                    out.push(Span {
                        start: cur,
                        end: s,
                        open: false,
                    });
                }
                cur = s;
            }
            let end = last.saturating_add(1);
            if end > cur && end - cur > threshold_ms {
                out.push(Span {
                    start: cur,
                    end,
                    open: true,
                });
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Steady traffic: an attempt every 5 ms that succeeds 3 ms later.
    fn steady(a: &mut Activity, from: u32, to: u32) {
        let mut t = from;
        while t < to {
            a.attempt(t, t + 3);
            a.success(t + 3);
            t += 5;
        }
    }

    #[test]
    fn steady_traffic_has_no_window() {
        let mut a = Activity::default();
        steady(&mut a, 0, 10_000);
        assert!(a.windows(100).is_empty());
    }

    #[test]
    fn an_outage_is_one_window_from_last_success_to_first_success() {
        let mut a = Activity::default();
        steady(&mut a, 0, 5_000);
        // sends from 5000 stall until 8000, then all ack at 8000
        for t in (5000..8000).step_by(5) {
            a.attempt(t, 8000);
        }
        a.success(8000);
        steady(&mut a, 8000, 10_000);
        let w = a.windows(1000);
        // nothing was pending between the last success (4998) and the first stalled send (5000)
        assert_eq!(
            w,
            vec![Span {
                start: 5000,
                end: 8000,
                open: false
            }]
        );
    }

    #[test]
    fn idle_time_is_not_unavailability() {
        let mut a = Activity::default();
        steady(&mut a, 0, 1000);
        steady(&mut a, 5000, 6000); // nothing attempted in between
        assert!(a.windows(500).is_empty());
    }

    #[test]
    fn attempts_that_never_succeed_give_an_open_window() {
        let mut a = Activity::default();
        steady(&mut a, 0, 1000);
        a.attempt(1000, 4000); // e.g. failed at 4000
        let w = a.windows(500);
        assert_eq!(w.len(), 1);
        assert!(w[0].open);
        assert_eq!((w[0].start, w[0].end), (1000, 4000));
    }

    #[test]
    fn shorter_than_threshold_is_not_reported() {
        let mut a = Activity::default();
        steady(&mut a, 0, 1000);
        a.attempt(1000, 1400);
        a.success(1400);
        steady(&mut a, 1400, 2000);
        assert!(a.windows(500).is_empty());
        assert_eq!(a.windows(300).len(), 1);
    }
}
