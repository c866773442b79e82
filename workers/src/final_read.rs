//! The `final-read` role: once the producers have stopped, a fresh consumer reads every
//! partition from the beginning to the high watermark it had when the read began. What it
//! reads is what the cluster durably holds; the checker compares it with what was acked, so
//! a record not yet consumed ("late") is told apart from one the cluster no longer has. It
//! also logs each partition's log start offset: a record below it was removed by retention
//! or compaction, which the checker reports as expired, not lost.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::clock::now_us;
use crate::config::WorkerConfig;
use crate::consume::Decoder;
use crate::log::{Event, EventKind, LogHeader, LogWriter};
use crate::shutdown::Shutdown;

/// Reads everything once; returns after logging a completion event for every partition.
pub fn run(cfg: &WorkerConfig, shutdown: Shutdown) -> anyhow::Result<()> {
    let header = LogHeader::for_worker(cfg, 0);
    let mut log = LogWriter::create(&cfg.log_path, &header)?;
    let mut cc = ClientConfig::new();
    cc.set("bootstrap.servers", &cfg.bootstrap)
        .set("group.id", format!("kmh-{}-final-read", cfg.run_id))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        // retention may delete the head of a log while it is read: go on from the new
        // start (what was deleted is below the log start offset logged at the end)
        .set("auto.offset.reset", "earliest")
        .set(
            "fetch.queue.backoff.ms",
            crate::consume::FETCH_QUEUE_BACKOFF_MS,
        )
        .set("log_level", "4");
    for (k, v) in &cfg.client_overrides {
        cc.set(k, v);
    }
    // what a `read_committed` reader must see, whatever else is configured: records of
    // aborted transactions found here are an anomaly, not a setting
    cc.set("isolation.level", "read_committed");
    let consumer: BaseConsumer = cc.create().context("creating the final-read consumer")?;
    let decoder = Decoder::new(cfg);
    let deadline = Instant::now() + Duration::from_millis(cfg.final_read_timeout_ms);

    // The end offsets, fixed now: retried until each partition's leader answers.
    let mut high: BTreeMap<(String, i32), i64> = BTreeMap::new();
    // The log start offsets: what retention or compaction removed is below them.
    let mut log_start: BTreeMap<(String, i32), i64> = BTreeMap::new();
    let all: Vec<(String, i32)> = cfg
        .topics
        .iter()
        .flat_map(|t| (0..t.partitions as i32).map(move |p| (t.name.clone(), p)))
        .collect();
    // Every wait below is cut to what is left of the read's timeout: on a cluster that
    // answers nothing each request waits its whole timeout, and six partitions' 5 s each
    // once made a 40 s read take 120 s more (zk-to-kraft-finalize-early, 2026-12).
    let left = |cap: Duration| {
        deadline
            .saturating_duration_since(Instant::now())
            .min(cap)
            .max(Duration::from_millis(10))
    };
    while high.len() < all.len() && Instant::now() < deadline && !shutdown.requested() {
        for (t, p) in &all {
            if high.contains_key(&(t.clone(), *p)) {
                continue;
            }
            if Instant::now() >= deadline || shutdown.requested() {
                break;
            }
            match consumer.fetch_watermarks(t, *p, left(Duration::from_secs(5))) {
                Ok((low, hw)) => {
                    high.insert((t.clone(), *p), hw);
                    log_start.insert((t.clone(), *p), low.max(0));
                }
                Err(e) => eprintln!("worker: final read: end offset of {t}/{p}: {e}"),
            }
        }
        if high.len() < all.len() {
            std::thread::sleep(left(Duration::from_millis(500)));
        }
    }

    let mut tpl = TopicPartitionList::new();
    let mut pending: BTreeSet<(String, i32)> = BTreeSet::new();
    for ((t, p), hw) in &high {
        if *hw <= 0 {
            let start = log_start.get(&(t.clone(), *p)).copied().unwrap_or(0);
            log.append(&done(&decoder, EventKind::ReadComplete, t, *p, *hw, start))?;
        } else {
            tpl.add_partition_offset(t, *p, Offset::Beginning)?;
            pending.insert((t.clone(), *p));
        }
    }
    if tpl.count() > 0 {
        consumer
            .assign(&tpl)
            .context("assigning partitions for the final read")?;
    }
    let mut last_position_check = Instant::now();
    // looks at the log starts of the partitions still pending (see below)
    let mut looks = 0usize;
    while !pending.is_empty() && Instant::now() < deadline && !shutdown.requested() {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(msg)) => {
                let e = decoder.event(&msg, 0);
                log.append(&e)?;
                let key = (
                    rdkafka::Message::topic(&msg).to_string(),
                    rdkafka::Message::partition(&msg),
                );
                if rdkafka::Message::offset(&msg) + 1 >= high[&key] {
                    complete(
                        &mut log,
                        &decoder,
                        &mut pending,
                        &key,
                        high[&key],
                        &log_start,
                    )?;
                }
            }
            Some(Err(e)) => eprintln!("worker: final read: {e}"),
            None => {}
        }
        // A partition whose last offsets hold no data record (control records) ends by
        // position rather than by a message.
        if last_position_check.elapsed() > Duration::from_secs(2) {
            last_position_check = Instant::now();
            if let Ok(pos) = consumer.position() {
                for el in pos.elements() {
                    let key = (el.topic().to_string(), el.partition());
                    if let (Some(hw), Offset::Offset(o)) = (high.get(&key), el.offset()) {
                        if o >= *hw {
                            complete(&mut log, &decoder, &mut pending, &key, *hw, &log_start)?;
                        }
                    }
                }
            }
            // A partition whose log retention emptied up to the end offset has nothing
            // left to read, and the client no position to show for it: its log start
            // says it is done.
            // (a second at most per look, from a rotating first partition: one whose leader
            // does not answer must not hold up reading the others)
            let mut waiting: Vec<(String, i32)> = pending.iter().cloned().collect();
            if !waiting.is_empty() {
                let turn = looks % waiting.len();
                waiting.rotate_left(turn);
            }
            looks += 1;
            let budget = Instant::now() + left(Duration::from_secs(1));
            for key in waiting {
                let left = budget.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    break;
                }
                let Ok((low, _)) = consumer.fetch_watermarks(&key.0, key.1, left) else {
                    continue;
                };
                if low >= high[&key] {
                    log_start.insert(key.clone(), low);
                    complete(
                        &mut log,
                        &decoder,
                        &mut pending,
                        &key,
                        high[&key],
                        &log_start,
                    )?;
                }
            }
        }
    }
    // Retention may have moved a log's start while it was read: learn the starts again
    // (briefly: a partition that does not answer keeps the start it had; 5 s at most after
    // a read that did not finish, whose cluster is likely not answering).
    let finished = pending.is_empty() && high.len() == all.len();
    let recheck_until = Instant::now()
        + if finished {
            Duration::from_secs(30)
        } else {
            Duration::from_secs(5)
        };
    let mut moved = BTreeSet::new();
    for (key, start) in log_start.iter_mut() {
        if Instant::now() > recheck_until || shutdown.requested() {
            break;
        }
        let wait = recheck_until
            .saturating_duration_since(Instant::now())
            .min(Duration::from_secs(2));
        if let Ok((low, _)) = consumer.fetch_watermarks(&key.0, key.1, wait) {
            if low > *start {
                *start = low;
                moved.insert(key.clone());
            }
        }
    }
    for (t, p) in &all {
        let key = (t.clone(), *p);
        let start = log_start.get(&key).copied().unwrap_or(0);
        if pending.contains(&key) || !high.contains_key(&key) {
            let hw = high.get(&key).copied().unwrap_or(-1);
            eprintln!("worker: final read: {t}/{p} incomplete (end offset {hw})");
            log.append(&done(&decoder, EventKind::ReadIncomplete, t, *p, hw, start))?;
        } else if moved.contains(&key) {
            // complete already; this second completion carries the later log start
            log.append(&done(
                &decoder,
                EventKind::ReadComplete,
                t,
                *p,
                high[&key],
                start,
            ))?;
        }
    }
    log.finish()?;
    Ok(())
}

/// Marks a partition read to its end (once).
fn complete(
    log: &mut LogWriter,
    decoder: &Decoder,
    pending: &mut BTreeSet<(String, i32)>,
    key: &(String, i32),
    hw: i64,
    log_start: &BTreeMap<(String, i32), i64>,
) -> std::io::Result<()> {
    if pending.remove(key) {
        let start = log_start.get(key).copied().unwrap_or(0);
        log.append(&done(
            decoder,
            EventKind::ReadComplete,
            &key.0,
            key.1,
            hw,
            start,
        ))?;
    }
    Ok(())
}

/// A completion event: the partition's end offset `hw` and log start offset `start`.
fn done(
    decoder: &Decoder,
    kind: EventKind,
    topic: &str,
    partition: i32,
    hw: i64,
    start: i64,
) -> Event {
    Event {
        topic: decoder.topic(topic),
        partition,
        offset: hw,
        seq: start.max(0) as u64,
        ts_b: now_us(),
        ..Event::new(kind)
    }
}
