//! `worker`: one process of the harness's workload. Started by the harness with a JSON
//! config (see `workers::WorkerConfig`); stops cleanly on SIGTERM with its log flushed.
//!
//! Exit codes: 0 done, 2 bad config, 3 the client failed.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use workers::{Role, Shutdown, WorkerConfig};

#[derive(Parser)]
#[command(
    name = "worker",
    about = "Sequence-numbered Kafka workload worker (started by `harness`)"
)]
struct Args {
    /// The worker config file written by the harness.
    #[arg(long)]
    config: PathBuf,
    /// Tag that lets `harness cleanup` find this process (`kmh.run=RUN_ID`); not read.
    #[arg(long)]
    tag: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let cfg = match WorkerConfig::load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("worker: {e:#}");
            return ExitCode::from(2);
        }
    };
    let shutdown = Shutdown::install();
    let result = match cfg.role {
        Role::Produce => workers::produce::run(&cfg, shutdown),
        Role::Consume => workers::consume::run(&cfg, shutdown),
        Role::FinalRead => workers::final_read::run(&cfg, shutdown),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("worker: {e:#}");
            ExitCode::from(3)
        }
    }
}
