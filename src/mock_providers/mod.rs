//! `cpaas mock-providers`: one HTTP server that speaks every provider's send API on the
//! provider's own paths, so the service (or a load test) can point each provider's
//! `config.base_url` at it.
//!
//! | kind            | path                                              |
//! |-----------------|---------------------------------------------------|
//! | `twilio`        | `POST /2010-04-01/Accounts/{sid}/Messages.json`, `…/Calls.json` |
//! | `meta_whatsapp` | `POST /{version}/{phone_number_id}/messages`      |
//! | `vonage`        | `POST /sms/json`                                  |
//! | `aws_sns`       | `POST /` (`Action=Publish`)                       |
//! | `sendgrid`      | `POST /v3/mail/send`                              |
//! | `aws_ses`       | `POST /v2/email/outbound-emails`                  |
//! | `fcm`           | `POST /v1/projects/{project}/messages:send`       |
//! | `fcm_token`     | `POST /token` (point a service account's `token_uri` here) |
//!
//! Read-only calls, for the `sync-templates` and `provider-health` jobs: Meta's template list
//! `GET /{version}/{waba_id}/message_templates` (Graph cursor paging over a catalogue, `limit`
//! and `after` honoured) and phone number `GET /{version}/{phone_number_id}`; Twilio
//! `GET /2010-04-01/Accounts/{sid}.json`; SendGrid `GET /v3/scopes`; Vonage
//! `GET /account/get-balance`; SES `GET /v2/email/account`; SNS `POST /`
//! (`Action=GetSMSAttributes`). They count as requests of their kind and follow its behaviour.
//!
//! Answers carry realistic ids and bodies. Requests missing the provider's credential or a
//! required field are refused the way the provider refuses them. Signatures (SigV4, JWT
//! assertions) are required but not verified.
//!
//! Control, under `/_mock`:
//! - `POST /_mock/behaviour` `{kind: "<kind>"|"*", mode: "ok"|"fail_5xx"|"fail_4xx"|
//!   "rate_limit"|"delay"|"timeout", delay_ms?, count?}`: `count` applies the mode to the next
//!   n requests of the kind and then reverts to `ok`; `timeout` holds the request for
//!   `delay_ms` (30 s by default) before answering `ok`. `GET` shows, `DELETE` resets all.
//! - `GET /_mock/requests?kind=&limit=`: the last 10 000 requests (kind, path, our message id
//!   where the format carries one, recipient, the id answered, outcome, time).
//! - `GET /_mock/stats`: counts per kind and outcome. `DELETE /_mock/requests` clears both.
//! - `GET /_mock/tally`: every message id the mocks took (answered as accepted), how often and
//!   when first, kept without limit (`distinct`, `duplicated`, `messages`), for long runs.
//! - `GET /_mock/templates` shows the template catalogue every business account lists;
//!   `PUT /_mock/templates` `{templates: [{name, language, status, category?}]}` replaces it;
//!   `DELETE` restores the default one.
//!
//! Built for load: behaviours and counters are atomics, the request ring is locked only to
//! push or copy, and no lock is held across an await.

mod account;
mod behaviour;
mod control;
mod email;
mod messaging;
mod push;
mod sms;
pub mod state;
mod wire;

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::{App, HttpServer, web};

use state::MockState;

/// The address `cpaas mock-providers` listens on unless told otherwise.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:9090";

/// Registers the provider and control routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/_mock")
            .route("/behaviour", web::get().to(control::get_behaviour))
            .route("/behaviour", web::post().to(control::set_behaviour))
            .route("/behaviour", web::delete().to(control::reset_behaviour))
            .route("/requests", web::get().to(control::list_requests))
            .route("/requests", web::delete().to(control::clear_requests))
            .route("/stats", web::get().to(control::stats))
            .route("/tally", web::get().to(control::tally))
            .route("/templates", web::get().to(account::get_templates))
            .route("/templates", web::put().to(account::set_templates))
            .route("/templates", web::delete().to(account::reset_templates)),
    )
    .route(
        "/2010-04-01/Accounts/{sid}.json",
        web::get().to(account::twilio_account),
    )
    .route("/v3/scopes", web::get().to(account::sendgrid_scopes))
    .route(
        "/account/get-balance",
        web::get().to(account::vonage_balance),
    )
    .route("/v2/email/account", web::get().to(account::ses_account))
    .route(
        "/{version}/{waba_id}/message_templates",
        web::get().to(account::meta_templates),
    )
    .route(
        "/{version}/{phone_number_id}",
        web::get().to(account::meta_phone_number),
    )
    .route(
        "/2010-04-01/Accounts/{sid}/Messages.json",
        web::post().to(messaging::twilio_message),
    )
    .route(
        "/2010-04-01/Accounts/{sid}/Calls.json",
        web::post().to(messaging::twilio_call),
    )
    .route("/sms/json", web::post().to(sms::vonage_sms))
    .route("/v3/mail/send", web::post().to(email::sendgrid))
    .route("/v2/email/outbound-emails", web::post().to(email::ses))
    .route(
        "/v1/projects/{project}/messages:send",
        web::post().to(push::fcm_send),
    )
    .route("/token", web::post().to(push::token))
    .route("/", web::post().to(sms::sns))
    .route(
        "/{version}/{phone_number_id}/messages",
        web::post().to(messaging::meta_messages),
    );
}

/// The mock server on an already bound listener (port 0 in tests); await or spawn the result.
pub fn mock_server(listener: TcpListener) -> std::io::Result<Server> {
    let state = web::Data::new(MockState::default());
    let catalogue = web::Data::new(account::TemplateCatalogue::default());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(catalogue.clone())
            .app_data(web::PayloadConfig::new(1 << 20))
            .configure(routes)
    })
    .backlog(4096)
    .shutdown_timeout(1)
    .listen(listener)?
    .run();
    Ok(server)
}

/// Binds `listen` and serves until stopped.
pub async fn run(listen: &str) -> anyhow::Result<()> {
    let listener =
        TcpListener::bind(listen).map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    tracing::info!(addr = %listener.local_addr()?, "mock providers listening");
    mock_server(listener)?.await?;
    Ok(())
}
