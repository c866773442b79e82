//! Which step was running when something happened.
//!
//! The timeline gives the start of each step and of the phases around them (warmup,
//! settle, drain, final read). An event at time `t` belongs to the last of those that began
//! at or before `t + grace`: a step's effects often show a few milliseconds *before* its
//! recorded start (the last ack before a kill lands just before the kill is sent), and
//! never much later than the step's own start.

use serde::Serialize;

use crate::run::timeline::TimelineEvent;

/// A step as it ran, in ms relative to the run start.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StepSpan {
    /// 0-based index.
    pub index: usize,
    /// Name.
    pub name: String,
    /// Action keyword.
    pub action: String,
    /// Start, ms since run start.
    pub start_ms: u64,
    /// End, ms since run start (`None` when the run died during the step).
    pub end_ms: Option<u64>,
    /// Whether it succeeded (`None` when it never ended).
    pub ok: Option<bool>,
    /// Its error.
    pub error: Option<String>,
    /// The node it acted on.
    pub node: Option<String>,
}

/// Maps times to the step or phase label running then.
#[derive(Debug, Clone)]
pub struct Attribution {
    /// (start ms since run start, label), sorted by start.
    starts: Vec<(u64, String)>,
    grace_ms: u64,
    /// The steps, for the report.
    pub steps: Vec<StepSpan>,
    /// When the consumers were told to stop (start of the final read), ms since run start.
    pub consumers_end_ms: Option<u64>,
}

/// Label of a phase in reports.
pub fn phase_label(name: &str) -> String {
    format!("({name})")
}

impl Attribution {
    /// Builds from a timeline; `t0_ms` is the run start.
    pub fn from_timeline(events: &[TimelineEvent], t0_ms: u64, grace_ms: u64) -> Attribution {
        let rel = |t: u64| t.saturating_sub(t0_ms);
        let mut starts = vec![(0, phase_label("setup"))];
        let mut steps: Vec<StepSpan> = Vec::new();
        let mut consumers_end_ms = None;
        for e in events {
            match e {
                TimelineEvent::Phase { t_ms, name } => {
                    starts.push((rel(*t_ms), phase_label(name)));
                    if name == "final-read" {
                        consumers_end_ms = Some(rel(*t_ms));
                    }
                }
                TimelineEvent::StepStart {
                    t_ms,
                    index,
                    name,
                    action,
                } => {
                    starts.push((rel(*t_ms), name.clone()));
                    steps.push(StepSpan {
                        index: *index,
                        name: name.clone(),
                        action: action.clone(),
                        start_ms: rel(*t_ms),
                        end_ms: None,
                        ok: None,
                        error: None,
                        node: None,
                    });
                }
                TimelineEvent::StepEnd {
                    t_ms,
                    index,
                    ok,
                    error,
                    node,
                    ..
                } => {
                    if let Some(s) = steps.iter_mut().find(|s| s.index == *index) {
                        s.end_ms = Some(rel(*t_ms));
                        s.ok = Some(*ok);
                        s.error = error.clone();
                        s.node = node.clone();
                    }
                }
                _ => {}
            }
        }
        starts.sort_by_key(|(t, _)| *t);
        Attribution {
            starts,
            grace_ms,
            steps,
            consumers_end_ms,
        }
    }

    /// The label running at `t_ms` (ms since run start), with the grace.
    pub fn label_at(&self, t_ms: u64) -> &str {
        let t = t_ms + self.grace_ms;
        let i = self.starts.partition_point(|(s, _)| *s <= t);
        &self.starts[i.saturating_sub(1)].1
    }

    /// The first step that started strictly after `t_ms`.
    pub fn first_step_after(&self, t_ms: u64) -> Option<&StepSpan> {
        self.steps.iter().find(|s| s.start_ms > t_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_with_grace() {
        let t0 = 1_000_000;
        let ev = vec![
            TimelineEvent::Phase {
                t_ms: t0 + 100,
                name: "warmup".into(),
            },
            TimelineEvent::StepStart {
                t_ms: t0 + 5000,
                index: 0,
                name: "kill".into(),
                action: "kill".into(),
            },
            TimelineEvent::StepEnd {
                t_ms: t0 + 5001,
                index: 0,
                name: "kill".into(),
                ok: true,
                error: None,
                node: Some("kafka1".into()),
            },
            TimelineEvent::Phase {
                t_ms: t0 + 9000,
                name: "settle".into(),
            },
        ];
        let a = Attribution::from_timeline(&ev, t0, 500);
        assert_eq!(a.label_at(50), "(warmup)");
        assert_eq!(a.label_at(4000), "(warmup)");
        assert_eq!(a.label_at(4600), "kill");
        assert_eq!(a.label_at(8000), "kill");
        assert_eq!(a.label_at(9500), "(settle)");
        assert_eq!(a.steps[0].node.as_deref(), Some("kafka1"));
        assert_eq!(a.first_step_after(100).unwrap().name, "kill");
        assert!(a.first_step_after(6000).is_none());
    }
}
