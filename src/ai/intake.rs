//! Which new shapes go to the model, and in which order. A shape not yet
//! judged gathers samples until it has been seen from `min_sources`
//! clients, then waits in the backlog (the queue in the store) for the
//! asker.
//!
//! A client writes words the shape key keeps, so one address could start
//! shapes without end and crowd out an attack. Three bounds stop that:
//! new shapes a minute are capped per client address and per jail (the
//! rest dropped, counted); the backlog asks the shapes seen from the most
//! distinct addresses first; and a full backlog gives up the shape seen
//! from the fewest for one seen from more (a shape that cannot get in
//! keeps gathering, so more clients can still earn it a place).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::{shape, Settings};
use crate::store::{AiStore, QueuedLine};

/// New shapes gathering samples, at most; a new one beyond pushes out the
/// one seen from the fewest addresses (the oldest among them), counted as
/// dropped.
const GATHERING: usize = 10_000;
/// Distinct addresses counted per shape, at most: enough to rank a
/// shape, bounded in memory.
const COUNTED: usize = 32;

/// A new shape's samples and the addresses it came from.
struct Gathered {
    since: f64,
    samples: VecDeque<String>,
    sources: HashSet<String>,
}

/// A queued shape, as later lines of it find it.
struct Waiting {
    id: i64,
    sources: HashSet<String>,
    count: u64,
}

/// New shapes started this minute, per jail and per (jail, address).
#[derive(Default)]
struct Rate {
    minute: u64,
    jails: HashMap<String, u32>,
    addrs: HashMap<(String, String), u32>,
}

impl Rate {
    /// Counts one new shape of `source` in `jail`, if both caps allow it.
    /// Addresses are only counted once the jail allows, so the map holds
    /// at most `per_jail` of them per jail.
    fn allow(&mut self, jail: &str, source: &str, t: f64, per_jail: u32, per_addr: u32) -> bool {
        let minute = (t / 60.0) as u64;
        if minute != self.minute {
            self.minute = minute;
            self.jails.clear();
            self.addrs.clear();
        }
        if self.jails.get(jail).is_some_and(|&n| n >= per_jail) {
            return false;
        }
        let a = self
            .addrs
            .entry((jail.to_string(), source.to_string()))
            .or_default();
        if *a >= per_addr {
            return false;
        }
        *a += 1;
        *self.jails.entry(jail.to_string()).or_default() += 1;
        true
    }
}

/// A shape ready to be asked about: queue it (after marking it pending),
/// and forget the verdict of the shape it displaced.
pub struct Admitted {
    /// The line to queue.
    pub line: QueuedLine,
    /// The template of the shape a full backlog gave up for it.
    pub displaced: Option<String>,
}

/// The intake's state.
pub struct Intake {
    min_sources: usize,
    backlog: u64,
    per_address: u32,
    per_jail: u32,
    /// New shapes by (jail, template), until one is seen from
    /// `min_sources` clients.
    gathering: Mutex<HashMap<(String, String), Gathered>>,
    /// Queued shapes by (jail, template).
    waiting: Mutex<HashMap<(String, String), Waiting>>,
    rate: Mutex<Rate>,
    queued: AtomicU64,
    dropped_backlog: AtomicU64,
    dropped_shapes: AtomicU64,
}

/// The address a line most likely came from: its client position when
/// one line tells, else the prescreen's.
fn source_of(line: &str, fallback: &str) -> String {
    let one = [line.to_string()];
    shape::decide(&one)
        .and_then(|c| shape::address_of(line, &c))
        .map_or_else(|| fallback.to_string(), |(_, a)| a)
}

/// The client addresses of a queued line's samples.
fn sample_sources(q: &QueuedLine) -> HashSet<String> {
    let samples: Vec<String> = q.line.split('\n').map(String::from).collect();
    let Some(c) = shape::decide(&samples) else {
        return HashSet::new();
    };
    samples
        .iter()
        .filter_map(|l| shape::address_of(l, &c).map(|a| a.1))
        .take(COUNTED)
        .collect()
}

impl Intake {
    /// The intake, with the shapes the store still holds queued.
    pub fn new(settings: &Settings, db: &dyn AiStore) -> Intake {
        let intake = Intake {
            min_sources: settings.min_sources,
            backlog: settings.backlog,
            per_address: settings.shapes_per_address,
            per_jail: settings.shapes_per_jail,
            gathering: Mutex::default(),
            waiting: Mutex::default(),
            rate: Mutex::default(),
            queued: AtomicU64::new(0),
            dropped_backlog: AtomicU64::new(0),
            dropped_shapes: AtomicU64::new(0),
        };
        match db.queue_peek(settings.backlog as usize) {
            Ok(queued) => queued.iter().for_each(|q| intake.wait_for(q)),
            Err(e) => tracing::error!("AI queue: {e}"),
        }
        intake
    }

    fn wait_for(&self, q: &QueuedLine) {
        let w = Waiting {
            id: q.id,
            sources: sample_sources(q),
            count: q.sources,
        };
        self.waiting
            .lock()
            .expect("ai lock")
            .insert((q.jail.clone(), q.template.clone()), w);
        self.queued.fetch_add(1, Ordering::Relaxed);
    }

    /// Lines waiting for the model.
    pub fn queued_len(&self) -> u64 {
        self.queued.load(Ordering::Relaxed)
    }

    /// (dropped because the backlog or the sample map was full, new
    /// shapes dropped over the caps)
    pub fn dropped(&self) -> (u64, u64) {
        (
            self.dropped_backlog.load(Ordering::Relaxed),
            self.dropped_shapes.load(Ordering::Relaxed),
        )
    }

    /// Another line of a shape already asked about or queued: a queued
    /// shape seen from a new address moves up the backlog.
    pub fn seen_again(&self, db: &dyn AiStore, jail: &str, key: &str, line: &str, addr: &str) {
        let mut w = self.waiting.lock().expect("ai lock");
        let Some(e) = w.get_mut(&(jail.to_string(), key.to_string())) else {
            return;
        };
        if e.sources.len() >= COUNTED || !e.sources.insert(source_of(line, addr)) {
            return;
        }
        e.count += 1;
        let (id, count) = (e.id, e.count);
        drop(w);
        if let Err(e) = db.queue_set_sources(id, count) {
            tracing::error!("AI queue: {e}");
        }
    }

    /// A line of a shape not yet judged, from `addr` (the prescreen's
    /// address): kept as a sample until the shape has been seen from
    /// enough clients, then admitted to the backlog if there is room or
    /// it was seen from more addresses than a shape there.
    pub fn admit(
        &self,
        db: &dyn AiStore,
        jail: &str,
        key: &str,
        line: String,
        addr: &str,
        t: f64,
    ) -> Option<Admitted> {
        let source = source_of(&line, addr);
        let mut g = self.gathering.lock().expect("ai lock");
        let k = (jail.to_string(), key.to_string());
        if !g.contains_key(&k) {
            let allowed = self.rate.lock().expect("ai lock").allow(
                jail,
                &source,
                t,
                self.per_jail,
                self.per_address,
            );
            if !allowed {
                self.dropped_shapes.fetch_add(1, Ordering::Relaxed);
                return None;
            }
            if g.len() >= GATHERING {
                let fewest = g
                    .iter()
                    .min_by(|a, b| {
                        (a.1.sources.len().cmp(&b.1.sources.len()))
                            .then(a.1.since.total_cmp(&b.1.since))
                    })
                    .map(|(k, _)| k.clone());
                if let Some(o) = fewest {
                    g.remove(&o);
                }
                self.dropped_backlog.fetch_add(1, Ordering::Relaxed);
            }
        }
        let e = g.entry(k.clone()).or_insert_with(|| Gathered {
            since: t,
            samples: VecDeque::new(),
            sources: HashSet::new(),
        });
        if e.sources.len() < COUNTED {
            e.sources.insert(source);
        }
        let addrs = |l: &str| -> Vec<String> { shape::slots(l).into_iter().map(|s| s.1).collect() };
        let these = addrs(&line);
        if e.samples.iter().any(|l| addrs(l) == these) {
            return None;
        }
        if e.samples.len() >= shape::MAX_SAMPLES {
            e.samples.pop_front();
        }
        e.samples.push_back(line);
        let samples: Vec<String> = e.samples.iter().cloned().collect();
        let client = shape::decide(&samples).filter(|c| c.sources >= self.min_sources)?;
        let (_, addr) = shape::address_of(&samples[0], &client)?;
        let sources = (client.sources.max(e.sources.len())) as u64;
        let displaced = self.make_room(db, sources)?;
        g.remove(&k);
        Some(Admitted {
            line: QueuedLine {
                id: 0,
                time: t,
                jail: jail.to_string(),
                template: key.to_string(),
                addr,
                line: samples.join("\n"),
                sources,
            },
            displaced,
        })
    }

    /// Room in the backlog for a shape seen from `sources` addresses:
    /// `Some(None)` when there is room, `Some(Some(template))` when the
    /// shape seen from the fewest gave up its place, `None` (counted) when
    /// every queued shape was seen from as many.
    fn make_room(&self, db: &dyn AiStore, sources: u64) -> Option<Option<String>> {
        let full = db.queue_len().map_or(true, |n| n >= self.backlog);
        if !full {
            return Some(None);
        }
        self.dropped_backlog.fetch_add(1, Ordering::Relaxed);
        let fewest = db.queue_fewest().ok().flatten()?;
        if fewest.sources >= sources {
            return None;
        }
        tracing::info!(
            "[{}] AI backlog full: a shape seen from {sources} addresses displaces one seen from {}",
            fewest.jail,
            fewest.sources
        );
        self.dequeue(db, &fewest);
        Some(Some(fewest.template))
    }

    /// Queues a line; whether it was stored.
    pub fn push(&self, db: &dyn AiStore, q: &QueuedLine) -> bool {
        match db.queue_push(q) {
            Ok(id) => {
                self.wait_for(&QueuedLine { id, ..q.clone() });
                true
            }
            Err(e) => {
                tracing::error!("AI queue: {e}");
                false
            }
        }
    }

    /// Takes a line off the queue (asked, or given up).
    pub fn dequeue(&self, db: &dyn AiStore, q: &QueuedLine) {
        if let Err(e) = db.queue_remove(q.id) {
            tracing::error!("AI queue: {e}");
        }
        let k = (q.jail.clone(), q.template.clone());
        let mut w = self.waiting.lock().expect("ai lock");
        if w.get(&k).is_some_and(|e| e.id == q.id) {
            w.remove(&k);
        }
        drop(w);
        let _ = self
            .queued
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(1))
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{SqliteStore, Store};

    fn settings(backlog: u64, min_sources: usize) -> Settings {
        Settings {
            backlog,
            min_sources,
            ..Settings::default()
        }
    }

    fn line(path: &str, from: &str) -> String {
        format!(r#"{from} - - [] "GET {path} HTTP/1.1" 404 1 "-" "x""#)
    }

    fn admit(i: &Intake, db: &dyn AiStore, key: &str, from: &str, t: f64) -> Option<Admitted> {
        let a = i.admit(db, "web", key, line(key, from), from, t)?;
        assert!(i.push(db, &a.line));
        Some(a)
    }

    #[test]
    fn new_shapes_are_capped_per_address_and_per_jail() {
        let s = SqliteStore::open(":memory:", Default::default()).unwrap();
        let db = s.ai().unwrap();
        let i = Intake::new(&settings(1000, 1), db);
        let n = |from: &str, t: f64, range: std::ops::Range<usize>| {
            range
                .filter(|k| admit(&i, db, &format!("/{from}/{k}"), from, t).is_some())
                .count()
        };
        assert_eq!(n("203.0.113.1", 60.0, 0..20), 5);
        assert_eq!(i.dropped().1, 15);
        // A new minute, a new allowance.
        assert_eq!(n("203.0.113.1", 120.0, 20..40), 5);
        // Per jail: 60 a minute, whatever the number of addresses.
        let mut total = 0;
        for a in 0..20 {
            total += n(&format!("198.51.100.{a}"), 180.0, 0..5);
        }
        assert_eq!(total, 60);
    }

    #[test]
    fn a_full_backlog_keeps_the_shapes_seen_from_most_addresses() {
        let s = SqliteStore::open(":memory:", Default::default()).unwrap();
        let db = s.ai().unwrap();
        let i = Intake::new(&settings(3, 1), db);
        for (k, from) in
            ["/a", "/b", "/c"]
                .iter()
                .zip(["203.0.113.1", "203.0.113.2", "203.0.113.3"])
        {
            assert!(admit(&i, db, k, from, 60.0).is_some());
        }
        // One more shape from one address: no room.
        assert!(admit(&i, db, "/d", "203.0.113.4", 60.0).is_none());
        assert_eq!(i.dropped().0, 1);
        // It keeps gathering: from a second address it displaces the
        // newest of the shapes seen from one.
        let a = admit(&i, db, "/d", "203.0.113.5", 60.0).unwrap();
        assert_eq!(a.displaced.as_deref(), Some("/c"));
        assert_eq!(a.line.sources, 2);
        // A queued shape seen again from new addresses moves up.
        for from in ["198.51.100.1", "198.51.100.2"] {
            i.seen_again(db, "web", "/a", &line("/a", from), from);
        }
        i.seen_again(db, "web", "/a", &line("/a", "198.51.100.1"), "198.51.100.1");
        let order: Vec<(String, u64)> = db
            .queue_peek(10)
            .unwrap()
            .into_iter()
            .map(|q| (q.template, q.sources))
            .collect();
        assert_eq!(
            order,
            [("/a".into(), 3), ("/d".into(), 2), ("/b".into(), 1)]
        );
        // A restart finds the queue as it was.
        let again = Intake::new(&settings(3, 1), db);
        assert_eq!(again.queued_len(), 3);
        again.seen_again(db, "web", "/b", &line("/b", "198.51.100.9"), "198.51.100.9");
        assert_eq!(db.queue_peek(10).unwrap()[2].sources, 2);
    }
}
