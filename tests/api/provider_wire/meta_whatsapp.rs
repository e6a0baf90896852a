//! Meta WhatsApp Cloud API.

use cpaas::domain::{Channel, ProviderKind};
use cpaas::providers::ProviderTemplate;
use serde_json::{Value, json};
use wiremock::{MockServer, ResponseTemplate};

use super::*;

fn meta_client(server: &MockServer) -> (Value, Value) {
    (
        json!({"phone_number_id": "1098765", "waba_id": "2233", "base_url": server.uri()}),
        json!({"access_token": "EAAG-token", "app_secret": "s", "verify_token": "v"}),
    )
}

#[tokio::test]
async fn meta_whatsapp_sends_text_with_our_id_as_opaque_callback_data() {
    let server = MockServer::start().await;
    let (config, creds) = meta_client(&server);
    let client = client(ProviderKind::MetaWhatsapp, config, creds);
    let wa = message(Channel::Whatsapp, "+14155550100");
    let ok = json!({"messaging_product": "whatsapp",
        "contacts": [{"input": "14155550100", "wa_id": "14155550100"}],
        "messages": [{"id": "wamid.HBgLMTQxNTU1NTAxMDAVAgARGBI="}]});
    let outcome = outcome(
        &server,
        &*client,
        &wa,
        ResponseTemplate::new(200).set_body_json(ok),
    )
    .await;
    assert_accepted(&outcome, "wamid.HBgLMTQxNTU1NTAxMDAVAgARGBI=");
    let request = only_request(&server).await;
    assert_eq!(request.url.path(), "/v21.0/1098765/messages");
    assert_eq!(header(&request, "authorization"), "Bearer EAAG-token");
    let body: Value = request.body_json().unwrap();
    assert_eq!(
        body,
        json!({"messaging_product": "whatsapp", "recipient_type": "individual",
            "to": "14155550100", "type": "text", "text": {"body": wa.body},
            "biz_opaque_callback_data": MESSAGE_ID})
    );
}

#[tokio::test]
async fn meta_whatsapp_sends_a_template_with_its_body_parameters() {
    let server = MockServer::start().await;
    let (mut config, creds) = meta_client(&server);
    config["api_version"] = json!("v20.0");
    let client = client(ProviderKind::MetaWhatsapp, config, creds);
    let mut wa = message(Channel::Whatsapp, "+14155550100");
    wa.provider_template = Some(ProviderTemplate {
        name: "otp_code".into(),
        language: "en_US".into(),
        body_parameters: vec!["1234".into(), "10".into()],
    });
    let ok = json!({"messages": [{"id": "wamid.T1", "message_status": "accepted"}]});
    let outcome = outcome(
        &server,
        &*client,
        &wa,
        ResponseTemplate::new(200).set_body_json(ok),
    )
    .await;
    assert_accepted(&outcome, "wamid.T1");
    let request = only_request(&server).await;
    assert_eq!(request.url.path(), "/v20.0/1098765/messages");
    let body: Value = request.body_json().unwrap();
    assert_eq!(body["type"], "template");
    assert_eq!(
        body["template"],
        json!({"name": "otp_code", "language": {"code": "en_US"}, "components": [
            {"type": "body", "parameters": [
                {"type": "text", "text": "1234"}, {"type": "text", "text": "10"}]}]})
    );
    assert_eq!(body["biz_opaque_callback_data"], MESSAGE_ID);
}

#[tokio::test]
async fn meta_whatsapp_outcomes_follow_the_graph_error_code() {
    let server = MockServer::start().await;
    let (config, creds) = meta_client(&server);
    let client = client(ProviderKind::MetaWhatsapp, config.clone(), creds.clone());
    let wa = message(Channel::Whatsapp, "+14155550100");
    let graph = |status: u16, code: u32| {
        ResponseTemplate::new(status).set_body_json(json!({"error": {
            "message": "(#x) something", "type": "OAuthException", "code": code,
            "error_subcode": 2494055, "fbtrace_id": "Az8or2yhqkZfEZ-_4Qn_Bam"}}))
    };
    assert_permanent(
        &outcome(&server, &*client, &wa, graph(400, 131047)).await,
        "131047",
    );
    assert_permanent(
        &outcome(&server, &*client, &wa, graph(401, 190)).await,
        "190",
    );
    assert_permanent(
        &outcome(&server, &*client, &wa, graph(400, 132001)).await,
        "132001",
    );
    // Throughput limits come back as 400s: the code decides.
    assert_rate_limited(
        &outcome(&server, &*client, &wa, graph(400, 130429)).await,
        "130429",
        None,
    );
    let limited = graph(429, 80007).insert_header("Retry-After", "60");
    assert_rate_limited(
        &outcome(&server, &*client, &wa, limited).await,
        "80007",
        Some(60),
    );
    assert_transient(&outcome(&server, &*client, &wa, graph(400, 2)).await, "2");
    assert_transient(
        &outcome(&server, &*client, &wa, graph(500, 131000)).await,
        "131000",
    );

    let impatient = impatient_client(ProviderKind::MetaWhatsapp, config, creds);
    let slow = too_slow(
        ResponseTemplate::new(200).set_body_json(json!({"messages": [{"id": "wamid.X"}]})),
    );
    assert_ambiguous(&outcome(&server, &*impatient, &wa, slow).await);
}

#[tokio::test]
async fn meta_whatsapp_template_pages_report_server_errors_and_timeouts_as_failures() {
    use cpaas::providers::meta_whatsapp::MetaWhatsappClient;

    let server = MockServer::start().await;
    let (config, creds) = meta_client(&server);
    let settings = settings(ProviderKind::MetaWhatsapp, config, creds);
    let http = reqwest::Client::builder()
        .timeout(SHORT_TIMEOUT)
        .build()
        .unwrap();
    let client = MetaWhatsappClient::new(&settings, http).unwrap();
    let page = |response: ResponseTemplate| {
        let server = &server;
        let client = &client;
        async move {
            server.reset().await;
            wiremock::Mock::given(wiremock::matchers::any())
                .respond_with(response)
                .mount(server)
                .await;
            client.template_page(Some("QVFI"), 50).await
        }
    };

    let ok = json!({"data": [{"name": "otp_code", "language": "en_US", "status": "APPROVED",
        "category": "AUTHENTICATION", "id": "1"}, {"id": "2"}],
        "paging": {"cursors": {"before": "A", "after": "B"}}});
    let last = page(ResponseTemplate::new(200).set_body_json(ok))
        .await
        .unwrap();
    assert_eq!(
        last.templates.len(),
        1,
        "an entry without a name is skipped"
    );
    assert_eq!(last.after, None, "no paging.next: the last page");
    let request = only_request(&server).await;
    assert_eq!(request.url.path(), "/v21.0/2233/message_templates");
    let query: HashMap<_, _> = request.url.query_pairs().into_owned().collect();
    assert_eq!(query["after"], "QVFI");
    assert_eq!(query["limit"], "50");

    let unavailable = ResponseTemplate::new(503).set_body_json(json!({"error": {
        "message": "Service temporarily unavailable", "code": 2}}));
    let error = page(unavailable).await.unwrap_err();
    assert_eq!(error.code, "2");
    let error = page(too_slow(
        ResponseTemplate::new(200).set_body_json(json!({"data": []})),
    ))
    .await
    .unwrap_err();
    assert_eq!(error.code, "NO_ANSWER", "{error}");
    let error = page(ResponseTemplate::new(200).set_body_string("<html>"))
        .await
        .unwrap_err();
    assert_eq!(error.code, "INVALID_ANSWER");
}
