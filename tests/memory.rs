//! Memory independent of message size: storing a message with a large
//! base64 attachment (through the real parse stage and writer thread, into a
//! database file) must not hold its decoded bytes beside the raw ones. The
//! heap is counted by a global allocator; this file holds one test so that
//! nothing else allocates meanwhile.

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use mailfeed::imap::{Uid, UidValidity};
use mailfeed::store::{NewMessage, Reader, StoreHandle};
use support::corpus::base64_lines;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const MIB: usize = 1 << 20;

#[test]
fn a_fifty_megabyte_message_is_not_held_raw_and_decoded_at_once() {
    let payload: Vec<u8> = (0..36 * MIB as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut raw = b"From: a@example.com\r\nSubject: big\r\nMessage-ID: <big@example.com>\r\n\
          Content-Type: multipart/mixed; boundary=B\r\n\r\n\
          --B\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n--B\r\n\
          Content-Type: application/octet-stream; name=big.bin\r\n\
          Content-Transfer-Encoding: base64\r\n\r\n"
        .to_vec();
    raw.extend_from_slice(&base64_lines(&payload));
    raw.extend_from_slice(b"--B--\r\n");
    assert!(raw.len() > 48 * MIB, "{}", raw.len());
    let raw_len = raw.len();
    let sha = {
        use sha2::{Digest, Sha256};
        let d = Sha256::digest(&payload);
        d.iter().map(|b| format!("{b:02x}")).collect::<String>()
    };

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("mail.db");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (handle, writer) =
        StoreHandle::start(&path, Default::default(), 16 * MIB as u64).expect("store");
    let before = LIVE.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    rt.block_on(async {
        let (mb, _) = handle
            .ensure_mailbox("test", "INBOX")
            .await
            .expect("mailbox");
        handle
            .save(NewMessage {
                mailbox: mb,
                uidvalidity: UidValidity(1),
                uid: Uid(1),
                internal_date: None,
                flags: Vec::new(),
                modseq: None,
                size: raw_len as u64,
                raw,
                truncated: false,
                gmail: None,
            })
            .await
            .expect("save");
        handle
            .advance_cursor(mb, UidValidity(1), 1)
            .await
            .expect("cursor");
        handle.commit().await.expect("commit");
    });
    let peak = PEAK.load(Ordering::Relaxed) - before;
    handle.shutdown();
    writer.join();

    // The raw bytes (allocated before `before`) are held once, moved from
    // the fetch to the writer; the decoded attachment (36 MiB) must not be
    // held beside them, whole or in large part. SQLite's page cache is not
    // on this heap. Before attachments were decoded in pieces this was 72 MiB.
    eprintln!(
        "raw {} MiB, heap beyond it while storing {:.1} MiB",
        raw_len / MIB,
        peak as f64 / MIB as f64
    );
    assert!(
        peak <= 8 * MIB,
        "storing a {raw_len}-byte message took {peak} bytes of heap beyond its raw bytes"
    );

    let reader = Reader::open(&path).expect("reader");
    let stored = reader
        .attachment_data(&sha)
        .expect("read")
        .expect("attachment stored");
    assert!(stored == payload, "stored attachment bytes differ");
}
