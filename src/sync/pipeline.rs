//! The bookkeeping of the pipelined fetch, pure: which range to send next,
//! which range a message belongs to, and — when a range's tagged OK
//! arrives — which ranges are complete and how far the cursor may move.
//! Fed events ("range sent", "message arrived", "tagged OK"), it answers
//! with decisions; it never sends, reads, stores or looks at a clock.
//!
//! The rule it keeps: the cursor moves only over an in-order prefix of
//! completed ranges, and never past a listed UID that did not arrive (a
//! server may leave one out: expunged since the listing, or unreadable).
//! The caller lists the missing UIDs again once the pipeline is drained.

use std::collections::{HashSet, VecDeque};

use super::Batch;
use crate::imap::UidSet;

/// A tagged reply for a tag this pipeline never sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownTag(pub String);

/// Where an arrived message belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Inside the range of batch `index`.
    InBatch(usize),
    /// Outside every planned range: not asked for.
    NotAsked,
}

/// A range whose FETCH completed, with everything before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completed {
    /// Index of the batch in the plan.
    pub index: usize,
    pub batch: Batch,
    /// Messages and bytes that arrived in it.
    pub count: u64,
    pub bytes: u64,
    /// How far the cursor may move now (`None`: not at all).
    pub advance_to: Option<u32>,
}

#[derive(Debug)]
struct InFlight {
    tag: String,
    index: usize,
    /// Its tagged OK arrived, but an earlier range is still open.
    done: bool,
}

/// The pipelined fetch of one plan of batches.
#[derive(Debug)]
pub struct Pipeline {
    plan: Vec<Batch>,
    listed: UidSet,
    depth: usize,
    next_to_send: usize,
    in_flight: VecDeque<InFlight>,
    /// Listed UIDs received, per batch (at most `batch_size` each, and only
    /// while the batch is open).
    received: Vec<HashSet<u32>>,
    counts: Vec<(u64, u64)>,
    /// Listed UIDs that did not arrive; the cursor may not pass the first.
    missing: Vec<u32>,
}

impl Pipeline {
    /// `listed` is what the server said exists; `depth` how many FETCH
    /// commands may be in flight at once.
    pub fn new(plan: Vec<Batch>, listed: UidSet, depth: usize) -> Pipeline {
        let n = plan.len();
        Pipeline {
            plan,
            listed,
            depth: depth.max(1),
            next_to_send: 0,
            in_flight: VecDeque::new(),
            received: vec![HashSet::new(); n],
            counts: vec![(0, 0); n],
            missing: Vec::new(),
        }
    }

    /// The next range to send, if one is due and the pipeline has room.
    pub fn next_range(&self) -> Option<Batch> {
        (self.next_to_send < self.plan.len() && self.in_flight.len() < self.depth)
            .then(|| self.plan[self.next_to_send])
    }

    /// Sends no further range (the ones in flight still complete): the
    /// pass stops at a range boundary, its cursor exact.
    pub fn stop_sending(&mut self) {
        self.plan.truncate(self.next_to_send);
    }

    /// The range [`Self::next_range`] returned was sent under `tag`; returns
    /// its index.
    pub fn range_sent(&mut self, tag: String) -> usize {
        let index = self.next_to_send;
        self.in_flight.push_back(InFlight {
            tag,
            index,
            done: false,
        });
        self.next_to_send += 1;
        index
    }

    /// True when `uid` lies inside a planned range.
    pub fn asked(&self, uid: u32) -> bool {
        self.plan.iter().any(|b| uid > b.after && uid <= b.last)
    }

    /// A message with `uid` and `bytes` of content arrived.
    pub fn message_arrived(&mut self, uid: u32, bytes: u64) -> Arrival {
        let Some(index) = self
            .plan
            .iter()
            .position(|b| uid > b.after && uid <= b.last)
        else {
            return Arrival::NotAsked;
        };
        if self.listed.contains(uid) {
            self.received[index].insert(uid);
        }
        self.counts[index].0 += 1;
        self.counts[index].1 += bytes;
        Arrival::InBatch(index)
    }

    /// The tagged OK for `tag` arrived. Returns the ranges completed by it,
    /// in order (none when an earlier range is still open: a server may run
    /// commands concurrently and answer out of order).
    pub fn tagged_ok(&mut self, tag: &str) -> Result<Vec<Completed>, UnknownTag> {
        let Some(pos) = self.in_flight.iter().position(|f| f.tag == tag) else {
            return Err(UnknownTag(tag.to_owned()));
        };
        self.in_flight[pos].done = true;
        let mut out = Vec::new();
        while self.in_flight.front().is_some_and(|f| f.done) {
            let Some(f) = self.in_flight.pop_front() else {
                break;
            };
            out.push(self.complete(f.index));
        }
        Ok(out)
    }

    fn complete(&mut self, index: usize) -> Completed {
        let batch = self.plan[index];
        let got = std::mem::take(&mut self.received[index]);
        if got.len() < batch.count {
            self.missing.extend(
                self.listed
                    .iter_range(batch.after, batch.last)
                    .filter(|u| !got.contains(u)),
            );
        }
        let advance_to = match self.missing.first() {
            None => Some(batch.last),
            Some(&first) if first - 1 > batch.after => Some(first - 1),
            Some(_) => None,
        };
        let (count, bytes) = self.counts[index];
        Completed {
            index,
            batch,
            count,
            bytes,
            advance_to,
        }
    }

    /// True once every range was sent and answered.
    pub fn is_drained(&self) -> bool {
        self.next_to_send >= self.plan.len() && self.in_flight.is_empty()
    }

    /// Listed UIDs that did not arrive, in order.
    pub fn missing(&self) -> &[u32] {
        &self.missing
    }

    /// The end of the last range: where the cursor may go once every
    /// missing UID proved gone.
    pub fn last(&self) -> Option<u32> {
        self.plan.last().map(|b| b.last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::batches;

    fn pipeline(after: u32, uids: &[u32], size: usize, depth: usize) -> Pipeline {
        let listed = UidSet::from_uids(uids.iter().copied());
        Pipeline::new(batches(after, &listed, size), listed, depth)
    }

    fn send(p: &mut Pipeline, tag: &str) -> Batch {
        let b = p.next_range().expect("a range is due");
        p.range_sent(tag.to_owned());
        b
    }

    fn advances(done: &[Completed]) -> Vec<Option<u32>> {
        done.iter().map(|c| c.advance_to).collect()
    }

    #[test]
    fn ranges_are_sent_up_to_the_depth() {
        let mut p = pipeline(0, &[1, 2, 3, 4, 5, 6, 7], 2, 3);
        assert_eq!(send(&mut p, "a").last, 2);
        assert_eq!(send(&mut p, "b").last, 4);
        assert_eq!(send(&mut p, "c").last, 6);
        assert_eq!(p.next_range(), None, "three in flight");
        for u in [1, 2] {
            assert_eq!(p.message_arrived(u, 10), Arrival::InBatch(0));
        }
        assert_eq!(advances(&p.tagged_ok("a").expect("known")), [Some(2)]);
        assert_eq!(send(&mut p, "d").last, 7);
        assert_eq!(p.next_range(), None, "nothing left");
        assert!(!p.is_drained());
    }

    #[test]
    fn complete_ranges_move_the_cursor_to_their_end() {
        let mut p = pipeline(10, &[11, 12, 20], 2, 3);
        send(&mut p, "a");
        send(&mut p, "b");
        for u in [11, 12, 20] {
            p.message_arrived(u, 100);
        }
        let a = p.tagged_ok("a").expect("known");
        assert_eq!(a.len(), 1);
        assert_eq!(
            (a[0].count, a[0].bytes, a[0].advance_to),
            (2, 200, Some(12))
        );
        let b = p.tagged_ok("b").expect("known");
        assert_eq!(advances(&b), [Some(20)]);
        assert!(p.is_drained());
        assert!(p.missing().is_empty());
    }

    #[test]
    fn out_of_order_replies_wait_for_the_earlier_range() {
        let mut p = pipeline(0, &[1, 2, 3, 4, 5, 6], 2, 3);
        for t in ["a", "b", "c"] {
            send(&mut p, t);
        }
        for u in 1..=6 {
            p.message_arrived(u, 1);
        }
        assert!(p.tagged_ok("c").expect("known").is_empty());
        assert!(p.tagged_ok("b").expect("known").is_empty());
        let done = p.tagged_ok("a").expect("known");
        assert_eq!(
            done.iter().map(|c| c.index).collect::<Vec<_>>(),
            [0, 1, 2],
            "in plan order"
        );
        assert_eq!(advances(&done), [Some(2), Some(4), Some(6)]);
    }

    #[test]
    fn a_missing_uid_holds_the_cursor_just_below_it() {
        let mut p = pipeline(0, &[1, 2, 3, 4, 5, 6], 2, 3);
        for t in ["a", "b", "c"] {
            send(&mut p, t);
        }
        // 4 is listed but never arrives.
        for u in [1, 2, 3, 5, 6] {
            p.message_arrived(u, 1);
        }
        let done = p.tagged_ok("a").expect("known");
        assert_eq!(advances(&done), [Some(2)]);
        let done = p.tagged_ok("b").expect("known");
        assert_eq!(advances(&done), [Some(3)], "just below the missing 4");
        let done = p.tagged_ok("c").expect("known");
        assert_eq!(advances(&done), [None], "not past 4");
        assert_eq!(p.missing(), [4]);
        assert_eq!(p.last(), Some(6));
    }

    #[test]
    fn a_missing_first_uid_of_a_range_holds_the_cursor_at_its_start() {
        let mut p = pipeline(0, &[1, 2, 3, 4], 2, 3);
        send(&mut p, "a");
        send(&mut p, "b");
        for u in [1, 2, 4] {
            p.message_arrived(u, 1);
        }
        assert_eq!(advances(&p.tagged_ok("a").expect("known")), [Some(2)]);
        assert_eq!(advances(&p.tagged_ok("b").expect("known")), [None]);
        assert_eq!(p.missing(), [3]);
    }

    #[test]
    fn unknown_tags_and_unasked_messages_are_told_apart() {
        let mut p = pipeline(5, &[6, 7], 10, 3);
        send(&mut p, "a");
        assert_eq!(p.message_arrived(3, 1), Arrival::NotAsked);
        assert_eq!(p.message_arrived(99, 1), Arrival::NotAsked);
        assert_eq!(p.tagged_ok("zz"), Err(UnknownTag("zz".into())));
        // A message inside the range but not listed (it arrived since)
        // counts, yet cannot complete the range for a listed one.
        assert_eq!(p.message_arrived(6, 1), Arrival::InBatch(0));
        let done = p.tagged_ok("a").expect("known");
        assert_eq!(advances(&done), [Some(6)]);
        assert_eq!(p.missing(), [7]);
        assert!(p.tagged_ok("a").is_err(), "answered once");
    }

    #[test]
    fn a_stopped_pipeline_completes_what_is_in_flight_and_sends_nothing_more() {
        let mut p = pipeline(0, &[1, 2, 3, 4, 5, 6, 7, 8], 2, 2);
        send(&mut p, "a");
        send(&mut p, "b");
        p.stop_sending();
        assert_eq!(p.next_range(), None);
        for u in 1..=4 {
            p.message_arrived(u, 1);
        }
        assert_eq!(advances(&p.tagged_ok("a").expect("known")), [Some(2)]);
        assert_eq!(advances(&p.tagged_ok("b").expect("known")), [Some(4)]);
        assert!(p.is_drained());
        assert!(p.missing().is_empty(), "unsent ranges are not missing");
        assert_eq!(p.last(), Some(4), "the end of what was sent");
    }

    #[test]
    fn an_empty_plan_is_drained_at_once() {
        let p = pipeline(9, &[], 10, 3);
        assert!(p.is_drained());
        assert_eq!(p.next_range(), None);
        assert_eq!(p.last(), None);
    }
}
