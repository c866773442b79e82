//! Network faults between hosts (turmoil's verbs): `partition`, `heal`, `loss`,
//! `bandwidth`, `delay`. Each fault has a name (`fault`, default the step's name) that
//! `heal` refers to; validation tracks which are active.

use std::time::Duration;

use serde::Serialize;

use super::{resolve_target, Action, Procedure, StepArgs};
use crate::scenario::load::Problems;
use crate::scenario::Target;

/// The keywords of this family.
pub const KEYWORDS: &[&str] = &["partition", "heal", "loss", "bandwidth", "delay"];

/// A network fault, or its removal.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "do", rename_all = "kebab-case")]
pub enum NetworkAction {
    /// Drop traffic between two groups of hosts (both ways, or only from `from` to `to`).
    Partition {
        /// One side.
        from: Vec<Target>,
        /// The other side (`None`: every node not in `from`).
        to: Option<Vec<Target>>,
        /// Both directions, or only packets from `from` to `to`.
        both_ways: bool,
        /// What the cut does to a packet.
        how: Cut,
        /// Name `heal` refers to.
        fault: String,
    },
    /// Remove one network fault, or all.
    Heal {
        /// Which (`None`: every active fault).
        fault: Option<String>,
    },
    /// Drop a share of a node's packets at random.
    Loss {
        /// The node.
        node: Target,
        /// Probability of dropping each packet, in (0, 1).
        probability: f64,
        /// Name `heal` refers to.
        fault: String,
    },
    /// Limit a node's bandwidth (both directions).
    Bandwidth {
        /// The node.
        node: Target,
        /// A tc rate, e.g. `1mbit`.
        rate: String,
        /// Name `heal` refers to.
        fault: String,
    },
    /// Add latency to a node's traffic (both directions; netem, or the delaying proxy).
    Delay {
        /// The node.
        node: Target,
        /// Added round-trip latency.
        latency: Duration,
        /// Jitter.
        jitter: Duration,
        /// Name `heal` refers to.
        fault: String,
    },
}

/// What a partition does to the packets it cuts (`how` in a `partition` step).
///
/// The difference is time, and ZooKeeper shows it: a dropped connect waits out its
/// timeout (ZooKeeper's election connects to each peer with a 5 s `cnxTimeout`, in turn), a
/// refused one fails at once. Seed 000's mitosis firewall refuses
/// (`iptables -A … -p tcp -j REJECT`), so its scenario says `how = "reject"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cut {
    /// Packets vanish (`-j DROP`): a cable pulled, a host gone silent.
    Drop,
    /// TCP packets are refused (`-p tcp -j REJECT`, an ICMP port-unreachable back to the
    /// sender: a connect fails at once); other packets are dropped, but ICMP, which
    /// carries the refusals, passes.
    Reject,
}

impl NetworkAction {
    /// The scenario keyword.
    pub fn keyword(&self) -> &'static str {
        match self {
            NetworkAction::Partition { .. } => "partition",
            NetworkAction::Heal { .. } => "heal",
            NetworkAction::Loss { .. } => "loss",
            NetworkAction::Bandwidth { .. } => "bandwidth",
            NetworkAction::Delay { .. } => "delay",
        }
    }
}

/// Parses a network fault step.
pub(super) fn parse(
    args: &mut StepArgs,
    procedure: &mut Procedure<'_>,
    p: &mut Problems<'_>,
) -> Option<Action> {
    if args.keyword == "heal" {
        let fault = args.string(p, "fault");
        if let Some(name) = &fault {
            if !procedure.faults.remove(name.get_ref()) {
                p.at(
                    name.span(),
                    args.field("fault"),
                    format!("no active fault `{}` at this point", name.get_ref()),
                    format!("active faults: {:?}; a fault is named by its `fault` (default: its step's name)", procedure.faults.iter().collect::<Vec<_>>()),
                );
            }
        } else {
            procedure.faults.clear();
        }
        return Some(Action::Network(NetworkAction::Heal {
            fault: fault.map(|f| f.into_inner()),
        }));
    }
    let kw = args.keyword.clone();
    let fault_given = args.string(p, "fault");
    let fault = fault_given
        .as_ref()
        .map(|f| f.get_ref().clone())
        .unwrap_or_else(|| args.name.get_ref().clone());
    if !procedure.faults.insert(fault.clone()) {
        p.at(
            fault_given
                .as_ref()
                .map(|f| f.span())
                .unwrap_or(args.name.span()),
            args.field("fault"),
            format!("fault `{fault}` is already active"),
            "heal it first, or give this one another `fault` name",
        );
    }
    if kw == "partition" {
        return partition(args, procedure, p, fault).map(Action::Network);
    }
    // loss, bandwidth, delay: one node, and what is done to its traffic
    let node = args.string(p, "node");
    let probability = (kw == "loss")
        .then(|| args.get::<f64>(p, "probability", "a number between 0 and 1"))
        .flatten();
    let rate = (kw == "bandwidth")
        .then(|| args.string(p, "rate"))
        .flatten();
    let latency_given = args.has("latency");
    let (latency, jitter) = if kw == "delay" {
        (
            args.duration(p, "latency", Duration::from_millis(100)),
            args.duration(p, "jitter", Duration::ZERO),
        )
    } else {
        (Duration::ZERO, Duration::ZERO)
    };
    let node = args.require(
        p,
        node,
        "node",
        "node = \"kafka1\", or \"leader:TOPIC/PARTITION\", \"follower:TOPIC/PARTITION\", \"@BOUND\"",
    );
    let action = match kw.as_str() {
        "loss" => {
            let pr = args.require(p, probability, "probability", "probability = 0.2")?;
            if !(*pr.get_ref() > 0.0 && *pr.get_ref() < 1.0) {
                p.at(
                    pr.span(),
                    args.field("probability"),
                    "must be between 0 and 1 (exclusive)",
                    "probability = 0.2 drops one packet in five",
                );
            }
            let node = resolve_target(p, &node?, &args.field("node"), procedure)?;
            NetworkAction::Loss {
                node,
                probability: pr.into_inner(),
                fault,
            }
        }
        "bandwidth" => {
            let r = args.require(p, rate, "rate", "rate = \"1mbit\"")?;
            if !valid_rate(r.get_ref()) {
                p.at(
                    r.span(),
                    args.field("rate"),
                    format!("`{}` is not a rate", r.get_ref()),
                    "a number and a unit: \"512kbit\", \"2mbit\", \"1gbit\"",
                );
            }
            let node = resolve_target(p, &node?, &args.field("node"), procedure)?;
            NetworkAction::Bandwidth {
                node,
                rate: r.into_inner(),
                fault,
            }
        }
        _ => {
            args.require(
                p,
                latency_given.then_some(()),
                "latency",
                "latency = \"200ms\"",
            )?;
            let node = resolve_target(p, &node?, &args.field("node"), procedure)?;
            NetworkAction::Delay {
                node,
                latency,
                jitter,
                fault,
            }
        }
    };
    Some(Action::Network(action))
}

fn partition(
    args: &mut StepArgs,
    procedure: &mut Procedure<'_>,
    p: &mut Problems<'_>,
    fault: String,
) -> Option<NetworkAction> {
    let from = args.strings(p, "from");
    let to = args.strings(p, "to");
    let direction = args.string(p, "direction");
    let how_given = args.string(p, "how");
    let from = args.require(
        p,
        from,
        "from",
        "from = [\"kafka1\"] (node, ensemble, leader:TOPIC/P, follower:TOPIC/P, @BOUND or clients)",
    )?;
    let group = |p: &mut Problems<'_>, v: &toml::Spanned<Vec<String>>, field: &str| {
        if v.get_ref().is_empty() {
            p.at(
                v.span(),
                field,
                "an empty group",
                "name at least one host, e.g. [\"kafka1\"] or [\"leader:orders/0\"]",
            );
        }
        v.get_ref()
            .iter()
            .flat_map(|e| {
                if e == "clients" {
                    vec![Target::Clients]
                } else if let Some(members) = procedure.cluster.ensembles.get(e) {
                    // a ZooKeeper ensemble by its name
                    members.iter().map(|m| Target::Node(m.clone())).collect()
                } else {
                    let one = toml::Spanned::new(v.span(), e.clone());
                    resolve_target(p, &one, field, procedure)
                        .into_iter()
                        .collect()
                }
            })
            .collect::<Vec<Target>>()
    };
    let from_targets = group(p, &from, &args.field("from"));
    let to = to.map(|t| group(p, &t, &args.field("to")));
    let both_ways = match direction.as_ref().map(|d| d.get_ref().as_str()) {
        None | Some("both") => true,
        Some("one-way") => false,
        Some(other) => {
            p.at(
                direction.as_ref().map(|d| d.span()).unwrap_or_default(),
                args.field("direction"),
                format!("`{other}` is not a direction"),
                "direction = \"both\" (default) or \"one-way\" (only packets from `from` to `to` are dropped)",
            );
            true
        }
    };
    let how = match how_given.as_ref().map(|h| h.get_ref().as_str()) {
        None | Some("drop") => Cut::Drop,
        Some("reject") => Cut::Reject,
        Some(other) => {
            p.at(
                how_given.as_ref().map(|h| h.span()).unwrap_or_default(),
                args.field("how"),
                format!("`{other}` is not a way to cut"),
                "how = \"drop\" (default: packets vanish, connects wait out their timeouts) or \"reject\" (TCP is refused at once, as `iptables -j REJECT`)",
            );
            Cut::Drop
        }
    };
    Some(NetworkAction::Partition {
        from: from_targets,
        to,
        both_ways,
        how,
        fault,
    })
}

/// A tc rate: digits, then bit, kbit, mbit, gbit, bps, kbps, mbps or gbps.
fn valid_rate(r: &str) -> bool {
    let i = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
    i > 0 && ["bit", "kbit", "mbit", "gbit", "bps", "kbps", "mbps", "gbps"].contains(&&r[i..])
}
