//! KRaft steps: `format-storage`, `wait-migration`, `kafka-version`, `update-features`,
//! `add-controller` and `remove-controller`.

use std::time::{Duration, Instant};

use super::Executor;
use crate::error::HarnessError;
use crate::scenario::{ClusterIdSource, KraftAction};

impl Executor<'_> {
    /// Formats controllers' storage, or waits for the metadata migration.
    pub(super) fn kraft(&mut self, action: &KraftAction) -> Result<(), HarnessError> {
        match action {
            KraftAction::FormatStorage { nodes, cluster_id } => {
                let (id, from) = match cluster_id {
                    ClusterIdSource::Zookeeper => (
                        self.cluster.zookeeper_cluster_id()?,
                        "read from ZooKeeper's /cluster/id",
                    ),
                    ClusterIdSource::Given(id) => (id.clone(), "as given"),
                };
                self.cluster.format(nodes, &id)?;
                for n in nodes {
                    self.cluster.note(
                        n,
                        format!("storage formatted with cluster id {id} ({from})"),
                    );
                }
                Ok(())
            }
            KraftAction::KafkaVersion { nodes, kafka } => self.cluster.switch_version(nodes, kafka),
            KraftAction::UpdateFeatures { to } => self.cluster.update_features(to),
            KraftAction::AddController { node, timeout } => {
                self.cluster.add_controller(node, *timeout, self.shutdown)
            }
            KraftAction::RemoveController { node, timeout } => {
                self.cluster
                    .remove_controller(node, *timeout, self.shutdown)
            }
            KraftAction::WaitMigration { timeout } => {
                let deadline = Instant::now() + *timeout;
                let started = Instant::now();
                let mut last = String::from("no /migration record yet");
                loop {
                    match self.cluster.migration_state() {
                        Ok(Some(z)) if z.migrated() => {
                            let controller = self
                                .cluster
                                .controller_name(z.kraft_controller_id)
                                .unwrap_or_else(|| z.kraft_controller_id.to_string());
                            self.cluster.note(
                                &controller,
                                format!(
                                    "metadata migrated from ZooKeeper (dual-write): metadata log offset {}, epoch {}, controller epoch {}; seen {:.1} s into the wait",
                                    z.kraft_metadata_offset,
                                    z.kraft_metadata_epoch,
                                    z.kraft_controller_epoch,
                                    started.elapsed().as_secs_f64()
                                ),
                            );
                            return Ok(());
                        }
                        Ok(Some(z)) => {
                            last = format!(
                                "/migration records controller {} and no migrated offset yet ({})",
                                z.kraft_controller_id, z.kraft_metadata_offset
                            )
                        }
                        Ok(None) => {}
                        Err(e) => last = e.to_string(),
                    }
                    if Instant::now() >= deadline {
                        return Err(HarnessError::Cluster(format!(
                            "the metadata migration did not finish within {timeout:?}: {last} (the active controller's server.log says why: every broker must run in migration mode, with the controllers' quorum in its configuration)"
                        )));
                    }
                    if self.shutdown.sleep(Duration::from_millis(250)) {
                        return Err(HarnessError::Interrupted);
                    }
                }
            }
        }
    }
}
