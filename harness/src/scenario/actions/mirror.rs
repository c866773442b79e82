//! Mirror: MirrorMaker 2 from the run's first cluster to `[cluster.target]` —
//! `mirror-start`, `mirror-wait` (the copy caught up), `mirror-stop`.

use std::time::Duration;

use serde::Serialize;
use toml::Spanned;

use super::{Action, Procedure, StepArgs};
use crate::scenario::load::{config_map, Problems};

/// The keywords of this family.
pub const KEYWORDS: &[&str] = &["mirror-start", "mirror-wait", "mirror-stop"];

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
