//! The one-line JSON status each worker prints every second; the harness tails it for live
//! progress (`{"role":"produce","worker":0,"t_ms":…,"sent":…,"acked":…,…}`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::log::LogWriter;
use crate::shutdown::Shutdown;

/// Counters a worker updates as it goes and prints once a second.
#[derive(Default, Debug)]
pub struct Counters {
    /// Records handed to the client / delivered to the application.
    pub sent: AtomicU64,
    /// Acknowledged by the broker.
    pub acked: AtomicU64,
    /// Definite failures.
    pub failed: AtomicU64,
    /// Unknown outcomes.
    pub indeterminate: AtomicU64,
    /// Records received (consumers, final read).
    pub received: AtomicU64,
    /// Client errors seen (not per record).
    pub errors: AtomicU64,
    /// Client instances reconnected to new bootstrap servers (discovery file changes).
    pub switches: AtomicU64,
}

impl Counters {
    /// Adds one to a counter.
    pub fn bump(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Prints the status line.
    pub fn print(&self, role: &str, worker: u32) {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        println!(
            "{{\"role\":\"{role}\",\"worker\":{worker},\"t_ms\":{},\"sent\":{},\"acked\":{},\"failed\":{},\"indeterminate\":{},\"received\":{},\"errors\":{},\"switches\":{}}}",
            crate::clock::now_ms(),
            g(&self.sent),
            g(&self.acked),
            g(&self.failed),
            g(&self.indeterminate),
            g(&self.received),
            g(&self.errors),
            g(&self.switches)
        );
    }
}

/// Background thread that flushes the log every 100 ms and prints the status line every
/// second, so a quiet worker (nothing acked during an outage) still keeps its log current.
pub(crate) struct Ticker {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<()>,
}

impl Ticker {
    pub(crate) fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.handle.join();
    }
}

pub(crate) fn spawn_ticker(
    role: &'static str,
    worker: u32,
    log: Arc<Mutex<LogWriter>>,
    counters: Arc<Counters>,
    _shutdown: Shutdown,
) -> Ticker {
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let handle = std::thread::spawn(move || {
        let mut last_status = Instant::now();
        while !s.load(Ordering::SeqCst) {
            std::thread::sleep(crate::log::FLUSH_INTERVAL);
            let _ = log.lock().unwrap().flush();
            if last_status.elapsed() >= Duration::from_secs(1) {
                counters.print(role, worker);
                last_status = Instant::now();
            }
        }
    });
    Ticker { stop, handle }
}
