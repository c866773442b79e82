//! Issue [5], live mode, against real clusters the test starts itself (never by `watch`):
//! a watch across a broker the test kills and restarts, with marks, blames the windows on
//! the mark in force; a watch leaves a topic and a consumer group it did not create byte for
//! byte as they were — also when it is SIGKILLed, after which `harness cleanup --run`
//! removes its topics, group and processes from the live cluster; `run --hold` keeps its
//! cluster up until Ctrl-C. Bad watch input is refused before anything starts.
//! Needs Java and the Kafka distribution: without them the slow tests fail with `NOT RUN:`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use harness::kafka::Admin;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde_json::Value;

fn harness() -> Command {
    Command::new(env!("CARGO_BIN_EXE_harness"))
}

/// Starts `harness watch` with `args` into `out`.
fn start_watch(bootstrap: &str, out: &Path, args: &[&str]) -> Child {
    harness()
        .args(["watch", "--bootstrap", bootstrap, "--out"])
        .arg(out)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting harness watch")
}

/// Starts `harness watch` with its stderr read line by line, each line with when it came
/// (and echoed).
fn start_watch_read(
    bootstrap: &str,
    out: &Path,
    args: &[&str],
) -> (Child, std::sync::mpsc::Receiver<(Instant, String)>) {
    let mut child = harness()
        .args(["watch", "--bootstrap", bootstrap, "--out"])
        .arg(out)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting harness watch");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            eprintln!("{line}");
            let _ = tx.send((Instant::now(), line));
        }
    });
    (child, rx)
}

/// Waits for a child at most `limit` (then kills it and fails).
fn wait(child: &mut Child, limit: Duration) -> (i32, String) {
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output_ref();
            return out;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("harness did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

trait Output {
    fn wait_with_output_ref(&mut self) -> (i32, String);
}

impl Output for Child {
    fn wait_with_output_ref(&mut self) -> (i32, String) {
        use std::io::Read;
        let status = self.wait().unwrap();
        let mut text = String::new();
        if let Some(mut o) = self.stdout.take() {
            let _ = o.read_to_string(&mut text);
        }
        (status.code().unwrap_or(-1), text)
    }
}

/// Waits until the watch in `out` is watching (its workers run), at most a minute.
fn wait_watching(out: &Path, child: &mut Child) -> String {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let tl = std::fs::read_to_string(out.join("timeline.jsonl")).unwrap_or_default();
        if tl.contains(r#""name":"watch""#) {
            let run: Value =
                serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap())
                    .unwrap();
            return run["run_id"].as_str().unwrap().to_string();
        }
        if let Some(st) = child.try_wait().unwrap() {
            panic!("the watch ended before watching: {st}");
        }
        assert!(
            Instant::now() < deadline,
            "the watch did not start watching"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn mark(out: &Path, text: &str) {
    let o = harness()
        .args(["mark", text, "--run"])
        .arg(out)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "mark: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Marks piped in as a runbook script would: `harness mark --file -` reading stdin.
fn mark_piped(out: &Path, lines: &str) {
    use std::io::Write;
    let mut child = harness()
        .args(["mark", "--file", "-", "--run"])
        .arg(out)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(lines.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "mark --file -: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn report(out: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap()
}

/// Topics (and groups) of the cluster whose name carries `run_id`.
fn leftovers_on_cluster(bootstrap: &str, run_id: &str) -> Vec<String> {
    let admin = Admin::new(bootstrap).unwrap();
    let snap = admin.snapshot(Duration::from_secs(10)).unwrap();
    let mut out: Vec<String> = snap
        .partitions
        .iter()
        .filter(|p| p.topic.contains(run_id))
        .map(|p| format!("topic {}", p.topic))
        .collect();
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    for g in c
        .fetch_group_list(None, Duration::from_secs(10))
        .unwrap()
        .groups()
    {
        if g.name().contains(run_id) {
            out.push(format!("group {} ({})", g.name(), g.state()));
        }
    }
    out.dedup();
    out
}

#[test]
#[ignore = "slow tier: real clusters, namespaces or containers"]
fn a_watch_across_a_broker_restart_blames_the_window_on_the_mark() {
    let _lock = common::cluster_lock();
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = common::kafka_cluster(
        dir.path(),
        &format!("livefix-{}", std::process::id()),
        &["kafka1", "kafka2", "kafka3"],
        &[],
    );
    let bootstrap = cluster.bootstrap();
    let zk = format!("{}/kafka", cluster.zookeeper_connect());
    let scenario = dir.path().join("canary.toml");
    std::fs::write(
        &scenario,
        r#"name = "canary"
[workload]
topics = [{ name = "orders", partitions = 6, replication = 3, min_insync = 2 }]
producers = 2
consumers = 2
rate = 200
acks = "all"
idempotence = true

[check]
zookeeper_smoke = true
kafka_metadata = true

[expect]
lost = 0
duplicates = "any"
reordered = "any"
"#,
    )
    .unwrap();
    let out = dir.path().join("watch");
    let (mut w, lines) = start_watch_read(
        &bootstrap,
        &out,
        &[
            "--zookeeper",
            &zk,
            "--duration",
            "45s",
            scenario.to_str().unwrap(),
        ],
    );
    let run_id = wait_watching(&out, &mut w);
    std::thread::sleep(Duration::from_secs(5));
    // the operator's runbook: mark, then act
    mark(&out, "kill kafka2");
    let killed = Instant::now();
    cluster.kill("kafka2").unwrap();
    std::thread::sleep(Duration::from_secs(8));
    // the second from a runbook script's pipe (a blank line is no mark)
    mark_piped(&out, "\nstart kafka2\n");
    cluster.start("kafka2", &harness::Shutdown::new()).unwrap();
    let (code, summary) = wait(&mut w, Duration::from_secs(240));
    println!("{summary}");
    assert_eq!(code, 0, "acks=all, min.insync 2: nothing lost\n{summary}");
    // while it ran, the watch said so as the windows opened (not only in the report), and
    // closed; as plain lines, no escape codes, its stderr not being a terminal
    let said: Vec<(Instant, String)> = lines.try_iter().collect();
    let opened: Vec<&(Instant, String)> = said
        .iter()
        .filter(|(_, l)| l.contains("window OPEN on kmh-") && l.contains("under `kill kafka2`"))
        .collect();
    assert!(!opened.is_empty(), "the open windows were shown live");
    let first = opened[0].0.duration_since(killed);
    assert!(
        first < Duration::from_secs(6),
        "shown while the broker was down (killed 8 s before its restart), not after: {first:?}"
    );
    assert!(said
        .iter()
        .any(|(_, l)| l.contains("window closed on kmh-")));
    assert!(
        said.iter().all(|(_, l)| !l.contains('\x1b')),
        "no escape codes"
    );
    let r = report(&out);
    let steps: Vec<(&str, &str)> = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["action"].as_str().unwrap()))
        .collect();
    assert_eq!(steps, [("kill kafka2", "mark"), ("start kafka2", "mark")]);
    // kafka2 led a third of the partitions (the watch spreads leaders): their produce
    // windows are the kill's
    let blamed: Vec<&Value> = r["unavailability"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["kind"] == "produce" && w["partition"] != "cluster")
        .collect();
    assert!(
        blamed.iter().any(|w| w["step"] == "kill kafka2"),
        "a produce window under the mark `kill kafka2`: {blamed:#?}"
    );
    // (partitions, not windows: one may stall twice — its leader's, then its ISR's
    // shrink as every partition waits for the dead follower under acks=all)
    let under_kill: std::collections::BTreeSet<&str> = blamed
        .iter()
        .filter(|w| w["step"] == "kill kafka2")
        .map(|w| w["partition"].as_str().unwrap())
        .collect();
    assert!(
        (1..=6).contains(&under_kill.len()),
        "some partitions (kafka2's) were unavailable, not none: {blamed:#?}"
    );
    for w in &blamed {
        assert!(
            w["step"] == "kill kafka2" || w["step"] == "start kafka2" || w["step"] == "(watch)",
            "{w}"
        );
    }
    assert_eq!(r["anomalies"]["lost"], 0);
    let prefix = format!("kmh-{run_id}-orders/");
    assert!(
        blamed
            .iter()
            .all(|w| w["partition"].as_str().unwrap().starts_with(&prefix)),
        "windows name the run's own topic: {blamed:#?}"
    );
    // the ZooKeeper smoke test ran on the given ensemble, and the metadata check
    assert!(
        r["zookeeper"].as_object().is_some_and(|z| !z.is_empty()),
        "{}",
        r["zookeeper"]
    );
    assert!(
        r["kafka_metadata"]["error"].is_null(),
        "{}",
        r["kafka_metadata"]
    );
    // nothing of the run stays on the cluster or on this machine
    assert_eq!(
        leftovers_on_cluster(&bootstrap, &run_id),
        Vec::<String>::new()
    );
    assert!(e2e::tagged_processes(&run_id).is_empty());
    cluster.teardown();
}

#[test]
#[ignore = "slow tier: real clusters, namespaces or containers"]
fn acks_1_and_an_unclean_election_during_a_watch_fail_it_with_the_loss_under_the_mark() {
    let _lock = common::cluster_lock();
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = common::kafka_cluster_with(
        dir.path(),
        &format!("livefix-{}", std::process::id()),
        &["kafka1", "kafka2", "kafka3"],
        &[],
        &[("replica.lag.time.max.ms", "3000")],
    );
    let bootstrap = cluster.bootstrap();
    let scenario = dir.path().join("unsafe.toml");
    std::fs::write(
        &scenario,
        r#"name = "unsafe"
[workload]
topics = [{ name = "payments", partitions = 1, replication = 2, min_insync = 1, config = { "unclean.leader.election.enable" = "true" } }]
producers = 2
consumers = 1
rate = 200
acks = "1"
idempotence = false

[expect]
lost = 0
duplicates = "any"
reordered = "any"
inconsistent_offsets = "any"
poll_gaps = "any"
poll_regressions = "any"
unconsumed = "any"
"#,
    )
    .unwrap();
    let out = dir.path().join("watch");
    let mut w = start_watch(
        &bootstrap,
        &out,
        &["--duration", "45s", scenario.to_str().unwrap()],
    );
    let run_id = wait_watching(&out, &mut w);
    let topic = format!("kmh-{run_id}-payments");
    let snap = Admin::new(&bootstrap)
        .unwrap()
        .snapshot(Duration::from_secs(10))
        .unwrap();
    let p = snap
        .partition(&topic, 0)
        .expect("the watch's topic")
        .clone();
    let leader = format!("kafka{}", p.leader);
    let follower = format!(
        "kafka{}",
        p.replicas.iter().find(|r| **r != p.leader).unwrap()
    );
    std::thread::sleep(Duration::from_secs(4));
    // the runbook an operator should never run
    mark(&out, "pause the follower");
    cluster.pause(&follower).unwrap();
    std::thread::sleep(Duration::from_secs(8));
    mark(&out, "kill the leader");
    cluster.kill(&leader).unwrap();
    std::thread::sleep(Duration::from_secs(6));
    mark(&out, "resume the stale follower");
    cluster.resume(&follower).unwrap();
    std::thread::sleep(Duration::from_secs(8));
    mark(&out, "restart the old leader");
    cluster.start(&leader, &harness::Shutdown::new()).unwrap();
    let (code, summary) = wait(&mut w, Duration::from_secs(240));
    println!("{summary}");
    assert_eq!(code, 1, "the canary gate fails on loss\n{summary}");
    let r = report(&out);
    let lost = r["anomalies"]["lost"].as_u64().unwrap();
    assert!(lost > 0, "{summary}");
    assert_eq!(
        r["lost_by_step"]["kill the leader"].as_u64(),
        Some(lost),
        "every loss under the mark in force when the acked records went: {}",
        r["lost_by_step"]
    );
    assert_eq!(
        leftovers_on_cluster(&bootstrap, &run_id),
        Vec::<String>::new()
    );
    cluster.teardown();
}

/// Runs a command, failing the test with its output when it fails.
fn run_ok(cmd: &mut Command) {
    let o = cmd.output().unwrap();
    assert!(
        o.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
#[ignore = "slow tier: real clusters, namespaces or containers"]
fn a_watch_of_a_sasl_ssl_scram_cluster_runs_with_the_client_config_and_not_without() {
    let _lock = common::cluster_lock();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // the brokers' certificate (self-signed: the client trusts it as its CA)
    let keystore = d.join("broker.p12");
    let ca = d.join("ca.pem");
    run_ok(
        Command::new("keytool")
            .args([
                "-genkeypair",
                "-alias",
                "broker",
                "-keyalg",
                "RSA",
                "-keysize",
                "2048",
                "-validity",
                "2",
                "-dname",
                "CN=kmh-test-broker",
                "-storetype",
                "PKCS12",
                "-storepass",
                "keystore-secret",
                "-keypass",
                "keystore-secret",
                "-keystore",
            ])
            .arg(&keystore),
    );
    run_ok(
        Command::new("keytool")
            .args([
                "-exportcert",
                "-rfc",
                "-alias",
                "broker",
                "-storepass",
                "keystore-secret",
                "-keystore",
            ])
            .arg(&keystore)
            .arg("-file")
            .arg(&ca),
    );
    let ks = keystore.display().to_string();
    let mut cluster = common::kafka_cluster_with(
        d,
        &format!("livefix-{}", std::process::id()),
        &["kafka1", "kafka2", "kafka3"],
        &[],
        &[
            (
                "listeners",
                "PLAINTEXT://{address}:9092,SASL_SSL://{address}:9093",
            ),
            (
                "advertised.listeners",
                "PLAINTEXT://{address}:9092,SASL_SSL://{address}:9093",
            ),
            (
                "listener.security.protocol.map",
                "PLAINTEXT:PLAINTEXT,SASL_SSL:SASL_SSL",
            ),
            ("inter.broker.listener.name", "PLAINTEXT"),
            ("sasl.enabled.mechanisms", "SCRAM-SHA-256"),
            (
                "listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config",
                "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            ),
            ("ssl.keystore.type", "PKCS12"),
            ("ssl.keystore.location", &ks),
            ("ssl.keystore.password", "keystore-secret"),
            ("ssl.key.password", "keystore-secret"),
        ],
    );
    let plain = cluster.bootstrap();
    let secured = plain.replace(":9092", ":9093");
    // a SCRAM user, with Kafka's own tool, over the plaintext listener
    let dist = harness::cluster::dist::locate("3.9.1").unwrap();
    run_ok(Command::new("java").arg("-cp").arg(dist.classpath()).args([
        "kafka.admin.ConfigCommand",
        "--bootstrap-server",
        &plain,
        "--alter",
        "--add-config",
        "SCRAM-SHA-256=[iterations=8192,password=alice-secret]",
        "--entity-type",
        "users",
        "--entity-name",
        "alice",
    ]));
    std::thread::sleep(Duration::from_secs(2));
    let props = |password: &str| {
        format!(
            "# the test's cluster\nsecurity.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-256\nsasl.username=alice\nsasl.password={password}\nssl.ca.location={}\n# a self-signed certificate for every broker address\nssl.endpoint.identification.algorithm=none\n",
            ca.display()
        )
    };
    // the kafka-protocol admin path (reassignments, elections) over TLS and SCRAM too
    let security = |password: &str| {
        let props: harness::kafka::ClientProperties = [
            ("security.protocol", "SASL_SSL"),
            ("sasl.mechanism", "SCRAM-SHA-256"),
            ("sasl.username", "alice"),
            ("sasl.password", password),
            ("ssl.ca.location", ca.to_str().unwrap()),
            ("ssl.endpoint.identification.algorithm", "none"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        harness::kafka::security::Security::from_properties(&props).unwrap()
    };
    let mut wire = harness::kafka::ClusterAdmin::new(&secured, Duration::from_secs(10))
        .with_security(security("alice-secret"));
    let described = wire.describe_cluster().unwrap();
    assert_eq!(described.brokers.len(), 3);
    let mut wrong = harness::kafka::ClusterAdmin::new(&secured, Duration::from_secs(10))
        .with_security(security("wrong"));
    let e = wrong.describe_cluster().unwrap_err().to_string();
    assert!(e.contains("SaslAuthenticationFailed"), "{e}");
    let mut plaintext = harness::kafka::ClusterAdmin::new(&secured, Duration::from_secs(5));
    assert!(
        plaintext.describe_cluster().is_err(),
        "the listener speaks TLS only"
    );

    // a wrong password: refused, saying where to look, before anything is made
    let bad = d.join("bad.properties");
    std::fs::write(&bad, props("wrong")).unwrap();
    let o = harness()
        .args([
            "watch",
            "--bootstrap",
            &secured,
            "--duration",
            "5s",
            "--client-config",
        ])
        .arg(&bad)
        .arg("--out")
        .arg(d.join("refused"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(err.contains("--client-config"), "{err}");
    // the right one: the whole watch over SASL_SSL (workers, admin, final read)
    let good = d.join("client.properties");
    std::fs::write(&good, props("alice-secret")).unwrap();
    let out = d.join("watch");
    let mut w = start_watch(
        &secured,
        &out,
        &[
            "--duration",
            "10s",
            "--client-config",
            good.to_str().unwrap(),
        ],
    );
    let run_id = wait_watching(&out, &mut w);
    let (code, summary) = wait(&mut w, Duration::from_secs(180));
    assert_eq!(code, 0, "{summary}");
    let r = report(&out);
    assert!(
        r["producers"]["acked"].as_u64().unwrap() > 1000,
        "{summary}"
    );
    assert_eq!(r["anomalies"]["lost"], 0);
    assert_eq!(
        r["final_read"]["complete"], r["final_read"]["partitions"],
        "{summary}"
    );
    assert!(
        r["final_read"]["records"].as_u64().unwrap() > 1000,
        "{summary}"
    );
    // the properties were kept for cleanup, readable by their owner only
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(out.join("client.properties"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(leftovers_on_cluster(&plain, &run_id), Vec::<String>::new());
    cluster.teardown();
}

/// A record as read back: partition, offset, key, value, timestamp.
type Stored = (i32, i64, Vec<u8>, Vec<u8>, i64);

/// What a topic and a group the watch must not touch hold: every record (partition,
/// offset, key, value, timestamp), the group's committed offsets, the topic's configs and
/// every byte of its segment files on every broker.
#[derive(Debug, PartialEq)]
struct Untouched {
    records: Vec<Stored>,
    committed: Vec<(i32, i64)>,
    configs: Vec<(String, Option<String>)>,
    segments: BTreeMap<PathBuf, Vec<u8>>,
}

fn untouched(bootstrap: &str, data: &Path) -> Untouched {
    // read back without a group (assign, no commit)
    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "never-joined")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..3 {
        tpl.add_partition_offset("precious", p, Offset::Beginning)
            .unwrap();
    }
    reader.assign(&tpl).unwrap();
    let mut records = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while records.len() < 300 && Instant::now() < deadline {
        if let Some(Ok(m)) = reader.poll(Duration::from_millis(200)) {
            records.push((
                m.partition(),
                m.offset(),
                m.key().unwrap_or_default().to_vec(),
                m.payload().unwrap_or_default().to_vec(),
                m.timestamp().to_millis().unwrap_or(-1),
            ));
        }
    }
    records.sort();
    let group: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "precious-app")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut parts = TopicPartitionList::new();
    for p in 0..3 {
        parts.add_partition("precious", p);
    }
    let committed = group
        .committed_offsets(parts, Duration::from_secs(10))
        .unwrap()
        .elements()
        .iter()
        .map(|e| (e.partition(), e.offset().to_raw().unwrap_or(-1)))
        .collect();
    let admin = Admin::new(bootstrap).unwrap();
    let configs = [
        "retention.ms",
        "min.insync.replicas",
        "cleanup.policy",
        "segment.bytes",
    ]
    .iter()
    .map(|k| (k.to_string(), admin.topic_config("precious", k).unwrap()))
    .collect();
    let mut segments = BTreeMap::new();
    fn walk(p: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
            let path = e.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|x| x == "log")
                && path
                    .parent()
                    .and_then(|d| d.file_name())
                    .is_some_and(|n| n.to_string_lossy().starts_with("precious-"))
            {
                out.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    walk(data, &mut segments);
    Untouched {
        records,
        committed,
        configs,
        segments,
    }
}

#[test]
#[ignore = "slow tier: real clusters, namespaces or containers"]
fn a_watch_never_touches_what_it_did_not_create_even_when_killed() {
    let _lock = common::cluster_lock();
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = common::kafka_cluster(
        dir.path(),
        &format!("livefix-{}", std::process::id()),
        &["kafka1", "kafka2", "kafka3"],
        &[],
    );
    let bootstrap = cluster.bootstrap();
    let admin = Admin::new(&bootstrap).unwrap();
    // someone's topic, with data, a non-default config and a group's committed offsets
    admin
        .create_topic_assigned(
            "precious",
            &[vec![1, 2], vec![2, 3], vec![3, 1]],
            &[("retention.ms", "604800001")],
        )
        .unwrap();
    admin
        .wait_healthy(
            &[1, 2, 3],
            &["precious"],
            Duration::from_secs(60),
            &harness::Shutdown::new(),
        )
        .unwrap();
    let p: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("acks", "all")
        .create()
        .unwrap();
    for i in 0..300 {
        let (k, v) = (format!("k{i}"), format!("value {i}"));
        p.send(
            BaseRecord::to("precious")
                .partition(i % 3)
                .key(&k)
                .payload(&v),
        )
        .unwrap();
    }
    p.flush(Duration::from_secs(30)).unwrap();
    let app: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "precious-app")
        .create()
        .unwrap();
    let mut offsets = TopicPartitionList::new();
    for (part, off) in [(0, 40), (1, 55), (2, 100)] {
        offsets
            .add_partition_offset("precious", part, Offset::Offset(off))
            .unwrap();
    }
    app.commit(&offsets, CommitMode::Sync).unwrap();
    drop(app);
    let data = dir.path();
    let before = untouched(&bootstrap, data);
    assert_eq!(before.records.len(), 300);
    assert_eq!(before.committed, [(0, 40), (1, 55), (2, 100)]);
    assert!(!before.segments.is_empty(), "segment files found");

    // a watch to its end
    let out = dir.path().join("watch-1");
    let mut w = start_watch(&bootstrap, &out, &["--duration", "12s", "--rate", "300"]);
    let run1 = wait_watching(&out, &mut w);
    let (code, summary) = wait(&mut w, Duration::from_secs(180));
    assert_eq!(code, 0, "{summary}");
    assert!(report(&out)["anomalies"]["lost"] == 0);
    assert_eq!(
        leftovers_on_cluster(&bootstrap, &run1),
        Vec::<String>::new()
    );
    assert_eq!(untouched(&bootstrap, data), before, "after a watch");

    // a watch SIGKILLed while watching: its workers, topic and group stay until cleanup
    let out = dir.path().join("watch-2");
    let mut w = start_watch(&bootstrap, &out, &[]);
    let run2 = wait_watching(&out, &mut w);
    std::thread::sleep(Duration::from_secs(3));
    w.kill().unwrap();
    w.wait().unwrap();
    assert!(
        !leftovers_on_cluster(&bootstrap, &run2).is_empty(),
        "a killed watch leaves its topic"
    );
    let c = harness()
        .args(["cleanup", "--run"])
        .arg(&out)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&c.stdout).to_string();
    assert!(
        c.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&c.stderr)
    );
    assert!(
        said.contains(&format!("deleted topic kmh-{run2}-watch")),
        "{said}"
    );
    assert!(e2e::tagged_processes(&run2).is_empty(), "{said}");
    // deletion is asynchronous on the brokers: allow it a moment
    let deadline = Instant::now() + Duration::from_secs(30);
    while !leftovers_on_cluster(&bootstrap, &run2).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(
        leftovers_on_cluster(&bootstrap, &run2),
        Vec::<String>::new()
    );
    assert_eq!(
        untouched(&bootstrap, data),
        before,
        "after a killed watch and its cleanup"
    );
    // the killed run's logs can still be checked
    let chk = harness().arg("check").arg(&out).output().unwrap();
    assert!(
        chk.status.code().is_some_and(|c| c == 0 || c == 1),
        "{}",
        String::from_utf8_lossy(&chk.stderr)
    );
    cluster.teardown();
}

#[test]
#[ignore = "slow tier: real clusters, namespaces or containers"]
fn run_hold_keeps_the_cluster_up_until_ctrl_c() {
    let _lock = common::cluster_lock();
    let dir = tempfile::tempdir().unwrap();
    let scenario = dir.path().join("tiny.toml");
    std::fs::write(
        &scenario,
        r#"name = "tiny"
[cluster]
hosts = "loopback"
kafka = "3.9"
zookeeper = ["zk1"]
brokers = ["kafka1"]

[workload]
topics = [{ name = "t", partitions = 2, replication = 1 }]
producers = 1
consumers = 1
rate = 100
acks = "all"
idempotence = true
warmup = "2s"
settle = "1s"
"#,
    )
    .unwrap();
    let out = dir.path().join("run");
    let mut r = harness()
        .args(["run", "--hold", "--out"])
        .arg(&out)
        .arg(&scenario)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _guard = e2e::RunGuard { dir: out.clone() };
    // the held cluster's bootstrap, from the holding lines
    let stderr = r.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            eprintln!("{line}");
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(150);
    let bootstrap = loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the run says it holds its cluster");
        if let Some(b) = line.trim().strip_prefix("bootstrap") {
            break b.trim().to_string();
        }
    };
    // held: the run is over (final read done), the cluster answers
    std::thread::sleep(Duration::from_secs(2));
    assert!(r.try_wait().unwrap().is_none(), "still holding");
    let admin = Admin::new(&bootstrap).unwrap();
    let snap = admin.snapshot(Duration::from_secs(10)).unwrap();
    assert_eq!(snap.brokers, [1]);
    let run_id = e2e::RunGuard { dir: out.clone() }.run_id().unwrap();
    // Ctrl-C: torn down, then checked as usual
    // SAFETY: kill(2) on our child.
    unsafe { libc::kill(r.id() as i32, libc::SIGINT) };
    let (code, summary) = wait(&mut r, Duration::from_secs(90));
    assert_eq!(code, 0, "{summary}");
    assert!(summary.contains("verdict: PASS"), "{summary}");
    assert!(e2e::tagged_processes(&run_id).is_empty());
}

#[test]
fn bad_watch_input_is_refused_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    // a scenario with a cluster of its own is not a watch scenario
    let sc = dir.path().join("with-cluster.toml");
    std::fs::write(
        &sc,
        "name = \"x\"\n[cluster]\nkafka = \"3.9\"\nzookeeper = [\"zk1\"]\nbrokers = [\"k1\"]\n[workload]\ntopics = [{ name = \"t\", partitions = 1, replication = 1 }]\n",
    )
    .unwrap();
    let out = dir.path().join("never");
    let o = harness()
        .args(["watch", "--bootstrap", "127.0.0.1:1", "--out"])
        .arg(&out)
        .arg(&sc)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("with-cluster.toml:2") && err.contains("no [cluster]"),
        "{err}"
    );
    assert!(!out.exists(), "nothing started");
    // a client config line that is not a property, located
    let cc = dir.path().join("client.properties");
    std::fs::write(&cc, "security.protocol=SASL_SSL\nsasl.mechanism\n").unwrap();
    let o = harness()
        .args(["watch", "--bootstrap", "127.0.0.1:1", "--client-config"])
        .arg(&cc)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("client.properties:2"), "{err}");
    // a mark with no watch to go to
    let o = harness()
        .args(["mark", "switch", "--run"])
        .arg(dir.path().join("nowhere"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("nowhere"), "{err}");
}
