//! Issue [6], the ec2 backend, end to end against moto's EC2 (`e2e::moto`): the harness
//! launches tagged instances with aws-sdk-ec2, waits for them, and runs on them exactly as
//! the ssh backend — each instance made real by the test as a namespace host with sshd at
//! the private address moto gave it. kraft-rolling-restart (Kafka 4.1 in KRaft mode: an
//! instance per controller), partition-leader (ZooKeeper mode) and mirrormaker-switch-over
//! (two clusters, MirrorMaker 2 between them) give their local verdicts on them (the partition
//! by iptables rules over SSH; producers and consumers on separate worker instances with
//! `placement = "split"`). What EC2 holds (states, tags) is read back with boto3, not taken
//! from the harness's word. Launched instances are terminated at the end of a
//! run and on Ctrl-C; a SIGKILLed coordinator's instances by `harness cleanup --ec2` (with
//! expired instances of other runs, not unexpired ones); instances found by `reuse` stay.
//!
//! Needs the harness built with the ec2 backend (the default features), root, sshd, and
//! moto's server with boto3: without them they fail with `NOT RUN:`, never pass. `.ci/run`
//! installs them.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use e2e::moto::{Described, Moto, Realiser, Seeded};
use e2e::ssh_hosts::SshHosts;
use e2e::{
    cluster_lock_exclusive, harness_bin, run_dir, run_scenario_file, start_run_file,
    tagged_processes, verdicts, wait_bounded, KillOnDrop, RunGuard,
};
use serde_json::Value;

/// moto, the bridge its instances become hosts on, and the realiser between them. Fields
/// drop in order: the realiser stops, the hosts go, then moto.
struct World {
    realiser: Option<Realiser>,
    hosts: Arc<Mutex<SshHosts>>,
    seeded: Seeded,
    moto: Moto,
}

impl World {
    /// Call with the cluster lock held: it points this process's AWS chain at its moto.
    fn new() -> World {
        let bin = harness_bin();
        let out = Command::new(&bin).arg("--version").output().unwrap();
        let version = String::from_utf8_lossy(&out.stdout);
        assert!(
            version.contains(", ec2)"),
            "NOT RUN: {} was built without the ec2 backend ({}); build with the default features",
            bin.display(),
            version.trim()
        );
        let moto = Moto::start();
        moto.export();
        let hosts = SshHosts::start(0, 0, &[]);
        let public_key = std::fs::read_to_string(hosts.key.with_extension("pub")).unwrap();
        let seeded = moto.seed(&hosts.cidr(), public_key.trim());
        let hosts = Arc::new(Mutex::new(hosts));
        let realiser = Some(Realiser::start(&moto, hosts.clone()));
        World {
            realiser,
            hosts,
            seeded,
            moto,
        }
    }

    /// A scenario of `scenarios/` moved to backend ec2 with `[cluster.ec2]` for this moto:
    /// `workers` worker hosts, `extra` lines appended to the table.
    fn scenario(&self, base: &str, workers: usize, extra: &str) -> PathBuf {
        let text = std::fs::read_to_string(e2e::repo().join("scenarios").join(base)).unwrap();
        assert!(text.contains("backend = \"local\""), "{base}");
        let h = self.hosts.lock().unwrap();
        let ec2 = format!(
            "\n[cluster.ec2]\nami = \"{ami}\"\ninstance_type = \"m6i.large\"\nsubnet = \"{subnet}\"\nsecurity_groups = [\"{sg}\"]\nkey_name = \"kmh-test\"\nkey = \"{key}\"\nuser = \"root\"\nworkers = {workers}\nowner = \"kmh-e2e\"\nttl = \"1h\"\nboot_timeout = \"2m\"\ndir = \"{dir}\"\n{extra}\n",
            ami = self.seeded.ami,
            subnet = self.seeded.subnet,
            sg = self.seeded.security_group,
            key = h.key.display(),
            dir = host_dir().display(),
        );
        let path = h.dir.join(base.replace(".toml", "-ec2.toml"));
        std::fs::write(
            &path,
            text.replace("backend = \"local\"", "backend = \"ec2\"") + &ec2,
        )
        .unwrap();
        path
    }

    /// The instances tagged with run `id`, as EC2 holds them.
    fn of_run(&self, id: &str) -> Vec<Described> {
        self.moto
            .instances()
            .into_iter()
            .filter(|i| i.tags.get("kmh.run").map(String::as_str) == Some(id))
            .collect()
    }

    /// Fails the test if an instance could not be made real. moto stays up until the
    /// world drops — after the test's run guards, declared later, whose cleanup of an ec2
    /// run must reach it (a run whose instances cannot be checked stays registered).
    fn finish(&mut self) {
        if let Some(r) = self.realiser.take() {
            r.finish();
        }
    }
}

/// Where the instances keep the distribution (shared with the ssh tests: copied once).
fn host_dir() -> PathBuf {
    e2e::repo().join("target").join("kmh-ssh-hosts")
}

fn run_record(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("run.json")).unwrap()).unwrap()
}

/// `date -u` `offset` from now, RFC 3339 (sorts as time).
fn utc(offset: &str) -> String {
    e2e::sh(&["date", "-u", "-d", offset, "+%Y-%m-%dT%H:%M:%SZ"])
        .trim()
        .to_string()
}

/// Starts `harness run SCENARIO` and returns once its first producer has acked a thousand
/// records (the cluster is up on its instances, the workload runs): the child (killed if
/// the test fails first), its guard and its run id.
fn start_midway(scenario: &Path, name: &str) -> (KillOnDrop, RunGuard, String) {
    let dir = run_dir(name);
    let guard = RunGuard { dir: dir.clone() };
    let mut child = KillOnDrop(start_run_file(scenario, &dir, &[]));
    e2e::wait_producing(&mut child.0, &dir, 1_000, Duration::from_secs(300));
    let id = guard.run_id().expect("run.json");
    (child, guard, id)
}

#[test]
#[ignore = "slow tier: real clusters, namespaces or containers"]
fn kraft_rolling_restart_on_launched_instances_gives_the_local_verdict_and_terminates_them() {
    let _all = cluster_lock_exclusive(); // sets this process's AWS environment
    let mut world = World::new();
    // Kafka 4.1 in KRaft mode: an instance per controller and per broker, each node
    // formatted here and its storage copied over (ZooKeeper instances: the partition test)
    let scenario = world.scenario("kraft-rolling-restart.toml", 2, "");
    // producers and consumers on different worker instances
    let text = std::fs::read_to_string(&scenario).unwrap();
    std::fs::write(
        &scenario,
        text.replacen("[workload]\n", "[workload]\nplacement = \"split\"\n", 1),
    )
    .unwrap();
    let o = run_scenario_file("ec2-kraft-rolling-restart", &scenario, &[]);
    verdicts::kraft_rolling_restart(&o);
    let run = run_record(&o.guard.dir);
    assert_eq!(run["backend"], "ec2");
    let id = run["run_id"].as_str().unwrap();

    // EC2's own view: eight instances of the run, each tagged at launch, all terminated
    let mine = world.of_run(id);
    assert_eq!(
        mine.len(),
        8,
        "3 controllers + 3 brokers + 2 worker hosts: {mine:#?}"
    );
    let (soon, late) = (utc("+50 minutes"), utc("+70 minutes"));
    let mut roles = std::collections::BTreeMap::<String, usize>::new();
    for i in &mine {
        assert_eq!(i.state, "terminated", "{i:?}");
        *roles.entry(i.tags["kmh.role"].clone()).or_default() += 1;
        assert_eq!(i.tags["kmh.owner"], "kmh-e2e", "{i:?}");
        assert_eq!(i.tags["Name"], format!("kmh-{id}-{}", i.tags["kmh.node"]));
        let at = &i.tags["kmh.expires-at"];
        assert!(
            soon < *at && *at < late,
            "ttl 1h: expires at {at}, not between {soon} and {late}"
        );
    }
    assert_eq!(
        roles,
        [("broker", 3), ("controller", 3), ("worker", 2)]
            .map(|(r, n)| (r.to_string(), n))
            .into()
    );

    // run.json records them, and every node ran at its instance's address
    assert_eq!(run["ec2"]["launched"], true);
    let recorded = run["ec2"]["instances"].as_array().unwrap();
    assert_eq!(recorded.len(), 8);
    for host in run["hosts"].as_array().unwrap() {
        let node = host["name"].as_str().unwrap();
        let instance = mine
            .iter()
            .find(|i| i.tags["kmh.node"] == node)
            .unwrap_or_else(|| panic!("no instance for {node}"));
        assert_eq!(
            host["address"].as_str(),
            instance.ip.as_deref(),
            "{node} ran on its instance"
        );
        assert!(
            recorded
                .iter()
                .any(|r| r["id"] == instance.id.as_str() && r["name"] == node),
            "{node}: {recorded:?}"
        );
    }
    // the workers ran on the two worker instances, split: every producer process on the
    // first, every consumer process and the final read on the second
    let clocks: Value =
        serde_json::from_str(&std::fs::read_to_string(o.guard.dir.join("clocks.json")).unwrap())
            .unwrap();
    let worker_ips: Vec<&str> = mine
        .iter()
        .filter(|i| i.tags["kmh.role"] == "worker")
        .map(|i| i.ip.as_deref().unwrap())
        .collect();
    let on = |prefix: &str| -> std::collections::BTreeSet<&str> {
        clocks["workers"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(name, _)| name.starts_with(prefix))
            .map(|(_, a)| a.as_str().unwrap())
            .collect()
    };
    let (producers, consumers) = (on("producer-"), on("consumer-"));
    assert_eq!(producers.len(), 1, "{clocks}");
    assert_eq!(consumers.len(), 1, "{clocks}");
    assert_ne!(producers, consumers, "split: {clocks}");
    assert_eq!(on("final-read"), consumers, "{clocks}");
    for a in producers.iter().chain(&consumers) {
        assert!(
            worker_ips.contains(a),
            "{a} is a worker instance: {worker_ips:?}"
        );
    }
    assert!(!host_dir().join("runs").join(id).exists());
    e2e::assert_nothing_left(id);
    world.finish();
}

#[test]
#[ignore = "slow tier: real clusters, namespaces or containers"]
fn the_partition_scenario_on_launched_instances_gives_the_local_verdict() {
    let _all = cluster_lock_exclusive(); // sets this process's AWS environment
    let mut world = World::new();
    let scenario = world.scenario("partition-leader.toml", 2, "");
    let o = run_scenario_file("ec2-partition-leader", &scenario, &[]);
    // iptables rules set over SSH on the leader's instance cut its partition off
    verdicts::partition_leader(&o, 1);
    let id = run_record(&o.guard.dir)["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let mine = world.of_run(&id);
    assert_eq!(mine.len(), 8, "{mine:#?}");
    assert!(mine.iter().all(|i| i.state == "terminated"), "{mine:#?}");
    e2e::assert_nothing_left(&id);
    world.finish();
}

/// Issue [8], two clusters on launched instances: MirrorMaker 2's target gets instances of
/// its own (its ZooKeeper node and three brokers, tagged `target-broker`), MirrorMaker runs
/// on the coordinator's host and reaches both clusters' instances, the clients switch over
/// by their discovery copies on the worker instances — and the verdict is the local one.
#[test]
#[ignore = "slow tier: real clusters, namespaces or containers"]
fn the_mirror_switch_over_on_launched_instances_gives_the_local_verdict() {
    let _all = cluster_lock_exclusive(); // sets this process's AWS environment
    let mut world = World::new();
    let scenario = world.scenario("mirrormaker-switch-over.toml", 2, "");
    let o = run_scenario_file("ec2-mirrormaker-switch-over", &scenario, &[]);
    verdicts::mirror_switch_over(&o);
    let id = run_record(&o.guard.dir)["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let mine = world.of_run(&id);
    // zk1 and tzk1, three brokers a cluster, two worker hosts: an instance each, all gone
    assert_eq!(mine.len(), 10, "{mine:#?}");
    assert!(mine.iter().all(|i| i.state == "terminated"), "{mine:#?}");
    let role_of = |node: &str| {
        mine.iter()
            .find(|i| i.tags.get("kmh.node").map(String::as_str) == Some(node))
            .and_then(|i| i.tags.get("kmh.role").cloned())
            .unwrap_or_else(|| panic!("no instance of `{node}`: {mine:#?}"))
    };
    for t in ["tkafka1", "tkafka2", "tkafka3"] {
        assert_eq!(role_of(t), "target-broker");
    }
    assert_eq!(role_of("kafka1"), "broker");
    assert_eq!(role_of("tzk1"), "zookeeper");
    e2e::assert_nothing_left(&id);
    world.finish();
}

#[test]
#[ignore = "slow tier: real clusters, namespaces or containers"]
fn ctrl_c_terminates_the_launched_instances() {
    let _all = cluster_lock_exclusive(); // sets this process's AWS environment
    let mut world = World::new();
    let scenario = world.scenario("rolling-restart.toml", 1, "");
    let (mut child, _guard, id) = start_midway(&scenario, "ec2-interrupted");
    let child = &mut child.0;
    let running = world.of_run(&id);
    assert_eq!(running.len(), 7, "{running:#?}");
    assert!(running.iter().all(|i| i.state == "running"), "{running:#?}");
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let st = wait_bounded(child, Duration::from_secs(120));
    assert_ne!(st.code(), Some(0), "an interrupted run is no pass");
    let after = world.of_run(&id);
    assert!(
        after.iter().all(|i| i.state == "terminated"),
        "Ctrl-C terminates what the run launched: {after:#?}"
    );
    assert!(
        tagged_processes(&id).is_empty(),
        "{:?}",
        tagged_processes(&id)
    );
    world.finish();
}

#[test]
#[ignore = "slow tier: real clusters, namespaces or containers"]
fn a_killed_coordinators_instances_and_expired_ones_are_reaped_by_cleanup_ec2() {
    let _all = cluster_lock_exclusive(); // sets this process's AWS environment
    let mut world = World::new();
    // two instances of other runs, launched by hand: one past its expiry, one not
    let (expired, current) = (utc("-1 hour"), utc("+1 hour"));
    let ids = world.moto.python(&format!(
        r#"
def launch(run, at):
    tags = [dict(Key='kmh.run', Value=run), dict(Key='kmh.expires-at', Value=at)]
    r = ec2.run_instances(ImageId='{ami}', MinCount=1, MaxCount=1, SubnetId='{subnet}', TagSpecifications=[dict(ResourceType='instance', Tags=tags)])
    return r['Instances'][0]['InstanceId']
print(launch('someone-elses-old-run', '{expired}'), launch('someone-elses-run', '{current}'))
"#,
        ami = world.seeded.ami,
        subnet = world.seeded.subnet,
    ));
    let (old, young) = ids.trim().split_once(' ').unwrap();
    let (old, young) = (old.to_string(), young.to_string());

    let scenario = world.scenario("rolling-restart.toml", 1, "");
    let (mut child, _guard, id) = start_midway(&scenario, "ec2-killed");
    unsafe { libc::kill(child.0.id() as i32, libc::SIGKILL) };
    wait_bounded(&mut child.0, Duration::from_secs(30));
    let left = world.of_run(&id);
    assert_eq!(left.len(), 7);
    assert!(
        left.iter().all(|i| i.state == "running"),
        "a SIGKILLed coordinator terminates nothing: {left:#?}"
    );

    let out = Command::new(harness_bin())
        .args(["cleanup", "--ec2"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all = world.moto.instances();
    let state = |i: &str| all.iter().find(|d| d.id == i).unwrap().state.clone();
    for i in &left {
        assert_eq!(state(&i.id), "terminated", "{text}");
        assert!(
            text.contains(&format!("terminated ec2 instance {}", i.id)),
            "{text}"
        );
    }
    assert_eq!(state(&old), "terminated", "expired: {text}");
    assert!(text.contains("expired at"), "{text}");
    assert_eq!(state(&young), "running", "not expired, not ours: {text}");
    // the run's files were removed from its hosts over SSH (before the instances went),
    // and nothing of it is left: no instance, host, process, namespace or rule
    assert!(!host_dir().join("runs").join(&id).exists());
    e2e::assert_nothing_left(&id);
    world.finish();
}

#[test]
#[ignore = "slow tier: real clusters, namespaces or containers"]
fn instances_found_by_tag_are_used_and_never_terminated_not_even_on_ctrl_c() {
    let _all = cluster_lock_exclusive(); // sets this process's AWS environment
    let mut world = World::new();
    // seed 000's tagged temporary cluster: six instances someone keeps running
    let out = world.moto.python(&format!(
        r#"
r = ec2.run_instances(ImageId='{ami}', MinCount=6, MaxCount=6, SubnetId='{subnet}', TagSpecifications=[dict(ResourceType='instance', Tags=[dict(Key='team', Value='canary')])])
print(' '.join(i['InstanceId'] for i in r['Instances']))
"#,
        ami = world.seeded.ami,
        subnet = world.seeded.subnet,
    ));
    let kept: Vec<String> = out.split_whitespace().map(str::to_string).collect();
    assert_eq!(kept.len(), 6);
    let scenario = world.scenario(
        "rolling-restart.toml",
        0,
        "reuse = { tag = \"team=canary\" }",
    );
    // the cluster runs on them (the workers here: workers = 0)
    let (mut child, guard, _) = start_midway(&scenario, "ec2-reuse");
    unsafe { libc::kill(child.0.id() as i32, libc::SIGINT) };
    wait_bounded(&mut child.0, Duration::from_secs(120));
    let run = run_record(&guard.dir);
    assert_eq!(run["ec2"]["launched"], false);
    let id = run["run_id"].as_str().unwrap();
    let all = world.moto.instances();
    for k in &kept {
        let d = all.iter().find(|d| &d.id == k).unwrap();
        assert_eq!(d.state, "running", "reused instances stay: {d:?}");
    }
    assert!(world.of_run(id).is_empty(), "nothing launched");
    // the nodes ran on the reused instances
    for host in run["hosts"].as_array().unwrap() {
        let a = host["address"].as_str().unwrap();
        assert!(
            all.iter()
                .any(|d| kept.contains(&d.id) && d.ip.as_deref() == Some(a)),
            "{host}"
        );
    }
    assert!(
        tagged_processes(id).is_empty(),
        "{:?}",
        tagged_processes(id)
    );
    // a cleanup of the run, even with --ec2, leaves them running
    let out = Command::new(harness_bin())
        .args(["cleanup", "--ec2", "--run", id])
        .output()
        .unwrap();
    assert!(out.status.success());
    let all = world.moto.instances();
    assert!(kept
        .iter()
        .all(|k| all.iter().any(|d| &d.id == k && d.state == "running")));
    world.finish();
}

#[test]
fn a_plan_beyond_the_guard_is_refused_before_any_launch() {
    let dir = std::env::temp_dir().join(format!("kmh-ec2-plan-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let text = std::fs::read_to_string(e2e::repo().join("scenarios/rolling-restart.toml"))
        .unwrap()
        .replace("backend = \"local\"", "backend = \"ec2\"")
        + "\n[cluster.ec2]\nami = \"ami-1\"\nworkers = 2\nmax_instances = 6\n";
    let path = dir.join("guarded.toml");
    std::fs::write(&path, &text).unwrap();
    let out = Command::new(harness_bin())
        .arg("plan")
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("needs 8 instances") && err.contains("max_instances = 6"),
        "{err}"
    );
    std::fs::write(
        &path,
        text.replace("max_instances = 6", "max_instances = 8"),
    )
    .unwrap();
    let out = Command::new(harness_bin())
        .arg("plan")
        .arg(&path)
        .output()
        .unwrap();
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{plan}");
    assert!(plan.contains("launch: 8 instance(s)"), "{plan}");
    assert!(plan.contains("total: 8 × m6i.large"), "{plan}");
    // a placement the worker instances cannot give is refused as well, before any launch
    let split = text
        .replace("max_instances = 6", "max_instances = 8")
        .replace("workers = 2", "workers = 1")
        .replacen("[workload]\n", "[workload]\nplacement = \"split\"\n", 1);
    std::fs::write(&path, split).unwrap();
    let out = Command::new(harness_bin())
        .arg("plan")
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("needs two worker hosts or more; this run has 1"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
