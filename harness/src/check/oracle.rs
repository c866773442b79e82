//! The second oracle (`[check] oracle = "kafka-verifiable"`), judged from what it wrote.
//!
//! Kafka's own verifier ran beside the workers on a topic of its own (placed and configured
//! as the first workload topic, so that the steps' faults hit it the same way): one
//! `VerifiableProducer` (increasing integers as values; a JSON line per acknowledged or
//! failed send) and one `VerifiableConsumer --verbose` in its own group (a JSON line per
//! record received). After the run, a second `VerifiableConsumer` in a fresh group read the
//! topic from its start to the end offsets of that moment: the final read.
//!
//! The judgement is kafkatest's (`validate_delivery` in `kafkatest/utils/util.py`, which
//! `ProduceConsumeValidateTest` applies): the acked values missing from the consumed ones
//! are lost; consumed values seen more than once are duplicates, a failure only with
//! idempotence. (kafkatest may then look for missing values in the brokers' data files to
//! tell loss in the log from loss on the way to its consumer; a final read of the log from
//! its start answers that question here.) It is applied to the final read, because the
//! consumer beside the workers counts a record it read before an unclean election truncated
//! it as consumed — the loss such a run exists to find can be invisible to it (both figures
//! are reported). The harness's own verdict on loss must agree with it (`oracle_agrees` in
//! the report).
//!
//! The output formats (Kafka 3.9 and 4.x, Jackson on the tools' event classes):
//! `{"timestamp":…,"name":"producer_send_success","key":null,"value":"17","topic":…,
//! "partition":0,"offset":42}`, `…"name":"producer_send_error",…,"value":"18","exception":…`,
//! `{"timestamp":…,"name":"record_data","key":null,"value":"17","topic":…,"partition":0,
//! "offset":42}`. Other events (`startup_complete`, `tool_data`, `records_consumed`,
//! `partitions_assigned`…) are not needed; a line that is not JSON (a torn last line of a
//! killed tool) is counted and skipped.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::HarnessError;

/// The oracle's directory in a run directory.
pub const ORACLE_DIR: &str = "oracle";
/// The producer's output.
pub const PRODUCER_OUT: &str = "oracle/producer.jsonl";
/// The output of the consumer that ran beside the workers.
pub const LIVE_OUT: &str = "oracle/consumer.jsonl";
/// The final read's output.
pub const FINAL_OUT: &str = "oracle/final-read.jsonl";
/// What the run recorded about the oracle (written when its final read ended).
pub const ORACLE_RECORD: &str = "oracle/oracle.json";
/// How many lost values the report names.
const EXAMPLES: usize = 10;

/// What the run recorded about the oracle beside its outputs (`oracle/oracle.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OracleRecord {
    /// `kafka-verifiable`.
    pub kind: String,
    /// The oracle's topic.
    pub topic: String,
    /// The workload topic whose replica placement and configs it copied.
    pub mirrors: String,
    /// Its producer's `enable.idempotence` (decides whether duplicates fail, as in kafkatest).
    pub idempotence: bool,
    /// Its producer's `acks`.
    pub acks: String,
    /// The topic's end offsets when the final read started, by partition.
    pub end_offsets: BTreeMap<i32, i64>,
    /// What did not go to plan running the tools (a tool that had to be killed, a final
    /// read that timed out), for the report.
    pub notes: Vec<String>,
}

/// The oracle's findings: its own counts and kafkatest's verdict on them.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OracleCheck {
    /// `kafka-verifiable`.
    pub kind: String,
    /// The oracle's topic.
    pub topic: String,
    /// The workload topic it was placed as.
    pub mirrors: String,
    /// Sends acknowledged (`producer_send_success`).
    pub acked: u64,
    /// Sends that failed (`producer_send_error`).
    pub send_errors: u64,
    /// Records the consumer beside the workers received (re-deliveries included).
    pub live_consumed: u64,
    /// Acked values that consumer never received.
    pub live_missing: u64,
    /// Records the final read received.
    pub final_consumed: u64,
    /// The final read reached the end offset of every partition.
    pub final_read_complete: bool,
    /// Partitions it did not read to their end (`P: reached/end`).
    pub final_read_short: Vec<String>,
    /// Acked values the final read did not find: kafkatest's `missing`.
    pub lost: u64,
    /// Extra copies in the final read: kafkatest's duplicate count.
    pub duplicates: u64,
    /// kafkatest's verdict on the final read: no loss, and no duplicates when the
    /// producer was idempotent.
    pub kafkatest_ok: bool,
    /// kafkatest's message, in its words.
    pub kafkatest_message: String,
    /// The first lost values, with where their acks put them.
    pub lost_examples: Vec<String>,
    /// Lines of output that were not JSON events (a torn last line).
    pub unparsed_lines: u64,
    /// What did not go to plan running the tools.
    pub notes: Vec<String>,
}

/// One line of a tool's output, as far as the check needs it.
#[derive(Debug, Deserialize)]
struct ToolEvent {
    name: String,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    partition: Option<i32>,
    #[serde(default)]
    offset: Option<i64>,
}

/// The events of one output file (none when it does not exist) and how many lines were
/// not events.
fn read_events(path: &Path) -> Result<(Vec<ToolEvent>, u64), HarnessError> {
    let text = match std::fs::read(path) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(HarnessError::BadInput(format!("{}: {e}", path.display()))),
    };
    let mut events = Vec::new();
    let mut unparsed = 0;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        match serde_json::from_str::<ToolEvent>(line) {
            Ok(e) => events.push(e),
            Err(_) => unparsed += 1,
        }
    }
    Ok((events, unparsed))
}

/// The values of the `record_data` events, in order, and the highest offset read + 1 per
/// partition.
fn consumed(events: &[ToolEvent]) -> (Vec<&str>, BTreeMap<i32, i64>) {
    let mut values = Vec::new();
    let mut reached: BTreeMap<i32, i64> = BTreeMap::new();
    for e in events.iter().filter(|e| e.name == "record_data") {
        if let Some(v) = &e.value {
            values.push(v.as_str());
        }
        if let (Some(p), Some(o)) = (e.partition, e.offset) {
            let r = reached.entry(p).or_insert(0);
            *r = (*r).max(o + 1);
        }
    }
    (values, reached)
}

/// The partitions a read did not take to their end offset (`P: reached/end`).
pub fn short_partitions(end: &BTreeMap<i32, i64>, reached: &BTreeMap<i32, i64>) -> Vec<String> {
    end.iter()
        .filter(|(_, e)| **e > 0)
        .filter_map(|(p, e)| {
            let r = reached.get(p).copied().unwrap_or(0);
            (r < *e).then(|| format!("{p}: {r}/{e}"))
        })
        .collect()
}

/// A consumer's output followed while the tool still writes it: each look reads only what
/// was added since the last one (whole lines; a line being written waits for the next
/// look), so polling a long run's output costs what it grew by, not its whole size.
#[derive(Debug)]
pub struct ConsumerProgress {
    /// The output file.
    path: std::path::PathBuf,
    /// Bytes taken so far (up to the last whole line).
    offset: u64,
    /// The values received.
    pub values: HashSet<String>,
    /// The highest offset received + 1, by partition.
    pub reached: BTreeMap<i32, i64>,
}

impl ConsumerProgress {
    /// Follows the consumer output at `path` (it may not exist yet).
    pub fn new(path: &Path) -> ConsumerProgress {
        ConsumerProgress {
            path: path.to_path_buf(),
            offset: 0,
            values: HashSet::new(),
            reached: BTreeMap::new(),
        }
    }

    /// Takes in the whole lines written since the last look.
    pub fn update(&mut self) {
        use std::io::{Read, Seek, SeekFrom};
        let Ok(mut f) = std::fs::File::open(&self.path) else {
            return;
        };
        let mut added = Vec::new();
        if f.seek(SeekFrom::Start(self.offset)).is_err() || f.read_to_end(&mut added).is_err() {
            return;
        }
        let Some(last) = added.iter().rposition(|b| *b == b'\n') else {
            return;
        };
        self.offset += last as u64 + 1;
        let text = String::from_utf8_lossy(&added[..=last]);
        let events: Vec<ToolEvent> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l.trim()).ok())
            .collect();
        let (values, reached) = consumed(&events);
        self.values.extend(values.into_iter().map(String::from));
        for (p, r) in reached {
            let e = self.reached.entry(p).or_insert(0);
            *e = (*e).max(r);
        }
    }
}

/// The acked values (`producer_send_success`) of a producer output (read once, after the
/// producer stopped: the run's wait for the consumer beside the workers to catch up).
pub fn acked_values(path: &Path) -> HashSet<String> {
    read_events(path)
        .map(|(events, _)| {
            events
                .iter()
                .filter(|e| e.name == "producer_send_success")
                .filter_map(|e| e.value.clone())
                .collect()
        })
        .unwrap_or_default()
}

/// Checks the oracle of the run in `run_dir`: `None` when none ran (no oracle directory).
/// Its outputs without a record mean the run ended before the oracle's final read: the
/// check says so (nothing to judge loss against), and the report does not pass it.
pub fn check_oracle(run_dir: &Path) -> Result<Option<OracleCheck>, HarnessError> {
    if !run_dir.join(ORACLE_DIR).is_dir() {
        return Ok(None);
    }
    let record_path = run_dir.join(ORACLE_RECORD);
    let record: Option<OracleRecord> = match std::fs::read_to_string(&record_path) {
        Ok(t) => Some(
            serde_json::from_str(&t)
                .map_err(|e| HarnessError::BadInput(format!("{}: {e}", record_path.display())))?,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(HarnessError::BadInput(format!(
                "{}: {e}",
                record_path.display()
            )))
        }
    };
    let (produced, u1) = read_events(&run_dir.join(PRODUCER_OUT))?;
    let (live, u2) = read_events(&run_dir.join(LIVE_OUT))?;
    let (fin, u3) = read_events(&run_dir.join(FINAL_OUT))?;
    let mut check = judge(record.as_ref(), &produced, &live, &fin);
    check.unparsed_lines = u1 + u2 + u3;
    Ok(Some(check))
}

/// kafkatest's judgement of the three outputs.
fn judge(
    record: Option<&OracleRecord>,
    produced: &[ToolEvent],
    live: &[ToolEvent],
    fin: &[ToolEvent],
) -> OracleCheck {
    // value → where its ack put it
    let mut acked: HashMap<&str, (i32, i64)> = HashMap::new();
    let mut send_errors = 0;
    for e in produced {
        match (e.name.as_str(), &e.value) {
            ("producer_send_success", Some(v)) => {
                acked.insert(v, (e.partition.unwrap_or(-1), e.offset.unwrap_or(-1)));
            }
            ("producer_send_error", _) => send_errors += 1,
            _ => {}
        }
    }
    let (live_values, _) = consumed(live);
    let live_set: HashSet<&str> = live_values.iter().copied().collect();
    let (final_values, reached) = consumed(fin);
    let final_set: HashSet<&str> = final_values.iter().copied().collect();
    let mut lost: Vec<(&str, (i32, i64))> = acked
        .iter()
        .filter(|(v, _)| !final_set.contains(**v))
        .map(|(v, at)| (*v, *at))
        .collect();
    lost.sort_by_key(|(v, at)| (v.parse::<u64>().unwrap_or(u64::MAX), *at));
    let duplicates = (final_values.len() - final_set.len()) as u64;
    let idempotence = record.is_some_and(|r| r.idempotence);
    let mut notes = record.map(|r| r.notes.clone()).unwrap_or_default();
    let short = match record {
        Some(r) if r.end_offsets.is_empty() => vec!["(end offsets unknown)".to_string()],
        Some(r) => short_partitions(&r.end_offsets, &reached),
        None => {
            notes.push(format!(
                "no {ORACLE_RECORD}: the run ended before the oracle's final read, so loss could not be judged"
            ));
            vec!["(no final read)".to_string()]
        }
    };
    // kafkatest's validate_delivery, in its own words
    let mut message = String::new();
    let mut ok = true;
    if !lost.is_empty() {
        ok = false;
        message.push_str(&format!(
            "{} acked message did not make it to the Consumer. ",
            lost.len()
        ));
    }
    if duplicates > 0 {
        if idempotence {
            ok = false;
            message.push_str(&format!(
                "Detected {duplicates} duplicates even though idempotence was enabled. "
            ));
        } else {
            message.push_str(&format!(
                "(There are also {duplicates} duplicate messages in the log - but that is an acceptable outcome) "
            ));
        }
    }
    if ok && message.is_empty() {
        message = format!("all {} acked messages consumed, no duplicates", acked.len());
    }
    OracleCheck {
        kind: record
            .map(|r| r.kind.clone())
            .unwrap_or_else(|| "kafka-verifiable".into()),
        topic: record.map(|r| r.topic.clone()).unwrap_or_default(),
        mirrors: record.map(|r| r.mirrors.clone()).unwrap_or_default(),
        acked: acked.len() as u64,
        send_errors,
        live_consumed: live_values.len() as u64,
        live_missing: acked.keys().filter(|v| !live_set.contains(**v)).count() as u64,
        final_consumed: final_values.len() as u64,
        final_read_complete: record.is_some() && short.is_empty(),
        final_read_short: short,
        lost: lost.len() as u64,
        duplicates,
        kafkatest_ok: ok,
        kafkatest_message: message.trim_end().to_string(),
        lost_examples: lost
            .iter()
            .take(EXAMPLES)
            .map(|(v, (p, o))| format!("value {v}: acked at partition {p} offset {o}"))
            .collect(),
        unparsed_lines: 0,
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_dir(producer: &str, live: &str, fin: &str, idempotence: bool) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join(ORACLE_DIR)).unwrap();
        std::fs::write(d.path().join(PRODUCER_OUT), producer).unwrap();
        std::fs::write(d.path().join(LIVE_OUT), live).unwrap();
        std::fs::write(d.path().join(FINAL_OUT), fin).unwrap();
        let record = OracleRecord {
            kind: "kafka-verifiable".into(),
            topic: "kmh-oracle".into(),
            mirrors: "orders".into(),
            idempotence,
            acks: "all".into(),
            end_offsets: [(0, 3)].into(),
            notes: vec![],
        };
        std::fs::write(
            d.path().join(ORACLE_RECORD),
            serde_json::to_string(&record).unwrap(),
        )
        .unwrap();
        d
    }

    fn ack(v: u32, offset: i64) -> String {
        format!("{{\"timestamp\":1,\"name\":\"producer_send_success\",\"key\":null,\"value\":\"{v}\",\"topic\":\"kmh-oracle\",\"partition\":0,\"offset\":{offset}}}\n")
    }

    fn read(v: u32, offset: i64) -> String {
        format!("{{\"timestamp\":1,\"name\":\"record_data\",\"key\":null,\"value\":\"{v}\",\"topic\":\"kmh-oracle\",\"partition\":0,\"offset\":{offset}}}\n")
    }

    #[test]
    fn everything_acked_and_read_back_passes_kafkatests_rule() {
        let p = format!(
            "{{\"name\":\"startup_complete\"}}\n{}{}{}{{\"name\":\"producer_send_error\",\"value\":\"3\",\"exception\":\"x\"}}\n",
            ack(0, 0),
            ack(1, 1),
            ack(2, 2)
        );
        let all = format!("{}{}{}", read(0, 0), read(1, 1), read(2, 2));
        let d = run_dir(&p, &all, &all, true);
        let c = check_oracle(d.path()).unwrap().unwrap();
        assert_eq!((c.acked, c.send_errors, c.lost, c.duplicates), (3, 1, 0, 0));
        assert!(c.kafkatest_ok && c.final_read_complete, "{c:?}");
        assert_eq!(c.live_missing, 0);
    }

    #[test]
    fn a_value_acked_and_not_in_the_final_read_is_lost_even_when_read_live() {
        let p = format!("{}{}{}", ack(0, 0), ack(1, 1), ack(2, 2));
        // the consumer beside the workers read all three; the log now holds two (value 2
        // truncated, another record at its offset)
        let live = format!("{}{}{}", read(0, 0), read(1, 1), read(2, 2));
        let fin = format!("{}{}{}", read(0, 0), read(1, 1), read(7, 2));
        let d = run_dir(&p, &live, &fin, false);
        let c = check_oracle(d.path()).unwrap().unwrap();
        assert_eq!((c.lost, c.live_missing), (1, 0));
        assert!(!c.kafkatest_ok);
        assert!(c
            .kafkatest_message
            .starts_with("1 acked message did not make it to the Consumer"));
        assert_eq!(c.lost_examples, ["value 2: acked at partition 0 offset 2"]);
    }

    #[test]
    fn duplicates_fail_only_with_idempotence_and_a_short_final_read_is_said() {
        let p = format!("{}{}", ack(0, 0), ack(1, 1));
        let fin = format!("{}{}{}", read(0, 0), read(1, 1), read(1, 2));
        let with = run_dir(&p, "", &fin, true);
        let c = check_oracle(with.path()).unwrap().unwrap();
        assert_eq!(c.duplicates, 1);
        assert!(!c.kafkatest_ok);
        let without = run_dir(&p, "", &fin, false);
        let c = check_oracle(without.path()).unwrap().unwrap();
        assert!(c.kafkatest_ok, "{c:?}");
        assert!(c.kafkatest_message.contains("acceptable outcome"));
        // end offset 3, the final read reached 2
        let short = run_dir(&p, "", &format!("{}{}", read(0, 0), read(1, 1)), true);
        let c = check_oracle(short.path()).unwrap().unwrap();
        assert!(!c.final_read_complete);
        assert_eq!(c.final_read_short, ["0: 2/3"]);
        assert_eq!(c.live_missing, 2);
    }

    #[test]
    fn no_record_means_not_judged_and_a_torn_line_is_counted() {
        let d = run_dir(
            &format!("{}{{\"name\":\"producer_se", ack(0, 0)),
            "",
            "",
            true,
        );
        std::fs::remove_file(d.path().join(ORACLE_RECORD)).unwrap();
        let c = check_oracle(d.path()).unwrap().unwrap();
        assert!(!c.final_read_complete);
        assert_eq!(c.unparsed_lines, 1);
        assert!(c.notes[0].contains("no oracle/oracle.json"));
        assert!(check_oracle(tempfile::tempdir().unwrap().path())
            .unwrap()
            .is_none());
    }

    #[test]
    fn a_followed_output_is_taken_in_by_whole_lines_as_it_grows() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("c.jsonl");
        let mut progress = ConsumerProgress::new(&path);
        progress.update(); // not written yet
        let first = read(0, 0);
        let second = read(1, 1);
        // one whole line and half of the next
        std::fs::write(&path, format!("{first}{}", &second[..20])).unwrap();
        progress.update();
        assert_eq!(progress.reached, [(0, 1)].into());
        std::fs::write(&path, format!("{first}{second}")).unwrap();
        progress.update();
        assert_eq!(progress.reached, [(0, 2)].into());
        assert_eq!(progress.values, ["0".to_string(), "1".to_string()].into());
    }
}
