//! `harness migrate brokers`: seed 001's replacement of brokers by reassignment, with a
//! bookkeeping topic so that a run interrupted at any point resumes where it was.
//!
//! 1. every new broker must be registered, else stop;
//! 2. the bookkeeping topic is created when missing, on the new brokers only;
//! 3. reassignments left in flight by an interrupted run are waited for (and their throttle
//!    removed) — their topics are then done again, which costs nothing;
//! 4. the topics already recorded are read from the bookkeeping topic;
//! 5. every other topic (internal ones too: an old broker holding `__consumer_offsets`
//!    cannot be stopped) is reassigned, topic by topic, old id → new id in place, waited
//!    for, checked, and its name appended to the bookkeeping topic;
//! 6. 4–5 again until no topic is left (topics created meanwhile are moved too).
//!
//! Progress goes out as [`MigrateEvent`]s (JSON lines on the command's stdout), so a run
//! driving the command as a subprocess can tell where it is — and kill it there.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use super::reassign::{self, ReassignOptions, ReassignReport};
use super::{Admin, ClusterAdmin};
use crate::shutdown::Shutdown;

/// What to migrate and how.
#[derive(Debug, Clone)]
pub struct MigrateOptions {
    /// Old broker id → new broker id.
    pub map: BTreeMap<i32, i32>,
    /// The topic recording the topics already moved.
    pub bookkeeping_topic: String,
    /// Replication throttle per topic move, bytes/s.
    pub throttle: Option<u64>,
    /// Longest wait for one topic's move.
    pub topic_timeout: Duration,
    /// librdkafka properties (TLS, SASL) for a secured cluster; the kafka-protocol admin
    /// path takes its security from them too.
    pub client_properties: super::ClientProperties,
}

/// Progress, one JSON line each.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "kebab-case")]
pub enum MigrateEvent {
    /// Where the run starts from.
    Start {
        /// Topics the bookkeeping topic already records.
        recorded: Vec<String>,
        /// Partitions an earlier run left moving (`topic/partition`).
        in_flight: Vec<String>,
        /// Whether the bookkeeping topic had to be created.
        created_bookkeeping: bool,
    },
    /// A topic's reassignment was sent.
    Reassigning {
        /// Topic.
        topic: String,
        /// 1-based count of topics sent in this run.
        n: usize,
        /// Partitions moving.
        partitions: usize,
    },
    /// A topic moved, checked and recorded.
    TopicDone {
        /// Topic.
        topic: String,
        /// What moved.
        report: ReassignReport,
    },
    /// Nothing left to move.
    Done {
        /// Topics moved by this run.
        moved: Vec<String>,
    },
}

/// Why a migration stopped.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// Step 1: some new brokers are not registered.
    #[error("new broker(s) {missing:?} not registered (registered: {registered:?})\n  hint: start the new brokers before migrating, or fix --map")]
    NewBrokersMissing {
        /// Not registered.
        missing: Vec<i32>,
        /// Registered.
        registered: Vec<i32>,
    },
    /// The map is not a migration.
    #[error("bad broker map: {0}\n  hint: --map OLD=NEW,... with distinct old and new ids, e.g. 1=4,2=5,3=6")]
    BadMap(String),
    /// A topic could not be moved.
    #[error("topic {topic}: {source}")]
    Topic {
        /// Topic.
        topic: String,
        /// Why.
        source: reassign::ReassignError,
    },
    /// The bookkeeping topic could not be read, written or created.
    #[error("bookkeeping topic {topic}: {message}")]
    Bookkeeping {
        /// Topic.
        topic: String,
        /// Why.
        message: String,
    },
    /// An admin request failed.
    #[error(transparent)]
    Admin(#[from] super::AdminError),
    /// Anything else from the clients.
    #[error("{0}")]
    Client(String),
    /// Ctrl-C.
    #[error("interrupted")]
    Interrupted,
}

/// Parses `1=4,2=5` (ids).
pub fn parse_map(text: &str) -> Result<BTreeMap<i32, i32>, MigrateError> {
    let mut map = BTreeMap::new();
    for pair in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (o, n) = pair
            .split_once('=')
            .ok_or_else(|| MigrateError::BadMap(format!("`{pair}` is not OLD=NEW")))?;
        let id = |s: &str| {
            s.trim()
                .parse::<i32>()
                .map_err(|_| MigrateError::BadMap(format!("`{s}` in `{pair}` is not a broker id")))
        };
        if map.insert(id(o)?, id(n)?).is_some() {
            return Err(MigrateError::BadMap(format!("broker {o} mapped twice")));
        }
    }
    check_map(&map)?;
    Ok(map)
}

/// A map must be non-empty, one-to-one, and never map onto a broker being replaced.
pub fn check_map(map: &BTreeMap<i32, i32>) -> Result<(), MigrateError> {
    crate::scenario::check_broker_map(map).map_err(MigrateError::BadMap)
}

fn client_err(e: impl std::fmt::Display) -> MigrateError {
    MigrateError::Client(e.to_string())
}

/// Runs the migration against the cluster at `bootstrap`, reporting through `emit`.
pub fn migrate_brokers(
    bootstrap: &str,
    opts: &MigrateOptions,
    shutdown: &Shutdown,
    emit: &mut dyn FnMut(&MigrateEvent),
) -> Result<Vec<String>, MigrateError> {
    check_map(&opts.map)?;
    let admin = Admin::with_properties(bootstrap, &opts.client_properties).map_err(client_err)?;
    let security =
        super::security::Security::from_properties(&opts.client_properties).map_err(client_err)?;
    let mut wire = ClusterAdmin::new(bootstrap, Duration::from_secs(30)).with_security(security);
    let book = &opts.bookkeeping_topic;
    let book_err = |message: String| MigrateError::Bookkeeping {
        topic: book.clone(),
        message,
    };

    // 1. the new brokers are up
    let registered: Vec<i32> = wire
        .describe_cluster()?
        .brokers
        .iter()
        .map(|b| b.id)
        .collect();
    let new: Vec<i32> = opts.map.values().copied().collect();
    let missing: Vec<i32> = new
        .iter()
        .copied()
        .filter(|b| !registered.contains(b))
        .collect();
    if !missing.is_empty() {
        return Err(MigrateError::NewBrokersMissing {
            missing,
            registered,
        });
    }

    // 2. the bookkeeping topic, on the new brokers
    let snapshot = admin
        .snapshot(Duration::from_secs(10))
        .map_err(client_err)?;
    let created = !snapshot.partitions.iter().any(|p| &p.topic == book);
    if created {
        let replicas: Vec<i32> = new.iter().copied().take(3).collect();
        let min_isr = replicas.len().min(2).to_string();
        admin
            .create_topic_assigned(book, &[replicas], &[("min.insync.replicas", &min_isr)])
            .map_err(|e| book_err(format!("creating it: {e}")))?;
    }

    // 3. what an interrupted run left moving
    let in_flight = wire.list_reassignments()?;
    if !in_flight.is_empty() {
        let deadline = Instant::now() + opts.topic_timeout;
        while !wire.list_reassignments()?.is_empty() {
            if Instant::now() >= deadline {
                return Err(MigrateError::Client(format!(
                    "reassignments left in flight by an earlier run did not finish within {:?}",
                    opts.topic_timeout
                )));
            }
            if shutdown.sleep(Duration::from_millis(500)) {
                return Err(MigrateError::Interrupted);
            }
        }
        if opts.throttle.is_some() {
            // the interrupted run's throttle: on every broker of the map, every topic it moved
            let mut t = super::Throttle {
                brokers: opts.map.keys().chain(opts.map.values()).copied().collect(),
                ..Default::default()
            };
            for o in &in_flight {
                t.leader_replicas.entry(o.topic.clone()).or_default();
                t.follower_replicas.entry(o.topic.clone()).or_default();
            }
            wire.remove_throttle(&t)?;
        }
    }

    let mut recorded =
        read_bookkeeping(bootstrap, book, &opts.client_properties, shutdown).map_err(book_err)?;
    emit(&MigrateEvent::Start {
        recorded: recorded.iter().cloned().collect(),
        in_flight: in_flight
            .iter()
            .map(|o| format!("{}/{}", o.topic, o.partition))
            .collect(),
        created_bookkeeping: created,
    });
    let recorder: ThreadedProducer<DefaultProducerContext> = secured(&opts.client_properties)
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("log_level", "3")
        .create()
        .map_err(client_err)?;

    let ropts = ReassignOptions {
        throttle: opts.throttle,
        timeout: opts.topic_timeout,
        poll: Duration::from_millis(500),
    };
    let mut moved = Vec::new();
    loop {
        // 4–6: the topics not recorded yet
        let snapshot = admin
            .snapshot(Duration::from_secs(10))
            .map_err(client_err)?;
        let topics: BTreeSet<String> = snapshot
            .partitions
            .iter()
            .map(|p| p.topic.clone())
            .filter(|t| t != book && !recorded.contains(t))
            .collect();
        let Some(topic) = topics.into_iter().next() else {
            break;
        };
        if shutdown.requested() {
            return Err(MigrateError::Interrupted);
        }
        let (moves, warnings) = reassign::plan_map(&snapshot, &opts.map, |t| t == topic);
        for w in &warnings {
            tracing::warn!("{w}");
        }
        emit(&MigrateEvent::Reassigning {
            topic: topic.clone(),
            n: moved.len() + 1,
            partitions: moves.len(),
        });
        let mut report =
            reassign::execute(&admin, &mut wire, &moves, &ropts, shutdown).map_err(|source| {
                MigrateError::Topic {
                    topic: topic.clone(),
                    source,
                }
            })?;
        report.warnings = warnings;
        // 7.7: record it (acks=all, waited for)
        recorder
            .send(BaseRecord::<(), str>::to(book).payload(topic.as_str()))
            .map_err(|(e, _)| book_err(format!("recording {topic}: {e}")))?;
        recorder
            .flush(Duration::from_secs(30))
            .map_err(|e| book_err(format!("recording {topic}: {e}")))?;
        emit(&MigrateEvent::TopicDone {
            topic: topic.clone(),
            report,
        });
        recorded.insert(topic.clone());
        moved.push(topic);
    }
    emit(&MigrateEvent::Done {
        moved: moved.clone(),
    });
    Ok(moved)
}

/// A client configuration with the given (security) properties set.
fn secured(properties: &super::ClientProperties) -> ClientConfig {
    let mut c = ClientConfig::new();
    for (k, v) in properties {
        c.set(k, v);
    }
    c
}

/// Every topic name recorded in the bookkeeping topic, read from the beginning to its end.
pub fn read_bookkeeping(
    bootstrap: &str,
    topic: &str,
    client_properties: &super::ClientProperties,
    shutdown: &Shutdown,
) -> Result<BTreeSet<String>, String> {
    let consumer: BaseConsumer = secured(client_properties)
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "kmh-migrate-bookkeeping")
        .set("enable.auto.commit", "false")
        .set("log_level", "3")
        .create()
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(60);
    let (low, high) = loop {
        match consumer.fetch_watermarks(topic, 0, Duration::from_secs(5)) {
            Ok(w) => break w,
            Err(e) if Instant::now() >= deadline => return Err(format!("its end offset: {e}")),
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    };
    let mut out = BTreeSet::new();
    if high <= low {
        return Ok(out);
    }
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .map_err(|e| e.to_string())?;
    consumer.assign(&tpl).map_err(|e| e.to_string())?;
    let mut next = low;
    while next < high {
        if Instant::now() >= deadline || shutdown.requested() {
            return Err(format!("read up to offset {next} of {high} only"));
        }
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(m)) => {
                next = m.offset() + 1;
                if let Some(Ok(name)) = m.payload_view::<str>() {
                    out.insert(name.to_string());
                }
            }
            Some(Err(e)) => tracing::debug!("reading {topic}: {e}"),
            None => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_is_parsed_and_bad_ones_are_named() {
        assert_eq!(
            parse_map("1=4, 2=5,3=6").unwrap(),
            BTreeMap::from([(1, 4), (2, 5), (3, 6)])
        );
        for (bad, why) in [
            ("", "empty"),
            ("1=4,2=4", "one new broker"),
            ("1=2,2=3", "both old and new"),
            ("1:4", "not OLD=NEW"),
            ("a=4", "not a broker id"),
            ("1=4,1=5", "mapped twice"),
        ] {
            let e = parse_map(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }
}
