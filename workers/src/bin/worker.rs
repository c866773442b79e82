//! `worker`: one process of the harness's workload, started by the harness as
//! `worker produce|consume|final-read|copy --config FILE` (see `workers::WorkerConfig`). Stops
//! cleanly on SIGTERM with its log flushed.
//!
//! Exit codes: 0 done, 2 bad config, 3 the client failed.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use workers::exit::Exit;
use workers::{Role, Shutdown, WorkerConfig};

#[derive(Parser)]
#[command(
    name = "worker",
    about = "Sequence-numbered Kafka workload worker (started by `harness`)"
)]
struct Args {
    #[command(subcommand)]
    role: RoleArg,
}

#[derive(clap::Subcommand)]
enum RoleArg {
    /// Send sequence-numbered records, log every outcome.
    Produce(Common),
    /// Consume in the run's group, log every delivery and rebalance.
    Consume(Common),
    /// Read every partition from the beginning to its end offset, once.
    FinalRead(Common),
    /// The exactly-once pipeline: copy a topic to another in transactions.
    Copy(Common),
}

#[derive(clap::Args)]
struct Common {
    /// The worker config file written by the harness.
    #[arg(long)]
    config: PathBuf,
    /// Tag that lets `harness cleanup` find this process (`kmh.run=RUN_ID`); not read.
    #[arg(long)]
    tag: Option<String>,
}

fn main() -> ExitCode {
    let (role, args) = match Args::parse().role {
        RoleArg::Produce(c) => (Role::Produce, c),
        RoleArg::Consume(c) => (Role::Consume, c),
        RoleArg::FinalRead(c) => (Role::FinalRead, c),
        RoleArg::Copy(c) => (Role::Copy, c),
    };
    let cfg = match WorkerConfig::load(&args.config) {
        Ok(c) if c.role == role => c,
        Ok(c) => {
            eprintln!(
                "worker: {} is a {:?} config, not {role:?}",
                args.config.display(),
                c.role
            );
            return Exit::BadInput.into();
        }
        Err(e) => {
            eprintln!("worker: {e:#}");
            return Exit::BadInput.into();
        }
    };
    let shutdown = Shutdown::install();
    let result = match role {
        Role::Produce => workers::produce::run(&cfg, shutdown),
        Role::Consume => workers::consume::run(&cfg, shutdown),
        Role::FinalRead => workers::final_read::run(&cfg, shutdown),
        Role::Copy => workers::copy::run(&cfg, shutdown),
    };
    match result {
        Ok(()) => Exit::Pass.into(),
        Err(e) => {
            eprintln!("worker: {e:#}");
            Exit::ToolFailed.into()
        }
    }
}
