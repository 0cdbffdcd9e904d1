//! The way into a session: TCP, implicit TLS or STARTTLS (never falling back
//! to plaintext), the greeting, capabilities, login, ID and COMPRESS; and the
//! options every connection of an account shares, built once from the
//! configuration for `sync`, `check` and the service alike.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use super::{READ_START, Session, SessionError, Tap, TapLine};
use crate::config::{AccountConfig, Auth, Config, Security};
use crate::imap::{
    Capabilities, Command, Greeted, Limits, ResponseReader, Tags, Unasked, Untagged, greeting,
};
use crate::oauth2::Tokens;
use crate::transport::{Link, Presented};

/// How to connect: limits and timeouts shared by every session.
#[derive(Clone)]
pub struct ConnectOptions {
    pub timeout: Duration,
    pub limits: Limits,
    pub tls: Arc<rustls::ClientConfig>,
    /// The account's access tokens when it logs in with OAuth2.
    pub oauth2: Option<Arc<Tokens>>,
}

/// The options for `account`: timeouts and limits from `[sync]`, its TLS
/// trust, and its token source when it logs in with OAuth2.
pub fn connect_options(
    config: &Config,
    account: &AccountConfig,
) -> Result<ConnectOptions, SessionError> {
    Ok(connect_options_observed(config, account)?.0)
}

/// [`connect_options`], and the handle on the certificate the server
/// presents (for `check`).
pub fn connect_options_observed(
    config: &Config,
    account: &AccountConfig,
) -> Result<(ConnectOptions, Presented), SessionError> {
    let setup = |source| SessionError::TlsSetup {
        account: account.name.clone(),
        source,
    };
    let (tls, presented) =
        crate::transport::tls_setup(account.ca_file.as_deref(), account.tls_fingerprint)
            .map_err(setup)?;
    // The token endpoint is trusted through the system's roots (and the
    // same `ca_file`), never through the IMAP server's pin.
    let endpoint_tls = crate::transport::tls_config(account.ca_file.as_deref()).map_err(setup)?;
    let oauth2 = Tokens::for_account(account, endpoint_tls, config.sync.timeout);
    Ok((
        ConnectOptions {
            timeout: config.sync.timeout,
            limits: Limits {
                max_literal: config.sync.max_message_size,
                max_line: usize::try_from(config.sync.max_line_size).unwrap_or(usize::MAX),
                ..Limits::default()
            },
            tls,
            oauth2,
        },
        presented,
    ))
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
        // Without a tap of its own (`check` has one), the connection feeds
        // the process's live conversation when the HTTP listener runs.
        let conversation_tap = tap.is_none();
        let mut tap = tap.or_else(|| crate::conversation::tap_for(&account.name));
        let conversation_tap = conversation_tap && tap.is_some();
        note(&mut tap, &format!("connected to {}", link.addr()));
        if account.security == Security::Tls {
            link = link.start_tls(opts.tls.clone(), &account.host).await?;
            note(&mut tap, "TLS established, certificate verified");
        }
        let mut s = Session {
            link,
            reader: ResponseReader::new(opts.limits),
            buf: vec![0; READ_START],
            pending: VecDeque::new(),
            caps: Capabilities::default(),
            tap,
            conversation_tap,
            tags: Tags::default(),
            account: account.name.clone(),
            qresync_enabled: false,
            bye: None,
            unasked: Unasked::default(),
            read_write: false,
            idle: None,
            watching: None,
            opened: None,
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

    /// Reads the greeting; true when it was PREAUTH.
    async fn greeting(&mut self) -> Result<bool, SessionError> {
        let r = self.next_response().await?;
        let (preauth, caps) = match greeting(r.response) {
            Greeted::LoginNeeded(caps) => (false, caps),
            Greeted::Preauthenticated(caps) => (true, caps),
            Greeted::Refused(text) => return Err(SessionError::GreetingBye(text)),
            Greeted::Unexpected(why) => return Err(SessionError::Unexpected(why)),
        };
        if let Some(caps) = caps {
            self.caps = caps;
        }
        Ok(preauth)
    }

    pub(crate) async fn refresh_capabilities(&mut self) -> Result<(), SessionError> {
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
