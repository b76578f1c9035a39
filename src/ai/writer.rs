//! Writes what the AI part made: filter.d/ai-<jail>-<id>.conf (or under
//! filter.d/ai-pending/ until approved) and their jails in jail.d/ai.local.
//! Every file is written whole to a temporary name and renamed, so that
//! the config watcher never reads half a file.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::store::{Rule, RuleStatus};

/// The jail file that holds every AI jail.
pub const JAIL_FILE: &str = "jail.d/ai.local";
/// Where suggested filters wait for approval.
pub const PENDING_DIR: &str = "filter.d/ai-pending";

/// The floors of rules stored before they were recorded with the rule.
const DEFAULT_MIN_MAXRETRY: u64 = 3;
const DEFAULT_MAX_BANTIME: u64 = 3600;

/// The filter's name for a rule.
pub fn filter_name(jail: &str, id: &str) -> String {
    let service: String = jail
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    format!("ai-{}-{id}", super::cut(&service, 40))
}

/// Text safe for one comment line: no control characters, bounded.
pub fn sanitise(s: &str, max: usize) -> String {
    let mut out = String::new();
    for c in super::cut(s, max).chars() {
        if c.is_control() {
            out.push_str(&format!("\\x{:02x}", c as u32 & 0xff));
        } else {
            out.push(c);
        }
    }
    out
}

fn detail<'a>(rule: &'a Rule, key: &str) -> &'a str {
    rule.detail.get(key).and_then(|v| v.as_str()).unwrap_or("")
}

fn time_text(t: f64) -> String {
    jiff::Timestamp::from_second(t as i64)
        .map(|ts| ts.to_string())
        .unwrap_or_default()
}

/// The filter file of a rule. `%` is doubled: fail2ban interpolates it.
pub fn filter_text(rule: &Rule) -> String {
    let mut s = String::new();
    s.push_str("# Written by fail3ban's AI rule generator. Do not edit: reject the rule\n");
    s.push_str("# (fail3ban-client ai reject ID) and write your own filter instead.\n");
    for (k, v) in [
        ("rule", rule.id.as_str()),
        ("jail", rule.jail.as_str()),
        ("model", detail(rule, "model")),
        ("category", detail(rule, "category")),
        ("reason", detail(rule, "reason")),
        ("template", rule.template.as_str()),
        ("sample", detail(rule, "sample")),
    ] {
        s.push_str(&format!("# {k}: {}\n", sanitise(v, 400)));
    }
    s.push_str(&format!("# time: {}\n\n", time_text(rule.created)));
    s.push_str("[Definition]\n\n");
    s.push_str(&format!(
        "failregex = {}\n\n",
        detail(rule, "failregex").replace('%', "%%")
    ));
    s.push_str("ignoreregex =\n");
    s
}

/// Writes `text` to `path` through a temporary file and a rename.
pub fn write_atomic(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    // A dot name ends neither in .conf nor .local: the watcher ignores it
    // until the rename.
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("ai"),
        std::process::id()
    ));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)
}

/// Where a rule's filter lives.
pub fn filter_path(conf_dir: &Path, rule: &Rule, pending: bool) -> PathBuf {
    let name = format!("{}.conf", filter_name(&rule.jail, &rule.id));
    if pending {
        conf_dir.join(PENDING_DIR).join(name)
    } else {
        conf_dir.join("filter.d").join(name)
    }
}

fn num(rule: &Rule, key: &str) -> Option<u64> {
    rule.detail.get(key).and_then(|v| v.as_u64())
}

/// The jail section of one loaded rule: only the rule's own values and
/// its origin jail, whose other options (ignoreip, action, logpath,
/// backend, ...) the configuration reader takes from the origin each time
/// it reads them (`config::inherit`), so that they are never stale.
fn jail_section(rule: &Rule) -> String {
    let name = filter_name(&rule.jail, &rule.id);
    let mut s = format!(
        "# rule {} from jail {} ({})\n[{name}]\nenabled = true\n{} = {}\nfilter = {name}\n",
        rule.id,
        rule.jail,
        rule.status,
        crate::config::inherit::ORIGIN,
        rule.jail
    );
    // Until approved, the model's counting holds only within the floors:
    // never fewer than min_maxretry failures, never longer than the cap,
    // also for bans bantime.increment makes longer.
    let approved = rule.status == RuleStatus::Approved;
    let mut maxretry = num(rule, "maxretry");
    let mut bantime = num(rule, "bantime");
    let mut maxtime = None;
    if !approved {
        let floor = num(rule, "min_maxretry").unwrap_or(DEFAULT_MIN_MAXRETRY);
        maxretry = Some(maxretry.map_or(floor, |m| m.max(floor)));
        let cap = num(rule, "max_bantime").unwrap_or(DEFAULT_MAX_BANTIME);
        bantime = Some(bantime.map_or(cap, |b| b.min(cap)));
        maxtime = Some(cap);
    }
    for (k, v) in [
        ("maxretry", maxretry),
        ("findtime", num(rule, "findtime")),
        ("bantime", bantime),
        ("bantime.maxtime", maxtime),
    ] {
        if let Some(v) = v {
            s.push_str(&format!("{k} = {v}\n"));
        }
    }
    s.push('\n');
    s
}

/// Writes jail.d/ai.local with a jail for every loaded rule (active or
/// approved), or removes it when there is none.
pub fn write_jails(conf_dir: &Path, rules: &[Rule]) -> std::io::Result<()> {
    let path = conf_dir.join(JAIL_FILE);
    match jails_text(rules) {
        Some(s) => write_atomic(&path, &s),
        None => match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        },
    }
}

/// The text of `jail.d/ai.local` for `rules`; none when no rule is loaded.
fn jails_text(rules: &[Rule]) -> Option<String> {
    let loaded: Vec<_> = rules.iter().filter(|r| r.status.is_loaded()).collect();
    if loaded.is_empty() {
        return None;
    }
    let mut s = String::from(
        "# Jails of the filters fail3ban's AI rule generator wrote. Rewritten by\n\
         # fail3ban; manage them with fail3ban-client ai list|approve|reject.\n\n",
    );
    for r in loaded {
        s.push_str(&jail_section(r));
    }
    Some(s)
}

/// At start: an `ai.local` that says something else than the rules (one
/// written by an older fail3ban, with copies of its origin jails' options
/// that no reload would refresh) is written again; one that agrees is left
/// alone, so that a start causes no reload. Without a loaded rule the file
/// is left as it is: the database may be new, the file the only record.
/// Whether it was written.
pub fn refresh_jails(conf_dir: &Path, rules: &[Rule]) -> std::io::Result<bool> {
    let path = conf_dir.join(JAIL_FILE);
    let Some(s) = jails_text(rules) else {
        return Ok(false);
    };
    match std::fs::read_to_string(&path) {
        Ok(old) if old == s => Ok(false),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => write_atomic(&path, &s).map(|()| true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_file_is_commented_and_escaped() {
        let rule = Rule {
            id: "abc123".into(),
            jail: "nginx_access".into(),
            template: "t".into(),
            status: RuleStatus::Active,
            created: 0.0,
            detail: serde_json::json!({
                "failregex": "^<HOST> x 100% \\S+",
                "sample": "evil\nline\u{1b}[31m",
                "model": "m",
            }),
        };
        let t = filter_text(&rule);
        assert!(t.contains("failregex = ^<HOST> x 100%% \\S+\n"), "{t}");
        assert!(t.contains("# sample: evil\\x0aline\\x1b[31m\n"), "{t}");
        assert_eq!(
            filter_name("nginx_access", "abc123"),
            "ai-nginx-access-abc123"
        );
    }

    #[test]
    fn floors_hold_until_approved() {
        let mut rule = Rule {
            id: "abc123".into(),
            jail: "nginx".into(),
            template: "t".into(),
            status: RuleStatus::Active,
            created: 0.0,
            detail: serde_json::json!({"maxretry": 1, "bantime": 2_592_000}),
        };
        let s = jail_section(&rule);
        assert!(s.contains("\nai_origin = nginx\n"), "{s}");
        assert!(s.contains("maxretry = 3\n"), "{s}");
        assert!(s.contains("bantime = 3600\n"), "{s}");
        assert!(s.contains("bantime.maxtime = 3600\n"), "{s}");
        rule.status = RuleStatus::Approved;
        let s = jail_section(&rule);
        assert!(s.contains("maxretry = 1\n"), "{s}");
        assert!(s.contains("bantime = 2592000\n"), "{s}");
        assert!(!s.contains("maxtime"), "{s}");
    }

    /// Issue 16, finding 5, for files an older fail3ban wrote: their
    /// copied options are replaced by the origin at the next start.
    #[test]
    fn stale_copies_are_rewritten_at_start_and_current_files_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("jail.d")).unwrap();
        let path = dir.path().join(JAIL_FILE);
        let rule = Rule {
            id: "abc123".into(),
            jail: "nginx".into(),
            template: "t".into(),
            status: RuleStatus::Active,
            created: 0.0,
            detail: serde_json::json!({"maxretry": 3, "bantime": 600}),
        };
        let old = "[ai-nginx-abc123]\nenabled = true\nfilter = ai-nginx-abc123\nignoreip = 127.0.0.1/8\nlogpath = /var/log/nginx/access.log\n";
        std::fs::write(&path, old).unwrap();
        assert!(refresh_jails(dir.path(), std::slice::from_ref(&rule)).unwrap());
        let new = std::fs::read_to_string(&path).unwrap();
        assert!(new.contains("ai_origin = nginx\n"), "{new}");
        assert!(!new.contains("ignoreip"), "{new}");
        assert!(!refresh_jails(dir.path(), std::slice::from_ref(&rule)).unwrap());
        // No loaded rule (a new database): the file stays.
        std::fs::write(&path, old).unwrap();
        assert!(!refresh_jails(dir.path(), &[]).unwrap());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), old);
    }
}
