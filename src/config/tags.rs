//! `<tag>` substitution between the options of a filter or action: a value
//! may refer to other options as `<name>`, recursively, as fail2ban's
//! `substituteRecursiveTags` resolves them at configuration time. Tags that
//! name nothing known (`<HOST>`, `<ip>`) stay for later stages.

use std::collections::{HashMap, HashSet};

use indexmap::IndexMap;

use super::error::{ConfigError, ErrorKind};

/// How often one tag may be replaced inside one value before it counts as
/// a loop.
const MAX_REPLACE: usize = 25;

/// The first `<name>` at or after `from` (a name is anything but space,
/// `<` and `>`): the byte range of the whole tag.
pub fn find_tag(s: &str, from: usize) -> Option<(usize, usize)> {
    let b = s.as_bytes();
    let mut i = from;
    while i < b.len() {
        if b[i] == b'<' {
            let mut j = i + 1;
            while j < b.len() && !matches!(b[j], b' ' | b'<' | b'>') {
                j += 1;
            }
            if j < b.len() && b[j] == b'>' && j > i + 1 {
                return Some((i, j + 1));
            }
        }
        i += 1;
    }
    None
}

/// Replaces `<tag>` references between the values of `tags`.
///
/// `ignore` tags are left alone; `conditional` (like `family=inet6`)
/// prefers `tag?conditional` values; `extra` is asked for tags not in
/// `tags`. Values that are `None` are never touched.
pub fn substitute(
    tags: &IndexMap<String, Option<String>>,
    conditional: &str,
    ignore: &HashSet<String>,
    extra: &mut dyn FnMut(&str) -> Result<Option<String>, ConfigError>,
) -> Result<IndexMap<String, Option<String>>, ConfigError> {
    let mut tags = tags.clone();
    let mut done: HashSet<String> = HashSet::new();
    let mut counts: HashMap<String, HashMap<String, usize>> = HashMap::new();
    let keys: Vec<String> = tags.keys().cloned().collect();
    loop {
        let mut again = false;
        for tag in &keys {
            if ignore.contains(tag) || done.contains(tag) {
                continue;
            }
            let Some(orig) = tags[tag].clone() else {
                continue;
            };
            let mut value = orig.clone();
            let mut counted = counts.get(tag).cloned().unwrap_or_default();
            let mut m = find_tag(&value, 0);
            while let Some((start, end)) = m {
                let rtag = value[start + 1..end - 1].to_string();
                if ignore.contains(&rtag) {
                    m = find_tag(&value, end);
                    continue;
                }
                if &rtag == tag || counted.get(&rtag).copied().unwrap_or(1) > MAX_REPLACE {
                    return Err(ConfigError::bare(ErrorKind::TagRecursion(format!(
                        "<{tag}> refers to <{rtag}>, value: {value:?}"
                    )))
                    .for_option(tag));
                }
                let mut repl = None;
                if !conditional.is_empty() {
                    repl = tags
                        .get(&format!("{rtag}?{conditional}"))
                        .cloned()
                        .flatten();
                }
                if repl.is_none() {
                    repl = tags.get(&rtag).cloned().flatten();
                    if repl.is_none() {
                        repl = extra(&rtag)?;
                    }
                }
                let Some(repl) = repl else {
                    m = find_tag(&value, end);
                    continue;
                };
                value = value.replace(&format!("<{rtag}>"), &repl);
                *counted.entry(rtag).or_insert(0) += 1;
                m = find_tag(&value, start);
            }
            if value != orig {
                if find_tag(&value, 0).is_some() {
                    counts.insert(tag.clone(), counted);
                    again = true;
                }
                tags.insert(tag.clone(), Some(value.clone()));
            }
            if !value.contains('<') {
                done.insert(tag.clone());
            }
        }
        if !again {
            return Ok(tags);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> IndexMap<String, Option<String>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Some(v.to_string())))
            .collect()
    }

    fn none(_: &str) -> Result<Option<String>, ConfigError> {
        Ok(None)
    }

    #[test]
    fn nested_and_unknown_tags() {
        let t = map(&[
            ("a", "3"),
            ("b", "<a>_3"),
            ("c", "<mdre-<m>> <HOST>"),
            ("m", "x"),
            ("mdre-x", "<b>!"),
        ]);
        let r = substitute(&t, "", &HashSet::new(), &mut none).unwrap();
        assert_eq!(r["b"].as_deref(), Some("3_3"));
        assert_eq!(r["c"].as_deref(), Some("3_3! <HOST>"));
    }

    #[test]
    fn ignored_and_conditional() {
        let t = map(&[
            ("x", "<ip> <bt>"),
            ("bt", "REJECT"),
            ("bt?family=inet6", "REJECT6"),
        ]);
        let ignore: HashSet<String> = ["ip".to_string()].into();
        let r = substitute(&t, "family=inet6", &ignore, &mut none).unwrap();
        assert_eq!(r["x"].as_deref(), Some("<ip> REJECT6"));
    }

    #[test]
    fn self_reference_is_an_error() {
        let t = map(&[("a", "<b>"), ("b", "<a>")]);
        assert!(substitute(&t, "", &HashSet::new(), &mut none).is_err());
        let t = map(&[("a", "x<a>")]);
        assert!(substitute(&t, "", &HashSet::new(), &mut none).is_err());
    }

    #[test]
    fn extra_lookup() {
        let t = map(&[("a", "<known/x>")]);
        let r = substitute(&t, "", &HashSet::new(), &mut |n| {
            Ok((n == "known/x").then(|| "K".to_string()))
        })
        .unwrap();
        assert_eq!(r["a"].as_deref(), Some("K"));
    }
}
