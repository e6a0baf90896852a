//! The client address of a request. Behind proxies the peer is the last proxy, so the
//! `Forwarded` (`for=`) or `X-Forwarded-For` hops are read, but only when the peer is one of
//! `TRUSTED_PROXIES`, and from the right: the client is the rightmost hop that is not itself a
//! trusted proxy. Anything a client writes to the left of that is ignored, so it cannot pick
//! the address its attempts are counted under.

use std::net::IpAddr;

use actix_web::HttpRequest;
use ipnet::IpNet;

/// The address requests of this client are counted under.
pub fn client_address(req: &HttpRequest, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return Some(peer);
    }
    let mut hops: Vec<IpAddr> = Vec::new();
    for value in req.headers().get_all("forwarded") {
        let Ok(value) = value.to_str() else { continue };
        for element in value.split(',') {
            for pair in element.split(';') {
                if let Some((key, v)) = pair.trim().split_once('=')
                    && key.trim().eq_ignore_ascii_case("for")
                    && let Some(ip) = parse_hop(v)
                {
                    hops.push(ip);
                }
            }
        }
    }
    if hops.is_empty() {
        for value in req.headers().get_all("x-forwarded-for") {
            let Ok(value) = value.to_str() else { continue };
            hops.extend(value.split(',').filter_map(parse_hop));
        }
    }
    Some(
        hops.into_iter()
            .rev()
            .find(|ip| !is_trusted(ip))
            .unwrap_or(peer),
    )
}

/// One hop: `203.0.113.7`, `"[2001:db8::1]:4711"`, `198.51.100.2:80`.
fn parse_hop(raw: &str) -> Option<IpAddr> {
    let v = raw.trim().trim_matches('"');
    if let Ok(ip) = v.parse() {
        return Some(ip);
    }
    if let Some(rest) = v.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    v.rsplit_once(':').and_then(|(host, _)| host.parse().ok())
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    fn req(peer: &str, headers: &[(&str, &str)]) -> HttpRequest {
        let mut r = TestRequest::default().peer_addr(peer.parse().unwrap());
        for (k, v) in headers {
            r = r.insert_header((*k, *v));
        }
        r.to_http_request()
    }

    #[test]
    fn forwarded_hops_count_only_through_a_trusted_proxy_and_from_the_right() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let spoof = [("x-forwarded-for", "1.2.3.4, 203.0.113.7, 10.0.0.2")];
        assert_eq!(
            client_address(&req("10.0.0.1:443", &spoof), &trusted),
            Some("203.0.113.7".parse().unwrap())
        );
        assert_eq!(
            client_address(&req("198.51.100.9:443", &spoof), &trusted),
            Some("198.51.100.9".parse().unwrap()),
            "an untrusted peer's header is ignored"
        );
        let fwd = [(
            "forwarded",
            "for=1.2.3.4, for=\"[2001:db8::1]:4711\";proto=https",
        )];
        assert_eq!(
            client_address(&req("10.0.0.1:443", &fwd), &trusted),
            Some("2001:db8::1".parse().unwrap())
        );
        assert_eq!(
            client_address(&req("10.0.0.1:443", &[]), &trusted),
            Some("10.0.0.1".parse().unwrap())
        );
    }
}
