//! The few header fields the core stores in `messages` (Message-ID, decoded
//! Subject), read with mail-parser's header-only parse.

use mail_parser::MessageParser;

pub struct Summary {
    pub message_id: Option<String>,
    pub subject: Option<String>,
}

pub fn summarize(raw: &[u8]) -> Summary {
    match MessageParser::default().parse_headers(raw) {
        Some(m) => Summary {
            message_id: m.message_id().map(str::to_owned),
            subject: m.subject().map(str::to_owned),
        },
        None => Summary {
            message_id: None,
            subject: None,
        },
    }
}
