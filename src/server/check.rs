//! What `fail3ban-client -t` checks beyond reading the tree: every
//! enabled jail built from the stream as the server builds it, and its
//! filter compiled as the server compiles it, so that a jail that would
//! fail at start fails the test, named by file, section and option.

use indexmap::IndexMap;

use crate::config::{ConfigError, ErrorKind, Tree};

use super::spec::{self, command_to_json, text, JailSpec};

/// The problems the server would meet building the jails of `tree`.
pub fn jails(tree: &Tree) -> Vec<ConfigError> {
    let mut specs: IndexMap<String, JailSpec> = IndexMap::new();
    let mut problems = Vec::new();
    for cmd in &tree.stream {
        let cmd = command_to_json(cmd);
        if let Err(e) = spec::apply(&mut specs, &cmd) {
            let word = |i: usize| cmd.get(i).map(text).unwrap_or_default();
            // `addfailregex` sets `failregex`.
            let what = word(2);
            let option = what.strip_prefix("add").unwrap_or(&what);
            problems.push(tree.locate(
                &word(1),
                option,
                ErrorKind::Unusable {
                    value: cmd.get(3).map(text).unwrap_or_default(),
                    reason: e.to_string(),
                },
            ));
        }
    }
    for spec in specs.values() {
        for e in crate::filter::check(&spec.filter_options()) {
            problems.push(tree.locate(
                &spec.name,
                e.option,
                ErrorKind::Unusable {
                    reason: e.reason(),
                    value: e.value,
                },
            ));
        }
    }
    problems
}
