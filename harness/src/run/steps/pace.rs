//! Pace steps: `sleep` and `mark`.

use workers::clock::now_ms;

use super::Executor;
use crate::error::HarnessError;
use crate::rundir::timeline::TimelineEvent;
use crate::scenario::PaceAction;

impl Executor<'_> {
    /// Sleeps (interruptibly) or records a mark named after the step.
    pub(super) fn pace(&mut self, step: &str, action: &PaceAction) -> Result<(), HarnessError> {
        match action {
            PaceAction::Sleep { duration } => {
                if self.shutdown.sleep(*duration) {
                    Err(HarnessError::Interrupted)
                } else {
                    Ok(())
                }
            }
            PaceAction::Mark => {
                self.timeline.record(&TimelineEvent::Mark {
                    t_ms: now_ms(),
                    name: step.to_string(),
                });
                Ok(())
            }
        }
    }
}
