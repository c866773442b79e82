//! `junit.xml`: the run as a CI system shows tests — one test case per expectation and one
//! per step, so that a CI page names what broke (the expectation with its figure, the step
//! with its error) without anyone opening `report.json`.
//!
//! Two suites: `expectations` (classname `kmh.SCENARIO.expect`; a failure's message is
//! "expected B, got A") and `steps` (classname `kmh.SCENARIO.step`, timed; a failed step's
//! message is its error, a step the run never finished is an error case). A step's
//! standard output says what it cost the clients: the unavailability windows that began
//! in it, the longest, and the records lost in it.

use std::time::Duration;

use quick_junit::{NonSuccessKind, TestCase, TestCaseStatus, TestSuite};

use super::Report;
use crate::error::HarnessError;

/// The JUnit XML of `report`.
pub fn xml(report: &Report) -> Result<String, HarnessError> {
    let mut junit = quick_junit::Report::new("kafka-migration-harness");
    junit.add_test_suite(expectations(report));
    junit.add_test_suite(steps(report));
    junit
        .to_string()
        .map_err(|e| HarnessError::Other(anyhow::anyhow!("junit: {e}")))
}

fn expectations(report: &Report) -> TestSuite {
    let mut suite = TestSuite::new(format!("scenario {}: expectations", report.scenario));
    for e in &report.expectations {
        let status = if e.ok {
            TestCaseStatus::success()
        } else {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
            s.set_message(format!("expected {}, got {}", e.expected, e.actual));
            s
        };
        let mut tc = TestCase::new(e.name.clone(), status);
        tc.set_classname(format!("kmh.{}.expect", report.scenario));
        suite.add_test_case(tc);
    }
    suite
}

fn steps(report: &Report) -> TestSuite {
    let mut suite = TestSuite::new(format!("scenario {}: steps", report.scenario));
    for step in &report.steps {
        let status = match step.ok {
            Some(true) => TestCaseStatus::success(),
            Some(false) => {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                s.set_message(step.error.clone().unwrap_or_else(|| "failed".into()));
                s
            }
            None => {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
                s.set_message("the run ended during this step (a crash or an interrupt)");
                s
            }
        };
        // step names are unique in a scenario, but the index keeps the order readable
        let mut tc = TestCase::new(format!("{:02} {}", step.index + 1, step.name), status);
        tc.set_classname(format!("kmh.{}.step", report.scenario));
        if let Some(end) = step.end_ms {
            tc.set_time(Duration::from_millis(end.saturating_sub(step.start_ms)));
        }
        let windows: Vec<_> = report
            .unavailability
            .iter()
            .filter(|w| w.step == step.name)
            .collect();
        let longest = windows.iter().map(|w| w.duration_ms).max().unwrap_or(0);
        let lost = report.lost_by_step.get(&step.name).copied().unwrap_or(0);
        tc.set_system_out(format!(
            "action {}{}, t={}..{} ms: {} unavailability window(s) began here, longest {} ms; \
             {} record(s) lost here",
            step.action,
            step.node
                .as_deref()
                .map(|n| format!(" on {n}"))
                .unwrap_or_default(),
            step.start_ms,
            step.end_ms
                .map_or("(never ended)".into(), |e| e.to_string()),
            windows.len(),
            longest,
            lost
        ));
        suite.add_test_case(tc);
    }
    suite
}
