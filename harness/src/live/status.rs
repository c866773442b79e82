//! What a watch shows while it runs: windows as they open and close (from the producers'
//! logs as they are written, [`crate::check::online`]), the mark in force, the totals.
//! On a terminal, one block redrawn every second; otherwise plain lines, one per change (and
//! the run's progress line every 5 s), with no escape codes in a redirected log.

use std::io::{IsTerminal, Write};
use std::path::Path;

use crate::check::online::{OnlineWindows, WindowChange};
use crate::run::sum_status;
use crate::scenario::Scenario;

/// The live view of a watch.
pub struct StatusView {
    /// Whether stderr is a terminal (the block is redrawn there).
    tty: bool,
    /// Produce windows, online.
    online: OnlineWindows,
    /// The run start, ms since epoch.
    started_ms: u64,
    /// The run directory (status lines of the workers).
    run_dir: std::path::PathBuf,
    /// Lines of the block drawn last (to redraw over them).
    drawn: usize,
    /// When the block was drawn last, ms since epoch.
    drawn_at: u64,
}

/// The ack gap a partition may show before the live view calls it a window: the check's
/// threshold, or three times the gap its share of the load leaves between acks.
pub fn online_threshold_ms(scenario: &Scenario) -> u64 {
    let w = &scenario.workload;
    let partitions: u32 = w.topics.iter().map(|t| t.partitions).sum();
    let per_partition_gap_ms = w.producer.rate.map_or(0.0, |r| {
        1000.0 * f64::from(partitions) / (r * f64::from(w.producers.max(1)))
    });
    scenario
        .check
        .window_threshold_ms
        .max((3.0 * per_partition_gap_ms).ceil() as u64)
}

impl StatusView {
    /// A view of the watch in `run_dir` on `scenario`'s (owned) topics, from `from_ms`.
    pub fn new(run_dir: &Path, scenario: &Scenario, started_ms: u64, from_ms: u64) -> Self {
        let topics = crate::run::workload::Workload::topic_specs(scenario);
        StatusView {
            tty: std::io::stderr().is_terminal(),
            online: OnlineWindows::new(
                &run_dir.join(crate::rundir::LOGS),
                &topics,
                from_ms,
                online_threshold_ms(scenario),
            ),
            started_ms,
            run_dir: run_dir.to_path_buf(),
            drawn: 0,
            drawn_at: 0,
        }
    }

    /// Whether the view draws a block (so the plain progress lines are not wanted).
    pub fn is_tty(&self) -> bool {
        self.tty
    }

    fn t(&self, ms: u64) -> f64 {
        ms.saturating_sub(self.started_ms) as f64 / 1000.0
    }

    /// Takes in what the logs say by `now_ms` and shows it, under the mark `mark`.
    pub fn tick(&mut self, now_ms: u64, mark: &str) {
        let changes = self.online.poll(now_ms);
        if !self.tty {
            for c in changes {
                match c {
                    WindowChange::Opened {
                        partition,
                        since_ms,
                    } => eprintln!(
                        "harness: t+{:.1}s window OPEN on {partition}: no ack since t+{:.1}s, under `{mark}`",
                        self.t(now_ms),
                        self.t(since_ms)
                    ),
                    WindowChange::Closed {
                        partition,
                        duration_ms,
                    } => eprintln!(
                        "harness: t+{:.1}s window closed on {partition} after {:.1} s",
                        self.t(now_ms),
                        duration_ms as f64 / 1000.0
                    ),
                }
            }
            return;
        }
        if now_ms.saturating_sub(self.drawn_at) < 1000 && changes.is_empty() {
            return;
        }
        self.draw(now_ms, mark);
    }

    fn draw(&mut self, now_ms: u64, mark: &str) {
        let (p, c) = sum_status(&self.run_dir);
        let open = self.online.open_windows();
        let mut lines = vec![
            format!("t+{:>6.1}s  under `{mark}`", self.t(now_ms)),
            format!(
                "  sent {} acked {} failed {} indeterminate {} | consumed {} | client errors {}",
                p.sent,
                p.acked,
                p.failed,
                p.indeterminate,
                c.received,
                p.errors + c.errors
            ),
            format!("  open windows: {}", open.len()),
        ];
        for (partition, since) in open.iter().take(12) {
            lines.push(format!(
                "    {partition:<48} no ack for {:>6.1} s",
                now_ms.saturating_sub(*since) as f64 / 1000.0
            ));
        }
        if open.len() > 12 {
            lines.push(format!("    … and {} more", open.len() - 12));
        }
        let mut err = std::io::stderr().lock();
        // back over the last block, then clear to the end of the screen
        if self.drawn > 0 {
            let _ = write!(err, "\x1b[{}A\x1b[J", self.drawn);
        }
        for l in &lines {
            let _ = writeln!(err, "{l}");
        }
        self.drawn = lines.len();
        self.drawn_at = now_ms;
    }

    /// Leaves the block as it is (the lines after it start below it).
    pub fn finish(&mut self) {
        self.drawn = 0;
    }
}
