//! The literal text a match of an anchored pattern must start with, read
//! from the pattern itself.
//!
//! A filter tries two dozen anchored failregexes on every line; most share
//! their first byte with the line ("User ...", "Failed ...") and fail a few
//! bytes later, yet each PCRE2 call costs more than comparing a short
//! prefix. So for `^Failed (?:(?P<nofail>publickey)|\S+) for` we keep
//! "Failed " and skip PCRE2 for lines that do not start with it.
//!
//! The reading is deliberately conservative: it follows literal characters,
//! escaped punctuation, small literal classes and groups, and stops at the
//! first thing it is not sure of. Anything that could change how the start
//! matches (inline flags, verbs, comments, `\Q`, POSIX classes) gives up
//! on the whole pattern. Giving up costs speed only; a wrong prefix would
//! lose matches.

/// At most this many alternative prefixes: past that, comparing them costs
/// about as much as the call they save.
const MAX_PREFIXES: usize = 8;
/// Longer prefixes are cut here; a few dozen bytes decide every real line.
const MAX_LEN: usize = 32;
/// Characters in a class we still expand into alternatives (`[iI]`).
const MAX_CLASS: usize = 4;

/// The prefixes of a pattern, one of which every match starts with.
#[derive(Debug)]
pub(super) struct Prefixes(Box<[Prefix]>);

/// A prefix, its first eight bytes also as a word to compare in one step.
#[derive(Debug)]
struct Prefix {
    head: u64,
    mask: u64,
    bytes: Box<[u8]>,
}

/// The first eight bytes of `s` (zeros past its end), little-endian.
#[inline]
fn head(s: &[u8]) -> u64 {
    if let Some(b) = s.first_chunk::<8>() {
        return u64::from_le_bytes(*b);
    }
    // Short subjects are rare; a copy of variable length is a call.
    let mut b = [0u8; 8];
    b[..s.len()].copy_from_slice(s);
    u64::from_le_bytes(b)
}

impl Prefixes {
    /// The prefixes of `pattern`, as [`required_prefixes`] reads them.
    pub(super) fn of(pattern: &str) -> Option<Prefixes> {
        let list = required_prefixes(pattern)?;
        Some(Prefixes(
            list.into_iter()
                .map(|bytes| {
                    let n = bytes.len().min(8);
                    Prefix {
                        head: head(&bytes),
                        mask: u64::MAX >> (64 - 8 * n),
                        bytes,
                    }
                })
                .collect(),
        ))
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &[u8]> {
        self.0.iter().map(|p| &*p.bytes)
    }

    /// Whether `s` starts with one of the prefixes. Most subjects differ
    /// within eight bytes, so one word comparison a prefix decides them.
    #[inline]
    pub(super) fn admits(&self, s: &[u8]) -> bool {
        let h = head(s);
        self.0.iter().any(|p| {
            (h ^ p.head) & p.mask == 0
                && s.len() >= p.bytes.len()
                && (p.bytes.len() <= 8 || s[8..p.bytes.len()] == p.bytes[8..])
        })
    }
}

/// One element of a pattern, as far as prefixes are concerned.
#[derive(Debug)]
enum Node {
    /// A literal byte (ASCII).
    Lit(u8),
    /// One of a few literal bytes: a small class such as `[iI]`.
    Set(Vec<u8>),
    /// A group that matches one of its branches.
    Group(Vec<Vec<Node>>),
    /// `node+`: at least one repetition.
    Plus(Box<Node>),
    /// Anything else; the prefix ends before it.
    Opaque,
}

/// The literal prefixes a match of `pattern` must start with (one of them,
/// each non-empty), for a pattern compiled without caseless, multi-line or
/// extended mode. `None` when the pattern is not anchored by a leading `^`
/// or nothing certain can be read.
pub(super) fn required_prefixes(pattern: &str) -> Option<Vec<Box<[u8]>>> {
    let rest = pattern.as_bytes().strip_prefix(b"^")?;
    let mut parser = Parser { p: rest, i: 0 };
    let branches = parser.alternation()?;
    // A `)` without its `(` ends the parse early: not a pattern we know.
    if parser.i != rest.len() || branches.len() != 1 {
        return None;
    }
    let (set, _) = sequence(&branches[0]);
    let mut out: Vec<Box<[u8]>> = set
        .into_iter()
        .map(|mut s| {
            s.truncate(MAX_LEN);
            s.into_boxed_slice()
        })
        .collect();
    out.sort();
    out.dedup();
    // A prefix that starts with another adds nothing but a comparison; in
    // sorted order, such a longer one follows the shorter directly.
    out.dedup_by(|longer, shorter| longer.starts_with(shorter));
    if out.is_empty() || out.iter().any(|s| s.is_empty()) {
        return None;
    }
    Some(out)
}

/// The strings a match of `nodes` starts with, and whether they are whole
/// matches of `nodes` (so what follows may be appended), within the caps.
fn sequence(nodes: &[Node]) -> (Vec<Vec<u8>>, bool) {
    let mut set = vec![Vec::new()];
    for node in nodes {
        let Some((alts, complete)) = single(node) else {
            return (set, false);
        };
        if set.len() * alts.len() > MAX_PREFIXES {
            return (set, false);
        }
        set = set
            .iter()
            .flat_map(|s| {
                alts.iter().map(move |a| {
                    let mut t = s.clone();
                    t.extend_from_slice(a);
                    t
                })
            })
            .collect();
        if !complete || set.iter().all(|s| s.len() >= MAX_LEN) {
            return (set, false);
        }
    }
    (set, true)
}

/// What one node may start with: its alternatives and whether each is the
/// node's whole match. `None` for a node the prefix must stop before.
fn single(node: &Node) -> Option<(Vec<Vec<u8>>, bool)> {
    match node {
        Node::Lit(b) => Some((vec![vec![*b]], true)),
        Node::Set(bs) => Some((bs.iter().map(|b| vec![*b]).collect(), true)),
        Node::Group(branches) => {
            let mut all = Vec::new();
            let mut complete = true;
            for b in branches {
                let (set, c) = sequence(b);
                complete &= c;
                all.extend(set);
            }
            (all.len() <= MAX_PREFIXES).then_some((all, complete))
        }
        // One repetition is certain; what follows may be more of it.
        Node::Plus(inner) => single(inner).map(|(s, _)| (s, false)),
        Node::Opaque => None,
    }
}

/// Reads a pattern's structure: enough to find groups, branches and
/// literals, and to refuse what it does not know.
struct Parser<'a> {
    p: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.p.get(self.i).copied()
    }

    /// Branches up to the end or an unmatched `)` (left for the caller).
    fn alternation(&mut self) -> Option<Vec<Vec<Node>>> {
        let mut branches = vec![Vec::new()];
        while let Some(c) = self.peek() {
            match c {
                b')' => break,
                b'|' => {
                    self.i += 1;
                    branches.push(Vec::new());
                }
                _ => {
                    let atom = self.atom()?;
                    let node = self.quantified(atom);
                    branches.last_mut()?.push(node);
                }
            }
        }
        Some(branches)
    }

    /// Applies a quantifier following an atom, if any.
    fn quantified(&mut self, atom: Node) -> Node {
        let node = match self.peek() {
            Some(b'+') => Node::Plus(Box::new(atom)),
            // `?`, `*` and `{...}` (including a literal `{`, which PCRE2
            // versions read differently) may match nothing.
            Some(b'?' | b'*' | b'{') => Node::Opaque,
            _ => return atom,
        };
        self.i += 1;
        // Lazy or possessive suffixes do not change what can match first.
        while let Some(b'?' | b'+') = self.peek() {
            self.i += 1;
        }
        node
    }

    fn atom(&mut self) -> Option<Node> {
        let c = self.peek()?;
        self.i += 1;
        Some(match c {
            b'\\' => self.escape()?,
            b'[' => self.class()?,
            b'(' => self.group()?,
            b'.' | b'^' | b'$' | b'*' | b'+' | b'?' | b'{' | b'}' => Node::Opaque,
            c if c.is_ascii() && !c.is_ascii_control() => Node::Lit(c),
            _ => Node::Opaque,
        })
    }

    fn escape(&mut self) -> Option<Node> {
        let e = self.peek()?;
        self.i += 1;
        match e {
            // `\Q...\E` quotes parentheses; `\cX` may control-escape one.
            b'Q' | b'c' => None,
            e if e.is_ascii_punctuation() || e == b' ' => Some(Node::Lit(e)),
            // Classes, anchors, back references, code points: none is a
            // literal we are sure of, and none hides a `(`, `)` or `|`.
            _ => Some(Node::Opaque),
        }
    }

    /// A class after its `[`: a few plain characters are a [`Node::Set`].
    fn class(&mut self) -> Option<Node> {
        let negated = self.peek() == Some(b'^');
        if negated {
            self.i += 1;
        }
        let mut chars = Vec::new();
        let mut plain = !negated;
        let mut first = true;
        loop {
            let c = self.peek()?;
            self.i += 1;
            match c {
                b']' if !first => break,
                b'\\' => {
                    self.peek()?;
                    self.i += 1;
                    plain = false;
                }
                // POSIX classes and collating elements hold a `]`.
                b'[' => return None,
                b'-' => plain = false,
                c if c.is_ascii_alphanumeric() || c == b'_' || c == b' ' || c == b']' => {
                    chars.push(c)
                }
                _ => plain = false,
            }
            first = false;
        }
        chars.sort_unstable();
        chars.dedup();
        Some(if plain && !chars.is_empty() && chars.len() <= MAX_CLASS {
            Node::Set(chars)
        } else {
            Node::Opaque
        })
    }

    /// A group after its `(`, through its `)`.
    fn group(&mut self) -> Option<Node> {
        let rest = &self.p[self.i..];
        let kind = if rest.starts_with(b"?:") {
            self.i += 2;
            Kind::Plain
        } else if rest.starts_with(b"?P<") || rest.starts_with(b"?<") {
            let name = if rest[1] == b'P' { 3 } else { 2 };
            let len = rest[name..]
                .iter()
                .take_while(|c| c.is_ascii_alphanumeric() || **c == b'_')
                .count();
            if len > 0 && rest.get(name + len) == Some(&b'>') {
                self.i += name + len + 1;
                Kind::Plain
            } else if rest.get(name..name + 1) == Some(b"=")
                || rest.get(name..name + 1) == Some(b"!")
            {
                // A lookbehind.
                self.i += name + 1;
                Kind::Opaque
            } else {
                return None;
            }
        } else if rest.starts_with(b"?=") || rest.starts_with(b"?!") || rest.starts_with(b"?>") {
            self.i += 2;
            Kind::Opaque
        } else if rest.starts_with(b"?(") {
            // A conditional: its condition reads as a group of its own.
            self.i += 1;
            Kind::Opaque
        } else if rest.first() == Some(&b'?') || rest.first() == Some(&b'*') {
            // Inline flags (which carry into later branches), comments,
            // verbs, recursion, callouts, branch resets: give up.
            return None;
        } else {
            Kind::Plain
        };
        let branches = self.alternation()?;
        if self.peek() != Some(b')') {
            return None;
        }
        self.i += 1;
        Some(match kind {
            Kind::Plain => Node::Group(branches),
            Kind::Opaque => Node::Opaque,
        })
    }
}

enum Kind {
    /// Capturing or not, it matches one of its branches.
    Plain,
    /// Lookaround, atomic or conditional: the prefix stops before it.
    Opaque,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strs(p: &str) -> Option<Vec<String>> {
        required_prefixes(p).map(|v| {
            v.iter()
                .map(|s| String::from_utf8(s.to_vec()).unwrap())
                .collect()
        })
    }

    fn one(p: &str) -> Option<String> {
        let mut v = strs(p)?;
        assert_eq!(v.len(), 1, "{p}: {v:?}");
        v.pop()
    }

    #[test]
    fn literal_starts() {
        assert_eq!(
            one(r"^Failed (?:(?P<nofail>publickey)|\S+) for").as_deref(),
            Some("Failed ")
        );
        assert_eq!(
            one(r"^(?P<nofail>Connection from) \[?(?:x)").as_deref(),
            Some("Connection from ")
        );
        assert_eq!(
            one(r"^User (?P<user>\S+|.*?) from").as_deref(),
            Some("User ")
        );
        assert_eq!(one(r"^a\.b\[c\]\ d\d").as_deref(), Some("a.b[c] d"));
        assert_eq!(one(r"^ab+c").as_deref(), Some("ab"));
        assert_eq!(one(r"^ab?c").as_deref(), Some("a"));
        assert_eq!(one(r"^ab*c").as_deref(), Some("a"));
        assert_eq!(one(r"^ab{2}c").as_deref(), Some("a"));
        assert_eq!(one(r"^(?:ab)+c").as_deref(), Some("ab"));
        assert_eq!(one(r"^x(?:ab)?c").as_deref(), Some("x"));
        assert_eq!(strs(r"^(?:a|)b"), Some(vec!["ab".into(), "b".into()]));
    }

    #[test]
    fn small_sets_expand() {
        assert_eq!(
            strs(r"^[iI](?:llegal|nvalid) user (?P<user>.*?) from"),
            Some(vec![
                "Illegal user ".into(),
                "Invalid user ".into(),
                "illegal user ".into(),
                "invalid user ".into(),
            ])
        );
        assert_eq!(
            strs(
                r"^(?P<nofail>(?P<mlfforget>(Connection (?:closed|reset)|Disconnected))) (?:by|from)(?: x)?"
            ),
            Some(vec![
                "Connection closed by".into(),
                "Connection closed from".into(),
                "Connection reset by".into(),
                "Connection reset from".into(),
                "Disconnected by".into(),
                "Disconnected from".into(),
            ])
        );
        // Past the cap the prefix stops before the expansion.
        let capped = strs(r"^x[ab][cd][ef][gh]y").unwrap();
        assert_eq!(capped.len(), MAX_PREFIXES);
        assert!(capped.iter().all(|s| s.len() == 4), "{capped:?}");
        // Ranges, negations and big classes are not expanded.
        assert_eq!(one(r"^x[a-c]").as_deref(), Some("x"));
        assert_eq!(one(r"^x[^a]").as_deref(), Some("x"));
        assert_eq!(one(r"^x[abcde]").as_deref(), Some("x"));
        assert_eq!(one(r"^x[\]]").as_deref(), Some("x"));
        assert_eq!(strs(r"^[]a]"), Some(vec!["]".into(), "a".into()]));
    }

    #[test]
    fn unsure_patterns_have_none() {
        for p in [
            r"Failed",
            r"^",
            r"^.x",
            r"^\sx",
            r"^\dx",
            r"^a|b",
            r"^(?i)abc",
            r"^x(?i:y)|z",
            r"^(a(?i)b|c)",
            r"^(*UTF)x",
            r"^x(*SKIP)",
            r"^(?#c)x",
            r"^x(?#)|)",
            r"^\Qa(b\E",
            r"^x\c(",
            r"^x[[:alpha:]]",
            r"^(?=a)b",
            r"^(?!a)b",
            r"^(?<=a)b",
            r"^(?>a)b",
            r"^(?(1)a|b)",
            r"^(?|a|b)",
            r"^(?R)",
            r"^é",
            r"^a)",
            r"^(a",
            r"^[a",
            r"^\",
        ] {
            assert_eq!(strs(p), None, "{p}");
        }
        // After a certain part, these only end the prefix.
        assert_eq!(one(r"^x(?=a)").as_deref(), Some("x"));
        assert_eq!(one(r"^x(?(c)a|b)").as_deref(), Some("x"));
        assert_eq!(one(r"^x\x{41}").as_deref(), Some("x"));
        assert_eq!(one(r"^x\p{L}(a|b)").as_deref(), Some("x"));
        // Back references and recursion are not read at all.
        assert_eq!(strs(r"^x(?P=n)"), None);
    }

    #[test]
    fn long_prefixes_are_cut() {
        let p = format!("^{}", "a".repeat(100));
        assert_eq!(one(&p).map(|s| s.len()), Some(MAX_LEN));
    }
}
