//! When librdkafka's idempotent producer bumps its epoch or takes a new producer id.
//!
//! Idempotence lets the broker drop a retried batch it already stored, because the retry
//! carries the same producer id, epoch and sequence numbers. librdkafka sometimes gives
//! that up: after an out-of-order-sequence error, an unknown producer id or a message
//! timeout it drains its in-flight requests, bumps the epoch (or asks for a new producer
//! id) and sends the records it still holds again with sequence numbers from 0. A record
//! that an earlier attempt had stored (a request that timed out, say) is then stored a
//! second time, and the broker cannot know (librdkafka issue #4953). So the checker needs
//! to know when this happened and which records were in flight at that moment.
//!
//! librdkafka says so only in its `eos` debug log; the producer turns that on and feeds
//! every line to a [`RenewalWatch`], which returns a [`Renewal`] when one completes. The
//! lines it knows (librdkafka 2.x, `rdkafka_idempotence.c`; each message starts with the
//! thread's name, `[thrd:main]: `, which is skipped):
//!
//! ```text
//! DRAIN  Beginning partition drain in state Assigned for PID{Id:9,Epoch:0} epoch bump for 2 partition(s) with in-flight requests: skipped sequence numbers
//! DRAIN  All partitions drained, bumped epoch to PID{Id:9,Epoch:1}
//! DRAIN  Beginning partition drain for PID{Id:9,Epoch:1} reset for 1 partition(s) with in-flight requests: ...
//! GETPID Acquired PID{Id:12,Epoch:0} (previous PID{Id:9,Epoch:1})
//! ```

/// What made the client give up its sequence numbers (stored in the event's `offset`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i64)]
pub enum RenewalReason {
    /// Anything librdkafka did not say in a way we know.
    Other = 0,
    /// A broker answered OUT_OF_ORDER_SEQUENCE_NUMBER for a request behind a failed one
    /// ("skipped sequence numbers").
    OutOfOrderSequence = 1,
    /// A broker no longer knew the producer id (UNKNOWN_PRODUCER_ID).
    UnknownProducerId = 2,
    /// Records reached `message.timeout.ms`, leaving a gap in the sequence.
    MessageTimeout = 3,
}

impl RenewalReason {
    /// The reason code as stored in a log event.
    pub fn code(self) -> i64 {
        self as i64
    }

    /// Reads a stored reason code; unknown codes are [`RenewalReason::Other`].
    pub fn from_code(code: i64) -> RenewalReason {
        match code {
            1 => RenewalReason::OutOfOrderSequence,
            2 => RenewalReason::UnknownProducerId,
            3 => RenewalReason::MessageTimeout,
            _ => RenewalReason::Other,
        }
    }

    /// In words, for reports.
    pub fn describe(self) -> &'static str {
        match self {
            RenewalReason::Other => "a reason librdkafka did not name",
            RenewalReason::OutOfOrderSequence => "an out-of-order sequence error",
            RenewalReason::UnknownProducerId => "an unknown producer id error",
            RenewalReason::MessageTimeout => "records that reached message.timeout.ms",
        }
    }

    fn from_text(text: &str) -> RenewalReason {
        if text.contains("skipped sequence") || text.contains("out of order") {
            RenewalReason::OutOfOrderSequence
        } else if text.contains("unknown producer id") {
            RenewalReason::UnknownProducerId
        } else if text.contains("timed out") {
            RenewalReason::MessageTimeout
        } else {
            RenewalReason::Other
        }
    }
}

/// Which kind of renewal (reports spell them `epoch bump`, `new producer id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum RenewalKind {
    /// Same producer id, next epoch.
    #[serde(rename = "epoch bump")]
    EpochBump,
    /// A new producer id from the cluster.
    #[serde(rename = "new producer id")]
    NewProducerId,
}

impl std::fmt::Display for RenewalKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RenewalKind::EpochBump => "epoch bump",
            RenewalKind::NewProducerId => "new producer id",
        })
    }
}

/// One completed renewal: from here on the client's records carry `producer_id`/`epoch`
/// and sequence numbers from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Renewal {
    /// Epoch bump or new producer id.
    pub kind: RenewalKind,
    /// Why.
    pub reason: RenewalReason,
    /// When the drain began (µs since epoch); the done time when no start was seen.
    pub began_us: u64,
    /// When the new epoch or id took effect (µs since epoch).
    pub done_us: u64,
    /// Kafka producer id now in use.
    pub producer_id: i64,
    /// Epoch now in use.
    pub epoch: i16,
}

/// Follows one client's `eos` debug lines.
#[derive(Debug, Default)]
pub struct RenewalWatch {
    /// A drain that began and has not completed: when and why (the line that completes it
    /// says whether it was an epoch bump or a new producer id).
    pending: Option<(u64, RenewalReason)>,
}

impl RenewalWatch {
    /// Looks at one log line (facility and message) seen at `now_us`; returns the renewal it
    /// completes, if it completes one.
    pub fn observe(&mut self, facility: &str, message: &str, now_us: u64) -> Option<Renewal> {
        let message = strip_thread(message);
        match facility {
            "DRAIN" => {
                if let Some((_, reason)) = message
                    .strip_prefix("Beginning partition drain")
                    .and_then(|rest| rest.split_once("in-flight requests: "))
                {
                    // a second reason while draining: the first one started it
                    if self.pending.is_none() {
                        self.pending = Some((now_us, RenewalReason::from_text(reason)));
                    }
                    return None;
                }
                let pid = message.strip_prefix("All partitions drained, bumped epoch to ")?;
                let (producer_id, epoch) = parse_pid(pid)?;
                let (began_us, reason) = self
                    .pending
                    .take()
                    .unwrap_or((now_us, RenewalReason::Other));
                Some(Renewal {
                    kind: RenewalKind::EpochBump,
                    reason,
                    began_us,
                    done_us: now_us,
                    producer_id,
                    epoch,
                })
            }
            "GETPID" => {
                let rest = message.strip_prefix("Acquired ")?;
                let (pid, previous) = match rest.split_once(" (previous ") {
                    Some((pid, prev)) => (pid, parse_pid(prev.trim_end_matches(')'))),
                    None => (rest, None),
                };
                let (producer_id, epoch) = parse_pid(pid)?;
                // the first id of a client renews nothing; a later one (after a reset
                // drain, or replacing a valid one) does
                let (began_us, reason) = match self.pending.take() {
                    Some(began) => Some(began),
                    None if previous.is_some() => Some((now_us, RenewalReason::Other)),
                    None => None,
                }?;
                Some(Renewal {
                    kind: RenewalKind::NewProducerId,
                    reason,
                    began_us,
                    done_us: now_us,
                    producer_id,
                    epoch,
                })
            }
            _ => None,
        }
    }
}

/// `[thrd:10.0.0.1:9092/1]: text` → `text`.
fn strip_thread(message: &str) -> &str {
    message
        .strip_prefix("[thrd:")
        .and_then(|rest| rest.split_once("]: "))
        .map_or(message, |(_, text)| text)
}

/// `PID{Id:9,Epoch:1}` → (9, 1).
fn parse_pid(s: &str) -> Option<(i64, i16)> {
    let inner = s.trim().strip_prefix("PID{Id:")?.strip_suffix('}')?;
    let (id, epoch) = inner.split_once(",Epoch:")?;
    Some((id.parse().ok()?, epoch.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_epoch_bump_is_reported_when_the_drain_completes_with_its_reason_and_start() {
        let mut w = RenewalWatch::default();
        assert_eq!(
            w.observe(
                "DRAIN",
                "[thrd:10.247.71.11:9092/1]: Beginning partition drain in state Assigned for \
                 PID{Id:9,Epoch:0} epoch bump for 2 partition(s) with in-flight requests: \
                 skipped sequence numbers",
                100
            ),
            None
        );
        assert_eq!(
            w.observe(
                "DRAIN",
                "orders [3] beginning partition drain: epoch bump",
                110
            ),
            None
        );
        assert_eq!(
            w.observe(
                "DRAIN",
                "[thrd:10.247.71.13:9092/3]: All partitions drained, bumped epoch to \
                 PID{Id:9,Epoch:1}",
                250
            ),
            Some(Renewal {
                kind: RenewalKind::EpochBump,
                reason: RenewalReason::OutOfOrderSequence,
                began_us: 100,
                done_us: 250,
                producer_id: 9,
                epoch: 1,
            })
        );
        // a later bump has its own reason
        w.observe(
            "DRAIN",
            "Beginning partition drain in state Assigned for PID{Id:9,Epoch:1} epoch bump for \
             1 partition(s) with in-flight requests: 3 message(s) timed out on orders [0]",
            400,
        );
        let r = w
            .observe(
                "DRAIN",
                "All partitions drained, bumped epoch to PID{Id:9,Epoch:2}",
                500,
            )
            .unwrap();
        assert_eq!(
            (r.reason, r.epoch, r.began_us),
            (RenewalReason::MessageTimeout, 2, 400)
        );
    }

    #[test]
    fn a_new_producer_id_counts_only_when_it_replaces_one() {
        let mut w = RenewalWatch::default();
        assert_eq!(
            w.observe("GETPID", "[thrd:main]: Acquired PID{Id:9,Epoch:0}", 10),
            None
        );
        w.observe(
            "DRAIN",
            "Beginning partition drain for PID{Id:9,Epoch:0} reset for 1 partition(s) with \
             in-flight requests: unknown producer id",
            20,
        );
        assert_eq!(w.observe("DRAIN", "All partitions drained", 30), None);
        assert_eq!(
            w.observe("GETPID", "Acquired PID{Id:12,Epoch:0}", 40),
            Some(Renewal {
                kind: RenewalKind::NewProducerId,
                reason: RenewalReason::UnknownProducerId,
                began_us: 20,
                done_us: 40,
                producer_id: 12,
                epoch: 0,
            })
        );
        let r = w
            .observe(
                "GETPID",
                "Acquired PID{Id:13,Epoch:0} (previous PID{Id:12,Epoch:0})",
                90,
            )
            .unwrap();
        assert_eq!(
            (r.kind, r.began_us, r.producer_id),
            (RenewalKind::NewProducerId, 90, 13)
        );
    }

    #[test]
    fn other_lines_and_garbled_ids_are_ignored() {
        let mut w = RenewalWatch::default();
        assert_eq!(
            w.observe(
                "IDEMPSTATE",
                "Idempotent producer state change Init -> RequestPID",
                1
            ),
            None
        );
        assert_eq!(
            w.observe(
                "DRAIN",
                "All partitions drained, bumped epoch to PID{Invalid}",
                2
            ),
            None
        );
        assert_eq!(
            w.observe("GETPID", "Acquired invalid PID{5,1}: ignoring", 3),
            None
        );
        assert_eq!(
            RenewalReason::from_code(RenewalReason::UnknownProducerId.code()),
            RenewalReason::UnknownProducerId
        );
        assert_eq!(RenewalReason::from_code(77), RenewalReason::Other);
    }
}
