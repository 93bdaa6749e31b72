//! whatsapp-rust's protocol storage (sender-key device status, LID/number
//! mappings, base keys, device lists, group metadata, trusted-contact
//! tokens, sent messages for retries, the inbound durability buffer) as
//! rows of the bridge's session database.

use whatsapp_rust::wacore::store::error::Result;
use whatsapp_rust::wacore::store::traits::{
    DeviceListRecord, LidPnMappingEntry, ProtocolStore, TcTokenEntry,
};

use super::{SessionBackend, de, join, ns, ser};
use crate::clock::now_s;

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
