//! `harness bench produce|consume`: our workers beside Kafka's own tools, on one cluster,
//! one topic and the same client settings, measured in one sitting. Prints figures, ratios
//! and the goals they are held to; asserts nothing (speed is a benchmark's business, never
//! a test's).
//!
//! Producers: Kafka's `ProducerPerformance` (the client's ceiling for one process), our
//! producer worker with one instance and its full per-record log, `VerifiableProducer`
//! (Kafka's own verifying producer), the broker's ceiling (several `ProducerPerformance`
//! processes at once) and one worker process with that many instances. Consumers: the topic
//! is filled by our producer, then `ConsumerPerformance` and our consumer worker (one
//! instance, a fresh group, from the earliest offset) each read the same number of records.
//!
//! Our rates come from the workers' own logs (first send or start to last outcome), the
//! tools' from what they print. Each measurement is a fresh worker process or JVM, so JIT
//! warm-up and group joins are inside every figure alike.
//!
//! `harness bench failover` — a controller's failover at several sizes, ZooKeeper mode
//! beside KRaft — is [`failover`].

mod failover;

pub use failover::{failover, FailoverSettings};

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use workers::{EventKind, LogReader, Role};

use crate::cluster::{dist, Cluster};
use crate::error::HarnessError;
use crate::run::workload::{self, Workload};
use crate::scenario::Scenario;
use crate::shutdown::Shutdown;

/// What to measure, and on what.
#[derive(Debug, Clone)]
pub struct BenchSettings {
    /// An existing cluster (`host:port,…`); `None`: start one broker and one ZooKeeper node
    /// on this machine.
    pub bootstrap: Option<String>,
    /// Records per measurement.
    pub records: u64,
    /// Bytes per record value.
    pub size: usize,
    /// Partitions of the benchmark topic.
    pub partitions: u32,
    /// Replication factor of the benchmark topic (at most the brokers).
    pub replication: u32,
    /// Producer processes for the broker's ceiling, and instances in the one worker
    /// process measured against it.
    pub instances: u32,
    /// `acks=all` (else `acks=1`).
    pub acks_all: bool,
    /// `enable.idempotence`.
    pub idempotence: bool,
    /// `linger.ms`.
    pub linger_ms: u32,
    /// Where configs, logs and the tools' output go.
    pub out: PathBuf,
}

/// One measured client.
struct Figure {
    /// What was measured.
    what: String,
    /// Records per second.
    records_per_s: f64,
    /// The same without the client's start (connection, group join), when known.
    steady_per_s: Option<f64>,
}

/// Where the benchmark runs: a cluster it started, or one it was given.
struct Bench {
    settings: BenchSettings,
    run_id: String,
    scenario: Scenario,
    cluster: Option<Cluster>,
    bootstrap: String,
    topic: String,
    dist: dist::Distribution,
    /// Measurements made so far (each gets its own directory).
    made: u32,
    /// Registered as a live run, so `harness cleanup` spares it while it runs and removes
    /// what it left if it is killed.
    _registered: crate::rundir::coordinator::Registered,
}

impl Bench {
    fn scenario(s: &BenchSettings, topic: &str) -> Result<Scenario, HarnessError> {
        let text = format!(
            "name = \"bench\"\n\
             [cluster]\nkafka = \"3.9\"\nzookeeper = [\"zk1\"]\nbrokers = [\"kafka1\"]\n\
             [workload]\n\
             topics = [{{ name = \"{topic}\", partitions = {p}, replication = {r}, min_insync = 1 }}]\n\
             producers = {i}\nrate = \"unlimited\"\nsize = {size}\nacks = \"{acks}\"\n\
             idempotence = {idem}\nlinger_ms = {linger}\n",
            p = s.partitions,
            r = s.replication,
            i = s.instances,
            size = s.size,
            acks = if s.acks_all { "all" } else { "1" },
            idem = s.idempotence,
            linger = s.linger_ms,
        );
        crate::scenario::parse(Path::new("bench settings"), &text).map_err(Into::into)
    }

    /// Starts (or attaches to) the cluster and creates the benchmark topic.
    fn open(settings: BenchSettings, shutdown: &Shutdown) -> Result<Bench, HarnessError> {
        dist::require_java()?;
        std::fs::create_dir_all(&settings.out)?;
        let out = std::path::absolute(&settings.out)?;
        let run_id = crate::run::new_run_id("bench");
        let topic = format!("kmh-bench-{}", run_id.rsplit('-').next().unwrap_or("0"));
        let scenario = Self::scenario(&settings, &topic)?;
        let dist = dist::locate(&scenario.cluster.kafka_version)?;
        let registered = crate::rundir::coordinator::Coordinator::this(&run_id, &out).register()?;
        let (cluster, bootstrap) = match &settings.bootstrap {
            Some(b) => (None, b.clone()),
            None => {
                let mut c = Cluster::prepare(&run_id, &scenario.cluster, &dist, &out, false, &[])?;
                eprintln!("harness: bench: starting one ZooKeeper node and one broker…");
                c.start_all(shutdown)?;
                let b = c.bootstrap();
                (Some(c), b)
            }
        };
        let mut bench = Bench {
            settings: BenchSettings { out, ..settings },
            run_id,
            scenario,
            cluster,
            bootstrap,
            topic,
            dist,
            made: 0,
            _registered: registered,
        };
        let admin = crate::kafka::Admin::new(&bench.bootstrap)
            .map_err(|e| HarnessError::Cluster(format!("connecting to the cluster: {e}")))?;
        admin
            .create_topics(&bench.scenario.workload.topics)
            .map_err(|e| HarnessError::Cluster(format!("creating {}: {e}", bench.topic)))?;
        let ids = bench
            .cluster
            .as_mut()
            .map(|c| c.running_broker_ids())
            .unwrap_or_default();
        admin
            .wait_healthy(&ids, &[&bench.topic], Duration::from_secs(60), shutdown)
            .map_err(|e| HarnessError::Cluster(format!("topic not ready: {e}")))?;
        eprintln!(
            "harness: bench: topic {} ({} partitions) on {}",
            bench.topic, bench.settings.partitions, bench.bootstrap
        );
        Ok(bench)
    }

    fn next_dir(&mut self, what: &str) -> Result<PathBuf, HarnessError> {
        self.made += 1;
        let d = self.settings.out.join(format!("{:02}-{what}", self.made));
        std::fs::create_dir_all(&d)?;
        Ok(d)
    }

    fn client_props(&self) -> Vec<String> {
        let s = &self.settings;
        vec![
            format!("bootstrap.servers={}", self.bootstrap),
            format!("acks={}", if s.acks_all { "all" } else { "1" }),
            format!("enable.idempotence={}", s.idempotence),
            format!("linger.ms={}", s.linger_ms),
        ]
    }

    /// A Kafka tool's JVM, tagged like every process of the run.
    fn tool(&self, class: &str) -> Command {
        let mut c = Command::new("java");
        c.arg("-Xmx1g")
            .arg(format!("-Dkmh.run={}", self.run_id))
            .arg("-Dlog4j.configuration=file:/dev/null")
            .arg("-cp")
            .arg(self.dist.classpath())
            .arg(class)
            .stdin(Stdio::null());
        c
    }

    /// Runs `count` ProducerPerformance processes at once, `records` each; their summed
    /// rate.
    fn producer_performance(&mut self, count: u32, records: u64) -> Result<f64, HarnessError> {
        let dir = self.next_dir(&format!("producer-performance-x{count}"))?;
        let mut children = Vec::new();
        for i in 0..count {
            let out = dir.join(format!("{i}.out"));
            let child = self
                .tool("org.apache.kafka.tools.ProducerPerformance")
                .args(["--topic", &self.topic])
                .args(["--num-records", &records.to_string()])
                .args(["--record-size", &self.settings.size.to_string()])
                .args(["--throughput", "-1"])
                .arg("--producer-props")
                .args(self.client_props())
                .stdout(std::fs::File::create(&out)?)
                .stderr(std::fs::File::create(dir.join(format!("{i}.err")))?)
                .spawn()
                .map_err(|e| HarnessError::Cluster(format!("starting java: {e}")))?;
            children.push((child, out));
        }
        let mut total = 0.0;
        for (mut child, out) in children {
            let status = child.wait()?;
            let text = std::fs::read_to_string(&out)?;
            // the summary is the last line with a rate: "N records sent, R records/sec (…"
            let rate = text
                .lines()
                .rev()
                .find_map(|l| number_before(l, " records/sec"))
                .ok_or_else(|| tool_failed("ProducerPerformance", status, &dir))?;
            total += rate;
        }
        Ok(total)
    }

    /// VerifiableProducer's own average rate (it prints a JSON line per record; they are
    /// read and dropped here, as a test driver would).
    fn verifiable_producer(&mut self, records: u64) -> Result<f64, HarnessError> {
        let dir = self.next_dir("verifiable-producer")?;
        let config = dir.join("producer.properties");
        // it defaults to retries=0, which idempotence refuses; the others' default
        let mut props = self.client_props()[1..].to_vec();
        props.push("retries=2147483647".into());
        std::fs::write(&config, props.join("\n") + "\n")?;
        let mut child = self
            .tool("org.apache.kafka.tools.VerifiableProducer")
            .args(["--topic", &self.topic])
            .args(["--bootstrap-server", &self.bootstrap])
            .args(["--max-messages", &records.to_string()])
            .args(["--acks", if self.settings.acks_all { "-1" } else { "1" }])
            .args(["--throughput", "-1"])
            .arg("--producer.config")
            .arg(&config)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.join("err"))?)
            .spawn()
            .map_err(|e| HarnessError::Cluster(format!("starting java: {e}")))?;
        let mut summary = None;
        for line in BufReader::new(child.stdout.take().expect("piped")).lines() {
            let line = line?;
            if line.contains("\"tool_data\"") {
                summary = Some(line);
            }
        }
        let status = child.wait()?;
        let rate = summary
            .as_deref()
            .and_then(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .and_then(|v| v["avg_throughput"].as_f64());
        rate.ok_or_else(|| tool_failed("VerifiableProducer", status, &dir))
    }

    /// ConsumerPerformance reading `records` from the start: (overall rate with the group
    /// join, rate while fetching).
    fn consumer_performance(&mut self, records: u64) -> Result<(f64, f64), HarnessError> {
        let dir = self.next_dir("consumer-performance")?;
        let out = dir.join("out");
        let status = self
            .tool("org.apache.kafka.tools.ConsumerPerformance")
            .args(["--bootstrap-server", &self.bootstrap])
            .args(["--topic", &self.topic])
            .args(["--messages", &records.to_string()])
            .args(["--group", &format!("kmh-bench-cp-{}", self.run_id)])
            .args(["--timeout", "60000"])
            .stdout(std::fs::File::create(&out)?)
            .stderr(std::fs::File::create(dir.join("err"))?)
            .status()
            .map_err(|e| HarnessError::Cluster(format!("starting java: {e}")))?;
        let text = std::fs::read_to_string(&out)?;
        // a header line of names, then one line of values
        let mut lines = text.lines().filter(|l| l.contains(','));
        let parsed = lines.next().zip(lines.next()).and_then(|(head, values)| {
            let col = |name: &str| {
                let i = head.split(',').position(|h| h.trim() == name)?;
                values.split(',').nth(i)?.trim().parse::<f64>().ok()
            };
            Some((col("nMsg.sec")?, col("fetch.nMsg.sec")?))
        });
        parsed.ok_or_else(|| tool_failed("ConsumerPerformance", status, &dir))
    }

    /// Our workers of `role`, `instances` in one process, until they have handled
    /// `records` (acked or received); the workload's directory.
    fn workers(
        &mut self,
        role: Role,
        instances: u32,
        records: u64,
        shutdown: &Shutdown,
    ) -> Result<PathBuf, HarnessError> {
        let name = match role {
            Role::Produce => format!("worker-producer-x{instances}"),
            _ => format!("worker-consumer-x{instances}"),
        };
        let dir = self.next_dir(&name)?;
        let host = match &self.cluster {
            Some(c) => c.worker_host(
                workload::worker_binary()?,
                workload::discovery_path(&dir),
                crate::scenario::Placement::RoundRobin,
            ),
            None => std::sync::Arc::new(crate::cluster::host::LocalWorkers {
                binary: workload::worker_binary()?,
            }),
        };
        let mut w = Workload::new(
            &self.run_id,
            &dir,
            &self.bootstrap,
            &self.bootstrap,
            &self.scenario,
            host,
        )?;
        w.start(role, instances, 1)?;
        // a generous bound: 1,000 records/s at the least
        let deadline = Instant::now() + Duration::from_secs(60 + records / 1000);
        loop {
            let s = w.status(role);
            let done = if role == Role::Produce {
                s.acked
            } else {
                s.received
            };
            if done >= records || Instant::now() > deadline || shutdown.requested() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let failed = w.stop(role, Duration::from_secs(60));
        if let Some(f) = failed.first() {
            return Err(HarnessError::Cluster(format!(
                "bench: {} ended badly ({}); see {}",
                f.worker,
                f.how,
                dir.join(&f.stderr).display()
            )));
        }
        if shutdown.requested() {
            return Err(HarnessError::Interrupted);
        }
        Ok(dir)
    }
}

impl Drop for Bench {
    /// Stops the cluster it started; on a cluster it was given, deletes its topic (the
    /// one thing it created there).
    fn drop(&mut self) {
        match &mut self.cluster {
            Some(c) => c.teardown(),
            None => {
                let deleted = crate::kafka::Admin::new(&self.bootstrap)
                    .and_then(|a| a.delete_topics(&[&self.topic]));
                if let Err(e) = deleted {
                    eprintln!(
                        "harness: bench: could not delete topic {} from {}: {e:#}",
                        self.topic, self.bootstrap
                    );
                }
            }
        }
    }
}

fn tool_failed(tool: &str, status: std::process::ExitStatus, out: &Path) -> HarnessError {
    HarnessError::Cluster(format!(
        "{tool} gave no figure ({status}); see what it wrote in {}",
        out.display()
    ))
}

/// The number just before `marker` in `line`.
fn number_before(line: &str, marker: &str) -> Option<f64> {
    let head = &line[..line.find(marker)?];
    head.rsplit([' ', ','])
        .find(|w| !w.is_empty())?
        .parse()
        .ok()
}

/// What one worker log says: records, their rate from the first send (or the worker's
/// start) to the last outcome, the rate from the first outcome, and the log's bytes per
/// record.
struct LogFigures {
    records: u64,
    per_s: f64,
    steady_per_s: f64,
    bytes_per_record: f64,
}

fn log_figures(dir: &Path, role: Role) -> Result<LogFigures, HarnessError> {
    let (mut records, mut bytes) = (0u64, 0u64);
    let (mut first_start, mut first_outcome, mut last) = (u64::MAX, u64::MAX, 0u64);
    for entry in std::fs::read_dir(dir.join("logs"))? {
        let path = entry?.path();
        bytes += std::fs::metadata(&path)?.len();
        let mut r = LogReader::open(&path)
            .map_err(|e| HarnessError::Cluster(format!("{}: {e}", path.display())))?;
        let start = r.header().start_us;
        while let Some(e) = r.next_event()? {
            let counted = match role {
                Role::Produce => e.kind == EventKind::Acked,
                _ => e.kind == EventKind::Received,
            };
            if !counted {
                continue;
            }
            records += 1;
            let began = if role == Role::Produce { e.ts_a } else { start };
            first_start = first_start.min(began);
            first_outcome = first_outcome.min(e.ts_b);
            last = last.max(e.ts_b);
        }
    }
    if records == 0 {
        return Err(HarnessError::Cluster(format!(
            "bench: the workers in {} handled no record",
            dir.display()
        )));
    }
    let per_s = |from: u64| records as f64 / ((last.saturating_sub(from)).max(1) as f64 / 1e6);
    Ok(LogFigures {
        records,
        per_s: per_s(first_start),
        steady_per_s: per_s(first_outcome),
        bytes_per_record: bytes as f64 / records as f64,
    })
}

/// The producer benchmark; prints as it goes and returns when every figure is in.
pub fn produce(settings: BenchSettings, shutdown: &Shutdown) -> Result<(), HarnessError> {
    // (dropping it tears it down, on every path)
    produce_on(&mut Bench::open(settings, shutdown)?, shutdown)
}

fn produce_on(b: &mut Bench, shutdown: &Shutdown) -> Result<(), HarnessError> {
    let s = b.settings.clone();
    let n = s.records;
    let k = s.instances.max(1);
    print_settings(b);
    let pp = b.producer_performance(1, n)?;
    show(
        &s,
        &Figure {
            what: "ProducerPerformance, 1 process".into(),
            records_per_s: pp,
            steady_per_s: None,
        },
    );
    let ours_dir = b.workers(Role::Produce, 1, n, shutdown)?;
    let ours = log_figures(&ours_dir, Role::Produce)?;
    show(
        &s,
        &Figure {
            what: "worker, 1 instance (logging every record)".into(),
            records_per_s: ours.per_s,
            steady_per_s: Some(ours.steady_per_s),
        },
    );
    let vp = b.verifiable_producer(n)?;
    show(
        &s,
        &Figure {
            what: "VerifiableProducer".into(),
            records_per_s: vp,
            steady_per_s: None,
        },
    );
    let ceiling = b.producer_performance(k, n.div_ceil(u64::from(k)))?;
    show(
        &s,
        &Figure {
            what: format!("broker ceiling: {k} ProducerPerformance at once"),
            records_per_s: ceiling,
            steady_per_s: None,
        },
    );
    let many_dir = b.workers(Role::Produce, k, n, shutdown)?;
    let many = log_figures(&many_dir, Role::Produce)?;
    show(
        &s,
        &Figure {
            what: format!("worker, {k} instances in 1 process"),
            records_per_s: many.per_s,
            steady_per_s: Some(many.steady_per_s),
        },
    );
    println!();
    ratio(
        "worker 1 instance / ProducerPerformance",
        ours.per_s / pp,
        1.0,
    );
    ratio(
        &format!("worker {k} instances / broker ceiling"),
        many.per_s / ceiling,
        0.9,
    );
    ratio(
        "worker 1 instance / VerifiableProducer",
        ours.per_s / vp,
        3.0,
    );
    println!(
        "producer log: {:.1} bytes per acked record ({} records, 1 instance)",
        ours.bytes_per_record, ours.records
    );
    Ok(())
}

/// The consumer benchmark: fills the topic with our producer, then reads it back.
pub fn consume(settings: BenchSettings, shutdown: &Shutdown) -> Result<(), HarnessError> {
    consume_on(&mut Bench::open(settings, shutdown)?, shutdown)
}

fn consume_on(b: &mut Bench, shutdown: &Shutdown) -> Result<(), HarnessError> {
    let s = b.settings.clone();
    let n = s.records;
    print_settings(b);
    let fill = b.workers(Role::Produce, s.instances.max(1), n, shutdown)?;
    let filled = log_figures(&fill, Role::Produce)?;
    println!(
        "  (topic filled with {} records by our producer)",
        filled.records
    );
    let (cp, cp_fetch) = b.consumer_performance(n)?;
    show(
        &s,
        &Figure {
            what: "ConsumerPerformance".into(),
            records_per_s: cp,
            steady_per_s: Some(cp_fetch),
        },
    );
    let ours_dir = b.workers(Role::Consume, 1, n, shutdown)?;
    let ours = log_figures(&ours_dir, Role::Consume)?;
    show(
        &s,
        &Figure {
            what: "worker, 1 consumer instance (logging every record)".into(),
            records_per_s: ours.per_s,
            steady_per_s: Some(ours.steady_per_s),
        },
    );
    println!();
    ratio(
        "worker consumer / ConsumerPerformance, group join included",
        ours.per_s / cp,
        1.0,
    );
    ratio("the same while fetching", ours.steady_per_s / cp_fetch, 1.0);
    println!(
        "consumer log: {:.1} bytes per received record; producer log: {:.1} per acked record",
        ours.bytes_per_record, filled.bytes_per_record
    );
    Ok(())
}

fn print_settings(b: &Bench) {
    let s = &b.settings;
    println!(
        "{} · topic {}: {} partitions, replication {} · {} B records, acks={}, idempotence={}, linger.ms={} · {} records per measurement",
        match &b.cluster {
            Some(_) => "1 broker + 1 ZooKeeper started here".to_string(),
            None => format!("cluster {}", b.bootstrap),
        },
        b.topic,
        s.partitions,
        s.replication,
        s.size,
        if s.acks_all { "all" } else { "1" },
        s.idempotence,
        s.linger_ms,
        s.records
    );
}

fn show(s: &BenchSettings, f: &Figure) {
    let mb = f.records_per_s * s.size as f64 / 1e6;
    let steady = f
        .steady_per_s
        .map(|r| format!("  ({:.0} k/s once started)", r / 1e3))
        .unwrap_or_default();
    println!(
        "  {:<52} {:>8.0} k records/s {:>7.1} MB/s{steady}",
        f.what,
        f.records_per_s / 1e3,
        mb
    );
}

fn ratio(what: &str, value: f64, goal: f64) {
    println!(
        "  {what:<60} {value:>5.2}×  goal ≥ {goal}× {}",
        if value >= goal { "met" } else { "NOT MET" }
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tools_figures_are_read() {
        let pp = "2000000 records sent, 146842.3 records/sec (35.85 MB/sec), 171.27 ms avg latency, 560.00 ms max latency, 150 ms 50th";
        assert_eq!(number_before(pp, " records/sec"), Some(146842.3));
        assert_eq!(number_before("nothing here", " records/sec"), None);
    }

    #[test]
    fn the_bench_scenario_is_valid() {
        let s = BenchSettings {
            bootstrap: None,
            records: 10,
            size: 256,
            partitions: 6,
            replication: 1,
            instances: 3,
            acks_all: true,
            idempotence: true,
            linger_ms: 5,
            out: PathBuf::from("x"),
        };
        let sc = Bench::scenario(&s, "t").unwrap();
        assert_eq!(sc.workload.producer.rate, None);
        assert_eq!(sc.workload.producers, 3);
    }
}
