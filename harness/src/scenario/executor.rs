//! The step executor: runs a scenario's steps in order against the cluster, recording each
//! in the timeline (a cluster snapshot before it, its start and its end).
//!
//! A step that fails ends the procedure: the remaining steps are not run (a runbook does not
//! go on after a step that did not work), but the workload, the final read and the check
//! still happen, and the failed step appears in the report.

use std::collections::HashMap;
use std::time::Duration;

use workers::clock::now_ms;

use super::{Action, Scenario, Step, Target};
use crate::cluster::Cluster;
use crate::error::HarnessError;
use crate::run::timeline::{Timeline, TimelineEvent};
use crate::shutdown::Shutdown;

/// How a step went.
#[derive(Debug, Clone)]
pub struct StepOutcome {
    /// Step index.
    pub index: usize,
    /// Step name.
    pub name: String,
    /// Error, when it failed.
    pub error: Option<String>,
}

/// Runs steps; keeps `bind` names across steps.
pub struct Executor<'a> {
    cluster: &'a mut Cluster,
    timeline: &'a mut Timeline,
    shutdown: &'a Shutdown,
    scenario: &'a Scenario,
    bindings: HashMap<String, String>,
    /// Called with the step name when a step starts (for live progress).
    on_step: Box<dyn Fn(&str) + 'a>,
}

impl<'a> Executor<'a> {
    /// An executor for `scenario` on `cluster`.
    pub fn new(
        cluster: &'a mut Cluster,
        timeline: &'a mut Timeline,
        shutdown: &'a Shutdown,
        scenario: &'a Scenario,
        on_step: Box<dyn Fn(&str) + 'a>,
    ) -> Self {
        Executor {
            cluster,
            timeline,
            shutdown,
            scenario,
            bindings: HashMap::new(),
            on_step,
        }
    }

    /// Runs every step; stops at the first failure or on shutdown.
    pub fn run_all(&mut self) -> Vec<StepOutcome> {
        let mut out = Vec::new();
        for (index, step) in self.scenario.steps.iter().enumerate() {
            if self.shutdown.requested() {
                break;
            }
            (self.on_step)(&step.name);
            let snapshot = self
                .cluster
                .admin()
                .ok()
                .and_then(|a| a.snapshot(Duration::from_secs(3)).ok());
            if let Some(snapshot) = snapshot.clone() {
                self.timeline.record(&TimelineEvent::Snapshot {
                    t_ms: now_ms(),
                    snapshot,
                });
            }
            self.timeline.record(&TimelineEvent::StepStart {
                t_ms: now_ms(),
                index,
                name: step.name.clone(),
                action: step.action.keyword().into(),
            });
            let (node, result) = self.execute(step, snapshot.as_ref());
            let error = result.err().map(|e| e.to_string());
            self.timeline.record(&TimelineEvent::StepEnd {
                t_ms: now_ms(),
                index,
                name: step.name.clone(),
                ok: error.is_none(),
                error: error.clone(),
                node,
            });
            if let Some(e) = &error {
                tracing::warn!("step `{}` failed: {e}", step.name);
            }
            let failed = error.is_some();
            out.push(StepOutcome {
                index,
                name: step.name.clone(),
                error,
            });
            if failed {
                break;
            }
        }
        out
    }

    fn resolve(
        &self,
        t: &Target,
        snapshot: Option<&crate::kafka::ClusterSnapshot>,
    ) -> Result<String, HarnessError> {
        let part = |topic: &str, partition: i32| {
            snapshot
                .and_then(|s| s.partition(topic, partition))
                .cloned()
                .ok_or_else(|| {
                    HarnessError::Cluster(format!("no metadata for {topic}/{partition}"))
                })
        };
        let name_of = |id: i32| {
            self.cluster.broker_name(id).ok_or_else(|| {
                HarnessError::Cluster(format!("broker id {id} is not a node of this cluster"))
            })
        };
        match t {
            Target::Node(n) => Ok(n.clone()),
            Target::Clients => Ok("clients".into()),
            Target::Bound(b) => self.bindings.get(b).cloned().ok_or_else(|| {
                HarnessError::Cluster(format!("@{b} was never bound (its step failed?)"))
            }),
            Target::Leader { topic, partition } => {
                let p = part(topic, *partition)?;
                if p.leader < 0 {
                    return Err(HarnessError::Cluster(format!(
                        "{topic}/{partition} has no leader"
                    )));
                }
                name_of(p.leader)
            }
            Target::Follower { topic, partition } => {
                let p = part(topic, *partition)?;
                let f = p
                    .isr
                    .iter()
                    .chain(p.replicas.iter())
                    .find(|r| **r != p.leader)
                    .ok_or_else(|| {
                        HarnessError::Cluster(format!(
                            "{topic}/{partition} has no follower (replicas {:?})",
                            p.replicas
                        ))
                    })?;
                name_of(*f)
            }
        }
    }

    fn execute(
        &mut self,
        step: &Step,
        snapshot: Option<&crate::kafka::ClusterSnapshot>,
    ) -> (Option<String>, Result<(), HarnessError>) {
        let sd = self.shutdown;
        let node_action = |a: &Action| match a {
            Action::Start { node }
            | Action::Stop { node }
            | Action::Kill { node }
            | Action::Pause { node }
            | Action::Resume { node }
            | Action::Restart { node } => Some(node.clone()),
            _ => None,
        };
        if let Some(target) = node_action(&step.action) {
            let name = match self.resolve(&target, snapshot) {
                Ok(n) => n,
                Err(e) => return (None, Err(e)),
            };
            if let Some(b) = &step.bind {
                self.bindings.insert(b.clone(), name.clone());
            }
            let r = match &step.action {
                Action::Start { .. } => self.cluster.start(&name, sd),
                Action::Stop { .. } => self.cluster.stop(&name, Duration::from_secs(120)),
                Action::Kill { .. } => self.cluster.kill(&name),
                Action::Pause { .. } => self.cluster.pause(&name),
                Action::Resume { .. } => self.cluster.resume(&name),
                Action::Restart { .. } => self.cluster.restart(&name, sd),
                _ => unreachable!(),
            };
            return (Some(name), r);
        }
        let r = match &step.action {
            Action::RollingRestart {
                nodes,
                interval,
                timeout,
            } => self.rolling_restart(nodes, *interval, *timeout),
            Action::WaitHealthy { timeout } => self.wait_healthy(*timeout),
            Action::Sleep { duration } => {
                if sd.sleep(*duration) {
                    Err(HarnessError::Interrupted)
                } else {
                    Ok(())
                }
            }
            Action::Mark => {
                self.timeline.record(&TimelineEvent::Mark {
                    t_ms: now_ms(),
                    name: step.name.clone(),
                });
                Ok(())
            }
            Action::Partition {
                from,
                to,
                both_ways,
                fault,
            } => (|| {
                let from: Vec<String> = from
                    .iter()
                    .map(|t| self.resolve(t, snapshot))
                    .collect::<Result<_, _>>()?;
                let to: Vec<String> = match to {
                    Some(to) => to
                        .iter()
                        .map(|t| self.resolve(t, snapshot))
                        .collect::<Result<_, _>>()?,
                    None => self
                        .cluster
                        .node_names()
                        .into_iter()
                        .filter(|n| !from.contains(n))
                        .collect(),
                };
                tracing::info!(
                    "partition `{fault}`: {from:?} {} {to:?}",
                    if *both_ways { "<-/->" } else { "-/->" }
                );
                self.cluster
                    .network()?
                    .partition(fault, &from, &to, *both_ways)
            })(),
            Action::Heal { fault } => self
                .cluster
                .network()
                .and_then(|n| n.heal(fault.as_deref())),
            Action::Loss {
                node,
                probability,
                fault,
            } => self
                .resolve(node, snapshot)
                .and_then(|n| self.cluster.network()?.loss(fault, &n, *probability)),
            Action::Bandwidth { node, rate, fault } => self
                .resolve(node, snapshot)
                .and_then(|n| self.cluster.network()?.bandwidth(fault, &n, rate)),
            Action::Delay {
                node,
                latency,
                jitter,
                fault,
            } => self.resolve(node, snapshot).and_then(|n| {
                self.cluster.network()?.delay(
                    fault,
                    &n,
                    latency.as_millis() as u64,
                    jitter.as_millis() as u64,
                )
            }),
            _ => unreachable!("node actions handled above"),
        };
        (None, r)
    }

    fn wait_healthy(&mut self, timeout: Duration) -> Result<(), HarnessError> {
        let ids: Vec<i32> = (1..=self.scenario.cluster.brokers.len() as i32).collect();
        let topics: Vec<&str> = self
            .scenario
            .workload
            .topics
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        let sd = self.shutdown;
        self.cluster
            .admin()?
            .wait_healthy(&ids, &topics, timeout, sd)
            .map(|_| ())
            .map_err(|e| HarnessError::Cluster(format!("health gate: {e}")))
    }

    fn rolling_restart(
        &mut self,
        nodes: &[String],
        interval: Duration,
        timeout: Duration,
    ) -> Result<(), HarnessError> {
        for (i, node) in nodes.iter().enumerate() {
            tracing::info!("rolling restart: {node}");
            self.cluster.restart(node, self.shutdown)?;
            self.wait_healthy(timeout)?;
            if i + 1 < nodes.len() && self.shutdown.sleep(interval) {
                return Err(HarnessError::Interrupted);
            }
        }
        Ok(())
    }
}
