//! The header at the start of every record value a producer instance sends.
//!
//! ```text
//! 0   magic "KMH1"        4 bytes
//! 4   run hash            u64 LE   (FNV-1a of the run id: tells our records from others')
//! 12  producer id         u32 LE
//! 16  sequence number     u64 LE   (per producer, from 0, no gaps)
//! 24  send timestamp      u64 LE   (µs since epoch)
//! 32  checksum            u32 LE   (CRC-32 of bytes 0..32 and of the padding)
//! 36  padding to the configured size, derived from the sequence number
//! ```
//! The checksum covers the padding too, so a corrupted or torn value is detected.

use thiserror::Error;

/// Four bytes every value of ours starts with.
pub const MAGIC: [u8; 4] = *b"KMH1";
/// Bytes in the header; the smallest value a producer can send.
pub const HEADER_LEN: usize = 36;

/// What a record value carries, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    /// FNV-1a hash of the run id ([`run_hash`]).
    pub run_hash: u64,
    /// The producer instance that sent it (unique within a run).
    pub producer: u32,
    /// The producer's sequence number for this record.
    pub seq: u64,
    /// When the producer handed it to the client, µs since epoch.
    pub send_ts_us: u64,
}

/// Why a value could not be decoded as one of ours.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    /// Shorter than the header, or not starting with the magic: not written by a worker.
    #[error("not a harness record")]
    Foreign,
    /// Ours, but the checksum does not match: the bytes were changed.
    #[error("checksum mismatch")]
    Corrupt,
}

/// The 64-bit FNV-1a hash of a run id, stored in every record.
pub fn run_hash(run_id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in run_id.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl RecordHeader {
    /// Writes this header, padded to `size` bytes (at least [`HEADER_LEN`]), into `buf`.
    pub fn encode_into(&self, size: usize, buf: &mut Vec<u8>) {
        let size = size.max(HEADER_LEN);
        buf.clear();
        buf.extend_from_slice(&MAGIC);
        buf.extend_from_slice(&self.run_hash.to_le_bytes());
        buf.extend_from_slice(&self.producer.to_le_bytes());
        buf.extend_from_slice(&self.seq.to_le_bytes());
        buf.extend_from_slice(&self.send_ts_us.to_le_bytes());
        buf.extend_from_slice(&[0; 4]);
        let mut fill = self.seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        while buf.len() < size {
            fill ^= fill << 13;
            fill ^= fill >> 7;
            fill ^= fill << 17;
            buf.push(fill as u8);
        }
        let sum = checksum(buf);
        buf[32..36].copy_from_slice(&sum.to_le_bytes());
    }

    /// Encodes into a new vector of `size` bytes.
    pub fn encode(&self, size: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(size.max(HEADER_LEN));
        self.encode_into(size, &mut v);
        v
    }

    /// Decodes a value; [`DecodeError::Foreign`] for values not written by a worker.
    pub fn decode(value: &[u8]) -> Result<RecordHeader, DecodeError> {
        if value.len() < HEADER_LEN || value[0..4] != MAGIC {
            return Err(DecodeError::Foreign);
        }
        let stored = u32::from_le_bytes(value[32..36].try_into().unwrap());
        if stored != checksum(value) {
            return Err(DecodeError::Corrupt);
        }
        let u64_at = |i: usize| u64::from_le_bytes(value[i..i + 8].try_into().unwrap());
        Ok(RecordHeader {
            run_hash: u64_at(4),
            producer: u32::from_le_bytes(value[12..16].try_into().unwrap()),
            seq: u64_at(16),
            send_ts_us: u64_at(24),
        })
    }
}

fn checksum(value: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&value[0..32]);
    h.update(&value[HEADER_LEN..]);
    h.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RecordHeader {
        RecordHeader {
            run_hash: run_hash("r1"),
            producer: 7,
            seq: 123_456,
            send_ts_us: 99,
        }
    }

    #[test]
    fn round_trip_at_every_size() {
        for size in [0, HEADER_LEN, 37, 512, 4096] {
            let v = sample().encode(size);
            assert_eq!(v.len(), size.max(HEADER_LEN));
            assert_eq!(RecordHeader::decode(&v), Ok(sample()));
        }
    }

    #[test]
    fn a_flipped_padding_byte_is_corrupt() {
        let mut v = sample().encode(100);
        v[80] ^= 1;
        assert_eq!(RecordHeader::decode(&v), Err(DecodeError::Corrupt));
    }

    #[test]
    fn other_values_are_foreign() {
        assert_eq!(RecordHeader::decode(b"hello"), Err(DecodeError::Foreign));
        assert_eq!(RecordHeader::decode(&[0u8; 64]), Err(DecodeError::Foreign));
    }
}
