//! Transactional producers: each record's outcome is its transaction's, and two anomalies
//! only transactions have.
//!
//! A transactional producer's log holds its records' own outcomes (`Acked`: a broker
//! appended it — not that anyone may read it) and, per transaction, one
//! [`EventKind::Transaction`] with its sequence range and how it ended. After the first
//! producer pass, [`Checker::settle_transactions`] makes the transaction's outcome the
//! records' own:
//!
//! | transaction ended             | its records count as | a `read_committed` reader must see |
//! |-------------------------------|----------------------|------------------------------------|
//! | committed                     | acked (as logged)    | all of them                        |
//! | aborted (on purpose, or after an error) | aborted    | none of them                       |
//! | unknown, or never ended in the log | indeterminate   | all of them or none                |
//!
//! and counts, against the final read (and the consumers, which read `read_committed`,
//! librdkafka's default):
//! - **aborted reads** — a record of an aborted transaction that a reader saw (Jepsen's
//!   kafka workload: "aborted read"); each record once;
//! - **non-atomic reads** — a committed or unknown transaction of which the final read
//!   holds some records and not others (a committed one's missing records are also
//!   `lost`). Judged only when the final read finished every partition: a transaction
//!   spans partitions, and an unfinished one leaves its share unknown.

use super::*;
use workers::log::TransactionOutcome;

impl Checker<'_> {
    /// Gives each transactional producer's records their transaction's outcome and counts
    /// aborted and non-atomic reads (the final read and the consumers have been read).
    pub(super) fn settle_transactions(&mut self) {
        if !self.producers.values().any(|p| p.transactional) {
            return;
        }
        let final_read_whole =
            self.findings.final_read.ran && self.findings.final_read.incomplete.is_empty();
        let mut totals = TransactionTotals::default();
        let mut non_atomic: Vec<(u32, TransactionEvent, u64)> = Vec::new();
        let mut aborted_read = 0;
        for (id, ps) in self.producers.iter_mut() {
            if !ps.transactional {
                continue;
            }
            // a transaction holds records that were sent: its range is cut to them (a
            // damaged or hand-made log cannot make the checker walk numbers nobody sent)
            let sent_to = ps.sent_to;
            for t in &mut ps.transactions {
                t.first_seq = t.first_seq.min(sent_to);
                t.records = t.records.min(sent_to - t.first_seq);
            }
            ps.transactions.sort_by_key(|t| t.first_seq);
            // sequence numbers sent, and in no ended transaction: their outcome is unknown
            let mut covered_to = 0;
            let mut uncovered = Vec::new();
            for t in &ps.transactions {
                if t.first_seq > covered_to {
                    uncovered.push(covered_to..t.first_seq);
                }
                covered_to = covered_to.max(t.first_seq + t.records);
            }
            if ps.sent_to > covered_to {
                uncovered.push(covered_to..ps.sent_to);
            }
            for range in uncovered {
                for seq in range {
                    if ps.acked.remove(seq) {
                        ps.indeterminate.insert(seq);
                        totals.records_without_end += 1;
                    } else if ps.indeterminate.contains(seq) {
                        totals.records_without_end += 1;
                    }
                }
            }
            for t in &ps.transactions {
                let range = t.first_seq..t.first_seq + t.records;
                let took_ms = t.ended_us.saturating_sub(t.began_us) / 1000;
                if took_ms > totals.longest_ms || totals.longest_step.is_empty() {
                    totals.longest_ms = took_ms;
                    let began = ((t.began_us / 1000).saturating_sub(self.input.t0_ms))
                        .min(u64::from(u32::MAX - 1));
                    totals.longest_step = self.input.attribution.label_at(began).to_string();
                }
                match t.outcome {
                    TransactionOutcome::Committed => {
                        totals.committed += 1;
                        totals.largest = totals.largest.max(t.records);
                    }
                    TransactionOutcome::Aborted => totals.aborted += 1,
                    TransactionOutcome::AbortedAfterError => totals.aborted_after_error += 1,
                    TransactionOutcome::Unknown => totals.unknown += 1,
                }
                if t.outcome.aborted() {
                    for seq in range {
                        ps.acked.remove(seq);
                        ps.failed.remove(seq);
                        ps.indeterminate.remove(seq);
                        ps.aborted.insert(seq);
                        if ps.stored.contains(seq) || ps.read.contains(seq) {
                            aborted_read += 1;
                        }
                    }
                    continue;
                }
                if t.outcome == TransactionOutcome::Unknown {
                    for seq in range.clone() {
                        if ps.acked.remove(seq) {
                            ps.indeterminate.insert(seq);
                        }
                    }
                }
                let stored = range.filter(|s| ps.stored.contains(*s)).count() as u64;
                if final_read_whole && stored > 0 && stored < t.records {
                    non_atomic.push((*id, *t, stored));
                }
            }
        }
        self.findings.anomalies.aborted_read = aborted_read;
        self.findings.anomalies.non_atomic_read = non_atomic.len() as u64;
        non_atomic.sort_by_key(|(id, t, _)| (*id, t.first_seq));
        for (producer, t, stored) in non_atomic {
            let step = self
                .input
                .attribution
                .label_at(self.rel_ms(t.began_us) as u64)
                .to_string();
            let outcome = match t.outcome {
                TransactionOutcome::Committed => "committed",
                _ => "of unknown outcome",
            };
            self.example(
                "non_atomic_read",
                Example {
                    partition: String::new(),
                    offset: None,
                    producer,
                    seq: t.first_seq,
                    step,
                    detail: format!(
                        "a transaction of {} records (seq {} to {}), {outcome}: the final \
                         read holds {stored} of them",
                        t.records,
                        t.first_seq,
                        t.first_seq + t.records - 1
                    ),
                },
            );
        }
        self.findings.transactions = Some(totals);
    }

    /// The second producer pass's look at a record of an aborted transaction: an example
    /// when a reader saw it (counted by [`Checker::settle_transactions`]).
    pub(super) fn aborted_record(&mut self, e: &Event) {
        let Some(ps) = self.producers.get(&e.producer) else {
            return;
        };
        let who = match (ps.stored.contains(e.seq), ps.read.contains(e.seq)) {
            (true, true) => "the final read and a consumer",
            (true, false) => "the final read",
            (false, true) => "a consumer",
            (false, false) => return,
        };
        let offset = (e.offset >= 0).then_some(e.offset);
        self.example_of(
            "aborted_read",
            e,
            e.ts_b,
            offset,
            format!("a record of an aborted transaction, read by {who} (read_committed)"),
        );
    }
}
