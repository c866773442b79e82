//! KRaft: `format-storage` (a controller's log directory, before its first start) and
//! `wait-migration` (the ZooKeeper→KRaft metadata migration done: dual-write); for a
//! KRaft cluster's upgrade, `kafka-version` (the binaries a node runs from its next start)
//! and `update-features` (`kafka-features upgrade --metadata`: the finalized
//! `metadata.version`).
//!
//! The migration and the upgrade are written as their runbooks are — `node-config` and
//! `kafka-version` steps put each node into the next phase and `rolling-restart`s apply
//! them; these are the runbooks' remaining primitives.

use std::time::Duration;

use serde::Serialize;

use super::{node_list, Action, NodeState, Procedure, StepArgs};
use crate::scenario::load::Problems;

/// The keywords of this family.
pub const KEYWORDS: &[&str] = &[
    "format-storage",
    "wait-migration",
    "kafka-version",
    "update-features",
    "add-controller",
    "remove-controller",
];

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
    /// The Kafka release nodes run from their next start (a rolling upgrade's first half:
    /// the binaries; `rolling-restart` applies it). Their configuration and data stay.
    KafkaVersion {
        /// The nodes.
        nodes: Vec<String>,
        /// The exact release (`4.1` → `4.1.2`), fetched before the run starts.
        kafka: String,
    },
    /// The upgrade's second half, once every node runs the new release: raise the
    /// cluster's finalized features with the distribution's own tool (`kafka-features
    /// --bootstrap-server … upgrade --metadata V`, or `--release-version V`).
    UpdateFeatures {
        /// Which features, to which level.
        #[serde(flatten)]
        to: FeatureTarget,
    },
    /// A dynamic quorum: make a running controller (an observer of the metadata log) a
    /// voter once it has caught up (AddRaftVoter), and wait until the quorum lists it.
    AddController {
        /// The controller.
        node: String,
        /// Longest wait: catching up, the change, the quorum listing it.
        timeout: Duration,
    },
    /// A dynamic quorum: take a voter out of it (RemoveRaftVoter); the node keeps running
    /// until a `stop` step.
    RemoveController {
        /// The controller.
        node: String,
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
            KraftAction::KafkaVersion { .. } => "kafka-version",
            KraftAction::UpdateFeatures { .. } => "update-features",
            KraftAction::AddController { .. } => "add-controller",
            KraftAction::RemoveController { .. } => "remove-controller",
        }
    }
}

/// True for a Kafka `Uuid` in its text form as Kafka makes them: 22 characters of
/// base64url, no padding, not starting with `-` (Kafka never makes one: the format tool
/// would read it as an option).
fn is_uuid_text(s: &str) -> bool {
    s.len() == 22
        && !s.starts_with('-')
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
    if matches!(args.keyword.as_str(), "kafka-version" | "update-features") {
        return parse_upgrade(args, procedure, p);
    }
    if matches!(
        args.keyword.as_str(),
        "add-controller" | "remove-controller"
    ) {
        return parse_voter_change(args, procedure, p);
    }
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
                        "cluster_id = \"zookeeper\" (the brokers' id, read from ZooKeeper: what the migration needs), or 22 characters of base64url not starting with `-`",
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

/// What `update-features` raises.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum FeatureTarget {
    /// `metadata_version = "4.1"`: `metadata.version` alone (`upgrade --metadata`, which
    /// 4.x's tool calls deprecated but still runs).
    #[serde(rename = "metadata_version")]
    Metadata(String),
    /// `release_version = "4.1"`: every feature to the release's default level (`upgrade
    /// --release-version`, what 4.x's upgrade notes say to run). On a static quorum this
    /// includes `kraft.version` 0 → 1 where the release supports it (KAFKA-21426).
    #[serde(rename = "release_version")]
    Release(String),
}

impl FeatureTarget {
    /// The `kafka-features upgrade` arguments.
    pub fn tool_args(&self) -> [&str; 2] {
        match self {
            FeatureTarget::Metadata(v) => ["--metadata", v],
            FeatureTarget::Release(v) => ["--release-version", v],
        }
    }
}

/// True for a metadata version as `kafka-features` takes it: `4.1` or `4.1-IV1`.
fn is_metadata_version(s: &str) -> bool {
    let (release, iv) = match s.split_once("-IV") {
        Some((r, iv)) => (r, Some(iv)),
        None => (s, None),
    };
    let parts: Vec<&str> = release.split('.').collect();
    parts.len() == 2
        && parts
            .iter()
            .chain(iv.as_slice())
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// `kafka-version` and `update-features`: a KRaft cluster's rolling upgrade, on nodes of
/// this machine (local processes or namespaces: the distributions are in its cache).
fn parse_upgrade(
    args: &mut StepArgs,
    procedure: &mut Procedure<'_>,
    p: &mut Problems<'_>,
) -> Option<Action> {
    let cluster = procedure.cluster;
    // a migration's cluster is upgraded once it runs on KRaft: each node's mode at that
    // point is known only when the run gets there (`kafka-version` checks it then)
    if !cluster.has_controllers() {
        p.at(
            args.keyword_span.clone(),
            args.field("do"),
            format!("`{}` upgrades a KRaft cluster, and this cluster is not one", args.keyword),
            "a KRaft cluster names `controllers` (a ZooKeeper-mode broker cannot run Kafka 4: migrate it first — a migration's cluster names `zookeeper` and dormant `controllers`)",
        );
    }
    if cluster.backend != crate::scenario::Backend::Local {
        p.at(
            args.keyword_span.clone(),
            args.field("do"),
            format!(
                "`{}` runs on the local backend only, not `{}`",
                args.keyword,
                cluster.backend.name()
            ),
            "backend = \"local\" (processes or namespaces of this machine); a container's or a remote host's binaries are fixed when it is made",
        );
    }
    let action = if args.keyword == "kafka-version" {
        let list = args.strings(p, "nodes");
        let kafka = args.string(p, "kafka");
        let list = args.require(p, list, "nodes", "nodes = [\"ctl1\", \"kafka1\"]")?;
        let kafka = args.require(p, kafka, "kafka", "kafka = \"4.1\"")?;
        let nodes = node_list(p, &list, &args.field("nodes"), cluster);
        for n in &nodes {
            if cluster.zookeeper.contains(n) {
                p.at(
                    list.span(),
                    args.field("nodes"),
                    format!("`{n}` is a ZooKeeper node"),
                    "kafka-version changes the binaries of controllers and brokers",
                );
            }
        }
        let Some(release) = crate::scenario::load::kafka_release(kafka.get_ref()) else {
            p.at(
                kafka.span(),
                args.field("kafka"),
                format!(
                    "`{}` is not a Kafka release the harness runs",
                    kafka.get_ref()
                ),
                "kafka = \"3.9\", \"4.0\" … \"4.4\", or an exact 3.9.x / 4.x.y release",
            );
            return None;
        };
        KraftAction::KafkaVersion {
            nodes,
            kafka: release,
        }
    } else {
        let metadata = args.string(p, "metadata_version");
        let release = args.string(p, "release_version");
        let (key, v) = match (metadata, release) {
            (Some(m), None) => ("metadata_version", m),
            (None, Some(r)) => ("release_version", r),
            (m, r) => {
                let both = m.is_some() && r.is_some();
                p.at(
                    args.keyword_span.clone(),
                    args.field("do"),
                    if both {
                        "`update-features` takes `metadata_version` or `release_version`, not both"
                    } else {
                        "`update-features` needs `metadata_version` or `release_version`"
                    }
                    .to_string(),
                    "metadata_version = \"4.1\" raises metadata.version alone; release_version = \"4.1\" every feature (kraft.version too)",
                );
                return None;
            }
        };
        if !is_metadata_version(v.get_ref()) {
            p.at(
                v.span(),
                args.field(key),
                format!("`{}` is not a metadata version", v.get_ref()),
                "a release (`4.1`) or an exact level (`4.1-IV1`), as `kafka-features upgrade` takes it",
            );
        }
        KraftAction::UpdateFeatures {
            to: if key == "metadata_version" {
                FeatureTarget::Metadata(v.into_inner())
            } else {
                FeatureTarget::Release(v.into_inner())
            },
        }
    };
    Some(Action::Kraft(action))
}

/// `add-controller` and `remove-controller`: a dynamic quorum's voters, one at a time.
fn parse_voter_change(
    args: &mut StepArgs,
    procedure: &mut Procedure<'_>,
    p: &mut Problems<'_>,
) -> Option<Action> {
    let cluster = procedure.cluster;
    let add = args.keyword == "add-controller";
    let node = args.string(p, "node");
    let timeout = args.duration(p, "timeout", Duration::from_secs(120));
    if !cluster.dynamic_quorum {
        p.at(
            args.keyword_span.clone(),
            args.field("do"),
            format!("`{}` changes a dynamic quorum's voters, and this cluster's quorum is static", args.keyword),
            "quorum = \"dynamic\" in [cluster] (KIP-853; Kafka 3.9 or 4.x, KRaft), with the new controller among `controllers` and `dormant`",
        );
    }
    let node = args.require(p, node, "node", "node = \"ctl4\"")?;
    let name = node.get_ref().clone();
    if !cluster.is_controller(&name) || cluster.broker_id(&name).is_some() {
        p.at(
            node.span(),
            args.field("node"),
            format!("`{name}` is not a dedicated controller"),
            format!("controllers: {}", cluster.controllers.join(", ")),
        );
        return None;
    }
    if add {
        if !procedure.running(&name) {
            p.at(
                node.span(),
                args.field("node"),
                format!("`{name}` is not running at this point"),
                "start it first (a `start` step): it catches up as an observer of the metadata log, then becomes a voter",
            );
        }
        if !procedure.voters.insert(name.clone()) {
            p.at(
                node.span(),
                args.field("node"),
                format!("`{name}` is a voter already at this point"),
                "add a controller that is not a voter: a dormant one, started by a step, or one removed before",
            );
        }
        Some(Action::Kraft(KraftAction::AddController {
            node: name,
            timeout,
        }))
    } else {
        if !procedure.voters.remove(&name) {
            p.at(
                node.span(),
                args.field("node"),
                format!("`{name}` is not a voter at this point"),
                "remove one of the quorum's voters (the controllers that start with the cluster, or one added by `add-controller`)",
            );
        } else if procedure.voters.is_empty() {
            p.at(
                node.span(),
                args.field("node"),
                format!("removing `{name}` would leave the quorum without a voter"),
                "add the new controller first (`add-controller`), then remove the old one",
            );
        }
        Some(Action::Kraft(KraftAction::RemoveController {
            node: name,
            timeout,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::{is_metadata_version, is_uuid_text};

    #[test]
    fn a_metadata_version_is_a_release_or_an_exact_level() {
        assert!(is_metadata_version("4.1"));
        assert!(is_metadata_version("4.1-IV1"));
        assert!(is_metadata_version("3.9-IV0"));
        assert!(!is_metadata_version("4"));
        assert!(!is_metadata_version("4.1.2"));
        assert!(!is_metadata_version("4.1-IV"));
        assert!(!is_metadata_version("latest"));
    }

    #[test]
    fn a_cluster_id_is_22_characters_of_base64url() {
        assert!(is_uuid_text("MkU3OEVBNTcwNTJENDM2Qk"));
        assert!(is_uuid_text("a-b_cdefghijklmnopqrst"));
        assert!(!is_uuid_text("MkU3OEVBNTcwNTJENDM2Q"));
        assert!(!is_uuid_text("MkU3OEVBNTcwNTJENDM2Q="));
        assert!(!is_uuid_text("zookeeper"));
        assert!(!is_uuid_text("-b_cdefghijklmnopqrsta"));
    }
}
