//! Network fault steps: partition, heal, loss, bandwidth, delay — on the cluster's hosts'
//! network (namespaces or containers).

use super::Executor;
use crate::error::HarnessError;
use crate::kafka::ClusterSnapshot;
use crate::scenario::NetworkAction;

impl Executor<'_> {
    /// Applies or removes a network fault.
    pub(super) fn network(
        &mut self,
        action: &NetworkAction,
        snapshot: Option<&ClusterSnapshot>,
    ) -> Result<(), HarnessError> {
        match action {
            NetworkAction::Partition {
                from,
                to,
                both_ways,
                how,
                fault,
            } => {
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
                    "partition `{fault}`: {from:?} {} {to:?} ({how:?})",
                    if *both_ways { "<-/->" } else { "-/->" }
                );
                self.cluster
                    .network()?
                    .partition(fault, &from, &to, *both_ways, *how)
            }
            NetworkAction::Heal { fault } => self.cluster.network()?.heal(fault.as_deref()),
            NetworkAction::Loss {
                node,
                probability,
                fault,
            } => {
                let n = self.resolve(node, snapshot)?;
                self.cluster.network()?.loss(fault, &n, *probability)
            }
            NetworkAction::Bandwidth { node, rate, fault } => {
                let n = self.resolve(node, snapshot)?;
                self.cluster.network()?.bandwidth(fault, &n, rate)
            }
            NetworkAction::Delay {
                node,
                latency,
                jitter,
                fault,
            } => {
                let n = self.resolve(node, snapshot)?;
                self.cluster.network()?.delay(
                    fault,
                    &n,
                    latency.as_millis() as u64,
                    jitter.as_millis() as u64,
                )
            }
        }
    }
}
