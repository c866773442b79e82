//! The checker is trusted only as far as this file tests it: a simulated clean run must
//! produce no anomaly and no window, and each injected anomaly must be found exactly — the
//! right count, the right kind, attributed to the right step.

use std::path::{Path, PathBuf};

use std::collections::BTreeMap;

use harness::check::{
    check, Attribution, CheckInput, DeadWorker, Findings, WindowKind, WindowSubject,
};
use harness::cluster::ssh::clock::{ClockSample, HostClock};
use harness::rundir::timeline::TimelineEvent;
use workers::log::{
    TransactionEvent, TransactionOutcome, FLAG_IDEMPOTENT, FLAG_ORDERED, FLAG_TRANSACTIONAL,
    FORMAT_VERSION,
};
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
    /// The offset its ack named, when not the one it is stored at.
    acked_offset: Option<i64>,
    /// When the group delivered it, when not 20 ms after its ack.
    consume_ms: Option<u64>,
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
    /// The action of each step by index (`sleep`, passive waiting time, when not given).
    step_actions: Vec<&'static str>,
    ordered: bool,
    /// The producers send in transactions (their log header says so); the transactions
    /// themselves are `Transaction` events in `producer_extra` ([`Sim::in_transactions`]).
    transactional: bool,
    /// Client renewals: (producer, ms, `EpochBumped` or `ProducerIdRenewed`); each drain
    /// began `drain_ms` before.
    renewals: Vec<(u32, u64, EventKind)>,
    drain_ms: u64,
    /// Extra producer log events, at a time (ms): refused sends.
    producer_extra: Vec<(u64, Event)>,
    /// Extra final-read events (foreign, corrupt records).
    final_events: Vec<Event>,
    /// Per partition, the log start offset the final read saw.
    log_start: Vec<i64>,
    /// Per partition, the end offset the final read says it read to (0: its completion
    /// event says none, as the checker's older inputs).
    end_offset: Vec<i64>,
    /// For a partition the final read could not finish: the last offset it reached.
    read_until: Vec<(i32, i64)>,
    /// When the producers were stopped (the drain phase), ms.
    producers_stop_ms: u64,
    /// The silence threshold given to the checker, ms.
    silence_ms: u64,
    /// Producer instances the workload started.
    producers_expected: u32,
    /// Workers the run recorded as dead.
    dead: Vec<DeadWorker>,
    /// The log format the workers write: from version 4, producers log "sent up to"
    /// watermarks; before, a `Sent` event per record.
    format: u16,
    /// The producers ran on a machine whose clock is this far ahead of the coordinator's:
    /// every time their log holds, and every send time readers find in record headers.
    producer_clock_ahead_ms: u64,
    /// Give the checker that machine's measured clock (`clocks.json`).
    correct_clocks: bool,
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
                    acked_offset: None,
                    consume_ms: None,
                });
            }
        }
        Sim {
            recs,
            consumer_extra: vec![],
            final_extra: vec![],
            incomplete: vec![],
            steps: vec![(2000, "first step"), (3000, "second step")],
            step_actions: vec![],
            ordered: true,
            transactional: false,
            renewals: vec![],
            drain_ms: 2,
            producer_extra: vec![],
            final_events: vec![],
            log_start: vec![0; PARTITIONS as usize],
            end_offset: vec![0; PARTITIONS as usize],
            read_until: vec![],
            producers_stop_ms: 8000,
            silence_ms: 5000,
            producers_expected: PRODUCERS,
            dead: vec![],
            format: FORMAT_VERSION,
            producer_clock_ahead_ms: 0,
            correct_clocks: false,
        }
    }

    /// Makes the producers transactional: each producer's records in transactions of
    /// `size` (by sequence number), transaction `n` of producer `p` ending as `outcome(p,
    /// n)` (`None`: never ended in the log), logged 1 ms after its last record's ack. As a
    /// `read_committed` cluster would, the final read and the consumer hold no record of
    /// an aborted transaction (its offsets stay holes).
    fn in_transactions(
        &mut self,
        size: u64,
        outcome: impl Fn(u32, u64) -> Option<TransactionOutcome>,
    ) {
        self.transactional = true;
        for producer in 0..PRODUCERS {
            for n in 0..PER_PRODUCER.div_ceil(size) {
                let first = n * size;
                let records = size.min(PER_PRODUCER - first);
                let Some(o) = outcome(producer, n) else {
                    continue;
                };
                let mut began = u64::MAX;
                let mut ended = 0;
                for seq in first..first + records {
                    let r = self.rec(producer, seq);
                    began = began.min(r.send_ms);
                    ended = ended.max(r.ack_ms);
                    if o.aborted() {
                        r.stored = false;
                        r.consumed = false;
                    }
                }
                let e = Event::for_transaction(
                    producer,
                    0,
                    &TransactionEvent {
                        first_seq: first,
                        records,
                        outcome: o,
                        began_us: us(began),
                        ended_us: us(ended + 1),
                    },
                );
                self.producer_extra.push((ended + 1, e));
            }
        }
    }

    /// The highest offset of `partition`.
    fn end(&self, partition: i32) -> i64 {
        self.recs
            .iter()
            .filter(|r| r.partition == partition)
            .map(|r| r.offset)
            .max()
            .unwrap()
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
                action: self.step_actions.get(i).copied().unwrap_or("sleep").into(),
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
            t_ms: T0_MS + self.producers_stop_ms,
            name: "drain".into(),
        });
        ev.push(TimelineEvent::Phase {
            t_ms: T0_MS + 9000,
            name: "final-read".into(),
        });
        ev
    }

    fn write(&self, dir: &Path) -> Vec<PathBuf> {
        let header = |role: Role, flags: u32| LogHeader {
            version: self.format,
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
        } | if self.transactional {
            FLAG_TRANSACTIONAL
        } else {
            0
        };
        // producer log, in the order a producer writes it: sends, outcomes and client
        // renewals by time (a renewal after what happened in the same millisecond)
        let pp = dir.join("producer-0.log");
        let mut w = LogWriter::create(&pp, &header(Role::Produce, flags)).unwrap();
        let mut events: Vec<(u64, u8, Event)> = Vec::new();
        let mut sends: Vec<&Rec> = self.recs.iter().collect();
        sends.sort_by_key(|r| (r.producer, r.send_ms, r.seq));
        // what each producer had sent by a time: (sent up to, last send ms)
        let sent_by = |producer: u32, t: u64| {
            sends
                .iter()
                .filter(|r| r.producer == producer && r.send_ms <= t)
                .fold((0, 0), |(n, last), r| {
                    (n.max(r.seq + 1), last.max(r.send_ms))
                })
        };
        let mark = |producer: u32, up_to: u64, last_ms: u64| Event {
            producer,
            seq: up_to,
            ts_a: us(last_ms),
            ..Event::new(EventKind::SentUpTo)
        };
        if self.format >= 4 {
            // as the worker: a watermark once 100 ms have passed since the last, and one
            // at the end
            let mut last_mark: BTreeMap<u32, u64> = BTreeMap::new();
            let mut sent: BTreeMap<u32, (u64, u64)> = BTreeMap::new();
            for r in &sends {
                let to = sent.entry(r.producer).or_default();
                *to = (to.0.max(r.seq + 1), r.send_ms);
                let since = last_mark.entry(r.producer).or_insert(1000);
                if r.send_ms >= *since + 100 {
                    *since = r.send_ms;
                    events.push((r.send_ms, 0, mark(r.producer, to.0, r.send_ms)));
                }
            }
            for (producer, (to, last)) in sent {
                events.push((last, 0, mark(producer, to, last)));
            }
        } else {
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
        }
        for (producer, at_ms, kind) in &self.renewals {
            if self.format >= 4 {
                // what was sent then, logged just before the renewal
                let (to, last) = sent_by(*producer, *at_ms);
                events.push((*at_ms, 2, mark(*producer, to, last)));
            }
            events.push((
                *at_ms,
                2,
                Event {
                    producer: *producer,
                    seq: 4000 + u64::from(*producer),
                    code: 1,
                    offset: workers::renewal::RenewalReason::OutOfOrderSequence.code(),
                    ts_a: us(at_ms - self.drain_ms),
                    ts_b: us(*at_ms),
                    ..Event::new(*kind)
                },
            ));
        }
        for (t, e) in &self.producer_extra {
            events.push((*t, 0, *e));
        }
        for r in &self.recs {
            let offset = if r.outcome == EventKind::Acked {
                r.acked_offset.unwrap_or(r.offset)
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
        // flushed every 100 ms, as a worker's log is: a block per flush
        let mut flushed_ms = 0;
        for (t, _, e) in &events {
            if *t >= flushed_ms + 100 {
                w.flush().unwrap();
                flushed_ms = *t;
            }
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
                ts_b: us(r.consume_ms.unwrap_or(r.ack_ms + 20)),
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
            let reached = self
                .read_until
                .iter()
                .any(|(rp, until)| rp == p && o <= until);
            if self.incomplete.contains(p) && !reached {
                continue;
            }
            if *o < self.log_start[*p as usize] {
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
                offset: self.end_offset[p as usize],
                seq: self.log_start[p as usize] as u64,
                ts_b: us(9600),
                ..Event::new(kind)
            })
            .unwrap();
        }
        for e in &self.final_events {
            w.append(e).unwrap();
        }
        w.finish().unwrap();
        vec![pp, cp, fp]
    }

    fn input(&self, logs: Vec<PathBuf>) -> CheckInput {
        CheckInput {
            t0_ms: T0_MS,
            topics: vec![TopicSpec {
                name: "t".into(),
                partitions: PARTITIONS,
            }],
            attribution: Attribution::from_timeline(&self.timeline(), T0_MS, 100),
            window_threshold_ms: 500,
            logs,
            silence_threshold_ms: self.silence_ms,
            producers_expected: self.producers_expected,
            dead_workers: self.dead.clone(),
            clocks: Default::default(),
            target_read: None,
        }
    }

    fn check(&self) -> Findings {
        let dir = tempfile::tempdir().unwrap();
        let logs = self.write(dir.path());
        let ahead_us = self.producer_clock_ahead_ms * 1000;
        if ahead_us > 0 {
            // the producer's own times, and the send times in what the readers read
            shift_log(&logs[0], |e| {
                e.ts_a += ahead_us * u64::from(e.ts_a > 0);
                e.ts_b += ahead_us * u64::from(e.ts_b > 0);
            });
            for reader in &logs[1..] {
                shift_log(reader, |e| e.ts_a += ahead_us * u64::from(e.ts_a > 0));
            }
        }
        let mut input = self.input(logs.clone());
        if self.correct_clocks {
            let t = T0_MS * 1000;
            let clock = HostClock {
                host: std::net::Ipv4Addr::new(10, 0, 0, 31),
                start: ClockSample {
                    at_us: t,
                    offset_us: ahead_us as i64,
                    bound_us: 3_000,
                },
                end: Some(ClockSample {
                    at_us: t + 10_000_000,
                    offset_us: ahead_us as i64,
                    bound_us: 2_000,
                }),
            };
            input.clocks.by_log.insert(logs[0].clone(), clock.clone());
            for p in 0..PRODUCERS {
                input.clocks.by_producer.insert(p, clock.clone());
            }
        }
        check(&input).unwrap()
    }
}

/// Rewrites a log with `f` applied to each event (same header).
fn shift_log(path: &Path, f: impl Fn(&mut Event)) {
    let mut r = workers::LogReader::open(path).unwrap();
    let header = r.header().clone();
    let mut events = Vec::new();
    while let Some(e) = r.next_event().unwrap() {
        events.push(e);
    }
    let mut w = LogWriter::create(path, &header).unwrap();
    for mut e in events {
        f(&mut e);
        w.append(&e).unwrap();
    }
    w.finish().unwrap();
}

/// Every anomaly counter of the report, by its name in report.json.
fn counts(f: &Findings) -> BTreeMap<String, u64> {
    serde_json::from_value(serde_json::to_value(&f.anomalies).unwrap()).unwrap()
}

/// Asserts that the counters named are as given and every other counter is 0, so each test
/// states all of them (a counter added later is covered too).
#[track_caller]
fn assert_only(f: &Findings, expected: &[(&str, u64)]) {
    let mut want: BTreeMap<String, u64> = counts(f).keys().map(|k| (k.clone(), 0)).collect();
    for (name, n) in expected {
        assert!(
            want.contains_key(*name),
            "no counter `{name}` in the report"
        );
        want.insert(name.to_string(), *n);
    }
    assert_eq!(counts(f), want, "examples: {:?}", f.examples);
}

#[test]
fn a_clean_run_has_no_anomaly_and_no_window() {
    let f = Sim::clean().check();
    assert_only(&f, &[]);
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
fn the_run_second_by_second_counts_every_record_once_with_its_latency() {
    let f = Sim::clean().check();
    let s = &f.series;
    assert_eq!(s.bucket_ms, 1000);
    // sends from 1 s to 4 s: 200 a second from two producers
    let total = |pick: fn(&harness::check::series::SeriesPoint) -> u64| -> u64 {
        s.points.iter().map(pick).sum()
    };
    assert_eq!(total(|p| p.sent), 600);
    assert_eq!(total(|p| p.acked), 600);
    assert_eq!(total(|p| p.consumed), 600);
    assert_eq!(total(|p| p.failed + p.refused), 0);
    assert_eq!(s.points[0].sent, 0);
    assert_eq!(s.points[2].start_ms, 2000);
    assert_eq!(s.points[2].sent, 200);
    assert!((s.points[2].ack.p50 - 5.0).abs() < 0.1, "{:?}", s.points[2]);
    assert!(
        (s.points[2].e2e.p50 - 25.0).abs() < 0.3,
        "{:?}",
        s.points[2]
    );
    assert_eq!(s.points[2].ack.count, 200);
}

#[test]
fn an_acked_record_missing_from_the_final_read_and_never_read_is_lost() {
    let mut s = Sim::clean();
    let r = s.rec(1, 150); // sent at 2501 ms, during "first step"
    r.stored = false;
    r.consumed = false;
    let f = s.check();
    assert_only(&f, &[("lost", 1)]);
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
    assert_only(
        &f,
        &[
            ("lost", 1),
            ("lost_read_before", 1),
            ("inconsistent_offset", 1),
        ],
    );
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
    assert_only(&f, &[("duplicate", 1)]);
}

#[test]
fn a_duplicate_of_a_record_in_flight_when_its_client_bumped_the_epoch_is_explained_by_it() {
    // logs of format 3 (a `Sent` event per record) and of today's (watermarks)
    for format in [3, FORMAT_VERSION] {
        duplicates_explained_by_renewals(format);
    }
}

fn duplicates_explained_by_renewals(format: u16) {
    let mut s = Sim::clean();
    s.format = format;
    // producer 0's client bumps its epoch at 2003 ms: seq 100 (sent 2000, acked 2005) is
    // in flight, seq 99 (acked 1995) is not; producer 1 renews its id at 2004 ms, with its
    // seq 100 (sent 2001, acked 2006) in flight
    s.renewals.push((0, 2003, EventKind::EpochBumped));
    s.renewals.push((1, 2004, EventKind::ProducerIdRenewed));
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
    s.final_extra.push((1, e1 + 2, 1, 100)); // in flight at producer 1's new id
    let f = s.check();
    assert_only(&f, &[("duplicate", 4), ("duplicate_after_epoch_bump", 2)]);
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
    assert_eq!(f.client_renewals[1].in_flight, 1);
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
    let by_new_id = f.examples["duplicate"]
        .iter()
        .find(|e| e.producer == 1)
        .unwrap();
    assert!(
        by_new_id.detail.contains("new producer id at t=2004ms"),
        "{}",
        by_new_id.detail
    );
}

#[test]
fn an_epoch_bump_explains_only_copies_sent_before_its_drain_and_stored_after_its_acks() {
    let mut s = Sim::clean();
    // producer 0's client begins draining at 2050 ms and bumps its epoch at 2100 ms.
    // Partition 1 gets producer 0's seqs 100 (sent 2000), 103 (2030) and 106 (2060).
    s.renewals.push((0, 2100, EventKind::EpochBumped));
    s.drain_ms = 50;
    s.rec(0, 100).ack_ms = 2150; // sent before the drain, in flight across the bump
    s.rec(0, 106).ack_ms = 2150; // in flight too, but queued during the drain
                                 // seq 103 was acked at 2035 ms, before the bump: a re-sent copy lands after its offset
    let o103 = s.rec(0, 103).offset;
    let o100 = s.rec(0, 100).offset;
    let end = s.end(1);
    // free the offset just after seq 100 (producer 1's seq 100 failed and is not stored)
    let r = s.rec(1, 100);
    assert_eq!(r.offset, o100 + 1);
    r.outcome = EventKind::Failed;
    r.stored = false;
    r.consumed = false;
    assert!(o100 + 1 < o103);
    s.final_extra.push((1, end + 1, 0, 100)); // re-sent after the bump: explained
    s.final_extra.push((1, end + 2, 0, 106)); // never sent under the old epoch: not
    let f = s.check();
    assert_only(&f, &[("duplicate", 2), ("duplicate_after_epoch_bump", 1)]);
    assert_eq!(
        f.client_renewals[0].in_flight, 1,
        "only seq 100 was in flight at the drain"
    );

    // a copy stored below what the producer had acked before the bump was not re-sent
    // after it: it is not explained, though the record was in flight
    let mut s2 = Sim::clean();
    s2.renewals.push((0, 2100, EventKind::EpochBumped));
    s2.drain_ms = 50;
    s2.rec(0, 100).ack_ms = 2150;
    let r = s2.rec(1, 100);
    r.outcome = EventKind::Failed;
    r.stored = false;
    r.consumed = false;
    // the copy at o100 + 1 is the second one the final read meets: below seq 103's ack
    s2.final_extra.push((1, o100 + 1, 0, 100));
    let f = s2.check();
    // (the simulated consumer did not read that copy: it skipped an offset, a gap)
    assert_only(&f, &[("duplicate", 1), ("poll_gap", 1)]);
    assert_eq!(f.examples["duplicate"][0].offset, Some(o100 + 1));
}

#[test]
fn logs_of_format_versions_1_to_3_are_still_checked() {
    for format in 1..FORMAT_VERSION {
        let mut s = Sim::clean();
        s.format = format;
        let dir = tempfile::tempdir().unwrap();
        let logs = s.write(dir.path());
        let r = workers::LogReader::open(&logs[0]).unwrap();
        assert_eq!(r.header().version, format);
        let f = check(&s.input(logs)).unwrap();
        assert_only(&f, &[]);
        assert_eq!(f.producers.sent, u64::from(PRODUCERS) * PER_PRODUCER);
        assert_eq!(f.consumers.distinct, u64::from(PRODUCERS) * PER_PRODUCER);
    }
    let s = Sim::clean();
    let dir = tempfile::tempdir().unwrap();
    let logs = s.write(dir.path());
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
    assert_only(&f, &[]);
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
    assert_only(&f, &[("reordered", 1)]);
    assert_eq!(f.examples["reordered"][0].seq, 3);
}

#[test]
fn reordering_is_not_an_anomaly_for_unordered_producers() {
    let mut s = Sim::clean();
    s.ordered = false;
    let (o3, o6) = (s.rec(0, 3).offset, s.rec(0, 6).offset);
    s.rec(0, 3).offset = o6;
    s.rec(0, 6).offset = o3;
    let f = s.check();
    assert_only(&f, &[]);
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
    assert_only(&f, &[("inconsistent_offset", 1)]);
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
    assert_only(&f, &[("unexpected", 1)]);
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
    // seq 21's offset holds nothing: skipping it is no gap
    assert_only(&f, &[]);
    assert_eq!(f.producers.indeterminate, 2);
}

#[test]
fn a_consumer_skipping_offsets_is_a_gap_and_going_back_a_regression() {
    let mut s = Sim::clean();
    s.rec(0, 30).consumed = false; // partition 0 offset skipped
    let f = s.check();
    assert_only(&f, &[("poll_gap", 1), ("unconsumed", 1)]);

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
    assert_only(&f, &[("poll_regression", 1)]);
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
    assert_only(&f, &[]);
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
    assert_only(&f, &[]);
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
fn a_window_on_a_machine_whose_clock_is_ahead_is_tied_to_its_step_once_the_clock_is_corrected() {
    // partition 1 acks nothing from 2100 ms to 2900 ms (coordinator clock): under the
    // first step, which ends at 3000 ms; the producers' machine is a second ahead
    let stalled = || {
        let mut s = Sim::clean();
        for r in s
            .recs
            .iter_mut()
            .filter(|r| r.partition == 1 && r.send_ms >= 2100 && r.send_ms < 2900)
        {
            r.ack_ms = 2900;
            r.consume_ms = Some(2920);
        }
        s.producer_clock_ahead_ms = 1000;
        s
    };
    let window = |f: &Findings| {
        f.unavailability
            .iter()
            .find(|w| {
                w.kind == WindowKind::Produce
                    && w.partition == WindowSubject::Partition("t/1".into())
            })
            .cloned()
            .unwrap_or_else(|| panic!("no produce window on t/1: {:?}", f.unavailability))
    };
    // as the producers' clock says: a second late, under the wrong step
    let raw = stalled().check();
    assert_eq!(window(&raw).step, "second step", "{:?}", window(&raw));
    // on the coordinator's clock: where it happened, and nothing else amiss
    let mut s = stalled();
    s.correct_clocks = true;
    let f = s.check();
    assert_only(&f, &[]);
    let w = window(&f);
    assert_eq!(w.step, "first step", "{w:?}");
    assert!(w.start_ms >= 2050 && w.start_ms <= 2150, "{w:?}");
    assert!(w.duration_ms >= 750 && w.duration_ms <= 850, "{w:?}");
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
    // every acked record of the partition: a consumer having read one earlier does not
    // say it is still there
    assert_only(&f, &[("unverified", 200), ("poll_gap", 1)]);
    assert_eq!(f.final_read.incomplete, vec!["t/2".to_string()]);
}

#[test]
fn a_log_cut_short_by_a_crash_is_read_up_to_the_cut() {
    let s = Sim::clean();
    let dir = tempfile::tempdir().unwrap();
    let logs = s.write(dir.path());
    // cut the producer log in the middle of its last block (its last flush)
    let len = std::fs::metadata(&logs[0]).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&logs[0])
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    let mut r = workers::LogReader::open(&logs[0]).unwrap();
    let mut acks_before_the_cut = 0;
    while let Some(e) = r.next_event().unwrap() {
        acks_before_the_cut += u64::from(e.kind == EventKind::Acked);
    }
    assert!(
        (500..600).contains(&acks_before_the_cut),
        "{acks_before_the_cut}"
    );
    let cut_at = r.cut_short_at().expect("the reader says where it stopped");
    assert!(
        cut_at > workers::log::HEADER_LEN as u64 && cut_at < len - 3,
        "{cut_at}"
    );
    let f = check(&s.input(logs.clone())).unwrap();
    assert_eq!(f.logs_cut_short.len(), 1);
    // the report says where, and what was read before it
    assert_eq!(f.logs_cut_short_at.len(), 1);
    let c = &f.logs_cut_short_at[0];
    assert_eq!(c.path, logs[0].display().to_string());
    assert_eq!(c.path, f.logs_cut_short[0]);
    assert_eq!(c.at_byte, cut_at);
    assert_eq!(c.events_before, r.events_read());
    assert_eq!(
        f.producers.acked, acks_before_the_cut,
        "the acks of the torn block are not counted"
    );
    // nothing is invented: the un-logged ack is neither lost nor anything else
    assert_only(&f, &[]);
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
    assert_only(&f, &[("unconsumed", 1)]);
    assert_eq!(f.examples["unconsumed"][0].offset, Some(last.offset));
}

#[test]
fn a_record_acked_by_a_leader_that_kept_acking_beside_a_new_one_is_split_brain_loss() {
    let mut s = Sim::clean();
    // "first step" isolates broker 1 at 2000 ms; "third step" kills broker 2 at 3300 ms
    s.steps.push((3300, "third step"));
    s.step_actions = vec!["partition", "sleep", "kill"];
    // partition 0: from 2000 ms broker 2 leads, while broker 1 goes on acking producer 1's
    // records until 2500 ms (a zombie: the losing side). Broker 2's last acks before the
    // kill are lost with it, and the partition is out until 3995 ms, when broker 3 leads.
    for r in s
        .recs
        .iter_mut()
        .filter(|r| r.partition == 0 && r.ack_ms >= 2000)
    {
        if r.producer == 1 && r.ack_ms < 2500 {
            r.broker = 1;
            r.stored = false;
            r.consumed = false;
        } else if r.send_ms >= 3300 {
            r.ack_ms = 3995;
            r.broker = 3;
        } else if r.ack_ms >= 3200 {
            r.broker = 2;
            r.stored = false;
            r.consumed = false;
        } else {
            r.broker = 2;
        }
    }
    let zombie = s.recs.iter().filter(|r| !r.stored && r.broker == 1).count() as u64;
    let killed = s.recs.iter().filter(|r| !r.stored && r.broker == 2).count() as u64;
    assert!(zombie > 10 && killed > 3, "{zombie} {killed}");
    let f = s.check();
    assert_only(&f, &[("lost", zombie + killed)]);
    // each broker's stretch on its own: the zombie's ended without an outage (blamed on
    // the acting step in force when it began), broker 2's ended in the kill's outage.
    // Taken as one stretch of the partition, both would go to the kill.
    let expected: BTreeMap<String, u64> = [
        ("first step".to_string(), zombie),
        ("third step".to_string(), killed),
    ]
    .into();
    assert_eq!(f.lost_by_step, expected, "{:?}", f.unavailability);
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
    // "first step" acts (it isolates the leader); "waiting" is a sleep that runs from
    // 2050 ms: waiting time, which never takes the blame from the acting step before it
    s.step_actions = vec!["partition", "sleep", "sleep"];
    s.steps.push((2050, "waiting"));
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

/// A clean run with one injection, checked: every counter is what the injection says.
#[track_caller]
fn injected(inject: fn(&mut Sim) -> Vec<(&'static str, u64)>) -> Findings {
    let mut s = Sim::clean();
    let expected = inject(&mut s);
    let f = s.check();
    assert_only(&f, &expected);
    f
}

// ---------------------------------------------------------------------------------------
// Injections: each puts exactly one kind of anomaly into a clean run. The guard below runs
// every one of them and requires that every counter of the report has one.
// ---------------------------------------------------------------------------------------

/// Records 0..10 of partition 0 were removed by retention after a consumer read them: the
/// final read starts at offset 10.
fn inject_expired(s: &mut Sim) -> Vec<(&'static str, u64)> {
    s.log_start[0] = 10;
    for r in s
        .recs
        .iter_mut()
        .filter(|r| r.partition == 0 && r.offset < 10)
    {
        r.stored = false;
    }
    vec![("expired", 10)]
}

/// Partition 2's final read gave up after offset 100; an acked record at offset 50 is not
/// in what it read (lost: the read vouches for offsets up to 100), and one at the end is
/// beyond it (unverified).
fn inject_partial_final_read(s: &mut Sim) -> Vec<(&'static str, u64)> {
    s.incomplete.push(2);
    s.read_until.push((2, 100));
    let end = s.end(2);
    for r in s
        .recs
        .iter_mut()
        .filter(|r| r.partition == 2 && (r.offset == 50 || r.offset == end))
    {
        r.stored = false;
        r.consumed = false;
    }
    // every acked record above offset 100 is unverified, read by a consumer or not (the
    // consumer skipped offset 50, where an acked record was: a gap)
    let above = s
        .recs
        .iter()
        .filter(|r| r.partition == 2 && r.offset > 100)
        .count() as u64;
    vec![("lost", 1), ("unverified", above), ("poll_gap", 1)]
}

/// A record whose outcome the producer never learned, read by a consumer, then gone.
fn inject_indeterminate_read_then_gone(s: &mut Sim) -> Vec<(&'static str, u64)> {
    let r = s.rec(0, 40);
    r.outcome = EventKind::Indeterminate;
    r.stored = false;
    vec![("lost", 1), ("lost_read_before", 1)]
}

/// Producer 0's seq 40 is stored, but its ack named the offset where producer 1's seq 40 is.
fn inject_ack_offset_mismatch(s: &mut Sim) -> Vec<(&'static str, u64)> {
    let other = s.rec(1, 40).offset;
    s.rec(0, 40).acked_offset = Some(other);
    vec![("inconsistent_offset", 1)]
}

/// The consumer skipped the last two records of partition 1 and then read a record past the
/// end of the final log.
fn inject_gap_past_the_end(s: &mut Sim) -> Vec<(&'static str, u64)> {
    let end = s.end(1);
    for r in s
        .recs
        .iter_mut()
        .filter(|r| r.partition == 1 && r.offset >= end - 1)
    {
        r.consumed = false;
    }
    s.consumer_extra.push(Event {
        producer: 1,
        seq: 9999,
        partition: 1,
        offset: end + 5,
        ts_a: us(3990),
        ts_b: us(6000),
        ..Event::new(EventKind::Received)
    });
    vec![
        ("poll_gap", 1),
        ("inconsistent_offset", 1),
        ("unconsumed", 2),
    ]
}

/// Producer 1 stops sending at 2500 ms and says nothing more until the producers stop.
fn inject_silent_producer(s: &mut Sim) -> Vec<(&'static str, u64)> {
    s.recs.retain(|r| !(r.producer == 1 && r.send_ms > 2500));
    vec![("silent_producers", 1)]
}

/// A third producer instance was started and never sent anything.
fn inject_producer_that_never_sent(s: &mut Sim) -> Vec<(&'static str, u64)> {
    s.producers_expected = PRODUCERS + 1;
    vec![("silent_producers", 1)]
}

/// A consumer worker exited with an error.
fn inject_dead_worker(s: &mut Sim) -> Vec<(&'static str, u64)> {
    s.dead.push(DeadWorker {
        worker: "consumer-0".into(),
        how: "exited with status 1".into(),
        seen_ms: 7000,
        stderr: "worker: consumer: broker transport failure".into(),
    });
    vec![("dead_workers", 1)]
}

/// A record of another writer, and one of ours with a bad checksum, after the end of
/// partition 0.
fn inject_foreign_and_corrupt(s: &mut Sim) -> Vec<(&'static str, u64)> {
    let end = s.end(0);
    for (i, kind) in [EventKind::Foreign, EventKind::Corrupt]
        .into_iter()
        .enumerate()
    {
        s.final_events.push(Event {
            partition: 0,
            offset: end + 1 + i as i64,
            ts_b: us(9500),
            ..Event::new(kind)
        });
    }
    vec![("foreign", 1), ("corrupt", 1)]
}

/// Every counter of the report, each from an injection that produces it (alone, or with the
/// counters it implies), and a clean run with every counter at 0.
#[test]
fn every_counter_of_the_report_is_found_when_injected_and_is_zero_when_clean() {
    type Inject = fn(&mut Sim) -> Vec<(&'static str, u64)>;
    let dup_after_bump: Inject = |s| {
        s.renewals.push((0, 2003, EventKind::EpochBumped));
        let end = s.end(1);
        s.final_extra.push((1, end + 1, 0, 100));
        vec![("duplicate", 1), ("duplicate_after_epoch_bump", 1)]
    };
    let injections: Vec<(&str, Inject)> = vec![
        ("lost", |s| {
            let r = s.rec(1, 150);
            r.stored = false;
            r.consumed = false;
            vec![("lost", 1)]
        }),
        ("read then truncated", |s| {
            let end = s.end(2);
            s.recs
                .iter_mut()
                .find(|r| r.partition == 2 && r.offset == end)
                .unwrap()
                .stored = false;
            vec![
                ("lost", 1),
                ("lost_read_before", 1),
                ("inconsistent_offset", 1),
            ]
        }),
        ("unverified", |s| {
            s.incomplete.push(2);
            s.rec(0, 50).consumed = false;
            // every acked record of the partition; the consumer skipped the offset seq 50
            // was acked at: a gap
            let n = s.recs.iter().filter(|r| r.partition == 2).count() as u64;
            vec![("unverified", n), ("poll_gap", 1)]
        }),
        ("duplicate", |s| {
            let end = s.end(1);
            s.final_extra.push((1, end + 1, 0, 7));
            vec![("duplicate", 1)]
        }),
        ("duplicate after epoch bump", dup_after_bump),
        ("reordered", |s| {
            let (o3, o6) = (s.rec(0, 3).offset, s.rec(0, 6).offset);
            s.rec(0, 3).offset = o6;
            s.rec(0, 6).offset = o3;
            vec![("reordered", 1)]
        }),
        ("inconsistent offset", inject_ack_offset_mismatch),
        ("unexpected", |s| {
            s.rec(0, 20).outcome = EventKind::Failed;
            vec![("unexpected", 1)]
        }),
        ("poll gap", |s| {
            s.rec(0, 30).consumed = false;
            vec![("poll_gap", 1), ("unconsumed", 1)]
        }),
        ("poll regression", |s| {
            let r = s
                .recs
                .iter()
                .find(|r| r.partition == 2 && r.offset == 5)
                .unwrap();
            let e = Event {
                producer: r.producer,
                seq: r.seq,
                partition: 2,
                offset: 5,
                ts_a: us(r.send_ms),
                ts_b: us(7000),
                ..Event::new(EventKind::Received)
            };
            s.consumer_extra.push(e);
            vec![("poll_regression", 1)]
        }),
        ("unconsumed", |s| {
            let end = s.end(1);
            s.recs
                .iter_mut()
                .find(|r| r.partition == 1 && r.offset == end)
                .unwrap()
                .consumed = false;
            vec![("unconsumed", 1)]
        }),
        ("foreign and corrupt", inject_foreign_and_corrupt),
        ("expired", inject_expired),
        ("silent producer", inject_silent_producer),
        ("dead worker", inject_dead_worker),
        ("aborted read", |s| {
            s.in_transactions(5, every_third_aborted);
            let r = s.rec(0, 10);
            (r.stored, r.consumed) = (true, true);
            vec![("aborted_read", 1)]
        }),
        ("non-atomic read", |s| {
            s.in_transactions(5, every_third_aborted);
            let r = s.rec(1, 7);
            (r.stored, r.consumed) = (false, false);
            vec![("lost", 1), ("non_atomic_read", 1)]
        }),
    ];
    let clean = Sim::clean().check();
    assert_only(&clean, &[]);
    let mut covered = std::collections::BTreeSet::new();
    for (name, inject) in injections {
        let mut s = Sim::clean();
        let expected = inject(&mut s);
        // (shown with a failure below: which injection it was)
        println!("injection `{name}`: expecting {expected:?}");
        assert_only(&s.check(), &expected);
        covered.extend(expected.iter().map(|(k, _)| k.to_string()));
    }
    let all: std::collections::BTreeSet<String> = counts(&clean).into_keys().collect();
    let missing: Vec<&String> = all.difference(&covered).collect();
    assert!(
        missing.is_empty(),
        "counters no injection produces: {missing:?}"
    );
}

#[test]
fn records_removed_by_retention_are_expired_not_lost() {
    let f = injected(inject_expired);
    let ex = &f.examples["expired"][0];
    assert!(
        ex.detail.contains("below the log start offset 10"),
        "{ex:?}"
    );
}

#[test]
fn an_emptied_partition_is_all_expired_and_what_consumers_read_there_is_consistent() {
    let mut s = Sim::clean();
    let end = s.end(0);
    s.log_start[0] = end + 1;
    let mut gone = 0;
    for r in s.recs.iter_mut().filter(|r| r.partition == 0) {
        r.stored = false;
        gone += 1;
    }
    // the final read found nothing there: every consumer delivery is below the log start
    assert_only(&s.check(), &[("expired", gone)]);
}

#[test]
fn a_partial_final_read_vouches_for_the_offsets_it_reached() {
    let f = injected(inject_partial_final_read);
    assert_eq!(f.examples["lost"][0].offset, Some(50));
    assert_eq!(f.final_read.incomplete, vec!["t/2".to_string()]);
}

#[test]
fn a_record_of_unknown_outcome_that_a_consumer_read_and_that_vanished_is_lost() {
    let f = injected(inject_indeterminate_read_then_gone);
    assert!(
        f.examples["lost"][0]
            .detail
            .contains("of unknown outcome, read by a consumer"),
        "{:?}",
        f.examples["lost"][0]
    );
    // below a moved log start it may have expired instead: unverified, not lost
    let mut s = Sim::clean();
    inject_indeterminate_read_then_gone(&mut s);
    assert_eq!(s.rec(0, 40).partition, 1);
    s.log_start[1] = 1;
    let first = s
        .recs
        .iter()
        .find(|r| r.partition == 1 && r.offset == 0)
        .unwrap()
        .clone();
    s.rec(first.producer, first.seq).stored = false;
    let f = s.check();
    assert_only(&f, &[("unverified", 1), ("expired", 1)]);
}

#[test]
fn an_ack_naming_an_offset_where_another_record_is_stored_is_inconsistent() {
    let f = injected(inject_ack_offset_mismatch);
    let ex = &f.examples["inconsistent_offset"][0];
    assert!(
        ex.detail.contains("holds producer 1 seq 40 there"),
        "{ex:?}"
    );
}

#[test]
fn a_consumer_jumping_past_the_end_of_the_final_log_still_skipped_what_is_there() {
    let f = injected(inject_gap_past_the_end);
    // partition 1 holds offsets 0..=199: the consumer read 197, then 204
    let gap = &f.examples["poll_gap"][0];
    assert!(
        gap.detail.contains("jumped from offset 197 to 204"),
        "{gap:?}"
    );
}

#[test]
fn a_producer_that_stops_trying_is_silent_and_one_refused_by_its_client_is_not() {
    let f = injected(inject_silent_producer);
    let silence = &f.producer_silences[0];
    assert_eq!((silence.producer, silence.start_ms), (1, 2491));
    assert_eq!((silence.end_ms, silence.until_stop), (8000, true));
    assert_eq!(silence.step, "first step");

    // the same producer, its client refusing every send from 2500 ms on: it kept trying
    let mut s = Sim::clean();
    inject_silent_producer(&mut s);
    for t in (2600..=4000).step_by(100) {
        let e = Event {
            producer: 1,
            seq: 150,
            partition: 0,
            code: -184, // a full queue
            ts_a: us(t),
            ts_b: us(t),
            ..Event::new(EventKind::Refused)
        };
        s.producer_extra.push((t, e));
    }
    let f = s.check();
    assert_only(&f, &[]);
    assert_eq!(f.producers.refused, 15);

    let mut s = Sim::clean();
    let expected = inject_producer_that_never_sent(&mut s);
    assert_only(&s.check(), &expected);
}

#[test]
fn refused_sends_in_a_row_are_a_produce_window() {
    let mut s = Sim::clean();
    // both producers' clients refuse everything for partition 0 from 3000 ms to 4500 ms
    s.recs.retain(|r| !(r.partition == 0 && r.send_ms >= 3000));
    for t in (3000..4500).step_by(50) {
        for producer in 0..PRODUCERS {
            let e = Event {
                producer,
                seq: 9000 + t,
                partition: 0,
                code: -184,
                ts_a: us(t),
                ts_b: us(t),
                ..Event::new(EventKind::Refused)
            };
            s.producer_extra.push((t, e));
        }
    }
    let f = s.check();
    assert_only(&f, &[]);
    let w = f
        .unavailability
        .iter()
        .find(|w| {
            w.kind == WindowKind::Produce && w.partition == WindowSubject::Partition("t/0".into())
        })
        .unwrap_or_else(|| panic!("no produce window: {:?}", f.unavailability));
    assert!(w.duration_ms >= 1400, "{w:?}");
}

#[test]
fn a_dead_worker_is_a_finding_with_its_stderr() {
    let f = injected(inject_dead_worker);
    assert!(f.dead_workers[0].stderr.contains("transport failure"));
}

#[test]
fn foreign_and_corrupt_records_are_counted_with_examples() {
    let f = injected(inject_foreign_and_corrupt);
    assert_eq!(f.examples["foreign"].len(), 1);
    assert_eq!(f.examples["corrupt"].len(), 1);
    assert_eq!(f.final_read.records, 602);
}

/// Partition 1's records acked from 2500 ms are delivered at `deliver_ms`; the group took
/// the partition from its consumer at 2500 ms and gave it back at 3500 ms.
fn rebalance(deliver_ms: u64) -> Findings {
    let mut s = Sim::clean();
    for r in s
        .recs
        .iter_mut()
        .filter(|r| r.partition == 1 && r.ack_ms >= 2500 && r.ack_ms < deliver_ms)
    {
        r.consume_ms = Some(deliver_ms);
    }
    for (t, kind) in [(2500, EventKind::Revoked), (3500, EventKind::Assigned)] {
        s.consumer_extra.push(Event {
            partition: 1,
            ts_b: us(t),
            ..Event::new(kind)
        });
    }
    s.check()
}

#[test]
fn a_pause_of_the_consumer_group_is_a_rebalance_window_not_a_consume_window() {
    let f = rebalance(3600);
    assert_only(&f, &[]);
    let kinds: Vec<(String, String)> = f
        .unavailability
        .iter()
        .map(|w| (w.partition.to_string(), w.kind.to_string()))
        .collect();
    assert_eq!(
        kinds,
        [("t/1".to_string(), "rebalance".to_string())],
        "{:?}",
        f.unavailability
    );
    // deliveries that stay away long after the partition had an owner again: the cluster's
    let f = rebalance(6000);
    let w = &f.unavailability[0];
    assert_eq!(
        (w.partition.to_string(), w.kind.clone()),
        ("t/1".into(), WindowKind::Consume)
    );
    assert!(w.duration_ms > 3000, "{w:?}");
}

/// Transactions of 5 records, every third aborted on purpose.
fn every_third_aborted(_: u32, n: u64) -> Option<TransactionOutcome> {
    Some(if n % 3 == 2 {
        TransactionOutcome::Aborted
    } else {
        TransactionOutcome::Committed
    })
}

#[test]
fn a_transactional_run_that_aborts_some_transactions_is_clean() {
    let mut s = Sim::clean();
    s.in_transactions(5, every_third_aborted);
    let f = s.check();
    // the aborted records' offsets are holes the consumer skips: no gap, nothing lost
    assert_only(&f, &[]);
    // 60 transactions per producer, 20 of them aborted
    let t = f.transactions.as_ref().expect("transaction totals");
    assert_eq!((t.committed, t.aborted, t.unknown), (80, 40, 0));
    assert_eq!(t.largest, 5);
    assert_eq!(f.producers.acked, 400);
    assert_eq!(f.producers.aborted, 200);
    assert_eq!(f.producers.failed, 0);
    assert_eq!(f.producers.no_outcome, 0);
    // a run without transactions reports none
    assert!(Sim::clean().check().transactions.is_none());
}

#[test]
fn write_cycles_between_transactions_are_reported_and_not_judged() {
    // the two producers interleave on every partition: producer 0's transaction k (seq
    // 5k..5k+4) writes seq 5k before producer 1's does on that partition, and producer 1's
    // seq 5k before producer 0's seq 5k+3 on the same one — a cycle of two, for every k
    let committed = |_: u32, _: u64| Some(TransactionOutcome::Committed);
    let mut s = Sim::clean();
    s.in_transactions(5, committed);
    let f = s.check();
    assert_only(&f, &[]);
    let t = f.transactions.as_ref().unwrap();
    assert_eq!((t.write_cycles, t.write_cycle_largest), (60, 2), "{t:?}");
    assert!(
        t.write_cycle_example
            .starts_with("2 transactions in one cycle; e.g. producer ")
            && t.write_cycle_example.contains(" wrote before producer ")
            && t.write_cycle_example.contains(" and after it on t/"),
        "{}",
        t.write_cycle_example
    );
    // aborted transactions are not in the log: only the committed ones' cycles remain
    let mut s = Sim::clean();
    s.in_transactions(5, every_third_aborted);
    assert_eq!(s.check().transactions.unwrap().write_cycles, 40);
    // transactions of one record each sit on one partition: no cycle can form
    let mut s = Sim::clean();
    s.in_transactions(1, committed);
    let t = s.check().transactions.unwrap();
    assert_eq!((t.write_cycles, t.write_cycle_largest), (0, 0));
    assert!(t.write_cycle_example.is_empty());
}

#[test]
fn a_record_of_an_aborted_transaction_read_is_an_aborted_read() {
    let mut s = Sim::clean();
    s.in_transactions(5, every_third_aborted);
    // transaction 2 of producer 0 (seq 10-14) was aborted: the final read (and the
    // consumer) find seq 10; only the consumer finds seq 11
    let r = s.rec(0, 10);
    (r.stored, r.consumed) = (true, true);
    s.rec(0, 11).consumed = true;
    // and a record whose own delivery failed, in an aborted transaction, read back: an
    // aborted read, not `unexpected`
    let r = s.rec(1, 12);
    r.outcome = EventKind::Failed;
    (r.stored, r.consumed) = (true, true);
    let f = s.check();
    assert_only(&f, &[("aborted_read", 3)]);
    let ex = &f.examples["aborted_read"];
    assert_eq!(ex.len(), 3, "{ex:?}");
    assert!(ex.iter().any(|e| e.producer == 0
        && e.seq == 10
        && e.detail.contains("the final read and a consumer")));
    assert!(ex
        .iter()
        .any(|e| e.producer == 0 && e.seq == 11 && e.detail.contains("by a consumer")));
}

#[test]
fn a_committed_transaction_seen_in_part_is_lost_and_non_atomic() {
    let mut s = Sim::clean();
    s.in_transactions(5, every_third_aborted);
    // transaction 1 of producer 1 (seq 5-9), committed: seq 7 is not in the log
    let r = s.rec(1, 7);
    (r.stored, r.consumed) = (false, false);
    let f = s.check();
    assert_only(&f, &[("lost", 1), ("non_atomic_read", 1)]);
    let ex = &f.examples["non_atomic_read"][0];
    assert_eq!((ex.producer, ex.seq), (1, 5));
    assert!(
        ex.detail.contains("5 records (seq 5 to 9), committed")
            && ex.detail.contains("holds 4 of them"),
        "{}",
        ex.detail
    );
}

#[test]
fn a_transaction_of_unknown_outcome_is_all_or_nothing() {
    // transaction 4 of each producer (seq 20-24) ended in doubt
    let unknown_4th = |_: u32, n: u64| {
        Some(if n == 4 {
            TransactionOutcome::Unknown
        } else {
            TransactionOutcome::Committed
        })
    };
    // all of it visible (producer 0), none of it (producer 1): both fine
    let mut s = Sim::clean();
    s.in_transactions(5, unknown_4th);
    for seq in 20..25 {
        let r = s.rec(1, seq);
        (r.stored, r.consumed) = (false, false);
    }
    let f = s.check();
    assert_only(&f, &[]);
    assert_eq!(f.transactions.as_ref().unwrap().unknown, 2);
    assert_eq!(f.producers.indeterminate, 10);
    assert_eq!(f.producers.acked, 590);
    // part of it visible: non-atomic, and not lost (nobody knew it was committed)
    let mut s = Sim::clean();
    s.in_transactions(5, unknown_4th);
    for seq in 22..25 {
        let r = s.rec(1, seq);
        (r.stored, r.consumed) = (false, false);
    }
    let f = s.check();
    assert_only(&f, &[("non_atomic_read", 1)]);
    assert!(f.examples["non_atomic_read"][0]
        .detail
        .contains("of unknown outcome: the final read holds 2 of them"));
}

#[test]
fn records_of_a_transaction_that_never_ended_are_of_unknown_outcome() {
    // the producers' last transaction (seq 295-299) has no end in the log (the worker was
    // killed mid-transaction): the coordinator aborted it, so it is not in the log — not
    // lost, though every record of it was acked
    let mut s = Sim::clean();
    s.in_transactions(5, |_, n| (n < 59).then_some(TransactionOutcome::Committed));
    for producer in 0..PRODUCERS {
        for seq in 295..300 {
            let r = s.rec(producer, seq);
            (r.stored, r.consumed) = (false, false);
        }
    }
    let f = s.check();
    assert_only(&f, &[]);
    let t = f.transactions.as_ref().unwrap();
    assert_eq!(t.records_without_end, 10);
    assert_eq!(f.producers.indeterminate, 10);
    // had the checker taken the acks at their word, those ten would be lost
    let mut s = Sim::clean();
    for producer in 0..PRODUCERS {
        for seq in 295..300 {
            let r = s.rec(producer, seq);
            (r.stored, r.consumed) = (false, false);
        }
    }
    assert_only(&s.check(), &[("lost", 10)]);
}

#[test]
fn a_producer_waiting_for_its_commit_is_not_silent() {
    // the producers' transactions of seq 95-99 wait 3 s for their commit (the coordinator
    // died): they send nothing meanwhile, and are no silent producers for it
    let build = |producer_0_waits: bool| {
        let mut s = Sim::clean();
        s.silence_ms = 2000;
        for r in s.recs.iter_mut().filter(|r| r.seq >= 100) {
            r.send_ms += 3000;
            r.ack_ms += 3000;
            r.consume_ms = Some(r.ack_ms + 20);
        }
        s.in_transactions(5, |_, _| Some(TransactionOutcome::Committed));
        for (t, e) in s.producer_extra.iter_mut() {
            if e.seq == 95 && (e.producer == 1 || producer_0_waits) {
                e.ts_b = us(4995);
                *t = 4995;
            }
        }
        s.check()
    };
    let f = build(true);
    assert_eq!(f.anomalies.silent_producers, 0, "{:?}", f.producer_silences);
    assert!(f.transactions.as_ref().unwrap().longest_ms >= 3000);
    // the same stretch with no commit waiting in it is a silence
    let f = build(false);
    assert_eq!(f.anomalies.silent_producers, 1, "{:?}", f.producer_silences);
    assert_eq!(f.producer_silences[0].producer, 0);
}

#[test]
fn aborted_records_at_the_end_of_a_log_are_below_its_end_not_past_it() {
    // every producer's last transaction (seq 295-299) aborted: the tail of every partition
    // is aborted records, which a read_uncommitted consumer delivers and the final read
    // (read_committed) skips up to the end offset it read to
    let last_aborted = |_: u32, n: u64| {
        Some(if n == 59 {
            TransactionOutcome::Aborted
        } else {
            TransactionOutcome::Committed
        })
    };
    let build = |end_given: bool| {
        let mut s = Sim::clean();
        s.in_transactions(5, last_aborted);
        for producer in 0..PRODUCERS {
            for seq in 295..300 {
                s.rec(producer, seq).consumed = true;
            }
        }
        if end_given {
            s.end_offset = (0..PARTITIONS as i32).map(|p| s.end(p) + 1).collect();
        }
        s.check()
    };
    assert_only(&build(true), &[("aborted_read", 10)]);
    // a final read that does not say where it ended: the last record it found is the end,
    // and what a consumer read beyond it diverged
    assert_only(
        &build(false),
        &[("aborted_read", 10), ("inconsistent_offset", 10)],
    );
}

#[test]
fn a_transaction_claiming_records_nobody_sent_is_cut_to_what_was_sent() {
    // a damaged or hand-made log: a transaction of 2^62 records from seq 290, and one
    // beyond anything sent; the checker neither walks them nor counts them sent
    let mut s = Sim::clean();
    s.in_transactions(5, |_, n| (n < 58).then_some(TransactionOutcome::Committed));
    for (first, outcome) in [
        (290, TransactionOutcome::Aborted),
        (1 << 50, TransactionOutcome::Unknown),
    ] {
        let e = Event::for_transaction(
            0,
            0,
            &TransactionEvent {
                first_seq: first,
                records: 1 << 62,
                outcome,
                began_us: us(4000),
                ended_us: us(4001),
            },
        );
        s.producer_extra.push((4001, e));
    }
    let f = s.check();
    assert_eq!(f.producers.sent, 600);
    // producer 0's seq 290-299 count as aborted (what the claim covers of what was sent);
    // they are in the log, so they were read: aborted reads
    assert_eq!(f.producers.aborted, 10);
    assert_eq!(f.anomalies.aborted_read, 10);
}
