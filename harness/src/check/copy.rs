//! The pipeline check: did the exactly-once pipeline (`[workload] copy`) copy each record
//! of its input exactly once? By record identity (producer, sequence number from the
//! record header the copy carries unchanged), never by offset.
//!
//! What must be copied is what the run's final read found in the input topic: it reads
//! `read_committed`, as the pipeline does, so it holds every committed record and no
//! aborted one — a record lost upstream is the main check's loss, not the pipeline's.
//! What was copied is what a final read of the output topic (`copy/final-read-output.log`,
//! `read_committed`: an aborted copy transaction's records are not there) found. Then:
//! - **missing**: in the input, never in the output — a transaction that did not commit
//!   and was not read again (the rewind a pipeline must make), or a pipeline that never
//!   caught up;
//! - **duplicates**: extra copies in the output — offsets committed apart from the copies
//!   (an at-least-once pipeline), or a zombie instance not fenced;
//! - **not in input**: copies of records the input's final read does not hold — a record
//!   of an aborted transaction copied (a `read_uncommitted` pipeline), or one the input
//!   lost after it was copied.
//!
//! The pipeline's own logs (`logs/copy-N.log`) give its transactions by outcome and how
//! many records it read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use roaring::RoaringTreemap;
use serde::{Deserialize, Serialize};
use workers::log::TransactionOutcome;
use workers::{EventKind, LogReader, Role, TopicSpec};

use crate::error::HarnessError;

/// Where the run keeps what the copy check reads (in the run directory).
pub const COPY_DIR: &str = "copy";
/// The run's record of the pipeline.
pub const COPY_RECORD: &str = "copy/copy.json";
/// The final read of the output topic.
pub const OUTPUT_READ_LOG: &str = "copy/final-read-output.log";

/// How many examples of each kind the report keeps.
const EXAMPLES: usize = 10;

/// What the run says of the pipeline, for the check.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CopyRecord {
    /// The workload topic it read.
    pub from: String,
    /// The topic it wrote.
    pub to: String,
    /// Its consumer group.
    pub group: String,
    /// Whether its group had committed every input partition's end before it was stopped
    /// (everything the producers wrote was copied, or should have been).
    pub caught_up: bool,
    /// How long catching up took, or why it did not.
    pub catch_up_note: String,
}

/// The pipeline's transactions, from its logs.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CopyTransactions {
    /// Committed.
    pub committed: u64,
    /// Aborted (after an error: the pipeline never aborts on purpose).
    pub aborted: u64,
    /// Outcome unknown (the client was replaced; the coordinator completed or aborted it).
    pub unknown: u64,
    /// Records copied in committed transactions (by the pipeline's count; a record read
    /// again after an aborted round counts again).
    pub records_committed: u64,
    /// Records the pipeline read (again after a rewind, too).
    pub records_read: u64,
}

/// The copy section of the report.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CopyCheck {
    /// The input topic.
    pub from: String,
    /// The output topic.
    pub to: String,
    /// Whether the pipeline caught up before it was stopped (see [`CopyRecord`]).
    pub caught_up: bool,
    /// How long catching up took, or why it did not.
    pub catch_up_note: String,
    /// Records of this run the input's final read holds: each must be copied once.
    pub input_records: u64,
    /// Of those, copied exactly once.
    pub copied_once: u64,
    /// Of those, never copied.
    pub missing: u64,
    /// Extra copies (a record copied three times counts two).
    pub duplicates: u64,
    /// Copies of records the input's final read does not hold.
    pub not_in_input: u64,
    /// Records of this run in the output topic, every copy counted.
    pub output_records: u64,
    /// Records in the output that are no copy of ours (another writer, or damaged).
    pub output_not_ours: u64,
    /// Input partitions the main final read did not read to their end.
    pub input_incomplete: Vec<String>,
    /// Output partitions its final read did not read to their end.
    pub output_incomplete: Vec<String>,
    /// The pipeline's transactions.
    pub transactions: CopyTransactions,
    /// The first records never copied: `orders/3 producer 1 seq 42 at offset 17`.
    pub missing_examples: Vec<String>,
    /// The first extra copies: `producer 1 seq 42: copied again at orders-copy/3 90`.
    pub duplicate_examples: Vec<String>,
    /// The first copies of records not in the input.
    pub not_in_input_examples: Vec<String>,
}

/// The copy check, when the run left a record of a pipeline (`None`: it ran none, or
/// ended before its output was read back). `topics` are the workload's, in the logs'
/// order; `logs` the run's worker logs.
pub fn check_copy(
    run_dir: &Path,
    topics: &[TopicSpec],
    logs: &[PathBuf],
) -> Result<Option<CopyCheck>, HarnessError> {
    let record_path = run_dir.join(COPY_RECORD);
    let Some(record) = super::read_json::<CopyRecord>(&record_path)? else {
        return Ok(None);
    };
    let bad = |p: &Path, e: &dyn std::fmt::Display| {
        HarnessError::BadInput(format!("{}: {e}", p.display()))
    };
    let from_index = topics.iter().position(|t| t.name == record.from);
    let from_partitions = from_index.map_or(0, |i| topics[i].partitions);
    let mut out = CopyCheck {
        from: record.from.clone(),
        to: record.to.clone(),
        caught_up: record.caught_up,
        catch_up_note: record.catch_up_note.clone(),
        ..CopyCheck::default()
    };

    // what the input holds: (producer → seqs), from the main final read
    let mut input: BTreeMap<u32, RoaringTreemap> = BTreeMap::new();
    let mut input_complete = vec![false; from_partitions as usize];
    let mut finals = Vec::new();
    for path in logs {
        let mut r = LogReader::open(path).map_err(|e| bad(path, &e))?;
        match r.header().role {
            Role::FinalRead => finals.push(path.clone()),
            Role::Copy => {
                while let Some(e) = r.next_event().map_err(|e| bad(path, &e))? {
                    match e.kind {
                        EventKind::Received => out.transactions.records_read += 1,
                        EventKind::Transaction => {
                            let t = e.transaction().expect("a transaction event");
                            match t.outcome {
                                TransactionOutcome::Committed => {
                                    out.transactions.committed += 1;
                                    out.transactions.records_committed += t.records;
                                }
                                TransactionOutcome::Aborted
                                | TransactionOutcome::AbortedAfterError => {
                                    out.transactions.aborted += 1
                                }
                                TransactionOutcome::Unknown => out.transactions.unknown += 1,
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    let Some(from_index) = from_index else {
        return Err(HarnessError::BadInput(format!(
            "{}: the pipeline read `{}`, which is not a workload topic of this run",
            record_path.display(),
            record.from
        )));
    };
    for path in &finals {
        let mut r = LogReader::open(path).map_err(|e| bad(path, &e))?;
        while let Some(e) = r.next_event().map_err(|e| bad(path, &e))? {
            if usize::from(e.topic) != from_index {
                continue;
            }
            match e.kind {
                EventKind::Received => {
                    input.entry(e.producer).or_default().insert(e.seq);
                }
                EventKind::ReadComplete => {
                    if let Some(c) = input_complete.get_mut(e.partition.max(0) as usize) {
                        *c = true;
                    }
                }
                _ => {}
            }
        }
    }
    out.input_incomplete = incomplete(&record.from, &input_complete);
    out.input_records = input.values().map(RoaringTreemap::len).sum();

    // what the output holds, each identity counted
    let output_path = run_dir.join(OUTPUT_READ_LOG);
    let mut once: BTreeMap<u32, RoaringTreemap> = BTreeMap::new();
    let mut again: BTreeMap<u32, RoaringTreemap> = BTreeMap::new();
    let mut output_complete: Vec<bool> = Vec::new();
    let mut r = LogReader::open(&output_path).map_err(|e| {
        bad(
            &output_path,
            &format!("{e} (the output topic's final read did not leave its log)"),
        )
    })?;
    while let Some(e) = r.next_event().map_err(|e| bad(&output_path, &e))? {
        match e.kind {
            EventKind::Received => {
                out.output_records += 1;
                let seen = once.entry(e.producer).or_default();
                if !seen.insert(e.seq) {
                    out.duplicates += 1;
                    again.entry(e.producer).or_default().insert(e.seq);
                    if out.duplicate_examples.len() < EXAMPLES {
                        out.duplicate_examples.push(format!(
                            "producer {} seq {}: copied again at {}/{} {}",
                            e.producer, e.seq, record.to, e.partition, e.offset
                        ));
                    }
                }
                let in_input = input.get(&e.producer).is_some_and(|s| s.contains(e.seq));
                if !in_input {
                    out.not_in_input += 1;
                    if out.not_in_input_examples.len() < EXAMPLES {
                        out.not_in_input_examples.push(format!(
                            "producer {} seq {} at {}/{} {}",
                            e.producer, e.seq, record.to, e.partition, e.offset
                        ));
                    }
                }
            }
            EventKind::Foreign | EventKind::Corrupt => out.output_not_ours += 1,
            EventKind::ReadComplete => {
                let p = e.partition.max(0) as usize;
                if output_complete.len() <= p {
                    output_complete.resize(p + 1, false);
                }
                output_complete[p] = true;
            }
            EventKind::ReadIncomplete => {
                let p = e.partition.max(0) as usize;
                if output_complete.len() <= p {
                    output_complete.resize(p + 1, false);
                }
            }
            _ => {}
        }
    }
    // the output has the input's partition count (the run makes it so)
    output_complete.resize(output_complete.len().max(from_partitions as usize), false);
    out.output_incomplete = incomplete(&record.to, &output_complete);

    // judged against the input: copied once, or never
    for (producer, seqs) in &input {
        let copied = once.get(producer).map(|c| seqs & c).unwrap_or_default();
        let twice = again.get(producer).map(|a| seqs & a).unwrap_or_default();
        out.copied_once += copied.len() - twice.len();
        out.missing += seqs.len() - copied.len();
    }
    if out.missing > 0 {
        // where the first missing ones sit in the input: one more pass over the final read
        'finals: for path in &finals {
            let mut r = LogReader::open(path).map_err(|e| bad(path, &e))?;
            while let Some(e) = r.next_event().map_err(|e| bad(path, &e))? {
                if usize::from(e.topic) != from_index || e.kind != EventKind::Received {
                    continue;
                }
                if !once.get(&e.producer).is_some_and(|c| c.contains(e.seq)) {
                    out.missing_examples.push(format!(
                        "{}/{} producer {} seq {} at offset {}",
                        record.from, e.partition, e.producer, e.seq, e.offset
                    ));
                    if out.missing_examples.len() >= EXAMPLES {
                        break 'finals;
                    }
                }
            }
        }
    }
    Ok(Some(out))
}

/// `topic/p` for each partition not read to its end.
fn incomplete(topic: &str, complete: &[bool]) -> Vec<String> {
    complete
        .iter()
        .enumerate()
        .filter(|(_, c)| !**c)
        .map(|(p, _)| format!("{topic}/{p}"))
        .collect()
}
