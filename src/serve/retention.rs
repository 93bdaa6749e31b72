//! The retention purge: once at start and then once a day, erases what is
//! older than `[retention]` allows (conversations, kept chats, documents,
//! audit records), through the same erasure as `/forget`. The bridge
//! purges its own media inbox.
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

/// Runs until `shutdown` is cancelled.
pub async fn run(shared: Arc<Shared>, shutdown: CancellationToken) {
    loop {
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
    use crate::store::{NewMessage, temp_store};

    #[test]
    fn old_conversations_go_and_unanswered_or_recent_ones_stay() {
        let (_d, mut s) = temp_store();
        let day = 86_400_000;
        let now = crate::clock::now_ms();
        let msg = |id, ts_ms| NewMessage {
            chat_id: "c",
            msg_id: id,
            sender: "c",
            outgoing: false,
            text: id,
            ts_ms,
        };
        for (id, age_days) in [("old", 100), ("old-waiting", 100), ("new", 1)] {
            s.enqueue_inbound(&msg(id, now - age_days * day)).unwrap();
        }
        for p in s.pending_heads().unwrap() {
            if p.msg_id == "old" {
                s.record_reply(&p, "reply").unwrap();
            }
        }
        // `old` was answered; pending_heads shows one per chat, so answer
        // it first, then `old-waiting` is the head and stays unanswered.
        purge(&mut s, Retention::default()).unwrap();
        // `old` goes with its reply (stamped now, but answering it).
        assert_eq!(s.stats().unwrap().messages, 2);
        let waiting: Vec<String> = s
            .pending_heads()
            .unwrap()
            .into_iter()
            .map(|p| p.msg_id)
            .collect();
        assert_eq!(waiting, ["old-waiting"]);
        let log = s.audit_tail(1).unwrap();
        assert_eq!(log[0].action, "purged");
    }
}
