//! Operator marks: `harness mark "switch zookeeper.connect"` appends a point to a running
//! watch's timeline (one `write(2)` on a file opened for appending: the coordinator's own
//! lines never interleave with it); the checker attributes what follows to the mark in force,
//! as it does to steps. The watch follows its timeline to show each mark as it lands.

use std::io::{BufRead, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use workers::clock::now_ms;

use crate::error::HarnessError;
use crate::rundir::coordinator::Coordinator;
use crate::rundir::timeline::{Timeline, TimelineEvent};
use crate::rundir::{RunRecord, TIMELINE};

/// The run directory a mark goes to: `run` (a run directory, a name under `runs/`, or a
/// run id of a registered run), or the latest watch still running.
pub fn target(run: Option<&str>) -> Result<PathBuf, HarnessError> {
    let registered = Coordinator::registered();
    if let Some(arg) = run {
        for dir in [PathBuf::from(arg), Path::new("runs").join(arg)] {
            if dir.join(crate::rundir::RUN_JSON).exists() {
                return Ok(dir);
            }
        }
        if let Some(c) = registered.iter().find(|c| c.run_id == arg) {
            return Ok(c.run_dir.clone());
        }
        return Err(HarnessError::BadInput(format!(
            "--run {arg}: no run directory there, under runs/, or registered with that id\n  hint: give the directory `harness watch` printed"
        )));
    }
    let mut watches: Vec<(u64, PathBuf)> = registered
        .iter()
        .filter(|c| c.is_alive())
        .filter_map(|c| {
            let r = RunRecord::load(&c.run_dir).ok()?;
            (r.backend == "live").then(|| (r.started_ms, c.run_dir.clone()))
        })
        .collect();
    watches.sort();
    watches
        .pop()
        .map(|(_, d)| d)
        .ok_or_else(|| HarnessError::Missing {
            what: "no watch is running on this machine".into(),
            hint: "start one with `harness watch --bootstrap …`, or name a run with --run".into(),
        })
}

/// Appends the mark `name` to the timeline of the run in `run_dir`; returns its time in
/// ms since the run start.
pub fn mark(run_dir: &Path, name: &str) -> Result<u64, HarnessError> {
    let name = name.trim();
    if name.is_empty() || name.len() > 200 || name.contains(['\n', '\r']) {
        return Err(HarnessError::BadInput(format!(
            "mark `{name}`: a mark is one line of 1 to 200 characters\n  hint: name the runbook step, e.g. harness mark \"restart kafka2\""
        )));
    }
    let record = RunRecord::load(run_dir)?;
    let events = crate::rundir::timeline::read(run_dir)?;
    if events
        .iter()
        .any(|e| matches!(e, TimelineEvent::RunEnd { .. }))
    {
        return Err(HarnessError::BadInput(format!(
            "run {} in {} has ended; a mark now would mark nothing",
            record.run_id,
            run_dir.display()
        )));
    }
    let t = now_ms();
    Timeline::open(run_dir)?.record(&TimelineEvent::Mark {
        t_ms: t,
        name: name.to_string(),
    });
    Ok(t.saturating_sub(record.started_ms))
}

/// Marks every line of `input` (blank lines skipped) as it is read: a runbook script pipes
/// its steps in, each marked when the script reaches it. Returns how many were marked.
pub fn mark_lines(run_dir: &Path, input: impl BufRead) -> Result<usize, HarnessError> {
    let mut n = 0;
    for line in input.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let t = mark(run_dir, &line)?;
        eprintln!(
            "harness: marked `{}` at t+{:.1}s",
            line.trim(),
            t as f64 / 1000.0
        );
        n += 1;
    }
    Ok(n)
}

/// Follows a timeline as it grows, yielding the marks appended to it.
pub struct MarkFollower {
    /// The timeline file.
    path: PathBuf,
    /// Bytes already read (always at a line start).
    offset: u64,
}

impl MarkFollower {
    /// Follows the timeline of `run_dir` from its current end.
    pub fn new(run_dir: &Path) -> MarkFollower {
        let path = run_dir.join(TIMELINE);
        let offset = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        MarkFollower { path, offset }
    }

    /// Marks appended since the last call, as `(t_ms since epoch, name)`.
    pub fn poll(&mut self) -> Vec<(u64, String)> {
        let mut out = Vec::new();
        let Ok(mut f) = std::fs::File::open(&self.path) else {
            return out;
        };
        let mut text = String::new();
        if f.seek(SeekFrom::Start(self.offset)).is_err() || f.read_to_string(&mut text).is_err() {
            return out;
        }
        // only whole lines: a line being written is read next time
        let whole = text.rfind('\n').map_or(0, |i| i + 1);
        for line in text[..whole].lines() {
            if let Ok(TimelineEvent::Mark { t_ms, name }) = serde_json::from_str(line) {
                out.push((t_ms, name));
            }
        }
        self.offset += whole as u64;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let record = RunRecord {
            ec2: None,
            run_id: "r1".into(),
            scenario: "watch".into(),
            started_ms: now_ms() - 10_000,
            kafka_version: String::new(),
            backend: "live".into(),
            bootstrap: "127.0.0.1:9".into(),
            zookeeper: None,
            keep_topics: false,
            ssh: None,
            hosts: vec![],
            topics: vec![],
        };
        std::fs::write(
            dir.path().join(crate::rundir::RUN_JSON),
            serde_json::to_string(&record).unwrap(),
        )
        .unwrap();
        std::fs::write(dir.path().join(TIMELINE), "").unwrap();
        dir
    }

    fn marks(dir: &Path) -> Vec<String> {
        crate::rundir::timeline::read(dir)
            .unwrap()
            .into_iter()
            .filter_map(|e| match e {
                TimelineEvent::Mark { name, .. } => Some(name),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn lines_piped_in_are_marks_in_order_and_blank_lines_are_none() {
        let dir = watch_dir();
        let mut follower = MarkFollower::new(dir.path());
        let n = mark_lines(
            dir.path(),
            "stop kafka1\n\n   \nswitch zookeeper.connect  \nstart kafka1".as_bytes(),
        )
        .unwrap();
        assert_eq!(n, 3);
        assert_eq!(
            marks(dir.path()),
            ["stop kafka1", "switch zookeeper.connect", "start kafka1"]
        );
        let seen: Vec<String> = follower.poll().into_iter().map(|(_, n)| n).collect();
        assert_eq!(seen, marks(dir.path()), "the watch sees each mark once");
        assert!(follower.poll().is_empty());
    }

    #[test]
    fn a_mark_on_an_ended_run_or_a_bad_line_is_refused() {
        let dir = watch_dir();
        let err = mark(dir.path(), &"x".repeat(201)).unwrap_err();
        assert!(err.to_string().contains("1 to 200 characters"), "{err}");
        Timeline::open(dir.path())
            .unwrap()
            .record(&TimelineEvent::RunEnd {
                t_ms: now_ms(),
                outcome: "completed".into(),
            });
        let err = mark_lines(dir.path(), "too late\n".as_bytes()).unwrap_err();
        assert!(err.to_string().contains("has ended"), "{err}");
        assert!(marks(dir.path()).is_empty());
    }
}
