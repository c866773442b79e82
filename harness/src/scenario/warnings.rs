//! What a scenario may do that the operator did not mean: said before the run starts, never
//! refused. Retention shorter than the run deletes records the checker then finds below
//! their partition's log start: reported as `expired`, apart from loss, and the warning says
//! so up front.

use std::time::Duration;

use super::{Action, PaceAction, Scenario};

/// The shortest the run can take while producers write: warm-up, every `sleep` step and
/// settle (the other steps only add to it).
pub fn shortest_load(scenario: &Scenario) -> Duration {
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

/// The warnings for `scenario`, each a full sentence naming the setting.
pub fn warnings(scenario: &Scenario) -> Vec<String> {
    let mut out = Vec::new();
    let load = shortest_load(scenario);
    let w = &scenario.workload;
    // bytes a partition receives over the load: every instance sends to every partition
    let partitions: u32 = w.topics.iter().map(|t| t.partitions).sum::<u32>().max(1);
    let per_partition_bytes =
        w.producer.rate * f64::from(w.producers) * w.producer.size as f64 * load.as_secs_f64()
            / f64::from(partitions);
    let broker = &scenario.cluster.broker_config;
    let broker_ms = broker
        .get("log.retention.ms")
        .and_then(|v| v.parse::<i64>().ok())
        .or_else(|| {
            broker
                .get("log.retention.minutes")
                .and_then(|v| v.parse::<i64>().ok())
                .map(|m| m * 60_000)
        })
        .or_else(|| {
            broker
                .get("log.retention.hours")
                .and_then(|v| v.parse::<i64>().ok())
                .map(|h| h * 3_600_000)
        });
    let broker_bytes = broker
        .get("log.retention.bytes")
        .and_then(|v| v.parse::<i64>().ok());
    for t in &w.topics {
        let ms = t
            .config
            .get("retention.ms")
            .and_then(|v| v.parse::<i64>().ok())
            .map(|v| (v, format!("topic {} retention.ms", t.name)))
            .or_else(|| broker_ms.map(|v| (v, "broker log.retention.*".to_string())));
        if let Some((ms, what)) = ms {
            if ms >= 0 && (ms as u128) < load.as_millis() {
                out.push(format!(
                    "{what} = {ms} ms is shorter than the load (at least {} s): records older than that are deleted during the run and reported as `expired`, not lost — and not verified either",
                    load.as_secs()
                ));
            }
        }
        let bytes = t
            .config
            .get("retention.bytes")
            .and_then(|v| v.parse::<i64>().ok())
            .map(|v| (v, format!("topic {} retention.bytes", t.name)))
            .or_else(|| broker_bytes.map(|v| (v, "broker log.retention.bytes".to_string())));
        if let Some((bytes, what)) = bytes {
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
