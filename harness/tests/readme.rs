//! The README is a contract: every scenario example in it validates, every `harness`
//! command in it parses, it names every field the loader accepts and every argument each
//! action takes, and its report.json example has every field report.json has. Each check
//! reads the README as a user does, so an example cannot drift from the code.

use std::collections::BTreeSet;
use std::path::Path;

use clap::Parser;
use harness::cli::Cli;
use harness::scenario;

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md")).unwrap()
}

/// The bodies of the README's fenced blocks of `lang`.
fn blocks(text: &str, lang: &str) -> Vec<String> {
    let fence = format!("```{lang}\n");
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(&fence) {
        let body = &rest[i + fence.len()..];
        let end = body.find("```").expect("a closed fence");
        out.push(body[..end].to_string());
        rest = &body[end..];
    }
    out
}

/// The scenario example of the README (the one TOML block with a `[cluster]` table that is
/// neither the EC2 one nor the KRaft one; another is the ssh backend's inventory).
fn example() -> String {
    let toml: Vec<String> = blocks(&readme(), "toml")
        .into_iter()
        .filter(|b| {
            b.contains("[cluster]")
                && !b.contains("\n[cluster.ec2]")
                && !b.contains("\ncontrollers = ")
        })
        .collect();
    assert_eq!(toml.len(), 1, "one scenario example in the README");
    toml[0].clone()
}

#[test]
fn the_kraft_example_validates_as_it_is_described() {
    let block = blocks(&readme(), "toml")
        .into_iter()
        .find(|b| b.contains("\ncontrollers = "))
        .expect("a KRaft [cluster] example");
    let text = format!(
        "name = \"k\"\n{block}\n[workload]\ntopics = [{{ name = \"orders\", partitions = 6, replication = 3, min_insync = 2 }}]\nproducers = 1\nconsumers = 1\nrate = 10\nacks = \"all\"\nidempotence = true\n"
    );
    let s = harness::scenario::parse(std::path::Path::new("README.md"), &text)
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    let c = &s.cluster;
    assert!(c.is_kraft());
    assert_eq!(c.kafka_version, "4.1.2", "the comment says so");
    assert_eq!(c.controller_id("ctl1"), Some(101), "the comment says so");
    assert_eq!(c.controller_heap_mb, 256);
}

#[test]
fn the_migration_example_validates_as_it_is_described() {
    let block = blocks(&readme(), "toml")
        .into_iter()
        .find(|b| b.contains("\nzookeeper = ") && b.contains("\ncontrollers = "))
        .expect("a ZooKeeper→KRaft migration [cluster] example");
    let text = format!(
        "name = \"m\"\n{block}\n[workload]\ntopics = [{{ name = \"orders\", partitions = 6, replication = 3, min_insync = 2 }}]\nproducers = 1\nconsumers = 1\nrate = 10\nacks = \"all\"\nidempotence = true\n"
    );
    let s = harness::scenario::parse(std::path::Path::new("README.md"), &text)
        .unwrap_or_else(|e| panic!("{e}\n{text}"));
    let c = &s.cluster;
    assert!(c.is_migration() && !c.is_kraft());
    assert_eq!(c.kafka_version, "3.9.1");
    assert!(
        c.controllers.iter().all(|n| c.dormant.contains(n)),
        "they join by the migration"
    );
}

#[test]
fn the_ec2_example_reads_and_plans_eight_instances_within_its_guard() {
    let block = blocks(&readme(), "toml")
        .into_iter()
        .find(|b| b.contains("\n[cluster.ec2]"))
        .expect("an [cluster.ec2] example");
    let table = &block[block.find("\n[cluster.ec2]").unwrap() + "\n[cluster.ec2]".len()..];
    let ec2: harness::scenario::Ec2Spec = toml::from_str(table).unwrap();
    assert_eq!(ec2.workers, 2);
    assert!(ec2.reuse.is_none(), "reuse is shown commented out");
    let mut spec = harness::scenario::ClusterSpec::live();
    spec.zookeeper = vec!["zk1".into(), "zk2".into(), "zk3".into()];
    spec.brokers = vec!["kafka1".into(), "kafka2".into(), "kafka3".into()];
    let plan = harness::cluster::ec2::LaunchPlan::of(&spec, &ec2).unwrap();
    assert_eq!(plan.instances.len(), 8);
    assert!(plan.instances.len() <= ec2.max_instances);
}

#[test]
fn the_inventory_example_loads_and_places_a_scenario_of_six_nodes() {
    let inventories: Vec<String> = blocks(&readme(), "toml")
        .into_iter()
        .filter(|b| b.contains("workers = ["))
        .collect();
    assert_eq!(inventories.len(), 1, "one inventory example in the README");
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("hosts.toml");
    std::fs::write(&p, &inventories[0]).unwrap();
    let inv = harness::cluster::ssh::Inventory::load(&p).unwrap();
    assert!(inv.key.as_ref().unwrap().ends_with("keys/kmh_ed25519"));
    assert!(
        inv.key.as_ref().unwrap().is_absolute(),
        "relative to the file"
    );
    let nodes: Vec<String> = ["zk1", "zk2", "zk3", "kafka1", "kafka2", "kafka3"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let placed = inv.place(&nodes, "hosts.toml").unwrap();
    assert_eq!(placed["kafka3"].to_string(), "10.0.1.23");
    assert_eq!(placed["zk1"].to_string(), "10.0.1.11");
    assert_eq!(inv.workers.len(), 2);
    assert_eq!(inv.env.len(), 1);
}

#[test]
fn the_scenario_example_validates() {
    let text = example();
    let s = scenario::parse(Path::new("README.md"), &text)
        .unwrap_or_else(|e| panic!("the README's scenario example does not validate:\n{e}"));
    assert!(!s.steps.is_empty());
}

/// A value for each placeholder the README's commands use.
fn placeholder(word: &str) -> Option<&'static str> {
    Some(match word {
        "SCENARIO" | "SCENARIO..." => "scenarios/rolling-restart.toml",
        "DIR" | "RUN_DIR" | "RUN_A" | "RUN_B" => "runs/example",
        "RUN" | "ID" => "rolling-restart-1795320141-ab12",
        "SRC" | "DST" | "A" | "B" | "SERVERS" => "127.0.0.1:2181",
        "FILE" => "runs/example/logs/zk-smoke.jsonl",
        "INVENTORY" => "hosts.toml",
        "PATH" => "/kafka",
        "N" | "MS" | "P" | "K" => "100",
        "BYTES" => "524288",
        "V" => "3.9.1",
        "VERSION" => "4.1",
        "IMAGE" => "eclipse-temurin:17-jre",
        "T" => "migration-bookkeeping",
        "H:P,…" => "127.0.0.1:9092",
        "D" => "10m",
        "TEXT" => "switch-zookeeper.connect",
        _ => return None,
    })
}

/// Every `harness …` command the README shows: in code spans and in shell blocks.
fn commands(text: &str) -> Vec<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        // shell lines: `./target/release/harness …` (after `&&` too)
        for part in line.split("&&") {
            let part = part.trim();
            if let Some(cmd) = part.strip_prefix("./target/release/harness ") {
                out.insert(format!("harness {cmd}"));
            }
        }
        // code spans
        for (i, span) in line.split('`').enumerate() {
            if i % 2 == 1 && span.starts_with("harness ") {
                out.insert(span.to_string());
            }
        }
    }
    out.into_iter().collect()
}

/// Splits a command line as a shell would for these examples: on whitespace, except inside
/// double quotes (`harness mark "roll kafka1"` is three words).
fn shell_words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut word, mut quoted, mut any) = (String::new(), false, false);
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    out.push(std::mem::take(&mut word));
                    any = false;
                }
            }
            c => {
                word.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(word);
    }
    out
}

#[test]
fn every_harness_command_in_the_readme_parses() {
    let mut checked = 0;
    for cmd in commands(&readme()) {
        // a mention, not an example (`harness run … --backend docker`)
        if cmd.contains('…') && !cmd.contains("H:P,…") {
            continue;
        }
        // `[--opt X]`: the option is part of the example
        let words: Vec<String> = shell_words(&cmd.replace(['[', ']'], " "))
            .into_iter()
            .map(|w| {
                // an upper-case word without digits (`SCENARIO`, `H:P,…`; not `10MB`)
                let upper = w.chars().any(|c| c.is_ascii_uppercase())
                    && w.chars()
                        .all(|c| !c.is_ascii_lowercase() && !c.is_ascii_digit());
                if upper && !w.starts_with('-') {
                    placeholder(&w)
                        .unwrap_or_else(|| {
                            panic!("`{cmd}`: no value for placeholder `{w}` in this test")
                        })
                        .to_string()
                } else {
                    w.to_string()
                }
            })
            .collect();
        match Cli::try_parse_from(&words) {
            Ok(_) => checked += 1,
            // `harness --version`: clap answers it instead of parsing on
            Err(e) if e.kind() == clap::error::ErrorKind::DisplayVersion => checked += 1,
            // a bare mention (`harness run`, `harness migrate brokers`)
            Err(e)
                if e.kind() == clap::error::ErrorKind::MissingRequiredArgument
                    && words.len() <= 3
                    && !cmd.contains("--") =>
            {
                continue
            }
            Err(e) => panic!("the README's `{cmd}` does not parse as {words:?}:\n{e}"),
        }
    }
    assert!(checked >= 10, "only {checked} commands found in the README");
}

/// The fields the loader accepts in one table: serde's "expected one of" list, for a
/// field nobody accepts put into that table of the README's example (the table whose header
/// line starts with `header`; "" for the top level).
fn accepted(example: &str, header: &str) -> Vec<String> {
    let text = if header.is_empty() {
        format!("zz_unknown = 1\n{example}")
    } else {
        let line = example
            .lines()
            .find(|l| l.starts_with(header))
            .unwrap_or_else(|| panic!("no `{header}` table in the README's example"));
        example.replacen(line, &format!("{line}\nzz_unknown = 1"), 1)
    };
    accepted_in(&text)
}

fn accepted_in(text: &str) -> Vec<String> {
    let err = scenario::parse(Path::new("README.md"), text)
        .expect_err("an unknown field is refused")
        .to_string();
    let list = err
        .split_once("expected one of ")
        .or_else(|| err.split_once("expected "))
        .unwrap_or_else(|| panic!("no list of fields in: {err}"))
        .1;
    // "`a`, `b`, `c`" or "`a` or `b`"
    list.lines()
        .next()
        .unwrap()
        .split(", ")
        .flat_map(|f| f.split(" or "))
        .map(|f| f.trim().trim_matches('`').to_string())
        .collect()
}

#[test]
fn the_readme_names_every_field_the_loader_accepts() {
    let example = example();
    let mentioned = |field: &str| {
        example
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .any(|w| w == field)
    };
    let topic = {
        let line = example
            .lines()
            .find(|l| l.starts_with("topics = ["))
            .unwrap();
        let with = line.replacen(" }]", ", zz_unknown = 1 }]", 1);
        accepted_in(&example.replacen(line, &with, 1))
    };
    let tables = [
        ("(top level)", accepted(&example, "")),
        ("[cluster]", accepted(&example, "[cluster]")),
        ("[workload]", accepted(&example, "[workload]")),
        ("a topic", topic),
        ("[check]", accepted(&example, "[check]")),
        ("[expect]", accepted(&example, "[expect]")),
        ("[expect.step.\"…\"]", accepted(&example, "[expect.step.")),
        (
            "[expect.ensemble.…]",
            accepted(&example, "[expect.ensemble.source]"),
        ),
    ];
    let mut missing = Vec::new();
    for (table, fields) in &tables {
        assert!(!fields.is_empty(), "{table}: no fields found");
        for f in fields {
            if !mentioned(f) {
                missing.push(format!("{table} {f}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "fields the loader accepts and the README's example does not name: {missing:?}"
    );
}

#[test]
fn the_readme_lists_every_argument_of_every_action() {
    let text = readme();
    let example = example();
    let steps_at = example.find("[[step]]").unwrap();
    let steps_end = example.find("[check]").unwrap();
    let mut missing = Vec::new();
    for kw in scenario::actions::keywords() {
        // the rows of the actions table whose first cell names the keyword
        let rows: Vec<&str> = text
            .lines()
            .filter(|l| {
                l.starts_with("| `")
                    && l.split('|')
                        .nth(1)
                        .is_some_and(|cell| cell.contains(&format!("`{kw}`")))
            })
            .collect();
        assert!(
            !rows.is_empty(),
            "no row for `{kw}` in the README's actions table"
        );
        let step = format!("[[step]]\nname = \"s\"\ndo = \"{kw}\"\nzz_unknown = 1\n\n");
        let scenario = format!("{}{step}{}", &example[..steps_at], &example[steps_end..]);
        let errs = scenario::parse(Path::new("README.md"), &scenario).unwrap_err();
        let Some(e) = errs.0.iter().find(|e| e.field.ends_with("zz_unknown")) else {
            panic!("`{kw}`: the unknown field was not reported: {errs}");
        };
        let takes = e.hint.split_once("takes: ").map(|(_, t)| t).unwrap_or("");
        if takes.starts_with("nothing") {
            continue;
        }
        for arg in takes
            .split(", ")
            .map(|a| a.trim().trim_matches('`'))
            .filter(|a| !a.is_empty() && *a != "nothing")
        {
            if !rows.iter().any(|r| r.contains(&format!("`{arg}`"))) {
                missing.push(format!("{kw}: {arg}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "action arguments the README's table does not list: {missing:?}"
    );
}

#[test]
fn the_report_example_has_every_field_of_report_json() {
    let text = readme();
    let json = blocks(&text, "json");
    assert_eq!(json.len(), 1, "one report.json example in the README");
    let documented: serde_json::Value = serde_json::from_str(&json[0])
        .unwrap_or_else(|e| panic!("the README's report.json example is not JSON: {e}"));
    let s = scenario::parse(Path::new("README.md"), &example()).unwrap();
    let report = harness::report::build(&s, "id", 0, harness::check::Findings::default());
    let actual = serde_json::to_value(&report).unwrap();
    let mut missing = Vec::new();
    for (key, value) in actual.as_object().unwrap() {
        let Some(doc) = documented.get(key) else {
            missing.push(key.clone());
            continue;
        };
        if let (Some(fields), Some(doc)) = (value.as_object(), doc.as_object()) {
            for k in fields.keys() {
                if !doc.contains_key(k) {
                    missing.push(format!("{key}.{k}"));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "report.json fields the README's example lacks: {missing:?}"
    );
}

/// The two commands of "Two commands": the `sh` block's command lines, in order.
fn two_commands() -> Vec<String> {
    let block = blocks(&readme(), "sh")
        .into_iter()
        .next()
        .expect("the first sh block is the two commands");
    block
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(str::to_string)
        .collect()
}

#[test]
fn ci_runs_the_readme_test_command() {
    let commands = two_commands();
    assert_eq!(commands.len(), 2, "exactly two commands: {commands:?}");
    let ci =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../.ci/run")).unwrap();
    let last = ci
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .unwrap();
    // CI bounds it in time (`timeout SECONDS`); the command itself is the user's, word
    // for word
    let run = last
        .strip_prefix("timeout ")
        .and_then(|rest| rest.split_once(' '))
        .filter(|(secs, _)| secs.parse::<u32>().is_ok())
        .map_or(last, |(_, command)| command);
    assert_eq!(
        run, commands[1],
        ".ci/run must end with the README's test command"
    );
    assert!(
        commands[0].contains("harness run scenarios/"),
        "the first runs a scenario: {}",
        commands[0]
    );
}
