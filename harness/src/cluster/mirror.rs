//! MirrorMaker 2 between the run's two clusters: the dedicated driver
//! (`org.apache.kafka.connect.mirror.MirrorMaker`, the `connect-mirror` jar of the
//! distribution) as a JVM on the coordinator's host, copying the workload's topics from the
//! first cluster (`source`) to `[cluster.target]` (`target`).
//!
//! Topic names are kept (`IdentityReplicationPolicy`): after a switch-over the clients use the
//! same names on the target, as a migration by copy needs. Consumer groups' offsets are
//! checkpointed and written to the target's groups (`sync.group.offsets.enabled`) every
//! second, so a consumer switched over resumes near where it was. The process carries
//! `-Dkmh.run=RUN_ID`, so `harness cleanup` finds it after a crash; its log is
//! `mirrormaker/server.log` in the run directory.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::error::HarnessError;

use super::Distribution;

/// The source cluster's alias in MirrorMaker's configuration (and in its internal topics'
/// names).
pub const SOURCE_ALIAS: &str = "source";
/// The target cluster's alias.
pub const TARGET_ALIAS: &str = "target";

/// What a `mirror-start` step asks of MirrorMaker.
#[derive(Debug, Clone)]
pub struct MirrorSettings {
    /// The topics copied (names, not patterns).
    pub topics: Vec<String>,
    /// `exactly.once.source.support = enabled` (KIP-618): the copy is transactional on the
    /// target; without it MirrorMaker is at-least-once (a restart of a task copies again).
    pub exactly_once: bool,
    /// The replication factor of the topics MirrorMaker makes (the copies and its own).
    pub replication: u32,
    /// `tasks.max`.
    pub tasks: u32,
    /// The scenario's properties, written after the harness's (the last one wins).
    pub config: std::collections::BTreeMap<String, String>,
}

/// A running MirrorMaker 2.
pub struct MirrorMaker {
    child: Child,
    /// Its directory in the run directory (config and log).
    dir: PathBuf,
    /// What it was started with.
    pub settings: MirrorSettings,
}

impl MirrorMaker {
    /// Writes the configuration and starts the driver.
    pub fn start(
        run_id: &str,
        dist: &Distribution,
        run_dir: &Path,
        source_bootstrap: &str,
        target_bootstrap: &str,
        settings: MirrorSettings,
    ) -> Result<MirrorMaker, HarnessError> {
        if !has_mirror_jar(&dist.home) {
            return Err(HarnessError::Missing {
                what: format!(
                    "the Kafka distribution in {} has no connect-mirror jar (MirrorMaker 2)",
                    dist.home.display()
                ),
                hint: "remove that directory so the harness fetches it again with today's pom (it lists connect-mirror), or give a KAFKA_HOME with libs/connect-mirror-*.jar".into(),
            });
        }
        let dir = run_dir.join("mirrormaker");
        std::fs::create_dir_all(&dir)?;
        let config = dir.join("mm2.properties");
        std::fs::write(
            &config,
            properties(source_bootstrap, target_bootstrap, &settings),
        )?;
        // Kafka's own logging settings, as the nodes have them (server.log here)
        super::node::write_log4j(&dir, &dir)?;
        let out = std::fs::File::create(dir.join("mirrormaker.out"))?;
        let child = Command::new("java")
            .args([
                "-Xms256m".to_string(),
                "-Xmx256m".to_string(),
                "-XX:+UseSerialGC".to_string(),
                "-XX:TieredStopAtLevel=1".to_string(),
                "-Djava.net.preferIPv4Stack=true".to_string(),
                super::node::log_flags(&dir)[0].clone(),
                format!("-Dkmh.run={run_id}"),
                "-Dkmh.node=mirrormaker".to_string(),
                "-cp".to_string(),
                format!("{}/libs/*", dist.home.display()),
                "org.apache.kafka.connect.mirror.MirrorMaker".to_string(),
            ])
            // the file first: `--clusters` takes every argument after it
            .arg(&config)
            .args(["--clusters", TARGET_ALIAS])
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .process_group(0)
            .spawn()
            .map_err(|e| HarnessError::Cluster(format!("starting MirrorMaker 2: {e}")))?;
        Ok(MirrorMaker {
            child,
            dir,
            settings,
        })
    }

    /// Fails when the process has ended (it never ends on its own while it copies).
    pub fn check_alive(&mut self) -> Result<(), HarnessError> {
        match self.child.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => Err(HarnessError::Cluster(format!(
                "MirrorMaker 2 ended ({status}); see {}",
                self.dir.join("server.log").display()
            ))),
            Err(e) => Err(HarnessError::Cluster(format!("MirrorMaker 2: {e}"))),
        }
    }

    /// Stops it: SIGTERM (its tasks commit and stop), SIGKILL after `grace` (at once when
    /// `grace` is zero: a crash).
    pub fn stop(mut self, grace: std::time::Duration) {
        crate::shutdown::stop_child(&mut self.child, grace);
    }
}

impl Drop for MirrorMaker {
    fn drop(&mut self) {
        crate::shutdown::stop_child(&mut self.child, std::time::Duration::from_secs(5));
    }
}

/// True when the distribution has MirrorMaker 2's jar.
fn has_mirror_jar(home: &Path) -> bool {
    std::fs::read_dir(home.join("libs"))
        .map(|entries| {
            entries.flatten().any(|e| {
                let name = e.file_name();
                let name = name.to_string_lossy();
                name.starts_with("connect-mirror-") && !name.starts_with("connect-mirror-client")
            })
        })
        .unwrap_or(false)
}

/// MirrorMaker's `mm2.properties`: one flow, source → target, nothing back.
fn properties(source: &str, target: &str, s: &MirrorSettings) -> String {
    let rf = s.replication.max(1);
    let topics = s
        .topics
        .iter()
        .map(|t| regex_quote(t))
        .collect::<Vec<_>>()
        .join(",");
    let mut lines = vec![
        format!("clusters = {SOURCE_ALIAS}, {TARGET_ALIAS}"),
        format!("{SOURCE_ALIAS}.bootstrap.servers = {source}"),
        format!("{TARGET_ALIAS}.bootstrap.servers = {target}"),
        format!("{SOURCE_ALIAS}->{TARGET_ALIAS}.enabled = true"),
        format!("{TARGET_ALIAS}->{SOURCE_ALIAS}.enabled = false"),
        format!("{SOURCE_ALIAS}->{TARGET_ALIAS}.topics = {topics}"),
        // the same names on the target: clients switched over need no renaming
        "replication.policy.class = org.apache.kafka.connect.mirror.IdentityReplicationPolicy"
            .into(),
        format!("replication.factor = {rf}"),
        format!("checkpoints.topic.replication.factor = {rf}"),
        format!("heartbeats.topic.replication.factor = {rf}"),
        format!("offset-syncs.topic.replication.factor = {rf}"),
        format!("offset.storage.replication.factor = {rf}"),
        format!("config.storage.replication.factor = {rf}"),
        format!("status.storage.replication.factor = {rf}"),
        format!("tasks.max = {}", s.tasks.max(1)),
        // a run lasts minutes: new topics, groups and offsets within seconds, not minutes
        "refresh.topics.interval.seconds = 5".into(),
        "refresh.groups.interval.seconds = 5".into(),
        "sync.group.offsets.enabled = true".into(),
        "sync.group.offsets.interval.seconds = 1".into(),
        "emit.checkpoints.interval.seconds = 1".into(),
        "emit.heartbeats.interval.seconds = 1".into(),
        // Connect commits what the tasks copied every minute by default: the copy's
        // progress (and the at-least-once copy's re-sends after a stop) in seconds instead.
        // A worker setting: the dedicated driver takes those prefixed with the target's
        // alias (MirrorMakerConfig::workerConfig); unprefixed, it is ignored.
        format!("{TARGET_ALIAS}.offset.flush.interval.ms = 1000"),
        // an offset sync for every record copied: the translation's granularity
        "offset.lag.max = 0".into(),
        "sync.topic.acls.enabled = false".into(),
        "sync.topic.configs.enabled = true".into(),
        // the copy starts from each partition's beginning (the consumer's default is latest
        // only for groups; MirrorMaker's source consumer reads from the earliest)
        format!("{SOURCE_ALIAS}.consumer.auto.offset.reset = earliest"),
    ];
    if s.exactly_once {
        // KIP-618 in a dedicated cluster: the internal REST server (KIP-710) carries the
        // task configurations' fencing between workers
        lines.extend([
            // a worker setting too (see offset.flush.interval.ms)
            format!("{TARGET_ALIAS}.exactly.once.source.support = enabled"),
            "dedicated.mode.enable.internal.rest = true".to_string(),
            "listeners = http://127.0.0.1:0".to_string(),
        ]);
    }
    // the scenario's own settings last: a properties file's last value wins
    lines.extend(s.config.iter().map(|(k, v)| format!("{k} = {v}")));
    lines.join("\n") + "\n"
}

/// A topic name as a Java regular expression that matches only it (MirrorMaker's topic
/// list is a list of patterns; a name's '.' would match any character).
fn regex_quote(name: &str) -> String {
    name.replace('.', "\\\\.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flow_runs_one_way_with_the_names_kept_and_every_topic_listed_literally() {
        let p = properties(
            "127.0.0.1:9092",
            "127.0.0.2:9092",
            &MirrorSettings {
                topics: vec!["orders".into(), "audit.log".into()],
                exactly_once: false,
                replication: 3,
                tasks: 2,
                config: [(
                    "source.consumer.auto.offset.reset".to_string(),
                    "latest".to_string(),
                )]
                .into(),
            },
        );
        assert!(p.contains("source->target.enabled = true"));
        assert!(p.contains("target->source.enabled = false"));
        assert!(p.contains("source->target.topics = orders,audit\\\\.log"));
        assert!(p.contains("IdentityReplicationPolicy"));
        assert!(p.contains("sync.group.offsets.enabled = true"));
        assert!(!p.contains("exactly.once"));
        // the scenario's own value comes after the harness's, so it wins
        let harness = p
            .find("source.consumer.auto.offset.reset = earliest")
            .unwrap();
        let own = p
            .find("source.consumer.auto.offset.reset = latest")
            .unwrap();
        assert!(own > harness);
        // worker settings reach the worker only under the target's alias
        assert!(p.contains("target.offset.flush.interval.ms = 1000"));
    }

    #[test]
    fn exactly_once_turns_on_the_transactional_copy_and_the_internal_rest_server() {
        let p = properties(
            "a:9092",
            "b:9092",
            &MirrorSettings {
                topics: vec!["orders".into()],
                exactly_once: true,
                replication: 1,
                tasks: 1,
                config: Default::default(),
            },
        );
        assert!(p.contains("target.exactly.once.source.support = enabled"));
        assert!(p.contains("dedicated.mode.enable.internal.rest = true"));
        assert!(p.contains("replication.factor = 1"));
    }
}
