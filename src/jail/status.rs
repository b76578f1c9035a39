//! What `status <jail> [FLAVOR]`, `status --all [FLAVOR]` and `stats`
//! answer, as fail2ban 1.1's server does (`Jail.status`, `Actions.status`,
//! `Filter.status`, `Server.status`): which rows each flavour has. The
//! server gathers a jail's counts into [`JailCounts`]; the wording of the
//! rows stays fail2ban's so that its client prints them unchanged.

use serde_json::{json, Value};

/// The flavours fail2ban's `Actions.status` knows; any other word is
/// answered as `basic` (fail2ban logs a warning and does the same).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flavor {
    Basic,
    /// Counts only, no address list.
    Short,
    /// `[backend, (failed, total failed), (banned, total banned)]`.
    Stats,
    /// `basic` and the ASN, country and registry of each banned address.
    Cymru,
    /// A word fail2ban does not know: `basic`, with a warning.
    Unknown(String),
}

impl Flavor {
    /// The flavour a client named (`basic` when it named none).
    pub fn parse(word: Option<&str>) -> Flavor {
        match word {
            None | Some("basic") => Flavor::Basic,
            Some("short") => Flavor::Short,
            Some("stats") => Flavor::Stats,
            Some("cymru") => Flavor::Cymru,
            Some(other) => Flavor::Unknown(other.to_string()),
        }
    }
}

/// Where a jail's lines come from, as its status lists it.
#[derive(Debug, Clone, PartialEq)]
pub enum Watched {
    /// The files followed.
    Files(Vec<String>),
    /// The journal matches, each as its words.
    Journal(Vec<Vec<String>>),
}

/// A jail's counts at one moment, what every flavour is made of.
#[derive(Debug, Clone, PartialEq)]
pub struct JailCounts {
    /// fail2ban's name of the backend that reads the lines (`pyinotify`,
    /// `polling`, `systemd`): the `stats` table shows it.
    pub backend: String,
    pub failed: usize,
    pub total_failed: u64,
    pub watched: Watched,
    /// The banned ids, as text.
    pub banned: Vec<String>,
    pub total_banned: u64,
}

/// fail2ban's name of a file backend as `stats` shows it: the one its
/// jail resolved `auto` to (fail3ban follows files with inotify, as
/// fail2ban's pyinotify backend does, falling back to polling).
pub fn backend_name(backend: &crate::source::Backend) -> &'static str {
    match backend {
        crate::source::Backend::Auto | crate::source::Backend::Inotify => "pyinotify",
        crate::source::Backend::Polling => "polling",
    }
}

/// `status <jail> FLAVOR`.
pub fn jail_status(c: &JailCounts, flavor: &Flavor) -> Value {
    if *flavor == Flavor::Stats {
        return json!([
            c.backend,
            [c.failed, c.total_failed],
            [c.banned.len(), c.total_banned]
        ]);
    }
    let source = match &c.watched {
        Watched::Files(files) => json!(["File list", files]),
        Watched::Journal(matches) => {
            let m: Vec<String> = matches.iter().map(|m| m.join(" ")).collect();
            json!(["Journal matches", [m.join(" + ")]])
        }
    };
    let mut actions = vec![
        json!(["Currently banned", c.banned.len()]),
        json!(["Total banned", c.total_banned]),
    ];
    if *flavor != Flavor::Short {
        actions.push(json!(["Banned IP list", c.banned]));
    }
    if *flavor == Flavor::Cymru {
        // fail3ban asks no third party about the addresses it bans: it
        // answers as fail2ban does when it cannot look them up (without
        // dnspython), one "error" per list.
        for row in ["Banned ASN list", "Banned Country list", "Banned RIR list"] {
            actions.push(json!([row, ["error"]]));
        }
    }
    json!([
        [
            "Filter",
            [
                ["Currently failed", c.failed],
                ["Total failed", c.total_failed],
                source
            ]
        ],
        ["Actions", actions]
    ])
}

/// `status`, and `status --all FLAVOR` when `all` holds each jail's
/// status in that flavour, by name (sorted, as fail2ban sorts them).
pub fn server_status(names: &[&str], all: Option<Vec<(String, Value)>>) -> Value {
    let mut rows = vec![
        json!(["Number of jail", names.len()]),
        json!(["Jail list", names.join(", ")]),
    ];
    if let Some(all) = all {
        rows.push(Value::Object(all.into_iter().collect()));
    }
    Value::Array(rows)
}

/// `stats` (`status --all stats`): each jail's stats row, by name.
pub fn stats(all: Vec<(String, Value)>) -> Value {
    Value::Object(all.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts() -> JailCounts {
        JailCounts {
            backend: "polling".into(),
            failed: 1,
            total_failed: 3,
            watched: Watched::Files(vec!["/var/log/a.log".into()]),
            banned: vec!["192.0.2.1".into()],
            total_banned: 2,
        }
    }

    #[test]
    fn flavours_have_fail2ban_rows() {
        let c = counts();
        let rows = |f: &str| {
            let v = jail_status(&c, &Flavor::parse(Some(f)));
            v[1][1]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r[0].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            rows("basic"),
            ["Currently banned", "Total banned", "Banned IP list"]
        );
        assert_eq!(rows("nope"), rows("basic"));
        assert_eq!(rows("short"), ["Currently banned", "Total banned"]);
        assert_eq!(rows("cymru").len(), 6);
        assert_eq!(
            jail_status(&c, &Flavor::Stats),
            json!(["polling", [1, 3], [1, 2]])
        );
    }
}
