//! `harness cleanup`: removes what runs left behind.
//!
//! Every process a run starts carries `kmh.run=RUN_ID` in its command line (`-Dkmh.run=`
//! for JVMs, `--tag kmh.run=` for workers). Cleanup finds them in `/proc` and kills them
//! (SIGCONT first, so paused ones die too). It is idempotent: a second call finds nothing.

use std::path::Path;

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

/// Processes tagged by a run (`run_id`: only that run's).
pub fn find(run_id: Option<&str>) -> Vec<Leftover> {
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
            .find_map(|a| a.split_once("kmh.run=").map(|(_, id)| id.to_string()));
        let Some(tag) = tag else { continue };
        if run_id.is_some_and(|r| r != tag) {
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

/// Kills every leftover of `run_id` (or of any run) and waits until they are gone.
/// Returns what it killed.
pub fn cleanup(run_id: Option<&str>) -> Vec<Leftover> {
    let found = find(run_id);
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
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(") ")
                .map(|(_, rest)| !rest.starts_with('Z'))
                .unwrap_or(false)
        })
        .unwrap_or(false)
}
