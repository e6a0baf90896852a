//! AWS Signature Version 4 for the SNS and SES adapters, through the `aws-sigv4` crate.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use reqwest::RequestBuilder;

use super::ProviderSettings;

/// Long-lived access keys for one AWS service in one region.
pub(crate) struct AwsSigner {
    credentials: Credentials,
    region: String,
    service: &'static str,
}

impl AwsSigner {
    /// Reads `access_key_id` and `secret_access_key` from the provider's credentials.
    pub fn new(
        settings: &ProviderSettings,
        region: &str,
        service: &'static str,
    ) -> anyhow::Result<Self> {
        let credentials = Credentials::new(
            settings.require_credential("access_key_id")?,
            settings.require_credential("secret_access_key")?,
            None,
            None,
            "provider-settings",
        );
        Ok(Self {
            credentials,
            region: region.to_owned(),
            service,
        })
    }

    /// A POST of `body` to `url`, signed now. `content_type` is part of the signature.
    pub fn signed_post(
        &self,
        http: &reqwest::Client,
        url: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> anyhow::Result<RequestBuilder> {
        self.signed(http, reqwest::Method::POST, url, Some(content_type), body)
    }

    /// A GET of `url` without a body, signed now.
    pub fn signed_get(&self, http: &reqwest::Client, url: &str) -> anyhow::Result<RequestBuilder> {
        self.signed(http, reqwest::Method::GET, url, None, Vec::new())
    }

    fn signed(
        &self,
        http: &reqwest::Client,
        method: reqwest::Method,
        url: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> anyhow::Result<RequestBuilder> {
        let identity = self.credentials.clone().into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.region)
            .name(self.service)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()?
            .into();
        let headers: Vec<(&str, &str)> = content_type
            .map(|t| ("content-type", t))
            .into_iter()
            .collect();
        let signable = SignableRequest::new(
            method.as_str(),
            url,
            headers.iter().copied(),
            SignableBody::Bytes(&body),
        )?;
        let (instructions, _signature) = sign(signable, &params)?.into_parts();
        let mut request = http.request(method, url);
        if let Some(content_type) = content_type {
            request = request.header(reqwest::header::CONTENT_TYPE, content_type);
        }
        for (name, value) in instructions.headers() {
            request = request.header(name, value);
        }
        Ok(if body.is_empty() {
            request
        } else {
            request.body(body)
        })
    }
}
