//! One value per offset of a partition, kept compressed: the final read's record at each
//! offset ([`Ids`]) and each offset's first delivery to the group ([`FirstDelivery`]).
//!
//! Why: as plain arrays these two were 12 of the checker's 12.6 bytes per record (an 8-byte
//! record id and a 4-byte time per offset). Both are highly predictable from the offset
//! before: a partition's records come from a handful of producers whose sequence numbers
//! step by the same stride (the partitioner's), and consecutive offsets are delivered
//! within milliseconds of each other. So a column is cut in chunks of [`CHUNK`] offsets;
//! the few chunks being written are plain arrays ("open"), the others are coded
//! ("frozen") with what the offset before predicts, ~half a byte an offset.
//!
//! Access is what the checker does: writes move forward through a partition (a re-read
//! or a redelivery goes back a little: the chunk is thawed), reads go through a one-chunk
//! decoded cache per column (the passes read a partition's offsets mostly in order).
//!
//! Both codes are in nibbles (half bytes): a steady column costs one nibble an offset.
//!
//! ```text
//! nvar := nibbles of 3 bits each, low first, the high bit set on all but the last
//! id chunk   := token{CHUNK}, a token's first nibble t:
//!   t < 12: the producer at index t of the chunk's table; its sequence number moved by
//!           the same step as its last move (a steady stride: the partitioner's)
//!   12: EMPTY   13: NOT_OURS
//!   14: a producer new in this chunk: nvar(producer) nvar(seq)   (added to the table
//!       while it holds fewer than 64 producers)
//!   15: nvar(i) nvar(zigzag(d)): the producer at index i; its step changed by d
//! time chunk := token{CHUNK}, a token's first nibble t (ms since the previous offset's
//!   time in the chunk, which starts from 0):
//!   t < 15: moved by unzigzag(t) (−7 ..= 7)
//!   15: nvar(0): never delivered (u32::MAX); nvar(1 + zigzag(d)): moved by d
//! ```

use std::cell::RefCell;

use super::{EMPTY, NOT_OURS};

/// Offsets per chunk.
pub(super) const CHUNK: usize = 1024;
/// Chunks kept open (plain) per column: the write front and a few behind it.
const MAX_OPEN: usize = 4;
/// Producers a chunk's table names by index.
const TABLE: usize = 64;
/// Table indices a single nibble names.
const SHORT: u64 = 12;

/// How a column's values are coded.
pub(super) trait Codec {
    /// The value of an offset nothing was written to.
    const NONE: Self::Value;
    type Value: Copy + PartialEq + std::fmt::Debug;
    fn encode(values: &[Self::Value], out: &mut Nibbles);
    fn decode(bytes: &[u8], out: &mut [Self::Value]);
}

/// A nibble stream being written.
#[derive(Default)]
pub(super) struct Nibbles {
    bytes: Vec<u8>,
    /// The last byte holds one nibble only (its low half).
    half: bool,
}

impl Nibbles {
    fn put(&mut self, n: u8) {
        if self.half {
            *self.bytes.last_mut().expect("a half byte") |= n << 4;
        } else {
            self.bytes.push(n & 0x0f);
        }
        self.half = !self.half;
    }

    fn put_var(&mut self, mut v: u64) {
        while v >= 8 {
            self.put((v as u8 & 7) | 8);
            v >>= 3;
        }
        self.put(v as u8);
    }

    fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

/// A nibble stream being read (coded here: always well formed).
struct NibbleReader<'a> {
    bytes: &'a [u8],
    /// Position in nibbles.
    at: usize,
}

impl NibbleReader<'_> {
    fn get(&mut self) -> u8 {
        let b = self.bytes[self.at / 2];
        let n = if self.at.is_multiple_of(2) {
            b & 0x0f
        } else {
            b >> 4
        };
        self.at += 1;
        n
    }

    fn var(&mut self) -> u64 {
        let mut v = 0u64;
        let mut shift = 0;
        loop {
            let n = self.get();
            v |= u64::from(n & 7) << shift;
            if n & 8 == 0 {
                return v;
            }
            shift += 3;
        }
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(u: u64) -> i64 {
    (u >> 1) as i64 ^ -((u & 1) as i64)
}

/// Record ids (`pack(producer, seq)`, or [`EMPTY`] / [`NOT_OURS`]).
pub(super) struct IdCodec;

/// One producer of a chunk's table: its last sequence number and last move.
#[derive(Clone, Copy)]
struct Seen {
    producer: u64,
    seq: u64,
    step: i64,
}

impl Codec for IdCodec {
    const NONE: u64 = EMPTY;
    type Value = u64;

    fn encode(values: &[u64], out: &mut Nibbles) {
        let mut table: Vec<Seen> = Vec::new();
        for &v in values {
            if v == EMPTY {
                out.put(12);
                continue;
            }
            if v == NOT_OURS {
                out.put(13);
                continue;
            }
            let (producer, seq) = (v >> 40, v & ((1 << 40) - 1));
            match table.iter().position(|s| s.producer == producer) {
                Some(i) => {
                    let s = &mut table[i];
                    let step = seq.wrapping_sub(s.seq) as i64;
                    let d = step.wrapping_sub(s.step);
                    if d == 0 && (i as u64) < SHORT {
                        out.put(i as u8);
                    } else {
                        out.put(15);
                        out.put_var(i as u64);
                        out.put_var(zigzag(d));
                    }
                    s.seq = seq;
                    s.step = step;
                }
                None => {
                    out.put(14);
                    out.put_var(producer);
                    out.put_var(seq);
                    if table.len() < TABLE {
                        table.push(Seen {
                            producer,
                            seq,
                            step: 0,
                        });
                    }
                }
            }
        }
    }

    fn decode(bytes: &[u8], out: &mut [u64]) {
        let mut table: Vec<Seen> = Vec::new();
        let mut r = NibbleReader { bytes, at: 0 };
        for slot in out.iter_mut() {
            let t = r.get();
            let (i, d) = match t {
                12 => {
                    *slot = EMPTY;
                    continue;
                }
                13 => {
                    *slot = NOT_OURS;
                    continue;
                }
                14 => {
                    let producer = r.var();
                    let seq = r.var();
                    if table.len() < TABLE {
                        table.push(Seen {
                            producer,
                            seq,
                            step: 0,
                        });
                    }
                    *slot = (producer << 40) | seq;
                    continue;
                }
                15 => {
                    let i = r.var() as usize;
                    (i, unzigzag(r.var()))
                }
                short => (usize::from(short), 0),
            };
            let s = &mut table[i];
            s.step = s.step.wrapping_add(d);
            s.seq = s.seq.wrapping_add(s.step as u64) & ((1 << 40) - 1);
            *slot = (s.producer << 40) | s.seq;
        }
    }
}

/// Milliseconds since run start, `u32::MAX` for none.
pub(super) struct TimeCodec;

impl Codec for TimeCodec {
    const NONE: u32 = u32::MAX;
    type Value = u32;

    fn encode(values: &[u32], out: &mut Nibbles) {
        let mut prev = 0i64;
        for &v in values {
            if v == u32::MAX {
                out.put(15);
                out.put_var(0);
                continue;
            }
            let z = zigzag(i64::from(v) - prev);
            if z < 15 {
                out.put(z as u8);
            } else {
                out.put(15);
                out.put_var(1 + z);
            }
            prev = i64::from(v);
        }
    }

    fn decode(bytes: &[u8], out: &mut [u32]) {
        let mut prev = 0i64;
        let mut r = NibbleReader { bytes, at: 0 };
        for slot in out.iter_mut() {
            let t = r.get();
            let z = if t < 15 {
                u64::from(t)
            } else {
                match r.var() {
                    0 => {
                        *slot = u32::MAX;
                        continue;
                    }
                    u => u - 1,
                }
            };
            prev += unzigzag(z);
            *slot = prev as u32;
        }
    }
}

/// A frozen chunk decoded: its index and values.
type Decoded<V> = (usize, Box<[V]>);

enum Chunk<V> {
    /// Nothing written.
    Unwritten,
    /// Being written: plain.
    Open(Box<[V]>),
    /// Coded.
    Frozen(Box<[u8]>),
}

/// The values of one partition's offsets.
pub(super) struct Column<C: Codec> {
    chunks: Vec<Chunk<C::Value>>,
    /// Open chunks, the most recently opened last.
    open: Vec<usize>,
    /// One past the highest offset written.
    len: usize,
    /// The frozen chunk read last, decoded: (chunk index, values).
    cache: RefCell<Option<Decoded<C::Value>>>,
}

impl<C: Codec> Default for Column<C> {
    fn default() -> Self {
        Column {
            chunks: Vec::new(),
            open: Vec::new(),
            len: 0,
            cache: RefCell::new(None),
        }
    }
}

/// The final read's record at each offset.
pub(super) type Ids = Column<IdCodec>;
/// Each offset's first delivery to the consumer group.
pub(super) type FirstDelivery = Column<TimeCodec>;

impl<C: Codec> Column<C> {
    /// One past the highest offset written.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// The value at `o` ([`Codec::NONE`] when never written).
    pub(super) fn get(&self, o: usize) -> C::Value {
        let (c, i) = (o / CHUNK, o % CHUNK);
        match self.chunks.get(c) {
            None | Some(Chunk::Unwritten) => C::NONE,
            Some(Chunk::Open(v)) => v[i],
            Some(Chunk::Frozen(bytes)) => {
                let mut cache = self.cache.borrow_mut();
                match &mut *cache {
                    Some((at, values)) if *at == c => values[i],
                    slot => {
                        let mut values = match slot.take() {
                            Some((_, v)) => v,
                            None => vec![C::NONE; CHUNK].into_boxed_slice(),
                        };
                        C::decode(bytes, &mut values);
                        let v = values[i];
                        *slot = Some((c, values));
                        v
                    }
                }
            }
        }
    }

    /// The plain values of the chunk holding `o`, opened (thawed) when needed.
    fn open_chunk(&mut self, o: usize) -> &mut [C::Value] {
        let c = o / CHUNK;
        if self.open.last() != Some(&c) {
            if self.chunks.len() <= c {
                self.chunks.resize_with(c + 1, || Chunk::Unwritten);
            }
            if !matches!(self.chunks[c], Chunk::Open(_)) {
                let mut values = vec![C::NONE; CHUNK].into_boxed_slice();
                if let Chunk::Frozen(bytes) = &self.chunks[c] {
                    C::decode(bytes, &mut values);
                    // the cached copy goes stale once written
                    let mut cache = self.cache.borrow_mut();
                    if cache.as_ref().is_some_and(|(at, _)| *at == c) {
                        *cache = None;
                    }
                }
                self.chunks[c] = Chunk::Open(values);
            }
            self.open.retain(|x| *x != c);
            self.open.push(c);
            if self.open.len() > MAX_OPEN {
                let oldest = self.open.remove(0);
                self.freeze(oldest);
            }
        }
        match &mut self.chunks[c] {
            Chunk::Open(v) => v,
            _ => unreachable!("chunk {c} was just opened"),
        }
    }

    fn freeze(&mut self, c: usize) {
        if let Chunk::Open(values) = &self.chunks[c] {
            let mut nibbles = Nibbles::default();
            C::encode(values, &mut nibbles);
            self.chunks[c] = Chunk::Frozen(nibbles.into_bytes().into_boxed_slice());
        }
    }

    /// Writes `v` at `o`.
    pub(super) fn set(&mut self, o: usize, v: C::Value) {
        self.open_chunk(o)[o % CHUNK] = v;
        self.len = self.len.max(o + 1);
    }

    /// Applies `f` to the value at `o` (written back).
    pub(super) fn update(&mut self, o: usize, f: impl FnOnce(C::Value) -> C::Value) {
        let slot = &mut self.open_chunk(o)[o % CHUNK];
        *slot = f(*slot);
        self.len = self.len.max(o + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::checker::pack;

    fn round_trip<C: Codec>(values: &[C::Value]) -> usize {
        let mut nibbles = Nibbles::default();
        C::encode(values, &mut nibbles);
        let bytes = nibbles.into_bytes();
        let mut back = vec![C::NONE; values.len()];
        C::decode(&bytes, &mut back);
        assert_eq!(back, values);
        bytes.len()
    }

    #[test]
    fn ids_round_trip_whatever_their_order_and_cost_a_nibble_when_they_step_evenly() {
        // 8 producers interleaved, each stepping by 24: the bench's layout and a
        // partitioner's
        let even: Vec<u64> = (0..CHUNK as u64)
            .map(|i| pack((i % 8) as u32, 1000 + (i / 8) * 24 + i % 8))
            .collect();
        let bytes = round_trip::<IdCodec>(&even);
        assert!(bytes < CHUNK / 2 + 80, "{bytes} bytes for {CHUNK} offsets");
        // holes, foreign records, reorders, a seq going back, 100 producers, the highest seq
        let mut odd = even.clone();
        odd[3] = EMPTY;
        odd[4] = NOT_OURS;
        odd[10] = pack(7, 0);
        for (i, v) in odd.iter_mut().enumerate().skip(500).take(200) {
            *v = pack(100 + i as u32 % 100, (1 << 40) - 1 - i as u64);
        }
        odd[CHUNK - 1] = pack(u32::MAX >> 8, (1 << 40) - 1);
        round_trip::<IdCodec>(&odd);
        round_trip::<IdCodec>(&vec![EMPTY; CHUNK]);
    }

    #[test]
    fn random_chunks_round_trip() {
        // a small LCG: reproducible, no dependency
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            x >> 17
        };
        for round in 0..300 {
            let producers = 1 + next() % [3, 13, 70][round % 3];
            let mut seqs = vec![0u64; producers as usize];
            let ids: Vec<u64> = (0..CHUNK)
                .map(|_| match next() % 50 {
                    0 => EMPTY,
                    1 => NOT_OURS,
                    r => {
                        let p = (next() % producers) as usize;
                        // mostly a steady stride, sometimes a jump either way
                        seqs[p] = match r {
                            2 => next() % (1 << 40),
                            3 => seqs[p].saturating_sub(next() % 1000),
                            _ => (seqs[p] + 24) % (1 << 40),
                        };
                        pack(p as u32 * 1000, seqs[p])
                    }
                })
                .collect();
            round_trip::<IdCodec>(&ids);
            let mut t = next() as u32 % 100_000;
            let times: Vec<u32> = (0..CHUNK)
                .map(|_| match next() % 40 {
                    0 => u32::MAX,
                    1 => next() as u32,
                    2 => {
                        t = t.saturating_sub(next() as u32 % 5000);
                        t
                    }
                    _ => {
                        t = t.saturating_add(next() as u32 % 4);
                        t
                    }
                })
                .collect();
            round_trip::<TimeCodec>(&times);
        }
    }

    #[test]
    fn times_round_trip_including_none_and_jumps() {
        let mut t: Vec<u32> = (0..CHUNK as u32).map(|i| 5000 + i / 3).collect();
        let bytes = round_trip::<TimeCodec>(&t);
        assert!(bytes <= CHUNK / 2 + 8, "{bytes}");
        t[7] = u32::MAX;
        t[8] = 0;
        t[9] = u32::MAX - 1;
        t[10] = 3;
        round_trip::<TimeCodec>(&t);
    }

    #[test]
    fn a_column_reads_back_what_was_written_across_thaws_and_freezes() {
        let mut col = Ids::default();
        let mut plain = vec![EMPTY; 20 * CHUNK];
        // forward through many chunks, then back into frozen ones, then a far jump
        let mut writes: Vec<(usize, u64)> = (0..12 * CHUNK)
            .step_by(3)
            .map(|o| (o, pack((o % 5) as u32, o as u64)))
            .collect();
        writes.push((5, pack(9, 9)));
        writes.push((CHUNK + 1, NOT_OURS));
        writes.push((19 * CHUNK + 7, pack(1, 1)));
        writes.push((2 * CHUNK, pack(2, 2)));
        for (o, v) in writes {
            col.set(o, v);
            plain[o] = v;
            // a read between writes goes through the cache; it must not go stale
            assert_eq!(col.get(o), v);
            assert_eq!(col.get(o / 2), plain[o / 2]);
        }
        assert_eq!(col.len(), 19 * CHUNK + 8);
        // every chunk but the last few is frozen by now: reads decode them
        for (o, v) in plain.iter().enumerate() {
            assert_eq!(col.get(o), *v, "offset {o}");
        }
        assert_eq!(col.get(25 * CHUNK), EMPTY);
        let mut first = FirstDelivery::default();
        first.update(3, |t| t.min(50));
        first.update(3, |t| t.min(70));
        assert_eq!(first.get(3), 50);
        assert_eq!(first.get(4), u32::MAX);
    }
}
