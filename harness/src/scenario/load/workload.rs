//! The `[workload]` table: topics, producer and consumer counts and settings, phases.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;
use workers::{Acks, ProducerSettings, TransactionSettings};

use super::{config_map, Problems};
use crate::scenario::model::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTopic {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    partitions: Option<u32>,
    #[serde(default)]
    replication: Option<u32>,
    #[serde(default)]
    min_insync: Option<u32>,
    #[serde(default)]
    config: BTreeMap<String, toml::Value>,
}

/// `transactions = { records = 10, abort_every = 10, timeout = "10s" }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTransactions {
    #[serde(default)]
    records: Option<Spanned<u32>>,
    #[serde(default)]
    abort_every: Option<u32>,
    #[serde(default)]
    timeout: Option<Spanned<String>>,
}

/// `copy = { from = "orders", to = "orders-copy", instances = 2, records = 50, timeout = "10s" }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCopy {
    #[serde(default)]
    from: Option<Spanned<String>>,
    #[serde(default)]
    to: Option<Spanned<String>>,
    #[serde(default)]
    instances: Option<Spanned<u32>>,
    #[serde(default)]
    processes: Option<Spanned<u32>>,
    #[serde(default)]
    records: Option<Spanned<u32>>,
    #[serde(default)]
    timeout: Option<Spanned<String>>,
}

/// `rate`: records/s, or the word `"unlimited"`.
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum RawRate {
    PerSecond(f64),
    Word(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWorkload {
    #[serde(default)]
    topics: Option<Spanned<Vec<Spanned<RawTopic>>>>,
    #[serde(default)]
    producers: Option<Spanned<u32>>,
    #[serde(default)]
    producer_processes: Option<Spanned<u32>>,
    #[serde(default)]
    consumers: u32,
    #[serde(default)]
    consumer_processes: Option<Spanned<u32>>,
    #[serde(default)]
    rate: Option<Spanned<RawRate>>,
    #[serde(default)]
    size: Option<Spanned<usize>>,
    #[serde(default)]
    acks: Option<Spanned<String>>,
    #[serde(default)]
    idempotence: Option<Spanned<bool>>,
    #[serde(default)]
    retries: Option<u32>,
    #[serde(default)]
    max_in_flight: Option<Spanned<u32>>,
    #[serde(default)]
    linger_ms: Option<u32>,
    #[serde(default)]
    delivery_timeout: Option<Spanned<String>>,
    #[serde(default)]
    request_timeout: Option<Spanned<String>>,
    #[serde(default)]
    consumer_session_timeout: Option<Spanned<String>>,
    #[serde(default)]
    warmup: Option<Spanned<String>>,
    #[serde(default)]
    settle: Option<Spanned<String>>,
    #[serde(default)]
    drain_timeout: Option<Spanned<String>>,
    #[serde(default)]
    final_read_timeout: Option<Spanned<String>>,
    #[serde(default)]
    placement: Option<Spanned<String>>,
    #[serde(default)]
    transactions: Option<Spanned<RawTransactions>>,
    #[serde(default)]
    consumer_isolation: Option<Spanned<String>>,
    #[serde(default)]
    copy: Option<Spanned<RawCopy>>,
}

/// Validates `[workload]` against the cluster.
pub(super) fn validate(
    p: &mut Problems<'_>,
    raw: &Spanned<RawWorkload>,
    cluster: &ClusterSpec,
) -> Workload {
    let table = raw.span();
    let rw = raw.get_ref();
    let brokers = &cluster.brokers;
    let topic_list = p.required(
        rw.topics.as_ref(),
        table.clone(),
        "workload.topics",
        "topics = [{ name = \"orders\", partitions = 12, replication = 3, min_insync = 2 }]",
    );
    let mut topics = Vec::new();
    let mut topic_names = HashSet::new();
    for (i, t) in topic_list.iter().flat_map(|l| l.get_ref()).enumerate() {
        let field = format!("workload.topics[{i}]");
        let given = t.get_ref();
        let name = p.required(
            given.name.clone(),
            t.span(),
            &format!("{field}.name"),
            "name = \"orders\"",
        );
        let partitions = p.required(
            given.partitions,
            t.span(),
            &format!("{field}.partitions"),
            "partitions = 12",
        );
        let replication = p.required(
            given.replication,
            t.span(),
            &format!("{field}.replication"),
            "replication = 3",
        );
        let rt = Topic {
            name: name.unwrap_or_else(|| format!("topic{i}")),
            partitions: partitions.unwrap_or(1),
            replication: replication.unwrap_or(1),
            min_insync: given.min_insync.unwrap_or(1),
            config: BTreeMap::new(),
        };
        if !topic_names.insert(rt.name.clone()) {
            p.at(
                t.span(),
                &field,
                format!("topic `{}` is listed twice", rt.name),
                "give each topic once",
            );
        }
        if !usable_topic_name(&rt.name) {
            p.at(
                t.span(),
                format!("{field}.name"),
                format!("`{}` is not a usable topic name", rt.name),
                TOPIC_NAME_HINT,
            );
        }
        if rt.partitions == 0 || rt.partitions > 10_000 {
            p.at(
                t.span(),
                format!("{field}.partitions"),
                "must be 1..=10000",
                "e.g. partitions = 12",
            );
        }
        // a live cluster's brokers are known when the watch starts (it checks then)
        let too_many = cluster.backend != Backend::Live && rt.replication as usize > brokers.len();
        if rt.replication == 0 || too_many {
            p.at(
                t.span(),
                format!("{field}.replication"),
                format!(
                    "replication {} with {} brokers",
                    rt.replication,
                    brokers.len()
                ),
                "replication must be between 1 and the number of brokers",
            );
        }
        let min_insync = rt.min_insync;
        if min_insync == 0 || min_insync > rt.replication {
            p.at(
                t.span(),
                format!("{field}.min_insync"),
                format!(
                    "min_insync {min_insync} with replication {}",
                    rt.replication
                ),
                "min_insync must be between 1 and the replication",
            );
        }
        topics.push(Topic {
            config: config_map(p, &given.config, t.span(), &format!("{field}.config")),
            ..rt
        });
    }
    if topic_list.is_some() && topics.is_empty() {
        p.at(topic_list.map(|l| l.span()).unwrap_or_default(), "workload.topics", "no topics", "add e.g. topics = [{ name = \"orders\", partitions = 12, replication = 3, min_insync = 2 }]");
    }
    let producers_given = p.required(
        rw.producers.as_ref(),
        table.clone(),
        "workload.producers",
        "producers = 4",
    );
    let producers = producers_given.map(|v| *v.get_ref()).unwrap_or(1);
    if producers == 0 {
        p.at(
            producers_given.map(|v| v.span()).unwrap_or_default(),
            "workload.producers",
            "needs at least one producer",
            "producers = 4",
        );
    }
    let rate_given = p.required(
        rw.rate.as_ref(),
        table.clone(),
        "workload.rate",
        "rate = 500 (records/s per producer)",
    );
    let rate = match rate_given.map(|v| v.get_ref()) {
        None => Some(1.0),
        // the producers pace at 1/rate: it must be a time (a rate of 1e-300 is not)
        Some(RawRate::PerSecond(r))
            if *r > 0.0 && std::time::Duration::try_from_secs_f64(1.0 / r).is_ok() =>
        {
            Some(*r)
        }
        Some(RawRate::Word(w)) if w == "unlimited" => None,
        Some(_) => {
            p.at(
                rate_given.map(|v| v.span()).unwrap_or_default(),
                "workload.rate",
                "must be a number of records/s per producer instance > 0 (at least one record \
                 in a few hundred billion years), or \"unlimited\"",
                "rate = 500, or rate = \"unlimited\" (as fast as the client takes them)",
            );
            Some(1.0)
        }
    };
    let size = rw.size.as_ref().map(|s| *s.get_ref()).unwrap_or(512);
    if let Some(s) = &rw.size {
        if !(workers::record::HEADER_LEN..=1_000_000).contains(s.get_ref()) {
            p.at(
                s.span(),
                "workload.size",
                format!("must be {}..=1000000 bytes", workers::record::HEADER_LEN),
                "the record header alone takes 36 bytes; size = 512",
            );
        }
    }
    let acks_given = p.required(
        rw.acks.as_ref(),
        table.clone(),
        "workload.acks",
        "acks = \"all\", \"1\" or \"0\"",
    );
    let acks = match acks_given.map(|a| a.get_ref().as_str()) {
        None | Some("all" | "-1") => Acks::All,
        Some("1") => Acks::Leader,
        Some("0") => Acks::None,
        Some(other) => {
            p.at(
                acks_given.map(|a| a.span()).unwrap_or_default(),
                "workload.acks",
                format!("`{other}` is not an acks setting"),
                "acks = \"all\", \"1\" or \"0\"",
            );
            Acks::All
        }
    };
    let idempotence_given = p.required(
        rw.idempotence.as_ref(),
        table.clone(),
        "workload.idempotence",
        "idempotence = true (duplicates are then an error) or false",
    );
    let idempotence = idempotence_given.is_some_and(|i| *i.get_ref());
    let max_in_flight = rw.max_in_flight.as_ref().map(|m| *m.get_ref()).unwrap_or(5);
    if idempotence && acks != Acks::All {
        p.at(
            idempotence_given.map(|i| i.span()).unwrap_or_default(),
            "workload.idempotence",
            "idempotence needs acks = \"all\"",
            "set acks = \"all\" or idempotence = false",
        );
    }
    if let Some(m) = &rw.max_in_flight {
        if *m.get_ref() == 0 || (idempotence && *m.get_ref() > 5) {
            p.at(
                m.span(),
                "workload.max_in_flight",
                "must be 1..=5 with idempotence, and at least 1",
                "max_in_flight = 5",
            );
        }
    }
    let transactions = rw.transactions.as_ref().map(|t| {
        let given = t.get_ref();
        let hint = "transactions = { records = 10, abort_every = 10, timeout = \"10s\" }";
        let records = match &given.records {
            None => {
                p.at(
                    t.span(),
                    "workload.transactions.records",
                    "missing field `records`",
                    hint,
                );
                1
            }
            Some(r) if *r.get_ref() == 0 => {
                p.at(
                    r.span(),
                    "workload.transactions.records",
                    "0: a transaction holds at least one record",
                    hint,
                );
                1
            }
            Some(r) => *r.get_ref(),
        };
        if !idempotence || acks != Acks::All {
            p.at(
                t.span(),
                "workload.transactions",
                "transactions need idempotence = true and acks = \"all\" (a transactional \
                 producer is an idempotent one)",
                "set idempotence = true and acks = \"all\", or remove `transactions`",
            );
        }
        let mut timeout = p.duration(
            &given.timeout,
            "workload.transactions.timeout",
            Duration::from_secs(10),
        );
        // a broker refuses a longer one (INVALID_TRANSACTION_TIMEOUT) when the producer
        // starts: said here instead of by a dead worker
        const MAX: Duration = Duration::from_secs(15 * 60);
        if let Some(given_timeout) = given.timeout.as_ref().filter(|_| timeout > MAX) {
            p.at(
                given_timeout.span(),
                "workload.transactions.timeout",
                format!("{timeout:?} is longer than brokers allow"),
                "at most \"15m\" (the brokers' transaction.max.timeout.ms, by default)",
            );
            timeout = MAX;
        }
        TransactionSettings {
            records,
            abort_every: given.abort_every.unwrap_or(0),
            timeout_ms: (timeout.as_millis() as u32).max(1),
        }
    });
    let delivery_timeout = p.duration(
        &rw.delivery_timeout,
        "workload.delivery_timeout",
        Duration::from_secs(60),
    );
    let request_timeout = p.duration(
        &rw.request_timeout,
        "workload.request_timeout",
        Duration::from_secs(10),
    );
    let proc_count =
        |v: &Option<Spanned<u32>>, instances: u32, p: &mut Problems<'_>, field: &str| -> u32 {
            match v {
                None => instances.clamp(1, 2),
                Some(s) if *s.get_ref() == 0 || *s.get_ref() > instances.max(1) => {
                    p.at(
                        s.span(),
                        field,
                        "must be between 1 and the number of instances",
                        "each process hosts several client instances; e.g. 2",
                    );
                    1
                }
                Some(s) => *s.get_ref(),
            }
        };
    let copy = rw.copy.as_ref().map(|c| validate_copy(p, c, &topics));
    Workload {
        topics,
        copy,
        producers,
        producer_processes: proc_count(
            &rw.producer_processes,
            producers,
            p,
            "workload.producer_processes",
        ),
        consumers: rw.consumers,
        consumer_processes: proc_count(
            &rw.consumer_processes,
            rw.consumers,
            p,
            "workload.consumer_processes",
        ),
        producer: ProducerSettings {
            rate,
            size,
            acks,
            idempotence,
            retries: rw.retries.unwrap_or(i32::MAX as u32),
            max_in_flight,
            linger_ms: rw.linger_ms.unwrap_or(5),
            delivery_timeout_ms: delivery_timeout.as_millis() as u32,
            request_timeout_ms: request_timeout.as_millis() as u32,
            transactions,
        },
        consumer_read_uncommitted: match rw.consumer_isolation.as_ref() {
            None => false,
            Some(v) => match v.get_ref().as_str() {
                "read_committed" => false,
                "read_uncommitted" => true,
                other => {
                    p.at(
                        v.span(),
                        "workload.consumer_isolation",
                        format!("`{other}` is not an isolation level"),
                        "consumer_isolation = \"read_committed\" (the default) or \
                         \"read_uncommitted\"",
                    );
                    false
                }
            },
        },
        consumer_session_timeout_ms: p
            .duration(
                &rw.consumer_session_timeout,
                "workload.consumer_session_timeout",
                Duration::from_secs(10),
            )
            .as_millis() as u32,
        warmup: p.duration(&rw.warmup, "workload.warmup", Duration::from_secs(5)),
        settle: p.duration(&rw.settle, "workload.settle", Duration::from_secs(5)),
        drain_timeout: p.duration(
            &rw.drain_timeout,
            "workload.drain_timeout",
            Duration::from_secs(60),
        ),
        final_read_timeout: p.duration(
            &rw.final_read_timeout,
            "workload.final_read_timeout",
            Duration::from_secs(120),
        ),
        placement: match rw
            .placement
            .as_ref()
            .map(|v| (v.get_ref().as_str(), v.span()))
        {
            None | Some(("round-robin", _)) => Placement::RoundRobin,
            Some(("split", _)) => Placement::Split,
            Some((other, span)) => {
                p.at(
                    span,
                    "workload.placement",
                    format!("`{other}` is not a placement"),
                    "placement = \"round-robin\" (the default: every worker process on the next worker host) or \"split\" (producers and consumers on different hosts)",
                );
                Placement::RoundRobin
            }
        },
    }
}

/// What a topic name may hold (see [`usable_topic_name`]).
const TOPIC_NAME_HINT: &str =
    "1-249 letters, digits, '.', '_', '-'; not \".\" or \"..\", not starting with \"__\"";

/// `[workload] copy`: the pipeline reads a workload topic and writes one of its own.
fn validate_copy(p: &mut Problems<'_>, raw: &Spanned<RawCopy>, topics: &[Topic]) -> CopySpec {
    let c = raw.get_ref();
    let hint = "copy = { from = \"orders\", to = \"orders-copy\", instances = 2, records = 50 }";
    let from = match &c.from {
        None => topics.first().map(|t| t.name.clone()).unwrap_or_default(),
        Some(f) => {
            if !topics.iter().any(|t| &t.name == f.get_ref()) {
                p.at(
                    f.span(),
                    "workload.copy.from",
                    format!("`{}` is not a workload topic", f.get_ref()),
                    "name one of [workload] topics (default: the first)",
                );
            }
            f.get_ref().clone()
        }
    };
    let to = match &c.to {
        None => {
            p.at(
                raw.span(),
                "workload.copy.to",
                "missing field `to`: the topic the pipeline writes",
                hint,
            );
            String::new()
        }
        Some(t) => {
            let name = t.get_ref();
            if topics.iter().any(|w| &w.name == name) {
                p.at(
                    t.span(),
                    "workload.copy.to",
                    format!("`{name}` is a workload topic: the copy needs a topic of its own"),
                    "to = \"orders-copy\" (the run creates it)",
                );
            } else if !usable_topic_name(name) {
                p.at(
                    t.span(),
                    "workload.copy.to",
                    format!("`{name}` is not a usable topic name"),
                    TOPIC_NAME_HINT,
                );
            }
            name.clone()
        }
    };
    let positive =
        |p: &mut Problems<'_>, v: &Option<Spanned<u32>>, field: &str, default: u32| match v {
            None => default,
            Some(s) if *s.get_ref() == 0 => {
                p.at(s.span(), field, "0: at least 1", hint);
                default
            }
            Some(s) => *s.get_ref(),
        };
    let instances = positive(p, &c.instances, "workload.copy.instances", 2);
    let records = positive(p, &c.records, "workload.copy.records", 50);
    let processes = match &c.processes {
        None => instances.clamp(1, 2),
        Some(s) if *s.get_ref() == 0 || *s.get_ref() > instances => {
            p.at(
                s.span(),
                "workload.copy.processes",
                "must be between 1 and the number of instances",
                "processes = 2",
            );
            1
        }
        Some(s) => *s.get_ref(),
    };
    let mut timeout = p.duration(&c.timeout, "workload.copy.timeout", Duration::from_secs(10));
    const MAX: Duration = Duration::from_secs(15 * 60);
    if let Some(t) = c
        .timeout
        .as_ref()
        .filter(|_| timeout > MAX || timeout.is_zero())
    {
        p.at(
            t.span(),
            "workload.copy.timeout",
            format!("{timeout:?}: not a transaction timeout brokers allow"),
            "between \"1s\" and \"15m\" (the brokers' transaction.max.timeout.ms, by default)",
        );
        timeout = Duration::from_secs(10);
    }
    CopySpec {
        from,
        to,
        instances,
        processes,
        records,
        timeout,
    }
}
