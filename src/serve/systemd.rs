//! Telling systemd how the daemon is doing (`Type=notify`): `READY=1` once
//! the socket listens, `STOPPING=1` on shutdown, and `WATCHDOG=1` at half
//! the `WatchdogSec=` interval while the agent thread shows signs of life:
//! a recent beat, or model layers computed since the last ping (a stuck
//! agent stops the pings, and systemd restarts the service; the queue
//! survives that). Outside systemd (`$NOTIFY_SOCKET` unset) every
//! call does nothing.
//!
//! The notify socket is a local Unix datagram socket: no network.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use tokio_util::sync::CancellationToken;

use super::Shared;

/// Says READY and starts the watchdog pings when systemd asked for them.
pub fn ready(shared: &Arc<Shared>, shutdown: &CancellationToken) {
    if std::env::var_os("NOTIFY_SOCKET").is_none() {
        return;
    }
    if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        tracing::warn!(error = %e, "telling systemd we are ready failed");
    }
    let Some(interval) = sd_notify::watchdog_enabled() else {
        return;
    };
    tracing::info!(
        interval_ms = interval.as_millis() as u64,
        "systemd watchdog on"
    );
    let (shared, shutdown) = (shared.clone(), shutdown.clone());
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval / 2);
        let mut last_layers = crate::llm::model::layers_computed();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            let silent_ms = crate::clock::now_ms() - shared.agent_beat.load(Ordering::Relaxed);
            // A forward pass still running is a sign of life too: a long
            // prefill on a slow CPU beats only when it ends.
            let layers = crate::llm::model::layers_computed();
            let computing = layers != last_layers;
            last_layers = layers;
            if silent_ms > interval.as_millis() as i64 && !computing {
                tracing::warn!(
                    silent_ms,
                    "the agent shows no sign of life; not pinging the watchdog"
                );
                continue;
            }
            if let Err(e) = sd_notify::notify(&[sd_notify::NotifyState::Watchdog]) {
                tracing::warn!(error = %e, "pinging the systemd watchdog failed");
            }
        }
    });
}

/// Says STOPPING.
pub fn stopping() {
    if std::env::var_os("NOTIFY_SOCKET").is_some() {
        let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
    }
}
