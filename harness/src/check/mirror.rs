//! The mirror check: is every record acked on the source on the target cluster? By record
//! identity (producer, sequence number from the record header), never by offset — offsets
//! differ across clusters.
//!
//! What the run leaves for it: `mirror/mirror.json` ([`MirrorRecord`]: the topics copied,
//! the copy's setting, the *cut*) and `mirror/final-read-target.log`, a final read of the
//! target cluster by the same worker as the source's final read. The cut is the time up to
//! which the copy is known complete: the end of the run when MirrorMaker still ran then
//! (the run waited for it to copy everything once the producers had stopped), else the
//! start of the last `mirror-wait` that succeeded before a `mirror-stop` (that wait
//! confirmed everything the source held at its start was copied). Records acked after the
//! cut are counted, not judged.

use std::collections::BTreeMap;
use std::path::Path;

use roaring::RoaringTreemap;

/// Keyed by packed record identity: Fx hashing, as the checker's maps.
type HashMap<K, V> = rustc_hash::FxHashMap<K, V>;
use serde::{Deserialize, Serialize};
use workers::{EventKind, LogReader, Role, TopicSpec};

use crate::error::HarnessError;

/// Where the run keeps what the mirror check reads (in the run directory).
pub const MIRROR_DIR: &str = "mirror";
/// The run's record of the copy.
pub const MIRROR_RECORD: &str = "mirror/mirror.json";
/// The final read of the target cluster.
pub const TARGET_READ_LOG: &str = "mirror/final-read-target.log";
/// The end-of-run check of the target cluster's own metadata (its znodes against what its
/// brokers report), as `metadata-check.json` is the source's.
pub const TARGET_METADATA_CHECK: &str = "mirror/metadata-check-target.json";

/// The target's final read for the main checker (the records clients wrote there after a
/// `mirror-switch`), when the run read the target.
pub fn target_read(run_dir: &Path) -> Result<Option<super::TargetRead>, HarnessError> {
    let record: Option<MirrorRecord> = super::read_json(&run_dir.join(MIRROR_RECORD))?;
    Ok(record
        .filter(|r| !r.read_on_target.is_empty())
        .map(|r| super::TargetRead {
            log: run_dir.join(TARGET_READ_LOG),
            topics: r.read_on_target,
        }))
}

/// What the run says of the copy, for the check.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MirrorRecord {
    /// The topics MirrorMaker copied.
    pub topics: Vec<String>,
    /// The transactional copy (exactly-once source support).
    pub exactly_once: bool,
    /// Records acked up to this time (ms since epoch) must be on the target; `None`: no
    /// time is (the copy was never confirmed caught up).
    pub cut_ms: Option<u64>,
    /// Why the cut is there.
    pub cut_reason: String,
    /// The topics copied that exist on the target, in the workload's order: what its final
    /// read read (its log's topic indexes are in this list).
    #[serde(default)]
    pub read_on_target: Vec<String>,
    /// The topics copied that the target did not have at the end (MirrorMaker never made
    /// them): not read there, every record of theirs missing.
    #[serde(default)]
    pub absent_on_target: Vec<String>,
    /// The workload's consumer group as MirrorMaker translated it, read once the copy had
    /// caught up at the end (`None`: no consumers, or MirrorMaker did not run to the end).
    #[serde(default)]
    pub group: Option<GroupOffsets>,
    /// Why MirrorMaker, still running at the end, did not catch up then (it died, or did not
    /// copy everything within the final read's timeout).
    #[serde(default)]
    pub end_catch_up_error: Option<String>,
}

/// A consumer group's committed offsets on both clusters.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupOffsets {
    /// The group.
    pub group: String,
    /// Its committed offsets on the source: `[topic, partition, offset]`.
    pub source: Vec<(String, i32, i64)>,
    /// The offsets MirrorMaker synced to the same group on the target.
    pub target: Vec<(String, i32, i64)>,
    /// Why the offsets were read when they were (or what was missing).
    pub note: String,
}

/// What a consumer switched to the target at the synced offsets would do, by record
/// identity: the source offset each record has against the target offset it has.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct GroupTranslation {
    /// The group.
    pub group: String,
    /// Partitions with a committed offset on the source.
    pub partitions: u64,
    /// Of those, the ones with an offset synced on the target.
    pub translated: u64,
    /// Records the group had not read on the source (at or past its committed offset) that
    /// sit below the synced offset on the target: a consumer switched over never reads them.
    pub skipped: u64,
    /// Records the group had read on the source that sit at or past the synced offset on
    /// the target: a consumer switched over reads them again (MirrorMaker translates to the
    /// last offset sync at or before the committed offset, so some are expected).
    pub reread: u64,
    /// The most records read again on one partition.
    pub max_reread: u64,
    /// Partitions committed on the source with no offset on the target: a consumer switched
    /// over starts there by its `auto.offset.reset` (everything again, or a skip to the end).
    pub untranslated: Vec<String>,
    /// Per partition: `orders/0: source 5034 → target 5001 (33 read again, 0 skipped)`.
    pub partitions_detail: Vec<String>,
    /// What the offsets were read at.
    pub note: String,
}

/// The mirror section of the report.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MirrorCheck {
    /// The topics copied.
    pub topics: Vec<String>,
    /// The transactional copy.
    pub exactly_once: bool,
    /// The cut, ms since run start (`None`: never caught up).
    pub cut_ms: Option<u64>,
    /// Why the cut is there.
    pub cut_reason: String,
    /// Why MirrorMaker, still running at the end, did not catch up then (judged: a copy that
    /// cannot keep up is not a whole copy, whatever an earlier cut says).
    pub end_catch_up_error: Option<String>,
    /// Records acked on the source (topics copied) up to the cut: what the target must hold.
    pub expected: u64,
    /// Of `expected`, found on the target.
    pub copied: u64,
    /// Of `expected`, not on the target: the copy lost them.
    pub missing: u64,
    /// Extra copies on the target (a record at two or more offsets counts once per extra
    /// copy): at-least-once MirrorMaker writes again what a task had copied but not
    /// committed when it restarted.
    pub duplicates: u64,
    /// Records acked after the cut that are on the target anyway (not judged).
    pub copied_after_cut: u64,
    /// Records of ours the target holds.
    pub target_records: u64,
    /// The sum of the target partitions' end offsets its read reached (partitions read to
    /// the end): above `target_records` by the commit markers of a transactional copy (and
    /// by records not ours); equal for an at-least-once copy of our topics.
    pub target_end_offsets: u64,
    /// Target partitions the final read could not read to their end (missing records may
    /// be beyond what it reached).
    pub target_incomplete: Vec<String>,
    /// The first missing records: `topic/partition producer:seq acked at offset O, t+S s`.
    pub missing_examples: Vec<String>,
    /// The first duplicated records: `topic/partition producer:seq at offsets A, B`.
    pub duplicate_examples: Vec<String>,
    /// The consumer group's offsets as MirrorMaker translated them (when read).
    pub group: Option<GroupTranslation>,
    /// The copy's lag over time, from a look every second.
    pub lag: MirrorLag,
    /// The target cluster's own metadata check at the end (`None`: not run — the run
    /// ended before it, or the scenario turned `kafka_metadata` off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_metadata: Option<crate::zk::metadata::MetadataCheck>,
}

/// A copy that stood still this long while records waited is a stall: longer than the
/// copy's own cadence (offsets committed every second, looked at every second).
pub const STALL_MS: u64 = 3_000;

/// The copy's lag over time.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MirrorLag {
    /// Looks taken (about one a second from the first `mirror-start` to the end).
    pub samples: u64,
    /// The most records the copy was behind the source at one look.
    pub max_behind: u64,
    /// Stretches of at least [`STALL_MS`] in which the copy made no progress while the
    /// source held records it had not copied (MirrorMaker stopped, crashed, or stuck).
    pub stalls: Vec<MirrorStall>,
}

/// A stretch in which the copy stood still with records waiting.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MirrorStall {
    /// From the last look that saw progress, ms since run start.
    pub start_ms: u64,
    /// To the first look that saw progress again (or the last look), ms since run start.
    pub end_ms: u64,
    /// `end_ms - start_ms`.
    pub duration_ms: u64,
    /// The most records behind during it.
    pub max_behind: u64,
    /// The step (or phase) it began in.
    pub step: String,
    /// True when no progress ended it (the run ended first).
    pub open: bool,
}

/// The stalls in `samples` (time order).
fn stalls(
    samples: &[crate::kafka::mirror::LagSample],
    t0_ms: u64,
    attribution: &super::Attribution,
) -> Vec<MirrorStall> {
    let mut out = Vec::new();
    // (start: the last look with progress, the most behind since)
    let mut open: Option<(u64, u64)> = None;
    let close = |out: &mut Vec<MirrorStall>, start: u64, end: u64, behind: u64, open: bool| {
        if end.saturating_sub(start) >= STALL_MS {
            let start_ms = start.saturating_sub(t0_ms);
            out.push(MirrorStall {
                start_ms,
                end_ms: end.saturating_sub(t0_ms),
                duration_ms: end - start,
                max_behind: behind,
                step: attribution.label_at(start_ms).to_string(),
                open,
            });
        }
    };
    for w in samples.windows(2) {
        let (prev, cur) = (w[0], w[1]);
        let still = cur.copied <= prev.copied && cur.behind > 0;
        match (open, still) {
            (None, true) => open = Some((prev.t_ms, cur.behind)),
            (Some((start, behind)), true) => open = Some((start, behind.max(cur.behind))),
            (Some((start, behind)), false) => {
                close(&mut out, start, cur.t_ms, behind, false);
                open = None;
            }
            (None, false) => {}
        }
    }
    if let (Some((start, behind)), Some(last)) = (open, samples.last()) {
        close(&mut out, start, last.t_ms, behind, true);
    }
    out
}

/// The looks at the copy's progress the run recorded (none when the file is missing; a
/// line cut by a crash is skipped).
fn read_lag(run_dir: &Path) -> Vec<crate::kafka::mirror::LagSample> {
    let text =
        std::fs::read_to_string(run_dir.join(crate::kafka::mirror::LAG_FILE)).unwrap_or_default();
    let mut v: Vec<crate::kafka::mirror::LagSample> = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    v.sort_by_key(|s| s.t_ms);
    v
}

/// Checks the copy from the run directory's logs and mirror record; `None` when the run
/// copied nothing (no `mirror/mirror.json`).
pub fn check_mirror(
    run_dir: &Path,
    t0_ms: u64,
    topics: &[TopicSpec],
    producer_logs: &[std::path::PathBuf],
    attribution: &super::Attribution,
) -> Result<Option<MirrorCheck>, HarnessError> {
    let record_path = run_dir.join(MIRROR_RECORD);
    let record: MirrorRecord = match std::fs::read(&record_path) {
        Ok(b) => serde_json::from_slice(&b)
            .map_err(|e| HarnessError::BadInput(format!("{}: {e}", record_path.display())))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let copied_topics: Vec<u16> = topics
        .iter()
        .enumerate()
        .filter(|(_, t)| record.topics.contains(&t.name))
        .map(|(i, _)| i as u16)
        .collect();
    // a producer's topic index is in the workload's list, the target read's in the
    // record's (the topics copied, in the workload's order)
    let name = |topic: u16, partition: i32| {
        format!(
            "{}/{partition}",
            topics
                .get(usize::from(topic))
                .map(|t| t.name.as_str())
                .unwrap_or("?")
        )
    };
    let target_name = |topic: u16, partition: i32| {
        format!(
            "{}/{partition}",
            record
                .read_on_target
                .get(usize::from(topic))
                .map(String::as_str)
                .unwrap_or("?")
        )
    };
    let cut_us = record.cut_ms.map(|c| c * 1000);
    // acked on the source, by producer: before the cut, and after it
    let mut before: BTreeMap<u32, RoaringTreemap> = BTreeMap::new();
    let mut after: BTreeMap<u32, RoaringTreemap> = BTreeMap::new();
    for path in producer_logs {
        let Ok(mut reader) = LogReader::open(path) else {
            continue;
        };
        if reader.header().role != Role::Produce {
            continue;
        }
        // producers a switch-over moved: what the target acked was never the source's
        let mut moved = std::collections::HashSet::new();
        while let Ok(Some(e)) = reader.next_event() {
            if e.kind == EventKind::Reconnected {
                if e.code == 1 {
                    moved.insert(e.producer);
                } else {
                    moved.remove(&e.producer);
                }
                continue;
            }
            if e.kind != EventKind::Acked
                || !copied_topics.contains(&e.topic)
                || moved.contains(&e.producer)
            {
                continue;
            }
            let in_time = cut_us.is_some_and(|c| e.ts_b <= c);
            let set = if in_time { &mut before } else { &mut after };
            set.entry(e.producer).or_default().insert(e.seq);
        }
    }
    // what the target holds
    let mut on_target: BTreeMap<u32, RoaringTreemap> = BTreeMap::new();
    let mut first_at: BTreeMap<(u32, u64), i64> = BTreeMap::new();
    let mut out = MirrorCheck {
        topics: record.topics.clone(),
        exactly_once: record.exactly_once,
        cut_ms: record.cut_ms.map(|c| c.saturating_sub(t0_ms)),
        cut_reason: record.cut_reason.clone(),
        end_catch_up_error: record.end_catch_up_error.clone(),
        target_metadata: super::read_json(&run_dir.join(TARGET_METADATA_CHECK))?,
        ..MirrorCheck::default()
    };
    let log = run_dir.join(TARGET_READ_LOG);
    let mut reader = if record.read_on_target.is_empty() {
        None
    } else {
        Some(LogReader::open(&log).map_err(|e| {
            HarnessError::BadInput(format!(
                "{}: {e} (the target cluster's final read did not leave its log)",
                log.display()
            ))
        })?)
    };
    let mut complete: BTreeMap<(u16, i32), bool> = BTreeMap::new();
    // (producer, seq) → where the target holds its first copy (for the group's offsets)
    let mut target_at: HashMap<u64, (u16, i32, i64)> = HashMap::default();
    while let Some(e) = match reader.as_mut() {
        Some(r) => r.next_event()?,
        None => None,
    } {
        match e.kind {
            EventKind::Received => {
                out.target_records += 1;
                if record.group.is_some() {
                    target_at.entry(pack(e.producer, e.seq)).or_insert((
                        e.topic,
                        e.partition,
                        e.offset,
                    ));
                }
                let set = on_target.entry(e.producer).or_default();
                if !set.insert(e.seq) {
                    out.duplicates += 1;
                    if out.duplicate_examples.len() < super::EXAMPLES_KEPT {
                        out.duplicate_examples.push(format!(
                            "{} {}:{} at offsets {}, {}",
                            target_name(e.topic, e.partition),
                            e.producer,
                            e.seq,
                            first_at.get(&(e.producer, e.seq)).copied().unwrap_or(-1),
                            e.offset
                        ));
                    }
                } else if out.duplicate_examples.len() < super::EXAMPLES_KEPT {
                    first_at.insert((e.producer, e.seq), e.offset);
                }
            }
            EventKind::ReadComplete => {
                complete.insert((e.topic, e.partition), true);
                out.target_end_offsets += e.offset.max(0) as u64;
            }
            EventKind::ReadIncomplete => {
                complete.entry((e.topic, e.partition)).or_insert(false);
            }
            _ => {}
        }
    }
    out.target_incomplete = complete
        .iter()
        .filter(|(_, done)| !**done)
        .map(|((t, p), _)| target_name(*t, *p))
        .chain(
            record
                .absent_on_target
                .iter()
                .map(|t| format!("{t} (absent on the target)")),
        )
        .collect();
    // the first missing records, found again in the producers' logs for their place
    let mut wanted: Vec<(u32, u64)> = Vec::new();
    for (producer, acked) in &before {
        out.expected += acked.len();
        let held = on_target.get(producer);
        let copied = held.map(|h| (acked & h).len()).unwrap_or(0);
        out.copied += copied;
        out.missing += acked.len() - copied;
        for seq in acked.iter() {
            if wanted.len() >= super::EXAMPLES_KEPT {
                break;
            }
            if !held.is_some_and(|h| h.contains(seq)) {
                wanted.push((*producer, seq));
            }
        }
    }
    if !wanted.is_empty() {
        for path in producer_logs {
            let Ok(mut reader) = LogReader::open(path) else {
                continue;
            };
            while let Ok(Some(e)) = reader.next_event() {
                if e.kind == EventKind::Acked
                    && wanted.contains(&(e.producer, e.seq))
                    && copied_topics.contains(&e.topic)
                {
                    out.missing_examples.push(format!(
                        "{} {}:{} acked at offset {}, t+{:.3}s",
                        name(e.topic, e.partition),
                        e.producer,
                        e.seq,
                        e.offset,
                        (e.ts_b / 1000).saturating_sub(t0_ms) as f64 / 1000.0
                    ));
                }
            }
        }
    }
    for (producer, acked) in &after {
        if let Some(h) = on_target.get(producer) {
            out.copied_after_cut += (acked & h).len();
        }
    }
    let samples = read_lag(run_dir);
    out.lag = MirrorLag {
        samples: samples.len() as u64,
        max_behind: samples.iter().map(|s| s.behind).max().unwrap_or(0),
        stalls: stalls(&samples, t0_ms, attribution),
    };
    if let Some(g) = &record.group {
        out.group = Some(translate(
            g,
            topics,
            &record.read_on_target,
            &target_at,
            producer_logs,
        ));
    }
    Ok(Some(out))
}

fn pack(producer: u32, seq: u64) -> u64 {
    (u64::from(producer) << 40) | (seq & ((1 << 40) - 1))
}

/// Compares, record by record, where the group stands on each cluster: the source's final
/// read gives each record's source offset, `target_at` its target offset.
fn translate(
    g: &GroupOffsets,
    topics: &[TopicSpec],
    read_on_target: &[String],
    target_at: &HashMap<u64, (u16, i32, i64)>,
    logs: &[std::path::PathBuf],
) -> GroupTranslation {
    let source: BTreeMap<(&str, i32), i64> = g
        .source
        .iter()
        .map(|(t, p, o)| ((t.as_str(), *p), *o))
        .collect();
    let target: BTreeMap<(&str, i32), i64> = g
        .target
        .iter()
        .map(|(t, p, o)| ((t.as_str(), *p), *o))
        .collect();
    let mut out = GroupTranslation {
        group: g.group.clone(),
        partitions: source.len() as u64,
        translated: source.keys().filter(|k| target.contains_key(*k)).count() as u64,
        untranslated: source
            .keys()
            .filter(|k| !target.contains_key(*k))
            .map(|(t, p)| format!("{t}/{p}"))
            .collect(),
        note: g.note.clone(),
        ..GroupTranslation::default()
    };
    // per partition: (read again, skipped)
    let mut per: BTreeMap<(String, i32), (u64, u64)> = BTreeMap::new();
    for path in logs {
        let Ok(mut reader) = LogReader::open(path) else {
            continue;
        };
        if reader.header().role != Role::FinalRead {
            continue;
        }
        while let Ok(Some(e)) = reader.next_event() {
            if e.kind != EventKind::Received {
                continue;
            }
            let Some(topic) = topics.get(usize::from(e.topic)).map(|t| t.name.as_str()) else {
                continue;
            };
            let (Some(s), Some(&(tt, tp, toff))) = (
                source.get(&(topic, e.partition)),
                target_at.get(&pack(e.producer, e.seq)),
            ) else {
                continue;
            };
            let Some(t_topic) = read_on_target.get(usize::from(tt)) else {
                continue;
            };
            let Some(t) = target.get(&(t_topic.as_str(), tp)) else {
                continue;
            };
            let entry = per.entry((topic.to_string(), e.partition)).or_default();
            let read_on_source = e.offset < *s;
            let read_after_switch = toff >= *t;
            match (read_on_source, read_after_switch) {
                (true, true) => entry.0 += 1,
                (false, false) => entry.1 += 1,
                _ => {}
            }
        }
    }
    for ((t, p), (again, skipped)) in &per {
        out.reread += again;
        out.skipped += skipped;
        out.max_reread = out.max_reread.max(*again);
        out.partitions_detail.push(format!(
            "{t}/{p}: source {} → target {} ({again} read again, {skipped} skipped)",
            source.get(&(t.as_str(), *p)).copied().unwrap_or(-1),
            target.get(&(t.as_str(), *p)).copied().unwrap_or(-1),
        ));
    }
    out
}
