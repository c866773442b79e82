//! `harness cleanup` never touches a live run: it removes what belongs to registered runs
//! whose coordinator is gone, names the live ones and the ones it has no record of, refuses
//! a live run named with `--run` unless forced, and takes a run directory for `--run`.
//!
//! Fast tier: the "runs" are tagged `sh` loops and a registry in a temporary cache
//! directory, so nothing of any other run on this machine is in scope.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use harness::rundir::coordinator::{start_ticks, Coordinator};

/// A process tagged `kmh.run=RUN` (as every process of a run is), killed on drop.
struct Tagged(Child);

impl Tagged {
    fn start(run: &str) -> Tagged {
        Tagged(
            Command::new("sh")
                .args(["-c", "while :; do sleep 1; done"])
                .arg(format!("kmh.run={run}"))
                .stdout(Stdio::null())
                .spawn()
                .unwrap(),
        )
    }

    /// Ended (waiting up to 5 s for it).
    fn gone(&mut self) -> bool {
        // a killed child is a zombie until reaped: try_wait reaps it
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match self.0.try_wait().unwrap() {
                Some(_) => return true,
                None if Instant::now() > deadline => return false,
                None => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// Running now.
    fn running(&mut self) -> bool {
        self.0.try_wait().unwrap().is_none()
    }
}

impl Drop for Tagged {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn register(cache: &Path, c: &Coordinator) {
    let dir = cache.join("live");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(format!("{}.json", c.run_id)),
        serde_json::to_vec(c).unwrap(),
    )
    .unwrap();
}

fn cleanup(cache: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_harness"))
        .arg("cleanup")
        .args(args)
        .env("KMH_CACHE_DIR", cache)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[test]
fn cleanup_removes_only_runs_whose_coordinator_is_gone() {
    let cache = tempfile::tempdir().unwrap();
    let salt = std::process::id();
    let (live, dead, unknown) = (
        format!("live-{salt}"),
        format!("dead-{salt}"),
        format!("unknown-{salt}"),
    );
    // the live run's coordinator is this test process; the dead one's pid is no process
    let me = std::process::id();
    register(
        cache.path(),
        &Coordinator {
            run_id: live.clone(),
            run_dir: "/nonexistent/live".into(),
            pid: me,
            start_ticks: start_ticks(me).unwrap(),
        },
    );
    register(
        cache.path(),
        &Coordinator {
            run_id: dead.clone(),
            run_dir: "/nonexistent/dead".into(),
            pid: u32::MAX - 1,
            start_ticks: 1,
        },
    );
    let (mut l, mut d, mut u) = (
        Tagged::start(&live),
        Tagged::start(&dead),
        Tagged::start(&unknown),
    );
    std::thread::sleep(Duration::from_millis(200));

    // a sweep: the dead run goes, the live and the unknown ones are named and kept
    let (code, text) = cleanup(cache.path(), &[]);
    assert_eq!(code, Some(0), "{text}");
    assert!(d.gone(), "the dead run's process is gone: {text}");
    assert!(l.running() && u.running(), "{text}");
    assert!(
        text.contains(&format!("left alone: run {live} is still running")),
        "{text}"
    );
    assert!(
        text.contains(&format!("left alone: run {unknown} has processes")),
        "{text}"
    );
    assert!(
        !cache
            .path()
            .join("live")
            .join(format!("{dead}.json"))
            .exists(),
        "a cleaned-up run is forgotten"
    );

    // the live run by name: refused, nothing removed
    let (code, text) = cleanup(cache.path(), &["--run", &live]);
    assert_eq!(code, Some(3), "{text}");
    assert!(
        text.contains("still running") && text.contains("--force"),
        "{text}"
    );
    assert!(l.running());

    // a run directory given for --run: its run, by the coordinator it records
    let run_dir = tempfile::tempdir().unwrap();
    std::fs::write(
        run_dir.path().join("coordinator.json"),
        serde_json::to_vec(&Coordinator {
            run_id: unknown.clone(),
            run_dir: run_dir.path().into(),
            pid: u32::MAX - 1,
            start_ticks: 1,
        })
        .unwrap(),
    )
    .unwrap();
    let dir_arg = run_dir.path().display().to_string();
    let (code, text) = cleanup(cache.path(), &["--run", &dir_arg]);
    assert_eq!(code, Some(0), "{text}");
    assert!(u.gone(), "{text}");
    assert!(
        text.contains(&format!("run {unknown} (from {dir_arg})")),
        "{text}"
    );
    assert!(text.contains("cleanup: 1 process(es) removed"), "{text}");

    // forced: the live run too
    let (code, text) = cleanup(cache.path(), &["--run", &live, "--force"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(l.gone(), "{text}");
}
