//! Clients moved to MirrorMaker's target cluster (`mirror-switch`): what they log after
//! their `Reconnected` event naming cluster 1 happened there, at the target's offsets.
//!
//! Why a split and not a second checker: the identity checks hold across the clusters (a
//! record a consumer read on either counts as read; a record acked on either must be
//! stored on the one that acked it), the offset checks do not (MirrorMaker's copy has its
//! own offsets). So events on the target skip every offset comparison with the source's
//! final read — gaps, regressions, inconsistent offsets, the consume windows measured from
//! an ack to the first delivery at its offset — and keep the rest: deliveries count as
//! reads (by identity) and consume successes on their partition (by name), acks as acks
//! and produce successes; an outcome the target gave is judged against the target's final
//! read (`mirror/final-read-target.log`): a record it acked (or of unknown outcome, that a
//! consumer read) is lost when its partition was read to the end and it is not there,
//! unverified when not; one it failed that is there, or was read, is unexpected. A
//! delivery on the target of a record the
//! group was already given (on the source, before the move) is a re-read: what the offsets
//! MirrorMaker translated made the group read again — counted, not an anomaly.

use std::collections::HashSet;
use std::path::PathBuf;

use super::*;

/// The target cluster's final read, for the records clients wrote there after a move.
#[derive(Debug, Clone, Default)]
pub struct TargetRead {
    /// Its log.
    pub log: PathBuf,
    /// The topics it read, in its log's topic-index order (workload topic names).
    pub topics: Vec<String>,
}

/// What the target's final read holds, by record identity.
#[derive(Default)]
pub(super) struct TargetStore {
    /// Per producer, the sequence numbers stored on the target.
    stored: HashMap<u32, RoaringTreemap>,
    /// Per global partition index (the workload's), read to its end.
    complete: Vec<bool>,
}

/// Producer ids and consumer instances whose clients are on the target, as a pass reads
/// the logs in order (each pass tracks its own: an event before a move is the source's).
#[derive(Default)]
pub(super) struct Moved {
    producers: HashSet<u32>,
    consumers: HashSet<u32>,
}

impl Moved {
    /// Takes a `Reconnected` event of a producer (`consumer` false) or consumer log.
    pub(super) fn note(&mut self, e: &Event, consumer: bool) {
        let set = if consumer {
            &mut self.consumers
        } else {
            &mut self.producers
        };
        let who = if consumer { e.instance } else { e.producer };
        if e.code == 1 {
            set.insert(who);
        } else {
            set.remove(&who);
        }
    }

    /// A producer's events are the target's.
    pub(super) fn producer(&self, producer: u32) -> bool {
        self.producers.contains(&producer)
    }

    /// A consumer instance's events are the target's.
    pub(super) fn consumer(&self, instance: u32) -> bool {
        self.consumers.contains(&instance)
    }
}

impl Checker<'_> {
    /// Reads the target's final read (when the run has one) into `self.target`.
    pub(super) fn read_target(&mut self, cut: &mut Vec<LogCut>) -> Result<(), HarnessError> {
        let Some(t) = &self.input.target_read else {
            return Ok(());
        };
        if !t.log.exists() {
            return Ok(());
        }
        // the target read's topic index → the workload's
        let index: Vec<Option<u16>> = t
            .topics
            .iter()
            .map(|name| {
                self.input
                    .topics
                    .iter()
                    .position(|w| &w.name == name)
                    .map(|i| i as u16)
            })
            .collect();
        let mut store = TargetStore {
            complete: vec![false; self.parts.len()],
            ..TargetStore::default()
        };
        let length = std::fs::metadata(&t.log)
            .map_err(|e| HarnessError::BadInput(format!("{}: {e}", t.log.display())))?
            .len();
        each_event((&t.log, length, None), cut, |e| {
            let Some(topic) = index.get(usize::from(e.topic)).copied().flatten() else {
                return;
            };
            let Some(gi) = self.part_index(topic, e.partition) else {
                return;
            };
            match e.kind {
                EventKind::ReadComplete => store.complete[gi] = true,
                EventKind::Received => {
                    store.stored.entry(e.producer).or_default().insert(e.seq);
                }
                _ => {}
            }
        })?;
        self.target = Some(store);
        Ok(())
    }

    /// A client's `Reconnected` event: which cluster it is on from here.
    pub(super) fn reconnected(
        &mut self,
        e: &Event,
        moved: &mut Moved,
        consumer: bool,
        counting: bool,
    ) {
        moved.note(e, consumer);
        if e.code != 1 || !counting {
            return;
        }
        let s = self
            .findings
            .switch_over
            .get_or_insert_with(Default::default);
        s.target_read = self.target.is_some();
        if consumer {
            s.consumers_moved += 1;
        } else {
            s.producers_moved += 1;
        }
    }

    /// A consumer event on the target: no offset of the source's applies; a delivery is a
    /// read by identity (or a re-read), a consume success on its partition.
    pub(super) fn consumer_event_on_target(&mut self, e: &Event) {
        let Some(gi) = self.part_index(e.topic, e.partition) else {
            return;
        };
        match e.kind {
            EventKind::Assigned => {
                self.findings.consumers.assignments += 1;
                let t = self.rel_ms(e.ts_b);
                self.parts[gi].ownership.push((t, e.instance, true));
            }
            EventKind::Revoked => {
                let t = self.rel_ms(e.ts_b);
                self.parts[gi].ownership.push((t, e.instance, false));
            }
            EventKind::Received => {
                let recv = self.rel_ms(e.ts_b);
                self.findings.consumers.received += 1;
                self.series.consumed(recv);
                self.parts[gi].consume.success(recv);
                let send = self.rel_ms(e.ts_a);
                if self.producer(e.producer).read.insert(e.seq) {
                    let input = self.input;
                    let label = input.attribution.label_at(send as u64);
                    let us = e.ts_b.saturating_sub(e.ts_a);
                    self.latency.e2e(label, us);
                    self.series.first_delivery(send, us);
                } else if let Some(s) = self.findings.switch_over.as_mut() {
                    s.reread_on_target += 1;
                }
            }
            _ => {}
        }
    }

    /// An ack from the target: an ack (by identity) and a produce success; no offset of the
    /// source's applies.
    pub(super) fn producer_acked_on_target(&mut self, e: &Event) {
        let send = self.rel_ms(e.ts_a);
        let done = self.rel_ms(e.ts_b);
        let ps = self.producer(e.producer);
        ps.acked.insert(e.seq);
        ps.acked_on_target.insert(e.seq);
        ps.sent_to = ps.sent_to.max(e.seq + 1);
        let input = self.input;
        let label = input.attribution.label_at(send as u64);
        let us = e.ts_b.saturating_sub(e.ts_a);
        self.latency.ack(label, us);
        self.series.acked(send, done, us);
        if let Some(gi) = self.part_index(e.topic, e.partition) {
            let part = &mut self.parts[gi];
            part.produce.attempt(send, done);
            part.produce.success(done);
        }
        if let Some(s) = self.findings.switch_over.as_mut() {
            s.acked_on_target += 1;
        }
    }

    /// The verdict on an outcome the target gave: a record it acked is stored there, or
    /// lost (its partition read to the end), or unverified; one of unknown outcome that a
    /// consumer read was written, so the same; one it failed must not be there, nor read.
    pub(super) fn verdict_on_target(&mut self, e: &Event, lost: &mut Vec<LostRecord>) {
        let Some(gi) = self.part_index(e.topic, e.partition) else {
            return;
        };
        let read = self
            .producers
            .get(&e.producer)
            .is_some_and(|ps| ps.read.contains(e.seq));
        let Some((stored, complete)) = self.target.as_ref().map(|t| {
            (
                t.stored.get(&e.producer).is_some_and(|s| s.contains(e.seq)),
                t.complete[gi],
            )
        }) else {
            // the target never read back: nothing it acked can be vouched for
            if e.kind == EventKind::Acked || (e.kind == EventKind::Indeterminate && read) {
                self.findings.anomalies.unverified += 1;
            }
            return;
        };
        let written = match e.kind {
            EventKind::Acked => "acked by the target cluster",
            EventKind::Indeterminate if read => {
                "of unknown outcome on the target cluster, read by a consumer"
            }
            EventKind::Failed if stored || read => {
                self.failed_but_read_back(e, " by the target cluster");
                return;
            }
            _ => return,
        };
        if stored {
            return;
        }
        if !complete {
            self.findings.anomalies.unverified += 1;
            return;
        }
        let at_ms = self.rel_ms(e.ts_b) as u64;
        let name = self.part_name(e.topic, e.partition);
        if let Some(s) = self.findings.switch_over.as_mut() {
            s.lost_on_target += 1;
        }
        lost.push(LostRecord {
            read_before: read,
            // the target's brokers have ids of their own: no blame by broker
            broker: -1,
            offset: if e.kind == EventKind::Acked {
                e.offset
            } else {
                -1
            },
            written,
            ..LostRecord::acked(e, gi, name, at_ms)
        });
    }

    /// Records acked by the target and stored there that no consumer was given: the
    /// source's `unconsumed` walks the source's final read, which never held them.
    pub(super) fn unconsumed_on_target(&mut self) {
        let Some(t) = &self.target else {
            return;
        };
        let mut found = Vec::new();
        for (producer, ps) in &self.producers {
            let Some(stored) = t.stored.get(producer) else {
                continue;
            };
            for seq in (&ps.acked_on_target & stored).iter() {
                if !ps.read.contains(seq) {
                    found.push((*producer, seq));
                }
            }
        }
        found.sort_unstable();
        self.findings.anomalies.unconsumed += found.len() as u64;
        let list = self
            .findings
            .examples
            .entry("unconsumed".into())
            .or_default();
        for (producer, seq) in found {
            if list.len() >= EXAMPLES_KEPT {
                break;
            }
            list.push(Example {
                partition: String::new(),
                offset: None,
                producer,
                seq,
                step: String::new(),
                detail:
                    "acked and stored on the target cluster, never delivered to the consumer group"
                        .into(),
            });
        }
    }
}
