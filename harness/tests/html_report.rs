//! `report.html`: one self-contained page — three charts on one time axis (records per
//! second, latency, the windows as a Gantt chart), then the tables — with every name from
//! the run escaped. (That it renders in a real browser is the slow tier's test:
//! `tests/e2e/scenarios.rs` opens real runs' reports in headless Chromium.)

use std::path::Path;

use harness::check::series::SeriesBook;
use harness::check::{Example, Findings, StepSpan, Window, WindowKind, WindowSubject};

fn window(partition: &str, kind: WindowKind, start: u64, ms: u64) -> Window {
    Window {
        partition: WindowSubject::Partition(partition.into()),
        kind,
        start_ms: start,
        end_ms: start + ms,
        duration_ms: ms,
        step: "restart <kafka2>".into(),
        open: false,
    }
}

#[test]
fn the_html_report_draws_the_run_on_one_axis_and_escapes_what_the_run_named() {
    let sc = harness::scenario::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/rolling-restart.toml"),
    )
    .unwrap();
    let mut f = Findings::default();
    f.anomalies.lost = 2;
    f.examples.insert(
        "lost".into(),
        vec![Example {
            partition: "orders/0".into(),
            offset: Some(41),
            producer: 1,
            seq: 77,
            step: "restart <kafka2>".into(),
            detail: "acked by 2, not in the final read".into(),
        }],
    );
    f.steps = vec![StepSpan {
        index: 0,
        name: "restart <kafka2>".into(),
        action: "restart".into(),
        start_ms: 12_000,
        end_ms: Some(20_000),
        ok: Some(false),
        error: Some("kafka2 did not come back & <gave up>".into()),
        node: Some("kafka2".into()),
    }];
    f.unavailability = vec![
        window("orders/0", WindowKind::Produce, 13_000, 2_000),
        window("orders/0", WindowKind::Produce, 17_000, 500),
        window("orders/1", WindowKind::Produce, 13_100, 1_900),
        window("orders/1", WindowKind::Consume, 13_200, 3_000),
    ];
    let mut series = SeriesBook::default();
    for t in 0..30_000u32 {
        if t % 10 == 0 {
            series.acked(t, t + 5, 5_000);
            series.consumed(t + 7);
            series.first_delivery(t, 7_000);
        }
    }
    f.series = series.finish();
    f.oracle = Some(harness::check::oracle::OracleCheck {
        kind: "kafka-verifiable".into(),
        topic: "kmh-oracle".into(),
        mirrors: "orders".into(),
        acked: 900,
        lost: 3,
        final_read_complete: true,
        kafkatest_message: "3 acked message did not make it to the Consumer.".into(),
        lost_examples: vec!["value 7: acked at partition 0 offset <7>".into()],
        ..Default::default()
    });
    f.transactions = Some(harness::check::TransactionTotals {
        committed: 41,
        aborted: 9,
        longest_ms: 9066,
        longest_step: "kill <the coordinator>".into(),
        ..Default::default()
    });
    f.anomalies.aborted_read = 3;
    let report = harness::report::build(&sc, "run-<1>", 0, f);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("scenario.toml"), "name = \"a<b\"\n").unwrap();
    harness::report::write(dir.path(), &report).unwrap();
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();

    // three charts, one width: the time axes line up
    let svgs: Vec<&str> = html.split("<svg ").skip(1).collect();
    assert_eq!(svgs.len(), 3, "{html}");
    assert!(svgs.iter().all(|s| s.starts_with("width=\"1100\"")));
    // the Gantt chart: a row per subject and kind, a bar per produce window (red)
    let gantt = svgs[2];
    for row in ["orders/0 produce", "orders/1 produce", "orders/1 consume"] {
        assert!(gantt.contains(row), "no row `{row}`: {gantt}");
    }
    assert_eq!(gantt.matches("fill=\"#D62728\"").count(), 3, "{gantt}");
    // the records chart has the series as lines
    assert!(svgs[0].contains("<polyline"), "{}", svgs[0]);
    // the two line charts name their series in a row under the plot (260 px high), where
    // they cover no step number and no line
    for (svg, names) in [
        (
            svgs[0],
            &["sent", "acked", "consumed", "failed", "refused"][..],
        ),
        (
            svgs[1],
            &[
                "ack p50",
                "ack p99",
                "ack max",
                "end-to-end p50",
                "end-to-end p99",
            ][..],
        ),
    ] {
        // each text element's attributes and its words
        let texts: Vec<(&str, &str)> = svg
            .split("<text")
            .skip(1)
            .filter_map(|t| {
                let (attrs, rest) = t.split_once('>')?;
                Some((attrs, rest.split("</text>").next()?.trim()))
            })
            .collect();
        for name in names {
            let (attrs, _) = texts
                .iter()
                .find(|(_, words)| words == name)
                .unwrap_or_else(|| panic!("no legend entry `{name}`: {svg}"));
            let y: f64 = attrs
                .split(" y=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("no y in {attrs}"));
            assert!(y >= 260.0, "`{name}` at y = {y}, over the plot: {attrs}");
        }
    }

    // self-contained: nothing fetched, no script
    for banned in ["<script", "<link", "src=", "url(", "<iframe", "@import"] {
        assert!(!html.contains(banned), "`{banned}` in the page");
    }
    // what the run named is text, never markup
    assert!(!html.contains("<kafka2>") && !html.contains("<gave up>") && !html.contains("a<b"));
    assert!(html.contains("restart &lt;kafka2&gt;"));
    assert!(html.contains("kafka2 did not come back &amp; &lt;gave up&gt;"));
    assert!(html.contains("run-&lt;1&gt;"));
    assert!(html.contains("name = &quot;a&lt;b&quot;"));
    // the verdict, the failing expectation, the example
    assert!(html.contains("<span class=\"verdict fail\">FAIL</span>"));
    assert!(html.contains("<td class=\"fail\">FAILED</td>"));
    assert!(html.contains("acked by 2, not in the final read"));
    // the two oracles side by side (rolling-restart.toml names one): both lost records
    assert!(html.contains("<h2>Two oracles</h2>"));
    assert!(
        html.contains("<tr><td>lost</td><td>2</td><td>3</td></tr>"),
        "{html}"
    );
    assert!(html.contains("offset &lt;7&gt;"));
    assert!(html.contains("kafkatest's verdict: <span class=\"fail\">fail</span>"));
    // a start-up point the run never reached says so
    assert!(html.contains("cluster up not reached"), "{html}");
    // the transactions, their longest wait blamed on its step, escaped
    assert!(html.contains("<h2>Transactions</h2>"));
    assert!(html.contains("<td>41</td><td>9</td>"), "{html}");
    assert!(html.contains("9066 in kill &lt;the coordinator&gt;"));
}
