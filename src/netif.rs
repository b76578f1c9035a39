//! The addresses of the host's network interfaces, for `ignoreself`.
//!
//! fail2ban 1.1 (gh-3132) takes every address getifaddrs lists for its own,
//! beside what the host's names resolve to: an address that no name
//! resolves to (a second address, a VPN's) is still the host's and must
//! never be banned.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Every address of every interface, loopback included; empty when the
/// kernel cannot be asked. A netlink dump: it does not wait on the network.
pub fn interface_addresses() -> Vec<IpAddr> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list that freeifaddrs frees
    // below; nothing of it is kept beyond that.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        tracing::warn!(
            "cannot list the interfaces' addresses: {}",
            std::io::Error::last_os_error()
        );
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, not yet
        // freed; its `ifa_addr` is null or points at a sockaddr whose
        // family says which sockaddr_* it is.
        unsafe {
            let ifa = &*cur;
            if let Some(ip) = sockaddr_ip(ifa.ifa_addr) {
                if !out.contains(&ip) {
                    out.push(ip);
                }
            }
            cur = ifa.ifa_next;
        }
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    out
}

/// The address in `sa`, for IPv4 and IPv6 sockaddrs.
///
/// # Safety
/// `sa` is null or points at a valid sockaddr of the size its family says.
unsafe fn sockaddr_ip(sa: *const libc::sockaddr) -> Option<IpAddr> {
    if sa.is_null() {
        return None;
    }
    match i32::from((*sa).sa_family) {
        libc::AF_INET => {
            let sin = &*(sa as *const libc::sockaddr_in);
            Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                sin.sin_addr.s_addr,
            ))))
        }
        libc::AF_INET6 => {
            let sin6 = &*(sa as *const libc::sockaddr_in6);
            Some(IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_among_them() {
        assert!(interface_addresses().contains(&IpAddr::V4(Ipv4Addr::LOCALHOST)));
    }
}
