//! One run, start to finish: scenario → cluster → workers → steps → final read → check →
//! report. [`run_scenario`] is what `harness run` calls.
//!
//! The run directory it fills:
//! ```text
//! scenario.toml   the scenario as run          run.json      run id, hosts, topics
//! timeline.jsonl  steps, phases, snapshots      logs/*.log    binary worker logs
//! nodes/NAME/     node config, data, logs       workers/      worker configs, status, stderr
//! report.json     the checker's findings        junit.xml     one test case per expectation
//! ```

mod oracle;
pub mod steps;
pub mod workload;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use workers::clock::now_ms;
use workers::Role;

use crate::cluster::{self, Cluster};
use crate::error::{HarnessError, WorkersError};
use crate::rundir::timeline::{Timeline, TimelineEvent};
use crate::rundir::{self, RunRecord};
use crate::scenario::{Backend, Scenario};
use crate::shutdown::Shutdown;
use steps::Executor;
use workload::Workload;

/// A new run id: the scenario name, the time and a few random bits.
pub fn new_run_id(scenario: &str) -> String {
    let ms = now_ms();
    let salt = (std::process::id() as u64).wrapping_mul(2654435761) ^ (ms.rotate_left(17));
    format!("{}-{}-{:04x}", scenario, ms / 1000, salt & 0xffff)
}

/// Refuses, before anything starts, a scenario this machine cannot run as written: network
/// faults without namespace hosts, `delay` of a ZooKeeper node without the netem qdisc.
pub fn preflight(scenario: &Scenario) -> Result<(), HarnessError> {
    use crate::cluster::netns;
    use crate::scenario::{Action, HostMode, NetworkAction, Target};
    let network = scenario.network_steps();
    if scenario.cluster.backend == Backend::Docker {
        docker_worker_room(scenario)?;
        return preflight_docker(&network);
    }
    if let Some(step) = network.first() {
        let why = match scenario.cluster.hosts {
            HostMode::Loopback => Some("the scenario asks for hosts = \"loopback\"".to_string()),
            _ => netns::unavailable_reason(),
        };
        if let Some(why) = why {
            return Err(HarnessError::Missing {
                what: format!("step `{}` (line {}) is a network fault, which needs namespace hosts: {why}", step.name, step.line),
                hint: "run as root with iproute2 and iptables installed (hosts = \"auto\" or \"namespaces\")".into(),
            });
        }
    }
    // without netem, delay goes through a proxy in front of a broker's listener; ZooKeeper's
    // quorum ports cannot be proxied that way
    let zk_delay = network.iter().find(|s| matches!(&s.action, Action::Network(NetworkAction::Delay { node: Target::Node(n), .. }) if scenario.cluster.is_zookeeper(n)));
    if let Some(step) = zk_delay {
        if !netns::netem_available() {
            return Err(HarnessError::Missing {
                what: format!(
                    "step `{}` (line {}) delays a ZooKeeper node; this kernel has no netem qdisc (\"Specified qdisc kind is unknown\"), and the proxy that delays brokers cannot carry ZooKeeper's quorum traffic",
                    step.name, step.line
                ),
                hint: "run on a kernel with sch_netem, or delay a broker".into(),
            });
        }
    }
    Ok(())
}

/// The Docker backend gives every worker process a container with its own address on the
/// run's network, which has room for a fixed number; the instances in them are not limited.
fn docker_worker_room(scenario: &Scenario) -> Result<(), HarnessError> {
    let w = &scenario.workload;
    let room = crate::cluster::netns::MAX_WORKER_CONTAINERS;
    // the final read is one more container at the end
    let wanted = w.producer_processes + w.consumer_processes + 1;
    if wanted <= room {
        return Ok(());
    }
    Err(HarnessError::BadInput(format!(
        "{}: workload.producer_processes ({}) + workload.consumer_processes ({}) + the final read make {wanted} worker containers; a docker run's network has addresses for {room}\n  hint: every worker process runs many instances: spread `producers` and `consumers` over fewer processes",
        scenario.file.display(),
        w.producer_processes,
        w.consumer_processes,
    )))
}

/// The Docker backend: an engine must answer; network faults are set inside the node
/// containers, and `delay` needs the engine's kernel to have netem (the delaying proxy of
/// namespace hosts is not carried into containers).
fn preflight_docker(network: &[&crate::scenario::Step]) -> Result<(), HarnessError> {
    use crate::scenario::{Action, NetworkAction};
    let engine = crate::cluster::docker::Engine::connect()?;
    let delay = network
        .iter()
        .find(|s| matches!(&s.action, Action::Network(NetworkAction::Delay { .. })));
    if let Some(step) = delay {
        // the engine's kernel is this one when it is local (and root can probe it); else
        // the step itself says so if netem is missing
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        if engine.is_local() && root && !crate::cluster::netns::netem_available() {
            return Err(HarnessError::Missing {
                what: format!(
                    "step `{}` (line {}) is a delay; on the docker backend delay is a netem qdisc inside the node's container, and this kernel has no netem",
                    step.name, step.line
                ),
                hint: "run it on the local backend (which delays brokers through a proxy without netem), or on an engine whose kernel has sch_netem".into(),
            });
        }
    }
    Ok(())
}

/// Brokers to put behind the delaying proxy: those a `delay` step may target, when the
/// kernel has no netem (a `leader:`/`follower:`/`@` target may be any broker).
pub fn proxied_brokers(scenario: &Scenario) -> Vec<String> {
    use crate::scenario::{Action, NetworkAction, Target};
    if scenario.cluster.backend == Backend::Docker {
        // containers are delayed with netem (preflight)
        return Vec::new();
    }
    let targets: Vec<&Target> = scenario
        .steps
        .iter()
        .filter_map(|s| {
            if let Action::Network(NetworkAction::Delay { node, .. }) = &s.action {
                Some(node)
            } else {
                None
            }
        })
        .collect();
    if targets.is_empty() || crate::cluster::netns::netem_available() {
        return Vec::new();
    }
    let mut out: Vec<String> = Vec::new();
    for t in targets {
        match t {
            Target::Node(n) if scenario.cluster.broker_id(n).is_some() => out.push(n.clone()),
            Target::Node(_) | Target::Clients => {}
            _ => out.extend(scenario.cluster.brokers.iter().cloned()),
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Runs a scenario into `run_dir`; returns the run id. The check is separate
/// ([`crate::check::check_run`]) so that it can be re-run on any run directory.
pub fn run_scenario(
    scenario: &Scenario,
    scenario_text: &str,
    run_dir: &Path,
    shutdown: &Shutdown,
) -> Result<String, HarnessError> {
    run_scenario_holding(scenario, scenario_text, run_dir, shutdown, false)
}

/// [`run_scenario`]; with `hold`, a run that completed keeps its cluster up after the final
/// read, its connect strings printed, until the next Ctrl-C or SIGTERM.
pub fn run_scenario_holding(
    scenario: &Scenario,
    scenario_text: &str,
    run_dir: &Path,
    shutdown: &Shutdown,
    hold: bool,
) -> Result<String, HarnessError> {
    preflight(scenario)?;
    for w in crate::scenario::warnings(scenario) {
        eprintln!("harness: warning: {w}");
    }
    if run_dir.join("run.json").exists() {
        return Err(HarnessError::BadInput(format!(
            "{} already holds a run; choose another --out",
            run_dir.display()
        )));
    }
    std::fs::create_dir_all(run_dir)?;
    // the nodes and workers started here inherit it (a broker holds a file per segment)
    let open_files = crate::cluster::raise_open_files(crate::cluster::KAFKA_OPEN_FILES);
    tracing::debug!("open files limit for the nodes and workers: {open_files}");
    // every node runs in its own directory: paths handed to them must not be relative
    let run_dir = &std::path::absolute(run_dir)?;
    std::fs::write(run_dir.join("scenario.toml"), scenario_text)?;
    let run_id = new_run_id(&scenario.name);
    // before anything is started: `harness cleanup` must know this run is alive
    let _registered = rundir::coordinator::Coordinator::this(&run_id, run_dir).register()?;
    let mut tl = Timeline::open(run_dir)?;
    let started_ms = now_ms();
    tl.record(&TimelineEvent::RunStart {
        t_ms: started_ms,
        run_id: run_id.clone(),
        scenario: scenario.name.clone(),
    });

    cluster::dist::require_java()?;
    let dist = cluster::dist::locate(&scenario.cluster.kafka_version)?;
    for release in scenario.upgrade_releases() {
        cluster::dist::locate(release)?;
    }
    if scenario.cluster.backend == Backend::Docker {
        let engine = crate::cluster::docker::Engine::connect()?;
        let images = crate::cluster::docker::images::ensure_for_run(
            &engine,
            &dist,
            &workload::worker_binary()?,
        )?;
        for i in images
            .iter()
            .filter(|i| i.action != crate::cluster::docker::images::ImageAction::Reused)
        {
            eprintln!("harness: image {}: {}", i.image, i.detail);
        }
    }
    let needs_network = !scenario.network_steps().is_empty();
    let proxied = proxied_brokers(scenario);
    // on ec2 the worker hosts are known before anything is launched: refuse a placement
    // they cannot give now, not after the instances run
    if let Some(why) = scenario.cluster.ec2.as_ref().and_then(|e| {
        (scenario.cluster.backend == Backend::Ec2)
            .then(|| scenario.workload.placement.unfit(e.workers))
            .flatten()
    }) {
        return Err(HarnessError::BadInput(why));
    }
    let mut cluster = Cluster::prepare(
        &run_id,
        &scenario.cluster,
        &dist,
        run_dir,
        needs_network,
        &proxied,
    )?;
    let record = RunRecord {
        run_id: run_id.clone(),
        scenario: scenario.name.clone(),
        started_ms,
        kafka_version: dist.version.clone(),
        backend: scenario.cluster.backend.name().into(),
        bootstrap: cluster.bootstrap(),
        zookeeper: None,
        keep_topics: false,
        ssh: cluster.ssh_inventory().cloned(),
        ec2: cluster.ec2_record(),
        hosts: cluster.hosts(),
        topics: Workload::topic_specs(scenario),
    };
    std::fs::write(
        run_dir.join("run.json"),
        serde_json::to_vec_pretty(&record).map_err(anyhow::Error::from)?,
    )?;
    // a placement the run's worker hosts cannot give is refused before any node starts
    // (the worker hosts are known only now: an inventory given with --hosts, instances)
    if let Some(why) = scenario
        .workload
        .placement
        .unfit(cluster.worker_host_count())
    {
        return Err(HarnessError::BadInput(why));
    }

    let result = drive(scenario, run_dir, &run_id, &mut cluster, &mut tl, shutdown);
    if hold && result.is_ok() {
        let until = Shutdown::next_signal();
        let metadata = if cluster.cluster_id().is_some() {
            format!("controllers  {}", cluster.controller_addresses().join(","))
        } else {
            format!(
                "zookeeper  {}{}",
                cluster.zookeeper_connect(),
                cluster::ZK_CHROOT
            )
        };
        eprintln!(
            "harness: holding the cluster of run {run_id} until Ctrl-C:\n  bootstrap  {}\n  {metadata}",
            cluster.bootstrap(),
        );
        while !until.sleep(Duration::from_secs(1)) {}
        eprintln!("harness: tearing the cluster down");
    }
    cluster.teardown();
    let outcome = match &result {
        Ok(()) => "completed".to_string(),
        Err(HarnessError::Interrupted) => "interrupted".to_string(),
        Err(e) => format!("error: {e}"),
    };
    tl.record(&TimelineEvent::RunEnd {
        t_ms: now_ms(),
        outcome,
    });
    result.map(|()| run_id)
}

fn drive(
    scenario: &Scenario,
    run_dir: &Path,
    run_id: &str,
    cluster: &mut Cluster,
    tl: &mut Timeline,
    shutdown: &Shutdown,
) -> Result<(), HarnessError> {
    let c = &scenario.cluster;
    if c.is_kraft() {
        eprintln!(
            "harness: starting {} KRaft controller(s) and {} broker(s) (Kafka {})…",
            c.controllers.len(),
            c.brokers.len(),
            c.kafka_version
        );
    } else if c.is_migration() {
        eprintln!(
            "harness: starting {} ZooKeeper node(s) and {} broker(s); {} KRaft controller(s) join by the migration's steps…",
            c.zookeeper.len(),
            c.brokers.len(),
            c.controllers.len()
        );
    } else if let Some(t) = &c.target {
        eprintln!(
            "harness: starting {} ZooKeeper node(s), {} broker(s), and the target cluster's {} broker(s) on ensemble `{}`…",
            c.zookeeper.len(),
            c.brokers.len(),
            t.brokers.len(),
            t.ensemble
        );
    } else {
        eprintln!(
            "harness: starting {} ZooKeeper node(s) and {} broker(s)…",
            c.zookeeper.len(),
            c.brokers.len()
        );
    }
    cluster.start_all(shutdown)?;
    let ready = |tl: &mut Timeline, what: &str| {
        tl.record(&TimelineEvent::Ready {
            t_ms: now_ms(),
            what: what.into(),
        })
    };
    ready(tl, "cluster");
    let topics: Vec<&str> = scenario
        .workload
        .topics
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    let ids = cluster.running_broker_ids();
    {
        // the pipeline's output topic beside the workload's
        let mut created = scenario.workload.topics.clone();
        created.extend(scenario.workload.copy_topic());
        let names: Vec<&str> = created.iter().map(|t| t.name.as_str()).collect();
        let admin = cluster.admin()?;
        admin
            .create_topics(&created)
            .map_err(|e| HarnessError::Cluster(format!("creating topics: {e}")))?;
        admin
            .wait_healthy(&ids, &names, Duration::from_secs(60), shutdown)
            .map_err(|e| HarnessError::Cluster(format!("topics not ready: {e}")))?;
    }
    // the second oracle's topic beside the workload's, its producer and consumer beside
    // the workers
    let mut oracle = match scenario.check.oracle {
        Some(_) => Some(oracle::OracleRun::start(
            scenario, cluster, run_dir, run_id, shutdown,
        )?),
        None => None,
    };
    ready(tl, "topics");
    eprintln!(
        "harness: cluster up ({}); starting workers",
        cluster.bootstrap()
    );

    let mut workload = Workload::new(
        run_id,
        run_dir,
        &cluster.initial_bootstrap(),
        &cluster.bootstrap(),
        scenario,
        cluster.worker_host(
            workload::worker_binary()?,
            workload::discovery_path(run_dir),
            scenario.workload.placement,
        ),
    )?;
    let w = &scenario.workload;
    if w.consumers > 0 {
        workload.start(Role::Consume, w.consumers, w.consumer_processes)?;
        if !workload.wait_consumers_assigned(Duration::from_secs(45), shutdown) {
            tracing::warn!(
                "consumers were not all assigned partitions within 45s; starting producers anyway"
            );
        }
    }
    if let Some(c) = &w.copy {
        workload.start(Role::Copy, c.instances, c.processes)?;
    }
    workload.start(Role::Produce, w.producers, w.producer_processes)?;

    // the ZooKeeper smoke test, for the whole load
    let smoke = if scenario.check.zookeeper_smoke {
        Some(KillOnDrop(start_smoke(
            run_dir,
            run_id,
            &cluster.zookeeper_connect(),
        )?))
    } else {
        None
    };

    // live progress: one line every 5 s
    let current = Arc::new(Mutex::new(String::from("warmup")));
    let progress = Progress::spawn(run_dir.to_path_buf(), current.clone());

    ready(tl, "workers");
    tl.record(&TimelineEvent::Phase {
        t_ms: now_ms(),
        name: "warmup".into(),
    });
    let mut interrupted = shutdown.sleep(w.warmup);
    // the cluster the consumers are on at the end (a switch-over moves them)
    let mut consumers_on_target = false;
    if !interrupted {
        let cur = current.clone();
        let mut exec = Executor::new(
            cluster,
            tl,
            shutdown,
            scenario,
            Box::new(move |s: &str| *cur.lock().unwrap() = s.to_string()),
        )
        .with_workers(workload.switchboard(), run_dir);
        let outcomes = exec.run_all();
        consumers_on_target = exec.consumers_at().is_some_and(|(_, cluster)| cluster == 1);
        if let Some(f) = outcomes.iter().find(|o| o.error.is_some()) {
            eprintln!(
                "harness: step `{}` failed: {}",
                f.name,
                f.error.as_deref().unwrap_or("")
            );
        }
        interrupted = shutdown.requested();
    }
    if !interrupted {
        *current.lock().unwrap() = "settle".into();
        tl.record(&TimelineEvent::Phase {
            t_ms: now_ms(),
            name: "settle".into(),
        });
        interrupted = shutdown.sleep(w.settle);
    }

    *current.lock().unwrap() = "drain".into();
    if let Some(o) = oracle.as_mut() {
        o.stop_producer();
    }
    // the group's catch-up is asked of the cluster its consumers read
    let group_bootstrap = if consumers_on_target {
        cluster.target_bootstrap()
    } else {
        cluster.bootstrap()
    };
    let interrupted = drain(
        &mut workload,
        tl,
        w,
        shutdown,
        interrupted,
        &group_bootstrap,
    );
    progress.stop();
    drop(smoke);
    if interrupted || shutdown.requested() {
        return Err(HarnessError::Interrupted);
    }
    // the brokers running now (a migration stops the old ones)
    let ids = cluster.running_broker_ids();
    final_read(
        &mut workload,
        tl,
        cluster.admin()?,
        &ids,
        &topics,
        scenario.workload.final_read_timeout,
        shutdown,
    )?;
    finish_copy(scenario, &mut workload, run_dir)?;
    if let Some(o) = oracle {
        eprintln!(
            "harness: the second oracle's final read ({})…",
            crate::check::oracle::FINAL_OUT
        );
        o.finish(cluster, scenario.workload.final_read_timeout, shutdown)?;
    }
    finish_mirror(scenario, cluster, &mut workload, run_dir, shutdown)?;
    if scenario.check.kafka_metadata {
        check_kafka_metadata(cluster, run_dir, &topics);
        check_target_metadata(scenario, cluster, run_dir);
    }
    check_metadata_survival(cluster, run_dir);
    Ok(())
}

/// When the pipeline ran: reads its output topic back (the drain waited for it to copy
/// everything, then stopped it) and records what the copy check needs (`copy/copy.json`).
fn finish_copy(
    scenario: &Scenario,
    workload: &mut Workload,
    run_dir: &Path,
) -> Result<(), HarnessError> {
    use crate::check::copy::{CopyRecord, COPY_DIR, COPY_RECORD, OUTPUT_READ_LOG};
    let Some(c) = &scenario.workload.copy else {
        return Ok(());
    };
    std::fs::create_dir_all(run_dir.join(COPY_DIR))?;
    eprintln!("harness: final read of the pipeline's output `{}`…", c.to);
    workload.final_read_copy(&run_dir.join(OUTPUT_READ_LOG))?;
    let (caught_up, note) = match &workload.copy_drained {
        Some(Ok(note)) => (true, note.clone()),
        Some(Err(why)) => (false, why.clone()),
        None => (false, "the drain did not wait for the pipeline".to_string()),
    };
    let record = CopyRecord {
        from: c.from.clone(),
        to: c.to.clone(),
        group: workload.copy_group_id(),
        caught_up,
        catch_up_note: note,
    };
    std::fs::write(
        run_dir.join(COPY_RECORD),
        serde_json::to_vec_pretty(&record).map_err(|e| HarnessError::Other(e.into()))?,
    )?;
    Ok(())
}

/// When MirrorMaker 2 ran: lets a copy still running catch up with everything the producers
/// acked (they have stopped), stops it, records the cut up to which the target must hold
/// every acked record (`mirror/mirror.json`), and reads the target cluster back with the
/// final read's worker — what the mirror check compares, by record identity.
fn finish_mirror(
    scenario: &Scenario,
    cluster: &mut Cluster,
    workload: &mut Workload,
    run_dir: &Path,
    shutdown: &Shutdown,
) -> Result<(), HarnessError> {
    use crate::check::mirror::{MirrorRecord, MIRROR_RECORD, TARGET_READ_LOG};
    let Some((confirmed, settings)) = cluster.mirror_history() else {
        return Ok(());
    };
    let mut group = None;
    let mut end_error = None;
    let mut cut = confirmed.map(|at| {
        (
            at,
            "the start of the last `mirror-wait` that succeeded".to_string(),
        )
    });
    if cluster.mirror_started() {
        eprintln!("harness: letting MirrorMaker 2 copy what the producers acked…");
        let topics = scenario.workload.partitions_of(&settings.topics);
        let now = now_ms();
        let (source, target) = (cluster.bootstrap(), cluster.target_bootstrap());
        let waited = crate::kafka::mirror::wait_caught_up(
            &source,
            &target,
            crate::cluster::mirror::SOURCE_ALIAS,
            &topics,
            scenario.workload.final_read_timeout,
            shutdown,
            || cluster.mirror().map(|_| ()).map_err(anyhow::Error::from),
        );
        match waited {
            Ok(_) => {
                cut = Some((
                    now,
                    "the end of the run: MirrorMaker ran to the end and copied everything the source held once the producers had stopped".into(),
                ));
                // (consumers a switch-over moved read the target's group now: MirrorMaker
                // syncs only a group with no member there, and what they did is judged
                // from their own logs)
                if scenario.workload.consumers > 0 && !workload::consumers_moved(run_dir) {
                    group = Some(synced_group(
                        cluster,
                        &workload.group_id(),
                        &topics,
                        shutdown,
                    ));
                }
            }
            Err(e) => {
                tracing::warn!("{e}");
                end_error = Some(e.to_string());
            }
        }
        cluster.stop_mirror(Duration::from_secs(30));
    }
    cluster.stop_mirror_lag();
    // in the workload's order: the target's final read lists them so (its log's topic
    // indexes)
    let copied: Vec<String> = scenario
        .workload
        .partitions_of(&settings.topics)
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    // a topic MirrorMaker never made on the target is not read there (a read would wait
    // for it until its timeout): the check counts its records missing
    let on_target: Vec<String> = cluster
        .target_admin()?
        .snapshot(Duration::from_secs(10))
        .map(|s| s.partitions.iter().map(|p| p.topic.clone()).collect())
        .unwrap_or_default();
    let absent: Vec<String> = copied
        .iter()
        .filter(|t| !on_target.contains(t))
        .cloned()
        .collect();
    let readable: Vec<String> = copied
        .iter()
        .filter(|t| on_target.contains(t))
        .cloned()
        .collect();
    let record = MirrorRecord {
        group,
        end_catch_up_error: end_error,
        absent_on_target: absent,
        read_on_target: readable.clone(),
        topics: copied.clone(),
        exactly_once: settings.exactly_once,
        cut_ms: cut.as_ref().map(|(at, _)| *at),
        cut_reason: cut
            .map(|(_, why)| why)
            .unwrap_or_else(|| "none: the copy was never seen caught up".into()),
    };
    std::fs::create_dir_all(run_dir.join(crate::check::mirror::MIRROR_DIR))?;
    std::fs::write(
        run_dir.join(MIRROR_RECORD),
        serde_json::to_vec_pretty(&record).map_err(std::io::Error::other)?,
    )?;
    if readable.is_empty() {
        eprintln!(
            "harness: no topic of the copy exists on the target cluster; nothing to read there"
        );
        return Ok(());
    }
    eprintln!("harness: final read of the target cluster…");
    let target_topics: Vec<&str> = readable.iter().map(String::as_str).collect();
    let target_ids: Vec<i32> = (1..=scenario.cluster.target_brokers().count() as i32).collect();
    // bounded as the source's final read bounds its own wait (see `final_read`)
    let heal = scenario
        .workload
        .final_read_timeout
        .min(Duration::from_secs(60));
    if let Err(e) =
        cluster
            .target_admin()?
            .wait_healthy(&target_ids, &target_topics, heal, shutdown)
    {
        tracing::warn!("target cluster not fully healthy before its final read: {e}");
    }
    workload.final_read_of(
        &cluster.target_bootstrap(),
        &readable,
        &run_dir.join(TARGET_READ_LOG),
    )
}

/// The workload group's committed offsets on the source (the consumers have stopped) and
/// what MirrorMaker synced to the target, once every partition committed on the source has
/// a target offset that held still for two looks a second apart (it syncs every second),
/// or after 30 s.
fn synced_group(
    cluster: &Cluster,
    group: &str,
    topics: &[(String, u32)],
    shutdown: &Shutdown,
) -> crate::check::mirror::GroupOffsets {
    use crate::kafka::mirror::committed;
    let partitions: Vec<(String, i32)> = topics
        .iter()
        .flat_map(|(t, n)| (0..*n as i32).map(move |p| (t.clone(), p)))
        .collect();
    let flat = |m: &std::collections::BTreeMap<(String, i32), i64>| -> Vec<(String, i32, i64)> {
        m.iter().map(|((t, p), o)| (t.clone(), *p, *o)).collect()
    };
    let (source_bootstrap, target_bootstrap) = (cluster.bootstrap(), cluster.target_bootstrap());
    let timeout = Duration::from_secs(10);
    let started = std::time::Instant::now();
    let mut last: Option<std::collections::BTreeMap<(String, i32), i64>> = None;
    loop {
        let source = committed(&source_bootstrap, group, &partitions, timeout);
        let target = committed(&target_bootstrap, group, &partitions, timeout);
        let (source, target) = match (source, target) {
            (Ok(s), Ok(t)) => (s, t),
            (s, t) => {
                let why = [s.err(), t.err()]
                    .into_iter()
                    .flatten()
                    .map(|e| e.to_string())
                    .collect::<Vec<_>>()
                    .join("; ");
                if started.elapsed() > Duration::from_secs(30) || shutdown.requested() {
                    return crate::check::mirror::GroupOffsets {
                        group: group.into(),
                        source: Vec::new(),
                        target: Vec::new(),
                        note: format!("could not read the committed offsets: {why}"),
                    };
                }
                shutdown.sleep(Duration::from_secs(1));
                continue;
            }
        };
        let all_synced = source.keys().all(|k| target.contains_key(k));
        let still = last.as_ref() == Some(&target);
        if (all_synced && still)
            || started.elapsed() > Duration::from_secs(30)
            || shutdown.requested()
        {
            let note = if all_synced && still {
                format!(
                    "read {:.1} s after the copy caught up, once every synced offset held still",
                    started.elapsed().as_secs_f64()
                )
            } else {
                format!(
                    "read after {:.1} s: {} of {} partitions synced, still moving: {}",
                    started.elapsed().as_secs_f64(),
                    source.keys().filter(|k| target.contains_key(*k)).count(),
                    source.len(),
                    !still
                )
            };
            return crate::check::mirror::GroupOffsets {
                group: group.into(),
                source: flat(&source),
                target: flat(&target),
                note,
            };
        }
        last = Some(target);
        if shutdown.sleep(Duration::from_secs(1)) {
            continue;
        }
    }
}

/// Reads back what a `create-metadata` step created (when one did) and compares, into
/// `metadata-survival.json`; a failure to read is recorded too.
fn check_metadata_survival(cluster: &mut Cluster, run_dir: &Path) {
    use crate::kafka::survival::{compare, MetadataSet, SurvivalCheck};
    let Ok(bytes) = std::fs::read(run_dir.join(rundir::METADATA_CREATED)) else {
        return;
    };
    let created: MetadataSet = match serde_json::from_slice(&bytes) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("{}: {e}", rundir::METADATA_CREATED);
            return;
        }
    };
    let mut admin = crate::kafka::ClusterAdmin::new(&cluster.bootstrap(), Duration::from_secs(30));
    let mut check = SurvivalCheck {
        created: created.clone(),
        ..Default::default()
    };
    // a broker just restarted may not have replayed the last records yet: a difference
    // must persist over a few reads to count
    for attempt in 0..5 {
        if attempt > 0 {
            std::thread::sleep(Duration::from_secs(2));
        }
        match admin.read_metadata(&created) {
            Ok(found) => {
                check.differences = compare(&created, &found);
                check.found = Some(found);
                check.error = None;
                if check.differences.is_empty() {
                    break;
                }
            }
            Err(e) => check.error = Some(format!("reading it back: {e}")),
        }
    }
    if check.intact() {
        eprintln!("harness: the metadata `create-metadata` made is all there");
    } else {
        eprintln!(
            "harness: the metadata `create-metadata` made did not survive: {}",
            check
                .error
                .clone()
                .unwrap_or_else(|| check.differences.join("; "))
        );
    }
    let path = run_dir.join(rundir::METADATA_SURVIVAL);
    if let Err(e) = std::fs::write(&path, serde_json::to_vec_pretty(&check).unwrap_or_default()) {
        tracing::warn!("writing {}: {e}", path.display());
    }
}

/// The drain: producers stop first and settle what is in flight (up to their delivery
/// timeout and a margin); consumers then get until their group has committed every
/// partition's end offset ([`crate::kafka::GroupCatchUp`], asked of the cluster at
/// `bootstrap`: the coordinator's view), or else until they stop making progress, or the
/// drain timeout;
/// both are stopped. `interrupted` (or a stop asked for meanwhile) skips the consumers'
/// wait. Returns whether the run was interrupted.
pub(crate) fn drain(
    workload: &mut Workload,
    tl: &mut Timeline,
    w: &crate::scenario::Workload,
    shutdown: &Shutdown,
    mut interrupted: bool,
    bootstrap: &str,
) -> bool {
    tl.record(&TimelineEvent::Phase {
        t_ms: now_ms(),
        name: "drain".into(),
    });
    let drain_started = std::time::Instant::now();
    let grace =
        Duration::from_millis(u64::from(w.producer.delivery_timeout_ms)) + Duration::from_secs(30);
    for failed in workload.stop(Role::Produce, grace) {
        record_failed_worker(tl, failed);
    }
    if w.consumers > 0 && !interrupted {
        let deadline = std::time::Instant::now() + w.drain_timeout;
        // the producers have stopped: the end offsets are final (see kafka::GroupCatchUp)
        let catch_up = workload
            .group_catch_up(bootstrap)
            .map(|mut c| {
                c.read_ends(Duration::from_secs(2));
                c
            })
            .map_err(|e| tracing::warn!("the drain cannot ask the group's offsets: {e}"))
            .ok();
        let mut last = workload.status(Role::Consume).received;
        let mut still = 0;
        let mut tick = 0u32;
        // seconds without a record received that end the drain of a group that never
        // catches up (a stalled consumer, a partition with no leader). A rebalance stands
        // still too, for up to a session timeout (a member its coordinator stopped hearing
        // from is dropped only then): measured, a leader frozen past the session made the
        // group rebalance for 11.8 s after the thaw, and 4 s of stillness ended the drain
        // inside it, its records `unconsumed`
        let still_limit = (u64::from(w.consumer_session_timeout_ms) / 1000 + 2).max(4);
        while std::time::Instant::now() < deadline && still < still_limit {
            if catch_up
                .as_ref()
                .is_some_and(|c| c.caught_up(Duration::from_secs(2)))
            {
                break;
            }
            if shutdown.sleep(Duration::from_millis(250)) {
                interrupted = true;
                break;
            }
            tick += 1;
            if tick.is_multiple_of(4) {
                // once a second, as the consumers print their counts
                let now = workload.status(Role::Consume).received;
                still = if now == last { still + 1 } else { 0 };
                last = now;
            }
        }
    }
    for failed in workload.stop(Role::Consume, Duration::from_secs(30)) {
        record_failed_worker(tl, failed);
    }
    if w.copy.is_some() && !interrupted {
        interrupted |= drain_copy(workload, w, shutdown, bootstrap, drain_started);
    }
    // a pipeline instance ends its round (its commit may wait for a coordinator) and leaves
    for failed in workload.stop(Role::Copy, grace) {
        record_failed_worker(tl, failed);
    }
    interrupted
}

/// Waits (at most `drain_timeout`) until the pipeline's group has committed, in its
/// transactions, the end of every partition it reads — everything the stopped producers
/// wrote is copied — and keeps how that went for the copy check. True when interrupted.
fn drain_copy(
    workload: &mut Workload,
    w: &crate::scenario::Workload,
    shutdown: &Shutdown,
    bootstrap: &str,
    drain_started: std::time::Instant,
) -> bool {
    let deadline = std::time::Instant::now() + w.drain_timeout;
    let mut catch_up = match workload.copy_catch_up(bootstrap) {
        Some(Ok(c)) => c,
        Some(Err(e)) => {
            workload.copy_drained = Some(Err(format!(
                "the drain cannot ask the pipeline's group's offsets: {e}"
            )));
            return false;
        }
        None => return false,
    };
    catch_up.read_ends(Duration::from_secs(2));
    loop {
        if catch_up.caught_up(Duration::from_secs(2)) {
            workload.copy_drained = Some(Ok(format!(
                "its group had committed every partition's end {:.1} s after the drain began",
                drain_started.elapsed().as_secs_f64()
            )));
            return false;
        }
        if std::time::Instant::now() >= deadline {
            workload.copy_drained = Some(Err(format!(
                "its group had not committed every partition's end within drain_timeout ({:?})",
                w.drain_timeout
            )));
            return false;
        }
        if shutdown.sleep(Duration::from_millis(250)) {
            return true;
        }
    }
}

/// The final read: every partition of the workload's topics from its start, once the
/// brokers `ids` lead them all in sync (it reads what it can either way). The wait for
/// that is at most a minute, and no longer than the read's own `timeout`: a scenario that
/// bounds its final read (one whose cluster may never heal) bounds the wait before it too.
pub(crate) fn final_read(
    workload: &mut Workload,
    tl: &mut Timeline,
    admin: &crate::kafka::Admin,
    ids: &[i32],
    topics: &[&str],
    timeout: Duration,
    shutdown: &Shutdown,
) -> Result<(), HarnessError> {
    tl.record(&TimelineEvent::Phase {
        t_ms: now_ms(),
        name: "final-read".into(),
    });
    eprintln!("harness: final read of every partition…");
    let heal = timeout.min(Duration::from_secs(60));
    if let Err(e) = admin.wait_healthy(ids, topics, heal, shutdown) {
        tracing::warn!("cluster not fully healthy before the final read: {e}");
    }
    workload.final_read()
}

/// A worker that ended badly is a finding: into the timeline, where the checker finds it.
fn record_failed_worker(tl: &mut Timeline, failed: workload::FailedWorker) {
    tracing::warn!("{failed}");
    tl.record(&TimelineEvent::WorkerFailed {
        t_ms: now_ms(),
        worker: failed.worker,
        how: failed.how,
        stderr: failed.stderr,
    });
}

/// Compares Kafka's znodes in the ensemble the brokers use with what the brokers report,
/// into `metadata-check.json` (the checker reads it; a failure to check is recorded too).
fn check_kafka_metadata(cluster: &mut Cluster, run_dir: &Path, topics: &[&str]) {
    if let Some(cluster_id) = cluster.cluster_id().map(str::to_string) {
        record_metadata_check(
            run_dir,
            Ok(kraft_metadata_check(cluster, cluster_id, topics)),
        );
        return;
    }
    let result = (|| -> Result<_, HarnessError> {
        let servers = cluster.kafka_zookeeper()?;
        let connect = cluster.zookeeper_servers(&servers);
        kafka_metadata_check(&connect, cluster::ZK_CHROOT, cluster.admin()?)
    })();
    record_metadata_check(run_dir, result);
}

/// A KRaft cluster's metadata check ([`crate::kafka::quorum::check`]): the quorum's
/// leader and voters, every running broker caught up on the metadata log and serving the
/// same cluster id, brokers and topics as the others.
fn kraft_metadata_check(
    cluster: &mut Cluster,
    cluster_id: String,
    topics: &[&str],
) -> crate::zk::metadata::MetadataCheck {
    let running = cluster.running_broker_ids();
    let brokers: Vec<(i32, String)> = running
        .iter()
        .filter_map(|id| {
            let name = cluster.broker_name(*id)?;
            Some((*id, cluster.broker_addresses(&[name])))
        })
        .collect();
    let voters: Vec<i32> = cluster.voter_ids();
    let observers: Vec<i32> = running
        .iter()
        .copied()
        .filter(|id| {
            cluster
                .broker_name(*id)
                .is_some_and(|name| cluster.runs_kraft(&name))
        })
        .collect();
    let expected = crate::kafka::quorum::Expected {
        cluster_id: cluster_id.clone(),
        controllers: cluster.controller_addresses(),
        voters,
        brokers,
        observers,
        topics: topics.iter().map(|t| t.to_string()).collect(),
    };
    let mut found = crate::kafka::quorum::check(&expected, 10);
    // a migration's broker still on ZooKeeper is served by controllers in migration mode;
    // with none (finalized too early) it gets no metadata from anyone
    let zk_mode: Vec<i32> = running
        .iter()
        .copied()
        .filter(|id| !expected.observers.contains(id))
        .collect();
    if !zk_mode.is_empty() && cluster.migrating_controllers().is_empty() {
        found.differences.push(format!(
            "brokers {zk_mode:?} run in ZooKeeper mode and no controller runs in migration mode: the migration was finalized under them, and no controller sends them metadata"
        ));
    }
    let (topics, partitions) = cluster
        .admin()
        .ok()
        .and_then(|a| a.snapshot(Duration::from_secs(5)).ok())
        .map(|s| {
            let mut names: Vec<&str> = s.partitions.iter().map(|p| p.topic.as_str()).collect();
            names.dedup();
            (names.len() as u64, s.partitions.len() as u64)
        })
        .unwrap_or_default();
    crate::zk::metadata::MetadataCheck {
        topics,
        partitions,
        registered_brokers: found.registered,
        controller: found.quorum.as_ref().map_or(-1, |q| q.leader_id),
        differences: found.differences,
        controllers: expected.controllers.join(","),
        cluster_id: Some(cluster_id),
        quorum: found.quorum,
        ..Default::default()
    }
}

/// Kafka's znodes under `chroot` of the ensemble at `connect` against what the brokers
/// `admin` reaches report.
pub(crate) fn kafka_metadata_check(
    connect: &str,
    chroot: &str,
    admin: &crate::kafka::Admin,
) -> Result<crate::zk::metadata::MetadataCheck, HarnessError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(
        rt.block_on(crate::zk::metadata::check(connect, chroot, 10, || {
            admin
                .snapshot(Duration::from_secs(5))
                .map_err(|e| e.to_string())
        })),
    )
}

/// The target cluster's own metadata check, when MirrorMaker copied onto it (the run left
/// its record): the target's znodes against what its brokers report — a migration's
/// destination must be as consistent as its source — into
/// [`crate::check::mirror::TARGET_METADATA_CHECK`] (a failure to check is recorded too).
fn check_target_metadata(scenario: &Scenario, cluster: &mut Cluster, run_dir: &Path) {
    let Some(target) = &scenario.cluster.target else {
        return;
    };
    if !run_dir.join(crate::check::mirror::MIRROR_RECORD).exists() {
        return;
    }
    let servers = scenario
        .cluster
        .ensembles
        .get(&target.ensemble)
        .cloned()
        .unwrap_or_default();
    let connect = cluster.zookeeper_servers(&servers);
    let result = cluster
        .target_admin()
        .and_then(|admin| kafka_metadata_check(&connect, cluster::ZK_CHROOT, admin));
    write_metadata_check(
        &run_dir.join(crate::check::mirror::TARGET_METADATA_CHECK),
        "the target cluster's",
        result,
    );
}

/// Writes a metadata check's result (or why there is none) for the checker, and says it.
pub(crate) fn record_metadata_check(
    run_dir: &Path,
    result: Result<crate::zk::metadata::MetadataCheck, HarnessError>,
) {
    write_metadata_check(&run_dir.join(rundir::METADATA_CHECK), "Kafka's", result);
}

/// Writes a metadata check's result to `path` and says it (`whose`: "Kafka's" metadata).
fn write_metadata_check(
    path: &Path,
    whose: &str,
    result: Result<crate::zk::metadata::MetadataCheck, HarnessError>,
) {
    let result = result.unwrap_or_else(|e| crate::zk::metadata::MetadataCheck {
        error: Some(e.to_string()),
        ..Default::default()
    });
    let source = if result.controllers.is_empty() {
        "in ZooKeeper"
    } else {
        "in the KRaft quorum"
    };
    if result.intact() {
        eprintln!("harness: {whose} metadata {source} matches the brokers");
    } else {
        eprintln!(
            "harness: {whose} metadata {source} differs: {}",
            result
                .error
                .clone()
                .unwrap_or_else(|| result.differences.join("; "))
        );
    }
    if let Err(e) = std::fs::write(path, serde_json::to_vec_pretty(&result).unwrap_or_default()) {
        tracing::warn!("writing {}: {e}", path.display());
    }
}

/// A helper process that must not outlive the run: SIGTERM (it flushes each line as it
/// goes), then reaped, when dropped — on errors and panics too.
pub(crate) struct KillOnDrop(pub(crate) std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our unreaped child.
        unsafe { libc::kill(self.0.id() as libc::pid_t, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

/// Starts `harness zk smoke` against every server of `servers` (`host:port,…`, no chroot;
/// killed at the drain, or by `harness cleanup` after a crash: it carries the run's tag).
pub(crate) fn start_smoke(
    run_dir: &Path,
    run_id: &str,
    servers: &str,
) -> Result<std::process::Child, HarnessError> {
    use std::os::unix::process::CommandExt;
    std::process::Command::new(std::env::current_exe()?)
        .args([
            "zk",
            "smoke",
            servers,
            "--interval",
            &format!("{}ms", crate::check::SMOKE_INTERVAL_MS),
            "--tag",
        ])
        .arg(format!("kmh.run={run_id}"))
        .arg("--log")
        .arg(run_dir.join(rundir::SMOKE_LOG))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(
            run_dir.join("workers").join("zk-smoke.err"),
        )?)
        .process_group(0)
        .spawn()
        .map_err(|source| {
            WorkersError::Start {
                worker: "the ZooKeeper smoke test".into(),
                source,
            }
            .into()
        })
}

/// Prints live progress from the workers' status lines.
pub(crate) struct Progress {
    stop: Arc<std::sync::atomic::AtomicBool>,
    handle: std::thread::JoinHandle<()>,
}

impl Progress {
    pub(crate) fn spawn(run_dir: PathBuf, current: Arc<Mutex<String>>) -> Progress {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let s = stop.clone();
        let start = std::time::Instant::now();
        let handle = std::thread::spawn(move || {
            let mut n = 0u64;
            while !s.load(std::sync::atomic::Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(250));
                n += 1;
                if !n.is_multiple_of(20) {
                    continue;
                }
                let (p, c) = sum_status(&run_dir);
                // the pipeline, when one runs: records copied in committed transactions
                let copy = workers_status(&run_dir, "copy-");
                eprintln!(
                    "harness: t+{:>4}s [{}] sent {} acked {} failed {} indeterminate {} | consumed {}{} | client errors {}",
                    start.elapsed().as_secs(),
                    current.lock().unwrap(),
                    p.sent,
                    p.acked,
                    p.failed,
                    p.indeterminate,
                    c.received,
                    copy.map(|x| format!(" | copied {}", x.acked)).unwrap_or_default(),
                    p.errors + c.errors + copy.map_or(0, |x| x.errors)
                );
            }
        });
        Progress { stop, handle }
    }

    pub(crate) fn stop(self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = self.handle.join();
    }
}

/// The summed status of the workers whose status files (in `run_dir/workers`) start with
/// `prefix` (`None`: no such worker).
fn workers_status(run_dir: &Path, prefix: &str) -> Option<workload::Status> {
    let outs: Vec<PathBuf> = rundir::files_with_extension(&run_dir.join("workers"), "out")
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
        })
        .collect();
    (!outs.is_empty()).then(|| workload::Status::sum(outs.iter().map(PathBuf::as_path)))
}

/// Producer and consumer totals from the status files in `run_dir/workers`.
pub(crate) fn sum_status(run_dir: &Path) -> (workload::Status, workload::Status) {
    (
        workers_status(run_dir, "producer-").unwrap_or_default(),
        workers_status(run_dir, "consumer-").unwrap_or_default(),
    )
}
