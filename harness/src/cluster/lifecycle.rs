//! Node lifecycle: starting (together, or one at a time with a supervisor's retry),
//! readiness, stopping, signals.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::host::Signal;
use super::{
    Cluster, ClusterEvent, NodeKind, CONTROLLER_PORT, DEFAULT_ZK_SESSION_TIMEOUT_MS, KAFKA_PORT,
    ZK_CHROOT, ZK_CLIENT_PORT,
};
use crate::error::HarnessError;
use crate::shutdown::Shutdown;

impl Cluster {
    /// Starts the ZooKeeper ensemble, then the brokers, and waits until each is ready.
    pub fn start_all(&mut self, shutdown: &Shutdown) -> Result<(), HarnessError> {
        // Brokers start with ZooKeeper, not after it: a broker waits for its ensemble on
        // its own (zookeeper.connection.timeout.ms), and the JVMs' start-up — most of a
        // cluster's — overlaps.
        // A KRaft cluster's controllers and brokers start together too: a broker waits for
        // the quorum on its own.
        let zookeeper = self.initial_zookeeper();
        let controllers: Vec<String> = self
            .spec
            .dedicated_controllers()
            .filter(|c| !self.spec.dormant.contains(c))
            .cloned()
            .collect();
        for z in zookeeper.iter().chain(&controllers) {
            self.spawn_node(z)?;
        }
        let live = self.initial_brokers();
        let target: Vec<String> = self.spec.target_brokers().cloned().collect();
        for b in live.iter().chain(&target) {
            self.spawn_node(b)?;
        }
        let deadline = Instant::now() + Duration::from_secs(90);
        for z in zookeeper.iter().chain(&controllers) {
            let left = deadline.saturating_duration_since(Instant::now());
            self.await_start(z, left.max(Duration::from_secs(1)), shutdown)?;
        }
        if !target.is_empty() {
            let ids: Vec<i32> = target
                .iter()
                .filter_map(|b| self.spec.target_broker_id(b))
                .collect();
            self.target_admin()?
                .wait_healthy(&ids, &[], Duration::from_secs(120), shutdown)
                .map_err(|e| {
                    HarnessError::Cluster(format!("the target cluster did not come up: {e}"))
                })?;
        }
        if live.is_empty() {
            return Ok(());
        }
        let ids: Vec<i32> = live.iter().filter_map(|b| self.spec.broker_id(b)).collect();
        let admin = self.admin()?;
        admin
            .wait_healthy(&ids, &[], Duration::from_secs(120), shutdown)
            .map_err(|e| HarnessError::Cluster(format!("brokers did not come up: {e}")))?;
        Ok(())
    }

    /// The ZooKeeper nodes a run starts with (the ones not dormant).
    fn initial_zookeeper(&self) -> Vec<String> {
        self.spec
            .zookeeper
            .iter()
            .filter(|z| !self.spec.dormant.contains(z))
            .cloned()
            .collect()
    }

    /// Starts several stopped nodes at once, then waits until each is ready: ZooKeeper
    /// servers that can only elect a leader together must not be started one by one.
    pub fn start_many(
        &mut self,
        names: &[String],
        timeout: Duration,
        shutdown: &Shutdown,
    ) -> Result<(), HarnessError> {
        for n in names {
            self.spawn_node(n)?;
        }
        let deadline = Instant::now() + timeout;
        for n in names {
            let left = deadline.saturating_duration_since(Instant::now());
            self.await_start(n, left.max(Duration::from_secs(1)), shutdown)?;
        }
        Ok(())
    }

    /// Waits until a node just spawned is ready. A broker SIGKILLed and started again at
    /// once finds its old ZooKeeper session still holding `/brokers/ids/N` and exits
    /// (`NodeExistsException` at startup) until the session expires; a KRaft controller may
    /// be stopped by Kafka's fault handler while completing its activation
    /// ([`super::node::Node::activation_fault`]). Like an operator's supervisor (systemd
    /// `Restart=`), the start is tried again after such an exit, for at most twice the
    /// session timeout (plus a margin) — and the exits are recorded in the timeline.
    fn await_start(
        &mut self,
        name: &str,
        timeout: Duration,
        shutdown: &Shutdown,
    ) -> Result<(), HarnessError> {
        let deadline = Instant::now() + timeout;
        // the first refusal's time, how many, and why (what the supervisor saw)
        let mut refused: Option<(Instant, u32, String)> = None;
        loop {
            let left = deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_secs(1));
            let ready = self.wait_ready(name, left, shutdown);
            let why = {
                let n = self.node(name)?;
                if ready.is_err() && n.registration_refused() {
                    Some(format!(
                        "its killed process's ZooKeeper session still held {ZK_CHROOT}/brokers/ids/{} (NodeExists); started again until the session expired",
                        n.id
                    ))
                } else if ready.is_err() && n.activation_fault() {
                    Some("Kafka's fault handler stopped it while completing its activation (it lost the quorum's leadership mid-activation and found an empty log at metadata.version 3.0-IV1, which a migration refuses); started again, as a supervisor would".to_string())
                } else {
                    None
                }
            };
            match (ready, why) {
                (Ok(()), _) => {
                    if let Some((since, tries, why)) = refused {
                        self.events.push(ClusterEvent {
                            t_ms: workers::clock::now_ms(),
                            node: name.to_string(),
                            what: format!(
                                "start refused {tries} time(s): {why}; ready {:.1} s after the first refusal",
                                since.elapsed().as_secs_f64()
                            ),
                        });
                    }
                    return Ok(());
                }
                (Err(e), Some(why)) => {
                    let (since, tries, first) = refused.get_or_insert((Instant::now(), 0, why));
                    *tries += 1;
                    let limit = self.session_timeout() * 2 + Duration::from_secs(5);
                    if since.elapsed() > limit || Instant::now() >= deadline {
                        return Err(HarnessError::Cluster(format!(
                            "{name}: start refused {tries} time(s) over {:.1} s: {first}; it did not come up: {e}",
                            since.elapsed().as_secs_f64()
                        )));
                    }
                    tracing::info!("{name}: start refused ({first}); starting again");
                    if shutdown.sleep(Duration::from_millis(500)) {
                        return Err(HarnessError::Interrupted);
                    }
                    self.spawn_node(name)?;
                }
                (Err(e), None) => return Err(e),
            }
        }
    }

    /// The brokers' ZooKeeper session timeout.
    fn session_timeout(&self) -> Duration {
        let ms = self
            .spec
            .broker_config
            .get("zookeeper.session.timeout.ms")
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_ZK_SESSION_TIMEOUT_MS);
        Duration::from_millis(ms)
    }

    /// Records something a step did to a node that the timeline should say.
    pub fn note(&mut self, node: &str, what: String) {
        self.events.push(ClusterEvent {
            t_ms: workers::clock::now_ms(),
            node: node.to_string(),
            what,
        });
    }

    /// What the cluster did on its own since the last call (oldest first).
    pub fn take_events(&mut self) -> Vec<ClusterEvent> {
        std::mem::take(&mut self.events)
    }

    /// Stops several nodes, then starts them together and waits until each is ready.
    pub fn restart_many(
        &mut self,
        names: &[String],
        timeout: Duration,
        shutdown: &Shutdown,
    ) -> Result<(), HarnessError> {
        for n in names {
            if self.is_running(n) {
                self.stop(n, Duration::from_secs(120))?;
            }
        }
        self.start_many(names, timeout, shutdown)
    }

    /// True when the node's process is running (a paused one counts).
    pub fn is_running(&mut self, name: &str) -> bool {
        self.nodes.get_mut(name).is_some_and(|n| n.is_running())
    }

    /// The kind of a node.
    pub fn kind(&self, name: &str) -> Option<NodeKind> {
        self.nodes.get(name).map(|n| n.kind)
    }

    /// Waits until a node serves: a ZooKeeper node answers `srvr` with a mode, a broker is
    /// registered in the cluster metadata, a KRaft controller answers on its listener and
    /// the quorum's leader counts it caught up (a combined node: both).
    pub fn wait_ready(
        &mut self,
        name: &str,
        timeout: Duration,
        shutdown: &Shutdown,
    ) -> Result<(), HarnessError> {
        let deadline = Instant::now() + timeout;
        let (kind, addr, id, votes) = {
            let n = self.node(name)?;
            (n.kind, n.address, n.id, n.controller)
        };
        loop {
            self.node(name)?.check_alive()?;
            let ready = match kind {
                NodeKind::ZooKeeper => {
                    crate::zk::server_mode(SocketAddr::from((addr, ZK_CLIENT_PORT))).is_some()
                }
                // a target broker: registered in its own cluster
                NodeKind::Broker if self.spec.is_target_broker(name) => self
                    .target_admin()?
                    .snapshot(Duration::from_secs(3))
                    .map(|s| s.brokers.contains(&id))
                    .unwrap_or(false),
                // registered, and accepting connections (a broker registers first)
                NodeKind::Broker => {
                    self.admin()?
                        .snapshot(Duration::from_secs(3))
                        .map(|s| s.brokers.contains(&id))
                        .unwrap_or(false)
                        && std::net::TcpStream::connect_timeout(
                            &SocketAddr::from((addr, KAFKA_PORT)),
                            Duration::from_secs(1),
                        )
                        .is_ok()
                        && (!votes || self.controller_ready(addr, id))
                }
                NodeKind::Controller => self.controller_ready(addr, id),
            };
            if ready {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(HarnessError::Cluster(format!(
                    "{name} not ready after {timeout:?}; see {}",
                    self.node(name)?.dir.join("server.log").display()
                )));
            }
            if shutdown.sleep(Duration::from_millis(100)) {
                return Err(HarnessError::Interrupted);
            }
        }
    }

    /// True when the KRaft controller `id` at `addr` serves requests on its listener (a
    /// process that only bound the port does not answer ApiVersions yet) and the quorum's
    /// leader counts it within [`CAUGHT_UP_SLACK`](crate::kafka::quorum::CAUGHT_UP_SLACK)
    /// of the high watermark.
    fn controller_ready(&self, addr: std::net::Ipv4Addr, id: i32) -> bool {
        crate::kafka::BrokerConnection::connect(
            &format!("{addr}:{CONTROLLER_PORT}"),
            Duration::from_secs(1),
        )
        .is_ok()
            && self
                .quorum()
                .is_ok_and(|q| q.leader_id >= 0 && q.caught_up(id))
    }

    /// KRaft's part of the health gate: the quorum has a leader and every running
    /// controller is caught up. Nothing to wait for in ZooKeeper mode.
    pub fn wait_quorum(
        &mut self,
        timeout: Duration,
        shutdown: &Shutdown,
    ) -> Result<(), HarnessError> {
        // (a migration's controllers: from their format on)
        if !self.spec.has_controllers() || self.cluster_id.is_none() {
            return Ok(());
        }
        let deadline = Instant::now() + timeout;
        loop {
            let mut running = Vec::new();
            for c in self.spec.controllers.clone() {
                if self.is_running(&c) {
                    running.extend(self.spec.controller_id(&c));
                }
            }
            let state = self.quorum();
            let behind: Vec<i32> = match &state {
                Ok(q) if q.leader_id >= 0 => running
                    .iter()
                    .copied()
                    .filter(|id| !q.caught_up(*id))
                    .collect(),
                _ => running.clone(),
            };
            if behind.is_empty() && state.is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(HarnessError::Cluster(match state {
                    Ok(q) => format!(
                        "the controller quorum is not healthy after {timeout:?}: leader {}, controllers {behind:?} not caught up (high watermark {})",
                        q.leader_id, q.high_watermark
                    ),
                    Err(e) => format!("the controller quorum is not healthy after {timeout:?}: {e}"),
                }));
            }
            if shutdown.sleep(Duration::from_millis(200)) {
                return Err(HarnessError::Interrupted);
            }
        }
    }

    /// Starts a stopped node's process without waiting for it to be ready.
    pub fn spawn(&mut self, name: &str) -> Result<(), HarnessError> {
        self.spawn_node(name)
    }

    /// Starts a stopped node and waits until it is ready (a broker refused by its old
    /// ZooKeeper registration is started again: [`Cluster::start_many`]).
    pub fn start(&mut self, name: &str, shutdown: &Shutdown) -> Result<(), HarnessError> {
        self.start_many(&[name.to_string()], Duration::from_secs(120), shutdown)
    }

    /// Stops a node gracefully (SIGTERM; a broker does its controlled shutdown), waiting up
    /// to `timeout` before SIGKILL.
    pub fn stop(&mut self, name: &str, timeout: Duration) -> Result<(), HarnessError> {
        self.node(name)?.terminate(timeout)?;
        self.unpaused(name);
        Ok(())
    }

    /// SIGKILLs a node.
    pub fn kill(&mut self, name: &str) -> Result<(), HarnessError> {
        self.node(name)?.kill()?;
        self.unpaused(name);
        Ok(())
    }

    /// SIGSTOPs a node. The admin client is made again without it (see `paused`).
    pub fn pause(&mut self, name: &str) -> Result<(), HarnessError> {
        self.node(name)?.signal(Signal::Stop)?;
        if self.paused.insert(name.to_string()) {
            self.admin = None;
        }
        Ok(())
    }

    /// SIGCONTs a paused node.
    pub fn resume(&mut self, name: &str) -> Result<(), HarnessError> {
        self.node(name)?.signal(Signal::Cont)?;
        self.unpaused(name);
        Ok(())
    }

    /// `name` answers again (resumed) or is gone (killed): the admin client may use it.
    fn unpaused(&mut self, name: &str) {
        if self.paused.remove(name) {
            self.admin = None;
        }
    }
}
