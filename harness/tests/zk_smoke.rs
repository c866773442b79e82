//! The ZooKeeper smoke test against a real 3-server ensemble: while it probes, two servers
//! stop (the ensemble loses its quorum) and come back. Every server must show a window
//! covering the outage, the probes before and after it must succeed, and the log must be
//! readable line by line. Needs Java and the distribution: `NOT RUN:` otherwise.

use std::process::{Command, Stdio};
use std::time::Duration;

mod common;

use harness::check::smoke;
use harness::Shutdown;

#[test]
#[ignore = "slow tier: real clusters, namespaces or containers"]
fn losing_the_quorum_shows_as_a_window_on_every_server() {
    let _lock = common::cluster_lock();
    let dir = tempfile::tempdir().unwrap();
    let run_id = format!("zksmoke-{}", std::process::id());
    let mut cluster = common::zookeeper_cluster(dir.path(), &run_id, &["zk1", "zk2", "zk3"]);
    let sd = Shutdown::new();
    let log = dir.path().join("smoke.jsonl");
    let t0 = workers::clock::now_ms();
    let mut probe = Command::new(env!("CARGO_BIN_EXE_harness"))
        .args([
            "zk",
            "smoke",
            &cluster.zookeeper_connect(),
            "--interval",
            "100ms",
            "--for",
            "60s",
            "--tag",
        ])
        .arg(format!("kmh.run={run_id}"))
        .arg("--log")
        .arg(&log)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(4));
    let down_from = workers::clock::now_ms() - t0;
    cluster.stop("zk1", Duration::from_secs(30)).unwrap();
    cluster.stop("zk2", Duration::from_secs(30)).unwrap();
    std::thread::sleep(Duration::from_secs(6));
    // zk1 is ready once it serves, i.e. once it and zk3 form a quorum again (2 of 3)
    cluster.start("zk1", &sd).unwrap();
    let up_at = workers::clock::now_ms() - t0;
    cluster.start("zk2", &sd).unwrap();
    std::thread::sleep(Duration::from_secs(8));
    unsafe { libc::kill(probe.id() as i32, libc::SIGTERM) };
    assert!(probe.wait().unwrap().success());

    let probes = smoke::read_log(&log).unwrap();
    let analysis = smoke::analyse(&probes, t0);
    assert_eq!(
        analysis.len(),
        3,
        "one probe per server: {:?}",
        analysis.keys()
    );
    let windows = smoke::windows(&analysis, 1000);
    for (server, (summary, _)) in &analysis {
        assert!(
            summary.operations > 20 && summary.failures > 0,
            "{server}: {summary:?}"
        );
        let mine: Vec<_> = windows.iter().filter(|(s, _)| s == server).collect();
        assert!(
            !mine.is_empty(),
            "{server} has no window; probes: {}",
            probes.iter().filter(|p| &p.server == server).count()
        );
        // the window covers the outage: from the stop until the quorum is back
        let (_, w) = mine.iter().max_by_key(|(_, w)| w.end - w.start).unwrap();
        assert!(
            u64::from(w.start) <= down_from + 2000 && u64::from(w.end) + 500 >= up_at,
            "{server}: window {w:?}, down {down_from}..{up_at}"
        );
        assert!(u64::from(w.end - w.start) >= 4000, "{server}: {w:?}");
        // and it recovered: successes after the window
        assert!(
            probes
                .iter()
                .any(|p| &p.server == server && p.ok && p.t_ms - t0 > u64::from(w.end)),
            "{server} never recovered"
        );
    }
    // the ensemble as a whole: down only while no server served (zk3 alone had no
    // quorum either), one window
    let servers: Vec<String> = cluster
        .zookeeper_connect()
        .split(',')
        .map(String::from)
        .collect();
    let group = smoke::group_windows(&analysis, &servers, 1000);
    assert_eq!(group.len(), 1, "{group:?}");
    // heartbeats: every server read everyone's, and one quorum means no split brain
    let beats: Vec<_> = probes.iter().filter(|p| p.op == "beat" && p.ok).collect();
    assert!(beats.len() > 30, "{} beats", beats.len());
    assert!(
        beats.iter().any(|p| p
            .seen
            .as_ref()
            .is_some_and(|s| servers.iter().all(|x| s.contains_key(x)))),
        "no beat saw all three servers"
    );
    assert!(smoke::divergence(&probes, &servers, t0, 5000).is_empty());
    cluster.teardown();
}
