//! The worker log: append-only, compact, readable after a crash.
//!
//! ```text
//! file   := header(128 bytes) body
//! header := "KMHLOG01" version:u16 role:u8 clock:u8 worker:u32 flags:u32 reserved:u32
//!           start_us:u64 run_id:[u8;64] reserved:[u8;28] crc32(header[0..124]):u32
//! body   := block*                          (version 4: see `block`)
//!         | event(56 bytes)*                (versions 1 to 3)
//! event  := kind:u8 flags:u8 topic:u16 producer:u32 seq:u64 partition:i32 code:i32
//!           offset:i64 ts_a:u64 ts_b:u64 instance:u32 crc32(event[0..52]):u32
//! ```
//! `role` is [`Role::code`]: 1 produce, 2 consume, 3 final read, 4 copy (the exactly-once
//! pipeline, since format 5; a reader before it refuses such a log by its role code).
//! All integers little-endian. Both bodies carry the same [`Event`]s. Version 4 codes them
//! in blocks, each field against what the block held before (an acknowledgement takes ~8
//! bytes instead of 56), with a CRC per block; a writer seals a block at each flush, at
//! least every [`FLUSH_INTERVAL`], so a killed worker loses at most that much — and what it
//! loses is only the record of an outcome, never a false one. A reader stops cleanly at a
//! torn or cut-short block and says so ([`LogReader::was_cut_short`]).
//!
//! Producers log one event per record (its outcome, which carries its send time) and, at
//! most every [`FLUSH_INTERVAL`] while they send, a [`EventKind::SentUpTo`] watermark —
//! not one event per send: sequence numbers are sent in order, so "sent up to N" says
//! which were sent. Versions 1 to 3 logged [`EventKind::Sent`] per record; they are still
//! read (a reader knows both).

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::config::Role;

mod block;

/// Bytes in the file header.
pub const HEADER_LEN: usize = 128;
/// Bytes in one event of versions 1 to 3.
pub const EVENT_LEN: usize = 56;
/// Current format version. Version 2 added the producer's epoch bumps and producer id
/// renewals ([`EventKind::EpochBumped`], [`EventKind::ProducerIdRenewed`]); version 3 added
/// refused sends ([`EventKind::Refused`]) and the log start offset in the final read's
/// completion events (`seq`); version 4 codes events in blocks (see the module doc) and
/// replaces the producers' `Sent` events with [`EventKind::SentUpTo`] watermarks. Older
/// logs are still read: they simply have none of those, and their completion events say
/// log start 0 — what a reader of them assumed. Version 5 adds the transactional
/// producers' [`EventKind::Transaction`] (kind code 0, the one a version 4 block could
/// still give: a build that reads only up to version 4 refuses these logs by their version
/// instead of stopping at the first such event as if the log were torn). Version 6 adds
/// [`EventKind::Reconnected`] (a block's kind code 1, which version 4 and 5 blocks never
/// held: a build that reads only up to version 5 would take it for `Sent`, so it refuses
/// these logs by their version).
pub const FORMAT_VERSION: u16 = 6;
/// The first version whose body is made of blocks.
pub const BLOCK_FORMAT_VERSION: u16 = 4;
/// The oldest format version this build reads.
pub const OLDEST_READABLE_VERSION: u16 = 1;
/// How often a writer pushes buffered events to the OS at the latest.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(100);

const MAGIC: &[u8; 8] = b"KMHLOG01";

/// Header flag: the producers of this log use idempotence.
pub const FLAG_IDEMPOTENT: u32 = 1;
/// Header flag: the producers of this log keep per-partition order (idempotence, or at most
/// one request in flight), so reordering is an anomaly.
pub const FLAG_ORDERED: u32 = 2;
/// Header flag: the producers of this log send in transactions, so a record's outcome is
/// its transaction's ([`EventKind::Transaction`]), not its acknowledgement's.
pub const FLAG_TRANSACTIONAL: u32 = 4;

/// What an event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum EventKind {
    /// A transactional producer's transaction ended: it held the records `seq` to `seq +
    /// offset - 1` of producer `producer` (sequence numbers are sent in order), `code` =
    /// how it ended ([`TransactionOutcome`]), `ts_a` = when it began, `ts_b` = when it
    /// ended. Its records' own `Acked` events say only that a broker appended them: a
    /// reader with `read_committed` sees them only if this says committed. Version 5.
    Transaction = 0,
    /// Producer handed the record to the client (`ts_a` = send time). Versions 1 to 3
    /// only: version 4 logs [`EventKind::SentUpTo`] instead.
    Sent = 1,
    /// Broker acknowledged it at (`partition`, `offset`); `ts_b` = ack time, `code` = the
    /// broker's id.
    Acked = 2,
    /// Definitely not written (client says not persisted); `code` = error, `ts_b` = when.
    Failed = 3,
    /// Outcome unknown (timed out or purged in flight: maybe written); `ts_b` = when.
    Indeterminate = 4,
    /// A consumer instance delivered the record at (`partition`, `offset`) to the
    /// application; `producer`/`seq`/`ts_a` from the record header, `ts_b` = receive time.
    Received = 5,
    /// A group rebalance gave `partition` to consumer `instance` (`ts_b` = when).
    Assigned = 6,
    /// A group rebalance took `partition` from consumer `instance` (`ts_b` = when).
    Revoked = 7,
    /// The final read reached the end (`offset` = high watermark) of `partition`, whose log
    /// began at offset `seq` (the log start offset: retention or compaction removed what is
    /// below it).
    ReadComplete = 8,
    /// The final read gave up on `partition` before its high watermark (`offset`); `seq` =
    /// the log start offset as for [`EventKind::ReadComplete`].
    ReadIncomplete = 9,
    /// A record at (`partition`, `offset`) that no worker of this run wrote.
    Foreign = 10,
    /// A record of ours whose checksum does not match.
    Corrupt = 11,
    /// Producer client `instance` (producer `producer`) bumped its idempotent epoch: the
    /// records it still held go out again as epoch `code` of Kafka producer id `seq`, with
    /// sequence numbers from 0, so the broker cannot recognise a copy an earlier attempt
    /// stored. `ts_a` = when the drain began, `ts_b` = when the new epoch took effect,
    /// `offset` = why ([`crate::renewal::RenewalReason`]).
    EpochBumped = 12,
    /// Like [`EventKind::EpochBumped`], with a new Kafka producer id (`seq`) instead of a
    /// new epoch.
    ProducerIdRenewed = 13,
    /// The client refused to take record `seq` (a full queue, an unknown partition…): it
    /// was never sent, and the same `seq` is tried again later. `code` = error, `ts_a` =
    /// `ts_b` = when. Logged so that a producer that stops sending is seen trying.
    Refused = 14,
    /// Producer client `instance` (producer `producer`) has handed every record below
    /// `seq` to the client (sequence numbers are sent in order); `ts_a` = when the last of
    /// them was sent. Logged at most every [`FLUSH_INTERVAL`] while it sends, at the end,
    /// and before each renewal event (so that what was in flight then is known exactly).
    SentUpTo = 15,
    /// A producer or consumer client `instance` was replaced by one connected to the
    /// bootstrap servers a discovery file named (`ts_b` = when the new client was made):
    /// what this instance logs next happened on cluster `code` — 0 the run's own, 1
    /// MirrorMaker's target. Version 6. A block codes it as kind 1, which no block held
    /// before ([`EventKind::Sent`] was logged by versions 1 to 3 only, in fixed events).
    Reconnected = 16,
}

impl EventKind {
    /// The kind coded as `v` in a log (its `repr(u8)`), `None` for a code no kind has.
    pub fn from_u8(v: u8) -> Option<EventKind> {
        use EventKind::*;
        Some(match v {
            0 => Transaction,
            1 => Sent,
            2 => Acked,
            3 => Failed,
            4 => Indeterminate,
            5 => Received,
            6 => Assigned,
            7 => Revoked,
            8 => ReadComplete,
            9 => ReadIncomplete,
            10 => Foreign,
            11 => Corrupt,
            12 => EpochBumped,
            13 => ProducerIdRenewed,
            14 => Refused,
            15 => SentUpTo,
            16 => Reconnected,
            _ => return None,
        })
    }
}

/// One fixed-width log entry. Unused fields are zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// What happened.
    pub kind: EventKind,
    /// Index of the topic in the workload's topic list.
    pub topic: u16,
    /// Producer id (from the record header for consumer events).
    pub producer: u32,
    /// Producer sequence number.
    pub seq: u64,
    /// Kafka partition, or -1 when unknown.
    pub partition: i32,
    /// Kafka or client error code for failures; for `Acked`, the id of the broker that
    /// acknowledged (-1 when unknown); 0 otherwise.
    pub code: i32,
    /// Kafka offset, or -1 when unknown.
    pub offset: i64,
    /// First timestamp (µs): the send time of the record.
    pub ts_a: u64,
    /// Second timestamp (µs): when this outcome was observed.
    pub ts_b: u64,
    /// The client instance inside the worker that logged it.
    pub instance: u32,
}

/// A client renewal event ([`EventKind::EpochBumped`], [`EventKind::ProducerIdRenewed`])
/// decoded: the fixed layout keeps the Kafka producer id in `seq`, the epoch in `code`, the
/// reason in `offset`, the drain's start in `ts_a` and its end in `ts_b`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenewalEvent {
    /// A new epoch, or a new producer id.
    pub kind: crate::renewal::RenewalKind,
    /// The Kafka producer id after the renewal.
    pub producer_id: u64,
    /// The epoch after the renewal.
    pub epoch: i32,
    /// Why the client renewed.
    pub reason: crate::renewal::RenewalReason,
    /// When the client began draining (µs).
    pub drain_began_us: u64,
    /// When the new epoch took effect (µs).
    pub took_effect_us: u64,
}

/// How a transaction ended ([`EventKind::Transaction`]'s `code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransactionOutcome {
    /// The commit succeeded: every record of it must be visible, all together.
    Committed,
    /// Aborted on purpose (the workload aborts a share): none may be visible.
    Aborted,
    /// Aborted because the commit could not be made (a record failed, the coordinator
    /// asked for it): none may be visible.
    AbortedAfterError,
    /// The client could not say (its commit timed out, it failed fatally, the worker
    /// stopped with it open): all of it or none of it may be visible, nothing between.
    Unknown,
}

impl TransactionOutcome {
    /// Its code in a log.
    pub fn code(self) -> i32 {
        match self {
            TransactionOutcome::Committed => 0,
            TransactionOutcome::Aborted => 1,
            TransactionOutcome::AbortedAfterError => 2,
            TransactionOutcome::Unknown => 3,
        }
    }

    /// The outcome coded as `c`; a code no outcome has reads as unknown.
    pub fn from_code(c: i32) -> TransactionOutcome {
        match c {
            0 => TransactionOutcome::Committed,
            1 => TransactionOutcome::Aborted,
            2 => TransactionOutcome::AbortedAfterError,
            _ => TransactionOutcome::Unknown,
        }
    }

    /// True for both kinds of abort.
    pub fn aborted(self) -> bool {
        matches!(
            self,
            TransactionOutcome::Aborted | TransactionOutcome::AbortedAfterError
        )
    }
}

/// A [`EventKind::Transaction`] event decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransactionEvent {
    /// Its first record's sequence number.
    pub first_seq: u64,
    /// How many records it held (sequence numbers `first_seq..first_seq + records`).
    pub records: u64,
    /// How it ended.
    pub outcome: TransactionOutcome,
    /// When it began (µs).
    pub began_us: u64,
    /// When it ended (µs).
    pub ended_us: u64,
}

impl Event {
    /// For a [`EventKind::Transaction`] event: what it says; `None` for other kinds.
    pub fn transaction(&self) -> Option<TransactionEvent> {
        (self.kind == EventKind::Transaction).then(|| TransactionEvent {
            first_seq: self.seq,
            records: self.offset.max(0) as u64,
            outcome: TransactionOutcome::from_code(self.code),
            began_us: self.ts_a,
            ended_us: self.ts_b,
        })
    }

    /// The event that logs transaction `t` of producer `producer`, client `instance`.
    pub fn for_transaction(producer: u32, instance: u32, t: &TransactionEvent) -> Event {
        Event {
            producer,
            instance,
            seq: t.first_seq,
            offset: t.records as i64,
            code: t.outcome.code(),
            ts_a: t.began_us,
            ts_b: t.ended_us,
            ..Event::new(EventKind::Transaction)
        }
    }

    /// For an `Acked` event: the broker that acknowledged, when known. (`code` holds it.)
    pub fn acked_by(&self) -> Option<i32> {
        (self.kind == EventKind::Acked && self.code >= 0).then_some(self.code)
    }

    /// For a `Failed` or `Refused` event: the Kafka or client error code. (`code` holds
    /// it.)
    pub fn error_code(&self) -> Option<i32> {
        matches!(self.kind, EventKind::Failed | EventKind::Refused).then_some(self.code)
    }

    /// For a final read's completion event: the partition's log start offset. (`seq` holds
    /// it.)
    pub fn log_start(&self) -> Option<i64> {
        matches!(
            self.kind,
            EventKind::ReadComplete | EventKind::ReadIncomplete
        )
        .then_some(self.seq as i64)
    }

    /// For a renewal event: what it says, decoded; `None` for other kinds.
    pub fn renewal(&self) -> Option<RenewalEvent> {
        use crate::renewal::{RenewalKind, RenewalReason};
        let kind = match self.kind {
            EventKind::EpochBumped => RenewalKind::EpochBump,
            EventKind::ProducerIdRenewed => RenewalKind::NewProducerId,
            _ => return None,
        };
        Some(RenewalEvent {
            kind,
            producer_id: self.seq,
            epoch: self.code,
            reason: RenewalReason::from_code(self.offset),
            drain_began_us: self.ts_a,
            took_effect_us: self.ts_b,
        })
    }

    /// The event that logs `r` for producer `producer`, client `instance`.
    pub fn for_renewal(producer: u32, instance: u32, r: &RenewalEvent) -> Event {
        use crate::renewal::RenewalKind;
        Event {
            producer,
            instance,
            seq: r.producer_id,
            code: r.epoch,
            offset: r.reason.code(),
            ts_a: r.drain_began_us,
            ts_b: r.took_effect_us,
            ..Event::new(match r.kind {
                RenewalKind::EpochBump => EventKind::EpochBumped,
                RenewalKind::NewProducerId => EventKind::ProducerIdRenewed,
            })
        }
    }

    /// An event of `kind` with every other field empty.
    pub fn new(kind: EventKind) -> Event {
        Event {
            kind,
            topic: 0,
            producer: 0,
            seq: 0,
            partition: -1,
            code: 0,
            offset: -1,
            ts_a: 0,
            ts_b: 0,
            instance: 0,
        }
    }

    /// Serialises to the fixed-width form.
    pub fn encode(&self) -> [u8; EVENT_LEN] {
        let mut b = [0u8; EVENT_LEN];
        b[0] = self.kind as u8;
        b[2..4].copy_from_slice(&self.topic.to_le_bytes());
        b[4..8].copy_from_slice(&self.producer.to_le_bytes());
        b[8..16].copy_from_slice(&self.seq.to_le_bytes());
        b[16..20].copy_from_slice(&self.partition.to_le_bytes());
        b[20..24].copy_from_slice(&self.code.to_le_bytes());
        b[24..32].copy_from_slice(&self.offset.to_le_bytes());
        b[32..40].copy_from_slice(&self.ts_a.to_le_bytes());
        b[40..48].copy_from_slice(&self.ts_b.to_le_bytes());
        b[48..52].copy_from_slice(&self.instance.to_le_bytes());
        let crc = crc32fast::hash(&b[0..52]);
        b[52..56].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Parses one event; `None` when the CRC or the kind is wrong (a torn write).
    pub fn decode(b: &[u8; EVENT_LEN]) -> Option<Event> {
        if crc32fast::hash(&b[0..52]) != u32::from_le_bytes(b[52..56].try_into().unwrap()) {
            return None;
        }
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap());
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap());
        Some(Event {
            kind: EventKind::from_u8(b[0])?,
            topic: u16::from_le_bytes([b[2], b[3]]),
            producer: u32_at(4),
            seq: u64_at(8),
            partition: u32_at(16) as i32,
            code: u32_at(20) as i32,
            offset: u64_at(24) as i64,
            ts_a: u64_at(32),
            ts_b: u64_at(40),
            instance: u32_at(48),
        })
    }
}

/// The file header: who wrote the log and how to read its timestamps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogHeader {
    /// Format version ([`FORMAT_VERSION`]).
    pub version: u16,
    /// Which worker role wrote it.
    pub role: Role,
    /// Clock of the timestamps ([`crate::clock::CLOCK_REALTIME_US`]).
    pub clock: u8,
    /// Worker index within its role.
    pub worker: u32,
    /// [`FLAG_IDEMPOTENT`], [`FLAG_ORDERED`], [`FLAG_TRANSACTIONAL`].
    pub flags: u32,
    /// When the worker started, µs since epoch.
    pub start_us: u64,
    /// The run id (at most 64 bytes).
    pub run_id: String,
}

impl LogHeader {
    /// The header of a worker's log, started now.
    pub fn for_worker(cfg: &crate::config::WorkerConfig, flags: u32) -> LogHeader {
        LogHeader {
            version: FORMAT_VERSION,
            role: cfg.role,
            clock: crate::clock::CLOCK_REALTIME_US,
            worker: cfg.worker_index,
            flags,
            start_us: crate::clock::now_us(),
            run_id: cfg.run_id.clone(),
        }
    }

    fn encode(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..8].copy_from_slice(MAGIC);
        b[8..10].copy_from_slice(&self.version.to_le_bytes());
        b[10] = self.role.code();
        b[11] = self.clock;
        b[12..16].copy_from_slice(&self.worker.to_le_bytes());
        b[16..20].copy_from_slice(&self.flags.to_le_bytes());
        b[24..32].copy_from_slice(&self.start_us.to_le_bytes());
        let id = self.run_id.as_bytes();
        let n = id.len().min(64);
        b[32..32 + n].copy_from_slice(&id[..n]);
        let crc = crc32fast::hash(&b[0..124]);
        b[124..128].copy_from_slice(&crc.to_le_bytes());
        b
    }

    fn decode(b: &[u8; HEADER_LEN]) -> Result<LogHeader, LogError> {
        if &b[0..8] != MAGIC {
            return Err(LogError::NotALog);
        }
        if crc32fast::hash(&b[0..124]) != u32::from_le_bytes(b[124..128].try_into().unwrap()) {
            return Err(LogError::BadHeader("header checksum mismatch".into()));
        }
        let version = u16::from_le_bytes([b[8], b[9]]);
        if !(OLDEST_READABLE_VERSION..=FORMAT_VERSION).contains(&version) {
            return Err(LogError::BadHeader(format!(
                "format version {version}, this build reads \
                 {OLDEST_READABLE_VERSION} to {FORMAT_VERSION}"
            )));
        }
        let role = Role::from_code(b[10])
            .ok_or_else(|| LogError::BadHeader(format!("unknown role code {}", b[10])))?;
        let id_end = b[32..96].iter().position(|c| *c == 0).unwrap_or(64);
        Ok(LogHeader {
            version,
            role,
            clock: b[11],
            worker: u32::from_le_bytes(b[12..16].try_into().unwrap()),
            flags: u32::from_le_bytes(b[16..20].try_into().unwrap()),
            start_us: u64::from_le_bytes(b[24..32].try_into().unwrap()),
            run_id: String::from_utf8_lossy(&b[32..32 + id_end]).into_owned(),
        })
    }
}

/// Why a log could not be opened.
#[derive(Debug, Error)]
pub enum LogError {
    /// Reading or writing the file failed.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// The file does not start with the log magic.
    #[error("not a worker log (bad magic)")]
    NotALog,
    /// The header is damaged or from another format version.
    #[error("unreadable log header: {0}")]
    BadHeader(String),
}

/// Appends events to a log, flushing to the OS every [`FLUSH_INTERVAL`] while events come
/// (and at [`LogWriter::flush`], which a worker's ticker calls every interval).
pub struct LogWriter {
    out: BufWriter<File>,
    /// `None`: fixed-width events (a header of version 1 to 3, as tests of old logs write).
    blocks: Option<block::BlockEncoder>,
    last_flush: Instant,
    /// Events appended (the clock is read every [`CLOCK_EVERY`]).
    appended: u32,
}

/// How many appends between two looks at the clock.
const CLOCK_EVERY: u32 = 16;

impl LogWriter {
    /// Creates (truncating) the log at `path` and writes its header. The body follows the
    /// header's version: blocks from version 4, fixed-width events before.
    pub fn create(path: &Path, header: &LogHeader) -> Result<LogWriter, LogError> {
        let mut out = BufWriter::with_capacity(64 * 1024, File::create(path)?);
        out.write_all(&header.encode())?;
        out.flush()?;
        Ok(LogWriter {
            out,
            blocks: (header.version >= BLOCK_FORMAT_VERSION).then(block::BlockEncoder::new),
            last_flush: Instant::now(),
            appended: 0,
        })
    }

    /// Appends one event (flushing when the interval has passed).
    pub fn append(&mut self, e: &Event) -> io::Result<()> {
        match &mut self.blocks {
            Some(b) => {
                b.push(e);
                if b.len() >= block::BLOCK_TARGET {
                    self.seal()?;
                }
            }
            None => self.out.write_all(&e.encode())?,
        }
        // the clock is read every few events only: a worker logs hundreds of thousands
        // a second, and its ticker flushes every interval regardless
        self.appended = self.appended.wrapping_add(1);
        if self.appended.is_multiple_of(CLOCK_EVERY) && self.last_flush.elapsed() >= FLUSH_INTERVAL
        {
            self.flush()?;
        }
        Ok(())
    }

    /// Writes the block being built (if any) to the buffer.
    fn seal(&mut self) -> io::Result<()> {
        if let Some(block) = self.blocks.as_mut().and_then(block::BlockEncoder::seal) {
            self.out.write_all(&block)?;
        }
        Ok(())
    }

    /// Pushes everything buffered to the OS (sealing the block being built).
    pub fn flush(&mut self) -> io::Result<()> {
        self.last_flush = Instant::now();
        self.seal()?;
        self.out.flush()
    }

    /// Flushes and fsyncs: the end of a worker's life.
    pub fn finish(mut self) -> io::Result<()> {
        self.flush()?;
        self.out.get_ref().sync_all()
    }
}

/// Reads a log back, stopping cleanly at a cut-short or torn tail.
pub struct LogReader {
    header: LogHeader,
    input: BufReader<File>,
    events_read: u64,
    torn: bool,
    /// Where the damaged or partial part begins (bytes from the file's start), once `torn`.
    torn_at: Option<u64>,
    /// Version 4: the events of the current block, and the next one to give.
    block: Vec<Event>,
    next_in_block: usize,
    /// Version 4: the current block's bytes.
    body: Vec<u8>,
    /// Following a log as it is written ([`LogReader::follow`]): a partial block at the end
    /// is not yet written, not torn.
    following: bool,
    /// Bytes of the file read up to the end of the last whole block (following only).
    whole_up_to: u64,
    /// Where in the file the next read starts.
    position: u64,
    /// Bytes of the file to read at most ([`LogReader::open_upto`]): what it held at one
    /// moment, so that several passes over a log a live worker still appends to see the
    /// same events.
    limit: u64,
}

impl LogReader {
    /// Opens a log and reads its header.
    pub fn open(path: &Path) -> Result<LogReader, LogError> {
        let mut input = BufReader::with_capacity(256 * 1024, File::open(path)?);
        let mut hb = [0u8; HEADER_LEN];
        input.read_exact(&mut hb).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => {
                LogError::BadHeader("file shorter than a header".into())
            }
            _ => LogError::Io(e),
        })?;
        let header = LogHeader::decode(&hb)?;
        Ok(LogReader {
            header,
            input,
            events_read: 0,
            torn: false,
            torn_at: None,
            block: Vec::new(),
            next_in_block: 0,
            body: Vec::new(),
            following: false,
            whole_up_to: HEADER_LEN as u64,
            position: HEADER_LEN as u64,
            limit: u64::MAX,
        })
    }

    /// Opens a log to read only its first `limit` bytes (its length when first looked at):
    /// a worker still writing it adds nothing this reader sees.
    pub fn open_upto(path: &Path, limit: u64) -> Result<LogReader, LogError> {
        let mut r = Self::open(path)?;
        r.limit = limit;
        Ok(r)
    }

    /// Opens a log that a worker is still writing, to read its events as they come: at the
    /// end of what is written, [`Self::read_batch`] returns `false` for now and reads on
    /// from there at the next call (a block is whole once its worker flushed it). Damage in
    /// a whole block still stops it for good ([`Self::was_cut_short`]). A log still missing
    /// or shorter than its header is an error: try again later.
    pub fn follow(path: &Path) -> Result<LogReader, LogError> {
        let mut r = Self::open(path)?;
        r.following = true;
        Ok(r)
    }

    /// The file header.
    pub fn header(&self) -> &LogHeader {
        &self.header
    }

    /// Events read so far.
    pub fn events_read(&self) -> u64 {
        self.events_read
    }

    /// True when reading stopped at a damaged event or block, or a partial one (a crash
    /// mid-write).
    pub fn was_cut_short(&self) -> bool {
        self.torn
    }

    /// Where reading stopped, when it was cut short: the byte offset (from the start of the
    /// file) of the damaged or partial event or block. Everything before it was read;
    /// nothing from it on.
    pub fn cut_short_at(&self) -> Option<u64> {
        self.torn.then_some(self.torn_at).flatten()
    }

    /// Marks the log torn at `at` (the start of the event or block that is damaged or
    /// partial), when the read that began there found it so.
    fn note_torn_at(&mut self, at: u64) {
        if self.torn && self.torn_at.is_none() {
            self.torn_at = Some(at);
        }
    }

    /// The next event, `None` at the end (or at a damaged tail, see [`Self::was_cut_short`]).
    pub fn next_event(&mut self) -> io::Result<Option<Event>> {
        if self.torn {
            return Ok(None);
        }
        if self.header.version >= BLOCK_FORMAT_VERSION {
            return self.next_from_block();
        }
        let mut b = [0u8; EVENT_LEN];
        let start = self.position;
        if !self.fill(&mut b)? {
            self.note_torn_at(start);
            return Ok(None);
        }
        match Event::decode(&b) {
            Some(e) => {
                self.events_read += 1;
                Ok(Some(e))
            }
            None => {
                self.torn = true;
                self.note_torn_at(start);
                Ok(None)
            }
        }
    }

    /// Appends the next events to `out`: a whole block at a time (version 4), else up to
    /// `max` events; `false` when there were none left (the end, or a damaged tail). The
    /// fast way through a large log: no copy per event through [`Self::next_event`].
    pub fn read_batch(&mut self, out: &mut Vec<Event>, max: usize) -> io::Result<bool> {
        let before = out.len();
        if self.header.version >= BLOCK_FORMAT_VERSION {
            // what a `next_event` caller left of the current block first
            if self.next_in_block < self.block.len() {
                out.extend_from_slice(&self.block[self.next_in_block..]);
                self.next_in_block = self.block.len();
            } else if !self.torn {
                // decoded straight into `out`
                self.read_block(out)?;
            }
        } else {
            while out.len() - before < max {
                match self.next_event()? {
                    Some(e) => out.push(e),
                    None => break,
                }
            }
            self.events_read -= (out.len() - before) as u64;
        }
        self.events_read += (out.len() - before) as u64;
        Ok(out.len() > before)
    }

    fn next_from_block(&mut self) -> io::Result<Option<Event>> {
        while self.next_in_block == self.block.len() {
            let mut block = std::mem::take(&mut self.block);
            block.clear();
            self.next_in_block = 0;
            let more = self.read_block(&mut block);
            self.block = block;
            if !more? {
                return Ok(None);
            }
        }
        let e = self.block[self.next_in_block];
        self.next_in_block += 1;
        self.events_read += 1;
        Ok(Some(e))
    }

    /// Reads the next block and appends its events to `into`; `false` at the end, or at a
    /// damaged or partial block (then `torn` is set and nothing of it is appended).
    fn read_block(&mut self, into: &mut Vec<Event>) -> io::Result<bool> {
        let start = self.position;
        let more = self.read_block_at(into)?;
        self.note_torn_at(start);
        Ok(more)
    }

    /// [`Self::read_block`] without noting where a damaged block began.
    fn read_block_at(&mut self, into: &mut Vec<Event>) -> io::Result<bool> {
        let mut head = [0u8; block::BLOCK_HEAD_LEN];
        if !self.fill(&mut head)? {
            return self.not_yet_written();
        }
        let Some((len, count)) = block::parse_head(&head) else {
            self.torn = true;
            return Ok(false);
        };
        self.body.resize(len as usize + 4, 0);
        let mut body = std::mem::take(&mut self.body);
        let whole = self.fill(&mut body)?;
        if !whole && self.following {
            self.body = body;
            return self.not_yet_written();
        }
        if whole {
            self.whole_up_to += (block::BLOCK_HEAD_LEN + body.len()) as u64;
            let (data, crc) = body.split_at(len as usize);
            let crc = u32::from_le_bytes(crc.try_into().unwrap());
            if !block::decode_block(&head, data, crc, count, into) {
                self.torn = true;
            }
        } else {
            self.torn = true;
        }
        self.body = body;
        Ok(!self.torn)
    }

    /// At the end of what is written: when following, back to the end of the last whole
    /// block, to read on from there next time (a partial block is one being written).
    fn not_yet_written(&mut self) -> io::Result<bool> {
        if self.following {
            self.torn = false;
            self.torn_at = None;
            self.input.seek(io::SeekFrom::Start(self.whole_up_to))?;
            self.position = self.whole_up_to;
        }
        Ok(false)
    }

    /// Fills `b` from the file: `false` at the end of the file (and `torn` when it ended
    /// part way).
    fn fill(&mut self, b: &mut [u8]) -> io::Result<bool> {
        let mut filled = 0;
        while filled < b.len() {
            let room = self.limit.saturating_sub(self.position);
            let want = (b.len() - filled).min(usize::try_from(room).unwrap_or(usize::MAX));
            match if want == 0 {
                0
            } else {
                self.input.read(&mut b[filled..filled + want])?
            } {
                0 => {
                    self.torn = filled > 0;
                    return Ok(false);
                }
                n => {
                    filled += n;
                    self.position += n as u64;
                }
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(version: u16) -> LogHeader {
        LogHeader {
            version,
            role: Role::Produce,
            clock: crate::clock::CLOCK_REALTIME_US,
            worker: 3,
            flags: FLAG_IDEMPOTENT | FLAG_ORDERED,
            start_us: 42,
            run_id: "run-abc".into(),
        }
    }

    /// An acknowledgement as a producer logs them: six partitions, acks in batches per
    /// partition, three brokers, a few ms of latency.
    fn ack(seq: u64) -> Event {
        let partition = (seq % 6) as i32;
        Event {
            seq,
            producer: 9,
            partition,
            code: partition % 3,
            offset: (seq / 6) as i64,
            ts_a: 1_700_000_000_000_000 + seq * 10,
            ts_b: 1_700_000_000_000_000 + seq * 10 + 4_000 + (seq % 7) * 100,
            ..Event::new(EventKind::Acked)
        }
    }

    /// Every kind `version` logs, with the field values that strain a delta code: unknown
    /// partitions and offsets, zero and maximal values, negative codes, far jumps back and
    /// forth. `Sent` only in fixed events (versions 1 to 3), `Reconnected` from version 6.
    fn odd_events(version: u16) -> Vec<Event> {
        let mut v = Vec::new();
        for k in 0..=16u8 {
            let kind = EventKind::from_u8(k).unwrap();
            let logged = match kind {
                EventKind::Sent => version < BLOCK_FORMAT_VERSION,
                EventKind::Reconnected => version >= 6,
                _ => true,
            };
            if !logged {
                continue;
            }
            v.push(Event {
                topic: u16::from(k) % 3,
                producer: u32::MAX - u32::from(k),
                seq: if k % 2 == 0 {
                    u64::MAX - u64::from(k)
                } else {
                    u64::from(k)
                },
                partition: if k % 4 == 0 { -1 } else { i32::from(k) * 1000 },
                code: if k % 3 == 0 {
                    -185
                } else {
                    i32::MAX - i32::from(k)
                },
                offset: if k % 5 == 0 {
                    -1
                } else {
                    i64::MAX / i64::from(k)
                },
                ts_a: if k % 2 == 0 {
                    0
                } else {
                    u64::MAX / u64::from(k)
                },
                ts_b: u64::from(k) * 1_000_003,
                instance: u32::from(k) * 7,
                ..Event::new(kind)
            });
        }
        v
    }

    fn write(p: &Path, version: u16, events: &[Event], flush_every: usize) {
        let mut w = LogWriter::create(p, &header(version)).unwrap();
        for (i, e) in events.iter().enumerate() {
            w.append(e).unwrap();
            if (i + 1) % flush_every == 0 {
                w.flush().unwrap();
            }
        }
        w.finish().unwrap();
    }

    fn read_all(p: &Path) -> (Vec<Event>, bool) {
        let mut r = LogReader::open(p).unwrap();
        let mut v = Vec::new();
        while let Some(e) = r.next_event().unwrap() {
            v.push(e);
        }
        assert_eq!(r.events_read(), v.len() as u64);
        (v, r.was_cut_short())
    }

    #[test]
    fn a_transaction_event_says_what_it_was_given() {
        for outcome in [
            TransactionOutcome::Committed,
            TransactionOutcome::Aborted,
            TransactionOutcome::AbortedAfterError,
            TransactionOutcome::Unknown,
        ] {
            let t = TransactionEvent {
                first_seq: 1_000,
                records: 10,
                outcome,
                began_us: 5,
                ended_us: 9,
            };
            let e = Event::for_transaction(3, 1, &t);
            assert_eq!(e.kind as u8, 0);
            assert_eq!((e.producer, e.instance), (3, 1));
            assert_eq!(e.transaction(), Some(t));
            assert_eq!(TransactionOutcome::from_code(outcome.code()), outcome);
        }
        assert_eq!(ack(1).transaction(), None);
        // a code no outcome has is read as unknown: all or nothing, never "committed"
        assert_eq!(
            TransactionOutcome::from_code(99),
            TransactionOutcome::Unknown
        );
    }

    #[test]
    fn every_version_reads_back_what_was_written() {
        let dir = tempfile::tempdir().unwrap();
        for version in [3, 4, 5, FORMAT_VERSION] {
            let mut events: Vec<Event> = (0..5000).map(ack).collect();
            events.splice(100..100, odd_events(version));
            events.extend(odd_events(version));
            let p = dir.path().join(format!("v{version}.log"));
            write(&p, version, &events, 777);
            let r = LogReader::open(&p).unwrap();
            assert_eq!(r.header(), &header(version));
            let (back, cut) = read_all(&p);
            assert!(!cut, "version {version}");
            assert_eq!(back, events, "version {version}");
        }
    }

    #[test]
    fn a_reconnection_reads_back_as_itself_and_takes_sents_code_in_a_block() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.log");
        let moved = Event {
            producer: 2,
            instance: 1,
            code: 1,
            ts_b: 123_456,
            ..Event::new(EventKind::Reconnected)
        };
        write(&p, FORMAT_VERSION, &[ack(0), moved, ack(1)], 10);
        let (back, cut) = read_all(&p);
        assert!(!cut);
        assert_eq!(back, [ack(0), moved, ack(1)]);
        // on disk: kind code 1 in the event's head (16 does not fit four bits)
        let bytes = std::fs::read(&p).unwrap();
        assert!(bytes.len() > HEADER_LEN);
        assert_eq!(super::block::block_code(EventKind::Reconnected), 1);
        assert_eq!(EventKind::from_u8(16), Some(EventKind::Reconnected));
    }

    #[test]
    fn an_acknowledgement_takes_a_few_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        let n = 100_000;
        write(
            &p,
            FORMAT_VERSION,
            &(0..n).map(ack).collect::<Vec<_>>(),
            10_000,
        );
        let body = std::fs::metadata(&p).unwrap().len() - HEADER_LEN as u64;
        let per = body as f64 / n as f64;
        // seq ±1, partition ±1, offset +0, send time +10 µs, latency ~4 ms, one head
        assert!(per <= 8.0, "{per:.2} bytes per acknowledgement");
    }

    #[test]
    fn a_followed_log_is_read_as_it_is_written_and_a_partial_block_is_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        let events: Vec<Event> = (0..300).map(ack).collect();
        let mut w = LogWriter::create(&p, &header(FORMAT_VERSION)).unwrap();
        for e in &events[..100] {
            w.append(e).unwrap();
        }
        w.flush().unwrap();
        let mut r = LogReader::follow(&p).unwrap();
        let mut got = Vec::new();
        while r.read_batch(&mut got, 1000).unwrap() {}
        assert_eq!(got, events[..100]);
        // half a block on disk (its writer is mid-write): not torn, waited for
        for e in &events[100..200] {
            w.append(e).unwrap();
        }
        w.flush().unwrap();
        let whole = std::fs::read(&p).unwrap();
        let before = HEADER_LEN + (whole.len() - HEADER_LEN) / 2;
        let q = dir.path().join("b.log");
        std::fs::write(&q, &whole[..before]).unwrap();
        let mut rq = LogReader::follow(&q).unwrap();
        let mut part = Vec::new();
        while rq.read_batch(&mut part, 1000).unwrap() {}
        assert!(
            !rq.was_cut_short(),
            "a partial block is not damage when following"
        );
        std::fs::write(&q, &whole).unwrap();
        while rq.read_batch(&mut part, 1000).unwrap() {}
        assert_eq!(part, events[..200], "the rest once written");
        // the original, followed on: the second flush, then the end
        while r.read_batch(&mut got, 1000).unwrap() {}
        for e in &events[200..] {
            w.append(e).unwrap();
        }
        w.finish().unwrap();
        while r.read_batch(&mut got, 1000).unwrap() {}
        assert_eq!(got, events);
        assert!(!r.was_cut_short());
    }

    #[test]
    fn a_log_read_up_to_a_length_sees_nothing_its_worker_appends_later() {
        for version in [3, 4, FORMAT_VERSION] {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("a.log");
            let events: Vec<Event> = (0..300).map(ack).collect();
            let mut w = LogWriter::create(&p, &header(version)).unwrap();
            for e in &events[..100] {
                w.append(e).unwrap();
            }
            w.flush().unwrap();
            let snapshot = std::fs::metadata(&p).unwrap().len();
            for e in &events[100..] {
                w.append(e).unwrap();
            }
            w.finish().unwrap();
            // two passes over the same snapshot see the same events
            for _ in 0..2 {
                let mut r = LogReader::open_upto(&p, snapshot).unwrap();
                let mut got = Vec::new();
                while r.read_batch(&mut got, 1000).unwrap() {}
                assert_eq!(got, events[..100], "version {version}");
                assert!(!r.was_cut_short());
            }
            let (all, _) = read_all(&p);
            assert_eq!(all, events);
        }
    }

    #[test]
    fn a_log_cut_mid_block_reads_up_to_the_last_whole_block() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        let events: Vec<Event> = (0..100).map(ack).collect();
        write(&p, FORMAT_VERSION, &events, 10);
        let len = std::fs::metadata(&p).unwrap().len();
        for cut in [1, 5, 20] {
            let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
            f.set_len(len - cut).unwrap();
            let (back, torn) = read_all(&p);
            assert_eq!(back, events[..90], "cut {cut}");
            assert!(torn);
        }
    }

    #[test]
    fn a_damaged_block_stops_the_reader_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        let events: Vec<Event> = (0..100).map(ack).collect();
        write(&p, FORMAT_VERSION, &events, 10);
        let clean = std::fs::read(&p).unwrap();
        // the start of the fourth block: walk the heads
        let mut at = HEADER_LEN;
        for _ in 0..3 {
            let len = u32::from_le_bytes(clean[at..at + 4].try_into().unwrap()) as usize;
            at += block::BLOCK_HEAD_LEN + len + 4;
        }
        // a flipped bit anywhere in the block (head, body or CRC), or a length that is
        // not one: never misread, never a panic
        for i in [0, 3, 5, 8, 20, 40] {
            let mut bytes = clean.clone();
            bytes[at + i] ^= 0x40;
            std::fs::write(&p, &bytes).unwrap();
            let (back, torn) = read_all(&p);
            assert_eq!(back, events[..30], "byte {i} of the block");
            assert!(torn);
        }
    }

    #[test]
    fn batches_read_what_events_read() {
        let dir = tempfile::tempdir().unwrap();
        let events: Vec<Event> = (0..1000).map(ack).collect();
        for version in [3, 4, FORMAT_VERSION] {
            let p = dir.path().join(format!("v{version}.log"));
            write(&p, version, &events, 64);
            // cut into the last block or event: the batches stop where events stop
            let len = std::fs::metadata(&p).unwrap().len();
            let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
            f.set_len(len - 3).unwrap();
            let (one_by_one, _) = read_all(&p);
            let mut r = LogReader::open(&p).unwrap();
            // a few events one by one, then batches: nothing skipped, nothing twice
            let mut back: Vec<Event> = (0..10).map(|_| r.next_event().unwrap().unwrap()).collect();
            while r.read_batch(&mut back, 100).unwrap() {}
            assert_eq!(back, one_by_one, "version {version}");
            assert_eq!(r.events_read(), back.len() as u64);
            assert!(r.was_cut_short());
        }
    }

    #[test]
    fn a_fixed_width_log_cut_mid_event_reads_up_to_the_cut() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        let events: Vec<Event> = (0..10).map(ack).collect();
        write(&p, 3, &events, 1000);
        let len = std::fs::metadata(&p).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
        f.set_len(len - 20).unwrap();
        let (back, torn) = read_all(&p);
        assert_eq!(back, events[..9]);
        assert!(torn);
        let mut bytes = std::fs::read(&p).unwrap();
        bytes[HEADER_LEN + 5 * EVENT_LEN + 10] ^= 0xff;
        std::fs::write(&p, bytes).unwrap();
        let (back, torn) = read_all(&p);
        assert_eq!(back, events[..5]);
        assert!(torn);
    }

    #[test]
    fn not_a_log_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x");
        std::fs::write(&p, vec![7u8; 300]).unwrap();
        assert!(matches!(LogReader::open(&p), Err(LogError::NotALog)));
        std::fs::write(&p, b"short").unwrap();
        assert!(matches!(LogReader::open(&p), Err(LogError::BadHeader(_))));
    }
}
