//! The checker: reads every worker log of a run and finds loss, duplication, reordering,
//! divergence, unexpected records, consumer gaps and regressions, unavailability windows
//! and latency — each attributed to the step running at the time.
//!
//! Three passes over the logs, in this order:
//! 1. **final read** — what the cluster durably holds: per partition, the record at every
//!    offset (a compressed column, ~half a byte an offset: [`column`]), per producer the
//!    set of stored sequence numbers (a bitmap); a sequence stored twice is a duplicate,
//!    one stored below an earlier one a reorder.
//! 2. **consumers** — deliveries: compared offset by offset with the final read
//!    (inconsistent offsets), per consumer instance and partition for gaps and regressions
//!    (reset by rebalances), first-delivery times for consume windows and e2e latency.
//! 3. **producers** — outcomes: acked/failed/indeterminate sets, ack latency, produce
//!    windows, and the client's epoch bumps (with the records in flight at each, which is
//!    what explains a duplicate despite idempotence); then a second reading for the records
//!    found lost or unexpected, to attribute them and keep examples.
//!
//! **Lost** means acked and not in the final read of a partition the final read finished.
//! That is stricter than "never read by anyone": a record a consumer saw before an unclean
//! election truncated it is still gone, and is counted (as `lost_read_before`). So is a
//! record whose outcome was unknown but that a consumer read (someone read it, so it was
//! written). On a partition the final read could not finish, a missing acked record at or
//! below the highest offset the read reached is lost too (Jepsen's rule); above it, it is
//! `unverified`. An acked record below its partition's log start offset was removed by
//! retention or compaction: `expired`, never lost.

mod column;
mod group;
mod loss;
mod seqset;
mod switch;
mod transactions;

pub use switch::TargetRead;

use std::collections::BTreeMap;

/// Maps keyed per record (producer, partition): Fx hashing, several times faster than
/// SipHash on small integer keys, and nothing here is keyed by untrusted input.
type HashMap<K, V> = rustc_hash::FxHashMap<K, V>;
use std::path::{Path, PathBuf};

use roaring::RoaringTreemap;
use seqset::SeqSet;
use workers::log::{TransactionEvent, FLAG_IDEMPOTENT, FLAG_ORDERED, FLAG_TRANSACTIONAL};
use workers::{Event, EventKind, LogReader, Role, TopicSpec};

use super::attribution::Attribution;
use super::findings::*;
use super::latency::LatencyBook;
use super::windows::Activity;
use crate::error::HarnessError;

/// How many examples of each anomaly the report keeps.
pub const EXAMPLES_KEPT: usize = 10;

/// The longest a producer worker waits before it asks its client again after a refused
/// send (`workers::produce`: 10 ms for a full queue, 100 ms otherwise).
const REFUSAL_RETRY_MS: u32 = 100;

const EMPTY: u64 = u64::MAX;
const NOT_OURS: u64 = u64::MAX - 1;

fn pack(producer: u32, seq: u64) -> u64 {
    (u64::from(producer) << 40) | (seq & ((1 << 40) - 1))
}

/// What the checker is given.
#[derive(Debug, Clone)]
pub struct CheckInput {
    /// Run start, ms since epoch: every time in the findings is relative to it.
    pub t0_ms: u64,
    /// Workload topics in log topic-index order.
    pub topics: Vec<TopicSpec>,
    /// Step and phase boundaries.
    pub attribution: Attribution,
    /// A window is a stretch without success longer than this.
    pub window_threshold_ms: u64,
    /// Every worker log (role read from each header).
    pub logs: Vec<PathBuf>,
    /// A producer instance making no attempt to send for longer than this, while the
    /// workload runs, is silent.
    pub silence_threshold_ms: u64,
    /// Producer instances the workload started (0: unknown); one that never sent is
    /// silent.
    pub producers_expected: u32,
    /// Worker processes that ended badly, as the run recorded them.
    pub dead_workers: Vec<DeadWorker>,
    /// Other machines' clocks (workers on SSH hosts): their timestamps are moved onto the
    /// coordinator's clock before anything is computed from them. Empty: every worker
    /// ran on the coordinator.
    pub clocks: ClockCorrection,
    /// MirrorMaker's target's final read, when the run made one: the records clients
    /// wrote there after a `mirror-switch` are judged against it ([`switch`]).
    pub target_read: Option<TargetRead>,
}

/// Moves timestamps taken on other machines onto the coordinator's clock.
#[derive(Debug, Clone, Default)]
pub struct ClockCorrection {
    /// A worker log → the clock of the host its worker ran on (the log's own times).
    pub by_log: std::collections::HashMap<PathBuf, crate::cluster::ssh::clock::HostClock>,
    /// A producer instance id → the clock of the host it ran on (its records' send times,
    /// as consumers and the final read find them in record headers).
    pub by_producer: std::collections::HashMap<u32, crate::cluster::ssh::clock::HostClock>,
}

/// µs since epoch of 2001: anything smaller in a time field is not a time (a kind may reuse
/// the field) and is left as it is.
const A_TIME_US: u64 = 978_307_200_000_000;

impl ClockCorrection {
    fn is_empty(&self) -> bool {
        self.by_log.is_empty() && self.by_producer.is_empty()
    }

    /// The shift of one log's events: `own` for its own times, and whose clock the send
    /// times (`ts_a`) are on — its own (a producer) or the producer's (readers).
    fn for_log<'a>(&'a self, path: &Path, role: Role) -> Option<Shift<'a>> {
        if self.is_empty() {
            return None;
        }
        Some(Shift {
            own: self.by_log.get(path),
            senders: (role != Role::Produce).then_some(&self.by_producer),
        })
    }
}

/// [`ClockCorrection`] for one log.
struct Shift<'a> {
    own: Option<&'a crate::cluster::ssh::clock::HostClock>,
    /// `None`: send times are on the log's own clock.
    senders: Option<&'a std::collections::HashMap<u32, crate::cluster::ssh::clock::HostClock>>,
}

impl Shift<'_> {
    fn apply(&self, e: &mut Event) {
        let onto = |t: u64, clock: Option<&crate::cluster::ssh::clock::HostClock>| match clock {
            Some(c) if t >= A_TIME_US => (t as i64 - c.offset_at(t)).max(0) as u64,
            _ => t,
        };
        e.ts_b = onto(e.ts_b, self.own);
        e.ts_a = match self.senders {
            None => onto(e.ts_a, self.own),
            Some(by) => onto(e.ts_a, by.get(&e.producer)),
        };
    }
}

#[derive(Default)]
struct ProducerSets {
    ordered: bool,
    /// The producer used idempotence (from its log header).
    idempotent: bool,
    /// The producer sent in transactions (from its log header): a record's outcome is its
    /// transaction's ([`Checker::settle_transactions`]).
    transactional: bool,
    /// Its transactions, as its log ended them.
    transactions: Vec<TransactionEvent>,
    /// Records of its aborted transactions: written, never to be read.
    aborted: SeqSet,
    /// Every sequence number below this was sent (they are sent in order): from the
    /// `SentUpTo` watermarks, `Sent` events of older logs, and outcomes.
    sent_to: u64,
    acked: SeqSet,
    /// Of `acked`, those the target cluster acked (after a `mirror-switch`).
    acked_on_target: RoaringTreemap,
    failed: SeqSet,
    indeterminate: SeqSet,
    /// Found by the final read.
    stored: SeqSet,
    /// Delivered to a consumer.
    read: SeqSet,
    /// Every extra copy the final read found: sequence number, partition, offset.
    duplicated: Vec<(u64, usize, i64)>,
    /// Each renewal of this producer's client.
    renewals: Vec<RenewalSeen>,
    /// The highest offset acked so far on each partition (as the log is read in order).
    acked_to: HashMap<usize, i64>,
    /// Sends the client refused.
    refused: u64,
    /// The last attempt (sent or refused), ms since run start.
    last_attempt: Option<u32>,
    /// Stretches without an attempt longer than the silence threshold.
    silences: Vec<(u32, u32)>,
}

impl ProducerSets {
    /// Notes an attempt to send at `t` (ms since run start); a gap since the last one
    /// longer than `silence_ms` is a silence.
    fn attempted(&mut self, t: u32, silence_ms: u32) {
        if let Some(last) = self.last_attempt {
            if t > last && t - last > silence_ms {
                self.silences.push((last, t));
            }
        }
        self.last_attempt = Some(self.last_attempt.map_or(t, |l| l.max(t)));
    }
}

/// A renewal of one producer's client, with what decides which duplicates it explains.
struct RenewalSeen {
    /// Index into `findings.client_renewals`.
    index: usize,
    /// When the client began draining (µs).
    drain_start_us: u64,
    /// Records sent and without an outcome when the renewal took effect; narrowed after the
    /// second pass to those sent before the drain began.
    in_flight: RoaringTreemap,
    /// The first sequence number sent at or after the drain began (second pass).
    sent_from: Option<u64>,
    /// The highest offset acked on each partition before the renewal: a re-sent copy is
    /// stored after it.
    acked_to: HashMap<usize, i64>,
}

#[derive(Default)]
struct PartitionData {
    complete: bool,
    /// The log start offset the final read saw: what is below was removed by retention or
    /// compaction.
    log_start: i64,
    /// The end offset the final read read up to (its completion event's; 0 in logs that
    /// do not say). Offsets between the last record it found and this hold nothing a
    /// `read_committed` reader sees — transaction markers, aborted records — not an end.
    end_offset: i64,
    /// When the consumer group gave or took this partition: (ms, instance, assigned).
    ownership: Vec<(u32, u32, bool)>,
    /// Record id at each offset (final read); EMPTY where nothing of ours was read. Its
    /// length is one past the highest offset the final read reached.
    at_offset: column::Ids,
    /// First group delivery (ms since run start) of the record at each offset.
    first_delivery: column::FirstDelivery,
    produce: Activity,
    consume: Activity,
}

/// A lost record, kept until all are known so they can be attributed together.
struct LostRecord {
    gi: usize,
    partition: String,
    offset: i64,
    producer: u32,
    seq: u64,
    ack_ms: u64,
    broker: i32,
    read_before: bool,
    /// How it was known to be written: acked, or read by a consumer though its outcome
    /// was unknown.
    written: &'static str,
}

impl LostRecord {
    /// The record of an `Acked` event `e` on partition `gi`, acked at `ack_ms`.
    fn acked(e: &Event, gi: usize, partition: String, ack_ms: u64) -> LostRecord {
        LostRecord {
            gi,
            partition,
            offset: e.offset,
            producer: e.producer,
            seq: e.seq,
            ack_ms,
            broker: e.acked_by().unwrap_or(-1),
            read_before: false,
            written: "acked",
        }
    }
}

struct Checker<'a> {
    input: &'a CheckInput,
    /// Global partition index of (topic index, partition).
    partition_base: Vec<usize>,
    parts: Vec<PartitionData>,
    producers: HashMap<u32, ProducerSets>,
    findings: Findings,
    latency: LatencyBook,
    /// The run per second, for the charts.
    series: super::series::SeriesBook,
    /// Reorders seen in the final read, by producer: whether they count depends on the
    /// producer's ordering guarantee, known only from its log header (read later).
    reorders: HashMap<u32, (u64, Vec<Example>)>,
    /// Whether any consumer log was read.
    consumers_ran: bool,
    /// What MirrorMaker's target's final read holds (when the run read it).
    target: Option<switch::TargetStore>,
}

impl<'a> Checker<'a> {
    fn part_index(&self, topic: u16, partition: i32) -> Option<usize> {
        let t = usize::from(topic);
        let spec = self.input.topics.get(t)?;
        if partition < 0 || partition as u32 >= spec.partitions {
            return None;
        }
        Some(self.partition_base[t] + partition as usize)
    }

    fn part_name(&self, topic: u16, partition: i32) -> String {
        let t = self
            .input
            .topics
            .get(usize::from(topic))
            .map(|t| t.name.as_str())
            .unwrap_or("?");
        format!("{t}/{partition}")
    }

    fn rel_ms(&self, ts_us: u64) -> u32 {
        ((ts_us / 1000).saturating_sub(self.input.t0_ms)).min(u64::from(u32::MAX - 1)) as u32
    }

    fn example(&mut self, kind: &str, e: Example) {
        let list = self.findings.examples.entry(kind.to_string()).or_default();
        if list.len() < EXAMPLES_KEPT {
            list.push(e);
        }
    }

    /// Keeps an example of `kind` for the record of event `e`, attributed to the step
    /// running at `at_us`.
    fn example_of(
        &mut self,
        kind: &str,
        e: &Event,
        at_us: u64,
        offset: Option<i64>,
        detail: String,
    ) {
        let step = self
            .input
            .attribution
            .label_at(self.rel_ms(at_us) as u64)
            .to_string();
        let partition = self.part_name(e.topic, e.partition);
        self.example(
            kind,
            Example {
                partition,
                offset,
                producer: e.producer,
                seq: e.seq,
                step,
                detail,
            },
        );
    }

    fn producer(&mut self, id: u32) -> &mut ProducerSets {
        self.producers.entry(id).or_default()
    }
}

/// Events handed from the decoding thread to the checker at a time.
const EVENT_BATCH: usize = 8192;

/// Reads a log into `f`, noting a cut-short tail. Decoding runs on its own thread, a few
/// batches ahead of `f`: with two cores, reading and checking overlap.
fn each_event(
    (path, length, shift): (&Path, u64, Option<Shift<'_>>),
    cut_short: &mut Vec<LogCut>,
    mut f: impl FnMut(&Event),
) -> Result<(), HarnessError> {
    let bad =
        |e: &dyn std::fmt::Display| HarnessError::BadInput(format!("{}: {e}", path.display()));
    // no further than the log's length when the check began: every pass over a log that
    // a live worker still appends to sees the same events
    let mut r = LogReader::open_upto(path, length).map_err(|e| bad(&e))?;
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Event>>(4);
    // emptied batches go back to the decoder: no fresh pages per batch
    let (give_back, take_back) = std::sync::mpsc::channel::<Vec<Event>>();
    let decoded = std::thread::scope(|s| {
        let decoder = s.spawn(move || -> std::io::Result<Option<(u64, u64)>> {
            loop {
                let mut batch = take_back
                    .try_recv()
                    .unwrap_or_else(|_| Vec::with_capacity(EVENT_BATCH));
                batch.clear();
                while batch.len() < EVENT_BATCH && r.read_batch(&mut batch, EVENT_BATCH)? {}
                let last = batch.len() < EVENT_BATCH;
                if tx.send(batch).is_err() || last {
                    return Ok(r.cut_short_at().map(|at| (at, r.events_read())));
                }
            }
        });
        for mut batch in rx {
            if let Some(shift) = &shift {
                batch.iter_mut().for_each(|e| shift.apply(e));
            }
            batch.iter().for_each(&mut f);
            let _ = give_back.send(batch);
        }
        decoder.join().expect("the log decoder does not panic")
    });
    if let Some((at_byte, events_before)) = decoded.map_err(|e| bad(&e))? {
        let path = path.display().to_string();
        if !cut_short.iter().any(|c| c.path == path) {
            cut_short.push(LogCut {
                path,
                at_byte,
                events_before,
            });
        }
    }
    Ok(())
}

/// Runs the checker.
pub fn check(input: &CheckInput) -> Result<Findings, HarnessError> {
    let mut partition_base = Vec::new();
    let mut n = 0;
    for t in &input.topics {
        partition_base.push(n);
        n += t.partitions as usize;
    }
    let mut c = Checker {
        input,
        partition_base,
        parts: (0..n).map(|_| PartitionData::default()).collect(),
        producers: HashMap::default(),
        findings: Findings::default(),
        latency: LatencyBook::default(),
        series: Default::default(),
        reorders: HashMap::default(),
        consumers_ran: false,
        target: None,
    };
    c.findings.final_read.partitions = n as u64;
    c.findings.dead_workers = input.dead_workers.clone();
    c.findings.anomalies.dead_workers = input.dead_workers.len() as u64;
    c.findings.steps = input.attribution.steps.clone();

    // (path, flags, length now): every pass reads a log up to the same length
    let mut by_role: BTreeMap<u8, Vec<(PathBuf, u32, u64)>> = BTreeMap::new();
    for p in &input.logs {
        let bad =
            |e: &dyn std::fmt::Display| HarnessError::BadInput(format!("{}: {e}", p.display()));
        let length = std::fs::metadata(p).map_err(|e| bad(&e))?.len();
        let r = LogReader::open(p).map_err(|e| bad(&e))?;
        by_role.entry(r.header().role.code()).or_default().push((
            p.clone(),
            r.header().flags,
            length,
        ));
    }
    fn log<'p, 'c>(
        input: &'c CheckInput,
        role: Role,
        path: &'p Path,
        length: u64,
    ) -> (&'p Path, u64, Option<Shift<'c>>) {
        (path, length, input.clocks.for_log(path, role))
    }
    c.findings.logs_read = input.logs.len() as u64;
    let logs = |role: Role| by_role.get(&role.code()).cloned().unwrap_or_default();
    let mut cut = Vec::new();

    // 1. final read
    let finals = logs(Role::FinalRead);
    c.findings.final_read.ran = !finals.is_empty();
    let mut last_stored: HashMap<(u32, usize), u64> = HashMap::default();
    for (path, _, length) in &finals {
        each_event(log(input, Role::FinalRead, path, *length), &mut cut, |e| {
            c.final_read_event(e, &mut last_stored);
        })?;
    }
    for i in 0..c.input.topics.len() {
        for p in 0..c.input.topics[i].partitions {
            let gi = c.partition_base[i] + p as usize;
            if !c.parts[gi].complete {
                let name = c.part_name(i as u16, p as i32);
                c.findings.final_read.incomplete.push(name);
            }
        }
    }
    c.findings.final_read.complete = c.parts.iter().filter(|p| p.complete).count() as u64;
    // 1b. MirrorMaker's target, for what clients did there after a switch-over
    c.read_target(&mut cut)?;

    // 2. consumers (those moved to the target: see `switch`)
    let mut position: HashMap<(u32, usize), i64> = HashMap::default();
    c.consumers_ran = !logs(Role::Consume).is_empty();
    let mut moved = switch::Moved::default();
    for (path, _, length) in logs(Role::Consume) {
        each_event(log(input, Role::Consume, &path, length), &mut cut, |e| {
            if e.kind == EventKind::Reconnected {
                // a new client: no position of the old one's carries over
                position.retain(|(instance, _), _| *instance != e.instance);
                c.reconnected(e, &mut moved, true, true);
            } else if moved.consumer(e.instance) {
                c.consumer_event_on_target(e);
            } else {
                c.consumer_event(e, &mut position);
            }
        })?;
    }

    // 3. producers, first pass
    let consumers_end = input.attribution.consumers_end_ms.map(|t| t as u32);
    let producer_logs = logs(Role::Produce);
    let mut moved = switch::Moved::default();
    for (path, flags, length) in &producer_logs {
        each_event(log(input, Role::Produce, path, *length), &mut cut, |e| {
            let ps = c.producer(e.producer);
            ps.ordered = flags & FLAG_ORDERED != 0;
            ps.idempotent = flags & FLAG_IDEMPOTENT != 0;
            ps.transactional = flags & FLAG_TRANSACTIONAL != 0;
            if e.kind == EventKind::Reconnected {
                c.reconnected(e, &mut moved, false, true);
            } else if e.kind == EventKind::Acked && moved.producer(e.producer) {
                c.producer_acked_on_target(e);
            } else {
                c.producer_event(e, consumers_end);
            }
        })?;
    }
    c.settle_transactions();
    c.windows();
    c.silences();
    // 3b. producers, second pass: attribute and exemplify lost and unexpected records, and
    // find which records were sent before each renewal's drain began
    let mut lost = Vec::new();
    let mut moved = switch::Moved::default();
    for (path, _, length) in &producer_logs {
        each_event(log(input, Role::Produce, path, *length), &mut cut, |e| {
            if e.kind == EventKind::Reconnected {
                c.reconnected(e, &mut moved, false, false);
            } else if moved.producer(e.producer)
                && matches!(
                    e.kind,
                    EventKind::Acked | EventKind::Failed | EventKind::Indeterminate
                )
            {
                c.note_renewal_sends(e);
                c.verdict_on_target(e, &mut lost);
            } else {
                c.producer_verdict(e, &mut lost);
            }
        })?;
    }
    c.explain_duplicates();
    c.attribute_lost(lost);
    c.totals();
    c.unconsumed();
    if c.consumers_ran {
        c.unconsumed_on_target();
    }
    c.findings.logs_cut_short = cut.iter().map(|c| c.path.clone()).collect();
    c.findings.logs_cut_short_at = cut;
    c.findings.latency_ms = c.latency.overall();
    c.findings.latency_by_step = c.latency.by_label();
    c.findings.series = std::mem::take(&mut c.series).finish();
    Ok(c.findings)
}

impl Checker<'_> {
    fn final_read_event(&mut self, e: &Event, last_stored: &mut HashMap<(u32, usize), u64>) {
        let Some(gi) = self.part_index(e.topic, e.partition) else {
            return;
        };
        match e.kind {
            EventKind::ReadComplete | EventKind::ReadIncomplete => {
                let part = &mut self.parts[gi];
                part.complete |= e.kind == EventKind::ReadComplete;
                part.log_start = part.log_start.max(e.log_start().unwrap_or(0));
                if e.kind == EventKind::ReadComplete {
                    part.end_offset = part.end_offset.max(e.offset);
                }
            }
            EventKind::Received | EventKind::Foreign | EventKind::Corrupt => {
                if e.offset < 0 {
                    return;
                }
                let o = e.offset as usize;
                let part = &mut self.parts[gi];
                let held = part.at_offset.get(o);
                let this = match e.kind {
                    EventKind::Received => pack(e.producer, e.seq),
                    _ => NOT_OURS,
                };
                if held != EMPTY {
                    // the final read met this offset before: a re-read (a retry during
                    // leader churn) is the same record and counts once; another record at
                    // the same offset means the log changed under the reader
                    if held != this {
                        self.findings.anomalies.inconsistent_offset += 1;
                        self.example_of(
                            "inconsistent_offset",
                            e,
                            e.ts_b,
                            Some(e.offset),
                            "the final read found two different records at this offset".into(),
                        );
                    }
                    return;
                }
                self.findings.final_read.records += 1;
                if e.kind != EventKind::Received {
                    part.at_offset.set(o, NOT_OURS);
                    let (kind, detail) = if e.kind == EventKind::Foreign {
                        self.findings.anomalies.foreign += 1;
                        ("foreign", "a record no producer of this run wrote")
                    } else {
                        self.findings.anomalies.corrupt += 1;
                        ("corrupt", "a record of ours whose checksum does not match")
                    };
                    self.example_of(kind, e, e.ts_b, Some(e.offset), detail.into());
                    return;
                }
                part.at_offset.set(o, pack(e.producer, e.seq));
                let ps = self.producer(e.producer);
                if !ps.stored.insert(e.seq) {
                    ps.duplicated.push((e.seq, gi, e.offset));
                    self.findings.anomalies.duplicate += 1;
                    self.example_of(
                        "duplicate",
                        e,
                        e.ts_a,
                        Some(e.offset),
                        "stored again at this offset".into(),
                    );
                    return;
                }
                let key = (e.producer, gi);
                match last_stored.get(&key) {
                    Some(prev) if *prev > e.seq => {
                        let step = self
                            .input
                            .attribution
                            .label_at(self.rel_ms(e.ts_a) as u64)
                            .to_string();
                        let ex = Example {
                            partition: self.part_name(e.topic, e.partition),
                            offset: Some(e.offset),
                            producer: e.producer,
                            seq: e.seq,
                            step,
                            detail: format!("stored after seq {prev} of the same producer"),
                        };
                        let entry = self.reorders.entry(e.producer).or_default();
                        entry.0 += 1;
                        if entry.1.len() < EXAMPLES_KEPT {
                            entry.1.push(ex);
                        }
                    }
                    _ => {
                        last_stored.insert(key, e.seq);
                    }
                }
            }
            _ => {}
        }
    }

    fn consumer_event(&mut self, e: &Event, position: &mut HashMap<(u32, usize), i64>) {
        let Some(gi) = self.part_index(e.topic, e.partition) else {
            return;
        };
        let key = (e.instance, gi);
        match e.kind {
            EventKind::Assigned => {
                self.findings.consumers.assignments += 1;
                position.remove(&key);
                let t = self.rel_ms(e.ts_b);
                self.parts[gi].ownership.push((t, e.instance, true));
            }
            EventKind::Revoked => {
                position.remove(&key);
                let t = self.rel_ms(e.ts_b);
                self.parts[gi].ownership.push((t, e.instance, false));
            }
            EventKind::Received | EventKind::Foreign | EventKind::Corrupt => {
                let recv = self.rel_ms(e.ts_b);
                // borrowed from the input, not from self: no copy per record
                let input = self.input;
                let step = || input.attribution.label_at(recv as u64).to_string();
                let name = || {
                    let t = input.topics.get(usize::from(e.topic));
                    format!("{}/{}", t.map_or("?", |t| t.name.as_str()), e.partition)
                };
                // gaps and regressions, per consumer instance and partition
                if let Some(prev) = position.insert(key, e.offset) {
                    if e.offset > prev + 1 {
                        // the skipped offsets the final read holds (clamped to its length:
                        // a jump past the end of the final log still skipped what is there)
                        let held = &self.parts[gi].at_offset;
                        let from = ((prev + 1) as usize).min(held.len());
                        let to = (e.offset as usize).min(held.len());
                        let existing = (from..to).filter(|o| held.get(*o) != EMPTY).count();
                        if existing > 0 || !self.parts[gi].complete {
                            self.findings.anomalies.poll_gap += 1;
                            self.example("poll_gap", Example { partition: name(), offset: Some(e.offset), producer: e.producer, seq: e.seq, step: step(), detail: format!("consumer {} jumped from offset {prev} to {} without a rebalance", e.instance, e.offset) });
                        }
                    } else if e.offset <= prev {
                        self.findings.anomalies.poll_regression += 1;
                        self.example("poll_regression", Example { partition: name(), offset: Some(e.offset), producer: e.producer, seq: e.seq, step: step(), detail: format!("consumer {} went back from offset {prev} to {} without a rebalance", e.instance, e.offset) });
                    }
                }
                if e.kind != EventKind::Received {
                    return;
                }
                self.findings.consumers.received += 1;
                self.series.consumed(recv);
                self.parts[gi].consume.success(recv);
                // compare with what the final read holds at this offset
                let id = pack(e.producer, e.seq);
                let part = &self.parts[gi];
                let held = if e.offset >= 0 {
                    part.at_offset.get(e.offset as usize)
                } else {
                    EMPTY
                };
                let diverged = if held != EMPTY {
                    held != id
                } else {
                    // past the end of the final log — unless retention removed it (below
                    // the log start nothing can be compared: the record expired); the end
                    // is the end offset read to, not the last record found (what follows
                    // that may be an aborted transaction, which read_uncommitted sees)
                    part.complete
                        && e.offset as usize >= part.at_offset.len()
                        && e.offset >= part.end_offset
                        && e.offset >= part.log_start
                };
                if diverged {
                    self.findings.anomalies.inconsistent_offset += 1;
                    let detail = if held == EMPTY {
                        format!("consumer {} read producer {} seq {} here; the final log ends before this offset", e.instance, e.producer, e.seq)
                    } else if held == NOT_OURS {
                        format!("consumer {} read producer {} seq {} here; the final read found a foreign record", e.instance, e.producer, e.seq)
                    } else {
                        format!("consumer {} read producer {} seq {} here; the final read found producer {} seq {}", e.instance, e.producer, e.seq, held >> 40, held & ((1 << 40) - 1))
                    };
                    self.example(
                        "inconsistent_offset",
                        Example {
                            partition: name(),
                            offset: Some(e.offset),
                            producer: e.producer,
                            seq: e.seq,
                            step: step(),
                            detail,
                        },
                    );
                } else if held == id {
                    let o = e.offset as usize;
                    self.parts[gi].first_delivery.update(o, |t| t.min(recv));
                }
                let send = self.rel_ms(e.ts_a);
                if self.producer(e.producer).read.insert(e.seq) {
                    let label = input.attribution.label_at(send as u64);
                    let us = e.ts_b.saturating_sub(e.ts_a);
                    self.latency.e2e(label, us);
                    self.series.first_delivery(send, us);
                }
            }
            _ => {}
        }
    }

    fn producer_event(&mut self, e: &Event, consumers_end: Option<u32>) {
        let send = self.rel_ms(e.ts_a);
        let done = self.rel_ms(e.ts_b);
        let gi = self.part_index(e.topic, e.partition);
        match e.kind {
            EventKind::Sent | EventKind::SentUpTo => {
                // `Sent` (logs before version 4) is one record; `SentUpTo` all below `seq`
                let to = if e.kind == EventKind::Sent {
                    e.seq + 1
                } else {
                    e.seq
                };
                let silence = self.input.silence_threshold_ms as u32;
                let ps = self.producer(e.producer);
                if e.ts_a != 0 {
                    ps.attempted(send, silence);
                }
                ps.sent_to = ps.sent_to.max(to);
            }
            EventKind::EpochBumped | EventKind::ProducerIdRenewed => {
                let Some(r) = e.renewal() else { return };
                let index = self.findings.client_renewals.len();
                let step = self.input.attribution.label_at(done as u64).to_string();
                let ps = self.producer(e.producer);
                // sent (the watermark logged just before the renewal) and without an
                // outcome yet, as the log is read in order
                let outcomes = [&ps.acked, &ps.failed, &ps.indeterminate];
                let in_flight = SeqSet::missing_below(ps.sent_to, &outcomes);
                ps.renewals.push(RenewalSeen {
                    index,
                    drain_start_us: e.ts_a,
                    in_flight: in_flight.clone(),
                    sent_from: None,
                    acked_to: ps.acked_to.clone(),
                });
                let renewal = ClientRenewal {
                    producer: e.producer,
                    kind: r.kind,
                    reason: r.reason.describe().into(),
                    drain_start_ms: send as u64,
                    at_ms: done as u64,
                    producer_id: r.producer_id,
                    epoch: r.epoch,
                    in_flight: in_flight.len(),
                    step,
                };
                self.findings.client_renewals.push(renewal);
            }
            EventKind::Acked => {
                let ps = self.producer(e.producer);
                ps.acked.insert(e.seq);
                ps.sent_to = ps.sent_to.max(e.seq + 1);
                if let Some(gi) = gi {
                    let to = ps.acked_to.entry(gi).or_insert(-1);
                    *to = (*to).max(e.offset);
                }
                let input = self.input;
                let label = input.attribution.label_at(send as u64);
                let us = e.ts_b.saturating_sub(e.ts_a);
                self.latency.ack(label, us);
                self.series.acked(send, done, us);
                if let Some(gi) = gi {
                    let part = &mut self.parts[gi];
                    part.produce.attempt(send, done);
                    part.produce.success(done);
                    // consume side: stored from the ack until its first delivery
                    if let Some(end) = consumers_end {
                        let o = e.offset as usize;
                        if e.offset >= 0 && part.at_offset.get(o) == pack(e.producer, e.seq) {
                            let first = part.first_delivery.get(o);
                            part.consume.attempt(done, first.min(end).max(done));
                        }
                    }
                }
            }
            EventKind::Refused => {
                // an attempt the client would not take: the partition was not served
                let silence = self.input.silence_threshold_ms as u32;
                let ps = self.producer(e.producer);
                ps.attempted(send, silence);
                ps.refused += 1;
                self.series.refused(send);
                if let Some(gi) = gi {
                    // pending until the client is asked again (the worker retries within
                    // REFUSAL_RETRY_MS): refusals in a row make one stretch
                    self.parts[gi]
                        .produce
                        .attempt(send, done.max(send + REFUSAL_RETRY_MS));
                }
            }
            EventKind::Transaction => {
                let Some(t) = e.transaction() else { return };
                let silence = self.input.silence_threshold_ms as u32;
                let ps = self.producer(e.producer);
                // a producer waiting for its commit (or abort) is trying, not silent: it
                // sends nothing until the coordinator answers, which a dead coordinator
                // makes seconds (the commit's time is reported apart)
                if t.began_us != 0 {
                    ps.attempted(send, silence);
                    ps.last_attempt = ps.last_attempt.max(Some(done));
                }
                // its records were sent, and their own events say so; a range is trusted no
                // further than that (see `settle_transactions`)
                ps.transactions.push(t);
            }
            EventKind::Failed | EventKind::Indeterminate => {
                let ps = self.producer(e.producer);
                ps.sent_to = ps.sent_to.max(e.seq + 1);
                if e.kind == EventKind::Failed {
                    ps.failed.insert(e.seq);
                } else {
                    ps.indeterminate.insert(e.seq);
                }
                self.series.failed(send, done);
                if let Some(gi) = gi {
                    self.parts[gi].produce.attempt(send, done);
                }
            }
            _ => {}
        }
    }

    /// Splits the duplicates into those a client renewal explains and the rest, and says
    /// which renewal in each example. A renewal explains a copy when the record was sent
    /// before the client began draining and still had no outcome when the new epoch or id
    /// took effect (so the client re-sent it with new sequence numbers), and the copy is
    /// stored after the last offset the producer had acked on that partition before the
    /// renewal (so it is the re-sent one). Records queued during the drain were never sent
    /// under the old epoch and explain nothing.
    fn explain_duplicates(&mut self) {
        for ps in self.producers.values_mut() {
            for r in &mut ps.renewals {
                if let Some(first) = r.sent_from {
                    r.in_flight.remove_range(first..);
                }
                self.findings.client_renewals[r.index].in_flight = r.in_flight.len();
            }
        }
        let explains = |r: &RenewalSeen, seq: u64, gi: usize, offset: i64| {
            r.in_flight.contains(seq) && offset > r.acked_to.get(&gi).copied().unwrap_or(-1)
        };
        let mut explained = 0;
        for ps in self.producers.values() {
            explained += ps
                .duplicated
                .iter()
                .filter(|(seq, gi, o)| ps.renewals.iter().any(|r| explains(r, *seq, *gi, *o)))
                .count() as u64;
        }
        self.findings.anomalies.duplicate_after_epoch_bump = explained;
        let Some(examples) = self.findings.examples.get_mut("duplicate") else {
            return;
        };
        for ex in examples {
            let Some(ps) = self.producers.get(&ex.producer) else {
                continue;
            };
            let copy = ps
                .duplicated
                .iter()
                .find(|(seq, _, o)| *seq == ex.seq && Some(*o) == ex.offset);
            let renewal = copy
                .and_then(|(seq, gi, o)| ps.renewals.iter().find(|r| explains(r, *seq, *gi, *o)));
            let Some(r) = renewal else {
                if ps.idempotent {
                    ex.detail
                        .push_str("; idempotent, and no epoch bump of its producer explains it");
                }
                continue;
            };
            let r = &self.findings.client_renewals[r.index];
            ex.detail.push_str(&format!(
                "; in flight when producer {}'s client made its {} at t={}ms after {} \
                 (re-sent with new sequence numbers: librdkafka#4953)",
                r.producer, r.kind, r.at_ms, r.reason
            ));
        }
    }

    /// The producer instances that stopped trying to send: a stretch without an attempt
    /// longer than the silence threshold, up to the producers' stop; and instances the
    /// workload started that never sent at all.
    fn silences(&mut self) {
        let th = self.input.silence_threshold_ms as u32;
        let stop = self.input.attribution.producers_end_ms.map(|t| t as u32);
        let mut ids: Vec<u32> = self.producers.keys().copied().collect();
        ids.sort_unstable();
        let mut silent = 0;
        let mut attempting = 0;
        for id in ids {
            let ps = &self.producers[&id];
            let Some(last) = ps.last_attempt else {
                continue;
            };
            attempting += 1;
            let mut stretches: Vec<(u32, u32, bool)> =
                ps.silences.iter().map(|(a, b)| (*a, *b, false)).collect();
            if let Some(stop) = stop {
                if stop > last && stop - last > th {
                    stretches.push((last, stop, true));
                }
            }
            if stretches.is_empty() {
                continue;
            }
            silent += 1;
            for (start, end, until_stop) in stretches {
                let step = self.input.attribution.label_at(start as u64).to_string();
                self.findings.producer_silences.push(ProducerSilence {
                    producer: id,
                    start_ms: start as u64,
                    end_ms: end as u64,
                    step,
                    until_stop,
                });
            }
        }
        let never = u64::from(self.input.producers_expected).saturating_sub(attempting);
        self.findings.anomalies.silent_producers = silent + never;
    }

    fn windows(&mut self) {
        let th = self.input.window_threshold_ms as u32;
        let mut cluster_produce = Activity::default();
        let mut cluster_consume = Activity::default();
        let mut out = Vec::new();
        let consumers = self.input.attribution.consumers_end_ms.is_some();
        // per partition, the milliseconds in which the group itself held it up
        let pauses: Vec<roaring::RoaringBitmap> = self
            .parts
            .iter()
            .map(|p| group::paused(&p.ownership, th))
            .collect();
        for (ti, t) in self.input.topics.iter().enumerate() {
            for p in 0..t.partitions {
                let gi = self.partition_base[ti] + p as usize;
                let name = WindowSubject::Partition(format!("{}/{p}", t.name));
                let part = &self.parts[gi];
                cluster_produce.merge(&part.produce);
                cluster_consume.merge(&part.consume);
                for (kind, act) in [
                    (WindowKind::Produce, &part.produce),
                    (WindowKind::Consume, &part.consume),
                ] {
                    if kind == WindowKind::Consume && !consumers {
                        continue;
                    }
                    for s in act.windows(th) {
                        let kind = match kind {
                            WindowKind::Consume => group::consume_kind(&s, &pauses[gi], th),
                            ref k => k.clone(),
                        };
                        out.push((name.clone(), kind, s));
                    }
                }
            }
        }
        let group_paused = group::all_paused(&pauses);
        for (kind, act) in [
            (WindowKind::Produce, &cluster_produce),
            (WindowKind::Consume, &cluster_consume),
        ] {
            for s in act.windows(th) {
                let kind = match kind {
                    WindowKind::Consume => group::consume_kind(&s, &group_paused, th),
                    ref k => k.clone(),
                };
                out.push((WindowSubject::Cluster, kind, s));
            }
        }
        // report order: by start, then kind and subject as report.json spells them
        out.sort_by_key(|(n, k, s)| (s.start, k.to_string(), n.to_string()));
        self.findings.unavailability = out
            .into_iter()
            .map(|(partition, kind, s)| Window {
                partition,
                kind,
                start_ms: s.start as u64,
                end_ms: s.end as u64,
                duration_ms: (s.end - s.start) as u64,
                step: self.input.attribution.label_at(s.start as u64).to_string(),
                open: s.open,
            })
            .collect();
    }

    fn totals(&mut self) {
        let mut reorders: Vec<(u32, (u64, Vec<Example>))> =
            std::mem::take(&mut self.reorders).into_iter().collect();
        reorders.sort_by_key(|(p, _)| *p);
        for (producer, (count, examples)) in reorders {
            if self.producers.get(&producer).is_some_and(|p| p.ordered) {
                self.findings.anomalies.reordered += count;
                for ex in examples {
                    self.example("reordered", ex);
                }
            }
        }
        let t = &mut self.findings.producers;
        t.producers = self
            .producers
            .values()
            .filter(|p| p.sent_to > 0 || !p.acked.is_empty())
            .count() as u64;
        for p in self.producers.values() {
            t.sent += p.sent_to;
            t.acked += p.acked.len();
            t.failed += p.failed.len();
            t.indeterminate += p.indeterminate.len();
            t.refused += p.refused;
            t.aborted += p.aborted.len();
            let outcomes = SeqSet::union_len(&[&p.acked, &p.failed, &p.indeterminate, &p.aborted]);
            // every outcome is of a sent record (`sent_to` grows with them)
            t.no_outcome += p.sent_to.saturating_sub(outcomes);
            self.findings.consumers.distinct += p.read.len();
        }
    }
}
