//! The workload: `worker` processes started from the harness, their configs, status and
//! stop. Each worker gets a JSON [`WorkerConfig`] and writes its binary log to
//! `logs/ROLE-N.log`, its status lines to `workers/ROLE-N.out`.
//!
//! Where a worker process runs is its host's business (the host seam,
//! `cluster::host::WorkerHost`): a child process here, or on the Docker backend a container
//! whose output is streamed into `workers/ROLE-N.out`/`.err` and whose log is copied out
//! to `logs/ROLE-N.log` when it stops.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use workers::{ConsumerSettings, CopySettings, Role, TopicSpec, WorkerConfig};

use crate::cluster::host::{DiscoveryCopy, WorkerExit, WorkerHost, WorkerLaunch, WorkerRunner};
use crate::error::{HarnessError, WorkersError};
use crate::scenario::Scenario;
use crate::shutdown::Shutdown;

/// One running worker process.
pub struct WorkerProcess {
    /// Its role.
    pub role: Role,
    /// Index among its role.
    pub index: u32,
    /// Status line output.
    pub out_path: PathBuf,
    /// Its binary log.
    pub log_path: PathBuf,
    /// Client instances it hosts.
    pub instances: u32,
    /// The process on its host.
    runner: Box<dyn WorkerRunner>,
}

impl WorkerProcess {
    fn name(&self) -> String {
        format!("{}-{}", role_name(self.role), self.index)
    }
}

/// A worker process that did not end cleanly.
#[derive(Debug, Clone)]
pub struct FailedWorker {
    /// Its name (`producer-0`).
    pub worker: String,
    /// How it ended.
    pub how: String,
    /// Its stderr, relative to the run directory.
    pub stderr: String,
}

impl FailedWorker {
    fn of(p: &WorkerProcess, run_dir: &Path, how: String) -> FailedWorker {
        let err = p.out_path.with_extension("err");
        FailedWorker {
            worker: p.name(),
            how,
            stderr: err
                .strip_prefix(run_dir)
                .unwrap_or(&err)
                .display()
                .to_string(),
        }
    }
}

impl std::fmt::Display for FailedWorker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "worker {} {} (see {})",
            self.worker, self.how, self.stderr
        )
    }
}

/// Counters summed from the workers' last status lines.
#[derive(Debug, Default, Clone, Copy, serde::Deserialize)]
pub struct Status {
    /// Records handed to a producer client.
    #[serde(default)]
    pub sent: u64,
    /// Acked.
    #[serde(default)]
    pub acked: u64,
    /// Definite failures.
    #[serde(default)]
    pub failed: u64,
    /// Unknown outcomes.
    #[serde(default)]
    pub indeterminate: u64,
    /// Records delivered to consumers.
    #[serde(default)]
    pub received: u64,
    /// Client errors.
    #[serde(default)]
    pub errors: u64,
    /// Client instances reconnected to new bootstrap servers.
    #[serde(default)]
    pub switches: u64,
}

/// The discovery file of a run: the bootstrap servers producers and consumers use.
pub fn discovery_path(run_dir: &Path) -> PathBuf {
    run_dir.join("discovery").join("bootstrap")
}

/// True when the run's discovery file sends the consumers to MirrorMaker's target (a
/// `mirror-switch` moved them).
pub fn consumers_moved(run_dir: &Path) -> bool {
    std::fs::read_to_string(discovery_path(run_dir))
        .ok()
        .and_then(|t| workers::discovery::parse(&t, Role::Consume.name()))
        .is_some_and(|(_, cluster)| cluster == 1)
}

/// Rewrites a discovery file atomically (a worker never reads half of it).
pub fn write_discovery(path: &Path, bootstrap: &str) -> Result<(), HarnessError> {
    write_discovery_text(path, &format!("{bootstrap}\n"))
}

fn write_discovery_text(path: &Path, text: &str) -> Result<(), HarnessError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// What a discovery file says ([`workers::discovery`]): the servers every worker uses and
/// their cluster, and the roles moved elsewhere.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DiscoveryContent {
    /// Every role's servers and cluster (0: the run's own, 1: MirrorMaker's target).
    pub everyone: (String, u8),
    /// Roles with servers of their own.
    pub roles: std::collections::BTreeMap<Role, (String, u8)>,
}

impl DiscoveryContent {
    /// The file's text.
    pub fn text(&self) -> String {
        let (servers, cluster) = &self.everyone;
        let mut t = if *cluster == 0 {
            format!("{servers}\n")
        } else {
            format!("{servers} {cluster}\n")
        };
        for (role, (servers, cluster)) in &self.roles {
            t.push_str(&format!("{} {servers} {cluster}\n", role.name()));
        }
        t
    }

    /// What a worker of `role` uses.
    pub fn of(&self, role: Role) -> &(String, u8) {
        self.roles.get(&role).unwrap_or(&self.everyone)
    }
}

/// The discovery file and the workers watching it.
#[derive(Clone, Default)]
pub struct Switchboard {
    /// The discovery file.
    pub path: PathBuf,
    /// Every producer and consumer process.
    pub status_paths: Vec<SwitchingWorker>,
    /// What the file says now.
    pub content: DiscoveryContent,
}

/// A worker that watches the discovery file.
#[derive(Clone)]
pub struct SwitchingWorker {
    /// `producer-0`, …
    pub name: String,
    /// Its role (whose line of the file it follows).
    pub role: Role,
    /// Its status lines.
    pub status_path: PathBuf,
    /// Its client instances (each reconnects once per switch).
    pub instances: u32,
    /// Its own copy of the discovery file, where it does not read this machine's.
    pub discovery: Option<Arc<dyn DiscoveryCopy>>,
}

impl Switchboard {
    /// Points every worker at `bootstrap` (on the run's own cluster), then waits until
    /// every client instance that was elsewhere has reconnected (the workers' status
    /// `switches` counts reconnects).
    pub fn switch(
        &mut self,
        bootstrap: &str,
        timeout: Duration,
        shutdown: &Shutdown,
    ) -> Result<(), HarnessError> {
        let next = DiscoveryContent {
            everyone: (bootstrap.to_string(), 0),
            roles: Default::default(),
        };
        self.apply(next, timeout, shutdown)
    }

    /// Points the workers of `role` at `bootstrap` on cluster `cluster` (1: MirrorMaker's
    /// target), the others staying where they are; waits as [`Self::switch`] does.
    pub fn move_role(
        &mut self,
        role: Role,
        bootstrap: &str,
        cluster: u8,
        timeout: Duration,
        shutdown: &Shutdown,
    ) -> Result<(), HarnessError> {
        let mut next = self.content.clone();
        next.roles.insert(role, (bootstrap.to_string(), cluster));
        self.apply(next, timeout, shutdown)
    }

    /// Writes `next` (here and into the workers' own copies) and waits until every worker
    /// whose servers it changes has reconnected each of its instances.
    fn apply(
        &mut self,
        next: DiscoveryContent,
        timeout: Duration,
        shutdown: &Shutdown,
    ) -> Result<(), HarnessError> {
        let switches = |w: &SwitchingWorker| {
            Status::last(&w.status_path)
                .map(|s| s.switches)
                .unwrap_or(0)
        };
        let moving: Vec<(&SwitchingWorker, u64)> = self
            .status_paths
            .iter()
            .filter(|w| self.content.of(w.role) != next.of(w.role))
            .map(|w| (w, switches(w)))
            .collect();
        let text = next.text();
        write_discovery_text(&self.path, &text)?;
        for copy in self
            .status_paths
            .iter()
            .filter_map(|w| w.discovery.as_ref())
        {
            copy.write(&text)?;
        }
        self.content = next;
        let deadline = Instant::now() + timeout;
        loop {
            let waiting: Vec<&str> = moving
                .iter()
                .filter(|(w, b)| switches(w) < *b + u64::from(w.instances))
                .map(|(w, _)| w.name.as_str())
                .collect();
            if waiting.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(WorkersError::NotReconnected {
                    workers: waiting.join(", "),
                    bootstrap: text.trim().replace('\n', "; "),
                    timeout,
                }
                .into());
            }
            if shutdown.sleep(Duration::from_millis(250)) {
                return Err(HarnessError::Interrupted);
            }
        }
    }

    /// Where the consumers are now: their servers and cluster.
    pub fn consumers(&self) -> &(String, u8) {
        self.content.of(Role::Consume)
    }
}

pub use crate::cluster::host::worker_binary;

/// Starts workers and keeps track of them.
pub struct Workload {
    run_id: String,
    run_dir: PathBuf,
    /// What producers and consumers are first given (the discovery file's first content).
    bootstrap: String,
    /// What the final read is given: every broker of the cluster.
    final_bootstrap: String,
    scenario: Scenario,
    /// Every worker started, in start order.
    pub processes: Vec<WorkerProcess>,
    /// Where worker processes run.
    host: Arc<dyn WorkerHost>,
    /// librdkafka properties every worker's clients get (a watched cluster's security).
    client_properties: crate::kafka::ClientProperties,
    /// How the drain's wait for the pipeline ended (`Ok`: it copied everything, and how
    /// long that took; `Err`: why not); `None` before the drain or without a pipeline.
    pub copy_drained: Option<Result<String, String>>,
}

impl Workload {
    /// Prepares (starts nothing) and writes the discovery file with `bootstrap`; workers
    /// will run on `host`.
    pub fn new(
        run_id: &str,
        run_dir: &Path,
        bootstrap: &str,
        final_bootstrap: &str,
        scenario: &Scenario,
        host: Arc<dyn WorkerHost>,
    ) -> Result<Workload, HarnessError> {
        std::fs::create_dir_all(run_dir.join("logs"))?;
        std::fs::create_dir_all(run_dir.join("workers"))?;
        write_discovery(&discovery_path(run_dir), bootstrap)?;
        Ok(Workload {
            run_id: run_id.into(),
            run_dir: run_dir.into(),
            bootstrap: bootstrap.into(),
            final_bootstrap: final_bootstrap.into(),
            scenario: scenario.clone(),
            processes: Vec::new(),
            host,
            client_properties: Default::default(),
            copy_drained: None,
        })
    }

    /// Gives every worker's clients these properties too (TLS, SASL of a watched cluster).
    pub fn with_client_properties(mut self, properties: crate::kafka::ClientProperties) -> Self {
        self.client_properties = properties;
        self
    }

    /// The topics as workers see them.
    pub fn topic_specs(scenario: &Scenario) -> Vec<TopicSpec> {
        scenario
            .workload
            .topics
            .iter()
            .map(|t| TopicSpec {
                name: t.name.clone(),
                partitions: t.partitions,
            })
            .collect()
    }

    fn config(
        &self,
        role: Role,
        index: u32,
        instances: u32,
        first_instance_id: u32,
    ) -> WorkerConfig {
        let w = &self.scenario.workload;
        WorkerConfig {
            run_id: self.run_id.clone(),
            role,
            worker_index: index,
            instances,
            first_instance_id,
            bootstrap: if role == Role::FinalRead {
                self.final_bootstrap.clone()
            } else {
                self.bootstrap.clone()
            },
            bootstrap_file: (role != Role::FinalRead).then(|| discovery_path(&self.run_dir)),
            topics: Self::topic_specs(&self.scenario),
            log_path: self
                .run_dir
                .join("logs")
                .join(format!("{}-{index}.log", role_name(role))),
            producer: w.producer.clone(),
            consumer: ConsumerSettings {
                group_id: self.group_id(),
                session_timeout_ms: w.consumer_session_timeout_ms,
                read_uncommitted: w.consumer_read_uncommitted,
            },
            final_read_timeout_ms: w.final_read_timeout.as_millis() as u64,
            client_overrides: self.client_properties.clone(),
            copy: if role == Role::Copy {
                self.copy_settings()
            } else {
                None
            },
        }
    }

    /// The pipeline's settings as its workers see them (`None`: the scenario runs none).
    fn copy_settings(&self) -> Option<CopySettings> {
        self.scenario.workload.copy_settings(&self.copy_group_id())
    }

    /// The pipeline's consumer group.
    pub fn copy_group_id(&self) -> String {
        format!("kmh-{}-copy", self.run_id)
    }

    /// The pipeline's group, as the drain follows it until it has copied everything.
    pub fn copy_catch_up(
        &self,
        bootstrap: &str,
    ) -> Option<anyhow::Result<crate::kafka::GroupCatchUp>> {
        let c = self.scenario.workload.copy.as_ref()?;
        let from: Vec<TopicSpec> = Self::topic_specs(&self.scenario)
            .into_iter()
            .filter(|t| t.name == c.from)
            .collect();
        Some(crate::kafka::GroupCatchUp::new(
            bootstrap,
            &self.client_properties,
            &self.copy_group_id(),
            &from,
        ))
    }

    /// The final read of the pipeline's output topic, into `log_path` (not among the run's
    /// logs: its records are copies, which the main check would count twice).
    pub fn final_read_copy(&mut self, log_path: &std::path::Path) -> Result<(), HarnessError> {
        let Some(c) = self.copy_settings() else {
            return Ok(());
        };
        let mut cfg = self.config(Role::FinalRead, 2, 1, 0);
        cfg.topics = vec![c.to];
        cfg.log_path = log_path.to_path_buf();
        self.run_final_read(cfg)
    }

    /// The consumers' group, as the drain follows it ([`crate::kafka::GroupCatchUp`]) from
    /// the coordinator, through `bootstrap` (the coordinator's view of the cluster).
    pub fn group_catch_up(&self, bootstrap: &str) -> anyhow::Result<crate::kafka::GroupCatchUp> {
        crate::kafka::GroupCatchUp::new(
            bootstrap,
            &self.client_properties,
            &self.group_id(),
            &Self::topic_specs(&self.scenario),
        )
    }

    /// The consumers' group id.
    pub fn group_id(&self) -> String {
        format!("kmh-{}", self.run_id)
    }

    fn spawn(&mut self, cfg: WorkerConfig) -> Result<(), HarnessError> {
        let name = format!("{}-{}", role_name(cfg.role), cfg.worker_index);
        let workers_dir = self.run_dir.join("workers");
        let out_path = workers_dir.join(format!("{name}.out"));
        let runner = self.host.launch(&WorkerLaunch {
            name: &name,
            command: role_command(cfg.role),
            config: &cfg,
            config_path: &workers_dir.join(format!("{name}.json")),
            out_path: &out_path,
            err_path: &workers_dir.join(format!("{name}.err")),
            run_id: &self.run_id,
            ordinal: self.processes.len(),
        })?;
        self.processes.push(WorkerProcess {
            role: cfg.role,
            index: cfg.worker_index,
            out_path,
            log_path: cfg.log_path,
            instances: cfg.instances,
            runner,
        });
        Ok(())
    }

    /// Starts `instances` client instances of `role` spread over `processes` workers.
    pub fn start(
        &mut self,
        role: Role,
        instances: u32,
        processes: u32,
    ) -> Result<(), HarnessError> {
        let processes = processes.max(1);
        let mut next_id = 0;
        for i in 0..processes {
            let n = instances / processes + u32::from(i < instances % processes);
            if n == 0 {
                continue;
            }
            let cfg = self.config(role, i, n, next_id);
            next_id += n;
            self.spawn(cfg)?;
        }
        Ok(())
    }

    /// Waits until every consumer instance has been given partitions (so the load does not
    /// start during the group's first rebalance), at most `timeout`.
    pub fn wait_consumers_assigned(&self, timeout: Duration, shutdown: &Shutdown) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            // where the logs are kept elsewhere (containers), bring the consumers' over
            for p in self.processes.iter().filter(|p| p.role == Role::Consume) {
                p.runner.refresh_log(&p.log_path);
            }
            let all = self
                .processes
                .iter()
                .filter(|p| p.role == Role::Consume)
                .all(|p| {
                    workers::LogReader::open(&p.log_path)
                        .map(|mut r| {
                            std::iter::from_fn(|| r.next_event().ok().flatten())
                                .any(|e| e.kind == workers::EventKind::Assigned)
                        })
                        .unwrap_or(false)
                });
            if all {
                return true;
            }
            if shutdown.sleep(Duration::from_millis(100)) {
                return false;
            }
        }
        false
    }

    /// Sums the last status line of every worker of `role`.
    pub fn status(&self, role: Role) -> Status {
        Status::sum(
            self.processes
                .iter()
                .filter(|p| p.role == role)
                .map(|p| p.out_path.as_path()),
        )
    }

    /// SIGTERMs every worker of `role` and waits for them (SIGKILL after `timeout`).
    /// Returns workers that did not exit cleanly: each is a finding of the run.
    pub fn stop(&mut self, role: Role, timeout: Duration) -> Vec<FailedWorker> {
        for p in self.processes.iter_mut().filter(|p| p.role == role) {
            p.runner.terminate();
        }
        let deadline = Instant::now() + timeout;
        let mut problems = Vec::new();
        for p in self.processes.iter_mut().filter(|p| p.role == role) {
            loop {
                match p.runner.ended() {
                    Some(WorkerExit::Clean) => break,
                    Some(WorkerExit::Failed(how)) => {
                        problems.push(FailedWorker::of(p, &self.run_dir, how));
                        break;
                    }
                    None if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(50))
                    }
                    None => {
                        p.runner.kill();
                        let how = format!("did not stop within {timeout:?}; killed");
                        problems.push(FailedWorker::of(p, &self.run_dir, how));
                        break;
                    }
                }
            }
            p.runner.collect(&p.log_path);
        }
        problems
    }

    /// Runs the final read to completion (bounded by its own timeout plus a margin).
    pub fn final_read(&mut self) -> Result<(), HarnessError> {
        let cfg = self.config(Role::FinalRead, 0, 1, 0);
        self.run_final_read(cfg)
    }

    /// The same final read of another cluster (the run's target), into `log_path` — not
    /// among the run's logs, which are the first cluster's history.
    /// Reads only `topics` (their indexes in its log are in this list).
    pub fn final_read_of(
        &mut self,
        bootstrap: &str,
        topics: &[String],
        log_path: &std::path::Path,
    ) -> Result<(), HarnessError> {
        let mut cfg = self.config(Role::FinalRead, 1, 1, 0);
        cfg.topics.retain(|t| topics.contains(&t.name));
        cfg.bootstrap = bootstrap.to_string();
        cfg.log_path = log_path.to_path_buf();
        self.run_final_read(cfg)
    }

    fn run_final_read(&mut self, cfg: WorkerConfig) -> Result<(), HarnessError> {
        let limit = Duration::from_millis(cfg.final_read_timeout_ms) + Duration::from_secs(30);
        self.spawn(cfg)?;
        let p = self.processes.last_mut().expect("just started");
        let deadline = Instant::now() + limit;
        let result = loop {
            match p.runner.ended() {
                Some(WorkerExit::Clean) => break Ok(()),
                Some(WorkerExit::Failed(how)) => {
                    break Err(WorkersError::FinalRead {
                        how,
                        err_path: p.out_path.with_extension("err"),
                    }
                    .into())
                }
                None if Instant::now() > deadline => {
                    p.runner.kill();
                    break Err(WorkersError::FinalRead {
                        how: "did not finish in time; killed".into(),
                        err_path: p.out_path.with_extension("err"),
                    }
                    .into());
                }
                None => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        p.runner.collect(&p.log_path);
        result
    }

    /// What a `switch-bootstrap` step needs: the discovery file and the workers that watch
    /// it.
    pub fn switchboard(&self) -> Switchboard {
        Switchboard {
            path: discovery_path(&self.run_dir),
            status_paths: self
                .processes
                .iter()
                .filter(|p| p.role != Role::FinalRead)
                .map(|p| SwitchingWorker {
                    name: format!("{}-{}", role_name(p.role), p.index),
                    role: p.role,
                    status_path: p.out_path.clone(),
                    instances: p.instances,
                    discovery: p.runner.discovery(),
                })
                .collect(),
            content: DiscoveryContent {
                everyone: (self.bootstrap.clone(), 0),
                roles: Default::default(),
            },
        }
    }

    /// Stops every worker for good (a container's log copied out, the container
    /// removed). Idempotent.
    pub fn kill_all(&mut self) {
        for p in &mut self.processes {
            p.runner.dispose(&p.log_path);
        }
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// The `worker` subcommand of a role.
fn role_command(role: Role) -> &'static str {
    match role {
        Role::Produce => "produce",
        Role::Consume => "consume",
        Role::FinalRead => "final-read",
        Role::Copy => "copy",
    }
}

/// File-name form of a role.
pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Produce => "producer",
        Role::Consume => "consumer",
        Role::FinalRead => "final-read",
        Role::Copy => "copy",
    }
}

impl Status {
    /// The last status line a worker printed to `path`.
    pub fn last(path: &Path) -> Option<Status> {
        let text = std::fs::read_to_string(path).ok()?;
        text.lines()
            .rev()
            .find_map(|l| serde_json::from_str(l).ok())
    }

    /// The sum of the last status lines of several workers.
    pub fn sum<'a>(paths: impl Iterator<Item = &'a Path>) -> Status {
        let mut t = Status::default();
        for s in paths.filter_map(Status::last) {
            t.sent += s.sent;
            t.acked += s.acked;
            t.failed += s.failed;
            t.indeterminate += s.indeterminate;
            t.received += s.received;
            t.errors += s.errors;
            t.switches += s.switches;
        }
        t
    }
}
