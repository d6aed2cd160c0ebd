//! Sets of byte ranges: the used map of a volume.

use serde::Serialize;

/// A sorted set of disjoint, non-adjacent half-open byte ranges `[start, end)`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct RangeSet {
    ranges: Vec<(u64, u64)>,
}

impl RangeSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// The whole range `[0, len)`.
    pub fn full(len: u64) -> Self {
        let mut s = Self::new();
        s.insert(0, len);
        s
    }

    /// Add `[start, start + len)`. Appending in ascending order is O(1).
    pub fn insert(&mut self, start: u64, len: u64) {
        if len == 0 {
            return;
        }
        let end = start.saturating_add(len);
        if let Some(last) = self.ranges.last_mut() {
            if start >= last.0 {
                if start <= last.1 {
                    last.1 = last.1.max(end);
                } else {
                    self.ranges.push((start, end));
                }
                return;
            }
        } else {
            self.ranges.push((start, end));
            return;
        }
        // Out of order: insert and merge around the insertion point.
        let i = self.ranges.partition_point(|r| r.1 < start);
        let mut j = i;
        let (mut s, mut e) = (start, end);
        while j < self.ranges.len() && self.ranges[j].0 <= e {
            s = s.min(self.ranges[j].0);
            e = e.max(self.ranges[j].1);
            j += 1;
        }
        self.ranges.splice(i..j, [(s, e)]);
    }

    /// Add every range of `other`, shifted by `shift` bytes.
    pub fn union_shifted(&mut self, other: &RangeSet, shift: u64) {
        for &(s, e) in &other.ranges {
            self.insert(s + shift, e - s);
        }
    }

    /// Keep only what lies below `limit`.
    pub fn clip(&mut self, limit: u64) {
        self.ranges.retain(|r| r.0 < limit);
        if let Some(last) = self.ranges.last_mut() {
            last.1 = last.1.min(limit);
        }
    }

    /// The part of the set inside `[start, end)`, as ranges.
    pub fn intersect(&self, start: u64, end: u64) -> impl Iterator<Item = (u64, u64)> + '_ {
        let i = self.ranges.partition_point(|r| r.1 <= start);
        self.ranges[i..]
            .iter()
            .take_while(move |r| r.0 < end)
            .map(move |r| (r.0.max(start), r.1.min(end)))
    }

    /// Total bytes covered.
    pub fn total(&self) -> u64 {
        self.ranges.iter().map(|r| r.1 - r.0).sum()
    }

    pub fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.ranges.iter().copied()
    }

    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn merges_adjacent_and_overlapping() {
        let mut s = RangeSet::new();
        s.insert(0, 10);
        s.insert(10, 5);
        s.insert(20, 5);
        s.insert(3, 1);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![(0, 15), (20, 25)]);
        s.insert(14, 7);
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![(0, 25)]);
        s.clip(12);
        assert_eq!(s.total(), 12);
    }

    #[test]
    fn intersect_clips() {
        let mut s = RangeSet::new();
        s.insert(0, 10);
        s.insert(20, 10);
        assert_eq!(
            s.intersect(5, 25).collect::<Vec<_>>(),
            vec![(5, 10), (20, 25)]
        );
        assert_eq!(s.intersect(10, 20).count(), 0);
    }

    proptest! {
        #[test]
        fn matches_a_bitmap(ops in proptest::collection::vec((0u64..200, 0u64..30), 0..40)) {
            let mut s = RangeSet::new();
            let mut bits = [false; 256];
            for (start, len) in ops {
                s.insert(start, len);
                for b in &mut bits[start as usize..(start + len) as usize] { *b = true; }
            }
            let want = bits.iter().filter(|b| **b).count() as u64;
            prop_assert_eq!(s.total(), want);
            let v: Vec<_> = s.iter().collect();
            for w in v.windows(2) { prop_assert!(w[0].1 < w[1].0); }
            for (a, b) in v { for i in a..b { prop_assert!(bits[i as usize]); } }
        }
    }
}
