//! Prometheus metrics of this process, served as text at `GET /cpaas/v1/_internal/metrics`.
//!
//! Counters and histograms are this process's own (Prometheus sums replicas): HTTP requests by
//! route pattern, method and status with latency; provider calls by provider kind and outcome
//! with latency; outbox publications; webhook attempts; job runs. Gauges that describe shared
//! state are read from PostgreSQL at scrape time: the outbox backlog and the age of its oldest
//! event, dead letters, pending webhook deliveries, and each active provider's circuit state.

use std::time::Duration;

use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

/// Content type of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Latency buckets, in seconds, from 1 ms to 30 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Every metric of one process.
pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    provider_calls: IntCounterVec,
    provider_duration: HistogramVec,
    outbox_events: IntCounterVec,
    webhook_attempts: IntCounterVec,
    job_runs: IntCounterVec,
    consumed_events: IntCounterVec,
    job_duration: HistogramVec,
    rate_limit_checks: IntCounterVec,
    rate_limit_statements: IntCounter,
    outbox_backlog: IntGauge,
    outbox_oldest_age: Gauge,
    outbox_dead: IntGauge,
    webhook_backlog: IntGauge,
    webhook_oldest_age: Gauge,
    circuits: IntGaugeVec,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("cpaas".into()), None)?;
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry.register(Box::new(c.clone()))?;
            Ok::<_, prometheus::Error>(c)
        };
        let histogram = |name: &str, help: &str, labels: &[&str]| {
            let h = HistogramVec::new(
                HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()),
                labels,
            )?;
            registry.register(Box::new(h.clone()))?;
            Ok::<_, prometheus::Error>(h)
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help)?;
            registry.register(Box::new(g.clone()))?;
            Ok::<_, prometheus::Error>(g)
        };
        let float_gauge = |name: &str, help: &str| {
            let g = Gauge::new(name, help)?;
            registry.register(Box::new(g.clone()))?;
            Ok::<_, prometheus::Error>(g)
        };
        let circuits = IntGaugeVec::new(
            Opts::new(
                "provider_circuit_state",
                "1 for the current circuit state of each active provider (CLOSED, OPEN or HALF_OPEN)",
            ),
            &["provider_id", "provider", "state"],
        )?;
        registry.register(Box::new(circuits.clone()))?;
        Ok(Self {
            http_requests: counter(
                "http_requests_total",
                "HTTP requests answered, by method, route pattern and status",
                &["method", "route", "status"],
            )?,
            http_duration: histogram(
                "http_request_duration_seconds",
                "Time to answer an HTTP request, by method and route pattern",
                &["method", "route"],
            )?,
            provider_calls: counter(
                "deliveries_total",
                "Provider send calls, by provider kind and outcome",
                &["provider", "outcome"],
            )?,
            provider_duration: histogram(
                "delivery_duration_seconds",
                "Duration of provider send calls, by provider kind",
                &["provider"],
            )?,
            outbox_events: counter(
                "outbox_events_total",
                "Outbox events handled by this process's drainer, by result \
                 (published, failed, dead_lettered)",
                &["result"],
            )?,
            webhook_attempts: counter(
                "webhook_attempts_total",
                "Webhook deliveries attempted, by fate (delivered, retrying, failed)",
                &["fate"],
            )?,
            job_runs: counter(
                "job_runs_total",
                "Job runs in this process, by job and outcome (ok, error)",
                &["job", "outcome"],
            )?,
            consumed_events: counter(
                "consumed_events_total",
                "Events consumed from the bus, by topic and outcome (accepted, rejected, \
                 duplicate, malformed, failed)",
                &["topic", "outcome"],
            )?,
            job_duration: histogram(
                "job_run_duration_seconds",
                "Duration of job runs, by job",
                &["job"],
            )?,
            rate_limit_checks: counter(
                "rate_limit_checks_total",
                "Send-limit checks made by this process, by outcome (admitted, limited)",
                &["outcome"],
            )?,
            rate_limit_statements: {
                let c = IntCounter::new(
                    "rate_limit_statements_total",
                    "Statements this process made on the shared send-limit buckets (concurrent \
                     one-message checks of a tenant share one)",
                )?;
                registry.register(Box::new(c.clone()))?;
                c
            },
            outbox_backlog: gauge("outbox_backlog", "Outbox events waiting to be handled")?,
            outbox_oldest_age: float_gauge(
                "outbox_oldest_pending_age_seconds",
                "Age of the oldest outbox event waiting to be handled",
            )?,
            outbox_dead: gauge("outbox_dead_letters", "Dead-lettered outbox events")?,
            webhook_backlog: gauge(
                "webhook_deliveries_pending",
                "Webhook deliveries waiting for an attempt",
            )?,
            webhook_oldest_age: float_gauge(
                "webhook_oldest_pending_age_seconds",
                "Age of the oldest pending webhook delivery",
            )?,
            circuits,
            registry,
        })
    }

    pub fn record_http(
        &self,
        method: &str,
        route: &str,
        status: actix_web::http::StatusCode,
        elapsed: Duration,
    ) {
        // A client may send any method; only the standard ones become label values, so invented
        // methods cannot add series.
        let method = match method {
            "GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS" => method,
            _ => "OTHER",
        };
        self.http_requests
            .with_label_values(&[method, route, status.as_str()])
            .inc();
        self.http_duration
            .with_label_values(&[method, route])
            .observe(elapsed.as_secs_f64());
    }

    pub fn record_provider_call(&self, provider: &str, outcome: &str, elapsed: Duration) {
        self.provider_calls
            .with_label_values(&[provider, outcome])
            .inc();
        self.provider_duration
            .with_label_values(&[provider])
            .observe(elapsed.as_secs_f64());
    }

    pub fn record_rate_limit_check(&self, admitted: bool) {
        let outcome = if admitted { "admitted" } else { "limited" };
        self.rate_limit_checks.with_label_values(&[outcome]).inc();
    }

    pub fn record_rate_limit_statement(&self) {
        self.rate_limit_statements.inc();
    }

    pub fn record_outbox(&self, published: i64, failed: i64, dead_lettered: i64) {
        for (result, n) in [
            ("published", published),
            ("failed", failed),
            ("dead_lettered", dead_lettered),
        ] {
            if n > 0 {
                self.outbox_events
                    .with_label_values(&[result])
                    .inc_by(n as u64);
            }
        }
    }

    pub fn record_webhook_attempt(&self, fate: &str) {
        self.webhook_attempts.with_label_values(&[fate]).inc();
    }

    /// Counts one consumed event by topic and outcome.
    pub fn record_consumed(&self, topic: &str, outcome: &str) {
        self.consumed_events
            .with_label_values(&[topic, outcome])
            .inc();
    }

    pub fn record_job(&self, job: &str, ok: bool, elapsed: Duration) {
        self.job_runs
            .with_label_values(&[job, if ok { "ok" } else { "error" }])
            .inc();
        self.job_duration
            .with_label_values(&[job])
            .observe(elapsed.as_secs_f64());
    }

    /// Sets the gauges of shared state (read by the caller) and renders everything as text.
    pub fn render(&self, shared: &SharedGauges) -> anyhow::Result<String> {
        self.outbox_backlog.set(shared.outbox_backlog);
        self.outbox_oldest_age.set(shared.outbox_oldest_secs);
        self.outbox_dead.set(shared.outbox_dead);
        self.webhook_backlog.set(shared.webhook_backlog);
        self.webhook_oldest_age.set(shared.webhook_oldest_secs);
        self.circuits.reset();
        for c in &shared.circuits {
            self.circuits
                .with_label_values(&[&c.provider_id, &c.kind, &c.state])
                .set(1);
        }
        let mut out = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut out)?;
        Ok(String::from_utf8(out)?)
    }
}

/// The state shared by all replicas that the gauges describe, read at scrape time.
#[derive(Debug, Default)]
pub struct SharedGauges {
    pub outbox_backlog: i64,
    pub outbox_oldest_secs: f64,
    pub outbox_dead: i64,
    pub webhook_backlog: i64,
    pub webhook_oldest_secs: f64,
    pub circuits: Vec<CircuitGauge>,
}

/// One active provider's circuit.
#[derive(Debug)]
pub struct CircuitGauge {
    pub provider_id: String,
    pub kind: String,
    pub state: String,
}
