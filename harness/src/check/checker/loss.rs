//! Lost, expired, unverified, unexpected and unconsumed records, acks whose offset the log
//! contradicts, and what the losses are blamed on:
//! stretches of one broker's acks on one partition, blamed on the outage that ended that
//! leadership, or on the acting step in force when a deposed leader kept acking.

use super::*;

impl Checker<'_> {
    /// The first record sent once each renewal's drain had begun (sequence numbers are
    /// sent in order; outcomes carry their send time).
    pub(super) fn note_renewal_sends(&mut self, e: &Event) {
        if matches!(
            e.kind,
            EventKind::Sent | EventKind::Acked | EventKind::Failed | EventKind::Indeterminate
        ) {
            if let Some(ps) = self.producers.get_mut(&e.producer) {
                for r in &mut ps.renewals {
                    if e.ts_a >= r.drain_start_us {
                        r.sent_from = Some(r.sent_from.map_or(e.seq, |s| s.min(e.seq)));
                    }
                }
            }
        }
    }

    pub(super) fn producer_verdict(&mut self, e: &Event, lost: &mut Vec<LostRecord>) {
        self.note_renewal_sends(e);
        if matches!(e.kind, EventKind::Sent | EventKind::SentUpTo) {
            return;
        }
        // a transactional record's outcome is its transaction's (one lookup more per
        // event only when some producer sent in transactions)
        let mut e = *e;
        let transactional = self.findings.transactions.is_some();
        if let Some(ps) = transactional
            .then(|| self.producers.get(&e.producer))
            .flatten()
            .filter(|p| p.transactional)
        {
            if matches!(
                e.kind,
                EventKind::Acked | EventKind::Failed | EventKind::Indeterminate
            ) {
                if ps.aborted.contains(e.seq) {
                    self.aborted_record(&e);
                    return;
                }
                if e.kind == EventKind::Acked && !ps.acked.contains(e.seq) {
                    e.kind = EventKind::Indeterminate;
                }
            }
        }
        let e = &e;
        let Some(gi) = self.part_index(e.topic, e.partition) else {
            return;
        };
        let Some(ps) = self.producers.get(&e.producer) else {
            return;
        };
        let me = pack(e.producer, e.seq);
        let part = &self.parts[gi];
        match e.kind {
            EventKind::Acked if !ps.stored.contains(e.seq) => {
                let read_before = ps.read.contains(e.seq);
                if e.offset >= 0 && e.offset < part.log_start {
                    // retention or compaction removed it: the topic's config, not loss
                    self.findings.anomalies.expired += 1;
                    let detail = format!(
                        "acked at offset {}, below the log start offset {} at the final read",
                        e.offset, part.log_start
                    );
                    self.example_of("expired", e, e.ts_b, Some(e.offset), detail);
                    return;
                }
                // a partition the final read could not finish still vouches for the
                // offsets it reached (Jepsen's rule)
                let reached = e.offset >= 0 && (e.offset as usize) < part.at_offset.len();
                if !part.complete && !reached {
                    // whether the cluster still holds it is unknown, read before or not
                    self.findings.anomalies.unverified += 1;
                    return;
                }
                let ack_ms = self.rel_ms(e.ts_b) as u64;
                let name = self.part_name(e.topic, e.partition);
                lost.push(LostRecord {
                    read_before,
                    ..LostRecord::acked(e, gi, name, ack_ms)
                });
            }
            EventKind::Acked if e.offset >= 0 => {
                // stored: the ack's offset must hold it (a hole is fine: compaction)
                let o = e.offset as usize;
                let held = (o < part.at_offset.len()).then(|| part.at_offset.get(o));
                let past_end = held.is_none() && part.complete && e.offset >= part.end_offset;
                let other = held.is_some_and(|h| h != EMPTY && h != me);
                if past_end || other {
                    self.findings.anomalies.inconsistent_offset += 1;
                    let there = match held {
                        None => "the final log ends before it".to_string(),
                        Some(NOT_OURS) => "the final read holds a foreign record there".into(),
                        Some(h) => format!(
                            "the final read holds producer {} seq {} there",
                            h >> 40,
                            h & ((1 << 40) - 1)
                        ),
                    };
                    let detail = format!(
                        "acked at offset {}; {there}; this record is stored elsewhere",
                        e.offset
                    );
                    self.example_of("inconsistent_offset", e, e.ts_b, Some(e.offset), detail);
                }
            }
            EventKind::Indeterminate if !ps.stored.contains(e.seq) && ps.read.contains(e.seq) => {
                // nobody knew whether it was written, but a consumer read it: it was, and
                // the cluster no longer has it. Below a moved log start it may have expired
                // instead; that cannot be told without its offset.
                if !part.complete || part.log_start > 0 {
                    self.findings.anomalies.unverified += 1;
                    return;
                }
                let known_ms = self.rel_ms(e.ts_b) as u64;
                let name = self.part_name(e.topic, e.partition);
                lost.push(LostRecord {
                    offset: -1,
                    broker: -1,
                    read_before: true,
                    written: "of unknown outcome, read by a consumer",
                    ..LostRecord::acked(e, gi, name, known_ms)
                });
            }
            EventKind::Failed if ps.stored.contains(e.seq) || ps.read.contains(e.seq) => {
                self.failed_but_read_back(e, "");
            }
            _ => {}
        }
    }

    /// A record reported failed (`by`: " by the target cluster", or nothing) that was
    /// stored or read anyway: unexpected.
    pub(super) fn failed_but_read_back(&mut self, e: &Event, by: &str) {
        self.findings.anomalies.unexpected += 1;
        self.example_of(
            "unexpected",
            e,
            e.ts_b,
            None,
            format!(
                "reported failed{by} (error {}) but read back",
                e.error_code().unwrap_or_default()
            ),
        );
    }

    pub(super) fn unconsumed(&mut self) {
        if !self.consumers_ran {
            return;
        }
        for (ti, t) in self.input.topics.iter().enumerate() {
            for p in 0..t.partitions {
                let gi = self.partition_base[ti] + p as usize;
                let ids = &self.parts[gi].at_offset;
                for o in 0..ids.len() {
                    let id = ids.get(o);
                    if id == EMPTY || id == NOT_OURS {
                        continue;
                    }
                    let (producer, seq) = ((id >> 40) as u32, id & ((1 << 40) - 1));
                    if self
                        .producers
                        .get(&producer)
                        .is_some_and(|ps| !ps.read.contains(seq))
                    {
                        self.findings.anomalies.unconsumed += 1;
                        let list = self
                            .findings
                            .examples
                            .entry("unconsumed".into())
                            .or_default();
                        if list.len() < EXAMPLES_KEPT {
                            list.push(Example {
                                partition: format!("{}/{p}", t.name),
                                offset: Some(o as i64),
                                producer,
                                seq,
                                step: String::new(),
                                detail: "stored, never delivered to the consumer group".into(),
                            });
                        }
                    }
                }
            }
        }
    }

    /// Counts, attributes and exemplifies the lost records.
    ///
    /// Lost records come in stretches: consecutive acks of one broker on one partition
    /// (Kafka loses a log's suffix, never a hole). What ended that broker's leadership
    /// decides the blame:
    /// * it ended in an **outage** — a produce window on the partition starts where the
    ///   stretch ends: the leader died or was cut off with records nobody else had. Blamed on
    ///   the window's step (the kill, say);
    /// * it ended **without one** — the clients moved on with no gap, so the broker had been
    ///   deposed while still acking (a zombie leader, a split brain). Blamed on the acting
    ///   step in force when the stretch began (the partition that isolated it, say).
    ///
    /// Nothing here depends on what consumers happened to read, so the blame does not
    /// change with consumer lag.
    pub(super) fn attribute_lost(&mut self, mut lost: Vec<LostRecord>) {
        lost.sort_by_key(|l| (l.gi, l.broker, l.ack_ms));
        let th = self.input.window_threshold_ms;
        let gap = th.max(1000) * 10;
        let mut i = 0;
        while i < lost.len() {
            // one stretch: same partition and broker, acks no further apart than `gap`
            let mut j = i + 1;
            while j < lost.len()
                && lost[j].gi == lost[i].gi
                && lost[j].broker == lost[i].broker
                && lost[j].ack_ms - lost[j - 1].ack_ms <= gap
            {
                j += 1;
            }
            let (start, end) = (lost[i].ack_ms, lost[j - 1].ack_ms);
            let partition = WindowSubject::Partition(lost[i].partition.clone());
            let outage = self.findings.unavailability.iter().find(|w| {
                w.kind == WindowKind::Produce
                    && w.partition == partition
                    && w.start_ms + th >= end
                    && w.start_ms <= end + th
            });
            let (cause, how) = match outage {
                Some(w) => (w.step.clone(), format!("its leader's run ended in an outage at t={}ms", w.start_ms)),
                None => (self.input.attribution.acting_step_at(start).to_string(), format!("its leader was deposed without an outage; the lost stretch began at t={start}ms")),
            };
            for l in &lost[i..j] {
                self.findings.anomalies.lost += 1;
                if l.read_before {
                    self.findings.anomalies.lost_read_before += 1;
                }
                *self.findings.lost_by_step.entry(cause.clone()).or_default() += 1;
                let detail = if l.offset >= 0 {
                    format!(
                        "{} at offset {} at t={}ms by broker {}, not in the final read{}; {how}",
                        l.written,
                        l.offset,
                        l.ack_ms,
                        l.broker,
                        if l.read_before {
                            " (a consumer had read it)"
                        } else {
                            ""
                        }
                    )
                } else {
                    format!(
                        "{} (known at t={}ms), not in the final read; {how}",
                        l.written, l.ack_ms
                    )
                };
                self.example(
                    "lost",
                    Example {
                        partition: l.partition.clone(),
                        offset: Some(l.offset),
                        producer: l.producer,
                        seq: l.seq,
                        step: cause.clone(),
                        detail,
                    },
                );
            }
            i = j;
        }
    }
}
