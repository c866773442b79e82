//! Graceful shutdown of a run, as a first-class value.
//!
//! Ctrl-C or SIGTERM sets the flag; every wait in the harness goes through
//! [`Shutdown::sleep`] or checks [`Shutdown::requested`], so the run stops at the next step
//! boundary (or wait), and then still stops the workers, tears the cluster down and writes
//! what it has. A second signal is not special to `run`: teardown is bounded anyway. A
//! `watch` ends its watching at the first signal and still drains, reads back and checks;
//! [`Shutdown::next_signal`] gives it a flag only the next signal sets, to abandon that.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// SIGINT/SIGTERM received so far.
static SIGNALS: AtomicU32 = AtomicU32::new(0);

extern "C" fn on_signal(_: libc::c_int) {
    SIGNALS.fetch_add(1, Ordering::SeqCst);
}

/// A shareable "stop now" flag.
#[derive(Clone, Debug)]
pub struct Shutdown {
    /// Set by [`Shutdown::trigger`].
    local: Arc<AtomicBool>,
    /// The signal count at which a stop counts as asked for (1: the first signal).
    signals_needed: u32,
}

impl Default for Shutdown {
    fn default() -> Shutdown {
        Shutdown {
            local: Arc::default(),
            signals_needed: 1,
        }
    }
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
        self.local.load(Ordering::SeqCst) || SIGNALS.load(Ordering::SeqCst) >= self.signals_needed
    }

    /// A new flag that only a signal after the ones received so far sets (or its own
    /// [`Shutdown::trigger`]): what still may be stopped once the first Ctrl-C was taken
    /// as "finish now".
    pub fn next_signal() -> Shutdown {
        Shutdown {
            local: Arc::default(),
            signals_needed: SIGNALS.load(Ordering::SeqCst) + 1,
        }
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
