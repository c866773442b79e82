//! Which step was running when something happened.
//!
//! The timeline gives the start of each step and of the phases around them (warmup,
//! settle, drain, final read). An event at time `t` belongs to the step or phase running at
//! `t` — except in waiting time (a phase, a `sleep`/`mark`/`wait-healthy` step, the pause
//! after a step's end), where the grace reaches to the acting steps (stop, kill, partition,
//! …) on either side, the next one first:
//! - an acting step that starts within `grace` after `t` takes the event: effects of a step
//!   are often measured a few milliseconds *before* its recorded start (the last ack before
//!   a kill lands just before the kill is sent);
//! - else an acting step that ended within `grace` before `t` takes it: what the step cut
//!   short is often measured just *after* its end (requests in flight when a partition's
//!   firewall rules went in are answered a few ms later, so the last ack before the
//!   partition's window lands after the step ended and a `sleep` began — and a sleep causes
//!   nothing).
//!
//! An acting step that is itself running keeps what happens during it.

use serde::Serialize;

use crate::rundir::timeline::TimelineEvent;

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
    /// Where each label starts, sorted by start.
    starts: Vec<LabelStart>,
    grace_ms: u64,
    /// The steps, for the report.
    pub steps: Vec<StepSpan>,
    /// When the consumers were told to stop (start of the final read), ms since run start.
    pub consumers_end_ms: Option<u64>,
    /// When the producers were told to stop (start of the drain), ms since run start.
    pub producers_end_ms: Option<u64>,
}

/// From `at_ms` (since run start) on, `label` runs, until the next entry.
#[derive(Debug, Clone)]
struct LabelStart {
    /// Ms since run start.
    at_ms: u64,
    /// The step's name, or a phase's label.
    label: String,
    /// What runs from here.
    kind: LabelKind,
}

/// Acting or waiting, for the grace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LabelKind {
    /// An acting step (stop, kill, partition, zk-copy, an operator's mark, …) is running.
    Acting,
    /// Waiting: a phase, a sleep/mark/wait-healthy/zk-config step.
    Waiting,
    /// Waiting after an acting step's end, under its name until the next step starts.
    AfterActing,
}

impl LabelStart {
    fn new(at_ms: u64, label: String, kind: LabelKind) -> LabelStart {
        LabelStart { at_ms, label, kind }
    }
}

/// Whether a step of this action only waits (or rewrites files that act only at a later
/// restart), causing nothing itself.
fn waits(action: &str) -> bool {
    matches!(
        action,
        "sleep" | "mark" | "wait-healthy" | "zk-config" | "node-config"
    )
}

/// Label of a phase in reports.
pub fn phase_label(name: &str) -> String {
    format!("({name})")
}

impl Attribution {
    /// Builds from a timeline; `t0_ms` is the run start.
    pub fn from_timeline(events: &[TimelineEvent], t0_ms: u64, grace_ms: u64) -> Attribution {
        let rel = |t: u64| t.saturating_sub(t0_ms);
        let mut starts = vec![LabelStart::new(0, phase_label("setup"), LabelKind::Waiting)];
        let mut steps: Vec<StepSpan> = Vec::new();
        let mut consumers_end_ms = None;
        let mut producers_end_ms = None;
        let mut marks: Vec<(u64, String)> = Vec::new();
        for e in events {
            match e {
                TimelineEvent::Phase { t_ms, name } => {
                    starts.push(LabelStart::new(
                        rel(*t_ms),
                        phase_label(name),
                        LabelKind::Waiting,
                    ));
                    if name == "final-read" {
                        consumers_end_ms = Some(rel(*t_ms));
                    }
                    if name == "drain" {
                        producers_end_ms = Some(rel(*t_ms));
                    }
                }
                TimelineEvent::StepStart {
                    t_ms,
                    index,
                    name,
                    action,
                } => {
                    starts.push(LabelStart::new(
                        rel(*t_ms),
                        name.clone(),
                        if waits(action) {
                            LabelKind::Waiting
                        } else {
                            LabelKind::Acting
                        },
                    ));
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
                        // after its end and before the next step (the harness takes a
                        // snapshot), the step's label goes on, as waiting time
                        starts.push(LabelStart::new(
                            rel(*t_ms),
                            s.name.clone(),
                            if waits(&s.action) {
                                LabelKind::Waiting
                            } else {
                                LabelKind::AfterActing
                            },
                        ));
                        s.end_ms = Some(rel(*t_ms));
                        s.ok = Some(*ok);
                        s.error = error.clone();
                        s.node = node.clone();
                    }
                }
                TimelineEvent::Mark { t_ms, name } => marks.push((rel(*t_ms), name.clone())),
                _ => {}
            }
        }
        // Marks an operator (or a runbook script) gave with `harness mark`: a `mark` step
        // records one too, already a step. An operator's mark names what they are about to
        // do, so it is read as a step that acts at its instant and then waits in its name
        // (a step's start and end): what happens from it on is the mark's, and so is what
        // happens within the grace before it (the last ack before a kill lands just before
        // the operator's mark of it, as before a step's start).
        let mut next_index = steps.iter().map(|s| s.index + 1).max().unwrap_or(0);
        for (t, name) in marks {
            let is_step = steps
                .iter()
                .any(|s| s.action == "mark" && s.name == name && s.start_ms.abs_diff(t) < 1000);
            if is_step {
                continue;
            }
            starts.push(LabelStart::new(t, name.clone(), LabelKind::Acting));
            starts.push(LabelStart::new(t + 1, name.clone(), LabelKind::AfterActing));
            steps.push(StepSpan {
                index: next_index,
                name,
                action: "mark".into(),
                start_ms: t,
                end_ms: Some(t),
                ok: Some(true),
                error: None,
                node: None,
            });
            next_index += 1;
        }
        steps.sort_by_key(|s| s.start_ms);
        starts.sort_by_key(|l| l.at_ms);
        Attribution {
            starts,
            grace_ms,
            steps,
            consumers_end_ms,
            producers_end_ms,
        }
    }

    /// The label running at `t_ms` (ms since run start), with the grace.
    pub fn label_at(&self, t_ms: u64) -> &str {
        let i = self
            .starts
            .partition_point(|l| l.at_ms <= t_ms)
            .saturating_sub(1);
        let here = &self.starts[i];
        if here.kind == LabelKind::Acting {
            return &here.label;
        }
        // the next acting step, if it starts within the grace
        if let Some(next) = self.starts[i + 1..]
            .iter()
            .take_while(|l| l.at_ms <= t_ms + self.grace_ms)
            .find(|l| l.kind == LabelKind::Acting)
        {
            return &next.label;
        }
        // else the acting step that ended within the grace before
        if let Some(ended) = self.starts[..=i]
            .iter()
            .rev()
            .take_while(|l| l.at_ms + self.grace_ms >= t_ms)
            .find(|l| l.kind == LabelKind::AfterActing)
        {
            return &ended.label;
        }
        &here.label
    }

    /// The last acting step (not a phase, not sleep/mark/wait-healthy) that started at or
    /// before `t_ms + grace`; the label at `t_ms` when there is none.
    pub fn acting_step_at(&self, t_ms: u64) -> &str {
        self.starts
            .iter()
            .rev()
            .find(|l| l.kind == LabelKind::Acting && l.at_ms <= t_ms + self.grace_ms)
            .map(|l| l.label.as_str())
            .unwrap_or_else(|| self.label_at(t_ms))
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
    fn an_operators_mark_labels_what_follows_it_and_a_mark_step_is_not_counted_twice() {
        let t0 = 1_000_000;
        let ev = vec![
            TimelineEvent::Phase {
                t_ms: t0 + 100,
                name: "watch".into(),
            },
            TimelineEvent::Mark {
                t_ms: t0 + 5000,
                name: "restart kafka2".into(),
            },
            TimelineEvent::Mark {
                t_ms: t0 + 9000,
                name: "done".into(),
            },
        ];
        let a = Attribution::from_timeline(&ev, t0, 500);
        assert_eq!(a.label_at(4000), "(watch)");
        assert_eq!(
            a.label_at(4700),
            "restart kafka2",
            "within the grace before it"
        );
        assert_eq!(a.label_at(8400), "restart kafka2");
        assert_eq!(
            a.label_at(8700),
            "done",
            "waiting under a mark, just before the next one"
        );
        assert_eq!(a.label_at(9500), "done");
        assert_eq!(a.acting_step_at(8000), "restart kafka2");
        let names: Vec<&str> = a.steps.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["restart kafka2", "done"]);
        assert!(a.steps.iter().all(|s| s.action == "mark"));
        // a `mark` step records a Mark event too: one step, not two
        let ev = vec![
            TimelineEvent::StepStart {
                t_ms: t0 + 1000,
                index: 0,
                name: "here".into(),
                action: "mark".into(),
            },
            TimelineEvent::Mark {
                t_ms: t0 + 1001,
                name: "here".into(),
            },
            TimelineEvent::StepEnd {
                t_ms: t0 + 1002,
                index: 0,
                name: "here".into(),
                ok: true,
                error: None,
                node: None,
            },
        ];
        let b = Attribution::from_timeline(&ev, t0, 500);
        assert_eq!(b.steps.len(), 1);
    }

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
        assert_eq!(a.label_at(50), "(setup)");
        assert_eq!(a.label_at(150), "(warmup)");
        assert_eq!(a.label_at(4000), "(warmup)");
        assert_eq!(a.label_at(4600), "kill");
        assert_eq!(a.label_at(8000), "kill");
        assert_eq!(a.label_at(9500), "(settle)");
        // an acting step keeps what happens while it runs, even just before the next step
        let ev = vec![
            TimelineEvent::StepStart {
                t_ms: t0 + 1000,
                index: 0,
                name: "stop".into(),
                action: "stop".into(),
            },
            TimelineEvent::StepEnd {
                t_ms: t0 + 1500,
                index: 0,
                name: "stop".into(),
                ok: true,
                error: None,
                node: None,
            },
            TimelineEvent::StepStart {
                t_ms: t0 + 1501,
                index: 1,
                name: "down".into(),
                action: "sleep".into(),
            },
            TimelineEvent::StepStart {
                t_ms: t0 + 9000,
                index: 2,
                name: "kill".into(),
                action: "kill".into(),
            },
        ];
        let b = Attribution::from_timeline(&ev, t0, 500);
        assert_eq!(b.label_at(1200), "stop");
        assert_eq!(
            b.label_at(1600),
            "stop",
            "just after `stop` ended, in the sleep that followed: the stop's"
        );
        assert_eq!(b.label_at(2100), "down", "beyond the grace after `stop`");
        assert_eq!(
            b.label_at(8700),
            "kill",
            "waiting time just before an acting step"
        );
        assert_eq!(b.label_at(8400), "down");
        assert_eq!(a.steps[0].node.as_deref(), Some("kafka1"));
        assert_eq!(a.first_step_after(100).unwrap().name, "kill");
        assert!(a.first_step_after(6000).is_none());
        // between one step's end and the next step's start (the snapshot taken before
        // each step), and during a config rewrite, an event just before an acting step
        // belongs to it: a smoke-test window starts at the last success before the cut
        let step = |t: u64, i: usize, name: &str, action: &str| TimelineEvent::StepStart {
            t_ms: t0 + t,
            index: i,
            name: name.into(),
            action: action.into(),
        };
        let end = |t: u64, i: usize, name: &str| TimelineEvent::StepEnd {
            t_ms: t0 + t,
            index: i,
            name: name.into(),
            ok: true,
            error: None,
            node: None,
        };
        let ev = vec![
            step(1000, 0, "switch", "zk-connect"),
            end(5000, 0, "switch"),
            step(5200, 1, "configs", "zk-config"),
            end(5201, 1, "configs"),
            step(5400, 2, "split", "partition"),
            end(5500, 2, "split"),
        ];
        let c = Attribution::from_timeline(&ev, t0, 500);
        assert_eq!(c.label_at(4000), "switch");
        assert_eq!(
            c.label_at(4200),
            "switch",
            "the next acting step is 1.2 s away"
        );
        assert_eq!(
            c.label_at(5050),
            "split",
            "after `switch` ended, within the grace"
        );
        assert_eq!(c.label_at(5300), "split", "during a config rewrite");
        assert_eq!(c.label_at(6000), "split");
    }

    /// CI saw this: the last ack on the cut leader's partition came 17 ms after the
    /// partition step ended, when the sleep under the fault had begun, and the window was
    /// blamed on the sleep.
    #[test]
    fn what_lands_just_after_an_acting_step_ended_is_still_its_own() {
        let t0 = 1_000_000;
        let step = |t: u64, i: usize, name: &str, action: &str| TimelineEvent::StepStart {
            t_ms: t0 + t,
            index: i,
            name: name.into(),
            action: action.into(),
        };
        let end = |t: u64, i: usize, name: &str| TimelineEvent::StepEnd {
            t_ms: t0 + t,
            index: i,
            name: name.into(),
            ok: true,
            error: None,
            node: None,
        };
        let ev = vec![
            step(12_800, 0, "isolate the leader", "partition"),
            end(12_862, 0, "isolate the leader"),
            step(12_863, 1, "leader is cut off", "sleep"),
            end(32_863, 1, "leader is cut off"),
            step(32_864, 2, "heal", "heal"),
            end(32_900, 2, "heal"),
            step(32_901, 3, "cluster recovers", "wait-healthy"),
            end(33_500, 3, "cluster recovers"),
            step(40_000, 4, "slept", "sleep"),
            end(41_000, 4, "slept"),
            step(41_001, 5, "kill", "kill"),
        ];
        let a = Attribution::from_timeline(&ev, t0, 500);
        assert_eq!(a.label_at(12_880), "isolate the leader");
        assert_eq!(a.label_at(13_362), "isolate the leader", "the grace's edge");
        assert_eq!(a.label_at(13_363), "leader is cut off");
        assert_eq!(a.label_at(20_000), "leader is cut off");
        assert_eq!(
            a.label_at(32_500),
            "heal",
            "before an acting step is its, first"
        );
        assert_eq!(a.label_at(33_000), "heal", "after `heal`, in wait-healthy");
        assert_eq!(a.label_at(33_600), "cluster recovers");
        // a waiting step's own end gives no grace after it
        assert_eq!(a.label_at(40_500), "slept");
        assert_eq!(a.label_at(41_000), "kill");
    }
}
