//! Mirror: MirrorMaker 2 from the run's first cluster to `[cluster.target]` —
//! `mirror-start`, `mirror-wait` (the copy caught up), `mirror-switch` (the consumers,
//! then the producers, moved to the target: the switch-over), `mirror-stop`.

use std::time::Duration;

use serde::Serialize;
use toml::Spanned;

use super::{Action, Procedure, StepArgs};
use crate::scenario::load::{config_map, Problems};

/// The keywords of this family.
pub const KEYWORDS: &[&str] = &[
    "mirror-start",
    "mirror-wait",
    "mirror-switch",
    "mirror-stop",
];

/// MirrorMaker 2 between the run's two clusters.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "do", rename_all = "kebab-case")]
pub enum MirrorAction {
    /// Start MirrorMaker 2, source → target, names kept, group offsets synced.
    MirrorStart {
        /// The topics copied (default: every workload topic).
        topics: Vec<String>,
        /// The transactional copy (KIP-618); false: at-least-once.
        exactly_once: bool,
        /// `tasks.max`.
        tasks: u32,
        /// MirrorMaker properties over the harness's (its `mm2.properties` keys, e.g.
        /// `"source.consumer.auto.offset.reset" = "latest"`).
        config: std::collections::BTreeMap<String, String>,
    },
    /// Wait until the copy has every record the source had when the step started.
    MirrorWait {
        /// How long at most.
        timeout: Duration,
    },
    /// Move the consumers or the producers to the target cluster: their discovery line
    /// names the target's brokers; the step waits until each of their clients reconnected.
    /// Consumers join their group there at the offsets MirrorMaker synced for it.
    MirrorSwitch {
        /// `consume` or `produce`.
        #[serde(serialize_with = "role_name")]
        clients: workers::Role,
        /// How long the clients have to reconnect.
        timeout: Duration,
    },
    /// Stop MirrorMaker 2.
    MirrorStop {
        /// SIGKILL (a crash: nothing committed on the way out) instead of SIGTERM.
        kill: bool,
    },
}

impl MirrorAction {
    /// The scenario keyword.
    pub fn keyword(&self) -> &'static str {
        match self {
            MirrorAction::MirrorStart { .. } => "mirror-start",
            MirrorAction::MirrorWait { .. } => "mirror-wait",
            MirrorAction::MirrorSwitch { .. } => "mirror-switch",
            MirrorAction::MirrorStop { .. } => "mirror-stop",
        }
    }
}

/// Parses a mirror step.
pub(super) fn parse(
    args: &mut StepArgs,
    procedure: &mut Procedure<'_>,
    p: &mut Problems<'_>,
) -> Option<Action> {
    if procedure.cluster.target.is_none() {
        p.at(
            args.keyword_span.clone(),
            args.field("do"),
            format!("`{}` needs a second cluster", args.keyword),
            "name the target in [cluster.target] (brokers = [...], ensemble = \"...\")",
        );
        return None;
    }
    let action = match args.keyword.as_str() {
        "mirror-start" => {
            let given = args.strings(p, "topics");
            let workload: Vec<String> = procedure
                .workload
                .topics
                .iter()
                .map(|t| t.name.clone())
                .collect();
            let topics = match given {
                None => workload,
                Some(t) => {
                    for name in t.get_ref() {
                        if !workload.contains(name) {
                            p.at(
                                t.span(),
                                args.field("topics"),
                                format!("`{name}` is not a workload topic"),
                                format!("the workload's topics: {}", workload.join(", ")),
                            );
                        }
                    }
                    t.into_inner()
                }
            };
            let exactly_once = args
                .flag(p, "exactly_once")
                .map(|f| f.into_inner())
                .unwrap_or(false);
            let tasks = match args.int(p, "tasks") {
                None => 2,
                Some(t) if (1..=64).contains(t.get_ref()) => *t.get_ref() as u32,
                Some(t) => {
                    p.at(
                        t.span(),
                        args.field("tasks"),
                        format!("{} tasks", t.get_ref()),
                        "tasks = 1 to 64 (MirrorMaker's tasks.max)",
                    );
                    2
                }
            };
            let config: Option<Spanned<std::collections::BTreeMap<String, toml::Value>>> = args
                .get(
                    p,
                    "config",
                    "a table of MirrorMaker properties, e.g. { \"tasks.max\" = \"4\" }",
                );
            let config = config
                .map(|c| config_map(p, c.get_ref(), c.span(), &args.field("config")))
                .unwrap_or_default();
            if procedure.mirror_running {
                p.at(
                    args.keyword_span.clone(),
                    args.field("do"),
                    "MirrorMaker 2 runs already at this point",
                    "a `mirror-stop` step before starting it again",
                );
            }
            procedure.mirror_running = true;
            MirrorAction::MirrorStart {
                topics,
                exactly_once,
                tasks,
                config,
            }
        }
        "mirror-wait" => {
            let timeout = args.duration(p, "timeout", Duration::from_secs(120));
            needs_mirrormaker(args, procedure, p);
            MirrorAction::MirrorWait { timeout }
        }
        "mirror-switch" => {
            let timeout = args.duration(p, "timeout", Duration::from_secs(60));
            needs_mirrormaker(args, procedure, p);
            let field = args.field("clients");
            let clients = args.string(p, "clients");
            let span = clients
                .as_ref()
                .map(|c| c.span())
                .unwrap_or_else(|| args.keyword_span.clone());
            let role = match clients.as_ref().map(|c| c.get_ref().as_str()) {
                Some("consumers") => workers::Role::Consume,
                Some("producers") => workers::Role::Produce,
                other => {
                    p.at(
                        span.clone(),
                        field.clone(),
                        match other {
                            None => "no `clients`".to_string(),
                            Some(c) => format!("`{c}` are not clients the run moves"),
                        },
                        "clients = \"consumers\" (first: they join their group on the target at the offsets MirrorMaker synced), then clients = \"producers\"",
                    );
                    return None;
                }
            };
            switch_order(role, span, field, procedure, p);
            MirrorAction::MirrorSwitch {
                clients: role,
                timeout,
            }
        }
        _ => {
            let kill = args
                .flag(p, "kill")
                .map(|f| f.into_inner())
                .unwrap_or(false);
            needs_mirrormaker(args, procedure, p);
            procedure.mirror_running = false;
            MirrorAction::MirrorStop { kill }
        }
    };
    Some(Action::Mirror(action))
}

/// The switch-over's order: the consumers once (the workload has some), then the
/// producers once (not in transactions: their transactions are judged on the source's
/// final read only).
fn switch_order(
    role: workers::Role,
    span: std::ops::Range<usize>,
    field: String,
    procedure: &mut Procedure<'_>,
    p: &mut Problems<'_>,
) {
    let mut problem = |what: &str, hint: &str| p.at(span.clone(), field.clone(), what, hint);
    if role == workers::Role::Consume {
        if procedure.workload.consumers == 0 {
            problem(
                "the workload has no consumers",
                "consumers = N in [workload]",
            );
        }
        if procedure.consumers_switched.is_some() {
            problem(
                "the consumers are on the target already at this point",
                "one `mirror-switch` of the consumers",
            );
        }
        procedure.consumers_switched = Some((span.clone(), field.clone()));
    } else {
        if procedure.consumers_switched.is_none() {
            problem(
                "the producers move before the consumers",
                "move the consumers first (clients = \"consumers\"): consumers left on the source would never see what the producers write on the target",
            );
        }
        if procedure.producers_switched {
            problem(
                "the producers are on the target already at this point",
                "one `mirror-switch` of the producers",
            );
        }
        if procedure.workload.producer.transactions.is_some() {
            problem(
                "transactional producers cannot move to the target",
                "the checker judges transactions on the source's final read only; drop `transactions` or the switch",
            );
        }
        procedure.producers_switched = true;
    }
}

fn role_name<S: serde::Serializer>(role: &workers::Role, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(match role {
        workers::Role::Consume => "consumers",
        _ => "producers",
    })
}

/// Reports a step that needs MirrorMaker running where no `mirror-start` started it.
fn needs_mirrormaker(args: &StepArgs, procedure: &Procedure<'_>, p: &mut Problems<'_>) {
    if !procedure.mirror_running {
        p.at(
            args.keyword_span.clone(),
            args.field("do"),
            "MirrorMaker 2 does not run at this point",
            "a `mirror-start` step before",
        );
    }
}
