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
        });
    };
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

/// Unavailability windows of each server: stretches of failing operations (and the
/// reconnect attempts between them) with no success, longer than `threshold_ms`.
pub fn windows(
    analysis: &BTreeMap<String, (ServerSummary, Activity)>,
    threshold_ms: u32,
) -> Vec<(String, crate::check::windows::Span)> {
    let mut out = Vec::new();
    for (server, (_, act)) in analysis {
        for w in act.windows(threshold_ms) {
            out.push((server.clone(), w));
        }
    }
    out
}
