//! The worker config against any input (property tests): refused with the file and the
//! field named, or accepted — and then a worker can run it (a send interval, a partition
//! for every record), never a panic later in the worker.
//!
//! Case counts are bounded for the fast tier (64 per property); a longer run, for local use:
//! `PROPTEST_CASES=20000 cargo test --release -p workers --test config_fuzz`.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use proptest::prelude::*;
use workers::config::{
    Acks, ConsumerSettings, CopySettings, ProducerSettings, Role, TopicSpec, TransactionSettings,
    WorkerConfig, MAX_RECORD_SIZE,
};

fn rate() -> impl Strategy<Value = Option<f64>> {
    prop_oneof![
        Just(None),
        (0.001f64..1e7).prop_map(Some),
        Just(Some(1e-12)),
        Just(Some(f64::MAX)),
    ]
}

/// A config a worker can run, with any values its fields allow.
fn valid_config() -> impl Strategy<Value = WorkerConfig> {
    let topics = prop::collection::vec(
        (
            "[a-z.]{1,8}",
            prop_oneof![1u32..10_000, Just(i32::MAX as u32)],
        )
            .prop_map(|(name, partitions)| TopicSpec { name, partitions }),
        1..5,
    );
    let producer = (
        rate(),
        prop_oneof![0usize..4096, Just(MAX_RECORD_SIZE)],
        1u32..10,
        prop::option::of((1u32..1000, 0u32..20, 1u32..900_000).prop_map(
            |(records, abort_every, timeout_ms)| TransactionSettings {
                records,
                abort_every,
                timeout_ms,
            },
        )),
    )
        .prop_map(
            |(rate, size, max_in_flight, transactions)| ProducerSettings {
                rate,
                size,
                acks: Acks::All,
                idempotence: true,
                retries: 5,
                max_in_flight,
                linger_ms: 5,
                delivery_timeout_ms: 30_000,
                request_timeout_ms: 10_000,
                transactions,
            },
        );
    (
        "[a-z0-9-]{1,64}",
        prop_oneof![
            Just(Role::Produce),
            Just(Role::Consume),
            Just(Role::FinalRead),
            Just(Role::Copy)
        ],
        1u32..8,
        prop_oneof![0u32..1000, Just(u32::MAX - 8)],
        topics,
        producer,
    )
        .prop_map(
            |(run_id, role, instances, first, topics, producer)| WorkerConfig {
                run_id,
                role,
                worker_index: 0,
                instances,
                first_instance_id: first,
                bootstrap: "127.0.0.1:9092".into(),
                bootstrap_file: None,
                log_path: PathBuf::from("/tmp/w.log"),
                producer,
                consumer: ConsumerSettings {
                    group_id: "kmh-group".into(),
                    session_timeout_ms: 10_000,
                    read_uncommitted: false,
                },
                final_read_timeout_ms: 30_000,
                client_overrides: BTreeMap::new(),
                copy: (role == Role::Copy).then(|| CopySettings {
                    from: topics[0].name.clone(),
                    to: TopicSpec {
                        name: "copy-out".into(),
                        partitions: topics[0].partitions,
                    },
                    group_id: "kmh-copy".into(),
                    records: 50,
                    timeout_ms: 10_000,
                }),
                topics,
            },
        )
}

/// One field set to a value no worker can run.
#[derive(Debug, Clone)]
enum Break {
    RunIdEmpty,
    RunIdLong,
    NoInstances,
    InstanceIdsOverflow,
    NoBootstrap,
    NoTopics,
    TopicNameEmpty(prop::sample::Index),
    ZeroPartitions(prop::sample::Index),
    HugePartitions(prop::sample::Index),
    Rate(f64),
    Size,
    NoInFlight,
    NoGroup,
    EmptyTransactions,
    TransactionsWithoutIdempotence,
    CopyMissing,
    CopyFromElsewhere,
    CopyToItself,
    CopyNoRecords,
}

fn breakage() -> impl Strategy<Value = Break> {
    use prop::sample::Index;
    prop_oneof![
        Just(Break::RunIdEmpty),
        Just(Break::RunIdLong),
        Just(Break::NoInstances),
        Just(Break::InstanceIdsOverflow),
        Just(Break::NoBootstrap),
        Just(Break::NoTopics),
        any::<Index>().prop_map(Break::TopicNameEmpty),
        any::<Index>().prop_map(Break::ZeroPartitions),
        any::<Index>().prop_map(Break::HugePartitions),
        prop_oneof![
            Just(0.0),
            Just(-1.0),
            Just(1e-300),
            Just(5e-20),
            Just(f64::MIN_POSITIVE),
            Just(f64::NEG_INFINITY),
        ]
        .prop_map(Break::Rate),
        Just(Break::Size),
        Just(Break::NoInFlight),
        Just(Break::NoGroup),
        Just(Break::EmptyTransactions),
        Just(Break::TransactionsWithoutIdempotence),
        Just(Break::CopyMissing),
        Just(Break::CopyFromElsewhere),
        Just(Break::CopyToItself),
        Just(Break::CopyNoRecords),
    ]
}

impl Break {
    fn apply(&self, cfg: &mut WorkerConfig) {
        let n = cfg.topics.len();
        match self {
            Break::RunIdEmpty => cfg.run_id.clear(),
            Break::RunIdLong => cfg.run_id = "r".repeat(65),
            Break::NoInstances => cfg.instances = 0,
            Break::InstanceIdsOverflow => {
                cfg.instances = cfg.instances.max(2);
                cfg.first_instance_id = u32::MAX;
            }
            Break::NoBootstrap => cfg.bootstrap = " ".into(),
            Break::NoTopics => cfg.topics.clear(),
            Break::TopicNameEmpty(i) if n > 0 => cfg.topics[i.index(n)].name.clear(),
            Break::ZeroPartitions(i) if n > 0 => cfg.topics[i.index(n)].partitions = 0,
            Break::HugePartitions(i) if n > 0 => cfg.topics[i.index(n)].partitions = u32::MAX,
            Break::TopicNameEmpty(_) | Break::ZeroPartitions(_) | Break::HugePartitions(_) => {}
            Break::Rate(r) => cfg.producer.rate = Some(*r),
            Break::Size => cfg.producer.size = MAX_RECORD_SIZE + 1,
            Break::NoInFlight => cfg.producer.max_in_flight = 0,
            Break::NoGroup => cfg.consumer.group_id.clear(),
            Break::EmptyTransactions => {
                cfg.producer.transactions = Some(TransactionSettings {
                    records: 0,
                    abort_every: 0,
                    timeout_ms: 10_000,
                })
            }
            Break::TransactionsWithoutIdempotence => {
                cfg.producer.idempotence = false;
                cfg.producer
                    .transactions
                    .get_or_insert(TransactionSettings {
                        records: 10,
                        abort_every: 5,
                        timeout_ms: 10_000,
                    });
            }
            Break::CopyMissing => cfg.copy = None,
            Break::CopyFromElsewhere => {
                if let Some(c) = &mut cfg.copy {
                    c.from = "no-such-topic".into();
                }
            }
            Break::CopyToItself => {
                if let Some(c) = &mut cfg.copy {
                    c.to.name = c.from.clone();
                }
            }
            Break::CopyNoRecords => {
                if let Some(c) = &mut cfg.copy {
                    c.records = 0;
                }
            }
        }
    }
}

/// The fields a refusal of `cfg` must name: the rules as the worker's documentation states
/// them, written out apart from `WorkerConfig::validate`.
fn unrunnable_fields(cfg: &WorkerConfig) -> Vec<String> {
    let mut v = Vec::new();
    if cfg.run_id.is_empty() || cfg.run_id.len() > 64 {
        v.push("run_id".to_string());
    }
    if cfg.instances == 0 {
        v.push("instances".into());
    }
    if cfg.instances > 0
        && u64::from(cfg.first_instance_id) + u64::from(cfg.instances) - 1 > u64::from(u32::MAX)
    {
        v.push("first_instance_id".into());
    }
    if cfg.bootstrap.trim().is_empty() {
        v.push("bootstrap".into());
    }
    if cfg.topics.is_empty() {
        v.push("topics".into());
    }
    for (i, t) in cfg.topics.iter().enumerate() {
        if t.name.is_empty() {
            v.push(format!("topics[{i}].name"));
        }
        if t.partitions == 0 || t.partitions > i32::MAX as u32 {
            v.push(format!("topics[{i}].partitions"));
        }
    }
    // a time between two sends: above zero, and within ~585 billion years
    if let Some(r) = cfg.producer.rate {
        if r.is_nan() || r <= 0.0 || 1.0 / r > u64::MAX as f64 {
            v.push("producer.rate".into());
        }
    }
    if cfg.producer.size > MAX_RECORD_SIZE {
        v.push("producer.size".into());
    }
    if cfg.producer.max_in_flight == 0 {
        v.push("producer.max_in_flight".into());
    }
    if cfg.role == Role::Consume && cfg.consumer.group_id.is_empty() {
        v.push("consumer.group_id".into());
    }
    if cfg.role == Role::Copy {
        // the pipeline reads a workload topic and writes another, in transactions
        match &cfg.copy {
            None => v.push("copy".into()),
            Some(c) => {
                if !cfg.topics.iter().any(|t| t.name == c.from) {
                    v.push("copy.from".into());
                }
                if c.to.name.is_empty() || c.to.name == c.from {
                    v.push("copy.to.name".into());
                }
                if c.to.partitions == 0 || c.to.partitions > i32::MAX as u32 {
                    v.push("copy.to.partitions".into());
                }
                if c.group_id.is_empty() {
                    v.push("copy.group_id".into());
                }
                if c.records == 0 {
                    v.push("copy.records".into());
                }
                if c.timeout_ms == 0 {
                    v.push("copy.timeout_ms".into());
                }
            }
        }
    }
    if let Some(t) = &cfg.producer.transactions {
        // a transaction holds a record; a transactional producer is an idempotent one
        if t.records == 0 {
            v.push("producer.transactions.records".into());
        }
        if !cfg.producer.idempotence || cfg.producer.acks != Acks::All {
            v.push("producer.transactions".into());
        }
        if t.timeout_ms == 0 {
            v.push("producer.transactions.timeout_ms".into());
        }
    }
    v
}

/// A runnable config with 0 to 3 fields broken.
fn any_config() -> impl Strategy<Value = WorkerConfig> {
    (valid_config(), prop::collection::vec(breakage(), 0..3)).prop_map(|(mut cfg, breaks)| {
        for b in &breaks {
            b.apply(&mut cfg);
        }
        cfg
    })
}

/// What a worker derives from an accepted config, which must not fail: the send interval
/// and a partition in range for any record.
fn runnable(cfg: &WorkerConfig, seqs: &[u64]) -> Result<(), TestCaseError> {
    prop_assert!(cfg.producer.send_interval().is_some());
    for &seq in seqs {
        let (topic, partition) = cfg.placement(seq);
        prop_assert!(topic < cfg.topics.len());
        prop_assert!(partition >= 0 && (partition as u32) < cfg.topics[topic].partitions);
    }
    Ok(())
}

proptest! {
    #![proptest_config(common::proptest_config())]

    /// A config with any field values, written as the harness writes it: loaded when it
    /// validates, else refused naming the file and each field at fault.
    #[test]
    fn any_config_is_runnable_or_refused_by_field(
        cfg in any_config(),
        seqs in prop::collection::vec(any::<u64>(), 1..20),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("worker.json");
        // JSON has no infinity: serde_json writes it as null (unlimited), so the config
        // judged is the one the file holds
        let json = serde_json::to_string(&cfg).unwrap();
        let cfg: WorkerConfig = serde_json::from_str(&json).unwrap();
        std::fs::write(&path, &json).unwrap();
        let broken = unrunnable_fields(&cfg);
        match WorkerConfig::load(&path) {
            Ok(loaded) => {
                prop_assert!(broken.is_empty(), "accepted with {:?} unrunnable", broken);
                runnable(&loaded, &seqs)?;
            }
            Err(e) => {
                let msg = format!("{e:#}");
                prop_assert!(!broken.is_empty(), "a runnable config refused: {}", msg);
                prop_assert!(msg.contains(&path.display().to_string()), "{}", msg);
                for field in &broken {
                    prop_assert!(msg.contains(&format!("`{field}`")), "{} does not name {}", msg, field);
                }
            }
        }
    }

    /// Any text at all as the config file: refused with the file named, or a runnable
    /// config. Never a panic.
    #[test]
    fn any_text_is_a_runnable_config_or_refused(
        text in prop_oneof![
            "\\PC{0,200}",
            // valid JSON of the right shape with one value changed
            (any::<prop::sample::Index>(), "[0-9a-z\"{}\\[\\],.:-]{0,12}").prop_map(|(at, v)| {
                let good = r#"{"run_id":"r","role":"produce","worker_index":0,"instances":1,"first_instance_id":0,"bootstrap":"127.0.0.1:9092","topics":[{"name":"t","partitions":3}],"log_path":"/tmp/w.log","producer":{"rate":100.0,"size":64,"acks":"all","idempotence":true,"retries":5,"max_in_flight":5,"linger_ms":5,"delivery_timeout_ms":30000,"request_timeout_ms":10000},"consumer":{"group_id":"g","session_timeout_ms":10000},"final_read_timeout_ms":30000}"#;
                let values: Vec<(usize, usize)> = good
                    .match_indices(':')
                    .map(|(i, _)| {
                        let end = good[i + 1..]
                            .find([',', '}'])
                            .map_or(good.len(), |e| i + 1 + e);
                        (i + 1, end)
                    })
                    .collect();
                let (s, e) = values[at.index(values.len())];
                format!("{}{}{}", &good[..s], v, &good[e..])
            }),
        ],
        seqs in prop::collection::vec(any::<u64>(), 1..5),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("worker.json");
        std::fs::write(&path, &text).unwrap();
        match WorkerConfig::load(&path) {
            Ok(cfg) => runnable(&cfg, &seqs)?,
            Err(e) => {
                let msg = format!("{e:#}");
                prop_assert!(msg.contains(&path.display().to_string()), "{}", msg);
            }
        }
    }
}
