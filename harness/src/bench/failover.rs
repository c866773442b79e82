//! `harness bench failover`: seed 002's controller failover (37 s for a million partitions,
//! ZooKeeper mode) measured at several sizes, ZooKeeper mode beside KRaft on the same
//! Kafka release, brokers, workload and partitions.
//!
//! Each size and mode is one run of a failover scenario (`controller-failover-scale.toml`:
//! a `create-topics` step, the active controller killed, `wait-failover`), its
//! `create-topics` step resized; `--kraft` runs it as `harness run --kraft` does. The
//! figures are the runs' own report sections (`created_topics`, `failovers`); this prints
//! them side by side, how each grows against the partitions, and — from what the Kafka
//! processes held — how many partition replicas one broker could hold before this
//! machine's open-files or memory-map limit. Asserts nothing.

use std::path::PathBuf;

use crate::check::{CreatedTopicsSection, FailoverSection};
use crate::error::HarnessError;
use crate::scenario::{self, Action, BrokerAction, Scenario};
use crate::shutdown::Shutdown;

/// What to measure.
#[derive(Debug, Clone)]
pub struct FailoverSettings {
    /// The failover scenario (one `create-topics` step and one `wait-failover`).
    pub scenario: PathBuf,
    /// Partitions to create, one run per size and mode.
    pub sizes: Vec<u64>,
    /// Run in ZooKeeper mode (the scenario as written).
    pub zookeeper: bool,
    /// Run on KRaft of this release (`harness run --kraft`), if any.
    pub kraft: Option<String>,
    /// The created topics' replication, instead of the scenario's.
    pub replication: Option<u32>,
    /// The brokers' (and controllers') JVM heap, MiB, instead of the scenario's.
    pub heap_mb: Option<u32>,
    /// Where the runs go (one directory each).
    pub out: PathBuf,
}

/// One run's figures.
struct Row {
    mode: String,
    size: u64,
    created: CreatedTopicsSection,
    failover: FailoverSection,
    verdict: String,
}

/// Runs every size in every mode; prints each run's figures as it ends, then the growth
/// and the limits.
pub fn failover(s: FailoverSettings, shutdown: &Shutdown) -> Result<(), HarnessError> {
    let base = scenario::load(&s.scenario)?;
    let file_text = std::fs::read_to_string(&s.scenario)?;
    let per_topic = create_step(&base, &s)?.1;
    let mut modes: Vec<Option<&str>> = Vec::new();
    if s.zookeeper {
        modes.push(None);
    }
    if let Some(k) = &s.kraft {
        modes.push(Some(k));
    }
    if modes.is_empty() {
        return Err(HarnessError::BadInput(
            "bench failover: no mode to run\n  hint: --kraft VERSION, or drop --no-zookeeper"
                .into(),
        ));
    }
    println!(
        "{} · {} · sizes {:?} partitions ({} per topic)",
        s.scenario.display(),
        base.cluster.brokers.len().to_string() + " brokers",
        s.sizes,
        per_topic
    );
    println!(
        "  {:<14} {:>9} {:>9} {:>12} {:>11} {:>10} {:>8} {:>11} {:>9} {:>9} {:>8}  verdict",
        "mode",
        "partitions",
        "create s",
        "controller s",
        "all led s",
        "leaderless",
        "windows",
        "longest ms",
        "files",
        "maps",
        "RSS MiB"
    );
    let mut rows: Vec<Row> = Vec::new();
    // a mode that failed at one size is not run at larger ones (it would fail the same way)
    let mut failed: Vec<String> = Vec::new();
    for &size in &s.sizes {
        for mode in &modes {
            if shutdown.requested() {
                return Err(HarnessError::Interrupted);
            }
            let mut sc = base.clone();
            let topics = size.div_ceil(u64::from(per_topic));
            let topics = u32::try_from(topics).map_err(|_| {
                HarnessError::BadInput(format!("bench failover: {size} partitions is too many"))
            })?;
            resize(&mut sc, topics, s.replication);
            if let Some(h) = s.heap_mb {
                sc.cluster.broker_heap_mb = h;
                sc.cluster.controller_heap_mb = h;
            }
            let mode_name = match mode {
                None => format!("zookeeper {}", short(&sc.cluster.kafka_version)),
                Some(v) => {
                    scenario::on_kraft(&mut sc, v)?;
                    format!("kraft {}", short(&sc.cluster.kafka_version))
                }
            };
            if failed.contains(&mode_name) {
                continue;
            }
            let text = format!(
                "# harness bench failover: create-topics resized to {topics} topics × {per_topic}{}{}{}\n{file_text}",
                s.replication
                    .map(|r| format!(", replication {r}"))
                    .unwrap_or_default(),
                s.heap_mb
                    .map(|h| format!("; broker and controller heap {h} MiB"))
                    .unwrap_or_default(),
                mode.map(|v| format!("; run with --kraft {v}"))
                    .unwrap_or_default()
            );
            let dir = s
                .out
                .join(format!("{}-{size}", mode_name.replace([' ', '.'], "-")));
            let run_id = crate::run::run_scenario(&sc, &text, &dir, shutdown)?;
            let record = crate::rundir::RunRecord::load(&dir)?;
            let findings = crate::check::check_run(&dir, &sc)?;
            let report = crate::report::build(&sc, &run_id, record.started_ms, findings);
            crate::report::write(&dir, &report)?;
            let (Some(created), Some(failover)) = (
                report.created_topics.first().cloned(),
                report.failovers.first().cloned(),
            ) else {
                let step = report
                    .steps
                    .iter()
                    .find_map(|st| st.error.as_ref().map(|e| format!("`{}`: {e}", st.name)))
                    .unwrap_or_else(|| "no step failed".into());
                let limits = limits_hit(&dir);
                println!(
                    "  {mode_name:<14} {size:>9}  measured nothing: {step}{}",
                    if limits.is_empty() {
                        String::new()
                    } else {
                        format!(
                            "\n  {:<14} {:>9}  the nodes hit: {}",
                            "",
                            "",
                            limits.join("; ")
                        )
                    }
                );
                println!("  {:<14} {:>9}  (run: {})", "", "", dir.display());
                failed.push(mode_name);
                continue;
            };
            let row = Row {
                mode: mode_name,
                size,
                created,
                failover,
                verdict: report.verdict.to_string(),
            };
            print_row(&row);
            rows.push(row);
        }
    }
    print_growth(&rows);
    print_limits(&rows, &base.cluster.brokers);
    println!("runs: {}", s.out.display());
    Ok(())
}

/// The limits a run's Kafka nodes ran into, from their logs: the JVM's heap, open files,
/// memory maps — each node's first such line, once.
fn limits_hit(dir: &std::path::Path) -> Vec<String> {
    const SIGNS: [(&str, &str); 3] = [
        (
            "java.lang.OutOfMemoryError",
            "the JVM heap (OutOfMemoryError)",
        ),
        ("Too many open files", "the open-files limit"),
        ("Map failed", "the memory-map limit (vm.max_map_count)"),
    ];
    let mut out = Vec::new();
    let Ok(nodes) = std::fs::read_dir(dir.join("nodes")) else {
        return out;
    };
    let mut nodes: Vec<_> = nodes.flatten().map(|e| e.path()).collect();
    nodes.sort();
    for node in nodes {
        let name = node
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let text = ["server.log", "console.log"]
            .iter()
            .filter_map(|f| std::fs::read_to_string(node.join(f)).ok())
            .collect::<Vec<_>>()
            .join("\n");
        for (sign, what) in SIGNS {
            if text.contains(sign) {
                out.push(format!("{name}: {what}"));
            }
        }
    }
    out
}

/// The scenario's `create-topics` step: its index and partitions per topic; the scenario
/// must also have a `wait-failover` step.
fn create_step(sc: &Scenario, s: &FailoverSettings) -> Result<(usize, u32), HarnessError> {
    let refuse = |what: &str| {
        Err(HarnessError::BadInput(format!(
            "{}: bench failover needs {what}\n  hint: scenarios/controller-failover-scale.toml is one",
            s.scenario.display()
        )))
    };
    let Some((i, per_topic)) = sc
        .steps
        .iter()
        .enumerate()
        .find_map(|(i, st)| match &st.action {
            Action::Broker(BrokerAction::CreateTopics { partitions, .. }) => Some((i, *partitions)),
            _ => None,
        })
    else {
        return refuse("a `create-topics` step (the partitions it resizes)");
    };
    let measures = sc.steps.iter().any(|st| {
        matches!(
            st.action,
            Action::Node(crate::scenario::NodeAction::WaitFailover { .. })
        )
    });
    if !measures {
        return refuse("a `wait-failover` step (what it measures)");
    }
    Ok((i, per_topic))
}

/// Sets the first `create-topics` step's topic count (and replication).
fn resize(sc: &mut Scenario, to: u32, replication: Option<u32>) {
    for st in &mut sc.steps {
        if let Action::Broker(BrokerAction::CreateTopics {
            topics,
            replication: r,
            ..
        }) = &mut st.action
        {
            *topics = to;
            if let Some(rf) = replication {
                *r = rf;
            }
            return;
        }
    }
}

/// `3.9.1` → `3.9`.
fn short(version: &str) -> &str {
    version
        .match_indices('.')
        .nth(1)
        .map(|(i, _)| &version[..i])
        .unwrap_or(version)
}

fn print_row(r: &Row) {
    // (the busiest node is a broker: a controller holds no partition replica)
    let most = |f: fn(&crate::cluster::ProcessResources) -> u64| {
        r.created.created.nodes.values().map(f).max().unwrap_or(0)
    };
    let (f, m) = (&r.failover, &r.failover.measure);
    println!(
        "  {:<14} {:>9} {:>9.1} {:>12.2} {:>11.2} {:>10} {:>8} {:>11} {:>9} {:>9} {:>8}  {}",
        r.mode,
        r.created.created.cluster_partitions,
        r.created.created.led_ms as f64 / 1000.0,
        m.controller_ms as f64 / 1000.0,
        m.leaders_ms as f64 / 1000.0,
        m.leaderless_max,
        f.windows,
        f.max_window_ms,
        most(|p| p.open_files),
        most(|p| p.memory_maps),
        most(|p| p.rss_mib),
        r.verdict
    );
}

/// For each mode, each figure's growth from the smallest size to each larger one, beside
/// the partitions' own growth: linear growth shows as equal ratios.
fn print_growth(rows: &[Row]) {
    let mut modes: Vec<&str> = rows.iter().map(|r| r.mode.as_str()).collect();
    modes.sort_unstable();
    modes.dedup();
    println!("growth against the smallest size (partitions ×, then each figure ×):");
    for m in modes {
        let mine: Vec<&Row> = rows.iter().filter(|r| r.mode == m).collect();
        let Some(first) = mine.first() else { continue };
        for r in mine.iter().skip(1) {
            let x = |a: u64, b: u64| {
                if b == 0 {
                    "—".to_string()
                } else {
                    format!("{:.2}×", a as f64 / b as f64)
                }
            };
            println!(
                "  {m:<14} {} → {}: partitions {}, create {}, controller {}, all led {}",
                first.size,
                r.size,
                x(r.size, first.size),
                x(r.created.created.led_ms, first.created.created.led_ms),
                x(
                    r.failover.measure.controller_ms,
                    first.failover.measure.controller_ms
                ),
                x(
                    r.failover.measure.leaders_ms,
                    first.failover.measure.leaders_ms
                ),
            );
        }
    }
}

/// From the largest run: files and memory maps per partition replica on the busiest
/// broker, and how many replicas this machine's limits would let it hold.
fn print_limits(rows: &[Row], brokers: &[String]) {
    let Some(r) = rows
        .iter()
        .max_by_key(|r| r.created.created.cluster_partitions)
    else {
        return;
    };
    let c = &r.created.created;
    let replicas =
        c.cluster_partitions as f64 * f64::from(c.replication) / brokers.len().max(1) as f64;
    let Some((name, p)) = c
        .nodes
        .iter()
        .filter(|(n, _)| brokers.contains(n))
        .max_by_key(|(_, p)| p.memory_maps)
    else {
        println!("limits: no Kafka process of this machine's own to read (another backend)");
        return;
    };
    let per = |v: u64| v as f64 / replicas;
    let at = |limit: Option<u64>, used: u64| match limit {
        Some(l) if used > 0 => format!("{:.0}", l as f64 / per(used)),
        _ => "?".into(),
    };
    println!(
        "limits ({}, ~{replicas:.0} replicas per broker at {} partitions): {:.2} open files and {:.2} memory maps per replica; \
         this machine's limits (open files {}, vm.max_map_count {}) allow ~{} replicas per broker by files, ~{} by maps (the heap comes first at the default: see a failed run's line)",
        name,
        c.cluster_partitions,
        per(p.open_files),
        per(p.memory_maps),
        p.max_open_files.map(|v| v.to_string()).unwrap_or("?".into()),
        p.max_memory_maps.map(|v| v.to_string()).unwrap_or("?".into()),
        at(p.max_open_files, p.open_files),
        at(p.max_memory_maps, p.memory_maps),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> Scenario {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../scenarios/controller-failover-scale.toml");
        scenario::load(&path).unwrap()
    }

    fn settings(path: &str) -> FailoverSettings {
        FailoverSettings {
            scenario: PathBuf::from(path),
            sizes: vec![1000],
            zookeeper: true,
            kraft: None,
            replication: None,
            heap_mb: None,
            out: PathBuf::from("/nonexistent"),
        }
    }

    #[test]
    fn the_shipped_scenario_is_resized_and_converts_to_kraft() {
        let mut sc = shipped();
        let (i, per_topic) = create_step(&sc, &settings("x.toml")).unwrap();
        assert_eq!(per_topic, 100);
        resize(&mut sc, 123, Some(2));
        match &sc.steps[i].action {
            Action::Broker(BrokerAction::CreateTopics {
                topics,
                partitions,
                replication,
                ..
            }) => assert_eq!((*topics, *partitions, *replication), (123, 100, 2)),
            other => panic!("{other:?}"),
        }
        // the same procedure runs on KRaft (controller:active is then the quorum's leader)
        scenario::on_kraft(&mut sc, "3.9").unwrap();
        assert_eq!(sc.cluster.kafka_version, "3.9.1");
        assert_eq!(sc.cluster.controllers.len(), 3);
    }

    #[test]
    fn a_scenario_without_the_steps_is_refused_with_a_hint() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../scenarios/rolling-restart.toml");
        let sc = scenario::load(&path).unwrap();
        let e = create_step(&sc, &settings("rolling-restart.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("rolling-restart.toml") && e.contains("create-topics"),
            "{e}"
        );
        assert!(e.contains("controller-failover-scale.toml"), "{e}");
    }

    #[test]
    fn the_limits_a_run_hit_are_read_from_its_nodes_logs() {
        let dir = std::env::temp_dir().join(format!("kmh-limits-{}", std::process::id()));
        for (node, log, line) in [
            (
                "kafka1",
                "server.log",
                "ERROR x\njava.lang.OutOfMemoryError: Java heap space\n",
            ),
            (
                "kafka2",
                "console.log",
                "java.io.IOException: Too many open files\n",
            ),
            ("kafka3", "server.log", "INFO all well\n"),
        ] {
            std::fs::create_dir_all(dir.join("nodes").join(node)).unwrap();
            std::fs::write(dir.join("nodes").join(node).join(log), line).unwrap();
        }
        let hit = limits_hit(&dir);
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            hit,
            [
                "kafka1: the JVM heap (OutOfMemoryError)",
                "kafka2: the open-files limit"
            ]
        );
        assert!(limits_hit(std::path::Path::new("/nonexistent")).is_empty());
    }

    #[test]
    fn versions_shorten_to_their_release_line() {
        assert_eq!(short("3.9.1"), "3.9");
        assert_eq!(short("4.1"), "4.1");
    }
}
