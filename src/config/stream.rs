//! The resolved configuration as a stream of commands, the form in which
//! fail2ban's client hands it to its server and prints it with `-d`.
//!
//! Values print as Python's `repr` prints them, so that `fail3ban-client -d`
//! can be compared line for line with `fail2ban-client -d`.

use std::fmt;

/// A value in a command, typed as fail2ban types it.
#[derive(Debug, Clone, PartialEq)]
pub enum PyValue {
    Str(String),
    Int(i64),
    Bool(bool),
    None,
    List(Vec<PyValue>),
    /// Keys are strings; order is insertion order.
    Dict(Vec<(String, PyValue)>),
}

/// One command: `['set', 'sshd', 'maxretry', 5]`.
pub type Command = Vec<PyValue>;

impl PyValue {
    pub fn str(s: impl Into<String>) -> PyValue {
        PyValue::Str(s.into())
    }

    /// The text of the value as Python's `str()` gives it (used where
    /// fail2ban turns typed values back into text).
    pub fn to_text(&self) -> String {
        match self {
            PyValue::Str(s) => s.clone(),
            other => other.to_string(),
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            PyValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Python truthiness.
    pub fn truthy(&self) -> bool {
        match self {
            PyValue::Str(s) => !s.is_empty(),
            PyValue::Int(i) => *i != 0,
            PyValue::Bool(b) => *b,
            PyValue::None => false,
            PyValue::List(l) => !l.is_empty(),
            PyValue::Dict(d) => !d.is_empty(),
        }
    }
}

impl From<&str> for PyValue {
    fn from(s: &str) -> PyValue {
        PyValue::Str(s.to_string())
    }
}

impl From<String> for PyValue {
    fn from(s: String) -> PyValue {
        PyValue::Str(s)
    }
}

impl fmt::Display for PyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PyValue::Str(s) => f.write_str(&py_repr(s)),
            PyValue::Int(i) => write!(f, "{i}"),
            PyValue::Bool(true) => f.write_str("True"),
            PyValue::Bool(false) => f.write_str("False"),
            PyValue::None => f.write_str("None"),
            PyValue::List(items) => {
                f.write_str("[")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
            PyValue::Dict(items) => {
                f.write_str("{")?;
                for (i, (k, v)) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{}: {v}", py_repr(k))?;
                }
                f.write_str("}")
            }
        }
    }
}

/// Prints one command the way Python prints a list.
pub fn format_command(cmd: &Command) -> String {
    PyValue::List(cmd.clone()).to_string()
}

/// Python's `repr()` (and `str()`) of a float: `5400.0`, `2.5`, `1e+16`,
/// `1e-05`, `inf`, `nan`.
pub fn py_float(v: f64) -> String {
    if v.is_nan() {
        return "nan".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf" } else { "-inf" }.into();
    }
    let a = v.abs();
    if a != 0.0 && !(1e-4..1e16).contains(&a) {
        // Python writes the exponent with a sign and at least two digits.
        let s = format!("{v:e}");
        let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let (sign, digits) = match exp.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', exp),
        };
        return format!("{mantissa}e{sign}{digits:0>2}");
    }
    let s = format!("{v:?}");
    if s.contains('.') {
        s
    } else {
        format!("{s}.0")
    }
}

/// Python's `repr()` of a `str`.
pub fn py_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if is_printable(c) => out.push(c),
            c if (c as u32) < 0x100 => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push(quote);
    out
}

/// Python's `str.isprintable()` for one character, for the characters
/// configuration files contain: controls, separators other than the space,
/// format characters and unassigned surrogates/private use are not.
fn is_printable(c: char) -> bool {
    let u = c as u32;
    match u {
        0x20..=0x7e => true,
        0..=0x1f | 0x7f..=0xa0 | 0xad => false,
        0x1680 | 0x2000..=0x200f | 0x2028..=0x202f | 0x205f..=0x2064 | 0x2066..=0x206f | 0x3000 => {
            false
        }
        0xfeff | 0xfff9..=0xfffb | 0xe000..=0xf8ff | 0x110000.. => false,
        0x0600..=0x0605 | 0x061c | 0x06dd | 0x070f | 0x180e => false,
        0xf0000.. => false,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repr_like_python() {
        assert_eq!(py_repr("abc"), "'abc'");
        assert_eq!(py_repr("it's"), "\"it's\"");
        assert_eq!(py_repr("'\""), "'\\'\"'");
        assert_eq!(py_repr("a\\d\n\t\x01"), "'a\\\\d\\n\\t\\x01'");
        assert_eq!(py_repr("é\u{a0}"), "'é\\xa0'");
    }

    #[test]
    fn commands_like_python_lists() {
        let c: Command = vec![
            "set".into(),
            "sshd".into(),
            PyValue::Int(5),
            PyValue::Bool(true),
            PyValue::None,
        ];
        assert_eq!(format_command(&c), "['set', 'sshd', 5, True, None]");
        let d = PyValue::Dict(vec![("stacksize".into(), PyValue::Int(0))]);
        assert_eq!(d.to_string(), "{'stacksize': 0}");
    }
}
