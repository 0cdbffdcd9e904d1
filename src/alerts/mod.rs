//! Alerts: every second, each `[[alerts]]` entry's [`rules::Rules`] look at
//! a copy of the health board; an alert they raise goes to that entry's
//! receivers (webhook, command), each with a queue of its own delivered in
//! order and retried with backoff until it is taken, so a recovery never
//! overtakes its failure and a receiver that is down delays only itself.
//! Never touches IMAP or SQL; reads the board, writes to receivers.

pub mod deliver;
pub mod payload;
pub mod rules;
pub mod settings;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use settings::AlertConfig;

use crate::health::Board;
use crate::service::Backoff;

/// How often the board is looked at.
const TICK: Duration = Duration::from_secs(1);
/// Alerts waiting per receiver; beyond this new ones are dropped and
/// logged (a receiver down for days must not grow memory without bound).
const QUEUE: usize = 256;
/// Retry delays for a receiver that did not take an alert.
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(300);

enum Receiver {
    Webhook(settings::Webhook, Arc<rustls::ClientConfig>),
    Command(Vec<String>),
}

impl Receiver {
    fn shown(&self) -> String {
        match self {
            Receiver::Webhook(h, _) => format!("webhook {}", h.shown()),
            Receiver::Command(c) => format!("command {}", c.first().map_or("", |s| s.as_str())),
        }
    }

    async fn send(&self, body: Vec<u8>) -> Result<(), deliver::DeliverError> {
        match self {
            Receiver::Webhook(h, tls) => deliver::webhook(h, tls, body).await,
            Receiver::Command(argv) => deliver::command(argv, body).await,
        }
    }
}

/// Starts the alert loop and one delivery task per receiver on `tracker`.
pub fn start(
    configs: &[AlertConfig],
    board: Board,
    cancel: CancellationToken,
    tracker: &TaskTracker,
) -> Result<(), crate::transport::TransportError> {
    if configs.is_empty() {
        return Ok(());
    }
    let tls = crate::transport::tls_config(None)?;
    let mut entries = Vec::new();
    for c in configs {
        let mut queues = Vec::new();
        let receivers = c
            .webhook
            .clone()
            .map(|h| Receiver::Webhook(h, tls.clone()))
            .into_iter()
            .chain(c.command.clone().map(Receiver::Command));
        for r in receivers {
            let (tx, rx) = mpsc::channel(QUEUE);
            tracker.spawn(deliver_loop(r, rx, cancel.clone()));
            queues.push(tx);
        }
        entries.push((rules::Rules::new(c.after), queues));
    }
    tracker.spawn(async move {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
            let snapshot = board.snapshot();
            let now = SystemTime::now();
            for (rules, queues) in &mut entries {
                for alert in rules.step(&snapshot, now) {
                    tracing::warn!(
                        event = alert.event.as_str(),
                        what = %alert.key.shown(),
                        "alert: {}",
                        alert.last_error.as_deref().unwrap_or("")
                    );
                    for q in queues.iter() {
                        if q.try_send(alert.clone()).is_err() {
                            tracing::error!(what = %alert.key.shown(), "alert dropped: the receiver's queue is full");
                        }
                    }
                }
            }
        }
    });
    Ok(())
}

/// Delivers alerts to one receiver in order, retrying each until taken.
async fn deliver_loop(
    receiver: Receiver,
    mut rx: mpsc::Receiver<rules::Alert>,
    cancel: CancellationToken,
) {
    let mut backoff = Backoff::new(RETRY_MIN, RETRY_MAX);
    loop {
        let alert = tokio::select! {
            _ = cancel.cancelled() => return,
            a = rx.recv() => match a { Some(a) => a, None => return },
        };
        let mut attempt = 1u32;
        loop {
            let body = payload::render(&alert, SystemTime::now());
            let sent = tokio::select! {
                _ = cancel.cancelled() => return,
                r = receiver.send(body) => r,
            };
            match sent {
                Ok(()) => {
                    tracing::info!(receiver = %receiver.shown(), event = alert.event.as_str(), what = %alert.key.shown(), attempt, "alert delivered");
                    backoff.reset();
                    break;
                }
                Err(e) => {
                    let delay = backoff.next_delay(Duration::ZERO);
                    tracing::warn!(receiver = %receiver.shown(), attempt, retry_in_ms = delay.as_millis() as u64, "alert not delivered: {e}");
                    attempt += 1;
                    tokio::select! {
                        _ = cancel.cancelled() => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }
}
