//! Reading files the way fail2ban's configuration reader does: a base name
//! becomes `NAME.conf`, `NAME.d/*.conf`, `NAME.local`, `NAME.d/*.local`;
//! every file pulls in its `.local` and its `[INCLUDES] before/after` files;
//! later files override earlier ones, remembering the value they replaced as
//! `KNOWN/<section>` so that `known/` references can reach it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;

use indexmap::IndexMap;

use super::error::{ConfigError, ErrorKind};
use super::glob::{glob, is_dir, is_file};
use super::ini::{IniFile, Options, DEFAULT_SECTION};

/// Reads and caches files under one configuration directory.
#[derive(Debug)]
pub struct Loader {
    basedir: String,
    files: RefCell<HashMap<String, Option<Rc<IniFile>>>>,
    /// Problems fail2ban only logs (include loops, unreadable files): they
    /// do not change what is read, but `-t` reports them.
    problems: RefCell<Vec<ConfigError>>,
}

impl Loader {
    pub fn new(basedir: &str) -> Loader {
        Loader {
            basedir: basedir.trim_end_matches('/').to_string(),
            files: RefCell::default(),
            problems: RefCell::default(),
        }
    }

    pub fn basedir(&self) -> &str {
        &self.basedir
    }

    pub fn problems(&self) -> Vec<ConfigError> {
        self.problems.borrow().clone()
    }

    pub fn problem(&self, e: ConfigError) {
        let mut p = self.problems.borrow_mut();
        if !p.contains(&e) {
            p.push(e);
        }
    }

    /// One file alone, without its includes. `None`: it cannot be read.
    fn single(&self, path: &str) -> Result<Option<Rc<IniFile>>, ConfigError> {
        if let Some(f) = self.files.borrow().get(path) {
            return Ok(f.clone());
        }
        let f = if is_dir(path) {
            None
        } else {
            IniFile::read(Path::new(path))?.map(Rc::new)
        };
        self.files.borrow_mut().insert(path.to_string(), f.clone());
        Ok(f)
    }

    /// The base name `name` under the directory: the files that exist, in
    /// fail2ban's order, merged with their includes. `None` when there is no
    /// readable file at all.
    pub fn read_base(&self, name: &str) -> Result<Option<Merged>, ConfigError> {
        let base = format!("{}/{}", self.basedir, name);
        let mut candidates = vec![format!("{base}.conf")];
        candidates.extend(sorted_glob(&format!("{base}.d/*.conf")));
        candidates.push(format!("{base}.local"));
        candidates.extend(sorted_glob(&format!("{base}.d/*.local")));
        let existing: Vec<String> = candidates
            .into_iter()
            .filter(|p| Path::new(p).exists())
            .collect();
        if existing.is_empty() {
            return Ok(None);
        }
        let merged = self.read_files(&existing)?;
        for f in &existing {
            if !merged.read.contains(f) {
                let why = std::fs::File::open(f)
                    .err()
                    .map_or_else(|| "not a regular file".to_string(), |e| e.to_string());
                self.problem(ConfigError::new(f, ErrorKind::Unreadable(why)));
            }
        }
        if merged.read.is_empty() {
            return Ok(None);
        }
        Ok(Some(merged))
    }

    /// Reads `files` with their includes and merges them in order.
    pub fn read_files(&self, files: &[String]) -> Result<Merged, ConfigError> {
        let all = self.includes(files, &[])?;
        let mut merged = Merged::default();
        for path in &all {
            let Some(file) = self.single(path)? else {
                continue;
            };
            merged.read.push(path.clone());
            merged.merge(&file);
        }
        Ok(merged)
    }

    fn includes(&self, files: &[String], seen: &[String]) -> Result<Vec<String>, ConfigError> {
        let mut out = Vec::new();
        for f in with_locals(files) {
            out.extend(self.includes_of(&f, seen)?);
        }
        Ok(out)
    }

    /// `resource` with what it includes before and after it, recursively.
    fn includes_of(&self, resource: &str, seen: &[String]) -> Result<Vec<String>, ConfigError> {
        let Some(file) = self.single(resource)? else {
            return Ok(Vec::new());
        };
        let dir = match resource.rfind('/') {
            Some(i) => &resource[..i],
            None => "",
        };
        let mut before = Vec::new();
        let mut after = Vec::new();
        if file.sections.contains_key("INCLUDES") {
            for (opt, list) in [("before", &mut before), ("after", &mut after)] {
                if !file.sections["INCLUDES"].contains_key(opt) && !file.defaults.contains_key(opt)
                {
                    continue;
                }
                let value = file
                    .get("INCLUDES", opt, None)
                    .map_err(|e| e.located(Some(Path::new(resource)), "INCLUDES", opt))?;
                for inc in value.split('\n') {
                    let r = if inc.starts_with('/') || dir.is_empty() {
                        inc.to_string()
                    } else {
                        format!("{dir}/{inc}")
                    };
                    if seen.contains(&r) {
                        self.problem(
                            ConfigError::new(resource, ErrorKind::IncludeLoop(r.into()))
                                .in_section("INCLUDES")
                                .for_option(opt),
                        );
                        continue;
                    }
                    let mut s = seen.to_vec();
                    s.push(resource.to_string());
                    list.extend(self.includes(std::slice::from_ref(&r), &s)?);
                }
            }
        }
        before.push(resource.to_string());
        before.extend(after);
        Ok(before)
    }
}

/// Each file followed by its `.local`, if that exists and is not listed.
fn with_locals(files: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for f in files {
        out.push(f.clone());
        let local = format!("{}.local", splitext(f));
        if !files.contains(&local) && is_file(&local) {
            out.push(local);
        }
    }
    out
}

/// `os.path.splitext(path)[0]`: the extension is after the last dot of the
/// last component, unless that component only starts with dots.
fn splitext(path: &str) -> &str {
    let name_start = path.rfind('/').map_or(0, |i| i + 1);
    let name = &path[name_start..];
    let leading = name.len() - name.trim_start_matches('.').len();
    match name[leading..].rfind('.') {
        Some(i) => &path[..name_start + leading + i],
        None => path,
    }
}

fn sorted_glob(pattern: &str) -> Vec<String> {
    let mut v = glob(pattern);
    v.sort();
    v
}

/// Files merged in order: what a fail2ban reader holds after `read`.
#[derive(Debug, Default, Clone)]
pub struct Merged {
    pub ini: IniFile,
    /// The files that were read, in order.
    pub read: Vec<String>,
}

impl Merged {
    fn merge(&mut self, file: &IniFile) {
        for (k, v) in &file.defaults {
            self.ini.defaults.insert(k.clone(), v.clone());
        }
        for (name, opts) in &file.sections {
            // `[Init?family=inet6]` adds `opt?family=inet6` options to [Init].
            let (name, opts) = match conditional(name) {
                Some((base, cond)) => {
                    let renamed: Options = opts
                        .iter()
                        .map(|(k, v)| (format!("{k}{cond}"), v.clone()))
                        .collect();
                    (base.to_string(), renamed)
                }
                None => (name.clone(), opts.clone()),
            };
            match self.ini.sections.get_mut(&name) {
                Some(existing) => {
                    let replaced: Options = existing
                        .iter()
                        .filter(|(k, _)| opts.contains_key(*k))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    for (k, v) in opts {
                        existing.insert(k, v);
                    }
                    let known = self
                        .ini
                        .sections
                        .entry(format!("KNOWN/{name}"))
                        .or_default();
                    for (k, v) in replaced {
                        known.insert(k, v);
                    }
                }
                None => {
                    self.ini.sections.insert(name, opts);
                }
            }
        }
    }

    /// Adds options to a section, each name prefixed with `prefix` unless it
    /// already has it (fail2ban's `merge_section`).
    pub fn merge_section(
        &mut self,
        section: &str,
        options: &IndexMap<String, String>,
        prefix: &str,
        file: &Arc<std::path::PathBuf>,
    ) {
        let sec = self.ini.sections.entry(section.to_string()).or_default();
        for (k, v) in options {
            let key = if prefix.is_empty() {
                k.clone()
            } else if k.starts_with(prefix) || k == "__name__" {
                continue;
            } else {
                format!("{prefix}{k}")
            };
            sec.insert(
                key,
                super::ini::Value {
                    text: v.clone(),
                    file: file.clone(),
                },
            );
        }
    }

    /// Section names, without the `KNOWN/` ones kept for overrides.
    pub fn sections(&self) -> impl Iterator<Item = &str> {
        self.ini
            .sections
            .keys()
            .map(String::as_str)
            .filter(|s| !s.starts_with("KNOWN/"))
    }

    pub fn has_section(&self, s: &str) -> bool {
        s != DEFAULT_SECTION && self.ini.sections.contains_key(s)
    }
}

/// `Init?family=inet6` is `("Init", "?family=inet6")`.
pub fn conditional(name: &str) -> Option<(&str, &str)> {
    let q = name.find('?')?;
    let (base, cond) = name.split_at(q);
    if base.is_empty() || cond.len() < 2 || !base.chars().all(|c| c.is_alphanumeric() || c == '_') {
        return None;
    }
    Some((base, cond))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitext_like_python() {
        assert_eq!(splitext("a/b.conf"), "a/b");
        assert_eq!(splitext("a.d/b"), "a.d/b");
        assert_eq!(splitext("a/.hidden"), "a/.hidden");
        assert_eq!(splitext("a/x.y.conf"), "a/x.y");
    }

    #[test]
    fn conditional_sections() {
        assert_eq!(
            conditional("Init?family=inet6"),
            Some(("Init", "?family=inet6"))
        );
        assert_eq!(conditional("Init"), None);
        assert_eq!(conditional("a/b?x"), None);
    }

    #[test]
    fn includes_locals_and_known() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("common.conf"), "[DEFAULT]\nx = common\n").unwrap();
        std::fs::write(d.join("common.local"), "[DEFAULT]\nx = common-local\n").unwrap();
        std::fs::write(
            d.join("f.conf"),
            "[INCLUDES]\nbefore = common.conf\n[Definition]\na = 1\nb = %(x)s\n",
        )
        .unwrap();
        std::fs::write(d.join("f.local"), "[Definition]\na = 2\n").unwrap();
        let l = Loader::new(d.to_str().unwrap());
        let m = l.read_base("f").unwrap().unwrap();
        assert_eq!(m.read.len(), 4);
        assert_eq!(m.ini.get("Definition", "a", None).unwrap(), "2");
        assert_eq!(m.ini.get("Definition", "b", None).unwrap(), "common-local");
        assert_eq!(m.ini.sections["KNOWN/Definition"]["a"].text, "1");
    }

    #[test]
    fn include_loop_is_reported_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("a.conf"), "[INCLUDES]\nafter = b.conf\n[s]\nx = a\n").unwrap();
        std::fs::write(d.join("b.conf"), "[INCLUDES]\nafter = a.conf\n[s]\nx = b\n").unwrap();
        let l = Loader::new(d.to_str().unwrap());
        let m = l.read_base("a").unwrap().unwrap();
        assert_eq!(m.ini.get("s", "x", None).unwrap(), "b");
        let p = l.problems();
        assert_eq!(p.len(), 1);
        assert!(
            p[0].to_string()
                .contains("b.conf [INCLUDES] after: include loop"),
            "{}",
            p[0]
        );
    }
}
