//! # Kafka migration harness
//!
//! Runs a scripted Kafka migration against a real, ephemeral cluster under a
//! sequence-numbered load, then proves from the workers' logs whether anything was lost,
//! duplicated or reordered, and how long each partition was unavailable — each finding tied
//! to the step that caused it.
//!
//! The data path, top to bottom:
//!
//! | module | concern |
//! |---|---|
//! | [`scenario`] | the scenario file: model, located validation, step executor |
//! | [`cluster`] | hosts and nodes: processes (local backend) or containers (docker backend), network faults, the Kafka distribution |
//! | [`docker`] | the Docker engine (bollard): containers, networks, images, cleanup by label |
//! | [`kafka`] | admin: snapshots, topics, the health gate; reassignments, elections, throttles (kafka-protocol); `migrate brokers` |
//! | [`zk`] | ZooKeeper operations (four-letter words) |
//! | [`fault`] | the delaying proxy (`delay` without netem) |
//! | [`run`] | one run: workers, phases, timeline, final read |
//! | [`check`] | reading the logs: anomalies, windows, latency, attribution |
//! | [`report`] | verdict, `report.json`, `junit.xml`, terminal summary |
//! | [`cleanup`] | removing what crashed runs left behind |
//!
//! The worker side (record and log formats, producer/consumer loops) is the `workers`
//! crate. Errors are split by domain in [`error`], which also documents the exit codes;
//! graceful shutdown is [`shutdown::Shutdown`].

pub mod check;
pub mod cleanup;
pub mod cluster;

pub mod error;
pub mod fault;
pub mod kafka;
pub mod report;
pub mod run;
pub mod rundir;
pub mod scenario;
pub mod shutdown;
pub mod zk;

pub use error::HarnessError;
pub use scenario::Scenario;
pub use shutdown::Shutdown;
