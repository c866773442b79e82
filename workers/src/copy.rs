//! The `copy` role: the exactly-once pipeline (consume-transform-produce), as a Kafka
//! Streams or Flink job with exactly-once on does it.
//!
//! Each instance is a group consumer of `copy.from` (`read_committed`, offsets never
//! committed on their own) and a transactional producer (`transactional.id`
//! `kmh-RUN-xI`). A round: poll up to `copy.records` records; begin a transaction; send
//! each record to `copy.to` — partition `p % partitions`, key and value unchanged, so the
//! copy carries the original's producer and sequence number and the checker can tell, by
//! record identity, what was copied once, twice or never; send the consumed offsets to the
//! transaction (with the group's metadata, so a zombie of an older generation is fenced);
//! commit. Between rounds no transaction is open, so a rebalance (which happens inside a
//! poll) never meets one.
//!
//! When a transaction does not commit — aborted after an error, or its outcome unknown (a
//! new client with the same id then fences the old one, and the coordinator completes or
//! aborts what it left) — the consumer goes back to the group's committed offsets: what the
//! transaction read is read, and copied, again. Skipping that rewind is the classic
//! pipeline bug (records never copied); committing offsets outside the transaction is the
//! other (records copied twice): the check finds both. A client stuck in librdkafka's
//! `send_offsets_to_transaction` (see [`crate::transaction_calls`]) is treated as one whose
//! transaction did not commit: replaced, and the consumer rewound.
//!
//! The log (role `copy`): a `Received` event per record read, as a consumer's (so a record
//! of an aborted transaction read by the pipeline is an aborted read), rebalances, and one
//! `Transaction` event per round: `seq` = the round's number, `offset` = records copied,
//! `code` = how it ended.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::clock::now_us;
use crate::config::{CopySettings, WorkerConfig};
use crate::consume::{Decoder, GroupLog, FETCH_QUEUE_BACKOFF_MS};
use crate::log::{
    Event, EventKind, LogHeader, LogWriter, TransactionEvent, TransactionOutcome, FLAG_IDEMPOTENT,
    FLAG_ORDERED, FLAG_TRANSACTIONAL,
};
use crate::produce::{end_transaction, init_transactions};
use crate::shutdown::Shutdown;
use crate::status::Counters;
use crate::transaction_calls::{self, OffsetsSent};

/// One pipeline instance: its consumer, its transactional producer, its rounds.
struct Pipeline<'a> {
    cfg: &'a WorkerConfig,
    copy: &'a CopySettings,
    /// This instance's id (`first_instance_id + i`): its events' instance, its
    /// transactional id's suffix.
    id: u32,
    log: Arc<Mutex<LogWriter>>,
    counters: Arc<Counters>,
    decoder: Decoder,
    shutdown: Shutdown,
    consumer: BaseConsumer<GroupLog>,
    /// Shared only with a `send_offsets_to_transaction` call's thread (see
    /// [`transaction_calls::send_offsets`]).
    producer: Arc<ThreadedProducer<DefaultProducerContext>>,
    /// Rounds ended so far (the next round's number in the log).
    rounds: u64,
    /// The bootstrap servers the clients use now (a discovery file may move them).
    bootstrap: String,
    /// The offsets this instance's committed transactions committed, per partition.
    committed: HashMap<(String, i32), i64>,
}

impl Pipeline<'_> {
    /// One round: read, copy, commit. Returns how many records it copied in a committed
    /// transaction.
    fn round(&mut self) -> anyhow::Result<u64> {
        let batch = self.poll_batch();
        // where the consumer stands on every assigned partition: past the records polled,
        // and past the transaction markers it skipped — committing those too is what lets
        // the group reach a partition's end offset when the input is transactional
        let offsets = self.positions();
        if batch.is_empty()
            && offsets
                .iter()
                .all(|(tp, o)| self.committed.get(tp) == Some(o))
        {
            return Ok(0);
        }
        let began_us = now_us();
        if let Err(e) = self.producer.begin_transaction() {
            eprintln!(
                "worker: copy instance {}: cannot begin a transaction: {e}",
                self.id
            );
            self.replace_producer()?;
            self.rewind();
            return Ok(0);
        }
        let mut sent = 0u64;
        // a record the client refuses (other than for a full queue) is not in the
        // transaction: the round must not commit without it
        let mut abort = false;
        'batch: for (partition, key, value) in &batch {
            let to_partition = (*partition as u32 % self.copy.to.partitions) as i32;
            let mut record = BaseRecord::<[u8], [u8]>::to(&self.copy.to.name)
                .partition(to_partition)
                .payload(value.as_slice());
            if let Some(k) = key {
                record = record.key(k.as_slice());
            }
            // a full queue: wait for the client to deliver, then again
            loop {
                match self.producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        record = r;
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    Err((e, _)) => {
                        eprintln!(
                            "worker: copy instance {}: send: {e}; the round is aborted",
                            self.id
                        );
                        Counters::bump(&self.counters.errors);
                        abort = true;
                        break 'batch;
                    }
                }
            }
            sent += 1;
        }
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), o) in &offsets {
            let _ = tpl.add_partition_offset(topic, *partition, Offset::Offset(*o));
        }
        let timeout =
            Duration::from_millis(u64::from(self.cfg.producer.delivery_timeout_ms) + 2000);
        // a client stuck in the call (see `transaction_calls`) is left behind
        let mut stuck = false;
        match self.consumer.group_metadata() {
            _ if abort => {}
            Some(group) => {
                // librdkafka caps this call at the transaction timeout: a client still in
                // it then is stuck, not slow
                let cap = timeout.min(Duration::from_millis(u64::from(self.copy.timeout_ms)));
                match transaction_calls::send_offsets(&self.producer, tpl, group, cap) {
                    OffsetsSent::Sent => {}
                    OffsetsSent::Failed(e) => {
                        eprintln!(
                            "worker: copy instance {}: offsets not sent to the transaction: {e}",
                            self.id
                        );
                        abort = true;
                    }
                    OffsetsSent::Stuck => {
                        eprintln!(
                            "worker: copy instance {}: send_offsets_to_transaction still \
                             blocked {:?} after its timeout (librdkafka #5456, #5511); the \
                             client is left to it and a new one fences it",
                            self.id,
                            transaction_calls::STUCK_GRACE
                        );
                        Counters::bump(&self.counters.errors);
                        stuck = true;
                    }
                }
            }
            None => {
                eprintln!("worker: copy instance {}: no group metadata", self.id);
                abort = true;
            }
        }
        // offsets that did not join the transaction: abort it, or the copies would commit
        // without the offsets that say they were made (and a refused record, without it).
        // A stuck client's transaction never commits: the new client's initialisation (or
        // the transaction timeout) makes the coordinator abort it.
        let (mut outcome, replace) = if stuck {
            (TransactionOutcome::AbortedAfterError, true)
        } else {
            end_transaction(&self.producer, abort, timeout)
        };
        if abort && outcome == TransactionOutcome::Aborted {
            outcome = TransactionOutcome::AbortedAfterError;
        }
        let e = Event::for_transaction(
            self.id,
            self.id,
            &TransactionEvent {
                first_seq: self.rounds,
                records: sent,
                outcome,
                began_us,
                ended_us: now_us(),
            },
        );
        self.rounds += 1;
        self.log.lock().unwrap().append(&e)?;
        if replace {
            self.replace_producer()?;
        }
        if outcome == TransactionOutcome::Committed {
            self.committed.extend(offsets);
            self.counters
                .acked
                .fetch_add(sent, std::sync::atomic::Ordering::Relaxed);
            Ok(sent)
        } else {
            self.rewind();
            Ok(0)
        }
    }

    /// The consumer's position on each assigned partition that has one.
    fn positions(&self) -> Vec<((String, i32), i64)> {
        let Ok(tpl) = self.consumer.position() else {
            return Vec::new();
        };
        tpl.elements()
            .iter()
            .filter_map(|el| match el.offset() {
                Offset::Offset(o) => Some(((el.topic().to_string(), el.partition()), o)),
                _ => None,
            })
            .collect()
    }

    /// Up to `copy.records` records: the first poll waits up to 100 ms, the rest take only
    /// what is already fetched. Each is logged as read.
    ///
    /// A rebalance (it happens inside a poll) drops what the batch held: those records'
    /// partitions may now be another instance's, which starts at the committed offsets and
    /// copies them — copying them here too would copy them twice. Partitions kept restart
    /// at the committed offsets as well, so nothing is skipped.
    fn poll_batch(&mut self) -> Vec<(i32, Option<Vec<u8>>, Vec<u8>)> {
        let mut batch = Vec::new();
        let mut wait = Duration::from_millis(100);
        let mut seen = self.consumer.context().rebalances.load(Ordering::SeqCst);
        while batch.len() < self.copy.records as usize {
            let polled = self.consumer.poll(wait);
            let now = self.consumer.context().rebalances.load(Ordering::SeqCst);
            if now != seen {
                seen = now;
                batch.clear();
            }
            match polled {
                None => break,
                Some(Ok(msg)) => {
                    self.read(&msg);
                    batch.push((
                        msg.partition(),
                        msg.key().map(<[u8]>::to_vec),
                        msg.payload().unwrap_or(&[]).to_vec(),
                    ));
                }
                Some(Err(e)) => {
                    Counters::bump(&self.counters.errors);
                    eprintln!("worker: copy instance {}: {e}", self.id);
                    break;
                }
            }
            wait = Duration::ZERO;
        }
        batch
    }

    fn read(&self, msg: &BorrowedMessage<'_>) {
        let e = self.decoder.event(msg, self.id);
        if e.kind == EventKind::Received {
            Counters::bump(&self.counters.received);
        }
        if let Err(err) = self.log.lock().unwrap().append(&e) {
            eprintln!("worker: cannot append to log: {err}");
        }
    }

    /// Back to the group's committed offsets on every assigned partition (the start, where
    /// none is committed): what an uncommitted transaction read is read again.
    fn rewind(&mut self) {
        let timeout = Duration::from_millis(u64::from(self.cfg.producer.request_timeout_ms));
        let deadline = Instant::now() + 3 * timeout;
        loop {
            match self.consumer.committed(timeout) {
                Ok(tpl) => {
                    for el in tpl.elements() {
                        let to = match el.offset() {
                            Offset::Offset(o) => Offset::Offset(o),
                            _ => Offset::Beginning,
                        };
                        if let Err(e) = self.consumer.seek(el.topic(), el.partition(), to, timeout)
                        {
                            eprintln!(
                                "worker: copy instance {}: seeking {}/{} back: {e}",
                                self.id,
                                el.topic(),
                                el.partition()
                            );
                        }
                    }
                    return;
                }
                Err(e) if Instant::now() < deadline && !self.shutdown.requested() => {
                    eprintln!(
                        "worker: copy instance {}: reading the committed offsets: {e}; again",
                        self.id
                    );
                    self.shutdown.sleep(Duration::from_millis(200));
                }
                Err(e) => {
                    // a consumer that cannot go back must not go on: a new one starts at
                    // the committed offsets by itself
                    eprintln!(
                        "worker: copy instance {}: cannot read the committed offsets ({e}); a new consumer",
                        self.id
                    );
                    if let Ok(c) =
                        new_consumer(self.cfg, &self.bootstrap, self.id, &self.log, &self.decoder)
                    {
                        self.consumer = c;
                    }
                    return;
                }
            }
        }
    }

    /// A new transactional client with the same id (fencing the old one).
    fn replace_producer(&mut self) -> anyhow::Result<()> {
        eprintln!(
            "worker: copy instance {}: a new transactional client",
            self.id
        );
        Counters::bump(&self.counters.errors);
        self.producer = Arc::new(new_producer(self.cfg, &self.bootstrap, self.id)?);
        init_transactions(&self.producer, self.cfg, &self.shutdown)?;
        Ok(())
    }

    /// Moved to other brokers: no transaction is open between rounds, so both clients are
    /// simply made again (the consumer leaves the group; the new one resumes at the
    /// committed offsets).
    fn switch(&mut self, servers: &str) -> anyhow::Result<()> {
        eprintln!(
            "worker: copy instance {}: bootstrap servers are now {servers}; reconnecting",
            self.id
        );
        self.consumer.unsubscribe();
        let _ = self.consumer.poll(Duration::from_millis(200));
        self.consumer = new_consumer(self.cfg, servers, self.id, &self.log, &self.decoder)?;
        self.producer = Arc::new(new_producer(self.cfg, servers, self.id)?);
        init_transactions(&self.producer, self.cfg, &self.shutdown)?;
        self.bootstrap = servers.to_string();
        Counters::bump(&self.counters.switches);
        Ok(())
    }
}

/// Runs the copy role until shutdown; returns after the log is flushed. On SIGTERM each
/// instance ends its round (commits what it copied) and leaves.
pub fn run(cfg: &WorkerConfig, shutdown: Shutdown) -> anyhow::Result<()> {
    let copy = cfg
        .copy
        .as_ref()
        .context("a copy worker's config needs `copy`")?;
    let flags = FLAG_TRANSACTIONAL | FLAG_IDEMPOTENT | FLAG_ORDERED;
    let header = LogHeader::for_worker(cfg, flags);
    let log = Arc::new(Mutex::new(LogWriter::create(&cfg.log_path, &header)?));
    let counters = Arc::new(Counters::default());
    let ticker = crate::status::spawn_ticker(
        "copy",
        cfg.worker_index,
        log.clone(),
        counters.clone(),
        shutdown,
    );
    let mut threads = Vec::new();
    for i in 0..cfg.instances {
        let cfg = cfg.clone();
        let log = log.clone();
        let counters = counters.clone();
        let copy = copy.clone();
        threads.push(std::thread::spawn(move || -> anyhow::Result<()> {
            let id = cfg.first_instance_id + i;
            let decoder = Decoder::new(&cfg);
            let producer = Arc::new(new_producer(&cfg, &cfg.bootstrap, id)?);
            if !init_transactions(&producer, &cfg, &shutdown)? {
                return Ok(());
            }
            let consumer = new_consumer(&cfg, &cfg.bootstrap, id, &log, &decoder)?;
            let mut discovery = crate::discovery::Discovery::new(
                cfg.bootstrap_file.clone(),
                "copy",
                &cfg.bootstrap,
            );
            let mut p = Pipeline {
                cfg: &cfg,
                copy: &copy,
                id,
                log,
                counters,
                decoder,
                shutdown,
                consumer,
                producer,
                rounds: 0,
                bootstrap: cfg.bootstrap.clone(),
                committed: HashMap::new(),
            };
            while !shutdown.requested() {
                if let Some(servers) = discovery.changed() {
                    if let Err(e) = p.switch(&servers) {
                        eprintln!("worker: copy instance {id}: {e:#}");
                        Counters::bump(&p.counters.errors);
                    }
                }
                p.round()?;
            }
            p.consumer.unsubscribe();
            let _ = p.consumer.poll(Duration::from_millis(200));
            Ok(())
        }));
    }
    let mut failed = None;
    for t in threads {
        match t.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failed = Some(e),
            Err(_) => failed = Some(anyhow::anyhow!("a copy instance panicked")),
        }
    }
    ticker.stop();
    counters.print("copy", cfg.worker_index);
    let log = Arc::try_unwrap(log).map_err(|_| anyhow::anyhow!("log still shared at exit"))?;
    log.into_inner().unwrap().finish()?;
    match failed {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The pipeline's consumer: in the copy group, `read_committed`, offsets committed only by
/// the transactions.
fn new_consumer(
    cfg: &WorkerConfig,
    bootstrap: &str,
    id: u32,
    log: &Arc<Mutex<LogWriter>>,
    decoder: &Decoder,
) -> anyhow::Result<BaseConsumer<GroupLog>> {
    let copy = cfg.copy.as_ref().context("no copy settings")?;
    let mut cc = ClientConfig::new();
    cc.set("bootstrap.servers", bootstrap)
        .set("group.id", &copy.group_id)
        .set("client.id", format!("kmh-{}-x{id}", cfg.run_id))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set(
            "session.timeout.ms",
            cfg.consumer.session_timeout_ms.to_string(),
        )
        .set("partition.assignment.strategy", "range")
        .set("fetch.queue.backoff.ms", FETCH_QUEUE_BACKOFF_MS)
        .set("log_level", "4");
    for (k, v) in &cfg.client_overrides {
        cc.set(k, v);
    }
    let ctx = GroupLog::new(log, decoder, id);
    let consumer: BaseConsumer<GroupLog> = cc
        .create_with_context(ctx)
        .with_context(|| format!("creating copy consumer {id} for {bootstrap}"))?;
    consumer
        .subscribe(&[copy.from.as_str()])
        .context("subscribing")?;
    Ok(consumer)
}

/// The pipeline's transactional producer: one `transactional.id` per instance, stable
/// across its clients.
fn new_producer(
    cfg: &WorkerConfig,
    bootstrap: &str,
    id: u32,
) -> anyhow::Result<ThreadedProducer<DefaultProducerContext>> {
    let copy = cfg.copy.as_ref().context("no copy settings")?;
    let p = &cfg.producer;
    let mut cc = ClientConfig::new();
    cc.set("bootstrap.servers", bootstrap)
        .set("client.id", format!("kmh-{}-x{id}", cfg.run_id))
        .set("transactional.id", format!("kmh-{}-x{id}", cfg.run_id))
        .set("transaction.timeout.ms", copy.timeout_ms.to_string())
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("linger.ms", p.linger_ms.to_string())
        .set(
            "message.timeout.ms",
            p.delivery_timeout_ms.min(copy.timeout_ms).to_string(),
        )
        .set("request.timeout.ms", p.request_timeout_ms.to_string())
        .set("log_level", "4");
    for (k, v) in &cfg.client_overrides {
        cc.set(k, v);
    }
    cc.create()
        .with_context(|| format!("creating copy producer {id} for {bootstrap}"))
}
