//! Helpers for the end-to-end tests in `tests/e2e/`: locate the built `harness`, run a
//! scenario under a watchdog, read its report, and make sure nothing of the run stays
//! behind — whatever the test's outcome.
//!
//! The tests need Java 17 and the Kafka distribution (fetched by Maven on first use). When
//! Java is missing they fail loudly with `NOT RUN:` — never pass.

pub mod browser;
pub mod moto;
pub mod ssh_hosts;
pub mod verdicts;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How many clusters the tests run at once on this machine: `KMH_TEST_CLUSTERS`, else 1.
///
/// Why one on this 2-core machine (measured, 2026-12): one scenario run already keeps both
/// cores ~75 % busy (brokers 105-130 % of a core, the producers 10-47 %: `rolling-restart`
/// at 50 and 250 records/s per producer), and two runs side by side took 268 s for what
/// takes 199 s one after the other (`broker-replacement-resume` on ZooKeeper and KRaft).
/// On a bigger machine `KMH_TEST_CLUSTERS=2` runs two at once; a test whose verdict or
/// assertions rest on tight timing (windows of a few seconds, latency), or that changes its
/// process's environment, still runs alone ([`cluster_lock_exclusive`]).
pub fn cluster_slots() -> usize {
    std::env::var("KMH_TEST_CLUSTERS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| *n >= 1)
        .unwrap_or(1)
}

/// One of the [`cluster_slots`] slots, across every test binary and every thread: an
/// exclusive lock on one slot's file in the temporary directory, held for the guard's life.
/// The harness's own cluster tests (`harness/tests/`) take the same slots, so a developer
/// running two test binaries at once still gets no more clusters than slots; the lock goes
/// with the process, also when a test panics or is killed.
pub fn cluster_lock() -> ClusterLock {
    Slots::here().shared()
}

/// Every cluster slot: for a test whose verdict or assertions rest on tight timing, or
/// that changes this process's environment — it runs with no other cluster beside it.
pub fn cluster_lock_exclusive() -> ClusterLock {
    Slots::here().exclusive()
}

/// Holds cluster slots ([`cluster_lock`], [`cluster_lock_exclusive`]) until dropped.
pub struct ClusterLock {
    _files: Vec<std::fs::File>,
}

/// `n` cluster slots as lock files in `dir` (flock: per open file, so threads of one
/// process exclude each other too), and a gate file.
struct Slots {
    dir: PathBuf,
    n: usize,
}

impl Slots {
    /// This machine's slots.
    fn here() -> Slots {
        Slots {
            dir: std::env::temp_dir(),
            n: cluster_slots(),
        }
    }

    /// The lock file of slot `i` (`None`: the gate). Slot 0 keeps the name of the one-slot
    /// lock it replaced.
    fn file(&self, i: Option<usize>) -> (PathBuf, std::fs::File) {
        let name = match i {
            None => "kmh-cluster-tests.gate.lock".to_string(),
            Some(0) => "kmh-cluster-tests.lock".to_string(),
            Some(i) => format!("kmh-cluster-tests.{i}.lock"),
        };
        let path = self.dir.join(name);
        let file = std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .unwrap_or_else(|e| {
                panic!(
                    "NOT RUN: cannot open the cluster lock {}: {e}",
                    path.display()
                )
            });
        (path, file)
    }

    /// Takes a lock file, waiting for it.
    fn take(&self, i: Option<usize>) -> std::fs::File {
        let (path, file) = self.file(i);
        file.lock().unwrap_or_else(|e| {
            panic!(
                "NOT RUN: cannot take the cluster lock {}: {e}",
                path.display()
            )
        });
        file
    }

    /// Any one free slot. A test waiting for a slot holds none (it tries each in turn, then
    /// waits), so it never blocks an exclusive test that holds some; it passes the gate
    /// first, which an exclusive test holds while it waits — no shared test starts then.
    fn shared(&self) -> ClusterLock {
        loop {
            let gate = self.take(None);
            for i in 0..self.n {
                let (path, file) = self.file(Some(i));
                match file.try_lock() {
                    Ok(()) => return ClusterLock { _files: vec![file] },
                    Err(std::fs::TryLockError::WouldBlock) => {}
                    Err(std::fs::TryLockError::Error(e)) => panic!(
                        "NOT RUN: cannot take the cluster lock {}: {e}",
                        path.display()
                    ),
                }
            }
            drop(gate);
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Every slot, in order (two exclusive tests never hold one each), holding the gate
    /// while it waits: the running shared tests end, no new one starts.
    fn exclusive(&self) -> ClusterLock {
        let gate = self.take(None);
        let files = (0..self.n).map(|i| self.take(Some(i))).collect();
        drop(gate);
        ClusterLock { _files: files }
    }
}

/// Why a test is in the slow tier: the reason given to `#[ignore]` on every test that
/// starts a cluster, a namespace or a container. `cargo test --workspace` runs the fast
/// tier; `-- --include-ignored` (the README's test command) runs both, `-- --ignored` the
/// slow tier alone.
pub const SLOW_TIER: &str = "slow tier: real clusters, namespaces or containers";

/// Longest any single run may take before the watchdog stops it.
pub const RUN_LIMIT: Duration = Duration::from_secs(600);

/// The `harness` binary built by `cargo test --workspace` (`$KMH_HARNESS_BIN` overrides).
pub fn harness_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("KMH_HARNESS_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let bin = profile_dir.join("harness");
    assert!(
        bin.exists(),
        "NOT RUN: no harness binary at {}; run the tests with `cargo test --workspace`",
        bin.display()
    );
    bin
}

/// Fails loudly (never passes) when the machine cannot run clusters.
pub fn require_prerequisites() {
    let java = Command::new("java")
        .arg("-version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        java,
        "NOT RUN: no working `java` on PATH; install a JDK 17 (see README)"
    );
}

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A fresh run directory under the target directory (kept after the test for debugging).
pub fn run_dir(name: &str) -> PathBuf {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap();
    let d = profile_dir.join("e2e-runs").join(format!("{name}-{stamp}"));
    std::fs::create_dir_all(d.parent().unwrap()).unwrap();
    d
}

/// Removes whatever a run left, on drop — also when the test panics.
pub struct RunGuard {
    /// The run directory.
    pub dir: PathBuf,
}

impl RunGuard {
    /// The run id, once `run.json` exists.
    pub fn run_id(&self) -> Option<String> {
        let text = std::fs::read_to_string(self.dir.join("run.json")).ok()?;
        let v: serde_json::Value = serde_json::from_str(&text).ok()?;
        v["run_id"].as_str().map(str::to_string)
    }
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        // the test owns this run: forced, in case its coordinator still runs (a failed
        // assertion before it ended)
        if let Some(id) = self.run_id() {
            let _ = Command::new(harness_bin())
                .args(["cleanup", "--run", &id, "--force"])
                .output();
        }
    }
}

/// Every live process tagged with a run id: pid and full command line.
fn tagged(run_id: &str) -> Vec<(u32, String)> {
    let needle = format!("kmh.run={run_id}");
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(raw) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&raw).replace('\0', " ");
        let zombie = std::fs::read_to_string(e.path().join("stat"))
            .map(|s| s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z')))
            .unwrap_or(true);
        if cmd.contains(&needle) && !zombie {
            out.push((pid, cmd));
        }
    }
    out
}

/// Processes tagged with a run id (as `harness cleanup` finds them), shortened for messages.
pub fn tagged_processes(run_id: &str) -> Vec<String> {
    tagged(run_id)
        .into_iter()
        .map(|(pid, cmd)| format!("{pid}: {}", &cmd[..cmd.len().min(100)]))
        .collect()
}

/// The pid of the run's process whose full command line contains `text` (a worker's config
/// file, say: the shortened lines of [`tagged_processes`] may end before it).
pub fn tagged_process_with(run_id: &str, text: &str) -> Option<u32> {
    tagged(run_id)
        .into_iter()
        .find(|(_, cmd)| cmd.contains(text))
        .map(|(pid, _)| pid)
}

/// A child process (a `harness run`) killed and reaped when this drops: a failed assertion
/// must not leave it running beside the next test's cluster.
pub struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `harness run SCENARIO --out DIR`.
pub fn start_run(scenario: &str, dir: &Path) -> Child {
    start_run_with(scenario, dir, &[])
}

/// Starts `harness run SCENARIO --out DIR ARGS…`.
pub fn start_run_with(scenario: &str, dir: &Path, args: &[&str]) -> Child {
    start_run_file(&Path::new("scenarios").join(scenario), dir, args)
}

/// Starts `harness run FILE --out DIR ARGS…` in the repository (a relative `FILE` is
/// relative to it).
pub fn start_run_file(scenario: &Path, dir: &Path, args: &[&str]) -> Child {
    // the run directory is given relative to the working directory, as the README's
    // `harness run` (into `runs/…`) does: nodes run in their own directories, so a
    // relative path that reached them unresolved would break the cluster
    let out = dir.strip_prefix(repo()).unwrap_or(dir);
    Command::new(harness_bin())
        .arg("run")
        .arg(scenario)
        .arg("--out")
        .arg(out)
        .args(args)
        .current_dir(repo())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting harness")
}

/// Waits for a child under the watchdog; on time-out stops it (SIGTERM, then SIGKILL).
pub fn wait_bounded(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if Instant::now() > deadline {
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let grace = Instant::now() + Duration::from_secs(60);
            while Instant::now() < grace {
                if child.try_wait().unwrap().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
            let _ = child.kill();
            panic!("harness run exceeded {limit:?} and was stopped");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Runs a `harness` command that must be refused before anything starts: exit 3 (the tool
/// could not run), no run directory, within two minutes (a refusal that regressed into a
/// real run is stopped, not waited for). Returns its stderr for the caller's words.
pub fn assert_refused_before_start(mut cmd: Command, dir: &Path) -> String {
    let stderr_path = dir.with_extension("stderr");
    let stderr = std::fs::File::create(&stderr_path).expect("a file for stderr");
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("starting harness");
    let status = wait_bounded(&mut child, Duration::from_secs(120));
    let err = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let _ = std::fs::remove_file(&stderr_path);
    assert_eq!(status.code(), Some(3), "{err}");
    assert!(!dir.exists(), "nothing was started or written: {err}");
    err
}

/// What a finished run gives a test.
pub struct Outcome {
    /// Exit code of `harness run`.
    pub code: i32,
    /// `report.json`.
    pub report: serde_json::Value,
    /// Its stdout (the summary).
    pub summary: String,
    /// Run directory and cleanup guard.
    pub guard: RunGuard,
}

/// Runs a scenario to the end and returns its report; asserts the run left no process.
pub fn run_scenario(scenario: &str) -> Outcome {
    run_scenario_on(scenario, &[])
}

/// [`run_scenario`] with more `harness run` arguments (e.g. `--backend docker`).
pub fn run_scenario_on(scenario: &str, args: &[&str]) -> Outcome {
    run_scenario_file(
        scenario.trim_end_matches(".toml"),
        &Path::new("scenarios").join(scenario),
        args,
    )
}

/// [`run_scenario_on`] with a scenario file of the test's own (`name` names its run
/// directory).
pub fn run_scenario_file(name: &str, scenario: &Path, args: &[&str]) -> Outcome {
    require_prerequisites();
    let dir = run_dir(name);
    let guard = RunGuard { dir: dir.clone() };
    let mut child = start_run_file(scenario, &dir, args);
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).unwrap();
        s
    });
    let status = wait_bounded(&mut child, RUN_LIMIT);
    let summary = reader.join().unwrap();
    println!("{summary}");
    let code = status.code().unwrap_or(-1);
    let report_path = dir.join("report.json");
    assert!(
        report_path.exists(),
        "no report.json (exit {code}); see {}",
        dir.display()
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    let id = guard.run_id().expect("run.json with a run id");
    let left = tagged_processes(&id);
    assert!(left.is_empty(), "the run left processes behind: {left:#?}");
    Outcome {
        code,
        report,
        summary,
        guard,
    }
}

/// Namespace hosts need root, iproute2 and iptables: without them the test is NOT RUN,
/// loudly (it fails with that message), never passed.
pub fn require_root() {
    let root = unsafe { libc::geteuid() } == 0;
    assert!(root, "NOT RUN: network namespaces need root");
    for tool in [["ip", "netns"], ["iptables", "-V"]] {
        let ok = Command::new(tool[0])
            .arg(tool[1])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        assert!(
            ok,
            "NOT RUN: `{}` missing (apt-get install iproute2 iptables)",
            tool[0]
        );
    }
}

/// A command's stdout.
pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Nothing of the run stays: no namespace, bridge, root firewall rule, qdisc or process.
/// The kernel frees a deleted namespace's veth pair asynchronously: allow it a few seconds.
pub fn assert_nothing_left(run_id: &str) {
    let tag = format!("{:06x}", workers::record::run_hash(run_id) & 0xff_ffff);
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline
        && (sh(&["ip", "netns", "list"]).contains(&format!("kmh-{tag}"))
            || sh(&["ip", "link", "show"]).contains(&tag))
    {
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(
        !sh(&["ip", "netns", "list"]).contains(&format!("kmh-{tag}")),
        "a namespace of {run_id} is left"
    );
    assert!(
        !sh(&["ip", "link", "show"]).contains(&tag),
        "an interface of {run_id} is left"
    );
    assert!(
        !sh(&["iptables-save"]).contains(run_id),
        "a firewall rule of {run_id} is left"
    );
    assert!(
        !sh(&["tc", "qdisc", "show"]).contains(&tag),
        "a qdisc of {run_id} is left"
    );
    assert!(
        tagged_processes(run_id).is_empty(),
        "processes of {run_id} are left: {:?}",
        tagged_processes(run_id)
    );
}

/// A count from a report field.
pub fn u(v: &serde_json::Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// The cluster snapshot the run recorded last before the step named `step` started (the
/// executor takes one before every step while a broker runs).
pub fn snapshot_before(dir: &Path, step: &str) -> serde_json::Value {
    let timeline = std::fs::read_to_string(dir.join("timeline.jsonl")).unwrap();
    let events: Vec<serde_json::Value> = timeline
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let at = events
        .iter()
        .position(|e| e["event"] == "step_start" && e["name"] == step)
        .unwrap_or_else(|| panic!("no step `{step}` in the timeline"));
    events[..at]
        .iter()
        .rev()
        .find(|e| e["event"] == "snapshot")
        .unwrap_or_else(|| panic!("no snapshot before `{step}`"))["snapshot"]
        .clone()
}

/// Waits until the run's first producer has acked `n` records (the cluster is up and the
/// workload runs); the run must still be going.
pub fn wait_producing(child: &mut Child, run_dir: &Path, n: u64, limit: Duration) {
    let deadline = Instant::now() + limit;
    while last_acked(run_dir, "producer-0") < n {
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        assert!(Instant::now() < deadline, "the producers never got going");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Waits (20 s at most) until a dead worker's log has come back to `log` (more than its
/// header): a backend copies it at the worker's death while the run goes on.
pub fn wait_log_back(log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !std::fs::metadata(log).is_ok_and(|m| m.len() > 128) {
        assert!(
            Instant::now() < deadline,
            "the dead worker's log {} did not come back",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The `acked` count of a worker's last status line (`workers/NAME.out`), 0 before any.
pub fn last_acked(run_dir: &Path, worker: &str) -> u64 {
    std::fs::read_to_string(run_dir.join("workers").join(format!("{worker}.out")))
        .unwrap_or_default()
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| u(&v["acked"]))
        .unwrap_or(0)
}

#[cfg(test)]
mod slot_tests {
    use super::*;
    use std::sync::mpsc;

    /// Whether `f` returns within `limit` (run on a thread; a blocked one is left behind
    /// and ends with the test process).
    fn within<T: Send + 'static>(
        limit: Duration,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(limit).ok()
    }

    #[test]
    fn two_slots_hold_two_clusters_and_an_exclusive_test_waits_for_both() {
        let dir = tempfile_dir();
        let slots = |n| Slots {
            dir: dir.clone(),
            n,
        };
        let a = slots(2).shared();
        let b = within(Duration::from_secs(5), {
            let s = slots(2);
            move || s.shared()
        })
        .expect("a second slot is free");
        let s = slots(2);
        let waiting = std::thread::spawn(move || s.exclusive());
        std::thread::sleep(Duration::from_millis(500));
        assert!(!waiting.is_finished(), "exclusive while two slots are held");
        // the exclusive test holds the gate: a third shared test waits too, even with a
        // slot free
        drop(a);
        let third = {
            let s = slots(2);
            std::thread::spawn(move || s.shared())
        };
        std::thread::sleep(Duration::from_millis(500));
        assert!(!waiting.is_finished(), "exclusive while one slot is held");
        drop(b);
        let all = waiting.join().unwrap();
        assert!(
            !third.is_finished(),
            "a shared test beside an exclusive one"
        );
        drop(all);
        drop(third.join().unwrap());
        // one slot: a second shared test waits
        let one = slots(1).shared();
        assert!(
            within(Duration::from_millis(600), {
                let s = slots(1);
                move || s.shared()
            })
            .is_none(),
            "two clusters on one slot"
        );
        drop(one);
    }

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("kmh-slot-test-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
