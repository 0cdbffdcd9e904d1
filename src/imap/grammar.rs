//! The response grammar of RFC 3501/9051 and the extensions mailfeed uses
//! (CONDSTORE/QRESYNC, ESEARCH, ENABLE, LIST-EXTENDED data), as a recursive
//! descent over one complete response. Anything unknown is skipped, not fatal:
//! servers add untagged responses and FETCH items freely.

use super::reader::{Literal, ProtocolError};
use super::response::{
    Body, Code, ESearch, FetchData, ListEntry, Response, Status, StatusText, Untagged,
    UntaggedStatus,
};
use super::types::{ModSeq, SeqNum, Uid, UidSet};

/// Nesting depth beyond which a parenthesised value is refused, so a hostile
/// `((((...` cannot exhaust the stack.
const MAX_DEPTH: usize = 64;

/// Parses one response: its text with `{n}` markers where literals stood, and
/// the literals in order.
pub fn parse(text: &[u8], literals: Vec<Literal>) -> Result<Response, ProtocolError> {
    let mut c = Cursor {
        s: text,
        pos: 0,
        literals: literals.into_iter(),
    };
    c.response()
}

/// A string value as it appeared: quoted, literal (possibly truncated) or NIL.
enum Str {
    Bytes(Vec<u8>),
    Truncated(Literal),
    Nil,
}

struct Cursor<'a> {
    s: &'a [u8],
    pos: usize,
    literals: std::vec::IntoIter<Literal>,
}

fn is_atom_char(b: u8) -> bool {
    b > 0x20
        && b < 0x7f
        && !matches!(
            b,
            b'(' | b')' | b'{' | b' ' | b'%' | b'*' | b'"' | b'\\' | b']'
        )
}

impl<'a> Cursor<'a> {
    fn err(&self, reason: impl Into<String>) -> ProtocolError {
        let start = self.pos.saturating_sub(40);
        let end = (self.pos + 40).min(self.s.len());
        let excerpt = self.s.get(start..end).unwrap_or_default();
        ProtocolError::Malformed {
            reason: reason.into(),
            excerpt: escape_excerpt(excerpt),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.s.len()
    }

    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, b: u8) -> Result<(), ProtocolError> {
        if self.eat(b) {
            Ok(())
        } else {
            Err(self.err(format!("expected `{}`", b as char)))
        }
    }

    /// One or more spaces; servers are not always exact about single spaces.
    fn sp(&mut self) -> Result<(), ProtocolError> {
        if !self.eat(b' ') {
            return Err(self.err("expected a space"));
        }
        while self.eat(b' ') {}
        Ok(())
    }

    fn skip_spaces(&mut self) {
        while self.eat(b' ') {}
    }

    fn rest(&mut self) -> &'a [u8] {
        let r = self.s.get(self.pos..).unwrap_or_default();
        self.pos = self.s.len();
        r
    }

    fn take_while(&mut self, f: impl Fn(u8) -> bool) -> &'a [u8] {
        let start = self.pos;
        while let Some(b) = self.peek() {
            if !f(b) {
                break;
            }
            self.pos += 1;
        }
        &self.s[start..self.pos]
    }

    fn atom(&mut self) -> Result<&'a str, ProtocolError> {
        let a = self.take_while(is_atom_char);
        if a.is_empty() {
            return Err(self.err("expected an atom"));
        }
        // Atom characters are ASCII, so this cannot fail.
        std::str::from_utf8(a).map_err(|_| self.err("non-ASCII atom"))
    }

    /// A FETCH item name: an atom that stops before a `[section]`.
    fn item_name(&mut self) -> Result<&'a str, ProtocolError> {
        let a = self.take_while(|b| is_atom_char(b) && b != b'[');
        if a.is_empty() {
            return Err(self.err("expected a FETCH item name"));
        }
        std::str::from_utf8(a).map_err(|_| self.err("non-ASCII item name"))
    }

    fn number64(&mut self) -> Result<u64, ProtocolError> {
        let d = self.take_while(|b| b.is_ascii_digit());
        if d.is_empty() || d.len() > 20 {
            return Err(self.err("expected a number"));
        }
        let mut n: u64 = 0;
        for &b in d {
            n = n
                .checked_mul(10)
                .and_then(|n| n.checked_add(u64::from(b - b'0')))
                .ok_or_else(|| self.err("number out of range"))?;
        }
        Ok(n)
    }

    fn number(&mut self) -> Result<u32, ProtocolError> {
        let n = self.number64()?;
        u32::try_from(n).map_err(|_| self.err("number beyond 32 bits"))
    }

    fn nz_number(&mut self) -> Result<u32, ProtocolError> {
        let n = self.number()?;
        if n == 0 {
            return Err(self.err("zero where a non-zero number is required"));
        }
        Ok(n)
    }

    fn quoted(&mut self) -> Result<Vec<u8>, ProtocolError> {
        self.expect(b'"')?;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return Err(self.err("unterminated quoted string")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(b) => {
                            out.push(b);
                            self.pos += 1;
                        }
                        None => return Err(self.err("unterminated quoted string")),
                    }
                }
                Some(b) => {
                    out.push(b);
                    self.pos += 1;
                }
            }
        }
    }

    /// A `{n}` / `{n+}` marker left by the reader, replaced by its literal.
    fn literal(&mut self) -> Result<Literal, ProtocolError> {
        self.expect(b'{')?;
        let declared = self.number64()?;
        self.eat(b'+');
        self.expect(b'}')?;
        let lit = self
            .literals
            .next()
            .ok_or_else(|| self.err("literal marker without literal"))?;
        if lit.declared != declared {
            return Err(self.err("literal marker does not match literal"));
        }
        Ok(lit)
    }

    fn is_nil(&self) -> bool {
        let s = self.s.get(self.pos..self.pos + 3).unwrap_or_default();
        s.eq_ignore_ascii_case(b"NIL") && self.s.get(self.pos + 3).is_none_or(|&b| !is_atom_char(b))
    }

    /// string / NIL, keeping truncated literals distinguishable.
    fn nstring(&mut self) -> Result<Str, ProtocolError> {
        match self.peek() {
            Some(b'"') => Ok(Str::Bytes(self.quoted()?)),
            Some(b'{') => {
                let lit = self.literal()?;
                if lit.truncated {
                    Ok(Str::Truncated(lit))
                } else {
                    Ok(Str::Bytes(lit.data))
                }
            }
            _ if self.is_nil() => {
                self.pos += 3;
                Ok(Str::Nil)
            }
            _ => Err(self.err("expected a string or NIL")),
        }
    }

    /// astring: atom (with `]` allowed), quoted or literal.
    fn astring(&mut self) -> Result<Vec<u8>, ProtocolError> {
        match self.peek() {
            Some(b'"') => self.quoted(),
            Some(b'{') => {
                let lit = self.literal()?;
                if lit.truncated {
                    return Err(self.err("string literal too large"));
                }
                Ok(lit.data)
            }
            _ => {
                let a = self.take_while(|b| is_atom_char(b) || b == b']' || b == b'%' || b == b'*');
                if a.is_empty() {
                    return Err(self.err("expected a string"));
                }
                Ok(a.to_vec())
            }
        }
    }

    /// Skips any value: atom, number, string, literal, NIL or a nested list,
    /// including section forms such as `BODY[HEADER.FIELDS (A B)]<0>`.
    fn skip_value(&mut self, depth: usize) -> Result<(), ProtocolError> {
        if depth > MAX_DEPTH {
            return Err(self.err("nesting too deep"));
        }
        match self.peek() {
            Some(b'(') => {
                self.pos += 1;
                self.skip_spaces();
                while !self.eat(b')') {
                    if self.at_end() {
                        return Err(self.err("unbalanced parenthesis"));
                    }
                    self.skip_value(depth + 1)?;
                    self.skip_spaces();
                }
                Ok(())
            }
            Some(b'"') => self.quoted().map(drop),
            Some(b'{') => self.literal().map(drop),
            Some(b'\\') => {
                self.pos += 1;
                self.take_while(|b| is_atom_char(b) || b == b'*');
                Ok(())
            }
            Some(_) => {
                let a =
                    self.take_while(|b| (is_atom_char(b) && b != b'[') || b == b'%' || b == b'*');
                if a.is_empty() {
                    return Err(self.err("unexpected character"));
                }
                self.skip_section(depth)
            }
            None => Err(self.err("value missing")),
        }
    }

    /// After an atom, an optional `[section]` and `<partial>`.
    fn skip_section(&mut self, depth: usize) -> Result<(), ProtocolError> {
        if self.eat(b'[') {
            while !self.eat(b']') {
                match self.peek() {
                    None => return Err(self.err("unterminated section")),
                    Some(b'(') => self.skip_value(depth + 1)?,
                    Some(b'"') => drop(self.quoted()?),
                    Some(_) => self.pos += 1,
                }
            }
            if self.eat(b'<') {
                self.take_while(|b| b.is_ascii_digit() || b == b'.');
                self.expect(b'>')?;
            }
        }
        Ok(())
    }

    fn flag_list(&mut self) -> Result<Vec<String>, ProtocolError> {
        self.expect(b'(')?;
        let mut flags = Vec::new();
        self.skip_spaces();
        while !self.eat(b')') {
            let start = self.pos;
            self.eat(b'\\');
            self.take_while(|b| is_atom_char(b) || b == b'*');
            if self.pos == start {
                return Err(self.err("malformed flag"));
            }
            flags.push(String::from_utf8_lossy(&self.s[start..self.pos]).into_owned());
            self.skip_spaces();
        }
        Ok(flags)
    }

    /// Gmail's `X-GM-LABELS (...)`: each label an astring, or a system
    /// label written like a flag (`\\Inbox`, `\\Important`).
    fn label_list(&mut self) -> Result<Vec<String>, ProtocolError> {
        self.expect(b'(')?;
        let mut labels = Vec::new();
        self.skip_spaces();
        while !self.eat(b')') {
            if self.at_end() {
                return Err(self.err("unterminated X-GM-LABELS list"));
            }
            let label = if self.peek() == Some(b'\\') {
                let start = self.pos;
                self.pos += 1;
                self.take_while(is_atom_char);
                if self.pos == start + 1 {
                    return Err(self.err("malformed system label"));
                }
                self.s[start..self.pos].to_vec()
            } else {
                self.astring()?
            };
            labels.push(String::from_utf8_lossy(&label).into_owned());
            self.skip_spaces();
        }
        Ok(labels)
    }

    fn response(&mut self) -> Result<Response, ProtocolError> {
        match self.peek() {
            Some(b'+') => {
                self.pos += 1;
                self.skip_spaces();
                let text = String::from_utf8_lossy(self.rest()).into_owned();
                Ok(Response::Continuation(text))
            }
            Some(b'*') => {
                self.pos += 1;
                self.sp()?;
                Ok(Response::Untagged(self.untagged()?))
            }
            Some(_) => {
                let tag = self.atom()?.to_owned();
                self.sp()?;
                let word = self.atom()?.to_ascii_uppercase();
                let status = match word.as_str() {
                    "OK" => Status::Ok,
                    "NO" => Status::No,
                    "BAD" => Status::Bad,
                    _ => return Err(self.err("tagged reply is not OK, NO or BAD")),
                };
                let text = self.resp_text()?;
                Ok(Response::Tagged { tag, status, text })
            }
            None => Err(self.err("empty line")),
        }
    }

    fn resp_text(&mut self) -> Result<StatusText, ProtocolError> {
        self.skip_spaces();
        let code = if self.eat(b'[') {
            Some(self.code()?)
        } else {
            None
        };
        self.skip_spaces();
        let text = String::from_utf8_lossy(self.rest()).into_owned();
        Ok(StatusText { code, text })
    }

    fn code(&mut self) -> Result<Code, ProtocolError> {
        let name = self.take_while(|b| b != b' ' && b != b']');
        let name = String::from_utf8_lossy(name).to_ascii_uppercase();
        let arg = if self.eat(b' ') {
            let a = self.take_while(|b| b != b']');
            Some(String::from_utf8_lossy(a).into_owned())
        } else {
            None
        };
        if !self.eat(b']') {
            return Err(self.err("unterminated response code"));
        }
        let num = |a: &Option<String>| -> Result<u64, ProtocolError> {
            a.as_deref()
                .and_then(|s| s.trim().parse::<u64>().ok())
                .ok_or_else(|| self.err(format!("response code {name} needs a number")))
        };
        let num32 = |a: &Option<String>| -> Result<u32, ProtocolError> {
            u32::try_from(num(a)?).map_err(|_| self.err(format!("{name} beyond 32 bits")))
        };
        Ok(match name.as_str() {
            "ALERT" => Code::Alert,
            "CAPABILITY" => Code::Capability(
                arg.as_deref()
                    .unwrap_or_default()
                    .split_ascii_whitespace()
                    .map(str::to_owned)
                    .collect(),
            ),
            "UIDVALIDITY" => Code::UidValidity(num32(&arg)?),
            "UIDNEXT" => Code::UidNext(num32(&arg)?),
            "UNSEEN" => Code::Unseen(num32(&arg)?),
            "HIGHESTMODSEQ" => Code::HighestModSeq(num(&arg)?),
            "NOMODSEQ" => Code::NoModSeq,
            "READ-ONLY" => Code::ReadOnly,
            "READ-WRITE" => Code::ReadWrite,
            "CLOSED" => Code::Closed,
            _ => Code::Other(name, arg),
        })
    }

    fn atoms_to_end(&mut self) -> Vec<String> {
        String::from_utf8_lossy(self.rest())
            .split_ascii_whitespace()
            .map(str::to_owned)
            .collect()
    }

    fn untagged(&mut self) -> Result<Untagged, ProtocolError> {
        if self.peek().is_some_and(|b| b.is_ascii_digit()) {
            let n = self.number()?;
            self.sp()?;
            let word = self.atom()?.to_ascii_uppercase();
            return match word.as_str() {
                "EXISTS" => Ok(Untagged::Exists(n)),
                "RECENT" => Ok(Untagged::Recent(n)),
                "EXPUNGE" => Ok(Untagged::Expunge(SeqNum(n))),
                "FETCH" => {
                    self.sp()?;
                    let data = self.fetch_data()?;
                    // Bytes after the closing parenthesis mean the stream is
                    // out of step (a literal shorter than its data, or
                    // unbalanced parentheses): never store what follows.
                    self.skip_spaces();
                    if !self.at_end() {
                        return Err(self.err("text after the end of the FETCH response"));
                    }
                    Ok(Untagged::Fetch(SeqNum(n), Box::new(data)))
                }
                _ => Ok(Untagged::Other(word)),
            };
        }
        let word = self.atom()?.to_ascii_uppercase();
        let st = match word.as_str() {
            "OK" => Some(UntaggedStatus::Ok),
            "NO" => Some(UntaggedStatus::No),
            "BAD" => Some(UntaggedStatus::Bad),
            "PREAUTH" => Some(UntaggedStatus::Preauth),
            "BYE" => Some(UntaggedStatus::Bye),
            _ => None,
        };
        if let Some(st) = st {
            let text = self.resp_text()?;
            return Ok(Untagged::Status(st, text));
        }
        match word.as_str() {
            "CAPABILITY" => Ok(Untagged::Capability(self.atoms_to_end())),
            "ENABLED" => Ok(Untagged::Enabled(self.atoms_to_end())),
            "FLAGS" => {
                self.sp()?;
                Ok(Untagged::Flags(self.flag_list()?))
            }
            "LIST" | "LSUB" => {
                self.sp()?;
                Ok(Untagged::List(self.list_entry()?))
            }
            "STATUS" => {
                self.sp()?;
                self.mailbox_status()
            }
            "SEARCH" => {
                let mut uids = Vec::new();
                loop {
                    self.skip_spaces();
                    match self.peek() {
                        Some(b) if b.is_ascii_digit() => uids.push(self.number()?),
                        // `(MODSEQ n)` at the end (CONDSTORE) is not used.
                        _ => break,
                    }
                }
                Ok(Untagged::Search(uids))
            }
            "ESEARCH" => self.esearch(),
            "VANISHED" => {
                self.sp()?;
                let mut earlier = false;
                if self.eat(b'(') {
                    let w = self.atom()?;
                    earlier = w.eq_ignore_ascii_case("EARLIER");
                    self.expect(b')')?;
                    self.sp()?;
                }
                let uids = self.uid_set()?;
                Ok(Untagged::Vanished { earlier, uids })
            }
            _ => Ok(Untagged::Other(word)),
        }
    }

    fn uid_set(&mut self) -> Result<UidSet, ProtocolError> {
        let mut ranges = Vec::new();
        loop {
            let a = self.nz_number()?;
            let b = if self.eat(b':') { self.nz_number()? } else { a };
            ranges.push((a, b));
            if !self.eat(b',') {
                break;
            }
        }
        Ok(UidSet::from_ranges(ranges))
    }

    fn list_entry(&mut self) -> Result<ListEntry, ProtocolError> {
        let attributes = self.flag_list()?;
        self.sp()?;
        let delimiter = match self.nstring()? {
            Str::Bytes(b) => b.first().map(|&c| c as char),
            _ => None,
        };
        self.sp()?;
        let name = self.astring()?;
        // Extended LIST data (CHILDINFO, OLDNAME) may follow; not used.
        Ok(ListEntry {
            attributes,
            delimiter,
            name: String::from_utf8_lossy(&name).into_owned(),
        })
    }

    fn mailbox_status(&mut self) -> Result<Untagged, ProtocolError> {
        let mailbox = String::from_utf8_lossy(&self.astring()?).into_owned();
        self.skip_spaces();
        self.expect(b'(')?;
        let mut items = Vec::new();
        self.skip_spaces();
        while !self.eat(b')') {
            let name = self.atom()?.to_ascii_uppercase();
            self.sp()?;
            let value = self.number64()?;
            items.push((name, value));
            self.skip_spaces();
        }
        Ok(Untagged::MailboxStatus { mailbox, items })
    }

    fn esearch(&mut self) -> Result<Untagged, ProtocolError> {
        let mut out = ESearch::default();
        self.skip_spaces();
        if self.eat(b'(') {
            let w = self.atom()?;
            if w.eq_ignore_ascii_case("TAG") {
                self.sp()?;
                out.tag = Some(String::from_utf8_lossy(&self.astring()?).into_owned());
            }
            self.expect(b')')?;
        }
        loop {
            self.skip_spaces();
            if self.at_end() {
                break;
            }
            let name = self.atom()?.to_ascii_uppercase();
            if name == "UID" {
                out.uid = true;
                continue;
            }
            self.sp()?;
            match name.as_str() {
                "ALL" => out.all = Some(self.uid_set()?),
                "COUNT" => out.count = Some(self.number()?),
                _ => self.skip_value(0)?,
            }
        }
        Ok(Untagged::ESearch(out))
    }

    fn fetch_data(&mut self) -> Result<FetchData, ProtocolError> {
        self.expect(b'(')?;
        let mut d = FetchData::default();
        self.skip_spaces();
        while !self.eat(b')') {
            if self.at_end() {
                return Err(self.err("unterminated FETCH data"));
            }
            let start = self.pos;
            let name = self.item_name()?.to_ascii_uppercase();
            let is_body_section = self.peek() == Some(b'[');
            if is_body_section {
                self.skip_section(0)?;
            }
            let full_name = &self.s[start..self.pos];
            self.sp()?;
            match name.as_str() {
                "UID" => d.uid = Some(Uid(self.nz_number()?)),
                "FLAGS" => d.flags = Some(self.flag_list()?),
                "INTERNALDATE" => {
                    d.internal_date = match self.nstring()? {
                        Str::Bytes(b) => Some(String::from_utf8_lossy(&b).into_owned()),
                        _ => None,
                    }
                }
                "RFC822.SIZE" => d.rfc822_size = Some(self.number64()?),
                "MODSEQ" => {
                    self.expect(b'(')?;
                    d.modseq = Some(ModSeq(self.number64()?));
                    self.expect(b')')?;
                }
                "X-GM-MSGID" => d.gm_msgid = Some(self.number64()?),
                "X-GM-THRID" => d.gm_thrid = Some(self.number64()?),
                "X-GM-LABELS" => d.gm_labels = Some(self.label_list()?),
                "BODY" | "BINARY" | "RFC822"
                    if name == "RFC822"
                        || full_name.eq_ignore_ascii_case(b"BODY[]")
                        || full_name.eq_ignore_ascii_case(b"BODY[]<0>") =>
                {
                    d.body = Some(match self.nstring()? {
                        Str::Bytes(b) => Body::Full(b),
                        Str::Truncated(lit) => Body::Truncated {
                            prefix: lit.data,
                            declared: lit.declared,
                        },
                        Str::Nil => Body::Nil,
                    });
                }
                _ => self.skip_value(0)?,
            }
            self.skip_spaces();
        }
        Ok(d)
    }
}

/// Shows at most a short window of a malformed line, with control and 8-bit
/// bytes escaped so the error message stays one printable line.
fn escape_excerpt(bytes: &[u8]) -> String {
    let mut out = String::new();
    for &b in bytes {
        match b {
            b'\r' => out.push_str("\\r"),
            b'\n' => out.push_str("\\n"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}
