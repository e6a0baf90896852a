//! Settings read from the environment. Secrets are wrapped so they never print.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

mod bus;
pub use bus::{BusKind, KafkaSasl, KafkaSecurity, KafkaSettings};

/// Where the service runs: development allows generated keys and seeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppEnv {
    Development,
    Production,
}

/// Log line format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

/// Everything the service reads from its environment.
#[derive(Clone, Debug)]
pub struct Settings {
    pub database_url: SecretString,
    pub database_pool_size: usize,
    pub database_pool_timeout: Duration,
    pub database_connect_timeout: Duration,
    pub listen_addr: String,
    pub http_workers: Option<usize>,
    pub app_env: AppEnv,
    pub public_base_url: Option<String>,
    pub internal_api_key: Option<SecretString>,
    pub jwt_private_key: Option<SecretString>,
    pub jwt_private_key_path: Option<PathBuf>,
    pub jwt_external_jwks_path: Option<PathBuf>,
    /// The price table (`PRICE_TABLE_PATH`); unset: the one built in.
    pub price_table_path: Option<PathBuf>,
    pub jwt_external_public_key_path: Option<PathBuf>,
    pub jwt_issuer: String,
    pub jwt_audience: String,
    /// `iss` that the auth service's tokens must carry, when set.
    pub jwt_external_issuer: Option<String>,
    /// `aud` that the auth service's tokens must carry, when set.
    pub jwt_external_audience: Option<String>,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub encryption_key: Option<SecretString>,
    pub dev_keys_dir: PathBuf,
    pub login_max_failures: i32,
    pub login_failure_window: Duration,
    pub login_lockout: Duration,
    pub login_max_failures_per_ip: u32,
    /// `EVENT_BUS`: `nats`, `kafka` or `log` (unset: `nats` when `NATS_URL` is set, else
    /// `log`).
    pub event_bus: BusKind,
    /// The `KAFKA_*` settings, read when the bus is Kafka.
    pub kafka: Option<KafkaSettings>,
    pub nats_url: Option<String>,
    /// `NATS_USER` with `NATS_PASSWORD`, or `NATS_TOKEN`, or `NATS_CREDS_FILE` (a JWT and NKey
    /// `.creds` file): how the service authenticates to NATS; none by default.
    pub nats_user: Option<String>,
    pub nats_password: Option<SecretString>,
    pub nats_token: Option<SecretString>,
    pub nats_creds_file: Option<PathBuf>,
    pub nats_stream: String,
    pub nats_subject_prefix: String,
    pub outbox_batch_size: i64,
    pub outbox_lease: Duration,
    pub outbox_max_attempts: i32,
    pub outbox_backoff_base: Duration,
    pub outbox_backoff_cap: Duration,
    pub outbox_poll_interval: Duration,
    pub outbox_retention: Duration,
    pub delivery_max_attempts_per_provider: i32,
    pub delivery_retry_base: Duration,
    pub delivery_retry_cap: Duration,
    /// `DELIVERY_RECORD_DEADLINE_SECS`: how long the outcomes of provider calls are retried
    /// when the database does not take them (then logged, with the provider ids).
    pub delivery_record_deadline: Duration,
    /// `JOB_BATCH_SIZE`: messages one delivering job (dispatch-scheduled, retry-due) takes
    /// per batch.
    pub job_batch_size: i64,
    /// `JOB_CONCURRENCY`: provider calls (or probes) one job makes at once.
    pub job_concurrency: usize,
    /// `SHUTDOWN_DEADLINE_SECS`: on SIGTERM, how long in-flight provider calls and webhook
    /// deliveries have to finish and be recorded.
    pub shutdown_deadline: Duration,
    pub circuit_failure_threshold: i32,
    pub circuit_cooldown: Duration,
    pub provider_timeout: Duration,
    pub scheduler_enabled: bool,
    pub scheduler_tick: Duration,
    pub outbox_enabled: bool,
    pub consumers_enabled: bool,
    /// `CONSUMER_MAX_ATTEMPTS` (default 10): attempts at a consumed event before it is
    /// recorded as poison and skipped.
    pub consumer_max_attempts: u32,
    /// `WEBHOOK_ALLOW_HTTP`: webhook URLs may use plain `http://` (development only).
    pub webhook_allow_http: bool,
    /// `WEBHOOK_ALLOW_INTERNAL_HOSTS`: webhook URLs may name loopback, private and other
    /// non-public hosts, and deliveries connect to them (development only).
    pub webhook_allow_internal_hosts: bool,
    /// `MEDIA_ALLOW_INTERNAL_HOSTS`: media URLs may use plain `http://` and name loopback,
    /// private and other non-public hosts (development only).
    pub media_allow_internal_hosts: bool,
    /// `PROVIDER_EXTRA_HOSTS`: hosts added to a provider kind's own (`KIND=host,…`).
    pub provider_extra_hosts: String,
    /// `TRUSTED_PROXIES`: the proxies (CIDRs) whose `Forwarded` / `X-Forwarded-For` name the
    /// client address; none by default, so the peer address is the client's.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `ACCOUNT_CHECK_TTL_MS` (at most a minute): how long a user's active state and password
    /// change time are cached before an access token of theirs is checked again.
    pub account_check_ttl: Duration,
    /// `APP_ENV` was not set (the service runs as development and says so at start).
    pub app_env_defaulted: bool,
    pub webhook_timeout: Duration,
    pub webhook_backoff_base: Duration,
    pub webhook_backoff_cap: Duration,
    pub webhook_retry_window: Duration,
    pub webhook_concurrency: usize,
    /// `WEBHOOK_MAX_IN_FLIGHT`: deliveries in flight to one webhook at most.
    pub webhook_max_in_flight: i64,
    /// `WEBHOOK_BREAKER_THRESHOLD`: failed POSTs in a row after which a webhook's deliveries
    /// are held back (for the backoff of the next failure).
    pub webhook_breaker_threshold: i32,
    /// `WEBHOOK_DISABLE_AFTER_SECS`: a webhook failing for this long is disabled.
    pub webhook_disable_after: Duration,
    pub seed_on_start: bool,
    pub rate_limit_overrides: HashMap<(crate::domain::PlanTier, crate::domain::Channel), u32>,
    pub log_format: LogFormat,
}

/// A setting that is present but cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid value for {name}: {reason}")]
pub struct ConfigError {
    pub name: &'static str,
    pub reason: String,
}

impl Settings {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings from a map (tests build their settings this way).
    pub fn from_map(map: &HashMap<String, String>) -> Result<Self, ConfigError> {
        Self::from_lookup(|name| map.get(name).cloned())
    }

    /// Reads settings through `lookup`; empty values count as unset.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let app_env = match get("APP_ENV").as_deref() {
            None | Some("development") | Some("dev") => AppEnv::Development,
            Some("production") | Some("prod") => AppEnv::Production,
            Some(other) => {
                return Err(ConfigError {
                    name: "APP_ENV",
                    reason: format!("expected development or production, got {other:?}"),
                });
            }
        };
        let dev = app_env == AppEnv::Development;
        // ALLOW_INSECURE_WEBHOOK_URLS is the earlier name of both switches together.
        let insecure = flag(&get, "ALLOW_INSECURE_WEBHOOK_URLS", false)?;
        let webhook_allow_http = flag(&get, "WEBHOOK_ALLOW_HTTP", insecure)?;
        let webhook_allow_internal_hosts = flag(&get, "WEBHOOK_ALLOW_INTERNAL_HOSTS", insecure)?;
        let media_allow_internal_hosts = flag(&get, "MEDIA_ALLOW_INTERNAL_HOSTS", false)?;
        if !dev {
            for (name, on) in [
                ("WEBHOOK_ALLOW_HTTP", webhook_allow_http),
                ("WEBHOOK_ALLOW_INTERNAL_HOSTS", webhook_allow_internal_hosts),
                ("MEDIA_ALLOW_INTERNAL_HOSTS", media_allow_internal_hosts),
            ] {
                if on {
                    return Err(ConfigError {
                        name,
                        reason: "is for development only; it cannot be set with APP_ENV=production"
                            .into(),
                    });
                }
            }
            if flag(&get, "SEED_ON_START", false)? {
                return Err(ConfigError {
                    name: "SEED_ON_START",
                    reason: "the development seeds cannot run with APP_ENV=production".into(),
                });
            }
        }
        let database_url = get("DATABASE_URL").ok_or(ConfigError {
            name: "DATABASE_URL",
            reason: "is required".into(),
        })?;
        let log_format = match get("LOG_FORMAT").as_deref() {
            Some("json") => LogFormat::Json,
            Some("pretty") => LogFormat::Pretty,
            None if dev => LogFormat::Pretty,
            None => LogFormat::Json,
            Some(other) => {
                return Err(ConfigError {
                    name: "LOG_FORMAT",
                    reason: format!("expected json or pretty, got {other:?}"),
                });
            }
        };
        let (event_bus, kafka) = bus::read(&get)?;
        Ok(Self {
            database_url: SecretString::from(database_url),
            database_pool_size: parse(&get, "DATABASE_POOL_SIZE", 16)?,
            database_pool_timeout: millis(&get, "DATABASE_POOL_TIMEOUT_MS", 2000)?,
            database_connect_timeout: millis(&get, "DATABASE_CONNECT_TIMEOUT_MS", 3000)?,
            listen_addr: get("LISTEN_ADDR").unwrap_or_else(|| "0.0.0.0:8080".into()),
            http_workers: get("HTTP_WORKERS")
                .map(|v| {
                    v.parse().map_err(|_| ConfigError {
                        name: "HTTP_WORKERS",
                        reason: "expected a positive integer".into(),
                    })
                })
                .transpose()?,
            app_env,
            public_base_url: get("PUBLIC_BASE_URL").map(|u| u.trim_end_matches('/').to_owned()),
            internal_api_key: get("INTERNAL_API_KEY").map(SecretString::from),
            jwt_private_key: get("JWT_PRIVATE_KEY").map(SecretString::from),
            jwt_private_key_path: get("JWT_PRIVATE_KEY_PATH").map(PathBuf::from),
            jwt_external_jwks_path: get("JWT_EXTERNAL_JWKS_PATH").map(PathBuf::from),
            price_table_path: get("PRICE_TABLE_PATH").map(PathBuf::from),
            jwt_external_public_key_path: get("JWT_EXTERNAL_PUBLIC_KEY_PATH").map(PathBuf::from),
            jwt_issuer: get("JWT_ISSUER").unwrap_or_else(|| "cpaas-orchestrator".into()),
            jwt_audience: get("JWT_AUDIENCE").unwrap_or_else(|| "eventzr".into()),
            jwt_external_issuer: get("JWT_EXTERNAL_ISSUER"),
            jwt_external_audience: get("JWT_EXTERNAL_AUDIENCE"),
            access_token_ttl: secs(&get, "ACCESS_TOKEN_TTL_SECS", 3600)?,
            refresh_token_ttl: secs(&get, "REFRESH_TOKEN_TTL_SECS", 30 * 24 * 3600)?,
            encryption_key: get("CPAAS_ENCRYPTION_KEY").map(SecretString::from),
            dev_keys_dir: get("DEV_KEYS_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(".cpaas")),
            login_max_failures: parse(&get, "LOGIN_MAX_FAILURES", 5)?,
            login_failure_window: secs(&get, "LOGIN_FAILURE_WINDOW_SECS", 900)?,
            login_lockout: secs(&get, "LOGIN_LOCKOUT_SECS", 900)?,
            login_max_failures_per_ip: parse(&get, "LOGIN_MAX_FAILURES_PER_IP", 50)?,
            event_bus,
            kafka,
            nats_url: get("NATS_URL"),
            nats_user: get("NATS_USER"),
            nats_password: get("NATS_PASSWORD").map(SecretString::from),
            nats_token: get("NATS_TOKEN").map(SecretString::from),
            nats_creds_file: get("NATS_CREDS_FILE").map(PathBuf::from),
            nats_stream: get("NATS_STREAM").unwrap_or_else(|| "CPAAS_EVENTS".into()),
            nats_subject_prefix: get("NATS_SUBJECT_PREFIX").unwrap_or_default(),
            outbox_batch_size: parse(&get, "OUTBOX_BATCH_SIZE", 500)?,
            outbox_lease: secs(&get, "OUTBOX_LEASE_SECS", 30)?,
            outbox_max_attempts: parse(&get, "OUTBOX_MAX_ATTEMPTS", 12)?,
            outbox_backoff_base: millis(&get, "OUTBOX_BACKOFF_BASE_MS", 500)?,
            outbox_backoff_cap: secs(&get, "OUTBOX_BACKOFF_CAP_SECS", 300)?,
            outbox_poll_interval: millis(&get, "OUTBOX_POLL_INTERVAL_MS", 1000)?,
            outbox_retention: secs(&get, "OUTBOX_RETENTION_SECS", 72 * 3600)?,
            delivery_max_attempts_per_provider: parse(
                &get,
                "DELIVERY_MAX_ATTEMPTS_PER_PROVIDER",
                3,
            )?,
            delivery_retry_base: millis(&get, "DELIVERY_RETRY_BASE_MS", 2000)?,
            delivery_retry_cap: secs(&get, "DELIVERY_RETRY_CAP_SECS", 600)?,
            delivery_record_deadline: secs(&get, "DELIVERY_RECORD_DEADLINE_SECS", 60)?,
            job_batch_size: parse::<i64>(&get, "JOB_BATCH_SIZE", 100)?.clamp(1, 1000),
            job_concurrency: parse::<usize>(&get, "JOB_CONCURRENCY", 8)?.clamp(1, 256),
            shutdown_deadline: secs(&get, "SHUTDOWN_DEADLINE_SECS", 20)?,
            circuit_failure_threshold: parse(&get, "CIRCUIT_FAILURE_THRESHOLD", 5)?,
            circuit_cooldown: secs(&get, "CIRCUIT_COOLDOWN_SECS", 30)?,
            provider_timeout: millis(&get, "PROVIDER_TIMEOUT_MS", 10_000)?,
            scheduler_enabled: flag(&get, "SCHEDULER_ENABLED", true)?,
            scheduler_tick: millis(&get, "SCHEDULER_TICK_MS", 2000)?,
            outbox_enabled: flag(&get, "OUTBOX_ENABLED", true)?,
            consumers_enabled: flag(&get, "CONSUMERS_ENABLED", true)?,
            consumer_max_attempts: parse::<u32>(&get, "CONSUMER_MAX_ATTEMPTS", 10)?.max(1),
            webhook_allow_http,
            webhook_allow_internal_hosts,
            media_allow_internal_hosts,
            app_env_defaulted: get("APP_ENV").is_none(),
            trusted_proxies: get("TRUSTED_PROXIES")
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| {
                    p.parse::<ipnet::IpNet>()
                        .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                        .map_err(|_| ConfigError {
                            name: "TRUSTED_PROXIES",
                            reason: format!("{p:?} is not an address or CIDR"),
                        })
                })
                .collect::<Result<_, _>>()?,
            account_check_ttl: millis(&get, "ACCOUNT_CHECK_TTL_MS", 60_000)?
                .min(Duration::from_secs(60)),
            provider_extra_hosts: get("PROVIDER_EXTRA_HOSTS").unwrap_or_default(),
            webhook_timeout: millis(&get, "WEBHOOK_TIMEOUT_MS", 10_000)?,
            webhook_backoff_base: millis(&get, "WEBHOOK_BACKOFF_BASE_MS", 15_000)?,
            webhook_backoff_cap: secs(&get, "WEBHOOK_BACKOFF_CAP_SECS", 3600)?,
            webhook_retry_window: secs(&get, "WEBHOOK_RETRY_WINDOW_SECS", 24 * 3600)?,
            webhook_concurrency: parse(&get, "WEBHOOK_CONCURRENCY", 16)?,
            webhook_max_in_flight: parse(&get, "WEBHOOK_MAX_IN_FLIGHT", 2)?,
            webhook_breaker_threshold: parse(&get, "WEBHOOK_BREAKER_THRESHOLD", 5)?,
            webhook_disable_after: secs(&get, "WEBHOOK_DISABLE_AFTER_SECS", 3 * 86400)?,
            seed_on_start: flag(&get, "SEED_ON_START", dev)?,
            rate_limit_overrides: parse_overrides(&get("RATE_LIMIT_OVERRIDES").unwrap_or_default())
                .map_err(|reason| ConfigError {
                    name: "RATE_LIMIT_OVERRIDES",
                    reason,
                })?,
            log_format,
        })
    }

    /// True outside production.
    pub fn is_development(&self) -> bool {
        self.app_env == AppEnv::Development
    }
}

fn parse<T: std::str::FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
) -> Result<T, ConfigError> {
    match get(name) {
        None => Ok(default),
        Some(v) => v.trim().parse().map_err(|_| ConfigError {
            name,
            reason: format!("cannot parse {v:?}"),
        }),
    }
}

fn secs(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: u64,
) -> Result<Duration, ConfigError> {
    parse(get, name, default).map(Duration::from_secs)
}

fn millis(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: u64,
) -> Result<Duration, ConfigError> {
    parse(get, name, default).map(Duration::from_millis)
}

fn flag(
    get: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: bool,
) -> Result<bool, ConfigError> {
    match get(name).map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        None => Ok(default),
        Some("1" | "true" | "yes" | "on") => Ok(true),
        Some("0" | "false" | "no" | "off") => Ok(false),
        Some(other) => Err(ConfigError {
            name,
            reason: format!("expected true or false, got {other:?}"),
        }),
    }
}

/// Parses `RATE_LIMIT_OVERRIDES`: `tier.CHANNEL=n` pairs separated by commas.
pub fn parse_overrides(
    spec: &str,
) -> Result<HashMap<(crate::domain::PlanTier, crate::domain::Channel), u32>, String> {
    let mut out = HashMap::new();
    for pair in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("{pair:?} is not tier.CHANNEL=n"))?;
        let (tier, channel) = key
            .split_once('.')
            .ok_or_else(|| format!("{key:?} is not tier.CHANNEL"))?;
        let tier_parsed = crate::domain::PlanTier::from_claim(tier);
        if tier_parsed.as_str() != tier.to_ascii_lowercase() {
            return Err(format!("unknown plan tier {tier:?}"));
        }
        let channel: crate::domain::Channel = channel.parse()?;
        let n: u32 = value
            .trim()
            .parse()
            .map_err(|_| format!("{value:?} is not a number"))?;
        out.insert((tier_parsed, channel), n);
    }
    Ok(out)
}
