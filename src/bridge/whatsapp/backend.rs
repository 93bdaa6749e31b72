//! whatsapp-rust's storage traits on the bridge's encrypted session
//! database ([`SessionDb`]): every record the library keeps (device keys,
//! Signal sessions, pre-keys, app-state keys, LID mappings, …) becomes a
//! row of one namespace. Structured values are JSON (the library's own
//! serde forms), raw values are stored as given.
//!
//! Owns the mapping from the traits to namespaces; holds no SQL (that is
//! `store::session`) and no policy. Every call runs on the blocking pool so
//! the transport's tasks never wait on disk inside the runtime.

use std::collections::HashMap;
use std::sync::Arc;

use whatsapp_rust::bytes::Bytes;
use whatsapp_rust::wacore::appstate::hash::HashState;
use whatsapp_rust::wacore::appstate::processor::AppStateMutationMAC;
use whatsapp_rust::wacore::store::Device;
use whatsapp_rust::wacore::store::error::{Result, StoreError as WaStoreError};
use whatsapp_rust::wacore::store::traits::{
    AppStateSyncKey, AppSyncStore, DeviceListRecord, DeviceStore, LidPnMappingEntry,
    MsgSecretEntry, MsgSecretStore, ProtocolStore, SignalStore, TcTokenEntry,
    merge_msg_secret_expiry, merge_msg_secret_message_ts,
};

use crate::store::StoreError;
use crate::store::session::SessionDb;

/// Namespaces, one per kind of record.
mod ns {
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
fn join(parts: &[&str]) -> String {
    parts.join("\u{1f}")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn db_err(e: StoreError) -> WaStoreError {
    WaStoreError::Database(Box::new(e))
}

fn ser<T: serde::Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| WaStoreError::Serialization(Box::new(e)))
}

fn de<T: serde::de::DeserializeOwned>(b: &[u8]) -> Result<T> {
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
    async fn run<T, F>(&self, f: F) -> Result<T>
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

    async fn get(&self, ns: &'static str, k: String) -> Result<Option<Vec<u8>>> {
        self.run(move |db| db.kv_get(ns, &k)).await
    }

    async fn put(&self, ns: &'static str, k: String, v: Vec<u8>) -> Result<()> {
        self.run(move |db| db.kv_put(ns, &k, &v, 0)).await
    }

    async fn put_aux(&self, ns: &'static str, k: String, v: Vec<u8>, aux: i64) -> Result<()> {
        self.run(move |db| db.kv_put(ns, &k, &v, aux)).await
    }

    async fn put_many(
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

    async fn delete(&self, ns: &'static str, keys: Vec<String>) -> Result<u32> {
        self.run(move |db| {
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            db.kv_delete(ns, &keys)
        })
        .await
    }

    async fn delete_dyn(&self, ns: String, keys: Vec<String>) -> Result<u32> {
        self.run(move |db| {
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            db.kv_delete(&ns, &keys)
        })
        .await
    }

    async fn scan(&self, ns: String) -> Result<Vec<(String, Vec<u8>, i64)>> {
        self.run(move |db| db.kv_scan(&ns)).await
    }
}

#[whatsapp_rust::async_trait]
impl SignalStore for SessionBackend {
    async fn put_identity(&self, address: &str, key: [u8; 32]) -> Result<()> {
        self.put(ns::IDENTITY, address.to_string(), key.to_vec())
            .await
    }

    async fn load_identity(&self, address: &str) -> Result<Option<[u8; 32]>> {
        Ok(self
            .get(ns::IDENTITY, address.to_string())
            .await?
            .and_then(|v| <[u8; 32]>::try_from(v.as_slice()).ok()))
    }

    async fn delete_identity(&self, address: &str) -> Result<()> {
        self.delete(ns::IDENTITY, vec![address.to_string()])
            .await
            .map(drop)
    }

    async fn get_session(&self, address: &str) -> Result<Option<Bytes>> {
        Ok(self
            .get(ns::SESSION, address.to_string())
            .await?
            .map(Bytes::from))
    }

    async fn put_session(&self, address: &str, session: &[u8]) -> Result<()> {
        self.put(ns::SESSION, address.to_string(), session.to_vec())
            .await
    }

    async fn put_sessions_batch(&self, sessions: &[(Arc<str>, Bytes)]) -> Result<()> {
        let rows = sessions
            .iter()
            .map(|(a, s)| (a.to_string(), s.to_vec()))
            .collect();
        self.put_many(ns::SESSION, rows, 0).await
    }

    async fn delete_session(&self, address: &str) -> Result<()> {
        self.delete(ns::SESSION, vec![address.to_string()])
            .await
            .map(drop)
    }

    async fn store_prekey(&self, id: u32, record: &[u8], uploaded: bool) -> Result<()> {
        self.put_aux(ns::PREKEY, id.to_string(), record.to_vec(), uploaded as i64)
            .await
    }

    async fn store_prekeys_batch(&self, keys: &[(u32, Bytes)], uploaded: bool) -> Result<()> {
        let rows = keys
            .iter()
            .map(|(id, r)| (id.to_string(), r.to_vec()))
            .collect();
        self.put_many(ns::PREKEY, rows, uploaded as i64).await
    }

    async fn load_prekey(&self, id: u32) -> Result<Option<Bytes>> {
        Ok(self.get(ns::PREKEY, id.to_string()).await?.map(Bytes::from))
    }

    async fn mark_prekeys_uploaded(&self, ids: &[u32]) -> Result<()> {
        let keys: Vec<String> = ids.iter().map(u32::to_string).collect();
        self.run(move |db| {
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            db.kv_set_aux(ns::PREKEY, &keys, 1)
        })
        .await
    }

    async fn remove_prekey(&self, id: u32) -> Result<()> {
        self.delete(ns::PREKEY, vec![id.to_string()])
            .await
            .map(drop)
    }

    async fn get_max_prekey_id(&self) -> Result<u32> {
        let n = self.run(|db| db.kv_max_int_key(ns::PREKEY)).await?;
        Ok(u32::try_from(n).unwrap_or(0))
    }

    async fn store_signed_prekey(&self, id: u32, record: &[u8]) -> Result<()> {
        self.put(ns::SIGNED_PREKEY, id.to_string(), record.to_vec())
            .await
    }

    async fn load_signed_prekey(&self, id: u32) -> Result<Option<Vec<u8>>> {
        self.get(ns::SIGNED_PREKEY, id.to_string()).await
    }

    async fn load_all_signed_prekeys(&self) -> Result<Vec<(u32, Vec<u8>)>> {
        Ok(self
            .scan(ns::SIGNED_PREKEY.to_string())
            .await?
            .into_iter()
            .filter_map(|(k, v, _)| Some((k.parse().ok()?, v)))
            .collect())
    }

    async fn remove_signed_prekey(&self, id: u32) -> Result<()> {
        self.delete(ns::SIGNED_PREKEY, vec![id.to_string()])
            .await
            .map(drop)
    }

    async fn put_sender_key(&self, address: &str, record: &[u8]) -> Result<()> {
        self.put(ns::SENDER_KEY, address.to_string(), record.to_vec())
            .await
    }

    async fn get_sender_key(&self, address: &str) -> Result<Option<Vec<u8>>> {
        self.get(ns::SENDER_KEY, address.to_string()).await
    }

    async fn delete_sender_key(&self, address: &str) -> Result<()> {
        self.delete(ns::SENDER_KEY, vec![address.to_string()])
            .await
            .map(drop)
    }
}

#[whatsapp_rust::async_trait]
impl AppSyncStore for SessionBackend {
    async fn get_sync_key(&self, key_id: &[u8]) -> Result<Option<AppStateSyncKey>> {
        match self.get(ns::SYNC_KEY, hex(key_id)).await? {
            Some(v) => Ok(Some(de(&v)?)),
            None => Ok(None),
        }
    }

    async fn set_sync_key(&self, key_id: &[u8], key: AppStateSyncKey) -> Result<()> {
        let v = ser(&key)?;
        let k = hex(key_id);
        self.run(move |db| {
            db.kv_put(ns::SYNC_KEY, &k, &v, 0)?;
            db.kv_put(ns::META, "latest_sync_key_id", k.as_bytes(), 0)
        })
        .await
    }

    async fn get_version(&self, name: &str) -> Result<HashState> {
        match self.get(ns::VERSION, name.to_string()).await? {
            Some(v) => de(&v),
            None => Ok(HashState::default()),
        }
    }

    async fn set_version(&self, name: &str, state: HashState) -> Result<()> {
        self.put(ns::VERSION, name.to_string(), ser(&state)?).await
    }

    async fn put_mutation_macs(
        &self,
        name: &str,
        _version: u64,
        mutations: &[AppStateMutationMAC],
    ) -> Result<()> {
        let ns = format!("{}{name}", ns::MAC);
        let rows: Vec<(String, Vec<u8>)> = mutations
            .iter()
            .map(|m| (hex(&m.index_mac), m.value_mac.clone()))
            .collect();
        self.run(move |db| {
            let rows: Vec<(&str, &[u8], i64)> = rows
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_slice(), 0))
                .collect();
            db.kv_put_many(&ns, &rows)
        })
        .await
    }

    async fn get_mutation_mac(&self, name: &str, index_mac: &[u8]) -> Result<Option<Vec<u8>>> {
        let ns = format!("{}{name}", ns::MAC);
        let k = hex(index_mac);
        self.run(move |db| db.kv_get(&ns, &k)).await
    }

    async fn get_mutation_macs(
        &self,
        name: &str,
        index_macs: &[[u8; 32]],
    ) -> Result<HashMap<[u8; 32], Vec<u8>>> {
        let ns = format!("{}{name}", ns::MAC);
        let wanted = index_macs.to_vec();
        self.run(move |db| {
            let mut out = HashMap::with_capacity(wanted.len());
            for mac in wanted {
                if let Some(v) = db.kv_get(&ns, &hex(&mac))? {
                    out.insert(mac, v);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn delete_mutation_macs(&self, name: &str, index_macs: &[Vec<u8>]) -> Result<()> {
        let keys = index_macs.iter().map(|m| hex(m)).collect();
        self.delete_dyn(format!("{}{name}", ns::MAC), keys)
            .await
            .map(drop)
    }

    async fn clear_mutation_macs(&self, name: &str) -> Result<()> {
        let ns = format!("{}{name}", ns::MAC);
        self.run(move |db| db.kv_clear(&ns)).await
    }

    async fn get_latest_sync_key_id(&self) -> Result<Option<Vec<u8>>> {
        Ok(self
            .get(ns::META, "latest_sync_key_id".to_string())
            .await?
            .and_then(|v| unhex(std::str::from_utf8(&v).ok()?)))
    }
}

#[whatsapp_rust::async_trait]
impl ProtocolStore for SessionBackend {
    async fn get_sender_key_devices(&self, group_jid: &str) -> Result<Vec<(String, bool)>> {
        Ok(self
            .scan(format!("{}{group_jid}", ns::SKD))
            .await?
            .into_iter()
            .map(|(k, v, _)| (k, v.first() == Some(&1)))
            .collect())
    }

    async fn set_sender_key_status(&self, group_jid: &str, entries: &[(&str, bool)]) -> Result<()> {
        let ns = format!("{}{group_jid}", ns::SKD);
        let rows: Vec<(String, [u8; 1])> = entries
            .iter()
            .map(|(d, has)| (d.to_string(), [*has as u8]))
            .collect();
        self.run(move |db| {
            let rows: Vec<(&str, &[u8], i64)> =
                rows.iter().map(|(k, v)| (k.as_str(), &v[..], 0)).collect();
            db.kv_put_many(&ns, &rows)
        })
        .await
    }

    async fn clear_sender_key_devices(&self, group_jid: &str) -> Result<()> {
        let ns = format!("{}{group_jid}", ns::SKD);
        self.run(move |db| db.kv_clear(&ns)).await
    }

    async fn delete_sender_key_device_rows(&self, device_jids: &[&str]) -> Result<()> {
        let keys: Vec<String> = device_jids.iter().map(|d| d.to_string()).collect();
        self.run(move |db| {
            let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
            db.kv_delete_in_prefix(ns::SKD, Some(&keys))
        })
        .await
    }

    async fn clear_all_sender_key_devices(&self) -> Result<()> {
        self.run(|db| db.kv_delete_in_prefix(ns::SKD, None)).await
    }

    async fn get_lid_mapping(&self, lid: &str) -> Result<Option<LidPnMappingEntry>> {
        match self.get(ns::LID, lid.to_string()).await? {
            Some(v) => Ok(Some(de(&v)?)),
            None => Ok(None),
        }
    }

    async fn get_pn_mapping(&self, phone: &str) -> Result<Option<LidPnMappingEntry>> {
        let Some(lid) = self.get(ns::PN, phone.to_string()).await? else {
            return Ok(None);
        };
        let lid = String::from_utf8_lossy(&lid).into_owned();
        self.get_lid_mapping(&lid).await
    }

    async fn put_lid_mapping(&self, entry: &LidPnMappingEntry) -> Result<()> {
        self.put_lid_mappings(std::slice::from_ref(entry)).await
    }

    async fn put_lid_mappings(&self, entries: &[LidPnMappingEntry]) -> Result<()> {
        let rows: Vec<(String, String, Vec<u8>)> = entries
            .iter()
            .map(|e| Ok((e.lid.clone(), e.phone_number.clone(), ser(e)?)))
            .collect::<Result<_>>()?;
        self.run(move |db| {
            for (lid, phone, v) in &rows {
                // A LID now mapped to another number frees the old number.
                if let Some(old) = db.kv_get(ns::LID, lid)?
                    && let Ok(old) = serde_json::from_slice::<LidPnMappingEntry>(&old)
                    && old.phone_number != *phone
                {
                    db.kv_delete(ns::PN, &[old.phone_number.as_str()])?;
                }
                db.kv_put(ns::LID, lid, v, 0)?;
                db.kv_put(ns::PN, phone, lid.as_bytes(), 0)?;
            }
            Ok(())
        })
        .await
    }

    async fn get_all_lid_mappings(&self) -> Result<Vec<LidPnMappingEntry>> {
        self.scan(ns::LID.to_string())
            .await?
            .into_iter()
            .map(|(_, v, _)| de(&v))
            .collect()
    }

    async fn save_base_key(&self, address: &str, message_id: &str, base_key: &[u8]) -> Result<()> {
        self.put(
            ns::BASE_KEY,
            join(&[address, message_id]),
            base_key.to_vec(),
        )
        .await
    }

    async fn has_same_base_key(
        &self,
        address: &str,
        message_id: &str,
        current_base_key: &[u8],
    ) -> Result<bool> {
        Ok(self
            .get(ns::BASE_KEY, join(&[address, message_id]))
            .await?
            .is_some_and(|k| k == current_base_key))
    }

    async fn delete_base_key(&self, address: &str, message_id: &str) -> Result<()> {
        self.delete(ns::BASE_KEY, vec![join(&[address, message_id])])
            .await
            .map(drop)
    }

    async fn update_device_list(&self, record: DeviceListRecord) -> Result<()> {
        self.put(ns::DEVICES, record.user.clone(), ser(&record)?)
            .await
    }

    async fn update_device_lists(&self, records: Vec<DeviceListRecord>) -> Result<()> {
        let rows = records
            .iter()
            .map(|r| Ok((r.user.clone(), ser(r)?)))
            .collect::<Result<_>>()?;
        self.put_many(ns::DEVICES, rows, 0).await
    }

    async fn get_devices(&self, user: &str) -> Result<Option<DeviceListRecord>> {
        match self.get(ns::DEVICES, user.to_string()).await? {
            Some(v) => Ok(Some(de(&v)?)),
            None => Ok(None),
        }
    }

    async fn delete_devices(&self, user: &str) -> Result<()> {
        self.delete(ns::DEVICES, vec![user.to_string()])
            .await
            .map(drop)
    }

    async fn get_group_metadata(&self, group_jid: &str) -> Result<Option<Vec<u8>>> {
        self.get(ns::GROUP, group_jid.to_string()).await
    }

    async fn put_group_metadata(&self, group_jid: &str, blob: &[u8]) -> Result<()> {
        self.put(ns::GROUP, group_jid.to_string(), blob.to_vec())
            .await
    }

    async fn delete_group_metadata(&self, group_jid: &str) -> Result<()> {
        self.delete(ns::GROUP, vec![group_jid.to_string()])
            .await
            .map(drop)
    }

    async fn get_tc_token(&self, jid: &str) -> Result<Option<TcTokenEntry>> {
        match self.get(ns::TC, jid.to_string()).await? {
            Some(v) => Ok(Some(de(&v)?)),
            None => Ok(None),
        }
    }

    async fn put_tc_token(&self, jid: &str, entry: &TcTokenEntry) -> Result<()> {
        self.put(ns::TC, jid.to_string(), ser(entry)?).await
    }

    async fn delete_tc_token(&self, jid: &str) -> Result<()> {
        self.delete(ns::TC, vec![jid.to_string()]).await.map(drop)
    }

    async fn get_all_tc_token_jids(&self) -> Result<Vec<String>> {
        Ok(self
            .scan(ns::TC.to_string())
            .await?
            .into_iter()
            .map(|(k, _, _)| k)
            .collect())
    }

    async fn delete_expired_tc_tokens(&self, token_cutoff: i64, sender_cutoff: i64) -> Result<u32> {
        let mut expired = Vec::new();
        for (k, v, _) in self.scan(ns::TC.to_string()).await? {
            let e: TcTokenEntry = de(&v)?;
            let token_dead = e.token.is_empty() || e.token_timestamp < token_cutoff;
            let sender_dead = e.sender_timestamp.is_none_or(|t| t < sender_cutoff);
            if token_dead && sender_dead {
                expired.push(k);
            }
        }
        self.delete(ns::TC, expired).await
    }

    async fn store_sent_message(
        &self,
        chat_jid: &str,
        message_id: &str,
        payload: &[u8],
    ) -> Result<()> {
        self.put_aux(
            ns::SENT,
            join(&[chat_jid, message_id]),
            payload.to_vec(),
            now_s(),
        )
        .await
    }

    async fn take_sent_message(&self, chat_jid: &str, message_id: &str) -> Result<Option<Vec<u8>>> {
        let k = join(&[chat_jid, message_id]);
        self.run(move |db| db.kv_take(ns::SENT, &k)).await
    }

    async fn delete_expired_sent_messages(&self, cutoff_timestamp: i64) -> Result<u32> {
        self.run(move |db| db.kv_delete_aux_before(ns::SENT, cutoff_timestamp))
            .await
    }

    async fn store_pending_inbound(
        &self,
        chat: &str,
        sender: &str,
        id: &str,
        message: &[u8],
    ) -> Result<()> {
        self.put_aux(
            ns::PENDING,
            join(&[chat, sender, id]),
            message.to_vec(),
            now_s(),
        )
        .await
    }

    async fn get_pending_inbound(
        &self,
        chat: &str,
        sender: &str,
        id: &str,
    ) -> Result<Option<Vec<u8>>> {
        self.get(ns::PENDING, join(&[chat, sender, id])).await
    }

    async fn delete_pending_inbound(&self, chat: &str, sender: &str, id: &str) -> Result<()> {
        self.delete(ns::PENDING, vec![join(&[chat, sender, id])])
            .await
            .map(drop)
    }

    async fn delete_expired_pending_inbound(&self, cutoff_timestamp: i64) -> Result<u32> {
        self.run(move |db| db.kv_delete_aux_before(ns::PENDING, cutoff_timestamp))
            .await
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
