//! Containers as hosts (the host seam of `cluster::host`): a node's process is a container
//! of the node image, made when the node is prepared and started and stopped through the
//! engine; its file system (data included) lives across restarts, as a host's disk would.
//! Configuration files are written in the run directory and copied in before each start
//! (copying, not bind mounts, is what lets the engine be remote); logs come out when the
//! container stops. Network faults run inside the container (`exec`, NET_ADMIN).

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::{ContainerSpec, Engine, RUN_LABEL};
use crate::cluster::host::{
    DiscoveryCopy, HostShell, NodeHost, NodeProcess, Signal, WorkerExit, WorkerHost, WorkerLaunch,
    WorkerRunner,
};
use crate::cluster::Distribution;
use crate::error::{HarnessError, NetworkError, WorkersError};

/// Where a node's directory is inside its container.
const CONTAINER_DIR: &str = "/kmh/node";
/// The configuration files a node reads (relative to its directory): what is copied into
/// its container before each start.
const CONFIG_FILES: &[&str] = &[
    "zoo.cfg",
    "server.properties",
    "log4j.properties",
    "log4j2.properties",
    "data/myid",
];

/// A node's future container on the run's network.
pub struct ContainerHost {
    /// The engine.
    pub engine: Arc<Engine>,
    /// Container name.
    pub name: String,
    /// Node image.
    pub image: String,
    /// The run's network.
    pub network: String,
}

impl NodeHost for ContainerHost {
    fn view(&self, _dir: &Path, _dist: &Distribution) -> (PathBuf, String) {
        (
            PathBuf::from(CONTAINER_DIR),
            format!("{}/*", super::images::NODE_LIBS),
        )
    }

    fn process(
        self: Box<Self>,
        run_id: &str,
        node: &str,
        address: Ipv4Addr,
        jvm: Vec<String>,
    ) -> Result<Box<dyn NodeProcess>, HarnessError> {
        self.engine.create_container(&ContainerSpec {
            name: self.name.clone(),
            image: self.image,
            cmd: jvm,
            labels: HashMap::from([
                (RUN_LABEL.to_string(), run_id.to_string()),
                ("kmh.node".to_string(), node.to_string()),
            ]),
            network: self.network,
            address: address.to_string(),
            hostname: node.to_string(),
            working_dir: Some(CONTAINER_DIR.into()),
            net_admin: true,
        })?;
        Ok(Box::new(ContainerProcess {
            engine: self.engine,
            name: self.name,
        }))
    }
}

/// A node's container.
struct ContainerProcess {
    engine: Arc<Engine>,
    name: String,
}

impl NodeProcess for ContainerProcess {
    fn start(&mut self, dir: &Path) -> Result<(), HarnessError> {
        let mut files = Vec::new();
        for f in CONFIG_FILES {
            if let Ok(data) = std::fs::read(dir.join(f)) {
                files.push((f.to_string(), data));
            }
        }
        self.engine.upload(&self.name, CONTAINER_DIR, &files)?;
        self.engine.start(&self.name)
    }

    fn install(&self, files: &[(String, Vec<u8>)]) -> Result<(), HarnessError> {
        self.engine.upload(&self.name, CONTAINER_DIR, files)
    }

    fn is_running(&mut self) -> bool {
        self.engine
            .status(&self.name)
            .ok()
            .flatten()
            .is_some_and(|s| s.running)
    }

    fn exit_status(&mut self) -> Result<Option<String>, HarnessError> {
        Ok(match self.engine.status(&self.name)? {
            Some(st) if !st.running && st.status != "created" => Some(format!(
                "container {}, exit code {}",
                st.status,
                st.exit_code.unwrap_or(-1)
            )),
            _ => None,
        })
    }

    /// SIGSTOP and SIGCONT are the engine's pause and unpause (the cgroup freezer); the
    /// others go through the container's init.
    fn signal(&mut self, sig: Signal) -> Result<(), HarnessError> {
        let paused = self.engine.status(&self.name)?.is_some_and(|s| s.paused);
        match sig {
            Signal::Stop if !paused => self.engine.pause(&self.name),
            Signal::Cont if paused => self.engine.unpause(&self.name),
            Signal::Stop | Signal::Cont => Ok(()),
            Signal::Term => self.engine.kill(&self.name, "SIGTERM"),
            Signal::Kill => self.engine.kill(&self.name, "SIGKILL"),
        }
    }

    fn kill(&mut self) -> Result<(), HarnessError> {
        if self.engine.status(&self.name)?.is_some_and(|s| s.running) {
            self.engine.kill(&self.name, "SIGKILL")?;
            self.engine.wait_exit(&self.name, Duration::from_secs(30))?;
        }
        Ok(())
    }

    /// Copies `server.log`, and the container's output as `console.log`, into `dir`.
    fn save_logs(&self, dir: &Path) {
        let _ = self.engine.download(
            &self.name,
            &format!("{CONTAINER_DIR}/server.log"),
            &dir.join("server.log"),
        );
        let _ = self.engine.save_output(
            &self.name,
            &dir.join("console.log"),
            &dir.join("console.err"),
        );
    }

    fn dispose(&mut self, dir: &Path) {
        let _ = self.kill();
        self.save_logs(dir);
        let _ = self.engine.remove(&self.name);
    }
}

/// A container's network context: commands run through the engine's `exec`.
pub struct ContainerShell {
    /// The engine.
    pub engine: Arc<Engine>,
    /// Container name.
    pub name: String,
}

impl HostShell for ContainerShell {
    fn exec(&self, argv: &[&str]) -> Result<String, NetworkError> {
        match self.engine.exec(&self.name, argv) {
            Ok((0, out)) => Ok(out),
            Ok((code, out)) => Err(NetworkError::Command {
                command: argv.join(" "),
                host: Some(self.name.clone()),
                output: format!("exit code {code}: {}", out.trim()),
            }),
            Err(e) => Err(NetworkError::Host {
                command: argv.join(" "),
                host: self.name.clone(),
                source: Box::new(e),
            }),
        }
    }

    fn is_up(&self) -> bool {
        self.engine
            .status(&self.name)
            .ok()
            .flatten()
            .is_some_and(|s| s.running)
    }

    fn network_outlives_process(&self) -> bool {
        false
    }

    fn far_end(&self) -> Option<&str> {
        None
    }
}

/// Where a worker's files are inside its container.
const WORKER_DIR: &str = "/kmh";

/// Worker processes as containers of the worker image on the run's network, each with its
/// own address (the upper half of the run's /24). A worker's config and the discovery file
/// are copied in; its output is streamed into the run directory as it comes, and its log
/// copied out as soon as the container stops. Its labels tell `harness cleanup` where the
/// log goes, so even a killed run's worker logs reach the run directory.
pub struct ContainerWorkers {
    /// The engine.
    pub engine: Arc<Engine>,
    /// The run's network.
    pub network: String,
    /// Addresses for worker containers, in order of start.
    pub addresses: Vec<Ipv4Addr>,
    /// The run's discovery file (copied into each container that watches one).
    pub discovery: PathBuf,
}

impl WorkerHost for ContainerWorkers {
    fn launch(&self, w: &WorkerLaunch<'_>) -> Result<Box<dyn WorkerRunner>, HarnessError> {
        let container = super::container_name(w.run_id, w.name);
        let address = self
            .addresses
            .get(w.ordinal)
            .ok_or(WorkersError::NoRoom(self.addresses.len()))?;
        let local_log = w.config.log_path.clone();
        let log_inside = format!("{WORKER_DIR}/logs/{}.log", w.name);
        let mut inside = w.config.clone();
        inside.log_path = PathBuf::from(&log_inside);
        inside.bootstrap_file = w
            .config
            .bootstrap_file
            .as_ref()
            .map(|_| PathBuf::from(format!("{WORKER_DIR}/discovery/bootstrap")));
        let json = serde_json::to_vec_pretty(&inside).map_err(anyhow::Error::from)?;
        // the run directory records the config as the worker is given it
        std::fs::write(w.config_path, &json)?;
        let labels = HashMap::from([
            (RUN_LABEL.to_string(), w.run_id.to_string()),
            ("kmh.worker".to_string(), w.name.to_string()),
            (
                super::LOG_DEST_LABEL.to_string(),
                local_log.display().to_string(),
            ),
            (super::LOG_SOURCE_LABEL.to_string(), log_inside.clone()),
        ]);
        self.engine.create_container(&ContainerSpec {
            name: container.clone(),
            image: super::images::WORKER_IMAGE.into(),
            cmd: vec![
                "worker".into(),
                w.command.into(),
                "--config".into(),
                format!("{WORKER_DIR}/worker.json"),
                "--tag".into(),
                format!("kmh.run={}", w.run_id),
            ],
            labels,
            network: self.network.clone(),
            address: address.to_string(),
            hostname: w.name.to_string(),
            working_dir: Some(WORKER_DIR.into()),
            net_admin: false,
        })?;
        let mut files = vec![
            ("worker.json".to_string(), json),
            // the worker makes its log file, not the directory
            ("logs/.keep".to_string(), Vec::new()),
        ];
        if w.config.bootstrap_file.is_some() {
            files.push((
                "discovery/bootstrap".into(),
                std::fs::read(&self.discovery)?,
            ));
        }
        self.engine.upload(&container, WORKER_DIR, &files)?;
        self.engine.start(&container)?;
        let follow = self.engine.follow(
            &container,
            w.out_path.to_path_buf(),
            w.err_path.to_path_buf(),
            vec![(log_inside.clone(), local_log)],
        );
        Ok(Box::new(ContainerWorker {
            engine: self.engine.clone(),
            name: container,
            log_inside,
            follow: Some(follow),
            collected: false,
        }))
    }
}

/// A worker container; `follow` streams its output and copies its log out once it stops.
struct ContainerWorker {
    engine: Arc<Engine>,
    name: String,
    /// Its log inside the container.
    log_inside: String,
    /// The background task following it.
    follow: Option<tokio::task::JoinHandle<()>>,
    /// Its log was copied out after it stopped (nothing more to copy).
    collected: bool,
}

impl WorkerRunner for ContainerWorker {
    fn ended(&mut self) -> Option<WorkerExit> {
        match self.engine.status(&self.name) {
            Ok(Some(s)) if s.running => None,
            Ok(Some(s)) if s.exit_code == Some(0) => Some(WorkerExit::Clean),
            Ok(Some(s)) => Some(WorkerExit::Failed(format!(
                "container {} with exit code {}",
                s.status,
                s.exit_code.unwrap_or(-1)
            ))),
            Ok(None) => Some(WorkerExit::Failed("container gone".into())),
            Err(e) => Some(WorkerExit::Failed(e.to_string())),
        }
    }

    fn terminate(&mut self) {
        let _ = self.engine.kill(&self.name, "SIGTERM");
    }

    fn kill(&mut self) {
        let _ = self.engine.kill(&self.name, "SIGKILL");
        let _ = self.engine.wait_exit(&self.name, Duration::from_secs(10));
    }

    /// The follower copies the log out when the container stops; this waits for it, and
    /// copies the log again in case it could not.
    fn collect(&mut self, log_path: &Path) {
        if self.collected {
            return;
        }
        if let Some(h) = self.follow.take() {
            self.engine.join(h, Duration::from_secs(30));
        }
        match self.engine.download(&self.name, &self.log_inside, log_path) {
            Ok(_) => self.collected = true,
            Err(e) => tracing::warn!("copying the log of {} out: {e}", self.name),
        }
    }

    fn refresh_log(&self, log_path: &Path) {
        let _ = self.engine.download(&self.name, &self.log_inside, log_path);
    }

    fn discovery(&self) -> Option<Arc<dyn DiscoveryCopy>> {
        Some(Arc::new(ContainerDiscovery {
            engine: self.engine.clone(),
            name: self.name.clone(),
        }))
    }

    /// SIGTERM with a short grace (the log keeps its last flush), log copied out, container
    /// removed.
    fn dispose(&mut self, log_path: &Path) {
        let _ = self.engine.stop(&self.name, Duration::from_secs(3));
        self.collect(log_path);
        let _ = self.engine.remove(&self.name);
    }
}

/// A worker container's copy of the discovery file.
struct ContainerDiscovery {
    engine: Arc<Engine>,
    name: String,
}

impl DiscoveryCopy for ContainerDiscovery {
    /// Written beside the file, then renamed over it (never read half-way).
    fn write(&self, bootstrap: &str) -> Result<(), HarnessError> {
        let dir = format!("{WORKER_DIR}/discovery");
        self.engine.upload(
            &self.name,
            &dir,
            &[(
                "bootstrap.tmp".into(),
                format!("{bootstrap}\n").into_bytes(),
            )],
        )?;
        let (code, out) = self.engine.exec(
            &self.name,
            &[
                "mv",
                "-f",
                &format!("{dir}/bootstrap.tmp"),
                &format!("{dir}/bootstrap"),
            ],
        )?;
        if code != 0 {
            return Err(WorkersError::Discovery {
                container: self.name.clone(),
                output: out.trim().to_string(),
            }
            .into());
        }
        Ok(())
    }
}
