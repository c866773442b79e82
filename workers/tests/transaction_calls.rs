//! The transactional calls the workers make (`workers::transaction_calls`), on librdkafka's
//! mock cluster: no Kafka needed, so they run in the fast tier.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::{MockCluster, MockCoordinator};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use workers::transaction_calls::{self, OffsetsSent};

const TXN: &str = "kmh-test-txn";
const GROUP: &str = "kmh-test-group";

/// A mock cluster of three brokers — topic `t` (one partition), the transaction
/// coordinator on broker 1, the group coordinator on broker 2 — and a transactional
/// client on it, initialised.
fn cluster_and_client() -> (
    MockCluster<'static, DefaultProducerContext>,
    Arc<ThreadedProducer<DefaultProducerContext>>,
) {
    let mock = MockCluster::new(3).unwrap();
    mock.create_topic("t", 1, 3).unwrap();
    mock.coordinator(MockCoordinator::Transaction(TXN.into()), 1)
        .unwrap();
    mock.coordinator(MockCoordinator::Group(GROUP.into()), 2)
        .unwrap();
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", mock.bootstrap_servers())
        .set("transactional.id", TXN)
        .set("transaction.timeout.ms", "10000")
        .create()
        .unwrap();
    producer.init_transactions(Duration::from_secs(10)).unwrap();
    (mock, Arc::new(producer))
}

fn send_one(producer: &ThreadedProducer<DefaultProducerContext>) {
    producer
        .send(
            BaseRecord::<[u8], [u8]>::to("t")
                .partition(0)
                .payload(&b"x"[..]),
        )
        .map_err(|(e, _)| e)
        .unwrap();
}

#[test]
fn commit_and_flush_end_a_transaction_and_errors_say_what_librdkafka_said() {
    let (_mock, producer) = cluster_and_client();
    // no transaction open: librdkafka refuses the commit, and its error reads back whole
    let refused = transaction_calls::commit(&producer, Duration::from_secs(5)).unwrap_err();
    assert!(!refused.message.is_empty(), "{refused:?}");
    assert!(!refused.retriable && !refused.fatal, "{refused:?}");
    // a transaction of records still in flight commits: the commit delivers them first
    for _ in 0..3 {
        producer.begin_transaction().unwrap();
        send_one(&producer);
        transaction_calls::commit(&producer, Duration::from_secs(10)).unwrap();
    }
    // flush waits for the delivery reports, which the client's own thread serves
    producer.begin_transaction().unwrap();
    send_one(&producer);
    assert!(transaction_calls::flush(&producer, Duration::from_secs(10)));
    assert_eq!(producer.in_flight_count(), 0);
    producer.abort_transaction(Duration::from_secs(10)).unwrap();
}

/// librdkafka's `send_offsets_to_transaction` blocks past its timeout when the group
/// coordinator's broker is down (librdkafka #5456): the call must come back all the same,
/// saying the client is stuck (or, once librdkafka honours its timeout, that it failed).
#[test]
fn send_offsets_gives_up_on_a_stuck_client() {
    let (mock, producer) = cluster_and_client();
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", mock.bootstrap_servers())
        .set("group.id", GROUP)
        .create()
        .unwrap();
    let offsets = || {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("t", 0, Offset::Offset(1)).unwrap();
        tpl
    };
    // the coordinator up: the offsets join the transaction
    producer.begin_transaction().unwrap();
    send_one(&producer);
    let sent = transaction_calls::send_offsets(
        &producer,
        offsets(),
        consumer.group_metadata().unwrap(),
        Duration::from_secs(5),
    );
    assert!(matches!(sent, OffsetsSent::Sent), "{sent:?}");
    transaction_calls::commit(&producer, Duration::from_secs(10)).unwrap();

    // the group coordinator's broker down during the next transaction
    producer.begin_transaction().unwrap();
    send_one(&producer);
    assert!(transaction_calls::flush(&producer, Duration::from_secs(10)));
    mock.broker_down(2).unwrap();
    let (tx, rx) = mpsc::channel();
    let group = consumer.group_metadata().unwrap();
    let client = Arc::clone(&producer);
    let tpl = offsets();
    std::thread::spawn(move || {
        let _ = tx.send(transaction_calls::send_offsets(
            &client,
            tpl,
            group,
            Duration::from_secs(1),
        ));
    });
    // the bound of this test, not of the call: without the guard the call never returns
    let ended = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("send_offsets returned within a minute (its timeout is 1 s)");
    match ended {
        OffsetsSent::Stuck => {
            eprintln!("librdkafka still blocks in send_offsets_to_transaction (#5456)")
        }
        OffsetsSent::Failed(e) => eprintln!("librdkafka honoured the timeout: {e}"),
        OffsetsSent::Sent => panic!("offsets sent to a coordinator that is down"),
    }
    // the stuck call still holds the client: end the test without waiting on it
    std::mem::forget(producer);
    std::mem::forget(mock);
}
