//! Partition reassignment: plans (an explicit list, a broker id map, a replication raise, a
//! drain, a restore of an earlier layout) and their execution — throttle, start, poll until nothing of the plan is in
//! flight, check the replicas are the plan's, measure what moved, remove the throttle.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use workers::clock::now_ms;

use super::{Admin, AdminError, ClusterAdmin, ClusterSnapshot, PartitionMove, Throttle};
use crate::shutdown::Shutdown;

/// A broker id map's plan for one snapshot: each replica on an old broker replaced by its
/// new broker, in place (the preferred leader's position kept). A replica already on a new
/// broker stays (seed 001: "most likely the topic was migrated and the bookkeeping missed
/// it") and is reported in the warnings. Partitions needing no move are left out.
pub fn plan_map(
    snapshot: &ClusterSnapshot,
    map: &BTreeMap<i32, i32>,
    topic: impl Fn(&str) -> bool,
) -> (Vec<PartitionMove>, Vec<String>) {
    let new: BTreeSet<i32> = map.values().copied().collect();
    let mut moves = Vec::new();
    let mut warnings = Vec::new();
    for p in snapshot.partitions.iter().filter(|p| topic(&p.topic)) {
        let target: Vec<i32> = p
            .replicas
            .iter()
            .map(|r| match map.get(r) {
                Some(n) => *n,
                None => {
                    if !new.contains(r) {
                        warnings.push(format!(
                            "{}/{}: replica on broker {r}, which the map does not name; kept",
                            p.topic, p.partition
                        ));
                    }
                    *r
                }
            })
            .collect();
        if target != p.replicas {
            moves.push(PartitionMove {
                topic: p.topic.clone(),
                partition: p.partition,
                replicas: Some(target),
            });
        }
    }
    (moves, warnings)
}

/// A rollback's plan: every partition of `now` whose replicas differ from what `then` (an
/// earlier snapshot) lists goes back to those replicas, in their order (the preferred
/// leader first). Partitions `then` does not know (created since) are left as they are and
/// named in the warnings.
pub fn plan_restore(
    now: &ClusterSnapshot,
    then: &ClusterSnapshot,
) -> (Vec<PartitionMove>, Vec<String>) {
    let before: BTreeMap<(&str, i32), &Vec<i32>> = then
        .partitions
        .iter()
        .map(|p| ((p.topic.as_str(), p.partition), &p.replicas))
        .collect();
    let mut moves = Vec::new();
    let mut created = BTreeSet::new();
    for p in &now.partitions {
        match before.get(&(p.topic.as_str(), p.partition)) {
            None => {
                created.insert(p.topic.as_str());
            }
            Some(r) if **r != p.replicas => moves.push(PartitionMove {
                topic: p.topic.clone(),
                partition: p.partition,
                replicas: Some((*r).clone()),
            }),
            Some(_) => {}
        }
    }
    let warnings = created
        .into_iter()
        .map(|t| format!("{t}: partitions the earlier layout does not have; kept as they are"))
        .collect();
    (moves, warnings)
}

/// Raise the replication of the matching partitions to `replication`: replicas added on the
/// least-loaded brokers of `brokers` not in `avoid`. When the current preferred leader is
/// on an avoided broker, the first added replica goes first, so a preferred election moves
/// the leadership off it (seed 003's `[108,109]`).
pub fn plan_raise(
    snapshot: &ClusterSnapshot,
    topic: impl Fn(&str) -> bool,
    replication: usize,
    brokers: &[i32],
    avoid: &[i32],
) -> Result<Vec<PartitionMove>, String> {
    let mut load = replica_load(snapshot, brokers);
    let mut moves = Vec::new();
    for p in snapshot.partitions.iter().filter(|p| topic(&p.topic)) {
        if p.replicas.len() >= replication {
            continue;
        }
        let mut target = p.replicas.clone();
        let mut added = Vec::new();
        while target.len() < replication {
            let pick = pick_least_loaded(&load, |b| !target.contains(&b) && !avoid.contains(&b))
                .ok_or_else(|| {
                    format!(
                        "{}/{}: no broker left for replica {} (brokers {brokers:?}, avoiding {avoid:?})",
                        p.topic,
                        p.partition,
                        target.len() + 1
                    )
                })?;
            *load.get_mut(&pick).unwrap() += 1;
            target.push(pick);
            added.push(pick);
        }
        if avoid.contains(&target[0]) {
            let first = added[0];
            target.retain(|b| *b != first);
            target.insert(0, first);
        }
        moves.push(PartitionMove {
            topic: p.topic.clone(),
            partition: p.partition,
            replicas: Some(target),
        });
    }
    Ok(moves)
}

/// Move every replica off `drain` onto the least-loaded of `onto`, in place (what Cruise
/// Control's `remove_broker` does, without its goals).
pub fn plan_drain(
    snapshot: &ClusterSnapshot,
    drain: &[i32],
    onto: &[i32],
) -> Result<Vec<PartitionMove>, String> {
    let mut load = replica_load(snapshot, onto);
    let mut moves = Vec::new();
    for p in &snapshot.partitions {
        if !p.replicas.iter().any(|r| drain.contains(r)) {
            continue;
        }
        let mut target = p.replicas.clone();
        for i in 0..target.len() {
            if drain.contains(&target[i]) {
                let taken = target.clone();
                let pick = pick_least_loaded(&load, |b| !taken.contains(&b)).ok_or_else(|| {
                    format!(
                        "{}/{}: no broker of {onto:?} left for the replica on {}",
                        p.topic, p.partition, target[i]
                    )
                })?;
                *load.get_mut(&pick).unwrap() += 1;
                target[i] = pick;
            }
        }
        moves.push(PartitionMove {
            topic: p.topic.clone(),
            partition: p.partition,
            replicas: Some(target),
        });
    }
    Ok(moves)
}

fn replica_load(snapshot: &ClusterSnapshot, brokers: &[i32]) -> BTreeMap<i32, usize> {
    let mut load: BTreeMap<i32, usize> = brokers.iter().map(|b| (*b, 0)).collect();
    for p in &snapshot.partitions {
        for r in &p.replicas {
            if let Some(l) = load.get_mut(r) {
                *l += 1;
            }
        }
    }
    load
}

fn pick_least_loaded(load: &BTreeMap<i32, usize>, ok: impl Fn(i32) -> bool) -> Option<i32> {
    load.iter()
        .filter(|(b, _)| ok(**b))
        .min_by_key(|(b, l)| (**l, **b))
        .map(|(b, _)| *b)
}

/// How a reassignment is run.
#[derive(Debug, Clone)]
pub struct ReassignOptions {
    /// Replication throttle, bytes/s (`None`: unthrottled).
    pub throttle: Option<u64>,
    /// Longest wait for the moves to finish (then they are cancelled).
    pub timeout: Duration,
    /// Time between two ListPartitionReassignments.
    pub poll: Duration,
}

/// One partition's move, as it went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MovedPartition {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Replicas before.
    pub from: Vec<i32>,
    /// Replicas after (the plan's).
    pub to: Vec<i32>,
    /// From the start of the reassignment to the first poll that no longer listed it, ms.
    pub took_ms: u64,
    /// Bytes the added replicas hold once done (what was copied).
    pub bytes: u64,
}

/// What a reassignment did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReassignReport {
    /// When it started, ms since the epoch.
    pub started_ms: u64,
    /// When the replicas were checked, ms since the epoch.
    pub ended_ms: u64,
    /// The throttle, bytes/s.
    pub throttle: Option<u64>,
    /// Each partition moved.
    pub partitions: Vec<MovedPartition>,
    /// Sum of `bytes`.
    pub bytes: u64,
    /// Things the plan kept as they were (see [`plan_map`]).
    pub warnings: Vec<String>,
}

/// Why a reassignment did not complete.
#[derive(Debug, thiserror::Error)]
pub enum ReassignError {
    /// A request failed.
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// Kafka refused some partitions (the accepted ones were cancelled).
    #[error("Kafka refused the reassignment of {}", .0.join("; "))]
    Refused(Vec<String>),
    /// The moves were still in flight at the timeout (cancelled).
    #[error(
        "{0} partition(s) still moving after {1:?}; cancelled (raise the timeout or the throttle)"
    )]
    TimedOut(usize, Duration),
    /// The replicas after the move are not the plan's.
    #[error("after the reassignment the replicas are not the plan's: {}", .0.join("; "))]
    Mismatch(Vec<String>),
    /// Metadata could not be read.
    #[error("metadata: {0}")]
    Metadata(String),
    /// Ctrl-C.
    #[error("interrupted")]
    Interrupted,
}

/// The throttle `kafka-reassign-partitions --throttle` would set for `moves`.
pub fn throttle_for(snapshot: &ClusterSnapshot, moves: &[PartitionMove], rate: u64) -> Throttle {
    let mut t = Throttle {
        rate,
        ..Default::default()
    };
    let mut brokers = BTreeSet::new();
    for m in moves {
        let (Some(p), Some(to)) = (snapshot.partition(&m.topic, m.partition), &m.replicas) else {
            continue;
        };
        for r in &p.replicas {
            t.leader_replicas
                .entry(m.topic.clone())
                .or_default()
                .push((m.partition, *r));
            brokers.insert(*r);
        }
        for r in to.iter().filter(|r| !p.replicas.contains(r)) {
            t.follower_replicas
                .entry(m.topic.clone())
                .or_default()
                .push((m.partition, *r));
            brokers.insert(*r);
        }
    }
    t.brokers = brokers.into_iter().collect();
    t
}

/// Runs `moves`: throttle (when asked), start, wait, check, measure, unthrottle. Moves that
/// change nothing are dropped first.
pub fn execute(
    admin: &Admin,
    wire: &mut ClusterAdmin,
    moves: &[PartitionMove],
    opts: &ReassignOptions,
    shutdown: &Shutdown,
) -> Result<ReassignReport, ReassignError> {
    let before = admin
        .snapshot(Duration::from_secs(10))
        .map_err(|e| ReassignError::Metadata(e.to_string()))?;
    let moves: Vec<PartitionMove> = moves
        .iter()
        .filter(|m| {
            before
                .partition(&m.topic, m.partition)
                .is_none_or(|p| Some(&p.replicas) != m.replicas.as_ref())
        })
        .cloned()
        .collect();
    let mut report = ReassignReport {
        started_ms: now_ms(),
        throttle: opts.throttle,
        ..Default::default()
    };
    if moves.is_empty() {
        report.ended_ms = now_ms();
        return Ok(report);
    }
    let throttle = opts.throttle.map(|r| throttle_for(&before, &moves, r));
    if let Some(t) = &throttle {
        wire.set_throttle(t)?;
    }
    let result = run_moves(wire, &before, &moves, opts, shutdown, &mut report);
    if let Some(t) = &throttle {
        if let Err(e) = wire.remove_throttle(t) {
            tracing::warn!("removing the replication throttle: {e}");
            if result.is_ok() {
                return Err(e.into());
            }
        }
    }
    result?;
    verify(admin, &moves)?;
    report.ended_ms = now_ms();
    // what the added replicas hold: what was copied
    let mut sizes: BTreeMap<i32, BTreeMap<(String, i32), i64>> = BTreeMap::new();
    for mp in &mut report.partitions {
        let mut bytes = 0u64;
        for b in mp.to.iter().filter(|b| !mp.from.contains(b)) {
            if !sizes.contains_key(b) {
                match wire.replica_sizes(*b) {
                    Ok(s) => {
                        sizes.insert(*b, s);
                    }
                    Err(e) => tracing::warn!("replica sizes on broker {b}: {e}"),
                }
            }
            bytes += sizes
                .get(b)
                .and_then(|s| s.get(&(mp.topic.clone(), mp.partition)))
                .copied()
                .unwrap_or(0)
                .max(0) as u64;
        }
        mp.bytes = bytes;
    }
    report.bytes = report.partitions.iter().map(|p| p.bytes).sum();
    Ok(report)
}

fn run_moves(
    wire: &mut ClusterAdmin,
    before: &ClusterSnapshot,
    moves: &[PartitionMove],
    opts: &ReassignOptions,
    shutdown: &Shutdown,
    report: &mut ReassignReport,
) -> Result<(), ReassignError> {
    let started = Instant::now();
    let refused = wire.alter_reassignments(moves)?;
    let keys = |ms: &[PartitionMove]| -> Vec<(String, i32)> {
        ms.iter().map(|m| (m.topic.clone(), m.partition)).collect()
    };
    if !refused.is_empty() {
        let bad: BTreeSet<(String, i32)> = refused
            .iter()
            .map(|e| (e.topic.clone(), e.partition))
            .collect();
        let accepted: Vec<(String, i32)> = keys(moves)
            .into_iter()
            .filter(|k| !bad.contains(k))
            .collect();
        if !accepted.is_empty() {
            let _ = wire.cancel_reassignments(&accepted);
        }
        return Err(ReassignError::Refused(
            refused.iter().map(|e| e.error.to_string()).collect(),
        ));
    }
    let mut pending: BTreeSet<(String, i32)> = keys(moves).into_iter().collect();
    let deadline = started + opts.timeout;
    loop {
        let ongoing: BTreeSet<(String, i32)> = wire
            .list_reassignments()?
            .into_iter()
            .map(|o| (o.topic, o.partition))
            .collect();
        let took = started.elapsed().as_millis() as u64;
        let done: Vec<(String, i32)> = pending
            .iter()
            .filter(|k| !ongoing.contains(*k))
            .cloned()
            .collect();
        for k in done {
            pending.remove(&k);
            let m = moves
                .iter()
                .find(|m| m.topic == k.0 && m.partition == k.1)
                .expect("pending comes from moves");
            report.partitions.push(MovedPartition {
                topic: k.0.clone(),
                partition: k.1,
                from: before
                    .partition(&k.0, k.1)
                    .map(|p| p.replicas.clone())
                    .unwrap_or_default(),
                to: m.replicas.clone().unwrap_or_default(),
                took_ms: took,
                bytes: 0,
            });
        }
        if pending.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline || shutdown.requested() {
            let left: Vec<(String, i32)> = pending.iter().cloned().collect();
            if let Err(e) = wire.cancel_reassignments(&left) {
                tracing::warn!("cancelling the reassignments still in flight: {e}");
            }
            if shutdown.requested() {
                return Err(ReassignError::Interrupted);
            }
            return Err(ReassignError::TimedOut(left.len(), opts.timeout));
        }
        shutdown.sleep(opts.poll);
    }
}

/// Checks that the metadata shows the plan's replicas, in the plan's order (retried for a
/// few seconds: metadata reaches the brokers after the controller).
pub fn verify(admin: &Admin, moves: &[PartitionMove]) -> Result<(), ReassignError> {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let snap = admin
            .snapshot(Duration::from_secs(5))
            .map_err(|e| ReassignError::Metadata(e.to_string()))?;
        let wrong: Vec<String> = moves
            .iter()
            .filter_map(|m| {
                let want = m.replicas.as_ref()?;
                let got = snap
                    .partition(&m.topic, m.partition)
                    .map(|p| p.replicas.clone())
                    .unwrap_or_default();
                (&got != want)
                    .then(|| format!("{}/{}: {got:?}, plan {want:?}", m.topic, m.partition))
            })
            .collect();
        if wrong.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(ReassignError::Mismatch(wrong));
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_restore_moves_back_what_changed_and_keeps_what_is_new() {
        let part = |t: &str, p: i32, r: &[i32]| super::super::PartitionState {
            topic: t.into(),
            partition: p,
            leader: r[0],
            replicas: r.to_vec(),
            isr: r.to_vec(),
        };
        let then = ClusterSnapshot {
            brokers: vec![1, 2, 3],
            partitions: vec![part("orders", 0, &[1, 2, 3]), part("orders", 1, &[2, 3, 1])],
        };
        let now = ClusterSnapshot {
            brokers: vec![1, 2, 3, 4, 5, 6],
            partitions: vec![
                part("orders", 0, &[4, 2, 3]),
                part("orders", 1, &[2, 3, 1]),
                part("_migration", 0, &[4, 5, 6]),
            ],
        };
        let (moves, warnings) = super::plan_restore(&now, &then);
        assert_eq!(moves.len(), 1, "{moves:?}");
        assert_eq!((moves[0].topic.as_str(), moves[0].partition), ("orders", 0));
        assert_eq!(moves[0].replicas, Some(vec![1, 2, 3]));
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].starts_with("_migration:"), "{warnings:?}");
        // the same layout: nothing to move
        assert!(super::plan_restore(&then, &then).0.is_empty());
    }

    use super::*;
    use crate::kafka::PartitionState;

    fn snap(parts: &[(&str, i32, &[i32])]) -> ClusterSnapshot {
        ClusterSnapshot {
            brokers: vec![1, 2, 3, 4, 5, 6],
            partitions: parts
                .iter()
                .map(|(t, p, r)| PartitionState {
                    topic: t.to_string(),
                    partition: *p,
                    leader: r[0],
                    replicas: r.to_vec(),
                    isr: r.to_vec(),
                })
                .collect(),
        }
    }

    #[test]
    fn a_map_replaces_replicas_in_place_and_keeps_unmapped_ones_with_a_warning() {
        let s = snap(&[
            ("a", 0, &[1, 2]),
            ("a", 1, &[4, 5]),
            ("a", 2, &[2, 3]),
            ("b", 0, &[3]),
        ]);
        let map = BTreeMap::from([(1, 4), (2, 5)]);
        let (moves, warnings) = plan_map(&s, &map, |t| t == "a");
        assert_eq!(
            moves
                .iter()
                .map(|m| (m.partition, m.replicas.clone().unwrap()))
                .collect::<Vec<_>>(),
            vec![(0, vec![4, 5]), (2, vec![5, 3])],
            "a/1 is already on the new brokers: no move"
        );
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("a/2") && warnings[0].contains("broker 3"));
    }

    #[test]
    fn a_raise_adds_replicas_off_the_avoided_broker_and_puts_one_first_when_it_led() {
        let s = snap(&[
            ("p", 0, &[2]),
            ("p", 1, &[1]),
            ("p", 2, &[3]),
            ("q", 0, &[1, 2]),
        ]);
        let moves = plan_raise(&s, |t| t == "p", 2, &[1, 2, 3], &[2]).unwrap();
        let got: Vec<Vec<i32>> = moves.iter().map(|m| m.replicas.clone().unwrap()).collect();
        assert_eq!(got.len(), 3);
        assert_ne!(
            got[0][0], 2,
            "the avoided broker no longer preferred: {got:?}"
        );
        assert!(got[0].contains(&2), "its replica stays: {got:?}");
        assert_eq!(got[1], vec![1, 3]);
        assert_eq!(got[2], vec![3, 1]);
        assert!(got
            .iter()
            .all(|r| r.iter().filter(|b| **b == 2).count() <= 1));
        assert!(
            plan_raise(&s, |t| t == "p", 3, &[1, 2, 3], &[2]).is_err(),
            "only two brokers allowed"
        );
    }

    #[test]
    fn a_drain_moves_every_replica_off_and_spreads_them() {
        let s = snap(&[
            ("a", 0, &[1, 2]),
            ("a", 1, &[2, 1]),
            ("a", 2, &[1, 3]),
            ("b", 0, &[3, 2]),
        ]);
        let moves = plan_drain(&s, &[1], &[2, 3, 4, 5]).unwrap();
        assert_eq!(moves.len(), 3);
        for m in &moves {
            let r = m.replicas.as_ref().unwrap();
            assert!(!r.contains(&1), "{r:?}");
            let distinct: BTreeSet<_> = r.iter().collect();
            assert_eq!(distinct.len(), r.len(), "{r:?}");
        }
        let new: BTreeSet<i32> = moves
            .iter()
            .flat_map(|m| m.replicas.clone().unwrap())
            .filter(|b| *b >= 4)
            .collect();
        assert_eq!(
            new,
            BTreeSet::from([4, 5]),
            "the empty brokers take the replicas"
        );
    }

    #[test]
    fn the_throttle_covers_the_old_replicas_as_leaders_and_the_new_as_followers() {
        let s = snap(&[("a", 0, &[1, 2])]);
        let m = vec![PartitionMove {
            topic: "a".into(),
            partition: 0,
            replicas: Some(vec![4, 2]),
        }];
        let t = throttle_for(&s, &m, 1000);
        assert_eq!(t.leader_replicas["a"], vec![(0, 1), (0, 2)]);
        assert_eq!(t.follower_replicas["a"], vec![(0, 4)]);
        assert_eq!(t.brokers, vec![1, 2, 4]);
    }
}
