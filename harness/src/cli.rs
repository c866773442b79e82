//! The command line's shape: every subcommand and its arguments (clap). `main.rs` runs them;
//! here so that tests can parse what the README says a user types
//! (`Cli::try_parse_from`) without running anything.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// `harness --version`: the version and the backends built in (ec2 is the cargo feature
/// `ec2`; its tests ask this before they run).
#[cfg(feature = "ec2")]
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (backends: local, docker, ssh, ec2)"
);
#[cfg(not(feature = "ec2"))]
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (backends: local, docker, ssh)");

#[derive(Parser)]
#[command(
    name = "harness",
    version = VERSION,
    about = "Run a Kafka migration under load and prove it lost nothing"
)]
pub struct Cli {
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run a scenario on a fresh cluster, check the logs and give a verdict.
    Run {
        /// The scenario file.
        scenario: PathBuf,
        /// Run directory (default: runs/NAME-TIMESTAMP).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Run on this backend instead of the scenario's (`local`, `docker`, or `ssh` with
        /// --hosts); run.json records which.
        #[arg(long)]
        backend: Option<BackendArg>,
        /// The ssh backend's inventory (TOML: user, key, hosts, workers…; see README "SSH
        /// hosts"); implies --backend ssh.
        #[arg(long, value_name = "FILE")]
        hosts: Option<PathBuf>,
        /// After the final read, keep the cluster up until Ctrl-C, with its bootstrap and
        /// ZooKeeper connect strings printed (to try `watch`, `mark` or your own tools on).
        #[arg(long)]
        hold: bool,
        /// Run the scenario on a KRaft cluster of this Kafka version (4.x, or 3.9 in KRaft
        /// mode) instead of its ZooKeeper ensemble: three dedicated controllers, the same
        /// brokers, workload, steps and expectations. Refused when the procedure involves
        /// ZooKeeper.
        #[arg(long, value_name = "VERSION")]
        kraft: Option<String>,
    },
    /// Watch a cluster the harness did not start: run the workload on topics of its own
    /// until Ctrl-C (or SIGTERM, or --duration), then drain, read back, check and report
    /// as `run` does. Mark each runbook step meanwhile with `harness mark`.
    Watch(WatchArgs),
    /// Add a point to a running watch's timeline (the latest one, or --run): windows and
    /// losses after it are blamed on it. With --file (`-`: stdin), every line is a mark,
    /// made as it is read.
    Mark {
        /// What the operator is doing, e.g. "switch zookeeper.connect".
        #[arg(required_unless_present = "file")]
        text: Option<String>,
        /// The run: its directory, its name under runs/, or its run id (default: the latest
        /// watch running on this machine).
        #[arg(long)]
        run: Option<String>,
        /// Read marks from this file, one per line (`-`: stdin, for a runbook script's pipe).
        #[arg(long, conflicts_with = "text")]
        file: Option<PathBuf>,
    },
    /// Check (again) a run directory, also one cut short by a crash.
    Check {
        /// The run directory.
        run_dir: PathBuf,
    },
    /// Make a run directory's report again from its logs — report.json, junit.xml and
    /// report.html (charts and tables, one file, no network) — and print report.html's
    /// path. Exit 0 whatever the verdict (`check` gives the verdict's exit code).
    Report {
        /// The run directory.
        run_dir: PathBuf,
    },
    /// Compare two runs of a scenario (two versions, two settings): verdicts, anomalies,
    /// windows per step, latency per step. Exit 1 when B is worse than A beyond the
    /// tolerance, 0 when not.
    Compare {
        /// The baseline: a run directory or its report.json.
        run_a: PathBuf,
        /// The candidate: a run directory or its report.json.
        run_b: PathBuf,
        /// How far (percent of A's figure) B may exceed A before a count or a window is
        /// worse.
        #[arg(long, default_value_t = 20.0)]
        tolerance_pct: f64,
        /// Milliseconds a window may be longer beyond the percentage (runs never repeat
        /// their milliseconds exactly).
        #[arg(long, default_value_t = 1000.0)]
        window_slack_ms: f64,
        /// How far (percent of A's p99 latency) B's may exceed it: looser than the
        /// others, as p99s of one version differ run to run (2.3× measured here).
        #[arg(long, default_value_t = 100.0)]
        latency_tolerance_pct: f64,
        /// Milliseconds a p99 latency may be higher beyond that percentage.
        #[arg(long, default_value_t = 50.0)]
        latency_slack_ms: f64,
        /// A p99 over fewer records than this (in either run) is shown, not judged.
        #[arg(long, default_value_t = 1000)]
        min_latency_samples: u64,
        /// Print the comparison as JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Validate scenario files without running anything (exit 2 when one is invalid, 3 when
    /// one is valid but this machine cannot run it).
    Validate {
        /// Scenario files.
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
    },
    /// Print what a run of a scenario would start, and where: on the ec2 backend every
    /// instance it would launch (role, node, type, image, subnet) against the cost guard
    /// (exit 2 beyond it). Launches nothing.
    Plan {
        /// The scenario file.
        scenario: PathBuf,
    },
    /// The Docker backend's images (node, worker, and the base they are built on).
    Images {
        #[command(subcommand)]
        command: ImagesCommand,
    },
    /// Remove what crashed runs left: processes, namespaces, bridges, firewall rules, and
    /// (Docker) containers and networks labelled by a run, copying worker logs out first.
    /// A run whose coordinator (`harness run`) is still alive is left alone and named.
    Cleanup {
        /// Only this run: its directory (as `harness run` printed it), its name under
        /// `runs/`, or its run id.
        #[arg(long)]
        run: Option<String>,
        /// Remove the leftovers of runs whose coordinator is still alive too.
        #[arg(long)]
        force: bool,
        /// EC2 too (the AWS chain's account and region): terminate instances tagged by the
        /// run given with --run, else those of runs whose coordinator is gone and those
        /// whose `kmh.expires-at` has passed.
        #[arg(long)]
        ec2: bool,
        /// The region for --ec2 (default: the AWS chain's).
        #[arg(long, requires = "ec2")]
        region: Option<String>,
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
    /// Benchmarks: our workers beside Kafka's own tools on one cluster and topic setting,
    /// or a controller's failover at several sizes; prints figures, ratios and goals,
    /// asserts nothing.
    Bench {
        /// What to measure.
        #[command(subcommand)]
        command: BenchCommand,
    },
    /// The Kafka/ZooKeeper distribution.
    Dist {
        #[command(subcommand)]
        command: DistCommand,
    },
}

#[derive(Subcommand)]
pub enum ZkCommand {
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
pub enum MigrateCommand {
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
        /// librdkafka properties of a secured cluster (security.protocol, sasl.*, ssl.*),
        /// one `key=value` per line; the reassignment requests use them too.
        #[arg(long)]
        client_config: Option<PathBuf>,
        /// `kmh.run=RUN_ID`, for `harness cleanup`, when a run drives the migration.
        #[arg(long)]
        tag: Option<String>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum BackendArg {
    Local,
    Docker,
    Ssh,
    Ec2,
}

#[derive(Subcommand)]
pub enum ImagesCommand {
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
pub enum DistCommand {
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

/// `harness bench` subcommands.
#[derive(Subcommand)]
pub enum BenchCommand {
    /// ProducerPerformance, our producer worker (1 instance), VerifiableProducer, the
    /// broker's ceiling (several ProducerPerformance at once) and one worker process with
    /// that many instances.
    Produce(BenchArgs),
    /// Fills the topic with our producer, then ConsumerPerformance and our consumer worker
    /// (1 instance) read it back.
    Consume(BenchArgs),
    /// Seed 002's controller failover at several sizes: one run per size and mode of a
    /// failover scenario (its `create-topics` step resized), ZooKeeper mode beside KRaft;
    /// prints the time to a new active controller and to every partition led, the client
    /// windows, and what the brokers held.
    Failover(FailoverArgs),
}

/// What `harness bench failover` measures.
#[derive(clap::Args)]
pub struct FailoverArgs {
    /// Partitions to create, comma-separated: one run per size and mode.
    #[arg(long, value_delimiter = ',', default_values_t = [1000u64, 3000, 9000])]
    pub partitions: Vec<u64>,
    /// The KRaft release compared (`harness run --kraft`); `none` for ZooKeeper mode only.
    #[arg(long, default_value = "3.9")]
    pub kraft: String,
    /// KRaft only (no ZooKeeper-mode runs).
    #[arg(long)]
    pub no_zookeeper: bool,
    /// The created topics' replication factor, instead of the scenario's.
    #[arg(long)]
    pub replication: Option<u32>,
    /// The brokers' and controllers' JVM heap, MiB, instead of the scenario's (the first
    /// limit a broker meets as its partitions grow).
    #[arg(long)]
    pub heap_mb: Option<u32>,
    /// The failover scenario.
    #[arg(long, default_value = "scenarios/controller-failover-scale.toml")]
    pub scenario: PathBuf,
    /// Where the runs go (default: runs/bench-failover-TIMESTAMP).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// What a benchmark measures on.
#[derive(clap::Args)]
pub struct BenchArgs {
    /// An existing cluster (`host:port,…`); default: start one broker and one ZooKeeper
    /// node here.
    #[arg(long)]
    pub bootstrap: Option<String>,
    /// Records per measurement.
    #[arg(long, default_value_t = 2_000_000)]
    pub records: u64,
    /// Bytes per record value.
    #[arg(long, default_value_t = 256)]
    pub size: usize,
    /// Partitions of the benchmark topic.
    #[arg(long, default_value_t = 6)]
    pub partitions: u32,
    /// Replication factor of the benchmark topic.
    #[arg(long, default_value_t = 1)]
    pub replication: u32,
    /// Producer processes for the broker's ceiling, and instances in the worker measured
    /// against it.
    #[arg(long, default_value_t = 3)]
    pub instances: u32,
    /// `acks=1` instead of `acks=all`.
    #[arg(long)]
    pub acks_leader: bool,
    /// Without idempotence.
    #[arg(long)]
    pub no_idempotence: bool,
    /// `linger.ms`.
    #[arg(long, default_value_t = 5)]
    pub linger_ms: u32,
    /// Where configs, logs and the tools' output go (default: runs/bench-TIMESTAMP).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// What `harness watch` watches, and how.
#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// The cluster's `bootstrap.servers` (`host:port,…`).
    #[arg(long)]
    pub bootstrap: String,
    /// Its ZooKeeper (`host:port,…/chroot`): the smoke test probes every server, and at the
    /// end Kafka's znodes are compared with what the brokers report.
    #[arg(long)]
    pub zookeeper: Option<String>,
    /// librdkafka properties for every client (security.protocol, sasl.*, ssl.*), one
    /// `key=value` per line.
    #[arg(long)]
    pub client_config: Option<PathBuf>,
    /// A watch scenario: [workload] and [expect], no [cluster], no steps (the canary
    /// gate). Without one: one topic, acks=all, idempotence, the flags below.
    pub scenario: Option<PathBuf>,
    /// How long to watch, e.g. `10m` (default: until Ctrl-C or SIGTERM).
    #[arg(long)]
    pub duration: Option<String>,
    /// Run directory (default: runs/NAME-TIMESTAMP).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Leave the run's topics on the cluster at the end.
    #[arg(long)]
    pub keep_topics: bool,
    /// The start of the run's topic names (the run id and the topic follow).
    #[arg(long, default_value = "kmh-")]
    pub topic_prefix: String,
    /// Without a scenario: partitions of the topic (default: two per broker).
    #[arg(long)]
    pub partitions: Option<u32>,
    /// Without a scenario: its replication (default: 3, or fewer brokers).
    #[arg(long)]
    pub replication: Option<u32>,
    /// Without a scenario: producer instances.
    #[arg(long, default_value_t = 3)]
    pub producers: u32,
    /// Without a scenario: consumer instances.
    #[arg(long, default_value_t = 2)]
    pub consumers: u32,
    /// Without a scenario: records per second per producer.
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
}
