//! librdkafka's transactional calls as the workers make them, around two client defects.
//!
//! Both roles that write transactions (`produce` with `producer.transactions`, `copy`) use a
//! [`ThreadedProducer`]: its own thread serves the client's event queue (delivery reports),
//! so librdkafka's own waits end as soon as the last record is delivered. Two calls are made
//! here rather than through rust-rdkafka's wrappers:
//!
//! * **Commit and flush call librdkafka directly.** rust-rdkafka's `commit_transaction`
//!   first runs its own `flush`, which polls the event queue in rounds of up to 100 ms and
//!   waits out each round even after the last delivery report: every transaction with a
//!   record still in flight took at least 100 ms (measured on a mock cluster: 100.5 ms a
//!   commit through the wrapper, 1.5 ms calling `rd_kafka_commit_transaction`; on the
//!   scenarios' clusters a producer committed ~10 transactions a second against the 50 it
//!   was asked for). librdkafka's own commit flushes first and, with delivery reports as
//!   events, waits on its message count, which the producer's thread brings to zero.
//! * **`send_offsets_to_transaction` runs on a thread of its own, with a bound.**
//!   librdkafka can block in it for good, past its timeout: the group coordinator request
//!   behind it has a timeout that is never checked (librdkafka issue #5456), and a
//!   coordinator whose broker left the metadata — a broker SIGKILLed on KRaft — is never
//!   looked up again (#5511). Seen in this project's CI: a pipeline instance blocked in it
//!   for the rest of a run after a broker's kill on Kafka 4.1, its partitions never copied,
//!   the worker deaf to SIGTERM. The test `send_offsets_gives_up_on_a_stuck_client` holds
//!   the defect with librdkafka's mock cluster (the group coordinator's broker down). When
//!   the call has not returned [`STUCK_GRACE`] after its own timeout, [`send_offsets`] says
//!   [`OffsetsSent::Stuck`]: the caller leaves the client to that thread (dropping it would
//!   wait on the same state) and makes a new one with the same `transactional.id`, which
//!   fences it — the coordinator aborts what it left open, as it does for any zombie.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::bindings as rd;
use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::producer::{Producer, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::TopicPartitionList;

/// How long after its own timeout a `send_offsets_to_transaction` may still return before
/// its client is taken as stuck.
pub const STUCK_GRACE: Duration = Duration::from_secs(5);

/// An error a transactional call returned, as librdkafka classifies it.
#[derive(Debug, Clone)]
pub struct TransactionCallError {
    /// The error code.
    pub code: RDKafkaErrorCode,
    /// librdkafka's description.
    pub message: String,
    /// The call may be made again (the outcome is still open).
    pub retriable: bool,
    /// The transaction must be aborted.
    pub requires_abort: bool,
    /// The client cannot go on: only a new one (which fences it) can.
    pub fatal: bool,
}

impl std::fmt::Display for TransactionCallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({:?})", self.message, self.code)
    }
}

impl TransactionCallError {
    /// Reads and frees an `rd_kafka_error_t`; `None` for a null one (success).
    ///
    /// # Safety
    /// `e` is null or an error librdkafka returned and nothing else owns.
    unsafe fn take(e: *mut rd::rd_kafka_error_t) -> Option<TransactionCallError> {
        if e.is_null() {
            return None;
        }
        let message = std::ffi::CStr::from_ptr(rd::rd_kafka_error_string(e))
            .to_string_lossy()
            .into_owned();
        let err = TransactionCallError {
            code: rd::rd_kafka_error_code(e).into(),
            message,
            retriable: rd::rd_kafka_error_is_retriable(e) != 0,
            requires_abort: rd::rd_kafka_error_txn_requires_abort(e) != 0,
            fatal: rd::rd_kafka_error_is_fatal(e) != 0,
        };
        rd::rd_kafka_error_destroy(e);
        Some(err)
    }
}

fn millis(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

/// Commits the open transaction: librdkafka delivers what it still holds, then ends the
/// transaction with the coordinator, within `timeout`.
pub fn commit<C: ProducerContext + 'static>(
    producer: &ThreadedProducer<C>,
    timeout: Duration,
) -> Result<(), TransactionCallError> {
    // SAFETY: a live client's handle; the returned error is ours to free
    let e =
        unsafe { rd::rd_kafka_commit_transaction(producer.client().native_ptr(), millis(timeout)) };
    match unsafe { TransactionCallError::take(e) } {
        None => Ok(()),
        Some(err) => Err(err),
    }
}

/// Waits up to `timeout` until every record sent has its delivery report; true when none
/// is left.
pub fn flush<C: ProducerContext + 'static>(
    producer: &ThreadedProducer<C>,
    timeout: Duration,
) -> bool {
    // SAFETY: a live client's handle
    let err = unsafe { rd::rd_kafka_flush(producer.client().native_ptr(), millis(timeout)) };
    err == rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR
}

/// How a [`send_offsets`] call ended.
#[derive(Debug)]
pub enum OffsetsSent {
    /// The offsets are part of the transaction.
    Sent,
    /// The client refused or failed the call, or no thread could make it (the
    /// transaction must not commit): what it said.
    Failed(String),
    /// The call did not return within its timeout and [`STUCK_GRACE`]: the client is
    /// stuck in it and must be replaced (left to the thread that made the call).
    Stuck,
}

/// Sends the consumer's `offsets` to the open transaction of `producer` (librdkafka's
/// `send_offsets_to_transaction`), on a thread of its own so that a client stuck in it
/// (see the module's doc) cannot hold the caller. librdkafka caps the call at the
/// transaction timeout: give `timeout` no longer than that, or a stuck client is noticed
/// only after it.
pub fn send_offsets<C: ProducerContext + 'static>(
    producer: &Arc<ThreadedProducer<C>>,
    offsets: TopicPartitionList,
    group: ConsumerGroupMetadata,
    timeout: Duration,
) -> OffsetsSent {
    let (tx, rx) = mpsc::channel();
    let client = Arc::clone(producer);
    let spawned = std::thread::Builder::new()
        .name("send-offsets".into())
        .spawn(move || {
            let r = client.send_offsets_to_transaction(&offsets, &group, timeout);
            // the caller may have given up on this call: nobody left to tell
            let _ = tx.send(r);
        });
    if let Err(e) = spawned {
        return OffsetsSent::Failed(format!("no thread for the call: {e}"));
    }
    match rx.recv_timeout(timeout + STUCK_GRACE) {
        Ok(Ok(())) => OffsetsSent::Sent,
        Ok(Err(e)) => OffsetsSent::Failed(e.to_string()),
        Err(_) => OffsetsSent::Stuck,
    }
}
