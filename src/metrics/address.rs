//! The `metrics` option: where the endpoint listens.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// A `metrics` value that is not an address and port.
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum AddressError {
    #[error("expected an address and port such as 127.0.0.1:9191, or a port alone, got {0:?}")]
    Malformed(String),
}

/// The address of a `metrics` value: `ADDR:PORT` (`[::1]:9191` for IPv6),
/// or a port alone for loopback, so that the endpoint is reachable from
/// the network only when an address says so. `None` when the value turns
/// the endpoint off (empty, `none`, `off`).
pub fn parse_address(value: &str) -> Result<Option<SocketAddr>, AddressError> {
    let v = value.trim();
    if v.is_empty() || v.eq_ignore_ascii_case("none") || v.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    if let Ok(port) = v.parse::<u16>() {
        return Ok(Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)));
    }
    v.parse::<SocketAddr>()
        .map(Some)
        .map_err(|_| AddressError::Malformed(value.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let a = |s: &str| parse_address(s).unwrap().map(|a| a.to_string());
        assert_eq!(a("127.0.0.1:9191").as_deref(), Some("127.0.0.1:9191"));
        assert_eq!(a(" 9191 ").as_deref(), Some("127.0.0.1:9191"));
        assert_eq!(a("[::1]:9191").as_deref(), Some("[::1]:9191"));
        assert_eq!(a("0.0.0.0:9191").as_deref(), Some("0.0.0.0:9191"));
        assert_eq!(a(""), None);
        assert_eq!(a("none"), None);
        for bad in [
            "localhost:9191",
            "127.0.0.1",
            "127.0.0.1:99999",
            "::1:9191",
            "x",
        ] {
            assert!(parse_address(bad).is_err(), "{bad}");
        }
    }
}
