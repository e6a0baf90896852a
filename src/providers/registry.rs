//! Provider clients, built from the stored (sealed) settings and cached per provider until the
//! row changes, so per-client state such as FCM's OAuth token survives between sends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::crypto::CredentialCipher;
use crate::db::providers::Provider;
use crate::domain::ProviderKind;
use crate::providers::hosts::ProviderHosts;
use crate::providers::{ProviderClient, ProviderSettings, build_client};

type Cached = (DateTime<Utc>, Arc<dyn ProviderClient>);

/// Clients by provider id.
pub struct ProviderRegistry {
    cipher: CredentialCipher,
    http: reqwest::Client,
    clients: Mutex<HashMap<uuid::Uuid, Cached>>,
    /// The hosts providers may be reached at; `None` (development) allows any.
    hosts: Option<ProviderHosts>,
}

impl ProviderRegistry {
    /// A registry whose providers may be reached anywhere (development and tests).
    pub fn new(cipher: CredentialCipher, http: reqwest::Client) -> Self {
        Self {
            cipher,
            http,
            clients: Mutex::new(HashMap::new()),
            hosts: None,
        }
    }

    /// Limits every provider's URLs to its kind's hosts (outside development).
    pub fn with_hosts(mut self, hosts: ProviderHosts) -> Self {
        self.hosts = Some(hosts);
        self
    }

    /// Checks the URLs a provider's settings name against the allowed hosts; the error names
    /// the field. Always passes when no hosts are configured (development).
    pub fn check_urls(
        &self,
        kind: ProviderKind,
        config: &Map<String, Value>,
        credentials: &Map<String, Value>,
    ) -> Result<(), String> {
        match &self.hosts {
            Some(hosts) => hosts.check(kind, config, credentials),
            None => Ok(()),
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
        let settings = self.settings(row)?;
        self.check_urls(settings.kind, &settings.config, &settings.credentials)
            .map_err(|e| anyhow::anyhow!(e))?;
        let client = build_client(&settings, self.http.clone())?;
        if let Ok(mut cache) = self.clients.lock() {
            cache.insert(row.id, (row.updated_at, client.clone()));
        }
        Ok(client)
    }
}
