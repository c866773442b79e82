//! The workload: `worker` processes started from the harness, their configs, status and
//! stop. Each worker gets a JSON [`WorkerConfig`] and writes its binary log to
//! `logs/ROLE-N.log`, its status lines to `workers/ROLE-N.out`.
//!
//! On the Docker backend each worker process is a container of the worker image on the
//! run's network: its config and the discovery file are copied in, its output is streamed
//! into `workers/ROLE-N.out`/`.err` as it comes, and its log is copied out to
//! `logs/ROLE-N.log` as soon as the container stops — when it is stopped, and when it dies
//! on its own — and once more at the end. Its labels tell `harness cleanup` where the log
//! goes, so even a killed run's worker logs reach the run directory.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use workers::{ConsumerSettings, Role, TopicSpec, WorkerConfig};

use crate::cluster::WorkerPlacement;
use crate::error::HarnessError;
use crate::scenario::Scenario;
use crate::shutdown::Shutdown;

/// Where a worker's files are inside its container.
const CONTAINER_DIR: &str = "/kmh";

/// How a worker runs.
enum Runner {
    /// A child process of the harness.
    Process(Child),
    /// A container; `follow` streams its output and copies its log out once it stops.
    Container {
        /// Container name.
        name: String,
        /// Its log inside the container.
        log_inside: String,
        /// The background task following it.
        follow: Option<tokio::task::JoinHandle<()>>,
        /// Its log was copied out after it stopped (nothing more to copy).
        collected: bool,
    },
}

/// How a worker ended.
enum Ended {
    /// Exit code 0.
    Clean,
    /// Anything else, in words.
    Failed(String),
}

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
    runner: Runner,
}

impl WorkerProcess {
    fn name(&self) -> String {
        format!("{}-{}", role_name(self.role), self.index)
    }

    /// How it ended, or `None` while it runs.
    fn ended(&mut self, placement: Option<&WorkerPlacement>) -> Option<Ended> {
        match &mut self.runner {
            Runner::Process(child) => match child.try_wait() {
                Ok(None) => None,
                Ok(Some(st)) if st.success() => Some(Ended::Clean),
                Ok(Some(st)) => Some(Ended::Failed(format!("exited with {st}"))),
                Err(e) => Some(Ended::Failed(e.to_string())),
            },
            Runner::Container { name, .. } => {
                let engine = &placement?.engine;
                match engine.status(name) {
                    Ok(Some(s)) if s.running => None,
                    Ok(Some(s)) if s.exit_code == Some(0) => Some(Ended::Clean),
                    Ok(Some(s)) => Some(Ended::Failed(format!(
                        "container {} with exit code {}",
                        s.status,
                        s.exit_code.unwrap_or(-1)
                    ))),
                    Ok(None) => Some(Ended::Failed("container gone".into())),
                    Err(e) => Some(Ended::Failed(e.to_string())),
                }
            }
        }
    }

    /// SIGTERM (the worker flushes and exits).
    fn terminate(&mut self, placement: Option<&WorkerPlacement>) {
        match &mut self.runner {
            Runner::Process(child) => {
                if matches!(child.try_wait(), Ok(None)) {
                    // SAFETY: kill(2) on our unreaped child.
                    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
                }
            }
            Runner::Container { name, .. } => {
                if let Some(p) = placement {
                    let _ = p.engine.kill(name, "SIGTERM");
                }
            }
        }
    }

    /// SIGKILL and wait.
    fn kill(&mut self, placement: Option<&WorkerPlacement>) {
        match &mut self.runner {
            Runner::Process(child) => {
                let _ = child.kill();
                let _ = child.wait();
            }
            Runner::Container { name, .. } => {
                if let Some(p) = placement {
                    let _ = p.engine.kill(name, "SIGKILL");
                    let _ = p.engine.wait_exit(name, Duration::from_secs(10));
                }
            }
        }
    }

    /// A stopped container's log and output, copied out (the follower does it; this
    /// waits for it, and copies the log again in case it could not).
    fn collect(&mut self, placement: Option<&WorkerPlacement>) {
        let Some(p) = placement else { return };
        if let Runner::Container {
            name,
            log_inside,
            follow,
            collected,
        } = &mut self.runner
        {
            if *collected {
                return;
            }
            if let Some(h) = follow.take() {
                p.engine.join(h, Duration::from_secs(30));
            }
            match p.engine.download(name, log_inside, &self.log_path) {
                Ok(_) => *collected = true,
                Err(e) => tracing::warn!("copying the log of {name} out: {e}"),
            }
        }
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

/// Rewrites a discovery file atomically (a worker never reads half of it).
pub fn write_discovery(path: &Path, bootstrap: &str) -> Result<(), HarnessError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{bootstrap}\n"))?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// The discovery file and the workers watching it.
#[derive(Clone, Default)]
pub struct Switchboard {
    /// The discovery file.
    pub path: PathBuf,
    /// Every producer and consumer process.
    pub status_paths: Vec<SwitchingWorker>,
    /// The engine, when the workers are containers (each has its copy of the file).
    pub engine: Option<std::sync::Arc<crate::cluster::docker::Engine>>,
}

/// A worker that watches the discovery file.
#[derive(Debug, Clone)]
pub struct SwitchingWorker {
    /// `producer-0`, …
    pub name: String,
    /// Its status lines.
    pub status_path: PathBuf,
    /// Its client instances (each reconnects once per switch).
    pub instances: u32,
    /// Its container, on the Docker backend.
    pub container: Option<String>,
}

impl Switchboard {
    /// Points the workers at `bootstrap`, then waits until every client instance of every
    /// worker has reconnected (the workers' status `switches` counts reconnects).
    pub fn switch(
        &self,
        bootstrap: &str,
        timeout: Duration,
        shutdown: &Shutdown,
    ) -> Result<(), HarnessError> {
        let switches = |w: &SwitchingWorker| {
            Status::last(&w.status_path)
                .map(|s| s.switches)
                .unwrap_or(0)
        };
        let before: Vec<u64> = self.status_paths.iter().map(switches).collect();
        write_discovery(&self.path, bootstrap)?;
        if let Some(engine) = &self.engine {
            // each container's copy: written beside it, then renamed (never read half-way)
            let dir = format!("{CONTAINER_DIR}/discovery");
            for c in self
                .status_paths
                .iter()
                .filter_map(|w| w.container.as_deref())
            {
                engine.upload(
                    c,
                    &dir,
                    &[(
                        "bootstrap.tmp".into(),
                        format!("{bootstrap}\n").into_bytes(),
                    )],
                )?;
                let (code, out) = engine.exec(
                    c,
                    &[
                        "mv",
                        "-f",
                        &format!("{dir}/bootstrap.tmp"),
                        &format!("{dir}/bootstrap"),
                    ],
                )?;
                if code != 0 {
                    return Err(HarnessError::Workers(format!(
                        "updating the discovery file in {c}: {}",
                        out.trim()
                    )));
                }
            }
        }
        let deadline = Instant::now() + timeout;
        loop {
            let waiting: Vec<&str> = self
                .status_paths
                .iter()
                .zip(&before)
                .filter(|(w, b)| switches(w) < **b + u64::from(w.instances))
                .map(|(w, _)| w.name.as_str())
                .collect();
            if waiting.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(HarnessError::Workers(format!(
                    "{} did not reconnect to {bootstrap} within {timeout:?}",
                    waiting.join(", ")
                )));
            }
            if shutdown.sleep(Duration::from_millis(250)) {
                return Err(HarnessError::Interrupted);
            }
        }
    }
}

/// Locates the `worker` binary: `$KMH_WORKER_BIN`, else next to the running harness.
pub fn worker_binary() -> Result<PathBuf, HarnessError> {
    if let Some(p) = std::env::var_os("KMH_WORKER_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .ok_or_else(|| HarnessError::Workers("cannot locate the harness binary".into()))?;
    for cand in [dir.join("worker"), dir.join("../worker")] {
        if cand.exists() {
            return Ok(cand);
        }
    }
    Err(HarnessError::Missing {
        what: format!("no `worker` binary next to {}", exe.display()),
        hint:
            "build the whole workspace (`cargo build --release --workspace`), or set KMH_WORKER_BIN"
                .into(),
    })
}

/// Starts workers and keeps track of them.
pub struct Workload {
    run_id: String,
    run_dir: PathBuf,
    /// What producers and consumers are first given (the discovery file's first content).
    bootstrap: String,
    /// What the final read is given: every broker of the cluster.
    final_bootstrap: String,
    scenario: Scenario,
    binary: PathBuf,
    /// Every worker started, in start order.
    pub processes: Vec<WorkerProcess>,
    /// Where worker containers go (Docker backend); `None`: worker processes here.
    placement: Option<WorkerPlacement>,
}

impl Workload {
    /// Prepares (starts nothing) and writes the discovery file with `bootstrap`.
    pub fn new(
        run_id: &str,
        run_dir: &Path,
        bootstrap: &str,
        final_bootstrap: &str,
        scenario: &Scenario,
        placement: Option<WorkerPlacement>,
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
            binary: worker_binary()?,
            processes: Vec::new(),
            placement,
        })
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
                group_id: format!("kmh-{}", self.run_id),
                session_timeout_ms: w.consumer_session_timeout_ms,
            },
            final_read_timeout_ms: w.final_read_timeout.as_millis() as u64,
            client_overrides: Default::default(),
        }
    }

    fn spawn(&mut self, cfg: WorkerConfig) -> Result<(), HarnessError> {
        if let Some(placement) = self.placement.clone() {
            return self.spawn_container(cfg, placement);
        }
        let name = format!("{}-{}", role_name(cfg.role), cfg.worker_index);
        let cfg_path = self.run_dir.join("workers").join(format!("{name}.json"));
        std::fs::write(
            &cfg_path,
            serde_json::to_vec_pretty(&cfg).map_err(anyhow::Error::from)?,
        )?;
        let out_path = self.run_dir.join("workers").join(format!("{name}.out"));
        let err_path = self.run_dir.join("workers").join(format!("{name}.err"));
        let child = Command::new(&self.binary)
            .arg(role_command(cfg.role))
            .arg("--config")
            .arg(&cfg_path)
            .arg("--tag")
            .arg(format!("kmh.run={}", self.run_id))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out_path)?)
            .stderr(std::fs::File::create(&err_path)?)
            .process_group(0)
            .spawn()
            .map_err(|e| {
                HarnessError::Workers(format!("starting {}: {e}", self.binary.display()))
            })?;
        self.processes.push(WorkerProcess {
            role: cfg.role,
            index: cfg.worker_index,
            out_path,
            log_path: cfg.log_path,
            instances: cfg.instances,
            runner: Runner::Process(child),
        });
        Ok(())
    }

    /// Starts a worker as a container (Docker backend): the config it gets names paths
    /// inside the container; `workers/NAME.json` records it as given.
    fn spawn_container(
        &mut self,
        cfg: WorkerConfig,
        p: WorkerPlacement,
    ) -> Result<(), HarnessError> {
        let name = format!("{}-{}", role_name(cfg.role), cfg.worker_index);
        let container = crate::cluster::docker::container_name(&self.run_id, &name);
        let address = p.addresses.get(self.processes.len()).ok_or_else(|| {
            HarnessError::Workers(format!(
                "more than {} worker containers on one run network",
                p.addresses.len()
            ))
        })?;
        let local_log = cfg.log_path.clone();
        let log_inside = format!("{CONTAINER_DIR}/logs/{name}.log");
        let mut inside = cfg.clone();
        inside.log_path = PathBuf::from(&log_inside);
        inside.bootstrap_file = cfg
            .bootstrap_file
            .as_ref()
            .map(|_| PathBuf::from(format!("{CONTAINER_DIR}/discovery/bootstrap")));
        let json = serde_json::to_vec_pretty(&inside).map_err(anyhow::Error::from)?;
        std::fs::write(
            self.run_dir.join("workers").join(format!("{name}.json")),
            &json,
        )?;
        let labels = std::collections::HashMap::from([
            (
                crate::cluster::docker::RUN_LABEL.to_string(),
                self.run_id.clone(),
            ),
            ("kmh.worker".to_string(), name.clone()),
            (
                crate::cluster::docker::LOG_DEST_LABEL.to_string(),
                local_log.display().to_string(),
            ),
            (
                crate::cluster::docker::LOG_SOURCE_LABEL.to_string(),
                log_inside.clone(),
            ),
        ]);
        p.engine
            .create_container(&crate::cluster::docker::ContainerSpec {
                name: container.clone(),
                image: crate::cluster::docker::images::WORKER_IMAGE.into(),
                cmd: vec![
                    "worker".into(),
                    role_command(cfg.role).into(),
                    "--config".into(),
                    format!("{CONTAINER_DIR}/worker.json"),
                    "--tag".into(),
                    format!("kmh.run={}", self.run_id),
                ],
                labels,
                network: p.network.clone(),
                address: address.to_string(),
                hostname: name.clone(),
                working_dir: Some(CONTAINER_DIR.into()),
                net_admin: false,
            })?;
        let mut files = vec![
            ("worker.json".to_string(), json),
            // the worker makes its log file, not the directory
            ("logs/.keep".to_string(), Vec::new()),
        ];
        if cfg.bootstrap_file.is_some() {
            files.push((
                "discovery/bootstrap".into(),
                std::fs::read(discovery_path(&self.run_dir))?,
            ));
        }
        p.engine.upload(&container, CONTAINER_DIR, &files)?;
        p.engine.start(&container)?;
        let out_path = self.run_dir.join("workers").join(format!("{name}.out"));
        let err_path = self.run_dir.join("workers").join(format!("{name}.err"));
        let follow = p.engine.follow(
            &container,
            out_path.clone(),
            err_path,
            vec![(log_inside.clone(), local_log.clone())],
        );
        self.processes.push(WorkerProcess {
            role: cfg.role,
            index: cfg.worker_index,
            out_path,
            log_path: local_log,
            instances: cfg.instances,
            runner: Runner::Container {
                name: container,
                log_inside,
                follow: Some(follow),
                collected: false,
            },
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
            if let Some(placement) = &self.placement {
                // the logs are in the containers: bring the consumers' over (small now)
                for p in self.processes.iter().filter(|p| p.role == Role::Consume) {
                    if let Runner::Container {
                        name, log_inside, ..
                    } = &p.runner
                    {
                        let _ = placement.engine.download(name, log_inside, &p.log_path);
                    }
                }
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
            if shutdown.sleep(Duration::from_millis(250)) {
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
    /// Returns workers that did not exit cleanly.
    pub fn stop(&mut self, role: Role, timeout: Duration) -> Vec<String> {
        let placement = self.placement.clone();
        for p in self.processes.iter_mut().filter(|p| p.role == role) {
            p.terminate(placement.as_ref());
        }
        let deadline = Instant::now() + timeout;
        let mut problems = Vec::new();
        for p in self.processes.iter_mut().filter(|p| p.role == role) {
            loop {
                match p.ended(placement.as_ref()) {
                    Some(Ended::Clean) => break,
                    Some(Ended::Failed(how)) => {
                        problems.push(format!("{} {how}", p.name()));
                        break;
                    }
                    None if Instant::now() < deadline => {
                        std::thread::sleep(Duration::from_millis(50))
                    }
                    None => {
                        p.kill(placement.as_ref());
                        problems.push(format!(
                            "{} did not stop within {timeout:?}; killed",
                            p.name()
                        ));
                        break;
                    }
                }
            }
            p.collect(placement.as_ref());
        }
        problems
    }

    /// Runs the final read to completion (bounded by its own timeout plus a margin).
    pub fn final_read(&mut self) -> Result<(), HarnessError> {
        let cfg = self.config(Role::FinalRead, 0, 1, 0);
        let limit = Duration::from_millis(cfg.final_read_timeout_ms) + Duration::from_secs(30);
        self.spawn(cfg)?;
        let placement = self.placement.clone();
        let p = self.processes.last_mut().unwrap();
        let deadline = Instant::now() + limit;
        let result = loop {
            match p.ended(placement.as_ref()) {
                Some(Ended::Clean) => break Ok(()),
                Some(Ended::Failed(how)) => {
                    break Err(HarnessError::Workers(format!(
                        "final read {how}; see {}",
                        p.out_path.with_extension("err").display()
                    )))
                }
                None if Instant::now() > deadline => {
                    p.kill(placement.as_ref());
                    break Err(HarnessError::Workers(
                        "final read did not finish in time; killed".into(),
                    ));
                }
                None => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        p.collect(placement.as_ref());
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
                    status_path: p.out_path.clone(),
                    instances: p.instances,
                    container: match &p.runner {
                        Runner::Container { name, .. } => Some(name.clone()),
                        Runner::Process(_) => None,
                    },
                })
                .collect(),
            engine: self.placement.as_ref().map(|p| p.engine.clone()),
        }
    }

    /// Kills every worker still running; worker containers are stopped (their logs
    /// copied out) and removed. Idempotent.
    pub fn kill_all(&mut self) {
        let placement = self.placement.clone();
        for p in &mut self.processes {
            let container = match &p.runner {
                Runner::Container { name, .. } => Some(name.clone()),
                Runner::Process(_) => None,
            };
            match (container, &placement) {
                (Some(name), Some(pl)) => {
                    // SIGTERM with a short grace: the log keeps its last flush
                    let _ = pl.engine.stop(&name, Duration::from_secs(3));
                    p.collect(Some(pl));
                    let _ = pl.engine.remove(&name);
                }
                _ => {
                    if p.ended(None).is_none() {
                        p.kill(None);
                    }
                }
            }
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
    }
}

/// File-name form of a role.
pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Produce => "producer",
        Role::Consume => "consumer",
        Role::FinalRead => "final-read",
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
