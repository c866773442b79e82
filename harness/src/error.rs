//! Failure domains, and the one function ([`HarnessError::exit`]) that turns any of them
//! into an exit code.
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | the run passed every expectation |
//! | 1 | the system under test broke an expectation (or a step it had to survive failed) |
//! | 2 | bad input: scenario file, arguments, run directory |
//! | 3 | the harness or the cluster could not run (no Java/Maven, cluster never came up, …) |
//!
//! The codes are [`Exit`], shared with the `worker` binary (`workers::exit`). Each domain
//! has its error type — [`ScenarioErrors`] (located problems), [`NetworkError`] (commands
//! for namespaces, bridges and fault rules), [`ZkError`] (ZooKeeper operations),
//! [`EngineError`] (the Docker engine), [`WorkersError`] (worker processes), [`StepError`]
//! (what a step could not do) — wrapped by [`HarnessError`] with its cause kept, so
//! `harness` prints the whole chain.

use std::path::PathBuf;

use thiserror::Error;

pub use workers::exit::Exit;

/// A problem in a scenario file, located.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("{file}:{line}:{column}: {field}: {message}\n  hint: {hint}")]
pub struct ScenarioError {
    /// The scenario file.
    pub file: PathBuf,
    /// 1-based line of the offending value (or of the step/table holding it).
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// Dotted path of the field, e.g. `step[3].node`.
    pub field: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: String,
}

/// Scenario errors, all of them (validation reports every problem it finds, not the first).
#[derive(Debug, Error)]
#[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
pub struct ScenarioErrors(pub Vec<ScenarioError>);

/// Everything that stops the harness, by domain; [`HarnessError::exit_code`] maps each to
/// the documented exit code.
#[derive(Debug, Error)]
pub enum HarnessError {
    /// The scenario file is wrong.
    #[error("invalid scenario:\n{0}")]
    Scenario(#[from] ScenarioErrors),
    /// Other bad input (arguments, a run directory that is not one).
    #[error("{0}")]
    BadInput(String),
    /// A prerequisite is missing (Java, Maven, the distribution).
    #[error("{what}\n  hint: {hint}")]
    Missing {
        /// What is missing.
        what: String,
        /// How to get it.
        hint: String,
    },
    /// The cluster could not be brought up or operated.
    #[error("cluster: {0}")]
    Cluster(String),
    /// Workers could not be run.
    #[error("workers: {0}")]
    Workers(#[from] WorkersError),
    /// The Docker engine refused or failed a request.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// An SSH host refused, failed a command, or lacks what the run needs.
    #[error(transparent)]
    Ssh(#[from] SshError),
    /// A step could not do what it says.
    #[error(transparent)]
    Step(#[from] StepError),
    /// The run was interrupted (Ctrl-C / SIGTERM) before it produced a verdict.
    #[error("interrupted")]
    Interrupted,
    /// A command for the run's network (namespaces, bridge, fault rules) failed.
    #[error(transparent)]
    Network(#[from] NetworkError),
    /// A ZooKeeper operation failed.
    #[error(transparent)]
    ZooKeeper(#[from] ZkError),
    /// Anything else the harness tripped on.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl HarnessError {
    /// How the process ends with this error: the one place errors become exit codes.
    pub fn exit(&self) -> Exit {
        match self {
            HarnessError::Scenario(_) | HarnessError::BadInput(_) => Exit::BadInput,
            HarnessError::Missing { .. }
            | HarnessError::Cluster(_)
            | HarnessError::Workers(_)
            | HarnessError::Interrupted
            | HarnessError::Network(_)
            | HarnessError::ZooKeeper(_)
            | HarnessError::Engine(_)
            | HarnessError::Ssh(_)
            | HarnessError::Step(_)
            | HarnessError::Other(_) => Exit::ToolFailed,
        }
    }

    /// The message and every cause under it, one per line (`caused by: …`).
    pub fn chain(&self) -> String {
        let mut out = self.to_string();
        let mut cause = std::error::Error::source(self);
        while let Some(c) = cause {
            let text = c.to_string();
            // a transparent wrapper's source repeats nothing; an anyhow chain may
            if !out.contains(&text) {
                out.push_str(&format!("\n  caused by: {text}"));
            }
            cause = c.source();
        }
        out
    }
}

/// A command for the run's network failed: on this machine, or in a host's network context
/// (a namespace, a container).
#[derive(Debug, Error)]
pub enum NetworkError {
    /// The command ran and failed.
    #[error("`{command}`{} failed: {output}", .host.as_ref().map(|h| format!(" in {h}")).unwrap_or_default())]
    Command {
        /// The command line.
        command: String,
        /// Where it ran (`None`: this machine's root namespace).
        host: Option<String>,
        /// What it said (stderr, or the engine's output).
        output: String,
    },
    /// The command could not be started.
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The host's backend could not run the command (the engine did not answer).
    #[error("running `{command}` in {host}: {source}")]
    Host {
        /// The command line.
        command: String,
        /// Where.
        host: String,
        /// Why.
        #[source]
        source: Box<HarnessError>,
    },
    /// No host of that name on the run's network.
    #[error("no host `{0}` on the run's network")]
    NoHost(String),
    /// No free private subnet for the run's bridge.
    #[error("no free 10.x.y.0/24 subnet for the run's bridge")]
    NoSubnet,
    /// Some fault rules could not be removed.
    #[error("healing: {}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Heal(Vec<NetworkError>),
}

/// The error of the library or tool underneath, kept as the cause.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// The Docker engine refused or failed a request.
#[derive(Debug, Error)]
#[error("docker: {what}: {source}")]
pub struct EngineError {
    /// What was asked (`starting kmh-…-kafka1`).
    pub what: String,
    /// Why it failed.
    #[source]
    pub source: Cause,
}

/// The ssh backend's hosts (`cluster::ssh`): a connection, a command, or a host that lacks
/// what the run needs.
#[derive(Debug, Error)]
pub enum SshError {
    /// The control master could not be set up (address, key, host key, sshd).
    #[error("ssh {host}: cannot connect: {source}\n  hint: check the address, user and key in the inventory; `ssh -i KEY USER@HOST true` must work without a prompt")]
    Connect {
        /// `user@address:port`.
        host: String,
        /// What OpenSSH said.
        #[source]
        source: Cause,
    },
    /// A command on a host failed.
    #[error("ssh {host}: `{command}` failed: {output}")]
    Command {
        /// The host's address.
        host: String,
        /// The command (its first line).
        command: String,
        /// Exit status and what it printed on stderr.
        output: String,
    },
    /// Hosts lack what the run needs: every problem of every host, said before anything
    /// starts.
    #[error("the hosts are not ready for this run:\n{}\n  hint: install what is missing (Java 17, iptables and iproute2 for network faults), free the ports, or fix the inventory", .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    NotReady(Vec<String>),
}

/// Worker processes could not be started, switched or finished.
#[derive(Debug, Error)]
pub enum WorkersError {
    /// A worker process could not be started.
    #[error("starting {worker}: {source}")]
    Start {
        /// The worker (or the binary).
        worker: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The run's network has no address left for another worker container.
    #[error("more than {0} worker containers on one run network")]
    NoRoom(usize),
    /// A worker container's copy of the discovery file could not be replaced.
    #[error("updating the discovery file in {container}: {output}")]
    Discovery {
        /// The container.
        container: String,
        /// What the command said.
        output: String,
    },
    /// Workers did not reconnect through new bootstrap servers in time.
    #[error("{workers} did not reconnect to {bootstrap} within {timeout:?}")]
    NotReconnected {
        /// Who did not.
        workers: String,
        /// The new bootstrap servers.
        bootstrap: String,
        /// How long they had.
        timeout: std::time::Duration,
    },
    /// The final read did not end well.
    #[error("final read {how}; see {}", .err_path.display())]
    FinalRead {
        /// How it ended.
        how: String,
        /// Its stderr.
        err_path: PathBuf,
    },
    /// A bootstrap switch outside a run (no workers).
    #[error("no workers to switch (not a run)")]
    NoSwitchboard,
    /// The harness's own binary could not be located (the worker binary is beside it).
    #[error("cannot locate the harness binary")]
    NoHarnessBinary,
}

/// A step could not do what it says.
#[derive(Debug, Error)]
pub enum StepError {
    /// The cluster's metadata has no such partition now.
    #[error("no metadata for {topic}/{partition}")]
    NoMetadata {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
    },
    /// The partition has no leader now.
    #[error("{topic}/{partition} has no leader")]
    NoLeader {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
    },
    /// The partition has no follower now.
    #[error("{topic}/{partition} has no follower (replicas {replicas:?})")]
    NoFollower {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// Its replicas.
        replicas: Vec<i32>,
    },
    /// A broker id that is no node of the scenario.
    #[error("broker id {0} is not a node of this cluster")]
    UnknownBroker(i32),
    /// `@NAME` names a binding whose step did not run.
    #[error("@{0} was never bound (its step failed?)")]
    Unbound(String),
    /// `since` names a step that did not run.
    #[error("step `{0}` never ran")]
    NeverRan(String),
    /// A Kafka admin operation failed.
    #[error("{what}: {source}")]
    Kafka {
        /// Which (`metadata`, `health gate`, `reassignment`, `leader election`, …).
        what: &'static str,
        /// Why.
        #[source]
        source: Cause,
    },
    /// The controller refused leader elections.
    #[error("leader election refused for {0}")]
    ElectionRefused(String),
    /// A dynamic reconfig committed something else than was asked.
    #[error("the committed configuration (version {version}) is {servers}, not what was asked")]
    ReconfigNotApplied {
        /// Its version.
        version: String,
        /// Its servers, `(id, role)`.
        servers: String,
    },
    /// The broker migration process did not do its job.
    #[error("the migration {0}")]
    Migration(String),
}

impl StepError {
    /// A Kafka admin failure of `what`, with its cause.
    pub fn kafka(what: &'static str, source: impl Into<Cause>) -> StepError {
        StepError::Kafka {
            what,
            source: source.into(),
        }
    }
}

/// A ZooKeeper operation failed.
#[derive(Debug, Error)]
pub enum ZkError {
    /// An operation (or the connection) at a path or a connect string.
    #[error("{op} {at}: {source}")]
    Op {
        /// What was done (`connecting to`, `reading`, `listing`, `reconfig through`).
        op: &'static str,
        /// The znode, or the connect string.
        at: String,
        /// The client's error.
        #[source]
        source: zookeeper_client::Error,
    },
    /// No answer in time.
    #[error("no answer to {op} within {secs} s")]
    NoAnswer {
        /// What was asked.
        op: &'static str,
        /// How long the harness waited.
        secs: u64,
    },
    /// The servers refused a reconfig on principle.
    #[error("{0}")]
    Refused(&'static str),
}

impl ZkError {
    /// True when the answer may have been lost rather than refused (the connection or the
    /// session went, or no answer came): what was asked may have been done all the same.
    pub fn answer_lost(&self) -> bool {
        use zookeeper_client::Error as E;
        match self {
            ZkError::NoAnswer { .. } => true,
            ZkError::Op { source, .. } => matches!(
                source,
                E::ConnectionLoss
                    | E::SessionExpired
                    | E::SessionMoved
                    | E::Timeout
                    | E::ClientClosed
            ),
            ZkError::Refused(_) => false,
        }
    }
}

impl From<std::io::Error> for HarnessError {
    fn from(e: std::io::Error) -> Self {
        HarnessError::Other(e.into())
    }
}
