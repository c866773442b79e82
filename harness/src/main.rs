//! `harness`: the command line. See the README for the commands and exit codes.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use harness::error::{Exit, HarnessError};
use harness::{check, cleanup, report, run, scenario, Shutdown};

#[derive(Parser)]
#[command(
    name = "harness",
    version,
    about = "Run a Kafka migration under load and prove it lost nothing"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario on a fresh cluster, check the logs and give a verdict.
    Run {
        /// The scenario file.
        scenario: PathBuf,
        /// Run directory (default: runs/NAME-TIMESTAMP).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Run on this backend instead of the scenario's (`local` or `docker`); run.json
        /// records which.
        #[arg(long)]
        backend: Option<BackendArg>,
    },
    /// Check (again) a run directory, also one cut short by a crash.
    Check {
        /// The run directory.
        run_dir: PathBuf,
    },
    /// Validate scenario files without running anything (exit 2 when one is invalid, 3 when
    /// one is valid but this machine cannot run it).
    Validate {
        /// Scenario files.
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
    },
    /// The Docker backend's images (node, worker, and the base they are built on).
    Images {
        #[command(subcommand)]
        command: ImagesCommand,
    },
    /// Remove what crashed runs left: processes, namespaces, bridges, firewall rules, and
    /// (Docker) containers and networks labelled by a run, copying worker logs out first.
    Cleanup {
        /// Only this run id.
        #[arg(long)]
        run: Option<String>,
    },
    /// (internal) The delaying TCP proxy a run puts in front of a broker.
    #[command(hide = true)]
    Proxy {
        /// Address to listen on (the broker's advertised address).
        #[arg(long)]
        listen: std::net::SocketAddr,
        /// The broker's own listener.
        #[arg(long)]
        target: std::net::SocketAddr,
        /// File holding `LATENCY_MS JITTER_MS`.
        #[arg(long)]
        control: PathBuf,
        /// `kmh.run=RUN_ID`, for `harness cleanup`.
        #[arg(long)]
        tag: Option<String>,
    },
    /// ZooKeeper tools: subtree copy and diff between ensembles.
    Zk {
        #[command(subcommand)]
        command: ZkCommand,
    },
    /// Migrations on their own, against any cluster (also the one a run made).
    Migrate {
        #[command(subcommand)]
        command: MigrateCommand,
    },
    /// The Kafka/ZooKeeper distribution.
    Dist {
        #[command(subcommand)]
        command: DistCommand,
    },
}

#[derive(Subcommand)]
enum ZkCommand {
    /// Copy the subtree at PATH from the SRC ensemble to DST in multi-op transactions,
    /// skipping ephemeral nodes.
    Copy {
        /// Source connect string (`host:port,…`).
        src: String,
        /// Target connect string.
        dst: String,
        /// Subtree, e.g. `/kafka`.
        path: String,
        /// Operations per transaction.
        #[arg(long, default_value_t = 100)]
        batch: usize,
        /// Data bytes per transaction (under the server's jute.maxbuffer, 1 MiB by default).
        #[arg(long, default_value_t = 512 * 1024)]
        max_batch_bytes: usize,
        /// Catch-up pass: only nodes modified at or after this time (ms since epoch).
        #[arg(long)]
        mtime_after: Option<i64>,
        /// Delete target nodes under PATH that the source no longer has (ephemerals kept).
        #[arg(long)]
        prune: bool,
    },
    /// Probe every server (create, watch, set, delete, over and over) until stopped or for
    /// `--for`; one JSON line per operation to `--log`.
    Smoke {
        /// Servers, `host:port,host:port`: each is probed on its own session.
        servers: String,
        /// Where to append the probe log.
        #[arg(long)]
        log: PathBuf,
        /// Time between cycles, e.g. `200ms`.
        #[arg(long, default_value = "200ms")]
        interval: String,
        /// Stop after this long (default: at SIGTERM/Ctrl-C).
        #[arg(long = "for")]
        duration: Option<String>,
        /// `kmh.run=RUN_ID`, for `harness cleanup`; also names the probe nodes.
        #[arg(long)]
        tag: Option<String>,
    },
    /// Compare the subtree at PATH on two ensembles; exit 1 when they differ.
    Diff {
        /// First connect string.
        first: String,
        /// Second connect string.
        second: String,
        /// Subtree.
        path: String,
        /// Compare ephemeral nodes too.
        #[arg(long)]
        include_ephemerals: bool,
    },
}

#[derive(Subcommand)]
enum MigrateCommand {
    /// Replace brokers: move every replica from each old broker id to its new id, topic by
    /// topic, recording each topic moved in a bookkeeping topic; run it again after a crash
    /// and it resumes. Progress as JSON lines on stdout.
    Brokers {
        /// `host:port,…` of the cluster.
        #[arg(long)]
        bootstrap: String,
        /// Old broker id → new broker id, e.g. `1=4,2=5,3=6`.
        #[arg(long)]
        map: String,
        /// The topic recording which topics are done (created on the new brokers).
        #[arg(long)]
        bookkeeping_topic: String,
        /// Replication throttle, e.g. `10MB` (bytes/s); unthrottled by default.
        #[arg(long)]
        throttle: Option<String>,
        /// Longest wait for one topic's move, e.g. `10m`.
        #[arg(long, default_value = "10m")]
        topic_timeout: String,
        /// `kmh.run=RUN_ID`, for `harness cleanup`, when a run drives the migration.
        #[arg(long)]
        tag: Option<String>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum BackendArg {
    Local,
    Docker,
}

#[derive(Subcommand)]
enum ImagesCommand {
    /// Build the node and worker images (and, with no --base, a Debian base made with
    /// debootstrap and `docker import`); only what is missing or out of date.
    Build {
        /// A JRE image to build on (needs a registry, or the image already on the engine),
        /// e.g. eclipse-temurin:17-jre.
        #[arg(long)]
        base: Option<String>,
        /// Kafka version of the node image.
        #[arg(long, default_value = "3.9.1")]
        kafka: String,
        /// Rebuild the node and worker images even when up to date.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum DistCommand {
    /// Assemble the distribution from Maven Central into the cache (again).
    Fetch {
        /// Kafka version.
        #[arg(long, default_value = "3.9.1")]
        kafka: String,
    },
    /// Print the distribution directory in use (fetching it if needed).
    Path {
        /// Kafka version.
        #[arg(long, default_value = "3.9.1")]
        kafka: String,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "harness=info".into()),
        )
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(exit) => exit.into(),
        Err(e) => {
            eprintln!("harness: {}", e.chain());
            e.exit().into()
        }
    }
}

fn dispatch(cmd: Command) -> Result<Exit, HarnessError> {
    match cmd {
        Command::Run {
            scenario,
            out,
            backend,
        } => run_cmd(&scenario, out, backend),
        Command::Images {
            command: ImagesCommand::Build { base, kafka, force },
        } => {
            use harness::cluster::docker::{images, Engine};
            let engine = Engine::connect()?;
            let dist = harness::cluster::dist::locate(&kafka)?;
            let worker = run::workload::worker_binary()?;
            for o in images::ensure(&engine, &dist, &worker, base.as_deref(), force)? {
                let did = match o.action {
                    images::ImageAction::Reused => "kept",
                    images::ImageAction::Built => "built",
                    images::ImageAction::Imported => "imported",
                };
                println!("{did} {}: {}", o.image, o.detail);
            }
            Ok(Exit::Pass)
        }
        Command::Check { run_dir } => check_cmd(&run_dir),
        Command::Validate { scenarios } => {
            let mut bad = Vec::new();
            let mut cannot = Vec::new();
            for s in &scenarios {
                match scenario::load(s) {
                    // valid, and runnable on this machine (namespaces, netem where needed)
                    Ok(sc) => match run::preflight(&sc) {
                        Ok(()) => {
                            println!("{}: ok ({} steps)", s.display(), sc.steps.len());
                            for w in scenario::warnings(&sc) {
                                eprintln!("harness: warning: {}: {w}", s.display());
                            }
                        }
                        Err(e) => {
                            cannot.push(format!("{}: valid, but cannot run here: {e}", s.display()))
                        }
                    },
                    Err(e) => bad.push(e.to_string()),
                }
            }
            for c in &cannot {
                eprintln!("harness: {c}");
            }
            if !bad.is_empty() {
                Err(HarnessError::BadInput(bad.join("\n")))
            } else if !cannot.is_empty() {
                Err(HarnessError::Missing {
                    what: format!("{} scenario(s) cannot run on this machine", cannot.len()),
                    hint: "see the reasons above".into(),
                })
            } else {
                Ok(Exit::Pass)
            }
        }
        Command::Cleanup { run } => {
            // containers first: their workers get a SIGTERM and their logs are copied out
            // (on a local engine their processes are tagged too, and would die unflushed)
            let docker = harness::cluster::docker::cleanup(run.as_deref());
            let killed = cleanup::cleanup(run.as_deref());
            for l in &killed {
                println!("killed {} (run {}): {}", l.pid, l.run_id, l.command);
            }
            let net = harness::cluster::netns::cleanup(run.as_deref());
            for n in &net.namespaces {
                println!("deleted namespace {n}");
            }
            for b in &net.bridges {
                println!("deleted bridge {b}");
            }
            for r in &net.rules {
                println!("deleted firewall rule {r}");
            }
            for p in &docker.salvaged {
                println!("copied a worker log out: {}", p.display());
            }
            for c in &docker.containers {
                println!("removed container {c}");
            }
            for n in &docker.networks {
                println!("removed network {n}");
            }
            if let Some(why) = &docker.skipped {
                println!("docker: not checked: {why}");
            }
            println!(
                "cleanup: {} process(es) removed; {} namespace(s), {} bridge(s), {} rule(s) deleted; {} container(s), {} network(s) removed",
                killed.len(),
                net.namespaces.len(),
                net.bridges.len(),
                net.rules.len(),
                docker.containers.len(),
                docker.networks.len()
            );
            Ok(Exit::Pass)
        }
        Command::Proxy {
            listen,
            target,
            control,
            ..
        } => {
            // a port that cannot be bound is the tool failing, not bad input
            harness::fault::proxy::run(listen, target, control).map_err(|e| {
                HarnessError::Other(anyhow::Error::new(e).context(format!("proxy on {listen}")))
            })?;
            Ok(Exit::Pass)
        }
        Command::Zk { command } => zk_cmd(command),
        Command::Migrate {
            command:
                MigrateCommand::Brokers {
                    bootstrap,
                    map,
                    bookkeeping_topic,
                    throttle,
                    topic_timeout,
                    ..
                },
        } => {
            use harness::kafka::migrate;
            let bad = |e: String| HarnessError::BadInput(e);
            let opts = migrate::MigrateOptions {
                map: migrate::parse_map(&map).map_err(|e| bad(format!("--map: {e}")))?,
                bookkeeping_topic,
                throttle: throttle
                    .as_deref()
                    .map(|t| {
                        harness::scenario::parse_byte_rate(t).ok_or_else(|| {
                            bad(format!(
                                "--throttle: `{t}` is not a byte rate (e.g. 1048576, 10MB, 5MiB)"
                            ))
                        })
                    })
                    .transpose()?,
                topic_timeout: harness::scenario::parse_duration(&topic_timeout).ok_or_else(
                    || {
                        bad(format!(
                            "--topic-timeout: `{topic_timeout}` is not a duration (e.g. 10m)"
                        ))
                    },
                )?,
            };
            let shutdown = Shutdown::on_signals();
            let mut emit = |e: &migrate::MigrateEvent| {
                println!("{}", serde_json::to_string(e).unwrap_or_default());
                match e {
                    migrate::MigrateEvent::Start { recorded, in_flight, created_bookkeeping } => eprintln!(
                        "migrate: {} topic(s) already recorded, {} partition(s) left moving by an earlier run{}",
                        recorded.len(), in_flight.len(), if *created_bookkeeping { "; bookkeeping topic created" } else { "" }
                    ),
                    migrate::MigrateEvent::Reassigning { topic, partitions, .. } => eprintln!("migrate: {topic}: moving {partitions} partition(s)…"),
                    migrate::MigrateEvent::TopicDone { topic, report } => eprintln!(
                        "migrate: {topic}: done ({} partition(s), {} bytes, {} ms)",
                        report.partitions.len(), report.bytes, report.ended_ms.saturating_sub(report.started_ms)
                    ),
                    migrate::MigrateEvent::Done { moved } => eprintln!("migrate: done; {} topic(s) moved by this run", moved.len()),
                }
            };
            migrate::migrate_brokers(&bootstrap, &opts, &shutdown, &mut emit)
                .map_err(|e| HarnessError::Cluster(format!("migrate brokers: {e}")))?;
            Ok(Exit::Pass)
        }
        Command::Dist { command } => {
            let d = match command {
                DistCommand::Fetch { kafka } => harness::cluster::dist::fetch(&kafka)?,
                DistCommand::Path { kafka } => harness::cluster::dist::locate(&kafka)?,
            };
            println!("{}", d.home.display());
            Ok(Exit::Pass)
        }
    }
}

fn run_cmd(
    path: &Path,
    out: Option<PathBuf>,
    backend: Option<BackendArg>,
) -> Result<Exit, HarnessError> {
    let mut sc = scenario::load(path)?;
    match backend {
        Some(BackendArg::Local) => sc.cluster.backend = scenario::Backend::Local,
        Some(BackendArg::Docker) => sc.cluster.backend = scenario::Backend::Docker,
        None => {}
    }
    let text = std::fs::read_to_string(path)?;
    let run_dir = out.unwrap_or_else(|| {
        let stamp = workers::clock::now_ms() / 1000;
        PathBuf::from("runs").join(format!("{}-{stamp}", sc.name))
    });
    let shutdown = Shutdown::on_signals();
    eprintln!("harness: running `{}` into {}", sc.name, run_dir.display());
    match run::run_scenario(&sc, &text, &run_dir, &shutdown) {
        Ok(_) => check_cmd(&run_dir),
        Err(e) => {
            if run_dir.join("logs").exists() {
                eprintln!(
                    "harness: the logs so far are in {}; `harness check {}` reads them",
                    run_dir.display(),
                    run_dir.display()
                );
            }
            Err(e)
        }
    }
}

fn check_cmd(run_dir: &Path) -> Result<Exit, HarnessError> {
    let record = harness::rundir::RunRecord::load(run_dir)?;
    let sc = scenario::load(&run_dir.join("scenario.toml"))?;
    let findings = check::check_run(run_dir, &sc)?;
    let rep = report::build(&sc, &record.run_id, record.started_ms, findings);
    report::write(run_dir, &rep)?;
    print!("{}", report::summary(&rep, run_dir));
    Ok(if rep.passed() { Exit::Pass } else { Exit::Fail })
}

fn zk_cmd(cmd: ZkCommand) -> Result<Exit, HarnessError> {
    use harness::zk::tree;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let tool = |e: tree::TreeError| HarnessError::Cluster(format!("zookeeper: {e}"));
    match cmd {
        ZkCommand::Copy { src, dst, path, batch, max_batch_bytes, mtime_after, prune } => rt.block_on(async {
            if batch == 0 {
                return Err(HarnessError::BadInput("--batch must be at least 1".into()));
            }
            let (s, d) = (tree::connect(&src).await.map_err(tool)?, tree::connect(&dst).await.map_err(tool)?);
            let opts = tree::CopyOptions { batch, max_batch_bytes, mtime_after, prune };
            let r = tree::copy(&s, &d, &path, &opts).await.map_err(tool)?;
            println!(
                "copied {path}: {} visited, {} created, {} updated, {} unchanged, {} deleted, {} ephemeral skipped, {} transactions, {} ms",
                r.visited, r.created, r.updated, r.unchanged, r.deleted, r.ephemerals_skipped, r.transactions, r.elapsed_ms
            );
            Ok(Exit::Pass)
        }),
        ZkCommand::Smoke { servers, log, interval, duration, tag } => {
            let parse = |v: &str, what: &str| harness::scenario::parse_duration(v).ok_or_else(|| HarnessError::BadInput(format!("{what}: `{v}` is not a duration (e.g. 200ms, 10s)")));
            let interval = parse(&interval, "--interval")?;
            let until = duration.as_deref().map(|d| parse(d, "--for")).transpose()?.map(|d| std::time::Instant::now() + d);
            let shutdown = Shutdown::on_signals();
            let stop = move || shutdown.requested() || until.is_some_and(|u| std::time::Instant::now() >= u);
            let servers: Vec<String> = servers.split(',').map(str::to_string).collect();
            let tag = tag.unwrap_or_else(|| format!("pid{}", std::process::id())).replace("kmh.run=", "");
            rt.block_on(harness::zk::smoke::run(servers, tag, &log, interval, stop))?;
            Ok(Exit::Pass)
        }
        ZkCommand::Diff { first, second, path, include_ephemerals } => rt.block_on(async {
            let (a, b) = (tree::connect(&first).await.map_err(tool)?, tree::connect(&second).await.map_err(tool)?);
            let diffs = tree::diff(&a, &b, &path, !include_ephemerals).await.map_err(tool)?;
            for d in &diffs {
                println!("{}", serde_json::to_string(d).unwrap_or_default());
            }
            println!("{} difference(s) under {path}", diffs.len());
            Ok(if diffs.is_empty() { Exit::Pass } else { Exit::Fail })
        }),
    }
}
