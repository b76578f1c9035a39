//! AI jails take their origin jail's options when the configuration is
//! read. `ai_origin = sshd` in an AI jail's section (jail.d/ai.local)
//! brings in every option of [sshd] that the AI jail does not set itself
//! and that is not the rule's own (its filter and counting), so that a
//! change to the origin (ignoreip, action, logpath, backend, ...) applies
//! to its AI jails at the next reload, and `-d` shows them with it.
//!
//! The origin's values are taken raw, as if written in the AI jail's
//! section: `%(__name__)s` and the like resolve there, so that the AI
//! jail's actions get a name (and a chain) of their own.

use super::definition::OptType;
use super::ini::Value;
use super::jail::read_options;
use super::parser::{Loader, Merged};
use super::stream::PyValue;

/// The option naming an AI jail's origin jail.
pub const ORIGIN: &str = "ai_origin";

/// Options that belong to the AI jail (its rule) and are never taken from
/// the origin: its filter, its counting within the floors, and the AI
/// options, which would make it feed the AI again.
pub const OWN: &[&str] = &[
    "enabled",
    "filter",
    "failregex",
    "ignoreregex",
    "prefregex",
    "maxretry",
    "findtime",
    "bantime",
    "bantime.maxtime",
    "ai",
    "ai_max_bantime",
    ORIGIN,
    "__name__",
];

/// Why an AI jail cannot take its origin's options.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Unusable {
    Missing,
    Disabled,
    AiJail,
}

impl std::fmt::Display for Unusable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Unusable::Missing => "does not exist",
            Unusable::Disabled => "is not enabled",
            Unusable::AiJail => "is itself an AI jail",
        })
    }
}

fn enabled(loader: &Loader, cfg: &Merged, section: &str) -> bool {
    let spec = [("enabled", OptType::Bool, Some(PyValue::Bool(false)))];
    read_options(loader, cfg, section, &spec)
        .ok()
        .and_then(|o| o.get("enabled").map(PyValue::truthy))
        .unwrap_or(false)
}

fn usable(loader: &Loader, cfg: &Merged, origin: &str) -> Result<(), Unusable> {
    // A jail's section: not [INCLUDES], nor the KNOWN/ copies of
    // overridden values.
    let is_jail = origin != "INCLUDES" && cfg.sections().any(|s| s == origin);
    let Some(opts) = cfg.ini.sections.get(origin).filter(|_| is_jail) else {
        return Err(Unusable::Missing);
    };
    if opts.contains_key(ORIGIN) {
        return Err(Unusable::AiJail);
    }
    if !enabled(loader, cfg, origin) {
        return Err(Unusable::Disabled);
    }
    Ok(())
}

/// Gives every enabled AI jail of `cfg` its origin jail's options. One
/// whose origin is missing, not enabled or itself an AI jail is disabled,
/// and the log says why: it must not ban with options its origin no
/// longer has, and the rest of the configuration is not affected.
pub fn resolve(loader: &Loader, cfg: &mut Merged) {
    let ai_jails: Vec<(String, Value)> = cfg
        .sections()
        .filter_map(|s| Some((s.to_string(), cfg.ini.sections[s].get(ORIGIN)?.clone())))
        .collect();
    for (jail, origin) in ai_jails {
        if !enabled(loader, cfg, &jail) {
            continue;
        }
        let name = origin.text.trim();
        match usable(loader, cfg, name) {
            Ok(()) => inherit(cfg, &jail, name),
            Err(why) => {
                tracing::warn!(
                    "Jail '{jail}' is not started: its origin jail '{name}' {why} \
                     (ai_origin in {})",
                    origin.file.display()
                );
                let off = Value {
                    text: "false".into(),
                    file: origin.file.clone(),
                };
                if let Some(s) = cfg.ini.sections.get_mut(&jail) {
                    s.insert("enabled".into(), off);
                }
            }
        }
    }
}

/// Adds to `jail` the options of `origin` it does not set and that are
/// not its own, with the values they overrode (for `known/`).
fn inherit(cfg: &mut Merged, jail: &str, origin: &str) {
    for (from, to) in [
        (origin.to_string(), jail.to_string()),
        (format!("KNOWN/{origin}"), format!("KNOWN/{jail}")),
    ] {
        let Some(opts) = cfg.ini.sections.get(&from).cloned() else {
            continue;
        };
        let target = cfg.ini.sections.entry(to).or_default();
        for (k, v) in opts {
            if OWN.contains(&k.as_str()) || k.starts_with("known/") || target.contains_key(&k) {
                continue;
            }
            target.insert(k, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{format_command, read_tree};
    use std::path::Path;

    /// A tree with `jail.conf`, `jail.local` and `jail.d/ai.local`, a
    /// filter for each jail and a recording action.
    fn tree(jail_local: &str, ai_local: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for sub in ["filter.d", "action.d", "jail.d"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        let filter = "[Definition]\nfailregex = ^<HOST> x$\n";
        for (name, text) in [
            ("filter.d/f.conf", filter),
            ("filter.d/ai-web-1.conf", filter),
            (
                "action.d/rec.conf",
                "[Definition]\nactionban = echo <name> <port> <ip>\n[Init]\nname = d\nport = 0\n",
            ),
            ("jail.conf", JAIL),
            ("jail.local", jail_local),
            ("jail.d/ai.local", ai_local),
        ] {
            std::fs::write(d.join(name), text).unwrap();
        }
        dir
    }

    fn dump(dir: &Path) -> Vec<String> {
        let t = read_tree(dir.to_str().unwrap(), false).unwrap();
        t.stream.iter().map(format_command).collect()
    }

    fn has(lines: &[String], want: &str) -> bool {
        lines.iter().any(|l| l == want)
    }

    const JAIL: &str = "[DEFAULT]\nport = 0\naction = rec[name=%(__name__)s, port=\"%(port)s\"]\n\
                        [web]\nenabled = true\nfilter = f\nlogpath = /dev/null\n\
                        ignoreip = 192.0.2.1\nport = http\nmaxretry = 9\nai = enforce\n";
    const AI: &str =
        "[ai-web-1]\nenabled = true\nai_origin = web\nfilter = ai-web-1\nmaxretry = 3\n";

    #[test]
    fn ai_jail_takes_the_origin_options_but_not_its_counting() {
        let dir = tree("[web]\nignoreip = 192.0.2.1 198.51.100.0/24\n", AI);
        let d = dump(dir.path());
        let ai = |rest: &str| format!("['set', 'ai-web-1', {rest}]");
        assert!(
            has(&d, &ai("'addignoreip', '192.0.2.1', '198.51.100.0/24'")),
            "{d:#?}"
        );
        assert!(has(&d, &ai("'addlogpath', '/dev/null', 'head'")), "{d:#?}");
        assert!(has(&d, &ai("'maxretry', 3")), "{d:#?}");
        assert!(
            d.iter().any(|l| l.starts_with("['multi-set', 'ai-web-1', 'action', 'rec', [['actionban', 'echo ai-web-1 http <ip>']")),
            "{d:#?}"
        );
        assert!(!d.iter().any(|l| l.contains("'ai-web-1', 'ai'")), "{d:#?}");
        assert!(has(&d, "['start', 'ai-web-1']"), "{d:#?}");
    }

    #[test]
    fn ai_jail_without_a_usable_origin_is_off() {
        let gone = AI.replace("ai_origin = web", "ai_origin = gone");
        let itself = AI.replace("ai_origin = web", "ai_origin = ai-web-1");
        for (local, ai, web) in [
            ("[web]\nenabled = false\n", AI, false),
            ("", &gone, true),
            ("", &itself, true),
        ] {
            let dir = tree(local, ai);
            let d = dump(dir.path());
            assert!(!d.iter().any(|l| l.contains("ai-web-1")), "{ai}: {d:#?}");
            assert_eq!(has(&d, "['start', 'web']"), web, "{d:#?}");
        }
    }

    /// jail.d/ai.local as fail3ban wrote it before `ai_origin`: the
    /// origin's options copied. It loads as written.
    #[test]
    fn copied_options_of_old_ai_jails_still_load() {
        let old = "# rule 1 from jail web (active)\n[ai-web-1]\nenabled = true\nfilter = ai-web-1\n\
                   logpath = /dev/null\nignoreip = 192.0.2.1\nport = http\nmaxretry = 3\nbantime = 600\n";
        let dir = tree("", old);
        let d = dump(dir.path());
        assert!(
            has(&d, "['set', 'ai-web-1', 'addignoreip', '192.0.2.1']"),
            "{d:#?}"
        );
        assert!(
            has(&d, "['set', 'ai-web-1', 'addlogpath', '/dev/null', 'head']"),
            "{d:#?}"
        );
        assert!(has(&d, "['start', 'ai-web-1']"), "{d:#?}");
    }
}
