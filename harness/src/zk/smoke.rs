//! The ZooKeeper smoke test (seed 000 checked every stage of its migration with one).
//!
//! One probe per server, each with its own session to that server only, repeating: create
//! an ephemeral node, read it back while setting a watch, change it and see the watch fire,
//! delete it. Every operation is one JSON line in the log — `{"t_ms", "server", "op", "ok",
//! "us", "error"}` — flushed as it happens, so a run killed mid-way keeps what was measured.
//! The checker reads the log: a server whose operations all fail for longer than the window
//! threshold was unavailable ([`windows`]), and latency is summarised per server.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use zookeeper_client::{Acls, Client, CreateMode, EventType};

use crate::check::windows::Activity;

/// One operation of a probe.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Probe {
    /// When it ended, ms since epoch.
    pub t_ms: u64,
    /// The server probed (`host:port`).
    pub server: String,
    /// `connect`, `create`, `get`, `set`, `watch`, `delete`.
    pub op: String,
    /// Whether it succeeded.
    pub ok: bool,
    /// How long it took, µs.
    pub us: u64,
    /// The error, when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// For a `beat`: the last heartbeat (ms since epoch) of each server, as this server
    /// shows them. Servers of one ensemble see each other's beats advance; a server that
    /// keeps showing another's beat old while that one keeps writing is in another quorum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen: Option<BTreeMap<String, u64>>,
}

const OP_TIMEOUT: Duration = Duration::from_secs(3);

async fn timed<T, E: std::fmt::Display>(
    f: impl std::future::Future<Output = Result<T, E>>,
) -> (Result<T, String>, u64) {
    let start = Instant::now();
    let r = match tokio::time::timeout(OP_TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer in {OP_TIMEOUT:?}")),
    };
    (r, start.elapsed().as_micros() as u64)
}

/// Probes every server until `stop` says so, appending to `log` (one line per operation).
pub async fn run(
    servers: Vec<String>,
    tag: String,
    log: &Path,
    interval: Duration,
    stop: impl Fn() -> bool + Send + Sync + Clone + 'static,
) -> std::io::Result<()> {
    let file = std::fs::File::options()
        .create(true)
        .append(true)
        .open(log)?;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Probe>();
    for server in servers {
        let (tx, stop, tag) = (tx.clone(), stop.clone(), tag.clone());
        tokio::spawn(async move { probe_server(server, tag, interval, tx, stop).await });
    }
    drop(tx);
    let mut out = std::io::BufWriter::new(file);
    while let Some(p) = rx.recv().await {
        writeln!(out, "{}", serde_json::to_string(&p).unwrap_or_default())?;
        out.flush()?;
    }
    Ok(())
}

async fn probe_server(
    server: String,
    tag: String,
    interval: Duration,
    tx: tokio::sync::mpsc::UnboundedSender<Probe>,
    stop: impl Fn() -> bool,
) {
    let report = |op: &str, r: &Result<(), String>, us: u64| {
        let _ = tx.send(Probe {
            t_ms: workers::clock::now_ms(),
            server: server.clone(),
            op: op.into(),
            ok: r.is_ok(),
            us,
            error: r.as_ref().err().cloned(),
            seen: None,
        });
    };
    let report_beat = |r: Result<BTreeMap<String, u64>, String>, us: u64| {
        let _ = tx.send(Probe {
            t_ms: workers::clock::now_ms(),
            server: server.clone(),
            op: "beat".into(),
            ok: r.is_ok(),
            us,
            error: r.as_ref().err().cloned(),
            seen: r.ok(),
        });
    };
    let beats = format!("/kmh-smoke-{tag}-beats");
    let node = format!("/kmh-smoke-{tag}-{}", server.replace([':', '.'], "_"));
    let mut client: Option<Client> = None;
    while !stop() {
        let cycle = Instant::now();
        if client.as_ref().is_none_or(|c| c.state().is_terminated()) {
            let (r, us) = timed(
                Client::connector()
                    .with_session_timeout(Duration::from_secs(6))
                    .with_connection_timeout(OP_TIMEOUT)
                    .connect(&server),
            )
            .await;
            report("connect", &r.as_ref().map(|_| ()).map_err(Clone::clone), us);
            client = r.ok();
        }
        if let Some(c) = &client {
            if !cycle_once(c, &node, &report).await {
                client = None; // start over with a fresh session
            } else {
                let (r, us) = timed(beat(c, &beats, &server)).await;
                report_beat(r, us);
            }
        }
        let spent = cycle.elapsed();
        if spent < interval {
            tokio::time::sleep(interval - spent).await;
        }
    }
}

/// One create/get+watch/set/watch-fires/delete cycle; false when the session should be
/// replaced.
async fn cycle_once(
    c: &Client,
    node: &str,
    report: &impl Fn(&str, &Result<(), String>, u64),
) -> bool {
    let (r, us) = timed(c.create(
        node,
        b"0",
        &CreateMode::Ephemeral.with_acls(Acls::anyone_all()),
    ))
    .await;
    // a node left by the last, interrupted cycle is fine
    let r = match r {
        Err(e) if e.contains("node already exists") || e.contains("NodeExists") => Ok(()),
        other => other.map(|_| ()),
    };
    report("create", &r, us);
    if r.is_err() {
        return false;
    }
    let (r, us) = timed(c.get_and_watch_data(node)).await;
    let watcher = match r {
        Ok((_, _, w)) => {
            report("get", &Ok(()), us);
            w
        }
        Err(e) => {
            report("get", &Err(e), us);
            return false;
        }
    };
    let (r, us) = timed(c.set_data(node, b"1", None)).await;
    report("set", &r.as_ref().map(|_| ()).map_err(Clone::clone), us);
    if r.is_err() {
        return false;
    }
    let start = Instant::now();
    let fired = tokio::time::timeout(OP_TIMEOUT, watcher.changed()).await;
    let r = match fired {
        Ok(e) if e.event_type == EventType::NodeDataChanged => Ok(()),
        Ok(e) => Err(format!("watch fired with {:?}", e.event_type)),
        Err(_) => Err(format!("watch did not fire in {OP_TIMEOUT:?}")),
    };
    report("watch", &r, start.elapsed().as_micros() as u64);
    let (d, us) = timed(c.delete(node, None)).await;
    report("delete", &d.as_ref().map(|_| ()).map_err(Clone::clone), us);
    r.is_ok() && d.is_ok()
}

/// Writes this server's heartbeat (`SERVER|MS` in a persistent node of its own) and reads
/// every server's.
async fn beat(
    c: &Client,
    dir: &str,
    server: &str,
) -> Result<BTreeMap<String, u64>, zookeeper_client::Error> {
    use zookeeper_client::Error;
    let persistent = CreateMode::Persistent.with_acls(Acls::anyone_all());
    let mine = format!("{dir}/{}", server.replace([':', '.'], "_"));
    let data = format!("{server}|{}", workers::clock::now_ms());
    match c.set_data(&mine, data.as_bytes(), None).await {
        Ok(_) => {}
        Err(Error::NoNode) => {
            match c.create(dir, b"", &persistent).await {
                Ok(_) | Err(Error::NodeExists) => {}
                Err(e) => return Err(e),
            }
            match c.create(&mine, data.as_bytes(), &persistent).await {
                Ok(_) => {}
                Err(Error::NodeExists) => {
                    c.set_data(&mine, data.as_bytes(), None).await?;
                }
                Err(e) => return Err(e),
            }
        }
        Err(e) => return Err(e),
    }
    let mut seen = BTreeMap::new();
    for name in c.list_children(dir).await? {
        let (d, _) = match c.get_data(&format!("{dir}/{name}")).await {
            Ok(v) => v,
            Err(Error::NoNode) => continue,
            Err(e) => return Err(e),
        };
        let text = String::from_utf8_lossy(&d);
        if let Some((who, ms)) = text.rsplit_once('|') {
            if let Ok(ms) = ms.parse() {
                seen.insert(who.to_string(), ms);
            }
        }
    }
    Ok(seen)
}

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
fn after_first_success(act: &Activity, threshold_ms: u32) -> Vec<crate::check::windows::Span> {
    let Some(first) = act.success.min() else {
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
) -> Vec<(String, crate::check::windows::Span)> {
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
) -> Vec<crate::check::windows::Span> {
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
