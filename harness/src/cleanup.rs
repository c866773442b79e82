//! `harness cleanup`: removes what runs left behind.
//!
//! Every process a run starts carries `kmh.run=RUN_ID` in its command line (`-Dkmh.run=`
//! for JVMs, `--tag kmh.run=` for workers). Cleanup finds them in `/proc` and kills them
//! (SIGCONT first, so paused ones die too). It is idempotent: a second call finds nothing.
//!
//! It never touches a live run: every run registers its coordinator (pid and start time,
//! [`crate::rundir::coordinator`]). Without `--run`, cleanup removes what belongs to
//! registered runs whose coordinator is gone, and names the rest: runs still running, and
//! leftovers of runs it has no record of (another user's, another cache directory's).
//! `--run` names one run; `--force` removes regardless.

use std::path::{Path, PathBuf};

use crate::cluster::CleanupScope;
use crate::rundir::coordinator::Coordinator;
use crate::rundir::RunRecord;

/// What a cleanup will touch, decided before anything is removed.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The runs it may remove the leftovers of.
    pub scope: CleanupScope,
    /// Registered runs left alone: their coordinator is alive.
    pub spared: Vec<Coordinator>,
    /// Runs with leftover processes and no registered coordinator (another user's or
    /// another cache directory's run, or one of an older harness): left alone unless
    /// forced.
    pub unknown: Vec<String>,
}

/// The run a `--run` argument names: a run directory (as `harness run` printed it), the
/// name of one under `runs/`, or a run id.
pub fn resolve_run(arg: &str) -> String {
    for dir in [PathBuf::from(arg), Path::new("runs").join(arg)] {
        if let Ok(record) = RunRecord::load(&dir) {
            return record.run_id;
        }
        // a coordinator killed before it wrote run.json left this much
        if let Some(c) = Coordinator::of_run_dir(&dir) {
            return c.run_id;
        }
    }
    arg.to_string()
}

/// Decides what a cleanup may remove. `run` (a run id, directory or name): that run, unless
/// its coordinator is alive. `None`: every registered run whose coordinator is gone. With
/// `force`: the named run, or every run, whatever its coordinator does.
pub fn plan(run: Option<&str>, force: bool) -> Plan {
    let registered = Coordinator::registered();
    let live: Vec<Coordinator> = registered
        .iter()
        .filter(|c| c.is_alive())
        .cloned()
        .collect();
    let is_live = |id: &str| live.iter().any(|c| c.run_id == id);
    match (run.map(resolve_run), force) {
        (Some(id), true) => Plan {
            scope: CleanupScope::run(&id),
            spared: Vec::new(),
            unknown: Vec::new(),
        },
        (Some(id), false) => Plan {
            spared: live.iter().filter(|c| c.run_id == id).cloned().collect(),
            scope: CleanupScope {
                runs: Some(if is_live(&id) { Vec::new() } else { vec![id] }),
            },
            unknown: Vec::new(),
        },
        (None, true) => Plan {
            scope: CleanupScope::everything(),
            spared: Vec::new(),
            unknown: Vec::new(),
        },
        (None, false) => {
            let dead: Vec<String> = registered
                .iter()
                .filter(|c| !is_live(&c.run_id))
                .map(|c| c.run_id.clone())
                .collect();
            let mut unknown: Vec<String> = find(&CleanupScope::everything())
                .into_iter()
                .map(|l| l.run_id)
                .filter(|id| !registered.iter().any(|c| &c.run_id == id))
                .collect();
            unknown.sort();
            unknown.dedup();
            Plan {
                scope: CleanupScope { runs: Some(dead) },
                spared: live,
                unknown,
            }
        }
    }
}

/// Forgets the registered runs `scope` covered whose coordinator is gone (their leftovers
/// were just removed).
pub fn forget_dead(scope: &CleanupScope) {
    for c in Coordinator::registered() {
        if scope.covers(&c.run_id) && !c.is_alive() {
            Coordinator::forget(&c.run_id);
        }
    }
}

/// A process that belonged to a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    /// Process id.
    pub pid: i32,
    /// Run id from its tag.
    pub run_id: String,
    /// Its command line, shortened.
    pub command: String,
}

/// Processes tagged by the runs `scope` covers.
pub fn find(scope: &CleanupScope) -> Vec<Leftover> {
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in rd.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(raw) = std::fs::read(Path::new("/proc").join(pid.to_string()).join("cmdline"))
        else {
            continue;
        };
        let args: Vec<String> = raw
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let tag = args
            .iter()
            // a path may carry the tag too (an ssh master's control socket,
            // `/tmp/kmh.run=ID/…`): the id ends at its `/`
            .find_map(|a| {
                a.split_once("kmh.run=")
                    .map(|(_, id)| id.split('/').next().unwrap_or(id).to_string())
            });
        let Some(tag) = tag else { continue };
        if !scope.covers(&tag) {
            continue;
        }
        let command = args
            .iter()
            .filter(|a| !a.is_empty())
            .cloned()
            .collect::<Vec<_>>()
            .join(" ");
        let command = if command.len() > 120 {
            format!("{}…", &command[..120])
        } else {
            command
        };
        out.push(Leftover {
            pid,
            run_id: tag,
            command,
        });
    }
    out.sort_by_key(|l| l.pid);
    out
}

/// Kills every leftover process of the runs `scope` covers and waits until they are gone.
/// Returns what it killed.
pub fn cleanup(scope: &CleanupScope) -> Vec<Leftover> {
    let found = find(scope);
    for l in &found {
        // SAFETY: plain kill(2); a pid that vanished meanwhile just returns ESRCH.
        unsafe {
            libc::kill(l.pid, libc::SIGCONT);
            libc::kill(l.pid, libc::SIGKILL);
        }
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::time::Instant::now() < deadline && found.iter().any(|l| alive(l.pid)) {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    found
}

fn alive(pid: i32) -> bool {
    // a zombie (killed, not yet reaped by its parent) counts as gone
    u32::try_from(pid).is_ok_and(|p| crate::rundir::coordinator::start_ticks(p).is_some())
}

/// The run directories of the runs `scope` covers that a cleanup knows of: the one `--run`
/// names (a directory, a name under `runs/`), and every registered run's.
pub fn run_dirs(run: Option<&str>, scope: &CleanupScope) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    if let Some(arg) = run {
        for dir in [PathBuf::from(arg), Path::new("runs").join(arg)] {
            if dir.join(crate::rundir::RUN_JSON).exists() {
                out.push(dir);
                break;
            }
        }
    }
    for c in Coordinator::registered() {
        if scope.covers(&c.run_id) && !c.is_alive() {
            out.push(c.run_dir);
        }
    }
    // one directory once, however it was named
    let mut seen = Vec::new();
    out.retain(|d| {
        let key = std::fs::canonicalize(d).unwrap_or_else(|_| d.clone());
        let fresh = !seen.contains(&key);
        seen.push(key);
        fresh
    });
    out
}
