//! Clocks of other machines against the coordinator's, NTP-style: the coordinator notes
//! its time, asks the host for its own over the open SSH session, notes its time again;
//! the host's clock read at the midpoint of the round trip, and the error is at most half
//! the round trip. Of several probes the shortest round trip wins (the least queueing).
//!
//! Workers on other machines stamp their logs with their own clocks; the checker moves
//! each log's timestamps onto the coordinator's clock with these offsets (interpolated
//! between the measurements at the start and at the end, so a drifting clock is followed)
//! before it finds windows and ties them to steps.

use std::net::Ipv4Addr;
use std::path::Path;

use serde::{Deserialize, Serialize};
use workers::clock::now_us;

use super::Remote;
use crate::error::{HarnessError, SshError};

/// How many round trips a measurement takes (the shortest is kept).
const PROBES: usize = 7;

/// One measurement of a host's clock.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct ClockSample {
    /// When (coordinator clock), µs since epoch.
    pub at_us: u64,
    /// Host clock minus coordinator clock, µs.
    pub offset_us: i64,
    /// The most the offset can be wrong by: half the round trip, µs.
    pub bound_us: u64,
}

/// Measures `remote`'s clock against this machine's: one session stays open, answering
/// each line it is sent with the host's time, so a round trip is the channel's latency
/// alone (not an ssh client's start-up, which would bias the offset towards its side).
pub fn measure(remote: &Remote) -> Result<ClockSample, SshError> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let script = "while read -r _; do date +%s%N; done";
    let failed = |what: String| SshError::Command {
        host: remote.login.clone(),
        command: script.into(),
        output: what,
    };
    let samples: Result<Vec<(u64, u128, u64)>, String> = remote.rt.block_on(async {
        let mut child = remote
            .command(script)
            .stdin(openssh::Stdio::piped())
            .stdout(openssh::Stdio::piped())
            .stderr(openssh::Stdio::null())
            .spawn()
            .await
            .map_err(|e| e.to_string())?;
        let mut stdin = child.stdin().take().ok_or("no stdin")?;
        let mut stdout = BufReader::new(child.stdout().take().ok_or("no stdout")?);
        let mut out = Vec::new();
        let mut line = String::new();
        // one probe more than kept: the first warms the path
        for i in 0..=PROBES {
            line.clear();
            let t0 = now_us();
            stdin.write_all(b"t\n").await.map_err(|e| e.to_string())?;
            stdin.flush().await.map_err(|e| e.to_string())?;
            let probe = stdout.read_line(&mut line);
            match tokio::time::timeout(std::time::Duration::from_secs(10), probe).await {
                Ok(Ok(n)) if n > 0 => {}
                Ok(Ok(_)) => return Err("the session ended".to_string()),
                Ok(Err(e)) => return Err(e.to_string()),
                Err(_) => return Err("no answer within 10 s".to_string()),
            }
            let t1 = now_us();
            let ns: u128 = line
                .trim()
                .parse()
                .map_err(|_| format!("not a time in ns: {:?}", line.trim()))?;
            if i > 0 {
                out.push((t0, ns, t1));
            }
        }
        drop(stdin);
        let _ = child.wait().await;
        Ok(out)
    });
    let samples = samples.map_err(failed)?;
    samples
        .into_iter()
        .map(|(t0, ns, t1)| {
            let mid = (t0 + t1) / 2;
            ClockSample {
                at_us: mid,
                offset_us: (ns / 1000) as i64 - mid as i64,
                bound_us: (t1 - t0).div_ceil(2).max(1),
            }
        })
        .min_by_key(|s| s.bound_us)
        .ok_or_else(|| failed("no probe".into()))
}

/// A host's clock over a run: measured at its start and at its end.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HostClock {
    /// The host.
    pub host: Ipv4Addr,
    /// At the start (before any worker started).
    pub start: ClockSample,
    /// At the end (after the workers stopped); `None` when the run did not get there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<ClockSample>,
}

impl HostClock {
    /// The offset at `t_us` (host clock): interpolated between the two measurements, the
    /// start's alone when there is no end.
    pub fn offset_at(&self, t_us: u64) -> i64 {
        let Some(end) = self.end else {
            return self.start.offset_us;
        };
        let (a, b) = (self.start.at_us as i64, end.at_us as i64);
        if b <= a {
            return self.start.offset_us;
        }
        // the measurements are at coordinator times: find the coordinator time of `t_us`
        // (two rounds: drift is parts per million)
        let at = |coordinator: i64| {
            let c = coordinator.clamp(a, b);
            self.start.offset_us
                + ((end.offset_us - self.start.offset_us) as i128 * (c - a) as i128
                    / (b - a) as i128) as i64
        };
        let first = at(t_us as i64 - self.start.offset_us);
        at(t_us as i64 - first)
    }

    /// The error bound over the run: the larger of the two measurements'.
    pub fn bound_us(&self) -> u64 {
        self.end
            .map_or(self.start.bound_us, |e| e.bound_us.max(self.start.bound_us))
    }
}

/// `clocks.json` in a run directory: the worker hosts' clocks and which worker ran where.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Clocks {
    /// Every worker host's clock.
    pub hosts: Vec<HostClock>,
    /// Worker name (`producer-0`) → its host.
    pub workers: std::collections::BTreeMap<String, Ipv4Addr>,
}

/// The file name in a run directory.
pub const CLOCKS_JSON: &str = "clocks.json";

impl Clocks {
    /// Reads a run directory's `clocks.json` (none: every worker ran on the coordinator).
    pub fn load(run_dir: &Path) -> Result<Option<Clocks>, HarnessError> {
        let p = run_dir.join(CLOCKS_JSON);
        match std::fs::read_to_string(&p) {
            Ok(t) => serde_json::from_str(&t)
                .map(Some)
                .map_err(|e| HarnessError::BadInput(format!("{}: {e}", p.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(HarnessError::BadInput(format!("{}: {e}", p.display()))),
        }
    }

    /// Writes it (whole: a temporary file renamed).
    pub fn save(&self, run_dir: &Path) -> Result<(), HarnessError> {
        let p = run_dir.join(CLOCKS_JSON);
        let tmp = p.with_extension("json.part");
        std::fs::write(
            &tmp,
            serde_json::to_vec_pretty(self).map_err(anyhow::Error::from)?,
        )?;
        std::fs::rename(&tmp, &p)?;
        Ok(())
    }

    /// The clock of a worker's host (`None`: it ran on the coordinator).
    pub fn of_worker(&self, worker: &str) -> Option<&HostClock> {
        let host = self.workers.get(worker)?;
        self.hosts.iter().find(|h| h.host == *host)
    }

    /// The largest error bound of any host, µs.
    pub fn bound_us(&self) -> u64 {
        self.hosts
            .iter()
            .map(HostClock::bound_us)
            .max()
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at_s: u64, offset_ms: i64) -> ClockSample {
        ClockSample {
            at_us: at_s * 1_000_000,
            offset_us: offset_ms * 1000,
            bound_us: 2_000,
        }
    }

    #[test]
    fn a_drifting_clock_is_followed_between_the_two_measurements() {
        let c = HostClock {
            host: Ipv4Addr::LOCALHOST,
            start: sample(1_000, 3_000),
            end: Some(sample(1_100, 3_100)),
        };
        // host time = coordinator time + offset
        let near = |got: i64, want: i64| assert!((got - want).abs() <= 2, "{got} vs {want}");
        near(c.offset_at(1_000 * 1_000_000 + 3_000_000), 3_000_000);
        near(c.offset_at(1_050 * 1_000_000 + 3_050_000), 3_050_000);
        near(c.offset_at(1_100 * 1_000_000 + 3_100_000), 3_100_000);
        // outside the measured span: the nearer measurement
        assert_eq!(c.offset_at(900 * 1_000_000), 3_000_000);
        assert_eq!(c.offset_at(2_000 * 1_000_000), 3_100_000);
        let no_end = HostClock { end: None, ..c };
        assert_eq!(no_end.offset_at(1_050 * 1_000_000), 3_000_000);
    }
}
