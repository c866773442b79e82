//! A delaying TCP proxy: how `delay` works on kernels without the netem qdisc.
//!
//! A broker that may be delayed listens on `127.0.0.1:19092` inside its namespace; this
//! proxy, in the same namespace, listens on the broker's advertised address and relays
//! every connection (clients, other brokers, the controller). Each chunk read from either
//! side is written to the other `latency / 2` (± `jitter / 2`) later, so a round trip takes
//! `latency` more; chunks never overtake each other. The latency is read every 100 ms from a
//! control file holding `LATENCY_MS JITTER_MS` (missing or `0 0`: no delay), which the
//! `delay` and `heal` steps write.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The current per-direction delay and jitter, in µs, shared by every pump.
#[derive(Default)]
struct Latency {
    one_way_us: AtomicU64,
    jitter_us: AtomicU64,
}

/// Writes the control file a running proxy reads (round-trip latency and jitter).
pub fn set_delay(control: &Path, latency_ms: u64, jitter_ms: u64) -> std::io::Result<()> {
    let tmp = control.with_extension("tmp");
    std::fs::write(&tmp, format!("{latency_ms} {jitter_ms}\n"))?;
    std::fs::rename(tmp, control)
}

fn read_control(control: &Path, lat: &Latency) {
    let text = std::fs::read_to_string(control).unwrap_or_default();
    let mut it = text
        .split_whitespace()
        .map(|w| w.parse::<u64>().unwrap_or(0));
    let (l, j) = (it.next().unwrap_or(0), it.next().unwrap_or(0));
    lat.one_way_us.store(l * 500, Ordering::Relaxed);
    lat.jitter_us.store(j * 500, Ordering::Relaxed);
}

/// Runs the proxy until killed.
pub fn run(listen: SocketAddr, target: SocketAddr, control: PathBuf) -> std::io::Result<()> {
    let listener = TcpListener::bind(listen)?;
    let lat = Arc::new(Latency::default());
    {
        let lat = lat.clone();
        std::thread::spawn(move || loop {
            read_control(&control, &lat);
            std::thread::sleep(Duration::from_millis(100));
        });
    }
    let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(std::process::id());
    for conn in listener.incoming() {
        let Ok(client) = conn else { continue };
        let server = match TcpStream::connect_timeout(&target, Duration::from_secs(5)) {
            Ok(s) => s,
            Err(_) => continue, // the node is down: the client sees the connection close
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        for (from, to, s) in [
            (client.try_clone()?, server.try_clone()?, seed),
            (server, client, seed.rotate_left(17)),
        ] {
            let lat = lat.clone();
            std::thread::spawn(move || pump(from, to, lat, s));
        }
    }
    Ok(())
}

/// Relays one direction: a reader thread stamps each chunk with its due time, this thread
/// writes it when due.
fn pump(mut from: TcpStream, mut to: TcpStream, lat: Arc<Latency>, mut rng: u64) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    let from_handle = from.try_clone();
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        let mut last_due = Instant::now();
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let base = lat.one_way_us.load(Ordering::Relaxed);
            let jitter = lat.jitter_us.load(Ordering::Relaxed);
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let offset = if jitter > 0 {
                (rng % (2 * jitter + 1)) as i64 - jitter as i64
            } else {
                0
            };
            let us = (base as i64 + offset).max(0) as u64;
            // never before an earlier chunk: a stream keeps its order
            let due = (Instant::now() + Duration::from_micros(us)).max(last_due);
            last_due = due;
            if tx.send((due, buf[..n].to_vec())).is_err() {
                break;
            }
        }
        let _ = from.shutdown(Shutdown::Read);
    });
    for (due, chunk) in rx {
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        if to.write_all(&chunk).is_err() {
            // the other side is gone: stop reading this one too
            if let Ok(h) = &from_handle {
                let _ = h.shutdown(Shutdown::Both);
            }
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = reader.join();
}
