//! Node lifecycle steps: start, stop, kill, pause, resume, restart, groups, rolling
//! restarts and health gates.

use std::time::{Duration, Instant};

use super::Executor;
use crate::error::HarnessError;
use crate::kafka::ClusterSnapshot;
use crate::scenario::NodeAction;

impl Executor<'_> {
    /// Runs a node action; the node it acted on, for a single-node action.
    pub(super) fn node(
        &mut self,
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
            let r = match action {
                NodeAction::Start { .. } => self.cluster.start(&name, sd),
                NodeAction::Stop { .. } => self.cluster.stop(&name, Duration::from_secs(120)),
                NodeAction::Kill { .. } => self.cluster.kill(&name),
                NodeAction::Pause { .. } => self.cluster.pause(&name),
                NodeAction::Resume { .. } => self.cluster.resume(&name),
                _ => self.cluster.restart(&name, sd),
            };
            return (Some(name), r);
        }
        let r = match action {
            NodeAction::StartAll { nodes, timeout } => self.cluster.start_many(nodes, *timeout, sd),
            NodeAction::StopAll { nodes } => nodes
                .iter()
                .try_for_each(|n| self.cluster.stop(n, Duration::from_secs(120))),
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
            // the single-node actions are handled above
            _ => Ok(()),
        };
        (None, r)
    }
}
