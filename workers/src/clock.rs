//! The one clock every worker and the harness use: wall-clock microseconds since the epoch.

use std::time::{SystemTime, UNIX_EPOCH};

/// Identifies the clock a log's timestamps come from (stored in the log header).
pub const CLOCK_REALTIME_US: u8 = 1;

/// Microseconds since the Unix epoch, from the host's real-time clock.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    now_us() / 1000
}
