//! Mirror steps: MirrorMaker 2 started, waited for, stopped.

use std::time::{Duration, Instant};

use workers::clock::now_ms;

use super::Executor;
use crate::cluster::mirror::{MirrorSettings, SOURCE_ALIAS};
use crate::error::HarnessError;
use crate::kafka::mirror as progress;
use crate::rundir::timeline::TimelineEvent;
use crate::scenario::MirrorAction;

impl Executor<'_> {
    /// Runs a mirror step.
    pub(super) fn mirror(&mut self, step: &str, action: &MirrorAction) -> Result<(), HarnessError> {
        match action {
            MirrorAction::MirrorStart {
                topics,
                exactly_once,
                tasks,
                config,
            } => {
                let replication = self.scenario.cluster.target_brokers().count().min(3) as u32;
                let partitions = self.scenario.workload.partitions_of(topics);
                self.cluster.start_mirror(
                    MirrorSettings {
                        topics: topics.clone(),
                        exactly_once: *exactly_once,
                        replication,
                        tasks: *tasks,
                        config: config.clone(),
                    },
                    &partitions,
                )
            }
            MirrorAction::MirrorWait { timeout } => self.mirror_wait(step, *timeout),
            MirrorAction::MirrorSwitch { clients, timeout } => {
                let bootstrap = self.cluster.target_bootstrap();
                let sd = self.shutdown;
                let board = self
                    .switchboard
                    .as_mut()
                    .ok_or(crate::error::WorkersError::NoSwitchboard)?;
                board.move_role(*clients, &bootstrap, 1, *timeout, sd)?;
                self.timeline.record(&TimelineEvent::BootstrapSwitch {
                    t_ms: now_ms(),
                    bootstrap: format!(
                        "{bootstrap} (MirrorMaker's target): the {}s",
                        crate::run::workload::role_name(*clients)
                    ),
                });
                Ok(())
            }
            MirrorAction::MirrorStop { kill } => {
                self.cluster.mirror()?;
                // a kill: no grace, SIGKILL at once
                let grace = if *kill {
                    Duration::ZERO
                } else {
                    Duration::from_secs(30)
                };
                self.cluster.stop_mirror(grace);
                Ok(())
            }
        }
    }

    /// Waits until MirrorMaker has copied every record each source partition had when the
    /// step started (its committed source offsets, not the target's end offsets: those
    /// differ by the copy's duplicates and transaction markers).
    fn mirror_wait(&mut self, step: &str, timeout: Duration) -> Result<(), HarnessError> {
        let started = Instant::now();
        let started_ms = now_ms();
        let topics = self.mirrored_topics()?;
        let (source, target) = (self.cluster.bootstrap(), self.cluster.target_bootstrap());
        let cluster = &mut *self.cluster;
        let shutdown = self.shutdown;
        let held = progress::wait_caught_up(
            &source,
            &target,
            SOURCE_ALIAS,
            &topics,
            timeout,
            shutdown,
            || cluster.mirror().map(|_| ()).map_err(anyhow::Error::from),
        );
        if shutdown.requested() {
            return Err(HarnessError::Interrupted);
        }
        let held = held.map_err(|e| HarnessError::Cluster(e.to_string()))?;
        self.cluster.note_mirror_caught_up(started_ms);
        self.timeline.record(&TimelineEvent::Node {
            t_ms: now_ms(),
            step: step.to_string(),
            node: "mirrormaker".into(),
            what: format!(
                "caught up in {:.1} s: the copy has the {held} record offset(s) the source's {} topic(s) held at the step's start",
                started.elapsed().as_secs_f64(),
                topics.len()
            ),
        });
        Ok(())
    }

    /// The workload topics MirrorMaker copies, with their partition counts.
    fn mirrored_topics(&mut self) -> Result<Vec<(String, u32)>, HarnessError> {
        let mm = self.cluster.mirror()?;
        Ok(self.scenario.workload.partitions_of(&mm.settings.topics))
    }
}
