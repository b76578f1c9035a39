//! The small syntaxes inside option values: `name[k=v, k2="a, b"][k3=...]`,
//! a list of such actions one per line, word lists, and shell-like word
//! splitting for `journalmatch`.
//!
//! The bracket grammar is irregular enough (unquoted values may hold quotes,
//! spaces and new lines) that its precise reading is defined by backtracking
//! regular expressions; we state the grammar as one and let PCRE2 run it, so
//! that odd inputs split exactly where fail2ban splits them.

use std::sync::OnceLock;

use indexmap::IndexMap;
use pcre2::bytes::{Regex, RegexBuilder};

use super::error::{ConfigError, ErrorKind};

/// A value's option key: letters, digits, `_`, `-` and `.`.
const KEY: &str = r"[\w\-.]+";
/// One option value: double-quoted, single-quoted, or bare up to `,`/`]`.
const VALUE: &str = r#"(?:"[^"]*"|'[^']*'|[^,\]]*)"#;

fn build(pattern: &str) -> Regex {
    RegexBuilder::new()
        .utf(true)
        .ucp(true)
        .dotall(true)
        .build(pattern)
        .unwrap_or_else(|e| panic!("built-in pattern {pattern:?}: {e}"))
}

/// One `key=value` of a bracket list and what separates it from the next,
/// or the empty tail, or anything else (an error).
fn option_item() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        build(&format!(
            r#"\s*({KEY})=(?:"([^"]*)"|'([^']*)'|([^,\]]*))(?:,|\]\s*\[|$|(?P<after>.+))|,?\s*$|(?P<junk>.+)"#
        ))
    })
}

/// One action of an action list: a name with optional bracket options, or
/// any run of non-space characters, followed by space or the end.
fn action_item() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        let pair = format!(r"{KEY}={VALUE}\s*(?:,|\]\s*\[)?\s*");
        build(&format!(
            r"(?:[^\[\s]+(?:\s*\[\s*(?:{pair})*\])?\s*|\S+)(?=\n\s*|\s+|$)"
        ))
    })
}

fn char_index(s: &str, byte: usize) -> usize {
    s[..byte].chars().count()
}

fn group<'a>(s: &'a str, caps: &pcre2::bytes::Captures, i: usize) -> Option<&'a str> {
    caps.get(i).map(|m| &s[m.start()..m.end()])
}

fn named<'a>(s: &'a str, caps: &pcre2::bytes::Captures, n: &str) -> Option<(usize, &'a str)> {
    caps.name(n).map(|m| (m.start(), &s[m.start()..m.end()]))
}

fn prefix25(s: &str) -> String {
    s.chars().take(25).collect()
}

/// Splits `name[k=v, ...]` into the name and its options, in order.
pub fn extract_options(value: &str) -> Result<(String, IndexMap<String, String>), ConfigError> {
    let err = |reason: String| {
        ConfigError::bare(ErrorKind::OptionList {
            value: value.to_string(),
            reason,
        })
    };
    let (name, optstr) = match value.find('[') {
        None => (value, None),
        Some(i) => {
            let tail = value[i..].trim_end_matches(char::is_whitespace);
            if !tail.ends_with(']') || tail.len() < 2 {
                return Err(err("unexpected option syntax".into()));
            }
            (&value[..i], Some(&tail[1..tail.len() - 1]))
        }
    };
    if name.is_empty() {
        return Err(err("unexpected option syntax".into()));
    }
    let mut opts = IndexMap::new();
    if let Some(optstr) = optstr.filter(|s| !s.is_empty()) {
        for caps in option_item().captures_iter(optstr.as_bytes()) {
            let caps = caps.map_err(|e| err(e.to_string()))?;
            if let Some((at, after)) = named(optstr, &caps, "after") {
                return Err(err(format!(
                    "unexpected syntax at {} after option {:?}: {}",
                    char_index(optstr, at),
                    group(optstr, &caps, 1).unwrap_or(""),
                    prefix25(after)
                )));
            }
            if let Some((at, junk)) = named(optstr, &caps, "junk") {
                return Err(err(format!(
                    "expected option, wrong syntax at {}: {}",
                    char_index(optstr, at),
                    prefix25(junk)
                )));
            }
            let Some(key) = group(optstr, &caps, 1) else {
                continue;
            };
            let v = (2..=4).find_map(|i| group(optstr, &caps, i)).unwrap_or("");
            opts.insert(key.trim().to_string(), v.trim().to_string());
        }
    }
    Ok((name.to_string(), opts))
}

/// Splits a jail's `action` value into single actions (new lines and spaces
/// separate them, except inside brackets).
pub fn split_with_options(value: &str) -> Vec<String> {
    action_item()
        .find_iter(value.as_bytes())
        .filter_map(Result::ok)
        .map(|m| value[m.start()..m.end()].to_string())
        .collect()
}

/// Words separated by spaces, commas or new lines.
pub fn splitwords(s: &str) -> Vec<String> {
    s.split([' ', ',', '\n'])
        .map(str::trim)
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// POSIX shell-like splitting (Python's `shlex.split`): quotes group,
/// backslash escapes; no comments.
pub fn shlex_split(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(n) => cur.push(n),
                    None => return Err("no escaped character".into()),
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(n) => cur.push(n),
                        None => return Err("no closing quotation".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.peek() {
                            Some('"') | Some('\\') => cur.push(chars.next().unwrap()),
                            _ => cur.push('\\'),
                        },
                        Some(n) => cur.push(n),
                        None => return Err("no closing quotation".into()),
                    }
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(v: &str) -> Vec<(String, String)> {
        extract_options(v).unwrap().1.into_iter().collect()
    }

    #[test]
    fn bracket_options() {
        assert_eq!(extract_options("sshd").unwrap().0, "sshd");
        assert_eq!(
            opts(r#"iptables[name=SSH, port="ssh,2222", protocol='tcp']"#),
            vec![
                ("name".into(), "SSH".into()),
                ("port".into(), "ssh,2222".into()),
                ("protocol".into(), "tcp".into())
            ]
        );
        assert_eq!(
            opts("a[x=1][y=2]"),
            vec![("x".into(), "1".into()), ("y".into(), "2".into())]
        );
        assert_eq!(opts("a[x=1, ]"), vec![("x".into(), "1".into())]);
        assert!(extract_options("a[x=1").is_err());
        assert!(extract_options(r#"a[x="1" y=2]"#).is_err());
        assert!(extract_options("a[?]").is_err());
    }

    #[test]
    fn action_lists() {
        assert_eq!(
            split_with_options("iptables[name=x, port=\"a b\"]\n  mail[dest=a@b]  dummy"),
            vec![
                "iptables[name=x, port=\"a b\"]\n ",
                "mail[dest=a@b] ",
                "dummy"
            ]
        );
    }

    #[test]
    fn words_and_shell_words() {
        assert_eq!(
            splitwords("127.0.0.1/8 ::1,\n 10.0.0.1"),
            vec!["127.0.0.1/8", "::1", "10.0.0.1"]
        );
        assert_eq!(
            shlex_split(r#"_SYSTEMD_UNIT=sshd.service + "_COMM=a b" 'x\y'"#).unwrap(),
            vec!["_SYSTEMD_UNIT=sshd.service", "+", "_COMM=a b", r"x\y"]
        );
    }
}
