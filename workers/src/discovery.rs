//! The discovery file: where a worker learns the cluster's bootstrap servers while it runs,
//! as seed 004's `kafka_discovery` files do. A migration that replaces the brokers rewrites
//! the file; every worker sees the change within a second, drains its client and connects a
//! new one to the new addresses — keeping its producer ids and sequence numbers.
//!
//! ```text
//! file := SERVERS [CLUSTER] "\n" (ROLE " " SERVERS " " CLUSTER "\n")*
//! ```
//! The first line names the servers every worker uses; a line for a role (`produce`,
//! `consume`, `copy`: [`crate::Role::name`]) overrides it for that role's workers, so a
//! migration can move consumers and producers one after the other. `CLUSTER` says which
//! cluster the servers are (0, the default: the run's own; 1: MirrorMaker's target); a worker
//! logs it with each reconnection ([`crate::EventKind::Reconnected`]), since what it logs
//! after a move to another cluster carries that cluster's offsets.

use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How often the file is looked at.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// Watches one discovery file.
#[derive(Debug)]
pub struct Discovery {
    /// The file (`None`: the bootstrap never changes).
    path: Option<PathBuf>,
    /// The role whose line (when the file has one) names this worker's servers.
    role: String,
    /// The bootstrap servers in use.
    current: String,
    /// The cluster they belong to (0: the run's own).
    cluster: u8,
    /// When the file was last read.
    last_check: Instant,
}

/// What a discovery file says for `role`: its servers and their cluster (`None` for an
/// empty file, a half-written one).
pub fn parse(text: &str, role: &str) -> Option<(String, u8)> {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next()?;
    let line = |fields: &[&str]| -> Option<(String, u8)> {
        let servers = fields.first()?.to_string();
        let cluster = match fields.get(1) {
            Some(c) => c.parse().ok()?,
            None => 0,
        };
        Some((servers, cluster))
    };
    let everyone: Vec<&str> = first.split_whitespace().collect();
    for l in lines {
        let fields: Vec<&str> = l.split_whitespace().collect();
        if fields.first() == Some(&role) {
            return line(&fields[1..]);
        }
    }
    line(&everyone)
}

impl Discovery {
    /// Watches `path` for `role`'s servers, starting from `bootstrap` on the run's cluster.
    pub fn new(path: Option<PathBuf>, role: &str, bootstrap: &str) -> Discovery {
        Discovery {
            path,
            role: role.to_string(),
            current: bootstrap.to_string(),
            cluster: 0,
            last_check: Instant::now(),
        }
    }

    /// The bootstrap servers in use.
    pub fn current(&self) -> &str {
        &self.current
    }

    /// The cluster the servers in use belong to (0: the run's own, 1: MirrorMaker's target).
    pub fn cluster(&self) -> u8 {
        self.cluster
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
        let (servers, cluster) = parse(&text, &self.role)?;
        if servers == self.current && cluster == self.cluster {
            return None;
        }
        self.current = servers;
        self.cluster = cluster;
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
        let mut d = Discovery::new(Some(path.clone()), "produce", "a:9092");
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
        assert_eq!(d.cluster(), 0);
        assert_eq!(Discovery::new(None, "produce", "x").changed(), None);
    }

    #[test]
    fn a_roles_own_line_moves_only_that_role_and_says_its_cluster() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bootstrap");
        std::fs::write(&path, "a:9092\n").unwrap();
        let mut consume = Discovery::new(Some(path.clone()), "consume", "a:9092");
        let mut produce = Discovery::new(Some(path.clone()), "produce", "a:9092");
        let look = |d: &mut Discovery| {
            d.last_check -= CHECK_EVERY;
            d.changed()
        };
        // the consumers move to the target; the producers stay
        std::fs::write(&path, "a:9092\nconsume t:9092,u:9092 1\n").unwrap();
        assert_eq!(look(&mut consume).as_deref(), Some("t:9092,u:9092"));
        assert_eq!(consume.cluster(), 1);
        assert_eq!(look(&mut produce), None);
        assert_eq!(produce.cluster(), 0);
        // then the producers
        std::fs::write(&path, "a:9092\nconsume t:9092,u:9092 1\nproduce t:9092 1\n").unwrap();
        assert_eq!(look(&mut consume), None, "unchanged for the consumers");
        assert_eq!(look(&mut produce).as_deref(), Some("t:9092"));
        assert_eq!(produce.cluster(), 1);
        // the same servers named as another cluster is a change
        std::fs::write(&path, "t:9092 0\n").unwrap();
        assert_eq!(look(&mut produce).as_deref(), Some("t:9092"));
        assert_eq!(produce.cluster(), 0);
    }

    #[test]
    fn a_line_that_cannot_be_read_changes_nothing() {
        assert_eq!(parse("", "consume"), None);
        assert_eq!(
            parse("a:9092 x\n", "consume"),
            None,
            "a cluster that is no number"
        );
        assert_eq!(
            parse("a:9092\nconsume\n", "consume"),
            None,
            "a role line without servers"
        );
        assert_eq!(parse("a:9092 1", "copy"), Some(("a:9092".into(), 1)));
        assert_eq!(
            parse("a:9092\nconsume b:9092 1\n", "copy"),
            Some(("a:9092".into(), 0))
        );
    }
}
