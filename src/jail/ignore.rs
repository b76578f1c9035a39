//! ignoreip, ignoreself and ignorecommand: ids that are never banned.
//!
//! Checked at ban time for every ban whatever its source. Names in ignoreip
//! are resolved once, when added, through a [`Resolver`] the caller gives;
//! the ignorecommand is only prepared here, by the same substitution every
//! action command goes through ([`replace_dynamic_tags`]), and the caller
//! runs it as actions run and reports its answer, which the `ignorecache`
//! remembers.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, RwLock};

use indexmap::IndexMap;

use super::error::Error;
use crate::action::template::{replace_dynamic_tags, BanInfo, ShellCommand, TagSource};
use crate::config::options::extract_options;
use crate::config::time::str2seconds;
use crate::filter::ipaddr::{parse_unspec, Addr, Fid};

/// Turns a host name into addresses.
pub trait Resolver {
    /// The addresses of `name` (empty when it does not resolve).
    fn resolve(&self, name: &str) -> Vec<Addr>;
}

/// The loopback networks, which are the host's own without asking anyone.
pub fn loopback() -> Vec<Addr> {
    vec![
        Addr {
            ip: IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)),
            plen: 8,
        },
        Addr::single(IpAddr::V6(Ipv6Addr::LOCALHOST)),
    ]
}

/// The host's own addresses for `ignoreself`: loopback, and what
/// `localhost` and the host's names resolve to.
pub fn self_addresses(hostnames: &[&str], resolver: &dyn Resolver) -> Vec<Addr> {
    let v = SelfAddrs::new(loopback());
    for name in std::iter::once(&"localhost").chain(hostnames) {
        v.extend(resolver.resolve(name));
    }
    v.to_vec()
}

/// The host's own addresses as the jails' ignore lists share them: what
/// is known at once, completed when a lookup answers later, so that no
/// jail waits for the host's names to be looked up.
#[derive(Debug, Clone, Default)]
pub struct SelfAddrs(Arc<RwLock<Vec<Addr>>>);

impl SelfAddrs {
    pub fn new(addrs: Vec<Addr>) -> SelfAddrs {
        SelfAddrs(Arc::new(RwLock::new(addrs)))
    }

    /// Adds those of `more` not known yet.
    pub fn extend(&self, more: impl IntoIterator<Item = Addr>) {
        let mut v = self.0.write().expect("self addresses lock");
        for a in more {
            if !v.contains(&a) {
                v.push(a);
            }
        }
    }

    pub fn to_vec(&self) -> Vec<Addr> {
        self.0.read().expect("self addresses lock").clone()
    }

    /// Whether `a` is one of them or in one of their networks.
    fn covers(&self, a: &Addr) -> bool {
        self.0
            .read()
            .expect("self addresses lock")
            .iter()
            .any(|s| *s == *a || (!s.is_single() && in_net(a, s)))
    }
}

impl From<Vec<Addr>> for SelfAddrs {
    fn from(addrs: Vec<Addr>) -> SelfAddrs {
        SelfAddrs::new(addrs)
    }
}

/// Whether `a` lies in `net` (fail2ban's `isInNet`: same family, and `a`
/// masked to the net's prefix is the net).
pub fn in_net(a: &Addr, net: &Addr) -> bool {
    match (a.ip, net.ip) {
        (IpAddr::V4(x), IpAddr::V4(n)) => {
            let p = u32::from(net.plen.min(32));
            let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
            u32::from(x) & mask == u32::from(n)
        }
        (IpAddr::V6(x), IpAddr::V6(n)) => {
            let p = u32::from(net.plen.min(128));
            let mask = if p == 0 { 0 } else { u128::MAX << (128 - p) };
            u128::from(x) & mask == u128::from(n)
        }
        _ => false,
    }
}

/// What matched, for the `[jail] Ignore <ip> by <source>` log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Source {
    /// ignoreself.
    SelfRule,
    /// An address or subnet of ignoreip.
    Ip,
    /// A host name of ignoreip.
    Dns,
    /// The ignorecommand.
    Command,
    /// A remembered answer of the ignorecache.
    Cache,
}

impl Source {
    fn text(self) -> &'static str {
        match self {
            Source::SelfRule => "ignoreself rule",
            Source::Ip => "ip",
            Source::Dns => "dns",
            Source::Command => "command",
            Source::Cache => "cache",
        }
    }
}

/// The answer of [`IgnoreList::check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Never ban it.
    Ignored(Source),
    /// Ban it.
    NotIgnored,
    /// Run this ignorecommand (its tags filled, log values as parameters
    /// of `/bin/sh`); exit status 0 means ignore, 1 means ban, anything
    /// else is an error (ban). Then report with
    /// [`IgnoreList::command_answered`].
    RunCommand {
        command: ShellCommand,
        /// The ignorecache key to remember the answer under.
        cache_key: Option<ShellCommand>,
    },
}

/// A set of addresses and networks kept current outside this module:
/// `ignoreip = file:<path>` (fail2ban 1.1.1), whose reading and rereading
/// the server does off the jail's lock.
pub trait AddrSet: std::fmt::Debug + Send + Sync {
    /// Whether `a` is one of them or in one of their networks at `now`.
    fn covers(&self, a: &Addr, now: f64) -> bool;
}

/// The path of an ignoreip item `file:<path>` (also `file:///abs`,
/// `file://abs`: leading slashes stand for one); `None` for any other
/// item and for `file:` without a path.
pub fn file_item(item: &str) -> Option<std::path::PathBuf> {
    let rest = item.strip_prefix("file:")?;
    let bare = rest.trim_start_matches('/');
    if bare.is_empty() {
        return None;
    }
    Some(if bare.len() < rest.len() {
        std::path::Path::new("/").join(bare)
    } else {
        bare.into()
    })
}

/// How an ignoreip file is listed (`get <jail> ignoreip`) and compared
/// (`delignoreip`): `file:` and its path, whichever way it was written.
pub fn file_item_text(path: &std::path::Path) -> String {
    format!("file:{}", path.display())
}

#[derive(Debug, Clone)]
enum Net {
    Addr(Addr),
    Name {
        name: String,
        addrs: Vec<Addr>,
    },
    /// `file:<path>`, as [`file_item_text`] writes it.
    Set {
        item: String,
        set: Arc<dyn AddrSet>,
    },
}

impl PartialEq for Net {
    fn eq(&self, other: &Net) -> bool {
        match (self, other) {
            (Net::Addr(a), Net::Addr(b)) => a == b,
            (Net::Name { name: a, addrs: x }, Net::Name { name: b, addrs: y }) => a == b && x == y,
            (Net::Set { item: a, .. }, Net::Set { item: b, .. }) => a == b,
            _ => false,
        }
    }
}

#[derive(Debug, Clone)]
struct Cache {
    key: String,
    max_count: usize,
    max_time: f64,
    /// Keyed by the key's template with the tags filled, as fail2ban
    /// fills it.
    entries: IndexMap<ShellCommand, (bool, f64)>,
}

impl Cache {
    fn get(&mut self, k: &ShellCommand, now: f64) -> Option<bool> {
        let &(v, expiry) = self.entries.get(k)?;
        if expiry > now {
            return Some(v);
        }
        self.entries.shift_remove(k);
        None
    }

    fn set(&mut self, k: ShellCommand, v: bool, now: f64) {
        // Full: drop the oldest, and go on dropping while they are stale.
        if self.entries.len() >= self.max_count {
            while let Some((_, (_, expiry))) = self.entries.shift_remove_index(0) {
                if expiry > now && self.entries.len() < self.max_count {
                    break;
                }
            }
        }
        self.entries.insert(k, (v, now + self.max_time));
    }
}

/// A jail's ignore rules.
#[derive(Debug, Clone)]
pub struct IgnoreList {
    jail: String,
    singles: HashSet<Addr>,
    nets: Vec<Net>,
    ignore_self: bool,
    self_addrs: SelfAddrs,
    command: Option<String>,
    cache: Option<Cache>,
}

impl IgnoreList {
    /// No rules but ignoreself (on by default, as in fail2ban) over
    /// `self_addrs` (see [`self_addresses`]).
    pub fn new(jail: &str, self_addrs: impl Into<SelfAddrs>) -> IgnoreList {
        IgnoreList {
            jail: jail.to_string(),
            singles: HashSet::new(),
            nets: Vec::new(),
            ignore_self: true,
            self_addrs: self_addrs.into(),
            command: None,
            cache: None,
        }
    }

    /// Sets ignoreself.
    pub fn set_ignore_self(&mut self, on: bool) {
        self.ignore_self = on;
    }

    /// Adds every item of an `ignoreip` value (separated by spaces, commas
    /// or new lines): addresses, subnets (`/24`, `/255.255.0.0`) or names.
    pub fn add_ignore_ip_list(&mut self, value: &str, resolver: &dyn Resolver) {
        for item in value
            .split([' ', ',', '\n'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            self.add_ignore_ip(item, resolver);
        }
    }

    /// Adds an ignoreip file (`file:<path>`) whose addresses `set` keeps.
    pub fn add_ignore_set(&mut self, path: &std::path::Path, set: Arc<dyn AddrSet>) {
        let item = file_item_text(path);
        if self
            .nets
            .iter()
            .any(|n| matches!(n, Net::Set { item: x, .. } if *x == item))
        {
            tracing::info!("  Ignore duplicate {item:?}, already in ignore list");
            return;
        }
        tracing::debug!("  Add {item:?} to ignore list");
        self.nets.push(Net::Set { item, set });
    }

    /// Adds one ignoreip item (`addignoreip`). A `file:` item needs its
    /// reader: [`IgnoreList::add_ignore_set`].
    pub fn add_ignore_ip(&mut self, item: &str, resolver: &dyn Resolver) {
        if item.is_empty() {
            return;
        }
        if item.starts_with("file:") {
            tracing::warn!("  {item:?}: an ignoreip file is not read here");
            return;
        }
        let net = match parse_unspec(item) {
            Fid::Addr(a) => Net::Addr(a),
            Fid::Raw(name) => {
                if self
                    .nets
                    .iter()
                    .any(|n| matches!(n, Net::Name { name: x, .. } if *x == name))
                {
                    tracing::info!(
                        "  Ignore duplicate {:?} ({:?}), already in ignore list",
                        name,
                        item
                    );
                    return;
                }
                let addrs = resolver.resolve(&name);
                tracing::debug!("  Add {:?} to ignore list ({:?})", name, item);
                self.nets.push(Net::Name { name, addrs });
                return;
            }
        };
        let Net::Addr(a) = net else { return };
        if self.singles.contains(&a) || self.nets.contains(&Net::Addr(a)) {
            tracing::info!(
                "  Ignore duplicate {:?} ({:?}), already in ignore list",
                a.to_string(),
                item
            );
            return;
        }
        tracing::debug!("  Add {:?} to ignore list ({:?})", a.to_string(), item);
        if a.is_single() {
            self.singles.insert(a);
        } else {
            self.nets.push(Net::Addr(a));
        }
    }

    /// Removes one item (`delignoreip`), or all with `None`.
    pub fn del_ignore_ip(&mut self, item: Option<&str>) {
        let Some(item) = item else {
            self.singles.clear();
            self.nets.clear();
            return;
        };
        tracing::debug!("  Remove {:?} from ignore list", item);
        if let Some(path) = file_item(item) {
            let item = file_item_text(&path);
            self.nets
                .retain(|n| !matches!(n, Net::Set { item: x, .. } if *x == item));
            return;
        }
        match parse_unspec(item) {
            Fid::Addr(a) => {
                if !self.singles.remove(&a) {
                    self.nets.retain(|n| *n != Net::Addr(a));
                }
            }
            Fid::Raw(name) => self
                .nets
                .retain(|n| !matches!(n, Net::Name { name: x, .. } if *x == name)),
        }
    }

    /// The ignoreip items (`get <jail> ignoreip`): subnets and names in
    /// order, then the single addresses.
    pub fn ignore_ip(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .nets
            .iter()
            .map(|n| match n {
                Net::Addr(a) => a.to_string(),
                Net::Name { name, .. } => name.clone(),
                Net::Set { item, .. } => item.clone(),
            })
            .collect();
        let mut singles: Vec<&Addr> = self.singles.iter().collect();
        singles.sort();
        v.extend(singles.into_iter().map(Addr::to_string));
        v
    }

    /// Sets the ignorecommand (empty for none).
    pub fn set_ignore_command(&mut self, command: &str) {
        self.command = (!command.is_empty()).then(|| command.to_string());
    }

    /// The ignorecommand.
    pub fn ignore_command(&self) -> Option<&str> {
        self.command.as_deref()
    }

    /// Sets ignorecache from its option value, e.g.
    /// `key="<ip>", max-count=100, max-time=5m`; empty turns it off.
    pub fn set_ignore_cache(&mut self, value: &str) -> Result<(), Error> {
        if value.trim().is_empty() {
            self.cache = None;
            return Ok(());
        }
        let err = |msg: String| Error::IgnoreCache {
            value: value.to_string(),
            msg,
        };
        let (_, opts) =
            extract_options(&format!("cache[{value}]")).map_err(|e| err(e.to_string()))?;
        let key = opts.get("key").ok_or_else(|| err("no key".into()))?.clone();
        let max_count = match opts.get("max-count") {
            Some(c) => c
                .parse::<usize>()
                .map_err(|_| err(format!("max-count {c:?} is not an integer")))?,
            None => 100,
        };
        let max_time = match opts.get("max-time") {
            Some(t) => str2seconds(t).map_err(|e| err(format!("max-time {t:?}: {e}")))?,
            None => 300.0,
        };
        self.cache = Some(Cache {
            key,
            max_count,
            max_time,
            entries: IndexMap::new(),
        });
        Ok(())
    }

    /// The ignorecache settings: key, max-count, max-time.
    pub fn ignore_cache(&self) -> Option<(&str, usize, f64)> {
        self.cache
            .as_ref()
            .map(|c| (c.key.as_str(), c.max_count, c.max_time))
    }

    fn log(&self, fid: &Fid, source: Source, log: bool) {
        if log {
            tracing::info!("[{}] Ignore {} by {}", self.jail, fid, source.text());
        }
    }

    /// Whether `fid` is to be ignored at `now`. `info` holds the tags of
    /// its failure for the command and the cache key; without it they
    /// know only the address, as in fail2ban. `log` writes the
    /// `Ignore ... by ...` line.
    pub fn check(&mut self, fid: &Fid, info: Option<&dyn TagSource>, now: f64, log: bool) -> Check {
        let bare;
        let info = match info {
            Some(i) => i,
            None => {
                bare = BanInfo::new(fid.to_string(), now);
                &bare
            }
        };
        let key = match &mut self.cache {
            Some(c) => {
                let key = replace_dynamic_tags(&c.key, info);
                if let Some(v) = c.get(&key, now) {
                    return if v {
                        Check::Ignored(Source::Cache)
                    } else {
                        Check::NotIgnored
                    };
                }
                Some(key)
            }
            None => None,
        };
        let remember = |me: &mut IgnoreList, v: bool| {
            if let (Some(c), Some(k)) = (&mut me.cache, &key) {
                c.set(k.clone(), v, now);
            }
        };
        if let Some(a) = fid.addr() {
            if self.ignore_self && self.self_addrs.covers(a) {
                self.log(fid, Source::SelfRule, log);
                remember(self, true);
                return Check::Ignored(Source::SelfRule);
            }
            if self.singles.contains(a) {
                self.log(fid, Source::Ip, log);
                return Check::Ignored(Source::Ip);
            }
            let hit = self.nets.iter().find_map(|n| match n {
                Net::Addr(net) => in_net(a, net).then_some(Source::Ip),
                Net::Name { addrs, .. } => addrs.contains(a).then_some(Source::Dns),
                Net::Set { set, .. } => set.covers(a, now).then_some(Source::Ip),
            });
            if let Some(src) = hit {
                self.log(fid, src, log);
                remember(self, true);
                return Check::Ignored(src);
            }
        }
        if let Some(cmd) = &self.command {
            let command = replace_dynamic_tags(cmd, info);
            tracing::debug!("ignore command: {}", command);
            return Check::RunCommand {
                command,
                cache_key: key,
            };
        }
        remember(self, false);
        Check::NotIgnored
    }

    /// Records the ignorecommand's answer for `fid`: `ignored` when it
    /// exited 0. Returns the final answer.
    pub fn command_answered(
        &mut self,
        fid: &Fid,
        cache_key: Option<&ShellCommand>,
        ignored: bool,
        now: f64,
        log: bool,
    ) -> Check {
        if let (Some(c), Some(k)) = (&mut self.cache, cache_key) {
            c.set(k.clone(), ignored, now);
        }
        if ignored {
            self.log(fid, Source::Command, log);
            Check::Ignored(Source::Command)
        } else {
            Check::NotIgnored
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_items_in_every_spelling() {
        for item in [
            "file:/etc/x.list",
            "file:///etc/x.list",
            "file://etc/x.list",
        ] {
            let p = file_item(item).unwrap();
            assert_eq!(file_item_text(&p), "file:/etc/x.list", "{item}");
        }
        assert_eq!(
            file_item("file:rel.list").unwrap(),
            std::path::Path::new("rel.list")
        );
        assert_eq!(file_item("file:"), None);
        assert_eq!(file_item("file:///"), None);
        assert_eq!(file_item("192.0.2.1"), None);
    }

    #[derive(Debug)]
    struct Listed(Vec<Addr>);
    impl AddrSet for Listed {
        fn covers(&self, a: &Addr, _now: f64) -> bool {
            self.0.contains(a)
        }
    }

    #[test]
    fn a_file_set_is_listed_checked_and_removed() {
        let mut l = IgnoreList::new("t", vec![]);
        let Fid::Addr(a) = f("192.0.2.7") else {
            unreachable!()
        };
        let path = std::path::Path::new("/etc/x.list");
        l.add_ignore_set(path, Arc::new(Listed(vec![a])));
        l.add_ignore_set(path, Arc::new(Listed(vec![])));
        assert_eq!(l.ignore_ip(), ["file:/etc/x.list"]);
        assert_eq!(
            l.check(&f("192.0.2.7"), None, 0.0, false),
            Check::Ignored(Source::Ip)
        );
        assert_eq!(
            l.check(&f("192.0.2.8"), None, 0.0, false),
            Check::NotIgnored
        );
        l.del_ignore_ip(Some("file:///etc/x.list"));
        assert!(l.ignore_ip().is_empty());
    }

    struct Fake;
    impl Resolver for Fake {
        fn resolve(&self, name: &str) -> Vec<Addr> {
            match name {
                "trusted.example" => vec![match parse_unspec("203.0.113.7") {
                    Fid::Addr(a) => a,
                    Fid::Raw(_) => unreachable!(),
                }],
                "myhost" => vec![match parse_unspec("192.0.2.10") {
                    Fid::Addr(a) => a,
                    Fid::Raw(_) => unreachable!(),
                }],
                _ => vec![],
            }
        }
    }

    fn f(s: &str) -> Fid {
        parse_unspec(s)
    }

    fn list() -> IgnoreList {
        let mut l = IgnoreList::new("sshd", self_addresses(&["myhost"], &Fake));
        l.add_ignore_ip_list(
            "10.0.0.0/8, 192.0.2.1\n2001:db8::/32 trusted.example",
            &Fake,
        );
        l
    }

    /// Addresses found after a jail's list was built are ignored by it
    /// too: the lists share them.
    #[test]
    fn self_addresses_found_later_are_ignored() {
        let shared = SelfAddrs::new(loopback());
        let mut l = IgnoreList::new("j", shared.clone());
        assert_eq!(
            l.check(&f("127.0.1.1"), None, 0.0, false),
            Check::Ignored(Source::SelfRule)
        );
        assert_eq!(
            l.check(&f("192.0.2.10"), None, 0.0, false),
            Check::NotIgnored
        );
        shared.extend(Fake.resolve("myhost"));
        shared.extend(Fake.resolve("myhost"));
        assert_eq!(shared.to_vec().len(), loopback().len() + 1);
        assert_eq!(
            l.check(&f("192.0.2.10"), None, 0.0, false),
            Check::Ignored(Source::SelfRule)
        );
    }

    #[test]
    fn addresses_subnets_names_and_self() {
        let mut l = list();
        assert_eq!(
            l.check(&f("10.1.2.3"), None, 0.0, false),
            Check::Ignored(Source::Ip)
        );
        assert_eq!(
            l.check(&f("192.0.2.1"), None, 0.0, false),
            Check::Ignored(Source::Ip)
        );
        assert_eq!(
            l.check(&f("192.0.2.2"), None, 0.0, false),
            Check::NotIgnored
        );
        assert_eq!(
            l.check(&f("2001:db8::5"), None, 0.0, false),
            Check::Ignored(Source::Ip)
        );
        assert_eq!(
            l.check(&f("203.0.113.7"), None, 0.0, false),
            Check::Ignored(Source::Dns)
        );
        assert_eq!(
            l.check(&f("127.0.0.5"), None, 0.0, false),
            Check::Ignored(Source::SelfRule)
        );
        assert_eq!(
            l.check(&f("::1"), None, 0.0, false),
            Check::Ignored(Source::SelfRule)
        );
        assert_eq!(
            l.check(&f("192.0.2.10"), None, 0.0, false),
            Check::Ignored(Source::SelfRule)
        );
        assert_eq!(
            l.check(&f("some-user"), None, 0.0, false),
            Check::NotIgnored
        );
        l.set_ignore_self(false);
        assert_eq!(
            l.check(&f("192.0.2.10"), None, 0.0, false),
            Check::NotIgnored
        );
        l.del_ignore_ip(Some("10.0.0.0/8"));
        assert_eq!(l.check(&f("10.1.2.3"), None, 0.0, false), Check::NotIgnored);
        assert_eq!(
            l.ignore_ip(),
            ["2001:db8::/32", "trusted.example", "192.0.2.1"]
        );
    }

    #[test]
    fn command_is_prepared_and_cached() {
        let mut l = list();
        l.set_ignore_command("/usr/local/bin/check <ip> '<F-USER>'");
        l.set_ignore_cache(r#"key="<ip>", max-count=2, max-time=5m"#)
            .unwrap();
        let mut info = BanInfo::new("198.51.100.1", 0.0);
        info.data.insert("user".into(), "x'; rm -rf /".into());
        let fid = f("198.51.100.1");
        let Check::RunCommand { command, cache_key } = l.check(&fid, Some(&info), 0.0, false)
        else {
            panic!("expected a command");
        };
        assert_eq!(
            command,
            ShellCommand {
                script: "f2bV_F_user=$0 \n/usr/local/bin/check 198.51.100.1 ''\"${f2bV_F_user}\"''"
                    .into(),
                args: vec!["x'; rm -rf /".into()],
            }
        );
        assert_eq!(cache_key, Some(ShellCommand::plain("198.51.100.1")));
        l.command_answered(&fid, cache_key.as_ref(), true, 0.0, false);
        assert_eq!(
            l.check(&fid, Some(&info), 10.0, false),
            Check::Ignored(Source::Cache)
        );
        // Past max-time the command runs again.
        assert!(matches!(
            l.check(&fid, Some(&info), 301.0, false),
            Check::RunCommand { .. }
        ));
        // Without a failure, the tags know the address only.
        let Check::RunCommand { command, .. } = l.check(&f("192.0.2.77"), None, 0.0, false) else {
            panic!("expected a command");
        };
        assert_eq!(
            command,
            ShellCommand::plain("/usr/local/bin/check 192.0.2.77 ''")
        );
    }

    #[test]
    fn cache_is_bounded() {
        let mut l = IgnoreList::new("j", vec![]);
        l.set_ignore_cache("key=<ip>, max-count=2").unwrap();
        assert_eq!(l.ignore_cache(), Some(("<ip>", 2, 300.0)));
        for ip in ["192.0.2.1", "192.0.2.2", "192.0.2.3"] {
            assert_eq!(l.check(&f(ip), None, 0.0, false), Check::NotIgnored);
        }
        let c = l.cache.as_ref().unwrap();
        assert_eq!(c.entries.len(), 2);
        assert!(!c.entries.contains_key(&ShellCommand::plain("192.0.2.1")));
        assert!(l.set_ignore_cache("max-count=2").is_err());
    }
}
