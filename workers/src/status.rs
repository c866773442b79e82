//! The one-line JSON status each worker prints every second; the harness tails it for live
//! progress (`{"role":"produce","worker":0,"t_ms":…,"sent":…,"acked":…,…}`).

use std::sync::atomic::{AtomicU64, Ordering};

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
            "{{\"role\":\"{role}\",\"worker\":{worker},\"t_ms\":{},\"sent\":{},\"acked\":{},\"failed\":{},\"indeterminate\":{},\"received\":{},\"errors\":{}}}",
            crate::clock::now_ms(),
            g(&self.sent),
            g(&self.acked),
            g(&self.failed),
            g(&self.indeterminate),
            g(&self.received),
            g(&self.errors)
        );
    }
}
