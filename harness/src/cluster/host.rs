//! The host seam: what a backend gives the cluster. A host is a place with an address that
//! can run a node's process (start it, signal it, tell when it exited, give back its logs)
//! and run a command in its network context (where a fault's firewall rules and qdiscs
//! go). Nodes ([`super::Node`]) and the fault engine ([`super::netns::Network`]) only talk
//! to these traits; each backend implements them once:
//!
//! | backend | [`NodeHost`] / [`NodeProcess`] | [`HostShell`] |
//! |---|---|---|
//! | local, loopback | [`LocalHost`]: a child process | none (no network faults) |
//! | local, namespaces | [`LocalHost`] with `ip netns exec NS` before the command | [`NamespaceShell`] |
//! | docker | `docker::host::ContainerHost`: a container | `docker::host::ContainerShell` (`exec`) |
//!
//! Workers run on a [`WorkerHost`] ([`LocalWorkers`]: children here; Docker: a container
//! per worker process), each a [`WorkerRunner`]. A new backend (SSH hosts, EC2 instances)
//! adds one file implementing these traits.

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use super::Distribution;
use crate::error::{HarnessError, NetworkError, WorkersError};

/// The signals the harness sends a node (turmoil-like verbs map onto them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGSTOP: the process holds its sessions and sockets but answers nothing.
    Stop,
    /// SIGCONT.
    Cont,
    /// SIGTERM: a broker's controlled shutdown.
    Term,
    /// SIGKILL.
    Kill,
}

impl Signal {
    fn number(self) -> libc::c_int {
        match self {
            Signal::Stop => libc::SIGSTOP,
            Signal::Cont => libc::SIGCONT,
            Signal::Term => libc::SIGTERM,
            Signal::Kill => libc::SIGKILL,
        }
    }
}

/// Where a node will run, before its process exists: how the node sees its files, and how
/// its process is made.
pub trait NodeHost {
    /// The node's directory and the distribution's classpath as the node sees them
    /// (configuration files name these paths).
    fn view(&self, dir: &Path, dist: &Distribution) -> (PathBuf, String);
    /// The JVM flags that map the class data sharing archive of `kind` (`cluster::cds`)
    /// for a node of run `run_id` whose files are in `dir`, or record its class list;
    /// none when the host has no archive. By default: this machine's archive, when the node
    /// sees the distribution at its own path.
    fn class_archive_flags(
        &self,
        dir: &Path,
        dist: &Distribution,
        kind: &str,
        run_id: &str,
    ) -> Vec<String> {
        let (seen, classpath) = self.view(dir, dist);
        if super::cds::shareable(dir, &seen, &classpath, dist) {
            super::cds::ClassArchive::of(dist, kind).jvm_flags(run_id)
        } else {
            Vec::new()
        }
    }
    /// The node's process for this JVM command line (made, not started).
    fn process(
        self: Box<Self>,
        run_id: &str,
        node: &str,
        address: Ipv4Addr,
        jvm: Vec<String>,
    ) -> Result<Box<dyn NodeProcess>, HarnessError>;
}

/// A node's process on its host.
pub trait NodeProcess: Send {
    /// Starts it; its configuration files are in `dir` (copied in first where the host
    /// has a file system of its own).
    fn start(&mut self, dir: &Path) -> Result<(), HarnessError>;
    /// True while it runs (paused counts as running).
    fn is_running(&mut self) -> bool;
    /// How it ended, once it has (`None` while it runs or before its first start).
    fn exit_status(&mut self) -> Result<Option<String>, HarnessError>;
    /// Sends a signal to the running process.
    fn signal(&mut self, sig: Signal) -> Result<(), HarnessError>;
    /// SIGKILL and wait for the exit; nothing when not running.
    fn kill(&mut self) -> Result<(), HarnessError>;
    /// Brings its logs into `dir` (nothing to do where it writes there itself).
    fn save_logs(&self, dir: &Path);
    /// Kills it and removes what the host kept of it (its logs saved first).
    fn dispose(&mut self, dir: &Path);
    /// Its process id on this machine, while it runs here as a child (local processes,
    /// namespaces); `None` elsewhere.
    fn local_pid(&self) -> Option<u32> {
        None
    }
    /// Puts `files` (paths relative to the node's directory) into the directory its
    /// process sees, before its first start: a KRaft node's formatted storage. Only where
    /// that directory is not this machine's own.
    fn install(&self, _files: &[(String, Vec<u8>)]) -> Result<(), HarnessError> {
        Err(HarnessError::Cluster(
            "this backend's nodes cannot take files formatted on this machine".into(),
        ))
    }
    /// Runs the distribution `to` instead of `from` from its next start (a rolling
    /// upgrade). Only where the harness makes the command line on this machine; a
    /// container's or a remote host's binaries are fixed when it is made.
    fn switch_distribution(
        &mut self,
        _from: &Distribution,
        _to: &Distribution,
    ) -> Result<(), HarnessError> {
        Err(HarnessError::Cluster(
            "this backend's nodes keep the binaries they were made with".into(),
        ))
    }
}

/// Runs commands in a host's network context: where its firewall rules and qdiscs live.
pub trait HostShell: Send + Sync {
    /// Runs a command to its end: its output, or what went wrong.
    fn exec(&self, argv: &[&str]) -> Result<String, NetworkError>;
    /// True when commands can run now (a stopped container has no network to change; its
    /// faults are set when it starts).
    fn is_up(&self) -> bool;
    /// True when the network context outlives the node's process (a namespace does), so
    /// faults need not be set again at each start (a container's network is new each time).
    fn network_outlives_process(&self) -> bool;
    /// The root-namespace end of the host's link, when the harness can shape it: traffic
    /// the host receives is then delayed or limited there (both ends of the veth). `None`
    /// where only the host's own side is reachable (a container): an ingress policer and
    /// all of a delay on what it sends instead.
    fn far_end(&self) -> Option<&str>;
}

/// A node as a child process of the harness on this machine, run through `prefix` (empty on
/// a loopback host; `ip netns exec NS` on a namespace host, so the pid is the JVM's).
pub struct LocalHost {
    /// Command prefix.
    pub prefix: Vec<String>,
}

impl NodeHost for LocalHost {
    fn view(&self, dir: &Path, dist: &Distribution) -> (PathBuf, String) {
        (dir.to_path_buf(), dist.classpath())
    }

    fn process(
        self: Box<Self>,
        _run_id: &str,
        node: &str,
        _address: Ipv4Addr,
        jvm: Vec<String>,
    ) -> Result<Box<dyn NodeProcess>, HarnessError> {
        let mut command = self.prefix;
        command.extend(jvm);
        Ok(Box::new(LocalProcess {
            node: node.to_string(),
            command,
            child: None,
        }))
    }
}

/// A node's JVM as a child process; stdout and stderr appended to `console.log`.
struct LocalProcess {
    node: String,
    command: Vec<String>,
    child: Option<Child>,
}

impl NodeProcess for LocalProcess {
    fn start(&mut self, dir: &Path) -> Result<(), HarnessError> {
        let console = File::options()
            .create(true)
            .append(true)
            .open(dir.join("console.log"))?;
        let child = Command::new(&self.command[0])
            .args(&self.command[1..])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(console.try_clone()?)
            .stderr(console)
            // its own process group: a Ctrl-C at the terminal reaches the harness only,
            // which then tears the cluster down in order
            .process_group(0)
            .spawn()
            .map_err(|e| HarnessError::Cluster(format!("starting {}: {e}", self.node)))?;
        self.child = Some(child);
        Ok(())
    }

    fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    fn local_pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    fn exit_status(&mut self) -> Result<Option<String>, HarnessError> {
        Ok(match &mut self.child {
            Some(c) => c.try_wait()?.map(|st| st.to_string()),
            None => None,
        })
    }

    fn signal(&mut self, sig: Signal) -> Result<(), HarnessError> {
        let pid = self
            .child
            .as_ref()
            .map(|c| c.id() as libc::pid_t)
            .unwrap_or(0);
        if pid <= 0 {
            return Err(HarnessError::Cluster(format!(
                "{} is not running",
                self.node
            )));
        }
        // SAFETY: plain kill(2) on our own child's pid, which we have not reaped.
        if unsafe { libc::kill(pid, sig.number()) } != 0 {
            return Err(HarnessError::Cluster(format!(
                "signal {sig:?} to {}: {}",
                self.node,
                std::io::Error::last_os_error()
            )));
        }
        Ok(())
    }

    fn kill(&mut self) -> Result<(), HarnessError> {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        Ok(())
    }

    fn save_logs(&self, _dir: &Path) {}

    fn dispose(&mut self, _dir: &Path) {
        let _ = self.kill();
    }
    fn switch_distribution(
        &mut self,
        from: &Distribution,
        to: &Distribution,
    ) -> Result<(), HarnessError> {
        let (old, new) = (
            from.home.display().to_string(),
            to.home.display().to_string(),
        );
        let mut command: Vec<String> = self
            .command
            .iter()
            // the old release's class archive (mapped or being recorded) is not the new one's
            .filter(|a| {
                !a.starts_with("-XX:SharedArchiveFile=")
                    && !a.starts_with("-XX:DumpLoadedClassList=")
            })
            .map(|a| a.replace(&old, &new))
            .collect();
        // the new release's archive when one was made (mapped only: never recorded mid-run)
        let archive = super::cds::ClassArchive::of(to, super::cds::BROKER).archive;
        if let (true, Some(cp)) = (archive.exists(), command.iter().position(|a| a == "-cp")) {
            command.insert(cp, format!("-XX:SharedArchiveFile={}", archive.display()));
        }
        self.command = command;
        Ok(())
    }
}

/// A namespace host's network context: commands run through `ip netns exec`.
pub struct NamespaceShell {
    /// The namespace.
    pub ns: String,
    /// The root-namespace end of its veth.
    pub veth: String,
}

impl HostShell for NamespaceShell {
    fn exec(&self, argv: &[&str]) -> Result<String, NetworkError> {
        let mut v = vec!["ip", "netns", "exec", self.ns.as_str()];
        v.extend_from_slice(argv);
        super::netns::sh(&v).map_err(|e| match e {
            NetworkError::Command { output, .. } => NetworkError::Command {
                command: argv.join(" "),
                host: Some(self.ns.clone()),
                output,
            },
            other => other,
        })
    }

    fn is_up(&self) -> bool {
        true
    }

    fn network_outlives_process(&self) -> bool {
        true
    }

    fn far_end(&self) -> Option<&str> {
        Some(&self.veth)
    }
}

/// How a worker process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerExit {
    /// Exit code 0.
    Clean,
    /// Anything else, in words.
    Failed(String),
}

/// What a worker host needs to start one worker process.
pub struct WorkerLaunch<'a> {
    /// `producer-0`, `consumer-1`, `final-read-0`.
    pub name: &'a str,
    /// The worker's subcommand (`produce`, `consume`, `final-read`).
    pub command: &'a str,
    /// Its configuration, with this machine's paths (the host rewrites what it must).
    pub config: &'a workers::WorkerConfig,
    /// Where its configuration is recorded (as the worker is given it).
    pub config_path: &'a Path,
    /// Its status lines (stdout) and stderr, in the run directory.
    pub out_path: &'a Path,
    /// Its stderr.
    pub err_path: &'a Path,
    /// The run id (the process's tag).
    pub run_id: &'a str,
    /// How many workers this host started before (placement on the host's addresses).
    pub ordinal: usize,
}

/// Where worker processes run: starts them.
pub trait WorkerHost: Send + Sync {
    /// Starts one worker process.
    fn launch(&self, w: &WorkerLaunch<'_>) -> Result<Box<dyn WorkerRunner>, HarnessError>;
}

/// A running worker process on its host.
pub trait WorkerRunner: Send {
    /// How it ended, or `None` while it runs.
    fn ended(&mut self) -> Option<WorkerExit>;
    /// SIGTERM (the worker flushes its log and exits).
    fn terminate(&mut self);
    /// SIGKILL and wait.
    fn kill(&mut self);
    /// Once it stopped: its log brought to `log_path` (where the host keeps it elsewhere).
    fn collect(&mut self, log_path: &Path);
    /// Its log as it is now, brought to `log_path` (nothing where it writes there itself).
    fn refresh_log(&self, log_path: &Path);
    /// Gives the worker the new bootstrap servers where it does not read this machine's
    /// discovery file (its own copy, replaced whole).
    fn discovery(&self) -> Option<Arc<dyn DiscoveryCopy>>;
    /// Stops it for good (logs kept) and removes what its host kept of it.
    fn dispose(&mut self, log_path: &Path);
}

/// A worker's own copy of the discovery file.
pub trait DiscoveryCopy: Send + Sync {
    /// Replaces the copy's content with `bootstrap` (never read half-written).
    fn write(&self, bootstrap: &str) -> Result<(), HarnessError>;
}

/// Worker processes as children of the harness on this machine (the root namespace:
/// workers reach namespace hosts through the bridge).
pub struct LocalWorkers {
    /// The `worker` binary.
    pub binary: PathBuf,
}

impl WorkerHost for LocalWorkers {
    fn launch(&self, w: &WorkerLaunch<'_>) -> Result<Box<dyn WorkerRunner>, HarnessError> {
        std::fs::write(
            w.config_path,
            serde_json::to_vec_pretty(w.config).map_err(anyhow::Error::from)?,
        )?;
        let child = Command::new(&self.binary)
            .arg(w.command)
            .arg("--config")
            .arg(w.config_path)
            .arg("--tag")
            .arg(format!("kmh.run={}", w.run_id))
            .stdin(Stdio::null())
            .stdout(File::create(w.out_path)?)
            .stderr(File::create(w.err_path)?)
            .process_group(0)
            .spawn()
            .map_err(|source| WorkersError::Start {
                worker: format!("{} ({})", w.name, self.binary.display()),
                source,
            })?;
        Ok(Box::new(LocalWorker(child)))
    }
}

/// A worker child process.
struct LocalWorker(Child);

impl WorkerRunner for LocalWorker {
    fn ended(&mut self) -> Option<WorkerExit> {
        match self.0.try_wait() {
            Ok(None) => None,
            Ok(Some(st)) if st.success() => Some(WorkerExit::Clean),
            Ok(Some(st)) => Some(WorkerExit::Failed(format!("exited with {st}"))),
            Err(e) => Some(WorkerExit::Failed(e.to_string())),
        }
    }

    fn terminate(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            // SAFETY: kill(2) on our unreaped child.
            unsafe { libc::kill(self.0.id() as libc::pid_t, libc::SIGTERM) };
        }
    }

    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }

    fn collect(&mut self, _log_path: &Path) {}

    fn refresh_log(&self, _log_path: &Path) {}

    fn discovery(&self) -> Option<Arc<dyn DiscoveryCopy>> {
        None
    }

    fn dispose(&mut self, _log_path: &Path) {
        if self.ended().is_none() {
            self.kill();
        }
    }
}

/// Locates the `worker` binary: `$KMH_WORKER_BIN`, else next to the running harness.
pub fn worker_binary() -> Result<PathBuf, HarnessError> {
    if let Some(p) = std::env::var_os("KMH_WORKER_BIN") {
        return Ok(PathBuf::from(p));
    }
    let exe = std::env::current_exe()?;
    let dir = exe.parent().ok_or(WorkersError::NoHarnessBinary)?;
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
