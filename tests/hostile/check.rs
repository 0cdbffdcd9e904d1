//! `check` prints the conversation; echoed credentials are masked there too.

use crate::run::{leaked, run_bounded};
use crate::script::*;
use crate::support::fake_server::{FakeServer, Step, expect, send};
use crate::support::mailfeed::{Account, Mode, Setup};

/// `check` prints the conversation: a server that echoes the credentials
/// in an ALERT, an untagged BAD and a literal shows them masked there too.
#[test]
fn check_transcript_masks_echoed_credentials() {
    let script = vec![
        send(GREETING),
        expect("AUTHENTICATE PLAIN"),
        send(
            "* OK [ALERT] you sent $A\r\n* BAD $A hostile-pw-Zq9\r\n* LIST () \"/\" {$#}\r\n$A\r\n$T OK [CAPABILITY IMAP4rev1] logged in\r\n",
        ),
        Step::Serve(mailbox()),
    ];
    let server = FakeServer::start(vec![script]);
    let acc = Account {
        name: "test",
        port: server.port(),
        mode: Mode::Plain,
        ca_file: None,
        user: "hostile",
        password: PASSWORD,
        folders: &["INBOX"],
        extra: "",
    };
    let setup = Setup::new(&[acc], "timeout = \"2s\"");
    let (out, _, _) = run_bounded(&setup, &["check"]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert_eq!(leaked(&setup, &stdout, &stderr), None, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("S: * OK [ALERT] you sent ***"),
        "the echo is shown, masked:\n{stdout}"
    );
}
