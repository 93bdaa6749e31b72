//! whatsapp-rust's storage traits on the bridge's encrypted session
//! database ([`SessionDb`]): every record the library keeps (device keys,
//! Signal sessions, pre-keys, app-state keys, LID mappings, …) becomes a
//! row of one namespace. Structured values are JSON (the library's own
//! serde forms), raw values are stored as given.
//!
//! Owns the mapping from the traits to namespaces; holds no SQL (that is
//! `store::session`) and no policy. Every call runs on the blocking pool so
//! the transport's tasks never wait on disk inside the runtime.

use std::sync::Arc;

use whatsapp_rust::wacore::store::Device;
use whatsapp_rust::wacore::store::error::{Result, StoreError as WaStoreError};
use whatsapp_rust::wacore::store::traits::{
    DeviceStore, MsgSecretEntry, MsgSecretStore, merge_msg_secret_expiry,
    merge_msg_secret_message_ts,
};

use crate::store::StoreError;
use crate::store::session::SessionDb;

mod protocol;
mod signal;

/// Namespaces, one per kind of record.
pub(crate) mod ns {
    pub const IDENTITY: &str = "identity";
    pub const SESSION: &str = "session";
    pub const PREKEY: &str = "prekey";
    pub const SIGNED_PREKEY: &str = "signed_prekey";
    pub const SENDER_KEY: &str = "sender_key";
    pub const SYNC_KEY: &str = "sync_key";
    pub const META: &str = "meta";
    pub const VERSION: &str = "appstate_version";
    /// Followed by the collection name.
    pub const MAC: &str = "mac:";
    /// Followed by the group JID.
    pub const SKD: &str = "skd:";
    pub const LID: &str = "lid";
    pub const PN: &str = "pn";
    pub const BASE_KEY: &str = "base_key";
    pub const DEVICES: &str = "devices";
    pub const GROUP: &str = "group";
    pub const TC: &str = "tc_token";
    pub const SENT: &str = "sent_message";
    pub const PENDING: &str = "pending_inbound";
    pub const SECRET: &str = "msg_secret";
    pub const DEVICE: &str = "device";
}

/// The device record's key: one linked device per bridge.
const DEVICE_KEY: &str = "0";

/// A composite key from parts that may contain anything but U+001F.
pub(crate) fn join(parts: &[&str]) -> String {
    parts.join("\u{1f}")
}

fn db_err(e: StoreError) -> WaStoreError {
    WaStoreError::Database(Box::new(e))
}

pub(crate) fn ser<T: serde::Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| WaStoreError::Serialization(Box::new(e)))
}

pub(crate) fn de<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T> {
    serde_json::from_slice(b).map_err(|e| WaStoreError::Serialization(Box::new(e)))
}

/// The storage backend handed to whatsapp-rust.
#[derive(Clone, Debug)]
pub struct SessionBackend {
    db: Arc<SessionDb>,
}

impl SessionBackend {
    pub fn new(db: Arc<SessionDb>) -> Self {
        Self { db }
    }

    /// Runs `f` on the blocking pool.
    pub(crate) async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&SessionDb) -> std::result::Result<T, StoreError> + Send + 'static,
    {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|e| WaStoreError::Database(Box::new(e)))?
            .map_err(db_err)
    }

    pub(crate) async fn get(&self, ns: &'static str, k: String) -> Result<Option<Vec<u8>>> {
        self.run(move |db| db.kv_get(ns, &k)).await
    }

    pub(crate) async fn put(&self, ns: &'static str, k: String, v: Vec<u8>) -> Result<()> {
        self.run(move |db| db.kv_put(ns, &k, &v, 0)).await
    }

    pub(crate) async fn put_aux(
        &self,
        ns: &'static str,
        k: String,
        v: Vec<u8>,
        aux: i64,
    ) -> Result<()> {
        self.run(move |db| db.kv_put(ns, &k, &v, aux)).await
    }

    pub(crate) async fn put_many(
        &self,
        ns: &'static str,
        rows: Vec<(String, Vec<u8>)>,
        aux: i64,
    ) -> Result<()> {
        self.run(move |db| {
            let rows: Vec<(&str, &[u8], i64)> = rows
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_slice(), aux))
                .collect();
            db.kv_put_many(ns, &rows)
        })
        .await
    }

    /// Deletes keys of a namespace (fixed, or per collection).
    pub(crate) async fn delete(&self, ns: impl Into<String>, keys: Vec<String>) -> Result<u32> {
        let ns = ns.into();
        self.run(move |db| {
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            db.kv_delete(&ns, &keys)
        })
        .await
    }

    pub(crate) async fn scan(&self, ns: String) -> Result<Vec<(String, Vec<u8>, i64)>> {
        self.run(move |db| db.kv_scan(&ns)).await
    }
}

/// A stored message secret: the 32-byte secret, then `expires_at` and
/// `message_ts` as little-endian i64s (merged on conflict).
fn secret_row(secret: &[u8], expires_at: i64, message_ts: i64) -> Vec<u8> {
    let mut v = secret.to_vec();
    v.extend_from_slice(&expires_at.to_le_bytes());
    v.extend_from_slice(&message_ts.to_le_bytes());
    v
}

/// The parts of a [`secret_row`].
fn parse_secret_row(v: &[u8]) -> Option<(Vec<u8>, i64, i64)> {
    let n = v.len().checked_sub(16)?;
    let (secret, times) = v.split_at(n);
    let expires_at = i64::from_le_bytes(times[..8].try_into().ok()?);
    let message_ts = i64::from_le_bytes(times[8..].try_into().ok()?);
    Some((secret.to_vec(), expires_at, message_ts))
}

#[whatsapp_rust::async_trait]
impl MsgSecretStore for SessionBackend {
    async fn put_msg_secrets(&self, entries: Vec<MsgSecretEntry>) -> Result<usize> {
        let n = entries.len();
        self.run(move |db| {
            for e in &entries {
                let k = join(&[&e.chat, &e.sender, &e.msg_id]);
                let (mut expires_at, mut message_ts) = (e.expires_at, e.message_ts);
                if let Some(old) = db.kv_get(ns::SECRET, &k)?
                    && let Some((_, old_expiry, old_ts)) = parse_secret_row(&old)
                {
                    expires_at = merge_msg_secret_expiry(old_expiry, expires_at);
                    message_ts = merge_msg_secret_message_ts(old_ts, message_ts);
                }
                let v = secret_row(&e.secret, expires_at, message_ts);
                db.kv_put(ns::SECRET, &k, &v, expires_at)?;
            }
            Ok(())
        })
        .await?;
        Ok(n)
    }

    async fn get_msg_secret(
        &self,
        chat: &str,
        sender: &str,
        msg_id: &str,
    ) -> Result<Option<Vec<u8>>> {
        Ok(self
            .get_msg_secret_with_ts(chat, sender, msg_id)
            .await?
            .map(|(s, _)| s))
    }

    async fn get_msg_secret_with_ts(
        &self,
        chat: &str,
        sender: &str,
        msg_id: &str,
    ) -> Result<Option<(Vec<u8>, i64)>> {
        match self.get(ns::SECRET, join(&[chat, sender, msg_id])).await? {
            Some(v) => match parse_secret_row(&v) {
                Some((secret, _, message_ts)) => Ok(Some((secret, message_ts))),
                None => Err(WaStoreError::Validation(
                    "a stored message secret is truncated".into(),
                )),
            },
            None => Ok(None),
        }
    }

    async fn delete_expired_msg_secrets(&self, cutoff_timestamp: i64) -> Result<u32> {
        // Rows expire at or before the cutoff; `aux` 0 means never.
        self.run(move |db| db.kv_delete_aux_before(ns::SECRET, cutoff_timestamp.saturating_add(1)))
            .await
    }
}

#[whatsapp_rust::async_trait]
impl DeviceStore for SessionBackend {
    async fn save(&self, device: &Device) -> Result<()> {
        self.put(ns::DEVICE, DEVICE_KEY.to_string(), ser(device)?)
            .await
    }

    async fn load(&self) -> Result<Option<Device>> {
        match self.get(ns::DEVICE, DEVICE_KEY.to_string()).await? {
            Some(v) => Ok(Some(de(&v)?)),
            None => Ok(None),
        }
    }

    async fn exists(&self) -> Result<bool> {
        Ok(self
            .get(ns::DEVICE, DEVICE_KEY.to_string())
            .await?
            .is_some())
    }

    async fn create(&self) -> Result<i32> {
        if !self.exists().await? {
            self.save(&Device::new()).await?;
        }
        Ok(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Create;
    use whatsapp_rust::bytes::Bytes;
    use whatsapp_rust::wacore::store::traits::{LidPnMappingEntry, ProtocolStore, SignalStore};

    fn backend() -> (tempfile::TempDir, SessionBackend) {
        let dir = tempfile::tempdir().unwrap();
        let db = SessionDb::open(
            &dir.path().join("s"),
            &dir.path().join("k"),
            Create::IfMissing,
        )
        .unwrap();
        (dir, SessionBackend::new(Arc::new(db)))
    }

    #[tokio::test]
    async fn a_new_device_survives_a_reopen_with_its_keys() {
        let dir = tempfile::tempdir().unwrap();
        let (state, key) = (dir.path().join("s"), dir.path().join("k"));
        let noise_public;
        {
            let b = SessionBackend::new(Arc::new(
                SessionDb::open(&state, &key, Create::IfMissing).unwrap(),
            ));
            assert!(!b.exists().await.unwrap());
            b.create().await.unwrap();
            let d = b.load().await.unwrap().expect("created device");
            noise_public = d.noise_key.public_key.public_key_bytes().to_vec();
        }
        let b = SessionBackend::new(Arc::new(
            SessionDb::open(&state, &key, Create::Never).unwrap(),
        ));
        let d = b.load().await.unwrap().expect("device after reopen");
        assert_eq!(
            d.noise_key.public_key.public_key_bytes().to_vec(),
            noise_public
        );
        // The private key material is not readable in any file.
        let private = d.noise_key.private_key.serialize().to_vec();
        for entry in std::fs::read_dir(&state).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            assert!(
                !bytes
                    .windows(private.len())
                    .any(|w| w == private.as_slice())
            );
        }
    }

    #[tokio::test]
    async fn signal_records_round_trip() {
        let (_d, b) = backend();
        b.put_identity("a@s.whatsapp.net.0", [7; 32]).await.unwrap();
        assert_eq!(
            b.load_identity("a@s.whatsapp.net.0").await.unwrap(),
            Some([7; 32])
        );
        b.store_prekeys_batch(
            &[
                (3, Bytes::from_static(b"p3")),
                (12, Bytes::from_static(b"p12")),
            ],
            false,
        )
        .await
        .unwrap();
        assert_eq!(b.get_max_prekey_id().await.unwrap(), 12);
        assert_eq!(b.load_prekey(3).await.unwrap().as_deref(), Some(&b"p3"[..]));
        b.remove_prekey(12).await.unwrap();
        assert_eq!(b.get_max_prekey_id().await.unwrap(), 3);
        b.put_session("x", b"s1").await.unwrap();
        assert!(b.has_session("x").await.unwrap());
        b.delete_session("x").await.unwrap();
        assert!(!b.has_session("x").await.unwrap());
    }

    #[tokio::test]
    async fn lid_mappings_follow_a_number_change() {
        let (_d, b) = backend();
        let entry = |lid: &str, pn: &str| LidPnMappingEntry {
            lid: lid.into(),
            phone_number: pn.into(),
            created_at: 1,
            updated_at: 1,
            learning_source: "test".into(),
        };
        b.put_lid_mapping(&entry("100", "4915")).await.unwrap();
        assert_eq!(b.get_pn_mapping("4915").await.unwrap().unwrap().lid, "100");
        b.put_lid_mapping(&entry("100", "4916")).await.unwrap();
        assert!(b.get_pn_mapping("4915").await.unwrap().is_none());
        assert_eq!(
            b.get_lid_mapping("100")
                .await
                .unwrap()
                .unwrap()
                .phone_number,
            "4916"
        );
        assert_eq!(b.get_all_lid_mappings().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn sent_messages_are_taken_once_and_secrets_merge() {
        let (_d, b) = backend();
        b.store_sent_message("c", "m", b"payload").await.unwrap();
        assert_eq!(
            b.take_sent_message("c", "m").await.unwrap().as_deref(),
            Some(&b"payload"[..])
        );
        assert!(b.take_sent_message("c", "m").await.unwrap().is_none());
        let entry = |expires_at| MsgSecretEntry {
            chat: Arc::from("c"),
            sender: Arc::from("s"),
            msg_id: Arc::from("m"),
            secret: [9; 32],
            expires_at,
            message_ts: 5,
        };
        b.put_msg_secrets(vec![entry(100)]).await.unwrap();
        b.put_msg_secrets(vec![entry(50)]).await.unwrap();
        assert_eq!(
            b.delete_expired_msg_secrets(60).await.unwrap(),
            0,
            "later deadline kept"
        );
        assert_eq!(
            b.get_msg_secret_with_ts("c", "s", "m").await.unwrap(),
            Some((vec![9; 32], 5))
        );
        assert_eq!(b.delete_expired_msg_secrets(100).await.unwrap(), 1);
    }
}
