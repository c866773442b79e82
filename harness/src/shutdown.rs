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

/// Stops a child process (a JVM in its own process group: MirrorMaker, the oracle's Kafka
/// tools) the way its shutdown hook expects: SIGTERM, up to `grace` for it to exit, SIGKILL
/// after that (at once when `grace` is zero: a crash). True when it ended by itself (or
/// had already), false when it had to be killed.
pub fn stop_child(child: &mut std::process::Child, grace: Duration) -> bool {
    if child.try_wait().ok().flatten().is_some() {
        return true;
    }
    if !grace.is_zero() {
        // SAFETY: kill(2) on our own unreaped child.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + grace;
        while std::time::Instant::now() < deadline {
            if child.try_wait().ok().flatten().is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}

#[cfg(test)]
mod stop_child_tests {
    use super::stop_child;
    use std::process::Command;
    use std::time::Duration;

    #[test]
    fn a_child_ends_on_sigterm_and_one_that_ignores_it_is_killed_after_the_grace() {
        let mut polite = Command::new("sleep").arg("30").spawn().unwrap();
        assert!(stop_child(&mut polite, Duration::from_secs(10)));
        assert!(
            stop_child(&mut polite, Duration::from_secs(10)),
            "ended already"
        );
        let mut deaf = Command::new("sh")
            .args(["-c", "trap '' TERM; exec sleep 30"]) // ignored across exec
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(200)); // the trap in place
        assert!(!stop_child(&mut deaf, Duration::from_millis(300)));
        assert!(deaf.try_wait().unwrap().is_some());
        let mut crashed = Command::new("sleep").arg("30").spawn().unwrap();
        assert!(!stop_child(&mut crashed, Duration::ZERO));
    }
}
