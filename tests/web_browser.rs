//! The web page in a real headless Chromium (Debian `chromium` +
//! `chromium-driver`) driven over WebDriver: `run` with `[http]` over a
//! corpus synced from a private Dovecot; the folder table, a search, a
//! message with an HTML body and an attachment (downloaded, bytes equal),
//! the live conversation showing `S: * N EXISTS` when the test APPENDs, and
//! a hostile HTML message that must not run script, load a remote image or
//! submit a form — watched by a listener on loopback. Screenshots of each
//! step are saved in the test's temp dir (kept with MAILFEED_TEST_KEEP=1).
//! The page's walk runs on both store backends (`…_on_sqlite`,
//! `…_on_postgres`).

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::corpus;
use support::dovecot::{Dovecot, reserve_port};
use support::feed_db::Backend;
use support::http::{Served, add_http};
use support::mailfeed::{Account, Setup};
use support::webdriver::{Browser, wait_until};

const USER: &str = "alice";
const PASS: &str = "wonderland-7-secret";

/// Records the first line of every HTTP request it gets, answering each
/// with a 1x1 GIF: a remote image, a script's fetch or a form submission
/// aimed at it would show up here.
struct Watcher {
    port: u16,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Watcher {
    fn start() -> Watcher {
        // Bound here, in this process: the kernel's choice of port needs no
        // reservation (a reserved port is for a server started later, which
        // another process could take first).
        let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind watcher");
        let port = listener.local_addr().expect("watcher address").port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                let mut line = String::new();
                let _ = BufReader::new(&conn).read_line(&mut line);
                log.lock().expect("log").push(line.trim().to_owned());
                let gif: &[u8] = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;";
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nContent-Type: image/gif\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    gif.len()
                );
                let _ = conn.write_all(gif);
            }
        });
        Watcher { port, seen }
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().expect("log").clone()
    }
}

fn figures_message(attachment: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(attachment);
    let mut lines = String::new();
    for c in b64.as_bytes().chunks(76) {
        lines.push_str(std::str::from_utf8(c).expect("ascii"));
        lines.push_str("\r\n");
    }
    format!(
        "From: Carol Finance <carol@example.org>\r\nTo: alice@example.org\r\n\
         Subject: Quarterly report with chart\r\nMessage-ID: <report@example.org>\r\n\
         Date: Tue, 2 Jun 2026 09:30:00 +0000\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n\
         --outer\r\nContent-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n\
         --alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nRevenue grew by a third.\r\n\
         --alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
         <html><body><h1 id=\"headline\">Revenue grew</h1><p style=\"color:#060\">By a third, see the chart.</p></body></html>\r\n\
         --alt--\r\n\
         --outer\r\nContent-Type: application/pdf; name=\"report.pdf\"\r\n\
         Content-Disposition: attachment; filename=\"report.pdf\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\n{lines}--outer--\r\n"
    )
    .into_bytes()
}

fn hostile_message(port: u16) -> Vec<u8> {
    let u = format!("http://127.0.0.1:{port}");
    format!(
        "From: Mallory <mallory@example.net>\r\nTo: alice@example.org\r\n\
         Subject: Hostile greeting\r\nMessage-ID: <hostile@example.net>\r\n\
         Date: Wed, 3 Jun 2026 08:00:00 +0000\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/alternative; boundary=\"h\"\r\n\r\n\
         --h\r\nContent-Type: text/plain\r\n\r\nHostile greeting.\r\n\
         --h\r\nContent-Type: text/html; charset=utf-8\r\n\r\n\
         <html><head><meta http-equiv=\"refresh\" content=\"1; url={u}/refresh\">\r\n\
         <link rel=\"stylesheet\" href=\"{u}/css\"></head><body>\r\n\
         <p id=\"hostile-text\">Hello from Mallory</p>\r\n\
         <script>fetch('{u}/script'); parent.document.title = 'pwned';</script>\r\n\
         <img id=\"remote\" src=\"{u}/img.gif\" alt=\"remote image\">\r\n\
         <img src=\"x:broken\" onerror=\"fetch('{u}/onerror'); parent.document.title = 'pwned'\">\r\n\
         <form action=\"{u}/form\" method=\"post\"><input name=\"a\" value=\"b\">\r\n\
         <button id=\"send\" type=\"submit\">Send</button></form>\r\n\
         <div style=\"background:url({u}/bg.gif)\">styled</div>\r\n\
         </body></html>\r\n--h--\r\n"
    )
    .into_bytes()
}

struct Shots {
    dir: Option<tempfile::TempDir>,
}

impl Shots {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.as_ref().expect("dir").path().join(name)
    }
}

impl Drop for Shots {
    fn drop(&mut self) {
        support::server::keep_dir_if_asked("browser test", &mut self.dir);
    }
}

/// The visible text of every element matching `css`, read in one script so
/// a table the page redraws meanwhile cannot go stale under the test.
fn rows_text(b: &Browser, css: &str) -> Vec<String> {
    let v = b.script(&format!(
        "return Array.from(document.querySelectorAll({css:?})).map(e => e.innerText);"
    ));
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|x| x.as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn wait_for_file(path: &Path, want: &[u8]) {
    wait_until(&format!("the download {}", path.display()), || {
        std::fs::read(path).is_ok_and(|b| b.len() == want.len())
    });
}

#[test]
fn the_page_in_chromium_shows_folders_search_messages_and_the_live_conversation_on_sqlite() {
    the_page_in_chromium_shows_folders_search_messages_and_the_live_conversation(Backend::sqlite());
}

#[test]
fn the_page_in_chromium_shows_folders_search_messages_and_the_live_conversation_on_postgres() {
    the_page_in_chromium_shows_folders_search_messages_and_the_live_conversation(
        Backend::postgres(),
    );
}

/// A search for `word` in subjects, in the store's query form (FTS5's
/// column filter; PostgreSQL's form has none, and ranks subjects first).
fn subject_query(store: &Backend, word: &str) -> String {
    match store {
        Backend::Sqlite => format!("subject:{word}"),
        Backend::Postgres(_) => word.to_owned(),
    }
}

fn the_page_in_chromium_shows_folders_search_messages_and_the_live_conversation(store: Backend) {
    let watcher = Watcher::start();
    let dc = Dovecot::start_with_users(&[(USER, PASS)]).expect("dovecot");
    let mut rng = support::rng::Rng::new(77);
    let attachment = rng.bytes(48_000);
    dc.append_many(USER, "INBOX", &corpus::varied(20, 5))
        .expect("corpus");
    dc.append(USER, "INBOX", &figures_message(&attachment))
        .expect("append");
    dc.append(USER, "INBOX", &hostile_message(watcher.port))
        .expect("append");
    let mut setup = Setup::new(&[Account::plain(&dc, USER, PASS, &["INBOX"])], "");
    store.attach(&mut setup);
    setup.sync_ok();
    let (port, _lock) = reserve_port().expect("port");
    add_http(&setup, &format!("127.0.0.1:{port}"), None);
    let served = Served::start(&setup, &["run"], port, None);

    let shots = Shots {
        dir: Some(
            tempfile::Builder::new()
                .prefix("mailfeed-browser-")
                .tempdir()
                .expect("dir"),
        ),
    };
    let downloads = shots.path("downloads");
    std::fs::create_dir_all(&downloads).expect("downloads dir");
    let b = Browser::start(&shots.path("profile"), &downloads);
    b.goto(&format!("{}/", served.base));

    // The folder table, live from the status stream.
    wait_until("the INBOX row with 22 stored", || {
        rows_text(&b, "#folder-table tbody tr")
            .iter()
            .any(|r| r.contains("INBOX") && r.split_whitespace().any(|w| w == "22"))
    });
    let row = rows_text(&b, "#folder-table tbody tr").join("\n");
    assert!(row.contains("test") && row.contains("synced"), "{row}");
    b.screenshot(&shots.path("01-folders.png"));

    // A search, with results.
    let q = b.wait_for("#q");
    b.type_text(&q, &subject_query(&store, "chart"));
    b.click(&b.wait_for("#search-button"));
    wait_until("a search result", || {
        !b.find_all("#results tbody tr").is_empty()
    });
    let results = rows_text(&b, "#results tbody tr");
    assert_eq!(results.len(), 1, "{results:?}");
    assert!(
        results[0].contains("Quarterly report with chart"),
        "{results:?}"
    );
    assert!(results[0].contains("Carol Finance"), "{results:?}");
    b.screenshot(&shots.path("02-search.png"));

    // The message: headers, text, HTML in its sandbox, the attachment.
    b.click(&b.find_all("#results tbody tr")[0]);
    wait_until("the message view", || {
        b.find("#msg-subject")
            .is_some_and(|e| b.text(&e) == "Quarterly report with chart")
    });
    let headers = b.text(&b.wait_for("#msg-headers"));
    assert!(
        headers.contains("Message-ID") && headers.contains("<report@example.org>"),
        "{headers}"
    );
    assert_eq!(b.text(&b.wait_for("#msg-text")), "Revenue grew by a third.");
    let frame = b.wait_for("#msg-html");
    assert_eq!(b.attribute(&frame, "sandbox").as_deref(), Some(""));
    b.enter_frame(&frame);
    wait_until("the HTML body in its frame", || {
        b.find("#headline")
            .is_some_and(|e| b.text(&e) == "Revenue grew")
    });
    b.leave_frame();
    let link = b.wait_for("#msg-attachments a.attachment");
    assert_eq!(b.text(&link), "report.pdf");
    b.screenshot(&shots.path("03-message.png"));
    b.click(&link);
    let file = downloads.join("report.pdf");
    wait_for_file(&file, &attachment);
    assert_eq!(
        std::fs::read(&file).expect("download"),
        attachment,
        "the downloaded bytes"
    );

    // The live conversation: once the page watches, an APPEND shows up as
    // a new EXISTS line (on the IDLE connection, or the pass before it).
    wait_until("the conversation stream", || {
        b.find("#conv-state").is_some_and(|e| b.text(&e) == "live")
    });
    dc.append(USER, "INBOX", &corpus::varied(1, 99)[0])
        .expect("append new mail");
    wait_until("S: * 23 EXISTS in the conversation", || {
        b.find("#conv-lines")
            .is_some_and(|e| b.text(&e).contains("S: * 23 EXISTS"))
    });
    let pane = b.text(&b.wait_for("#conv-lines"));
    assert!(pane.contains("↳"), "lines carry their meaning: {pane}");
    assert!(!pane.contains(PASS), "the password must never be shown");
    b.script(
        "window.scrollTo(0, 0); const l = Array.from(document.querySelectorAll('#conv-lines .line'))\
         .find(e => e.innerText.includes('EXISTS')); if (l) l.scrollIntoView({block: 'center'});",
    );
    b.screenshot(&shots.path("04-conversation.png"));

    // The hostile message: nothing runs, loads or submits.
    let q = b.wait_for("#q");
    b.script("document.getElementById('q').value = '';");
    b.type_text(&q, &subject_query(&store, "hostile"));
    b.click(&b.wait_for("#search-button"));
    wait_until("the hostile message in the results", || {
        rows_text(&b, "#results tbody tr")
            .iter()
            .any(|r| r.contains("Hostile greeting"))
    });
    b.click(&b.find_all("#results tbody tr")[0]);
    wait_until("the hostile message view", || {
        b.find("#msg-subject")
            .is_some_and(|e| b.text(&e) == "Hostile greeting")
    });
    let frame = b.wait_for("#msg-html");
    b.enter_frame(&frame);
    wait_until("the hostile body in its frame", || {
        b.find("#hostile-text")
            .is_some_and(|e| b.text(&e) == "Hello from Mallory")
    });
    // A click on its submit button must not send the form either.
    if let Some(send) = b.find("#send") {
        b.click(&send);
    }
    b.leave_frame();
    // Long enough for the meta refresh (1 s), the script, the image and
    // the submission to have reached the watcher, had they been allowed.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(b.script("return document.title;"), "mailfeed");
    assert_eq!(
        watcher.seen(),
        Vec::<String>::new(),
        "the hostile HTML reached out"
    );
    b.screenshot(&shots.path("05-hostile.png"));

    // The watcher does see a remote image once the reader asks for them,
    // so its silence above is meaningful.
    b.click(&b.wait_for("#load-images"));
    wait_until("the remote image, once allowed", || {
        watcher.seen().iter().any(|l| l.starts_with("GET /img.gif"))
    });
    std::thread::sleep(Duration::from_secs(2));
    let seen = watcher.seen();
    assert!(
        seen.iter()
            .all(|l| l.starts_with("GET /img.gif") || l.starts_with("GET /bg.gif")),
        "only images may load, never script, forms or refreshes: {seen:?}"
    );
    assert_eq!(b.script("return document.title;"), "mailfeed");
    b.screenshot(&shots.path("06-remote-images.png"));
    eprintln!(
        "screenshots in {}",
        shots.dir.as_ref().expect("dir").path().display()
    );
}

#[test]
fn with_a_token_the_page_asks_for_it_and_then_works() {
    const TOKEN: &str = "browser-token-0123456789abcdef";
    let dc = Dovecot::start_with_users(&[(USER, PASS)]).expect("dovecot");
    let mut rng = support::rng::Rng::new(78);
    let attachment = rng.bytes(10_000);
    dc.append(USER, "INBOX", &figures_message(&attachment))
        .expect("append");
    let setup = Setup::new(&[Account::plain(&dc, USER, PASS, &["INBOX"])], "");
    setup.sync_ok();
    let (port, _lock) = reserve_port().expect("port");
    add_http(&setup, &format!("127.0.0.1:{port}"), Some(TOKEN));
    let served = Served::start(&setup, &["serve"], port, Some(TOKEN));
    let shots = Shots {
        dir: Some(
            tempfile::Builder::new()
                .prefix("mailfeed-browser-token-")
                .tempdir()
                .expect("dir"),
        ),
    };
    let downloads = shots.path("downloads");
    std::fs::create_dir_all(&downloads).expect("downloads dir");
    let b = Browser::start(&shots.path("profile"), &downloads);
    b.goto(&format!("{}/", served.base));
    wait_until("the token form", || {
        b.find("#token-form")
            .is_some_and(|f| b.attribute(&f, "hidden").is_none())
    });
    assert!(
        rows_text(&b, "#folder-table tbody tr").is_empty(),
        "no data without the token"
    );
    b.screenshot(&shots.path("01-token-asked.png"));
    b.type_text(&b.wait_for("#token"), TOKEN);
    b.click(&b.wait_for("#token-form button"));
    wait_until("the folder table after the token", || {
        rows_text(&b, "#folder-table tbody tr")
            .iter()
            .any(|r| r.contains("INBOX"))
    });
    // The cookie carries the token to downloads too.
    b.type_text(&b.wait_for("#q"), "subject:chart");
    b.click(&b.wait_for("#search-button"));
    wait_until("a search result", || {
        !b.find_all("#results tbody tr").is_empty()
    });
    b.click(&b.find_all("#results tbody tr")[0]);
    let link = b.wait_for("#msg-attachments a.attachment");
    b.click(&link);
    let file = downloads.join("report.pdf");
    wait_for_file(&file, &attachment);
    assert_eq!(std::fs::read(&file).expect("download"), attachment);
    // serve does not sync: the conversation pane says so.
    wait_until("the note that serve has no conversation", || {
        b.find("#conv-state")
            .is_some_and(|e| b.text(&e).contains("does not sync"))
    });
    b.screenshot(&shots.path("02-token-used.png"));
}
