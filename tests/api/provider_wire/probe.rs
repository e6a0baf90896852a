//! Health probes: the one cheap authenticated call each adapter makes, and what a refusal
//! becomes.

use base64::Engine;
use cpaas::domain::ProviderKind;
use cpaas::providers::ProviderClient;
use serde_json::{Value, json};
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use super::*;

/// Answers every request with `response`, probes once, and returns the result and the request.
async fn probe(
    server: &MockServer,
    client: &dyn ProviderClient,
    response: ResponseTemplate,
) -> (Result<(), cpaas::providers::CallError>, Request) {
    server.reset().await;
    Mock::given(any())
        .respond_with(response)
        .mount(server)
        .await;
    let result = client.probe().await;
    (result, only_request(server).await)
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

fn ok_json(body: Value) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(body)
}

fn assert_sigv4(request: &Request, region: &str, service: &str) {
    let authorization = header(request, "authorization");
    assert!(
        authorization.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"),
        "{authorization}"
    );
    assert!(
        authorization.contains(&format!("/{region}/{service}/aws4_request")),
        "{authorization}"
    );
    assert!(authorization.contains("Signature="), "{authorization}");
    assert!(!header(request, "x-amz-date").is_empty());
}

fn aws_credentials() -> Value {
    json!({"access_key_id": "AKIDEXAMPLE", "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"})
}

#[tokio::test]
async fn twilio_probes_the_account_record_with_basic_auth() {
    let server = MockServer::start().await;
    let client = client(
        ProviderKind::Twilio,
        json!({"from": "+15005550006", "base_url": server.uri()}),
        json!({"account_sid": "AC123", "auth_token": "secret-token"}),
    );
    let (result, request) = probe(
        &server,
        &*client,
        ok_json(json!({"sid": "AC123", "status": "active"})),
    )
    .await;
    assert_eq!(result, Ok(()));
    assert_eq!(request.method.as_str(), "GET");
    assert_eq!(request.url.path(), "/2010-04-01/Accounts/AC123.json");
    assert_eq!(
        header(&request, "authorization"),
        basic("AC123", "secret-token")
    );

    let refused = ResponseTemplate::new(401)
        .set_body_json(json!({"code": 20003, "message": "Authenticate", "status": 401}));
    let (result, _) = probe(&server, &*client, refused).await;
    let error = result.unwrap_err();
    assert_eq!(error.code, "20003");
    assert_eq!(error.message, "Authenticate");
}

#[tokio::test]
async fn meta_whatsapp_probes_the_phone_number_with_the_bearer_token() {
    let server = MockServer::start().await;
    let client = client(
        ProviderKind::MetaWhatsapp,
        json!({"phone_number_id": "1098765", "waba_id": "2233", "base_url": server.uri()}),
        json!({"access_token": "EAAG-token", "app_secret": "s", "verify_token": "v"}),
    );
    let (result, request) = probe(
        &server,
        &*client,
        ok_json(json!({"id": "1098765", "display_phone_number": "+1 555 0100"})),
    )
    .await;
    assert_eq!(result, Ok(()));
    assert_eq!(request.method.as_str(), "GET");
    assert_eq!(request.url.path(), "/v21.0/1098765");
    assert_eq!(header(&request, "authorization"), "Bearer EAAG-token");

    let expired = ResponseTemplate::new(401).set_body_json(json!({"error": {
        "message": "Error validating access token", "type": "OAuthException", "code": 190}}));
    let (result, _) = probe(&server, &*client, expired).await;
    assert_eq!(result.unwrap_err().code, "190");
}

#[tokio::test]
async fn sendgrid_probes_the_key_scopes_with_the_bearer_key() {
    let server = MockServer::start().await;
    let client = client(
        ProviderKind::Sendgrid,
        json!({"from_email": "noreply@acme.example", "base_url": server.uri()}),
        json!({"api_key": "SG.test-key"}),
    );
    let (result, request) =
        probe(&server, &*client, ok_json(json!({"scopes": ["mail.send"]}))).await;
    assert_eq!(result, Ok(()));
    assert_eq!(request.method.as_str(), "GET");
    assert_eq!(request.url.path(), "/v3/scopes");
    assert_eq!(header(&request, "authorization"), "Bearer SG.test-key");

    let (result, _) = probe(&server, &*client, ResponseTemplate::new(503)).await;
    assert_eq!(result.unwrap_err().code, "HTTP_503");
}

#[tokio::test]
async fn vonage_probes_the_account_balance_with_basic_auth() {
    let server = MockServer::start().await;
    let client = client(
        ProviderKind::Vonage,
        json!({"from": "AcmeInc", "base_url": server.uri()}),
        json!({"api_key": "abcd1234", "api_secret": "s3cr3t", "signature_secret": "sig"}),
    );
    let (result, request) = probe(
        &server,
        &*client,
        ok_json(json!({"value": 10.28, "autoReload": false})),
    )
    .await;
    assert_eq!(result, Ok(()));
    assert_eq!(request.method.as_str(), "GET");
    assert_eq!(request.url.path(), "/account/get-balance");
    assert_eq!(request.url.query(), None, "the secret stays out of the URL");
    assert_eq!(
        header(&request, "authorization"),
        basic("abcd1234", "s3cr3t")
    );

    let refused = ResponseTemplate::new(401)
        .set_body_json(json!({"error-code": "401", "error-code-label": "authentication failed"}));
    let (result, _) = probe(&server, &*client, refused).await;
    let error = result.unwrap_err();
    assert_eq!(error.code, "HTTP_401");
    assert_eq!(error.message, "authentication failed");
}

#[tokio::test]
async fn ses_probes_the_account_with_a_sigv4_get() {
    let server = MockServer::start().await;
    let client = client(
        ProviderKind::AwsSes,
        json!({"region": "eu-central-1", "from_email": "noreply@acme.example", "base_url": server.uri()}),
        aws_credentials(),
    );
    let (result, request) = probe(
        &server,
        &*client,
        ok_json(json!({"SendingEnabled": true, "EnforcementStatus": "HEALTHY"})),
    )
    .await;
    assert_eq!(result, Ok(()));
    assert_eq!(request.method.as_str(), "GET");
    assert_eq!(request.url.path(), "/v2/email/account");
    assert!(request.body.is_empty());
    assert_sigv4(&request, "eu-central-1", "ses");

    let denied = ResponseTemplate::new(403)
        .insert_header(
            "x-amzn-ErrorType",
            "AccessDeniedException:http://internal.amazon.com/",
        )
        .set_body_json(json!({"message": "not authorized"}));
    let (result, _) = probe(&server, &*client, denied).await;
    assert_eq!(result.unwrap_err().code, "AccessDeniedException");
}

#[tokio::test]
async fn sns_probes_get_sms_attributes_with_a_sigv4_post() {
    let server = MockServer::start().await;
    let client = client(
        ProviderKind::AwsSns,
        json!({"region": "eu-west-1", "base_url": server.uri()}),
        aws_credentials(),
    );
    let attributes = "<GetSMSAttributesResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\">\
        <GetSMSAttributesResult><attributes/></GetSMSAttributesResult></GetSMSAttributesResponse>";
    let (result, request) = probe(
        &server,
        &*client,
        ResponseTemplate::new(200).set_body_raw(attributes, "text/xml"),
    )
    .await;
    assert_eq!(result, Ok(()));
    assert_eq!(request.method.as_str(), "POST");
    assert_eq!(request.url.path(), "/");
    let form = form(&request);
    assert_eq!(form["Action"], "GetSMSAttributes");
    assert_eq!(form["Version"], "2010-03-31");
    assert_sigv4(&request, "eu-west-1", "sns");

    let denied = "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidClientTokenId</Code>\
        <Message>The security token included in the request is invalid.</Message></Error></ErrorResponse>";
    let (result, _) = probe(
        &server,
        &*client,
        ResponseTemplate::new(403).set_body_raw(denied, "text/xml"),
    )
    .await;
    assert_eq!(result.unwrap_err().code, "InvalidClientTokenId");
}

#[tokio::test]
async fn fcm_probes_by_exchanging_a_fresh_token() {
    let server = MockServer::start().await;
    let client = client(
        ProviderKind::Fcm,
        json!({"project_id": "acme-push", "base_url": server.uri()}),
        json!({"service_account": {
            "type": "service_account",
            "client_email": "cpaas@acme-push.iam.gserviceaccount.com",
            "private_key": std::fs::read_to_string(crate::helpers::key_path()).unwrap(),
            "token_uri": format!("{}/token", server.uri()),
        }}),
    );
    let token = ok_json(json!({"access_token": "ya29.t", "expires_in": 3600}));
    let (result, request) = probe(&server, &*client, token.clone()).await;
    assert_eq!(result, Ok(()));
    assert_eq!(request.method.as_str(), "POST");
    assert_eq!(request.url.path(), "/token");
    let form = form(&request);
    assert_eq!(
        form["grant_type"],
        "urn:ietf:params:oauth:grant-type:jwt-bearer"
    );
    assert_eq!(form["assertion"].split('.').count(), 3, "a signed JWT");
    // A second probe exchanges again instead of trusting the cached token.
    let (result, _) = probe(&server, &*client, token).await;
    assert_eq!(result, Ok(()));

    let refused = ResponseTemplate::new(400)
        .set_body_json(json!({"error": "invalid_grant", "error_description": "Invalid JWT"}));
    let (result, _) = probe(&server, &*client, refused).await;
    assert_eq!(result.unwrap_err().code, "TOKEN_INVALID_GRANT");
}

#[tokio::test]
async fn a_sandbox_probe_always_succeeds() {
    let client = client(ProviderKind::Sandbox, json!({}), json!({}));
    assert_eq!(client.probe().await, Ok(()));
}
