//! The `consume` role: consumer instances in one group (subscribe), logging every delivery
//! and every rebalance, so the checker can tell a re-delivery after a rebalance (normal for
//! at-least-once) from a consumer that skipped or went back on its own.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, ClientContext};

use crate::clock::now_us;
use crate::config::WorkerConfig;
use crate::log::{Event, EventKind, LogHeader, LogWriter};
use crate::record::{run_hash, DecodeError, RecordHeader};
use crate::shutdown::Shutdown;
use crate::status::Counters;

/// Shared by the consume and final-read roles: turns one fetched record into a log event.
pub(crate) struct Decoder {
    run_hash: u64,
    /// Each topic's index in the log (its place in the config's `topics`).
    pub(crate) topic_index: HashMap<String, u16>,
}

impl Decoder {
    pub(crate) fn new(cfg: &WorkerConfig) -> Decoder {
        Decoder {
            run_hash: run_hash(&cfg.run_id),
            topic_index: cfg
                .topics
                .iter()
                .enumerate()
                .map(|(i, t)| (t.name.clone(), i as u16))
                .collect(),
        }
    }

    pub(crate) fn topic(&self, name: &str) -> u16 {
        self.topic_index.get(name).copied().unwrap_or(u16::MAX)
    }

    pub(crate) fn event<M: Message>(&self, msg: &M, instance: u32) -> Event {
        let mut e = Event {
            topic: self.topic(msg.topic()),
            partition: msg.partition(),
            offset: msg.offset(),
            ts_b: now_us(),
            instance,
            ..Event::new(EventKind::Received)
        };
        match RecordHeader::decode(msg.payload().unwrap_or(&[])) {
            Ok(h) if h.run_hash == self.run_hash => {
                e.producer = h.producer;
                e.seq = h.seq;
                e.ts_a = h.send_ts_us;
            }
            Ok(_) | Err(DecodeError::Foreign) => e.kind = EventKind::Foreign,
            Err(DecodeError::Corrupt) => e.kind = EventKind::Corrupt,
        }
        e
    }
}

/// A group consumer's context (the consume and copy roles): logs each rebalance's
/// revocations and assignments, and counts rebalances.
pub(crate) struct GroupLog {
    pub(crate) log: Arc<Mutex<LogWriter>>,
    /// Each topic's index in the log.
    pub(crate) topics: HashMap<String, u16>,
    /// The client instance.
    pub(crate) instance: u32,
    /// Revocations and assignments seen so far (the copy role drops a batch read across
    /// one).
    pub(crate) rebalances: AtomicU64,
}

impl GroupLog {
    /// A context logging to `log` for client `instance`.
    pub(crate) fn new(log: &Arc<Mutex<LogWriter>>, decoder: &Decoder, instance: u32) -> GroupLog {
        GroupLog {
            log: log.clone(),
            topics: decoder.topic_index.clone(),
            instance,
            rebalances: AtomicU64::new(0),
        }
    }

    fn log_partitions(&self, kind: EventKind, tpl: &rdkafka::TopicPartitionList) {
        let now = now_us();
        let mut log = self.log.lock().unwrap();
        for el in tpl.elements() {
            let e = Event {
                topic: self.topics.get(el.topic()).copied().unwrap_or(u16::MAX),
                partition: el.partition(),
                ts_b: now,
                instance: self.instance,
                ..Event::new(kind)
            };
            let _ = log.append(&e);
        }
        let _ = log.flush();
    }
}

impl ClientContext for GroupLog {}

impl ConsumerContext for GroupLog {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            self.rebalances.fetch_add(1, Ordering::SeqCst);
            self.log_partitions(EventKind::Revoked, tpl);
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            self.rebalances.fetch_add(1, Ordering::SeqCst);
            self.log_partitions(EventKind::Assigned, tpl);
        }
    }
}

/// How long librdkafka waits to fetch again once a partition's prefetch queue was full.
pub const FETCH_QUEUE_BACKOFF_MS: &str = "10";

/// Runs the consume role until shutdown; returns after the log is flushed.
pub fn run(cfg: &WorkerConfig, shutdown: Shutdown) -> anyhow::Result<()> {
    let header = LogHeader::for_worker(cfg, 0);
    let log = Arc::new(Mutex::new(LogWriter::create(&cfg.log_path, &header)?));
    let counters = Arc::new(Counters::default());
    let ticker = crate::status::spawn_ticker(
        "consume",
        cfg.worker_index,
        log.clone(),
        counters.clone(),
        shutdown,
    );
    let topic_names: Vec<&str> = cfg.topics.iter().map(|t| t.name.as_str()).collect();

    let mut threads = Vec::new();
    for i in 0..cfg.instances {
        let instance = cfg.first_instance_id + i;
        let decoder = Decoder::new(cfg);
        let ctx = GroupLog::new(&log, &decoder, instance);
        let consumer = new_consumer(cfg, &cfg.bootstrap, instance, ctx, &topic_names)?;
        let mut discovery =
            crate::discovery::Discovery::new(cfg.bootstrap_file.clone(), "consume", &cfg.bootstrap);
        let cfg = cfg.clone();
        let topic_names: Vec<String> = topic_names.iter().map(|t| t.to_string()).collect();
        let log = log.clone();
        let counters = counters.clone();
        let group_log = log.clone();
        threads.push(std::thread::spawn(move || {
            let mut consumer = consumer;
            while !shutdown.requested() {
                if let Some(servers) = discovery.changed() {
                    // moved to other brokers: commit, leave the group (the revocation is
                    // logged), join again through the new addresses
                    eprintln!("worker: consumer {instance}: bootstrap servers are now {servers}; reconnecting");
                    let _ = consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync);
                    consumer.unsubscribe();
                    let _ = consumer.poll(Duration::from_millis(200));
                    let ctx = GroupLog::new(&group_log, &decoder, instance);
                    let names: Vec<&str> = topic_names.iter().map(String::as_str).collect();
                    match new_consumer(&cfg, &servers, instance, ctx, &names) {
                        Ok(c) => {
                            // the old client is gone (its revocation logged): what this
                            // instance logs from here on happened on the named cluster
                            consumer = c;
                            let moved = Event {
                                instance,
                                code: i32::from(discovery.cluster()),
                                ts_b: now_us(),
                                ..Event::new(EventKind::Reconnected)
                            };
                            if let Err(err) = log.lock().unwrap().append(&moved) {
                                eprintln!("worker: cannot append to log: {err}");
                            }
                            Counters::bump(&counters.switches);
                        }
                        Err(e) => {
                            eprintln!("worker: consumer {instance}: {e:#}");
                            Counters::bump(&counters.errors);
                        }
                    }
                }
                match consumer.poll(Duration::from_millis(100)) {
                    None => {}
                    Some(Ok(msg)) => {
                        let e = decoder.event(&msg, instance);
                        if e.kind == EventKind::Received {
                            Counters::bump(&counters.received);
                        }
                        if let Err(err) = log.lock().unwrap().append(&e) {
                            eprintln!("worker: cannot append to log: {err}");
                        }
                    }
                    Some(Err(err)) => {
                        Counters::bump(&counters.errors);
                        eprintln!("worker: consumer {instance}: {err}");
                    }
                }
            }
            // leaving the group logs the revocation through the rebalance callback
            consumer.unsubscribe();
            let _ = consumer.poll(Duration::from_millis(200));
        }));
    }
    for t in threads {
        let _ = t.join();
    }
    ticker.stop();
    counters.print("consume", cfg.worker_index);
    let log = Arc::try_unwrap(log).map_err(|_| anyhow::anyhow!("log still shared at exit"))?;
    log.into_inner().unwrap().finish()?;
    Ok(())
}

/// One group consumer (`instance`) connected to `bootstrap`, subscribed to `topics`.
fn new_consumer(
    cfg: &WorkerConfig,
    bootstrap: &str,
    instance: u32,
    ctx: GroupLog,
    topics: &[&str],
) -> anyhow::Result<BaseConsumer<GroupLog>> {
    let mut cc = ClientConfig::new();
    cc.set("bootstrap.servers", bootstrap)
        .set("group.id", &cfg.consumer.group_id)
        .set("client.id", format!("kmh-{}-c{instance}", cfg.run_id))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set(
            "session.timeout.ms",
            cfg.consumer.session_timeout_ms.to_string(),
        )
        .set("partition.assignment.strategy", "range")
        // librdkafka stops fetching a partition whose prefetch queue is full and waits
        // this long before it looks again (1 s by default): a consumer that drains its
        // queue faster then idles, a third of ConsumerPerformance's rate in `harness bench`
        .set("fetch.queue.backoff.ms", FETCH_QUEUE_BACKOFF_MS)
        // librdkafka's default, said out loud: records of aborted transactions, and of
        // open ones, are not delivered — unless the scenario asks for the unsafe setting
        .set(
            "isolation.level",
            if cfg.consumer.read_uncommitted {
                "read_uncommitted"
            } else {
                "read_committed"
            },
        )
        .set("log_level", "4");
    for (k, v) in &cfg.client_overrides {
        cc.set(k, v);
    }
    let consumer: BaseConsumer<GroupLog> = cc
        .create_with_context(ctx)
        .with_context(|| format!("creating consumer instance {instance} for {bootstrap}"))?;
    consumer.subscribe(topics).context("subscribing")?;
    Ok(consumer)
}
