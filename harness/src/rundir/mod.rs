//! The run directory: what a run leaves where. [`crate::run`] writes it; [`crate::check`]
//! and [`crate::report`] read it and need nothing else, so a directory copied from another
//! machine, or left by a crashed run, can be checked again.
//!
//! ```text
//! scenario.toml   the scenario as run          run.json      run id, hosts, topics (RunRecord)
//! timeline.jsonl  steps, phases, snapshots      logs/*.log    binary worker logs
//! nodes/NAME/     node config, data, logs       workers/      worker configs, status, stderr
//! report.json     the checker's findings        junit.xml     one test case per expectation
//! report.html     charts and tables to look at (`harness report` makes it again)
//! coordinator.json  who ran it (pid, start time): cleanup leaves a live run alone
//! ```

pub mod coordinator;
pub mod timeline;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use workers::TopicSpec;

use crate::cluster::HostInfo;
use crate::error::HarnessError;

/// The run's identity, hosts and topics (JSON).
pub const RUN_JSON: &str = "run.json";
/// The scenario as run: `harness check` judges with it.
pub const SCENARIO: &str = "scenario.toml";
/// Steps, phases, snapshots, marks (JSON lines).
pub const TIMELINE: &str = "timeline.jsonl";
/// The workers' binary logs (`*.log`).
pub const LOGS: &str = "logs";
/// Worker configs (`*.json`), status lines (`*.out`), stderr (`*.err`).
pub const WORKERS: &str = "workers";
/// The ZooKeeper smoke test's log (JSON lines).
pub const SMOKE_LOG: &str = "logs/zk-smoke.jsonl";
/// The end-of-run check of Kafka's metadata in ZooKeeper.
pub const METADATA_CHECK: &str = "metadata-check.json";
/// What a `create-metadata` step created (topic configs, quotas, SCRAM users, ACLs).
pub const METADATA_CREATED: &str = "metadata-created.json";
/// The end-of-run check that what `create-metadata` created is all there.
pub const METADATA_SURVIVAL: &str = "metadata-survival.json";
/// The findings and the verdict.
pub const REPORT_JSON: &str = "report.json";
/// One test case per expectation.
pub const JUNIT_XML: &str = "junit.xml";
/// The report to look at: charts on one time axis, tables (one file, no network).
pub const REPORT_HTML: &str = "report.html";
/// The client properties a watch was given (`--client-config`), kept (mode 0600) so that
/// `harness cleanup` can reach a secured cluster after a crash.
pub const CLIENT_CONFIG: &str = "client.properties";

/// What `run.json` records about a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    /// Run id (tags every process the run started).
    pub run_id: String,
    /// Scenario name.
    pub scenario: String,
    /// When the run started, ms since epoch.
    pub started_ms: u64,
    /// Kafka version.
    pub kafka_version: String,
    /// Where the nodes and workers ran: `local` or `docker`; `live` for a cluster the
    /// harness did not start (`harness watch`).
    #[serde(default)]
    pub backend: String,
    /// `bootstrap.servers`.
    pub bootstrap: String,
    /// The ZooKeeper connect string a watch was given (`host:port,…[/chroot]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zookeeper: Option<String>,
    /// A watch asked to leave its topics on the cluster (`--keep-topics`): cleanup leaves
    /// them too.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub keep_topics: bool,
    /// The ssh backend's inventory (how `harness cleanup` reaches the hosts after a crash).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<crate::cluster::ssh::Inventory>,
    /// The ec2 backend's instances and region (`harness cleanup` terminates them when the
    /// run's coordinator is gone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ec2: Option<crate::cluster::ec2::Ec2Record>,
    /// Every node.
    pub hosts: Vec<HostInfo>,
    /// Workload topics, in log topic-index order.
    pub topics: Vec<TopicSpec>,
}

impl RunRecord {
    /// Reads `run.json` of a run directory.
    pub fn load(run_dir: &Path) -> Result<RunRecord, HarnessError> {
        let p = run_dir.join(RUN_JSON);
        let text = std::fs::read_to_string(&p).map_err(|e| {
            HarnessError::BadInput(format!("{}: {e} (is this a run directory?)", p.display()))
        })?;
        serde_json::from_str(&text)
            .map_err(|e| HarnessError::BadInput(format!("{}: {e}", p.display())))
    }
}

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
    files_with_extension(&run_dir.join(LOGS), "log")
}
