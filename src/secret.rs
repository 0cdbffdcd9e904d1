//! A password or token that cannot be printed by accident: `Debug` and
//! `Display` show `***`, and the only way to the text is [`Secret::expose`],
//! which is called where the bytes go on the wire and nowhere else.
//!
//! Defence in depth beside that: a process-wide registry of every form in
//! which a secret was or may be sent ([`register`], [`register_sent`]), and
//! [`scrub`], which replaces any of them with `***`. Everything that leaves
//! the process passes through it: log lines ([`ScrubWriter`]), errors
//! printed or stored (`last_error`), conversation transcripts, and whatever
//! answers a future HTTP interface gives. A server that echoes what it was
//! sent (in a tag, a BAD, an ALERT, a literal) cannot make mailfeed print
//! it. Any kind of secret can be registered: passwords, OAuth2 access and
//! refresh tokens, client secrets, API tokens.
//!
//! The registry keeps its forms for the life of the process (as the
//! configuration keeps the passwords it names): a form must be known for as
//! long as something could echo it.
//!
//! Owns no IO beyond the writer it wraps; must not know IMAP beyond the
//! encodings a secret is sent in.

use std::borrow::Cow;
use std::fmt;
use std::io::Write;
use std::sync::RwLock;

use base64::Engine;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The secret text, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        // Overwrite the bytes so a freed buffer does not keep the password.
        // SAFETY: NUL bytes are valid UTF-8, so the String stays valid; the
        // volatile write keeps the compiler from removing a dead store.
        let bytes = unsafe { self.0.as_bytes_mut() };
        for b in bytes.iter_mut() {
            unsafe { std::ptr::write_volatile(b, 0) };
        }
    }
}

impl Secret {
    /// Adds this secret to the process-wide registry (see [`register`]).
    pub fn register(&self) {
        register(self);
    }

    /// This secret, added to the registry: for secrets that arrive from outside (tokens,
    /// client secrets), registered where they are read.
    pub fn registered(self) -> Self {
        register(&self);
        self
    }
}

/// What replaces a secret wherever it would leave the process.
pub const MASK: &str = "***";

/// Shorter forms are not scrubbed: masking every `a` in every log line
/// would hide everything and protect nothing (a secret that short is no
/// secret). Configuration validation is the place to refuse such secrets.
pub const MIN_FORM: usize = 4;

/// A cut-off echo (an excerpt, a clipped line) still hides a secret when at
/// least this much of one of its forms ends the text or a clipped part.
const MIN_CUT: usize = 8;

/// Every registered form, longest first (so a form that contains another
/// is masked whole).
static FORMS: RwLock<Vec<String>> = RwLock::new(Vec::new());

fn add_form(form: &str) {
    if form.len() < MIN_FORM {
        return;
    }
    let Ok(mut forms) = FORMS.write() else {
        return;
    };
    if forms.iter().any(|f| f == form) {
        return;
    }
    forms.push(form.to_owned());
    forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
}

/// Registers a secret in every form mailfeed itself may send it as: plain
/// (an atom, a literal, a token in a header), and as the inside of an IMAP
/// quoted string (`\` and `"` escaped).
pub fn register(secret: &Secret) {
    let plain = secret.expose();
    add_form(plain);
    if plain.contains(['\\', '"']) {
        add_form(&plain.replace('\\', "\\\\").replace('"', "\\\""));
    }
}

/// Registers one more form a secret was sent in, computed by its sender
/// (a SASL exchange, an `Authorization` header).
pub fn register_sent(form: &str) {
    add_form(form);
}

/// Registers the SASL PLAIN response for `username` and `password`
/// (base64 of `\0user\0password`): whole, and the part of it that encodes
/// the password, so an echo of part of the line is masked too.
pub fn register_sasl_plain(username: &str, password: &Secret) {
    let mut raw = Vec::with_capacity(username.len() + password.expose().len() + 2);
    raw.push(0);
    raw.extend_from_slice(username.as_bytes());
    raw.push(0);
    raw.extend_from_slice(password.expose().as_bytes());
    let full = base64::engine::general_purpose::STANDARD.encode(&raw);
    // The password starts after `\0user\0`; its base64 starts with the
    // group holding its first byte.
    let offset = username.len() + 2;
    let start = offset / 3 * 4;
    let end = raw.len().div_ceil(3) * 4;
    if let Some(part) = full.get(start..end.min(full.len())) {
        add_form(part);
    }
    add_form(&full);
    raw.fill(0);
}

/// `text` with every registered form of every secret replaced by `***`.
pub fn scrub(text: &str) -> Cow<'_, str> {
    let Ok(forms) = FORMS.read() else {
        // A poisoned registry: say nothing rather than risk a secret.
        return Cow::Owned("(text withheld: the secret registry is unusable)".into());
    };
    if forms.is_empty() {
        return Cow::Borrowed(text);
    }
    let mut out = Cow::Borrowed(text);
    for form in forms.iter() {
        if out.contains(form.as_str()) {
            out = Cow::Owned(out.replace(form.as_str(), MASK));
        }
        if let Some(cut) = cut_form(&out, form) {
            out = Cow::Owned(cut);
        }
    }
    out
}

/// A form's head cut off by a clip: at the end of the text or just before
/// an ellipsis. Returns the text with that head masked.
fn cut_form(text: &str, form: &str) -> Option<String> {
    // Nearly every line holds no head of any form: one search decides.
    if !form.get(..MIN_CUT).is_some_and(|h| text.contains(h)) {
        return None;
    }
    let mut out: Option<String> = None;
    for len in (MIN_CUT..form.len()).rev() {
        let Some(head) = form.get(..len) else {
            continue;
        };
        let current = out.as_deref().unwrap_or(text);
        let mut changed = None;
        for ending in ["…", "...", ""] {
            let pat = format!("{head}{ending}");
            let hit = if ending.is_empty() {
                current.ends_with(head)
            } else {
                current.contains(&pat)
            };
            if hit {
                changed = Some(if ending.is_empty() {
                    format!("{}{MASK}", &current[..current.len() - head.len()])
                } else {
                    current.replace(&pat, &format!("{MASK}{ending}"))
                });
                break;
            }
        }
        if let Some(c) = changed {
            out = Some(c);
        }
    }
    out
}

/// Bytes that may hold text: scrubbed as (lossy) UTF-8 when any form is
/// registered.
pub fn scrub_bytes(bytes: &[u8]) -> Cow<'_, [u8]> {
    if FORMS.read().map(|f| f.is_empty()).unwrap_or(false) {
        return Cow::Borrowed(bytes);
    }
    let text = String::from_utf8_lossy(bytes);
    match scrub(&text) {
        Cow::Borrowed(_) => Cow::Borrowed(bytes),
        Cow::Owned(s) => Cow::Owned(s.into_bytes()),
    }
}

/// A writer that scrubs what passes through it: it collects what it is
/// given and writes it, scrubbed, when flushed or dropped. Log formatters
/// write one record per writer, so a secret split across two `write` calls
/// is still masked.
pub struct ScrubWriter<W: Write> {
    inner: W,
    pending: Vec<u8>,
}

impl<W: Write> ScrubWriter<W> {
    pub fn new(inner: W) -> Self {
        ScrubWriter {
            inner,
            pending: Vec::new(),
        }
    }
}

impl<W: Write> Write for ScrubWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.pending.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.pending.is_empty() {
            let text = std::mem::take(&mut self.pending);
            self.inner.write_all(&scrub_bytes(&text))?;
        }
        self.inner.flush()
    }
}

impl<W: Write> Drop for ScrubWriter<W> {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registered_secrets_are_masked_in_every_form_they_were_sent_in() {
        let s = Secret::new("pw\"scrub-9Qx");
        s.register();
        register_sasl_plain("scrubuser", &s);
        let sasl = base64::engine::general_purpose::STANDARD.encode(b"\0scrubuser\0pw\"scrub-9Qx");
        for shown in [
            "login failed for pw\"scrub-9Qx".to_owned(),
            "* BAD \"pw\\\"scrub-9Qx\" is wrong".to_owned(),
            format!("tagged reply for unknown tag `{sasl}`"),
            format!("unknown tag {}…", &sasl[..sasl.len() - 3]),
            format!("excerpt: {}", &sasl[4..sasl.len() - 2]),
        ] {
            let out = scrub(&shown);
            assert!(!out.contains("scrub-9Qx"), "{out}");
            assert!(!out.contains(&sasl[8..20]), "{shown} -> {out}");
            assert!(out.contains(MASK), "{out}");
        }
        assert_eq!(scrub("nothing secret here"), "nothing secret here");
        let mut w = ScrubWriter::new(Vec::new());
        w.write_all(b"a pw\"scr").unwrap();
        w.write_all(b"ub-9Qx b").unwrap();
        w.flush().unwrap();
        assert_eq!(w.inner, b"a *** b");
    }

    #[test]
    fn never_prints_its_text() {
        let s = Secret::new("hunter2-distinctive");
        assert_eq!(format!("{s}"), "***");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(s.expose(), "hunter2-distinctive");
    }
}
