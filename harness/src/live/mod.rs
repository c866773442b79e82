//! Live mode: verify what happens to clients on a cluster the harness did not start.
//!
//! `harness watch` runs the workload against a given cluster — on topics it creates for the
//! run ([`topics`]) and one consumer group of its own, nothing else — until Ctrl-C (or
//! SIGTERM, or `--duration`); then it drains, reads its topics back and writes the same run
//! directory as `harness run`, so the same check, verdict, `report.json` and `junit.xml`
//! follow. Meanwhile the operator runs the runbook by hand and says what they are doing
//! with `harness mark` ([`marks`]); the checker blames windows and losses on the mark in
//! force, as it blames steps. Secured clusters: [`client_config`].
//!
//! What a watch leaves on the cluster when it is killed (its topics, its group, the smoke
//! test's znodes) is named in its run directory; [`cleanup`] removes exactly that.

pub mod client_config;
pub mod marks;
pub mod status;
pub mod topics;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use workers::clock::now_ms;
use workers::Role;

use crate::cluster::host::LocalWorkers;
use crate::cluster::HostInfo;
use crate::error::HarnessError;
use crate::kafka::{Admin, ClientProperties};
use crate::run::workload::{self, Workload};
use crate::run::{self as runner, KillOnDrop, Progress};
use crate::rundir::coordinator::Coordinator;
use crate::rundir::timeline::{Timeline, TimelineEvent};
use crate::rundir::{self, RunRecord};
use crate::scenario::{Scenario, Topic};
use crate::shutdown::Shutdown;

/// How to watch.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// `bootstrap.servers` of the watched cluster.
    pub bootstrap: String,
    /// Its ZooKeeper connect string (`host:port,…[/chroot]`), when it has one: the smoke
    /// test probes every server, and at the end Kafka's znodes are compared with what the
    /// brokers report.
    pub zookeeper: Option<String>,
    /// Extra librdkafka properties (security) for every client.
    pub client_properties: ClientProperties,
    /// How long to watch; `None`: until Ctrl-C or SIGTERM.
    pub duration: Option<Duration>,
    /// Leave the run's topics on the cluster at the end (they are deleted by default).
    pub keep_topics: bool,
    /// The start of the run's topic names.
    pub topic_prefix: String,
}

/// The workload a watch runs without a scenario file.
#[derive(Debug, Clone)]
pub struct DefaultWorkload {
    /// Partitions of the one topic (default: two per broker, so every broker leads two).
    pub partitions: Option<u32>,
    /// Its replication (default: 3, or the broker count when fewer).
    pub replication: Option<u32>,
    /// Producer instances.
    pub producers: u32,
    /// Consumer instances.
    pub consumers: u32,
    /// Records per second per producer.
    pub rate: f64,
}

/// The scenario text of a watch without a scenario file, for a cluster of `brokers`
/// brokers: one topic, acks=all with idempotence, `min.insync.replicas` one less than the
/// replication — the settings a migration must not lose a record under.
pub fn default_scenario(brokers: usize, d: &DefaultWorkload) -> String {
    let brokers = brokers.max(1) as u32;
    let replication = d.replication.unwrap_or(brokers.min(3));
    let partitions = d.partitions.unwrap_or(2 * brokers);
    let min_insync = replication.saturating_sub(1).max(1);
    format!(
        r#"name = "watch"
description = "harness watch's default workload (no scenario file given)"

[workload]
topics = [{{ name = "watch", partitions = {partitions}, replication = {replication}, min_insync = {min_insync} }}]
producers = {producers}
consumers = {consumers}
rate = {rate}
size = 256
acks = "all"
idempotence = true
warmup = "0s"
settle = "0s"

[expect]
lost = 0
duplicates = 0
reordered = 0
"#,
        producers = d.producers,
        consumers = d.consumers,
        rate = d.rate,
    )
}

/// The watched cluster's brokers, `(id, host, port)`.
pub fn brokers_of(
    bootstrap: &str,
    properties: &ClientProperties,
) -> Result<Vec<(i32, String, i32)>, HarnessError> {
    let admin = Admin::with_properties(bootstrap, properties)
        .map_err(|e| HarnessError::Cluster(format!("{bootstrap}: {e}")))?;
    let brokers = admin.brokers(Duration::from_secs(15)).map_err(|e| {
        HarnessError::Cluster(format!(
            "no answer from {bootstrap} within 15 s: {e} (check --bootstrap and, for a secured cluster, --client-config)"
        ))
    })?;
    if brokers.is_empty() {
        return Err(HarnessError::Cluster(format!(
            "{bootstrap} answered with no brokers"
        )));
    }
    Ok(brokers)
}

/// Watches: runs `scenario`'s workload on the cluster of `opts` into `run_dir`; returns the
/// run id. The check is separate, as for `harness run`.
pub fn watch(
    scenario: &Scenario,
    scenario_text: &str,
    run_dir: &Path,
    opts: &WatchOptions,
    shutdown: &Shutdown,
) -> Result<String, HarnessError> {
    if run_dir.join(rundir::RUN_JSON).exists() {
        return Err(HarnessError::BadInput(format!(
            "{} already holds a run; choose another --out",
            run_dir.display()
        )));
    }
    if scenario.check.kafka_metadata && opts.zookeeper.is_none() {
        return Err(HarnessError::BadInput(format!(
            "{}: [check] kafka_metadata = true compares Kafka's znodes with the brokers, and this watch has no ZooKeeper\n  hint: give --zookeeper HOST:PORT,…/CHROOT, or remove kafka_metadata",
            scenario.file.display()
        )));
    }
    if scenario.workload.copy.is_some() {
        // the pipeline's output topic and group would be made on a cluster the harness
        // does not own, and its catch-up and output read are run-only so far
        return Err(HarnessError::BadInput(format!(
            "{}: [workload] copy (the exactly-once pipeline) runs only under `harness run`\n  hint: remove `copy` for a watch",
            scenario.file.display()
        )));
    }
    std::fs::create_dir_all(run_dir)?;
    let run_dir = &std::path::absolute(run_dir)?;
    std::fs::write(run_dir.join(rundir::SCENARIO), scenario_text)?;
    let run_id = runner::new_run_id(&scenario.name);
    // before anything is created: `harness cleanup` must know this run is alive
    let _registered = Coordinator::this(&run_id, run_dir).register()?;
    if !opts.client_properties.is_empty() {
        client_config::store(
            &run_dir.join(rundir::CLIENT_CONFIG),
            &opts.client_properties,
        )?;
    }
    let mut tl = Timeline::open(run_dir)?;
    let started_ms = now_ms();
    tl.record(&TimelineEvent::RunStart {
        t_ms: started_ms,
        run_id: run_id.clone(),
        scenario: scenario.name.clone(),
    });
    let result = watch_cluster(
        scenario, run_dir, &run_id, started_ms, opts, &mut tl, shutdown,
    );
    tl.record(&TimelineEvent::RunEnd {
        t_ms: now_ms(),
        outcome: match &result {
            Ok(()) => "completed".to_string(),
            Err(HarnessError::Interrupted) => "interrupted".to_string(),
            Err(e) => format!("error: {e}"),
        },
    });
    result.map(|()| run_id)
}

fn watch_cluster(
    scenario: &Scenario,
    run_dir: &Path,
    run_id: &str,
    started_ms: u64,
    opts: &WatchOptions,
    tl: &mut Timeline,
    shutdown: &Shutdown,
) -> Result<(), HarnessError> {
    let cluster_err = |what: &str, e: anyhow::Error| {
        HarnessError::Cluster(format!("{what} on {}: {e}", opts.bootstrap))
    };
    let brokers = brokers_of(&opts.bootstrap, &opts.client_properties)?;
    let ids: Vec<i32> = brokers.iter().map(|b| b.0).collect();
    let admin = Admin::with_properties(&opts.bootstrap, &opts.client_properties)
        .map_err(|e| cluster_err("connecting", e))?;
    let mut scenario = scenario.clone();
    topics::own(&mut scenario, run_id, &opts.topic_prefix, &ids)?;
    let (zk_servers, zk_chroot) = opts
        .zookeeper
        .as_deref()
        .map(crate::zk::split_connect)
        .unwrap_or_default();

    // run.json before anything is created: a crash from here on leaves what cleanup needs
    let mut hosts: Vec<HostInfo> = brokers
        .iter()
        .map(|(id, host, port)| HostInfo {
            name: format!("broker{id} ({host}:{port})"),
            kind: "broker".into(),
            address: host.clone(),
            id: *id,
            namespace: None,
            container: None,
        })
        .collect();
    hosts.extend(zk_servers.iter().enumerate().map(|(i, s)| {
        HostInfo {
            name: s.clone(),
            kind: "zookeeper".into(),
            address: s
                .rsplit_once(':')
                .map_or(s.as_str(), |(h, _)| h)
                .to_string(),
            id: i as i32 + 1,
            namespace: None,
            container: None,
        }
    }));
    let record = RunRecord {
        ec2: None,
        run_id: run_id.to_string(),
        scenario: scenario.name.clone(),
        started_ms,
        kafka_version: "live".into(),
        backend: "live".into(),
        bootstrap: opts.bootstrap.clone(),
        zookeeper: opts.zookeeper.clone(),
        keep_topics: opts.keep_topics,
        ssh: None,
        hosts,
        topics: Workload::topic_specs(&scenario),
    };
    std::fs::write(
        run_dir.join(rundir::RUN_JSON),
        serde_json::to_vec_pretty(&record).map_err(anyhow::Error::from)?,
    )?;
    // the cluster as the watch found it
    if let Ok(snapshot) = admin.snapshot(Duration::from_secs(5)) {
        tl.record(&TimelineEvent::Snapshot {
            t_ms: now_ms(),
            snapshot,
        });
    }
    let ready = |tl: &mut Timeline, what: &str| {
        tl.record(&TimelineEvent::Ready {
            t_ms: now_ms(),
            what: what.into(),
        })
    };
    ready(tl, "cluster");

    let names: Vec<&str> = scenario
        .workload
        .topics
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    let owned = OwnedTopics::create(
        &admin,
        &scenario.workload.topics,
        &ids,
        run_id,
        opts.keep_topics,
    )?;
    admin
        .wait_healthy(&ids, &names, Duration::from_secs(60), shutdown)
        .map_err(|e| cluster_err("the run's topics are not led and in sync", e))?;
    ready(tl, "topics");
    eprintln!(
        "harness: watching {} broker(s) at {} on topic(s) {}",
        ids.len(),
        opts.bootstrap,
        names.join(", ")
    );

    let host = Arc::new(LocalWorkers {
        binary: workload::worker_binary()?,
    });
    let mut workers = Workers(
        Workload::new(
            run_id,
            run_dir,
            &opts.bootstrap,
            &opts.bootstrap,
            &scenario,
            host,
        )?
        .with_client_properties(opts.client_properties.clone()),
    );
    let w = &scenario.workload;
    if w.consumers > 0 {
        workers
            .0
            .start(Role::Consume, w.consumers, w.consumer_processes)?;
        if !workers
            .0
            .wait_consumers_assigned(Duration::from_secs(45), shutdown)
        {
            tracing::warn!(
                "consumers were not all assigned partitions within 45s; starting producers anyway"
            );
        }
    }
    workers
        .0
        .start(Role::Produce, w.producers, w.producer_processes)?;
    let smoke = if zk_servers.is_empty() {
        None
    } else {
        Some(KillOnDrop(runner::start_smoke(
            run_dir,
            run_id,
            &zk_servers.join(","),
        )?))
    };
    let current = Arc::new(Mutex::new(String::from("watch")));
    ready(tl, "workers");
    let watching_from = now_ms();
    tl.record(&TimelineEvent::Phase {
        t_ms: watching_from,
        name: "watch".into(),
    });
    let mut view = status::StatusView::new(run_dir, &scenario, started_ms, watching_from);
    // on a terminal the view's block has the totals; elsewhere, the run's progress lines
    let progress =
        (!view.is_tty()).then(|| Progress::spawn(run_dir.to_path_buf(), current.clone()));
    eprintln!(
        "harness: run {run_id} is watching {}; mark each runbook step from another terminal with `harness mark \"…\"`; Ctrl-C ends the watch and checks",
        match opts.duration {
            Some(d) => format!("for {d:?}"),
            None => "until Ctrl-C".into(),
        }
    );

    // watching: until the duration or a signal; marks are shown as they land
    let until = opts.duration.map(|d| Instant::now() + d);
    let mut follower = marks::MarkFollower::new(run_dir);
    let mut signalled = false;
    loop {
        if shutdown.sleep(Duration::from_millis(250)) {
            signalled = true;
            break;
        }
        for (t, name) in follower.poll() {
            eprintln!(
                "harness: t+{:.1}s mark `{name}`",
                t.saturating_sub(started_ms) as f64 / 1000.0
            );
            view.finish();
            *current.lock().unwrap() = name;
        }
        let mark = current.lock().unwrap().clone();
        view.tick(now_ms(), &mark);
        if until.is_some_and(|u| Instant::now() >= u) {
            break;
        }
    }
    // the first signal ends the watching; the drain and read-back still run, and a second
    // signal abandons them
    let finishing = if signalled {
        eprintln!("harness: stopping the watch: draining, reading back, checking (Ctrl-C again abandons that)");
        Shutdown::next_signal()
    } else {
        shutdown.clone()
    };
    *current.lock().unwrap() = "drain".into();
    view.finish();
    let interrupted = runner::drain(&mut workers.0, tl, w, &finishing, false, &opts.bootstrap);
    if let Some(p) = progress {
        p.stop();
    }
    drop(smoke);
    if interrupted || finishing.requested() {
        return Err(HarnessError::Interrupted);
    }
    runner::final_read(
        &mut workers.0,
        tl,
        &admin,
        &ids,
        &names,
        w.final_read_timeout,
        &finishing,
    )?;
    if opts.zookeeper.is_some() {
        runner::record_metadata_check(
            run_dir,
            runner::kafka_metadata_check(&zk_servers.join(","), &zk_chroot, &admin),
        );
    }
    // what the run made goes (its topics unless kept; its group; the probes' znodes)
    if let Err(e) = admin.delete_group(&topics::owned_group(run_id), Duration::from_secs(30)) {
        tracing::warn!("the run's consumer group was not deleted: {e}");
    }
    if !zk_servers.is_empty() {
        remove_smoke_nodes(&zk_servers.join(","), run_id);
    }
    owned.finish()
}

/// The run's workers, killed when dropped on an error path (a clean stop has ended them
/// already).
struct Workers(Workload);

impl Drop for Workers {
    fn drop(&mut self) {
        self.0.kill_all();
    }
}

/// The topics a watch created: deleted at the end, also on an error path, unless kept.
struct OwnedTopics<'a> {
    /// Where they are.
    admin: &'a Admin,
    /// Their names (each carries the run id).
    names: Vec<String>,
    /// Whether to leave them.
    keep: bool,
    /// Set once [`OwnedTopics::finish`] ran.
    finished: bool,
}

impl<'a> OwnedTopics<'a> {
    /// Creates every topic (none of them may exist), each placed with [`topics::spread`].
    fn create(
        admin: &'a Admin,
        list: &[Topic],
        brokers: &[i32],
        run_id: &str,
        keep: bool,
    ) -> Result<OwnedTopics<'a>, HarnessError> {
        let mut owned = OwnedTopics {
            admin,
            names: Vec::new(),
            keep,
            finished: false,
        };
        for t in list {
            if !topics::is_owned(&t.name, run_id) {
                return Err(HarnessError::Other(anyhow::anyhow!(
                    "refusing to create `{}`: not a name of run {run_id}",
                    t.name
                )));
            }
            let assignment = topics::spread(t.partitions, t.replication, brokers);
            let min_insync = t.min_insync.to_string();
            let mut config: Vec<(&str, &str)> = vec![("min.insync.replicas", &min_insync)];
            config.extend(t.config.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            admin
                .create_topic_assigned(&t.name, &assignment, &config)
                .map_err(|e| HarnessError::Cluster(format!("creating the run's topic: {e}")))?;
            owned.names.push(t.name.clone());
        }
        Ok(owned)
    }

    /// Deletes them (unless kept), saying so.
    fn finish(mut self) -> Result<(), HarnessError> {
        self.finished = true;
        if self.keep {
            eprintln!("harness: kept the run's topics: {}", self.names.join(", "));
            return Ok(());
        }
        let names: Vec<&str> = self.names.iter().map(String::as_str).collect();
        self.admin.delete_topics(&names).map_err(|e| {
            HarnessError::Cluster(format!(
                "deleting the run's topics: {e} (`harness cleanup --run` tries again)"
            ))
        })?;
        eprintln!("harness: deleted the run's topics: {}", names.join(", "));
        Ok(())
    }
}

impl Drop for OwnedTopics<'_> {
    fn drop(&mut self) {
        if !self.finished && !self.keep && !self.names.is_empty() {
            let names: Vec<&str> = self.names.iter().map(String::as_str).collect();
            if let Err(e) = self.admin.delete_topics(&names) {
                tracing::warn!("the run's topics {names:?} were not deleted: {e}; `harness cleanup --run` tries again");
            }
        }
    }
}

/// Removes the smoke test's znodes of run `run_id` (they are its own, at the root of the
/// ensemble); best effort, a cleanup repeats it.
fn remove_smoke_nodes(servers: &str, run_id: &str) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return tracing::warn!("removing the smoke test's znodes: {e}"),
    };
    if let Err(e) = rt.block_on(crate::zk::smoke::remove_nodes(servers, run_id)) {
        tracing::warn!("removing the smoke test's znodes: {e}");
    }
}

/// What [`cleanup`] removed from a watched cluster.
#[derive(Debug, Default)]
pub struct LiveCleanup {
    /// The cluster.
    pub bootstrap: String,
    /// Topics deleted.
    pub topics: Vec<String>,
    /// The consumer group, when it was there and is gone.
    pub group: Option<String>,
}

/// Removes from the watched cluster what the watch in `run_dir` made and left there: its
/// topics (unless it was asked to keep them), its consumer group, the smoke test's znodes.
/// Only names carrying the run id are touched. `Ok(None)` when the run is not a watch.
pub fn cleanup(run_dir: &Path) -> Result<Option<LiveCleanup>, HarnessError> {
    let Ok(record) = RunRecord::load(run_dir) else {
        return Ok(None);
    };
    if record.backend != "live" {
        return Ok(None);
    }
    let props_path = run_dir.join(rundir::CLIENT_CONFIG);
    let props = if props_path.exists() {
        client_config::load(&props_path)?
    } else {
        ClientProperties::new()
    };
    let fail = |e: anyhow::Error| {
        HarnessError::Cluster(format!(
            "run {}: cleaning up on {}: {e}",
            record.run_id, record.bootstrap
        ))
    };
    let admin = Admin::with_properties(&record.bootstrap, &props).map_err(fail)?;
    let present = admin.snapshot(Duration::from_secs(15)).map_err(fail)?;
    let mut names: Vec<&str> = record
        .topics
        .iter()
        .map(|t| t.name.as_str())
        .filter(|n| topics::is_owned(n, &record.run_id) && !record.keep_topics)
        .filter(|n| present.partitions.iter().any(|p| p.topic == *n))
        .collect();
    names.dedup();
    if !names.is_empty() {
        admin.delete_topics(&names).map_err(fail)?;
    }
    // a killed consumer holds the group until its session times out
    let group = topics::owned_group(&record.run_id);
    admin
        .delete_group(&group, Duration::from_secs(60))
        .map_err(fail)?;
    if let Some(connect) = &record.zookeeper {
        remove_smoke_nodes(
            &crate::zk::split_connect(connect).0.join(","),
            &record.run_id,
        );
    }
    Ok(Some(LiveCleanup {
        bootstrap: record.bootstrap.clone(),
        topics: names.iter().map(|n| n.to_string()).collect(),
        group: Some(group),
    }))
}
