//! fail2ban's regex tags (`<HOST>`, `<F-ID>`, `<F-USER>`...) expanded into
//! named groups, compiled for PCRE2.
//!
//! The expansions are fail2ban's own, character for character, so that the
//! same lines match and the same text lands in the same group.

use std::collections::BTreeSet;
use std::sync::Mutex;

use super::pcre::{self, Limits, MatchAbort};
use super::pyre;
use super::FilterError;
use crate::config::TreeVersion;

/// A group's text: mostly short (addresses, users, ids), so kept inline.
pub(crate) type GroupText = compact_str::CompactString;

/// A group's name, shared by every failure that has the group: copying it
/// costs nothing, where a shared pointer would be counted up and down
/// for each group of each failure. Names are only made by [`intern`] (or
/// are one of the names below, which it hands out), so two are the same
/// name exactly when they point at the same text: comparing them is one
/// comparison of pointers, where comparing text was a call to memcmp for
/// each of the dozen names a failure's groups are searched for.
#[derive(Debug, Clone, Copy, Eq, PartialOrd, Ord)]
pub(crate) struct GroupName(&'static str);

impl PartialEq for GroupName {
    fn eq(&self, other: &GroupName) -> bool {
        std::ptr::eq(self.0, other.0)
    }
}

impl std::ops::Deref for GroupName {
    type Target = str;
    fn deref(&self) -> &str {
        self.0
    }
}

impl std::fmt::Display for GroupName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// The names the filter itself reads.
pub(crate) mod names {
    use super::GroupName;
    pub(crate) static CIDR: GroupName = GroupName("cidr");
    pub(crate) static CONTENT: GroupName = GroupName("content");
    pub(crate) static DNS: GroupName = GroupName("dns");
    pub(crate) static FID: GroupName = GroupName("fid");
    pub(crate) static IP4: GroupName = GroupName("ip4");
    pub(crate) static IP6: GroupName = GroupName("ip6");
    pub(crate) static MLFFORGET: GroupName = GroupName("mlfforget");
    pub(crate) static MLFGAINED: GroupName = GroupName("mlfgained");
    pub(crate) static MLFID: GroupName = GroupName("mlfid");
    pub(crate) static NOFAIL: GroupName = GroupName("nofail");
    pub(crate) static USER: GroupName = GroupName("user");
    pub(super) static ALL: [&GroupName; 11] = [
        &CIDR, &CONTENT, &DNS, &FID, &IP4, &IP6, &MLFFORGET, &MLFGAINED, &MLFID, &NOFAIL, &USER,
    ];

    /// Whether the filter reads `n` to find a failure's id or to merge
    /// it (everything but the prefregex's content): a lean failure keeps
    /// no other group.
    pub(super) fn is_read(n: GroupName) -> bool {
        n != CONTENT && ALL.iter().any(|&&a| a == n)
    }
}

/// The one copy of `name` for the whole process. Names are leaked: a
/// configuration uses a few dozen, and reloading it interns the same ones
/// again, so they are bounded by the distinct names ever configured.
fn intern(name: &str) -> GroupName {
    static NAMES: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());
    let mut known = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    if known.is_empty() {
        known.extend(names::ALL.iter().map(|n| n.0));
    }
    if let Some(&n) = known.get(name) {
        return GroupName(n);
    }
    let n: &'static str = Box::leak(name.into());
    known.insert(n);
    GroupName(n)
}

/// IPv4 address as fail2ban spells it (deliberately loose: `999.1.1.1`
/// matches and is later kept as a raw id).
pub const IP4_RE: &str = r"(?:\d{1,3}\.){3}\d{1,3}";
/// IPv6 address as fail2ban 1.0.2 spells it: `::` alone does not match.
pub const IP6_RE_1_0: &str = r"(?:[0-9a-fA-F]{1,4}::?|::){1,7}(?:[0-9a-fA-F]{1,4}|(?<=:):)";
/// IPv6 address as fail2ban 1.1 spells it: `::` (the unspecified address)
/// matches, and 1.1 takes it for a host like any other.
pub const IP6_RE_1_1: &str = r"(?:[0-9a-fA-F]{1,4}::?|:){1,7}(?:[0-9a-fA-F]{1,4}|(?<=:):)";

/// The IPv6 group of the tags of a tree written for `version`: the text
/// `get JAIL failregex` prints is that fail2ban's.
pub fn ip6_re(version: TreeVersion) -> &'static str {
    match version {
        TreeVersion::V1_0 => IP6_RE_1_0,
        TreeVersion::V1_1 => IP6_RE_1_1,
    }
}

fn r_ip4() -> String {
    format!("(?:::f{{4,6}}:)?(?P<ip4>{IP4_RE})")
}
fn r_ip6(v: TreeVersion) -> String {
    format!("(?P<ip6>{})", ip6_re(v))
}
const R_DNS: &str = r"(?P<dns>[\w\-.^_]*\w)";
const R_CIDR: &str = r"(?P<cidr>\d+)";
fn r_addr(v: TreeVersion) -> String {
    format!(r"\[?(?:{}|{})\]?", r_ip4(), r_ip6(v))
}
fn r_host(v: TreeVersion) -> String {
    format!("(?:{}|{R_DNS})", r_addr(v))
}
fn r_subnet(v: TreeVersion) -> String {
    format!(r"\[?(?:{}|{})(?:/{R_CIDR})?\]?", r_ip4(), r_ip6(v))
}

/// How `<HOST>` expands: with `usedns = no` it only matches addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UseDns {
    /// Resolve names found in `<HOST>`.
    Yes,
    /// Resolve, and warn when a name was resolved.
    #[default]
    Warn,
    /// Never resolve; `<HOST>` matches addresses only.
    No,
    /// Never resolve; names are kept as raw ids.
    Raw,
}

impl UseDns {
    /// Parses fail2ban's `usedns` value; unknown values fall back to `no`
    /// with an error logged, as fail2ban does.
    pub fn parse(s: &str) -> UseDns {
        match s.trim().to_ascii_lowercase().as_str() {
            "yes" | "true" => UseDns::Yes,
            "warn" => UseDns::Warn,
            "no" | "false" => UseDns::No,
            "raw" => UseDns::Raw,
            other => {
                tracing::error!("Incorrect value {other:?} specified for usedns. Using safe 'no'");
                UseDns::No
            }
        }
    }

    /// fail2ban's name of the value, as `get <jail> usedns` answers it.
    pub fn as_str(self) -> &'static str {
        match self {
            UseDns::Yes => "yes",
            UseDns::Warn => "warn",
            UseDns::No => "no",
            UseDns::Raw => "raw",
        }
    }
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Expands fail2ban's tags in `regex`, as fail2ban's `_resolveHostTag`
/// of the fail2ban `version` does.
pub fn expand_tags(regex: &str, use_dns: UseDns, version: TreeVersion) -> String {
    let mut out = String::with_capacity(regex.len() * 2);
    let mut open_tags: Vec<String> = Vec::new();
    let mut skiplines = 0;
    let mut rest = regex;
    while let Some(lt) = rest.find('<') {
        out.push_str(&rest[..lt]);
        let after = &rest[lt + 1..];
        // `</?[\w\-]+/?>`
        let mut k = 0;
        if after.starts_with('/') {
            k = 1;
        }
        let word_len: usize = after[k..]
            .chars()
            .take_while(|&c| is_word(c) || c == '-')
            .map(char::len_utf8)
            .sum();
        let mut end = k + word_len;
        if word_len > 0 && after[end..].starts_with('/') {
            end += 1;
        }
        if word_len == 0 || !after[end..].starts_with('>') {
            out.push('<');
            rest = after;
            continue;
        }
        let tag = &rest[lt..lt + 1 + end + 1];
        let tn = &after[..end];
        rest = &after[end + 1..];
        let tags = TagState {
            use_dns,
            version,
            open: &mut open_tags,
            skiplines: &mut skiplines,
        };
        out.push_str(&subst_tag(tag, tn, tags));
    }
    out.push_str(rest);
    out
}

/// How [`expand_tags`] expands, and what it has seen so far.
struct TagState<'a> {
    use_dns: UseDns,
    version: TreeVersion,
    open: &'a mut Vec<String>,
    skiplines: &'a mut usize,
}

fn subst_tag(tag: &str, tn: &str, st: TagState) -> String {
    let TagState {
        use_dns,
        version,
        open,
        skiplines,
    } = st;
    match tn {
        "HOST" => {
            return if use_dns == UseDns::No {
                r_addr(version)
            } else {
                r_host(version)
            }
        }
        "SKIPLINES" => {
            let s = format!(r"\n(?P<skiplines{}>(?:(?:.*\n)*?))", *skiplines);
            *skiplines += 1;
            return s;
        }
        "IP4" | "F-IP4/" => return r_ip4(),
        "IP6" | "F-IP6/" => return r_ip6(version),
        "ADDR" | "F-ADDR/" => return r_addr(version),
        "CIDR" | "F-CIDR/" => return R_CIDR.to_string(),
        "SUBNET" | "F-SUBNET/" => return r_subnet(version),
        "DNS" | "F-DNS/" => return R_DNS.to_string(),
        "F-ID/" => return r"(?P<fid>\S+)".to_string(),
        "F-PORT/" => return r"(?P<fport>\w+)".to_string(),
        _ => {}
    }
    // `^(/?)F-([A-Z0-9_\-]+)$`
    let (close, name) = match tn.strip_prefix('/') {
        Some(n) => (true, n),
        None => (false, tn),
    };
    let Some(name) = name.strip_prefix("F-") else {
        return tag.to_string();
    };
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_' || c == '-')
    {
        return tag.to_string();
    }
    if close {
        return if open.iter().any(|t| t == name) {
            ")".to_string()
        } else {
            tag.to_string()
        };
    }
    if !open.iter().any(|t| t == name) {
        open.push(name.to_string());
    }
    format!("(?P<{}>", map_tag_to_opt(name))
}

/// fail2ban's short names for some custom tags (`F-ID` -> `fid`).
fn map_tag_to_opt(tag: &str) -> String {
    let t = tag.to_lowercase();
    match t.as_str() {
        "id" => "fid".to_string(),
        "port" => "fport".to_string(),
        _ => t,
    }
}

/// Rewrites `((?i)x)` and `(?:(?i)x)` to `(?i:x)`, as fail2ban does before
/// compiling.
fn glob_to_local_flags(regex: &str) -> String {
    let b = regex.as_bytes();
    let mut out = String::with_capacity(regex.len());
    let mut i = 0;
    let mut copied = 0;
    while i < b.len() {
        if b[i] == b'(' && (i == 0 || b[i - 1] != b'\\') {
            let mut j = i + 1;
            if b[j..].starts_with(b"?:") {
                j += 2;
            }
            if b[j..].starts_with(b"(?") {
                let k = j + 2;
                let letters = b[k..].iter().take_while(|c| c.is_ascii_lowercase()).count();
                if letters > 0 && b.get(k + letters) == Some(&b')') {
                    out.push_str(&regex[copied..i]);
                    out.push_str(&regex[j..k + letters]);
                    out.push(':');
                    i = k + letters + 1;
                    copied = i;
                    continue;
                }
            }
        }
        i += 1;
    }
    out.push_str(&regex[copied..]);
    out
}

/// Group numbers resolved once at compile time.
#[derive(Debug, Clone, Default)]
pub(crate) struct Special {
    pub content: Option<usize>,
    pub skiplines: Vec<usize>,
}

/// A compiled fail2ban regex (prefregex, ignoreregex, or the base of a
/// failregex): tags expanded, translated for PCRE2 and JIT-compiled.
#[derive(Debug)]
pub struct Regex {
    source: String,
    expanded: String,
    re: pcre::Regex,
    /// Named groups in pattern order, as Python's `groupdict` lists them.
    names: Vec<(GroupName, usize)>,
    /// Those of `names` the filter itself reads (see [`names::is_read`]).
    read_names: Vec<(GroupName, usize)>,
    /// `alt_user_1` -> `user` merges, sorted by group name.
    alts: Vec<(usize, GroupName)>,
    /// `tuple_id_1` -> `id` combinations, sorted by group name.
    tuples: Vec<(usize, GroupName)>,
    pub(crate) special: Special,
}

impl Regex {
    /// Compiles a fail2ban regex. `multiline` is fail2ban's `maxlines > 1`;
    /// the tags are expanded as the fail2ban `version` does.
    pub fn new(
        regex: &str,
        multiline: bool,
        use_dns: UseDns,
        version: TreeVersion,
        limits: Limits,
    ) -> Result<Regex, FilterError> {
        let expanded = expand_tags(regex, use_dns, version);
        if expanded.trim_start().is_empty() {
            return Err(FilterError::EmptyRegex);
        }
        let expanded = glob_to_local_flags(&expanded);
        let tr = pyre::translate(&expanded);
        let mut flags = tr.flags;
        flags.multiline |= multiline;
        let re =
            pcre::Regex::new(&tr.pattern, flags, limits).map_err(|e| FilterError::Compile {
                regex: expanded.clone(),
                message: e.to_string(),
            })?;
        let mut names: Vec<(GroupName, usize)> =
            re.names().iter().map(|(k, v)| (intern(k), *v)).collect();
        names.sort();
        let get = |n: &str| re.names().get(n).copied();
        let mut skiplines = Vec::new();
        while let Some(i) = get(&format!("skiplines{}", skiplines.len())) {
            skiplines.push(i);
        }
        let special = Special {
            content: get("content"),
            skiplines,
        };
        let mut alts = Vec::new();
        let mut tuples = Vec::new();
        for (name, idx) in &names {
            // `^(alt_|tuple_)(.*?)(?:_\d+)?$`, only for names longer than `alt_`
            if name.len() <= 4 {
                continue;
            }
            let (list, rest) = if let Some(r) = name.strip_prefix("alt_") {
                (&mut alts, r)
            } else if let Some(r) = name.strip_prefix("tuple_") {
                (&mut tuples, r)
            } else {
                continue;
            };
            let base = match rest.rfind('_') {
                Some(p)
                    if p + 1 < rest.len() && rest[p + 1..].bytes().all(|b| b.is_ascii_digit()) =>
                {
                    &rest[..p]
                }
                _ => rest,
            };
            list.push((*idx, intern(&map_tag_to_opt(base))));
        }
        // fail2ban sorts the alt/tuple names (above); its dict of groups
        // is in pattern order.
        names.sort_by_key(|(_, i)| *i);
        let read_names = names
            .iter()
            .copied()
            .filter(|&(n, _)| names::is_read(n))
            .collect();
        Ok(Regex {
            source: regex.to_string(),
            expanded,
            re,
            names,
            read_names,
            alts,
            tuples,
            special,
        })
    }

    /// The regex as configured (tags not expanded).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The regex with tags expanded, as fail2ban reports it.
    pub fn expanded(&self) -> &str {
        &self.expanded
    }

    /// Whether PCRE2 JIT compiled it.
    pub fn is_jit(&mut self) -> bool {
        self.re.is_jit()
    }

    /// Whether the regex has a named group `name`.
    pub fn has_group(&self, name: &str) -> bool {
        self.re.names().contains_key(name)
    }

    /// Searches `subject`. A match limit hit counts as no match, with a
    /// warning: a hostile line must not stall the filter.
    #[inline]
    pub fn search(&mut self, subject: &str) -> bool {
        // Not `search_known(subject, subject.is_ascii())`: most searches
        // end before PCRE2, and only PCRE2 needs to know.
        let found = self.re.search(subject);
        self.or_warn(found, subject)
    }

    /// [`Regex::search`] when the caller already knows whether `subject`
    /// is all ASCII (a filter tries many regexes on one buffer).
    #[inline]
    pub(crate) fn search_known(&mut self, subject: &str, ascii: bool) -> bool {
        let found = self.re.search_known(subject, ascii);
        self.or_warn(found, subject)
    }

    /// The answer of a search, where a search that gave up counts as no
    /// match, with a warning.
    #[inline]
    fn or_warn(&self, found: Result<bool, MatchAbort>, subject: &str) -> bool {
        match found {
            Ok(m) => m,
            Err(abort) => {
                self.warn_abort(abort, subject);
                false
            }
        }
    }

    #[cold]
    #[inline(never)]
    fn warn_abort(&self, abort: MatchAbort, subject: &str) {
        match abort {
            MatchAbort::Limit => tracing::warn!(
                regex = %self.source,
                len = subject.len(),
                "regex match limit reached; line treated as not matching"
            ),
            MatchAbort::Other(code) => tracing::warn!(
                regex = %self.source,
                error = %pcre::error_message(code),
                "regex match failed; line treated as not matching"
            ),
        }
    }

    /// [`Regex::search_known`] without the warnings: a limit hit is
    /// returned, for callers that only look ahead and leave the warning to
    /// the filter.
    #[inline]
    pub(crate) fn try_search_known(
        &mut self,
        subject: &str,
        ascii: bool,
    ) -> Result<bool, MatchAbort> {
        self.re.search_known(subject, ascii)
    }

    /// See [`pcre::Regex::anchored_start`].
    pub(crate) fn anchored_start(&self) -> Option<&[bool; 256]> {
        self.re.anchored_start()
    }

    /// See [`pcre::Regex::offsets`].
    pub(crate) fn offsets(&self) -> Option<&[usize]> {
        self.re.offsets()
    }

    /// See [`pcre::Regex::set_offsets`].
    pub(crate) fn set_offsets(&mut self, offsets: &[usize]) -> bool {
        self.re.set_offsets(offsets)
    }

    /// Span of the whole match of the last successful search.
    pub fn span(&self) -> (usize, usize) {
        self.re.group(0).unwrap_or((0, 0))
    }

    /// Byte span of group number `i` of the last successful search.
    pub(crate) fn group_span(&self, i: usize) -> Option<(usize, usize)> {
        self.re.group(i)
    }

    /// Text of group number `i` in `subject` (the string last searched).
    pub fn group_at<'s>(&self, subject: &'s str, i: Option<usize>) -> Option<&'s str> {
        let (s, e) = self.re.group(i?)?;
        subject.get(s..e)
    }

    /// Text of the named group in `subject` (the string last searched).
    pub fn group<'s>(&self, subject: &'s str, name: &str) -> Option<&'s str> {
        self.group_at(subject, self.re.names().get(name).copied())
    }

    /// All named groups of the last match, as fail2ban's `getGroups`, in
    /// the order Python's `groupdict` keeps (by group number): every
    /// group with its value or `None`, then alternate names merged (the
    /// first non-empty `alt_user*` fills an empty `user`) and tuples
    /// combined.
    pub fn groups(&self, subject: &str) -> Vec<(String, Option<String>)> {
        let mut g = Vec::new();
        self.groups_into(subject, None, false, &mut g);
        g.into_iter()
            .map(|(k, v)| (k.to_string(), v.map(String::from)))
            .collect()
    }

    /// [`Regex::groups`] into `g` (cleared first), with the names shared
    /// and short values kept inline, so that a filter reuses one vector
    /// from match to match; group number `skip` is left unset (not
    /// copied): a filter drops the prefregex's `content` anyway, and it is
    /// most of the line. With `read_only`, only the groups the filter
    /// reads are kept (and the alternates and tuples that fill them).
    pub(crate) fn groups_into(
        &self,
        subject: &str,
        skip: Option<usize>,
        read_only: bool,
        g: &mut Vec<(GroupName, Option<GroupText>)>,
    ) {
        g.clear();
        let names = if read_only {
            &self.read_names
        } else {
            &self.names
        };
        g.extend(names.iter().map(|(n, i)| {
            let v = if skip == Some(*i) {
                None
            } else {
                self.group_at(subject, Some(*i)).map(GroupText::from)
            };
            (*n, v)
        }));
        fn get(g: &[(GroupName, Option<GroupText>)], n: GroupName) -> Option<&str> {
            g.iter()
                .find(|(k, _)| *k == n)
                .and_then(|(_, v)| v.as_deref())
        }
        fn set(g: &mut Vec<(GroupName, Option<GroupText>)>, n: GroupName, v: GroupText) {
            match g.iter_mut().find(|(k, _)| *k == n) {
                Some(e) => e.1 = Some(v),
                None => g.push((n, Some(v))),
            }
        }
        let wanted = |t: GroupName| !read_only || names::is_read(t);
        for (idx, target) in self.alts.iter().filter(|(_, t)| wanted(*t)) {
            let v = self.group_at(subject, Some(*idx)).unwrap_or("");
            if !v.is_empty() && get(g, *target).is_none_or(str::is_empty) {
                set(g, *target, v.into());
            }
        }
        // fail2ban builds a Python tuple; its repr is the closest string form.
        let mut tuples: Vec<(GroupName, Vec<Option<String>>)> = Vec::new();
        for (idx, target) in self.tuples.iter().filter(|(_, t)| wanted(*t)) {
            let v = self.group_at(subject, Some(*idx)).map(str::to_string);
            match tuples.iter_mut().find(|(t, _)| t == target) {
                Some((_, parts)) => parts.push(v),
                None => tuples.push((*target, vec![get(g, *target).map(str::to_string), v])),
            }
        }
        for (target, parts) in tuples {
            let items: Vec<String> = parts
                .iter()
                .map(|p| match p {
                    Some(s) => format!("'{s}'"),
                    None => "None".to_string(),
                })
                .collect();
            set(g, target, format!("({})", items.join(", ")).into());
        }
    }

    /// Lines captured by `<SKIPLINES>` in the last match.
    pub(crate) fn skipped_lines<'s>(&self, subject: &'s str) -> Vec<&'s str> {
        let mut out = Vec::new();
        for &i in &self.special.skiplines {
            if let Some(t) = self.group_at(subject, Some(i)) {
                // Python's splitlines(): also splits on \r and other breaks,
                // but the buffer only ever joins with \n.
                out.extend(t.lines());
            }
        }
        out
    }
}

/// A failregex: a [`Regex`] that must identify the failure (by `<HOST>`,
/// `<ADDR>`, `<F-ID>`, `<F-MLFID>`..., here or in the prefregex).
#[derive(Debug)]
pub struct FailRegex {
    regex: Regex,
}

const FAILURE_ID_PRESENTS: [&str; 5] = ["fid", "ip4", "ip6", "dns", "mlfid"];

impl FailRegex {
    /// Compiles a failregex; `prefregex` is the filter's, if any.
    pub fn new(
        regex: &str,
        prefregex: Option<&Regex>,
        multiline: bool,
        use_dns: UseDns,
        version: TreeVersion,
        limits: Limits,
    ) -> Result<FailRegex, FilterError> {
        let regex = Regex::new(regex, multiline, use_dns, version, limits)?;
        let has_id = |r: &Regex| FAILURE_ID_PRESENTS.iter().any(|g| r.has_group(g));
        if !has_id(&regex) && !prefregex.is_some_and(has_id) {
            return Err(FilterError::NoFailureId {
                regex: regex.expanded.clone(),
            });
        }
        Ok(FailRegex { regex })
    }

    /// The underlying regex.
    pub fn regex(&self) -> &Regex {
        &self.regex
    }

    /// The underlying regex, for searching.
    pub fn regex_mut(&mut self) -> &mut Regex {
        &mut self.regex
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_expands_like_fail2ban() {
        let e = expand_tags("from <HOST> port", UseDns::Warn, TreeVersion::V1_0);
        assert!(e.contains("(?P<ip4>") && e.contains("(?P<ip6>") && e.contains("(?P<dns>"));
        let e = expand_tags("from <HOST>", UseDns::No, TreeVersion::V1_0);
        assert!(!e.contains("(?P<dns>"));
        assert_eq!(
            expand_tags("<F-ID/>", UseDns::No, TreeVersion::V1_0),
            r"(?P<fid>\S+)"
        );
    }

    #[test]
    fn the_unspecified_address_is_a_host_for_1_1_only() {
        let host = |v| {
            let mut r =
                Regex::new("from <HOST>$", false, UseDns::No, v, Limits::default()).unwrap();
            let line = "failed from ::";
            r.search(line).then(|| r.groups(line))
        };
        assert!(host(TreeVersion::V1_0).is_none());
        let g = host(TreeVersion::V1_1).expect("1.1 takes ::");
        let ip6 = g.iter().find(|(k, _)| k == "ip6").unwrap().1.clone();
        assert_eq!(ip6.as_deref(), Some("::"));
    }

    #[test]
    fn custom_tags() {
        assert_eq!(
            expand_tags(
                "user <F-USER>\\S+</F-USER> x",
                UseDns::No,
                TreeVersion::V1_0
            ),
            "user (?P<user>\\S+) x"
        );
        assert_eq!(
            expand_tags("<F-ID>a</F-ID>", UseDns::No, TreeVersion::V1_0),
            "(?P<fid>a)"
        );
        // A close tag that was never opened stays as it is.
        assert_eq!(
            expand_tags("</F-USER>", UseDns::No, TreeVersion::V1_0),
            "</F-USER>"
        );
        // Lower case and unknown tags stay as they are.
        assert_eq!(
            expand_tags("<F-user> <foo> <", UseDns::No, TreeVersion::V1_0),
            "<F-user> <foo> <"
        );
        assert_eq!(
            expand_tags(
                "<F-ALT_USER1>x</F-ALT_USER1>",
                UseDns::No,
                TreeVersion::V1_0
            ),
            "(?P<alt_user1>x)"
        );
    }

    #[test]
    fn skiplines_are_numbered() {
        let e = expand_tags("a<SKIPLINES>b<SKIPLINES>", UseDns::No, TreeVersion::V1_0);
        assert!(e.contains("skiplines0") && e.contains("skiplines1"));
    }

    #[test]
    fn global_flags_made_local() {
        assert_eq!(glob_to_local_flags("a(?:(?i)expn|vrfy)"), "a(?i:expn|vrfy)");
        assert_eq!(glob_to_local_flags("a((?i)x)"), "a(?i:x)");
        assert_eq!(glob_to_local_flags(r"a\((?i)x)"), r"a\((?i)x)");
    }

    #[test]
    fn groups_and_alternates() {
        let mut r = Regex::new(
            r"user (?:<F-USER>\w+</F-USER>|<F-ALT_USER>\S+</F-ALT_USER>) from <HOST>",
            false,
            UseDns::Warn,
            TreeVersion::V1_0,
            Limits::default(),
        )
        .unwrap();
        let s = "user j@x from 10.0.0.1";
        assert!(r.search(s));
        let g = r.groups(s);
        let get = |n: &str| g.iter().find(|(k, _)| k == n).unwrap().1.clone();
        assert_eq!(get("user").as_deref(), Some("j@x"));
        assert_eq!(get("ip4").as_deref(), Some("10.0.0.1"));
        assert_eq!(get("ip6"), None);
    }

    #[test]
    fn failregex_needs_an_id() {
        let e = FailRegex::new(
            "^foo$",
            None,
            false,
            UseDns::No,
            TreeVersion::V1_0,
            Limits::default(),
        );
        assert!(matches!(e, Err(FilterError::NoFailureId { .. })));
        let pre = Regex::new(
            "<F-MLFID>x</F-MLFID>",
            false,
            UseDns::No,
            TreeVersion::V1_0,
            Limits::default(),
        )
        .unwrap();
        assert!(FailRegex::new(
            "^foo$",
            Some(&pre),
            false,
            UseDns::No,
            TreeVersion::V1_0,
            Limits::default()
        )
        .is_ok());
    }

    #[test]
    fn conditional_by_name_compiles() {
        let mut r = Regex::new(
            r"(?:(?P<cond_user>u) )?(?(cond_user)a|b)<F-ID/>",
            false,
            UseDns::No,
            TreeVersion::V1_0,
            Limits::default(),
        )
        .unwrap();
        assert!(r.search("u ax"));
        assert!(r.search("bx"));
        assert!(!r.search("u bx") || r.span().0 > 0);
    }
}
