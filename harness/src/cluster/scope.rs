//! Which runs' leftovers a cleanup may remove: a list of runs, or every run (forced).
//! Processes, firewall rules and containers carry the run id; namespaces, bridges and
//! veths only its 6-hex-digit tag, so both are asked.

use super::netns::run_tag;

/// The runs a cleanup may touch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CleanupScope {
    /// These runs (`None`: every run, whoever started it).
    pub runs: Option<Vec<String>>,
}

impl CleanupScope {
    /// One run.
    pub fn run(run_id: &str) -> CleanupScope {
        CleanupScope {
            runs: Some(vec![run_id.to_string()]),
        }
    }

    /// Every run, live or not.
    pub fn everything() -> CleanupScope {
        CleanupScope { runs: None }
    }

    /// Whether the leftovers of `run_id` may go.
    pub fn covers(&self, run_id: &str) -> bool {
        self.runs
            .as_ref()
            .is_none_or(|runs| runs.iter().any(|r| r == run_id))
    }

    /// Whether a name carrying `tag` may go.
    pub fn covers_tag(&self, tag: &str) -> bool {
        self.runs
            .as_ref()
            .is_none_or(|runs| runs.iter().any(|r| run_tag(r) == tag))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_outside_the_scope_is_covered_neither_by_id_nor_by_tag() {
        let s = CleanupScope {
            runs: Some(vec!["dead-1".into(), "dead-2".into()]),
        };
        assert!(s.covers("dead-1") && s.covers("dead-2") && !s.covers("live-1"));
        assert!(s.covers_tag(&run_tag("dead-2")) && !s.covers_tag(&run_tag("live-1")));
        let none = CleanupScope { runs: Some(vec![]) };
        assert!(!none.covers("dead-1") && !none.covers_tag(&run_tag("dead-1")));
        assert!(CleanupScope::everything().covers("anything"));
    }
}
