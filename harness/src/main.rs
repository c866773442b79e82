//! `harness`: the command line. See the README for the commands and exit codes.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use harness::cli::*;
use harness::error::{Exit, HarnessError};
use harness::{check, cleanup, report, run, scenario, Shutdown};

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "harness=info".into()),
        )
        .with_writer(std::io::stderr)
        // colours for a person at a terminal; none in a redirected log (CI, a file)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(exit) => exit.into(),
        Err(e) => {
            eprintln!("harness: {}", e.chain());
            e.exit().into()
        }
    }
}

fn dispatch(cmd: Command) -> Result<Exit, HarnessError> {
    match cmd {
        Command::Run {
            scenario,
            out,
            backend,
            hosts,
            hold,
            kraft,
        } => run_cmd(&scenario, out, backend, hosts, hold, kraft.as_deref()),
        Command::Watch(args) => watch_cmd(args),
        Command::Mark { text, run, file } => {
            let dir = harness::live::marks::target(run.as_deref())?;
            match (text, file) {
                (Some(text), _) => {
                    let t = harness::live::marks::mark(&dir, &text)?;
                    println!(
                        "marked `{}` at t+{:.1}s in {}",
                        text.trim(),
                        t as f64 / 1000.0,
                        dir.display()
                    );
                }
                (None, Some(f)) if f.as_os_str() == "-" => {
                    let n = harness::live::marks::mark_lines(&dir, std::io::stdin().lock())?;
                    println!("{n} mark(s) in {}", dir.display());
                }
                (None, Some(f)) => {
                    let file = std::fs::File::open(&f).map_err(|e| {
                        HarnessError::BadInput(format!("--file {}: {e}", f.display()))
                    })?;
                    let n = harness::live::marks::mark_lines(&dir, std::io::BufReader::new(file))?;
                    println!("{n} mark(s) in {}", dir.display());
                }
                (None, None) => unreachable!("clap requires a text or --file"),
            }
            Ok(Exit::Pass)
        }
        Command::Images {
            command: ImagesCommand::Build { base, kafka, force },
        } => {
            use harness::cluster::docker::{images, Engine};
            let engine = Engine::connect()?;
            let dist = harness::cluster::dist::locate(&kafka)?;
            let worker = run::workload::worker_binary()?;
            for o in images::ensure(&engine, &dist, &worker, base.as_deref(), force)? {
                let did = match o.action {
                    images::ImageAction::Reused => "kept",
                    images::ImageAction::Built => "built",
                    images::ImageAction::Imported => "imported",
                };
                println!("{did} {}: {}", o.image, o.detail);
            }
            Ok(Exit::Pass)
        }
        Command::Check { run_dir } => check_cmd(&run_dir),
        Command::Compare {
            run_a,
            run_b,
            tolerance_pct,
            window_slack_ms,
            latency_tolerance_pct,
            latency_slack_ms,
            min_latency_samples,
            json,
        } => {
            let finite = |v: f64, what: &str| {
                if v.is_finite() && v >= 0.0 {
                    Ok(v)
                } else {
                    Err(HarnessError::BadInput(format!(
                        "{what}: {v} is not a number ≥ 0"
                    )))
                }
            };
            let t = report::compare::Tolerance {
                relative: finite(tolerance_pct, "--tolerance-pct")? / 100.0,
                window_slack_ms: finite(window_slack_ms, "--window-slack-ms")?,
                latency_relative: finite(latency_tolerance_pct, "--latency-tolerance-pct")? / 100.0,
                latency_slack_ms: finite(latency_slack_ms, "--latency-slack-ms")?,
                min_latency_samples,
            };
            let (a, b) = (read_report(&run_a)?, read_report(&run_b)?);
            let c = report::compare::compare(&a, &b, &t);
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&c).map_err(anyhow::Error::from)?
                );
            } else {
                print!("{}", report::compare::text(&c, &t));
            }
            Ok(if c.worse { Exit::Fail } else { Exit::Pass })
        }
        Command::Report { run_dir } => {
            // the same check and files as `check`, without the verdict's exit code
            let verdict = check_cmd(&run_dir)?;
            println!(
                "report: {} (verdict: {})",
                run_dir.join(harness::rundir::REPORT_HTML).display(),
                if verdict == Exit::Pass {
                    "pass"
                } else {
                    "fail"
                }
            );
            Ok(Exit::Pass)
        }
        Command::Plan { scenario } => plan_cmd(&scenario),
        Command::Validate { scenarios } => {
            let mut bad = Vec::new();
            let mut cannot = Vec::new();
            for s in &scenarios {
                match scenario::load(s) {
                    // valid, and runnable on this machine (namespaces, netem where needed)
                    Ok(sc) => match run::preflight(&sc) {
                        Ok(()) => {
                            println!("{}: ok ({} steps)", s.display(), sc.steps.len());
                            for w in scenario::warnings(&sc) {
                                eprintln!("harness: warning: {}: {w}", s.display());
                            }
                        }
                        Err(e) => {
                            cannot.push(format!("{}: valid, but cannot run here: {e}", s.display()))
                        }
                    },
                    Err(e) => bad.push(e.to_string()),
                }
            }
            for c in &cannot {
                eprintln!("harness: {c}");
            }
            if !bad.is_empty() {
                Err(HarnessError::BadInput(bad.join("\n")))
            } else if !cannot.is_empty() {
                Err(HarnessError::Missing {
                    what: format!("{} scenario(s) cannot run on this machine", cannot.len()),
                    hint: "see the reasons above".into(),
                })
            } else {
                Ok(Exit::Pass)
            }
        }
        Command::Cleanup {
            run,
            force,
            ec2,
            region,
        } => {
            let plan = cleanup::plan(run.as_deref(), force);
            for c in &plan.spared {
                println!(
                    "left alone: run {} is still running (coordinator pid {}, {}); --force removes it anyway",
                    c.run_id,
                    c.pid,
                    c.run_dir.display()
                );
            }
            for id in &plan.unknown {
                println!(
                    "left alone: run {id} has processes but no registered coordinator here (another user's or cache directory's run?); `--run {id}` or --force removes it"
                );
            }
            // the one run asked for is alive: refused (a sweep goes on without it)
            if let (Some(arg), false) = (&run, plan.spared.is_empty()) {
                return Err(HarnessError::Missing {
                    what: format!("run {arg} is still running; nothing removed"),
                    hint: "stop it first (Ctrl-C ends a run and cleans up), or add --force".into(),
                });
            }
            if let (Some(arg), Some([only])) = (&run, plan.scope.runs.as_deref()) {
                if arg != only {
                    println!("run {only} (from {arg})");
                }
            }
            let scope = &plan.scope;
            // SSH hosts first: their workers stop and their logs come back before anything
            // here (the sessions to them among it) is killed
            let mut unreachable_hosts = Vec::new();
            for dir in cleanup::run_dirs(run.as_deref(), scope) {
                let Ok(record) = harness::rundir::RunRecord::load(&dir) else {
                    continue;
                };
                let Some(inv) = &record.ssh else { continue };
                let nodes: Vec<std::net::Ipv4Addr> = record
                    .hosts
                    .iter()
                    .filter_map(|h| h.address.parse().ok())
                    .collect();
                match harness::cluster::ssh::cleanup(&dir, &record.run_id, inv, &nodes) {
                    Ok(lines) => lines.iter().for_each(|l| println!("{l}")),
                    Err(e) => {
                        println!(
                            "not cleaned on its hosts: {e}; run cleanup again when they answer"
                        );
                        unreachable_hosts.push(record.run_id.clone());
                    }
                }
            }
            // EC2 instances: of the runs in scope that recorded some (their logs came back
            // over SSH above); with --ec2, every instance tagged by the run asked for, or by
            // a run whose coordinator is gone, or past its kmh.expires-at
            let mut unreachable_ec2 = Vec::new();
            let reaped = if ec2 {
                let dead = registered_in(scope);
                let one = run.as_ref().map(|r| cleanup::resolve_run(r));
                match harness::cluster::ec2::reap(one.as_deref(), &dead, region.as_deref()) {
                    Ok(r) => r,
                    Err(e) => {
                        println!(
                            "not terminated: ec2: {e}; run cleanup --ec2 again when EC2 answers"
                        );
                        unreachable_ec2.extend(dead);
                        Vec::new()
                    }
                }
            } else {
                let mut all = Vec::new();
                for dir in cleanup::run_dirs(run.as_deref(), scope) {
                    let Ok(record) = harness::rundir::RunRecord::load(&dir) else {
                        continue;
                    };
                    let Some(e) = record.ec2.as_ref().filter(|e| e.launched) else {
                        continue;
                    };
                    match harness::cluster::ec2::reap(
                        Some(&record.run_id),
                        &[],
                        e.region.as_deref(),
                    ) {
                        Ok(r) => all.extend(r),
                        Err(err) => {
                            println!("not terminated: the ec2 instances of run {}: {err}; run cleanup --ec2 again when EC2 answers", record.run_id);
                            unreachable_ec2.push(record.run_id.clone());
                        }
                    }
                }
                all
            };
            for (id, why) in &reaped {
                println!("terminated ec2 instance {id} ({why})");
            }
            // containers first: their workers get a SIGTERM and their logs are copied out
            // (on a local engine their processes are tagged too, and would die unflushed)
            let docker = harness::cluster::docker::cleanup(scope);
            let killed = cleanup::cleanup(scope);
            for l in &killed {
                println!("killed {} (run {}): {}", l.pid, l.run_id, l.command);
            }
            let net = harness::cluster::netns::cleanup(scope);
            // watches: what they made on the cluster they watched (a run whose cluster does
            // not answer stays registered, so that the next cleanup tries again)
            let mut unreachable = Vec::new();
            for dir in cleanup::run_dirs(run.as_deref(), scope) {
                match harness::live::cleanup(&dir) {
                    Ok(Some(done)) => {
                        for t in &done.topics {
                            println!("deleted topic {t} on {}", done.bootstrap);
                        }
                        if let Some(g) = &done.group {
                            println!(
                                "deleted consumer group {g} on {} (if it was there)",
                                done.bootstrap
                            );
                        }
                    }
                    Ok(None) => {}
                    Err(e) => {
                        println!("not cleaned: {e}; run cleanup again when the cluster answers");
                        if let Ok(r) = harness::rundir::RunRecord::load(&dir) {
                            unreachable.push(r.run_id);
                        }
                    }
                }
            }
            let forget = harness::cluster::CleanupScope {
                runs: Some(
                    registered_in(scope)
                        .into_iter()
                        .filter(|id| {
                            !unreachable.contains(id)
                                && !unreachable_hosts.contains(id)
                                && !unreachable_ec2.contains(id)
                        })
                        .collect(),
                ),
            };
            cleanup::forget_dead(&forget);
            let kept = harness::cluster::netns::remaining_namespaces();
            if !kept.is_empty() && plan.scope.runs.is_some() {
                println!(
                    "left alone: {} namespace(s) of runs not in scope ({}); --force removes them",
                    kept.len(),
                    kept.join(", ")
                );
            }
            for n in &net.namespaces {
                println!("deleted namespace {n}");
            }
            for b in &net.bridges {
                println!("deleted bridge {b}");
            }
            for r in &net.rules {
                println!("deleted firewall rule {r}");
            }
            for p in &docker.salvaged {
                println!("copied a worker log out: {}", p.display());
            }
            for c in &docker.containers {
                println!("removed container {c}");
            }
            for n in &docker.networks {
                println!("removed network {n}");
            }
            if let Some(why) = &docker.skipped {
                println!("docker: not checked: {why}");
            }
            println!(
                "cleanup: {} process(es) removed; {} namespace(s), {} bridge(s), {} rule(s) deleted; {} container(s), {} network(s) removed",
                killed.len(),
                net.namespaces.len(),
                net.bridges.len(),
                net.rules.len(),
                docker.containers.len(),
                docker.networks.len()
            );
            Ok(Exit::Pass)
        }
        Command::Proxy {
            listen,
            target,
            control,
            ..
        } => {
            // a port that cannot be bound is the tool failing, not bad input
            harness::fault::proxy::run(listen, target, control).map_err(|e| {
                HarnessError::Other(anyhow::Error::new(e).context(format!("proxy on {listen}")))
            })?;
            Ok(Exit::Pass)
        }
        Command::Zk { command } => zk_cmd(command),
        Command::Migrate {
            command:
                MigrateCommand::Brokers {
                    bootstrap,
                    map,
                    bookkeeping_topic,
                    throttle,
                    topic_timeout,
                    client_config,
                    ..
                },
        } => {
            use harness::kafka::migrate;
            let bad = |e: String| HarnessError::BadInput(e);
            let client_properties = match &client_config {
                Some(p) => harness::live::client_config::load(p)?,
                None => Default::default(),
            };
            harness::kafka::security::Security::from_properties(&client_properties).map_err(
                |e| {
                    bad(format!(
                        "--client-config {}: {e}",
                        client_config.as_deref().unwrap_or(Path::new("")).display()
                    ))
                },
            )?;
            let opts = migrate::MigrateOptions {
                client_properties,
                map: migrate::parse_map(&map).map_err(|e| bad(format!("--map: {e}")))?,
                bookkeeping_topic,
                throttle: throttle
                    .as_deref()
                    .map(|t| {
                        harness::scenario::parse_byte_rate(t).ok_or_else(|| {
                            bad(format!(
                                "--throttle: `{t}` is not a byte rate (e.g. 1048576, 10MB, 5MiB)"
                            ))
                        })
                    })
                    .transpose()?,
                topic_timeout: harness::scenario::parse_duration(&topic_timeout).ok_or_else(
                    || {
                        bad(format!(
                            "--topic-timeout: `{topic_timeout}` is not a duration (e.g. 10m)"
                        ))
                    },
                )?,
            };
            let shutdown = Shutdown::on_signals();
            let mut emit = |e: &migrate::MigrateEvent| {
                println!("{}", serde_json::to_string(e).unwrap_or_default());
                match e {
                    migrate::MigrateEvent::Start { recorded, in_flight, created_bookkeeping } => eprintln!(
                        "migrate: {} topic(s) already recorded, {} partition(s) left moving by an earlier run{}",
                        recorded.len(), in_flight.len(), if *created_bookkeeping { "; bookkeeping topic created" } else { "" }
                    ),
                    migrate::MigrateEvent::Reassigning { topic, partitions, .. } => eprintln!("migrate: {topic}: moving {partitions} partition(s)…"),
                    migrate::MigrateEvent::TopicDone { topic, report } => eprintln!(
                        "migrate: {topic}: done ({} partition(s), {} bytes, {} ms)",
                        report.partitions.len(), report.bytes, report.ended_ms.saturating_sub(report.started_ms)
                    ),
                    migrate::MigrateEvent::Done { moved } => eprintln!("migrate: done; {} topic(s) moved by this run", moved.len()),
                }
            };
            migrate::migrate_brokers(&bootstrap, &opts, &shutdown, &mut emit)
                .map_err(|e| HarnessError::Cluster(format!("migrate brokers: {e}")))?;
            Ok(Exit::Pass)
        }
        Command::Bench {
            command: BenchCommand::Failover(a),
        } => {
            let settings = harness::bench::FailoverSettings {
                scenario: a.scenario,
                sizes: a.partitions,
                zookeeper: !a.no_zookeeper,
                kraft: (a.kraft != "none").then_some(a.kraft),
                replication: a.replication,
                heap_mb: a.heap_mb,
                out: a.out.unwrap_or_else(|| {
                    let stamp = workers::clock::now_ms() / 1000;
                    PathBuf::from("runs").join(format!("bench-failover-{stamp}"))
                }),
            };
            harness::bench::failover(settings, &Shutdown::on_signals())?;
            Ok(Exit::Pass)
        }
        Command::Bench { command } => {
            let (consume, a) = match command {
                BenchCommand::Produce(a) => (false, a),
                BenchCommand::Consume(a) => (true, a),
                BenchCommand::Failover(_) => unreachable!("matched above"),
            };
            let settings = harness::bench::BenchSettings {
                bootstrap: a.bootstrap,
                records: a.records,
                size: a.size,
                partitions: a.partitions,
                replication: a.replication,
                instances: a.instances,
                acks_all: !a.acks_leader,
                idempotence: !a.no_idempotence,
                linger_ms: a.linger_ms,
                out: a.out.unwrap_or_else(|| {
                    let stamp = workers::clock::now_ms() / 1000;
                    PathBuf::from("runs").join(format!("bench-{stamp}"))
                }),
            };
            let shutdown = Shutdown::on_signals();
            if consume {
                harness::bench::consume(settings, &shutdown)?;
            } else {
                harness::bench::produce(settings, &shutdown)?;
            }
            Ok(Exit::Pass)
        }
        Command::Dist { command } => {
            let d = match command {
                DistCommand::Fetch { kafka } => harness::cluster::dist::fetch(&kafka)?,
                DistCommand::Path { kafka } => harness::cluster::dist::locate(&kafka)?,
            };
            println!("{}", d.home.display());
            Ok(Exit::Pass)
        }
    }
}

/// The registered runs `scope` covers.
/// `harness plan`: what a run would start, and where.
fn plan_cmd(path: &Path) -> Result<Exit, HarnessError> {
    let sc = scenario::load(path)?;
    let c = &sc.cluster;
    println!(
        "{}: backend {}, Kafka {}",
        sc.name,
        c.backend.name(),
        c.kafka_version
    );
    match (c.backend, &c.ec2) {
        (scenario::Backend::Ec2, Some(e)) => {
            let plan = harness::cluster::ec2::LaunchPlan::of(c, e)?;
            if let Some(why) = sc.workload.placement.unfit(e.workers) {
                return Err(HarnessError::BadInput(why));
            }
            if let Some(tag) = &plan.reuse {
                println!(
                    "reuse: {} running instance(s) tagged {tag} (nothing launched, nothing terminated)",
                    plan.instances.len()
                );
            } else {
                println!(
                    "launch: {} instance(s) of {} (image {}, subnet {}, security groups {}, key pair {}), tagged kmh.run/kmh.role/kmh.node/kmh.owner/kmh.expires-at (ttl {})",
                    plan.instances.len(),
                    e.max_instances,
                    e.ami.as_deref().unwrap_or("?"),
                    e.subnet.as_deref().unwrap_or("default"),
                    if e.security_groups.is_empty() { "default".to_string() } else { e.security_groups.join(",") },
                    e.key_name.as_deref().unwrap_or("none"),
                    e.ttl
                );
            }
            let mut by_type: std::collections::BTreeMap<&str, usize> = Default::default();
            for i in &plan.instances {
                *by_type.entry(i.instance_type.as_str()).or_default() += 1;
                println!("  {:<10} {:<12} {}", i.role, i.name, i.instance_type);
            }
            let totals: Vec<String> = by_type.iter().map(|(t, n)| format!("{n} × {t}")).collect();
            println!("total: {}", totals.join(", "));
            if e.workers == 0 {
                println!("workers: on this machine");
            }
        }
        (scenario::Backend::Ssh, _) => {
            let file = c.inventory.as_ref().ok_or_else(|| {
                HarnessError::BadInput(format!(
                    "{}: backend ssh needs an inventory",
                    path.display()
                ))
            })?;
            let inv = harness::cluster::ssh::Inventory::load(file)?;
            for (n, a) in inv.place(&c.all_nodes(), &file.display().to_string())? {
                println!("  {n:<12} ssh {}", inv.login(a));
            }
            if inv.workers.is_empty() {
                println!("workers: on this machine");
            } else {
                let w: Vec<String> = inv.workers.iter().map(|a| inv.login(*a)).collect();
                println!("workers: round-robin on {}", w.join(", "));
            }
        }
        (b, _) => {
            let on = match b {
                scenario::Backend::Docker => "a container",
                _ => "a process on this machine",
            };
            for n in c.all_nodes() {
                let dormant = if c.dormant.contains(&n) {
                    " (dormant until a step starts it)"
                } else {
                    ""
                };
                println!("  {n:<12} {on}{dormant}");
            }
        }
    }
    Ok(Exit::Pass)
}

fn registered_in(scope: &harness::cluster::CleanupScope) -> Vec<String> {
    harness::rundir::coordinator::Coordinator::registered()
        .into_iter()
        .map(|c| c.run_id)
        .filter(|id| scope.covers(id))
        .collect()
}

fn watch_cmd(a: WatchArgs) -> Result<Exit, HarnessError> {
    use harness::live;
    let bad = |e: String| HarnessError::BadInput(e);
    let client_properties = match &a.client_config {
        Some(p) => live::client_config::load(p)?,
        None => Default::default(),
    };
    let duration = a
        .duration
        .as_deref()
        .map(|d| {
            scenario::parse_duration(d)
                .filter(|d| !d.is_zero())
                .ok_or_else(|| {
                    bad(format!(
                        "--duration: `{d}` is not a duration (e.g. 90s, 10m)"
                    ))
                })
        })
        .transpose()?;
    let (sc, text) = match &a.scenario {
        Some(path) => (scenario::load_watch(path)?, std::fs::read_to_string(path)?),
        None => {
            if a.rate <= 0.0 || !a.rate.is_finite() {
                return Err(bad(format!(
                    "--rate {}: give records per second above 0",
                    a.rate
                )));
            }
            let brokers = live::brokers_of(&a.bootstrap, &client_properties)?;
            let text = live::default_scenario(
                brokers.len(),
                &live::DefaultWorkload {
                    partitions: a.partitions,
                    replication: a.replication,
                    producers: a.producers,
                    consumers: a.consumers,
                    rate: a.rate,
                },
            );
            let sc = scenario::parse_watch(Path::new("(harness watch flags)"), &text)?;
            (sc, text)
        }
    };
    let opts = live::WatchOptions {
        bootstrap: a.bootstrap,
        zookeeper: a.zookeeper,
        client_properties,
        duration,
        keep_topics: a.keep_topics,
        topic_prefix: a.topic_prefix,
    };
    let run_dir = a.out.unwrap_or_else(|| {
        let stamp = workers::clock::now_ms() / 1000;
        PathBuf::from("runs").join(format!("{}-{stamp}", sc.name))
    });
    let shutdown = Shutdown::on_signals();
    eprintln!("harness: watch `{}` into {}", sc.name, run_dir.display());
    match live::watch(&sc, &text, &run_dir, &opts, &shutdown) {
        Ok(_) => check_cmd(&run_dir),
        Err(e) => {
            if run_dir.join("logs").exists() {
                eprintln!(
                    "harness: the logs so far are in {}; `harness check {}` reads them",
                    run_dir.display(),
                    run_dir.display()
                );
            }
            Err(e)
        }
    }
}

fn run_cmd(
    path: &Path,
    out: Option<PathBuf>,
    backend: Option<BackendArg>,
    hosts: Option<PathBuf>,
    hold: bool,
    kraft: Option<&str>,
) -> Result<Exit, HarnessError> {
    let mut sc = scenario::load(path)?;
    match backend {
        Some(BackendArg::Local) => sc.cluster.backend = scenario::Backend::Local,
        Some(BackendArg::Docker) => sc.cluster.backend = scenario::Backend::Docker,
        Some(BackendArg::Ssh) => sc.cluster.backend = scenario::Backend::Ssh,
        Some(BackendArg::Ec2) => sc.cluster.backend = scenario::Backend::Ec2,
        None if hosts.is_some() => sc.cluster.backend = scenario::Backend::Ssh,
        None => {}
    }
    if backend.is_some() {
        if let Some(why) = scenario::backend_override_refusal(&sc) {
            return Err(HarnessError::BadInput(format!(
                "{}: --backend {}: {why}\n  hint: drop --backend, or run the scenario as written",
                path.display(),
                sc.cluster.backend.name()
            )));
        }
    }
    if let Some(h) = hosts {
        if sc.cluster.backend != scenario::Backend::Ssh {
            return Err(HarnessError::BadInput(format!(
                "--hosts {} is the ssh backend's inventory, and this run is on `{}`\n  hint: drop --backend, or give --backend ssh",
                h.display(),
                sc.cluster.backend.name()
            )));
        }
        sc.cluster.inventory = Some(h);
    }
    if sc.cluster.backend == scenario::Backend::Ssh && sc.cluster.inventory.is_none() {
        return Err(HarnessError::BadInput(format!(
            "{}: backend ssh needs an inventory of hosts\n  hint: --hosts FILE, or inventory = \"hosts.toml\" in [cluster] (README, \"SSH hosts\")",
            path.display()
        )));
    }
    if sc.cluster.backend == scenario::Backend::Ec2 {
        // the cost guard and [cluster.ec2], before anything is launched
        let Some(e) = &sc.cluster.ec2 else {
            return Err(HarnessError::BadInput(format!(
                "{}: backend ec2 needs [cluster.ec2] (ami, instance_type, subnet, security_groups, key_name, key, user)\n  hint: README, \"EC2 instances\"",
                path.display()
            )));
        };
        harness::cluster::ec2::LaunchPlan::of(&sc.cluster, e)?;
    }
    if let Some(inv) = &sc.cluster.inventory {
        // bad inventories are refused before anything starts
        let inv_data = harness::cluster::ssh::Inventory::load(inv)?;
        inv_data.place(&sc.cluster.all_nodes(), &inv.display().to_string())?;
    }
    let mut text = std::fs::read_to_string(path)?;
    if let Some(version) = kraft {
        // after the backend override (refused above where KRaft cannot follow)
        scenario::on_kraft(&mut sc, version)?;
        // the scenario as run: the file as written, and what the run made of its cluster
        text = format!(
            "# run with --kraft {version}: Kafka {} in KRaft mode, controllers {} instead of the ZooKeeper ensemble
{text}",
            sc.cluster.kafka_version,
            sc.cluster.controllers.join(", ")
        );
    }
    let run_dir = out.unwrap_or_else(|| {
        let stamp = workers::clock::now_ms() / 1000;
        PathBuf::from("runs").join(format!("{}-{stamp}", sc.name))
    });
    let shutdown = Shutdown::on_signals();
    eprintln!("harness: running `{}` into {}", sc.name, run_dir.display());
    match run::run_scenario_holding(&sc, &text, &run_dir, &shutdown, hold) {
        Ok(_) => check_cmd(&run_dir),
        Err(e) => {
            if run_dir.join("logs").exists() {
                eprintln!(
                    "harness: the logs so far are in {}; `harness check {}` reads them",
                    run_dir.display(),
                    run_dir.display()
                );
            }
            Err(e)
        }
    }
}

/// A run's report.json (given its directory or the file itself), as JSON.
fn read_report(path: &Path) -> Result<serde_json::Value, HarnessError> {
    let file = if path.is_dir() {
        path.join(harness::rundir::REPORT_JSON)
    } else {
        path.to_path_buf()
    };
    let text = std::fs::read_to_string(&file).map_err(|e| {
        HarnessError::BadInput(format!(
            "{}: {e} (hint: give a run directory that was checked, or its report.json; `harness check DIR` makes one)",
            file.display()
        ))
    })?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| HarnessError::BadInput(format!("{}: not a report: {e}", file.display())))?;
    if !v.is_object() || v.get("verdict").is_none() {
        return Err(HarnessError::BadInput(format!(
            "{}: not a harness report (no `verdict`)",
            file.display()
        )));
    }
    Ok(v)
}

fn check_cmd(run_dir: &Path) -> Result<Exit, HarnessError> {
    let record = harness::rundir::RunRecord::load(run_dir)?;
    let path = run_dir.join(harness::rundir::SCENARIO);
    let sc = if record.backend == "live" {
        scenario::load_watch(&path)?
    } else {
        scenario::load(&path)?
    };
    let findings = check::check_run(run_dir, &sc)?;
    let rep = report::build(&sc, &record.run_id, record.started_ms, findings);
    report::write(run_dir, &rep)?;
    print!("{}", report::summary(&rep, run_dir));
    Ok(if rep.passed() { Exit::Pass } else { Exit::Fail })
}

fn zk_cmd(cmd: ZkCommand) -> Result<Exit, HarnessError> {
    use harness::zk::tree;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let tool = |e: tree::TreeError| HarnessError::Cluster(format!("zookeeper: {e}"));
    match cmd {
        ZkCommand::Copy { src, dst, path, batch, max_batch_bytes, mtime_after, prune } => rt.block_on(async {
            if batch == 0 {
                return Err(HarnessError::BadInput("--batch must be at least 1".into()));
            }
            let (s, d) = (tree::connect(&src).await.map_err(tool)?, tree::connect(&dst).await.map_err(tool)?);
            let opts = tree::CopyOptions { batch, max_batch_bytes, mtime_after, prune };
            let r = tree::copy(&s, &d, &path, &opts).await.map_err(tool)?;
            println!(
                "copied {path}: {} visited, {} created, {} updated, {} unchanged, {} deleted, {} ephemeral skipped, {} transactions, {} ms",
                r.visited, r.created, r.updated, r.unchanged, r.deleted, r.ephemerals_skipped, r.transactions, r.elapsed_ms
            );
            Ok(Exit::Pass)
        }),
        ZkCommand::Smoke { servers, log, interval, duration, tag } => {
            let parse = |v: &str, what: &str| harness::scenario::parse_duration(v).ok_or_else(|| HarnessError::BadInput(format!("{what}: `{v}` is not a duration (e.g. 200ms, 10s)")));
            let interval = parse(&interval, "--interval")?;
            let until = duration.as_deref().map(|d| parse(d, "--for")).transpose()?.map(|d| std::time::Instant::now() + d);
            let shutdown = Shutdown::on_signals();
            let stop = move || shutdown.requested() || until.is_some_and(|u| std::time::Instant::now() >= u);
            let servers: Vec<String> = servers.split(',').map(str::to_string).collect();
            let tag = tag.unwrap_or_else(|| format!("pid{}", std::process::id())).replace("kmh.run=", "");
            rt.block_on(harness::zk::smoke::run(servers, tag, &log, interval, stop))?;
            Ok(Exit::Pass)
        }
        ZkCommand::Diff { first, second, path, include_ephemerals } => rt.block_on(async {
            let (a, b) = (tree::connect(&first).await.map_err(tool)?, tree::connect(&second).await.map_err(tool)?);
            let diffs = tree::diff(&a, &b, &path, !include_ephemerals).await.map_err(tool)?;
            for d in &diffs {
                println!("{}", serde_json::to_string(d).unwrap_or_default());
            }
            println!("{} difference(s) under {path}", diffs.len());
            Ok(if diffs.is_empty() { Exit::Pass } else { Exit::Fail })
        }),
    }
}
