//! The retention purge: once at start and then once a day, erases what is
//! older than `[retention]` allows (conversations, kept chats, documents,
//! audit records), through the same erasure as `/forget`. The bridge
//! purges its own media inbox. Nothing is purged until the clock is
//! trusted ([`crate::timesync`]): a clock far ahead would erase everything.
//!
//! Must not hold SQL.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Shared;
use crate::audit::{Action, Actor, Entry};
use crate::config::Retention;
use crate::store::{Erase, Store, StoreError};

const DAY: Duration = Duration::from_secs(86_400);

/// How often an untrusted clock is looked at again.
const WAIT_FOR_CLOCK: Duration = Duration::from_secs(10);

/// Runs until `shutdown` is cancelled.
pub async fn run(shared: Arc<Shared>, shutdown: CancellationToken) {
    loop {
        while shared.clock.check().is_err() {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(WAIT_FOR_CLOCK) => {}
            }
        }
        let s = shared.clone();
        match tokio::task::spawn_blocking(move || s.with_store(|st| purge(st, s.config.retention)))
            .await
        {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "the retention purge failed"),
            Err(e) => tracing::error!(error = %e, "the retention task panicked"),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(DAY) => {}
        }
    }
}

/// Applies `r` to `store` now.
pub fn purge(store: &mut Store, r: Retention) -> Result<(), StoreError> {
    let now = crate::clock::now_ms();
    for (kept, days) in [(false, r.messages_days), (true, r.memory_days)] {
        if let Some(before_ms) = Retention::cutoff(days, now) {
            let e = store.erase(&Erase::Older { kept, before_ms }, i64::MAX, Actor::Serve)?;
            if e.messages > 0 {
                tracing::info!(messages = e.messages, kept, "retention purge");
            }
        }
    }
    if let Some(before_ms) = Retention::cutoff(r.documents_days, now) {
        store.purge_documents(before_ms, Actor::Serve)?;
    }
    if let Some(before_ms) = Retention::cutoff(r.audit_days, now) {
        store.purge_audit(
            before_ms,
            &Entry::new(Actor::Serve, Action::Purged, "retention"),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_purge_with_the_defaults_keeps_fresh_data() {
        let (_d, mut s) = crate::store::temp_store();
        s.enqueue_inbound(&crate::store::test_message("c", "1", "hello"))
            .unwrap();
        purge(&mut s, Retention::default()).unwrap();
        assert_eq!(s.stats().unwrap().messages, 1);
    }
}
