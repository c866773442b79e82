//! Issue [5] end to end: the Docker backend runs the local backend's scenarios unchanged
//! but for `--backend docker` (nodes and workers in containers on a network made for the
//! run) and gives the same verdicts, checked by the same assertions as the local tests
//! (`e2e::verdicts`); a run killed mid-way leaves containers and a network that
//! `harness cleanup` removes, after copying the workers' logs out so the run can still be
//! checked; a worker container that dies has its log copied out at once.
//!
//! `kraft-rolling-restart` runs there too (Kafka 4.1 in KRaft mode, the same checks as on
//! the local backend), and `mirrormaker-switch-over` (two clusters and MirrorMaker 2).
//!
//! They need a Docker engine (`DOCKER_HOST`, or the local socket): without one they fail
//! with `NOT RUN:`, never pass. `.ci/run` installs and starts one and builds the images.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use e2e::{
    assert_refused_before_start, cluster_lock, harness_bin, run_dir, run_scenario_on, sh,
    start_run_with, tagged_processes, u, verdicts, wait_bounded, KillOnDrop, RunGuard,
};
use serde_json::Value;

const DOCKER: &[&str] = &["--backend", "docker"];

/// Fails loudly (never passes) when no engine answers.
fn require_docker() {
    let out = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output();
    let ok = out.as_ref().map(|o| o.status.success()).unwrap_or(false);
    assert!(
        ok,
        "NOT RUN: no Docker engine answers ({}); install docker.io and start dockerd, or set DOCKER_HOST",
        out.map(|o| String::from_utf8_lossy(&o.stderr).trim().to_string())
            .unwrap_or_else(|e| format!("no docker client: {e}"))
    );
}

/// The run's containers and networks still on the engine.
fn left_on_engine(run_id: &str) -> Vec<String> {
    let label = format!("label=kmh.run={run_id}");
    let mut out: Vec<String> = sh(&[
        "docker",
        "ps",
        "-a",
        "--filter",
        &label,
        "--format",
        "container {{.Names}}",
    ])
    .lines()
    .map(str::to_string)
    .collect();
    out.extend(
        sh(&[
            "docker",
            "network",
            "ls",
            "--filter",
            &label,
            "--format",
            "network {{.Name}}",
        ])
        .lines()
        .map(str::to_string),
    );
    out
}

fn run_record(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("run.json")).unwrap()).unwrap()
}

/// The run ran on containers, and left nothing on the engine nor in /proc.
fn assert_ran_on_docker_and_left_nothing(o: &e2e::Outcome) {
    let run = run_record(&o.guard.dir);
    assert_eq!(run["backend"], "docker");
    let id = run["run_id"].as_str().unwrap();
    for h in run["hosts"].as_array().unwrap() {
        assert!(
            h["container"]
                .as_str()
                .is_some_and(|c| c.starts_with("kmh-")),
            "every node in a container: {h}"
        );
        // the node's log came out of its container
        let log = o
            .guard
            .dir
            .join("nodes")
            .join(h["name"].as_str().unwrap())
            .join("server.log");
        assert!(
            std::fs::metadata(&log)
                .map(|m| m.len() > 0)
                .unwrap_or(false),
            "{}",
            log.display()
        );
    }
    // the workers ran in containers too (their configs name paths inside them)
    let cfg: Value = serde_json::from_str(
        &std::fs::read_to_string(o.guard.dir.join("workers/producer-0.json")).unwrap(),
    )
    .unwrap();
    assert!(
        cfg["log_path"].as_str().unwrap().starts_with("/kmh/"),
        "{cfg}"
    );
    let left = left_on_engine(id);
    assert!(left.is_empty(), "the run left on the engine: {left:?}");
    assert!(tagged_processes(id).is_empty());
}

#[test]
#[ignore = "slow tier: real clusters, namespaces or containers"]
fn rolling_restart_on_docker_gives_the_local_verdict() {
    let _one = cluster_lock();
    require_docker();
    let o = run_scenario_on("rolling-restart.toml", DOCKER);
    verdicts::rolling_restart(&o);
    assert_ran_on_docker_and_left_nothing(&o);
}

#[test]
#[ignore = "slow tier: real clusters, namespaces or containers"]
fn kraft_rolling_restart_on_docker_gives_the_local_verdict() {
    let _one = cluster_lock();
    require_docker();
    // Kafka 4.1 in KRaft mode, each node in a container: formatted on this machine, its
    // storage copied in before its first start
    let o = run_scenario_on("kraft-rolling-restart.toml", DOCKER);
    verdicts::kraft_rolling_restart(&o);
    assert_ran_on_docker_and_left_nothing(&o);
    for n in ["ctl1", "kafka1"] {
        let props =
            std::fs::read_to_string(o.guard.dir.join("nodes").join(n).join("server.properties"))
                .unwrap();
        assert!(props.contains("log.dirs=/kmh/node/data"), "{n}: {props}");
    }
}

#[test]
#[ignore = "slow tier: real clusters, namespaces or containers"]
fn the_partition_scenario_on_docker_gives_the_local_verdict() {
    let _one = cluster_lock();
    require_docker();
    let o = run_scenario_on("partition-leader.toml", DOCKER);
    // the rules were set inside the leader's container: its partition was cut off
    verdicts::partition_leader(&o, 1);
    assert_ran_on_docker_and_left_nothing(&o);
}

/// Two clusters in containers: the target's brokers and ensemble are nodes of the run like
/// the others (MirrorMaker 2 runs on the coordinator's host and reaches both through the
/// run's network); the workers, in their containers, follow the discovery file's lines.
#[test]
#[ignore = "slow tier: real clusters, namespaces or containers"]
fn the_mirror_switch_over_on_docker_gives_the_local_verdict() {
    let _one = cluster_lock();
    require_docker();
    let o = run_scenario_on("mirrormaker-switch-over.toml", DOCKER);
    verdicts::mirror_switch_over(&o);
    assert_ran_on_docker_and_left_nothing(&o);
    // the target's brokers were containers too
    let run = run_record(&o.guard.dir);
    let containers: Vec<&str> = run["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h["name"].as_str())
        .collect();
    assert!(containers.contains(&"tkafka1"), "{containers:?}");
}

#[test]
#[ignore = "slow tier: real clusters, namespaces or containers"]
fn zk_mitosis_on_docker_gives_the_local_verdict() {
    let _one = cluster_lock();
    require_docker();
    let o = run_scenario_on("zk-mitosis.toml", DOCKER);
    verdicts::zk_mitosis(&o);
    assert_ran_on_docker_and_left_nothing(&o);
}

#[test]
#[ignore = "slow tier: real clusters, namespaces or containers"]
fn a_docker_run_killed_midway_leaves_what_cleanup_removes_and_logs_that_can_be_checked() {
    let _one = cluster_lock();
    require_docker();
    let dir = run_dir("docker-killed");
    let guard = RunGuard { dir: dir.clone() };
    let mut child = KillOnDrop(start_run_with("rolling-restart.toml", &dir, DOCKER));
    let child = &mut child.0;
    e2e::wait_producing(child, &dir, 2_000, Duration::from_secs(240));
    let id = guard.run_id().expect("run.json");
    let container = |what: &str| format!("kmh-{}-{what}", tag_of(&id));

    // a worker container that dies has its log copied out at once, while the run goes on
    // (the start copied the consumers' first log lines out to see them assigned: that copy
    // goes, so what appears now is the copy made at the container's death)
    let consumer_log = dir.join("logs/consumer-1.log");
    let _ = std::fs::remove_file(&consumer_log);
    sh(&["docker", "kill", &container("consumer-1")]);
    e2e::wait_log_back(&consumer_log);

    // now the coordinator dies with no chance to tear down
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    wait_bounded(child, Duration::from_secs(30));
    let left = left_on_engine(&id);
    assert!(
        left.iter().any(|l| l.ends_with("-kafka1"))
            && left.iter().any(|l| l.starts_with("network ")),
        "the killed run's containers and network are still there: {left:?}"
    );
    assert!(
        !dir.join("logs/producer-0.log").exists(),
        "no producer log copied yet"
    );

    let out = Command::new(harness_bin())
        .args(["cleanup", "--run", &id])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("removed network"), "{said}");
    let left = left_on_engine(&id);
    assert!(left.is_empty(), "cleanup left on the engine: {left:?}");
    assert!(tagged_processes(&id).is_empty());

    // the workers' logs were copied out first: the run can be checked
    let producer_log = dir.join("logs/producer-0.log");
    assert!(
        std::fs::metadata(&producer_log)
            .map(|m| m.len() > 128)
            .unwrap_or(false),
        "cleanup copied the producer's log out: {said}"
    );
    let check = Command::new(harness_bin())
        .arg("check")
        .arg(&dir)
        .output()
        .unwrap();
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("report.json"))
            .unwrap_or_else(|_| panic!("no report: {}", String::from_utf8_lossy(&check.stderr))),
    )
    .unwrap();
    // a verdict, not a tool error: a run with no final read fails (exit 1)
    assert_eq!(
        check.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    assert_eq!(report["verdict"], "fail");
    assert_eq!(report["final_read"]["ran"], false);
    assert!(
        u(&report["producers"]["acked"]) >= 2_000,
        "{}",
        report["producers"]
    );
    assert_eq!(
        u(&report["anomalies"]["unverified"]),
        u(&report["producers"]["acked"]),
        "no partition was read at the end: every acked record is unverified"
    );
}

/// The 6-hex-digit tag names carry (as `harness` computes it).
fn tag_of(run_id: &str) -> String {
    format!("{:06x}", workers::record::run_hash(run_id) & 0xff_ffff)
}

#[test]
#[ignore = "slow tier: real clusters, namespaces or containers"]
fn docker_host_names_the_engine() {
    require_docker();
    // an engine named by DOCKER_HOST is the one used: where none answers, the run is
    // refused before anything starts, and the error names it
    let dir = run_dir("docker-host-nowhere");
    let mut cmd = Command::new(harness_bin());
    cmd.args([
        "run",
        "scenarios/rolling-restart.toml",
        "--backend",
        "docker",
        "--out",
    ])
    .arg(&dir)
    .current_dir(e2e::repo())
    .env("DOCKER_HOST", "tcp://127.0.0.1:9");
    let err = assert_refused_before_start(cmd, &dir);
    assert!(
        err.contains("tcp://127.0.0.1:9") && err.contains("DOCKER_HOST"),
        "{err}"
    );
    // and the local engine named explicitly works
    let out = Command::new(harness_bin())
        .args(["images", "build"])
        .env("DOCKER_HOST", "unix:///var/run/docker.sock")
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(said.contains("kmh-worker:latest"), "{said}");
}
