//! Produce windows as they open, from the producers' logs as they are written: what a
//! person watching a live migration needs to see within a second, before any check.
//!
//! The logs are followed ([`workers::LogReader::follow`]); a worker seals a block at each
//! flush (every 100 ms), so an ack is seen a poll or two after it happened. A partition is
//! *open* when the producers are sending and it has had no ack for longer than its
//! threshold: the window threshold, or three times the gap its share of the load leaves
//! between acks when that is longer (a slow load must not look like an outage). This is a
//! live view only — the report's windows come from the whole history, as always.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use workers::{Event, EventKind, LogReader, TopicSpec};

/// How long a partition may go without its first ack before it counts as open: the
/// clients' start (metadata, a producer id, the first batch) is not an outage, and the
/// report judges it from the whole history anyway.
pub const FIRST_ACK_GRACE_MS: u64 = 5_000;

/// One producer log being followed.
struct Followed {
    /// Its path.
    path: PathBuf,
    /// The reader, once the file has a header.
    reader: Option<LogReader>,
}

/// A change in the set of open windows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WindowChange {
    /// `partition` (`topic/p`) has had no ack since `since_ms` (ms since epoch).
    Opened {
        /// `topic/p`.
        partition: String,
        /// Its last ack (or the start of watching).
        since_ms: u64,
    },
    /// `partition` acked again after `duration_ms` without.
    Closed {
        /// `topic/p`.
        partition: String,
        /// How long it was without an ack.
        duration_ms: u64,
    },
}

/// Produce windows, online.
pub struct OnlineWindows {
    /// The run's `logs/` directory (new producer logs are picked up as they appear).
    logs_dir: PathBuf,
    /// Producer logs followed.
    logs: Vec<Followed>,
    /// Topic names, by the index events carry.
    topics: Vec<String>,
    /// Last ack per `(topic index, partition)`, ms since epoch (the start of watching
    /// until its first), and whether it had one.
    last_ack: BTreeMap<(u16, i32), (u64, bool)>,
    /// Open windows: since when.
    open: BTreeMap<(u16, i32), u64>,
    /// The latest send (or refused send) any producer logged, ms since epoch.
    last_send_ms: u64,
    /// Ack gap that counts as a window, ms.
    threshold_ms: u64,
    /// Decode buffer.
    batch: Vec<Event>,
}

impl OnlineWindows {
    /// Follows the producer logs in `logs_dir`, every partition of `topics` counted from
    /// `from_ms` (the start of watching); a partition is open after `threshold_ms` without an
    /// ack while producers send.
    pub fn new(logs_dir: &Path, topics: &[TopicSpec], from_ms: u64, threshold_ms: u64) -> Self {
        let mut last_ack = BTreeMap::new();
        for (i, t) in topics.iter().enumerate() {
            for p in 0..t.partitions as i32 {
                last_ack.insert((i as u16, p), (from_ms, false));
            }
        }
        OnlineWindows {
            logs_dir: logs_dir.to_path_buf(),
            logs: Vec::new(),
            topics: topics.iter().map(|t| t.name.clone()).collect(),
            last_ack,
            open: BTreeMap::new(),
            last_send_ms: 0,
            threshold_ms,
            batch: Vec::with_capacity(8192),
        }
    }

    fn label(&self, (topic, partition): (u16, i32)) -> String {
        let name = self.topics.get(topic as usize).map_or("?", String::as_str);
        format!("{name}/{partition}")
    }

    /// Reads what the producers logged since the last call and returns the windows that
    /// opened or closed, as of `now_ms`.
    pub fn poll(&mut self, now_ms: u64) -> Vec<WindowChange> {
        self.discover();
        let mut changes = Vec::new();
        for i in 0..self.logs.len() {
            if self.logs[i].reader.is_none() {
                self.logs[i].reader = LogReader::follow(&self.logs[i].path).ok();
            }
            let Some(mut r) = self.logs[i].reader.take() else {
                continue;
            };
            self.batch.clear();
            while matches!(r.read_batch(&mut self.batch, 8192), Ok(true)) {}
            self.logs[i].reader = Some(r);
            let batch = std::mem::take(&mut self.batch);
            for e in &batch {
                self.take(e, &mut changes);
            }
            self.batch = batch;
        }
        // opened: sending, and no ack for the threshold
        let sending = now_ms.saturating_sub(self.last_send_ms) < self.threshold_ms.max(2_000);
        if sending {
            for (&key, &(last, acked)) in &self.last_ack {
                let threshold = if acked {
                    self.threshold_ms
                } else {
                    self.threshold_ms.max(FIRST_ACK_GRACE_MS)
                };
                if now_ms.saturating_sub(last) > threshold && !self.open.contains_key(&key) {
                    self.open.insert(key, last);
                    changes.push(WindowChange::Opened {
                        partition: self.label(key),
                        since_ms: last,
                    });
                }
            }
        }
        changes
    }

    fn take(&mut self, e: &Event, changes: &mut Vec<WindowChange>) {
        let ms = |us: u64| us / 1000;
        match e.kind {
            EventKind::Acked if e.partition >= 0 => {
                let key = (e.topic, e.partition);
                let t = ms(e.ts_b);
                let last = self.last_ack.entry(key).or_insert((t, true));
                *last = (last.0.max(t), true);
                if let Some(since) = self.open.remove(&key) {
                    changes.push(WindowChange::Closed {
                        partition: self.label(key),
                        duration_ms: t.saturating_sub(since),
                    });
                }
            }
            EventKind::SentUpTo => self.last_send_ms = self.last_send_ms.max(ms(e.ts_a)),
            EventKind::Refused => self.last_send_ms = self.last_send_ms.max(ms(e.ts_b)),
            _ => {}
        }
    }

    /// Producer logs that appeared since the last look.
    fn discover(&mut self) {
        for p in crate::rundir::files_with_extension(&self.logs_dir, "log") {
            let producer = p
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("producer-"));
            if producer && !self.logs.iter().any(|f| f.path == p) {
                self.logs.push(Followed {
                    path: p,
                    reader: None,
                });
            }
        }
    }

    /// The open windows as `(partition, since ms)`, oldest first.
    pub fn open_windows(&self) -> Vec<(String, u64)> {
        let mut v: Vec<(String, u64)> = self
            .open
            .iter()
            .map(|(&k, &since)| (self.label(k), since))
            .collect();
        v.sort_by_key(|(_, since)| *since);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use workers::log::{LogHeader, LogWriter, FORMAT_VERSION};
    use workers::Role;

    fn header() -> LogHeader {
        LogHeader {
            version: FORMAT_VERSION,
            role: Role::Produce,
            clock: workers::clock::CLOCK_REALTIME_US,
            worker: 0,
            flags: 0,
            start_us: 0,
            run_id: "r".into(),
        }
    }

    fn ack(partition: i32, ms: u64) -> Event {
        Event {
            partition,
            offset: 1,
            ts_a: ms * 1000,
            ts_b: ms * 1000,
            ..Event::new(EventKind::Acked)
        }
    }

    fn sent(ms: u64) -> Event {
        Event {
            ts_a: ms * 1000,
            seq: 1,
            ..Event::new(EventKind::SentUpTo)
        }
    }

    #[test]
    fn a_partition_without_acks_while_others_ack_opens_and_its_next_ack_closes_it() {
        let dir = tempfile::tempdir().unwrap();
        // partition 2 never acks
        let topics = [TopicSpec {
            name: "orders".into(),
            partitions: 3,
        }];
        let mut w = LogWriter::create(&dir.path().join("producer-0.log"), &header()).unwrap();
        let mut online = OnlineWindows::new(dir.path(), &topics, 10_000, 1_000);
        assert!(online.poll(10_500).is_empty());
        // both ack until 11 s; then only partition 0, the producer still sending
        for t in (10_000..=11_000).step_by(100) {
            w.append(&ack(0, t)).unwrap();
            w.append(&ack(1, t)).unwrap();
        }
        for t in (11_100..=13_000).step_by(100) {
            w.append(&ack(0, t)).unwrap();
            w.append(&sent(t)).unwrap();
        }
        w.flush().unwrap();
        let c = online.poll(13_000);
        assert_eq!(
            c,
            [WindowChange::Opened {
                partition: "orders/1".into(),
                since_ms: 11_000
            }]
        );
        assert_eq!(online.open_windows(), [("orders/1".to_string(), 11_000)]);
        assert!(online.poll(13_200).is_empty(), "said once");
        for t in (13_100..=14_500).step_by(100) {
            w.append(&ack(0, t)).unwrap();
            w.append(&sent(t)).unwrap();
        }
        w.append(&ack(1, 14_500)).unwrap();
        w.flush().unwrap();
        assert_eq!(
            online.poll(14_600),
            [WindowChange::Closed {
                partition: "orders/1".into(),
                duration_ms: 3_500
            }]
        );
        assert!(online.open_windows().is_empty());
        // a partition never acked: open once the clients' start is long over
        assert_eq!(
            online.poll(15_200),
            [WindowChange::Opened {
                partition: "orders/2".into(),
                since_ms: 10_000
            }]
        );
        // producers stopped (drained): silence is not a window
        assert!(online.poll(30_000).is_empty());
    }
}
