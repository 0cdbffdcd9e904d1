//! An IMAP session over a [`Link`]: greeting, STARTTLS, login, and commands,
//! driving the sans-IO core with the bytes the transport moves. Every line in
//! either direction can be shown to an observer (the `check` transcript, trace
//! logs) in redacted form.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use crate::config::{AccountConfig, Auth, ConfigError, PasswordSource, Security};
use crate::imap::describe::{describe, render_line};
use crate::imap::{
    AuthMethod, AuthRefusal, Capabilities, Code, Command, Limits, ModSeq, Part, ProtocolError,
    Received, Response, ResponseReader, Status, StatusText, UidSet, UidValidity, Untagged,
    UntaggedStatus, choose_auth, choose_oauth, sasl,
};
use crate::oauth2::{OAuth2Error, Tokens};
use crate::transport::{Link, TransportError};

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    #[error(transparent)]
    Password(#[from] ConfigError),
    #[error(transparent)]
    Token(#[from] OAuth2Error),
    #[error("login failed: {0}")]
    OAuthRefused(String),
    #[error("server refused the connection: {0}")]
    GreetingBye(String),
    #[error("server does not offer STARTTLS; refusing to continue unencrypted")]
    StartTlsUnavailable,
    #[error("server refused STARTTLS ({0}); refusing to continue unencrypted")]
    StartTlsRefused(String),
    #[error("not logging in: {0}")]
    AuthRefused(#[from] AuthRefusal),
    #[error("login failed: {0}")]
    LoginFailed(String),
    #[error("{command} failed: {status} {text}")]
    CommandFailed {
        command: &'static str,
        status: &'static str,
        text: String,
        code: Option<Code>,
    },
    #[error("server closed the connection{}", if *.mid_response { " in the middle of a response" } else { "" })]
    Closed { mid_response: bool },
    #[error("server said BYE: {0}")]
    Bye(String),
    #[error("server violated the protocol: {0}")]
    Unexpected(String),
}

impl SessionError {
    /// Errors that will not go away by retrying soon (bad credentials, a
    /// refused security setting): the service backs off much longer.
    pub fn is_permanent(&self) -> bool {
        if self.server_asks_to_wait() {
            return false;
        }
        matches!(
            self,
            SessionError::LoginFailed(_)
                | SessionError::AuthRefused(_)
                | SessionError::StartTlsUnavailable
                | SessionError::StartTlsRefused(_)
                | SessionError::Password(_)
                | SessionError::OAuthRefused(_)
        ) || matches!(self, SessionError::Token(t) if t.is_permanent())
            || matches!(self, SessionError::Transport(t) if t.is_untrusted_certificate())
    }

    /// True when the server asked clients to stay away for a while
    /// (`[UNAVAILABLE]`, `[THROTTLED]`, `[LIMIT]`, `[OVERQUOTA]` on a BYE or
    /// NO, or Exchange Online's wordings without a code): a reason to back
    /// off, not a fault of the account or the folder.
    pub fn server_asks_to_wait(&self) -> bool {
        const CODES: [&str; 4] = ["UNAVAILABLE", "THROTTLED", "LIMIT", "OVERQUOTA"];
        const PHRASES: [&str; 2] = [
            "request is throttled",
            "user is authenticated but not connected",
        ];
        let worded = |t: &str| {
            let t = t.to_ascii_lowercase();
            PHRASES.iter().any(|p| t.contains(p))
        };
        match self {
            SessionError::Bye(text)
            | SessionError::GreetingBye(text)
            | SessionError::LoginFailed(text)
            | SessionError::OAuthRefused(text) => {
                CODES.iter().any(|c| text.starts_with(&format!("[{c}]"))) || worded(text)
            }
            SessionError::CommandFailed { code, text, .. } => {
                matches!(code, Some(Code::Other(c, _)) if CODES.contains(&c.as_str()))
                    || worded(text)
            }
            _ => false,
        }
    }

    /// A short hint for the common failures, shown by `check`.
    pub fn hint(&self) -> Option<&'static str> {
        Some(match self {
            SessionError::LoginFailed(_) => {
                "check `username` and the password source; the server rejected them"
            }
            SessionError::OAuthRefused(_) => {
                "the server refused a fresh access token: check `username`, the scope the token was granted for, and that IMAP is enabled for the mailbox"
            }
            SessionError::Token(
                OAuth2Error::InvalidGrant { .. } | OAuth2Error::NoRefreshToken { .. },
            ) => "run `mailfeed auth ACCOUNT` to sign in again",
            SessionError::Transport(t) if t.is_wrong_host_certificate() => {
                "the certificate is for another host name: set `host` to a name the certificate lists"
            }
            SessionError::Transport(t) if t.is_pin_refused() => {
                "the server's certificate is not the pinned one (or has expired): if it was renewed, confirm the new fingerprint `mailfeed check` shows and update `tls_fingerprint`"
            }
            SessionError::Transport(t) if t.is_untrusted_certificate() => {
                "the server's certificate is not trusted: install its CA in the system store, set `ca_file` to its PEM, or pin it with the `tls_fingerprint` line `mailfeed check` prints"
            }
            SessionError::Transport(TransportError::Resolve { .. }) => {
                "check `host`: the name does not resolve"
            }
            SessionError::Transport(TransportError::Connect { .. }) => {
                "check `host` and `port`, and that the server is running and reachable"
            }
            SessionError::Transport(TransportError::Tls { .. }) => {
                "TLS failed: check `security` (\"tls\" for port 993, \"starttls\" for 143) and the certificate"
            }
            SessionError::StartTlsUnavailable | SessionError::StartTlsRefused(_) => {
                "the server will not encrypt this port: use `security = \"tls\"` with port 993, or fix the server"
            }
            SessionError::AuthRefused(AuthRefusal::NotEncrypted) => {
                "use `security = \"tls\"` or \"starttls\"; plaintext needs `allow_plaintext = true`"
            }
            SessionError::CommandFailed {
                command: "EXAMINE", ..
            } => {
                "the folder does not exist or cannot be opened: compare `folders` with the LIST output"
            }
            _ => return None,
        })
    }
}

/// One line of the conversation, for whoever watches it.
pub enum TapLine<'a> {
    /// What mailfeed sent, secrets already replaced by `***`.
    Client(&'a str),
    /// What the server sent (literals shown by size) and what it means.
    Server { line: String, meaning: String },
    /// A note from mailfeed itself (TLS started, connection closed, ...).
    Note(&'a str),
}

pub type Tap = Box<dyn FnMut(TapLine<'_>) + Send>;

/// How to connect: limits and timeouts shared by every session.
#[derive(Clone)]
pub struct ConnectOptions {
    pub timeout: Duration,
    pub limits: Limits,
    pub tls: Arc<rustls::ClientConfig>,
    /// The account's access tokens when it logs in with OAuth2.
    pub oauth2: Option<Arc<Tokens>>,
}

/// What EXAMINE reported about a mailbox.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailboxState {
    pub exists: u32,
    pub uidvalidity: Option<UidValidity>,
    pub uidnext: Option<u32>,
    pub highest_modseq: Option<ModSeq>,
    pub nomodseq: bool,
    /// UIDs reported expunged by QRESYNC (`VANISHED (EARLIER)`).
    pub vanished: UidSet,
    /// Flag changes reported by QRESYNC during EXAMINE: (uid, flags, modseq).
    pub changed: Vec<(u32, Vec<String>, Option<ModSeq>)>,
    /// QRESYNC reported more flag changes than [`MAX_REPORTED_CHANGES`];
    /// `changed` is empty and they must be read again with CHANGEDSINCE.
    pub changes_overflowed: bool,
}

/// How an open command is remembered: a FETCH of flags alone is told apart,
/// since the flags in its responses are answers, not changes to record.
const FLAG_FETCH: &str = "FETCH of flags";

fn open_name(cmd: &Command) -> &'static str {
    match cmd {
        Command::UidFetch { items, .. } | Command::Fetch { items, .. }
            if items.contains("FLAGS") && !items.contains("BODY") =>
        {
            FLAG_FETCH
        }
        _ => cmd.name(),
    }
}

/// Flag changes (and VANISHED ranges) of one EXAMINE held in memory at most:
/// a QRESYNC report after "mark all as read" on a huge folder has one
/// response per message.
pub const MAX_REPORTED_CHANGES: usize = 100_000;

const READ_CHUNK: usize = 64 * 1024;

pub struct Session {
    link: Link,
    reader: ResponseReader,
    buf: Vec<u8>,
    pending: VecDeque<Received>,
    next_tag: u32,
    caps: Capabilities,
    tap: Option<Tap>,
    tag_names: HashMap<String, &'static str>,
    account: String,
    qresync_enabled: bool,
    bye: Option<String>,
    /// Commands sent and not yet answered, by tag.
    open_commands: HashMap<String, &'static str>,
    /// The server reported a change (EXISTS, EXPUNGE, VANISHED, FETCH) that
    /// no command asked for; see [`Session::take_unsolicited_changes`].
    unsolicited_changes: bool,
    /// The next [`Session::examine`] sends SELECT (see [`Session::select`]).
    read_write: bool,
    /// The mailbox last examined, while it is selected.
    selected: Option<(String, UidValidity)>,
    /// Flag changes and expunges of the selected mailbox that the server
    /// reported unasked; see [`Session::take_reported`].
    reported: Reported,
}

/// Changes to the selected mailbox that the server reported without being
/// asked: in IDLE, in the middle of a FETCH, after any command. They are
/// changes like any other and must be recorded, whether or not the server
/// has CONDSTORE (without it, nothing else would report them before the
/// next rescan).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reported {
    /// The mailbox (wire name) and generation they belong to.
    pub mailbox: Option<(String, UidValidity)>,
    /// New flags by UID (the server named the UID: QRESYNC, or a UID in
    /// the FETCH).
    pub flags: Vec<(u32, Vec<String>)>,
    /// Message sequence numbers whose flags changed, the UID not given
    /// (IDLE without QRESYNC). Kept current through later EXPUNGEs, so they
    /// can be asked for with `FETCH n (UID FLAGS)` while still selected.
    pub flag_seqs: Vec<u32>,
    /// UIDs reported gone (`VANISHED`).
    pub vanished: Vec<(u32, u32)>,
    /// An `EXPUNGE` (by number: which UID is learnt only by listing).
    pub expunged: bool,
    /// More than [`MAX_REPORTED_CHANGES`] arrived: a rescan learns them.
    pub overflowed: bool,
}

impl Reported {
    fn is_empty(&self) -> bool {
        self.flags.is_empty()
            && self.flag_seqs.is_empty()
            && self.vanished.is_empty()
            && !self.expunged
            && !self.overflowed
    }

    fn size(&self) -> usize {
        self.flags.len() + self.flag_seqs.len() + self.vanished.len()
    }

    fn note(&mut self, u: &Untagged) {
        match u {
            Untagged::Fetch(seq, d) if d.body.is_none() => {
                let Some(flags) = &d.flags else { return };
                match d.uid {
                    Some(uid) => self.flags.push((uid.0, flags.clone())),
                    None => self.flag_seqs.push(seq.0),
                }
            }
            Untagged::Expunge(n) => {
                let n = n.0;
                self.flag_seqs.retain(|&s| s != n);
                for s in &mut self.flag_seqs {
                    if *s > n {
                        *s -= 1;
                    }
                }
                self.expunged = true;
            }
            Untagged::Vanished {
                earlier: false,
                uids,
            } => self.vanished.extend_from_slice(uids.ranges()),
            _ => return,
        }
        if self.size() > MAX_REPORTED_CHANGES {
            self.flags = Vec::new();
            self.flag_seqs = Vec::new();
            self.vanished = Vec::new();
            self.overflowed = true;
        }
    }
}

impl Session {
    /// Connects and logs in as the account says: TLS or STARTTLS (never
    /// falling back to plaintext), greeting, capabilities, authentication.
    pub async fn connect(
        account: &AccountConfig,
        opts: &ConnectOptions,
        tap: Option<Tap>,
    ) -> Result<Session, SessionError> {
        let mut link = Link::connect(&account.host, account.port, opts.timeout).await?;
        let note = |tap: &mut Option<Tap>, s: &str| {
            if let Some(t) = tap.as_mut() {
                t(TapLine::Note(s));
            }
        };
        let mut tap = tap;
        note(&mut tap, &format!("connected to {}", link.addr()));
        if account.security == Security::Tls {
            link = link.start_tls(opts.tls.clone(), &account.host).await?;
            note(&mut tap, "TLS established, certificate verified");
        }
        let mut s = Session {
            link,
            reader: ResponseReader::new(opts.limits),
            buf: vec![0; READ_CHUNK],
            pending: VecDeque::new(),
            next_tag: 1,
            caps: Capabilities::default(),
            tap,
            tag_names: HashMap::new(),
            account: account.name.clone(),
            qresync_enabled: false,
            bye: None,
            open_commands: HashMap::new(),
            unsolicited_changes: false,
            read_write: false,
            selected: None,
            reported: Reported::default(),
        };
        let preauth = s.greeting().await?;
        if account.security == Security::Starttls {
            if preauth {
                // RFC 3501: STARTTLS is impossible after PREAUTH; continuing
                // would mean talking in the clear.
                return Err(SessionError::StartTlsUnavailable);
            }
            s.starttls(opts, &account.host).await?;
        }
        if !preauth {
            match &account.auth {
                Auth::Password(source) => s.login(account, source).await?,
                Auth::OAuth2(_) => s.login_oauth(account, opts.oauth2.as_deref()).await?,
            }
        }
        if s.caps.is_empty() {
            s.refresh_capabilities().await?;
        }
        if s.caps.has("ID") {
            // RFC 2971: some providers want to know the client before
            // SELECT. A refusal changes nothing; a lost connection does.
            match s.run(&Command::Id).await {
                Ok(_) | Err(SessionError::CommandFailed { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        if account.compress && s.caps.has("COMPRESS=DEFLATE") {
            s.run(&Command::Compress).await?;
            if !s.reader.is_drained() || !s.pending.is_empty() {
                return Err(SessionError::Unexpected(
                    "server sent data between COMPRESS and its first compressed byte".into(),
                ));
            }
            s.link.start_deflate();
            s.tap_note("COMPRESS=DEFLATE active");
        }
        Ok(s)
    }

    pub fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    pub fn account(&self) -> &str {
        &self.account
    }

    pub fn is_encrypted(&self) -> bool {
        self.link.is_encrypted()
    }

    pub fn qresync_enabled(&self) -> bool {
        self.qresync_enabled
    }

    fn tap_note(&mut self, s: &str) {
        if let Some(t) = self.tap.as_mut() {
            t(TapLine::Note(s));
        }
    }

    async fn greeting(&mut self) -> Result<bool, SessionError> {
        let r = self.next_response().await?;
        match r.response {
            Response::Untagged(Untagged::Status(st, text)) => {
                if let Some(Code::Capability(c)) = &text.code {
                    self.caps = Capabilities::new(c);
                }
                match st {
                    UntaggedStatus::Ok => Ok(false),
                    UntaggedStatus::Preauth => Ok(true),
                    UntaggedStatus::Bye => Err(SessionError::GreetingBye(status_text(&text))),
                    _ => Err(SessionError::Unexpected(format!(
                        "greeting was not OK, PREAUTH or BYE: {}",
                        text.text
                    ))),
                }
            }
            other => Err(SessionError::Unexpected(format!(
                "expected a greeting, got {other:?}"
            ))),
        }
    }

    async fn refresh_capabilities(&mut self) -> Result<(), SessionError> {
        let untagged = self.run(&Command::Capability).await?;
        for u in untagged {
            if let Untagged::Capability(c) = u {
                self.caps = Capabilities::new(c);
            }
        }
        Ok(())
    }

    async fn starttls(&mut self, opts: &ConnectOptions, host: &str) -> Result<(), SessionError> {
        if self.caps.is_empty() {
            self.refresh_capabilities().await?;
        }
        if !self.caps.has("STARTTLS") {
            return Err(SessionError::StartTlsUnavailable);
        }
        match self.run(&Command::StartTls).await {
            Ok(_) => {}
            Err(SessionError::CommandFailed { status, text, .. }) => {
                return Err(SessionError::StartTlsRefused(format!("{status} {text}")));
            }
            Err(e) => return Err(e),
        }
        if !self.reader.is_drained() || !self.pending.is_empty() {
            // Bytes after the OK but before the handshake could be injected
            // by an attacker (CVE-2011-0411 style); refuse them.
            return Err(SessionError::Unexpected(
                "server sent data after accepting STARTTLS".into(),
            ));
        }
        let placeholder = Link::placeholder();
        let link = std::mem::replace(&mut self.link, placeholder);
        self.link = link.start_tls(opts.tls.clone(), host).await?;
        self.tap_note("TLS established, certificate verified");
        // Capabilities learned before TLS must be forgotten (RFC 3501 6.2.1).
        self.caps = Capabilities::default();
        self.refresh_capabilities().await
    }

    /// Logs in with an OAuth2 access token. A refused token is dropped and
    /// a fresh one tried once (it may have been revoked or expired early);
    /// a second refusal is the account's problem, not the token's age.
    async fn login_oauth(
        &mut self,
        account: &AccountConfig,
        tokens: Option<&Tokens>,
    ) -> Result<(), SessionError> {
        let mechanism = choose_oauth(
            &self.caps,
            self.link.is_encrypted(),
            account.allow_plaintext,
        )?;
        let tokens = tokens.ok_or_else(|| {
            SessionError::Unexpected("no OAuth2 token source for this account".into())
        })?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let token = tokens.access_token().await?;
            let response = sasl::initial_response(
                mechanism,
                &account.username,
                &token,
                &account.host,
                account.port,
            );
            // The token is registered where it was obtained; the SASL form is
            // registered too, so an echo of the line is masked wherever it goes.
            crate::secret::register_sent(response.expose());
            match self.authenticate_oauth(mechanism, response).await {
                Err(SessionError::OAuthRefused(why)) if attempt == 1 => {
                    tracing::info!(account = %account.name, "{why}; trying a fresh access token");
                    tokens.forget().await;
                }
                other => return other,
            }
        }
    }

    async fn authenticate_oauth(
        &mut self,
        mechanism: crate::imap::OAuthMechanism,
        response: crate::secret::Secret,
    ) -> Result<(), SessionError> {
        let (mut exchange, cmd) =
            crate::imap::OAuthExchange::start(mechanism, response, self.caps.has("SASL-IR"));
        let tag = self.send(&cmd).await?;
        loop {
            let r = self.next_response().await?;
            match r.response {
                Response::Continuation(text) => {
                    let answer = exchange.on_continuation(&text);
                    if let Some(t) = self.tap.as_mut() {
                        t(TapLine::Client("*** (SASL response)"));
                    }
                    self.link.write_all(answer.expose().as_bytes()).await?;
                }
                Response::Tagged {
                    tag: t,
                    status,
                    text,
                } if t == tag => {
                    if status != Status::Ok {
                        let why = match exchange.failure() {
                            Some(f) => format!("{f}: {}", status_text(&text)),
                            None => status_text(&text),
                        };
                        return Err(SessionError::OAuthRefused(why));
                    }
                    self.caps = match text.code {
                        Some(Code::Capability(c)) => Capabilities::new(c),
                        _ => Capabilities::default(),
                    };
                    return Ok(());
                }
                Response::Untagged(Untagged::Capability(c)) => self.caps = Capabilities::new(c),
                Response::Untagged(Untagged::Status(UntaggedStatus::Bye, text)) => {
                    self.bye = Some(text.text);
                }
                _ => {}
            }
        }
    }

    async fn login(
        &mut self,
        account: &AccountConfig,
        source: &PasswordSource,
    ) -> Result<(), SessionError> {
        let method = choose_auth(
            &self.caps,
            self.link.is_encrypted(),
            account.allow_plaintext,
        )?;
        let password = source.resolve(&account.name)?;
        let username = account.username.clone();
        // Before anything is sent: whatever the server echoes of it from
        // now on is masked wherever it would leave the process.
        password.register();
        if matches!(method, AuthMethod::PlainInitialResponse | AuthMethod::Plain) {
            crate::secret::register_sasl_plain(&username, &password);
        }
        let cmd = match method {
            AuthMethod::PlainInitialResponse | AuthMethod::Plain => Command::AuthenticatePlain {
                username: username.clone(),
                password: password.clone(),
                initial_response: method == AuthMethod::PlainInitialResponse,
            },
            AuthMethod::Login => Command::Login {
                username: username.clone(),
                password: password.clone(),
            },
        };
        let tag = self.send(&cmd).await?;
        loop {
            let r = self.next_response().await?;
            match r.response {
                Response::Continuation(_) if method == AuthMethod::Plain => {
                    if let Some(t) = self.tap.as_mut() {
                        t(TapLine::Client("*** (SASL PLAIN response)"));
                    }
                    let resp = Command::sasl_plain(&username, &password);
                    self.link.write_all(&resp).await?;
                }
                Response::Continuation(_) => {
                    // Cancel an exchange we cannot continue.
                    self.link.write_all(b"*\r\n").await?;
                }
                Response::Tagged {
                    tag: t,
                    status,
                    text,
                } if t == tag => {
                    if status != Status::Ok {
                        return Err(SessionError::LoginFailed(status_text(&text)));
                    }
                    if let Some(Code::Capability(c)) = text.code {
                        self.caps = Capabilities::new(c);
                    } else {
                        self.caps = Capabilities::default();
                    }
                    return Ok(());
                }
                Response::Untagged(Untagged::Capability(c)) => self.caps = Capabilities::new(c),
                Response::Untagged(Untagged::Status(UntaggedStatus::Bye, text)) => {
                    self.bye = Some(text.text);
                }
                _ => {}
            }
        }
    }

    fn tag(&mut self) -> String {
        let t = format!("a{:03}", self.next_tag);
        self.next_tag += 1;
        t
    }

    /// Sends a command and returns its tag; the caller reads the responses.
    /// Synchronizing literals wait for the server's `+`.
    pub async fn send(&mut self, cmd: &Command) -> Result<String, SessionError> {
        let tag = self.tag();
        if self.tap.is_some() || tracing::enabled!(tracing::Level::TRACE) {
            let shown = cmd.redacted(&tag);
            tracing::trace!(account = %self.account, "C: {shown}");
            if let Some(t) = self.tap.as_mut() {
                t(TapLine::Client(&shown));
            }
        }
        self.tag_names.insert(tag.clone(), cmd.name());
        self.open_commands.insert(tag.clone(), open_name(cmd));
        let parts = cmd.encode(&tag, self.caps.literal_plus());
        let mut out: Vec<u8> = Vec::new();
        for part in parts {
            match part {
                Part::Text(t) => out.extend_from_slice(&t),
                Part::Literal {
                    data,
                    synchronizing,
                } => {
                    if synchronizing {
                        self.link.write_all(&out).await?;
                        out.clear();
                        self.await_continuation(&tag).await?;
                    }
                    out.extend_from_slice(&data);
                }
            }
        }
        self.link.write_all(&out).await?;
        Ok(tag)
    }

    async fn await_continuation(&mut self, tag: &str) -> Result<(), SessionError> {
        loop {
            let r = self.read_one().await?;
            match &r.response {
                Response::Continuation(_) => return Ok(()),
                Response::Tagged {
                    tag: t,
                    status,
                    text,
                } if t == tag => {
                    return Err(SessionError::CommandFailed {
                        command: self.tag_names.get(tag).copied().unwrap_or("command"),
                        status: status.as_str(),
                        text: text.text.clone(),
                        code: text.code.clone(),
                    });
                }
                _ => self.pending.push_back(r),
            }
        }
    }

    /// Sends the bare `DONE` that ends IDLE.
    pub async fn send_done(&mut self) -> Result<(), SessionError> {
        if let Some(t) = self.tap.as_mut() {
            t(TapLine::Client("DONE"));
        }
        tracing::trace!(account = %self.account, "C: DONE");
        self.link.write_all(b"DONE\r\n").await?;
        Ok(())
    }

    /// The next response from the wire. `timeout` bounds silence, not the
    /// response: every chunk that arrives restarts it, so a large message on
    /// a slow link is received whole, while a server that sends nothing for
    /// `timeout` is given up on.
    async fn read_one(&mut self) -> Result<Received, SessionError> {
        let limit = self.link.timeout();
        loop {
            if let Some(r) = self.reader.pop() {
                self.observe(&r);
                return Ok(r);
            }
            if !self.read_chunk(limit).await? {
                return Err(SessionError::Transport(TransportError::ReadTimeout {
                    after: limit,
                }));
            }
        }
    }

    /// The next response if it is complete within `limit` (IDLE waits); a
    /// response still arriving then stays in the reader for the next read.
    async fn read_one_within(&mut self, limit: Duration) -> Result<Option<Received>, SessionError> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(r) = self.reader.pop() {
                self.observe(&r);
                return Ok(Some(r));
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() || !self.read_chunk(left).await? {
                return Ok(None);
            }
        }
    }

    /// Feeds the reader whatever arrives within `limit`; false when nothing
    /// did.
    async fn read_chunk(&mut self, limit: Duration) -> Result<bool, SessionError> {
        let n = match self.link.read_within(&mut self.buf, limit).await {
            Ok(n) => n,
            Err(TransportError::ReadTimeout { .. }) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            let mid = !self.reader.at_boundary();
            self.tap_note("server closed the connection");
            return Err(match self.bye.take() {
                Some(text) if !mid => SessionError::Bye(text),
                _ => SessionError::Closed { mid_response: mid },
            });
        }
        self.reader.feed(&self.buf[..n])?;
        Ok(true)
    }

    /// True when, since the last call, the server reported a mailbox change
    /// that no command of ours asked for: an `EXISTS`, `EXPUNGE` or
    /// `VANISHED` outside EXAMINE, a `FETCH` outside our FETCHes. A sync pass
    /// may have listed the folder before that change, and a server does not
    /// repeat it in IDLE, so whoever waits next should look again first.
    pub fn take_unsolicited_changes(&mut self) -> bool {
        std::mem::take(&mut self.unsolicited_changes)
    }

    /// The flag changes and expunges of the selected mailbox reported
    /// unasked since the last call, if any; see [`Reported`].
    pub fn take_reported(&mut self) -> Option<Reported> {
        if self.reported.is_empty() {
            return None;
        }
        let mut r = std::mem::take(&mut self.reported);
        r.mailbox = self.selected.clone();
        r.mailbox.is_some().then_some(r)
    }

    fn note_unsolicited(&mut self, r: &Received) {
        let open = |name: &str| self.open_commands.values().any(|c| *c == name);
        // Flag changes are ours when a command asked for flags alone (its
        // responses are applied by whoever sent it) or during EXAMINE; any
        // other FETCH carrying FLAGS and no body is a change to record.
        if let Response::Untagged(u) = &r.response {
            let asked = open("EXAMINE") || open(FLAG_FETCH);
            let recorded = match u {
                Untagged::Fetch(..) => !asked,
                Untagged::Expunge(_) | Untagged::Vanished { earlier: false, .. } => {
                    !open("EXAMINE")
                }
                _ => false,
            };
            if recorded && self.selected.is_some() {
                self.reported.note(u);
            }
        }
        let unasked = match &r.response {
            Response::Untagged(
                Untagged::Exists(_)
                | Untagged::Expunge(_)
                | Untagged::Vanished { earlier: false, .. },
            ) => !open("EXAMINE") && !open("SELECT"),
            Response::Untagged(Untagged::Fetch(..)) => {
                !open("EXAMINE") && !open("SELECT") && !open("UID FETCH") && !open(FLAG_FETCH)
            }
            Response::Tagged { tag, .. } => {
                self.open_commands.remove(tag);
                false
            }
            _ => false,
        };
        self.unsolicited_changes |= unasked;
    }

    fn observe(&mut self, r: &Received) {
        self.note_unsolicited(r);
        if let Response::Untagged(Untagged::Status(UntaggedStatus::Bye, text)) = &r.response {
            self.bye = Some(status_text(text));
        }
        // RFC 3501 7.1: an ALERT's text must be presented to the user.
        if let Response::Untagged(Untagged::Status(_, text)) | Response::Tagged { text, .. } =
            &r.response
            && text.code == Some(Code::Alert)
        {
            tracing::warn!(account = %self.account, "server alert: {}", text.text);
        }
        if self.tap.is_none() && !tracing::enabled!(tracing::Level::TRACE) {
            return;
        }
        let command = match &r.response {
            Response::Tagged { tag, .. } => self.tag_names.get(tag).copied(),
            _ => None,
        };
        let line = crate::secret::scrub(&render_line(&r.line)).into_owned();
        let meaning = crate::secret::scrub(&describe(&r.response, command)).into_owned();
        tracing::trace!(account = %self.account, "S: {line}  ({meaning})");
        if let Some(t) = self.tap.as_mut() {
            t(TapLine::Server { line, meaning });
        }
    }

    /// The next response, from what was queued while sending or from the wire.
    pub async fn next_response(&mut self) -> Result<Received, SessionError> {
        if let Some(r) = self.pending.pop_front() {
            return Ok(r);
        }
        self.read_one().await
    }

    /// The next response if one arrives within `limit` (IDLE waits).
    pub async fn next_response_within(
        &mut self,
        limit: Duration,
    ) -> Result<Option<Received>, SessionError> {
        if let Some(r) = self.pending.pop_front() {
            return Ok(Some(r));
        }
        self.read_one_within(limit).await
    }

    /// Runs a command to completion, returning its untagged responses; a NO or
    /// BAD becomes [`SessionError::CommandFailed`].
    pub async fn run(&mut self, cmd: &Command) -> Result<Vec<Untagged>, SessionError> {
        let tag = self.send(cmd).await?;
        self.collect(&tag, cmd.name()).await
    }

    /// Reads responses until the tagged reply to `tag`.
    pub async fn collect(
        &mut self,
        tag: &str,
        command: &'static str,
    ) -> Result<Vec<Untagged>, SessionError> {
        let mut out = Vec::new();
        self.collect_with(tag, command, |u| out.push(u)).await?;
        Ok(out)
    }

    /// Reads responses until the tagged reply to `tag`, handing each
    /// untagged one to `each` as it arrives instead of keeping them all (a
    /// command may be answered by a million responses).
    pub async fn collect_with(
        &mut self,
        tag: &str,
        command: &'static str,
        mut each: impl FnMut(Untagged),
    ) -> Result<(), SessionError> {
        loop {
            let r = self.next_response().await?;
            match r.response {
                Response::Tagged {
                    tag: t,
                    status,
                    text,
                } if t == tag => {
                    self.tag_names.remove(tag);
                    return completion(command, status, text);
                }
                Response::Tagged { tag: t, .. } => {
                    return Err(SessionError::Unexpected(format!(
                        "tagged reply for unknown tag `{t}` while waiting for {tag}"
                    )));
                }
                Response::Untagged(u) => each(u),
                Response::Continuation(_) => {
                    return Err(SessionError::Unexpected(
                        "unexpected continuation request".into(),
                    ));
                }
            }
        }
    }

    /// LIST with a pattern; returns selectable folders' wire names.
    pub async fn list(
        &mut self,
        pattern: &str,
    ) -> Result<Vec<crate::imap::ListEntry>, SessionError> {
        let untagged = self
            .run(&Command::List {
                reference: String::new(),
                pattern: pattern.to_owned(),
            })
            .await?;
        Ok(untagged
            .into_iter()
            .filter_map(|u| match u {
                Untagged::List(e) => Some(e),
                _ => None,
            })
            .collect())
    }

    /// Enables QRESYNC when offered (once per connection).
    pub async fn enable_qresync(&mut self) -> Result<bool, SessionError> {
        if self.qresync_enabled {
            return Ok(true);
        }
        if !self.caps.qresync() {
            return Ok(false);
        }
        let untagged = self.run(&Command::Enable(vec!["QRESYNC".into()])).await?;
        self.qresync_enabled = untagged.iter().any(|u| {
            matches!(u, Untagged::Enabled(c) if c.iter().any(|x| x.eq_ignore_ascii_case("QRESYNC")))
        });
        Ok(self.qresync_enabled)
    }

    /// EXAMINE (read-only): nothing mailfeed does can change the server.
    pub async fn examine(
        &mut self,
        mailbox_wire: &str,
        qresync: Option<(UidValidity, ModSeq)>,
    ) -> Result<MailboxState, SessionError> {
        let condstore = self.caps.condstore();
        let (mailbox, qresync) = (
            mailbox_wire.to_owned(),
            if self.qresync_enabled { qresync } else { None },
        );
        let cmd = match std::mem::take(&mut self.read_write) {
            false => Command::Examine {
                mailbox,
                condstore,
                qresync,
            },
            true => Command::Select {
                mailbox,
                condstore,
                qresync,
            },
        };
        // Changes reported for the mailbox selected until now belong to it:
        // whoever wants them takes them before examining another
        // ([`Session::take_reported`]); they cannot be told apart after.
        self.selected = None;
        self.reported = Reported::default();
        let tag = self.send(&cmd).await?;
        let mut st = MailboxState::default();
        let mut vanished: Vec<(u32, u32)> = Vec::new();
        self.collect_with(&tag, cmd.name(), |u| {
            match u {
                Untagged::Exists(n) => st.exists = n,
                Untagged::Status(
                    _,
                    StatusText {
                        code: Some(code), ..
                    },
                ) => match code {
                    Code::UidValidity(v) => st.uidvalidity = Some(UidValidity(v)),
                    Code::UidNext(n) => st.uidnext = Some(n),
                    Code::HighestModSeq(m) => st.highest_modseq = Some(ModSeq(m)),
                    Code::NoModSeq => st.nomodseq = true,
                    // RFC 7162 3.2.11: everything before this belonged to
                    // the previously selected folder (a queued flag update
                    // or VANISHED of it must not be applied to this one).
                    Code::Closed => {
                        st = MailboxState::default();
                        vanished.clear();
                    }
                    _ => {}
                },
                Untagged::Vanished { uids, .. } => {
                    vanished.extend_from_slice(uids.ranges());
                    if vanished.len() > MAX_REPORTED_CHANGES {
                        let merged = UidSet::from_ranges(std::mem::take(&mut vanished));
                        vanished = merged.ranges().to_vec();
                    }
                }
                Untagged::Fetch(_, d) => {
                    if st.changes_overflowed {
                        return;
                    }
                    if let (Some(uid), Some(flags)) = (d.uid, d.flags) {
                        st.changed.push((uid.0, flags, d.modseq));
                    }
                    if st.changed.len() > MAX_REPORTED_CHANGES {
                        // Too many to hold: the caller reads them again,
                        // streamed, with CHANGEDSINCE.
                        st.changed = Vec::new();
                        st.changes_overflowed = true;
                    }
                }
                _ => {}
            }
        })
        .await?;
        st.vanished = UidSet::from_ranges(vanished);
        self.selected = st.uidvalidity.map(|v| (mailbox_wire.to_owned(), v));
        if !condstore {
            // Some servers report HIGHESTMODSEQ without advertising CONDSTORE;
            // mailfeed uses only what is advertised.
            st.highest_modseq = None;
        }
        Ok(st)
    }

    /// SELECT (read-write) instead of EXAMINE, for a folder that mailfeed
    /// is configured to change (see `actions`); otherwise as [`Self::examine`].
    pub async fn select(
        &mut self,
        mailbox_wire: &str,
        qresync: Option<(UidValidity, ModSeq)>,
    ) -> Result<MailboxState, SessionError> {
        self.read_write = true;
        self.examine(mailbox_wire, qresync).await
    }

    /// Ends the session politely; errors are ignored (the server may be gone).
    pub async fn logout(mut self) {
        let done = tokio::time::timeout(Duration::from_secs(3), async {
            if let Ok(tag) = self.send(&Command::Logout).await {
                let _ = self.collect(&tag, "LOGOUT").await;
            }
        })
        .await;
        let _ = done;
        self.link.shutdown().await;
    }
}

/// Turns a tagged reply into the command's outcome: OK, or
/// [`SessionError::CommandFailed`] carrying the server's words.
pub fn completion(
    command: &'static str,
    status: Status,
    text: StatusText,
) -> Result<(), SessionError> {
    if status == Status::Ok {
        return Ok(());
    }
    Err(SessionError::CommandFailed {
        command,
        status: status.as_str(),
        text: text.text,
        code: text.code,
    })
}

fn status_text(t: &StatusText) -> String {
    match &t.code {
        Some(Code::Other(name, _)) => format!("[{name}] {}", t.text),
        _ => t.text.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Peer, listen, session_on};
    use tokio::time::Instant;

    // Real time with wide margins: tokio's paused clock does not see
    // loopback bytes arriving, so these tests use short real intervals
    // (chunks every timeout/5; a timing slip of 4/5 of a timeout would be
    // needed to break them).

    /// A FETCH of a 64 KiB message dripped over more than three timeouts:
    /// slow but never silent for a whole timeout.
    #[tokio::test]
    async fn a_large_message_on_a_slow_link_arrives_whole() {
        let timeout = Duration::from_millis(500);
        let (listener, port) = listen().await;
        let server = tokio::spawn(async move {
            let mut p = Peer::accept(&listener).await;
            let tag = p.expect("NOOP").await;
            let body = vec![b'x'; 64 * 1024];
            p.send(format!("* 1 FETCH (UID 1 BODY[] {{{}}}\r\n", body.len()))
                .await;
            for chunk in body.chunks(4096) {
                tokio::time::sleep(timeout / 5).await;
                p.send_bytes(chunk).await;
            }
            p.send(format!(")\r\n{tag} OK done\r\n")).await;
            p
        });
        let mut s = session_on(port, timeout).await;
        let t0 = Instant::now();
        let untagged = s.run(&Command::Noop).await.expect("the whole response");
        assert!(
            t0.elapsed() >= timeout * 3,
            "the drip took {:?}",
            t0.elapsed()
        );
        assert!(
            matches!(&untagged[..], [Untagged::Fetch(..)]),
            "{untagged:?}"
        );
        drop(server.await);
    }

    /// Changes nobody asked for are noted; EXAMINE's own EXISTS and the
    /// FETCH responses of our FETCH are not.
    #[tokio::test]
    async fn unsolicited_changes_are_noted() {
        let (listener, port) = listen().await;
        let server = tokio::spawn(async move {
            let mut p = Peer::accept(&listener).await;
            let tag = p.expect("EXAMINE").await;
            p.send(format!(
                "* 3 EXISTS\r\n* OK [UIDVALIDITY 1] v\r\n* OK [UIDNEXT 4] n\r\n{tag} OK [READ-ONLY] done\r\n"
            ))
            .await;
            let tag = p.expect("UID FETCH").await;
            p.send(format!("* 1 FETCH (UID 1)\r\n{tag} OK done\r\n"))
                .await;
            let tag = p.expect("NOOP").await;
            p.send(format!("{tag} OK done\r\n")).await;
            // After the listing: a new message the pass did not see.
            let tag = p.expect("UID FETCH").await;
            p.send(format!(
                "* 1 FETCH (UID 1)\r\n{tag} OK done\r\n* 4 EXISTS\r\n"
            ))
            .await;
            let tag = p.expect("NOOP").await;
            p.send(format!("* 2 FETCH (FLAGS (\\Seen))\r\n{tag} OK done\r\n"))
                .await;
            p
        });
        let mut s = session_on(port, Duration::from_secs(5)).await;
        s.examine("INBOX", None).await.expect("examine");
        let listing = Command::UidFetch {
            set: "1:*".into(),
            items: "UID",
            changed_since: None,
            vanished: false,
        };
        s.run(&listing).await.expect("listing");
        s.run(&Command::Noop).await.expect("noop");
        assert!(!s.take_unsolicited_changes(), "all of it was asked for");
        s.run(&listing).await.expect("listing");
        s.run(&Command::Noop).await.expect("noop");
        assert!(s.take_unsolicited_changes(), "the EXISTS after the listing");
        assert!(!s.take_unsolicited_changes(), "taken once");
        drop(server.await);
    }

    /// Which flag changes and expunges are recorded as reported unasked:
    /// not EXAMINE's own (a QRESYNC report) nor the answers to a FETCH of
    /// flags; yes in the middle of a body FETCH, after a NOOP, in IDLE, as
    /// VANISHED; sequence numbers follow later EXPUNGEs; nothing after the
    /// selection changes.
    #[tokio::test]
    async fn changes_reported_unasked_are_kept_for_the_selected_mailbox() {
        let (listener, port) = listen().await;
        let server = tokio::spawn(async move {
            let mut p = Peer::accept(&listener).await;
            let tag = p.expect("EXAMINE").await;
            p.send(format!(
                "* 9 EXISTS\r\n* OK [UIDVALIDITY 5] v\r\n* 1 FETCH (UID 1 FLAGS (\\Seen))\r\n* VANISHED (EARLIER) 2\r\n{tag} OK [READ-ONLY] done\r\n"
            ))
            .await;
            let tag = p.expect("UID FETCH 1:9 (UID FLAGS)").await;
            p.send(format!("* 3 FETCH (UID 3 FLAGS ())\r\n{tag} OK done\r\n"))
                .await;
            let tag = p.expect("BODY.PEEK").await;
            p.send(format!(
                "* 4 FETCH (UID 4 FLAGS (\\Flagged))\r\n* 6 FETCH (FLAGS (\\Seen))\r\n{tag} OK done\r\n"
            ))
            .await;
            let tag = p.expect("NOOP").await;
            p.send(format!(
                "* 8 FETCH (FLAGS (\\Draft))\r\n* 5 EXPUNGE\r\n* VANISHED 20:22\r\n{tag} OK done\r\n"
            ))
            .await;
            let tag = p.expect("IDLE").await;
            p.send("+ idling\r\n* 2 FETCH (FLAGS (\\Answered))\r\n".into())
                .await;
            p.expect("DONE").await;
            p.send(format!("{tag} OK done\r\n")).await;
            let tag = p.expect("EXAMINE").await;
            p.send(format!(
                "* 0 EXISTS\r\n* OK [UIDVALIDITY 6] v\r\n{tag} OK done\r\n"
            ))
            .await;
            p
        });
        let mut s = session_on(port, Duration::from_secs(5)).await;
        s.examine("INBOX", None).await.expect("examine");
        assert_eq!(s.take_reported(), None, "EXAMINE's own report");
        let scan = Command::UidFetch {
            set: "1:9".into(),
            items: "UID FLAGS",
            changed_since: None,
            vanished: false,
        };
        s.run(&scan).await.expect("scan");
        assert_eq!(s.take_reported(), None, "answers to a flag scan");
        s.run(&Command::UidFetch {
            set: "9:9".into(),
            items: "UID FLAGS BODY.PEEK[]",
            changed_since: None,
            vanished: false,
        })
        .await
        .expect("fetch");
        s.run(&Command::Noop).await.expect("noop");
        let tag = s.send(&Command::Idle).await.expect("idle");
        s.next_response().await.expect("+");
        s.next_response().await.expect("change");
        s.send_done().await.expect("done");
        s.collect(&tag, "IDLE").await.expect("idle ends");
        let r = s.take_reported().expect("reported");
        assert_eq!(r.mailbox, Some(("INBOX".into(), UidValidity(5))));
        assert_eq!(r.flags, vec![(4, vec!["\\Flagged".to_owned()])]);
        // 6 and 8 were renumbered by the EXPUNGE of 5; 2 came after it.
        assert_eq!(r.flag_seqs, vec![5, 7, 2]);
        assert_eq!(r.vanished, vec![(20, 22)]);
        assert!(r.expunged && !r.overflowed);
        assert_eq!(s.take_reported(), None, "taken once");
        s.examine("Other", None).await.expect("examine other");
        assert_eq!(s.take_reported(), None);
        drop(server.await);
    }

    /// A QRESYNC EXAMINE answered by a `VANISHED (EARLIER)` of 200,000
    /// scattered UIDs (a 1.3 MB line) and a 1 MB CAPABILITY, with the
    /// default limits: both are read, nothing is lost.
    #[tokio::test]
    async fn long_legal_lines_are_read_with_the_default_limits() {
        let (listener, port) = listen().await;
        let server = tokio::spawn(async move {
            let mut p = Peer::accept(&listener).await;
            let tag = p.expect("CAPABILITY").await;
            let mut caps = String::from("* CAPABILITY IMAP4rev1");
            while caps.len() < 1024 * 1024 {
                caps.push_str(" X-LONG");
            }
            p.send(format!("{caps} CONDSTORE\r\n{tag} OK done\r\n"))
                .await;
            let tag = p.expect("EXAMINE").await;
            let mut line = String::from("* VANISHED (EARLIER) 1");
            for uid in (3..400_000).step_by(2) {
                line.push_str(&format!(",{uid}"));
            }
            p.send(format!(
                "* 5 EXISTS\r\n* OK [UIDVALIDITY 5] v\r\n{line}\r\n{tag} OK [READ-ONLY] done\r\n"
            ))
            .await;
            p
        });
        let mut s = session_on(port, Duration::from_secs(5)).await;
        s.refresh_capabilities().await.expect("1 MB CAPABILITY");
        assert!(s.capabilities().condstore());
        let st = s
            .examine("INBOX", Some((UidValidity(5), ModSeq(9))))
            .await
            .expect("examine");
        assert_eq!(st.vanished.len(), 200_000);
        assert!(st.vanished.contains(399_999) && !st.vanished.contains(400_000));
        drop(server.await);
    }

    #[test]
    fn provider_throttling_is_a_reason_to_wait_not_a_failure() {
        let failed = |code: Option<Code>, text: &str| SessionError::CommandFailed {
            command: "EXAMINE",
            status: "NO",
            text: text.into(),
            code,
        };
        let waits = [
            failed(
                Some(Code::Other("OVERQUOTA".into(), None)),
                "Quota exceeded",
            ),
            failed(Some(Code::Other("THROTTLED".into(), None)), "slow down"),
            failed(
                None,
                "Request is throttled. Suggested Backoff Time: 4162 milliseconds",
            ),
            failed(None, "User is authenticated but not connected."),
            SessionError::LoginFailed("[UNAVAILABLE] try later".into()),
            SessionError::Bye("[LIMIT] too many connections".into()),
        ];
        for e in &waits {
            assert!(e.server_asks_to_wait(), "{e}");
            assert!(!e.is_permanent(), "{e}");
        }
        assert!(!failed(None, "Mailbox doesn't exist").server_asks_to_wait());
        assert!(!SessionError::LoginFailed("Authentication failed".into()).server_asks_to_wait());
    }

    /// A server that offers ID is told who the client is, right after the
    /// greeting (PREAUTH here) and before anything else; a NO is ignored.
    #[tokio::test]
    async fn id_is_sent_when_offered_and_its_refusal_ignored() {
        let (listener, port) = listen().await;
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.expect("accept");
            let mut p = Peer::from_stream(tcp);
            p.send("* PREAUTH [CAPABILITY IMAP4rev1 ID] hi\r\n".into())
                .await;
            let line = p.line().await.unwrap_or_default();
            let tag = line.split(' ').next().unwrap_or_default().to_owned();
            p.send(format!("{tag} NO not today\r\n")).await;
            let tag = p.expect("NOOP").await;
            p.send(format!("{tag} OK done\r\n")).await;
            line
        });
        let mut s = session_on(port, Duration::from_secs(5)).await;
        s.run(&Command::Noop)
            .await
            .expect("noop after a refused ID");
        let line = server.await.expect("server");
        assert_eq!(
            line,
            format!(
                "a001 ID (\"name\" \"mailfeed\" \"version\" \"{}\")",
                env!("CARGO_PKG_VERSION")
            )
        );
    }

    /// Silence in the middle of a response is still bounded by the timeout,
    /// counted from the last bytes that arrived.
    #[tokio::test]
    async fn a_server_silent_mid_response_is_dropped_after_the_timeout() {
        let timeout = Duration::from_millis(400);
        let (listener, port) = listen().await;
        let server = tokio::spawn(async move {
            let mut p = Peer::accept(&listener).await;
            p.expect("NOOP").await;
            p.send("* 1 FETCH (UID 1 BODY[] {100}\r\n0123456789".into())
                .await;
            tokio::time::sleep(timeout / 2).await;
            p.send("0123456789".into()).await;
            tokio::time::sleep(Duration::from_secs(3600)).await;
            p
        });
        let mut s = session_on(port, timeout).await;
        let t0 = Instant::now();
        let e = s.run(&Command::Noop).await.expect_err("a timeout");
        assert!(
            matches!(
                e,
                SessionError::Transport(TransportError::ReadTimeout { .. })
            ),
            "{e}"
        );
        let took = t0.elapsed();
        assert!(
            took >= timeout + timeout / 2 && took < Duration::from_secs(10),
            "gave up after {took:?}"
        );
        server.abort();
    }
}
