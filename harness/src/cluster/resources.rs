//! What a node's process holds, read from `/proc`: open files, memory maps and resident
//! memory beside their limits. A broker holds at least one open file per partition
//! replica's log segment and maps each segment's indexes, so these are what bound the
//! partitions one machine holds — memory maps first, at Linux's default
//! `vm.max_map_count` of 65,530.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// A process's resources at one moment.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ProcessResources {
    /// Open file descriptors.
    pub open_files: u64,
    /// Its soft limit on them (`Max open files`), when readable.
    pub max_open_files: Option<u64>,
    /// Memory mappings (lines of `/proc/PID/maps`).
    pub memory_maps: u64,
    /// The machine's limit on them per process (`vm.max_map_count`), when readable.
    pub max_memory_maps: Option<u64>,
    /// Resident memory, MiB.
    pub rss_mib: u64,
}

impl ProcessResources {
    /// Reads process `pid`'s resources; `None` when it is gone or unreadable.
    pub fn of_pid(pid: u32) -> Option<ProcessResources> {
        let proc = Path::new("/proc").join(pid.to_string());
        let open_files = std::fs::read_dir(proc.join("fd")).ok()?.count() as u64;
        let memory_maps = std::fs::read_to_string(proc.join("maps"))
            .ok()?
            .lines()
            .count() as u64;
        let status = std::fs::read_to_string(proc.join("status")).ok()?;
        let rss_kib = field(&status, "VmRSS:").unwrap_or(0);
        let limits = std::fs::read_to_string(proc.join("limits")).unwrap_or_default();
        Some(ProcessResources {
            open_files,
            max_open_files: limits
                .lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse().ok()),
            memory_maps,
            max_memory_maps: std::fs::read_to_string("/proc/sys/vm/max_map_count")
                .ok()
                .and_then(|v| v.trim().parse().ok()),
            rss_mib: rss_kib / 1024,
        })
    }
}

/// Kafka's own advice for a broker's open files ("at least 100,000"): one per log
/// segment, plus sockets.
pub const KAFKA_OPEN_FILES: u64 = 1_048_576;

/// Raises this process's open-files limit for the nodes and workers it starts, which
/// inherit it: the soft limit to the hard one, and both to `want` where the process may
/// (root; at most the kernel's `fs.nr_open`). Returns the soft limit now. A machine whose
/// hard limit is low (20,000 on the one this was written on) would otherwise cap a broker
/// at about that many partition replicas, and Kafka would fail with "Too many open files"
/// rather than the harness saying why.
pub fn raise_open_files(want: u64) -> u64 {
    let nr_open: u64 = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(want);
    let want: libc::rlim_t = want.min(nr_open);
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit write/read only the struct passed
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_max < want {
            let raised = libc::rlimit {
                rlim_cur: want,
                rlim_max: want,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return want;
            }
        }
        if lim.rlim_cur < lim.rlim_max {
            let soft = libc::rlimit {
                rlim_cur: lim.rlim_max.min(want.max(lim.rlim_cur)),
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &soft) == 0 {
                return soft.rlim_cur;
            }
        }
        lim.rlim_cur
    }
}

/// The number after `key` on its line of a `/proc/PID/status` text.
fn field(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_files_maps_and_memory() {
        let r = ProcessResources::of_pid(std::process::id()).unwrap();
        assert!(r.open_files >= 3, "{r:?}");
        assert!(r.memory_maps > 10, "{r:?}");
        assert!(r.rss_mib >= 1, "{r:?}");
        assert!(r.max_open_files.is_some_and(|m| m >= r.open_files), "{r:?}");
        assert!(
            r.max_memory_maps.is_some_and(|m| m > r.memory_maps),
            "{r:?}"
        );
        // a process that is gone
        assert_eq!(ProcessResources::of_pid(u32::MAX), None);
    }

    #[test]
    fn the_open_files_limit_only_goes_up() {
        let before = ProcessResources::of_pid(std::process::id())
            .unwrap()
            .max_open_files
            .unwrap();
        let now = raise_open_files(before);
        assert!(now >= before, "{before} → {now}");
        // asking for less lowers nothing
        assert_eq!(raise_open_files(16), now);
    }

    #[test]
    fn status_fields_are_read_by_key() {
        let s = "Name:\tjava\nVmRSS:\t  524288 kB\nThreads:\t40\n";
        assert_eq!(field(s, "VmRSS:"), Some(524_288));
        assert_eq!(field(s, "VmSwap:"), None);
    }
}
