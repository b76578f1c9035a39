//! Path globbing as Python's `glob.glob` does it: results in directory order
//! (not sorted), `*` and `?` never match a leading dot, `[...]` classes.
//!
//! The order matters: fail2ban lists log paths in the order glob returns
//! them, and `fail3ban-client -d` must print the same stream.

use std::fs;
use std::path::Path;

pub fn is_file(p: &str) -> bool {
    fs::metadata(p).map(|m| m.is_file()).unwrap_or(false)
}

pub fn is_dir(p: &str) -> bool {
    fs::metadata(p).map(|m| m.is_dir()).unwrap_or(false)
}

pub(crate) fn has_magic(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

fn lexists(p: &str) -> bool {
    fs::symlink_metadata(p).is_ok()
}

/// Every existing path (dangling links included) that `pattern` names.
pub fn glob(pattern: &str) -> Vec<String> {
    if !has_magic(pattern) {
        return if lexists(pattern) {
            vec![pattern.to_string()]
        } else {
            Vec::new()
        };
    }
    let (dirname, basename) = match pattern.rfind('/') {
        Some(i) => (&pattern[..i + 1], &pattern[i + 1..]),
        None => ("", pattern),
    };
    let dirname_trim = if dirname.len() > 1 {
        dirname.trim_end_matches('/')
    } else {
        dirname
    };
    if dirname.is_empty() {
        return glob_in(".", basename).into_iter().collect();
    }
    let dirs = if has_magic(dirname_trim) {
        glob(dirname_trim)
    } else {
        vec![dirname_trim.to_string()]
    };
    let mut out = Vec::new();
    for d in dirs {
        let names = if has_magic(basename) {
            glob_in(&d, basename)
        } else if basename.is_empty() {
            if is_dir(&d) {
                vec![String::new()]
            } else {
                Vec::new()
            }
        } else if lexists(&join(&d, basename)) {
            vec![basename.to_string()]
        } else {
            Vec::new()
        };
        for n in names {
            out.push(if n.is_empty() {
                format!("{d}/")
            } else {
                join(&d, &n)
            });
        }
    }
    out
}

fn join(dir: &str, name: &str) -> String {
    if dir.ends_with('/') {
        format!("{dir}{name}")
    } else {
        format!("{dir}/{name}")
    }
}

fn glob_in(dir: &str, pattern: &str) -> Vec<String> {
    let dir = if dir.is_empty() { "." } else { dir };
    let Ok(rd) = fs::read_dir(Path::new(dir)) else {
        return Vec::new();
    };
    let hidden_ok = pattern.starts_with('.');
    rd.filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| hidden_ok || !n.starts_with('.'))
        .filter(|n| fnmatch(n, pattern))
        .collect()
}

/// Shell-style matching of one name (`fnmatch.fnmatchcase`).
pub fn fnmatch(name: &str, pattern: &str) -> bool {
    let n: Vec<char> = name.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    matches(&n, &p)
}

fn matches(n: &[char], p: &[char]) -> bool {
    // Iterative matching with backtracking to the last `*`.
    let (mut i, mut j) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while i < n.len() {
        if j < p.len() {
            match p[j] {
                '*' => {
                    star = Some((j, i));
                    j += 1;
                    continue;
                }
                '?' => {
                    i += 1;
                    j += 1;
                    continue;
                }
                '[' => {
                    if let Some((ok, next)) = class(&p[j..], n[i]) {
                        if ok {
                            i += 1;
                            j += next;
                            continue;
                        }
                    } else if n[i] == '[' {
                        i += 1;
                        j += 1;
                        continue;
                    }
                }
                c if c == n[i] => {
                    i += 1;
                    j += 1;
                    continue;
                }
                _ => {}
            }
        }
        match star {
            Some((sj, si)) => {
                j = sj + 1;
                i = si + 1;
                star = Some((sj, si + 1));
            }
            None => return false,
        }
    }
    p[j..].iter().all(|&c| c == '*')
}

/// A `[...]` class at the start of `p`: whether `c` is in it and how long the
/// class is; `None` when the `[` opens no class and stands for itself.
fn class(p: &[char], c: char) -> Option<(bool, usize)> {
    let mut k = 1;
    let negate = matches!(p.get(k), Some('!'));
    if negate {
        k += 1;
    }
    let start = k;
    // A `]` right after `[` or `[!` is a member, not the end.
    if p.get(k) == Some(&']') {
        k += 1;
    }
    while k < p.len() && p[k] != ']' {
        k += 1;
    }
    if k >= p.len() {
        return None;
    }
    let body = &p[start..k];
    let mut hit = false;
    let mut m = 0;
    while m < body.len() {
        if m + 2 < body.len() && body[m + 1] == '-' {
            if body[m] <= c && c <= body[m + 2] {
                hit = true;
            }
            m += 3;
        } else {
            if body[m] == c {
                hit = true;
            }
            m += 1;
        }
    }
    Some((hit != negate, k + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnmatch_cases() {
        assert!(fnmatch("auth.log", "*.log"));
        assert!(fnmatch("auth.log.1", "auth.log*"));
        assert!(!fnmatch("auth.log", "*.gz"));
        assert!(fnmatch("a1", "a[0-9]"));
        assert!(!fnmatch("a1", "a[!0-9]"));
        assert!(fnmatch("a[", "a["));
        assert!(fnmatch("abc", "a?c"));
        assert!(fnmatch("", "*"));
    }

    #[test]
    fn globbing_a_tree() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().to_str().unwrap();
        for f in ["a.log", "b.log", ".hidden.log", "c.txt"] {
            std::fs::write(d.path().join(f), "").unwrap();
        }
        let mut v = glob(&format!("{p}/*.log"));
        v.sort();
        assert_eq!(v, vec![format!("{p}/a.log"), format!("{p}/b.log")]);
        assert_eq!(glob(&format!("{p}/c.txt")), vec![format!("{p}/c.txt")]);
        assert!(glob(&format!("{p}/none")).is_empty());
        assert_eq!(glob(&format!("{p}/.h*")).len(), 1);
    }
}
