//! The checker across a MirrorMaker switch-over, on simulated logs: consumers and then
//! producers reconnect to the target cluster (`Reconnected`, cluster 1), whose offsets
//! differ from the source's. A clean switch-over finds nothing and counts what moved and
//! what the group read again; a record the target acked and lost, a target partition not
//! read to its end, a record the target holds that no consumer got are each found; and the
//! same logs without the `Reconnected` events — what the checker saw before it knew of
//! the move — are full of false offsets and losses (so these tests fail without it).

use std::path::{Path, PathBuf};

use harness::check::{check, Attribution, CheckInput, Findings, TargetRead};
use harness::rundir::timeline::TimelineEvent;
use workers::log::{FLAG_IDEMPOTENT, FLAG_ORDERED, FORMAT_VERSION};
use workers::{Event, EventKind, LogHeader, LogWriter, Role, TopicSpec};

const T0_MS: u64 = 1_700_000_000_000;
/// Records per phase: the first `BEFORE` sequence numbers are produced on the source,
/// the next `AFTER` on the target.
const BEFORE: u64 = 40;
const AFTER: u64 = 30;
/// The target's copy of the source's topic starts this far ahead of the source's offsets
/// (MirrorMaker's copy has offsets of its own).
const TARGET_SHIFT: i64 = 7;

fn us(ms: u64) -> u64 {
    (T0_MS + ms) * 1000
}

fn header(role: Role, flags: u32) -> LogHeader {
    LogHeader {
        version: FORMAT_VERSION,
        role,
        clock: 1,
        worker: 0,
        flags,
        start_us: us(0),
        run_id: "sim".into(),
    }
}

/// One producer (id 0, instance 0), one partition: seq `s` at source offset `s` (the
/// first `BEFORE`), at target offset `s + TARGET_SHIFT` (copied or written there).
struct Sim {
    /// The consumer moves after delivering this many source records (re-reading
    /// `reread` of them on the target).
    consumer_moves_at: u64,
    reread: u64,
    /// Target-acked records the target's final read lacks.
    lost_on_target: Vec<u64>,
    /// Records no consumer got (on the target).
    unconsumed: Vec<u64>,
    /// The target's final read did not finish its partition.
    target_incomplete: bool,
    /// Write the `Reconnected` events.
    reconnect_events: bool,
    /// Outcomes other than an ack for records produced on the target.
    outcomes: Vec<(u64, EventKind)>,
}

impl Sim {
    fn clean() -> Sim {
        Sim {
            consumer_moves_at: 30,
            reread: 3,
            lost_on_target: vec![],
            unconsumed: vec![],
            target_incomplete: false,
            reconnect_events: true,
            outcomes: vec![],
        }
    }

    fn moved(&self, instance: u32, producer: u32, at_ms: u64) -> Event {
        Event {
            producer,
            instance,
            code: 1,
            ts_b: us(at_ms),
            ..Event::new(EventKind::Reconnected)
        }
    }

    fn record(&self, kind: EventKind, seq: u64, offset: i64, at_ms: u64) -> Event {
        Event {
            producer: 0,
            seq,
            partition: 0,
            offset,
            code: 1,
            ts_a: us(1000 + seq * 10),
            ts_b: us(at_ms),
            ..Event::new(kind)
        }
    }

    fn target_offset(seq: u64) -> i64 {
        seq as i64 + TARGET_SHIFT
    }

    fn write(&self, dir: &Path) -> (Vec<PathBuf>, PathBuf) {
        let send_ms = |seq: u64| 1000 + seq * 10;
        // the producer: BEFORE acks on the source, then moves, then AFTER on the target
        let pp = dir.join("producer-0.log");
        let mut w =
            LogWriter::create(&pp, &header(Role::Produce, FLAG_IDEMPOTENT | FLAG_ORDERED)).unwrap();
        for seq in 0..BEFORE {
            w.append(&self.record(EventKind::Acked, seq, seq as i64, send_ms(seq) + 5))
                .unwrap();
        }
        if self.reconnect_events {
            w.append(&self.moved(0, 0, send_ms(BEFORE) - 1)).unwrap();
        }
        for seq in BEFORE..BEFORE + AFTER {
            let kind = self
                .outcomes
                .iter()
                .find(|(s, _)| *s == seq)
                .map_or(EventKind::Acked, |(_, k)| *k);
            let offset = if kind == EventKind::Acked {
                Self::target_offset(seq)
            } else {
                -1
            };
            w.append(&self.record(kind, seq, offset, send_ms(seq) + 5))
                .unwrap();
        }
        w.append(&Event {
            producer: 0,
            seq: BEFORE + AFTER,
            ts_a: us(send_ms(BEFORE + AFTER)),
            ..Event::new(EventKind::SentUpTo)
        })
        .unwrap();
        w.finish().unwrap();

        // the consumer (instance 0): the source's records up to where it moves, then the
        // target's from a few before that (what the translated offset re-reads)
        let cp = dir.join("consumer-0.log");
        let mut w = LogWriter::create(&cp, &header(Role::Consume, 0)).unwrap();
        w.append(&Event {
            partition: 0,
            ts_b: us(500),
            ..Event::new(EventKind::Assigned)
        })
        .unwrap();
        let at = self.consumer_moves_at;
        for seq in 0..at {
            w.append(&self.record(EventKind::Received, seq, seq as i64, send_ms(seq) + 7))
                .unwrap();
        }
        w.append(&Event {
            partition: 0,
            ts_b: us(send_ms(at)),
            ..Event::new(EventKind::Revoked)
        })
        .unwrap();
        if self.reconnect_events {
            w.append(&self.moved(0, 0, send_ms(at) + 1)).unwrap();
        }
        w.append(&Event {
            partition: 0,
            ts_b: us(send_ms(at) + 2),
            ..Event::new(EventKind::Assigned)
        })
        .unwrap();
        for seq in at - self.reread..BEFORE + AFTER {
            if self.unconsumed.contains(&seq) {
                continue;
            }
            let t = (send_ms(seq) + 7).max(send_ms(at) + 3);
            w.append(&self.record(EventKind::Received, seq, Self::target_offset(seq), t))
                .unwrap();
        }
        w.finish().unwrap();

        // the source's final read: what was produced there
        let fp = dir.join("final-read.log");
        let mut w = LogWriter::create(&fp, &header(Role::FinalRead, 0)).unwrap();
        for seq in 0..BEFORE {
            w.append(&self.record(EventKind::Received, seq, seq as i64, 9500))
                .unwrap();
        }
        w.append(&Event {
            partition: 0,
            offset: BEFORE as i64,
            seq: 0,
            ts_b: us(9600),
            ..Event::new(EventKind::ReadComplete)
        })
        .unwrap();
        w.finish().unwrap();

        // the target's: MirrorMaker's copies and what was produced there
        let tp = dir.join("final-read-target.log");
        let mut w = LogWriter::create(&tp, &header(Role::FinalRead, 0)).unwrap();
        for seq in 0..BEFORE + AFTER {
            if self.lost_on_target.contains(&seq) {
                continue;
            }
            w.append(&self.record(EventKind::Received, seq, Self::target_offset(seq), 9700))
                .unwrap();
        }
        w.append(&Event {
            partition: 0,
            offset: Self::target_offset(BEFORE + AFTER),
            seq: TARGET_SHIFT as u64,
            ts_b: us(9800),
            ..Event::new(if self.target_incomplete {
                EventKind::ReadIncomplete
            } else {
                EventKind::ReadComplete
            })
        })
        .unwrap();
        w.finish().unwrap();
        (vec![pp, cp, fp], tp)
    }

    fn check(&self) -> Findings {
        let dir = tempfile::tempdir().unwrap();
        let (logs, target) = self.write(dir.path());
        let timeline = vec![
            TimelineEvent::Phase {
                t_ms: T0_MS + 100,
                name: "warmup".into(),
            },
            TimelineEvent::Phase {
                t_ms: T0_MS + 8000,
                name: "drain".into(),
            },
            TimelineEvent::Phase {
                t_ms: T0_MS + 9000,
                name: "final-read".into(),
            },
        ];
        check(&CheckInput {
            t0_ms: T0_MS,
            topics: vec![TopicSpec {
                name: "orders".into(),
                partitions: 1,
            }],
            attribution: Attribution::from_timeline(&timeline, T0_MS, 100),
            window_threshold_ms: 500,
            logs,
            silence_threshold_ms: 5000,
            producers_expected: 1,
            dead_workers: vec![],
            clocks: Default::default(),
            target_read: Some(TargetRead {
                log: target,
                topics: vec!["orders".into()],
            }),
        })
        .unwrap()
    }
}

#[test]
fn a_clean_switch_over_finds_nothing_and_counts_what_moved_and_what_was_read_again() {
    let f = Sim::clean().check();
    let a = &f.anomalies;
    assert_eq!(
        (a.lost, a.unverified, a.inconsistent_offset, a.unconsumed),
        (0, 0, 0, 0),
        "{a:?}"
    );
    assert_eq!(
        (a.poll_gap, a.poll_regression, a.duplicate),
        (0, 0, 0),
        "{a:?}"
    );
    assert_eq!(f.producers.acked, BEFORE + AFTER);
    let s = f.switch_over.expect("the moves are reported");
    assert_eq!((s.consumers_moved, s.producers_moved), (1, 1));
    assert_eq!(s.acked_on_target, AFTER);
    assert_eq!(s.lost_on_target, 0);
    assert_eq!(s.reread_on_target, 3, "the three read again after the move");
    assert!(s.target_read);
    assert_eq!(f.consumers.received, BEFORE + AFTER + 3, "three read twice");
}

#[test]
fn a_record_the_target_acked_and_lost_is_lost_and_blamed_on_no_broker() {
    let f = Sim {
        lost_on_target: vec![BEFORE + 5],
        ..Sim::clean()
    }
    .check();
    assert_eq!(f.anomalies.lost, 1, "{:?}", f.anomalies);
    assert_eq!(f.switch_over.unwrap().lost_on_target, 1);
    let ex = &f.examples["lost"][0];
    assert_eq!((ex.producer, ex.seq), (0, BEFORE + 5), "{ex:?}");
    // the consumer read it on the target before the loss: it is read-before-loss
    assert_eq!(f.anomalies.lost_read_before, 1);
}

#[test]
fn a_target_partition_not_read_to_its_end_leaves_its_records_unverified_not_lost() {
    let f = Sim {
        lost_on_target: vec![BEFORE + 5],
        target_incomplete: true,
        ..Sim::clean()
    }
    .check();
    assert_eq!(f.anomalies.lost, 0, "{:?}", f.anomalies);
    assert_eq!(f.anomalies.unverified, 1, "{:?}", f.anomalies);
}

#[test]
fn a_record_stored_on_the_target_that_no_consumer_got_is_unconsumed() {
    let f = Sim {
        unconsumed: vec![BEFORE + 10, BEFORE + 11],
        ..Sim::clean()
    }
    .check();
    assert_eq!(f.anomalies.unconsumed, 2, "{:?}", f.anomalies);
    assert_eq!(f.examples["unconsumed"][0].seq, BEFORE + 10);
    // a gap in what the consumer read on the target is no poll gap: offsets there are
    // the target's, and the checker does not compare them with the source's
    assert_eq!(f.anomalies.poll_gap, 0);
}

#[test]
fn without_the_reconnections_the_same_logs_are_judged_as_one_cluster_and_fail() {
    let f = Sim {
        reconnect_events: false,
        ..Sim::clean()
    }
    .check();
    assert!(f.switch_over.is_none());
    // the target's acks, not in the source's final read: lost; the target's deliveries at
    // offsets the source holds other records at: inconsistent
    assert_eq!(f.anomalies.lost, AFTER, "{:?}", f.anomalies);
    assert!(f.anomalies.inconsistent_offset > 0, "{:?}", f.anomalies);
}

#[test]
fn the_targets_unknown_and_failed_outcomes_are_judged_by_the_targets_read() {
    // of unknown outcome on the target, read there and stored there: written, not lost
    // (the source's final read never held it, and must not be asked)
    let f = Sim {
        outcomes: vec![(BEFORE + 3, EventKind::Indeterminate)],
        ..Sim::clean()
    }
    .check();
    assert_eq!(
        (f.anomalies.lost, f.anomalies.unverified),
        (0, 0),
        "{:?}",
        f.anomalies
    );
    // …and read but gone from the target's read: lost, as a record of unknown outcome
    let f = Sim {
        outcomes: vec![(BEFORE + 3, EventKind::Indeterminate)],
        lost_on_target: vec![BEFORE + 3],
        ..Sim::clean()
    }
    .check();
    assert_eq!(f.anomalies.lost, 1, "{:?}", f.anomalies);
    assert!(
        f.examples["lost"][0].detail.contains("unknown outcome"),
        "{:?}",
        f.examples["lost"]
    );
    // reported failed by the target, yet there: unexpected
    let f = Sim {
        outcomes: vec![(BEFORE + 4, EventKind::Failed)],
        ..Sim::clean()
    }
    .check();
    assert_eq!(f.anomalies.unexpected, 1, "{:?}", f.anomalies);
    assert_eq!(f.anomalies.lost, 0);
}
