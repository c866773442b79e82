//! One node process: its configuration files, and start/stop/kill/signal.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::host::{NodeHost, NodeProcess, Signal};
use super::{Distribution, CONTROLLER_PORT, KAFKA_PORT, ZK_CLIENT_PORT};
use crate::error::HarnessError;
use crate::scenario::{ClusterSpec, ZkRole};

/// What a node runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// `org.apache.zookeeper.server.quorum.QuorumPeerMain`.
    ZooKeeper,
    /// `kafka.Kafka` as a broker: in ZooKeeper mode, or in KRaft mode (then, when it is a
    /// controller too, a combined node).
    Broker,
    /// `kafka.Kafka` as a dedicated KRaft controller (`process.roles=controller`).
    Controller,
}

impl NodeKind {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            NodeKind::ZooKeeper => "zookeeper",
            NodeKind::Broker => "broker",
            NodeKind::Controller => "controller",
        }
    }
}

/// A node: its identity, its files, and its process on its host.
pub struct Node {
    /// Node name from the scenario.
    pub name: String,
    /// What it runs.
    pub kind: NodeKind,
    /// Broker id, KRaft node id or ZooKeeper myid.
    pub id: i32,
    /// True when it votes in the KRaft controller quorum (a dedicated controller, or a
    /// combined node).
    pub controller: bool,
    /// The host address it listens on.
    pub address: Ipv4Addr,
    /// Its directory in the run directory (config, data, logs).
    pub dir: PathBuf,
    /// Where its process sees that directory: the same path on this machine, `/kmh/node`
    /// in a container (whose files are copied in), the run's directory on an SSH host.
    seen_dir: PathBuf,
    /// Its process on its host (a child process, a container, …).
    process: Box<dyn NodeProcess>,
    /// A ZooKeeper node's `zoo.cfg` without its server list, and whether dynamic reconfig
    /// is on (then server lines carry the client address).
    zk_static: Option<(String, bool)>,
    /// A Kafka node: its `server.properties` at its last start (what its process runs
    /// with; a migration's nodes change mode at restarts).
    config_at_start: std::collections::BTreeMap<String, String>,
}

/// One server line of a ZooKeeper membership.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZkMember {
    /// Its myid.
    pub id: i32,
    /// Its address.
    pub address: Ipv4Addr,
    /// Voting or not.
    pub role: ZkRole,
}

/// The logging configuration flags: the reload4j file (3.9) and the Log4j 2 one (Kafka 4
/// logs through Log4j 2, KIP-653), both written by [`write_log4j`] in `dir`.
pub(super) fn log_flags(dir: &Path) -> [String; 2] {
    [
        format!(
            "-Dlog4j.configuration=file:{}",
            dir.join("log4j.properties").display()
        ),
        format!(
            "-Dlog4j2.configurationFile={}",
            dir.join("log4j2.properties").display()
        ),
    ]
}

/// [`Node::activation_fault`] in a controller's `server.log`: since its process last
/// started (each Kafka JVM's first line registers its Log4j MBean — the storage format's
/// too), Kafka's fault handler ended it while it completed its activation.
fn activation_fault_in(log: &str) -> bool {
    let since = log
        .rfind("Registered kafka:type=kafka.Log4jController MBean")
        .unwrap_or(0);
    log[since..]
        .contains("Encountered fatal fault: exception while completing controller activation")
}

/// The JVM flags of a Kafka tool run on this machine (`StorageTool`, `FeatureCommand`): a
/// small heap, no C2, and the brokers' class archive when one was made — the tool loads a
/// subset of the same classes from the same classpath (measured: a format's 1.1 s of CPU
/// becomes 0.55 s; six at once on two cores). Mapped only, never recorded from a tool's
/// short life.
pub(super) fn tool_jvm_flags(dist: &Distribution) -> Vec<String> {
    let mut flags = vec![
        "-Xmx256m".to_string(),
        "-XX:TieredStopAtLevel=1".to_string(),
    ];
    let archive = super::cds::ClassArchive::of(dist, super::cds::BROKER).archive;
    if archive.exists() {
        flags.push(format!("-XX:SharedArchiveFile={}", archive.display()));
    }
    flags
}

fn jvm_args(run_id: &str, name: &str, heap_mb: u32, classpath: &str, dir: &Path) -> Vec<String> {
    let [log4j, log4j2] = log_flags(dir);
    vec![
        "java".into(),
        format!("-Xms{heap_mb}m"),
        format!("-Xmx{heap_mb}m"),
        // two cores for a whole cluster: a small GC and no C2 compile storms at start-up
        "-XX:+UseSerialGC".into(),
        "-XX:TieredStopAtLevel=1".into(),
        "-XX:-UsePerfData".into(),
        "-Djava.awt.headless=true".into(),
        "-Djava.net.preferIPv4Stack=true".into(),
        log4j,
        log4j2,
        format!("-Dkmh.run={run_id}"),
        format!("-Dkmh.node={name}"),
        "-cp".into(),
        classpath.to_string(),
    ]
}

pub(super) fn write_log4j(dir: &Path, seen: &Path) -> std::io::Result<()> {
    write_log4j_to(dir, &seen.join("server.log"))
}

/// Writes both logging configurations into `dir`, logging into `log` (never the console:
/// a tool's stdout may be its output).
pub(super) fn write_log4j_to(dir: &Path, log: &Path) -> std::io::Result<()> {
    // the same settings for Log4j 2 (Kafka 4.x); 3.9 reads the reload4j file below
    std::fs::write(
        dir.join("log4j2.properties"),
        format!(
            "status = warn\n\
             appender.file.type = File\n\
             appender.file.name = file\n\
             appender.file.fileName = {}\n\
             appender.file.append = true\n\
             appender.file.layout.type = PatternLayout\n\
             appender.file.layout.pattern = [%d] %p %m (%c)%n\n\
             rootLogger.level = INFO\n\
             rootLogger.appenderRef.file.ref = file\n\
             logger.request.name = kafka.request.logger\n\
             logger.request.level = WARN\n\
             logger.cleaner.name = kafka.log.LogCleaner\n\
             logger.cleaner.level = WARN\n",
            log.display()
        ),
    )?;
    std::fs::write(
        dir.join("log4j.properties"),
        format!(
            "log4j.rootLogger=INFO, file\n\
             log4j.appender.file=org.apache.log4j.FileAppender\n\
             log4j.appender.file.File={}\n\
             log4j.appender.file.layout=org.apache.log4j.PatternLayout\n\
             log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n\n\
             log4j.logger.kafka.request.logger=WARN\n\
             log4j.logger.kafka.log.LogCleaner=WARN\n",
            log.display()
        ),
    )
}

fn properties(
    defaults: &[(&str, String)],
    overrides: &std::collections::BTreeMap<String, String>,
) -> String {
    let mut out = String::new();
    for (k, v) in defaults {
        if !overrides.contains_key(*k) {
            out.push_str(&format!("{k}={v}\n"));
        }
    }
    for (k, v) in overrides {
        out.push_str(&format!("{k}={v}\n"));
    }
    out
}

/// What every broker gets, in either mode: small thread pools for a two-core machine,
/// replication factors the cluster can give (`brokers` of them, at most 3), no automatic
/// topics, no unclean elections, no time-based retention.
fn broker_defaults(brokers: usize) -> Vec<(&'static str, String)> {
    let rf = brokers.min(3);
    vec![
        ("num.network.threads", "2".into()),
        ("num.io.threads", "2".into()),
        ("num.replica.fetchers", "1".into()),
        ("background.threads", "2".into()),
        ("num.partitions", "1".into()),
        ("default.replication.factor", rf.to_string()),
        ("offsets.topic.replication.factor", rf.to_string()),
        ("offsets.topic.num.partitions", "6".into()),
        ("transaction.state.log.replication.factor", rf.to_string()),
        ("transaction.state.log.min.isr", rf.min(2).to_string()),
        ("transaction.state.log.num.partitions", "3".into()),
        ("group.initial.rebalance.delay.ms", "0".into()),
        ("auto.create.topics.enable", "false".into()),
        ("controlled.shutdown.enable", "true".into()),
        ("unclean.leader.election.enable", "false".into()),
        ("replica.lag.time.max.ms", "10000".into()),
        ("log.flush.interval.messages", "9223372036854775807".into()),
        ("log.retention.hours", "-1".into()),
        ("log.segment.bytes", "67108864".into()),
    ]
}

/// How a KRaft node finds the controller quorum, and how its storage is formatted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuorumConfig {
    /// A static quorum: `controller.quorum.voters` (`ID@HOST:PORT,…`), the same on every
    /// node; the voters never change.
    Static {
        /// `controller.quorum.voters`.
        voters: String,
    },
    /// A dynamic quorum (KIP-853): `controller.quorum.bootstrap.servers` (`HOST:PORT,…`:
    /// every controller, the dormant ones too, so a node still finds the quorum after its
    /// first voters are gone); the first voters are written into the initial controllers'
    /// storage at the format (`--initial-controllers ID@HOST:PORT:DIRECTORY,…`), every
    /// other node is formatted with `--no-initial-controllers`.
    Dynamic {
        /// `controller.quorum.bootstrap.servers`.
        bootstrap_servers: String,
        /// `--initial-controllers`: the first voters with their log directories' ids.
        initial_controllers: String,
        /// The node ids among them.
        initial_ids: Vec<i32>,
    },
}

impl QuorumConfig {
    /// The `server.properties` line that points a node at the quorum.
    fn property(&self) -> (&'static str, String) {
        match self {
            QuorumConfig::Static { voters } => ("controller.quorum.voters", voters.clone()),
            QuorumConfig::Dynamic {
                bootstrap_servers, ..
            } => (
                "controller.quorum.bootstrap.servers",
                bootstrap_servers.clone(),
            ),
        }
    }

    /// The format's quorum arguments for node `id`: none for a static quorum (the tool
    /// reads the voters from `server.properties`).
    pub fn format_args(&self, id: i32, controller: bool) -> Vec<String> {
        match self {
            QuorumConfig::Static { .. } => Vec::new(),
            QuorumConfig::Dynamic {
                initial_controllers,
                initial_ids,
                ..
            } if controller && initial_ids.contains(&id) => {
                vec!["--initial-controllers".into(), initial_controllers.clone()]
            }
            QuorumConfig::Dynamic { .. } => vec!["--no-initial-controllers".into()],
        }
    }
}

/// The roles of a KRaft node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KraftRoles {
    /// It serves clients (`broker` in `process.roles`).
    pub broker: bool,
    /// It votes in the controller quorum (`controller` in `process.roles`).
    pub controller: bool,
}

impl Node {
    /// A KRaft node (broker, controller or both) with node id `id`; `quorum` says how it
    /// finds the controller quorum. Its log directory is
    /// formatted ([`Node::format_command`]) before its first start. With `migration` (the
    /// ZooKeeper connect string of a ZooKeeper→KRaft migration) a controller is in
    /// migration mode: `zookeeper.metadata.migration.enable`, and the brokers' ZooKeeper.
    #[allow(clippy::too_many_arguments)]
    pub fn kraft(
        run_id: &str,
        name: &str,
        id: i32,
        address: Ipv4Addr,
        roles: KraftRoles,
        quorum: &QuorumConfig,
        spec: &ClusterSpec,
        dist: &Distribution,
        dir: &Path,
        host: Box<dyn NodeHost>,
        proxied: bool,
        migration: Option<&str>,
    ) -> Result<Node, HarnessError> {
        std::fs::create_dir_all(dir.join("data"))?;
        let (seen, classpath) = host.view(dir, dist);
        write_log4j(dir, &seen)?;
        let process_roles = match (roles.broker, roles.controller) {
            (true, true) => "broker,controller",
            (true, false) => "broker",
            _ => "controller",
        };
        let controller_listener = format!("CONTROLLER://{address}:{CONTROLLER_PORT}");
        let mut listeners = Vec::new();
        if roles.broker {
            // behind the delaying proxy the client listener is on the namespace's loopback
            listeners.push(if proxied {
                format!("PLAINTEXT://127.0.0.1:{}", super::PROXIED_PORT)
            } else {
                format!("PLAINTEXT://{address}:{KAFKA_PORT}")
            });
        }
        if roles.controller {
            listeners.push(controller_listener);
        }
        let mut defaults: Vec<(&str, String)> = vec![
            ("process.roles", process_roles.into()),
            ("node.id", id.to_string()),
            quorum.property(),
            ("controller.listener.names", "CONTROLLER".into()),
            ("listeners", listeners.join(",")),
            (
                "listener.security.protocol.map",
                "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT".into(),
            ),
            ("log.dirs", seen.join("data").display().to_string()),
            // a broker's failure is noticed as fast as in ZooKeeper mode (its session: 6 s
            // here, not Kafka's 9 s), and a clean restart does not wait on it: the
            // controller refuses the new incarnation's registration
            // (DUPLICATE_BROKER_REGISTRATION) until the old one's session ends, and answers
            // a controlled shutdown at the broker's next heartbeat — measured on 4.1 with
            // Kafka's defaults (2 s heartbeats, 9 s session), each broker restart of a roll
            // spent 2 s in shutdown and 6 s refused
            (
                "broker.session.timeout.ms",
                super::DEFAULT_KRAFT_BROKER_SESSION_TIMEOUT_MS.to_string(),
            ),
            ("broker.heartbeat.interval.ms", "500".into()),
        ];
        if let Some(zk_connect) = migration {
            // Kafka's migration guide: the controller reads and writes the brokers'
            // ZooKeeper, and talks to the ZooKeeper-mode brokers on their listener
            defaults.push(("zookeeper.metadata.migration.enable", "true".into()));
            defaults.push(("zookeeper.connect", zk_connect.to_string()));
            defaults.push((
                "zookeeper.session.timeout.ms",
                super::DEFAULT_ZK_SESSION_TIMEOUT_MS.to_string(),
            ));
            defaults.push(("inter.broker.listener.name", "PLAINTEXT".into()));
        }
        if roles.broker {
            defaults.push((
                "advertised.listeners",
                format!("PLAINTEXT://{address}:{KAFKA_PORT}"),
            ));
            defaults.push(("inter.broker.listener.name", "PLAINTEXT".into()));
            defaults.extend(broker_defaults(spec.brokers.len()));
        }
        let own: std::collections::BTreeMap<String, String> = spec
            .broker_config
            .iter()
            .map(|(k, v)| (k.clone(), v.replace("{address}", &address.to_string())))
            .collect();
        std::fs::write(dir.join("server.properties"), properties(&defaults, &own))?;
        let heap = if roles.broker {
            spec.broker_heap_mb
        } else {
            spec.controller_heap_mb
        };
        let mut jvm = jvm_args(run_id, name, heap, &classpath, &seen);
        jvm.extend(host.class_archive_flags(dir, dist, super::cds::BROKER, run_id));
        jvm.push("kafka.Kafka".into());
        jvm.push(seen.join("server.properties").display().to_string());
        let process = host.process(run_id, name, address, jvm)?;
        Ok(Node {
            name: name.into(),
            kind: if roles.broker {
                NodeKind::Broker
            } else {
                NodeKind::Controller
            },
            id,
            controller: roles.controller,
            address,
            dir: dir.into(),
            seen_dir: seen.clone(),
            process,
            zk_static: None,
            config_at_start: Default::default(),
        })
    }

    /// The command that formats this KRaft node's log directory with `cluster_id`
    /// (`kafka.tools.StorageTool format`, as `kafka-storage.sh format` runs it), to run on
    /// this machine before the node's first start; `quorum_args` are
    /// [`QuorumConfig::format_args`] (none for a static quorum: the voters come from
    /// `controller.quorum.voters` in its `server.properties`).
    pub fn format_command(
        &self,
        dist: &Distribution,
        cluster_id: &str,
        quorum_args: &[String],
    ) -> Result<Vec<String>, HarnessError> {
        // the tool runs here: a node that sees its directory elsewhere (a container, an
        // SSH host) is formatted through a copy of its configuration with this machine's
        // paths, and what the format wrote is installed on its host after
        // ([`Node::install_formatted`])
        let config = if self.seen_dir == self.dir {
            self.dir.join("server.properties")
        } else {
            let text = std::fs::read_to_string(self.dir.join("server.properties"))?;
            let here = self.dir.join("format.properties");
            std::fs::write(
                &here,
                text.replace(
                    &self.seen_dir.display().to_string(),
                    &self.dir.display().to_string(),
                ),
            )?;
            here
        };
        let [log4j, log4j2] = log_flags(&self.dir);
        let mut argv = vec!["java".to_string()];
        argv.extend(tool_jvm_flags(dist));
        argv.extend([
            log4j,
            log4j2,
            "-cp".into(),
            dist.classpath(),
            "kafka.tools.StorageTool".into(),
            "format".into(),
            "-t".into(),
            cluster_id.into(),
            "-c".into(),
            config.display().to_string(),
        ]);
        argv.extend(quorum_args.iter().cloned());
        Ok(argv)
    }

    /// After [`Node::format_command`] ran: a node whose host has a file system of its own
    /// gets what the format wrote in its data directory (`meta.properties`,
    /// `bootstrap.checkpoint`, …) before its first start; on this machine it is in place.
    pub fn install_formatted(&self) -> Result<(), HarnessError> {
        if self.seen_dir == self.dir {
            return Ok(());
        }
        let mut files = Vec::new();
        let mut pending = vec![self.dir.join("data")];
        while let Some(d) = pending.pop() {
            for e in std::fs::read_dir(&d)? {
                let path = e?.path();
                if path.is_dir() {
                    pending.push(path);
                } else if let Ok(rel) = path.strip_prefix(&self.dir) {
                    files.push((rel.display().to_string(), std::fs::read(&path)?));
                }
            }
        }
        self.process.install(&files)
    }

    /// A ZooKeeper node (its own myid is `id`) whose `zoo.cfg` lists `members`.
    #[allow(clippy::too_many_arguments)]
    pub fn zookeeper(
        run_id: &str,
        name: &str,
        id: i32,
        address: Ipv4Addr,
        members: &[ZkMember],
        spec: &ClusterSpec,
        dist: &Distribution,
        dir: &Path,
        host: Box<dyn NodeHost>,
    ) -> Result<Node, HarnessError> {
        std::fs::create_dir_all(dir.join("data"))?;
        std::fs::write(dir.join("data").join("myid"), format!("{id}\n"))?;
        let (seen, classpath) = host.view(dir, dist);
        write_log4j(dir, &seen)?;
        let reconfig = spec
            .zookeeper_config
            .get("reconfigEnabled")
            .is_some_and(|v| v == "true");
        let mut defaults: Vec<(&str, String)> = vec![
            ("tickTime", "1000".into()),
            ("initLimit", "10".into()),
            ("syncLimit", "5".into()),
            ("dataDir", seen.join("data").display().to_string()),
            ("maxClientCnxns", "0".into()),
            ("admin.enableServer", "false".into()),
            (
                "4lw.commands.whitelist",
                "srvr,mntr,ruok,stat,conf,cons".into(),
            ),
            ("autopurge.purgeInterval", "0".into()),
        ];
        if !reconfig {
            // with dynamic reconfig the client address is part of each server line
            defaults.push(("clientPortAddress", address.to_string()));
            defaults.push(("clientPort", ZK_CLIENT_PORT.to_string()));
        }
        let mut jvm = jvm_args(run_id, name, spec.zookeeper_heap_mb, &classpath, &seen);
        jvm.extend(host.class_archive_flags(dir, dist, super::cds::ZOOKEEPER, run_id));
        jvm.push("-Dzookeeper.jmx.log4j.disable=true".into());
        jvm.push("org.apache.zookeeper.server.quorum.QuorumPeerMain".into());
        jvm.push(seen.join("zoo.cfg").display().to_string());
        let process = host.process(run_id, name, address, jvm)?;
        let node = Node {
            name: name.into(),
            kind: NodeKind::ZooKeeper,
            id,
            controller: false,
            address,
            dir: dir.into(),
            seen_dir: seen.clone(),
            process,
            zk_static: Some((properties(&defaults, &spec.zookeeper_config), reconfig)),
            config_at_start: Default::default(),
        };
        node.write_zoo_cfg(members)?;
        Ok(node)
    }

    /// Rewrites this ZooKeeper node's `zoo.cfg` with the server list `members` (it takes
    /// effect at the next start). A configuration ZooKeeper wrote itself after a dynamic
    /// reconfig is replaced too: what the operator writes is what the node starts with.
    pub fn write_zoo_cfg(&self, members: &[ZkMember]) -> Result<(), HarnessError> {
        let Some((base, reconfig)) = &self.zk_static else {
            return Err(HarnessError::Cluster(format!(
                "{} is not a ZooKeeper node",
                self.name
            )));
        };
        let mut text = base.clone();
        for m in members {
            let role = match m.role {
                ZkRole::Participant => "participant",
                ZkRole::Observer => "observer",
            };
            text.push_str(&format!("server.{}={}:2888:3888:{role}", m.id, m.address));
            if *reconfig {
                text.push_str(&format!(";{}:{ZK_CLIENT_PORT}", m.address));
            }
            text.push('\n');
        }
        if members
            .iter()
            .any(|m| m.id == self.id && m.role == ZkRole::Observer)
        {
            text.push_str("peerType=observer\n");
        }
        std::fs::write(self.dir.join("zoo.cfg"), text)?;
        Ok(())
    }

    /// Sets one property in a broker's `server.properties` (takes effect at its next start).
    pub fn set_broker_property(&self, key: &str, value: &str) -> Result<(), HarnessError> {
        let path = self.dir.join("server.properties");
        let text = std::fs::read_to_string(&path)?;
        let mut found = false;
        let mut out: Vec<String> = text
            .lines()
            .map(|l| {
                if l.split_once('=').is_some_and(|(k, _)| k.trim() == key) {
                    found = true;
                    format!("{key}={value}")
                } else {
                    l.to_string()
                }
            })
            .collect();
        if !found {
            out.push(format!("{key}={value}"));
        }
        std::fs::write(&path, out.join("\n") + "\n")?;
        Ok(())
    }

    /// Removes one property from a Kafka node's `server.properties` (takes effect at its
    /// next start); nothing when it is not there.
    pub fn remove_property(&self, key: &str) -> Result<(), HarnessError> {
        let path = self.dir.join("server.properties");
        let text = std::fs::read_to_string(&path)?;
        let out: Vec<&str> = text
            .lines()
            .filter(|l| l.split_once('=').is_none_or(|(k, _)| k.trim() != key))
            .collect();
        std::fs::write(&path, out.join("\n") + "\n")?;
        Ok(())
    }

    /// A broker in ZooKeeper mode.
    #[allow(clippy::too_many_arguments)]
    pub fn broker(
        run_id: &str,
        name: &str,
        id: i32,
        address: Ipv4Addr,
        zk_connect: &str,
        spec: &ClusterSpec,
        dist: &Distribution,
        dir: &Path,
        host: Box<dyn NodeHost>,
        proxied: bool,
    ) -> Result<Node, HarnessError> {
        std::fs::create_dir_all(dir.join("data"))?;
        let (seen, classpath) = host.view(dir, dist);
        write_log4j(dir, &seen)?;
        // the size of the broker's own cluster (the run's target cluster is another)
        let n = if spec.is_target_broker(name) {
            spec.target_brokers().count()
        } else {
            spec.brokers.len()
        };
        // behind the delaying proxy the broker listens on loopback inside its namespace and
        // advertises the proxy's address
        let listener = if proxied {
            format!("PLAINTEXT://127.0.0.1:{}", super::PROXIED_PORT)
        } else {
            format!("PLAINTEXT://{address}:{KAFKA_PORT}")
        };
        let mut defaults: Vec<(&str, String)> = vec![
            ("broker.id", id.to_string()),
            ("listeners", listener),
            (
                "advertised.listeners",
                format!("PLAINTEXT://{address}:{KAFKA_PORT}"),
            ),
            ("zookeeper.connect", zk_connect.to_string()),
            (
                "zookeeper.session.timeout.ms",
                super::DEFAULT_ZK_SESSION_TIMEOUT_MS.to_string(),
            ),
            ("zookeeper.connection.timeout.ms", "15000".into()),
            ("log.dirs", seen.join("data").display().to_string()),
        ];
        defaults.extend(broker_defaults(n));
        // `{address}` in a value is this broker's address: a second listener (SASL_SSL, say)
        // is per broker, as the default one is
        let own: std::collections::BTreeMap<String, String> = spec
            .broker_config
            .iter()
            .map(|(k, v)| (k.clone(), v.replace("{address}", &address.to_string())))
            .collect();
        let cfg = dir.join("server.properties");
        std::fs::write(&cfg, properties(&defaults, &own))?;
        let mut jvm = jvm_args(run_id, name, spec.broker_heap_mb, &classpath, &seen);
        jvm.extend(host.class_archive_flags(dir, dist, super::cds::BROKER, run_id));
        jvm.push("kafka.Kafka".into());
        jvm.push(seen.join("server.properties").display().to_string());
        let process = host.process(run_id, name, address, jvm)?;
        Ok(Node {
            name: name.into(),
            kind: NodeKind::Broker,
            id,
            controller: false,
            address,
            dir: dir.into(),
            seen_dir: seen.clone(),
            process,
            zk_static: None,
            config_at_start: Default::default(),
        })
    }

    /// Runs the distribution `to` instead of `from` from the next start (see
    /// [`super::host::NodeProcess::switch_distribution`]).
    pub(super) fn switch_distribution(
        &mut self,
        from: &Distribution,
        to: &Distribution,
    ) -> Result<(), HarnessError> {
        self.process.switch_distribution(from, to)
    }

    /// Starts the node's process on its host.
    pub fn spawn(&mut self) -> Result<(), HarnessError> {
        if self.is_running() {
            return Err(HarnessError::Cluster(format!(
                "{} is already running",
                self.name
            )));
        }
        if self.kind != NodeKind::ZooKeeper {
            self.config_at_start = self.config_for_next_start();
        }
        self.process.start(&self.dir)
    }

    /// A Kafka node: the `server.properties` its next start will read (steps may have
    /// rewritten it since the last one).
    pub fn config_for_next_start(&self) -> std::collections::BTreeMap<String, String> {
        std::fs::read_to_string(self.dir.join("server.properties"))
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect()
    }

    /// A Kafka node: true when it runs (or last ran) in KRaft mode (`process.roles`).
    pub fn kraft_at_start(&self) -> bool {
        self.config_at_start.contains_key("process.roles")
    }

    /// A Kafka node: true when it runs (or last ran) in ZooKeeper→KRaft migration mode
    /// (`zookeeper.metadata.migration.enable=true`).
    pub fn migrating_at_start(&self) -> bool {
        self.config_at_start
            .get("zookeeper.metadata.migration.enable")
            .is_some_and(|v| v == "true")
    }

    /// True while the process runs (paused counts as running).
    pub fn is_running(&mut self) -> bool {
        self.process.is_running()
    }

    /// Its process id, when its process is this machine's child.
    pub fn local_pid(&self) -> Option<u32> {
        self.process.local_pid()
    }

    /// True when this broker's last start ended because ZooKeeper still held its
    /// registration: a killed predecessor's session owns `/brokers/ids/N` until it expires,
    /// and Kafka exits with `NodeExistsException` at startup meanwhile. Read from the
    /// part of `server.log` after the last "starting" line (a container node's log is
    /// copied out when it dies).
    pub fn registration_refused(&self) -> bool {
        if self.kind != NodeKind::Broker {
            return false;
        }
        let Ok(log) = std::fs::read_to_string(self.dir.join("server.log")) else {
            return false;
        };
        // no "starting" line: it died before Kafka's startup, for another reason
        let Some(last_start) = log.rfind("starting (kafka.server.KafkaServer)") else {
            return false;
        };
        log[last_start..].contains("NodeExistsException")
    }

    /// True when a KRaft controller's process was stopped by Kafka's own fault handler while
    /// completing its activation as the quorum's leader, since its last start. Seen on 3.9.1
    /// in a migration (once in about eight runs): three controllers started at once, one loses the
    /// leadership mid-activation, reverts to an empty log — metadata.version 3.0-IV1 — and
    /// its check that a migration needs metadata transactions (KAFKA-17457) then ends the
    /// process. Kafka leaves the restart to a supervisor.
    pub fn activation_fault(&self) -> bool {
        if self.kind != NodeKind::Controller {
            return false;
        }
        std::fs::read_to_string(self.dir.join("server.log"))
            .is_ok_and(|log| activation_fault_in(&log))
    }

    /// An error naming the node's logs (brought into its directory) once the process has
    /// exited.
    pub fn check_alive(&mut self) -> Result<(), HarnessError> {
        if let Some(status) = self.process.exit_status()? {
            self.process.save_logs(&self.dir);
            return Err(HarnessError::Cluster(format!(
                "{} exited ({status}); see {} and {}",
                self.name,
                self.dir.join("console.log").display(),
                self.dir.join("server.log").display()
            )));
        }
        Ok(())
    }

    /// Sends a signal to the running process.
    pub fn signal(&mut self, sig: Signal) -> Result<(), HarnessError> {
        if !self.is_running() {
            return Err(HarnessError::Cluster(format!(
                "{} is not running",
                self.name
            )));
        }
        self.process.signal(sig)
    }

    /// SIGTERM (after SIGCONT, in case it is paused), then SIGKILL after `timeout`.
    pub fn terminate(&mut self, timeout: Duration) -> Result<(), HarnessError> {
        self.signal(Signal::Cont)?;
        self.signal(Signal::Term)?;
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if !self.is_running() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.kill()?;
        Err(HarnessError::Cluster(format!(
            "{} did not stop within {timeout:?}; killed",
            self.name
        )))
    }

    /// SIGKILL and wait for the exit. Does nothing when not running.
    pub fn kill(&mut self) -> Result<(), HarnessError> {
        self.process.kill()
    }

    /// Brings the node's logs into its directory (where its host keeps them elsewhere).
    pub fn save_logs(&self) {
        self.process.save_logs(&self.dir);
    }

    /// Kills the node and removes what its host kept of it (logs saved first).
    pub fn dispose(&mut self) {
        self.process.dispose(&self.dir);
    }
}

#[cfg(test)]
mod activation_tests {
    use super::activation_fault_in;

    /// From a 3.9.1 migration run (zk-to-kraft, 2026-12-03), shortened.
    const FAULT: &str = "[16:00:35] INFO Registered kafka:type=kafka.Log4jController MBean (kafka.utils.Log4jControllerRegistration$)\n[16:00:36] INFO [ControllerServer id=103] Starting controller\n[16:00:42] INFO [QuorumController id=103] completeActivation[2]: event failed with NotLeaderException (treated as NotControllerException) at epoch 2\n[16:00:44] ERROR Encountered fatal fault: exception while completing controller activation (org.apache.kafka.server.fault.ProcessTerminatingFaultHandler)\njava.lang.RuntimeException: Should not have ZK migrations enabled on a cluster running metadata.version 3.0-IV1\n";

    #[test]
    fn the_fault_counts_only_since_the_last_start() {
        assert!(activation_fault_in(FAULT));
        let restarted = format!("{FAULT}[16:00:46] INFO Registered kafka:type=kafka.Log4jController MBean (kafka.utils.Log4jControllerRegistration$)\n");
        assert!(!activation_fault_in(&restarted));
        assert!(!activation_fault_in(
            "[x] INFO Registered kafka:type=kafka.Log4jController MBean\n[y] INFO Kafka Server started\n"
        ));
    }
}
