//! Node lifecycle steps: start, stop, kill, pause, resume, restart, groups, rolling
//! restarts, health gates and the failover measure.

use std::time::{Duration, Instant};

use workers::clock::now_ms;

use super::{Executor, Loss};
use crate::error::HarnessError;
use crate::kafka::ClusterSnapshot;
use crate::rundir::timeline::{FailoverMeasure, TimelineEvent};
use crate::scenario::NodeAction;

/// How often `wait-failover` looks.
const FAILOVER_LOOK: Duration = Duration::from_millis(100);

impl Executor<'_> {
    /// Runs a node action; the node it acted on, for a single-node action.
    pub(super) fn node(
        &mut self,
        step: &str,
        action: &NodeAction,
        bind: Option<&str>,
        snapshot: Option<&ClusterSnapshot>,
    ) -> (Option<String>, Result<(), HarnessError>) {
        let sd = self.shutdown;
        if let Some(target) = action.target() {
            let name = match self.resolve(target, snapshot) {
                Ok(n) => n,
                Err(e) => return (None, Err(e)),
            };
            if let Some(b) = bind {
                self.bindings.insert(b.to_string(), name.clone());
            }
            // a killed or paused node stops answering when the signal lands, though the
            // kernel may take seconds to tear a big broker down (the kill waits for its
            // exit); a stopped one is gone once it has exited
            let signalled_ms = now_ms();
            let r = match action {
                NodeAction::Start { timeout, .. } => {
                    self.cluster
                        .start_many(std::slice::from_ref(&name), *timeout, sd)
                }
                NodeAction::Stop { .. } => self.cluster.stop(&name, Duration::from_secs(120)),
                NodeAction::Kill { .. } => self.cluster.kill(&name),
                NodeAction::Pause { .. } => self.cluster.pause(&name),
                NodeAction::Resume { .. } => self.cluster.resume(&name),
                NodeAction::Restart { timeout, .. } => self
                    .cluster
                    .stop(&name, Duration::from_secs(120))
                    .and_then(|()| {
                        self.cluster
                            .start_many(std::slice::from_ref(&name), *timeout, sd)
                    }),
                _ => unreachable!("multi-node actions have no target"),
            };
            let loss = match action {
                NodeAction::Kill { .. } => Some(("kill", signalled_ms)),
                NodeAction::Stop { .. } => Some(("stop", now_ms())),
                NodeAction::Pause { .. } => Some(("pause", signalled_ms)),
                _ => None,
            };
            if let (Some((how, at_ms)), Ok(())) = (loss, &r) {
                self.last_loss = Some(Loss {
                    node: name.clone(),
                    how,
                    at_ms,
                });
            }
            return (Some(name), r);
        }
        let r = match action {
            NodeAction::StartAll { nodes, timeout } => self.cluster.start_many(nodes, *timeout, sd),
            NodeAction::StopAll { nodes } => nodes.iter().try_for_each(|n| {
                self.cluster.stop(n, Duration::from_secs(120))?;
                self.last_loss = Some(Loss {
                    node: n.clone(),
                    how: "stop",
                    at_ms: now_ms(),
                });
                Ok(())
            }),
            NodeAction::RestartAll { nodes, timeout } => {
                self.cluster.restart_many(nodes, *timeout, sd)
            }
            NodeAction::RollingRestart {
                nodes,
                interval,
                timeout,
                wait,
            } => self.rolling_restart(nodes, *interval, *timeout, *wait),
            NodeAction::NodeConfig { nodes, set, remove } => {
                self.cluster.configure(nodes, set, remove)
            }
            NodeAction::WaitHealthy { zookeeper, timeout } => {
                let deadline = Instant::now() + *timeout;
                let left = || {
                    deadline
                        .saturating_duration_since(Instant::now())
                        .max(Duration::from_secs(1))
                };
                (|| {
                    for z in zookeeper {
                        self.cluster.wait_ready(z, left(), sd)?;
                    }
                    self.wait_healthy(left())
                })()
            }
            NodeAction::WaitFailover { timeout } => self.wait_failover(step, *timeout),
            NodeAction::Start { .. }
            | NodeAction::Stop { .. }
            | NodeAction::Kill { .. }
            | NodeAction::Pause { .. }
            | NodeAction::Resume { .. }
            | NodeAction::Restart { .. } => unreachable!("single-node actions return above"),
        };
        (None, r)
    }

    /// `wait-failover`: looks every [`FAILOVER_LOOK`] for an active controller that runs
    /// (not the lost node) and for every partition with a running replica led by a running
    /// broker (not the lost node), as the brokers' metadata says; records when each was
    /// first true, counted from the loss.
    fn wait_failover(&mut self, step: &str, timeout: Duration) -> Result<(), HarnessError> {
        let loss = self.last_loss.clone().ok_or_else(|| {
            HarnessError::Cluster("no step before this one killed, stopped or paused a node".into())
        })?;
        let lost_broker = self.scenario.cluster.broker_id(&loss.node);
        let since = |t: u64| t.saturating_sub(loss.at_ms);
        let deadline = Instant::now() + timeout;
        let mut controller: Option<(String, u64)> = None;
        let mut leaders_ms: Option<u64> = None;
        let (mut partitions, mut unservable, mut leaderless, mut leaderless_max) = (0, 0, 0, 0);
        let (mut looks, mut last_error) = (0u32, None::<String>);
        loop {
            looks += 1;
            if controller.is_none() {
                match self.cluster.active_controller() {
                    Ok(Some(c)) if c != loss.node && self.cluster.is_running(&c) => {
                        controller = Some((c, since(now_ms())));
                    }
                    Ok(_) => {}
                    Err(e) => last_error = Some(e.to_string()),
                }
            }
            if leaders_ms.is_none() {
                let running: Vec<i32> = self
                    .cluster
                    .running_broker_ids()
                    .into_iter()
                    .filter(|id| Some(*id) != lost_broker)
                    .collect();
                match self.cluster.admin()?.snapshot(Duration::from_secs(5)) {
                    Ok(s) => {
                        let (mut judged, mut out, mut led) = (0u64, 0u64, 0u64);
                        for p in &s.partitions {
                            if !p.replicas.iter().any(|r| running.contains(r)) {
                                out += 1;
                            } else {
                                judged += 1;
                                led += u64::from(running.contains(&p.leader));
                            }
                        }
                        (partitions, unservable, leaderless) = (judged, out, judged - led);
                        leaderless_max = leaderless_max.max(leaderless);
                        if leaderless == 0 && judged > 0 {
                            leaders_ms = Some(since(now_ms()));
                        }
                    }
                    Err(e) => last_error = Some(format!("metadata: {e}")),
                }
            }
            if let (Some((controller, controller_ms)), Some(leaders_ms)) = (&controller, leaders_ms)
            {
                let measure = FailoverMeasure {
                    lost: loss.node.clone(),
                    how: loss.how.to_string(),
                    controller: controller.clone(),
                    controller_ms: *controller_ms,
                    leaders_ms,
                    partitions,
                    unservable,
                    leaderless_max,
                    looks,
                };
                self.timeline.record(&TimelineEvent::Failover {
                    t_ms: now_ms(),
                    step: step.to_string(),
                    lost_at_ms: loss.at_ms,
                    measure,
                });
                return Ok(());
            }
            if Instant::now() >= deadline {
                let mut missing = Vec::new();
                if controller.is_none() {
                    missing.push("no active controller other than the lost node".to_string());
                }
                if leaders_ms.is_none() {
                    missing.push(format!(
                        "{leaderless} of {partitions} partitions without a running leader"
                    ));
                }
                return Err(HarnessError::Cluster(format!(
                    "{timeout:?} after {} was lost ({}): {}{}",
                    loss.node,
                    loss.how,
                    missing.join("; "),
                    last_error
                        .map(|e| format!(" (last error: {e})"))
                        .unwrap_or_default()
                )));
            }
            if self.shutdown.sleep(FAILOVER_LOOK) {
                return Err(HarnessError::Interrupted);
            }
        }
    }
}
