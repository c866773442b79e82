//! Issue [6], the ssh backend, end to end on hosts made by the test (`e2e::ssh_hosts`:
//! namespaces with a real OpenSSH server each): the local backend's scenarios run unchanged
//! but for `--hosts FILE` and give the same verdicts, checked by the same assertions
//! (`e2e::verdicts`); workers run on two worker hosts, one of them with its clock three
//! seconds ahead (libfaketime), and the checker puts their times back on the coordinator's
//! clock within the bound it reports; faults are iptables rules set over SSH; a run killed
//! mid-way is removed from its hosts by `harness cleanup`, its logs copied back first.
//! The rolling restart is `kraft-rolling-restart` (Kafka 4.1 in KRaft mode: six nodes, each
//! restarted over SSH); the partition runs a ZooKeeper-mode cluster; the MirrorMaker 2
//! switch-over runs two clusters on eight node hosts.
//!
//! They need root, sshd and ssh-keygen (`openssh-server`), libfaketime (`faketime`):
//! without them they fail with `NOT RUN:`, never pass. `.ci/run` installs them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use e2e::ssh_hosts::{SshHosts, FAKETIME_LIB};
use e2e::{
    cluster_lock, harness_bin, repo, run_dir, run_scenario_on, start_run_with, tagged_processes, u,
    verdicts, wait_bounded, KillOnDrop, RunGuard,
};
use serde_json::Value;

/// Six node hosts (three ZooKeeper, three brokers) and two worker hosts.
fn hosts(skewed_worker_host: bool) -> SshHosts {
    assert!(
        Path::new(FAKETIME_LIB).exists(),
        "NOT RUN: no {FAKETIME_LIB} (apt-get install faketime)"
    );
    let ahead: &[(&str, &str)] = &[
        ("LD_PRELOAD", FAKETIME_LIB),
        ("FAKETIME", "+3s"),
        ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
    ];
    if skewed_worker_host {
        SshHosts::start(6, 2, &[(1, ahead)])
    } else {
        SshHosts::start(6, 2, &[])
    }
}

fn run_record(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("run.json")).unwrap()).unwrap()
}

fn host_dir() -> PathBuf {
    e2e::repo().join("target").join("kmh-ssh-hosts")
}

/// The run ran its nodes and workers on the SSH hosts, and left nothing on them.
/// With this machine's broker class list of Kafka `version` kept (a local run made its
/// archive), the hosts' copy of the distribution has an archive of its own that the JVM
/// maps on their classpath (`-Xshare:on` refuses one it cannot: this machine's would be).
/// Without a kept list there is nothing to make it from: said, not checked.
fn assert_hosts_made_a_class_archive_of_their_own(version: &str) {
    let out = Command::new(harness_bin())
        .args(["dist", "path", "--kafka", version])
        .output()
        .expect("harness dist path");
    let home = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if !home.join("cds/broker.classes").exists() {
        eprintln!(
            "NOTE: no broker class list of Kafka {version} kept here (no local run has made its archive yet): the hosts' class archives were not made, not checked"
        );
        return;
    }
    let server_jar = format!("kafka_2.13-{version}.jar");
    let copies = repo().join("target").join("kmh-ssh-hosts").join("dist");
    let copy = std::fs::read_dir(&copies)
        .unwrap_or_else(|e| panic!("{}: {e}", copies.display()))
        .flatten()
        .map(|e| e.path())
        .find(|d| d.join("libs").join(&server_jar).exists())
        .unwrap_or_else(|| panic!("no copy of Kafka {version} in {}", copies.display()));
    let archive = copy.join("cds/broker.jsa");
    assert!(
        archive.exists(),
        "no class archive made on the hosts: {}",
        archive.display()
    );
    let java = Command::new("java")
        .arg("-Xshare:on")
        .arg(format!("-XX:SharedArchiveFile={}", archive.display()))
        .arg("-cp")
        .arg(format!("{}/libs/*", copy.display()))
        .args(["kafka.Kafka", "--version"])
        .output()
        .expect("java");
    assert!(
        java.status.success(),
        "the hosts' archive does not map on their classpath: {}",
        String::from_utf8_lossy(&java.stderr)
    );
}

fn assert_ran_on_ssh_hosts_and_left_nothing(o: &e2e::Outcome, h: &SshHosts) {
    let run = run_record(&o.guard.dir);
    assert_eq!(run["backend"], "ssh");
    let id = run["run_id"].as_str().unwrap();
    for host in run["hosts"].as_array().unwrap() {
        let addr: std::net::Ipv4Addr = host["address"].as_str().unwrap().parse().unwrap();
        assert!(h.nodes.contains(&addr), "every node on a node host: {host}");
        // its log came back over SSH
        let log = o
            .guard
            .dir
            .join("nodes")
            .join(host["name"].as_str().unwrap())
            .join("server.log");
        assert!(
            std::fs::metadata(&log).is_ok_and(|m| m.len() > 0),
            "{}",
            log.display()
        );
    }
    // the workers ran on the worker hosts (their configs name paths there), round-robin
    let clocks: Value =
        serde_json::from_str(&std::fs::read_to_string(o.guard.dir.join("clocks.json")).unwrap())
            .unwrap();
    let placed: Vec<&str> = clocks["workers"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_str().unwrap())
        .collect();
    for w in &h.workers {
        assert!(
            placed.contains(&w.to_string().as_str()),
            "a worker on {w}: {clocks}"
        );
    }
    let cfg: Value = serde_json::from_str(
        &std::fs::read_to_string(o.guard.dir.join("workers/producer-0.json")).unwrap(),
    )
    .unwrap();
    assert!(
        cfg["log_path"]
            .as_str()
            .unwrap()
            .starts_with(&host_dir().display().to_string()),
        "{cfg}"
    );
    assert!(
        tagged_processes(id).is_empty(),
        "{:?}",
        tagged_processes(id)
    );
    assert!(
        !host_dir().join("runs").join(id).exists(),
        "the run's directory was removed from the hosts"
    );
    assert!(
        !Path::new(&format!("/tmp/kmh.run={id}")).exists(),
        "the control masters' directory is gone"
    );
}

#[test]
#[ignore = "slow tier: real clusters, namespaces or containers"]
fn kraft_rolling_restart_on_ssh_hosts_gives_the_local_verdict_with_a_worker_clock_three_seconds_ahead(
) {
    let _one = cluster_lock();
    let h = hosts(true);
    let inv = h.inventory.display().to_string();
    // Kafka 4.1 in KRaft mode, three controllers and three brokers on the six node hosts,
    // each restarted over SSH: each node formatted here, its storage copied over before
    // its first start (ZooKeeper nodes over SSH: the partition test below)
    let o = run_scenario_on("kraft-rolling-restart.toml", &["--hosts", &inv]);
    verdicts::kraft_rolling_restart(&o);
    assert_ran_on_ssh_hosts_and_left_nothing(&o, &h);
    assert_hosts_made_a_class_archive_of_their_own("4.1.2");
    // the skewed host measured three seconds ahead, the other level, each within its bound
    let clocks = &o.report["clocks"];
    let bound = clocks["error_bound_ms"].as_f64().unwrap();
    // round trips on an open session: milliseconds, not an ssh client's start-up
    assert!(bound > 0.0 && bound < 25.0, "{clocks}");
    let offset = |a: std::net::Ipv4Addr| -> (f64, f64) {
        let host = clocks["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["host"] == a.to_string())
            .unwrap_or_else(|| panic!("no clock for {a}: {clocks}"));
        (
            host["offset_start_ms"].as_f64().unwrap(),
            host["offset_end_ms"].as_f64().unwrap(),
        )
    };
    // libfaketime and the coordinator share one real clock: the true offsets are exact
    for (a, truth) in [(h.workers[0], 0.0), (h.workers[1], 3000.0)] {
        let (start, end) = offset(a);
        for measured in [start, end] {
            assert!(
                (measured - truth).abs() <= bound + 1.0,
                "{a}: {measured} ms measured, {truth} ms true, bound {bound} ms"
            );
        }
    }
    // with the correction, records read back had sane end-to-end latencies: a consumer on
    // the level host reading a skewed producer's records would see -3 s without it, the
    // other way +3 s
    let p50 = o.report["latency_ms"]["e2e"]["p50"]
        .as_f64()
        .expect("an end-to-end latency");
    assert!(p50 < 1500.0, "{}", o.report["latency_ms"]);
}

/// Two clusters on SSH hosts: the target's brokers and its ensemble on node hosts of their
/// own (eight in all), MirrorMaker 2 on the coordinator's host reaching both clusters, the
/// workers on their hosts following their copies of the discovery file.
#[test]
#[ignore = "slow tier: real clusters, namespaces or containers"]
fn the_mirror_switch_over_on_ssh_hosts_gives_the_local_verdict() {
    let _one = cluster_lock();
    let h = SshHosts::start(8, 2, &[]);
    let inv = h.inventory.display().to_string();
    let o = run_scenario_on("mirrormaker-switch-over.toml", &["--hosts", &inv]);
    verdicts::mirror_switch_over(&o);
    assert_ran_on_ssh_hosts_and_left_nothing(&o, &h);
    // the target's brokers ran on node hosts of their own (checked above: every node did)
    let run = run_record(&o.guard.dir);
    let address_of = |node: &str| {
        run["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == node)
            .map(|x| x["address"].clone())
            .unwrap_or_else(|| panic!("`{node}` ran on no host: {run}"))
    };
    assert_ne!(address_of("tkafka1"), address_of("kafka1"), "{run}");
}

#[test]
#[ignore = "slow tier: real clusters, namespaces or containers"]
fn the_partition_scenario_on_ssh_hosts_gives_the_local_verdict() {
    let _one = cluster_lock();
    let h = hosts(false);
    let inv = h.inventory.display().to_string();
    let o = run_scenario_on("partition-leader.toml", &["--hosts", &inv]);
    // the rules were set on the leader's host over SSH: its partition was cut off
    verdicts::partition_leader(&o, 1);
    assert_ran_on_ssh_hosts_and_left_nothing(&o, &h);
    // and taken away at the end: no chain of the run is left on any node host
    let id = run_record(&o.guard.dir)["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let tag = format!("{:06x}", workers::record::run_hash(&id) & 0xff_ffff);
    for i in 0..6 {
        let ns = format!("kmhssh-{}-{i}", h.tag());
        let rules = e2e::sh(&["ip", "netns", "exec", &ns, "iptables", "-S"]);
        assert!(!rules.contains(&tag), "{ns}: {rules}");
    }
}

#[test]
#[ignore = "slow tier: real clusters, namespaces or containers"]
fn an_ssh_run_killed_midway_is_removed_from_its_hosts_by_cleanup_with_its_logs_copied_back() {
    let _one = cluster_lock();
    let h = hosts(false);
    let inv = h.inventory.display().to_string();
    let dir = run_dir("ssh-killed");
    let guard = RunGuard { dir: dir.clone() };
    let mut child = KillOnDrop(start_run_with(
        "rolling-restart.toml",
        &dir,
        &["--hosts", &inv],
    ));
    let child = &mut child.0;
    e2e::wait_producing(child, &dir, 2_000, Duration::from_secs(300));
    let id = guard.run_id().expect("run.json");
    // a worker that dies on its host has its log copied back at once, the run going on
    // (its pid is in its file there: these hosts share this machine's disk)
    let consumer_log = dir.join("logs/consumer-1.log");
    let _ = std::fs::remove_file(&consumer_log);
    let pid_file = host_dir()
        .join("runs")
        .join(&id)
        .join("workers/consumer-1.pid");
    let pid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    unsafe { libc::kill(pid, libc::SIGKILL) };
    e2e::wait_log_back(&consumer_log);
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    wait_bounded(child, Duration::from_secs(30));
    assert!(
        host_dir().join("runs").join(&id).exists(),
        "the killed run's files are still on its hosts"
    );
    assert!(
        !tagged_processes(&id).is_empty(),
        "its nodes and workers outlive it"
    );
    let _ = std::fs::remove_file(dir.join("logs/producer-0.log"));

    let out = Command::new(harness_bin())
        .args(["cleanup", "--run", &id])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("copied workers/producer-0.log"), "{text}");
    assert!(
        text.contains(&format!("removed run {id} from root@")),
        "{text}"
    );
    assert!(
        tagged_processes(&id).is_empty(),
        "{:?}",
        tagged_processes(&id)
    );
    assert!(!host_dir().join("runs").join(&id).exists());
    assert!(!Path::new(&format!("/tmp/kmh.run={id}")).exists());
    // what came back is checkable: a verdict (fail: no final read), not a tool error
    let mut check = Command::new(harness_bin())
        .arg("check")
        .arg(&dir)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let st = wait_bounded(&mut check, Duration::from_secs(120));
    assert_eq!(st.code(), Some(1));
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    assert!(
        u(&report["producers"]["acked"]) >= 2_000,
        "{}",
        report["producers"]
    );
}

#[test]
fn bad_inventories_are_refused_before_anything_starts() {
    let dir = tempfile_dir("inventory");
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let cases = [
        (
            write("typo.toml", "user = \"root\"\nhostz = [\"10.0.0.1\"]\n"),
            vec!["typo.toml:2", "hostz"],
        ),
        (
            write("few.toml", "hosts = [\"10.0.0.1\", \"10.0.0.2\"]\n"),
            vec!["few.toml", "no host for node `zk3`"],
        ),
        (
            write("addr.toml", "hosts = [\"kafka-1.example\"]\n"),
            vec!["addr.toml:1", "IPv4"],
        ),
        (
            write(
                "twice.toml",
                "hosts = [\"10.0.0.1\",\"10.0.0.2\",\"10.0.0.3\",\"10.0.0.4\"]\n[nodes]\nkafka2 = \"10.0.0.9\"\nkafka3 = \"10.0.0.9\"\n",
            ),
            vec!["twice.toml", "both on 10.0.0.9"],
        ),
    ];
    for (file, wants) in cases {
        let out = Command::new(harness_bin())
            .arg("run")
            .arg(e2e::repo().join("scenarios/rolling-restart.toml"))
            .arg("--hosts")
            .arg(&file)
            .arg("--out")
            .arg(dir.join("never"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{}: {err}", file.display());
        for w in wants {
            assert!(err.contains(w), "{}: `{w}` not in: {err}", file.display());
        }
        assert!(!dir.join("never").exists(), "nothing started");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempfile_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("kmh-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
#[ignore = "slow tier: real clusters, namespaces or containers"]
fn hosts_that_lack_java_are_refused_before_anything_starts_each_named() {
    let _one = cluster_lock();
    let h = hosts(false);
    let mut text = std::fs::read_to_string(&h.inventory).unwrap();
    text.push_str("java = \"/opt/nowhere/bin/java\"\n");
    std::fs::write(&h.inventory, text).unwrap();
    let dir = run_dir("ssh-no-java");
    let guard = RunGuard { dir: dir.clone() };
    let out = Command::new(harness_bin())
        .arg("run")
        .arg(e2e::repo().join("scenarios/rolling-restart.toml"))
        .arg("--hosts")
        .arg(&h.inventory)
        .arg("--out")
        .arg(&dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "a tool failure: {err}");
    for a in &h.nodes {
        assert!(
            err.contains(&format!("root@{a}:22: no /opt/nowhere/bin/java")),
            "{a} named: {err}"
        );
    }
    for a in &h.workers {
        assert!(
            !err.contains(&format!("root@{a}:22: no")),
            "a worker host needs no java: {err}"
        );
    }
    // refused before the cluster existed: no run.json, the timeline names the run
    assert!(guard.run_id().is_none());
    let timeline = std::fs::read_to_string(dir.join("timeline.jsonl")).unwrap();
    let start: Value = serde_json::from_str(timeline.lines().next().unwrap()).unwrap();
    let id = start["run_id"].as_str().unwrap().to_string();
    assert!(tagged_processes(&id).is_empty());
    assert!(!host_dir().join("runs").join(&id).exists());
    assert!(!Path::new(&format!("/tmp/kmh.run={id}")).exists());
}
