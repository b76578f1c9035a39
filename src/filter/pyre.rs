//! Python `re` syntax to PCRE2 syntax, where the two differ.
//!
//! fail2ban's filters are written for Python's `re`; most of it is valid
//! PCRE2 with the same meaning (including `(?P<name>...)`, `(?P=name)` and
//! `(?(name)...)` conditionals). What differs is rewritten here:
//!
//! - `\Z` is the very end in Python, so it becomes PCRE2's `\z`;
//! - `\uXXXX` and `\UXXXXXXXX` become `\x{...}`;
//! - `[` inside a class is a literal in Python but may open a POSIX class
//!   in PCRE2, so it is escaped;
//! - `{,n}` means `{0,n}` in Python, and is a literal in older PCRE2;
//! - a global flag group such as `(?i)` anywhere in the pattern applies to
//!   the whole pattern (Python before 3.11 did that; 3.11 rejects them, we
//!   stay lenient) and becomes a compile option;
//! - flags PCRE2 lacks (`u`, `L`, and `a` inside a group) are dropped.

use super::pcre::CompileFlags;

/// A pattern translated to PCRE2 syntax plus the global flags it carried.
#[derive(Debug, Clone, PartialEq)]
pub struct Translated {
    /// The PCRE2 pattern.
    pub pattern: String,
    /// Global flags lifted out of the pattern.
    pub flags: CompileFlags,
}

/// Translates a Python regular expression to PCRE2.
pub fn translate(py: &str) -> Translated {
    let mut out = String::with_capacity(py.len() + 16);
    let mut flags = CompileFlags::default();
    let chars: Vec<char> = py.chars().collect();
    let n = chars.len();
    let mut i = 0;
    let mut in_class = false;
    // Position right after the opening `[` or `[^`: a `]` there is literal.
    let mut class_start = 0;
    while i < n {
        let c = chars[i];
        if c == '\\' {
            i += 1;
            let Some(&e) = chars.get(i) else {
                out.push('\\');
                break;
            };
            match e {
                'Z' if !in_class => out.push_str("\\z"),
                'u' | 'U' => {
                    let want = if e == 'u' { 4 } else { 8 };
                    let hex: String = chars[i + 1..]
                        .iter()
                        .take(want)
                        .take_while(|c| c.is_ascii_hexdigit())
                        .collect();
                    if hex.len() == want {
                        out.push_str("\\x{");
                        out.push_str(&hex);
                        out.push('}');
                        i += want;
                    } else {
                        // Invalid in Python too; let PCRE2 report it.
                        out.push('\\');
                        out.push(e);
                    }
                }
                _ => {
                    out.push('\\');
                    out.push(e);
                }
            }
            i += 1;
            continue;
        }
        if in_class {
            match c {
                ']' if i != class_start => in_class = false,
                '[' => {
                    out.push_str("\\[");
                    i += 1;
                    continue;
                }
                _ => {}
            }
            out.push(c);
            i += 1;
            continue;
        }
        match c {
            '[' => {
                in_class = true;
                out.push('[');
                i += 1;
                if chars.get(i) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                class_start = i;
                continue;
            }
            // `{,n}` -> `{0,n}`
            '{' if chars.get(i + 1) == Some(&',') => {
                let digits = chars[i + 2..]
                    .iter()
                    .take_while(|c| c.is_ascii_digit())
                    .count();
                if digits > 0 && chars.get(i + 2 + digits) == Some(&'}') {
                    out.push_str("{0,");
                    i += 2;
                    continue;
                }
            }
            '(' if chars.get(i + 1) == Some(&'?') => {
                if chars.get(i + 2) == Some(&'#') {
                    // A comment: copy it whole so nothing inside is rewritten.
                    let end = chars[i..]
                        .iter()
                        .position(|&c| c == ')')
                        .map_or(n, |p| i + p + 1);
                    out.extend(&chars[i..end]);
                    i = end;
                    continue;
                }
                if let Some((len, text)) = flag_group(&chars[i..], &mut flags) {
                    out.push_str(&text);
                    i += len;
                    continue;
                }
            }
            _ => {}
        }
        out.push(c);
        i += 1;
    }
    Translated {
        pattern: out,
        flags,
    }
}

/// Recognises `(?flags)` (global: lifted into `flags`, returns no text) and
/// `(?on-off:` (scoped: returns the PCRE2 spelling). Returns the number of
/// chars consumed.
fn flag_group(s: &[char], flags: &mut CompileFlags) -> Option<(usize, String)> {
    const ALL: &str = "aiLmsux";
    let mut j = 2;
    let mut on = String::new();
    let mut off = String::new();
    let mut minus = false;
    while let Some(&c) = s.get(j) {
        if ALL.contains(c) {
            if minus {
                off.push(c);
            } else {
                on.push(c);
            }
        } else if c == '-' && !minus {
            minus = true;
        } else {
            break;
        }
        j += 1;
    }
    if on.is_empty() && off.is_empty() {
        return None;
    }
    let keep = |f: &str| {
        f.chars()
            .filter(|c| "imsx".contains(*c))
            .collect::<String>()
    };
    match s.get(j) {
        Some(')') if !minus => {
            for c in on.chars() {
                match c {
                    'i' => flags.caseless = true,
                    'm' => flags.multiline = true,
                    's' => flags.dotall = true,
                    'x' => flags.extended = true,
                    'a' => flags.ascii = true,
                    _ => {}
                }
            }
            Some((j + 1, String::new()))
        }
        Some(':') => {
            let (on, off) = (keep(&on), keep(&off));
            let text = if off.is_empty() {
                if on.is_empty() {
                    "(?:".to_string()
                } else {
                    format!("(?{on}:")
                }
            } else {
                format!("(?{on}-{off}:")
            };
            Some((j + 1, text))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> String {
        translate(s).pattern
    }

    #[test]
    fn end_of_string() {
        assert_eq!(t(r"foo\Z"), r"foo\z");
        assert_eq!(t(r"foo\\Z"), r"foo\\Z");
        assert_eq!(t(r"[\Z]"), r"[\Z]");
    }

    #[test]
    fn global_flags_are_lifted() {
        let tr = translate(r"^foo (?i)bar$");
        assert_eq!(tr.pattern, "^foo bar$");
        assert!(tr.flags.caseless);
        let tr = translate(r"(?im)x");
        assert!(tr.flags.caseless && tr.flags.multiline);
        assert_eq!(tr.pattern, "x");
    }

    #[test]
    fn scoped_flags_are_kept() {
        assert_eq!(t("(?i:expn|vrfy)"), "(?i:expn|vrfy)");
        assert_eq!(t("(?iu:x)"), "(?i:x)");
        assert_eq!(t("(?u:x)"), "(?:x)");
        assert_eq!(t("(?i-s:x)"), "(?i-s:x)");
        assert!(!translate("(?i:x)").flags.caseless);
    }

    #[test]
    fn python_only_escapes_and_quantifiers() {
        assert_eq!(t(r"\u00e9\U0001F600"), r"\x{00e9}\x{0001F600}");
        assert_eq!(t(r"\d{,3}"), r"\d{0,3}");
        assert_eq!(t(r"{,}"), r"{,}");
        assert_eq!(t(r"[[:alpha:]]"), r"[\[:alpha:]]");
        assert_eq!(t(r"[]a]"), r"[]a]");
        assert_eq!(t(r"[^]a]"), r"[^]a]");
    }

    #[test]
    fn python_group_syntax_passes_through() {
        let p = r"(?P<user>\S+) (?P=user)(?(user)a|b)(?#[x)";
        assert_eq!(t(p), p);
    }
}
