//! One INI file, parsed the way Python's `configparser` parses it for
//! fail2ban: `=` or `:` delimiters, `#`/`;` full-line comments, `;` inline
//! comments after white space, indented continuation lines, blank lines kept
//! inside values, option names lower-cased, section names kept as written.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use indexmap::IndexMap;

use super::error::{ConfigError, ErrorKind};

/// The name Python's configparser gives the section of defaults.
pub const DEFAULT_SECTION: &str = "DEFAULT";

/// An option's value and the file it was read from, so that an error about
/// it can name that file.
#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    pub text: String,
    pub file: Arc<PathBuf>,
}

/// Options of one section, in the order they were first written.
pub type Options = IndexMap<String, Value>;

/// One parsed file.
#[derive(Debug, Clone, Default)]
pub struct IniFile {
    pub defaults: Options,
    pub sections: IndexMap<String, Options>,
}

impl IniFile {
    /// Reads and parses `path`. A file that cannot be opened is `Ok(None)`,
    /// as configparser skips it silently; the caller decides whether that
    /// matters.
    pub fn read(path: &Path) -> Result<Option<IniFile>, ConfigError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(_) => return Ok(None),
        };
        let text = String::from_utf8(bytes).map_err(|e| {
            ConfigError::new(
                path,
                ErrorKind::Syntax(format!(
                    "not valid UTF-8 at byte {}",
                    e.utf8_error().valid_up_to()
                )),
            )
        })?;
        parse(path, &text).map(Some)
    }
}

/// Parses `text` as the contents of `path`.
pub fn parse(path: &Path, text: &str) -> Result<IniFile, ConfigError> {
    let file = Arc::new(path.to_path_buf());
    let mut out = IniFile::default();
    // Where option lines currently go: None before the first header.
    let mut cursect: Option<String> = None;
    let mut optname: Option<String> = None;
    let mut indent_level = 0usize;
    let mut seen_sections: Vec<String> = Vec::new();
    let mut seen_options: std::collections::HashSet<(String, String)> = Default::default();
    let mut bad_lines: Vec<usize> = Vec::new();

    // Values are collected per (section, option) and joined when the file ends.
    let mut values: IndexMap<(Option<String>, String), Vec<String>> = IndexMap::new();

    for (lineno, line) in split_lines(text).enumerate() {
        let lineno = lineno + 1;
        let comment_start = comment_start(line);
        let value = match comment_start {
            Some(i) => py_strip(&line[..i]),
            None => py_strip(line),
        };
        if value.is_empty() {
            // A blank line belongs to the value being built; a comment line
            // belongs to nothing.
            if comment_start.is_none() {
                if let (Some(sect), Some(opt)) = (&cursect, &optname) {
                    if let Some(v) = values.get_mut(&(section_key(sect), opt.clone())) {
                        v.push(String::new());
                    }
                }
            }
            continue;
        }
        let cur_indent = line.chars().take_while(|c| c.is_whitespace()).count();
        if let (Some(sect), Some(opt), true) = (&cursect, &optname, cur_indent > indent_level) {
            let key = (section_key(sect), opt.clone());
            values
                .get_mut(&key)
                .expect("option being continued")
                .push(value.to_string());
            continue;
        }
        indent_level = cur_indent;
        if let Some(header) = section_header(value) {
            if header != DEFAULT_SECTION {
                if seen_sections.iter().any(|s| s == header) {
                    return Err(ConfigError::new(
                        path,
                        ErrorKind::Syntax(format!(
                            "line {lineno}: section [{header}] already exists"
                        )),
                    )
                    .in_section(header));
                }
                seen_sections.push(header.to_string());
                out.sections.entry(header.to_string()).or_default();
            }
            cursect = Some(header.to_string());
            optname = None;
            continue;
        }
        let Some(sect) = &cursect else {
            return Err(ConfigError::new(
                path,
                ErrorKind::Syntax(format!(
                    "line {lineno}: option outside any section: {:?}",
                    line.trim_end()
                )),
            ));
        };
        match option_line(value) {
            Some((name, val)) if !name.is_empty() => {
                let name = name.to_lowercase();
                if !seen_options.insert((sect.clone(), name.clone())) {
                    return Err(ConfigError::new(
                        path,
                        ErrorKind::Syntax(format!(
                            "line {lineno}: option {name:?} already set in this section"
                        )),
                    )
                    .in_section(sect)
                    .for_option(&name));
                }
                values.insert(
                    (section_key(sect), name.clone()),
                    vec![py_strip(val).to_string()],
                );
                optname = Some(name);
            }
            _ => bad_lines.push(lineno),
        }
    }
    if !bad_lines.is_empty() {
        let lines: Vec<String> = bad_lines.iter().map(|n| n.to_string()).collect();
        return Err(ConfigError::new(
            path,
            ErrorKind::Syntax(format!(
                "line {}: neither a section, an option nor a comment",
                lines.join(", ")
            )),
        ));
    }
    for ((sect, name), lines) in values {
        let text = py_rstrip(&lines.join("\n")).to_string();
        let v = Value {
            text,
            file: file.clone(),
        };
        match sect {
            None => {
                out.defaults.insert(name, v);
            }
            Some(s) => {
                out.sections.entry(s).or_default().insert(name, v);
            }
        }
    }
    Ok(out)
}

fn section_key(sect: &str) -> Option<String> {
    (sect != DEFAULT_SECTION).then(|| sect.to_string())
}

/// Lines as Python's universal-newline reading yields them.
fn split_lines(text: &str) -> impl Iterator<Item = &str> {
    let text = text.strip_suffix('\n').unwrap_or(text);
    text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l))
}

/// Where a comment starts: a `#` or `;` line, or a `;` at the start or after
/// white space.
fn comment_start(line: &str) -> Option<usize> {
    let trimmed = py_strip(line);
    if trimmed.starts_with('#') || trimmed.starts_with(';') {
        return Some(0);
    }
    let mut prev: Option<char> = None;
    for (i, c) in line.char_indices() {
        if c == ';' && prev.is_none_or(char::is_whitespace) {
            return Some(i);
        }
        prev = Some(c);
    }
    None
}

fn section_header(value: &str) -> Option<&str> {
    // Greedy like configparser's `\[(.+)\]`: `[a] b]` is the section `a] b`.
    let inner = value.strip_prefix('[')?;
    let end = inner.rfind(']')?;
    let header = &inner[..end];
    (!header.is_empty()).then_some(header)
}

/// Splits `name = value` at the first `=` or `:`.
fn option_line(value: &str) -> Option<(&str, &str)> {
    let i = value.find(['=', ':'])?;
    Some((py_rstrip(&value[..i]), &value[i + 1..]))
}

/// `str.strip()` of Python: Unicode white space.
pub fn py_strip(s: &str) -> &str {
    s.trim_matches(char::is_whitespace)
}

/// `str.rstrip()` of Python.
pub fn py_rstrip(s: &str) -> &str {
    s.trim_end_matches(char::is_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> IniFile {
        parse(Path::new("t.conf"), text).unwrap()
    }

    fn get<'a>(f: &'a IniFile, s: &str, o: &str) -> &'a str {
        &f.sections[s][o].text
    }

    #[test]
    fn continuation_lines_comments_and_blank_lines() {
        let f = p("[Definition]\nfailregex = ^a\n    # a comment\n    ^b;not a comment ; a comment\n\n    ^c ;inline\nOther: 1 ; x\n");
        assert_eq!(
            get(&f, "Definition", "failregex"),
            "^a\n^b;not a comment\n\n^c"
        );
        assert_eq!(get(&f, "Definition", "other"), "1");
    }

    #[test]
    fn defaults_and_header_greed() {
        let f = p("[DEFAULT]\na=1\n[x] y]\nb = %(a)s\n");
        assert_eq!(f.defaults["a"].text, "1");
        assert_eq!(get(&f, "x] y", "b"), "%(a)s");
    }

    #[test]
    fn trailing_blank_lines_are_dropped() {
        let f = p("[s]\na = 1\n\n\n[t]\n");
        assert_eq!(get(&f, "s", "a"), "1");
    }

    #[test]
    fn errors_name_the_problem() {
        let e = parse(Path::new("j.local"), "a = 1\n").unwrap_err();
        assert!(e.to_string().contains("j.local"), "{e}");
        let e = parse(Path::new("j.local"), "[s]\na = 1\nA = 2\n").unwrap_err();
        assert!(e.to_string().contains("[s] a"), "{e}");
        let e = parse(Path::new("j.local"), "[s]\njunk\n").unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
    }

    #[test]
    fn first_delimiter_wins() {
        let f = p("[s]\nurl: http://x/?a=b\n");
        assert_eq!(get(&f, "s", "url"), "http://x/?a=b");
    }
}
