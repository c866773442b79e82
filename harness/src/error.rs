//! Failure domains and the exit codes they map to.
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | the run passed every expectation |
//! | 1 | the system under test broke an expectation (or a step it had to survive failed) |
//! | 2 | bad input: scenario file, arguments, run directory |
//! | 3 | the harness or the cluster could not run (no Java/Maven, cluster never came up, …) |

use std::path::PathBuf;

use thiserror::Error;

/// Exit code: every expectation held.
pub const EXIT_PASS: u8 = 0;
/// Exit code: the system under test broke an expectation.
pub const EXIT_FAIL: u8 = 1;
/// Exit code: bad input.
pub const EXIT_BAD_INPUT: u8 = 2;
/// Exit code: the harness or the cluster could not run.
pub const EXIT_TOOL_FAILED: u8 = 3;

/// A problem in a scenario file, located.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("{file}:{line}:{column}: {field}: {message}\n  hint: {hint}")]
pub struct ScenarioError {
    /// The scenario file.
    pub file: PathBuf,
    /// 1-based line of the offending value (or of the step/table holding it).
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// Dotted path of the field, e.g. `step[3].node`.
    pub field: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: String,
}

/// Scenario errors, all of them (validation reports every problem it finds, not the first).
#[derive(Debug, Error)]
#[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
pub struct ScenarioErrors(pub Vec<ScenarioError>);

/// Everything that stops the harness, by domain; [`HarnessError::exit_code`] maps each to
/// the documented exit code.
#[derive(Debug, Error)]
pub enum HarnessError {
    /// The scenario file is wrong.
    #[error("invalid scenario:\n{0}")]
    Scenario(#[from] ScenarioErrors),
    /// Other bad input (arguments, a run directory that is not one).
    #[error("{0}")]
    BadInput(String),
    /// A prerequisite is missing (Java, Maven, the distribution).
    #[error("{what}\n  hint: {hint}")]
    Missing {
        /// What is missing.
        what: String,
        /// How to get it.
        hint: String,
    },
    /// The cluster could not be brought up or operated.
    #[error("cluster: {0}")]
    Cluster(String),
    /// Workers could not be run.
    #[error("workers: {0}")]
    Workers(String),
    /// The run was interrupted (Ctrl-C / SIGTERM) before it produced a verdict.
    #[error("interrupted")]
    Interrupted,
    /// Anything else the harness tripped on.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl HarnessError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> u8 {
        match self {
            HarnessError::Scenario(_) | HarnessError::BadInput(_) => EXIT_BAD_INPUT,
            _ => EXIT_TOOL_FAILED,
        }
    }
}

impl From<std::io::Error> for HarnessError {
    fn from(e: std::io::Error) -> Self {
        HarnessError::Other(e.into())
    }
}
