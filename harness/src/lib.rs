//! # Kafka migration harness
//!
//! Runs a scripted Kafka migration against a real, ephemeral cluster under a
//! sequence-numbered load, then proves from the workers' logs whether anything was lost,
//! duplicated or reordered, and how long each partition was unavailable — each finding tied
//! to the step that caused it.
//!
//! The data path, top to bottom (each module uses only those above it; a test keeps it so):
//!
//! | module | concern |
//! |---|---|
//! | [`scenario`] | the scenario file: model, located validation, one parser per action family |
//! | [`kafka`] | admin: snapshots, topics, the health gate; reassignments, elections, throttles (kafka-protocol); `migrate brokers` |
//! | [`zk`] | ZooKeeper operations: readiness, subtree copy, reconfig, the smoke test's probes |
//! | [`fault`] | the delaying proxy (`delay` without netem) |
//! | [`cluster`] | hosts and nodes behind one seam ([`cluster::host`]): local processes, namespaces, Docker containers; network faults; the Kafka distribution |
//! | [`rundir`] | the run directory: what a run leaves where, `run.json`, the timeline |
//! | [`check`] | reading the logs: anomalies, windows, latency, attribution, the smoke log |
//! | [`report`] | verdict, `report.json`, `junit.xml`, terminal summary |
//! | [`run`] | one run: workers, phases, the step executor (one file per action family), final read |
//! | [`live`] | live mode: `watch` a cluster the harness did not start, on topics of its own; operator marks; what cleanup removes from it |
//! | [`cleanup`] | removing what crashed runs left behind |
//! | [`bench`] | our workers beside Kafka's own tools: figures and ratios, no assertions |
//! | [`cli`] | the command line's shape (clap); `main.rs` runs it |
//!
//! The worker side (record and log formats, producer/consumer loops) is the `workers`
//! crate. Errors are split by domain in [`error`], which also documents the exit codes;
//! graceful shutdown is [`shutdown::Shutdown`].

pub mod bench;
pub mod check;
pub mod cleanup;
pub mod cli;
pub mod cluster;
pub mod error;
pub mod fault;
pub mod kafka;
pub mod live;
pub mod report;
pub mod run;
pub mod rundir;
pub mod scenario;
pub mod shutdown;
pub mod zk;

pub use error::HarnessError;
pub use scenario::Scenario;
pub use shutdown::Shutdown;
