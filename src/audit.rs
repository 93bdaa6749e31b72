//! The audit log's hash chain, as pure code: what an entry holds (who,
//! what, on which object, with which outcome; never message content), how
//! a record's hash binds it to the one before, and how a chain read back
//! is checked. Editing, deleting, reordering or inserting a record breaks
//! the chain at that record; rewriting the whole chain is caught by
//! comparing its head with one sent to the owner's phone earlier (`/audit`).
//!
//! The store keeps the records (`store::audit`); this module must not do
//! I/O.

use sha2::{Digest, Sha256};

/// Who did it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// The owner, through one of their chats (the chat id).
    Owner(String),
    /// Someone at the box's terminal running `hearth …`.
    Local,
    /// A sender on the transport (their identity: number or LID).
    Sender(String),
    /// The daemon on its own (the reminder clock, the retention purge).
    Serve,
    /// The WhatsApp bridge (pairing, unpairing, its key).
    Bridge,
}

impl Actor {
    pub fn render(&self) -> String {
        match self {
            Actor::Owner(chat) => format!("owner@{chat}"),
            Actor::Local => "local".into(),
            Actor::Sender(who) => format!("sender {who}"),
            Actor::Serve => "serve".into(),
            Actor::Bridge => "bridge".into(),
        }
    }
}

/// What was done. The names are stable: they are what `hearth audit tail`
/// shows and what the hashes cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    KeyCreated,
    ConfigChanged,
    ServeStarted,
    RootAdded,
    RootRemoved,
    ExclusionAdded,
    ExclusionRemoved,
    FileRefused,
    MessageRefused,
    SenderAsked,
    SenderApproved,
    SenderDenied,
    Command,
    ReminderFired,
    ChatKept,
    ChatForgotten,
    Erased,
    Purged,
    Exported,
    Paired,
    Unpaired,
    KeyRotated,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::KeyCreated => "key-created",
            Action::ConfigChanged => "config-changed",
            Action::ServeStarted => "serve-started",
            Action::RootAdded => "root-added",
            Action::RootRemoved => "root-removed",
            Action::ExclusionAdded => "exclusion-added",
            Action::ExclusionRemoved => "exclusion-removed",
            Action::FileRefused => "file-refused",
            Action::MessageRefused => "message-refused",
            Action::SenderAsked => "sender-asked",
            Action::SenderApproved => "sender-approved",
            Action::SenderDenied => "sender-denied",
            Action::Command => "command",
            Action::ReminderFired => "reminder-fired",
            Action::ChatKept => "chat-kept",
            Action::ChatForgotten => "chat-forgotten",
            Action::Erased => "erased",
            Action::Purged => "purged",
            Action::Exported => "exported",
            Action::Paired => "paired",
            Action::Unpaired => "unpaired",
            Action::KeyRotated => "key-rotated",
        }
    }
}

/// How it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Done,
    Refused,
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Done => "done",
            Outcome::Refused => "refused",
            Outcome::Failed => "failed",
        }
    }
}

/// One event to append: no message text, file contents or prompts; the
/// object names what was acted on (a path, a chat, a command's name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub actor: Actor,
    pub action: Action,
    pub object: String,
    pub outcome: Outcome,
}

impl Entry {
    pub fn new(actor: Actor, action: Action, object: impl Into<String>) -> Self {
        Self {
            actor,
            action,
            object: object.into(),
            outcome: Outcome::Done,
        }
    }

    pub fn outcome(mut self, outcome: Outcome) -> Self {
        self.outcome = outcome;
        self
    }
}

/// A sha256 digest.
pub type Hash = [u8; 32];

/// The `prev` of the first record ever written.
pub const GENESIS: Hash = [0; 32];

/// A record as stored: the entry's fields as text, its place in the chain
/// and the two hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub seq: i64,
    pub ts_ms: i64,
    pub actor: String,
    pub action: String,
    pub object: String,
    pub outcome: String,
    pub prev: Vec<u8>,
    pub hash: Vec<u8>,
}

impl Record {
    /// The record that follows a chain whose last record is `(seq, hash)`.
    pub fn next(after: Option<(i64, Hash)>, ts_ms: i64, e: &Entry) -> Record {
        let (seq, prev) = match after {
            Some((seq, hash)) => (seq + 1, hash),
            None => (1, GENESIS),
        };
        let mut r = Record {
            seq,
            ts_ms,
            actor: e.actor.render(),
            action: e.action.as_str().into(),
            object: e.object.clone(),
            outcome: e.outcome.as_str().into(),
            prev: prev.to_vec(),
            hash: Vec::new(),
        };
        r.hash = r.digest().to_vec();
        r
    }

    /// What the record's hash must be: sha256 over a domain tag, the
    /// numbers, every text field with its length, and `prev`.
    pub fn digest(&self) -> Hash {
        let mut h = Sha256::new();
        h.update(b"hearth-audit-v1\0");
        h.update(self.seq.to_be_bytes());
        h.update(self.ts_ms.to_be_bytes());
        for field in [&self.actor, &self.action, &self.object, &self.outcome] {
            h.update((field.len() as u64).to_be_bytes());
            h.update(field.as_bytes());
        }
        h.update((self.prev.len() as u64).to_be_bytes());
        h.update(&self.prev);
        h.finalize().into()
    }

    /// The record as JSON (hashes in hex), for `hearth audit tail --json`
    /// and `hearth export`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "seq": self.seq,
            "ts_ms": self.ts_ms,
            "actor": self.actor,
            "action": self.action,
            "object": self.object,
            "outcome": self.outcome,
            "prev": crate::hex::encode(&self.prev),
            "hash": crate::hex::encode(&self.hash),
        })
    }

    /// The hash as stored, when it has the right length.
    pub fn stored_hash(&self) -> Option<Hash> {
        self.hash.as_slice().try_into().ok()
    }
}

/// Where a chain starts: the genesis, or the last record a retention
/// purge removed (its seq and hash are kept as the anchor).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Anchor {
    pub seq: i64,
    pub hash: Hash,
}

impl Anchor {
    pub const GENESIS: Anchor = Anchor {
        seq: 0,
        hash: GENESIS,
    };
}

/// The first place a chain is broken, named by the record found there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Break {
    #[error(
        "record #{found}: expected record #{expected} here; records were deleted, inserted or renumbered"
    )]
    OutOfSequence { expected: i64, found: i64 },
    #[error(
        "record #{seq}: does not follow record #{}; a record before it was edited, removed or reordered",
        seq - 1
    )]
    Unlinked { seq: i64 },
    #[error("record #{seq}: its contents do not match its hash; it was edited")]
    Edited { seq: i64 },
    #[error("record #{seq} does not exist (the log ends at #{last})")]
    NoSuchRecord { seq: i64, last: i64 },
    #[error("record #{seq}: its hash is not the one you kept; the log was rewritten")]
    HeadMismatch { seq: i64 },
}

impl Break {
    /// The record the break is reported at.
    pub fn seq(&self) -> i64 {
        match self {
            Break::OutOfSequence { found, .. } => *found,
            Break::Unlinked { seq }
            | Break::Edited { seq }
            | Break::NoSuchRecord { seq, .. }
            | Break::HeadMismatch { seq } => *seq,
        }
    }
}

/// An intact chain: how many records, and its last one (`None` when empty).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    pub records: u64,
    pub head: Option<(i64, Hash)>,
}

/// Checks records read back in ascending `seq` order, starting from
/// `anchor`; stops at the first break.
pub fn verify(
    anchor: Anchor,
    records: impl IntoIterator<Item = Record>,
) -> Result<Verified, Break> {
    let mut last = (anchor.seq, anchor.hash);
    let mut n = 0;
    for r in records {
        let expected = last.0 + 1;
        if r.seq != expected {
            return Err(Break::OutOfSequence {
                expected,
                found: r.seq,
            });
        }
        if r.prev != last.1 {
            return Err(Break::Unlinked { seq: r.seq });
        }
        match r.stored_hash() {
            Some(h) if h == r.digest() => last = (r.seq, h),
            _ => return Err(Break::Edited { seq: r.seq }),
        }
        n += 1;
    }
    Ok(Verified {
        records: n,
        head: (n > 0).then_some(last),
    })
}

/// One sentence for `hearth audit verify` and `/audit`: intact (with the
/// head to keep) or the first broken record.
pub fn describe(result: &Result<Verified, Break>, kept: Option<(i64, Hash)>) -> String {
    match result {
        Err(b) => format!("audit log BROKEN: {b}"),
        Ok(Verified { head: None, .. }) => "audit log intact: no records yet".into(),
        Ok(Verified {
            records,
            head: Some((seq, hash)),
        }) => format!(
            "audit log intact: {records} record(s){}, head {}",
            kept.map(|(s, _)| format!(", record #{s} matches the head you kept"))
                .unwrap_or_default(),
            format_head(*seq, hash)
        ),
    }
}

/// `SEQ:HEX` as `/audit` and `hearth audit tail` print a head.
pub fn parse_head(s: &str) -> Option<(i64, Hash)> {
    let (seq, hex) = s.trim().trim_start_matches('#').split_once([':', ' '])?;
    let seq = seq.trim().parse().ok()?;
    let bytes = crate::hex::decode(hex.trim())?;
    Some((seq, bytes.try_into().ok()?))
}

/// The inverse of [`parse_head`].
pub fn format_head(seq: i64, hash: &Hash) -> String {
    format!("{seq}:{}", crate::hex::encode(hash))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng, rngs::StdRng};

    fn chain(n: usize, rng: &mut StdRng) -> Vec<Record> {
        let mut out: Vec<Record> = Vec::new();
        for i in 0..n {
            let after = out
                .last()
                .map(|r| (r.seq, r.stored_hash().expect("32 bytes")));
            let object: String = (0..rng.random_range(0..12))
                .map(|_| rng.random_range(b'a'..=b'z') as char)
                .collect();
            let e = Entry::new(Actor::Owner(format!("chat{i}")), Action::Command, object);
            out.push(Record::next(after, rng.random_range(0..1 << 40), &e));
        }
        out
    }

    #[test]
    fn an_untouched_chain_verifies_and_reports_its_head() {
        let mut rng = StdRng::seed_from_u64(1);
        let c = chain(5, &mut rng);
        let v = verify(Anchor::GENESIS, c.clone()).expect("intact");
        assert_eq!(v.records, 5);
        assert_eq!(v.head.map(|h| h.0), Some(5));
        assert_eq!(
            verify(Anchor::GENESIS, Vec::new()),
            Ok(Verified {
                records: 0,
                head: None
            })
        );
        let head = v.head.expect("head");
        assert_eq!(parse_head(&format_head(head.0, &head.1)), Some(head));
    }

    #[test]
    fn fields_are_length_prefixed_so_moving_a_boundary_changes_the_hash() {
        let mut a = Record::next(None, 7, &Entry::new(Actor::Local, Action::RootAdded, "ab"));
        let h = a.digest();
        a.action.push('a');
        a.object.remove(0);
        assert_ne!(a.digest(), h);
    }

    /// Property: any single edit, deletion, swap or insertion is reported
    /// at the first record it affects.
    #[test]
    fn every_kind_of_tampering_is_found_at_the_record_it_touched() {
        let mut rng = StdRng::seed_from_u64(42);
        for round in 0..2000 {
            let n = rng.random_range(1..12);
            let good = chain(n, &mut rng);
            let mut bad = good.clone();
            let i = rng.random_range(0..n);
            let expect_at: i64 = match round % 4 {
                0 => {
                    // Edit one byte of one field.
                    let r = &mut bad[i];
                    match rng.random_range(0..8) {
                        0 => r.seq += rng.random_range(1..5),
                        1 => r.ts_ms ^= 1 << rng.random_range(0..40),
                        2 => r.actor.push('x'),
                        3 => r.action = "erased".into(),
                        4 => r.object.push('!'),
                        5 => r.outcome = "refused".into(),
                        6 => r.prev[rng.random_range(0..32)] ^= 1 << rng.random_range(0..8),
                        _ => r.hash[rng.random_range(0..32)] ^= 1 << rng.random_range(0..8),
                    }
                    i as i64 + 1
                }
                1 if n > 1 && i + 1 < n => {
                    bad.remove(i);
                    i as i64 + 2
                }
                2 if n > 1 && i + 1 < n => {
                    bad.swap(i, i + 1);
                    i as i64 + 2
                }
                3 => {
                    // A forged record slipped in, hashed correctly on its own.
                    let mut forged = good[i].clone();
                    forged.object.push_str(" forged");
                    forged.hash = forged.digest().to_vec();
                    bad.insert(i + 1, forged);
                    i as i64 + 1
                }
                _ => continue,
            };
            let err = verify(Anchor::GENESIS, bad.clone()).expect_err("tampering is found");
            // A record renumbered past the end is reported under its new number.
            let at = err.seq();
            assert!(
                at == expect_at
                    || matches!(err, Break::OutOfSequence { expected, .. } if expected == expect_at),
                "round {round}: {err} (expected at #{expect_at})"
            );
        }
    }

    #[test]
    fn a_chain_cut_by_retention_verifies_from_its_anchor_only() {
        let mut rng = StdRng::seed_from_u64(3);
        let c = chain(6, &mut rng);
        let anchor = Anchor {
            seq: 2,
            hash: c[1].stored_hash().expect("32 bytes"),
        };
        assert!(verify(anchor, c[2..].to_vec()).is_ok());
        assert!(verify(Anchor::GENESIS, c[2..].to_vec()).is_err());
        assert!(verify(anchor, c[3..].to_vec()).is_err());
    }
}
