//! A real jail on tokio's paused time: the library's `Jail`, configured by
//! the commands the server's configuration stream sends, following a log
//! file and running shell actions, with the clock the server gives it
//! replaced by one that follows tokio's. findtime, bantime and unbans over
//! hours of jail time run in moments of real time, without a real sleep.

use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fail3ban::server::clock::Clock;
use fail3ban::server::jail::Jail;
use fail3ban::server::spec::{self, JailSpec};
use fail3ban::store::{Settings, SqliteStore, Store};
use indexmap::IndexMap;
use serde_json::{json, Value};

const FINDTIME: u64 = 600;
const BANTIME: u64 = 3600;
/// How long the real time of one test may be: a real sleep through any
/// findtime or bantime here would take far longer.
const REAL_TIME: Duration = Duration::from_secs(2);
/// How long a wait for the jail (its reader thread, its shell actions)
/// may take in real time before the test fails.
const WAIT: Duration = Duration::from_secs(10);

/// Keeps the runtime from ever being idle. tokio advances a paused clock on
/// its own when every task waits, for instance for an action's shell or
/// the file reader's thread, which would time the action out at once: with
/// this, time moves only by the test's [`advance`].
struct Busy(tokio::task::JoinHandle<()>);

impl Busy {
    fn start() -> Busy {
        Busy(tokio::spawn(async {
            loop {
                tokio::task::yield_now().await;
                std::thread::sleep(Duration::from_micros(50));
            }
        }))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One jail `one` following `one.log` in a temporary directory, its
/// action writing `ban <ip> <bantime>` and `unban <ip>` to `actions`.
struct Fixture {
    dir: tempfile::TempDir,
    clock: Clock,
    jail: Option<Jail>,
    started: Instant,
    _busy: Busy,
}

impl Fixture {
    /// `settings`: `set one <option> <value>` commands on top of
    /// findtime, bantime and maxretry 3; `store`: with a database;
    /// `before`: failures in the log when the jail starts, by address,
    /// how many and how long before now.
    async fn start(
        settings: &[(&str, Value)],
        store: bool,
        before: &[(&str, usize, u64)],
    ) -> Fixture {
        let started = Instant::now();
        // The jail's log, shown with a failing test's output.
        let _ = tracing_subscriber::fmt()
            .with_test_writer()
            .with_env_filter("debug")
            .try_init();
        let busy = Busy::start();
        let dir = tempfile::tempdir().unwrap();
        let clock = Clock::following_tokio();
        let log = dir.path().join("one.log");
        // Not empty: an empty log races with its first write (see
        // `server::restart_after_log_started_empty`).
        let mut text = format!("{} web1 syslogd: restart\n", stamp(clock.now() as i64));
        for (ip, n, ago) in before {
            text += &fail_lines(clock.now() as i64 - *ago as i64, ip, *n);
        }
        fs::write(&log, text).unwrap();
        let actions = dir.path().join("actions");
        let mut commands = vec![
            json!(["add", "one", "auto"]),
            json!([
                "set",
                "one",
                "addfailregex",
                r"^\s*\S+ test\[\d+\]: auth failure from <HOST>$"
            ]),
            json!(["set", "one", "addlogpath", log.to_str().unwrap(), "head"]),
            json!(["set", "one", "maxretry", 3]),
            json!(["set", "one", "findtime", FINDTIME]),
            json!(["set", "one", "bantime", BANTIME]),
            json!(["set", "one", "addaction", "record"]),
            json!([
                "multi-set",
                "one",
                "action",
                "record",
                [
                    [
                        "actionban",
                        format!("echo ban <ip> <bantime> >> {}", actions.display())
                    ],
                    [
                        "actionunban",
                        format!("echo unban <ip> >> {}", actions.display())
                    ],
                    // The shell of an action may still be running (its
                    // exit not yet seen) when the test advances the clock
                    // by hours: a day's timeout outlasts every test here.
                    ["timeout", "86400"]
                ]
            ]),
        ];
        for (what, value) in settings {
            commands.push(json!(["set", "one", what, value]));
        }
        let mut specs: IndexMap<String, JailSpec> = IndexMap::new();
        for c in &commands {
            let Value::Array(c) = c else { unreachable!() };
            assert!(spec::apply(&mut specs, c).unwrap(), "{c:?}");
        }
        let store: Option<Arc<dyn Store>> = store.then(|| {
            let s = SqliteStore::open(dir.path().join("db.sqlite"), Settings::default());
            Arc::new(s.unwrap()) as Arc<dyn Store>
        });
        let jail = Jail::start(specs.swap_remove("one").unwrap(), store, None, clock)
            .await
            .unwrap();
        Fixture {
            dir,
            clock,
            jail: Some(jail),
            started,
            _busy: busy,
        }
    }

    fn jail(&self) -> &Jail {
        self.jail.as_ref().unwrap()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Appends `n` failures of `ip` dated now.
    fn fail(&self, ip: &str, n: usize) {
        let mut f = fs::OpenOptions::new()
            .append(true)
            .open(self.path("one.log"))
            .unwrap();
        let lines = fail_lines(self.clock.now() as i64, ip, n);
        f.write_all(lines.as_bytes()).unwrap();
    }

    /// (currently failed, total failed, banned addresses).
    fn status(&self) -> (u64, u64, Vec<String>) {
        let c = self.jail().counts();
        let mut banned = c.banned;
        banned.sort();
        (c.failed as u64, c.total_failed, banned)
    }

    /// The lines the action wrote.
    fn actions(&self) -> Vec<String> {
        fs::read_to_string(self.path("actions"))
            .unwrap_or_default()
            .lines()
            .map(String::from)
            .collect()
    }

    /// Waits, in real time and without moving the jail's, until `cond`.
    async fn until(&self, what: &str, cond: impl Fn(&Fixture) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !cond(self) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting: {what}\n status {:?}\n actions {:?}",
                self.status(),
                self.actions()
            );
            tokio::task::yield_now().await;
        }
    }

    /// Lets the jail run a moment of real time with its clock standing, so
    /// that what it would do by now is done.
    async fn settle(&self) {
        let until = Instant::now() + Duration::from_millis(100);
        while Instant::now() < until {
            tokio::task::yield_now().await;
        }
    }

    /// Stops the jail; checks the test took no real sleep.
    async fn stop(mut self) {
        self.jail.take().unwrap().stop(false).await;
        let took = self.started.elapsed();
        assert!(took < REAL_TIME, "took {took:?} of real time");
    }
}

/// Unix time `t` as the test filter's logs write it (local time).
fn stamp(t: i64) -> String {
    jiff::Timestamp::from_second(t)
        .unwrap()
        .to_zoned(jiff::tz::TimeZone::system())
        .strftime("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// `n` failure lines of `ip` at Unix time `t`.
fn fail_lines(t: i64, ip: &str, n: usize) -> String {
    format!("{} web1 test[4242]: auth failure from {ip}\n", stamp(t)).repeat(n)
}

async fn advance(secs: u64) {
    tokio::time::advance(Duration::from_secs(secs)).await;
}

/// Failures long before findtime do not add up with new ones to
/// maxretry. (Failures only a little further apart than findtime still
/// do, in part: fail2ban estimates them from their rate,
/// `FailTicket.adjustTime`.)
#[tokio::test(start_paused = true)]
async fn failures_older_than_findtime_do_not_count() {
    let f = Fixture::start(&[], false, &[]).await;
    f.fail("192.0.2.1", 2);
    f.until("two failures", |f| f.status().1 == 2).await;
    advance(10 * FINDTIME).await;
    f.fail("192.0.2.1", 1);
    f.until("the third failure", |f| f.status().1 == 3).await;
    f.fail("192.0.2.1", 1);
    f.until("the fourth failure", |f| f.status().1 == 4).await;
    f.settle().await;
    assert_eq!(f.status(), (1, 4, vec![]));
    // The third failure within findtime bans.
    f.fail("192.0.2.1", 1);
    f.until("the ban", |f| f.status().2 == ["192.0.2.1"]).await;
    f.stop().await;
}

/// Lines the jail finds in its log at start, dated before findtime, are
/// not counted; those within it are.
#[tokio::test(start_paused = true)]
async fn failures_older_than_findtime_in_the_log_at_start_do_not_count() {
    let before = [
        ("192.0.2.20", 3, FINDTIME + 60),
        ("192.0.2.3", 1, 60),
        ("192.0.2.4", 3, FINDTIME - 60),
    ];
    let f = Fixture::start(&[], false, &before).await;
    f.until("the ban", |f| f.status().2 == ["192.0.2.4"]).await;
    f.settle().await;
    assert_eq!(f.status(), (1, 4, vec!["192.0.2.4".to_string()]));
    f.stop().await;
}

/// maxretry failures within findtime ban, however they are spread in it.
#[tokio::test(start_paused = true)]
async fn maxretry_failures_within_findtime_ban() {
    let f = Fixture::start(&[], false, &[]).await;
    f.fail("192.0.2.1", 1);
    f.until("the first failure", |f| f.status().1 == 1).await;
    advance(FINDTIME / 2).await;
    f.fail("192.0.2.1", 1);
    f.until("the second failure", |f| f.status().1 == 2).await;
    advance(FINDTIME / 2 - 1).await;
    f.fail("192.0.2.1", 1);
    f.until("the ban", |f| f.status().2 == ["192.0.2.1"]).await;
    f.until("the ban action", |f| !f.actions().is_empty()).await;
    assert_eq!(f.actions(), [format!("ban 192.0.2.1 {BANTIME}")]);
    f.stop().await;
}

/// A ban ends bantime after its failure, not before: the unban action
/// runs and the address is no longer banned.
#[tokio::test(start_paused = true)]
async fn ban_ends_after_bantime_and_unban_runs() {
    let f = Fixture::start(&[("maxretry", json!(1))], false, &[]).await;
    // The ban counts from the line's time stamp, a whole second.
    let line_time = f.clock.now().floor();
    f.fail("192.0.2.1", 1);
    f.until("the ban action", |f| f.actions().len() == 1).await;
    assert_eq!(f.status().2, ["192.0.2.1"]);
    let end = f.jail().bans_by_end();
    assert_eq!((end.len(), end[0].end), (1, line_time + BANTIME as f64));
    // A second before the ban ends, it holds.
    let before = line_time + BANTIME as f64 - 1.0 - f.clock.now();
    tokio::time::advance(Duration::from_secs_f64(before)).await;
    f.settle().await;
    assert_eq!(f.status().2, ["192.0.2.1"]);
    assert_eq!(f.actions().len(), 1, "{:?}", f.actions());
    advance(2).await;
    f.until("the unban action", |f| f.actions().len() == 2)
        .await;
    f.settle().await;
    assert_eq!(
        f.actions(),
        [format!("ban 192.0.2.1 {BANTIME}"), "unban 192.0.2.1".into()]
    );
    assert_eq!(f.status(), (0, 1, vec![]));
    f.stop().await;
}

/// bantime.increment: the second ban of an address lasts twice the first
/// (fail2ban's default formula with factor 1), and ends then.
#[tokio::test(start_paused = true)]
async fn bantime_increment_doubles_the_second_ban() {
    let f = Fixture::start(
        &[
            ("maxretry", json!(1)),
            ("bantime.increment", json!(true)),
            ("bantime.factor", json!("1")),
        ],
        true,
        &[],
    )
    .await;
    f.fail("192.0.2.1", 1);
    f.until("the first ban", |f| f.actions().len() == 1).await;
    advance(BANTIME + 1).await;
    f.until("the first unban", |f| f.actions().len() == 2).await;
    f.fail("192.0.2.1", 1);
    f.until("the second ban", |f| f.actions().len() == 3).await;
    assert_eq!(f.jail().bans_by_end()[0].ban_time, 2.0 * BANTIME as f64);
    advance(2 * BANTIME - 2).await;
    f.settle().await;
    assert_eq!(f.actions().len(), 3, "{:?}", f.actions());
    advance(2).await;
    f.until("the second unban", |f| f.actions().len() == 4)
        .await;
    assert_eq!(
        f.actions(),
        [
            format!("ban 192.0.2.1 {BANTIME}"),
            "unban 192.0.2.1".to_string(),
            format!("ban 192.0.2.1 {}", 2 * BANTIME),
            "unban 192.0.2.1".to_string(),
        ]
    );
    f.stop().await;
}
