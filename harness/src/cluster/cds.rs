//! Class data sharing for the nodes' JVMs: an archive of the classes a ZooKeeper server or
//! a broker loads at start-up, made once per distribution and mapped by every later start.
//!
//! Why: on a 2-core machine a cluster's start is CPU-bound — six JVMs loading, verifying
//! and compiling the same classes at once. An archive (JDK's AppCDS) holds them parsed and
//! verified. It is made in two steps, as the JDK allows without a clean JVM exit: the first
//! node of a kind in a run without an archive records the classes it loads
//! (`-XX:DumpLoadedClassList`, written as they load); when that run's cluster is torn down,
//! the archive is dumped from the list (`-Xshare:dump`) and renamed into place. Runs at the
//! same time do not collide: one holds the kind's lock file (its run id inside), the
//! others run without. A run killed mid-way leaves a lock that a later run takes over once
//! it is older than [`STALE_LOCK`]. A JVM that cannot use an archive (another JDK, another
//! classpath) starts without it, so the archive is only ever a speed-up.
//!
//! Nodes that see the distribution at its own path (local processes and namespaces) map
//! the archive made here. An SSH host has the distribution at another path, and a JDK 17
//! archive is valid only for the classpath it was dumped with: the class list is kept
//! beside the archive ([`ClassArchive::kept_class_list`]) and each host dumps its own from
//! it when the distribution is installed there (`cluster::ssh`). A container's image has
//! none (its classpath differs, and images are built before any run records a list).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::dist::Distribution;

/// The archive of ZooKeeper servers.
pub const ZOOKEEPER: &str = "zookeeper";
/// The archive of brokers.
pub const BROKER: &str = "broker";

/// Both kinds.
pub const KINDS: [&str; 2] = [ZOOKEEPER, BROKER];

/// The archives' directory in a distribution (not copied to other hosts: each makes its own).
pub const DIR: &str = "cds";

/// A recording lock older than this belongs to a run that died.
const STALE_LOCK: Duration = Duration::from_secs(15 * 60);

/// The archive files of one kind of node (`zookeeper`, `broker`) of a distribution.
#[derive(Debug, Clone)]
pub struct ClassArchive {
    /// The archive the JVMs map.
    pub archive: PathBuf,
    /// The class list being recorded.
    list: PathBuf,
    /// Who records: holds the run id.
    lock: PathBuf,
    /// The class list the archive was dumped from, kept for other hosts' archives.
    kept: PathBuf,
    /// The `-cp` the archive is for.
    classpath: String,
}

impl ClassArchive {
    /// The archive of `kind` for `dist`.
    pub fn of(dist: &Distribution, kind: &str) -> ClassArchive {
        let dir = dist.home.join(DIR);
        ClassArchive {
            archive: dir.join(format!("{kind}.jsa")),
            list: dir.join(format!("{kind}.classlist")),
            lock: dir.join(format!("{kind}.lock")),
            kept: dir.join(format!("{kind}.classes")),
            classpath: dist.classpath(),
        }
    }

    /// The JVM flags for one node of run `run_id`: map the archive when there is one, or
    /// record the class list when no other node does.
    pub fn jvm_flags(&self, run_id: &str) -> Vec<String> {
        if self.archive.exists() {
            return vec![format!("-XX:SharedArchiveFile={}", self.archive.display())];
        }
        if self.take_lock(run_id) {
            return vec![format!("-XX:DumpLoadedClassList={}", self.list.display())];
        }
        Vec::new()
    }

    /// Takes the recording lock for `run_id` (again, when it holds it already).
    fn take_lock(&self, run_id: &str) -> bool {
        let Some(dir) = self.lock.parent() else {
            return false;
        };
        if std::fs::create_dir_all(dir).is_err() {
            return false;
        }
        if std::fs::read_to_string(&self.lock).is_ok_and(|owner| owner == run_id) {
            // a second node of the kind in the same run: one records
            return false;
        }
        let stale = std::fs::metadata(&self.lock)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().unwrap_or_default() > STALE_LOCK);
        if stale {
            let _ = std::fs::remove_file(&self.lock);
            let _ = std::fs::remove_file(&self.list);
        }
        let created = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&self.lock);
        match created {
            Ok(_) => std::fs::write(&self.lock, run_id).is_ok(),
            Err(_) => false,
        }
    }

    /// After run `run_id`'s nodes have stopped: when it recorded the class list, dumps the
    /// archive from it and releases the lock. Errors leave no archive (and are said).
    pub fn finish(&self, run_id: &str) {
        if !std::fs::read_to_string(&self.lock).is_ok_and(|owner| owner == run_id) {
            return;
        }
        // a recording node that never started (a dormant one) leaves no list: the next
        // run records instead, nothing to say
        let listed = std::fs::metadata(&self.list).map(|m| m.len()).unwrap_or(0);
        if listed > 0 {
            match self.dump() {
                Ok(()) => {
                    tracing::info!(
                        "class data sharing archive made: {}",
                        self.archive.display()
                    );
                    let _ = std::fs::rename(&self.list, &self.kept);
                }
                Err(e) => tracing::warn!(
                    "no class data sharing archive ({}): {e}",
                    self.archive.display()
                ),
            }
        }
        let _ = std::fs::remove_file(&self.list);
        let _ = std::fs::remove_file(&self.lock);
    }

    /// The class list this machine's archive was dumped from, when there is one: another
    /// host dumps its own archive from it ([`host_dump_script`]).
    pub fn kept_class_list(&self) -> Option<&Path> {
        let kept = std::fs::metadata(&self.kept).is_ok_and(|m| m.len() > 0);
        (kept && self.archive.exists()).then_some(self.kept.as_path())
    }

    fn dump(&self) -> Result<(), String> {
        let tmp = self.archive.with_extension("jsa.tmp");
        let out = Command::new("java")
            .arg("-Xshare:dump")
            .arg(format!("-XX:SharedClassListFile={}", self.list.display()))
            .arg(format!("-XX:SharedArchiveFile={}", tmp.display()))
            .arg("-cp")
            .arg(&self.classpath)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("java: {e}"))?;
        if !out.status.success() {
            let _ = std::fs::remove_file(&tmp);
            let err = String::from_utf8_lossy(&out.stderr);
            return Err(format!("java -Xshare:dump: {} {}", out.status, err.trim()));
        }
        std::fs::rename(&tmp, &self.archive).map_err(|e| e.to_string())
    }
}

/// A shell script that makes, on another host, the archive of `kind` for the distribution
/// at `dist_home` there, from the class list already copied to [`host_class_list`]: nothing
/// when the archive is there; dumped to a file of its own and renamed (hosts sharing a disk
/// never map a half-written one). Its output goes to `KIND.jsa.log` beside it.
pub fn host_dump_script(java: &str, dist_home: &str, kind: &str) -> String {
    let q = crate::cluster::ssh::quote;
    let dir = format!("{dist_home}/{DIR}");
    let archive = q(&format!("{dir}/{kind}.jsa"));
    format!(
        "test -s {archive} && exit 0; t={archive}.part.$$; {java} -Xshare:dump -XX:SharedClassListFile={list} -XX:SharedArchiveFile=\"$t\" -cp {cp} >{log} 2>&1 && mv -f \"$t\" {archive} || {{ rm -f \"$t\"; exit 1; }}",
        java = q(java),
        list = q(&host_class_list(dist_home, kind)),
        cp = q(&format!("{dist_home}/libs/*")),
        log = q(&format!("{dir}/{kind}.jsa.log")),
    )
}

/// Where [`host_dump_script`] reads the class list of `kind` on another host.
pub fn host_class_list(dist_home: &str, kind: &str) -> String {
    format!("{dist_home}/{DIR}/{kind}.classes")
}

/// The archive of `kind` on another host, once [`host_dump_script`] made it.
pub fn host_archive(dist_home: &str, kind: &str) -> String {
    format!("{dist_home}/{DIR}/{kind}.jsa")
}

/// True when a node that sees `dir` as `seen` and runs `classpath` can map an archive made
/// here: its files are this machine's.
pub fn shareable(dir: &Path, seen: &Path, classpath: &str, dist: &Distribution) -> bool {
    dir == seen && classpath == dist.classpath()
}
