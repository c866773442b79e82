//! Graceful shutdown for a worker: SIGTERM or SIGINT sets a flag that every loop polls, so
//! the worker stops sending, settles what is in flight and flushes its log before it exits.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

static SIGNALLED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    SIGNALLED.store(true, Ordering::SeqCst);
}

/// The process-wide "please stop" flag, set by SIGTERM/SIGINT or by [`Shutdown::trigger`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Shutdown;

impl Shutdown {
    /// Installs the signal handlers and returns the flag.
    pub fn install() -> Shutdown {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
            libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        }
        Shutdown
    }

    /// True once a stop was asked for.
    pub fn requested(&self) -> bool {
        SIGNALLED.load(Ordering::SeqCst)
    }

    /// Sleeps for `d`, waking early (returning true) when a stop is asked for.
    pub fn sleep(&self, d: Duration) -> bool {
        sleep_unless(d, || self.requested())
    }
}

/// Sleeps for `d` in short naps, returning true as soon as `stop()` holds (false when the
/// whole time passed). Every wait of the harness and the workers goes through it.
pub fn sleep_unless(d: Duration, stop: impl Fn() -> bool) -> bool {
    let end = Instant::now() + d;
    loop {
        if stop() {
            return true;
        }
        let now = Instant::now();
        if now >= end {
            return false;
        }
        std::thread::sleep((end - now).min(Duration::from_millis(20)));
    }
}
