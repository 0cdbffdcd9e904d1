//! Byte level: what the response reader allocates for what a server claims.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Counts the bytes allocated by the current thread (live and peak), so a
/// test can show that a claim allocates nothing.
struct Counting;

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = LIVE.try_with(|l| {
            let n = l.get() + layout.size();
            l.set(n);
            let _ = PEAK.try_with(|p| p.set(p.get().max(n)));
        });
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let _ = LIVE.try_with(|l| l.set(l.get().saturating_sub(layout.size())));
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = LIVE.try_with(|l| {
            let n = (l.get() + new_size).saturating_sub(layout.size());
            l.set(n);
            let _ = PEAK.try_with(|p| p.set(p.get().max(n)));
        });
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Peak bytes allocated on this thread by `f` beyond what was live before.
fn peak_of(f: impl FnOnce()) -> usize {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    f();
    PEAK.with(Cell::get) - base
}

fn reader(max_literal: u64) -> mailfeed::imap::ResponseReader {
    mailfeed::imap::ResponseReader::new(mailfeed::imap::Limits {
        max_literal,
        ..Default::default()
    })
}

#[test]
fn literal_claim_of_2_pow_40_allocates_nothing() {
    let mut r = reader(100 * 1000 * 1000);
    let peak = peak_of(|| {
        let e = r
            .feed(b"* 1 FETCH (UID 1 BODY[] {1099511627776}\r\n")
            .expect_err("refused");
        assert!(e.to_string().contains("beyond the protocol"), "{e}");
    });
    assert!(peak < 4096, "a 2^40 claim allocated {peak} bytes");
}

#[test]
fn literal_claim_of_4_gib_allocates_only_what_arrives() {
    // The largest legal claim: the reader must not reserve it, and beyond
    // max_literal it keeps only the head.
    let mut r = reader(1024 * 1024);
    let peak = peak_of(|| {
        r.feed(b"* 1 FETCH (UID 1 BODY[] {4294967295}\r\n")
            .expect("legal");
        let chunk = vec![b'z'; 64 * 1024];
        for _ in 0..64 {
            r.feed(&chunk).expect("data"); // 4 MiB arrive
        }
        assert_eq!(r.literal_remaining(), Some(4294967295 - 4 * 1024 * 1024));
    });
    assert!(
        peak < 512 * 1024,
        "holding a 4 GiB claim after 4 MiB allocated {peak} bytes"
    );
}

#[test]
fn line_without_crlf_is_bounded() {
    let mut r = mailfeed::imap::ResponseReader::new(mailfeed::imap::Limits {
        max_line: 128 * 1024,
        ..Default::default()
    });
    let peak = peak_of(|| {
        let chunk = vec![b'x'; 4096];
        let mut failed = None;
        for _ in 0..256 {
            if let Err(e) = r.feed(&chunk) {
                failed = Some(e);
                break;
            }
        }
        let e = failed.expect("a 1 MiB line must be refused");
        assert!(e.to_string().contains("longer than 131072 bytes"), "{e}");
        assert!(e.to_string().contains("sync.max_line_size"), "{e}");
    });
    assert!(peak < 512 * 1024, "a long line allocated {peak} bytes");
}

/// Legal long lines within the default bound are read, holding a small
/// multiple of the line: a 1 MB CAPABILITY and a QRESYNC `VANISHED
/// (EARLIER)` of 200,000 scattered UIDs (1.3 MB).
#[test]
fn long_legal_lines_are_read_within_a_multiple_of_their_size() {
    use mailfeed::imap::{Response, Untagged};
    let mut caps = b"* CAPABILITY IMAP4rev1".to_vec();
    let mut n = 0;
    while caps.len() < 1024 * 1024 {
        caps.extend_from_slice(format!(" X-LONG-CAPABILITY-{n}").as_bytes());
        n += 1;
    }
    caps.extend_from_slice(b"\r\n");
    let mut vanished = b"* VANISHED (EARLIER) 1".to_vec();
    for uid in (3..400_000).step_by(2) {
        vanished.extend_from_slice(format!(",{uid}").as_bytes());
    }
    vanished.extend_from_slice(b"\r\n");
    for (line, what) in [(&caps, "CAPABILITY"), (&vanished, "VANISHED")] {
        let mut r = reader(100 * 1000 * 1000);
        let mut got = None;
        let peak = peak_of(|| {
            for chunk in line.chunks(64 * 1024) {
                r.feed(chunk).expect(what);
            }
            got = r.pop().map(|x| x.response);
        });
        match got {
            Some(Response::Untagged(Untagged::Capability(c))) => {
                assert_eq!(c.len(), n + 1, "{what}");
            }
            Some(Response::Untagged(Untagged::Vanished { earlier, uids })) => {
                assert!(earlier);
                assert_eq!(uids.len(), 200_000, "{what}");
                assert!(uids.contains(399_999) && !uids.contains(2));
            }
            other => panic!("{what}: {other:?}"),
        }
        eprintln!(
            "{what}: {} bytes read, peak {peak} bytes allocated",
            line.len()
        );
        assert!(
            peak < 6 * line.len(),
            "{what} of {} bytes allocated {peak} bytes",
            line.len()
        );
    }
}
