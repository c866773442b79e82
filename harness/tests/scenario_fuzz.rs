//! The scenario loader against any input (property tests): a located error or a scenario,
//! never a panic — and a scenario it accepts is one the workers accept.
//!
//! Random text alone hardly gets past TOML's syntax, so the cases are the shipped scenarios
//! mutated the way a hand edit goes wrong: a line deleted, duplicated, moved, or taken from
//! another scenario; a value replaced by an odd one (another type, a negative, a huge
//! number, a duration that is not one, a node that does not exist); the file cut anywhere.
//!
//! Case counts are bounded for the fast tier (64 per property); a longer run, for local use:
//! `PROPTEST_CASES=20000 cargo test --release -p harness --test scenario_fuzz`.

use std::path::{Path, PathBuf};

use harness::error::ScenarioErrors;
use harness::scenario::{self, Backend, Scenario};
use proptest::prelude::*;
use workers::config::{ConsumerSettings, Role, TopicSpec, WorkerConfig};

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Every shipped scenario's text, sorted by name (a stable order for shrinking).
fn shipped() -> &'static [(PathBuf, String)] {
    static SHIPPED: std::sync::OnceLock<Vec<(PathBuf, String)>> = std::sync::OnceLock::new();
    SHIPPED.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
        let mut v: Vec<(PathBuf, String)> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .map(|p| {
                let text = std::fs::read_to_string(&p).unwrap();
                (p, text)
            })
            .collect();
        v.sort();
        assert!(
            v.len() > 20,
            "the shipped scenarios are found in {}",
            dir.display()
        );
        v
    })
}

/// Values that strain a loader: other types, signs, sizes, units, names that resolve to
/// nothing, bounds that are not bounds.
const ODD_VALUES: &[&str] = &[
    "\"\"",
    "0",
    "-1",
    "1",
    "4294967296",
    "18446744073709551615",
    "-9223372036854775808",
    "1e-300",
    "1e300",
    "nan",
    "inf",
    "-0.0",
    "true",
    "[]",
    "[\"\"]",
    "[1, 2]",
    "{}",
    "{ name = \"x\" }",
    "\"0s\"",
    "\"-5s\"",
    "\"99999999999999h\"",
    "\"1.5ms\"",
    "\"10\"",
    "\"unlimited\"",
    "\"kafka1\"",
    "\"kafka99\"",
    "\"zk1\"",
    "\"@nobody\"",
    "\"leader:orders/0\"",
    "\"leader:orders/999\"",
    "\"follower:nope/0\"",
    "\"controller:active\"",
    "\"> 0\"",
    "\"<=\"",
    "\"any\"",
    "\"translated\"",
    "\"docker\"",
    "\"ec2\"",
    "\"ssh\"",
    "\"4.1\"",
    "\"2.0\"",
    "\"é\u{0}\"",
    "1979-05-27T07:32:00Z",
];

/// One edit of a scenario's lines.
#[derive(Debug, Clone)]
enum Edit {
    Delete(prop::sample::Index),
    Duplicate(prop::sample::Index),
    Move(prop::sample::Index, prop::sample::Index),
    /// A line of another shipped scenario, inserted.
    Borrow(
        prop::sample::Index,
        prop::sample::Index,
        prop::sample::Index,
    ),
    /// The value of a `key = value` line replaced by an odd one.
    Value(prop::sample::Index, prop::sample::Index),
    /// The key of a `key = value` line replaced by another line's key.
    Key(prop::sample::Index, prop::sample::Index),
}

fn edit() -> impl Strategy<Value = Edit> {
    use prop::sample::Index;
    prop_oneof![
        any::<Index>().prop_map(Edit::Delete),
        any::<Index>().prop_map(Edit::Duplicate),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Edit::Move(a, b)),
        (any::<Index>(), any::<Index>(), any::<Index>())
            .prop_map(|(a, b, c)| Edit::Borrow(a, b, c)),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Edit::Value(a, b)),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Edit::Key(a, b)),
    ]
}

fn apply(lines: &mut Vec<String>, e: &Edit) {
    if lines.is_empty() {
        return;
    }
    let n = lines.len();
    match e {
        Edit::Delete(i) => {
            lines.remove(i.index(n));
        }
        Edit::Duplicate(i) => {
            let l = lines[i.index(n)].clone();
            lines.insert(i.index(n), l);
        }
        Edit::Move(a, b) => {
            let l = lines.remove(a.index(n));
            lines.insert(b.index(n), l);
        }
        Edit::Borrow(s, l, at) => {
            let (_, text) = &shipped()[s.index(shipped().len())];
            let other: Vec<&str> = text.lines().collect();
            if !other.is_empty() {
                lines.insert(at.index(n + 1), other[l.index(other.len())].to_string());
            }
        }
        Edit::Value(i, v) => {
            let i = i.index(n);
            if let Some((key, _)) = lines[i].split_once(" = ") {
                lines[i] = format!("{key} = {}", ODD_VALUES[v.index(ODD_VALUES.len())]);
            }
        }
        Edit::Key(i, j) => {
            let (i, j) = (i.index(n), j.index(n));
            if let (Some((_, value)), Some((key, _))) =
                (lines[i].split_once(" = "), lines[j].split_once(" = "))
            {
                lines[i] = format!("{key} = {value}");
            }
        }
    }
}

/// A shipped scenario with a few edits, perhaps cut short: its path and text.
fn mutated() -> impl Strategy<Value = (PathBuf, String)> {
    (
        any::<prop::sample::Index>(),
        prop::collection::vec(edit(), 1..4),
        prop::option::weighted(0.15, any::<prop::sample::Index>()),
    )
        .prop_map(|(which, edits, cut)| {
            let (path, text) = &shipped()[which.index(shipped().len())];
            let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
            for e in &edits {
                apply(&mut lines, e);
            }
            let mut text = lines.join("\n");
            if let Some(cut) = cut {
                let mut at = cut.index(text.len() + 1);
                while !text.is_char_boundary(at) {
                    at -= 1;
                }
                text.truncate(at);
            }
            (path.clone(), text)
        })
}

/// Every error names the file, a line inside it (0: the file as a whole), the field, what
/// is wrong and a hint.
fn located(path: &Path, text: &str, errors: &ScenarioErrors) -> Result<(), TestCaseError> {
    prop_assert!(!errors.0.is_empty(), "an error without a reason");
    let lines = text.lines().count() + 1;
    for e in &errors.0 {
        prop_assert_eq!(&e.file, path);
        prop_assert!(e.line <= lines, "line {} of {}: {}", e.line, lines, e);
        prop_assert!(!e.field.is_empty(), "no field: {}", e);
        prop_assert!(!e.message.trim().is_empty(), "no message: {}", e);
        prop_assert!(!e.hint.trim().is_empty(), "no hint: {}", e);
    }
    Ok(())
}

/// What a worker would be handed for this scenario (the fields the scenario decides), and
/// whether the worker accepts it.
fn workers_accept(sc: &Scenario) -> Result<(), TestCaseError> {
    let w = &sc.workload;
    let roles = [
        (Role::Produce, w.producers),
        (Role::Consume, w.consumers),
        (Role::FinalRead, 1),
        (Role::Copy, w.copy.as_ref().map_or(0, |c| c.instances)),
    ];
    for (role, instances) in roles {
        if instances == 0 {
            continue;
        }
        let cfg = WorkerConfig {
            run_id: harness::run::new_run_id(&sc.name),
            role,
            worker_index: 0,
            instances,
            first_instance_id: 0,
            bootstrap: "127.0.0.1:9092".into(),
            bootstrap_file: None,
            topics: w
                .topics
                .iter()
                .map(|t| TopicSpec {
                    name: t.name.clone(),
                    partitions: t.partitions,
                })
                .collect(),
            log_path: PathBuf::from("/dev/null"),
            producer: w.producer.clone(),
            consumer: ConsumerSettings {
                group_id: format!("kmh-{}", sc.name),
                session_timeout_ms: w.consumer_session_timeout_ms,
                read_uncommitted: w.consumer_read_uncommitted,
            },
            final_read_timeout_ms: w.final_read_timeout.as_millis() as u64,
            client_overrides: Default::default(),
            // the pipeline's settings as the run makes them
            copy: w.copy_settings(&format!("kmh-{}-copy", sc.name)),
        };
        if let Err(problems) = cfg.validate() {
            prop_assert!(
                false,
                "scenario {} accepted, its {role:?} worker config refused: {problems:?}",
                sc.name
            );
        }
    }
    Ok(())
}

/// What the CLI does with a valid scenario before running it: warnings, the EC2 launch
/// plan, the workers' placement.
fn downstream(sc: &Scenario) {
    let _ = scenario::warnings(sc);
    if let (Backend::Ec2, Some(e)) = (sc.cluster.backend, &sc.cluster.ec2) {
        let _ = harness::cluster::ec2::LaunchPlan::of(&sc.cluster, e);
        let _ = sc.workload.placement.unfit(e.workers);
    }
}

proptest! {
    #![proptest_config(config())]

    /// A shipped scenario edited the ways hands edit: a scenario, or errors that each name
    /// the file, the line, the field and a hint. Never a panic.
    #[test]
    fn an_edited_scenario_is_accepted_or_refused_with_located_errors(
        (path, text) in mutated(),
    ) {
        match scenario::parse(&path, &text) {
            Ok(sc) => {
                workers_accept(&sc)?;
                downstream(&sc);
            }
            Err(e) => located(&path, &text, &e)?,
        }
    }

    /// The same text read as a watch scenario (`harness watch`, a live cluster).
    #[test]
    fn an_edited_scenario_read_as_a_watch_is_accepted_or_refused_with_located_errors(
        (path, text) in mutated(),
    ) {
        match scenario::parse_watch(&path, &text) {
            Ok(sc) => workers_accept(&sc)?,
            Err(e) => located(&path, &text, &e)?,
        }
    }

    /// Any text at all, TOML or not.
    #[test]
    fn any_text_is_accepted_or_refused_with_located_errors(text in "\\PC{0,400}") {
        let path = Path::new("any.toml");
        if let Err(e) = scenario::parse(path, &text) {
            located(path, &text, &e)?;
        }
        if let Err(e) = scenario::parse_watch(path, &text) {
            located(path, &text, &e)?;
        }
    }
}

/// Every shipped scenario, unedited, gives worker configs the workers accept.
#[test]
fn every_shipped_scenario_gives_configs_the_workers_accept() {
    for (path, text) in shipped() {
        let sc = scenario::parse(path, text).unwrap_or_else(|e| panic!("{e}"));
        workers_accept(&sc).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}
