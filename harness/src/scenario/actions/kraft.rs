//! KRaft: `format-storage` (a controller's log directory, before its first start) and
//! `wait-migration` (the ZooKeeper→KRaft metadata migration done: dual-write).
//!
//! The migration itself is written as its runbook is — `node-config` steps that put each
//! node's configuration into the next phase and `rolling-restart`s that apply them; these
//! two are the runbook's remaining primitives.

use std::time::Duration;

use serde::Serialize;

use super::{node_list, Action, NodeState, Procedure, StepArgs};
use crate::scenario::load::Problems;

/// The keywords of this family.
pub const KEYWORDS: &[&str] = &["format-storage", "wait-migration"];

/// Where a `format-storage` step takes the cluster id from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClusterIdSource {
    /// `/cluster/id` under Kafka's chroot in ZooKeeper: the id the ZooKeeper-mode brokers
    /// use (the migration's controllers must carry it).
    Zookeeper,
    /// This id, as given (22 characters of base64url: a Kafka `Uuid`).
    Given(String),
}

/// A KRaft action.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "do", rename_all = "kebab-case")]
pub enum KraftAction {
    /// `kafka-storage format` of stopped controllers never started (`kafka.tools.StorageTool
    /// format -t ID -c server.properties`), the nodes in parallel.
    FormatStorage {
        /// The controllers formatted.
        nodes: Vec<String>,
        /// Where the cluster id comes from.
        cluster_id: ClusterIdSource,
    },
    /// Wait until the KRaft controllers have copied ZooKeeper's metadata into the metadata
    /// log and run the cluster from it, writing every change to ZooKeeper too (dual-write):
    /// `/migration` under Kafka's chroot records a KRaft metadata offset.
    WaitMigration {
        /// Longest wait.
        timeout: Duration,
    },
}

impl KraftAction {
    /// The scenario keyword.
    pub fn keyword(&self) -> &'static str {
        match self {
            KraftAction::FormatStorage { .. } => "format-storage",
            KraftAction::WaitMigration { .. } => "wait-migration",
        }
    }
}

/// True for a Kafka `Uuid` in its text form: 22 characters of base64url, no padding.
fn is_uuid_text(s: &str) -> bool {
    s.len() == 22
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Parses a KRaft step.
pub(super) fn parse(
    args: &mut StepArgs,
    procedure: &mut Procedure<'_>,
    p: &mut Problems<'_>,
) -> Option<Action> {
    let cluster = procedure.cluster;
    if !cluster.is_migration() {
        p.at(
            args.keyword_span.clone(),
            args.field("do"),
            format!(
                "`{}` belongs to a ZooKeeper→KRaft migration, and this cluster is not one",
                args.keyword
            ),
            if cluster.is_kraft() {
                "a KRaft cluster's nodes are formatted with the cluster; remove the step"
            } else {
                "a migration's cluster names both `zookeeper` and (dormant) `controllers`, on kafka = \"3.9\""
            },
        );
    }
    let action = match args.keyword.as_str() {
        "format-storage" => {
            let list = args.strings(p, "nodes");
            let id = args.string(p, "cluster_id");
            let list = args.require(p, list, "nodes", "nodes = [\"ctl1\", \"ctl2\", \"ctl3\"]")?;
            let nodes = node_list(p, &list, &args.field("nodes"), cluster);
            for n in &nodes {
                if !cluster.is_controller(n) || cluster.broker_id(n).is_some() {
                    p.at(
                        list.span(),
                        args.field("nodes"),
                        format!("`{n}` is not a dedicated controller"),
                        format!(
                            "the migration formats its controllers ({}); ZooKeeper-mode brokers keep their log directories",
                            cluster.controllers.join(", ")
                        ),
                    );
                } else if !procedure.unformatted.remove(n) {
                    p.at(
                        list.span(),
                        args.field("nodes"),
                        format!("`{n}` is formatted already at this point"),
                        "format each controller once, before its first start",
                    );
                } else if procedure.state.get(n) != Some(&NodeState::Stopped) {
                    p.at(
                        list.span(),
                        args.field("nodes"),
                        format!("`{n}` is running at this point"),
                        "format a controller before its first start",
                    );
                }
            }
            let cluster_id = match id {
                None => ClusterIdSource::Zookeeper,
                Some(s) if s.get_ref() == "zookeeper" => ClusterIdSource::Zookeeper,
                Some(s) if is_uuid_text(s.get_ref()) => ClusterIdSource::Given(s.into_inner()),
                Some(s) => {
                    p.at(
                        s.span(),
                        args.field("cluster_id"),
                        format!("`{}` is not a cluster id", s.get_ref()),
                        "cluster_id = \"zookeeper\" (the brokers' id, read from ZooKeeper: what the migration needs), or 22 characters of base64url",
                    );
                    ClusterIdSource::Zookeeper
                }
            };
            KraftAction::FormatStorage { nodes, cluster_id }
        }
        _ => {
            let timeout = args.duration(p, "timeout", Duration::from_secs(180));
            if cluster.is_migration() && !cluster.controllers.iter().any(|c| procedure.running(c)) {
                p.at(
                    args.keyword_span.clone(),
                    args.field("do"),
                    "no controller runs at this point: nothing would migrate",
                    "format-storage and start the controllers first, then roll the brokers into migration mode",
                );
            }
            KraftAction::WaitMigration { timeout }
        }
    };
    Some(Action::Kraft(action))
}

#[cfg(test)]
mod tests {
    use super::is_uuid_text;

    #[test]
    fn a_cluster_id_is_22_characters_of_base64url() {
        assert!(is_uuid_text("MkU3OEVBNTcwNTJENDM2Qk"));
        assert!(is_uuid_text("a-b_cdefghijklmnopqrst"));
        assert!(!is_uuid_text("MkU3OEVBNTcwNTJENDM2Q"));
        assert!(!is_uuid_text("MkU3OEVBNTcwNTJENDM2Q="));
        assert!(!is_uuid_text("zookeeper"));
    }
}
