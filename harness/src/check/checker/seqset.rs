//! One producer's sequence numbers as a set: a plain bitmap, one bit per number.
//!
//! Why not roaring here: a producer's sequence numbers are dense from 0 (sent in order,
//! each acked, stored and read once), so a bitmap is as small as roaring's densest
//! container — one bit per record per set — and an insert or lookup is a shift and a mask,
//! with no container to find first. It was half the checker's time as a `RoaringTreemap`.
//! Every number comes from a producer log or a checksummed record header of this run, so
//! it is below what that producer sent: the bitmap never outgrows the run. Numbers from
//! [`DENSE_LIMIT`] on (four billion records of one instance) go to a roaring treemap.

use roaring::RoaringTreemap;

/// Sequence numbers from here on are kept sparse.
const DENSE_LIMIT: u64 = 1 << 32;

#[derive(Clone)]
pub(super) struct SeqSet {
    /// Numbers below this are dense ([`DENSE_LIMIT`]; smaller in tests).
    limit: u64,
    /// Bit `s % 64` of word `s / 64` is sequence number `s`.
    words: Vec<u64>,
    /// Members at or above [`DENSE_LIMIT`].
    sparse: RoaringTreemap,
    /// Members.
    len: u64,
}

impl Default for SeqSet {
    fn default() -> SeqSet {
        SeqSet::with_limit(DENSE_LIMIT)
    }
}

impl SeqSet {
    fn with_limit(limit: u64) -> SeqSet {
        SeqSet {
            limit,
            words: Vec::new(),
            sparse: RoaringTreemap::new(),
            len: 0,
        }
    }

    /// Adds `seq`; true when it was not there.
    pub(super) fn insert(&mut self, seq: u64) -> bool {
        if seq >= self.limit {
            let fresh = self.sparse.insert(seq);
            self.len += u64::from(fresh);
            return fresh;
        }
        let (w, bit) = ((seq / 64) as usize, 1u64 << (seq % 64));
        if w >= self.words.len() {
            // amortised growth: half again, at least what is needed
            let want = (w + 1).max(self.words.len() + self.words.len() / 2);
            self.words.resize(want, 0);
        }
        let fresh = self.words[w] & bit == 0;
        self.words[w] |= bit;
        self.len += u64::from(fresh);
        fresh
    }

    /// Takes `seq` out; true when it was there.
    pub(super) fn remove(&mut self, seq: u64) -> bool {
        let was = if seq >= self.limit {
            self.sparse.remove(seq)
        } else {
            let (w, bit) = ((seq / 64) as usize, 1u64 << (seq % 64));
            match self.words.get_mut(w) {
                Some(x) if *x & bit != 0 => {
                    *x &= !bit;
                    true
                }
                _ => false,
            }
        };
        self.len -= u64::from(was);
        was
    }

    pub(super) fn contains(&self, seq: u64) -> bool {
        if seq >= self.limit {
            return self.sparse.contains(seq);
        }
        let w = (seq / 64) as usize;
        self.words
            .get(w)
            .is_some_and(|x| x & (1 << (seq % 64)) != 0)
    }

    pub(super) fn len(&self) -> u64 {
        self.len
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// How many numbers are in at least one of `sets`.
    pub(super) fn union_len(sets: &[&SeqSet]) -> u64 {
        let words = sets.iter().map(|s| s.words.len()).max().unwrap_or(0);
        let dense: u64 = (0..words)
            .map(|i| {
                let w = sets
                    .iter()
                    .fold(0u64, |acc, s| acc | s.words.get(i).copied().unwrap_or(0));
                u64::from(w.count_ones())
            })
            .sum();
        let mut sparse = RoaringTreemap::new();
        for s in sets {
            sparse |= &s.sparse;
        }
        dense + sparse.len()
    }

    /// The numbers below `to` in none of `sets` (which share one limit), gathered as runs.
    pub(super) fn missing_below(to: u64, sets: &[&SeqSet]) -> RoaringTreemap {
        let limit = sets.first().map_or(DENSE_LIMIT, |s| s.limit);
        let mut out = RoaringTreemap::new();
        let dense_to = to.min(limit);
        let mut run_from: Option<u64> = None;
        for i in 0..dense_to.div_ceil(64) {
            let have = sets.iter().fold(0u64, |acc, s| {
                acc | s.words.get(i as usize).copied().unwrap_or(0)
            });
            if have == 0 {
                run_from.get_or_insert(i * 64);
                continue;
            }
            for bit in 0..64 {
                let seq = i * 64 + bit;
                if have & (1 << bit) == 0 {
                    run_from.get_or_insert(seq);
                } else if let Some(from) = run_from.take() {
                    out.insert_range(from..seq);
                }
            }
        }
        if let Some(from) = run_from {
            out.insert_range(from..dense_to);
        }
        out.remove_range(dense_to..);
        if to > limit {
            out.insert_range(limit..to);
            for s in sets {
                out -= &s.sparse;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_is_a_set_of_numbers_dense_or_not() {
        // dense below 128 here, as below four billion in a run
        let limit = 128;
        let mut a = SeqSet::with_limit(limit);
        let mut b = SeqSet::with_limit(limit);
        for s in [0, 1, 63, 64, 65, 100, limit - 1, limit, limit + 7] {
            assert!(a.insert(s), "{s}");
            assert!(!a.insert(s), "{s} twice");
            assert!(a.contains(s));
        }
        assert!(!a.contains(2) && !a.contains(limit + 6) && !a.contains(u64::MAX));
        assert_eq!(a.len(), 9);
        for s in [2, 65, limit + 8] {
            b.insert(s);
        }
        assert_eq!(SeqSet::union_len(&[&a, &b]), 11);
        let missing: Vec<u64> = SeqSet::missing_below(70, &[&a, &b]).iter().collect();
        let want: Vec<u64> = (3..63).chain([66, 67, 68, 69]).collect();
        assert_eq!(missing, want);
        let far: Vec<u64> = SeqSet::missing_below(limit + 10, &[&a, &b])
            .iter()
            .filter(|s| *s >= 99)
            .collect();
        let want: Vec<u64> = [99]
            .into_iter()
            .chain(101..limit - 1)
            .chain(limit + 1..limit + 7)
            .chain([limit + 9])
            .collect();
        assert_eq!(far, want);
        // nothing at all: one run
        let empty = SeqSet::with_limit(limit);
        assert_eq!(SeqSet::missing_below(1000, &[&empty]).len(), 1000);
    }
}
