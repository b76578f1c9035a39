//! The samples of one shape: which address in them is the client (the
//! party that connected) and which fields the client wrote.
//!
//! The client is decided from what the client cannot choose: the position
//! that holds different addresses when the shape comes from different
//! sources, and the literal text the service writes around it. An address
//! the service quotes is text the client wrote (a user name, a URL), never
//! the client. The decision goes to the model, and [`super::validate`]
//! proves the rule keeps to it by filling every [`fields`] with hostile
//! text.

use std::collections::HashSet;
use std::ops::Range;

use super::{prescreen, template};

/// Samples sent to the model for one shape, at most.
pub const MAX_SAMPLES: usize = 5;

/// Where the client is in a shape's samples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    /// Its index among the addresses of each sample.
    pub slot: usize,
    /// How many distinct addresses the samples hold there.
    pub sources: usize,
}

/// The addresses of a line, as byte ranges and text.
pub fn slots(line: &str) -> Vec<(Range<usize>, String)> {
    prescreen::addresses(line)
        .into_iter()
        .map(|(at, text, _)| (at..at + text.len(), text))
        .collect()
}

/// Whether `at` is inside a pair of double quotes, or right after a quote
/// of either kind: there the service writes what the client sent.
fn quoted(line: &str, at: usize) -> bool {
    let before = &line[..at];
    before.matches('"').count() % 2 == 1 || before.ends_with(['"', '\''])
}

/// Whether the word before `at` is one after which a user name comes.
fn after_user_word(line: &str, at: usize) -> bool {
    let before = line[..at].trim_end_matches(['\'', '"', ' ']);
    let word = before
        .rsplit(|c: char| c.is_whitespace() || "'\"[](),;".contains(c))
        .next()
        .unwrap_or("");
    template::names_user(word)
}

/// The client's address in one sample, given the decision.
pub fn address_of(line: &str, c: &Client) -> Option<(Range<usize>, String)> {
    slots(line).into_iter().nth(c.slot)
}

/// Decides which address of the samples is the client: the one position,
/// outside any quoted field, that holds the most distinct addresses across
/// the samples. Two such positions with as many distinct addresses each
/// (and not always the same address) are ambiguous: no decision, the shape
/// is not asked about.
pub fn decide(samples: &[String]) -> Option<Client> {
    let first = slots(samples.first()?);
    let n = first.len();
    let same_shape: Vec<_> = samples
        .iter()
        .map(|l| (l.as_str(), slots(l)))
        .filter(|(_, s)| s.len() == n)
        .collect();
    // (slot, distinct addresses there, after a user word)
    let mut candidates = Vec::new();
    for slot in 0..n {
        if same_shape.iter().any(|(l, s)| quoted(l, s[slot].0.start)) {
            continue;
        }
        let distinct: HashSet<_> = same_shape.iter().map(|(_, s)| &s[slot].1).collect();
        let user = same_shape
            .iter()
            .any(|(l, s)| after_user_word(l, s[slot].0.start));
        candidates.push((slot, distinct.len(), user));
    }
    // An address after "user" is a name the client chose, unless there is
    // no other.
    if candidates.iter().any(|c| !c.2) {
        candidates.retain(|c| !c.2);
    }
    let mut best: Option<(usize, usize)> = None;
    let mut tie = false;
    for (slot, d, _) in candidates {
        match best {
            Some((b, bd)) if d == bd => {
                // Positions that always hold the same address are one client.
                tie |= same_shape.iter().any(|(_, s)| s[slot].1 != s[b].1);
            }
            Some((_, bd)) if d < bd => {}
            _ => {
                best = Some((slot, d));
                tie = false;
            }
        }
    }
    let (slot, sources) = best?;
    (!tie).then_some(Client { slot, sources })
}

/// The fields of `line` its client may have written: the contents of
/// quoted strings, every address but the client's, and the words the
/// shape key masks as varying (user names, ids, numbers), each as a byte
/// range. The client's own address is never one.
pub fn fields(line: &str, client: &Range<usize>) -> Vec<Range<usize>> {
    let mut out: Vec<Range<usize>> = Vec::new();
    for q in ['"', '\''] {
        let at: Vec<usize> = line.match_indices(q).map(|(i, _)| i).collect();
        for pair in at.chunks(2).filter(|p| p.len() == 2) {
            out.push(pair[0] + 1..pair[1]);
        }
    }
    out.extend(
        slots(line)
            .into_iter()
            .map(|(r, _)| r)
            .filter(|r| r != client),
    );
    let is_sep = |c: char| c.is_whitespace() || "'\"[](),;".contains(c);
    let mut prev = "";
    let mut start = None;
    let mut words = Vec::new();
    for (i, c) in line
        .char_indices()
        .chain(std::iter::once((line.len(), ' ')))
    {
        match (is_sep(c), start) {
            (true, Some(s)) => {
                words.push(s..i);
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    for r in words {
        let word = &line[r.clone()];
        let value = word.split_once('=').map_or(word, |(_, v)| v);
        if !value.is_empty() && template::varies(value, prev) {
            out.push(r.end - value.len()..r.end);
        }
        prev = word;
    }
    out.retain(|r| !r.is_empty() && (r.end <= client.start || r.start >= client.end));
    out.sort_by_key(|r| (r.start, r.end));
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(user: &str, from: &str) -> String {
        format!("web1 auth[42]: login failed for user '{user}' from {from} (bad password)")
    }

    #[test]
    fn the_client_is_the_varying_unquoted_address() {
        let s = [
            auth("198.51.100.99", "203.0.113.61"),
            auth("198.51.100.99", "203.0.113.62"),
        ];
        assert_eq!(
            decide(&s),
            Some(Client {
                slot: 1,
                sources: 2
            })
        );
        // One source: decided, but from one source only.
        assert_eq!(decide(&s[..1]).unwrap().sources, 1);
        // An address in a quoted URL is the client's text.
        let l = r#"203.0.113.5 - - [] "GET /x?next=198.51.100.3 HTTP/1.1" 200"#;
        assert_eq!(decide(&[l.to_string()]).unwrap().slot, 0);
        // A client that varies an unquoted user name from one address is
        // still one source.
        let l = |u: &str| format!("login failed for user {u} from 203.0.113.61");
        let s = [l("198.51.100.1"), l("198.51.100.2"), l("198.51.100.3")];
        assert_eq!(
            decide(&s),
            Some(Client {
                slot: 1,
                sources: 1
            })
        );
    }

    #[test]
    fn two_varying_positions_are_ambiguous() {
        let l = |a: &str, b: &str| format!("x from {a} to {b} failed");
        let s = [
            l("203.0.113.1", "203.0.113.2"),
            l("203.0.113.3", "203.0.113.4"),
        ];
        assert_eq!(decide(&s), None);
        let same = [
            l("203.0.113.1", "203.0.113.1"),
            l("203.0.113.3", "203.0.113.3"),
        ];
        assert_eq!(decide(&same).unwrap().slot, 0);
    }

    #[test]
    fn fields_are_what_the_client_writes() {
        let l = auth("alice", "203.0.113.61");
        let c = address_of(&l, &decide(std::slice::from_ref(&l)).unwrap())
            .unwrap()
            .0;
        let f: Vec<&str> = fields(&l, &c).into_iter().map(|r| &l[r]).collect();
        assert!(f.contains(&"alice"), "{f:?}");
        assert!(f.contains(&"42"), "{f:?}");
        assert!(!f.iter().any(|x| x.contains("203.0.113.61")), "{f:?}");
        // Wide white space and quotes never split a character.
        let l = "a\u{3000}user 'é\u{3000}x' from 203.0.113.61 id\u{a0}é42";
        let c = address_of(l, &decide(&[l.to_string()]).unwrap()).unwrap().0;
        for r in fields(l, &c) {
            assert!(l.is_char_boundary(r.start) && l.is_char_boundary(r.end));
        }
    }
}
