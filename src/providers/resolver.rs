//! Name resolution that refuses internal addresses, for webhook deliveries and (outside
//! development) provider calls: a URL is checked when it is saved, but its host name may later
//! resolve to a loopback, private or link-local address (a changed DNS record, DNS rebinding).
//! Only public addresses are connected to, outside development.

use std::net::SocketAddr;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::domain::webhook::is_internal_ip;

/// Resolves with the system resolver and drops internal addresses; a name with only internal
/// addresses is an error.
#[derive(Clone, Copy, Debug, Default)]
pub struct PublicOnlyResolver;

impl Resolve for PublicOnlyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let public = public_addresses(&host).await?;
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

/// The public addresses of `host`.
pub async fn public_addresses(
    host: &str,
) -> Result<Vec<SocketAddr>, Box<dyn std::error::Error + Send + Sync>> {
    let all: Vec<SocketAddr> = tokio::net::lookup_host((host, 0)).await?.collect();
    let public: Vec<SocketAddr> = all
        .iter()
        .copied()
        .filter(|a| !is_internal_ip(a.ip()))
        .collect();
    if public.is_empty() {
        return Err(format!("{host} resolves only to internal addresses").into());
    }
    Ok(public)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_name_that_resolves_to_loopback_is_refused() {
        let err = public_addresses("localhost").await.unwrap_err();
        assert!(err.to_string().contains("internal addresses"), "{err}");
    }
}
