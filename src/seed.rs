//! Development seeds: the dev tenant, its two users and a SANDBOX provider for every channel.
//! Running them again changes nothing.

use diesel_async::AsyncPgConnection;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::auth::passwords;
use crate::crypto::CredentialCipher;
use crate::db::providers::{self, NewProvider};
use crate::db::users::{self, NewUser};
use crate::domain::{Channel, ProviderKind};

/// The development tenant.
pub const DEV_TENANT_ID: Uuid = Uuid::from_u128(1);
/// Password of the seeded users.
pub const DEV_PASSWORD: &str = "Password123!";

/// Adds a user (and its tenant when missing). Returns false when the e-mail is taken.
pub async fn add_user(
    conn: &mut AsyncPgConnection,
    tenant_id: Uuid,
    email: &str,
    password: &str,
    roles: &[&str],
) -> anyhow::Result<bool> {
    for role in roles {
        role.parse::<crate::domain::Role>()
            .map_err(|e| anyhow::anyhow!(e))?;
    }
    if users::find_tenant(conn, tenant_id).await?.is_none() {
        anyhow::bail!("tenant {tenant_id} does not exist; add it first");
    }
    let email = users::normalize_email(email);
    if users::find_user_by_email(conn, &email).await?.is_some() {
        return Ok(false);
    }
    let hash = passwords::hash_password(password.to_owned()).await?;
    let inserted = users::insert_user(
        conn,
        &NewUser {
            id: Uuid::now_v7(),
            tenant_id,
            email: &email,
            password_hash: &hash,
            roles: roles.iter().map(|r| Some((*r).to_owned())).collect(),
        },
    )
    .await?;
    Ok(inserted)
}

/// Applies the development seeds.
pub async fn run(conn: &mut AsyncPgConnection, cipher: &CredentialCipher) -> anyhow::Result<()> {
    users::ensure_tenant(conn, DEV_TENANT_ID, "Development tenant", "professional").await?;
    add_user(
        conn,
        DEV_TENANT_ID,
        "dev@eventzr.com",
        DEV_PASSWORD,
        &["developer", "organizer"],
    )
    .await?;
    add_user(
        conn,
        DEV_TENANT_ID,
        "admin@eventzr.com",
        DEV_PASSWORD,
        &["admin"],
    )
    .await?;
    if !providers::name_taken(conn, DEV_TENANT_ID, "sandbox").await? {
        let id = Uuid::now_v7();
        let empty = Map::new();
        let aad = crate::crypto::row_aad(DEV_TENANT_ID, id);
        let sealed = cipher.seal(&serde_json::to_vec(&empty)?, &aad)?;
        let mut config = Map::new();
        config.insert("delivery_delay_ms".into(), Value::from(500));
        providers::insert_provider(
            conn,
            &NewProvider {
                id,
                tenant_id: DEV_TENANT_ID,
                name: "sandbox".into(),
                kind: ProviderKind::Sandbox.as_str().into(),
                channels: Channel::ALL
                    .iter()
                    .map(|c| Some(c.as_str().to_owned()))
                    .collect(),
                priority: 1000,
                is_active: true,
                config: Value::Object(config),
                credentials_encrypted: sealed,
                credential_keys: vec![],
            },
        )
        .await?;
    }
    Ok(())
}
