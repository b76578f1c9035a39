//! fail2ban-client's wording of the server's answers, character for
//! character, so that scripts that parse `fail2ban-client status` output
//! keep working.

use serde_json::Value;

use super::protocol::{CommandError, ErrorKind};

/// Python's `str()` of a value as fail2ban's client prints it.
pub fn py_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(py_repr).collect();
            format!("[{}]", parts.join(", "))
        }
        Value::Object(m) => {
            let parts: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{}: {}", crate::config::stream::py_repr(k), py_repr(v)))
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
    }
}

/// Python's `repr()` of a value.
pub fn py_repr(v: &Value) -> String {
    match v {
        Value::String(s) => crate::config::stream::py_repr(s),
        other => py_str(other),
    }
}

/// The value of a status row: lists are joined with spaces.
fn row_value(v: &Value) -> String {
    match v {
        Value::Array(items) => items.iter().map(py_str).collect::<Vec<_>>().join(" "),
        other => py_str(other),
    }
}

fn pairs(v: &Value) -> Vec<(String, &Value)> {
    match v {
        Value::Array(items) => pairs_of(items),
        _ => Vec::new(),
    }
}

fn pairs_of(items: &[Value]) -> Vec<(String, &Value)> {
    items
        .iter()
        .filter_map(|row| match row {
            Value::Array(kv) if kv.len() == 2 => Some((py_str(&kv[0]), &kv[1])),
            _ => None,
        })
        .collect()
}

fn tree_list(intro: &str, items: &[String]) -> String {
    let mut msg = intro.to_string();
    for (i, it) in items.iter().enumerate() {
        let last = i + 1 == items.len();
        msg.push_str(if last { "`- " } else { "|- " });
        msg.push_str(it);
        if !last {
            msg.push('\n');
        }
    }
    msg
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::Array(items) => items.iter().map(py_str).collect(),
        Value::Null => Vec::new(),
        other => vec![py_str(other)],
    }
}

/// What fail2ban-client prints for the answer `response` to `cmd`.
pub fn beautify(cmd: &[String], response: &Value) -> String {
    let c = |i: usize| cmd.get(i).map(String::as_str).unwrap_or("");
    match c(0) {
        "ping" => return format!("Server replied: {}", py_str(response)),
        "version" => return py_str(response),
        "start" => return "Jail started".into(),
        "stop" => {
            if response.is_null() {
                return if cmd.len() == 1 {
                    "Shutdown successful".into()
                } else {
                    "Jail stopped".into()
                };
            }
            return py_str(response);
        }
        "add" => return format!("Added jail {}", py_str(response)),
        "flushlogs" => return format!("logs: {}", py_str(response)),
        "echo" => return strings(response).join(" "),
        // fail3ban's own: no fail2ban wording to keep, so plain JSON that
        // scripts can read.
        "ai" => {
            return match response {
                Value::String(s) => s.clone(),
                v => serde_json::to_string_pretty(v).unwrap_or_default(),
            }
        }
        "status" => return status(cmd, response),
        "stats" | "statistics" => return stats_table(response),
        // fail2ban's client has no wording for this alias: it prints the
        // answer as Python prints it.
        "statistic" => return stats_repr(response),
        _ => {}
    }
    if cmd.len() < 2 {
        return py_str(response);
    }
    match c(1) {
        "syslogsocket" => return format!("Current syslog socket is:\n`- {}", py_str(response)),
        "logtarget" => return format!("Current logging target is:\n`- {}", py_str(response)),
        "loglevel" => return format!("Current logging level is {}", py_repr(response)),
        "dbfile" => {
            return match response {
                Value::Null => "Database currently disabled".into(),
                v => format!("Current database file is:\n`- {}", py_str(v)),
            }
        }
        "dbpurgeage" => {
            return match response {
                Value::Null => "Database currently disabled".into(),
                v => format!(
                    "Current database purge age is:\n`- {}seconds",
                    v.as_f64().map_or(0, |f| f as i64)
                ),
            }
        }
        _ => {}
    }
    if cmd.len() < 3 {
        return py_str(response);
    }
    match c(2) {
        "logpath" | "addlogpath" | "dellogpath" => {
            let l = strings(response);
            if l.is_empty() {
                "No file is currently monitored".into()
            } else {
                tree_list("Current monitored log file(s):\n", &l)
            }
        }
        "logencoding" => format!("Current log encoding is set to:\n{}", py_str(response)),
        "journalmatch" | "addjournalmatch" | "deljournalmatch" => {
            let groups: Vec<String> = match response {
                Value::Array(g) => g.iter().map(|m| strings(m).join(" ")).collect(),
                _ => Vec::new(),
            };
            if groups.is_empty() {
                "No journal match filter set".into()
            } else {
                format!("Current match filter:\n{}", groups.join(" + "))
            }
        }
        "datepattern" => {
            let mut msg = "Current date pattern set to: ".to_string();
            match response {
                Value::Null => msg.push_str("Not set/required"),
                Value::Array(pn) if pn.len() == 2 && pn[0].is_null() => {
                    msg.push_str(&py_str(&pn[1]))
                }
                Value::Array(pn) if pn.len() == 2 => {
                    msg.push_str(&format!("{} ({})", py_str(&pn[0]), py_str(&pn[1])))
                }
                v => msg.push_str(&py_str(v)),
            }
            msg
        }
        "ignoreip" | "addignoreip" | "delignoreip" => {
            let l = strings(response);
            if l.is_empty() {
                "No IP address/network is ignored".into()
            } else {
                tree_list("These IP addresses/networks are ignored:\n", &l)
            }
        }
        "failregex" | "addfailregex" | "delfailregex" | "ignoreregex" | "addignoreregex"
        | "delignoreregex" => {
            let l = strings(response);
            if l.is_empty() {
                "No regular expression is defined".into()
            } else {
                let items: Vec<String> = l
                    .iter()
                    .enumerate()
                    .map(|(i, r)| format!("[{i}]: {r}"))
                    .collect();
                tree_list("The following regular expression are defined:\n", &items)
            }
        }
        "actions" => {
            let l = strings(response);
            if l.is_empty() {
                format!("No actions for jail {}", c(1))
            } else {
                format!(
                    "The jail {} has the following actions:\n{}",
                    c(1),
                    l.join(", ")
                )
            }
        }
        "banip" if c(0) == "get" => match response {
            Value::Array(_) => {
                let sep = match cmd.get(3).map(String::as_str) {
                    None => " ",
                    Some("--with-time") => "\n",
                    Some(s) => s,
                };
                strings(response).join(sep)
            }
            v => py_str(v),
        },
        _ => py_str(response),
    }
}

/// One jail's status rows under `pref` (fail2ban's `jail_stat`).
fn jail_stat(msg: &mut Vec<String>, response: &Value, pref: &str) {
    let rows = pairs(response);
    for (n, (name, inner)) in rows.iter().enumerate() {
        let last1 = n + 1 == rows.len();
        msg.push(format!("{pref}{} {name}", if last1 { "`-" } else { "|-" }));
        let p1 = format!("{pref}{}", if last1 { "   " } else { "|  " });
        let sub = pairs(inner);
        for (m, (k, v)) in sub.iter().enumerate() {
            let p2 = format!("{p1}{}", if m + 1 == sub.len() { "`-" } else { "|-" });
            msg.push(format!("{p2} {k}:\t{}", row_value(v)));
        }
    }
}

/// `status`, `status <jail> [FLAVOR]` and `status --all [FLAVOR]`.
fn status(cmd: &[String], response: &Value) -> String {
    let all = cmd.get(1).map(String::as_str) == Some("--all");
    // The `stats` flavour's answer is not rows: fail2ban's client fails to
    // word it and prints what it had so far and the answer, as Python
    // shows them.
    if is_stats(response) {
        return format!("{}{}", stats_repr(response), stats_repr(response));
    }
    if let (Some(jail), false) = (cmd.get(1), all) {
        if let Some(Value::String(backend)) = response.get(0) {
            let first: String = backend.chars().take(1).collect();
            let head = crate::config::stream::py_repr(&format!("Status for the jail: {jail}"));
            let row = crate::config::stream::py_repr(&format!("|- {first}"));
            return format!("[{head}, {row}]{}", stats_value_repr(response));
        }
        let mut msg = vec![format!("Status for the jail: {jail}")];
        jail_stat(&mut msg, response, "");
        return msg.join("\n");
    }
    let (rows, jails) = match response {
        Value::Array(items) if all => match items.split_last() {
            Some((Value::Object(j), rest)) => (rest, Some(j)),
            _ => (&items[..], None),
        },
        Value::Array(items) => (&items[..], None),
        _ => (&[][..], None),
    };
    let rows = pairs_of(rows);
    let mut msg = vec!["Status".to_string()];
    let has_jails = jails.is_some_and(|j| !j.is_empty());
    for (n, (k, v)) in rows.iter().enumerate() {
        let p = if !has_jails && n + 1 == rows.len() {
            "`-"
        } else {
            "|-"
        };
        msg.push(format!("{p} {k}:\t{}", row_value(v)));
    }
    if let Some(jails) = jails.filter(|j| !j.is_empty()) {
        msg.push("`- Status for the jails:".into());
        for (i, (name, st)) in jails.iter().enumerate() {
            let last = i + 1 == jails.len();
            msg.push(format!(
                "   {} Jail: {name}",
                if last { "`-" } else { "|-" }
            ));
            jail_stat(&mut msg, st, if last { "      " } else { "   |  " });
        }
    }
    msg.join("\n")
}

/// Whether an answer is the `stats` flavour's: jails by name.
fn is_stats(response: &Value) -> bool {
    response.is_object()
}

/// Python's repr of one jail's stats, `['polling', (1, 3), (0, 0)]`:
/// the counts are tuples there.
fn stats_value_repr(v: &Value) -> String {
    match v {
        Value::Array(items) => {
            let parts: Vec<String> = items
                .iter()
                .map(|i| match i {
                    Value::Array(t) => {
                        format!("({})", t.iter().map(py_repr).collect::<Vec<_>>().join(", "))
                    }
                    other => py_repr(other),
                })
                .collect();
            format!("[{}]", parts.join(", "))
        }
        other => py_repr(other),
    }
}

/// Python's repr of the `stats` answer.
fn stats_repr(response: &Value) -> String {
    match response {
        Value::Object(m) => {
            let parts: Vec<String> = m
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{}: {}",
                        crate::config::stream::py_repr(k),
                        stats_value_repr(v)
                    )
                })
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
        other => py_repr(other),
    }
}

/// `stats`: fail2ban 1.1's table of every jail's backend and counts.
fn stats_table(response: &Value) -> String {
    let Some(jails) = response.as_object().filter(|m| !m.is_empty()) else {
        // No jail: fail2ban's client fails on the empty table and prints
        // the answer twice, as Python shows it.
        return format!("{}{}", stats_repr(response), stats_repr(response));
    };
    let rows: Vec<[String; 6]> = jails
        .iter()
        .map(|(name, v)| {
            let at = |i: usize, j: usize| v.get(i).and_then(|p| p.get(j)).map(py_str);
            [
                name.clone(),
                v.get(0).map(py_str).unwrap_or_default(),
                at(1, 0).unwrap_or_default(),
                at(1, 1).unwrap_or_default(),
                at(2, 0).unwrap_or_default(),
                at(2, 1).unwrap_or_default(),
            ]
        })
        .collect();
    const MIN: [usize; 6] = [8, 8, 3, 3, 3, 3];
    let lens: Vec<usize> = (0..6)
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
                .max(MIN[i])
        })
        .collect();
    let left = |s: &str, n: usize| format!("{s:<n$}");
    let right = |s: &str, n: usize| format!("{s:>n$}");
    let line = |c: [&str; 6]| {
        [
            left(c[0], lens[0]),
            left(c[1], lens[1]),
            format!("{} \u{2502} {}", right(c[2], lens[2]), right(c[3], lens[3])),
            format!("{} \u{2502} {}", right(c[4], lens[4]), right(c[5], lens[5])),
        ]
        .join(" \u{2551} ")
    };
    let tlens = [
        lens[0],
        lens[1],
        3 + lens[2] + lens[3],
        3 + lens[4] + lens[5],
    ];
    let bar = |c: char, n: usize| c.to_string().repeat(n);
    let rule = |joint: &str| {
        let parts: Vec<String> = tlens.iter().map(|n| bar('\u{2550}', *n)).collect();
        format!("{}\u{2550}", parts.join(joint))
    };
    let mut out = vec![
        [
            left("", tlens[0]),
            left("", tlens[1]),
            left("Filter", tlens[2]),
            left("Actions", tlens[3]),
        ]
        .join(" \u{2551} "),
        format!(
            "{} \u{2551} {} \u{255F}\u{2500}{}\u{2500}",
            left("Jail", tlens[0]),
            left("Backend", tlens[1]),
            [bar('\u{2500}', tlens[2]), bar('\u{2500}', tlens[3])].join("\u{2500}\u{256B}\u{2500}")
        ),
        line(["", "", "cur", "tot", "cur", "tot"]),
        rule("\u{2550}\u{256C}\u{2550}"),
    ];
    for r in &rows {
        out.push(line([&r[0], &r[1], &r[2], &r[3], &r[4], &r[5]]));
    }
    out.push(rule("\u{2550}\u{2569}\u{2550}"));
    out.join("\n")
}

/// What fail2ban-client prints for a failed command.
pub fn beautify_error(e: &CommandError) -> String {
    match e.kind {
        ErrorKind::UnknownJail => format!("Sorry but the jail '{}' does not exist", e.message),
        ErrorKind::DuplicateJail => format!("The jail '{}' already exists", e.message),
        ErrorKind::InvalidCommand => "Sorry but the command is invalid".into(),
        _ => e.message.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cmd(s: &str) -> Vec<String> {
        s.split(' ').map(String::from).collect()
    }

    #[test]
    fn status_like_fail2ban_client() {
        let v = json!([["Number of jail", 2], ["Jail list", "recidive, sshd"]]);
        assert_eq!(
            beautify(&cmd("status"), &v),
            "Status\n|- Number of jail:\t2\n`- Jail list:\trecidive, sshd"
        );
        let v = json!([
            [
                "Filter",
                [
                    ["Currently failed", 1],
                    ["Total failed", 7],
                    ["File list", ["/var/log/auth.log"]]
                ]
            ],
            [
                "Actions",
                [
                    ["Currently banned", 1],
                    ["Total banned", 1],
                    ["Banned IP list", ["192.0.2.7"]]
                ]
            ]
        ]);
        assert_eq!(
            beautify(&cmd("status sshd"), &v),
            "Status for the jail: sshd\n|- Filter\n|  |- Currently failed:\t1\n|  |- Total failed:\t7\n|  `- File list:\t/var/log/auth.log\n\
             `- Actions\n   |- Currently banned:\t1\n   |- Total banned:\t1\n   `- Banned IP list:\t192.0.2.7"
        );
    }

    #[test]
    fn lists_and_errors() {
        assert_eq!(
            beautify(&cmd("get sshd ignoreip"), &json!([])),
            "No IP address/network is ignored"
        );
        assert_eq!(
            beautify(&cmd("get sshd ignoreip"), &json!(["127.0.0.1/8", "::1"])),
            "These IP addresses/networks are ignored:\n|- 127.0.0.1/8\n`- ::1"
        );
        assert_eq!(
            beautify(&cmd("ping"), &json!("pong")),
            "Server replied: pong"
        );
        assert_eq!(beautify(&cmd("set sshd bantime 600"), &json!(600)), "600");
        assert_eq!(
            beautify_error(&CommandError::unknown_jail("nope")),
            "Sorry but the jail 'nope' does not exist"
        );
        assert_eq!(
            beautify(&cmd("get loglevel"), &json!("INFO")),
            "Current logging level is 'INFO'"
        );
    }
}
