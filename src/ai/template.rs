//! The template key of a line: what stays when everything that varies
//! between two attempts of the same attack is masked. One shape, one
//! question to the model, however many addresses and users it comes from.

use super::prescreen;

/// Keys are cut to this length: two lines alike this far are one shape.
const MAX_KEY: usize = 400;

/// Words after which comes a name the attacker picks.
const USER_WORDS: &[&str] = &[
    "user", "for", "login", "username", "account", "user=", "login=",
];

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || "_-.:".contains(c)
}

fn mask_word(w: &str, prev: &str) -> String {
    if USER_WORDS.contains(&prev) && !w.is_empty() {
        return "<USER>".into();
    }
    if crate::filter::date::is_date_name(w) {
        return "<D>".into();
    }
    let digits = w.chars().filter(char::is_ascii_digit).count();
    if digits == 0 {
        return w.to_string();
    }
    if w.chars().all(|c| c.is_ascii_digit() || ".:-+".contains(c)) {
        return "<N>".into();
    }
    if w.len() >= 8 && w.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        return "<HEX>".into();
    }
    // Digits inside words (session ids, versions): their runs collapse.
    let mut out = String::with_capacity(w.len());
    let mut in_digits = false;
    for c in w.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('#');
            }
            in_digits = true;
        } else {
            out.push(c);
            in_digits = false;
        }
    }
    out
}

/// Whether the word `prev` is one after which comes a name the client
/// picks (a user name).
pub fn names_user(prev: &str) -> bool {
    USER_WORDS.contains(&prev.to_ascii_lowercase().as_str())
}

/// Whether the key masks `w` (after the word `prev`) as a value that
/// varies between attempts: a user name, an id, a number.
pub fn varies(w: &str, prev: &str) -> bool {
    mask_word(w, &prev.to_ascii_lowercase()) != w
}

/// The template key of `line`.
pub fn key(line: &str) -> String {
    let line = super::cut(line, super::MAX_LINE);
    // Addresses first, since their dots and colons would split them.
    let mut masked = String::with_capacity(line.len());
    let mut pos = 0;
    for (at, text, _) in prescreen::addresses(line) {
        if at < pos {
            continue;
        }
        masked.push_str(&line[pos..at]);
        masked.push('\u{1}');
        pos = at + text.len();
        // A port after the address is part of it.
        if let Some(rest) = line[pos..].strip_prefix(':') {
            let n = rest.chars().take_while(char::is_ascii_digit).count();
            if n > 0 {
                pos += 1 + n;
            }
        }
    }
    masked.push_str(&line[pos..]);
    let mut out = String::with_capacity(masked.len());
    let mut prev = String::new();
    let mut word = String::new();
    let mut last_space = true;
    let flush = |word: &mut String, prev: &mut String, out: &mut String| {
        if !word.is_empty() {
            out.push_str(&mask_word(word, prev));
            *prev = word.to_ascii_lowercase();
            word.clear();
        }
    };
    for c in masked.chars() {
        if c == '\u{1}' {
            flush(&mut word, &mut prev, &mut out);
            out.push_str("<ADDR>");
            prev.clear();
            last_space = false;
        } else if is_word(c) || (c == '=' && !word.is_empty()) {
            word.push(c);
            if c == '=' {
                flush(&mut word, &mut prev, &mut out);
            }
            last_space = false;
        } else {
            flush(&mut word, &mut prev, &mut out);
            if c.is_whitespace() || c.is_control() {
                if !last_space {
                    out.push(' ');
                }
                last_space = true;
            } else {
                out.push(c);
                last_space = false;
            }
        }
        if out.len() >= MAX_KEY {
            break;
        }
    }
    flush(&mut word, &mut prev, &mut out);
    super::cut(out.trim(), MAX_KEY).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_shape_one_key() {
        let a = key(
            r#"203.0.113.5 - - [24/Nov/2026:23:44:58 +0000] "POST /xmlrpc.php HTTP/1.1" 200 412 "-" "Mozilla/5.0""#,
        );
        let b = key(
            r#"198.51.100.77 - - [25/Dec/2026:01:02:03 +0100] "POST /xmlrpc.php HTTP/1.1" 200 9 "-" "Mozilla/5.0""#,
        );
        assert_eq!(a, b);
        assert!(a.starts_with("<ADDR> - - [<N>/<D>/<N> +<N>]"), "{a}");
        let c = key(
            r#"203.0.113.5 - - [24/Nov/2026:23:44:58 +0000] "GET / HTTP/1.1" 200 412 "-" "Mozilla/5.0""#,
        );
        assert_ne!(a, c);
    }

    #[test]
    fn users_ports_pids_and_ids_vary() {
        let a = key(
            "sshd[123]: Failed password for root from 203.0.113.5 port 4242 ssh2 sid=0badc0ffee12",
        );
        let b = key(
            "sshd[98]: Failed password for admin from 2001:db8::5 port 22 ssh2 sid=1234abcdef99",
        );
        assert_eq!(a, b);
    }

    #[test]
    fn huge_lines_make_short_keys() {
        let l = "x".repeat(1 << 20);
        assert!(key(&l).len() <= MAX_KEY);
    }
}
