//! Amazon SNS (SMS) and SES v2 (e-mail), both signed with SigV4.

use cpaas::domain::{Channel, ProviderKind};
use serde_json::{Value, json};
use wiremock::{MockServer, Request, ResponseTemplate};

use super::*;

const KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";

fn aws_credentials() -> Value {
    json!({"access_key_id": KEY_ID, "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"})
}

fn assert_signed(request: &Request, region: &str, service: &str) {
    let authorization = header(request, "authorization");
    assert!(
        authorization.starts_with(&format!("AWS4-HMAC-SHA256 Credential={KEY_ID}/")),
        "{authorization}"
    );
    assert!(
        authorization.contains(&format!("/{region}/{service}/aws4_request")),
        "{authorization}"
    );
    assert!(
        authorization.contains("SignedHeaders=content-type;host;x-amz-date"),
        "{authorization}"
    );
    assert!(authorization.contains("Signature="), "{authorization}");
    assert_eq!(
        header(request, "x-amz-date").len(),
        "20250101T000000Z".len()
    );
}

fn sns_xml(body: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(body.to_owned(), "text/xml")
}

fn sns_error(status: u16, code: &str) -> ResponseTemplate {
    let xml = format!(
        "<ErrorResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\"><Error>\
         <Type>Sender</Type><Code>{code}</Code><Message>{code} happened</Message></Error>\
         <RequestId>9f1c5c1e-7f3c-5b0e-a7a4-2f2b7c1d8e11</RequestId></ErrorResponse>"
    );
    ResponseTemplate::new(status).set_body_raw(xml, "text/xml")
}

const PUBLISHED: &str = "<PublishResponse xmlns=\"http://sns.amazonaws.com/doc/2010-03-31/\">\
    <PublishResult><MessageId>567910cd-659e-55d4-8ccb-5aaf14679dc0</MessageId></PublishResult>\
    <ResponseMetadata><RequestId>d74b8436-ae13-5ab4-a9ff-ce54dfea72a0</RequestId>\
    </ResponseMetadata></PublishResponse>";

#[tokio::test]
async fn sns_publishes_to_the_phone_number_signed_for_sns_in_the_region() {
    let server = MockServer::start().await;
    let config = json!({"region": "eu-west-1", "sender_id": "ACME", "base_url": server.uri()});
    let client = client(ProviderKind::AwsSns, config, aws_credentials());
    let sms = message(Channel::Sms, "+447700900000");
    let outcome = outcome(&server, &*client, &sms, sns_xml(PUBLISHED)).await;
    assert_accepted(&outcome, "567910cd-659e-55d4-8ccb-5aaf14679dc0");

    let request = only_request(&server).await;
    assert_eq!(request.method.as_str(), "POST");
    assert_eq!(request.url.path(), "/");
    assert_signed(&request, "eu-west-1", "sns");
    let form = form(&request);
    assert_eq!(form["Action"], "Publish");
    assert_eq!(form["Version"], "2010-03-31");
    assert_eq!(form["PhoneNumber"], "+447700900000");
    assert_eq!(form["Message"], sms.body);
    assert_eq!(
        form["MessageAttributes.entry.1.Name"],
        "AWS.SNS.SMS.SMSType"
    );
    assert_eq!(form["MessageAttributes.entry.1.Value.DataType"], "String");
    assert_eq!(
        form["MessageAttributes.entry.1.Value.StringValue"],
        "Transactional"
    );
    assert_eq!(
        form["MessageAttributes.entry.2.Name"],
        "AWS.SNS.SMS.SenderID"
    );
    assert_eq!(form["MessageAttributes.entry.2.Value.StringValue"], "ACME");
}

#[tokio::test]
async fn sns_outcomes_follow_the_error_code() {
    let server = MockServer::start().await;
    let config = json!({"region": "us-east-1", "base_url": server.uri()});
    let client = client(ProviderKind::AwsSns, config.clone(), aws_credentials());
    let sms = message(Channel::Sms, "+14155550100");
    let invalid = sns_error(400, "InvalidParameter");
    assert_permanent(
        &outcome(&server, &*client, &sms, invalid).await,
        "InvalidParameter",
    );
    let denied = sns_error(403, "AuthorizationError");
    assert_permanent(
        &outcome(&server, &*client, &sms, denied).await,
        "AuthorizationError",
    );
    let throttled = sns_error(400, "Throttling");
    assert_rate_limited(
        &outcome(&server, &*client, &sms, throttled).await,
        "Throttling",
        None,
    );
    let busy = sns_error(429, "Throttling").insert_header("Retry-After", "4");
    assert_rate_limited(
        &outcome(&server, &*client, &sms, busy).await,
        "Throttling",
        Some(4),
    );
    let internal = sns_error(500, "InternalError");
    assert_transient(
        &outcome(&server, &*client, &sms, internal).await,
        "InternalError",
    );
    let unavailable = sns_error(503, "ServiceUnavailable");
    assert_transient(
        &outcome(&server, &*client, &sms, unavailable).await,
        "ServiceUnavailable",
    );

    let impatient = impatient_client(ProviderKind::AwsSns, config, aws_credentials());
    assert_ambiguous(&outcome(&server, &*impatient, &sms, too_slow(sns_xml(PUBLISHED))).await);
}

fn ses_config(server: &MockServer) -> Value {
    json!({"region": "eu-central-1", "from_email": "noreply@acme.example",
        "configuration_set": "cpaas-events", "base_url": server.uri()})
}

fn ses_error(status: u16, kind: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .insert_header("x-amzn-ErrorType", kind)
        .set_body_json(json!({"message": format!("{kind} happened")}))
}

#[tokio::test]
async fn ses_sends_a_simple_email_with_our_ids_in_the_email_tags() {
    let server = MockServer::start().await;
    let client = client(ProviderKind::AwsSes, ses_config(&server), aws_credentials());
    let mut email = message(Channel::Email, "someone@example.com");
    email.subject = Some("Your code".into());
    let sent = ResponseTemplate::new(200).set_body_json(
        json!({"MessageId": "0100018f2b3c4d5e-6f7a8b9c-0d1e-2f3a-4b5c-6d7e8f9a0b1c-000000"}),
    );
    let outcome = outcome(&server, &*client, &email, sent).await;
    assert_accepted(
        &outcome,
        "0100018f2b3c4d5e-6f7a8b9c-0d1e-2f3a-4b5c-6d7e8f9a0b1c-000000",
    );

    let request = only_request(&server).await;
    assert_eq!(request.url.path(), "/v2/email/outbound-emails");
    assert_signed(&request, "eu-central-1", "ses");
    assert_eq!(header(&request, "content-type"), "application/json");
    let body: Value = request.body_json().unwrap();
    assert_eq!(body["FromEmailAddress"], "noreply@acme.example");
    assert_eq!(
        body["Destination"],
        json!({"ToAddresses": ["someone@example.com"]})
    );
    assert_eq!(body["Content"]["Simple"]["Subject"]["Data"], "Your code");
    assert_eq!(
        body["Content"]["Simple"]["Body"]["Text"]["Data"],
        email.body
    );
    assert_eq!(body["ConfigurationSetName"], "cpaas-events");
    assert_eq!(
        body["EmailTags"],
        json!([{"Name": "message_id", "Value": MESSAGE_ID},
               {"Name": "tenant_id", "Value": TENANT.to_string()}])
    );
}

#[tokio::test]
async fn ses_outcomes_follow_the_error_type_header() {
    let server = MockServer::start().await;
    let client = client(ProviderKind::AwsSes, ses_config(&server), aws_credentials());
    let mut email = message(Channel::Email, "someone@example.com");
    email.subject = Some("Hi".into());
    let rejected = ses_error(400, "MessageRejected");
    assert_permanent(
        &outcome(&server, &*client, &email, rejected).await,
        "MessageRejected",
    );
    let unverified = ses_error(
        400,
        "MailFromDomainNotVerifiedException:http://internal.amazon.com/coral/com.amazon.coral.service/",
    );
    assert_permanent(
        &outcome(&server, &*client, &email, unverified).await,
        "MailFromDomainNotVerifiedException",
    );
    let many = ses_error(429, "TooManyRequestsException").insert_header("Retry-After", "1");
    assert_rate_limited(
        &outcome(&server, &*client, &email, many).await,
        "TooManyRequestsException",
        Some(1),
    );
    let limit = ses_error(400, "LimitExceededException");
    assert_rate_limited(
        &outcome(&server, &*client, &email, limit).await,
        "LimitExceededException",
        None,
    );
    let internal = ses_error(500, "InternalServiceErrorException");
    assert_transient(
        &outcome(&server, &*client, &email, internal).await,
        "InternalServiceErrorException",
    );

    let impatient = impatient_client(ProviderKind::AwsSes, ses_config(&server), aws_credentials());
    let slow = too_slow(ResponseTemplate::new(200).set_body_json(json!({"MessageId": "x"})));
    assert_ambiguous(&outcome(&server, &*impatient, &email, slow).await);
}

#[tokio::test]
async fn ses_sends_text_and_html_bodies_the_reply_to_and_the_sender_name() {
    let server = MockServer::start().await;
    let mut config = ses_config(&server);
    config["from_name"] = json!("Acme Événements");
    let client = client(ProviderKind::AwsSes, config, aws_credentials());
    let mut email = message(Channel::Email, "someone@example.com");
    email.subject = Some("Your tickets".into());
    email.html_body = Some("<p>Your <b>tickets</b></p>".into());
    email.reply_to = Some("help@acme.example".into());
    let sent = ResponseTemplate::new(200).set_body_json(json!({"MessageId": "m-1"}));
    assert_accepted(&outcome(&server, &*client, &email, sent).await, "m-1");
    let body: Value = only_request(&server).await.body_json().unwrap();
    assert_eq!(
        body["Content"]["Simple"]["Body"],
        json!({
            "Text": {"Data": email.body, "Charset": "UTF-8"},
            "Html": {"Data": "<p>Your <b>tickets</b></p>", "Charset": "UTF-8"},
        })
    );
    assert_eq!(body["ReplyToAddresses"], json!(["help@acme.example"]));
    assert_eq!(
        body["FromEmailAddress"],
        "=?UTF-8?B?QWNtZSDDiXbDqW5lbWVudHM=?= <noreply@acme.example>"
    );
}
