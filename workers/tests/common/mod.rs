//! Shared by the worker crate's property tests.

use proptest::test_runner::Config;

/// Cases per property: `PROPTEST_CASES` when set, else a fast-tier 64. No regression files
/// are written into the source tree by a failing case: its message carries the minimal
/// input. (The harness crate's `scenario_fuzz.rs` has the same rule: test files of two
/// crates cannot share a module.)
pub fn proptest_config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}
