//! The topics of a watch: named after the run, placed so that every broker leads some, and
//! the only topics a watch (or a cleanup after it) ever writes to or deletes.
//!
//! Ownership is decided by name alone, so that a cleanup after a crash needs nothing but
//! the run directory: a topic is the run's when its name is `PREFIX RUN_ID - NAME` and
//! `run.json` lists it. The run id holds the time and random bits, so no topic made by
//! anyone else carries it by chance.

use crate::error::HarnessError;
use crate::scenario::Scenario;

/// The default prefix of a watch's topic names.
pub const DEFAULT_PREFIX: &str = "kmh-";

/// The name a watch gives the scenario's topic `name`.
pub fn owned_name(prefix: &str, run_id: &str, name: &str) -> String {
    format!("{prefix}{run_id}-{name}")
}

/// Whether `topic` is one a run `run_id` named (whatever its prefix).
pub fn is_owned(topic: &str, run_id: &str) -> bool {
    topic
        .split_once(run_id)
        .is_some_and(|(prefix, rest)| rest.starts_with('-') && rest.len() > 1 && prefix.len() < 64)
}

/// The consumer group of a run's consumers (the only group a watch uses).
pub fn owned_group(run_id: &str) -> String {
    format!("kmh-{run_id}")
}

/// Renames the scenario's topics to the run's own names and checks them against the
/// watched cluster: names Kafka accepts, a replication factor its brokers can hold.
pub fn own(
    scenario: &mut Scenario,
    run_id: &str,
    prefix: &str,
    brokers: &[i32],
) -> Result<(), HarnessError> {
    use crate::scenario::topic_chars_ok;
    if !topic_chars_ok(prefix) {
        return Err(HarnessError::BadInput(format!(
            "--topic-prefix `{prefix}`: Kafka topic names hold only letters, digits, '.', '_' and '-'\n  hint: e.g. --topic-prefix kmh-"
        )));
    }
    for (i, t) in scenario.workload.topics.iter_mut().enumerate() {
        if t.replication as usize > brokers.len() {
            return Err(HarnessError::BadInput(format!(
                "{}: workload.topics[{i}].replication is {} and the watched cluster has {} broker(s) ({:?})\n  hint: lower the replication, or watch a cluster with more brokers",
                scenario.file.display(),
                t.replication,
                brokers.len(),
                brokers
            )));
        }
        let name = owned_name(prefix, run_id, &t.name);
        if name.len() > 249 || !topic_chars_ok(&name) {
            return Err(HarnessError::BadInput(format!(
                "{}: workload.topics[{i}]: `{name}` is not a topic name Kafka accepts (at most 249 letters, digits, '.', '_', '-')\n  hint: shorten the scenario name, the topic name or --topic-prefix",
                scenario.file.display()
            )));
        }
        t.name = name;
    }
    Ok(())
}

/// A replica assignment that makes every broker the preferred leader of some partition
/// (when there are at least as many partitions as brokers) and spreads the followers:
/// partition `p` is led by `brokers[p % n]`, its followers the next brokers in turn,
/// shifted by one every `n` partitions so that the same pairs do not always go together.
pub fn spread(partitions: u32, replication: u32, brokers: &[i32]) -> Vec<Vec<i32>> {
    let n = brokers.len();
    (0..partitions as usize)
        .map(|p| {
            // the others, in turn after the leader; rotated by one every n partitions
            let others = n - 1;
            let shift = (p / n) % others.max(1);
            (0..replication as usize)
                .map(|r| {
                    if r == 0 {
                        brokers[p % n]
                    } else {
                        let k = (shift + r - 1) % others;
                        brokers[(p + 1 + k) % n]
                    }
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_broker_leads_and_no_partition_repeats_a_broker() {
        for n in 1..=7usize {
            let brokers: Vec<i32> = (1..=n as i32).map(|b| b * 10).collect();
            for rf in 1..=n as u32 {
                for parts in [n as u32, 2 * n as u32 + 1, 24] {
                    let a = spread(parts, rf, &brokers);
                    assert_eq!(a.len(), parts as usize);
                    for r in &a {
                        let mut s = r.clone();
                        s.sort_unstable();
                        s.dedup();
                        assert_eq!(s.len(), rf as usize, "{n} brokers rf {rf}: {a:?}");
                    }
                    let mut leaders: Vec<i32> = a.iter().map(|r| r[0]).collect();
                    leaders.sort_unstable();
                    leaders.dedup();
                    assert_eq!(leaders, brokers, "every broker leads some partition");
                }
            }
        }
    }

    #[test]
    fn ownership_is_by_run_id_in_the_name() {
        let run = "canary-1796116982-f95e";
        let name = owned_name(DEFAULT_PREFIX, run, "orders");
        assert_eq!(name, "kmh-canary-1796116982-f95e-orders");
        assert!(is_owned(&name, run));
        assert!(is_owned(&owned_name("team.", run, "x"), run));
        assert!(!is_owned("orders", run));
        assert!(
            !is_owned("kmh-canary-1796116982-f95e", run),
            "no topic part"
        );
        assert!(!is_owned("kmh-canary-1796116982-f95eX-orders", run));
        assert!(!is_owned(
            &owned_name(DEFAULT_PREFIX, "canary-1796116982-0000", "orders"),
            run
        ));
    }

    #[test]
    fn a_prefix_or_name_kafka_refuses_is_named_before_anything_starts() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../scenarios/rolling-restart.toml");
        let sc = crate::scenario::load(&path).unwrap();
        let run = "canary-1796116982-f95e";
        let e = own(&mut sc.clone(), run, "a b", &[1, 2, 3])
            .unwrap_err()
            .to_string();
        assert!(e.contains("--topic-prefix `a b`"), "{e}");
        let long = "x".repeat(240);
        let e = own(&mut sc.clone(), run, &long, &[1, 2, 3])
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a topic name Kafka accepts"), "{e}");
        let mut ok = sc.clone();
        own(&mut ok, run, "team.", &[1, 2, 3]).unwrap();
        assert!(ok.workload.topics.iter().all(|t| is_owned(&t.name, run)));
    }
}
