//! Builds the application: pool, keys, actors and the HTTP server (bound to port 0 in tests).

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix::Actor;
use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use secrecy::ExposeSecret;
use tracing_actix_web::TracingLogger;

use crate::actors::{OutboxActor, SchedulerActor, TokenActor};
use crate::auth::SigningKeys;
use crate::auth::sessions::SessionDeps;
use crate::callbacks::Callbacks;
use crate::config::Settings;
use crate::consumers::ConsumerDeps;
use crate::crypto::CredentialCipher;
use crate::db::DbPool;
use crate::delivery::{Delivery, DeliveryHandler, DeliveryPolicy};
use crate::http::envelope::{self, JSON_LIMIT_BYTES};
use crate::http::span::RequestSpan;
use crate::jobs::Jobs;
use crate::lifecycle::Lifecycle;
use crate::messages::chain::{ChainHandler, Chains};
use crate::metrics::Metrics;
use crate::outbox::{EventBus, EventHandler, Outbox, OutboxPolicy, Wakeup};
use crate::pricing::PriceTable;
use crate::providers::registry::ProviderRegistry;
use crate::rate_limit::RateLimits;
use crate::routes;
use crate::state::AppState;
use crate::webhooks::{WebhookFanOut, WebhookPolicy, WebhookSender};

/// A built, bound, not yet awaited application.
pub struct Application {
    port: u16,
    server: Server,
    state: AppState,
}

/// The credential cipher the settings name; generated into `DEV_KEYS_DIR` in development.
pub fn load_cipher(settings: &Settings) -> anyhow::Result<CredentialCipher> {
    let key = match &settings.encryption_key {
        Some(key) => key.expose_secret().to_owned(),
        None if settings.is_development() => crate::auth::keys::read_or_create(
            &settings.dev_keys_dir.join("encryption.key"),
            || Ok(CredentialCipher::generate_key()),
        )?,
        None => anyhow::bail!("CPAAS_ENCRYPTION_KEY is required in production"),
    };
    CredentialCipher::from_base64(&key).map_err(|e| anyhow::anyhow!("CPAAS_ENCRYPTION_KEY: {e}"))
}

impl Application {
    /// Builds everything and binds `LISTEN_ADDR`. Must run inside an actix system.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(&settings.listen_addr)
            .map_err(|e| anyhow::anyhow!("cannot bind {}: {e}", settings.listen_addr))?;
        let settings = Arc::new(settings);
        let keys = Arc::new(SigningKeys::from_settings(&settings)?);
        let cipher = load_cipher(&settings)?;
        let pool = crate::db::build_pool(&settings)?;
        let tokens = TokenActor::new(SessionDeps {
            pool: pool.clone(),
            keys: keys.clone(),
            settings: settings.clone(),
        })
        .start();
        let bus = Arc::new(event_bus(&settings).await?);
        let metrics = Arc::new(Metrics::new()?);
        let wakeup = Wakeup::new();
        actix_web::rt::spawn(wakeup.clone().announce(pool.clone()));
        let lifecycle = Arc::new(Lifecycle::default());
        // One registry of provider clients, so per-client state (FCM's OAuth token) is shared
        // by delivery, callbacks and jobs.
        let registry = Arc::new(provider_registry(&settings, &cipher)?);
        let prices = Arc::new(
            PriceTable::load(settings.price_table_path.as_deref()).map_err(anyhow::Error::msg)?,
        );
        let delivery = Arc::new(
            Delivery::new(
                pool.clone(),
                registry.clone(),
                DeliveryPolicy::from_settings(&settings),
                prices.clone(),
            )
            .with_metrics(metrics.clone())
            .with_wakeup(wakeup.clone()),
        );
        let rate_limits =
            Arc::new(RateLimits::new(&settings.rate_limit_overrides).with_metrics(metrics.clone()));
        let chains = Chains::new(pool.clone(), rate_limits.clone(), wakeup.clone());
        let outbox = Arc::new(
            Outbox::new(
                pool.clone(),
                bus,
                in_process_handlers(&delivery, &chains, &pool),
                OutboxPolicy::from_settings(&settings),
            )
            .with_metrics(metrics.clone())
            .with_lifecycle(lifecycle.clone()),
        );
        if settings.outbox_enabled {
            let actor = OutboxActor::new(
                outbox.clone(),
                wakeup.clone(),
                settings.database_url.expose_secret().to_owned(),
                settings.outbox_poll_interval,
                settings.outbox_batch_size * 10,
            );
            actix::Supervisor::start(move |_| actor);
        }
        let callbacks = Arc::new(
            Callbacks::new(registry.clone(), &settings, prices).with_wakeup(wakeup.clone()),
        );
        let webhooks = Arc::new(
            WebhookSender::new(
                pool.clone(),
                cipher.clone(),
                WebhookPolicy::from_settings(&settings),
                metrics.clone(),
            )?
            .with_wakeup(wakeup.clone()),
        );
        let jobs = Arc::new(Jobs {
            pool: pool.clone(),
            settings: settings.clone(),
            delivery,
            webhooks,
            chains,
            registry,
            metrics: metrics.clone(),
            lifecycle,
            wakeup: wakeup.clone(),
        });
        if settings.scheduler_enabled {
            let scheduler = SchedulerActor::new(jobs.clone(), crate::jobs::schedule(&settings));
            actix::Supervisor::start(move |_| scheduler);
        }
        if settings.consumers_enabled {
            crate::consumers::start(
                outbox.bus(),
                ConsumerDeps {
                    pool: pool.clone(),
                    rate_limits: rate_limits.clone(),
                    metrics: metrics.clone(),
                    wakeup: wakeup.clone(),
                    max_attempts: settings.consumer_max_attempts,
                    lifecycle: jobs.lifecycle.clone(),
                },
            )?;
        }
        let state = AppState {
            pool,
            settings: settings.clone(),
            keys,
            accounts: Arc::new(crate::auth::accounts::AccountStates::new(
                settings.account_check_ttl,
            )),
            cipher,
            tokens,
            rate_limits,
            outbox,
            callbacks,
            jobs,
            metrics,
            wakeup,
        };
        let port = listener.local_addr()?.port();
        let server = serve(listener, state.clone(), settings.http_workers)?;
        Ok(Self {
            port,
            server,
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// A handle to stop the server gracefully.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// On SIGTERM or SIGINT: no drain claims and no job starts any more, and the HTTP server
    /// stops gracefully (it finishes the requests in flight), which ends `run_until_stopped`.
    pub fn stop_on_signal(&self) {
        let server = self.server.handle();
        let lifecycle = self.state.jobs.lifecycle.clone();
        actix_web::rt::spawn(async move {
            let signal = wait_for_stop_signal().await;
            tracing::info!(
                signal,
                "stopping: no new work; the HTTP server finishes its requests"
            );
            lifecycle.stop();
            server.stop(true).await;
        });
    }

    /// Serves until the server is stopped (`stop_on_signal`, or its handle).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// The provider clients: anywhere in development; outside it, only at each kind's own hosts
/// (`PROVIDER_EXTRA_HOSTS` adds some), through a client that connects to public addresses only.
fn provider_registry(
    settings: &Settings,
    cipher: &CredentialCipher,
) -> anyhow::Result<ProviderRegistry> {
    let mut http = crate::providers::http::client_builder(settings.provider_timeout);
    if settings.is_development() {
        return Ok(ProviderRegistry::new(cipher.clone(), http.build()?));
    }
    let hosts = crate::providers::hosts::ProviderHosts::parse(&settings.provider_extra_hosts)
        .map_err(|e| anyhow::anyhow!("PROVIDER_EXTRA_HOSTS: {e}"))?;
    http = http.dns_resolver(Arc::new(crate::providers::resolver::PublicOnlyResolver));
    Ok(ProviderRegistry::new(cipher.clone(), http.build()?).with_hosts(hosts))
}

/// The bus `EVENT_BUS` names.
async fn event_bus(settings: &Settings) -> anyhow::Result<EventBus> {
    use crate::config::BusKind;
    use crate::outbox::bus::{KafkaBus, NatsBus};
    Ok(
        match (settings.event_bus, &settings.nats_url, &settings.kafka) {
            (BusKind::Nats, Some(url), _) => EventBus::Nats(
                NatsBus::connect(
                    url,
                    &settings.nats_stream,
                    &settings.nats_subject_prefix,
                    &nats_auth(settings)?,
                )
                .await?,
            ),
            (BusKind::Kafka, _, Some(kafka)) => {
                EventBus::Kafka(Box::new(KafkaBus::connect(kafka).await?))
            }
            (BusKind::Log, ..) => EventBus::Log,
            (kind, ..) => anyhow::bail!("EVENT_BUS={} is not configured", kind.as_str()),
        },
    )
}

/// The NATS credentials the settings name: a user and password, a token or a creds file.
fn nats_auth(settings: &Settings) -> anyhow::Result<crate::outbox::bus::NatsAuth> {
    use crate::outbox::bus::NatsAuth;
    Ok(
        match (
            &settings.nats_user,
            &settings.nats_password,
            &settings.nats_token,
            &settings.nats_creds_file,
        ) {
            (None, None, None, None) => NatsAuth::None,
            (Some(user), Some(password), None, None) => NatsAuth::UserPassword {
                user: user.clone(),
                password: password.clone(),
            },
            (None, None, Some(token), None) => NatsAuth::Token(token.clone()),
            (None, None, None, Some(path)) => NatsAuth::CredsFile(path.clone()),
            _ => anyhow::bail!(
                "NATS credentials: give NATS_USER with NATS_PASSWORD, or NATS_TOKEN, or \
                 NATS_CREDS_FILE, and only one of them"
            ),
        },
    )
}

/// Every in-process handler of outbox events: delivery of accepted messages, and the fan-out
/// of lifecycle events to tenant webhooks.
fn in_process_handlers(
    delivery: &Arc<Delivery>,
    chains: &Arc<Chains>,
    pool: &DbPool,
) -> Vec<Arc<dyn EventHandler>> {
    vec![
        Arc::new(DeliveryHandler::new(delivery.clone())),
        ChainHandler::new(chains.clone()),
        WebhookFanOut::new(pool.clone()),
    ]
}

fn serve(
    listener: TcpListener,
    state: AppState,
    workers: Option<usize>,
) -> std::io::Result<Server> {
    let metrics = web::Data::new(state.metrics.clone());
    let data = web::Data::new(state);
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(metrics.clone())
            .app_data(
                web::JsonConfig::default()
                    .limit(JSON_LIMIT_BYTES)
                    .error_handler(envelope::json_error),
            )
            .app_data(web::QueryConfig::default().error_handler(envelope::query_error))
            .app_data(web::PathConfig::default().error_handler(envelope::path_error))
            .wrap(from_fn(crate::http::idempotency::fingerprint_requests))
            .wrap(TracingLogger::<RequestSpan>::new())
            .wrap(from_fn(envelope::request_context))
            .wrap(from_fn(crate::http::request_metrics::track_requests))
            .configure(routes::configure)
            .default_service(web::to(routes::fallback::not_found))
    })
    .listen(listener)?
    // SIGTERM and SIGINT are handled by `stop_on_signal`, which also stops the drains and jobs
    // the moment the signal comes.
    .disable_signals()
    .shutdown_timeout(30)
    .client_request_timeout(Duration::from_secs(30));
    if let Some(workers) = workers {
        server = server.workers(workers);
    }
    Ok(server.run())
}

/// Stops this process's work after its HTTP server stopped: no drain claims and no job starts
/// any more; the provider calls and webhook deliveries in flight get `SHUTDOWN_DEADLINE_SECS`
/// to finish and be recorded; then the outbox and webhook leases still held are released so
/// another replica takes them at once. True when everything in flight finished in time.
pub async fn shutdown(state: &AppState) -> bool {
    let lifecycle = &state.jobs.lifecycle;
    lifecycle.stop();
    let running = lifecycle.active();
    let deadline = state.settings.shutdown_deadline;
    tracing::info!(
        running,
        ?deadline,
        "stopping: no new work; waiting for the work in flight"
    );
    let finished = lifecycle.drained(deadline).await;
    if finished {
        tracing::info!("the work in flight finished and was recorded");
    } else {
        tracing::warn!(
            still_running = lifecycle.active(),
            "the shutdown deadline passed with work in flight; reconcile-stale settles it"
        );
    }
    match state.outbox.release().await {
        Ok(n) => tracing::info!(released = n, "outbox leases released"),
        Err(e) => tracing::warn!(error = %e, "could not release outbox leases"),
    }
    match state.jobs.webhooks.release().await {
        Ok(n) => tracing::info!(released = n, "webhook delivery leases released"),
        Err(e) => tracing::warn!(error = %e, "could not release webhook delivery leases"),
    }
    finished
}

/// Waits for SIGTERM or SIGINT; returns its name.
async fn wait_for_stop_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        },
        _ => {
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}
