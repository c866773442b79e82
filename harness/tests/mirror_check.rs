//! The mirror check (MirrorMaker 2's copy, by record identity) on simulated logs: a clean
//! copy finds nothing; a record the target lacks, a record copied twice, a record acked
//! after the cut, a topic never made on the target and a copy never seen caught up are each
//! found exactly — and judged.

use std::path::Path;

use harness::check::mirror::{check_mirror, MirrorRecord, MIRROR_RECORD, TARGET_READ_LOG};
use workers::log::FORMAT_VERSION;
use workers::{Event, EventKind, LogHeader, LogWriter, Role, TopicSpec};

const T0_MS: u64 = 1_700_000_000_000;

fn us(rel_ms: u64) -> u64 {
    (T0_MS + rel_ms) * 1000
}

fn no_steps() -> harness::check::Attribution {
    harness::check::Attribution::from_timeline(&[], T0_MS, 500)
}

fn header(role: Role) -> LogHeader {
    LogHeader {
        version: FORMAT_VERSION,
        role,
        clock: 1,
        worker: 0,
        flags: 0,
        start_us: us(0),
        run_id: "sim".into(),
    }
}

fn topics() -> Vec<TopicSpec> {
    ["orders", "audit"]
        .iter()
        .map(|n| TopicSpec {
            name: n.to_string(),
            partitions: 2,
        })
        .collect()
}

/// One record acked on the source: (topic index, producer, seq, ack ms).
type Acked = (u16, u32, u64, u64);

/// Writes a producer log with `acked`, the target's read with `on_target` (topic index in
/// the target's list, producer, seq, offset), the mirror record, and checks.
fn run(
    acked: &[Acked],
    on_target: &[(u16, u32, u64, i64)],
    record: MirrorRecord,
) -> harness::check::mirror::MirrorCheck {
    run_in(tempfile::tempdir().unwrap(), acked, on_target, record)
}

fn run_in(
    dir: tempfile::TempDir,
    acked: &[Acked],
    on_target: &[(u16, u32, u64, i64)],
    record: MirrorRecord,
) -> harness::check::mirror::MirrorCheck {
    let d = dir.path();
    std::fs::create_dir_all(d.join("logs")).unwrap();
    std::fs::create_dir_all(d.join("mirror")).unwrap();
    let producer_log = d.join("logs/produce-0.log");
    let mut w = LogWriter::create(&producer_log, &header(Role::Produce)).unwrap();
    for (i, (topic, producer, seq, ack_ms)) in acked.iter().enumerate() {
        w.append(&Event {
            topic: *topic,
            producer: *producer,
            seq: *seq,
            partition: (*seq % 2) as i32,
            offset: i as i64,
            ts_a: us(ack_ms - 5),
            ts_b: us(*ack_ms),
            ..Event::new(EventKind::Acked)
        })
        .unwrap();
    }
    w.finish().unwrap();
    if !record.read_on_target.is_empty() {
        let mut w = LogWriter::create(&d.join(TARGET_READ_LOG), &header(Role::FinalRead)).unwrap();
        for (topic, producer, seq, offset) in on_target {
            w.append(&Event {
                topic: *topic,
                producer: *producer,
                seq: *seq,
                partition: (*seq % 2) as i32,
                offset: *offset,
                ts_a: us(1),
                ts_b: us(100_000),
                ..Event::new(EventKind::Received)
            })
            .unwrap();
        }
        for t in 0..record.read_on_target.len() as u16 {
            for p in 0..2 {
                w.append(&Event {
                    topic: t,
                    partition: p,
                    offset: 1_000,
                    ..Event::new(EventKind::ReadComplete)
                })
                .unwrap();
            }
        }
        w.finish().unwrap();
    }
    std::fs::write(d.join(MIRROR_RECORD), serde_json::to_vec(&record).unwrap()).unwrap();
    check_mirror(d, T0_MS, &topics(), &[producer_log], &no_steps())
        .unwrap()
        .expect("a mirror record was written")
}

fn record(cut_ms: Option<u64>) -> MirrorRecord {
    MirrorRecord {
        topics: vec!["orders".into()],
        exactly_once: false,
        cut_ms: cut_ms.map(|c| T0_MS + c),
        cut_reason: "test".into(),
        read_on_target: vec!["orders".into()],
        absent_on_target: vec![],
        group: None,
        end_catch_up_error: None,
    }
}

/// 100 records of producer 1 on `orders`, acked at 10 ms each, and 50 on `audit` (not
/// copied).
fn source() -> Vec<Acked> {
    let mut v: Vec<Acked> = (0..100).map(|s| (0, 1, s, 1_000 + s * 10)).collect();
    v.extend((0..50).map(|s| (1, 2, s, 1_000 + s * 10)));
    v
}

fn target_of(acked: &[Acked]) -> Vec<(u16, u32, u64, i64)> {
    acked
        .iter()
        .filter(|a| a.0 == 0)
        .enumerate()
        .map(|(i, (_, p, s, _))| (0, *p, *s, i as i64))
        .collect()
}

#[test]
fn a_whole_copy_has_every_record_once() {
    let acked = source();
    let m = run(&acked, &target_of(&acked), record(Some(10_000)));
    assert_eq!(
        (m.expected, m.copied, m.missing, m.duplicates),
        (100, 100, 0, 0),
        "{m:?}"
    );
    assert_eq!(m.target_records, 100);
    // each of the 2 partitions read to its end at offset 1,000
    assert_eq!(m.target_end_offsets, 2_000);
    assert_eq!(m.cut_ms, Some(10_000));
    assert!(m.target_incomplete.is_empty());
}

#[test]
fn a_record_the_target_lacks_is_missing_with_its_place_on_the_source() {
    let acked = source();
    let mut target = target_of(&acked);
    target.retain(|t| t.2 != 42);
    let m = run(&acked, &target, record(Some(10_000)));
    assert_eq!((m.expected, m.copied, m.missing), (100, 99, 1), "{m:?}");
    assert_eq!(m.missing_examples.len(), 1);
    assert!(
        m.missing_examples[0].starts_with("orders/0 1:42 acked at offset 42"),
        "{:?}",
        m.missing_examples
    );
}

#[test]
fn a_record_copied_twice_is_a_duplicate_with_both_offsets() {
    let acked = source();
    let mut target = target_of(&acked);
    target.push((0, 1, 7, 500));
    let m = run(&acked, &target, record(Some(10_000)));
    assert_eq!((m.missing, m.duplicates), (0, 1), "{m:?}");
    assert_eq!(m.duplicate_examples, ["orders/1 1:7 at offsets 7, 500"]);
}

#[test]
fn records_acked_after_the_cut_are_counted_not_expected() {
    let acked = source();
    // the cut at 1,495 ms: seq 0..=49 of `orders` before it; the target has only 0..=59
    let target: Vec<_> = target_of(&acked).into_iter().filter(|t| t.2 < 60).collect();
    let m = run(&acked, &target, record(Some(1_495)));
    assert_eq!((m.expected, m.copied, m.missing), (50, 50, 0), "{m:?}");
    assert_eq!(m.copied_after_cut, 10);
}

#[test]
fn a_copy_never_seen_caught_up_expects_nothing_and_says_so() {
    let acked = source();
    let m = run(&acked, &target_of(&acked), record(None));
    assert_eq!((m.expected, m.cut_ms), (0, None), "{m:?}");
    assert_eq!(m.copied_after_cut, 100);
}

#[test]
fn a_topic_never_made_on_the_target_is_all_missing_and_named() {
    let acked = source();
    let mut r = record(Some(10_000));
    r.read_on_target.clear();
    r.absent_on_target = vec!["orders".into()];
    let m = run(&acked, &[], r);
    assert_eq!((m.expected, m.missing), (100, 100), "{m:?}");
    assert_eq!(m.target_incomplete, ["orders (absent on the target)"]);
}

#[test]
fn a_run_without_mirrormaker_has_no_mirror_section() {
    let dir = tempfile::tempdir().unwrap();
    assert!(check_mirror(dir.path(), T0_MS, &topics(), &[], &no_steps())
        .unwrap()
        .is_none());
}

/// A group translated at `target` offsets, against a source where producer 1's records
/// 0..100 sit at source offset = seq on partition `seq % 2`... (here: one partition, 0).
fn translated(
    source_committed: i64,
    target_committed: i64,
    shift: i64,
) -> harness::check::mirror::GroupTranslation {
    use harness::check::mirror::GroupOffsets;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir_all(d.join("logs")).unwrap();
    std::fs::create_dir_all(d.join("mirror")).unwrap();
    // the source: 100 records of producer 1 on orders/0, at offsets 0..100, all acked
    let producer_log = d.join("logs/produce-0.log");
    let mut w = LogWriter::create(&producer_log, &header(Role::Produce)).unwrap();
    for seq in 0..100u64 {
        w.append(&Event {
            producer: 1,
            seq,
            partition: 0,
            offset: seq as i64,
            ts_a: us(1_000),
            ts_b: us(1_005),
            ..Event::new(EventKind::Acked)
        })
        .unwrap();
    }
    w.finish().unwrap();
    let read = |path: &Path, offset_of: &dyn Fn(u64) -> i64| {
        let mut w = LogWriter::create(path, &header(Role::FinalRead)).unwrap();
        for seq in 0..100u64 {
            w.append(&Event {
                producer: 1,
                seq,
                partition: 0,
                offset: offset_of(seq),
                ts_a: us(1_000),
                ts_b: us(90_000),
                ..Event::new(EventKind::Received)
            })
            .unwrap();
        }
        w.append(&Event {
            partition: 0,
            offset: offset_of(99) + 1,
            ..Event::new(EventKind::ReadComplete)
        })
        .unwrap();
        w.finish().unwrap();
    };
    let final_read = d.join("logs/final-read-0.log");
    read(&final_read, &|seq| seq as i64);
    // on the target every record sits `shift` offsets later (a copy that began with
    // something else, or transaction markers)
    read(&d.join(TARGET_READ_LOG), &|seq| seq as i64 + shift);
    let record = MirrorRecord {
        group: Some(GroupOffsets {
            group: "g".into(),
            source: vec![("orders".into(), 0, source_committed)],
            target: vec![("orders".into(), 0, target_committed)],
            note: "test".into(),
        }),
        ..record(Some(10_000))
    };
    std::fs::write(d.join(MIRROR_RECORD), serde_json::to_vec(&record).unwrap()).unwrap();
    check_mirror(
        d,
        T0_MS,
        &topics(),
        &[producer_log, final_read],
        &no_steps(),
    )
    .unwrap()
    .unwrap()
    .group
    .expect("the group was compared")
}

#[test]
fn a_group_synced_exactly_skips_nothing_and_reads_nothing_again() {
    // the group had read 0..60 on the source; on the target those are at 10..70
    let g = translated(60, 70, 10);
    assert_eq!(
        (g.partitions, g.translated, g.skipped, g.reread),
        (1, 1, 0, 0),
        "{g:?}"
    );
    assert!(g.untranslated.is_empty());
}

#[test]
fn a_group_synced_behind_reads_again_and_one_synced_ahead_skips() {
    // synced 5 offsets early: records 55..60 are read a second time after the switch
    let g = translated(60, 65, 10);
    assert_eq!((g.skipped, g.reread, g.max_reread), (0, 5, 5), "{g:?}");
    // synced 3 offsets past where the group was: records 60..63 are never read
    let g = translated(60, 73, 10);
    assert_eq!((g.skipped, g.reread), (3, 0), "{g:?}");
    assert_eq!(
        g.partitions_detail,
        ["orders/0: source 60 → target 73 (0 read again, 3 skipped)"]
    );
}

#[test]
fn a_copy_standing_still_while_records_wait_is_a_stall_in_its_step() {
    use harness::kafka::mirror::{LagSample, LAG_FILE};
    let acked = source();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("mirror")).unwrap();
    // a look a second: progress to 5 s, none from 5 s until 10 s (5 s: a stall), progress
    // again, then still from 11 s until 13 s (2 s: too short to count)
    let copied = [0, 10, 20, 30, 40, 50, 50, 50, 50, 50, 60, 70, 70, 80];
    let lines: String = copied
        .iter()
        .enumerate()
        .map(|(i, c)| {
            serde_json::to_string(&LagSample {
                t_ms: T0_MS + i as u64 * 1_000,
                behind: 5 + i as u64,
                copied: *c,
            })
            .unwrap()
                + "\n"
        })
        .collect();
    std::fs::write(dir.path().join(LAG_FILE), lines).unwrap();
    let m = run_in(dir, &acked, &target_of(&acked), record(Some(10_000)));
    assert_eq!(m.lag.samples, 14);
    assert_eq!(m.lag.max_behind, 18);
    assert_eq!(m.lag.stalls.len(), 1, "{:?}", m.lag.stalls);
    let s = &m.lag.stalls[0];
    assert_eq!(
        (s.start_ms, s.end_ms, s.duration_ms, s.open),
        (5_000, 10_000, 5_000, false)
    );
    assert_eq!(s.max_behind, 14);
}
