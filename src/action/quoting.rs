//! Where a place in a `/bin/sh` script lies in the shell's quoting, so
//! that a value taken from a log line can be written there as a parameter
//! expansion of the right form.
//!
//! fail2ban writes every such value as `$f2bV_name` whatever surrounds the
//! tag: between single quotes the command then receives the variable's
//! name instead of the text, and bare the text is split into words and
//! globbed. fail3ban writes `"${v}"` bare, `${v}` between double quotes
//! and `'"${v}"'` between single quotes, so that the command receives the
//! text unchanged in each.
//!
//! Whatever this lexer concludes, each form is a parameter expansion, and
//! the shell never parses the result of an expansion as code: a wrong
//! guess (a construct it does not follow, such as `case` patterns inside
//! `$(...)`) can cost the text its exact form, never run it.

/// The quoting at one place of a script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Context {
    /// Outside quotes: at the top level, in `$(...)`, in backquotes.
    Bare,
    /// Between double quotes, or in a here-document whose delimiter is
    /// not quoted: `$` expands, quotes are text.
    Double,
    /// Between single quotes: nothing expands.
    Single,
    /// In a comment, or in a here-document whose delimiter is quoted:
    /// nothing can expand there.
    Literal,
}

impl Context {
    /// How the shell variable `var` is written at this place so that the
    /// command receives its value unchanged (where anything can).
    pub fn reference(self, var: &str) -> String {
        match self {
            Context::Bare => format!("\"${{{var}}}\""),
            Context::Double | Context::Literal => format!("${{{var}}}"),
            Context::Single => format!("'\"${{{var}}}\"'"),
        }
    }
}

/// What encloses the place being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Frame {
    /// Unquoted text, ended by `end` (the top level has none).
    Bare(End),
    Double,
    Single,
}

/// What ends an unquoted frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The script's end.
    Script,
    /// `)` once the open parentheses (`$(`, `$((`, subshells) balance.
    Paren(u32),
    /// `` ` ``.
    Backquote,
    /// `}` of `${...}`, with the braces opened inside and whether the
    /// expansion stands between double quotes.
    Brace { depth: u32, in_double: bool },
}

/// A here-document whose body starts at the next line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HereDoc {
    delimiter: String,
    quoted: bool,
    strip_tabs: bool,
}

/// The delimiter word after `<<`, being read.
#[derive(Debug, Default)]
struct Delimiter {
    word: String,
    quoted: bool,
    strip_tabs: bool,
    started: bool,
    quote: Option<char>,
    escaped: bool,
}

/// The body of a here-document, being read line by line.
#[derive(Debug)]
struct Body {
    doc: HereDoc,
    line: String,
    /// The line holds a value: it cannot be the delimiter.
    has_value: bool,
}

/// Reads a script from the start and tells the [`Context`] at the place
/// reached.
#[derive(Debug)]
pub struct Lexer {
    stack: Vec<Frame>,
    /// The previous character was a backslash that escapes this one.
    escaped: bool,
    /// The previous character was an expanding `$`.
    dollar: bool,
    /// How many `<` in a row were just read, unquoted.
    less: u8,
    word_start: bool,
    comment: bool,
    delimiter: Option<Delimiter>,
    pending: Vec<HereDoc>,
    body: Option<Body>,
}

impl Default for Lexer {
    fn default() -> Lexer {
        Lexer::new()
    }
}

impl Lexer {
    /// At the start of a script.
    pub fn new() -> Lexer {
        Lexer {
            stack: vec![Frame::Bare(End::Script)],
            escaped: false,
            dollar: false,
            less: 0,
            word_start: true,
            comment: false,
            delimiter: None,
            pending: Vec::new(),
            body: None,
        }
    }

    /// The quoting at the place reached.
    pub fn context(&self) -> Context {
        if self.comment {
            return Context::Literal;
        }
        if let Some(b) = &self.body {
            return if b.doc.quoted {
                Context::Literal
            } else {
                Context::Double
            };
        }
        match self.top() {
            Frame::Single => Context::Single,
            Frame::Double
            | Frame::Bare(End::Brace {
                in_double: true, ..
            }) => Context::Double,
            Frame::Bare(_) => Context::Bare,
        }
    }

    /// Whether a backslash just read escapes what comes next: a value
    /// written here must not begin with a character that backslash would
    /// take.
    pub fn escaping(&self) -> bool {
        self.escaped
    }

    /// Reads script text.
    pub fn push_str(&mut self, s: &str) {
        for c in s.chars() {
            self.push(c);
        }
    }

    /// Reads a value written at this place: part of a word, never syntax.
    pub fn push_value(&mut self) {
        self.escaped = false;
        self.dollar = false;
        self.less = 0;
        self.word_start = false;
        if let Some(b) = &mut self.body {
            b.has_value = true;
        }
        if let Some(d) = &mut self.delimiter {
            d.started = true;
            d.word.push('\u{fffd}');
        }
    }

    fn top(&self) -> Frame {
        *self.stack.last().unwrap_or(&Frame::Bare(End::Script))
    }

    fn push(&mut self, c: char) {
        if self.comment {
            if c == '\n' {
                self.comment = false;
                self.newline();
            }
            return;
        }
        if self.body.is_some() {
            self.push_body(c);
            return;
        }
        if self.delimiter.is_some() && self.push_delimiter(c) {
            return;
        }
        let dollar = std::mem::take(&mut self.dollar);
        let less = std::mem::take(&mut self.less);
        match self.top() {
            Frame::Single => {
                if c == '\'' {
                    self.stack.pop();
                }
            }
            Frame::Double => self.push_double(c, dollar),
            Frame::Bare(end) => self.push_bare(c, end, dollar, less),
        }
    }

    fn push_double(&mut self, c: char, dollar: bool) {
        if std::mem::take(&mut self.escaped) && matches!(c, '$' | '`' | '"' | '\\' | '\n') {
            return;
        }
        if dollar && self.open_dollar(c, true) {
            return;
        }
        match c {
            '\\' => self.escaped = true,
            '"' => {
                self.stack.pop();
            }
            '`' => self.stack.push(Frame::Bare(End::Backquote)),
            '$' => self.dollar = true,
            _ => {}
        }
    }

    fn push_bare(&mut self, c: char, end: End, dollar: bool, less: u8) {
        let starts_word = std::mem::replace(
            &mut self.word_start,
            c.is_whitespace() || matches!(c, ';' | '&' | '|' | '(' | ')' | '<' | '>'),
        );
        if std::mem::take(&mut self.escaped) {
            self.word_start = false;
            return;
        }
        if dollar && self.open_dollar(c, false) {
            return;
        }
        match c {
            '\\' => self.escaped = true,
            '\'' => self.stack.push(Frame::Single),
            '"' => self.stack.push(Frame::Double),
            '$' => self.dollar = true,
            '`' if end == End::Backquote => {
                self.stack.pop();
            }
            '`' => self.stack.push(Frame::Bare(End::Backquote)),
            '#' if starts_word && !matches!(end, End::Brace { .. }) => self.comment = true,
            '<' if less == 1 => self.delimiter = Some(Delimiter::default()),
            '<' => self.less = 1,
            '\n' => self.newline(),
            '(' | ')' | '{' | '}' => self.nest(c, end),
            _ => {}
        }
    }

    /// `$(` and `${` after an expanding `$`.
    fn open_dollar(&mut self, c: char, in_double: bool) -> bool {
        match c {
            '(' => self.stack.push(Frame::Bare(End::Paren(1))),
            '{' => self.stack.push(Frame::Bare(End::Brace {
                depth: 0,
                in_double,
            })),
            _ => return false,
        }
        self.word_start = c == '(';
        true
    }

    /// Parentheses and braces inside the frame they may end.
    fn nest(&mut self, c: char, end: End) {
        let Some(Frame::Bare(e)) = self.stack.last_mut() else {
            return;
        };
        match (c, end) {
            ('(', End::Paren(n)) => *e = End::Paren(n + 1),
            (')', End::Paren(1)) => {
                self.stack.pop();
            }
            (')', End::Paren(n)) => *e = End::Paren(n - 1),
            ('{', End::Brace { depth, in_double }) => {
                *e = End::Brace {
                    depth: depth + 1,
                    in_double,
                }
            }
            ('}', End::Brace { depth: 0, .. }) => {
                self.stack.pop();
            }
            ('}', End::Brace { depth, in_double }) => {
                *e = End::Brace {
                    depth: depth - 1,
                    in_double,
                }
            }
            _ => {}
        }
    }

    /// An unquoted new line: here-documents announced on the line start.
    fn newline(&mut self) {
        if !self.pending.is_empty() {
            let doc = self.pending.remove(0);
            self.body = Some(Body {
                doc,
                line: String::new(),
                has_value: false,
            });
        }
    }

    /// Reads the delimiter word after `<<`; false when `c` ended it and is
    /// to be read as script.
    fn push_delimiter(&mut self, c: char) -> bool {
        let Some(d) = &mut self.delimiter else {
            return false;
        };
        if !d.started {
            if c == '-' && !d.strip_tabs && d.word.is_empty() {
                d.strip_tabs = true;
                return true;
            }
            if c == ' ' || c == '\t' {
                return true;
            }
            d.started = true;
        }
        if std::mem::take(&mut d.escaped) {
            d.word.push(c);
            return true;
        }
        if let Some(q) = d.quote {
            if c == q {
                d.quote = None;
            } else {
                d.word.push(c);
            }
            return true;
        }
        match c {
            '\\' => {
                d.quoted = true;
                d.escaped = true;
            }
            '\'' | '"' => {
                d.quoted = true;
                d.quote = Some(c);
            }
            c if c.is_whitespace() || matches!(c, ';' | '&' | '|' | '<' | '>' | '(' | ')') => {
                let d = self.delimiter.take().unwrap_or_default();
                if !d.word.is_empty() {
                    self.pending.push(HereDoc {
                        delimiter: d.word,
                        quoted: d.quoted,
                        strip_tabs: d.strip_tabs,
                    });
                }
                return false;
            }
            c => d.word.push(c),
        }
        true
    }

    fn push_body(&mut self, c: char) {
        let Some(b) = &mut self.body else { return };
        if c != '\n' {
            if !b.doc.quoted {
                self.escaped = !self.escaped && c == '\\';
            }
            b.line.push(c);
            return;
        }
        self.escaped = false;
        let line = if b.doc.strip_tabs {
            b.line.trim_start_matches('\t')
        } else {
            b.line.as_str()
        };
        if !b.has_value && line == b.doc.delimiter {
            self.body = None;
            self.newline();
        } else {
            b.line.clear();
            b.has_value = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The context at each `@` of `script` (the `@` read as a value).
    fn contexts(script: &str) -> Vec<Context> {
        let mut l = Lexer::new();
        let mut out = Vec::new();
        for c in script.chars() {
            if c == '@' {
                out.push(l.context());
                l.push_value();
            } else {
                l.push(c);
            }
        }
        out
    }

    use Context::{Bare as B, Double as D, Literal as L, Single as S};

    #[test]
    fn quotes() {
        assert_eq!(
            contexts(r#"echo @ "@" '@' "a'@'b" 'a"@"b' @"#),
            [B, D, S, D, S, B]
        );
        assert_eq!(contexts(r#"echo "\"@" '\'@ \"@ \'@"#), [D, B, B, B]);
        assert_eq!(contexts(r#"echo "a\\"@ x"#), [B]);
        assert_eq!(contexts("printf %%b \"a\n@\nb\" | mail @"), [D, B]);
    }

    #[test]
    fn substitutions() {
        assert_eq!(
            contexts(r#"echo "$(printf '%s' "@" @ '@')" `echo @ "@"` "`echo @`""#),
            [D, B, S, B, D, B]
        );
        assert_eq!(
            contexts(r#"echo $((1 + (2))) @ "$( (echo @) )@" ${x:-@} "${x:-@}" ${x:+"@"}"#),
            [B, B, D, B, D, D]
        );
        assert_eq!(contexts("a=$(echo \"@\"); b=@; echo \"$a\" '@'"), [D, B, S]);
    }

    #[test]
    fn comments() {
        assert_eq!(contexts("echo @ # '@\necho '@' x#@"), [B, L, S, B]);
        assert_eq!(contexts("echo ${x#@} @"), [B, B]);
    }

    #[test]
    fn here_documents() {
        assert_eq!(
            contexts("cat <<EOF >f; echo '@'\nline @ \"@\" '@'\nEOF\necho @"),
            [S, D, D, D, B]
        );
        assert_eq!(
            contexts("cat <<'EOF'\n@\nEOF\ncat <<-\"E\"\n\t@\n\tE\ncat <<\\X\n@\nX\n'@'"),
            [L, L, L, S]
        );
        // A line holding a value never ends the document.
        assert_eq!(contexts("cat <<E\n@\nE@\n@\nE\n@"), [D, D, D, B]);
        // Two documents on one line, read in order.
        assert_eq!(contexts("cat <<A <<'B'\n@\nA\n@\nB\n@"), [D, L, B]);
        // `<<` between quotes is text.
        assert_eq!(contexts("echo \"<<EOF\" @\n@"), [B, B]);
    }

    #[test]
    fn backslash_before_a_value() {
        let mut l = Lexer::new();
        l.push_str("echo \\");
        assert!(l.escaping());
        l.push_value();
        assert!(!l.escaping());
        assert_eq!(l.context(), B);
    }

    #[test]
    fn references() {
        assert_eq!(B.reference("v"), "\"${v}\"");
        assert_eq!(D.reference("v"), "${v}");
        assert_eq!(S.reference("v"), "'\"${v}\"'");
        assert_eq!(L.reference("v"), "${v}");
    }
}
