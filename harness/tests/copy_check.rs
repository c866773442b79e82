//! The copy check (the exactly-once pipeline, by record identity) on simulated logs: a
//! clean copy finds nothing; a record never copied, a record copied twice, a copy of a
//! record the input does not hold, partitions not read to their end and a pipeline that did
//! not catch up are each found exactly — and judged; the pipeline's transactions are
//! counted from its own log.

use std::path::{Path, PathBuf};

use harness::check::copy::{check_copy, CopyCheck, CopyRecord, COPY_RECORD, OUTPUT_READ_LOG};
use workers::log::{TransactionEvent, TransactionOutcome, FORMAT_VERSION};
use workers::{Event, EventKind, LogHeader, LogWriter, Role, TopicSpec};

fn header(role: Role) -> LogHeader {
    LogHeader {
        version: FORMAT_VERSION,
        role,
        clock: 1,
        worker: 0,
        flags: 0,
        start_us: 1,
        run_id: "sim".into(),
    }
}

/// The workload's topics: the pipeline reads `ledger` (index 1, two partitions).
fn topics() -> Vec<TopicSpec> {
    vec![
        TopicSpec {
            name: "audit".into(),
            partitions: 2,
        },
        TopicSpec {
            name: "ledger".into(),
            partitions: 2,
        },
    ]
}

/// A record: (producer, seq); its partition is `seq % 2`.
type Id = (u32, u64);

fn received(topic: u16, (producer, seq): Id, offset: i64) -> Event {
    Event {
        topic,
        producer,
        seq,
        partition: (seq % 2) as i32,
        offset,
        ..Event::new(EventKind::Received)
    }
}

fn complete(topic: u16, partition: i32) -> Event {
    Event {
        topic,
        partition,
        offset: 1_000,
        ..Event::new(EventKind::ReadComplete)
    }
}

struct Sim {
    dir: tempfile::TempDir,
    /// What the main final read found in `ledger` (and one record of `audit`, which the
    /// pipeline does not read).
    input: Vec<Id>,
    /// What the output's final read found, in order.
    output: Vec<Id>,
    /// Input / output partitions read to their end.
    input_complete: bool,
    output_complete: bool,
    caught_up: bool,
    /// The pipeline's rounds: (records, outcome).
    rounds: Vec<(u64, TransactionOutcome)>,
}

impl Sim {
    fn new(input: &[Id], output: &[Id]) -> Sim {
        Sim {
            dir: tempfile::tempdir().unwrap(),
            input: input.to_vec(),
            output: output.to_vec(),
            input_complete: true,
            output_complete: true,
            caught_up: true,
            rounds: vec![(input.len() as u64, TransactionOutcome::Committed)],
        }
    }

    fn check(&self) -> CopyCheck {
        let d = self.dir.path();
        std::fs::create_dir_all(d.join("logs")).unwrap();
        std::fs::create_dir_all(d.join("copy")).unwrap();
        let final_log = d.join("logs/final-read-0.log");
        let mut w = LogWriter::create(&final_log, &header(Role::FinalRead)).unwrap();
        // a record of another topic: not the pipeline's business
        w.append(&received(0, (9, 9), 0)).unwrap();
        for (i, id) in self.input.iter().enumerate() {
            w.append(&received(1, *id, i as i64)).unwrap();
        }
        for p in 0..2 {
            w.append(&complete(0, p)).unwrap();
            if self.input_complete || p == 0 {
                w.append(&complete(1, p)).unwrap();
            }
        }
        w.finish().unwrap();
        let copy_log = d.join("logs/copy-0.log");
        let mut w = LogWriter::create(&copy_log, &header(Role::Copy)).unwrap();
        for (i, id) in self.input.iter().enumerate() {
            w.append(&received(1, *id, i as i64)).unwrap();
        }
        for (n, (records, outcome)) in self.rounds.iter().enumerate() {
            w.append(&Event::for_transaction(
                0,
                0,
                &TransactionEvent {
                    first_seq: n as u64,
                    records: *records,
                    outcome: *outcome,
                    began_us: 1,
                    ended_us: 2,
                },
            ))
            .unwrap();
        }
        w.finish().unwrap();
        let mut w = LogWriter::create(&d.join(OUTPUT_READ_LOG), &header(Role::FinalRead)).unwrap();
        for (i, id) in self.output.iter().enumerate() {
            w.append(&received(0, *id, i as i64)).unwrap();
        }
        for p in 0..2 {
            if self.output_complete || p == 1 {
                w.append(&complete(0, p)).unwrap();
            }
        }
        w.finish().unwrap();
        let record = CopyRecord {
            from: "ledger".into(),
            to: "ledger-copy".into(),
            group: "kmh-sim-copy".into(),
            caught_up: self.caught_up,
            catch_up_note: if self.caught_up {
                "caught up in 0.5 s".into()
            } else {
                "not within drain_timeout".into()
            },
        };
        std::fs::write(d.join(COPY_RECORD), serde_json::to_vec(&record).unwrap()).unwrap();
        let logs: Vec<PathBuf> = vec![final_log, copy_log];
        check_copy(d, &topics(), &logs)
            .unwrap()
            .expect("a copy record was written")
    }
}

fn ids(n: u64) -> Vec<Id> {
    (0..n).map(|s| (1 + (s % 2) as u32, s)).collect()
}

#[test]
fn a_clean_copy_finds_nothing() {
    let all = ids(20);
    let c = Sim::new(&all, &all).check();
    assert_eq!(c.input_records, 20, "{c:?}");
    assert_eq!(c.copied_once, 20);
    assert_eq!((c.missing, c.duplicates, c.not_in_input), (0, 0, 0));
    assert_eq!(c.output_records, 20);
    assert!(c.input_incomplete.is_empty() && c.output_incomplete.is_empty());
    assert_eq!(c.transactions.committed, 1);
    assert_eq!(c.transactions.records_committed, 20);
    assert_eq!(c.transactions.records_read, 20);
    assert!(c.missing_examples.is_empty() && c.duplicate_examples.is_empty());
}

#[test]
fn a_record_never_copied_is_missing_with_where_it_sits_in_the_input() {
    let all = ids(20);
    let output: Vec<Id> = all.iter().copied().filter(|id| id.1 != 7).collect();
    let c = Sim::new(&all, &output).check();
    assert_eq!(
        (c.missing, c.copied_once, c.duplicates),
        (1, 19, 0),
        "{c:?}"
    );
    assert_eq!(
        c.missing_examples,
        vec!["ledger/1 producer 2 seq 7 at offset 7".to_string()]
    );
}

#[test]
fn a_record_copied_twice_is_a_duplicate_and_not_copied_once() {
    let all = ids(10);
    let mut output = all.clone();
    output.push(all[3]);
    output.push(all[3]);
    output.push(all[4]);
    let c = Sim::new(&all, &output).check();
    assert_eq!(c.duplicates, 3, "{c:?}");
    assert_eq!(c.copied_once, 8);
    assert_eq!(c.missing, 0);
    assert_eq!(c.output_records, 13);
    assert!(
        c.duplicate_examples[0].starts_with("producer 2 seq 3: copied again at ledger-copy/1 10"),
        "{:?}",
        c.duplicate_examples
    );
}

#[test]
fn a_copy_of_a_record_the_input_does_not_hold_is_counted_apart() {
    // an aborted transaction's record copied by a pipeline reading uncommitted: the input's
    // (read_committed) final read does not hold it
    let all = ids(6);
    let mut output = all.clone();
    output.push((1, 100));
    let c = Sim::new(&all, &output).check();
    assert_eq!(
        (c.not_in_input, c.missing, c.duplicates),
        (1, 0, 0),
        "{c:?}"
    );
    assert_eq!(
        c.not_in_input_examples,
        vec!["producer 1 seq 100 at ledger-copy/0 6".to_string()]
    );
}

#[test]
fn partitions_not_read_to_their_end_are_named() {
    let all = ids(4);
    let mut sim = Sim::new(&all, &all);
    sim.input_complete = false;
    sim.output_complete = false;
    let c = sim.check();
    assert_eq!(c.input_incomplete, vec!["ledger/1".to_string()]);
    assert_eq!(c.output_incomplete, vec!["ledger-copy/0".to_string()]);
}

#[test]
fn the_pipelines_transactions_are_counted_by_outcome() {
    let all = ids(4);
    let mut sim = Sim::new(&all, &all);
    sim.rounds = vec![
        (3, TransactionOutcome::Committed),
        (2, TransactionOutcome::AbortedAfterError),
        (2, TransactionOutcome::Unknown),
        (1, TransactionOutcome::Committed),
    ];
    let c = sim.check();
    assert_eq!(c.transactions.committed, 2);
    assert_eq!(c.transactions.aborted, 1);
    assert_eq!(c.transactions.unknown, 1);
    assert_eq!(c.transactions.records_committed, 4);
}

#[test]
fn no_record_means_no_pipeline_ran() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(check_copy(dir.path(), &topics(), &[]).unwrap(), None);
}

/// The judged expectations of a scenario with a pipeline, for these findings.
fn judged(findings: &harness::check::Findings, expect: &str) -> Vec<(String, bool, String)> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.toml");
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/exactly-once-pipeline.toml"),
    )
    .unwrap();
    // the shipped scenario's own bounds, then the test's in their place
    let text = match text.split_once("[expect]") {
        Some((head, _)) => format!("{head}[expect]\n{expect}"),
        None => text,
    };
    std::fs::write(&path, text).unwrap();
    let scenario = harness::scenario::load(&path).unwrap();
    harness::report::judge(&scenario, findings)
        .into_iter()
        .filter(|r| r.name.starts_with("copy_"))
        .map(|r| (r.name, r.ok, r.actual))
        .collect()
}

fn findings_with(copy: Option<CopyCheck>) -> harness::check::Findings {
    harness::check::Findings {
        copy,
        ..Default::default()
    }
}

#[test]
fn the_copy_is_judged_missing_duplicates_and_not_in_input_each_with_its_bound() {
    let all = ids(10);
    let clean = Sim::new(&all, &all).check();
    let r = judged(&findings_with(Some(clean.clone())), "");
    assert_eq!(r.len(), 3, "{r:?}");
    assert!(r.iter().all(|(_, ok, _)| *ok), "{r:?}");

    let mut output = all.clone();
    output.remove(2);
    output.push(all[5]);
    output.push((2, 999));
    let bad = Sim::new(&all, &output).check();
    let r = judged(&findings_with(Some(bad.clone())), "");
    assert!(r.iter().all(|(_, ok, _)| !*ok), "{r:?}");
    // bounds loosened: each passes again
    let r = judged(
        &findings_with(Some(bad)),
        "copy_missing = 1\ncopy_duplicates = \"any\"\ncopy_not_in_input = \"<= 1\"\n",
    );
    assert!(r.iter().all(|(_, ok, _)| *ok), "{r:?}");
}

#[test]
fn nothing_missing_is_no_pass_when_the_picture_is_not_whole() {
    let all = ids(4);
    for (what, sim) in [
        ("not caught up", {
            let mut s = Sim::new(&all, &all);
            s.caught_up = false;
            s
        }),
        ("input not read to its end", {
            let mut s = Sim::new(&all, &all);
            s.input_complete = false;
            s
        }),
        ("output not read to its end", {
            let mut s = Sim::new(&all, &all);
            s.output_complete = false;
            s
        }),
    ] {
        let r = judged(&findings_with(Some(sim.check())), "");
        let missing = r.iter().find(|(n, _, _)| n == "copy_missing").unwrap();
        assert!(!missing.1, "{what}: {r:?}");
        assert!(missing.2.starts_with("0 ("), "{what}: {}", missing.2);
    }
    // no record of the pipeline at all: unchecked, not passed
    let r = judged(&findings_with(None), "");
    assert_eq!(r.len(), 3);
    assert!(
        r.iter()
            .all(|(_, ok, a)| !*ok && a.starts_with("not checked")),
        "{r:?}"
    );
}
