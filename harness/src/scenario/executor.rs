//! The step executor: runs a scenario's steps in order against the cluster, recording each
//! in the timeline (a cluster snapshot before it, its start and its end).
//!
//! A step that fails ends the procedure: the remaining steps are not run (a runbook does not
//! go on after a step that did not work), but the workload, the final read and the check
//! still happen, and the failed step appears in the report.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Duration;

use workers::clock::now_ms;

use super::{Action, ElectionKind, ReassignPlan, Scenario, Step, Target};
use crate::cluster::Cluster;
use crate::error::HarnessError;
use crate::kafka::reassign::{self, ReassignOptions};
use crate::kafka::{ClusterAdmin, ClusterSnapshot, PartitionMove};
use crate::run::timeline::{AuditFinding, Timeline, TimelineEvent};
use crate::run::workload::Switchboard;
use crate::shutdown::Shutdown;

/// How a step went.
#[derive(Debug, Clone)]
pub struct StepOutcome {
    /// Step index.
    pub index: usize,
    /// Step name.
    pub name: String,
    /// Error, when it failed.
    pub error: Option<String>,
}

/// Runs steps; keeps `bind` names across steps.
pub struct Executor<'a> {
    cluster: &'a mut Cluster,
    timeline: &'a mut Timeline,
    shutdown: &'a Shutdown,
    scenario: &'a Scenario,
    bindings: HashMap<String, String>,
    /// When each step started (ms since epoch), for `zk-copy`'s `since`.
    started: HashMap<String, u64>,
    /// Called with the step name when a step starts (for live progress).
    on_step: Box<dyn Fn(&str) + 'a>,
    /// The workers' discovery file and status (for `switch-bootstrap`).
    switchboard: Option<Switchboard>,
    /// The run directory (where a `migrate-brokers` process writes its output).
    run_dir: Option<PathBuf>,
}

impl<'a> Executor<'a> {
    /// An executor for `scenario` on `cluster`.
    pub fn new(
        cluster: &'a mut Cluster,
        timeline: &'a mut Timeline,
        shutdown: &'a Shutdown,
        scenario: &'a Scenario,
        on_step: Box<dyn Fn(&str) + 'a>,
    ) -> Self {
        Executor {
            cluster,
            timeline,
            shutdown,
            scenario,
            bindings: HashMap::new(),
            started: HashMap::new(),
            on_step,
            switchboard: None,
            run_dir: None,
        }
    }

    /// Lets `switch-bootstrap` steps move the workers, and `migrate-brokers` write into the
    /// run directory.
    pub fn with_workers(mut self, switchboard: Switchboard, run_dir: &std::path::Path) -> Self {
        self.switchboard = Some(switchboard);
        self.run_dir = Some(run_dir.to_path_buf());
        self
    }

    /// Runs every step; stops at the first failure or on shutdown.
    pub fn run_all(&mut self) -> Vec<StepOutcome> {
        let mut out = Vec::new();
        for (index, step) in self.scenario.steps.iter().enumerate() {
            if self.shutdown.requested() {
                break;
            }
            (self.on_step)(&step.name);
            // (no broker running — a block, a full stop — nothing to ask, and no time to
            // lose waiting for every broker in turn)
            let any_broker = self
                .scenario
                .cluster
                .brokers
                .iter()
                .any(|b| self.cluster.is_running(b));
            let snapshot = if any_broker {
                self.cluster
                    .admin()
                    .ok()
                    .and_then(|a| a.snapshot(Duration::from_secs(3)).ok())
            } else {
                None
            };
            if let Some(snapshot) = snapshot.clone() {
                self.timeline.record(&TimelineEvent::Snapshot {
                    t_ms: now_ms(),
                    snapshot,
                });
            }
            let t_ms = now_ms();
            self.started.insert(step.name.clone(), t_ms);
            self.timeline.record(&TimelineEvent::StepStart {
                t_ms,
                index,
                name: step.name.clone(),
                action: step.action.keyword().into(),
            });
            let (node, result) = self.execute(step, snapshot.as_ref());
            let error = result.err().map(|e| e.to_string());
            self.timeline.record(&TimelineEvent::StepEnd {
                t_ms: now_ms(),
                index,
                name: step.name.clone(),
                ok: error.is_none(),
                error: error.clone(),
                node,
            });
            if let Some(e) = &error {
                tracing::warn!("step `{}` failed: {e}", step.name);
            }
            let failed = error.is_some();
            out.push(StepOutcome {
                index,
                name: step.name.clone(),
                error,
            });
            if failed {
                break;
            }
        }
        out
    }

    fn resolve(
        &self,
        t: &Target,
        snapshot: Option<&crate::kafka::ClusterSnapshot>,
    ) -> Result<String, HarnessError> {
        let part = |topic: &str, partition: i32| {
            snapshot
                .and_then(|s| s.partition(topic, partition))
                .cloned()
                .ok_or_else(|| {
                    HarnessError::Cluster(format!("no metadata for {topic}/{partition}"))
                })
        };
        let name_of = |id: i32| {
            self.cluster.broker_name(id).ok_or_else(|| {
                HarnessError::Cluster(format!("broker id {id} is not a node of this cluster"))
            })
        };
        match t {
            Target::Node(n) => Ok(n.clone()),
            Target::Clients => Ok("clients".into()),
            Target::Bound(b) => self.bindings.get(b).cloned().ok_or_else(|| {
                HarnessError::Cluster(format!("@{b} was never bound (its step failed?)"))
            }),
            Target::Leader { topic, partition } => {
                let p = part(topic, *partition)?;
                if p.leader < 0 {
                    return Err(HarnessError::Cluster(format!(
                        "{topic}/{partition} has no leader"
                    )));
                }
                name_of(p.leader)
            }
            Target::Follower { topic, partition } => {
                let p = part(topic, *partition)?;
                let f = p
                    .isr
                    .iter()
                    .chain(p.replicas.iter())
                    .find(|r| **r != p.leader)
                    .ok_or_else(|| {
                        HarnessError::Cluster(format!(
                            "{topic}/{partition} has no follower (replicas {:?})",
                            p.replicas
                        ))
                    })?;
                name_of(*f)
            }
        }
    }

    fn execute(
        &mut self,
        step: &Step,
        snapshot: Option<&crate::kafka::ClusterSnapshot>,
    ) -> (Option<String>, Result<(), HarnessError>) {
        let sd = self.shutdown;
        let node_action = |a: &Action| match a {
            Action::Start { node }
            | Action::Stop { node }
            | Action::Kill { node }
            | Action::Pause { node }
            | Action::Resume { node }
            | Action::Restart { node } => Some(node.clone()),
            _ => None,
        };
        if let Some(target) = node_action(&step.action) {
            let name = match self.resolve(&target, snapshot) {
                Ok(n) => n,
                Err(e) => return (None, Err(e)),
            };
            if let Some(b) = &step.bind {
                self.bindings.insert(b.clone(), name.clone());
            }
            let r = match &step.action {
                Action::Start { .. } => self.cluster.start(&name, sd),
                Action::Stop { .. } => self.cluster.stop(&name, Duration::from_secs(120)),
                Action::Kill { .. } => self.cluster.kill(&name),
                Action::Pause { .. } => self.cluster.pause(&name),
                Action::Resume { .. } => self.cluster.resume(&name),
                Action::Restart { .. } => self.cluster.restart(&name, sd),
                _ => unreachable!(),
            };
            return (Some(name), r);
        }
        let r = match &step.action {
            Action::RollingRestart {
                nodes,
                interval,
                timeout,
                wait,
            } => self.rolling_restart(nodes, *interval, *timeout, *wait),
            Action::WaitHealthy { zookeeper, timeout } => {
                let deadline = std::time::Instant::now() + *timeout;
                (|| {
                    for z in zookeeper {
                        let left = deadline.saturating_duration_since(std::time::Instant::now());
                        self.cluster
                            .wait_ready(z, left.max(Duration::from_secs(1)), sd)?;
                    }
                    let left = deadline.saturating_duration_since(std::time::Instant::now());
                    self.wait_healthy(left.max(Duration::from_secs(1)))
                })()
            }
            Action::Sleep { duration } => {
                if sd.sleep(*duration) {
                    Err(HarnessError::Interrupted)
                } else {
                    Ok(())
                }
            }
            Action::Mark => {
                self.timeline.record(&TimelineEvent::Mark {
                    t_ms: now_ms(),
                    name: step.name.clone(),
                });
                Ok(())
            }
            Action::Partition {
                from,
                to,
                both_ways,
                fault,
            } => (|| {
                let from: Vec<String> = from
                    .iter()
                    .map(|t| self.resolve(t, snapshot))
                    .collect::<Result<_, _>>()?;
                let to: Vec<String> = match to {
                    Some(to) => to
                        .iter()
                        .map(|t| self.resolve(t, snapshot))
                        .collect::<Result<_, _>>()?,
                    None => self
                        .cluster
                        .node_names()
                        .into_iter()
                        .filter(|n| !from.contains(n))
                        .collect(),
                };
                tracing::info!(
                    "partition `{fault}`: {from:?} {} {to:?}",
                    if *both_ways { "<-/->" } else { "-/->" }
                );
                self.cluster
                    .network()?
                    .partition(fault, &from, &to, *both_ways)
            })(),
            Action::Heal { fault } => self
                .cluster
                .network()
                .and_then(|n| n.heal(fault.as_deref())),
            Action::Loss {
                node,
                probability,
                fault,
            } => self
                .resolve(node, snapshot)
                .and_then(|n| self.cluster.network()?.loss(fault, &n, *probability)),
            Action::Bandwidth { node, rate, fault } => self
                .resolve(node, snapshot)
                .and_then(|n| self.cluster.network()?.bandwidth(fault, &n, rate)),
            Action::Delay {
                node,
                latency,
                jitter,
                fault,
            } => self.resolve(node, snapshot).and_then(|n| {
                self.cluster.network()?.delay(
                    fault,
                    &n,
                    latency.as_millis() as u64,
                    jitter.as_millis() as u64,
                )
            }),
            Action::StartAll { nodes, timeout } => self.cluster.start_many(nodes, *timeout, sd),
            Action::RestartAll { nodes, timeout } => self.cluster.restart_many(nodes, *timeout, sd),
            Action::ZkConfig {
                nodes,
                participants,
                observers,
            } => self
                .cluster
                .set_zk_membership(nodes, participants, observers),
            Action::ZkReconfig {
                add,
                add_observers,
                remove,
                via,
                timeout,
            } => self.zk_reconfig(add, add_observers, remove, via, *timeout),
            Action::ZkConnect {
                servers,
                brokers,
                roll,
                interval,
                timeout,
            } => (|| {
                for b in brokers {
                    self.cluster.set_broker_zookeeper(b, servers)?;
                }
                if *roll {
                    self.rolling_restart(brokers, *interval, *timeout, true)?;
                }
                Ok(())
            })(),
            Action::ZkCopy {
                from,
                to,
                path,
                since,
                batch,
                prune,
            } => self.zk_copy(from, to, path, since.as_deref(), *batch, *prune),
            Action::AddBrokers { brokers, timeout } => {
                self.cluster.start_many(brokers, *timeout, sd)
            }
            Action::Reassign {
                plan,
                throttle,
                timeout,
            } => self.reassign(&step.name, plan, *throttle, *timeout),
            Action::ElectLeaders { election, topics } => self.elect(*election, topics),
            Action::Audit { min_replicas } => self.audit(&step.name, *min_replicas),
            Action::SwitchBootstrap { brokers, timeout } => (|| {
                let bootstrap = self.cluster.broker_addresses(brokers);
                let board = self.switchboard.as_ref().ok_or_else(|| {
                    HarnessError::Workers("no workers to switch (not a run)".into())
                })?;
                board.switch(&bootstrap, *timeout, sd)?;
                self.timeline.record(&TimelineEvent::BootstrapSwitch {
                    t_ms: now_ms(),
                    bootstrap,
                });
                Ok(())
            })(),
            Action::MigrateBrokers {
                map,
                bookkeeping_topic,
                throttle,
                timeout,
                interrupt_after,
            } => self.migrate_brokers(
                &step.name,
                map,
                bookkeeping_topic,
                *throttle,
                *timeout,
                *interrupt_after,
            ),
            _ => unreachable!("node actions handled above"),
        };
        (None, r)
    }

    fn broker_ids(&self, names: &[String]) -> Vec<i32> {
        names
            .iter()
            .filter_map(|n| self.scenario.cluster.broker_id(n))
            .collect()
    }

    fn fresh_snapshot(&mut self) -> Result<ClusterSnapshot, HarnessError> {
        self.cluster
            .admin()?
            .snapshot(Duration::from_secs(10))
            .map_err(|e| HarnessError::Cluster(format!("metadata: {e}")))
    }

    fn wire(&self) -> ClusterAdmin {
        ClusterAdmin::new(&self.cluster.bootstrap(), Duration::from_secs(30))
    }

    fn reassign(
        &mut self,
        step: &str,
        plan: &ReassignPlan,
        throttle: Option<u64>,
        timeout: Duration,
    ) -> Result<(), HarnessError> {
        let snapshot = self.fresh_snapshot()?;
        let running = self.cluster.running_broker_ids();
        let bad = |e: String| HarnessError::Cluster(format!("reassignment plan: {e}"));
        let mut warnings = Vec::new();
        let moves: Vec<PartitionMove> = match plan {
            ReassignPlan::Explicit(parts) => parts
                .iter()
                .map(|p| PartitionMove {
                    topic: p.topic.clone(),
                    partition: p.partition,
                    replicas: Some(self.broker_ids(&p.replicas)),
                })
                .collect(),
            ReassignPlan::Map(map) => {
                let ids: BTreeMap<i32, i32> = map
                    .iter()
                    .filter_map(|(o, n)| {
                        Some((
                            self.scenario.cluster.broker_id(o)?,
                            self.scenario.cluster.broker_id(n)?,
                        ))
                    })
                    .collect();
                let (m, w) = reassign::plan_map(&snapshot, &ids, |_| true);
                warnings = w;
                m
            }
            ReassignPlan::Raise {
                topics,
                replication,
                avoid,
            } => reassign::plan_raise(
                &snapshot,
                |t| super::topic_matches(topics, t),
                *replication as usize,
                &running,
                &self.broker_ids(avoid),
            )
            .map_err(bad)?,
            ReassignPlan::Drain { brokers, onto } => {
                let drain = self.broker_ids(brokers);
                let onto = if onto.is_empty() {
                    running
                        .iter()
                        .copied()
                        .filter(|b| !drain.contains(b))
                        .collect()
                } else {
                    self.broker_ids(onto)
                };
                reassign::plan_drain(&snapshot, &drain, &onto).map_err(bad)?
            }
        };
        tracing::info!("reassign: {} partition(s) to move", moves.len());
        let opts = ReassignOptions {
            throttle,
            timeout,
            poll: Duration::from_millis(500),
        };
        let mut wire = self.wire();
        let sd = self.shutdown;
        let admin = self.cluster.admin()?;
        let mut report = reassign::execute(admin, &mut wire, &moves, &opts, sd)
            .map_err(|e| HarnessError::Cluster(format!("reassignment: {e}")))?;
        report.warnings = warnings;
        self.timeline.record(&TimelineEvent::Reassignment {
            t_ms: now_ms(),
            step: step.to_string(),
            topic: None,
            report,
        });
        Ok(())
    }

    fn elect(&mut self, election: ElectionKind, topics: &[String]) -> Result<(), HarnessError> {
        let partitions: Option<Vec<(String, i32)>> = if topics.is_empty() {
            None
        } else {
            let snapshot = self.fresh_snapshot()?;
            Some(
                snapshot
                    .partitions
                    .iter()
                    .filter(|p| topics.iter().any(|t| super::topic_matches(t, &p.topic)))
                    .map(|p| (p.topic.clone(), p.partition))
                    .collect(),
            )
        };
        let kind = match election {
            ElectionKind::Preferred => crate::kafka::Election::Preferred,
            ElectionKind::Unclean => crate::kafka::Election::Unclean,
        };
        let errors = self
            .wire()
            .elect_leaders(kind, partitions.as_deref())
            .map_err(|e| HarnessError::Cluster(format!("leader election: {e}")))?;
        if errors.is_empty() {
            Ok(())
        } else {
            Err(HarnessError::Cluster(format!(
                "leader election refused for {}",
                errors
                    .iter()
                    .map(|e| e.error.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            )))
        }
    }

    fn audit(&mut self, step: &str, min_replicas: u32) -> Result<(), HarnessError> {
        let snapshot = self.fresh_snapshot()?;
        let admin = self.cluster.admin()?;
        let mut min_isr: HashMap<String, u32> = HashMap::new();
        let mut findings = Vec::new();
        for p in &snapshot.partitions {
            let m = match min_isr.get(&p.topic) {
                Some(m) => *m,
                None => {
                    let m = admin
                        .topic_config(&p.topic, "min.insync.replicas")
                        .ok()
                        .flatten()
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(1);
                    min_isr.insert(p.topic.clone(), m);
                    m
                }
            };
            let mut problems = Vec::new();
            if (p.replicas.len() as u32) < min_replicas {
                problems.push(format!("replicas {} < {min_replicas}", p.replicas.len()));
            }
            if (p.isr.len() as u32) < m {
                problems.push(format!("isr {} < min.insync.replicas {m}", p.isr.len()));
            }
            if !problems.is_empty() {
                findings.push(AuditFinding {
                    topic: p.topic.clone(),
                    partition: p.partition,
                    replicas: p.replicas.clone(),
                    isr: p.isr.clone(),
                    min_isr: m,
                    problems,
                });
            }
        }
        tracing::info!("audit: {} partition(s) short", findings.len());
        self.timeline.record(&TimelineEvent::Audit {
            t_ms: now_ms(),
            step: step.to_string(),
            min_replicas,
            findings,
        });
        Ok(())
    }

    /// Puts a migration process's progress into the timeline: each topic's move, and where
    /// a resumed process started from.
    fn record_migration(
        &mut self,
        step: &str,
        attempt: u32,
        event: &crate::kafka::migrate::MigrateEvent,
    ) {
        use crate::kafka::migrate::MigrateEvent;
        match event {
            MigrateEvent::TopicDone { topic, report } => {
                self.timeline.record(&TimelineEvent::Reassignment {
                    t_ms: now_ms(),
                    step: step.to_string(),
                    topic: Some(topic.clone()),
                    report: report.clone(),
                })
            }
            MigrateEvent::Start {
                recorded,
                in_flight,
                ..
            } if attempt > 1 => self.timeline.record(&TimelineEvent::Migration {
                t_ms: now_ms(),
                step: step.to_string(),
                what: format!(
                    "resumed: {} topic(s) recorded, {} partition(s) in flight",
                    recorded.len(),
                    in_flight.len()
                ),
            }),
            _ => {}
        }
    }

    /// Runs `harness migrate brokers` as a child process (tagged for cleanup); with
    /// `interrupt_after`, SIGKILLs it once that topic's move is in flight and runs it again.
    fn migrate_brokers(
        &mut self,
        step: &str,
        map: &BTreeMap<String, String>,
        bookkeeping_topic: &str,
        throttle: Option<u64>,
        timeout: Duration,
        interrupt_after: Option<u32>,
    ) -> Result<(), HarnessError> {
        use crate::kafka::migrate::MigrateEvent;
        use std::io::BufRead;
        let ids: Vec<String> = map
            .iter()
            .filter_map(|(o, n)| {
                Some(format!(
                    "{}={}",
                    self.scenario.cluster.broker_id(o)?,
                    self.scenario.cluster.broker_id(n)?
                ))
            })
            .collect();
        let run_dir = self
            .run_dir
            .clone()
            .unwrap_or_else(|| std::env::temp_dir().join(self.cluster.run_id()));
        std::fs::create_dir_all(&run_dir)?;
        let deadline = std::time::Instant::now() + timeout;
        let mut attempt: u32 = 0;
        loop {
            attempt += 1;
            let out_path = run_dir.join(format!("migrate-{step}-{attempt}.out").replace(' ', "_"));
            let mut cmd = std::process::Command::new(std::env::current_exe()?);
            cmd.args(["migrate", "brokers", "--bootstrap"])
                .arg(self.cluster.bootstrap())
                .arg("--map")
                .arg(ids.join(","))
                .arg("--bookkeeping-topic")
                .arg(bookkeeping_topic)
                .arg("--topic-timeout")
                .arg(format!("{}ms", timeout.as_millis()))
                .arg("--tag")
                .arg(format!("kmh.run={}", self.cluster.run_id()))
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::fs::File::create(out_path.with_extension("err"))?);
            if let Some(t) = throttle {
                cmd.arg("--throttle").arg(t.to_string());
            }
            let mut child = cmd
                .spawn()
                .map_err(|e| HarnessError::Cluster(format!("starting the migration: {e}")))?;
            let stdout = child.stdout.take().expect("piped");
            // the lines, as they come, on a thread (the wait below stays bounded)
            let (tx, rx) = std::sync::mpsc::channel::<String>();
            let reader = std::thread::spawn(move || {
                for line in std::io::BufReader::new(stdout)
                    .lines()
                    .map_while(Result::ok)
                {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            let mut out = std::fs::File::create(&out_path)?;
            let mut killed = false;
            let status = loop {
                while let Ok(line) = rx.try_recv() {
                    use std::io::Write;
                    let _ = writeln!(out, "{line}");
                    let event = serde_json::from_str::<MigrateEvent>(&line);
                    if let Ok(e) = &event {
                        self.record_migration(step, attempt, e);
                    }
                    match event {
                        Ok(MigrateEvent::Reassigning { topic, n, .. })
                            if attempt == 1 && interrupt_after == Some(n as u32) =>
                        {
                            // kill it once the move is really in flight (sent, not recorded)
                            let mut wire = self.wire();
                            let until = std::time::Instant::now() + Duration::from_secs(10);
                            while std::time::Instant::now() < until
                                && wire
                                    .list_reassignments()
                                    .map(|l| l.is_empty())
                                    .unwrap_or(true)
                            {
                                std::thread::sleep(Duration::from_millis(50));
                            }
                            let _ = child.kill();
                            killed = true;
                            self.timeline.record(&TimelineEvent::Migration {
                                t_ms: now_ms(),
                                step: step.to_string(),
                                what: format!("killed (SIGKILL) while moving {topic}"),
                            });
                        }
                        _ => {}
                    }
                }
                if let Some(st) = child.try_wait()? {
                    break st;
                }
                if std::time::Instant::now() >= deadline || self.shutdown.requested() {
                    let _ = child.kill();
                    let _ = child.wait();
                    let _ = reader.join();
                    return Err(if self.shutdown.requested() {
                        HarnessError::Interrupted
                    } else {
                        HarnessError::Cluster(format!(
                            "the migration did not finish within {timeout:?}; see {}",
                            out_path.with_extension("err").display()
                        ))
                    });
                }
                std::thread::sleep(Duration::from_millis(50));
            };
            let _ = reader.join();
            // lines still queued after the exit
            for line in rx.try_iter() {
                use std::io::Write;
                let _ = writeln!(out, "{line}");
                if let Ok(e) = serde_json::from_str::<MigrateEvent>(&line) {
                    self.record_migration(step, attempt, &e);
                }
            }
            if killed {
                continue;
            }
            if !status.success() {
                let err =
                    std::fs::read_to_string(out_path.with_extension("err")).unwrap_or_default();
                return Err(HarnessError::Cluster(format!(
                    "the migration failed ({status}): {}",
                    err.lines()
                        .rev()
                        .take(3)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect::<Vec<_>>()
                        .join(" / ")
                )));
            }
            if interrupt_after.is_some() && attempt == 1 {
                return Err(HarnessError::Cluster(format!(
                    "the migration ended before its topic {} moved: nothing was interrupted",
                    interrupt_after.unwrap_or(0)
                )));
            }
            return Ok(());
        }
    }

    /// A runtime for the ZooKeeper client's async calls.
    fn runtime() -> Result<tokio::runtime::Runtime, HarnessError> {
        Ok(tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?)
    }

    fn zk_copy(
        &mut self,
        from: &[String],
        to: &[String],
        path: &str,
        since: Option<&str>,
        batch: usize,
        prune: bool,
    ) -> Result<(), HarnessError> {
        use crate::zk::tree;
        // ZooKeeper's mtime is the leader's clock; allow it to be a little behind ours
        const CLOCK_MARGIN_MS: u64 = 2_000;
        let mtime_after = since
            .map(|s| {
                self.started
                    .get(s)
                    .map(|t| t.saturating_sub(CLOCK_MARGIN_MS) as i64)
                    .ok_or_else(|| HarnessError::Cluster(format!("step `{s}` never ran")))
            })
            .transpose()?;
        let (src, dst) = (
            self.cluster.zookeeper_servers(from),
            self.cluster.zookeeper_servers(to),
        );
        let opts = tree::CopyOptions {
            batch,
            mtime_after,
            prune,
            ..Default::default()
        };
        let fail = |e: tree::TreeError| HarnessError::Cluster(format!("zk-copy: {e}"));
        let report = Self::runtime()?.block_on(async {
            let s = tree::connect(&src).await.map_err(fail)?;
            let d = tree::connect(&dst).await.map_err(fail)?;
            tree::copy(&s, &d, path, &opts).await.map_err(fail)
        })?;
        tracing::info!(
            "zk-copy {path}: {} visited, {} created, {} updated, {} deleted, {} ephemeral skipped, {} transactions, {} ms",
            report.visited, report.created, report.updated, report.deleted,
            report.ephemerals_skipped, report.transactions, report.elapsed_ms
        );
        self.timeline.record(&TimelineEvent::ZkCopy {
            t_ms: now_ms(),
            path: path.to_string(),
            mtime_after,
            report,
        });
        Ok(())
    }

    fn zk_reconfig(
        &mut self,
        add: &[String],
        add_observers: &[String],
        remove: &[String],
        via: &[String],
        timeout: Duration,
    ) -> Result<(), HarnessError> {
        use crate::scenario::ZkRole;
        use crate::zk::reconfig;
        let mut joining = Vec::new();
        for n in add {
            joining.push(self.cluster.zk_server_spec(n, ZkRole::Participant)?);
        }
        for n in add_observers {
            joining.push(self.cluster.zk_server_spec(n, ZkRole::Observer)?);
        }
        let leaving: Vec<i32> = remove
            .iter()
            .filter_map(|n| self.scenario.cluster.zookeeper_id(n))
            .collect();
        // through the given servers, or any running server that is not joining
        let via: Vec<String> = if via.is_empty() {
            let mut v = Vec::new();
            for z in &self.scenario.cluster.zookeeper {
                if !add.contains(z) && !add_observers.contains(z) && self.cluster.is_running(z) {
                    v.push(z.clone());
                }
            }
            v
        } else {
            via.to_vec()
        };
        let through = self.cluster.zookeeper_servers(&via);
        // afterwards, ask a server that stays
        let stays: Vec<String> = add
            .iter()
            .chain(add_observers)
            .cloned()
            .chain(via.iter().filter(|v| !remove.contains(v)).cloned())
            .collect();
        let check_through = self.cluster.zookeeper_servers(&stays);
        let want_participants: Vec<i32> = add
            .iter()
            .filter_map(|n| self.scenario.cluster.zookeeper_id(n))
            .collect();
        let want_observers: Vec<i32> = add_observers
            .iter()
            .filter_map(|n| self.scenario.cluster.zookeeper_id(n))
            .collect();
        let applied = |c: &reconfig::EnsembleConfig| {
            let parts = c.with_role("participant");
            let obs = c.with_role("observer");
            want_participants.iter().all(|i| parts.contains(i))
                && want_observers.iter().all(|i| obs.contains(i))
                && leaving
                    .iter()
                    .all(|i| !c.servers.iter().any(|(s, _)| s == i))
        };
        let rt = Self::runtime()?;
        tracing::info!("zk-reconfig via {through}: joining {joining:?}, leaving {leaving:?}");
        let sent = rt.block_on(reconfig::incremental(&through, &joining, &leaving));
        let config = match sent {
            Ok(c) => c,
            // the answer can be lost when the server asked leaves: read what was committed
            Err(e)
                if ["connection", "session", "no answer"]
                    .iter()
                    .any(|w| e.to_lowercase().contains(w)) =>
            {
                tracing::warn!("reconfig answer lost ({e}); reading the configuration back");
                rt.block_on(reconfig::current(&check_through))
                    .map_err(HarnessError::Cluster)?
            }
            Err(e) => return Err(HarnessError::Cluster(e)),
        };
        if !applied(&config) {
            return Err(HarnessError::Cluster(format!(
                "the committed configuration (version {}) is {:?}, not what was asked",
                config.version, config.servers
            )));
        }
        self.timeline.record(&TimelineEvent::ZkConfig {
            t_ms: now_ms(),
            version: config.version.clone(),
            servers: config.servers.clone(),
        });
        // every added server serves in its role
        let deadline = std::time::Instant::now() + timeout;
        for n in add.iter().chain(add_observers) {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            self.cluster
                .wait_ready(n, left.max(Duration::from_secs(1)), self.shutdown)?;
        }
        Ok(())
    }

    fn wait_healthy(&mut self, timeout: Duration) -> Result<(), HarnessError> {
        let ids = self.cluster.running_broker_ids();
        let topics: Vec<&str> = self
            .scenario
            .workload
            .topics
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        let sd = self.shutdown;
        self.cluster
            .admin()?
            .wait_healthy(&ids, &topics, timeout, sd)
            .map(|_| ())
            .map_err(|e| HarnessError::Cluster(format!("health gate: {e}")))
    }

    fn rolling_restart(
        &mut self,
        nodes: &[String],
        interval: Duration,
        timeout: Duration,
        wait: bool,
    ) -> Result<(), HarnessError> {
        for (i, node) in nodes.iter().enumerate() {
            tracing::info!("rolling restart: {node}");
            if self.cluster.is_running(node) {
                self.cluster.stop(node, Duration::from_secs(120))?;
            }
            if wait {
                self.cluster
                    .start_many(std::slice::from_ref(node), timeout, self.shutdown)?;
                // a broker's gate also wants every partition back in sync
                if self.cluster.kind(node) == Some(crate::cluster::NodeKind::Broker) {
                    self.wait_healthy(timeout)?;
                }
            } else {
                self.cluster.spawn(node)?;
            }
            if i + 1 < nodes.len() && self.shutdown.sleep(interval) {
                return Err(HarnessError::Interrupted);
            }
        }
        Ok(())
    }
}
