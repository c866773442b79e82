//! The ZooKeeper smoke test (seed 000 checked every stage of its migration with one).
//!
//! One probe per server, each with its own session to that server only, repeating: create
//! an ephemeral node, read it back while setting a watch, change it and see the watch fire,
//! delete it. Every operation is one JSON line in the log — `{"t_ms", "server", "op", "ok",
//! "us", "error"}` — flushed as it happens, so a run killed mid-way keeps what was measured.
//! The checker reads the log (`crate::check::smoke`): a server whose operations all fail
//! for longer than the window threshold was unavailable, and latency is summarised per
//! server.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use zookeeper_client::{Acls, Client, CreateMode, EventType};

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
/// Removes the probe znodes of the smoke test tagged `tag` (`/kmh-smoke-TAG-…` and their
/// children) from the ensemble at `servers`; returns how many top-level nodes went. A watch
/// does it at its end and `harness cleanup` after a killed one: on a cluster the harness
/// did not start, nothing of the run may stay.
pub async fn remove_nodes(servers: &str, tag: &str) -> Result<usize, zookeeper_client::Error> {
    use zookeeper_client::Error;
    let c = Client::connector()
        .with_session_timeout(Duration::from_secs(10))
        .with_connection_timeout(OP_TIMEOUT)
        .connect(servers)
        .await?;
    let prefix = format!("kmh-smoke-{tag}-");
    let mut removed = 0;
    for name in c.list_children("/").await? {
        if !name.starts_with(&prefix) {
            continue;
        }
        let path = format!("/{name}");
        for child in c.list_children(&path).await.unwrap_or_default() {
            match c.delete(&format!("{path}/{child}"), None).await {
                Ok(()) | Err(Error::NoNode) => {}
                Err(e) => return Err(e),
            }
        }
        match c.delete(&path, None).await {
            Ok(()) | Err(Error::NoNode) => removed += 1,
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}

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
