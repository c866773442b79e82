//! Reading the ZooKeeper smoke test's log (`crate::zk::smoke` writes it): per-server
//! summaries and activity, unavailability windows per server and per ensemble (from its
//! first success on), and split brains from the heartbeats each server shows.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use super::windows::{Activity, Span};
pub use crate::zk::smoke::Probe;

/// How long a heartbeat may take to reach every member of one quorum.
const REPLICATION_ALLOWANCE_MS: u64 = 1_000;

/// A stretch in which one server of an ensemble did not see another's writes although
/// that one kept writing: the two were serving from different quorums (split brain).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Divergence {
    /// The server whose view was stale.
    pub server: String,
    /// The server it could not see.
    pub other: String,
    /// First and last evidence, ms since the run start.
    pub start_ms: u64,
    /// Last evidence.
    pub end_ms: u64,
}

/// Finds split brains among `members` (servers of one ensemble): at a beat of server S
/// at time t, another member R whose own beats succeeded up to t while S shows R's beat
/// more than `stale_ms` old. Evidence closer than `stale_ms` apart forms one stretch.
pub fn divergence(
    probes: &[Probe],
    members: &[String],
    t0_ms: u64,
    stale_ms: u64,
) -> Vec<Divergence> {
    // each member's successful beat times
    let mut wrote: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for p in probes.iter().filter(|p| p.op == "beat" && p.ok) {
        if members.contains(&p.server) {
            wrote.entry(p.server.as_str()).or_default().push(p.t_ms);
        }
    }
    let mut open: BTreeMap<(String, String), Divergence> = BTreeMap::new();
    let mut out = Vec::new();
    for p in probes
        .iter()
        .filter(|p| p.op == "beat" && p.ok && members.contains(&p.server))
    {
        let Some(seen) = &p.seen else { continue };
        for other in members.iter().filter(|m| **m != p.server) {
            let Some(times) = wrote.get(other.as_str()) else {
                continue;
            };
            // the other's latest write that finished a replication allowance before this
            // read: a write made a few ms earlier may not have reached this server yet
            let i = times.partition_point(|t| *t + REPLICATION_ALLOWANCE_MS <= p.t_ms);
            if i == 0 {
                continue;
            }
            let last_write = times[i - 1];
            let shown = seen.get(other).copied().unwrap_or(0);
            if last_write.saturating_sub(shown) <= stale_ms {
                continue;
            }
            let t = p.t_ms.saturating_sub(t0_ms);
            let key = (p.server.clone(), other.clone());
            match open.get_mut(&key) {
                Some(d) if t <= d.end_ms + stale_ms => d.end_ms = t,
                _ => {
                    if let Some(d) = open.insert(
                        key,
                        Divergence {
                            server: p.server.clone(),
                            other: other.clone(),
                            start_ms: t,
                            end_ms: t,
                        },
                    ) {
                        out.push(d);
                    }
                }
            }
        }
    }
    out.extend(open.into_values());
    out.sort_by_key(|d| (d.start_ms, d.server.clone(), d.other.clone()));
    out
}

/// Per-server results of a smoke log, ms relative to `t0_ms`.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ServerSummary {
    /// Operations attempted.
    pub operations: u64,
    /// Operations that failed.
    pub failures: u64,
    /// Median latency of successful operations, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
}

/// Reads a smoke log (skipping a torn last line).
pub fn read_log(path: &Path) -> std::io::Result<Vec<Probe>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

/// Per server: its summary, and its activity for the window finder. A probe tries without
/// pause, so each operation is an attempt from the end of the one before it (or from its own
/// start, for the first) to its end; a success is its end.
pub fn analyse(probes: &[Probe], t0_ms: u64) -> BTreeMap<String, (ServerSummary, Activity)> {
    let mut out: BTreeMap<String, (ServerSummary, Activity, Vec<u64>, Option<u32>)> =
        BTreeMap::new();
    for p in probes {
        let e = out.entry(p.server.clone()).or_default();
        e.0.operations += 1;
        let end = p.t_ms.saturating_sub(t0_ms) as u32;
        let start =
            e.3.unwrap_or_else(|| end.saturating_sub((p.us / 1000) as u32))
                .min(end);
        e.3 = Some(end);
        e.1.attempt(start, end.max(start + 1));
        if p.ok {
            e.1.success(end);
            e.2.push(p.us);
        } else {
            e.0.failures += 1;
        }
    }
    out.into_iter()
        .map(|(server, (mut summary, act, mut lat, _))| {
            lat.sort_unstable();
            let pct = |q: f64| {
                if lat.is_empty() {
                    0.0
                } else {
                    lat[((lat.len() - 1) as f64 * q) as usize] as f64 / 1000.0
                }
            };
            summary.p50_ms = pct(0.5);
            summary.p99_ms = pct(0.99);
            (server, (summary, act))
        })
        .collect()
}

/// Windows of `activity` that start after its first success: before a server (or an
/// ensemble) first served it did not exist yet — a dormant node, a target ensemble not yet
/// formed — and that is not unavailability.
fn after_first_success(act: &Activity, threshold_ms: u32) -> Vec<Span> {
    let Some(first) = act.first_success() else {
        return Vec::new();
    };
    act.windows(threshold_ms)
        .into_iter()
        .filter(|w| w.start >= first)
        .collect()
}

/// Unavailability windows of each server: stretches of failing operations (and the
/// reconnect attempts between them) with no success, longer than `threshold_ms`, from the
/// server's first success on.
pub fn windows(
    analysis: &BTreeMap<String, (ServerSummary, Activity)>,
    threshold_ms: u32,
) -> Vec<(String, Span)> {
    let mut out = Vec::new();
    for (server, (_, act)) in analysis {
        for w in after_first_success(act, threshold_ms) {
            out.push((server.clone(), w));
        }
    }
    out
}

/// Unavailability windows of a group of servers (an ensemble as its clients see it, with
/// every member in their connect string): stretches in which no member served, from the
/// group's first success on.
pub fn group_windows(
    analysis: &BTreeMap<String, (ServerSummary, Activity)>,
    members: &[String],
    threshold_ms: u32,
) -> Vec<Span> {
    let mut act = Activity::default();
    for m in members {
        if let Some((_, a)) = analysis.get(m) {
            act.merge(a);
        }
    }
    after_first_success(&act, threshold_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(t_ms: u64, server: &str, ok: bool) -> Probe {
        Probe {
            t_ms,
            server: server.into(),
            op: "get".into(),
            ok,
            us: 1000,
            error: None,
            seen: None,
        }
    }

    fn beat(t_ms: u64, server: &str, seen: &[(&str, u64)]) -> Probe {
        Probe {
            op: "beat".into(),
            seen: Some(seen.iter().map(|(s, t)| (s.to_string(), *t)).collect()),
            ..probe(t_ms, server, true)
        }
    }

    #[test]
    fn servers_that_see_each_other_do_not_diverge() {
        let mut v = Vec::new();
        for t in (0..20_000).step_by(200) {
            v.push(beat(t, "a", &[("a", t), ("b", t.saturating_sub(150))]));
            v.push(beat(t + 50, "b", &[("a", t), ("b", t + 50)]));
        }
        assert!(divergence(&v, &["a".into(), "b".into()], 0, 5000).is_empty());
    }

    #[test]
    fn a_server_that_just_joined_is_not_a_divergence() {
        // b writes its first beat at 10 s; a reads 20 ms later, before it replicated
        let mut v = Vec::new();
        for t in (0..20_000u64).step_by(200) {
            let b_seen: &[(&str, u64)] = if t > 10_000 {
                &[("a", t), ("b", t - 150)]
            } else {
                &[("a", t)]
            };
            v.push(beat(t, "a", b_seen));
            if t >= 10_000 {
                v.push(beat(t - 20, "b", &[("a", t - 20), ("b", t - 20)]));
            }
        }
        assert!(divergence(&v, &["a".into(), "b".into()], 0, 5000).is_empty());
        // but a server that never shows another's node while that one writes for > 5 s is
        // in another quorum
        let mut v = Vec::new();
        for t in (0..20_000u64).step_by(200) {
            v.push(beat(t, "a", &[("a", t)]));
            v.push(beat(t + 20, "b", &[("b", t + 20)]));
        }
        assert!(!divergence(&v, &["a".into(), "b".into()], 0, 5000).is_empty());
    }

    #[test]
    fn two_quorums_show_as_divergence_both_ways() {
        // from 6 s to 14 s, a and b write into different quorums: each sees the other's
        // beat frozen at 6 s
        let mut v = Vec::new();
        for t in (0..20_000u64).step_by(200) {
            let frozen = |x: u64| {
                if (6_000..14_000).contains(&t) {
                    6_000
                } else {
                    x
                }
            };
            v.push(beat(t, "a", &[("a", t), ("b", frozen(t))]));
            v.push(beat(t + 50, "b", &[("a", frozen(t)), ("b", t + 50)]));
        }
        let d = divergence(&v, &["a".into(), "b".into()], 0, 5000);
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(
            d.iter().all(|x| x.start_ms > 11_000 && x.end_ms < 14_100),
            "{d:?}"
        );
        // a server of another ensemble is not compared
        assert!(divergence(&v, &["a".into()], 0, 5000).is_empty());
    }

    /// `a` serves until 5 s, fails until 9 s, serves again; `b` is dormant until 7 s.
    fn two_servers() -> Vec<Probe> {
        let mut v = Vec::new();
        for t in (0..12_000).step_by(100) {
            v.push(probe(t, "a", !(5_000..9_000).contains(&t)));
            v.push(probe(t, "b", t >= 7_000));
        }
        v
    }

    #[test]
    fn a_dormant_server_is_not_unavailable_before_it_first_serves() {
        let a = analyse(&two_servers(), 0);
        let w = windows(&a, 1000);
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!(w[0].0, "a");
        assert!(w[0].1.start >= 4_900 && w[0].1.end == 9_000, "{w:?}");
    }

    #[test]
    fn a_group_is_down_only_while_no_member_serves() {
        let a = analyse(&two_servers(), 0);
        let both = group_windows(&a, &["a".into(), "b".into()], 1000);
        assert_eq!(both.len(), 1, "{both:?}");
        assert!(both[0].start >= 4_900 && both[0].end == 7_000, "{both:?}");
        // `b` alone: never down once it served
        assert!(group_windows(&a, &["b".into()], 1000).is_empty());
        // an unknown member changes nothing
        assert_eq!(group_windows(&a, &["a".into(), "zz".into()], 1000).len(), 1);
    }
}
