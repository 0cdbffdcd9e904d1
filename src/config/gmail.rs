//! Gmail's own limits on an account, which the settings of a Gmail account
//! are checked against.

/// Gmail refuses a 16th simultaneous IMAP connection of an account (across
/// every client the user runs); mailfeed takes few of them by default.
pub(super) const GMAIL_CONNECTION_LIMIT: u32 = 15;
pub(super) const GMAIL_DEFAULT_CONNECTIONS: u32 = 3;

/// Google's IMAP hosts (Gmail and Workspace).
pub(super) fn is_gmail_host(host: &str) -> bool {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    h == "imap.gmail.com" || h == "imap.googlemail.com"
}
