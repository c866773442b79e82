//! The discovery file: where a worker learns the cluster's bootstrap servers while it runs,
//! as seed 004's `kafka_discovery` files do. A migration that replaces the brokers rewrites
//! the file; every worker sees the change within a second, drains its client and connects a
//! new one to the new addresses — keeping its producer ids and sequence numbers.

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How often the file is looked at.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Watches one discovery file.
#[derive(Debug)]
pub struct Discovery {
    /// The file (`None`: the bootstrap never changes).
    path: Option<PathBuf>,
    /// The bootstrap servers in use.
    current: String,
    /// When the file was last read.
    last_check: Instant,
}

impl Discovery {
    /// Watches `path`, starting from `bootstrap`.
    pub fn new(path: Option<PathBuf>, bootstrap: &str) -> Discovery {
        Discovery {
            path,
            current: bootstrap.to_string(),
            last_check: Instant::now(),
        }
    }

    /// The bootstrap servers in use.
    pub fn current(&self) -> &str {
        &self.current
    }

    /// The new bootstrap servers when the file changed since the last call (read at most
    /// once a second; an empty or unreadable file changes nothing).
    pub fn changed(&mut self) -> Option<String> {
        let path = self.path.as_ref()?;
        if self.last_check.elapsed() < CHECK_EVERY {
            return None;
        }
        self.last_check = Instant::now();
        let text = std::fs::read_to_string(path).ok()?;
        let servers = text.trim();
        if servers.is_empty() || servers == self.current {
            return None;
        }
        self.current = servers.to_string();
        Some(self.current.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rewritten_file_is_seen_once_and_an_empty_one_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bootstrap");
        std::fs::write(&path, "a:9092\n").unwrap();
        let mut d = Discovery::new(Some(path.clone()), "a:9092");
        d.last_check -= CHECK_EVERY;
        assert_eq!(d.changed(), None, "unchanged");
        std::fs::write(&path, "b:9092,c:9092\n").unwrap();
        d.last_check -= CHECK_EVERY;
        assert_eq!(d.changed().as_deref(), Some("b:9092,c:9092"));
        d.last_check -= CHECK_EVERY;
        assert_eq!(d.changed(), None, "seen once");
        std::fs::write(&path, "").unwrap();
        d.last_check -= CHECK_EVERY;
        assert_eq!(d.changed(), None, "an empty file is a half-written one");
        assert_eq!(d.current(), "b:9092,c:9092");
        assert_eq!(Discovery::new(None, "x").changed(), None);
    }
}
