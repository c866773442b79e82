//! ZooKeeper steps: zk-config, zk-reconfig, zk-connect, zk-copy.

use std::time::Duration;

use workers::clock::now_ms;

use super::Executor;
use crate::error::{HarnessError, StepError, ZkError};
use crate::rundir::timeline::TimelineEvent;
use crate::scenario::ZkAction;

impl Executor<'_> {
    /// Runs a ZooKeeper action.
    pub(super) fn zookeeper(&mut self, action: &ZkAction) -> Result<(), HarnessError> {
        match action {
            ZkAction::Config {
                nodes,
                participants,
                observers,
            } => self
                .cluster
                .set_zk_membership(nodes, participants, observers),
            ZkAction::Reconfig {
                add,
                add_observers,
                remove,
                via,
                timeout,
            } => self.zk_reconfig(add, add_observers, remove, via, *timeout),
            ZkAction::Connect {
                servers,
                brokers,
                roll,
                interval,
                timeout,
            } => {
                for b in brokers {
                    self.cluster.set_broker_zookeeper(b, servers)?;
                }
                if *roll {
                    self.rolling_restart(brokers, *interval, *timeout, true)?;
                }
                Ok(())
            }
            ZkAction::Copy {
                from,
                to,
                path,
                since,
                batch,
                prune,
            } => self.zk_copy(from, to, path, since.as_deref(), *batch, *prune),
        }
    }

    fn zk_copy(
        &mut self,
        from: &[String],
        to: &[String],
        path: &str,
        since: Option<&str>,
        batch: usize,
        prune: bool,
    ) -> Result<(), HarnessError> {
        use crate::zk::tree;
        // ZooKeeper's mtime is the leader's clock; allow it to be a little behind ours
        const CLOCK_MARGIN_MS: u64 = 2_000;
        let mtime_after = since
            .map(|s| {
                self.started
                    .get(s)
                    .map(|t| t.saturating_sub(CLOCK_MARGIN_MS) as i64)
                    .ok_or_else(|| StepError::NeverRan(s.to_string()))
            })
            .transpose()?;
        let (src, dst) = (
            self.cluster.zookeeper_servers(from),
            self.cluster.zookeeper_servers(to),
        );
        let opts = tree::CopyOptions {
            batch,
            mtime_after,
            prune,
            ..Default::default()
        };
        let fail = |e: tree::TreeError| HarnessError::from(ZkError::from(e));
        let report = Self::runtime()?.block_on(async {
            let s = tree::connect(&src).await.map_err(fail)?;
            let d = tree::connect(&dst).await.map_err(fail)?;
            tree::copy(&s, &d, path, &opts).await.map_err(fail)
        })?;
        tracing::info!(
            "zk-copy {path}: {} visited, {} created, {} updated, {} deleted, {} ephemeral skipped, {} transactions, {} ms",
            report.visited, report.created, report.updated, report.deleted,
            report.ephemerals_skipped, report.transactions, report.elapsed_ms
        );
        self.timeline.record(&TimelineEvent::ZkCopy {
            t_ms: now_ms(),
            path: path.to_string(),
            mtime_after,
            report,
        });
        Ok(())
    }

    fn zk_reconfig(
        &mut self,
        add: &[String],
        add_observers: &[String],
        remove: &[String],
        via: &[String],
        timeout: Duration,
    ) -> Result<(), HarnessError> {
        use crate::scenario::ZkRole;
        use crate::zk::reconfig;
        let mut joining = Vec::new();
        for n in add {
            joining.push(self.cluster.zk_server_spec(n, ZkRole::Participant)?);
        }
        for n in add_observers {
            joining.push(self.cluster.zk_server_spec(n, ZkRole::Observer)?);
        }
        let leaving: Vec<i32> = remove
            .iter()
            .filter_map(|n| self.scenario.cluster.zookeeper_id(n))
            .collect();
        // through the given servers, or any running server that is not joining
        let via: Vec<String> = if via.is_empty() {
            let mut v = Vec::new();
            for z in &self.scenario.cluster.zookeeper {
                if !add.contains(z) && !add_observers.contains(z) && self.cluster.is_running(z) {
                    v.push(z.clone());
                }
            }
            v
        } else {
            via.to_vec()
        };
        let through = self.cluster.zookeeper_servers(&via);
        // afterwards, ask a server that stays
        let stays: Vec<String> = add
            .iter()
            .chain(add_observers)
            .cloned()
            .chain(via.iter().filter(|v| !remove.contains(v)).cloned())
            .collect();
        let check_through = self.cluster.zookeeper_servers(&stays);
        let want_participants: Vec<i32> = add
            .iter()
            .filter_map(|n| self.scenario.cluster.zookeeper_id(n))
            .collect();
        let want_observers: Vec<i32> = add_observers
            .iter()
            .filter_map(|n| self.scenario.cluster.zookeeper_id(n))
            .collect();
        let applied = |c: &reconfig::EnsembleConfig| {
            let parts = c.with_role("participant");
            let obs = c.with_role("observer");
            want_participants.iter().all(|i| parts.contains(i))
                && want_observers.iter().all(|i| obs.contains(i))
                && leaving
                    .iter()
                    .all(|i| !c.servers.iter().any(|(s, _)| s == i))
        };
        let rt = Self::runtime()?;
        tracing::info!("zk-reconfig via {through}: joining {joining:?}, leaving {leaving:?}");
        let sent = rt.block_on(reconfig::incremental(&through, &joining, &leaving));
        let config = match sent {
            Ok(c) => c,
            // the answer can be lost when the server asked leaves: read what was committed
            Err(e) if e.answer_lost() => {
                tracing::warn!("reconfig answer lost ({e}); reading the configuration back");
                rt.block_on(reconfig::current(&check_through))?
            }
            Err(e) => return Err(e.into()),
        };
        if !applied(&config) {
            return Err(StepError::ReconfigNotApplied {
                version: config.version.clone(),
                servers: format!("{:?}", config.servers),
            }
            .into());
        }
        self.timeline.record(&TimelineEvent::ZkConfig {
            t_ms: now_ms(),
            version: config.version.clone(),
            servers: config.servers.clone(),
        });
        // every added server serves in its role
        let deadline = std::time::Instant::now() + timeout;
        for n in add.iter().chain(add_observers) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            self.cluster
                .wait_ready(n, left.max(Duration::from_secs(1)), self.shutdown)?;
        }
        Ok(())
    }
}
