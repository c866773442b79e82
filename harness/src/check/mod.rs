//! Checking a run: log readers, the checker, windows, latency, attribution.
//!
//! [`check_run`] reads a run directory (also one cut short by a crash: whatever the logs
//! hold up to their last flush) and returns the [`Findings`]; the verdict against the
//! scenario's expectations is the report's job ([`crate::report`]).

pub mod attribution;
mod checker;
pub mod latency;
pub mod windows;

use std::path::{Path, PathBuf};

pub use attribution::{Attribution, StepSpan};
pub use checker::{
    check, Anomalies, CheckInput, ConsumerTotals, Example, FinalReadTotals, Findings,
    ProducerTotals, Window, EXAMPLES_KEPT,
};

use crate::error::HarnessError;
use crate::run::{timeline, RunRecord};
use crate::scenario::Scenario;

/// The files of `dir` whose name ends in `.EXT`, sorted (none when `dir` is missing).
pub fn files_with_extension(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == ext))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// Every `*.log` in the run's `logs/` directory.
pub fn worker_logs(run_dir: &Path) -> Vec<PathBuf> {
    files_with_extension(&run_dir.join("logs"), "log")
}

/// Checks the run in `run_dir` against nothing but its own logs.
pub fn check_run(run_dir: &Path, scenario: &Scenario) -> Result<Findings, HarnessError> {
    let record = RunRecord::load(run_dir)?;
    let events = timeline::read(run_dir).map_err(|e| {
        HarnessError::BadInput(format!("{}: {e}", run_dir.join("timeline.jsonl").display()))
    })?;
    let attribution = Attribution::from_timeline(
        &events,
        record.started_ms,
        scenario.check.attribution_grace_ms,
    );
    let input = CheckInput {
        t0_ms: record.started_ms,
        topics: record.topics.clone(),
        attribution,
        window_threshold_ms: scenario.check.window_threshold_ms,
        logs: worker_logs(run_dir),
    };
    let mut findings = check(&input)?;
    add_smoke(&mut findings, run_dir, &record, &input)?;
    Ok(findings)
}

/// Adds the ZooKeeper smoke test's windows (partition `zk:NODE`, kind `zookeeper`) and
/// per-node summary, when the run has a smoke log.
fn add_smoke(
    f: &mut Findings,
    run_dir: &Path,
    record: &RunRecord,
    input: &CheckInput,
) -> Result<(), HarnessError> {
    use crate::zk::smoke;
    let path = run_dir.join(crate::run::SMOKE_LOG);
    if !path.exists() {
        return Ok(());
    }
    let probes = smoke::read_log(&path)
        .map_err(|e| HarnessError::BadInput(format!("{}: {e}", path.display())))?;
    let analysis = smoke::analyse(&probes, record.started_ms);
    let name = |server: &str| {
        let host = server.rsplit_once(':').map(|(h, _)| h).unwrap_or(server);
        record
            .hosts
            .iter()
            .find(|h| h.address == host)
            .map(|h| h.name.clone())
            .unwrap_or_else(|| server.to_string())
    };
    for (server, w) in smoke::windows(&analysis, input.window_threshold_ms as u32) {
        f.unavailability.push(Window {
            partition: format!("zk:{}", name(&server)),
            kind: "zookeeper".into(),
            start_ms: w.start as u64,
            end_ms: w.end as u64,
            duration_ms: (w.end - w.start) as u64,
            step: input.attribution.label_at(w.start as u64).to_string(),
            open: w.open,
        });
    }
    f.unavailability.sort_by(|a, b| {
        (a.start_ms, &a.kind, &a.partition).cmp(&(b.start_ms, &b.kind, &b.partition))
    });
    f.zookeeper = analysis
        .into_iter()
        .map(|(server, (summary, _))| (name(&server), summary))
        .collect();
    Ok(())
}
