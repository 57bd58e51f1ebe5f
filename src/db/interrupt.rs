//! SIGTERM, SIGINT, SIGHUP and SIGQUIT: cancel the statement that is running, so the server rolls it back
//! and frees the advisory lock at once.
//!
//! Dropping the client is not enough: a backend busy in a long statement does not notice a
//! closed socket until the statement ends. So the signal sends PostgreSQL's cancel
//! request, the running code sees the cancellation error, and turns it into
//! `Error::Interrupted` on its normal cleanup path.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio_postgres::CancelToken;

use crate::db::tls::MakeTls;
use crate::error::{Error, Result, Signal};

/// The open connections a signal cancels the statements of: one for a run, one a
/// target in flight for a fleet.
type Open = Arc<Mutex<Vec<(u64, CancelToken, MakeTls)>>>;

#[derive(Clone)]
pub struct Interrupt {
    signal: watch::Receiver<Option<Signal>>,
    sender: Arc<watch::Sender<Option<Signal>>>,
    running: Open,
    next_id: Arc<AtomicU64>,
}

impl Default for Interrupt {
    fn default() -> Self {
        let (sender, signal) = watch::channel(None);
        Interrupt {
            signal,
            sender: Arc::new(sender),
            running: Arc::new(Mutex::new(Vec::new())),
            next_id: Arc::new(AtomicU64::new(0)),
        }
    }
}

/// A connection a signal cancels, until this is dropped (with its session).
pub struct Watched {
    running: Open,
    id: u64,
}

impl Drop for Watched {
    fn drop(&mut self) {
        if let Ok(mut running) = self.running.lock() {
            running.retain(|(id, _, _)| *id != self.id);
        }
    }
}

impl Interrupt {
    /// Listens for SIGINT, SIGTERM, SIGHUP and SIGQUIT for the rest of the process.
    pub fn install() -> std::io::Result<Interrupt> {
        use tokio::signal::unix::{SignalKind, signal};
        let interrupt = Interrupt::default();
        let mut sigint = signal(SignalKind::interrupt())?;
        let mut sigterm = signal(SignalKind::terminate())?;
        let mut sighup = signal(SignalKind::hangup())?;
        let mut sigquit = signal(SignalKind::quit())?;
        let trigger = interrupt.clone();
        tokio::spawn(async move {
            let received = tokio::select! {
                _ = sigint.recv() => Signal::Interrupt,
                _ = sigterm.recv() => Signal::Terminate,
                _ = sighup.recv() => Signal::Hangup,
                _ = sigquit.recv() => Signal::Quit,
            };
            trigger.trigger(received).await;
        });
        Ok(interrupt)
    }

    /// Records the signal and cancels whatever statement is running.
    pub async fn trigger(&self, signal: Signal) {
        self.sender.send_replace(Some(signal));
        let running = self.running.lock().map(|r| r.clone()).unwrap_or_default();
        let cancels = running.into_iter().map(|(_, token, tls)| async move {
            let cancel = token.cancel_query(tls);
            if let Err(e) = tokio::time::timeout(std::time::Duration::from_secs(1), cancel).await {
                tracing::warn!("could not cancel the running statement: {e}");
            }
        });
        futures_util::future::join_all(cancels).await;
    }

    /// A connection whose statements a signal should cancel, while the result lives.
    pub fn watch_connection(&self, token: CancelToken, tls: MakeTls) -> Watched {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut running) = self.running.lock() {
            running.push((id, token, tls));
        }
        Watched {
            running: Arc::clone(&self.running),
            id,
        }
    }

    pub fn received(&self) -> Option<Signal> {
        *self.signal.borrow()
    }

    /// `Err(Interrupted)` once a signal has arrived.
    pub fn check(&self) -> Result<()> {
        match self.received() {
            Some(signal) => Err(Error::Interrupted(signal)),
            None => Ok(()),
        }
    }

    /// Completes when a signal arrives.
    pub async fn wait(&self) -> Signal {
        let mut signal = self.signal.clone();
        loop {
            if let Some(s) = *signal.borrow_and_update() {
                return s;
            }
            if signal.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}
