//! Bad scenario input is rejected before anything starts, with the file, the line, the
//! field and a hint — one test per kind of mistake, plus every shipped scenario validating.

use std::path::Path;

use harness::error::ScenarioError;
use harness::scenario::{
    self, Action, Anomaly, Bound, BrokerAction, ClusterIdSource, Cut, FeatureTarget, KraftAction,
    NetworkAction, NodeAction, Target, ZkAction,
};

const GOOD: &str = r#"name = "t"

[cluster]
kafka = "3.9"
zookeeper = ["zk1", "zk2", "zk3"]
brokers = ["kafka1", "kafka2", "kafka3"]

[workload]
topics = [{ name = "orders", partitions = 6, replication = 3, min_insync = 2 }]
producers = 2
consumers = 1
rate = 100
acks = "all"
idempotence = true

[[step]]
name = "pause"
do = "pause"
node = "follower:orders/0"
bind = "f"

[[step]]
name = "resume"
do = "resume"
node = "@f"
"#;

fn errors(text: &str) -> Vec<ScenarioError> {
    match scenario::parse(Path::new("bad.toml"), text) {
        Ok(_) => panic!("accepted:\n{text}"),
        Err(e) => e.0,
    }
}

/// The only error, checked for line, field and words in the message and hint.
fn one_error(text: &str, line: usize, field: &str, message: &str, hint: &str) {
    let errs = errors(text);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    let e = &errs[0];
    assert_eq!(e.file, Path::new("bad.toml"));
    assert_eq!(e.line, line, "{e}");
    assert_eq!(e.field, field, "{e}");
    assert!(
        e.message.contains(message),
        "message `{}` lacks `{message}`",
        e.message
    );
    assert!(e.hint.contains(hint), "hint `{}` lacks `{hint}`", e.hint);
    // and the rendered form carries all of it
    let shown = e.to_string();
    assert!(shown.starts_with(&format!("bad.toml:{line}:")), "{shown}");
    assert!(shown.contains("hint:"), "{shown}");
}

#[test]
fn the_good_scenario_is_accepted() {
    let s = scenario::parse(Path::new("good.toml"), GOOD).unwrap();
    assert_eq!(s.steps.len(), 2);
    assert_eq!(s.steps[0].line, 16);
    assert!(
        matches!(&s.steps[0].action, Action::Node(NodeAction::Pause { node: Target::Follower { topic, partition: 0 } }) if topic == "orders")
    );
    assert!(
        matches!(&s.steps[1].action, Action::Node(NodeAction::Resume { node: Target::Bound(b) }) if b == "f")
    );
    // defaults that decide verdicts
    assert_eq!(s.expect.bound(Anomaly::Lost), Bound::AtMost(0));
    assert_eq!(
        s.expect.bound(Anomaly::Duplicate),
        Bound::AtMost(0),
        "idempotence makes duplicates an error"
    );
    assert_eq!(s.expect.bound(Anomaly::Reordered), Bound::AtMost(0));
}

#[test]
fn an_unknown_key_names_its_line() {
    let text = GOOD.replace("rate = 100", "rate = 100\nspeed = 3");
    let errs = errors(&text);
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].line, 13);
    assert!(
        errs[0].message.contains("unknown field `speed`"),
        "{}",
        errs[0]
    );
    assert!(errs[0].hint.contains("remove or correct"), "{}", errs[0]);
}

#[test]
fn a_rate_is_records_per_second_or_unlimited() {
    for bad in ["0", "-5", "\"fast\""] {
        one_error(
            &GOOD.replace("rate = 100", &format!("rate = {bad}")),
            12,
            "workload.rate",
            "or \"unlimited\"",
            "rate = \"unlimited\"",
        );
    }
    let s = scenario::parse(
        Path::new("t.toml"),
        &GOOD.replace("rate = 100", "rate = \"unlimited\""),
    )
    .unwrap();
    assert_eq!(s.workload.producer.rate, None);
    // no cap: an operator's canary may want more than any one figure
    let s = scenario::parse(
        Path::new("t.toml"),
        &GOOD.replace("rate = 100", "rate = 2e6"),
    )
    .unwrap();
    assert_eq!(s.workload.producer.rate, Some(2e6));
}

#[test]
fn an_unknown_action_suggests_the_nearest() {
    one_error(
        &GOOD.replace("do = \"pause\"", "do = \"puase\""),
        18,
        "step[1].do",
        "unknown action `puase`",
        "did you mean `pause`?",
    );
}

#[test]
fn an_unknown_host_lists_the_nodes() {
    one_error(
        &GOOD.replace("node = \"@f\"", "node = \"kafka9\""),
        25,
        "step[2].node",
        "unknown host `kafka9`",
        "kafka1",
    );
}

#[test]
fn a_missing_argument_is_named() {
    one_error(
        &GOOD.replace("node = \"@f\"\n", ""),
        24,
        "step[2].node",
        "`resume` needs `node`",
        "node =",
    );
}

#[test]
fn missing_required_fields_are_problems_among_the_others() {
    // serde alone stops at the first missing field; every one must be reported, with the
    // other mistakes of the file
    let text = GOOD
        .replace("idempotence = true\n", "")
        .replace("rate = 100\n", "")
        .replace("node = \"@f\"", "node = \"kafka9\"")
        .replace("name = \"pause\"\n", "");
    let errs = errors(&text);
    let found: Vec<(&str, &str)> = errs
        .iter()
        .map(|e| (e.field.as_str(), e.message.as_str()))
        .collect();
    for (field, message) in [
        ("workload.rate", "missing field `rate`"),
        ("workload.idempotence", "missing field `idempotence`"),
        ("step[1].name", "the step has no `name`"),
        ("step[2].node", "unknown host `kafka9`"),
    ] {
        assert!(
            found.contains(&(field, message)),
            "no `{message}` at {field} in {errs:#?}"
        );
    }
    assert_eq!(errs.len(), 4, "{errs:#?}");
    // a missing field points at its table and says what to write
    let idem = errs
        .iter()
        .find(|e| e.field == "workload.idempotence")
        .unwrap();
    assert_eq!(idem.line, 8, "{idem}"); // the [workload] header
    assert!(idem.hint.contains("idempotence = true"), "{idem}");
}

#[test]
fn a_missing_table_and_a_missing_topic_field_are_named() {
    let no_cluster = GOOD.replace(
        "[cluster]\nkafka = \"3.9\"\nzookeeper = [\"zk1\", \"zk2\", \"zk3\"]\nbrokers = [\"kafka1\", \"kafka2\", \"kafka3\"]\n",
        "",
    );
    assert_ne!(no_cluster, GOOD);
    let errs = errors(&no_cluster);
    assert!(
        errs.iter()
            .any(|e| e.field == "cluster" && e.message == "missing field `cluster`"),
        "{errs:#?}"
    );
    let text = GOOD.replace("partitions = 6, ", "");
    let errs = errors(&text);
    assert!(
        errs.iter()
            .any(|e| e.field == "workload.topics[0].partitions"
                && e.message == "missing field `partitions`"),
        "{errs:#?}"
    );
    // the steps naming orders/0 are still checked against the topic (one partition)
    assert_eq!(errs.len(), 1, "{errs:#?}");
}

#[test]
fn an_argument_of_the_wrong_type_is_named() {
    one_error(
        &GOOD.replace("node = \"@f\"", "node = 3"),
        25,
        "step[2].node",
        "`node` must be a string",
        "README",
    );
}

#[test]
fn an_argument_the_action_does_not_take_is_named() {
    one_error(
        &GOOD.replace("node = \"@f\"", "node = \"@f\"\nduration = \"3s\""),
        26,
        "step[2].duration",
        "`resume` takes no `duration`",
        "takes: node",
    );
}

#[test]
fn a_malformed_duration_is_named() {
    let text = format!("{GOOD}\n[[step]]\nname = \"wait\"\ndo = \"sleep\"\nduration = \"ten\"\n");
    one_error(
        &text,
        30,
        "step[3].duration",
        "`ten` is not a duration",
        "\"10s\"",
    );
}

#[test]
fn impossible_orders_are_rejected() {
    // resuming a node that was never paused
    let text = GOOD.replace("node = \"@f\"", "node = \"kafka1\"");
    one_error(
        &text,
        25,
        "step[2].node",
        "cannot resume `kafka1`: it is running",
        "order of the steps",
    );
    // starting a node that is running
    let text = GOOD
        .replace("do = \"resume\"", "do = \"start\"")
        .replace("node = \"@f\"", "node = \"zk2\"");
    one_error(
        &text,
        25,
        "step[2].node",
        "cannot start `zk2`: it is running",
        "order",
    );
}

#[test]
fn a_name_used_before_it_is_bound_is_rejected() {
    one_error(
        &GOOD.replace("node = \"@f\"", "node = \"@g\""),
        25,
        "step[2].node",
        "`@g` is not bound",
        "bind =",
    );
}

#[test]
fn a_partition_reference_must_exist() {
    one_error(
        &GOOD.replace("follower:orders/0", "follower:orders/6"),
        19,
        "step[1].node",
        "`6` is not a partition of `orders`",
        "0..6",
    );
    one_error(
        &GOOD.replace("follower:orders/0", "leader:nope/0"),
        19,
        "step[1].node",
        "no workload topic `nope`",
        "orders",
    );
}

#[test]
fn replication_beyond_the_brokers_is_rejected() {
    one_error(
        &GOOD.replace(
            "replication = 3, min_insync = 2",
            "replication = 4, min_insync = 2",
        ),
        9,
        "workload.topics[0].replication",
        "replication 4 with 3 brokers",
        "between 1 and the number of brokers",
    );
}

#[test]
fn idempotence_without_acks_all_is_rejected() {
    one_error(
        &GOOD.replace("acks = \"all\"", "acks = \"1\""),
        14,
        "workload.idempotence",
        "needs acks = \"all\"",
        "idempotence = false",
    );
}

#[test]
fn expectations_are_validated() {
    let text = format!("{GOOD}\n[expect]\nlost = \"about none\"\n");
    one_error(&text, 28, "expect.lost", "not a count bound", "\"> 0\"");
    let text = format!("{GOOD}\n[expect]\nlost_step = \"no such step\"\n");
    one_error(
        &text,
        28,
        "expect.lost_step",
        "no step is named `no such step`",
        "[[step]]",
    );
}

#[test]
fn the_docker_backend_is_a_backend_and_every_shipped_scenario_reads_with_it() {
    let s = scenario::parse(
        Path::new("good.toml"),
        &GOOD.replace("kafka = \"3.9\"", "backend = \"docker\"\nkafka = \"3.9\""),
    )
    .unwrap();
    assert_eq!(s.cluster.backend, scenario::Backend::Docker);
    let s = scenario::parse(Path::new("good.toml"), GOOD).unwrap();
    assert_eq!(s.cluster.backend, scenario::Backend::Local);
}

#[test]
fn more_docker_worker_containers_than_the_run_network_holds_is_bad_input_before_anything_starts() {
    let docker = |producer_processes: u32| {
        let text = GOOD
            .replace("kafka = \"3.9\"", "backend = \"docker\"\nkafka = \"3.9\"")
            .replace(
                "producers = 2",
                &format!("producers = 500\nproducer_processes = {producer_processes}"),
            );
        scenario::parse(Path::new("many.toml"), &text).unwrap()
    };
    // 126 producer processes + 1 consumer process + the final read = 128 > 127
    let err = harness::run::preflight(&docker(126)).unwrap_err();
    assert_eq!(err.exit(), harness::error::Exit::BadInput, "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("many.toml")
            && msg.contains("workload.producer_processes (126)")
            && msg.contains("128 worker containers")
            && msg.contains("hint:"),
        "{msg}"
    );
    // 125 + 1 + 1 fit: whatever preflight says next (no engine here?) is not about room
    if let Err(e) = harness::run::preflight(&docker(125)) {
        assert!(!e.to_string().contains("worker containers"), "{e}");
    }
}

#[test]
fn an_unknown_backend_is_refused_with_the_ones_there_are() {
    one_error(
        &GOOD.replace("kafka = \"3.9\"", "backend = \"k8s\"\nkafka = \"3.9\""),
        4,
        "cluster.backend",
        "`k8s` is not available",
        "\"ec2\"",
    );
}

#[test]
fn the_ec2_table_is_checked_where_it_is() {
    let ec2 = |table: &str| {
        GOOD.replace("kafka = \"3.9\"", "backend = \"ec2\"\nkafka = \"3.9\"")
            .replacen("\n[workload]", &format!("\n{table}\n[workload]"), 1)
    };
    one_error_in(&ec2(""), "cluster.ec2", "no [cluster.ec2]", "ami");
    one_error_in(
        &ec2("[cluster.ec2]\ninstance_type = \"t3.small\""),
        "cluster.ec2.ami",
        "no image to launch",
        "reuse",
    );
    one_error_in(
        &ec2("[cluster.ec2]\nami = \"ami-1\"\nttl = \"forever\""),
        "cluster.ec2.ttl",
        "`forever` is not a duration",
        "4h",
    );
    let ok = scenario::parse(
        Path::new("f.toml"),
        &ec2("[cluster.ec2]\nreuse = { tag = \"cluster=temp\" }\nkey = \"k.pem\""),
    )
    .unwrap();
    let e = ok.cluster.ec2.unwrap();
    assert_eq!(e.reuse.unwrap().tag, "cluster=temp");
    assert_eq!(
        e.key.unwrap(),
        Path::new("k.pem"),
        "relative to the scenario's directory"
    );
    // the table belongs to the ec2 backend only
    one_error_in(
        &GOOD.replacen(
            "\n[workload]",
            "\n[cluster.ec2]\nami = \"ami-1\"\n[workload]",
            1,
        ),
        "cluster.ec2",
        "is for backend = \"ec2\"",
        "backend = \"ec2\"",
    );
}

#[test]
fn several_mistakes_are_all_reported() {
    let text = GOOD
        .replace("do = \"pause\"", "do = \"paws\"")
        .replace("node = \"@f\"", "node = \"kafka9\"");
    let errs = errors(&text);
    assert_eq!(errs.len(), 2, "{errs:#?}"); // the unknown action and the unknown host; no cascade
    assert!(errs.windows(2).all(|w| w[0].line <= w[1].line));
}

#[test]
fn broken_toml_names_the_line() {
    let errs = errors(&GOOD.replace("rate = 100", "rate = = 100"));
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].line, 12);
    assert_eq!(errs[0].field, "(toml)");
}

#[test]
fn a_missing_file_is_named() {
    let e = scenario::load(Path::new("/nonexistent/x.toml")).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/x.toml"), "{e}");
    assert!(e.to_string().contains("cannot read"), "{e}");
}

#[test]
fn every_shipped_scenario_validates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            scenario::load(&p).unwrap_or_else(|e| panic!("{e}"));
            n += 1;
        }
    }
    assert!(
        n >= 3,
        "expected the shipped scenarios in {}",
        dir.display()
    );
}

#[test]
fn the_cli_exits_2_on_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, GOOD.replace("do = \"pause\"", "do = \"puase\"")).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_harness"))
        .arg("validate")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:18:", bad.display())), "{err}");
    assert!(err.contains("did you mean `pause`?"), "{err}");
}

/// `--backend` cannot move a scenario where its KRaft parts do not run: refused (exit 2)
/// before anything starts, naming the flag and why.
#[test]
fn the_cli_refuses_a_backend_override_the_kraft_parts_cannot_follow() {
    let scenarios = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    for (file, backend, why) in [
        (
            "zk-to-kraft.toml",
            "docker",
            "a ZooKeeper→KRaft migration runs on the local backend only",
        ),
        (
            "kraft-controller-replacement.toml",
            "docker",
            "a dynamic quorum runs on the local backend only",
        ),
        (
            "kraft-upgrade-39-to-41.toml",
            "docker",
            "(`kafka-version`) runs on the local backend only, not `docker`",
        ),
        (
            "kraft-controller-replacement.toml",
            "ec2",
            "a dynamic quorum runs on the local backend only in this version, not `ec2`",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out_dir = dir.path().join("run");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_harness"))
            .arg("run")
            .arg(scenarios.join(file))
            .args(["--backend", backend, "--out"])
            .arg(&out_dir)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{file}: {err}");
        assert!(
            err.contains(&format!("--backend {backend}: ")) && err.contains(why),
            "{file}: {err}"
        );
        assert!(err.contains("hint: drop --backend"), "{file}: {err}");
        assert!(!out_dir.exists(), "{file}: nothing is started or written");
    }
}

const FAULTS: &str = r#"name = "f"

[cluster]
kafka = "3.9"
zookeeper = ["zk1"]
brokers = ["kafka1", "kafka2"]

[workload]
topics = [{ name = "orders", partitions = 2, replication = 2 }]
producers = 1
rate = 10
acks = "all"
idempotence = true

[[step]]
name = "cut"
do = "partition"
from = ["leader:orders/0"]
to = ["zk1", "clients"]
direction = "one-way"
fault = "c"

[[step]]
name = "lossy"
do = "loss"
node = "kafka2"
probability = 0.2

[[step]]
name = "heal all"
do = "heal"
"#;

#[test]
fn network_faults_are_parsed() {
    let s = scenario::parse(Path::new("f.toml"), FAULTS).unwrap();
    match &s.steps[0].action {
        Action::Network(NetworkAction::Partition {
            from,
            to,
            both_ways,
            how,
            fault,
        }) => {
            assert_eq!(*how, Cut::Drop, "a cut drops unless told otherwise");
            assert_eq!(
                from,
                &vec![Target::Leader {
                    topic: "orders".into(),
                    partition: 0
                }]
            );
            assert_eq!(
                to.as_ref().unwrap(),
                &vec![Target::Node("zk1".into()), Target::Clients]
            );
            assert!(!both_ways);
            assert_eq!(fault, "c");
        }
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(&s.steps[1].action, Action::Network(NetworkAction::Loss { fault, .. }) if fault == "lossy"),
        "a fault is named after its step by default"
    );
    assert!(matches!(
        &s.steps[2].action,
        Action::Network(NetworkAction::Heal { fault: None })
    ));
    assert_eq!(s.network_steps().len(), 3);
    let rejecting = scenario::parse(
        Path::new("f.toml"),
        &FAULTS.replace("direction = \"one-way\"", "how = \"reject\""),
    )
    .unwrap();
    assert!(matches!(
        &rejecting.steps[0].action,
        Action::Network(NetworkAction::Partition {
            how: Cut::Reject,
            both_ways: true,
            ..
        })
    ));
}

#[test]
fn healing_a_fault_that_is_not_active_is_rejected() {
    let text = FAULTS.replace(
        "name = \"heal all\"\ndo = \"heal\"",
        "name = \"heal all\"\ndo = \"heal\"\nfault = \"nope\"",
    );
    one_error_in(
        &text,
        "step[3].fault",
        "no active fault `nope`",
        "active faults",
    );
}

#[test]
fn a_fault_name_in_use_is_rejected() {
    let text = FAULTS.replace("probability = 0.2", "probability = 0.2\nfault = \"c\"");
    one_error_in(
        &text,
        "step[2].fault",
        "fault `c` is already active",
        "heal it first",
    );
}

#[test]
fn fault_arguments_are_checked() {
    one_error_in(
        &FAULTS.replace("probability = 0.2", "probability = 1.5"),
        "step[2].probability",
        "between 0 and 1",
        "one packet in five",
    );
    one_error_in(
        &FAULTS.replace("direction = \"one-way\"", "direction = \"sideways\""),
        "step[1].direction",
        "`sideways` is not a direction",
        "one-way",
    );
    one_error_in(
        &FAULTS.replace("direction = \"one-way\"", "how = \"refuse\""),
        "step[1].how",
        "`refuse` is not a way to cut",
        "reject",
    );
    let bw = FAULTS.replace(
        "do = \"loss\"\nnode = \"kafka2\"\nprobability = 0.2",
        "do = \"bandwidth\"\nnode = \"kafka2\"\nrate = \"fast\"",
    );
    one_error_in(&bw, "step[2].rate", "`fast` is not a rate", "2mbit");
    one_error_in(
        &FAULTS.replace("to = [\"zk1\", \"clients\"]", "to = [\"zk9\"]"),
        "step[1].to",
        "unknown host `zk9`",
        "zk1",
    );
    one_error_in(
        &FAULTS.replace(
            "node = \"kafka2\"\nprobability",
            "node = \"clients\"\nprobability",
        ),
        "step[2].node",
        "unknown host `clients`",
        "nodes of this cluster",
    );
}

#[test]
fn per_step_expectations_name_real_steps() {
    let ok = format!("{FAULTS}\n[expect]\nmax_unavailable_ms = 5000\n[expect.step.\"cut\"]\nmax_unavailable_ms = 60000\nlost = 0\n");
    let s = scenario::parse(Path::new("f.toml"), &ok).unwrap();
    assert_eq!(s.expect.per_step["cut"].max_unavailable_ms, Some(60000));
    assert_eq!(s.expect.per_step["cut"].lost, Some(Bound::AtMost(0)));
    let bad = format!("{FAULTS}\n[expect.step.\"cutt\"]\nmax_unavailable_ms = 1\n");
    one_error_in(
        &bad,
        "expect.step.\"cutt\"",
        "no step is named `cutt`",
        "[[step]]",
    );
}

#[test]
fn a_loopback_scenario_with_network_faults_is_refused_before_it_starts() {
    let text = FAULTS.replace("kafka = \"3.9\"", "hosts = \"loopback\"\nkafka = \"3.9\"");
    let s = scenario::parse(Path::new("f.toml"), &text).unwrap();
    let err = harness::run::preflight(&s).unwrap_err();
    assert_eq!(err.exit(), harness::error::Exit::ToolFailed);
    let msg = err.to_string();
    assert!(
        msg.contains("step `cut`")
            && msg.contains("needs namespace hosts")
            && msg.contains("loopback"),
        "{msg}"
    );
}

/// The only error, checked for field and words (lines are checked by the tests above).
fn one_error_in(text: &str, field: &str, message: &str, hint: &str) {
    let errs = errors(text);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!(errs[0].field, field, "{}", errs[0]);
    assert!(errs[0].message.contains(message), "{}", errs[0]);
    assert!(errs[0].hint.contains(hint), "{}", errs[0]);
}

/// Six ZooKeeper nodes in two ensembles, the targets dormant; `steps` appended.
fn zk_scenario(extra_cluster: &str, steps: &str) -> String {
    format!(
        r#"name = "z"

[cluster]
kafka = "3.9"
zookeeper = ["zk1", "zk2", "zk3", "zk4", "zk5", "zk6"]
dormant = ["zk4", "zk5", "zk6"]
kafka_ensemble = "source"
brokers = ["kafka1", "kafka2", "kafka3"]
{extra_cluster}
[cluster.ensembles]
source = ["zk1", "zk2", "zk3"]
target = ["zk4", "zk5", "zk6"]

[workload]
topics = [{{ name = "orders", partitions = 6, replication = 3, min_insync = 2 }}]
producers = 1
rate = 100
acks = "all"
idempotence = true

[check]
zookeeper_smoke = true
{steps}"#
    )
}

#[test]
fn ensembles_expand_in_steps_and_dormant_nodes_start_stopped() {
    let text = zk_scenario(
        "",
        r#"
[[step]]
name = "federate"
do = "zk-config"
nodes = ["source", "zk4"]
participants = ["source", "zk4"]

[[step]]
name = "start the targets"
do = "start"
nodes = ["target"]

[[step]]
name = "copy"
do = "zk-copy"
from = ["source"]
to = ["target"]
path = "/kafka"

[[step]]
name = "catch up"
do = "zk-copy"
from = ["source"]
to = ["target"]
path = "/kafka"
since = "copy"
prune = true

[[step]]
name = "switch"
do = "zk-connect"
servers = ["target"]

[expect.ensemble.target]
max_unavailable_ms = 3000
[expect.ensemble.target.step."switch"]
max_unavailable_ms = 20000
"#,
    );
    let s = scenario::parse(Path::new("z.toml"), &text).unwrap_or_else(|e| panic!("{e}"));
    match &s.steps[0].action {
        Action::ZooKeeper(ZkAction::Config {
            nodes,
            participants,
            observers,
        }) => {
            assert_eq!(nodes, &["zk1", "zk2", "zk3", "zk4"]);
            assert_eq!(participants, &["zk1", "zk2", "zk3", "zk4"]);
            assert!(observers.is_empty());
        }
        a => panic!("{a:?}"),
    }
    match &s.steps[1].action {
        Action::Node(NodeAction::StartAll { nodes, .. }) => {
            assert_eq!(nodes, &["zk4", "zk5", "zk6"])
        }
        a => panic!("{a:?}"),
    }
    match &s.steps[3].action {
        Action::ZooKeeper(ZkAction::Copy {
            since,
            prune,
            batch,
            ..
        }) => {
            assert_eq!(since.as_deref(), Some("copy"));
            assert!(*prune);
            assert_eq!(*batch, 100);
        }
        a => panic!("{a:?}"),
    }
    match &s.steps[4].action {
        Action::ZooKeeper(ZkAction::Connect {
            servers,
            brokers,
            roll,
            ..
        }) => {
            assert_eq!(servers, &["zk4", "zk5", "zk6"]);
            assert_eq!(brokers.len(), 3);
            assert!(*roll);
        }
        a => panic!("{a:?}"),
    }
    assert_eq!(s.expect.ensembles["target"].per_step["switch"], 20000);
    assert!(s.expect.kafka_metadata_intact);
}

#[test]
fn starting_a_running_node_or_stopping_a_dormant_one_is_rejected() {
    let e = errors(&zk_scenario(
        "",
        r#"
[[step]]
name = "stop zk5"
do = "stop"
node = "zk5"
"#,
    ));
    assert_eq!(e.len(), 1, "{e:#?}");
    assert!(
        e[0].message.contains("cannot stop `zk5`: it is stopped"),
        "{}",
        e[0]
    );
    let e = errors(&zk_scenario(
        "",
        r#"
[[step]]
name = "start"
do = "start"
nodes = ["source"]
"#,
    ));
    assert_eq!(e.len(), 3, "{e:#?}");
    assert!(e[0].message.contains("cannot start `zk1`"), "{}", e[0]);
}

#[test]
fn zookeeper_steps_name_unknown_servers_and_bad_arguments() {
    let e = errors(&zk_scenario(
        "",
        r#"
[[step]]
name = "copy"
do = "zk-copy"
from = ["source"]
to = ["kafka1"]
path = "kafka"
since = "later"
batch = 0
"#,
    ));
    let fields: Vec<&str> = e.iter().map(|x| x.field.as_str()).collect();
    assert_eq!(
        fields,
        vec![
            "step[1].to",
            "step[1].path",
            "step[1].since",
            "step[1].batch"
        ],
        "{e:#?}"
    );
    assert!(
        e[0].message
            .contains("neither a ZooKeeper node nor an ensemble"),
        "{}",
        e[0]
    );
    assert!(e[0].hint.contains("ensembles: source, target"), "{}", e[0]);
}

#[test]
fn a_reconfig_needs_reconfig_enabled_and_running_joiners() {
    let steps = r#"
[[step]]
name = "reconfig"
do = "zk-reconfig"
add = ["target"]
remove = ["source"]
"#;
    let e = errors(&zk_scenario("", steps));
    assert!(
        e.iter()
            .any(|x| x.message.contains("dynamic reconfig is disabled")
                && x.hint.contains("reconfigEnabled")),
        "{e:#?}"
    );
    assert!(
        e.iter().any(|x| x.message.contains("`zk4` is not running")),
        "{e:#?}"
    );
    let enabled = "[cluster.zookeeper_config]\nreconfigEnabled = \"true\"\n";
    let started =
        format!("\n[[step]]\nname = \"joiners\"\ndo = \"start\"\nnodes = [\"target\"]\n{steps}");
    scenario::parse(Path::new("z.toml"), &zk_scenario(enabled, &started))
        .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn ensemble_definitions_are_checked() {
    let text = zk_scenario("", "").replace(
        "target = [\"zk4\", \"zk5\", \"zk6\"]",
        "target = [\"zk3\", \"zk5\", \"zk9\"]",
    );
    let e = errors(&text);
    let msgs: Vec<&str> = e.iter().map(|x| x.message.as_str()).collect();
    assert!(
        msgs.iter()
            .any(|m| m.contains("`zk9` is not a ZooKeeper node")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter().any(|m| m.contains("`zk3` is in both")),
        "{msgs:?}"
    );
    assert!(
        msgs.iter().any(|m| m.contains("`zk4` is in no ensemble")),
        "{msgs:?}"
    );
    // an ensemble expectation names an ensemble that exists, and needs the smoke test
    let text = zk_scenario("", "\n[expect.ensemble.nope]\nmax_unavailable_ms = 1\n")
        .replace("zookeeper_smoke = true", "zookeeper_smoke = false");
    let e = errors(&text);
    assert_eq!(e.len(), 2, "{e:#?}");
    assert!(
        e.iter().all(|x| x.field == "expect.ensemble.nope"),
        "{e:#?}"
    );
}

#[test]
fn a_rolling_restart_names_an_unknown_node_and_lists_what_exists() {
    let e = errors(&zk_scenario(
        "",
        "\n[[step]]\nname = \"roll\"\ndo = \"rolling-restart\"\nnodes = [\"source\", \"kafka9\"]\n",
    ));
    assert_eq!(e.len(), 1, "{e:#?}");
    assert_eq!(e[0].field, "step[1].nodes");
    assert!(
        e[0].message.contains("`kafka9` is not a node or ensemble"),
        "{}",
        e[0]
    );
    assert!(e[0].hint.contains("brokers: kafka1") && e[0].hint.contains("ensembles: source"));
}

/// A 3+3-broker cluster (the new three dormant) for the broker migration actions.
fn brokers_scenario(steps: &str) -> String {
    format!(
        r#"name = "t"

[cluster]
kafka = "3.9"
zookeeper = ["zk1"]
brokers = ["kafka1", "kafka2", "kafka3", "kafka4", "kafka5", "kafka6"]
dormant = ["kafka4", "kafka5", "kafka6"]

[workload]
topics = [{{ name = "orders", partitions = 3, replication = 3, min_insync = 2 }}]
producers = 1
rate = 100
acks = "all"
idempotence = true
{steps}"#
    )
}

#[test]
fn broker_migration_actions_are_parsed() {
    let text = brokers_scenario(
        r#"
[[step]]
name = "add"
do = "add-brokers"
brokers = ["kafka4", "kafka5", "kafka6"]

[[step]]
name = "audit"
do = "audit"

[[step]]
name = "raise"
do = "reassign"
topics = ["ord*"]
replication = 3
avoid = ["kafka2"]
throttle = "1MB"

[[step]]
name = "move one"
do = "reassign"
plan = [{ topic = "orders", partition = 0, replicas = ["kafka4", "kafka5", "kafka6"] }]

[[step]]
name = "elect"
do = "elect-leaders"

[[step]]
name = "switch"
do = "switch-bootstrap"
brokers = ["kafka4", "kafka5", "kafka6"]

[[step]]
name = "migrate"
do = "migrate-brokers"
map = { kafka1 = "kafka4", kafka2 = "kafka5", kafka3 = "kafka6" }
bookkeeping_topic = "_m"
interrupt_after = 1

[[step]]
name = "drain"
do = "drain"
brokers = ["kafka1"]
"#,
    );
    let sc = scenario::parse(Path::new("ok.toml"), &text).unwrap();
    let kw: Vec<&str> = sc.steps.iter().map(|s| s.action.keyword()).collect();
    assert_eq!(
        kw,
        [
            "add-brokers",
            "audit",
            "reassign",
            "reassign",
            "elect-leaders",
            "switch-bootstrap",
            "migrate-brokers",
            "drain"
        ]
    );
    match &sc.steps[2].action {
        Action::Broker(BrokerAction::Reassign { throttle, .. }) => {
            assert_eq!(*throttle, Some(1_000_000))
        }
        a => panic!("{a:?}"),
    }
    assert_eq!(sc.cluster.dormant, ["kafka4", "kafka5", "kafka6"]);
}

#[test]
fn broker_migration_mistakes_are_named() {
    // migrating onto brokers that are not running yet
    one_error(
        &brokers_scenario(
            r#"
[[step]]
name = "migrate"
do = "migrate-brokers"
map = { kafka1 = "kafka4" }
bookkeeping_topic = "_m"
"#,
        ),
        19,
        "step[1].map",
        "new broker `kafka4` is not running",
        "add-brokers",
    );
    // a map onto a broker being replaced
    one_error(
        &brokers_scenario(
            r#"
[[step]]
name = "migrate"
do = "migrate-brokers"
map = { kafka1 = "kafka2", kafka2 = "kafka3" }
bookkeeping_topic = "_m"
"#,
        ),
        19,
        "step[1].map",
        "both old and new",
        "each once",
    );
    // reassign with two plans
    one_error(
        &brokers_scenario(
            r#"
[[step]]
name = "r"
do = "reassign"
replication = 2
map = { kafka1 = "kafka2" }
"#,
        ),
        18,
        "step[1].do",
        "exactly one of",
        "replication = 2",
    );
    // a throttle that is not a rate, an unknown broker to drain
    let errs = errors(&brokers_scenario(
        r#"
[[step]]
name = "d"
do = "drain"
brokers = ["kafka9"]
throttle = "fast"
"#,
    ));
    assert_eq!(errs.len(), 2, "{errs:#?}");
    assert!(errs
        .iter()
        .any(|e| e.field == "step[1].throttle" && e.hint.contains("1MB")));
    assert!(errs
        .iter()
        .any(|e| e.field == "step[1].brokers" && e.message.contains("kafka9")));
    // every broker dormant
    let text = brokers_scenario("").replace(
        r#"dormant = ["kafka4", "kafka5", "kafka6"]"#,
        r#"dormant = ["kafka1", "kafka2", "kafka3", "kafka4", "kafka5", "kafka6"]"#,
    );
    one_error(
        &text,
        7,
        "cluster.dormant",
        "every broker is dormant",
        "new brokers",
    );
    // the bookkeeping topic cannot be a workload topic; switching to a stopped broker
    let errs = errors(&brokers_scenario(
        r#"
[[step]]
name = "s"
do = "switch-bootstrap"
brokers = ["kafka4"]
"#,
    ));
    assert!(errs[0].message.contains("not running"), "{errs:#?}");
}

#[test]
fn retention_shorter_than_the_run_is_warned_of_before_it_starts() {
    let s = scenario::parse(Path::new("good.toml"), GOOD).unwrap();
    assert!(
        scenario::warnings(&s).is_empty(),
        "{:?}",
        scenario::warnings(&s)
    );
    // the load lasts at least warm-up + settle (5 s each by default)
    let short = GOOD.replace(
        "min_insync = 2 }",
        "min_insync = 2, config = { \"retention.ms\" = \"3000\" } }",
    );
    let s = scenario::parse(Path::new("short.toml"), &short).unwrap();
    let w = scenario::warnings(&s);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].contains("topic orders retention.ms = 3000"),
        "{}",
        w[0]
    );
    assert!(w[0].contains("expired"), "{}", w[0]);
    // the broker's setting counts where the topic sets none; bytes too
    let broker = GOOD.replace(
        "brokers = [\"kafka1\", \"kafka2\", \"kafka3\"]",
        "brokers = [\"kafka1\", \"kafka2\", \"kafka3\"]\nbroker_config = { \"log.retention.minutes\" = \"0\", \"log.retention.bytes\" = \"1000\" }",
    );
    let s = scenario::parse(Path::new("broker.toml"), &broker).unwrap();
    let w = scenario::warnings(&s);
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(w[0].contains("broker log.retention.*"), "{}", w[0]);
    assert!(
        w[1].contains("broker log.retention.bytes = 1000"),
        "{}",
        w[1]
    );
}

#[test]
fn a_placement_is_one_of_the_two_there_are() {
    one_error(
        &GOOD.replace(
            "idempotence = true",
            "idempotence = true\nplacement = \"spread\"",
        ),
        15,
        "workload.placement",
        "`spread` is not a placement",
        "\"split\"",
    );
    for (word, want) in [
        ("round-robin", harness::scenario::Placement::RoundRobin),
        ("split", harness::scenario::Placement::Split),
    ] {
        let text = GOOD.replace(
            "idempotence = true",
            &format!("idempotence = true\nplacement = \"{word}\""),
        );
        let sc = scenario::parse(Path::new("ok.toml"), &text).unwrap();
        assert_eq!(sc.workload.placement, want);
    }
    let sc = scenario::parse(Path::new("ok.toml"), GOOD).unwrap();
    assert_eq!(
        sc.workload.placement,
        harness::scenario::Placement::RoundRobin
    );
}

/// GOOD as a KRaft cluster of `kafka`, with `cluster` lines instead of the ensemble.
fn kraft(kafka: &str, cluster: &str) -> String {
    GOOD.replace("kafka = \"3.9\"", &format!("kafka = \"{kafka}\""))
        .replace("zookeeper = [\"zk1\", \"zk2\", \"zk3\"]", cluster)
}

#[test]
fn a_kraft_cluster_has_controllers_with_ids_apart_from_the_brokers() {
    let text = kraft(
        "4.1",
        "controllers = [\"ctl1\", \"ctl2\", \"kafka3\"]\ncontroller_heap_mb = 200",
    );
    let s = scenario::parse(Path::new("good.toml"), &text).unwrap();
    let c = &s.cluster;
    assert!(c.is_kraft());
    assert_eq!(c.kafka_version, "4.1.2");
    assert!(c.zookeeper.is_empty() && c.ensembles.is_empty());
    assert_eq!(c.controller_id("ctl1"), Some(101));
    assert_eq!(c.controller_id("ctl2"), Some(102));
    // a broker named among the controllers is a combined node with its broker id
    assert_eq!(c.controller_id("kafka3"), Some(3));
    assert_eq!(
        c.all_nodes(),
        ["ctl1", "ctl2", "kafka1", "kafka2", "kafka3"]
    );
    assert_eq!(c.controller_heap_mb, 200);
    // exact releases, and 3.9 in KRaft mode
    for (v, exact) in [("4.1.1", "4.1.1"), ("4.4", "4.4.0"), ("3.9", "3.9.1")] {
        let s = scenario::parse(
            Path::new("good.toml"),
            &kraft(v, "controllers = [\"ctl1\"]"),
        )
        .unwrap();
        assert_eq!(s.cluster.kafka_version, exact);
    }
    // steps may name a controller like any node
    let text = kraft("4.1", "controllers = [\"ctl1\"]")
        .replace("node = \"follower:orders/0\"", "node = \"ctl1\"");
    scenario::parse(Path::new("good.toml"), &text).unwrap();
}

#[test]
fn kafka_4_without_controllers_is_refused_with_the_shape_to_write() {
    one_error(
        &GOOD.replace("kafka = \"3.9\"", "kafka = \"4.1\""),
        5,
        "cluster.controllers",
        "Kafka 4.1.2 has no ZooKeeper mode",
        "controllers = [",
    );
    one_error(
        &GOOD.replace("kafka = \"3.9\"", "kafka = \"5.0\""),
        4,
        "cluster.kafka",
        "Kafka `5.0` is not supported",
        "4.x release",
    );
}

#[test]
fn a_kraft_cluster_refuses_an_ensemble_other_backends_and_the_zookeeper_smoke_test() {
    // both on Kafka 4: there is no ZooKeeper to migrate from
    let both = GOOD.replace("brokers = [", "controllers = [\"ctl1\"]\nbrokers = [");
    one_error(
        &both.replace("kafka = \"3.9\"", "kafka = \"4.1\""),
        5,
        "cluster.zookeeper",
        "has no ZooKeeper mode",
        "kafka = \"3.9\" for the migration",
    );
    // KRaft in containers: a static quorum is accepted; a dynamic one and a migration are
    // refused there (built and tested on the local backend only)
    let docker = |t: String| t.replace("[cluster]\n", "[cluster]\nbackend = \"docker\"\n");
    scenario::parse(
        Path::new("good.toml"),
        &docker(kraft("4.1", "controllers = [\"ctl1\"]")),
    )
    .unwrap();
    one_error(
        &docker(kraft(
            "4.1",
            "controllers = [\"ctl1\"]\nquorum = \"dynamic\"",
        )),
        6,
        "cluster.controllers",
        "a dynamic quorum runs on the local backend only in this version, not `docker`",
        "backend = \"local\"",
    );
    let migration = GOOD.replace(
        "brokers = [",
        "controllers = [\"ctl1\"]\ndormant = [\"ctl1\"]\nbrokers = [",
    );
    let errs = errors(&docker(migration.clone()));
    assert!(
        errs.iter().any(|e| e.field == "cluster.controllers"
            && e.message
                .contains("a ZooKeeper→KRaft migration runs on the local backend only")),
        "{errs:#?}"
    );
    scenario::parse(Path::new("good.toml"), &migration).unwrap();
    let errs = errors(&format!(
        "{}\n[check]\nzookeeper_smoke = true\n",
        kraft("4.1", "controllers = [\"ctl1\"]")
    ));
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!(errs[0].field, "check.zookeeper_smoke");
    one_error(
        &kraft("4.1", "controllers = [\"ctl1\", \"ctl1\"]"),
        5,
        "cluster",
        "node name `ctl1` is used twice",
        "its own name",
    );
    one_error(
        &kraft("4.1", "controllers = [\"ctl1\"]\ndormant = [\"ctl1\"]"),
        6,
        "cluster.dormant",
        "controller `ctl1` is dormant",
        "quorum = \"dynamic\" (KIP-853)",
    );
}

#[test]
fn the_active_controller_is_a_target_in_either_mode() {
    let on = |text: &str| {
        let s = scenario::parse(Path::new("good.toml"), text).unwrap();
        assert!(matches!(
            &s.steps[0].action,
            Action::Node(NodeAction::Pause {
                node: Target::ActiveController
            })
        ));
    };
    // KRaft: the quorum's leader
    on(
        &kraft("4.1", "controllers = [\"ctl1\", \"ctl2\", \"ctl3\"]").replace(
            "node = \"follower:orders/0\"",
            "node = \"controller:active\"",
        ),
    );
    // ZooKeeper mode: the broker that holds /controller
    on(&GOOD.replace(
        "node = \"follower:orders/0\"",
        "node = \"controller:active\"",
    ));
}

#[test]
fn node_config_takes_kafka_nodes_and_a_change() {
    let step = |body: &str| {
        GOOD.replace(
            "[[step]]\nname = \"pause\"",
            &format!("[[step]]\nname = \"cfg\"\ndo = \"node-config\"\n{body}\n\n[[step]]\nname = \"pause\""),
        )
    };
    let s = scenario::parse(
        Path::new("good.toml"),
        &step("nodes = [\"kafka1\"]\nset = { \"num.io.threads\" = 4, \"x.y\" = \"z\" }\nremove = [\"log.segment.bytes\"]"),
    )
    .unwrap();
    match &s.steps[0].action {
        Action::Node(NodeAction::NodeConfig { nodes, set, remove }) => {
            assert_eq!(nodes, &["kafka1"]);
            assert_eq!(set["num.io.threads"], "4");
            assert_eq!(set["x.y"], "z");
            assert_eq!(remove, &["log.segment.bytes"]);
        }
        other => panic!("{other:?}"),
    }
    one_error(
        &step("nodes = [\"zk1\"]\nset = { \"a\" = 1 }"),
        19,
        "step[1].nodes",
        "`zk1` is a ZooKeeper node",
        "zk-config",
    );
    one_error(
        &step("nodes = [\"kafka1\"]"),
        18,
        "step[1].set",
        "changes nothing",
        "remove = [",
    );
    one_error(
        &step("nodes = [\"kafka1\"]\nset = { \"a\" = 1 }\nremove = [\"a\"]"),
        18,
        "step[1].remove",
        "`a` is both set and removed",
        "one of",
    );
}

/// GOOD as a ZooKeeper→KRaft migration: the ensemble, and dormant controllers; `steps`
/// replace GOOD's steps.
fn migration(cluster_extra: &str, steps: &str) -> String {
    let head = GOOD[..GOOD.find("[[step]]").unwrap()].replace(
        "brokers = [",
        &format!("controllers = [\"ctl1\", \"ctl2\", \"ctl3\"]\n{cluster_extra}brokers = ["),
    );
    format!("{head}{steps}")
}

const FORMAT_AND_START: &str = r#"[[step]]
name = "format"
do = "format-storage"
nodes = ["ctl1", "ctl2", "ctl3"]
cluster_id = "zookeeper"

[[step]]
name = "start"
do = "start"
nodes = ["ctl1", "ctl2", "ctl3"]

[[step]]
name = "brokers into migration mode"
do = "node-config"
nodes = ["kafka1", "kafka2", "kafka3"]
set = { "zookeeper.metadata.migration.enable" = true, "controller.quorum.voters" = "{voters}", "node.id" = "{id}" }

[[step]]
name = "wait"
do = "wait-migration"
timeout = "60s"

[[step]]
name = "decommission"
do = "stop"
nodes = ["zk1", "zk2", "zk3"]
"#;

#[test]
fn a_migration_cluster_has_dormant_controllers_formatted_by_a_step() {
    let dormant = "dormant = [\"ctl1\", \"ctl2\", \"ctl3\"]\n";
    let s = scenario::parse(
        Path::new("good.toml"),
        &migration(dormant, FORMAT_AND_START),
    )
    .unwrap();
    let c = &s.cluster;
    assert!(c.is_migration() && !c.is_kraft() && c.has_controllers());
    assert_eq!(c.kafka_version, "3.9.1");
    assert_eq!(c.controller_id("ctl1"), Some(101));
    assert!(matches!(
        &s.steps[0].action,
        Action::Kraft(KraftAction::FormatStorage { nodes, cluster_id: ClusterIdSource::Zookeeper }) if nodes.len() == 3
    ));
    assert!(matches!(
        &s.steps[3].action,
        Action::Kraft(KraftAction::WaitMigration { .. })
    ));
    assert!(
        matches!(&s.steps[4].action, Action::Node(NodeAction::StopAll { nodes }) if nodes.len() == 3)
    );
    // controllers that start with the cluster could not carry the brokers' cluster id (the
    // steps that format and start them are then refused too)
    let errs = errors(&migration("", FORMAT_AND_START));
    assert_eq!(
        (errs[0].line, errs[0].field.as_str()),
        (6, "cluster.dormant"),
        "{errs:#?}"
    );
    assert!(errs[0]
        .message
        .contains("controller `ctl1` of a ZooKeeper→KRaft migration is not dormant"));
    assert!(
        errs[0]
            .hint
            .contains("dormant = [\"ctl1\", \"ctl2\", \"ctl3\"]"),
        "{}",
        errs[0].hint
    );
    // Kafka migrates to dedicated controllers only
    one_error(
        &migration(dormant, FORMAT_AND_START)
            .replace(
                "controllers = [\"ctl1\", \"ctl2\", \"ctl3\"]",
                "controllers = [\"ctl1\", \"ctl2\", \"ctl3\", \"kafka1\"]",
            )
            .replace(
                "dormant = [\"ctl1\", \"ctl2\", \"ctl3\"]",
                "dormant = [\"ctl1\", \"ctl2\", \"ctl3\", \"kafka1\"]",
            ),
        6,
        "cluster.controllers",
        "broker `kafka1` is among the controllers",
        "dedicated controllers only",
    );
}

#[test]
fn a_migration_controller_starts_only_formatted_and_the_migration_steps_need_a_migration() {
    let dormant = "dormant = [\"ctl1\", \"ctl2\", \"ctl3\"]\n";
    // started before its format
    let unformatted = FORMAT_AND_START.replacen(
        "nodes = [\"ctl1\", \"ctl2\", \"ctl3\"]\ncluster_id",
        "nodes = [\"ctl1\", \"ctl2\"]\ncluster_id",
        1,
    );
    one_error(
        &migration(dormant, &unformatted),
        27,
        "step[2].nodes",
        "`ctl3` would start with unformatted storage",
        "format-storage",
    );
    // formatted twice, a broker formatted, a cluster id that is not one
    let errs = errors(&migration(
        dormant,
        &FORMAT_AND_START.replace(
            "cluster_id = \"zookeeper\"",
            "cluster_id = \"not-an-id\"",
        ).replacen("[[step]]\nname = \"start\"", "[[step]]\nname = \"again\"\ndo = \"format-storage\"\nnodes = [\"ctl1\", \"kafka1\"]\n\n[[step]]\nname = \"start\"", 1),
    ));
    let said: Vec<String> = errs
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect();
    assert!(
        said.iter()
            .any(|m| m.contains("step[1].cluster_id: `not-an-id` is not a cluster id")),
        "{said:#?}"
    );
    assert!(
        said.iter()
            .any(|m| m.contains("step[2].nodes: `ctl1` is formatted already")),
        "{said:#?}"
    );
    assert!(
        said.iter()
            .any(|m| m.contains("step[2].nodes: `kafka1` is not a dedicated controller")),
        "{said:#?}"
    );
    // waiting for a migration with no controller running
    let no_start = FORMAT_AND_START.replace(
        "do = \"start\"\nnodes = [\"ctl1\", \"ctl2\", \"ctl3\"]",
        "do = \"mark\"",
    );
    let errs = errors(&migration(dormant, &no_start));
    assert!(
        errs.iter()
            .any(|e| e.field == "step[4].do" && e.message.contains("no controller runs")),
        "{errs:#?}"
    );
    // format-storage on a cluster that is not a migration
    let errs = errors(
        &kraft("4.1", "controllers = [\"ctl1\", \"ctl2\", \"ctl3\"]")
            .replace(
                "do = \"pause\"\nnode = \"follower:orders/0\"\nbind = \"f\"",
                "do = \"format-storage\"\nnodes = [\"ctl1\"]",
            )
            .replace("do = \"resume\"\nnode = \"@f\"", "do = \"mark\""),
    );
    assert!(
        errs.iter().any(
            |e| e.message.contains("belongs to a ZooKeeper→KRaft migration")
                && e.hint.contains("formatted with the cluster")
        ),
        "{errs:#?}"
    );
    // a node-config placeholder that does not exist, and {voters} without controllers
    let errs = errors(&GOOD.replace(
        "do = \"pause\"\nnode = \"follower:orders/0\"\nbind = \"f\"",
        "do = \"node-config\"\nnodes = [\"kafka1\"]\nset = { \"a\" = \"{node}\", \"b\" = \"{voters}\" }",
    ).replace("do = \"resume\"\nnode = \"@f\"", "do = \"mark\""));
    let said: Vec<String> = errs
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect();
    assert!(
        said.iter().any(|m| m.contains("step[1].set.a: `{node}`")),
        "{said:#?}"
    );
    assert!(
        said.iter()
            .any(|m| m.contains("step[1].set.b: `{voters}` names the KRaft controllers")),
        "{said:#?}"
    );
    assert_eq!(said.len(), 2, "{said:#?}");
}

#[test]
fn a_kraft_upgrade_is_parsed_and_its_mistakes_are_named() {
    let step = |s: &str, cluster: &str| {
        kraft("3.9", cluster)
            .replace(
                "do = \"pause\"\nnode = \"follower:orders/0\"\nbind = \"f\"",
                s,
            )
            .replace("do = \"resume\"\nnode = \"@f\"", "do = \"mark\"")
    };
    let ctl = "controllers = [\"ctl1\", \"ctl2\", \"ctl3\"]";
    // the shipped upgrade: both verbs, the release resolved to its newest patch
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/kraft-upgrade-39-to-41.toml");
    let sc = scenario::load(&path).unwrap();
    assert_eq!(sc.upgrade_releases(), ["4.1.2", "4.1.2"]);
    // a release the harness does not run, a ZooKeeper-free cluster's nodes only
    let errs = errors(&step(
        "do = \"kafka-version\"\nnodes = [\"ctl1\"]\nkafka = \"5.0\"",
        ctl,
    ));
    assert!(
        errs.iter()
            .any(|e| e.field == "step[1].kafka"
                && e.message.contains("`5.0` is not a Kafka release")),
        "{errs:#?}"
    );
    // a metadata version that is none
    let errs = errors(&step(
        "do = \"update-features\"\nmetadata_version = \"latest\"",
        ctl,
    ));
    assert!(
        errs.iter()
            .any(|e| e.field == "step[1].metadata_version" && e.hint.contains("4.1-IV1")),
        "{errs:#?}"
    );
    // a release version that is none; both kinds at once; neither
    let errs = errors(&step(
        "do = \"update-features\"\nrelease_version = \"4.1.2\"",
        ctl,
    ));
    assert!(
        errs.iter()
            .any(|e| e.field == "step[1].release_version" && e.message.contains("`4.1.2`")),
        "{errs:#?}"
    );
    let errs = errors(&step(
        "do = \"update-features\"\nmetadata_version = \"4.1\"\nrelease_version = \"4.1\"",
        ctl,
    ));
    assert!(
        errs.iter()
            .any(|e| e.message.contains("not both") && e.hint.contains("kraft.version")),
        "{errs:#?}"
    );
    let errs = errors(&step("do = \"update-features\"", ctl));
    assert!(
        errs.iter().any(|e| e
            .message
            .contains("needs `metadata_version` or `release_version`")),
        "{errs:#?}"
    );
    let text = step("do = \"update-features\"\nrelease_version = \"4.1\"", ctl);
    let sc = scenario::parse(Path::new("good.toml"), &text).unwrap();
    assert!(
        matches!(&sc.steps[0].action, Action::Kraft(KraftAction::UpdateFeatures {
            to: FeatureTarget::Release(v)
        }) if v == "4.1"),
        "{:?}",
        sc.steps[0].action
    );
    // not on a ZooKeeper cluster (migrate first), nor on another backend
    let errs = errors(
        &GOOD
            .replace(
                "do = \"pause\"\nnode = \"follower:orders/0\"\nbind = \"f\"",
                "do = \"kafka-version\"\nnodes = [\"kafka1\"]\nkafka = \"4.1\"",
            )
            .replace("do = \"resume\"\nnode = \"@f\"", "do = \"mark\""),
    );
    assert!(
        errs.iter()
            .any(|e| e.message.contains("upgrades a KRaft cluster")
                && e.hint.contains("migrate it first")),
        "{errs:#?}"
    );
    let errs = errors(
        &step("do = \"update-features\"\nmetadata_version = \"4.1\"", ctl)
            .replace("[cluster]\n", "[cluster]\nbackend = \"docker\"\n"),
    );
    assert!(
        errs.iter().any(|e| e
            .message
            .contains("runs on the local backend only, not `docker`")),
        "{errs:#?}"
    );
    // a good step is accepted
    let text = step(
        "do = \"kafka-version\"\nnodes = [\"ctl1\", \"kafka2\"]\nkafka = \"4.1.1\"",
        ctl,
    );
    let sc = scenario::parse(Path::new("good.toml"), &text).unwrap();
    assert_eq!(sc.upgrade_releases(), ["4.1.1"]);
}

#[test]
fn a_dynamic_quorum_and_its_voter_changes_are_parsed_and_their_mistakes_are_named() {
    let step = |s: &str, cluster: &str| {
        kraft("4.1", cluster)
            .replace(
                "do = \"pause\"\nnode = \"follower:orders/0\"\nbind = \"f\"",
                s,
            )
            .replace("do = \"resume\"\nnode = \"@f\"", "do = \"mark\"")
    };
    let dynamic = "controllers = [\"ctl1\", \"ctl2\", \"ctl3\", \"ctl4\"]\nquorum = \"dynamic\"\ndormant = [\"ctl4\"]";
    // the shipped replacement: a dynamic quorum with a dormant fourth controller
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios/kraft-controller-replacement.toml");
    let sc = scenario::load(&path).unwrap();
    assert!(sc.cluster.dynamic_quorum);
    assert_eq!(sc.cluster.dormant, ["ctl4"]);
    // a dormant controller of a static quorum points at quorum = "dynamic"
    let errs = errors(&step(
        "do = \"mark\"",
        "controllers = [\"ctl1\", \"ctl2\", \"ctl3\", \"ctl4\"]\ndormant = [\"ctl4\"]",
    ));
    assert!(
        errs.iter().any(|e| e.field == "cluster.dormant"
            && e.message.contains("controller `ctl4` is dormant")
            && e.hint.contains("quorum = \"dynamic\"")),
        "{errs:#?}"
    );
    // voter changes on a static quorum
    let errs = errors(&step(
        "do = \"add-controller\"\nnode = \"ctl3\"",
        "controllers = [\"ctl1\", \"ctl2\", \"ctl3\"]",
    ));
    assert!(
        errs.iter()
            .any(|e| e.message.contains("this cluster's quorum is static")
                && e.hint.contains("KIP-853")),
        "{errs:#?}"
    );
    // adding a controller that has not started, or one that is a voter already
    let errs = errors(&step("do = \"add-controller\"\nnode = \"ctl4\"", dynamic));
    assert!(
        errs.iter().any(|e| e.field == "step[1].node"
            && e.message.contains("`ctl4` is not running at this point")),
        "{errs:#?}"
    );
    let errs = errors(&step("do = \"add-controller\"\nnode = \"ctl2\"", dynamic));
    assert!(
        errs.iter()
            .any(|e| e.message.contains("`ctl2` is a voter already")),
        "{errs:#?}"
    );
    // removing one that is no voter, or the last voter; a broker is no controller
    let errs = errors(&step(
        "do = \"remove-controller\"\nnode = \"ctl4\"",
        dynamic,
    ));
    assert!(
        errs.iter()
            .any(|e| e.message.contains("`ctl4` is not a voter at this point")),
        "{errs:#?}"
    );
    let errs = errors(&step(
        "do = \"remove-controller\"\nnode = \"ctl1\"",
        "controllers = [\"ctl1\"]\nquorum = \"dynamic\"",
    ));
    assert!(
        errs.iter()
            .any(|e| e.message.contains("would leave the quorum without a voter")),
        "{errs:#?}"
    );
    let errs = errors(&step(
        "do = \"remove-controller\"\nnode = \"kafka1\"",
        dynamic,
    ));
    assert!(
        errs.iter()
            .any(|e| e.message.contains("`kafka1` is not a dedicated controller")),
        "{errs:#?}"
    );
    // a quorum kind that is none; a dynamic quorum without controllers; all dormant
    let errs = errors(&step(
        "do = \"mark\"",
        "controllers = [\"ctl1\"]\nquorum = \"elastic\"",
    ));
    assert!(
        errs.iter()
            .any(|e| e.field == "cluster.quorum"
                && e.message.contains("`elastic` is not a quorum kind")),
        "{errs:#?}"
    );
    let errs = errors(&GOOD.replace("[cluster]\n", "[cluster]\nquorum = \"dynamic\"\n"));
    assert!(
        errs.iter().any(|e| e.field == "cluster.quorum"),
        "{errs:#?}"
    );
    let errs = errors(&step(
        "do = \"mark\"",
        "controllers = [\"ctl1\"]\nquorum = \"dynamic\"\ndormant = [\"ctl1\"]",
    ));
    assert!(
        errs.iter()
            .any(|e| e.message.contains("every controller is dormant")),
        "{errs:#?}"
    );
    // the runbook's order is accepted: start, add, remove, stop
    let text = step(
        "do = \"start\"\nnode = \"ctl4\"\n\n[[step]]\nname = \"add\"\ndo = \"add-controller\"\nnode = \"ctl4\"\n\n[[step]]\nname = \"remove\"\ndo = \"remove-controller\"\nnode = \"ctl1\"\n\n[[step]]\nname = \"stop\"\ndo = \"stop\"\nnode = \"ctl1\"",
        dynamic,
    );
    let sc = scenario::parse(Path::new("good.toml"), &text).unwrap();
    assert_eq!(sc.steps.len(), 5);
}

/// `upgrade-39-to-4` is `zk-to-kraft` followed by the upgrade onto 4.1: the same cluster,
/// workload, checks and expectations, and zk-to-kraft's steps as its first ones, word for
/// word. The e2e suite runs the migration once, through upgrade-39-to-4, and checks what
/// zk-to-kraft promises at the migration's steps; this keeps the two files from drifting.
#[test]
fn the_upgrade_from_3_9_to_4_begins_with_zk_to_kraft_as_written() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let read = |f: &str| -> toml::Table {
        toml::from_str(&std::fs::read_to_string(dir.join(f)).unwrap()).unwrap()
    };
    let migration = read("zk-to-kraft.toml");
    let chain = read("upgrade-39-to-4.toml");
    for table in ["cluster", "workload", "check", "expect"] {
        assert_eq!(migration[table], chain[table], "[{table}] differs");
    }
    let steps = |t: &toml::Table| t["step"].as_array().unwrap().clone();
    let (migration, chain) = (steps(&migration), steps(&chain));
    assert!(chain.len() > migration.len());
    assert_eq!(chain[..migration.len()], migration[..]);
    assert!(chain[migration.len()..].iter().all(|s| [
        "kafka-version",
        "rolling-restart",
        "update-features"
    ]
    .contains(&s["do"].as_str().unwrap())));
}

/// GOOD's cluster and workload with `steps` instead of its own.
fn with_steps(steps: &str) -> String {
    let head = &GOOD[..GOOD.find("[[step]]").unwrap()];
    format!("{head}{steps}")
}

#[test]
fn create_topics_and_wait_failover_make_a_failover_measure() {
    let text = with_steps(
        r#"[[step]]
name = "partitions"
do = "create-topics"
topics = 10
partitions = 100

[[step]]
name = "kill"
do = "kill"
node = "controller:active"
bind = "old"

[[step]]
name = "failover"
do = "wait-failover"
timeout = "2m"

[[step]]
name = "back"
do = "start"
node = "@old"
"#,
    );
    let s = scenario::parse(Path::new("good.toml"), &text).unwrap();
    assert!(matches!(
        &s.steps[0].action,
        Action::Broker(BrokerAction::CreateTopics { prefix, topics: 10, partitions: 100, replication: 3, .. })
            if prefix == "kmh-scale"
    ));
    assert!(matches!(
        &s.steps[2].action,
        Action::Node(NodeAction::WaitFailover { timeout }) if timeout.as_secs() == 120
    ));
}

#[test]
fn create_topics_refuses_what_it_cannot_make() {
    let step = |body: &str| {
        with_steps(&format!(
            "[[step]]\nname = \"p\"\ndo = \"create-topics\"\n{body}\n"
        ))
    };
    one_error_in(
        &step("partitions = 100"),
        "step[1].topics",
        "needs `topics`",
        "how many topics",
    );
    one_error_in(
        &step("topics = 1\npartitions = 0"),
        "step[1].partitions",
        "must be 1 to 10000",
        "more topics",
    );
    one_error_in(
        &step("topics = 1\npartitions = 20000"),
        "step[1].partitions",
        "must be 1 to 10000",
        "one znode",
    );
    one_error_in(
        &step("topics = 1\npartitions = 10\nreplication = 4"),
        "step[1].replication",
        "must be 1 to 3",
        "brokers running",
    );
    one_error_in(
        &step("topics = 1\npartitions = 10\nprefix = \"a b\""),
        "step[1].prefix",
        "cannot start a topic name",
        "letters, digits",
    );
    // a workload topic's name is not the step's to make
    one_error_in(
        &step("topics = 1\npartitions = 10\nprefix = \"orders\"")
            .replace("name = \"orders\"", "name = \"orders-0001\""),
        "step[1].prefix",
        "workload topic `orders-0001`",
        "another prefix",
    );
    // two steps, one prefix
    let twice = with_steps(
        "[[step]]\nname = \"a\"\ndo = \"create-topics\"\ntopics = 1\npartitions = 10\n\n[[step]]\nname = \"b\"\ndo = \"create-topics\"\ntopics = 1\npartitions = 10\n",
    );
    one_error_in(
        &twice,
        "step[2].prefix",
        "`kmh-scale-…` already",
        "another prefix",
    );
}

#[test]
fn wait_failover_needs_a_node_lost_before_it() {
    one_error_in(
        &with_steps("[[step]]\nname = \"f\"\ndo = \"wait-failover\"\n"),
        "step[1].do",
        "no step before it kills, stops or pauses one",
        "node = \"controller:active\"",
    );
    // a stop of a group counts
    let ok = with_steps(
        "[[step]]\nname = \"s\"\ndo = \"stop\"\nnodes = [\"kafka1\"]\n\n[[step]]\nname = \"f\"\ndo = \"wait-failover\"\n",
    );
    scenario::parse(Path::new("good.toml"), &ok).unwrap();
}

#[test]
fn a_restore_names_an_earlier_step() {
    let text = with_steps(
        "[[step]]\nname = \"add\"\ndo = \"pause\"\nnode = \"kafka1\"\n\n[[step]]\nname = \"back\"\ndo = \"resume\"\nnode = \"kafka1\"\n\n[[step]]\nname = \"roll back\"\ndo = \"reassign\"\nrestore = \"add\"\nthrottle = \"20MB\"\n",
    );
    let s = scenario::parse(Path::new("good.toml"), &text).unwrap();
    assert!(matches!(
        &s.steps[2].action,
        Action::Broker(BrokerAction::Reassign { plan: harness::scenario::ReassignPlan::Restore { step }, .. }) if step == "add"
    ));
    // itself, a later step, or none at all
    for (restore, why) in [
        ("roll back", "itself"),
        ("later", "a later step"),
        ("nope", "none"),
    ] {
        let text = with_steps(&format!(
            "[[step]]\nname = \"roll back\"\ndo = \"reassign\"\nrestore = \"{restore}\"\n\n[[step]]\nname = \"later\"\ndo = \"sleep\"\nduration = \"1s\"\n"
        ));
        let errs = errors(&text);
        assert_eq!(errs.len(), 1, "{why}: {errs:#?}");
        assert_eq!(errs[0].field, "step[1].restore", "{why}");
        assert!(
            errs[0].message.contains("is not an earlier step"),
            "{why}: {}",
            errs[0]
        );
    }
    // and never with another plan
    one_error_in(
        &with_steps("[[step]]\nname = \"a\"\ndo = \"sleep\"\nduration = \"1s\"\n\n[[step]]\nname = \"r\"\ndo = \"reassign\"\nrestore = \"a\"\nreplication = 2\n"),
        "step[2].do",
        "exactly one of `plan`, `map`, `replication`, `restore`",
        "restore = \"STEP\"",
    );
}

/// Two clusters: the first on `source`, the target's brokers on `target`; then `steps`.
fn two_clusters(target: &str, steps: &str) -> String {
    format!(
        r#"name = "t"

[cluster]
kafka = "3.9"
zookeeper = ["zk1", "tzk1"]
kafka_ensemble = "source"
brokers = ["kafka1", "kafka2", "kafka3"]

[cluster.ensembles]
source = ["zk1"]
target = ["tzk1"]

{target}
[workload]
topics = [{{ name = "orders", partitions = 6, replication = 3, min_insync = 2 }}]
producers = 2
consumers = 1
rate = 100
acks = "all"
idempotence = true
{steps}"#
    )
}

const TARGET: &str =
    "[cluster.target]\nbrokers = [\"tkafka1\", \"tkafka2\"]\nensemble = \"target\"\n";
const MIRROR_STEPS: &str = "\n[[step]]\nname = \"copy\"\ndo = \"mirror-start\"\nexactly_once = true\nconfig = { \"emit.checkpoints.interval.seconds\" = 5 }\n\n[[step]]\nname = \"wait\"\ndo = \"mirror-wait\"\ntimeout = \"1m\"\n\n[[step]]\nname = \"stop\"\ndo = \"mirror-stop\"\n";

#[test]
fn a_second_cluster_and_mirrormaker_steps_are_accepted() {
    let s = scenario::parse(Path::new("t.toml"), &two_clusters(TARGET, MIRROR_STEPS)).unwrap();
    let t = s.cluster.target.as_ref().unwrap();
    assert_eq!(t.brokers, ["tkafka1", "tkafka2"]);
    assert_eq!(t.ensemble, "target");
    // the first cluster's brokers are still only its own
    assert_eq!(s.cluster.brokers, ["kafka1", "kafka2", "kafka3"]);
    assert!(s.cluster.all_nodes().contains(&"tkafka2".to_string()));
    match &s.steps[0].action {
        Action::Mirror(scenario::MirrorAction::MirrorStart {
            topics,
            exactly_once,
            tasks,
            config,
        }) => {
            assert_eq!(topics, &["orders"]);
            assert!(exactly_once);
            assert_eq!(*tasks, 2);
            assert_eq!(
                config
                    .get("emit.checkpoints.interval.seconds")
                    .map(String::as_str),
                Some("5")
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_mirror_step_needs_a_second_cluster() {
    one_error(
        &two_clusters("", "\n[[step]]\nname = \"copy\"\ndo = \"mirror-start\"\n"),
        24,
        "step[1].do",
        "`mirror-start` needs a second cluster",
        "[cluster.target]",
    );
}

#[test]
fn a_mirror_wait_needs_mirrormaker_running() {
    one_error(
        &two_clusters(
            TARGET,
            "\n[[step]]\nname = \"wait\"\ndo = \"mirror-wait\"\n",
        ),
        27,
        "step[1].do",
        "MirrorMaker 2 does not run at this point",
        "`mirror-start` step before",
    );
}

#[test]
fn the_target_cannot_share_the_first_clusters_ensemble_or_its_names() {
    one_error(
        &two_clusters(
            "[cluster.target]\nbrokers = [\"tkafka1\"]\nensemble = \"source\"\n",
            "",
        ),
        15,
        "cluster.target.ensemble",
        "is the first cluster's ensemble too",
        "an ensemble of its own",
    );
    one_error(
        &two_clusters(
            "[cluster.target]\nbrokers = [\"kafka1\"]\nensemble = \"target\"\n",
            "",
        ),
        14,
        "cluster.target.brokers",
        "node name `kafka1` is used twice",
        "names of their own",
    );
    one_error(
        &two_clusters(
            "[cluster.target]\nbrokers = [\"tkafka1\"]\nensemble = \"nowhere\"\n",
            "",
        ),
        15,
        "cluster.target.ensemble",
        "no ensemble `nowhere`",
        "[cluster.ensembles]",
    );
}

#[test]
fn a_second_cluster_runs_on_every_backend() {
    let on = |backend: &str| {
        two_clusters(TARGET, "").replace(
            "kafka = \"3.9\"",
            &format!("backend = \"{backend}\"\nkafka = \"3.9\""),
        )
    };
    // in containers, on the user's hosts or on launched instances, the target's brokers and
    // ensemble are nodes like the others
    for (name, backend) in [
        ("docker", scenario::Backend::Docker),
        ("ssh", scenario::Backend::Ssh),
    ] {
        let s = scenario::parse(Path::new("t.toml"), &on(name)).unwrap();
        assert_eq!(s.cluster.backend, backend);
        assert!(s.cluster.target.is_some());
    }
    let ec2 = on("ec2") + "\n[cluster.ec2]\nami = \"ami-1\"\nworkers = 1\nkey_name = \"k\"\nkey = \"/k\"\nmax_instances = 20\n";
    let s = scenario::parse(Path::new("t.toml"), &ec2).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.cluster.backend, scenario::Backend::Ec2);
    assert!(s.cluster.target.is_some());
}

#[test]
fn a_run_with_two_clusters_is_not_moved_onto_kraft_but_onto_any_backend() {
    let mut s = scenario::parse(Path::new("t.toml"), &two_clusters(TARGET, MIRROR_STEPS)).unwrap();
    let err = scenario::on_kraft(&mut s, "4.1").unwrap_err().to_string();
    assert!(
        err.contains("--kraft 4.1") && err.contains("[cluster.target]"),
        "{err}"
    );
    for ok in [
        scenario::Backend::Docker,
        scenario::Backend::Ssh,
        scenario::Backend::Ec2,
    ] {
        s.cluster.backend = ok;
        assert_eq!(scenario::backend_override_refusal(&s), None);
    }
}

/// A key with no value at the end of the file: the toml crate gives no message for it;
/// ours says what is missing.
#[test]
fn a_key_without_a_value_is_named_with_a_reason() {
    let text = format!("{GOOD}\n[check]\nzookeeper_smoke =");
    let errs = errors(&text);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    let e = &errs[0];
    assert_eq!(e.line, text.lines().count(), "{e}");
    assert!(e.message.contains("a value is missing"), "{e}");
    assert!(!e.hint.is_empty(), "{e}");
}

#[test]
fn the_second_oracle_is_one_there_is_and_is_parsed_when_named() {
    // GOOD is 25 lines; a blank line, [check] on 27, the oracle on 28
    one_error(
        &format!("{GOOD}\n[check]\noracle = \"jepsen\"\n"),
        28,
        "check.oracle",
        "unknown oracle `jepsen`",
        "\"kafka-verifiable\"",
    );
    let s = scenario::parse(
        Path::new("ok.toml"),
        &format!("{GOOD}\n[check]\noracle = \"kafka-verifiable\"\n"),
    )
    .unwrap();
    assert_eq!(s.check.oracle, Some(scenario::Oracle::KafkaVerifiable));
    let none = scenario::parse(
        Path::new("ok.toml"),
        &format!("{GOOD}\n[check]\noracle = \"none\"\n"),
    )
    .unwrap();
    assert_eq!(none.check.oracle, None);
    assert_eq!(
        scenario::parse(Path::new("ok.toml"), GOOD)
            .unwrap()
            .check
            .oracle,
        None
    );
}

#[test]
fn transactions_are_checked_where_they_are_written() {
    let with = |idempotence: &str, txn: &str| {
        GOOD.replace(
            "idempotence = true\n",
            &format!("idempotence = {idempotence}\n{txn}\n"),
        )
    };
    // line 15: right after `idempotence` (line 14)
    one_error(
        &with("false", "transactions = { records = 10 }"),
        15,
        "workload.transactions",
        "transactions need idempotence = true",
        "set idempotence = true",
    );
    one_error(
        &with("true", "transactions = { records = 0 }"),
        15,
        "workload.transactions.records",
        "0: a transaction holds at least one record",
        "records = 10",
    );
    one_error(
        &with("true", "transactions = { abort_every = 3 }"),
        15,
        "workload.transactions.records",
        "missing field `records`",
        "records = 10",
    );
    one_error(
        &with("true", "transactions = { records = 5, timeout = \"soon\" }"),
        15,
        "workload.transactions.timeout",
        "`soon` is not a duration",
        "\"10s\"",
    );
    one_error(
        &with("true", "transactions = { records = 5, timeout = \"2h\" }"),
        15,
        "workload.transactions.timeout",
        "longer than brokers allow",
        "at most \"15m\"",
    );
    one_error(
        &with("true", "consumer_isolation = \"snapshot\""),
        15,
        "workload.consumer_isolation",
        "`snapshot` is not an isolation level",
        "\"read_uncommitted\"",
    );
    // the coordinator target needs transactions (line 19: the first step's node)
    one_error(
        &GOOD.replace(
            "node = \"follower:orders/0\"",
            "node = \"coordinator:transactions\"",
        ),
        19,
        "step[1].node",
        "this workload sends no transactions",
        "transactions = { records = 10 }",
    );
    let s = scenario::parse(
        Path::new("ok.toml"),
        &with(
            "true",
            "transactions = { records = 7, abort_every = 4, timeout = \"20s\" }\n\
             consumer_isolation = \"read_uncommitted\"",
        )
        .replace(
            "node = \"follower:orders/0\"",
            "node = \"coordinator:transactions\"",
        ),
    )
    .unwrap();
    let t = s.workload.producer.transactions.unwrap();
    assert_eq!((t.records, t.abort_every, t.timeout_ms), (7, 4, 20_000));
    assert!(s.workload.consumer_read_uncommitted);
    assert!(matches!(
        &s.steps[0].action,
        Action::Node(NodeAction::Pause {
            node: Target::TransactionCoordinator
        })
    ));
    let plain = scenario::parse(Path::new("ok.toml"), GOOD).unwrap();
    assert!(plain.workload.producer.transactions.is_none());
    assert!(!plain.workload.consumer_read_uncommitted);
}

#[test]
fn the_pipeline_is_checked_where_it_is_written() {
    let with = |copy: &str| {
        GOOD.replace(
            "idempotence = true\n",
            &format!("idempotence = true\n{copy}\n"),
        )
    };
    // line 15: right after `idempotence` (line 14)
    one_error(
        &with("copy = { instances = 2 }"),
        15,
        "workload.copy.to",
        "missing field `to`",
        "to = \"orders-copy\"",
    );
    one_error(
        &with("copy = { to = \"orders\" }"),
        15,
        "workload.copy.to",
        "`orders` is a workload topic",
        "the run creates it",
    );
    one_error(
        &with("copy = { to = \"orders copy\" }"),
        15,
        "workload.copy.to",
        "not a usable topic name",
        "letters, digits",
    );
    // Kafka's own names are not the pipeline's to write
    one_error(
        &with("copy = { to = \"__consumer_offsets\" }"),
        15,
        "workload.copy.to",
        "not a usable topic name",
        "not starting with \"__\"",
    );
    one_error(
        &with("copy = { from = \"payments\", to = \"orders-copy\" }"),
        15,
        "workload.copy.from",
        "`payments` is not a workload topic",
        "name one of [workload] topics",
    );
    one_error(
        &with("copy = { to = \"orders-copy\", records = 0 }"),
        15,
        "workload.copy.records",
        "0: at least 1",
        "records = 50",
    );
    one_error(
        &with("copy = { to = \"orders-copy\", instances = 2, processes = 3 }"),
        15,
        "workload.copy.processes",
        "between 1 and the number of instances",
        "processes = 2",
    );
    one_error(
        &with("copy = { to = \"orders-copy\", timeout = \"20m\" }"),
        15,
        "workload.copy.timeout",
        "not a transaction timeout brokers allow",
        "\"15m\"",
    );
    one_error(
        &with("copy = { to = \"orders-copy\", exactly_once = false }"),
        15,
        "(toml)",
        "unknown field `exactly_once`, expected one of `from`, `to`",
        "",
    );
    let s = scenario::parse(
        Path::new("ok.toml"),
        &with("copy = { to = \"orders-copy\", instances = 3, records = 20, timeout = \"20s\" }"),
    )
    .unwrap();
    let c = s.workload.copy.as_ref().unwrap();
    // `from` defaults to the first workload topic; the output takes its settings
    assert_eq!(c.from, "orders");
    assert_eq!((c.instances, c.processes, c.records), (3, 2, 20));
    assert_eq!(c.timeout, std::time::Duration::from_secs(20));
    let out = s.workload.copy_topic().unwrap();
    let from = &s.workload.topics[0];
    assert_eq!(out.name, "orders-copy");
    assert_eq!(
        (out.partitions, out.replication, out.min_insync),
        (from.partitions, from.replication, from.min_insync)
    );
    assert!(scenario::parse(Path::new("ok.toml"), GOOD)
        .unwrap()
        .workload
        .copy
        .is_none());
}

/// MirrorMaker started, then `switches` (`mirror-switch` steps of these clients), then
/// stopped.
fn switch_over(switches: &[&str]) -> String {
    let mut steps = String::from("\n[[step]]\nname = \"copy\"\ndo = \"mirror-start\"\n");
    for (i, clients) in switches.iter().enumerate() {
        steps.push_str(&format!(
            "\n[[step]]\nname = \"move {i}\"\ndo = \"mirror-switch\"\nclients = \"{clients}\"\n"
        ));
    }
    steps.push_str("\n[[step]]\nname = \"stop\"\ndo = \"mirror-stop\"\n");
    two_clusters(TARGET, &steps)
}

#[test]
fn a_switch_over_moves_the_consumers_then_the_producers() {
    let s = scenario::parse(
        Path::new("t.toml"),
        &switch_over(&["consumers", "producers"]),
    )
    .unwrap();
    let moved: Vec<workers::Role> = s
        .steps
        .iter()
        .filter_map(|st| match &st.action {
            Action::Mirror(scenario::MirrorAction::MirrorSwitch { clients, timeout }) => {
                assert_eq!(*timeout, std::time::Duration::from_secs(60));
                Some(*clients)
            }
            _ => None,
        })
        .collect();
    assert_eq!(moved, [workers::Role::Consume, workers::Role::Produce]);
}

#[test]
fn a_switch_over_out_of_order_or_half_done_is_refused_with_its_line() {
    // the producers first: consumers left on the source would miss what they write
    let errs = errors(&switch_over(&["producers", "consumers"]));
    assert!(
        errs.iter()
            .any(|e| e.field == "step[2].clients" && e.message.contains("before the consumers")),
        "{errs:#?}"
    );
    // the consumers and never the producers: the drain could not tell when the copy ended
    one_error(
        &switch_over(&["consumers"]),
        32,
        "step[2].clients",
        "the producers never follow",
        "clients = \"producers\"",
    );
    // twice, or clients that are not movable
    let errs = errors(&switch_over(&["consumers", "consumers", "producers"]));
    assert!(
        errs.iter()
            .any(|e| e.message.contains("on the target already")),
        "{errs:#?}"
    );
    one_error(
        &switch_over(&["oracle"]),
        32,
        "step[2].clients",
        "`oracle` are not clients the run moves",
        "clients = \"consumers\"",
    );
    // without MirrorMaker running: nothing synced the group's offsets
    let errs = errors(&two_clusters(
        TARGET,
        "\n[[step]]\nname = \"move\"\ndo = \"mirror-switch\"\nclients = \"consumers\"\n\n[[step]]\nname = \"move2\"\ndo = \"mirror-switch\"\nclients = \"producers\"\n",
    ));
    let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(fields, ["step[1].do", "step[2].do"], "{errs:#?}");
    assert!(errs.iter().all(|e| e
        .message
        .contains("MirrorMaker 2 does not run at this point")));
}

#[test]
fn a_switch_bootstrap_after_the_switch_over_is_refused_but_one_before_it_is_not() {
    let bootstrap =
        "\n[[step]]\nname = \"bootstrap\"\ndo = \"switch-bootstrap\"\nbrokers = [\"kafka2\"]\n";
    // after the consumers moved: it would bring every client back to the source
    let after = switch_over(&["consumers", "producers"]).replace(
        "\n[[step]]\nname = \"stop\"",
        &format!("{bootstrap}\n[[step]]\nname = \"stop\""),
    );
    let errs = errors(&after);
    assert_eq!(errs.len(), 1, "{errs:#?}");
    assert_eq!(errs[0].field, "step[4].do");
    assert!(
        errs[0]
            .message
            .contains("on MirrorMaker's target at this point"),
        "{errs:#?}"
    );
    assert!(
        errs[0].hint.contains("before the `mirror-switch`"),
        "{errs:#?}"
    );
    // before it: the source's clients change brokers, then the roles move on
    let before = switch_over(&["consumers", "producers"]).replace(
        "\n[[step]]\nname = \"move 0\"",
        &format!("{bootstrap}\n[[step]]\nname = \"move 0\""),
    );
    assert!(
        scenario::parse(Path::new("t.toml"), &before).is_ok(),
        "{:#?}",
        errors(&before)
    );
}

#[test]
fn transactional_producers_are_not_moved() {
    let text = switch_over(&["consumers", "producers"]).replace(
        "idempotence = true\n",
        "idempotence = true\ntransactions = { records = 5 }\n",
    );
    let errs = errors(&text);
    assert!(
        errs.iter()
            .any(|e| e.message.contains("transactional producers cannot move")),
        "{errs:#?}"
    );
}
