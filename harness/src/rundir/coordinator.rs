//! Who runs a run: the coordinator's pid and start time, in the run directory
//! (`coordinator.json`) and in a registry of live runs (`CACHE/live/RUN_ID.json`, which
//! also says where the run directory is). `harness cleanup` reads the registry to leave a
//! run whose coordinator is still alive alone — two runs on one machine (two CI jobs, a
//! person and a CI job) never clean each other up.
//!
//! A pid alone is not an identity (pids are reused): the process's start time, in clock
//! ticks since boot (`/proc/PID/stat`, field 22), is recorded with it, and a coordinator is
//! alive only when a process with that pid and that start time exists.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::HarnessError;

/// The file in the run directory.
pub const COORDINATOR_JSON: &str = "coordinator.json";

/// A run's coordinator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Coordinator {
    /// The run it coordinates.
    pub run_id: String,
    /// Its run directory (absolute).
    pub run_dir: PathBuf,
    /// Its process id.
    pub pid: u32,
    /// Its start time, clock ticks since boot.
    pub start_ticks: u64,
}

/// A process's start time (clock ticks since boot), when it exists and is not a zombie.
pub fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid …`: comm may hold spaces and parentheses
    let (_, rest) = stat.rsplit_once(") ")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.first() == Some(&"Z") {
        return None;
    }
    // field 22 of the line is the 20th after `comm`
    fields.get(19)?.parse().ok()
}

/// Where the registry of live runs is.
pub fn registry_dir() -> PathBuf {
    crate::cluster::dist::cache_dir().join("live")
}

impl Coordinator {
    /// This process, coordinating `run_id` in `run_dir`.
    pub fn this(run_id: &str, run_dir: &Path) -> Coordinator {
        let pid = std::process::id();
        Coordinator {
            run_id: run_id.to_string(),
            run_dir: run_dir.to_path_buf(),
            pid,
            start_ticks: start_ticks(pid).unwrap_or(0),
        }
    }

    /// True while the coordinator process runs.
    pub fn is_alive(&self) -> bool {
        start_ticks(self.pid) == Some(self.start_ticks)
    }

    /// Records it in the run directory and the registry; the registry entry goes when the
    /// returned guard is dropped (a killed coordinator leaves it: that is what cleanup
    /// looks for).
    pub fn register(&self) -> Result<Registered, HarnessError> {
        let json = serde_json::to_vec_pretty(self).expect("a coordinator serializes");
        std::fs::write(self.run_dir.join(COORDINATOR_JSON), &json)?;
        let dir = registry_dir();
        std::fs::create_dir_all(&dir)?;
        let entry = dir.join(format!("{}.json", self.run_id));
        std::fs::write(&entry, &json)?;
        Ok(Registered { entry })
    }

    /// Every registered run (live or not).
    pub fn registered() -> Vec<Coordinator> {
        let mut out: Vec<Coordinator> = std::fs::read_dir(registry_dir())
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| std::fs::read(e.path()).ok())
                    .filter_map(|b| serde_json::from_slice(&b).ok())
                    .collect()
            })
            .unwrap_or_default();
        out.sort_by(|a, b| a.run_id.cmp(&b.run_id));
        out
    }

    /// The coordinator a run directory records, when it records one.
    pub fn of_run_dir(run_dir: &Path) -> Option<Coordinator> {
        let bytes = std::fs::read(run_dir.join(COORDINATOR_JSON)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Forgets a run in the registry (cleanup, once its leftovers are gone).
    pub fn forget(run_id: &str) {
        let _ = std::fs::remove_file(registry_dir().join(format!("{run_id}.json")));
    }
}

/// A run's entry in the registry of live runs, removed on drop.
#[derive(Debug)]
pub struct Registered {
    entry: PathBuf,
}

impl Drop for Registered {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.entry);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_one_with_another_start_time_is_not() {
        let me = Coordinator::this("r", Path::new("/tmp/r"));
        assert!(me.start_ticks > 0);
        assert!(me.is_alive());
        // the same pid, started at another time: a reused pid, not our coordinator
        let reused = Coordinator {
            start_ticks: me.start_ticks + 1,
            ..me.clone()
        };
        assert!(!reused.is_alive());
        let gone = Coordinator {
            pid: u32::MAX - 1,
            ..me
        };
        assert!(!gone.is_alive());
    }
}
