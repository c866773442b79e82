//! Format 4's body: events in blocks, delta- and varint-coded, a CRC per block.
//!
//! ```text
//! block := body_len:u32 count:u32 body[body_len] crc32(body_len count body):u32
//! body  := event{count}
//! event := head:u8 [topic:uvar] [producer:uvar] [instance:uvar] seq:svar partition:svar
//!          [code:svar] offset:svar ts_a:svar ts_b:svar
//! head  := kind (bits 0-3) | TOPIC 0x10 | PRODUCER 0x20 | INSTANCE 0x40 | CODE 0x80
//! ```
//! `kind` is the event kind's code, except [`EventKind::Reconnected`] (16): 1, the code of
//! `Sent`, which blocks never hold (format 6).
//! `uvar` is LEB128, `svar` zigzag then LEB128. Every field is coded against a prediction
//! both sides make from what the block held before, so a block decodes on its own:
//!
//! | field                    | predicted by                                           |
//! |--------------------------|--------------------------------------------------------|
//! | topic, producer, instance| the previous event (present only when they differ)     |
//! | seq, partition, ts_a     | the previous event (the difference is coded)           |
//! | code                     | the last code on the event's partition slot (present only when it differs: an ack's broker id rarely changes) |
//! | offset                   | one past the last known offset on its partition slot   |
//! | ts_b                     | the previous event's ts_b (outcomes and reads come in time order) |
//!
//! A partition slot is `(topic × 131 + partition) mod 256`: two partitions sharing a slot
//! only code longer, never wrongly, since writer and reader compute the same slots.
//!
//! Why this shape: an acknowledgement costs ~8 bytes instead of 56 (sequence numbers,
//! offsets and send times move by little from one event to the next), and a block is the
//! unit of durability — the writer seals one at each flush, so a SIGKILLed worker's log
//! reads up to its last flush, and a torn block fails its CRC and ends the log there,
//! never misread.

use super::{Event, EventKind};

/// A block larger than this is damage, not data (the writer seals at [`BLOCK_TARGET`]).
pub(super) const MAX_BLOCK_BODY: u32 = 1 << 20;
/// The writer seals a block once its body reaches this many bytes.
pub(super) const BLOCK_TARGET: usize = 64 * 1024;
/// Bytes before a block's body.
pub(super) const BLOCK_HEAD_LEN: usize = 8;

const TOPIC: u8 = 0x10;
const PRODUCER: u8 = 0x20;
const INSTANCE: u8 = 0x40;
const CODE: u8 = 0x80;
const SLOTS: usize = 256;

/// What both sides predict from: reset at the start of each block.
/// A block's kind code for [`EventKind::Reconnected`] (whose own code, 16, does not fit
/// the head's four bits): `Sent`'s, which only the fixed events of versions 1 to 3 hold.
const RECONNECTED_CODE: u8 = EventKind::Sent as u8;

/// The kind's four-bit code in a block's event head.
pub(super) fn block_code(kind: EventKind) -> u8 {
    match kind {
        EventKind::Reconnected => RECONNECTED_CODE,
        k => k as u8,
    }
}

struct Context {
    prev: Event,
    /// Per partition slot: the last offset seen (≥ 0) and the last code.
    slot_offset: [i64; SLOTS],
    slot_code: [i32; SLOTS],
}

impl Context {
    fn new() -> Context {
        Context {
            prev: Event {
                partition: 0,
                offset: 0,
                ..Event::new(EventKind::Sent)
            },
            slot_offset: [-1; SLOTS],
            slot_code: [0; SLOTS],
        }
    }

    fn slot(topic: u16, partition: i32) -> usize {
        (u32::from(topic)
            .wrapping_mul(131)
            .wrapping_add(partition as u32) as usize)
            % SLOTS
    }

    fn remember(&mut self, e: &Event, slot: usize) {
        self.prev = *e;
        self.slot_code[slot] = e.code;
        if e.offset >= 0 {
            self.slot_offset[slot] = e.offset;
        }
    }
}

fn put_uvar(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_svar(out: &mut Vec<u8>, v: i64) {
    put_uvar(out, ((v << 1) ^ (v >> 63)) as u64);
}

/// Builds one block at a time.
pub(super) struct BlockEncoder {
    body: Vec<u8>,
    count: u32,
    ctx: Context,
}

impl BlockEncoder {
    pub(super) fn new() -> BlockEncoder {
        BlockEncoder {
            body: Vec::with_capacity(BLOCK_TARGET + 128),
            count: 0,
            ctx: Context::new(),
        }
    }

    /// Bytes of body so far.
    pub(super) fn len(&self) -> usize {
        self.body.len()
    }

    pub(super) fn push(&mut self, e: &Event) {
        let p = self.ctx.prev;
        let slot = Context::slot(e.topic, e.partition);
        debug_assert!(
            e.kind != EventKind::Sent,
            "blocks never hold Sent (see below)"
        );
        let mut head = block_code(e.kind);
        if e.topic != p.topic {
            head |= TOPIC;
        }
        if e.producer != p.producer {
            head |= PRODUCER;
        }
        if e.instance != p.instance {
            head |= INSTANCE;
        }
        if e.code != self.ctx.slot_code[slot] {
            head |= CODE;
        }
        let out = &mut self.body;
        out.push(head);
        if head & TOPIC != 0 {
            put_uvar(out, u64::from(e.topic));
        }
        if head & PRODUCER != 0 {
            put_uvar(out, u64::from(e.producer));
        }
        if head & INSTANCE != 0 {
            put_uvar(out, u64::from(e.instance));
        }
        put_svar(out, e.seq.wrapping_sub(p.seq) as i64);
        put_svar(out, i64::from(e.partition) - i64::from(p.partition));
        if head & CODE != 0 {
            put_svar(out, i64::from(e.code) - i64::from(self.ctx.slot_code[slot]));
        }
        put_svar(
            out,
            e.offset
                .wrapping_sub(self.ctx.slot_offset[slot].wrapping_add(1)),
        );
        put_svar(out, e.ts_a.wrapping_sub(p.ts_a) as i64);
        put_svar(out, e.ts_b.wrapping_sub(p.ts_b) as i64);
        self.count += 1;
        self.ctx.remember(e, slot);
    }

    /// The sealed block (head, body, CRC), or `None` when it holds no event; starts the
    /// next block.
    pub(super) fn seal(&mut self) -> Option<Vec<u8>> {
        if self.count == 0 {
            return None;
        }
        let mut block = Vec::with_capacity(BLOCK_HEAD_LEN + self.body.len() + 4);
        block.extend_from_slice(&(self.body.len() as u32).to_le_bytes());
        block.extend_from_slice(&self.count.to_le_bytes());
        block.extend_from_slice(&self.body);
        let crc = crc32fast::hash(&block);
        block.extend_from_slice(&crc.to_le_bytes());
        self.body.clear();
        self.count = 0;
        self.ctx = Context::new();
        Some(block)
    }
}

/// A block head: body length and event count, or `None` when it cannot be one.
pub(super) fn parse_head(b: &[u8; BLOCK_HEAD_LEN]) -> Option<(u32, u32)> {
    let len = u32::from_le_bytes(b[0..4].try_into().unwrap());
    let count = u32::from_le_bytes(b[4..8].try_into().unwrap());
    // an event takes at least 6 bytes (head, then five fields of one byte at least)
    (len <= MAX_BLOCK_BODY && count > 0 && u64::from(count) * 6 <= u64::from(len))
        .then_some((len, count))
}

/// Checks a block's CRC (`head`, `body`, `crc`) and decodes its `count` events into `out`;
/// `false` when the block is damaged (then `out` holds nothing of it).
pub(super) fn decode_block(
    head: &[u8; BLOCK_HEAD_LEN],
    body: &[u8],
    crc: u32,
    count: u32,
    out: &mut Vec<Event>,
) -> bool {
    let mut h = crc32fast::Hasher::new();
    h.update(head);
    h.update(body);
    if h.finalize() != crc {
        return false;
    }
    let start = out.len();
    let mut d = Decoder {
        body,
        at: 0,
        ctx: Context::new(),
    };
    for _ in 0..count {
        match d.event() {
            Some(e) => out.push(e),
            None => {
                out.truncate(start);
                return false;
            }
        }
    }
    if d.at != body.len() {
        out.truncate(start);
        return false;
    }
    true
}

struct Decoder<'a> {
    body: &'a [u8],
    at: usize,
    ctx: Context,
}

impl Decoder<'_> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.body.get(self.at)?;
        self.at += 1;
        Some(b)
    }

    fn uvar(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    fn svar(&mut self) -> Option<i64> {
        let u = self.uvar()?;
        Some((u >> 1) as i64 ^ -((u & 1) as i64))
    }

    fn event(&mut self) -> Option<Event> {
        let head = self.byte()?;
        let p = self.ctx.prev;
        let kind = match head & 0x0f {
            RECONNECTED_CODE => EventKind::Reconnected,
            code => EventKind::from_u8(code)?,
        };
        let topic = if head & TOPIC != 0 {
            u16::try_from(self.uvar()?).ok()?
        } else {
            p.topic
        };
        let producer = if head & PRODUCER != 0 {
            u32::try_from(self.uvar()?).ok()?
        } else {
            p.producer
        };
        let instance = if head & INSTANCE != 0 {
            u32::try_from(self.uvar()?).ok()?
        } else {
            p.instance
        };
        let seq = p.seq.wrapping_add(self.svar()? as u64);
        let partition = i32::try_from(i64::from(p.partition).checked_add(self.svar()?)?).ok()?;
        let slot = Context::slot(topic, partition);
        let code = if head & CODE != 0 {
            let c = i64::from(self.ctx.slot_code[slot]).checked_add(self.svar()?)?;
            i32::try_from(c).ok()?
        } else {
            self.ctx.slot_code[slot]
        };
        let offset = self.ctx.slot_offset[slot]
            .wrapping_add(1)
            .wrapping_add(self.svar()?);
        let ts_a = p.ts_a.wrapping_add(self.svar()? as u64);
        let ts_b = p.ts_b.wrapping_add(self.svar()? as u64);
        let e = Event {
            kind,
            topic,
            producer,
            seq,
            partition,
            code,
            offset,
            ts_a,
            ts_b,
            instance,
        };
        self.ctx.remember(&e, slot);
        Some(e)
    }
}
