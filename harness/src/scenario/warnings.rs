//! What a scenario may do that the operator did not mean: said before the run starts, never
//! refused. Retention shorter than the run deletes records the checker then finds below
//! their partition's log start: reported as `expired`, apart from loss, and the warning says
//! so up front.

use std::time::Duration;

use super::{Action, PaceAction, Scenario, Topic};

/// The shortest the run can take while producers write: warm-up, every `sleep` step and
/// settle (the other steps only add to it).
fn shortest_load(scenario: &Scenario) -> Duration {
    let sleeps: Duration = scenario
        .steps
        .iter()
        .filter_map(|s| match &s.action {
            Action::Pace(PaceAction::Sleep { duration }) => Some(*duration),
            _ => None,
        })
        .sum();
    scenario.workload.warmup + sleeps + scenario.workload.settle
}

/// A numeric setting: the topic's, else the broker's — with where it came from.
fn topic_or_broker(t: &Topic, key: &str, broker: Option<(i64, String)>) -> Option<(i64, String)> {
    t.config
        .get(key)
        .and_then(|v| v.parse().ok())
        .map(|v| (v, format!("topic {} {key}", t.name)))
        .or(broker)
}

/// The warnings for `scenario`, each a full sentence naming the setting.
pub fn warnings(scenario: &Scenario) -> Vec<String> {
    let mut out = Vec::new();
    let load = shortest_load(scenario);
    let w = &scenario.workload;
    // bytes a partition receives over the load: every instance sends to every partition
    let partitions: u32 = w.topics.iter().map(|t| t.partitions).sum::<u32>().max(1);
    // (an unlimited rate: unknown, so no byte-retention warning)
    let per_partition_bytes = w.producer.rate.map_or(0.0, |rate| {
        rate * f64::from(w.producers) * w.producer.size as f64 * load.as_secs_f64()
            / f64::from(partitions)
    });
    let broker = &scenario.cluster.broker_config;
    let broker_value = |key: &str| broker.get(key).and_then(|v| v.parse::<i64>().ok());
    // Kafka reads the finest unit given
    let broker_ms = [
        ("log.retention.ms", 1),
        ("log.retention.minutes", 60_000),
        ("log.retention.hours", 3_600_000),
    ]
    .into_iter()
    .find_map(|(key, ms)| {
        broker_value(key).map(|v| (v * ms, "broker log.retention.*".to_string()))
    });
    let broker_bytes =
        broker_value("log.retention.bytes").map(|v| (v, "broker log.retention.bytes".to_string()));
    for t in &w.topics {
        if let Some((ms, what)) = topic_or_broker(t, "retention.ms", broker_ms.clone()) {
            if ms >= 0 && (ms as u128) < load.as_millis() {
                out.push(format!(
                    "{what} = {ms} ms is shorter than the load (at least {} s): records older than that are deleted during the run and reported as `expired`, not lost — and not verified either",
                    load.as_secs()
                ));
            }
        }
        if let Some((bytes, what)) = topic_or_broker(t, "retention.bytes", broker_bytes.clone()) {
            if bytes >= 0 && (bytes as f64) < per_partition_bytes {
                out.push(format!(
                    "{what} = {bytes} is less than the ~{} bytes a partition of {} receives over the load: its oldest records are deleted during the run and reported as `expired`, not lost",
                    per_partition_bytes as u64, t.name
                ));
            }
        }
    }
    out
}
