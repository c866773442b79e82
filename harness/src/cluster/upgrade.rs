//! A KRaft cluster's rolling upgrade: which Kafka release each node runs from its next
//! start (`kafka-version`), and the finalized `metadata.version` raised once all run the
//! new one (`update-features`, with the distribution's own `kafka-features` tool).
//!
//! Why the tool and not a request of our own: `kafka-features upgrade --metadata 4.1` is
//! what the upgrade notes tell an operator to run, and its refusals (a node that does not
//! support the level yet) are Kafka's words; the harness records what it answered.

use std::process::{Command, Stdio};

use super::{dist, Cluster, Distribution, NodeKind};
use crate::error::HarnessError;
use crate::scenario::FeatureTarget;

/// `major.minor.patch` of a release, for "which is newer" (unknown parts count as 0).
fn release_order(version: &str) -> Vec<u32> {
    version
        .split('.')
        .map(|p| p.parse::<u32>().unwrap_or(0))
        .collect()
}

impl Cluster {
    /// The distribution `node` runs (from its last start, or its next once switched).
    pub fn node_distribution(&self, node: &str) -> &Distribution {
        self.node_dists.get(node).unwrap_or(&self.dist)
    }

    /// Makes `nodes` run Kafka `release` from their next start (their configuration and
    /// data stay); the distribution was fetched before the run started.
    pub fn switch_version(&mut self, nodes: &[String], release: &str) -> Result<(), HarnessError> {
        let to = dist::locate(release)?;
        for n in nodes {
            let from = self.node_distribution(n).clone();
            if from.home == to.home {
                if from.version != to.version {
                    return Err(HarnessError::BadInput(format!(
                        "{n}: Kafka {} and {} are the same install ({}): KAFKA_HOME names one distribution for every version; unset it to let the harness fetch each release",
                        from.version,
                        to.version,
                        to.home.display()
                    )));
                }
                continue;
            }
            let migration = self.spec.is_migration();
            let node = self.node(n)?;
            if node.kind == NodeKind::ZooKeeper {
                return Err(HarnessError::Cluster(format!(
                    "{n} is a ZooKeeper node: its binaries do not change"
                )));
            }
            // after a ZooKeeper→KRaft migration: only a node whose next start is in KRaft
            // mode, off ZooKeeper, may move to a release (4.x) that has no ZooKeeper mode
            let next = node.config_for_next_start();
            if migration
                && release_order(&to.version) >= release_order("4.0")
                && (!next.contains_key("process.roles")
                    || next.contains_key("zookeeper.connect")
                    || next
                        .get("zookeeper.metadata.migration.enable")
                        .is_some_and(|v| v == "true"))
            {
                return Err(HarnessError::Cluster(format!(
                    "{n} would start Kafka {} in ZooKeeper or migration mode, which Kafka 4 does not have: finish the migration first (its configuration for the next start must have process.roles and no zookeeper.connect or zookeeper.metadata.migration.enable)",
                    to.version
                )));
            }
            node.switch_distribution(&from, &to)?;
            self.node_dists.insert(n.clone(), to.clone());
            self.note(
                n,
                format!(
                    "binaries: Kafka {} → {} from its next start",
                    from.version, to.version
                ),
            );
        }
        Ok(())
    }

    /// The newest distribution any Kafka node runs: its tools know every level the nodes
    /// may support.
    fn newest_distribution(&self) -> Distribution {
        self.nodes
            .values()
            .filter(|n| n.kind != NodeKind::ZooKeeper)
            .map(|n| self.node_distribution(&n.name))
            .chain(std::iter::once(&self.dist))
            .max_by_key(|d| release_order(&d.version))
            .cloned()
            .expect("the cluster's own distribution at least")
    }

    /// Runs the newest distribution's `kafka-features` (`org.apache.kafka.tools.FeatureCommand`)
    /// against the brokers with `args`; its output, or its words when it fails.
    fn kafka_features(&self, args: &[&str]) -> Result<String, HarnessError> {
        let d = self.newest_distribution();
        let out = Command::new("java")
            .args(super::node::tool_jvm_flags(&d))
            .arg("-cp")
            .arg(d.classpath())
            .args([
                "org.apache.kafka.tools.FeatureCommand",
                "--bootstrap-server",
                &self.bootstrap(),
            ])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| HarnessError::Cluster(format!("running kafka-features: {e}")))?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if !out.status.success() {
            return Err(HarnessError::Cluster(format!(
                "kafka-features {} (Kafka {}) failed ({}):\n{}",
                args.join(" "),
                d.version,
                out.status,
                text.trim()
            )));
        }
        Ok(text)
    }

    /// Every finalized feature's level as `kafka-features describe` shows it; an error
    /// when it shows no `metadata.version` (every KRaft cluster has one).
    fn finalized_features(
        &self,
    ) -> Result<std::collections::BTreeMap<String, String>, HarnessError> {
        let text = self.kafka_features(&["describe"])?;
        let levels = finalized_levels(&text);
        if !levels.contains_key("metadata.version") {
            return Err(HarnessError::Cluster(format!(
                "kafka-features describe shows no finalized metadata.version:\n{}",
                text.trim()
            )));
        }
        Ok(levels)
    }

    /// Raises finalized features (`kafka-features upgrade --metadata V` or
    /// `--release-version V`) and records every feature whose level changed, with
    /// `metadata.version` always named; the controller refuses a level a running node does
    /// not support, and that refusal is the step's error.
    pub fn update_features(&mut self, to: &FeatureTarget) -> Result<(), HarnessError> {
        let before = self.finalized_features()?;
        let mut args = vec!["upgrade"];
        args.extend(to.tool_args());
        let said = self.kafka_features(&args)?;
        let after = self.finalized_features()?;
        let on = self
            .spec
            .dedicated_controllers()
            .next()
            .or(self.spec.controllers.first())
            .cloned()
            .unwrap_or_default();
        self.note(
            &on,
            format!(
                "{} (kafka-features upgrade {}: {})",
                feature_changes(&before, &after),
                args[1..].join(" "),
                said.lines()
                    .rfind(|l| !l.trim().is_empty())
                    .unwrap_or("")
                    .trim()
            ),
        );
        Ok(())
    }
}

/// Every feature's `FinalizedVersionLevel` in `kafka-features describe` output, by name.
fn finalized_levels(describe: &str) -> std::collections::BTreeMap<String, String> {
    describe
        .lines()
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let name = words.windows(2).find(|w| w[0] == "Feature:")?[1];
            Some((name.to_string(), finalized_level(l, name)?))
        })
        .collect()
}

/// "metadata.version 3.9-IV0 → 4.1-IV1, kraft.version 0 → 1": each feature that changed
/// (one absent before counts as 0), and metadata.version even when it did not.
fn feature_changes(
    before: &std::collections::BTreeMap<String, String>,
    after: &std::collections::BTreeMap<String, String>,
) -> String {
    let mut names: Vec<&String> = after.keys().collect();
    // metadata.version first: the level the upgrade notes speak of
    names.sort_by_key(|n| (n.as_str() != "metadata.version", n.as_str()));
    names
        .into_iter()
        .filter_map(|n| {
            let was = before.get(n).map(String::as_str).unwrap_or("0");
            let now = &after[n];
            (was != now || n == "metadata.version").then(|| format!("{n} {was} → {now}"))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// `FinalizedVersionLevel` of `feature` in `kafka-features describe` output
/// (`Feature: metadata.version\tSupportedMinVersion: …\tFinalizedVersionLevel: 4.1-IV1\t…`).
fn finalized_level(describe: &str, feature: &str) -> Option<String> {
    describe
        .lines()
        .find(|l| {
            l.split_whitespace()
                .collect::<Vec<_>>()
                .windows(2)
                .any(|w| w[0] == "Feature:" && w[1] == feature)
        })
        .and_then(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            words
                .windows(2)
                .find(|w| w[0] == "FinalizedVersionLevel:")
                .map(|w| w[1].to_string())
        })
}

#[cfg(test)]
mod tests {
    use super::{feature_changes, finalized_level, finalized_levels, release_order};

    #[test]
    fn the_finalized_level_is_read_from_describe() {
        let out = "Feature: kraft.version\tSupportedMinVersion: 0\tSupportedMaxVersion: 1\tFinalizedVersionLevel: 0\tEpoch: 7\nFeature: metadata.version\tSupportedMinVersion: 3.3-IV3\tSupportedMaxVersion: 4.1-IV1\tFinalizedVersionLevel: 3.9-IV0\tEpoch: 7\n";
        assert_eq!(
            finalized_level(out, "metadata.version").as_deref(),
            Some("3.9-IV0")
        );
        assert_eq!(finalized_level(out, "kraft.version").as_deref(), Some("0"));
        assert_eq!(finalized_level(out, "group.version"), None);
    }

    #[test]
    fn an_upgrade_names_each_feature_it_changed_and_the_metadata_version() {
        let before = finalized_levels("Feature: kraft.version\tSupportedMinVersion: 0\tSupportedMaxVersion: 1\tFinalizedVersionLevel: 0\tEpoch: 7\nFeature: metadata.version\tSupportedMinVersion: 3.3-IV3\tSupportedMaxVersion: 4.1-IV1\tFinalizedVersionLevel: 3.9-IV0\tEpoch: 7\n");
        let after = finalized_levels("Feature: group.version\tSupportedMinVersion: 0\tSupportedMaxVersion: 1\tFinalizedVersionLevel: 1\tEpoch: 9\nFeature: kraft.version\tSupportedMinVersion: 0\tSupportedMaxVersion: 1\tFinalizedVersionLevel: 0\tEpoch: 9\nFeature: metadata.version\tSupportedMinVersion: 3.3-IV3\tSupportedMaxVersion: 4.1-IV1\tFinalizedVersionLevel: 4.1-IV1\tEpoch: 9\n");
        assert_eq!(
            feature_changes(&before, &after),
            "metadata.version 3.9-IV0 → 4.1-IV1, group.version 0 → 1"
        );
        assert_eq!(
            feature_changes(&after, &after),
            "metadata.version 4.1-IV1 → 4.1-IV1"
        );
    }

    #[test]
    fn releases_order_by_number() {
        assert!(release_order("4.1.2") > release_order("3.9.1"));
        assert!(release_order("4.10.0") > release_order("4.9.3"));
    }
}
