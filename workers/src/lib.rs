//! Sequence-numbered Kafka workers, and the formats they share with the harness.
//!
//! The harness starts `worker` processes on the cluster's hosts; each hosts many client
//! instances and writes every outcome to an append-only binary log that the harness's
//! checker reads at the end of the run. This crate is that worker, plus the formats:
//!
//! * [`record`] — the header every produced value starts with (run, producer, sequence
//!   number, send timestamp, checksum), padded to the configured size.
//! * [`log`] — the worker log: a small file header, then [`Event`]s (`acked`, `failed`,
//!   `indeterminate`, `received`, "sent up to", rebalances, final-read completion, the
//!   producer client's epoch bumps) in CRC-checked blocks of delta-coded fields, a few
//!   bytes each. Written through [`LogWriter`], read back (also when cut short by a crash)
//!   with [`LogReader`].
//! * [`config`] — [`WorkerConfig`], the JSON file the harness writes for each worker.
//! * [`produce`], [`consume`], [`final_read`] — the three worker roles, on rdkafka;
//!   [`copy`] — a fourth, the exactly-once pipeline (consume, produce and commit the
//!   offsets in one transaction).
//! * [`renewal`] — when librdkafka's idempotent producer bumps its epoch or takes a new
//!   producer id (read from its `eos` debug log): the records in flight then can be stored
//!   twice, and the checker needs to know which.
//! * [`transaction_calls`] — the transactional calls both roles that write transactions
//!   make, around two librdkafka/rust-rdkafka defects (a commit's 100-ms wait, a
//!   `send_offsets_to_transaction` that never returns).
//! * [`discovery`] — the file a migration rewrites to move the workers to new brokers.
//! * [`shutdown`] — SIGTERM/SIGINT turned into a [`Shutdown`] flag every loop watches, so a
//!   worker always ends with its log flushed.
//! * [`exit`] — the exit codes both binaries (`worker` and `harness`) end with.
//!
//! Timestamps everywhere are wall-clock microseconds since the Unix epoch
//! ([`clock::now_us`]): every process of a run shares one host clock (local and Docker
//! backends), and the log header names the clock so a multi-host run can tell.

pub mod clock;
pub mod config;
pub mod consume;
pub mod copy;
pub mod discovery;
pub mod exit;
pub mod final_read;
pub mod log;
pub mod produce;
pub mod record;
pub mod renewal;
pub mod shutdown;
mod status;
pub mod transaction_calls;

pub use config::{
    Acks, ConsumerSettings, CopySettings, ProducerSettings, Role, TopicSpec, TransactionSettings,
    WorkerConfig,
};
pub use log::{Event, EventKind, LogHeader, LogReader, LogWriter, RenewalEvent};
pub use record::RecordHeader;
pub use shutdown::Shutdown;
