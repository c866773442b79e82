//! ZooKeeper operations: the four-letter-word status commands (`srvr`, `mntr`), the
//! readiness check of every ZooKeeper node; and [`tree`], subtree copy and diff between
//! ensembles (`harness zk copy`, `harness zk diff`); [`reconfig`], dynamic reconfiguration;
//! [`smoke`], the smoke test; [`metadata`], the end-of-run check of Kafka's znodes;
//! [`migration`], what a ZooKeeper→KRaft migration reads and leaves there.

pub mod metadata;
pub mod migration;
pub mod reconfig;
pub mod smoke;
pub mod tree;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Splits a connect string `host:port,host:port/chroot` into its servers and its chroot
/// (`""` when none).
pub fn split_connect(connect: &str) -> (Vec<String>, String) {
    let (servers, chroot) = match connect.find('/') {
        Some(i) => (&connect[..i], connect[i..].trim_end_matches('/')),
        None => (connect, ""),
    };
    (
        servers
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect(),
        chroot.to_string(),
    )
}

/// Sends a four-letter word (e.g. `srvr`) and returns the whole answer.
pub fn four_letter_word(
    addr: SocketAddr,
    word: &str,
    timeout: Duration,
) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    s.write_all(word.as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// The server's `Mode:` (`leader`, `follower`, `observer`, `standalone`), or `None` when it
/// does not serve (not running, or not in a quorum: "This ZooKeeper instance is not
/// currently serving requests").
pub fn server_mode(addr: SocketAddr) -> Option<String> {
    let answer = four_letter_word(addr, "srvr", Duration::from_secs(2)).ok()?;
    answer
        .lines()
        .find_map(|l| l.strip_prefix("Mode: ").map(|m| m.trim().to_string()))
}
