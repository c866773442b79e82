//! A dynamic KRaft quorum's membership (KIP-853): `add-controller` and `remove-controller`,
//! the two halves of a controller's replacement as Kafka's operations guide writes it —
//! start the new controller (formatted with `--no-initial-controllers`, it fetches the
//! metadata log as an observer), add it once it has caught up, remove the old one, stop it.
//!
//! Why the harness waits for the observer to catch up before AddRaftVoter: the leader
//! refuses a voter that is not caught up (REQUEST_TIMED_OUT after its timeout, the KIP's
//! rule), and a voter set that must wait for a slow new member is a quorum that cannot
//! commit — the wait is the runbook's "verify the new controller has caught up" step,
//! timed in the timeline.

use std::time::{Duration, Instant};

use super::{Cluster, NodeKind, CONTROLLER_PORT};
use crate::error::HarnessError;
use crate::kafka::quorum::{change_voters, QuorumState, VoterChange};
use crate::kafka::AdminError;
use crate::shutdown::Shutdown;

impl Cluster {
    /// The quorum's voters as this run changed them: their node ids, sorted.
    pub fn voter_ids(&self) -> Vec<i32> {
        let mut ids: Vec<i32> = self
            .voters
            .iter()
            .filter_map(|c| self.spec.controller_id(c))
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Makes the running controller `name` a voter: waits until the quorum's leader counts
    /// it as a caught-up observer, asks for AddRaftVoter, then waits until the quorum lists
    /// it among the voters — all within `timeout`.
    pub fn add_controller(
        &mut self,
        name: &str,
        timeout: Duration,
        shutdown: &Shutdown,
    ) -> Result<(), HarnessError> {
        let (id, address) = self.dynamic_controller(name)?;
        if !self.is_running(name) {
            return Err(HarnessError::Cluster(format!(
                "{name} is not running: start it first (it joins the metadata log as an observer, then becomes a voter)"
            )));
        }
        let started = Instant::now();
        let deadline = started + timeout;
        // 1. an observer within the slack of the high watermark, its directory known
        let directory_id = self.wait_quorum_until(deadline, shutdown, |q| {
            if q.voters.iter().any(|v| v.id == id) {
                return Err(format!("{name} (node {id}) is a voter already"));
            }
            match q.observers.iter().find(|o| o.id == id) {
                Some(o) if q.caught_up(id) && !o.directory_id.is_empty() => {
                    Ok(Some(o.directory_id.clone()))
                }
                Some(_) => Ok(None),
                None => Ok(None),
            }
        })
        .map_err(|why| {
            HarnessError::Cluster(format!(
                "{name} did not catch up as an observer of the metadata log within {timeout:?}: {why}"
            ))
        })?;
        let caught_up_s = started.elapsed().as_secs_f64();
        // 2. the leader commits the new voter set
        let change = VoterChange::Add {
            id,
            directory_id: directory_id.clone(),
            host: address.to_string(),
            port: CONTROLLER_PORT,
        };
        self.ask_leader(&change, deadline)?;
        // 3. and the quorum says so
        self.wait_quorum_until(deadline, shutdown, |q| {
            Ok(q.voters.iter().any(|v| v.id == id).then_some(()))
        })
        .map_err(|why| {
            HarnessError::Cluster(format!(
                "AddRaftVoter for {name} was accepted, and the quorum does not list it as a voter after {timeout:?}: {why}"
            ))
        })?;
        self.voters.push(name.to_string());
        self.note(
            name,
            format!(
                "added to the quorum's voters (node {id}, log directory {directory_id}): caught up as an observer {caught_up_s:.1} s into the step, a voter {:.1} s into it; voters now {:?}",
                started.elapsed().as_secs_f64(),
                self.voter_ids()
            ),
        );
        Ok(())
    }

    /// Removes the voter `name` from the quorum (RemoveRaftVoter with its log directory's
    /// id as the quorum lists it), then waits until the quorum no longer lists it. The node
    /// keeps running: stopping it is the runbook's next step.
    pub fn remove_controller(
        &mut self,
        name: &str,
        timeout: Duration,
        shutdown: &Shutdown,
    ) -> Result<(), HarnessError> {
        let (id, _) = self.dynamic_controller(name)?;
        let started = Instant::now();
        let deadline = started + timeout;
        let directory_id = self
            .wait_quorum_until(deadline, shutdown, |q| {
                match q.voters.iter().find(|v| v.id == id) {
                    Some(v) if !v.directory_id.is_empty() => Ok(Some(v.directory_id.clone())),
                    Some(_) => Err(format!(
                        "the quorum lists no log directory for node {id}: not a dynamic quorum"
                    )),
                    None => Err(format!("{name} (node {id}) is not a voter")),
                }
            })
            .map_err(|why| HarnessError::Cluster(format!("removing {name}: {why}")))?;
        let change = VoterChange::Remove {
            id,
            directory_id: directory_id.clone(),
        };
        self.ask_leader(&change, deadline)?;
        self.wait_quorum_until(deadline, shutdown, |q| {
            Ok((q.leader_id >= 0 && !q.voters.iter().any(|v| v.id == id)).then_some(()))
        })
        .map_err(|why| {
            HarnessError::Cluster(format!(
                "RemoveRaftVoter for {name} was accepted, and the quorum still lists it after {timeout:?}: {why}"
            ))
        })?;
        self.voters.retain(|v| v != name);
        self.note(
            name,
            format!(
                "removed from the quorum's voters (node {id}, log directory {directory_id}) in {:.1} s; voters now {:?}",
                started.elapsed().as_secs_f64(),
                self.voter_ids()
            ),
        );
        Ok(())
    }

    /// A dedicated controller of a dynamic quorum: its node id and address.
    fn dynamic_controller(&self, name: &str) -> Result<(i32, std::net::Ipv4Addr), HarnessError> {
        if !self.spec.dynamic_quorum {
            return Err(HarnessError::Cluster(format!(
                "the quorum is static: its voters are fixed (controller.quorum.voters), so {name} cannot join or leave it"
            )));
        }
        let node = self
            .nodes
            .get(name)
            .ok_or_else(|| HarnessError::Cluster(format!("no node `{name}`")))?;
        if node.kind != NodeKind::Controller {
            return Err(HarnessError::Cluster(format!(
                "{name} is not a dedicated controller"
            )));
        }
        Ok((node.id, node.address))
    }

    /// Sends one voter change to the quorum's leader, asking again while it answers that
    /// another change is still in progress (a voter set changes one member at a time).
    fn ask_leader(&self, change: &VoterChange, deadline: Instant) -> Result<(), HarnessError> {
        let cluster_id = self.cluster_id.clone().unwrap_or_default();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let result = change_voters(
                &self.controller_addresses(),
                &cluster_id,
                change,
                left.clamp(Duration::from_secs(1), Duration::from_secs(30)),
            );
            match result {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() < deadline && retriable(&e) => {
                    std::thread::sleep(Duration::from_millis(500))
                }
                Err(e) => {
                    return Err(HarnessError::Cluster(format!(
                        "the quorum refused {change:?}: {e}"
                    )))
                }
            }
        }
    }

    /// Polls DescribeQuorum every 200 ms until `test` gives `Some` (or an error, which
    /// ends the wait at once); `Err` carries the last state seen when `deadline` passes.
    fn wait_quorum_until<T>(
        &self,
        deadline: Instant,
        shutdown: &Shutdown,
        mut test: impl FnMut(&QuorumState) -> Result<Option<T>, String>,
    ) -> Result<T, String> {
        loop {
            let last = match self.quorum() {
                Ok(q) => match test(&q)? {
                    Some(t) => return Ok(t),
                    None => format!(
                        "leader {}, high watermark {}, voters {:?}, observers {:?}",
                        q.leader_id,
                        q.high_watermark,
                        q.voters
                            .iter()
                            .map(|v| (v.id, v.log_end_offset))
                            .collect::<Vec<_>>(),
                        q.observers
                            .iter()
                            .map(|o| (o.id, o.log_end_offset))
                            .collect::<Vec<_>>()
                    ),
                },
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                return Err(last);
            }
            if shutdown.sleep(Duration::from_millis(200)) {
                return Err("interrupted".into());
            }
        }
    }
}

/// A voter change's answer worth asking again: no leader reachable or none elected yet
/// (NOT_LEADER_OR_FOLLOWER), or the leader not ready for it (REQUEST_TIMED_OUT: another
/// change in flight, or the new voter not caught up yet).
fn retriable(e: &AdminError) -> bool {
    match e {
        AdminError::Kafka { code, .. } => matches!(*code, 6 | 7),
        AdminError::Connect { .. } | AdminError::Io { .. } | AdminError::NoBroker(_) => true,
        _ => false,
    }
}
