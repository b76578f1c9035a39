//! The local first look at an unmatched line: which remote address does it
//! name, and may that address be banned at all? No network, no model.

use std::net::IpAddr;

use crate::filter::ipaddr::parse_unspec;
use crate::jail::ignore::Check;
use crate::jail::IgnoreList;

/// Every address written in `line`, in order, as text.
pub fn addresses(line: &str) -> Vec<(usize, String, IpAddr)> {
    let is_part = |c: char| c.is_ascii_hexdigit() || c == '.' || c == ':';
    let mut out = Vec::new();
    let mut start = None;
    let check = |from: usize, to: usize, out: &mut Vec<(usize, String, IpAddr)>| {
        let tok = line[from..to].trim_matches(|c| c == ':' || c == '.');
        let from = from + line[from..to].find(tok).unwrap_or(0);
        if let Some(ip) = parse(tok) {
            out.push((from, ip.1.to_string(), ip.0));
        }
    };
    for (i, c) in line.char_indices() {
        match (is_part(c), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                check(s, i, &mut out);
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        check(s, line.len(), &mut out);
    }
    out
}

/// An address token, possibly with a `:port` after an IPv4 address.
fn parse(tok: &str) -> Option<(IpAddr, &str)> {
    if tok.len() < 3 {
        return None;
    }
    if let Ok(ip) = tok.parse::<IpAddr>() {
        // Bare hex words and times ("12:30:59") never parse; a v6 needs
        // at least two colons, which std checks.
        return Some((ip, tok));
    }
    let (a, port) = tok.rsplit_once(':')?;
    if !port.is_empty() && port.chars().all(|c| c.is_ascii_digit()) && a.contains('.') {
        return a.parse::<IpAddr>().ok().map(|ip| (ip, a));
    }
    None
}

fn never_remote(ip: &IpAddr) -> bool {
    ip.is_loopback() || ip.is_unspecified() || ip.is_multicast()
}

/// Why a line goes no further.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dropped {
    /// No remote address in it.
    NoAddress,
    /// It names an address that must never be banned (ignoreip, ignoreself,
    /// an ignorecommand we will not run for a mere guess). A line that
    /// mentions one is never used to make a rule: an attacker may have
    /// planted it.
    Ignored(String),
}

/// The remote address of `line`: the first address that is not loopback,
/// provided no address in the line is one the jail ignores.
pub fn remote_address(line: &str, ignore: &mut IgnoreList, now: f64) -> Result<String, Dropped> {
    let mut first = None;
    for (_, text, ip) in addresses(line) {
        if never_remote(&ip) {
            continue;
        }
        match ignore.check(&parse_unspec(&text), None, now, false) {
            Check::NotIgnored => {}
            _ => return Err(Dropped::Ignored(text)),
        }
        first.get_or_insert(text);
    }
    first.ok_or(Dropped::NoAddress)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(ips: &[&str]) -> IgnoreList {
        let mut l = IgnoreList::new("t", vec![]);
        for ip in ips {
            l.add_ignore_ip(ip, crate::dns::Resolver::system());
        }
        l
    }

    #[test]
    fn finds_addresses_with_ports_and_v6() {
        let a = addresses("x 203.0.113.5:443 - [2001:db8::7] at 12:30:59 id deadbeef 10.0.0");
        let t: Vec<_> = a.iter().map(|x| x.1.as_str()).collect();
        assert_eq!(t, ["203.0.113.5", "2001:db8::7"]);
    }

    #[test]
    fn first_remote_address_unless_an_ignored_one_is_planted() {
        let mut l = list(&["192.0.2.0/24"]);
        assert_eq!(
            remote_address("127.0.0.1 proxied 203.0.113.9 GET /", &mut l, 0.0),
            Ok("203.0.113.9".into())
        );
        assert_eq!(
            remote_address("203.0.113.9 GET /?x=192.0.2.4", &mut l, 0.0),
            Err(Dropped::Ignored("192.0.2.4".into()))
        );
        assert_eq!(
            remote_address("no address here", &mut l, 0.0),
            Err(Dropped::NoAddress)
        );
    }
}
