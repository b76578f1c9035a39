//! `fail3ban-client --json`: the server's answers in a stable JSON shape
//! for scripts, documented as JSON Schema in `docs/json/`.
//!
//! The server answers as it answers fail2ban's client (rows named in
//! English, lists joined into text) and this module alone turns those
//! answers into JSON: the server's answer stays the one source of the
//! data for both outputs, so the plain and the JSON output cannot tell
//! different things, and the pickled fail2ban protocol is untouched. The
//! one exception is `get JAIL banip --with-time`, whose answer is times
//! already worded in local time: the client asks `--with-epoch` instead,
//! the same bans as numbers.
//!
//! Keys are snake_case, counts are numbers, times are RFC 3339 strings
//! (UTC) with their epoch seconds beside them (`…_at` and `…_at_epoch`).

use serde_json::{json, Map, Value};

use super::beautify::beautify_error;
use super::protocol::{CommandError, ErrorKind};

/// Why a command has no JSON output.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JsonError {
    #[error(
        "--json is not available for {0:?}: only status, stats, banned, get JAIL banip and ai have a JSON shape"
    )]
    Unsupported(String),
    #[error("the server's answer to {command:?} does not have the shape --json expects: {answer}")]
    Shape { command: String, answer: String },
}

/// The commands that have a JSON shape.
#[derive(Debug, Clone, PartialEq)]
enum Kind {
    /// `status`.
    Server,
    /// `status --all [FLAVOR]`.
    All,
    /// `status JAIL [FLAVOR]`.
    Jail(String),
    /// `stats`, `statistics`, `statistic`.
    Stats,
    /// `banned [IP ...]`.
    Banned(Vec<String>),
    /// `get JAIL banip|banned [--with-time]`.
    Banip { jail: String, with_time: bool },
    /// `ai status|list|show|approve|reject|test ...`.
    Ai(String, Option<String>),
}

fn kind(words: &[String]) -> Option<Kind> {
    let w = |i: usize| words.get(i).map(String::as_str);
    Some(match (w(0)?, w(1)) {
        ("status", None) => Kind::Server,
        ("status", Some("--all")) => Kind::All,
        ("status", Some(jail)) => Kind::Jail(jail.to_string()),
        ("stats" | "statistics" | "statistic", None) => Kind::Stats,
        ("banned", _) => Kind::Banned(words[1..].to_vec()),
        ("get", Some(jail)) if matches!(w(2), Some("banip" | "banned")) => Kind::Banip {
            jail: jail.to_string(),
            with_time: w(3) == Some("--with-time"),
        },
        ("ai", Some(sub)) => Kind::Ai(sub.to_string(), w(2).map(String::from)),
        _ => return None,
    })
}

/// The words to send the server for `words` in JSON mode, or why the
/// command has no JSON output.
pub fn request(words: &[String]) -> Result<Vec<String>, JsonError> {
    match kind(words) {
        None => Err(JsonError::Unsupported(words.join(" "))),
        Some(Kind::Banip { jail, .. }) => Ok(vec![
            "get".into(),
            jail,
            "banip".into(),
            "--with-epoch".into(),
        ]),
        Some(_) => Ok(words.to_vec()),
    }
}

/// The JSON output of the server's answer `answer` to `words` (the words
/// the user gave, before [`request`]).
pub fn shape(words: &[String], answer: &Value) -> Result<Value, JsonError> {
    let bad = || JsonError::Shape {
        command: words.join(" "),
        answer: answer.to_string(),
    };
    let kind = kind(words).ok_or_else(|| JsonError::Unsupported(words.join(" ")))?;
    match kind {
        Kind::Server | Kind::All => server_status(answer),
        Kind::Jail(jail) => jail_status(answer).map(|mut m| {
            m.insert("jail".into(), json!(jail));
            Value::Object(m)
        }),
        Kind::Stats => stats(answer),
        Kind::Banned(ips) => banned(&ips, answer),
        Kind::Banip { jail, with_time } => banip(&jail, with_time, answer),
        Kind::Ai(sub, id) => ai(&sub, id.as_deref(), answer),
    }
    .ok_or_else(bad)
}

/// A failed command: `{"error": …, "kind": …}`.
pub fn error(e: &CommandError) -> Value {
    let kind = match e.kind {
        ErrorKind::UnknownJail => "unknown_jail",
        ErrorKind::DuplicateJail => "duplicate_jail",
        ErrorKind::InvalidCommand => "invalid_command",
        ErrorKind::InvalidValue => "invalid_value",
        _ => "failed",
    };
    json!({"error": beautify_error(e), "kind": kind})
}

/// A failure of the client itself (no server, a bad option).
pub fn client_error(message: &str) -> Value {
    json!({"error": message, "kind": "client"})
}

/// `Number of jail` → `number_of_jail`.
fn snake(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for c in key.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('_') {
            out.push('_');
        }
    }
    while out.ends_with('_') {
        out.pop();
    }
    out
}

/// An object's keys in snake_case, its values unchanged.
fn snake_keys(v: &Value) -> Option<Value> {
    let m = v.as_object()?;
    Some(Value::Object(
        m.iter().map(|(k, v)| (snake(k), v.clone())).collect(),
    ))
}

/// A time as `{key}_at` (RFC 3339, UTC, whole seconds) and
/// `{key}_at_epoch`; both null for none.
fn put_time(m: &mut Map<String, Value>, key: &str, epoch: Option<f64>) {
    let secs = epoch.map(|t| t.floor() as i64);
    let text = secs
        .and_then(|s| jiff::Timestamp::from_second(s).ok())
        .map(|ts| ts.to_string());
    m.insert(format!("{key}_at"), json!(text));
    m.insert(format!("{key}_at_epoch"), json!(secs));
}

/// fail2ban's status rows, `[["Currently failed", 1], ...]`, as an
/// object; rows whose value is rows again become objects too.
fn rows(v: &Value) -> Option<Map<String, Value>> {
    let items = v.as_array()?;
    let mut m = Map::new();
    for row in items {
        let [k, val] = row.as_array()?.as_slice() else {
            return None;
        };
        let key = snake(k.as_str()?);
        let val = match val {
            Value::Array(inner) if is_rows(inner) => Value::Object(rows(val)?),
            // fail2ban joins the journal's match groups with " + ".
            Value::Array(inner) if key == "journal_matches" => json!(inner
                .iter()
                .filter_map(Value::as_str)
                .flat_map(|s| s.split(" + "))
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()),
            other => other.clone(),
        };
        m.insert(key, val);
    }
    Some(m)
}

fn is_rows(items: &[Value]) -> bool {
    !items.is_empty()
        && items.iter().all(|r| {
            r.as_array()
                .is_some_and(|kv| kv.len() == 2 && kv[0].is_string())
        })
}

/// One jail's status: the `stats` flavour's triple or the rows.
fn jail_status(v: &Value) -> Option<Map<String, Value>> {
    if let Some(backend) = v.get(0).and_then(Value::as_str) {
        return stats_row(backend, v);
    }
    rows(v)
}

/// `[backend, [failed, total failed], [banned, total banned]]`.
fn stats_row(backend: &str, v: &Value) -> Option<Map<String, Value>> {
    let n = |i: usize, j: usize| v.get(i)?.get(j).filter(|x| x.is_number()).cloned();
    let mut m = Map::new();
    m.insert("backend".into(), json!(backend));
    m.insert(
        "filter".into(),
        json!({"currently_failed": n(1, 0)?, "total_failed": n(1, 1)?}),
    );
    m.insert(
        "actions".into(),
        json!({"currently_banned": n(2, 0)?, "total_banned": n(2, 1)?}),
    );
    Some(m)
}

/// `status` and `status --all [FLAVOR]` (whose `stats` flavour answers
/// as `stats` does).
fn server_status(v: &Value) -> Option<Value> {
    if v.is_object() {
        return stats(v);
    }
    let items = v.as_array()?;
    let (jails, head) = match items.split_last() {
        Some((Value::Object(j), rest)) => (Some(j), rest),
        _ => (None, &items[..]),
    };
    let head = rows(&Value::Array(head.to_vec()))?;
    let list = head.get("jail_list")?.as_str()?;
    let mut out = json!({
        "jail_count": head.get("number_of_jail")?.clone(),
        "jail_list": list.split(", ").filter(|s| !s.is_empty()).collect::<Vec<_>>(),
    });
    if let Some(jails) = jails {
        let mut all = Map::new();
        for (name, st) in jails {
            all.insert(name.clone(), Value::Object(jail_status(st)?));
        }
        out["jails"] = Value::Object(all);
    }
    Some(out)
}

/// `stats`: every jail's backend and counts, by name.
fn stats(v: &Value) -> Option<Value> {
    let mut all = Map::new();
    for (name, row) in v.as_object()? {
        all.insert(
            name.clone(),
            Value::Object(stats_row(row.get(0)?.as_str()?, row)?),
        );
    }
    Some(json!({ "jails": all }))
}

/// `banned`: each jail's banned addresses; `banned IP ...`: the jails
/// that ban each address.
fn banned(ips: &[String], v: &Value) -> Option<Value> {
    let items = v.as_array()?;
    if ips.is_empty() {
        let mut jails = Map::new();
        for one in items {
            for (name, list) in one.as_object()? {
                jails.insert(name.clone(), list.clone());
            }
        }
        return Some(json!({ "jails": jails }));
    }
    let addresses: Option<Vec<Value>> = ips
        .iter()
        .zip(items)
        .map(|(ip, jails)| Some(json!({"ip": ip, "jails": jails.as_array()?})))
        .collect();
    Some(json!({ "addresses": addresses? }))
}

/// `get JAIL banip [--with-time]`, asked as `--with-epoch`:
/// `[[ip, start, bantime, end], ...]`.
fn banip(jail: &str, with_time: bool, v: &Value) -> Option<Value> {
    let mut ips = Vec::new();
    let mut bans = Vec::new();
    for row in v.as_array()? {
        let [ip, start, bantime, end] = row.as_array()?.as_slice() else {
            return None;
        };
        ips.push(ip.clone());
        let bantime = bantime.as_f64()?;
        let mut m = Map::new();
        m.insert("ip".into(), ip.clone());
        put_time(&mut m, "banned", Some(start.as_f64()?));
        m.insert("bantime".into(), json!(bantime as i64));
        // A negative bantime is a ban for ever: no end.
        put_time(&mut m, "ends", end.as_f64().filter(|_| bantime >= 0.0));
        bans.push(Value::Object(m));
    }
    Some(if with_time {
        json!({"jail": jail, "bans": bans})
    } else {
        json!({"jail": jail, "banned": ips})
    })
}

/// The `ai` commands: their answers are JSON already; keys in
/// snake_case, times beside their epoch.
fn ai(sub: &str, id: Option<&str>, v: &Value) -> Option<Value> {
    match sub {
        "list" => {
            let rules: Option<Vec<Value>> = v.as_array()?.iter().map(snake_keys).collect();
            Some(json!({ "rules": rules? }))
        }
        "show" => {
            let mut out = snake_keys(v)?;
            let m = out.as_object_mut()?;
            let created = m.remove("created")?.as_f64();
            put_time(m, "created", created);
            Some(out)
        }
        "approve" | "reject" => Some(json!({
            "id": id?,
            "status": if sub == "approve" { "approved" } else { "rejected" },
            "message": v.as_str()?,
        })),
        _ => snake_keys(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split(' ').map(String::from).collect()
    }

    #[test]
    fn status_rows_become_objects() {
        let v = json!([["Number of jail", 2], ["Jail list", "recidive, sshd"]]);
        assert_eq!(
            shape(&words("status"), &v).unwrap(),
            json!({"jail_count": 2, "jail_list": ["recidive", "sshd"]})
        );
        let v = json!([
            [
                "Filter",
                [
                    ["Currently failed", 1],
                    ["Total failed", 7],
                    [
                        "Journal matches",
                        ["_SYSTEMD_UNIT=sshd.service + _COMM=sshd"]
                    ]
                ]
            ],
            [
                "Actions",
                [
                    ["Currently banned", 0],
                    ["Total banned", 1],
                    ["Banned IP list", []]
                ]
            ]
        ]);
        assert_eq!(
            shape(&words("status sshd"), &v).unwrap(),
            json!({"jail": "sshd",
                   "filter": {"currently_failed": 1, "total_failed": 7,
                              "journal_matches": ["_SYSTEMD_UNIT=sshd.service", "_COMM=sshd"]},
                   "actions": {"currently_banned": 0, "total_banned": 1, "banned_ip_list": []}})
        );
    }

    #[test]
    fn bans_with_times_and_for_ever() {
        let v = json!([
            ["192.0.2.1", 1000.5, 600.0, 1600.5],
            ["2001:db8::1", 5.0, -1.0, -1.0]
        ]);
        assert_eq!(
            request(&words("get sshd banip --with-time")).unwrap(),
            words("get sshd banip --with-epoch")
        );
        let out = shape(&words("get sshd banip --with-time"), &v).unwrap();
        assert_eq!(
            out["bans"][0],
            json!({"ip": "192.0.2.1", "banned_at": "1970-01-01T00:16:40Z", "banned_at_epoch": 1000,
                   "bantime": 600, "ends_at": "1970-01-01T00:26:40Z", "ends_at_epoch": 1600})
        );
        assert_eq!(out["bans"][1]["ends_at"], Value::Null);
        assert_eq!(
            shape(&words("get sshd banip"), &v).unwrap()["banned"],
            json!(["192.0.2.1", "2001:db8::1"])
        );
    }

    #[test]
    fn unsupported_and_bad_answers_are_errors() {
        assert!(matches!(
            request(&words("set sshd bantime 1")),
            Err(JsonError::Unsupported(_))
        ));
        assert!(matches!(
            shape(&words("status"), &json!("pong")),
            Err(JsonError::Shape { .. })
        ));
        assert_eq!(
            error(&CommandError::unknown_jail("x")),
            json!({"error": "Sorry but the jail 'x' does not exist", "kind": "unknown_jail"})
        );
    }
}
