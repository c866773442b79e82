//! Checker throughput and memory on synthetic logs — prints figures, asserts nothing.
//!
//! `cargo run --release -p harness --example bench_checker -- [RECORDS] [PARTITIONS]`
//! (defaults 2,000,000 records on 24 partitions, 8 producers, one consumer, a final read).

use std::time::Instant;

use harness::check::{check, Attribution, CheckInput};
use harness::rundir::timeline::TimelineEvent;
use workers::log::{FLAG_IDEMPOTENT, FLAG_ORDERED, FORMAT_VERSION};
use workers::{Event, EventKind, LogHeader, LogWriter, Role, TopicSpec};

const T0_MS: u64 = 1_700_000_000_000;

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("--check-only") {
        return check_only(&argv[2..]);
    }
    let mut args = std::env::args().skip(1);
    let records: u64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(2_000_000);
    let partitions: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(24);
    let producers = 8u32;
    // BENCH_DIR: write the logs there and keep them (to profile the check alone:
    // `bench_checker --check-only DIR PARTITIONS END_MS`, as printed)
    let kept = std::env::var_os("BENCH_DIR").map(std::path::PathBuf::from);
    let temp = tempfile::tempdir().unwrap();
    let dir = kept.as_deref().unwrap_or(temp.path());
    std::fs::create_dir_all(dir).unwrap();
    let header = |role: Role, flags: u32| LogHeader {
        version: FORMAT_VERSION,
        role,
        clock: 1,
        worker: 0,
        flags,
        start_us: T0_MS * 1000,
        run_id: "bench".into(),
    };

    let t = Instant::now();
    let mut prod = LogWriter::create(
        &dir.join("p.log"),
        &header(Role::Produce, FLAG_IDEMPOTENT | FLAG_ORDERED),
    )
    .unwrap();
    let mut cons = LogWriter::create(&dir.join("c.log"), &header(Role::Consume, 0)).unwrap();
    let mut fin = LogWriter::create(&dir.join("f.log"), &header(Role::FinalRead, 0)).unwrap();
    let mut next_offset = vec![0i64; partitions as usize];
    for p in 0..partitions as i32 {
        cons.append(&Event {
            partition: p,
            ts_b: T0_MS * 1000,
            ..Event::new(EventKind::Assigned)
        })
        .unwrap();
    }
    let per = records / u64::from(producers);
    for seq in 0..per {
        for producer in 0..producers {
            let partition = ((seq + u64::from(producer)) % u64::from(partitions)) as i32;
            let offset = next_offset[partition as usize];
            next_offset[partition as usize] += 1;
            let send = (T0_MS + 1000) * 1000 + seq * 100;
            let base = Event {
                producer,
                seq,
                partition,
                offset,
                ts_a: send,
                ..Event::new(EventKind::Acked)
            };
            if seq % 1000 == 999 {
                // as a producer: a watermark every so often, not an event per send
                prod.append(&Event {
                    seq: seq + 1,
                    partition: -1,
                    offset: -1,
                    ..Event::new(EventKind::SentUpTo)
                })
                .unwrap();
            }
            prod.append(&Event {
                kind: EventKind::Acked,
                ts_b: send + 3000,
                ..base
            })
            .unwrap();
            cons.append(&Event {
                kind: EventKind::Received,
                ts_b: send + 8000,
                ..base
            })
            .unwrap();
        }
    }
    // the final read in offset order per partition, generated partition by partition (no
    // list of every record: 10^9 of them would not fit): offsets were given in (seq,
    // producer) order, and partition p holds (seq, producer) with (seq + producer) % P = p
    let mut offs = vec![0i64; partitions as usize];
    let pn = u64::from(partitions);
    for p in 0..partitions as i32 {
        for seq in 0..per {
            let producer = (u64::from(p as u32) + pn - seq % pn) % pn;
            if producer >= u64::from(producers) {
                continue;
            }
            let send = (T0_MS + 1000) * 1000 + seq * 100;
            fin.append(&Event {
                producer: producer as u32,
                seq,
                partition: p,
                offset: offs[p as usize],
                ts_a: send,
                ts_b: send + 60_000_000,
                ..Event::new(EventKind::Received)
            })
            .unwrap();
            offs[p as usize] += 1;
        }
    }
    for p in 0..partitions as i32 {
        fin.append(&Event {
            partition: p,
            offset: offs[p as usize],
            ..Event::new(EventKind::ReadComplete)
        })
        .unwrap();
    }
    prod.finish().unwrap();
    cons.finish().unwrap();
    fin.finish().unwrap();
    let gen_s = t.elapsed().as_secs_f64();
    let bytes: u64 = ["p.log", "c.log", "f.log"]
        .iter()
        .map(|f| std::fs::metadata(dir.join(f)).unwrap().len())
        .sum();
    // check in a fresh process, so its peak memory is the checker's alone
    let t = Instant::now();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .arg("--check-only")
        .arg(dir)
        .arg(partitions.to_string())
        .arg((1000 + per / 10 + 100).to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let child_total_s = t.elapsed().as_secs_f64();
    let report = String::from_utf8_lossy(&out.stdout);
    let field = |k: &str| {
        report
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .unwrap_or("?")
            .trim()
            .to_string()
    };
    if kept.is_some() {
        println!(
            "kept: --check-only {} {partitions} {}",
            dir.display(),
            1000 + per / 10 + 100
        );
    }
    let check_s: f64 = field("check_s").parse().unwrap_or(child_total_s);
    let decode_s: f64 = field("decode_s").parse().unwrap_or(0.0);
    let events: f64 = field("events").parse().unwrap_or(0.0);
    let rss: f64 = field("rss_mib").parse().unwrap_or(0.0);
    println!("records            {records}");
    println!("partitions         {partitions}");
    println!("log bytes          {:.1} MiB", bytes as f64 / 1048576.0);
    println!("generate           {gen_s:.2} s");
    println!(
        "decode alone       {decode_s:.2} s  ({:.0} records/s, {:.0} events/s on one core)",
        records as f64 / decode_s,
        events / decode_s
    );
    println!(
        "check              {check_s:.2} s  ({:.0} records/s, {:.0} events/s)",
        records as f64 / check_s,
        events / check_s
    );
    println!(
        "checker peak RSS   {rss:.0} MiB ({:.1} bytes per record)",
        rss * 1048576.0 / records as f64
    );
}

fn check_only(args: &[String]) {
    let dir = std::path::Path::new(&args[0]);
    let partitions: u32 = args[1].parse().unwrap();
    let end_ms: u64 = args[2].parse().unwrap();
    let timeline = vec![
        TimelineEvent::Phase {
            t_ms: T0_MS,
            name: "warmup".into(),
        },
        TimelineEvent::Phase {
            t_ms: T0_MS + end_ms,
            name: "final-read".into(),
        },
    ];
    let input = CheckInput {
        t0_ms: T0_MS,
        topics: vec![TopicSpec {
            name: "t".into(),
            partitions,
        }],
        attribution: Attribution::from_timeline(&timeline, T0_MS, 500),
        window_threshold_ms: 1000,
        logs: vec![dir.join("f.log"), dir.join("c.log"), dir.join("p.log")],
        silence_threshold_ms: 5000,
        producers_expected: 0,
        dead_workers: vec![],
        clocks: Default::default(),
        target_read: None,
    };
    // decoding alone, one thread, no checking: the log format's own ceiling per core
    let t = Instant::now();
    let mut events = 0u64;
    let mut batch = Vec::with_capacity(1 << 14);
    for log in &input.logs {
        let mut r = workers::LogReader::open(log).unwrap();
        loop {
            batch.clear();
            if !r.read_batch(&mut batch, 1 << 14).unwrap() {
                break;
            }
            events += batch.len() as u64;
        }
    }
    println!("decode_s {}", t.elapsed().as_secs_f64());
    println!("events {events}");
    let t = Instant::now();
    let f = check(&input).unwrap();
    assert_eq!(f.anomalies.lost, 0);
    assert_eq!(f.anomalies.unconsumed, 0);
    println!("check_s {}", t.elapsed().as_secs_f64());
    println!("rss_mib {}", peak_rss_mib());
}
