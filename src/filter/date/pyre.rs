//! The few rewrites a Python `re` date regex needs to mean the same in
//! PCRE2. Only what date patterns use: the general translator for
//! failregex lives elsewhere.

/// Rewrites Python-only syntax: the `u`, `a` and `L` inline flags (PCRE2 is
/// compiled in UTF/UCP mode, which is Python's default for `str`), `\Z`
/// (Python's end of subject is PCRE2's `\z`), `\uXXXX`/`\UXXXXXXXX` escapes
/// and `{,n}` quantifiers.
pub(super) fn to_pcre2(py: &str) -> String {
    let mut out = String::with_capacity(py.len() + 8);
    let chars: Vec<char> = py.chars().collect();
    let mut i = 0;
    let mut in_class = false;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' if i + 1 < chars.len() => {
                let e = chars[i + 1];
                let hex = |n: usize| -> Option<String> {
                    let h: String = chars.get(i + 2..i + 2 + n)?.iter().collect();
                    h.chars().all(|c| c.is_ascii_hexdigit()).then_some(h)
                };
                match e {
                    'Z' if !in_class => {
                        out.push_str("\\z");
                        i += 2;
                    }
                    'u' | 'U' => {
                        let n = if e == 'u' { 4 } else { 8 };
                        match hex(n) {
                            Some(h) => {
                                out.push_str("\\x{");
                                out.push_str(&h);
                                out.push('}');
                                i += 2 + n;
                            }
                            None => {
                                out.push(c);
                                out.push(e);
                                i += 2;
                            }
                        }
                    }
                    _ => {
                        out.push(c);
                        out.push(e);
                        i += 2;
                    }
                }
            }
            '[' if !in_class => {
                in_class = true;
                out.push(c);
                i += 1;
                if chars.get(i) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                // a `]` right after the opening is a literal in both engines
                if chars.get(i) == Some(&']') {
                    out.push_str("\\]");
                    i += 1;
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(c);
                i += 1;
            }
            '[' if in_class => {
                // Python takes a nested `[` literally; PCRE2 might read `[:`
                out.push_str("\\[");
                i += 1;
            }
            '(' if !in_class && chars.get(i + 1) == Some(&'?') => {
                let mut j = i + 2;
                while j < chars.len() && (chars[j].is_ascii_alphabetic() || chars[j] == '-') {
                    j += 1;
                }
                let flags: String = chars[i + 2..j].iter().collect();
                let end = chars.get(j).copied();
                let is_flags = j > i + 2
                    && flags.chars().all(|f| "aiLmsux-".contains(f))
                    && matches!(end, Some(')') | Some(':'));
                if is_flags {
                    let kept: String = flags.chars().filter(|f| !"aLu".contains(*f)).collect();
                    let kept = kept.trim_end_matches('-');
                    if end == Some(')') && kept.is_empty() {
                        // nothing left: drop the whole group
                    } else {
                        out.push_str("(?");
                        out.push_str(kept);
                        out.push(end.unwrap_or(')'));
                    }
                    i = j + 1;
                } else {
                    out.push(c);
                    i += 1;
                }
            }
            '{' if !in_class && chars.get(i + 1) == Some(&',') => {
                let mut j = i + 2;
                while j < chars.len() && chars[j].is_ascii_digit() {
                    j += 1;
                }
                if j > i + 2 && chars.get(j) == Some(&'}') {
                    out.push_str("{0,");
                    i += 2;
                } else {
                    out.push(c);
                    i += 1;
                }
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::to_pcre2;

    #[test]
    fn rewrites() {
        assert_eq!(to_pcre2("(?iu)a"), "(?i)a");
        assert_eq!(to_pcre2("(?u)a"), "a");
        assert_eq!(to_pcre2("(?u:a)"), "(?:a)");
        assert_eq!(to_pcre2(r"a\Z[\Z]"), r"a\z[\Z]");
        assert_eq!(to_pcre2(r"\u00e9"), r"\x{00e9}");
        assert_eq!(to_pcre2("a{,3}"), "a{0,3}");
        assert_eq!(to_pcre2("[]a]"), r"[\]a]");
        assert_eq!(to_pcre2("(?P<Y>x)(?P=Y)"), "(?P<Y>x)(?P=Y)");
    }
}
