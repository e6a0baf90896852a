//! Provider clients, built from the stored (sealed) settings and cached per provider until the
//! row changes, so per-client state such as FCM's OAuth token survives between sends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::crypto::CredentialCipher;
use crate::db::providers::Provider;
use crate::domain::ProviderKind;
use crate::providers::{ProviderClient, ProviderSettings, build_client};

type Cached = (DateTime<Utc>, Arc<dyn ProviderClient>);

/// Clients by provider id.
pub struct ProviderRegistry {
    cipher: CredentialCipher,
    http: reqwest::Client,
    clients: Mutex<HashMap<uuid::Uuid, Cached>>,
}

impl ProviderRegistry {
    pub fn new(cipher: CredentialCipher, http: reqwest::Client) -> Self {
        Self {
            cipher,
            http,
            clients: Mutex::new(HashMap::new()),
        }
    }

    /// The HTTP client every provider call shares.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The opened settings of a provider row.
    pub fn settings(&self, row: &Provider) -> anyhow::Result<ProviderSettings> {
        let kind: ProviderKind = row.kind.parse().map_err(|e: String| anyhow::anyhow!(e))?;
        let aad = crate::crypto::row_aad(row.tenant_id, row.id);
        let plain = self.cipher.open(&row.credentials_encrypted, &aad)?;
        let credentials: Map<String, Value> = serde_json::from_slice(&plain)?;
        Ok(ProviderSettings {
            provider_id: row.id,
            kind,
            config: row.config.as_object().cloned().unwrap_or_default(),
            credentials,
        })
    }

    /// The client of a provider row, built on first use and after every change of the row.
    pub fn client(&self, row: &Provider) -> anyhow::Result<Arc<dyn ProviderClient>> {
        if let Ok(cache) = self.clients.lock()
            && let Some((version, client)) = cache.get(&row.id)
            && *version == row.updated_at
        {
            return Ok(client.clone());
        }
        let client = build_client(&self.settings(row)?, self.http.clone())?;
        if let Ok(mut cache) = self.clients.lock() {
            cache.insert(row.id, (row.updated_at, client.clone()));
        }
        Ok(client)
    }
}
