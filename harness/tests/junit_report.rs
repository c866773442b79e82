//! `junit.xml`: one test case per expectation and one per step, each failure carrying what
//! broke (the figure, the step's error), so that a CI page shows it.

use std::path::Path;

use harness::check::{Findings, StepSpan, Window, WindowKind, WindowSubject};

fn step(
    index: usize,
    name: &str,
    end: Option<u64>,
    ok: Option<bool>,
    error: Option<&str>,
) -> StepSpan {
    StepSpan {
        index,
        name: name.into(),
        action: "rolling-restart".into(),
        start_ms: 10_000 * (index as u64 + 1),
        end_ms: end,
        ok,
        error: error.map(str::to_string),
        node: (index == 1).then(|| "kafka2".to_string()),
    }
}

fn window(step: &str, ms: u64) -> Window {
    Window {
        partition: WindowSubject::Partition("orders/0".into()),
        kind: WindowKind::Produce,
        start_ms: 12_000,
        end_ms: 12_000 + ms,
        duration_ms: ms,
        step: step.into(),
        open: false,
    }
}

#[test]
fn junit_has_a_case_per_expectation_and_per_step_with_what_broke() {
    let sc = harness::scenario::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/rolling-restart.toml"),
    )
    .unwrap();
    let mut f = Findings::default();
    f.anomalies.lost = 3;
    f.lost_by_step.insert("restart kafka2".into(), 3);
    f.steps = vec![
        step(0, "roll the brokers", Some(21_500), Some(true), None),
        step(
            1,
            "restart kafka2",
            Some(25_000),
            Some(false),
            Some("kafka2 did not come back within 60s"),
        ),
        step(2, "wait", None, None, None),
    ];
    f.unavailability = vec![
        window("roll the brokers", 4_000),
        window("roll the brokers", 1_200),
        window("(settle)", 900),
    ];
    let report = harness::report::build(&sc, "run-1", 0, f);
    let dir = tempfile::tempdir().unwrap();
    harness::report::write(dir.path(), &report).unwrap();
    let xml = std::fs::read_to_string(dir.path().join("junit.xml")).unwrap();

    // expectations: each a case; the failing one carries its figure
    let cases = xml.matches("<testcase ").count();
    assert_eq!(cases, report.expectations.len() + 3, "{xml}");
    assert!(
        xml.contains("classname=\"kmh.rolling-restart.expect\""),
        "{xml}"
    );
    let lost = xml
        .split("<testcase ")
        .find(|c| c.starts_with("name=\"lost\""))
        .unwrap_or_else(|| panic!("no `lost` case: {xml}"));
    assert!(
        lost.contains("<failure message=\"expected &lt;= 0, got 3\""),
        "{lost}"
    );

    // steps: in order, timed, the failed one with its error, the unfinished one an error
    let steps: Vec<&str> = xml
        .split("<testcase ")
        .filter(|c| c.contains("classname=\"kmh.rolling-restart.step\""))
        .collect();
    assert_eq!(steps.len(), 3, "{xml}");
    assert!(
        steps[0].starts_with("name=\"01 roll the brokers\""),
        "{}",
        steps[0]
    );
    assert!(steps[0].contains("time=\"11.500\""), "{}", steps[0]);
    assert!(!steps[0].contains("<failure"), "{}", steps[0]);
    assert!(
        steps[0].contains(
            "2 unavailability window(s) began here, longest 4000 ms; 0 record(s) lost here"
        ),
        "{}",
        steps[0]
    );
    assert!(
        steps[1].starts_with("name=\"02 restart kafka2\""),
        "{}",
        steps[1]
    );
    assert!(
        steps[1].contains("<failure message=\"kafka2 did not come back within 60s\""),
        "{}",
        steps[1]
    );
    assert!(
        steps[1].contains("action rolling-restart on kafka2"),
        "{}",
        steps[1]
    );
    assert!(steps[1].contains("3 record(s) lost here"), "{}", steps[1]);
    assert!(
        steps[2].contains("<error message=\"the run ended during this step"),
        "{}",
        steps[2]
    );
    assert!(steps[2].contains("(never ended)"), "{}", steps[2]);
}
