//! Hosts with their own addresses: one Linux network namespace per node, on a bridge made
//! for the run, and the network faults that act on them.
//!
//! ```text
//!   root namespace (workers, harness)            bridge kmhb<tag>  10.A.B.1/24
//!     ├─ veth kmhv<tag><i>  ──  eth0 in netns kmh-<tag>-<node>     10.A.B.(10+i)/24
//!     └─ …
//! ```
//! Every name carries the run's tag (6 hex digits of the run id's hash): namespaces
//! `kmh-<tag>-<node>`, bridge `kmhb<tag>`, veths `kmhv<tag><i>`, the firewall chain
//! `KMH-<tag>` inside each namespace, and a comment `kmh.run=<run id>` on the one rule the
//! run adds to the root namespace (FORWARD ACCEPT for its bridge: with a Docker engine
//! running, FORWARD's policy is DROP and bridged traffic passes through iptables).
//! Deleting a namespace deletes its veth, its rules and its qdiscs; [`Network::teardown`]
//! and `harness cleanup` delete namespaces, bridge and the FORWARD rule.
//!
//! Faults are rules in the run's chain of a node's namespace (partition, loss) or `tbf`
//! qdiscs on both ends of its veth (bandwidth); each fault remembers exactly what it added,
//! and healing removes exactly that.
//!
//! On the Docker backend the hosts are containers on a network made for the run
//! (`kmh-<tag>`, labelled `kmh.run=<run id>`): the same chain and rules are set inside each
//! node container (NET_ADMIN) through the engine's `exec`, and set again whenever the
//! container starts (a container gets a fresh network namespace at each start; a fault in
//! force stays in force across a restart, as it does on a namespace host). Bandwidth and
//! delay shape the container's `eth0` (egress qdisc, ingress policer): the engine's end of
//! the veth is not the harness's to touch when the engine is remote. "clients" are the
//! gateway (the harness) and the worker containers' range.

mod cleanup;
mod faults;

pub use cleanup::{cleanup, remaining_namespaces, NetworkLeftovers};
use faults::Added;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::Arc;

use crate::cluster::docker::Engine;
use crate::cluster::host::{HostShell, NamespaceShell};
use crate::error::{HarnessError, NetworkError};
use crate::scenario::Cut;

/// First host number of worker containers on a Docker run's network (`.128`–`.254`).
pub const WORKER_HOST_FIRST: u8 = 128;
/// Worker containers a Docker run's network has addresses for (each runs many instances).
pub const MAX_WORKER_CONTAINERS: u32 = 255 - WORKER_HOST_FIRST as u32;

/// Prefix of every namespace the harness creates.
pub const NS_PREFIX: &str = "kmh-";
/// Prefix of every bridge the harness creates.
pub const BRIDGE_PREFIX: &str = "kmhb";

/// The short tag of a run id used in interface and namespace names.
pub fn run_tag(run_id: &str) -> String {
    format!("{:06x}", workers::record::run_hash(run_id) & 0xff_ffff)
}

/// Runs a command on this machine; an error carries its stderr.
pub fn sh(args: &[&str]) -> Result<String, NetworkError> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|source| NetworkError::Spawn {
            command: args.join(" "),
            source,
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(NetworkError::Command {
            command: args.join(" "),
            host: None,
            output: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

/// Why namespace hosts cannot be made here, or `None` when they can.
pub fn unavailable_reason() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("network namespaces need root (run as root, or use the loopback hosts without network faults)".into());
    }
    if sh(&["ip", "netns", "list"]).is_err() {
        return Some(
            "`ip` from iproute2 is missing or cannot manage namespaces (apt-get install iproute2)"
                .into(),
        );
    }
    if sh(&["iptables", "-w", "-S", "FORWARD"]).is_err() {
        return Some("`iptables` is missing (apt-get install iptables)".into());
    }
    None
}

/// Whether the kernel has the `netem` qdisc (needed for `delay`), tried in a scratch
/// namespace so nothing on the host is touched.
pub fn netem_available() -> bool {
    let ns = format!("{NS_PREFIX}probe-{}", std::process::id());
    if sh(&["ip", "netns", "add", &ns]).is_err() {
        return false;
    }
    let ok = sh(&[
        "ip", "netns", "exec", &ns, "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay",
        "1ms",
    ])
    .is_ok();
    let _ = sh(&["ip", "netns", "del", &ns]);
    ok
}

/// One host of the run's network: a namespace, or a container.
#[derive(Clone)]
pub struct NsHost {
    /// Namespace (or container) name.
    pub ns: String,
    /// Root-side veth name (namespace hosts).
    pub veth: String,
    /// Address on the bridge.
    pub addr: Ipv4Addr,
    /// Where its rules and qdiscs are set (the host seam).
    pub shell: Arc<dyn HostShell>,
    /// The interface its address is on (`eth0` in a namespace or a container; found on an
    /// SSH host): where rules match and qdiscs go.
    pub dev: String,
}

/// The run's bridge, namespaces and active faults.
pub struct Network {
    run_id: String,
    tag: String,
    bridge: String,
    gateway: Ipv4Addr,
    chain: String,
    /// Namespace hosts by node name.
    pub hosts: BTreeMap<String, NsHost>,
    faults: BTreeMap<String, Vec<Added>>,
    forward_rule: Option<Vec<String>>,
    torn_down: bool,
    /// Control files of the delaying proxies in front of nodes (used by `delay` where the
    /// kernel has no netem).
    pub proxies: BTreeMap<String, std::path::PathBuf>,
    /// The engine, when the hosts are containers (`NsHost::ns` is then a container name).
    engine: Option<Arc<Engine>>,
    /// What "clients" are: the harness's address, and the worker containers' range.
    clients: Vec<String>,
    /// The hosts are machines of their own (ssh backend): teardown removes exactly what
    /// the run added to them, as there is no namespace to delete.
    remote: bool,
}

/// Picks a /24 in 10.200.0.0–10.250.255.0 that no interface or route of this machine uses.
fn free_subnet(tag: &str, skip: u32) -> Result<(u8, u8), HarnessError> {
    let routes = sh(&["ip", "-4", "route", "show", "table", "all"]).unwrap_or_default()
        + &sh(&["ip", "-4", "addr"]).unwrap_or_default();
    let seed = u32::from_str_radix(tag, 16).unwrap_or(0);
    for i in skip..200u32 {
        let x = seed.wrapping_add(i.wrapping_mul(7919));
        let (a, b) = (200 + (x % 51) as u8, (x >> 8) as u8);
        let prefix = format!("10.{a}.{b}.");
        if !routes.contains(&prefix)
            && !routes.contains(&format!("10.{a}.0.0/16"))
            && !routes.contains("10.0.0.0/8")
        {
            return Ok((a, b));
        }
    }
    Err(NetworkError::NoSubnet.into())
}

impl Network {
    /// Makes the bridge and one namespace per node name (in order).
    pub fn create(run_id: &str, nodes: &[String]) -> Result<Network, HarnessError> {
        if let Some(why) = unavailable_reason() {
            return Err(HarnessError::Missing {
                what: why,
                hint: "the loopback hosts work without root but cannot take network faults".into(),
            });
        }
        let tag = run_tag(run_id);
        let (a, b) = free_subnet(&tag, 0)?;
        let mut net = Network {
            run_id: run_id.to_string(),
            tag: tag.clone(),
            bridge: format!("{BRIDGE_PREFIX}{tag}"),
            gateway: Ipv4Addr::new(10, a, b, 1),
            chain: format!("KMH-{tag}"),
            hosts: BTreeMap::new(),
            faults: BTreeMap::new(),
            forward_rule: None,
            torn_down: false,
            proxies: BTreeMap::new(),
            engine: None,
            clients: vec![format!("{}/32", Ipv4Addr::new(10, a, b, 1))],
            remote: false,
        };
        // on any error below, drop() tears down what was made
        net.build(nodes, a, b)?;
        Ok(net)
    }

    /// The Docker backend: makes the run's network on the engine and gives each node name
    /// (in order) its container name and address; the containers are made by the nodes.
    pub fn create_docker(
        run_id: &str,
        engine: Arc<Engine>,
        nodes: &[String],
    ) -> Result<Network, HarnessError> {
        let tag = run_tag(run_id);
        let name = crate::cluster::docker::network_name(run_id);
        let labels = std::collections::HashMap::from([(
            crate::cluster::docker::RUN_LABEL.to_string(),
            run_id.to_string(),
        )]);
        // this machine's routes say which subnets are taken when the engine is local; a
        // remote engine refuses an overlapping pool, and the next candidate is tried
        let mut skip = 0;
        let (a, b) = loop {
            let (a, b) = free_subnet(&tag, skip)?;
            let subnet = format!("10.{a}.{b}.0/24");
            match engine.create_network(&name, &subnet, &format!("10.{a}.{b}.1"), labels.clone()) {
                Ok(()) => break (a, b),
                Err(e) if e.to_string().contains("overlap") && skip < 20 => skip += 1,
                Err(e) => return Err(e),
            }
        };
        let hosts = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                (
                    n.clone(),
                    NsHost {
                        ns: crate::cluster::docker::container_name(run_id, n),
                        veth: String::new(),
                        addr: Ipv4Addr::new(10, a, b, 10 + i as u8),
                        shell: Arc::new(crate::cluster::docker::host::ContainerShell {
                            engine: engine.clone(),
                            name: crate::cluster::docker::container_name(run_id, n),
                        }),
                        dev: "eth0".into(),
                    },
                )
            })
            .collect();
        Ok(Network {
            run_id: run_id.to_string(),
            tag: tag.clone(),
            bridge: name,
            gateway: Ipv4Addr::new(10, a, b, 1),
            chain: format!("KMH-{tag}"),
            hosts,
            faults: BTreeMap::new(),
            forward_rule: None,
            torn_down: false,
            proxies: BTreeMap::new(),
            engine: Some(engine),
            clients: vec![
                format!("{}/32", Ipv4Addr::new(10, a, b, 1)),
                format!("{}/25", Ipv4Addr::new(10, a, b, WORKER_HOST_FIRST)),
            ],
            remote: false,
        })
    }

    /// The engine, when the hosts are containers.
    pub fn engine(&self) -> Option<&Arc<Engine>> {
        self.engine.as_ref()
    }

    /// The Docker network's name (`None` for namespace hosts).
    pub fn docker_network(&self) -> Option<&str> {
        self.engine.as_ref().map(|_| self.bridge.as_str())
    }

    /// The address of the `i`-th worker container (Docker backend).
    pub fn worker_address(&self, i: u32) -> Option<Ipv4Addr> {
        let o = self.gateway.octets();
        let host = u32::from(WORKER_HOST_FIRST) + i;
        (host < 255).then(|| Ipv4Addr::new(o[0], o[1], o[2], host as u8))
    }

    /// Runs a command in a host's network context (the host seam: its namespace, its
    /// container, …).
    fn in_host(&self, ns: &str, args: &[&str]) -> Result<String, NetworkError> {
        self.shell_of(ns)?.exec(args)
    }

    /// The interface of the host whose namespace (or container) is `ns`.
    pub(super) fn dev(&self, ns: &str) -> String {
        self.hosts
            .values()
            .find(|h| h.ns == ns)
            .map_or_else(|| "eth0".to_string(), |h| h.dev.clone())
    }

    /// The ssh backend's hosts as the run's network: each node's own machine, reached
    /// through its [`SshShell`](crate::cluster::ssh::host::SshShell); the clients are this
    /// machine (as the hosts see it) and the worker hosts. The run's chain is installed on
    /// each host, on the interface that holds its address.
    pub fn create_ssh(
        run_id: &str,
        hosts: &crate::cluster::ssh::Hosts,
    ) -> Result<Network, HarnessError> {
        let tag = run_tag(run_id);
        let first = hosts.placement.values().next().copied();
        // the address this machine talks to the hosts from
        let me = first
            .and_then(|a| sh(&["ip", "-o", "-4", "route", "get", &a.to_string()]).ok())
            .and_then(|out| {
                let words: Vec<&str> = out.split_whitespace().collect();
                words
                    .iter()
                    .position(|w| *w == "src")
                    .and_then(|i| words.get(i + 1))
                    .and_then(|w| w.parse::<Ipv4Addr>().ok())
            })
            .unwrap_or(Ipv4Addr::LOCALHOST);
        let mut clients = vec![format!("{me}/32")];
        clients.extend(hosts.inventory.workers.iter().map(|a| format!("{a}/32")));
        clients.dedup();
        let mut by_node = BTreeMap::new();
        for (node, addr) in &hosts.placement {
            let remote = hosts.by_address[addr].clone();
            let found = remote
                .sh("ip -o -4 addr show")
                .map_err(|e| HarnessError::Cluster(e.to_string()))?;
            let dev = found
                .lines()
                .find(|l| l.contains(&format!(" {addr}/")))
                .and_then(|l| l.split_whitespace().nth(1))
                .map(|d| d.split('@').next().unwrap_or(d).to_string())
                .ok_or_else(|| {
                    HarnessError::Cluster(format!(
                        "{}: no interface holds {addr} (`ip -o -4 addr show`); network faults need the node's own address",
                        remote.login
                    ))
                })?;
            by_node.insert(
                node.clone(),
                NsHost {
                    ns: node.clone(),
                    veth: String::new(),
                    addr: *addr,
                    shell: Arc::new(crate::cluster::ssh::host::SshShell { remote }),
                    dev,
                },
            );
        }
        let net = Network {
            run_id: run_id.to_string(),
            tag: tag.clone(),
            bridge: String::new(),
            gateway: me,
            chain: format!("KMH-{tag}"),
            hosts: by_node,
            faults: BTreeMap::new(),
            forward_rule: None,
            torn_down: false,
            proxies: BTreeMap::new(),
            engine: None,
            clients,
            remote: true,
        };
        for h in net.hosts.values() {
            net.install_chain(&h.ns)?;
        }
        Ok(net)
    }

    /// The shell of the host whose namespace (or container) is `ns`.
    fn shell_of(&self, ns: &str) -> Result<&Arc<dyn HostShell>, NetworkError> {
        self.hosts
            .values()
            .find(|h| h.ns == ns)
            .map(|h| &h.shell)
            .ok_or_else(|| NetworkError::NoHost(ns.to_string()))
    }

    /// The run's chain and its jumps, in a host (at every start of a container).
    fn install_chain(&self, ns: &str) -> Result<(), NetworkError> {
        let dev = self.dev(ns);
        self.in_host(ns, &["iptables", "-w", "-N", &self.chain])?;
        // faults act on the network, not on a node's own loopback traffic
        self.in_host(
            ns,
            &[
                "iptables",
                "-w",
                "-I",
                "INPUT",
                "-i",
                &dev,
                "-j",
                &self.chain,
            ],
        )?;
        self.in_host(
            ns,
            &[
                "iptables",
                "-w",
                "-I",
                "OUTPUT",
                "-o",
                &dev,
                "-j",
                &self.chain,
            ],
        )?;
        Ok(())
    }

    fn build(&mut self, nodes: &[String], a: u8, b: u8) -> Result<(), NetworkError> {
        let br = self.bridge.clone();
        sh(&["ip", "link", "add", &br, "type", "bridge"])?;
        sh(&[
            "ip",
            "addr",
            "add",
            &format!("{}/24", self.gateway),
            "dev",
            &br,
        ])?;
        sh(&["ip", "link", "set", &br, "up"])?;
        let comment = format!("kmh.run={}", self.run_id);
        let rule: Vec<String> = [
            "FORWARD",
            "-i",
            &br,
            "-o",
            &br,
            "-m",
            "comment",
            "--comment",
            &comment,
            "-j",
            "ACCEPT",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut insert = vec!["iptables", "-w", "-I"];
        insert.extend(rule.iter().map(String::as_str));
        sh(&insert)?;
        self.forward_rule = Some(rule);
        for (i, node) in nodes.iter().enumerate() {
            let ns = format!("{NS_PREFIX}{}-{node}", self.tag);
            let veth = format!("kmhv{}{i:02}", self.tag);
            let addr = Ipv4Addr::new(10, a, b, 10 + i as u8);
            sh(&["ip", "netns", "add", &ns])?;
            self.hosts.insert(
                node.clone(),
                NsHost {
                    ns: ns.clone(),
                    veth: veth.clone(),
                    addr,
                    shell: Arc::new(NamespaceShell {
                        ns: ns.clone(),
                        veth: veth.clone(),
                    }),
                    dev: "eth0".into(),
                },
            );
            sh(&[
                "ip", "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ])?;
            sh(&["ip", "link", "set", &veth, "master", &br])?;
            sh(&["ip", "link", "set", &veth, "up"])?;
            let inns = |args: &[&str]| {
                let mut v = vec!["ip", "netns", "exec", ns.as_str()];
                v.extend_from_slice(args);
                sh(&v)
            };
            inns(&["ip", "link", "set", "lo", "up"])?;
            inns(&["ip", "addr", "add", &format!("{addr}/24"), "dev", "eth0"])?;
            inns(&["ip", "link", "set", "eth0", "up"])?;
            // no default route: a node reaches the run's subnet and nothing else
            self.install_chain(&ns)?;
        }
        Ok(())
    }

    /// The address the workers (root namespace) have on the bridge.
    pub fn gateway(&self) -> Ipv4Addr {
        self.gateway
    }

    /// The run's chain name.
    pub fn chain(&self) -> &str {
        &self.chain
    }

    /// The command prefix that runs a program in a node's namespace.
    pub fn exec_prefix(&self, node: &str) -> Vec<String> {
        self.hosts
            .get(node)
            .map(|h| vec!["ip".into(), "netns".into(), "exec".into(), h.ns.clone()])
            .unwrap_or_default()
    }

    fn host(&self, node: &str) -> Result<&NsHost, HarnessError> {
        self.hosts
            .get(node)
            .ok_or_else(|| HarnessError::Cluster(format!("no namespace host `{node}`")))
    }

    /// Deletes namespaces (with their veths, rules and qdiscs), the bridge and the FORWARD
    /// rule. Idempotent; every step is tried even when one fails.
    pub fn teardown(&mut self) {
        if self.torn_down {
            return;
        }
        self.torn_down = true;
        if self.remote {
            // machines of their own: heal what is in force, then take the chain away
            if let Err(e) = self.heal(None) {
                tracing::warn!("healing the faults in force at teardown: {e}");
            }
            for h in self.hosts.values() {
                for (hook, flag) in [("INPUT", "-i"), ("OUTPUT", "-o")] {
                    let _ = h.shell.exec(&[
                        "iptables",
                        "-w",
                        "-D",
                        hook,
                        flag,
                        &h.dev,
                        "-j",
                        &self.chain,
                    ]);
                }
                let _ = h.shell.exec(&["iptables", "-w", "-F", &self.chain]);
                let _ = h.shell.exec(&["iptables", "-w", "-X", &self.chain]);
            }
            return;
        }
        self.faults.clear();
        if let Some(engine) = &self.engine {
            // containers first (normally gone already): a network with endpoints stays
            if let Ok(left) =
                engine.containers_labelled(crate::cluster::docker::RUN_LABEL, Some(&self.run_id))
            {
                for c in left {
                    let _ = engine.remove(&c.name);
                }
            }
            let _ = engine.remove_network(&self.bridge);
            return;
        }
        for h in self.hosts.values() {
            // deleting the root end of a veth pair removes both ends at once; left to the
            // namespace's deletion, the kernel frees them asynchronously — seconds later
            // when many namespaces go together
            let _ = sh(&["ip", "link", "del", &h.veth]);
            let _ = sh(&["ip", "netns", "del", &h.ns]);
        }
        // should any veth still linger, give it a moment
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::time::Instant::now() < deadline
            && self
                .hosts
                .values()
                .any(|h| sh(&["ip", "link", "show", &h.veth]).is_ok())
        {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = sh(&["ip", "link", "del", &self.bridge]);
        if let Some(rule) = self.forward_rule.take() {
            let mut args = vec!["iptables", "-w", "-D"];
            args.extend(rule.iter().map(String::as_str));
            let _ = sh(&args);
        }
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        self.teardown();
    }
}
