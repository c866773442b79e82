//! Bad scenario input is rejected before anything starts, with the file, the line, the
//! field and a hint — one test per kind of mistake, plus every shipped scenario validating.

use std::path::Path;

use harness::error::ScenarioError;
use harness::scenario::{self, Action, Bound, Target};

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
        matches!(&s.steps[0].action, Action::Pause { node: Target::Follower { topic, partition: 0 } } if topic == "orders")
    );
    assert!(matches!(&s.steps[1].action, Action::Resume { node: Target::Bound(b) } if b == "f"));
    // defaults that decide verdicts
    assert_eq!(s.expect.lost, Bound::AtMost(0));
    assert_eq!(
        s.expect.duplicates,
        Bound::AtMost(0),
        "idempotence makes duplicates an error"
    );
    assert_eq!(s.expect.reordered, Bound::AtMost(0));
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
fn a_backend_not_built_yet_is_refused_with_the_reason() {
    one_error(
        &GOOD.replace("kafka = \"3.9\"", "backend = \"docker\"\nkafka = \"3.9\""),
        4,
        "cluster.backend",
        "`docker` is not available",
        "local",
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
