//! Has the workload's consumer group read everything? The drain's early end.
//!
//! Why: the drain gave the consumers until their count of records received stopped moving
//! for four status lines in a row — at least four seconds of every run, after the
//! consumers had caught up in well under one. Once the producers have stopped, every
//! partition's end offset is fixed; the group's committed offsets (the consumers commit
//! what they were given once a second) reaching every end offset say the consumers have
//! had every record. The old rule stays as the fallback, with the stillness it waits for
//! raised to a session timeout plus 2 s (at least 4 s): a group that never catches up (a
//! consumer that stalls, a partition without a leader) still ends the drain by it, and a
//! group in a rebalance — which stands still until the coordinator drops a member it
//! stopped hearing from — is not cut short.

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::ClientProperties;

/// A consumer group's progress against the end offsets read once (after the producers
/// stopped). Joins no group: it only reads the group's committed offsets.
pub struct GroupCatchUp {
    /// A client of the group's id that never subscribes (OffsetFetch, ListOffsets).
    client: BaseConsumer,
    /// Every partition's end offset when [`GroupCatchUp::read_ends`] ran; a partition
    /// whose end could not be read is missing, and the group is then never caught up.
    ends: BTreeMap<(String, i32), i64>,
    /// Every partition of the workload's topics.
    partitions: Vec<(String, i32)>,
}

impl GroupCatchUp {
    /// A client for `group` on `bootstrap` (with the run's client properties), for the
    /// workers' `topics`. Connects lazily.
    pub fn new(
        bootstrap: &str,
        properties: &ClientProperties,
        group: &str,
        topics: &[workers::config::TopicSpec],
    ) -> anyhow::Result<GroupCatchUp> {
        let mut c = rdkafka::ClientConfig::new();
        for (k, v) in properties {
            c.set(k, v);
        }
        c.set("bootstrap.servers", bootstrap)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("log_level", "3");
        Ok(GroupCatchUp {
            client: c.create()?,
            ends: BTreeMap::new(),
            partitions: topics
                .iter()
                .flat_map(|t| (0..t.partitions as i32).map(move |p| (t.name.clone(), p)))
                .collect(),
        })
    }

    /// Reads every partition's end offset (high watermark); call once the producers have
    /// stopped. `timeout` bounds each partition's request.
    pub fn read_ends(&mut self, timeout: Duration) {
        for (t, p) in &self.partitions {
            if let Ok((_, high)) = self.client.fetch_watermarks(t, *p, timeout) {
                self.ends.insert((t.clone(), *p), high);
            }
        }
    }

    /// Whether the group's committed offset has reached the end offset of every partition
    /// (a partition with nothing in it needs no commit). False when anything is unknown.
    pub fn caught_up(&self, timeout: Duration) -> bool {
        if self.ends.len() < self.partitions.len() {
            return false;
        }
        let mut tpl = TopicPartitionList::new();
        for (t, p) in &self.partitions {
            tpl.add_partition(t, *p);
        }
        let Ok(committed) = self.client.committed_offsets(tpl, timeout) else {
            return false;
        };
        let at: BTreeMap<(String, i32), Offset> = committed
            .elements()
            .iter()
            .map(|e| ((e.topic().to_string(), e.partition()), e.offset()))
            .collect();
        self.ends.iter().all(|(key, end)| {
            *end <= 0 || matches!(at.get(key), Some(Offset::Offset(o)) if *o >= *end)
        })
    }
}
