//! How far MirrorMaker 2 has copied: its source offsets as Kafka Connect stores them.
//!
//! Why there and not the target's end offsets: offsets differ across clusters (an
//! at-least-once copy writes some records twice; the transactional copy adds a commit marker
//! per transaction), so the target's end offset says nothing exact about the source. What
//! MirrorMaker has copied is what its source task committed to Connect's offsets topic on
//! the target cluster (`mm2-offsets.source.internal`, compacted): one record per source
//! partition, key `["MirrorSourceConnector",{"cluster":"source","partition":P,"topic":T}]`,
//! value `{"offset":N}` — N the last source offset copied (and, with exactly-once, committed
//! in the same transaction as the copy).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};

/// Connect's offsets topic of a dedicated MirrorMaker for the flow from `source` (on the
/// target cluster).
pub fn offsets_topic(source_alias: &str) -> String {
    format!("mm2-offsets.{source_alias}.internal")
}

/// The next source offset MirrorMaker will copy, per source partition of `source_alias`:
/// the last copied + 1, read from the whole offsets topic on `target_bootstrap`. A
/// partition it has not committed anything for is absent. An offsets topic that does not
/// exist yet reads as nothing copied.
pub fn copied(
    target_bootstrap: &str,
    source_alias: &str,
    timeout: Duration,
) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    let topic = offsets_topic(source_alias);
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", target_bootstrap)
        .set("group.id", "kmh-mirror-progress")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .set("log_level", "3")
        .create()?;
    let md = consumer.fetch_metadata(Some(&topic), timeout)?;
    let partitions: Vec<i32> = md
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let mut next = BTreeMap::new();
    if partitions.is_empty() {
        return Ok(next);
    }
    // read each partition from its start up to its end offset now
    let mut tpl = TopicPartitionList::new();
    let mut ends = BTreeMap::new();
    for p in &partitions {
        let (low, high) = consumer.fetch_watermarks(&topic, *p, timeout)?;
        if high > low {
            tpl.add_partition_offset(&topic, *p, Offset::Beginning)?;
            ends.insert(*p, high);
        }
    }
    if ends.is_empty() {
        return Ok(next);
    }
    consumer.assign(&tpl)?;
    let deadline = Instant::now() + timeout;
    let mut done: BTreeMap<i32, bool> = ends.keys().map(|p| (*p, false)).collect();
    while done.values().any(|d| !d) {
        if Instant::now() > deadline {
            anyhow::bail!("reading {topic}: not at its end after {timeout:?}");
        }
        let Some(m) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = match m {
            Ok(m) => m,
            Err(rdkafka::error::KafkaError::PartitionEOF(p)) => {
                done.insert(p, true);
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if m.offset() + 1 >= ends[&m.partition()] {
            done.insert(m.partition(), true);
        }
        let (Some(key), value) = (m.key(), m.payload()) else {
            continue;
        };
        if let Some((t, p, off)) = parse_offset_record(key, value, source_alias) {
            match off {
                Some(o) => {
                    next.insert((t, p), o + 1);
                }
                // a tombstone: the offset was reset
                None => {
                    next.remove(&(t, p));
                }
            }
        }
    }
    Ok(next)
}

/// Every partition's end offset (high watermark) on `bootstrap`, for `topics` (name,
/// partition count).
pub fn end_offsets(
    bootstrap: &str,
    topics: &[(String, u32)],
    timeout: Duration,
) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("log_level", "3")
        .create()?;
    let mut ends = BTreeMap::new();
    for (t, n) in topics {
        for p in 0..*n as i32 {
            let (_, high) = consumer.fetch_watermarks(t, p, timeout)?;
            ends.insert((t.clone(), p), high);
        }
    }
    Ok(ends)
}

/// Waits until MirrorMaker has copied every record each of `topics`' partitions held on
/// the source when the wait began; `alive` is asked before each look (an error ends the
/// wait with it). Returns how many records (source offsets) the source held then. Ends
/// early, with an error, when `shutdown` is requested.
pub fn wait_caught_up(
    source_bootstrap: &str,
    target_bootstrap: &str,
    source_alias: &str,
    topics: &[(String, u32)],
    timeout: Duration,
    shutdown: &crate::shutdown::Shutdown,
    mut alive: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<i64> {
    let started = Instant::now();
    let ends = end_offsets(source_bootstrap, topics, Duration::from_secs(10))
        .map_err(|e| anyhow::anyhow!("the source's end offsets: {e}"))?;
    let mut behind: Option<u64> = None;
    loop {
        alive()?;
        match copied(target_bootstrap, source_alias, Duration::from_secs(10)) {
            Ok(copied) => {
                let b = ends
                    .iter()
                    .map(|(tp, end)| (end - copied.get(tp).copied().unwrap_or(0)).max(0) as u64)
                    .sum();
                if b == 0 {
                    return Ok(ends.values().sum());
                }
                behind = Some(b);
            }
            Err(e) => tracing::debug!("MirrorMaker's progress: {e}"),
        }
        if started.elapsed() > timeout {
            anyhow::bail!(
                "MirrorMaker 2 had not caught up after {timeout:?}: {} behind the source's end offsets when the wait began",
                behind.map_or("every record (no progress readable)".to_string(), |b| format!("{b} record(s)"))
            );
        }
        if shutdown.sleep(Duration::from_millis(500)) {
            anyhow::bail!("interrupted");
        }
    }
}

/// A consumer group's committed offsets on `bootstrap` for `partitions` (those it has
/// committed nothing for are absent).
pub fn committed(
    bootstrap: &str,
    group: &str,
    partitions: &[(String, i32)],
    timeout: Duration,
) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("log_level", "3")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for (t, p) in partitions {
        tpl.add_partition(t, *p);
    }
    Ok(consumer
        .committed_offsets(tpl, timeout)?
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some(((e.topic().to_string(), e.partition()), o)),
            _ => None,
        })
        .collect())
}

/// Where the run keeps the copy's progress, look by look (in the run directory).
pub const LAG_FILE: &str = "mirror/lag.jsonl";

/// One look at the copy's progress (a line of [`LAG_FILE`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LagSample {
    /// When (ms since the Unix epoch).
    pub t_ms: u64,
    /// Records (source offsets) the source held that the copy had not committed yet.
    pub behind: u64,
    /// Source offsets the copy had committed, summed over the partitions: it moves when
    /// the copy makes progress.
    pub copied: u64,
}

/// Looks at the copy's progress about once a second, from the first `mirror-start` to the
/// end of the run (also while MirrorMaker is stopped: then the copy falls behind), and
/// appends each look to a JSON-lines file. A look that cannot be made (a broker away) is
/// skipped.
pub struct LagSampler {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl LagSampler {
    /// Starts looking at the copy of `topics` (name, partitions) into `path`.
    pub fn start(
        source_bootstrap: String,
        target_bootstrap: String,
        source_alias: String,
        topics: Vec<(String, u32)>,
        path: std::path::PathBuf,
    ) -> std::io::Result<LagSampler> {
        let mut out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::Builder::new()
            .name("mirror-lag".into())
            .spawn(move || {
                while !flag.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    let look = end_offsets(&source_bootstrap, &topics, Duration::from_secs(2))
                        .and_then(|ends| {
                            let copied =
                                copied(&target_bootstrap, &source_alias, Duration::from_secs(2))?;
                            Ok((ends, copied))
                        });
                    if let Ok((ends, copied)) = look {
                        let behind = ends
                            .iter()
                            .map(|(tp, end)| {
                                (end - copied.get(tp).copied().unwrap_or(0)).max(0) as u64
                            })
                            .sum();
                        let sample = LagSample {
                            t_ms: workers::clock::now_ms(),
                            behind,
                            copied: ends
                                .keys()
                                .map(|tp| copied.get(tp).copied().unwrap_or(0).max(0) as u64)
                                .sum(),
                        };
                        if let Ok(line) = serde_json::to_string(&sample) {
                            use std::io::Write;
                            let _ = writeln!(out, "{line}");
                        }
                    }
                    // once a second, in short naps so a stop is quick
                    while started.elapsed() < Duration::from_secs(1)
                        && !flag.load(Ordering::Relaxed)
                    {
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            })?;
        Ok(LagSampler {
            stop,
            handle: Some(handle),
        })
    }
}

impl Drop for LagSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// One record of Connect's offsets topic, when it is MirrorSourceConnector's for
/// `source_alias`: (topic, partition, last copied offset; `None` for a tombstone).
fn parse_offset_record(
    key: &[u8],
    value: Option<&[u8]>,
    source_alias: &str,
) -> Option<(String, i32, Option<i64>)> {
    let key: serde_json::Value = serde_json::from_slice(key).ok()?;
    let [connector, partition] = key.as_array()?.as_slice() else {
        return None;
    };
    if connector.as_str()? != "MirrorSourceConnector"
        || partition.get("cluster")?.as_str()? != source_alias
    {
        return None;
    }
    let topic = partition.get("topic")?.as_str()?.to_string();
    let p = i32::try_from(partition.get("partition")?.as_i64()?).ok()?;
    let offset = match value {
        None => None,
        Some(v) => Some(
            serde_json::from_slice::<serde_json::Value>(v)
                .ok()?
                .get("offset")?
                .as_i64()?,
        ),
    };
    Some((topic, p, offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_task_offset_names_its_partition_and_the_last_offset_copied() {
        let key =
            br#"["MirrorSourceConnector",{"cluster":"source","partition":3,"topic":"orders"}]"#;
        assert_eq!(
            parse_offset_record(key, Some(br#"{"offset":41}"#), "source"),
            Some(("orders".into(), 3, Some(41)))
        );
        assert_eq!(
            parse_offset_record(key, None, "source"),
            Some(("orders".into(), 3, None))
        );
        // another flow's, another connector's, or not Connect's at all: ignored
        assert_eq!(parse_offset_record(key, Some(b"{}"), "other"), None);
        let checkpoint =
            br#"["MirrorCheckpointConnector",{"cluster":"source","partition":3,"topic":"orders"}]"#;
        assert_eq!(
            parse_offset_record(checkpoint, Some(br#"{"offset":1}"#), "source"),
            None
        );
        assert_eq!(parse_offset_record(b"not json", None, "source"), None);
    }
}
