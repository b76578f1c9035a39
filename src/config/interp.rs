//! `%(name)s` interpolation as fail2ban's parser does it: Python's
//! `BasicInterpolation`, plus `%(__name__)s` (the section asked about),
//! `%(section/name)s`, `%(default/name)s` and `%(known/name)s`.
//!
//! A value is interpolated where it is asked for: `%(x)s` in [DEFAULT]
//! resolves against the jail that reads it, which is how one DEFAULT line
//! serves every jail.

use std::collections::HashMap;

use indexmap::IndexMap;

use super::error::{ConfigError, ErrorKind};
use super::ini::{IniFile, Options, DEFAULT_SECTION};

/// Values that take precedence over a section's own options (Python's
/// `vars`): keys are lower-case option names.
pub type Vars = IndexMap<String, String>;

const MAX_DEPTH: usize = 10;

/// The chain of maps one lookup goes through, most specific first.
struct Chain<'a> {
    vars: Option<&'a Vars>,
    section: Option<&'a Options>,
    defaults: &'a Options,
}

impl Chain<'_> {
    fn lookup<'s>(
        &'s self,
        extra: &'s HashMap<String, String>,
        key: &str,
    ) -> Option<(&'s str, Option<&'s std::path::Path>)> {
        if let Some(v) = extra.get(key) {
            return Some((v, None));
        }
        if let Some(v) = self.vars.and_then(|v| v.get(key)) {
            return Some((v, None));
        }
        if let Some(v) = self.section.and_then(|s| s.get(key)) {
            return Some((&v.text, Some(v.file.as_path())));
        }
        self.defaults
            .get(key)
            .map(|v| (v.text.as_str(), Some(v.file.as_path())))
    }

    fn contains(&self, extra: &HashMap<String, String>, key: &str) -> bool {
        self.lookup(extra, key).is_some()
    }
}

impl IniFile {
    fn chain<'a>(
        &'a self,
        section: &str,
        vars: Option<&'a Vars>,
    ) -> Result<Chain<'a>, ConfigError> {
        let section_opts = if section == DEFAULT_SECTION {
            None
        } else {
            Some(self.sections.get(section).ok_or_else(|| {
                ConfigError::bare(ErrorKind::NoSection(section.to_string())).in_section(section)
            })?)
        };
        Ok(Chain {
            vars,
            section: section_opts,
            defaults: &self.defaults,
        })
    }

    /// The interpolated value of `option` in `section` (`vars` first, then
    /// the section, then [DEFAULT]).
    pub fn get(
        &self,
        section: &str,
        option: &str,
        vars: Option<&Vars>,
    ) -> Result<String, ConfigError> {
        let option = option.to_lowercase();
        let chain = self.chain(section, vars)?;
        let extra = HashMap::new();
        let Some((value, file)) = chain.lookup(&extra, &option) else {
            return Err(ConfigError::bare(ErrorKind::NoOption)
                .in_section(section)
                .for_option(&option));
        };
        let mut out = String::new();
        self.interpolate(&chain, section, &option, value, &extra, 1, &mut out)
            .map_err(|e| e.located(file, section, &option))?;
        Ok(out)
    }

    /// Like `get`, but `option` may name another section: `known/x` (the
    /// value this section's `x` replaced, else its own), `default/x`, or
    /// `sec/x`; falls back to `option` in `section`.
    pub fn get_ex(
        &self,
        section: &str,
        option: &str,
        vars: Option<&Vars>,
    ) -> Result<String, ConfigError> {
        if let Some((sec, opt)) = section_option(option) {
            let tries: Vec<String> = match sec.to_lowercase().as_str() {
                "known" => vec![format!("KNOWN/{section}"), section.to_string()],
                "default" => vec![DEFAULT_SECTION.to_string()],
                _ => vec![sec.to_string()],
            };
            for s in tries {
                match self.get(&s, opt, None) {
                    Ok(v) => return Ok(v),
                    Err(e) if matches!(e.kind, ErrorKind::NoSection(_) | ErrorKind::NoOption) => {}
                    Err(e) => return Err(e),
                }
            }
        }
        self.get(section, option, vars)
    }

    #[allow(clippy::too_many_arguments)]
    fn interpolate(
        &self,
        chain: &Chain,
        section: &str,
        option: &str,
        rest: &str,
        extra: &HashMap<String, String>,
        depth: usize,
        out: &mut String,
    ) -> Result<(), ConfigError> {
        let raw = || {
            chain
                .section
                .and_then(|s| s.get(option))
                .or_else(|| chain.defaults.get(option))
                .map_or_else(|| rest.to_string(), |v| v.text.clone())
        };
        if depth > MAX_DEPTH {
            return Err(ConfigError::bare(ErrorKind::InterpolationDepth(raw())));
        }
        let mut extra = extra.clone();
        extra.insert("__name__".into(), section.to_string());
        self.map_section_options(section, rest, chain, &mut extra);
        let mut rest = rest;
        while !rest.is_empty() {
            let Some(p) = rest.find('%') else {
                out.push_str(rest);
                return Ok(());
            };
            out.push_str(&rest[..p]);
            rest = &rest[p..];
            match rest[1..].chars().next() {
                Some('%') => {
                    out.push('%');
                    rest = &rest[2..];
                }
                Some('(') => {
                    let close = rest
                        .find(')')
                        .filter(|&c| c > 2 && rest[c + 1..].starts_with('s'));
                    let Some(close) = close else {
                        return Err(ConfigError::bare(ErrorKind::InterpolationSyntax(format!(
                            "bad interpolation variable reference {rest:?}"
                        ))));
                    };
                    let var = rest[2..close].to_lowercase();
                    rest = &rest[close + 2..];
                    let Some((v, _)) = chain.lookup(&extra, &var) else {
                        return Err(ConfigError::bare(ErrorKind::MissingReference {
                            reference: var,
                            raw: raw(),
                        }));
                    };
                    if v.contains('%') {
                        let v = v.to_string();
                        self.interpolate(chain, section, option, &v, &extra, depth + 1, out)?;
                    } else {
                        out.push_str(v);
                    }
                }
                _ => {
                    return Err(ConfigError::bare(ErrorKind::InterpolationSyntax(format!(
                        "'%' must be followed by '%' or '(', found: {rest:?}"
                    ))))
                }
            }
        }
        Ok(())
    }

    /// Makes `%(sec/opt)s` references in `rest` resolvable: the raw value of
    /// `opt` in `sec` (or in [DEFAULT]; `known/` looks at the value this
    /// section overrode).
    fn map_section_options(
        &self,
        section: &str,
        rest: &str,
        chain: &Chain,
        extra: &mut HashMap<String, String>,
    ) {
        if !rest.contains('/') || !rest.contains("%(") {
            return;
        }
        for (sopt, sec, opt) in section_refs(rest) {
            if chain.contains(extra, sopt) {
                continue;
            }
            let seclwr = sec.to_lowercase();
            let found = match seclwr.as_str() {
                "default" => None,
                "known" => self
                    .sections
                    .get(&format!("KNOWN/{section}"))
                    .and_then(|s| s.get(opt)),
                _ => match self.sections.get(sec) {
                    None => continue,
                    Some(s) => s.get(opt),
                },
            };
            let v = match found.or_else(|| self.defaults.get(opt)) {
                Some(v) => v.text.clone(),
                None => continue,
            };
            extra.insert(sopt.to_string(), v);
        }
    }
}

/// `known/chain` is `("known", "chain")`: a word, a slash, then no white
/// space and no `>`.
pub fn section_option(option: &str) -> Option<(&str, &str)> {
    let (sec, opt) = option.split_once('/')?;
    let word = |c: char| c.is_alphanumeric() || c == '_' || c == '-';
    if sec.is_empty()
        || !sec.chars().all(word)
        || opt.is_empty()
        || opt.contains(|c: char| c.is_whitespace() || c == '>')
    {
        return None;
    }
    Some((sec, opt))
}

/// Every `%(sec/opt)s` in `s`: (`sec/opt`, `sec`, `opt`).
fn section_refs(s: &str) -> Vec<(&str, &str, &str)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = s[from..].find("%(").map(|i| i + from) {
        let body_start = i + 2;
        let body = &s[body_start..];
        let sec_len = body
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '-'))
            .unwrap_or(body.len());
        let parsed = (sec_len > 0 && body[sec_len..].starts_with('/'))
            .then(|| {
                let after = &body[sec_len + 1..];
                let close = after.find(')')?;
                (close > 0 && after[close + 1..].starts_with('s')).then_some(close)
            })
            .flatten();
        match parsed {
            Some(close) => {
                let sopt = &body[..sec_len + 1 + close];
                out.push((
                    sopt,
                    &body[..sec_len],
                    &body[sec_len + 1..sec_len + 1 + close],
                ));
                from = body_start + sec_len + 1 + close + 2;
            }
            None => from = i + 1,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ini::parse;
    use std::path::Path;

    fn ini(text: &str) -> IniFile {
        parse(Path::new("t.conf"), text).unwrap()
    }

    #[test]
    fn late_binding_and_name() {
        let f = ini(
            "[DEFAULT]\nlogpath = /var/log/%(__name__)s.log\nport = ssh\n[sshd]\nx = %(port)s %%\n",
        );
        assert_eq!(f.get("sshd", "logpath", None).unwrap(), "/var/log/sshd.log");
        assert_eq!(f.get("sshd", "x", None).unwrap(), "ssh %");
    }

    #[test]
    fn section_references() {
        let f = ini("[DEFAULT]\na = d\n[s]\na = s\n[t]\nx = %(s/a)s %(default/a)s %(known/a)s\n");
        assert_eq!(f.get("t", "x", None).unwrap(), "s d d");
    }

    #[test]
    fn vars_take_precedence() {
        let f = ini("[s]\na = 1\nb = %(a)s\n");
        let mut v = Vars::new();
        v.insert("a".into(), "2".into());
        assert_eq!(f.get("s", "b", Some(&v)).unwrap(), "2");
    }

    #[test]
    fn loops_and_missing_references_are_errors() {
        let f = ini("[s]\na = %(b)s\nb = %(a)s\nc = %(nope)s\nd = 5%\n");
        let e = f.get("s", "a", None).unwrap_err();
        assert!(matches!(e.kind, ErrorKind::InterpolationDepth(_)), "{e}");
        assert_eq!(e.to_string().split(':').next().unwrap(), "t.conf [s] a");
        let e = f.get("s", "c", None).unwrap_err();
        assert!(e.to_string().contains("%(nope)s"), "{e}");
        assert!(f.get("s", "d", None).is_err());
    }

    #[test]
    fn get_ex_known() {
        let f =
            ini("[DEFAULT]\nchain = D\n[Definition]\nchain = X\n[KNOWN/Definition]\nchain = K\n");
        assert_eq!(f.get_ex("Definition", "known/chain", None).unwrap(), "K");
        assert_eq!(f.get_ex("Definition", "default/chain", None).unwrap(), "D");
    }

    #[test]
    fn section_refs_parse() {
        assert_eq!(
            section_refs("%(a/b)s x %(c)s %(known/d/e)s"),
            vec![("a/b", "a", "b"), ("known/d/e", "known", "d/e")]
        );
    }
}
