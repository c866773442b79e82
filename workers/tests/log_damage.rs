//! The worker log reader against any damage (property tests).
//!
//! A log is written by the real [`LogWriter`] from generated events, then cut at any byte,
//! changed at any byte, or followed while it grows in chunks of any size. Whatever happens,
//! the reader must give back a prefix of what was written — never an event that was not
//! written — say that it stopped short and where, and never panic.
//!
//! Where the blocks begin is found by walking the file's framing as `log::block` documents
//! it (`body_len:u32 count:u32 body crc:u32`), independently of the reader: the writer also
//! seals a block on its own when a flush interval passes, so a test cannot predict them.
//!
//! Case counts are bounded for the fast tier (64 per property); a longer run, for local use:
//! `PROPTEST_CASES=20000 cargo test --release -p workers --test log_damage`.

mod common;

use std::path::Path;

use proptest::prelude::*;
use workers::config::Role;
use workers::log::{
    Event, EventKind, LogError, LogHeader, LogReader, LogWriter, EVENT_LEN, HEADER_LEN,
};

fn header(version: u16) -> LogHeader {
    LogHeader {
        version,
        role: Role::Produce,
        clock: 0,
        worker: 1,
        flags: 3,
        start_us: 1_700_000_000_000_000,
        run_id: "run-proptest".into(),
    }
}

/// Every event kind a block logs (0, a transaction, to 16, a reconnection; not 1, `Sent`,
/// which only versions 1 to 3 logged, in fixed events), with any field values (the delta
/// code must survive extremes).
fn any_event() -> impl Strategy<Value = Event> {
    (
        (0u8..=15).prop_map(|k| if k == 1 { 16 } else { k }),
        any::<u16>(),
        any::<u32>(),
        any::<u64>(),
        any::<i32>(),
        any::<i32>(),
        any::<i64>(),
        any::<u64>(),
        any::<u64>(),
        any::<u32>(),
    )
        .prop_map(
            |(k, topic, producer, seq, partition, code, offset, ts_a, ts_b, instance)| Event {
                topic,
                producer,
                seq,
                partition,
                code,
                offset,
                ts_a,
                ts_b,
                instance,
                ..Event::new(EventKind::from_u8(k).unwrap())
            },
        )
}

/// Events as a producer logs them: acknowledgements close to each other (small deltas, the
/// common case of the block code), now and then an odd one.
fn log_events() -> impl Strategy<Value = Vec<Event>> {
    let acks = (0u64..1_000_000, 1usize..2_000).prop_map(|(start, n)| {
        (0..n as u64)
            .map(|i| {
                let seq = start + i;
                Event {
                    producer: 7,
                    seq,
                    partition: (seq % 6) as i32,
                    code: (seq % 3) as i32,
                    offset: (seq / 6) as i64,
                    ts_a: 1_700_000_000_000_000 + seq * 10,
                    ts_b: 1_700_000_000_004_000 + seq * 10 + (seq % 7) * 100,
                    ..Event::new(EventKind::Acked)
                }
            })
            .collect::<Vec<_>>()
    });
    (
        acks,
        prop::collection::vec(any_event(), 0..40),
        any::<u64>(),
    )
        .prop_map(|(mut events, odd, spread)| {
            // the odd events spread through the acknowledgements
            for (i, e) in odd.into_iter().enumerate() {
                let at = (spread.wrapping_mul(i as u64 + 1) % (events.len() as u64 + 1)) as usize;
                events.insert(at, e);
            }
            events
        })
}

/// Writes `events` with a flush (a sealed block) after each index in `flush_after`.
fn write(path: &Path, version: u16, events: &[Event], flush_after: &[usize]) -> Vec<u8> {
    let mut w = LogWriter::create(path, &header(version)).unwrap();
    for (i, e) in events.iter().enumerate() {
        w.append(e).unwrap();
        if flush_after.contains(&i) {
            w.flush().unwrap();
        }
    }
    w.finish().unwrap();
    std::fs::read(path).unwrap()
}

/// The blocks of a version-4 file, found from its framing: (start, end, events) each.
fn blocks(bytes: &[u8]) -> Vec<(usize, usize, usize)> {
    let mut v = Vec::new();
    let mut at = HEADER_LEN;
    while at < bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        let count = u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap()) as usize;
        let end = at + 8 + len + 4;
        v.push((at, end, count));
        at = end;
    }
    assert_eq!(at, bytes.len(), "the writer's framing covers the file");
    v
}

/// Everything the reader gives, in order, with whether it stopped short and where.
fn read_all(path: &Path, one_at_a_time: bool) -> Result<(Vec<Event>, Option<u64>), LogError> {
    let mut r = LogReader::open(path)?;
    let mut out = Vec::new();
    if one_at_a_time {
        while let Some(e) = r.next_event()? {
            out.push(e);
        }
    } else {
        while r.read_batch(&mut out, 1000)? {}
    }
    assert_eq!(r.events_read(), out.len() as u64);
    assert_eq!(r.was_cut_short(), r.cut_short_at().is_some());
    Ok((out, r.cut_short_at()))
}

/// The block holding byte `at` (of the body), and the events before it.
fn block_at(blocks: &[(usize, usize, usize)], at: usize) -> (usize, usize) {
    let mut before = 0;
    for &(start, end, count) in blocks {
        if at < end {
            return (start, before);
        }
        before += count;
    }
    unreachable!("byte {at} is past the last block")
}

proptest! {
    #![proptest_config(common::proptest_config())]

    /// Written and read back whole: the same events, not cut short, both ways of reading.
    #[test]
    fn a_whole_log_reads_back_exactly(
        events in log_events(),
        flushes in prop::collection::vec(0usize..2_100, 0..20),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w.log");
        write(&p, 4, &events, &flushes);
        for one in [false, true] {
            let (read, cut) = read_all(&p, one).unwrap();
            prop_assert_eq!(cut, None);
            prop_assert!(read == events, "{} read back, {} written", read.len(), events.len());
        }
    }

    /// Cut at any byte (a crash mid-write, a copy taken while it grows): every whole block
    /// before the cut is read, nothing of the block the cut falls in, and the reader says it
    /// stopped short exactly where that block begins.
    #[test]
    fn a_log_cut_anywhere_reads_up_to_its_last_whole_block(
        events in log_events(),
        flushes in prop::collection::vec(0usize..2_100, 0..20),
        cut in any::<prop::sample::Index>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w.log");
        let bytes = write(&p, 4, &events, &flushes);
        let blocks = blocks(&bytes);
        let cut = HEADER_LEN + cut.index(bytes.len() - HEADER_LEN + 1);
        std::fs::write(&p, &bytes[..cut]).unwrap();
        let (read, at) = read_all(&p, false).unwrap();
        let whole: usize = blocks.iter().filter(|b| b.1 <= cut).map(|b| b.2).sum();
        prop_assert!(read[..] == events[..whole], "{} read, {} in whole blocks", read.len(), whole);
        let on_boundary = cut == HEADER_LEN || blocks.iter().any(|b| b.1 == cut);
        if on_boundary {
            prop_assert_eq!(at, None);
        } else {
            prop_assert_eq!(at, Some(block_at(&blocks, cut).0 as u64));
        }
    }

    /// Any one byte of the body changed: the blocks before it are read, the damaged one and
    /// all after it are not, and the reader names the damaged block's first byte. Never an
    /// event that was not written.
    #[test]
    fn a_changed_byte_ends_the_log_at_its_block(
        events in log_events(),
        flushes in prop::collection::vec(0usize..2_100, 0..20),
        at in any::<prop::sample::Index>(),
        xor in 1u8..=255,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w.log");
        let mut bytes = write(&p, 4, &events, &flushes);
        let blocks = blocks(&bytes);
        let at = HEADER_LEN + at.index(bytes.len() - HEADER_LEN);
        bytes[at] ^= xor;
        std::fs::write(&p, &bytes).unwrap();
        let (start, before) = block_at(&blocks, at);
        for one in [false, true] {
            let (read, cut) = read_all(&p, one).unwrap();
            prop_assert!(read[..] == events[..before], "{} read, {} before the damage", read.len(), before);
            prop_assert_eq!(cut, Some(start as u64));
        }
    }

    /// Several bytes overwritten anywhere after the header, the file perhaps cut too: what
    /// is read is a prefix of what was written — nothing invented, no panic.
    #[test]
    fn any_damage_reads_a_prefix_of_what_was_written(
        events in log_events(),
        flushes in prop::collection::vec(0usize..2_100, 0..20),
        damage in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..12),
        cut in prop::option::of(any::<prop::sample::Index>()),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w.log");
        let mut bytes = write(&p, 4, &events, &flushes);
        let body = bytes.len() - HEADER_LEN;
        for (at, v) in &damage {
            bytes[HEADER_LEN + at.index(body)] = *v;
        }
        if let Some(cut) = cut {
            bytes.truncate(HEADER_LEN + cut.index(body + 1));
        }
        std::fs::write(&p, &bytes).unwrap();
        for one in [false, true] {
            let (read, _) = read_all(&p, one).unwrap();
            prop_assert!(read.len() <= events.len());
            prop_assert!(read[..] == events[..read.len()], "an event read that was not written");
        }
    }

    /// Bytes that were never a log body, behind a good header (version 4 or a fixed-width
    /// one): the reader ends, with or without events, and never panics or runs away.
    #[test]
    fn garbage_after_a_good_header_never_panics(
        version in 1u16..=4,
        garbage in prop::collection::vec(any::<u8>(), 0..4096),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w.log");
        let mut bytes = write(&p, version, &[], &[]);
        bytes.extend_from_slice(&garbage);
        std::fs::write(&p, &bytes).unwrap();
        let (read, cut) = read_all(&p, false).unwrap();
        prop_assert!(read.len() <= garbage.len() / 6 + 1);
        if let Some(at) = cut {
            prop_assert!(at >= HEADER_LEN as u64 && at < bytes.len() as u64);
        }
    }

    /// Any change to the header, or a file shorter than one: refused at open with the
    /// reason, never a log read with a wrong identity.
    #[test]
    fn a_damaged_or_short_header_is_refused(
        at in 0usize..HEADER_LEN,
        xor in 1u8..=255,
        short in 0usize..HEADER_LEN,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w.log");
        let mut bytes = write(&p, 4, &[Event::new(EventKind::Acked)], &[]);
        bytes[at] ^= xor;
        std::fs::write(&p, &bytes).unwrap();
        match LogReader::open(&p) {
            Err(LogError::NotALog) => prop_assert!(at < 8, "bad magic at byte {}", at),
            Err(LogError::BadHeader(why)) => prop_assert!(!why.is_empty()),
            Err(e) => prop_assert!(false, "{e}"),
            Ok(_) => prop_assert!(false, "a header changed at byte {} was accepted", at),
        }
        std::fs::write(&p, &bytes[..short]).unwrap();
        prop_assert!(matches!(LogReader::open(&p), Err(LogError::BadHeader(_))));
    }

    /// The fixed-width bodies of versions 1 to 3, cut anywhere or changed at one byte: the
    /// events before the cut or the damaged event are read, and the reader names the first
    /// byte of the event it could not read.
    #[test]
    fn old_fixed_width_logs_read_up_to_their_damage(
        version in 1u16..=3,
        events in prop::collection::vec(any_event(), 1..200),
        cut in any::<prop::sample::Index>(),
        change in prop::option::of((any::<prop::sample::Index>(), 1u8..=255)),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w.log");
        let mut bytes = write(&p, version, &events, &[]);
        let body = bytes.len() - HEADER_LEN;
        prop_assert_eq!(body, events.len() * EVENT_LEN);
        let (whole, at) = match change {
            Some((at, xor)) => {
                let at = at.index(body);
                bytes[HEADER_LEN + at] ^= xor;
                (at / EVENT_LEN, Some(HEADER_LEN + at / EVENT_LEN * EVENT_LEN))
            }
            None => {
                let cut = cut.index(body + 1);
                bytes.truncate(HEADER_LEN + cut);
                let partial = cut % EVENT_LEN != 0;
                (cut / EVENT_LEN, partial.then_some(HEADER_LEN + cut / EVENT_LEN * EVENT_LEN))
            }
        };
        std::fs::write(&p, &bytes).unwrap();
        for one in [false, true] {
            let (read, cut_at) = read_all(&p, one).unwrap();
            prop_assert!(read[..] == events[..whole], "{} read, {} expected", read.len(), whole);
            prop_assert_eq!(cut_at, at.map(|a| a as u64));
        }
    }

    /// Followed while it grows in chunks of any size (a live check reading a worker's log):
    /// a partial block at the end is waited for, not taken for damage, and every event
    /// comes out once, in order.
    #[test]
    fn a_followed_log_gives_every_event_once_whatever_the_chunks(
        events in log_events(),
        flushes in prop::collection::vec(0usize..2_100, 0..20),
        chunks in prop::collection::vec(1usize..5_000, 1..40),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("w.log");
        let bytes = write(&src, 4, &events, &flushes);
        let p = dir.path().join("growing.log");
        let mut written = HEADER_LEN;
        std::fs::write(&p, &bytes[..written]).unwrap();
        let mut r = LogReader::follow(&p).unwrap();
        let mut read = Vec::new();
        let mut chunk = chunks.iter().cycle();
        loop {
            while r.read_batch(&mut read, 1000).unwrap() {}
            prop_assert!(!r.was_cut_short(), "a partial block taken for damage at {written}");
            if written == bytes.len() {
                break;
            }
            written = (written + chunk.next().unwrap()).min(bytes.len());
            let mut f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
            std::io::Write::write_all(&mut f, &bytes[..written]).unwrap();
        }
        prop_assert!(read == events, "{} read while following, {} written", read.len(), events.len());
    }
}
