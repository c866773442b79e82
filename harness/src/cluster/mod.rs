//! The cluster under test: hosts, node processes and their lifecycle.
//!
//! The `local` backend runs every node as a JVM on this machine, each on its own loopback
//! address (`127.A.B.10+i`, with `A.B` drawn per run so runs never share an address), with
//! its data, config and logs inside the run directory. Every process carries
//! `-Dkmh.run=RUN_ID` on its command line so `harness cleanup` can find what a crashed run
//! left behind. [`Cluster`] tears everything down when dropped — on error and on panic too.
//!
//! The `docker` backend runs every node in a container of the node image
//! (`docker::images`) on a network made for the run (`netns::Network::create_docker`), each
//! with its own address there; configs are written here and copied in before each start,
//! logs copied out when a node dies and at the end.

pub mod cds;
pub mod dist;
pub mod docker;
pub mod ec2;
pub mod host;
mod lifecycle;
pub mod mirror;
pub mod netns;
mod node;
mod resources;
mod scope;
pub mod ssh;
mod upgrade;
mod voters;

pub use scope::CleanupScope;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::Path;

use serde::Serialize;

pub use dist::Distribution;
pub use host::{HostShell, NodeHost, NodeProcess, Signal};
pub use node::{Node, NodeKind, ZkMember};
pub use resources::{raise_open_files, ProcessResources, KAFKA_OPEN_FILES};

use crate::error::HarnessError;
use crate::kafka::Admin;
use crate::scenario::{Backend, ClusterSpec, HostMode, ZkRole};
pub use netns::Network;

/// ZooKeeper client port on every ZooKeeper host.
pub const ZK_CLIENT_PORT: u16 = 2181;
/// Kafka listener port on every broker host.
pub const KAFKA_PORT: u16 = 9092;
/// The KRaft controller listener's port on every controller host.
pub const CONTROLLER_PORT: u16 = 9093;
/// Where a broker behind the delaying proxy listens (loopback of its namespace).
pub const PROXIED_PORT: u16 = 19092;
/// The chroot Kafka keeps its metadata under.
pub const ZK_CHROOT: &str = "/kafka";

/// A node as the run directory records it.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct HostInfo {
    /// Node name.
    pub name: String,
    /// `zookeeper`, `broker` or `controller` (a dedicated KRaft controller).
    pub kind: String,
    /// The host's address.
    pub address: String,
    /// Broker id or ZooKeeper myid.
    pub id: i32,
    /// Its namespace, when the hosts are namespaces.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Its container, on the Docker backend.
    #[serde(default)]
    pub container: Option<String>,
}

/// A running (or partly running) cluster.
pub struct Cluster {
    run_id: String,
    spec: ClusterSpec,
    nodes: BTreeMap<String, Node>,
    admin: Option<Admin>,
    /// Nodes SIGSTOPped by a `pause` step and not resumed: the admin client is made
    /// without them (a paused broker keeps its connections open and answers nothing, so a
    /// metadata request sent to it waits out its timeout — a step resolving
    /// `leader:T/P` once failed so).
    paused: std::collections::BTreeSet<String>,
    /// The target cluster's admin client (`[cluster.target]`; created on first use).
    target_admin: Option<Admin>,
    /// MirrorMaker 2 from the first cluster to the target, while a `mirror-start` step's
    /// copy runs.
    mirror: Option<mirror::MirrorMaker>,
    /// When the last `mirror-wait` that succeeded started (ms since epoch): everything the
    /// source held then is on the target.
    mirror_caught_up_at: Option<u64>,
    /// The topics and setting of the last MirrorMaker started.
    mirror_settings: Option<mirror::MirrorSettings>,
    /// The copy's progress, looked at every second from the first `mirror-start` on.
    mirror_lag: Option<crate::kafka::mirror::LagSampler>,
    /// The namespace network, when the hosts are namespaces.
    network: Option<Network>,
    /// Delaying proxies in front of brokers (node, process).
    proxies: Vec<(String, std::process::Child)>,
    /// Proxy command lines to start with the cluster (node, argv).
    proxy_commands: Vec<(String, Vec<String>)>,
    /// The ZooKeeper servers each broker's `zookeeper.connect` names (its config file; in
    /// effect since its last start).
    broker_zookeeper: BTreeMap<String, Vec<String>>,
    /// What the cluster did on its own that the timeline should say (a start that had to
    /// wait); taken by the step executor after each step.
    events: Vec<ClusterEvent>,
    /// The nodes' class data sharing archives (one may be recorded by this run).
    class_archives: Vec<cds::ClassArchive>,
    /// The ssh backend's hosts, connected.
    ssh: Option<ssh::Hosts>,
    /// The ec2 backend's instances (terminated after the hosts' teardown, or when dropped).
    ec2: Option<ec2::Fleet>,
    /// The worker hosts' clocks and which worker ran where (ssh backend with worker hosts).
    clocks: Option<std::sync::Arc<std::sync::Mutex<ssh::clock::Clocks>>>,
    /// The run directory.
    run_dir: std::path::PathBuf,
    /// A KRaft cluster's id, which every node's storage was formatted with (a migration's:
    /// once its controllers are formatted).
    cluster_id: Option<String>,
    /// The controllers the quorum has as voters: a static quorum's, or a dynamic one's
    /// first voters as `add-controller` and `remove-controller` changed them.
    voters: Vec<String>,
    /// How the nodes find the quorum and were formatted.
    quorum: node::QuorumConfig,
    /// The Kafka distribution the nodes run (the storage tool is in it).
    dist: Distribution,
    /// The nodes switched to another release by `kafka-version` (the others run `dist`).
    node_dists: BTreeMap<String, Distribution>,
}

/// Something the cluster did beyond what it was asked, worth a line in the timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterEvent {
    /// When (ms since epoch).
    pub t_ms: u64,
    /// The node.
    pub node: String,
    /// What happened and why.
    pub what: String,
}

/// A broker's `zookeeper.session.timeout.ms` unless the scenario sets it.
pub const DEFAULT_ZK_SESSION_TIMEOUT_MS: u64 = 6_000;

/// A KRaft broker's `broker.session.timeout.ms` (read by the controllers) unless the
/// scenario sets it: the same failure-detection time as [`DEFAULT_ZK_SESSION_TIMEOUT_MS`].
pub const DEFAULT_KRAFT_BROKER_SESSION_TIMEOUT_MS: u64 = 6_000;

impl Cluster {
    /// Allocates addresses and writes every node's configuration; starts nothing.
    pub fn prepare(
        run_id: &str,
        spec: &ClusterSpec,
        dist: &Distribution,
        run_dir: &Path,
        needs_network: bool,
        proxied: &[String],
    ) -> Result<Cluster, HarnessError> {
        let names: Vec<String> = spec.all_nodes();
        let docker = spec.backend == Backend::Docker;
        // the ec2 backend is the ssh backend on instances it launched
        let remote = matches!(spec.backend, Backend::Ssh | Backend::Ec2);
        // SSH hosts delay with their own netem, not through a proxy here
        let proxied: &[String] = if remote { &[] } else { proxied };
        let use_namespaces = match spec.hosts {
            _ if docker || remote => false,
            HostMode::Namespaces => true,
            HostMode::Loopback => false,
            HostMode::Auto => netns::unavailable_reason().is_none(),
        };
        if needs_network && !use_namespaces && !docker && !remote {
            let why = netns::unavailable_reason()
                .unwrap_or_else(|| "the scenario asks for hosts = \"loopback\"".into());
            return Err(HarnessError::Missing {
                what: format!("this scenario has network faults, which need namespace hosts: {why}"),
                hint: "run as root with iproute2 and iptables installed (hosts = \"auto\" or \"namespaces\")".into(),
            });
        }
        let engine = if docker {
            Some(crate::cluster::docker::Engine::connect()?)
        } else {
            None
        };
        let fleet = match (&spec.backend, &spec.ec2) {
            (Backend::Ec2, Some(e)) => Some(ec2::Fleet::start(spec, e, run_id)?),
            (Backend::Ec2, None) => {
                return Err(HarnessError::BadInput(
                    "backend ec2 needs [cluster.ec2]".into(),
                ))
            }
            _ => None,
        };
        let (ssh_hosts, clocks) = if remote {
            // an error here drops `fleet`: what it launched is terminated
            let (h, c) = ssh_hosts(run_id, spec, fleet.as_ref(), dist, run_dir, needs_network)?;
            (Some(h), c)
        } else {
            (None, None)
        };
        let mut network = if let Some(hosts) = &ssh_hosts {
            needs_network
                .then(|| Network::create_ssh(run_id, hosts))
                .transpose()?
        } else if let Some(engine) = &engine {
            Some(Network::create_docker(run_id, engine.clone(), &names)?)
        } else if use_namespaces {
            Some(Network::create(run_id, &names)?)
        } else {
            None
        };
        let ips: Vec<Ipv4Addr> = match (&ssh_hosts, &network) {
            (Some(h), _) => names
                .iter()
                .map(|n| {
                    h.placement.get(n).copied().ok_or_else(|| {
                        HarnessError::Cluster(format!(
                            "node `{n}` has no host (the hosts were placed for: {})",
                            h.placement.keys().cloned().collect::<Vec<_>>().join(", ")
                        ))
                    })
                })
                .collect::<Result<_, _>>()?,
            (None, Some(net)) => names.iter().map(|n| net.hosts[n].addr).collect(),
            (None, None) => allocate_addresses(names.len())?,
        };
        let prefix = |n: &str| {
            network
                .as_ref()
                .map(|net| net.exec_prefix(n))
                .unwrap_or_default()
        };
        // the host seam: where each node runs
        let host = |n: &str| -> Box<dyn NodeHost> {
            if let Some(h) = &ssh_hosts {
                let remote = h.of(n).expect("every node is placed").clone();
                return Box::new(ssh::host::SshNodeHost {
                    archives: h.archives.get(&remote.address).cloned().unwrap_or_default(),
                    remote,
                    run_dir: h.run_dir(),
                    dist_home: h.dist_home.clone(),
                    java: h.inventory.java.clone(),
                });
            }
            match (&engine, &network) {
                (Some(engine), Some(net)) => Box::new(docker::host::ContainerHost {
                    engine: engine.clone(),
                    name: net.hosts[n].ns.clone(),
                    image: docker::images::node_image(&dist.version),
                    network: net.docker_network().unwrap_or_default().to_string(),
                }),
                _ => Box::new(host::LocalHost { prefix: prefix(n) }),
            }
        };
        let zk_addr: BTreeMap<&str, Ipv4Addr> = spec
            .zookeeper
            .iter()
            .zip(&ips)
            .map(|(n, ip)| (n.as_str(), *ip))
            .collect();
        let kafka_servers = spec
            .ensembles
            .get(&spec.kafka_ensemble)
            .cloned()
            .unwrap_or_else(|| spec.zookeeper.clone());
        let zk_connect =
            connect_string(kafka_servers.iter().map(|n| zk_addr[n.as_str()]), ZK_CHROOT);
        let mut nodes = BTreeMap::new();
        for (i, name) in spec.zookeeper.iter().enumerate() {
            let dir = run_dir.join("nodes").join(name);
            // each node starts as a participant of its own ensemble
            let group = spec
                .ensemble_of(name)
                .and_then(|e| spec.ensembles.get(e))
                .cloned()
                .unwrap_or_else(|| spec.zookeeper.clone());
            let members: Vec<ZkMember> = group
                .iter()
                .map(|m| ZkMember {
                    id: spec.zookeeper_id(m).unwrap_or(0),
                    address: zk_addr[m.as_str()],
                    role: ZkRole::Participant,
                })
                .collect();
            let node = Node::zookeeper(
                run_id,
                name,
                i as i32 + 1,
                ips[i],
                &members,
                spec,
                dist,
                &dir,
                host(name),
            )?;
            nodes.insert(name.clone(), node);
        }
        let ip_of: BTreeMap<&str, Ipv4Addr> = names
            .iter()
            .map(String::as_str)
            .zip(ips.iter().copied())
            .collect();
        // KRaft: how every node finds the quorum, and the dedicated controllers
        let controller_endpoint = |c: &String| format!("{}:{CONTROLLER_PORT}", ip_of[c.as_str()]);
        let quorum = if spec.dynamic_quorum {
            // the first voters: the controllers that start with the cluster, each with the
            // id its log directory gets at the format
            let initial: Vec<&String> = spec
                .controllers
                .iter()
                .filter(|c| !spec.dormant.contains(c))
                .collect();
            let mut listed = Vec::new();
            for c in &initial {
                listed.push(format!(
                    "{}@{}:{}",
                    spec.controller_id(c).unwrap_or(0),
                    controller_endpoint(c),
                    crate::kafka::quorum::random_cluster_id()?
                ));
            }
            node::QuorumConfig::Dynamic {
                bootstrap_servers: spec
                    .controllers
                    .iter()
                    .map(controller_endpoint)
                    .collect::<Vec<_>>()
                    .join(","),
                initial_controllers: listed.join(","),
                initial_ids: initial
                    .iter()
                    .filter_map(|c| spec.controller_id(c))
                    .collect(),
            }
        } else {
            node::QuorumConfig::Static {
                voters: spec
                    .controllers
                    .iter()
                    .map(|c| {
                        format!(
                            "{}@{}",
                            spec.controller_id(c).unwrap_or(0),
                            controller_endpoint(c)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(","),
            }
        };
        for name in spec.dedicated_controllers() {
            let node = Node::kraft(
                run_id,
                name,
                spec.controller_id(name).unwrap_or(0),
                ip_of[name.as_str()],
                node::KraftRoles {
                    broker: false,
                    controller: true,
                },
                &quorum,
                spec,
                dist,
                &run_dir.join("nodes").join(name),
                host(name),
                false,
                spec.is_migration().then_some(zk_connect.as_str()),
            )?;
            nodes.insert(name.clone(), node);
        }
        let mut proxy_commands = Vec::new();
        let mut controls = Vec::new();
        for (i, name) in spec.brokers.iter().enumerate() {
            let dir = run_dir.join("nodes").join(name);
            let ip = ip_of[name.as_str()];
            let behind_proxy = proxied.contains(name);
            let node = if spec.is_kraft() {
                Node::kraft(
                    run_id,
                    name,
                    i as i32 + 1,
                    ip,
                    node::KraftRoles {
                        broker: true,
                        controller: spec.is_controller(name),
                    },
                    &quorum,
                    spec,
                    dist,
                    &dir,
                    host(name),
                    behind_proxy,
                    None,
                )?
            } else {
                Node::broker(
                    run_id,
                    name,
                    i as i32 + 1,
                    ip,
                    &zk_connect,
                    spec,
                    dist,
                    &dir,
                    host(name),
                    behind_proxy,
                )?
            };
            if behind_proxy {
                let control = dir.join("delay.ctl");
                let mut argv = prefix(name);
                argv.push(std::env::current_exe()?.display().to_string());
                argv.extend([
                    "proxy".into(),
                    "--listen".into(),
                    format!("{ip}:{KAFKA_PORT}"),
                    "--target".into(),
                    format!("127.0.0.1:{PROXIED_PORT}"),
                ]);
                argv.extend([
                    "--control".into(),
                    control.display().to_string(),
                    "--tag".into(),
                    format!("kmh.run={run_id}"),
                ]);
                proxy_commands.push((name.clone(), argv));
                controls.push((name.clone(), control));
            }
            nodes.insert(name.clone(), node);
        }
        // the target cluster: brokers of their own on their own ensemble (never proxied)
        if let Some(t) = &spec.target {
            let servers = spec.ensembles.get(&t.ensemble).cloned().unwrap_or_default();
            let connect = connect_string(servers.iter().map(|n| zk_addr[n.as_str()]), ZK_CHROOT);
            for (i, name) in t.brokers.iter().enumerate() {
                let node = Node::broker(
                    run_id,
                    name,
                    i as i32 + 1,
                    ip_of[name.as_str()],
                    &connect,
                    spec,
                    dist,
                    &run_dir.join("nodes").join(name),
                    host(name),
                    false,
                )?;
                nodes.insert(name.clone(), node);
            }
        }
        if let Some(net) = &mut network {
            net.proxies.extend(controls);
        }
        let cluster_id = if spec.is_kraft() {
            let id = crate::kafka::quorum::random_cluster_id()?;
            format_storage(nodes.values(), dist, &id, &quorum)?;
            Some(id)
        } else {
            None
        };
        let voters = if spec.dynamic_quorum {
            spec.controllers
                .iter()
                .filter(|c| !spec.dormant.contains(c))
                .cloned()
                .collect()
        } else {
            spec.controllers.clone()
        };
        let mut cluster = Cluster {
            cluster_id,
            voters,
            quorum,
            dist: dist.clone(),
            node_dists: BTreeMap::new(),
            class_archives: vec![
                cds::ClassArchive::of(dist, cds::ZOOKEEPER),
                cds::ClassArchive::of(dist, cds::BROKER),
            ],
            run_id: run_id.to_string(),
            spec: spec.clone(),
            nodes,
            broker_zookeeper: spec
                .brokers
                .iter()
                .map(|b| (b.clone(), kafka_servers.clone()))
                .collect(),
            admin: None,
            paused: Default::default(),
            target_admin: None,
            mirror: None,
            mirror_caught_up_at: None,
            mirror_settings: None,
            mirror_lag: None,
            network,
            proxies: Vec::new(),
            proxy_commands,
            events: Vec::new(),
            ssh: ssh_hosts,
            ec2: fleet,
            clocks,
            run_dir: run_dir.to_path_buf(),
        };
        cluster.start_proxies()?;
        Ok(cluster)
    }

    /// Starts the delaying proxies (they live as long as the cluster, across node restarts).
    fn start_proxies(&mut self) -> Result<(), HarnessError> {
        for (name, argv) in self.proxy_commands.clone() {
            let log = std::fs::File::create(self.nodes[&name].dir.join("proxy.log"))?;
            let child = std::process::Command::new(&argv[0])
                .args(&argv[1..])
                .stdin(std::process::Stdio::null())
                .stdout(log.try_clone()?)
                .stderr(log)
                .process_group(0)
                .spawn()
                .map_err(|e| HarnessError::Cluster(format!("starting the proxy of {name}: {e}")))?;
            self.proxies.push((name, child));
        }
        Ok(())
    }

    /// The namespace network (`None` on loopback hosts).
    pub fn network(&mut self) -> Result<&mut Network, HarnessError> {
        self.network
            .as_mut()
            .ok_or_else(|| HarnessError::Cluster("network faults need namespace hosts".into()))
    }

    /// Where the run's worker processes go: containers on the run's network (Docker
    /// backend), else children of the harness here (`binary`). `discovery` is the run's
    /// discovery file, which containers get a copy of.
    pub fn worker_host(
        &self,
        binary: std::path::PathBuf,
        discovery: std::path::PathBuf,
        placement: crate::scenario::Placement,
    ) -> std::sync::Arc<dyn host::WorkerHost> {
        if let (Some(h), Some(clocks)) = (&self.ssh, &self.clocks) {
            return std::sync::Arc::new(ssh::host::SshWorkers {
                hosts: h.worker_hosts(),
                placement,
                run_dir: h.run_dir(),
                binary: h.worker_binary.clone(),
                discovery,
                clocks: clocks.clone(),
                local_run_dir: self.run_dir.clone(),
            });
        }
        let containers = self.network.as_ref().and_then(|net| {
            Some(docker::host::ContainerWorkers {
                engine: net.engine()?.clone(),
                network: net.docker_network()?.to_string(),
                addresses: (0..netns::MAX_WORKER_CONTAINERS)
                    .map_while(|i| net.worker_address(i))
                    .collect(),
                discovery: discovery.clone(),
            })
        });
        match containers {
            Some(c) => std::sync::Arc::new(c),
            None => std::sync::Arc::new(host::LocalWorkers { binary }),
        }
    }

    /// Starts a node's process; where its host's network is new at each start (a
    /// container), its network faults are set again.
    fn spawn_node(&mut self, name: &str) -> Result<(), HarnessError> {
        self.node(name)?.spawn()?;
        if let Some(net) = &mut self.network {
            net.host_started(name)?;
        }
        Ok(())
    }

    /// How many worker hosts the run has (ssh and ec2 backends; 0: workers run here or in
    /// containers).
    pub fn worker_host_count(&self) -> usize {
        match (&self.ssh, &self.clocks) {
            (Some(h), Some(_)) => h.worker_hosts().len(),
            _ => 0,
        }
    }

    /// The ec2 backend's instances, as run.json records them.
    pub fn ec2_record(&self) -> Option<ec2::Ec2Record> {
        self.ec2.as_ref().map(|f| f.record())
    }

    /// The ssh backend's inventory (`None` on other backends).
    pub fn ssh_inventory(&self) -> Option<&ssh::Inventory> {
        self.ssh.as_ref().map(|h| &h.inventory)
    }

    /// Every node name.
    pub fn node_names(&self) -> Vec<String> {
        self.nodes.keys().cloned().collect()
    }

    /// The run this cluster belongs to.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// `host:port` of each named node, comma-separated.
    fn addresses(&self, names: &[String], port: u16) -> String {
        names
            .iter()
            .map(|n| format!("{}:{port}", self.nodes[n].address))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// A Kafka tool of the cluster's distribution (`main_class`, e.g.
    /// `org.apache.kafka.tools.VerifiableProducer`) as a process of this run on this
    /// machine: the tools' JVM flags, `-Dkmh.run` (so `harness cleanup` finds it after a
    /// crash), its own process group, and logging into `log_dir/tools.log` (its stdout is
    /// left for its output). Arguments and stdio are the caller's.
    pub fn kafka_tool(
        &self,
        main_class: &str,
        log_dir: &Path,
    ) -> Result<std::process::Command, HarnessError> {
        node::write_log4j_to(log_dir, &log_dir.join("tools.log"))?;
        let mut c = std::process::Command::new("java");
        c.args(node::tool_jvm_flags(&self.dist))
            .args(node::log_flags(log_dir))
            .arg(format!("-Dkmh.run={}", self.run_id))
            .arg("-cp")
            .arg(self.dist.classpath())
            .arg(main_class)
            .process_group(0);
        Ok(c)
    }

    /// `bootstrap.servers` for clients.
    pub fn bootstrap(&self) -> String {
        self.addresses(&self.spec.brokers, KAFKA_PORT)
    }

    /// `bootstrap.servers` of the brokers that start with the cluster (not the dormant
    /// ones a step adds later): what the workers are first given.
    pub fn initial_bootstrap(&self) -> String {
        self.addresses(&self.initial_brokers(), KAFKA_PORT)
    }

    /// The brokers that start with the cluster (every broker not dormant).
    fn initial_brokers(&self) -> Vec<String> {
        self.spec
            .brokers
            .iter()
            .filter(|b| !self.spec.dormant.contains(b))
            .cloned()
            .collect()
    }

    /// `host:port` of the named brokers, comma-separated.
    pub fn broker_addresses(&self, brokers: &[String]) -> String {
        self.addresses(brokers, KAFKA_PORT)
    }

    /// Ids of the brokers whose process runs (a paused one counts).
    pub fn running_broker_ids(&mut self) -> Vec<i32> {
        let brokers = self.spec.brokers.clone();
        brokers
            .iter()
            .enumerate()
            .filter(|(_, b)| self.is_running(b))
            .map(|(i, _)| i as i32 + 1)
            .collect()
    }

    /// Every node, for the run record.
    pub fn hosts(&self) -> Vec<HostInfo> {
        self.nodes
            .values()
            .map(|n| HostInfo {
                name: n.name.clone(),
                kind: n.kind.as_str().into(),
                address: n.address.to_string(),
                id: n.id,
                namespace: self
                    .network
                    .as_ref()
                    .filter(|net| net.engine().is_none())
                    .and_then(|net| net.hosts.get(&n.name))
                    .map(|h| h.ns.clone()),
                container: self
                    .network
                    .as_ref()
                    .filter(|net| net.engine().is_some())
                    .and_then(|net| net.hosts.get(&n.name))
                    .map(|h| h.ns.clone()),
            })
            .collect()
    }

    /// `bootstrap.servers` of the target cluster (`[cluster.target]`; empty without one).
    pub fn target_bootstrap(&self) -> String {
        let brokers: Vec<String> = self.spec.target_brokers().cloned().collect();
        self.addresses(&brokers, KAFKA_PORT)
    }

    /// The target cluster's admin client (created on first use).
    pub fn target_admin(&mut self) -> Result<&Admin, HarnessError> {
        if self.spec.target.is_none() {
            return Err(HarnessError::Cluster(
                "this run has no target cluster ([cluster.target])".into(),
            ));
        }
        if self.target_admin.is_none() {
            self.target_admin = Some(
                Admin::new(&self.target_bootstrap())
                    .map_err(|e| HarnessError::Cluster(format!("target admin client: {e}")))?,
            );
        }
        Ok(self.target_admin.as_ref().unwrap())
    }

    /// Starts MirrorMaker 2 from this cluster to the target cluster (`partitions`: each
    /// copied topic's partition count, for the look at its progress every second).
    pub fn start_mirror(
        &mut self,
        settings: mirror::MirrorSettings,
        partitions: &[(String, u32)],
    ) -> Result<(), HarnessError> {
        if self.mirror.is_some() {
            return Err(HarnessError::Cluster(
                "MirrorMaker 2 runs already (one mirror-start per mirror-stop)".into(),
            ));
        }
        if self.mirror_lag.is_none() {
            std::fs::create_dir_all(self.run_dir.join("mirror"))?;
            self.mirror_lag = Some(crate::kafka::mirror::LagSampler::start(
                self.bootstrap(),
                self.target_bootstrap(),
                mirror::SOURCE_ALIAS.to_string(),
                partitions.to_vec(),
                self.run_dir.join(crate::kafka::mirror::LAG_FILE),
            )?);
        }
        let mm = mirror::MirrorMaker::start(
            &self.run_id,
            &self.dist,
            &self.run_dir,
            &self.bootstrap(),
            &self.target_bootstrap(),
            settings,
        )?;
        self.mirror_settings = Some(mm.settings.clone());
        self.mirror = Some(mm);
        Ok(())
    }

    /// Notes that the copy had, by `at_ms`'s end, everything the source held at `at_ms`.
    pub fn note_mirror_caught_up(&mut self, at_ms: u64) {
        self.mirror_caught_up_at = Some(at_ms);
    }

    /// When the last confirmed catch-up started, and what the last MirrorMaker copied
    /// (`None`: no MirrorMaker ran in this run).
    pub fn mirror_history(&self) -> Option<(Option<u64>, mirror::MirrorSettings)> {
        self.mirror_settings
            .clone()
            .map(|s| (self.mirror_caught_up_at, s))
    }

    /// True while MirrorMaker 2 runs (started and not stopped; it may have died).
    pub fn mirror_started(&self) -> bool {
        self.mirror.is_some()
    }

    /// The running MirrorMaker 2, checked alive.
    pub fn mirror(&mut self) -> Result<&mirror::MirrorMaker, HarnessError> {
        let mm = self.mirror.as_mut().ok_or_else(|| {
            HarnessError::Cluster("MirrorMaker 2 does not run (no mirror-start before)".into())
        })?;
        mm.check_alive()?;
        Ok(mm)
    }

    /// Stops looking at the copy's progress (the end of the run's copy).
    pub fn stop_mirror_lag(&mut self) {
        self.mirror_lag = None;
    }

    /// Stops MirrorMaker 2 (SIGTERM, then SIGKILL after `grace`; a zero `grace` kills at
    /// once); false when none ran.
    pub fn stop_mirror(&mut self, grace: std::time::Duration) -> bool {
        match self.mirror.take() {
            Some(mm) => {
                mm.stop(grace);
                true
            }
            None => false,
        }
    }

    /// The admin client (created on first use).
    pub fn admin(&mut self) -> Result<&Admin, HarnessError> {
        if self.admin.is_none() {
            let answering: Vec<String> = self
                .spec
                .brokers
                .iter()
                .filter(|b| !self.paused.contains(*b))
                .cloned()
                .collect();
            // every broker paused: the full list (nothing answers either way)
            let bootstrap = if answering.is_empty() {
                self.bootstrap()
            } else {
                self.broker_addresses(&answering)
            };
            self.admin = Some(
                Admin::new(&bootstrap)
                    .map_err(|e| HarnessError::Cluster(format!("admin client: {e}")))?,
            );
        }
        Ok(self.admin.as_ref().unwrap())
    }

    /// Every ZooKeeper node, comma-separated `host:port` (no chroot): the smoke test's list.
    pub fn zookeeper_connect(&self) -> String {
        self.addresses(&self.spec.zookeeper, ZK_CLIENT_PORT)
    }

    /// `host:port,...` of the named ZooKeeper servers (no chroot).
    pub fn zookeeper_servers(&self, names: &[String]) -> String {
        self.addresses(names, ZK_CLIENT_PORT)
    }

    /// The ZooKeeper servers the brokers' configuration names, when they all agree.
    pub fn kafka_zookeeper(&self) -> Result<Vec<String>, HarnessError> {
        let mut lists: Vec<&Vec<String>> = self.broker_zookeeper.values().collect();
        lists.dedup();
        match lists.as_slice() {
            [one] => Ok((*one).clone()),
            _ => Err(HarnessError::Cluster(format!(
                "the brokers name different ZooKeeper ensembles: {:?}",
                self.broker_zookeeper
            ))),
        }
    }

    /// The membership line of a ZooKeeper node.
    fn zk_member(&self, name: &str, role: ZkRole) -> Result<ZkMember, HarnessError> {
        let id = self
            .spec
            .zookeeper_id(name)
            .ok_or_else(|| HarnessError::Cluster(format!("`{name}` is not a ZooKeeper node")))?;
        Ok(ZkMember {
            id,
            address: self.nodes[name].address,
            role,
        })
    }

    /// The `server.N=...` string of a ZooKeeper node as the reconfig command takes it.
    pub fn zk_server_spec(&self, name: &str, role: ZkRole) -> Result<String, HarnessError> {
        let m = self.zk_member(name, role)?;
        let role = match role {
            ZkRole::Participant => "participant",
            ZkRole::Observer => "observer",
        };
        Ok(format!(
            "server.{}={}:2888:3888:{role};{}:{ZK_CLIENT_PORT}",
            m.id, m.address, m.address
        ))
    }

    /// Rewrites the `zoo.cfg` server list of `nodes` (no restart).
    pub fn set_zk_membership(
        &mut self,
        nodes: &[String],
        participants: &[String],
        observers: &[String],
    ) -> Result<(), HarnessError> {
        let mut members = Vec::new();
        for p in participants {
            members.push(self.zk_member(p, ZkRole::Participant)?);
        }
        for o in observers {
            members.push(self.zk_member(o, ZkRole::Observer)?);
        }
        members.sort_by_key(|m| m.id);
        for n in nodes {
            self.node(n)?.write_zoo_cfg(&members)?;
        }
        Ok(())
    }

    /// Points a broker's `zookeeper.connect` at `servers` (takes effect at its next start).
    pub fn set_broker_zookeeper(
        &mut self,
        broker: &str,
        servers: &[String],
    ) -> Result<(), HarnessError> {
        let connect = connect_string(servers.iter().map(|s| self.nodes[s].address), ZK_CHROOT);
        self.node(broker)?
            .set_broker_property("zookeeper.connect", &connect)?;
        self.broker_zookeeper
            .insert(broker.to_string(), servers.to_vec());
        Ok(())
    }

    fn node(&mut self, name: &str) -> Result<&mut Node, HarnessError> {
        self.nodes
            .get_mut(name)
            .ok_or_else(|| HarnessError::Cluster(format!("no node `{name}`")))
    }

    /// A KRaft cluster's id (`None` in ZooKeeper mode).
    pub fn cluster_id(&self) -> Option<&str> {
        self.cluster_id.as_deref()
    }

    /// `host:port` of every controller's controller listener (KRaft), in the scenario's order.
    pub fn controller_addresses(&self) -> Vec<String> {
        self.spec
            .controllers
            .iter()
            .map(|c| format!("{}:{CONTROLLER_PORT}", self.nodes[c].address))
            .collect()
    }

    /// `controller.quorum.voters` of the cluster's controllers: `ID@HOST:PORT,…`.
    pub fn quorum_voters(&self) -> String {
        self.spec
            .controllers
            .iter()
            .map(|c| {
                format!(
                    "{}@{}:{CONTROLLER_PORT}",
                    self.spec.controller_id(c).unwrap_or(0),
                    self.nodes[c].address
                )
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Rewrites Kafka nodes' `server.properties`: `set` and `remove`; effective at each
    /// node's next start. In a value, `{address}` is the node's address, `{id}` its broker
    /// or node id, `{voters}` the controllers' quorum (`controller.quorum.voters`).
    pub fn configure(
        &self,
        nodes: &[String],
        set: &BTreeMap<String, String>,
        remove: &[String],
    ) -> Result<(), HarnessError> {
        for name in nodes {
            let node = self
                .nodes
                .get(name)
                .ok_or_else(|| HarnessError::Cluster(format!("no node `{name}`")))?;
            if node.kind == NodeKind::ZooKeeper {
                return Err(HarnessError::Cluster(format!(
                    "{name} is a ZooKeeper node: its configuration is zoo.cfg"
                )));
            }
            for k in remove {
                node.remove_property(k)?;
            }
            for (k, v) in set {
                let value = v
                    .replace("{address}", &node.address.to_string())
                    .replace("{id}", &node.id.to_string())
                    .replace("{voters}", &self.quorum_voters());
                node.set_broker_property(k, &value)?;
            }
        }
        Ok(())
    }

    /// Formats stopped KRaft nodes' storage with `cluster_id` (a migration's controllers,
    /// which carry the id the ZooKeeper-mode brokers use); from now on the cluster's id.
    pub fn format(&mut self, names: &[String], cluster_id: &str) -> Result<(), HarnessError> {
        if let Some(other) = self.cluster_id.as_deref().filter(|c| *c != cluster_id) {
            return Err(HarnessError::Cluster(format!(
                "the cluster's nodes are formatted with cluster id {other}, not {cluster_id}"
            )));
        }
        for n in names {
            if self.is_running(n) {
                return Err(HarnessError::Cluster(format!(
                    "{n} is running: its storage is formatted before its first start"
                )));
            }
        }
        let chosen: Vec<&Node> = names.iter().filter_map(|n| self.nodes.get(n)).collect();
        format_storage(chosen.into_iter(), &self.dist, cluster_id, &self.quorum)?;
        self.cluster_id = Some(cluster_id.to_string());
        Ok(())
    }

    /// Reads the ensemble the brokers use, under Kafka's chroot: `read(servers, chroot)`
    /// on a runtime of its own; its error prefixed with `what`.
    fn read_kafka_zookeeper<T, F>(
        &self,
        what: &str,
        read: impl FnOnce(String, &'static str) -> F,
    ) -> Result<T, HarnessError>
    where
        F: std::future::Future<Output = Result<T, String>>,
    {
        let connect = self.zookeeper_servers(&self.kafka_zookeeper()?);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(read(connect, ZK_CHROOT))
            .map_err(|e| HarnessError::Cluster(format!("{what}: {e}")))
    }

    /// The cluster id the ZooKeeper-mode brokers wrote into ZooKeeper (`/cluster/id` under
    /// Kafka's chroot, in the ensemble the brokers use).
    pub fn zookeeper_cluster_id(&self) -> Result<String, HarnessError> {
        self.read_kafka_zookeeper("the cluster id in ZooKeeper", |c, root| async move {
            crate::zk::migration::cluster_id(&c, root).await
        })
    }

    /// The ZooKeeper→KRaft migration's state as the controllers recorded it in ZooKeeper
    /// (`/migration` under Kafka's chroot; `None` while there is none).
    pub fn migration_state(
        &self,
    ) -> Result<Option<crate::zk::migration::MigrationZnode>, HarnessError> {
        self.read_kafka_zookeeper("the migration state in ZooKeeper", |c, root| async move {
            crate::zk::migration::state(&c, root).await
        })
    }

    /// The active controller's node name now: a KRaft quorum's leader (DescribeQuorum,
    /// which only the leader answers) once a controller runs, before that (ZooKeeper mode,
    /// a migration's first phase) the broker ZooKeeper's `/controller` names. `None` while
    /// there is none (an election in progress).
    pub fn active_controller(&mut self) -> Result<Option<String>, HarnessError> {
        let controllers = self.spec.controllers.clone();
        if controllers.iter().any(|c| self.is_running(c)) {
            let q = self.quorum()?;
            return Ok((q.leader_id >= 0)
                .then(|| self.controller_name(q.leader_id))
                .flatten());
        }
        let id = self
            .read_kafka_zookeeper("the controller in ZooKeeper", |c, root| async move {
                crate::zk::migration::controller(&c, root).await
            })?;
        Ok(id.and_then(|id| self.broker_name(id)))
    }

    /// True when broker `name`'s process runs in KRaft mode (its configuration at its last
    /// start had `process.roles`).
    pub fn runs_kraft(&self, name: &str) -> bool {
        self.nodes.get(name).is_some_and(|n| n.kraft_at_start())
    }

    /// The running controllers that run in migration mode (they serve ZooKeeper-mode
    /// brokers and write every change to ZooKeeper too).
    pub fn migrating_controllers(&mut self) -> Vec<String> {
        let names: Vec<String> = self.spec.controllers.clone();
        names
            .into_iter()
            .filter(|c| self.is_running(c) && self.nodes[c].migrating_at_start())
            .collect()
    }

    /// The node name of a KRaft controller's node id.
    pub fn controller_name(&self, id: i32) -> Option<String> {
        self.spec
            .controllers
            .iter()
            .find(|c| self.spec.controller_id(c) == Some(id))
            .cloned()
    }

    /// The KRaft quorum as its leader describes it.
    pub fn quorum(&self) -> Result<crate::kafka::quorum::QuorumState, HarnessError> {
        crate::kafka::quorum::describe_quorum(
            &self.controller_addresses(),
            std::time::Duration::from_secs(3),
        )
        .map_err(|e| HarnessError::Cluster(format!("the controller quorum: {e}")))
    }

    /// What each running Kafka node's process holds now (open files, memory maps,
    /// resident memory); only nodes whose process is this machine's own.
    pub fn kafka_resources(&mut self) -> BTreeMap<String, ProcessResources> {
        let names: Vec<String> = self
            .spec
            .brokers
            .iter()
            .chain(&self.spec.controllers)
            .cloned()
            .collect();
        let running: Vec<String> = names.into_iter().filter(|n| self.is_running(n)).collect();
        running
            .into_iter()
            .filter_map(|n| {
                let pid = self.nodes.get(&n)?.local_pid()?;
                Some((n, ProcessResources::of_pid(pid)?))
            })
            .collect()
    }

    /// The node name of a broker id.
    pub fn broker_name(&self, id: i32) -> Option<String> {
        self.spec.broker_name(id).map(str::to_string)
    }

    /// Kills every node and waits for each to exit (a container node's logs are copied out
    /// and its container removed). Idempotent.
    pub fn teardown(&mut self) {
        // MirrorMaker (and the look at it) before the brokers it reads and writes
        self.stop_mirror_lag();
        self.stop_mirror(std::time::Duration::from_secs(5));
        for n in self.nodes.values_mut() {
            n.dispose();
        }
        for (_, p) in &mut self.proxies {
            let _ = p.kill();
            let _ = p.wait();
        }
        self.proxies.clear();
        if let Some(net) = &mut self.network {
            net.teardown();
        }
        if let Some(mut hosts) = self.ssh.take() {
            // the worker hosts' clocks once more, now that the workers have stopped
            if let Some(clocks) = &self.clocks {
                let mut c = clocks.lock().unwrap_or_else(|p| p.into_inner());
                for hc in &mut c.hosts {
                    if let Some(r) = hosts.by_address.get(&hc.host) {
                        match ssh::clock::measure(r) {
                            Ok(sample) => hc.end = Some(sample),
                            Err(e) => tracing::warn!("the clock of {} at the end: {e}", r.login),
                        }
                    }
                }
                if let Err(e) = c.save(&self.run_dir) {
                    tracing::warn!("writing clocks.json: {e}");
                }
            }
            let chain = self.network.as_ref().map(|n| n.chain().to_string());
            hosts.teardown(chain.as_deref());
        }
        // the hosts' logs are back: the instances may go
        if let Some(mut fleet) = self.ec2.take() {
            if let Err(e) = fleet.terminate() {
                tracing::warn!("{e}");
            }
        }
        // the nodes have stopped: a class list this run recorded becomes an archive
        for a in &self.class_archives {
            a.finish(&self.run_id);
        }
    }
}

/// Formats every KRaft node's log directory with `cluster_id`, the nodes in parallel (each
/// format is a JVM start, seconds of CPU), before any starts; a failure names the node and
/// carries the tool's own words.
fn format_storage<'n>(
    nodes: impl Iterator<Item = &'n Node>,
    dist: &Distribution,
    cluster_id: &str,
    quorum: &node::QuorumConfig,
) -> Result<(), HarnessError> {
    let nodes: Vec<&Node> = nodes.filter(|n| n.kind != NodeKind::ZooKeeper).collect();
    let commands: Vec<(String, Vec<String>)> = nodes
        .iter()
        .map(|n| {
            let args = quorum.format_args(n.id, n.controller);
            Ok((n.name.clone(), n.format_command(dist, cluster_id, &args)?))
        })
        .collect::<Result<_, HarnessError>>()?;
    let results: Vec<(String, std::io::Result<std::process::Output>)> = std::thread::scope(|s| {
        let handles: Vec<_> = commands
            .iter()
            .map(|(name, argv)| {
                s.spawn(move || {
                    (
                        name.clone(),
                        std::process::Command::new(&argv[0])
                            .args(&argv[1..])
                            .stdin(std::process::Stdio::null())
                            .output(),
                    )
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a format thread does not panic"))
            .collect()
    });
    for (name, out) in results {
        let out = out.map_err(|e| HarnessError::Cluster(format!("formatting {name}: {e}")))?;
        if !out.status.success() {
            return Err(HarnessError::Cluster(format!(
                "formatting the storage of {name} (kafka.tools.StorageTool format) failed ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
    }
    for n in nodes {
        n.install_formatted().map_err(|e| {
            HarnessError::Cluster(format!(
                "installing {}'s formatted storage on its host: {e}",
                n.name
            ))
        })?;
    }
    Ok(())
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// The ssh backend's hosts for a run: the inventory loaded and placed, every host
/// connected and checked, the distribution and the worker binary where they are missing,
/// and the worker hosts' clocks measured (`clocks.json`).
#[allow(clippy::type_complexity)]
fn ssh_hosts(
    run_id: &str,
    spec: &ClusterSpec,
    fleet: Option<&ec2::Fleet>,
    dist: &Distribution,
    run_dir: &Path,
    needs_network: bool,
) -> Result<
    (
        ssh::Hosts,
        Option<std::sync::Arc<std::sync::Mutex<ssh::clock::Clocks>>>,
    ),
    HarnessError,
> {
    let (inv, placement, boot) = match (fleet, &spec.ec2) {
        (Some(fleet), Some(e)) => {
            // host keys of the run's own: instance addresses are reused with new keys
            let inv = fleet.inventory(e, run_dir.join("known_hosts"));
            let placement = inv.nodes.clone();
            (inv, placement, e.boot_timeout())
        }
        _ => {
            let file = spec.inventory.as_ref().ok_or_else(|| {
                HarnessError::BadInput(
                    "backend ssh needs an inventory\n  hint: --hosts FILE, or inventory = \"…\" in [cluster]"
                        .into(),
                )
            })?;
            let inv = ssh::Inventory::load(file)?;
            let placement = inv.place(&spec.all_nodes(), &file.display().to_string())?;
            (inv, placement, std::time::Duration::ZERO)
        }
    };
    let started = std::time::Instant::now();
    let mut hosts = ssh::Hosts::connect_within(&inv, placement, run_id, boot)?;
    hosts.preflight(needs_network)?;
    hosts.install(&dist.home, &host::worker_binary()?)?;
    let archives = hosts.make_class_archives(dist);
    let copied: Vec<String> = hosts
        .copy_secs
        .iter()
        .filter(|(_, s)| **s > 0.0)
        .map(|(a, s)| format!("{a} {s:.1}s"))
        .collect();
    eprintln!(
        "harness: {} ssh host(s) ready in {:.1}s{}",
        hosts.by_address.len(),
        started.elapsed().as_secs_f64(),
        match (copied.is_empty(), archives.is_empty()) {
            (true, true) => " (everything already there)".to_string(),
            (false, true) => format!("; copied to {}", copied.join(", ")),
            (true, false) => format!("; class archives made: {}", archives.join(", ")),
            (false, false) => format!(
                "; copied to {}; class archives made: {}",
                copied.join(", "),
                archives.join(", ")
            ),
        }
    );
    let clocks = if inv.workers.is_empty() {
        None
    } else {
        let mut c = ssh::clock::Clocks::default();
        for r in hosts.worker_hosts() {
            c.hosts.push(ssh::clock::HostClock {
                host: r.address,
                start: ssh::clock::measure(&r)?,
                end: None,
            });
        }
        c.save(run_dir)?;
        Some(std::sync::Arc::new(std::sync::Mutex::new(c)))
    };
    Ok((hosts, clocks))
}

/// `a:2181,b:2181/chroot`.
fn connect_string(addresses: impl Iterator<Item = Ipv4Addr>, chroot: &str) -> String {
    let list: Vec<String> = addresses.map(|a| format!("{a}:{ZK_CLIENT_PORT}")).collect();
    format!("{}{chroot}", list.join(","))
}

/// Draws a free `127.A.B.0/24` block and returns `count` addresses in it (from `.10`).
fn allocate_addresses(count: usize) -> Result<Vec<Ipv4Addr>, HarnessError> {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as u64
        ^ (u64::from(std::process::id()) << 20);
    let mut x = seed | 1;
    for _ in 0..64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let a = 20 + (x % 230) as u8;
        let b = (x >> 8) as u8;
        let ips: Vec<Ipv4Addr> = (0..count)
            .map(|i| Ipv4Addr::new(127, a, b, 10 + i as u8))
            .collect();
        let free = ips.iter().all(|ip| {
            [ZK_CLIENT_PORT, 2888, 3888, KAFKA_PORT]
                .iter()
                .all(|port| TcpListener::bind((*ip, *port)).is_ok())
        });
        if free {
            return Ok(ips);
        }
    }
    Err(HarnessError::Cluster(
        "no free loopback address block found".into(),
    ))
}
