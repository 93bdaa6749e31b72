//! whatsapp-rust's Signal and app-state storage (identities, sessions,
//! pre-keys, sender keys, sync keys, collection versions, mutation MACs)
//! as rows of the bridge's session database.

use std::collections::HashMap;
use std::sync::Arc;

use whatsapp_rust::bytes::Bytes;
use whatsapp_rust::wacore::appstate::hash::HashState;
use whatsapp_rust::wacore::appstate::processor::AppStateMutationMAC;
use whatsapp_rust::wacore::store::error::Result;
use whatsapp_rust::wacore::store::traits::{AppStateSyncKey, AppSyncStore, SignalStore};

use super::{SessionBackend, de, ns, ser};
use crate::hex::{decode as unhex, encode as hex};

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
        self.delete(format!("{}{name}", ns::MAC), keys)
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
