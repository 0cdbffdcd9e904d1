//! Identifiers of the IMAP data model as distinct types, so a UID can never be
//! passed where a sequence number or a UIDVALIDITY belongs.

use std::fmt;

/// A message's unique identifier within one UIDVALIDITY generation of a mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Uid(pub u32);

/// The generation of a mailbox's UIDs; when it changes, old UIDs mean nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UidValidity(pub u32);

/// A message's position in the selected mailbox; shifts on every expunge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SeqNum(pub u32);

/// A CONDSTORE modification sequence (RFC 7162).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ModSeq(pub u64);

impl fmt::Display for Uid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for UidValidity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for ModSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// An inclusive range of UIDs, the unit in which fetches are planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UidRange {
    pub first: Uid,
    pub last: Uid,
}

/// A set of UIDs as the server writes it (`1:5,7,9:12`), kept as sorted,
/// non-overlapping ranges so that a huge mailbox costs a few integers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UidSet {
    ranges: Vec<(u32, u32)>,
}

impl UidSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a set from ranges in any order, merging overlaps.
    pub fn from_ranges(mut ranges: Vec<(u32, u32)>) -> Self {
        for r in &mut ranges {
            if r.0 > r.1 {
                *r = (r.1, r.0);
            }
        }
        ranges.sort_unstable();
        let mut merged: Vec<(u32, u32)> = Vec::with_capacity(ranges.len());
        for (a, b) in ranges {
            match merged.last_mut() {
                Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        Self { ranges: merged }
    }

    /// Builds a set from individual UIDs in any order.
    pub fn from_uids(uids: impl IntoIterator<Item = u32>) -> Self {
        Self::from_ranges(uids.into_iter().map(|u| (u, u)).collect())
    }

    pub fn ranges(&self) -> &[(u32, u32)] {
        &self.ranges
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    pub fn contains(&self, uid: u32) -> bool {
        self.ranges
            .binary_search_by(|&(a, b)| {
                if b < uid {
                    std::cmp::Ordering::Less
                } else if a > uid {
                    std::cmp::Ordering::Greater
                } else {
                    std::cmp::Ordering::Equal
                }
            })
            .is_ok()
    }

    /// Number of UIDs in the set.
    pub fn len(&self) -> u64 {
        self.ranges.iter().map(|&(a, b)| u64::from(b - a) + 1).sum()
    }

    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.ranges.iter().flat_map(|&(a, b)| a..=b)
    }

    /// The UIDs `u` of the set with `after < u <= last`, found by binary
    /// search so a batch of a huge set costs only its own size.
    pub fn iter_range(&self, after: u32, last: u32) -> impl Iterator<Item = u32> + '_ {
        let start = self.ranges.partition_point(|&(_, b)| b <= after);
        self.ranges[start..]
            .iter()
            .take_while(move |&&(a, _)| a <= last)
            .flat_map(move |&(a, b)| a.max(after.saturating_add(1))..=b.min(last))
    }
}

impl fmt::Display for UidSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, &(a, b)) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if a == b {
                write!(f, "{a}")?;
            } else {
                write!(f, "{a}:{b}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_set_merges_and_formats() {
        let s = UidSet::from_uids([5, 1, 2, 3, 9, 10, 7]);
        assert_eq!(s.to_string(), "1:3,5,7,9:10");
        assert_eq!(s.len(), 7);
        assert!(s.contains(2) && s.contains(10) && !s.contains(4) && !s.contains(11));
        assert_eq!(UidSet::from_ranges(vec![(9, 3), (1, 2)]).to_string(), "1:9");
    }

    #[test]
    fn iter_range_takes_only_the_uids_inside() {
        let s = UidSet::from_ranges(vec![(1, 3), (5, 5), (7, 12), (20, 20)]);
        let got: Vec<u32> = s.iter_range(2, 8).collect();
        assert_eq!(got, [3, 5, 7, 8]);
        assert_eq!(s.iter_range(0, 1).collect::<Vec<_>>(), [1]);
        assert_eq!(s.iter_range(12, 19).count(), 0);
        assert_eq!(s.iter_range(19, u32::MAX).collect::<Vec<_>>(), [20]);
        assert_eq!(s.iter_range(20, u32::MAX).count(), 0);
        for (after, last) in [(0, 20), (4, 9), (6, 7), (0, 0)] {
            let slow: Vec<u32> = s.iter().filter(|u| *u > after && *u <= last).collect();
            assert_eq!(s.iter_range(after, last).collect::<Vec<_>>(), slow);
        }
    }
}
