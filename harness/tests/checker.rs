//! The checker is trusted only as far as this file tests it: a simulated clean run must
//! produce no anomaly and no window, and each injected anomaly must be found exactly — the
//! right count, the right kind, attributed to the right step.

use std::path::{Path, PathBuf};

use harness::check::{check, Attribution, CheckInput, Findings, WindowKind, WindowSubject};
use harness::rundir::timeline::TimelineEvent;
use workers::log::{FLAG_IDEMPOTENT, FLAG_ORDERED, FORMAT_VERSION};
use workers::renewal::RenewalKind;
use workers::{Event, EventKind, LogHeader, LogWriter, Role, TopicSpec};

const T0_MS: u64 = 1_700_000_000_000;
const PARTITIONS: u32 = 3;
const PRODUCERS: u32 = 2;
const PER_PRODUCER: u64 = 300;

fn us(rel_ms: u64) -> u64 {
    (T0_MS + rel_ms) * 1000
}

/// One record of the simulated run, with everything that happens to it.
#[derive(Clone, Debug)]
struct Rec {
    producer: u32,
    seq: u64,
    partition: i32,
    offset: i64,
    send_ms: u64,
    ack_ms: u64,
    outcome: EventKind,
    /// The broker that acked it.
    broker: i32,
    stored: bool,
    consumed: bool,
}

/// A run in which every record is acked 5 ms after it is sent, stored in offset order,
/// consumed 20 ms after its ack and found by the final read.
struct Sim {
    recs: Vec<Rec>,
    /// Extra events appended to the consumer log (after the normal deliveries).
    consumer_extra: Vec<Event>,
    /// Extra final-read deliveries (e.g. a duplicate copy).
    final_extra: Vec<(i32, i64, u32, u64)>,
    incomplete: Vec<i32>,
    steps: Vec<(u64, &'static str)>,
    ordered: bool,
    /// Client renewals: (producer, ms, `EpochBumped` or `ProducerIdRenewed`).
    renewals: Vec<(u32, u64, EventKind)>,
}

impl Sim {
    fn clean() -> Sim {
        let mut recs = Vec::new();
        let mut next_offset = [0i64; PARTITIONS as usize];
        for seq in 0..PER_PRODUCER {
            for producer in 0..PRODUCERS {
                let partition = (seq % u64::from(PARTITIONS)) as i32;
                let send_ms = 1000 + seq * 10 + u64::from(producer);
                let offset = next_offset[partition as usize];
                next_offset[partition as usize] += 1;
                recs.push(Rec {
                    producer,
                    seq,
                    partition,
                    offset,
                    send_ms,
                    ack_ms: send_ms + 5,
                    outcome: EventKind::Acked,
                    broker: 1,
                    stored: true,
                    consumed: true,
                });
            }
        }
        Sim {
            recs,
            consumer_extra: vec![],
            final_extra: vec![],
            incomplete: vec![],
            steps: vec![(2000, "first step"), (3000, "second step")],
            ordered: true,
            renewals: vec![],
        }
    }

    fn rec(&mut self, producer: u32, seq: u64) -> &mut Rec {
        self.recs
            .iter_mut()
            .find(|r| r.producer == producer && r.seq == seq)
            .unwrap()
    }

    fn timeline(&self) -> Vec<TimelineEvent> {
        let mut ev = vec![TimelineEvent::Phase {
            t_ms: T0_MS + 500,
            name: "warmup".into(),
        }];
        for (i, (t, name)) in self.steps.iter().enumerate() {
            ev.push(TimelineEvent::StepStart {
                t_ms: T0_MS + t,
                index: i,
                name: name.to_string(),
                action: "sleep".into(),
            });
            ev.push(TimelineEvent::StepEnd {
                t_ms: T0_MS + t + 900,
                index: i,
                name: name.to_string(),
                ok: true,
                error: None,
                node: None,
            });
        }
        ev.push(TimelineEvent::Phase {
            t_ms: T0_MS + 5000,
            name: "settle".into(),
        });
        ev.push(TimelineEvent::Phase {
            t_ms: T0_MS + 9000,
            name: "final-read".into(),
        });
        ev
    }

    fn write(&self, dir: &Path) -> Vec<PathBuf> {
        let header = |role: Role, flags: u32| LogHeader {
            version: FORMAT_VERSION,
            role,
            clock: 1,
            worker: 0,
            flags,
            start_us: us(0),
            run_id: "sim".into(),
        };
        let flags = if self.ordered {
            FLAG_IDEMPOTENT | FLAG_ORDERED
        } else {
            0
        };
        // producer log, in the order a producer writes it: sends, outcomes and client
        // renewals by time (a renewal after what happened in the same millisecond)
        let pp = dir.join("producer-0.log");
        let mut w = LogWriter::create(&pp, &header(Role::Produce, flags)).unwrap();
        let mut events: Vec<(u64, u8, Event)> = Vec::new();
        for r in &self.recs {
            events.push((
                r.send_ms,
                0,
                Event {
                    producer: r.producer,
                    seq: r.seq,
                    partition: r.partition,
                    ts_a: us(r.send_ms),
                    ..Event::new(EventKind::Sent)
                },
            ));
        }
        for (producer, at_ms, kind) in &self.renewals {
            events.push((
                *at_ms,
                2,
                Event {
                    producer: *producer,
                    seq: 4000 + u64::from(*producer),
                    code: 1,
                    offset: workers::renewal::RenewalReason::OutOfOrderSequence.code(),
                    ts_a: us(at_ms - 2),
                    ts_b: us(*at_ms),
                    ..Event::new(*kind)
                },
            ));
        }
        for r in &self.recs {
            let offset = if r.outcome == EventKind::Acked {
                r.offset
            } else {
                -1
            };
            events.push((
                r.ack_ms,
                1,
                Event {
                    producer: r.producer,
                    seq: r.seq,
                    partition: r.partition,
                    offset,
                    code: if r.outcome == EventKind::Acked {
                        r.broker
                    } else {
                        0
                    },
                    ts_a: us(r.send_ms),
                    ts_b: us(r.ack_ms),
                    ..Event::new(r.outcome)
                },
            ));
        }
        events.sort_by_key(|(t, order, _)| (*t, *order));
        for (_, _, e) in &events {
            w.append(e).unwrap();
        }
        w.finish().unwrap();
        // consumer log: one instance holding every partition
        let cp = dir.join("consumer-0.log");
        let mut w = LogWriter::create(&cp, &header(Role::Consume, 0)).unwrap();
        for p in 0..PARTITIONS as i32 {
            w.append(&Event {
                partition: p,
                ts_b: us(900),
                ..Event::new(EventKind::Assigned)
            })
            .unwrap();
        }
        let mut by_offset: Vec<&Rec> = self.recs.iter().filter(|r| r.consumed).collect();
        by_offset.sort_by_key(|r| (r.partition, r.offset));
        for r in by_offset {
            w.append(&Event {
                producer: r.producer,
                seq: r.seq,
                partition: r.partition,
                offset: r.offset,
                ts_a: us(r.send_ms),
                ts_b: us(r.ack_ms + 20),
                ..Event::new(EventKind::Received)
            })
            .unwrap();
        }
        for e in &self.consumer_extra {
            w.append(e).unwrap();
        }
        w.finish().unwrap();
        // final read
        let fp = dir.join("final-read-0.log");
        let mut w = LogWriter::create(&fp, &header(Role::FinalRead, 0)).unwrap();
        let mut stored: Vec<(i32, i64, u32, u64, u64)> = self
            .recs
            .iter()
            .filter(|r| r.stored)
            .map(|r| (r.partition, r.offset, r.producer, r.seq, r.send_ms))
            .collect();
        stored.extend(
            self.final_extra
                .iter()
                .map(|(p, o, pr, s)| (*p, *o, *pr, *s, 1000)),
        );
        stored.sort_by_key(|s| (s.0, s.1));
        for (p, o, producer, seq, send) in &stored {
            if self.incomplete.contains(p) {
                continue;
            }
            w.append(&Event {
                producer: *producer,
                seq: *seq,
                partition: *p,
                offset: *o,
                ts_a: us(*send),
                ts_b: us(9500),
                ..Event::new(EventKind::Received)
            })
            .unwrap();
        }
        for p in 0..PARTITIONS as i32 {
            let kind = if self.incomplete.contains(&p) {
                EventKind::ReadIncomplete
            } else {
                EventKind::ReadComplete
            };
            w.append(&Event {
                partition: p,
                offset: 0,
                ts_b: us(9600),
                ..Event::new(kind)
            })
            .unwrap();
        }
        w.finish().unwrap();
        vec![pp, cp, fp]
    }

    fn check(&self) -> Findings {
        let dir = tempfile::tempdir().unwrap();
        let logs = self.write(dir.path());
        let input = CheckInput {
            t0_ms: T0_MS,
            topics: vec![TopicSpec {
                name: "t".into(),
                partitions: PARTITIONS,
            }],
            attribution: Attribution::from_timeline(&self.timeline(), T0_MS, 100),
            window_threshold_ms: 500,
            logs,
        };
        check(&input).unwrap()
    }
}

/// Every anomaly count, so each test states all of them.
fn counts(f: &Findings) -> [u64; 10] {
    let a = &f.anomalies;
    [
        a.lost,
        a.lost_read_before,
        a.unverified,
        a.duplicate,
        a.reordered,
        a.inconsistent_offset,
        a.unexpected,
        a.poll_gap,
        a.poll_regression,
        a.unconsumed,
    ]
}

#[test]
fn a_clean_run_has_no_anomaly_and_no_window() {
    let f = Sim::clean().check();
    assert_eq!(counts(&f), [0; 10]);
    assert!(f.unavailability.is_empty(), "{:?}", f.unavailability);
    assert_eq!(f.producers.sent, 600);
    assert_eq!(f.producers.acked, 600);
    assert_eq!(f.producers.no_outcome, 0);
    assert_eq!(f.consumers.distinct, 600);
    assert_eq!(f.final_read.complete, 3);
    assert_eq!(f.final_read.records, 600);
    assert!(
        (f.latency_ms.ack.p50 - 5.0).abs() < 0.1,
        "{:?}",
        f.latency_ms
    );
    assert!(
        (f.latency_ms.e2e.p50 - 25.0).abs() < 0.1,
        "{:?}",
        f.latency_ms
    );
    assert!(f.latency_by_step.contains_key("first step"));
}

#[test]
fn an_acked_record_missing_from_the_final_read_and_never_read_is_lost() {
    let mut s = Sim::clean();
    let r = s.rec(1, 150); // sent at 2501 ms, during "first step"
    r.stored = false;
    r.consumed = false;
    let f = s.check();
    assert_eq!(
        counts(&f),
        [1, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        "skipping an offset that holds nothing is no gap"
    );
    let ex = &f.examples["lost"][0];
    assert_eq!((ex.producer, ex.seq), (1, 150));
    assert_eq!(ex.partition, "t/0");
    // no outage follows it: blamed on the acting step in force when it was acked
    assert_eq!(
        f.lost_by_step.get("first step"),
        Some(&1),
        "{:?}",
        f.lost_by_step
    );
}

#[test]
fn a_record_read_then_truncated_away_is_lost_and_counted_as_read_before() {
    let mut s = Sim::clean();
    // the last record of partition 2 vanished from the log after a consumer read it
    let last = s
        .recs
        .iter()
        .filter(|r| r.partition == 2)
        .max_by_key(|r| r.offset)
        .unwrap()
        .clone();
    s.rec(last.producer, last.seq).stored = false;
    let f = s.check();
    // the consumer read an offset the final log no longer has: inconsistent as well
    assert_eq!(counts(&f), [1, 1, 0, 0, 0, 1, 0, 0, 0, 0]);
}

#[test]
fn a_record_stored_twice_is_a_duplicate() {
    let mut s = Sim::clean();
    let end = s
        .recs
        .iter()
        .filter(|r| r.partition == 1)
        .map(|r| r.offset)
        .max()
        .unwrap();
    s.final_extra.push((1, end + 1, 0, 7));
    let f = s.check();
    assert_eq!(
        counts(&f),
        [0, 0, 0, 1, 0, 0, 0, 0, 0, 0],
        "a re-stored old seq is a duplicate, not also a reorder"
    );
}

#[test]
fn a_duplicate_of_a_record_in_flight_when_its_client_bumped_the_epoch_is_explained_by_it() {
    let mut s = Sim::clean();
    // producer 0's client bumps its epoch at 2003 ms: seq 100 (sent 2000, acked 2005) is
    // in flight, seq 99 (acked 1995) is not; producer 1 renews its id at the same time
    s.renewals.push((0, 2003, EventKind::EpochBumped));
    s.renewals.push((1, 2003, EventKind::ProducerIdRenewed));
    let end = |s: &Sim, p: i32| {
        s.recs
            .iter()
            .filter(|r| r.partition == p)
            .map(|r| r.offset)
            .max()
            .unwrap()
    };
    let (e0, e1, e2) = (end(&s, 0), end(&s, 1), end(&s, 2));
    s.final_extra.push((1, e1 + 1, 0, 100)); // in flight at producer 0's bump
    s.final_extra.push((0, e0 + 1, 0, 99)); // acked before it: not explained
    s.final_extra.push((2, e2 + 1, 0, 101)); // sent after it: not explained
    let f = s.check();
    assert_eq!(counts(&f), [0, 0, 0, 3, 0, 0, 0, 0, 0, 0]);
    assert_eq!(f.anomalies.duplicate_after_epoch_bump, 1);
    assert_eq!(f.client_renewals.len(), 2);
    let bump = &f.client_renewals[0];
    assert_eq!(
        (bump.producer, bump.kind, bump.at_ms, bump.drain_start_ms),
        (0, RenewalKind::EpochBump, 2003, 2001)
    );
    assert_eq!((bump.producer_id, bump.epoch, bump.in_flight), (4000, 1, 1));
    assert_eq!(bump.reason, "an out-of-order sequence error");
    assert_eq!(bump.step, "first step");
    assert_eq!(f.client_renewals[1].kind, RenewalKind::NewProducerId);
    // report.json keeps the words
    assert_eq!(
        serde_json::to_value(bump).unwrap()["kind"],
        serde_json::json!("epoch bump")
    );
    let detail = |seq: u64| {
        f.examples["duplicate"]
            .iter()
            .find(|e| e.seq == seq)
            .unwrap()
            .detail
            .clone()
    };
    assert!(
        detail(100).contains("epoch bump at t=2003ms"),
        "{}",
        detail(100)
    );
    for seq in [99, 101] {
        assert!(
            detail(seq).contains("no epoch bump of its producer explains it"),
            "{}",
            detail(seq)
        );
    }
}

#[test]
fn a_producer_log_of_format_version_1_is_still_read() {
    let s = Sim::clean();
    let dir = tempfile::tempdir().unwrap();
    let logs = s.write(dir.path());
    // rewrite the producer log's header as version 1 (same events, none of them renewals)
    let mut bytes = std::fs::read(&logs[0]).unwrap();
    bytes[8..10].copy_from_slice(&1u16.to_le_bytes());
    let crc = crc32fast::hash(&bytes[0..124]);
    bytes[124..128].copy_from_slice(&crc.to_le_bytes());
    std::fs::write(&logs[0], bytes).unwrap();
    let r = workers::LogReader::open(&logs[0]).unwrap();
    assert_eq!(r.header().version, 1);
    // and a version from the future is refused by name
    let mut bytes = std::fs::read(&logs[0]).unwrap();
    bytes[8..10].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    let crc = crc32fast::hash(&bytes[0..124]);
    bytes[124..128].copy_from_slice(&crc.to_le_bytes());
    let future = dir.path().join("future.log");
    std::fs::write(&future, bytes).unwrap();
    let err = workers::LogReader::open(&future).err().unwrap().to_string();
    assert!(
        err.contains(&format!("format version {}", FORMAT_VERSION + 1)),
        "{err}"
    );
}

#[test]
fn the_final_read_meeting_an_offset_again_is_a_re_read_not_a_duplicate() {
    let mut s = Sim::clean();
    let (partition, offset) = {
        let r = s.rec(0, 7);
        (r.partition, r.offset)
    };
    // the same record at the same offset again (a fetch retried during leader churn)
    s.final_extra.push((partition, offset, 0, 7));
    let f = s.check();
    assert_eq!(counts(&f), [0; 10], "{:?}", f.examples);
    assert_eq!(f.final_read.records, 600, "a re-read counts once");
}

#[test]
fn the_final_read_meeting_another_record_at_an_offset_is_inconsistent() {
    let mut s = Sim::clean();
    let (partition, offset) = {
        let r = s.rec(0, 7);
        (r.partition, r.offset)
    };
    // another record (producer 1, seq 8) at producer 0 seq 7's offset: the log changed
    s.final_extra.push((partition, offset, 1, 8));
    let f = s.check();
    assert_eq!(f.anomalies.inconsistent_offset, 1, "{:?}", f.examples);
    assert_eq!(f.anomalies.duplicate, 0);
    let ex = &f.examples["inconsistent_offset"][0];
    assert_eq!(ex.offset, Some(offset));
    assert!(ex.detail.contains("two different records"), "{ex:?}");
}

#[test]
fn a_later_seq_stored_below_an_earlier_one_is_reordered() {
    let mut s = Sim::clean();
    // producer 0, partition 0: seqs 3 and 6 swap offsets
    let (o3, o6) = (s.rec(0, 3).offset, s.rec(0, 6).offset);
    s.rec(0, 3).offset = o6;
    s.rec(0, 6).offset = o3;
    let f = s.check();
    assert_eq!(counts(&f), [0, 0, 0, 0, 1, 0, 0, 0, 0, 0]);
    assert_eq!(f.examples["reordered"][0].seq, 3);
}

#[test]
fn reordering_is_not_an_anomaly_for_unordered_producers() {
    let mut s = Sim::clean();
    s.ordered = false;
    let (o3, o6) = (s.rec(0, 3).offset, s.rec(0, 6).offset);
    s.rec(0, 3).offset = o6;
    s.rec(0, 6).offset = o3;
    assert_eq!(counts(&s.check()), [0; 10]);
}

#[test]
fn two_readers_seeing_different_records_at_one_offset_is_inconsistent() {
    let mut s = Sim::clean();
    let victim = s
        .recs
        .iter()
        .find(|r| r.partition == 1 && r.offset == 10)
        .unwrap()
        .clone();
    s.consumer_extra.push(Event {
        producer: 1,
        seq: 9999,
        partition: 1,
        offset: 10,
        ts_a: us(1000),
        ts_b: us(6000),
        instance: 1,
        ..Event::new(EventKind::Received)
    });
    let f = s.check();
    assert_eq!(counts(&f), [0, 0, 0, 0, 0, 1, 0, 0, 0, 0]);
    let ex = &f.examples["inconsistent_offset"][0];
    assert_eq!(ex.offset, Some(10));
    assert!(
        ex.detail
            .contains(&format!("producer {} seq {}", victim.producer, victim.seq)),
        "{}",
        ex.detail
    );
}

#[test]
fn a_failed_record_that_is_read_back_is_unexpected() {
    let mut s = Sim::clean();
    s.rec(0, 20).outcome = EventKind::Failed;
    let f = s.check();
    assert_eq!(counts(&f), [0, 0, 0, 0, 0, 0, 1, 0, 0, 0]);
    assert_eq!(f.producers.failed, 1);
}

#[test]
fn an_indeterminate_record_may_or_may_not_be_stored() {
    let mut s = Sim::clean();
    s.rec(0, 20).outcome = EventKind::Indeterminate;
    let r = s.rec(0, 21);
    r.outcome = EventKind::Indeterminate;
    r.stored = false;
    r.consumed = false;
    let f = s.check();
    // seq 21's offset is skipped by the consumer in this simulation
    assert_eq!(counts(&f)[..7], [0; 7]);
    assert_eq!(f.anomalies.unconsumed, 0);
    assert_eq!(f.producers.indeterminate, 2);
}

#[test]
fn a_consumer_skipping_offsets_is_a_gap_and_going_back_a_regression() {
    let mut s = Sim::clean();
    s.rec(0, 30).consumed = false; // partition 0 offset skipped
    let f = s.check();
    assert_eq!(
        counts(&f),
        [0, 0, 0, 0, 0, 0, 0, 1, 0, 1],
        "a gap, and the record never consumed"
    );

    let mut s = Sim::clean();
    // after reading partition 2 to the end, the consumer reads offset 5 again
    let r = s
        .recs
        .iter()
        .find(|r| r.partition == 2 && r.offset == 5)
        .unwrap()
        .clone();
    s.consumer_extra.push(Event {
        producer: r.producer,
        seq: r.seq,
        partition: 2,
        offset: 5,
        ts_a: us(r.send_ms),
        ts_b: us(7000),
        ..Event::new(EventKind::Received)
    });
    let f = s.check();
    assert_eq!(counts(&f), [0, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
}

#[test]
fn going_back_after_a_rebalance_is_normal_redelivery() {
    let mut s = Sim::clean();
    let r = s
        .recs
        .iter()
        .find(|r| r.partition == 2 && r.offset == 5)
        .unwrap()
        .clone();
    s.consumer_extra.push(Event {
        partition: 2,
        ts_b: us(6900),
        ..Event::new(EventKind::Revoked)
    });
    s.consumer_extra.push(Event {
        partition: 2,
        ts_b: us(6950),
        ..Event::new(EventKind::Assigned)
    });
    s.consumer_extra.push(Event {
        producer: r.producer,
        seq: r.seq,
        partition: 2,
        offset: 5,
        ts_a: us(r.send_ms),
        ts_b: us(7000),
        ..Event::new(EventKind::Received)
    });
    let f = s.check();
    assert_eq!(counts(&f), [0; 10]);
    assert_eq!(f.consumers.received, 601);
    assert_eq!(f.consumers.distinct, 600);
}

#[test]
fn a_stalled_partition_gives_a_produce_window_attributed_to_its_step() {
    let mut s = Sim::clean();
    // partition 1 acks nothing from 3000 ms (second step) until 4200 ms
    for r in s
        .recs
        .iter_mut()
        .filter(|r| r.partition == 1 && r.send_ms >= 3000 && r.send_ms < 4200)
    {
        r.ack_ms = 4200;
    }
    let f = s.check();
    assert_eq!(counts(&f), [0; 10]);
    let produce: Vec<_> = f
        .unavailability
        .iter()
        .filter(|w| w.kind == WindowKind::Produce && w.partition != WindowSubject::Cluster)
        .collect();
    assert_eq!(produce.len(), 1, "{:?}", f.unavailability);
    let w = produce[0];
    assert_eq!(w.partition, WindowSubject::Partition("t/1".into()));
    assert_eq!(w.step, "second step");
    assert!(w.duration_ms >= 1150 && w.duration_ms <= 1250, "{w:?}");
    // the other partitions went on: no cluster-wide produce window
    assert!(!f
        .unavailability
        .iter()
        .any(|w| w.partition == WindowSubject::Cluster && w.kind == WindowKind::Produce));
}

#[test]
fn a_loss_is_blamed_on_the_step_of_the_window_that_follows_its_ack() {
    let mut s = Sim::clean();
    // partition 0: the leader dies at 3000 ms ("second step") and the partition stalls
    // until 4200 ms; what it acked from 2600 ms on (in "first step") had not reached the
    // new leader: the stretch of lost records ends where the outage begins
    for r in s.recs.iter_mut().filter(|r| r.partition == 0) {
        if r.send_ms >= 3000 && r.send_ms < 4200 {
            r.ack_ms = 4200;
            r.broker = 2;
        } else if r.ack_ms >= 2600 && r.ack_ms < 3000 {
            r.stored = false;
        } else if r.ack_ms >= 4200 {
            r.broker = 2;
        }
    }
    let lost = s.recs.iter().filter(|r| !r.stored).count() as u64;
    let f = s.check();
    assert_eq!(f.anomalies.lost, lost);
    assert_eq!(
        f.lost_by_step.get("second step"),
        Some(&lost),
        "{:?}",
        f.lost_by_step
    );
    assert!(
        f.examples["lost"][0].detail.contains("ended in an outage"),
        "{}",
        f.examples["lost"][0].detail
    );
}

#[test]
fn a_partition_the_final_read_could_not_finish_is_unverified_not_lost() {
    let mut s = Sim::clean();
    s.incomplete.push(2);
    let r = s.rec(0, 50); // partition 2
    r.consumed = false;
    let f = s.check();
    assert_eq!(f.anomalies.lost, 0);
    assert_eq!(f.anomalies.unverified, 1);
    assert_eq!(f.final_read.incomplete, vec!["t/2".to_string()]);
}

#[test]
fn a_log_cut_short_by_a_crash_is_read_up_to_the_cut() {
    let s = Sim::clean();
    let dir = tempfile::tempdir().unwrap();
    let logs = s.write(dir.path());
    // cut the producer log in the middle of an event
    let len = std::fs::metadata(&logs[0]).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&logs[0])
        .unwrap()
        .set_len(len - 30)
        .unwrap();
    let input = CheckInput {
        t0_ms: T0_MS,
        topics: vec![TopicSpec {
            name: "t".into(),
            partitions: PARTITIONS,
        }],
        attribution: Attribution::from_timeline(&s.timeline(), T0_MS, 100),
        window_threshold_ms: 500,
        logs,
    };
    let f = check(&input).unwrap();
    assert_eq!(f.logs_cut_short.len(), 1);
    assert_eq!(f.producers.acked, 599, "the last (torn) ack is not counted");
    // nothing is invented: the un-logged ack is neither lost nor anything else
    assert_eq!(counts(&f), [0; 10]);
}

#[test]
fn a_stored_record_no_consumer_received_is_unconsumed() {
    let mut s = Sim::clean();
    // the last record of partition 1: nothing after it, so no gap shows it
    let last = s
        .recs
        .iter()
        .filter(|r| r.partition == 1)
        .max_by_key(|r| r.offset)
        .unwrap()
        .clone();
    s.rec(last.producer, last.seq).consumed = false;
    let f = s.check();
    assert_eq!(counts(&f), [0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    assert_eq!(f.examples["unconsumed"][0].offset, Some(last.offset));
}

#[test]
fn a_record_acked_by_a_leader_that_kept_acking_beside_a_new_one_is_split_brain_loss() {
    let mut s = Sim::clean();
    s.steps.push((4500, "third step"));
    // partition 0: from 3000 ms (second step) broker 2 also acks, while broker 1 goes on
    // acking until 4000 ms; broker 1's records from 3000 ms on are the losing side
    for r in s
        .recs
        .iter_mut()
        .filter(|r| r.partition == 0 && r.ack_ms >= 3000)
    {
        if r.producer == 1 && r.ack_ms < 4000 {
            r.broker = 1;
            r.stored = false;
            r.consumed = false;
        } else {
            r.broker = 2;
        }
    }
    let lost = s.recs.iter().filter(|r| !r.stored).count() as u64;
    assert!(lost > 10);
    let f = s.check();
    assert_eq!(f.anomalies.lost, lost);
    // without broker ids these would go to the next step after each ack ("third step")
    assert_eq!(
        f.lost_by_step.get("second step"),
        Some(&lost),
        "{:?}",
        f.lost_by_step
    );
}

#[test]
fn a_loss_without_an_outage_is_blamed_on_the_step_it_was_written_in() {
    let mut s = Sim::clean();
    s.steps.push((4500, "third step"));
    // broker 1 acks partition 0 until 3500 ms, broker 2 from 3600 ms: the clients moved on
    // without an outage. A record broker 1 acked at ~2500 ms ("first step") is gone: it
    // was written under "first step", and no outage came after it.
    for r in s
        .recs
        .iter_mut()
        .filter(|r| r.partition == 0 && r.ack_ms >= 3600)
    {
        r.broker = 2;
    }
    let r = s.rec(0, 150);
    r.stored = false;
    let f = s.check();
    assert_eq!(f.anomalies.lost, 1);
    assert_eq!(
        f.lost_by_step.get("first step"),
        Some(&1),
        "{:?}",
        f.lost_by_step
    );
    assert!(f.examples["lost"][0]
        .detail
        .contains("deposed without an outage"));
}

#[test]
fn a_lost_stretch_without_an_outage_is_blamed_on_the_step_in_force_when_it_began() {
    let mut s = Sim::clean();
    // broker 1's records on partition 1 from 2100 ms to 3500 ms were never replicated and
    // are gone, with no outage after them (a deposed leader that kept acking). The stretch
    // began in "first step" (2000), so all of it — also what was acked during "second
    // step" — is blamed on it.
    for r in s
        .recs
        .iter_mut()
        .filter(|r| r.partition == 1 && r.ack_ms >= 2100 && r.ack_ms < 3500)
    {
        r.stored = false;
        r.consumed = false;
    }
    let lost = s.recs.iter().filter(|r| !r.stored).count() as u64;
    let f = s.check();
    assert_eq!(f.anomalies.lost, lost);
    assert_eq!(f.anomalies.lost_read_before, 0);
    assert_eq!(
        f.lost_by_step.get("first step"),
        Some(&lost),
        "{:?}",
        f.lost_by_step
    );
    assert!(
        f.examples["lost"][0]
            .detail
            .contains("deposed without an outage"),
        "{}",
        f.examples["lost"][0].detail
    );
}
