//! Parses every message of the vendored corpus (tests/data/mail, see its README) and checks
//! that mailfeed's MIME decoding neither panics nor produces nonsense on real-world mail.

use std::path::{Path, PathBuf};

use mailfeed::mime::{self, AddressRole};

fn corpus_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            corpus_files(&path, out);
        } else if name.ends_with(".eml") || (name.starts_with("msg_") && name.ends_with(".txt")) {
            out.push(path);
        }
    }
}

#[test]
fn every_corpus_message_parses_sanely() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/mail");
    let mut files = Vec::new();
    corpus_files(&root, &mut files);
    assert!(
        files.len() >= 540,
        "corpus has only {} messages",
        files.len()
    );

    let mut with_subject = 0;
    let mut with_from = 0;
    let mut with_body = 0;
    for path in &files {
        let raw = std::fs::read(path).expect("corpus file");
        let p = mime::parse(&raw);
        let ctx = path.display();

        if let Some(s) = &p.sent_at {
            assert_eq!(s.len(), 20, "{ctx}: sent_at {s}");
            assert!(
                s.ends_with('Z') && s.as_bytes()[10] == b'T',
                "{ctx}: sent_at {s}"
            );
            assert!(p.date_raw.is_some(), "{ctx}: sent_at without date_raw");
        }
        for id in p
            .message_id
            .iter()
            .chain(&p.in_reply_to)
            .chain(&p.references)
        {
            assert!(!id.starts_with('<') && !id.ends_with('>'), "{ctx}: id {id}");
        }
        for role in AddressRole::ALL {
            for (i, a) in p.addresses_with(role).enumerate() {
                assert_eq!(a.position as usize, i, "{ctx}: {role:?} positions");
                assert!(
                    a.name.is_some() || a.address.is_some(),
                    "{ctx}: empty address"
                );
            }
        }
        for a in &p.attachments {
            assert_eq!(a.size, a.data.len() as u64, "{ctx}: attachment size");
            assert_eq!(a.sha256.len(), 64, "{ctx}: sha256");
            assert!(
                a.content_type.contains('/'),
                "{ctx}: type {}",
                a.content_type
            );
            assert_eq!(a.content_type, a.content_type.to_ascii_lowercase(), "{ctx}");
            assert!(
                a.size as usize <= raw.len(),
                "{ctx}: attachment larger than message"
            );
        }
        for body in p.text_body.iter().chain(&p.html_body) {
            assert!(!body.trim().is_empty(), "{ctx}: blank body kept");
        }
        // The result must serialise, since the dump tool and the store rely on it.
        serde_json::to_string(&p).expect("serialises");

        // Keeping only the headers must not lose any header-derived field.
        let head = mime::parse(mime::headers_only(&raw));
        if p.parse_error.is_none() {
            assert_eq!(head.subject, p.subject, "{ctx}: subject from headers only");
            assert_eq!(head.message_id, p.message_id, "{ctx}: id from headers only");
        }

        with_subject += usize::from(p.subject.is_some());
        with_from += usize::from(p.addresses_with(AddressRole::From).next().is_some());
        with_body += usize::from(p.text_body.is_some() || p.html_body.is_some());
    }
    // Most of the corpus is ordinary mail (today, of 543 messages: 497 with a subject, 502
    // with a From, 512 with a body); a collapse of these counts means a regression.
    let n = files.len();
    assert!(with_subject * 20 >= n * 17, "subjects: {with_subject}/{n}");
    assert!(with_from * 20 >= n * 17, "From: {with_from}/{n}");
    assert!(with_body * 10 >= n * 9, "bodies: {with_body}/{n}");
}
