//! Graceful shutdown of a run, as a first-class value.
//!
//! Ctrl-C or SIGTERM sets the flag; every wait in the harness goes through
//! [`Shutdown::sleep`] or checks [`Shutdown::requested`], so the run stops at the next step
//! boundary (or wait), and then still stops the workers, tears the cluster down and writes
//! what it has. A second signal is not special: teardown is bounded anyway.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

static SIGNALLED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    SIGNALLED.store(true, Ordering::SeqCst);
}

/// A shareable "stop now" flag.
#[derive(Clone, Debug, Default)]
pub struct Shutdown {
    local: Arc<AtomicBool>,
}

impl Shutdown {
    /// A flag that only [`Shutdown::trigger`] sets (tests, embedding).
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// A flag also set by SIGINT and SIGTERM.
    pub fn on_signals() -> Shutdown {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
            libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
        }
        Shutdown::default()
    }

    /// True once a stop was asked for.
    pub fn requested(&self) -> bool {
        self.local.load(Ordering::SeqCst) || SIGNALLED.load(Ordering::SeqCst)
    }

    /// Asks for a stop.
    pub fn trigger(&self) {
        self.local.store(true, Ordering::SeqCst);
    }

    /// Sleeps `d`; returns true (early) when a stop was asked for.
    pub fn sleep(&self, d: Duration) -> bool {
        workers::shutdown::sleep_unless(d, || self.requested())
    }
}
