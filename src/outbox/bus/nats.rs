//! NATS JetStream: subject = topic, `Nats-Msg-Id` = event id so the broker drops re-publishes
//! inside its duplicate window, acks awaited.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, Context};
use futures_util::future::join_all;

use super::Publication;

/// Every subject the stream holds (after the configured prefix).
pub const STREAM_SUBJECTS: &[&str] = &["eventzr.cpaas.>", "eventzr.notify.>"];

/// How the service authenticates to NATS.
#[derive(Clone, Debug, Default)]
pub enum NatsAuth {
    #[default]
    None,
    UserPassword {
        user: String,
        password: secrecy::SecretString,
    },
    Token(secrecy::SecretString),
    /// A decentralised-auth `.creds` file (user JWT and NKey seed).
    CredsFile(std::path::PathBuf),
}

impl NatsAuth {
    async fn options(&self) -> anyhow::Result<async_nats::ConnectOptions> {
        use secrecy::ExposeSecret;
        Ok(match self {
            NatsAuth::None => async_nats::ConnectOptions::new(),
            NatsAuth::UserPassword { user, password } => async_nats::ConnectOptions::new()
                .user_and_password(user.clone(), password.expose_secret().to_owned()),
            NatsAuth::Token(token) => {
                async_nats::ConnectOptions::new().token(token.expose_secret().to_owned())
            }
            NatsAuth::CredsFile(path) => async_nats::ConnectOptions::with_credentials_file(path)
                .await
                .map_err(|e| anyhow::anyhow!("NATS_CREDS_FILE {}: {e}", path.display()))?,
        })
    }
}

/// A JetStream stream holding every subject this service publishes and consumes.
pub struct NatsBus {
    pub jetstream: Box<Context>,
    pub stream: String,
    /// Put before every subject (empty by default), so that several deployments or test runs
    /// can share one NATS server.
    pub prefix: String,
}

impl NatsBus {
    /// Connects to NATS and creates or updates the stream. The connection is driven by the
    /// process's background runtime and reconnects by itself. A server that does not answer at
    /// start does not stop the process: the bus is returned at once (readiness reports it
    /// degraded, publications fail and wait in the outbox), and the stream is created in the
    /// background as soon as the server answers.
    pub async fn connect(
        url: &str,
        stream: &str,
        prefix: &str,
        auth: &NatsAuth,
    ) -> anyhow::Result<Self> {
        let url = url.to_owned();
        let auth = auth.clone();
        let stream_name = stream.to_owned();
        let prefix = prefix.to_owned();
        let handle = crate::db::connection_runtime()?;
        handle
            .spawn(async move {
                let client = auth
                    .options()
                    .await?
                    .retry_on_initial_connect()
                    .connection_timeout(Duration::from_secs(3))
                    .name("cpaas-orchestrator")
                    .connect(url)
                    .await?;
                let jetstream = jetstream::new(client);
                if let Err(e) = ensure_stream_within(&jetstream, &stream_name, &prefix).await {
                    tracing::warn!(error = %e, stream = %stream_name,
                        "the event bus does not answer; serving degraded until it does");
                    let (jetstream, stream_name, prefix) =
                        (jetstream.clone(), stream_name.clone(), prefix.clone());
                    tokio::spawn(async move {
                        loop {
                            tokio::time::sleep(STREAM_RETRY).await;
                            if ensure_stream_within(&jetstream, &stream_name, &prefix)
                                .await
                                .is_ok()
                            {
                                tracing::info!(stream = %stream_name, "the event bus answers; stream ready");
                                break;
                            }
                        }
                    });
                }
                Ok::<_, anyhow::Error>(NatsBus {
                    jetstream: Box::new(jetstream),
                    stream: stream_name,
                    prefix,
                })
            })
            .await?
    }

    /// Whether the stream answers (for readiness).
    pub async fn check(&self) -> Result<(), String> {
        tokio::time::timeout(
            Duration::from_secs(2),
            self.jetstream.get_stream(&self.stream),
        )
        .await
        .map_err(|_| "timed out".to_owned())?
        .map(|_| ())
        .map_err(|e| e.to_string())
    }

    /// Publishes every event, pipelined; one result per event, in order.
    pub async fn publish(&self, events: &[Publication<'_>]) -> Vec<Result<(), String>> {
        let mut pending = Vec::with_capacity(events.len());
        for e in events {
            let mut headers = HeaderMap::new();
            headers.insert("Nats-Msg-Id", e.event_id);
            let body = serde_json::to_vec(e.payload).unwrap_or_default();
            pending.push(
                self.jetstream
                    .publish_with_headers(
                        format!("{}{}", self.prefix, e.topic),
                        headers,
                        body.into(),
                    )
                    .await,
            );
        }
        join_all(pending.into_iter().map(|sent| async move {
            match sent {
                Ok(ack) => ack.await.map(|_| ()).map_err(|e| format!("no ack: {e}")),
                Err(e) => Err(format!("publish failed: {e}")),
            }
        }))
        .await
    }
}

/// How long creating the stream may take before the bus counts as not answering.
const STREAM_TIMEOUT: Duration = Duration::from_secs(3);
/// How often a stream that could not be created is tried again.
const STREAM_RETRY: Duration = Duration::from_secs(1);

async fn ensure_stream_within(jetstream: &Context, name: &str, prefix: &str) -> anyhow::Result<()> {
    tokio::time::timeout(STREAM_TIMEOUT, ensure_stream(jetstream, name, prefix))
        .await
        .map_err(|_| anyhow::anyhow!("timed out creating stream {name}"))?
}

async fn ensure_stream(jetstream: &Context, name: &str, prefix: &str) -> anyhow::Result<()> {
    let config = jetstream::stream::Config {
        name: name.to_owned(),
        subjects: STREAM_SUBJECTS
            .iter()
            .map(|s| format!("{prefix}{s}"))
            .collect(),
        duplicate_window: Duration::from_secs(120),
        max_age: Duration::from_secs(7 * 24 * 3600),
        ..Default::default()
    };
    jetstream
        .create_or_update_stream(config)
        .await
        .map_err(|e| anyhow::anyhow!("cannot create or update stream {name}: {e}"))?;
    Ok(())
}
