//! Exit codes, shared by the `harness` and `worker` binaries so that both say the same
//! thing with the same number: a script (or CI) can tell "the system under test broke an
//! expectation" from "the tool could not do its job" without reading any output.
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | done: every expectation held (a worker: it ran to its end) |
//! | 1 | the system under test broke an expectation (`harness zk diff`: the trees differ) |
//! | 2 | bad input: scenario file, arguments, a worker's config, a run directory |
//! | 3 | the tool could not run: no Java/Maven, the cluster never came up, interrupted, I/O |

/// How a `harness` or `worker` process ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: every expectation held.
    Pass,
    /// 1: the system under test broke an expectation.
    Fail,
    /// 2: bad input.
    BadInput,
    /// 3: the tool could not run.
    ToolFailed,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Pass => 0,
            Exit::Fail => 1,
            Exit::BadInput => 2,
            Exit::ToolFailed => 3,
        }
    }
}

impl From<Exit> for std::process::ExitCode {
    fn from(e: Exit) -> Self {
        std::process::ExitCode::from(e.code())
    }
}
