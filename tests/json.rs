//! `fail3ban-client --json` and `logformat = json` (issue 19): every JSON
//! output of a real server validated against its schema in docs/json and
//! compared with what the plain output says; the JSON-lines log read line
//! by line after a hostile log line.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use crate::ai::{suggest_and_observe_tree, two_rules, xmlrpc_or_wp_login};
use crate::server::{fail, jail, st};
use crate::util::{append_bytes, new_log, stamp, Server, Tree, CLIENT, SERVER};

fn docs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/json")
}

/// The schemas' `$ref`s to each other, answered from docs/json: no schema
/// is fetched from anywhere else.
struct Docs;

impl jsonschema::Retrieve for Docs {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        let name = uri.path().as_str().rsplit('/').next().unwrap_or_default();
        Ok(serde_json::from_str(&fs::read_to_string(
            docs().join(name),
        )?)?)
    }
}

fn validator(schema: &str) -> jsonschema::Validator {
    let path = docs().join(format!("{schema}.schema.json"));
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let schema_value: Value = serde_json::from_str(&text).unwrap();
    jsonschema::options()
        .should_validate_formats(true)
        .with_retriever(Docs)
        .build(&schema_value)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `v` follows docs/json/`schema`.schema.json, and the schema bites: the
/// same object with a key it does not document does not.
fn check(schema: &str, v: &Value) {
    let val = validator(schema);
    let errors: Vec<String> = val.iter_errors(v).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{schema}: {errors:?}\n{v:#}");
    let mut extra = v.clone();
    extra["undocumented_key"] = json!(1);
    assert!(
        !val.is_valid(&extra),
        "{schema} takes an undocumented key: {extra:#}"
    );
}

impl Server<'_> {
    /// `fail3ban-client --json ARGS`: exit code and the one JSON line.
    fn json(&mut self, args: &[&str]) -> (Option<i32>, Value) {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let (code, out) = self.client_code(&all);
        assert_eq!(out.lines().count(), 1, "one line: {out}");
        let v = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"));
        (code, v)
    }

    /// `fail3ban-client --json ARGS`, which must succeed and follow
    /// `schema`.
    fn json_ok(&mut self, schema: &str, args: &[&str]) -> Value {
        let (code, v) = self.json(args);
        assert_eq!(code, Some(0), "{args:?}: {v:#}\n{}", self.report());
        check(schema, &v);
        v
    }
}

/// The `key:\tvalue` rows of a plain status, by key.
fn plain_rows(out: &str) -> HashMap<String, String> {
    out.lines()
        .filter_map(|l| l.split_once(":\t"))
        .map(|(k, v)| {
            let k = k.trim_start_matches(['|', '`', '-', ' ']);
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn words(v: &Value) -> String {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A jail's JSON status against its plain rows, row by row.
fn same_as_plain(j: &Value, plain: &HashMap<String, String>) {
    let num = |k: &str| json!(plain[k].parse::<u64>().unwrap());
    assert_eq!(j["filter"]["currently_failed"], num("Currently failed"));
    assert_eq!(j["filter"]["total_failed"], num("Total failed"));
    assert_eq!(j["actions"]["currently_banned"], num("Currently banned"));
    assert_eq!(j["actions"]["total_banned"], num("Total banned"));
    if let Some(files) = j["filter"].get("file_list") {
        assert_eq!(words(files), plain["File list"]);
    }
    match j["actions"].get("banned_ip_list") {
        Some(list) => assert_eq!(words(list), plain["Banned IP list"]),
        None => assert!(!plain.contains_key("Banned IP list")),
    }
}

fn without_jail(v: &Value) -> Value {
    let mut v = v.clone();
    v.as_object_mut().unwrap().remove("jail");
    v
}

fn local(epoch: &Value) -> String {
    jiff::Timestamp::from_second(epoch.as_i64().unwrap())
        .unwrap()
        .to_zoned(jiff::tz::TimeZone::system())
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// Every `--json` output of a server with bans and failures follows its
/// schema and says what the plain output says.
#[test]
fn json_outputs_follow_their_schemas_and_the_plain_output() {
    let tree = Tree::new(&format!("{}{}", jail("one", ""), jail("two", "")));
    for j in ["one", "two"] {
        new_log(tree.path(&format!("{j}.log")));
    }
    let mut s = Server::start(&tree);
    let log = tree.path("one.log");
    fail(&log, "192.0.2.1", 3);
    fail(&log, "192.0.2.20", 1);
    s.wait_status("one", &st(1, 4, &["192.0.2.1"], 1));
    s.ok(&["set", "two", "banip", "198.51.100.7"]);
    s.wait_status("two", &st(0, 0, &["198.51.100.7"], 1));

    let status = s.json_ok("status", &["status"]);
    let plain = plain_rows(&s.ok(&["status"]));
    assert_eq!(status["jail_count"], json!(2));
    assert_eq!(status["jail_count"].to_string(), plain["Number of jail"]);
    assert_eq!(
        status["jail_list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j.as_str().unwrap())
            .collect::<Vec<_>>()
            .join(", "),
        plain["Jail list"]
    );
    // `--json` as the last word is the same option.
    let (code, tail) = s.client_code(&["status", "--json"]);
    assert_eq!(code, Some(0));
    assert_eq!(serde_json::from_str::<Value>(&tail).unwrap(), status);

    let mut basic = HashMap::new();
    for j in ["one", "two"] {
        for flavor in [None, Some("short"), Some("cymru"), Some("basic")] {
            let mut args = vec!["status", j];
            args.extend(flavor);
            let v = s.json_ok("jail-status", &args);
            assert_eq!(v["jail"], json!(j));
            same_as_plain(&v, &plain_rows(&s.ok(&args)));
            if flavor.is_none() {
                basic.insert(j, v);
            }
        }
        let stats = s.json_ok("jail-status", &["status", j, "stats"]);
        assert_eq!(stats["filter"], {
            let f = &basic[j]["filter"];
            json!({"currently_failed": f["currently_failed"], "total_failed": f["total_failed"]})
        });
        assert_eq!(stats["actions"], {
            let a = &basic[j]["actions"];
            json!({"currently_banned": a["currently_banned"], "total_banned": a["total_banned"]})
        });
        let table = s.ok(&["stats"]);
        let row = table
            .lines()
            .find(|l| l.starts_with(&format!("{j} ")))
            .unwrap_or_else(|| panic!("no {j} in {table}"));
        assert!(row.contains(stats["backend"].as_str().unwrap()), "{row}");
        for (name, v) in [
            ("stats", s.json_ok("stats", &["stats"])),
            (
                "status --all stats",
                s.json_ok("stats", &["status", "--all", "stats"]),
            ),
        ] {
            assert_eq!(v["jails"][j], without_jail(&stats), "{name}");
        }
        let all = s.json_ok("status", &["status", "--all"]);
        assert_eq!(all["jails"][j], without_jail(&basic[j]));
        assert_eq!(all["jail_list"], status["jail_list"]);
        let short = s.json_ok("status", &["status", "--all", "short"]);
        assert!(short["jails"][j]["actions"].get("banned_ip_list").is_none());
    }

    let banned = s.json_ok("banned", &["banned"]);
    let plain = s.ok(&["banned"]);
    for j in ["one", "two"] {
        let list = &basic[j]["actions"]["banned_ip_list"];
        assert_eq!(&banned["jails"][j], list);
        assert!(
            plain.contains(&format!("'{j}': ['{}']", words(list))),
            "{plain}"
        );
    }
    let asked = ["192.0.2.1", "198.51.100.7", "203.0.113.5"];
    let mut args = vec!["banned"];
    args.extend(asked);
    let by_ip = s.json_ok("banned", &args);
    assert_eq!(s.ok(&args).trim(), "[['one'], ['two'], []]");
    assert_eq!(
        by_ip,
        json!({"addresses": [{"ip": "192.0.2.1", "jails": ["one"]},
                             {"ip": "198.51.100.7", "jails": ["two"]},
                             {"ip": "203.0.113.5", "jails": []}]})
    );

    let bans = s.json_ok("banip", &["get", "one", "banip", "--with-time"]);
    let plain = s.ok(&["get", "one", "banip", "--with-time"]);
    let lines: Vec<&str> = plain.lines().collect();
    assert_eq!(lines.len(), 1, "{plain}");
    let b = &bans["bans"][0];
    // `192.0.2.1 \t2026-03-01 12:00:00 + 3600 = 2026-03-01 13:00:00`
    let (ip, times) = lines[0].split_once(" \t").unwrap();
    let (start, rest) = times.split_once(" + ").unwrap();
    let (bantime, end) = rest.split_once(" = ").unwrap();
    assert_eq!(b["ip"], json!(ip));
    assert_eq!(b["bantime"].to_string(), bantime);
    assert_eq!(local(&b["banned_at_epoch"]), start);
    assert_eq!(local(&b["ends_at_epoch"]), end);
    for key in ["banned", "ends"] {
        let text: jiff::Timestamp = b[format!("{key}_at")].as_str().unwrap().parse().unwrap();
        assert_eq!(json!(text.as_second()), b[format!("{key}_at_epoch")]);
    }
    let ips = s.json_ok("banip", &["get", "two", "banip"]);
    assert_eq!(
        ips,
        json!({"jail": "two", "banned": [s.ok(&["get", "two", "banip"]).trim()]})
    );

    // Failures: an object with the plain output's words, and its code.
    let (plain_code, plain) = s.client_code(&["status", "nope"]);
    let (code, err) = s.json(&["status", "nope"]);
    check("error", &err);
    assert_eq!((code, plain_code), (Some(255), Some(255)));
    assert_eq!(err, json!({"error": plain.trim(), "kind": "unknown_jail"}));
    let (code, err) = s.json(&["set", "one", "bantime", "60"]);
    check("error", &err);
    assert_eq!((code, &err["kind"]), (Some(255), &json!("client")), "{err}");
    assert_eq!(
        s.ok(&["get", "one", "bantime"]).trim(),
        "3600",
        "nothing was sent"
    );
    let gone = tree.path("no.sock");
    let (code, err) = s.json(&["-s", gone.to_str().unwrap(), "status"]);
    check("error", &err);
    assert_eq!((code, &err["kind"]), (Some(255), &json!("client")), "{err}");
    s.stop();
}

/// The `ai` commands' JSON on a server with a suggested and an observed
/// rule, against the schemas and the plain (already JSON) output.
#[test]
fn ai_json_outputs_follow_their_schemas() {
    let llm = xmlrpc_or_wp_login();
    let t = suggest_and_observe_tree(&llm);
    let mut s = Server::start(&t);
    two_rules(&mut s, &t);
    let plain =
        |s: &mut Server, args: &[&str]| -> Value { serde_json::from_str(&s.ok(args)).unwrap() };
    // Keys are the plain output's in snake_case.
    let snake = |k: &str| k.replace(' ', "_");

    let status = s.json_ok("ai-status", &["ai", "status"]);
    for (k, v) in plain(&mut s, &["ai", "status"]).as_object().unwrap() {
        assert_eq!(&status[snake(k)], v, "{k}");
    }
    let list = s.json_ok("ai-list", &["ai", "list"]);
    assert_eq!(list["rules"], plain(&mut s, &["ai", "list"]));
    let id = |status: &str| {
        list["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["status"] == status)
            .unwrap_or_else(|| panic!("no {status} rule: {list:#}"))["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (pending, observed) = (id("pending"), id("observed"));
    let show = s.json_ok("ai-show", &["ai", "show", &pending]);
    let plain_show = plain(&mut s, &["ai", "show", &pending]);
    assert_eq!(show["filter_file"], plain_show["filter file"]);
    assert_eq!(show["detail"], plain_show["detail"]);
    assert_eq!(
        show["created_at_epoch"],
        json!(plain_show["created"].as_f64().unwrap().floor() as i64)
    );
    let line = format!(
        "{} - - [x] \"POST /xmlrpc.php HTTP/1.1\" 200 1 \"-\" \"-\"",
        "203.0.113.9"
    );
    let test = s.json_ok("ai-test", &["ai", "test", &line, "nginx-access"]);
    assert!(test["template"].is_string(), "{test:#}");

    let approved = s.json_ok("ai-decision", &["ai", "approve", &pending]);
    assert_eq!(
        approved,
        json!({"id": pending, "status": "approved", "message": format!("rule {pending} approved")})
    );
    let rejected = s.json_ok("ai-decision", &["ai", "reject", &observed]);
    assert_eq!(rejected["status"], json!("rejected"));
    let (code, err) = s.json(&["ai", "show", "nosuchrule"]);
    check("error", &err);
    assert_eq!(code, Some(255));
    s.stop();
}

/// `logformat = json`: every line of the log is one JSON object that
/// follows its schema, and a failure id full of quotes, escapes, control
/// characters, a line separator and invalid UTF-8 stays inside the
/// message's string.
#[test]
fn json_log_keeps_hostile_text_inside_strings() {
    let tree =
        Tree::new("[one]\nenabled = true\nfilter = anyid\nlogpath = @T@/one.log\nmaxretry = 5\n");
    tree.write_conf(
        "filter.d/anyid.conf",
        "[Definition]\nfailregex = ^\\s*\\S+ test\\[\\d+\\]: auth failure from <F-ID>.+</F-ID>$\n",
    );
    tree.write_conf("fail2ban.local", "[Definition]\nlogformat = json\n");
    let log = tree.path("one.log");
    new_log(&log);
    let mut s = Server::start(&tree);
    let before = "evil\"quote\\back\u{1b}[31mred\u{7} {\"level\": \"CRITICAL\"}";
    let after = "\u{2028}end";
    let mut line = format!("{} web1 test[4242]: auth failure from {before}", stamp()).into_bytes();
    line.extend_from_slice(b"\xff\xfe");
    line.extend_from_slice(after.as_bytes());
    line.push(b'\n');
    append_bytes(&log, &line);
    s.wait_status("one", &st(1, 1, &[], 0));
    s.stop();

    let raw = fs::read(tree.path("server.log")).unwrap();
    let text = String::from_utf8(raw).expect("the JSON log is UTF-8");
    assert!(
        !text.chars().any(|c| c.is_control() && c != '\n'),
        "a raw control character in the log:\n{text}"
    );
    let val = validator("log-line");
    let mut found = Vec::new();
    for l in text.lines() {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        let errors: Vec<String> = val.iter_errors(&v).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{errors:?}: {l}");
        if v["message"]
            .as_str()
            .is_some_and(|m| m.contains("Found evil"))
        {
            found.push(v);
        }
    }
    assert_eq!(found.len(), 1, "{text}");
    let f = &found[0];
    let message = f["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!("[one] Found {before}")),
        "{message:?}"
    );
    assert!(message.contains(after), "{message:?}");
    assert_eq!(
        (&f["jail"], &f["logger"], &f["level"]),
        (&json!("one"), &json!("fail2ban.filter"), &json!("INFO"))
    );
    assert!(
        text.lines().any(
            |l| serde_json::from_str::<Value>(l).unwrap()["fields"]["path"]
                == json!(log.display().to_string())
        ),
        "no structured path field:\n{text}"
    );
}

/// A `logformat` that is neither plain nor json is a configuration error
/// naming file, section and option, for `-t` and for the server, which
/// does not start.
#[test]
fn bad_logformat_is_a_config_error_naming_file_section_and_option() {
    let tree = Tree::new(&jail("one", ""));
    tree.write_conf("fail2ban.local", "[Definition]\nlogformat = yaml\n");
    let local = tree.conf().join("fail2ban.local");
    let want = format!("{} [Definition] logformat", local.display());
    let o = Command::new(CLIENT)
        .arg("-c")
        .arg(tree.conf())
        .arg("-t")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains(&want), "{err}");
    assert!(err.contains("yaml"), "{err}");
    let o = Command::new(SERVER)
        .arg("-f")
        .arg("-c")
        .arg(tree.conf())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains(&want), "{err}");
    assert!(!tree.path("f3.sock").exists());
}
