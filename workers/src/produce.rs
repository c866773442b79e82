//! The `produce` role: paced, sequence-numbered records; every outcome logged.
//!
//! Each instance is its own librdkafka producer with its own producer id. Record `seq` goes
//! to topic `seq % T` and, within it, partition `(seq / T) % P` — explicit partitions, so a
//! partition that is down keeps receiving attempts and its unavailability is measured
//! rather than routed around. The delivery callback classifies failures with librdkafka's
//! message status: `NOT_PERSISTED` is a definite failure, anything else is indeterminate.
//! A send the client refuses before queueing it (a full queue) is logged as `Refused` and
//! tried again with the same `seq`. Each record's key is its producer and `seq`, unique, so
//! log compaction removes none of them.
//!
//! A send is not logged one by one: sequence numbers go out in order, so each instance logs
//! "sent up to N" ([`EventKind::SentUpTo`]) at most every [`FLUSH_INTERVAL`] while it
//! sends, and each outcome event carries its record's send time.
//!
//! With transactions (`producer.transactions`), each instance has its own
//! `transactional.id` and sends its records in transactions of a fixed size; every
//! `abort_every`-th is aborted on purpose. A transaction's end is logged as one
//! [`EventKind::Transaction`] event with its records' sequence range and how it ended
//! (see [`end_transaction`]); its records' `Acked` events then say only that a broker
//! appended them.
//!
//! With idempotence the client also logs when it bumps its epoch or takes a new producer
//! id ([`crate::renewal`]): librdkafka's `eos` debug lines arrive on the same queue as the
//! delivery reports, so a record without an outcome when the renewal is logged was in
//! flight across it. What had been sent then is logged just before it, from [`SentMark`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rdkafka::bindings::{
    rd_kafka_message_broker_id, rd_kafka_message_status, rd_kafka_msg_status_t,
};
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{
    BaseRecord, DeliveryResult, Producer, ProducerContext, PurgeConfig, ThreadedProducer,
};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, ClientContext};

use crate::clock::now_us;
use crate::config::WorkerConfig;
use crate::log::{
    Event, EventKind, LogHeader, LogWriter, RenewalEvent, TransactionEvent, TransactionOutcome,
    FLAG_IDEMPOTENT, FLAG_ORDERED, FLAG_TRANSACTIONAL, FLUSH_INTERVAL,
};
use crate::record::{run_hash, RecordHeader};
use crate::renewal::{RenewalKind, RenewalWatch};
use crate::shutdown::Shutdown;
use crate::status::Counters;
use crate::transaction_calls;

/// What a delivery callback needs to log the outcome of one record.
struct InFlight {
    producer: u32,
    seq: u64,
    topic: u16,
    partition: i32,
    send_ts: u64,
}

/// How far one producer instance has sent: shared by its send loop and its client's
/// callbacks, which log it before a renewal.
#[derive(Default)]
struct SentMark {
    /// Every sequence number below this has been handed to the client.
    up_to: AtomicU64,
    /// When the last of them was sent (µs).
    last_send_us: AtomicU64,
}

impl SentMark {
    /// The watermark event of producer `producer`, client `instance`.
    fn event(&self, producer: u32, instance: u32) -> Event {
        Event {
            producer,
            instance,
            seq: self.up_to.load(Ordering::Acquire),
            ts_a: self.last_send_us.load(Ordering::Acquire),
            ..Event::new(EventKind::SentUpTo)
        }
    }
}

/// librdkafka context of one producer instance: where outcomes go.
struct ProducerLog {
    /// The worker's log, shared by its instances.
    log: Arc<Mutex<LogWriter>>,
    /// The worker's status counters.
    counters: Arc<Counters>,
    /// This instance's index within the worker.
    instance: u32,
    /// This instance's producer id (in every record it sends).
    producer: u32,
    /// Follows the client's idempotence log lines for epoch bumps and new producer ids.
    renewals: Mutex<RenewalWatch>,
    /// How far this instance has sent.
    sent: Arc<SentMark>,
}

impl ClientContext for ProducerLog {
    /// Picks librdkafka's epoch bumps out of its `eos` debug lines (asked for only with
    /// idempotence); every other line is dropped, as the client's logging was before.
    fn log(&self, _level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        let now = now_us();
        let Some(r) = self.renewals.lock().unwrap().observe(fac, log_message, now) else {
            return;
        };
        let e = Event::for_renewal(
            self.producer,
            self.instance,
            &RenewalEvent {
                kind: r.kind,
                producer_id: r.producer_id.max(0) as u64,
                epoch: i32::from(r.epoch),
                reason: r.reason,
                drain_began_us: r.began_us,
                took_effect_us: r.done_us,
            },
        );
        eprintln!(
            "worker: producer {} {} (now producer id {}, epoch {}) after {}",
            self.producer,
            match r.kind {
                RenewalKind::EpochBump => "bumped its epoch",
                RenewalKind::NewProducerId => "took a new producer id",
            },
            r.producer_id,
            r.epoch,
            r.reason.describe()
        );
        // what was sent when the renewal took effect, then the renewal: the checker takes
        // the records in flight across it from these two
        let mark = self.sent.event(self.producer, self.instance);
        let mut log = self.log.lock().unwrap();
        if let Err(err) = log.append(&mark).and_then(|_| log.append(&e)) {
            eprintln!("worker: cannot append to log: {err}");
        }
    }
}

impl ProducerContext for ProducerLog {
    type DeliveryOpaque = Box<InFlight>;

    fn delivery(&self, result: &DeliveryResult<'_>, f: Box<InFlight>) {
        let now = now_us();
        let mut e = Event {
            topic: f.topic,
            producer: f.producer,
            seq: f.seq,
            partition: f.partition,
            ts_a: f.send_ts,
            ts_b: now,
            instance: self.instance,
            ..Event::new(EventKind::Acked)
        };
        match result {
            Ok(msg) => {
                e.partition = msg.partition();
                e.offset = msg.offset();
                // which broker acknowledged it: tells a split brain from a failover
                // SAFETY: `msg` is a live message borrowed for the callback's duration.
                e.code = unsafe { rd_kafka_message_broker_id(msg.ptr()) };
                Counters::bump(&self.counters.acked);
            }
            Err((err, msg)) => {
                // SAFETY: `msg` is a live message borrowed for the callback's duration.
                let status = unsafe { rd_kafka_message_status(msg.ptr()) };
                e.code = error_code(err);
                if status == rd_kafka_msg_status_t::RD_KAFKA_MSG_STATUS_NOT_PERSISTED {
                    e.kind = EventKind::Failed;
                    Counters::bump(&self.counters.failed);
                } else {
                    e.kind = EventKind::Indeterminate;
                    Counters::bump(&self.counters.indeterminate);
                }
            }
        }
        if let Err(err) = self.log.lock().unwrap().append(&e) {
            eprintln!("worker: cannot append to log: {err}");
        }
    }
}

/// At most this many sends of one instance before the next instance's turn (what bounds
/// a turn when the rate is unlimited).
const UNLIMITED_BURST: u32 = 1024;

/// A record's key: its producer and sequence number (12 bytes, big-endian).
fn record_key(producer: u32, seq: u64) -> [u8; 12] {
    let mut key = [0u8; 12];
    key[..4].copy_from_slice(&producer.to_be_bytes());
    key[4..].copy_from_slice(&seq.to_be_bytes());
    key
}

fn error_code(err: &KafkaError) -> i32 {
    err.rdkafka_error_code().map(|c| c as i32).unwrap_or(-1)
}

/// Runs the producer role until shutdown is requested; returns after the log is flushed.
pub fn run(cfg: &WorkerConfig, shutdown: Shutdown) -> anyhow::Result<()> {
    let p = &cfg.producer;
    // the config was validated when loaded; a caller that built one by hand gets the
    // same refusal here
    cfg.check()?;
    let Some(interval) = p.send_interval() else {
        anyhow::bail!("producer rate {:?} gives no send interval", p.rate);
    };
    let flags = if p.idempotence { FLAG_IDEMPOTENT } else { 0 }
        | if p.ordered() { FLAG_ORDERED } else { 0 }
        | if p.transactions.is_some() {
            FLAG_TRANSACTIONAL
        } else {
            0
        };
    let header = LogHeader::for_worker(cfg, flags);
    let log = Arc::new(Mutex::new(LogWriter::create(&cfg.log_path, &header)?));
    let counters = Arc::new(Counters::default());

    let mut discovery =
        crate::discovery::Discovery::new(cfg.bootstrap_file.clone(), "produce", &cfg.bootstrap);
    let marks: Vec<Arc<SentMark>> = (0..cfg.instances).map(|_| Arc::default()).collect();
    let mut producers = Vec::new();
    for i in 0..cfg.instances {
        let id = cfg.first_instance_id + i;
        let producer = new_producer(cfg, &cfg.bootstrap, i, &log, &counters, &marks[i as usize])?;
        if p.transactions.is_some() && !init_transactions(&producer, cfg, &shutdown)? {
            return Ok(());
        }
        producers.push((id, producer));
    }
    // each instance's open transaction, and how many it has ended
    let mut txns = Transactions {
        cfg,
        log: &log,
        counters: &counters,
        marks: &marks,
        shutdown,
        bootstrap: cfg.bootstrap.clone(),
        open: vec![None; producers.len()],
        ended: vec![0; producers.len()],
    };

    // Connect and learn the partition leaders before the first send, so the start-up of
    // the client is not measured as unavailability of the cluster; at most three request
    // timeouts in all, then send anyway (an unreachable cluster is what it is).
    let deadline = Instant::now() + Duration::from_millis(3 * u64::from(p.request_timeout_ms));
    for (_, producer) in &producers {
        for t in &cfg.topics {
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero()
                    || shutdown.requested()
                    || producer
                        .client()
                        .fetch_metadata(Some(&t.name), left.min(Duration::from_secs(1)))
                        .is_ok()
                {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100).min(left));
            }
        }
    }

    let ticker = crate::status::spawn_ticker(
        "produce",
        cfg.worker_index,
        log.clone(),
        counters.clone(),
        shutdown,
    );

    let hash = run_hash(&cfg.run_id);
    // unlimited (a zero interval): no pacing, bursts of at most UNLIMITED_BURST per
    // instance in turn
    let start = Instant::now();
    let mut due: Vec<Instant> = (0..producers.len())
        // spread the instances' first sends over one interval
        .map(|i| start + interval.mul_f64(i as f64 / producers.len() as f64))
        .collect();
    let mut next_seq = vec![0u64; producers.len()];
    // when each instance last logged how far it has sent
    let mut marked = vec![start; producers.len()];
    let mut buf = Vec::with_capacity(p.size);
    let topics = &cfg.topics;
    while !shutdown.requested() {
        if let Some(servers) = discovery.changed() {
            // Moved to other brokers (a migration rewrote the discovery file): drain each
            // client, so no record of the old one is still in flight when the new one sends
            // the same partition (order kept), then connect anew; sequences go on.
            eprintln!("worker: bootstrap servers are now {servers}; reconnecting");
            txns.bootstrap = servers.clone();
            let drain = Duration::from_millis(u64::from(p.delivery_timeout_ms) + 2000);
            for (i, (id, producer)) in producers.iter_mut().enumerate() {
                txns.end(i, *id, producer)?;
                let _ = producer.flush(drain);
                producer.purge(PurgeConfig::default().queue().inflight());
                let _ = producer.flush(Duration::from_secs(2));
                *producer = new_producer(cfg, &servers, i as u32, &log, &counters, &marks[i])?;
                // every outcome of the old client is logged (drained, or purged as
                // indeterminate): what this instance logs from here on happened on the
                // named cluster
                log.lock().unwrap().append(&Event {
                    producer: *id,
                    instance: i as u32,
                    code: i32::from(discovery.cluster()),
                    ts_b: now_us(),
                    ..Event::new(EventKind::Reconnected)
                })?;
                if p.transactions.is_some() && !init_transactions(producer, cfg, &shutdown)? {
                    break;
                }
                Counters::bump(&counters.switches);
            }
        }
        let now = Instant::now();
        let mut earliest = now + Duration::from_millis(5);
        for (i, (id, producer)) in producers.iter_mut().enumerate() {
            // never burst more than a second's worth after a stall
            if now.duration_since(due[i]) > Duration::from_secs(1) {
                due[i] = now - Duration::from_secs(1);
            }
            let mut burst = 0;
            while due[i] <= now && burst < UNLIMITED_BURST {
                burst += 1;
                let seq = next_seq[i];
                let (topic, partition) = cfg.placement(seq);
                if p.transactions.is_some() && !txns.begin(i, seq, producer)? {
                    break;
                }
                let send_ts = now_us();
                RecordHeader {
                    run_hash: hash,
                    producer: *id,
                    seq,
                    send_ts_us: send_ts,
                }
                .encode_into(p.size, &mut buf);
                // unique per record, so a compacted topic keeps every record (compaction
                // keeps the last record of each key); copies of one record share it
                let key = record_key(*id, seq);
                let opaque = Box::new(InFlight {
                    producer: *id,
                    seq,
                    topic: topic as u16,
                    partition,
                    send_ts,
                });
                let record = BaseRecord::with_opaque_to(&topics[topic].name, opaque)
                    .partition(partition)
                    .key(&key)
                    .payload(&buf);
                match producer.send(record) {
                    Ok(()) => {
                        next_seq[i] += 1;
                        marks[i].last_send_us.store(send_ts, Ordering::Release);
                        marks[i].up_to.store(next_seq[i], Ordering::Release);
                        if now.duration_since(marked[i]) >= FLUSH_INTERVAL {
                            marked[i] = now;
                            log.lock().unwrap().append(&marks[i].event(*id, i as u32))?;
                        }
                        Counters::bump(&counters.sent);
                        due[i] += interval;
                        if txns.sent(i) {
                            txns.end(i, *id, producer)?;
                        }
                    }
                    Err((e, _)) => {
                        // refused before it was queued: never sent, the same seq again
                        // later; logged, so a producer that cannot send is seen trying
                        let full = matches!(
                            e,
                            KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)
                        );
                        if !full {
                            eprintln!("worker: producer {id} could not enqueue seq {seq}: {e}");
                        }
                        let refused = Event {
                            topic: topic as u16,
                            producer: *id,
                            seq,
                            partition,
                            code: error_code(&e),
                            ts_a: send_ts,
                            ts_b: send_ts,
                            instance: i as u32,
                            ..Event::new(EventKind::Refused)
                        };
                        log.lock().unwrap().append(&refused)?;
                        Counters::bump(&counters.errors);
                        // back-pressure clears fast; other refusals (no such partition)
                        // need metadata to change
                        due[i] = now + Duration::from_millis(if full { 10 } else { 100 });
                        break;
                    }
                }
            }
            earliest = earliest.min(due[i]);
        }
        let now = Instant::now();
        if earliest > now {
            std::thread::sleep(earliest - now);
        }
    }

    // Open transactions end as they would have (committed, or aborted if planned).
    for (i, (id, producer)) in producers.iter_mut().enumerate() {
        txns.end(i, *id, producer)?;
    }
    // How far each instance sent, in the end.
    for (i, (id, _)) in producers.iter().enumerate() {
        if next_seq[i] > 0 {
            log.lock().unwrap().append(&marks[i].event(*id, i as u32))?;
        }
    }
    // Settle: give in-flight records until the delivery timeout, then purge what is left
    // so every sent record ends with an outcome in the log.
    let settle = Duration::from_millis(u64::from(p.delivery_timeout_ms) + 2000);
    for (_, producer) in &producers {
        let _ = producer.flush(settle);
    }
    for (_, producer) in &producers {
        producer.purge(PurgeConfig::default().queue().inflight());
        let _ = producer.flush(Duration::from_secs(2));
    }
    drop(producers);
    ticker.stop();
    counters.print("produce", cfg.worker_index);
    let log = Arc::try_unwrap(log).map_err(|_| anyhow::anyhow!("log still shared at exit"))?;
    log.into_inner().unwrap().finish()?;
    Ok(())
}

/// A transaction an instance has begun: its first record and how many it holds so far.
#[derive(Clone, Copy)]
struct OpenTransaction {
    first_seq: u64,
    records: u64,
    began_us: u64,
}

/// The transactions of a worker's instances (only with `producer.transactions`).
struct Transactions<'a> {
    cfg: &'a WorkerConfig,
    log: &'a Arc<Mutex<LogWriter>>,
    counters: &'a Arc<Counters>,
    marks: &'a [Arc<SentMark>],
    shutdown: Shutdown,
    /// The bootstrap servers the clients use now (a discovery file may move them).
    bootstrap: String,
    /// Each instance's open transaction.
    open: Vec<Option<OpenTransaction>>,
    /// How many transactions each instance has ended (which to abort on purpose).
    ended: Vec<u64>,
}

impl Transactions<'_> {
    /// Makes sure instance `i` has a transaction open before it sends `seq`. `Ok(false)`:
    /// shutdown came while its client was being replaced.
    fn begin(
        &mut self,
        i: usize,
        seq: u64,
        producer: &mut ThreadedProducer<ProducerLog>,
    ) -> anyhow::Result<bool> {
        if self.open[i].is_some() {
            return Ok(true);
        }
        if let Err(e) = producer.begin_transaction() {
            // a client that cannot begin is in a state only a new one leaves
            eprintln!("worker: producer instance {i} cannot begin a transaction: {e}");
            if !self.replace(i, producer)? {
                return Ok(false);
            }
            producer
                .begin_transaction()
                .context("beginning a transaction on a new client")?;
        }
        self.open[i] = Some(OpenTransaction {
            first_seq: seq,
            records: 0,
            began_us: now_us(),
        });
        Ok(true)
    }

    /// Counts a record sent in instance `i`'s transaction; true when it is full (never
    /// without transactions: no transaction is open).
    fn sent(&mut self, i: usize) -> bool {
        let (Some(open), Some(t)) = (&mut self.open[i], &self.cfg.producer.transactions) else {
            return false;
        };
        open.records += 1;
        open.records >= u64::from(t.records)
    }

    /// Ends instance `i`'s open transaction (producer id `id`) — committed, or aborted
    /// when it is one to abort on purpose — and logs how it ended.
    fn end(
        &mut self,
        i: usize,
        id: u32,
        producer: &mut ThreadedProducer<ProducerLog>,
    ) -> anyhow::Result<()> {
        let (Some(open), Some(t)) = (self.open[i].take(), self.cfg.producer.transactions) else {
            return Ok(());
        };
        let p = &self.cfg.producer;
        // the commit first delivers what the transaction still holds
        let timeout = Duration::from_millis(u64::from(p.delivery_timeout_ms) + 2000);
        if open.records == 0 {
            // begun, but every send was refused: nothing to log
            if producer.abort_transaction(timeout).is_err() {
                self.replace(i, producer)?;
            }
            return Ok(());
        }
        let abort = t.aborts(self.ended[i]);
        self.ended[i] += 1;
        let (outcome, replace) = end_transaction(producer, abort, timeout);
        let e = Event::for_transaction(
            id,
            i as u32,
            &TransactionEvent {
                first_seq: open.first_seq,
                records: open.records,
                outcome,
                began_us: open.began_us,
                ended_us: now_us(),
            },
        );
        self.log.lock().unwrap().append(&e)?;
        if replace {
            self.replace(i, producer)?;
        }
        Ok(())
    }

    /// Replaces instance `i`'s client by a new one with the same `transactional.id`
    /// (which fences the old one: the coordinator ends what it left open). `Ok(false)`:
    /// shutdown came first.
    fn replace(
        &mut self,
        i: usize,
        producer: &mut ThreadedProducer<ProducerLog>,
    ) -> anyhow::Result<bool> {
        eprintln!("worker: producer instance {i}: a new transactional client");
        producer.purge(PurgeConfig::default().queue().inflight());
        *producer = new_producer(
            self.cfg,
            &self.bootstrap,
            i as u32,
            self.log,
            self.counters,
            &self.marks[i],
        )?;
        Counters::bump(&self.counters.errors);
        init_transactions(producer, self.cfg, &self.shutdown)
    }
}

/// Ends the open transaction of `producer`: commits it (or aborts it when `abort`), and
/// says how it ended and whether the client must be replaced. librdkafka's rules: a
/// retriable error is tried again within `timeout`; an error that requires an abort is
/// answered by one (`AbortedAfterError`); anything else — a fatal error, time out — leaves
/// the outcome unknown (`Unknown`, and a new client, whose initialisation fences this one).
pub(crate) fn end_transaction<C: ProducerContext + 'static>(
    producer: &ThreadedProducer<C>,
    abort: bool,
    timeout: Duration,
) -> (TransactionOutcome, bool) {
    let deadline = Instant::now() + timeout;
    let abort_now = |outcome: TransactionOutcome| loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match producer.abort_transaction(left.max(Duration::from_millis(100))) {
            Ok(()) => return (outcome, false),
            Err(KafkaError::Transaction(e)) if e.is_retriable() && !left.is_zero() => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => {
                eprintln!("worker: aborting a transaction: {e}; its outcome is unknown");
                return (TransactionOutcome::Unknown, true);
            }
        }
    };
    if abort {
        // deliver its records first: an abort on purpose is one of written records, which
        // the abort marker must then hide (aborting right away would mostly purge them
        // from the client's queue, and the log would never hold them)
        let _ = transaction_calls::flush(producer, timeout);
        return abort_now(TransactionOutcome::Aborted);
    }
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match transaction_calls::commit(producer, left.max(Duration::from_millis(100))) {
            Ok(()) => return (TransactionOutcome::Committed, false),
            Err(e) if e.requires_abort => {
                eprintln!("worker: a commit needs an abort: {e}");
                return abort_now(TransactionOutcome::AbortedAfterError);
            }
            Err(e) if e.retriable && !left.is_zero() => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => {
                eprintln!("worker: committing a transaction: {e}; its outcome is unknown");
                return (TransactionOutcome::Unknown, true);
            }
        }
    }
}

/// Initialises a transactional client (fencing any earlier one with its id), trying again
/// while the error is retriable (the coordinator may be restarting) until shutdown.
/// `Ok(false)`: shutdown came first.
pub(crate) fn init_transactions<C: ProducerContext + 'static>(
    producer: &ThreadedProducer<C>,
    cfg: &WorkerConfig,
    shutdown: &Shutdown,
) -> anyhow::Result<bool> {
    let timeout = Duration::from_millis(3 * u64::from(cfg.producer.request_timeout_ms));
    loop {
        if shutdown.requested() {
            return Ok(false);
        }
        match producer.init_transactions(timeout) {
            Ok(()) => return Ok(true),
            Err(KafkaError::Transaction(e)) if !e.is_fatal() => {
                eprintln!("worker: initialising transactions: {e}; trying again");
                shutdown.sleep(Duration::from_millis(500));
            }
            Err(e) => return Err(e).context("initialising transactions"),
        }
    }
}

/// `message.timeout.ms`: the delivery timeout, but never above a transactional client's
/// transaction timeout (librdkafka refuses a longer one: a record cannot outlive the
/// transaction it belongs to).
fn delivery_timeout_ms(p: &crate::config::ProducerSettings) -> u32 {
    match &p.transactions {
        Some(t) => p.delivery_timeout_ms.min(t.timeout_ms),
        None => p.delivery_timeout_ms,
    }
}

/// One producer instance (`instance` of this worker) connected to `bootstrap`.
fn new_producer(
    cfg: &WorkerConfig,
    bootstrap: &str,
    instance: u32,
    log: &Arc<Mutex<LogWriter>>,
    counters: &Arc<Counters>,
    sent: &Arc<SentMark>,
) -> anyhow::Result<ThreadedProducer<ProducerLog>> {
    let p = &cfg.producer;
    let id = cfg.first_instance_id + instance;
    let mut cc = ClientConfig::new();
    cc.set("bootstrap.servers", bootstrap)
        .set("client.id", format!("kmh-{}-p{id}", cfg.run_id))
        .set("acks", p.acks.as_config())
        .set("enable.idempotence", p.idempotence.to_string())
        .set("retries", p.retries.to_string())
        .set(
            "max.in.flight.requests.per.connection",
            p.max_in_flight.to_string(),
        )
        .set("linger.ms", p.linger_ms.to_string())
        .set("message.timeout.ms", delivery_timeout_ms(p).to_string())
        .set("request.timeout.ms", p.request_timeout_ms.to_string());
    if let Some(t) = &p.transactions {
        // one per instance, stable across its clients: a new client fences the old
        cc.set("transactional.id", format!("kmh-{}-t{id}", cfg.run_id))
            .set("transaction.timeout.ms", t.timeout_ms.to_string());
    }
    for (k, v) in &cfg.client_overrides {
        cc.set(k, v);
    }
    if p.idempotence {
        // the only place librdkafka tells of an epoch bump (see `crate::renewal`): a few
        // lines per client and state change, none per record; an override's own debug
        // contexts keep `eos` too
        let debug = match cc.get("debug") {
            None => "eos".to_string(),
            Some(d) if d.split(',').any(|c| matches!(c.trim(), "eos" | "all")) => d.to_string(),
            Some(d) => format!("{d},eos"),
        };
        cc.set("debug", debug).set_log_level(RDKafkaLogLevel::Debug);
    } else {
        cc.set_log_level(RDKafkaLogLevel::Error);
    }
    let ctx = ProducerLog {
        log: log.clone(),
        counters: counters.clone(),
        instance,
        producer: id,
        renewals: Mutex::new(RenewalWatch::default()),
        sent: sent.clone(),
    };
    cc.create_with_context(ctx)
        .with_context(|| format!("creating producer instance {instance} for {bootstrap}"))
}
