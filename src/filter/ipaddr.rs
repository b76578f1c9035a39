//! Failure ids: an address (fail2ban's `IPAddr`) or a raw string.
//!
//! fail2ban parses addresses with `inet_pton`, which refuses leading
//! zeros, hex and short forms, and keeps what it refuses as raw text; it
//! then hands that text to the actions as `<ip>`. But the firewalls parse
//! with `inet_aton` or `getaddrinfo`: `127.000.000.001`, `0x7f000001` and
//! `127.1` are loopback to them, `192.0.2.051` is 192.0.2.41. Such an id
//! passes ignoreip (it is compared as text) and bans an address nobody
//! named, loopback included. So every id goes through [`Fid::canonical`]
//! before it is counted or banned: a canonical address becomes an
//! [`Addr`], raw text that any lenient parser reads as an address is
//! refused, and other raw text (a user name) stays raw as in fail2ban.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An address with its prefix length, as fail2ban's `IPAddr` holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Addr {
    /// The address, host bits cleared when `plen` is shorter than the
    /// address.
    pub ip: IpAddr,
    /// Prefix length (32 or 128 for a single address).
    pub plen: u8,
}

impl Addr {
    /// A single address.
    pub fn single(ip: IpAddr) -> Addr {
        let plen = if ip.is_ipv4() { 32 } else { 128 };
        Addr { ip, plen }
    }

    /// Whether this is one address, not a subnet.
    pub fn is_single(&self) -> bool {
        self.plen == if self.ip.is_ipv4() { 32 } else { 128 }
    }

    fn masked(ip: IpAddr, plen: u32) -> Addr {
        match ip {
            IpAddr::V4(v) => {
                let plen = plen.min(32);
                let mask = if plen == 0 {
                    0
                } else {
                    u32::MAX << (32 - plen)
                };
                Addr {
                    ip: IpAddr::V4(Ipv4Addr::from(u32::from(v) & mask)),
                    plen: plen as u8,
                }
            }
            IpAddr::V6(v) => {
                let plen = plen.min(128);
                let mask = if plen == 0 {
                    0
                } else {
                    u128::MAX << (128 - plen)
                };
                Addr {
                    ip: IpAddr::V6(Ipv6Addr::from(u128::from(v) & mask)),
                    plen: plen as u8,
                }
            }
        }
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ip {
            IpAddr::V4(v) => write!(f, "{v}")?,
            IpAddr::V6(v) => {
                let s = v.segments();
                // glibc's inet_ntop writes IPv4-compatible addresses (::/96)
                // in dotted form; Rust only does that for ::ffff:0:0/96.
                if s[..6] == [0; 6] && (s[6] != 0 || s[7] > 1) {
                    let o = v.octets();
                    write!(f, "::{}.{}.{}.{}", o[12], o[13], o[14], o[15])?
                } else {
                    write!(f, "{v}")?
                }
            }
        }
        // fail2ban omits a zero prefix length too.
        if !self.is_single() && self.plen > 0 {
            write!(f, "/{}", self.plen)?;
        }
        Ok(())
    }
}

/// What identifies a failure: an address, or any other string (a user
/// name, a session id, an address that did not parse).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Fid {
    /// A valid address or subnet.
    Addr(Addr),
    /// Anything else, kept verbatim.
    Raw(String),
}

/// An id refused by [`Fid::canonical`]: no canonical address, but text a
/// firewall reads as one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} is no canonical address, yet a firewall would read it as {reads_as}", text.escape_debug())]
pub struct NotCanonical {
    /// The id as found.
    pub text: String,
    /// What `inet_aton` (or a parser as lenient) makes of it.
    pub reads_as: IpAddr,
}

impl Fid {
    /// The address, if this id is one.
    pub fn addr(&self) -> Option<&Addr> {
        match self {
            Fid::Addr(a) => Some(a),
            Fid::Raw(_) => None,
        }
    }

    /// The id as it may be compared and acted on: raw text that is a
    /// canonical address (an IPv6 address in any of its spellings
    /// included) becomes that address; raw text that a lenient parser
    /// reads as an address (see [`lenient`]) is refused, since reading it
    /// one way or the other (decimal or octal) could ban another host or
    /// loopback; anything else stays raw.
    pub fn canonical(self) -> Result<Fid, NotCanonical> {
        let Fid::Raw(text) = self else {
            return Ok(self);
        };
        if let a @ Fid::Addr(_) = parse_unspec(&text) {
            return Ok(a);
        }
        match lenient(&text) {
            Some(reads_as) => Err(NotCanonical { text, reads_as }),
            None => Ok(Fid::Raw(text)),
        }
    }
}

/// An id given as text (`set <jail> banip`, the database), through
/// [`Fid::canonical`].
pub fn parse_id(text: &str) -> Result<Fid, NotCanonical> {
    Fid::Raw(text.to_string()).canonical()
}

/// The address a lenient parser finds in `text`, the way firewalls and
/// resolvers read what they are given: the first word only (`inet_aton`
/// stops at white space, a shell splits there), brackets and a `/prefix`
/// ignored, an IPv6 address with a `%zone`, and IPv4 in `inet_aton`'s
/// forms: one to four parts, each decimal, octal (leading `0`) or hex
/// (`0x`), the last filling the bytes left, and a trailing dot.
pub fn lenient(text: &str) -> Option<IpAddr> {
    let mut word = text.split_whitespace().next()?;
    if let Some(inner) = word.strip_prefix('[') {
        word = inner.split(']').next().unwrap_or(inner);
    }
    let word = word.split('/').next().unwrap_or(word);
    if word.contains(':') {
        let word = word.split('%').next().unwrap_or(word);
        if let Ok(v6) = word.parse::<Ipv6Addr>() {
            return Some(IpAddr::V6(v6));
        }
        // An embedded IPv4 part in a lenient form: `::ffff:127.1`.
        let (head, tail) = word.rsplit_once(':')?;
        let v4 = inet_aton(tail)?;
        return format!("{head}:{v4}").parse().ok().map(IpAddr::V6);
    }
    let word = match word.strip_suffix('.') {
        Some(w) if !w.is_empty() => w,
        _ => word,
    };
    inet_aton(word).map(IpAddr::V4)
}

/// `inet_aton`'s IPv4 forms: `a.b.c.d`, `a.b.c` (c: 16 bits), `a.b`
/// (b: 24 bits), `a` (32 bits); each part decimal, octal or hex.
fn inet_aton(text: &str) -> Option<Ipv4Addr> {
    let mut parts = [0u64; 4];
    let mut n = 0;
    for p in text.split('.') {
        if n == 4 {
            return None;
        }
        parts[n] = aton_number(p)?;
        n += 1;
    }
    let (head, last) = (&parts[..n - 1], parts[n - 1]);
    let last_bits = 32 - 8 * (n as u32 - 1);
    if head.iter().any(|&b| b > 255) || last >> last_bits != 0 {
        return None;
    }
    let mut v = last as u32;
    for (i, &b) in head.iter().enumerate() {
        v |= (b as u32) << (24 - 8 * i);
    }
    Some(Ipv4Addr::from(v))
}

/// One part of an `inet_aton` address. An octal part with an 8 or 9 is
/// refused by glibc but read as decimal by other parsers: it is taken as
/// decimal, since either way it is no canonical address.
fn aton_number(p: &str) -> Option<u64> {
    let (digits, radix) = match p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
        Some("") => return Some(0),
        Some(h) => (h, 16),
        None if p.len() > 1 && p.starts_with('0') => (p, 8),
        None => (p, 10),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(digits, radix)
        .or_else(|_| digits.parse())
        .ok()
}

impl fmt::Display for Fid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fid::Addr(a) => a.fmt(f),
            Fid::Raw(s) => f.write_str(s),
        }
    }
}

/// Which families to try, like fail2ban's negative `cidr` codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// IPv4 only.
    V4,
    /// IPv6 only.
    V6,
    /// Either.
    Any,
}

/// `text` as an IPv4 address, exactly as `Ipv4Addr::from_str` takes it.
/// Most failures carry one, and the plain dotted quad is read here in one
/// pass; anything else (a leading zero, a stray byte) is left to the
/// standard parser, which has the last word.
fn ipv4(text: &str) -> Option<Ipv4Addr> {
    let b = text.as_bytes();
    let mut octets = [0u8; 4];
    let (mut i, mut n) = (0, 0);
    while n < 4 {
        let start = i;
        let mut v: u32 = 0;
        while i < b.len() && i - start < 3 && b[i].is_ascii_digit() {
            v = v * 10 + u32::from(b[i] - b'0');
            i += 1;
        }
        let len = i - start;
        let last = n == 3;
        let sep_ok = if last {
            i == b.len()
        } else {
            b.get(i) == Some(&b'.')
        };
        if len == 0 || v > 255 || (len > 1 && b[start] == b'0') || !sep_ok {
            return text.parse().ok();
        }
        octets[n] = v as u8;
        n += 1;
        i += 1;
    }
    Some(Ipv4Addr::from(octets))
}

/// Parses like fail2ban's `IPAddr(text, cidr)` with a family code or an
/// explicit prefix length; invalid input gives `Fid::Raw(text)`.
pub fn parse(text: &str, family: Family, cidr: Option<u32>) -> Fid {
    let ip = match family {
        Family::V4 => ipv4(text).map(IpAddr::V4),
        Family::V6 => text.parse::<Ipv6Addr>().ok().map(IpAddr::V6),
        Family::Any => text.parse::<IpAddr>().ok(),
    };
    let Some(ip) = ip else {
        return Fid::Raw(text.to_string());
    };
    if let Some(c) = cidr {
        return Fid::Addr(Addr::masked(ip, c));
    }
    match ip {
        IpAddr::V6(v) => match v.to_ipv4_mapped() {
            Some(v4) => Fid::Addr(Addr::single(IpAddr::V4(v4))),
            None => Fid::Addr(Addr::single(ip)),
        },
        IpAddr::V4(_) => Fid::Addr(Addr::single(ip)),
    }
}

/// Parses like fail2ban's `IPAddr(text)`: brackets stripped, an optional
/// `/plen` or `/mask` suffix honoured.
pub fn parse_unspec(text: &str) -> Fid {
    let mut s = text;
    if s.len() > 2 && s.starts_with('[') && s.ends_with(']') {
        s = &s[1..s.len() - 1];
    }
    let Some((addr, mask)) = s.split_once('/') else {
        return parse(s, Family::Any, None);
    };
    let plen = if mask.contains('.') || mask.contains(':') {
        match parse(mask, Family::Any, None) {
            Fid::Addr(m) => mask_to_plen(m.ip),
            Fid::Raw(_) => None,
        }
    } else {
        mask.parse::<u32>().ok()
    };
    match plen {
        Some(p) => match parse(addr, Family::Any, Some(p)) {
            Fid::Addr(a) => Fid::Addr(a),
            Fid::Raw(_) => Fid::Raw(addr.to_string()),
        },
        None => Fid::Raw(text.to_string()),
    }
}

fn mask_to_plen(ip: IpAddr) -> Option<u32> {
    let (bits, width) = match ip {
        IpAddr::V4(v) => (u32::from(v) as u128, 32),
        IpAddr::V6(v) => (u128::from(v), 128),
    };
    let ones = bits.count_ones();
    let expect = if ones == 0 {
        0
    } else {
        (u128::MAX >> (128 - ones)) << (width - ones)
    };
    (bits == expect).then_some(ones)
}

/// fail2ban's `searchIP`: the whole text is an IPv4 or (bracketed) IPv6
/// address by fail2ban's loose patterns; returns the address part.
pub fn search_ip(text: &str) -> Option<&str> {
    let v4 = text.split('.').count() == 4
        && text
            .split('.')
            .all(|p| (1..=3).contains(&p.chars().count()) && p.chars().all(char::is_numeric));
    if v4 {
        return Some(text);
    }
    let inner = text.strip_prefix('[').unwrap_or(text);
    let inner = inner.strip_suffix(']').unwrap_or(inner);
    if !inner.is_empty()
        && inner.contains(':')
        && inner.chars().all(|c| c.is_ascii_hexdigit() || c == ':')
    {
        return Some(inner);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_fail2ban() {
        assert_eq!(parse("1.2.3.4", Family::V4, None).to_string(), "1.2.3.4");
        assert_eq!(
            parse("01.2.3.4", Family::V4, None),
            Fid::Raw("01.2.3.4".into())
        );
        assert_eq!(
            parse("999.2.3.4", Family::V4, None),
            Fid::Raw("999.2.3.4".into())
        );
        assert_eq!(
            parse("::ffff:1.2.3.4", Family::V6, None).to_string(),
            "1.2.3.4"
        );
        assert_eq!(
            parse("2001:DB8::1", Family::V6, None).to_string(),
            "2001:db8::1"
        );
        assert_eq!(
            parse("1.2.3.4", Family::Any, Some(24)).to_string(),
            "1.2.3.0/24"
        );
        assert_eq!(parse_unspec("[::1]").to_string(), "::1");
        assert_eq!(
            parse_unspec("10.1.2.3/255.255.0.0").to_string(),
            "10.1.0.0/16"
        );
        assert_eq!(parse_unspec("host.example").to_string(), "host.example");
        assert_eq!(
            parse("::1.2.3.4", Family::V6, None).to_string(),
            "::1.2.3.4"
        );
    }

    /// The dotted-quad reader agrees with the standard parser, odd
    /// spellings included.
    #[test]
    fn ipv4_reads_as_std_does() {
        let mut cases: Vec<String> = [
            "0.0.0.0",
            "255.255.255.255",
            "256.1.1.1",
            "1.2.3",
            "1.2.3.4.",
            "1.2.3.4.5",
            ".1.2.3",
            "1..2.3",
            "01.2.3.4",
            "1.2.3.00",
            "1.2.3.0",
            "1234.1.1.1",
            "1.2.3.4 ",
            "",
            "1.2.3.-4",
            "+1.2.3.4",
            "1.2.3.4\n",
            "a.b.c.d",
            "192.0.2.255",
            "1.2.3.25x",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut seed = 7u64;
        for _ in 0..20_000 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let alphabet = b"0123456789.x";
            let len = (seed >> 60) as usize + 1;
            let s: String = (0..len)
                .map(|i| alphabet[((seed >> (i * 4 % 56)) % 12) as usize] as char)
                .collect();
            cases.push(s);
        }
        for c in cases {
            assert_eq!(ipv4(&c), c.parse::<Ipv4Addr>().ok(), "{c:?}");
        }
    }

    /// What glibc's inet_aton and nft make of the ids of issue 13.
    #[test]
    fn lenient_reads_as_inet_aton() {
        let v4 = |s: &str| lenient(s).map(|a| a.to_string());
        for (text, want) in [
            ("127.000.000.001", Some("127.0.0.1")),
            ("0x7f000001", Some("127.0.0.1")),
            ("0X7F.1", Some("127.0.0.1")),
            ("192.0.2.051", Some("192.0.2.41")),
            ("192.0.2.089", Some("192.0.2.89")),
            ("127.1", Some("127.0.0.1")),
            ("192.0.513", Some("192.0.2.1")),
            ("2130706433", Some("127.0.0.1")),
            ("0", Some("0.0.0.0")),
            ("192.0.2.1.", Some("192.0.2.1")),
            ("192.0.2.1 junk", Some("192.0.2.1")),
            ("[192.0.2.1]", Some("192.0.2.1")),
            ("127.000.000.001/8", Some("127.0.0.1")),
            ("::1%lo", Some("::1")),
            ("[fe80::1%eth0]", Some("fe80::1")),
            ("::ffff:127.1", Some("127.0.0.1")),
            ("256.0.0.1", None),
            ("1.2.3.4.5", None),
            ("192.0.2.", Some("192.0.0.2")),
            ("1..2", None),
            ("4294967296", None),
            ("alice", None),
            ("deadbeef", None),
            ("0xg", None),
            ("", None),
            ("-1", None),
            ("+1", None),
        ] {
            // ::ffff:127.0.0.1 prints as such; compare through Fid.
            let got = v4(text).map(|s| parse_unspec(&s).to_string());
            assert_eq!(got.as_deref(), want, "{text:?}");
        }
    }

    #[test]
    fn canonical_keeps_names_and_refuses_lenient_addresses() {
        let c = |s: &str| Fid::Raw(s.into()).canonical();
        assert_eq!(c("alice"), Ok(Fid::Raw("alice".into())));
        assert_eq!(c("2001:DB8::1").unwrap().to_string(), "2001:db8::1");
        assert_eq!(c("[::1]").unwrap().to_string(), "::1");
        assert_eq!(c("::ffff:192.0.2.1").unwrap().to_string(), "192.0.2.1");
        let e = c("192.0.2.051").unwrap_err();
        assert_eq!(e.reads_as.to_string(), "192.0.2.41");
        assert_eq!(
            e.to_string(),
            "192.0.2.051 is no canonical address, yet a firewall would read it as 192.0.2.41"
        );
        assert!(c("127.1").is_err());
        assert!(parse_id("0x7f000001").is_err());
        assert_eq!(parse_id("192.0.2.1").unwrap().to_string(), "192.0.2.1");
    }

    #[test]
    fn search_ip_is_whole_text() {
        assert_eq!(search_ip("1.2.3.4"), Some("1.2.3.4"));
        assert_eq!(search_ip("[::1]"), Some("::1"));
        assert_eq!(search_ip("example.com"), None);
    }
}
