//! The consumer group's own pauses. A rebalance (a consumer joining or leaving, a bootstrap
//! switch, a coordinator move) stops deliveries while the cluster serves fine; a consume
//! window that such a pause explains is a `rebalance` window, judged by its own bound, and
//! `consume` windows keep meaning "records existed and the cluster would not serve them".
//!
//! A partition is *paused* from the moment the group took it from its last owner until it
//! gave it to another, and for one window threshold after that (the new owner fetches its
//! committed offset before it can fetch records); before its first assignment it is paused
//! too. A consume window is the group's when it overlaps a pause and, outside the pauses,
//! no stretch of it is longer than the threshold.

use roaring::RoaringBitmap;

use super::WindowKind;
use crate::check::windows::Span;

/// The milliseconds in which the group held a partition up, from its assignment events
/// `(ms, consumer instance, assigned)` in any order.
pub(super) fn paused(ownership: &[(u32, u32, bool)], threshold_ms: u32) -> RoaringBitmap {
    let mut events = ownership.to_vec();
    // at one millisecond, a revocation before an assignment: the hand-over is instant
    events.sort_by_key(|(t, instance, assigned)| (*t, *assigned, *instance));
    let mut paused = RoaringBitmap::new();
    let mut owners: Vec<u32> = Vec::new();
    let mut unowned_since = Some(0u32);
    for (t, instance, assigned) in events {
        if assigned {
            if !owners.contains(&instance) {
                owners.push(instance);
            }
            if let Some(since) = unowned_since.take() {
                paused.insert_range(since..t.saturating_add(threshold_ms).max(since + 1));
            }
        } else {
            owners.retain(|o| *o != instance);
            if owners.is_empty() && unowned_since.is_none() {
                unowned_since = Some(t);
            }
        }
    }
    if let Some(since) = unowned_since {
        paused.insert_range(since..u32::MAX);
    }
    paused
}

/// The milliseconds in which every partition was paused: the group as a whole held up.
pub(super) fn all_paused(per_partition: &[RoaringBitmap]) -> RoaringBitmap {
    let mut iter = per_partition.iter();
    let Some(first) = iter.next() else {
        return RoaringBitmap::new();
    };
    iter.fold(first.clone(), |acc, p| acc & p)
}

/// `Rebalance` when the group's pauses explain the consume window `w`, else `Consume`.
pub(super) fn consume_kind(w: &Span, paused: &RoaringBitmap, threshold_ms: u32) -> WindowKind {
    if w.end <= w.start || paused.range_cardinality(w.start..w.end) == 0 {
        return WindowKind::Consume;
    }
    // the longest stretch of the window outside the pauses
    let mut longest = 0;
    let mut cur = w.start;
    for t in paused.range(w.start..w.end) {
        longest = longest.max(t - cur);
        cur = t + 1;
    }
    longest = longest.max(w.end.saturating_sub(cur));
    if longest <= threshold_ms {
        WindowKind::Rebalance
    } else {
        WindowKind::Consume
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(start: u32, end: u32) -> Span {
        Span {
            start,
            end,
            open: false,
        }
    }

    #[test]
    fn a_hand_over_pauses_the_partition_from_revocation_to_assignment_and_a_threshold() {
        // consumer 0 owns it from 100 ms, gives it up at 5,000 ms; consumer 1 takes it at
        // 8,000 ms
        let p = paused(
            &[(8_000, 1, true), (100, 0, true), (5_000, 0, false)],
            1_000,
        );
        assert!(p.contains(50) && p.contains(1_099) && !p.contains(1_100));
        assert!(!p.contains(4_999) && p.contains(5_000) && p.contains(8_999));
        assert!(!p.contains(9_000));
        // a window inside the hand-over is the group's
        assert_eq!(
            consume_kind(&span(4_800, 8_500), &p, 1_000),
            WindowKind::Rebalance
        );
        // one that goes on well after the new owner had it is the cluster's
        assert_eq!(
            consume_kind(&span(4_800, 12_000), &p, 1_000),
            WindowKind::Consume
        );
        // one that began well before the hand-over too
        assert_eq!(
            consume_kind(&span(2_000, 8_500), &p, 1_000),
            WindowKind::Consume
        );
        // and one with no pause in it
        assert_eq!(
            consume_kind(&span(10_000, 20_000), &p, 1_000),
            WindowKind::Consume
        );
    }

    #[test]
    fn a_partition_with_another_owner_left_is_not_paused() {
        // two owners (an overlap during a cooperative hand-over): one leaving pauses nothing
        let p = paused(&[(0, 0, true), (10, 1, true), (5_000, 0, false)], 1_000);
        assert!(!p.contains(5_500));
        // the group pauses only when every partition does
        let q = paused(&[(0, 0, true), (5_000, 0, false), (6_000, 0, true)], 1_000);
        let both = all_paused(&[p, q.clone()]);
        assert!(!both.contains(5_500));
        assert!(all_paused(&[q]).contains(5_500));
    }
}
