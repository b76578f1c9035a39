//! The metrics endpoint of a real fail3ban-server (`metrics` in
//! fail2ban.local): every metric the README documents after real bans, an
//! OpenMetrics parser and a real Prometheus reading it, and hostile
//! scrapers that must stall neither `status` nor the endpoint.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::ai::access;
use crate::prereq::Need;
use crate::server::{fail, jail, st};
use crate::util::{append, make_journal_raw, new_log, Server, Tree, WAIT};

/// A port free on loopback now (the OS picks it; it is released at once).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A tree whose server serves metrics on a free loopback port, and that
/// address.
fn tree_with_metrics(jails: &str) -> (Tree, SocketAddr) {
    let tree = Tree::new(jails);
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    tree.write_conf(
        "fail2ban.local",
        &format!("[Definition]\nmetrics = {addr}\n"),
    );
    (tree, addr)
}

/// One HTTP/1.0 GET (no chunked answer): status and body, or the I/O
/// error (a closed connection) as text.
fn get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(|e| e.to_string())?;
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .ok_or(format!("no header end: {raw:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or(format!("no status: {head:?}"))?;
    Ok((status, body.to_string()))
}

/// The endpoint's text, which must be served.
fn scrape(s: &Server, addr: SocketAddr) -> String {
    match get(addr, "/metrics") {
        Ok((200, body)) => body,
        other => panic!("scrape of {addr}: {other:?}\n{}", s.report()),
    }
}

/// The value of the sample `series` (name and labels exactly as written)
/// in `text`.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// The README's table of metrics: (name, type, labels).
fn documented() -> Vec<(String, String, Vec<String>)> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = readme
        .split("\n## Metrics\n")
        .nth(1)
        .expect("README has a Metrics section")
        .split("\n## ")
        .next()
        .unwrap();
    let tick = |s: &str| s.trim().trim_matches('`').to_string();
    let rows: Vec<_> = section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').collect();
            let labels = cells[3]
                .split(',')
                .map(tick)
                .filter(|l| !l.is_empty())
                .collect();
            (tick(cells[1]), cells[2].trim().to_string(), labels)
        })
        .collect();
    assert!(rows.len() >= 10, "the README's metrics table: {rows:?}");
    rows
}

/// The family a sample name belongs to (OpenMetrics: a counter's samples
/// end in `_total`, a histogram's in `_bucket`, `_sum`, `_count`).
fn family_of(name: &str, kind: &str) -> String {
    match kind {
        "counter" => name
            .strip_suffix("_total")
            .expect("a counter ends in _total")
            .to_string(),
        _ => name.to_string(),
    }
}

/// Every metric of the README's table that `wanted` picks is in `text`,
/// with its type and labels.
fn assert_documented(text: &str, wanted: impl Fn(&str) -> bool) {
    let rows = documented();
    for (name, kind, labels) in rows.iter().filter(|r| wanted(&r.0)) {
        let family = family_of(name, kind);
        assert!(
            text.contains(&format!("# TYPE {family} {kind}\n")),
            "no `# TYPE {family} {kind}` for {name}:\n{text}"
        );
        let sample = if kind == "histogram" {
            format!("{name}_count")
        } else {
            name.clone()
        };
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{sample} ")) || l.starts_with(&format!("{sample}{{")))
            .unwrap_or_else(|| panic!("no sample of {name}:\n{text}"));
        for label in labels {
            assert!(
                line.contains(&format!("{label}=\"")),
                "{name} lacks label {label}: {line}"
            );
        }
    }
}

// ------------------------------------------------------------------ tests

/// After real bans (and an unban), the endpoint has every metric the
/// README documents, with its type and labels, and the ban counters say
/// what `status` says.
#[test]
fn metrics_show_every_documented_metric_after_a_ban() {
    let (tree, addr) = tree_with_metrics(&jail("one", ""));
    let log = tree.path("one.log");
    new_log(&log);
    let mut s = Server::start(&tree);
    fail(&log, "192.0.2.1", 3);
    fail(&log, "192.0.2.20", 3);
    fail(&log, "198.51.100.7", 1);
    s.wait_status("one", &st(1, 7, &["192.0.2.1", "192.0.2.20"], 2));
    s.wait("both bans ran", |s| {
        s.tree.count("ban", "one", "192.0.2.20") == 1
            && s.tree.count("ban", "one", "192.0.2.1") == 1
    });
    s.ok(&["set", "one", "unbanip", "192.0.2.20"]);
    s.wait("the unban ran", |s| {
        s.tree.count("unban", "one", "192.0.2.20") == 1
    });
    let text = scrape(&s, addr);
    assert!(text.ends_with("# EOF\n"), "{text}");
    // The AI's metrics are shown (and checked) only while it runs.
    assert!(!text.contains("fail3ban_ai_"), "{text}");
    // So are the journal's (a journal jail's test checks them).
    assert_documented(&text, |name| {
        !name.starts_with("fail3ban_ai_") && name != "fail3ban_source_lag_seconds"
    });
    let one = |name: &str| value(&text, &format!("{name}{{jail=\"one\"}}"));
    assert_eq!(one("fail3ban_bans_total"), Some(2.0), "{text}");
    assert_eq!(one("fail3ban_unbans_total"), Some(1.0), "{text}");
    assert_eq!(one("fail3ban_banned"), Some(1.0), "{text}");
    assert_eq!(one("fail3ban_failed"), Some(1.0), "{text}");
    assert_eq!(one("fail3ban_failures_total"), Some(7.0), "{text}");
    assert_eq!(one("fail3ban_lines_matched_total"), Some(7.0), "{text}");
    // The first line of the log matches nothing.
    assert_eq!(one("fail3ban_lines_read_total"), Some(8.0), "{text}");
    let lag = format!(
        "fail3ban_source_lag_bytes{{jail=\"one\",source=\"{}\"}}",
        log.display()
    );
    assert_eq!(value(&text, &lag), Some(0.0), "{text}");
    // start, two bans, one unban: the recording action's commands.
    let runs = value(
        &text,
        "fail3ban_action_runs_total{jail=\"one\",action=\"record\"}",
    );
    assert!(runs.is_some_and(|r| r >= 3.0), "{text}");
    let rss = value(&text, "process_resident_memory_bytes").unwrap();
    assert!(rss > 1e6, "{text}");
    assert_eq!(get(addr, "/").map(|r| r.0), Ok(404));
    assert_eq!(get(addr, "/metrics/x").map(|r| r.0), Ok(404));
    s.stop();
}

/// Without the option, nothing listens: the server's descriptors hold no
/// TCP socket at all.
#[test]
fn metrics_off_by_default_listen_nowhere() {
    let tree = Tree::new(&jail("one", ""));
    new_log(tree.path("one.log"));
    let s = Server::start(&tree);
    let fds = std::fs::read_dir(format!("/proc/{}/fd", s.pid())).unwrap();
    let inodes: Vec<String> = fds
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            l.to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')
                .map(String::from)
        })
        .collect();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let listening = std::fs::read_to_string(table).unwrap_or_default();
        for line in listening.lines().skip(1) {
            let w: Vec<&str> = line.split_whitespace().collect();
            assert!(
                !(w.len() > 9 && inodes.iter().any(|i| i == w[9])),
                "the server holds a TCP socket: {line}"
            );
        }
    }
}

/// A bad address is a configuration error naming the file, section and
/// option; the server still runs its jails.
#[test]
fn metrics_bad_address_names_file_section_option() {
    let tree = Tree::new(&jail("one", ""));
    tree.write_conf("fail2ban.local", "[Definition]\nmetrics = localhost:91x\n");
    new_log(tree.path("one.log"));
    let test = Command::new(crate::util::CLIENT)
        .arg("-c")
        .arg(tree.conf())
        .arg("-t")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&test.stderr);
    let want = format!(
        "{} [Definition] metrics: expected an address and port",
        tree.conf().join("fail2ban.local").display()
    );
    assert!(
        !test.status.success(),
        "a bad metrics address passes -t: {err}"
    );
    assert!(
        err.contains(&want) && err.contains("\"localhost:91x\""),
        "no {want:?} in:\n{err}"
    );
    let mut s = Server::start(&tree);
    let status = s.ok(&["status"]);
    assert!(!status.contains("metrics"), "{status}");
    s.ok(&["status", "one"]);
}

/// Slowloris connections, a huge request and a crowd of idle connections
/// do not stall `status`, and an honest scrape still gets its answer at
/// once.
#[test]
fn metrics_hostile_scrapers_stall_neither_status_nor_others() {
    let (tree, addr) = tree_with_metrics(&jail("one", ""));
    new_log(tree.path("one.log"));
    let mut s = Server::start(&tree);
    scrape(&s, addr);
    // Many connections that send half a request line and then dribble.
    let mut slow: Vec<TcpStream> = (0..200)
        .filter_map(|_| TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok())
        .collect();
    for c in &mut slow {
        let _ = c.write_all(b"GET /metrics HTTP/1.1\r\nX-a: ");
    }
    // A request whose headers never end, far larger than any scrape's.
    let mut huge = TcpStream::connect(addr).unwrap();
    huge.set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    huge.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = huge.write_all(b"GET /metrics HTTP/1.1\r\n");
    let line = format!("X-b: {}\r\n", "a".repeat(1000));
    let started = Instant::now();
    let mut sent = 0;
    while sent < 4 << 20 && huge.write_all(line.as_bytes()).is_ok() {
        sent += line.len();
    }
    assert!(sent < 4 << 20, "the endpoint read 4 MiB of headers");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the huge request was not cut"
    );
    for c in &mut slow {
        let _ = c.write_all(b"a");
    }
    let t = Instant::now();
    s.ok(&["status"]);
    s.ok(&["status", "one"]);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "status took {:?}",
        t.elapsed()
    );
    let t = Instant::now();
    let text = scrape(&s, addr);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "a scrape took {:?}",
        t.elapsed()
    );
    assert!(
        text.contains("fail3ban_bans_total{jail=\"one\"} 0"),
        "{text}"
    );
    // The slow connections are cut by the header timeout, not kept.
    std::thread::sleep(Duration::from_secs(4));
    let mut buf = [0u8; 64];
    let mut open = 0;
    for c in &mut slow {
        c.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        let read = c.read(&mut buf);
        open += usize::from(matches!(read, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock));
    }
    assert_eq!(
        open, 0,
        "slow connections still open after the header timeout"
    );
    s.stop();
}

/// A real Prometheus, scraped every second.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus on loopback, scraping `target` every second, its
    /// storage in a temporary directory; waits until it is ready.
    fn start(target: SocketAddr) -> Prometheus {
        let dir = tempfile::Builder::new().prefix("f3prom").tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n  - job_name: fail3ban\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start prometheus");
        let p = Prometheus { child, addr, dir };
        p.wait("Prometheus is ready", || {
            matches!(get(p.addr, "/-/ready"), Ok((200, _)))
        });
        p
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    fn wait(&self, what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = Instant::now() + WAIT;
        while !cond() {
            assert!(
                Instant::now() < deadline,
                "timed out waiting until {what}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The value of an instant query's only sample, if it has one.
    fn query(&self, promql: &str) -> Option<f64> {
        let q: String = promql
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        let (status, body) = get(self.addr, &format!("/api/v1/query?query={q}")).ok()?;
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["status"], "success", "{body}");
        v["data"]["result"].get(0)?["value"][1]
            .as_str()?
            .parse()
            .ok()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The text of a scrape parses with the Prometheus client's OpenMetrics
/// parser, and a real Prometheus scraping the endpoint every second reads
/// back the two bans fail3ban made from log lines.
#[test]
#[ignore = "needs prometheus"]
fn prometheus_reads_back_two_bans() {
    crate::prereq::need(&[Need::Prometheus]);
    let (tree, addr) = tree_with_metrics(&jail("web", ""));
    let log = tree.path("web.log");
    new_log(&log);
    let mut s = Server::start(&tree);
    let prom = Prometheus::start(addr);
    fail(&log, "203.0.113.5", 3);
    fail(&log, "2001:db8::5", 3);
    s.wait_status("web", &st(0, 6, &["203.0.113.5", "2001:db8::5"], 2));
    // The action's histogram is in the text the parser checks.
    s.wait("both bans ran", |s| {
        s.tree.count("ban", "web", "203.0.113.5") == 1
            && s.tree.count("ban", "web", "2001:db8::5") == 1
    });
    let text = scrape(&s, addr);
    let parsed = Command::new("/usr/bin/python3")
        .args([
            "-c",
            "import sys\nfrom prometheus_client.openmetrics.parser import text_string_to_metric_families as p\n\
             for f in p(sys.stdin.read()):\n  for s in f.samples:\n    print(s.name, s.labels.get('jail', ''), s.value)",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(text.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(
        parsed.status.success(),
        "not OpenMetrics: {}\n{text}",
        String::from_utf8_lossy(&parsed.stderr)
    );
    let samples = String::from_utf8_lossy(&parsed.stdout);
    let parsed_bans = samples
        .lines()
        .find_map(|l| l.strip_prefix("fail3ban_bans_total web "))
        .and_then(|v| v.parse::<f64>().ok());
    assert_eq!(parsed_bans, Some(2.0), "{samples}");
    let bans = "fail3ban_bans_total{jail=\"web\",job=\"fail3ban\"}";
    prom.wait("Prometheus has scraped the two bans", || {
        prom.query(bans) == Some(2.0)
    });
    assert_eq!(prom.query("fail3ban_banned{jail=\"web\"}"), Some(2.0));
    assert_eq!(
        prom.query("up{job=\"fail3ban\"}"),
        Some(1.0),
        "{}",
        prom.log()
    );
    s.stop();
}

/// Issue 19: with the AI on, the endpoint counts its requests and tokens
/// as the model server sent and reported them, its verdicts by kind, its
/// rules by status and its queue, every `fail3ban_ai_` row of the README
/// included.
#[test]
fn metrics_count_the_ai_requests_tokens_verdicts_and_rules() {
    let llm = crate::ai::xmlrpc_model();
    let t = crate::ai::tree(&llm, "", "");
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let local = t.conf().join("fail2ban.local");
    let conf = std::fs::read_to_string(&local).unwrap();
    t.write_conf(
        "fail2ban.local",
        &format!("{conf}\n[Definition]\nmetrics = {addr}\n"),
    );
    let mut s = Server::start(&t);
    let log = t.path("access.log");
    for ip in ["203.0.113.7", "203.0.113.8"] {
        append(&log, &access(ip, "POST /xmlrpc.php HTTP/1.1"));
        append(&log, &access(ip, "GET /about HTTP/1.1"));
    }
    let at = |text: &str, series: &str| value(text, series).unwrap_or(-1.0);
    let mut text = String::new();
    s.wait("both shapes are judged", |s| {
        text = scrape(s, addr);
        at(&text, "fail3ban_ai_verdicts_total{verdict=\"attack\"}") == 1.0
            && at(&text, "fail3ban_ai_verdicts_total{verdict=\"benign\"}") == 1.0
    });
    assert_documented(&text, |name| name.starts_with("fail3ban_ai_"));
    let requests = llm.requests() as f64;
    assert_eq!(requests, 2.0, "one request per shape");
    assert_eq!(at(&text, "fail3ban_ai_requests_total"), requests, "{text}");
    // The scripted model reports 100 prompt and 50 completion tokens.
    let tokens = |kind: &str| {
        at(
            &text,
            &format!("fail3ban_ai_tokens_total{{kind=\"{kind}\"}}"),
        )
    };
    assert_eq!(tokens("prompt"), 100.0 * requests, "{text}");
    assert_eq!(tokens("completion"), 50.0 * requests, "{text}");
    assert_eq!(
        at(&text, "fail3ban_ai_verdicts_total{verdict=\"invalid\"}"),
        0.0,
        "{text}"
    );
    assert_eq!(
        at(&text, "fail3ban_ai_rules{status=\"active\"}"),
        1.0,
        "{text}"
    );
    assert_eq!(
        at(&text, "fail3ban_ai_rules{status=\"pending\"}"),
        0.0,
        "{text}"
    );
    assert_eq!(at(&text, "fail3ban_ai_queue_length"), 0.0, "{text}");
    s.stop();
}

/// Issue 19: a journal jail's lag is the seconds from the newest entry it
/// read to the scrape: entries written 100 s ago show at least 100 s, and
/// no more than the test took on top.
#[test]
#[ignore = "needs systemd-journal-remote"]
fn metrics_journal_lag_is_seconds_since_the_newest_entry_read() {
    crate::prereq::need(&[Need::JournalRemote]);
    let (tree, addr) = tree_with_metrics(
        "[one]
enabled = true
filter = test
backend = systemd[journalpath=@T@/journal]
journalmatch = _SYSTEMD_UNIT=test.service
",
    );
    let started = Instant::now();
    let usec = |ago: u64| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        (now.as_micros() as u64 - ago * 1_000_000).to_string()
    };
    let entry = |i: u64, ago: u64| -> Vec<(&str, Vec<u8>)> {
        [
            ("__REALTIME_TIMESTAMP", usec(ago)),
            ("__MONOTONIC_TIMESTAMP", (1_000_000 + i).to_string()),
            ("_BOOT_ID", "0123456789abcdef0123456789abcdef".into()),
            ("_HOSTNAME", "web1".into()),
            ("_SYSTEMD_UNIT", "test.service".into()),
            ("_COMM", "test".into()),
            ("_PID", (100 + i).to_string()),
            ("MESSAGE", "auth failure from 192.0.2.1".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k, v.into_bytes()))
        .collect()
    };
    let jdir = tree.path("journal");
    std::fs::create_dir(&jdir).unwrap();
    make_journal_raw(&jdir.join("one.journal"), &[entry(0, 200), entry(1, 100)]);
    let mut s = Server::start(&tree);
    s.wait_status("one", &st(1, 2, &[], 0));
    let text = scrape(&s, addr);
    let lag = value(
        &text,
        "fail3ban_source_lag_seconds{jail=\"one\",source=\"journal\"}",
    )
    .unwrap_or_else(|| panic!("no journal lag:\n{text}"));
    let most = 100.0 + started.elapsed().as_secs_f64() + 1.0;
    assert!(
        (100.0..most).contains(&lag),
        "lag {lag}, at most {most}:\n{text}"
    );
    assert_documented(&text, |name| name == "fail3ban_source_lag_seconds");
    s.stop();
}
