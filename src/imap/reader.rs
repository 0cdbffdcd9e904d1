//! The response reader: bytes in, complete responses out. It never touches a
//! socket or a clock; the transport feeds it whatever arrived, in pieces of any
//! size, and asks for the responses that are now complete.
//!
//! Memory is bounded by [`Limits`], not by what the server claims: a line
//! longer than `max_line` (configured as `sync.max_line_size`: legal
//! responses such as a large folder's `VANISHED (EARLIER)`, `SEARCH` or
//! `CAPABILITY` may be megabytes long) fails, naming the bound and the
//! response it was, a literal's announced size is trusted
//! only up to `max_literal` (which the configuration budgets for anyway), and
//! a literal beyond `max_literal` is reduced to its first `truncated_keep`
//! bytes while the rest is counted and discarded.

use std::collections::VecDeque;

use super::grammar;
use super::response::Response;

/// Bounds on what one response may make the reader hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Longest line (outside literals) accepted, CRLF included.
    pub max_line: usize,
    /// Largest literal kept whole; larger ones are truncated.
    pub max_literal: u64,
    /// How much of a truncated literal is kept (its head, for the headers).
    pub truncated_keep: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line: DEFAULT_MAX_LINE,
            max_literal: 100 * 1024 * 1024,
            truncated_keep: 256 * 1024,
        }
    }
}

/// The default bound on one response line: far above any legal response
/// of a folder with millions of messages (a `VANISHED (EARLIER)` of 200,000
/// scattered UIDs is 1.4 MB, a `SEARCH` of a million UIDs 8 MB), far below
/// what would strain memory.
pub const DEFAULT_MAX_LINE: usize = 16 * 1024 * 1024;

/// The protocol rules a server broke, or a bound it exceeded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error(
        "server sent a {kind} response line longer than {limit} bytes (the bound set by `sync.max_line_size`)"
    )]
    LineTooLong { limit: usize, kind: String },
    #[error("server announced a literal of {size} bytes, beyond the protocol's 4294967295")]
    LiteralTooLarge { size: String },
    #[error("server sent a response with more than {limit} literals")]
    TooManyLiterals { limit: usize },
    #[error("malformed response from server ({reason}): {excerpt}")]
    Malformed { reason: String, excerpt: String },
}

/// A literal as received: its bytes, or the head of them when it was too large.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Literal {
    pub data: Vec<u8>,
    pub declared: u64,
    pub truncated: bool,
}

/// One complete response, with the text of its lines (literals left as
/// `{n}` markers) for the conversation log.
#[derive(Debug, Clone)]
pub struct Received {
    pub response: Response,
    pub line: Vec<u8>,
}

const MAX_LITERALS_PER_RESPONSE: usize = 10_000;

enum State {
    Line,
    Literal { remaining: u64 },
}

/// Incremental response reader. Feed bytes with [`ResponseReader::feed`],
/// take responses with [`ResponseReader::next`].
pub struct ResponseReader {
    limits: Limits,
    state: State,
    /// Text of the response so far, literals replaced by their `{n}` markers.
    text: Vec<u8>,
    /// Where the current line began in `text`, to bound each line.
    line_start: usize,
    literals: Vec<Literal>,
    /// Literal bytes kept so far for this response, across all its literals.
    kept: u64,
    ready: VecDeque<Received>,
    failed: Option<ProtocolError>,
}

impl ResponseReader {
    pub fn new(limits: Limits) -> Self {
        ResponseReader {
            limits,
            state: State::Line,
            text: Vec::new(),
            line_start: 0,
            literals: Vec::new(),
            kept: 0,
            ready: VecDeque::new(),
            failed: None,
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// True when no partial response is buffered: a connection closed now
    /// closed between responses, not in the middle of one.
    pub fn at_boundary(&self) -> bool {
        matches!(self.state, State::Line) && self.text.is_empty()
    }

    /// True when nothing at all is buffered: no partial response and no
    /// complete one waiting to be popped. STARTTLS and COMPRESS require this
    /// before switching layers, since anything held now arrived in the old
    /// layer and must not be read as if it came through the new one.
    pub fn is_drained(&self) -> bool {
        self.at_boundary() && self.ready.is_empty()
    }

    /// Literal bytes held for the response being read.
    #[cfg(test)]
    pub(crate) fn kept(&self) -> u64 {
        self.kept
    }

    /// How many bytes of an unfinished literal are still expected, if any.
    pub fn literal_remaining(&self) -> Option<u64> {
        match self.state {
            State::Literal { remaining } => Some(remaining),
            State::Line => None,
        }
    }

    /// Takes in bytes from the server. Once an error is returned the reader
    /// stays failed: a stream that broke the grammar cannot be resynchronised.
    pub fn feed(&mut self, mut input: &[u8]) -> Result<(), ProtocolError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        while !input.is_empty() {
            let step = match self.state {
                State::Line => self.feed_line(input),
                State::Literal { remaining } => Ok(self.feed_literal(input, remaining)),
            };
            match step {
                Ok(used) => input = &input[used..],
                Err(e) => {
                    self.failed = Some(e.clone());
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// The next complete response, if one has arrived.
    pub fn pop(&mut self) -> Option<Received> {
        self.ready.pop_front()
    }

    fn feed_line(&mut self, input: &[u8]) -> Result<usize, ProtocolError> {
        let (chunk, complete) = match input.iter().position(|&b| b == b'\n') {
            Some(i) => (&input[..=i], true),
            None => (input, false),
        };
        let line_len = self.text.len() - self.line_start + chunk.len();
        if line_len > self.limits.max_line {
            let head = if self.text.is_empty() {
                chunk
            } else {
                &self.text
            };
            return Err(ProtocolError::LineTooLong {
                limit: self.limits.max_line,
                kind: response_kind(head),
            });
        }
        self.text.extend_from_slice(chunk);
        if complete {
            self.end_line()?;
        }
        Ok(chunk.len())
    }

    fn end_line(&mut self) -> Result<(), ProtocolError> {
        // Strip the line ending; a bare LF is tolerated as well as CRLF.
        self.text.pop();
        if self.text.last() == Some(&b'\r') {
            self.text.pop();
        }
        match literal_marker(&self.text[self.line_start..])? {
            Some(size) => {
                if self.literals.len() >= MAX_LITERALS_PER_RESPONSE {
                    return Err(ProtocolError::TooManyLiterals {
                        limit: MAX_LITERALS_PER_RESPONSE,
                    });
                }
                let budget = self.limits.max_literal.saturating_sub(self.kept);
                let truncated = size > budget;
                // Reserved whole, within the budget: growing by doubling would
                // copy a large message several times and, while reallocating,
                // hold up to three times its size. Pages not yet written are
                // not resident, so an announced size costs no memory until
                // the bytes arrive.
                let capacity = if truncated {
                    (self.limits.truncated_keep as u64).min(budget)
                } else {
                    size
                };
                self.literals.push(Literal {
                    data: Vec::with_capacity(capacity as usize),
                    declared: size,
                    truncated,
                });
                // A marker separates the text before and after the literal,
                // so the next line segment starts here.
                self.line_start = self.text.len();
                if size == 0 {
                    self.state = State::Line;
                } else {
                    self.state = State::Literal { remaining: size };
                }
            }
            None => self.finish_response()?,
        }
        Ok(())
    }

    fn feed_literal(&mut self, input: &[u8], remaining: u64) -> usize {
        let take = remaining.min(input.len() as u64) as usize;
        let keep_limit = self.limits.truncated_keep;
        if let Some(lit) = self.literals.last_mut() {
            // A truncated literal keeps its head, but only within what is
            // left of the response's budget: many oversized literals in one
            // response must not add up beyond `max_literal`.
            let budget = self.limits.max_literal.saturating_sub(self.kept);
            let room = if lit.truncated {
                keep_limit
                    .saturating_sub(lit.data.len())
                    .min(usize::try_from(budget).unwrap_or(usize::MAX))
            } else {
                take
            };
            let kept = take.min(room);
            lit.data.extend_from_slice(&input[..kept]);
            self.kept += kept as u64;
        }
        let left = remaining - take as u64;
        self.state = if left == 0 {
            State::Line
        } else {
            State::Literal { remaining: left }
        };
        take
    }

    fn finish_response(&mut self) -> Result<(), ProtocolError> {
        let text = std::mem::take(&mut self.text);
        let literals = std::mem::take(&mut self.literals);
        self.line_start = 0;
        self.kept = 0;
        let response = grammar::parse(&text, literals)?;
        self.ready.push_back(Received {
            response,
            line: text,
        });
        Ok(())
    }
}

/// What a response is, from its first words, for an error about it:
/// `* 12 FETCH` is a FETCH, `* VANISHED` a VANISHED, `a001 OK` a tagged one.
fn response_kind(head: &[u8]) -> String {
    let mut words = head
        .split(|&b| b == b' ' || b == b'\r' || b == b'\n')
        .filter(|w| !w.is_empty());
    let word = |w: &[u8]| -> Option<String> {
        let w = &w[..w.len().min(24)];
        (!w.is_empty() && w.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-'))
            .then(|| String::from_utf8_lossy(w).to_ascii_uppercase())
    };
    match words.next() {
        Some(b"*") => {
            let mut next = words.next();
            if next.is_some_and(|w| w.iter().all(u8::is_ascii_digit)) {
                next = words.next();
            }
            next.and_then(word)
                .map_or_else(|| "untagged".into(), |w| format!("`* {w}`"))
        }
        Some(b"+") => "continuation".into(),
        Some(_) => "tagged".into(),
        None => "empty".into(),
    }
}

/// If a line ends with `{n}` or `{n+}`, the literal size it announces.
fn literal_marker(line: &[u8]) -> Result<Option<u64>, ProtocolError> {
    let Some(body) = line.strip_suffix(b"}") else {
        return Ok(None);
    };
    let Some(open) = body.iter().rposition(|&b| b == b'{') else {
        return Ok(None);
    };
    let inner = &body[open + 1..];
    let digits = inner.strip_suffix(b"+").unwrap_or(inner);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        // `{` ... `}` that is not a literal marker, e.g. inside resp-text.
        return Ok(None);
    }
    let shown = String::from_utf8_lossy(&digits[..digits.len().min(24)]).into_owned();
    if digits.len() > 10 {
        return Err(ProtocolError::LiteralTooLarge { size: shown });
    }
    let mut n: u64 = 0;
    for &d in digits {
        n = n * 10 + u64::from(d - b'0');
    }
    if n > u64::from(u32::MAX) {
        return Err(ProtocolError::LiteralTooLarge { size: shown });
    }
    Ok(Some(n))
}
