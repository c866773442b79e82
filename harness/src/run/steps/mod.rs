//! The step executor: runs a scenario's steps in order against the cluster, recording each
//! in the timeline (a cluster snapshot before it, its start and its end). Each action
//! family executes in its own file, beside the family's parser in `scenario::actions`.
//!
//! A step that fails ends the procedure: the remaining steps are not run (a runbook does not
//! go on after a step that did not work), but the workload, the final read and the check
//! still happen, and the failed step appears in the report.

mod brokers;
mod kraft;
mod mirror;
mod network;
mod nodes;
mod pace;
mod zookeeper;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use workers::clock::now_ms;

use crate::cluster::Cluster;
use crate::error::{HarnessError, StepError};
use crate::kafka::{ClusterAdmin, ClusterSnapshot};
use crate::run::workload::Switchboard;
use crate::rundir::timeline::{Timeline, TimelineEvent};
use crate::scenario::{Action, Scenario, Step, Target};
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
    /// The cluster the steps act on.
    cluster: &'a mut Cluster,
    /// Where steps, snapshots and what steps did are recorded.
    timeline: &'a mut Timeline,
    /// Ctrl-C / SIGTERM: every wait honours it.
    shutdown: &'a Shutdown,
    /// The scenario whose steps run.
    scenario: &'a Scenario,
    /// `bind` names → the node they resolved to.
    bindings: HashMap<String, String>,
    /// When each step started (ms since epoch), for `zk-copy`'s `since`.
    started: HashMap<String, u64>,
    /// Called with the step name when a step starts (for live progress).
    on_step: Box<dyn Fn(&str) + 'a>,
    /// The workers' discovery file and status (for `switch-bootstrap`).
    switchboard: Option<Switchboard>,
    /// The run directory (where a `migrate-brokers` process writes its output).
    run_dir: Option<PathBuf>,
    /// The last node a step killed, stopped or paused: what `wait-failover` measures from.
    last_loss: Option<Loss>,
    /// The cluster's layout when each step started (for `reassign` with `restore`).
    snapshots: HashMap<String, ClusterSnapshot>,
}

/// A node a step took away.
#[derive(Debug, Clone)]
struct Loss {
    /// The node.
    node: String,
    /// `kill`, `stop` or `pause`.
    how: &'static str,
    /// When its step had acted, ms since the Unix epoch.
    at_ms: u64,
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
            started: HashMap::new(),
            on_step,
            switchboard: None,
            run_dir: None,
            last_loss: None,
            snapshots: HashMap::new(),
        }
    }

    /// Lets `switch-bootstrap` steps move the workers, and `migrate-brokers` write into the
    /// run directory.
    pub fn with_workers(mut self, switchboard: Switchboard, run_dir: &std::path::Path) -> Self {
        self.switchboard = Some(switchboard);
        self.run_dir = Some(run_dir.to_path_buf());
        self
    }

    /// Where the consumers are after the steps: their servers and cluster (1: a
    /// `mirror-switch` moved them to MirrorMaker's target); `None` without workers.
    pub fn consumers_at(&self) -> Option<(String, u8)> {
        self.switchboard.as_ref().map(|b| b.consumers().clone())
    }

    /// Runs every step; stops at the first failure or on shutdown.
    pub fn run_all(&mut self) -> Vec<StepOutcome> {
        let mut out = Vec::new();
        for (index, step) in self.scenario.steps.iter().enumerate() {
            if self.shutdown.requested() {
                break;
            }
            (self.on_step)(&step.name);
            // (no broker running — a block, a full stop — nothing to ask, and no time to
            // lose waiting for every broker in turn)
            let any_broker = self
                .scenario
                .cluster
                .brokers
                .iter()
                .any(|b| self.cluster.is_running(b));
            let snapshot = if any_broker {
                self.cluster
                    .admin()
                    .ok()
                    .and_then(|a| a.snapshot(Duration::from_secs(3)).ok())
            } else {
                None
            };
            if let Some(snapshot) = snapshot.clone() {
                self.timeline.record(&TimelineEvent::Snapshot {
                    t_ms: now_ms(),
                    snapshot: snapshot.clone(),
                });
                self.snapshots.insert(step.name.clone(), snapshot);
            }
            let t_ms = now_ms();
            self.started.insert(step.name.clone(), t_ms);
            self.timeline.record(&TimelineEvent::StepStart {
                t_ms,
                index,
                name: step.name.clone(),
                action: step.action.keyword().into(),
            });
            let (node, result) = self.execute(step, snapshot.as_ref());
            for e in self.cluster.take_events() {
                self.timeline.record(&TimelineEvent::Node {
                    t_ms: e.t_ms,
                    step: step.name.clone(),
                    node: e.node,
                    what: e.what,
                });
            }
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

    /// The node a target names at this point of the run.
    fn resolve(
        &mut self,
        t: &Target,
        snapshot: Option<&ClusterSnapshot>,
    ) -> Result<String, HarnessError> {
        let part = |topic: &str, partition: i32| {
            snapshot
                .and_then(|s| s.partition(topic, partition))
                .cloned()
                .ok_or_else(|| StepError::NoMetadata {
                    topic: topic.to_string(),
                    partition,
                })
        };
        let name_of = |id: i32| {
            self.cluster
                .broker_name(id)
                .ok_or(StepError::UnknownBroker(id))
        };
        match t {
            Target::Node(n) => Ok(n.clone()),
            Target::Clients => Ok("clients".into()),
            Target::Bound(b) => Ok(self
                .bindings
                .get(b)
                .cloned()
                .ok_or_else(|| StepError::Unbound(b.clone()))?),
            Target::ActiveController => self.cluster.active_controller()?.ok_or_else(|| {
                HarnessError::Cluster(
                    "no active controller right now (an election in progress, or none of this cluster's nodes)"
                        .into(),
                )
            }),
            Target::TransactionCoordinator => {
                // producer instance i's transactional id is kmh-RUN-tI (workers::produce)
                let run = self.cluster.run_id().to_string();
                let mut wire = self.wire();
                let mut count: std::collections::BTreeMap<i32, u32> = Default::default();
                for i in 0..self.scenario.workload.producers {
                    let id = wire
                        .transaction_coordinator(&format!("kmh-{run}-t{i}"))
                        .map_err(|e| StepError::kafka("FindCoordinator", e))?;
                    *count.entry(id).or_default() += 1;
                }
                let most = count.values().copied().max().unwrap_or(0);
                let Some((&id, _)) = count.iter().find(|(_, n)| **n == most) else {
                    return Err(HarnessError::Cluster(
                        "no transactional producer to find the coordinator of".into(),
                    ));
                };
                Ok(name_of(id)?)
            }
            Target::Leader { topic, partition } => {
                let p = part(topic, *partition)?;
                if p.leader < 0 {
                    return Err(StepError::NoLeader {
                        topic: topic.clone(),
                        partition: *partition,
                    }
                    .into());
                }
                Ok(name_of(p.leader)?)
            }
            Target::Follower { topic, partition } => {
                let p = part(topic, *partition)?;
                let f = p
                    .isr
                    .iter()
                    .chain(p.replicas.iter())
                    .find(|r| **r != p.leader)
                    .ok_or_else(|| StepError::NoFollower {
                        topic: topic.clone(),
                        partition: *partition,
                        replicas: p.replicas.clone(),
                    })?;
                Ok(name_of(*f)?)
            }
        }
    }

    /// Runs one step's action; the node it acted on, when it acted on one.
    fn execute(
        &mut self,
        step: &Step,
        snapshot: Option<&ClusterSnapshot>,
    ) -> (Option<String>, Result<(), HarnessError>) {
        match &step.action {
            Action::Node(a) => self.node(&step.name, a, step.bind.as_deref(), snapshot),
            Action::Network(a) => (None, self.network(a, snapshot)),
            Action::ZooKeeper(a) => (None, self.zookeeper(a)),
            Action::Broker(a) => (None, self.broker(&step.name, a)),
            Action::Kraft(a) => (None, self.kraft(a)),
            Action::Mirror(a) => (None, self.mirror(&step.name, a)),
            Action::Pace(a) => (None, self.pace(&step.name, a)),
        }
    }

    /// Broker ids of broker names.
    fn broker_ids(&self, names: &[String]) -> Vec<i32> {
        names
            .iter()
            .filter_map(|n| self.scenario.cluster.broker_id(n))
            .collect()
    }

    /// Leaders, ISR and brokers as the cluster reports them now.
    fn fresh_snapshot(&mut self) -> Result<ClusterSnapshot, HarnessError> {
        self.cluster
            .admin()?
            .snapshot(Duration::from_secs(10))
            .map_err(|e| StepError::kafka("metadata", e).into())
    }

    /// An admin connection for the requests librdkafka lacks.
    fn wire(&self) -> ClusterAdmin {
        ClusterAdmin::new(&self.cluster.bootstrap(), Duration::from_secs(30))
    }

    /// A runtime for the ZooKeeper client's async calls.
    fn runtime() -> Result<tokio::runtime::Runtime, HarnessError> {
        Ok(tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?)
    }

    /// The Kafka health gate: every workload partition has its full ISR — and, on a KRaft
    /// cluster, the controller quorum has a leader with every running controller caught up.
    fn wait_healthy(&mut self, timeout: Duration) -> Result<(), HarnessError> {
        let started = std::time::Instant::now();
        self.cluster.wait_quorum(timeout, self.shutdown)?;
        let timeout = timeout
            .saturating_sub(started.elapsed())
            .max(Duration::from_secs(1));
        let ids = self.cluster.running_broker_ids();
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
            .map_err(|e| StepError::kafka("health gate", e).into())
    }

    /// Restarts nodes one at a time: stop, start, health gate (when `wait`), interval.
    fn rolling_restart(
        &mut self,
        nodes: &[String],
        interval: Duration,
        timeout: Duration,
        wait: bool,
    ) -> Result<(), HarnessError> {
        for (i, node) in nodes.iter().enumerate() {
            tracing::info!("rolling restart: {node}");
            if self.cluster.is_running(node) {
                self.cluster.stop(node, Duration::from_secs(120))?;
            }
            if wait {
                self.cluster
                    .start_many(std::slice::from_ref(node), timeout, self.shutdown)?;
                // a broker's gate also wants every partition back in sync, a
                // controller's the quorum caught up (it is: start_many waited for it)
                if self.cluster.kind(node) == Some(crate::cluster::NodeKind::Broker) {
                    self.wait_healthy(timeout)?;
                }
            } else {
                self.cluster.spawn(node)?;
            }
            if i + 1 < nodes.len() && self.shutdown.sleep(interval) {
                return Err(HarnessError::Interrupted);
            }
        }
        Ok(())
    }
}
