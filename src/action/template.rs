//! `<tag>` substitution in action commands, in two stages as fail2ban does
//! it.
//!
//! The static stage resolves an action's own options (`<iptables>`,
//! `<blocktype?family=inet6>`, `<br>`) recursively: they come from the
//! administrator's configuration and may refer to each other. The dynamic
//! stage fills in what one ban knows (`<ip>`, `<matches>`, `<F-USER>`), and
//! it never recurses: these values may come from log lines an attacker
//! wrote. Any such value holding more than letters, digits and a few
//! punctuation marks is not pasted into the script at all; it is handed to
//! `/bin/sh` as a positional parameter and the tag becomes a reference to
//! a `f2bV_name` variable, which the shell expands without ever parsing
//! its content as code ([`replace_dynamic_tags`]).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::IpAddr;
use std::sync::{Mutex, OnceLock};

use indexmap::IndexMap;

use super::{quoting, ActionError};
use crate::config::stream::py_float;
use crate::config::tags::{find_tag, substitute};

/// Tags whose values always come from log lines: never resolved between
/// options, and escaped if an option of that name exists.
pub const ESCAPED_TAGS: [&str; 3] = ["matches", "ipmatches", "ipjailmatches"];

/// How many passes the static stage makes before it calls the options
/// self-referencing.
const MAX_PASSES: usize = 26;

/// An address family, as actions see it: IPv4 uses an action's plain
/// options, IPv6 its `opt?family=inet6` variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Family {
    Inet4,
    Inet6,
    /// Not an address (a ban on a user name, say), or an action that does
    /// not distinguish families.
    Unspec,
}

impl Family {
    /// fail2ban's name for it (`inet4`, `inet6`, or empty).
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Inet4 => "inet4",
            Family::Inet6 => "inet6",
            Family::Unspec => "",
        }
    }

    /// The family of an address text, with an optional `/prefix`.
    pub fn of(ip: &str) -> Family {
        let addr = ip.split('/').next().unwrap_or(ip);
        let addr = addr
            .strip_prefix('[')
            .and_then(|a| a.strip_suffix(']'))
            .unwrap_or(addr);
        match addr.parse::<IpAddr>() {
            Ok(IpAddr::V4(_)) => Family::Inet4,
            Ok(IpAddr::V6(_)) => Family::Inet6,
            Err(_) => Family::Unspec,
        }
    }

    /// The `family=...` condition that selects `opt?family=...` options.
    pub fn conditional(self) -> String {
        match self {
            Family::Unspec => String::new(),
            f => format!("family={}", f.as_str()),
        }
    }

    pub(crate) fn from_key(key: &str) -> Family {
        match key {
            "inet4" => Family::Inet4,
            "inet6" => Family::Inet6,
            _ => Family::Unspec,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the dynamic tags of one command come from. The jail implements it
/// (or fills a [`BanInfo`]); values are computed on demand, so an expensive
/// one (a DNS lookup for `<ip-host>`) costs nothing unless a command uses it.
pub trait TagSource {
    /// The value of `<name>` (`ip`, `fid`, `family`, `matches`, ...), or
    /// `None` to leave the tag as it is.
    fn tag(&self, name: &str) -> Option<String>;
    /// The filter's capture `<F-NAME>`, by its ticket key: the name in
    /// lower case, with `id` as `fid` and `port` as `fport`.
    fn data(&self, key: &str) -> Option<String>;
}

/// What one ban knows, as the jail fills it for the actions.
///
/// Every text here may come from a log line; none of it is trusted.
#[derive(Debug, Clone, Default)]
pub struct BanInfo {
    /// The banned address (or whatever the failure id is).
    pub ip: String,
    /// The failure id, when it differs from `ip`.
    pub fid: Option<String>,
    pub failures: u64,
    /// The ticket's time, seconds since the epoch.
    pub time: f64,
    /// Seconds; -1 for a permanent ban.
    pub bantime: i64,
    pub bancount: u64,
    pub matches: Vec<String>,
    /// The ban was restored from the database at start.
    pub restored: bool,
    /// Filter captures for `<F-*>`, keyed as [`TagSource::data`] says.
    pub data: IndexMap<String, String>,
    /// Matches of this address over all jails; `matches` when unknown.
    pub ipmatches: Option<Vec<String>>,
    /// Matches of this address in this jail; `matches` when unknown.
    pub ipjailmatches: Option<Vec<String>>,
    pub ipfailures: Option<u64>,
    pub ipjailfailures: Option<u64>,
    /// The reverse DNS name; fail2ban writes `None` when there is none.
    pub ip_host: Option<String>,
    /// Any other tag (`jail.banned`, `raw-ticket`, ...).
    pub extra: IndexMap<String, String>,
    /// Overrides the family derived from `ip`.
    pub family: Option<Family>,
}

impl BanInfo {
    /// A ban of `ip` at `time`.
    pub fn new(ip: impl Into<String>, time: f64) -> BanInfo {
        BanInfo {
            ip: ip.into(),
            time,
            ..BanInfo::default()
        }
    }

    /// The family the ban belongs to.
    pub fn family(&self) -> Family {
        self.family.unwrap_or_else(|| Family::of(&self.ip))
    }

    /// The info fail2ban gives commands that are not about one ban
    /// (actionstart, actionstop, ...): an empty ticket of the given family.
    pub fn operation(family: Family, time: f64, bantime: i64) -> BanInfo {
        BanInfo {
            time,
            bantime,
            family: Some(family),
            ..BanInfo::default()
        }
    }
}

impl TagSource for BanInfo {
    fn tag(&self, name: &str) -> Option<String> {
        let joined = |v: &Option<Vec<String>>| v.as_ref().unwrap_or(&self.matches).join("\n");
        Some(match name {
            "ip" => self.ip.clone(),
            "family" => match self.family() {
                Family::Unspec => "None".into(),
                f => f.as_str().into(),
            },
            "ip-rev" => ptr(&self.ip),
            "ip-host" => self.ip_host.clone().unwrap_or_else(|| "None".into()),
            "fid" => self.fid.clone().unwrap_or_else(|| self.ip.clone()),
            "failures" => self.failures.to_string(),
            "time" => py_float(self.time),
            "bantime" => self.bantime.to_string(),
            "bancount" => self.bancount.to_string(),
            "matches" => self.matches.join("\n"),
            "restored" => u8::from(self.restored).to_string(),
            "ipmatches" => joined(&self.ipmatches),
            "ipjailmatches" => joined(&self.ipjailmatches),
            "ipfailures" => self.ipfailures.unwrap_or(self.failures).to_string(),
            "ipjailfailures" => self.ipjailfailures.unwrap_or(self.failures).to_string(),
            other => return self.extra.get(other).cloned(),
        })
    }

    fn data(&self, key: &str) -> Option<String> {
        if let Some(v) = self.data.get(key) {
            return Some(v.clone());
        }
        // A ticket's data also holds its failures and matches.
        match key {
            "failures" => Some(self.failures.to_string()),
            "matches" => Some(
                crate::config::PyValue::List(
                    self.matches
                        .iter()
                        .map(|m| crate::config::PyValue::str(m.as_str()))
                        .collect(),
                )
                .to_string(),
            ),
            _ => None,
        }
    }
}

/// The reverse-DNS form of an address with an empty suffix, as fail2ban's
/// `<ip-rev>` (`4.3.2.1.`); empty for anything that is not an address.
fn ptr(ip: &str) -> String {
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => {
            let o = a.octets();
            format!("{}.{}.{}.{}.", o[3], o[2], o[1], o[0])
        }
        Ok(IpAddr::V6(a)) => {
            let mut s = String::with_capacity(64);
            for b in a.octets().iter().rev() {
                s.push_str(&format!("{:x}.{:x}.", b & 0xf, b >> 4));
            }
            s
        }
        Err(_) => String::new(),
    }
}

/// Characters that make a dynamic value go through a shell variable, and
/// that an escaped static value gets a backslash before.
fn is_special(c: char) -> bool {
    matches!(
        c,
        '\\' | '#'
            | '&'
            | ';'
            | '`'
            | '|'
            | '*'
            | '?'
            | '~'
            | '<'
            | '>'
            | '^'
            | '('
            | ')'
            | '['
            | ']'
            | '{'
            | '}'
            | '$'
            | '\''
            | '"'
            | '\n'
            | '\r'
    )
}

/// Backslash-escapes shell metacharacters, as fail2ban's `escapeTag` (used
/// only for options named like log-derived tags).
pub fn escape_tag(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if is_special(c) {
            out.push('\\');
            out.push(match c {
                '\n' => 'n',
                '\r' => 'r',
                c => c,
            });
        } else {
            out.push(c);
        }
    }
    out
}

/// Tags every command knows: `<br>`, `<sp>` and the host's names.
fn builtin(tag: &str) -> Option<String> {
    match tag {
        "br" => Some("\n".into()),
        "sp" => Some(" ".into()),
        "fq-hostname" => Some(hostnames().1.clone()),
        "sh-hostname" => Some(hostnames().0.clone()),
        _ => None,
    }
}

/// The short and fully qualified host names, looked up once.
fn hostnames() -> &'static (String, String) {
    static NAMES: OnceLock<(String, String)> = OnceLock::new();
    NAMES.get_or_init(|| {
        let short = short_hostname();
        let fq = canonical_name(&short).unwrap_or_else(|| short.clone());
        (short, fq)
    })
}

fn short_hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at most
    // that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// The resolver's canonical name for `host`, as Python's `getfqdn` finds
/// it when it contains a dot.
fn canonical_name(host: &str) -> Option<String> {
    let c_host = std::ffi::CString::new(host).ok()?;
    // SAFETY: hints is zeroed as getaddrinfo expects; the result list is
    // read only before freeaddrinfo releases it.
    unsafe {
        let mut hints: libc::addrinfo = std::mem::zeroed();
        hints.ai_flags = libc::AI_CANONNAME;
        let mut res: *mut libc::addrinfo = std::ptr::null_mut();
        if libc::getaddrinfo(c_host.as_ptr(), std::ptr::null(), &hints, &mut res) != 0 {
            return None;
        }
        let mut name = None;
        if !res.is_null() && !(*res).ai_canonname.is_null() {
            let n = std::ffi::CStr::from_ptr((*res).ai_canonname)
                .to_string_lossy()
                .into_owned();
            if n.contains('.') {
                name = Some(n);
            }
        }
        libc::freeaddrinfo(res);
        name
    }
}

/// Replaces each `<tag>` of `s` once, left to right; `f` returning `None`
/// keeps the tag.
fn sub_tags(s: &str, mut f: impl FnMut(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut pos = 0;
    while let Some((start, end)) = find_tag(s, pos) {
        out.push_str(&s[pos..start]);
        match f(&s[start + 1..end - 1]) {
            Some(v) => out.push_str(&v),
            None => out.push_str(&s[start..end]),
        }
        pos = end;
    }
    out.push_str(&s[pos..]);
    out
}

/// Options with their references to each other resolved, for one
/// condition.
type Resolved = IndexMap<String, Option<String>>;

/// An action's options with their values as text, and the static stage of
/// substitution over them (cached: options only change by a reload, which
/// builds a new `Template`).
#[derive(Debug)]
pub struct Template {
    props: IndexMap<String, String>,
    cache: Mutex<HashMap<(String, String), String>>,
}

impl Template {
    pub fn new(props: IndexMap<String, String>) -> Template {
        Template {
            props,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// An option's value, unsubstituted.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.props.get(key).map(String::as_str)
    }

    pub fn props(&self) -> &IndexMap<String, String> {
        &self.props
    }

    /// Does any option have a `?family=` variant?
    pub fn has_conditional(&self) -> bool {
        self.props.keys().any(|k| {
            k.split_once('?').is_some_and(|(name, cond)| {
                !name.is_empty()
                    && name.chars().all(|c| c.is_alphanumeric() || c == '_')
                    && cond.starts_with("family=")
            })
        })
    }

    /// Every option with the others substituted in, for `conditional`.
    /// Not kept: it is needed only until `cache` holds each command, and a
    /// copy of every option per family and action adds up over many jails.
    fn resolved(&self, conditional: &str) -> Result<Resolved, ActionError> {
        let input: IndexMap<String, Option<String>> = self
            .props
            .iter()
            .map(|(k, v)| (k.clone(), Some(v.clone())))
            .collect();
        let ignore: HashSet<String> = ESCAPED_TAGS.iter().map(|s| s.to_string()).collect();
        substitute(&input, conditional, &ignore, &mut |_| Ok(None))
            .map_err(|e| ActionError::Template(e.to_string()))
    }

    /// Resolves the options in `query` (`<actionban>`, say) for the given
    /// `family=...` condition (empty for none). Tags that name no option
    /// (`<ip>`) are left for [`replace_dynamic_tags`].
    pub fn replace_tag(&self, query: &str, conditional: &str) -> Result<String, ActionError> {
        if !query.contains('<') {
            return Ok(query.to_string());
        }
        let key = (query.to_string(), conditional.to_string());
        if let Some(v) = self.cache.lock().unwrap().get(&key) {
            return Ok(v.clone());
        }
        let tags = self.resolved(conditional)?;
        let lookup = |tag: &str| -> Option<String> {
            let mut value = None;
            if !conditional.is_empty() {
                value = tags.get(&format!("{tag}?{conditional}")).cloned().flatten();
            }
            let Some(value) = value.or_else(|| tags.get(tag).cloned().flatten()) else {
                return builtin(tag);
            };
            Some(if ESCAPED_TAGS.contains(&tag) {
                escape_tag(&value)
            } else {
                value
            })
        };
        let mut query = query.to_string();
        let mut passes = MAX_PASSES;
        let value = loop {
            let value = sub_tags(&query, lookup);
            if value == query || !value.contains('<') {
                break value;
            }
            query = value;
            passes -= 1;
            if passes == 0 {
                return Err(ActionError::Template(format!(
                    "unexpected too long replacement interpolation, possible self referencing definitions in query: {query}"
                )));
            }
        };
        self.cache.lock().unwrap().insert(key, value.clone());
        Ok(value)
    }
}

/// A script for `/bin/sh -c` and the values it reads from its positional
/// parameters: fail2ban's `[script, value0, value1, ...]` form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct ShellCommand {
    pub script: String,
    pub args: Vec<String>,
}

impl ShellCommand {
    /// A script with no parameters.
    pub fn plain(script: impl Into<String>) -> ShellCommand {
        ShellCommand {
            script: script.into(),
            args: Vec::new(),
        }
    }

    /// Nothing to run.
    pub fn is_empty(&self) -> bool {
        self.script.is_empty() && self.args.is_empty()
    }
}

impl fmt::Display for ShellCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.args.is_empty() {
            return f.write_str(&self.script);
        }
        let items: Vec<crate::config::PyValue> = std::iter::once(&self.script)
            .chain(&self.args)
            .map(|s| crate::config::PyValue::str(s.as_str()))
            .collect();
        write!(f, "{}", crate::config::PyValue::List(items))
    }
}

/// The shell variable that carries the value of `tag`.
fn var_name(tag: &str) -> String {
    let mut v = String::from("f2bV_");
    v.extend(tag.chars().map(|c| {
        if c.is_ascii_alphanumeric() || c == '_' {
            c
        } else {
            '_'
        }
    }));
    v
}

/// fail2ban's name for the ticket key of an `<F-NAME>` tag.
fn data_key(name: &str) -> String {
    let k = name.to_lowercase();
    match k.as_str() {
        "id" => "fid".into(),
        "port" => "fport".into(),
        _ => k,
    }
}

/// Characters a value may hold and still be written into a script as it
/// is: text with none of them means the same in every place of a script
/// (bare, quoted either way, in a here-document), so an address or a
/// number reads in logs and `batch` as fail2ban writes it. Anything else
/// goes through a variable.
fn is_inert(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '/' | '@' | '%' | '+' | ',' | '-')
}

/// What one `<tag>` of a command becomes.
enum Filled {
    /// Script text: `<br>`, `<sp>`, the host's names, or a tag nobody
    /// knows, kept as written.
    Script(String),
    /// A value from the ban (from a log line, maybe), for the variable
    /// named after the tag.
    Value { var: String, value: String },
}

/// The one way fail3ban fills the dynamic tags of a command (`<ip>`,
/// `<matches>`, `<F-USER>`, ...) after [`Template::replace_tag`]: actions,
/// their hooks, mail actions and the ignorecommand all come through here.
///
/// In one pass and without recursion, as fail2ban does. A value made only
/// of [`is_inert`] characters is written as it is; any other value becomes
/// a positional parameter of `/bin/sh`, copied into a `f2bV_<tag>`
/// variable, and the tag becomes a reference to that variable written for
/// its place in the script ([`quoting::Context::reference`]): the command
/// receives the text unchanged whether the template puts the tag between
/// `"`, between `'` or bare, and the shell never reads the text as code.
///
/// No argument of a process can hold a NUL: each NUL of a value becomes
/// U+FFFD, as undecodable bytes of a log line do, rather than vanishing
/// and joining what it separated (`ro\0ot` must not become `root`).
pub fn replace_dynamic_tags(cmd: &str, info: &dyn TagSource) -> ShellCommand {
    let mut vars: IndexMap<String, String> = IndexMap::new();
    let mut lexer = quoting::Lexer::new();
    let mut script = String::with_capacity(cmd.len());
    let mut pos = 0;
    while let Some((start, end)) = find_tag(cmd, pos) {
        let text = &cmd[pos..start];
        script.push_str(text);
        lexer.push_str(text);
        pos = end;
        let (var, value) = match fill(&cmd[start + 1..end - 1], info) {
            Filled::Value { var, value } => (var, value),
            Filled::Script(text) => {
                script.push_str(&text);
                lexer.push_str(&text);
                continue;
            }
        };
        let value = if value.contains('\0') {
            value.replace('\0', "\u{fffd}")
        } else {
            value
        };
        if value.chars().all(is_inert) {
            script.push_str(&value);
        } else {
            // A backslash just before the tag would take the reference's
            // first character; a backslash-newline is removed whole.
            if lexer.escaping() && lexer.context() != quoting::Context::Single {
                script.push('\n');
            }
            let var = var_name(&var);
            script.push_str(&lexer.context().reference(&var));
            vars.insert(var, value);
        }
        lexer.push_value();
    }
    script.push_str(&cmd[pos..]);
    if vars.is_empty() {
        return ShellCommand::plain(script);
    }
    let mut head = String::new();
    for (i, var) in vars.keys().enumerate() {
        head.push_str(&format!("{var}=${i} "));
    }
    ShellCommand {
        script: format!("{head}\n{script}"),
        args: vars.into_values().collect(),
    }
}

/// What `<name>` becomes: a value of the ban, a built-in, a filter capture
/// (`<F-NAME>`, empty when the filter has none), or itself.
fn fill(name: &str, info: &dyn TagSource) -> Filled {
    if let Some(value) = info.tag(name) {
        return Filled::Value {
            var: name.to_string(),
            value,
        };
    }
    if let Some(text) = builtin(name) {
        return Filled::Script(text);
    }
    match name.strip_prefix("F-") {
        Some(n)
            if !n.is_empty()
                && n.chars().all(|c| {
                    c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_' || c == '-'
                }) =>
        {
            let key = data_key(n);
            Filled::Value {
                value: info.data(&key).unwrap_or_default(),
                var: format!("F_{key}"),
            }
        }
        _ => Filled::Script(format!("<{name}>")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(pairs: &[(&str, &str)]) -> Template {
        Template::new(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn static_tags_recursive_and_conditional() {
        let t = template(&[
            (
                "actionban",
                "<iptables> -I f2b-<name> -s <ip> -j <blocktype><br>x<sp>y",
            ),
            ("iptables", "iptables <lockingopt>"),
            ("iptables?family=inet6", "ip6tables <lockingopt>"),
            ("lockingopt", "-w"),
            ("name", "sshd"),
            ("blocktype", "REJECT"),
        ]);
        assert_eq!(
            t.replace_tag("<actionban>", "").unwrap(),
            "iptables -w -I f2b-sshd -s <ip> -j REJECT\nx y"
        );
        assert_eq!(
            t.replace_tag("<actionban>", "family=inet6").unwrap(),
            "ip6tables -w -I f2b-sshd -s <ip> -j REJECT\nx y"
        );
        assert!(t.has_conditional());
    }

    #[test]
    fn self_reference_is_an_error() {
        let t = template(&[("actionban", "<a>"), ("a", "<b>"), ("b", "<a>")]);
        assert!(matches!(
            t.replace_tag("<actionban>", ""),
            Err(ActionError::Template(_))
        ));
    }

    #[test]
    fn dynamic_values_with_metacharacters_become_variables() {
        let mut info = BanInfo::new("192.0.2.1", 1700000000.5);
        info.matches = vec!["a $(touch /tmp/x)".into(), "b `id`; c".into()];
        info.data.insert("user".into(), "ro'ot\0".into());
        let c = replace_dynamic_tags(
            "echo <ip> <matches> <F-USER> <F-NONE> <time> <unknown>",
            &info,
        );
        assert_eq!(
            c.script,
            "f2bV_matches=$0 f2bV_F_user=$1 \necho 192.0.2.1 \"${f2bV_matches}\" \"${f2bV_F_user}\"  1700000000.5 <unknown>"
        );
        assert_eq!(
            c.args,
            vec!["a $(touch /tmp/x)\nb `id`; c", "ro'ot\u{fffd}"]
        );
    }

    #[test]
    fn dynamic_values_are_not_expanded_again() {
        let mut info = BanInfo::new("192.0.2.1", 0.0);
        info.fid = Some("<ip>".into());
        info.data.insert("user".into(), "<F-HOST>".into());
        let c = replace_dynamic_tags("<fid> <F-USER>", &info);
        assert_eq!(
            c.script,
            "f2bV_fid=$0 f2bV_F_user=$1 \n\"${f2bV_fid}\" \"${f2bV_F_user}\""
        );
        assert_eq!(c.args, vec!["<ip>", "<F-HOST>"]);
    }

    #[test]
    fn references_fit_their_place() {
        let mut info = BanInfo::new("192.0.2.1", 0.0);
        info.data.insert("user".into(), "a b".into());
        let c = replace_dynamic_tags(
            "echo <F-USER> \"<F-USER>x\" '<F-USER>' \\<F-USER> <ip>'<ip>' <F-NONE>",
            &info,
        );
        assert_eq!(
            c.script,
            "f2bV_F_user=$0 \necho \"${f2bV_F_user}\" \"${f2bV_F_user}x\" ''\"${f2bV_F_user}\"'' \\\n\"${f2bV_F_user}\" 192.0.2.1'192.0.2.1' "
        );
        assert_eq!(c.args, vec!["a b"]);
        // Only the tags of a ban: <br> is script text, read as such.
        let c = replace_dynamic_tags("# <br>printf '%s' '<F-USER>'", &info);
        assert_eq!(
            c.script,
            "f2bV_F_user=$0 \n# \nprintf '%s' ''\"${f2bV_F_user}\"''"
        );
    }

    /// Hostile values through real `/bin/sh`, with the tag bare, between
    /// either quotes, in `$(...)`, in backquotes inside double quotes, in
    /// `${x:-...}` and in a here-document: the text arrives unchanged and
    /// nothing runs.
    #[test]
    fn hostile_values_reach_the_shell_as_text() {
        let dir = std::env::temp_dir().join(format!("f3tmpl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        struct Clean(std::path::PathBuf);
        impl Drop for Clean {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
        let _clean = Clean(dir.clone());
        let canary = dir.join("canary");
        let c = canary.display();
        let values = [
            format!("$(touch {c})"),
            format!("`touch {c}`"),
            format!("x; touch {c}"),
            format!("x' ; touch {c}; '"),
            format!("x\" ; touch {c}; \""),
            format!("'\"$(touch {c})\"'"),
            format!("${{IFS}}$(touch${{IFS}}{c})"),
            format!("a\nb\n\ntouch {c}\n"),
            format!("* ? [a] ~ {{a,b}} > {c}"),
            format!("\\\\\"\\'\\$(touch {c})\\"),
            "EOF\nx".to_string(),
            format!("}}}} ) ` $( touch {c}"),
            format!("<ip> <F-USER> %s $0 $1 ${{f2bV_F_user}} $(touch {c})"),
        ];
        let templates = [
            ("printf '[%s]' <F-USER>", "[", "]"),
            ("printf '[%s]' \"<F-USER>\"", "[", "]"),
            ("printf '[%s]' '<F-USER>'", "[", "]"),
            ("printf '[%s]' \"a'<F-USER>'b\"", "[a'", "'b]"),
            ("printf '[%s]' 'a\"<F-USER>\"b'", "[a\"", "\"b]"),
            ("v=<F-USER>; printf '[%s]' \"$v\"", "[", "]"),
            ("printf '[%s]' \"$(printf '%s' <F-USER>)\"", "[", "]"),
            ("printf '[%s]' \"`printf '%s' '<F-USER>'`\"", "[", "]"),
            ("printf '[%s]' ${nothing:-<F-USER>}", "[", "]"),
            ("cat <<EOF\n[<F-USER>]\nEOF", "[", "]\n"),
        ];
        let mut info = BanInfo::new("192.0.2.1", 0.0);
        for value in &values {
            // Command substitution drops trailing new lines.
            let value = value.trim_end_matches('\n');
            info.data.insert("user".into(), value.to_string());
            for (template, before, after) in templates {
                let cmd = replace_dynamic_tags(template, &info);
                let out = std::process::Command::new("/bin/sh")
                    .arg("-c")
                    .arg(&cmd.script)
                    .args(&cmd.args)
                    .current_dir(&dir)
                    .output()
                    .unwrap();
                assert!(!canary.exists(), "{template} ran {value:?}");
                assert_eq!(
                    String::from_utf8_lossy(&out.stdout),
                    format!("{before}{value}{after}"),
                    "{template} with {value:?}: {cmd}\n{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }

    #[test]
    fn info_tags() {
        let mut info = BanInfo::new("2001:db8::1", 10.0);
        info.failures = 3;
        assert_eq!(info.tag("family").unwrap(), "inet6");
        assert_eq!(info.tag("time").unwrap(), "10.0");
        assert_eq!(info.tag("fid").unwrap(), "2001:db8::1");
        assert!(info.tag("ip-rev").unwrap().starts_with("1.0.0.0.0.0."));
        assert!(info.tag("ip-rev").unwrap().ends_with(".8.b.d.0.1.0.0.2."));
        assert_eq!(ptr("192.0.2.1"), "1.2.0.192.");
        assert_eq!(info.tag("ipfailures").unwrap(), "3");
        assert_eq!(BanInfo::new("user", 0.0).tag("family").unwrap(), "None");
    }

    #[test]
    fn escape_tag_like_fail2ban() {
        assert_eq!(escape_tag("a;b\n$(c)"), "a\\;b\\n\\$\\(c\\)");
    }
}
