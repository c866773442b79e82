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
        (
            totals.write_cycles,
            totals.write_cycle_largest,
            totals.write_cycle_example,
        ) = self.write_cycles();
        self.findings.transactions = Some(totals);
    }

    /// Write cycles (G0) among the transactions: on each partition the final read read, the
    /// order of the transactions whose records it holds (by offset) gives an edge from each
    /// to the next different one; a strongly connected group of two or more transactions
    /// is a cycle. Returns how many groups, the largest's size, and one in words.
    fn write_cycles(&self) -> (u64, u64, String) {
        // every transaction of a transactional producer, as a node: (producer, index)
        let mut base: HashMap<u32, usize> = HashMap::default();
        let mut nodes: Vec<(u32, usize)> = Vec::new();
        for (id, ps) in &self.producers {
            if ps.transactional && !ps.transactions.is_empty() {
                base.insert(*id, nodes.len());
                nodes.extend((0..ps.transactions.len()).map(|i| (*id, i)));
            }
        }
        if nodes.len() < 2 {
            return (0, 0, String::new());
        }
        let node_of = |packed: u64| -> Option<u32> {
            let producer = (packed >> 40) as u32;
            let seq = packed & ((1 << 40) - 1);
            let b = *base.get(&producer)?;
            let txns = &self.producers.get(&producer)?.transactions;
            let i = txns
                .partition_point(|t| t.first_seq <= seq)
                .checked_sub(1)?;
            (seq < txns[i].first_seq + txns[i].records).then_some((b + i) as u32)
        };
        // (from, to, partition where `from` wrote before `to`)
        let mut edges: Vec<(u32, u32, usize)> = Vec::new();
        for (gi, part) in self.parts.iter().enumerate() {
            let mut prev: Option<u32> = None;
            for o in 0..part.at_offset.len() {
                let v = part.at_offset.get(o);
                if v == EMPTY || v == NOT_OURS {
                    continue;
                }
                let Some(n) = node_of(v) else { continue };
                if let Some(p) = prev.filter(|p| *p != n) {
                    edges.push((p, n, gi));
                }
                prev = Some(n);
            }
        }
        edges.sort_unstable();
        edges.dedup_by_key(|e| (e.0, e.1));
        let mut adj: Vec<Vec<u32>> = vec![Vec::new(); nodes.len()];
        for (a, b, _) in &edges {
            adj[*a as usize].push(*b);
        }
        let cycles = strongly_connected(&adj);
        let Some(largest) = cycles.iter().max_by_key(|c| c.len()) else {
            return (0, 0, String::new());
        };
        // in words: the largest group, with a crossing pair of its transactions
        let name = |n: u32| {
            let (producer, i) = nodes[n as usize];
            let t = &self.producers[&producer].transactions[i];
            format!(
                "producer {producer} seq {}-{}",
                t.first_seq,
                t.first_seq + t.records.saturating_sub(1)
            )
        };
        let members: std::collections::HashSet<u32> = largest.iter().copied().collect();
        let crossing = edges.iter().find_map(|(a, b, gi)| {
            if !members.contains(a) || !members.contains(b) {
                return None;
            }
            let back = edges
                .iter()
                .find(|(x, y, _)| x == b && y == a)
                .map(|(_, _, g)| *g)?;
            Some((*a, *b, *gi, back))
        });
        let part_name = |gi: usize| {
            let t = self.partition_base.partition_point(|b| *b <= gi) - 1;
            self.part_name(t as u16, (gi - self.partition_base[t]) as i32)
        };
        let example = match crossing {
            Some((a, b, ab, ba)) => format!(
                "{} transactions in one cycle; e.g. {} wrote before {} on {} and after it on {}",
                largest.len(),
                name(a),
                name(b),
                part_name(ab),
                part_name(ba)
            ),
            None => format!(
                "{} transactions in one cycle, among them {}",
                largest.len(),
                largest
                    .iter()
                    .take(3)
                    .map(|n| name(*n))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        (cycles.len() as u64, largest.len() as u64, example)
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

/// The strongly connected groups of two nodes or more of a directed graph (Tarjan's, with
/// an explicit stack: a run holds many thousands of transactions).
fn strongly_connected(adj: &[Vec<u32>]) -> Vec<Vec<u32>> {
    const UNSEEN: u32 = u32::MAX;
    let n = adj.len();
    let mut index = vec![UNSEEN; n];
    let mut low = vec![0u32; n];
    let mut on_stack = vec![false; n];
    let mut stack: Vec<u32> = Vec::new();
    let mut call: Vec<(u32, usize)> = Vec::new();
    let mut next = 0u32;
    let mut out = Vec::new();
    for start in 0..n {
        if index[start] != UNSEEN {
            continue;
        }
        index[start] = next;
        low[start] = next;
        next += 1;
        stack.push(start as u32);
        on_stack[start] = true;
        call.push((start as u32, 0));
        while let Some(&(v, child)) = call.last() {
            let v = v as usize;
            if let Some(&w) = adj[v].get(child) {
                if let Some(top) = call.last_mut() {
                    top.1 += 1;
                }
                let w = w as usize;
                if index[w] == UNSEEN {
                    index[w] = next;
                    low[w] = next;
                    next += 1;
                    stack.push(w as u32);
                    on_stack[w] = true;
                    call.push((w as u32, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
                continue;
            }
            call.pop();
            if let Some(&(u, _)) = call.last() {
                low[u as usize] = low[u as usize].min(low[v]);
            }
            if low[v] == index[v] {
                let mut group = Vec::new();
                while let Some(w) = stack.pop() {
                    on_stack[w as usize] = false;
                    group.push(w);
                    if w as usize == v {
                        break;
                    }
                }
                if group.len() >= 2 {
                    out.push(group);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::strongly_connected;

    #[test]
    fn groups_of_two_or_more_are_found_and_single_nodes_are_not() {
        // 0 → 1 → 2 → 0 (a cycle), 2 → 3, 3 → 4 → 3 (another), 5 alone
        let adj = vec![vec![1], vec![2], vec![0, 3], vec![4], vec![3], vec![]];
        let mut groups: Vec<Vec<u32>> = strongly_connected(&adj)
            .into_iter()
            .map(|mut g| {
                g.sort();
                g
            })
            .collect();
        groups.sort();
        assert_eq!(groups, vec![vec![0, 1, 2], vec![3, 4]]);
        // a chain has none; a long one does not overflow a stack
        let chain: Vec<Vec<u32>> = (0..200_000u32)
            .map(|i| if i + 1 < 200_000 { vec![i + 1] } else { vec![] })
            .collect();
        assert!(strongly_connected(&chain).is_empty());
        let mut ring = chain;
        ring[199_999] = vec![0];
        assert_eq!(strongly_connected(&ring)[0].len(), 200_000);
    }
}
