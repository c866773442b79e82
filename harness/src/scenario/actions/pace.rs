//! Pace: `sleep` (the load goes on) and `mark` (a named point in the timeline).

use std::time::Duration;

use serde::Serialize;

use super::{Action, Procedure, StepArgs};
use crate::scenario::load::Problems;

/// The keywords of this family.
pub const KEYWORDS: &[&str] = &["sleep", "mark"];

/// Waiting, and marking the timeline.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "do", rename_all = "kebab-case")]
pub enum PaceAction {
    /// Do nothing for a while (the load goes on).
    Sleep {
        /// How long.
        duration: Duration,
    },
    /// A named point in the timeline (the step's name).
    Mark,
}

impl PaceAction {
    /// The scenario keyword.
    pub fn keyword(&self) -> &'static str {
        match self {
            PaceAction::Sleep { .. } => "sleep",
            PaceAction::Mark => "mark",
        }
    }
}

/// Parses a `sleep` or `mark` step.
pub(super) fn parse(
    args: &mut StepArgs,
    _procedure: &mut Procedure<'_>,
    p: &mut Problems<'_>,
) -> Option<Action> {
    let action = match args.keyword.as_str() {
        "sleep" => {
            let given = args.has("duration");
            let duration = args.duration(p, "duration", Duration::ZERO);
            args.require(p, given.then_some(()), "duration", "duration = \"10s\"")?;
            PaceAction::Sleep { duration }
        }
        _ => PaceAction::Mark,
    };
    Some(Action::Pace(action))
}
