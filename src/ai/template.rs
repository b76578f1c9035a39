//! The template key of a line: what stays when everything that varies
//! between two attempts of the same attack is masked. One shape, one
//! question to the model, however many addresses and users it comes from.
//!
//! What decides the meaning stays: the words the service writes (`login
//! ok` is not `login failed`, `Accepted` is not `Failed`), an HTTP
//! status's class (`2xx`, `4xx`), a URL's first path segment and its file
//! extension. What varies per request is masked: addresses and ports,
//! user names, numbers, ids, dates, the inner path segments of a URL and
//! its query string. The client still writes words the key keeps (a
//! one-segment path, a user agent): how many new shapes one address and
//! one jail may start a minute is capped in [`super::intake`].

use super::prescreen;

/// Keys are cut to this length: two lines alike this far are one shape.
const MAX_KEY: usize = 400;

/// Words after which comes a name the attacker picks.
const USER_WORDS: &[&str] = &[
    "user", "for", "login", "username", "account", "user=", "login=",
];

/// Words never masked as a user name, even right after a user word: they
/// say what happened (`login failed`, `for invalid user`), or they are the
/// glue of the sentence (`login for user x`). A client who picks one of
/// them as its name makes one more shape, never someone else's.
const MEANING_WORDS: &[&str] = &[
    "ok",
    "okay",
    "success",
    "successful",
    "succeeded",
    "failed",
    "failure",
    "fail",
    "denied",
    "accepted",
    "rejected",
    "refused",
    "invalid",
    "incorrect",
    "wrong",
    "bad",
    "unknown",
    "illegal",
    "error",
    "blocked",
    "allowed",
    "granted",
    "expired",
    "locked",
    "disabled",
    "attempt",
    "from",
    "to",
    "by",
    "as",
    "with",
    "via",
    "on",
    "at",
    "in",
    "of",
];

/// A masked user name.
const USER: &str = "<USER>";

/// Words after which a three-digit number is an HTTP status.
const STATUS_WORDS: &[&str] = &["status", "status=", "status:", "code=", "status_code="];

/// Markers of masked text while the key is built; none is a word
/// character, and control characters in the line are white space by then.
const ADDR: char = '\u{1}';
const PATH: char = '\u{2}';
const QUERY: char = '\u{3}';
const AGENT: char = '\u{4}';

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || "_-.:".contains(c)
}

/// User words that come before another one as glue (`for user x`,
/// `login account x`); after the others, a user word is the name itself.
const GLUE_WORDS: &[&str] = &["for", "login"];

/// Whether the word `w` (lower case) is kept after the user word `prev`.
/// After an assignment (`user=`) comes the value, whatever it says.
fn means(w: &str, prev: &str) -> bool {
    !prev.ends_with('=')
        && (MEANING_WORDS.contains(&w) || GLUE_WORDS.contains(&prev) && USER_WORDS.contains(&w))
}

/// The class of an HTTP status (`404` is `4xx`), if `w` is one.
fn status_class(w: &str) -> Option<String> {
    let n: u16 = w.parse().ok().filter(|_| w.len() == 3)?;
    (100..600).contains(&n).then(|| format!("{}xx", n / 100))
}

/// `w` masked, after the word `prev` (lower case); `status` when the
/// place says a three-digit number there is an HTTP status.
fn mask_word(w: &str, prev: &str, status: bool) -> String {
    if USER_WORDS.contains(&prev) && !w.is_empty() && !means(&w.to_ascii_lowercase(), prev) {
        return USER.into();
    }
    if crate::filter::date::is_date_name(w) {
        return "<D>".into();
    }
    let digits = w.chars().filter(char::is_ascii_digit).count();
    if digits == 0 {
        return w.to_string();
    }
    if let Some(class) = status.then(|| status_class(w)).flatten() {
        return class;
    }
    // A long hex id is sometimes all digits: both are one mask, or an id
    // field would make two shapes.
    if w.chars().all(|c| c.is_ascii_digit() || ".:-+".contains(c))
        || w.len() >= 8 && w.chars().all(|c| c.is_ascii_hexdigit() || c == '-')
    {
        return "<N>".into();
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
/// varies between attempts: a user name, an id, a number, a URL's inner
/// path segments or query.
pub fn varies(w: &str, prev: &str) -> bool {
    if is_url(w, 0) {
        return mask_urls(w) != w || w.chars().any(|c| c.is_ascii_digit());
    }
    mask_word(w, &prev.to_ascii_lowercase(), false) != w
}

/// Whether a URL or an absolute path starts at `at` of `s`: a `/` at the
/// start of a token, or a `scheme://`.
fn is_url(s: &str, at: usize) -> bool {
    let rest = &s[at..];
    let starts = || {
        s[..at]
            .chars()
            .next_back()
            .is_none_or(|c| c.is_whitespace() || "\"'([=<".contains(c))
    };
    (rest.starts_with('/') || rest.starts_with(|c: char| c.is_ascii_alphabetic()))
        && starts()
        && (rest.starts_with('/') || scheme_len(rest).is_some())
}

/// The length of `scheme://` at the start of `s`.
fn scheme_len(s: &str) -> Option<usize> {
    let n = s
        .bytes()
        .take(11)
        .take_while(u8::is_ascii_alphabetic)
        .count();
    (n > 0 && n <= 10 && s[n..].starts_with("://")).then_some(n + 3)
}

/// One URL (up to white space or a quote) masked: the host of a
/// `scheme://host` and every path segment but the first become [`PATH`]
/// (the last keeping a short alphabetic file extension), the query and
/// fragment [`QUERY`].
fn mask_url(url: &str) -> String {
    let mut out = String::new();
    let mut rest = url;
    if let Some(n) = scheme_len(url) {
        out.push_str(&url[..n]);
        out.push(PATH);
        rest = &url[n..];
        rest = &rest[rest.find('/').unwrap_or(rest.len())..];
    }
    let (path, query) = match rest.find(['?', '#']) {
        Some(q) => (&rest[..q], true),
        None => (rest, false),
    };
    let segs: Vec<&str> = path.split('/').skip(1).collect();
    if let Some(first) = segs.first() {
        out.push('/');
        out.push_str(first);
    }
    if segs.len() > 1 {
        let last = segs[segs.len() - 1];
        out.push('/');
        out.push(PATH);
        if let Some((_, ext)) = last.rsplit_once('.') {
            if (1..=5).contains(&ext.len()) && ext.chars().all(|c| c.is_ascii_alphabetic()) {
                out.push('.');
                out.push_str(ext);
            }
        }
    }
    if query {
        out.push(QUERY);
    }
    out
}

/// `s` with every URL in it masked by [`mask_url`].
fn mask_urls(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut pos = 0;
    for (at, _) in s.char_indices() {
        if at < pos || !is_url(s, at) {
            continue;
        }
        let len = s[at..]
            .find(|c: char| c.is_whitespace() || c == '"' || c == '\'')
            .unwrap_or(s.len() - at);
        out.push_str(&s[pos..at]);
        out.push_str(&mask_url(&s[at..at + len]));
        pos = at + len;
    }
    out.push_str(&s[pos..]);
    out
}

/// Whether `s` starts as a user agent does: a product token and its
/// version (`Mozilla/5.0`, `curl/8.5.0`, `kube-probe/1.29`).
fn is_agent(s: &str) -> bool {
    let name = s
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || b"._-".contains(b))
        .count();
    name > 0
        && s.as_bytes()[0].is_ascii_alphabetic()
        && s[name..].starts_with('/')
        && s[name + 1..].starts_with(|c: char| c.is_ascii_digit())
}

/// `s` with the text of every double-quoted user agent replaced by
/// [`AGENT`]: each browser keeps its own, so one page would otherwise be
/// as many shapes as its visitors have browsers.
fn mask_agents(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(open) = rest.find('"') {
        let (before, after) = rest.split_at(open + 1);
        out.push_str(before);
        let Some(close) = after.find('"') else {
            rest = after;
            break;
        };
        let text = &after[..close];
        if is_agent(text) {
            out.push(AGENT);
        } else {
            out.push_str(text);
        }
        out.push('"');
        rest = &after[close + 1..];
    }
    out.push_str(rest);
    out
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
        masked.push(ADDR);
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
    let masked = mask_urls(&mask_agents(&masked));
    let mut out = String::with_capacity(masked.len());
    let mut prev = String::new();
    let mut word = String::new();
    let mut last_space = true;
    let flush = |word: &mut String, prev: &mut String, out: &mut String| {
        if !word.is_empty() {
            // A status follows the quoted request line, or a status word.
            let status = out.trim_end().ends_with('"') || STATUS_WORDS.contains(&prev.as_str());
            let masked = mask_word(word, prev, status);
            // The word after a name is never a name: `user=user repo=x`.
            *prev = if masked == USER {
                masked.clone()
            } else {
                word.to_ascii_lowercase()
            };
            out.push_str(&masked);
            word.clear();
        }
    };
    for c in masked.chars() {
        let marker = match c {
            ADDR => Some("<ADDR>"),
            PATH => Some("<P>"),
            QUERY => Some("?<Q>"),
            AGENT => Some("<UA>"),
            _ => None,
        };
        if let Some(m) = marker {
            flush(&mut word, &mut prev, &mut out);
            out.push_str(m);
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

    fn auth(outcome: &str, user: &str, from: &str) -> String {
        format!("web1 auth[42]: login {outcome} for user '{user}' from {from}")
    }

    fn web(ip: &str, request: &str, status: u16) -> String {
        format!(
            r#"{ip} - - [24/Nov/2026:23:44:58 +0000] "{request}" {status} 412 "-" "curl/8.5.0""#
        )
    }

    #[test]
    fn words_that_decide_the_meaning_are_kept() {
        let ok = key(&auth("ok", "alice", "203.0.113.10"));
        let failed = key(&auth("failed", "root", "203.0.113.61"));
        assert_ne!(ok, failed);
        assert!(
            failed.contains("login failed for user '<USER>'"),
            "{failed}"
        );
        // A client that calls itself "ok" makes a shape of its own, never
        // the good login's.
        assert_ne!(key(&auth("failed", "ok", "203.0.113.61")), ok);
        let sshd = |w: &str| key(&format!("sshd[7]: {w} password for root from 203.0.113.5"));
        assert_ne!(sshd("Accepted"), sshd("Failed"));
        let page = |status| key(&web("203.0.113.5", "GET /wp-login.php HTTP/1.1", status));
        assert_ne!(page(200), page(401));
        assert_ne!(page(200), page(404));
        assert_ne!(page(302), page(404));
        assert_eq!(page(401), page(404), "{}", page(401));
        assert!(page(404).contains(r#"HTTP/<N>" 4xx <N>"#), "{}", page(404));
        // The first path segment and the file extension say what is asked.
        let req = |r| key(&web("203.0.113.5", r, 200));
        assert_ne!(
            req("POST /xmlrpc.php HTTP/1.1"),
            req("POST /contact HTTP/1.1")
        );
        assert_ne!(
            req("GET /wp-admin/a.php HTTP/1.1"),
            req("GET /shop/a.php HTTP/1.1")
        );
        assert_ne!(
            req("GET /wp-admin/a.php HTTP/1.1"),
            req("GET /wp-admin/a.css HTTP/1.1")
        );
        assert_ne!(req("GET /about HTTP/1.1"), req("POST /about HTTP/1.1"));
    }

    #[test]
    fn what_varies_per_request_is_masked() {
        let same = |a: &str, b: &str| {
            assert_eq!(key(a), key(b), "{a}\n{b}");
        };
        // Inner path segments, query strings, ids and numbers.
        same(
            &web(
                "203.0.113.5",
                "GET /wp-content/plugins/akismet/readme.txt?ver=1 HTTP/1.1",
                404,
            ),
            &web(
                "198.51.100.7",
                "GET /wp-content/themes/x/y/readme.txt?q=1+or+1=1 HTTP/1.0",
                404,
            ),
        );
        same(
            &web("203.0.113.5", "GET /user/1234/edit HTTP/1.1", 403),
            &web("203.0.113.6", "GET /user/abcdef/delete HTTP/1.1", 401),
        );
        same(
            &web("203.0.113.5", "GET /page7 HTTP/1.1", 200),
            &web("203.0.113.6", "GET /page12 HTTP/1.1", 204),
        );
        same(
            &web(
                "203.0.113.5",
                "GET http://evil.example/a/b.php?y HTTP/1.1",
                400,
            ),
            &web(
                "203.0.113.6",
                "GET http://198.51.100.1:8080/a/d.php?x HTTP/1.1",
                400,
            ),
        );
        assert!(key(&web("203.0.113.5", "GET /a/b/c.php?x=1 HTTP/1.1", 404))
            .contains(r#""GET /a/<P>.php?<Q> HTTP/<N>" 4xx"#));
        // User names, ports, pids, session ids.
        same(
            &auth("failed", "root", "203.0.113.61:4242"),
            &auth("failed", "x-admin.1", "2001:db8::1"),
        );
        same(
            "Failed login for admin from 203.0.113.5 sid=0badc0ffee12",
            "Failed login for bob from 203.0.113.9 sid=1234abcdef99",
        );
        // A status is only one after the request line or a status word:
        // other three-digit numbers (pids, sizes) vary.
        same("sshd[123]: status=404 x", "sshd[987]: status=401 x");
        assert_ne!(key("status=200 x"), key("status=404 x"));
    }

    #[test]
    fn varying_words_are_fields_the_client_writes() {
        assert!(varies("/wp-admin/install.php", "GET"));
        assert!(varies("/page7", "GET"));
        assert!(varies("/x?a=b", "GET"));
        assert!(!varies("/xmlrpc.php", "POST"));
        assert!(varies("alice", "user"));
        assert!(!varies("failed", "login"));
    }

    #[test]
    fn huge_lines_make_short_keys() {
        let l = "x".repeat(1 << 20);
        assert!(key(&l).len() <= MAX_KEY);
        let l = " /a?".repeat(1 << 18);
        assert!(key(&l).len() <= MAX_KEY);
    }

    #[test]
    fn browsers_of_one_page_are_one_shape() {
        let page = |ua: &str| {
            key(&format!(
                r#"198.51.100.7 - - [07/Dec/2026:21:18:43 +0000] "GET /blog/winter-coffee/ HTTP/2.0" 200 5120 "https://example.org/" "{ua}""#
            ))
        };
        let firefox =
            page("Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0");
        assert_eq!(firefox, page("curl/8.5.0"));
        assert_eq!(firefox, page("WordPress/6.4.2; https://example.net"));
        assert!(firefox.ends_with(r#""https://<P>/" "<UA>""#), "{firefox}");
        // What is not an agent stays: the request line, an empty referer.
        assert!(
            firefox.contains(r#""GET /blog/<P> HTTP/<N>" 2xx"#),
            "{firefox}"
        );
        assert_ne!(firefox, page("-"));
    }

    #[test]
    fn a_name_that_is_a_keyword_is_still_a_name() {
        let git = |u: &str| {
            key(&format!(
                "gitd[7]: auth failed user={u} repo=ops/infra.git remote=203.0.113.9"
            ))
        };
        assert_eq!(git("user"), git("alice"));
        assert!(
            git("alice").contains("user=<USER> repo="),
            "{}",
            git("alice")
        );
        let mqtt = |u: &str| {
            key(&format!(
                "mqttd[7]: CONNECT refused: client id 3fa2b1 user {u} at 203.0.113.9:1883"
            ))
        };
        assert_eq!(mqtt("user"), mqtt("bob"));
        let app = |u: &str| {
            key(&format!(
                "authd[7]: login failed for user '{u}' from 203.0.113.9"
            ))
        };
        assert_eq!(app("user"), app("carol"));
        assert!(
            app("carol").contains("login failed for user '<USER>' from"),
            "{}",
            app("carol")
        );
    }

    #[test]
    fn long_ids_are_one_mask_whether_hex_or_digits() {
        let v = |id: &str| {
            key(&format!(
                "vaultd[7]: token rejected for client_id={id} from 203.0.113.9"
            ))
        };
        assert_eq!(v("3fa2b1c4d5e6"), v("123456789012"));
    }
}
