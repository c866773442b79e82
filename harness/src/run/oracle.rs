//! Running the second oracle (`[check] oracle = "kafka-verifiable"`) beside the workers:
//! Kafka's `VerifiableProducer` and `VerifiableConsumer` (the kafka-tools jar of the
//! cluster's distribution, on this machine) on a topic of their own, then, after the
//! harness's final read, a `VerifiableConsumer` in a fresh group reading that topic to its
//! end. Their JSON lines go to `oracle/`; [`crate::check::oracle`] judges them.
//!
//! The topic copies the first workload topic's replica placement (partition by partition,
//! preferred leader first) and its configs, so a step aimed at `leader:T/P` or
//! `follower:T/P` hits the oracle's partition P as it hits the workload's: without that an
//! unclean election on the workload's partition would never touch the oracle, and the two
//! could not be compared.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::check::oracle::{self as judged, OracleRecord};
use crate::cluster::Cluster;
use crate::error::HarnessError;
use crate::scenario::Scenario;
use crate::shutdown::Shutdown;

/// The oracle's topic.
pub const ORACLE_TOPIC: &str = "kmh-oracle";
/// How long a tool has to exit after SIGTERM before it is killed.
const EXIT_GRACE: Duration = Duration::from_secs(30);
/// The consumer beside the workers has caught up when it has read every acked value, or
/// has read nothing new for this long.
const IDLE: Duration = Duration::from_secs(5);

/// A tool process of the oracle: stopped by [`Tool::stop`], killed when dropped without
/// (an interrupted run; `harness cleanup` finds one its crashed run left by `-Dkmh.run`).
struct Tool {
    /// What it is, for messages.
    what: &'static str,
    /// The process.
    child: Child,
}

impl Tool {
    /// SIGTERM, and up to [`EXIT_GRACE`] for the exit (its shutdown hook flushes and prints
    /// its last events); SIGKILL after that. What happened, when not a clean exit.
    fn stop(mut self) -> Option<String> {
        (!crate::shutdown::stop_child(&mut self.child, EXIT_GRACE)).then(|| {
            format!(
                "the {} did not exit within {EXIT_GRACE:?} of SIGTERM; killed (its last events may be missing)",
                self.what
            )
        })
    }
}

impl Drop for Tool {
    fn drop(&mut self) {
        crate::shutdown::stop_child(&mut self.child, Duration::ZERO);
    }
}

/// The oracle of one run, from its topic's creation to its final read.
pub(crate) struct OracleRun {
    /// The run directory.
    run_dir: PathBuf,
    /// The run id (the tools' group ids).
    run_id: String,
    /// Its producer, until the drain.
    producer: Option<Tool>,
    /// Its consumer beside the workers, until it has caught up.
    consumer: Option<Tool>,
    /// What `oracle/oracle.json` will say.
    record: OracleRecord,
}

impl OracleRun {
    /// Creates the oracle's topic and starts its producer and consumer.
    pub(crate) fn start(
        scenario: &Scenario,
        cluster: &mut Cluster,
        run_dir: &Path,
        run_id: &str,
        shutdown: &Shutdown,
    ) -> Result<OracleRun, HarnessError> {
        let dir = run_dir.join(judged::ORACLE_DIR);
        std::fs::create_dir_all(&dir)?;
        let w = &scenario.workload;
        let like = w.topics.first().ok_or_else(|| {
            HarnessError::Cluster(
                "the oracle copies the first workload topic: there is none".into(),
            )
        })?;
        // (a broker's metadata may lag the controller's for a moment after the topic's
        // creation: asked again until it lists every partition)
        let deadline = Instant::now() + Duration::from_secs(30);
        let placement = loop {
            let snap = cluster
                .admin()?
                .snapshot(Duration::from_secs(10))
                .map_err(|e| HarnessError::Cluster(format!("the oracle's topic: {e}")))?;
            let mut parts: Vec<_> = snap
                .partitions
                .iter()
                .filter(|p| p.topic == like.name)
                .collect();
            parts.sort_by_key(|p| p.partition);
            if parts.len() == like.partitions as usize {
                break parts.iter().map(|p| p.replicas.clone()).collect::<Vec<_>>();
            }
            if Instant::now() >= deadline {
                return Err(HarnessError::Cluster(format!(
                    "the oracle's topic: {} has {} partitions in the metadata after 30 s, {} in the scenario",
                    like.name,
                    parts.len(),
                    like.partitions
                )));
            }
            if shutdown.sleep(Duration::from_millis(200)) {
                return Err(HarnessError::Interrupted);
            }
        };
        let min_insync = like.min_insync.to_string();
        let mut config: Vec<(&str, &str)> = vec![("min.insync.replicas", &min_insync)];
        config.extend(like.config.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        {
            let admin = cluster.admin()?;
            admin
                .create_topic_assigned(ORACLE_TOPIC, &placement, &config)
                .map_err(|e| HarnessError::Cluster(format!("the oracle's topic: {e}")))?;
            let ids = cluster.running_broker_ids();
            cluster
                .admin()?
                .wait_healthy(&ids, &[ORACLE_TOPIC], Duration::from_secs(60), shutdown)
                .map_err(|e| HarnessError::Cluster(format!("the oracle's topic: {e}")))?;
        }

        let p = &w.producer;
        std::fs::write(
            dir.join("producer.properties"),
            format!(
                "enable.idempotence={}\nmax.in.flight.requests.per.connection={}\nretries={}\n\
                 linger.ms={}\ndelivery.timeout.ms={}\nrequest.timeout.ms={}\n",
                p.idempotence,
                p.max_in_flight,
                p.retries,
                p.linger_ms,
                p.delivery_timeout_ms,
                p.request_timeout_ms
            ),
        )?;
        let acks = match p.acks {
            workers::Acks::None => "0",
            workers::Acks::Leader => "1",
            workers::Acks::All => "-1",
        };
        // one producer at one worker instance's rate (an unlimited workload: 1,000/s, so
        // that the oracle stays a witness, not a second load)
        let rate = p.rate.map(|r| r.round().max(1.0) as u64).unwrap_or(1000);
        let bootstrap = cluster.bootstrap();
        let mut producer = cluster.kafka_tool("org.apache.kafka.tools.VerifiableProducer", &dir)?;
        producer
            .args(["--topic", ORACLE_TOPIC, "--bootstrap-server", &bootstrap])
            .args(["--throughput", &rate.to_string(), "--acks", acks])
            .arg("--producer.config")
            .arg(dir.join("producer.properties"));
        let producer = spawn(producer, run_dir, judged::PRODUCER_OUT, "oracle's producer")?;
        let consumer = spawn(
            consumer_command(cluster, &dir, &format!("kmh-oracle-{run_id}"))?,
            run_dir,
            judged::LIVE_OUT,
            "oracle's consumer",
        )?;
        Ok(OracleRun {
            run_dir: run_dir.to_path_buf(),
            run_id: run_id.to_string(),
            producer: Some(producer),
            consumer: Some(consumer),
            record: OracleRecord {
                kind: crate::scenario::Oracle::KafkaVerifiable.name().into(),
                topic: ORACLE_TOPIC.into(),
                mirrors: like.name.clone(),
                idempotence: p.idempotence,
                acks: p.acks.as_config().into(),
                end_offsets: BTreeMap::new(),
                notes: Vec::new(),
            },
        })
    }

    /// Stops the producer (with the workers' producers, at the drain).
    pub(crate) fn stop_producer(&mut self) {
        if let Some(why) = self.producer.take().and_then(Tool::stop) {
            self.record.notes.push(why);
        }
    }

    /// After the harness's final read: lets the consumer beside the workers catch up, stops
    /// it, reads the topic to its end in a fresh group, and writes `oracle/oracle.json`.
    pub(crate) fn finish(
        mut self,
        cluster: &mut Cluster,
        timeout: Duration,
        shutdown: &Shutdown,
    ) -> Result<(), HarnessError> {
        self.stop_producer();
        let deadline = Instant::now() + timeout;
        self.catch_up(deadline, shutdown);
        if let Some(why) = self.consumer.take().and_then(Tool::stop) {
            self.record.notes.push(why);
        }
        match end_offsets(&cluster.bootstrap(), &self.record.topic) {
            Ok(e) => self.record.end_offsets = e,
            Err(e) => {
                // judged as a final read that did not finish: no end to compare with
                self.record.notes.push(format!("no final read: {e}"));
                return self.write_record();
            }
        }
        let dir = self.run_dir.join(judged::ORACLE_DIR);
        let reader = spawn(
            consumer_command(cluster, &dir, &format!("kmh-oracle-final-{}", self.run_id))?,
            &self.run_dir,
            judged::FINAL_OUT,
            "oracle's final read",
        )?;
        let mut read = judged::ConsumerProgress::new(&self.run_dir.join(judged::FINAL_OUT));
        let deadline = Instant::now() + timeout;
        loop {
            read.update();
            let short = judged::short_partitions(&self.record.end_offsets, &read.reached);
            if short.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                self.record.notes.push(format!(
                    "the final read did not reach the end within {timeout:?}: {}",
                    short.join(", ")
                ));
                break;
            }
            if shutdown.sleep(Duration::from_millis(250)) {
                return Err(HarnessError::Interrupted);
            }
        }
        if let Some(why) = reader.stop() {
            self.record.notes.push(why);
        }
        self.write_record()
    }

    /// Writes `oracle/oracle.json`: the oracle's outputs are complete.
    fn write_record(&self) -> Result<(), HarnessError> {
        let json = serde_json::to_vec_pretty(&self.record).map_err(anyhow::Error::from)?;
        std::fs::write(self.run_dir.join(judged::ORACLE_RECORD), json)?;
        Ok(())
    }

    /// Waits until the consumer beside the workers holds every acked value, or reads nothing
    /// new for [`IDLE`] (after an unclean election some acked values are gone for good), or
    /// the deadline.
    fn catch_up(&mut self, deadline: Instant, shutdown: &Shutdown) {
        let acked = judged::acked_values(&self.run_dir.join(judged::PRODUCER_OUT));
        let mut read = judged::ConsumerProgress::new(&self.run_dir.join(judged::LIVE_OUT));
        let (mut seen, mut since) = (0, Instant::now());
        while Instant::now() < deadline {
            read.update();
            if acked.iter().all(|v| read.values.contains(v)) {
                return;
            }
            if read.values.len() != seen {
                (seen, since) = (read.values.len(), Instant::now());
            } else if since.elapsed() >= IDLE {
                return;
            }
            if shutdown.sleep(Duration::from_millis(250)) {
                return;
            }
        }
    }
}

/// A `VerifiableConsumer` of the oracle's topic in `group`, from the earliest offset, every
/// record printed.
fn consumer_command(
    cluster: &Cluster,
    dir: &Path,
    group: &str,
) -> Result<std::process::Command, HarnessError> {
    let mut c = cluster.kafka_tool("org.apache.kafka.tools.VerifiableConsumer", dir)?;
    c.args(["--topic", ORACLE_TOPIC, "--group-id", group])
        .args(["--bootstrap-server", &cluster.bootstrap()])
        .args(["--verbose", "--reset-policy", "earliest"]);
    Ok(c)
}

/// Starts a tool with its stdout into `out` (in the run directory) and its stderr beside.
fn spawn(
    mut c: std::process::Command,
    run_dir: &Path,
    out: &str,
    what: &'static str,
) -> Result<Tool, HarnessError> {
    let out = run_dir.join(out);
    let err = out.with_extension("err");
    let child = c
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out)?)
        .stderr(std::fs::File::create(&err)?)
        .spawn()
        .map_err(|e| HarnessError::Cluster(format!("starting the {what} (java): {e}")))?;
    Ok(Tool { what, child })
}

/// The topic's end offsets (high watermarks), by partition.
fn end_offsets(bootstrap: &str, topic: &str) -> Result<BTreeMap<i32, i64>, HarnessError> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "kmh-oracle-offsets")
        .create()
        .map_err(|e| HarnessError::Cluster(format!("the oracle's end offsets: {e}")))?;
    let timeout = Duration::from_secs(10);
    let md = consumer
        .fetch_metadata(Some(topic), timeout)
        .map_err(|e| HarnessError::Cluster(format!("the oracle's end offsets: {e}")))?;
    let mut out = BTreeMap::new();
    for t in md.topics() {
        for p in t.partitions() {
            let (_, high) = consumer
                .fetch_watermarks(topic, p.id(), timeout)
                .map_err(|e| {
                    HarnessError::Cluster(format!(
                        "the oracle's end offset of {topic}/{}: {e}",
                        p.id()
                    ))
                })?;
            out.insert(p.id(), high);
        }
    }
    Ok(out)
}
