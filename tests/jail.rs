//! Jail decisions: differential tests against fail2ban's own FailManager,
//! BanManager and observer (bantime.increment), driven by the same
//! scripted failures, manual bans and clock ticks.

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};

use fail3ban::filter::ipaddr::{parse_unspec, Fid};
use fail3ban::jail::{BanHistory, Engine, Event, Increment, IncrementOptions, PrevBan, Ticket};
use serde_json::{json, Value};

/// Runs each scenario through fail2ban's classes in one Python process and
/// prints, per event, the pending failures, the bans and the unbans.
const ORACLE: &str = r##"
import json, sys
from fail2ban.server.mytime import MyTime
from fail2ban.server.ticket import FailTicket
from fail2ban.server.filter import Filter
from fail2ban.server.observer import Observers, ObserverThread
from fail2ban.server.database import Fail2BanDb
from fail2ban.tests.dummyjail import DummyJail
import fail2ban.server.jail as jailmod

class SyncObserver(ObserverThread):
    def add(self, *event):
        getattr(self, event[0])(*event[1:])
    def add_timer(self, *a):
        pass

def run(sc):
    rnd = {'k': 0}
    def fake_random():
        rnd['k'] += 1
        return (rnd['k'] * 0.137) % 1.0
    jailmod.random.random = fake_random
    Observers.Main = obs = SyncObserver()
    db = Fail2BanDb(':memory:')
    jails = []
    for i, c in enumerate(sc['jails']):
        j = DummyJail(name=c['name'])
        flt = Filter(j)
        j._Jail__filter = flt
        flt.failManager.setMaxRetry(c['maxretry'])
        flt.setFindTime(c['findtime'])
        flt.failManager.maxMatches = c['maxmatches']
        j.actions.setBanTime(c['bantime'])
        inc = c.get('increment')
        if inc is not None:
            j.database = db
            db.addJail(j)
            for k in ('factor', 'formula', 'multipliers', 'maxtime', 'rndtime'):
                if inc.get(k) is not None:
                    j.setBanTimeExtra(k, inc[k])
            j.setBanTimeExtra('overalljails', inc.get('overalljails', False))
            j.setBanTimeExtra('increment', 'true')
        jails.append(j)
    out = []
    for ev in sc['events']:
        kind, ji, now = ev[0], ev[1], ev[2]
        j = jails[ji]
        flt = j.filter
        fm = flt.failManager
        bm = j.actions.banManager
        MyTime.setTime(now)
        unbanned = []
        if kind == 'fail':
            t, fid = ev[3], ev[4]
            if t > now:
                t = now
            tick = FailTicket(fid, t, matches=['line %s' % t])
            attempts = fm.addFailure(tick)
            if attempts >= fm.getMaxRetry():
                flt.performBan(fid)
            if j.getBanTimeExtra('increment'):
                obs.failureFound(j, tick)
            j.actions.checkBan()
        elif kind == 'banip':
            j.actions.addBannedIP(ev[4])
        elif kind == 'tick':
            fm.cleanup(now)
            unbanned = sorted(str(t.getID()) for t in bm.unBanList(now))
        dbt = bm.getBanTime()
        bans = sorted([str(t.getID()), float(t.getTime()), float(t.getBanTime(dbt)), t.getBanCount(),
                       float(t.getEndOfBanTime(dbt))] for t in bm._BanManager__banList.values())
        fails = sorted([str(k), v.getRetry(), v.getAttempt(), float(v.getTime()), len(v.getMatches())]
                       for k, v in fm._FailManager__failList.items())
        out.append({'bans': bans, 'fails': fails, 'unbanned': unbanned,
                    'total': bm.getBanTotal(), 'failtotal': fm.getFailTotal()})
    Observers.Main = None
    return out

scenarios = json.load(sys.stdin)
json.dump([run(sc) for sc in scenarios], sys.stdout)
"##;

/// A deterministic generator, so that a failure can be replayed.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Failures from a few addresses (and one non-address id), some arriving
/// out of order, with clock ticks that unban and clean up, and manual bans.
fn events(seed: u64, jails: usize, n: usize, step: u64) -> Vec<Value> {
    let ids = [
        "192.0.2.1",
        "192.0.2.20",
        "198.51.100.7",
        "2001:db8::1",
        "user-alice",
    ];
    let mut r = Lcg(seed);
    let mut now: u64 = 1_700_000_000;
    let mut out = Vec::new();
    for _ in 0..n {
        now += r.below(step) + 1;
        let j = r.below(jails as u64) as usize;
        let fid = ids[r.below(ids.len() as u64) as usize];
        match r.below(20) {
            0..=1 => out.push(json!(["tick", j, now, 0, ""])),
            2 => out.push(json!(["banip", j, now, now, fid])),
            3 => {
                // A line read late: its time is before the clock.
                let t = now - r.below(step * 20);
                out.push(json!(["fail", j, now, t, fid]));
            }
            4 => {
                // A quiet spell longer than most ban times.
                now += r.below(step * 200);
                out.push(json!(["tick", j, now, 0, ""]));
            }
            _ => out.push(json!(["fail", j, now, now, fid])),
        }
    }
    out
}

fn jail(
    name: &str,
    maxretry: u32,
    findtime: f64,
    maxmatches: usize,
    bantime: f64,
    inc: Value,
) -> Value {
    json!({"name": name, "maxretry": maxretry, "findtime": findtime,
           "maxmatches": maxmatches, "bantime": bantime, "increment": inc})
}

fn scenarios() -> Vec<(String, Value)> {
    let exp = "ban.Time * math.exp(float(ban.Count+1)*banFactor)/math.exp(1*banFactor)";
    let defs: Vec<(&str, Vec<Value>, u64)> = vec![
        (
            "plain",
            vec![jail("a", 3, 600.0, 2, 600.0, Value::Null)],
            40,
        ),
        (
            "maxretry 1, maxmatches 0",
            vec![jail("a", 1, 60.0, 0, 120.0, Value::Null)],
            30,
        ),
        (
            "permanent",
            vec![jail("a", 2, 300.0, 5, -1.0, Value::Null)],
            60,
        ),
        (
            "default formula",
            vec![jail("a", 3, 300.0, 3, 60.0, json!({"maxtime": "1h"}))],
            30,
        ),
        (
            "formula factor 2",
            vec![jail(
                "a",
                4,
                600.0,
                4,
                120.0,
                json!({"factor": "2", "maxtime": "12h"}),
            )],
            40,
        ),
        (
            "multipliers",
            vec![jail(
                "a",
                3,
                600.0,
                3,
                60.0,
                json!({"multipliers": "1 5 30 60 300", "factor": "1.5"}),
            )],
            40,
        ),
        (
            "exp formula, rndtime",
            vec![jail(
                "a",
                2,
                600.0,
                2,
                100.0,
                json!({"formula": exp, "factor": "2.0 / 2.885385", "maxtime": "1d", "rndtime": "30"}),
            )],
            50,
        ),
        (
            "conditional formula",
            vec![jail(
                "a",
                3,
                600.0,
                3,
                60.0,
                json!({"formula": "ban.Time * (ban.Count * 3 if ban.Count < 4 else 20) + (ban.Count ** 2) * 10 // 3"}),
            )],
            40,
        ),
        (
            "permanent with increment",
            vec![jail("a", 2, 600.0, 3, -1.0, json!({}))],
            60,
        ),
        (
            "two jails, overalljails",
            vec![
                jail(
                    "a",
                    2,
                    600.0,
                    2,
                    60.0,
                    json!({"multipliers": "1 2 4 8", "overalljails": true}),
                ),
                jail(
                    "b",
                    3,
                    300.0,
                    3,
                    90.0,
                    json!({"overalljails": true, "maxtime": "2h"}),
                ),
            ],
            40,
        ),
        (
            "two jails, per jail",
            vec![
                jail("a", 2, 600.0, 2, 60.0, json!({"multipliers": "1 2 4 8"})),
                jail("b", 3, 300.0, 3, 90.0, json!({"maxtime": "2h"})),
            ],
            40,
        ),
    ];
    defs.into_iter()
        .enumerate()
        .map(|(i, (name, jails, step))| {
            let n = jails.len();
            let ev = events(0x5eed + i as u64, n, 400, step);
            (name.to_string(), json!({"jails": jails, "events": ev}))
        })
        .collect()
}

/// The store's view of earlier bans, as fail2ban's `bips` table keeps it.
#[derive(Default)]
struct Bips(HashMap<(String, String), PrevBan>);

struct View<'a>(&'a Bips, &'a str);

impl BanHistory for View<'_> {
    fn last_ban(&self, fid: &Fid, overall: bool) -> Option<PrevBan> {
        let ip = fid.to_string();
        if !overall {
            return self.0 .0.get(&(ip, self.1.to_string())).copied();
        }
        let rows: Vec<&PrevBan> = self
            .0
             .0
            .iter()
            .filter(|((i, _), _)| *i == ip)
            .map(|(_, v)| v)
            .collect();
        if rows.is_empty() {
            return None;
        }
        Some(PrevBan {
            count: rows.iter().map(|r| r.count).sum(),
            time: rows.iter().map(|r| r.time).fold(f64::MIN, f64::max),
            ban_time: rows.iter().map(|r| r.ban_time).sum(),
        })
    }
}

fn py_round(x: f64) -> f64 {
    let r = x.round();
    if (x - x.trunc()).abs() == 0.5 && r % 2.0 != 0.0 {
        r - x.signum()
    } else {
        r
    }
}

fn run_ours(sc: &Value) -> Vec<Value> {
    let mut k = 0u64;
    let mut random = move || {
        k += 1;
        (k as f64 * 0.137) % 1.0
    };
    let mut bips = Bips::default();
    let mut engines: Vec<Engine> = sc["jails"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let mut e = Engine::new(c["name"].as_str().unwrap());
            e.fail_manager
                .set_max_retry(c["maxretry"].as_u64().unwrap() as u32);
            e.fail_manager.set_max_time(c["findtime"].as_f64().unwrap());
            e.fail_manager
                .set_max_matches(c["maxmatches"].as_u64().unwrap() as usize);
            e.ban_manager.set_ban_time(c["bantime"].as_f64().unwrap());
            let inc = &c["increment"];
            if inc.is_object() {
                let s = |k: &str| inc[k].as_str().map(str::to_string);
                e.increment = Some(
                    Increment::new(&IncrementOptions {
                        factor: s("factor"),
                        formula: s("formula"),
                        multipliers: s("multipliers"),
                        maxtime: s("maxtime"),
                        rndtime: s("rndtime"),
                        overalljails: inc["overalljails"].as_bool().unwrap_or(false),
                    })
                    .unwrap(),
                );
            }
            e
        })
        .collect();
    let mut out = Vec::new();
    for ev in sc["events"].as_array().unwrap() {
        let kind = ev[0].as_str().unwrap();
        let j = ev[1].as_u64().unwrap() as usize;
        let now = ev[2].as_f64().unwrap();
        let e = &mut engines[j];
        let mut unbanned: Vec<String> = Vec::new();
        let events = {
            let jail_name = e.name().to_string();
            let view = View(&bips, &jail_name);
            match kind {
                "fail" => {
                    let t = ev[3].as_f64().unwrap().min(now);
                    let tick = Ticket::new(
                        parse_unspec(ev[4].as_str().unwrap()),
                        t,
                        vec![format!("line {t}")],
                    );
                    e.add_failure(tick, now, &view, &mut random)
                }
                "banip" => e.ban_ip(
                    parse_unspec(ev[4].as_str().unwrap()),
                    now,
                    &view,
                    &mut random,
                ),
                _ => {
                    e.fail_manager.cleanup(now);
                    unbanned = e
                        .unban_expired(now)
                        .iter()
                        .map(|t| t.fid().to_string())
                        .collect();
                    unbanned.sort();
                    Vec::new()
                }
            }
        };
        let default_bt = e.ban_manager.ban_time();
        for event in events {
            if let Event::Ban { ticket, found } = event {
                if found.record && e.increment.is_some() {
                    bips.0.insert(
                        (ticket.fid().to_string(), e.name().to_string()),
                        PrevBan {
                            count: ticket.ban_count(),
                            time: py_round(ticket.time()),
                            ban_time: ticket.ban_time(default_bt),
                        },
                    );
                }
            }
        }
        let mut bans: Vec<Value> = e
            .ban_manager
            .tickets()
            .map(|t| {
                json!([
                    t.fid().to_string(),
                    t.time(),
                    t.ban_time(default_bt),
                    t.ban_count(),
                    t.end_of_ban(default_bt)
                ])
            })
            .collect();
        bans.sort_by_key(|v| v[0].as_str().unwrap().to_string());
        let fm = &e.fail_manager;
        let mut fails: Vec<Value> = Vec::new();
        for id in [
            "192.0.2.1",
            "192.0.2.20",
            "198.51.100.7",
            "2001:db8::1",
            "user-alice",
        ] {
            if let Some(t) = fm.get(&parse_unspec(id)) {
                fails.push(json!([
                    t.fid().to_string(),
                    t.retry(),
                    t.attempts(),
                    t.time(),
                    t.matches().len()
                ]));
            }
        }
        fails.sort_by_key(|v| v[0].as_str().unwrap().to_string());
        out.push(json!({"bans": bans, "fails": fails, "unbanned": unbanned,
            "total": e.ban_manager.ban_total(), "failtotal": fm.fail_total()}));
    }
    out
}

/// Numbers equal as floats (Python prints `1200` where we print `1200.0`),
/// within a relative 1e-9 for what went through `math.exp`.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            x == y || (x - y).abs() <= 1e-9 * x.abs().max(y.abs())
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

#[test]
#[ignore = "needs the reference fail2ban (scripts/fetch-reference.sh)"]
fn decisions_match_fail2ban() {
    let root = crate::prereq::reference();
    let scs = scenarios();
    let input = Value::Array(scs.iter().map(|(_, s)| s.clone()).collect());
    let script = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(script.path(), ORACLE).unwrap();
    let mut child = Command::new("/usr/bin/python3")
        .arg(script.path())
        .env("PYTHONPATH", root.join("usr/lib/python3/dist-packages"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run /usr/bin/python3");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "reference driver failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let theirs: Vec<Vec<Value>> = serde_json::from_slice(&output.stdout).unwrap();
    let (mut steps, mut bans, mut unbans) = (0, 0, 0);
    let mut failures = Vec::new();
    for ((name, sc), want) in scs.iter().zip(&theirs) {
        let got = run_ours(sc);
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            steps += 1;
            bans += w["bans"].as_array().unwrap().len();
            unbans += w["unbanned"].as_array().unwrap().len();
            if !same(g, w) {
                failures.push(format!(
                    "{name}: event {i} {}\n  fail2ban: {w}\n  fail3ban: {g}",
                    sc["events"][i]
                ));
                break;
            }
        }
    }
    eprintln!(
        "jail: {} scenarios, {steps} events compared, {bans} ban states, {unbans} unbans",
        scs.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
