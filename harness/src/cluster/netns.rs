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

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::Arc;

use crate::cluster::docker::Engine;
use crate::cluster::host::{HostShell, NamespaceShell};
use crate::error::HarnessError;

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

/// Runs a command; an error carries its stderr.
pub fn sh(args: &[&str]) -> Result<String, String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .map_err(|e| format!("{}: {e}", args[0]))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`{}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
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
}

/// A fault as added, so that healing removes exactly it.
#[derive(Debug, Clone)]
enum Added {
    /// `iptables -A <chain> <spec>` in a namespace.
    Rule { ns: String, spec: Vec<String> },
    /// A root qdisc on a device, in a namespace (`None`: the root namespace).
    Qdisc {
        ns: Option<String>,
        dev: String,
        /// `tc qdisc replace dev DEV root …` arguments (to set it again after a restart).
        qdisc: Vec<String>,
    },
    /// An ingress policer on a container's `eth0` (Docker backend).
    Policer { ns: String, rate: String },
    /// A delay set on a proxy (healing sets it back to none).
    ProxyDelay { control: std::path::PathBuf },
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
    Err(HarnessError::Cluster(
        "no free 10.x.y.0/24 subnet for the run's bridge".into(),
    ))
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
        };
        // on any error below, drop() tears down what was made
        net.build(nodes, a, b).map_err(HarnessError::Cluster)?;
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
    fn in_host(&self, ns: &str, args: &[&str]) -> Result<String, String> {
        self.shell_of(ns)?.exec(args)
    }

    /// The shell of the host whose namespace (or container) is `ns`.
    fn shell_of(&self, ns: &str) -> Result<&Arc<dyn HostShell>, String> {
        self.hosts
            .values()
            .find(|h| h.ns == ns)
            .map(|h| &h.shell)
            .ok_or_else(|| format!("no host `{ns}` on the run's network"))
    }

    /// The run's chain and its jumps, in a host (at every start of a container).
    fn install_chain(&self, ns: &str) -> Result<(), String> {
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
                "eth0",
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
                "eth0",
                "-j",
                &self.chain,
            ],
        )?;
        Ok(())
    }

    /// A node's process has (re)started: where its host's network is new at each start (a
    /// container), sets up the chain and puts back every fault in force on it. Nothing to
    /// do on hosts whose network outlives the process (namespaces).
    pub fn host_started(&mut self, node: &str) -> Result<(), HarnessError> {
        let h = self.host(node)?;
        if h.shell.network_outlives_process() {
            return Ok(());
        }
        let ns = h.ns.clone();
        self.install_chain(&ns).map_err(HarnessError::Cluster)?;
        let again: Vec<Added> = self.faults.values().flatten().cloned().collect();
        for added in again {
            let r = match &added {
                Added::Rule { ns: n, spec } if *n == ns => {
                    let mut args = vec!["iptables", "-w", "-A", self.chain.as_str()];
                    args.extend(spec.iter().map(String::as_str));
                    self.in_host(&ns, &args).map(drop)
                }
                Added::Qdisc {
                    ns: Some(n),
                    dev,
                    qdisc,
                } if *n == ns => {
                    let mut args = vec!["tc", "qdisc", "replace", "dev", dev.as_str(), "root"];
                    args.extend(qdisc.iter().map(String::as_str));
                    self.in_host(&ns, &args).map(drop)
                }
                Added::Policer { ns: n, rate } if *n == ns => self.add_policer(&ns, rate),
                _ => Ok(()),
            };
            r.map_err(|e| HarnessError::Cluster(format!("restoring a fault on {node}: {e}")))?;
        }
        Ok(())
    }

    fn add_policer(&self, ns: &str, rate: &str) -> Result<(), String> {
        self.in_host(
            ns,
            &[
                "tc", "qdisc", "replace", "dev", "eth0", "handle", "ffff:", "ingress",
            ],
        )?;
        self.in_host(
            ns,
            &[
                "tc", "filter", "add", "dev", "eth0", "parent", "ffff:", "protocol", "ip", "u32",
                "match", "u32", "0", "0", "police", "rate", rate, "burst", "32k", "drop",
            ],
        )
        .map(drop)
    }

    fn build(&mut self, nodes: &[String], a: u8, b: u8) -> Result<(), String> {
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

    /// A host that cannot take rules now (a stopped or dormant container): its faults are
    /// recorded and set when it starts ([`Network::host_started`]).
    fn stopped_container(&self, ns: &str) -> bool {
        self.shell_of(ns).is_ok_and(|sh| !sh.is_up())
    }

    fn add_rule(&mut self, fault: &str, ns: &str, spec: Vec<String>) -> Result<(), HarnessError> {
        let mut args = vec!["iptables", "-w", "-A", self.chain.as_str()];
        args.extend(spec.iter().map(String::as_str));
        if !self.stopped_container(ns) {
            self.in_host(ns, &args).map_err(HarnessError::Cluster)?;
        }
        self.faults
            .entry(fault.to_string())
            .or_default()
            .push(Added::Rule {
                ns: ns.to_string(),
                spec,
            });
        Ok(())
    }

    /// Cuts `from` off `to`: both ways, or only packets from `from` to `to` (one way).
    /// `clients` in a group stands for the workers and the harness (the bridge address).
    pub fn partition(
        &mut self,
        fault: &str,
        from: &[String],
        to: &[String],
        both_ways: bool,
    ) -> Result<(), HarnessError> {
        self.check_new_fault(fault)?;
        let peers = |n: &str, net: &Network| -> Result<Vec<String>, HarnessError> {
            if n == "clients" {
                Ok(net.clients.clone())
            } else {
                Ok(vec![format!("{}/32", net.host(n)?.addr)])
            }
        };
        let tagged = |dir: &str, peer: &str| drop_rule(fault, &[dir, peer]);
        for a in from {
            for b in to {
                if a == b {
                    continue;
                }
                // rules live in a namespace: `a`'s, or `b`'s when `a` is the clients
                if a != "clients" {
                    let ns = self.host(a)?.ns.clone();
                    for peer in peers(b, self)? {
                        self.add_rule(fault, &ns, tagged("-d", &peer))?;
                        if both_ways {
                            self.add_rule(fault, &ns, tagged("-s", &peer))?;
                        }
                    }
                } else {
                    let ns = self.host(b)?.ns.clone();
                    for peer in self.clients.clone() {
                        self.add_rule(fault, &ns, tagged("-s", &peer))?;
                        if both_ways {
                            self.add_rule(fault, &ns, tagged("-d", &peer))?;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Drops each packet to and from `node` with `probability`.
    pub fn loss(&mut self, fault: &str, node: &str, probability: f64) -> Result<(), HarnessError> {
        self.check_new_fault(fault)?;
        let ns = self.host(node)?.ns.clone();
        let p = format!("{probability:.4}");
        let spec = drop_rule(
            fault,
            &["-m", "statistic", "--mode", "random", "--probability", &p],
        );
        self.add_rule(fault, &ns, spec)
    }

    /// Limits `node`'s traffic to `rate` (tc syntax, e.g. `1mbit`) in both directions.
    pub fn bandwidth(&mut self, fault: &str, node: &str, rate: &str) -> Result<(), HarnessError> {
        self.check_new_fault(fault)?;
        let tbf = ["tbf", "rate", rate, "burst", "32kbit", "latency", "400ms"];
        if self.host(node)?.shell.far_end().is_none() {
            // only the host's own side: what it sends through a tbf, what it receives
            // through a policer
            let ns = self.host(node)?.ns.clone();
            self.qdisc_in(fault, &ns, &tbf)?;
            if !self.stopped_container(&ns) {
                self.add_policer(&ns, rate).map_err(HarnessError::Cluster)?;
            }
            self.faults
                .entry(fault.to_string())
                .or_default()
                .push(Added::Policer {
                    ns,
                    rate: rate.to_string(),
                });
            return Ok(());
        }
        self.qdisc_both_ends(fault, node, &tbf)
    }

    /// Puts `qdisc` at the root of `eth0` in a host and records it for healing.
    fn qdisc_in(&mut self, fault: &str, ns: &str, qdisc: &[&str]) -> Result<(), HarnessError> {
        let mut args = vec!["tc", "qdisc", "replace", "dev", "eth0", "root"];
        args.extend_from_slice(qdisc);
        if !self.stopped_container(ns) {
            self.in_host(ns, &args).map_err(HarnessError::Cluster)?;
        }
        self.faults
            .entry(fault.to_string())
            .or_default()
            .push(Added::Qdisc {
                ns: Some(ns.to_string()),
                dev: "eth0".into(),
                qdisc: qdisc.iter().map(|s| s.to_string()).collect(),
            });
        Ok(())
    }

    /// Adds latency (and jitter) to `node`'s traffic in both directions: through its
    /// delaying proxy when it has one, else with netem.
    pub fn delay(
        &mut self,
        fault: &str,
        node: &str,
        delay_ms: u64,
        jitter_ms: u64,
    ) -> Result<(), HarnessError> {
        self.check_new_fault(fault)?;
        if let Some(control) = self.proxies.get(node).cloned() {
            crate::fault::proxy::set_delay(&control, delay_ms, jitter_ms)?;
            self.faults
                .entry(fault.to_string())
                .or_default()
                .push(Added::ProxyDelay { control });
            return Ok(());
        }
        if self.host(node)?.shell.far_end().is_none() {
            // only the host's own side: all of it on what it sends (a round trip takes
            // `delay` more)
            let ns = self.host(node)?.ns.clone();
            let (d, j) = (format!("{delay_ms}ms"), format!("{jitter_ms}ms"));
            return self
                .qdisc_in(fault, &ns, &["netem", "delay", &d, &j])
                .map_err(|e| {
                    HarnessError::Cluster(format!(
                        "{e} (does the engine's kernel have the netem qdisc?)"
                    ))
                });
        }
        // each direction gets half, so a round trip takes `delay` more
        let (d, j) = (
            format!("{}ms", delay_ms / 2),
            format!("{}ms", jitter_ms / 2),
        );
        self.qdisc_both_ends(fault, node, &["netem", "delay", &d, &j])
            .map_err(|e| {
                HarnessError::Cluster(format!("{e} (does this kernel have the netem qdisc?)"))
            })
    }

    /// Puts `qdisc` at the root of both ends of `node`'s veth (its `eth0`, for what it
    /// sends; the bridge side, for what it receives) and records both for healing.
    fn qdisc_both_ends(
        &mut self,
        fault: &str,
        node: &str,
        qdisc: &[&str],
    ) -> Result<(), HarnessError> {
        let h = self.host(node)?.clone();
        let far = h
            .shell
            .far_end()
            .ok_or_else(|| HarnessError::Cluster(format!("{node}: no far end to shape")))?;
        let ends = [
            (Some(h.ns.clone()), "eth0".to_string()),
            (None, far.to_string()),
        ];
        for (ns, dev) in ends {
            let mut args: Vec<&str> = vec!["tc", "qdisc", "replace", "dev", dev.as_str(), "root"];
            args.extend_from_slice(qdisc);
            match &ns {
                Some(ns) => self.in_host(ns, &args),
                None => sh(&args),
            }
            .map_err(HarnessError::Cluster)?;
            self.faults
                .entry(fault.to_string())
                .or_default()
                .push(Added::Qdisc {
                    ns,
                    dev,
                    qdisc: qdisc.iter().map(|s| s.to_string()).collect(),
                });
        }
        Ok(())
    }

    fn check_new_fault(&self, fault: &str) -> Result<(), HarnessError> {
        if self.faults.contains_key(fault) {
            return Err(HarnessError::Cluster(format!(
                "fault `{fault}` is already active; heal it first"
            )));
        }
        Ok(())
    }

    /// Active fault names.
    pub fn active_faults(&self) -> Vec<String> {
        self.faults.keys().cloned().collect()
    }

    /// Removes exactly what fault `name` added (`None`: every fault).
    pub fn heal(&mut self, name: Option<&str>) -> Result<(), HarnessError> {
        let names: Vec<String> = match name {
            Some(n) if !self.faults.contains_key(n) => {
                return Err(HarnessError::Cluster(format!(
                    "no active fault `{n}` (active: {:?})",
                    self.active_faults()
                )))
            }
            Some(n) => vec![n.to_string()],
            None => self.active_faults(),
        };
        let mut errors = Vec::new();
        for n in names {
            for added in self.faults.remove(&n).unwrap_or_default().into_iter().rev() {
                let r = match &added {
                    Added::Rule { ns, spec } => {
                        let mut args = vec!["iptables", "-w", "-D", self.chain.as_str()];
                        args.extend(spec.iter().map(String::as_str));
                        self.in_host(ns, &args)
                    }
                    Added::Qdisc {
                        ns: Some(ns), dev, ..
                    } => self.in_host(ns, &["tc", "qdisc", "del", "dev", dev, "root"]),
                    Added::Policer { ns, .. } => {
                        self.in_host(ns, &["tc", "qdisc", "del", "dev", "eth0", "ingress"])
                    }
                    Added::ProxyDelay { control } => crate::fault::proxy::set_delay(control, 0, 0)
                        .map(|()| String::new())
                        .map_err(|e| e.to_string()),
                    Added::Qdisc { ns: None, dev, .. } => {
                        sh(&["tc", "qdisc", "del", "dev", dev, "root"])
                    }
                };
                if let Err(e) = r {
                    // a host that is not up has no rules to remove (they go with its
                    // network, and are not restored once healed)
                    let stopped = match &added {
                        Added::Rule { ns, .. }
                        | Added::Policer { ns, .. }
                        | Added::Qdisc { ns: Some(ns), .. } => self.stopped_container(ns),
                        _ => false,
                    };
                    if !stopped {
                        errors.push(e);
                    }
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(HarnessError::Cluster(format!(
                "healing: {}",
                errors.join("; ")
            )))
        }
    }

    /// Deletes namespaces (with their veths, rules and qdiscs), the bridge and the FORWARD
    /// rule. Idempotent; every step is tried even when one fails.
    pub fn teardown(&mut self) {
        if self.torn_down {
            return;
        }
        self.torn_down = true;
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

/// What `harness cleanup` found and removed of the network.
#[derive(Debug, Default)]
pub struct NetworkLeftovers {
    /// Namespaces deleted.
    pub namespaces: Vec<String>,
    /// Bridges deleted.
    pub bridges: Vec<String>,
    /// Root-namespace iptables rules deleted.
    pub rules: Vec<String>,
}

/// Removes the namespaces, bridges and root rules of a run (`None`: of every run).
pub fn cleanup(run_id: Option<&str>) -> NetworkLeftovers {
    let mut out = NetworkLeftovers::default();
    let tag = run_id.map(run_tag);
    let ns_prefix = match &tag {
        Some(t) => format!("{NS_PREFIX}{t}-"),
        None => NS_PREFIX.to_string(),
    };
    for line in sh(&["ip", "netns", "list"]).unwrap_or_default().lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        if name.starts_with(&ns_prefix) && sh(&["ip", "netns", "del", name]).is_ok() {
            out.namespaces.push(name.to_string());
        }
    }
    // a deleted namespace's veths go away asynchronously: wait, then delete stragglers
    let veth_prefix = format!("kmhv{}", tag.as_deref().unwrap_or(""));
    let veths = || -> Vec<String> {
        sh(&["ip", "-o", "link", "show"])
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                l.split(": ")
                    .nth(1)
                    .map(|n| n.split('@').next().unwrap_or("").to_string())
            })
            .filter(|n| n.starts_with(&veth_prefix))
            .collect()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !veths().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    for v in veths() {
        let _ = sh(&["ip", "link", "del", &v]);
    }
    let br_prefix = match &tag {
        Some(t) => format!("{BRIDGE_PREFIX}{t}"),
        None => BRIDGE_PREFIX.to_string(),
    };
    for line in sh(&["ip", "-o", "link", "show", "type", "bridge"])
        .unwrap_or_default()
        .lines()
    {
        let name = line
            .split(": ")
            .nth(1)
            .unwrap_or("")
            .split('@')
            .next()
            .unwrap_or("");
        if name.starts_with(&br_prefix) && sh(&["ip", "link", "del", name]).is_ok() {
            out.bridges.push(name.to_string());
        }
    }
    let needle = match run_id {
        Some(id) => format!("kmh.run={id}"),
        None => "kmh.run=".to_string(),
    };
    for table in ["filter"] {
        for line in sh(&["iptables", "-w", "-t", table, "-S"])
            .unwrap_or_default()
            .lines()
        {
            if !line.starts_with("-A ") || !line.contains(&needle) {
                continue;
            }
            // `-A CHAIN spec…` → `-D CHAIN spec…`, tokenized the way iptables-save quotes
            let spec = shell_words(&line[3..]);
            let mut args = vec![
                "iptables".to_string(),
                "-w".into(),
                "-t".into(),
                table.into(),
                "-D".into(),
            ];
            args.extend(spec);
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            if sh(&refs).is_ok() {
                out.rules.push(line.to_string());
            }
        }
    }
    out
}

/// An iptables rule spec: `matches`, then the fault's comment (what `heal` and people
/// reading `iptables -S` go by), then DROP.
fn drop_rule(fault: &str, matches: &[&str]) -> Vec<String> {
    let comment = format!("fault={fault}");
    matches
        .iter()
        .copied()
        .chain(["-m", "comment", "--comment", &comment, "-j", "DROP"])
        .map(str::to_string)
        .collect()
}

/// Splits an `iptables -S` line into words, honouring double quotes.
fn shell_words(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in s.chars() {
        match c {
            '"' => quoted = !quoted,
            ' ' if !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            _ => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_of_an_iptables_rule() {
        assert_eq!(
            shell_words(
                r#"FORWARD -i kmhb1 -o kmhb1 -m comment --comment "kmh.run=a b" -j ACCEPT"#
            ),
            vec![
                "FORWARD",
                "-i",
                "kmhb1",
                "-o",
                "kmhb1",
                "-m",
                "comment",
                "--comment",
                "kmh.run=a b",
                "-j",
                "ACCEPT"
            ]
        );
    }

    #[test]
    fn tags_fit_interface_names() {
        let t = run_tag("some-long-run-id-1795320141-270f");
        assert_eq!(t.len(), 6);
        assert!(format!("kmhv{t}99").len() <= 15);
    }
}
