//! `harness compare RUN_A RUN_B`: exit 1 when B is worse than A beyond the tolerance, 0
//! when not, 2 when a report cannot be read — on reports the harness itself wrote.

use std::path::Path;
use std::process::Command;

use harness::check::{Findings, Window, WindowKind, WindowSubject};

/// A checked run directory of rolling-restart: `lost` records, one window of `window_ms`.
fn run(dir: &Path, lost: u64, window_ms: u64) {
    let sc = harness::scenario::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/rolling-restart.toml"),
    )
    .unwrap();
    let mut f = Findings::default();
    f.anomalies.lost = lost;
    f.producers.acked = 30_000;
    f.unavailability = vec![Window {
        partition: WindowSubject::Partition("orders/0".into()),
        kind: WindowKind::Produce,
        start_ms: 20_000,
        end_ms: 20_000 + window_ms,
        duration_ms: window_ms,
        step: "roll the brokers".into(),
        open: false,
    }];
    let report = harness::report::build(&sc, &format!("run-{lost}-{window_ms}"), 0, f);
    std::fs::create_dir_all(dir).unwrap();
    harness::report::write(dir, &report).unwrap();
}

fn compare(a: &Path, b: &Path, extra: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_harness"))
        .arg("compare")
        .arg(a)
        .arg(b)
        .args(extra)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn compare_exits_1_only_when_the_candidate_is_worse_beyond_the_tolerance() {
    let d = tempfile::tempdir().unwrap();
    let (base, same, lossy, slower) = (
        d.path().join("base"),
        d.path().join("same"),
        d.path().join("lossy"),
        d.path().join("slower"),
    );
    run(&base, 0, 2_000);
    run(&same, 0, 2_300);
    run(&lossy, 4, 2_000);
    run(&slower, 0, 9_000);

    let (code, text) = compare(&base, &same, &[]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("B is not worse than A"), "{text}");

    let (code, text) = compare(&base, &lossy, &[]);
    assert_eq!(code, 1, "{text}");
    let lost = text
        .lines()
        .find(|l| l.trim_start().starts_with("lost "))
        .unwrap();
    assert!(lost.contains("WORSE"), "{text}");
    // the other way round is better, not worse
    assert_eq!(compare(&lossy, &base, &[]).0, 0);

    let (code, text) = compare(&base, &slower, &[]);
    assert_eq!(code, 1, "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("roll the brokers: longest window ms") && l.contains("WORSE")),
        "{text}"
    );
    // a wider tolerance lets it pass; the report.json path works as well as the directory
    let (code, text) = compare(
        &base.join("report.json"),
        &slower,
        &["--tolerance-pct", "400"],
    );
    assert_eq!(code, 0, "{text}");

    // JSON for scripts
    let (code, text) = compare(&base, &lossy, &["--json"]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&text).expect(&text);
    assert_eq!(v["worse"], true);

    // bad input names the file
    let missing = d.path().join("nothing-here");
    let (code, text) = compare(&base, &missing, &[]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("nothing-here"), "{text}");
    let (code, text) = compare(&base, &base, &["--tolerance-pct=-1"]);
    assert_eq!(code, 2, "{text}");
    assert!(text.contains("--tolerance-pct"), "{text}");
}
